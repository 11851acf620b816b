"""Tokenizers: the incremental BPE trainer against a naive one, encoding, special tokens,
batching and persistence.

The oracles here are written in this file, independently of the code under test:

- ``naive_train``: recount every pair after every merge, pick the highest count
  (ties: smallest ``(left, right)``), merge everywhere. The reference's incremental
  trainer must produce exactly these merges and ids.
- ``naive_encode_word``: GPT-2's ``bpe()`` loop (lowest-rank pair, merge all of it).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import pytest

from intro2llm.tokenizer import (
    DEFAULT_SPECIAL_TOKENS,
    BaseTokenizer,
    BPETokenizer,
    ByteLevelTokenizer,
)
from intro2llm.tokenizer.bpe_tokenizer import get_pair_counts, merge_pair, pre_tokenize

SPECIALS = list(DEFAULT_SPECIAL_TOKENS)
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


# ----- independent oracles ---------------------------------------------------------------------


def _merge(word: tuple[str, ...], a: str, b: str) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def naive_train(words: Counter, alphabet: list[str], vocab_size: int, specials=SPECIALS, min_frequency=1):
    """Recount everything after each merge. Returns (vocab, merges)."""
    vocab: dict[str, int] = {}
    for token in [*specials, *alphabet]:
        vocab.setdefault(token, len(vocab))
    corpus = {tuple(word): freq for word, freq in words.items()}
    merges = []
    while len(vocab) < vocab_size:
        counts: Counter = Counter()
        for word, freq in corpus.items():
            for i in range(len(word) - 1):
                counts[word[i], word[i + 1]] += freq
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))  # highest count, then smallest pair
        if counts[best] < max(min_frequency, 1):
            break
        merges.append(best)
        vocab.setdefault(best[0] + best[1], len(vocab))
        corpus = {_merge(word, *best): freq for word, freq in corpus.items()}
    return vocab, merges


def char_words(texts) -> Counter:
    words: Counter = Counter()
    for text in texts:
        words.update(re.findall(r"\s*\S+|\s+", text))
    return words


def naive_encode_word(word: str, merges: list[tuple[str, str]]) -> list[str]:
    """GPT-2 ``bpe()``: merge the lowest-rank pair (all occurrences) until none is a merge."""
    ranks = {pair: rank for rank, pair in enumerate(merges)}
    symbols = tuple(word)
    while len(symbols) > 1:
        pairs = set(zip(symbols, symbols[1:], strict=False))
        best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if best not in ranks:
            break
        symbols = _merge(symbols, *best)
    return list(symbols)


def random_texts(seed: int, alphabet: str, n_texts: int = 6, max_len: int = 40) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, max_len))) for _ in range(n_texts)]


CORPORA = {
    "classic": ["low low low low low lower lower newest newest newest newest newest newest widest widest widest"],
    "ties": ["ab cd ab cd ef gh ef gh", "cd ab gh ef"],
    "overlaps": ["aaaaaaa aaa aa a aaaa", "aaaaa"],
    "cjk": ["我们喜欢自然语言处理。我们学习分词，我们学习模型。", "自然语言处理很有趣！分词是第一步。"],
    "mixed": ["Hello world! 你好，世界。 It's 2024; ok?", "hello  world\n\nhello\tworld 世界世界"],
    **{f"random{seed}": random_texts(seed, "aab  c") for seed in range(8)},
    **{f"random_cjk{seed}": random_texts(100 + seed, "你好世界 你") for seed in range(4)},
}


# ----- pure helpers ---------------------------------------------------------------------------


def test_get_pair_counts_weights_pairs_by_word_frequency():
    """("a","b","c") x2 gives ab:2, bc:2; ("b","c") x1 adds bc:1 -> bc:3."""
    counts = get_pair_counts({("a", "b", "c"): 2, ("b", "c"): 1})
    assert counts == Counter({("b", "c"): 3, ("a", "b"): 2})


@pytest.mark.parametrize(
    ("word", "pair", "expected"),
    [
        (("a", "b", "c", "a", "b"), ("a", "b"), ("ab", "c", "ab")),
        (("a", "a", "a"), ("a", "a"), ("aa", "a")),  # left to right, no overlap
        (("a", "a", "a", "a"), ("a", "a"), ("aa", "aa")),
        (("x", "y"), ("a", "b"), ("x", "y")),
        ((), ("a", "b"), ()),
    ],
)
def test_merge_pair_by_hand(word, pair, expected):
    assert merge_pair(word, pair) == expected


@pytest.mark.parametrize("seed", range(5))
def test_pre_tokenize_pieces_concatenate_back(seed):
    text = random_texts(seed, "ab \t\n你。", n_texts=1, max_len=80)[0]
    pieces = pre_tokenize(text)
    assert "".join(pieces) == text
    assert all(piece for piece in pieces)
    assert pre_tokenize("Hello  world!\n") == ["Hello", "  world!", "\n"]


# ----- training -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CORPORA))
@pytest.mark.parametrize("extra", [0, 5, 30])
def test_bpe_train_equals_naive_recount_trainer(name, extra):
    texts = CORPORA[name]
    words = char_words(texts)
    alphabet = sorted(set("".join(words)))
    vocab_size = len(SPECIALS) + len(alphabet) + extra
    vocab, merges = naive_train(words, alphabet, vocab_size)
    tok = BPETokenizer().train(texts, vocab_size)
    assert tok.merges == merges
    assert tok.vocab == vocab


@pytest.mark.parametrize("min_frequency", [2, 3])
def test_bpe_train_min_frequency_matches_naive(min_frequency):
    texts = CORPORA["classic"] + CORPORA["random3"]
    words = char_words(texts)
    alphabet = sorted(set("".join(words)))
    vocab, merges = naive_train(words, alphabet, 10_000, min_frequency=min_frequency)
    tok = BPETokenizer().train(texts, 10_000, min_frequency=min_frequency)
    assert tok.merges == merges and tok.vocab == vocab
    assert len(tok.vocab) < 10_000  # stopped by min_frequency, not by size


def test_train_is_independent_of_text_order():
    texts = [line for name in ("classic", "cjk", "mixed") for line in CORPORA[name]]
    shuffled = texts[:]
    random.Random(0).shuffle(shuffled)
    assert BPETokenizer().train(texts, 80).merges == BPETokenizer().train(shuffled, 80).merges


def test_train_large_random_corpus_equals_naive():
    rng = random.Random(7)
    words = ["the", "then", "there", "her", "here", "其", "其中", "中文", "文字"]
    texts = [" ".join(rng.choice(words) + rng.choice(["", "e", "s", "的"]) for _ in range(50)) for _ in range(20)]
    char = char_words(texts)
    alphabet = sorted(set("".join(char)))
    vocab, merges = naive_train(char, alphabet, 120)
    tok = BPETokenizer().train(texts, 120)
    assert tok.merges == merges and tok.vocab == vocab


@pytest.mark.parametrize("name", ["classic", "cjk", "mixed", "random1", "random_cjk0"])
def test_byte_level_train_equals_naive_on_byte_symbols(name):
    """Byte-level words: GPT-2 regex pieces, each UTF-8 byte shown through the GPT-2 table
    (taken from transformers); alphabet = the 256 byte symbols in byte order."""
    import regex
    from transformers.convert_slow_tokenizer import bytes_to_unicode as hf_bytes_to_unicode

    table = hf_bytes_to_unicode()
    texts = CORPORA[name]
    words: Counter = Counter()
    for text in texts:
        for piece in regex.findall(GPT2_PATTERN, text):
            words["".join(table[b] for b in piece.encode("utf-8"))] += 1
    alphabet = [table[b] for b in range(256)]
    vocab, merges = naive_train(words, alphabet, len(SPECIALS) + 256 + 40)
    tok = ByteLevelTokenizer().train(texts, len(SPECIALS) + 256 + 40)
    assert tok.merges == merges and tok.vocab == vocab


def test_train_returns_self_and_retraining_starts_over():
    tok = BPETokenizer()
    assert tok.train(CORPORA["classic"], 30) is tok
    first = (dict(tok.vocab), list(tok.merges))
    tok.train(CORPORA["cjk"], 40)
    assert "l" not in tok.vocab and "我" in tok.vocab
    tok.train(CORPORA["classic"], 30)
    assert (tok.vocab, tok.merges) == first


def test_vocab_size_too_small_names_the_minimum():
    """classic corpus alphabet: ' ', d, e, i, l, n, o, r, s, t, w -> 11 symbols + 4 specials = 15."""
    with pytest.raises(ValueError, match="15"):
        BPETokenizer().train(CORPORA["classic"], 14)
    assert BPETokenizer().train(CORPORA["classic"], 15).merges == []
    with pytest.raises(ValueError, match="260"):
        ByteLevelTokenizer().train(["abc"], 259)


def test_train_rejects_a_single_string():
    with pytest.raises(ValueError, match=r"\[text\]"):
        BPETokenizer().train("hello world", 50)


def test_special_tokens_in_training_text_are_not_learned():
    texts = ["hello<eos>hello<eos><pad><pad>"] * 5
    tok = BPETokenizer().train(texts, 100)
    assert "<" not in "".join(tok.vocab.keys() - set(SPECIALS))
    assert all("<" not in a + b for a, b in tok.merges)


def test_train_can_replace_special_tokens():
    specials = ["[PAD]", "[BOS]", "[EOS]", "[UNK]", "<|user|>"]
    tok = BPETokenizer().train(["hi <|user|> there"], 30, special_tokens=specials)
    assert tok.special_tokens == {s: i for i, s in enumerate(specials)}
    assert [tok.vocab[s] for s in specials] == [0, 1, 2, 3, 4]
    assert (tok.pad_token_id, tok.eos_token_id) == (0, 2)
    assert tok.encode("<|user|>") == [4]


# ----- encoding and decoding ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def char_tok() -> BPETokenizer:
    texts = [line for name in ("classic", "cjk", "mixed", "random2") for line in CORPORA[name]]
    return BPETokenizer().train(texts, 90)


@pytest.fixture(scope="module")
def byte_tok() -> ByteLevelTokenizer:
    texts = [line for name in ("classic", "cjk", "mixed", "random2") for line in CORPORA[name]]
    return ByteLevelTokenizer().train(texts * 3, 400)


def test_encode_matches_gpt2_bpe_loop_word_by_word(char_tok, byte_tok):
    for tok in (char_tok, byte_tok):
        for name in sorted(CORPORA):
            for text in CORPORA[name]:
                expected = [tok.vocab.get(symbol, tok.unk_token_id)
                            for word in tok.pre_tokenize(text)
                            for symbol in naive_encode_word(word, tok.merges)]
                assert tok.encode(text) == expected


def test_char_encode_decode_round_trip_within_the_alphabet(char_tok):
    for name in ("classic", "cjk", "mixed"):
        for text in CORPORA[name]:
            ids = char_tok.encode(text)
            assert char_tok.decode(ids) == text
            assert char_tok.unk_token_id not in ids


def test_char_unknown_characters_become_unk(char_tok):
    ids = char_tok.encode("low€")
    assert ids[-1] == char_tok.unk_token_id
    assert char_tok.decode(ids) == "low<unk>"
    assert char_tok.decode(ids, skip_special_tokens=True) == "low"


@pytest.mark.parametrize("seed", range(10))
def test_byte_level_round_trips_any_unicode(byte_tok, seed):
    rng = random.Random(seed)
    pools = [(0x20, 0x7E), (0x00, 0x1F), (0x4E00, 0x9FFF), (0x1F300, 0x1FAFF), (0xA0, 0x24F), (0x3000, 0x303F)]
    chars = []
    for _ in range(200):
        lo, hi = rng.choice(pools)
        chars.append(chr(rng.randint(lo, hi)))
    text = "".join(chars)
    ids = byte_tok.encode(text)
    assert byte_tok.decode(ids) == text
    assert byte_tok.unk_token_id not in ids


def test_byte_level_decode_replaces_invalid_utf8(byte_tok):
    """"你" is three bytes; its first byte alone is not valid UTF-8 -> U+FFFD."""
    first_byte_symbol = byte_tok.byte_encoder["你".encode()[0]]
    assert byte_tok.decode([byte_tok.vocab[first_byte_symbol]]) == "\ufffd"


def test_byte_level_pre_tokenize_maps_bytes_through_the_gpt2_table(byte_tok):
    """space 0x20 -> U+0120 "Ġ", newline 0x0A -> U+010A "Ċ"."""
    assert byte_tok.pre_tokenize("Hi there\nok") == ["Hi", "\u0120there", "\u010a", "ok"]


@pytest.mark.parametrize("tok_name", ["char_tok", "byte_tok"])
def test_special_tokens_are_never_split(tok_name, request):
    """A broken special ("<eos" without ">") is ordinary text: bytes for the byte-level
    tokenizer, one unk per unseen character ("<") for the character-level one."""
    tok = request.getfixturevalue(tok_name)
    text = "<bos>low<eos><pad>new<unk><eos"
    ids = tok.encode(text)
    enc = tok.encode
    assert ids == [1, *enc("low"), 2, 0, *enc("new"), 3, *enc("<eos")]
    if tok_name == "byte_tok":
        assert tok.decode(ids) == text
        assert tok.decode(ids, skip_special_tokens=True) == "lownew<eos"
    else:
        assert tok.encode("<eos") == [3, *tok.encode("eos")]
        assert tok.decode(ids) == "<bos>low<eos><pad>new<unk><unk>eos"


def test_longest_special_token_wins():
    specials = ["<pad>", "<bos>", "<eos>", "<unk>", "<|im", "<|im_start|>"]
    tok = ByteLevelTokenizer().train(["hello"], 270, special_tokens=specials)
    assert tok.encode("<|im_start|>hi<|im") == [5, *tok.encode("hi"), 4]


@pytest.mark.parametrize("tok_name", ["char_tok", "byte_tok"])
def test_add_special_tokens_wraps_in_bos_eos(tok_name, request):
    tok = request.getfixturevalue(tok_name)
    plain = tok.encode("low new")
    assert tok.encode("low new", add_special_tokens=True) == [tok.bos_token_id, *plain, tok.eos_token_id]
    assert tok.encode("", add_special_tokens=True) == [1, 2]
    assert tok.encode("") == []


@pytest.mark.parametrize("tok_name", ["char_tok", "byte_tok"])
def test_decode_unknown_id_raises_naming_it(tok_name, request):
    tok = request.getfixturevalue(tok_name)
    with pytest.raises(ValueError, match=str(tok.vocab_size + 7)):
        tok.decode([1, tok.vocab_size + 7])
    with pytest.raises(ValueError, match="-1"):
        tok.decode([-1])


def test_decode_accepts_a_tensor(byte_tok):
    import torch

    ids = byte_tok.encode("hello 你好")
    assert byte_tok.decode(torch.tensor(ids)) == "hello 你好"


def test_vocab_ids_are_contiguous_and_specials_first(char_tok, byte_tok):
    for tok in (char_tok, byte_tok):
        assert sorted(tok.vocab.values()) == list(range(tok.vocab_size))
        assert [tok.vocab[s] for s in SPECIALS] == [0, 1, 2, 3]
        assert all(tok.id_to_token(i) == t for t, i in tok.vocab.items())
        assert tok.token_to_id("<eos>") == 2 and tok.token_to_id("no such token") is None


def test_byte_level_alphabet_is_256_bytes_in_byte_order(byte_tok):
    for b in range(256):
        assert byte_tok.vocab[byte_tok.byte_encoder[b]] == len(SPECIALS) + b


# ----- the base class -----------------------------------------------------------------------------


def test_base_special_token_ids_and_roles():
    tok = BaseTokenizer()
    assert tok.special_tokens == {"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 3}
    assert (tok.pad_token, tok.bos_token, tok.eos_token, tok.unk_token) == tuple(SPECIALS)
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)


@pytest.mark.parametrize("specials", [["<pad>", "<bos>", "<eos>"], ["a", "b", "c", "a"], ["a", "", "c", "d"]])
def test_base_rejects_bad_special_tokens(specials):
    with pytest.raises(ValueError):
        BaseTokenizer(specials)


def test_base_leaves_the_algorithm_to_subclasses():
    tok = BaseTokenizer()
    with pytest.raises(NotImplementedError):
        tok.encode("x")
    with pytest.raises(NotImplementedError):
        tok.decode([0])
    with pytest.raises(NotImplementedError):
        _ = tok.vocab_size


# ----- encode_batch ---------------------------------------------------------------------------------

BATCH = ["low", "newest widest", "", "low low"]


@pytest.mark.parametrize("side", ["right", "left"])
def test_encode_batch_pads_to_longest_with_mask(char_tok, side):
    singles = [char_tok.encode(t) for t in BATCH]
    width = max(map(len, singles))
    out = char_tok.encode_batch(BATCH, padding_side=side)
    for ids, row, mask in zip(singles, out["input_ids"], out["attention_mask"], strict=True):
        pad = [char_tok.pad_token_id] * (width - len(ids))
        assert row == (ids + pad if side == "right" else pad + ids)
        assert mask == ([1] * len(ids) + [0] * len(pad) if side == "right" else [0] * len(pad) + [1] * len(ids))
    assert char_tok.encode_batch(BATCH, padding="longest", padding_side=side) == out


def test_encode_batch_max_length_padding_and_truncation(char_tok):
    singles = [char_tok.encode(t, add_special_tokens=True) for t in BATCH]
    out = char_tok.encode_batch(BATCH, padding="max_length", max_length=4, truncation=True, add_special_tokens=True)
    for ids, row, mask in zip(singles, out["input_ids"], out["attention_mask"], strict=True):
        kept = ids[:4]
        assert row == kept + [0] * (4 - len(kept))
        assert mask == [1] * len(kept) + [0] * (4 - len(kept))
    wide = char_tok.encode_batch(BATCH, padding="max_length", max_length=50)
    assert all(len(row) == 50 for row in wide["input_ids"])


def test_encode_batch_without_padding_is_ragged(char_tok):
    out = char_tok.encode_batch(BATCH, padding=False)
    assert out["input_ids"] == [char_tok.encode(t) for t in BATCH]
    assert out["attention_mask"] == [[1] * len(ids) for ids in out["input_ids"]]


def test_encode_batch_truncation_without_padding(char_tok):
    out = char_tok.encode_batch(BATCH, padding=False, truncation=True, max_length=2)
    assert out["input_ids"] == [char_tok.encode(t)[:2] for t in BATCH]


def test_encode_batch_returns_long_tensors(char_tok):
    import torch

    out = char_tok.encode_batch(BATCH, return_tensors="pt", padding_side="left")
    lists = char_tok.encode_batch(BATCH, padding_side="left")
    assert out["input_ids"].dtype == torch.long and out["attention_mask"].dtype == torch.long
    assert out["input_ids"].tolist() == lists["input_ids"]
    assert out["attention_mask"].tolist() == lists["attention_mask"]
    empty = char_tok.encode_batch([""], return_tensors="pt")
    assert tuple(empty["input_ids"].shape) == (1, 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(truncation=True),
        dict(padding="max_length"),
        dict(padding=False, return_tensors="pt"),
        dict(padding="sideways"),
        dict(padding_side="middle"),
        dict(return_tensors="np"),
        dict(padding="max_length", max_length=2),  # "newest widest" is longer and not truncated
        dict(truncation=True, max_length=0),
    ],
)
def test_encode_batch_bad_options_raise_value_error(char_tok, kwargs):
    with pytest.raises(ValueError):
        char_tok.encode_batch(BATCH, **kwargs)


def test_encode_batch_rejects_a_single_string(char_tok):
    with pytest.raises(ValueError, match="list"):
        char_tok.encode_batch("low")


# ----- save / load ------------------------------------------------------------------------------------


@pytest.mark.parametrize("tok_name", ["char_tok", "byte_tok"])
@pytest.mark.parametrize("as_file", [False, True])
def test_save_load_round_trip(tok_name, as_file, tmp_path, request):
    tok = request.getfixturevalue(tok_name)
    target = tmp_path / "tok.json" if as_file else tmp_path / "out" / "final_model"
    written = tok.save(target)
    assert written == (target if as_file else target / "tokenizer.json")
    data = json.loads(written.read_text(encoding="utf-8"))
    assert data["format_version"] == 1 and data["special_tokens"] == SPECIALS
    assert data["type"] == type(tok).tokenizer_type
    for loader in (BaseTokenizer.load, type(tok).load):
        again = loader(target)
        assert type(again) is type(tok)
        assert again.vocab == tok.vocab and again.merges == tok.merges
        text = "<bos>low newest 你好世界 It's 2024!<eos>"
        assert again.encode(text) == tok.encode(text)


def test_load_checks_the_class(byte_tok, char_tok, tmp_path):
    byte_tok.save(tmp_path / "byte.json")
    char_tok.save(tmp_path / "char.json")
    assert isinstance(BPETokenizer.load(tmp_path / "byte.json"), ByteLevelTokenizer)  # a subclass is fine
    with pytest.raises(ValueError, match="BaseTokenizer.load"):
        ByteLevelTokenizer.load(tmp_path / "char.json")


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        BaseTokenizer.load(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{oops", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json"):
        BaseTokenizer.load(bad)
    bad.write_text(json.dumps({"format_version": 1, "type": "sentencepiece", "special_tokens": SPECIALS}))
    with pytest.raises(ValueError, match="sentencepiece"):
        BaseTokenizer.load(bad)
    bad.write_text(json.dumps({"format_version": 99, "type": "bpe", "special_tokens": SPECIALS}))
    with pytest.raises(ValueError, match="format_version"):
        BaseTokenizer.load(bad)
    bad.write_text(json.dumps({"format_version": 1, "type": "bpe", "special_tokens": SPECIALS,
                               "vocab": {"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 3, "a": 4},
                               "merges": [["a", "b"]]}))
    with pytest.raises(ValueError, match="merge"):
        BaseTokenizer.load(bad)


def test_custom_special_tokens_survive_save_load(tmp_path):
    specials = ["[PAD]", "[BOS]", "[EOS]", "[UNK]", "<|user|>"]
    tok = ByteLevelTokenizer(specials).train(["hi there <|user|> hi"], 270)
    again = BaseTokenizer.load(tok.save(tmp_path))
    assert again.special_tokens == tok.special_tokens and again.unk_token == "[UNK]"
    assert again.encode("<|user|>hi") == tok.encode("<|user|>hi") == [4, *tok.encode("hi")]


def test_untrained_byte_level_tokenizer_encodes_any_text_without_unk():
    tokenizer = ByteLevelTokenizer()
    text = "hi 你好 🙂\n"
    ids = tokenizer.encode(text)
    assert tokenizer.unk_token_id not in ids
    assert len(ids) == len(text.encode("utf-8"))
    assert tokenizer.decode(ids) == text
