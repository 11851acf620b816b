"""Lesson 03, advanced tier: oracles, random inputs, the layer, the KV cache, precision.

Expected values come from three places, never from outputs pasted into this file:

- **torch**: ``torch.nn.functional.scaled_dot_product_attention`` (the fused kernel) is the
  oracle of the learner's ``scaled_dot_product_attention``. Its ``is_causal`` is top-left
  aligned, so for ``q_len < kv_len`` it gets an explicit bottom-right mask built with loops
  below; its own GQA support (``enable_gqa=True``) is the oracle of ``repeat_kv``;
- **the reference library** (``intro2llm``): the learner's ``GroupedQueryAttention`` loads
  the weights of a reference layer (randomized, std 0.15, so softmax rows are far from
  uniform) and must give the same outputs and caches on the same inputs;
- **properties**: decoding with a KV cache equals one full pass; the layer's "eager" and
  "sdpa" paths agree; finite differences agree with autograd (float64).

Tolerances (``atol + rtol · |expected|``):

- float32, ``atol = rtol = 1e-5`` (``F32``): outputs are O(1) averages of O(1) values; two
  correct implementations differ only in summation order or where the scale is applied
  (~1e-7 relative), and every wrong formula, mask or head order shows up at 1e-2 or more.
- bfloat16 against the float32 oracle on the same rounded inputs, ``atol = 2e-2,
  rtol = 1.6e-2`` (``BF16``): scores and softmax are computed in float32, so the remaining
  error is rounding the weights and the output to bfloat16 (8 significant bits, relative
  step 2^-8 = 3.9e-3) plus the bfloat16 matmul with v; 1.6e-2 is torch.testing's bfloat16
  rtol. The reference stays below a fifth of it.
- bfloat16 layer against the bfloat16 reference layer, ``atol = rtol = 3e-2``
  (``LAYER_BF16``): both run four bfloat16 projections whose rounding points may differ
  (e.g. where q is cast), a few bfloat16 steps on O(1) values.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from intro2llm_cli.testkit import assert_close, assert_equal, learner, reference, say

F32 = {"atol": 1e-5, "rtol": 1e-5}
BF16 = {"atol": 2e-2, "rtol": 1.6e-2}
LAYER_BF16 = {"atol": 3e-2, "rtol": 3e-2}
IMPLS = ["eager", "sdpa"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _attention():
    return learner("model.attention")


def _close(actual, expected, what, hint="", **tolerance):
    assert_close(actual, expected, what, hint=hint, **(tolerance or F32))


def _qkv(b=2, h=4, s=5, t=5, hd=16, g=None, dtype=torch.float32):
    """Random q [b, h, s, hd], k / v [b, g or h, t, hd]."""
    g = g or h
    return (torch.randn(b, h, s, hd, dtype=dtype), torch.randn(b, g, t, hd, dtype=dtype),
            torch.randn(b, g, t, hd, dtype=dtype))


def _bottom_right(s: int, t: int) -> torch.Tensor:
    """[s, t] bool, written with loops: query i (absolute position t - s + i) may see key j <= t - s + i."""
    return torch.tensor([[j <= t - s + i for j in range(t)] for i in range(s)])


def _oracle_padding_mask(padding: torch.Tensor, s: int, dtype: torch.dtype) -> torch.Tensor:
    """The [b, 1, s, t] additive mask of ``prepare_attention_mask``, written with loops:
    0 where key j is real and j <= t - s + i, finfo(dtype).min elsewhere."""
    b, t = padding.shape
    mask = torch.full((b, 1, s, t), torch.finfo(dtype).min, dtype=dtype)
    for bi in range(b):
        for i in range(s):
            for j in range(t):
                if j <= t - s + i and padding[bi, j] == 1:
                    mask[bi, 0, i, j] = 0.0
    return mask


def _left_padding(b: int, t: int) -> torch.Tensor:
    """[b, t] of 1 / 0: row 0 unpadded, row 1 with 3 left pads, further rows with 1 left pad."""
    mask = torch.ones(b, t, dtype=torch.long)
    mask[1, :3] = 0
    mask[2:, :1] = 0
    return mask


def _right_padding(b: int, t: int) -> torch.Tensor:
    """[b, t] of 1 / 0: row 0 unpadded, row 1 with 2 right pads, further rows with 1 right pad."""
    mask = torch.ones(b, t, dtype=torch.long)
    mask[1, -2:] = 0
    mask[2:, -1:] = 0
    return mask


def _model_config(module, kv_heads: int, **overrides):
    """d = 64, h = 4 query heads of hd = 16, g = kv_heads, positions up to 64."""
    params = dict(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                  num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=64)
    return module.ModelConfig(**{**params, **overrides})


def _reference_layer(kv_heads: int = 2, impl: str = "sdpa", seed: int = 1234, **overrides):
    """The reference GroupedQueryAttention with N(0, 0.15) weights (not the default init)."""
    config = _model_config(reference("model.config"), kv_heads, **overrides)
    layer = reference("model.attention").GroupedQueryAttention(config, layer_idx=0, attn_implementation=impl)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.15)
    return layer.eval()


def _learner_layer(ref_layer, kv_heads: int = 2, impl: str = "sdpa", **overrides):
    """The learner's GroupedQueryAttention (their config class) with the weights of ``ref_layer``."""
    config = _model_config(learner("model.config"), kv_heads, **overrides)
    layer = _attention().GroupedQueryAttention(config, layer_idx=0, attn_implementation=impl)
    try:
        layer.load_state_dict(ref_layer.state_dict())
    except RuntimeError as exc:
        raise AssertionError(say(
            f"无法载入参考层的权重 (名字应为 q_proj/k_proj/v_proj/o_proj.weight，无偏置)：{exc}",
            f"cannot load the reference layer's weights (names q_proj/k_proj/v_proj/o_proj.weight, no biases): {exc}",
        )) from None
    return layer.eval()


