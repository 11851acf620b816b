"""Lesson 02, basic tier: the contract of every target on small, hand-checkable cases.

Every expected value below is worked out by hand in the test's docstring (or
follows from a stated property); none is copied from running the reference.

Notation: ``d = hidden_size``, ``V = vocab_size``, ``hd = head_dim``. RoPE uses
Hugging Face's layout: feature ``i`` pairs with feature ``i + hd/2``, so at
position ``p`` the tables are ``cos = [cos(p·f0), cos(p·f1), …, cos(p·f0), cos(p·f1), …]``
with ``f_k = base ** (-2k / hd)``.

The learner's code is imported inside each test (``learner(...)``), so a module
that fails to import is one failing test, not a broken suite. Norm and
embedding constructors are not targets, so every test also runs a ``forward``:
a test that only read the parameters would pass on a fresh stub.
"""

from __future__ import annotations

import math

import pytest
import torch

from intro2llm_cli.testkit import assert_close, assert_equal, expect_error, learner, say

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
SQRT_1_5 = math.sqrt(1.5)  # LayerNorm of [1, 2, 3]: (x - 2) / sqrt(2/3) = [-sqrt(1.5), 0, sqrt(1.5)]


def _norm():
    return learner("model.norm")


def _emb():
    return learner("model.embedding")


def _close(actual, expected, what: str, hint: tuple[str, str] | None = None, **tol) -> None:
    assert_close(actual, expected, what, hint=hint, **tol)


def _set(param: torch.nn.Parameter, values) -> None:
    with torch.no_grad():
        param.copy_(torch.as_tensor(values, dtype=param.dtype))


def _parameter_shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {name: list(p.shape) for name, p in module.named_parameters()}


# ===================================================================== LayerNorm


@pytest.mark.symbol("LayerNorm.forward")
def test_layernorm_parameters_are_weight_ones_and_bias_zeros():
    """``LayerNorm(5)`` has exactly ``weight [5]`` = ones and ``bias [5]`` = zeros (torch's
    names, so state dicts load both ways), and with them the output of any row has mean 0
    and (biased) variance 1: here ``[0, 1, 2, 3, 4]`` (mean 2, variance 2) and its negation."""
    norm = _norm().LayerNorm(5, eps=1e-12)
    assert_equal(_parameter_shapes(norm), {"weight": [5], "bias": [5]}, "LayerNorm(5) parameters {name: shape}")
    _close(norm.weight.detach(), torch.ones(5), "LayerNorm(5).weight at initialisation")
    _close(norm.bias.detach(), torch.zeros(5), "LayerNorm(5).bias at initialisation")
    x = torch.stack([torch.arange(5.0), -torch.arange(5.0)])
    out = norm(x)
    _close(out.mean(-1), torch.zeros(2), "LayerNorm(5)(x).mean(-1)", atol=1e-6)
    _close(out.pow(2).mean(-1), torch.ones(2), "LayerNorm(5)(x).pow(2).mean(-1) (the variance)", atol=1e-5,
           hint=("方差应为有偏方差（除以 d）：用 .pow(2).mean(-1)，不要用 .var()（默认 unbiased=True）",
                 "use the biased variance (divide by d): .pow(2).mean(-1), not .var() (unbiased by default)"))


@pytest.mark.parametrize(
    "eps, expected",
    [
        # mean 2, biased variance (1 + 0 + 1) / 3 = 2/3; eps = 1/3 makes var + eps = 1.
        (1.0 / 3.0, [-1.0, 0.0, 1.0]),
        # eps ~ 0: divide by sqrt(2/3), i.e. multiply by sqrt(1.5) = 1.2247.
        (1e-12, [-SQRT_1_5, 0.0, SQRT_1_5]),
    ],
    ids=["eps=1/3", "eps=1e-12"],
)
@pytest.mark.symbol("LayerNorm.forward")
def test_layernorm_of_1_2_3_by_hand(eps, expected):
    """``x = [1, 2, 3]``: mean 2, centred ``[-1, 0, 1]``, biased variance ``2/3``.
    ``eps`` goes *inside* the square root: ``[-1, 0, 1] / sqrt(2/3 + eps)``.
    With ``eps = 1/3`` that is ``[-1, 0, 1]``; the unbiased variance (1) would give
    ``[-0.866, 0, 0.866]``, eps outside the root ``[-0.869, 0, 0.869]``."""
    norm = _norm().LayerNorm(3, eps=eps)
    out = norm(torch.tensor([1.0, 2.0, 3.0]))
    _close(out, torch.tensor(expected), f"LayerNorm(3, eps={eps:.3g})([1, 2, 3])", atol=1e-5,
           hint=("检查：有偏方差（除以 d）；eps 加在方差上、在开方之内：rsqrt(var + eps)",
                 "check: biased variance (divide by d); eps is added to the variance, inside the root: rsqrt(var + eps)"))


