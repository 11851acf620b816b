"""``llm-course train`` and ``generate`` end to end, in temporary course homes.

The runs use ``--preset smoke`` (a 2-layer width-32 model, a few seconds of training).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from intro2llm_cli.train.metrics import read_metrics

from .cli_helpers import llm_course

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return lines[0]


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def run_folder(home: Path, stage: str) -> Path:
    runs = sorted(p for p in (home / "outputs" / stage).iterdir() if p.is_dir() and not p.is_symlink())
    return runs[-1]


def complete_with_the_reference(home: Path, lesson_numbers: tuple[int, ...]) -> None:
    """What a learner who finished these lessons has: the reference's code in my_llm, lessons completed."""
    from intro2llm_cli.catalog import Catalog
    from intro2llm_cli.paths import reference_dir
    from intro2llm_cli.progress import LessonState, ProgressStore

    catalog = Catalog.load()
    store = ProgressStore(home)
    with store.edit() as progress:
        workspace = (home / progress.workspace / "my_llm").resolve()
        for lesson in catalog.lessons:
            if lesson.number not in lesson_numbers or not lesson.ready:
                continue
            for target in lesson.targets:
                (workspace / target.file).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(reference_dir() / target.file, workspace / target.file)
            progress.lesson(lesson.id).state = LessonState.completed
        progress.refresh_unlocks(catalog)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A course home after init -> lessons done -> train pretrain -> train sft (smoke presets)."""
    from intro2llm_cli.train.code import STAGE_LESSONS

    home = tmp_path_factory.mktemp("course")
    ok(llm_course(home, "init", "--path", "full", "--lang", "en"))
    complete_with_the_reference(home, STAGE_LESSONS["pretrain"])
    out = ok(llm_course(home, "train", "pretrain", "--preset", "smoke", "--plain"))
    assert "lesson03  Attention: MHA, GQA and RoPE  — your code" in out
    ok(llm_course(home, "train", "sft", "--preset", "smoke", "--plain",
                  "--model-path", "outputs/pretrain/final_model"))
    return home


def test_a_run_needs_completed_lessons_or_the_fill_option(tmp_path):
    ok(llm_course(tmp_path, "init", "--path", "full", "--lang", "en"))
    complete_with_the_reference(tmp_path, (1, 2))
    message = one_line_error(llm_course(tmp_path, "train", "pretrain", "--preset", "smoke"))
    assert "lesson03" in message and "lesson01" not in message and "--fill-from-reference" in message
    assert not (tmp_path / "outputs").exists(), "a refused run leaves no run folder behind"
    out = ok(llm_course(tmp_path, "train", "pretrain", "--preset", "smoke", "--plain", "--steps", "2",
                        "--fill-from-reference"))
    assert "filled from the reference: lesson03, lesson04" in out
    assert "lesson01  Model config and tokenizers  — your code" in out


def test_pretrain_writes_the_run_folder(trained):
    run = run_folder(trained, "pretrain")
    metrics = read_metrics(run / "metrics.jsonl")
    steps = [m for m in metrics if "loss" in m]
    assert [m["step"] for m in steps] == [2, 4, 6, 8, 10, 12]
    for m in steps:
        assert {"step", "loss", "lr", "tokens_per_s"} <= set(m) and math.isfinite(m["loss"])
    assert any("eval_loss" in m for m in metrics)
    assert steps[-1]["loss"] < steps[0]["loss"], "the smoke run should already lower the loss"
    config = tomllib.loads((run / "run.toml").read_text(encoding="utf-8"))
    assert config["stage"] == "pretrain" and config["max_steps"] == 12
    assert len(config["run"]["code_hash"]) == 40
    assert "lesson01:yours" in config["run"]["lessons"] and config["run"]["reference_filled"] == []
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (run / "final_model" / name).is_file()
    assert (run / "code" / "my_llm" / "model" / "causal_lm.py").is_file()
    assert (run / "checkpoint-12" / "trainer_state.json").is_file()
    png = (run / "loss_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    link = trained / "outputs" / "pretrain" / "final_model"
    assert link.resolve() == (run / "final_model").resolve()
    cached = list((trained / "workspace" / ".llm-course" / "cache" / "tokenizers").iterdir())
    assert len(cached) == 1 and (cached[0] / "tokenizer.json").is_file(), "the learner's tokenizer is cached once"


def test_the_final_model_loads_in_transformers(trained):
    transformers = pytest.importorskip("transformers")
    import torch

    from intro2llm.interop.hf import load_hf

    path = trained / "outputs" / "pretrain" / "final_model"
    ours = load_hf(path)
    theirs = transformers.LlamaForCausalLM.from_pretrained(path).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    torch.testing.assert_close(ours(ids).logits, theirs(ids).logits, atol=1e-5, rtol=1e-5)


def test_sft_reports_exact_match_before_and_after_and_records_runs(trained):
    run = run_folder(trained, "sft")
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["exact_match_before"]["total"] == 8 and summary["exact_match_after"]["total"] == 8
    config = tomllib.loads((run / "run.toml").read_text(encoding="utf-8"))
    assert Path(config["model_path"]) == (trained / "outputs" / "pretrain" / "final_model").resolve()
    progress = tomllib.loads((trained / "progress" / "progress.toml").read_text(encoding="utf-8"))
    assert [r["stage"] for r in progress["runs"]] == ["pretrain", "sft"]
    assert all(r["finished"] for r in progress["runs"])
    assert progress["runs"][1]["exact_match_after"] == summary["exact_match_after"]["accuracy"]


def test_generate_samples_from_the_saved_model(trained):
    out = ok(llm_course(trained, "--lang", "en", "generate", "--model-path", "outputs/sft/final_model",
                        "--prompt", "What is 2 + 3?", "--max-new-tokens", "5", "--greedy"))
    assert "<|user|>" in out and "output:" in out
    again = ok(llm_course(trained, "--lang", "en", "generate", "--model-path", "outputs/sft/final_model",
                          "--prompt", "What is 2 + 3?", "--max-new-tokens", "5", "--greedy"))
    assert again == out, "greedy decoding must be deterministic"


def test_bad_inputs_get_one_clear_line(trained, tmp_path):
    not_model = tmp_path / "empty"
    not_model.mkdir()
    message = one_line_error(llm_course(trained, "train", "sft", "--preset", "smoke", "--fill-from-reference",
                                        "--model-path", str(not_model)))
    assert "is not a saved model" in message and "config.json" in message

    mismatched = tmp_path / "mismatched"
    shutil.copytree(trained / "outputs" / "pretrain" / "final_model", mismatched)
    from intro2llm.tokenizer import ByteLevelTokenizer

    ByteLevelTokenizer().save(mismatched)  # 256 bytes + 4 specials: not the model's vocabulary
    message = one_line_error(llm_course(trained, "--lang", "en", "generate", "--model-path", str(mismatched),
                                        "--prompt", "hi"))
    assert "vocab_size" in message

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c"\n', encoding="utf-8")
    message = one_line_error(llm_course(trained, "train", "sft", "--preset", "smoke", "--fill-from-reference",
                                        "--model-path", "outputs/pretrain/final_model", "--data", str(bad)))
    assert "bad.jsonl:2" in message

    assert "no training stage" in one_line_error(llm_course(trained, "train", "pretrian"))
    assert "not a checkpoint folder" in one_line_error(
        llm_course(trained, "train", "pretrain", "--resume", str(tmp_path)))
    assert "seq_len" in one_line_error(llm_course(trained, "train", "pretrain", "--preset", "smoke",
                                                  "--fill-from-reference", "--seq-len", "4096"))


def test_a_diverging_run_stops_naming_the_step_and_a_suspect(tmp_path):
    result = llm_course(tmp_path, "--lang", "en", "train", "pretrain", "--preset", "smoke", "--reference",
                        "--plain", "--lr", "1e6", "--steps", "12")
    message = one_line_error(result)
    assert "training stopped" in message and "at step" in message and "Suspect" in message


INTERRUPT_AT_STEP_6 = """
import os, signal, sys
from intro2llm_cli.train.pipeline import run
from intro2llm_cli.train.session import TrainRequest, prepare
from intro2llm_cli.views.training import TrainingView

