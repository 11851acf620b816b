from __future__ import annotations

import typer

from ..messages import t
from ..views import report, terminal
from .context import course


def status() -> None:
    """Your lessons, their state and what to do next. / 学习进度与下一步。"""
    current = course()
    lang = current.lang
    progress, rows = current.rows()
    report.status_table(progress, rows, lang, "status.title")
    key, lesson = current.next_step(progress)
    terminal.info(t(key, lang, lesson=lesson.short_id if lesson else ""))


def list_lessons(
    everything: bool = typer.Option(True, "--all/--path-only", help="every lesson, or only your path's"),
) -> None:
    """Every lesson of the course with its stage and state. / 列出所有课程。"""
    current = course()
    lang = current.lang
    if not current.store.exists():
        rows = [[lesson.short_id, lesson.title(lang), str(lesson.stage),
                 t("lesson.status_" + lesson.status, lang)] for lesson in current.catalog.lessons]
        headers = [t("col.lesson", lang), t("col.title", lang), t("col.stage", lang), t("col.status", lang)]
        terminal.lesson_table(t("list.title", lang), rows, headers)
        return
    progress, rows = current.rows(everything=everything)
    report.status_table(progress, rows, lang, "status.title")
