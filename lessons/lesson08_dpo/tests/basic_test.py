"""Lesson 08, basic tier: the contract of every target on small, hand-checkable cases.

Every expected value is worked out by hand in the test's docstring or written out here from
the textbook formula; none is copied from running the reference.

Notation: ``π_c, π_r`` the policy's log-probabilities of the chosen / rejected answers,
``ref_c, ref_r`` the reference's, ``z = (π_c - π_r) - (ref_c - ref_r)`` the DPO logits,
``β`` the strength of the implicit KL penalty, ``ε`` the label smoothing,
``sp(x) = ln(1 + eˣ)`` (softplus, so ``-ln σ(x) = sp(-x)``).

``sequence_logps`` by hand: logits ``[0, ln 3]`` at a position give ``softmax = [1/4, 3/4]``,
so the label 1 scores ``ln(3/4) = -0.2877`` and the label 0 ``ln(1/4) = -1.3863``.

``dpo_loss`` by hand: the same three pairs throughout::

    π_c = [-4, -3, -8]   π_r = [-6, -5, -5]   ref_c = [-5, -2, -6]   ref_r = [-5, -4, -7]
    π_c - π_r = [2, 2, -3]   ref_c - ref_r = [0, 2, 1]   z = [2, 0, -4]
    π_c - ref_c = [1, -1, -2]   π_r - ref_r = [-1, -1, 2]   (the rewards over β)

The second pair shows why the reference is there: the policy prefers the chosen answer by
2 nats, but so did the reference, so ``z = 0``: nothing learned yet.

``DPOTrainer.compute_loss`` is checked against each answer scored alone (no padding, no
concatenation) with ``torch.log_softmax`` in float64 and the formula written here; the
learner's ``sequence_logps`` / ``dpo_loss`` are swapped for the reference's in those tests,
so only ``compute_loss`` is under test. The last test trains the learner's whole stack.

Shared and not under test: the reference ``CausalLM`` (hidden 32, one layer, the 262-token
chat vocabulary of ``ByteLevelTokenizer`` + ``<|user|>`` / ``<|assistant|>``), 32 built-in
preference pairs, ``dpo_collate``, the ``Trainer`` loop.

Tolerances: hand cases in float32 ``1e-6`` (a few ulps of values of size 0.1-10);
``compute_loss`` against float64 single-sequence scoring ``1e-5`` on the loss and the rewards
(float32 sums over up to ~90 tokens, padded and concatenated: measured 3e-7 off) and
``1e-5`` + ``1e-4`` relative on the gradients (measured 2e-7 off); every mistake in
``mistakes.py`` moves them by 5e-3 or more.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from intro2llm_cli.testkit import assert_close, expect_error, learner, reference, say

LN2 = math.log(2.0)
LN3 = math.log(3.0)
F32 = {"atol": 1e-6, "rtol": 1e-6}
MODEL = {"atol": 1e-5, "rtol": 1e-5}

# the three hand pairs of the module docstring
PC, PR, RC, RR = [-4.0, -3.0, -8.0], [-6.0, -5.0, -5.0], [-5.0, -2.0, -6.0], [-5.0, -4.0, -7.0]
Z = [2.0, 0.0, -4.0]

MASK_HINT = (
    "只有 labels != -100 的位置计分：-100 是 prompt 和填充，不能当成 token 0 去取对数概率（先 masked_fill 成 0 "
    "再 gather，算完把这些位置置 0 再求和）",
    "only positions with labels != -100 are scored: -100 marks the prompt and the padding and must not be read as "
    "token 0 (masked_fill them to 0 for the gather, then zero those positions before the sum)",
)
SUM_HINT = (
    "average=False（DPO 的默认）是逐 token 对数概率的和，不是平均；average=True 才除以该行的标签 token 数",
    "average=False (DPO's default) is the sum of the per-token log-probabilities, not their mean; only average=True "
    "divides by the row's number of label tokens",
)
SHIFT_HINT = (
    "labels 已经错开一位（labels[:, i] 是 input_ids[:, i] 之后的 token），logits[:, i] 直接对 labels[:, i] 打分；"
    "再切 logits[:, :-1] / labels[:, 1:] 就是拿每个 token 去配它后面那个",
    "labels are already shifted (labels[:, i] is the token after input_ids[:, i]), so logits[:, i] scores labels[:, i] "
    "directly; slicing logits[:, :-1] / labels[:, 1:] once more pairs every token with the one after it",
)
EMPTY_HINT = (
    "没有标签 token 的行：和是 0；平均要除以 mask.sum(-1).clamp(min=1)，否则 0 / 0 = nan 会毁掉整个 batch 的 loss",
    "a row without label tokens: the sum is 0; the mean must divide by mask.sum(-1).clamp(min=1), or 0 / 0 = nan "
    "ruins the loss of the whole batch",
)
REWARD_HINT = (
    "隐式奖励是 β·(π - ref)，每一边各自和参考模型比：chosen_rewards = β·(π_c - ref_c)，rejected_rewards = β·(π_r - ref_r)",
    "the implicit reward is β·(π - ref), each side against the reference: chosen_rewards = β·(π_c - ref_c), "
    "rejected_rewards = β·(π_r - ref_r)",
)
COMPUTE_HINT = (
    "对照 Step 注释：chosen 在前 rejected 在后拼成 [2b, L] 做一次前向；labels 已错开，直接交给 sequence_logps；"
    "logps[:b] 是 chosen、logps[b:] 是 rejected；参考模型是 self.ref_model（不是正在训练的 model），在 torch.no_grad() 里"
    "对同样的输入前向；IPO 用 average=self.average_logps；beta / loss_type / label_smoothing 取 self 上的值",
    "check against the Step comments: chosen first, rejected second, concatenated to [2b, L] for one forward; labels "
    "are already shifted, give them to sequence_logps as they are; logps[:b] is chosen, logps[b:] rejected; the "
    "reference is self.ref_model (not the model being trained), run on the same inputs under torch.no_grad(); IPO "
    "uses average=self.average_logps; beta / loss_type / label_smoothing come from self",
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from intra-op threads; one thread is faster and repeatable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _dl():
    return learner("loss.dpo_loss")


def _t(values, dtype=torch.float32) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def _sp(x: float) -> float:
    """softplus ln(1 + eˣ), written so that it never overflows."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _matches(actual, value: float) -> bool:
    try:
        return abs(float(actual) - value) <= 1e-5 + 1e-5 * abs(value)
    except (TypeError, ValueError, RuntimeError):
        return False


