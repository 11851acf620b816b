"""Where things live: lesson content, the reference package, the learner's home.

Lesson content sits at ``<repo>/lessons`` in a checkout and is shipped inside the
wheel as ``intro2llm_cli/_lessons``; both layouts are found the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
HOME_ENV = "LLM_COURSE_HOME"
LESSONS_ENV = "LLM_COURSE_LESSONS"
PROGRESS_RELPATH = Path("progress") / "progress.toml"


def lessons_dir() -> Path:
    """The folder holding ``course.toml`` and the ``lessonNN_*`` folders."""
    override = os.environ.get(LESSONS_ENV)
    if override:
        return Path(override).resolve()
    shipped = PACKAGE_DIR / "_lessons"
    if shipped.is_dir():
        return shipped
    # Editable install / plain checkout: src/intro2llm_cli -> <repo>/lessons
    return PACKAGE_DIR.parent.parent / "lessons"


def reference_dir() -> Path:
    """The reference library's package folder (``intro2llm``), found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("intro2llm")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the intro2llm reference package is not installed")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def find_home(explicit: str | os.PathLike[str] | None = None, start: Path | None = None) -> Path:
    """The learner's course home: ``--home``, then $LLM_COURSE_HOME, then the nearest
    folder at or above ``start`` (the current directory) that holds
    ``progress/progress.toml``, like git finds its repository; else ``start`` itself."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser().resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROGRESS_RELPATH).is_file():
            return folder
    return here
