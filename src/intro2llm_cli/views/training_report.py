"""What ``train`` prints before and after a run, and what ``generate`` prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape

from ..messages import t
from . import terminal


def _relative(path: Path | str) -> str:
    try:
        return str(Path(path).absolute().relative_to(Path.cwd().absolute()))
    except ValueError:
        return str(path)


def before_run(prepared: Any, lang: str) -> None:
    plan = prepared.plan
    terminal.info(t("train.lessons_header", lang, stage=plan.stage))
    for use in plan.uses:
        source = t(f"train.source_{use.source}", lang)
        terminal.plain(f"  {use.lesson.short_id}  {use.lesson.title(lang)}  — {source}")
    if plan.filled:
        terminal.warning(t("train.filled_notice", lang, lessons=", ".join(plan.filled)))
    terminal.info(t("train.run_dir", lang, path=escape(_relative(prepared.run_dir))))


def after_run(prepared: Any, summary: Any, link: Path | None, lang: str) -> None:
    from ..train.metrics import read_metrics
    from ..train.pipeline import METRICS_FILE, PLOT_FILE
    from ..train.plot import text_plot

    metrics_file = Path(summary.run_dir) / METRICS_FILE
    history = read_metrics(metrics_file) if metrics_file.is_file() else []
    for row in text_plot(history):
        terminal.plain(row)
    if summary.interrupted:
        resume = f"llm-course train {summary.stage} --resume {_relative(summary.resume_from)}"
        terminal.warning(t("train.interrupted", lang, step=summary.steps, command=escape(resume)))
        return
    minutes, seconds = divmod(int(round(summary.seconds)), 60)
    terminal.success(t("train.done", lang, stage=summary.stage, steps=summary.steps, time=f"{minutes}:{seconds:02d}"))
    if summary.final_loss is not None:
        terminal.plain(t("train.final_loss", lang, loss=f"{summary.final_loss:.4f}",
                         eval=f"{summary.eval_loss:.4f}" if summary.eval_loss is not None else "-"))
    if summary.unigram_loss is not None:
        terminal.plain(t("train.unigram", lang, unigram=f"{summary.unigram_loss:.4f}"))
    if summary.exact_match_after is not None:
        before = summary.exact_match_before or {}
        after = summary.exact_match_after
        terminal.plain(t("train.exact_match", lang,
                         before=f"{before.get('correct', '?')}/{before.get('total', '?')}"
                                f" ({100 * before.get('accuracy', 0):.1f}%)",
                         after=f"{after['correct']}/{after['total']} ({100 * after['accuracy']:.1f}%)"))
    if summary.preference_after is not None:
        before, after = summary.preference_before or {}, summary.preference_after
        terminal.plain(t("train.preference", lang, total=after["total"],
                         before=f"{100 * before.get('logp_accuracy', 0):.1f}%",
                         after=f"{100 * after['logp_accuracy']:.1f}%",
                         reward=f"{100 * after['accuracy']:.1f}%", margin=f"{after['margin']:.3f}"))
    terminal.plain(t("train.outputs", lang, metrics=_relative(metrics_file),
                     plot=_relative(Path(summary.run_dir) / PLOT_FILE)))
    if link is not None:
        terminal.info(t("train.final_model", lang, path=escape(_relative(link))))
        if summary.stage == "pretrain":
            terminal.info(t("train.next_sft", lang, path=escape(_relative(link))))
        elif summary.stage == "sft":
            terminal.info(t("train.next_dpo", lang, path=escape(_relative(link))))
            terminal.info(t("train.next_generate", lang, path=escape(_relative(link))))
        else:
            terminal.info(t("train.next_generate", lang, path=escape(_relative(link))))


def generation(fed: str, continuation: str, lang: str) -> None:
    terminal.plain(t("generate.prompt", lang) + " " + fed.rstrip("\n"))
    terminal.plain(t("generate.output", lang) + " " + continuation)
