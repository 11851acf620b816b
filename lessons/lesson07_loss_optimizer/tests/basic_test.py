"""Lesson 07, basic tier: the contract of every target on small, hand-checkable cases.

Every expected value below is worked out by hand in the test's docstring (or follows
from a stated property); none is copied from running the reference.

Notation: ``C`` classes, ``lse(x) = log(sum_c exp(x_c))``, ``ln`` the natural log.
The logits ``[0, ln 3]`` appear often: ``exp`` gives ``[1, 3]``, so ``softmax = [1/4, 3/4]``,
``lse = ln 4`` and the losses of the two labels are ``-ln(1/4) = ln 4 = 1.3863`` and
``-ln(3/4) = ln(4/3) = 0.2877``.

Optimisers: the hand cases use ``eps = 0`` where they can, so a first AdamW step is
exactly ``lr * sign(g)`` (up to float32 rounding, 1e-7), and one or two coordinates,
so every number can be followed on paper. Tolerance: ``atol = 1e-6`` on values of size
0.1-10 computed in float32 (a few ulps); every mistake shifts them by >= 5e-3.

Schedules return Python floats (float64); they are compared at ``1e-12``.

The learner's code is imported inside each test (``learner(...)``), so a module that
fails to import is one failing test, not a broken suite.
"""

from __future__ import annotations

import math

import pytest
import torch

from intro2llm_cli.testkit import assert_close, assert_equal, expect_error, learner, say

LN2 = math.log(2.0)
LN3 = math.log(3.0)
LN4 = math.log(4.0)
LN4_3 = math.log(4.0 / 3.0)
F32 = {"atol": 1e-6, "rtol": 1e-6}
EXACT = {"atol": 1e-12, "rtol": 1e-12}

MEAN_HINT = (
    "reduction=\"mean\" 只除以未被忽略的位置数 valid.sum()，不是所有位置数；被忽略的位置损失为 0",
    "reduction=\"mean\" divides by the number of counted positions valid.sum(), not by all positions; "
    "ignored positions have loss 0",
)
BIAS_HINT = (
    "偏差修正忘了？m_hat = m / (1 - beta1**t)，v_hat = v / (1 - beta2**t)，t 从 1 开始，每个参数各自计数",
    "bias correction forgotten? m_hat = m / (1 - beta1**t), v_hat = v / (1 - beta2**t), t starts at 1, "
    "counted per parameter",
)
DECAY_HINT = (
    "权重衰减通过梯度加入（L2: g + wd * p）而不是解耦的？AdamW 直接 p.mul_(1 - lr * wd)，不进入 m 和 v",
    "weight decay applied through the gradient (L2: g + wd * p) instead of decoupled? AdamW does "
    "p.mul_(1 - lr * wd) directly, keeping it out of m and v",
)
WARMUP_HINT = (
    "预热差一步？第 step 步（从 0 数）的倍数是 step / num_warmup_steps，所以第 0 步为 0，不是 (step + 1) / W",
    "warmup off by one? the multiplier at step `step` (counting from 0) is step / num_warmup_steps, so step 0 "
    "gives 0, not (step + 1) / W",
)


def _ce():
    return learner("loss.cross_entropy")


def _pref():
    return learner("loss.dpo_loss")


def _adamw():
    return learner("optimizer.adamw")


def _lion():
    return learner("optimizer.lion")


def _sched():
    return learner("optimizer.scheduler")


def _close(actual, expected, what: str, hint: tuple[str, str] | None = None, **tol) -> None:
    assert_close(actual, expected, what, hint=hint, **tol)


def _t(values, dtype=torch.float32) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def _param(values) -> torch.nn.Parameter:
    return torch.nn.Parameter(_t(values))


def _step_with(opt: torch.optim.Optimizer, grads: dict[torch.nn.Parameter, list[float]]) -> None:
    """Set the given gradients (others stay None) and take one optimiser step."""
    for p, g in grads.items():
        p.grad = _t(g)
    opt.step()


def _lambdas(function, steps, **lengths) -> torch.Tensor:
    """``[function(s, **lengths) for s in steps]`` as float64, so a failure names the index."""
    return torch.tensor([float(function(s, **lengths)) for s in steps], dtype=torch.float64)


# ===================================================================== cross_entropy_loss


@pytest.mark.parametrize(
    "logits, label, expected",
    [
        # [0, ln 3]: softmax [1/4, 3/4]; lse = ln(1 + 3) = ln 4.
        ([0.0, LN3], 1, LN4_3),  # ln 4 - ln 3
        ([0.0, LN3], 0, LN4),  # ln 4 - 0
        # [1, 2, 3]: lse = ln(e + e² + e³) = 3 + ln(e⁻² + e⁻¹ + 1) = 3 + ln(1.50321) = 3.40761.
        ([1.0, 2.0, 3.0], 0, math.log(math.e + math.e**2 + math.e**3) - 1.0),  # 2.40761
        ([1.0, 2.0, 3.0], 2, math.log(math.e + math.e**2 + math.e**3) - 3.0),  # 0.40761
    ],
    ids=["2class-label1", "2class-label0", "3class-label0", "3class-label2"],
)
@pytest.mark.symbol("cross_entropy_loss")
def test_cross_entropy_is_logsumexp_minus_target_logit_by_hand(logits, label, expected):
    """One position: ``-log softmax(x)_y = lse(x) - x_y``.

    ``x = [0, ln 3]``: ``lse = ln(e⁰ + e^{ln 3}) = ln 4``; label 1 gives ``ln 4 - ln 3 = 0.2877``,
    label 0 gives ``ln 4 = 1.3863``. ``x = [1, 2, 3]``: ``lse = 3 + ln(e⁻² + e⁻¹ + e⁰) =
    3 + ln(0.1353 + 0.3679 + 1) = 3.4076``; label 0 gives 2.4076, label 2 gives 0.4076.
    Logits ``[C]`` with a 0-d label: the result is a 0-d float32 tensor."""
    out = _ce().cross_entropy_loss(_t(logits), torch.tensor(label))
    _close(out, torch.tensor(expected, dtype=torch.float32), f"cross_entropy_loss({logits}, label={label})", **F32,
           hint=("-log p_y = logsumexp(x) - x_y：logsumexp 在最后一维上求；不要用 log 的底 2 或 10",
                 "-log p_y = logsumexp(x) - x_y over the last axis; natural log, not base 2 or 10"))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.symbol("cross_entropy_loss")
