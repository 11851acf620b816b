"""`llm-course data`: shows real built-in records and exports them as files the readers accept."""

from __future__ import annotations

from pathlib import Path

from intro2llm.data.builtin import check_answer
from intro2llm.data.readers import read_dpo_file, read_pretrain_file, read_sft_file

from .cli_helpers import llm_course


def test_show_prints_real_sft_records(tmp_path: Path):
    shown = llm_course(tmp_path, "--lang", "en", "data", "sft", "--show", "5")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("--- sft/train #") == 5
    assert shown.stdout.count("instruction: ") == 10  # 5 train + 5 held-out
    assert "sft/heldout" in shown.stdout


def test_export_writes_files_the_readers_accept_and_never_overwrites(tmp_path: Path):
    out = tmp_path / "data"
    done = llm_course(tmp_path, "--lang", "en", "data", "--export", str(out))
    assert done.returncode == 0, done.stderr
    documents = read_pretrain_file(out / "pretrain.txt")
    assert sum(len(doc.encode("utf-8")) for doc in documents) >= 2_000_000
    sft = read_sft_file(out / "sft_train.jsonl")
    assert len(sft) == 2000
    heldout = read_sft_file(out / "sft_heldout.jsonl")
    assert len(heldout) == 200
    dpo = read_dpo_file(out / "dpo_train.jsonl")
    assert len(dpo) == 2000 and all(r["chosen"] != r["rejected"] for r in dpo)
    assert all(check_answer(r, r["output"]) for r in read_sft_file(out / "sft_train.jsonl")[:50]
               if "family" in r)

    before = (out / "sft_train.jsonl").read_bytes()
    again = llm_course(tmp_path, "--lang", "en", "data", "sft", "--export", str(out))
    assert again.returncode == 1 and "will not overwrite" in again.stderr
    assert (out / "sft_train.jsonl").read_bytes() == before


def test_unknown_data_set_is_one_line(tmp_path: Path):
    done = llm_course(tmp_path, "--lang", "en", "data", "rlhf")
    assert done.returncode == 1
    assert "no data set `rlhf`" in done.stderr.strip()
