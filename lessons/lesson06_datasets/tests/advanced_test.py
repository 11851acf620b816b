"""Lesson 06, advanced tier: random documents and records against the reference, MinHash
statistics, deduplication recall and precision.

Expected values come from three places, never from outputs pasted into this file:

- **the reference library** (``intro2llm.data``), run on the same inputs during the test:
  datasets item by item, ``collate``, the filters and ``quality_score``. Everything here is
  integer bookkeeping, so "equal" means exactly equal (quality scores within 1e-12);
- **MinHash signatures equal the reference's exactly.** The hashing scheme is fixed by the
  contract: ``a``, ``b`` are drawn in ``MinHash.__init__`` and the shingle hashes come from
  ``shingle_hashes`` (both given, not targets); ``signature`` is
  ``min over x of (a·x + b) mod p``, exact in int64. Any correct implementation gives the
  same integers;
- **statistics**: for k = 128 hash functions the estimated Jaccard ``J^`` is a binomial
  fraction with standard error ``σ = sqrt(J (1 - J) / k)`` (<= 0.044). Per pair
  ``|J^ - J| <= 3σ + 1/k`` fails for ~0.3 % of pairs, so up to 2 % may miss; every pair
  must lie within ``5 · 0.5 / sqrt(k)``. Deduplication of planted near-copies (exact
  Jaccard >= 0.8) must reach recall >= 0.95, and texts with Jaccard <= 0.6 to every other
  (estimate >= 0.8 would be a 4.7σ event) must all be kept.

The tokenizer is the basic tier's ``CharTokenizer`` (one id per character), defined again
here so each file stands alone. Every random source is a seeded ``random.Random``.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from intro2llm_cli.testkit import assert_equal, assert_same_sequence, learner, reference, say

ALPHABET = "abcdefghijklmnopqrstuvwxyz .,!?'\n<|>0123456789"
PAD, BOS, EOS, UNK = 0, 1, 2, 3
IGNORE = -100


class CharTokenizer:
    """One id per character (``a=4, b=5, …``); unknown characters are ``<unk>`` (3)."""

    pad_token_id, bos_token_id, eos_token_id, unk_token_id = PAD, BOS, EOS, UNK

    def __init__(self) -> None:
        self.ids = {c: i + 4 for i, c in enumerate(ALPHABET)}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [self.ids.get(c, UNK) for c in text]


TOK = CharTokenizer()
SEEDS = [0, 1, 2]


def _ref(module: str):
    return reference(f"data.{module}")


def _mine(module: str):
    return learner(f"data.{module}")


def _as_list(value, what: str) -> list:
    if not isinstance(value, torch.Tensor):
        raise AssertionError(say(f"{what} 应是 torch.Tensor，实际是 {type(value).__name__}",
                                 f"{what} should be a torch.Tensor, got {type(value).__name__}"))
    assert_equal(value.dtype, torch.long, f"{what}.dtype")
    return value.tolist()


def _same_item(actual: dict, expected: dict, what: str, hint: tuple[str, str] | None = None) -> None:
    """Two dataset items (dicts of 1-D or 2-D long tensors) equal key by key, element by element."""
    assert_equal(sorted(actual), sorted(expected), f"{what}.keys()")
    for key in expected:
        try:
            assert_same_sequence(_as_list(actual[key], f"{what}[{key!r}]"), expected[key].tolist(),
                                 f"{what}[{key!r}]")
        except AssertionError as exc:
            if hint is None:
                raise
            raise AssertionError(f"{exc}\n{say(*hint)}") from None


# ----- random data --------------------------------------------------------------------------------

WORDS_RNG = random.Random(1)
VOCAB = ["".join(WORDS_RNG.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(WORDS_RNG.randint(2, 8)))
         for _ in range(2000)]


def random_document(rng: random.Random, lo: int = 0, hi: int = 40) -> str:
    """Characters of the alphabet, some unknown ones (-> <unk>), possibly empty."""
    pool = ALPHABET + "é中"
    return "".join(rng.choice(pool) for _ in range(rng.randint(lo, hi)))


def random_text(rng: random.Random, lo: int = 40, hi: int = 120) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(rng.randint(lo, hi)))


def edit_words(rng: random.Random, text: str, edits: int) -> str:
    """Replace, insert or delete ``edits`` random words."""
    words = text.split()
    for _ in range(edits):
        i, op = rng.randrange(len(words)), rng.random()
        if op < 0.5:
            words[i] = rng.choice(VOCAB)
        elif op < 0.75:
            words.insert(i, rng.choice(VOCAB))
        elif len(words) > 1:
            del words[i]
    return " ".join(words)


def messy_text(rng: random.Random) -> str:
    """Prose, repeats, digits, junk symbols, CJK, blank lines and spacing, mixed at random."""
    parts = []
    for _ in range(rng.randint(0, 8)):
        kind = rng.random()
        if kind < 0.35:
            parts.append(random_text(rng, 1, 25))
        elif kind < 0.5 and parts:
            parts.append(rng.choice(parts))  # a repeated line
        elif kind < 0.6:
            parts.append(" ".join(str(rng.randint(0, 999)) for _ in range(rng.randint(1, 8))))
        elif kind < 0.7:
            parts.append("".join(rng.choice("#@*{}[]^~|\\") for _ in range(rng.randint(1, 10))))
        elif kind < 0.8:
            parts.append("".join(rng.choice("今天天气很好我们一起去公园散步") for _ in range(rng.randint(1, 30))))
        elif kind < 0.9:
            parts.append(" ".join(rng.choice(["buy", "now", "cheap"]) for _ in range(rng.randint(2, 12))))
        else:
            parts.append(rng.choice(["", "   ", "Hello, World!", "a", "I"]))
    return rng.choice(["\n", " ", "\n\n"]).join(parts)


# ============================================================ datasets vs the reference


@pytest.mark.symbol("PretrainDataset.__init__")
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("block_size", [1, 7, 32])
def test_pretrain_dataset_equals_the_reference_item_by_item(seed, block_size):
    """60 random documents (some empty, some with unknown characters): same length,
    ``num_tokens``, ``num_dropped`` and every item as the reference."""
    rng = random.Random(seed)
    texts = [random_document(rng) for _ in range(60)]
    mine = _mine("pretrain_dataset").PretrainDataset(texts, TOK, block_size=block_size)
    ref = _ref("pretrain_dataset").PretrainDataset(texts, TOK, block_size=block_size)
    hint = ("EOS 放在每篇文档之后、块长 block_size + 1 互不重叠、尾巴丢弃、labels 移位一位：逐项对照",
            "check each: EOS after every document, non-overlapping chunks of block_size + 1, tail dropped, "
            "labels shifted by one")
    try:
        assert_equal(len(mine), len(ref), f"len(PretrainDataset) (seed {seed}, B={block_size})")
        assert_equal(mine.num_tokens, ref.num_tokens, "num_tokens")
        assert_equal(mine.num_dropped, ref.num_dropped, "num_dropped")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{say(*hint)}") from None
    for i in range(len(ref)):
        _same_item(mine[i], ref[i], f"dataset[{i}] (seed {seed}, B={block_size})", hint=hint)


@pytest.mark.symbol("PretrainDataset.__getitem__")
@pytest.mark.parametrize("seed", SEEDS)
def test_pretrain_labels_are_next_tokens_of_the_concatenated_stream(seed):
    """Property check (no reference): item ``i`` is ``stream[i(B+1) : (i+1)(B+1)]`` split
    into ``[:-1]`` / ``[1:]``, where the stream is every non-empty document followed by EOS."""
    rng = random.Random(100 + seed)
    texts = [random_document(rng) for _ in range(40)]
    stream = [t for text in texts if text for t in TOK.encode(text) + [EOS]]
    block = rng.randint(2, 20)
    ds = _mine("pretrain_dataset").PretrainDataset(texts, TOK, block_size=block)
    for i in range(len(ds)):
        chunk = stream[i * (block + 1) : (i + 1) * (block + 1)]
        item = ds[i]
        assert_same_sequence(_as_list(item["input_ids"], "input_ids"), chunk[:-1], f"dataset[{i}]['input_ids']")
        assert_same_sequence(_as_list(item["labels"], "labels"), chunk[1:], f"dataset[{i}]['labels']")


@pytest.mark.symbol("collate")
@pytest.mark.parametrize("seed", SEEDS)
def test_collate_equals_the_reference_on_random_batches(seed):
    """Batches of 1-8 items of lengths 1-20 (tensors or lists, labels with some -100,
    token ids that may equal the pad id), random pad id."""
    rng = random.Random(seed)
    for _ in range(20):
        batch = []
        for _ in range(rng.randint(1, 8)):
            n = rng.randint(1, 20)
            inputs = [rng.randint(0, 40) for _ in range(n)]
            labels = [rng.choice([IGNORE, rng.randint(0, 40)]) for _ in range(n)]
            as_tensor = rng.random() < 0.5
            batch.append({"input_ids": torch.tensor(inputs) if as_tensor else inputs,
                          "labels": torch.tensor(labels) if as_tensor else labels})
        pad = rng.randint(0, 5)
        _same_item(_mine("pretrain_dataset").collate(batch, pad), _ref("pretrain_dataset").collate(batch, pad),
                   f"collate(batch of {len(batch)}, pad_token_id={pad}) (seed {seed})")


@pytest.mark.symbol("build_sft_example")
@pytest.mark.parametrize("seed", SEEDS)
def test_sft_example_equals_the_reference_on_random_lengths(seed):
    """P from 0 to T, R from 0 to 12, T from 1 to 16: every truncation edge."""
    rng = random.Random(seed)
    for _ in range(200):
        max_length = rng.randint(1, 16)
        prompt = [rng.randint(4, 40) for _ in range(rng.randint(0, max_length))]
        response = [rng.randint(4, 40) for _ in range(rng.randint(0, 12))]
        args = (prompt, response, EOS, max_length)
        _same_item(_mine("sft_dataset").build_sft_example(*args), _ref("sft_dataset").build_sft_example(*args),
                   f"build_sft_example(P={len(prompt)}, R={len(response)}, T={max_length})")


def _records(rng: random.Random, n: int) -> list[dict[str, str]]:
    return [{"prompt": random_document(rng, 0, 20), "chosen": random_document(rng, 0, 15),
             "rejected": random_document(rng, 0, 15)} for _ in range(n)]


@pytest.mark.symbol("DPODataset.__getitem__")
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("max_length", [30, 45, 80])
def test_dpo_dataset_equals_the_reference_item_by_item(seed, max_length):
    """40 random records (prompt 26-46 tokens after the template, answers 0-15): every
    item's four tensors equal the reference's, including truncated ones."""
    rng = random.Random(seed)
    records = _records(rng, 40)
    mine = _mine("dpo_dataset").DPODataset(records, TOK, max_length=max_length)
    ref = _ref("dpo_dataset").DPODataset(records, TOK, max_length=max_length)
    assert_equal(len(mine), len(ref), "len(DPODataset)")
    for i in range(len(ref)):
        _same_item(mine[i], ref[i], f"DPODataset[{i}] (seed {seed}, T={max_length})")


# ============================================================ filters vs the reference


@pytest.mark.symbol("length_filter")
@pytest.mark.parametrize("seed", SEEDS)
def test_length_filter_equals_the_reference_on_random_texts(seed):
    rng = random.Random(seed)
    texts = [" " * rng.randint(0, 3) + random_document(rng, 0, 60) + "\n" * rng.randint(0, 2) for _ in range(200)]
    for _ in range(10):
        lo = rng.randint(0, 40)
        hi = lo + rng.randint(0, 30)
        assert_same_sequence(_mine("filtering").length_filter(texts, lo, hi),
                             _ref("filtering").length_filter(texts, lo, hi),
                             f"length_filter(texts, {lo}, {hi}) (seed {seed})")


@pytest.mark.symbol("repetition_filter")
@pytest.mark.parametrize("seed", SEEDS)
def test_repetition_filter_equals_the_reference_on_random_texts(seed):
    rng = random.Random(seed)
    texts = [messy_text(rng) for _ in range(200)]
    for n in (1, 2, 3, 5):
        for max_ratio in (0.0, 0.1, 0.3, 0.5):
            assert_same_sequence(_mine("filtering").repetition_filter(texts, n, max_ratio),
                                 _ref("filtering").repetition_filter(texts, n, max_ratio),
                                 f"repetition_filter(texts, n={n}, max_ratio={max_ratio}) (seed {seed})")


@pytest.mark.symbol("quality_score")
@pytest.mark.parametrize("seed", SEEDS)
def test_quality_score_equals_the_reference_on_random_texts(seed):
    rng = random.Random(seed)
    for i in range(300):
        text = messy_text(rng)
        mine = _mine("filtering").quality_score(text)
        want = _ref("filtering").quality_score(text)
        assert abs(float(mine) - want) <= 1e-12, say(
            f"第 {i} 条文本的 quality_score：参考 {want!r}，你的 {mine!r}\n文本：{text[:200]!r}",
            f"quality_score of text {i}: reference {want!r}, yours {mine!r}\ntext: {text[:200]!r}")


# ============================================================ MinHash


@pytest.mark.symbol("MinHash.signature")
@pytest.mark.parametrize("num_perm, seed", [(16, 3), (128, 0)])
def test_signature_equals_the_reference_exactly(num_perm, seed):
    """Random texts, CJK, tiny texts and one of more than 4096 shingles (several column
    blocks): the same int64 signature as the reference with the same ``num_perm`` and seed."""
    rng = random.Random(seed)
    texts = [random_text(rng) for _ in range(20)] + ["", "ab", "你好，世界", messy_text(rng),
                                                       random_text(rng, 1500, 1500)]
    mine = _mine("filtering").MinHash(num_perm=num_perm, seed=seed)
    ref = _ref("filtering").MinHash(num_perm=num_perm, seed=seed)
    for i, text in enumerate(texts):
        sig = mine.signature(text)
        if not isinstance(sig, np.ndarray) or sig.dtype != np.int64:
            raise AssertionError(say("signature 应返回 int64 的 np.ndarray", "signature should return an int64 np.ndarray"))
        assert_same_sequence(sig.tolist(), ref.signature(text).tolist(),
                             f"MinHash(num_perm={num_perm}, seed={seed}).signature(text {i}, {len(text)} chars)")


def _pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """Text pairs whose Jaccard similarity spreads over (0, 1]."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        a = random_text(rng)
        pairs.append((a, edit_words(rng, a, rng.randint(0, 60))))
    return pairs


