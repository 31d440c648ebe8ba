"""One typed settings object, read from `SIMUTRADOR_*` environment variables."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any

from adapters.catalog.yaml_catalog import DEFAULT_CATALOG
from domain.limits import PLAN_DEFAULTS, Limits, Plan, SessionPolicy

PREFIX = "SIMUTRADOR_"


class SettingsError(Exception):
    """An environment variable could not be read as the setting it names."""


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
    jwt_secret: str = ""
    token_ttl_seconds: int = 3600
    validation_cache_size: int = 4096
    validation_cache_ttl_seconds: float = 300.0
    log_level: str = "info"
    plan_limits: Mapping[Plan, Limits] = field(default_factory=lambda: PLAN_DEFAULTS)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "plan_limits":
                continue
            raw = env.get(PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _convert(PREFIX + f.name.upper(), raw, str(f.type))
        values["plan_limits"] = _plan_limits(env)
        return cls(**values)

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
    def bars_path(self) -> Path:
        return self.home / "bars.db"

    @property
    def user_catalog_path(self) -> Path:
        return self.home / "instruments.yaml"

    def limits(self, plan: Plan) -> Limits:
        return self.plan_limits[plan]


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
    except (ValueError, InvalidOperation):
        raise SettingsError(f"{name}={raw!r} is not a valid {type_name}") from None
    return raw


def _plan_limits(env: Mapping[str, str]) -> Mapping[Plan, Limits]:
    table: dict[Plan, Limits] = {}
    for plan, defaults in PLAN_DEFAULTS.items():
        overrides: dict[str, int] = {}
        for f in fields(Limits):
            name = f"{PREFIX}{plan.value.upper()}_{f.name.upper()}"
            raw = env.get(name)
            if raw:
                value = _convert(name, raw, "int")
                if value < 0:
                    raise SettingsError(f"{name} must not be negative")
                overrides[f.name] = value
        table[plan] = dataclasses.replace(defaults, **overrides)
    return MappingProxyType(table)
