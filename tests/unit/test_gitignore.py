"""What the docs' commands write into a checkout (`--report report.html`, `--csv results/`)
is ignored by git, and nothing of the project is."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout"
)


def ignored(*paths: str) -> set[str]:
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", *paths],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    return set(done.stdout.split())


def test_run_outputs_are_ignored() -> None:
    assert ignored("report.html", "results/trades.csv") == {"report.html", "results/trades.csv"}


def test_sources_named_alike_are_not() -> None:
    assert ignored("entrypoints/sdk/results.py", "docs/guide/results.md", "tests/x/results/a") == (
        set()
    )