def _likely(actual, wrong: dict[float, tuple[str, str]], default: tuple[str, str]) -> tuple[str, str]:
    """The hint of the wrong formula ``actual`` equals, if any (else ``default``)."""
    for value, hint in wrong.items():
        if _matches(actual, value):
            return hint
    return default


# ===================================================================== sequence_logps


@pytest.mark.parametrize("average", [False, True], ids=["sum", "mean"])
@pytest.mark.symbol("sequence_logps")
def test_sequence_logps_sums_the_label_tokens_by_hand(average):
    """Every position has logits ``[0, ln 3]``, so label 1 scores ``ln(3/4)`` and label 0 ``ln(1/4)``.
    Row 0: labels ``[-100, -100, 1, 0]`` (a prompt of two, an answer of two):
    sum ``ln(3/4) + ln(1/4) = ln(3/16) = -1.6740``, mean ``-0.8370``.
    Row 1: ``[-100, 1, 1, -100]`` (padding at the end): sum ``2 ln(3/4) = -0.5754``, mean ``-0.2877``.
    Counting the -100 positions as token 0 would add ``ln(1/4)`` for each of them."""
    logits = _t([[[0.0, LN3]] * 4] * 2)  # [2, 4, 2]
    labels = torch.tensor([[-100, -100, 1, 0], [-100, 1, 1, -100]])
    sums = [math.log(3 / 16), 2 * math.log(3 / 4)]
    expected = [sums[0] / 2, sums[1] / 2] if average else sums
    out = _dl().sequence_logps(logits, labels, average=average)
    hint = MASK_HINT  # the likeliest cause, unless the value is the other reduction
    first = out[0] if isinstance(out, torch.Tensor) and out.shape == (2,) else None
    if _matches(first, sums[0] / 2 if not average else sums[0]):
        hint = SUM_HINT
    assert_close(out, _t(expected), f"sequence_logps(average={average})", **F32, hint=hint)


@pytest.mark.symbol("sequence_logps")
def test_sequence_logps_does_not_shift_the_labels_again():
    """Position t of ``logits`` favours token t: ``logits[t] = 2·onehot(t)`` over 4 tokens, so
    ``log p(t at t) = 2 - ln(e² + 3) = -0.3408`` and any other token ``-ln(e² + 3) = -2.3408``.
    Labels ``[-100, 1, 2, 3]`` are already shifted: each matches its own position,
    sum ``3 · (-0.3408) = -1.0223``. Shifting once more (``logits[:, :-1]`` against
    ``labels[:, 1:]``) scores every label one position early: ``3 · (-2.3408) = -7.0223``."""
    logits = (2 * torch.eye(4)).unsqueeze(0)  # [1, 4, 4]
    labels = torch.tensor([[-100, 1, 2, 3]])
    lse = math.log(math.e**2 + 3)
    out = _dl().sequence_logps(logits, labels)
    assert_close(out, _t([3 * (2 - lse)]), "sequence_logps of already-shifted labels", **F32, hint=SHIFT_HINT)


@pytest.mark.parametrize("average", [False, True], ids=["sum", "mean"])
@pytest.mark.symbol("sequence_logps")
def test_sequence_logps_row_without_labels_is_zero_not_nan(average):
    """Row 0 is all -100 (a pair whose answer was cut off entirely), row 1 has one label
    (``ln(3/4)``): the empty row gives exactly 0 for the sum and for the mean (0 tokens: 0 / 1,
    never 0 / 0 = nan, which would turn the whole batch's loss into nan)."""
    logits = _t([[[0.0, LN3]] * 3] * 2)
    labels = torch.tensor([[-100, -100, -100], [-100, -100, 1]])
    out = _dl().sequence_logps(logits, labels, average=average)
    assert_close(out, _t([0.0, math.log(3 / 4)]), f"sequence_logps(average={average}) with an empty row", **F32,
                 hint=EMPTY_HINT)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.symbol("sequence_logps")
