from __future__ import annotations

import typer

from ..messages import t
from ..views import terminal
from .context import course

app = typer.Typer(help="Tools for course authors. / 课程作者工具。", no_args_is_help=True)


@app.command()
def verify(
    lessons: list[str] = typer.Argument(None, help="lesson ids (default: every ready lesson)"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="list every test and mistake"),
) -> None:
    """Reference passes, fresh stubs fail, every known mistake is caught."""
    from ..authoring import verify_lesson

    current = course()
    lang = current.lang
    catalog = current.catalog
    chosen = [catalog.resolve(x) for x in lessons] if lessons else [x for x in catalog.lessons if x.ready]
    all_ok = True
    rows = []
    for lesson in chosen:
        result = verify_lesson(lesson, lang)
        all_ok &= result.ok
        rows.append([
            lesson.short_id,
            _cell(result.reference_passed, result.reference_total),
            _cell(result.stubs_failed, result.stubs_total),
            _cell(result.mistakes_caught, result.mistakes_total),
            "[green]OK[/]" if result.ok else "[red]FAIL[/]",
        ])
        for problem in result.problems:
            terminal.error(f"{lesson.short_id}: {problem}")
        if verbose:
            for line in result.mistake_lines:
                terminal.plain(f"  {lesson.short_id} {line}")
    headers = [t("col.lesson", lang), t("verify.reference", lang), t("verify.stubs", lang),
               t("verify.mistakes", lang), ""]
    terminal.lesson_table(t("verify.title", lang), rows, headers)
    raise typer.Exit(0 if all_ok else 1)


def _cell(good: int, total: int) -> str:
    style = "green" if good == total and total > 0 else "red"
    return f"[{style}]{good}/{total}[/]"