@pytest.mark.symbol("LayerNorm.forward")
def test_layernorm_scales_by_weight_then_shifts_by_bias_by_hand():
    """Normalised ``[1, 2, 3]`` with ``eps = 1/3`` is ``[-1, 0, 1]``; with weight ``[2, 5, 0.5]``
    and bias ``[1, -1, -1]``: ``[-1·2 + 1, 0·5 - 1, 1·0.5 - 1] = [-1, -1, -0.5]``."""
    norm = _norm().LayerNorm(3, eps=1.0 / 3.0)
    _set(norm.weight, [2.0, 5.0, 0.5])
    _set(norm.bias, [1.0, -1.0, -1.0])
    out = norm(torch.tensor([1.0, 2.0, 3.0]))
    _close(out, torch.tensor([-1.0, -1.0, -0.5]), "LayerNorm(3, eps=1/3) with weight [2, 5, 0.5], bias [1, -1, -1]",
           atol=1e-5, hint=("先标准化，再 * weight + bias（不要把 weight 和 bias 搞反）",
                            "normalise first, then * weight + bias (weight and bias not swapped)"))


@pytest.mark.symbol("LayerNorm.forward")
def test_layernorm_normalises_each_feature_vector_on_its_own():
    """Input ``[2, 2, 3]``; each last-axis vector is normalised alone (eps ~ 0):
    ``[1, 2, 3]`` and ``[10, 20, 30]`` -> ``[-a, 0, a]`` (scaling does not matter),
    ``[3, 2, 1]`` -> ``[a, 0, -a]``, ``[-5, 0, 5]`` -> ``[-a, 0, a]``, with ``a = sqrt(1.5)``.
    Statistics over the batch or sequence axis would mix the four vectors."""
    a = SQRT_1_5
    x = torch.tensor([[[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]], [[3.0, 2.0, 1.0], [-5.0, 0.0, 5.0]]])
    expected = torch.tensor([[[-a, 0.0, a], [-a, 0.0, a]], [[a, 0.0, -a], [-a, 0.0, a]]])
    out = _norm().LayerNorm(3, eps=1e-12)(x)
    _close(out, expected, "LayerNorm(3)(x) for x of shape [2, 2, 3]", atol=1e-5,
           hint=("均值和方差只在最后一维上求：mean(-1, keepdim=True)（keepdim 让形状 [..., 1] 能广播）",
                 "mean and variance over the last axis only: mean(-1, keepdim=True) (keepdim keeps [..., 1] broadcastable)"))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(8,), (3, 8), (2, 5, 8), (2, 3, 4, 8)], ids=str)
