"""Lesson 01, basic tier: the contract of every target on small, hand-checkable cases.

Every expected value below is worked out by hand in the test's docstring (or
follows from a stated property); none is copied from running the reference.

Conventions used throughout:

- default special tokens ``<pad> <bos> <eos> <unk>`` have ids 0, 1, 2, 3;
- a character-level BPE vocabulary is: special tokens, then the *sorted*
  alphabet, then one token per merge;
- a byte-level vocabulary is: special tokens, then the 256 byte symbols in
  byte order, so byte ``b`` has id ``4 + b`` with the default specials.

The learner's code is imported inside each test (``learner(...)``), so a module
that fails to import is one failing test, not a broken suite.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from intro2llm_cli.testkit import assert_equal, assert_same_sequence, expect_error, learner, say

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]

# A small valid config; validation tests change one thing at a time.
SMALL = dict(
    vocab_size=100,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=32,
)

# The corpus of the README's worked example (section 2.2).
WORKED_TEXTS = ["tea"] * 3 + ["ten"] * 4 + ["tent"] * 2 + ["net"] * 2


def _config_module():
    return learner("model.config")


def _bpe_module():
    return learner("tokenizer.bpe_tokenizer")


def _byte_module():
    return learner("tokenizer.byte_level_tokenizer")


def _base_module():
    return learner("tokenizer.base_tokenizer")


def _tokens_in_id_order(vocab: dict[str, int], what: str) -> list[str]:
    """The tokens of ``vocab`` sorted by id, after checking the ids are exactly 0..len-1."""
    ids = sorted(vocab.values())
    assert ids == list(range(len(vocab))), say(
        f"{what}：id 必须恰好是 0..{len(vocab) - 1} 且不重复，实际 id 为 {ids[:20]}…",
        f"{what}: ids must be exactly 0..{len(vocab) - 1} without repeats, got ids {ids[:20]}…",
    )
    return [token for token, _ in sorted(vocab.items(), key=lambda kv: kv[1])]


def _message_names(exc: BaseException, names: tuple[str, ...]) -> None:
    text = str(exc)
    assert any(name in text for name in names), say(
        f"ValueError 的消息应写出出错的字段（{' / '.join(names)}），实际消息：{text!r}",
        f"the ValueError message should name the field ({' / '.join(names)}); got: {text!r}",
    )


def _worked_bpe():
    """The README's worked example: merges (t,e) (te,n) (te,a) (e,t); vocab_size 12."""
    return _bpe_module().BPETokenizer().train(WORKED_TEXTS, vocab_size=12)


def _char_tokenizer(special_tokens=None):
    """A subclass of the learner's BaseTokenizer whose ``encode`` is ``[ord(c) for c in text]``.

    It isolates ``encode_batch`` from BPE: "ab" -> [97, 98], "abc" -> [97, 98, 99],
    and ``add_special_tokens=True`` wraps the ids in bos (1) ... eos (2).
    """
    base = _base_module()

    class OrdTokenizer(base.BaseTokenizer):
        tokenizer_type = "test_ord"

        def encode(self, text, add_special_tokens=False):
            ids = [ord(ch) for ch in text]
            return [self.bos_token_id, *ids, self.eos_token_id] if add_special_tokens else ids

    return OrdTokenizer(special_tokens)


def _table_tokenizer_class():
    """A subclass of the learner's BaseTokenizer with a tiny state, to test save / load alone."""
    base = _base_module()

    class TableTokenizer(base.BaseTokenizer):
        tokenizer_type = "test_table"

        def __init__(self, special_tokens=None, table=None):
            super().__init__(special_tokens)
            self.table = dict(table or {})

        def get_state(self):
            return {"table": self.table}

        @classmethod
        def from_state(cls, special_tokens, state):
            return cls(special_tokens, state["table"])

    return TableTokenizer


# ===================================================================== ModelConfig


@pytest.mark.symbol("ModelConfig.__post_init__")
def test_config_defaults_are_llama2_7b_and_kv_heads_fill_in():
    """``ModelConfig()`` has the documented defaults; ``num_key_value_heads=None`` becomes
    ``num_attention_heads`` = 32 (plain multi-head attention)."""
    config = _config_module()
    cfg = config.ModelConfig()
    expected = dict(
        vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=2048,
        rope_theta=10000.0, rms_norm_eps=1e-6, norm_type="rmsnorm", ffn_type="swiglu",
        attention_dropout=0.0, hidden_dropout=0.0, tie_word_embeddings=False,
        initializer_range=0.02, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )
    for name, value in expected.items():
        assert_equal(getattr(cfg, name), value, f"ModelConfig().{name}")


@pytest.mark.symbol("ModelConfig.__post_init__")
@pytest.mark.parametrize("heads, kv_heads, expected", [(8, None, 8), (8, 2, 2), (8, 8, 8), (8, 1, 1)])
def test_num_key_value_heads_none_means_one_kv_head_per_query_head(heads, kv_heads, expected):
    """``None`` -> ``num_attention_heads`` (MHA); an explicit value (GQA 2, MHA 8, MQA 1) is kept."""
    config = _config_module()
    cfg = config.ModelConfig(hidden_size=128, num_attention_heads=heads, num_key_value_heads=kv_heads)
    assert_equal(cfg.num_key_value_heads, expected,
                 f"ModelConfig(num_attention_heads={heads}, num_key_value_heads={kv_heads}).num_key_value_heads")


@pytest.mark.symbol("ModelConfig.head_dim")
@pytest.mark.parametrize("hidden, heads, expected", [(4096, 32, 128), (64, 4, 16), (96, 8, 12), (8, 4, 2)])
def test_head_dim_is_hidden_size_floor_divided_by_heads(hidden, heads, expected):
    """``head_dim = hidden_size // num_attention_heads``: 4096 // 32 = 128, 64 // 4 = 16,
    96 // 8 = 12, 8 // 4 = 2. It is an ``int`` (``/`` would give the float 16.0)."""
    config = _config_module()
    cfg = config.ModelConfig(hidden_size=hidden, num_attention_heads=heads)
    value = cfg.head_dim
    assert type(value) is int, say(f"head_dim 应是 int，实际是 {type(value).__name__}（{value!r}）：用 // 而不是 /",
                                   f"head_dim should be an int, got {type(value).__name__} ({value!r}): use // not /")
    assert_equal(value, expected, f"ModelConfig(hidden_size={hidden}, num_attention_heads={heads}).head_dim")


@pytest.mark.symbol("ModelConfig.num_key_value_groups")
@pytest.mark.parametrize("heads, kv_heads, expected", [(32, 8, 4), (4, 2, 2), (8, None, 1), (8, 1, 8)])
def test_num_key_value_groups_is_query_heads_per_kv_head(heads, kv_heads, expected):
    """``num_attention_heads // num_key_value_heads``: 32 // 8 = 4 (Llama-3-8B), 4 // 2 = 2,
    MHA (kv None -> 8) 8 // 8 = 1, MQA 8 // 1 = 8. An ``int``."""
    config = _config_module()
    cfg = config.ModelConfig(hidden_size=256, num_attention_heads=heads, num_key_value_heads=kv_heads)
    value = cfg.num_key_value_groups
    assert type(value) is int, say(f"num_key_value_groups 应是 int，实际是 {type(value).__name__}",
                                   f"num_key_value_groups should be an int, got {type(value).__name__}")
    assert_equal(value, expected,
                 f"ModelConfig(num_attention_heads={heads}, num_key_value_heads={kv_heads}).num_key_value_groups")


