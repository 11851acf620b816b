"""Lesson 07, advanced tier: random inputs against torch built-ins and the reference.

Expected values come from three places, never from outputs pasted into this file:

- **torch built-ins**: ``torch.nn.functional.cross_entropy`` (classes moved to axis 1 by
  flattening to ``[N, C]``) for values and gradients, ``F.logsigmoid`` in float64 for the
  preference loss, ``torch.optim.AdamW`` for 200 steps of training;
- **the reference library** (``intro2llm``), run during the test: ``Lion`` (``lion_pytorch``
  is not installed for learners; the project's own tests hold the reference to it, bit for
  bit) and the three schedules;
- **properties**: half-precision logits of magnitude 1e4 give finite float32 losses; the
  cosine schedule reaches ``min_lr_ratio`` exactly at ``num_training_steps`` and stays there.

Tolerances (``|actual - expected| <= atol + rtol·|expected|``):

- losses and their gradients, float32, ``atol = rtol = 1e-6``: the same float32 numbers
  combined in another order (``lse - x_y`` against torch's ``log_softmax``) differ by a few
  ulps (1.2e-7 relative each); every mistake below moves them by more than 1e-3. Half-precision
  logits are compared with torch on the same logits upcast to float32 (both then compute in
  float32). float64: ``1e-12``.
- AdamW against ``torch.optim.AdamW``, ``atol = rtol = 1e-6`` after every one of 200 steps.
  The learning rates and weight decays are powers of two, so ``1 - lr·wd`` is exact in float32
  and ``p·(1 - lr·wd)`` equals ``p - lr·wd·p`` bit for bit (with ``lr = 1e-2, wd = 0.1`` the
  float32 rounding of ``0.999`` alone drifts 6e-6 over 200 steps, and a correct program would
  fail). What is left, ``sqrt(v/(1 - β2^t))`` against ``sqrt(v)/sqrt(1 - β2^t)`` and ``m``
  as ``β1·m + (1 - β1)·g`` against ``lerp``, stays below 0.15 of the tolerance over the 200 steps
  (measured); a mistake moves parameters by ~lr = 8e-3.
- Lion against the reference, ``atol = rtol = 1e-7``: with power-of-two ``lr`` and ``lr·wd``
  every parameter update is exact arithmetic plus one rounding, so any correct order of
  operations gives identical parameters (measured); a flipped sign moves a coordinate by ``2·lr``.
- schedules: Python floats, ``1e-12`` (``r + (1 - r)·f`` may be written in another order).

Optimiser tests run single-threaded (tensors of a few hundred elements gain nothing from
intra-op threads, and on busy shared cores they run much faster on one), restoring torch's
thread count afterwards. Everything is seeded.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from intro2llm_cli.testkit import assert_close, learner, reference, say

TIGHT = {"atol": 1e-6, "rtol": 1e-6}
LION = {"atol": 1e-7, "rtol": 1e-7}
EXACT = {"atol": 1e-12, "rtol": 1e-12}
VOCAB = 17

ADAMW_HINT = (
    "对照 Step 注释检查：偏差修正（t 从 1 开始，每个参数各自计数）；解耦衰减 p.mul_(1 - lr * wd) 在更新之前；"
    "eps 加在 sqrt 之后；每组用自己的超参数；状态都放在 self.state[p] 里（state_dict 保存/恢复的正是它）",
    "check against the Step comments: bias correction (t starts at 1, counted per parameter); decoupled decay "
    "p.mul_(1 - lr * wd) before the update; eps after the sqrt; each group's own hyper-parameters; all state in "
    "self.state[p] (that is what state_dict saves and restores)",
)
LION_HINT = (
    "对照 Step 注释检查：先解耦衰减 p.mul_(1 - lr * wd)；方向用旧动量 sign(beta1 * m + (1 - beta1) * g)；"
    "之后才 m = beta2 * m + (1 - beta2) * g；每组用自己的超参数；动量放在 self.state[p][\"exp_avg\"]",
    "check against the Step comments: decoupled decay p.mul_(1 - lr * wd) first; the direction uses the old "
    "momentum, sign(beta1 * m + (1 - beta1) * g); only then m = beta2 * m + (1 - beta2) * g; each group's own "
    "hyper-parameters; the momentum lives in self.state[p][\"exp_avg\"]",
)


def _ce():
    return learner("loss.cross_entropy")


def _close(actual, expected, what: str, hint: tuple[str, str] | None = None, **tol) -> None:
    assert_close(actual, expected, what, hint=hint, **tol)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ===================================================================== cross_entropy_loss


def _torch_ce(logits: torch.Tensor, labels: torch.Tensor, **kwargs) -> torch.Tensor:
    """``F.cross_entropy`` with the classes on the last axis of ``logits [..., C]``."""
    out = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), **kwargs)
    return out.reshape(labels.shape) if kwargs.get("reduction") == "none" else out


def _batch(shape, ignore_index: int, g: torch.Generator, scale: float = 3.0, ignore_frac: float = 0.3):
    """Logits ``shape = [..., C]`` of spread ``scale`` and labels with ~30% ``ignore_index``
    (for ``ignore_index`` in ``[0, C)`` that class is simply never a counted target)."""
    logits = torch.randn(shape, generator=g) * scale
    labels = torch.randint(0, shape[-1], shape[:-1], generator=g)
    labels[torch.rand(shape[:-1], generator=g) < ignore_frac] = ignore_index
    return logits, labels


CE_CASES = {"lm-[3,7,50]-ignore-100": ((3, 7, 50), -100), "flat-[20,6]-ignore0": ((20, 6), 0)}
CE_HINT = (
    "检查：logsumexp 先减最大值；-log p_y = lse - x_y；标签平滑 (1 - ε) * nll + ε * mean_c(lse - x_c)；被忽略位置为 0；"
    "\"mean\" 只除以被计入的位置数",
    "check: logsumexp with the max subtracted; -log p_y = lse - x_y; label smoothing (1 - ε) * nll + "
    "ε * mean_c(lse - x_c); 0 at ignored positions; \"mean\" divides by the counted positions only",
)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", list(CE_CASES))
@pytest.mark.symbol("cross_entropy_loss")
def test_cross_entropy_matches_torch_for_every_option(case, reduction, label_smoothing):
    """Random logits (spread 3), ~30% of the labels ignored; ``[b, s, V]`` with the default
    ``ignore_index = -100`` and ``[N, C]`` with ``ignore_index = 0``. Equal to
    ``F.cross_entropy`` with the same options within 1e-6 (float32)."""
    shape, ignore_index = CE_CASES[case]
    g = torch.Generator().manual_seed(len(shape) * 10 + int(label_smoothing * 10))
    logits, labels = _batch(shape, ignore_index, g)
    kwargs = {"ignore_index": ignore_index, "label_smoothing": label_smoothing, "reduction": reduction}
    out = _ce().cross_entropy_loss(logits, labels, **kwargs)
    _close(out, _torch_ce(logits, labels, **kwargs), f"cross_entropy_loss vs F.cross_entropy, {case}, {kwargs}",
           hint=CE_HINT, **TIGHT)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.symbol("cross_entropy_loss")
def test_cross_entropy_gradients_equal_torch(reduction, label_smoothing):
    """``d loss / d logits`` (``softmax - target``, 0 at ignored rows, divided by the number of
    counted positions for ``"mean"``) equals torch's within 1e-6; for ``"none"`` a random
    upstream gradient weights the positions."""
    g = torch.Generator().manual_seed(5)
    logits, labels = _batch((2, 5, 11), -100, g)
    labels[0, 0] = -100
    mine, theirs = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    upstream = torch.randn(labels.shape, generator=g) if reduction == "none" else torch.tensor(1.0)
    kwargs = {"label_smoothing": label_smoothing, "reduction": reduction}
    out = _ce().cross_entropy_loss(mine, labels, **kwargs)
    assert out.requires_grad, say("cross_entropy_loss 的结果不在计算图里：不要 .detach() 或 torch.no_grad()",
                                  "cross_entropy_loss's result is not in the graph: no .detach() or torch.no_grad()")
    (out * upstream).sum().backward()
    (_torch_ce(theirs, labels, **kwargs) * upstream).sum().backward()
    _close(mine.grad, theirs.grad, f"d cross_entropy_loss / d logits vs torch's, {kwargs}", hint=CE_HINT, **TIGHT)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.symbol("cross_entropy_loss")
def test_cross_entropy_half_logits_of_magnitude_1e4_stay_finite_and_accurate(dtype, reduction):
    """Logits ~N(0, 1e4) in half precision, label smoothing 0.1: ``exp`` of them overflows
    (float16 above 11, bfloat16 / float32 above 88), so ``exp(x) / sum(exp(x))`` gives nan.
    The result must be finite, float32, and equal to torch on the same logits upcast to
    float32 (1e-6 relative: the losses are of order 1e4)."""
    g = torch.Generator().manual_seed(11)
    logits = (torch.randn(2, 4, 32, generator=g) * 1e4).to(dtype)
    labels = torch.randint(0, 32, (2, 4), generator=g)
    labels[1, 2] = -100
    kwargs = {"label_smoothing": 0.1, "reduction": reduction}
    out = _ce().cross_entropy_loss(logits, labels, **kwargs)
    _close(out, _torch_ce(logits.float(), labels, **kwargs), f"cross_entropy_loss on {dtype} logits of size ~1e4, {kwargs}",
           hint=("先升到 float32，再用 logsumexp：m = x.amax(-1, keepdim=True)，lse = m + log(sum(exp(x - m)))",
                 "upcast to float32, then log-sum-exp: m = x.amax(-1, keepdim=True), lse = m + log(sum(exp(x - m)))"),
           **TIGHT)


@pytest.mark.symbol("cross_entropy_loss")
def test_cross_entropy_float64_matches_torch_to_1e_12():
    """float64 logits stay float64 (``promote_types(float64, float32)``), so the loss equals
    torch's float64 loss to 1e-12; ``.float()`` would leave a float32 error of ~1e-7."""
    g = torch.Generator().manual_seed(12)
    logits, labels = _batch((4, 9), -100, g)
    logits = logits.double()
    out = _ce().cross_entropy_loss(logits, labels, label_smoothing=0.1)
    _close(out, _torch_ce(logits, labels, label_smoothing=0.1), "cross_entropy_loss on float64 logits", **EXACT,
           hint=("用 logits.to(torch.promote_types(logits.dtype, torch.float32))，不要 .float()",
                 "use logits.to(torch.promote_types(logits.dtype, torch.float32)), not .float()"))