def _pair(kv_heads: int = 2, impl: str = "sdpa", **overrides):
    """(learner layer, reference layer) with the same random weights; the reference uses ``impl`` too."""
    ref_layer = _reference_layer(kv_heads, impl, **overrides)
    return _learner_layer(ref_layer, kv_heads, impl, **overrides), ref_layer


HINT_LAYER = say(
    "提示：检查 (1) q/k/v 拆头 view(b, s, heads, hd).transpose(1, 2)；(2) RoPE 同时作用于 q 和 k；"
    "(3) repeat_kv 的分组顺序；(4) 合并多头要先 transpose(1, 2) 再 reshape(b, s, h * hd)；(5) 缩放 hd ** -0.5。",
    "hint: check (1) splitting heads with view(b, s, heads, hd).transpose(1, 2); (2) RoPE on both q and k; "
    "(3) repeat_kv's grouping; (4) merging heads: transpose(1, 2) before reshape(b, s, h * hd); (5) scale hd ** -0.5.")
HINT_CACHE = say(
    "提示：缓存里存的是已旋转 (RoPE) 的 k，新 k 只旋转一次，沿序列维 torch.cat([past, new], dim=2)；"
    "默认 position_ids 要从 past_len 接着数，不能每次从 0 开始。",
    "hint: the cache holds k already rotated (RoPE); rotate only the new k, once, and concatenate "
    "torch.cat([past, new], dim=2); default position_ids continue from past_len, never restart at 0.")


# ===================================================================== scaled_dot_product_attention vs torch

SHAPES = [(1, 1, 1, 1, 8), (2, 4, 5, 5, 16), (2, 3, 4, 9, 8), (3, 2, 7, 7, 32), (1, 2, 6, 3, 64)]


@pytest.mark.symbol("scaled_dot_product_attention")
@pytest.mark.parametrize("b, h, s, t, hd", SHAPES)
def test_sdpa_without_mask_matches_torch(b, h, s, t, hd):
    """Random q [b, h, s, hd], k / v [b, h, t, hd], no mask: equals torch's SDPA (F32)."""
    q, k, v = _qkv(b, h, s, t, hd)
    _close(_attention().scaled_dot_product_attention(q, k, v), F.scaled_dot_product_attention(q, k, v),
           f"sdpa output, shape (b, h, s, t, hd) = {(b, h, s, t, hd)}", say(
               "提示：softmax(q @ k^T * hd ** -0.5, dim=-1) @ v；检查 softmax 的维度与缩放。",
               "hint: softmax(q @ k^T * hd ** -0.5, dim=-1) @ v; check the softmax axis and the scale."))


