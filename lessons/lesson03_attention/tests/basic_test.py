"""Lesson 03, basic tier: the contract of every target on small, hand-checkable cases.

Every expected value below is worked out by hand in the test's docstring (or
follows from a stated property); none is copied from running the reference.

Notation, as in the lesson's module: ``b`` batch, ``h`` query heads, ``g`` key/value
heads, ``s`` queries, ``t`` keys (cached + new), ``hd`` head_dim, ``n_rep = h // g``.

The tiny attention case used throughout (``_tiny``): ``hd = 4``, so the default scale
is ``1 / sqrt(4) = 1/2``; one query ``q = [ln 3, ln 3, 0, 0]``; two keys
``k1 = [1, 1, 0, 0]``, ``k2 = [0, 0, 0, 0]``; values ``v1 = [4, 0, 8, 0]``,
``v2 = [0, 4, 0, -4]``. Then ``q·k1 = 2 ln 3`` and ``q·k2 = 0``, the scaled scores are
``[ln 3, 0]``, ``softmax = [3/4, 1/4]`` and the output is
``3/4 · v1 + 1/4 · v2 = [3, 1, 6, -1]``.

The learner's code is imported inside each test (``learner(...)``), so a module
that fails to import is one failing test, not a broken suite.
"""

from __future__ import annotations

import math

import pytest
import torch

from intro2llm_cli.testkit import assert_close, assert_equal, expect_error, learner, say

INF = float("-inf")
LN3 = math.log(3.0)
V1 = [4.0, 0.0, 8.0, 0.0]
V2 = [0.0, 4.0, 0.0, -4.0]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _attention():
    return learner("model.attention")


def _config(kv_heads: int = 2, **overrides):
    """The learner's ModelConfig with d = 64, h = 4 query heads of hd = 16, g = ``kv_heads``."""
    params = dict(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                  num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=64)
    return learner("model.config").ModelConfig(**{**params, **overrides})


def _close(actual, expected, what, hint, **tolerance):
    assert_close(actual, expected, what, hint=hint, **tolerance)


def _equal(actual, expected, what, hint):
    """``assert_equal`` with a hint about the likely cause appended to its message."""
    try:
        assert_equal(actual, expected, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{hint}") from None


def _assert_mask_equal(actual, expected, what, hint):
    """Masks hold -inf (or finfo.min): compare where the -inf entries are, then the rest exactly."""
    if not isinstance(actual, torch.Tensor):
        raise AssertionError(say(f"{what}：应返回 torch.Tensor，实际返回 {type(actual).__name__}",
                                 f"{what}: should be a torch.Tensor, got {type(actual).__name__}"))
    assert_equal(list(actual.shape), list(expected.shape), f"{what}.shape")
    assert_equal(actual.dtype, expected.dtype, f"{what}.dtype")
    if torch.isnan(actual).any():
        raise AssertionError(say(f"{what} 中出现 NaN", f"{what} contains NaN") + f"\n{hint}")
    wrong = (torch.isneginf(actual) != torch.isneginf(expected)) | (
        torch.isfinite(expected) & (actual != expected))
    if wrong.any():
        index = wrong.nonzero()[0].tolist()
        raise AssertionError(say(
            f"{what}：{int(wrong.sum())} 个位置不对，第一个在索引 {index}：期望 {expected[tuple(index)].item()}，"
            f"实际 {actual[tuple(index)].item()}\n  期望：{expected.tolist()}\n  实际：{actual.tolist()}",
            f"{what}: {int(wrong.sum())} entries differ, first at index {index}: expected "
            f"{expected[tuple(index)].item()}, got {actual[tuple(index)].item()}\n"
            f"  expected: {expected.tolist()}\n  got:      {actual.tolist()}",
        ) + f"\n{hint}")


def _tiny(s: int = 1, dtype=torch.float32):
    """q [1, 1, s, 4] (every query is [ln 3, ln 3, 0, 0]), k, v [1, 1, 2, 4] (see the module docstring)."""
    q = torch.tensor([[LN3, LN3, 0.0, 0.0]] * s, dtype=dtype)[None, None]
    k = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=dtype)[None, None]
    v = torch.tensor([V1, V2], dtype=dtype)[None, None]
    return q, k, v


def _mix(w1: float, w2: float) -> list[float]:
    """w1 · v1 + w2 · v2."""
    return [w1 * a + w2 * b for a, b in zip(V1, V2, strict=True)]


# ===================================================================== make_causal_mask


