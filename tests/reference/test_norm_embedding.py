"""Norms and embeddings against their oracles: torch.nn and Hugging Face Llama.

- ``LayerNorm`` == ``torch.nn.LayerNorm``; ``RMSNorm`` == ``torch.nn.RMSNorm`` and, bit
  for bit, == ``transformers``' ``LlamaRMSNorm`` (same operations in the same order).
- ``RotaryEmbedding`` / ``rotate_half`` / ``apply_rotary_pos_emb`` == ``LlamaRotaryEmbedding``
  and HF's functions (non-interleaved layout), plus the property that makes RoPE
  useful: scores depend on the relative position only.

Tolerances (stated per test): float32 results that differ only in summation order
are compared at 1e-5 (a few float32 ulps of O(1) values); bfloat16 results at
``torch.testing``'s bfloat16 defaults (rtol 1.6e-2: one bfloat16 rounding), since
both sides round once to 8 mantissa bits. Identical operation sequences are
compared with ``torch.equal``.
"""

from __future__ import annotations

import math
import random

import pytest
import torch

from intro2llm.model.config import ModelConfig
from intro2llm.model.embedding import (
    PositionalEncoding,
    RotaryEmbedding,
    TokenEmbedding,
    apply_rotary_pos_emb,
    rotate_half,
)
from intro2llm.model.norm import LayerNorm, RMSNorm, build_norm

DTYPES = [torch.float32, torch.bfloat16]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    random.seed(0)


def _randomize(module: torch.nn.Module) -> None:
    """Non-default parameters (ones / zeros would hide a missing weight or bias)."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5 + 1.0)


def _hf_llama_config(head_dim: int = 16, heads: int = 4, max_pos: int = 32, theta: float = 10000.0):
    from transformers import LlamaConfig

    # transformers 5.x keeps rope_theta inside rope_parameters.
    return LlamaConfig(
        hidden_size=head_dim * heads,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_pos,
        rope_parameters={"rope_type": "default", "rope_theta": theta},
    )


# ----- LayerNorm ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_layernorm_matches_torch_layernorm(dtype):
    """Random weight and bias; float32 at 1e-5 (summation order), bfloat16 at one rounding."""
    ours = LayerNorm(48, eps=1e-5)
    _randomize(ours)
    oracle = torch.nn.LayerNorm(48, eps=1e-5)
    oracle.load_state_dict(ours.state_dict())
    ours, oracle = ours.to(dtype), oracle.to(dtype)
    x = (torch.randn(3, 7, 48) * 3 + 2).to(dtype)
    out = ours(x)
    assert out.dtype == dtype and out.shape == x.shape
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {}
    torch.testing.assert_close(out, oracle(x), **tol)


def test_layernorm_uses_biased_variance_by_hand():
    """x = [1, 3]: mean 2, biased variance 1, so (x - 2) / 1 = [-1, 1] (unbiased would give ±0.707)."""
    out = LayerNorm(2, eps=1e-12)(torch.tensor([[1.0, 3.0]]))
    torch.testing.assert_close(out, torch.tensor([[-1.0, 1.0]]))


def test_layernorm_state_dict_names():
    assert set(LayerNorm(8).state_dict()) == {"weight", "bias"}


# ----- RMSNorm -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_rmsnorm_matches_torch_rmsnorm(dtype):
    """float32 at 1e-5. In bfloat16 Llama rounds before multiplying by the weight and torch
    after, so the two differ by up to two bfloat16 roundings: rtol 3.2e-2."""
    ours = RMSNorm(48, eps=1e-6)
    _randomize(ours)
    oracle = torch.nn.RMSNorm(48, eps=1e-6)
    oracle.load_state_dict(ours.state_dict())
    x = (torch.randn(2, 5, 48) * 4).to(dtype)
    out = ours.to(dtype)(x)
    assert out.dtype == dtype
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-2, "rtol": 3.2e-2}
    torch.testing.assert_close(out, oracle.to(dtype)(x), **tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rmsnorm_equals_llama_rmsnorm_bit_for_bit(dtype):
    """Same operations in the same order as LlamaRMSNorm: results must be identical."""
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    ours = RMSNorm(64, eps=1e-5)
    _randomize(ours)
    oracle = LlamaRMSNorm(64, eps=1e-5)
    oracle.load_state_dict(ours.state_dict())
    x = (torch.randn(2, 9, 64) * 5).to(dtype)
    assert torch.equal(ours.to(dtype)(x), oracle.to(dtype)(x))


def test_rmsnorm_float32_weight_with_bfloat16_input_returns_bfloat16():
    """Mixed dtypes (f32 weight, bf16 activations): Llama would promote the output to f32;
    ours returns the input dtype (COURSE.md: "original dtype out"), and the values are
    Llama's f32 result rounded once to bf16."""
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    ours, oracle = RMSNorm(16), LlamaRMSNorm(16)
    _randomize(ours)
    oracle.load_state_dict(ours.state_dict())
    x = torch.randn(4, 16, dtype=torch.bfloat16)
    out = ours(x)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, oracle(x).to(torch.bfloat16))


