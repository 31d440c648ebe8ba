"""SIMUTRADOR_LOG_FORMAT: text lines or one JSON object per line, each record carrying the
user and session the transport set for the task that logged it; and the typed settings
for the log format and SIMUTRADOR_METRICS."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest
from uvicorn.config import LOGGING_CONFIG

from entrypoints.logs import (
    ContextFilter,
    JsonFormatter,
    current_user_id,
    install_handler,
    session_context,
    uvicorn_log_config,
)
from entrypoints.settings import Settings, SettingsError


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own writing to a buffer through `install_handler` (json)."""
    logger = logging.getLogger("simutrador.test-logs")
    stream = io.StringIO()
    logger.addHandler(logging.StreamHandler(stream))
    install_handler(logger, "json")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream
    logger.handlers.clear()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_user_and_session_where_they_apply(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("before anything")
    token = current_user_id.set("alice")
    try:
        logger.info("on alice's connection")
        with session_context("sess_1"):
            logger.warning("about %s", "sess_1's simulation")
        logger.info("after the message")
    finally:
        current_user_id.reset(token)

    first, second, third, fourth = lines(stream)
    assert first["message"] == "before anything"
    assert "user_id" not in first
    assert "session_id" not in first
    assert (second["user_id"], "session_id" in second) == ("alice", False)
    assert third == {
        "time": third["time"],
        "level": "warning",
        "logger": "simutrador.test-logs",
        "message": "about sess_1's simulation",
        "user_id": "alice",
        "session_id": "sess_1",
    }
    assert str(third["time"]).endswith("+00:00")
    assert "session_id" not in fourth


def test_a_traceback_stays_inside_its_one_line(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    try:
        raise ValueError("broken\nacross lines")
    except ValueError:
        logger.exception("it failed")

    (record,) = lines(stream)  # one line, though the message and traceback have several
    assert record["level"] == "error"
    assert "ValueError: broken" in str(record["exception"])


def test_text_lines_name_the_user_and_session() -> None:
    logger = logging.getLogger("simutrador.test-text-logs")
    stream = io.StringIO()
    logger.addHandler(logging.StreamHandler(stream))
    install_handler(logger, "text")
    logger.propagate = False
    try:
        token = current_user_id.set("bob")
        with session_context("sess_9"):
            logger.warning("slow")
        current_user_id.reset(token)
        logger.warning("plain")
    finally:
        logger.handlers.clear()
    assert stream.getvalue().splitlines() == [
        "WARNING:  simutrador.test-text-logs: slow [user=bob session=sess_9]",
        "WARNING:  simutrador.test-text-logs: plain",
    ]


def test_uvicorn_logs_in_json_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    assert uvicorn_log_config(LOGGING_CONFIG, "text") is LOGGING_CONFIG
    config = uvicorn_log_config(LOGGING_CONFIG, "json")
    assert LOGGING_CONFIG["formatters"]["default"]["()"] != config["formatters"]["default"]["()"]
    names = ("uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {name: logging.getLogger(name).handlers[:] for name in names}
    try:
        logging.config.dictConfig(config)
        token = current_user_id.set("carol")
        logging.getLogger("uvicorn.error").warning("from uvicorn")
        current_user_id.reset(token)
    finally:
        for name in names:
            logging.getLogger(name).handlers[:] = saved[name]
    record = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert (record["logger"], record["message"], record["user_id"]) == (
        "uvicorn.error",
        "from uvicorn",
        "carol",
    )


def test_the_context_filter_never_overrides_what_a_record_says() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.__dict__["user_id"] = "explicit"
    token = current_user_id.set("ambient")
    try:
        ContextFilter().filter(record)
    finally:
        current_user_id.reset(token)
    assert record.__dict__["user_id"] == "explicit"
    assert json.loads(JsonFormatter().format(record))["user_id"] == "explicit"


# ---------------------------------------------------------------- settings


def test_log_format_and_metrics_defaults() -> None:
    settings = Settings.from_env({})
    assert (settings.log_format, settings.metrics) == ("text", True)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("off", False), ("OFF", False), ("false", False), ("on", True), ("1", True)],
)
def test_metrics_switch(raw: str, expected: bool) -> None:
    assert Settings.from_env({"SIMUTRADOR_METRICS": raw}).metrics is expected


def test_log_format_is_read_case_insensitively() -> None:
    assert Settings.from_env({"SIMUTRADOR_LOG_FORMAT": "JSON"}).log_format == "json"


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("SIMUTRADOR_METRICS", "maybe", "on or off"),
        ("SIMUTRADOR_LOG_FORMAT", "xml", "text (readable lines) or json"),
    ],
)
def test_bad_values_say_what_is_allowed(name: str, value: str, allowed: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value).startswith(f"{name}=")
    assert allowed in str(caught.value)
