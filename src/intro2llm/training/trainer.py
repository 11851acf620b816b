"""The training loop as a recipe: ``TrainingArguments`` and ``Trainer``.

One optimiser step of ``Trainer.train``::

    for each of gradient_accumulation_steps micro-batches:
        loss = compute_loss(model, batch)            # forward under autocast
        (loss / gradient_accumulation_steps).backward()   # gradients add up across micro-batches
    unscale (fp16) -> clip_grad_norm_ -> optimizer.step() -> scheduler.step() -> zero_grad()

then, every ``log_every`` steps, a metrics dict (step, loss, lr, grad_norm,
tokens_per_s) goes to ``log_history`` and to every callback; every ``eval_every``
steps ``evaluate()`` runs under ``model.eval()`` and ``torch.no_grad()``; every
``save_every`` steps and at the end a checkpoint folder is written
(``checkpointing.save_checkpoint``) that ``train(resume_from=...)`` continues exactly.

Why divide by ``gradient_accumulation_steps``: ``backward`` *adds* into ``.grad``, so
k micro-batches of mean losses give k times the gradient of one batch of k times the
size; dividing each micro-batch loss by k makes the sum the mean (exactly so when every
micro-batch has the same number of label tokens, as in pretraining).

Subclasses override ``compute_loss`` only (``PretrainTrainer``, ``SFTTrainer``): the
loop stays the same for every stage.

Data order: a ``torch.Generator`` seeded with ``args.seed`` draws a permutation of the
training set at the start of every epoch (like ``RandomSampler``); micro-batches are
consecutive slices of it and an incomplete last slice is dropped. The checkpoint keeps
the generator state at the start of the epoch and the position in it, so a resumed run
sees the same batches.

Data parallelism (``torchrun``, see ``training.distributed``): with W processes every
process draws the same permutation, a global micro-batch is ``W × per_device_batch_size``
consecutive examples and rank r takes the r-th slice of it (a distributed sampler).
The forward runs through ``self.train_model`` — ``DistributedDataParallel(self.model)``,
whose backward averages the gradients across processes — so every copy takes the step
one process would take with the whole global batch. In one process ``train_model`` is
``model``. Logged losses are averaged across processes; only rank 0 calls the callbacks
and writes checkpoints.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.pretrain_dataset import collate
from ..loss.cross_entropy import IGNORE_INDEX
from ..optimizer.adamw import AdamW
from ..optimizer.scheduler import (
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)
from ..utils.mixed_precision import PRECISIONS, LossScaler, autocast_context, autocast_dtype
from . import distributed
from .checkpointing import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint

LR_SCHEDULES = ("cosine", "linear", "constant")

Callback = Callable[[dict[str, Any]], Any]


@dataclass
class TrainingArguments:
    """Everything that shapes a run (the model, data and loss come separately).

    Attributes:
        output_dir: where ``checkpoint-<step>/`` folders go.
        max_steps: optimiser steps to take (each = gradient_accumulation_steps micro-batches).
        per_device_batch_size: examples per micro-batch of one process (the global
            micro-batch is this times the number of processes).
        gradient_accumulation_steps: micro-batches per optimiser step.
        learning_rate: peak lr (after warmup).
        weight_decay: AdamW's decoupled decay for matrices (not biases / norm weights).
        warmup_steps: linear warmup steps (<= max_steps).
        lr_schedule: "cosine" | "linear" | "constant" after warmup.
        min_lr_ratio: final lr / peak lr for "cosine".
        max_grad_norm: clip the global gradient norm to this; None or 0 = no clipping.
        precision: "auto" | "bf16" | "fp16" | "fp32" (see ``utils.mixed_precision``).
        eval_every: evaluate every N steps (0 = never; needs an eval dataset).
        save_every: checkpoint every N steps (0 = only at the end).
        log_every: record metrics every N steps (and at the last step).
        seed: seeds python's ``random``, torch and the data order.
        device: "auto" (cuda when available, else cpu) or a torch device string.
    """

    output_dir: str = "outputs/run"
    max_steps: int = 100
    per_device_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 3e-4
    weight_decay: float = 0.1
    warmup_steps: int = 0
    lr_schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    max_grad_norm: float | None = 1.0
    precision: str = "fp32"
    eval_every: int = 0
    save_every: int = 0
    log_every: int = 10
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        """Check every field; a bad one raises a one-line ValueError naming it and the fix."""
        for name in ("max_steps", "per_device_batch_size", "gradient_accumulation_steps", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        for name in ("warmup_steps", "eval_every", "save_every", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}={value!r} must be an integer >= 0")
        if self.warmup_steps > self.max_steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be <= max_steps={self.max_steps}")
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ValueError(f"learning_rate={self.learning_rate!r} must be > 0")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay={self.weight_decay!r} must be >= 0")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule={self.lr_schedule!r} is not supported: use one of {LR_SCHEDULES}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio={self.min_lr_ratio!r} must be in [0, 1]")
        if self.max_grad_norm is not None and not self.max_grad_norm >= 0:
            raise ValueError(f"max_grad_norm={self.max_grad_norm!r} must be >= 0 (or None for no clipping)")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is not supported: use one of {PRECISIONS}")
        if not str(self.output_dir):
            raise ValueError("output_dir must be a folder path")

    def resolved_device(self) -> torch.device:
        """``torch.device`` for ``device`` ("auto" -> cuda when available, else cpu)."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


