"""One training run, inside the process that trains (the CLI itself, or each torchrun worker).

``run(spec)`` builds every component from the composed ``my_llm`` package (the
learner's code, filled from the reference where allowed), trains, writes the run
folder and returns a summary. It knows nothing about typer or progress files; the
``train`` command prepares the spec, and records and prints the summary.

Run folder (``outputs/<stage>/<run-id>/``)::

    code/my_llm/          the exact code that trained (composed, see ``train.code``)
    run.toml              resolved settings, code hash, lessons used, parts filled
    metrics.jsonl         one JSON object per logged step / evaluation
    checkpoint-<step>/    safetensors + JSON, for --resume
    final_model/          config.json + model.safetensors + tokenizer.json (Hugging Face layout)
    loss_curve.png        the training (and evaluation) loss
    summary.json          what the run reports at the end
"""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CourseError
from .config import RunConfig

SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss_curve.png"
FINAL_MODEL = "final_model"


@dataclass
class RunSpec:
    """Everything the training process needs (JSON, so torchrun workers can read it)."""

    config: dict[str, Any]
    run_dir: str
    code_root: str
    tokenizer_cache: str
    resume: str | None = None
    lang: str = "zh"
    plain_output: bool = False

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> RunSpec:
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


@dataclass
class Summary:
    stage: str
    run_dir: str
    steps: int
    seconds: float
    final_loss: float | None = None
    eval_loss: float | None = None
    unigram_loss: float | None = None
    tokens_seen: int = 0
    interrupted: bool = False
    resume_from: str | None = None
    final_model: str | None = None
    exact_match_before: dict[str, Any] | None = None
    exact_match_after: dict[str, Any] | None = None
    preference_before: dict[str, Any] | None = None
    preference_after: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


class StopRequested(Exception):
    """Raised at a step boundary after Ctrl-C, so the checkpoint holds a whole step."""


class InterruptGuard:
    """First Ctrl-C: finish the current optimiser step, then stop with a checkpoint. Second: abort.

    The trainer is left untouched: ``next_batch`` is wrapped, and at the first
    micro-batch of a step (every ``grad_accum`` calls) the wrapper checks the flag —
    agreed across processes, so every rank stops at the same step.
    """

    def __init__(self, trainer: Any, grad_accum: int) -> None:
        self.requested = False
        self.trainer = trainer
        self.grad_accum = grad_accum
        self.calls = 0
        self.original_next_batch = trainer.next_batch
        self.previous_handler: Any = None

    def __enter__(self) -> InterruptGuard:
        self.previous_handler = signal.signal(signal.SIGINT, self._on_sigint)
        self.trainer.next_batch = self._next_batch
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self.previous_handler)
        del self.trainer.next_batch  # the class's method again

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def _next_batch(self) -> Any:
        if self.calls % self.grad_accum == 0 and self._stop_agreed():
            raise StopRequested
        self.calls += 1
        return self.original_next_batch()

    def _stop_agreed(self) -> bool:
        from intro2llm.training import distributed

        return distributed.reduce_sum(1.0 if self.requested else 0.0) > 0


