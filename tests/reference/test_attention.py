"""Attention against its oracles: torch's SDPA and Hugging Face's ``LlamaAttention``.

- ``scaled_dot_product_attention`` == ``torch.nn.functional.scaled_dot_product_attention``
  for every mask kind; ``is_causal`` is bottom-right aligned, so for ``q_len < kv_len``
  the oracle gets the explicit bottom-right mask.
- ``GroupedQueryAttention`` with Hugging Face's weights == ``LlamaAttention`` (MHA, GQA
  and MQA; causal and padded), and its two paths ("eager", "sdpa") agree.
- The KV cache: decoding token by token or chunk by chunk == recomputing everything.

Tolerances: float32 outputs of O(1) that differ only in summation order or in where
the 1/sqrt(hd) scale is applied are compared at atol = rtol = 1e-5 (unless a test says
otherwise); bfloat16 at ``torch.testing``'s bfloat16 defaults (one bfloat16 rounding,
rtol 1.6e-2) or looser where a test explains why.
"""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from intro2llm.model.attention import (
    GroupedQueryAttention,
    MultiHeadAttention,
    make_causal_mask,
    prepare_attention_mask,
    repeat_kv,
    scaled_dot_product_attention,
)
from intro2llm.model.config import ModelConfig

F32 = {"atol": 1e-5, "rtol": 1e-5}
IMPLS = ["eager", "sdpa"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    random.seed(0)


def _config(kv_heads: int = 2, **overrides) -> ModelConfig:
    """h = 4 query heads of hd = 16 (d = 64), g = kv_heads."""
    params = dict(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                  num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=64,
                  rope_theta=10000.0)
    return ModelConfig(**{**params, **overrides})


def _attention(config: ModelConfig, impl: str = "sdpa") -> GroupedQueryAttention:
    """Non-default weights, large enough (std 0.15) that softmax rows are far from uniform."""
    attn = GroupedQueryAttention(config, layer_idx=0, attn_implementation=impl)
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0.0, 0.15)
    return attn.eval()


def _hf_attention(config: ModelConfig, ours: GroupedQueryAttention, impl: str = "eager"):
    """LlamaAttention with our weights, plus its rotary embedding."""
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaAttention, LlamaRotaryEmbedding

    hf_config = LlamaConfig(
        hidden_size=config.hidden_size,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},  # transformers 5.x
        attention_dropout=0.0,
    )
    hf_config._attn_implementation = impl
    hf = LlamaAttention(hf_config, layer_idx=0).eval()
    hf.load_state_dict(ours.state_dict())  # same names, no rotary buffers in either state dict
    return hf, LlamaRotaryEmbedding(hf_config)


def _oracle_mask(padding: torch.Tensor | None, b: int, s: int, t: int) -> torch.Tensor:
    """The 4-D additive mask LlamaAttention expects, written with loops: 0 where key j is
    visible to query i (j <= t - s + i and not padding), finfo(float32).min elsewhere."""
    mask = torch.full((b, 1, s, t), torch.finfo(torch.float32).min)
    for bi in range(b):
        for i in range(s):
            for j in range(t):
                if j <= t - s + i and (padding is None or padding[bi, j] == 1):
                    mask[bi, 0, i, j] = 0.0
    return mask


def _left_padding(b: int, t: int) -> torch.Tensor:
    """Row 0 unpadded, row 1 with 3 left pads, further rows with 1 left pad: [b, t] of 1 / 0."""
    mask = torch.ones(b, t, dtype=torch.long)
    mask[1, :3] = 0
    mask[2:, :1] = 0
    return mask


# ----- make_causal_mask / repeat_kv --------------------------------------------------------


