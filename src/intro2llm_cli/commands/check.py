from __future__ import annotations

import typer

from ..errors import CourseError
from ..messages import t
from ..views import report, terminal
from .context import course


def check(
    lesson: str = typer.Argument(None, help="lesson id (default: the current lesson)"),
    tier: str = typer.Option(None, "--tier", help="basic | advanced (default: basic, then advanced)"),
    watch: bool = typer.Option(False, "--watch", "-w", help="re-run on every save"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="show full pytest reports"),
) -> None:
    """Run the lesson's tests against your code. / 运行测试检查你的实现。"""
    current = course()
    lang = current.lang
    result = current.check(lesson, tier)
    report.check_result(result, lang, verbose)
    if not watch:
        raise typer.Exit(0 if result.ok else 1)

    from watchfiles import watch as watch_changes

    package = current.workspace().package
    terminal.info(t("watch.waiting", lang, path=terminal.relative(package)))
    try:
        for _changes in watch_changes(package, watch_filter=lambda _change, path: path.endswith(".py")):
            terminal.info(t("watch.rerun", lang))
            try:
                report.check_result(current.check(result.lesson.id, tier), lang, verbose)
            except CourseError as exc:
                terminal.error(exc.render(lang))
    except KeyboardInterrupt:
        pass
