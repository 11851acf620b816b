from __future__ import annotations

import typer

from ..views import report
from .context import course


def hint(lesson: str = typer.Argument(None, help="lesson id (default: the current lesson)")) -> None:
    """Show the next hint, aimed at what your last check failed on. / 显示下一条提示。"""
    current = course()
    report.hint_result(current.hint(lesson), current.lang)
