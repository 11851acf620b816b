"""Lesson 10, basic tier: the contract of every target on small cases, one target at a time.

Where a value can be worked out by hand it is (the docstrings show the arithmetic): the
loss scaler on gradients of a few elements, ``optimizer_step`` on a two-parameter model
with plain SGD, the token-weighted mean of ``evaluate`` on a loss that is the mean of the
label values. Where it cannot (a forward pass), the expected value comes from the same
computation written out here with torch (``F.cross_entropy``, autograd, ``torch.randperm``
with a seeded generator) or from the reference trainer run side by side.

What is shared by both sides and not under test:

- the model is the reference ``CausalLM`` (hidden 32, one layer, vocabulary 64), built from
  the same seed for every trainer, so only the training loop differs;
- the optimiser is the reference ``AdamW`` and the schedule the reference's, passed to the
  trainer (``create_optimizer`` / ``create_scheduler`` are provided code);
- the loop tests use a loss written here (``F.cross_entropy`` on the already-shifted
  labels), so ``PretrainTrainer.compute_loss`` is tested on its own.

Tolerances: the learner's trainer against the reference, float32, ``1e-6`` on losses, learning
rates, gradient norms and weights (the same float32 operations: a correct loop agrees to a few
ulps; the mistakes of ``mistakes.py`` move them by 1e-4 to 1); resumed runs against
uninterrupted ones are compared exactly (``==`` on every logged float, ``torch.equal`` on the
weights): nothing may differ once the state has been restored bit for bit.

Everything runs on the CPU in one thread, seeded; the whole file takes a few seconds.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from intro2llm_cli.testkit import (
    assert_close,
    assert_equal,
    assert_same_sequence,
    expect_error,
    learner,
    nested_difference,
    reference,
    say,
)

VOCAB = 64
SEQ = 8
F32 = {"atol": 1e-6, "rtol": 1e-6}
BASE_ARGS = dict(max_steps=4, per_device_batch_size=4, gradient_accumulation_steps=1, learning_rate=1e-2,
                 weight_decay=0.1, warmup_steps=0, lr_schedule="constant", min_lr_ratio=0.1, max_grad_norm=None,
                 log_every=1, seed=0, device="cpu")

LOSS_FIRST_HINT = (
    "第 1 步之前还没有任何更新，这一步的 loss 不同说明取到的数据或前向不同：next_batch 按 torch.randperm(len(数据), "
    "generator=self.data_generator) 的顺序取；train() 开头 random.seed / torch.manual_seed / "
    "self.data_generator.manual_seed(args.seed)；记录的 loss 是 k 个 micro-batch 的原始 loss（未除以 k）的平均",
    "nothing has been updated before step 1, so a different loss there means a different batch or forward: "
    "next_batch follows torch.randperm(len(data), generator=self.data_generator); train() starts with random.seed / "
    "torch.manual_seed / self.data_generator.manual_seed(args.seed); the logged loss is the mean of the k "
    "micro-batch losses (not divided by k)",
)
LOSS_LATER_HINT = (
    "前面几步都相同、这一步的 loss 不同：上一步的参数更新不同。检查：每个 micro-batch 的 loss 除以 k 再 backward；"
    "zero_grad 只在优化器步之后；先 unscale、再裁剪、再 optimizer.step()；scheduler 每个优化器步 step 一次；"
    "不要额外消耗全局随机数（dropout 用的就是它）",
    "the earlier steps agree and this one does not: the update before it differed. Check: each micro-batch loss "
    "divided by k before backward; zero_grad only after the optimiser step; unscale, then clip, then "
    "optimizer.step(); the scheduler stepped once per optimiser step; no extra draws from the global RNG (dropout "
    "uses it)",
)
LR_HINT = (
    "记录的 lr 是这一步实际使用的：在 optimizer_step()（其中 scheduler.step()）之前读 "
    "self.optimizer.param_groups[0][\"lr\"]；scheduler 每个优化器步只 step 一次，不是每个 micro-batch 一次",
    "the logged lr is the one this step used: read self.optimizer.param_groups[0][\"lr\"] before optimizer_step() "
    "(which calls scheduler.step()); the scheduler steps once per optimiser step, not once per micro-batch",
)
GRAD_NORM_HINT = (
    "grad_norm 是裁剪之前的全局 L2 范数（clip_grad_norm_ 的返回值）：梯度先 unscale；累积时每个 micro-batch 的 loss "
    "先除以 k，k 个 micro-batch 的梯度相加才是平均；zero_grad 不能放在 micro-batch 循环里",
    "grad_norm is the global L2 norm before clipping (what clip_grad_norm_ returns): gradients unscaled first; with "
    "accumulation each micro-batch loss is divided by k so the k gradients add up to the mean; no zero_grad inside "
    "the micro-batch loop",
)
WEIGHTS_HINT = (
    "每步的 loss 都对上了，最后的权重却不同：最后一步的更新不同（裁剪、学习率、累积）",
    "every logged loss agrees but the final weights do not: the last update differed (clipping, learning rate, "
    "accumulation)",
)
RESUME_HINT = (
    "恢复后第一步就不同：检查点要带上并恢复 模型、优化器状态、scheduler、loss scaler、step / epoch / position、"
    "本轮开始时数据生成器的状态（重新抽出本轮的排列），以及所有随机数生成器（python、torch、数据生成器）；"
    "train(resume_from=...) 加载之后不能再重新设随机种子",
    "the first step after resuming differs: the checkpoint must hold and restore the model, the optimizer state, the "
    "scheduler, the loss scaler, step / epoch / position, the data generator's state at the start of the epoch "
    "(re-draw the epoch's permutation) and every RNG (python, torch, the data generator); train(resume_from=...) "
    "must not re-seed after loading",
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from intra-op threads; one thread is faster and repeatable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ===================================================================== shared harness


def _model(seed: int = 0, dropout: float = 0.0, tie: bool = False) -> nn.Module:
    """The reference CausalLM, hidden 32, one layer, vocabulary 64, initialised from ``seed``."""
    config = reference("model.config").ModelConfig.tiny(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=32, attention_dropout=dropout, tie_word_embeddings=tie)
    torch.manual_seed(seed)
    return reference("model.causal_lm").CausalLM(config)


def _blocks(n: int, seed: int = 1) -> list[dict[str, torch.Tensor]]:
    """``n`` random token blocks with shifted labels, as ``PretrainDataset`` returns them."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        x = torch.randint(3, VOCAB, (SEQ + 1,), generator=g)
        out.append({"input_ids": x[:-1], "labels": x[1:]})
    return out