def test_sequence_logps_shape_and_dtype(dtype):
    """Logits ``[3, 5, 7]`` and labels ``[3, 5]`` give one value per row, ``[3]``, in float32 for
    float32 logits and float64 for float64 ones (never a lower precision than float32)."""
    logits = torch.randn(3, 5, 7, dtype=dtype)
    labels = torch.randint(0, 7, (3, 5))
    out = _dl().sequence_logps(logits, labels)
    assert isinstance(out, torch.Tensor) and out.shape == (3,), say(
        f"sequence_logps 应返回形状 [3]（每行一个值），得到 {getattr(out, 'shape', type(out).__name__)}：对最后一维 "
        "gather 标签、再沿序列维 (dim=-1) 求和",
        f"sequence_logps should return shape [3] (one value per row), got {getattr(out, 'shape', type(out).__name__)}: "
        "gather the labels on the last axis, then sum over the sequence axis (dim=-1)")
    assert out.dtype == dtype, say(
        f"{dtype} 的 logits 应得到 {dtype}，得到 {out.dtype}：用 torch.promote_types(logits.dtype, torch.float32)",
        f"{dtype} logits should give {dtype}, got {out.dtype}: use torch.promote_types(logits.dtype, torch.float32)")


@pytest.mark.parametrize("logits_shape, labels_shape, dtype", [
    ((2, 5, 7), (2, 4), torch.long),
    ((10, 7), (10,), torch.long),
    ((2, 5, 7), (2, 5), torch.float32),
], ids=["labels-shifted-by-the-caller", "logits-not-3d", "float-labels"])
@pytest.mark.symbol("sequence_logps")
def test_sequence_logps_rejects_mismatched_inputs(logits_shape, labels_shape, dtype):
    """``labels`` must be ``[b, s]`` with the ``b, s`` of ``logits [b, s, V]`` and hold integers:
    labels one shorter mean someone shifted them again; a silent broadcast or slicing would
    score the wrong tokens. ValueError, naming the labels."""
    labels = torch.zeros(labels_shape, dtype=dtype)
    expect_error(ValueError, lambda: _dl().sequence_logps(torch.randn(logits_shape), labels),
                 f"sequence_logps(logits {list(logits_shape)}, labels {list(labels_shape)} {dtype})")


# ===================================================================== dpo_loss


def _hand_inputs(requires_grad: bool = False) -> list[torch.Tensor]:
    return [_t(v).requires_grad_(requires_grad) for v in (PC, PR, RC, RR)]


def _sigmoid_losses(beta: float, eps: float, z=Z) -> list[float]:
    """``(1 - ε)·sp(-βz) + ε·sp(βz)``, one per pair."""
    return [(1 - eps) * _sp(-beta * v) + eps * _sp(beta * v) for v in z]


def _mean(values) -> float:
    return sum(values) / len(values)


SIGN_HINT = ("结果像是间隔的符号反了：logits = (π_c - π_r) - (ref_c - ref_r)，chosen 减 rejected，策略减参考；sigmoid 损失的"
             "主项是 -(1 - ε)·logsigmoid(+β·logits)（chosen 越被偏爱，损失越小），ε 才乘 logsigmoid(-β·logits)",
             "the result looks like a flipped margin: logits = (π_c - π_r) - (ref_c - ref_r), chosen minus rejected, "
             "policy minus reference; the sigmoid loss's main term is -(1 - ε)·logsigmoid(+β·logits) (the more chosen "
             "is preferred, the lower), and only ε multiplies logsigmoid(-β·logits)")
BETA_TWICE_HINT = ("β 乘了两次：用奖励 β·(π - ref) 相减之后不要再乘 β；logits 本身不含 β，只在 logsigmoid(β·logits) 里乘一次",
                   "β applied twice: once the rewards β·(π - ref) are subtracted, do not multiply by β again; the "
                   "logits carry no β, it enters once, in logsigmoid(β·logits)")
SUM_BATCH_HINT = ("对 batch 求了和：返回每对损失的平均 losses.mean()，不是 losses.sum()（否则 loss 随 batch 大小变化）",
                  "summed over the batch: return the mean of the per-pair losses, losses.mean(), not losses.sum() (or "
                  "the loss grows with the batch size)")
SMOOTH_HINT = ("标签平滑放反了：ε 是标签被翻转的概率，所以 (1 - ε) 乘 -logsigmoid(β·logits)，ε 乘 -logsigmoid(-β·logits)",
               "label smoothing on the wrong side: ε is the probability that the label is flipped, so (1 - ε) "
               "weighs -logsigmoid(β·logits) and ε weighs -logsigmoid(-β·logits)")
IPO_HINT = ("IPO 的目标间隔是 1/(2β)：losses = (logits - 1 / (2 * beta)) ** 2，不是 1/β",
            "IPO's target margin is 1/(2β): losses = (logits - 1 / (2 * beta)) ** 2, not 1/β")
HINGE_HINT = ("hinge 要截断：torch.relu(1 - β·logits)；β·logits 超过 1 的对损失为 0，不能是负数（否则一直把间隔推大）",
              "the hinge is clipped: torch.relu(1 - β·logits); pairs with β·logits above 1 have loss 0, not a "
              "negative one (which would push the margin forever)")