@pytest.mark.symbol("make_causal_mask")
def test_causal_mask_square_keeps_the_diagonal_and_masks_the_future():
    """``make_causal_mask(3, 3)``: query i sees keys j <= i; the diagonal (a token seeing
    itself) is allowed::

        [[0, -inf, -inf],
         [0,    0, -inf],
         [0,    0,    0]]
    """
    mask = _attention().make_causal_mask(3, 3)
    expected = torch.tensor([[0.0, INF, INF], [0.0, 0.0, INF], [0.0, 0.0, 0.0]])
    _assert_mask_equal(mask, expected, "make_causal_mask(3, 3)", say(
        "提示：对角线必须是 0（每个 token 能看到自己）：torch.triu(mask, diagonal=1)，而不是 diagonal=0。",
        "hint: the diagonal must be 0 (a token sees itself): torch.triu(mask, diagonal=1), not diagonal=0."))


@pytest.mark.symbol("make_causal_mask")
@pytest.mark.parametrize("q_len, kv_len, expected", [
    (2, 5, [[0.0, 0.0, 0.0, 0.0, INF], [0.0, 0.0, 0.0, 0.0, 0.0]]),
    (1, 4, [[0.0, 0.0, 0.0, 0.0]]),
    (2, 3, [[0.0, 0.0, INF], [0.0, 0.0, 0.0]]),
], ids=["2x5", "1x4", "2x3"])
def test_causal_mask_with_cache_is_bottom_right_aligned(q_len, kv_len, expected):
    """With ``t - s`` cached tokens, query i sits at absolute position ``t - s + i`` and sees
    keys ``j <= t - s + i``.

    - (2, 5): 3 cached; query 0 is position 3, sees keys 0..3 (key 4 is its future);
      query 1 is position 4 and sees all five keys.
    - (1, 4): one decoding step after 3 cached tokens sees everything: all zeros.
    - (2, 3): 1 cached; query 0 (position 1) sees keys 0, 1; query 1 sees all three.

    A top-left mask (``triu(diagonal=1)``) would hide keys 2..4 from query 0 of (2, 5).
    """
    mask = _attention().make_causal_mask(q_len, kv_len)
    _assert_mask_equal(mask, torch.tensor(expected), f"make_causal_mask({q_len}, {kv_len})", say(
        "提示：掩码要右下角对齐：第 i 个查询位于 kv_len - q_len + i，用 torch.triu(mask, diagonal=kv_len - q_len + 1)。"
        "左上角对齐 (diagonal=1) 只在 q_len == kv_len 时正确。",
        "hint: the mask is bottom-right aligned: query i sits at kv_len - q_len + i, so use "
        "torch.triu(mask, diagonal=kv_len - q_len + 1). Top-left (diagonal=1) is right only when q_len == kv_len."))


@pytest.mark.symbol("make_causal_mask")
@pytest.mark.parametrize("dtype", [None, torch.float32, torch.bfloat16, torch.float64])
def test_causal_mask_has_the_requested_dtype_and_only_zeros_and_minus_inf(dtype):
    """The default dtype is float32; entries are exactly 0.0 or -inf (not a large negative
    number, not 1 / 0 booleans) in whatever floating dtype is asked for."""
    attention = _attention()
    mask = attention.make_causal_mask(4, 6) if dtype is None else attention.make_causal_mask(4, 6, dtype=dtype)
    assert isinstance(mask, torch.Tensor), say(f"应返回 torch.Tensor，实际是 {type(mask).__name__}",
                                               f"should return a torch.Tensor, got {type(mask).__name__}")
    assert_equal(mask.dtype, dtype or torch.float32, f"make_causal_mask(4, 6{'' if dtype is None else ', dtype'}).dtype")
    ok = (mask == 0) | torch.isneginf(mask)
    assert ok.all(), say(
        f"掩码只能含 0 和 -inf，实际还有 {mask[~ok].unique().tolist()}：用 torch.full(..., float('-inf')) 再 triu。",
        f"the mask may hold only 0 and -inf, found also {mask[~ok].unique().tolist()}: "
        "use torch.full(..., float('-inf')) then triu.")
    assert_equal(int(torch.isneginf(mask).sum()), 6, "number of -inf entries of make_causal_mask(4, 6) (3 + 2 + 1 + 0)")


@pytest.mark.symbol("make_causal_mask")
@pytest.mark.parametrize("q_len, kv_len", [(3, 2), (5, 1)])
def test_causal_mask_rejects_more_queries_than_keys(q_len, kv_len):
    """Keys include every query's own token, so ``q_len > kv_len`` is a caller's bug: ValueError."""
    attention = _attention()
    expect_error(ValueError, lambda: attention.make_causal_mask(q_len, kv_len),
                 f"make_causal_mask({q_len}, {kv_len})")


# ===================================================================== scaled_dot_product_attention


