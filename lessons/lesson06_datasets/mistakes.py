# ruff: noqa: F821
"""Wrong implementations of lesson 06's targets that learners really write.

``llm-course author verify lesson06`` splices each function below into a copy of the
reference in place of its symbol (so ``torch``, ``np``, ``IGNORE_INDEX``,
``MERSENNE_PRIME``, ``split_words``… resolve in that module) and checks that some lesson
test fails. Each body is the reference with one bug, so the test that catches it is the
one about that bug.

Not here, because it is correct: ``torch.split`` / ``unfold(0, B + 1, B + 1)`` for the
``view`` in packing, ``torch.nn.utils.rnn.pad_sequence`` with ``padding_value`` in
``collate``, ``collections.Counter`` for the distinct n-grams, ``np.min`` over a full
``[k, n]`` matrix without column blocks (same values, more memory), comparing a candidate
with exact Jaccard of the *signatures'* agreement computed another way.
"""

from __future__ import annotations

from intro2llm_cli.mistakes import mistake

# ============================================================ data/pretrain_dataset.py


@mistake("data/pretrain_dataset.py", "PretrainDataset.__getitem__", "labels not shifted: labels = input_ids")
def pretrain_labels_not_shifted(self, idx):
    chunk = self.blocks[idx]
    input_ids = chunk[:-1].clone()
    labels = chunk[:-1].clone()
    return {"input_ids": input_ids, "labels": labels}


@mistake("data/pretrain_dataset.py", "PretrainDataset.__getitem__",
         "labels shifted the wrong way: labels = chunk[:-1], input_ids = chunk[1:]")
def pretrain_labels_shifted_backwards(self, idx):
    chunk = self.blocks[idx]
    return {"input_ids": chunk[1:].clone(), "labels": chunk[:-1].clone()}


@mistake("data/pretrain_dataset.py", "PretrainDataset.__init__", "EOS missing between packed documents")
def pretrain_no_eos_between_documents(self, texts, tokenizer, block_size, add_eos=True):
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size={block_size!r} must be a positive integer")
    self.block_size = block_size
    stream = []
    for text in texts:
        stream.extend(tokenizer.encode(text))
    chunk = block_size + 1
    num_blocks = len(stream) // chunk
    if num_blocks == 0:
        raise ValueError("add text or lower block_size")
    self.blocks = torch.tensor(stream[: num_blocks * chunk], dtype=torch.long).view(num_blocks, chunk)
    self.num_tokens = len(stream)
    self.num_dropped = len(stream) - num_blocks * chunk


@mistake("data/pretrain_dataset.py", "PretrainDataset.__init__",
         "a lone EOS for an empty document (empty documents not skipped)")
def pretrain_eos_for_empty_documents(self, texts, tokenizer, block_size, add_eos=True):
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size={block_size!r} must be a positive integer")
    self.block_size = block_size
    stream = []
    for text in texts:
        stream.extend(tokenizer.encode(text))
        if add_eos:
            stream.append(tokenizer.eos_token_id)
    chunk = block_size + 1
    num_blocks = len(stream) // chunk
    if num_blocks == 0:
        raise ValueError("add text or lower block_size")
    self.blocks = torch.tensor(stream[: num_blocks * chunk], dtype=torch.long).view(num_blocks, chunk)
    self.num_tokens = len(stream)
    self.num_dropped = len(stream) - num_blocks * chunk


@mistake("data/pretrain_dataset.py", "PretrainDataset.__init__",
         "overlapping chunks: windows of B + 1 tokens taken every B tokens (nanoGPT's sampling), "
         "not non-overlapping chunks of B + 1")
def pretrain_overlapping_chunks(self, texts, tokenizer, block_size, add_eos=True):
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size={block_size!r} must be a positive integer")
    self.block_size = block_size
    stream = []
    for text in texts:
        ids = tokenizer.encode(text)
        if not ids:
            continue
        stream.extend(ids)
        if add_eos:
            stream.append(tokenizer.eos_token_id)
    if len(stream) < block_size + 1:
        raise ValueError("add text or lower block_size")
    self.blocks = torch.tensor(stream, dtype=torch.long).unfold(0, block_size + 1, block_size)
    used = (self.blocks.shape[0] - 1) * block_size + block_size + 1
    self.num_tokens = len(stream)
    self.num_dropped = len(stream) - used


@mistake("data/pretrain_dataset.py", "PretrainDataset.__init__",
         "chunks of B tokens instead of B + 1 (the last label of a block is the next block's first input)")
