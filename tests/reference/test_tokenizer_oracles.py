"""The reference tokenizers against Hugging Face ``tokenizers`` / ``transformers``.

Given the same vocabulary and merges, the standard implementations must produce
the same ids:

- ``bytes_to_unicode()`` is GPT-2's table as ``transformers`` ships it;
- ``ByteLevelTokenizer`` == ``tokenizers.models.BPE`` + ``pre_tokenizers.ByteLevel(
  add_prefix_space=False, use_regex=True)`` + ``decoders.ByteLevel()``, and ==
  ``transformers.GPT2Tokenizer`` loaded from ``vocab.json`` / ``merges.txt`` files;
- ``BPETokenizer`` == ``models.BPE(unk_token="<unk>")`` after a ``Split`` on the same
  word pattern (``\\s*\\S+|\\s+``).

transformers / tokenizers are imported inside the tests (slow imports).
"""

from __future__ import annotations

import json
import random

import pytest

from intro2llm.tokenizer import DEFAULT_SPECIAL_TOKENS, BPETokenizer, ByteLevelTokenizer
from intro2llm.tokenizer.byte_level_tokenizer import bytes_to_unicode

SPECIALS = list(DEFAULT_SPECIAL_TOKENS)

_EN = ("the model learns to predict the next token from the previous tokens and it's trained on "
       "a large corpus of text we'll see how byte pair encoding merges frequent pairs they've "
       "been used since GPT-2 I'm sure you're ready").split()
_ZH = "我们 学习 自然 语言 处理 模型 分词 训练 数据 今天 天气 很好 的 了 是 在 有 和 一个 中文 文本".split()