@pytest.mark.symbol("scaled_dot_product_attention")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sdpa_output_has_query_shape_and_dtype(dtype):
    """q [2, 3, 4, 8], k / v [2, 3, 6, 8] -> out [2, 3, 4, 8] (one row per query), dtype of q."""
    q = torch.randn(2, 3, 4, 8, dtype=dtype)
    k, v = torch.randn(2, 3, 6, 8, dtype=dtype), torch.randn(2, 3, 6, 8, dtype=dtype)
    out = _attention().scaled_dot_product_attention(q, k, v)
    assert isinstance(out, torch.Tensor), say(f"应返回一个张量，实际是 {type(out).__name__}",
                                              f"should return one tensor, got {type(out).__name__}")
    assert_equal(list(out.shape), [2, 3, 4, 8], "scaled_dot_product_attention(...).shape")
    assert_equal(out.dtype, dtype, "scaled_dot_product_attention(...).dtype")


@pytest.mark.symbol("scaled_dot_product_attention")
def test_sdpa_one_query_two_keys_by_hand():
    """The module docstring's case: scores ``[ln 3, 0]``, weights ``[3/4, 1/4]``,
    output ``3/4 · [4, 0, 8, 0] + 1/4 · [0, 4, 0, -4] = [3, 1, 6, -1]``."""
    q, k, v = _tiny()
    out, weights = _attention().scaled_dot_product_attention(q, k, v, return_weights=True)
    hint = say("提示：scores = q @ k.transpose(-2, -1) / sqrt(hd)，在最后一维 (键) 上 softmax，再乘 v。",
               "hint: scores = q @ k.transpose(-2, -1) / sqrt(hd), softmax over the last axis (keys), then @ v.")
    _close(weights, torch.tensor([[[[0.75, 0.25]]]]), "attention weights", hint, atol=1e-6, rtol=1e-6)
    _close(out, torch.tensor([[[[3.0, 1.0, 6.0, -1.0]]]]), "attention output", hint, atol=1e-5, rtol=1e-6)


@pytest.mark.symbol("scaled_dot_product_attention")
@pytest.mark.parametrize("scale, w1", [
    (None, 0.75),                       # default 1/sqrt(4) = 1/2: scores [ln 3, 0] -> 3/4
    (1.0, 0.9),                         # scores [2 ln 3, 0] -> 9 / (9 + 1)
    (0.25, math.sqrt(3) / (math.sqrt(3) + 1)),  # scores [ln 3 / 2, 0] -> sqrt 3 / (sqrt 3 + 1)
], ids=["default", "scale_1", "scale_0.25"])
def test_sdpa_scale_defaults_to_one_over_sqrt_head_dim(scale, w1):
    """``q·k1 = 2 ln 3``; the scores are ``[2 ln 3 · scale, 0]`` so ``w1 = 3^(2·scale) / (3^(2·scale) + 1)``.

    Default (``hd ** -0.5 = 1/2``): w1 = 3/4 -> [3, 1, 6, -1]. A given ``scale`` replaces it:
    1.0 -> w1 = 9/10; 0.25 (what ``1 / hd`` would give) -> w1 = sqrt 3 / (sqrt 3 + 1) ~ 0.634.
    """
    q, k, v = _tiny()
    attention = _attention()
    out = (attention.scaled_dot_product_attention(q, k, v) if scale is None
           else attention.scaled_dot_product_attention(q, k, v, scale=scale))
    expected = torch.tensor(_mix(w1, 1 - w1))[None, None, None]
    hint = say("提示：默认 scale = hd ** -0.5 (除以 sqrt(hd)，不是除以 hd，也不能省略)；给了 scale 参数就用它。",
               "hint: the default scale is hd ** -0.5 (divide by sqrt(hd), not by hd, and not left out); "
               "a given scale argument replaces it.")
    if isinstance(out, torch.Tensor) and out.shape == expected.shape:
        for wrong_w1, name in ((0.9, "no scale"), (math.sqrt(3) / (math.sqrt(3) + 1), "1 / hd")):
            if scale is None and torch.allclose(out, torch.tensor(_mix(wrong_w1, 1 - wrong_w1))[None, None, None],
                                                atol=1e-4):
                hint = say(f"你的结果正好是 “{name}” 时的答案：默认应乘 hd ** -0.5。",
                           f"your result is exactly what '{name}' gives: the default multiplies by hd ** -0.5.")
    _close(out, expected, f"scaled_dot_product_attention(scale={scale})", hint, atol=1e-5, rtol=1e-6)