def test_rmsnorm_by_hand():
    """x = [3, -3, 3, -3]: rms = 3, so x / rms = [1, -1, 1, -1]; weight 2 doubles it."""
    norm = RMSNorm(4, eps=1e-12)
    with torch.no_grad():
        norm.weight.fill_(2.0)
    torch.testing.assert_close(norm(torch.tensor([3.0, -3.0, 3.0, -3.0])), torch.tensor([2.0, -2.0, 2.0, -2.0]))


def test_norms_return_input_dtype_and_survive_float16_squares():
    """300**2 = 90000 overflows float16 (max 65504): computing in float32 avoids inf."""
    x = torch.full((2, 8), 300.0, dtype=torch.float16)
    for norm in (RMSNorm(8).half(), LayerNorm(8).half()):
        out = norm(x)
        assert out.dtype == torch.float16 and torch.isfinite(out).all()


@pytest.mark.parametrize("cls", [LayerNorm, RMSNorm])
def test_norm_gradcheck_float64(cls):
    """Analytical gradients (input, weight, bias) equal finite differences in float64."""
    norm = cls(6, eps=1e-5).double()
    _randomize(norm)
    x = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    names, params = zip(*norm.named_parameters(), strict=True)

    def fn(x, *ps):
        return torch.func.functional_call(norm, dict(zip(names, ps, strict=True)), (x,))

    assert torch.autograd.gradcheck(fn, (x, *params))


def test_build_norm_follows_config():
    rms = build_norm(ModelConfig.tiny(rms_norm_eps=1e-5))
    ln = build_norm(ModelConfig.tiny(norm_type="layernorm", rms_norm_eps=1e-5))
    assert isinstance(rms, RMSNorm) and isinstance(ln, LayerNorm)
    assert rms.eps == ln.eps == 1e-5 and rms.weight.shape == (64,)


def test_norm_rejects_bad_eps():
    with pytest.raises(ValueError, match="eps"):
        RMSNorm(8, eps=0.0)


# ----- TokenEmbedding ----------------------------------------------------------------------


def test_token_embedding_matches_nn_embedding_and_shares_its_state_dict():
    ours = TokenEmbedding(50, 12)
    oracle = torch.nn.Embedding(50, 12)
    oracle.load_state_dict(ours.state_dict())
    ids = torch.randint(0, 50, (3, 7))
    out = ours(ids)
    assert out.shape == (3, 7, 12)
    assert torch.equal(out, oracle(ids))


def test_token_embedding_init_std_and_padding_row():
    emb = TokenEmbedding(2000, 64, padding_idx=0)
    assert torch.count_nonzero(emb.weight[0]) == 0
    assert abs(emb.weight[1:].std().item() - 0.02) < 1e-3  # 128k samples: std error ~ 4e-5


def test_token_embedding_gradient_reaches_used_rows_only():
    emb = TokenEmbedding(10, 4)
    ids = torch.tensor([[1, 3, 3]])
    emb(ids).sum().backward()
    row_has_grad = emb.weight.grad.abs().sum(-1) > 0
    assert row_has_grad.nonzero().flatten().tolist() == [1, 3]
    torch.testing.assert_close(emb.weight.grad[3], torch.full((4,), 2.0))  # used twice


