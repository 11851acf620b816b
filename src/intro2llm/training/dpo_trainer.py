"""``DPOTrainer``: direct preference optimisation against a frozen reference model.

Notation: ``b`` = pairs per micro-batch, ``L`` = the longest sequence of the batch
(chosen and rejected are padded to it by ``dpo_collate``), ``V`` = vocabulary size.

One micro-batch (``compute_loss``)::

    input_ids = cat([chosen_input_ids, rejected_input_ids])        # [2b, L]: one forward for both
    logps = sequence_logps(policy(input_ids).logits, labels)        # [2b]: chosen rows, then rejected
    with no_grad: ref_logps = the same with the reference model     # [2b] (or the precomputed cache)
    loss, chosen_rewards, rejected_rewards = dpo_loss(logps[:b], logps[b:], ref[:b], ref[b:], beta)

Why one concatenated forward rather than two: the larger matmuls use the accelerator
better, and the model sees one forward per backward, which is what
``DistributedDataParallel`` (and FSDP) expect.

The reference model ``π_ref`` (by default a ``copy.deepcopy`` of the policy at the
start) is a fixed function: it is moved to the device, put in ``eval()`` (no dropout),
``requires_grad_(False)``, and it is not in the optimiser, so it never changes. With
``precompute_ref_logps=True`` its log-probabilities of every training pair are computed
once, before training, and the reference never runs again for training batches (the
training set is wrapped in ``IndexedDataset`` so each batch carries the pairs' indices).

For ``loss_type="ipo"`` the log-probabilities are per-token means
(``sequence_logps(..., average=True)``), as in TRL: IPO squares the log-ratio, and the
summed one grows with the answer length.

Metrics: besides the loss, every training log entry gains ``rewards/chosen``,
``rewards/rejected`` (mean implicit rewards ``β · (log π - log π_ref)``),
``rewards/accuracy`` (fraction of pairs whose chosen reward is the higher) and
``rewards/margin`` (mean chosen - rejected reward), averaged over the micro-batches since
the previous log entry (after a resume: since the resume). ``evaluate()`` gives the mean
DPO loss of the evaluation pairs (each batch weighted equally), and
``preference_accuracy`` the reward accuracy of a model on held-out pairs.

``Trainer`` itself is unchanged: besides ``compute_loss`` (the lesson target), this class
overrides ``log`` (to add the reward metrics) and ``next_batch`` (to add the concatenated
``attention_mask`` that ``Trainer.train`` counts tokens with).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..data.dpo_dataset import dpo_collate
from ..loss.dpo_loss import DPO_LOSS_TYPES, dpo_loss, sequence_logps
from ..utils.mixed_precision import autocast_context
from . import distributed
from .trainer import Trainer, TrainingArguments

REWARD_METRICS = ("rewards/chosen", "rewards/rejected", "rewards/accuracy", "rewards/margin")


class IndexedDataset(Sequence[dict[str, Any]]):
    """A dataset whose items also carry their own index (``item["index"] = idx``)."""

    def __init__(self, dataset: Sequence[dict[str, Any]]) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int) -> dict[str, Any]:  # type: ignore[override]  # ints only, no slices
        return {**self.dataset[idx], "index": idx}


def collate_with_index(items: list[dict[str, Any]],
                       collate_fn: Callable[[list[Any]], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """``collate_fn`` of the items without their ``"index"``, plus ``"index"``: [b] long when every item has one."""
    batch = collate_fn([{k: v for k, v in item.items() if k != "index"} for item in items])
    if items and all("index" in item for item in items):
        batch["index"] = torch.tensor([int(item["index"]) for item in items], dtype=torch.long)
    return batch


def concatenated_logps(model: nn.Module, batch: dict[str, torch.Tensor],
                       average: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``sequence_logps`` of the chosen and the rejected answers of a ``dpo_collate`` batch, in one forward.

    Args:
        model: a ``CausalLM`` (output with ``.logits`` [2b, L, V]).
        batch: ``chosen_*`` / ``rejected_*`` ``input_ids``, ``labels``, ``attention_mask``, each [b, L].
        average: per-token mean instead of the sum (IPO).
    Returns:
        ``(chosen_logps [b], rejected_logps [b])``.
    """
    b = batch["chosen_input_ids"].shape[0]
    input_ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]], dim=0)  # [2b, L]
    attention_mask = torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]], dim=0)
    labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]], dim=0)  # [2b, L]
    logps = sequence_logps(model(input_ids, attention_mask=attention_mask).logits, labels, average=average)
    return logps[:b], logps[b:]