def pretrain_chunks_of_block_size(self, texts, tokenizer, block_size, add_eos=True):
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size={block_size!r} must be a positive integer")
    self.block_size = block_size
    stream = []
    for text in texts:
        ids = tokenizer.encode(text)
        if not ids:
            continue
        stream.extend(ids)
        if add_eos:
            stream.append(tokenizer.eos_token_id)
    num_blocks = (len(stream) - 1) // block_size
    if num_blocks == 0:
        raise ValueError("add text or lower block_size")
    self.blocks = torch.stack([torch.tensor(stream[i * block_size : i * block_size + block_size + 1])
                               for i in range(num_blocks)])
    self.num_tokens = len(stream)
    self.num_dropped = len(stream) - 1 - num_blocks * block_size


@mistake("data/pretrain_dataset.py", "PretrainDataset.__init__",
         "tail padded with EOS into one more block instead of dropped")
def pretrain_tail_padded(self, texts, tokenizer, block_size, add_eos=True):
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size={block_size!r} must be a positive integer")
    self.block_size = block_size
    stream = []
    for text in texts:
        ids = tokenizer.encode(text)
        if not ids:
            continue
        stream.extend(ids)
        if add_eos:
            stream.append(tokenizer.eos_token_id)
    chunk = block_size + 1
    num_blocks = -(-len(stream) // chunk)
    if len(stream) < chunk:
        raise ValueError("add text or lower block_size")
    padded = stream + [tokenizer.eos_token_id] * (num_blocks * chunk - len(stream))
    self.blocks = torch.tensor(padded, dtype=torch.long).view(num_blocks, chunk)
    self.num_tokens = len(stream)
    self.num_dropped = 0


@mistake("data/pretrain_dataset.py", "PretrainDataset.__getitem__",
         "views instead of copies: editing an item changes the dataset")
def pretrain_items_are_views(self, idx):
    chunk = self.blocks[idx]
    return {"input_ids": chunk[:-1], "labels": chunk[1:]}


# ============================================================ collate


@mistake("data/pretrain_dataset.py", "collate", "labels padded with pad_token_id instead of -100")
def collate_pads_labels_with_pad_id(batch, pad_token_id):
    if len(batch) == 0:
        raise ValueError("collate got an empty batch")
    ids = [torch.as_tensor(item["input_ids"], dtype=torch.long) for item in batch]
    labs = [torch.as_tensor(item["labels"], dtype=torch.long) for item in batch]
    max_len = max(x.shape[0] for x in ids)
    input_ids = torch.full((len(batch), max_len), pad_token_id, dtype=torch.long)
    labels = torch.full((len(batch), max_len), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), max_len), dtype=torch.long)
    for i, (x, y) in enumerate(zip(ids, labs, strict=True)):
        n = x.shape[0]
        input_ids[i, :n] = x
        labels[i, :n] = y
        attention_mask[i, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


@mistake("data/pretrain_dataset.py", "collate", "attention mask inverted: 1 on padding, 0 on real tokens")
def collate_mask_inverted(batch, pad_token_id):
    if len(batch) == 0:
        raise ValueError("collate got an empty batch")
    ids = [torch.as_tensor(item["input_ids"], dtype=torch.long) for item in batch]
    labs = [torch.as_tensor(item["labels"], dtype=torch.long) for item in batch]
    max_len = max(x.shape[0] for x in ids)
    input_ids = torch.full((len(batch), max_len), pad_token_id, dtype=torch.long)
    labels = torch.full((len(batch), max_len), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.ones((len(batch), max_len), dtype=torch.long)
    for i, (x, y) in enumerate(zip(ids, labs, strict=True)):
        n = x.shape[0]
        input_ids[i, :n] = x
        labels[i, :n] = y
        attention_mask[i, :n] = 0
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


@mistake("data/pretrain_dataset.py", "collate",
         "attention mask from input_ids != pad_token_id (masks real tokens that equal the pad id)")
def collate_mask_from_pad_id(batch, pad_token_id):
    if len(batch) == 0:
        raise ValueError("collate got an empty batch")
    ids = [torch.as_tensor(item["input_ids"], dtype=torch.long) for item in batch]
    labs = [torch.as_tensor(item["labels"], dtype=torch.long) for item in batch]
    max_len = max(x.shape[0] for x in ids)
    input_ids = torch.full((len(batch), max_len), pad_token_id, dtype=torch.long)
    labels = torch.full((len(batch), max_len), IGNORE_INDEX, dtype=torch.long)
    for i, (x, y) in enumerate(zip(ids, labs, strict=True)):
        input_ids[i, : x.shape[0]] = x
        labels[i, : x.shape[0]] = y
    attention_mask = (input_ids != pad_token_id).long()
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


@mistake("data/pretrain_dataset.py", "collate", "left padding instead of right padding")
def collate_left_pads(batch, pad_token_id):
    if len(batch) == 0:
        raise ValueError("collate got an empty batch")
    ids = [torch.as_tensor(item["input_ids"], dtype=torch.long) for item in batch]
    labs = [torch.as_tensor(item["labels"], dtype=torch.long) for item in batch]
    max_len = max(x.shape[0] for x in ids)
    input_ids = torch.full((len(batch), max_len), pad_token_id, dtype=torch.long)
    labels = torch.full((len(batch), max_len), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), max_len), dtype=torch.long)
    for i, (x, y) in enumerate(zip(ids, labs, strict=True)):
        n = x.shape[0]
        input_ids[i, max_len - n :] = x
        labels[i, max_len - n :] = y
        attention_mask[i, max_len - n :] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