@pytest.mark.symbol("LayerNorm.forward")
def test_layernorm_returns_input_shape_and_dtype(shape, dtype):
    """Output shape = input shape; output dtype = input dtype, both when the module is cast
    to the input's dtype (``.to(dtype)``) and when it keeps float32 parameters."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).to(dtype)
    for module_dtype in (dtype, torch.float32):
        out = _norm().LayerNorm(8).to(module_dtype)(x)
        what = f"LayerNorm(8) with {module_dtype} parameters on a {dtype} input of shape {list(shape)}"
        assert isinstance(out, torch.Tensor), say(f"{what}：应返回 Tensor", f"{what}: should return a Tensor")
        assert_equal(list(out.shape), list(shape), f"{what}: shape")
        assert out.dtype == dtype, say(
            f"{what}：输出 dtype 应为 {dtype}，实际 {out.dtype}。在 float32 中计算，最后 .to(input_dtype) 转回",
            f"{what}: output dtype should be {dtype}, got {out.dtype}. Compute in float32, then .to(input_dtype) at the end",
        )


# ===================================================================== RMSNorm


@pytest.mark.symbol("RMSNorm.forward")
def test_rmsnorm_parameter_is_weight_ones_only():
    """``RMSNorm(4)`` has exactly ``weight [4]`` = ones (no bias, as in Llama), and with it the
    output of any row has mean square 1: ``[1, 2, 3, 4]`` (mean square 7.5) and ``[0, 0, 0, 5]``."""
    norm = _norm().RMSNorm(4, eps=1e-12)
    assert_equal(_parameter_shapes(norm), {"weight": [4]}, "RMSNorm(4) parameters {name: shape}")
    _close(norm.weight.detach(), torch.ones(4), "RMSNorm(4).weight at initialisation")
    out = norm(torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 5.0]]))
    _close(out.pow(2).mean(-1), torch.ones(2), "RMSNorm(4)(x).pow(2).mean(-1)", atol=1e-5,
           hint=("RMSNorm 除以均方根 sqrt(mean(x²))，不是 L2 范数 sqrt(sum(x²))",
                 "RMSNorm divides by the root mean square sqrt(mean(x²)), not the L2 norm sqrt(sum(x²))"))


@pytest.mark.parametrize(
    "eps, expected",
    [
        # mean square (9 + 16) / 2 = 12.5; eps ~ 0 (eps must be > 0): divide by sqrt(12.5) = 3.5355.
        (1e-12, [3.0 / math.sqrt(12.5), 4.0 / math.sqrt(12.5)]),
        # eps = 3.5: 12.5 + 3.5 = 16, sqrt = 4.
        (3.5, [0.75, 1.0]),
    ],
    ids=["eps=1e-12", "eps=3.5"],
)
@pytest.mark.symbol("RMSNorm.forward")
def test_rmsnorm_of_3_4_by_hand(eps, expected):
    """``x = [3, 4]``: mean square ``(9 + 16) / 2 = 12.5``, so ``x / sqrt(12.5 + eps)``.
    eps ~ 0: ``[0.8485, 1.1314]``; eps = 3.5: ``[3, 4] / 4 = [0.75, 1]`` (eps outside the root
    would give ``[3, 4] / 7.04``; the L2 norm ``[3, 4] / 5``; subtracting the mean ``[-1, 1]``)."""
    norm = _norm().RMSNorm(2, eps=eps)
    out = norm(torch.tensor([3.0, 4.0]))
    _close(out, torch.tensor(expected), f"RMSNorm(2, eps={eps:g})([3, 4])", atol=1e-5,
           hint=("x * rsqrt(mean(x²) + eps)：eps 在开方之内；不减均值；除以均方根而不是 L2 范数",
                 "x * rsqrt(mean(x²) + eps): eps inside the root; no mean subtraction; root *mean* square, not the L2 norm"))


@pytest.mark.symbol("RMSNorm.forward")
def test_rmsnorm_does_not_subtract_the_mean():
    """``[2, 2, 2, 2]``: mean square 4, so the output is ``[1, 1, 1, 1]``. Subtracting the mean
    first (LayerNorm's step) would give zeros."""
    out = _norm().RMSNorm(4, eps=1e-12)(torch.full((4,), 2.0))
    _close(out, torch.ones(4), "RMSNorm(4)([2, 2, 2, 2])", atol=1e-5,
           hint=("RMSNorm 不减均值：variance = x.pow(2).mean(-1, keepdim=True)",
                 "RMSNorm does not subtract the mean: variance = x.pow(2).mean(-1, keepdim=True)"))


@pytest.mark.symbol("RMSNorm.forward")
def test_rmsnorm_scales_by_weight_by_hand():
    """eps = 3.5 turns ``[3, 4]`` into ``[0.75, 1]``; weight ``[2, -3]`` gives ``[1.5, -3]``."""
    norm = _norm().RMSNorm(2, eps=3.5)
    _set(norm.weight, [2.0, -3.0])
    _close(norm(torch.tensor([3.0, 4.0])), torch.tensor([1.5, -3.0]), "RMSNorm(2, eps=3.5) with weight [2, -3]",
           atol=1e-5, hint=("归一化之后逐元素乘 self.weight", "multiply element-wise by self.weight after normalising"))


@pytest.mark.symbol("RMSNorm.forward")
def test_rmsnorm_normalises_each_feature_vector_on_its_own():
    """Rows ``[3, 4]`` and ``[6, 8]`` (a square ``[2, 2]`` input, so a missing ``keepdim``
    broadcasts silently instead of failing) both become ``[3, 4] / sqrt(12.5)``: each row
    is divided by its own root mean square (3.5355 and 7.0711)."""
    row = [3.0 / math.sqrt(12.5), 4.0 / math.sqrt(12.5)]
    out = _norm().RMSNorm(2, eps=1e-12)(torch.tensor([[3.0, 4.0], [6.0, 8.0]]))
    _close(out, torch.tensor([row, row]), "RMSNorm(2)([[3, 4], [6, 8]])", atol=1e-5,
           hint=("均方值只在最后一维求，并保留维度：h.pow(2).mean(-1, keepdim=True)，形状 [..., 1]",
                 "mean square over the last axis, keeping it: h.pow(2).mean(-1, keepdim=True), shape [..., 1]"))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(8,), (3, 8), (2, 5, 8), (2, 3, 4, 8)], ids=str)
