"""`optimize --backend ray` against a real Ray head on 127.0.0.1 (started and stopped by
the fixture): the same trials and results as the local process pool."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoints.sdk.loading import load_strategy
from entrypoints.sdk.optimize import optimize

LOOPBACK_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# Ray reads these when it is imported: set before the first import, in this process too.
os.environ.update(LOOPBACK_ENV)
pytest.importorskip("ray")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """A Ray head on loopback only, with no dashboard; `ray stop` at the end."""
    env = {**os.environ, **LOOPBACK_ENV}
    port = free_port()
    started = subprocess.run(
        [
            str(RAY), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
            "--include-dashboard=false", "--disable-usage-stats", "--num-cpus=2",
            f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={free_port()}",
        ],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr[-2000:]
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(RAY), "stop"], env=env, capture_output=True, timeout=300, check=False)


@pytest.fixture
def home(tmp_path: Path, sample_bars: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copyfile(sample_bars, tmp_path / "bars.db")
    monkeypatch.setenv("SIMUTRADOR_HOME", str(tmp_path))
    return tmp_path


def test_trials_on_ray_equal_the_local_pools(ray_head: str, home: Path) -> None:
    strategy = load_strategy(EXAMPLES / "sma_cross.py")
    options = {
        "params": {"fast": [5, 10], "slow": [20, 30]},
        "constraint": "fast < slow",
        "maximize": "final_equity",
        "commission_pct": "0.001",
    }
    on_ray = optimize(
        strategy, "AAPL", "2021-01-01", "2022-12-31", 10_000,
        backend="ray", ray_address=ray_head, **options,  # type: ignore[arg-type]
    )  # fmt: skip
    local = optimize(
        strategy, "AAPL", "2021-01-01", "2022-12-31", 10_000,
        workers=2, **options,  # type: ignore[arg-type]
    )  # fmt: skip
    assert [t.status.value for t in on_ray.trials] == ["completed"] * 4
    assert on_ray.to_json() == local.to_json()
    assert [t.equity for t in on_ray.trials] == [t.equity for t in local.trials]
