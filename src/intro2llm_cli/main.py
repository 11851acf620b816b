"""``llm-course``: the typer app. Commands live one per module in ``commands/``.

Start-up stays light: nothing here imports torch, pytest or the reference
library; the commands that need them import them inside their bodies.
"""

from __future__ import annotations

import sys

import typer

from .commands import author, check, data, hint, init, reset, show, solution, start, status, train
from .commands.context import options
from .errors import CourseError

app = typer.Typer(
    name="llm-course",
    help="intro2llm — build a modern LLM stack with your own hands. / 亲手构建现代大语言模型。",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    home: str = typer.Option(None, "--home", envvar="LLM_COURSE_HOME",
                             help="course home holding progress/ and workspace/ (default: found from the current folder)"),
    lang: str = typer.Option(None, "--lang", help="zh | en (default: from the progress file)"),
) -> None:
    options.home = home
    options.lang = lang


app.command()(init.init)
app.command()(start.start)
app.command()(check.check)
app.command()(hint.hint)
app.command()(status.status)
app.command("list")(status.list_lessons)
app.command()(show.show)
app.command()(reset.reset)
app.command()(solution.solution)
app.command()(data.data)
app.command()(train.train)
app.command()(train.generate)
app.add_typer(author.app, name="author")


def run() -> None:
    try:
        app()
    except CourseError as exc:
        from .views import terminal

        terminal.error(exc.render(options.lang or _fallback_lang()))
        sys.exit(1)


def _fallback_lang() -> str:
    try:
        from .course import Course

        return Course(options.home).lang
    except Exception:
        return "zh"


if __name__ == "__main__":
    run()