@pytest.mark.symbol("RMSNorm.forward")
def test_rmsnorm_returns_input_shape_and_dtype(shape, dtype):
    """Output shape = input shape; output dtype = input dtype, both when the module is cast
    to the input's dtype and when it keeps a float32 weight (where Llama's ``weight * h``
    alone would be promoted to float32)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).to(dtype)
    for module_dtype in (dtype, torch.float32):
        out = _norm().RMSNorm(8).to(module_dtype)(x)
        what = f"RMSNorm(8) with a {module_dtype} weight on a {dtype} input of shape {list(shape)}"
        assert isinstance(out, torch.Tensor), say(f"{what}：应返回 Tensor", f"{what}: should return a Tensor")
        assert_equal(list(out.shape), list(shape), f"{what}: shape")
        assert out.dtype == dtype, say(
            f"{what}：输出 dtype 应为 {dtype}，实际 {out.dtype}。"
            "return (self.weight * h.to(input_dtype)).to(input_dtype)：外层 .to 防止 float32 权重把结果提升成 float32",
            f"{what}: output dtype should be {dtype}, got {out.dtype}. "
            "return (self.weight * h.to(input_dtype)).to(input_dtype): the outer .to stops a float32 weight promoting the result",
        )


@pytest.mark.parametrize("weight_dtype", [torch.bfloat16, torch.float32], ids=str)
@pytest.mark.symbol("RMSNorm.forward")
def test_rmsnorm_rounds_x_over_rms_to_bfloat16_before_the_weight_like_llama(weight_dtype):
    """Llama's order, worked out in bfloat16 (8 significant bits). ``x = [4, 4, 2, 0]``: mean
    square ``(16 + 16 + 4 + 0) / 4 = 9``, rms 3, ``x / rms = [4/3, 4/3, 2/3, 0]``.

    - Round to bfloat16 first: ``4/3 = 170.67 / 128 -> 171 / 128 = 1.3359375``,
      ``2/3 -> 171 / 256 = 0.66796875``.
    - Times weight 5: ``6.6796875`` and ``3.33984375``, rounded to bfloat16 (steps 1/32 and
      1/64): ``6.6875`` and ``3.34375``. Expected ``[6.6875, 6.6875, 3.34375, 0]``.
    - Multiplying first and rounding once (``(weight * h).to(bfloat16)``) gives
      ``6.6667 -> 6.65625`` and ``3.3333 -> 3.328125``: a different number, not Llama's.

    Same result with a bfloat16 or a float32 weight (the product is exact in float32)."""
    norm = _norm().RMSNorm(4, eps=1e-12).to(weight_dtype)
    _set(norm.weight, [5.0] * 4)
    out = norm(torch.tensor([4.0, 4.0, 2.0, 0.0], dtype=torch.bfloat16))
    _close(out, torch.tensor([6.6875, 6.6875, 3.34375, 0.0], dtype=torch.bfloat16),
           f"RMSNorm(4) with {weight_dtype} weight 5 on bfloat16 [4, 4, 2, 0]", atol=0, rtol=0,
           hint=("Llama 的顺序：先 h.to(input_dtype) 舍入，再乘 self.weight，最后 .to(input_dtype)",
                 "Llama's order: round with h.to(input_dtype) first, then multiply by self.weight, then .to(input_dtype)"))


# ===================================================================== TokenEmbedding


@pytest.mark.symbol("TokenEmbedding.forward")
def test_token_embedding_weight_is_vocab_by_hidden_and_rows_are_looked_up():
    """``TokenEmbedding(5, 3)`` has exactly ``weight [5, 3]`` (``nn.Embedding``'s name and
    shape). With ``weight[i] = [10i, 10i + 1, 10i + 2]``, ids ``[[2, 0, 4]]`` give
    ``[[[20, 21, 22], [0, 1, 2], [40, 41, 42]]]``."""
    emb = _emb().TokenEmbedding(5, 3)
    assert_equal(_parameter_shapes(emb), {"weight": [5, 3]}, "TokenEmbedding(5, 3) parameters {name: shape}")
    _set(emb.weight, [[10.0 * i + j for j in range(3)] for i in range(5)])
    out = emb(torch.tensor([[2, 0, 4]]))
    expected = torch.tensor([[[20.0, 21.0, 22.0], [0.0, 1.0, 2.0], [40.0, 41.0, 42.0]]])
    _close(out, expected, "TokenEmbedding(5, 3)([[2, 0, 4]])", atol=0, rtol=0,
           hint=("第 i 个 id 换成 self.weight 的第 id 行：self.weight[input_ids]",
                 "replace every id by its row of self.weight: self.weight[input_ids]"))


@pytest.mark.parametrize("shape", [(5,), (2, 3), (3, 2), (2, 3, 4)], ids=str)
@pytest.mark.symbol("TokenEmbedding.forward")
def test_token_embedding_output_shape_is_ids_shape_plus_hidden(shape):
    """ids of shape ``S`` give ``S + (d,)``: ``[2, 3]`` -> ``[2, 3, 6]``, and ``[3, 2]`` ->
    ``[3, 2, 6]`` (non-square, so a transposed lookup shows)."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 7, shape, generator=g)
    out = _emb().TokenEmbedding(7, 6)(ids)
    assert isinstance(out, torch.Tensor), say("应返回 Tensor", "should return a Tensor")
    assert_equal(list(out.shape), [*shape, 6], f"TokenEmbedding(7, 6)(ids of shape {list(shape)}).shape")


