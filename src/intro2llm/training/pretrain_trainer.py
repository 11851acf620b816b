"""``PretrainTrainer``: next-token cross-entropy on batches whose labels are already shifted.

``PretrainDataset`` and ``SFTDataset`` return ``labels[i] = input_ids[i + 1]`` (with
-100 where nothing is to be learnt), so the loss compares ``logits`` and ``labels``
position by position. Passing them to ``CausalLM(labels=...)`` would shift a second
time and train the model to predict two tokens ahead.
"""

from __future__ import annotations

import torch
from torch import nn

from ..loss.cross_entropy import cross_entropy_loss
from .trainer import Trainer


class PretrainTrainer(Trainer):
    """``Trainer`` whose loss is the mean cross-entropy over every label token that is not -100."""

    def compute_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy of the model's next-token logits against the already-shifted labels.

        Args:
            model: a ``CausalLM`` (returns an output with ``.logits`` [b, s, V]).
            batch: ``{"input_ids": [b, s], "labels": [b, s], "attention_mask": [b, s] (optional)}``.
        Returns:
            scalar float32 loss, the mean over positions whose label is not -100.
        """
        # Step 1: logits = model(batch["input_ids"], attention_mask=batch.get("attention_mask")).logits，形状 [b, s, V]
        #         (不要把 labels 传给模型：数据集里的 labels 已经错开一位，模型会再错开一次)
        logits = model(batch["input_ids"], attention_mask=batch.get("attention_mask")).logits  # [b, s, V]
        # Step 2: return cross_entropy_loss(logits, batch["labels"]) (-100 的位置不计入平均)
        return cross_entropy_loss(logits, batch["labels"])
