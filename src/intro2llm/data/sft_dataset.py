"""Supervised fine-tuning data: a chat template, and labels only on the response.

Notation: ``P`` = prompt tokens, ``R`` = response tokens, ``T = max_length``.

**Chat template.** A record ``{"instruction", "input", "output"}`` becomes plain text::

    <|user|>
    {instruction}
    {input}                  (this line only when input is not empty)
    <|assistant|>
    {output}<eos>

``format_prompt(record)`` is everything up to and including the newline after
``<|assistant|>``; at inference the model is given exactly that and generates the
answer, stopping at EOS. The markers follow the Zephyr / TinyLlama style. Register
them as special tokens when training a tokenizer (``special_tokens=
DEFAULT_SPECIAL_TOKENS + CHAT_SPECIAL_TOKENS``) so that each is one id that text can
never produce by accident; without that, a ``ByteLevelTokenizer`` still spells them
out in bytes and a character-level ``BPETokenizer`` needs ``<``, ``|`` and ``>`` in
its training text (or they become ``unk``).

**Masking.** The prompt and the response are tokenized separately and joined:
``ids = prompt_ids + response_ids + [eos]`` (so the boundary is always a token
boundary), truncated to ``T + 1`` tokens, then shifted like pretraining:
``input_ids = ids[:-1]``, ``labels = ids[1:]``. **Labels are already shifted**: train
with ``cross_entropy_loss(logits, labels)``, never ``CausalLM(labels=...)``. Every
label that predicts a *prompt* token is ``-100``: the model is not taught to write
questions, only answers, and the loss is averaged over answer tokens only::

    prompt ids  p0 p1 p2      response ids  r0 r1      eos e       (P = 3, R = 2)
    ids         p0 p1 p2 r0 r1 e
    input_ids   p0 p1 p2 r0 r1
    labels      -100 -100 r0 r1 e        labels[:P - 1] = -100; labels[P - 1] = r0 is learned

A record whose prompt alone is longer than ``T`` (no room for one response token)
is skipped and counted in ``SFTDataset.skipped`` rather than truncated into an
example with nothing to learn. Padding (``collate`` from ``pretrain_dataset``) adds
``-100`` labels too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch.utils.data import Dataset

from .pretrain_dataset import IGNORE_INDEX

if TYPE_CHECKING:
    from ..tokenizer.base_tokenizer import BaseTokenizer

USER_TOKEN = "<|user|>"
ASSISTANT_TOKEN = "<|assistant|>"
CHAT_SPECIAL_TOKENS = (USER_TOKEN, ASSISTANT_TOKEN)
CHAT_TEMPLATE = USER_TOKEN + "\n{user}\n" + ASSISTANT_TOKEN + "\n"


def user_message(record: Mapping[str, str]) -> str:
    """The user's turn: the instruction, then the input on its own line when there is one."""
    inp = record.get("input") or ""
    return record["instruction"] + (f"\n{inp}" if inp.strip() else "")


def format_prompt(record: Mapping[str, str]) -> str:
    """The prompt text of ``record`` in the chat template (ends with ``"<|assistant|>\\n"``).

    >>> format_prompt({"instruction": "What is 2 + 3?", "input": ""})
    '<|user|>\\nWhat is 2 + 3?\\n<|assistant|>\\n'
    """
    return CHAT_TEMPLATE.format(user=user_message(record))