# ============================================================ data/sft_dataset.py


@mistake("data/sft_dataset.py", "build_sft_example", "prompt not masked: every label is learned")
def sft_prompt_not_masked(prompt_ids, response_ids, eos_token_id, max_length):
    if len(prompt_ids) > max_length:
        raise ValueError("the prompt is too long")
    ids = [*prompt_ids, *response_ids, eos_token_id][: max_length + 1]
    return {"input_ids": torch.tensor(ids[:-1], dtype=torch.long), "labels": torch.tensor(ids[1:], dtype=torch.long)}


@mistake("data/sft_dataset.py", "build_sft_example",
         "mask off by one: labels[:P] = -100 also masks the label that predicts the first response token")
def sft_mask_off_by_one(prompt_ids, response_ids, eos_token_id, max_length):
    if len(prompt_ids) > max_length:
        raise ValueError("the prompt is too long")
    ids = [*prompt_ids, *response_ids, eos_token_id][: max_length + 1]
    input_ids = torch.tensor(ids[:-1], dtype=torch.long)
    labels = torch.tensor(ids[1:], dtype=torch.long)
    labels[: len(prompt_ids)] = IGNORE_INDEX
    return {"input_ids": input_ids, "labels": labels}


@mistake("data/sft_dataset.py", "build_sft_example",
         "labels[:P - 1] without max(., 0): an empty prompt masks every label but the last")
def sft_mask_negative_slice(prompt_ids, response_ids, eos_token_id, max_length):
    if len(prompt_ids) > max_length:
        raise ValueError("the prompt is too long")
    ids = [*prompt_ids, *response_ids, eos_token_id][: max_length + 1]
    input_ids = torch.tensor(ids[:-1], dtype=torch.long)
    labels = torch.tensor(ids[1:], dtype=torch.long)
    labels[: len(prompt_ids) - 1] = IGNORE_INDEX
    return {"input_ids": input_ids, "labels": labels}


@mistake("data/sft_dataset.py", "build_sft_example", "EOS not appended after the response")
def sft_no_eos(prompt_ids, response_ids, eos_token_id, max_length):
    if len(prompt_ids) > max_length:
        raise ValueError("the prompt is too long")
    ids = [*prompt_ids, *response_ids][: max_length + 1]
    input_ids = torch.tensor(ids[:-1], dtype=torch.long)
    labels = torch.tensor(ids[1:], dtype=torch.long)
    labels[: max(len(prompt_ids) - 1, 0)] = IGNORE_INDEX
    return {"input_ids": input_ids, "labels": labels}


@mistake("data/sft_dataset.py", "build_sft_example",
         "truncated to max_length tokens before shifting (one input too few)")
def sft_truncates_to_max_length(prompt_ids, response_ids, eos_token_id, max_length):
    if len(prompt_ids) > max_length:
        raise ValueError("the prompt is too long")
    ids = [*prompt_ids, *response_ids, eos_token_id][:max_length]
    input_ids = torch.tensor(ids[:-1], dtype=torch.long)
    labels = torch.tensor(ids[1:], dtype=torch.long)
    labels[: max(len(prompt_ids) - 1, 0)] = IGNORE_INDEX
    return {"input_ids": input_ids, "labels": labels}


# ============================================================ data/dpo_dataset.py


@mistake("data/dpo_dataset.py", "DPODataset.__getitem__",
         "rejected built from the chosen answer (copy-paste): both sides identical")
