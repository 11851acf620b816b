"""Lesson 01, advanced tier: larger seeded inputs, oracles, robustness, speed.

Expected values come from three places, never from outputs pasted into this file:

- **properties**: ``decode(encode(t)) == t`` on random Unicode; the pieces of a split
  concatenate back to the text;
- **an independent naive trainer** written below (``naive_train``): after every merge it
  recounts every pair of every word, picks the highest count, ties to the smallest
  ``(left, right)`` tuple. It is slow but obviously right, and the incremental trainer
  must produce exactly its merges;
- **the reference library** (``intro2llm``), run on the same inputs during the test.

Corpora are generated here from a seed (``random.Random(seed)``): English-like words
drawn with a Zipf law, Chinese "words" of 1-3 characters, mixed text with emoji, and
a two-letter corpus full of runs such as ``aaaa`` that stress overlapping pairs.
"""

from __future__ import annotations

import random
import re
import string
from collections import Counter

import pytest
import regex

from intro2llm_cli.testkit import (
    assert_equal,
    assert_same_sequence,
    expect_error,
    learner,
    reference,
    say,
)

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
CUSTOM_SPECIALS = ["[PAD]", "[BOS]", "[EOS]", "[UNK]", "<|user|>", "<|assistant|>"]

# ============================================================ seeded text generators

_SYLLABLES = ("ka lo mi ne ra ti su ve on ex pre con ing er tion al ly ment un re de st tr th "
              "a e i o u an the in is at qu ch sh").split()
_ZH_CHARS = ("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好"
             "都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此")
_EMOJI = ["🤗", "🚀", "👍🏽", "👩\u200d💻", "🇨🇳", "❤️", "😀", "🎉"]
_WHITESPACE = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\u3000", "\xa0", "\u2028", "\x0b", "\x0c", " \t "]
_SCRIPT_RANGES = [(0x0400, 0x04FF), (0x0600, 0x06FF), (0x0900, 0x097F), (0xAC00, 0xD7A3), (0x0370, 0x03FF),
                  (0x05D0, 0x05EA), (0x0E00, 0x0E5B), (0x3040, 0x30FF)]


def _zipf(rng: random.Random, items: list[str], k: int, s: float = 1.1) -> list[str]:
    """``k`` items drawn with weight ``1 / rank**s`` (a few very common, a long tail)."""
    return rng.choices(items, weights=[1.0 / (r + 1) ** s for r in range(len(items))], k=k)


def english_corpus(seed: int, n_chars: int, n_types: int = 600) -> list[str]:
    """Lines of made-up English words (1-3 syllables), punctuation, numbers, mixed whitespace."""
    rng = random.Random(seed)
    types: set[str] = set()
    while len(types) < n_types:
        types.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))))
    words = sorted(types)
    rng.shuffle(words)
    texts, size = [], 0
    while size < n_chars:
        line_words = _zipf(rng, words, rng.randint(3, 14))
        if rng.random() < 0.3:
            line_words[0] = line_words[0].capitalize()
        line = " ".join(line_words)
        if rng.random() < 0.2:
            line += " " + str(rng.randint(0, 2025))
        line += rng.choice([".", ".", ",", "!", "?", ""]) + rng.choice(["\n", " ", "  ", "\t"])
        texts.append(line)
        size += len(line)
    return texts


def chinese_corpus(seed: int, n_chars: int) -> list[str]:
    """Sentences of Chinese 'words' (1-3 characters) with Chinese punctuation, few spaces."""
    rng = random.Random(seed)
    words = sorted({"".join(rng.choice(_ZH_CHARS[:60]) for _ in range(rng.randint(1, 3))) for _ in range(300)})
    rng.shuffle(words)
    texts, size = [], 0
    while size < n_chars:
        line = "".join(_zipf(rng, words, rng.randint(2, 8))) + rng.choice(["，", "。", " ", "！"])
        line += rng.choice(["", "\n", " "])
        texts.append(line)
        size += len(line)
    return texts