def build_sft_example(prompt_ids: Sequence[int], response_ids: Sequence[int], eos_token_id: int,
                      max_length: int) -> dict[str, torch.Tensor]:
    """Join prompt, response and EOS; shift; mask the labels that predict prompt tokens.

    Args:
        prompt_ids: the tokenized ``format_prompt(record)``, ``P`` ids, ``P <= max_length``.
        response_ids: the tokenized answer, ``R`` ids.
        eos_token_id: appended after the response, so the model learns to stop.
        max_length: ``T``, the most input tokens an example may have.
    Returns:
        ``{"input_ids": [n] long, "labels": [n] long}`` with ``n = min(P + R, T)``;
        ``labels[i]`` is the token after ``input_ids[i]`` (already shifted), and
        ``labels[:P - 1] == -100`` (the positions whose next token is in the prompt).
    Raises:
        ValueError: ``P > max_length`` (no response token would fit).
    """
    # Step 1: len(prompt_ids) > max_length 时 raise ValueError(prompt 太长，连一个回答 token 都放不下)
    if len(prompt_ids) > max_length:
        raise ValueError(f"the prompt has {len(prompt_ids)} tokens > max_length={max_length}: "
                         "skip the record or raise max_length")
    # Step 2: 拼接 ids = list(prompt_ids) + list(response_ids) + [eos_token_id]：回答后接 EOS，模型才学会何时停下；
    #         截断到 ids = ids[:max_length + 1](输入最多 max_length 个，多留 1 个用于移位后的最后一个标签)
    ids = [*prompt_ids, *response_ids, eos_token_id][: max_length + 1]
    # Step 3: 与预训练一样移位：input_ids = ids[:-1]，labels = ids[1:]，都转成 torch.long 张量
    input_ids = torch.tensor(ids[:-1], dtype=torch.long)  # [n]
    labels = torch.tensor(ids[1:], dtype=torch.long)  # [n]
    # Step 4: labels[j] 预测的是 ids[j + 1]；j + 1 < P 时它预测的是 prompt 里的 token，不该学，设为 -100：
    #         labels[:max(P - 1, 0)] = -100(P = len(prompt_ids))。labels[P - 1] 预测回答的第一个 token，要保留；
    #         P = 0 时不屏蔽任何位置(注意 labels[:-1] 会错误地屏蔽几乎全部)
    labels[: max(len(prompt_ids) - 1, 0)] = IGNORE_INDEX
    # Step 5: return {"input_ids": input_ids, "labels": labels}
    return {"input_ids": input_ids, "labels": labels}


class SFTDataset(Dataset):
    """Instruction records in the chat template, labels only on the response and EOS."""

    def __init__(self, records: Sequence[Mapping[str, str]], tokenizer: BaseTokenizer,
                 max_length: int) -> None:
        """Tokenize every record once; skip (and count) records whose prompt is too long.

        Args:
            records: ``{"instruction", "input" (optional), "output"}`` dicts, e.g. from
                ``builtin.instruction_records`` or ``readers.read_sft_file``.
            tokenizer: any ``BaseTokenizer`` (``encode`` adds no special tokens).
            max_length: ``T``, the most input tokens per example.
        Sets:
            self.examples: list of ``(prompt_ids, response_ids)`` for the kept records.
            self.skipped: indices (into ``records``) of records whose prompt has more
                than ``T`` tokens; ``self.num_skipped`` is their count.
        Raises:
            ValueError: max_length < 1, or every record was skipped.
        """
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length={max_length!r} must be a positive integer")
        self.max_length = max_length
        self.eos_token_id = tokenizer.eos_token_id
        self.examples: list[tuple[list[int], list[int]]] = []
        self.skipped: list[int] = []
        for i, record in enumerate(records):
            prompt_ids = tokenizer.encode(format_prompt(record))
            if len(prompt_ids) > max_length:
                self.skipped.append(i)
                continue
            self.examples.append((prompt_ids, tokenizer.encode(record["output"])))
        if not self.examples:
            raise ValueError(f"all {len(self.skipped)} records have prompts longer than "
                             f"max_length={max_length} tokens: raise max_length")

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        """``build_sft_example`` of the ``idx``-th kept record: ``{"input_ids", "labels"}``, each [n]."""
        prompt_ids, response_ids = self.examples[idx]
        return build_sft_example(prompt_ids, response_ids, self.eos_token_id, self.max_length)