class Trainer:
    """Train a model by the recipe of the module docstring; subclasses override ``compute_loss``.

    Args:
        model: an ``nn.Module`` (moved to ``args.device``).
        args: a ``TrainingArguments``.
        train_dataset: indexable dataset of dict examples (``{"input_ids", "labels"}``).
        eval_dataset: the same kind, for ``evaluate()`` (optional).
        collate_fn: list of examples -> dict of batched tensors; default
            ``data.pretrain_dataset.collate`` with the model config's ``pad_token_id``.
        optimizer: default ``AdamW`` with weight decay on matrices only.
        scheduler: default the ``args.lr_schedule`` schedule with warmup over ``max_steps``.
        callbacks: callables receiving each logged metrics dict (training and evaluation).
    """

    def __init__(self, model: nn.Module, args: TrainingArguments, train_dataset: Sequence[Any],
                 eval_dataset: Sequence[Any] | None = None,
                 collate_fn: Callable[[list[Any]], dict[str, torch.Tensor]] | None = None,
                 optimizer: torch.optim.Optimizer | None = None,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
                 callbacks: Iterable[Callback] = ()) -> None:
        self.world_size, self.rank = distributed.world_size(), distributed.rank()
        global_batch = args.per_device_batch_size * self.world_size
        if len(train_dataset) < global_batch:
            raise ValueError(f"the training set has {len(train_dataset)} examples, fewer than one batch of "
                             f"{global_batch} (per_device_batch_size={args.per_device_batch_size} x "
                             f"{self.world_size} process(es)): lower the batch size or add data")
        self.args = args
        self.device = args.resolved_device()
        self.model = model.to(self.device)
        # The training forward goes through train_model: DistributedDataParallel in a process
        # group (its backward averages gradients across processes), the model itself otherwise.
        self.train_model = distributed.wrap_for_training(self.model, self.device)
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        if collate_fn is None:
            pad_token_id = getattr(getattr(model, "config", None), "pad_token_id", 0)
            collate_fn = functools.partial(collate, pad_token_id=pad_token_id)
        self.collate_fn = collate_fn
        self.amp_dtype = autocast_dtype(args.precision, self.device)
        self.scaler = LossScaler(enabled=self.amp_dtype == torch.float16)
        self.optimizer = optimizer if optimizer is not None else self.create_optimizer()
        self.scheduler = scheduler if scheduler is not None else self.create_scheduler()
        self.callbacks = list(callbacks)
        self.log_history: list[dict[str, Any]] = []
        self.step = 0
        self.epoch = 0
        self.position = 0
        self.data_generator = torch.Generator().manual_seed(args.seed)
        self._epoch_start_state: torch.Tensor | None = None
        self._order: torch.Tensor | None = None
        self._last_saved_step = -1

    # ----- setup ---------------------------------------------------------------------------------

    def create_optimizer(self) -> torch.optim.Optimizer:
        """AdamW with two groups: matrices (dim >= 2) with weight decay, biases and norm weights without."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": self.args.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        return AdamW([g for g in groups if g["params"]], lr=self.args.learning_rate)

    def create_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        """The ``args.lr_schedule`` schedule with ``args.warmup_steps`` of warmup over ``args.max_steps``."""
        a = self.args
        if a.lr_schedule == "cosine":
            return get_cosine_schedule_with_warmup(self.optimizer, a.warmup_steps, a.max_steps,
                                                   min_lr_ratio=a.min_lr_ratio)
        if a.lr_schedule == "linear":
            return get_linear_schedule_with_warmup(self.optimizer, a.warmup_steps, a.max_steps)
        return get_constant_schedule_with_warmup(self.optimizer, a.warmup_steps)

    # ----- the loss: the one method subclasses override --------------------------------------------

    def compute_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The scalar loss of one micro-batch (mean over its label tokens). Override in subclasses.

        Args:
            model: the model being trained (``self.model``).
            batch: the collated micro-batch on ``self.device``.
        Returns:
            a scalar tensor with a graph back to the parameters.
        """
        raise NotImplementedError(
            "Trainer.compute_loss is the step each stage defines: use PretrainTrainer / SFTTrainer "
            "or override compute_loss(model, batch)"
        )

    # ----- data ----------------------------------------------------------------------------------

    def _start_epoch(self) -> None:
        """Draw this epoch's permutation from the data generator (keeping its state for checkpoints)."""
        self._epoch_start_state = self.data_generator.get_state()
        self._order = torch.randperm(len(self.train_dataset), generator=self.data_generator)
        self.position = 0

    def next_batch(self) -> dict[str, torch.Tensor]:
        """The next micro-batch of the shuffled training set, collated and on ``self.device``.

        Returns:
            ``collate_fn`` of ``per_device_batch_size`` examples, every tensor moved to the device.
        """
        # Step 1: b = self.args.per_device_batch_size；全局 micro-batch 的大小 span = b * self.world_size
        #         (单进程时 world_size = 1)；还没有本轮的顺序 (self._order is None) 时 self._start_epoch()；
        #         本轮剩下的样本不够一个全局 batch (self.position + span > len(self._order)) 时 self.epoch += 1
        #         再 self._start_epoch() (丢掉不完整的尾巴，每个 micro-batch 一样大，梯度累积才等价于大 batch)
        b = self.args.per_device_batch_size
        span = b * self.world_size
        if self._order is None:
            self._start_epoch()
        elif self.position + span > len(self._order):
            self.epoch += 1
            self._start_epoch()
        # Step 2: 每个进程的顺序相同，第 rank 个进程取全局 batch 里的第 rank 段：
        #         start = self.position + self.rank * b，indices = self._order[start : start + b]；
        #         self.position += span (position 记录在检查点里，恢复后从同一位置继续)
        start = self.position + self.rank * b
        indices = self._order[start: start + b]
        self.position += span
        # Step 3: batch = self.collate_fn([self.train_dataset[int(i)] for i in indices])，
        #         return {k: v.to(self.device) for k, v in batch.items()}
        batch = self.collate_fn([self.train_dataset[int(i)] for i in indices])
        return {k: v.to(self.device) for k, v in batch.items()}

    # ----- one micro-batch, one optimiser step -------------------------------------------------------

    def training_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Forward + backward of one micro-batch; gradients are added into ``.grad``.

        Args:
            batch: a collated micro-batch on ``self.device``.
        Returns:
            the micro-batch loss, detached, *not* divided by the accumulation steps (for logging).
        Raises:
            FloatingPointError: the loss is nan or inf (naming the step).
        """
        # Step 1: 前向在 autocast 下：with autocast_context(self.device, self.amp_dtype):
        #         loss = self.compute_loss(self.train_model, batch)
        #         (单进程时 train_model 就是 self.model；多进程时是 DDP 包装，反向时自动平均各进程的梯度)
        with autocast_context(self.device, self.amp_dtype):
            loss = self.compute_loss(self.train_model, batch)
        # Step 2: not torch.isfinite(loss) 时 raise FloatingPointError，消息写出第几步 (self.step + 1) 和 loss 的值，
        #         并提示该查什么 (学习率太大、数据里的越界 id、fp16 溢出)；nan 一旦进入参数就再也回不来
        if not bool(torch.isfinite(loss)):
            raise FloatingPointError(
                f"loss is {loss.item()} at step {self.step + 1}: lower the learning rate, check the "
                "data (token ids < vocab_size) and the loss, or train in fp32/bf16 instead of fp16"
            )
        # Step 3: 梯度累积：scaled = loss / self.args.gradient_accumulation_steps (k 个 micro-batch 的梯度相加后
        #         正好是平均值，而不是 k 倍)；self.scaler.scale(scaled).backward() (fp16 时乘上 loss scale，否则原样)
        scaled = loss / self.args.gradient_accumulation_steps
        self.scaler.scale(scaled).backward()
        # Step 4: return loss.detach() (记录日志用原始的 loss)
        return loss.detach()

    def optimizer_step(self) -> float:
        """Unscale (fp16), clip, step, schedule and clear the gradients once per optimiser step.

        Returns:
            the global gradient norm before clipping (inf / nan when fp16 overflowed).
        Raises:
            FloatingPointError: a non-finite gradient norm without fp16 loss scaling (naming the step).
        """
        # Step 1: self.scaler.unscale_(self.optimizer) (fp16 时把梯度除回 loss scale；必须在裁剪之前，否则阈值对的是放大后的梯度)
        self.scaler.unscale_(self.optimizer)
        # Step 2: 裁剪：max_norm = self.args.max_grad_norm or math.inf (None / 0 表示不裁剪，只计算范数)；
        #         grad_norm = torch.nn.utils.clip_grad_norm_(所有 requires_grad 的参数, max_norm) (返回裁剪前的全局 L2 范数)
        #         不用 fp16 时 (没有 loss scaler 跳过坏的一步)，grad_norm 不是有限数就 raise FloatingPointError，
        #         写出第几步：带 nan 的更新会毁掉所有参数 (梯度留在 .grad 里，方便查是哪个模块)
        max_norm = self.args.max_grad_norm or math.inf
        params = [p for p in self.model.parameters() if p.requires_grad]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        if not self.scaler.enabled and not math.isfinite(float(grad_norm)):
            raise FloatingPointError(
                f"the gradient norm is {float(grad_norm)} at step {self.step + 1}: lower the learning rate "
                "or check the loss and the model for operations that overflow"
            )
        # Step 3: stepped = self.scaler.step(self.optimizer) (溢出时跳过这一步)；self.scaler.update()；
        #         stepped 时 self.scheduler.step() (每个优化器步一次，不是每个 micro-batch 一次)
        stepped = self.scaler.step(self.optimizer)
        self.scaler.update()
        if stepped:
            self.scheduler.step()
        # Step 4: self.optimizer.zero_grad(set_to_none=True) (清空放在 step 之后：下一步的梯度从零开始累积)；
        #         return float(grad_norm)
        self.optimizer.zero_grad(set_to_none=True)
        return float(grad_norm)

    # ----- the recipe ----------------------------------------------------------------------------

    def train(self, resume_from: str | Path | None = None) -> list[dict[str, Any]]:
        """Run until ``args.max_steps`` optimiser steps; return the logged metrics.

        Args:
            resume_from: a checkpoint folder to continue from (model, optimizer, scheduler,
                step, data position and RNG states are restored, so the losses continue exactly
                as in an uninterrupted run); None starts from scratch, seeded with ``args.seed``.
        Returns:
            ``self.log_history``: one dict per logged step (step, epoch, loss, lr, grad_norm,
            tokens_per_s) and per evaluation (step, eval_loss).
        """
        # Step 1: args = self.args；准备：resume_from 不为 None 时 self.load_checkpoint(resume_from)；否则固定随机种子：
        #         random.seed(args.seed)、torch.manual_seed(args.seed)、self.data_generator.manual_seed(args.seed)；
        #         self.model.train() (打开 dropout)，self.optimizer.zero_grad(set_to_none=True)
        args = self.args
        if resume_from is not None:
            self.load_checkpoint(resume_from)
        else:
            random.seed(args.seed)
            torch.manual_seed(args.seed)
            self.data_generator.manual_seed(args.seed)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        # Step 2: 计时窗口 window_start = time.perf_counter()、window_tokens = 0 (每次记录后重置)；
        #         while self.step < args.max_steps: 每个优化器步累积 args.gradient_accumulation_steps 个 micro-batch：
        #         batch = self.next_batch()，losses.append(self.training_step(batch))，window_tokens += 本批 token 数
        #         (有 attention_mask 时 int(mask.sum())，否则 input_ids.numel())
        window_start, window_tokens = time.perf_counter(), 0
        while self.step < args.max_steps:
            losses = []
            for _ in range(args.gradient_accumulation_steps):
                batch = self.next_batch()
                losses.append(self.training_step(batch))
                mask = batch.get("attention_mask")
                window_tokens += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
            # Step 3: (Step 3–6 都在 while 循环内) lr = self.optimizer.param_groups[0]["lr"] (这一步实际用的学习率，要在 scheduler.step() 之前取)；
            #         grad_norm = self.optimizer_step()；self.step += 1
            lr = self.optimizer.param_groups[0]["lr"]
            grad_norm = self.optimizer_step()
            self.step += 1
            # Step 4: 每 log_every 步 (以及最后一步) 记录 {"step", "epoch",
            #         "loss": distributed.reduce_mean(torch.stack(losses).mean()) (多进程时取各进程的平均，单进程原样),
            #         "lr", "grad_norm", "tokens_per_s": distributed.reduce_sum(window_tokens) / 经过的秒数}，
            #         self.log(metrics)，再重置计时窗口
            if self.step % args.log_every == 0 or self.step == args.max_steps:
                elapsed = max(time.perf_counter() - window_start, 1e-9)
                self.log({"step": self.step, "epoch": self.epoch,
                          "loss": distributed.reduce_mean(torch.stack(losses).mean()),
                          "lr": lr, "grad_norm": grad_norm,
                          "tokens_per_s": distributed.reduce_sum(window_tokens) / elapsed})
                window_start, window_tokens = time.perf_counter(), 0
            # Step 5: args.eval_every > 0、有 eval_dataset 且 self.step % args.eval_every == 0 时
            #         self.log({"step": self.step, **self.evaluate()})
            if args.eval_every and self.eval_dataset is not None and self.step % args.eval_every == 0:
                self.log({"step": self.step, **self.evaluate()})
            # Step 6: args.save_every > 0 且 self.step % args.save_every == 0 时 self.save_checkpoint()
            if args.save_every and self.step % args.save_every == 0:
                self.save_checkpoint()
        # Step 7: 结束时若这一步还没保存过 (self._last_saved_step != self.step)，self.save_checkpoint()；
        #         return self.log_history
        if self._last_saved_step != self.step:
            self.save_checkpoint()
        return self.log_history

    def log(self, metrics: dict[str, Any]) -> None:
        """Append ``metrics`` to ``log_history`` and hand a copy to every callback (rank 0 only)."""
        self.log_history.append(metrics)
        if self.rank != 0:
            return
        for callback in self.callbacks:
            callback(dict(metrics))

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean loss per label token over ``eval_dataset``, in order, without touching the weights.

        Returns:
            ``{"eval_loss": float}`` (nan without an eval dataset or without any label token).
        """
        # Step 1: 没有验证集 (None 或长度 0) 时 return {"eval_loss": math.nan}；b = self.args.per_device_batch_size；
        #         was_training = self.model.training；self.model.eval() (关掉 dropout；no_grad 由装饰器负责，不建计算图省显存)
        if self.eval_dataset is None or len(self.eval_dataset) == 0:
            return {"eval_loss": math.nan}
        b = self.args.per_device_batch_size
        was_training = self.model.training
        self.model.eval()
        total, count = 0.0, 0
        try:
            # Step 2: total, count = 0.0, 0；按顺序每 b 条一批 (不打乱，不丢尾巴)：batch = collate 后搬到设备；在 autocast 下 loss = self.compute_loss(...)；
            #         n = (batch["labels"] != IGNORE_INDEX).sum()，n == 0 的批跳过 (没有要评估的 token，它的平均 loss 是 nan)，
            #         total += loss.item() * n，count += n
            #         (按 token 数加权，得到整个验证集上每个 token 的平均 loss，而不是各批平均值的平均)
            for start in range(0, len(self.eval_dataset), b):
                items = [self.eval_dataset[i] for i in range(start, min(start + b, len(self.eval_dataset)))]
                batch = {k: v.to(self.device) for k, v in self.collate_fn(items).items()}
                n = int((batch["labels"] != IGNORE_INDEX).sum()) if "labels" in batch else 1
                if n == 0:
                    continue
                with autocast_context(self.device, self.amp_dtype):
                    loss = self.compute_loss(self.model, batch)
                total += float(loss) * n
                count += n
        finally:
            # Step 3: 用 try/finally 保证无论是否出错都恢复：self.model.train(was_training)
            self.model.train(was_training)
        # Step 4: return {"eval_loss": total / count}，count == 0 时 math.nan
        return {"eval_loss": total / count if count else math.nan}

    # ----- checkpoints ---------------------------------------------------------------------------

    def checkpoint_dir(self, step: int | None = None) -> Path:
        """``output_dir / f"checkpoint-{step}"`` (the current step by default)."""
        return Path(self.args.output_dir) / f"checkpoint-{self.step if step is None else step}"

    def save_checkpoint(self) -> Path:
        """Write the current state to ``checkpoint_dir()`` (see ``checkpointing``); return the folder."""
        # Step 1: 收集非张量的训练状态：step、epoch、数据位置 position、本轮开始时数据生成器的状态 (列表)、
        #         scheduler.state_dict()、loss scaler 状态、所有随机数生成器状态 capture_rng_state(self.data_generator)、
        #         args (dataclasses.asdict) 和 log_history
        state = {
            "step": self.step,
            "epoch": self.epoch,
            "position": self.position,
            "epoch_start_state": (self._epoch_start_state.tolist()
                                  if self._epoch_start_state is not None else None),
            "scheduler": _json_scheduler_state(self.scheduler),
            "scaler": self.scaler.state_dict(),
            "rng": capture_rng_state(self.data_generator),
            "args": dataclasses.asdict(self.args),
            "log_history": self.log_history,
        }
        # Step 2: 只有 rank 0 写 (各进程的权重和优化器状态完全相同)：path = self.checkpoint_dir()，
        #         self.rank == 0 时 save_checkpoint(path, self.model, self.optimizer, state) (原子写入)；
        #         distributed.barrier() (其他进程等它写完)；self._last_saved_step = self.step；return path
        path = self.checkpoint_dir()
        if self.rank == 0:
            save_checkpoint(path, self.model, self.optimizer, state)
        distributed.barrier()
        self._last_saved_step = self.step
        return path

    def load_checkpoint(self, path: str | Path) -> dict[str, Any]:
        """Restore model, optimizer, scheduler, scaler, step, data position and RNG states from ``path``."""
        # Step 1: state = load_checkpoint(path, self.model, self.optimizer) (权重和优化器状态)；
        #         self.scheduler.load_state_dict(state["scheduler"])；self.scaler.load_state_dict(state["scaler"])
        state = load_checkpoint(path, self.model, self.optimizer)
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        # Step 2: 计数器：self.step、self.epoch、self.position、log_history；self._last_saved_step = self.step
        self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
        self.log_history = list(state.get("log_history", []))
        self._last_saved_step = self.step
        # Step 3: 随机数：restore_rng_state(state["rng"], self.data_generator) (dropout 的掩码、之后的打乱顺序都和没中断时一样)；
        #         若保存过本轮开始时的数据生成器状态：set_state 回去，重新抽出本轮的排列 self._order (抽完后生成器又回到保存时的状态)
        restore_rng_state(state["rng"], self.data_generator)
        if state.get("epoch_start_state") is not None:
            self.data_generator.set_state(torch.tensor(state["epoch_start_state"], dtype=torch.uint8))
            self._epoch_start_state = self.data_generator.get_state()
            self._order = torch.randperm(len(self.train_dataset), generator=self.data_generator)
        else:
            self._epoch_start_state, self._order = None, None
        return state


def _json_scheduler_state(scheduler: Any) -> dict[str, Any]:
    """``scheduler.state_dict()`` as plain JSON values (LambdaLR keeps its lambdas' ``__dict__``)."""
    import json

    state = scheduler.state_dict()
    try:
        return json.loads(json.dumps(state))
    except TypeError as error:
        raise TypeError(f"the scheduler state is not JSON-serialisable ({error}): "
                        "use a scheduler whose state holds plain values") from error
