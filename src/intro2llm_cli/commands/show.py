from __future__ import annotations

import typer

from ..errors import CourseError
from ..views import terminal
from .context import course


def show(lesson: str = typer.Argument(..., help="lesson id")) -> None:
    """Render the lesson's README in your language. / 显示课程讲义。"""
    current = course()
    spec = current.catalog.resolve(lesson)
    readme = spec.readme(current.lang)
    if not readme.is_file():
        raise CourseError("show.no_readme", lesson=spec.short_id)
    terminal.markdown(readme.read_text(encoding="utf-8"))