@pytest.mark.symbol("MinHash.signature")
def test_minhash_estimates_are_within_three_sigma_of_exact_jaccard():
    """150 pairs, k = 128: ``|J^ - J| <= 3σ + 1/k`` for all but 2 % of pairs, every pair
    within ``5 · 0.5 / sqrt(k) = 0.22``, and the standardised errors unbiased
    (``|mean| < 3 / sqrt(n)``)."""
    f, ref = _mine("filtering"), _ref("filtering")
    k = 128
    mh = f.MinHash(num_perm=k, seed=0)
    misses, z_scores = [], []
    for a, b in _pairs(150, seed=2):
        exact = ref.jaccard(ref.char_ngrams(a), ref.char_ngrams(b))
        estimate = ref.estimate_jaccard(mh.signature(a), mh.signature(b))
        sigma = math.sqrt(exact * (1 - exact) / k)
        if abs(estimate - exact) > 3 * sigma + 1 / k:
            misses.append((round(exact, 3), round(estimate, 3)))
        assert abs(estimate - exact) <= 5 * 0.5 / math.sqrt(k), say(
            f"Jaccard 估计 {estimate:.3f} 离精确值 {exact:.3f} 太远：signature 是每个哈希函数在所有 shingle 上的最小值吗？",
            f"Jaccard estimate {estimate:.3f} is far from the exact {exact:.3f}: is the signature the minimum over "
            "all shingles for each hash function?")
        if 0.05 < exact < 0.95:
            z_scores.append((estimate - exact) / sigma)
    assert len(misses) <= 0.02 * 150, say(f"{len(misses)} 对超出 3σ：{misses[:5]}",
                                          f"{len(misses)} pairs beyond 3σ: {misses[:5]}")
    assert abs(np.mean(z_scores)) < 3 / math.sqrt(len(z_scores)), say(
        f"估计有系统偏差：标准化误差均值 {np.mean(z_scores):.2f}", f"estimates are biased: mean z = {np.mean(z_scores):.2f}")