@pytest.mark.symbol("cross_entropy_loss")
def test_cross_entropy_with_every_position_ignored_is_nan_mean_like_torch():
    """No counted position: ``"sum"`` is 0, ``"none"`` all zeros, and ``"mean"`` is
    ``0 / 0 = nan``, as in torch (a training loop should skip such a batch)."""
    g = torch.Generator().manual_seed(13)
    logits = torch.randn(2, 3, 5, generator=g)
    labels = torch.full((2, 3), -100)
    ce = _ce().cross_entropy_loss
    _close(ce(logits, labels, reduction="none"), torch.zeros(2, 3), "cross_entropy_loss, all ignored, 'none'", **TIGHT)
    _close(ce(logits, labels, reduction="sum"), torch.tensor(0.0), "cross_entropy_loss, all ignored, 'sum'", **TIGHT)
    mean = ce(logits, labels)
    assert isinstance(mean, torch.Tensor) and torch.isnan(mean), say(
        f"所有位置都被忽略时 \"mean\" 应为 nan（0 / 0，与 torch 相同），实际 {mean!r}：不要把分母截到至少 1",
        f"with every position ignored \"mean\" should be nan (0 / 0, as torch), got {mean!r}: do not clamp the "
        "count to at least 1")


# ===================================================================== preference_loss


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("scale", [3.0, 300.0], ids=["margins~3", "margins~300"])
@pytest.mark.symbol("preference_loss")
def test_preference_loss_matches_float64_logsigmoid_and_the_reference(scale, dtype):
    """Random scores (64 pairs, float32 or bfloat16): a float32 loss equal to
    ``-F.logsigmoid(chosen - rejected).mean()`` computed in float64 from the same values, and
    to the reference, within 1e-6. With margins of size ~300 some sigmoids underflow in
    float32: ``log(sigmoid)`` would be -inf there. bfloat16 scores must be upcast before the
    subtraction (a bfloat16 difference and loss keep only 3 significant digits)."""
    g = torch.Generator().manual_seed(int(scale))
    chosen = (torch.randn(64, generator=g) * scale).to(dtype)
    rejected = (torch.randn(64, generator=g) * scale).to(dtype)
    out = learner("loss.dpo_loss").preference_loss(chosen, rejected)
    expected = (-F.logsigmoid(chosen.double() - rejected.double()).mean()).float()
    hint = ("return -F.logsigmoid(chosen - rejected).mean()，先升到 float32；不要 log(sigmoid(...))，也别把符号写反",
            "return -F.logsigmoid(chosen - rejected).mean(), upcast to float32 first; not log(sigmoid(...)), and "
            "mind the sign")
    _close(out, expected, f"preference_loss vs float64 -logsigmoid, scores of size ~{scale:g}", hint=hint, **TIGHT)
    _close(out, reference("loss.dpo_loss").preference_loss(chosen, rejected),
           f"preference_loss vs the reference, scores of size ~{scale:g}", hint=hint, **TIGHT)


