"""Built-in data and file readers.

- The generators are pure functions of their arguments (same seed -> same data, another
  seed -> other data), hit their sizes, mix Chinese and English, and are fast.
- The pretraining corpus has structure a model can learn: a character 3-gram model
  (counts from the first 80 %) predicts the last 20 % with far fewer bits per character
  than a unigram model, and it never states the answer to a held-out problem.
- ``check_answer`` accepts every generated answer (also with extra whitespace and a full
  stop) and rejects every ``rejected`` answer of the preference records; train and
  held-out splits share no problem (keys parsed back from the text by the test itself).
- Readers round-trip what ``write_jsonl`` writes, normalise the conversation layout, and
  reject malformed lines with ``file:line`` in a one-line message. Files go to ``tmp_path``.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter

import pytest

from intro2llm.data.builtin import (
    FAMILIES,
    UNITS,
    check_answer,
    instruction_records,
    preference_records,
    pretrain_corpus,
)
from intro2llm.data.readers import (
    DataFormatError,
    read_dpo_file,
    read_pretrain_file,
    read_sft_file,
    write_jsonl,
)

CJK = re.compile(r"[\u4e00-\u9fff]")

# ----- pretraining corpus -----------------------------------------------------------------------


def test_pretrain_corpus_is_deterministic_and_seeded():
    assert pretrain_corpus(50_000, seed=3) == pretrain_corpus(50_000, seed=3)
    assert pretrain_corpus(50_000, seed=3) != pretrain_corpus(50_000, seed=4)


@pytest.mark.parametrize("num_bytes", [0, 1, 10_000, 123_456])
def test_pretrain_corpus_reaches_the_requested_size(num_bytes):
    docs = pretrain_corpus(num_bytes)
    sizes = [len(d.encode("utf-8")) for d in docs]
    assert sum(sizes) >= num_bytes
    assert not docs or sum(sizes) - sizes[-1] < num_bytes  # stops as soon as it is reached


def test_pretrain_corpus_default_size_is_fast_and_bilingual():
    start = time.perf_counter()
    docs = pretrain_corpus()
    elapsed = time.perf_counter() - start
    assert sum(len(d.encode("utf-8")) for d in docs) >= 2_000_000
    assert elapsed < 5.0, f"generating 2 MB took {elapsed:.2f} s"  # ~0.3 s on a 2-core box
    chinese = sum(1 for d in docs if CJK.search(d)) / len(docs)
    assert 0.35 < chinese < 0.65
    assert all(d and d == d.strip() and "\n\n" not in d for d in docs)
    with pytest.raises(ValueError):
        pretrain_corpus(-1)


def test_pretrain_corpus_has_learnable_structure():
    """Held-out bits per character: unigram vs 3-character context (add-0.01 smoothing)."""
    text = "\n\n".join(pretrain_corpus(300_000, seed=1))
    cut = int(len(text) * 0.8)
    train, test = text[:cut], text[cut:]
    unigram = Counter(train)
    vocab = len(unigram) + 1
    h1 = -sum(math.log2((unigram[c] + 1) / (cut + vocab)) for c in test) / len(test)
    context = Counter(train[i : i + 3] for i in range(cut - 3))
    grams = Counter(train[i : i + 4] for i in range(cut - 3))
    h3 = -sum(math.log2((grams[test[i : i + 4]] + 0.01) / (context[test[i : i + 3]] + 0.01 * vocab))
              for i in range(len(test) - 3)) / (len(test) - 3)
    assert h3 < 0.5 * h1, (h1, h3)


def test_pretrain_corpus_never_states_heldout_sums():
    text = "\n".join(pretrain_corpus(400_000))
    heldout = [r for r in instruction_records(300, split="heldout") if r["family"] in ("add", "subtract")]
    assert heldout
    for record in heldout:
        a, b = map(int, re.findall(r"\d+", record["instruction"])[:2])
        op = "+" if record["family"] == "add" else "-"
        if op == "-" and "Subtract" in record["instruction"]:
            a, b = b, a  # "Subtract b from a."
        pairs = [(a, b), (b, a)] if op == "+" else [(a, b)]
        for x, y in pairs:
            assert f"\n{x} {op} {y} = {record['output']}\n" not in f"\n{text}\n"


# ----- instruction records and checkers -----------------------------------------------------


def test_instruction_records_shape_determinism_and_families():
    records = instruction_records(60, seed=0)
    assert len(records) == 60
    assert records == instruction_records(60, seed=0)
    assert records != instruction_records(60, seed=1)
    assert [r["family"] for r in records[:6]] == list(FAMILIES)
    assert Counter(r["family"] for r in records) == {f: 10 for f in FAMILIES}
    for r in records:
        assert set(r) == {"instruction", "input", "output", "family"}
        assert all(isinstance(v, str) for v in r.values()) and r["instruction"] and r["output"]
    assert any(CJK.search(r["instruction"]) for r in records)
    assert any(not CJK.search(r["instruction"]) for r in records)
    with pytest.raises(ValueError, match="split"):
        instruction_records(5, split="test")


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_check_answer_accepts_generated_answers(split):
    for record in instruction_records(600, seed=2, split=split):
        out = record["output"]
        assert check_answer(record, out)
        assert check_answer(record, f"  {out}。 ")
        assert check_answer(record, f"\n{out}.\n")
        assert not check_answer(record, out + "0")
        assert not check_answer(record, "")


@pytest.mark.parametrize(
    ("family", "output", "prediction", "ok"),
    [
        ("add", "81", "81", True),
        ("add", "81", "eighty-one", False),
        ("add", "81", "81 81", False),
        ("add", "81", "The answer is 81", False),
        ("sort", "1, 2, 10", "1,2,10", True),
        ("sort", "1, 2, 10", "1 2 10", True),
        ("sort", "1, 2, 10", "1, 10, 2", False),
        ("sort", "1, 2, 10", "1, 2", False),
        ("reverse", "elppa", "elppa", True),
        ("reverse", "elppa", "Elppa", False),
        ("count", "3", " 3 ", True),
        ("count", "0", "00", False),
        ("sort", "1, 2, 10", "1, 2, 010", False),
        ("convert", "3000", "3,000", False),
    ],
)
def test_check_answer_rules(family, output, prediction, ok):
    assert check_answer({"family": family, "output": output}, prediction) is ok


def test_check_answer_rejects_unknown_family():
    with pytest.raises(ValueError, match="family"):
        check_answer({"family": "poetry", "output": "x"}, "x")


def _problem_key(record: dict[str, str]) -> tuple:
    """What decides the answer, parsed from the text (independently of the generator)."""
    family, text = record["family"], record["instruction"] + "\n" + record["input"]
    numbers = [int(n) for n in re.findall(r"\d+", text)]
    if family == "add":
        return family, *sorted(numbers)
    if family == "subtract":
        return family, *((numbers[1], numbers[0]) if "Subtract" in text else numbers)
    if family == "sort":
        return family, *sorted(numbers)
    if family == "reverse":
        return family, record["input"]
    if family == "count":
        letter = re.search(r"letter (\w) |字母 (\w) ", record["instruction"])
        return family, record["input"], (letter.group(1) or letter.group(2)) if letter else ""
    value = numbers[0]
    unit = next(i for i, (en, _, zh, _, _) in enumerate(UNITS)
                if f" {en} to" in text or f"{value}{zh}等于" in text)
    return family, unit, value


def test_train_and_heldout_share_no_problem():
    train = {_problem_key(r) for r in instruction_records(6000, seed=0, split="train")}
    train |= {_problem_key(r) for r in instruction_records(3000, seed=1, split="train")}
    heldout = {_problem_key(r) for r in instruction_records(1200, seed=0, split="heldout")}
    assert len(heldout) > 600
    assert not train & heldout


# ----- preference records -------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_preference_rejected_answers_are_plausible_mistakes(split):
    records = preference_records(1200, seed=0, split=split)
    assert records == preference_records(1200, seed=0, split=split)
    kinds = Counter(r["mistake"] for r in records)
    for kind in ("off_by_one", "swapped_digits", "truncated", "swapped_letters", "unchanged", "swapped_order"):
        assert kinds[kind] > 0, kinds
    for r in records:
        assert set(r) == {"prompt", "chosen", "rejected", "family", "mistake"}
        assert r["rejected"] and r["rejected"] != r["chosen"]
        assert check_answer(r, r["chosen"])
        assert not check_answer(r, r["rejected"])


def test_preference_prompt_is_the_user_message():
    prefs = preference_records(12, seed=4)
    records = instruction_records(12, seed=4)
    for p, r in zip(prefs, records, strict=True):
        assert p["prompt"] == r["instruction"] + (f"\n{r['input']}" if r["input"] else "")
        assert p["chosen"] == r["output"]


# ----- readers ------------------------------------------------------------------------------


def test_pretrain_round_trips_through_jsonl_and_txt(tmp_path):
    docs = pretrain_corpus(20_000, seed=5)
    assert read_pretrain_file(write_jsonl([{"text": d} for d in docs], tmp_path / "c.jsonl")) == docs
    txt = tmp_path / "c.txt"
    txt.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    assert read_pretrain_file(txt) == docs


def test_read_pretrain_txt_blocks(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("first doc\nline two\n\n  \n\nsecond doc\r\n\r\nthird\n", encoding="utf-8")
    assert read_pretrain_file(path) == ["first doc\nline two", "second doc", "third"]


def test_sft_and_dpo_round_trip(tmp_path):
    sft = instruction_records(30, seed=1)
    assert read_sft_file(write_jsonl(sft, tmp_path / "sft.jsonl")) == [
        {k: r[k] for k in ("instruction", "input", "output")} for r in sft
    ]
    dpo = preference_records(30, seed=1)
    assert read_dpo_file(write_jsonl(dpo, tmp_path / "out" / "dpo.jsonl")) == [
        {k: r[k] for k in ("prompt", "chosen", "rejected")} for r in dpo
    ]
    path = tmp_path / "sft.json"
    path.write_text(json.dumps(sft, ensure_ascii=False), encoding="utf-8")
    assert read_sft_file(path) == read_sft_file(tmp_path / "sft.jsonl")


def test_sft_conversations_are_normalised(tmp_path):
    path = write_jsonl([
        {"conversations": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                      {"role": "assistant", "content": "4"}]},
        {"instruction": "Reverse.", "output": "cba"},
    ], tmp_path / "chat.jsonl")
    assert read_sft_file(path) == [
        {"instruction": "Hi?", "input": "", "output": "Hello."},
        {"instruction": "Be brief.\n\n2+2?", "input": "", "output": "4"},
        {"instruction": "Reverse.", "input": "", "output": "cba"},
    ]


def _write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD_SFT = '{"instruction": "a", "output": "b"}'
GOOD_DPO = '{"prompt": "p", "chosen": "a", "rejected": "b"}'


@pytest.mark.parametrize(
    ("reader", "bad_line", "message"),
    [
        (read_sft_file, '{"instruction": "a", "output": ', "invalid JSON"),
        (read_sft_file, '["not", "an", "object"]', "JSON object"),
        (read_sft_file, '{"prompt": "a", "response": "b"}', "'instruction' and 'output'"),
        (read_sft_file, '{"instruction": "a", "output": 3}', "must be a string"),
        (read_sft_file, '{"instruction": "a", "input": "x", "output": "  "}', "empty"),
        (read_sft_file, '{"conversations": [{"role": "user", "content": "a"}, {"role": "assistant", '
                        '"content": "b"}, {"role": "user", "content": "c"}]}', "multi-turn"),
        (read_sft_file, '{"conversations": [{"role": "user"}, {"role": "assistant", "content": "b"}]}',
         "missing key 'content'"),
        (read_sft_file, '{"conversations": "hello"}', "list of"),
        (read_dpo_file, '{"prompt": "p", "chosen": "a"}', "missing key 'rejected'"),
        (read_dpo_file, '{"prompt": "p", "chosen": "a", "rejected": "a"}', "identical"),
        (read_pretrain_file, '{"txt": "typo"}', "missing key 'text'"),
    ],
)
def test_readers_name_file_and_line_of_the_first_bad_record(tmp_path, reader, bad_line, message):
    good = {read_sft_file: GOOD_SFT, read_dpo_file: GOOD_DPO, read_pretrain_file: '{"text": "ok"}'}[reader]
    path = _write_lines(tmp_path / "data.jsonl", [good, "", bad_line, good])
    with pytest.raises(DataFormatError) as info:
        reader(path)
    text = str(info.value)
    assert f"{path}:3:" in text and message in text
    assert "\n" not in text
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("reader", [read_sft_file, read_dpo_file, read_pretrain_file])
@pytest.mark.parametrize("content", ["", "\n  \n\n"])
def test_readers_reject_empty_files(tmp_path, reader, content):
    for name in ("empty.jsonl", "empty.txt") if reader is read_pretrain_file else ("empty.jsonl",):
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        with pytest.raises(DataFormatError, match="no records"):
            reader(path)


def test_readers_reject_unsupported_suffix_and_bad_json_array(tmp_path):
    csv = tmp_path / "data.csv"
    csv.write_text("a,b\n", encoding="utf-8")
    for reader in (read_sft_file, read_dpo_file, read_pretrain_file):
        with pytest.raises(DataFormatError, match="unsupported file type"):
            reader(csv)
    array = tmp_path / "dpo.json"
    array.write_text(json.dumps([json.loads(GOOD_DPO), {"prompt": "p"}]), encoding="utf-8")
    with pytest.raises(DataFormatError, match="record 2"):
        read_dpo_file(array)
    with pytest.raises(FileNotFoundError):
        read_sft_file(tmp_path / "missing.jsonl")


def test_readers_reject_non_utf8(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match="UTF-8"):
        read_pretrain_file(path)