@pytest.mark.parametrize("loss_type, beta, eps", [
    ("sigmoid", 0.5, 0.0), ("sigmoid", 0.5, 0.2), ("ipo", 0.5, 0.0), ("hinge", 1.0, 0.0),
], ids=["sigmoid", "sigmoid-smoothed", "ipo", "hinge"])
@pytest.mark.symbol("dpo_loss")
def test_dpo_loss_by_hand(loss_type, beta, eps):
    """The three hand pairs, ``z = [2, 0, -4]``:

    - sigmoid, β = 0.5: ``βz = [1, 0, -2]``, losses ``sp(-βz) = [0.3133, ln 2 = 0.6931, 2.1269]``,
      mean ``1.0444``;
    - sigmoid, β = 0.5, ε = 0.2: ``0.8·sp(-βz) + 0.2·sp(βz) = [0.5133, 0.6931, 1.7269]``, mean ``0.9778``;
    - ipo, β = 0.5: target ``1/(2β) = 1``, losses ``(z - 1)² = [1, 1, 25]``, mean ``9``;
    - hinge, β = 1: ``relu(1 - z) = [0, 1, 5]``, mean ``2`` (the first pair is past the margin: 0, not -1).
    """
    if loss_type == "sigmoid":
        expected = _mean(_sigmoid_losses(beta, eps))
        wrong = {_mean(_sigmoid_losses(beta, eps, [-v for v in Z])): SIGN_HINT,
                 _mean(_sigmoid_losses(beta * beta, eps)): BETA_TWICE_HINT,
                 3 * expected: SUM_BATCH_HINT}
        if eps:
            wrong[_mean(_sigmoid_losses(beta, 1 - eps))] = SMOOTH_HINT
    elif loss_type == "ipo":
        expected = _mean([(v - 1 / (2 * beta)) ** 2 for v in Z])
        wrong = {_mean([(v - 1 / beta) ** 2 for v in Z]): IPO_HINT, _mean([(v + 1 / (2 * beta)) ** 2 for v in Z]):
                 SIGN_HINT, 3 * expected: SUM_BATCH_HINT}
    else:
        expected = _mean([max(0.0, 1 - beta * v) for v in Z])
        wrong = {_mean([1 - beta * v for v in Z]): HINGE_HINT, _mean([max(0.0, 1 + beta * v) for v in Z]): SIGN_HINT,
                 3 * expected: SUM_BATCH_HINT}
    loss = _dl().dpo_loss(*_hand_inputs(), beta=beta, loss_type=loss_type, label_smoothing=eps)[0]
    default = ("对照公式：logits = (π_c - π_r) - (ref_c - ref_r)；sigmoid: -(1-ε)·logsigmoid(β·logits) - "
               "ε·logsigmoid(-β·logits)；ipo: (logits - 1/(2β))²；hinge: relu(1 - β·logits)；最后对 batch 取平均",
               "check the formula: logits = (π_c - π_r) - (ref_c - ref_r); sigmoid: -(1-ε)·logsigmoid(β·logits) - "
               "ε·logsigmoid(-β·logits); ipo: (logits - 1/(2β))²; hinge: relu(1 - β·logits); then the batch mean")
    assert_close(loss, torch.tensor(expected), f"dpo_loss(loss_type={loss_type!r}, beta={beta}, "
                 f"label_smoothing={eps})", **F32, hint=_likely(loss, wrong, default))


@pytest.mark.parametrize("beta", [0.5, 0.1])
@pytest.mark.symbol("dpo_loss")
def test_dpo_loss_rewards_by_hand(beta):
    """``chosen_rewards = β·(π_c - ref_c) = β·[1, -1, -2]``, ``rejected_rewards = β·(π_r - ref_r) =
    β·[-1, -1, 2]``; their difference is ``β·z = β·[2, 0, -4]``."""
    _, chosen, rejected = _dl().dpo_loss(*_hand_inputs(), beta=beta)
    assert_close(chosen, _t([beta * v for v in (1, -1, -2)]), f"chosen_rewards (beta={beta})", **F32, hint=REWARD_HINT)
    assert_close(rejected, _t([beta * v for v in (-1, -1, 2)]), f"rejected_rewards (beta={beta})", **F32,
                 hint=REWARD_HINT)


@pytest.mark.symbol("dpo_loss")
def test_dpo_loss_rewards_are_detached_and_the_loss_is_not():
    """Inputs that require grad: the loss has a graph (it is what ``backward`` runs on), the two
    reward tensors have none (``requires_grad`` False, ``grad_fn`` None): they are for logging,
    and a reward kept attached would let any code that adds it to a loss push the model through
    a side door."""
    loss, chosen, rejected = _dl().dpo_loss(*_hand_inputs(requires_grad=True), beta=0.5)
    assert loss.requires_grad, say("loss 应该带着计算图（requires_grad=True）：不要对 loss 调用 .detach() / .item()",
                                   "the loss must keep its graph (requires_grad=True): no .detach() / .item() on it")
    for name, value in (("chosen_rewards", chosen), ("rejected_rewards", rejected)):
        assert not value.requires_grad and value.grad_fn is None, say(
            f"{name} 仍连着计算图（grad_fn={value.grad_fn}）：奖励只用于记录，写成 beta * (pc - rc).detach()",
            f"{name} is still attached to the graph (grad_fn={value.grad_fn}): rewards are for logging only, write "
            "beta * (pc - rc).detach()")


@pytest.mark.symbol("dpo_loss")
def test_dpo_loss_policy_equal_to_reference_is_ln2():
    """Before training the policy *is* the reference: ``z = 0`` for every pair, so the sigmoid
    loss is ``-ln σ(0) = ln 2 = 0.6931`` whatever β, the rewards are 0, and the hinge loss is 1."""
    pc, pr = _t(PC), _t(PR)
    loss, chosen, rejected = _dl().dpo_loss(pc, pr, pc.clone(), pr.clone(), beta=0.3)
    assert_close(loss, torch.tensor(LN2), "dpo_loss with policy = reference", **F32,
                 hint=("z = 0 时 -logsigmoid(0) = ln 2：logits 要减去参考模型的那一项 (ref_c - ref_r)",
                       "with z = 0, -logsigmoid(0) = ln 2: the logits subtract the reference's (ref_c - ref_r)"))
    assert_close(chosen, torch.zeros(3), "chosen_rewards with policy = reference", **F32, hint=REWARD_HINT)
    assert_close(rejected, torch.zeros(3), "rejected_rewards with policy = reference", **F32, hint=REWARD_HINT)
    hinge = _dl().dpo_loss(pc, pr, pc.clone(), pr.clone(), beta=0.3, loss_type="hinge")[0]
    assert_close(hinge, torch.tensor(1.0), "hinge dpo_loss with policy = reference", **F32, hint=HINGE_HINT)


