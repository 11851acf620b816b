"""Datasets: packing, shifting and masking, checked token by token on hand-made examples.

The tokenizer here is a tiny one written for the tests (``CharTokenizer``): special
tokens first, then one id per character of ``ALPHABET``, so every expected id list
can be written down by hand::

    specials  <pad>=0 <bos>=1 <eos>=2 <unk>=3 (<|user|>=4 <|assistant|>=5 when registered)
    then      "a" -> S, "b" -> S+1, ..., " " -> S+26, "\\n" -> S+27      (S = number of specials)

Every dataset returns labels already shifted (``labels[i]`` follows ``input_ids[i]``),
``-100`` where no loss is taken; the tests check exactly that, plus padding by ``collate``
and ``dpo_collate``, the skipping of over-long prompts, and the same properties with a
real trained ``ByteLevelTokenizer``.
"""

from __future__ import annotations

import functools

import pytest
import torch
from torch.utils.data import DataLoader

from intro2llm.data.dpo_dataset import DPODataset, dpo_collate
from intro2llm.data.pretrain_dataset import IGNORE_INDEX, PretrainDataset, collate
from intro2llm.data.sft_dataset import (
    CHAT_SPECIAL_TOKENS,
    SFTDataset,
    build_sft_example,
    format_prompt,
)
from intro2llm.tokenizer import DEFAULT_SPECIAL_TOKENS, BaseTokenizer, ByteLevelTokenizer

ALPHABET = "abcdefghijklmnopqrstuvwxyz \n"
M = IGNORE_INDEX


class CharTokenizer(BaseTokenizer):
    """Specials (never split), then one id per ``ALPHABET`` character; anything else is unk."""

    tokenizer_type = "test_char_datasets"

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        offset = len(self.special_tokens)
        ids = []
        for piece in self.split_special_tokens(text):
            if piece in self.special_tokens:
                ids.append(self.special_tokens[piece])
            else:
                ids.extend(offset + ALPHABET.index(c) if c in ALPHABET else self.unk_token_id for c in piece)
        return [self.bos_token_id, *ids, self.eos_token_id] if add_special_tokens else ids

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        specials = list(self.special_tokens)
        offset = len(specials)
        return "".join(
            ("" if skip_special_tokens else specials[i]) if i < offset else ALPHABET[i - offset] for i in ids
        )

    @property
    def vocab_size(self) -> int:
        return len(self.special_tokens) + len(ALPHABET)


def ids(tok: CharTokenizer, text: str) -> list[int]:
    return tok.encode(text)


@pytest.fixture
def tok() -> CharTokenizer:
    return CharTokenizer()


@pytest.fixture
def chat_tok() -> CharTokenizer:
    return CharTokenizer(DEFAULT_SPECIAL_TOKENS + CHAT_SPECIAL_TOKENS)


@pytest.fixture(scope="module")
def byte_tok() -> ByteLevelTokenizer:
    texts = ["What is 12 + 30? The answer is 42.", "Sort the numbers: 3, 1, 2.", "你好，世界！计算 5 加 7。"]
    return ByteLevelTokenizer().train(texts * 3, vocab_size=300)


# ----- pretraining: packing ------------------------------------------------------------------


def test_char_tokenizer_ids_as_documented(tok, chat_tok):
    assert tok.encode("ab z") == [4, 5, 30, 29]
    assert chat_tok.encode("<|user|>\na") == [4, 33, 6]


def test_pretrain_packing_worked_example(tok):
    """Module docstring example: "ab", "cde", "f" -> stream 4 5 2 6 7 8 2 9 2; B = 3."""
    ds = PretrainDataset(["ab", "cde", "f"], tok, block_size=3)
    assert len(ds) == 2
    assert ds.blocks.tolist() == [[4, 5, 2, 6], [7, 8, 2, 9]]
    assert (ds.num_tokens, ds.num_dropped) == (9, 1)
    item0, item1 = ds[0], ds[1]
    assert item0["input_ids"].tolist() == [4, 5, 2] and item0["labels"].tolist() == [5, 2, 6]
    assert item1["input_ids"].tolist() == [7, 8, 2] and item1["labels"].tolist() == [8, 2, 9]
    for item in (item0, item1):
        assert item["input_ids"].dtype == torch.long and item["labels"].dtype == torch.long
        assert item["input_ids"].shape == item["labels"].shape == (3,)