def test_make_causal_mask_by_hand_bottom_right():
    """q_len 2 after 2 cached tokens: query 0 sits at position 2 (sees keys 0..2), query 1 sees all."""
    inf = float("-inf")
    assert torch.equal(make_causal_mask(2, 4), torch.tensor([[0.0, 0.0, 0.0, inf], [0.0, 0.0, 0.0, 0.0]]))
    square = make_causal_mask(3, 3)
    assert torch.equal(square, torch.full((3, 3), inf).triu(1))
    assert make_causal_mask(1, 5).eq(0).all()  # one decoding step sees the whole cache


@pytest.mark.parametrize(("q_len", "kv_len"), [(3, 2), (0, 4), (2, 0)])
def test_make_causal_mask_rejects_bad_sizes(q_len, kv_len):
    with pytest.raises(ValueError, match="q_len"):
        make_causal_mask(q_len, kv_len)


@pytest.mark.parametrize("n_rep", [1, 2, 4])
def test_repeat_kv_is_repeat_interleave(n_rep):
    x = torch.randn(2, 3, 5, 8)
    out = repeat_kv(x, n_rep)
    assert out.shape == (2, 3 * n_rep, 5, 8)
    assert torch.equal(out, torch.repeat_interleave(x, n_rep, dim=1))
    assert torch.equal(out[:, n_rep - 1], x[:, 0])  # head j serves query heads [j*n_rep, (j+1)*n_rep)


def test_repeat_kv_no_copy_for_mha_and_rejects_zero():
    x = torch.randn(1, 2, 3, 4)
    assert repeat_kv(x, 1) is x
    with pytest.raises(ValueError, match="n_rep"):
        repeat_kv(x, 0)


# ----- scaled_dot_product_attention vs torch ----------------------------------------------


def _qkv(b=2, h=4, s=5, t=5, hd=16, dtype=torch.float32):
    return (torch.randn(b, h, s, hd, dtype=dtype), torch.randn(b, h, t, hd, dtype=dtype),
            torch.randn(b, h, t, hd, dtype=dtype))


def test_sdpa_no_mask_matches_torch():
    q, k, v = _qkv(s=5, t=7)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v), F.scaled_dot_product_attention(q, k, v), **F32)


def test_sdpa_bool_mask_matches_torch_including_fully_masked_rows():
    """True = take part; a query with no visible key gives zeros, as torch's math kernel does."""
    q, k, v = _qkv(s=6, t=6)
    mask = torch.rand(2, 1, 6, 6) > 0.4
    mask[..., 0] = True
    mask[1, 0, 3] = False  # batch 1, query 3: nothing to see
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **F32)
    assert torch.equal(out[1, :, 3], torch.zeros(4, 16))


def test_sdpa_float_mask_matches_torch():
    q, k, v = _qkv(s=4, t=9)
    mask = torch.randn(2, 4, 4, 9)
    mask[0, :, :, 2] = float("-inf")
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, attn_mask=mask),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **F32)


def test_sdpa_causal_square_matches_torch_is_causal():
    q, k, v = _qkv(s=7, t=7)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, is_causal=True),
                               F.scaled_dot_product_attention(q, k, v, is_causal=True), **F32)


@pytest.mark.parametrize("q_len", [1, 3])
def test_sdpa_causal_with_cache_is_bottom_right(q_len):
    """q_len < kv_len: torch's is_causal would be top-left; the oracle gets the explicit
    bottom-right bool mask tril(diagonal=t - s)."""
    t = 8
    q, k, v = _qkv(s=q_len, t=t)
    bottom_right = torch.ones(q_len, t, dtype=torch.bool).tril(diagonal=t - q_len)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, is_causal=True),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=bottom_right), **F32)


def test_sdpa_gqa_via_repeat_kv_matches_torch_enable_gqa():
    """Oracle side uses torch's own GQA support (enable_gqa), not our repeat_kv."""
    q = torch.randn(2, 4, 6, 16)
    k, v = torch.randn(2, 2, 6, 16), torch.randn(2, 2, 6, 16)
    ours = scaled_dot_product_attention(q, repeat_kv(k, 2), repeat_kv(v, 2), is_causal=True)
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True), **F32)