INVALID_CONFIGS = [
    # (overrides of SMALL, names one of which the message must contain)
    ({"vocab_size": 0}, ("vocab_size",)),
    ({"hidden_size": -64}, ("hidden_size",)),
    ({"intermediate_size": 0}, ("intermediate_size",)),
    ({"num_hidden_layers": 0}, ("num_hidden_layers",)),
    ({"num_hidden_layers": 2.5}, ("num_hidden_layers",)),
    ({"num_attention_heads": 0}, ("num_attention_heads",)),
    ({"num_key_value_heads": 0}, ("num_key_value_heads",)),
    ({"max_position_embeddings": 0}, ("max_position_embeddings",)),
    # 64 % 6 == 4: the hidden size cannot be split over 6 heads (6 % 2 == 0 is fine).
    ({"num_attention_heads": 6}, ("hidden_size", "num_attention_heads")),
    # 4 % 3 == 1: 4 query heads cannot be grouped over 3 KV heads.
    ({"num_key_value_heads": 3}, ("num_key_value_heads",)),
    # 48 // 16 == 3: an odd head_dim, RoPE rotates pairs of dimensions.
    ({"hidden_size": 48, "num_attention_heads": 16, "num_key_value_heads": 4},
     ("head_dim", "hidden_size", "num_attention_heads")),
    ({"norm_type": "batchnorm"}, ("norm_type",)),
    ({"ffn_type": "relu"}, ("ffn_type",)),
    ({"attention_dropout": 1.0}, ("attention_dropout",)),
    ({"hidden_dropout": -0.1}, ("hidden_dropout",)),
    ({"rms_norm_eps": 0.0}, ("rms_norm_eps",)),
    ({"rope_theta": -1.0}, ("rope_theta",)),
    ({"initializer_range": 0.0}, ("initializer_range",)),
]


@pytest.mark.symbol("ModelConfig.__post_init__")
@pytest.mark.parametrize("overrides, names", INVALID_CONFIGS,
                         ids=["-".join(f"{k}={v}" for k, v in o.items()) for o, _ in INVALID_CONFIGS])
def test_invalid_config_raises_value_error_naming_the_field(overrides, names):
    """Each rule of ``__post_init__`` on its own: a ``ValueError`` (not an assert, not a
    ``ZeroDivisionError``) whose message names the offending field."""
    config = _config_module()
    params = {**SMALL, **overrides}
    exc = expect_error(ValueError, lambda: config.ModelConfig(**params), f"ModelConfig({overrides})")
    _message_names(exc, names)


@pytest.mark.symbol("ModelConfig.__post_init__")
@pytest.mark.parametrize("overrides", [
    {"attention_dropout": 0.0, "hidden_dropout": 0.999},
    {"num_key_value_heads": 1},
    {"num_key_value_heads": 4},
    {"hidden_size": 8, "num_attention_heads": 4, "num_key_value_heads": None},
    {"norm_type": "layernorm", "ffn_type": "gelu"},
    {"ffn_type": "geglu", "rope_theta": 500000.0, "rms_norm_eps": 1e-5},
], ids=["dropout-edges", "mqa", "mha", "head_dim-2", "layernorm-gelu", "geglu-llama3"])
def test_valid_edge_values_are_accepted(overrides):
    """Edges that are allowed: dropout 0 and 0.999 (< 1), one KV head (MQA), as many KV heads
    as query heads (MHA), ``head_dim = 8 // 4 = 2`` (even), every norm / FFN type."""
    config = _config_module()
    params = {**SMALL, **overrides}
    cfg = config.ModelConfig(**params)
    for name, value in overrides.items():
        if value is not None:
            assert_equal(getattr(cfg, name), value, f"ModelConfig(**{overrides}).{name}")


@pytest.mark.symbol("ModelConfig.to_dict")
def test_to_dict_holds_every_field_and_no_derived_property():
    """``tiny()`` -> the 18 fields with their values; ``head_dim`` / ``num_key_value_groups``
    are properties, not fields, so they are not in the dict (``from_dict`` would reject them)."""
    config = _config_module()
    cfg = config.ModelConfig.tiny()
    data = cfg.to_dict()
    field_names = [f.name for f in dataclasses.fields(config.ModelConfig)]
    extra = sorted(set(data) - set(field_names))
    missing = sorted(set(field_names) - set(data))
    assert not extra, say(f"to_dict 多出了非字段的键 {extra}（派生属性不应写入）",
                          f"to_dict has keys that are not fields: {extra} (derived properties stay out)")
    assert not missing, say(f"to_dict 缺少字段 {missing}", f"to_dict is missing fields {missing}")
    expected = dict(
        vocab_size=512, hidden_size=64, intermediate_size=172, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        rope_theta=10000.0, rms_norm_eps=1e-6, norm_type="rmsnorm", ffn_type="swiglu",
        attention_dropout=0.0, hidden_dropout=0.0, tie_word_embeddings=False,
        initializer_range=0.02, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )
    for name, value in expected.items():
        assert_equal(data[name], value, f"ModelConfig.tiny().to_dict()[{name!r}]")
    assert_equal(json.loads(json.dumps(data)), data, say("to_dict 经过 JSON 往返", "to_dict through JSON"))


@pytest.mark.symbol("ModelConfig.from_dict")
@pytest.mark.parametrize("preset", ["tiny", "small", "llama3_8b"])
def test_from_dict_of_to_dict_gives_an_equal_config(preset):
    """``from_dict(cfg.to_dict()) == cfg`` for presets with GQA and non-default rope_theta / eps."""
    config = _config_module()
    cfg = getattr(config.ModelConfig, preset)()
    again = config.ModelConfig.from_dict(cfg.to_dict())
    assert_equal(again, cfg, f"ModelConfig.from_dict(ModelConfig.{preset}().to_dict())")


@pytest.mark.symbol("ModelConfig.from_dict")
def test_from_dict_fills_missing_keys_with_defaults_and_validates():
    """``{"hidden_size": 64, "num_attention_heads": 4}`` -> vocab_size stays 32000 and
    ``num_key_value_heads`` becomes 4; ``{"hidden_size": 64, "num_attention_heads": 5}``
    is invalid (64 % 5 == 4) and must raise, because construction runs ``__post_init__``."""
    config = _config_module()
    cfg = config.ModelConfig.from_dict({"hidden_size": 64, "num_attention_heads": 4})
    assert_equal(cfg.vocab_size, 32000, "from_dict({'hidden_size': 64, ...}).vocab_size")
    assert_equal(cfg.num_key_value_heads, 4, "from_dict({'num_attention_heads': 4}).num_key_value_heads")
    expect_error(ValueError, lambda: config.ModelConfig.from_dict({"hidden_size": 64, "num_attention_heads": 5}),
                 "from_dict({'hidden_size': 64, 'num_attention_heads': 5})")


@pytest.mark.symbol("ModelConfig.from_dict")
def test_from_dict_rejects_unknown_keys_and_lists_them():
    """A typo (``hidden_szie``, ``num_attention_head``) must not be ignored silently: ValueError
    naming both unknown keys."""
    config = _config_module()
    data = {"hidden_szie": 64, "num_attention_head": 4, "vocab_size": 100}
    exc = expect_error(ValueError, lambda: config.ModelConfig.from_dict(data), f"ModelConfig.from_dict({data})")
    for key in ("hidden_szie", "num_attention_head"):
        assert key in str(exc), say(f"错误消息应列出未知键 {key!r}，实际：{exc}",
                                    f"the message should list the unknown key {key!r}; got: {exc}")