def _ce(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy of the logits against the already-shifted labels (torch's, -100 ignored)."""
    logits = model(batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch["labels"].reshape(-1))


def _loop(module):
    """The Trainer of ``module`` with the loss written here, so only the loop is under test."""

    class LoopTrainer(module.Trainer):
        def compute_loss(self, model, batch):
            return _ce(model, batch)

    return LoopTrainer


def _optimizer_and_scheduler(model: nn.Module, args, sgd: bool = False):
    """The reference AdamW (decay on matrices only), or plain SGD (linear in the gradient, for
    comparisons of gradients through the weights), and the reference schedule named by ``args``."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    if sgd:
        optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate)
    else:
        optimizer = reference("optimizer.adamw").AdamW(groups, lr=args.learning_rate)
    schedules = reference("optimizer.scheduler")
    if args.lr_schedule == "cosine":
        scheduler = schedules.get_cosine_schedule_with_warmup(optimizer, args.warmup_steps, args.max_steps,
                                                              min_lr_ratio=args.min_lr_ratio)
    elif args.lr_schedule == "linear":
        scheduler = schedules.get_linear_schedule_with_warmup(optimizer, args.warmup_steps, args.max_steps)
    else:
        scheduler = schedules.get_constant_schedule_with_warmup(optimizer, args.warmup_steps)
    return optimizer, scheduler


def _build(side: str, out: Path, data, *, model: nn.Module | None = None, kind=_loop, eval_data=None,
           callbacks=(), sgd: bool = False, **overrides):
    """A trainer of the learner's (``side="mine"``) or the reference's module, on the shared pieces."""
    module = learner("training.trainer") if side == "mine" else reference("training.trainer")
    args = module.TrainingArguments(output_dir=str(out), **{**BASE_ARGS, **overrides})
    model = model if model is not None else _model()
    optimizer, scheduler = _optimizer_and_scheduler(model, args, sgd)
    return kind(module)(model, args, data, eval_dataset=eval_data, optimizer=optimizer, scheduler=scheduler,
                        callbacks=list(callbacks))


def _train_logs(history) -> list[dict]:
    return [m for m in history if "loss" in m]


def _same(a, b, tol: float) -> bool:
    if not isinstance(a, (int, float)) or isinstance(a, bool):
        return False
    if not (math.isfinite(a) and math.isfinite(b)):
        return not math.isfinite(a) and not math.isfinite(b)
    return abs(a - b) <= tol + tol * abs(b)


def _check_history(mine, expected, what: str, tol: float = 1e-6, keys=("loss", "lr", "grad_norm"),
                   first_resumed: int | None = None) -> None:
    """Compare the logged training steps one by one; the first difference names the step and the quantity."""
    got, want = _train_logs(mine), _train_logs(expected)
    assert_equal([m.get("step") for m in got], [m["step"] for m in want],
                 say(f"{what}：记录的步数（每 log_every 步和最后一步各一条）", f"{what}: the logged steps (one every "
                     "log_every steps and one at the last step)"))
    for m, r in zip(got, want, strict=True):
        for key in keys:
            if _same(m.get(key), r[key], tol):
                continue
            step = r["step"]
            diff = abs(m[key] - r[key]) if isinstance(m.get(key), (int, float)) else float("nan")
            if first_resumed is not None and step >= first_resumed:
                hint = RESUME_HINT
            elif key == "loss":
                hint = LOSS_FIRST_HINT if step == want[0]["step"] else LOSS_LATER_HINT
            else:
                hint = LR_HINT if key == "lr" else GRAD_NORM_HINT
            raise AssertionError(say(
                f"{what}：第 {step} 步的 {key} 是 {m.get(key)!r}，应为 {r[key]!r}（差 {diff:.3g}，容差 {tol}）\n{hint[0]}",
                f"{what}: {key} at step {step} is {m.get(key)!r}, expected {r[key]!r} (off by {diff:.3g}, tolerance "
                f"{tol})\n{hint[1]}"))


def _check_weights(mine: nn.Module, expected: nn.Module, what: str, tol: float = 1e-6, hint=WEIGHTS_HINT) -> None:
    for (name, p), q in zip(mine.named_parameters(), expected.parameters(), strict=True):
        assert_close(p.detach(), q.detach(), f"{what}: {name}", atol=tol, rtol=tol, hint=hint)


def _forbid(*names):
    def forbidden(*args, **kwargs):
        raise AssertionError(say(f"检查点里不能用 pickle（调用了 {'/'.join(names)}）：权重和优化器张量用 safetensors，"
                                 "其余写成 JSON", f"no pickle in checkpoints ({'/'.join(names)} was called): "
                                 "safetensors for the weights and optimizer tensors, JSON for the rest"))
    return forbidden


class _Two(nn.Module):
    """Two parameters, w = [1, 2] and b = [3], for hand-checked optimiser steps."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0, 2.0]))
        self.b = nn.Parameter(torch.tensor([3.0]))


def _bare_trainer(tmp_path: Path, data=None, **overrides):
    """The learner's base Trainer around ``_Two`` with SGD (lr 0.5) and the schedule ``lr = 0.5 · 0.5**step``."""
    module = learner("training.trainer")
    model = _Two()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    args = module.TrainingArguments(output_dir=str(tmp_path / "bare"), **{**BASE_ARGS, **overrides})
    data = data if data is not None else [{"input_ids": [1, 2], "labels": [2, 3]}] * 4
    return module.Trainer(model, args, data, optimizer=optimizer, scheduler=scheduler)


def _set_grads(model: _Two, w, b) -> None:
    model.w.grad = torch.tensor(w)
    model.b.grad = torch.tensor(b)


def _cpu_autocast_state() -> tuple[bool, torch.dtype]:
    """Whether CPU autocast is on and its dtype (torch >= 2.4 takes the device type; 2.2-2.3 do not)."""
    try:
        return torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")
    except TypeError:
        return torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()


def _grads_cleared(model: nn.Module) -> bool:
    return all(p.grad is None or not p.grad.any() for p in model.parameters())


# ===================================================================== autocast_dtype


@pytest.mark.parametrize("precision, device, expected", [
    ("fp32", "cpu", None), ("bf16", "cpu", torch.bfloat16), ("auto", "cpu", torch.bfloat16),
    ("fp32", torch.device("cpu"), None), ("auto", "mps", None), ("fp32", "mps", None),
], ids=["fp32-cpu", "bf16-cpu", "auto-cpu", "fp32-torch.device", "auto-mps", "fp32-mps"])
@pytest.mark.symbol("autocast_dtype")
def test_autocast_dtype_choices_without_cuda(precision, device, expected):
    """``"fp32"`` is never autocast (None); the CPU has bf16 autocast kernels, so ``"bf16"`` and
    ``"auto"`` give ``torch.bfloat16``; another device without bf16 or fp16 support (``mps``
    here) gets ``"auto" -> None``. ``device`` may be a string or a ``torch.device``."""
    got = learner("utils.mixed_precision").autocast_dtype(precision, device)
    assert got is expected, say(
        f"autocast_dtype({precision!r}, {device!r}) 返回 {got!r}，应为 {expected!r}：fp32 -> None；CPU 支持 bf16，"
        "auto 优先 bf16；既不是 CPU 也不是 CUDA 的设备 auto -> None",
        f"autocast_dtype({precision!r}, {device!r}) returned {got!r}, expected {expected!r}: fp32 -> None; the CPU "
        "supports bf16 and auto prefers bf16; a device that is neither CPU nor CUDA gets auto -> None")


@pytest.mark.parametrize("bf16_supported", [True, False], ids=["gpu-with-bf16", "gpu-without-bf16"])
@pytest.mark.symbol("autocast_dtype")
def test_autocast_dtype_on_cuda_follows_bf16_support(monkeypatch, bf16_supported):
    """CUDA is faked (``torch.cuda.is_available`` and ``torch.cuda.is_bf16_supported`` patched):
    with bf16 support ``"auto"`` and ``"bf16"`` give bf16; without it (pre-Ampere GPUs) ``"auto"``
    falls back to fp16 and ``"bf16"`` raises ValueError. ``"fp16"`` on CUDA is always float16,
    ``"fp32"`` always None; ``"cuda:0"`` counts as CUDA."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16_supported)
    autocast_dtype = learner("utils.mixed_precision").autocast_dtype
    auto = torch.bfloat16 if bf16_supported else torch.float16
    for precision, device, expected in [("auto", "cuda", auto), ("auto", "cuda:0", auto), ("fp16", "cuda", torch.float16),
                                        ("fp32", "cuda", None)]:
        got = autocast_dtype(precision, device)
        assert got is expected, say(
            f"bf16 支持={bf16_supported} 时 autocast_dtype({precision!r}, {device!r}) 返回 {got!r}，应为 {expected!r}："
            "CUDA 上用 torch.cuda.is_bf16_supported() 判断，不支持 bf16 时 auto 退回 fp16",
            f"with bf16 support={bf16_supported}, autocast_dtype({precision!r}, {device!r}) returned {got!r}, expected "
            f"{expected!r}: on CUDA ask torch.cuda.is_bf16_supported(); without bf16, auto falls back to fp16")
    if bf16_supported:
        assert autocast_dtype("bf16", "cuda") is torch.bfloat16
    else:
        expect_error(ValueError, lambda: autocast_dtype("bf16", "cuda"), "autocast_dtype('bf16', 'cuda') on a GPU "
                     "without bf16")


@pytest.mark.parametrize("precision, device", [("fp16", "cpu"), ("half", "cpu"), ("fp8", "cuda"), ("bf16", "mps"),
                                               ("fp16", "mps")])
@pytest.mark.symbol("autocast_dtype")
def test_autocast_dtype_rejects_what_cannot_run(precision, device):
    """ValueError (with the choices or the fix in the message) for an unknown precision name,
    fp16 on a CPU (CPU autocast in fp16 is not what anyone trains with: use bf16 or fp32), and
    bf16 / fp16 on a device with neither (``mps``)."""
    expect_error(ValueError, lambda: learner("utils.mixed_precision").autocast_dtype(precision, device),
                 f"autocast_dtype({precision!r}, {device!r})")


# ===================================================================== autocast_context


@pytest.mark.symbol("autocast_context")
def test_autocast_context_for_none_is_plain_float32():
    """``dtype=None`` (fp32 training) is a context that changes nothing: autocast stays off
    and ``x @ w`` of float32 tensors is float32."""
    x, w = torch.randn(3, 4), torch.randn(4, 5)
    with learner("utils.mixed_precision").autocast_context("cpu", None):
        enabled = _cpu_autocast_state()[0]
        y = x @ w
    assert not enabled and y.dtype == torch.float32, say(
        f"dtype=None 时不能打开 autocast（autocast 开着={enabled}，结果 {y.dtype}）：return contextlib.nullcontext()",
        f"dtype=None must not turn autocast on (autocast on={enabled}, result {y.dtype}): return "
        "contextlib.nullcontext()")


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")], ids=["str", "torch.device"])
@pytest.mark.symbol("autocast_context")
def test_autocast_context_bf16_is_torch_autocast(device):
    """``dtype=torch.bfloat16`` on the CPU is ``torch.autocast("cpu", dtype=torch.bfloat16)``:
    inside it autocast is on with that dtype, a linear layer's output is bfloat16 and equal to
    the one under ``torch.autocast``; the float32 weights stay float32; outside it autocast is off."""
    x, layer = torch.randn(3, 8), nn.Linear(8, 5)
    with learner("utils.mixed_precision").autocast_context(device, torch.bfloat16):
        enabled, dtype = _cpu_autocast_state()
        y = layer(x)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        expected = layer(x)
    hint = ("return torch.autocast(device_type=torch.device(device).type, dtype=dtype)：device_type 是 \"cpu\" / \"cuda\"，"
            "不是 \"cuda:0\" 也不是 torch.device", "return torch.autocast(device_type=torch.device(device).type, "
            "dtype=dtype): device_type is \"cpu\" / \"cuda\", not \"cuda:0\" nor a torch.device")
    assert enabled and dtype == torch.bfloat16, say(f"进入 autocast_context 后 autocast 开着={enabled}、dtype={dtype}\n{hint[0]}",
                                                    f"inside autocast_context autocast on={enabled}, dtype={dtype}\n{hint[1]}")
    assert_close(y, expected, "nn.Linear under autocast_context(cpu, bf16) vs torch.autocast", atol=0, rtol=0, hint=hint)
    assert layer.weight.dtype == torch.float32 and not _cpu_autocast_state()[0]


# ===================================================================== LossScaler


def _scaler(**kwargs):
    return learner("utils.mixed_precision").LossScaler(**kwargs)


@pytest.mark.symbol("LossScaler.unscale_")
def test_unscale_divides_every_gradient_once_and_reports_no_overflow():
    """Scale 8, two parameter groups, gradients ``a: [8, -16]``, ``b: [4, 0, 24]``, ``c`` none:
    after ``unscale_`` they are ``[1, -2]`` and ``[0.5, 0, 3]`` (c stays None) and it returns
    False. A second ``unscale_`` in the same step changes nothing (dividing twice would give
    ``[0.125, -0.25]``) and returns False again."""
    a, b, c = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([{"params": [a]}, {"params": [b, c]}], lr=0.1)
    scaler = _scaler(init_scale=8.0)
    a.grad, b.grad = torch.tensor([8.0, -16.0]), torch.tensor([4.0, 0.0, 24.0])
    hint = ("对每个 param_group 里 grad 不为 None 的参数 p.grad.mul_(1 / scale)（原地），每步只做一次（self._unscaled）",
            "p.grad.mul_(1 / scale) in place for every parameter of every param_group whose grad is not None, once "
            "per step (self._unscaled)")
    for call in ("first", "second"):
        found = scaler.unscale_(opt)
        assert not bool(found), say(f"第{'一' if call == 'first' else '二'}次 unscale_ 返回 {found!r}，梯度都是有限数，应为 False",
                                    f"the {call} unscale_ returned {found!r}; every gradient is finite, expected False")
        assert_close(a.grad, torch.tensor([1.0, -2.0]), f"a.grad after the {call} unscale_ (scale 8)", hint=hint, **F32)
        assert_close(b.grad, torch.tensor([0.5, 0.0, 3.0]), f"b.grad after the {call} unscale_ (scale 8)", hint=hint,
                     **F32)
    assert c.grad is None


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")], ids=["inf", "-inf", "nan"])
@pytest.mark.symbol("LossScaler.unscale_")
def test_unscale_reports_an_overflow_in_any_gradient(bad):
    """Scale 4; the first group's gradient is finite, one element of the second group's is
    ``inf`` / ``-inf`` / ``nan``: ``unscale_`` returns True (and still divides the finite ones:
    ``[4, 8] -> [1, 2]``). A disabled scaler returns False and leaves the gradients alone."""
    a, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1)
    a.grad, b.grad = torch.tensor([4.0, 8.0]), torch.tensor([1.0, bad])
    found = _scaler(init_scale=4.0).unscale_(opt)
    assert bool(found), say(f"梯度里有 {bad} 时 unscale_ 返回 {found!r}，应为 True：not torch.isfinite(p.grad).all() "
                            "就算溢出（inf 和 nan 都算），每个参数都要查",
                            f"unscale_ returned {found!r} with a {bad} in a gradient, expected True: not "
                            "torch.isfinite(p.grad).all() is an overflow (inf and nan alike), for every parameter")
    assert_close(a.grad, torch.tensor([1.0, 2.0]), "a finite gradient next to the overflow, after unscale_ (scale 4)",
                 **F32)
    a.grad = torch.tensor([4.0, 8.0])
    assert not bool(_scaler(enabled=False).unscale_(opt)), say("未启用的 scaler 的 unscale_ 应返回 False",
                                                               "a disabled scaler's unscale_ returns False")
    assert_close(a.grad, torch.tensor([4.0, 8.0]), "gradient after a disabled scaler's unscale_", **F32,
                 hint=("enabled=False 时什么都不做（scale 是 1）", "enabled=False does nothing (the scale is 1)"))


@pytest.mark.symbol("LossScaler.step")
def test_step_unscales_first_steps_when_finite_and_skips_on_overflow():
    """SGD lr 0.5, scale 4, ``p = [1, 1, 1]``.

    1. gradient ``[4, 8, -4]`` and ``step`` without an ``unscale_`` first: it unscales
       (``[1, 2, -1]``), steps and returns True: ``p = [1, 1, 1] - 0.5·[1, 2, -1] = [0.5, 0, 1.5]``.
    2. after ``update``, ``unscale_`` by hand and then ``step``: the gradient ``[8, 8, 8]`` is
       divided once (``[2, 2, 2]``), ``p = [-0.5, -1, 0.5]``.
    3. a gradient with ``inf``: ``step`` returns False and ``p`` does not move."""
    p = nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=0.5)
    scaler = _scaler(init_scale=4.0)
    p.grad = torch.tensor([4.0, 8.0, -4.0])
    stepped = scaler.step(opt)
    assert bool(stepped), say(f"有限的梯度时 step 返回 {stepped!r}，应为 True", f"step returned {stepped!r} with finite "
                              "gradients, expected True")
    assert_close(p.detach(), torch.tensor([0.5, 0.0, 1.5]), "p after step() without an unscale_ first", **F32,
                 hint=("还没 unscale 时 step 要先 self.unscale_(optimizer)，再 optimizer.step()",
                       "step calls self.unscale_(optimizer) first when this step has not been unscaled yet, then "
                       "optimizer.step()"))
    scaler.update()
    p.grad = torch.tensor([8.0, 8.0, 8.0])
    scaler.unscale_(opt)
    scaler.step(opt)
    assert_close(p.detach(), torch.tensor([-0.5, -1.0, 0.5]), "p after unscale_() then step()", **F32,
                 hint=("已经 unscale 过的一步，step 不能再除一次", "a step that was already unscaled must not be divided again"))
    scaler.update()
    p.grad = torch.tensor([1.0, float("inf"), 0.0])
    before = p.detach().clone()
    stepped = scaler.step(opt)
    assert not bool(stepped), say(f"梯度里有 inf 时 step 返回 {stepped!r}，应为 False（跳过这一步）",
                                  f"step returned {stepped!r} with an inf gradient, expected False (step skipped)")
    assert_close(p.detach(), before, "p after a step with an inf gradient (must be skipped)", atol=0, rtol=0,
                 hint=("found_inf 时不调用 optimizer.step()：带 inf 的更新会毁掉参数",
                       "no optimizer.step() when found_inf: an update with inf ruins the parameters"))


@pytest.mark.parametrize("growth_factor, backoff_factor", [(2.0, 0.5), (4.0, 0.25)])
@pytest.mark.symbol("LossScaler.update")
def test_update_halves_on_overflow_and_grows_after_growth_interval_good_steps(growth_factor, backoff_factor):
    """``init_scale = 1024``, ``growth_interval = 3``, steps good (G) or overflowing (X):
    ``G G X G G G G`` -> scale after each ``update``: ``1024, 1024, 1024·b, 1024·b, 1024·b,
    1024·b·g, 1024·b·g`` (the overflow resets the count of good steps; the third good step in a
    row grows it). Every step the gradient is ``scale · [1, 2]`` and after ``unscale_`` it must be
    ``[1, 2]`` again: ``update`` resets the step, so the next ``unscale_`` divides anew."""
    p = nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=0.0)
    scaler = _scaler(init_scale=1024.0, growth_factor=growth_factor, backoff_factor=backoff_factor, growth_interval=3)
    g, b = growth_factor, backoff_factor
    pattern = "GGXGGGG"
    expected = [1024.0, 1024.0, 1024 * b, 1024 * b, 1024 * b, 1024 * b * g, 1024 * b * g]
    hint = ("溢出：scale *= backoff_factor、good_steps = 0；否则 good_steps += 1，达到 growth_interval 时 scale *= "
            "growth_factor 并清零；最后复位 found_inf = False、_unscaled = False",
            "overflow: scale *= backoff_factor, good_steps = 0; else good_steps += 1 and at growth_interval scale *= "
            "growth_factor and the count restarts; finally reset found_inf = False and _unscaled = False")
    for i, (kind, want) in enumerate(zip(pattern, expected, strict=True), start=1):
        scale = scaler.scale_value
        p.grad = torch.tensor([scale, 2 * scale]) if kind == "G" else torch.tensor([scale, float("inf")])
        found = scaler.unscale_(opt)
        if kind == "G":
            assert not bool(found), say(f"第 {i} 步梯度有限，unscale_ 却报告溢出：update 之后要复位 found_inf",
                                        f"step {i} has finite gradients but unscale_ reports an overflow: update must "
                                        "reset found_inf")
            assert_close(p.grad, torch.tensor([1.0, 2.0]), f"gradient after unscale_ at step {i} (pattern {pattern})",
                         hint=hint, **F32)
        scaler.step(opt)
        scaler.update()
        assert scaler.scale_value == want, say(
            f"模式 {pattern} 的第 {i} 步（{kind}）update 之后 scale = {scaler.scale_value}，应为 {want}\n{hint[0]}",
            f"after update at step {i} ({kind}) of {pattern} the scale is {scaler.scale_value}, expected {want}\n{hint[1]}")


# ===================================================================== PretrainTrainer.compute_loss


class _Recorder(nn.Module):
    """Wraps the model and records the keyword arguments of every call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.calls: list[dict] = []

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        self.calls.append({"attention_mask": attention_mask, "labels": labels, **kwargs})
        return self.model(input_ids, attention_mask=attention_mask, labels=labels, **kwargs)


@pytest.mark.symbol("PretrainTrainer.compute_loss")
def test_compute_loss_is_cross_entropy_against_the_already_shifted_labels(tmp_path):
    """A padded batch ``[2, 8]`` whose labels are already shifted (``labels[i] = input_ids[i + 1]``,
    -100 on padding and on two more positions): the loss is ``F.cross_entropy`` of the logits
    against the labels **position by position**, and the labels are never handed to the model
    (``CausalLM(labels=...)`` shifts once more and would teach it the token two steps ahead)."""
    model = _model()
    data = _blocks(4)
    batch = reference("data.pretrain_dataset").collate(
        [data[0], {"input_ids": data[1]["input_ids"][:5], "labels": data[1]["labels"][:5]}], pad_token_id=0)
    batch["labels"][0, 2] = -100
    batch["labels"][0, 6] = -100
    trainer = learner("training.pretrain_trainer").PretrainTrainer(
        model, learner("training.trainer").TrainingArguments(output_dir=str(tmp_path), **BASE_ARGS), data)
    recorder = _Recorder(model)
    loss = trainer.compute_loss(recorder, batch)
    passed = [call["labels"] for call in recorder.calls if call["labels"] is not None]
    assert not passed, say("compute_loss 把 labels 传给了模型：数据集的 labels 已经错开一位，CausalLM(labels=...) 会再错开一次，"
                           "模型学的就成了预测后面第二个 token。只传 input_ids 和 attention_mask，用 logits 和 labels 算交叉熵",
                           "compute_loss handed the labels to the model: the dataset's labels are already shifted and "
                           "CausalLM(labels=...) shifts them again, teaching the model the token two steps ahead. Pass "
                           "input_ids and attention_mask only, and take the cross-entropy of logits against labels")
    expected = _ce(model, batch)
    assert isinstance(loss, torch.Tensor) and loss.requires_grad, say(
        "compute_loss 要返回带计算图的标量张量（不要 .item() 或 .detach()）",
        "compute_loss returns a scalar tensor with its graph (no .item() or .detach())")
    assert_close(loss.detach(), expected.detach(), "compute_loss vs F.cross_entropy(logits, labels) on a padded batch",
                 hint=("logits = model(batch[\"input_ids\"], attention_mask=batch.get(\"attention_mask\")).logits；"
                       "return cross_entropy_loss(logits, batch[\"labels\"])：不再错位，-100 不计入平均",
                       "logits = model(batch[\"input_ids\"], attention_mask=batch.get(\"attention_mask\")).logits; "
                       "return cross_entropy_loss(logits, batch[\"labels\"]): no further shift, -100 left out of the "
                       "mean"), **F32)


# ===================================================================== checkpointing.optimizer_state_to_flat


def _adamw_after_two_steps():
    """The reference AdamW on ``_Two`` plus a parameter that never gets a gradient, after 2 steps."""
    model, frozen = _Two(), nn.Parameter(torch.zeros(2))
    opt = reference("optimizer.adamw").AdamW([{"params": [model.w], "weight_decay": 0.1},
                                              {"params": [model.b, frozen], "weight_decay": 0.0}], lr=0.1)
    for _ in range(2):
        _set_grads(model, [1.0, -2.0], [0.5])
        opt.step()
    return opt


@pytest.mark.symbol("optimizer_state_to_flat")
def test_optimizer_state_to_flat_splits_tensors_from_plain_values():
    """The course's AdamW after 2 steps holds, for parameters 0 (w) and 1 (b), the tensors
    ``exp_avg`` and ``exp_avg_sq`` and the int ``step = 2``; parameter 2 has no state. Expected:
    tensors ``{"state.0.exp_avg", "state.0.exp_avg_sq", "state.1.exp_avg", "state.1.exp_avg_sq"}``,
    meta ``{"state": {"0": {"step": 2}, "1": {"step": 2}}, "param_groups": [...]}`` that survives
    ``json.dumps``, with betas as a list; ``optimizer_state_from_flat`` rebuilds the state dict."""
    opt = _adamw_after_two_steps()
    ckpt = learner("training.checkpointing")
    tensors, meta = ckpt.optimizer_state_to_flat(opt)
    hint = ("遍历 sd[\"state\"]：张量放进 tensors[f\"state.{i}.{name}\"]，其他值放进 meta[\"state\"][str(i)][name]；"
            "param_groups 用 _plain 转成 JSON 能写的值", "walk sd[\"state\"]: tensors go to tensors[f\"state.{i}.{name}\"], "
            "other values to meta[\"state\"][str(i)][name]; param_groups through _plain into JSON-ready values")
    assert_same_sequence(sorted(tensors), ["state.0.exp_avg", "state.0.exp_avg_sq", "state.1.exp_avg",
                                           "state.1.exp_avg_sq"], "the tensor names of optimizer_state_to_flat")
    assert meta.get("state") == {"0": {"step": 2}, "1": {"step": 2}}, say(
        f"meta[\"state\"] = {meta.get('state')!r}，应为 {{'0': {{'step': 2}}, '1': {{'step': 2}}}}\n{hint[0]}",
        f"meta[\"state\"] = {meta.get('state')!r}, expected {{'0': {{'step': 2}}, '1': {{'step': 2}}}}\n{hint[1]}")
    try:
        text = json.dumps(meta)
    except TypeError as exc:
        raise AssertionError(say(f"meta 写不进 JSON（{exc}）\n{hint[0]}", f"meta is not JSON-ready ({exc})\n{hint[1]}")) \
            from None
    rebuilt = ckpt.optimizer_state_from_flat({k: v.clone() for k, v in tensors.items()}, json.loads(text))
    found = nested_difference(rebuilt, opt.state_dict(), "state_dict")
    assert found is None, say(f"经过 optimizer_state_to_flat / from_flat 往返后不同：{found}\n{hint[0]}",
                              f"differs after a to_flat / from_flat round trip: {found}\n{hint[1]}")


# ===================================================================== capture / restore RNG


def _draw(which: str, generator: torch.Generator) -> list:
    if which == "python":
        return [random.random(), random.gauss(0.0, 1.0), random.randint(0, 10**9)]
    if which == "torch":
        return torch.rand(4).tolist()
    return torch.randperm(12, generator=generator).tolist()


def _json_round_trip(state, what: str):
    try:
        return json.loads(json.dumps(state))
    except TypeError as exc:
        raise AssertionError(say(f"{what} 的结果要能写进 JSON（{exc}）：张量用 .tolist()，tuple 转成 list",
                                 f"{what} must return JSON-ready values ({exc}): tensors as .tolist(), tuples as lists")) \
            from None


@pytest.mark.parametrize("which", ["python", "torch", "data"])
@pytest.mark.symbol("capture_rng_state")
def test_rng_state_round_trip_replays_every_generator(which):
    """Capture the states (python's ``random`` with a cached ``gauss`` value, torch's CPU
    generator, the data generator), pass them through JSON, draw a few numbers, disturb every
    generator, restore: the same numbers come out again. A generator that is not captured or
    not restored draws different numbers (dropout masks and the data order of a resumed run)."""
    ckpt = learner("training.checkpointing")
    generator = torch.Generator().manual_seed(5)
    random.seed(1)
    random.gauss(0.0, 1.0)  # leaves the second Gaussian cached in the state
    torch.manual_seed(2)
    torch.randperm(7, generator=generator)
    state = _json_round_trip(ckpt.capture_rng_state(generator), "capture_rng_state")
    first = _draw(which, generator)
    random.seed(99)
    torch.manual_seed(99)
    generator.manual_seed(99)
    ckpt.restore_rng_state(state, generator)
    again = _draw(which, generator)
    names = {"python": "random (python)", "torch": "torch.get_rng_state()", "data": "data_generator.get_state()"}
    assert again == first, say(
        f"恢复之后 {names[which]} 给出的随机数不同：{again} 而不是 {first}。capture_rng_state 要保存它（JSON 能写的列表），"
        "restore_rng_state 要把它放回去", f"after restoring, {names[which]} draws {again} instead of {first}: "
        "capture_rng_state must save it (as JSON-ready lists) and restore_rng_state must put it back")


@pytest.mark.symbol("restore_rng_state")
def test_restore_rng_state_puts_back_the_documented_state_into_any_generator():
    """States captured by the reference (the documented format: ``{"python": [version, [625
    ints], gauss_next], "torch": [ints], "data": [ints], "cuda": None}``) through JSON, restored
    into a **new** ``torch.Generator`` after disturbing the global RNGs: python, torch and data
    draws replay. A state without ``"data"`` (``None``) leaves the generator alone."""
    generator = torch.Generator().manual_seed(11)
    random.seed(3)
    torch.manual_seed(4)
    state = json.loads(json.dumps(reference("training.checkpointing").capture_rng_state(generator)))
    first = [_draw(which, generator) for which in ("python", "torch", "data")]
    random.seed(0)
    torch.manual_seed(0)
    fresh = torch.Generator()
    restore = learner("training.checkpointing").restore_rng_state
    restore(state, fresh)
    again = [_draw(which, fresh) for which in ("python", "torch", "data")]
    for name, a, b in zip(("python random", "torch", "data generator"), again, first, strict=True):
        assert a == b, say(f"restore_rng_state 之后 {name} 的随机数不同：random.setstate((version, tuple(internal), "
                           "gauss_next))；torch.set_rng_state(torch.tensor(..., dtype=torch.uint8))；"
                           "data_generator.set_state(...)", f"after restore_rng_state the {name} draws differ: "
                           "random.setstate((version, tuple(internal), gauss_next)); torch.set_rng_state(torch.tensor(..., "
                           "dtype=torch.uint8)); data_generator.set_state(...)")
    untouched = torch.Generator().manual_seed(21)
    expected = torch.Generator().manual_seed(21)
    restore({**state, "data": None}, untouched)
    assert torch.equal(untouched.get_state(), expected.get_state()), say(
        "state[\"data\"] 为 None 时不要动数据生成器", "leave the data generator alone when state[\"data\"] is None")


# ===================================================================== save_checkpoint / load_checkpoint


def _trained_model_and_adamw(seed: int = 0, steps: int = 2, tie: bool = True):
    model = _model(seed=seed, tie=tie)
    args = learner("training.trainer").TrainingArguments(output_dir="unused", **BASE_ARGS)
    opt, _ = _optimizer_and_scheduler(model, args)
    data = reference("data.pretrain_dataset").collate(_blocks(2), pad_token_id=0)
    for _ in range(steps):
        opt.zero_grad()
        _ce(model, data).backward()
        opt.step()
    return model, opt


@pytest.mark.symbol("save_checkpoint")
def test_save_checkpoint_writes_safetensors_and_json_without_pickle(tmp_path, monkeypatch):
    """A tied-embedding model and AdamW after 2 steps, ``trainer_state = {"step": 2, "note":
    "hello"}``. The folder holds exactly ``model.safetensors``, ``optimizer.safetensors`` and
    ``trainer_state.json``; ``torch.save`` / ``pickle`` are never called; the weights load back
    with ``safetensors.torch.load_model``, the optimizer file holds the tensors of
    ``optimizer_state_to_flat`` and the JSON the trainer state plus ``"optimizer"`` (its
    metadata). Nothing else (no temporary folder) is left next to the checkpoint."""
    from safetensors.torch import load_file, load_model

    ckpt = learner("training.checkpointing")
    model, opt = _trained_model_and_adamw()
    for module, name in ((torch, "save"), (pickle, "dump"), (pickle, "dumps")):
        monkeypatch.setattr(module, name, _forbid(f"{module.__name__}.{name}"))
    target = tmp_path / "run" / "checkpoint-2"
    returned = ckpt.save_checkpoint(target, model, opt, {"step": 2, "note": "hello"})
    assert Path(returned) == target, say(f"save_checkpoint 返回 {returned!r}，应为检查点文件夹 {target}",
                                         f"save_checkpoint returned {returned!r}, expected the folder {target}")
    names = sorted(p.name for p in target.iterdir())
    assert_same_sequence(names, sorted([ckpt.MODEL_FILE, ckpt.OPTIMIZER_FILE, ckpt.STATE_FILE]),
                         "the files of the checkpoint folder")
    assert_same_sequence(sorted(p.name for p in target.parent.iterdir()), ["checkpoint-2"],
                         "the run folder after a save (a temporary folder must be renamed, not left behind)")
    fresh = _model(seed=9, tie=True)
    load_model(fresh, str(target / ckpt.MODEL_FILE))
    _check_weights(fresh, model, "weights loaded from model.safetensors", tol=0.0,
                   hint=("save_model(model, tmp / MODEL_FILE)（共享的权重只存一次）", "save_model(model, tmp / MODEL_FILE) "
                         "(tied weights stored once)"))
    expected_tensors, expected_meta = reference("training.checkpointing").optimizer_state_to_flat(opt)
    found = nested_difference(load_file(str(target / ckpt.OPTIMIZER_FILE)), expected_tensors, "optimizer.safetensors")
    assert found is None, say(f"optimizer.safetensors 里的张量不对：{found}", f"optimizer.safetensors holds the wrong "
                              f"tensors: {found}")
    state = json.loads((target / ckpt.STATE_FILE).read_text(encoding="utf-8"))
    found = nested_difference(state, {"step": 2, "note": "hello", "optimizer": json.loads(json.dumps(expected_meta))},
                              "trainer_state.json")
    assert found is None, say(f"trainer_state.json 应是 trainer_state 加上 \"optimizer\"（optimizer_state_to_flat 的 meta）：{found}",
                              f"trainer_state.json should be trainer_state plus \"optimizer\" (the meta of "
                              f"optimizer_state_to_flat): {found}")


@pytest.mark.symbol("save_checkpoint")
def test_save_checkpoint_replaces_a_folder_atomically(tmp_path):
    """Saving twice to ``checkpoint-1`` replaces it (the second model's weights load back).
    A third save that fails halfway (a trainer state JSON cannot hold: ``object()``) must
    leave the second checkpoint complete and untouched: everything is written into a
    temporary sibling folder first and renamed into place only when complete."""
    from safetensors.torch import load_model

    ckpt = learner("training.checkpointing")
    target = tmp_path / "run" / "checkpoint-1"
    old_model, old_opt = _trained_model_and_adamw(seed=1, steps=1)
    new_model, new_opt = _trained_model_and_adamw(seed=2, steps=1)
    ckpt.save_checkpoint(target, old_model, old_opt, {"step": 1})
    ckpt.save_checkpoint(target, new_model, new_opt, {"step": 1, "second": True})
    fresh = _model(seed=9, tie=True)
    load_model(fresh, str(target / ckpt.MODEL_FILE))
    _check_weights(fresh, new_model, "weights after saving twice to the same folder", tol=0.0,
                   hint=("第二次保存要替换旧文件夹", "the second save replaces the old folder"))
    assert_same_sequence(sorted(p.name for p in target.parent.iterdir()), ["checkpoint-1"],
                         "the run folder after saving twice")
    broken_model, broken_opt = _trained_model_and_adamw(seed=3, steps=1)
    with pytest.raises((TypeError, ValueError)):  # json.dump: "Object of type object is not JSON serializable"
        ckpt.save_checkpoint(target, broken_model, broken_opt, {"step": 1, "bad": object()})
    hint = ("原子写入：先全部写进同一目录下的临时文件夹（如 .checkpoint-1.tmp-<pid>），写完才 os.replace 到最终名字；"
            "中途失败时旧检查点必须完好", "atomic writes: write everything into a temporary sibling folder (e.g. "
            ".checkpoint-1.tmp-<pid>) and os.replace it into place only when complete; a failure halfway must leave "
            "the old checkpoint intact")
    assert sorted(p.name for p in target.iterdir()) == sorted([ckpt.MODEL_FILE, ckpt.OPTIMIZER_FILE, ckpt.STATE_FILE]), \
        say(f"保存中途失败后 checkpoint-1 不完整\n{hint[0]}", f"checkpoint-1 is incomplete after a failed save\n{hint[1]}")
    load_model(fresh, str(target / ckpt.MODEL_FILE))
    _check_weights(fresh, new_model, "weights of checkpoint-1 after a save that failed halfway", tol=0.0, hint=hint)
    state = json.loads((target / ckpt.STATE_FILE).read_text(encoding="utf-8"))
    assert state.get("second") is True, say(f"保存中途失败后 trainer_state.json 变了\n{hint[0]}",
                                            f"trainer_state.json changed after a failed save\n{hint[1]}")


@pytest.mark.symbol("load_checkpoint")
def test_load_checkpoint_restores_weights_and_optimizer_without_pickle(tmp_path, monkeypatch):
    """A checkpoint written by the reference (the documented layout) is loaded into a fresh
    model (another initialisation) and a fresh AdamW: the weights and the whole optimizer
    state dict come back, one more step of each optimiser gives identical weights, and the
    trainer state dict is returned. ``torch.load`` / ``pickle.load`` are never called.
    ``optimizer=None`` loads the weights only; a missing file raises FileNotFoundError naming it."""
    ckpt = learner("training.checkpointing")
    model, opt = _trained_model_and_adamw()
    target = tmp_path / "checkpoint-2"
    reference("training.checkpointing").save_checkpoint(target, model, opt, {"step": 2, "note": "hello"})
    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(module, name, _forbid(f"{module.__name__}.{name}"))
    fresh, _ = _trained_model_and_adamw(seed=5, steps=0)
    args = learner("training.trainer").TrainingArguments(output_dir="unused", **BASE_ARGS)
    fresh_opt, _ = _optimizer_and_scheduler(fresh, args)
    state = ckpt.load_checkpoint(target, fresh, fresh_opt)
    assert isinstance(state, dict) and state.get("step") == 2 and state.get("note") == "hello", say(
        f"load_checkpoint 要返回 trainer_state.json 的内容，实际 {str(state)[:120]}",
        f"load_checkpoint returns the contents of trainer_state.json, got {str(state)[:120]}")
    _check_weights(fresh, model, "weights after load_checkpoint", tol=0.0,
                   hint=("load_model(model, path / MODEL_FILE, device=...)", "load_model(model, path / MODEL_FILE, "
                         "device=...)"))
    found = nested_difference(fresh_opt.state_dict(), opt.state_dict(), "optimizer.state_dict()")
    assert found is None, say(f"加载后的优化器状态不同：{found}：optimizer.load_state_dict(optimizer_state_from_flat(load_file(...), "
                              "state[\"optimizer\"]))", f"the loaded optimizer state differs: {found}: "
                              "optimizer.load_state_dict(optimizer_state_from_flat(load_file(...), state[\"optimizer\"]))")
    batch = reference("data.pretrain_dataset").collate(_blocks(2, seed=8), pad_token_id=0)
    for m, o in ((model, opt), (fresh, fresh_opt)):
        o.zero_grad()
        _ce(m, batch).backward()
        o.step()
    _check_weights(fresh, model, "weights one step after loading (the moments and the step count must be restored)",
                   tol=0.0)
    weights_only = _model(seed=6, tie=True)
    ckpt.load_checkpoint(target, weights_only)
    (target / ckpt.OPTIMIZER_FILE).unlink()
    error = expect_error(FileNotFoundError, lambda: ckpt.load_checkpoint(target, fresh, fresh_opt),
                         "load_checkpoint of a folder without optimizer.safetensors")
    assert ckpt.OPTIMIZER_FILE in str(error), say(f"错误信息要说出缺的是哪个文件：{error}",
                                                  f"the message must name the missing file: {error}")


# ===================================================================== Trainer.next_batch


@pytest.mark.symbol("Trainer.next_batch")
def test_next_batch_walks_a_seeded_permutation_and_drops_the_incomplete_tail(tmp_path):
    """10 examples, batches of 4, seed 3. Example ``i`` has ``input_ids = [i, i, i]``, so a batch
    shows which examples it holds. Expected: ``g = torch.Generator().manual_seed(3)``; each epoch
    ``order = torch.randperm(10, generator=g)`` (a new permutation every epoch, drawn from the
    same generator), batches ``order[0:4]`` and ``order[4:8]``; the 2 left over are dropped
    (every micro-batch the same size) and ``trainer.epoch`` counts 0, 0, 1, 1, 2, 2."""
    data = [{"input_ids": torch.full((3,), i), "labels": torch.full((3,), i)} for i in range(10)]
    trainer = _bare_trainer(tmp_path, data, seed=3)
    g = torch.Generator().manual_seed(3)
    expected = []
    for _ in range(3):
        order = torch.randperm(10, generator=g)
        expected += [order[0:4].tolist(), order[4:8].tolist()]
    got, epochs = [], []
    for _ in range(6):
        batch = trainer.next_batch()
        got.append(batch["input_ids"][:, 0].tolist())
        epochs.append(trainer.epoch)
        assert batch["input_ids"].shape == (4, 3) and set(batch) >= {"input_ids", "labels"}
    hint = ("每轮开始时 self._order = torch.randperm(len(self.train_dataset), generator=self.data_generator)、"
            "position = 0；依次取 order[position : position + b]；剩下不够 b 个时 epoch += 1 并重新抽排列（丢掉尾巴）",
            "at the start of each epoch self._order = torch.randperm(len(self.train_dataset), "
            "generator=self.data_generator) and position = 0; take order[position : position + b] in turn; when fewer "
            "than b are left, epoch += 1 and draw a new permutation (the tail is dropped)")
    try:
        assert_same_sequence(got, expected, "the example indices of 6 consecutive next_batch() calls")
        assert_same_sequence(epochs, [0, 0, 1, 1, 2, 2], "trainer.epoch after each of the 6 next_batch() calls")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{say(*hint)}") from None


# ===================================================================== Trainer.training_step


@pytest.mark.parametrize("scale", [None, 8.0], ids=["no-scaler", "loss-scale-8"])
@pytest.mark.symbol("Trainer.training_step")
def test_training_step_returns_the_loss_and_adds_loss_over_k_to_the_gradients(tmp_path, scale):
    """``gradient_accumulation_steps = 4``, two micro-batches. Each ``training_step`` returns
    the micro-batch loss (detached, **not** divided by 4) and adds the gradient of
    ``loss / 4`` (times the loss scale, when a scaler with scale 8 is enabled) into ``.grad``:
    after two calls ``.grad = scale · (∇L1 + ∇L2) / 4``, computed here with autograd on a copy
    of the model. It neither steps the optimiser nor the scheduler."""
    model = _model()
    twin = copy.deepcopy(model)
    data = _blocks(8)
    trainer = _build("mine", tmp_path, data, model=model, gradient_accumulation_steps=4)
    if scale is not None:
        trainer.scaler = learner("utils.mixed_precision").LossScaler(init_scale=scale)
    before = [p.detach().clone() for p in model.parameters()]
    hint = ("loss = compute_loss(...)（在 autocast 下）；self.scaler.scale(loss / gradient_accumulation_steps).backward()；"
            "return loss.detach()。不要在这里 zero_grad、step 或 scheduler.step()",
            "loss = compute_loss(...) (under autocast); self.scaler.scale(loss / gradient_accumulation_steps)"
            ".backward(); return loss.detach(). No zero_grad, step or scheduler.step() here")
    for call, examples in enumerate((data[:4], data[4:]), start=1):
        batch = trainer.collate_fn(examples)
        loss = trainer.training_step(batch)
        expected = _ce(twin, batch)
        (expected / 4 * (scale or 1.0)).backward()
        assert isinstance(loss, torch.Tensor) and not loss.requires_grad, say(
            "training_step 返回 loss.detach()（只用于记录）", "training_step returns loss.detach() (for logging only)")
        assert_close(loss, expected.detach(), f"the loss returned by training_step call {call}", hint=hint, **F32)
        for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
            assert p.grad is not None, say(f"training_step 第 {call} 次调用后 {name}.grad 是 None：要 backward",
                                           f"{name}.grad is None after training_step call {call}: call backward")
            assert_close(p.grad, q.grad, f"{name}.grad after {call} training_step call(s), k = 4, scale {scale}",
                         atol=1e-7, rtol=1e-5, hint=hint)
    for p, b in zip(model.parameters(), before, strict=True):
        assert torch.equal(p.detach(), b), say("training_step 改动了权重：optimizer.step() 属于 optimizer_step",
                                               "training_step changed the weights: optimizer.step() belongs in "
                                               "optimizer_step")
    assert trainer.scheduler.last_epoch == 0, say(
        f"两次 training_step 之后 scheduler 已经 step 了 {trainer.scheduler.last_epoch} 次：scheduler 每个优化器步一次，"
        "放在 optimizer_step 里", f"the scheduler stepped {trainer.scheduler.last_epoch} times during two "
        "training_step calls: it steps once per optimiser step, in optimizer_step")


@pytest.mark.symbol("Trainer.training_step")
def test_training_step_raises_on_a_nan_loss_naming_the_step(tmp_path):
    """A loss of nan at ``trainer.step = 4`` (so the step being computed is the 5th):
    ``FloatingPointError`` whose message names step 5, before any backward pollutes ``.grad``."""

    def nan_loss(module):
        class NanTrainer(_loop(module)):
            def compute_loss(self, model, batch):
                return super().compute_loss(model, batch) * float("nan")
        return NanTrainer

    data = _blocks(4)
    trainer = _build("mine", tmp_path, data, kind=nan_loss)
    trainer.step = 4
    error = expect_error(FloatingPointError, lambda: trainer.training_step(trainer.collate_fn(data)),
                         "training_step on a batch whose loss is nan")
    assert "5" in str(error), say(f"错误信息要写出第几步（self.step + 1 = 5）：{error}",
                                  f"the message must name the step (self.step + 1 = 5): {error}")
    assert all(p.grad is None for p in trainer.model.parameters()), say(
        "nan 的 loss 不能 backward：先检查 torch.isfinite(loss)", "a nan loss must not reach backward: check "
        "torch.isfinite(loss) first")


@pytest.mark.symbol("Trainer.training_step")
def test_gradient_accumulation_of_2_by_4_equals_one_batch_of_8(tmp_path):
    """16 examples; the learner's trainer with 2 micro-batches of 4 per step and with one
    batch of 8 (the same permutation, so the same 8 examples per step), 2 steps, clipping at
    1.0, plain SGD (lr 0.1, so the weights move by exactly the gradient's multiple): every
    micro-batch has the same number of label tokens, so the mean of the two micro-batch losses
    is the big batch's loss, and the summed gradients of ``loss / 2`` are its gradient. Logged
    loss and grad_norm and the final weights agree within 1e-6."""
    data = _blocks(16)
    accumulated = _build("mine", tmp_path / "k2", data, max_steps=2, per_device_batch_size=4, sgd=True,
                         gradient_accumulation_steps=2, max_grad_norm=1.0, learning_rate=0.1)
    big = _build("mine", tmp_path / "k1", data, max_steps=2, per_device_batch_size=8, max_grad_norm=1.0, sgd=True,
                 learning_rate=0.1)
    _check_history(accumulated.train(), big.train(), "2 × 4 accumulated vs one batch of 8")
    _check_weights(accumulated.model, big.model, "weights after 2 steps, 2 × 4 accumulated vs one batch of 8",
                   hint=GRAD_NORM_HINT)


# ===================================================================== Trainer.optimizer_step


@pytest.mark.parametrize("max_grad_norm", [1.0, None, 0.0], ids=["clip-1", "no-clip-None", "no-clip-0"])
@pytest.mark.symbol("Trainer.optimizer_step")
def test_optimizer_step_clips_steps_schedules_and_clears(tmp_path, max_grad_norm):
    """``w = [1, 2]``, ``b = [3]``, gradients ``[3, 0]`` and ``[4]``: global norm
    ``sqrt(9 + 16) = 5``, returned as a float. With ``max_grad_norm = 1`` the gradients are
    scaled by ``1 / 5`` before the SGD step (lr 0.5): ``w = [1 - 0.5·0.6, 2] = [0.7, 2]``,
    ``b = 3 - 0.5·0.8 = 2.6``; the optimiser must see norm <= 1 when it steps. Without clipping
    (None or 0): ``w = [-0.5, 2]``, ``b = 1``. Then the scheduler steps once (lr 0.5 -> 0.25) and
    the gradients are cleared."""
    trainer = _bare_trainer(tmp_path, max_grad_norm=max_grad_norm)
    model = trainer.model
    seen = []
    trainer.optimizer.register_step_pre_hook(
        lambda *args: seen.append(math.sqrt(float(model.w.grad.square().sum() + model.b.grad.square().sum()))))
    _set_grads(model, [3.0, 0.0], [4.0])
    norm = trainer.optimizer_step()
    assert isinstance(norm, float) and abs(norm - 5.0) < 1e-5, say(
        f"optimizer_step 返回 {norm!r}，应为裁剪之前的全局范数 5.0（float）：clip_grad_norm_ 的返回值，float(...)",
        f"optimizer_step returned {norm!r}, expected the global norm before clipping, 5.0 (a float): what "
        "clip_grad_norm_ returns, as float(...)")
    clip = max_grad_norm or None
    if clip:
        assert seen and seen[0] <= clip * (1 + 1e-5), say(
            f"optimizer.step() 时梯度范数是 {seen[0] if seen else '?'}，超过 max_grad_norm = {clip}：裁剪要在 step 之前",
            f"the gradient norm was {seen[0] if seen else '?'} when optimizer.step() ran, above max_grad_norm = {clip}: "
            "clip before the step")
    w, b = ([0.7, 2.0], [2.6]) if clip else ([-0.5, 2.0], [1.0])
    hint = ("顺序：scaler.unscale_ -> clip_grad_norm_(参数, max_grad_norm or math.inf) -> scaler.step(optimizer) -> "
            "scaler.update() -> scheduler.step() -> zero_grad", "order: scaler.unscale_ -> clip_grad_norm_(params, "
            "max_grad_norm or math.inf) -> scaler.step(optimizer) -> scaler.update() -> scheduler.step() -> zero_grad")
    assert_close(model.w.detach(), torch.tensor(w), f"w after optimizer_step (max_grad_norm={max_grad_norm})",
                 hint=hint, **F32)
    assert_close(model.b.detach(), torch.tensor(b), f"b after optimizer_step (max_grad_norm={max_grad_norm})",
                 hint=hint, **F32)
    assert trainer.scheduler.last_epoch == 1 and trainer.optimizer.param_groups[0]["lr"] == 0.25, say(
        f"一次 optimizer_step 后 scheduler 应 step 一次（lr 0.5 -> 0.25），实际 last_epoch={trainer.scheduler.last_epoch}",
        f"one optimizer_step steps the scheduler once (lr 0.5 -> 0.25); last_epoch={trainer.scheduler.last_epoch}")
    assert _grads_cleared(model), say("optimizer_step 最后要 self.optimizer.zero_grad(set_to_none=True)：下一步从零开始累积",
                                      "optimizer_step ends with self.optimizer.zero_grad(set_to_none=True): the next "
                                      "step accumulates from zero")


@pytest.mark.symbol("Trainer.optimizer_step")
def test_optimizer_step_unscales_before_clipping_and_skips_overflowing_steps(tmp_path):
    """An enabled loss scaler with scale 1024 and ``max_grad_norm = 1``.

    1. Gradients ``1024 · [3, 0]`` and ``1024 · [4]``: unscaled first they have norm 5 (returned),
       then clipped to 1: the same step as without a scaler, ``w = [0.7, 2]``, ``b = [2.6]``.
       Clipping the scaled gradients (norm 5120) and unscaling afterwards would leave a step
       1024 times too small.
    2. Gradients with ``inf``: the step is skipped (weights unchanged), the scheduler does
       not step (lr stays 0.25), the scale halves to 512 and the gradients are cleared; the
       returned norm is not finite."""
    trainer = _bare_trainer(tmp_path, max_grad_norm=1.0)
    trainer.scaler = learner("utils.mixed_precision").LossScaler(init_scale=1024.0)
    model = trainer.model
    _set_grads(model, [3072.0, 0.0], [4096.0])
    norm = trainer.optimizer_step()
    hint = ("先 self.scaler.unscale_(self.optimizer)，再裁剪：阈值是对真实大小的梯度说的",
            "self.scaler.unscale_(self.optimizer) first, then clip: the threshold is meant for the true gradients")
    assert abs(norm - 5.0) < 1e-5, say(f"scale 1024 时 optimizer_step 返回 {norm}，应为 unscale 之后的范数 5\n{hint[0]}",
                                       f"with scale 1024 optimizer_step returned {norm}, expected the unscaled norm 5\n"
                                       f"{hint[1]}")
    assert_close(model.w.detach(), torch.tensor([0.7, 2.0]), "w after a loss-scaled, clipped step", hint=hint, **F32)
    assert_close(model.b.detach(), torch.tensor([2.6]), "b after a loss-scaled, clipped step", hint=hint, **F32)
    _set_grads(model, [float("inf"), 0.0], [4096.0])
    before = [p.detach().clone() for p in model.parameters()]
    norm = trainer.optimizer_step()
    skip_hint = ("stepped = self.scaler.step(self.optimizer)（溢出时跳过）；self.scaler.update()；只有 stepped 时 "
                 "self.scheduler.step()", "stepped = self.scaler.step(self.optimizer) (skipped on overflow); "
                 "self.scaler.update(); self.scheduler.step() only when stepped")
    assert not math.isfinite(norm), say(f"梯度溢出时返回的范数应不是有限数，实际 {norm}",
                                        f"the returned norm should not be finite after an overflow, got {norm}")
    for p, b in zip(model.parameters(), before, strict=True):
        assert_close(p.detach(), b, "weights after an overflowing step (must be skipped)", atol=0, rtol=0,
                     hint=skip_hint)
    assert trainer.scheduler.last_epoch == 1, say(
        f"跳过的一步不能推进 scheduler（last_epoch 应仍为 1，实际 {trainer.scheduler.last_epoch}）\n{skip_hint[0]}",
        f"a skipped step must not advance the scheduler (last_epoch should stay 1, got {trainer.scheduler.last_epoch})"
        f"\n{skip_hint[1]}")
    assert trainer.scaler.scale_value == 512.0, say(
        f"溢出后 scale 应减半为 512，实际 {trainer.scaler.scale_value}：每步都要 self.scaler.update()",
        f"after an overflow the scale halves to 512, got {trainer.scaler.scale_value}: call self.scaler.update() "
        "every step")
    assert _grads_cleared(model), say("跳过的一步也要清空梯度", "a skipped step clears the gradients too")


@pytest.mark.symbol("Trainer.optimizer_step")
def test_optimizer_step_refuses_a_nan_gradient_without_loss_scaling(tmp_path):
    """fp32 (no loss scaler to skip the step): a nan gradient at ``trainer.step = 6`` raises
    ``FloatingPointError`` naming step 7, and the weights are not touched."""
    trainer = _bare_trainer(tmp_path, max_grad_norm=1.0)
    trainer.step = 6
    _set_grads(trainer.model, [float("nan"), 1.0], [1.0])
    error = expect_error(FloatingPointError, trainer.optimizer_step, "optimizer_step with a nan gradient in fp32")
    assert "7" in str(error), say(f"错误信息要写出第几步（self.step + 1 = 7）：{error}",
                                  f"the message must name the step (self.step + 1 = 7): {error}")
    assert torch.equal(trainer.model.b.detach(), torch.tensor([3.0])), say(
        "带 nan 的梯度不能用来更新参数", "a nan gradient must not update the parameters")


# ===================================================================== Trainer.evaluate


def _label_mean(module):
    """A trainer whose 'loss' is the mean of the counted label values: evaluate() can be checked by hand."""

    class LabelMean(module.Trainer):
        def compute_loss(self, model, batch):
            labels = batch["labels"]
            return labels[labels != -100].float().mean()

    return LabelMean


@pytest.mark.symbol("Trainer.evaluate")
def test_evaluate_is_the_mean_over_label_tokens_not_over_batches(tmp_path):
    """Batch size 2; a 'loss' that is the mean of the label values. Examples: labels
    ``[1, 1, 1, 1]``, ``[3, -100, 3]`` and ``[10]``. Batch 1 counts six labels (mean 10/6),
    batch 2 one (mean 10). Per label token: ``(1·4 + 3·2 + 10) / 7 = 20/7 = 2.857``. The mean of
    the two batch means would be ``(1.667 + 10) / 2 = 5.833``; the mean over examples 4.667; a
    dropped last batch 1.667."""
    examples = [{"input_ids": [5, 6, 7, 8], "labels": [1, 1, 1, 1]}, {"input_ids": [5, 6, 7], "labels": [3, -100, 3]},
                {"input_ids": [9], "labels": [10]}]
    trainer = _build("mine", tmp_path, examples, model=_Two(), kind=_label_mean, eval_data=examples,
                     per_device_batch_size=2)
    result = trainer.evaluate()
    value = result.get("eval_loss") if isinstance(result, dict) else None
    assert isinstance(value, float) and abs(value - 20 / 7) < 1e-6, say(
        f"evaluate() 返回 {result!r}，应为 {{'eval_loss': 2.857142}}（20/7）：每批 total += loss.item() * n（n = labels "
        "不为 -100 的个数），count += n，最后 total / count；按顺序、不丢最后不满的一批",
        f"evaluate() returned {result!r}, expected {{'eval_loss': 2.857142}} (20/7): per batch total += loss.item() * n "
        "(n = labels that are not -100) and count += n, then total / count; in order, keeping the short last batch")


@pytest.mark.symbol("Trainer.evaluate")
def test_evaluate_runs_in_eval_mode_without_gradients_and_restores_the_mode(tmp_path):
    """A model with attention dropout 0.5. ``evaluate`` must run every forward with
    ``model.training == False`` (dropout off, so two evaluations agree exactly) and
    ``torch.is_grad_enabled() == False`` (no graph); afterwards no ``.grad`` exists, the
    weights are unchanged, and the model is back in the mode it had: train mode if it was
    training, eval mode if it was not. Without an eval dataset the result is nan."""
    modes: list[tuple[bool, bool]] = []

    def recording(module):
        class Recording(_loop(module)):
            def compute_loss(self, model, batch):
                modes.append((model.training, torch.is_grad_enabled()))
                return super().compute_loss(model, batch)
        return Recording

    model = _model(dropout=0.5)
    trainer = _build("mine", tmp_path, _blocks(8), model=model, kind=recording, eval_data=_blocks(5, seed=3),
                     per_device_batch_size=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    first, second = trainer.evaluate()["eval_loss"], trainer.evaluate()["eval_loss"]
    assert modes and all(m == (False, False) for m in modes), say(
        f"evaluate 里每次前向时 (model.training, 梯度开着) 应为 (False, False)，实际 {sorted(set(modes))}：self.model.eval() "
        "关掉 dropout，@torch.no_grad() 不建计算图",
        f"every forward inside evaluate should see (model.training, grad enabled) = (False, False), got "
        f"{sorted(set(modes))}: self.model.eval() turns dropout off, @torch.no_grad() builds no graph")
    assert first == second, say(f"两次 evaluate 结果不同（{first} 和 {second}）：dropout 没关", f"two evaluations "
                                f"differ ({first} and {second}): dropout is still on")
    assert model.training, say("evaluate 之后模型要回到训练模式：try/finally 里 self.model.train(was_training)",
                               "after evaluate the model must be back in train mode: self.model.train(was_training) "
                               "in a try/finally")
    assert all(p.grad is None for p in model.parameters()), say("evaluate 不能产生梯度", "evaluate must leave no gradients")
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), say(f"evaluate 改动了 {k}", f"evaluate changed {k}")
    model.eval()
    trainer.evaluate()
    assert not model.training, say("调用前是 eval 模式，evaluate 之后也要是 eval 模式（恢复原来的模式，而不是一律 train()）",
                                   "the model was in eval mode before evaluate and must stay so (restore the previous "
                                   "mode, not always train())")
    trainer.eval_dataset = None
    assert math.isnan(trainer.evaluate()["eval_loss"]), say("没有验证集时 eval_loss 是 nan",
                                                            "without an eval dataset eval_loss is nan")


# ===================================================================== Trainer.save_checkpoint / load_checkpoint


@pytest.mark.symbol("Trainer.save_checkpoint")
def test_trainer_save_checkpoint_writes_checkpoint_step_under_output_dir(tmp_path):
    """At ``trainer.step = 3`` ``save_checkpoint()`` writes ``<output_dir>/checkpoint-3`` (and
    returns that path) holding the three files, with ``"step": 3`` in ``trainer_state.json``."""
    trainer = _build("mine", tmp_path / "out", _blocks(8))
    trainer.next_batch()
    trainer.step = 3
    path = trainer.save_checkpoint()
    target = tmp_path / "out" / "checkpoint-3"
    assert Path(path) == target and target.is_dir(), say(f"save_checkpoint() 返回 {path!r}，应写到并返回 {target}",
                                                         f"save_checkpoint() returned {path!r}; it should write and "
                                                         f"return {target}")
    ckpt = learner("training.checkpointing")
    assert_same_sequence(sorted(p.name for p in target.iterdir()),
                         sorted([ckpt.MODEL_FILE, ckpt.OPTIMIZER_FILE, ckpt.STATE_FILE]), "the files of checkpoint-3")
    state = json.loads((target / ckpt.STATE_FILE).read_text(encoding="utf-8"))
    assert state.get("step") == 3, say(f"trainer_state.json 的 step 是 {state.get('step')!r}，应为 3",
                                       f"trainer_state.json has step {state.get('step')!r}, expected 3")


@pytest.mark.symbol("Trainer.load_checkpoint")
def test_trainer_load_checkpoint_restores_counters_rngs_scaler_and_data_position(tmp_path):
    """Trainer A (dropout 0.1, 10 examples in batches of 4, an enabled loss scaler whose state
    is scale 16 after 3 good steps) takes 3 optimiser steps by hand, so it stands in epoch 1 at
    position 4; the global RNGs are seeded; ``save_checkpoint()``. A fresh trainer B (another
    initialisation, the global RNGs disturbed) ``load_checkpoint``s it: step, epoch, position,
    weights, optimizer state, scheduler (lr), loss scaler, python's and torch's RNG states must
    equal A's, and B's next three batches (crossing into epoch 2) must be A's."""
    data = _blocks(10)
    mixed = learner("utils.mixed_precision")
    a = _build("mine", tmp_path / "a", data, model=_model(dropout=0.1), lr_schedule="cosine", warmup_steps=1)
    a.scaler = mixed.LossScaler(init_scale=64.0)
    a.scaler.scale_value, a.scaler.good_steps = 16.0, 3
    for _ in range(3):
        batch = a.next_batch()
        _ce(a.model, batch).backward()
        a.optimizer.step()
        a.scheduler.step()
        a.optimizer.zero_grad()
    a.step = 3
    random.seed(31)
    torch.manual_seed(32)
    path = a.save_checkpoint()
    torch_state, python_state = torch.get_rng_state(), random.getstate()
    a_next = [a.next_batch()["input_ids"] for _ in range(3)]

    b = _build("mine", tmp_path / "a", data, model=_model(seed=5, dropout=0.1), lr_schedule="cosine", warmup_steps=1)
    b.scaler = mixed.LossScaler(init_scale=64.0)
    random.seed(0)
    torch.manual_seed(0)
    b.load_checkpoint(path)
    checks = [
        ("step", b.step, 3), ("epoch", b.epoch, 1), ("position", b.position, 4),
        ("lr", b.optimizer.param_groups[0]["lr"], a.optimizer.param_groups[0]["lr"]),
        ("scheduler.last_epoch", b.scheduler.last_epoch, 3),
        ("scaler.scale_value", b.scaler.scale_value, 16.0), ("scaler.good_steps", b.scaler.good_steps, 3),
    ]
    for name, got, want in checks:
        assert got == want, say(f"load_checkpoint 之后 {name} = {got!r}，应为 {want!r}\n{RESUME_HINT[0]}",
                                f"after load_checkpoint {name} = {got!r}, expected {want!r}\n{RESUME_HINT[1]}")
    _check_weights(b.model, a.model, "weights after load_checkpoint", tol=0.0, hint=RESUME_HINT)
    found = nested_difference(b.optimizer.state_dict(), a.optimizer.state_dict(), "optimizer.state_dict()")
    assert found is None, say(f"load_checkpoint 之后优化器状态不同：{found}", f"optimizer state differs after "
                              f"load_checkpoint: {found}")
    assert torch.equal(torch.get_rng_state(), torch_state) and random.getstate() == python_state, say(
        "load_checkpoint 之后全局随机数状态（torch / python）不是保存时的：restore_rng_state(state[\"rng\"], "
        "self.data_generator)", "after load_checkpoint the global RNG states (torch / python) are not the saved ones: "
        "restore_rng_state(state[\"rng\"], self.data_generator)")
    b_next = [b.next_batch()["input_ids"] for _ in range(3)]
    for i, (x, y) in enumerate(zip(b_next, a_next, strict=True), start=1):
        assert torch.equal(x, y), say(
            f"恢复后的第 {i} 个 batch 与没中断时不同：检查点要保存本轮开始时数据生成器的状态和 position；load_checkpoint 把生成器 "
            "set_state 回本轮开始、重新抽出本轮的排列 self._order，再从 position 继续",
            f"batch {i} after loading differs from the uninterrupted one: the checkpoint keeps the data generator's "
            "state at the start of the epoch and the position; load_checkpoint sets the generator back to the start "
            "of the epoch, re-draws the epoch's permutation self._order and continues from position")


# ===================================================================== Trainer.train


@pytest.mark.symbol("Trainer.train")
def test_train_matches_the_reference_trainer_step_by_step(tmp_path):
    """12 random blocks, batches of 4 (3 per epoch), 5 steps of constant lr 1e-2: the learner's
    ``train()`` and the reference's, from the same weights, log the same loss, lr and grad_norm
    at every step (1e-6) and end with the same weights (1e-6). The history holds one dict per
    step with ``step`` 1..5."""
    data = _blocks(12)
    mine = _build("mine", tmp_path / "mine", data, max_steps=5)
    ref = _build("ref", tmp_path / "ref", data, max_steps=5)
    history = mine.train()
    assert isinstance(history, list) and history is mine.log_history, say(
        "train() 返回 self.log_history", "train() returns self.log_history")
    _check_history(history, ref.train(), "learner's train() vs the reference")
    _check_weights(mine.model, ref.model, "weights after 5 steps, learner vs reference")


@pytest.mark.symbol("Trainer.train")
def test_train_logs_the_learning_rate_each_step_used(tmp_path):
    """Cosine schedule with 2 warmup steps over 6 steps, peak 1e-2, ``min_lr_ratio = 0.1``,
    3 micro-batches per step: the lr logged at step ``i`` (1-based) is the one that step used,
    ``1e-2 · cosine_lr_lambda(i - 1)``: 0, 5e-3, 1e-2, then ``1e-3 + 9e-3 · 0.5 · (1 + cos(π·j/4))``
    for j = 1, 2, 3: 8.682e-3, 5.5e-3, 2.318e-3 (compared at 1e-12). The scheduler has stepped exactly 6 times at the end, once per optimiser step."""
    cosine = reference("optimizer.scheduler").cosine_lr_lambda
    trainer = _build("mine", tmp_path, _blocks(8), max_steps=6, per_device_batch_size=2, gradient_accumulation_steps=3,
                     lr_schedule="cosine", warmup_steps=2)
    logged = torch.tensor([m["lr"] for m in _train_logs(trainer.train())], dtype=torch.float64)
    expected = torch.tensor([1e-2 * cosine(i, num_warmup_steps=2, num_training_steps=6, min_lr_ratio=0.1)
                             for i in range(6)], dtype=torch.float64)
    assert_close(logged, expected, "the logged lr of steps 1..6 (index = step - 1)", atol=1e-12, rtol=1e-12,
                 hint=LR_HINT)
    assert trainer.scheduler.last_epoch == 6, say(
        f"6 个优化器步之后 scheduler 应 step 6 次，实际 {trainer.scheduler.last_epoch} 次\n{LR_HINT[0]}",
        f"after 6 optimiser steps the scheduler should have stepped 6 times, got {trainer.scheduler.last_epoch}\n"
        f"{LR_HINT[1]}")


@pytest.mark.symbol("Trainer.train")
def test_train_logs_evaluates_and_saves_on_schedule(tmp_path):
    """5 steps with ``log_every = 2``, ``eval_every = 2``, ``save_every = 2``: training metrics at
    steps 2, 4 and 5 (always the last step), each with step, loss, lr, grad_norm, tokens_per_s
    > 0; an ``eval_loss`` entry at steps 2 and 4; checkpoint folders ``checkpoint-2``, ``-4`` and
    ``-5`` (the end). Every logged dict also reaches the callbacks."""
    received = []
    out = tmp_path / "run"
    trainer = _build("mine", out, _blocks(8), eval_data=_blocks(3, seed=5), callbacks=[received.append],
                     max_steps=5, log_every=2, eval_every=2, save_every=2)
    history = trainer.train()
    assert_same_sequence([m["step"] for m in _train_logs(history)], [2, 4, 5], "steps of the training logs")
    assert_same_sequence([m["step"] for m in history if "eval_loss" in m], [2, 4], "steps of the evaluation logs")
    for m in _train_logs(history):
        missing = {"step", "loss", "lr", "grad_norm", "tokens_per_s"} - set(m)
        assert not missing and m["tokens_per_s"] > 0 and math.isfinite(m["loss"]), say(
            f"训练日志 {m} 缺少 {sorted(missing)} 或数值不对", f"training log {m} lacks {sorted(missing)} or has bad values")
    assert len(received) == len(history), say("每条日志都要交给 callbacks（self.log(metrics)）",
                                              "every log entry goes to the callbacks (self.log(metrics))")
    folders = sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert_same_sequence(folders, ["checkpoint-2", "checkpoint-4", "checkpoint-5"],
                         "checkpoint folders after 5 steps with save_every=2 (and one at the end)")


@pytest.mark.symbol("Trainer.train")
def test_resumed_training_continues_exactly_like_the_uninterrupted_run(tmp_path):
    """10 blocks, micro-batches of 2, 2 per step (2.5 steps per epoch), attention dropout 0.1,
    cosine schedule, clipping at 1, ``save_every = 3``, 6 steps. Run A trains straight through.
    Run B is interrupted at step 4; a fresh trainer (another initialisation, the global RNGs
    disturbed) resumes from ``checkpoint-3``: steps 4..6 must log exactly A's values (``==``)
    and end with exactly A's weights (the dropout masks, the data order in the middle of the
    second epoch and the optimiser state all come back)."""
    data = _blocks(10)
    kwargs = dict(max_steps=6, per_device_batch_size=2, gradient_accumulation_steps=2, lr_schedule="cosine",
                  warmup_steps=2, max_grad_norm=1.0, save_every=3)

    class Interrupt(Exception):
        pass

    def stop_at_4(metrics):
        if metrics.get("step") == 4:
            raise Interrupt

    straight = _build("mine", tmp_path / "a", data, model=_model(dropout=0.1), **kwargs)
    full = straight.train()
    first = _build("mine", tmp_path / "b", data, model=_model(dropout=0.1), callbacks=[stop_at_4], **kwargs)
    with pytest.raises(Interrupt):
        first.train()
    checkpoint = tmp_path / "b" / "checkpoint-3"
    assert checkpoint.is_dir(), say("save_every=3 时第 3 步后要有 checkpoint-3", "save_every=3 writes checkpoint-3")
    torch.manual_seed(1234)
    random.seed(1234)
    resumed = _build("mine", tmp_path / "b", data, model=_model(seed=7, dropout=0.1), **kwargs)
    again = resumed.train(resume_from=checkpoint)
    later = [m for m in again if m.get("step", 0) > 3]
    _check_history(later, [m for m in full if m["step"] > 3], "resumed from checkpoint-3 vs uninterrupted", tol=0.0,
                   first_resumed=4)
    _check_weights(resumed.model, straight.model, "weights after 6 steps, resumed vs uninterrupted", tol=0.0,
                   hint=RESUME_HINT)
    assert_same_sequence([m["step"] for m in _train_logs(again)], [1, 2, 3, 4, 5, 6],
                         "steps in the resumed trainer's log_history (the first 3 come back from the checkpoint)")