@pytest.mark.parametrize("block_size", [1, 2, 5, 16])
def test_pretrain_stream_has_eos_after_every_document(tok, block_size):
    """The blocks, read in order, are the documents each followed by EOS, cut at B + 1."""
    texts = ["hello world", "a", "", "packing keeps every token", "end"]
    stream = []
    for text in texts:
        if text:
            stream += ids(tok, text) + [tok.eos_token_id]
    ds = PretrainDataset(texts, tok, block_size=block_size)
    n = len(stream) // (block_size + 1)
    assert len(ds) == n and ds.num_tokens == len(stream) and ds.num_dropped == len(stream) - n * (block_size + 1)
    assert ds.blocks.flatten().tolist() == stream[: n * (block_size + 1)]
    for i in range(n):
        chunk = stream[i * (block_size + 1) : (i + 1) * (block_size + 1)]
        assert ds[i]["input_ids"].tolist() == chunk[:-1]
        assert ds[i]["labels"].tolist() == chunk[1:]
        assert ds[i]["labels"][:-1].tolist() == ds[i]["input_ids"][1:].tolist()


def test_pretrain_empty_documents_add_no_lone_eos(tok):
    ds = PretrainDataset(["", "ab", "", "", "c"], tok, block_size=4)
    assert ds.blocks.tolist() == [[4, 5, 2, 6, 2]]


def test_pretrain_without_eos_documents_run_together(tok):
    ds = PretrainDataset(["ab", "cd"], tok, block_size=3, add_eos=False)
    assert ds.blocks.tolist() == [[4, 5, 6, 7]]


def test_pretrain_items_are_independent_of_the_blocks(tok):
    ds = PretrainDataset(["abcdef"], tok, block_size=3)
    ds[0]["input_ids"][0] = 99
    assert ds.blocks[0, 0].item() == 4


def test_pretrain_with_byte_level_tokenizer_decodes_back(byte_tok):
    texts = ["What is 12 + 30?", "你好，世界！", "The answer is 42."]
    stream = [i for text in texts for i in [*byte_tok.encode(text), byte_tok.eos_token_id]]
    assert byte_tok.decode(stream) == "<eos>".join(texts) + "<eos>"
    ds = PretrainDataset(texts, byte_tok, block_size=8)
    assert ds.blocks.flatten().tolist() == stream[: len(ds) * 9]
    assert len(ds) == len(stream) // 9


@pytest.mark.parametrize("block_size", [0, -1, 2.0, True])
def test_pretrain_rejects_bad_block_size(tok, block_size):
    with pytest.raises(ValueError, match="block_size"):
        PretrainDataset(["abc"], tok, block_size=block_size)


def test_pretrain_rejects_too_short_corpus(tok):
    with pytest.raises(ValueError, match="fewer than block_size"):
        PretrainDataset(["ab"], tok, block_size=3)  # 3 tokens < B + 1 = 4


# ----- collate -------------------------------------------------------------------------------


