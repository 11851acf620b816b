"""One console, one set of styles, one function per kind of output."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from ..messages import t

console = Console(highlight=False)
error_console = Console(stderr=True, highlight=False)

STATE_STYLE = {
    "locked": "dim",
    "available": "cyan",
    "in_progress": "yellow",
    "basic_passed": "blue",
    "completed": "green",
    "provided": "magenta",
}


def error(message: str) -> None:
    error_console.print(f"[bold red]✗[/] {escape(message)}", soft_wrap=True)


def info(message: str) -> None:
    console.print(message, soft_wrap=True)


def plain(message: str) -> None:
    """Text that may hold square brackets (shapes, ids): printed without markup."""
    console.print(message, soft_wrap=True, markup=False)


def success(message: str) -> None:
    console.print(f"[bold green]✓[/] {message}", soft_wrap=True)


def warning(message: str) -> None:
    console.print(f"[bold yellow]![/] {message}", soft_wrap=True)


def state_label(state: str | None, lang: str) -> str:
    if state is None:
        return f"[dim]{t('state.off_path', lang)}[/]"
    return f"[{STATE_STYLE[state]}]{t('state.' + state, lang)}[/]"


def tier_cell(record, lang: str) -> str:
    if record is None:
        return "[dim]—[/]"
    style = "green" if record.ok else "red"
    return f"[{style}]{record.passed}/{record.passed + record.failed}[/]"


def lesson_table(title: str, rows: list[list[str]], headers: list[str]) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_lines=False)
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def markdown(text: str) -> None:
    from rich.markdown import Markdown

    console.print(Markdown(text))


def code(source: str, title: str) -> None:
    from rich.panel import Panel
    from rich.syntax import Syntax

    console.print(Panel(Syntax(source, "python", line_numbers=False, word_wrap=True), title=title,
                        title_align="left"))


def panel(text: str, title: str, style: str = "cyan") -> None:
    from rich.panel import Panel

    console.print(Panel(text, title=title, title_align="left", border_style=style))


def suite(title: str, lines: list[tuple[str, str, list[str]]], verbose_details: list[str]) -> None:
    """One tier: (mark, name, detail lines) per test, then raw reports with -v."""
    console.print(f"[bold]{title}[/]")
    for mark, name, details in lines:
        console.print(f"  {mark} {name}", soft_wrap=True)
        for detail in details:
            console.print(f"      {detail}", soft_wrap=True, markup=False)
    for text in verbose_details:
        console.rule(style="dim")
        console.print(text, markup=False, soft_wrap=True)


def relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)