def test_sdpa_bfloat16_matches_float32_oracle_and_keeps_dtype():
    """Computed in float32 inside: compare with the float32 oracle on the same rounded inputs;
    the only extra error is the final bfloat16 rounding (and probs rounded before @ v): rtol 1.6e-2."""
    q, k, v = _qkv(s=5, t=5, dtype=torch.bfloat16)
    out = scaled_dot_product_attention(q, k, v, is_causal=True)
    assert out.dtype == torch.bfloat16
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
    torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=1.6e-2)


def test_sdpa_custom_scale_and_weights():
    q, k, v = _qkv(s=3, t=4)
    out, weights = scaled_dot_product_attention(q, k, v, scale=0.3, return_weights=True)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, scale=0.3), **F32)
    assert weights.shape == (2, 4, 3, 4) and weights.dtype == torch.float32
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 3))
    torch.testing.assert_close(weights @ v, out, **F32)


def test_sdpa_dropout_zeroes_and_rescales_weights():
    """p = 0.5: about half the weights become 0, the rest are doubled."""
    q, k, v = _qkv(b=4, s=16, t=16)
    _, clean = scaled_dot_product_attention(q, k, v, return_weights=True)
    out, dropped = scaled_dot_product_attention(q, k, v, dropout_p=0.5, return_weights=True)
    kept = dropped != 0
    assert 0.4 < kept.float().mean().item() < 0.6
    torch.testing.assert_close(dropped[kept], clean[kept] * 2)
    torch.testing.assert_close(out, (dropped @ v), **F32)


def test_sdpa_rejects_head_mismatch_naming_repeat_kv():
    q, k, v = torch.randn(1, 4, 3, 8), torch.randn(1, 2, 3, 8), torch.randn(1, 2, 3, 8)
    with pytest.raises(ValueError, match="repeat_kv"):
        scaled_dot_product_attention(q, k, v)


@pytest.mark.parametrize("mask_kind", ["causal", "float", "bool"])
def test_sdpa_gradcheck_float64(mask_kind):
    """Finite differences in float64 (computation stays float64 inside)."""
    q, k, v = (x.requires_grad_() for x in _qkv(b=1, h=2, s=3, t=4, hd=4, dtype=torch.float64))
    kwargs = {
        "causal": {"is_causal": True},
        "float": {"attn_mask": torch.randn(1, 1, 3, 4, dtype=torch.float64)},
        "bool": {"attn_mask": torch.tensor([[True, False, True, True]] * 3)},
    }[mask_kind]
    assert torch.autograd.gradcheck(lambda q, k, v: scaled_dot_product_attention(q, k, v, **kwargs), (q, k, v))


# ----- prepare_attention_mask --------------------------------------------------------------


def test_prepare_attention_mask_combines_padding_and_causality():
    padding = _left_padding(3, 6)
    mask = prepare_attention_mask(padding, 3, 4, 6, torch.float32)
    assert mask.shape == (3, 1, 4, 6)
    assert torch.equal(mask, _oracle_mask(padding, 3, 4, 6))
    assert prepare_attention_mask(None, 3, 4, 6, torch.float32) is None


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_prepare_attention_mask_uses_finite_minimum_of_its_dtype(dtype):
    mask = prepare_attention_mask(_left_padding(3, 5), 3, 5, 5, dtype)
    assert mask.dtype == dtype and torch.isfinite(mask).all()
    assert mask.min().item() == torch.finfo(dtype).min


def test_prepare_attention_mask_rejects_mask_without_cached_tokens():
    """Decoding 1 token after 5 cached: the padding mask must cover all 6."""
    with pytest.raises(ValueError, match=r"\[2, 6\]"):
        prepare_attention_mask(torch.ones(2, 1), 2, 1, 6, torch.float32)


# ----- GroupedQueryAttention vs Hugging Face LlamaAttention ------------------------------