@pytest.mark.symbol("dpo_loss")
def test_dpo_loss_stays_finite_for_a_very_wrong_pair():
    """β = 0.1, pair 0 with ``z = -2000`` (``βz = -200``: the policy strongly prefers the rejected
    answer), pair 1 with ``z = 2``. Losses ``sp(200) = 200`` and ``sp(-0.2) = 0.5981``, mean
    ``100.2991``; the gradient on ``π_c`` is ``-β·σ(-βz)/b = [-0.05, -0.05·σ(-0.2) = -0.0225]``.
    float32 ``σ(-200)`` underflows to 0, so ``log(sigmoid(x))`` is ``-inf`` and its gradient nan;
    ``F.logsigmoid`` stays exact exactly where the push is needed most."""
    pc = _t([-2000.0, -10.0]).requires_grad_()
    zero = torch.zeros(2)
    loss = _dl().dpo_loss(pc, _t([0.0, -12.0]), zero, zero, beta=0.1)[0]
    hint = ("-log(sigmoid(x)) 在 x = -200 时是 -log(0) = inf：用 -F.logsigmoid(x)（等于 softplus(-x)），它从不对一个"
            "下溢成 0 的数取对数",
            "-log(sigmoid(x)) at x = -200 is -log(0) = inf: use -F.logsigmoid(x) (= softplus(-x)), which never takes "
            "the log of a number that underflowed to 0")
    assert_close(loss, torch.tensor((200.0 + _sp(-0.2)) / 2), "dpo_loss at β·z = -200", atol=1e-4, rtol=1e-6,
                 hint=hint)
    loss.backward()
    sig = 1 / (1 + math.exp(0.2))
    assert_close(pc.grad, _t([-0.05, -0.05 * sig]), "d loss / d policy_chosen_logps at β·z = -200", **F32, hint=hint)


@pytest.mark.parametrize("kwargs", [
    {"beta": 0.0}, {"beta": -0.1}, {"label_smoothing": 0.5}, {"label_smoothing": -0.1}, {"loss_type": "kto"},
    {"loss_type": "ipo", "label_smoothing": 0.1},
], ids=["beta-0", "beta-negative", "smoothing-0.5", "smoothing-negative", "unknown-loss", "ipo-with-smoothing"])
@pytest.mark.symbol("dpo_loss")
def test_dpo_loss_rejects_bad_arguments(kwargs):
    """ValueError for β <= 0 (no KL penalty at all, or a reversed one), ε outside [0, 0.5) (at 0.5
    the labels carry no information), an unknown loss type, and ε with a loss other than sigmoid."""
    expect_error(ValueError, lambda: _dl().dpo_loss(*_hand_inputs(), **kwargs), f"dpo_loss(..., **{kwargs})")


@pytest.mark.symbol("dpo_loss")
def test_dpo_loss_rejects_mismatched_shapes():
    """Four ``[b]`` tensors, one value per pair: a rejected tensor one shorter would broadcast or
    pair the wrong answers. ValueError."""
    pc, pr, rc, rr = _hand_inputs()
    expect_error(ValueError, lambda: _dl().dpo_loss(pc, pr[:-1], rc, rr), "dpo_loss with rejected logps [2] vs [3]")


# ===================================================================== DPOTrainer.compute_loss


@pytest.fixture(scope="module")
def tokenizer():
    tok = reference("tokenizer")
    chat = reference("data.sft_dataset").CHAT_SPECIAL_TOKENS
    return tok.ByteLevelTokenizer(list(tok.DEFAULT_SPECIAL_TOKENS) + list(chat))


@pytest.fixture(scope="module")
def pairs(tokenizer):
    """32 built-in preference pairs (arithmetic, copying ... right answer vs a plausible mistake)."""
    records = reference("data.builtin").preference_records(num=32, seed=0)
    return reference("data.dpo_dataset").DPODataset(records, tokenizer, max_length=96)


def _model(vocab: int, seed: int = 0):
    """The reference CausalLM, hidden 32, one layer, initialised from ``seed``."""
    config = reference("model.config").ModelConfig.tiny(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=128)
    torch.manual_seed(seed)
    return reference("model.causal_lm").CausalLM(config)


def _args(tmp_path, **overrides):
    base = dict(max_steps=4, per_device_batch_size=4, gradient_accumulation_steps=1, learning_rate=1e-2,
                weight_decay=0.0, warmup_steps=0, lr_schedule="constant", max_grad_norm=None, log_every=1, seed=0,
                device="cpu")
    return learner("training.trainer").TrainingArguments(output_dir=str(tmp_path / "run"), **{**base, **overrides})


def _only_compute_loss(monkeypatch):
    """The learner's dpo_trainer module, given the reference sequence_logps / dpo_loss for this test,
    so a test of compute_loss fails only for compute_loss (imported in the test: an import error
    is a failing test, not a setup error)."""
    module = learner("training.dpo_trainer")
    losses = reference("loss.dpo_loss")
    monkeypatch.setattr(module, "sequence_logps", losses.sequence_logps, raising=False)
    monkeypatch.setattr(module, "dpo_loss", losses.dpo_loss, raising=False)
    return module