def test_cross_entropy_reductions_by_hand(reduction):
    """Logits ``[3, 2]``, every row ``[0, ln 3]``, labels ``[1, 0, 1]``: per-position losses
    ``[ln(4/3), ln 4, ln(4/3)] = [0.2877, 1.3863, 0.2877]``; ``"sum"`` = ``ln(4/3)·2 + ln 4 =
    1.9617``, ``"mean"`` = ``1.9617 / 3 = 0.6539``, ``"none"`` the three values (shape ``[3]``)."""
    logits = _t([[0.0, LN3]] * 3)
    labels = torch.tensor([1, 0, 1])
    per_position = [LN4_3, LN4, LN4_3]
    expected = {"none": per_position, "sum": sum(per_position), "mean": sum(per_position) / 3}[reduction]
    out = _ce().cross_entropy_loss(logits, labels, reduction=reduction)
    _close(out, torch.tensor(expected, dtype=torch.float32), f"cross_entropy_loss(reduction={reduction!r})", **F32,
           hint=("\"none\" 返回每个位置的损失（形状同 labels），\"sum\" 求和，\"mean\" 求平均",
                 "\"none\" returns the loss of every position (shape of labels), \"sum\" adds them, \"mean\" averages"))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.symbol("cross_entropy_loss")
def test_cross_entropy_ignored_positions_are_excluded_from_the_mean(reduction):
    """Rows ``[0, ln 3]`` except row 1 ``[5, -5]``; labels ``[1, -100, 0, -100]``. Counted
    positions 0 and 2: ``ln(4/3) + ln 4 = ln(16/3) = 1.6740``. ``"none"``:
    ``[0.2877, 0, 1.3863, 0]`` (0 where ignored); ``"sum"``: 1.6740; ``"mean"``: divided by the
    **2** counted positions, 0.8370 (dividing by all 4 positions would give 0.4185)."""
    logits = _t([[0.0, LN3], [5.0, -5.0], [0.0, LN3], [0.0, LN3]])
    labels = torch.tensor([1, -100, 0, -100])
    expected = {"none": [LN4_3, 0.0, LN4, 0.0], "sum": LN4_3 + LN4, "mean": (LN4_3 + LN4) / 2}[reduction]
    out = _ce().cross_entropy_loss(logits, labels, reduction=reduction)
    _close(out, torch.tensor(expected, dtype=torch.float32),
           f"cross_entropy_loss with labels [1, -100, 0, -100], reduction={reduction!r}", **F32, hint=MEAN_HINT)


@pytest.mark.symbol("cross_entropy_loss")
def test_cross_entropy_honours_a_custom_ignore_index():
    """``ignore_index=1``: labels ``[1, 0, 1]`` on rows ``[0, ln 3]`` count only position 1
    (label 0, loss ln 4): mean = ``ln 4 = 1.3863``; label -100 is then an ordinary bad id."""
    logits = _t([[0.0, LN3]] * 3)
    out = _ce().cross_entropy_loss(logits, torch.tensor([1, 0, 1]), ignore_index=1)
    _close(out, torch.tensor(LN4, dtype=torch.float32), "cross_entropy_loss(labels [1, 0, 1], ignore_index=1)", **F32,
           hint=("用参数 ignore_index 而不是写死的 -100", "use the ignore_index argument, not a hard-coded -100"))


@pytest.mark.symbol("cross_entropy_loss")
def test_cross_entropy_label_smoothing_by_hand():
    """``ε = 0.2``, ``x = [0, ln 3]``, label 1: the target is ``(1 - ε)·one_hot + ε/C`` over all
    ``C = 2`` classes, so the loss is ``(1 - ε)·(lse - x_y) + ε·mean_c(lse - x_c)``
    ``= 0.8·ln(4/3) + 0.2·(ln 4 + ln(4/3))/2 = 0.9·ln(4/3) + 0.1·ln 4 = 0.3975``.
    Spreading ε over the ``C - 1`` other classes instead gives ``0.8·ln(4/3) + 0.2·ln 4 = 0.5074``.
    A second position with label -100 stays 0 (``"none"``) and out of the mean."""
    logits = _t([[0.0, LN3], [0.0, LN3]])
    labels = torch.tensor([1, -100])
    smoothed = 0.9 * LN4_3 + 0.1 * LN4
    ce = _ce().cross_entropy_loss
    hint = ("标签平滑：loss = (1 - ε) * (lse - x_y) + ε * mean_c(lse - x_c)，ε 平均分给全部 C 个类（不是 C - 1 个）；"
            "被忽略的位置整个损失（包括平滑项）都是 0",
            "label smoothing: loss = (1 - ε) * (lse - x_y) + ε * mean_c(lse - x_c), ε spread over all C classes "
            "(not C - 1); an ignored position's whole loss, smoothing term included, is 0")
    _close(ce(logits, labels, label_smoothing=0.2, reduction="none"), _t([smoothed, 0.0]),
           "cross_entropy_loss(label_smoothing=0.2, reduction='none')", hint=hint, **F32)
    _close(ce(logits, labels, label_smoothing=0.2), torch.tensor(smoothed, dtype=torch.float32),
           "cross_entropy_loss(label_smoothing=0.2) (mean over the one counted position)", hint=hint, **F32)


