"""``author verify``: prove a lesson's suites are real teaching instruments.

For one lesson: every test passes on the reference; every test fails on fresh
stubs; every known mistake (``mistakes.py``) is caught by at least one test;
and the lesson's data agrees with the reference (targets exist, have
docstrings and ``# Step`` comments).
"""

from __future__ import annotations

import ast
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import LessonSpec
from .mistakes import MistakeFileError, load_mistakes
from .paths import reference_dir
from .runner import run_suite
from .stubgen import StubError, find_symbol, orphan_continuations, replace_symbol, stub_source
from .targets import PACKAGE

TIERS = ["basic", "advanced"]


@dataclass
class Verification:
    lesson: LessonSpec
    reference_passed: int = 0
    reference_total: int = 0
    stubs_failed: int = 0
    stubs_total: int = 0
    mistakes_caught: int = 0
    mistakes_total: int = 0
    problems: list[str] = field(default_factory=list)
    mistake_lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (not self.problems and self.reference_total > 0
                and self.reference_passed == self.reference_total
                and self.stubs_failed == self.stubs_total
                and self.mistakes_caught == self.mistakes_total)


def check_targets(lesson: LessonSpec) -> list[str]:
    """Targets must exist in the reference and stub cleanly (docstring + step comments)."""
    problems = []
    for target in lesson.targets:
        file = reference_dir() / target.file
        if not file.is_file():
            problems.append(f"{target.file}: not in the reference library")
            continue
        source = file.read_text(encoding="utf-8")
        try:
            stubbed = stub_source(source, target.symbols, lesson.short_id)
        except StubError as exc:
            problems.append(f"{target.file}: {exc}")
            continue
        for place in orphan_continuations(source, target.symbols):
            problems.append(f"{target.file}:{place}: a step comment continues after code and would be "
                            "dropped from the stub; move it up into its '# Step' block")
        tree = ast.parse(stubbed)
        for symbol in target.symbols:
            node = find_symbol(tree, symbol)
            segment = ast.get_source_segment(stubbed, node) or ""
            if "# Step" not in segment:
                problems.append(f"{target.file}:{symbol} has no '# Step' comments for the stub")
    return problems


def verify_lesson(lesson: LessonSpec, lang: str = "en") -> Verification:
    result = Verification(lesson)
    result.problems.extend(check_targets(lesson))
    if result.problems:
        return result

    reference = run_suite(lesson, TIERS, "reference", lang=lang)
    result.reference_total = len(reference.tests)
    result.reference_passed = reference.passed
    for test in reference.tests:
        if not test.ok:
            result.problems.append(f"fails on the reference: {test.test_id}: {test.message.splitlines()[0] if test.message else ''}")
    result.problems.extend(f"collection error: {e.splitlines()[-1]}" for e in reference.collection_errors)
    for test in reference.tests:
        if test.symbol is None:
            result.problems.append(f"{test.test_id}: no @pytest.mark.symbol(...) marker")
        elif test.symbol not in lesson.symbols:
            result.problems.append(f"{test.test_id}: symbol '{test.symbol}' is not a target")

    stubs = run_suite(lesson, TIERS, "stubs", lang=lang)
    result.stubs_total = len(stubs.tests)
    result.stubs_failed = sum(not test.ok for test in stubs.tests)
    for test in stubs.tests:
        if test.ok:
            result.problems.append(f"passes on fresh stubs (vacuous): {test.test_id}")

    try:
        mistakes = load_mistakes(lesson.folder)
    except MistakeFileError as exc:
        result.problems.append(str(exc))
        return result
    result.mistakes_total = len(mistakes)
    with tempfile.TemporaryDirectory(prefix="llm-course-mistake-") as tmp:
        package = Path(tmp) / PACKAGE
        shutil.copytree(reference_dir(), package, ignore=shutil.ignore_patterns("__pycache__"))
        for wrong in mistakes:
            module = package / wrong.file
            original = module.read_text(encoding="utf-8")
            try:
                module.write_text(replace_symbol(original, wrong.symbol, wrong.source), encoding="utf-8")
                run = run_suite(lesson, TIERS, str(package), lang=lang, exitfirst=True)
            finally:
                module.write_text(original, encoding="utf-8")
            failure = run.first_failure()
            if failure is not None or run.collection_errors:
                result.mistakes_caught += 1
                caught_by = failure.test_id if failure else "collection"
                result.mistake_lines.append(f"caught  {wrong.id} ({wrong.why}) by {caught_by}")
            else:
                result.problems.append(f"mistake not caught: {wrong.id} ({wrong.why})")
                result.mistake_lines.append(f"MISSED  {wrong.id} ({wrong.why})")
    return result