@pytest.mark.symbol("scaled_dot_product_attention")
@pytest.mark.parametrize("b, h, s, hd", [(1, 1, 1, 8), (2, 4, 6, 16), (1, 3, 11, 8)])
def test_sdpa_causal_square_matches_torch_is_causal(b, h, s, hd):
    """q_len == kv_len: both alignments agree, so torch's ``is_causal=True`` is the oracle."""
    q, k, v = _qkv(b, h, s, s, hd)
    _close(_attention().scaled_dot_product_attention(q, k, v, is_causal=True),
           F.scaled_dot_product_attention(q, k, v, is_causal=True), f"causal sdpa output, s = t = {s}", say(
               "提示：掩码要在 softmax 之前加到分数上；对角线可见 (triu(diagonal=1))。",
               "hint: add the mask to the scores before the softmax; the diagonal is visible (triu(diagonal=1))."))


@pytest.mark.symbol("scaled_dot_product_attention")
@pytest.mark.parametrize("s, t", [(1, 8), (3, 8), (5, 6)])
def test_sdpa_causal_with_fewer_queries_than_keys_is_bottom_right(s, t):
    """q_len < kv_len (queries after t - s cached tokens): ours with ``is_causal=True`` equals
    torch's SDPA given the explicit bottom-right bool mask (query i sees j <= t - s + i)."""
    q, k, v = _qkv(2, 4, s, t, 16)
    _close(_attention().scaled_dot_product_attention(q, k, v, is_causal=True),
           F.scaled_dot_product_attention(q, k, v, attn_mask=_bottom_right(s, t)),
           f"causal sdpa output with s={s} < t={t}", say(
               "提示：is_causal 要用右下角对齐的 make_causal_mask(s, t)：最后一个查询能看到所有键。",
               "hint: is_causal uses the bottom-right make_causal_mask(s, t): the last query sees every key."))


@pytest.mark.symbol("scaled_dot_product_attention")
@pytest.mark.parametrize("kind", ["bool", "float_neg_inf", "float_min", "float_random"])
def test_sdpa_padding_masks_match_torch(kind):
    """Key-padding masks [b, 1, 1, t] (bool or float) and a random float mask [b, h, s, t]:
    equal to torch. Batch 1's keys 0..2 are padding; in the bool case batch 0 also has a
    query row that sees nothing (torch gives zeros there)."""
    b, h, s, t = 2, 3, 4, 6
    q, k, v = _qkv(b, h, s, t, 8)
    keep = torch.ones(b, 1, 1, t, dtype=torch.bool)
    keep[1, ..., :3] = False
    if kind == "bool":
        mask = keep.expand(b, 1, s, t).clone()
        mask[0, 0, 2] = False
    elif kind == "float_neg_inf":
        mask = torch.zeros(b, 1, 1, t).masked_fill(~keep, float("-inf"))
    elif kind == "float_min":
        mask = torch.zeros(b, 1, 1, t).masked_fill(~keep, torch.finfo(torch.float32).min)
    else:
        mask = torch.randn(b, h, s, t)
    _close(_attention().scaled_dot_product_attention(q, k, v, attn_mask=mask),
           F.scaled_dot_product_attention(q, k, v, attn_mask=mask), f"sdpa output with a {kind} mask", say(
               "提示：bool 掩码 True = 可以看 (masked_fill(~mask, -inf))；浮点掩码直接加到分数上；"
               "掩码要能广播到 [b, h, s, t]；整行被遮住的查询输出 0。",
               "hint: bool mask True = may attend (masked_fill(~mask, -inf)); a float mask is added to the scores; "
               "masks broadcast to [b, h, s, t]; a query with every key masked outputs 0."))


@pytest.mark.symbol("scaled_dot_product_attention")
def test_sdpa_causal_and_padding_mask_together_match_torch():
    """``is_causal=True`` *and* a padding mask: both apply. Oracle: torch with the two bool
    masks combined (bottom-right causal & key padding)."""
    b, h, s, t = 2, 2, 3, 7
    q, k, v = _qkv(b, h, s, t, 8)
    keep = torch.ones(b, 1, 1, t, dtype=torch.bool)
    keep[1, ..., :2] = False
    _close(_attention().scaled_dot_product_attention(q, k, v, attn_mask=keep, is_causal=True),
           F.scaled_dot_product_attention(q, k, v, attn_mask=keep & _bottom_right(s, t)),
           "sdpa output with is_causal=True and a padding mask", say(
               "提示：is_causal 与 attn_mask 同时给出时两者都要生效，不要写成 if/elif。",
               "hint: with both is_causal and attn_mask, apply both (not if / elif)."))