@pytest.mark.parametrize("bad_id", [10, 57, -1])
def test_token_embedding_out_of_range_names_the_id(bad_id):
    emb = TokenEmbedding(10, 4)
    with pytest.raises(ValueError, match=rf"token id {bad_id} .*vocab_size=10"):
        emb(torch.tensor([[1, bad_id, 2]]))


def test_token_embedding_rejects_float_ids():
    with pytest.raises(ValueError, match=r"long\(\)"):
        TokenEmbedding(10, 4)(torch.tensor([1.0, 2.0]))


# ----- RoPE --------------------------------------------------------------------------------


@pytest.mark.parametrize("theta", [10000.0, 500000.0])
@pytest.mark.parametrize("dtype", DTYPES)
def test_rotary_embedding_matches_llama_rotary_embedding(theta, dtype):
    """Same float32 formulas (inv_freq, position * inv_freq, cos, sin): identical tables."""
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    config = _hf_llama_config(head_dim=16, max_pos=32, theta=theta)
    oracle = LlamaRotaryEmbedding(config)
    ours = RotaryEmbedding(16, max_position_embeddings=32, base=theta)
    assert torch.equal(ours.inv_freq, oracle.inv_freq)
    position_ids = torch.stack([torch.arange(10), torch.tensor([0, 0, 0, 1, 2, 3, 4, 5, 30, 31])])  # [2, 10]
    cos, sin = ours(position_ids, dtype=dtype)
    hf_cos, hf_sin = oracle(torch.zeros(1, dtype=dtype), position_ids)
    assert cos.shape == sin.shape == (2, 10, 16) and cos.dtype == dtype
    assert torch.equal(cos, hf_cos) and torch.equal(sin, hf_sin)


def test_rotary_buffers_stay_out_of_the_state_dict():
    """HF: inv_freq is not in the state dict; our cos/sin caches are not either."""
    rope = RotaryEmbedding(8, 16)
    assert dict(rope.state_dict()) == {}
    assert {n for n, _ in rope.named_buffers()} == {"inv_freq", "cos_cached", "sin_cached"}


def test_rotary_1d_positions_give_2d_tables():
    cos, sin = RotaryEmbedding(8, 16)(torch.arange(5))
    assert cos.shape == sin.shape == (5, 8)
    torch.testing.assert_close(cos[0], torch.ones(8))  # position 0: no rotation
    torch.testing.assert_close(sin[0], torch.zeros(8))


def test_rotary_cache_extends_past_max_position_embeddings():
    """Position 40 with a 16-position cache: the cache grows, values equal a bigger cache's."""
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    small, big = RotaryEmbedding(16, 16), RotaryEmbedding(16, 64)
    positions = torch.tensor([[3, 15, 16, 40]])
    cos, sin = small(positions)
    assert small.max_seq_len_cached >= 41
    big_cos, big_sin = big(positions)
    assert torch.equal(cos, big_cos) and torch.equal(sin, big_sin)
    hf_cos, hf_sin = LlamaRotaryEmbedding(_hf_llama_config(16, max_pos=16))(torch.zeros(1), positions)
    assert torch.equal(cos, hf_cos) and torch.equal(sin, hf_sin)


def test_rotary_cache_extension_after_bfloat16_cast_stays_accurate():
    """model.to(bfloat16) casts buffers; extending the cache recomputes float32 frequencies."""
    rope = RotaryEmbedding(16, 8).to(torch.bfloat16)
    cos, _ = rope(torch.tensor([100]), dtype=torch.float32)
    ref, _ = RotaryEmbedding(16, 128)(torch.tensor([100]))
    torch.testing.assert_close(cos, ref, atol=1e-6, rtol=0)  # float32 table: same numbers


def test_rotary_rejects_odd_head_dim():
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(7)


