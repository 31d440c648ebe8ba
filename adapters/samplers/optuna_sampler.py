"""The Bayesian sweep's sampler: Optuna's TPE over the search space, its study kept in an
SQLite file (when named) so an interrupted sweep resumes with what it had finished.

Each parameter becomes an integer distribution: evenly spaced integers as themselves,
any other list as the index of its value (numbers keep their order that way)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, IntDistribution
from optuna.trial import TrialState

from application.sweeps.model import Params, ParamValue, TrialOutcome, TrialStatus
from application.sweeps.ports import Suggestion
from application.sweeps.ranking import Objective
from application.sweeps.space import SearchSpace

_OUTCOME = "simutrador_outcome"


def _evenly_spaced_ints(values: tuple[ParamValue, ...]) -> bool:
    if len(values) < 2 or not all(type(v) is int for v in values):
        return False
    ints = [int(v) for v in values]
    step = ints[1] - ints[0]
    return step > 0 and all(b - a == step for a, b in itertools.pairwise(ints))


class _Axis:
    """One parameter: its Optuna distribution and the way back to the exact value."""

    def __init__(self, values: tuple[ParamValue, ...]) -> None:
        self.values = values
        self.direct = _evenly_spaced_ints(values)
        self.distribution: BaseDistribution
        if self.direct:
            ints = [int(v) for v in values]
            self.distribution = IntDistribution(ints[0], ints[-1], step=ints[1] - ints[0])
        else:
            self.distribution = IntDistribution(0, max(len(values) - 1, 0))

    def value(self, raw: Any) -> ParamValue:
        return int(raw) if self.direct else self.values[int(raw)]


class OptunaSampler:
    """`Sampler` over an Optuna study (in memory, or in `storage` when given)."""

    def __init__(
        self,
        space: SearchSpace,
        objective: Objective,
        *,
        seed: int | None = None,
        storage: Path | None = None,
        study_name: str = "sweep",
    ) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._axes = {name: _Axis(values) for name, values in space.params.items()}
        url = None
        if storage is not None:
            storage.parent.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{storage}"
        self._study = optuna.create_study(
            study_name=study_name,
            storage=url,
            sampler=optuna.samplers.TPESampler(seed=seed),
            direction="maximize" if objective.maximize else "minimize",
            load_if_exists=True,
        )
        self._asked: dict[int, optuna.trial.Trial] = {}

    def history(self) -> list[TrialOutcome]:
        outcomes = []
        for frozen in self._study.get_trials(deepcopy=False):
            stored = frozen.user_attrs.get(_OUTCOME)
            if frozen.state in (TrialState.COMPLETE, TrialState.FAIL) and stored is not None:
                outcomes.append(self._decode(stored))
        return outcomes

    def ask(self) -> Suggestion:
        trial = self._study.ask({name: axis.distribution for name, axis in self._axes.items()})
        self._asked[trial.number] = trial
        params = {name: axis.value(trial.params[name]) for name, axis in self._axes.items()}
        return Suggestion(trial.number, params)

    def tell(self, key: int, outcome: TrialOutcome, score: float | None) -> None:
        trial = self._asked.pop(key)
        if outcome.params == self._params_of(trial):  # not a repeat of a known trial
            trial.set_user_attr(_OUTCOME, self._encode(outcome))
        if score is None:
            self._study.tell(trial, state=TrialState.FAIL)
        else:
            self._study.tell(trial, score)

    def discard(self, key: int) -> None:
        self._study.tell(self._asked.pop(key), state=TrialState.PRUNED)

    def _params_of(self, trial: optuna.trial.Trial) -> dict[str, ParamValue]:
        return {name: axis.value(trial.params[name]) for name, axis in self._axes.items()}

    # A resumed trial keeps its number, params, status, metrics and error (not its curve).
    def _encode(self, outcome: TrialOutcome) -> str:
        return json.dumps(
            {
                "number": outcome.number,
                "params": {k: [type(v).__name__, str(v)] for k, v in outcome.params.items()},
                "status": outcome.status.value,
                "metrics": {k: _plain(v) for k, v in outcome.metrics.items()},
                "error": outcome.error,
                "attempts": outcome.attempts,
            }
        )

    def _decode(self, text: str) -> TrialOutcome:
        data = json.loads(text)
        params: Params = {k: _typed(kind, raw) for k, (kind, raw) in data["params"].items()}
        return TrialOutcome(
            data["number"],
            params,
            TrialStatus(data["status"]),
            {k: _number(v) for k, v in data["metrics"].items()},
            (),
            data["error"],
            data["attempts"],
        )


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def _number(value: Any) -> Any:
    """Metrics stored as text are exact decimals (money)."""
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            return value
    return value


def _typed(kind: str, raw: str) -> ParamValue:
    parsers: Mapping[str, Any] = {"int": int, "Decimal": Decimal}
    parse = parsers.get(kind)
    return parse(raw) if parse is not None else raw