@pytest.mark.symbol("repeat_kv")
@pytest.mark.parametrize("h, g, causal", [(4, 2, True), (6, 3, False), (8, 1, True), (4, 4, False)])
def test_sdpa_gqa_through_repeat_kv_matches_torch_enable_gqa(h, g, causal):
    """q with h heads, k / v with g: ``sdpa(q, repeat_kv(k, h // g), repeat_kv(v, h // g))``
    equals torch's own GQA (``enable_gqa=True``), where KV head j serves query heads
    [j·h/g, (j+1)·h/g)."""
    q, k, v = _qkv(2, h, 5, 5, 8, g=g)
    attention = _attention()
    n_rep = h // g
    ours = attention.scaled_dot_product_attention(q, attention.repeat_kv(k, n_rep), attention.repeat_kv(v, n_rep),
                                                  is_causal=causal)
    _close(ours, F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True),
           f"GQA attention output, h={h}, g={g}", say(
               "提示：repeat_kv 要让同一个 KV 头的副本相邻 (等价于 torch.repeat_interleave(x, n_rep, dim=1))。",
               "hint: repeat_kv keeps the copies of one KV head adjacent "
               "(same as torch.repeat_interleave(x, n_rep, dim=1))."))


@pytest.mark.symbol("repeat_kv")
@pytest.mark.parametrize("n_rep", [1, 2, 3])
def test_repeat_kv_equals_repeat_interleave_on_random_input(n_rep):
    """[2, 3, 5, 8] random: ``repeat_kv(x, n)`` == ``torch.repeat_interleave(x, n, dim=1)`` exactly."""
    x = torch.randn(2, 3, 5, 8)
    _close(_attention().repeat_kv(x, n_rep), torch.repeat_interleave(x, n_rep, dim=1), f"repeat_kv(x, {n_rep})",
           atol=0, rtol=0)


@pytest.mark.symbol("scaled_dot_product_attention")
@pytest.mark.parametrize("causal", [True, False])
def test_sdpa_bfloat16_matches_the_float32_oracle(causal):
    """bfloat16 q, k, v: output bfloat16, within BF16 of torch's float32 SDPA on the same
    (already rounded) inputs. See the module docstring for the tolerance."""
    q, k, v = _qkv(2, 4, 8, 8, 16, dtype=torch.bfloat16)
    out = _attention().scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert_equal(out.dtype, torch.bfloat16, "output dtype for bfloat16 inputs")
    oracle = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=causal)
    _close(out.float(), oracle, "bfloat16 sdpa output (as float32)", **BF16)


@pytest.mark.symbol("scaled_dot_product_attention")
def test_sdpa_bfloat16_scores_with_a_large_shared_offset_are_computed_in_float32():
    """Every score shares an offset of 64 (q[..., 0] = k[..., 0] = 16: 16·16 / sqrt(16) = 64).
    Softmax ignores a shared offset, but bfloat16 holds numbers near 64 only in steps of 0.5,
    so scores (or a softmax) kept in bfloat16 move weights by up to ~25%. In float32 the
    scores are exact and the output stays within BF16 of the float32 oracle."""
    q, k, v = _qkv(2, 4, 8, 8, 16)
    q[..., 0] = 16.0
    k[..., 0] = 16.0
    q, k, v = q.bfloat16(), k.bfloat16(), v.bfloat16()
    out = _attention().scaled_dot_product_attention(q, k, v, is_causal=True)
    oracle = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
    _close(out.float(), oracle, "bfloat16 sdpa output with large scores (as float32)", say(
        "提示：半精度输入时先把 q、k 转成 float32 (torch.promote_types(q.dtype, torch.float32)) 再算分数和 softmax，"
        "最后再转回 q.dtype。",
        "hint: with half-precision inputs, turn q and k to float32 (torch.promote_types(q.dtype, torch.float32)) "
        "before the scores and the softmax; cast back to q.dtype at the end."), **BF16)