@pytest.mark.symbol("TokenEmbedding.forward")
def test_token_embedding_output_has_the_weight_dtype():
    """A table cast to bfloat16 returns bfloat16 rows (no float32 copy of the table)."""
    emb = _emb().TokenEmbedding(7, 4).to(torch.bfloat16)
    out = emb(torch.tensor([[1, 2, 3]]))
    assert_equal(out.dtype, torch.bfloat16, "TokenEmbedding(7, 4).to(bfloat16)(ids).dtype")


@pytest.mark.parametrize("bad_id", [10, 13, -1], ids=lambda v: f"id={v}")
@pytest.mark.symbol("TokenEmbedding.forward")
def test_token_embedding_rejects_ids_outside_the_vocabulary_naming_the_id(bad_id):
    """``vocab_size = 10``: ids must lie in ``[0, 10)``. 10 and 13 would raise an IndexError
    deep inside torch; -1 would silently read the *last* row (Python's negative indexing).
    Both must be a ``ValueError`` whose message names the bad id."""
    emb = _emb().TokenEmbedding(10, 4)
    exc = expect_error(ValueError, lambda: emb(torch.tensor([[1, bad_id, 2]])),
                       f"TokenEmbedding(10, 4)([[1, {bad_id}, 2]])")
    assert str(bad_id) in str(exc), say(
        f"ValueError 的消息应写出越界的 id {bad_id}，实际消息：{exc}",
        f"the ValueError message should name the bad id {bad_id}; got: {exc}",
    )


@pytest.mark.symbol("TokenEmbedding.forward")
def test_token_embedding_rejects_float_ids():
    """``tensor([1.0, 2.0])`` is not a tensor of ids: ``ValueError`` (suggesting ``.long()``)."""
    emb = _emb().TokenEmbedding(10, 4)
    expect_error(ValueError, lambda: emb(torch.tensor([1.0, 2.0])), "TokenEmbedding(10, 4)(tensor([1.0, 2.0]))")


# ===================================================================== RotaryEmbedding


@pytest.mark.parametrize(
    "head_dim, base, expected",
    [
        # base ** (-2k / hd): 100 ** (0 / 4) = 1, 100 ** (-2 / 4) = 1 / 10.
        (4, 100.0, [1.0, 0.1]),
        # 10000 ** (-2k / 8) = 10 ** (-k).
        (8, 10000.0, [1.0, 0.1, 0.01, 0.001]),
        # one pair: base ** 0 = 1, whatever the base.
        (2, 500000.0, [1.0]),
    ],
    ids=["hd=4,base=100", "hd=8,base=1e4", "hd=2,base=5e5"],
)
@pytest.mark.symbol("RotaryEmbedding._compute_inv_freq")
def test_inv_freq_by_hand(head_dim, base, expected):
    """``inv_freq[k] = 1 / base ** (2k / hd)`` for ``k = 0 .. hd/2 - 1``, float32, shape
    ``[hd/2]``: one frequency per feature pair, the fastest (1 radian per position) first."""
    rope = _emb().RotaryEmbedding(head_dim, max_position_embeddings=8, base=base)
    inv_freq = rope._compute_inv_freq()
    _close(inv_freq, torch.tensor(expected), f"RotaryEmbedding({head_dim}, base={base:g})._compute_inv_freq()",
           rtol=1e-6, atol=0,
           hint=("指数是 arange(0, hd, 2) / hd（步长 2，共 hd/2 个），结果取倒数：1 / base ** exponents",
                 "the exponents are arange(0, hd, 2) / hd (step 2, hd/2 of them), and the result is 1 / base ** exponents"))


@pytest.mark.symbol("RotaryEmbedding._compute_inv_freq")
def test_inv_freq_is_a_non_persistent_buffer():
    """``inv_freq`` is a buffer (it moves with ``.to(device)``) but not part of the state dict,
    as in Hugging Face Llama: it is rebuilt from ``head_dim`` and ``base``."""
    rope = _emb().RotaryEmbedding(8, max_position_embeddings=16)
    buffers = dict(rope.named_buffers())
    assert "inv_freq" in buffers, say("inv_freq 应注册为 buffer", "inv_freq should be registered as a buffer")
    _close(buffers["inv_freq"], torch.tensor([1.0, 0.1, 0.01, 0.001]), "RotaryEmbedding(8).inv_freq", rtol=1e-6, atol=0)
    assert "inv_freq" not in rope.state_dict(), say(
        "inv_freq 不应出现在 state_dict 中（非持久 buffer）",
        "inv_freq must not be in the state dict (a non-persistent buffer)",
    )