def _alone_logps(model, items, side: str, average: bool = False) -> torch.Tensor:
    """Each answer scored on its own sequence (no padding, no concatenation): float64
    ``log_softmax`` at every position whose label is not -100, summed (or averaged)."""
    out = []
    for item in items:
        labels = item[f"{side}_labels"]
        logp = torch.log_softmax(model(item[f"{side}_input_ids"][None]).logits[0].double(), dim=-1)  # [n, V]
        keep = (labels != -100).nonzero().squeeze(-1)
        total = logp[keep, labels[keep]].sum()
        out.append(total / max(len(keep), 1) if average else total)
    return torch.stack(out)


def _formula(pc, pr, rc, rr, beta, loss_type, eps):
    z = (pc - pr) - (rc - rr)
    if loss_type == "sigmoid":
        losses = (1 - eps) * torch.nn.functional.softplus(-beta * z) + eps * torch.nn.functional.softplus(beta * z)
    elif loss_type == "ipo":
        losses = (z - 1 / (2 * beta)) ** 2
    else:
        losses = torch.relu(1 - beta * z)
    return losses.mean()


def _watch(model, calls: list):
    """Record (input rows, grad enabled) of every call of ``model``."""
    def hook(module, args, kwargs):
        ids = args[0] if args else kwargs.get("input_ids")
        calls.append((int(ids.shape[0]) if ids is not None else None, torch.is_grad_enabled()))
    return model.register_forward_pre_hook(hook, with_kwargs=True)


def _recording(module):
    """``module.DPOTrainer`` whose record_rewards also keeps what compute_loss passed it in ``seen_rewards``."""

    class Recording(module.DPOTrainer):
        def record_rewards(self, chosen_rewards, rejected_rewards):
            self.seen_rewards = [*getattr(self, "seen_rewards", []),
                                 (chosen_rewards.detach().clone(), rejected_rewards.detach().clone())]
            super().record_rewards(chosen_rewards, rejected_rewards)

    return Recording


@pytest.mark.parametrize("loss_type, beta, eps", [("sigmoid", 0.3, 0.0), ("sigmoid", 0.3, 0.2), ("ipo", 0.5, 0.0),
                                                  ("hinge", 0.3, 0.0)],
                         ids=["sigmoid", "sigmoid-smoothed", "ipo", "hinge"])
@pytest.mark.symbol("DPOTrainer.compute_loss")
def test_compute_loss_equals_the_formula_on_each_answer_scored_alone(tmp_path, pairs, tokenizer, monkeypatch,
                                                                     loss_type, beta, eps):
    """Policy (seed 0) and a different reference (seed 1), four pairs. Expected: every answer
    scored on its own unpadded sequence in float64 (per-token means for IPO, as the trainer's
    ``average_logps`` says), the reference under no_grad, then the formula; the loss, its
    gradient on every policy weight, and the rewards ``compute_loss`` records must agree."""
    policy, ref = _model(tokenizer.vocab_size, 0), _model(tokenizer.vocab_size, 1)
    twin = copy.deepcopy(policy)
    items = [pairs[i] for i in range(4)]
    average = loss_type == "ipo"
    with torch.no_grad():
        rc, rr = _alone_logps(ref, items, "chosen", average), _alone_logps(ref, items, "rejected", average)
    pc, pr = _alone_logps(twin, items, "chosen", average), _alone_logps(twin, items, "rejected", average)
    expected = _formula(pc, pr, rc, rr, beta, loss_type, eps)
    expected.backward()

    trainer = _recording(_only_compute_loss(monkeypatch))(policy, _args(tmp_path), pairs, ref_model=ref,
                                                          beta=beta, loss_type=loss_type, label_smoothing=eps)
    policy.train()
    loss = trainer.compute_loss(policy, trainer.collate_fn(items))
    what = f"compute_loss (loss_type={loss_type!r}, beta={beta}, label_smoothing={eps})"
    c, r, c0, r0 = (t.detach() for t in (pc, pr, rc, rr))
    swap = ("chosen 和 rejected 拆反了：拼接时 chosen 在前，所以 logps[:b] 是 chosen、logps[b:] 是 rejected（参考模型同理）",
            "chosen and rejected swapped: chosen rows come first in the concatenation, so logps[:b] is chosen and "
            "logps[b:] rejected (the same for the reference)")
    wrong = {
        float(_formula(r, c, r0, c0, beta, loss_type, eps)): swap,
        float(_formula(r, c, c0, r0, beta, loss_type, eps)): swap,
        float(_formula(c, r, r0, c0, beta, loss_type, eps)): swap,
        float(_formula(c, r, c, r, beta, loss_type, eps)): (
            "参考模型的对数概率等于策略自己的：参考模型是 self.ref_model（冻结的初始副本），不是传进来的 model",
            "the reference log-probs equal the policy's own: the reference is self.ref_model (the frozen starting "
            "copy), not the model passed in"),
        float(_formula(c, r, c0, r0, 0.1, loss_type, 0.0)): (
            "dpo_loss 用了默认参数：要传 beta=self.beta、loss_type=self.loss_type、label_smoothing=self.label_smoothing",
            "dpo_loss ran with its defaults: pass beta=self.beta, loss_type=self.loss_type, "
            "label_smoothing=self.label_smoothing"),
    }
    hint = _likely(loss.detach(), wrong, COMPUTE_HINT)
    assert_close(loss.detach().double(), expected.detach(), what, **MODEL, hint=hint)
    assert loss.requires_grad, say(
        "compute_loss 返回的 loss 没有计算图：策略模型的前向不能放在 torch.no_grad() 里，也不要 detach",
        "the loss compute_loss returns has no graph: the policy's forward must not run under torch.no_grad(), and "
        "nothing may be detached")
    loss.backward()
    for (name, p), q in zip(policy.named_parameters(), twin.parameters(), strict=True):
        assert p.grad is not None, say(f"策略参数 {name} 没有梯度", f"the policy parameter {name} got no gradient")
        assert_close(p.grad.double(), q.grad.double(), f"{what}: gradient of {name}", atol=1e-5, rtol=1e-4,
                     hint=("loss 的值对了但梯度不对：梯度只能经过策略的对数概率（参考模型那一项是常数）",
                           "the loss value is right but not its gradient: the gradient flows through the policy "
                           "log-probs only (the reference term is a constant)"))
    seen = getattr(trainer, "seen_rewards", [])
    assert len(seen) == 1, say(
        f"训练模式下一次 compute_loss 应调用一次 self.record_rewards(chosen_rewards, rejected_rewards)，实际 {len(seen)} 次",
        f"one compute_loss in training mode should call self.record_rewards(chosen_rewards, rejected_rewards) once, "
        f"it was called {len(seen)} times")
    assert_close(seen[0][0].double(), beta * (pc - rc).detach(), f"{what}: recorded chosen_rewards", **MODEL,
                 hint=REWARD_HINT)
    assert_close(seen[0][1].double(), beta * (pr - rr).detach(), f"{what}: recorded rejected_rewards", **MODEL,
                 hint=REWARD_HINT)


