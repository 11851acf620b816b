"""Hugging Face interop: our CausalLM <-> ``transformers.LlamaForCausalLM``, both ways.

- ``save_hf`` writes a directory that ``LlamaForCausalLM.from_pretrained`` loads with no
  missing or unexpected keys and no warning logged; the two models give the same logits
  and the same greedy continuations (with left padding, eos and a repetition penalty).
- ``load_hf`` reads a random-init ``LlamaForCausalLM`` saved with ``save_pretrained``;
  tied embeddings survive the round trip; configs convert, non-Llama ones are refused.

Models: a tiny GQA config (V = 96, d = 64, L = 2, h = 4, g = 2) with weights perturbed
away from the default init, which gives nearly flat logits (ORACLES.md).
Tolerance: float32 logits at max abs diff <= 1e-5 (same arithmetic, only kernels and
summation order may differ); generated token sequences must be equal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import warnings

import pytest
import torch

from intro2llm.interop import config_from_hf, config_to_hf, load_hf, save_hf, to_hf_state_dict
from intro2llm.model.causal_lm import CausalLM
from intro2llm.model.config import ModelConfig

ATOL = 1e-5
SIZES = dict(vocab_size=96, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    random.seed(0)



def _perturb(model: torch.nn.Module) -> torch.nn.Module:
    """std 0.15 for matrices, 1 +- 0.2 for norm weights (either model's names contain "norm")."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1.0 + 0.2 * torch.randn_like(p) if "norm" in name else 0.15 * torch.randn_like(p))
    return model.eval()


@contextlib.contextmanager
def _no_transformers_warnings():
    """Fail on any record >= WARNING from the ``transformers`` loggers (they do not propagate
    to the root logger, so pytest's caplog would miss them) and on any Python warning."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        logger.removeHandler(handler)
    assert not records, [r.getMessage() for r in records]
    assert not caught, [str(w.message) for w in caught]


def _from_pretrained(directory):
    from transformers import LlamaForCausalLM

    with _no_transformers_warnings():
        hf, info = LlamaForCausalLM.from_pretrained(directory, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return hf.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(ours, hf): our perturbed model, saved with save_hf and loaded by transformers."""
    torch.manual_seed(1)
    ours = _perturb(CausalLM(ModelConfig(**SIZES)))
    directory = save_hf(ours, tmp_path_factory.mktemp("exported"))
    return ours, _from_pretrained(directory)


def _left_padded(prompts: list[torch.Tensor], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):], mask[i, width - len(p):] = p, 1
    return ids, mask


# ----- ours -> transformers ----------------------------------------------------------------


def test_exported_files(exported, tmp_path):
    ours, hf = exported
    directory = save_hf(ours, tmp_path / "model")
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == "llama" and config["architectures"] == ["LlamaForCausalLM"]
    assert config["rope_parameters"] == {"rope_type": "default", "rope_theta": 10000.0}
    assert config["dtype"] == "float32" and config["head_dim"] == 16
    assert set(to_hf_state_dict(ours)) == set(hf.state_dict())
    assert all(p.dtype == torch.float32 for p in hf.parameters())


def test_exported_logits_match(exported):
    ours, hf = exported
    ids = torch.randint(0, 96, (2, 24))
    with torch.no_grad():
        ours_logits, hf_logits = ours(ids).logits, hf(ids).logits
    assert ours_logits.std() > 0.5, "perturbed weights give peaked, not flat, logits"
    assert (ours_logits - hf_logits).abs().max() <= ATOL


def test_exported_logits_match_with_left_padding(exported):
    """Both get the same positions (counted from the first real token); pad outputs are unused."""
    ours, hf = exported
    ids, mask = _left_padded([torch.randint(1, 96, (n,)) for n in (10, 6)])
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        ours_logits = ours(ids, attention_mask=mask, position_ids=pos).logits
        hf_logits = hf(ids, attention_mask=mask, position_ids=pos).logits
    real = mask.bool()
    assert (ours_logits[real] - hf_logits[real]).abs().max() <= ATOL


def test_exported_greedy_continuation_matches_for_32_tokens(exported):
    ours, hf = exported
    ids, mask = _left_padded([torch.randint(1, 96, (n,)) for n in (7, 4)])
    expected = hf.generate(ids, attention_mask=mask, max_new_tokens=32, do_sample=False,
                           eos_token_id=None, pad_token_id=0)
    assert expected.shape == (2, 7 + 32)  # eos_token_id=None: no early stop in transformers 5.x
    assert torch.equal(ours.generate(ids, attention_mask=mask, max_new_tokens=32), expected)


