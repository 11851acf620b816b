"""Benchmark training throughput of the reference ``CausalLM`` against ``transformers.LlamaForCausalLM``.

Usage::

    python benchmarks/bench_train.py                       # fp32, ~5M-parameter model, batch 8 x 256
    python benchmarks/bench_train.py --precision both      # fp32 and bf16 (CPU autocast)
    python benchmarks/bench_train.py --hidden-size 512 --layers 8 --rounds 9

Both models are built in this one process from the same ``ModelConfig`` (the
Llama side through ``interop.hf.config_to_hf``, with ``attn_implementation="sdpa"``
as the reference model uses by default) and hold the same weights (copied with
``interop.hf.to_hf_state_dict``). They train on the same random token batch
(``--batch-size`` x ``--seq-len``, seeded), which is also its own target.

One training step is forward, loss, backward, optimiser step and
``zero_grad(set_to_none=True)``, each model with its own library's pieces:

- ``reference``: ``CausalLM(x).logits`` [b, s, V], then ``loss.cross_entropy_loss``
  against the shifted labels ``x[:, 1:]`` padded with -100 at the end (the way
  ``training.PretrainTrainer`` trains: labels already shifted, logits not sliced), and
  ``optimizer.AdamW``.
- ``ref+F.ce``: the same reference model and optimiser with the loss computed by torch's
  fused ``F.cross_entropy``, as Llama's loss is: the model-against-model comparison.
- ``Llama``: ``LlamaForCausalLM(input_ids=x, labels=x, use_cache=False).loss``, Hugging
  Face's internal loss, which shifts the labels the same way (pad with -100, then
  ``F.cross_entropy`` on float32 logits), and ``torch.optim.AdamW`` with its default
  CPU path (single-tensor, not foreach / fused).

Both losses are the same quantity, the mean over the b * (s - 1) next-token
predictions; each model pays for its own loss implementation (written-out
log-sum-exp vs torch's fused ``log_softmax`` + ``nll_loss``).

Both optimisers use the same lr / betas / eps / weight decay (0.01) on every
parameter. Before timing, the script checks that the two initial losses agree to
1e-4 (the comparison is apples to apples); after timing it prints both losses
again: same optimiser arithmetic on the same batch, so they should still agree closely.

Timing: ``--warmup`` untimed steps per model, then ``--rounds`` interleaved rounds
of ``--steps-per-round`` steps each (A B, then B A, ... so neither model always goes
first). A row reports the median over rounds of the time per step (robust to noise),
with the fastest and slowest round in the note; the goal line also gives the ratio of
the two fastest rounds. When the slowest round of a row is over 1.5x its fastest, the
script warns that the machine is busy: on a small shared machine a second process
slows torch's multi-threaded kernels several-fold, and no statistic rescues that run.

``--precision bf16`` runs forward and loss under ``torch.autocast("cpu",
dtype=torch.bfloat16)`` (weights, gradients and optimiser state stay float32; the
initial-loss check is fp32). Without native bf16 instructions (AVX512-BF16 / AMX)
bf16 matmuls are emulated and far slower than fp32 (the bf16 peak shows it): on an
AVX2-only CPU a bf16 step of the default model takes ~10x an fp32 one, so shrink the
model or ``--rounds`` there.

Rows:

- ``tokens/s`` = batch * seq_len / (median seconds per step).
- ``achieved GFLOP/s`` = training FLOPs per token * tokens/s, with the PaLM
  (Chowdhery et al., 2022, appendix B) / Chinchilla accounting::

      flops_per_token = 6 * N + 12 * L * d * s

  ``N`` = parameters outside the input embedding table (every matmul weight, the
  ``lm_head`` included, and the norm weights), 2 FLOPs per multiply-add in the
  forward and 4 in the backward; ``12 * L * d * s`` is attention's ``q @ k^T`` and
  ``weights @ v`` (``L`` layers, ``d = hidden_size``, ``s = seq_len``), counted for the
  full square although a causal mask makes half of it unnecessary. Element-wise work
  (norms, RoPE, softmax, the optimiser) is not counted.
- ``fraction of peak`` = achieved FLOP/s / the machine's measured matmul peak: the
  best time of ``torch.matmul(a, b.T)`` (``nn.Linear``'s layout) on two
  ``--matmul-size`` square matrices
  (``2 * n**3`` FLOPs) over ``--matmul-repeat`` runs (or ~5 s) before and as many after the
  training timing (a shared machine's speed drifts), float32 for fp32 rows and
  bfloat16 for bf16 rows.

Goal (issue 6): reference tokens/s at least as fast as Llama's (ratio >= 1.0).
Thread count is torch's default (printed); set ``OMP_NUM_THREADS`` to change it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from intro2llm.interop.hf import config_to_hf, to_hf_state_dict  # noqa: E402
from intro2llm.loss.cross_entropy import IGNORE_INDEX, cross_entropy_loss  # noqa: E402
from intro2llm.model.causal_lm import CausalLM  # noqa: E402
from intro2llm.model.config import ModelConfig  # noqa: E402
from intro2llm.optimizer.adamw import AdamW  # noqa: E402

LOSS_TOLERANCE = 1e-4
NOISY = 1.5  # slowest / fastest round above this: warn that the machine is busy


def matmul_peak(n: int, repeat: int, dtype: torch.dtype, budget_s: float = 5.0) -> float:
    """FLOP/s of the best of ``repeat`` products ``a @ b.T`` of n x n matrices (2 * n**3 FLOPs each).

    ``a @ b.T`` is ``nn.Linear``'s layout (``x @ W.T``); for bf16 on a CPU without native
    bf16 it is the layout oneDNN takes, while a plain ``a @ b`` falls to a ~5x slower kernel.

    Stops early (after at least one timed product) once ``budget_s`` seconds are spent,
    so an emulated dtype (bf16 without hardware support) cannot stall the benchmark.
    """
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(dtype)
    b = torch.randn(n, n, generator=gen).to(dtype)
    torch.matmul(a, b.T)  # warm-up: thread pool, allocator, packing buffers
    best, begin = float("inf"), time.perf_counter()
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        torch.matmul(a, b.T)
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() - begin > budget_s:
            break
    return 2 * n**3 / best


def flops_per_token(model: CausalLM, seq_len: int) -> tuple[int, int]:
    """(N, training FLOPs per token) with ``6 * N + 12 * L * d * s``; N excludes the input embedding."""
    cfg = model.config
    total = sum(p.numel() for p in model.parameters())  # a tied lm_head is the same Parameter, counted once
    n = total if cfg.tie_word_embeddings else total - model.embed_tokens.weight.numel()
    return n, 6 * n + 12 * cfg.num_hidden_layers * cfg.hidden_size * seq_len


def reference_loss(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``PretrainTrainer``'s loss: full logits vs labels already shifted (the last position ignored)."""
    logits = model(x).logits  # [b, s, V]
    labels = F.pad(x[:, 1:], (0, 1), value=IGNORE_INDEX)  # [b, s]: labels[:, i] = x[:, i + 1]
    return cross_entropy_loss(logits, labels)


