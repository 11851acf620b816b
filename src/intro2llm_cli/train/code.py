"""Which code a run trains with, and the package it runs from.

A run imports ``my_llm`` from a folder composed for it (``<run>/code/my_llm``):
the reference package as the base (for the files no lesson asks the learner to
write), the learner's workspace files on top, and — for each lesson the run
needs that the learner has not done and ``--fill-from-reference`` allows — the
reference definitions of that lesson's symbols spliced back in. Keeping the
composed copy in the run folder makes the run reproducible after the learner
edits their files, and its hash goes into ``run.toml``.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog import Catalog, LessonSpec
from ..errors import CourseError
from ..paths import reference_dir
from ..progress import LessonState, Progress
from ..stubgen import replace_symbol, symbol_source
from ..targets import PACKAGE

# The lessons whose code each stage runs (COURSE.md, "what train runs").
STAGE_LESSONS: dict[str, tuple[int, ...]] = {
    "pretrain": (1, 2, 3, 4, 5, 6, 7, 10),
    "sft": (1, 2, 3, 4, 5, 6, 7, 10),
    "dpo": (1, 2, 3, 4, 5, 6, 7, 8, 10),
}

YOURS, PROVIDED, FILLED, UNPUBLISHED, REFERENCE = "yours", "provided", "filled", "unpublished", "reference"


@dataclass
class LessonUse:
    lesson: LessonSpec
    source: str  # one of YOURS, PROVIDED, FILLED, UNPUBLISHED, REFERENCE


@dataclass
class CodePlan:
    stage: str
    uses: list[LessonUse] = field(default_factory=list)

    @property
    def from_reference(self) -> list[LessonUse]:
        """Lessons whose symbols come from the reference instead of the workspace."""
        return [u for u in self.uses if u.source in (FILLED, UNPUBLISHED, REFERENCE)]

    @property
    def filled(self) -> list[str]:
        return [u.lesson.short_id for u in self.uses if u.source == FILLED]


def plan_code(catalog: Catalog, progress: Progress | None, stage: str, *, fill: bool,
              reference_only: bool) -> CodePlan:
    """Decide, lesson by lesson, whose code the run uses; refuse when a needed lesson is not done.

    Raises:
        CourseError ``train.lesson_missing``: a needed lesson is neither completed nor
        provided and ``fill`` is False (the message names the lessons and the two ways on).
    """
    plan = CodePlan(stage)
    missing: list[str] = []
    for number in STAGE_LESSONS[stage]:
        lesson = next(lesson for lesson in catalog.lessons if lesson.number == number)
        if reference_only or progress is None:
            plan.uses.append(LessonUse(lesson, REFERENCE))
            continue
        state = progress.state(lesson.id)
        if not lesson.ready:
            plan.uses.append(LessonUse(lesson, UNPUBLISHED))
        elif state is LessonState.completed:
            plan.uses.append(LessonUse(lesson, YOURS))
        elif state is LessonState.provided:
            plan.uses.append(LessonUse(lesson, PROVIDED))
        elif fill:
            plan.uses.append(LessonUse(lesson, FILLED))
        else:
            missing.append(lesson.short_id)
    if missing:
        raise CourseError("train.lesson_missing", stage=stage, lessons=", ".join(missing))
    return plan


def compose_package(plan: CodePlan, workspace_package: Path | None, dest: Path) -> Path:
    """Write the package the run imports as ``my_llm`` into ``dest/my_llm``; return that folder."""
    root = dest / PACKAGE
    if root.exists():
        shutil.rmtree(root)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(reference_dir(), root, ignore=ignore)
    if workspace_package is not None and workspace_package.is_dir():
        for file in sorted(workspace_package.rglob("*.py")):
            if "__pycache__" in file.parts:
                continue
            target = root / file.relative_to(workspace_package)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
    reference = reference_dir()
    for use in plan.from_reference:
        for spec in use.lesson.targets:
            reference_source = (reference / spec.file).read_text(encoding="utf-8")
            file = root / spec.file
            source = file.read_text(encoding="utf-8")
            if source == reference_source:
                continue
            for symbol in spec.symbols:
                source = replace_symbol(source, symbol, symbol_source(reference_source, symbol))
            file.write_text(source, encoding="utf-8")
    return root


def tree_hash(root: Path) -> str:
    """A git-style content hash of a source tree: sha1 over (path, git blob id) of every .py file."""
    outer = hashlib.sha1()
    for file in sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts):
        data = file.read_bytes()
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        outer.update(f"{file.relative_to(root).as_posix()} {blob}\n".encode())
    return outer.hexdigest()


def files_hash(root: Path, relpaths: list[str]) -> str:
    """sha256 over the named files of ``root`` (for cache keys)."""
    digest = hashlib.sha256()
    for rel in sorted(relpaths):
        file = root / rel
        digest.update(rel.encode() + b"\0")
        digest.update(file.read_bytes() if file.is_file() else b"<missing>")
    return digest.hexdigest()
