"""Cleaning a corpus: length and repetition filters, near-duplicate removal, a quality score.

Pretraining pipelines (C4, Gopher/MassiveText, RefinedWeb, FineWeb) clean web text in
the same order: cheap rule filters, then near-duplicate removal, then a quality
signal. The filters return the kept texts in order; ``deduplicate`` returns the kept
*indices* (so metadata can follow the texts). No torch: numpy only.

**Words.** ``split_words`` lowercases and takes runs of letters / digits as words and
every CJK character as a word of its own (Chinese has no spaces), so the n-gram
filter works the same on Chinese and English.

**Repetition filter.** The fraction of duplicate word n-grams
``1 - distinct / total`` (0 for a text of fewer than ``n`` words): "the cat sat on the
mat" has no repeated 3-gram; "buy now buy now buy now" has 4 trigrams, 2 distinct,
ratio 0.5. Texts above ``max_ratio`` are dropped (Gopher drops pages whose duplicate
n-grams cover more than 10-20 % of the characters; per-occurrence counting is the
simpler cousin).

**MinHash.** The Jaccard similarity of two texts ``J = |A ∩ B| / |A ∪ B|`` is taken
over their sets of character 5-grams ("shingles", after lowercasing and collapsing
whitespace). For a random permutation ``π`` of all shingles,
``P(min π(A) == min π(B)) = J``; with ``k`` independent "permutations" the fraction of
equal minima estimates ``J`` with standard error ``sqrt(J (1 - J) / k) <= 0.5 / sqrt(k)``
(0.044 for k = 128). A permutation is simulated by universal hashing
``h(x) = (a·x + b) mod p`` with the Mersenne prime ``p = 2^31 - 1``, random
``1 <= a < p`` and ``0 <= b < p`` (seeded), applied to each shingle's 32-bit BLAKE2b
hash ``x`` reduced mod ``p``. Because ``a, b, x < 2^31``, ``a·x + b < 2^63`` never
overflows ``int64``: the arithmetic is exact (and numpy's int64 ``%`` by a constant is
about 3x faster than its uint64 one). ``signature`` evaluates all ``k``
hash functions on all shingles in one numpy broadcast ``[k, n]`` (split into column
blocks only to bound memory), never a Python loop per hash function.

**LSH banding.** Comparing every pair of N signatures is O(N²). Cut each signature
into ``b`` bands of ``r`` rows (``b·r <= k``); two texts become *candidates* when all
``r`` rows of at least one band agree (same bucket). For Jaccard ``s`` that happens
with probability ``1 - (1 - s^r)^b``, an S-curve whose midpoint is near
``(1/b)^(1/r)``:

    =====  =================  =================  =================
      s     b=16, r=8 (0.71)   b=21, r=6 (0.60)   b=32, r=4 (0.42)
    =====  =================  =================  =================
     0.3        0.0010             0.015              0.23
     0.5        0.061              0.28               0.87
     0.7        0.61               0.93               1.00
     0.8        0.95               0.998              1.00
     0.9        1.00               1.00               1.00
    =====  =================  =================  =================

Every candidate is then *verified*: it is a duplicate when its estimated Jaccard
with a kept text is ``>= threshold``. Placing the midpoint at the threshold itself
would miss ~37 % of the pairs sitting right at it, so ``choose_bands`` instead takes
the steepest banding (most rows) that still makes a pair at the threshold a
candidate with probability >= 0.99; the extra candidates below the threshold cost
one cheap verification each. For threshold 0.8 and k = 128 that is b = 21, r = 6.
Texts are processed in order and the first occurrence wins; a text is compared with
kept texts only (no transitive chains through removed ones).

**Quality score.** The product of five factors in [0, 1] (rules in the spirit of
Gopher's quality filters; see ``quality_score``): enough text, few junk symbols,
few repeated lines, plausible word lengths (skipped for mostly-CJK text), most
whitespace-separated tokens containing a letter. A single failing rule pulls the
score to 0; tables of numbers score 0, as in real pipelines.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

import numpy as np

MERSENNE_PRIME = (1 << 31) - 1  # p = 2^31 - 1; hash values lie in [0, p), p itself marks "no shingle"
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")
_CJK_CHAR = re.compile(rf"[{_CJK}]")
_ALPHA_WORD = re.compile(rf"[^\W\d_{_CJK}]+")
_COLUMNS = 4096  # shingles hashed per numpy block in MinHash.signature (bounds memory)
# punctuation of ordinary prose: not counted as junk by quality_score
COMMON_PUNCTUATION = set(".,;:!?'\"()-–—/%&$+=<>×，。；：！？、“”‘’（）《》…·")


def split_words(text: str) -> list[str]:
    """Lowercased words: runs of letters / digits, and each CJK character on its own.

    >>> split_words("Hello, 世界! It's 2024.")
    ['hello', '世', '界', 'it', 's', '2024']
    """
    return _WORD.findall(text.lower())


def char_ngrams(text: str, n: int = 5) -> set[str]:
    """The set of character ``n``-grams (shingles) after lowercasing and collapsing whitespace.

    A non-empty text shorter than ``n`` is one shingle (itself); an empty text has none.
    """
    text = " ".join(text.lower().split())
    if len(text) < n:
        return {text} if text else set()
    return {text[i : i + n] for i in range(len(text) - n + 1)}


def jaccard(a: Iterable, b: Iterable) -> float:
    """Exact Jaccard similarity ``|a ∩ b| / |a ∪ b|`` of two sets (1.0 when both are empty)."""
    a, b = set(a), set(b)
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def length_filter(texts: Sequence[str], min_chars: int = 20, max_chars: int = 100_000) -> list[str]:
    """Keep texts whose length in characters (surrounding whitespace stripped) is in range.

    Args:
        texts: the documents.
        min_chars: shortest length kept (inclusive); shorter texts are fragments, menus, noise.
        max_chars: longest length kept (inclusive); longer ones are often dumps or logs.
    Returns:
        the kept texts, in their original order (unchanged, not stripped).
    Raises:
        ValueError: min_chars > max_chars.
    """
    # Step 1: min_chars > max_chars 时 raise ValueError(区间为空，什么都留不下)
    if min_chars > max_chars:
        raise ValueError(f"min_chars={min_chars} > max_chars={max_chars}: nothing could be kept")
    # Step 2: 逐条计算 n = len(text.strip())(首尾空白不算长度)，保留 min_chars <= n <= max_chars 的原文，保持原顺序
    return [text for text in texts if min_chars <= len(text.strip()) <= max_chars]


def repetition_filter(texts: Sequence[str], n: int = 3, max_ratio: float = 0.3) -> list[str]:
    """Drop texts whose word ``n``-grams repeat too much.

    ratio = ``1 - (distinct n-grams) / (all n-grams)`` over ``split_words(text)``
    (0.0 for fewer than ``n`` words); "buy now buy now buy now" with n = 2 has
    5 bigrams, 2 distinct: ratio 0.6.

    Args:
        texts: the documents.
        n: n-gram length in words (>= 1).
        max_ratio: highest ratio kept (inclusive).
    Returns:
        the kept texts, in order.
    Raises:
        ValueError: n < 1.
    """
    # Step 1: n < 1 时 raise ValueError
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    kept = []
    for text in texts:
        # Step 2: 对每条文本取词 words = split_words(text)(中文每个字算一个词)，
        #         列出全部 n 元组 grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        words = split_words(text)
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        # Step 3: 重复比例 ratio = 1 - len(set(grams)) / len(grams)；grams 为空(不足 n 个词)时 ratio = 0.0
        ratio = 1.0 - len(set(grams)) / len(grams) if grams else 0.0
        # Step 4: ratio <= max_ratio 的文本保留，按原顺序返回
        if ratio <= max_ratio:
            kept.append(text)
    return kept


class MinHash:
    """``num_perm`` seeded universal hash functions that turn a text into a MinHash signature."""

    def __init__(self, num_perm: int = 128, ngram: int = 5, seed: int = 0) -> None:
        """
        Args:
            num_perm: ``k``, the number of hash functions (signature length).
            ngram: shingle length in characters.
            seed: seeds the hash parameters; signatures are comparable only between
                ``MinHash`` objects with the same ``num_perm`` and ``seed``.
        Sets:
            self.a: [k] int64 in ``[1, p)``; self.b: [k] int64 in ``[0, p)``, ``p = 2^31 - 1``.
        """
        if num_perm < 1 or ngram < 1:
            raise ValueError(f"num_perm={num_perm} and ngram={ngram} must be >= 1")
        self.num_perm, self.ngram, self.seed = num_perm, ngram, seed
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, MERSENNE_PRIME, size=num_perm, dtype=np.int64)
        self.b = rng.integers(0, MERSENNE_PRIME, size=num_perm, dtype=np.int64)

    def shingle_hashes(self, text: str) -> np.ndarray:
        """[n] int64: every shingle's 32-bit BLAKE2b hash (little-endian), reduced mod ``p``.

        BLAKE2b, not Python's ``hash`` (salted per process) nor CRC32 (linear): equal
        shingles get equal values on every run and machine, different ones look random.
        """
        digests = b"".join(hashlib.blake2b(s.encode("utf-8"), digest_size=4).digest()
                           for s in char_ngrams(text, self.ngram))
        return np.frombuffer(digests, dtype="<u4").astype(np.int64) % MERSENNE_PRIME

    def signature(self, text: str) -> np.ndarray:
        """The MinHash signature of ``text``.

        Args:
            text: any string.
        Returns:
            [num_perm] int64: ``sig[i] = min over shingles x of (a[i]·x + b[i]) mod p``;
            all ``p`` for a text without shingles (the empty string).
        """
        # Step 1: x = self.shingle_hashes(text)，形状 [n]：每个 shingle 的哈希值(int64，已 mod p)
        x = self.shingle_hashes(text)  # [n]
        # Step 2: 初始化 sig = np.full(self.num_perm, MERSENNE_PRIME, dtype=np.int64)(比任何哈希值都大，空文本就保持它)
        sig = np.full(self.num_perm, MERSENNE_PRIME, dtype=np.int64)  # [k]
        # Step 3: 用广播一次算出全部 k 个哈希函数在一批 shingle 上的值：
        #         h = (self.a[:, None] * x[None, cols] + self.b[:, None]) % MERSENNE_PRIME，形状 [k, len(cols)]；
        #         a、x、b 都 < 2^31，a·x + b < 2^63，int64 不会溢出。不要对每个哈希函数写 Python 循环；
        #         只按每 _COLUMNS 个 shingle 分块(cols = slice(start, start + _COLUMNS))，避免 [k, n] 矩阵占太多内存
        for start in range(0, x.shape[0], _COLUMNS):
            block = x[None, start : start + _COLUMNS]  # [1, c]
            h = (self.a[:, None] * block + self.b[:, None]) % MERSENNE_PRIME  # [k, c]
            # Step 4: 每个哈希函数取最小值并与之前的块合并：sig = np.minimum(sig, h.min(axis=1))
            sig = np.minimum(sig, h.min(axis=1))  # [k]
        # Step 5: return sig
        return sig


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Estimated Jaccard similarity: the fraction of positions where two signatures agree."""
    if sig_a.shape != sig_b.shape:
        raise ValueError(f"signatures of different shapes {sig_a.shape} and {sig_b.shape}: "
                         "use one MinHash object (same num_perm) for all texts")
    return float(np.mean(sig_a == sig_b))


