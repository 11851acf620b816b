"""Character-level byte-pair encoding (BPE): learn merges, then apply them.

BPE starts from single characters and repeatedly merges the most frequent
adjacent pair into a new token (Sennrich et al., 2016). Three pure helpers show
the whole idea on a toy corpus; ``BPETokenizer.train`` is the same loop made
fast.

Worked example (``words`` maps each word, as a tuple of symbols, to its count)::

    corpus "low low low lower"  ->  pre_tokenize  ->  ["low", " low", " low", " lower"]
    words  = {("l","o","w"): 1, (" ","l","o","w"): 2, (" ","l","o","w","e","r"): 1}
    get_pair_counts(words): ("l","o"): 4, ("o","w"): 4, (" ","l"): 3, ("w","e"): 1, ("e","r"): 1
    tie at 4 -> the smaller pair ("l", "o") < ("o", "w") is merge 1, token "lo"
    words  = {("lo","w"): 1, (" ","lo","w"): 2, (" ","lo","w","e","r"): 1}
    next best: ("lo", "w") with 4 -> token "low"; then (" ", "low") with 3 -> " low"; ...

Rules that make training deterministic (and testable against a naive trainer):

- the pair with the **highest** count is merged; **ties** go to the
  lexicographically smallest ``(left, right)`` pair (Python tuple-of-str order);
- a merge's token is ``left + right``; it gets the next id unless that string is
  already in the vocabulary (two merges can spell the same token), in which case
  the existing id is reused and the vocabulary does not grow that step;
- training stops at ``vocab_size`` tokens, when no pair is left, or when the best
  count falls below ``min_frequency``.

Encoding applies merges GPT-2 style: repeatedly merge the adjacent pair with the
lowest merge rank (earliest learned) until none applies.

Training speed. The naive loop recounts every pair of the corpus after each
merge: O(merges x corpus). ``train`` instead keeps

- ``pair_counts``: pair -> count over the unique words (weighted by frequency),
- ``where``: pair -> set of word indices that (may) contain it,
- a heap of ``(-count, pair)`` with lazy invalidation (stale entries are
  skipped or re-pushed when popped),

and after a merge touches only the words that contain the merged pair, fixing
the counts of the neighbouring pairs around each occurrence. It produces exactly
the merges of the naive loop. (Inside ``train`` each word is stored as a string
with one character ``chr(id)`` per symbol, so a pair is a 2-character string and
``str.find`` / ``str.replace`` do the scanning in C.)

``ByteLevelTokenizer`` reuses ``train`` unchanged through two hooks:
``pre_tokenize`` (text -> words) and ``initial_alphabet`` (the starting symbols).
"""

from __future__ import annotations

import heapq
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Any

from .base_tokenizer import BaseTokenizer

# "words" keep their leading whitespace: "\s*\S+" is a word with the spaces before it,
# "\s+" catches whitespace at the end of the text. The pieces concatenate back to the text.
WORD_PATTERN = re.compile(r"\s*\S+|\s+")
# Larger than any merge rank: the rank of a pair that is not a merge.
NO_RANK = 1 << 62
# encode caches the ids of at most this many distinct words (bounded memory on huge corpora).
_CACHE_MAX_ENTRIES = 200_000


def pre_tokenize(text: str) -> list[str]:
    """Split text into words, each word carrying the whitespace before it.

    Merges are learned inside words only, so a token never spans two words.

    Example::

        >>> pre_tokenize("Hello  world!\\n")
        ['Hello', '  world!', '\\n']
        >>> "".join(pre_tokenize("a b\\tc ")) == "a b\\tc "
        True

    Args:
        text: any string.
    Returns:
        list of pieces whose concatenation is exactly ``text``.
    """
    # Step 1: 用正则 r"\s*\S+|\s+" 做 findall：每个"词"是若干空白 + 一段非空白，
    #         文本末尾剩下的纯空白单独成一段；这样所有片段拼起来恰好等于原文(不丢任何字符)
    return WORD_PATTERN.findall(text)


def get_pair_counts(words: dict[tuple[str, ...], int]) -> Counter[tuple[str, str]]:
    """Count adjacent symbol pairs, each word weighted by its frequency.

    Example::

        >>> get_pair_counts({("a", "b", "c"): 2, ("b", "c"): 1})
        Counter({('b', 'c'): 3, ('a', 'b'): 2})

    Args:
        words: word (tuple of symbols) -> number of times it occurs.
    Returns:
        Counter mapping ``(left, right)`` -> total count.
    """
    # Step 1: 新建 counts = Counter()
    counts: Counter[tuple[str, str]] = Counter()
    # Step 2: 对每个 (word, freq)，遍历相邻对 zip(word, word[1:], strict=False)，counts[pair] += freq
    #         (一个词出现 freq 次，它的每个相邻对也就出现 freq 次)
    for word, freq in words.items():
        for pair in zip(word, word[1:], strict=False):
            counts[pair] += freq
    return counts