@pytest.mark.symbol("scaled_dot_product_attention")
def test_sdpa_softmax_runs_over_keys_so_each_row_of_weights_sums_to_one():
    """Weights [b, h, s, t]: every query's row sums to 1 over the t keys (3 queries, 5 keys here);
    a softmax over the query axis (dim=-2) would make the columns sum to 1 instead."""
    q, k, v = torch.randn(2, 2, 3, 8), torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)
    _, weights = _attention().scaled_dot_product_attention(q, k, v, return_weights=True)
    assert_equal(list(weights.shape), [2, 2, 3, 5], "weights.shape ([b, h, s, t])")
    _close(weights.sum(-1), torch.ones(2, 2, 3), "weights.sum(-1)", say(
        "提示：softmax 要在键的维度 (dim=-1) 上做，不是查询的维度 (dim=-2)。",
        "hint: the softmax runs over the keys (dim=-1), not over the queries (dim=-2)."))


@pytest.mark.symbol("scaled_dot_product_attention")
def test_sdpa_weights_are_float32_for_bfloat16_inputs():
    """Half-precision inputs are scored and softmaxed in float32: ``return_weights`` gives
    float32 weights, while the output keeps the inputs' dtype (bfloat16)."""
    q, k, v = (x.to(torch.bfloat16) for x in (torch.randn(1, 2, 3, 8), torch.randn(1, 2, 4, 8),
                                              torch.randn(1, 2, 4, 8)))
    out, weights = _attention().scaled_dot_product_attention(q, k, v, return_weights=True)
    assert_equal(out.dtype, torch.bfloat16, "out.dtype for bfloat16 inputs")
    assert_equal(weights.dtype, torch.float32, say(
        "bfloat16 输入时 weights 的 dtype (先把 q、k 转成 float32 再算分数和 softmax)",
        "weights.dtype for bfloat16 inputs (turn q, k to float32 before the scores and the softmax)"))


@pytest.mark.symbol("scaled_dot_product_attention")
@pytest.mark.parametrize("s, expected", [
    (2, [V1, [3.0, 1.0, 6.0, -1.0]]),
    (1, [[3.0, 1.0, 6.0, -1.0]]),
], ids=["square_2x2", "one_query_after_cache_1x2"])
def test_sdpa_is_causal_by_hand(s, expected):
    """``is_causal=True`` with the tiny keys (2 of them), every query ``[ln 3, ln 3, 0, 0]``.

    - s = 2 (square): query 0 sees only key 0 -> exactly v1 = [4, 0, 8, 0]; query 1 sees
      both -> [3, 1, 6, -1].
    - s = 1 after 1 cached key (bottom-right): the single query is the newest token and
      sees both keys -> [3, 1, 6, -1] (a top-left mask would give v1).
    """
    q, k, v = _tiny(s)
    out = _attention().scaled_dot_product_attention(q, k, v, is_causal=True)
    _close(out, torch.tensor(expected)[None, None], f"scaled_dot_product_attention(is_causal=True), s={s}, t=2", say(
        "提示：is_causal 用 make_causal_mask(s, t) 加到分数上 (右下角对齐，对角线可见)，再做 softmax。",
        "hint: is_causal adds make_causal_mask(s, t) to the scores (bottom-right aligned, diagonal visible) "
        "before the softmax."), atol=1e-5, rtol=1e-6)


@pytest.mark.symbol("scaled_dot_product_attention")
@pytest.mark.parametrize("mask, expected", [
    ([True, False], V1),
    ([False, True], V2),
    ([True, True], [3.0, 1.0, 6.0, -1.0]),
], ids=["TF", "FT", "TT"])
def test_sdpa_bool_mask_true_means_may_attend(mask, expected):
    """As in torch: a bool mask says who *may* be attended. [True, False] keeps only key 0 ->
    v1; [False, True] -> v2; all True changes nothing -> [3, 1, 6, -1]."""
    q, k, v = _tiny()
    out = _attention().scaled_dot_product_attention(q, k, v, attn_mask=torch.tensor(mask))
    _close(out, torch.tensor(expected)[None, None, None], f"scaled_dot_product_attention(attn_mask={mask})", say(
        "提示：bool 掩码中 True 表示可以看：scores.masked_fill(~attn_mask, -inf)，不要把含义反过来。",
        "hint: in a bool mask True means 'may attend': scores.masked_fill(~attn_mask, -inf); "
        "do not invert it."), atol=1e-5, rtol=1e-6)


