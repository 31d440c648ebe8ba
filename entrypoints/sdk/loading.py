"""Load a `Strategy` subclass from a Python file, as `simutrador run FILE.py` does."""

from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
from pathlib import Path

from entrypoints.sdk.errors import SimuTradorError
from entrypoints.sdk.strategy import Strategy


class StrategyLoadError(SimuTradorError):
    code = "BAD_STRATEGY_FILE"


def load_strategy(path: Path | str, class_name: str | None = None) -> type[Strategy]:
    """The `Strategy` subclass defined in `path`: the one named `class_name`, or the only
    one the file defines. Errors (missing file, syntax, none or several) are typed."""
    path = Path(path)
    if not path.is_file():
        raise StrategyLoadError(f"{path}: no such file")
    module_name = f"simutrador_strategy_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise StrategyLoadError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    sys.path.insert(0, str(path.parent.resolve()))  # so the file can import its neighbours
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise StrategyLoadError(
            f"{path}:{exc.lineno}: syntax error: {exc.msg}", details={"line": exc.lineno}
        ) from None
    except Exception as exc:  # a failing import, or any error at the file's top level
        line = _line_in(exc, path)
        where = f"{path}:{line}" if line is not None else str(path)
        raise StrategyLoadError(
            f"{where}: {type(exc).__name__}: {exc}", details={"line": line}
        ) from None
    finally:
        sys.path.pop(0)
    defined = [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, Strategy)
        and value is not Strategy
        and value.__module__ == module_name
    ]
    if class_name is not None:
        for candidate in defined:
            if candidate.__name__ == class_name:
                return candidate
        raise StrategyLoadError(
            f"{path} defines no Strategy subclass named {class_name!r}"
            + (f" (it has {', '.join(c.__name__ for c in defined)})" if defined else "")
        )
    if len(defined) != 1:
        names = ", ".join(c.__name__ for c in defined)
        raise StrategyLoadError(
            f"{path} defines {len(defined)} Strategy subclasses"
            + (f" ({names}); pick one with --strategy" if defined else "")
        )
    return defined[0]


def _line_in(exc: BaseException, path: Path) -> int | None:
    """The line of `path` the error went through last (where the file called what failed)."""
    target = str(path.resolve())
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == target:
            line = frame.lineno
    return line