def merge_pair(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    """Replace every occurrence of ``pair`` in ``word`` by the merged symbol.

    Occurrences are taken left to right without overlap::

        >>> merge_pair(("a", "b", "c", "a", "b"), ("a", "b"))
        ('ab', 'c', 'ab')
        >>> merge_pair(("a", "a", "a"), ("a", "a"))
        ('aa', 'a')

    Args:
        word: sequence of symbols.
        pair: ``(left, right)`` to merge into ``left + right``.
    Returns:
        the new tuple of symbols.
    """
    # Step 1: 用下标 i 从左到右扫描，结果放进列表 out
    left, right = pair
    out: list[str] = []
    i, n = 0, len(word)
    # Step 2: 若 word[i] == left 且 i + 1 < n 且 word[i + 1] == right，则 out.append(left + right) 并 i += 2
    #         (跳过已合并的两个符号，所以不会重叠)；否则 out.append(word[i])，i += 1
    while i < n:
        if word[i] == left and i + 1 < n and word[i + 1] == right:
            out.append(left + right)
            i += 2
        else:
            out.append(word[i])
            i += 1
    # Step 3: 返回 tuple(out)
    return tuple(out)


class BPETokenizer(BaseTokenizer):
    """Character-level BPE with special tokens.

    Attributes:
        vocab: token string -> id; special tokens first, then the alphabet, then merges.
        merges: learned pairs in rank order (rank 0 = learned first).
        id_to_token_list: id -> token string (the inverse of ``vocab``).
    Encoding caches: ``_ranks`` (pair -> rank) and ``_cache`` (word -> ids), rebuilt by
    ``_set_vocab_and_merges`` whenever the vocabulary changes.
    """

    tokenizer_type = "bpe"

    def __init__(self, special_tokens: Sequence[str] | None = None) -> None:
        super().__init__(special_tokens)
        # An untrained tokenizer already knows its fixed alphabet, if it has one
        # (the 256 byte symbols of ByteLevelTokenizer): encode works before train,
        # and byte-level encoding never needs unk.
        vocab = dict(self.special_tokens)
        for symbol in self.initial_alphabet([]):
            vocab.setdefault(symbol, len(vocab))
        self._set_vocab_and_merges(vocab, [])

    # ----- hooks that ByteLevelTokenizer overrides ----------------------------------------

    def pre_tokenize(self, text: str) -> list[str]:
        """Text (without special tokens) -> words; a word's characters are its first symbols."""
        return pre_tokenize(text)

    def initial_alphabet(self, words: Iterable[str]) -> list[str]:
        """Starting symbols of training: every character seen, sorted."""
        return sorted(set("".join(words)))

    # ----- state ------------------------------------------------------------------------

    def _set_vocab_and_merges(self, vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
        """Install a vocabulary and merges and rebuild what encode / decode look up."""
        self.vocab = vocab
        self.merges = merges
        self.id_to_token_list = [""] * len(vocab)
        for token, idx in vocab.items():
            self.id_to_token_list[idx] = token
        self._ranks = {pair: rank for rank, pair in enumerate(merges)}
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        """Number of tokens, special tokens included."""
        return len(self.vocab)

    def token_to_id(self, token: str) -> int | None:
        """Id of ``token``, or ``None`` if it is not in the vocabulary."""
        return self.vocab.get(token)

    def id_to_token(self, idx: int) -> str:
        """Token string of id ``idx``."""
        if not 0 <= idx < len(self.id_to_token_list):
            raise ValueError(f"unknown token id {idx}: valid ids are 0..{len(self.id_to_token_list) - 1}")
        return self.id_to_token_list[idx]

    def get_state(self) -> dict[str, Any]:
        """``{"vocab": {token: id}, "merges": [[left, right], ...]}`` for ``save``."""
        return {"vocab": dict(self.vocab), "merges": [list(pair) for pair in self.merges]}

    @classmethod
    def from_state(cls, special_tokens: Sequence[str], state: dict[str, Any]) -> BPETokenizer:
        """Rebuild from ``get_state()``; checks that vocab and merges fit together."""
        tok = cls(special_tokens)
        vocab, merges = state.get("vocab"), state.get("merges")
        if not isinstance(vocab, dict) or not isinstance(merges, list):
            raise ValueError("tokenizer state needs a 'vocab' object and a 'merges' list; re-save it")
        vocab = {str(token): int(idx) for token, idx in vocab.items()}
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise ValueError("vocab ids must be exactly 0..len(vocab)-1; re-save the tokenizer")
        for token, idx in tok.special_tokens.items():
            if vocab.get(token) != idx:
                raise ValueError(f"special token {token!r} must have id {idx} in the vocab; re-save it")
        pairs: list[tuple[str, str]] = []
        for merge in merges:
            if len(merge) != 2 or any(part not in vocab for part in (*merge, merge[0] + merge[1])):
                raise ValueError(f"merge {merge!r} uses tokens missing from the vocab; re-save it")
            pairs.append((merge[0], merge[1]))
        tok._set_vocab_and_merges(vocab, pairs)
        return tok

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
            f"special_tokens={list(self.special_tokens)})"
        )

    # ----- targets ----------------------------------------------------------------------

    def train(
        self,
        texts: Iterable[str],
        vocab_size: int,
        special_tokens: Sequence[str] | None = None,
        min_frequency: int = 1,
        verbose: bool = False,
    ) -> BPETokenizer:
        """Learn merges from ``texts`` until the vocabulary has ``vocab_size`` tokens.

        Incremental algorithm (same merges as recounting everything after each merge):
        pair counts + index pair -> words + max-heap with lazy invalidation.

        Args:
            texts: iterable of strings (documents, lines ...). Special-token strings
                inside them are cut out and never learned from.
            vocab_size: final vocabulary size, special tokens and alphabet included.
            special_tokens: replace the tokenizer's special tokens (``None``: keep them).
            min_frequency: stop when the best pair occurs fewer times than this.
            verbose: print every merge.
        Returns:
            ``self`` (trained), so ``tok = BPETokenizer().train(texts, 1000)`` works.
        Raises:
            ValueError: ``texts`` is a single string, or ``vocab_size`` is smaller than
                special tokens + alphabet (the message gives the minimum).
        """
        # Step 1: 参数检查：texts 若是单个 str 会被逐字符迭代，应 raise ValueError 提示传入 [text]；
        #         special_tokens 不为 None 时调用 BaseTokenizer.__init__(self, special_tokens) 替换特殊 token
        if isinstance(texts, str):
            raise ValueError("texts must be an iterable of strings: wrap a single text as [text]")
        if special_tokens is not None:
            BaseTokenizer.__init__(self, special_tokens)
        # Step 2: 统计词频 word_counts = Counter()：对每个 text，先用 self.split_special_tokens(text) 切开，
        #         跳过特殊 token 片段(它们不参与学习)，其余片段 word_counts.update(self.pre_tokenize(piece))。
        #         之后只处理"不同的词 + 频次"，大语料里重复词极多，这比逐个处理快得多
        word_counts: Counter[str] = Counter()
        for text in texts:
            for piece in self.split_special_tokens(text):
                if piece not in self.special_tokens:
                    word_counts.update(self.pre_tokenize(piece))
        # Step 3: 初始词表 vocab = dict(self.special_tokens)，再把 self.initial_alphabet(word_counts) 的符号
        #         依次加入：vocab.setdefault(symbol, len(vocab))(BPE: 出现过的字符排序；ByteLevel: 256 个字节字符)；
        #         若 vocab_size < len(vocab)，raise ValueError 并给出最小可用的 vocab_size
        vocab = dict(self.special_tokens)
        for symbol in self.initial_alphabet(word_counts):
            vocab.setdefault(symbol, len(vocab))
        if vocab_size < len(vocab):
            raise ValueError(
                f"vocab_size={vocab_size} is too small: special tokens + alphabet already need {len(vocab)}"
            )
        # Step 4: 每个不同的词变成符号序列 words[k](频次 freqs[k])。可以直接用 list(word)；参考实现把每个符号的 id
        #         写成一个字符 chr(id)，一个词就是一个 str，相邻对 (a, b) 就是长度 2 的子串 chr(a) + chr(b)，
        #         这样扫描和替换都能交给 C 实现的 str.find / str.replace。
        #         统计初始计数 pair_counts[pair] += freqs[k](同 get_pair_counts)，并建立倒排索引
        #         where[pair] = {含有该 pair 的词下标 k}：之后每次合并只需访问这些词，而不是整个语料
        tokens = [""] * len(vocab)
        for token, idx in vocab.items():
            tokens[idx] = token
        to_symbols = {ord(ch): chr(idx) for ch, idx in vocab.items() if len(ch) == 1}
        words = [word.translate(to_symbols) for word in word_counts]
        freqs = list(word_counts.values())
        pair_counts: defaultdict[str, int] = defaultdict(int)
        where: defaultdict[str, set[int]] = defaultdict(set)
        for k, (word, freq) in enumerate(zip(words, freqs, strict=True)):
            for i in range(len(word) - 1):
                key = word[i : i + 2]
                pair_counts[key] += freq
                where[key].add(k)
        # Step 5: 最大堆 heap = [(-count, left, right) ...](left / right 为 token 字符串)，heapq.heapify(heap)。
        #         heapq 是最小堆所以存 -count；计数相同时按 (left, right) 的字典序取最小者，正好是约定的平局规则
        heap = [(-count, tokens[ord(key[0])], tokens[ord(key[1])], key) for key, count in pair_counts.items()]
        heapq.heapify(heap)
        merges: list[tuple[str, str]] = []
        threshold = max(min_frequency, 1)
        # Step 6: 循环直到 len(vocab) == vocab_size 或堆为空：弹出堆顶，取该 pair 的当前计数 count。
        #         懒删除：堆里的计数与当前计数不同说明条目过期——若 0 < count < 堆中计数，以新计数重新入堆，
        #         然后 continue(计数增加的 pair 已在第 9 步入过堆)；若 count < max(min_frequency, 1) 就停止
        while len(vocab) < vocab_size and heap:
            neg, a, b, key = heapq.heappop(heap)
            count = pair_counts.get(key, 0)
            if -neg != count:
                if 0 < count < -neg:
                    heapq.heappush(heap, (-count, a, b, key))
                continue
            if count < threshold:
                break
            # Step 7: 记录合并 merges.append((a, b))，新 token new = a + b；
            #         若 new 已在 vocab(不同合并可能拼出同一字符串)就复用原 id，否则 vocab[new] = len(vocab)
            merges.append((a, b))
            new = a + b
            if new not in vocab:
                vocab[new] = len(vocab)
                tokens.append(new)
            c = chr(vocab[new])
            # Step 8: 只处理 where.pop(pair) 里的词 k(频次 f)：从左到右找出 (a, b) 的不重叠出现位置 i，
            #         对每处修正邻居 pair 的计数：
            #         左邻：若 i > 0，旧对 (word[i-1], a) 计数 -= f；新对 (x, new) += f，x 是合并后序列里的前一个符号
            #               (若上一处出现恰好在 i-1 结束，x 就是 new 本身，否则 x = word[i-1])；
            #         右邻：若 i + 2 < len(word) 且 i + 2 处不是下一处 (a, b)(否则交给下一处的"左邻"处理，避免重复)，
            #               旧对 (b, word[i+2]) -= f，新对 (new, word[i+2]) += f；
            #         新对把 k 加入 where，并记下它们的增量；最后把词换成合并后的序列(同 merge_pair)。
            #         索引可能过期(词里已没有这个 pair)，这时直接跳过
            fresh: defaultdict[str, int] = defaultdict(int)
            for k in where.pop(key, ()):
                word = words[k]
                i = word.find(key)
                if i < 0:
                    continue
                f, n, prev_end = freqs[k], len(word), -1
                while i >= 0:
                    if i > 0:
                        pair_counts[word[i - 1 : i + 1]] -= f
                        added = c + c if prev_end == i else word[i - 1] + c
                        fresh[added] += f
                        where[added].add(k)
                    nxt = i + 2
                    i = word.find(key, nxt)
                    if nxt < n and i != nxt:
                        pair_counts[word[nxt - 1 : nxt + 1]] -= f
                        added = c + word[nxt]
                        fresh[added] += f
                        where[added].add(k)
                    prev_end = nxt
                words[k] = word.replace(key, c)
            # Step 9: 合并后这个 pair 已全部消失：del pair_counts[pair]。把新对的增量加进 pair_counts，
            #         并以最新计数入堆(计数减少的 pair 不用入堆，由第 6 步的懒删除处理)；verbose 时打印本次合并
            del pair_counts[key]
            for added, delta in fresh.items():
                total = pair_counts[added] + delta
                pair_counts[added] = total
                if total > 0:
                    heapq.heappush(heap, (-total, tokens[ord(added[0])], tokens[ord(added[1])], added))
            if verbose:
                print(f"merge {len(merges)}: {a!r} + {b!r} -> {new!r} (count {count}), vocab {len(vocab)}")
        # Step 10: self._set_vocab_and_merges(vocab, merges) 保存结果并重建编码用的查找表，return self
        self._set_vocab_and_merges(vocab, merges)
        return self

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Text -> token ids.

        Special-token strings in ``text`` become their ids and are never split.
        Characters never seen in training become ``unk_token_id``.

        Args:
            text: any string.
            add_special_tokens: prepend ``bos_token_id`` and append ``eos_token_id``.
        Returns:
            list of ids.
        """
        # Step 1: ids = [self.bos_token_id] if add_special_tokens else []
        ids: list[int] = [self.bos_token_id] if add_special_tokens else []
        vocab, cache, unk = self.vocab, self._cache, self.unk_token_id
        rank_of = self._ranks.get
        # Step 2: 对 self.split_special_tokens(text) 的每个片段：若它在 self.special_tokens 中，
        #         直接追加它的 id(特殊 token 永不拆分)；否则对 self.pre_tokenize(片段) 的每个词做第 3~4 步
        for piece in self.split_special_tokens(text):
            special_id = self.special_tokens.get(piece)
            if special_id is not None:
                ids.append(special_id)
                continue
            for word in self.pre_tokenize(piece):
                # Step 3: 先查缓存 self._cache.get(word)；未命中时从单个字符开始 symbols = tuple(word)，GPT-2 式合并：
                #         反复在相邻对 zip(symbols, symbols[1:]) 中找 rank 最小者
                #         best = min(pairs, key=lambda p: self._ranks.get(p, inf))(rank 小 = 训练时学得早)，
                #         若 best 不在 self._ranks 中就停止，否则 symbols = merge_pair(symbols, best)(合并它的全部出现)。
                #         (参考实现等价但更快：维护每个相邻位置的 rank 列表，只在合并处更新左右两个 rank，
                #          用 C 实现的 min / list.index 找下一处，避免每轮重算所有相邻对)
                cached = cache.get(word)
                if cached is None:
                    symbols = list(word)
                    pair_ranks = list(map(rank_of, zip(symbols, symbols[1:], strict=False), repeat(NO_RANK)))
                    while pair_ranks:
                        best = min(pair_ranks)
                        if best == NO_RANK:
                            break
                        i = pair_ranks.index(best)
                        while True:
                            symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
                            del pair_ranks[i]
                            if i > 0:
                                pair_ranks[i - 1] = rank_of((symbols[i - 1], symbols[i]), NO_RANK)
                            if i < len(pair_ranks):
                                pair_ranks[i] = rank_of((symbols[i], symbols[i + 1]), NO_RANK)
                            try:
                                i = pair_ranks.index(best, i)
                            except ValueError:
                                break
                    # Step 4: 每个符号查 vocab 得到 id，训练时没见过的字符用 self.unk_token_id；
                    #         结果存入缓存(缓存条目少于 _CACHE_MAX_ENTRIES 时)并追加到 ids
                    cached = [vocab.get(symbol, unk) for symbol in symbols]
                    if len(cache) < _CACHE_MAX_ENTRIES:
                        cache[word] = cached
                ids.extend(cached)
        # Step 5: add_special_tokens 时末尾追加 self.eos_token_id，返回 ids
        if add_special_tokens:
            ids.append(self.eos_token_id)
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Token ids -> text (the concatenation of the token strings).

        Args:
            ids: list of ints (a 1-D tensor also works).
            skip_special_tokens: leave out special tokens such as ``<pad>`` and ``<eos>``.
        Returns:
            the text.
        Raises:
            ValueError: an id outside ``0 .. vocab_size - 1`` (the message names it).
        """
        # Step 1: 若 ids 有 .tolist()(torch 张量)先转成 list
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        # Step 2: 逐个 id：不在 0 .. vocab_size-1 范围内就 raise ValueError(写出该 id 和合法范围)；
        #         token = self.id_to_token_list[id]；skip_special_tokens 且 token 在 self.special_tokens 中则跳过
        tokens = self.id_to_token_list
        parts: list[str] = []
        for idx in ids:
            if not 0 <= idx < len(tokens):
                raise ValueError(f"unknown token id {idx}: valid ids are 0..{len(tokens) - 1}")
            token = tokens[idx]
            if skip_special_tokens and token in self.special_tokens:
                continue
            parts.append(token)
        # Step 3: 返回 "".join(所有 token 字符串)(词自带前导空白，直接拼接即可还原)
        return "".join(parts)
