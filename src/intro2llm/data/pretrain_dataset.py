"""Pretraining data: tokenize, append EOS, pack into fixed blocks; ``collate`` pads a batch.

Notation: ``b = batch``, ``B = block_size``, ``L`` = the longest item of a batch.

**Labels are already shifted** (every dataset in ``intro2llm.data`` does this):
``labels[i]`` is the token that follows ``input_ids[i]``, ``-100`` where no loss is
taken. Training computes ``cross_entropy_loss(logits, labels)`` directly (lesson 07)
and must NOT pass these labels to ``CausalLM(labels=...)``, which shifts them again
(the model would then learn to predict the token two steps ahead).

Packing (as GPT-2, nanoGPT and Hugging Face's ``run_clm`` do). Every document is
tokenized without special tokens and followed by one EOS, so no sample runs into the
next without an EOS between them; the documents are joined into one stream and cut
into non-overlapping chunks of ``B + 1`` tokens; chunk ``i`` gives
``input_ids = chunk[:-1]`` and ``labels = chunk[1:]``, both ``[B]``::

    documents "ab", "cde", "f"          (a=4, b=5, c=6, d=7, e=8, f=9, eos=2)
    stream    4 5 2 6 7 8 2 9 2         B = 3 -> chunks of 4 tokens
    chunk 0   4 5 2 6   -> input_ids 4 5 2   labels 5 2 6
    chunk 1   7 8 2 9   -> input_ids 7 8 2   labels 8 2 9
    tail      2         -> dropped (shorter than B + 1)

No padding is needed and no compute is wasted: every block is full. A block may hold
the end of one document and the start of the next; attention crosses that EOS, which
is standard for pretraining (the model learns that after EOS a new, unrelated text
begins). Documents that tokenize to nothing are skipped (no lone EOS). The tail
shorter than ``B + 1`` tokens is dropped (at most ``B`` tokens of the whole corpus);
so is the link between chunks (the last token of a chunk is never an input).

``collate`` turns items of different lengths (SFT, evaluation) into a batch with
*dynamic padding*: pad to the longest item of this batch, not to a fixed maximum.
Right padding: ``input_ids`` padded with ``pad_token_id``, ``labels`` with ``-100``
(no loss on padding), ``attention_mask`` 1 on real tokens and 0 on padding. With a
``DataLoader``: ``collate_fn=functools.partial(collate, pad_token_id=tok.pad_token_id)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from ..tokenizer.base_tokenizer import BaseTokenizer

IGNORE_INDEX = -100  # a label with this value is left out of the loss and of its mean


class PretrainDataset(Dataset):
    """Documents packed into ``len(self)`` blocks of ``block_size`` inputs and shifted labels."""

    def __init__(self, texts: Sequence[str], tokenizer: BaseTokenizer, block_size: int,
                 add_eos: bool = True) -> None:
        """Tokenize every document, append EOS after each, concatenate, cut into blocks.

        Args:
            texts: the documents (strings).
            tokenizer: any ``BaseTokenizer``; ``encode(text)`` adds no special tokens and
                ``eos_token_id`` separates the documents.
            block_size: tokens per training example ``B`` (>= 1).
            add_eos: append ``eos_token_id`` after every document (keep True except
                for experiments: without it documents run into each other).
        Sets:
            self.block_size: ``B``.
            self.blocks: [num_blocks, B + 1] torch.long, the packed chunks.
            self.num_tokens: tokens in the stream (EOS included);
            self.num_dropped: tokens in the dropped tail (< B + 1).
        Raises:
            ValueError: block_size < 1, or fewer than ``B + 1`` tokens in all.
        """
        # Step 1: 检查 block_size 是正整数(bool 除外)，否则 raise ValueError 说明改法；保存 self.block_size = block_size
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"block_size={block_size!r} must be a positive integer")
        self.block_size = block_size
        # Step 2: 逐篇编码 ids = tokenizer.encode(text)(不加 bos / eos)，编码为空的文档跳过；
        #         add_eos=True 时在每篇后面追加 tokenizer.eos_token_id，全部依次接到一条长列表 stream 上。
        #         文档之间总隔着一个 EOS，模型才学得到"这篇到此结束"，也不会把两篇文档当成一篇续写
        stream: list[int] = []
        for text in texts:
            ids = tokenizer.encode(text)
            if not ids:
                continue
            stream.extend(ids)
            if add_eos:
                stream.append(tokenizer.eos_token_id)
        # Step 3: 每块取 B + 1 个 token(多出的 1 个用来构造移位后的 labels)：
        #         num_blocks = len(stream) // (block_size + 1)；为 0 时 raise ValueError(语料太短，提示加文本或减小 block_size)
        chunk = block_size + 1
        num_blocks = len(stream) // chunk
        if num_blocks == 0:
            raise ValueError(f"the texts give {len(stream)} tokens, fewer than block_size + 1 = {chunk}: "
                             "add text or lower block_size")
        # Step 4: 丢掉凑不满一块的尾巴，切成互不重叠的块：
        #         self.blocks = torch.tensor(stream[:num_blocks * (B + 1)], dtype=torch.long).view(num_blocks, B + 1)；
        #         记录 self.num_tokens = len(stream)，self.num_dropped = len(stream) - num_blocks * (B + 1)
        self.blocks = torch.tensor(stream[: num_blocks * chunk], dtype=torch.long).view(num_blocks, chunk)
        self.num_tokens = len(stream)
        self.num_dropped = len(stream) - num_blocks * chunk

    def __len__(self) -> int:
        return self.blocks.shape[0]

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        """One block as inputs and already-shifted labels.

        Args:
            idx: block index, ``0 <= idx < len(self)``.
        Returns:
            ``{"input_ids": [B] long, "labels": [B] long}`` with
            ``labels[i] == input_ids[i + 1]`` for ``i < B - 1`` and ``labels[B - 1]`` the
            block's extra last token: pass them to ``cross_entropy_loss(logits, labels)``
            as they are, never to ``CausalLM(labels=...)``.
        """
        # Step 1: 取出第 idx 块 chunk = self.blocks[idx]，形状 [B + 1]
        chunk = self.blocks[idx]  # [B + 1]
        # Step 2: 输入去掉最后一个 token：input_ids = chunk[:-1]；标签去掉第一个：labels = chunk[1:]，都是 [B]。
        #         labels[i] 正是 input_ids[i] 的下一个 token(已经移位)，训练时直接 cross_entropy(logits, labels)
        #         (用 .clone() 得到独立的张量，修改样本不会改动 self.blocks)
        input_ids = chunk[:-1].clone()  # [B]
        labels = chunk[1:].clone()  # [B]
        # Step 3: return {"input_ids": input_ids, "labels": labels}
        return {"input_ids": input_ids, "labels": labels}


def collate(batch: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Stack items of different lengths into one right-padded batch (dynamic padding).

    Args:
        batch: ``b`` items, each ``{"input_ids": [n_i], "labels": [n_i]}`` (1-D long
            tensors or lists of ints, labels already shifted).
        pad_token_id: id written into ``input_ids`` at padded positions.
    Returns:
        ``{"input_ids": [b, L], "labels": [b, L], "attention_mask": [b, L]}``, all
        torch.long, ``L = max(n_i)``; padding: ``input_ids = pad_token_id``,
        ``labels = -100``, ``attention_mask = 0`` (1 on real tokens).
    Raises:
        ValueError: empty batch.
    """
    # Step 1: batch 为空时 raise ValueError；把每条的 input_ids / labels 转成 1 维 long 张量
    #         (torch.as_tensor(x, dtype=torch.long))，目标长度 L = 本批最长的 len(input_ids)(动态填充，只填到本批最长)
    if len(batch) == 0:
        raise ValueError("collate got an empty batch")
    ids = [torch.as_tensor(item["input_ids"], dtype=torch.long) for item in batch]
    labs = [torch.as_tensor(item["labels"], dtype=torch.long) for item in batch]
    max_len = max(x.shape[0] for x in ids)
    # Step 2: 先建好填充值的矩阵 [b, L]：input_ids 全为 pad_token_id，labels 全为 -100(IGNORE_INDEX，
    #         padding 不计入 loss)，attention_mask 全为 0，dtype 都是 torch.long
    input_ids = torch.full((len(batch), max_len), pad_token_id, dtype=torch.long)  # [b, L]
    labels = torch.full((len(batch), max_len), IGNORE_INDEX, dtype=torch.long)  # [b, L]
    attention_mask = torch.zeros((len(batch), max_len), dtype=torch.long)  # [b, L]
    # Step 3: 右填充：第 i 条长度为 n 时，input_ids[i, :n] = 它的 input_ids，labels[i, :n] = 它的 labels，
    #         attention_mask[i, :n] = 1(真实 token 为 1，填充为 0，注意力会忽略填充位置)
    for i, (x, y) in enumerate(zip(ids, labs, strict=True)):
        n = x.shape[0]
        input_ids[i, :n] = x
        labels[i, :n] = y
        attention_mask[i, :n] = 1
    # Step 4: return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