@pytest.mark.symbol("scaled_dot_product_attention")
@pytest.mark.parametrize("mask, expected", [
    ([0.0, INF], V1),
    ([0.0, LN3], [2.0, 2.0, 4.0, -2.0]),
    ([-LN3, 0.0], [2.0, 2.0, 4.0, -2.0]),
], ids=["0_-inf", "0_ln3", "-ln3_0"])
def test_sdpa_float_mask_is_added_to_the_scores(mask, expected):
    """A float mask is *added* to the scaled scores ``[ln 3, 0]``: + [0, -inf] keeps key 0 only
    -> v1; + [0, ln 3] or + [-ln 3, 0] makes the scores equal -> weights 1/2, 1/2 ->
    (v1 + v2) / 2 = [2, 2, 4, -2]."""
    q, k, v = _tiny()
    out = _attention().scaled_dot_product_attention(q, k, v, attn_mask=torch.tensor(mask))
    _close(out, torch.tensor(expected)[None, None, None], f"scaled_dot_product_attention(attn_mask={mask})", say(
        "提示：浮点掩码在 softmax 之前加到 (已缩放的) 分数上：scores + attn_mask；不是乘法，也不是 softmax 之后。",
        "hint: a float mask is added to the (scaled) scores before the softmax: scores + attn_mask; "
        "not multiplied, not after the softmax."), atol=1e-5, rtol=1e-6)


@pytest.mark.symbol("scaled_dot_product_attention")
def test_sdpa_query_with_no_visible_key_gives_zeros_not_nan():
    """Query 0 may see nothing (row all False): softmax of all -inf is 0/0 = NaN; like torch,
    the row's output is 0. Query 1 sees key 0 only -> v1."""
    q, k, v = _tiny(2)
    mask = torch.tensor([[False, False], [True, False]])
    out = _attention().scaled_dot_product_attention(q, k, v, attn_mask=mask)
    _close(out, torch.tensor([[0.0] * 4, V1])[None, None], "output with a fully masked query row", say(
        "提示：整行都是 -inf 的查询 softmax 得到 NaN；把这些行的权重置 0 "
        "(weights.masked_fill(torch.isneginf(scores).all(-1, keepdim=True), 0.0))。",
        "hint: a query whose scores are all -inf gets NaN from softmax; zero those rows' weights "
        "(weights.masked_fill(torch.isneginf(scores).all(-1, keepdim=True), 0.0))."), atol=1e-5, rtol=1e-6)


@pytest.mark.symbol("scaled_dot_product_attention")
def test_sdpa_rejects_different_head_counts():
    """q with 4 heads and k / v with 2 is GQA: the caller must ``repeat_kv`` first: ValueError."""
    q, k, v = torch.randn(1, 4, 3, 8), torch.randn(1, 2, 3, 8), torch.randn(1, 2, 3, 8)
    attention = _attention()
    expect_error(ValueError, lambda: attention.scaled_dot_product_attention(q, k, v),
                 "scaled_dot_product_attention(q with 4 heads, k/v with 2)")


# ===================================================================== repeat_kv


@pytest.mark.symbol("repeat_kv")
@pytest.mark.parametrize("n_rep", [1, 2, 4])
def test_repeat_kv_multiplies_the_head_axis(n_rep):
    """[b, g, t, hd] = [2, 3, 5, 4] -> [2, 3 * n_rep, 5, 4]; other axes unchanged."""
    out = _attention().repeat_kv(torch.randn(2, 3, 5, 4), n_rep)
    assert_equal(list(out.shape), [2, 3 * n_rep, 5, 4], f"repeat_kv(x [2, 3, 5, 4], {n_rep}).shape")


@pytest.mark.symbol("repeat_kv")
def test_repeat_kv_puts_the_copies_of_a_head_next_to_each_other():
    """KV head j serves query heads [j * n_rep, (j + 1) * n_rep). Two heads filled with 10 and
    20, n_rep = 3 -> heads 10, 10, 10, 20, 20, 20 (tiling with ``repeat`` gives 10, 20, 10, ...)."""
    x = torch.tensor([10.0, 20.0]).view(1, 2, 1, 1).expand(1, 2, 2, 3)  # [1, 2, 2, 3]
    out = _attention().repeat_kv(x, 3)
    expected = torch.tensor([10.0, 10.0, 10.0, 20.0, 20.0, 20.0]).view(1, 6, 1, 1).expand(1, 6, 2, 3)
    _close(out, expected, "repeat_kv(heads [10, 20], 3)", say(
        "提示：同一个 KV 头的副本要相邻 (repeat_interleave 的顺序)；x.repeat(1, n_rep, 1, 1) 是整体平铺，顺序不对。",
        "hint: the copies of one KV head must be adjacent (repeat_interleave order); "
        "x.repeat(1, n_rep, 1, 1) tiles the whole set of heads, the wrong order."), atol=0, rtol=0)


