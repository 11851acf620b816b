"""Tokenizers of lesson 01: the shared base, character-level BPE and GPT-2 style byte-level BPE.

    >>> from intro2llm.tokenizer import ByteLevelTokenizer
    >>> tok = ByteLevelTokenizer().train(["hello world", "hello there"], vocab_size=270)
    >>> tok.decode(tok.encode("hello 世界"))
    'hello 世界'
"""

from .base_tokenizer import DEFAULT_SPECIAL_TOKENS, BaseTokenizer
from .bpe_tokenizer import BPETokenizer
from .byte_level_tokenizer import ByteLevelTokenizer

__all__ = ["DEFAULT_SPECIAL_TOKENS", "BaseTokenizer", "BPETokenizer", "ByteLevelTokenizer"]
