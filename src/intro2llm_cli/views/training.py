"""How a training run looks while it runs: a rich live panel, or plain lines when not a terminal.

The view is a trainer callback: the trainer hands it every logged metrics dict
(training steps and evaluations) and it redraws. Plain mode (pipes, CI, tests, or
``--plain``) prints one line per logged step instead.
"""

from __future__ import annotations

import time
from typing import Any

from rich.live import Live
from rich.table import Table

from ..messages import t
from .terminal import console


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class TrainingView:
    def __init__(self, config: Any, lang: str, plain: bool = False, enabled: bool = True) -> None:
        self.config = config
        self.lang = lang
        self.enabled = enabled
        self.plain = plain or not console.is_terminal
        self.start = time.perf_counter()
        self.last: dict[str, Any] = {}
        self.last_eval: float | None = None
        self.live: Live | None = None

    # -- the trainer callback ------------------------------------------------
    def __call__(self, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if "eval_loss" in metrics:
            self.last_eval = metrics["eval_loss"]
            if self.plain:
                console.print(t("train.eval_line", self.lang, step=metrics["step"],
                                loss=f"{metrics['eval_loss']:.4f}"), markup=False, soft_wrap=True)
        else:
            self.last = metrics
            if self.plain:
                console.print(self._line(), markup=False, soft_wrap=True)
        if self.live is not None:
            self.live.update(self._panel())

    def message(self, key: str) -> None:
        if self.enabled:
            console.print(t(f"train.{key}", self.lang), markup=False)

    # -- live display ---------------------------------------------------------
    def __enter__(self) -> TrainingView:
        self.start = time.perf_counter()
        if self.enabled and not self.plain:
            self.live = Live(self._panel(), console=console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)
            self.live = None

    def _eta(self) -> tuple[float, float]:
        elapsed = time.perf_counter() - self.start
        step = self.last.get("step", 0)
        remaining = elapsed / step * (self.config.max_steps - step) if step else float("nan")
        return elapsed, remaining

    def _line(self) -> str:
        elapsed, remaining = self._eta()
        m = self.last
        return t("train.step_line", self.lang, step=m["step"], total=self.config.max_steps, loss=f"{m['loss']:.4f}",
                 lr=f"{m['lr']:.2e}", tps=f"{m['tokens_per_s']:.0f}", elapsed=_duration(elapsed),
                 remaining=_duration(remaining) if remaining == remaining else "?")

    def _panel(self) -> Table:
        elapsed, remaining = self._eta()
        m = self.last
        table = Table(title=t("train.live_title", self.lang, stage=self.config.stage), show_header=True)
        for key in ("col_step", "col_loss", "col_eval", "col_lr", "col_tps", "col_elapsed", "col_remaining"):
            table.add_column(t(f"train.{key}", self.lang), justify="right")
        if m:
            table.add_row(f"{m['step']}/{self.config.max_steps}", f"{m['loss']:.4f}",
                          "-" if self.last_eval is None else f"{self.last_eval:.4f}", f"{m['lr']:.2e}",
                          f"{m['tokens_per_s']:.0f}", _duration(elapsed),
                          _duration(remaining) if remaining == remaining else "?")
        return table


def make_view(config: Any, lang: str, plain: bool = False, enabled: bool = True) -> TrainingView:
    return TrainingView(config, lang, plain=plain, enabled=enabled)