@pytest.mark.symbol("preference_loss")
def test_preference_loss_gradients_equal_torch():
    """Gradients with respect to both score vectors equal autograd through
    ``-F.logsigmoid(c - r).mean()``: ``∓(1 - sigmoid(c - r)) / b``; margins up to ~±300."""
    g = torch.Generator().manual_seed(21)
    scores = torch.randn(2, 32, generator=g) * torch.tensor([[1.0], [100.0]])
    c, r = scores.clone().requires_grad_(True), scores.flip(1).clone().requires_grad_(True)
    c2, r2 = scores.clone().requires_grad_(True), scores.flip(1).clone().requires_grad_(True)
    learner("loss.dpo_loss").preference_loss(c, r).backward()
    (-F.logsigmoid(c2 - r2).mean()).backward()
    hint = ("梯度也要稳定：用 F.logsigmoid；结果必须留在计算图里", "the gradient must be stable too: use F.logsigmoid, "
            "and keep the result in the graph")
    _close(c.grad, c2.grad, "d preference_loss / d chosen_scores vs torch", hint=hint, **TIGHT)
    _close(r.grad, r2.grad, "d preference_loss / d rejected_scores vs torch", hint=hint, **TIGHT)


# ===================================================================== optimisers: shared harness


class _TinyModel(nn.Module):
    """Embedding, two linear layers, a LayerNorm; ``unused`` never runs, so its grads stay None."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 8)
        self.fc1 = nn.Linear(8, 16)
        self.norm = nn.LayerNorm(16)
        self.fc2 = nn.Linear(16, VOCAB)
        self.unused = nn.Linear(4, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.norm(torch.relu(self.fc1(self.embed(ids)))))


def _groups(model: _TinyModel, decay: dict, embed: dict) -> list[dict]:
    """Three groups: matrices with weight decay, biases / norm / unused without, the
    embedding with its own lr, betas and decay."""
    return [
        {"params": [model.fc1.weight, model.fc2.weight], **decay},
        {"params": [model.fc1.bias, model.fc2.bias, model.norm.weight, model.norm.bias, *model.unused.parameters()],
         "weight_decay": 0.0},
        {"params": [model.embed.weight], **embed},
    ]


def _train_step(model: _TinyModel, opt: torch.optim.Optimizer, ids: torch.Tensor, targets: torch.Tensor) -> None:
    opt.zero_grad()
    logits = model(ids)
    F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1)).backward()
    opt.step()


def _save_and_reload(model: _TinyModel, opt: torch.optim.Optimizer, make_opt) -> tuple[_TinyModel, torch.optim.Optimizer]:
    """``torch.save`` model and optimiser state to bytes, build a fresh model and optimiser, load both."""
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    model = _TinyModel()
    model.load_state_dict(saved["model"])
    opt = make_opt(model)  # fresh: everything the next steps need must come from the state dict
    opt.load_state_dict(saved["opt"])
    return model, opt


def _side_by_side(make_mine, make_expected, steps: int, resume_at: int | None, tol: dict, what: str,
                  hint: tuple[str, str]) -> None:
    """Train two identical models on the same seeded batches, one with the learner's optimiser,
    one with the expected one; compare every parameter after every step. At ``resume_at`` the
    learner's model and optimiser go through a ``state_dict`` save / load round trip."""
    torch.manual_seed(1)
    model = _TinyModel()
    expected_model = copy.deepcopy(model)
    opt, expected_opt = make_mine(model), make_expected(expected_model)
    unused_before = model.unused.weight.detach().clone()
    g = torch.Generator().manual_seed(1234)
    for step in range(1, steps + 1):
        if step - 1 == resume_at:
            model, opt = _save_and_reload(model, opt, make_mine)
        ids, targets = torch.randint(0, VOCAB, (4, 6), generator=g), torch.randint(0, VOCAB, (4, 6), generator=g)
        _train_step(model, opt, ids, targets)
        _train_step(expected_model, expected_opt, ids, targets)
        for (name, p), q in zip(model.named_parameters(), expected_model.parameters(), strict=True):
            if not torch.allclose(p, q, **tol):  # cheap check every step, the full report on failure
                resumed = "" if resume_at is None or step <= resume_at else say(
                    f"（第 {resume_at} 步后经过 state_dict 保存/加载）", f" (after a state_dict round trip at step {resume_at})")
                _close(p.detach(), q.detach(), f"{what}: parameter {name} after step {step}{resumed}",
                       hint=hint, **tol)
    _close(model.unused.weight.detach(), unused_before, f"{what}: a parameter whose .grad is None, after {steps} steps",
           hint=("p.grad 为 None 时 continue：不更新也不衰减", "continue when p.grad is None: no update, no decay"), **tol)