class InterruptingView(TrainingView):
    def __call__(self, metrics):
        super().__call__(metrics)
        if metrics.get("step") == 6 and "loss" in metrics:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does

request = TrainRequest(stage="pretrain", preset="smoke", reference=True, output_dir=sys.argv[1], plain=True)
prepared = prepare(request, None, "en")
summary = run(prepared.spec, view_factory=lambda *a, **k: InterruptingView(*a, **k))
print("INTERRUPTED" if summary.interrupted else "FINISHED", summary.resume_from)
"""


@pytest.fixture(scope="module")
def smoke_metrics(tmp_path_factory) -> list[dict]:
    """metrics.jsonl of one uninterrupted single-process smoke run of the reference (batch 8)."""
    home = tmp_path_factory.mktemp("smoke")
    ok(llm_course(home, "train", "pretrain", "--preset", "smoke", "--reference", "--plain",
                  "--output-dir", str(home / "out")))
    return read_metrics(run_folder_of(home / "out"))


def test_ctrl_c_checkpoints_and_resume_continues_exactly(tmp_path, smoke_metrics):
    reference = [m for m in smoke_metrics if "loss" in m]

    broken = tmp_path / "broken"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_COURSE_")}
    interrupted = subprocess.run([sys.executable, "-c", INTERRUPT_AT_STEP_6, str(broken)], cwd=tmp_path,
                                 capture_output=True, text=True, env=env, timeout=300)
    assert interrupted.returncode == 0, interrupted.stderr
    run = run_folder_of(broken).parent
    assert "INTERRUPTED" in interrupted.stdout and (run / "checkpoint-6").is_dir(), interrupted.stdout
    assert not (run / "final_model").exists()

    ok(llm_course(tmp_path, "train", "pretrain", "--reference", "--plain", "--resume", str(run / "checkpoint-6")))
    resumed = [m for m in read_metrics(run / "metrics.jsonl") if "loss" in m]
    assert [m["step"] for m in resumed] == [m["step"] for m in reference]
    for a, b in zip(resumed, reference, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6, abs=1e-6), f"step {a['step']}: resumed {a['loss']} vs {b['loss']}"
    assert (run / "final_model" / "model.safetensors").is_file()


def run_folder_of(output_dir: Path, stage: str = "pretrain") -> Path:
    return next(p for p in (output_dir / stage).iterdir() if p.is_dir() and not p.is_symlink()) / "metrics.jsonl"


@pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo on Windows is not supported here")
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, smoke_metrics):
    two = tmp_path / "two"
    ok(llm_course(tmp_path, "train", "pretrain", "--preset", "smoke", "--reference", "--plain",
                  "--batch-size", "4", "--nproc-per-node", "2", "--output-dir", str(two)))
    single = smoke_metrics  # the smoke preset's batch is 8 = 2 processes x 4
    ddp = read_metrics(run_folder_of(two))
    assert [m["step"] for m in single] == [m["step"] for m in ddp]
    # Same global batch (2 x 4 = 8 examples); only the order of floating-point sums differs
    # (gradients averaged by all-reduce instead of inside one batch): agree to 1e-4 relative.
    for a, b in zip(single, ddp, strict=True):
        key = "loss" if "loss" in a else "eval_loss"
        assert b[key] == pytest.approx(a[key], rel=1e-4), f"step {a['step']} {key}: 2 processes {b[key]} vs 1 {a[key]}"


def test_dpo_runs_from_the_sft_model_and_reports_before_and_after(trained):
    from intro2llm_cli.train.code import STAGE_LESSONS

    assert "lesson08" in one_line_error(llm_course(trained, "train", "dpo", "--preset", "smoke"))
    complete_with_the_reference(trained, STAGE_LESSONS["dpo"])
    assert "--model-path" in one_line_error(llm_course(trained, "train", "dpo", "--preset", "smoke"))
    out = ok(llm_course(trained, "train", "dpo", "--preset", "smoke", "--plain",
                        "--model-path", "outputs/sft/final_model"))
    assert "16 held-out preference pairs" in out and "held-out exact match" in out
    run = run_folder(trained, "dpo")
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["preference_before"]["total"] == summary["preference_after"]["total"] == 16
    logged = [m for m in read_metrics(run / "metrics.jsonl") if "loss" in m]
    assert logged and all({"rewards/chosen", "rewards/rejected", "rewards/accuracy", "rewards/margin"} <= set(m)
                          for m in logged)
    assert logged[0]["loss"] == pytest.approx(math.log(2), abs=1e-3), "policy == reference at the start: loss log 2"
    assert (trained / "outputs" / "dpo" / "final_model" / "model.safetensors").is_file()
    progress = tomllib.loads((trained / "progress" / "progress.toml").read_text(encoding="utf-8"))
    assert progress["runs"][-1]["stage"] == "dpo" and progress["runs"][-1]["preference_after"] is not None
