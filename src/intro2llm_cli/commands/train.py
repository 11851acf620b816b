from __future__ import annotations

from pathlib import Path

import typer

from .context import options


def train(
    stage: str = typer.Argument(..., help="pretrain | sft | dpo"),
    preset: str = typer.Option("default", "--preset", help="default (a few minutes on a CPU) | smoke (seconds)"),
    config: Path = typer.Option(None, "--config", help="a TOML file of settings (the names of run.toml)"),
    model_path: str = typer.Option(None, "--model-path",
                                   help="start from a saved model (sft: outputs/pretrain/final_model, dpo: outputs/sft/final_model)"),
    beta: float = typer.Option(None, "--beta", help="dpo: KL strength (default 0.1)"),
    loss_type: str = typer.Option(None, "--loss-type", help="dpo: sigmoid | ipo | hinge"),
    max_steps: int = typer.Option(None, "--steps", "--max-steps", help="optimiser steps"),
    batch_size: int = typer.Option(None, "--batch-size", help="examples per micro-batch (per process)"),
    grad_accum: int = typer.Option(None, "--grad-accum", help="micro-batches per optimiser step"),
    seq_len: int = typer.Option(None, "--seq-len", help="tokens per example"),
    learning_rate: float = typer.Option(None, "--lr", help="peak learning rate"),
    precision: str = typer.Option(None, "--precision", help="auto | bf16 | fp16 | fp32"),
    device: str = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N"),
    data: list[Path] = typer.Option(None, "--data", help="data file(s) instead of the built-in data (repeatable)"),
    output_dir: Path = typer.Option(None, "--output-dir", help="where <stage>/<run-id>/ goes (default: outputs/)"),
    seed: int = typer.Option(None, "--seed", help="seed of the model init, data order and sampling"),
    resume: Path = typer.Option(None, "--resume", help="continue from a checkpoint folder of an earlier run"),
    fill_from_reference: bool = typer.Option(False, "--fill-from-reference",
                                             help="use the reference for needed lessons you have not completed"),
    reference: bool = typer.Option(False, "--reference", help="run the reference library alone (for comparison)"),
    nproc_per_node: int = typer.Option(1, "--nproc-per-node", help="processes on this machine (torchrun, DDP)"),
    nnodes: int = typer.Option(1, "--nnodes", help="machines (passed to torchrun)"),
    rdzv_endpoint: str = typer.Option(None, "--rdzv-endpoint", help="host:port of the rendezvous (torchrun)"),
    plain: bool = typer.Option(False, "--plain", help="one line per logged step instead of the live view"),
) -> None:
    """Train a model from your own code (pretrain, then sft, then dpo). / 用你自己写的代码训练模型。"""
    from ..errors import CourseError
    from ..train.config import STAGES
    from ..train.session import TrainRequest, finish, launch, prepare
    from ..views import training_report

    lang = _lang()
    if stage not in STAGES:
        raise CourseError("train.bad_stage", stage=stage, choices=", ".join(STAGES))
    overrides = {"model_path": model_path, "max_steps": max_steps, "batch_size": batch_size,
                 "grad_accum": grad_accum, "seq_len": seq_len, "learning_rate": learning_rate,
                 "precision": precision, "device": device, "seed": seed, "beta": beta, "loss_type": loss_type,
                 "data": [str(p) for p in data] if data else None}
    request = TrainRequest(stage=stage, preset=preset, config_file=str(config) if config else None,
                           overrides=overrides, output_dir=str(output_dir) if output_dir else None,
                           resume=str(resume) if resume else None, fill_from_reference=fill_from_reference,
                           reference=reference, nproc_per_node=nproc_per_node, nnodes=nnodes,
                           rdzv_endpoint=rdzv_endpoint, plain=plain)
    prepared = prepare(request, options.home, lang)
    training_report.before_run(prepared, lang)
    summary = launch(prepared, request)
    link = finish(prepared, summary, options.home, lang)
    training_report.after_run(prepared, summary, link, lang)


def _lang() -> str:
    """The course's language; --lang (or zh) outside a course home (--reference, generate)."""
    from ..course import Course
    from ..errors import CourseError

    try:
        return Course(options.home, options.lang).lang
    except CourseError:
        return options.lang or "zh"


def generate(
    model_path: Path = typer.Option(..., "--model-path", help="a saved model folder (e.g. outputs/sft/final_model)"),
    prompt: str = typer.Option(..., "--prompt", help="the text to continue (an instruction for sft models)"),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", help="most tokens to add"),
    greedy: bool = typer.Option(False, "--greedy", help="always the most likely token (ignores the options below)"),
    temperature: float = typer.Option(0.8, "--temperature", help="> 0; lower is more conservative"),
    top_k: int = typer.Option(50, "--top-k", help="sample among the k most likely tokens (0 = off)"),
    top_p: float = typer.Option(0.95, "--top-p", help="nucleus sampling mass (1.0 = off)"),
    repetition_penalty: float = typer.Option(1.1, "--repetition-penalty", help=">= 1.0; 1.0 = off"),
    seed: int = typer.Option(0, "--seed", help="sampling seed"),
    chat: bool = typer.Option(None, "--chat/--raw", help="wrap the prompt in the chat template (default: for sft models)"),
) -> None:
    """Continue a prompt with a saved model. / 用保存的模型续写文本。"""
    from ..errors import CourseError
    from ..train.generation import GenerateRequest
    from ..train.generation import generate as run_generate
    from ..views import training_report

    lang = _lang()
    if not repetition_penalty >= 1.0 or not temperature > 0 or not 0 < top_p <= 1 or top_k < 0 or max_new_tokens < 0:
        raise CourseError("generate.bad_option")
    request = GenerateRequest(model_path=str(model_path), prompt=prompt, max_new_tokens=max_new_tokens,
                              do_sample=not greedy, temperature=temperature, top_k=top_k or None,
                              top_p=top_p if top_p < 1 else None, repetition_penalty=repetition_penalty,
                              seed=seed, chat=chat)
    fed, continuation = run_generate(request)
    training_report.generation(fed, continuation, lang)
