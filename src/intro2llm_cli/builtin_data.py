"""The built-in data sets, as the ``data`` command shows and exports them.

Generation lives in the reference (``intro2llm.data.builtin``); this module
only measures what it produces and writes it to files a learner can read and
edit. It never overwrites a file: exporting into a folder that already holds
one of the files is refused (nothing is lost), and the learner picks another
folder or moves the old files away. No torch is imported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CourseError

KINDS = ("pretrain", "sft", "dpo")
HELDOUT = 200  # held-out records per supervised set: enough for a stable exact-match score


@dataclass
class DataSet:
    kind: str
    split: str
    records: list  # str documents for pretrain, dicts otherwise
    seconds: float

    @property
    def size_bytes(self) -> int:
        if self.kind == "pretrain":
            return sum(len(doc.encode("utf-8")) for doc in self.records)
        return sum(len("".join(str(v) for v in r.values()).encode("utf-8")) for r in self.records)


@dataclass
class DataReport:
    sets: list[DataSet] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)


def generate(kind: str, seed: int = 0) -> list[DataSet]:
    """The built-in sets of ``kind`` (pretrain: one corpus; sft / dpo: train and held-out)."""
    from intro2llm.data import builtin

    if kind not in KINDS:
        raise CourseError("data.bad_kind", kind=kind, choices=", ".join(KINDS))
    makers = {
        "pretrain": [("train", lambda: builtin.pretrain_corpus(seed=seed))],
        "sft": [("train", lambda: builtin.instruction_records(seed=seed, split="train")),
                ("heldout", lambda: builtin.instruction_records(num=HELDOUT, seed=seed, split="heldout"))],
        "dpo": [("train", lambda: builtin.preference_records(seed=seed, split="train")),
                ("heldout", lambda: builtin.preference_records(num=HELDOUT, seed=seed, split="heldout"))],
    }[kind]
    sets = []
    for split, make in makers:
        started = time.perf_counter()
        records = make()
        sets.append(DataSet(kind, split, records, time.perf_counter() - started))
    return sets


def file_name(data: DataSet) -> str:
    return "pretrain.txt" if data.kind == "pretrain" else f"{data.kind}_{data.split}.jsonl"


def export(sets: list[DataSet], folder: Path) -> list[Path]:
    """Write each set in the layout the readers accept; refuse to overwrite anything."""
    from intro2llm.data.readers import write_jsonl

    targets = [(data, folder / file_name(data)) for data in sets]
    existing = [str(path) for _, path in targets if path.exists()]
    if existing:
        raise CourseError("data.exists", files=", ".join(existing))
    folder.mkdir(parents=True, exist_ok=True)
    for data, path in targets:
        if data.kind == "pretrain":
            # Documents hold no blank lines, so a blank line separates them (read_pretrain_file).
            path.write_text("\n\n".join(data.records) + "\n", encoding="utf-8")
        else:
            write_jsonl(data.records, path)
    return [path for _, path in targets]
