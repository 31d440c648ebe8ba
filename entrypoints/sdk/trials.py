"""The trial runners a sweep's executors call: one backtest of the user's strategy with one
set of parameters, in whatever process runs it. Picklable: they carry a reference to the
strategy (module or file), the run's settings and, for local runs, the bars themselves, so
a worker reads no bar store and prepares everything once, not once per trial."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib
import inspect
import textwrap
import threading
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from application.sweeps.bars import BarSnapshot
from application.sweeps.model import InvalidSweep, Trial, TrialOutcome, TrialStatus, failed
from application.sweeps.ports import TrialDeferred
from entrypoints.protocol.messages import MetricsData
from entrypoints.sdk.backtest import BacktestResults, drive
from entrypoints.sdk.driver import EngineSettingValue, session_request
from entrypoints.sdk.loading import load_strategy
from entrypoints.sdk.strategy import Strategy

FILE_MODULE_PREFIX = "simutrador_strategy_"


def metric_names() -> tuple[str, ...]:
    """Every metric a run reports (read from the wire type, so new ones come along)."""
    return tuple(f.name for f in msgspec.structs.fields(MetricsData))


@dataclass(frozen=True, slots=True)
class StrategyRef:
    """How another process finds the strategy class: by module when it is importable,
    else by the file it was defined in (a strategy file, a script's `__main__`)."""

    name: str
    module: str | None = None
    file: str | None = None

    @classmethod
    def of(cls, strategy: type[Strategy]) -> StrategyRef:
        if "<locals>" in strategy.__qualname__:
            raise InvalidSweep(
                f"{strategy.__qualname__} is defined inside a function: the worker processes "
                "cannot find it; define it at the top level of a module or file"
            )
        module = strategy.__module__
        if module != "__main__" and not module.startswith(FILE_MODULE_PREFIX):
            return cls(strategy.__qualname__, module=module)
        return cls(strategy.__qualname__, file=inspect.getfile(strategy))

    def load(self) -> type[Strategy]:
        if self.module is not None:
            found: Any = importlib.import_module(self.module)
            for part in self.name.split("."):
                found = getattr(found, part)
            if not (inspect.isclass(found) and issubclass(found, Strategy)):
                raise TypeError(f"{self.module}.{self.name} is not a Strategy subclass")
            return found
        assert self.file is not None
        return load_strategy(self.file, self.name)


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What every trial of a sweep shares: the universe, range, cash and engine settings."""

    symbols: tuple[str, ...]
    start: str
    end: str
    capital: Decimal
    timeframe: str = "1d"
    warmup_bars: int = 0
    engine_settings: Mapping[str, EngineSettingValue] = field(default_factory=dict)


def outcome_of(trial: Trial, results: BacktestResults) -> TrialOutcome:
    return TrialOutcome(
        trial.number,
        trial.params,
        TrialStatus.COMPLETED,
        msgspec.structs.asdict(results.metrics),
        tuple(results.equity_curve),
    )


def failure_of(trial: Trial, exc: BaseException, strategy_file: str | None) -> TrialOutcome:
    """The error as `file:line: Type: message`, at the deepest line of the strategy file
    (else the deepest line of all)."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if strategy_file is not None and f.filename == strategy_file]
    where = (mine or frames)[-1] if frames else None
    place = f"{where.filename}:{where.lineno}: " if where is not None else ""
    return failed(trial, f"{place}{type(exc).__name__}: {exc}")


class _Prepared:
    """A worker's setup, made on its first trial: the strategy class and an event loop."""

    def __init__(self, strategy: type[Strategy]) -> None:
        self.strategy = strategy
        self.file = inspect.getsourcefile(strategy)
        self.loop = asyncio.new_event_loop()
        self.container: Any = None


class _Runner:
    """The shared part: a per-process (per-thread) setup, dropped when pickled."""

    def __init__(self, strategy: StrategyRef, spec: RunSpec) -> None:
        self.strategy = strategy
        self.spec = spec
        self._local = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_local"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def prepared(self) -> _Prepared:
        held: _Prepared | None = getattr(self._local, "prepared", None)
        if held is None:
            held = self._local.prepared = self._prepare()
        return held

    def _prepare(self) -> _Prepared:
        return _Prepared(self.strategy.load())

    def window(self, trial: Trial) -> tuple[str, str]:
        if trial.window is not None:
            return trial.window.start, trial.window.end
        return self.spec.start, self.spec.end


class LocalTrialRunner(_Runner):
    """Runs a trial with the engine in this process, on the bars it carries."""

    def __init__(
        self, strategy: StrategyRef, spec: RunSpec, environ: Mapping[str, str], bars: BarSnapshot
    ) -> None:
        super().__init__(strategy, spec)
        self.environ = dict(environ)
        """The SIMUTRADOR_* variables of the process that planned the sweep."""
        self.bars = bars
        """The bars of the sweep's symbols."""

    def __call__(self, trial: Trial) -> TrialOutcome:
        from entrypoints.container import sweep_worker_container
        from entrypoints.sdk.local import run_in_process

        prepared = self.prepared()
        if prepared.container is None:  # the worker's: its bars, its catalog, every trial
            prepared.container = sweep_worker_container(self.environ, self.bars)
        spec = self.spec
        start, end = self.window(trial)
        request = session_request(
            list(spec.symbols), start, end, spec.capital, spec.timeframe, spec.engine_settings
        )
        try:
            results = run_in_process(
                prepared.strategy(),
                request,
                params=dict(trial.params),
                warmup_bars=spec.warmup_bars,
                container=prepared.container,
            )
        except Exception as exc:
            return failure_of(trial, exc, prepared.file)
        return outcome_of(trial, results)


class RemoteTrialRunner(_Runner):
    """Runs a trial as a session on a server (the strategy here, only orders travel); the
    server's limits (running simulations, sessions per hour) defer the trial, not fail it."""

    def __init__(self, strategy: StrategyRef, spec: RunSpec, server_url: str, token: Any) -> None:
        super().__init__(strategy, spec)
        self.server_url = server_url
        self.token = token
        """`entrypoints.sdk.auth.Token`, got once by the process that planned the sweep."""

    def __call__(self, trial: Trial) -> TrialOutcome:
        from entrypoints.sdk.auth import AuthClient
        from entrypoints.sdk.errors import (
            RateLimitExceededError,
            SessionLimitExceededError,
            TooManyConnectionsError,
        )
        from entrypoints.sdk.remote import RemoteDriver

        prepared = self.prepared()
        spec = self.spec
        start, end = self.window(trial)
        auth = AuthClient(self.server_url, token=self.token, use_cached_login=False)
        driver = RemoteDriver(
            auth,
            list(spec.symbols),
            start,
            end,
            spec.capital,
            spec.timeframe,
            warmup_bars=spec.warmup_bars,
            engine_settings=spec.engine_settings,
        )

        async def run() -> BacktestResults:
            try:
                return await drive(prepared.strategy(), driver, params=trial.params)
            finally:
                session_id = driver._session_id  # created by start(), even if it failed after
                if session_id and driver.client.connected:
                    with contextlib.suppress(Exception):  # else it expires on its own
                        await driver.client.delete_session(session_id)
                await driver.close()

        try:
            return outcome_of(trial, prepared.loop.run_until_complete(run()))
        except (SessionLimitExceededError, RateLimitExceededError, TooManyConnectionsError) as exc:
            retry_ms = getattr(exc, "retry_after_ms", None)
            raise TrialDeferred(str(exc), (retry_ms or 250) / 1000) from None
        except Exception as exc:
            return failure_of(trial, exc, prepared.file)


def read_params(strategy: type[Strategy]) -> frozenset[str] | None:
    """The parameter names a strategy's source reads (`ctx.params.get("fast", 10)`,
    `ctx.params["slow"]`), or None when it uses `params` in a way that cannot be read off
    (iterating it, passing it on) or its source is not available."""
    names: set[str] = set()
    for cls in strategy.__mro__:
        if cls in (Strategy, object):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError, SyntaxError):
            return None
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and node.attr == "params"):
                continue
            parent = parents.get(node)
            key: ast.expr | None = None
            if isinstance(parent, ast.Subscript) and parent.value is node:
                key = parent.slice
            elif isinstance(parent, ast.Attribute) and parent.attr == "get":
                call = parents.get(parent)
                if isinstance(call, ast.Call) and call.func is parent and call.args:
                    key = call.args[0]
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                return None
            names.add(key.value)
    return frozenset(names)