# ===================================================================== AdamW

# Powers of two: lr·wd is exact and 1 - lr·wd is exact in float32 (see the module docstring).
ADAMW_DEFAULTS = {"lr": 2**-7, "betas": (0.9, 0.999), "eps": 1e-8}
ADAMW_DECAY = {"weight_decay": 2**-3}
ADAMW_EMBED = {"lr": 2**-9, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 2**-4}


def _make_adamw(cls):
    return lambda model: cls(_groups(model, ADAMW_DECAY, ADAMW_EMBED), **ADAMW_DEFAULTS)


@pytest.mark.parametrize("resume_at", [None, 100], ids=["straight", "state_dict-round-trip-at-100"])
@pytest.mark.symbol("AdamW.step")
def test_adamw_follows_torch_adamw_for_200_steps(resume_at, one_thread):
    """A small model (embedding, two linear layers, LayerNorm, an unused layer) trained for 200
    steps by the learner's ``AdamW`` and by ``torch.optim.AdamW`` from the same weights on the
    same batches, three parameter groups (matrices ``wd = 1/8``; biases and norms ``wd = 0``;
    the embedding with ``lr = 1/512``, betas (0.8, 0.95), ``eps = 1e-6``, ``wd = 1/16``;
    defaults ``lr = 1/128``): every parameter within 1e-6 after every step. In the second run
    the learner's model and optimiser are saved with ``state_dict()`` after step 100, rebuilt
    from scratch and loaded: the remaining 100 steps must continue on torch's track (the step
    count and both moments come back from the state dict)."""
    _side_by_side(_make_adamw(learner("optimizer.adamw").AdamW), _make_adamw(torch.optim.AdamW), 200, resume_at,
                  TIGHT, "AdamW vs torch.optim.AdamW", ADAMW_HINT)