def fused_loss(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The same loss through torch's fused ``F.cross_entropy`` (what Llama's loss uses inside)."""
    logits = model(x).logits  # [b, s, V]
    labels = F.pad(x[:, 1:], (0, 1), value=IGNORE_INDEX)
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX)


def llama_loss(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Hugging Face's own path: ``labels=x``, shifted inside the model (``ForCausalLMLoss``)."""
    return model(input_ids=x, labels=x, use_cache=False).loss


def make_step(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    precision: str,
) -> Callable[[], None]:
    """One full training step: forward + loss (under autocast for bf16), backward, step, zero_grad."""

    def step() -> None:
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        with ctx:
            loss = loss_fn(model, x)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


Models = dict[str, tuple[torch.nn.Module, Callable, torch.optim.Optimizer]]


def build_models(cfg: ModelConfig, seed: int, lr: float) -> Models:
    """Fresh reference and Llama models with identical weights, each with its own optimiser."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    ref = CausalLM(cfg).train()
    ref_fused = CausalLM(cfg).train()
    ref_fused.load_state_dict(ref.state_dict())
    llama = LlamaForCausalLM._from_config(LlamaConfig(**config_to_hf(cfg)), attn_implementation="sdpa")
    llama.load_state_dict(to_hf_state_dict(ref), strict=True)
    llama.train()
    hyper = dict(lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    return {
        "reference": (ref, reference_loss, AdamW(ref.parameters(), **hyper)),
        "ref+F.ce": (ref_fused, fused_loss, AdamW(ref_fused.parameters(), **hyper)),
        "Llama": (llama, llama_loss, torch.optim.AdamW(llama.parameters(), **hyper)),
    }


@torch.no_grad()
def losses(models: Models, x: torch.Tensor) -> dict[str, float]:
    """fp32 loss of every model on ``x`` (no grad)."""
    return {name: loss_fn(model, x).item() for name, (model, loss_fn, _) in models.items()}


def time_precision(
    args: argparse.Namespace, cfg: ModelConfig, x: torch.Tensor, precision: str
) -> tuple[dict[str, list[float]], dict[str, float], dict[str, float]]:
    """Interleaved timing of both models.

    Returns:
        (seconds per step of every round, by model; fp32 losses before; fp32 losses after).
    Raises:
        AssertionError: the two models' initial losses differ by more than ``LOSS_TOLERANCE``.
    """
    models = build_models(cfg, args.seed, args.lr)
    before = losses(models, x)
    diff = max(abs(before[name] - before["Llama"]) for name in before)
    if not diff <= LOSS_TOLERANCE:  # not `assert`: it must hold under python -O too
        raise AssertionError(f"initial losses differ by {diff:.2e} > {LOSS_TOLERANCE}: {before}")
    steps = {name: make_step(model, fn, opt, x, precision) for name, (model, fn, opt) in models.items()}
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    names = list(steps)
    per_step: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            for _ in range(args.steps_per_round):
                steps[name]()
            per_step[name].append((time.perf_counter() - start) / args.steps_per_round)
    after = losses(models, x)
    return per_step, before, after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4, help="num_hidden_layers")
    parser.add_argument("--heads", type=int, default=8, help="num_attention_heads")
    parser.add_argument("--kv-heads", type=int, default=4, help="num_key_value_heads (GQA)")
    parser.add_argument("--intermediate-size", type=int, default=688, help="SwiGLU width (~8/3 * hidden)")
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--tie-embeddings", action="store_true", help="tie lm_head to the input embedding")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--precision", choices=("fp32", "bf16", "both"), default="fp32",
                        help="bf16 = CPU autocast of forward + loss")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (median reported)")
    parser.add_argument("--steps-per-round", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--matmul-size", type=int, default=2048, help="n of the n x n matmul peak probe")
    parser.add_argument("--matmul-repeat", type=int, default=10, help="best of N matmuls (at most ~5 s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import transformers

    cfg = ModelConfig(
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        intermediate_size=args.intermediate_size,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=max(args.seq_len, 256),
        tie_word_embeddings=args.tie_embeddings,
    )
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randint(0, cfg.vocab_size, (args.batch_size, args.seq_len), generator=gen)
    tokens = args.batch_size * args.seq_len
    n_params, fpt = flops_per_token(CausalLM(cfg), args.seq_len)
    precisions = ("fp32", "bf16") if args.precision == "both" else (args.precision,)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}

    t0 = time.perf_counter()
    peaks = {p: matmul_peak(args.matmul_size, args.matmul_repeat, dtypes[p]) for p in precisions}
    results = {p: time_precision(args, cfg, x, p) for p in precisions}
    # Probe the peak again after the timing: on a shared machine the best of both probes is the fairer peak.
    for p in precisions:
        peaks[p] = max(peaks[p], matmul_peak(args.matmul_size, args.matmul_repeat, dtypes[p]))
    elapsed = time.perf_counter() - t0

    rows: list[tuple[str, ...]] = []
    checks: list[str] = []
    goals: list[str] = []
    done = args.warmup + args.rounds * args.steps_per_round
    for p, (per_step, before, after) in results.items():
        tps = {}
        for name, times in per_step.items():
            med = statistics.median(times)
            tps[name] = tokens / med
            achieved = fpt * tps[name]
            spread = f"rounds {min(times) * 1e3:.1f}-{max(times) * 1e3:.1f} ms/step"
            rows.append((name, p, f"{tps[name]:,.0f}", f"{med * 1e3:.1f}", f"{achieved / 1e9:.1f}",
                         f"{achieved / peaks[p]:.1%}", spread))
        for name, what in (("ref+F.ce", "the models (same fused loss)"),
                           ("reference", "end to end (lesson-07 written-out loss vs Llama's fused loss)")):
            ratio = tps[name] / tps["Llama"]
            best = min(per_step["Llama"]) / min(per_step[name])
            goals.append(f"{p}: {name} / Llama = {ratio:.2f}, {what} (goal >= 1.0) "
                         f"{'PASS' if ratio >= 1.0 else 'FAIL'}   [fastest rounds: {best:.2f}]")
        diff = abs(before["reference"] - before["Llama"])
        checks.append(f"{p}: fp32 loss before training: reference {before['reference']:.6f}, "
                      f"Llama {before['Llama']:.6f} (|diff| {diff:.1e} <= {LOSS_TOLERANCE}); after {done} steps: "
                      f"{after['reference']:.6f} vs {after['Llama']:.6f}")

    tied = ", tied embeddings" if cfg.tie_word_embeddings else ""
    out = [
        f"Training benchmark: torch {torch.__version__}, transformers {transformers.__version__}, "
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"torch.get_num_threads() = {torch.get_num_threads()}",
        f"model: hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers, {cfg.num_attention_heads} heads / "
        f"{cfg.num_key_value_heads} kv heads, intermediate {cfg.intermediate_size}, vocab {cfg.vocab_size}"
        f"{tied}; batch {args.batch_size} x seq {args.seq_len} = {tokens} tokens/step",
        f"FLOPs/token = 6 * N + 12 * L * d * s = 6 * {n_params:,} + 12 * {cfg.num_hidden_layers} * "
        f"{cfg.hidden_size} * {args.seq_len} = {fpt / 1e6:.1f} MFLOP",
    ]
    out += [f"matmul peak ({p}, a @ b.T, n = {args.matmul_size}, best of up to {args.matmul_repeat} before + "
            f"{args.matmul_repeat} after the timing): {peaks[p] / 1e9:.1f} GFLOP/s" for p in precisions]
    out.append(f"timing: {args.warmup} warm-up steps per model, then the median of {args.rounds} "
               f"interleaved rounds x {args.steps_per_round} steps")
    cols = ("model", "precision", "tokens/s", "ms/step", "achieved GFLOP/s", "fraction of matmul peak", "note")
    widths = (10, 9, 9, 8, 16, 23)

    def fmt(row: tuple[str, ...]) -> str:
        cells = [f"{c:<{w}}" if i < 2 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(row, widths, strict=False))]
        return "  ".join(cells) + "  " + row[-1]

    out += ["", fmt(cols)] + [fmt(row) for row in rows]
    out += [""] + checks + goals
    noisy = [f"{name} {p}" for p, (per_step, _, _) in results.items() for name, times in per_step.items()
             if max(times) > NOISY * min(times)]
    if noisy:
        out.append(f"warning: rounds differ by more than {NOISY}x ({', '.join(noisy)}): the machine is busy, "
                   "the ratio is unreliable; rerun when idle or with more --rounds")
    out.append(f"(benchmark time {elapsed:.1f} s)")
    print("\n".join(out))


if __name__ == "__main__":
    main()