def run(spec: RunSpec, view_factory: Callable[..., Any] | None = None) -> Summary:
    """Train as ``spec`` says; write the run folder; return the summary (rank 0 writes it to disk)."""
    import torch

    from intro2llm.training import distributed

    from .. import targets

    config = RunConfig.model_validate(spec.config)
    run_dir = Path(spec.run_dir)
    device = distributed.init_distributed(config.device)
    targets.activate_root(Path(spec.code_root), key=f"run:{spec.code_root}")
    main = distributed.is_main_process()
    torch.manual_seed(config.seed)

    parts = _components()
    tokenizer = _tokenizer(config, spec, parts)
    model = _model(config, tokenizer, parts)
    train_set, eval_set, records_heldout = _datasets(config, tokenizer, parts)
    pairs_heldout = _heldout_pairs(config, tokenizer, parts) if config.stage == "dpo" else None

    from ..views.training import make_view
    from .metrics import MetricsWriter

    metrics = MetricsWriter(run_dir / METRICS_FILE, enabled=main)
    view = (view_factory or make_view)(config, spec.lang, plain=spec.plain_output, enabled=main)
    args = parts.TrainingArguments(
        output_dir=str(run_dir), max_steps=config.max_steps, per_device_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, learning_rate=config.learning_rate,
        weight_decay=config.weight_decay, warmup_steps=config.warmup_steps,
        max_grad_norm=config.max_grad_norm, precision=config.precision,
        eval_every=config.eval_every if eval_set is not None else 0, save_every=config.save_every,
        log_every=config.log_every, seed=config.seed, device=str(device),
    )
    if config.stage == "dpo":
        eval_set = pairs_heldout  # evaluation loss = the DPO loss on held-out pairs
        args.eval_every = config.eval_every if eval_set is not None else 0
    trainer = _trainer(config, parts, model, args, train_set, eval_set, callbacks=[metrics, view])
    summary = Summary(stage=config.stage, run_dir=str(run_dir), steps=0, seconds=0.0)
    if config.stage == "pretrain":
        summary.unigram_loss = unigram_loss(train_set, tokenizer.vocab_size)
    if main and spec.resume is None and (records_heldout or pairs_heldout):
        view.message("eval_before")
        summary.exact_match_before = _exact_match(parts, model, tokenizer, records_heldout, config)
        summary.preference_before = _preference(parts, trainer, pairs_heldout, config)

    start = time.perf_counter()
    if spec.resume:
        metrics.rewrite(_checkpoint_history(Path(spec.resume)))
    try:
        with view, InterruptGuard(trainer, config.grad_accum):
            trainer.train(resume_from=spec.resume)
    except StopRequested:
        checkpoint = trainer.save_checkpoint()
        summary.interrupted = True
        summary.resume_from = str(checkpoint)
    except FloatingPointError as error:
        from .diagnose import explain_nonfinite

        raise CourseError("train.nonfinite", error=str(error),
                          suspect=explain_nonfinite(trainer.model)) from error
    summary.seconds = time.perf_counter() - start
    summary.steps = trainer.step
    history = trainer.log_history
    losses = [m["loss"] for m in history if "loss" in m]
    evals = [m["eval_loss"] for m in history if "eval_loss" in m]
    summary.final_loss = losses[-1] if losses else None
    summary.eval_loss = evals[-1] if evals else None
    summary.tokens_seen = trainer.step * config.batch_size * config.grad_accum * config.seq_len * trainer.world_size

    if not summary.interrupted and main:
        final = run_dir / FINAL_MODEL
        parts.save_hf(trainer.model, final)
        tokenizer.save(final)
        summary.final_model = str(final)
        if records_heldout or pairs_heldout:
            view.message("eval_after")
            summary.exact_match_after = _exact_match(parts, trainer.model, tokenizer, records_heldout, config)
            summary.preference_after = _preference(parts, trainer, pairs_heldout, config)
    if main:
        from .plot import write_loss_png

        write_loss_png(history, run_dir / PLOT_FILE)
        (run_dir / SUMMARY_FILE).write_text(json.dumps(asdict(summary), indent=2), encoding="utf-8")
    distributed.barrier()
    return summary


# ----- components from my_llm ------------------------------------------------------------------


class _Parts:
    """The learner's (composed) modules, imported once by name."""

    def __init__(self) -> None:
        from my_llm.data import builtin, readers  # type: ignore[import-not-found]
        from my_llm.data.pretrain_dataset import PretrainDataset  # type: ignore[import-not-found]
        from my_llm.data.sft_dataset import CHAT_SPECIAL_TOKENS, SFTDataset  # type: ignore[import-not-found]
        from my_llm.interop.hf import load_hf, save_hf  # type: ignore[import-not-found]
        from my_llm.model.causal_lm import CausalLM  # type: ignore[import-not-found]
        from my_llm.model.config import ModelConfig  # type: ignore[import-not-found]
        from my_llm.tokenizer import DEFAULT_SPECIAL_TOKENS, BaseTokenizer, ByteLevelTokenizer  # type: ignore[import-not-found]
        from my_llm.training.pretrain_trainer import PretrainTrainer  # type: ignore[import-not-found]
        from my_llm.training.sft_trainer import SFTTrainer, exact_match_accuracy  # type: ignore[import-not-found]
        from my_llm.training.trainer import TrainingArguments  # type: ignore[import-not-found]

        self.builtin, self.readers = builtin, readers
        self.PretrainDataset, self.SFTDataset, self.CHAT_SPECIAL_TOKENS = PretrainDataset, SFTDataset, CHAT_SPECIAL_TOKENS
        self.load_hf, self.save_hf = load_hf, save_hf
        self.CausalLM, self.ModelConfig = CausalLM, ModelConfig
        self.DEFAULT_SPECIAL_TOKENS, self.BaseTokenizer, self.ByteLevelTokenizer = (
            DEFAULT_SPECIAL_TOKENS, BaseTokenizer, ByteLevelTokenizer)
        self.PretrainTrainer, self.SFTTrainer, self.exact_match_accuracy = PretrainTrainer, SFTTrainer, exact_match_accuracy
        self.TrainingArguments = TrainingArguments

    @staticmethod
    def dpo() -> Any:
        """Lesson 08's modules, imported only for ``train dpo``."""
        from types import SimpleNamespace

        from my_llm.data.dpo_dataset import DPODataset  # type: ignore[import-not-found]
        from my_llm.training.dpo_trainer import DPOTrainer, preference_accuracy  # type: ignore[import-not-found]

        return SimpleNamespace(DPODataset=DPODataset, DPOTrainer=DPOTrainer, preference_accuracy=preference_accuracy)