@pytest.mark.symbol("RotaryEmbedding._set_cos_sin_cache")
def test_cos_sin_caches_are_non_persistent_buffers_with_one_row_per_position():
    """``RotaryEmbedding(8, 16)`` caches ``cos_cached`` and ``sin_cached`` of shape ``[16, 8]``,
    float32, as non-persistent buffers: the state dict of the whole module is empty."""
    rope = _emb().RotaryEmbedding(8, max_position_embeddings=16)
    buffers = dict(rope.named_buffers())
    for name in ("cos_cached", "sin_cached"):
        assert name in buffers, say(f"{name} 应注册为 buffer（register_buffer）",
                                    f"{name} should be registered as a buffer (register_buffer)")
        assert_equal(list(buffers[name].shape), [16, 8], f"RotaryEmbedding(8, 16).{name}.shape")
        assert_equal(buffers[name].dtype, torch.float32, f"RotaryEmbedding(8, 16).{name}.dtype")
    assert_equal(sorted(rope.state_dict()), [], "keys of RotaryEmbedding(8, 16).state_dict() (persistent=False)")


@pytest.mark.symbol("RotaryEmbedding._set_cos_sin_cache")
def test_cos_sin_at_position_0_are_ones_and_zeros():
    """Position 0 rotates by angle 0: ``cos = 1``, ``sin = 0`` in every feature."""
    rope = _emb().RotaryEmbedding(8, max_position_embeddings=16)
    hint = ("位置从 0 开始：positions = torch.arange(seq_len)", "positions start at 0: positions = torch.arange(seq_len)")
    _close(rope.cos_cached[0], torch.ones(8), "cos_cached[0]", hint=hint)
    _close(rope.sin_cached[0], torch.zeros(8), "sin_cached[0]", hint=hint)


@pytest.mark.parametrize("position", [1, 2, 7])
@pytest.mark.symbol("RotaryEmbedding._set_cos_sin_cache")
def test_cos_sin_at_position_p_for_head_dim_4_base_100_by_hand(position):
    """hd = 4, base = 100: ``inv_freq = [1, 0.1]``, so position ``p`` turns pair 0 (features
    0 and 2) by ``p`` radians and pair 1 (features 1 and 3) by ``0.1·p``:
    ``cos_cached[p] = [cos p, cos 0.1p, cos p, cos 0.1p]`` (``cat(freqs, freqs)``, not
    ``[cos p, cos p, cos 0.1p, cos 0.1p]``, the interleaved layout), same for sin."""
    rope = _emb().RotaryEmbedding(4, max_position_embeddings=8, base=100.0)
    p = float(position)
    angles = [p, 0.1 * p, p, 0.1 * p]
    hint = ("emb = torch.cat((freqs, freqs), dim=-1)：第 i 维与第 i + hd/2 维共用一个角度（不是 repeat_interleave）",
            "emb = torch.cat((freqs, freqs), dim=-1): feature i shares its angle with i + hd/2 (not repeat_interleave)")
    _close(rope.cos_cached[position], torch.tensor([math.cos(a) for a in angles]), f"cos_cached[{position}]",
           atol=1e-6, hint=hint)
    _close(rope.sin_cached[position], torch.tensor([math.sin(a) for a in angles]), f"sin_cached[{position}]",
           atol=1e-6, hint=hint)