@pytest.mark.symbol("ModelConfig.save")
def test_save_to_a_directory_writes_config_json_sorted_with_indent_2(tmp_path):
    """``save(tmp/"run")`` creates the directory and writes ``tmp/run/config.json``; returns
    that path. The JSON holds ``to_dict()``, keys sorted, indented by 2 spaces."""
    config = _config_module()
    cfg = config.ModelConfig.tiny()
    written = cfg.save(tmp_path / "run")
    assert_equal(written, tmp_path / "run" / "config.json", say("save 返回的路径", "path returned by save"))
    file = tmp_path / "run" / "config.json"
    assert file.is_file(), say(f"{file} 应是一个文件", f"{file} should be a file")
    text = file.read_text(encoding="utf-8")
    data = json.loads(text)
    assert_equal(data, cfg.to_dict(), say("config.json 的内容", "content of config.json"))
    assert_same_sequence(list(data), sorted(data), say("config.json 中键的顺序（应排序）",
                                                         "order of the keys in config.json (sorted)"))
    second = text.splitlines()[1]
    assert second.startswith('  "') and not second.startswith('   '), say(
        f"JSON 应缩进 2 个空格，第二行是 {second!r}", f"the JSON should be indented by 2 spaces; line 2 is {second!r}")


@pytest.mark.symbol("ModelConfig.save")
def test_save_to_a_json_path_writes_that_file(tmp_path):
    """A path ending in ``.json`` is the file itself (parents created)."""
    config = _config_module()
    target = tmp_path / "nested" / "my_config.json"
    written = config.ModelConfig.tiny().save(target)
    assert_equal(written, target, say("save 返回的路径", "path returned by save"))
    assert target.is_file(), say(f"{target} 应被写出", f"{target} should have been written")


@pytest.mark.symbol("ModelConfig.load")
@pytest.mark.parametrize("by", ["directory", "file"])
def test_load_reads_back_what_save_wrote(tmp_path, by):
    """``load(dir)`` and ``load(dir/"config.json")`` both give a config equal to the saved one."""
    config = _config_module()
    cfg = config.ModelConfig.tiny(num_key_value_heads=1, rope_theta=500000.0, tie_word_embeddings=True)
    file = cfg.save(tmp_path / "ckpt")
    loaded = config.ModelConfig.load(tmp_path / "ckpt" if by == "directory" else file)
    assert_equal(loaded, cfg, f"ModelConfig.load({by})")


@pytest.mark.symbol("ModelConfig.load")
def test_load_missing_file_raises_file_not_found_with_the_path(tmp_path):
    """No ``config.json`` under the directory -> ``FileNotFoundError`` whose message shows the path."""
    config = _config_module()
    missing = tmp_path / "nothing_here"
    exc = expect_error(FileNotFoundError, lambda: config.ModelConfig.load(missing), f"ModelConfig.load({missing})")
    assert str(missing) in str(exc), say(f"消息中应包含路径 {missing}，实际：{exc}",
                                         f"the message should contain the path {missing}; got: {exc}")


@pytest.mark.symbol("ModelConfig.load")
def test_load_invalid_json_raises_value_error_naming_the_file(tmp_path):
    """A damaged ``config.json`` -> ``ValueError`` whose message names the file (a bare
    ``json.JSONDecodeError`` is a ValueError too, but its message does not say which file)."""
    config = _config_module()
    (tmp_path / "config.json").write_text("{ not json", encoding="utf-8")
    exc = expect_error(ValueError, lambda: config.ModelConfig.load(tmp_path), "ModelConfig.load(<broken json>)")
    assert "config.json" in str(exc), say(f"消息中应写出文件名 config.json，实际：{exc}",
                                          f"the message should name the file config.json; got: {exc}")


@pytest.mark.symbol("ModelConfig.load")
def test_load_rejects_unknown_keys_in_the_file(tmp_path):
    """``load`` goes through ``from_dict``: a file with a misspelt key raises ``ValueError``."""
    config = _config_module()
    data = {**config.ModelConfig.tiny().to_dict(), "hiden_size": 64}
    (tmp_path / "config.json").write_text(json.dumps(data), encoding="utf-8")
    exc = expect_error(ValueError, lambda: config.ModelConfig.load(tmp_path), "ModelConfig.load(<unknown key>)")
    assert "hiden_size" in str(exc), say(f"消息应写出未知键 'hiden_size'，实际：{exc}",
                                         f"the message should name the unknown key 'hiden_size'; got: {exc}")


# ===================================================================== BaseTokenizer