@pytest.mark.parametrize("kv_heads", [4, 2, 1], ids=["mha", "gqa", "mqa"])
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("padded", [False, True], ids=["causal", "padded"])
def test_gqa_matches_llama_attention(kv_heads, impl, padded):
    """Same weights, same positions, same (causal [+ padding]) mask: same output, all rows."""
    config = _config(kv_heads)
    ours = _attention(config, impl)
    hf, hf_rope = _hf_attention(config, ours)
    b, s = 3, 7
    x = torch.randn(b, s, config.hidden_size)
    padding = _left_padding(b, s) if padded else None
    position_ids = torch.arange(s)[None].expand(b, s)
    if padded:  # left padding: real tokens start at position 0 (what generate() passes)
        position_ids = (padding.cumsum(-1) - 1).clamp(min=0)
    out, present = ours(x, attention_mask=padding, position_ids=position_ids)
    with torch.no_grad():
        hf_out, _ = hf(x, position_embeddings=hf_rope(x, position_ids), attention_mask=_oracle_mask(padding, b, s, s))
    assert out.shape == (b, s, config.hidden_size) and present is None
    assert not out.isnan().any()
    torch.testing.assert_close(out, hf_out, **F32)


@pytest.mark.parametrize("impl", IMPLS)
def test_gqa_matches_llama_attention_in_bfloat16(impl):
    """Both sides in bfloat16 with different kernels and rounding points: compared at
    atol = rtol = 3e-2 (a few bfloat16 roundings of O(1) values)."""
    config = _config(2)
    ours = _attention(config, impl)
    hf, hf_rope = _hf_attention(config, ours, impl="eager")
    ours, hf = ours.to(torch.bfloat16), hf.to(torch.bfloat16)
    x = torch.randn(2, 6, config.hidden_size, dtype=torch.bfloat16)
    positions = torch.arange(6)[None]
    out, _ = ours(x)
    with torch.no_grad():
        hf_out, _ = hf(x, position_embeddings=hf_rope(x, positions),
                       attention_mask=_oracle_mask(None, 2, 6, 6).to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), hf_out.float(), atol=3e-2, rtol=3e-2)


def test_gqa_state_dict_is_llama_attention_state_dict():
    config = _config(2)
    ours = _attention(config)
    hf, _ = _hf_attention(config, ours)
    assert set(ours.state_dict()) == set(hf.state_dict()) == {f"{n}_proj.weight" for n in "qkvo"}
    assert ours.k_proj.weight.shape == (2 * 16, 64) and ours.q_proj.weight.shape == (4 * 16, 64)


@pytest.mark.parametrize("padded", [False, True])
def test_eager_and_sdpa_paths_agree(padded):
    config = _config(2)
    eager = _attention(config, "eager")
    sdpa = GroupedQueryAttention(config, attn_implementation="sdpa").eval()
    sdpa.load_state_dict(eager.state_dict())
    x = torch.randn(3, 9, 64)
    mask = _left_padding(3, 9) if padded else None
    torch.testing.assert_close(eager(x, attention_mask=mask)[0], sdpa(x, attention_mask=mask)[0], **F32)


# ----- KV cache ----------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("chunks", [[1] * 8, [3, 1, 4], [5, 3]], ids=["token_by_token", "chunks_3_1_4", "chunks_5_3"])
@pytest.mark.parametrize("padded", [False, True], ids=["no_pad", "left_pad"])
def test_kv_cache_decoding_equals_full_recomputation(impl, chunks, padded):
    """Feed 8 tokens in pieces, carrying (k, v): every piece's output equals the matching
    rows of one full forward; positions continue after the cache by default. Only real
    tokens are compared: a pad query that sees no real key averages over every key it is
    shown (finfo.min everywhere), and a cached step shows it fewer keys than a full pass."""
    config = _config(2)
    attn = _attention(config, impl)
    b, total = 3, sum(chunks)
    x = torch.randn(b, total, 64)
    padding = _left_padding(b, total) if padded else None
    full, _ = attn(x, attention_mask=padding)
    past, start, pieces = None, 0, []
    for n in chunks:
        mask = padding[:, : start + n] if padded else None  # covers cached + new tokens
        out, past = attn(x[:, start : start + n], attention_mask=mask, past_key_value=past, use_cache=True)
        assert past[0].shape == (b, config.num_key_value_heads, start + n, config.head_dim)  # g heads cached
        pieces.append(out)
        start += n
    real = padding.bool() if padded else torch.ones(b, total, dtype=torch.bool)
    torch.testing.assert_close(torch.cat(pieces, dim=1)[real], full[real], **F32)