@pytest.mark.symbol("cross_entropy_loss")
def test_cross_entropy_accepts_batch_seq_class_logits():
    """Logits ``[b=2, s=3, C=2]``, every row ``[0, ln 3]``, labels ``[[1, 0, -100], [0, 1, 1]]``:
    ``"none"`` has the labels' shape ``[2, 3]``: ``[[ln(4/3), ln 4, 0], [ln 4, ln(4/3), ln(4/3)]]``;
    ``"mean"`` over the 5 counted positions: ``(3·ln(4/3) + 2·ln 4) / 5 = 0.7271``."""
    logits = _t([[[0.0, LN3]] * 3] * 2)
    labels = torch.tensor([[1, 0, -100], [0, 1, 1]])
    ce = _ce().cross_entropy_loss
    hint = ("类别在最后一维：先 reshape(-1, C) 展平成 [N, C]，labels 展平成 [N]，\"none\" 再 reshape 回 labels 的形状",
            "classes are on the last axis: flatten to [N, C] with reshape(-1, C) and labels to [N]; \"none\" "
            "reshapes back to the labels' shape")
    _close(ce(logits, labels, reduction="none"), _t([[LN4_3, LN4, 0.0], [LN4, LN4_3, LN4_3]]),
           "cross_entropy_loss on [2, 3, 2] logits, reduction='none'", hint=hint, **F32)
    _close(ce(logits, labels), torch.tensor((3 * LN4_3 + 2 * LN4) / 5, dtype=torch.float32),
           "cross_entropy_loss on [2, 3, 2] logits, mean over the 5 counted positions", hint=hint, **F32)


@pytest.mark.parametrize("label, expected", [(1, 1000.0), (0, 0.0)])
@pytest.mark.symbol("cross_entropy_loss")
def test_cross_entropy_is_finite_for_logits_where_exp_overflows(label, expected):
    """``x = [1000, 0]``: ``exp(1000)`` is inf in float32 (above ~88.7), so ``softmax`` written
    as ``exp(x) / sum(exp(x))`` gives ``inf / inf = nan``. With ``m = max(x) = 1000``:
    ``lse = 1000 + ln(e⁰ + e⁻¹⁰⁰⁰) = 1000``; label 1 gives ``1000 - 0 = 1000``, label 0 gives 0."""
    out = _ce().cross_entropy_loss(_t([1000.0, 0.0]), torch.tensor(label))
    _close(out, torch.tensor(expected, dtype=torch.float32), f"cross_entropy_loss([1000, 0], label={label})", **F32,
           hint=("先减去每行最大值再 exp：lse = m + log(sum(exp(x - m)))，exp 的参数都 <= 0，不会溢出",
                 "subtract each row's max before exp: lse = m + log(sum(exp(x - m))); every exp then sees "
                 "a number <= 0 and cannot overflow"))


@pytest.mark.parametrize("dtype, expected_dtype", [(torch.float16, torch.float32), (torch.bfloat16, torch.float32),
                                                   (torch.float32, torch.float32), (torch.float64, torch.float64)],
                         ids=["float16", "bfloat16", "float32", "float64"])
@pytest.mark.symbol("cross_entropy_loss")
def test_cross_entropy_returns_float32_for_half_logits(dtype, expected_dtype):
    """Logits ``[1, 2, 3]`` (exact in every dtype), label 2: ``lse - 3 = 0.4076`` (see above).
    Half-precision logits are upcast, so the loss is float32 and accurate to float32
    (a float16 result would round 0.4076 to 0.4075, bfloat16 to 0.4082); float64 stays float64."""
    out = _ce().cross_entropy_loss(_t([[1.0, 2.0, 3.0]], dtype), torch.tensor([2]))
    expected = torch.tensor(math.log(math.e + math.e**2 + math.e**3) - 3.0, dtype=expected_dtype)
    _close(out, expected, f"cross_entropy_loss on {dtype} logits", **F32,
           hint=("先升精度：x = logits.to(torch.promote_types(logits.dtype, torch.float32))，半精度变 float32，float64 保持",
                 "upcast first: x = logits.to(torch.promote_types(logits.dtype, torch.float32)): half becomes "
                 "float32, float64 stays"))


@pytest.mark.parametrize(
    "logits_shape, labels, kwargs",
    [
        ((2, 3, 5), torch.zeros(2, 4, dtype=torch.long), {}),
        ((2, 5), torch.zeros(2), {}),
        ((2, 5), torch.tensor([1, 5]), {}),
        ((2, 5), torch.tensor([1, -1]), {}),
        ((2, 5), torch.zeros(2, dtype=torch.long), {"reduction": "avg"}),
        ((2, 5), torch.zeros(2, dtype=torch.long), {"label_smoothing": 1.5}),
    ],
    ids=["labels-shape", "float-labels", "label-equal-C", "label-minus-1", "bad-reduction", "smoothing-above-1"],
)
@pytest.mark.symbol("cross_entropy_loss")
def test_cross_entropy_rejects_bad_inputs_with_value_error(logits_shape, labels, kwargs):
    """``ValueError`` (with the fix in its message) for: labels whose shape is not the
    logits' without the class axis, float labels, a class id outside ``[0, C)`` that is not
    ``ignore_index`` (5 and -1 for C = 5), an unknown reduction, ``label_smoothing > 1``."""
    logits = torch.zeros(logits_shape)
    expect_error(ValueError, lambda: _ce().cross_entropy_loss(logits, labels, **kwargs),
                 f"cross_entropy_loss(logits {list(logits_shape)}, labels {labels.tolist()} ({labels.dtype}), {kwargs})")


