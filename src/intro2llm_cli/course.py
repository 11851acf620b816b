"""The learner's actions: init, start, check, hint, status, reset, solution.

``Course`` ties the catalog, the progress store, the workspace and the runner
together and returns plain result objects; it never prints. The CLI commands
call one method each and hand the result to ``views``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .catalog import Catalog, Hint, LessonSpec
from .errors import CourseError
from .paths import find_home
from .progress import LastFailure, LessonState, Progress, ProgressStore, TierRecord, now

if TYPE_CHECKING:  # workspace (shutil, stubgen, ast) is imported only by commands that write files
    from .workspace import Workspace, WriteReport

LANGS = ("zh", "en")
STARTED = (LessonState.in_progress, LessonState.basic_passed, LessonState.completed)


@dataclass
class StartResult:
    lesson: LessonSpec
    workspace: Path
    report: WriteReport
    already_started: bool


@dataclass
class CheckResult:
    lesson: LessonSpec
    suites: list  # list[SuiteResult], one per tier run
    state: LessonState
    unlocked: list[LessonSpec] = field(default_factory=list)
    next_lesson: LessonSpec | None = None

    @property
    def ok(self) -> bool:
        return all(suite.ok for suite in self.suites)


@dataclass
class HintResult:
    lesson: LessonSpec
    hint: Hint | None
    seen: int
    total: int
    aimed_at: str | None


@dataclass
class LessonRow:
    lesson: LessonSpec
    state: LessonState | None  # None: not on the learner's path
    basic: TierRecord | None
    advanced: TierRecord | None
    hints_used: int


class Course:
    def __init__(self, home: str | os.PathLike[str] | None = None, lang: str | None = None) -> None:
        self.home = find_home(home)
        self.store = ProgressStore(self.home)
        self._lang = lang or os.environ.get("LLM_COURSE_LANG")
        if self._lang is not None and self._lang not in LANGS:
            raise CourseError("lang.unknown", given=self._lang)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog.load()

    @property
    def lang(self) -> str:
        if self._lang:
            return self._lang
        if self.store.exists():
            try:
                return self.store.load().lang
            except CourseError:
                return "zh"
        return "zh"

    def progress(self) -> Progress:
        return self.store.load()

    def workspace(self, progress: Progress | None = None) -> Workspace:
        from .workspace import Workspace

        progress = progress or self.progress()
        return Workspace((self.home / progress.workspace).resolve())

    # -- init ----------------------------------------------------------------

    def init(self, path: str = "full", lang: str = "zh", workspace: str | None = None) -> Progress:
        if lang not in LANGS:
            raise CourseError("lang.unknown", given=lang)
        if self.store.exists():
            raise CourseError("init.exists", file=str(self.store.file))
        ws_path = Path(workspace).expanduser() if workspace else Path("workspace")
        absolute = ws_path if ws_path.is_absolute() else self.home / ws_path
        try:
            stored = str(absolute.resolve().relative_to(self.home))
        except ValueError:
            stored = str(absolute.resolve())
        progress = Progress.new(self.catalog, path, lang, stored)
        from .workspace import Workspace

        Workspace(absolute.resolve()).create()
        self.store.create(progress)
        self._lang = self._lang or lang
        return progress

    # -- lesson selection --------------------------------------------------

    def resolve(self, text: str | None, progress: Progress) -> LessonSpec:
        """The lesson named by ``text``, else the current one, else the first open one."""
        if text:
            return self.catalog.resolve(text)
        if progress.current and progress.current in progress.lessons:
            return self.catalog.get(progress.current)
        for lesson in self.catalog.path_lessons(progress.path):
            if progress.state(lesson.id) in (LessonState.available, *STARTED[:2]):
                return lesson
        return self.catalog.path_lessons(progress.path)[0]

    def _require_unlocked(self, lesson: LessonSpec, progress: Progress) -> None:
        state = progress.state(lesson.id)
        if lesson.id not in progress.lessons:
            raise CourseError("lesson.not_on_path", lesson=lesson.short_id, path=progress.path)
        if state is LessonState.provided:
            raise CourseError("lesson.provided", lesson=lesson.short_id)
        if state is LessonState.locked:
            missing = progress.missing_prerequisites(lesson.id, self.catalog)
            raise CourseError("lesson.locked", lesson=lesson.short_id,
                              missing=", ".join(self.catalog.get(m).short_id for m in missing))

    # -- start / reset -----------------------------------------------------

    def start(self, text: str) -> StartResult:
        lesson = self.catalog.resolve(text)
        with self.store.edit() as progress:
            self._require_unlocked(lesson, progress)
            if not lesson.ready:
                raise CourseError("lesson.planned", lesson=lesson.short_id)
            workspace = self.workspace(progress)
            report = workspace.write_lesson(self.catalog, progress, lesson)
            entry = progress.lesson(lesson.id)
            already = entry.state in STARTED
            if entry.state is LessonState.available:
                entry.state = LessonState.in_progress
                entry.started_at = now()
            progress.current = lesson.id
        return StartResult(lesson, workspace.root, report, already)

    def reset(self, text: str) -> StartResult:
        lesson = self.catalog.resolve(text)
        with self.store.edit() as progress:
            self._require_unlocked(lesson, progress)
            entry = progress.lesson(lesson.id)
            if entry.state not in STARTED:
                raise CourseError("reset.not_started", lesson=lesson.short_id)
            workspace = self.workspace(progress)
            report = workspace.reset_lesson(self.catalog, progress, lesson)
            entry.resets += 1
            if entry.state is not LessonState.completed:
                entry.state = LessonState.in_progress
            entry.basic = entry.advanced = entry.last_failure = None
            progress.current = lesson.id
        return StartResult(lesson, workspace.root, report, True)

    # -- check -------------------------------------------------------------

    def check(self, text: str | None = None, tier: str | None = None) -> CheckResult:
        from .runner import run_suite

        progress = self.progress()
        lesson = self.resolve(text, progress)
        self._require_unlocked(lesson, progress)
        if progress.state(lesson.id) not in STARTED:
            raise CourseError("check.not_started", lesson=lesson.short_id)
        workspace = self.workspace(progress)
        if not workspace.exists():
            raise CourseError("workspace.missing", path=str(workspace.root))

        suites = []
        for current in ([tier] if tier else ["basic", "advanced"]):
            suite = run_suite(lesson, [current], str(workspace.root), lang=self.lang)
            suites.append(suite)
            if not suite.ok:
                break
        return self._record_check(lesson, suites)

    def _record_check(self, lesson: LessonSpec, suites: list) -> CheckResult:
        unlocked: list[str] = []
        with self.store.edit() as progress:
            entry = progress.lesson(lesson.id)
            entry.attempts += 1
            progress.current = lesson.id
            for suite in suites:
                record = TierRecord(passed=suite.passed, failed=suite.failed, ran_at=now(),
                                    seconds=round(suite.seconds, 3))
                setattr(entry, suite.tiers[0], record)
            failure = next((s.first_failure() for s in suites if s.first_failure()), None)
            # Aim hints at what stopped the test: the stub it ran into, else its symbol.
            entry.last_failure = (LastFailure(test=failure.test_id, symbol=failure.stub or failure.symbol)
                                  if failure else None)
            if entry.basic and entry.basic.ok and entry.state is LessonState.in_progress:
                entry.state = LessonState.basic_passed
            if entry.basic and entry.basic.ok and entry.advanced and entry.advanced.ok:
                if entry.state is not LessonState.completed:
                    entry.state = LessonState.completed
                    entry.completed_at = now()
                total = entry.basic.seconds + entry.advanced.seconds
                if len(suites) == 2 and (entry.best_check_seconds is None or total < entry.best_check_seconds):
                    entry.best_check_seconds = round(total, 3)
                unlocked = progress.refresh_unlocks(self.catalog)
            state = entry.state
            next_lesson = self._next_open(progress)
        return CheckResult(lesson, suites, state, [self.catalog.get(u) for u in unlocked], next_lesson)

    def _next_open(self, progress: Progress) -> LessonSpec | None:
        for lesson in self.catalog.path_lessons(progress.path):
            if progress.state(lesson.id) in (LessonState.available, LessonState.in_progress,
                                             LessonState.basic_passed):
                return lesson
        return None

    # -- hints -------------------------------------------------------------

    def hint(self, text: str | None = None) -> HintResult:
        with self.store.edit() as progress:
            lesson = self.resolve(text, progress)
            self._require_unlocked(lesson, progress)
            entry = progress.lesson(lesson.id)
            aimed = entry.last_failure.symbol if entry.last_failure else None
            unseen = [h for h in lesson.hints if h.hint_id not in entry.hints_used]
            order = {symbol: index for index, symbol in enumerate(lesson.symbols)}
            unseen.sort(key=lambda h: (h.symbol != aimed, order.get(h.symbol, 99), h.level))
            chosen = unseen[0] if unseen else None
            if chosen:
                entry.hints_used.append(chosen.hint_id)
            seen = len(entry.hints_used)
        return HintResult(lesson, chosen, seen, len(lesson.hints), aimed)

    # -- status ------------------------------------------------------------

    def rows(self, everything: bool = False) -> tuple[Progress, list[LessonRow]]:
        progress = self.progress()
        rows = []
        for lesson in self.catalog.lessons:
            entry = progress.lessons.get(lesson.id)
            if entry is None and not everything:
                continue
            rows.append(LessonRow(lesson, entry.state if entry else None,
                                  entry.basic if entry else None, entry.advanced if entry else None,
                                  len(entry.hints_used) if entry else 0))
        return progress, rows

    def next_step(self, progress: Progress) -> tuple[str, LessonSpec | None]:
        """A message key and lesson: what the learner should do now."""
        if progress.current and progress.state(progress.current) in STARTED[:2]:
            return "next.check", self.catalog.get(progress.current)
        lesson = self._next_open(progress)
        if lesson is None:
            return "next.done", None
        if progress.state(lesson.id) is LessonState.available:
            return "next.start", lesson
        return "next.check", lesson

    # -- solution ----------------------------------------------------------

    def solution(self, text: str, force: bool = False) -> tuple[LessonSpec, list[tuple[str, str, str]]]:
        """(file, symbol, reference source) for every target of a completed lesson."""
        from .paths import reference_dir
        from .stubgen import symbol_source

        lesson = self.catalog.resolve(text)
        with self.store.edit() as progress:
            state = progress.state(lesson.id)
            if not state.done and not force:
                raise CourseError("solution.locked", lesson=lesson.short_id)
            if not state.done:
                progress.lesson(lesson.id).solution_viewed = True
        pieces = []
        for target in lesson.targets:
            source = (reference_dir() / target.file).read_text(encoding="utf-8")
            for symbol in target.symbols:
                pieces.append((target.file, symbol, symbol_source(source, symbol)))
        return lesson, pieces
