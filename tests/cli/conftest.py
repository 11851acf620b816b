"""Shared fixtures for the CLI tests: a copy of the lessons folder to break on purpose."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from intro2llm_cli.paths import lessons_dir


@pytest.fixture
def lessons_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A writable copy of the real lessons folder, made the active one."""
    copy = tmp_path / "lessons"
    shutil.copytree(lessons_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("LLM_COURSE_LESSONS", str(copy))
    return copy
