"""ModelConfig: validation, derived sizes, dict / JSON round trips, presets.

Expected values are worked out by hand in the docstrings, or taken from
Hugging Face's ``LlamaConfig`` (the oracle for what the field names mean).
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from intro2llm.model.config import ModelConfig

FIELD_ORDER = [
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "max_position_embeddings", "rope_theta", "rms_norm_eps", "norm_type",
    "ffn_type", "attention_dropout", "hidden_dropout", "tie_word_embeddings", "initializer_range",
    "pad_token_id", "bos_token_id", "eos_token_id",
]


def small_kwargs(**overrides):
    base = dict(vocab_size=100, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
    return {**base, **overrides}


def test_fields_are_the_contract_in_order():
    assert [f.name for f in dataclasses.fields(ModelConfig)] == FIELD_ORDER


def test_defaults_are_llama2_7b_shapes_with_mha():
    """num_key_value_heads=None means plain MHA: it becomes num_attention_heads (32)."""
    cfg = ModelConfig()
    assert (cfg.vocab_size, cfg.hidden_size, cfg.intermediate_size) == (32000, 4096, 11008)
    assert cfg.num_key_value_heads == cfg.num_attention_heads == 32
    assert cfg.norm_type == "rmsnorm" and cfg.ffn_type == "swiglu"
    assert (cfg.pad_token_id, cfg.bos_token_id, cfg.eos_token_id) == (0, 1, 2)


@pytest.mark.parametrize(
    ("hidden", "heads", "kv", "head_dim", "groups"),
    [
        (64, 4, 2, 16, 2),  # 64 / 4 = 16 features per head; 4 / 2 = 2 query heads per KV head
        (64, 4, None, 16, 1),  # MHA: kv = heads
        (64, 4, 1, 16, 4),  # MQA: one KV head for all 4
        (4096, 32, 8, 128, 4),  # Llama-3-8B
    ],
)
def test_head_dim_and_groups_by_hand(hidden, heads, kv, head_dim, groups):
    cfg = ModelConfig(**small_kwargs(hidden_size=hidden, num_attention_heads=heads, num_key_value_heads=kv))
    assert cfg.head_dim == head_dim
    assert cfg.num_key_value_groups == groups


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (dict(vocab_size=0), "vocab_size"),
        (dict(hidden_size=-64), "hidden_size"),
        (dict(hidden_size=64.0), "hidden_size"),
        (dict(num_hidden_layers=True), "num_hidden_layers"),
        (dict(intermediate_size=0), "intermediate_size"),
        (dict(max_position_embeddings=0), "max_position_embeddings"),
        (dict(num_key_value_heads=0), "num_key_value_heads"),
        (dict(num_attention_heads=5), "num_attention_heads"),  # 64 % 5 != 0
        (dict(num_key_value_heads=3), "num_key_value_heads"),  # 4 % 3 != 0
        (dict(hidden_size=12, num_attention_heads=4, num_key_value_heads=4), "head_dim"),  # 3 is odd
        (dict(norm_type="batchnorm"), "norm_type"),
        (dict(ffn_type="relu"), "ffn_type"),
        (dict(attention_dropout=1.0), "attention_dropout"),
        (dict(hidden_dropout=-0.1), "hidden_dropout"),
        (dict(rms_norm_eps=0.0), "rms_norm_eps"),
        (dict(rope_theta=-1.0), "rope_theta"),
        (dict(initializer_range=0.0), "initializer_range"),
    ],
)
def test_invalid_values_raise_one_line_value_error_naming_the_field(overrides, field):
    with pytest.raises(ValueError) as info:
        ModelConfig(**small_kwargs(**overrides))
    message = str(info.value)
    assert field in message
    assert "\n" not in message


def test_valid_edge_values_are_accepted():
    """Dropout 0 and just below 1 are valid probabilities; kv heads may equal 1 (MQA)."""
    ModelConfig(**small_kwargs(attention_dropout=0.0, hidden_dropout=0.999, num_key_value_heads=1))


def test_to_dict_holds_every_field_and_no_derived_ones():
    cfg = ModelConfig.tiny()
    data = cfg.to_dict()
    assert list(data) == FIELD_ORDER
    assert "head_dim" not in data and "num_key_value_groups" not in data
    assert data["num_key_value_heads"] == 2
    assert json.loads(json.dumps(data)) == data  # plain JSON types only


@pytest.mark.parametrize("preset", ["tiny", "small", "llama2_7b", "llama3_8b"])
def test_from_dict_round_trip(preset):
    cfg = getattr(ModelConfig, preset)()
    again = ModelConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert again is not cfg


def test_from_dict_missing_keys_take_defaults():
    cfg = ModelConfig.from_dict({"hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 100})
    assert cfg.vocab_size == 32000 and cfg.num_key_value_heads == 4 and cfg.rope_theta == 10000.0


def test_from_dict_unknown_keys_are_listed_with_the_valid_names():
    with pytest.raises(ValueError) as info:
        ModelConfig.from_dict({"hiden_size": 64, "n_layers": 2})
    message = str(info.value)
    assert "hiden_size" in message and "n_layers" in message and "hidden_size" in message


def test_from_dict_validates():
    with pytest.raises(ValueError, match="num_attention_heads"):
        ModelConfig.from_dict(small_kwargs(num_attention_heads=5))


def test_save_to_directory_writes_sorted_indented_config_json(tmp_path):
    cfg = ModelConfig.tiny(rope_theta=500000.0)
    written = cfg.save(tmp_path / "run" / "final_model")
    assert written == tmp_path / "run" / "final_model" / "config.json"
    text = written.read_text(encoding="utf-8")
    assert json.loads(text) == cfg.to_dict()
    assert text.strip() == json.dumps(cfg.to_dict(), indent=2, sort_keys=True)
    assert ModelConfig.load(tmp_path / "run" / "final_model") == cfg


def test_save_to_json_file_path(tmp_path):
    cfg = ModelConfig.small()
    written = cfg.save(tmp_path / "nested" / "my_config.json")
    assert written == tmp_path / "nested" / "my_config.json" and written.is_file()
    assert ModelConfig.load(written) == cfg


def test_load_missing_file_raises_file_not_found_with_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        ModelConfig.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        ModelConfig.load(tmp_path / "nope.json")


def test_load_invalid_json_raises_value_error_naming_the_file(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="config.json"):
        ModelConfig.load(tmp_path)
    bad.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="config.json"):
        ModelConfig.load(bad)


def test_load_unknown_key_in_file_raises(tmp_path):
    data = ModelConfig.tiny().to_dict() | {"hidden_sizes": 3}
    (tmp_path / "config.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="hidden_sizes"):
        ModelConfig.load(tmp_path)


def test_presets_match_the_published_shapes():
    tiny = ModelConfig.tiny()
    assert (tiny.vocab_size, tiny.hidden_size, tiny.intermediate_size, tiny.num_hidden_layers,
            tiny.num_attention_heads, tiny.num_key_value_heads, tiny.max_position_embeddings) == (
        512, 64, 172, 2, 4, 2, 256)
    l2 = ModelConfig.llama2_7b()
    assert (l2.vocab_size, l2.hidden_size, l2.intermediate_size, l2.num_hidden_layers,
            l2.num_attention_heads, l2.num_key_value_heads, l2.max_position_embeddings) == (
        32000, 4096, 11008, 32, 32, 32, 4096)
    l3 = ModelConfig.llama3_8b()
    assert (l3.vocab_size, l3.hidden_size, l3.intermediate_size, l3.num_hidden_layers,
            l3.num_attention_heads, l3.num_key_value_heads, l3.max_position_embeddings) == (
        128256, 4096, 14336, 32, 32, 8, 8192)
    assert l3.rope_theta == 500000.0 and l3.rms_norm_eps == 1e-5
    small = ModelConfig.small()
    assert small.num_key_value_groups > 1  # GQA


def test_small_preset_has_about_25m_parameters():
    """Count by hand (no torch): embeddings V*D (tied), per layer q/o D*D, k/v D*(KV*hd),
    three FFN matrices D*I, two norms D; a final norm D."""
    c = ModelConfig.small()
    d, kv_dim = c.hidden_size, c.num_key_value_heads * c.head_dim
    per_layer = 2 * d * d + 2 * d * kv_dim + 3 * d * c.intermediate_size + 2 * d
    total = c.vocab_size * d * (1 if c.tie_word_embeddings else 2) + c.num_hidden_layers * per_layer + d
    assert 20e6 < total < 32e6


def test_preset_overrides():
    cfg = ModelConfig.tiny(vocab_size=1000, norm_type="layernorm")
    assert cfg.vocab_size == 1000 and cfg.norm_type == "layernorm" and cfg.hidden_size == 64
    with pytest.raises(ValueError, match="num_key_value_heads"):
        ModelConfig.tiny(num_key_value_heads=3)


@pytest.mark.parametrize("preset", ["tiny", "small", "llama2_7b", "llama3_8b"])
def test_derived_sizes_agree_with_hf_llama_config(preset):
    """Oracle: Hugging Face LlamaConfig, given the same fields, derives the same head_dim
    and KV head count (its num_key_value_heads=None also means MHA)."""
    from transformers import LlamaConfig

    cfg = getattr(ModelConfig, preset)()
    shared = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings",
              "initializer_range"]
    hf = LlamaConfig(**{name: getattr(cfg, name) for name in shared})
    assert hf.head_dim == cfg.head_dim
    assert hf.num_attention_heads // hf.num_key_value_heads == cfg.num_key_value_groups
    mha = LlamaConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=None)
    assert mha.num_key_value_heads == ModelConfig(**small_kwargs(num_key_value_heads=None)).num_key_value_heads


@pytest.mark.parametrize("field", ["rope_theta", "rms_norm_eps", "initializer_range", "hidden_dropout"])
@pytest.mark.parametrize("value", [None, "1e-6", True])
def test_non_numeric_float_fields_raise_value_error_naming_the_field(field, value):
    # A config.json holding null or a quoted number must not surface as a TypeError.
    with pytest.raises(ValueError, match=field):
        ModelConfig(**{field: value})