def test_collate_pads_right_to_the_longest_item():
    batch = [
        {"input_ids": torch.tensor([7, 8, 9]), "labels": torch.tensor([8, 9, 2])},
        {"input_ids": torch.tensor([5]), "labels": torch.tensor([M])},
        {"input_ids": [6, 6], "labels": [6, 2]},
    ]
    out = collate(batch, pad_token_id=0)
    assert out["input_ids"].tolist() == [[7, 8, 9], [5, 0, 0], [6, 6, 0]]
    assert out["labels"].tolist() == [[8, 9, 2], [M, M, M], [6, 2, M]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert all(v.dtype == torch.long and v.shape == (3, 3) for v in out.values())


def test_collate_uses_the_given_pad_id_and_only_the_batch_length():
    batch = [{"input_ids": [1, 1], "labels": [1, 1]}, {"input_ids": [1], "labels": [1]}]
    out = collate(batch, pad_token_id=42)
    assert out["input_ids"].tolist() == [[1, 1], [1, 42]]


def test_collate_rejects_empty_batch():
    with pytest.raises(ValueError, match="empty"):
        collate([], pad_token_id=0)


def test_pretrain_dataloader_batches(tok):
    ds = PretrainDataset(["abcdefgh"] * 10, tok, block_size=8)
    loader = DataLoader(ds, batch_size=4, collate_fn=functools.partial(collate, pad_token_id=tok.pad_token_id))
    batch = next(iter(loader))
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (4, 8)
    assert bool(batch["attention_mask"].all())


# ----- SFT -----------------------------------------------------------------------------------


def test_format_prompt_with_and_without_input():
    assert format_prompt({"instruction": "Sort.", "input": "3, 1"}) == "<|user|>\nSort.\n3, 1\n<|assistant|>\n"
    assert format_prompt({"instruction": "Hi?", "input": ""}) == "<|user|>\nHi?\n<|assistant|>\n"
    assert format_prompt({"instruction": "Hi?"}) == "<|user|>\nHi?\n<|assistant|>\n"


@pytest.mark.parametrize(
    ("prompt", "response", "max_length", "input_ids", "labels"),
    [
        # ids = p p p r r eos; labels[:P-1] masked; labels[P-1] = first response token
        ([10, 11, 12], [20, 21], 10, [10, 11, 12, 20, 21], [M, M, 20, 21, 2]),
        ([10, 11, 12], [20, 21], 5, [10, 11, 12, 20, 21], [M, M, 20, 21, 2]),
        ([10, 11, 12], [20, 21], 4, [10, 11, 12, 20], [M, M, 20, 21]),  # truncated: eos cut
        ([10, 11, 12], [20, 21], 3, [10, 11, 12], [M, M, 20]),  # P == T: one response label
        ([10], [20], 8, [10, 20], [20, 2]),  # P = 1: nothing to mask
        ([], [20, 21], 8, [20, 21], [21, 2]),  # P = 0: nothing masked (not labels[:-1])
        ([10, 11], [], 8, [10, 11], [M, 2]),  # empty response: only eos is learned
    ],
)
def test_build_sft_example_token_by_token(prompt, response, max_length, input_ids, labels):
    out = build_sft_example(prompt, response, eos_token_id=2, max_length=max_length)
    assert out["input_ids"].tolist() == input_ids
    assert out["labels"].tolist() == labels
    assert out["input_ids"].dtype == out["labels"].dtype == torch.long


def test_build_sft_example_rejects_prompt_longer_than_max_length():
    with pytest.raises(ValueError, match="max_length"):
        build_sft_example([1, 2, 3, 4], [5], eos_token_id=2, max_length=3)


def test_sft_dataset_masks_exactly_the_prompt(chat_tok):
    """prompt "<|user|>\\nab\\n<|assistant|>\\n" = [4, NL, a, b, NL, 5, NL] (P = 7), output "cd"."""
    a, b, c, d, nl = (ids(chat_tok, ch)[0] for ch in "abcd\n")
    ds = SFTDataset([{"instruction": "ab", "input": "", "output": "cd"}], chat_tok, max_length=32)
    item = ds[0]
    assert item["input_ids"].tolist() == [4, nl, a, b, nl, 5, nl, c, d]
    assert item["labels"].tolist() == [M] * 6 + [c, d, chat_tok.eos_token_id]
    assert ds.num_skipped == 0 and len(ds) == 1


def test_sft_dataset_skips_and_counts_long_prompts(chat_tok):
    records = [
        {"instruction": "ab", "output": "cd"},  # P = 7
        {"instruction": "a long instruction", "input": "and more", "output": "x"},  # P > 10
        {"instruction": "abc", "output": "d"},  # P = 8
    ]
    ds = SFTDataset(records, chat_tok, max_length=7)
    assert ds.skipped == [1, 2] and ds.num_skipped == 2 and len(ds) == 1
    assert ds[0]["labels"].tolist() == [M] * 6 + [ids(chat_tok, "c")[0]]  # truncated to T = 7
    with pytest.raises(ValueError, match="max_length"):
        SFTDataset(records[1:], chat_tok, max_length=7)


def test_sft_labels_with_byte_level_tokenizer(byte_tok):
    """Unregistered markers are spelled out in bytes; the learned labels are still exactly
    the response ids followed by EOS, and everything before them is -100."""
    records = [{"instruction": "What is 12 + 30?", "input": "", "output": "42"},
               {"instruction": "计算", "input": "5 加 7", "output": "12"}]
    ds = SFTDataset(records, byte_tok, max_length=64)
    for record, item in zip(records, ds, strict=True):
        prompt_ids = byte_tok.encode(format_prompt(record))
        response_ids = byte_tok.encode(record["output"])
        p = len(prompt_ids)
        assert item["input_ids"].tolist() == prompt_ids + response_ids
        assert item["labels"][: p - 1].eq(M).all()
        assert item["labels"][p - 1 :].tolist() == response_ids + [byte_tok.eos_token_id]


def test_sft_batch_masks_prompt_and_padding(chat_tok):
    records = [{"instruction": "ab", "output": "cd"}, {"instruction": "abcd", "input": "e", "output": "f"}]
    ds = SFTDataset(records, chat_tok, max_length=32)
    batch = collate([ds[0], ds[1]], pad_token_id=chat_tok.pad_token_id)
    lengths = [len(ds[0]["input_ids"]), len(ds[1]["input_ids"])]
    width = max(lengths)
    for row, n in enumerate(lengths):
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (width - n)
        assert batch["labels"][row, n:].eq(M).all()
        assert batch["input_ids"][row, n:].eq(chat_tok.pad_token_id).all()
    learned = batch["labels"][batch["labels"] != M]
    assert chat_tok.decode(learned.tolist()) == "cd<eos>f<eos>"


# ----- DPO -----------------------------------------------------------------------------------


def test_dpo_item_is_two_masked_sft_examples(chat_tok):
    record = {"prompt": "ab", "chosen": "cd", "rejected": "c"}
    ds = DPODataset([record], chat_tok, max_length=32)
    item = ds[0]
    prompt_ids = chat_tok.encode(format_prompt({"instruction": "ab"}))
    assert prompt_ids == chat_tok.encode("<|user|>\nab\n<|assistant|>\n")
    c, d = ids(chat_tok, "cd")
    assert item["chosen_input_ids"].tolist() == prompt_ids + [c, d]
    assert item["chosen_labels"].tolist() == [M] * 6 + [c, d, 2]
    assert item["rejected_input_ids"].tolist() == prompt_ids + [c]
    assert item["rejected_labels"].tolist() == [M] * 6 + [c, 2]
    assert set(item) == {"chosen_input_ids", "chosen_labels", "rejected_input_ids", "rejected_labels"}


def test_dpo_prompt_formatting_matches_sft(byte_tok):
    """A DPO prompt built from an SFT record's user message tokenizes like the SFT prompt."""
    sft = {"instruction": "Sort the numbers.", "input": "3, 1, 2", "output": "1, 2, 3"}
    dpo = {"prompt": "Sort the numbers.\n3, 1, 2", "chosen": "1, 2, 3", "rejected": "1, 3, 2"}
    sft_item = SFTDataset([sft], byte_tok, max_length=64)[0]
    dpo_item = DPODataset([dpo], byte_tok, max_length=64)[0]
    assert torch.equal(sft_item["input_ids"], dpo_item["chosen_input_ids"])
    assert torch.equal(sft_item["labels"], dpo_item["chosen_labels"])


def test_dpo_collate_pads_both_sides_to_one_length(chat_tok):
    records = [{"prompt": "ab", "chosen": "cd", "rejected": "c"},
               {"prompt": "abcdef", "chosen": "g", "rejected": "ghij"}]
    ds = DPODataset(records, chat_tok, max_length=32)
    batch = dpo_collate([ds[0], ds[1]], pad_token_id=0)
    longest = max(len(ds[i][f"{s}_input_ids"]) for i in range(2) for s in ("chosen", "rejected"))
    for side in ("chosen", "rejected"):
        for key in ("input_ids", "labels", "attention_mask"):
            assert batch[f"{side}_{key}"].shape == (2, longest)
        for row in range(2):
            n = len(ds[row][f"{side}_input_ids"])
            assert batch[f"{side}_input_ids"][row, :n].tolist() == ds[row][f"{side}_input_ids"].tolist()
            assert batch[f"{side}_labels"][row, n:].eq(M).all()
            assert batch[f"{side}_attention_mask"][row].tolist() == [1] * n + [0] * (longest - n)


def test_dpo_skips_and_counts_long_prompts(chat_tok):
    records = [{"prompt": "a" * 20, "chosen": "b", "rejected": "c"}, {"prompt": "a", "chosen": "b", "rejected": "c"}]
    ds = DPODataset(records, chat_tok, max_length=10)
    assert ds.skipped == [0] and ds.num_skipped == 1 and len(ds) == 1