# ============================================================ deduplicate


def _planted(seed: int, n_distinct: int, n_copies: int) -> tuple[list[str], dict[int, int]]:
    """``n_distinct`` random texts, then near-copies (exact Jaccard >= 0.8) of the first
    ``n_copies`` of them, appended: ``planted[copy index] = original index``."""
    ref = _ref("filtering")
    rng = random.Random(seed)
    texts = [random_text(rng, 60, 120) for _ in range(n_distinct)]
    planted = {}
    for i in range(n_copies):
        while True:
            copy = edit_words(rng, texts[i], rng.randint(1, 6))
            if ref.jaccard(ref.char_ngrams(texts[i]), ref.char_ngrams(copy)) >= 0.8:
                break
        planted[len(texts)] = i
        texts.append(copy)
    return texts, planted


@pytest.mark.symbol("deduplicate")
def test_deduplicate_recall_and_precision_on_planted_near_duplicates():
    """200 distinct texts, 100 of them get a near-copy (Jaccard >= 0.8) appended:
    recall (copies removed) >= 0.95, precision (removed texts that are copies) >= 0.95,
    and every original (the first occurrence) is kept."""
    texts, planted = _planted(seed=7, n_distinct=200, n_copies=100)
    kept = _mine("filtering").deduplicate(texts, threshold=0.8)
    kept_set = set(int(i) for i in kept)
    removed = [i for i in range(len(texts)) if i not in kept_set]
    recall = sum(1 for i in removed if i in planted) / len(planted)
    precision = sum(1 for i in removed if i in planted) / max(len(removed), 1)
    assert recall >= 0.95, say(f"召回率 {recall:.3f} < 0.95：近似重复没有被找出来(分桶或验证有误？)",
                               f"recall {recall:.3f} < 0.95: near-duplicates were not found (banding or verification?)")
    assert precision >= 0.95, say(f"精确率 {precision:.3f} < 0.95：删掉了不重复的文本(候选没有验证？)",
                                  f"precision {precision:.3f} < 0.95: distinct texts were removed (candidates not verified?)")
    lost = [i for i in range(200) if i not in kept_set]
    assert not lost, say(f"原文 {lost[:5]} 被删掉了：应保留先出现的，删掉后来的副本",
                         f"originals {lost[:5]} were removed: keep the first occurrence, drop the later copy")


