"""What every frame of the protocol shares: the `type` tag and `request_id` (`Frame`), the
server's `timestamp` (`ServerFrame`), the `Envelope` read when a full decode fails, and the
protocol-wide numbers (the version, the largest `ticks` window)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from msgspec import Struct

PROTOCOL_VERSION = 2
MAX_WINDOW = 4096
"""Most bars one `ticks` window may hold (§7.14); a frame may hold fewer."""


class Frame(Struct, tag_field="type", kw_only=True, omit_defaults=False):
    """A frame: `{"type": ..., "data": {...}, "request_id": ...}`."""

    request_id: str | None = None


class ServerFrame(Frame, kw_only=True):
    """A frame the server sends: with the `timestamp` it was sent at."""

    timestamp: datetime


class Envelope(Struct):
    """Just enough of a frame to classify it when the full decode fails."""

    type: Any = None
    request_id: Any = None
