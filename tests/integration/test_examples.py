"""The scripts in examples/ run as written against a real server, so they cannot rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from domain.limits import Plan
from entrypoints.server.embedded import EmbeddedServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(server: EmbeddedServer, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SIMUTRADOR_SERVER_URL": server.http_url, "SIMUTRADOR_API_KEY": key}
    if not key:
        del env["SIMUTRADOR_API_KEY"]
    return subprocess.run(
        [sys.executable, str(EXAMPLES / args[0]), *args[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_create_and_list(server: EmbeddedServer) -> None:
    done = run_example(server, server.create_api_key("ann"), "create_and_list.py")
    assert done.returncode == 0, done.stderr
    assert "connected to" in done.stdout
    assert "as ann (professional plan)" in done.stdout
    created = done.stdout.split("created ", 1)[1].split(":", 1)[0]
    assert f"  {created}  ready" in done.stdout
    assert f"deleted {created}" in done.stdout
    assert server.call(server.container.session_service().stored_count()) == 0


def test_hundred_concurrent_creates_with_an_enterprise_key(server: EmbeddedServer) -> None:
    key = server.create_api_key("ent", Plan.ENTERPRISE)
    done = run_example(server, key, "concurrent_creates.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "created 100 of 100 sessions" in done.stdout
    assert "on 1 connection" in done.stdout
    assert "deleted 100 sessions" in done.stdout
    assert server.call(server.container.session_service().stored_count()) == 0


def test_concurrent_creates_explains_a_plan_refusal(server: EmbeddedServer) -> None:
    done = run_example(server, server.create_api_key("pro"), "concurrent_creates.py", "12")
    assert done.returncode == 1
    assert "created 10 of 12 sessions" in done.stdout
    assert "refused 2: SESSION_LIMIT_EXCEEDED" in done.stdout
    assert "use an enterprise key" in done.stdout
    assert "Traceback" not in done.stderr


def test_examples_without_a_key_say_what_to_set(server: EmbeddedServer) -> None:
    done = run_example(server, "", "create_and_list.py")
    assert done.returncode == 1
    assert done.stderr.startswith("NO_API_KEY: ")
    assert "SIMUTRADOR_API_KEY" in done.stderr
