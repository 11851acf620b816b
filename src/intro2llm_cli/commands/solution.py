from __future__ import annotations

import typer

from ..messages import t
from ..views import terminal
from .context import course


def solution(
    lesson: str = typer.Argument(..., help="lesson id"),
    force: bool = typer.Option(False, "--force", help="show it before completion (recorded in progress)"),
) -> None:
    """Show the reference implementation of a completed lesson. / 查看参考实现。"""
    current = course()
    lang = current.lang
    spec, pieces = current.solution(lesson, force)
    for file, symbol, source in pieces:
        terminal.code(source, f"{file} · {symbol}")
    if force:
        terminal.warning(t("solution.recorded", lang, lesson=spec.short_id))
