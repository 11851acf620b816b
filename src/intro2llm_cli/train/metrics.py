"""``metrics.jsonl``: every logged metrics dict, one JSON object per line, as the run goes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _plain(value: Any) -> Any:
    # JSON has no NaN / inf: write them as null rather than produce a file other tools reject.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsWriter:
    """A trainer callback appending each metrics dict to ``path`` (flushed at once, so a crash keeps it)."""

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled

    def __call__(self, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({k: _plain(v) for k, v in metrics.items()}) + "\n")

    def rewrite(self, history: list[dict[str, Any]]) -> None:
        """Start the file again from a checkpoint's history (a resumed run drops later lines)."""
        if not self.enabled:
            return
        self.path.write_text("".join(json.dumps({k: _plain(v) for k, v in m.items()}) + "\n" for m in history),
                             encoding="utf-8")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The objects of a ``metrics.jsonl`` file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