@pytest.mark.parametrize(
    "positions, expected_shape",
    [((5,), [5, 8]), ((1, 5), [1, 5, 8]), ((3, 4), [3, 4, 8])],
    ids=["[s]", "[1,s]", "[b,s]"],
)
@pytest.mark.symbol("RotaryEmbedding.forward")
def test_cos_sin_shapes_for_1d_and_2d_position_ids(positions, expected_shape):
    """``position_ids [s]`` -> cos, sin ``[s, hd]``; ``[b, s]`` -> ``[b, s, hd]`` (hd = 8)."""
    g = torch.Generator().manual_seed(0)
    position_ids = torch.randint(0, 16, positions, generator=g)
    result = _emb().RotaryEmbedding(8, max_position_embeddings=16)(position_ids)
    assert isinstance(result, tuple) and len(result) == 2, say(
        "forward 应返回 (cos, sin) 二元组", "forward should return the pair (cos, sin)")
    cos, sin = result
    assert_equal(list(cos.shape), expected_shape, f"cos.shape for position_ids of shape {list(positions)}")
    assert_equal(list(sin.shape), expected_shape, f"sin.shape for position_ids of shape {list(positions)}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.symbol("RotaryEmbedding.forward")
def test_cos_sin_have_the_requested_dtype(dtype):
    """``rope(position_ids, dtype=dtype)`` returns both tables in ``dtype`` (that of q / k);
    the cache itself stays float32."""
    rope = _emb().RotaryEmbedding(8, max_position_embeddings=16)
    cos, sin = rope(torch.arange(4)[None], dtype=dtype)
    assert_equal(cos.dtype, dtype, f"cos.dtype with dtype={dtype}")
    assert_equal(sin.dtype, dtype, f"sin.dtype with dtype={dtype}")


@pytest.mark.symbol("RotaryEmbedding.forward")
def test_cos_sin_rows_follow_position_ids_not_their_index():
    """hd = 2, so ``inv_freq = [1]`` and position ``p`` has angle ``p``. ``position_ids
    [[5, 0, 3]]`` (as in a KV cache or left padding, positions need not be ``0, 1, 2``) gives
    ``cos = [[[cos 5]*2, [1, 1], [cos 3]*2]]`` and ``sin = [[[sin 5]*2, [0, 0], [sin 3]*2]]``
    (and the sin table, not the cos table, in the second slot)."""
    rope = _emb().RotaryEmbedding(2, max_position_embeddings=8)
    cos, sin = rope(torch.tensor([[5, 0, 3]]))
    hint = ("按位置取表：self.cos_cached[position_ids]（不是 cos_cached[:seq_len]）",
            "look rows up by position: self.cos_cached[position_ids] (not cos_cached[:seq_len])")
    _close(cos, torch.tensor([[[math.cos(p)] * 2 for p in (5, 0, 3)]]), "cos for position_ids [[5, 0, 3]]",
           atol=1e-6, hint=hint)
    _close(sin, torch.tensor([[[math.sin(p)] * 2 for p in (5, 0, 3)]]), "sin for position_ids [[5, 0, 3]]",
           atol=1e-6, hint=hint)


# ===================================================================== rotate_half


@pytest.mark.parametrize(
    "x, expected",
    [
        # halves [1, 2] | [3, 4]  ->  [-3, -4] | [1, 2]
        ([1.0, 2.0, 3.0, 4.0], [-3.0, -4.0, 1.0, 2.0]),
        # halves [1, 2, 3] | [4, 5, 6]  ->  [-4, -5, -6] | [1, 2, 3]
        ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [-4.0, -5.0, -6.0, 1.0, 2.0, 3.0]),
        ([7.0, -2.0], [2.0, 7.0]),
    ],
    ids=["hd=4", "hd=6", "hd=2"],
)
@pytest.mark.symbol("rotate_half")
def test_rotate_half_by_hand(x, expected):
    """Split the last axis in halves ``x1 | x2`` and return ``-x2 | x1``: pair ``(x[i], x[i + hd/2])``
    becomes ``(-x[i + hd/2], x[i])``, a 90-degree turn. Not the interleaved pairs
    ``(x[0], x[1])``, which would give ``[-2, 1, -4, 3]`` for ``[1, 2, 3, 4]``."""
    out = _emb().rotate_half(torch.tensor(x))
    _close(out, torch.tensor(expected), f"rotate_half({x})", atol=0, rtol=0,
           hint=("x1 = x[..., :hd//2]，x2 = x[..., hd//2:]，返回 cat((-x2, x1), -1)：负号在后一半上",
                 "x1 = x[..., :hd//2], x2 = x[..., hd//2:], return cat((-x2, x1), -1): the minus goes on the second half"))


