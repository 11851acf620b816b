"""The course as data: ``lessons/course.toml`` and every ``lessons/*/lesson.toml``.

Loads them into validated pydantic models, resolves lesson ids the way people
type them (``lesson03``, ``03``, ``3``, ``lesson03_attention``), and answers the
graph questions: prerequisites, what a learning path includes, what it needs
provided. Nothing here prints or imports torch.
"""

from __future__ import annotations

import re
import sys
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import CourseError
from .paths import lessons_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SCHEMA_VERSION = 1
LESSON_ID = re.compile(r"^lesson(\d{2})_[a-z0-9_]+$")


class Text(BaseModel):
    """A piece of text in both course languages."""

    model_config = ConfigDict(extra="forbid")
    zh: str
    en: str

    def __call__(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


class Target(BaseModel):
    """One reference module and the symbols in it that the learner writes."""

    model_config = ConfigDict(extra="forbid")
    file: str = Field(description="module path relative to the package, e.g. model/norm.py")
    symbols: list[str] = Field(
        min_length=1, description="function or Class.method names, in teaching order"
    )

    @field_validator("file")
    @classmethod
    def _relative_python_file(cls, value: str) -> str:
        if not value.endswith(".py") or value.startswith("/") or ".." in value.split("/"):
            raise ValueError("must be a relative path to a .py file inside the package")
        return value


class Hint(BaseModel):
    """A hint, graded from a nudge (level 1) to near-pseudocode (level 3)."""

    model_config = ConfigDict(extra="forbid")
    symbol: str = Field(description="the target symbol the hint is about")
    level: int = Field(ge=1, le=3)
    zh: str
    en: str

    @property
    def hint_id(self) -> str:
        return f"{self.symbol}#{self.level}"


class LessonSpec(BaseModel):
    """One ``lesson.toml``.

    ``status`` is ``ready`` for a published lesson and ``planned`` for one that
    is on the course map but whose content is still being written.
    """

    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[1]
    id: str
    number: int = Field(ge=1, le=99)
    stage: int = Field(ge=1)
    status: Literal["ready", "planned"] = "ready"
    estimated_minutes: int = Field(default=120, ge=1)
    depends_on: list[str] = Field(default_factory=list)
    title: Text
    summary: Text | None = None
    targets: list[Target] = Field(default_factory=list)
    hints: list[Hint] = Field(default_factory=list)

    folder: Path = Field(default=Path(), exclude=True)

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not LESSON_ID.match(value):
            raise ValueError("must look like lessonNN_slug, e.g. lesson03_attention")
        return value

    @property
    def short_id(self) -> str:
        return f"lesson{self.number:02d}"

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def symbols(self) -> list[str]:
        return [symbol for target in self.targets for symbol in target.symbols]

    def tests_dir(self) -> Path:
        return self.folder / "tests"

    def readme(self, lang: str) -> Path:
        return self.folder / ("README.md" if lang == "zh" else "README.en.md")


class PathSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Text
    lessons: list[int] = Field(min_length=1)


class StageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: int
    title: Text


class CourseSpec(BaseModel):
    """``course.toml``: stages and learning paths."""

    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[1]
    stages: list[StageSpec]
    paths: dict[str, PathSpec]


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise CourseError("catalog.bad_toml", file=str(path), error=str(exc)) from exc


def _first_problem(exc: ValidationError) -> tuple[str, str]:
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"]) or "(file)"
    return field, error["msg"]


def _validated(model: type[BaseModel], data: dict, path: Path) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        field, problem = _first_problem(exc)
        raise CourseError("catalog.bad_field", file=str(path), field=field, problem=problem) from exc


class Catalog:
    """All lessons and paths, checked for consistency once at load time."""

    def __init__(self, course: CourseSpec, lessons: list[LessonSpec], root: Path) -> None:
        self.course = course
        self.root = root
        self.lessons = sorted(lessons, key=lambda lesson: lesson.number)
        self._by_id = {lesson.id: lesson for lesson in self.lessons}
        self._check_graph()

    @classmethod
    def load(cls, root: Path | None = None) -> Catalog:
        root = root or lessons_dir()
        course_file = root / "course.toml"
        if not course_file.is_file():
            raise CourseError("catalog.missing", file=str(course_file))
        course = _validated(CourseSpec, _read_toml(course_file), course_file)
        lessons = []
        for lesson_file in sorted(root.glob("lesson*/lesson.toml")):
            lesson = _validated(LessonSpec, _read_toml(lesson_file), lesson_file)
            assert isinstance(lesson, LessonSpec)
            if lesson.id != lesson_file.parent.name:
                raise CourseError(
                    "catalog.bad_field", file=str(lesson_file), field="id",
                    problem=f"'{lesson.id}' differs from its folder name '{lesson_file.parent.name}'",
                )
            lesson.folder = lesson_file.parent
            lessons.append(lesson)
        assert isinstance(course, CourseSpec)
        return cls(course, lessons, root)

    def _check_graph(self) -> None:
        numbers: dict[int, str] = {}
        for lesson in self.lessons:
            if lesson.number in numbers:
                raise CourseError("catalog.duplicate_number", a=numbers[lesson.number], b=lesson.id)
            numbers[lesson.number] = lesson.id
            if not lesson.id.startswith(lesson.short_id + "_"):
                raise CourseError(
                    "catalog.bad_field", file=str(lesson.folder / "lesson.toml"), field="number",
                    problem=f"{lesson.number} does not match the id {lesson.id}",
                )
            for dep in lesson.depends_on:
                if dep not in self._by_id:
                    raise CourseError(
                        "catalog.bad_field", file=str(lesson.folder / "lesson.toml"),
                        field="depends_on", problem=f"unknown lesson '{dep}'",
                    )
                if self._by_id[dep].number >= lesson.number:
                    raise CourseError(
                        "catalog.bad_field", file=str(lesson.folder / "lesson.toml"),
                        field="depends_on", problem=f"'{dep}' must come before this lesson",
                    )
            known = set(lesson.symbols)
            for hint in lesson.hints:
                if hint.symbol not in known:
                    raise CourseError(
                        "catalog.bad_field", file=str(lesson.folder / "lesson.toml"),
                        field="hints.symbol", problem=f"'{hint.symbol}' is not one of the targets",
                    )
        for name, path in self.course.paths.items():
            for number in path.lessons:
                if number not in numbers:
                    raise CourseError(
                        "catalog.bad_field", file=str(self.root / "course.toml"),
                        field=f"paths.{name}.lessons", problem=f"no lesson number {number}",
                    )

    # -- lookups -----------------------------------------------------------

    @cached_property
    def path_names(self) -> list[str]:
        return list(self.course.paths)

    def get(self, lesson_id: str) -> LessonSpec:
        return self._by_id[lesson_id]

    def by_number(self, number: int) -> LessonSpec:
        return next(lesson for lesson in self.lessons if lesson.number == number)

    def resolve(self, text: str) -> LessonSpec:
        """Accept ``lesson03``, ``03``, ``3``, ``L3`` or ``lesson03_attention``."""
        cleaned = text.strip().lower()
        if cleaned in self._by_id:
            return self._by_id[cleaned]
        match = re.fullmatch(r"(?:lesson|l)?0*(\d+)(?:_.*)?", cleaned)
        if match:
            number = int(match.group(1))
            for lesson in self.lessons:
                if lesson.number == number:
                    return lesson
        import difflib

        candidates = [lesson.id for lesson in self.lessons] + [lesson.short_id for lesson in self.lessons]
        near = difflib.get_close_matches(cleaned, candidates, n=1, cutoff=0.4)
        raise CourseError("lesson.unknown", given=text, suggestion=near[0] if near else self.lessons[0].short_id)

    def prerequisites(self, lesson: LessonSpec) -> list[LessonSpec]:
        """Every lesson ``lesson`` needs, directly or through others, in course order."""
        seen: set[str] = set()
        stack = list(lesson.depends_on)
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self._by_id[current].depends_on)
        return [item for item in self.lessons if item.id in seen]

    def path_lessons(self, path: str) -> list[LessonSpec]:
        if path not in self.course.paths:
            raise CourseError("path.unknown", given=path, choices=", ".join(self.path_names))
        numbers = set(self.course.paths[path].lessons)
        return [lesson for lesson in self.lessons if lesson.number in numbers]

    def provided_for(self, path: str) -> list[LessonSpec]:
        """Prerequisites of the path's lessons that are not on the path themselves."""
        on_path = {lesson.id for lesson in self.path_lessons(path)}
        needed: set[str] = set()
        for lesson in self.path_lessons(path):
            needed.update(dep.id for dep in self.prerequisites(lesson))
        return [lesson for lesson in self.lessons if lesson.id in needed - on_path]

    def lessons_sharing_file(self, file: str) -> list[tuple[LessonSpec, list[str]]]:
        """(lesson, its symbols in ``file``) for every lesson with targets in that module."""
        out = []
        for lesson in self.lessons:
            symbols = [s for target in lesson.targets if target.file == file for s in target.symbols]
            if symbols:
                out.append((lesson, symbols))
        return out