# ===================================================================== Lion

LION_DEFAULTS = {"lr": 2**-10, "betas": (0.9, 0.99)}
LION_DECAY = {"weight_decay": 2**-3}
LION_EMBED = {"lr": 2**-11, "betas": (0.95, 0.98), "weight_decay": 2**-2}


def _make_lion(cls):
    return lambda model: cls(_groups(model, LION_DECAY, LION_EMBED), **LION_DEFAULTS)


@pytest.mark.parametrize("resume_at", [None, 50], ids=["straight", "state_dict-round-trip-at-50"])
@pytest.mark.symbol("Lion.step")
def test_lion_follows_the_reference_lion_for_100_steps(resume_at, one_thread):
    """The same model and groups (matrices ``wd = 1/8``, the embedding ``lr = 1/2048``, betas
    (0.95, 0.98), ``wd = 1/4``; defaults ``lr = 1/1024``, betas (0.9, 0.99)) trained for 100 steps
    by the learner's ``Lion`` and the reference's: identical parameters (1e-7) after every
    step, also across a ``state_dict`` round trip after step 50 (the momentum ``exp_avg``
    comes back from the state dict)."""
    _side_by_side(_make_lion(learner("optimizer.lion").Lion), _make_lion(reference("optimizer.lion").Lion), 100,
                  resume_at, LION, "Lion vs the reference Lion", LION_HINT)


# ===================================================================== schedules