def make_corpus(seed: int = 0, n_lines: int = 400) -> list[str]:
    """Seeded lines of English, Chinese, numbers, code and emoji."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        kind = rng.random()
        if kind < 0.4:
            line = " ".join(rng.choice(_EN) for _ in range(rng.randint(3, 15))).capitalize() + rng.choice(".!?")
        elif kind < 0.75:
            line = "".join(rng.choice(_ZH) for _ in range(rng.randint(3, 15))) + rng.choice("。！？，")
        elif kind < 0.9:
            line = f"def f_{rng.randint(0, 99)}(x):\n    return x * {rng.randint(0, 9999)}  # {rng.choice(_EN)}"
        else:
            line = rng.choice(["🙂", "🚀🚀", "👍🏽", "❤️", "🇨🇳"]) + " " + rng.choice(_EN) + " 2024-05-17 12:30"
        lines.append(line + "\n")
    return lines


PROBES = [
    "Hello world!",
    "Hello  world,   it's   a   test.",
    "   leading spaces and trailing   ",
    "tabs\tand\nnewlines\n\n\nand\r\nwindows",
    "我们学习自然语言处理，今天天气很好！",
    "中英混合 mixed 文本 text 123 四五六",
    "emoji 🙂🚀👍🏽❤️🇨🇳 and ZWJ 👩‍👩‍👧",
    "digits 0 12 345 6789 3.14159 1,000,000 2024-05-17",
    "punctuation!!! ??? ... --- ((( ))) [x] {y} <z> @#$%^&*",
    "contractions: I'm you're he's we'll they've she'd don't",
    "def f_12(x):\n    return x * 42  # the model",
    "",
    " ",
    "\n",
    "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ　和　全角空格",
    "Ünïcödé àccénts ñ ß ø œ",
    "Ελληνικά русский العربية עברית हिन्दी 한국어 日本語のテキスト",
]


def random_probe(seed: int) -> str:
    rng = random.Random(seed)
    pools = [(0x20, 0x7E), (0x4E00, 0x9FFF), (0x1F300, 0x1FAFF), (0xA0, 0x24F), (0x3040, 0x30FF)]
    out = []
    for _ in range(rng.randint(1, 120)):
        if rng.random() < 0.15:
            out.append(rng.choice([" ", "  ", "\n", "\t", "   \n"]))
        else:
            lo, hi = rng.choice(pools)
            out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


ALL_PROBES = PROBES + [random_probe(seed) for seed in range(40)]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return make_corpus()


@pytest.fixture(scope="module")
def byte_tok(corpus) -> ByteLevelTokenizer:
    return ByteLevelTokenizer().train(corpus, 900)


@pytest.fixture(scope="module")
def char_tok(corpus) -> BPETokenizer:
    return BPETokenizer().train(corpus, 500)


def hf_byte_level(tok: ByteLevelTokenizer, with_specials: bool = False):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    hf = Tokenizer(models.BPE(vocab=dict(tok.vocab), merges=list(tok.merges)))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    if with_specials:
        hf.add_special_tokens(list(tok.special_tokens))
    return hf


def test_bytes_to_unicode_equals_transformers():
    from transformers.convert_slow_tokenizer import bytes_to_unicode as hf_bytes_to_unicode

    ours = bytes_to_unicode()
    assert ours == hf_bytes_to_unicode()
    assert sorted(ours) == list(range(256))
    assert len(set(ours.values())) == 256


def test_byte_level_pre_tokenize_equals_tokenizers(byte_tok):
    from tokenizers import pre_tokenizers

    hf = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    for text in ALL_PROBES:
        assert byte_tok.pre_tokenize(text) == [piece for piece, _ in hf.pre_tokenize_str(text)], text


def test_byte_level_ids_equal_tokenizers(byte_tok):
    hf = hf_byte_level(byte_tok)
    for text in ALL_PROBES:
        ids = byte_tok.encode(text)
        assert ids == hf.encode(text).ids, text
        assert byte_tok.decode(ids) == hf.decode(ids) == text


def test_byte_level_ids_equal_tokenizers_on_the_training_corpus(byte_tok, corpus):
    hf = hf_byte_level(byte_tok)
    text = "".join(corpus)
    assert byte_tok.encode(text) == hf.encode(text).ids


def test_byte_level_special_tokens_equal_tokenizers_added_tokens(byte_tok):
    hf = hf_byte_level(byte_tok, with_specials=True)
    for text in ["<bos>Hello world!<eos><pad><pad>", "我们<unk>学习<eos", "<bos><bos>x<eos>", "a<pad>b"]:
        assert byte_tok.encode(text) == hf.encode(text).ids, text
        assert byte_tok.decode(byte_tok.encode(text), skip_special_tokens=True) == hf.decode(
            hf.encode(text).ids, skip_special_tokens=True)


def test_byte_level_equals_transformers_gpt2_tokenizer_from_files(byte_tok, tmp_path):
    """Write GPT-2's two files (vocab.json, merges.txt) and load them with transformers."""
    from transformers import GPT2Tokenizer

    (tmp_path / "vocab.json").write_text(json.dumps(byte_tok.vocab, ensure_ascii=False), encoding="utf-8")
    merges = "".join(f"{a} {b}\n" for a, b in byte_tok.merges)
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + merges, encoding="utf-8")
    hf = GPT2Tokenizer.from_pretrained(tmp_path, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
                                       unk_token="<unk>")
    for text in ALL_PROBES:
        ids = byte_tok.encode(text)
        assert ids == hf(text)["input_ids"], text
        assert hf.decode(ids) == text
    assert byte_tok.encode("<bos>hi<eos>") == hf("<bos>hi<eos>")["input_ids"]


def test_char_bpe_ids_equal_tokenizers_bpe_with_unk(char_tok):
    """Characters outside the training alphabet become one <unk> each in both."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    hf = Tokenizer(models.BPE(vocab=dict(char_tok.vocab), merges=list(char_tok.merges), unk_token="<unk>"))
    hf.pre_tokenizer = pre_tokenizers.Split(Regex(r"\s*\S+|\s+"), behavior="isolated")
    ascii_probes = PROBES[:12] + ["unseen: Ωμέγα € ¥ 🙂 and the model", "the 模型 学习 ÿ"]
    for text in ascii_probes:
        assert char_tok.encode(text) == hf.encode(text).ids, text
