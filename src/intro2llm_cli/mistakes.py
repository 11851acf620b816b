"""Known learner mistakes, as data for ``author verify``.

A lesson's ``mistakes.py`` holds wrong implementations that learners really
write, each marked with ``@mistake(file, symbol, why)``::

    @mistake("model/norm.py", "RMSNorm.forward", "eps added outside the square root")
    def rmsnorm_eps_outside(self, x):
        ...

A mistake that changes a line or two of a long function is better written as
a patch of the reference, so the file shows just the bug::

    train_lr_after_step = patched(
        "training/trainer.py", "Trainer.train", "lr logged after scheduler.step()",
        replace=[("lr = self.optimizer.param_groups[0][\"lr\"]\n            grad_norm = self.optimizer_step()",
                  "grad_norm = self.optimizer_step()\n            lr = self.optimizer.param_groups[0][\"lr\"]")])

Each ``old`` text must occur exactly once in the reference definition.

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


@dataclass(frozen=True)
class Patch:
    """A wrong version of ``symbol`` written as text replacements of the reference definition."""

    file: str
    symbol: str
    why: str
    replace: tuple[tuple[str, str], ...]

    def source(self, name: str) -> str:
        """The reference definition of ``symbol`` with every replacement applied."""
        from .paths import reference_dir
        from .stubgen import symbol_source

        text = symbol_source((reference_dir() / self.file).read_text(encoding="utf-8"), self.symbol)
        for old, new in self.replace:
            count = text.count(old)
            if count != 1:
                raise MistakeFileError(f"mistake {name}: {old!r} occurs {count} times in the reference "
                                       f"{self.symbol}; it must occur exactly once")
            text = text.replace(old, new)
        return text


def patched(file: str, symbol: str, why: str, *, replace: list[tuple[str, str]]) -> Patch:
    """Declare a mistake as ``(old, new)`` replacements in the reference ``symbol`` of ``file``."""
    return Patch(file, symbol, why, tuple((old, new) for old, new in replace))


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
    for name, value in vars(module).items():
        marked = getattr(value, "__mistake__", None)
        if marked and inspect.isfunction(value):
            file, symbol, why = marked
            found.append(Mistake(name, file, symbol, why, inspect.getsource(value)))
        elif isinstance(value, Patch):
            found.append(Mistake(name, value.file, value.symbol, value.why, value.source(name)))
    return found
