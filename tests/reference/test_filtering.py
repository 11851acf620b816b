"""Cleaning: length / repetition filters, MinHash, LSH deduplication, quality score.

Oracles and tolerances:

- ``MinHash.signature`` equals a naive double loop over hash functions and shingles in
  Python integers (exact: the reference's int64 arithmetic never overflows).
- Estimates vs exact Jaccard: for k = 128 permutations the estimate is a binomial
  fraction with standard error ``σ = sqrt(J (1 - J) / k)`` (<= σ_max = 0.044). Pairs must
  lie within ``3σ + 1/k`` (at most 2 % may miss: 3σ is a per-pair bound, and with 150
  pairs ~0.4 misses are expected), all within ``5σ_max``; the standardised errors must
  have mean ~0 and standard deviation ~1.
- ``datasketch.MinHash`` (its own hash functions, ORACLES.md: compare estimates, not
  hashes) on the same shingle sets: two independent estimates differ within
  ``3·sqrt(2)·σ + 2/k`` (same 2 % allowance), and both are unbiased with similar spread.
- ``deduplicate``: 400 distinct random texts plus 200 planted near-duplicates (random
  word edits, exact Jaccard of 5-shingles >= 0.8): recall >= 0.95 and precision >= 0.95.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from intro2llm.data.filtering import (
    MERSENNE_PRIME,
    MinHash,
    candidate_probability,
    char_ngrams,
    choose_bands,
    deduplicate,
    estimate_jaccard,
    jaccard,
    length_filter,
    quality_score,
    repetition_filter,
    split_words,
)

# ----- text helpers and rule filters ----------------------------------------------------------


def test_split_words_treats_each_cjk_character_as_a_word():
    assert split_words("Hello, 世界! It's 2024.") == ["hello", "世", "界", "it", "s", "2024"]
    assert split_words("  ") == []


def test_char_ngrams_normalises_case_and_whitespace():
    assert char_ngrams("AB  c", 3) == {"ab ", "b c"}
    assert char_ngrams("ab", 5) == {"ab"}
    assert char_ngrams("   ", 5) == set()
    assert len(char_ngrams("abcdefg", 5)) == 3


def test_jaccard_exact_values():
    assert jaccard({1, 2, 3}, {2, 3, 4}) == 0.5
    assert jaccard(set(), set()) == 1.0
    assert jaccard({1}, set()) == 0.0


def test_length_filter_bounds_are_inclusive_and_ignore_surrounding_space():
    texts = ["abc", "  abcd  ", "abcde", "abcdef", "ab"]
    assert length_filter(texts, min_chars=3, max_chars=5) == ["abc", "  abcd  ", "abcde"]
    assert length_filter([], 1, 2) == []
    with pytest.raises(ValueError, match="min_chars"):
        length_filter(texts, min_chars=5, max_chars=4)


def test_repetition_filter_worked_examples():
    """"buy now buy now buy now", n = 2: 5 bigrams, 2 distinct -> ratio 0.6.
    "the cat sat on the mat", n = 2: 5 bigrams, all distinct -> 0.0.
    "我爱我爱我爱", n = 2: 我爱 爱我 我爱 爱我 我爱 -> 5 bigrams, 2 distinct -> 0.6."""
    spam, fine, zh = "buy now buy now buy now", "the cat sat on the mat", "我爱我爱我爱"
    assert repetition_filter([spam, fine, zh], n=2, max_ratio=0.6) == [spam, fine, zh]
    assert repetition_filter([spam, fine, zh], n=2, max_ratio=0.59) == [fine]
    assert repetition_filter(["too short"], n=3, max_ratio=0.0) == ["too short"]
    with pytest.raises(ValueError, match="n="):
        repetition_filter([fine], n=0)


def test_repetition_filter_keeps_ordinary_prose_drops_loops():
    prose = ("Packing joins documents with an end of sequence token between them, then cuts the "
             "stream into blocks so that no compute is wasted on padding tokens.")
    loop = " ".join(["click here for the best deals"] * 10)
    assert repetition_filter([prose, loop]) == [prose]


# ----- quality score --------------------------------------------------------------------------

PROSE_EN = ("The quick brown fox jumps over the lazy dog. It was a sunny day, and the children "
            "played in the park until the evening came.")
PROSE_ZH = "今天天气很好，我们一起去公园散步。公园里有很多花，孩子们在草地上玩耍，一直玩到晚上才回家。"


def test_quality_score_range_and_clean_prose():
    for text in (PROSE_EN, PROSE_ZH):
        assert quality_score(text) == pytest.approx(1.0)
    assert quality_score("") == 0.0
    assert quality_score("   \n ") == 0.0


@pytest.mark.parametrize(
    "junk",
    [
        "$$$ ### @@@ !!! %%% ^^^ &&& *** click here $$$ ### @@@ ~~~ |||",  # symbols
        "\n".join(["buy cheap pills now"] * 6 + ["contact us"]),  # repeated lines
        "12 + 7 = 19\n33 - 4 = 29\n8 × 9 = 72\n" * 3,  # no words
        "a b c d e f g h i j k l m n o p q r s t u v w x y z a b c",  # 1-letter words
        "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopic",
    ],
)
def test_quality_score_penalises_each_heuristic(junk):
    assert 0.0 <= quality_score(junk) < 0.5 < quality_score(PROSE_EN)


def test_quality_score_grows_with_length_up_to_twenty_words():
    words = PROSE_EN.split()
    scores = [quality_score(" ".join(words[:n])) for n in (2, 5, 10, 20)]
    assert scores == sorted(scores) and scores[-1] == pytest.approx(1.0)


# ----- MinHash --------------------------------------------------------------------------------


def naive_signature(mh: MinHash, text: str) -> list[int]:
    """Python integers, one hash function at a time: min over x of (a·x + b) mod p."""
    xs = [int(x) for x in mh.shingle_hashes(text)]
    a, b = [int(v) for v in mh.a], [int(v) for v in mh.b]
    return [min(((a[i] * x + b[i]) % MERSENNE_PRIME for x in xs), default=MERSENNE_PRIME)
            for i in range(mh.num_perm)]


def random_text(rng: random.Random, vocab: list[str], lo: int = 40, hi: int = 120) -> str:
    return " ".join(rng.choice(vocab) for _ in range(rng.randint(lo, hi)))


@pytest.fixture(scope="module")
def vocab() -> list[str]:
    rng = random.Random(1)
    return ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 8)))
            for _ in range(2000)]


def edit_words(rng: random.Random, text: str, edits: int, vocab: list[str]) -> str:
    """Replace, insert or delete ``edits`` random words."""
    words = text.split()
    for _ in range(edits):
        i, op = rng.randrange(len(words)), rng.random()
        if op < 0.5:
            words[i] = rng.choice(vocab)
        elif op < 0.75:
            words.insert(i, rng.choice(vocab))
        elif len(words) > 1:
            del words[i]
    return " ".join(words)


def test_signature_matches_naive_loop(vocab):
    rng = random.Random(0)
    mh = MinHash(num_perm=16, ngram=5, seed=3)
    long_text = random_text(rng, vocab, 1500, 1500)  # > 4096 shingles: several column blocks
    assert len(char_ngrams(long_text)) > 4096
    for text in ["hello world", "ab", "你好，世界", random_text(rng, vocab), long_text]:
        sig = mh.signature(text)
        assert sig.shape == (16,) and sig.dtype == np.int64
        assert sig.tolist() == naive_signature(mh, text)


def test_signature_is_deterministic_and_seeded():
    text = "the same text gives the same signature"
    assert np.array_equal(MinHash(seed=0).signature(text), MinHash(seed=0).signature(text))
    assert not np.array_equal(MinHash(seed=0).signature(text), MinHash(seed=1).signature(text))


def test_signature_of_empty_text_and_identical_texts():
    mh = MinHash(num_perm=32)
    assert mh.signature("").tolist() == [MERSENNE_PRIME] * 32
    assert estimate_jaccard(mh.signature("Same  TEXT"), mh.signature("same text")) == 1.0
    with pytest.raises(ValueError, match="shapes"):
        estimate_jaccard(mh.signature("a"), MinHash(num_perm=16).signature("a"))


def _pairs(vocab: list[str], n: int, seed: int) -> list[tuple[str, str]]:
    """Text pairs whose Jaccard similarity spreads over (0, 1]."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        a = random_text(rng, vocab)
        pairs.append((a, edit_words(rng, a, rng.randint(0, 60), vocab)))
    return pairs