# ===================================================================== preference_loss


@pytest.mark.parametrize("scores", [[0.0, 0.0, 0.0], [5.0, -3.0, 2.5]], ids=["zeros", "mixed"])
@pytest.mark.symbol("preference_loss")
def test_preference_loss_of_equal_scores_is_ln_2(scores):
    """``chosen == rejected``: ``sigmoid(0) = 1/2``, so every pair's loss is ``-ln(1/2) = ln 2 =
    0.6931``, and so is the mean, whatever the common values are."""
    s = _t(scores)
    out = _pref().preference_loss(s, s.clone())
    _close(out, torch.tensor(LN2, dtype=torch.float32), f"preference_loss({scores}, {scores})", **F32,
           hint=("loss = mean(-logsigmoid(chosen - rejected))，分数相等时每对都是 ln 2",
                 "loss = mean(-logsigmoid(chosen - rejected)); equal scores give ln 2 per pair"))


@pytest.mark.symbol("preference_loss")
def test_preference_loss_decreases_when_chosen_scores_above_rejected():
    """chosen ``[1, 3]``, rejected ``[0, 0]``: margins 1 and 3, losses
    ``ln(1 + e⁻¹) = 0.3133`` and ``ln(1 + e⁻³) = 0.0486``, mean **0.1809** < ln 2. Swapped
    (chosen below rejected): ``ln(1 + e) = 1.3133`` and ``ln(1 + e³) = 3.0486``, mean **2.1809** > ln 2.
    Adding 100 to every score changes nothing: only the difference counts."""
    pref = _pref().preference_loss
    good = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(-3.0))) / 2
    bad = (math.log1p(math.exp(1.0)) + math.log1p(math.exp(3.0))) / 2
    hint = ("符号反了？margin = chosen - rejected，loss = -logsigmoid(margin)：chosen 分数越高损失越小",
            "sign flipped? margin = chosen - rejected, loss = -logsigmoid(margin): the higher the chosen score, "
            "the lower the loss")
    _close(pref(_t([1.0, 3.0]), _t([0.0, 0.0])), torch.tensor(good, dtype=torch.float32),
           "preference_loss(chosen=[1, 3], rejected=[0, 0])", hint=hint, **F32)
    _close(pref(_t([0.0, 0.0]), _t([1.0, 3.0])), torch.tensor(bad, dtype=torch.float32),
           "preference_loss(chosen=[0, 0], rejected=[1, 3])", hint=hint, **F32)
    _close(pref(_t([101.0, 103.0]), _t([100.0, 100.0])), torch.tensor(good, dtype=torch.float32),
           "preference_loss(chosen=[101, 103], rejected=[100, 100])", hint=hint, **F32)


@pytest.mark.symbol("preference_loss")
def test_preference_loss_is_finite_for_a_very_wrong_pair():
    """chosen ``[-100, 0]``, rejected ``[100, 0]``: margins -200 and 0. ``sigmoid(-200) ≈ e⁻²⁰⁰``
    underflows to 0 in float32, so ``log(sigmoid)`` is -inf; ``-logsigmoid(-200) = softplus(200) =
    200 + ln(1 + e⁻²⁰⁰) = 200``. Mean ``(200 + ln 2) / 2 = 100.3466``. Gradient with respect to
    chosen: ``-(1 - sigmoid(margin)) / b = [-1/2, -1/4]``."""
    chosen = torch.tensor([-100.0, 0.0], requires_grad=True)
    out = _pref().preference_loss(chosen, _t([100.0, 0.0]))
    hint = ("不要写 torch.log(torch.sigmoid(m))：m 很负时 sigmoid 下溢为 0；用 F.logsigmoid(m)",
            "do not write torch.log(torch.sigmoid(m)): for very negative m the sigmoid underflows to 0; "
            "use F.logsigmoid(m)")
    _close(out.detach(), torch.tensor((200.0 + LN2) / 2), "preference_loss(chosen=[-100, 0], rejected=[100, 0])",
           hint=hint, **F32)
    out.backward()
    _close(chosen.grad, _t([-0.5, -0.25]), "d preference_loss / d chosen", hint=hint, **F32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.symbol("preference_loss")
def test_preference_loss_returns_float32_for_half_scores(dtype):
    """Scores ``[1, 3]`` vs ``[0, 0]`` in half precision (exact there): the loss is float32,
    ``0.1809`` as above, to float32 accuracy."""
    out = _pref().preference_loss(_t([1.0, 3.0], dtype), _t([0.0, 0.0], dtype))
    expected = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(-3.0))) / 2
    _close(out, torch.tensor(expected, dtype=torch.float32), f"preference_loss on {dtype} scores", **F32,
           hint=("先升到 float32：acc = torch.promote_types(dtype, torch.float32)", "upcast first: acc = torch.promote_types(dtype, torch.float32)"))


@pytest.mark.symbol("preference_loss")
def test_preference_loss_rejects_mismatched_shapes():
    """One chosen and one rejected score per pair: shapes ``[3]`` and ``[4]`` raise ValueError."""
    expect_error(ValueError, lambda: _pref().preference_loss(torch.zeros(3), torch.zeros(4)),
                 "preference_loss(chosen [3], rejected [4])")


# ===================================================================== AdamW


