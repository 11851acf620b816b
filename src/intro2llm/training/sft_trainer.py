"""``SFTTrainer``: supervised fine-tuning, and exact-match evaluation of generated answers.

The loss is ``PretrainTrainer``'s: ``SFTDataset`` already writes -100 into the labels
of the prompt (and ``collate`` into the padding), so the mean cross-entropy covers
only the response and its EOS. What SFT adds is a way to see whether the model
*answers*: ``exact_match_accuracy`` generates greedily for held-out instruction
records and checks each answer with ``data.builtin.check_answer``.

Note on gradient accumulation: each micro-batch loss is a mean over *its* response
tokens; with responses of different lengths the accumulated gradient weights every
micro-batch equally rather than every token (as most trainers do).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..data.builtin import check_answer
from ..data.sft_dataset import format_prompt
from .pretrain_trainer import PretrainTrainer


class SFTTrainer(PretrainTrainer):
    """``PretrainTrainer`` on ``SFTDataset`` batches (prompt labels are -100), plus exact-match evaluation."""

    def evaluate_generation(self, tokenizer: Any, records: Sequence[Mapping[str, str]],
                            max_new_tokens: int = 32, batch_size: int = 16) -> dict[str, Any]:
        """``exact_match_accuracy`` of ``self.model`` on ``records`` (see there)."""
        return exact_match_accuracy(self.model, tokenizer, records, max_new_tokens=max_new_tokens,
                                    batch_size=batch_size)


@torch.no_grad()
def exact_match_accuracy(model: nn.Module, tokenizer: Any, records: Sequence[Mapping[str, str]],
                         max_new_tokens: int = 32, batch_size: int = 16) -> dict[str, Any]:
    """Greedy answers to instruction records, checked with ``builtin.check_answer``.

    Args:
        model: a ``CausalLM`` (its ``generate`` restores the training flag itself).
        tokenizer: the tokenizer of the model (``encode``, ``decode``, ``eos_token_id``, ``pad_token_id``).
        records: instruction records with ``"instruction"``, ``"input"``, ``"output"``, ``"family"``
            (e.g. ``builtin.instruction_records(split="heldout")``).
        max_new_tokens: the longest answer generated.
        batch_size: prompts per ``generate`` call (left-padded, as ``generate`` requires).
    Returns:
        ``{"accuracy": correct / total, "correct": int, "total": int, "predictions": [str, ...]}``.
    """
    device = next(model.parameters()).device
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    predictions: list[str] = []
    correct = 0
    for start in range(0, len(records), batch_size):
        chunk = records[start: start + batch_size]
        prompts = [tokenizer.encode(format_prompt(r)) for r in chunk]
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            input_ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
            attention_mask[i, width - len(p):] = 1
        out = model.generate(input_ids.to(device), attention_mask=attention_mask.to(device),
                             max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos,
                             pad_token_id=pad)
        for record, row in zip(chunk, out[:, width:].tolist(), strict=True):
            if eos in row:
                row = row[: row.index(eos)]
            text = tokenizer.decode(row, skip_special_tokens=True)
            predictions.append(text)
            correct += bool(check_answer(dict(record), text))
    total = len(records)
    return {"accuracy": correct / total if total else 0.0, "correct": correct, "total": total,
            "predictions": predictions}
