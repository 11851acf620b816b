"""Lesson 02, advanced tier: random inputs, oracles, half precision, gradients.

Expected values come from three places, never from outputs pasted into this file:

- **torch built-ins**: ``torch.nn.LayerNorm``, ``torch.nn.RMSNorm`` (same eps) and
  ``torch.nn.functional.embedding``, loaded with the same (random, non-default) weights;
- **the reference library** (``intro2llm``), run on the same inputs during the test;
- **properties**: RoPE scores depend only on ``m - n``; RoPE keeps the length of every
  feature pair; gradients equal finite differences (``torch.autograd.gradcheck``, float64).

Tolerances, used throughout (``|actual - expected| <= atol + rtol * |expected|``):

- float32, same formula: ``atol = rtol = 1e-5``. Two correct programs may sum in a
  different order or use ``/ sqrt`` for ``* rsqrt``: a few float32 ulps (1.2e-7 each) of
  values of size 1-10, far below 1e-5, while every mistake below moves values by > 1e-3.
- bfloat16 (8 significant bits), one rounding: ``rtol = 2**-7``. Both sides compute in
  float32 and round once at the end; float32 values that agree to 1e-6 can still round to
  neighbouring bfloat16 numbers, one ulp apart, and one ulp is at most 2**-7 of the value.
- bfloat16, two roundings: ``rtol = 2**-6``. RMSNorm rounds ``x / rms`` to bfloat16 and
  then rounds the product with the weight (as Llama does); ``torch.nn.RMSNorm`` rounds
  once: up to two ulps apart.
- float16 (11 significant bits): the same reasoning, ``rtol = 2**-10`` (one rounding) and
  ``2**-9`` (two).
- float64: ``1e-12``, a float32 computation anywhere in between shows up as ~1e-7.

The learner's code is imported inside each test (``learner(...)``); seeds are fixed with
``torch.Generator`` so every run sees the same numbers.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from intro2llm_cli.testkit import assert_close, learner, reference, say

F32 = {"atol": 1e-5, "rtol": 1e-5}
BF16_ONE_ROUNDING = {"atol": 1e-5, "rtol": 2**-7}
BF16_TWO_ROUNDINGS = {"atol": 1e-5, "rtol": 2**-6}
FP16_ONE_ROUNDING = {"atol": 1e-5, "rtol": 2**-10}
FP16_TWO_ROUNDINGS = {"atol": 1e-5, "rtol": 2**-9}
F64 = {"atol": 1e-12, "rtol": 1e-12}

# (input shape, eps): 1-D to 4-D inputs, odd and even d; eps 1e-2 is large enough that
# putting it outside the square root changes values by ~5e-3 (far above the tolerance).
NORM_CASES = [((16,), 1e-5), ((3, 16), 1e-2), ((2, 7, 48), 1e-5), ((2, 3, 5, 33), 1e-2)]
NORM_IDS = [f"{list(shape)}-eps{eps:g}" for shape, eps in NORM_CASES]

UPCAST_HINT = (
    "半精度输入要先升到 float32 再求平方和均值：float16 的平方在 |x| > 256 时溢出为 inf，bfloat16 精度不够",
    "upcast half-precision inputs to float32 before squaring and averaging: float16 squares overflow to inf "
    "for |x| > 256, bfloat16 loses precision",
)


def _norm():
    return learner("model.norm")


def _emb():
    return learner("model.embedding")


def _close(actual, expected, what: str, hint: tuple[str, str] | None = None, **tol) -> None:
    assert_close(actual, expected, what, hint=hint, **tol)


def _randomize(module: torch.nn.Module, g: torch.Generator) -> None:
    """Non-default parameters: ones and zeros would hide a missing weight or bias."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5 + 1.0)