@pytest.mark.symbol("scaled_dot_product_attention")
def test_sdpa_dropout_zeroes_weights_and_rescales_the_survivors():
    """dropout_p = 0.5 on [4, 4, 16, 16] weights: about half become 0 (40% to 60% kept), each
    kept weight is doubled (1 / (1 - p), so the expected output is unchanged), and the output
    is the dropped weights @ v."""
    q, k, v = _qkv(4, 4, 16, 16, 8)
    attention = _attention()
    _, clean = attention.scaled_dot_product_attention(q, k, v, return_weights=True)
    out, dropped = attention.scaled_dot_product_attention(q, k, v, dropout_p=0.5, return_weights=True)
    kept = dropped != 0
    share = kept.float().mean().item()
    assert 0.4 < share < 0.6, say(f"dropout_p=0.5 时应保留约一半的权重，实际保留了 {share:.1%}",
                                  f"dropout_p=0.5 should keep about half of the weights, kept {share:.1%}")
    hint = say("提示：在 softmax 之后对权重做 F.dropout(weights, p=dropout_p) (保留的权重乘以 1 / (1 - p))，再乘 v。",
               "hint: after the softmax apply F.dropout(weights, p=dropout_p) (kept weights are multiplied by "
               "1 / (1 - p)), then @ v.")
    _close(dropped[kept], clean[kept] * 2, "kept weights vs 2 x the weights without dropout", hint)
    _close(out, dropped @ v, "output vs the returned (dropped) weights @ v", hint)


@pytest.mark.symbol("scaled_dot_product_attention")
@pytest.mark.parametrize("mask_kind", ["causal", "float", "bool", "bottom_right"])
def test_sdpa_gradients_pass_gradcheck_in_float64(mask_kind):
    """Finite differences agree with autograd for q, k and v (float64, tiny shapes, the
    computation stays float64 inside). "bottom_right" is is_causal with s = 3 < t = 4."""
    q, k, v = (x.requires_grad_() for x in _qkv(1, 2, 3, 4, 4, dtype=torch.float64))
    kwargs = {
        "causal": {"is_causal": True},
        "bottom_right": {"is_causal": True},
        "float": {"attn_mask": torch.randn(1, 1, 3, 4, dtype=torch.float64)},
        "bool": {"attn_mask": torch.tensor([[True, False, True, True]] * 3)},
    }[mask_kind]
    if mask_kind == "causal":
        q = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    attention = _attention()
    ok = torch.autograd.gradcheck(lambda q, k, v: attention.scaled_dot_product_attention(q, k, v, **kwargs),
                                  (q, k, v), raise_exception=False)
    assert ok, say("float64 下数值梯度与自动求导不一致：是否有 .detach()、原地修改或转成了 float32？",
                   "float64 finite differences disagree with autograd: a .detach(), an in-place edit, or a cast "
                   "to float32?")


# ===================================================================== make_causal_mask / prepare_attention_mask

@pytest.mark.symbol("make_causal_mask")
@pytest.mark.parametrize("s, t", [(1, 1), (4, 4), (1, 9), (3, 10), (7, 8)])
def test_causal_mask_matches_a_loop_oracle(s, t):
    """-inf exactly where key j is in the future of query i (j > t - s + i), 0 elsewhere."""
    mask = _attention().make_causal_mask(s, t)
    expected = torch.zeros(s, t).masked_fill(~_bottom_right(s, t), float("-inf"))
    assert_equal(list(mask.shape), [s, t], f"make_causal_mask({s}, {t}).shape")
    assert torch.equal(torch.isneginf(mask), torch.isneginf(expected)) and (mask[torch.isfinite(mask)] == 0).all(), say(
        f"make_causal_mask({s}, {t}) 的 -inf 位置不对：期望\n{expected.tolist()}\n实际\n{mask.tolist()}",
        f"make_causal_mask({s}, {t}) has -inf in the wrong places: expected\n{expected.tolist()}\ngot\n{mask.tolist()}")


