"""Lesson 10, advanced tier: whole training runs against the reference trainer and torch.

Expected values come from three places, never from numbers pasted into this file:

- **the reference trainer** (``intro2llm.training``), run side by side on the same model
  weights, data, seed, optimiser and schedule: every logged loss, lr, grad_norm and eval_loss
  and the final weights, with accumulation, warmup schedules, clipping, dropout, a loss scaler
  that overflows, bf16 autocast and resumed runs;
- **torch built-ins**: ``torch.amp.GradScaler`` on the CPU for the loss scaler's skip / halve /
  grow decisions, ``F.cross_entropy`` for the pretraining loss and the token-weighted eval
  loss, safetensors + JSON round trips of ``torch.optim`` state dicts;
- **properties**: k micro-batches accumulate to one batch k times larger; evaluating during
  training changes nothing in the training; a resumed run equals the uninterrupted one.

Shared by both sides and not under test: the reference ``CausalLM`` (hidden 32, one layer,
vocabulary 64), the reference ``AdamW`` (or plain SGD where gradients are compared through the
weights: Adam divides a gradient by its own size, so a near-zero gradient summed in another
order can move a weight by a visible fraction of lr), the reference schedules, and in the loop
tests a loss written here with ``F.cross_entropy``.

Tolerances (``|actual - expected| <= atol + rtol·|expected|``):

- learner against the reference, float32: ``1e-6`` on losses, lrs, grad norms, eval losses and
  weights. Both run the same float32 operations, so a correct trainer agrees to a few ulps; the
  mistakes in ``mistakes.py`` move these numbers by 1e-4 to 1. Non-finite grad norms (a loss
  scaler overflow) agree when both are non-finite.
- accumulation of k micro-batches against one batch k times larger, SGD: ``1e-6`` (the same sums
  in another order).
- bf16 autocast: against the reference's bf16 run ``1e-5`` (the same bf16 operations); against
  fp32 ``2%`` relative on the losses (bf16 keeps 8 significant bits, ~0.4% per rounding).
- a resumed run against the uninterrupted one: exactly equal (``==``, ``torch.equal``).
- ``LossScaler`` against ``torch.amp.GradScaler``: exactly equal scales (powers of the factors)
  and ``1e-7`` on gradients and parameters.

Everything runs on the CPU in one thread, seeded.
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

from intro2llm_cli.testkit import assert_close, learner, nested_difference, reference, say

VOCAB = 64
SEQ = 8
BASE_ARGS = dict(max_steps=4, per_device_batch_size=4, gradient_accumulation_steps=1, learning_rate=1e-2,
                 weight_decay=0.1, warmup_steps=0, lr_schedule="constant", min_lr_ratio=0.1, max_grad_norm=None,
                 log_every=1, seed=0, device="cpu")

LOSS_FIRST_HINT = (
    "第 1 步之前还没有任何更新，这一步的 loss 不同说明取到的数据或前向不同：next_batch 按 torch.randperm(len(数据), "
    "generator=self.data_generator) 的顺序取；train() 开头 random.seed / torch.manual_seed / "
    "self.data_generator.manual_seed(args.seed)；前向在 autocast_context(self.device, self.amp_dtype) 里；记录的 loss 是 "
    "k 个 micro-batch 的原始 loss（未除以 k）的平均",
    "nothing has been updated before step 1, so a different loss there means a different batch or forward: "
    "next_batch follows torch.randperm(len(data), generator=self.data_generator); train() starts with random.seed / "
    "torch.manual_seed / self.data_generator.manual_seed(args.seed); the forward runs under "
    "autocast_context(self.device, self.amp_dtype); the logged loss is the mean of the k micro-batch losses (not "
    "divided by k)",
)
LOSS_LATER_HINT = (
    "前面几步都相同、这一步的 loss 不同：上一步的参数更新不同。检查：每个 micro-batch 的 loss 除以 k 再 backward；"
    "zero_grad 只在优化器步之后；先 unscale、再裁剪、再 step（溢出时跳过，scheduler 也不动）；scheduler 每个优化器步 "
    "step 一次；每一轮重新抽排列；不要额外消耗全局随机数（dropout 用的就是它）",
    "the earlier steps agree and this one does not: the update before it differed. Check: each micro-batch loss "
    "divided by k before backward; zero_grad only after the optimiser step; unscale, then clip, then step (skipped on "
    "an overflow, and then the scheduler does not move either); the scheduler stepped once per optimiser step; a new "
    "permutation every epoch; no extra draws from the global RNG (dropout uses it)",
)
LR_HINT = (
    "记录的 lr 是这一步实际使用的：在 optimizer_step()（其中 scheduler.step()）之前读 "
    "self.optimizer.param_groups[0][\"lr\"]；scheduler 每个（没有被跳过的）优化器步 step 一次，不是每个 micro-batch 一次",
    "the logged lr is the one this step used: read self.optimizer.param_groups[0][\"lr\"] before optimizer_step() "
    "(which calls scheduler.step()); the scheduler steps once per (not skipped) optimiser step, not once per "
    "micro-batch",
)
GRAD_NORM_HINT = (
    "grad_norm 是裁剪之前的全局 L2 范数（clip_grad_norm_ 的返回值）：梯度先 unscale；累积时每个 micro-batch 的 loss "
    "先除以 k，k 个 micro-batch 的梯度相加才是平均；zero_grad 不能放在 micro-batch 循环里",
    "grad_norm is the global L2 norm before clipping (what clip_grad_norm_ returns): gradients unscaled first; with "
    "accumulation each micro-batch loss is divided by k so the k gradients add up to the mean; no zero_grad inside "
    "the micro-batch loop",
)
EVAL_HINT = (
    "eval_loss：self.model.eval()、@torch.no_grad()，按顺序每 b 条一批（最后一批不满也要），每批 loss 乘以这批里 "
    "labels != -100 的个数累加，最后除以总个数；结束后恢复原来的模式",
    "eval_loss: self.model.eval() under @torch.no_grad(), batches of b in order (the short last one too), each batch "
    "loss times its count of labels != -100, summed and divided by the total count; restore the previous mode "
    "afterwards",
)
WEIGHTS_HINT = (
    "每步的 loss 都对上了，最后的权重却不同：最后一步的更新不同（裁剪、学习率、累积、跳过的步）",
    "every logged loss agrees but the final weights do not: the last update differed (clipping, learning rate, "
    "accumulation, skipped steps)",
)
RESUME_HINT = (
    "恢复后不同：检查点要带上并恢复 模型、优化器状态、scheduler、loss scaler、step / epoch / position、本轮开始时数据"
    "生成器的状态（重新抽出本轮的排列），以及所有随机数生成器（python、torch、数据生成器）；train(resume_from=...) "
    "加载之后不能再重新设随机种子",
    "the resumed run differs: the checkpoint must hold and restore the model, the optimizer state, the scheduler, the "
    "loss scaler, step / epoch / position, the data generator's state at the start of the epoch (re-draw the "
    "epoch's permutation) and every RNG (python, torch, the data generator); train(resume_from=...) must not re-seed "
    "after loading",
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


def _ragged(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """``n`` examples of 1..12 tokens, the first third of each masked with -100 (like an SFT prompt)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(1, 13, (1,), generator=g))
        x = torch.randint(3, VOCAB, (length + 1,), generator=g)
        labels = x[1:].clone()
        labels[: length // 3] = -100
        out.append({"input_ids": x[:-1], "labels": labels})
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


def _is_learner(module) -> bool:
    return module.__name__.startswith("my_llm.")


def _pretrain(module):
    """``PretrainTrainer`` of the same side as ``module`` (its own compute_loss under test)."""
    side = learner if _is_learner(module) else reference
    return side("training.pretrain_trainer").PretrainTrainer


def _optimizer_and_scheduler(model: nn.Module, args, sgd: bool = False):
    """The reference AdamW (decay on matrices only) or plain SGD, and the reference schedule named by ``args``."""
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
           callbacks=(), sgd: bool = False, loss_scale: float | None = None, **overrides):
    """A trainer of the learner's (``side="mine"``) or the reference's module, on the shared pieces;
    ``loss_scale`` installs an enabled ``LossScaler`` of that side with that initial scale."""
    get = learner if side == "mine" else reference
    module = get("training.trainer")
    args = module.TrainingArguments(output_dir=str(out), **{**BASE_ARGS, **overrides})
    model = model if model is not None else _model()
    optimizer, scheduler = _optimizer_and_scheduler(model, args, sgd)
    trainer = kind(module)(model, args, data, eval_dataset=eval_data, optimizer=optimizer, scheduler=scheduler,
                           callbacks=list(callbacks))
    if loss_scale is not None:
        trainer.scaler = get("utils.mixed_precision").LossScaler(init_scale=loss_scale)
    return trainer


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
    """Compare the logged training and eval entries one by one; the first difference names the step and
    the quantity."""
    got = [m for m in mine if "loss" in m or "eval_loss" in m]
    want = [m for m in expected if "loss" in m or "eval_loss" in m]
    labels = [(m.get("step"), "eval" if "eval_loss" in m else "train") for m in got]
    want_labels = [(m["step"], "eval" if "eval_loss" in m else "train") for m in want]
    assert labels == want_labels, say(
        f"{what}：记录的条目（步数, 种类）是 {labels}，应为 {want_labels}（每 log_every 步和最后一步记录训练，每 eval_every "
        "步记录验证）", f"{what}: the logged entries (step, kind) are {labels}, expected {want_labels} (training every "
        "log_every steps and at the last step, evaluation every eval_every steps)")
    first_step = want[0]["step"] if want else 1
    for m, r in zip(got, want, strict=True):
        for key in (("eval_loss",) if "eval_loss" in r else keys):
            if _same(m.get(key), r[key], tol):
                continue
            step = r["step"]
            diff = abs(m[key] - r[key]) if isinstance(m.get(key), (int, float)) else float("nan")
            if first_resumed is not None and step >= first_resumed:
                hint = RESUME_HINT
            elif key == "eval_loss":
                hint = EVAL_HINT
            elif key == "loss":
                hint = LOSS_FIRST_HINT if step == first_step else LOSS_LATER_HINT
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