@pytest.mark.symbol("deduplicate")
def test_deduplicate_keeps_every_text_of_moderate_similarity():
    """60 pairs with exact Jaccard in [0.3, 0.6]: about half of them become LSH candidates
    at b = 21, r = 6, but verification (estimate >= 0.8) rejects them all, so every text is
    kept. A candidate is not a duplicate until its estimated Jaccard is checked."""
    ref = _ref("filtering")
    rng = random.Random(11)
    texts: list[str] = []
    while len(texts) < 120:
        a = random_text(rng, 60, 100)
        b = edit_words(rng, a, rng.randint(10, 40))
        if 0.3 <= ref.jaccard(ref.char_ngrams(a), ref.char_ngrams(b)) <= 0.6:
            texts += [a, b]
    kept = [int(i) for i in _mine("filtering").deduplicate(texts, threshold=0.8)]
    try:
        assert_same_sequence(kept, list(range(len(texts))), "deduplicate(pairs with Jaccard 0.3-0.6)")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n" + say("LSH 同桶只是候选：要用 estimate_jaccard(sig, sigs[j]) >= threshold 验证",
                                              "sharing a bucket only makes a candidate: verify it with "
                                              "estimate_jaccard(sig, sigs[j]) >= threshold")) from None


@pytest.mark.symbol("deduplicate")
@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.9])
def test_deduplicate_equals_the_reference(threshold):
    """Distinct texts, planted copies and chains of copies-of-copies: the same kept indices
    as the reference (same MinHash seed and banding, first occurrence wins, a text is
    compared with kept texts only)."""
    texts, _ = _planted(seed=int(threshold * 10), n_distinct=60, n_copies=30)
    rng = random.Random(3)
    for _ in range(20):  # chains: copies of copies, some already removed
        texts.append(edit_words(rng, rng.choice(texts), rng.randint(1, 8)))
    assert_same_sequence([int(i) for i in _mine("filtering").deduplicate(texts, threshold=threshold)],
                         _ref("filtering").deduplicate(texts, threshold=threshold),
                         f"deduplicate(texts, threshold={threshold})")