def _trainer(config: RunConfig, parts: _Parts, model: Any, args: Any, train_set: Any, eval_set: Any,
             callbacks: list[Any]) -> Any:
    if config.stage == "dpo":
        dpo_trainer = parts.dpo().DPOTrainer
        return dpo_trainer(model, args, train_set, eval_dataset=eval_set, beta=config.beta,
                           loss_type=config.loss_type, label_smoothing=config.label_smoothing,
                           precompute_ref_logps=config.precompute_ref_logps, callbacks=callbacks)
    trainer_class = parts.SFTTrainer if config.stage == "sft" else parts.PretrainTrainer
    return trainer_class(model, args, train_set, eval_dataset=eval_set, callbacks=callbacks)


def _components() -> _Parts:
    try:
        return _Parts()
    except NotImplementedError as error:
        raise CourseError("train.stub_at_import", error=str(error)) from error


def _pretrain_texts(config: RunConfig, parts: _Parts) -> list[str]:
    if config.data:
        return [text for path in config.data for text in _read(parts.readers.read_pretrain_file, path)]
    return parts.builtin.pretrain_corpus(num_bytes=config.corpus_bytes, seed=config.seed)


def _read(reader: Callable[[str], list[Any]], path: str) -> list[Any]:
    try:
        return reader(path)
    except FileNotFoundError as error:
        raise CourseError("train.data_missing", file=path) from error
    except ValueError as error:  # readers.DataFormatError: "path:line: what; how to fix"
        raise CourseError("train.data_bad", problem=str(error)) from error


def _tokenizer(config: RunConfig, spec: RunSpec, parts: _Parts) -> Any:
    if config.model_path:
        return load_saved_tokenizer(Path(config.model_path), parts)
    from .tokenizer_cache import cached_tokenizer

    texts = _pretrain_texts(config, parts) if config.stage == "pretrain" else _sft_tokenizer_texts(config, parts)
    return cached_tokenizer(parts, texts, config, Path(spec.code_root), Path(spec.tokenizer_cache))


def _sft_tokenizer_texts(config: RunConfig, parts: _Parts) -> list[str]:
    records = _sft_records(config, parts)
    from my_llm.data.sft_dataset import format_prompt  # type: ignore[import-not-found]

    return [format_prompt(r) + r["output"] for r in records]


def _preference_records(config: RunConfig, parts: _Parts, split: str = "train") -> list[dict[str, str]]:
    if config.data and split == "train":
        return [r for path in config.data for r in _read(parts.readers.read_dpo_file, path)]
    return parts.builtin.preference_records(seed=config.seed, split=split)


def _heldout_pairs(config: RunConfig, tokenizer: Any, parts: _Parts) -> Any:
    if not config.eval_pairs or config.data:
        return None
    records = _preference_records(config, parts, split="heldout")[: config.eval_pairs]
    return parts.dpo().DPODataset(records, tokenizer, max_length=config.seq_len)


def _sft_records(config: RunConfig, parts: _Parts) -> list[dict[str, str]]:
    if config.data:
        return [r for path in config.data for r in _read(parts.readers.read_sft_file, path)]
    return parts.builtin.instruction_records(seed=config.seed, split="train")