@pytest.mark.symbol("AdamW.step")
def test_adamw_first_step_moves_each_parameter_by_lr_times_sign_of_gradient():
    """Step ``t = 1`` from ``m = v = 0`` (β1 = 0.9, β2 = 0.999, eps = 0, no decay):
    ``m = 0.1·g``, ``v = 0.001·g²``; bias correction divides by ``1 - 0.9 = 0.1`` and
    ``1 - 0.999 = 0.001``: ``m̂ = g``, ``v̂ = g²``, so ``p -= lr·g/|g| = lr·sign(g)`` for any
    size of ``g`` (1e-3 to 10 here). lr = 0.1: ``[1, -2, 0.5, 3] -> [0.9, -1.9, 0.4, 3.1]``.
    Without the correction the step would be ``lr·0.1/sqrt(0.001) = 3.16·lr``."""
    p = _param([1.0, -2.0, 0.5, 3.0])
    opt = _adamw().AdamW([p], lr=0.1, eps=0.0, weight_decay=0.0)
    _step_with(opt, {p: [1.0, -2.0, 10.0, -1e-3]})
    _close(p.detach(), _t([0.9, -1.9, 0.4, 3.1]), "AdamW(lr=0.1, eps=0): parameters after the first step",
           hint=BIAS_HINT, **F32)


@pytest.mark.symbol("AdamW.step")
def test_adamw_constant_gradient_moves_lr_per_step_at_every_step():
    """A constant gradient ``g``: ``m_t = (1 - 0.9^t)·g`` and ``v_t = (1 - 0.999^t)·g²``, so
    with the correction of step ``t`` (not of step 1) ``m̂ = g``, ``v̂ = g²`` at every step and
    each step moves ``lr·sign(g)``: ``p_t = p_0 - t·lr·sign(g)``. g = ``[0.5, -4]``, lr = 0.1,
    ``p_0 = [0, 0]``: after t steps ``[-0.1t, 0.1t]``, checked for t = 1..5."""
    p = _param([0.0, 0.0])
    opt = _adamw().AdamW([p], lr=0.1, eps=0.0, weight_decay=0.0)
    for t in range(1, 6):
        _step_with(opt, {p: [0.5, -4.0]})
        _close(p.detach(), _t([-0.1 * t, 0.1 * t]), f"AdamW, constant gradient [0.5, -4]: parameters after step {t}",
               hint=BIAS_HINT, **F32)


@pytest.mark.symbol("AdamW.step")
def test_adamw_adds_eps_after_the_square_root():
    """First step, g = 3, eps = 1 (large on purpose), lr = 0.1: ``m̂ = 3``, ``sqrt(v̂) = 3``,
    step ``lr·3/(3 + 1) = 0.075``, so ``p: 0 -> -0.075``. eps inside the root,
    ``3/sqrt(9 + 1) = 0.9487``, would give -0.0949."""
    p = _param([0.0])
    opt = _adamw().AdamW([p], lr=0.1, eps=1.0, weight_decay=0.0)
    _step_with(opt, {p: [3.0]})
    _close(p.detach(), _t([-0.075]), "AdamW(lr=0.1, eps=1): parameter after one step with g = 3", **F32,
           hint=("eps 加在开方之后：denom = sqrt(v_hat) + eps，不是 sqrt(v_hat + eps)",
                 "eps goes after the square root: denom = sqrt(v_hat) + eps, not sqrt(v_hat + eps)"))


@pytest.mark.symbol("AdamW.step")
def test_adamw_weight_decay_is_decoupled_from_the_gradient():
    """Zero gradient: ``m = v = 0``, the Adam update is ``0 / (0 + eps) = 0``, and only the
    decoupled decay acts: ``p·(1 - lr·wd)``; lr = 0.1, wd = 0.5: ``[1, -4, 0.5]·0.95 =
    [0.95, -3.8, 0.475]``. L2 through the gradient (``g = wd·p``) would step by ``lr·sign(p)``:
    ``[0.9, -3.9, 0.4]``; decay mixed into ``m`` only would divide by ``eps`` and explode."""
    p = _param([1.0, -4.0, 0.5])
    opt = _adamw().AdamW([p], lr=0.1, weight_decay=0.5)
    _step_with(opt, {p: [0.0, 0.0, 0.0]})
    _close(p.detach(), _t([0.95, -3.8, 0.475]), "AdamW(lr=0.1, weight_decay=0.5): one step with a zero gradient",
           hint=DECAY_HINT, **F32)


@pytest.mark.symbol("AdamW.step")
def test_adamw_decays_the_parameter_before_the_update():
    """p = 1, g = 1, lr = 0.1, wd = 0.5, eps = 0: first the decay ``1·(1 - 0.05) = 0.95``, then
    the step ``- lr·sign(g)``: **0.85** (as ``torch.optim.AdamW``). Decaying after the update
    would give ``(1 - 0.1)·0.95 = 0.855``."""
    p = _param([1.0])
    opt = _adamw().AdamW([p], lr=0.1, eps=0.0, weight_decay=0.5)
    _step_with(opt, {p: [1.0]})
    _close(p.detach(), _t([0.85]), "AdamW(lr=0.1, weight_decay=0.5, eps=0): p = 1 after one step with g = 1", **F32,
           hint=("顺序：先 p.mul_(1 - lr * wd)，再做 Adam 更新（与 torch.optim.AdamW 相同）",
                 "order: p.mul_(1 - lr * wd) first, then the Adam update (as torch.optim.AdamW)"))


