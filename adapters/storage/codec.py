"""How stored records are encoded, whatever the store (SQLite, Redis): msgspec JSON of the
domain and application dataclasses (JSON, not msgpack: session metadata may hold integers
of any size). A record that cannot be read is a `StorageError`, never a half-read value."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from application.simulation import Checkpoint, CompletedRun, SimulationInput
from domain.session import SimulationSession


class StorageError(Exception):
    """The stored data cannot be used: another program's, another version's, or damaged."""


class _Times(msgspec.Struct):
    """The two fields `SimulationSession.__post_init__` recomputes on decoding."""

    updated_at: datetime
    expires_at: datetime


_session_encoder = msgspec.json.Encoder()
_session_decoder = msgspec.json.Decoder(SimulationSession)
_times_decoder = msgspec.json.Decoder(_Times)


def encode_session(session: SimulationSession) -> bytes:
    return _session_encoder.encode(session)


def decode_session(data: bytes) -> SimulationSession:
    try:
        session = _session_decoder.decode(data)
        times = _times_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise StorageError(f"a stored session cannot be read ({exc})") from None
    session.updated_at = times.updated_at
    session.expires_at = times.expires_at
    return session


_encoder = msgspec.json.Encoder()
_input_decoder = msgspec.json.Decoder(SimulationInput)
_checkpoint_decoder = msgspec.json.Decoder(Checkpoint)
_completed_decoder = msgspec.json.Decoder(CompletedRun)


def encode_record(record: SimulationInput | Checkpoint | CompletedRun) -> bytes:
    return _encoder.encode(record)


def _decode(decoder: msgspec.json.Decoder[Any], data: bytes, what: str) -> Any:
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise StorageError(f"a stored {what} cannot be read ({exc})") from None


def decode_input(data: bytes) -> SimulationInput:
    entry: SimulationInput = _decode(_input_decoder, data, "journal entry")
    return entry


def decode_checkpoint(data: bytes) -> Checkpoint:
    checkpoint: Checkpoint = _decode(_checkpoint_decoder, data, "checkpoint")
    return checkpoint


def decode_completed(data: bytes) -> CompletedRun:
    completed: CompletedRun = _decode(_completed_decoder, data, "result")
    return completed


_compact_encoder = msgspec.msgpack.Encoder()
_compact_completed_decoder = msgspec.msgpack.Decoder(CompletedRun)
COMPACT_LEVEL = 6
"""zlib level: results are written once and read rarely; 6 is most of level 9's gain."""


def encode_completed_compact(run: CompletedRun) -> bytes:
    """Results as msgpack, deflated: about a tenth of their JSON and a fraction of a
    percent of the objects (for results kept in memory). Nothing in them is an integer
    beyond msgpack's range: no session metadata."""
    return zlib.compress(_compact_encoder.encode(run), COMPACT_LEVEL)


def decode_completed_compact(data: bytes) -> CompletedRun:
    try:
        raw = zlib.decompress(data)
    except zlib.error as exc:
        raise StorageError(f"a stored result cannot be read ({exc})") from None
    try:
        run: CompletedRun = _compact_completed_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise StorageError(f"a stored result cannot be read ({exc})") from None
    return run


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
TENTH = timedelta(microseconds=10)
"""`timeout // TENTH`: a tenth of `timeout`, in microseconds."""


def micros(at: datetime) -> int:
    """`at` in whole microseconds since the epoch."""
    return (at - EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)
