"""Feed-forward networks and the Transformer block against their oracles.

- ``SwiGLU`` / ``GeGLU`` with the same weights == Hugging Face's ``LlamaMLP`` with
  ``hidden_act`` "silu" / "gelu_pytorch_tanh"; ``FeedForward`` == torch's
  ``Linear -> GELU -> Linear``.
- ``TransformerBlock`` with the same weights == ``LlamaDecoderLayer`` (causal, and with
  left padding), and it passes the KV cache through.

Tolerances: float32 results of O(1) that differ only in the order of summation are
compared at atol = rtol = 1e-5 (one float32 rounding of a 64-term dot product is
~1e-7 relative; 1e-5 leaves room for the different matmul kernels).
"""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from intro2llm.model.config import ModelConfig
from intro2llm.model.feedforward import FeedForward, GeGLU, SwiGLU, build_ffn
from intro2llm.model.norm import LayerNorm, RMSNorm
from intro2llm.model.transformer_block import TransformerBlock

F32 = {"atol": 1e-5, "rtol": 1e-5}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    random.seed(0)



def _config(**overrides) -> ModelConfig:
    """d = 64, I = 96, h = 4 query heads of hd = 16, g = 2 KV heads."""
    params = dict(vocab_size=64, hidden_size=64, intermediate_size=96, num_hidden_layers=1,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return ModelConfig(**{**params, **overrides})


def _perturb(module: nn.Module) -> nn.Module:
    """Weights far from the default init: linear std 0.15, norm weights 1 +- 0.2, biases +- 0.1."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p) if name.endswith("weight") else 0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.15)
    return module.eval()


def _hf_config(config: ModelConfig, hidden_act: str = "silu"):
    from transformers import LlamaConfig

    hf = LlamaConfig(
        hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_attention_heads=config.num_attention_heads, num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.max_position_embeddings, rms_norm_eps=config.rms_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},  # transformers 5.x
        hidden_act=hidden_act, attention_dropout=0.0,
    )
    hf._attn_implementation = "eager"
    return hf


# ----- feed-forward networks ---------------------------------------------------------------


@pytest.mark.parametrize(("cls", "hidden_act"), [(SwiGLU, "silu"), (GeGLU, "gelu_pytorch_tanh")])
def test_gated_ffn_matches_llama_mlp(cls, hidden_act):
    """SwiGLU is LlamaMLP; GeGLU is LlamaMLP with Gemma's tanh-GELU; same parameter names."""
    from transformers.models.llama.modeling_llama import LlamaMLP

    config = _config()
    ours = _perturb(cls(config))
    hf = LlamaMLP(_hf_config(config, hidden_act)).eval()
    hf.load_state_dict(ours.state_dict())  # strict: the names are the same
    x = torch.randn(2, 7, 64)
    torch.testing.assert_close(ours(x), hf(x), **F32)


def test_feedforward_is_linear_gelu_linear():
    """FeedForward = Linear(d, I) -> exact (erf) GELU -> Linear(I, d), no biases."""
    config = _config()
    ours = _perturb(FeedForward(config))
    oracle = nn.Sequential(nn.Linear(64, 96, bias=False), nn.GELU(), nn.Linear(96, 64, bias=False))
    oracle[0].weight.data.copy_(ours.up_proj.weight)
    oracle[2].weight.data.copy_(ours.down_proj.weight)
    x = torch.randn(3, 5, 64)
    torch.testing.assert_close(ours(x), oracle(x), **F32)
    assert set(ours.state_dict()) == {"up_proj.weight", "down_proj.weight"}


def test_geglu_uses_the_tanh_gelu():
    """The only difference from SwiGLU is the activation: gelu(approximate="tanh")."""
    ffn = _perturb(GeGLU(_config()))
    x = torch.randn(2, 3, 64)
    expected = ffn.down_proj(F.gelu(ffn.gate_proj(x), approximate="tanh") * ffn.up_proj(x))
    torch.testing.assert_close(ffn(x), expected, **F32)


def test_gated_ffn_with_8_thirds_width_has_the_parameters_of_a_4x_gelu_mlp():
    """d = 48: 3 · 48 · 128 = 2 · 48 · 192 = 18432 (I = 8/3 · d versus 4 · d)."""
    gated = SwiGLU(_config(hidden_size=48, intermediate_size=128))
    plain = FeedForward(_config(hidden_size=48, intermediate_size=192))
    assert sum(p.numel() for p in gated.parameters()) == sum(p.numel() for p in plain.parameters()) == 18432


@pytest.mark.parametrize(("ffn_type", "cls"), [("swiglu", SwiGLU), ("geglu", GeGLU), ("gelu", FeedForward)])
def test_build_ffn_follows_ffn_type(ffn_type, cls):
    ffn = build_ffn(_config(ffn_type=ffn_type))
    assert type(ffn) is cls
    assert ffn(torch.randn(2, 3, 64)).shape == (2, 3, 64)


def test_build_ffn_rejects_an_unknown_type():
    config = _config()
    config.ffn_type = "relu"  # bypasses the config's own validation
    with pytest.raises(ValueError, match="ffn_type"):
        build_ffn(config)


# ----- the Transformer block ---------------------------------------------------------------


def _block_and_hf_layer(config: ModelConfig):
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRotaryEmbedding

    ours = _perturb(TransformerBlock(config, layer_idx=0))
    hf_config = _hf_config(config)
    hf = LlamaDecoderLayer(hf_config, layer_idx=0).eval()
    hf.load_state_dict(ours.state_dict())  # strict: identical names, no rotary buffers
    return ours, hf, LlamaRotaryEmbedding(hf_config)


def _oracle_mask(padding: torch.Tensor, s: int) -> torch.Tensor:
    """[b, 1, s, s] additive mask written with loops: 0 where j <= i and j is no pad, else finfo.min."""
    b = padding.shape[0]
    mask = torch.full((b, 1, s, s), torch.finfo(torch.float32).min)
    for bi in range(b):
        for i in range(s):
            for j in range(i + 1):
                if padding[bi, j] == 1:
                    mask[bi, 0, i, j] = 0.0
    return mask


def test_block_matches_llama_decoder_layer_causal():
    config = _config()
    ours, hf, rope = _block_and_hf_layer(config)
    x = torch.randn(2, 9, 64)
    pos = torch.arange(9)[None].expand(2, 9)
    out, present = ours(x)
    expected = hf(x, attention_mask=_oracle_mask(torch.ones(2, 9), 9), position_ids=pos,
                  position_embeddings=rope(x, pos))
    assert present is None
    assert out.abs().mean() > 0.5, "weights should move the output well away from the input"
    torch.testing.assert_close(out, expected, **F32)


def test_block_matches_llama_decoder_layer_with_left_padding():
    """Row 1 has 3 left pads: positions count from its first real token; pad outputs are unused."""
    config = _config()
    ours, hf, rope = _block_and_hf_layer(config)
    padding = torch.ones(2, 8, dtype=torch.long)
    padding[1, :3] = 0
    pos = (padding.cumsum(-1) - 1).clamp(min=0)
    x = torch.randn(2, 8, 64)
    out, _ = ours(x, attention_mask=padding, position_ids=pos)
    expected = hf(x, attention_mask=_oracle_mask(padding, 8), position_ids=pos, position_embeddings=rope(x, pos))
    real = padding.bool()
    torch.testing.assert_close(out[real], expected[real], **F32)


def test_block_is_pre_ln_residual():
    """With o_proj and down_proj zero both sublayers add 0: the block is the identity,
    whatever the norms do (post-LN would normalise x)."""
    block = _perturb(TransformerBlock(_config(), 0))
    with torch.no_grad():
        block.self_attn.o_proj.weight.zero_()
        block.mlp.down_proj.weight.zero_()
    x = 3.0 * torch.randn(2, 5, 64)
    torch.testing.assert_close(block(x)[0], x, atol=0.0, rtol=0.0)


def test_block_passes_the_kv_cache_through():
    """Prefix with use_cache, then the rest with the cache == the whole sequence at once."""
    block = _perturb(TransformerBlock(_config(), 0))
    x = torch.randn(2, 10, 64)
    full, _ = block(x)
    first, present = block(x[:, :6], use_cache=True)
    assert present[0].shape == (2, 2, 6, 16)  # [b, g, t, hd]
    rest, present = block(x[:, 6:], past_key_value=present, use_cache=True)
    assert present[0].shape == (2, 2, 10, 16)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), full, **F32)


