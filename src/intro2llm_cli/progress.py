"""The learner's progress file: ``<home>/progress/progress.toml``.

A pydantic model with ``schema_version`` describes the file (its JSON schema is
published as ``progress/progress.schema.json``). ``ProgressStore`` reads it,
and writes it atomically (temp file, fsync, rename) under a lock, so an
interrupted write never leaves half a file. A file that does not parse or
validate is reported and left exactly as it is: the tool never replaces it.
State never prints; callers render.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .catalog import Catalog
from .errors import CourseError
from .paths import PROGRESS_RELPATH

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SCHEMA_VERSION: Literal[1] = 1


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


class LessonState(str, Enum):
    """Where a lesson stands for this learner.

    locked -> available (every prerequisite completed or provided) -> in_progress
    (stubs written) -> basic_passed -> completed. ``provided`` lessons are not on
    the learner's path; their reference modules are copied into ``my_llm``.
    """

    locked = "locked"
    available = "available"
    in_progress = "in_progress"
    basic_passed = "basic_passed"
    completed = "completed"
    provided = "provided"

    @property
    def done(self) -> bool:
        """Counts as satisfied for lessons that depend on it."""
        return self in (LessonState.completed, LessonState.provided)


class TierRecord(BaseModel):
    """The latest result of one test tier (basic or advanced)."""

    model_config = ConfigDict(extra="forbid")
    passed: int = Field(ge=0, description="tests that passed in the latest run")
    failed: int = Field(ge=0, description="tests that failed, errored or timed out")
    ran_at: datetime
    seconds: float = Field(ge=0, description="wall time of the run")

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.passed > 0


class LastFailure(BaseModel):
    """What the latest check failed on first; ``hint`` aims at it."""

    model_config = ConfigDict(extra="forbid")
    test: str
    symbol: str | None = None


class LessonProgress(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: LessonState = LessonState.locked
    started_at: datetime | None = None
    completed_at: datetime | None = None
    attempts: int = Field(default=0, ge=0, description="how many times `check` ran this lesson")
    hints_used: list[str] = Field(default_factory=list, description="hint ids: symbol#level")
    best_check_seconds: float | None = Field(
        default=None, description="fastest complete check (basic + advanced) that passed"
    )
    basic: TierRecord | None = None
    advanced: TierRecord | None = None
    last_failure: LastFailure | None = None
    solution_viewed: bool = Field(default=False, description="reference shown before completion")
    resets: int = Field(default=0, ge=0)


class RunRecord(BaseModel):
    """One ``llm-course train`` run, as the progress file remembers it."""

    model_config = ConfigDict(extra="forbid")
    stage: str = Field(description="pretrain | sft | dpo")
    run_dir: str = Field(description="the run folder (outputs/<stage>/<run-id>)")
    started_at: datetime
    finished: bool = Field(description="False when stopped with Ctrl-C (resumable)")
    steps: int = Field(ge=0)
    seconds: float = Field(ge=0)
    final_loss: float | None = None
    eval_loss: float | None = None
    code_hash: str = Field(description="git-style hash of the code that trained")
    reference_filled: list[str] = Field(default_factory=list, description="lessons filled from the reference")
    reference_only: bool = Field(default=False, description="--reference: the reference library alone")
    exact_match_before: float | None = Field(default=None, description="SFT: held-out accuracy before")
    exact_match_after: float | None = Field(default=None, description="SFT: held-out accuracy after")
    preference_before: float | None = Field(default=None, description="DPO: held-out pairs where chosen is likelier, before")
    preference_after: float | None = Field(default=None, description="DPO: held-out pairs where chosen is likelier, after")


class Progress(BaseModel):
    """The whole progress file."""

    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[1] = SCHEMA_VERSION
    path: str = Field(description="learning path: full, mvp or research")
    lang: Literal["zh", "en"] = "zh"
    workspace: str = Field(description="workspace folder, relative to the course home or absolute")
    created_at: datetime = Field(default_factory=now)
    current: str | None = Field(default=None, description="lesson id last started or checked")
    lessons: dict[str, LessonProgress] = Field(default_factory=dict)
    runs: list[RunRecord] = Field(default_factory=list, description="training runs, oldest first")

    def lesson(self, lesson_id: str) -> LessonProgress:
        return self.lessons.setdefault(lesson_id, LessonProgress())

    def state(self, lesson_id: str) -> LessonState:
        entry = self.lessons.get(lesson_id)
        return entry.state if entry else LessonState.locked

    def satisfied(self, lesson_id: str, catalog: Catalog) -> bool:
        """Whether ``lesson_id`` counts as done for the lessons that depend on it.

        A completed lesson does. A provided lesson does once its own prerequisites
        do: on the mvp path lesson 06 is provided, so lesson 07 opens when 05 is
        completed, not on day one. A planned (unpublished) lesson counts the same way.
        """
        state = self.state(lesson_id)
        if state is LessonState.provided or not catalog.get(lesson_id).ready:
            # A lesson that is not published yet blocks no one: like a provided one, it
            # counts once its own prerequisites do (its code comes from the reference).
            return all(self.satisfied(dep, catalog) for dep in catalog.get(lesson_id).depends_on)
        return state is LessonState.completed

    def missing_prerequisites(self, lesson_id: str, catalog: Catalog) -> list[str]:
        """The lessons the learner still has to complete before ``lesson_id`` opens."""
        missing: list[str] = []
        for dep in catalog.get(lesson_id).depends_on:
            if self.satisfied(dep, catalog):
                continue
            if self.state(dep) is LessonState.provided or not catalog.get(dep).ready:
                missing.extend(m for m in self.missing_prerequisites(dep, catalog) if m not in missing)
            elif dep not in missing:
                missing.append(dep)
        return missing

    def refresh_unlocks(self, catalog: Catalog) -> list[str]:
        """Unlock every locked lesson whose prerequisites are all satisfied.

        Returns the ids unlocked now. Never locks anything again: progress is
        only ever gained.
        """
        unlocked = []
        for lesson in catalog.lessons:
            entry = self.lessons.get(lesson.id)
            if entry is None or entry.state is not LessonState.locked:
                continue
            if all(self.satisfied(dep, catalog) for dep in lesson.depends_on):
                entry.state = LessonState.available
                unlocked.append(lesson.id)
        return unlocked

    @classmethod
    def new(cls, catalog: Catalog, path: str, lang: str, workspace: str) -> Progress:
        progress = cls(path=path, lang=lang, workspace=workspace)  # type: ignore[arg-type]
        for lesson in catalog.path_lessons(path):
            progress.lessons[lesson.id] = LessonProgress()
        for lesson in catalog.provided_for(path):
            progress.lessons[lesson.id] = LessonProgress(state=LessonState.provided)
        progress.refresh_unlocks(catalog)
        return progress


def _to_toml(progress: Progress) -> str:
    import tomli_w

    data = progress.model_dump(mode="python", exclude_none=True)
    for entry in data["lessons"].values():
        entry["state"] = entry["state"].value
    return tomli_w.dumps(data)


class ProgressStore:
    """Reads and writes one progress file; ``edit()`` is the only way to change it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.file = home / PROGRESS_RELPATH
        self._lock_file = str(self.file) + ".lock"

    def exists(self) -> bool:
        return self.file.is_file()

    def load(self) -> Progress:
        if not self.file.is_file():
            raise CourseError("progress.missing", home=str(self.home))
        try:
            data = tomllib.loads(self.file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise CourseError("progress.damaged", file=str(self.file), problem=str(exc)) from exc
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise CourseError("progress.version", file=str(self.file), found=version, expected=SCHEMA_VERSION)
        try:
            return Progress.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"])
            raise CourseError("progress.damaged", file=str(self.file), problem=f"{field}: {error['msg']}") from exc

    def create(self, progress: Progress) -> None:
        with self._locked():
            if self.file.exists():
                raise CourseError("init.exists", file=str(self.file))
            self._write(progress)

    @contextmanager
    def edit(self) -> Iterator[Progress]:
        """Load under the lock, let the caller change it, write it back atomically.

        If the caller raises, nothing is written.
        """
        with self._locked():
            progress = self.load()
            yield progress
            self._write(progress)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        from filelock import FileLock, Timeout  # only writers need it; `status` stays light

        self.file.parent.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(self._lock_file, timeout=10):
                yield
        except Timeout as exc:
            raise CourseError("progress.locked", file=str(self.file)) from exc

    def _write(self, progress: Progress) -> None:
        text = _to_toml(progress)
        fd, tmp = tempfile.mkstemp(dir=self.file.parent, prefix=".progress-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if hasattr(os, "O_DIRECTORY"):
            dir_fd = os.open(self.file.parent, os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


def json_schema() -> dict:
    """The JSON schema of the progress file, published in ``progress/``."""
    schema = Progress.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "llm-course progress file"
    return schema


if __name__ == "__main__":  # python -m intro2llm_cli.progress > progress/progress.schema.json
    import json

    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