def _norm_inputs(shape: tuple[int, ...], g: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """Rows with different scales (0.1x to 10x) and offsets, so mean and variance both matter."""
    scale = torch.randn(*shape[:-1], 1, generator=g, dtype=dtype).exp()
    shift = torch.randn(*shape[:-1], 1, generator=g, dtype=dtype) * 3
    return torch.randn(shape, generator=g, dtype=dtype) * scale + shift


def _tolerance(dtype: torch.dtype, roundings: int) -> dict[str, float]:
    if dtype == torch.bfloat16:
        return BF16_ONE_ROUNDING if roundings == 1 else BF16_TWO_ROUNDINGS
    if dtype == torch.float16:
        return FP16_ONE_ROUNDING if roundings == 1 else FP16_TWO_ROUNDINGS
    return F32


def _gradcheck(function, inputs: tuple[torch.Tensor, ...], what: str, hint: tuple[str, str]) -> None:
    """``torch.autograd.gradcheck`` in float64, failing with a readable message."""
    from torch.autograd.gradcheck import GradcheckError

    try:
        torch.autograd.gradcheck(function, inputs, eps=1e-6, atol=1e-5, rtol=1e-3)
    except GradcheckError as exc:
        first = "\n".join(str(exc).strip().splitlines()[:4])
        raise AssertionError(say(f"{what}：反向传播的梯度与有限差分不一致。{hint[0]}\n{first}",
                                 f"{what}: backward gradients differ from finite differences. {hint[1]}\n{first}")) from None


# ===================================================================== LayerNorm


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape, eps", NORM_CASES, ids=NORM_IDS)
@pytest.mark.symbol("LayerNorm.forward")
def test_layernorm_matches_reference_and_torch_layernorm(shape, eps, dtype):
    """Random weight and bias, rows of different scale and offset. float32 at 1e-5; bfloat16
    (module and input in bfloat16) at one rounding: torch's LayerNorm also computes in float32
    and rounds once."""
    g = torch.Generator().manual_seed(len(shape))
    d = shape[-1]
    ref = reference("model.norm").LayerNorm(d, eps=eps)
    _randomize(ref, g)
    mine = _norm().LayerNorm(d, eps=eps)
    mine.load_state_dict(ref.state_dict())
    oracle = torch.nn.LayerNorm(d, eps=eps)
    oracle.load_state_dict(ref.state_dict())
    x = _norm_inputs(shape, g).to(dtype)
    mine, ref, oracle = mine.to(dtype), ref.to(dtype), oracle.to(dtype)
    out = mine(x)
    tol = _tolerance(dtype, roundings=1)
    hint = ("检查：先升到 float32；只在最后一维求 mean/var（keepdim=True）；有偏方差；rsqrt(var + eps)；"
            "* weight + bias 也在 float32 中算，最后只转回一次",
            "check: upcast to float32 first; mean/var over the last axis (keepdim=True); biased variance; "
            "rsqrt(var + eps); * weight + bias in float32 too, one cast back at the end")
    _close(out, oracle(x), f"LayerNorm({d}, eps={eps:g}) vs torch.nn.LayerNorm, {dtype}, input {list(shape)}",
           hint=hint, **tol)
    _close(out, ref(x), f"LayerNorm({d}, eps={eps:g}) vs the reference, {dtype}, input {list(shape)}",
           hint=hint, **tol)


@pytest.mark.parametrize("dtype, scale", [(torch.float16, 1000.0), (torch.bfloat16, 1e4)], ids=["float16", "bfloat16"])
@pytest.mark.symbol("LayerNorm.forward")
def test_layernorm_half_inputs_with_large_values_stay_finite_and_accurate(dtype, scale):
    """Values around ±1000 in float16: their squares (~1e6) overflow float16 (max 65504), so
    the variance must be computed in float32. bfloat16 values around ±1e4 over 1024 features:
    float32 statistics keep the error to one final rounding. Compared with the reference
    module in the same dtype (one rounding)."""
    g = torch.Generator().manual_seed(7)
    d = 64 if dtype == torch.float16 else 1024
    ref = reference("model.norm").LayerNorm(d)
    _randomize(ref, g)
    mine = _norm().LayerNorm(d)
    mine.load_state_dict(ref.state_dict())
    mine, ref = mine.to(dtype), ref.to(dtype)
    x = (torch.randn(4, d, generator=g) * scale).to(dtype)
    _close(mine(x), ref(x), f"LayerNorm({d}).to({dtype}) on inputs of size ~{scale:g}", hint=UPCAST_HINT,
           **_tolerance(dtype, roundings=1))


@pytest.mark.symbol("LayerNorm.forward")
def test_layernorm_keeps_float64_inputs_in_float64():
    """float64 input and parameters: computed and returned in float64 (``promote_types(float64,
    float32)`` is float64), matching the reference to 1e-12; ``x.float()`` would round to float32."""
    g = torch.Generator().manual_seed(3)
    ref = reference("model.norm").LayerNorm(24, eps=1e-5).double()
    _randomize(ref, g)
    mine = _norm().LayerNorm(24, eps=1e-5).double()
    mine.load_state_dict(ref.state_dict())
    x = _norm_inputs((5, 24), g, dtype=torch.float64)
    _close(mine(x), ref(x), "LayerNorm(24).double() on a float64 input", **F64,
           hint=("用 x.to(torch.promote_types(x.dtype, torch.float32)) 升精度：float64 保持 float64，不要 x.float()",
                 "upcast with x.to(torch.promote_types(x.dtype, torch.float32)): float64 stays float64, not x.float()"))


@pytest.mark.symbol("LayerNorm.forward")
def test_layernorm_gradients_pass_gradcheck_in_float64():
    """Analytical gradients with respect to the input, weight and bias equal finite
    differences (float64, ``torch.autograd.gradcheck``)."""
    g = torch.Generator().manual_seed(4)
    norm = _norm().LayerNorm(6, eps=1e-5).double()
    _randomize(norm, g)
    names = [name for name, _ in norm.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for _, p in norm.named_parameters()]
    x = _norm_inputs((2, 3, 6), g, dtype=torch.float64).requires_grad_(True)

    def function(x, *ps):
        return torch.func.functional_call(norm, dict(zip(names, ps, strict=True)), (x,))

    _gradcheck(function, (x, *params), "LayerNorm(6)",
               ("均值和方差也要参与求导：不要 .detach() 或 torch.no_grad()", "mean and variance must stay in the graph: no .detach() or torch.no_grad()"))


# ===================================================================== RMSNorm


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape, eps", NORM_CASES, ids=NORM_IDS)
@pytest.mark.symbol("RMSNorm.forward")
def test_rmsnorm_matches_reference_and_torch_rmsnorm(shape, eps, dtype):
    """Random weight; ``torch.nn.RMSNorm(d, eps=eps)`` with the same weight. float32 at 1e-5;
    bfloat16 at two roundings (the reference, like Llama, rounds ``x / rms`` to bfloat16 before
    the weight; torch rounds once at the end)."""
    g = torch.Generator().manual_seed(10 + len(shape))
    d = shape[-1]
    ref = reference("model.norm").RMSNorm(d, eps=eps)
    _randomize(ref, g)
    mine = _norm().RMSNorm(d, eps=eps)
    mine.load_state_dict(ref.state_dict())
    oracle = torch.nn.RMSNorm(d, eps=eps)
    oracle.load_state_dict(ref.state_dict())
    x = _norm_inputs(shape, g).to(dtype)
    mine, ref, oracle = mine.to(dtype), ref.to(dtype), oracle.to(dtype)
    out = mine(x)
    tol = _tolerance(dtype, roundings=2)
    hint = ("检查：x * rsqrt(mean(x²) + eps)，mean 只在最后一维（keepdim=True）；不减均值；最后乘 weight",
            "check: x * rsqrt(mean(x²) + eps), mean over the last axis (keepdim=True); no mean subtraction; times weight")
    _close(out, oracle(x), f"RMSNorm({d}, eps={eps:g}) vs torch.nn.RMSNorm, {dtype}, input {list(shape)}",
           hint=hint, **tol)
    _close(out, ref(x), f"RMSNorm({d}, eps={eps:g}) vs the reference, {dtype}, input {list(shape)}",
           hint=hint, **tol)


@pytest.mark.parametrize("dtype, scale", [(torch.float16, 1000.0), (torch.bfloat16, 1e4)], ids=["float16", "bfloat16"])
@pytest.mark.symbol("RMSNorm.forward")
def test_rmsnorm_half_inputs_with_large_values_stay_finite_and_accurate(dtype, scale):
    """Values around ±1000 in float16: ``x**2`` (~1e6) overflows float16, and in float16
    ``rsqrt(inf) = 0`` silently zeroes the output; float32 inside keeps it right. bfloat16
    values around ±1e4 over 1024 features. Compared with the reference (two roundings)."""
    g = torch.Generator().manual_seed(17)
    d = 64 if dtype == torch.float16 else 1024
    ref = reference("model.norm").RMSNorm(d)
    _randomize(ref, g)
    mine = _norm().RMSNorm(d)
    mine.load_state_dict(ref.state_dict())
    mine, ref = mine.to(dtype), ref.to(dtype)
    x = (torch.randn(4, d, generator=g) * scale).to(dtype)
    _close(mine(x), ref(x), f"RMSNorm({d}).to({dtype}) on inputs of size ~{scale:g}", hint=UPCAST_HINT,
           **_tolerance(dtype, roundings=2))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.symbol("RMSNorm.forward")
def test_rmsnorm_float32_weight_on_half_input_returns_the_input_dtype(dtype):
    """A float32 weight (a model not cast as a whole) on a half-precision input: the output
    is in the input's dtype (Llama's ``weight * h`` alone would be promoted to float32) and
    equals the reference up to one rounding."""
    g = torch.Generator().manual_seed(5)
    ref = reference("model.norm").RMSNorm(32)
    _randomize(ref, g)
    mine = _norm().RMSNorm(32)
    mine.load_state_dict(ref.state_dict())
    x = (torch.randn(3, 32, generator=g) * 2).to(dtype)
    _close(mine(x), ref(x), f"RMSNorm(32) with a float32 weight on a {dtype} input", **_tolerance(dtype, roundings=1),
           hint=("return (self.weight * h.to(input_dtype)).to(input_dtype)：先转回，再乘权重，再转回一次",
                 "return (self.weight * h.to(input_dtype)).to(input_dtype): cast back, multiply by the weight, cast again"))


@pytest.mark.symbol("RMSNorm.forward")
def test_rmsnorm_keeps_float64_inputs_in_float64():
    """float64 input and weight: computed and returned in float64, matching the reference
    to 1e-12; ``x.float()`` would round to float32 (~1e-7)."""
    g = torch.Generator().manual_seed(6)
    ref = reference("model.norm").RMSNorm(24, eps=1e-5).double()
    _randomize(ref, g)
    mine = _norm().RMSNorm(24, eps=1e-5).double()
    mine.load_state_dict(ref.state_dict())
    x = _norm_inputs((5, 24), g, dtype=torch.float64)
    _close(mine(x), ref(x), "RMSNorm(24).double() on a float64 input", **F64,
           hint=("用 x.to(torch.promote_types(x.dtype, torch.float32)) 升精度：float64 保持 float64，不要 x.float()",
                 "upcast with x.to(torch.promote_types(x.dtype, torch.float32)): float64 stays float64, not x.float()"))


@pytest.mark.symbol("RMSNorm.forward")
def test_rmsnorm_gradients_pass_gradcheck_in_float64():
    """Analytical gradients with respect to the input and the weight equal finite differences."""
    g = torch.Generator().manual_seed(8)
    norm = _norm().RMSNorm(6, eps=1e-5).double()
    _randomize(norm, g)
    names = [name for name, _ in norm.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for _, p in norm.named_parameters()]
    x = _norm_inputs((2, 3, 6), g, dtype=torch.float64).requires_grad_(True)

    def function(x, *ps):
        return torch.func.functional_call(norm, dict(zip(names, ps, strict=True)), (x,))

    _gradcheck(function, (x, *params), "RMSNorm(6)",
               ("均方根也要参与求导：不要 .detach() 或 torch.no_grad()", "the root mean square must stay in the graph: no .detach() or torch.no_grad()"))


# ===================================================================== TokenEmbedding


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", [(9,), (3, 7), (7, 3), (2, 4, 5)], ids=str)
@pytest.mark.symbol("TokenEmbedding.forward")
def test_token_embedding_matches_reference_and_torch_embedding(shape, dtype):
    """Same table as the reference and ``F.embedding``; a lookup copies rows, so the results
    are identical (atol = rtol = 0) in any dtype."""
    g = torch.Generator().manual_seed(20 + len(shape))
    ref = reference("model.embedding").TokenEmbedding(50, 12)
    with torch.no_grad():
        ref.weight.copy_(torch.randn(50, 12, generator=g))
    mine = _emb().TokenEmbedding(50, 12)
    mine.load_state_dict(ref.state_dict())
    mine, ref = mine.to(dtype), ref.to(dtype)
    ids = torch.randint(0, 50, shape, generator=g)
    ids.view(-1)[0] = 49  # the last row is used too
    out = mine(ids)
    _close(out, F.embedding(ids, ref.weight), f"TokenEmbedding(50, 12) vs F.embedding, ids {list(shape)}, {dtype}",
           atol=0, rtol=0, hint=("按行查表：self.weight[input_ids]，形状 input_ids.shape + (d,)",
                                 "look rows up: self.weight[input_ids], shape input_ids.shape + (d,)"))
    _close(out, ref(ids), f"TokenEmbedding(50, 12) vs the reference, ids {list(shape)}, {dtype}", atol=0, rtol=0)


@pytest.mark.symbol("TokenEmbedding.forward")
def test_token_embedding_gradient_reaches_only_the_rows_used():
    """ids ``[[1, 3, 3, 7], [7, 7, 0, 3]]`` with a random upstream gradient: row 3 and row 7
    receive the sum of three output gradients each, rows 0 and 1 one each, every other row
    of the 20 exactly zero, the same as ``F.embedding``'s backward."""
    g = torch.Generator().manual_seed(30)
    mine = _emb().TokenEmbedding(20, 4)
    ids = torch.tensor([[1, 3, 3, 7], [7, 7, 0, 3]])
    upstream = torch.randn(2, 4, 4, generator=g)
    (mine(ids) * upstream).sum().backward()
    grad = mine.weight.grad
    assert grad is not None, say(
        "TokenEmbedding.weight 没有得到梯度：输出不能 .detach()，也不要在 torch.no_grad() 中查表",
        "TokenEmbedding.weight got no gradient: do not .detach() the output or look up under torch.no_grad()",
    )
    oracle_weight = mine.weight.detach().clone().requires_grad_(True)
    (F.embedding(ids, oracle_weight) * upstream).sum().backward()
    _close(grad, oracle_weight.grad, "TokenEmbedding(20, 4).weight.grad vs F.embedding's", atol=1e-6, rtol=1e-6)


# ===================================================================== RotaryEmbedding


@pytest.mark.parametrize("head_dim, base", [(16, 10000.0), (64, 500000.0), (128, 10000.0), (6, 10.0)],
                         ids=["hd16-1e4", "hd64-5e5", "hd128-1e4", "hd6-10"])
@pytest.mark.symbol("RotaryEmbedding._compute_inv_freq")
def test_inv_freq_matches_reference(head_dim, base):
    """``[hd/2]`` float32 frequencies equal the reference's to float32 precision (rtol 1e-6:
    ``base ** -e`` and ``1 / base ** e`` may differ in the last bit)."""
    mine = _emb().RotaryEmbedding(head_dim, max_position_embeddings=8, base=base)._compute_inv_freq()
    ref = reference("model.embedding").RotaryEmbedding(head_dim, max_position_embeddings=8, base=base)._compute_inv_freq()
    _close(mine, ref, f"RotaryEmbedding({head_dim}, base={base:g})._compute_inv_freq()", atol=0, rtol=1e-6,
           hint=("inv_freq = 1 / base ** (arange(0, hd, 2, dtype=float32) / hd)",
                 "inv_freq = 1 / base ** (arange(0, hd, 2, dtype=float32) / hd)"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("head_dim, base", [(16, 10000.0), (64, 500000.0), (6, 10.0)], ids=["hd16-1e4", "hd64-5e5", "hd6-10"])
@pytest.mark.symbol("RotaryEmbedding.forward")
def test_rotary_tables_match_reference(head_dim, base, dtype):
    """cos / sin for ``position_ids [3, 20]`` drawn from ``[0, 128)``. atol 5e-5: a last-bit
    difference in ``inv_freq`` (6e-8) grows with the position to at most ~1e-5 in the angle at
    position 127; in bfloat16 plus one rounding (rtol 2**-7)."""
    g = torch.Generator().manual_seed(40 + head_dim)
    position_ids = torch.randint(0, 128, (3, 20), generator=g)
    mine = _emb().RotaryEmbedding(head_dim, max_position_embeddings=128, base=base)
    ref = reference("model.embedding").RotaryEmbedding(head_dim, max_position_embeddings=128, base=base)
    cos, sin = mine(position_ids, dtype=dtype)
    ref_cos, ref_sin = ref(position_ids, dtype=dtype)
    tol = {"atol": 5e-5, "rtol": 2**-7 if dtype == torch.bfloat16 else 0.0}
    _close(cos, ref_cos, f"cos of RotaryEmbedding({head_dim}, base={base:g}), {dtype}", **tol)
    _close(sin, ref_sin, f"sin of RotaryEmbedding({head_dim}, base={base:g}), {dtype}", **tol)


@pytest.mark.symbol("RotaryEmbedding.forward")
def test_rotary_cache_extends_past_max_position_embeddings():
    """A 16-position cache asked for positions 16 (the first one past it) and 40 grows to
    hold them (``max_seq_len_cached >= 41``), and its tables equal those of a 64-position
    cache (atol 1e-6: the same float32 formula per position) and of the reference (5e-5)."""
    emb = _emb()
    small, big = emb.RotaryEmbedding(16, max_position_embeddings=16), emb.RotaryEmbedding(16, max_position_embeddings=64)
    ref = reference("model.embedding").RotaryEmbedding(16, max_position_embeddings=64)
    positions = torch.tensor([[3, 15, 16, 40]])
    hint = ("需要的长度是 position_ids.max() + 1；超过 self.max_seq_len_cached 时调用 _set_cos_sin_cache 扩展缓存",
            "the length needed is position_ids.max() + 1; past self.max_seq_len_cached, call _set_cos_sin_cache to grow the cache")
    try:
        cos, sin = small(positions)
    except IndexError as exc:
        raise AssertionError(say(f"位置 16、40 超出了 16 个位置的缓存：{exc}。{hint[0]}",
                                 f"positions 16 and 40 are past the 16-position cache: {exc}. {hint[1]}")) from None
    assert small.max_seq_len_cached >= 41, say(
        f"读过位置 40 之后 max_seq_len_cached 应至少为 41，实际为 {small.max_seq_len_cached}",
        f"after position 40, max_seq_len_cached should be at least 41, got {small.max_seq_len_cached}",
    )
    big_cos, big_sin = big(positions)
    _close(cos, big_cos, "cos past an extended cache vs a 64-position cache", atol=1e-6, rtol=0, hint=hint)
    _close(sin, big_sin, "sin past an extended cache vs a 64-position cache", atol=1e-6, rtol=0, hint=hint)
    ref_cos, ref_sin = ref(positions)
    _close(cos, ref_cos, "cos past an extended cache vs the reference", atol=5e-5, rtol=0)
    _close(sin, ref_sin, "sin past an extended cache vs the reference", atol=5e-5, rtol=0)
    # After growing, every position of the bigger range is right, not only the ones asked for.
    all_positions = torch.arange(64)[None]
    _close(small(all_positions)[0], big(all_positions)[0], "cos of positions 0..63 after the cache grew",
           atol=1e-6, rtol=0)


@pytest.mark.symbol("RotaryEmbedding._set_cos_sin_cache")
def test_rotary_cache_extension_after_bfloat16_cast_uses_float32_frequencies():
    """``model.to(torch.bfloat16)`` casts the ``inv_freq`` buffer too (3 significant digits).
    Growing the cache must recompute float32 frequencies: at position 200, bfloat16
    frequencies would be off by up to ~0.4 radians. Compared with a float32 reference table
    (atol 5e-5, as above)."""
    rope = _emb().RotaryEmbedding(16, max_position_embeddings=8).to(torch.bfloat16)
    cos, sin = rope(torch.tensor([[100, 200]]), dtype=torch.float32)
    ref_cos, ref_sin = reference("model.embedding").RotaryEmbedding(16, max_position_embeddings=256)(
        torch.tensor([[100, 200]]))
    hint = ("扩展缓存时用 self._compute_inv_freq() 重新以 float32 计算频率，不要读 self.inv_freq（它可能已被转成 bfloat16）",
            "when growing the cache recompute float32 frequencies with self._compute_inv_freq(); self.inv_freq may be bfloat16 by now")
    _close(cos, ref_cos, "cos at positions 100, 200 after .to(bfloat16)", atol=5e-5, rtol=0, hint=hint)
    _close(sin, ref_sin, "sin at positions 100, 200 after .to(bfloat16)", atol=5e-5, rtol=0, hint=hint)


# ===================================================================== rotate_half


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", [(8,), (3, 6), (2, 4, 5, 16), (1, 3, 2, 64)], ids=str)
@pytest.mark.symbol("rotate_half")
def test_rotate_half_matches_reference_on_random_tensors(shape, dtype):
    """Only copies and a negation: identical results (atol = rtol = 0), same shape and dtype."""
    g = torch.Generator().manual_seed(50 + len(shape))
    x = torch.randn(shape, generator=g).to(dtype)
    _close(_emb().rotate_half(x), reference("model.embedding").rotate_half(x),
           f"rotate_half(x) for x of shape {list(shape)}, {dtype}", atol=0, rtol=0)


# ===================================================================== apply_rotary_pos_emb


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("table_batch", [2, 1], ids=["tables[b,s,hd]", "tables[1,s,hd]"])
@pytest.mark.symbol("apply_rotary_pos_emb")
def test_apply_rotary_pos_emb_matches_reference_with_gqa_keys(table_batch, dtype):
    """q ``[2, 4, 6, 16]`` (4 heads), k ``[2, 2, 6, 16]`` (2 KV heads); float32 tables from the
    reference ``RotaryEmbedding`` for positions ``[[0..5], [7..12]]`` (or one row ``[[3..8]]``
    broadcast over the batch). float32 at 1e-5. bfloat16: atol 2e-2 — the reference rounds
    ``q·cos`` and ``rotate_half(q)·sin`` to bfloat16 before adding them; a correct program that
    adds in float32 differs by up to 2**-9 of each term (|q| < 5 here) plus one rounding."""
    g = torch.Generator().manual_seed(60 + table_batch)
    q = torch.randn(2, 4, 6, 16, generator=g).to(dtype)
    k = torch.randn(2, 2, 6, 16, generator=g).to(dtype)
    if table_batch == 2:
        positions = torch.stack([torch.arange(6), torch.arange(7, 13)])
    else:
        positions = torch.arange(3, 9)[None]
    cos, sin = reference("model.embedding").RotaryEmbedding(16, max_position_embeddings=32)(positions)
    q_embed, k_embed = _emb().apply_rotary_pos_emb(q, k, cos, sin)
    ref_q, ref_k = reference("model.embedding").apply_rotary_pos_emb(q, k, cos, sin)
    tol = F32 if dtype == torch.float32 else {"atol": 2e-2, "rtol": 2**-7}
    hint = ("q 与 k 各用自己的 rotate_half：k_embed = k * cos + rotate_half(k) * sin；cos/sin 在 unsqueeze_dim 处加头维",
            "q and k each use their own rotate_half: k_embed = k * cos + rotate_half(k) * sin; cos/sin get a head axis at unsqueeze_dim")
    _close(q_embed, ref_q, f"q_embed, {dtype}, tables of batch {table_batch}", hint=hint, **tol)
    _close(k_embed, ref_k, f"k_embed (2 KV heads), {dtype}, tables of batch {table_batch}", hint=hint, **tol)


@pytest.mark.symbol("apply_rotary_pos_emb")
def test_apply_rotary_pos_emb_unsqueeze_dim_2_serves_the_b_s_h_hd_layout():
    """With ``unsqueeze_dim=2`` the tables ``[b, s, hd]`` become ``[b, s, 1, hd]`` and broadcast
    over the heads of q ``[b, s, h, hd]``: the result is the ``[b, h, s, hd]`` result transposed
    (and the reference's), at float32 tolerance."""
    g = torch.Generator().manual_seed(70)
    q = torch.randn(2, 6, 4, 8, generator=g)  # [b, s, h, hd]
    k = torch.randn(2, 6, 2, 8, generator=g)  # [b, s, g, hd]
    positions = torch.stack([torch.arange(6), torch.arange(10, 16)])
    cos, sin = reference("model.embedding").RotaryEmbedding(8, max_position_embeddings=32)(positions)
    q_embed, k_embed = _emb().apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=2)
    ref_q, ref_k = reference("model.embedding").apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=2)
    hint = ("cos.unsqueeze(unsqueeze_dim)：用参数，不要写死 1", "cos.unsqueeze(unsqueeze_dim): use the argument, do not hard-code 1")
    _close(q_embed, ref_q, "q_embed with unsqueeze_dim=2 (q [b, s, h, hd])", hint=hint, **F32)
    _close(k_embed, ref_k, "k_embed with unsqueeze_dim=2 (k [b, s, g, hd])", hint=hint, **F32)


@pytest.mark.symbol("apply_rotary_pos_emb")
def test_rope_scores_depend_only_on_relative_position():
    """``<R_m q, R_n k>`` is the same for every ``(m, n)`` with the same ``m - n``: pairs
    (3, 0), (10, 7), (103, 100), (250, 247) and, for ``m - n = -5``, (0, 5), (60, 65), (200, 205).
    q, k are unit vectors (hd = 32) and the cache starts at 64 positions (so it grows).
    atol 2e-4: float32 angles up to 250 radians carry ~2e-5 absolute error each. And the
    offset matters: ``m - n = 3`` and ``4`` give scores more than 1e-2 apart."""
    g = torch.Generator().manual_seed(80)
    emb = _emb()
    rope = emb.RotaryEmbedding(32, max_position_embeddings=64)
    q = F.normalize(torch.randn(1, 1, 1, 32, generator=g), dim=-1)
    k = F.normalize(torch.randn(1, 1, 1, 32, generator=g), dim=-1)

    def score(m: int, n: int) -> torch.Tensor:
        cos_m, sin_m = rope(torch.tensor([[m]]))
        cos_n, sin_n = rope(torch.tensor([[n]]))
        q_rot, _ = emb.apply_rotary_pos_emb(q, q, cos_m, sin_m)
        _, k_rot = emb.apply_rotary_pos_emb(k, k, cos_n, sin_n)
        return (q_rot * k_rot).sum().reshape(1)

    for pairs in ([(3, 0), (10, 7), (103, 100), (250, 247)], [(0, 5), (60, 65), (200, 205)]):
        first = score(*pairs[0])
        for m, n in pairs[1:]:
            _close(score(m, n), first, f"<R_{m} q, R_{n} k> vs <R_{pairs[0][0]} q, R_{pairs[0][1]} k>",
                   atol=2e-4, rtol=0,
                   hint=("旋转必须是真正的旋转：cos/sin 的布局（cat(freqs, freqs)）要与 rotate_half 的配对（i 与 i + hd/2）一致",
                         "it must be a true rotation: the table layout (cat(freqs, freqs)) must match rotate_half's pairs (i with i + hd/2)"))
    gap = (score(3, 0) - score(4, 0)).abs().item()
    assert gap > 1e-2, say(
        f"相对距离 3 和 4 的得分几乎相同（差 {gap:.2g}）：位置似乎没有起作用，q、k 是否真的被旋转了？",
        f"scores at distance 3 and 4 are almost equal (differ by {gap:.2g}): positions seem to have no effect; are q and k rotated?",
    )


@pytest.mark.symbol("apply_rotary_pos_emb")
def test_rope_keeps_the_length_of_every_feature_pair():
    """A rotation of the pair ``(x[i], x[i + hd/2])`` keeps ``x[i]² + x[i + hd/2]²`` for every
    ``i``, at every position (float32, rtol 1e-5), with the learner's own tables."""
    g = torch.Generator().manual_seed(90)
    emb = _emb()
    x = torch.randn(2, 3, 10, 16, generator=g)
    positions = torch.stack([torch.arange(10), torch.arange(20, 30)])
    cos, sin = emb.RotaryEmbedding(16, max_position_embeddings=32)(positions)
    x_rot, _ = emb.apply_rotary_pos_emb(x, x, cos, sin)

    def pair_lengths(t: torch.Tensor) -> torch.Tensor:
        return t[..., :8].pow(2) + t[..., 8:].pow(2)  # [b, h, s, hd/2]

    _close(pair_lengths(x_rot), pair_lengths(x), "x_rot[..., i]² + x_rot[..., i + 8]²", **F32,
           hint=("第 i 维与第 i + hd/2 维成对旋转：rotate_half 切成前后两半，cos/sin 用 cat(freqs, freqs)",
                 "feature i turns with feature i + hd/2: rotate_half splits front/back halves, tables use cat(freqs, freqs)"))


@pytest.mark.symbol("apply_rotary_pos_emb")
def test_apply_rotary_pos_emb_gradients_pass_gradcheck_in_float64():
    """Gradients with respect to q, k, cos and sin equal finite differences (float64; GQA
    shapes q ``[1, 2, 3, 4]``, k ``[1, 1, 3, 4]``)."""
    g = torch.Generator().manual_seed(100)
    q = torch.randn(1, 2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 1, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    angles = torch.rand(1, 3, 4, generator=g, dtype=torch.float64) * 6
    cos = angles.cos().requires_grad_(True)
    sin = angles.sin().requires_grad_(True)
    _gradcheck(_emb().apply_rotary_pos_emb, (q, k, cos, sin), "apply_rotary_pos_emb",
               ("只用可导的张量运算（乘、加、cat），不要 .detach()；float64 输入不要 .float()",
                "use differentiable tensor operations (mul, add, cat), no .detach(); keep float64 inputs in float64 (no .float())"))