def test_minhash_estimates_within_three_sigma_of_exact_jaccard(vocab):
    """Per pair, |estimate - J| <= 3σ + 1/k should fail for ~0.3 % of pairs (a few per
    thousand: with 150 pairs, one miss is expected every few seeds), so the test allows
    2 % of misses, bounds every pair by 5σ_max (σ_max = 0.5/sqrt(k)), and checks that the
    standardised errors have mean ~0 and spread ~1 (the binomial model)."""
    k = 128
    mh = MinHash(num_perm=k, seed=0)
    z_scores, misses = [], 0
    for a, b in _pairs(vocab, 150, seed=2):
        exact = jaccard(char_ngrams(a), char_ngrams(b))
        estimate = estimate_jaccard(mh.signature(a), mh.signature(b))
        sigma = math.sqrt(exact * (1 - exact) / k)
        misses += abs(estimate - exact) > 3 * sigma + 1 / k
        assert abs(estimate - exact) <= 5 * 0.5 / math.sqrt(k), (exact, estimate)
        if 0.05 < exact < 0.95:
            z_scores.append((estimate - exact) / sigma)
    assert misses <= 0.02 * 150
    assert len(z_scores) > 50
    # unbiased: the mean of n standardised errors has standard error 1/sqrt(n)
    assert abs(np.mean(z_scores)) < 3 / math.sqrt(len(z_scores))
    assert 0.7 < np.std(z_scores) < 1.3


