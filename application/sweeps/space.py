"""The search space: each parameter's candidate values (from `5,10,20` or `5..50:5`), the
constraint that filters combinations, and the grid and seeded random draws over it."""

from __future__ import annotations

import ast
import itertools
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from application.sweeps.model import InvalidSweep, Params, ParamValue

MAX_RANGE_VALUES = 100_000
Constraint = Callable[[Params], bool]
_SAFE_BUILTINS: Mapping[str, Any] = {
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
    "len": len,
    "int": int,
    "float": float,
    "str": str,
    "True": True,
    "False": False,
    "None": None,
}


def parse_value(text: str) -> ParamValue:
    """An int, else an exact decimal, else the text itself."""
    text = text.strip()
    for parse in (int, Decimal):
        try:
            value = parse(text)
        except (ValueError, InvalidOperation):
            continue
        if isinstance(value, Decimal) and not value.is_finite():
            break
        return value
    return text


def parse_spec(name: str, spec: str) -> tuple[ParamValue, ...]:
    """`5,10,20` (numbers or strings) or `5..50:5` (inclusive of both ends; step 1 when
    omitted): the candidate values of one parameter, in the order given."""
    spec = spec.strip()
    if ".." in spec and "," not in spec:
        return _parse_range(name, spec)
    values = tuple(parse_value(part) for part in spec.split(",") if part.strip())
    if not values:
        raise InvalidSweep(f"--param {name}: no values in {spec!r}", {"param": name})
    if len(set(values)) != len(values):
        raise InvalidSweep(f"--param {name}: a value appears twice in {spec!r}", {"param": name})
    return values


def _parse_range(name: str, spec: str) -> tuple[ParamValue, ...]:
    bounds, _, step_text = spec.partition(":")
    low_text, _, high_text = bounds.partition("..")
    parts = [parse_value(t) for t in (low_text, high_text, step_text or "1")]
    if not all(isinstance(p, int | Decimal) for p in parts):
        raise InvalidSweep(
            f"--param {name}: a range is LOW..HIGH[:STEP] of numbers, not {spec!r}",
            {"param": name},
        )
    low, high, step = (Decimal(p) for p in parts)
    if step <= 0:
        raise InvalidSweep(f"--param {name}: the step of {spec!r} must be positive")
    if high < low:
        raise InvalidSweep(f"--param {name}: {spec!r} ends before it starts")
    count = int((high - low) / step) + 1
    if count > MAX_RANGE_VALUES:
        raise InvalidSweep(f"--param {name}: {spec!r} has {count:,} values, too many")
    integral = all(isinstance(p, int) for p in parts)
    values = [low + i * step for i in range(count)]
    return tuple(int(v) if integral else v for v in values)


def values_of(name: str, candidates: Iterable[Any] | str) -> tuple[ParamValue, ...]:
    """The SDK's form: a SPEC string, or any iterable of values (`range(5, 51, 5)`)."""
    if isinstance(candidates, str):
        return parse_spec(name, candidates)
    values: list[ParamValue] = []
    for value in candidates:
        if isinstance(value, bool) or not isinstance(value, int | Decimal | str | float):
            raise InvalidSweep(f"param {name}: {value!r} is not a number or a string")
        values.append(Decimal(repr(value)) if isinstance(value, float) else value)
    if not values:
        raise InvalidSweep(f"param {name}: no values", {"param": name})
    return tuple(values)


class ParamView(dict[str, ParamValue]):
    """The parameters a constraint sees: `p["fast"]` or `p.fast`."""

    def __getattr__(self, name: str) -> ParamValue:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def compile_constraint(expression: str, names: Sequence[str]) -> Constraint:
    """A Python expression over the parameter names (`fast < slow`) as a predicate; an
    unknown name or a syntax error is an `InvalidSweep` before anything runs."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise InvalidSweep(f"--constraint {expression!r}: {exc.msg}") from None
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    unknown = sorted(used - set(names) - set(_SAFE_BUILTINS))
    if unknown:
        raise InvalidSweep(
            f"--constraint {expression!r}: unknown name(s) {', '.join(unknown)}; "
            f"the parameters are {', '.join(names)}",
            {"unknown": unknown},
        )
    if any(
        isinstance(node, ast.Attribute) and node.attr.startswith("_") for node in ast.walk(tree)
    ):
        raise InvalidSweep(f"--constraint {expression!r}: private attributes are not allowed")
    code = compile(tree, "<constraint>", "eval")
    scope = {"__builtins__": _SAFE_BUILTINS}

    def check(params: Params) -> bool:
        return bool(eval(code, scope, dict(params)))  # names vetted above

    return check


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """Each parameter's candidates (in the order given) and an optional constraint."""

    params: Mapping[str, tuple[ParamValue, ...]]
    constraint: Constraint | None = None

    def __post_init__(self) -> None:
        if not self.params:
            raise InvalidSweep("no parameter to sweep: give at least one --param NAME=SPEC")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.params)

    def allows(self, params: Params) -> bool:
        if self.constraint is None:
            return True
        try:
            return self.constraint(ParamView(params))
        except Exception as exc:
            raise InvalidSweep(f"the constraint failed on {dict(params)}: {exc}") from None

    def size(self) -> int:
        total = 1
        for values in self.params.values():
            total *= len(values)
        return total

    def grid(self) -> list[dict[str, ParamValue]]:
        """Every combination that passes the constraint, the last parameter varying fastest."""
        combos = (
            dict(zip(self.names, combo, strict=True))
            for combo in itertools.product(*self.params.values())
        )
        chosen = [combo for combo in combos if self.allows(combo)]
        if not chosen:
            raise InvalidSweep(
                f"the constraint removes all {self.size():,} combinations: nothing to run"
            )
        return chosen

    def sample(self, count: int, seed: int | None) -> list[dict[str, ParamValue]]:
        """`count` distinct combinations passing the constraint, drawn without replacement
        (all of them when fewer exist), in draw order; the same seed draws the same."""
        grid = self.grid()
        if count >= len(grid):
            return grid
        return random.Random(seed).sample(grid, count)
