from __future__ import annotations

import sys

import typer

from ..messages import t
from ..views import terminal
from .context import course, options


def init(
    path: str = typer.Option(None, "--path", help="learning path: full | mvp | research"),
    lang: str = typer.Option(None, "--lang", help="language of READMEs, hints and messages: zh | en"),
    workspace: str = typer.Option(None, "--workspace", help="where my_llm/ goes (default: ./workspace)"),
) -> None:
    """Create the workspace and the progress file; choose a learning path. / 创建工作区与进度文件。"""
    current = course()
    interactive = sys.stdin.isatty()
    lang = lang or options.lang or (typer.prompt("语言 / language (zh|en)", default="zh") if interactive else "zh")
    if path is None:
        names = current.catalog.path_names
        if interactive:
            for name in names:
                terminal.info(f"  {name:9} {current.catalog.course.paths[name].title(lang)}")
            path = typer.prompt(t("init.ask_path", lang), default="full")
        else:
            path = "full"
    progress = current.init(path=path, lang=lang, workspace=workspace)
    terminal.success(t("init.done", lang, home=str(current.home), path=progress.path,
                       workspace=progress.workspace))
    first = current.catalog.path_lessons(progress.path)[0]
    terminal.info(t("next.start", lang, lesson=first.short_id))