def test_kv_cache_without_use_cache_returns_none():
    attn = _attention(_config(2))
    _, past = attn(torch.randn(1, 3, 64), use_cache=True)
    out, present = attn(torch.randn(1, 1, 64), past_key_value=past)
    assert present is None and out.shape == (1, 1, 64)


# ----- padding rows, MHA / MQA, errors -----------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_padding_rows_never_nan(impl, dtype):
    """Row 1's first 3 queries are padding and see no real key: finite, not NaN (finfo.min)."""
    attn = _attention(_config(2), impl).to(dtype)
    x = torch.randn(3, 6, 64, dtype=dtype)
    out, _ = attn(x, attention_mask=_left_padding(3, 6))
    assert torch.isfinite(out).all()


def test_padding_rows_do_not_change_real_rows():
    """Right padding: real tokens' outputs equal those of the unpadded, shorter sequence."""
    attn = _attention(_config(2))
    x = torch.randn(1, 6, 64)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    padded_out, _ = attn(x, attention_mask=mask)
    short_out, _ = attn(x[:, :4])
    torch.testing.assert_close(padded_out[:, :4], short_out, **F32)


def test_mha_equals_gqa_with_as_many_kv_heads_as_heads():
    mha = MultiHeadAttention(_config(2))  # the config's kv heads are overridden
    assert mha.num_key_value_heads == 4 and mha.k_proj.weight.shape == (64, 64)
    gqa = _attention(_config(4))
    mha.load_state_dict(gqa.state_dict())
    x = torch.randn(2, 5, 64)
    torch.testing.assert_close(mha.eval()(x)[0], gqa(x)[0], atol=0, rtol=0)


def test_mqa_single_kv_head_works_and_caches_one_head():
    attn = _attention(_config(1))
    out, (k, v) = attn(torch.randn(2, 5, 64), use_cache=True)
    assert out.shape == (2, 5, 64) and k.shape == v.shape == (2, 1, 5, 16)


def test_gqa_gradcheck_float64_eager():
    """Whole layer, float64, with right padding: finite differences agree with autograd.
    (No query without a visible key: there finfo.min swallows the scores, so the numerical
    gradient is 0 while the analytical one is not.)"""
    attn = _attention(_config(2, hidden_size=16), "eager").double()
    x = torch.randn(2, 3, 16, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    assert torch.autograd.gradcheck(lambda x: attn(x, attention_mask=mask)[0], (x,))


def test_gqa_errors_are_one_line_value_errors():
    attn = _attention(_config(2))
    with pytest.raises(ValueError, match="hidden_size=64"):
        attn(torch.randn(1, 3, 32))
    _, past = attn(torch.randn(1, 3, 64), use_cache=True)
    with pytest.raises(ValueError, match="cached"):
        attn(torch.randn(1, 1, 64), attention_mask=torch.ones(1, 1), past_key_value=past)
    with pytest.raises(ValueError, match="attn_implementation"):
        GroupedQueryAttention(_config(2), attn_implementation="flash")


def test_attention_dropout_only_in_training():
    attn = _attention(_config(2, attention_dropout=0.5))
    x = torch.randn(1, 8, 64)
    torch.testing.assert_close(attn(x)[0], attn(x)[0], atol=0, rtol=0)  # eval: deterministic
    attn.train()
    assert not torch.allclose(attn(x)[0], attn(x)[0])
