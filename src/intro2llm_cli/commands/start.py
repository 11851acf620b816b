from __future__ import annotations

import typer

from ..messages import t
from ..views import report, terminal
from .context import course


def start(lesson: str = typer.Argument(..., help="lesson03, 03, 3 or lesson03_attention")) -> None:
    """Write the lesson's stubs into workspace/my_llm and say where to work. / 开始一课。"""
    current = course()
    lang = current.lang
    result = current.start(lesson)
    spec = result.lesson
    terminal.success(t("start.done", lang, lesson=spec.short_id, title=spec.title(lang)))
    report.write_report(result.report, lang)
    if result.report.kept:
        terminal.info(t("start.reset_offer", lang, lesson=spec.short_id))
    for target in spec.targets:
        path = terminal.relative(result.workspace / "my_llm" / target.file)
        terminal.info(t("start.target", lang, path=path, symbols=", ".join(target.symbols)))
    terminal.info(t("start.read", lang, lesson=spec.short_id, readme=terminal.relative(spec.readme(lang))))