@pytest.mark.symbol("AdamW.step")
def test_adamw_uses_each_param_groups_own_lr_and_weight_decay():
    """Defaults lr = 1, wd = 0 are overridden per group (eps = 0):
    group A ``lr = 0.1, wd = 0``: ``[1, 1]``, g ``[2, -3]`` -> ``[1 - 0.1, 1 + 0.1] = [0.9, 1.1]``;
    group B ``lr = 0.01, wd = 1``: ``[2, -2]·(1 - 0.01) = [1.98, -1.98]``, g ``[0.5, 0.5]`` ->
    ``[1.97, -1.99]``. A parameter of group B without a gradient stays ``[7]`` and gets no state."""
    a, b, frozen = _param([1.0, 1.0]), _param([2.0, -2.0]), _param([7.0])
    opt = _adamw().AdamW([{"params": [a], "lr": 0.1, "weight_decay": 0.0},
                          {"params": [b, frozen], "lr": 0.01, "weight_decay": 1.0}], lr=1.0, eps=0.0, weight_decay=0.0)
    _step_with(opt, {a: [2.0, -3.0], b: [0.5, 0.5]})
    hint = ("每个参数组用自己的超参数：在 for group in self.param_groups 里读 group[\"lr\"]、group[\"weight_decay\"]",
            "each parameter group has its own hyper-parameters: read group[\"lr\"], group[\"weight_decay\"] inside "
            "for group in self.param_groups")
    _close(a.detach(), _t([0.9, 1.1]), "AdamW group A (lr=0.1, weight_decay=0) after one step", hint=hint, **F32)
    _close(b.detach(), _t([1.97, -1.99]), "AdamW group B (lr=0.01, weight_decay=1) after one step", hint=hint, **F32)
    _close(frozen.detach(), _t([7.0]), "AdamW: a parameter whose .grad is None", **F32,
           hint=("p.grad 为 None 的参数要跳过（continue），不能衰减", "skip parameters whose .grad is None (continue): no decay either"))
    assert frozen not in opt.state or len(opt.state[frozen]) == 0, say(
        "AdamW：没有梯度的参数不应有状态", "AdamW: a parameter without a gradient should get no state")


@pytest.mark.symbol("AdamW.step")
def test_adamw_state_has_step_and_both_moments():
    """Defaults β = (0.9, 0.999). After one step with g: ``state["step"] = 1``,
    ``exp_avg = 0.1·g``, ``exp_avg_sq = 0.001·g²``; after a second step with the same g:
    ``step = 2``, ``exp_avg = 0.9·0.1·g + 0.1·g = 0.19·g``,
    ``exp_avg_sq = 0.999·0.001·g² + 0.001·g² = 0.001999·g²``. g = ``[2, -1]``."""
    p = _param([1.0, 1.0])
    opt = _adamw().AdamW([p], lr=0.01)
    g = _t([2.0, -1.0])
    hint = ("状态放在 self.state[p]：\"step\"（整数，第一步后为 1）、\"exp_avg\"（m）、\"exp_avg_sq\"（v），"
            "这样 state_dict() 才能保存它们",
            "keep the state in self.state[p]: \"step\" (an int, 1 after the first step), \"exp_avg\" (m) and "
            "\"exp_avg_sq\" (v), so that state_dict() saves them")
    for t, m_scale, v_scale in [(1, 0.1, 0.001), (2, 0.19, 0.001999)]:
        _step_with(opt, {p: g.tolist()})
        state = opt.state[p]
        missing = [key for key in ("step", "exp_avg", "exp_avg_sq") if key not in state]
        assert not missing, say(f"AdamW 的状态缺少 {missing}。{hint[0]}", f"AdamW state lacks {missing}. {hint[1]}")
        assert_equal(float(state["step"]), float(t), f"AdamW state['step'] after {t} step(s)")
        _close(state["exp_avg"], m_scale * g, f"AdamW state['exp_avg'] after {t} step(s)", hint=hint, **F32)
        _close(state["exp_avg_sq"], v_scale * g * g, f"AdamW state['exp_avg_sq'] after {t} step(s)", hint=hint, **F32)