def test_block_dropout_only_in_training():
    config = _config(hidden_dropout=0.5)
    block = _perturb(TransformerBlock(config, 0))
    plain = TransformerBlock(_config(), 0).eval()
    plain.load_state_dict(block.state_dict())
    x = torch.randn(2, 5, 64)
    torch.testing.assert_close(block(x)[0], plain(x)[0], atol=0.0, rtol=0.0)  # eval: dropout is identity
    block.train()
    assert not torch.allclose(block(x)[0], plain(x)[0])


@pytest.mark.parametrize(("norm_type", "ffn_type", "norm_cls", "ffn_cls"),
                         [("rmsnorm", "swiglu", RMSNorm, SwiGLU), ("layernorm", "gelu", LayerNorm, FeedForward)])
def test_block_builds_the_configured_parts(norm_type, ffn_type, norm_cls, ffn_cls):
    block = TransformerBlock(_config(norm_type=norm_type, ffn_type=ffn_type), layer_idx=3)
    assert isinstance(block.input_layernorm, norm_cls) and isinstance(block.post_attention_layernorm, norm_cls)
    assert isinstance(block.mlp, ffn_cls)
    assert block.self_attn.layer_idx == 3
    assert block(torch.randn(1, 4, 64))[0].shape == (1, 4, 64)
