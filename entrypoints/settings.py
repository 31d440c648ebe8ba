"""One typed settings object, read from `SIMUTRADOR_*` environment variables."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any

from adapters.catalog.yaml_catalog import DEFAULT_CATALOG
from domain.limits import CAPITAL_CEILING, PLAN_DEFAULTS, Limits, Plan, SessionPolicy

PREFIX = "SIMUTRADOR_"


class SettingsError(Exception):
    """An environment variable could not be read as the setting it names. The message is one
    line naming the variable, the value and what is allowed."""


LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
MIN_JWT_SECRET_BYTES = 32
MAX_PORT = 65535
STORAGES = ("sqlite", "memory", "redis")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
LOG_FORMATS = ("text", "json")
_LOWERED = ("log_level", "log_format", "storage")
_TRUE = ("on", "true", "yes", "1")
_FALSE = ("off", "false", "no", "0")


def _default_home() -> Path:
    return Path.home() / ".simutrador"


@dataclass(frozen=True, slots=True)
class Settings:
    """Laptop defaults; every field can be set as SIMUTRADOR_<FIELD>, and each plan limit as
    SIMUTRADOR_<PLAN>_<LIMIT> (e.g. SIMUTRADOR_FREE_MAX_ACTIVE_SESSIONS=2)."""

    host: str = "127.0.0.1"
    port: int = 8000
    home: Path = field(default_factory=_default_home)
    catalog_path: Path = DEFAULT_CATALOG
    session_timeout_minutes: float = 60.0
    sweep_interval_seconds: float = 30.0
    min_capital: Decimal = Decimal("1000.00")
    max_capital: Decimal = Decimal("10000000.00")
    max_range_days: int = 20 * 366
    max_metadata_bytes: int = 4096
    max_message_bytes: int = 64 * 1024
    tick_timeout_seconds: float = 300.0
    storage: str = "sqlite"
    """Where sessions, limits and simulations live: `sqlite` (SIMUTRADOR_HOME/sessions.db,
    survives restarts), `memory` (nothing survives) or `redis` (shared by every server
    process on `redis_url`, with the API keys and the open connections)."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_lease_seconds: float = 10.0
    """How long a killed process's connections still count, and its running simulations
    wait before another process may take them up (a live one renews it every third)."""
    checkpoint_every_ticks: int = 500
    jwt_secret: str = ""
    token_ttl_seconds: int = 3600
    auth_recheck_seconds: float = 2.0
    idle_timeout_seconds: float = 600.0
    handshake_timeout_seconds: float = 10.0
    validation_cache_size: int = 4096
    validation_cache_ttl_seconds: float = 300.0
    log_level: str = "info"
    stooq_url: str = "https://stooq.com"
    """Where `simutrador data fetch --source stooq` downloads from."""
    yahoo_url: str = "https://query1.finance.yahoo.com"
    """Where `simutrador data fetch --source yahoo` downloads from."""
    log_format: str = "text"
    """`text` (one readable line per record) or `json` (one JSON object per line, with the
    user and session ids where they apply)."""
    metrics: bool = True
    """Serve Prometheus metrics at `GET /metrics` (SIMUTRADOR_METRICS=on|off)."""
    plan_limits: Mapping[Plan, Limits] = field(default_factory=lambda: PLAN_DEFAULTS)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "plan_limits":
                continue
            name = PREFIX + f.name.upper()
            raw = env.get(name)
            if raw is not None and raw != "":
                value = _convert(name, raw, str(f.type))
                _check(f.name, name, raw, value)
                values[f.name] = value.lower() if f.name in _LOWERED else value
        values["plan_limits"] = _plan_limits(env)
        settings = cls(**values)
        if settings.min_capital > settings.max_capital:
            raise SettingsError(
                f"{PREFIX}MIN_CAPITAL={str(settings.min_capital)!r} is refused: it must not be "
                f"above {PREFIX}MAX_CAPITAL ({settings.max_capital})"
            )
        return settings

    @property
    def session_policy(self) -> SessionPolicy:
        return SessionPolicy(
            min_capital=self.min_capital,
            max_capital=self.max_capital,
            max_range_days=self.max_range_days,
            max_metadata_bytes=self.max_metadata_bytes,
            session_timeout=timedelta(minutes=self.session_timeout_minutes),
        )

    @property
    def api_keys_path(self) -> Path:
        return self.home / "api_keys.json"

    @property
    def sessions_path(self) -> Path:
        return self.home / "sessions.db"

    @property
    def bars_path(self) -> Path:
        return self.home / "bars.db"

    @property
    def user_catalog_path(self) -> Path:
        return self.home / "instruments.yaml"

    def limits(self, plan: Plan) -> Limits:
        return self.plan_limits[plan]


_KINDS = {
    "int": "a whole number",
    "float": "a finite number",
    "Decimal": "a finite decimal number",
    "Path": "a path",
    "bool": "on or off",
}