def candidate_probability(s: float, bands: int, rows: int) -> float:
    """P(two texts with Jaccard ``s`` share at least one LSH bucket) = ``1 - (1 - s^r)^b``."""
    return 1.0 - (1.0 - s**rows) ** bands


def choose_bands(threshold: float, num_perm: int, min_recall: float = 0.99) -> tuple[int, int]:
    """The steepest banding ``(b, r)``, ``b = num_perm // r``, that still catches a pair at
    ``threshold`` with probability >= ``min_recall`` (``(num_perm, 1)`` if none does)."""
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if candidate_probability(threshold, bands, rows) >= min_recall:
            return bands, rows
    return num_perm, 1


def deduplicate(texts: Sequence[str], threshold: float = 0.8, num_perm: int = 128,
                bands: int | None = None, rows: int | None = None, ngram: int = 5,
                seed: int = 0) -> list[int]:
    """Near-duplicate removal with MinHash signatures and LSH banding; first occurrence wins.

    Args:
        texts: N documents.
        threshold: estimated Jaccard (character ``ngram`` shingles) at or above which a
            text counts as a duplicate of an earlier kept one, in (0, 1].
        num_perm: signature length ``k``.
        bands, rows: LSH banding, ``bands * rows <= num_perm``; both None ->
            ``choose_bands(threshold, num_perm)``; one given -> the other is
            ``num_perm // given``.
        ngram: shingle length in characters.
        seed: seeds the MinHash functions.
    Returns:
        sorted indices of the kept texts.
    Raises:
        ValueError: threshold outside (0, 1], or bands * rows > num_perm.
    """
    # Step 1: 检查 0 < threshold <= 1；确定 LSH 参数：bands、rows 都为 None 时 bands, rows = choose_bands(threshold, num_perm)，
    #         只给了一个时另一个取 num_perm // 已给的值；bands * rows > num_perm 时 raise ValueError
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
    # Step 2: 用同一个 MinHash(num_perm, ngram, seed) 计算全部签名 sigs = [minhash.signature(t) for t in texts]，每个 [num_perm]
    minhash = MinHash(num_perm=num_perm, ngram=ngram, seed=seed)
    sigs = [minhash.signature(text) for text in texts]
    # Step 3: 每个 band 一个桶字典 buckets[band]: {签名片段 sig[band * rows:(band + 1) * rows].tobytes(): [已保留文本的下标]}
    buckets: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]
    keep: list[int] = []
    for i, sig in enumerate(sigs):
        # Step 4: 按顺序处理第 i 条：它在每个 band 的桶里已有的(已保留的)文本都是候选，
        #         候选集合 = 所有 band 同桶下标的并集；相同 band 片段 = 这 rows 个最小哈希全部相等
        keys = [sig[band * rows : (band + 1) * rows].tobytes() for band in range(bands)]
        candidates = {j for band, key in enumerate(keys) for j in buckets[band].get(key, ())}
        # Step 5: 验证候选(LSH 只是粗筛)：若某个候选 j 满足 estimate_jaccard(sig, sigs[j]) >= threshold，
        #         i 就是重复，丢弃(先出现的保留)；否则 keep.append(i)，并把 i 放进它在每个 band 的桶里
        if any(estimate_jaccard(sig, sigs[j]) >= threshold for j in candidates):
            continue
        keep.append(i)
        for band, key in enumerate(keys):
            buckets[band].setdefault(key, []).append(i)
    # Step 6: return keep(保留文本的下标，升序)
    return keep


