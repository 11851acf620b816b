"""Benchmark the reference BPE trainers and encoders against `tokenizers` and a naive trainer.

Usage::

    python benchmarks/bench_bpe.py                   # ~1 MB corpus, vocab 2000
    python benchmarks/bench_bpe.py --size-mb 2 --vocab-size 4000

The corpus is generated here, deterministically (seeded), with no downloads:
lines of English and Chinese sentences whose words follow a Zipf-like law
(weight of the word of rank r ~ 1 / r**1.1), with punctuation and numbers.

Rows (all in this one process, wall-clock seconds on this machine; fast rows are
the best of ``--repeat`` runs):

- ``BPETokenizer.train`` and ``ByteLevelTokenizer.train``: the reference
  incremental trainers on the full corpus.
- ``tokenizers`` BpeTrainer with the ByteLevel pre-tokenizer (Rust, multi-threaded).
- a naive trainer that recounts every pair of the corpus after each merge
  (same tie rule). It is far too slow for the full corpus, so it runs to the full
  vocabulary on a subset (``--naive-mb``) next to ``ByteLevelTokenizer.train`` on
  the same subset (a measured ratio), and its full-corpus time is extrapolated
  from the first ``--naive-probe-merges`` merges (per-merge cost x merges).

Goals: ``ByteLevelTokenizer.train`` within 5x of ``tokenizers``; at least 10x
faster than the naive trainer. Encoding throughput is reported in MB/s of UTF-8
input.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from intro2llm.tokenizer import DEFAULT_SPECIAL_TOKENS, BPETokenizer, ByteLevelTokenizer  # noqa: E402
from intro2llm.tokenizer.bpe_tokenizer import merge_pair  # noqa: E402

# ----- corpus --------------------------------------------------------------------------------

_EN_COMMON = """the of and to a in is that for it as was with be by on not he this are or his from at which
but have an they you were her she there one all we can their has been if more when will would who so no what
up out about into than them only some could time like other new also these two may first then do any my now
such people over its just where most know years very way made many after should long well because day each
back even good make world life work model data language learning system state school city water house night
small large great little right old big high different following important public able book group problem fact
""".split()
_EN_SYLLABLES = "ka lo mi ne ra ti su ve on ex pre con ing er tion al ly ment able un re de in st tr pl gra pho log".split()
_ZH_COMMON = """我们 他们 中国 时间 因为 所以 但是 可以 没有 自己 这个 一个 什么 知道 现在 已经 问题 工作 学习 生活 发展
经济 社会 国家 世界 研究 技术 数据 模型 语言 学生 老师 朋友 今天 明天 昨天 城市 北京 上海 公司 市场 政府 历史 文化 科学
计算机 人工智能 网络 系统 方法 结果 重要 非常 可能 需要 开始 进行 通过 使用 表示 认为 觉得 喜欢 希望 应该 能够 一起 如果
虽然 而且 或者 然后 这样 那么 还是 就是 不是 我 你 他 她 的 了 是 在 有 和 也 都 很 就 说 要 去 来 看 想 做 会 能 好 大 小
多 少 新 老 天 年 人 事 地 水 山 书 车 家 路""".split()
_ZH_CHARS = (
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好"
    "都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此"
    "实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真"
    "听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路"
)


def _zipf_sampler(words: list[str], rng: random.Random, exponent: float = 1.1) -> Callable[[int], list[str]]:
    """A function k -> k words drawn with weight 1 / rank**exponent."""
    cum, total = [], 0.0
    for rank in range(1, len(words) + 1):
        total += 1.0 / rank**exponent
        cum.append(total)
    return lambda k: rng.choices(words, cum_weights=cum, k=k)


def make_corpus(size_mb: float, seed: int = 0) -> list[str]:
    """Deterministic lines of mixed English / Chinese text, about ``size_mb`` * 10**6 UTF-8 bytes."""
    rng = random.Random(seed)
    en_words = list(dict.fromkeys(_EN_COMMON))
    while len(en_words) < 4000:
        word = "".join(rng.choice(_EN_SYLLABLES) for _ in range(rng.randint(1, 3)))
        if word not in en_words:
            en_words.append(word)
    zh_words = list(dict.fromkeys(_ZH_COMMON))
    chars = list(dict.fromkeys(_ZH_CHARS))
    seen = set(zh_words)
    while len(zh_words) < 4000:
        word = "".join(rng.choice(chars) for _ in range(rng.choice((1, 2, 2, 2, 3))))
        if word not in seen:
            seen.add(word)
            zh_words.append(word)
    rng.shuffle(en_words[len(_EN_COMMON):])
    en, zh = _zipf_sampler(en_words, rng), _zipf_sampler(zh_words, rng)

    def english() -> str:
        words = en(rng.randint(5, 18))
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), str(rng.choice((rng.randint(0, 99), rng.randint(1900, 2030)))))
        if rng.random() < 0.3:
            words[rng.randrange(len(words))] += ","
        return " ".join(words).capitalize() + rng.choice(".....?!")

    def chinese() -> str:
        words = zh(rng.randint(5, 18))
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), str(rng.randint(1, 2030)))
        if rng.random() < 0.5:
            words.insert(rng.randrange(1, len(words)), "，")
        return "".join(words) + rng.choice("。。。。？！")

    lines, size, target = [], 0, int(size_mb * 1_000_000)
    while size < target:
        if rng.random() < 0.5:
            line = " ".join(english() for _ in range(rng.randint(1, 4)))
        else:
            line = "".join(chinese() for _ in range(rng.randint(1, 4)))
        lines.append(line + "\n")
        size += len(line.encode("utf-8")) + 1
    return lines


# ----- the naive trainer (recount everything after each merge) ----------------------------------


def naive_train(words: Counter[str], alphabet: list[str], vocab_size: int, max_merges: int | None = None) -> list:
    """Recount all pairs after every merge; same tie rule and stopping rule as the reference."""
    vocab = set(DEFAULT_SPECIAL_TOKENS) | set(alphabet)
    corpus = {tuple(word): freq for word, freq in words.items()}
    merges: list[tuple[str, str]] = []
    while len(vocab) < vocab_size and (max_merges is None or len(merges) < max_merges):
        counts: Counter[tuple[str, str]] = Counter()
        for word, freq in corpus.items():
            for pair in zip(word, word[1:], strict=False):
                counts[pair] += freq
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        vocab.add(best[0] + best[1])
        corpus = {merge_pair(word, best): freq for word, freq in corpus.items()}
    return merges


# ----- helpers ---------------------------------------------------------------------------------


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    """Best wall-clock time of ``repeat`` runs, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=1.0, help="corpus size in MB (10**6 UTF-8 bytes)")
    parser.add_argument("--vocab-size", type=int, default=2000, help="target vocabulary size")
    parser.add_argument("--naive-mb", type=float, default=0.05, help="subset the naive trainer runs on fully")
    parser.add_argument("--naive-probe-merges", type=int, default=20, help="merges timed for the extrapolation")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs for the fast rows")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    lines = make_corpus(args.size_mb, args.seed)
    text = "".join(lines)
    mb = len(text.encode("utf-8")) / 1e6
    vocab_size = args.vocab_size
    rows: list[tuple[str, str, str, str]] = []  # name, seconds, extra, note

    # Training on the full corpus.
    rep = max(args.repeat, 1)
    t_bpe, bpe = timed(lambda: BPETokenizer().train(lines, vocab_size), rep)
    t_byte, byte = timed(lambda: ByteLevelTokenizer().train(lines, vocab_size), rep)

    def hf_train() -> Tokenizer:
        tk = Tokenizer(models.BPE())
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(DEFAULT_SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tk.train_from_iterator(lines, trainer)
        return tk

    t_hf, hf = timed(hf_train, rep)
    rows.append(("BPETokenizer.train (reference, char-level)", f"{t_bpe:.2f}", f"vocab {bpe.vocab_size}", ""))
    rows.append(("ByteLevelTokenizer.train (reference)", f"{t_byte:.2f}", f"vocab {byte.vocab_size}", ""))
    rows.append(("tokenizers BpeTrainer + ByteLevel", f"{t_hf:.2f}", f"vocab {hf.get_vocab_size()}",
                 f"Rust, {os.cpu_count()} CPU threads"))

    # Naive trainer: full run on a subset (measured), extrapolation to the full corpus.
    subset, size = [], 0
    for line in lines:
        if size >= args.naive_mb * 1e6:
            break
        subset.append(line)
        size += len(line.encode("utf-8"))
    probe = ByteLevelTokenizer()
    sub_words: Counter[str] = Counter()
    for line in subset:
        sub_words.update(probe.pre_tokenize(line))
    alphabet = probe.initial_alphabet(sub_words)
    t_naive_sub, naive_merges = timed(lambda: naive_train(sub_words, alphabet, vocab_size))
    t_byte_sub, byte_sub = timed(lambda: ByteLevelTokenizer().train(subset, vocab_size), rep)
    same = "same merges" if byte_sub.merges == naive_merges else "MERGES DIFFER"
    rows.append((f"naive recount trainer, {size / 1e6:.2f} MB subset", f"{t_naive_sub:.2f}",
                 f"{len(naive_merges)} merges", f"measured; {same} as reference"))
    rows.append((f"ByteLevelTokenizer.train, {size / 1e6:.2f} MB subset", f"{t_byte_sub:.3f}",
                 f"{len(byte_sub.merges)} merges", ""))
    full_words: Counter[str] = Counter()
    for line in lines:
        full_words.update(probe.pre_tokenize(line))
    k = args.naive_probe_merges
    t_probe, _ = timed(lambda: naive_train(full_words, alphabet, vocab_size, max_merges=k))
    n_merges = len(byte.merges)
    t_naive_full = t_probe / k * n_merges
    rows.append((f"naive recount trainer, full {mb:.2f} MB", f"~{t_naive_full:.0f}", f"{n_merges} merges",
                 f"extrapolated: {t_probe:.2f} s for first {k} merges x {n_merges / k:.0f} (upper estimate)"))

    # Encoding throughput.
    hf_ours = Tokenizer(models.BPE(vocab=byte.vocab, merges=byte.merges))
    hf_ours.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    enc_rows = []
    def cold_encode(tok: BPETokenizer) -> list[int]:
        tok._cache.clear()  # time BPE on every distinct word, not cache look-ups
        return tok.encode(text)

    for name, tok in (("BPETokenizer.encode", bpe), ("ByteLevelTokenizer.encode", byte)):
        t_enc, ids = timed(lambda tok=tok: cold_encode(tok), rep)
        enc_rows.append((f"{name} (cold cache)", f"{t_enc:.2f}", f"{mb / t_enc:.2f} MB/s", f"{len(ids)} tokens"))
    t_enc, hf_ids = timed(lambda: hf_ours.encode(text).ids, rep)
    enc_rows.append(("tokenizers encode (one string)", f"{t_enc:.2f}", f"{mb / t_enc:.2f} MB/s", f"{len(hf_ids)} tokens"))
    t_enc, batch = timed(lambda: hf_ours.encode_batch(lines), rep)
    enc_rows.append(("tokenizers encode_batch (lines)", f"{t_enc:.2f}", f"{mb / t_enc:.2f} MB/s",
                     f"{sum(len(e.ids) for e in batch)} tokens, multi-threaded"))
    parity = "identical" if byte.encode(text) == hf_ids else "DIFFERENT"

    ratio_hf = t_byte / t_hf
    ratio_bpe_hf = t_bpe / t_hf
    ratio_naive_sub = t_naive_sub / t_byte_sub
    ratio_naive_full = t_naive_full / t_byte
    goals = [
        ("ByteLevelTokenizer.train / tokenizers", f"{ratio_hf:.1f}x", "<= 5x", "PASS" if ratio_hf <= 5 else "FAIL"),
        ("BPETokenizer.train / tokenizers", f"{ratio_bpe_hf:.1f}x", "<= 5x", "PASS" if ratio_bpe_hf <= 5 else "FAIL"),
        ("naive / ByteLevelTokenizer.train (subset, measured)", f"{ratio_naive_sub:.0f}x", ">= 10x",
         "PASS" if ratio_naive_sub >= 10 else "FAIL"),
        ("naive / ByteLevelTokenizer.train (full, extrapolated)", f"{ratio_naive_full:.0f}x", ">= 10x",
         "PASS" if ratio_naive_full >= 10 else "FAIL"),
    ]

    header = (f"BPE benchmark: corpus {mb:.2f} MB ({len(lines)} lines, seed {args.seed}), "
              f"vocab_size {vocab_size}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    widths = (56, 9, 16, 0)
    out = [header, "", f"{'training':<{widths[0]}} {'seconds':>{widths[1]}}  {'result':<{widths[2]}} note"]
    out += [f"{a:<{widths[0]}} {b:>{widths[1]}}  {c:<{widths[2]}} {d}" for a, b, c, d in rows]
    out += ["", f"{'encoding (full corpus)':<{widths[0]}} {'seconds':>{widths[1]}}  {'throughput':<{widths[2]}} note"]
    out += [f"{a:<{widths[0]}} {b:>{widths[1]}}  {c:<{widths[2]}} {d}" for a, b, c, d in enc_rows]
    out += [f"{'ByteLevelTokenizer ids vs tokenizers (same vocab/merges)':<{widths[0]}} "
            f"{'':>{widths[1]}}  {parity}"]
    out += ["", f"{'goal':<{widths[0]}} {'ratio':>{widths[1]}}  {'target':<{widths[2]}} result"]
    out += [f"{a:<{widths[0]}} {b:>{widths[1]}}  {c:<{widths[2]}} {d}" for a, b, c, d in goals]
    print("\n".join(out))


if __name__ == "__main__":
    main()