def dpo_rejected_from_chosen(self, idx):
    prompt_ids, chosen_ids, rejected_ids = self.examples[idx]
    chosen = build_sft_example(prompt_ids, chosen_ids, self.eos_token_id, self.max_length)
    rejected = build_sft_example(prompt_ids, chosen_ids, self.eos_token_id, self.max_length)
    return {"chosen_input_ids": chosen["input_ids"], "chosen_labels": chosen["labels"],
            "rejected_input_ids": rejected["input_ids"], "rejected_labels": rejected["labels"]}


@mistake("data/dpo_dataset.py", "DPODataset.__getitem__",
         "prompt not masked: prompt and answer joined as one response (no -100 labels)")
def dpo_prompt_not_masked(self, idx):
    prompt_ids, chosen_ids, rejected_ids = self.examples[idx]
    chosen = build_sft_example([], prompt_ids + chosen_ids, self.eos_token_id, self.max_length)
    rejected = build_sft_example([], prompt_ids + rejected_ids, self.eos_token_id, self.max_length)
    return {"chosen_input_ids": chosen["input_ids"], "chosen_labels": chosen["labels"],
            "rejected_input_ids": rejected["input_ids"], "rejected_labels": rejected["labels"]}


@mistake("data/dpo_dataset.py", "DPODataset.__getitem__",
         "rejected labels masked with the chosen sequence's length (the prompt length taken from the wrong side)")
def dpo_rejected_masked_by_chosen_length(self, idx):
    prompt_ids, chosen_ids, rejected_ids = self.examples[idx]
    chosen = build_sft_example(prompt_ids, chosen_ids, self.eos_token_id, self.max_length)
    rejected = build_sft_example(prompt_ids, rejected_ids, self.eos_token_id, self.max_length)
    rejected_labels = rejected["labels"].clone()
    rejected_labels[: len(prompt_ids) + len(chosen_ids) - 1] = -100
    return {"chosen_input_ids": chosen["input_ids"], "chosen_labels": chosen["labels"],
            "rejected_input_ids": rejected["input_ids"], "rejected_labels": rejected_labels}


# ============================================================ data/filtering.py


@mistake("data/filtering.py", "length_filter", "surrounding whitespace counted in the length")
def length_filter_not_stripped(texts, min_chars=20, max_chars=100_000):
    if min_chars > max_chars:
        raise ValueError("nothing could be kept")
    return [text for text in texts if min_chars <= len(text) <= max_chars]


@mistake("data/filtering.py", "length_filter", "exclusive bounds: texts exactly min_chars or max_chars long dropped")
def length_filter_exclusive(texts, min_chars=20, max_chars=100_000):
    if min_chars > max_chars:
        raise ValueError("nothing could be kept")
    return [text for text in texts if min_chars < len(text.strip()) < max_chars]


@mistake("data/filtering.py", "repetition_filter",
         "counts unique n-grams instead of duplicates: ratio = distinct / total")
def repetition_filter_unique_ratio(texts, n=3, max_ratio=0.3):
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    kept = []
    for text in texts:
        words = split_words(text)
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        ratio = len(set(grams)) / len(grams) if grams else 0.0
        if ratio <= max_ratio:
            kept.append(text)
    return kept


@mistake("data/filtering.py", "repetition_filter", "whitespace-split words: case kept, CJK text one word")
def repetition_filter_split_on_spaces(texts, n=3, max_ratio=0.3):
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    kept = []
    for text in texts:
        words = text.split()
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        ratio = 1.0 - len(set(grams)) / len(grams) if grams else 0.0
        if ratio <= max_ratio:
            kept.append(text)
    return kept


@mistake("data/filtering.py", "MinHash.signature", "max instead of min over the shingles")
def minhash_takes_max(self, text):
    x = self.shingle_hashes(text)
    sig = np.full(self.num_perm, MERSENNE_PRIME, dtype=np.int64)
    if x.shape[0] == 0:
        return sig
    h = (self.a[:, None] * x[None, :] + self.b[:, None]) % MERSENNE_PRIME
    return h.max(axis=1)


@mistake("data/filtering.py", "MinHash.signature", "no mod p: min of a·x + b")
def minhash_without_mod(self, text):
    x = self.shingle_hashes(text)
    sig = np.full(self.num_perm, MERSENNE_PRIME, dtype=np.int64)
    for start in range(0, x.shape[0], _COLUMNS):
        h = self.a[:, None] * x[None, start : start + _COLUMNS] + self.b[:, None]
        sig = np.minimum(sig, h.min(axis=1))
    return sig


