from __future__ import annotations

import sys

import typer

from ..messages import t
from ..views import report, terminal
from .context import course


def reset(
    lesson: str = typer.Argument(..., help="lesson id"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Back up your files of a lesson and write fresh stubs. / 备份后重置一课。"""
    current = course()
    lang = current.lang
    spec = current.catalog.resolve(lesson)
    if not yes and sys.stdin.isatty() and not typer.confirm(t("reset.confirm", lang, lesson=spec.short_id)):
        raise typer.Exit(1)
    result = current.reset(lesson)
    report.write_report(result.report, lang)
    terminal.success(t("reset.done", lang, lesson=spec.short_id))
