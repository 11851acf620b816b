"""Known learner mistakes, as data for ``author verify``.

A lesson's ``mistakes.py`` holds wrong implementations that learners really
write, each marked with ``@mistake(file, symbol, why)``::

    @mistake("model/norm.py", "RMSNorm.forward", "eps added outside the square root")
    def rmsnorm_eps_outside(self, x):
        ...

``author verify`` splices each function into a copy of the reference in place
of ``symbol`` (renamed, re-indented; names resolve in the target module, as
they would in the learner's file) and runs the lesson's suites: a mistake no
test fails on is a hole in the suite.
"""

from __future__ import annotations

import importlib.util
import inspect
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

F = TypeVar("F", bound=Callable)


class MistakeFileError(ValueError):
    """A lesson's mistakes.py could not be loaded (an author error)."""


@dataclass(frozen=True)
class Mistake:
    id: str
    file: str
    symbol: str
    why: str
    source: str


def mistake(file: str, symbol: str, why: str) -> Callable[[F], F]:
    """Mark a function as a wrong version of ``symbol`` in module ``file``."""

    def mark(function: F) -> F:
        function.__mistake__ = (file, symbol, why)  # type: ignore[attr-defined]
        return function

    return mark


def load_mistakes(lesson_folder: Path) -> list[Mistake]:
    """The mistakes declared in ``<lesson>/mistakes.py``, in file order (empty if none)."""
    path = lesson_folder / "mistakes.py"
    if not path.is_file():
        return []
    spec = importlib.util.spec_from_file_location(f"_llm_course_mistakes_{lesson_folder.name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # an author error: report it as one line, naming the place
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{path}:{frame.lineno}" if frame.filename == str(path) else str(path)
        raise MistakeFileError(f"{where}: {type(exc).__name__}: {exc}") from exc
    found = []
    for name, function in vars(module).items():
        marked = getattr(function, "__mistake__", None)
        if marked and inspect.isfunction(function):
            file, symbol, why = marked
            found.append(Mistake(name, file, symbol, why, inspect.getsource(function)))
    return found