@mistake("data/filtering.py", "MinHash.signature",
         "column blocks not merged: sig = h.min(axis=1) keeps only the last block's minima")
def minhash_blocks_not_merged(self, text):
    x = self.shingle_hashes(text)
    sig = np.full(self.num_perm, MERSENNE_PRIME, dtype=np.int64)
    for start in range(0, x.shape[0], _COLUMNS):
        h = (self.a[:, None] * x[None, start : start + _COLUMNS] + self.b[:, None]) % MERSENNE_PRIME
        sig = h.min(axis=1)
    return sig


@mistake("data/filtering.py", "deduplicate", "keeps the later duplicate: texts processed in reverse order")
def deduplicate_keeps_later(texts, threshold=0.8, num_perm=128, bands=None, rows=None, ngram=5, seed=0):
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold={threshold} must be in (0, 1]")
    if bands is None and rows is None:
        bands, rows = choose_bands(threshold, num_perm)
    elif bands is None:
        bands = num_perm // rows
    elif rows is None:
        rows = num_perm // bands
    if bands < 1 or rows < 1 or bands * rows > num_perm:
        raise ValueError(f"bands={bands} x rows={rows} must be >= 1 and fit in num_perm={num_perm}")
    minhash = MinHash(num_perm=num_perm, ngram=ngram, seed=seed)
    sigs = [minhash.signature(text) for text in texts]
    buckets = [{} for _ in range(bands)]
    keep = []
    for i in reversed(range(len(texts))):
        sig = sigs[i]
        keys = [sig[band * rows : (band + 1) * rows].tobytes() for band in range(bands)]
        candidates = {j for band, key in enumerate(keys) for j in buckets[band].get(key, ())}
        if any(estimate_jaccard(sig, sigs[j]) >= threshold for j in candidates):
            continue
        keep.append(i)
        for band, key in enumerate(keys):
            buckets[band].setdefault(key, []).append(i)
    return sorted(keep)


@mistake("data/filtering.py", "deduplicate", "candidates not verified: sharing one LSH bucket counts as a duplicate")
def deduplicate_without_verification(texts, threshold=0.8, num_perm=128, bands=None, rows=None, ngram=5, seed=0):
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold={threshold} must be in (0, 1]")
    if bands is None and rows is None:
        bands, rows = choose_bands(threshold, num_perm)
    elif bands is None:
        bands = num_perm // rows
    elif rows is None:
        rows = num_perm // bands
    if bands < 1 or rows < 1 or bands * rows > num_perm:
        raise ValueError(f"bands={bands} x rows={rows} must be >= 1 and fit in num_perm={num_perm}")
    minhash = MinHash(num_perm=num_perm, ngram=ngram, seed=seed)
    sigs = [minhash.signature(text) for text in texts]
    buckets = [{} for _ in range(bands)]
    keep = []
    for i, sig in enumerate(sigs):
        keys = [sig[band * rows : (band + 1) * rows].tobytes() for band in range(bands)]
        if any(key in buckets[band] for band, key in enumerate(keys)):
            continue
        keep.append(i)
        for band, key in enumerate(keys):
            buckets[band].setdefault(key, []).append(i)
    return keep


@mistake("data/filtering.py", "deduplicate",
         "every text put into the buckets, removed ones too: a chain of near-copies is compared with removed texts")
def deduplicate_buckets_removed_texts(texts, threshold=0.8, num_perm=128, bands=None, rows=None, ngram=5, seed=0):
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold={threshold} must be in (0, 1]")
    if bands is None and rows is None:
        bands, rows = choose_bands(threshold, num_perm)
    elif bands is None:
        bands = num_perm // rows
    elif rows is None:
        rows = num_perm // bands
    if bands < 1 or rows < 1 or bands * rows > num_perm:
        raise ValueError(f"bands={bands} x rows={rows} must be >= 1 and fit in num_perm={num_perm}")
    minhash = MinHash(num_perm=num_perm, ngram=ngram, seed=seed)
    sigs = [minhash.signature(text) for text in texts]
    buckets = [{} for _ in range(bands)]
    keep = []
    for i, sig in enumerate(sigs):
        keys = [sig[band * rows : (band + 1) * rows].tobytes() for band in range(bands)]
        candidates = {j for band, key in enumerate(keys) for j in buckets[band].get(key, ())}
        if not any(estimate_jaccard(sig, sigs[j]) >= threshold for j in candidates):
            keep.append(i)
        for band, key in enumerate(keys):
            buckets[band].setdefault(key, []).append(i)
    return keep


