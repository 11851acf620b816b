"""Preference data for DPO: one prompt, a chosen and a rejected answer, each masked like SFT.

Notation: ``b = batch``, ``L`` = the longest sequence of a batch (chosen and rejected).

A record ``{"prompt", "chosen", "rejected"}`` gives two sequences that share the
prompt. The prompt is formatted with the SFT chat template
(``format_prompt({"instruction": prompt})``, i.e. ``"<|user|>\\n{prompt}\\n<|assistant|>\\n"``)
and each answer is joined to it by ``build_sft_example``: labels already shifted,
``-100`` on every label that predicts a prompt token, the answer and its EOS learned.
DPO (lesson 08) sums the log-probabilities of the label tokens, so only the answers
are compared: the shared prompt would add the same amount to both sides anyway.

**Labels are already shifted**: score them with ``sequence_logps(logits, labels)``
(lesson 08) or ``cross_entropy_loss``, never through ``CausalLM(labels=...)``.

``dpo_collate`` pads chosen and rejected sequences to one common length ``L``, so a
trainer can run both halves in one forward pass with
``torch.cat([chosen_input_ids, rejected_input_ids])``. Records whose prompt alone is
longer than ``max_length`` are skipped and counted in ``DPODataset.skipped``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

from .pretrain_dataset import collate
from .sft_dataset import build_sft_example, format_prompt

if TYPE_CHECKING:
    from ..tokenizer.base_tokenizer import BaseTokenizer


class DPODataset(Dataset):
    """Preference pairs as two label-masked sequences that share a prompt."""

    def __init__(self, records: Sequence[Mapping[str, str]], tokenizer: BaseTokenizer,
                 max_length: int) -> None:
        """Tokenize prompt, chosen and rejected once; skip (and count) too-long prompts.

        Args:
            records: ``{"prompt", "chosen", "rejected"}`` dicts, e.g. from
                ``builtin.preference_records`` or ``readers.read_dpo_file``.
            tokenizer: any ``BaseTokenizer``.
            max_length: the most input tokens per sequence.
        Sets:
            self.examples: list of ``(prompt_ids, chosen_ids, rejected_ids)``.
            self.skipped: indices of records whose formatted prompt has more than
                ``max_length`` tokens; ``self.num_skipped`` is their count.
        Raises:
            ValueError: max_length < 1, or every record was skipped.
        """
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length={max_length!r} must be a positive integer")
        self.max_length = max_length
        self.eos_token_id = tokenizer.eos_token_id
        self.examples: list[tuple[list[int], list[int], list[int]]] = []
        self.skipped: list[int] = []
        for i, record in enumerate(records):
            prompt_ids = tokenizer.encode(format_prompt({"instruction": record["prompt"]}))
            if len(prompt_ids) > max_length:
                self.skipped.append(i)
                continue
            self.examples.append((prompt_ids, tokenizer.encode(record["chosen"]),
                                  tokenizer.encode(record["rejected"])))
        if not self.examples:
            raise ValueError(f"all {len(self.skipped)} records have prompts longer than "
                             f"max_length={max_length} tokens: raise max_length")

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        """The ``idx``-th pair as two SFT-style examples.

        Args:
            idx: ``0 <= idx < len(self)``.
        Returns:
            ``{"chosen_input_ids": [n_c], "chosen_labels": [n_c], "rejected_input_ids": [n_r],
            "rejected_labels": [n_r]}``, torch.long; labels already shifted, ``-100`` on
            the positions that predict prompt tokens.
        """
        # Step 1: 取出 __init__ 编码好的三段：prompt_ids, chosen_ids, rejected_ids = self.examples[idx]
        prompt_ids, chosen_ids, rejected_ids = self.examples[idx]
        # Step 2: 两个回答各自和同一个 prompt 拼成一条 SFT 样本(移位 + prompt 标签置 -100 + 末尾 EOS)：
        #         chosen = build_sft_example(prompt_ids, chosen_ids, self.eos_token_id, self.max_length)，
        #         rejected = build_sft_example(prompt_ids, rejected_ids, self.eos_token_id, self.max_length)。
        #         prompt 部分不计分，DPO 只比较两个回答本身的对数概率
        chosen = build_sft_example(prompt_ids, chosen_ids, self.eos_token_id, self.max_length)
        rejected = build_sft_example(prompt_ids, rejected_ids, self.eos_token_id, self.max_length)
        # Step 3: 返回四个键：{"chosen_input_ids": chosen["input_ids"], "chosen_labels": chosen["labels"],
        #         "rejected_input_ids": rejected["input_ids"], "rejected_labels": rejected["labels"]}
        return {
            "chosen_input_ids": chosen["input_ids"],
            "chosen_labels": chosen["labels"],
            "rejected_input_ids": rejected["input_ids"],
            "rejected_labels": rejected["labels"],
        }


def dpo_collate(batch: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad chosen and rejected sequences of a batch to one common length (right padding).

    Args:
        batch: ``b`` items of ``DPODataset``.
        pad_token_id: id written into the inputs at padded positions.
    Returns:
        ``chosen_input_ids``, ``chosen_labels``, ``chosen_attention_mask``,
        ``rejected_input_ids``, ``rejected_labels``, ``rejected_attention_mask``: each
        [b, L] torch.long, padding as in ``collate`` (pad id, -100, 0).
    """
    sequences = [{"input_ids": item[f"{side}_input_ids"], "labels": item[f"{side}_labels"]}
                 for side in ("chosen", "rejected") for item in batch]
    padded = collate(sequences, pad_token_id)  # [2b, L]: chosen rows first, then rejected
    b = len(batch)
    return {f"{side}_{key}": padded[key][rows]
            for side, rows in (("chosen", slice(0, b)), ("rejected", slice(b, 2 * b)))
            for key in ("input_ids", "labels", "attention_mask")}