def mixed_corpus(seed: int, n_chars: int) -> list[str]:
    """English and Chinese lines shuffled together, some ending in an emoji."""
    rng = random.Random(seed)
    texts = english_corpus(seed + 1, n_chars // 2) + chinese_corpus(seed + 2, n_chars // 2)
    rng.shuffle(texts)
    return [t + (rng.choice(_EMOJI) if rng.random() < 0.2 else "") for t in texts]


def ab_corpus(seed: int, n_chars: int) -> list[str]:
    """Runs of ``a`` and ``b`` (``aaaa``, ``bbb``) with spaces and tabs: many overlapping pairs."""
    rng = random.Random(seed)
    texts, size = [], 0
    while size < n_chars:
        text = "".join(rng.choice("aab") * rng.randint(1, 4) + rng.choice(["", "", " ", "\t"])
                       for _ in range(rng.randint(1, 6)))
        texts.append(text)
        size += len(text)
    return texts


CORPORA = {
    "en-0": lambda: english_corpus(0, 3000),
    "en-1": lambda: english_corpus(1, 3000),
    "zh-0": lambda: chinese_corpus(0, 2000),
    "zh-1": lambda: chinese_corpus(1, 2000),
    "mixed-0": lambda: mixed_corpus(0, 3000),
    "ab-0": lambda: ab_corpus(0, 2000),
    "ab-1": lambda: ab_corpus(1, 2000),
}


def random_unicode_text(rng: random.Random, max_pieces: int = 30) -> str:
    """Arbitrary Unicode (no lone surrogates): ASCII, whitespace runs, CJK, emoji (ZWJ, flags,
    skin tones), combining marks, C0/C1 control characters, other scripts, any code point."""
    pieces = []
    for _ in range(rng.randint(0, max_pieces)):
        kind = rng.randrange(10)
        if kind == 0:
            piece = "".join(rng.choice(string.ascii_letters + string.digits + string.punctuation)
                            for _ in range(rng.randint(1, 6)))
        elif kind == 1:
            piece = rng.choice(_WHITESPACE)
        elif kind == 2:
            piece = "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(rng.randint(1, 4)))
        elif kind == 3:
            piece = rng.choice([*_EMOJI, chr(rng.randint(0x1F300, 0x1FAFF))])
        elif kind == 4:
            piece = rng.choice("aeiouAEIOUnc") + "".join(chr(rng.randint(0x300, 0x36F)) for _ in range(rng.randint(1, 3)))
        elif kind == 5:
            piece = chr(rng.choice([*range(0, 32), 0x7F, *range(0x80, 0xA0)]))
        elif kind == 6:
            low, high = rng.choice(_SCRIPT_RANGES)
            piece = "".join(chr(rng.randint(low, high)) for _ in range(rng.randint(1, 5)))
        elif kind == 7:
            cp = rng.randint(0, 0x10FFFF)
            piece = chr(cp if not 0xD800 <= cp <= 0xDFFF else cp - 0x800)
        elif kind == 8:
            piece = rng.choice(["'s", "'ll", "'VE", " it's", "don't", "'re"])
        else:
            piece = str(rng.randint(0, 10**6))
        pieces.append(piece)
    return "".join(pieces)


def texts_like(corpus: list[str], rng: random.Random, n: int, extra: str = "") -> list[str]:
    """``n`` texts cut from random places of ``corpus`` and glued, plus characters of ``extra``
    and special tokens sprinkled in."""
    joined = "".join(corpus)
    out = []
    for _ in range(n):
        start = rng.randrange(len(joined))
        text = joined[start : start + rng.randint(0, 60)]
        if extra and rng.random() < 0.5:
            where = rng.randint(0, len(text))
            text = text[:where] + rng.choice(extra) + text[where:]
        if rng.random() < 0.3:
            where = rng.randint(0, len(text))
            text = text[:where] + rng.choice(SPECIALS) + text[where:]
        out.append(text)
    return out


# ============================================================ the independent naive trainer


def _merge_naive(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    """Merge ``pair`` left to right without overlap (written independently of the lesson)."""
    out: list[str] = []
    skip = False
    for i, symbol in enumerate(word):
        if skip:
            skip = False
            continue
        if i + 1 < len(word) and (symbol, word[i + 1]) == pair:
            out.append(symbol + word[i + 1])
            skip = True
        else:
            out.append(symbol)
    return tuple(out)


def naive_train(word_counts: Counter, alphabet: list[str], specials: list[str], vocab_size: int,
                min_frequency: int = 1) -> tuple[list[tuple[str, str]], list[str]]:
    """BPE by recounting everything after every merge. Returns (merges, tokens in id order).

    Same rules as the lesson: highest count, ties to the smallest ``(left, right)``; the new
    token ``left + right`` gets the next id unless that string already has one; stop at
    ``vocab_size``, when no pair is left, or when the best count is below ``min_frequency``.
    """
    tokens = list(specials) + [s for s in alphabet if s not in specials]
    known = set(tokens)
    words = Counter({tuple(word): count for word, count in word_counts.items()})
    merges: list[tuple[str, str]] = []
    while len(tokens) < vocab_size:
        counts: Counter = Counter()
        for word, count in words.items():
            for i in range(len(word) - 1):
                counts[word[i], word[i + 1]] += count
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        if counts[best] < max(min_frequency, 1):
            break
        merges.append(best)
        if best[0] + best[1] not in known:
            known.add(best[0] + best[1])
            tokens.append(best[0] + best[1])
        merged: Counter = Counter()
        for word, count in words.items():
            merged[_merge_naive(word, best)] += count
        words = merged
    return merges, tokens


def char_level_words(texts: list[str]) -> Counter:
    """Character-level words: ``\\s*\\S+|\\s+`` pieces, counted."""
    return Counter(piece for text in texts for piece in re.findall(r"\s*\S+|\s+", text))


def byte_level_words(texts: list[str]) -> tuple[Counter, list[str]]:
    """GPT-2 regex pieces as strings of byte symbols, counted; and the 256-symbol alphabet."""
    module = reference("tokenizer.byte_level_tokenizer")
    table = module.bytes_to_unicode()
    words = Counter("".join(table[b] for b in piece.encode("utf-8"))
                    for text in texts for piece in regex.findall(module.GPT2_SPLIT_PATTERN, text))
    return words, [table[b] for b in range(256)]


# ============================================================ helpers


def _tokens_in_id_order(vocab: dict[str, int], what: str) -> list[str]:
    ids = sorted(vocab.values())
    assert ids == list(range(len(vocab))), say(
        f"{what}：id 必须恰好是 0..{len(vocab) - 1} 且不重复", f"{what}: ids must be exactly 0..{len(vocab) - 1}, no repeats")
    return [token for token, _ in sorted(vocab.items(), key=lambda kv: kv[1])]


def _assert_trained_like(tok, merges: list[tuple[str, str]], tokens: list[str], source: str) -> None:
    """Merges equal entry by entry, then the vocabulary id by id."""
    assert_same_sequence([tuple(m) for m in tok.merges], merges,
                         say(f"merges（与{source}比较）", f"merges (compared with {source})"))
    assert_same_sequence(_tokens_in_id_order(tok.vocab, "tok.vocab"), tokens,
                         say(f"按 id 排列的词表（与{source}比较）", f"vocab tokens in id order (compared with {source})"))


def _first_difference(pairs, what: str) -> None:
    """``pairs`` = [(input, actual, expected)]; fail on the first mismatch, showing the input."""
    for given, actual, expected in pairs:
        if actual != expected:
            raise AssertionError(say(
                f"{what}：输入 {given!r}\n  期望 {expected!r}\n  实际 {actual!r}",
                f"{what}: input {given!r}\n  expected {expected!r}\n  got      {actual!r}",
            ))


def _learner_from_reference(kind: str, ref_tok):
    """The learner's class of the same kind, holding exactly the reference's vocab and merges
    (through the ready-made ``from_state``): tests of encode / decode do not depend on train."""
    module = learner("tokenizer.bpe_tokenizer" if kind == "bpe" else "tokenizer.byte_level_tokenizer")
    cls = module.BPETokenizer if kind == "bpe" else module.ByteLevelTokenizer
    return cls.from_state(list(ref_tok.special_tokens), ref_tok.get_state())


def _reference_trained(kind: str, texts: list[str], vocab_size: int, special_tokens=None):
    module = reference("tokenizer")
    cls = module.BPETokenizer if kind == "bpe" else module.ByteLevelTokenizer
    return cls().train(texts, vocab_size, special_tokens=special_tokens)


# ============================================================ helpers of BPE


@pytest.mark.symbol("merge_pair")
@pytest.mark.parametrize("seed", [0, 1])
def test_merge_pair_matches_an_independent_scan_on_random_words(seed):
    """Random words over symbols {a, b, ab, c} and random pairs (including (a,a), (b,b)):
    the result equals ``_merge_naive`` and concatenates to the same string."""
    rng = random.Random(seed)
    bpe = learner("tokenizer.bpe_tokenizer")
    cases = []
    for _ in range(400):
        word = tuple(rng.choice(["a", "a", "b", "ab", "c"]) for _ in range(rng.randint(0, 9)))
        pair = (rng.choice(["a", "b", "ab"]), rng.choice(["a", "b", "ab"]))
        cases.append(((word, pair), tuple(bpe.merge_pair(word, pair)), _merge_naive(word, pair)))
    _first_difference(cases, "merge_pair(word, pair)")


@pytest.mark.symbol("get_pair_counts")
@pytest.mark.parametrize("seed", [0, 1])
def test_get_pair_counts_matches_counting_every_position(seed):
    """Random words with random frequencies: each adjacent position adds the word's frequency."""
    rng = random.Random(seed)
    bpe = learner("tokenizer.bpe_tokenizer")
    words = {}
    for _ in range(200):
        word = tuple(rng.choice(["a", "b", "c", "ab", " "]) for _ in range(rng.randint(1, 8)))
        words[word] = rng.randint(1, 9)
    expected: Counter = Counter()
    for word, count in words.items():
        for position in range(len(word) - 1):
            expected[word[position], word[position + 1]] += count
    counts = {pair: c for pair, c in dict(bpe.get_pair_counts(words)).items() if c}
    pairs = sorted(set(expected) | set(counts))
    _first_difference([(pair, counts.get(pair, 0), expected.get(pair, 0)) for pair in pairs],
                      say("get_pair_counts 中某个 pair 的计数", "count of a pair in get_pair_counts"))


@pytest.mark.symbol("pre_tokenize")
@pytest.mark.parametrize("seed", [0, 1])
def test_pre_tokenize_equals_reference_and_rejoins_on_random_unicode(seed):
    """On arbitrary Unicode (Unicode whitespace such as U+3000 and U+2028 included) the pieces
    equal the reference's and join back to the text."""
    rng = random.Random(seed)
    mine, ref = learner("tokenizer.bpe_tokenizer"), reference("tokenizer.bpe_tokenizer")
    texts = [random_unicode_text(rng) for _ in range(150)]
    _first_difference([(t, "".join(mine.pre_tokenize(t)), t) for t in texts], '"".join(pre_tokenize(text))')
    _first_difference([(t, list(mine.pre_tokenize(t)), ref.pre_tokenize(t)) for t in texts], "pre_tokenize(text)")


# ============================================================ training


@pytest.mark.symbol("BPETokenizer.train")
@pytest.mark.parametrize("corpus", list(CORPORA))
def test_train_merges_equal_a_naive_recount_trainer(corpus):
    """Character level, vocab_size 250 (``ab`` corpora: 150): the learner's merges and vocab
    equal ``naive_train``'s entry by entry (an incremental trainer must give the same list)."""
    texts = CORPORA[corpus]()
    vocab_size = 150 if corpus.startswith("ab") else 250
    words = char_level_words(texts)
    merges, tokens = naive_train(words, sorted(set("".join(words))), SPECIALS, vocab_size)
    tok = learner("tokenizer.bpe_tokenizer").BPETokenizer().train(texts, vocab_size=vocab_size)
    _assert_trained_like(tok, merges, tokens, say("朴素重新计数的训练器", "a naive recount trainer"))


@pytest.mark.symbol("BPETokenizer.train")
@pytest.mark.parametrize("min_frequency", [2, 5])
def test_train_with_min_frequency_equals_a_naive_recount_trainer(min_frequency):
    """English corpus, vocab_size 2000 (never reached): training stops at the first merge whose
    count is below ``min_frequency``, exactly where the naive trainer stops."""
    texts = english_corpus(3, 3000)
    words = char_level_words(texts)
    merges, tokens = naive_train(words, sorted(set("".join(words))), SPECIALS, 2000, min_frequency)
    tok = learner("tokenizer.bpe_tokenizer").BPETokenizer().train(texts, vocab_size=2000, min_frequency=min_frequency)
    _assert_trained_like(tok, merges, tokens, say("朴素重新计数的训练器", "a naive recount trainer"))


@pytest.mark.symbol("BPETokenizer.train")
@pytest.mark.parametrize("corpus", ["en-0", "zh-1", "mixed-0", "ab-1"])
def test_byte_level_train_merges_equal_a_naive_recount_trainer(corpus):
    """Byte level (``ByteLevelTokenizer.train`` is ``BPETokenizer.train`` with the byte hooks),
    vocab_size 4 + 256 + 200: equal to ``naive_train`` on GPT-2 pieces of byte symbols with the
    256-symbol alphabet in byte order."""
    texts = CORPORA[corpus]()
    words, alphabet = byte_level_words(texts)
    merges, tokens = naive_train(words, alphabet, SPECIALS, 460)
    tok = learner("tokenizer.byte_level_tokenizer").ByteLevelTokenizer().train(texts, vocab_size=460)
    _assert_trained_like(tok, merges, tokens, say("朴素重新计数的训练器", "a naive recount trainer"))


@pytest.mark.symbol("BPETokenizer.train")
@pytest.mark.parametrize("kind", ["bpe", "byte_level"])
@pytest.mark.parametrize("seed", [10, 11])
def test_train_equals_the_reference_with_custom_special_tokens(kind, seed):
    """Mixed English / Chinese / emoji text with special tokens inside the texts and six custom
    special tokens: merges and vocab equal the reference's (specials are cut out of the texts)."""
    rng = random.Random(seed)
    texts = [t[: len(t) // 2] + rng.choice(CUSTOM_SPECIALS) + t[len(t) // 2 :] for t in mixed_corpus(seed, 3000)]
    vocab_size = 400 if kind == "bpe" else 500
    ref = _reference_trained(kind, texts, vocab_size, CUSTOM_SPECIALS)
    module = learner("tokenizer.bpe_tokenizer" if kind == "bpe" else "tokenizer.byte_level_tokenizer")
    cls = module.BPETokenizer if kind == "bpe" else module.ByteLevelTokenizer
    tok = cls().train(texts, vocab_size=vocab_size, special_tokens=CUSTOM_SPECIALS)
    _assert_trained_like(tok, [tuple(m) for m in ref.merges], ref.id_to_token_list, say("参考实现", "the reference"))


@pytest.mark.symbol("BPETokenizer.train")
def test_train_on_a_40kb_corpus_finishes_in_time_and_equals_the_reference():
    """About 40 KB of English-like text (1500 word types), vocab_size 500: must finish within
    the per-test time limit and give the reference's merges.

    Sized so that a clean naive trainer (recount the pairs of the *distinct* words after every
    merge, as in section 2.2) passes in a few seconds; a trainer that rescans every word
    occurrence, or rebuilds strings per pair, is what runs out of time. The incremental
    version (section 2.4) takes a small fraction of a second."""
    texts = english_corpus(7, 40_000, n_types=1500)
    ref = _reference_trained("bpe", texts, 500)
    tok = learner("tokenizer.bpe_tokenizer").BPETokenizer().train(texts, vocab_size=500)
    _assert_trained_like(tok, [tuple(m) for m in ref.merges], ref.id_to_token_list, say("参考实现", "the reference"))


# ============================================================ encode / decode


@pytest.mark.symbol("BPETokenizer.encode")
@pytest.mark.parametrize("corpus", ["en-1", "zh-0", "ab-0"])
def test_encode_equals_reference_given_the_same_merges(corpus):
    """The learner's tokenizer gets the reference's trained vocab and merges (``from_state``),
    so only ``encode`` is compared: 200 texts cut from the corpus, with unseen characters and
    special tokens mixed in, with and without ``add_special_tokens``."""
    rng = random.Random(corpus)
    texts = CORPORA[corpus]()
    ref = _reference_trained("bpe", texts, 300)
    tok = _learner_from_reference("bpe", ref)
    samples = texts_like(texts, rng, 200, extra="xyz€😀\x00")
    _first_difference([(t, tok.encode(t), ref.encode(t)) for t in samples], "encode(text)")
    _first_difference([(t, tok.encode(t, add_special_tokens=True), ref.encode(t, add_special_tokens=True))
                       for t in samples[:50]], "encode(text, add_special_tokens=True)")


@pytest.mark.symbol("BPETokenizer.decode")
@pytest.mark.parametrize("seed", [0, 1])
def test_bpe_round_trip_on_random_text_from_the_training_alphabet(seed):
    """Trained on an English + Chinese corpus: random strings of its alphabet's characters and
    special tokens round-trip exactly, and ``decode`` equals the reference's on random ids."""
    rng = random.Random(seed)
    texts = mixed_corpus(seed + 20, 3000)
    ref = _reference_trained("bpe", texts, 350)
    tok = learner("tokenizer.bpe_tokenizer").BPETokenizer().train(texts, vocab_size=350)
    alphabet = sorted(set("".join(texts)))
    samples = ["".join(rng.choice(alphabet + SPECIALS) for _ in range(rng.randint(0, 40))) for _ in range(150)]
    _first_difference([(t, tok.decode(tok.encode(t)), t) for t in samples], "decode(encode(text))")
    mine = _learner_from_reference("bpe", ref)
    id_lists = [[rng.randrange(ref.vocab_size) for _ in range(rng.randint(0, 20))] for _ in range(100)]
    _first_difference([(ids, mine.decode(ids, skip_special_tokens=skip), ref.decode(ids, skip_special_tokens=skip))
                       for ids in id_lists for skip in (False, True)], "decode(ids)")


@pytest.mark.symbol("ByteLevelTokenizer.pre_tokenize")
@pytest.mark.parametrize("seed", [0, 1])
def test_byte_level_pre_tokenize_equals_reference_on_random_unicode(seed):
    """Arbitrary Unicode: the same GPT-2 pieces, each as the same string of byte symbols."""
    rng = random.Random(seed)
    mine = learner("tokenizer.byte_level_tokenizer").ByteLevelTokenizer()
    ref = reference("tokenizer").ByteLevelTokenizer()
    texts = [random_unicode_text(rng) for _ in range(150)]
    _first_difference([(t, list(mine.pre_tokenize(t)), ref.pre_tokenize(t)) for t in texts], "pre_tokenize(text)")


@pytest.mark.symbol("ByteLevelTokenizer.pre_tokenize")
@pytest.mark.parametrize("seed", [0, 1])
def test_byte_level_encode_equals_reference_given_the_same_merges(seed):
    """Reference-trained vocab and merges loaded into the learner's ``ByteLevelTokenizer``:
    ``encode`` of random Unicode and of corpus-like text (with specials) equals the reference's."""
    rng = random.Random(seed)
    texts = mixed_corpus(seed + 30, 3000)
    ref = _reference_trained("byte_level", texts, 500)
    tok = _learner_from_reference("byte_level", ref)
    samples = [random_unicode_text(rng) for _ in range(100)] + texts_like(texts, rng, 100)
    _first_difference([(t, tok.encode(t), ref.encode(t)) for t in samples], "encode(text)")


@pytest.mark.symbol("ByteLevelTokenizer.decode")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_byte_level_round_trip_on_random_unicode(seed):
    """Trained by the learner on mixed text (vocab_size 450), 120 random strings of arbitrary
    Unicode (CJK, emoji, combining marks, whitespace runs, control characters) satisfy
    ``decode(encode(t)) == t`` and never contain the <unk> id 3."""
    rng = random.Random(seed)
    tok = learner("tokenizer.byte_level_tokenizer").ByteLevelTokenizer().train(mixed_corpus(seed + 40, 3000),
                                                                             vocab_size=450)
    samples = [random_unicode_text(rng) for _ in range(120)]
    encoded = [(t, tok.encode(t)) for t in samples]
    _first_difference([(t, 3 in ids, False) for t, ids in encoded], say("encode 结果中出现 <unk>(3)", "<unk> (3) in encode"))
    _first_difference([(t, tok.decode(ids), t) for t, ids in encoded], "decode(encode(text))")


@pytest.mark.symbol("ByteLevelTokenizer.decode")
@pytest.mark.parametrize("seed", [0, 1])
def test_byte_level_decode_equals_reference_on_random_ids(seed):
    """Random id lists (specials between byte tokens, sequences that cut characters in half,
    invalid UTF-8): same text as the reference, with and without ``skip_special_tokens``."""
    rng = random.Random(seed)
    ref = _reference_trained("byte_level", mixed_corpus(seed + 50, 3000), 400)
    tok = _learner_from_reference("byte_level", ref)
    id_lists = [[rng.randrange(ref.vocab_size) if rng.random() < 0.8 else rng.randrange(4)
                 for _ in range(rng.randint(0, 25))] for _ in range(150)]
    _first_difference([(ids, tok.decode(ids, skip_special_tokens=skip), ref.decode(ids, skip_special_tokens=skip))
                       for ids in id_lists for skip in (False, True)], "decode(ids)")


# ============================================================ persistence


@pytest.mark.symbol("BaseTokenizer.load")
@pytest.mark.parametrize("kind", ["bpe", "byte_level"])
def test_save_load_round_trip_preserves_type_specials_and_encodings(tmp_path, kind):
    """A tokenizer with six custom specials, saved and read back with ``BaseTokenizer.load``:
    the same class, the same specials, vocab and merges, and the same ids on 100 texts."""
    rng = random.Random(kind)
    texts = mixed_corpus(60, 3000)
    ref = _reference_trained(kind, texts, 420, CUSTOM_SPECIALS)
    tok = _learner_from_reference(kind, ref)
    tok.save(tmp_path / "tok")
    loaded = learner("tokenizer.base_tokenizer").BaseTokenizer.load(tmp_path / "tok")
    assert_equal(type(loaded).__name__, type(tok).__name__, say("load 返回的类型", "type returned by load"))
    assert_equal(loaded.special_tokens, tok.special_tokens, "loaded.special_tokens")
    assert_same_sequence([tuple(m) for m in loaded.merges], [tuple(m) for m in tok.merges], "loaded.merges")
    assert_same_sequence(_tokens_in_id_order(loaded.vocab, "loaded.vocab"), tok.id_to_token_list, "loaded.vocab")
    samples = texts_like(texts, rng, 80) + [random_unicode_text(rng) for _ in range(20)]
    _first_difference([(t, loaded.encode(t), tok.encode(t)) for t in samples], "loaded.encode(text)")


@pytest.mark.symbol("BaseTokenizer.save")
@pytest.mark.parametrize("kind", ["bpe", "byte_level"])
def test_saved_file_is_read_by_the_reference_loader(tmp_path, kind):
    """The file format is the contract: what the learner's ``save`` writes, the reference's
    ``BaseTokenizer.load`` reads into the right class, encoding like the original."""
    rng = random.Random(kind)
    texts = chinese_corpus(70, 2000)
    ref = _reference_trained(kind, texts, 400, CUSTOM_SPECIALS)
    _learner_from_reference(kind, ref).save(tmp_path / "mine.json")
    again = reference("tokenizer").BaseTokenizer.load(tmp_path / "mine.json")
    assert_equal(type(again).__name__, type(ref).__name__, say("参考实现读回的类型", "type read back by the reference"))
    samples = texts_like(texts, rng, 60)
    _first_difference([(t, again.encode(t), ref.encode(t)) for t in samples], say("读回后的 encode(text)", "encode(text) after reading back"))


@pytest.mark.symbol("BaseTokenizer.load")
@pytest.mark.parametrize("kind", ["bpe", "byte_level"])
def test_load_reads_a_file_written_by_the_reference(tmp_path, kind):
    """A file written by the reference's ``save``: the learner's ``BaseTokenizer.load`` gives its
    own class of the right kind with the same specials, vocab and merges."""
    texts = english_corpus(80, 2000)
    ref = _reference_trained(kind, texts, 400, CUSTOM_SPECIALS)
    ref.save(tmp_path)
    loaded = learner("tokenizer.base_tokenizer").BaseTokenizer.load(tmp_path)
    assert_equal(type(loaded).__name__, type(ref).__name__, say("load 返回的类型", "type returned by load"))
    assert_equal(loaded.special_tokens, ref.special_tokens, "loaded.special_tokens")
    assert_same_sequence([tuple(m) for m in loaded.merges], [tuple(m) for m in ref.merges], "loaded.merges")
    assert_same_sequence(_tokens_in_id_order(loaded.vocab, "loaded.vocab"), ref.id_to_token_list, "loaded.vocab")


# ============================================================ batching


def _delegating_tokenizer(ref_tok):
    """A subclass of the learner's BaseTokenizer whose ``encode`` is the reference tokenizer's,
    so that only the learner's ``encode_batch`` is compared."""
    base = learner("tokenizer.base_tokenizer")

    class Delegating(base.BaseTokenizer):
        tokenizer_type = "test_delegating"

        def encode(self, text, add_special_tokens=False):
            return ref_tok.encode(text, add_special_tokens=add_special_tokens)

    return Delegating(list(ref_tok.special_tokens))


def _random_batch_options(rng: random.Random) -> dict:
    padding = rng.choice([True, "longest", "max_length", False])
    truncation = rng.random() < 0.5
    needs_length = truncation or padding == "max_length" or rng.random() < 0.3
    options = dict(
        padding=padding,
        truncation=truncation,
        max_length=rng.randint(1, 30) if needs_length else None,
        add_special_tokens=rng.random() < 0.5,
        padding_side=rng.choice(["left", "right"]),
    )
    if padding is not False and rng.random() < 0.3:
        options["return_tensors"] = "pt"
    return options


@pytest.mark.symbol("BaseTokenizer.encode_batch")
@pytest.mark.parametrize("seed", [0, 1])
def test_encode_batch_equals_reference_on_random_batches(seed):
    """60 random batches (0-6 texts, empty texts included) with random padding, side, truncation,
    ``max_length``, special tokens and tensors: the same ids and mask as the reference, and a
    ``ValueError`` exactly where the reference raises one (a text longer than ``max_length``
    with ``padding="max_length"`` and no truncation)."""
    rng = random.Random(seed)
    texts = english_corpus(seed + 90, 2000)
    ref = _reference_trained("bpe", texts, 300)
    tok = _delegating_tokenizer(ref)
    for _ in range(60):
        batch = [t for t in texts_like(texts, rng, rng.randint(0, 6))]
        options = _random_batch_options(rng)
        try:
            expected = ref.encode_batch(batch, **options)
        except ValueError:
            expect_error(ValueError, lambda b=batch, o=options: tok.encode_batch(b, **o),
                         f"encode_batch({batch!r}, **{options})")
            continue
        actual = tok.encode_batch(batch, **options)
        for key in ("input_ids", "attention_mask"):
            want, got = expected[key], actual[key]
            if options.get("return_tensors") == "pt":
                assert_equal(type(got).__name__, "Tensor", f"type({key}) with {options}")
                assert_equal(str(got.dtype), str(want.dtype), f"{key}.dtype with {options}")
                assert_equal(tuple(got.shape), tuple(want.shape), f"{key}.shape with {options}")
                got, want = got.tolist(), want.tolist()
            assert_equal(got, want, f"{key} of encode_batch({batch!r}, **{options})")