@pytest.mark.symbol("AdamW.step")
def test_adamw_step_returns_the_closures_loss():
    """``opt.step(closure)`` calls the closure with gradients enabled (the step itself runs
    under ``torch.no_grad()``), returns its loss and uses the gradient it computed:
    loss ``(p - 3)²`` at p = 1 has gradient -4, so p moves by +lr = 0.1 (first step)."""
    p = _param([1.0])
    opt = _adamw().AdamW([p], lr=0.1, eps=0.0, weight_decay=0.0)

    def closure():
        opt.zero_grad()
        loss = ((p - 3.0) ** 2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    hint = ("有 closure 时：with torch.enable_grad(): loss = closure()，最后 return loss",
            "with a closure: with torch.enable_grad(): loss = closure(), and return loss at the end")
    assert isinstance(loss, torch.Tensor), say(f"AdamW.step(closure) 应返回 closure 的损失，实际 {loss!r}。{hint[0]}",
                                               f"AdamW.step(closure) should return the closure's loss, got {loss!r}. {hint[1]}")
    _close(loss.detach(), torch.tensor(4.0), "AdamW.step(closure): the returned loss", hint=hint, **F32)
    _close(p.detach(), _t([1.1]), "AdamW.step(closure): parameter after the step", hint=hint, **F32)


# ===================================================================== Lion


@pytest.mark.symbol("Lion.step")
def test_lion_first_step_is_minus_lr_times_sign_of_gradient():
    """``m = 0`` at first, so the update is ``sign(β1·0 + (1 - β1)·g) = sign(g)``:
    lr = 0.1, no decay, ``[1, -2, 0.5, 3]`` with g ``[2, -1e-3, 0, -7]`` ->
    ``[0.9, -1.9, 0.5, 3.1]`` (a zero gradient has sign 0: no move). Then
    ``m = β2·0 + (1 - β2)·g = 0.01·g`` (β2 = 0.99)."""
    p = _param([1.0, -2.0, 0.5, 3.0])
    opt = _lion().Lion([p], lr=0.1, betas=(0.9, 0.99), weight_decay=0.0)
    g = [2.0, -1e-3, 0.0, -7.0]
    _step_with(opt, {p: g})
    hint = ("Lion：p -= lr * sign(beta1 * m + (1 - beta1) * g)，每个坐标恰好移动 lr；之后 m = beta2 * m + (1 - beta2) * g",
            "Lion: p -= lr * sign(beta1 * m + (1 - beta1) * g), every coordinate moves by exactly lr; then "
            "m = beta2 * m + (1 - beta2) * g")
    _close(p.detach(), _t([0.9, -1.9, 0.5, 3.1]), "Lion(lr=0.1): parameters after the first step", hint=hint, **F32)
    assert "exp_avg" in opt.state[p], say("Lion 的动量应存为 self.state[p][\"exp_avg\"]",
                                          "Lion's momentum should be stored as self.state[p][\"exp_avg\"]")
    _close(opt.state[p]["exp_avg"], 0.01 * _t(g), "Lion state['exp_avg'] after the first step", hint=hint, **F32)


@pytest.mark.symbol("Lion.step")
def test_lion_computes_the_sign_before_updating_the_momentum():
    """β = (0.9, 0.5), lr = 0.1, p = 0, g = +1 then -1.
    Step 1: ``sign(0.1·1) = +1``, p = -0.1; ``m = 0.5·0 + 0.5·1 = 0.5``.
    Step 2: update ``sign(0.9·0.5 + 0.1·(-1)) = sign(0.35) = +1``, p = **-0.2**; then
    ``m = 0.5·0.5 + 0.5·(-1) = -0.25``. Updating m first (m = -0.25, ``sign(0.9·(-0.25) - 0.1) = -1``)
    or interpolating the update with β2 (``sign(0.5·0.5 - 0.5) = -1``) would give p = 0."""
    p = _param([0.0])
    opt = _lion().Lion([p], lr=0.1, betas=(0.9, 0.5), weight_decay=0.0)
    hint = ("先用旧动量算方向 sign(beta1 * m + (1 - beta1) * g) 并更新 p，最后才 m = beta2 * m + (1 - beta2) * g；"
            "方向用 beta1，动量用 beta2",
            "take the sign of beta1 * m + (1 - beta1) * g with the old momentum and update p, only then "
            "m = beta2 * m + (1 - beta2) * g; beta1 for the update, beta2 for the momentum")
    _step_with(opt, {p: [1.0]})
    _close(p.detach(), _t([-0.1]), "Lion(lr=0.1, betas=(0.9, 0.5)): p after step 1 (g = 1)", hint=hint, **F32)
    _step_with(opt, {p: [-1.0]})
    _close(p.detach(), _t([-0.2]), "Lion(lr=0.1, betas=(0.9, 0.5)): p after step 2 (g = -1)", hint=hint, **F32)
    _close(opt.state[p]["exp_avg"], _t([-0.25]), "Lion state['exp_avg'] after step 2", hint=hint, **F32)


@pytest.mark.symbol("Lion.step")
def test_lion_weight_decay_is_decoupled_and_comes_first():
    """lr = 0.1, wd = 0.5: ``p·(1 - 0.05)`` then ``- lr·sign(g)``. p ``[1, -4, 2]``, g ``[1, 0, -3]``:
    ``[0.95 - 0.1, -3.8 - 0, 1.9 + 0.1] = [0.85, -3.8, 2.0]`` (decay after the update would give
    ``0.9·0.95 = 0.855`` for the first; through the gradient, the zero-gradient one would move by lr)."""
    p = _param([1.0, -4.0, 2.0])
    opt = _lion().Lion([p], lr=0.1, weight_decay=0.5)
    _step_with(opt, {p: [1.0, 0.0, -3.0]})
    _close(p.detach(), _t([0.85, -3.8, 2.0]), "Lion(lr=0.1, weight_decay=0.5): parameters after one step", **F32,
           hint=("先解耦衰减 p.mul_(1 - lr * wd)，再 p -= lr * sign(...)；衰减不加进梯度",
                 "decoupled decay first, p.mul_(1 - lr * wd), then p -= lr * sign(...); the decay is not added to g"))


@pytest.mark.symbol("Lion.step")
def test_lion_uses_each_param_groups_own_lr():
    """Defaults lr = 1 are overridden per group: group A lr = 0.1, group B lr = 0.01 with
    wd = 1; p ``[1]`` and ``[2]``, g ``[-5]`` and ``[5]``: ``1 + 0.1 = 1.1`` and
    ``2·0.99 - 0.01 = 1.97``."""
    a, b = _param([1.0]), _param([2.0])
    opt = _lion().Lion([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.01, "weight_decay": 1.0}], lr=1.0)
    _step_with(opt, {a: [-5.0], b: [5.0]})
    hint = ("在 for group in self.param_groups 里读 group[\"lr\"]、group[\"betas\"]、group[\"weight_decay\"]",
            "read group[\"lr\"], group[\"betas\"], group[\"weight_decay\"] inside for group in self.param_groups")
    _close(a.detach(), _t([1.1]), "Lion group A (lr=0.1) after one step", hint=hint, **F32)
    _close(b.detach(), _t([1.97]), "Lion group B (lr=0.01, weight_decay=1) after one step", hint=hint, **F32)


# ===================================================================== schedules

