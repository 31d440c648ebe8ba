"""Over a real server on loopback: a record logged while a client's request is handled
carries that client's user id (set by the WebSocket transport) and the session id the
request names (set by the dispatcher), as one JSON object per line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from dependency_injector import providers

from entrypoints.logs import install_handler
from entrypoints.server.embedded import EmbeddedServer
from tests.fakes import FailingSessionRepository
from tests.integration.conftest import build_container, issue_token
from tests.integration.wsclient import WsClient, error_code


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    logger = logging.getLogger("simutrador.protocol")
    stream = io.StringIO()
    logger.addHandler(logging.StreamHandler(stream))
    install_handler(logger, "json")
    yield stream
    logger.handlers.clear()


async def test_a_logged_failure_names_the_user_and_the_session(
    tmp_path: Path, sample_bars: Path, json_log: io.StringIO
) -> None:
    repository = FailingSessionRepository()
    container = build_container(tmp_path / "home")
    container.session_repository.override(providers.Object(repository))
    bars: Path = container.settings().bars_path
    bars.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sample_bars, bars)
    server = EmbeddedServer(container).start()
    try:
        token = await asyncio.to_thread(issue_token, server, "log-user")
        async with await WsClient.connect(server, token) as ws:
            repository.failure = RuntimeError("the disk is on fire")
            reply = await ws.request("get_session", {"session_id": "sess_logged"})
            assert error_code(reply) == "INTERNAL_ERROR"
    finally:
        server.stop()

    records = [json.loads(line) for line in json_log.getvalue().splitlines()]
    failures = [r for r in records if r["level"] == "error"]
    assert failures, records
    assert failures[0]["user_id"] == "log-user"
    assert failures[0]["session_id"] == "sess_logged"
    assert "the disk is on fire" in failures[0]["exception"]
