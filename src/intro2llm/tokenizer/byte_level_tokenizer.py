"""Byte-level BPE, GPT-2 style: any Unicode text, no unknown tokens.

What it adds to ``BPETokenizer`` (training and encoding are inherited unchanged):

1. **Bytes, not characters.** Text is encoded as UTF-8 and BPE runs on bytes,
   so the starting alphabet is always the 256 byte values and nothing is ever
   unknown: an emoji is just four bytes. Each byte is shown as one printable
   Unicode character through the GPT-2 table ``bytes_to_unicode()`` (printable
   bytes map to themselves, the others to characters from U+0100 on), which
   keeps tokens readable strings that survive JSON and ``merges.txt``::

       " hello"  ->  UTF-8 b" hello"  ->  "Ġhello"        (space 0x20 -> "Ġ" U+0120)
       "你"      ->  b"\\xe4\\xbd\\xa0"   ->  "ä½ł"          (3 bytes, 3 symbols)

2. **GPT-2 pre-tokenization.** ``GPT2_SPLIT_PATTERN`` splits text into
   contractions, letter runs, digit runs, punctuation runs and whitespace
   (a single leading space sticks to the next word), so merges never cross
   those boundaries::

       "Hello world, it's 2024!"  ->  ["Hello", " world", ",", " it", "'s", " 2024", "!"]

The vocabulary is ``special tokens (ids 0..S-1)``, then the 256 byte symbols in
byte order (ids S..S+255), then the merges. Given the same vocab and merges,
Hugging Face ``tokenizers`` (``models.BPE`` with
``pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)``) produces
identical ids; the project's tests check that.

``decode`` joins the token strings, maps the symbols back to bytes and decodes
UTF-8 with ``errors="replace"``: a slice of ids that cuts a multi-byte character
in half decodes to U+FFFD instead of raising.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Sequence

import regex

from .bpe_tokenizer import BPETokenizer

# The GPT-2 split pattern (uses \p{...} classes, hence the `regex` package).
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_GPT2_REGEX = regex.compile(GPT2_SPLIT_PATTERN)


def bytes_to_unicode() -> dict[int, str]:
    """The GPT-2 table: byte value (0..255) -> one printable Unicode character.

    Printable Latin-1 bytes keep their own character (``ord("A") -> "A"``);
    the remaining 68 bytes (control characters, space, ...) are given the
    characters ``chr(256), chr(257), ...`` in byte order, so space 0x20 -> "Ġ"
    (U+0120) and newline 0x0A -> "Ċ" (U+010A).

    Returns:
        dict with 256 entries, a bijection onto 256 distinct characters.
    """
    # Step 1: 先收集"本身就可打印"的字节：bs = list(range(ord("!"), ord("~") + 1))
    #         + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))，
    #         它们映射到自己：cs = bs[:]
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    # Step 2: 其余字节 b(0..255 中不在 bs 里的，按从小到大的顺序)依次映射到 256 + n(n = 0, 1, 2, ...)：
    #         bs.append(b)，cs.append(256 + n)，n += 1 —— 这样空格、换行等也有了可见的字符
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    # Step 3: 返回 dict(zip(bs, [chr(c) for c in cs]))
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


class ByteLevelTokenizer(BPETokenizer):
    """GPT-2 style byte-level BPE; ``train`` / ``encode`` come from ``BPETokenizer``.

    Attributes:
        byte_encoder: byte value -> symbol (``bytes_to_unicode()``).
        byte_decoder: symbol -> byte value (the inverse).
    """

    tokenizer_type = "byte_level"

    def __init__(self, special_tokens: Sequence[str] | None = None) -> None:
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {symbol: b for b, symbol in self.byte_encoder.items()}
        # The same table in the form codecs.charmap_* want: bytes <-> symbols in C, not per byte in Python.
        self._decoding_table = "".join(self.byte_encoder[b] for b in range(256))
        self._encoding_map = codecs.charmap_build(self._decoding_table)
        super().__init__(special_tokens)

    def initial_alphabet(self, words: Iterable[str]) -> list[str]:
        """All 256 byte symbols in byte order, whatever the corpus contains."""
        return [self.byte_encoder[b] for b in range(256)]

    def pre_tokenize(self, text: str) -> list[str]:
        """GPT-2 regex split, then each piece's UTF-8 bytes as byte symbols.

        Example::

            >>> ByteLevelTokenizer().pre_tokenize("Hi there\\n你好")
            ['Hi', 'Ġthere', 'Ċ', 'ä½łå¥½']

        Args:
            text: any string without special tokens.
        Returns:
            list of words; every character of a word is one byte symbol.
        """
        # Step 1: pieces = regex.findall(GPT2_SPLIT_PATTERN, text)(需要 `regex` 包，它支持 \p{L} 等 Unicode 类)
        pieces = _GPT2_REGEX.findall(text)
        # Step 2: 每个 piece 按 UTF-8 编码成字节，再把每个字节 b 换成 self.byte_encoder[b]：
        #         "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))，返回这些字符串的列表
        #         (参考实现用 codecs.charmap_decode(piece.encode("utf-8"), "strict", 256 字符的查表串) 在 C 里完成同样的映射)
        table = self._decoding_table
        return [codecs.charmap_decode(piece.encode("utf-8"), "strict", table)[0] for piece in pieces]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Token ids -> text; invalid UTF-8 byte sequences become U+FFFD.

        Args:
            ids: list of ints (a 1-D tensor also works).
            skip_special_tokens: leave out special tokens.
        Returns:
            the text; ``decode(encode(t)) == t`` for every string ``t``.
        Raises:
            ValueError: an id outside ``0 .. vocab_size - 1`` (the message names it).
        """
        # Step 1: 若 ids 有 .tolist()(torch 张量)先转成 list
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        # Step 2: 逐个 id 取 token(越界 raise ValueError 并写出该 id 和合法范围)。特殊 token 不是字节符号，
        #         原样输出(skip_special_tokens 时跳过)；普通 token 的字符串先累积在 pending 里
        tokens = self.id_to_token_list
        parts: list[str] = []
        pending: list[str] = []
        for idx in [*ids, None]:
            if idx is not None and not 0 <= idx < len(tokens):
                raise ValueError(f"unknown token id {idx}: valid ids are 0..{len(tokens) - 1}")
            token = None if idx is None else tokens[idx]
            if token is not None and token not in self.special_tokens:
                pending.append(token)
                continue
            # Step 3: 遇到特殊 token 或结尾时把 pending 还原成文本：
            #         data = bytes(self.byte_decoder[c] for c in "".join(pending))，
            #         parts.append(data.decode("utf-8", errors="replace"))(被截断的多字节字符变成 U+FFFD，而不是报错)
            #         (参考实现用 codecs.charmap_encode(字符串, "strict", self._encoding_map) 在 C 里完成字节映射)
            if pending:
                data = codecs.charmap_encode("".join(pending), "strict", self._encoding_map)[0]
                parts.append(data.decode("utf-8", errors="replace"))
                pending = []
            if token is not None and not skip_special_tokens:
                parts.append(token)
        # Step 4: 返回 "".join(parts)
        return "".join(parts)