@pytest.mark.symbol("DPOTrainer.compute_loss")
def test_compute_loss_runs_one_concatenated_policy_forward_and_a_no_grad_reference_forward(
        tmp_path, pairs, tokenizer, monkeypatch):
    """b = 3 pairs: the policy runs exactly once, on ``2b = 6`` rows (chosen then rejected), with
    gradients enabled; the reference runs once on the same 6 rows under ``torch.no_grad()``
    (it is a fixed function: no graph, no memory for activations, no way for a gradient in)."""
    policy, ref = _model(tokenizer.vocab_size, 0), _model(tokenizer.vocab_size, 1)
    trainer = _only_compute_loss(monkeypatch).DPOTrainer(policy, _args(tmp_path), pairs, ref_model=ref, beta=0.1)
    policy_calls, ref_calls = [], []
    _watch(policy, policy_calls)
    _watch(trainer.ref_model, ref_calls)
    policy.train()
    trainer.compute_loss(policy, trainer.collate_fn([pairs[i] for i in range(3)]))
    assert [rows for rows, _ in policy_calls] == [6], say(
        f"策略模型应该只前向一次、输入 2b = 6 行（chosen 和 rejected 沿 batch 维拼接），实际调用（每次的行数）："
        f"{[rows for rows, _ in policy_calls]}。两次前向浪费算力，DDP/FSDP 也要求每次 backward 只对应一次前向",
        f"the policy should run once, on 2b = 6 rows (chosen and rejected concatenated along the batch axis); its "
        f"calls (rows each): {[rows for rows, _ in policy_calls]}. Two forwards waste compute, and DDP / FSDP expect "
        "one forward per backward")
    assert policy_calls[0][1], say("策略模型的前向在 no_grad 里运行：没有梯度就学不到东西",
                                   "the policy's forward ran under no_grad: without gradients nothing is learned")
    assert [rows for rows, _ in ref_calls] == [6], say(
        f"参考模型（self.ref_model）应该对同样的 6 行前向一次，实际调用（每次的行数）：{[rows for rows, _ in ref_calls]}"
        "（用 model 当参考模型？）",
        f"the reference (self.ref_model) should run once on the same 6 rows; its calls (rows each): "
        f"{[rows for rows, _ in ref_calls]} (the policy used as its own reference?)")
    assert not ref_calls[0][1], say(
        "参考模型的前向开着梯度：把它放进 with torch.no_grad(): 里——它是固定的，不需要计算图",
        "the reference forward ran with gradients enabled: put it under with torch.no_grad(): it is fixed and needs no "
        "graph")


@pytest.mark.symbol("DPOTrainer.compute_loss")
def test_compute_loss_uses_the_precomputed_reference_logps(tmp_path, pairs, tokenizer, monkeypatch):
    """``precompute_ref_logps=True``: the trainer filled ``ref_chosen_logps`` / ``ref_rejected_logps``
    ``[N]`` once, and its batches carry ``index``; compute_loss takes the cache at those indices and
    never runs the reference. Pairs 5, 0, 9 (out of order, so the index matters): the loss is
    still the formula on each answer scored alone."""
    policy, ref = _model(tokenizer.vocab_size, 0), _model(tokenizer.vocab_size, 1)
    trainer = _only_compute_loss(monkeypatch).DPOTrainer(policy, _args(tmp_path), pairs, ref_model=ref, beta=0.3,
                                                         precompute_ref_logps=True)
    ref_calls = []
    handle = _watch(trainer.ref_model, ref_calls)
    order = [5, 0, 9]
    batch = trainer.collate_fn([trainer.train_dataset[i] for i in order])
    policy.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(policy, batch)
        handle.remove()
        items = [pairs[i] for i in order]
        rc, rr = _alone_logps(ref, items, "chosen"), _alone_logps(ref, items, "rejected")
        pc, pr = _alone_logps(policy, items, "chosen"), _alone_logps(policy, items, "rejected")
    assert not ref_calls, say(
        f"有预先算好的参考对数概率（batch 里有 \"index\"）时不应再运行参考模型，它却被调用了 {len(ref_calls)} 次："
        "用 self.ref_chosen_logps[batch[\"index\"]] 和 self.ref_rejected_logps[batch[\"index\"]]",
        f"with precomputed reference log-probs (the batch has \"index\") the reference must not run, it ran "
        f"{len(ref_calls)} time(s): use self.ref_chosen_logps[batch[\"index\"]] and self.ref_rejected_logps[batch[\"index\"]]")
    assert_close(loss.double(), _formula(pc, pr, rc, rr, 0.3, "sigmoid", 0.0), "compute_loss with precomputed "
                 "reference log-probs", **MODEL,
                 hint=("缓存按数据集下标存放：取 self.ref_chosen_logps[batch[\"index\"]]，不是前 b 个",
                       "the cache is indexed by dataset position: take self.ref_chosen_logps[batch[\"index\"]], not "
                       "the first b"))


