"""A real `redis-server` for the tests: started on a free loopback port in a temporary
directory (no snapshot, no append-only file), stopped at the end of the run."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

INSTALL_HINT = (
    "redis-server is not installed: the Redis storage tests need a real one "
    "(Debian/Ubuntu: apt-get install -y redis-server; .ci/run installs it when absent)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 15.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(INSTALL_HINT, pytrace=False)
        self.port = free_port()
        log = self.directory / "redis.log"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--logfile",
                str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process.poll() is not None:
                    text = log.read_text() if log.exists() else ""
                    pytest.fail(f"redis-server exited at start:\n{text[-2000:]}", pytrace=False)
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("redis-server did not answer within 15 s", pytrace=False)
                time.sleep(0.02)
        finally:
            client.close()

    def flush(self, db: int) -> None:
        client = redis.Redis(port=self.port, db=db)
        try:
            client.flushdb()
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