# (num_warmup_steps W, num_training_steps T, min_lr_ratio r, num_cycles): the usual shape, no
# warmup, all warmup, a single decay step, a long decay, a minimum, one full cosine wave.
COSINE_CASES = [(10, 50, 0.0, 0.5), (0, 20, 0.0, 0.5), (7, 7, 0.0, 0.5), (5, 6, 0.0, 0.5), (3, 100, 0.1, 0.5),
                (4, 24, 0.05, 1.0)]
LINEAR_CASES = [(10, 50), (0, 20), (7, 7), (5, 6), (3, 100)]
SCHEDULE_HINT = (
    "预热 step / max(1, W)（第 0 步为 0）；余弦：progress = min(1, (step - W) / max(1, T - W))，"
    "λ = r + (1 - r) * 0.5 * (1 + cos(2π * num_cycles * progress))；线性：λ = max(0, (T - step) / max(1, T - W))"
    "（W = T 时第 T 步就是 0）；常数：预热后 1",
    "warmup step / max(1, W) (0 at step 0); cosine: progress = min(1, (step - W) / max(1, T - W)), "
    "λ = r + (1 - r) * 0.5 * (1 + cos(2π * num_cycles * progress)); linear: λ = max(0, (T - step) / max(1, T - W)) "
    "(0 at step T even when W = T); constant: 1 after warmup",
)


def _lams(function, steps, **kwargs) -> torch.Tensor:
    return torch.tensor([float(function(s, **kwargs)) for s in steps], dtype=torch.float64)


@pytest.mark.parametrize("warmup, total, min_lr_ratio, num_cycles", COSINE_CASES,
                         ids=[f"W{w}-T{t}-r{r}-cycles{c}" for w, t, r, c in COSINE_CASES])
@pytest.mark.symbol("cosine_lr_lambda")
def test_cosine_schedule_equals_the_reference_at_every_step(warmup, total, min_lr_ratio, num_cycles):
    """Multipliers at steps ``0 .. T + 20`` equal the reference's (1e-12); the failure names
    the first step (the index) that differs."""
    kwargs = {"num_warmup_steps": warmup, "num_training_steps": total, "min_lr_ratio": min_lr_ratio,
              "num_cycles": num_cycles}
    steps = range(total + 21)
    _close(_lams(learner("optimizer.scheduler").cosine_lr_lambda, steps, **kwargs),
           _lams(reference("optimizer.scheduler").cosine_lr_lambda, steps, **kwargs),
           f"cosine_lr_lambda(step, {kwargs}) for steps 0..{total + 20} (the index is the step)", hint=SCHEDULE_HINT, **EXACT)


@pytest.mark.parametrize("warmup, total, min_lr_ratio", [(10, 50, 0.0), (3, 100, 0.1), (5, 6, 0.25), (0, 20, 0.5)])
@pytest.mark.symbol("cosine_lr_lambda")
def test_cosine_schedule_reaches_the_minimum_exactly_at_the_end_and_stays(warmup, total, min_lr_ratio):
    """After warmup the multiplier never leaves ``[r, 1]`` and never rises; at step ``T`` it is
    exactly ``r`` (``cos π = -1``), and it stays ``r`` for 50 more steps (no cosine climbing
    back up past the end)."""
    cosine = learner("optimizer.scheduler").cosine_lr_lambda
    kwargs = {"num_warmup_steps": warmup, "num_training_steps": total, "min_lr_ratio": min_lr_ratio}
    decay = _lams(cosine, range(warmup, total + 1), **kwargs)
    hint = ("λ = r + (1 - r) * 0.5 * (1 + cos(π * progress))，progress = (step - W) / (T - W)（不是除以 T），截断到 1",
            "λ = r + (1 - r) * 0.5 * (1 + cos(π * progress)) with progress = (step - W) / (T - W) (not / T), "
            "clamped to 1")
    where = f"cosine_lr_lambda(step, {kwargs})"
    assert bool((decay >= min_lr_ratio - 1e-12).all() and (decay <= 1 + 1e-12).all()), say(
        f"{where}：第 W..T 步的值应在 [r, 1] 内，实际 {decay.tolist()}。{hint[0]}",
        f"{where}: values at steps W..T should lie in [r, 1], got {decay.tolist()}. {hint[1]}")
    assert bool((decay[1:] <= decay[:-1] + 1e-12).all()), say(
        f"{where}：预热之后应单调不增，实际 {decay.tolist()}", f"{where}: should never rise after warmup, got {decay.tolist()}")
    _close(_lams(cosine, range(total, total + 51), **kwargs), torch.full((51,), float(min_lr_ratio), dtype=torch.float64),
           f"{where} at steps T..T+50 (index 0 is step T)", hint=hint, **EXACT)


