"""The run's tokenizer: trained by the learner's BPE once, then reused from a cache.

Training a tokenizer takes seconds to minutes of pure Python, and the result only
depends on the tokenizer code and the text it learns from. The cache key is a hash
of exactly those (plus the vocabulary size and the special tokens), so editing the
tokenizer or changing the data retrains it, and nothing else does. Cached files live
in the workspace under ``.llm-course/cache/tokenizers/<key>/tokenizer.json``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

from .code import files_hash

TOKENIZER_FILES = ["tokenizer/__init__.py", "tokenizer/base_tokenizer.py", "tokenizer/bpe_tokenizer.py",
                   "tokenizer/byte_level_tokenizer.py"]


def training_sample(texts: list[str], num_bytes: int) -> list[str]:
    """The first documents of ``texts`` up to about ``num_bytes`` of UTF-8 (at least one document)."""
    sample, size = [], 0
    for text in texts:
        sample.append(text)
        size += len(text.encode("utf-8"))
        if size >= num_bytes:
            break
    return sample


def cache_key(code_root: Path, sample: list[str], vocab_size: int, special_tokens: list[str]) -> str:
    digest = hashlib.sha256()
    digest.update(files_hash(code_root, TOKENIZER_FILES).encode())
    digest.update(f"{vocab_size}|{'|'.join(special_tokens)}|".encode())
    for text in sample:
        digest.update(hashlib.sha256(text.encode("utf-8")).digest())
    return digest.hexdigest()[:20]


def cached_tokenizer(parts: Any, texts: list[str], config: Any, code_root: Path, cache_dir: Path) -> Any:
    """Load the tokenizer for (code, data, size) from the cache, or train it with ``my_llm`` and store it.

    In a multi-process run rank 0 trains and writes; the others wait and read.
    """
    from intro2llm.training import distributed

    special = list(parts.DEFAULT_SPECIAL_TOKENS) + list(parts.CHAT_SPECIAL_TOKENS)
    sample = training_sample(texts, config.tokenizer_sample_bytes)
    folder = cache_dir / cache_key(code_root, sample, config.vocab_size, special)
    file = folder / "tokenizer.json"
    if not file.is_file() and distributed.is_main_process():
        tokenizer = parts.ByteLevelTokenizer(special).train(sample, vocab_size=config.vocab_size)
        tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
        tokenizer.save(tmp / "tokenizer.json")
        if folder.exists():  # another run cached it meanwhile
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, folder)
    distributed.barrier()
    return parts.BaseTokenizer.load(file)