@pytest.mark.symbol("DPOTrainer.compute_loss")
def test_evaluation_records_no_rewards(tmp_path, pairs, tokenizer, monkeypatch):
    """``Trainer.evaluate`` runs compute_loss under ``model.eval()`` and ``torch.no_grad()``: the
    reward statistics are training metrics, so ``record_rewards`` is called only when
    ``model.training and torch.is_grad_enabled()`` (else the evaluation pairs would leak into the
    next training log entry)."""
    policy, ref = _model(tokenizer.vocab_size, 0), _model(tokenizer.vocab_size, 1)
    trainer = _recording(_only_compute_loss(monkeypatch))(policy, _args(tmp_path), pairs, ref_model=ref,
                                                          eval_dataset=[pairs[i] for i in range(6)])
    result = trainer.evaluate()
    assert math.isfinite(result["eval_loss"])
    seen = getattr(trainer, "seen_rewards", [])
    assert not seen, say(
        f"evaluate() 调用了 record_rewards {len(seen)} 次：只在 model.training and torch.is_grad_enabled() 时记录",
        f"evaluate() called record_rewards {len(seen)} time(s): record only when model.training and "
        "torch.is_grad_enabled()")


@pytest.mark.symbol("DPOTrainer.compute_loss")
def test_dpo_training_raises_preference_accuracy_and_leaves_the_reference_alone(tmp_path, pairs, tokenizer):
    """Your whole stack (sequence_logps, dpo_loss, compute_loss) trains: 20 steps of 8 of the 32
    pairs, lr 1e-2, β = 0.1. Before: the policy is its own reference, every implicit reward is 0,
    reward accuracy 0 (a tie is no win) and the policy prefers the chosen answer on 12 of 32 pairs.
    After (measured with the reference's ``preference_accuracy``): reward accuracy >= 0.9 and the
    policy's own preference up by >= 0.3 (it reaches 1.0 and ~0.9). The reference model is
    bit-identical to the starting policy, frozen (``requires_grad`` False) and not in the optimiser."""
    policy = _model(tokenizer.vocab_size, 0)
    start = {k: v.clone() for k, v in policy.state_dict().items()}
    module = learner("training.dpo_trainer")
    trainer = module.DPOTrainer(policy, _args(tmp_path, max_steps=20, per_device_batch_size=8, log_every=5), pairs,
                                beta=0.1)
    accuracy = reference("training.dpo_trainer").preference_accuracy
    before = accuracy(trainer.model, trainer.ref_model, pairs, beta=0.1)
    trainer.train()
    after = accuracy(trainer.model, trainer.ref_model, pairs, beta=0.1)
    assert after["accuracy"] >= 0.9 and after["logp_accuracy"] >= before["logp_accuracy"] + 0.3, say(
        f"训练 20 步后隐式奖励准确率 {after['accuracy']:.3f}（应 >= 0.9），策略自己偏好 chosen 的比例 "
        f"{before['logp_accuracy']:.3f} -> {after['logp_accuracy']:.3f}（应至少提高 0.3）：方向反了就是间隔的符号或 "
        "chosen/rejected 拆分颠倒；几乎不动则查 loss 是否有梯度、参考模型是否是 self.ref_model",
        f"after 20 steps the implicit-reward accuracy is {after['accuracy']:.3f} (should be >= 0.9), and the policy's "
        f"own preference for the chosen answer went {before['logp_accuracy']:.3f} -> {after['logp_accuracy']:.3f} "
        "(should rise by >= 0.3): going the wrong way means a flipped margin sign or chosen / rejected swapped; barely "
        "moving means a loss without gradient or the wrong reference model")
    ref = trainer.ref_model
    assert ref is not policy and all(not p.requires_grad for p in ref.parameters()), say(
        "参考模型必须是独立的副本，且 requires_grad 为 False", "the reference must be a separate copy with "
        "requires_grad False")
    in_optimizer = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not in_optimizer & {id(p) for p in ref.parameters()}, say(
        "参考模型的参数出现在优化器里", "the reference model's parameters are in the optimiser")
    changed = [k for k, v in ref.state_dict().items() if not torch.equal(v, start[k])]
    assert not changed, say(f"训练改变了参考模型的权重：{changed[:3]}；参考模型必须保持训练开始时的样子",
                            f"training changed the reference model's weights: {changed[:3]}; the reference must stay "
                            "as it was at the start")