@pytest.mark.symbol("rotate_half")
def test_rotate_half_twice_negates_and_keeps_the_shape():
    """Two 90-degree turns are a half turn: ``rotate_half(rotate_half(x)) == -x`` for any
    ``[..., hd]`` tensor; the shape is kept (here ``[2, 3, 5, 8]``)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 8, generator=g)
    rotate_half = _emb().rotate_half
    once = rotate_half(x)
    assert_equal(list(once.shape), [2, 3, 5, 8], "rotate_half(x).shape")
    _close(rotate_half(once), -x, "rotate_half(rotate_half(x))", atol=0, rtol=0,
           hint=("只在最后一维上切半（x.shape[-1] // 2）", "split the *last* axis in halves (x.shape[-1] // 2)"))


# ===================================================================== apply_rotary_pos_emb


@pytest.mark.symbol("apply_rotary_pos_emb")
def test_apply_rotary_pos_emb_with_cos_1_and_sin_0_is_the_identity():
    """Angle 0 everywhere (``cos = 1``, ``sin = 0``, position 0): ``q·1 + rotate_half(q)·0 = q``,
    same for k, whatever q and k are."""
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 4, 3, 8, generator=g), torch.randn(2, 2, 3, 8, generator=g)
    q_embed, k_embed = _emb().apply_rotary_pos_emb(q, k, torch.ones(2, 3, 8), torch.zeros(2, 3, 8))
    hint = ("q_embed = q * cos + rotate_half(q) * sin（cos 乘 q 本身，sin 乘旋转后的 q）",
            "q_embed = q * cos + rotate_half(q) * sin (cos multiplies q itself, sin the rotated q)")
    _close(q_embed, q, "q_embed with cos = 1, sin = 0", atol=0, rtol=0, hint=hint)
    _close(k_embed, k, "k_embed with cos = 1, sin = 0", atol=0, rtol=0, hint=hint)


@pytest.mark.symbol("apply_rotary_pos_emb")
def test_apply_rotary_pos_emb_turns_each_pair_counterclockwise_by_its_angle():
    """hd = 2, angle 1 radian (position 1, ``inv_freq = [1]``): a 2-D rotation
    ``(x, y) -> (x cos 1 - y sin 1, x sin 1 + y cos 1)``, so ``q = [1, 0] -> [cos 1, sin 1]
    = [0.5403, 0.8415]`` and ``k = [0, 1] -> [-sin 1, cos 1]``. With hd = 4 and angles
    ``[1, 0.1]`` the pairs are features (0, 2) and (1, 3): ``[1, 0, 0, 0] -> [cos 1, 0, sin 1, 0]``,
    ``[0, 1, 0, 0] -> [0, cos 0.1, 0, sin 0.1]``."""
    apply = _emb().apply_rotary_pos_emb
    c, s = math.cos(1.0), math.sin(1.0)
    hint = ("q * cos + rotate_half(q) * sin：用加号，且 rotate_half 的负号在后一半上（逆时针旋转）",
            "q * cos + rotate_half(q) * sin: a plus, and rotate_half negates the second half (counterclockwise)")
    cos2, sin2 = torch.full((1, 1, 2), c), torch.full((1, 1, 2), s)
    q_embed, k_embed = apply(torch.tensor([[[[1.0, 0.0]]]]), torch.tensor([[[[0.0, 1.0]]]]), cos2, sin2)
    _close(q_embed, torch.tensor([[[[c, s]]]]), "q = [1, 0] rotated by 1 radian", atol=1e-6, hint=hint)
    _close(k_embed, torch.tensor([[[[-s, c]]]]), "k = [0, 1] rotated by 1 radian", atol=1e-6, hint=hint)
    angles = [1.0, 0.1, 1.0, 0.1]
    cos4 = torch.tensor([[[math.cos(a) for a in angles]]])
    sin4 = torch.tensor([[[math.sin(a) for a in angles]]])
    q_embed, k_embed = apply(torch.tensor([[[[1.0, 0.0, 0.0, 0.0]]]]), torch.tensor([[[[0.0, 1.0, 0.0, 0.0]]]]),
                             cos4, sin4)
    _close(q_embed, torch.tensor([[[[c, 0.0, s, 0.0]]]]), "[1, 0, 0, 0] rotated by angles [1, 0.1]",
           atol=1e-6, hint=hint)
    _close(k_embed, torch.tensor([[[[0.0, math.cos(0.1), 0.0, math.sin(0.1)]]]]),
           "[0, 1, 0, 0] rotated by angles [1, 0.1]", atol=1e-6, hint=hint)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.symbol("apply_rotary_pos_emb")
def test_apply_rotary_pos_emb_keeps_shapes_and_the_dtype_of_q_and_k(dtype):
    """GQA shapes: q ``[2, 4, 3, 8]`` (4 heads), k ``[2, 2, 3, 8]`` (2 KV heads), float32 tables
    ``[2, 3, 8]`` broadcast over the heads; outputs keep their shapes and q's / k's dtype (the
    float32 tables must not promote bfloat16 q to float32)."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, 3, 8, generator=g).to(dtype)
    k = torch.randn(2, 2, 3, 8, generator=g).to(dtype)
    angles = torch.rand(2, 3, 8, generator=g)
    q_embed, k_embed = _emb().apply_rotary_pos_emb(q, k, angles.cos(), angles.sin())
    assert_equal(list(q_embed.shape), [2, 4, 3, 8], "q_embed.shape")
    assert_equal(list(k_embed.shape), [2, 2, 3, 8], "k_embed.shape")
    hint = ("cos、sin 先 .to(q.dtype)，再相乘", "cast cos and sin with .to(q.dtype) before multiplying")
    assert q_embed.dtype == dtype, say(f"q_embed.dtype 应为 {dtype}，实际 {q_embed.dtype}。{hint[0]}",
                                       f"q_embed.dtype should be {dtype}, got {q_embed.dtype}. {hint[1]}")
    assert k_embed.dtype == dtype, say(f"k_embed.dtype 应为 {dtype}，实际 {k_embed.dtype}。{hint[0]}",
                                       f"k_embed.dtype should be {dtype}, got {k_embed.dtype}. {hint[1]}")


@pytest.mark.parametrize("position", [0, 1])
@pytest.mark.symbol("apply_rotary_pos_emb")
def test_rope_end_to_end_turns_by_position_radians_for_head_dim_2(position):
    """``RotaryEmbedding(2)`` then ``apply_rotary_pos_emb``: hd = 2 has ``inv_freq = [1]``, so
    position ``p`` turns ``[1, 0]`` into ``[cos p, sin p]``: position 0 is the identity
    (``[1, 0]``), position 1 gives ``[0.5403, 0.8415]``."""
    emb = _emb()
    cos, sin = emb.RotaryEmbedding(2, max_position_embeddings=4)(torch.tensor([[position]]))
    q = torch.tensor([[[[1.0, 0.0]]]])
    q_embed, _ = emb.apply_rotary_pos_emb(q, q, cos, sin)
    p = float(position)
    _close(q_embed, torch.tensor([[[[math.cos(p), math.sin(p)]]]]), f"[1, 0] at position {position}", atol=1e-6)