@pytest.mark.symbol("repeat_kv")
def test_repeat_kv_one_is_the_identity_and_zero_is_rejected():
    """n_rep = 1 (MHA) returns the same values; n_rep = 0 means a wrong head count: ValueError."""
    x = torch.randn(1, 2, 3, 4)
    attention = _attention()
    _close(attention.repeat_kv(x, 1), x, "repeat_kv(x, 1)", "", atol=0, rtol=0)
    expect_error(ValueError, lambda: attention.repeat_kv(x, 0), "repeat_kv(x, 0)")


# ===================================================================== prepare_attention_mask

M32 = torch.finfo(torch.float32).min


@pytest.mark.symbol("prepare_attention_mask")
def test_prepare_attention_mask_without_padding_returns_none():
    """No padding mask: nothing to combine; the attention applies plain causal masking itself."""
    mask = _attention().prepare_attention_mask(None, 2, 3, 3, torch.float32)
    assert mask is None, say(f"attention_mask=None 时应返回 None，实际返回 {type(mask).__name__}",
                             f"attention_mask=None should give None, got {type(mask).__name__}")


@pytest.mark.symbol("prepare_attention_mask")
def test_prepare_attention_mask_combines_left_padding_and_causality_by_hand():
    """Padding ``[[1, 1, 1], [0, 1, 1]]`` (row 1 has one left pad), s = t = 3. With
    M = finfo(float32).min, the [2, 1, 3, 3] mask is::

        row 0 (causal only)   row 1 (key 0 is padding as well)
        [[0, M, M],           [[M, M, M],   <- query 0 may see only key 0, a pad: nothing
         [0, 0, M],            [M, 0, M],
         [0, 0, 0]]            [M, 0, 0]]
    """
    padding = torch.tensor([[1, 1, 1], [0, 1, 1]])
    mask = _attention().prepare_attention_mask(padding, 2, 3, 3, torch.float32)
    expected = torch.tensor([
        [[0.0, M32, M32], [0.0, 0.0, M32], [0.0, 0.0, 0.0]],
        [[M32, M32, M32], [M32, 0.0, M32], [M32, 0.0, 0.0]],
    ])[:, None]
    _assert_mask_equal(mask, expected, "prepare_attention_mask([[1,1,1],[0,1,1]], 2, 3, 3)", say(
        "提示：形状 [b, 1, s, t]；可见 = 因果 (j <= t - s + i) 且 key j 不是 padding；不可见处填 finfo(dtype).min。",
        "hint: shape [b, 1, s, t]; visible = causal (j <= t - s + i) and key j not padding; "
        "the rest holds finfo(dtype).min."))


@pytest.mark.symbol("prepare_attention_mask")
@pytest.mark.parametrize("q_len, padding, expected", [
    (1, [[0, 1, 1], [1, 1, 1]], [[[0, 1, 1]], [[1, 1, 1]]]),
    (2, [[1, 1, 1, 1], [0, 1, 1, 1]], [[[1, 1, 1, 0], [1, 1, 1, 1]], [[0, 1, 1, 0], [0, 1, 1, 1]]]),
], ids=["1_after_2_cached", "2_after_2_cached"])
def test_prepare_attention_mask_with_cache_covers_cached_keys_bottom_right(q_len, padding, expected):
    """The padding mask covers cached + new tokens (t of them); query i sits at t - s + i.

    - s = 1, t = 3: the new token sees every real key: row 0 ``[M, 0, 0]``, row 1 ``[0, 0, 0]``.
    - s = 2, t = 4: queries at positions 2, 3. Row 0 ``[[0, 0, 0, M], [0, 0, 0, 0]]``; row 1
      (key 0 is a pad) ``[[M, 0, 0, M], [M, 0, 0, 0]]``. (``expected`` below: 1 = visible.)
    """
    padding = torch.tensor(padding)
    t = padding.shape[1]
    mask = _attention().prepare_attention_mask(padding, 2, q_len, t, torch.float32)
    visible = torch.tensor(expected, dtype=torch.bool)[:, None]
    want = torch.zeros(visible.shape).masked_fill(~visible, M32)
    _assert_mask_equal(mask, want, f"prepare_attention_mask(padding, 2, {q_len}, {t})", say(
        "提示：因果部分也要右下角对齐：torch.ones(s, t).tril(t - s)；padding 掩码包括缓存中的 token。",
        "hint: the causal part is bottom-right aligned too: torch.ones(s, t).tril(t - s); the padding mask "
        "includes the cached tokens."))