def test_minhash_agrees_with_datasketch(vocab):
    """Same shingle sets, independent hash functions: the two estimates differ like two
    independent binomial fractions (σ_diff = sqrt(2)·σ); both are unbiased, equally spread."""
    from datasketch import MinHash as DSMinHash

    k = 128
    ours = MinHash(num_perm=k, seed=0)
    ours_err, theirs_err, misses = [], [], 0
    pairs = _pairs(vocab, 80, seed=5)
    for a, b in pairs:
        sa, sb = char_ngrams(a), char_ngrams(b)
        da, db = DSMinHash(num_perm=k, seed=1), DSMinHash(num_perm=k, seed=1)
        da.update_batch([s.encode("utf-8") for s in sa])
        db.update_batch([s.encode("utf-8") for s in sb])
        theirs = da.jaccard(db)
        mine = estimate_jaccard(ours.signature(a), ours.signature(b))
        exact = jaccard(sa, sb)
        sigma = math.sqrt(exact * (1 - exact) / k)
        misses += abs(mine - theirs) > 3 * math.sqrt(2) * sigma + 2 / k
        assert abs(mine - theirs) <= 5 * math.sqrt(2) * 0.5 / math.sqrt(k)
        ours_err.append(mine - exact)
        theirs_err.append(theirs - exact)
    assert misses <= 0.02 * len(pairs)
    for errors in (ours_err, theirs_err):
        assert abs(np.mean(errors)) < 3 * 0.5 / math.sqrt(k) / math.sqrt(len(pairs))
    assert 0.6 < np.std(ours_err) / np.std(theirs_err) < 1.6


# ----- LSH deduplication ----------------------------------------------------------------------


def test_candidate_probability_and_band_choice():
    assert candidate_probability(0.8, 21, 6) == pytest.approx(1 - (1 - 0.8**6) ** 21)
    assert choose_bands(0.8, 128) == (21, 6)
    for threshold in (0.5, 0.7, 0.8, 0.9):
        bands, rows = choose_bands(threshold, 128)
        assert bands * rows <= 128
        assert candidate_probability(threshold, bands, rows) >= 0.99
        if rows < 128:  # one more row (with as many bands as fit) would fall below 0.99
            assert candidate_probability(threshold, 128 // (rows + 1), rows + 1) < 0.99


def test_deduplicate_keeps_first_occurrence_of_exact_and_near_copies():
    base = "The quick brown fox jumps over the lazy dog near the quiet river bank today."
    texts = [base, "A completely different sentence about databases and their indexes.",
             base, base.replace("today", "today!"), base.upper()]
    assert deduplicate(texts) == [0, 1]
    assert deduplicate([]) == []
    assert deduplicate(["", ""]) == [0]


def test_deduplicate_argument_checks():
    with pytest.raises(ValueError, match="threshold"):
        deduplicate(["a"], threshold=0.0)
    with pytest.raises(ValueError, match="fit in num_perm"):
        deduplicate(["a"], num_perm=16, bands=5, rows=4)
    assert deduplicate(["a b c d e f", "a b c d e f"], num_perm=16, bands=4) == [0]


def test_deduplicate_recall_and_precision_on_planted_near_duplicates(vocab):
    """400 distinct texts; 200 of them get a near-copy (exact Jaccard >= 0.8) appended."""
    rng = random.Random(7)
    texts = [random_text(rng, vocab, 60, 120) for _ in range(400)]
    planted = {}
    for i in range(200):
        while True:
            copy = edit_words(rng, texts[i], rng.randint(1, 6), vocab)
            if jaccard(char_ngrams(texts[i]), char_ngrams(copy)) >= 0.8:
                break
        planted[len(texts)] = i
        texts.append(copy)
    kept = set(deduplicate(texts, threshold=0.8))
    removed = [i for i in range(len(texts)) if i not in kept]
    true_positives = sum(1 for i in removed if i in planted)
    recall = true_positives / len(planted)
    precision = true_positives / max(len(removed), 1)
    assert recall >= 0.95, recall
    assert precision >= 0.95, precision
    assert all(i in kept for i in range(400))  # every original (first occurrence) survives