@pytest.mark.symbol("BaseTokenizer.__init__")
def test_default_special_tokens_take_ids_0_to_3():
    """``<pad> <bos> <eos> <unk>`` -> 0 1 2 3, with the role attributes set."""
    base = _base_module()
    tok = base.BaseTokenizer()
    assert_equal(tok.special_tokens, {"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 3}, "BaseTokenizer().special_tokens")
    for role, token, idx in [("pad", "<pad>", 0), ("bos", "<bos>", 1), ("eos", "<eos>", 2), ("unk", "<unk>", 3)]:
        assert_equal(getattr(tok, f"{role}_token"), token, f"BaseTokenizer().{role}_token")
        assert_equal(getattr(tok, f"{role}_token_id"), idx, f"BaseTokenizer().{role}_token_id")


@pytest.mark.symbol("BaseTokenizer.__init__")
def test_custom_special_tokens_first_four_are_the_roles():
    """``["[PAD]", "[BOS]", "[EOS]", "[UNK]", "<|user|>"]`` -> ids 0..4 in order; the first four
    are pad / bos / eos / unk, the fifth is just one more special token."""
    base = _base_module()
    tokens = ["[PAD]", "[BOS]", "[EOS]", "[UNK]", "<|user|>"]
    tok = base.BaseTokenizer(tokens)
    assert_equal(tok.special_tokens, {t: i for i, t in enumerate(tokens)}, "BaseTokenizer(custom).special_tokens")
    assert_equal((tok.pad_token, tok.bos_token, tok.eos_token, tok.unk_token), tuple(tokens[:4]),
                 "(pad_token, bos_token, eos_token, unk_token)")
    assert_equal((tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id), (0, 1, 2, 3),
                 "(pad_token_id, bos_token_id, eos_token_id, unk_token_id)")


@pytest.mark.symbol("BaseTokenizer.__init__")
@pytest.mark.parametrize("tokens", [["<pad>", "<bos>", "<eos>"], ["<pad>", "<bos>", "<eos>", "<pad>"], []],
                         ids=["three", "duplicate", "empty"])
def test_too_few_or_duplicate_special_tokens_raise_value_error(tokens):
    """Fewer than four (no unk role) or a repeated token (two ids for one string) -> ValueError."""
    base = _base_module()
    expect_error(ValueError, lambda: base.BaseTokenizer(tokens), f"BaseTokenizer({tokens})")


@pytest.mark.symbol("BaseTokenizer.encode_batch")
@pytest.mark.parametrize("padding", [True, "longest"])
def test_encode_batch_pads_right_to_the_longest_with_mask(padding):
    """``["abc", "a", ""]`` with encode = ord: [97, 98, 99], [97], [] -> longest is 3::

        input_ids      [[97, 98, 99], [97, 0, 0], [0, 0, 0]]     (pad id 0 after the tokens)
        attention_mask [[1, 1, 1],    [1, 0, 0],  [0, 0, 0]]
    """
    tok = _char_tokenizer()
    out = tok.encode_batch(["abc", "a", ""], padding=padding)
    assert_equal(out["input_ids"], [[97, 98, 99], [97, 0, 0], [0, 0, 0]], "input_ids")
    assert_equal(out["attention_mask"], [[1, 1, 1], [1, 0, 0], [0, 0, 0]], "attention_mask")


@pytest.mark.symbol("BaseTokenizer.encode_batch")
def test_encode_batch_left_padding_puts_pads_before_the_tokens():
    """Same batch, ``padding_side="left"``: pads and zeros move in front, ids and mask together::

        input_ids      [[97, 98, 99], [0, 0, 97], [0, 0, 0]]
        attention_mask [[1, 1, 1],    [0, 0, 1],  [0, 0, 0]]
    """
    tok = _char_tokenizer()
    out = tok.encode_batch(["abc", "a", ""], padding_side="left")
    assert_equal(out["input_ids"], [[97, 98, 99], [0, 0, 97], [0, 0, 0]], "input_ids (padding_side='left')")
    assert_equal(out["attention_mask"], [[1, 1, 1], [0, 0, 1], [0, 0, 0]], "attention_mask (padding_side='left')")


@pytest.mark.symbol("BaseTokenizer.encode_batch")
def test_encode_batch_max_length_padding_pads_every_row_to_max_length():
    """``["ab", "a"]``, ``padding="max_length", max_length=4`` -> [[97, 98, 0, 0], [97, 0, 0, 0]]."""
    tok = _char_tokenizer()
    out = tok.encode_batch(["ab", "a"], padding="max_length", max_length=4)
    assert_equal(out["input_ids"], [[97, 98, 0, 0], [97, 0, 0, 0]], "input_ids (padding='max_length', max_length=4)")
    assert_equal(out["attention_mask"], [[1, 1, 0, 0], [1, 0, 0, 0]], "attention_mask (max_length=4)")


@pytest.mark.symbol("BaseTokenizer.encode_batch")
def test_encode_batch_truncation_keeps_the_first_max_length_ids():
    """``["abcdef", "ab"]``, ``truncation=True, max_length=3`` -> [97, 98, 99] (the *first*
    three) and [97, 98] padded to 3: [[97, 98, 99], [97, 98, 0]]."""
    tok = _char_tokenizer()
    out = tok.encode_batch(["abcdef", "ab"], truncation=True, max_length=3)
    assert_equal(out["input_ids"], [[97, 98, 99], [97, 98, 0]], "input_ids (truncation=True, max_length=3)")
    assert_equal(out["attention_mask"], [[1, 1, 1], [1, 1, 0]], "attention_mask (truncation=True, max_length=3)")


@pytest.mark.symbol("BaseTokenizer.encode_batch")
def test_encode_batch_adds_special_tokens_before_truncating():
    """``["abcd"]``, ``add_special_tokens=True, truncation=True, max_length=3``:
    [1, 97, 98, 99, 100, 2] is cut to [1, 97, 98] (the eos is lost, bos kept)."""
    tok = _char_tokenizer()
    out = tok.encode_batch(["abcd"], add_special_tokens=True, truncation=True, max_length=3)
    assert_equal(out["input_ids"], [[1, 97, 98]], "input_ids (add_special_tokens, truncation, max_length=3)")
    assert_equal(out["attention_mask"], [[1, 1, 1]], "attention_mask")


@pytest.mark.symbol("BaseTokenizer.encode_batch")
def test_encode_batch_without_padding_returns_ragged_lists():
    """``padding=False``: [[97, 98], [97]] and all-ones masks [[1, 1], [1]]."""
    tok = _char_tokenizer()
    out = tok.encode_batch(["ab", "a"], padding=False)
    assert_equal(out["input_ids"], [[97, 98], [97]], "input_ids (padding=False)")
    assert_equal(out["attention_mask"], [[1, 1], [1]], "attention_mask (padding=False)")


@pytest.mark.symbol("BaseTokenizer.encode_batch")
def test_encode_batch_return_tensors_pt_gives_long_tensors():
    """``return_tensors="pt"``: ``torch.long`` tensors of shape [2, 3] with the same values."""
    import torch

    tok = _char_tokenizer()
    out = tok.encode_batch(["abc", "a"], return_tensors="pt")
    for key, expected in [("input_ids", [[97, 98, 99], [97, 0, 0]]), ("attention_mask", [[1, 1, 1], [1, 0, 0]])]:
        value = out[key]
        assert isinstance(value, torch.Tensor), say(f"{key} 应是 torch.Tensor，实际是 {type(value).__name__}",
                                                    f"{key} should be a torch.Tensor, got {type(value).__name__}")
        assert_equal(value.dtype, torch.long, f"{key}.dtype")
        assert_equal(value.tolist(), expected, key)


ENCODE_BATCH_ERRORS = [
    ("truncation-without-max_length", ["ab"], dict(truncation=True)),
    ("max_length-padding-without-max_length", ["ab"], dict(padding="max_length")),
    ("too-long-for-max_length", ["abcdef"], dict(padding="max_length", max_length=3)),
    ("bad-padding-side", ["ab"], dict(padding_side="middle")),
    ("bad-padding-value", ["ab"], dict(padding="shortest")),
    ("one-string-not-a-list", "hello", dict()),
    ("ragged-tensors", ["ab", "a"], dict(padding=False, return_tensors="pt")),
]


@pytest.mark.symbol("BaseTokenizer.encode_batch")
@pytest.mark.parametrize("case, texts, kwargs", ENCODE_BATCH_ERRORS, ids=[c[0] for c in ENCODE_BATCH_ERRORS])
def test_encode_batch_rejects_impossible_options_with_value_error(case, texts, kwargs):
    """Options that cannot be honoured raise ``ValueError`` instead of a silently odd batch:
    truncation / max_length padding without ``max_length``; a 6-token text with
    ``padding="max_length", max_length=3`` and no truncation; unknown ``padding_side`` or
    ``padding``; a bare string (it would be five one-letter texts); ragged lists as tensors."""
    tok = _char_tokenizer()
    expect_error(ValueError, lambda: tok.encode_batch(texts, **kwargs), f"encode_batch({texts!r}, **{kwargs})")


@pytest.mark.symbol("BaseTokenizer.save")
def test_save_writes_one_json_file_with_type_and_special_tokens(tmp_path):
    """``save(tmp/"tok")`` writes ``tmp/tok/tokenizer.json`` and returns it. Content:
    ``{"format_version": 1, "type": "test_table", "special_tokens": [...], "table": {...}}``,
    with Chinese written as is (``ensure_ascii=False``)."""
    cls = _table_tokenizer_class()
    tok = cls(None, {"你好": 7, "a": 8})
    written = tok.save(tmp_path / "tok")
    file = tmp_path / "tok" / "tokenizer.json"
    assert_equal(written, file, say("save 返回的路径", "path returned by save"))
    assert file.is_file(), say(f"{file} 应被写出", f"{file} should have been written")
    text = file.read_text(encoding="utf-8")
    data = json.loads(text)
    assert_equal(data.get("format_version"), 1, 'tokenizer.json["format_version"]')
    assert_equal(data.get("type"), "test_table", 'tokenizer.json["type"]')
    assert_equal(data.get("special_tokens"), SPECIALS, 'tokenizer.json["special_tokens"]')
    assert_equal(data.get("table"), {"你好": 7, "a": 8}, 'tokenizer.json["table"] (get_state())')
    assert "你好" in text, say("中文 token 应原样写入文件（json.dumps(..., ensure_ascii=False)）",
                             "Chinese tokens should appear as is in the file (json.dumps(..., ensure_ascii=False))")


@pytest.mark.symbol("BaseTokenizer.save")
def test_save_to_a_json_path_writes_that_file_for_tokenizers(tmp_path):
    """A path ending in ``.json`` is the file itself."""
    cls = _table_tokenizer_class()
    target = tmp_path / "sub" / "vocab.json"
    written = cls(None, {}).save(target)
    assert_equal(written, target, say("save 返回的路径", "path returned by save"))
    assert target.is_file(), say(f"{target} 应被写出", f"{target} should have been written")


@pytest.mark.symbol("BaseTokenizer.load")
def test_load_rebuilds_the_subclass_named_in_the_file(tmp_path):
    """``BaseTokenizer.load`` reads ``"type"`` and calls that class's ``from_state``; the special
    tokens (custom ones too) and the state come back unchanged."""
    base = _base_module()
    cls = _table_tokenizer_class()
    specials = ["[PAD]", "[BOS]", "[EOS]", "[UNK]", "<|user|>"]
    cls(specials, {"x": 5}).save(tmp_path)
    loaded = base.BaseTokenizer.load(tmp_path)
    assert_equal(type(loaded).__name__, "TableTokenizer", say("load 返回的类型", "type returned by load"))
    assert_equal(loaded.special_tokens, {t: i for i, t in enumerate(specials)}, "loaded.special_tokens")
    assert_equal(loaded.table, {"x": 5}, "loaded.table")


@pytest.mark.symbol("BaseTokenizer.load")
def test_base_load_dispatches_to_bpe_and_byte_level(tmp_path):
    """An (untrained) ``BPETokenizer`` saved and read with ``BaseTokenizer.load`` is a
    ``BPETokenizer``; a ``ByteLevelTokenizer`` is a ``ByteLevelTokenizer``."""
    base, bpe, byte = _base_module(), _bpe_module(), _byte_module()
    bpe.BPETokenizer().save(tmp_path / "bpe")
    byte.ByteLevelTokenizer().save(tmp_path / "byte")
    assert_equal(type(base.BaseTokenizer.load(tmp_path / "bpe")).__name__, "BPETokenizer",
                 "type(BaseTokenizer.load(<bpe>))")
    assert_equal(type(base.BaseTokenizer.load(tmp_path / "byte")).__name__, "ByteLevelTokenizer",
                 "type(BaseTokenizer.load(<byte_level>))")


LOAD_ERRORS = [
    ("missing-file", FileNotFoundError, None),
    ("broken-json", ValueError, "{ not json"),
    ("not-an-object", ValueError, "[1, 2, 3]"),
    ("wrong-format-version", ValueError,
     json.dumps({"format_version": 2, "type": "bpe", "special_tokens": SPECIALS,
                 "vocab": {t: i for i, t in enumerate(SPECIALS)}, "merges": []})),
    ("unknown-type", ValueError,
     json.dumps({"format_version": 1, "type": "sentencepiece", "special_tokens": SPECIALS})),
]


@pytest.mark.symbol("BaseTokenizer.load")
@pytest.mark.parametrize("case, error, content", LOAD_ERRORS, ids=[c[0] for c in LOAD_ERRORS])
def test_load_bad_files_raise_clear_errors(tmp_path, case, error, content):
    """No file -> ``FileNotFoundError``; not JSON, not an object, ``format_version`` 2, or a
    ``"type"`` nobody registered -> ``ValueError``."""
    base = _base_module()
    if content is not None:
        (tmp_path / "tokenizer.json").write_text(content, encoding="utf-8")
    expect_error(error, lambda: base.BaseTokenizer.load(tmp_path), f"BaseTokenizer.load(<{case}>)")


@pytest.mark.symbol("BaseTokenizer.load")
def test_subclass_load_refuses_a_file_of_another_class(tmp_path):
    """``ByteLevelTokenizer.load`` on a file that holds a (character-level) ``BPETokenizer``
    -> ``ValueError`` (``BaseTokenizer.load`` is the one that accepts any type)."""
    bpe, byte = _bpe_module(), _byte_module()
    bpe.BPETokenizer().save(tmp_path)
    expect_error(ValueError, lambda: byte.ByteLevelTokenizer.load(tmp_path), "ByteLevelTokenizer.load(<bpe file>)")


# ===================================================================== BPE helpers


@pytest.mark.symbol("pre_tokenize")
@pytest.mark.parametrize("text, expected", [
    ("Hello  world!\n", ["Hello", "  world!", "\n"]),
    ("  hello world \n foo  ", ["  hello", " world", " \n foo", "  "]),
    ("你好 世界", ["你好", " 世界"]),
    ("a\tb", ["a", "\tb"]),
    ("", []),
    ("   ", ["   "]),
])
def test_pre_tokenize_attaches_leading_whitespace_to_the_next_word(text, expected):
    """``\\s*\\S+|\\s+``: each word carries the whitespace before it; whitespace at the very end
    is a piece of its own; the empty text has no pieces."""
    assert_same_sequence(_bpe_module().pre_tokenize(text), expected, f"pre_tokenize({text!r})")


@pytest.mark.symbol("pre_tokenize")
@pytest.mark.parametrize("text", ["a b", "  two  spaces  ", "tab\tand\nnewline\r\n", "中文，没有空格。", " x"])
def test_pre_tokenize_pieces_concatenate_back_to_the_text(text):
    """Nothing is dropped or added: ``"".join(pre_tokenize(t)) == t``, and no piece is empty."""
    pieces = _bpe_module().pre_tokenize(text)
    assert_equal("".join(pieces), text, f'"".join(pre_tokenize({text!r}))')
    assert all(pieces), say(f"pre_tokenize 不应产生空片段：{pieces!r}", f"pre_tokenize should not give empty pieces: {pieces!r}")


@pytest.mark.symbol("get_pair_counts")
def test_get_pair_counts_weights_each_pair_by_word_frequency():
    """Words of the worked example: tea x3, ten x4, tent x2, net x2::

        (t,e): tea 3 + ten 4 + tent 2 = 9      (e,n): ten 4 + tent 2 = 6
        (e,a): tea 3                           (n,t): tent 2
        (n,e): net 2                           (e,t): net 2
    """
    words = {("t", "e", "a"): 3, ("t", "e", "n"): 4, ("t", "e", "n", "t"): 2, ("n", "e", "t"): 2}
    counts = _bpe_module().get_pair_counts(words)
    expected = {("t", "e"): 9, ("e", "n"): 6, ("e", "a"): 3, ("n", "t"): 2, ("n", "e"): 2, ("e", "t"): 2}
    assert_equal({pair: c for pair, c in dict(counts).items() if c}, expected, "get_pair_counts(tea:3 ten:4 tent:2 net:2)")


@pytest.mark.symbol("get_pair_counts")
@pytest.mark.parametrize("words, expected", [
    ({("a", "a", "a"): 1}, {("a", "a"): 2}),
    ({("a", "b", "a", "b"): 2}, {("a", "b"): 4, ("b", "a"): 2}),
    ({("x",): 5, (): 1}, {}),
    ({("lo", "w"): 2, (" ", "lo", "w"): 3}, {("lo", "w"): 5, (" ", "lo"): 3}),
], ids=["overlap-aaa", "abab-x2", "no-pairs", "multi-char-symbols"])
def test_get_pair_counts_counts_every_adjacent_position(words, expected):
    """Every adjacent position counts: ``aaa`` has (a,a) twice; ``abab`` x2 has (a,b) 2*2 = 4 and
    (b,a) 2; one-symbol and empty words have no pair; symbols may be longer than a character."""
    counts = _bpe_module().get_pair_counts(words)
    assert_equal({pair: c for pair, c in dict(counts).items() if c}, expected, f"get_pair_counts({words})")


@pytest.mark.symbol("merge_pair")
@pytest.mark.parametrize("word, pair, expected", [
    (("a", "b", "c", "a", "b"), ("a", "b"), ("ab", "c", "ab")),
    (("a", "a", "a"), ("a", "a"), ("aa", "a")),
    (("a", "a", "a", "a"), ("a", "a"), ("aa", "aa")),
    (("t", "e", "n", "t"), ("t", "e"), ("te", "n", "t")),
    (("x",), ("a", "b"), ("x",)),
    (("x", "a"), ("a", "b"), ("x", "a")),
    (("b", "a"), ("a", "b"), ("b", "a")),
    (("a", "bc"), ("ab", "c"), ("a", "bc")),
    (("ab", "c"), ("b", "c"), ("ab", "c")),
    ((" ", "b", " ", "b"), (" ", "b"), (" b", " b")),
    ((), ("a", "b"), ()),
], ids=["two-occurrences", "aaa", "aaaa", "tent", "single", "left-at-end", "reversed", "symbols-not-strings",
        "inside-a-symbol", "space-symbols", "empty"])
def test_merge_pair_merges_non_overlapping_left_to_right(word, pair, expected):
    """Left to right, skipping both symbols after a match: ``aaa`` -> (aa, a), never (a, aa) or
    (aa, aa); a lone ``left`` at the end stays; matching is on symbols, so ("a","bc") does not
    contain the pair ("ab","c") although the strings join to the same ``abc``, and ("ab","c")
    does not contain ("b","c"); a space is a symbol like any other."""
    result = _bpe_module().merge_pair(word, pair)
    assert isinstance(result, tuple), say(f"merge_pair 应返回 tuple（要能做 dict 的键），实际是 {type(result).__name__}",
                                          f"merge_pair should return a tuple (usable as a dict key), got {type(result).__name__}")
    assert_same_sequence(result, expected, f"merge_pair({word}, {pair})")


# ===================================================================== BPETokenizer


@pytest.mark.symbol("BPETokenizer.train")
def test_train_worked_example_merges_and_vocab():
    """tea x3, ten x4, tent x2, net x2, vocab_size 12 = 4 specials + alphabet a e n t + 4 merges.

    Round 1: (t,e) 9 > (e,n) 6 > (e,a) 3 > (e,t) = (n,e) = (n,t) = 2      -> te = 8
    Round 2: (te,n) 4+2 = 6 > (te,a) 3 > (e,t) = (n,e) = (n,t) = 2        -> ten = 9
    Round 3: (te,a) 3 > (e,t) = (n,e) = (ten,t) = 2                        -> tea = 10
    Round 4: tie (e,t) = (n,e) = (ten,t) = 2; smallest tuple is ("e","t")  -> et = 11
    """
    tok = _worked_bpe()
    assert_same_sequence(tok.merges, [("t", "e"), ("te", "n"), ("te", "a"), ("e", "t")], "tok.merges")
    tokens = _tokens_in_id_order(tok.vocab, "tok.vocab")
    assert_same_sequence(tokens, [*SPECIALS, "a", "e", "n", "t", "te", "ten", "tea", "et"],
                         say("按 id 排列的词表", "vocab tokens in id order"))
    assert_equal(tok.vocab_size, 12, "tok.vocab_size")


@pytest.mark.symbol("BPETokenizer.train")
def test_train_breaks_a_first_round_tie_by_the_smallest_pair():
    """Texts "ba", "ab": alphabet sorted a=4, b=5 (not in order of appearance). (a,b) and (b,a)
    both occur once; ("a","b") < ("b","a"), so merge 1 is ab = 6, merge 2 is ba = 7."""
    tok = _bpe_module().BPETokenizer().train(["ba", "ab"], vocab_size=8)
    assert_same_sequence(tok.merges, [("a", "b"), ("b", "a")], "tok.merges")
    assert_same_sequence(_tokens_in_id_order(tok.vocab, "tok.vocab"), [*SPECIALS, "a", "b", "ab", "ba"],
                         say("按 id 排列的词表", "vocab tokens in id order"))


@pytest.mark.symbol("BPETokenizer.train")
def test_train_never_merges_across_words():
    """``"a b"`` pre-tokenizes to "a" and " b": the only pair is (" ", "b"). Alphabet
    " " a b -> 4 5 6 (space sorts first); one merge " b" = 7, then no pair is left and
    training stops even though vocab_size is 100. (a, " ") must never be counted."""
    tok = _bpe_module().BPETokenizer().train(["a b"], vocab_size=100)
    assert_same_sequence(tok.merges, [(" ", "b")], "tok.merges")
    assert_same_sequence(_tokens_in_id_order(tok.vocab, "tok.vocab"), [*SPECIALS, " ", "a", "b", " b"],
                         say("按 id 排列的词表", "vocab tokens in id order"))


@pytest.mark.symbol("BPETokenizer.train")
def test_train_stops_when_the_best_count_is_below_min_frequency():
    """Worked example with ``min_frequency=3``: rounds 1-3 merge counts 9, 6, 3; round 4's
    best count is 2 < 3, so training stops at 3 merges (vocab 11), not at vocab_size 100."""
    tok = _bpe_module().BPETokenizer().train(WORKED_TEXTS, vocab_size=100, min_frequency=3)
    assert_same_sequence(tok.merges, [("t", "e"), ("te", "n"), ("te", "a")], "tok.merges (min_frequency=3)")
    assert_equal(tok.vocab_size, 11, "tok.vocab_size (min_frequency=3)")


@pytest.mark.symbol("BPETokenizer.train")
def test_train_skips_special_tokens_in_the_texts_and_returns_self():
    """``"ab<eos>ab"``: "<eos>" is cut out, so the alphabet is just a, b (no <, e, o, s, >) and
    the words are "ab" x2 -> one merge ab = 6. ``train`` returns the tokenizer itself."""
    tok = _bpe_module().BPETokenizer()
    returned = tok.train(["ab<eos>ab"], vocab_size=50)
    assert returned is tok, say("train 应返回 self", "train should return self")
    assert_same_sequence(tok.merges, [("a", "b")], "tok.merges")
    assert_same_sequence(_tokens_in_id_order(tok.vocab, "tok.vocab"), [*SPECIALS, "a", "b", "ab"],
                         say("按 id 排列的词表", "vocab tokens in id order"))


@pytest.mark.symbol("BPETokenizer.train")
def test_train_special_tokens_argument_replaces_the_specials():
    """``special_tokens=[<pad> <s> </s> <unk> <|user|>]``: five specials take 0..4, the alphabet
    a b takes 5 6, and the one merge ab takes 7; the eos role is now "</s>"."""
    specials = ["<pad>", "<s>", "</s>", "<unk>", "<|user|>"]
    tok = _bpe_module().BPETokenizer().train(["ab", "ab"], vocab_size=8, special_tokens=specials)
    assert_same_sequence(_tokens_in_id_order(tok.vocab, "tok.vocab"), [*specials, "a", "b", "ab"],
                         say("按 id 排列的词表", "vocab tokens in id order"))
    assert_equal(tok.eos_token, "</s>", "tok.eos_token")


@pytest.mark.symbol("BPETokenizer.train")
@pytest.mark.parametrize("vocab_size, merges", [(8, 0), (9, 1)])
def test_train_with_room_for_no_or_one_merge(vocab_size, merges):
    """Worked corpus: specials + alphabet already fill 8 ids; vocab_size 8 -> no merge,
    vocab_size 9 -> exactly one, (t,e)."""
    tok = _bpe_module().BPETokenizer().train(WORKED_TEXTS, vocab_size=vocab_size)
    assert_same_sequence(tok.merges, [("t", "e")][:merges], f"tok.merges (vocab_size={vocab_size})")


@pytest.mark.symbol("BPETokenizer.train")
@pytest.mark.parametrize("case", ["vocab-too-small", "single-string"])
def test_train_rejects_bad_arguments(case):
    """vocab_size 7 < 8 (specials + alphabet of the worked corpus) -> ValueError; a bare string
    (it would be iterated character by character) -> ValueError."""
    bpe = _bpe_module()
    if case == "vocab-too-small":
        expect_error(ValueError, lambda: bpe.BPETokenizer().train(WORKED_TEXTS, vocab_size=7),
                     "train(worked corpus, vocab_size=7)")
    else:
        expect_error(ValueError, lambda: bpe.BPETokenizer().train("tea ten", vocab_size=20),
                     "train('tea ten', vocab_size=20)")


@pytest.mark.symbol("BPETokenizer.encode")
@pytest.mark.parametrize("text, expected", [
    ("tent", [9, 7]),
    ("etea", [5, 10]),
    ("tex", [8, 3]),
    ("net", [6, 11]),
    ("tea ten", [10, 3, 9]),
    ("", []),
], ids=["tent", "etea-rank-order", "unknown-char", "net", "space-unknown", "empty"])
def test_encode_applies_merges_by_rank(text, expected):
    """Worked tokenizer (ranks: (t,e) 0, (te,n) 1, (te,a) 2, (e,t) 3; ids a4 e5 n6 t7 te8 ten9 tea10 et11):

    - "tent": t e n t -> te n t (rank 0) -> ten t (rank 1) -> [9, 7]
    - "etea": pairs (e,t) r3, (t,e) r0, (e,a) none -> e te a -> (te,a) r2 -> e tea -> [5, 10]
      (merging left to right would give et e a = [11, 5, 4])
    - "tex": te + x, x never seen -> [8, <unk>=3]
    - "net": (n,e) none, (e,t) r3 -> n et -> [6, 11]
    - "tea ten": words "tea", " ten"; the space is not in the alphabet -> [10, 3, 9]
    """
    tok = _worked_bpe()
    assert_same_sequence(tok.encode(text), expected, f"encode({text!r})")


@pytest.mark.symbol("BPETokenizer.encode")
@pytest.mark.parametrize("text, add, expected", [
    ("tent", True, [1, 9, 7, 2]),
    ("tent<eos>ten", False, [9, 7, 2, 9]),
    ("<pad><unk>", False, [0, 3]),
    ("net<eos>", True, [1, 6, 11, 2, 2]),
    ("<bos>", False, [1]),
], ids=["add-bos-eos", "eos-inside", "only-specials", "eos-and-add", "bos"])
def test_encode_keeps_special_tokens_whole(text, add, expected):
    """A special-token string is one id, never its characters; ``add_special_tokens=True``
    wraps the result in bos (1) ... eos (2). "tent<eos>ten" -> [9, 7] + [2] + [9]."""
    tok = _worked_bpe()
    assert_same_sequence(tok.encode(text, add_special_tokens=add), expected,
                         f"encode({text!r}, add_special_tokens={add})")


@pytest.mark.symbol("BPETokenizer.decode")
@pytest.mark.parametrize("ids, skip, expected", [
    ([9, 7], False, "tent"),
    ([9, 7, 2], False, "tent<eos>"),
    ([1, 9, 7, 2, 0, 0], True, "tent"),
    ([5, 10, 3], False, "etea<unk>"),
    ([], False, ""),
], ids=["plain", "keep-specials", "skip-specials", "unk-kept", "empty"])
def test_decode_joins_token_strings(ids, skip, expected):
    """Ids -> token strings, joined: 9 7 -> "ten"+"t"; special tokens appear as their text
    unless ``skip_special_tokens=True``."""
    tok = _worked_bpe()
    assert_equal(tok.decode(ids, skip_special_tokens=skip), expected, f"decode({ids}, skip_special_tokens={skip})")


@pytest.mark.symbol("BPETokenizer.decode")
@pytest.mark.parametrize("bad", [12, 99, -1])
def test_decode_unknown_id_raises_value_error_naming_it(bad):
    """The worked vocab has ids 0..11: 12 and 99 are unknown, and so is -1 (Python would
    silently index from the end)."""
    tok = _worked_bpe()
    exc = expect_error(ValueError, lambda: tok.decode([9, bad]), f"decode([9, {bad}])")
    assert str(bad) in str(exc), say(f"消息中应写出出错的 id {bad}，实际：{exc}",
                                     f"the message should name the id {bad}; got: {exc}")


@pytest.mark.symbol("BPETokenizer.decode")
@pytest.mark.parametrize("text", ["tea ten net", "  tent\tnet\n", "ten<eos>tea", "eeee tttt"])
def test_decode_of_encode_gives_the_text_back_on_its_alphabet(text):
    """Trained on texts holding " ", "\\t", "\\n" and a e n t, every such text round-trips."""
    bpe = _bpe_module()
    tok = bpe.BPETokenizer().train(["tea ten\tnet\n", "tent net tea", " ten  tea"], vocab_size=20)
    assert_equal(tok.decode(tok.encode(text)), text, f"decode(encode({text!r}))")


# ===================================================================== byte level


@pytest.mark.symbol("bytes_to_unicode")
def test_bytes_to_unicode_is_a_bijection_of_256_single_characters():
    """256 keys 0..255, 256 distinct one-character values."""
    table = _byte_module().bytes_to_unicode()
    assert_equal(sorted(table), list(range(256)), "sorted(bytes_to_unicode())")
    values = list(table.values())
    assert_equal(len(set(values)), 256, say("不同字符的个数", "number of distinct characters"))
    assert all(isinstance(v, str) and len(v) == 1 for v in values), say(
        "每个值应是长度为 1 的字符串", "every value should be a one-character string")


@pytest.mark.symbol("bytes_to_unicode")
def test_bytes_to_unicode_printable_bytes_map_to_themselves_others_from_256():
    """188 printable bytes (``!``..``~`` 33-126, 161-172, 174-255) map to ``chr(b)``; the other
    68, in byte order (0-32, 127-160, 173), get chr(256), chr(257), ... So byte 0 -> U+0100,
    space 32 -> U+0120 "Ġ", newline 10 -> U+010A "Ċ", 127 -> chr(256 + 33) = U+0121,
    173 -> chr(256 + 67) = U+0143."""
    table = _byte_module().bytes_to_unicode()
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    for b in printable:
        assert_equal(table[b], chr(b), f"bytes_to_unicode()[{b}]")
    others = [b for b in range(256) if b not in set(printable)]
    assert_same_sequence([table[b] for b in others], [chr(256 + n) for n in range(68)],
                         say("非可打印字节（按字节序）映射到的字符", "characters of the non-printable bytes, in byte order"))
    for b, char in [(0, "\u0100"), (32, "\u0120"), (10, "\u010a"), (127, "\u0121"), (173, "\u0143")]:
        assert_equal(table[b], char, f"bytes_to_unicode()[{b}]")


@pytest.mark.symbol("ByteLevelTokenizer.pre_tokenize")
@pytest.mark.parametrize("text, expected", [
    ("Hi there\n你好", ["Hi", "Ġthere", "Ċ", "ä½łå¥½"]),
    ("Hi 你好!", ["Hi", "Ġä½łå¥½", "!"]),
    ("Hello, world! It's 2024.   Done",
     ["Hello", ",", "Ġworld", "!", "ĠIt", "'s", "Ġ2024", ".", "ĠĠ", "ĠDone"]),
    ("a\tb\n", ["a", "ĉ", "b", "Ċ"]),
    ("", []),
], ids=["newline-chinese", "space-chinese", "gpt2-split", "tab", "empty"])
def test_byte_level_pre_tokenize_splits_gpt2_style_and_maps_utf8_bytes(text, expected):
    """GPT-2 regex pieces, then each piece's UTF-8 bytes through the table:

    - " " 0x20 -> "Ġ", "\\n" 0x0A -> "Ċ", "\\t" 0x09 -> "ĉ" (U+0109)
    - "你" = e4 bd a0 -> "ä" "½" "ł" (0xa0 is the 67th non-printable byte, chr(256 + 66) = "ł");
      "好" = e5 a5 bd -> "å" "¥" "½"
    - "   Done": ``\\s+(?!\\S)`` takes two spaces, the third sticks to " Done"; "'s" is split off.
    """
    tok = _byte_module().ByteLevelTokenizer()
    assert_same_sequence(tok.pre_tokenize(text), expected, f"ByteLevelTokenizer.pre_tokenize({text!r})")


def _bytes_only_tokenizer():
    """Trained with vocab_size 260 = 4 specials + 256 bytes: no merge, byte b -> id 4 + b."""
    return _byte_module().ByteLevelTokenizer().train(["anything at all"], vocab_size=260)


@pytest.mark.symbol("ByteLevelTokenizer.pre_tokenize")
@pytest.mark.parametrize("text, expected", [
    ("hi<eos>", [108, 109, 2]),
    ("你", [232, 193, 164]),
    (" \n", [36, 14]),
    ("\x00\xff", [4, 199, 195]),
], ids=["ascii-and-special", "chinese", "space-newline", "nul-and-yuml"])
def test_byte_level_ids_are_four_plus_the_byte_values(text, expected):
    """No merges: each UTF-8 byte b is id 4 + b. "h" 104 -> 108, "i" 105 -> 109; "你" e4 bd a0 ->
    232 193 164; " " 32 -> 36, "\\n" 10 -> 14; "\\x00" -> 4 and "ÿ" (U+00FF) is c3 bf -> 199 195."""
    tok = _bytes_only_tokenizer()
    assert_same_sequence(tok.encode(text), expected, f"encode({text!r})")


@pytest.mark.symbol("ByteLevelTokenizer.pre_tokenize")
def test_byte_level_train_alphabet_is_256_bytes_in_byte_order_then_merges():
    """Text "aaa aaa" -> pieces "aaa", "Ġaaa" (byte symbols). Byte b has id 4 + b ("a" 101,
    "Ġ" 36, byte 0 "Ā" 4, byte 173 "Ń" 177, byte 255 "ÿ" 259), whatever the corpus holds.

    Round 1: (a,a) 2 + 2 = 4 > (Ġ,a) 1                       -> "aa" = 260
    Round 2: words (aa,a), (Ġ,aa,a): (aa,a) 2 > (Ġ,aa) 1     -> "aaa" = 261
    Round 3: words (aaa), (Ġ,aaa): (Ġ,aaa) 1                 -> "Ġaaa" = 262
    """
    tok = _byte_module().ByteLevelTokenizer().train(["aaa aaa"], vocab_size=263)
    assert_same_sequence(tok.merges, [("a", "a"), ("aa", "a"), ("Ġ", "aaa")], "tok.merges")
    for token, idx in [("a", 101), ("Ġ", 36), ("\u0100", 4), ("\u0143", 177), ("ÿ", 259),
                       ("aa", 260), ("aaa", 261), ("Ġaaa", 262)]:
        assert_equal(tok.vocab.get(token), idx, f"tok.vocab[{token!r}]")
    assert_equal(tok.vocab_size, 263, "tok.vocab_size")
    # " aaa aa": "Ġaaa" is one token; "Ġaa" -> Ġ a a -> (a,a) rank 0 -> Ġ aa -> [36, 260]
    assert_same_sequence(tok.encode(" aaa aa"), [262, 36, 260], "encode(' aaa aa')")
    # "aaaa" -> aa aa; (aa,aa) is not a merge -> [260, 260]
    assert_same_sequence(tok.encode("aaaa"), [260, 260], "encode('aaaa')")


@pytest.mark.symbol("ByteLevelTokenizer.decode")
@pytest.mark.parametrize("ids, skip, expected", [
    ([232, 193, 164], False, "你"),
    ([108, 109, 2], False, "hi<eos>"),
    ([1, 108, 109, 2, 0], True, "hi"),
    ([2, 232, 193, 164, 2], False, "<eos>你<eos>"),
    ([36, 14], False, " \n"),
    ([232], False, "\ufffd"),
    ([], False, ""),
], ids=["chinese", "special-kept", "specials-skipped", "specials-around-chinese", "space-newline",
        "cut-character", "empty"])
def test_byte_level_decode_maps_symbols_back_to_utf8(ids, skip, expected):
    """Ids 4 + b are bytes b: 232 193 164 = e4 bd a0 = "你"; specials are kept as their text
    (or skipped); 232 alone is only the first byte of "你", invalid UTF-8 -> U+FFFD."""
    tok = _bytes_only_tokenizer()
    assert_equal(tok.decode(ids, skip_special_tokens=skip), expected, f"decode({ids}, skip_special_tokens={skip})")


@pytest.mark.symbol("ByteLevelTokenizer.decode")
def test_byte_level_decode_unknown_id_raises_value_error():
    """Vocab 260 has ids 0..259: 260 is unknown."""
    tok = _bytes_only_tokenizer()
    exc = expect_error(ValueError, lambda: tok.decode([108, 260]), "decode([108, 260])")
    assert "260" in str(exc), say(f"消息中应写出出错的 id 260，实际：{exc}", f"the message should name the id 260; got: {exc}")


ROUND_TRIP_SAMPLES = ["", " ", "hello  world\n", "你好，世界", "🤗🚀 emoji", "tab\tand\r\nCRLF",
                      "é vs e\u0301", "\x00\x07", "it's <eos> here", "   trailing   "]


@pytest.mark.symbol("ByteLevelTokenizer.decode")
@pytest.mark.parametrize("text", ROUND_TRIP_SAMPLES)
def test_byte_level_round_trip_is_exact_and_never_unknown(text):
    """Trained with a few merges on English and Chinese, ``decode(encode(t)) == t`` for text it
    never saw (emoji, combining accent, control bytes, CRLF) and no id is <unk> (3)."""
    tok = _byte_module().ByteLevelTokenizer().train(["hello world, hello there", "你好，世界。你好！"], vocab_size=280)
    ids = tok.encode(text)
    assert 3 not in ids, say(f"字节级分词不应产生 <unk>：encode({text!r}) = {ids}",
                             f"byte-level encoding never gives <unk>: encode({text!r}) = {ids}")
    assert_equal(tok.decode(ids), text, f"decode(encode({text!r}))")
