from __future__ import annotations

from pathlib import Path

import typer

from ..views import report
from .context import options


def data(
    kind: str = typer.Argument(None, help="pretrain | sft | dpo (default: all three)"),
    show: int = typer.Option(0, "--show", help="print N samples of each set"),
    export: Path = typer.Option(None, "--export", help="write the sets as editable files into DIR"),
    seed: int = typer.Option(0, "--seed", help="generator seed (same seed, same data)"),
) -> None:
    """Show the built-in training data, or export it as files. / 查看或导出内置训练数据。"""
    from ..builtin_data import KINDS, DataReport, generate
    from ..builtin_data import export as export_sets
    from ..course import Course

    lang = Course(options.home, options.lang).lang
    result = DataReport()
    for name in [kind] if kind else list(KINDS):
        result.sets.extend(generate(name, seed))
    if export is not None:
        result.written = export_sets(result.sets, export)
    report.data_report(result, lang, show)