def load_saved_tokenizer(model_path: Path, parts: Any) -> Any:
    """The tokenizer saved next to a model; a clear error when the folder is not a saved model."""
    check_model_dir(model_path)
    return parts.BaseTokenizer.load(model_path)


def check_model_dir(model_path: Path) -> None:
    """Raise ``train.not_a_model`` unless ``model_path`` holds config.json, weights and tokenizer.json."""
    needed = ("config.json", "model.safetensors", "tokenizer.json")
    missing = [name for name in needed if not (model_path / name).is_file()]
    if missing:
        raise CourseError("train.not_a_model", path=model_path, missing=", ".join(missing))


def _model(config: RunConfig, tokenizer: Any, parts: _Parts) -> Any:
    if config.model_path:
        model = parts.load_hf(config.model_path)
        if model.config.vocab_size != tokenizer.vocab_size:
            raise CourseError("train.vocab_mismatch", path=config.model_path,
                              model=model.config.vocab_size, tokenizer=tokenizer.vocab_size)
        return model.train()
    model_config = parts.ModelConfig(
        vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        **config.model.model_dump(),
    )
    return parts.CausalLM(model_config)


def _datasets(config: RunConfig, tokenizer: Any, parts: _Parts) -> tuple[Any, Any, list[dict[str, str]]]:
    from torch.utils.data import Subset

    if config.stage == "pretrain":
        data = parts.PretrainDataset(_pretrain_texts(config, parts), tokenizer, block_size=config.seq_len)
        n_eval = int(len(data) * config.eval_fraction)
        if len(data) - n_eval < config.batch_size:
            raise CourseError("train.too_little_data", blocks=len(data), batch=config.batch_size,
                              seq_len=config.seq_len)
        # A fixed split by position: the last blocks are held out (never trained on).
        train = Subset(data, list(range(len(data) - n_eval)))
        evaluation = Subset(data, list(range(len(data) - n_eval, len(data)))) if n_eval else None
        return train, evaluation, []
    heldout: list[dict[str, str]] = []
    if not config.data and config.eval_tasks:
        heldout = parts.builtin.instruction_records(seed=config.seed, split="heldout")[: config.eval_tasks]
    if config.stage == "dpo":
        dpo = parts.dpo()
        pairs = dpo.DPODataset(_preference_records(config, parts), tokenizer, max_length=config.seq_len)
        return pairs, None, heldout
    records = _sft_records(config, parts)
    train = parts.SFTDataset(records, tokenizer, max_length=config.seq_len)
    evaluation = None
    if not config.data:
        heldout = parts.builtin.instruction_records(seed=config.seed, split="heldout")[: config.eval_tasks or None]
        if heldout:
            evaluation = parts.SFTDataset(heldout, tokenizer, max_length=config.seq_len)
    return train, evaluation, heldout


def _exact_match(parts: _Parts, model: Any, tokenizer: Any, records: list[dict[str, str]],
                 config: RunConfig) -> dict[str, Any] | None:
    if not records:
        return None
    result = parts.exact_match_accuracy(model, tokenizer, records, max_new_tokens=config.max_new_tokens)
    return {"accuracy": result["accuracy"], "correct": result["correct"], "total": result["total"]}


def _preference(parts: _Parts, trainer: Any, pairs: Any, config: RunConfig) -> dict[str, Any] | None:
    """Held-out pairs: ``dpo_trainer.preference_accuracy`` of the policy against the frozen reference."""
    if pairs is None or len(pairs) == 0:
        return None
    return parts.dpo().preference_accuracy(trainer.model, trainer.ref_model, pairs,
                                           batch_size=config.batch_size, beta=config.beta)


def _checkpoint_history(checkpoint: Path) -> list[dict[str, Any]]:
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return list(state.get("log_history", []))


def unigram_loss(dataset: Any, vocab_size: int) -> float:
    """Cross-entropy (nats/token) of the best context-free guess: the labels' own unigram frequencies.

    A model that learned nothing about context cannot beat this; the gap below it is what
    attention and depth bought.
    """
    import torch

    counts = torch.zeros(vocab_size, dtype=torch.float64)
    for i in range(len(dataset)):
        labels = dataset[i]["labels"]
        labels = labels[labels >= 0]
        counts += torch.bincount(labels, minlength=vocab_size).to(torch.float64)
    total = counts.sum()
    if total == 0:
        return math.nan
    p = counts[counts > 0] / total
    return float(-(p * p.log()).sum())
