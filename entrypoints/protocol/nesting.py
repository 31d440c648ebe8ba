"""What to say about a frame nested too deeply for the JSON decoder (docs/protocol.md §5.3):
where the deep nesting is and the request_id, read without recursion by a token scanner.

Only frames the decoder gave up on come here, so the scan costs nothing on the usual path."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

PATH_LEVELS = 32
"""`details.path` names the deepest branch down to at most this many levels."""

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}:,]', re.DOTALL)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SHOWN_KEY = 64


@dataclass(frozen=True, slots=True)
class Nesting:
    depth: int
    """The deepest nesting of the frame (the top-level object is level 1)."""
    path: str
    """JSON path of the deepest branch's container at level PATH_LEVELS + 1, or of the
    deepest container when the frame is shallower."""
    request_id: str | None
    """The top-level `request_id`, when it is a string."""


@dataclass(slots=True)
class _Level:
    is_object: bool
    key: str | None = None
    index: int = 0
    expecting_key: bool = True

    def segment(self) -> str:
        if not self.is_object:
            return f"[{self.index}]"
        key = self.key or ""
        if len(key) > _SHOWN_KEY:  # a long key is cut, and then no longer a plain name
            return f"[{json.dumps(key[:_SHOWN_KEY] + '…')}]"
        return f".{key}" if _IDENTIFIER.match(key) else f"[{json.dumps(key)}]"


def scan(frame: str) -> Nesting:
    """Measure the nesting of `frame` (valid JSON or not, read as far as it goes)."""
    stack: list[_Level] = []
    deepest, deepest_path = 0, "$"
    candidate = "$"
    request_id: str | None = None
    for match in _TOKEN.finditer(frame):
        token = match.group()
        top = stack[-1] if stack else None
        if token in ("{", "["):
            if len(stack) == PATH_LEVELS:
                candidate = _path(stack)
            stack.append(_Level(is_object=token == "{"))
            if len(stack) > deepest:
                deepest = len(stack)
                deepest_path = candidate if deepest > PATH_LEVELS else _path(stack[:-1])
        elif token in ("}", "]"):
            if stack:
                stack.pop()
        elif token == ":":
            if top is not None and top.is_object:
                top.expecting_key = False
        elif token == ",":
            if top is not None:
                if top.is_object:
                    top.expecting_key = True
                else:
                    top.index += 1
        elif top is not None and top.is_object:  # a string
            if top.expecting_key:
                top.key = _string(token)
            elif len(stack) == 1 and top.key == "request_id":
                request_id = _string(token)
    return Nesting(deepest, deepest_path, request_id)


def _path(levels: list[_Level]) -> str:
    """The path of the value the innermost of `levels` is at (the root is `$`)."""
    return "$" + "".join(level.segment() for level in levels)


def _string(token: str) -> str | None:
    try:
        value = json.loads(token)
    except ValueError:
        return None
    return value if isinstance(value, str) else None