def quality_score(text: str) -> float:
    """A heuristic quality score in [0, 1]: the product of five factors.

    With ``n`` = characters of ``text.strip()``:

    1. length: ``min(1, words / 20)``, words counted by ``split_words`` (a CJK
       character is a word, so Chinese and English are measured alike; 0 for empty text);
    2. junk symbols: ``max(0, 1 - junk / n / 0.25)``, junk = characters that are not
       letters, digits, whitespace or ``COMMON_PUNCTUATION`` (25 % junk -> 0);
    3. repeated lines: ``max(0, 1 - dup / 0.3)``, dup = fraction of non-empty lines
       equal to an earlier line (Gopher drops pages above 30 %);
    4. word length: for text whose letters are mostly not CJK, the mean length m of
       alphabetic words should be in [3, 10] (Gopher): 1 inside, ``max(0, 1 - d / 3)``
       at distance d outside, 0 without any alphabetic word; 1 for mostly-CJK text;
    5. letters: the fraction of whitespace-separated tokens containing a letter (CJK
       counts), ``min(1, fraction / 0.8)`` (Gopher wants >= 80 %).

    Args:
        text: one document.
    Returns:
        the score, 0.0 (junk) to 1.0 (clean prose).
    """
    # Step 1: stripped = text.strip()，n = len(stripped)；n == 0 时 return 0.0；
    #         长度因子 f_len = min(1, len(split_words(stripped)) / 20)(按词计，一个汉字算一个词)
    stripped = text.strip()
    n = len(stripped)
    if n == 0:
        return 0.0
    f_len = min(1.0, len(split_words(stripped)) / 20)
    # Step 2: 杂乱符号因子：junk = 既不是 c.isalnum()、也不是 c.isspace()、也不在 COMMON_PUNCTUATION 中的字符个数，
    #         f_sym = max(0, 1 - (junk / n) / 0.25)
    junk = sum(1 for c in stripped if not (c.isalnum() or c.isspace() or c in COMMON_PUNCTUATION))
    f_sym = max(0.0, 1.0 - (junk / n) / 0.25)
    # Step 3: 重复行因子：lines = 去掉首尾空白后非空的行，dup = 1 - len(set(lines)) / len(lines)，
    #         f_lines = max(0, 1 - dup / 0.3)
    lines = [line.strip() for line in stripped.splitlines() if line.strip()]
    dup = 1.0 - len(set(lines)) / len(lines)
    f_lines = max(0.0, 1.0 - dup / 0.3)
    # Step 4: 词长因子：cjk = _CJK_CHAR 匹配到的字符数，letters = 所有 c.isalpha() 的字符数；cjk >= letters / 2 时(以中文为主)
    #         f_word = 1；否则取字母词 words = _ALPHA_WORD.findall(stripped)，没有词时 f_word = 0，
    #         有词时 m = 平均词长，3 <= m <= 10 时 f_word = 1，否则 d = 到区间 [3, 10] 的距离，f_word = max(0, 1 - d / 3)
    cjk = len(_CJK_CHAR.findall(stripped))
    letters = sum(1 for c in stripped if c.isalpha())
    if cjk >= letters / 2:
        f_word = 1.0
    else:
        words = _ALPHA_WORD.findall(stripped)
        mean = sum(map(len, words)) / len(words) if words else 0.0
        f_word = 0.0 if not words else max(0.0, 1.0 - max(3.0 - mean, mean - 10.0, 0.0) / 3.0)
    # Step 5: 含字母的 token 比例：tokens = stripped.split()，alpha = 含至少一个 c.isalpha() 字符的 token 数，
    #         f_alpha = min(1, (alpha / len(tokens)) / 0.8)
    tokens = stripped.split()
    alpha = sum(1 for token in tokens if any(c.isalpha() for c in token))
    f_alpha = min(1.0, (alpha / len(tokens)) / 0.8)
    # Step 6: return f_len * f_sym * f_lines * f_word * f_alpha(任何一项不合格都会把分数拉低)
    return f_len * f_sym * f_lines * f_word * f_alpha