@pytest.mark.parametrize("warmup, total", LINEAR_CASES, ids=[f"W{w}-T{t}" for w, t in LINEAR_CASES])
@pytest.mark.symbol("linear_lr_lambda")
def test_linear_schedule_equals_the_reference_and_stays_at_zero(warmup, total):
    """Steps ``0 .. T + 20``: equal to the reference (1e-12), never negative, exactly 0 from
    step ``T`` on."""
    linear = learner("optimizer.scheduler").linear_lr_lambda
    kwargs = {"num_warmup_steps": warmup, "num_training_steps": total}
    steps = range(total + 21)
    lam = _lams(linear, steps, **kwargs)
    _close(lam, _lams(reference("optimizer.scheduler").linear_lr_lambda, steps, **kwargs),
           f"linear_lr_lambda(step, {kwargs}) for steps 0..{total + 20} (the index is the step)", hint=SCHEDULE_HINT, **EXACT)
    _close(lam[total:], torch.zeros(21, dtype=torch.float64), f"linear_lr_lambda(step, {kwargs}) at steps T..T+20",
           hint=SCHEDULE_HINT, **EXACT)


@pytest.mark.parametrize("warmup", [0, 1, 7, 100])
@pytest.mark.symbol("constant_lr_lambda")
def test_constant_schedule_equals_the_reference(warmup):
    """Steps ``0 .. W + 20``: equal to the reference (1e-12): ``step / W`` then 1."""
    steps = range(warmup + 21)
    _close(_lams(learner("optimizer.scheduler").constant_lr_lambda, steps, num_warmup_steps=warmup),
           _lams(reference("optimizer.scheduler").constant_lr_lambda, steps, num_warmup_steps=warmup),
           f"constant_lr_lambda(step, num_warmup_steps={warmup}) for steps 0..{warmup + 20} (the index is the step)",
           hint=SCHEDULE_HINT, **EXACT)


@pytest.mark.parametrize(
    "factory, lam, kwargs",
    [pytest.param("get_cosine_schedule_with_warmup", "cosine_lr_lambda",
                  {"num_warmup_steps": 3, "num_training_steps": 12, "min_lr_ratio": 0.1},
                  marks=pytest.mark.symbol("cosine_lr_lambda"), id="cosine"),
     pytest.param("get_linear_schedule_with_warmup", "linear_lr_lambda", {"num_warmup_steps": 3, "num_training_steps": 12},
                  marks=pytest.mark.symbol("linear_lr_lambda"), id="linear"),
     pytest.param("get_constant_schedule_with_warmup", "constant_lr_lambda", {"num_warmup_steps": 3},
                  marks=pytest.mark.symbol("constant_lr_lambda"), id="constant")],
)
def test_schedule_drives_each_param_groups_lr_through_lambdalr(factory, lam, kwargs):
    """The factory wraps the formula in ``LambdaLR``: with two groups of peak lr 1e-3 and 3e-4,
    after ``k`` calls of ``scheduler.step()`` each group's lr is ``peak·λ(k)`` (k = 0..14),
    with λ the reference's formula."""
    sched, ref = learner("optimizer.scheduler"), reference("optimizer.scheduler")
    peaks = (1e-3, 3e-4)
    params = [nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD([{"params": [params[0]], "lr": peaks[0]}, {"params": [params[1]], "lr": peaks[1]}])
    scheduler = getattr(sched, factory)(opt, **kwargs)
    lrs = []
    for _ in range(15):
        lrs.append([group["lr"] for group in opt.param_groups])
        opt.step()
        scheduler.step()
    expected = [[peak * float(getattr(ref, lam)(k, **kwargs)) for peak in peaks] for k in range(15)]
    _close(torch.tensor(lrs, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64),
           f"{factory}(opt, {kwargs}): [lr of group 0, lr of group 1] after k scheduler steps (row k)",
           hint=SCHEDULE_HINT, **EXACT)