@pytest.mark.symbol("prepare_attention_mask")
@pytest.mark.parametrize("s, t", [(6, 6), (1, 6), (3, 7)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_prepare_attention_mask_matches_a_loop_oracle(s, t, dtype):
    """Left padding over t keys (rows with 0, 3 and 1 pads), s queries at the end: equal to
    the loop-built mask (0 / finfo(dtype).min), shape [b, 1, s, t]."""
    padding = _left_padding(3, t)
    mask = _attention().prepare_attention_mask(padding, 3, s, t, dtype)
    _close(mask, _oracle_padding_mask(padding, s, dtype), f"prepare_attention_mask(s={s}, t={t}, {dtype})", say(
        "提示：可见 = (j <= t - s + i) 且 padding[b, j] == 1；其余填 finfo(dtype).min；形状 [b, 1, s, t]。",
        "hint: visible = (j <= t - s + i) and padding[b, j] == 1; the rest is finfo(dtype).min; "
        "shape [b, 1, s, t]."), atol=0, rtol=0)


# ===================================================================== the layer against the reference


@pytest.mark.symbol("GroupedQueryAttention.forward")
@pytest.mark.parametrize("padding", ["causal", "left_pad", "right_pad"])
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kv_heads", [4, 2, 1], ids=["mha", "gqa", "mqa"])
def test_layer_matches_the_reference_with_the_same_weights(kv_heads, impl, padding):
    """h = 4 query heads and g = 4 (MHA), 2 (GQA) or 1 (MQA); b = 3, s = 7. Same weights,
    same input, same positions, same padding: same output (F32). Left padding passes the
    positions generate() would (real tokens start at 0); right padding the default ones.

    Real tokens are compared first; then pad queries, whose every key is masked with
    finfo.min, so their output is the plain average over the keys they are shown."""
    mine, ref = _pair(kv_heads, impl)
    b, s = 3, 7
    x = torch.randn(b, s, 64)
    mask = {"causal": None, "left_pad": _left_padding(b, s), "right_pad": _right_padding(b, s)}[padding]
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0) if padding == "left_pad" else None
    with torch.no_grad():
        out, present = mine(x, attention_mask=mask, position_ids=position_ids)
        expected, _ = ref(x, attention_mask=mask, position_ids=position_ids)
    assert present is None, say("未传 use_cache=True 时 present_key_value 应为 None",
                                "present_key_value should be None without use_cache=True")
    real = mask.bool() if mask is not None else torch.ones(b, s, dtype=torch.bool)
    assert_equal(list(out.shape), [b, s, 64], "layer output shape [b, s, d]")
    _close(out[real], expected[real], f"layer output at real tokens ({impl}, g={kv_heads}, {padding})",
           HINT_LAYER + ("" if mask is None else say(
               "\n以及：padding 掩码是否传进了 prepare_attention_mask 并被使用？",
               "\nalso: is the padding mask passed to prepare_attention_mask and used?")))
    if mask is not None:
        _close(out[~real], expected[~real], f"layer output at padding queries ({impl}, g={kv_heads}, {padding})", say(
            "提示：padding 查询看不到任何真实键；用 finfo(dtype).min (不是 -inf) 遮挡，它的输出是所有键的平均，不是 0 或 NaN。",
            "hint: a padding query sees no real key; masked with finfo(dtype).min (not -inf) its output is the plain "
            "average over the keys, not 0 or NaN."))


@pytest.mark.symbol("GroupedQueryAttention.forward")
@pytest.mark.parametrize("impl", IMPLS)
def test_layer_in_bfloat16_matches_the_reference_in_bfloat16(impl):
    """Both layers cast to bfloat16, same bfloat16 input: output bfloat16, within LAYER_BF16."""
    mine, ref = _pair(2, impl)
    mine, ref = mine.to(torch.bfloat16), ref.to(torch.bfloat16)
    x = torch.randn(2, 6, 64, dtype=torch.bfloat16)
    with torch.no_grad():
        out, _ = mine(x)
        expected, _ = ref(x)
    assert_equal(out.dtype, torch.bfloat16, "layer output dtype in bfloat16")
    _close(out.float(), expected.float(), f"bfloat16 layer output ({impl})", HINT_LAYER, **LAYER_BF16)


@pytest.mark.symbol("GroupedQueryAttention.forward")
@pytest.mark.parametrize("padded", [False, True], ids=["causal", "left_pad"])
def test_eager_and_sdpa_implementations_of_the_layer_agree(padded):
    """The learner's layer with attn_implementation="eager" (their scaled_dot_product_attention)
    and "sdpa" (torch's kernel), same weights: same output (F32), on 9 tokens and on a
    3-token chunk after a 6-token cache."""
    ref = _reference_layer(2)
    eager, fused = _learner_layer(ref, 2, "eager"), _learner_layer(ref, 2, "sdpa")
    x = torch.randn(3, 9, 64)
    mask = _left_padding(3, 9) if padded else None
    with torch.no_grad():
        _close(eager(x, attention_mask=mask)[0], fused(x, attention_mask=mask)[0], "eager vs sdpa layer output", say(
            "提示：eager 路径调用你的 scaled_dot_product_attention；若只有它不同，问题在那里 (掩码、缩放、softmax 维度)。",
            "hint: the eager path calls your scaled_dot_product_attention; if only it differs, look there "
            "(mask, scale, softmax axis)."))
        _, past = fused(x[:, :6], attention_mask=None if mask is None else mask[:, :6], use_cache=True)
        _close(eager(x[:, 6:], attention_mask=mask, past_key_value=past)[0],
               fused(x[:, 6:], attention_mask=mask, past_key_value=past)[0],
               "eager vs sdpa output of a 3-token chunk after a 6-token cache", HINT_CACHE)


@pytest.mark.symbol("GroupedQueryAttention.forward")
@pytest.mark.parametrize("impl", IMPLS)
def test_layer_gradients_match_the_reference(impl):
    """Backward of ``out.pow(2).sum()`` with right padding: the gradients of the input and of
    the four weights equal the reference layer's (F32 on O(1) values, atol 1e-4 for the sums
    over batch and positions that make the weight gradients)."""
    mine, ref = _pair(2, impl)
    x = torch.randn(2, 5, 64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    grads = []
    for layer in (mine, ref):
        xi = x.clone().requires_grad_()
        layer.zero_grad()
        layer(xi, attention_mask=mask)[0].pow(2).sum().backward()
        grads.append([xi.grad] + [getattr(layer, f"{n}_proj").weight.grad for n in "qkvo"])
    for name, got, want in zip(["x", "q_proj", "k_proj", "v_proj", "o_proj"], *grads, strict=True):
        assert got is not None, say(f"{name} 没有梯度：计算图是否被 .detach() 或 torch.no_grad() 切断了？",
                                    f"{name} has no gradient: was the graph cut by .detach() or torch.no_grad()?")
        _close(got, want, f"gradient of {name} ({impl})", HINT_LAYER, atol=1e-4, rtol=1e-5)


# ===================================================================== the KV cache


@pytest.mark.symbol("GroupedQueryAttention.forward")
@pytest.mark.parametrize("padded", [False, True], ids=["no_pad", "left_pad"])
@pytest.mark.parametrize("chunks", [[1] * 8, [3, 1, 4], [5, 3]], ids=["token_by_token", "chunks_3_1_4", "chunks_5_3"])
@pytest.mark.parametrize("impl", IMPLS)
def test_kv_cache_decoding_equals_full_recomputation(impl, chunks, padded):
    """Feed 8 tokens in pieces, carrying (k, v) with default positions: every piece's output
    equals the matching rows of one full forward of the learner's own layer (F32), and the
    cache holds [b, g, tokens so far, hd]. Only real tokens are compared: a pad query sees
    a different set of keys in a cached step than in the full pass."""
    mine, _ = _pair(2, impl)
    b, total = 3, sum(chunks)
    x = torch.randn(b, total, 64)
    padding = _left_padding(b, total) if padded else None
    with torch.no_grad():
        full, _ = mine(x, attention_mask=padding)
        past, start, pieces = None, 0, []
        for n in chunks:
            mask = padding[:, : start + n] if padded else None  # covers cached + new tokens
            out, past = mine(x[:, start : start + n], attention_mask=mask, past_key_value=past, use_cache=True)
            for name, tensor in zip("kv", past, strict=True):
                assert_equal(list(tensor.shape), [b, 2, start + n, 16],
                             f"cached {name}.shape after {start + n} tokens ([b, g, t, hd])")
            pieces.append(out)
            start += n
    real = padding.bool() if padded else torch.ones(b, total, dtype=torch.bool)
    _close(torch.cat(pieces, dim=1)[real], full[real], f"outputs decoded with the cache in chunks {chunks} vs one pass",
           HINT_CACHE)


@pytest.mark.symbol("GroupedQueryAttention.forward")
@pytest.mark.parametrize("kv_heads", [2, 1], ids=["gqa", "mqa"])
def test_kv_cache_holds_the_same_rotated_keys_and_values_as_the_reference(kv_heads):
    """A 4-token prompt, then 1 token, then 2: after each call the learner's (k, v) equal the
    reference's: keys after RoPE, values as projected, g heads, oldest token first."""
    mine, ref = _pair(kv_heads, "sdpa")
    x = torch.randn(2, 7, 64)
    past_mine = past_ref = None
    start = 0
    with torch.no_grad():
        for n in (4, 1, 2):
            piece = x[:, start : start + n]
            _, past_mine = mine(piece, past_key_value=past_mine, use_cache=True)
            _, past_ref = ref(piece, past_key_value=past_ref, use_cache=True)
            start += n
            for name, got, want in zip(("k", "v"), past_mine, past_ref, strict=True):
                _close(got, want, f"cached {name} after {start} tokens", HINT_CACHE)


@pytest.mark.symbol("GroupedQueryAttention.forward")
@pytest.mark.parametrize("impl", IMPLS)
def test_default_positions_continue_after_the_cache(impl):
    """After a 5-token cache, 3 new tokens with ``position_ids=None`` are at positions 5, 6, 7:
    the same output as passing ``position_ids=[[5, 6, 7]]``, and as the reference. (The classic
    bug restarts them at 0, 1, 2: RoPE then tells the model they precede the cache.)"""
    mine, ref = _pair(2, impl)
    x = torch.randn(2, 8, 64)
    with torch.no_grad():
        _, past = mine(x[:, :5], use_cache=True)
        default, _ = mine(x[:, 5:], past_key_value=past)
        explicit, _ = mine(x[:, 5:], past_key_value=past, position_ids=torch.arange(5, 8)[None].expand(2, 3))
        _, ref_past = ref(x[:, :5], use_cache=True)
        expected, _ = ref(x[:, 5:], past_key_value=ref_past)
    hint = say("提示：position_ids 为 None 时应为 torch.arange(past_len, past_len + s)，past_len = 缓存长度。",
               "hint: with position_ids=None use torch.arange(past_len, past_len + s), past_len = the cache length.")
    _close(default, explicit, "output with default positions vs explicit positions 5, 6, 7", hint)
    _close(default, expected, "output after the cache vs the reference", hint)


@pytest.mark.symbol("GroupedQueryAttention.forward")
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_padded_query_rows_are_never_nan(impl, dtype):
    """Row 1's first 3 queries are left padding and see no real key at all: their outputs must
    still be finite (finfo.min, not -inf, in the mask), in every dtype."""
    mine, _ = _pair(2, impl)
    mine = mine.to(dtype)
    with torch.no_grad():
        out, _ = mine(torch.randn(3, 6, 64, dtype=dtype), attention_mask=_left_padding(3, 6))
    bad = ~torch.isfinite(out)
    assert not bad.any(), say(
        f"输出中有 NaN/inf (第一个位于 {bad.nonzero()[0].tolist()})：padding 掩码要用 finfo(dtype).min，不能用 -inf。",
        f"NaN/inf in the output (first at {bad.nonzero()[0].tolist()}): the padding mask must hold "
        "finfo(dtype).min, not -inf.")


@pytest.mark.symbol("GroupedQueryAttention.forward")
@pytest.mark.parametrize("impl", IMPLS)
def test_right_padding_does_not_change_the_real_tokens(impl):
    """Right padding: the 4 real tokens' outputs equal those of the unpadded 4-token sequence."""
    mine, _ = _pair(2, impl)
    x = torch.randn(1, 6, 64)
    with torch.no_grad():
        padded, _ = mine(x, attention_mask=torch.tensor([[1, 1, 1, 1, 0, 0]]))
        short, _ = mine(x[:, :4])
    _close(padded[:, :4], short, "real tokens with right padding vs without the pads", say(
        "提示：padding 掩码要遮住 pad 键 (attention_mask 为 0 的位置)。",
        "hint: the padding mask must hide the pad keys (where attention_mask is 0)."))


@pytest.mark.symbol("GroupedQueryAttention.forward")
def test_attention_dropout_only_in_training():
    """attention_dropout = 0.5: in eval the output is deterministic (and equals the reference);
    in train mode two calls differ."""
    mine, ref = _pair(2, "sdpa", attention_dropout=0.5)
    x = torch.randn(1, 8, 64)
    with torch.no_grad():
        first, second = mine(x)[0], mine(x)[0]
        expected = ref(x)[0]
    hint = say("提示：dropout_p = self.attention_dropout if self.training else 0.0。",
               "hint: dropout_p = self.attention_dropout if self.training else 0.0.")
    _close(first, second, "two eval-mode calls", hint, atol=0, rtol=0)
    _close(first, expected, "eval-mode output vs the reference", hint)
    mine.train()
    with torch.no_grad():
        assert not torch.allclose(mine(x)[0], mine(x)[0]), say(
            "训练模式下 attention_dropout=0.5 应使两次调用的输出不同", "in train mode attention_dropout=0.5 should make two calls differ")