# ===================================================================== Trainer.train against the reference

TRAIN_CASES = {
    "k3-cosine-warmup-clip-dropout": dict(data=10, model=dict(dropout=0.1), max_steps=6, per_device_batch_size=2,
                                          gradient_accumulation_steps=3, lr_schedule="cosine", warmup_steps=2,
                                          max_grad_norm=0.5),
    "k2-linear-tied-batch3": dict(data=7, model=dict(tie=True), max_steps=5, per_device_batch_size=3,
                                  gradient_accumulation_steps=2, lr_schedule="linear", warmup_steps=1,
                                  max_grad_norm=5.0, weight_decay=0.5),
    "k1-constant-warmup-log2": dict(data=9, model=dict(), max_steps=7, per_device_batch_size=4,
                                    lr_schedule="constant", warmup_steps=3, log_every=2, learning_rate=3e-2),
}


@pytest.mark.parametrize("case", list(TRAIN_CASES))
@pytest.mark.symbol("Trainer.train")
def test_train_matches_the_reference_trainer(tmp_path, case):
    """Three runs whose epochs end in the middle of an optimiser step (10 examples in
    micro-batches of 2, 3 per step; 7 in batches of 3, one left over per epoch; 9 in batches of
    4): with accumulation, cosine / linear / constant warmup schedules, binding and loose
    clipping, attention dropout, tied embeddings, ``log_every = 2``. The learner's ``train()`` logs
    the reference's loss, lr and grad_norm at every logged step (1e-6) and ends with its
    weights (1e-6)."""
    settings = dict(TRAIN_CASES[case])
    data, model_kwargs = _blocks(settings.pop("data")), settings.pop("model")
    mine = _build("mine", tmp_path / "mine", data, model=_model(**model_kwargs), **settings)
    ref = _build("ref", tmp_path / "ref", data, model=_model(**model_kwargs), **settings)
    _check_history(mine.train(), ref.train(), f"learner vs reference, {case}")
    _check_weights(mine.model, ref.model, f"final weights, learner vs reference, {case}")


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.symbol("Trainer.training_step")
def test_accumulating_k_micro_batches_equals_one_batch_k_times_larger(tmp_path, k):
    """24 examples, 3 steps of 8 examples each: ``k`` micro-batches of ``8 / k`` against one batch
    of 8 (the same permutation, so the same examples per step), plain SGD (lr 0.1) with clipping
    at 1. Every micro-batch has the same number of label tokens, so the mean of the micro-batch
    losses is the big batch's loss and the summed gradients of ``loss / k`` are its gradient:
    logged loss and grad_norm and the final weights agree within 1e-6, and the accumulated run
    also equals the reference's accumulated run."""
    data = _blocks(24)
    common = dict(max_steps=3, sgd=True, learning_rate=0.1, max_grad_norm=1.0)
    accumulated = _build("mine", tmp_path / "k", data, per_device_batch_size=8 // k, gradient_accumulation_steps=k,
                         **common)
    big = _build("mine", tmp_path / "big", data, per_device_batch_size=8, **common)
    ref = _build("ref", tmp_path / "ref", data, per_device_batch_size=8 // k, gradient_accumulation_steps=k, **common)
    history = accumulated.train()
    _check_history(history, big.train(), f"{k} micro-batches of {8 // k} vs one batch of 8")
    _check_weights(accumulated.model, big.model, f"weights, {k} × {8 // k} accumulated vs one batch of 8",
                   hint=GRAD_NORM_HINT)
    _check_history(history, ref.train(), f"{k} × {8 // k} accumulated, learner vs reference")


# ===================================================================== clipping and the loss scaler in the loop


@pytest.mark.symbol("Trainer.optimizer_step")
def test_clipping_acts_on_unscaled_gradients_right_before_the_step(tmp_path):
    """Clipping at 0.05 (well below the gradient norms of ~1), 2 micro-batches per step, and an
    enabled loss scaler with scale ``2^10`` in float32: multiplying the loss by a power of two
    and dividing the gradients by it again is exact, so the run must equal the reference's run
    *without* a scaler (1e-6 on every logged value and the weights). The optimiser must see a
    global gradient norm <= 0.05 whenever it steps, while the logged grad_norm is the norm
    before clipping (> 0.05)."""
    data = _blocks(12)
    settings = dict(max_steps=4, per_device_batch_size=2, gradient_accumulation_steps=2, max_grad_norm=0.05,
                    lr_schedule="cosine", warmup_steps=1)
    mine = _build("mine", tmp_path / "mine", data, loss_scale=2.0**10, **settings)
    seen: list[float] = []

    def record(optimizer, args, kwargs):
        grads = [p.grad for p in mine.model.parameters() if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    mine.optimizer.register_step_pre_hook(record)
    ref = _build("ref", tmp_path / "ref", data, **settings)
    history = mine.train()
    hint = ("顺序：scaler.unscale_ -> clip_grad_norm_ -> scaler.step(optimizer)：裁剪在 unscale 之后（阈值针对真实梯度）、"
            "在 step 之前", "order: scaler.unscale_ -> clip_grad_norm_ -> scaler.step(optimizer): clip after "
            "unscaling (the threshold is for the true gradients) and before the step")
    assert len(seen) == 4 and all(n <= 0.05 * (1 + 1e-4) for n in seen), say(
        f"optimizer.step() 时的梯度范数是 {[round(n, 4) for n in seen]}，应都 <= 0.05\n{hint[0]}",
        f"the gradient norms when optimizer.step() ran were {[round(n, 4) for n in seen]}, all should be <= 0.05\n"
        f"{hint[1]}")
    _check_history(history, ref.train(), "loss scale 2^10 (learner) vs no scaler (reference), clipping at 0.05")
    assert all(m["grad_norm"] > 0.05 for m in _train_logs(history)), say(
        "记录的 grad_norm 应是裁剪之前的范数", "the logged grad_norm should be the norm before clipping")
    _check_weights(mine.model, ref.model, "weights, loss scale 2^10 vs no scaler", hint=hint)


@pytest.mark.symbol("Trainer.optimizer_step")
def test_overflowing_steps_are_skipped_and_the_scale_backs_off_like_the_reference(tmp_path):
    """An enabled loss scaler starting at ``2^127``: ``loss · 2^127`` overflows float32, so the
    first steps produce inf / nan gradients. Each such step must be skipped (weights and
    scheduler untouched) and halve the scale, until the gradients are finite again; then
    training proceeds. 8 steps of a cosine schedule, learner against the reference: the same
    logged values (grad_norm non-finite at the same steps), the same final scale, the same
    number of scheduler steps, the same weights."""
    data = _blocks(10)
    settings = dict(max_steps=8, lr_schedule="cosine", warmup_steps=2, max_grad_norm=1.0, loss_scale=2.0**127)
    mine = _build("mine", tmp_path / "mine", data, **settings)
    ref = _build("ref", tmp_path / "ref", data, **settings)
    history, expected = mine.train(), ref.train()
    skipped = [m["step"] for m in _train_logs(expected) if not math.isfinite(m["grad_norm"])]
    assert skipped, "the scenario must overflow: the reference skipped no step"
    assert mine.scheduler.last_epoch == ref.scheduler.last_epoch, say(
        f"scheduler 走了 {mine.scheduler.last_epoch} 步，应为 {ref.scheduler.last_epoch}（第 {skipped} 步溢出被跳过，"
        "跳过的步不推进 scheduler）", f"the scheduler took {mine.scheduler.last_epoch} steps, expected "
        f"{ref.scheduler.last_epoch} (steps {skipped} overflowed and were skipped; a skipped step does not advance the "
        "scheduler)")
    assert mine.scaler.scale_value == ref.scaler.scale_value, say(
        f"8 步后 loss scale 是 2^{math.log2(mine.scaler.scale_value):.1f}，应为 2^{math.log2(ref.scaler.scale_value):.0f}"
        "：每步 scaler.update()，溢出时减半", f"after 8 steps the loss scale is 2^{math.log2(mine.scaler.scale_value):.1f}"
        f", expected 2^{math.log2(ref.scaler.scale_value):.0f}: scaler.update() every step, halving on overflow")
    _check_history(history, expected, "loss scaler from 2^127, learner vs reference")
    _check_weights(mine.model, ref.model, "weights after overflowing and then finite steps",
                   hint=("溢出的步必须跳过：scaler.step 在 found_inf 时不调用 optimizer.step()",
                         "overflowing steps must be skipped: scaler.step does not call optimizer.step() when found_inf"))


@pytest.mark.parametrize("growth_factor, backoff_factor, growth_interval", [(2.0, 0.5, 2), (4.0, 0.25, 3)])
@pytest.mark.symbol("LossScaler.update")
def test_loss_scaler_decides_like_torch_grad_scaler(growth_factor, backoff_factor, growth_interval):
    """The learner's ``LossScaler`` and ``torch.amp.GradScaler("cpu")`` with the same settings
    drive two identical parameters (SGD with momentum, so a step that is not skipped leaves a
    trace) through 14 steps whose gradients are finite (G), contain inf (I) or nan (N):
    ``G G I G G G N I G G G G G G``. The loss ``(p · c).sum()`` is scaled, backpropagated,
    unscaled, stepped and the scale updated on both sides; after every step the unscaled
    gradients (1e-7), the overflow decision, the parameters (1e-7) and the scale (exactly) agree.
    (``torch.amp.GradScaler`` runs on the CPU since torch 2.3.)"""
    settings = dict(init_scale=2.0**12, growth_factor=growth_factor, backoff_factor=backoff_factor,
                    growth_interval=growth_interval)
    mine_p, torch_p = nn.Parameter(torch.tensor([1.0, -2.0, 0.5])), nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    mine_opt = torch.optim.SGD([mine_p], lr=0.1, momentum=0.9)
    torch_opt = torch.optim.SGD([torch_p], lr=0.1, momentum=0.9)
    mine = learner("utils.mixed_precision").LossScaler(**settings)
    theirs = torch.amp.GradScaler("cpu", **settings)
    pattern = "GGIGGGNIGGGGGG"
    hint = ("与 torch.amp.GradScaler 相同：unscale_ 把梯度除以 scale 并查 inf/nan；溢出时跳过 step、scale *= backoff_factor、"
            "计数清零；连续 growth_interval 个好步后 scale *= growth_factor；update 之后复位，下一步重新 unscale",
            "as torch.amp.GradScaler: unscale_ divides the gradients by the scale and looks for inf/nan; an overflow skips "
            "the step, scale *= backoff_factor and the count restarts; growth_interval good steps in a row give scale *= "
            "growth_factor; update resets the step so the next one is unscaled again")
    for i, kind in enumerate(pattern, start=1):
        c = torch.tensor([0.5 * i, -1.0, 2.0])
        if kind != "G":
            c[1] = float("inf") if kind == "I" else float("nan")
        for scaler, p, opt in ((mine, mine_p, mine_opt), (theirs, torch_p, torch_opt)):
            opt.zero_grad()
            scaler.scale((p * c).sum()).backward()
        found = mine.unscale_(mine_opt)
        theirs.unscale_(torch_opt)
        assert bool(found) == (kind != "G"), say(
            f"第 {i} 步（{kind}）unscale_ 返回 {found!r}\n{hint[0]}", f"step {i} ({kind}): unscale_ returned {found!r}\n"
            f"{hint[1]}")
        if kind == "G":
            assert_close(mine_p.grad, torch_p.grad, f"unscaled gradient at step {i} of {pattern}", atol=1e-7, rtol=1e-7,
                         hint=hint)
        mine.step(mine_opt)
        theirs.step(torch_opt)
        mine.update()
        theirs.update()
        assert_close(mine_p.detach(), torch_p.detach(), f"parameters after step {i} ({kind}) of {pattern}", atol=1e-7,
                     rtol=1e-7, hint=hint)
        assert mine.scale_value == theirs.get_scale(), say(
            f"第 {i} 步（{kind}，模式 {pattern}）之后 scale 是 {mine.scale_value}，GradScaler 是 {theirs.get_scale()}\n{hint[0]}",
            f"after step {i} ({kind}) of {pattern} the scale is {mine.scale_value}, GradScaler's is "
            f"{theirs.get_scale()}\n{hint[1]}")


# ===================================================================== bf16 autocast


@pytest.mark.symbol("Trainer.training_step")
def test_bf16_autocast_training_matches_the_reference_and_stays_close_to_fp32(tmp_path):
    """``precision="bf16"`` on the CPU, 4 steps with evaluation every 2 steps: the trainer's
    ``amp_dtype`` is bfloat16, the weights stay float32, and every logged value equals the
    reference's bf16 run (1e-5: the same bf16 operations). The matrix products really run in
    bf16, so the losses differ from an fp32 run, but by less than 2% relative."""
    data, eval_data = _blocks(8), _blocks(3, seed=5)
    settings = dict(max_steps=4, eval_every=2, max_grad_norm=1.0)
    mine = _build("mine", tmp_path / "mine", data, eval_data=eval_data, precision="bf16", **settings)
    ref = _build("ref", tmp_path / "ref", data, eval_data=eval_data, precision="bf16", **settings)
    fp32 = _build("ref", tmp_path / "fp32", data, eval_data=eval_data, **settings)
    assert mine.amp_dtype is torch.bfloat16
    history = mine.train()
    assert all(p.dtype == torch.float32 for p in mine.model.parameters()), say(
        "bf16 autocast 下参数仍是 float32：autocast 只改变算子的计算精度，不要 model.to(torch.bfloat16)",
        "under bf16 autocast the parameters stay float32: autocast changes the precision of the operations only; "
        "no model.to(torch.bfloat16)")
    _check_history(history, ref.train(), "bf16 autocast, learner vs reference", tol=1e-5)
    for m, r in zip(_train_logs(history), _train_logs(fp32.train()), strict=True):
        assert math.isfinite(m["loss"]) and abs(m["loss"] - r["loss"]) <= 0.02 * abs(r["loss"]), say(
            f"bf16 第 {m['step']} 步的 loss {m['loss']} 与 fp32 的 {r['loss']} 相差超过 2%",
            f"the bf16 loss at step {m['step']}, {m['loss']}, is more than 2% away from fp32's {r['loss']}")


# ===================================================================== exact resume

RESUME_CASES = {
    # 10 examples in micro-batches of 2, 2 per step: 2.5 steps per epoch, so checkpoint 3 (after 6
    # micro-batches) stands at position 2 of the second epoch.
    "mid-epoch-eval-dropout": dict(data=10, save_every=3, stop=4, max_steps=10, per_device_batch_size=2,
                                   gradient_accumulation_steps=2, lr_schedule="cosine", warmup_steps=3,
                                   learning_rate=5e-3, max_grad_norm=1.0, eval_every=4),
    # 8 examples, 2 steps per epoch: checkpoint 4 exactly at the end of an epoch.
    "epoch-boundary": dict(data=8, save_every=4, stop=5, max_steps=8, per_device_batch_size=2,
                           gradient_accumulation_steps=2, lr_schedule="linear", warmup_steps=2, max_grad_norm=1.0),
    # The scaler overflows for the first 3 steps: checkpoint 3 holds a backed-off scale (and stands
    # at position 4 of the second epoch of 10 examples in batches of 4).
    "loss-scaler": dict(data=10, save_every=3, stop=4, max_steps=8, per_device_batch_size=4, lr_schedule="cosine",
                        warmup_steps=1, max_grad_norm=1.0, loss_scale=2.0**127),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
@pytest.mark.symbol("Trainer.load_checkpoint")
def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path, monkeypatch, case):
    """Attention dropout 0.2, three interruptions: in the middle of an epoch with evaluations,
    exactly at an epoch boundary, and with a loss scaler whose scale backed off before the
    checkpoint. Run A trains straight through (and matches the reference within 1e-6). Run B
    stops one step after a checkpoint; a fresh trainer (another initialisation, fresh optimiser,
    scheduler and scaler, the global RNGs disturbed, ``torch.load`` / ``pickle.load`` forbidden)
    resumes from it: every logged value after the checkpoint equals A's exactly (``==``), and so
    do the final weights (``torch.equal``)."""
    settings = dict(RESUME_CASES[case])
    data, stop = _blocks(settings.pop("data")), settings.pop("stop")
    eval_data = _blocks(3, seed=9) if settings.get("eval_every") else None

    class Interrupt(Exception):
        pass

    def stop_at(metrics):
        if metrics.get("step") == stop:
            raise Interrupt

    straight = _build("mine", tmp_path / "a", data, model=_model(dropout=0.2), eval_data=eval_data, **settings)
    full = straight.train()
    ref = _build("ref", tmp_path / "ref", data, model=_model(dropout=0.2), eval_data=eval_data, **settings)
    _check_history(full, ref.train(), f"uninterrupted run, learner vs reference, {case}")
    first = _build("mine", tmp_path / "b", data, model=_model(dropout=0.2), eval_data=eval_data, callbacks=[stop_at],
                   **settings)
    with pytest.raises(Interrupt):
        first.train()
    saved = settings["save_every"]
    checkpoint = tmp_path / "b" / f"checkpoint-{saved}"
    assert checkpoint.is_dir(), say(f"没有 checkpoint-{saved}", f"checkpoint-{saved} is missing")
    torch.manual_seed(4321)
    random.seed(4321)
    resumed = _build("mine", tmp_path / "b", data, model=_model(seed=7, dropout=0.2), eval_data=eval_data, **settings)
    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(module, name, _forbid(f"{module.__name__}.{name}"))
    again = resumed.train(resume_from=checkpoint)
    _check_history([m for m in again if m.get("step", 0) > saved], [m for m in full if m["step"] > saved],
                   f"resumed from checkpoint-{saved} vs uninterrupted, {case}", tol=0.0, first_resumed=saved + 1)
    _check_weights(resumed.model, straight.model, f"final weights, resumed vs uninterrupted, {case}", tol=0.0,
                   hint=RESUME_HINT)


# ===================================================================== checkpoint files


def _optimizers():
    """Optimisers whose state holds ints (the course's AdamW), 0-d tensors (torch's AdamW), momentum
    buffers (SGD), a max of squares (Adam amsgrad) and one moment only (the course's Lion)."""
    return {
        "course-AdamW": lambda ps: reference("optimizer.adamw").AdamW(
            [{"params": ps[:2], "weight_decay": 0.1}, {"params": ps[2:], "weight_decay": 0.0}], lr=0.01),
        "torch-AdamW": lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=(0.8, 0.9)),
        "torch-SGD-nesterov": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
        "torch-Adam-amsgrad": lambda ps: torch.optim.Adam(ps, lr=0.01, amsgrad=True),
        "course-Lion": lambda ps: reference("optimizer.lion").Lion(ps, lr=1e-3, weight_decay=0.1),
    }


def _params(seed: int) -> list[nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(shape, generator=g)) for shape in ((3, 4), (4,), (2, 2, 2), (5,))]