@pytest.mark.symbol("prepare_attention_mask")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_prepare_attention_mask_uses_the_finite_minimum_of_its_dtype(dtype):
    """Masked entries hold ``finfo(dtype).min`` (finite, so a query without any visible key
    does not turn into NaN); the mask has the requested dtype."""
    padding = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    mask = _attention().prepare_attention_mask(padding, 2, 4, 4, dtype)
    assert_equal(mask.dtype, dtype, "mask dtype")
    hint = say("提示：用 torch.finfo(dtype).min 而不是 -inf；先在 bool 上合并 padding 与因果，再填一次 min "
               "(两个 min 相加会溢出成 -inf)。",
               "hint: use torch.finfo(dtype).min, not -inf; combine padding and causality as booleans, then fill "
               "min once (adding two mins overflows to -inf).")
    assert torch.isfinite(mask).all(), say("掩码中出现了 -inf/NaN", "the mask contains -inf/NaN") + f"\n{hint}"
    assert_equal(mask.min().item(), torch.finfo(dtype).min, f"mask.min() for {dtype}")


@pytest.mark.symbol("prepare_attention_mask")
def test_prepare_attention_mask_passes_a_complete_4d_float_mask_through():
    """A 4-D float mask [b or 1, 1, s, t] is already the complete additive mask: it comes back
    unchanged, in the requested dtype. A 4-D bool mask, or one whose last two sizes are not
    (s, t), is a ValueError."""
    attention = _attention()
    full = torch.randn(2, 1, 3, 5)
    hint = say("提示：4-D 浮点掩码原样返回 (attention_mask.to(dtype))，不要当作 [b, t] 的 padding 掩码处理。",
               "hint: a 4-D float mask is returned as it is (attention_mask.to(dtype)), not treated as a [b, t] "
               "padding mask.")
    for mask, b in ((full, 2), (full[:1], 2)):
        out = attention.prepare_attention_mask(mask, b, 3, 5, torch.float64)
        _close(out, mask.double(), f"prepare_attention_mask(4-D float mask {list(mask.shape)}, float64)", hint,
               atol=0, rtol=0)
    expect_error(ValueError, lambda: attention.prepare_attention_mask(full > 0, 2, 3, 5, torch.float32),
                 "prepare_attention_mask(4-D bool mask)")
    expect_error(ValueError, lambda: attention.prepare_attention_mask(full[..., :4], 2, 3, 5, torch.float32),
                 "prepare_attention_mask(4-D mask [2, 1, 3, 4], q_len 3, kv_len 5)")


@pytest.mark.symbol("prepare_attention_mask")
def test_prepare_attention_mask_rejects_padding_without_the_cached_tokens():
    """Decoding 1 token after 5 cached: the padding mask must be [b, 6]; [b, 1] is a ValueError."""
    attention = _attention()
    expect_error(ValueError, lambda: attention.prepare_attention_mask(torch.ones(2, 1), 2, 1, 6, torch.float32),
                 "prepare_attention_mask(padding [2, 1], batch 2, q_len 1, kv_len 6)")


# ===================================================================== GroupedQueryAttention


@pytest.mark.symbol("GroupedQueryAttention.__init__")
@pytest.mark.parametrize("kv_heads", [4, 2, 1], ids=["mha", "gqa", "mqa"])
def test_gqa_parameters_have_hugging_face_names_and_shapes(kv_heads):
    """d = 64, h = 4, hd = 16, g = kv_heads: q_proj [h·hd, d] = [64, 64], k_proj and v_proj
    [g·hd, d] = [16·g, 64], o_proj [d, h·hd] = [64, 64]; four weights, no biases."""
    layer = _attention().GroupedQueryAttention(_config(kv_heads))
    shapes = {name: list(p.shape) for name, p in layer.state_dict().items()}
    expected = {"q_proj.weight": [64, 64], "k_proj.weight": [16 * kv_heads, 64],
                "v_proj.weight": [16 * kv_heads, 64], "o_proj.weight": [64, 64]}
    assert_equal(sorted(shapes), sorted(expected), say("state_dict 的键 (nn.Linear(..., bias=False))",
                                                       "state_dict keys (nn.Linear(..., bias=False))"))
    for name, shape in expected.items():
        assert_equal(shapes[name], shape, f"{name}.shape (g={kv_heads})")


@pytest.mark.symbol("GroupedQueryAttention.__init__")
def test_gqa_records_its_sizes_and_scale():
    """h = 4, g = 2, hd = 16: num_key_value_groups = 2, scaling = 16 ** -0.5 = 0.25; the
    default implementation is "sdpa"."""
    layer = _attention().GroupedQueryAttention(_config(2), layer_idx=3)
    for name, value in [("hidden_size", 64), ("num_heads", 4), ("num_key_value_heads", 2), ("head_dim", 16),
                        ("num_key_value_groups", 2), ("layer_idx", 3), ("attn_implementation", "sdpa")]:
        assert_equal(getattr(layer, name, None), value, f"layer.{name}")
    assert abs(float(layer.scaling) - 0.25) < 1e-12, say(
        f"layer.scaling 应为 head_dim ** -0.5 = 0.25，实际 {layer.scaling}",
        f"layer.scaling should be head_dim ** -0.5 = 0.25, got {layer.scaling}")