def test_rotate_half_by_hand_and_matches_hf():
    from transformers.models.llama.modeling_llama import rotate_half as hf_rotate_half

    assert torch.equal(rotate_half(torch.tensor([1.0, 2.0, 3.0, 4.0])), torch.tensor([-3.0, -4.0, 1.0, 2.0]))
    x = torch.randn(2, 3, 5, 8)
    assert torch.equal(rotate_half(x), hf_rotate_half(x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_apply_rotary_pos_emb_matches_hf(dtype):
    """GQA shapes (4 query heads, 2 KV heads); identical operations: identical results."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb as hf_apply

    q = torch.randn(2, 4, 6, 16, dtype=dtype)
    k = torch.randn(2, 2, 6, 16, dtype=dtype)
    positions = torch.tensor([[0, 1, 2, 3, 4, 5], [7, 8, 9, 10, 11, 12]])
    cos, sin = RotaryEmbedding(16, 32)(positions, dtype=dtype)
    q_embed, k_embed = apply_rotary_pos_emb(q, k, cos, sin)
    hf_q, hf_k = hf_apply(q, k, cos, sin)
    assert q_embed.shape == q.shape and k_embed.shape == k.shape and q_embed.dtype == dtype
    assert torch.equal(q_embed, hf_q) and torch.equal(k_embed, hf_k)


def test_apply_rotary_pos_emb_keeps_q_dtype_with_float32_tables():
    q = torch.randn(1, 2, 3, 8, dtype=torch.bfloat16)
    cos, sin = RotaryEmbedding(8, 8)(torch.arange(3)[None])
    q_embed, k_embed = apply_rotary_pos_emb(q, q, cos, sin)
    assert q_embed.dtype == k_embed.dtype == torch.bfloat16


def test_rope_scores_depend_on_relative_position_only():
    """<R(m) q, R(n) k> = <R(m + c) q, R(n + c) k>. Unit vectors; float32 angles up to ~230
    radians carry ~3e-5 absolute error, so atol 2e-4."""
    rope = RotaryEmbedding(32, 256)
    q = torch.nn.functional.normalize(torch.randn(1, 1, 1, 32), dim=-1)
    k = torch.nn.functional.normalize(torch.randn(1, 1, 1, 32), dim=-1)

    def score(m: int, n: int) -> torch.Tensor:
        cos_m, sin_m = rope(torch.tensor([[m]]))
        cos_n, sin_n = rope(torch.tensor([[n]]))
        q_rot, _ = apply_rotary_pos_emb(q, q, cos_m, sin_m)
        _, k_rot = apply_rotary_pos_emb(k, k, cos_n, sin_n)
        return (q_rot * k_rot).sum()

    for m, n, shift in [(5, 2, 100), (2, 5, 37), (9, 9, 200), (0, 30, 1)]:
        torch.testing.assert_close(score(m, n), score(m + shift, n + shift), atol=2e-4, rtol=0)
    assert not torch.allclose(score(5, 2), score(5, 3), atol=1e-3)  # and the offset does matter


def test_rope_is_a_rotation_preserving_norms():
    x = torch.randn(1, 2, 10, 16)
    cos, sin = RotaryEmbedding(16, 16)(torch.arange(10)[None])
    x_rot, _ = apply_rotary_pos_emb(x, x, cos, sin)
    torch.testing.assert_close(x_rot.norm(dim=-1), x.norm(dim=-1), atol=1e-5, rtol=1e-5)


# ----- sinusoidal PositionalEncoding -------------------------------------------------------


def test_sinusoidal_positional_encoding_by_hand():
    """pe[pos, 2i] = sin(pos / 10000**(2i/d)), pe[pos, 2i+1] = cos(...); d = 4."""
    pe = PositionalEncoding(4, max_len=8)
    out = pe(torch.zeros(1, 3, 4))
    expected_pos1 = torch.tensor([math.sin(1), math.cos(1), math.sin(1 / 100), math.cos(1 / 100)])
    torch.testing.assert_close(out[0, 0], torch.tensor([0.0, 1.0, 0.0, 1.0]))
    torch.testing.assert_close(out[0, 1], expected_pos1)
    with pytest.raises(ValueError, match="max_len"):
        pe(torch.zeros(1, 9, 4))
