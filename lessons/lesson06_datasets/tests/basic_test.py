"""Lesson 06, basic tier: the contract of every target on small, hand-checkable cases.

Every expected value below is worked out by hand in the test's docstring (or follows
from a stated property); none is copied from running the reference.

**The tokenizer.** The datasets only call ``tokenizer.encode(text)`` and read
``tokenizer.eos_token_id``, so the tests use ``CharTokenizer``, defined here: one id per
character, no merges, nothing trained, nothing from lesson 01 (a bug there cannot fail a
test here). Ids: ``<pad>=0 <bos>=1 <eos>=2 <unk>=3``, then ``ALPHABET`` in order from 4:
``a=4, b=5, c=6, d=7, e=8, f=9, …, z=29``, then space, punctuation, ``\\n``, ``<``,
``|``, ``>`` and digits; any other character is ``<unk>`` (3).

**Labels are already shifted** in every dataset of this lesson: ``labels[i]`` is the
token that follows ``input_ids[i]``, ``-100`` where no loss is taken.

The learner's code is imported inside each test (``learner(...)``), so a module that
fails to import is one failing test, not a broken suite.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from intro2llm_cli.testkit import assert_equal, assert_same_sequence, expect_error, learner, say

ALPHABET = "abcdefghijklmnopqrstuvwxyz .,!?'\n<|>0123456789"
PAD, BOS, EOS, UNK = 0, 1, 2, 3
IGNORE = -100
P = (1 << 31) - 1  # the Mersenne prime 2^31 - 1 of MinHash


class CharTokenizer:
    """One id per character (``a=4, b=5, …``); ``encode`` adds no special tokens."""

    pad_token_id, bos_token_id, eos_token_id, unk_token_id = PAD, BOS, EOS, UNK

    def __init__(self) -> None:
        self.ids = {c: i + 4 for i, c in enumerate(ALPHABET)}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [self.ids.get(c, UNK) for c in text]

    @property
    def vocab_size(self) -> int:
        return 4 + len(ALPHABET)


TOK = CharTokenizer()

# Hints shown under a failing comparison (zh, en).
SHIFT_HINT = ("labels 没有移位？labels = chunk[1:]，input_ids = chunk[:-1]；labels[i] 是 input_ids[i] 的下一个 token",
              "labels not shifted? labels = chunk[1:], input_ids = chunk[:-1]; labels[i] is the token after input_ids[i]")
EOS_HINT = ("拼接的文档之间少了 EOS？每篇文档编码后都要追加 tokenizer.eos_token_id(编码为空的文档跳过)",
            "EOS missing between packed documents? append tokenizer.eos_token_id after every document "
            "(skip documents that encode to nothing)")
CHUNK_HINT = ("每块取 block_size + 1 个 token，块与块互不重叠，凑不满一块的尾巴丢掉(不要填充)",
              "cut the stream into non-overlapping chunks of block_size + 1 tokens and drop the tail "
              "(do not pad it)")
PAD_LABEL_HINT = ("padding 位置的 labels 应为 -100(不计入 loss)，input_ids 才用 pad_token_id",
                  "padding labels should be -100 (left out of the loss); only input_ids use pad_token_id")
MASK_HINT = ("attention_mask：真实 token 为 1，padding 为 0；按长度设置，不要比较 input_ids == pad_token_id",
             "attention_mask is 1 on real tokens and 0 on padding; set it from each item's length, "
             "not from input_ids == pad_token_id")
PROMPT_HINT = ("prompt 没有屏蔽，或屏蔽差了一位？labels[:P - 1] = -100；labels[P - 1] 预测回答的第一个 token，要保留",
               "prompt not masked, or masked off by one? labels[:P - 1] = -100; labels[P - 1] predicts the "
               "first response token and is learned")
SFT_EOS_HINT = ("回答后面要接 eos_token_id，模型才学会停下；截断到 max_length + 1 个 token 之后再移位",
                "append eos_token_id after the response so the model learns to stop; truncate to "
                "max_length + 1 tokens, then shift")


def _pretrain():
    return learner("data.pretrain_dataset")


def _sft():
    return learner("data.sft_dataset")


def _dpo():
    return learner("data.dpo_dataset")


def _filtering():
    return learner("data.filtering")


def ids(text: str) -> list[int]:
    return TOK.encode(text)


def _long_list(value, what: str) -> list[int]:
    """A 1-D or 2-D torch.long tensor as nested lists (type and dtype checked first)."""
    if not isinstance(value, torch.Tensor):
        raise AssertionError(say(f"{what} 应是 torch.Tensor，实际是 {type(value).__name__}",
                                 f"{what} should be a torch.Tensor, got {type(value).__name__}"))
    assert_equal(value.dtype, torch.long, f"{what}.dtype")
    return value.tolist()


def _same(actual, expected: list, what: str, hint: tuple[str, str] | None = None) -> None:
    """Tensor (or list) equal to ``expected`` element by element; the first difference and a hint."""
    try:
        got = _long_list(actual, what) if isinstance(actual, torch.Tensor) or not isinstance(actual, list) else actual
        assert_same_sequence(got, expected, what)
    except AssertionError as exc:
        if hint is None:
            raise
        raise AssertionError(f"{exc}\n{say(*hint)}") from None


# ============================================================ PretrainDataset


@pytest.mark.symbol("PretrainDataset.__init__")
def test_pretrain_blocks_are_documents_joined_by_eos_cut_into_chunks_of_block_size_plus_one():
    """Documents "ab", "cde", "f" with block_size B = 3::

        stream  4 5 2 6 7 8 2 9 2     (a=4 b=5 EOS=2 c=6 d=7 e=8 EOS f=9 EOS), 9 tokens
        chunks of B + 1 = 4:  [4 5 2 6]  [7 8 2 9];  tail [2] dropped

    so ``len == 2``, ``blocks`` is [2, 4] long, ``num_tokens == 9``, ``num_dropped == 1``."""
    ds = _pretrain().PretrainDataset(["ab", "cde", "f"], TOK, block_size=3)
    assert_equal(ds.block_size, 3, "PretrainDataset(...).block_size")
    _same(ds.blocks, [[4, 5, 2, 6], [7, 8, 2, 9]], "PretrainDataset(['ab', 'cde', 'f'], B=3).blocks",
          hint=EOS_HINT)
    assert_equal(len(ds), 2, "len(PretrainDataset(['ab', 'cde', 'f'], B=3))")
    assert_equal(ds.num_tokens, 9, "num_tokens (stream length, EOS included)")
    assert_equal(ds.num_dropped, 1, "num_dropped (tail shorter than B + 1)")


@pytest.mark.symbol("PretrainDataset.__getitem__")
def test_pretrain_items_are_input_ids_and_labels_shifted_by_one():
    """Same documents, B = 3: chunk 0 = [4 5 2 6] gives ``input_ids = [4, 5, 2]``,
    ``labels = [5, 2, 6]``; chunk 1 = [7 8 2 9] gives ``[7, 8, 2]`` and ``[8, 2, 9]``.
    Each is a [B] torch.long tensor; ``labels[i]`` is the token after ``input_ids[i]``."""
    ds = _pretrain().PretrainDataset(["ab", "cde", "f"], TOK, block_size=3)
    expected = [([4, 5, 2], [5, 2, 6]), ([7, 8, 2], [8, 2, 9])]
    for i, (inputs, labels) in enumerate(expected):
        item = ds[i]
        assert_equal(sorted(item), ["input_ids", "labels"], f"dataset[{i}].keys()")
        _same(item["input_ids"], inputs, f"dataset[{i}]['input_ids']", hint=SHIFT_HINT)
        _same(item["labels"], labels, f"dataset[{i}]['labels']", hint=SHIFT_HINT)


@pytest.mark.symbol("PretrainDataset.__init__")
@pytest.mark.parametrize("block_size, expected_len, expected_dropped", [
    (1, 6, 0),   # stream of 12 tokens, chunks of 2: 6 chunks, nothing left
    (2, 4, 0),   # chunks of 3: 4 chunks
    (3, 3, 0),   # chunks of 4: 3 chunks
    (4, 2, 2),   # chunks of 5: 2 chunks, 2 tokens dropped
    (5, 2, 0),   # chunks of 6: 2 chunks
    (6, 1, 5),   # chunks of 7: 1 chunk, 5 dropped
    (11, 1, 0),  # chunks of 12: the whole stream
])
def test_pretrain_length_is_stream_length_floor_divided_by_block_size_plus_one(block_size, expected_len,
                                                                               expected_dropped):
    """Documents "hello", "world" -> stream ``h e l l o EOS w o r l d EOS``, 12 tokens;
    ``len = 12 // (B + 1)`` non-overlapping chunks, ``num_dropped = 12 - len * (B + 1)``
    (the tail is dropped, never padded into an extra block)."""
    ds = _pretrain().PretrainDataset(["hello", "world"], TOK, block_size=block_size)
    stream = ids("hello") + [EOS] + ids("world") + [EOS]
    chunk = block_size + 1
    try:
        assert_equal(len(ds), expected_len, f"len(PretrainDataset(['hello', 'world'], B={block_size}))")
        assert_equal(ds.num_dropped, expected_dropped, f"num_dropped with B={block_size}")
        assert_equal(ds.num_tokens, 12, "num_tokens")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{say(*CHUNK_HINT)}") from None
    for i in range(expected_len):
        item = ds[i]
        _same(item["input_ids"], stream[i * chunk : i * chunk + block_size], f"dataset[{i}]['input_ids'] (B={block_size})",
              hint=CHUNK_HINT)
        _same(item["labels"], stream[i * chunk + 1 : (i + 1) * chunk], f"dataset[{i}]['labels'] (B={block_size})",
              hint=SHIFT_HINT)


@pytest.mark.symbol("PretrainDataset.__init__")
def test_pretrain_skips_empty_documents_without_a_lone_eos():
    """"ab", "", "c" with B = 2: the empty document adds nothing, so the stream is
    ``4 5 2 6 2`` (5 tokens), one chunk [4 5 2], tail [6 2] dropped. A lone EOS for the
    empty document would give ``4 5 2 2 6 2`` and two chunks."""
    ds = _pretrain().PretrainDataset(["ab", "", "c"], TOK, block_size=2)
    assert_equal(ds.num_tokens, 5, "num_tokens of ['ab', '', 'c'] (the empty document adds no EOS)")
    _same(ds.blocks, [[4, 5, 2]], "blocks of ['ab', '', 'c'], B=2")


@pytest.mark.symbol("PretrainDataset.__init__")
def test_pretrain_without_add_eos_runs_documents_together():
    """``add_eos=False`` (an experiment): "ab", "cd" -> stream ``4 5 6 7``; B = 3 -> one block."""
    ds = _pretrain().PretrainDataset(["ab", "cd"], TOK, block_size=3, add_eos=False)
    _same(ds.blocks, [[4, 5, 6, 7]], "blocks of ['ab', 'cd'], B=3, add_eos=False")


@pytest.mark.symbol("PretrainDataset.__init__")
@pytest.mark.parametrize("block_size", [0, -1, 2.0, True])
def test_pretrain_rejects_a_block_size_that_is_not_a_positive_integer(block_size):
    """``block_size`` must be an int >= 1 (``True`` is a bool, not a size): ValueError."""
    expect_error(ValueError, lambda: _pretrain().PretrainDataset(["abcdef"], TOK, block_size=block_size),
                 f"PretrainDataset(['abcdef'], block_size={block_size!r})")


@pytest.mark.symbol("PretrainDataset.__init__")
def test_pretrain_rejects_a_corpus_shorter_than_one_block():
    """"ab" + EOS is 3 tokens; B = 3 needs 4 for one chunk: ValueError (not an empty dataset)."""
    expect_error(ValueError, lambda: _pretrain().PretrainDataset(["ab"], TOK, block_size=3),
                 "PretrainDataset(['ab'], block_size=3)")


@pytest.mark.symbol("PretrainDataset.__getitem__")
def test_pretrain_items_are_copies_that_do_not_change_the_dataset():
    """Writing into an item (say, masking a label) must not change ``blocks`` or later items."""
    ds = _pretrain().PretrainDataset(["ab", "cde", "f"], TOK, block_size=3)
    item = ds[0]
    item["input_ids"][0] = 99
    item["labels"][0] = IGNORE
    again = ds[0]
    _same(again["input_ids"], [4, 5, 2], "dataset[0]['input_ids'] after editing an earlier copy",
          hint=("返回 chunk[:-1].clone() / chunk[1:].clone()，不要返回 self.blocks 的视图",
                "return chunk[:-1].clone() / chunk[1:].clone(), not views into self.blocks"))
    _same(again["labels"], [5, 2, 6], "dataset[0]['labels'] after editing an earlier copy")


# ============================================================ collate


@pytest.mark.symbol("collate")
def test_collate_right_pads_inputs_with_pad_id_labels_with_ignore_and_masks_padding():
    """Items of lengths 3 and 1, ``pad_token_id = 9``::

        input_ids       [[4, 5, 6], [7, 9, 9]]
        labels          [[5, 6, 2], [8, -100, -100]]
        attention_mask  [[1, 1, 1], [1, 0, 0]]

    all [2, 3] torch.long (dynamic padding: L = 3, the longest item)."""
    batch = [{"input_ids": torch.tensor([4, 5, 6]), "labels": torch.tensor([5, 6, 2])},
             {"input_ids": torch.tensor([7]), "labels": torch.tensor([8])}]
    out = _pretrain().collate(batch, pad_token_id=9)
    assert_equal(sorted(out), ["attention_mask", "input_ids", "labels"], "collate(...).keys()")
    _same(out["input_ids"], [[4, 5, 6], [7, 9, 9]], "collate(...)['input_ids']",
          hint=("右填充：input_ids[i, :n] = 原序列，其余为 pad_token_id", "right padding: input_ids[i, :n] = the item, "
                "the rest pad_token_id"))
    _same(out["labels"], [[5, 6, 2], [8, IGNORE, IGNORE]], "collate(...)['labels']", hint=PAD_LABEL_HINT)
    _same(out["attention_mask"], [[1, 1, 1], [1, 0, 0]], "collate(...)['attention_mask']", hint=MASK_HINT)


@pytest.mark.symbol("collate")
def test_collate_masks_by_length_even_when_a_real_token_equals_the_pad_id():
    """Lists are accepted too. A real token may equal the pad id (here ``pad_token_id = 0``
    and the first item starts with a real 0): the mask comes from lengths, so it is
    ``[[1, 1, 1], [1, 1, 0]]``, not ``input_ids != 0``. Labels keep a real ``-100`` as is."""
    batch = [{"input_ids": [0, 5, 6], "labels": [5, 6, IGNORE]}, {"input_ids": [7, 8], "labels": [8, 2]}]
    out = _pretrain().collate(batch, pad_token_id=0)
    _same(out["input_ids"], [[0, 5, 6], [7, 8, 0]], "collate(lists)['input_ids']")
    _same(out["labels"], [[5, 6, IGNORE], [8, 2, IGNORE]], "collate(lists)['labels']", hint=PAD_LABEL_HINT)
    _same(out["attention_mask"], [[1, 1, 1], [1, 1, 0]], "collate(lists)['attention_mask']", hint=MASK_HINT)


@pytest.mark.symbol("collate")
def test_collate_pads_only_to_the_longest_item_of_the_batch():
    """Two items of length 2: ``L = 2``, no padding at all, mask all ones."""
    batch = [{"input_ids": [4, 5], "labels": [5, 2]}, {"input_ids": [6, 7], "labels": [7, 2]}]
    out = _pretrain().collate(batch, pad_token_id=0)
    _same(out["input_ids"], [[4, 5], [6, 7]], "collate(equal lengths)['input_ids']")
    _same(out["labels"], [[5, 2], [7, 2]], "collate(equal lengths)['labels']")
    _same(out["attention_mask"], [[1, 1], [1, 1]], "collate(equal lengths)['attention_mask']", hint=MASK_HINT)


@pytest.mark.symbol("collate")
def test_collate_rejects_an_empty_batch():
    expect_error(ValueError, lambda: _pretrain().collate([], pad_token_id=0), "collate([], pad_token_id=0)")


# ============================================================ build_sft_example


@pytest.mark.symbol("build_sft_example")
def test_sft_example_masks_labels_that_predict_prompt_tokens():
    """Prompt ids ``[10, 11, 12]`` (P = 3), response ``[20, 21]``, EOS 2, T = 16::

        ids         10 11 12 20 21 2
        input_ids   10 11 12 20 21
        labels      -100 -100 20 21 2     (labels[:P - 1] masked; labels[P - 1] = 20 is learned)
    """
    out = _sft().build_sft_example([10, 11, 12], [20, 21], eos_token_id=2, max_length=16)
    assert_equal(sorted(out), ["input_ids", "labels"], "build_sft_example(...).keys()")
    _same(out["input_ids"], [10, 11, 12, 20, 21], "build_sft_example(...)['input_ids']", hint=SFT_EOS_HINT)
    _same(out["labels"], [IGNORE, IGNORE, 20, 21, 2], "build_sft_example(...)['labels']", hint=PROMPT_HINT)


@pytest.mark.symbol("build_sft_example")
@pytest.mark.parametrize("max_length, inputs, labels", [
    # ids = 10 11 12 20 21 22 2 (7 tokens), truncated to T + 1, then shifted
    (6, [10, 11, 12, 20, 21, 22], [IGNORE, IGNORE, 20, 21, 22, 2]),  # everything fits exactly
    (5, [10, 11, 12, 20, 21], [IGNORE, IGNORE, 20, 21, 22]),          # EOS cut off
    (4, [10, 11, 12, 20], [IGNORE, IGNORE, 20, 21]),
    (3, [10, 11, 12], [IGNORE, IGNORE, 20]),                          # P = T: one response label
])
def test_sft_example_truncates_to_max_length_plus_one_tokens_before_shifting(max_length, inputs, labels):
    """Prompt [10, 11, 12], response [20, 21, 22]: ``n = min(P + R, T)`` inputs; the last
    label is the token after the last input (the EOS only if it fits)."""
    out = _sft().build_sft_example([10, 11, 12], [20, 21, 22], eos_token_id=2, max_length=max_length)
    _same(out["input_ids"], inputs, f"build_sft_example(T={max_length})['input_ids']", hint=SFT_EOS_HINT)
    _same(out["labels"], labels, f"build_sft_example(T={max_length})['labels']", hint=PROMPT_HINT)


@pytest.mark.symbol("build_sft_example")
@pytest.mark.parametrize("prompt, labels", [
    ([], [21, 2]),            # P = 0: nothing to mask (labels[:-1] would mask almost everything)
    ([10], [20, 21, 2]),      # P = 1: labels[:0], nothing masked; labels[0] predicts r0
    ([10, 11], [IGNORE, 20, 21, 2]),
])
def test_sft_example_short_prompts_mask_max_of_p_minus_one_and_zero_labels(prompt, labels):
    """Response [20, 21], EOS 2, T = 16: ``labels[:max(P - 1, 0)] = -100``."""
    out = _sft().build_sft_example(prompt, [20, 21], eos_token_id=2, max_length=16)
    _same(out["input_ids"], [*prompt, 20, 21], f"build_sft_example(P={len(prompt)})['input_ids']")
    _same(out["labels"], labels, f"build_sft_example(P={len(prompt)})['labels']", hint=PROMPT_HINT)


@pytest.mark.symbol("build_sft_example")
def test_sft_example_rejects_a_prompt_longer_than_max_length():
    """P = 4 > T = 3: no response token would fit, ValueError."""
    expect_error(ValueError, lambda: _sft().build_sft_example([10, 11, 12, 13], [20], eos_token_id=2, max_length=3),
                 "build_sft_example(P=4, max_length=3)")


@pytest.mark.symbol("build_sft_example")
def test_sft_dataset_items_learn_only_the_response_and_eos():
    """``SFTDataset`` formats ``{"instruction": "hi", "input": "", "output": "yo"}`` as the
    prompt ``"<|user|>\\nhi\\n<|assistant|>\\n"`` (26 characters, so P = 26) and the
    response "yo": 25 masked labels, then ``y o EOS``."""
    record = {"instruction": "hi", "input": "", "output": "yo"}
    ds = _sft().SFTDataset([record], TOK, max_length=64)
    prompt = ids("<|user|>\nhi\n<|assistant|>\n")
    assert_equal(len(prompt), 26, "prompt length")
    item = ds[0]
    _same(item["input_ids"], prompt + ids("yo"), "SFTDataset[0]['input_ids']")
    _same(item["labels"], [IGNORE] * 25 + ids("yo") + [EOS], "SFTDataset[0]['labels']", hint=PROMPT_HINT)


# ============================================================ DPODataset


DPO_PROMPT = "<|user|>\nhi\n<|assistant|>\n"  # format_prompt({"instruction": "hi"}), 26 characters


@pytest.mark.symbol("DPODataset.__getitem__")
def test_dpo_item_has_chosen_and_rejected_sequences_with_the_prompt_masked():
    """Record ``{"prompt": "hi", "chosen": "yes", "rejected": "no"}``, T = 64. Each side is
    ``build_sft_example(prompt, answer)``: inputs ``prompt + answer``, labels 25 × -100 then
    ``answer + EOS`` (P = 26); chosen has 29 inputs, rejected 28."""
    ds = _dpo().DPODataset([{"prompt": "hi", "chosen": "yes", "rejected": "no"}], TOK, max_length=64)
    item = ds[0]
    assert_equal(sorted(item), ["chosen_input_ids", "chosen_labels", "rejected_input_ids", "rejected_labels"],
                 "DPODataset[0].keys()")
    prompt = ids(DPO_PROMPT)
    _same(item["chosen_input_ids"], prompt + ids("yes"), "DPODataset[0]['chosen_input_ids']")
    _same(item["chosen_labels"], [IGNORE] * 25 + ids("yes") + [EOS], "DPODataset[0]['chosen_labels']",
          hint=PROMPT_HINT)
    _same(item["rejected_input_ids"], prompt + ids("no"), "DPODataset[0]['rejected_input_ids']",
          hint=("rejected 要用 rejected_ids 拼接，不是 chosen_ids", "build rejected from rejected_ids, not chosen_ids"))
    _same(item["rejected_labels"], [IGNORE] * 25 + ids("no") + [EOS], "DPODataset[0]['rejected_labels']",
          hint=PROMPT_HINT)


@pytest.mark.symbol("DPODataset.__getitem__")
def test_dpo_item_truncates_each_side_to_max_length():
    """T = 28 = P + 2: chosen ``prompt y e s EOS`` keeps 28 inputs (``prompt y e``) and
    labels ending ``y e s``; rejected ``prompt n o EOS`` is 29 tokens, so 28 inputs and
    labels ending ``n o EOS``."""
    ds = _dpo().DPODataset([{"prompt": "hi", "chosen": "yes", "rejected": "no"}], TOK, max_length=28)
    item = ds[0]
    prompt = ids(DPO_PROMPT)
    _same(item["chosen_input_ids"], prompt + ids("ye"), "DPODataset(T=28)[0]['chosen_input_ids']")
    _same(item["chosen_labels"], [IGNORE] * 25 + ids("yes"), "DPODataset(T=28)[0]['chosen_labels']",
          hint=PROMPT_HINT)
    _same(item["rejected_input_ids"], prompt + ids("no"), "DPODataset(T=28)[0]['rejected_input_ids']")
    _same(item["rejected_labels"], [IGNORE] * 25 + ids("no") + [EOS], "DPODataset(T=28)[0]['rejected_labels']",
          hint=PROMPT_HINT)


# ============================================================ length_filter, repetition_filter


@pytest.mark.symbol("length_filter")
def test_length_filter_bounds_are_inclusive_and_ignore_surrounding_whitespace():
    """min 20, max 25, lengths counted after ``strip()``: 19 chars inside 3 spaces dropped
    (22 with them); 24 chars inside 4 spaces kept (28 with them) and returned unchanged,
    spaces included; 25 kept; 26 dropped; 20 kept; order preserved."""
    texts = ["   " + "x" * 19, "  " + "x" * 24 + "  ", "y" * 25, "z" * 26, "w" * 20]
    kept = _filtering().length_filter(texts, min_chars=20, max_chars=25)
    assert_same_sequence(kept, [texts[1], texts[2], texts[4]], "length_filter(texts, 20, 25)")


@pytest.mark.symbol("length_filter")
def test_length_filter_rejects_an_empty_range():
    expect_error(ValueError, lambda: _filtering().length_filter(["abc"], min_chars=10, max_chars=5),
                 "length_filter(min_chars=10, max_chars=5)")


@pytest.mark.symbol("repetition_filter")
def test_repetition_filter_drops_texts_whose_duplicate_ngram_fraction_exceeds_max_ratio():
    """n = 2. "the cat sat on the mat": 5 bigrams, 5 distinct, ratio 0. "Buy now BUY NOW buy
    now" (lowercased): 5 bigrams, 2 distinct, ratio 1 - 2/5 = 0.6. "好好好好好好": each CJK
    character is a word, 5 bigrams, 1 distinct, ratio 0.8. "hi": fewer than 2 words,
    ratio 0. max_ratio 0.5 keeps the first and the last; 0.6 (inclusive) adds "buy now"."""
    texts = ["the cat sat on the mat", "Buy now BUY NOW buy now", "好好好好好好", "hi"]
    rf = _filtering().repetition_filter
    hint = ("比例是重复 n-gram 的比例：1 - 不同 n-gram 数 / 全部 n-gram 数(按词，小写，每个汉字一个词)",
            "the ratio is the fraction of duplicate n-grams: 1 - distinct / all (words, lowercased, "
            "one word per CJK character)")
    try:
        assert_same_sequence(rf(texts, n=2, max_ratio=0.5), [texts[0], texts[3]], "repetition_filter(n=2, 0.5)")
        assert_same_sequence(rf(texts, n=2, max_ratio=0.6), [texts[0], texts[1], texts[3]],
                             "repetition_filter(n=2, 0.6)")
        assert_same_sequence(rf(texts, n=2, max_ratio=0.8), texts, "repetition_filter(n=2, 0.8)")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{say(*hint)}") from None


@pytest.mark.symbol("repetition_filter")
def test_repetition_filter_counts_word_ngrams_of_length_n():
    """n = 3: "buy now buy now buy now" has 4 trigrams, 2 distinct (ratio 0.5) -> dropped at
    0.4; "a b c a b d": trigrams abc bca cab abd, all distinct -> kept (with n = 2 its
    bigrams ab bc ca ab bd repeat once: 0.2). n < 1 raises ValueError."""
    rf = _filtering().repetition_filter
    texts = ["buy now buy now buy now", "a b c a b d"]
    assert_same_sequence(rf(texts, n=3, max_ratio=0.4), [texts[1]], "repetition_filter(n=3, 0.4)")
    assert_same_sequence(rf(texts, n=2, max_ratio=0.1), [], "repetition_filter(n=2, 0.1)")
    assert_same_sequence(rf(texts, n=2, max_ratio=0.2), [texts[1]], "repetition_filter(n=2, 0.2)")
    expect_error(ValueError, lambda: rf(texts, n=0), "repetition_filter(n=0)")


# ============================================================ quality_score

PROSE = ("The quick brown fox jumps over the lazy dog while the farmer walks slowly across "
         "the green field near his old house.")  # 22 words of 3-6 letters, one line, no junk


@pytest.mark.symbol("quality_score")
def test_quality_score_is_one_for_prose_and_zero_for_digit_tables_and_repeated_lines():
    """Clean prose passes every rule: 1.0 (above everything else). A table of digits has no token with a letter:
    0.0. The same line five times has 80 % duplicate lines (> 30 %): 0.0. Four lines of
    six words with one repeated (25 % duplicates) lose ``1 - 0.25 / 0.3``: 1/6."""
    qs = _filtering().quality_score
    table = "\n".join(f"{i} {i * 7} {i * 13} {i * 31}" for i in range(1, 9))  # 8 rows of 4 numbers
    repeated = "\n".join(["Buy cheap watches online today friends."] * 5)
    some_repeats = "\n".join(["The old man walked home slowly.", "His small dog followed him there.",
                              "The old man walked home slowly.", "They both rested near the river."])
    scores = {"prose": qs(PROSE), "some repeated lines": qs(some_repeats), "table of digits": qs(table),
              "one line five times": qs(repeated)}
    expected = {"prose": 1.0, "some repeated lines": 1 / 6, "table of digits": 0.0, "one line five times": 0.0}
    for name, value in expected.items():
        assert abs(scores[name] - value) < 1e-9, say(
            f"quality_score({name}) 应为 {value:.4f}，实际 {scores[name]!r}；检查是否有因子写反(应是 1 - x，不是 x)",
            f"quality_score({name}) should be {value:.4f}, got {scores[name]!r}; is a factor inverted "
            "(1 - x, not x)?")


@pytest.mark.symbol("quality_score")
@pytest.mark.parametrize("name, text, expected", [
    ("empty", "   ", 0.0),
    ("10 words", "The quick brown fox jumps over the lazy dog today.", 0.5),         # length: 10 / 20
    ("20 one-letter words", " ".join("abcdefghijklmnopqrst"), 1 / 3),              # mean length 1: 1 - 2/3
    ("20 words and 10 numbers", PROSE.split(".")[0].rsplit(" ", 2)[0] + " 1 2 3 4 5 6 7 8 9 10", 5 / 6),
    ("20 CJK characters", "今天天气很好，我们一起去公园散步，然后回家吃饭睡觉。", 1.0),  # word length skipped
], ids=["empty", "10-words", "one-letter-words", "numbers", "cjk"])
def test_quality_score_factors_on_hand_made_texts(name, text, expected):
    """Each text fails (at most) one rule by a known amount:

    - 10 words of clean prose: length factor ``min(1, 10 / 20) = 0.5``;
    - 20 one-letter words: mean word length 1, distance 2 from [3, 10]: ``1 - 2/3``;
    - 20 words (the first 20 of PROSE) and 10 number tokens: 20 of 30 tokens have a letter,
      ``(20 / 30) / 0.8 = 5/6``;
    - 20 CJK characters (+ ``，。``, common punctuation): 20 words, mostly CJK so the word
      length rule is skipped, one token containing letters: 1.0;
    - only whitespace: 0.0.
    """
    score = _filtering().quality_score(text)
    assert abs(score - expected) < 1e-9, say(f"quality_score({name}) 应为 {expected:.4f}，实际 {score!r}",
                                             f"quality_score({name}) should be {expected:.4f}, got {score!r}")


@pytest.mark.symbol("quality_score")
def test_quality_score_junk_symbols_lower_the_score_linearly():
    """PROSE with ``k`` characters replaced by ``#`` (junk): ``1 - (k / n) / 0.25`` with
    ``n = len(text)``; 25 % junk or more gives 0."""
    qs = _filtering().quality_score
    n = len(PROSE)
    for k in (3, 10):
        text = "#" * k + PROSE[k:]
        # replacing the first k characters shortens no word below 3 letters on average, and
        # "#quick" still contains letters: only the junk factor moves
        expected = 1 - (k / n) / 0.25
        score = qs(text)
        assert abs(score - expected) < 1e-9, say(
            f"{k} 个 '#' 时 quality_score 应为 {expected:.4f}，实际 {score!r}",
            f"with {k} '#' quality_score should be {expected:.4f}, got {score!r}")


# ============================================================ MinHash


def _naive_signature(mh, text: str) -> list[int]:
    """min over shingle hashes x of (a·x + b) mod p, in Python integers, one hash at a time."""
    xs = [int(x) for x in mh.shingle_hashes(text)]
    a, b = [int(v) for v in mh.a], [int(v) for v in mh.b]
    return [min(((a[i] * x + b[i]) % P for x in xs), default=P) for i in range(mh.num_perm)]


@pytest.mark.symbol("MinHash.signature")
@pytest.mark.parametrize("text", ["hello", "hello world", "Hello, 世界! the minhash signature of a sentence."])
def test_signature_is_the_minimum_universal_hash_over_shingles(text):
    """``sig[i] = min over x of (a[i]·x + b[i]) mod p``, ``x`` the shingle hashes
    (``shingle_hashes``, given), worked out here in Python integers. "hello" is one
    shingle; the others have many. Shape [num_perm], dtype int64."""
    mh = _filtering().MinHash(num_perm=16, ngram=5, seed=3)
    sig = mh.signature(text)
    if not isinstance(sig, np.ndarray):
        raise AssertionError(say(f"signature 应返回 np.ndarray，实际 {type(sig).__name__}",
                                 f"signature should return an np.ndarray, got {type(sig).__name__}"))
    assert_equal(sig.shape, (16,), "MinHash(num_perm=16).signature(text).shape")
    assert_equal(sig.dtype, np.dtype(np.int64), "signature dtype")
    _same(sig.tolist(), _naive_signature(mh, text), f"MinHash.signature({text!r})",
          hint=("每个哈希函数取所有 shingle 上 (a·x + b) mod p 的最小值(min，不是 max；先 mod p 再取最小)",
                "each hash function takes the minimum (not max) over shingles of (a·x + b) mod p "
                "(reduce mod p before the min)"))


@pytest.mark.symbol("MinHash.signature")
def test_signature_is_deterministic_and_equal_for_texts_equal_up_to_case_and_spacing():
    """Two ``MinHash`` objects with the same seed give the same signature; "Same  TEXT" and
    "same text" have the same shingles, so the same signature; the empty text has no
    shingle: all ``p = 2^31 - 1``."""
    f = _filtering()
    text = "the same text gives the same signature"
    _same(f.MinHash(seed=0).signature(text).tolist(), f.MinHash(seed=0).signature(text).tolist(),
          "signatures of one text from two MinHash(seed=0)")
    _same(f.MinHash(num_perm=32).signature("Same  TEXT").tolist(), f.MinHash(num_perm=32).signature("same text").tolist(),
          "signature('Same  TEXT') vs signature('same text')")
    _same(f.MinHash(num_perm=32).signature("").tolist(), [P] * 32, "MinHash(num_perm=32).signature('')",
          hint=("从 np.full(num_perm, p) 开始取最小值，空文本保持全为 p", "start from np.full(num_perm, p): "
                "the empty text keeps all p"))


# ============================================================ deduplicate

BASE = "The quick brown fox jumps over the lazy dog near the quiet river bank today."
OTHER = "A completely different sentence about databases and their indexes."


@pytest.mark.symbol("deduplicate")
def test_deduplicate_keeps_the_first_occurrence_of_exact_and_near_copies():
    """[BASE, OTHER, BASE, BASE + "!", BASE.upper()]: the copy, the near copy (one extra
    character) and the upper-case copy (same shingles after lowercasing) are duplicates of
    text 0, so the kept indices are [0, 1]. Texts are kept in order: first occurrence wins."""
    dd = _filtering().deduplicate
    texts = [BASE, OTHER, BASE, BASE.replace("today", "today!"), BASE.upper()]
    assert_same_sequence(dd(texts), [0, 1], "deduplicate([BASE, OTHER, BASE, BASE + '!', BASE.upper()])")
    assert_same_sequence(dd([OTHER, BASE, BASE]), [0, 1], "deduplicate([OTHER, BASE, BASE])")
    assert_same_sequence(dd([]), [], "deduplicate([])")


@pytest.mark.symbol("deduplicate")
def test_deduplicate_keeps_distinct_texts():
    """Three unrelated sentences share few shingles: all kept, ``[0, 1, 2]``."""
    texts = [BASE, OTHER, "Rain fell all night on the tin roof of the mountain cabin."]
    assert_same_sequence(_filtering().deduplicate(texts), [0, 1, 2], "deduplicate(three distinct texts)")


@pytest.mark.symbol("deduplicate")
def test_deduplicate_checks_its_arguments():
    """threshold must be in (0, 1]; ``bands * rows <= num_perm`` (5 × 4 > 16): ValueError.
    ``bands=4`` alone gives ``rows = 16 // 4``: two equal texts -> [0]."""
    dd = _filtering().deduplicate
    expect_error(ValueError, lambda: dd(["a"], threshold=0.0), "deduplicate(threshold=0.0)")
    expect_error(ValueError, lambda: dd(["a"], threshold=1.5), "deduplicate(threshold=1.5)")
    expect_error(ValueError, lambda: dd(["a"], num_perm=16, bands=5, rows=4), "deduplicate(bands=5, rows=4, num_perm=16)")
    assert_same_sequence(dd(["a b c d e f", "a b c d e f"], num_perm=16, bands=4), [0], "deduplicate(num_perm=16, bands=4)")