def _steps(params, opt, n: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        for p in params[:-1]:  # the last parameter never gets a gradient: no state
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()


@pytest.mark.parametrize("name", list(_optimizers()))
@pytest.mark.symbol("optimizer_state_to_flat")
def test_optimizer_state_survives_safetensors_and_json(tmp_path, name):
    """After 3 steps (one parameter never has a gradient), ``optimizer_state_to_flat``'s tensors
    go through a real safetensors file and its metadata through JSON text; back through
    ``optimizer_state_from_flat`` they equal ``optimizer.state_dict()``, and a fresh optimiser
    loaded with them continues exactly like the original for 2 more steps."""
    from safetensors.torch import load_file, save_file

    params = _params(0)
    opt = _optimizers()[name](params)
    _steps(params, opt, 3, seed=1)
    ckpt = learner("training.checkpointing")
    tensors, meta = ckpt.optimizer_state_to_flat(opt)
    hint = ("张量（包括 0 维的，例如 torch AdamW 的 step）进 tensors[f\"state.{i}.{name}\"]（.contiguous()）；"
            "其余值（int、float、bool、None、列表）进 meta，tuple 变列表", "tensors (0-d ones too, e.g. torch AdamW's "
            "step) go to tensors[f\"state.{i}.{name}\"] (.contiguous()); every other value (int, float, bool, None, "
            "lists) to meta, tuples as lists")
    try:
        save_file(tensors, str(tmp_path / "opt.safetensors"))
        text = json.dumps(meta)
    except Exception as exc:
        raise AssertionError(say(f"{name}：optimizer_state_to_flat 的结果存不下（{type(exc).__name__}: {exc}）\n{hint[0]}",
                                 f"{name}: optimizer_state_to_flat's result cannot be stored ({type(exc).__name__}: "
                                 f"{exc})\n{hint[1]}")) from None
    rebuilt = ckpt.optimizer_state_from_flat(load_file(str(tmp_path / "opt.safetensors")), json.loads(text))
    found = nested_difference(rebuilt, opt.state_dict(), "state_dict")
    assert found is None, say(f"{name}：经过 safetensors + JSON 往返后 state_dict 不同：{found}\n{hint[0]}",
                              f"{name}: the state_dict differs after the safetensors + JSON round trip: {found}\n{hint[1]}")
    copies = [nn.Parameter(p.detach().clone()) for p in params]
    fresh = _optimizers()[name](copies)
    fresh.load_state_dict(rebuilt)
    _steps(params, opt, 2, seed=2)
    _steps(copies, fresh, 2, seed=2)
    for i, (a, b) in enumerate(zip(copies, params, strict=True)):
        assert_close(a.detach(), b.detach(), f"{name}: parameter {i} two steps after reloading the state", atol=0,
                     rtol=0, hint=hint)


@pytest.mark.parametrize("name", ["course-AdamW", "torch-AdamW"])
@pytest.mark.symbol("save_checkpoint")
def test_a_checkpoint_written_by_the_learner_loads_with_the_reference(tmp_path, name):
    """The layout is documented (``model.safetensors`` by ``save_model``; ``optimizer.safetensors``
    with ``state.<i>.<name>``; ``trainer_state.json`` = the trainer state plus ``"optimizer"``), so
    the reference's ``load_checkpoint`` reads what the learner's ``save_checkpoint`` writes: the
    same weights (tied embeddings), optimizer state and trainer state."""
    model = _model(tie=True)
    params = list(model.parameters())
    opt = _optimizers()[name](params)
    batch = reference("data.pretrain_dataset").collate(_blocks(3), pad_token_id=0)
    for _ in range(2):
        opt.zero_grad()
        _ce(model, batch).backward()
        opt.step()
    trainer_state = {"step": 2, "rng": {"python": None}, "log_history": [{"step": 1, "loss": 4.0}]}
    learner("training.checkpointing").save_checkpoint(tmp_path / "checkpoint-2", model, opt, trainer_state)
    fresh = _model(seed=3, tie=True)
    fresh_opt = _optimizers()[name](list(fresh.parameters()))
    state = reference("training.checkpointing").load_checkpoint(tmp_path / "checkpoint-2", fresh, fresh_opt)
    _check_weights(fresh, model, f"weights written by the learner, read by the reference ({name})", tol=0.0,
                   hint=("save_model(model, tmp / MODEL_FILE)", "save_model(model, tmp / MODEL_FILE)"))
    found = nested_difference(fresh_opt.state_dict(), opt.state_dict(), "optimizer.state_dict()")
    assert found is None, say(f"参考实现读出的优化器状态不同：{found}", f"the optimizer state read by the reference "
                              f"differs: {found}")
    found = nested_difference({k: v for k, v in state.items() if k != "optimizer"}, trainer_state, "trainer_state.json")
    assert found is None, say(f"trainer_state.json 要原样保存 trainer_state（再加上 \"optimizer\"）：{found}",
                              f"trainer_state.json keeps trainer_state as it is (plus \"optimizer\"): {found}")


# ===================================================================== evaluate


@pytest.mark.symbol("Trainer.evaluate")
def test_evaluate_matches_the_reference_and_the_token_weighted_cross_entropy(tmp_path):
    """7 examples of 1..12 tokens (the first third of each labelled -100), batches of 3, so
    the batches hold very different numbers of label tokens and the last batch one example:
    ``eval_loss`` equals the reference's (1e-6) and the cross-entropy summed over every label
    token of the set divided by their number, computed here example by example (1e-5: padded
    and unpadded forwards round differently)."""
    model = _model()
    eval_data = _ragged(7, seed=4)
    mine = _build("mine", tmp_path / "mine", _blocks(8), model=model, eval_data=eval_data, per_device_batch_size=3)
    ref = _build("ref", tmp_path / "ref", _blocks(8), model=copy.deepcopy(model), eval_data=eval_data,
                 per_device_batch_size=3)
    got, expected = mine.evaluate()["eval_loss"], ref.evaluate()["eval_loss"]
    assert _same(got, expected, 1e-6), say(f"eval_loss 是 {got}，参考实现是 {expected}\n{EVAL_HINT[0]}",
                                           f"eval_loss is {got}, the reference's {expected}\n{EVAL_HINT[1]}")
    total, count = 0.0, 0
    with torch.no_grad():
        for example in eval_data:
            logits = model(example["input_ids"][None]).logits[0]
            total += float(F.cross_entropy(logits, example["labels"], reduction="sum"))
            count += int((example["labels"] != -100).sum())
    assert abs(got - total / count) <= 1e-5, say(
        f"eval_loss 是 {got}，按 token 加权的交叉熵是 {total / count}\n{EVAL_HINT[0]}",
        f"eval_loss is {got}, the token-weighted cross-entropy is {total / count}\n{EVAL_HINT[1]}")


@pytest.mark.symbol("Trainer.evaluate")
def test_evaluating_during_training_changes_nothing_in_the_training(tmp_path):
    """Attention dropout 0.2; one run evaluates after every step, the other never: the training
    losses, lrs, grad norms and final weights are exactly equal. An evaluation in train mode
    draws dropout masks from the global RNG (and the next training masks change); one that does
    not put the model back in train mode leaves dropout off for the rest of the training."""
    data, eval_data = _blocks(8), _blocks(3, seed=2)
    with_eval = _build("mine", tmp_path / "eval", data, model=_model(dropout=0.2), eval_data=eval_data, max_steps=5,
                       eval_every=1)
    without = _build("mine", tmp_path / "plain", data, model=_model(dropout=0.2), eval_data=eval_data, max_steps=5)
    hint = ("evaluate 里 self.model.eval()（dropout 关闭，不消耗随机数），结束时在 finally 里 self.model.train(was_training)",
            "evaluate calls self.model.eval() (dropout off, no random draws) and self.model.train(was_training) in a "
            "finally at the end")
    try:
        _check_history(_train_logs(with_eval.train()), without.train(), "training with eval_every=1 vs without eval",
                       tol=0.0)
        _check_weights(with_eval.model, without.model, "weights, training with eval_every=1 vs without", tol=0.0)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{say(*hint)}") from None


# ===================================================================== PretrainTrainer.compute_loss and next_batch


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.symbol("PretrainTrainer.compute_loss")
def test_pretrain_compute_loss_equals_torch_and_trains_like_the_reference(tmp_path, precision):
    """Padded batches of ragged examples with -100 labels: under the trainer's autocast the
    learner's ``compute_loss`` is a float32 scalar equal to ``F.cross_entropy`` of the same
    logits upcast to float32 against the labels as they are (1e-5). A 4-step
    ``PretrainTrainer`` run on them logs the reference ``PretrainTrainer``'s values (1e-5 in bf16,
    1e-6 in fp32)."""
    data = _ragged(12, seed=6)
    mine = _build("mine", tmp_path / "mine", data, kind=_pretrain, precision=precision, per_device_batch_size=3)
    ref = _build("ref", tmp_path / "ref", data, kind=_pretrain, precision=precision, per_device_batch_size=3)
    batch = mine.collate_fn(data[:5])
    with reference("utils.mixed_precision").autocast_context("cpu", mine.amp_dtype):
        loss = mine.compute_loss(mine.model, batch)
        logits = mine.model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected = F.cross_entropy(logits.reshape(-1, VOCAB).float(), batch["labels"].reshape(-1))
    assert_close(loss.detach(), expected.detach(), f"compute_loss vs F.cross_entropy on a padded batch ({precision})",
                 atol=1e-5, rtol=1e-5,
                 hint=("用 logits 和已经错开的 labels 逐位置算交叉熵（升到 float32），不要把 labels 传给模型",
                       "cross-entropy of the logits against the already-shifted labels position by position (upcast to "
                       "float32); do not hand the labels to the model"))
    tol = 1e-5 if precision == "bf16" else 1e-6
    _check_history(mine.train(), ref.train(), f"PretrainTrainer ({precision}), learner vs reference", tol=tol)


@pytest.mark.parametrize("n, batch_size", [(10, 3), (7, 7), (9, 2)])
@pytest.mark.symbol("Trainer.next_batch")
def test_next_batch_matches_the_reference_over_several_epochs(tmp_path, n, batch_size):
    """``n`` examples in batches of ``batch_size`` (3 of 10: one left over per epoch; 7 of 7: one
    batch per epoch; 2 of 9): the learner's next 3 epochs of batches hold the reference's
    examples in the reference's order, and ``epoch`` counts the same way."""
    data = [{"input_ids": torch.tensor([i, i]), "labels": torch.tensor([i, i])} for i in range(n)]
    mine = _build("mine", tmp_path / "mine", data, per_device_batch_size=batch_size, seed=n)
    ref = _build("ref", tmp_path / "ref", data, per_device_batch_size=batch_size, seed=n)
    for call in range(1, 3 * (n // batch_size) + 1):
        got, want = mine.next_batch()["input_ids"][:, 0].tolist(), ref.next_batch()["input_ids"][:, 0].tolist()
        assert got == want and mine.epoch == ref.epoch, say(
            f"第 {call} 次 next_batch() 取到样本 {got}（epoch {mine.epoch}），参考实现取到 {want}（epoch {ref.epoch}）：每轮 "
            "torch.randperm(n, generator=self.data_generator)，取连续的 b 个，不够一个 batch 时换下一轮",
            f"next_batch() call {call} gave examples {got} (epoch {mine.epoch}), the reference {want} (epoch "
            f"{ref.epoch}): each epoch torch.randperm(n, generator=self.data_generator), consecutive slices of b, a new "
            "epoch when a full batch no longer fits")


@pytest.mark.parametrize("precision, expected", [("fp32", None), ("auto", torch.bfloat16), ("bf16", torch.bfloat16),
                                                 ("fp16", ValueError)])
@pytest.mark.symbol("autocast_dtype")
def test_the_trainer_picks_its_autocast_dtype_from_the_precision(tmp_path, precision, expected):
    """A trainer on the CPU asks ``autocast_dtype(args.precision, device)`` when it is built:
    fp32 trains without autocast, ``"auto"`` and ``"bf16"`` in bf16, and ``"fp16"`` is refused
    with a ValueError at construction (before any step is wasted), not silently run in fp16."""
    if expected is ValueError:
        try:
            _build("mine", tmp_path, _blocks(4), precision=precision)
        except ValueError:
            return
        raise AssertionError(say("precision=\"fp16\" 在 CPU 上要在构造 Trainer 时就 raise ValueError（autocast_dtype）",
                                 "precision=\"fp16\" on the CPU must raise ValueError when the Trainer is built "
                                 "(autocast_dtype)"))
    trainer = _build("mine", tmp_path, _blocks(4), precision=precision)
    assert trainer.amp_dtype is expected, say(f"precision={precision!r} 在 CPU 上的 amp_dtype 是 {trainer.amp_dtype}，应为 "
                                              f"{expected}", f"precision={precision!r} on the CPU gives amp_dtype "
                                              f"{trainer.amp_dtype}, expected {expected}")