@pytest.mark.symbol("GroupedQueryAttention.__init__")
def test_gqa_rejects_an_unknown_attn_implementation():
    """Only "sdpa" and "eager" exist; a typo such as "flash" must fail at construction: ValueError."""
    attention, config = _attention(), _config(2)
    expect_error(ValueError, lambda: attention.GroupedQueryAttention(config, attn_implementation="flash"),
                 'GroupedQueryAttention(config, attn_implementation="flash")')


@pytest.mark.symbol("GroupedQueryAttention.forward")
@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_gqa_output_has_input_shape_and_no_cache_by_default(impl):
    """[b, s, d] = [2, 5, 64] in -> [2, 5, 64] out; present_key_value is None without use_cache."""
    layer = _attention().GroupedQueryAttention(_config(2), attn_implementation=impl).eval()
    result = layer(torch.randn(2, 5, 64))
    assert isinstance(result, tuple) and len(result) == 2, say(
        "forward 应返回 (output, present_key_value) 二元组", "forward should return the pair (output, present_key_value)")
    out, present = result
    assert_equal(list(out.shape), [2, 5, 64], "output.shape")
    assert present is None, say("未传 use_cache=True 时 present_key_value 应为 None",
                                "present_key_value should be None without use_cache=True")


@pytest.mark.symbol("GroupedQueryAttention.forward")
@pytest.mark.parametrize("kv_heads", [2, 1], ids=["gqa", "mqa"])
def test_gqa_cache_holds_g_heads_and_grows_along_the_sequence(kv_heads):
    """use_cache on 5 tokens -> (k, v) each [b, g, 5, hd] = [2, g, 5, 16] (g heads, not the
    h repeated ones); one more token with that cache -> [2, g, 6, 16]."""
    layer = _attention().GroupedQueryAttention(_config(kv_heads)).eval()
    _, present = layer(torch.randn(2, 5, 64), use_cache=True)
    assert isinstance(present, tuple) and len(present) == 2, say(
        "use_cache=True 时 present_key_value 应为 (k, v)", "with use_cache=True present_key_value should be (k, v)")
    hint = say("提示：缓存 repeat_kv 之前的 g 个头，沿序列维 (dim=2) 拼接。",
               "hint: cache the g heads before repeat_kv, concatenated along the sequence axis (dim=2).")
    for name, tensor in zip("kv", present, strict=True):
        _equal(list(tensor.shape), [2, kv_heads, 5, 16], f"present {name}.shape after 5 tokens", hint)
    out, present = layer(torch.randn(2, 1, 64), past_key_value=present, use_cache=True)
    assert_equal(list(out.shape), [2, 1, 64], "output.shape of the decoding step")
    for name, tensor in zip("kv", present, strict=True):
        _equal(list(tensor.shape), [2, kv_heads, 6, 16], f"present {name}.shape after 5 + 1 tokens", hint)


@pytest.mark.symbol("GroupedQueryAttention.forward")
def test_gqa_rejects_a_wrong_hidden_size():
    """A [1, 3, 32] input to a d = 64 layer is a config mismatch: ValueError, not a matmul error."""
    layer = _attention().GroupedQueryAttention(_config(2))
    expect_error(ValueError, lambda: layer(torch.randn(1, 3, 32)), "layer(hidden_states [1, 3, 32]) with hidden_size=64")


@pytest.mark.symbol("GroupedQueryAttention.__init__")
def test_multi_head_attention_is_gqa_with_one_kv_head_per_query_head():
    """``MultiHeadAttention`` ignores the config's g and uses g = h = 4: k_proj [64, 64].
    Loaded with the weights of a ``GroupedQueryAttention`` built with g = 4, it gives the
    same output exactly (same module, same computation)."""
    attention = _attention()
    mha = attention.MultiHeadAttention(_config(2)).eval()
    assert_equal(mha.num_key_value_heads, 4, "MultiHeadAttention(config with g=2).num_key_value_heads")
    assert_equal(list(mha.k_proj.weight.shape), [64, 64], "MultiHeadAttention k_proj.weight.shape")
    gqa = attention.GroupedQueryAttention(_config(4)).eval()
    mha.load_state_dict(gqa.state_dict())
    x = torch.randn(2, 5, 64)
    with torch.no_grad():
        _close(mha(x)[0], gqa(x)[0], "MultiHeadAttention vs GroupedQueryAttention(g=h)", "", atol=0, rtol=0)