def test_exported_greedy_with_eos_and_repetition_penalty_matches(exported):
    """Unpadded prompts: transformers' repetition penalty would also penalise pad ids."""
    ours, hf = exported
    ids = torch.randint(1, 96, (3, 5))
    free = ours.generate(ids, max_new_tokens=12, repetition_penalty=1.3)
    eos, pad = int(free[0, 5 + 4]), 0  # row 0's fifth new token
    kwargs = dict(max_new_tokens=12, repetition_penalty=1.3, eos_token_id=eos, pad_token_id=pad)
    expected = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, **kwargs)
    assert torch.equal(ours.generate(ids, **kwargs), expected)


# ----- transformers -> ours, tied embeddings, configs --------------------------------------


@pytest.mark.parametrize("tied", [False, True])
def test_random_init_llama_loads_with_load_hf(tmp_path, tied):
    from transformers import LlamaConfig, LlamaForCausalLM

    hf_config = LlamaConfig(**SIZES, rope_parameters={"rope_type": "default", "rope_theta": 5000.0},
                            rms_norm_eps=1e-5, tie_word_embeddings=tied)
    hf = _perturb(LlamaForCausalLM(hf_config))
    hf.save_pretrained(tmp_path)
    ours = load_hf(tmp_path)
    assert ours.config.rope_theta == 5000.0 and ours.config.num_key_value_heads == 2
    assert (ours.lm_head.weight is ours.embed_tokens.weight) == tied
    ids = torch.randint(0, 96, (2, 16))
    with torch.no_grad():
        assert (ours(ids).logits - hf(ids).logits).abs().max() <= ATOL
    expected = hf.generate(ids[:, :4], attention_mask=torch.ones(2, 4, dtype=torch.long), max_new_tokens=8,
                           do_sample=False, eos_token_id=None, pad_token_id=0)
    assert torch.equal(ours.generate(ids[:, :4], max_new_tokens=8), expected)


def test_tied_embeddings_round_trip(tmp_path):
    from safetensors.torch import load_file

    ours = _perturb(CausalLM(ModelConfig(**SIZES, tie_word_embeddings=True)))
    save_hf(ours, tmp_path)
    assert "lm_head.weight" not in load_file(str(tmp_path / "model.safetensors"))
    hf = _from_pretrained(tmp_path)
    assert hf.lm_head.weight.data_ptr() == hf.model.embed_tokens.weight.data_ptr()
    back = load_hf(tmp_path)
    assert back.lm_head.weight is back.embed_tokens.weight
    for name, tensor in ours.state_dict().items():
        assert torch.equal(back.state_dict()[name], tensor), name
    ids = torch.randint(0, 96, (1, 12))
    with torch.no_grad():
        assert (hf(ids).logits - ours(ids).logits).abs().max() <= ATOL


def test_config_round_trip_and_transformers_agrees():
    from transformers import LlamaConfig

    config = ModelConfig.llama3_8b()
    hf_dict = config_to_hf(config)
    assert config_from_hf(hf_dict) == config
    hf = LlamaConfig(**{k: v for k, v in hf_dict.items() if k not in ("architectures", "model_type")})
    assert hf.rope_parameters["rope_theta"] == 500000.0
    assert (hf.num_key_value_heads, hf.head_dim, hf.rms_norm_eps) == (8, 128, 1e-5)


def test_config_from_hf_reads_4x_style_and_llama31_eos_lists():
    old = {"model_type": "llama", **SIZES, "rope_theta": 500000.0, "eos_token_id": [5, 6], "pad_token_id": None}
    config = config_from_hf(old)
    assert (config.rope_theta, config.eos_token_id, config.pad_token_id) == (500000.0, 5, 0)
    with pytest.raises(ValueError, match="rope"):
        config_from_hf({**old, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}})
    with pytest.raises(ValueError, match="hidden_act"):
        config_from_hf({**old, "hidden_act": "gelu"})


@pytest.mark.parametrize(("field", "value"), [("norm_type", "layernorm"), ("ffn_type", "geglu")])
def test_non_llama_models_are_refused_naming_the_field(tmp_path, field, value):
    config = ModelConfig(**SIZES, **{field: value})
    with pytest.raises(ValueError, match=field):
        config_to_hf(config)
    with pytest.raises(ValueError, match=field):
        save_hf(CausalLM(config), tmp_path)
    assert not (tmp_path / "config.json").exists()


def test_load_hf_without_files_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_hf(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config_to_hf(ModelConfig(**SIZES))))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_hf(tmp_path)