class DPOTrainer(Trainer):
    """``Trainer`` whose loss is DPO against a frozen reference model (see the module docstring).

    Args:
        model: the policy, a ``CausalLM`` (usually the SFT model).
        args: a ``TrainingArguments``.
        train_dataset: a ``DPODataset`` (or any dataset of its items).
        ref_model: the reference ``π_ref``; default ``copy.deepcopy(model)`` (taken before training).
            Must not share parameters with ``model``.
        beta: β > 0 of ``dpo_loss``.
        loss_type: "sigmoid" | "ipo" | "hinge".
        label_smoothing: ε in [0, 0.5) (conservative DPO, "sigmoid" only).
        precompute_ref_logps: compute the reference log-probabilities of every training pair
            once at construction and never run the reference on training batches.
        **trainer_kwargs: ``Trainer``'s ``eval_dataset``, ``collate_fn`` (default ``dpo_collate``
            with the model config's ``pad_token_id``), ``optimizer``, ``scheduler``, ``callbacks``.
    Raises:
        ValueError: a bad ``beta`` / ``loss_type`` / ``label_smoothing``, or a reference model
            that shares parameters with the policy.
    """

    def __init__(self, model: nn.Module, args: TrainingArguments, train_dataset: Sequence[Any],
                 ref_model: nn.Module | None = None, beta: float = 0.1, loss_type: str = "sigmoid",
                 label_smoothing: float = 0.0, precompute_ref_logps: bool = False,
                 **trainer_kwargs: Any) -> None:
        if not (isinstance(beta, (int, float)) and beta > 0):
            raise ValueError(f"beta={beta!r} must be > 0 (typical values 0.1 ... 0.5)")
        if loss_type not in DPO_LOSS_TYPES:
            raise ValueError(f"loss_type={loss_type!r} is not supported: use one of {DPO_LOSS_TYPES}")
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"label_smoothing={label_smoothing!r} must be in [0, 0.5)")
        if label_smoothing > 0 and loss_type != "sigmoid":
            raise ValueError(f"label_smoothing applies to loss_type='sigmoid' only: set it to 0 for {loss_type!r}")
        if ref_model is None:
            ref_model = copy.deepcopy(model)
        if {id(p) for p in ref_model.parameters()} & {id(p) for p in model.parameters()}:
            raise ValueError("ref_model shares parameters with model: pass a separate copy "
                             "(or ref_model=None for copy.deepcopy(model))")
        collate_fn = trainer_kwargs.pop("collate_fn", None)
        if collate_fn is None:
            pad_token_id = getattr(getattr(model, "config", None), "pad_token_id", 0)
            collate_fn = functools.partial(dpo_collate, pad_token_id=pad_token_id)
        if precompute_ref_logps:
            train_dataset = IndexedDataset(train_dataset)
            collate_fn = functools.partial(collate_with_index, collate_fn=collate_fn)
        super().__init__(model, args, train_dataset, collate_fn=collate_fn, **trainer_kwargs)
        self.ref_model = ref_model.to(self.device).eval().requires_grad_(False)
        self.beta, self.loss_type, self.label_smoothing = float(beta), loss_type, float(label_smoothing)
        self.average_logps = loss_type == "ipo"
        self._reward_stats: list[torch.Tensor] = []  # one [4] tensor per training micro-batch since the last log
        self.ref_chosen_logps: torch.Tensor | None = None  # [N] with precompute_ref_logps
        self.ref_rejected_logps: torch.Tensor | None = None
        if precompute_ref_logps:
            self.precompute_reference_logps()

    @torch.no_grad()
    def precompute_reference_logps(self) -> None:
        """Fill ``ref_chosen_logps`` / ``ref_rejected_logps`` ([N], on the device) for every training pair.

        Runs the reference in order, ``per_device_batch_size`` pairs at a time, under the
        training autocast, so the cached values are those an on-the-fly forward gives (up to
        float rounding: the padding of a batch differs).
        """
        n, b = len(self.train_dataset), self.args.per_device_batch_size
        indices, chosen, rejected = [], [], []
        for start in range(0, n, b):
            items = [self.train_dataset[i] for i in range(start, min(start + b, n))]
            batch = {k: v.to(self.device) for k, v in self.collate_fn(items).items()}
            with autocast_context(self.device, self.amp_dtype):
                c, r = concatenated_logps(self.ref_model, batch, average=self.average_logps)
            indices.append(batch["index"])
            chosen.append(c)
            rejected.append(r)
        order = torch.cat(indices)
        self.ref_chosen_logps = torch.empty_like(torch.cat(chosen)).index_copy_(0, order, torch.cat(chosen))
        self.ref_rejected_logps = torch.empty_like(torch.cat(rejected)).index_copy_(0, order, torch.cat(rejected))

    def next_batch(self) -> dict[str, torch.Tensor]:
        """``Trainer.next_batch``, plus ``attention_mask`` [2b, L] (chosen rows, then rejected) when missing.

        ``Trainer.train`` counts the tokens of a batch (for ``tokens_per_s``) from
        ``attention_mask`` or ``input_ids``, which a ``dpo_collate`` batch names per side;
        the concatenated mask is exactly what the one forward of ``compute_loss`` sees.
        """
        batch = super().next_batch()
        if "attention_mask" not in batch and "chosen_attention_mask" in batch:
            batch["attention_mask"] = torch.cat([batch["chosen_attention_mask"],
                                                 batch["rejected_attention_mask"]], dim=0)
        return batch

    def compute_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The DPO loss of one micro-batch of pairs, from one forward of chosen and rejected together.

        Args:
            model: the policy being trained (``self.train_model``; ``self.model`` in ``evaluate``).
            batch: ``dpo_collate`` output on the device: ``chosen_input_ids``, ``chosen_labels``,
                ``chosen_attention_mask``, ``rejected_*`` the same, each [b, L] (labels already
                shifted, -100 on prompt and padding); with ``precompute_ref_logps`` also
                ``index`` [b] into the cached reference log-probabilities.
        Returns:
            scalar float32 loss with a graph back to the policy (not to the reference).
        """
        # Step 1: b = batch["chosen_input_ids"].shape[0]；把 chosen 和 rejected 沿 batch 维拼起来，一次前向算两半：
        #         input_ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]], dim=0)，
        #         attention_mask、labels 同样拼接 (chosen_attention_mask / rejected_attention_mask，chosen_labels / rejected_labels)，
        #         形状都是 [2b, L] (dpo_collate 已经把两边填充到同一长度 L；前 b 行是 chosen，后 b 行是 rejected)
        b = batch["chosen_input_ids"].shape[0]
        input_ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]], dim=0)  # [2b, L]
        attention_mask = torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]], dim=0)  # [2b, L]
        labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]], dim=0)  # [2b, L]
        # Step 2: 策略模型前向：logits = model(input_ids, attention_mask=attention_mask).logits，形状 [2b, L, V]；
        #         logps = sequence_logps(logits, labels, average=self.average_logps)，形状 [2b]
        #         (labels 已经错开一位，不要传给模型；IPO 时 average_logps 为 True，用每个 token 的平均对数概率)；
        #         policy_chosen_logps, policy_rejected_logps = logps[:b], logps[b:]
        logits = model(input_ids, attention_mask=attention_mask).logits  # [2b, L, V]
        logps = sequence_logps(logits, labels, average=self.average_logps)  # [2b]
        policy_chosen_logps, policy_rejected_logps = logps[:b], logps[b:]
        # Step 3: 参考模型的对数概率，不需要梯度：预先算好时 ("index" in batch，且 self.ref_chosen_logps、self.ref_rejected_logps 都不是 None)
        #         直接取缓存 ref_chosen_logps = self.ref_chosen_logps[batch["index"]]，ref_rejected_logps 同理；
        #         否则 with torch.no_grad(): 用 self.ref_model 对同样的 input_ids / attention_mask 前向，
        #         ref_logps = sequence_logps(ref_logits, labels, average=self.average_logps)，形状 [2b]，
        #         ref_chosen_logps, ref_rejected_logps = ref_logps[:b], ref_logps[b:]
        #         (参考模型是固定的：不建计算图，省显存，也保证梯度不会流进它)
        if "index" in batch and self.ref_chosen_logps is not None and self.ref_rejected_logps is not None:
            ref_chosen_logps = self.ref_chosen_logps[batch["index"]]  # [b]
            ref_rejected_logps = self.ref_rejected_logps[batch["index"]]  # [b]
        else:
            with torch.no_grad():
                ref_logits = self.ref_model(input_ids, attention_mask=attention_mask).logits  # [2b, L, V]
                ref_logps = sequence_logps(ref_logits, labels, average=self.average_logps)  # [2b]
            ref_chosen_logps, ref_rejected_logps = ref_logps[:b], ref_logps[b:]
        # Step 4: loss, chosen_rewards, rejected_rewards = dpo_loss(policy_chosen_logps, policy_rejected_logps,
        #         ref_chosen_logps, ref_rejected_logps, beta=self.beta, loss_type=self.loss_type,
        #         label_smoothing=self.label_smoothing)
        loss, chosen_rewards, rejected_rewards = dpo_loss(
            policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
            beta=self.beta, loss_type=self.loss_type, label_smoothing=self.label_smoothing,
        )
        # Step 5: 只在训练时记录奖励统计 (evaluate 里 model.training 为 False 且没有梯度，不记录)：
        #         model.training and torch.is_grad_enabled() 时 self.record_rewards(chosen_rewards, rejected_rewards)；
        #         return loss
        if model.training and torch.is_grad_enabled():
            self.record_rewards(chosen_rewards, rejected_rewards)
        return loss

    # ----- metrics -------------------------------------------------------------------------------

    def record_rewards(self, chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> None:
        """Keep one micro-batch's reward statistics (on the device: no sync) for the next ``log``.

        Args:
            chosen_rewards: [b] detached implicit rewards of the chosen answers.
            rejected_rewards: [b] the same for the rejected answers.
        """
        c, r = chosen_rewards.detach().float(), rejected_rewards.detach().float()
        self._reward_stats.append(torch.stack([c.mean(), r.mean(), (c > r).float().mean(), (c - r).mean()]))

    def log(self, metrics: dict[str, Any]) -> None:
        """Add the ``REWARD_METRICS`` (means over the micro-batches since the last log) to training entries."""
        if "loss" in metrics and self._reward_stats:
            means = torch.stack(self._reward_stats).mean(dim=0).tolist()
            self._reward_stats.clear()
            metrics = {**metrics, **{name: distributed.reduce_mean(value)
                                     for name, value in zip(REWARD_METRICS, means, strict=True)}}
        super().log(metrics)


@torch.no_grad()
def preference_accuracy(model: nn.Module, ref_model: nn.Module, dataset: Sequence[dict[str, torch.Tensor]],
                        batch_size: int = 16, beta: float = 0.1) -> dict[str, Any]:
    """How often the implicit reward ``β · (log π - log π_ref)`` ranks the chosen answer first.

    Both models run in ``eval()`` (their training flags are restored) on ``dataset`` in order.
    With ``model`` as its own reference every reward is 0 and the accuracy is 0 (a tie is not a
    win), so ``logp_accuracy`` is given too: how often the policy alone gives the chosen answer
    the higher summed log-probability (biased toward shorter answers, but meaningful before training).

    Args:
        model: the policy (a ``CausalLM``).
        ref_model: the reference model (e.g. ``DPOTrainer.ref_model``), on its own device.
        dataset: ``DPODataset`` items (``chosen_*`` / ``rejected_*`` ``input_ids`` and ``labels``).
        batch_size: pairs per forward.
        beta: β of the rewards (changes the margin, not the accuracy).
    Returns:
        ``{"accuracy": fraction with chosen reward > rejected reward, "margin": mean reward
        difference, "chosen_reward": mean, "rejected_reward": mean, "logp_accuracy": fraction with
        log π(chosen) > log π(rejected), "total": number of pairs}`` (0.0 everywhere for no pairs).
    Raises:
        ValueError: ``batch_size < 1`` or ``beta <= 0``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    if not beta > 0:
        raise ValueError(f"beta={beta!r} must be > 0")
    pad_token_id = getattr(getattr(model, "config", None), "pad_token_id", 0)
    devices = (next(model.parameters()).device, next(ref_model.parameters()).device)
    modes = (model.training, ref_model.training)
    model.eval()
    ref_model.eval()
    chosen_rewards, rejected_rewards, logp_wins = [], [], []
    try:
        for start in range(0, len(dataset), batch_size):
            batch = dpo_collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))],
                                pad_token_id)
            pc, pr = concatenated_logps(model, {k: v.to(devices[0]) for k, v in batch.items()})
            rc, rr = concatenated_logps(ref_model, {k: v.to(devices[1]) for k, v in batch.items()})
            pc, pr, rc, rr = (t.double().cpu() for t in (pc, pr, rc, rr))
            chosen_rewards.append(beta * (pc - rc))
            rejected_rewards.append(beta * (pr - rr))
            logp_wins.append(pc > pr)
    finally:
        model.train(modes[0])
        ref_model.train(modes[1])
    if not chosen_rewards:
        return {"accuracy": 0.0, "margin": 0.0, "chosen_reward": 0.0, "rejected_reward": 0.0,
                "logp_accuracy": 0.0, "total": 0}
    c, r = torch.cat(chosen_rewards), torch.cat(rejected_rewards)
    return {"accuracy": float((c > r).double().mean()), "margin": float((c - r).mean()),
            "chosen_reward": float(c.mean()), "rejected_reward": float(r.mean()),
            "logp_accuracy": float(torch.cat(logp_wins).double().mean()), "total": int(c.numel())}
