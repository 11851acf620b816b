"""In-process pytest over a lesson's tier files.

torch and the lesson's other imports stay loaded between runs (watch mode
re-runs in milliseconds); every ``my_llm`` module and every lesson test module
is dropped before a run so that edits are seen.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import targets
from ..catalog import LessonSpec
from ..errors import CourseError
from .plugin import ResultCollector
from .results import SuiteResult, TestResult

TIERS = ("basic", "advanced")
DEFAULT_TIMEOUT = 30


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _forget_test_modules(lessons_root: Path) -> None:
    root = str(lessons_root)
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None) or ""
        if file.startswith(root) and not file.endswith("conftest.py"):
            del sys.modules[name]


def run_suite(
    lesson: LessonSpec,
    tiers: list[str] | tuple[str, ...],
    target: str,
    *,
    lang: str = "zh",
    exitfirst: bool = False,
    timeout: int = DEFAULT_TIMEOUT,
    keyword: str | None = None,
) -> SuiteResult:
    """Run the lesson's tier files against ``target`` (see ``targets``) and collect results."""
    import pytest

    files = []
    for tier in tiers:
        if tier not in TIERS:
            raise CourseError("check.bad_tier", tier=tier, choices=", ".join(TIERS))
        file = lesson.tests_dir() / f"{tier}_test.py"
        if not file.is_file():
            raise CourseError("lesson.no_tests", lesson=lesson.id, file=str(file))
        files.append(str(file))

    lessons_root = lesson.folder.parent
    try:
        target_root = targets.package_root(target, lesson.id)
    except ValueError as exc:
        raise CourseError("target.bad", detail=str(exc)) from exc
    collector = ResultCollector(lesson.folder, target_root, lang)
    args = [
        *files, "-q", "-p", "no:cacheprovider", "--import-mode=importlib",
        # Failure details come from the plugin; pytest's own long reprs re-parse big test
        # files for every failure (seconds on a suite of stubs).
        "--tb=no",
        "--rootdir", str(lessons_root), "-c", str(lessons_root / "pytest.ini"),
        "--timeout", str(timeout), "-W", "ignore::DeprecationWarning",
    ]
    if exitfirst:
        args.append("-x")
    if keyword:
        args += ["-k", keyword]

    targets.reset()
    _forget_test_modules(lessons_root)
    started = time.perf_counter()
    # pytest's own terminal report is not shown (the views render the results),
    # but its reporter stays loaded: pytest-timeout writes through it.
    with _environment(**{targets.TARGET_ENV: target, "LLM_COURSE_LANG": lang}), \
            contextlib.redirect_stdout(io.StringIO()) as report:
        code = pytest.main(args, plugins=[collector])
    elapsed = time.perf_counter() - started
    targets.reset()
    if int(code) in (3, 4):  # internal error / usage error: a bug in the lesson or the tool
        detail = "; ".join(collector.collection_errors) or report.getvalue().strip()
        raise CourseError("runner.pytest_failed", code=int(code), lesson=lesson.id, detail=detail[-500:])
    tests: list[TestResult] = list(collector.results.values())
    for test in tests:
        test.test_id = test.test_id.removeprefix(f"{lesson.id}/")
    return SuiteResult(lesson=lesson.id, tiers=list(tiers), target=target, tests=tests,
                       collection_errors=collector.collection_errors, seconds=elapsed)