def _convert(name: str, raw: str, type_name: str) -> Any:
    try:
        if type_name == "int":
            return int(raw)
        # NaN and infinity parse, but no setting means them (a NaN timeout or capital bound
        # would only fail later, inside a request), so they are refused here at start-up.
        if type_name == "float":
            number = float(raw)
            if not math.isfinite(number):
                raise ValueError(raw)
            return number
        if type_name == "Decimal":
            amount = Decimal(raw)
            if not amount.is_finite():
                raise ValueError(raw)
            return amount
        if type_name == "Path":
            return Path(raw).expanduser()
        if type_name == "bool":
            word = raw.strip().lower()
            if word in _TRUE or word in _FALSE:
                return word in _TRUE
            raise ValueError(raw)
    except (ValueError, InvalidOperation):
        raise SettingsError(
            f"{name}={raw!r} is not {_KINDS.get(type_name, 'valid')}"
            + (f" ({_RULES[_field_of(name)][1]})" if _field_of(name) in _RULES else "")
        ) from None
    return raw


def _field_of(name: str) -> str:
    return name.removeprefix(PREFIX).lower()


def _positive(value: Any) -> bool:
    return bool(value > 0)


def _http_url(value: Any) -> bool:
    return str(value).startswith(("http://", "https://"))


def _not_negative(value: Any) -> bool:
    return bool(value >= 0)


_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "port": (lambda v: 1 <= v <= MAX_PORT, f"allowed: a port from 1 to {MAX_PORT}"),
    "log_level": (lambda v: v.lower() in LOG_LEVELS, "allowed: " + ", ".join(LOG_LEVELS)),
    "log_format": (
        lambda v: v.lower() in LOG_FORMATS,
        "allowed: text (readable lines) or json (one JSON object per line)",
    ),
    "jwt_secret": (
        lambda v: len(v.encode()) >= MIN_JWT_SECRET_BYTES,
        f"it must be at least {MIN_JWT_SECRET_BYTES} bytes long; leave it unset to have one "
        "generated and kept in SIMUTRADOR_HOME",
    ),
    "home": (lambda v: not v.exists() or v.is_dir(), "it must be a directory"),
    "catalog_path": (lambda v: v.is_file(), "it must be an existing YAML file"),
    "session_timeout_minutes": (_positive, "allowed: a number above 0"),
    "sweep_interval_seconds": (_positive, "allowed: a number above 0"),
    "tick_timeout_seconds": (_positive, "allowed: a number above 0"),
    "storage": (
        lambda v: v.lower() in STORAGES,
        "allowed: sqlite (durable, the default), memory (nothing survives a restart) or "
        "redis (shared by several server processes; see SIMUTRADOR_REDIS_URL)",
    ),
    "redis_url": (
        lambda v: v.startswith(REDIS_SCHEMES),
        "allowed: redis://[:password@]host[:port][/db], rediss://… (TLS) or unix:///path",
    ),
    "stooq_url": (_http_url, "allowed: an http:// or https:// URL"),
    "yahoo_url": (_http_url, "allowed: an http:// or https:// URL"),
    "redis_lease_seconds": (_positive, "allowed: a number above 0"),
    "checkpoint_every_ticks": (_positive, "allowed: a whole number above 0"),
    "token_ttl_seconds": (_positive, "allowed: a whole number above 0"),
    "auth_recheck_seconds": (_positive, "allowed: a number above 0"),
    "idle_timeout_seconds": (_positive, "allowed: a number above 0"),
    "handshake_timeout_seconds": (_positive, "allowed: a number above 0"),
    "min_capital": (_not_negative, "allowed: an amount of 0 or more"),
    "max_capital": (
        lambda v: 0 < v <= CAPITAL_CEILING,
        "allowed: an amount above 0, at most 1,000,000,000,000,000 (money stays exact below it)",
    ),
    "max_range_days": (_positive, "allowed: a whole number above 0"),
    "max_metadata_bytes": (_positive, "allowed: a whole number above 0"),
    "max_message_bytes": (_positive, "allowed: a whole number above 0"),
    "validation_cache_size": (_not_negative, "allowed: a whole number, 0 or more"),
    "validation_cache_ttl_seconds": (_not_negative, "allowed: a number, 0 or more"),
}
"""Per setting: what a value must satisfy, and the words that say so."""


def _check(field_name: str, name: str, raw: str, value: Any) -> None:
    rule = _RULES.get(field_name)
    if rule is None or rule[0](value):
        return
    shown = "[hidden]" if field_name == "jwt_secret" else repr(raw)
    raise SettingsError(f"{name}={shown} is refused: {rule[1]}")


def _plan_limits(env: Mapping[str, str]) -> Mapping[Plan, Limits]:
    table: dict[Plan, Limits] = {}
    for plan, defaults in PLAN_DEFAULTS.items():
        overrides: dict[str, int] = {}
        for f in fields(Limits):
            name = f"{PREFIX}{plan.value.upper()}_{f.name.upper()}"
            raw = env.get(name)
            if raw:
                try:
                    value = int(raw)
                except ValueError:
                    value = -1
                if value < 0:
                    raise SettingsError(
                        f"{name}={raw!r} is refused: allowed: a whole number, 0 or more"
                    )
                overrides[f.name] = value
        table[plan] = dataclasses.replace(defaults, **overrides)
    return MappingProxyType(table)