@mistake("data/filtering.py", "quality_score", "repeated-lines factor inverted: dup / 0.3 instead of 1 - dup / 0.3")
def quality_score_repeated_lines_inverted(text):
    stripped = text.strip()
    n = len(stripped)
    if n == 0:
        return 0.0
    f_len = min(1.0, len(split_words(stripped)) / 20)
    junk = sum(1 for c in stripped if not (c.isalnum() or c.isspace() or c in COMMON_PUNCTUATION))
    f_sym = max(0.0, 1.0 - (junk / n) / 0.25)
    lines = [line.strip() for line in stripped.splitlines() if line.strip()]
    dup = 1.0 - len(set(lines)) / len(lines)
    f_lines = min(1.0, dup / 0.3)
    cjk = len(_CJK_CHAR.findall(stripped))
    letters = sum(1 for c in stripped if c.isalpha())
    if cjk >= letters / 2:
        f_word = 1.0
    else:
        words = _ALPHA_WORD.findall(stripped)
        mean = sum(map(len, words)) / len(words) if words else 0.0
        f_word = 0.0 if not words else max(0.0, 1.0 - max(3.0 - mean, mean - 10.0, 0.0) / 3.0)
    tokens = stripped.split()
    alpha = sum(1 for token in tokens if any(c.isalpha() for c in token))
    f_alpha = min(1.0, (alpha / len(tokens)) / 0.8)
    return f_len * f_sym * f_lines * f_word * f_alpha


@mistake("data/filtering.py", "quality_score", "junk factor inverted: junk / n / 0.25 (junk raises the score)")
def quality_score_junk_inverted(text):
    stripped = text.strip()
    n = len(stripped)
    if n == 0:
        return 0.0
    f_len = min(1.0, len(split_words(stripped)) / 20)
    junk = sum(1 for c in stripped if not (c.isalnum() or c.isspace() or c in COMMON_PUNCTUATION))
    f_sym = min(1.0, (junk / n) / 0.25)
    lines = [line.strip() for line in stripped.splitlines() if line.strip()]
    dup = 1.0 - len(set(lines)) / len(lines)
    f_lines = max(0.0, 1.0 - dup / 0.3)
    cjk = len(_CJK_CHAR.findall(stripped))
    letters = sum(1 for c in stripped if c.isalpha())
    if cjk >= letters / 2:
        f_word = 1.0
    else:
        words = _ALPHA_WORD.findall(stripped)
        mean = sum(map(len, words)) / len(words) if words else 0.0
        f_word = 0.0 if not words else max(0.0, 1.0 - max(3.0 - mean, mean - 10.0, 0.0) / 3.0)
    tokens = stripped.split()
    alpha = sum(1 for token in tokens if any(c.isalpha() for c in token))
    f_alpha = min(1.0, (alpha / len(tokens)) / 0.8)
    return f_len * f_sym * f_lines * f_word * f_alpha


@mistake("data/filtering.py", "quality_score", "length in characters, not words: min(1, n / 20)")
def quality_score_length_in_characters(text):
    stripped = text.strip()
    n = len(stripped)
    if n == 0:
        return 0.0
    f_len = min(1.0, n / 20)
    junk = sum(1 for c in stripped if not (c.isalnum() or c.isspace() or c in COMMON_PUNCTUATION))
    f_sym = max(0.0, 1.0 - (junk / n) / 0.25)
    lines = [line.strip() for line in stripped.splitlines() if line.strip()]
    dup = 1.0 - len(set(lines)) / len(lines)
    f_lines = max(0.0, 1.0 - dup / 0.3)
    cjk = len(_CJK_CHAR.findall(stripped))
    letters = sum(1 for c in stripped if c.isalpha())
    if cjk >= letters / 2:
        f_word = 1.0
    else:
        words = _ALPHA_WORD.findall(stripped)
        mean = sum(map(len, words)) / len(words) if words else 0.0
        f_word = 0.0 if not words else max(0.0, 1.0 - max(3.0 - mean, mean - 10.0, 0.0) / 3.0)
    tokens = stripped.split()
    alpha = sum(1 for token in tokens if any(c.isalpha() for c in token))
    f_alpha = min(1.0, (alpha / len(tokens)) / 0.8)
    return f_len * f_sym * f_lines * f_word * f_alpha