W, T = 2, 10  # warmup steps, training steps
STEPS = list(range(T + 3))  # 0 .. 12: warmup, decay, the end and two steps past it


def _cosine_by_hand(step: int, r: float) -> float:
    """Warmup ``step / W``; then ``r + (1 - r)·½(1 + cos(π·(step - W)/(T - W)))``; r after T."""
    if step < W:
        return step / W
    progress = min(1.0, (step - W) / (T - W))
    return r + (1 - r) * 0.5 * (1 + math.cos(math.pi * progress))


@pytest.mark.parametrize("min_lr_ratio", [0.0, 0.1])
@pytest.mark.symbol("cosine_lr_lambda")
def test_cosine_schedule_values_by_hand(min_lr_ratio):
    """W = 2, T = 10 (8 decay steps), r = min_lr_ratio. Warmup ``step / 2``: steps 0, 1 give
    **0, 0.5**; step 2 (end of warmup) **1**. Decay, progress ``(step - 2)/8``: step 4 (¼) gives
    ``r + (1 - r)·½(1 + cos(π/4)) = r + (1 - r)·0.8536``; step 6 (½, mid-decay)
    ``r + (1 - r)·½ = 0.5`` (r = 0) or ``0.55`` (r = 0.1); step 10 (the end) exactly **r**;
    steps 11, 12 stay at r. Dividing progress by T instead of T - W would end at
    ``½(1 + cos(0.8π)) = 0.095`` above r."""
    lam = _lambdas(_sched().cosine_lr_lambda, STEPS, num_warmup_steps=W, num_training_steps=T,
                   min_lr_ratio=min_lr_ratio)
    expected = torch.tensor([_cosine_by_hand(s, min_lr_ratio) for s in STEPS], dtype=torch.float64)
    assert expected[6] == pytest.approx(0.5 + 0.5 * min_lr_ratio) and expected[10] == pytest.approx(min_lr_ratio)
    _close(lam, expected, f"cosine_lr_lambda(step, W=2, T=10, min_lr_ratio={min_lr_ratio}) for steps 0..12 "
           "(the index is the step)", **EXACT,
           hint=("预热 step / W；之后 progress = (step - W) / (T - W)，截断到 1；λ = r + (1 - r) * 0.5 * (1 + cos(π * progress))。"
                 + WARMUP_HINT[0],
                 "warmup step / W; then progress = (step - W) / (T - W), clamped to 1; "
                 "λ = r + (1 - r) * 0.5 * (1 + cos(π * progress)). " + WARMUP_HINT[1]))


@pytest.mark.symbol("linear_lr_lambda")
def test_linear_schedule_values_by_hand():
    """W = 2, T = 10: warmup **0, 0.5**, then ``(T - step)/(T - W) = (10 - step)/8``:
    step 2 -> **1**, step 4 -> 0.75, step 6 (mid-decay) -> **0.5**, step 10 -> **0**, and 0 after
    (not negative: ``(10 - 12)/8 = -0.25`` would be a negative learning rate)."""
    lam = _lambdas(_sched().linear_lr_lambda, STEPS, num_warmup_steps=W, num_training_steps=T)
    expected = torch.tensor([0.0, 0.5] + [max(0.0, (T - s) / (T - W)) for s in STEPS[2:]], dtype=torch.float64)
    _close(lam, expected, "linear_lr_lambda(step, W=2, T=10) for steps 0..12 (the index is the step)", **EXACT,
           hint=("预热 step / W；之后 max(0, (T - step) / (T - W))：在 W 处为 1，在 T 处为 0，之后保持 0。" + WARMUP_HINT[0],
                 "warmup step / W; then max(0, (T - step) / (T - W)): 1 at W, 0 at T, and 0 after. " + WARMUP_HINT[1]))


@pytest.mark.symbol("constant_lr_lambda")
def test_constant_schedule_values_by_hand():
    """W = 4: warmup ``step / 4`` gives **0, 0.25, 0.5, 0.75** at steps 0..3, then **1** at
    step 4 and forever (checked to step 1000)."""
    steps = [0, 1, 2, 3, 4, 5, 1000]
    lam = _lambdas(_sched().constant_lr_lambda, steps, num_warmup_steps=4)
    _close(lam, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0], dtype=torch.float64),
           "constant_lr_lambda(step, W=4) at steps [0, 1, 2, 3, 4, 5, 1000]", **EXACT,
           hint=("常数调度也有预热：step < W 时返回 step / W，之后返回 1.0。" + WARMUP_HINT[0],
                 "the constant schedule has a warmup too: step / W while step < W, then 1.0. " + WARMUP_HINT[1]))


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.symbol(name), id=name)
                                  for name in ("cosine_lr_lambda", "linear_lr_lambda", "constant_lr_lambda")])
def test_schedules_without_warmup_start_at_the_full_lr(name):
    """``num_warmup_steps = 0``: no warmup, so step 0 already has multiplier **1** (progress 0:
    ``½(1 + cos 0) = 1`` for cosine, ``T/T = 1`` for linear, 1 for constant); no division by 0."""
    function = getattr(_sched(), name)
    lengths = {"num_warmup_steps": 0} | ({} if name == "constant_lr_lambda" else {"num_training_steps": 10})
    _close(_lambdas(function, [0], **lengths), torch.tensor([1.0], dtype=torch.float64),
           f"{name}(0, num_warmup_steps=0)", **EXACT,
           hint=("W = 0 时没有预热：step < W 永远不成立；分母用 max(1, ...) 防止除以 0",
                 "W = 0 means no warmup: step < W never holds; use max(1, ...) in denominators to avoid dividing by 0"))
