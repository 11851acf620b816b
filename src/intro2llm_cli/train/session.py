"""A training run from the course's side: prepare it, launch it, record it. No printing here.

``prepare`` resolves the settings, decides whose code runs (``train.code``), composes
that code into a new run folder and writes ``run.toml``. ``launch`` trains in this
process, or under ``torchrun`` for several processes. ``finish`` links
``outputs/<stage>/final_model`` to the new model and records the run in the progress
file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import CourseError
from ..paths import find_home
from ..progress import RunRecord, now
from . import config as run_config
from .code import CodePlan, compose_package, plan_code, tree_hash
from .pipeline import FINAL_MODEL, SUMMARY_FILE, RunSpec, Summary, check_model_dir

RUN_FILE = "run.toml"
SPEC_FILE = "run_spec.json"


@dataclass
class TrainRequest:
    """What the learner asked for on the command line."""

    stage: str
    preset: str = "default"
    config_file: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    output_dir: str | None = None
    resume: str | None = None
    fill_from_reference: bool = False
    reference: bool = False
    nproc_per_node: int = 1
    nnodes: int = 1
    rdzv_endpoint: str | None = None
    plain: bool = False


@dataclass
class PreparedRun:
    spec: RunSpec
    plan: CodePlan
    config: run_config.RunConfig
    run_dir: Path
    code_hash: str
    started_at: datetime
    home: Path | None


def prepare(request: TrainRequest, home_option: str | None, lang: str) -> PreparedRun:
    """Resolve settings and code, create the run folder, write run.toml and the worker spec."""
    from ..course import Course

    course, progress, workspace_package, home = None, None, None, None
    try:
        course = Course(home_option, lang)
        home = course.home
        if course.store.exists():
            progress = course.progress()
            workspace_package = course.workspace(progress).package
    except CourseError:
        if not request.reference:
            raise
    if progress is None and not request.reference:
        raise CourseError("progress.missing", home=home or find_home(home_option))
    base = home or Path.cwd()
    catalog = course.catalog if course is not None else _catalog()
    plan = plan_code(catalog, progress, request.stage, fill=request.fill_from_reference,
                     reference_only=request.reference)

    if request.resume:
        checkpoint = Path(request.resume).expanduser().resolve()
        run_dir = checkpoint.parent
        if not (checkpoint / "trainer_state.json").is_file() or not (run_dir / RUN_FILE).is_file():
            raise CourseError("train.resume_bad", path=request.resume)
        saved = run_config.read_config_file(run_dir / RUN_FILE)
        config = run_config.resolve(request.stage, saved.get("preset", "default"), saved,
                                    {k: v for k, v in request.overrides.items() if k == "max_steps"},
                                    source=str(run_dir / RUN_FILE))
        check_device(config)
    else:
        file_values = run_config.read_config_file(request.config_file) if request.config_file else {}
        config = run_config.resolve(request.stage, request.preset, file_values, request.overrides,
                                    source=request.config_file or "the command line")
        if config.model_path:
            config.model_path = str(Path(config.model_path).expanduser().resolve())
            check_model_dir(Path(config.model_path))
        config.data = [str(Path(p).expanduser().resolve()) for p in config.data]
        for path in config.data:
            if not Path(path).is_file():
                raise CourseError("train.data_missing", file=path)
        check_device(config)
        outputs = Path(request.output_dir).expanduser().resolve() if request.output_dir else base / "outputs"
        run_dir = _new_run_dir(outputs / request.stage)

    code_root = compose_package(plan, workspace_package, run_dir / "code")
    code_hash = tree_hash(code_root)
    cache = (workspace_package.parent if workspace_package else base) / ".llm-course" / "cache" / "tokenizers"
    spec = RunSpec(config=config.model_dump(), run_dir=str(run_dir), code_root=str(code_root),
                   tokenizer_cache=str(cache), resume=str(Path(request.resume).resolve()) if request.resume else None,
                   lang=lang, plain_output=request.plain)
    started = now()
    _write_run_file(run_dir, config, plan, code_hash, started, request)
    spec.save(run_dir / SPEC_FILE)
    return PreparedRun(spec, plan, config, run_dir, code_hash, started, home if progress is not None else None)


def check_device(config: run_config.RunConfig) -> None:
    """``--device`` and ``--precision`` must work on this machine: one line otherwise, before anything runs."""
    import torch

    from intro2llm.utils.mixed_precision import autocast_dtype

    if config.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(config.device)
        except RuntimeError as error:
            raise CourseError("train.bad_setting", field="device", problem="use auto, cpu, cuda or cuda:N",
                              source="the command line") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CourseError("train.no_cuda", device=config.device, torch=torch.__version__)
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise CourseError("train.no_cuda", device=config.device, torch=torch.__version__)
    try:
        autocast_dtype(config.precision, device)
    except ValueError as error:
        raise CourseError("train.bad_setting", field="precision", problem=str(error),
                          source="the command line") from error


def _catalog() -> Any:
    from ..catalog import Catalog

    return Catalog.load()


def _new_run_dir(stage_dir: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for suffix in [""] + [f"-{i}" for i in range(2, 100)]:
        run_dir = stage_dir / f"{stamp}{suffix}"
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise CourseError("train.run_dir_taken", path=stage_dir)


def _write_run_file(run_dir: Path, config: run_config.RunConfig, plan: CodePlan, code_hash: str,
                    started: datetime, request: TrainRequest) -> None:
    values: dict[str, Any] = config.model_dump()
    values["run"] = {
        "started_at": started.isoformat(),
        "code_hash": code_hash,
        "lessons": [f"{u.lesson.short_id}:{u.source}" for u in plan.uses],
        "reference_filled": plan.filled,
        "reference_only": request.reference,
        "processes": request.nproc_per_node * request.nnodes,
        "resumed_from": request.resume or "",
    }
    (run_dir / RUN_FILE).write_text(run_config.to_toml(values), encoding="utf-8")


def launch(prepared: PreparedRun, request: TrainRequest) -> Summary:
    """Train: in this process, or with torchrun when more than one process is asked for."""
    if request.nproc_per_node * request.nnodes <= 1:
        from .pipeline import run

        return run(prepared.spec)
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={request.nproc_per_node}",
               f"--nnodes={request.nnodes}"]
    if request.rdzv_endpoint:
        command += ["--rdzv-backend=c10d", f"--rdzv-endpoint={request.rdzv_endpoint}"]
    elif request.nnodes == 1:
        command += ["--standalone"]
    command += ["-m", "intro2llm_cli.train.worker", str(prepared.run_dir / SPEC_FILE)]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // request.nproc_per_node)))
    result = subprocess.run(command, env=env, check=False)
    summary_file = prepared.run_dir / SUMMARY_FILE
    if result.returncode != 0 or not summary_file.is_file():
        raise CourseError("train.workers_failed", code=result.returncode, run_dir=prepared.run_dir)
    return Summary(**json.loads(summary_file.read_text(encoding="utf-8")))


def finish(prepared: PreparedRun, summary: Summary, home_option: str | None, lang: str) -> Path | None:
    """Point ``<outputs>/<stage>/final_model`` at the new model and record the run; return the link."""
    link = None
    if summary.final_model:
        link = link_final_model(Path(summary.final_model))
    if prepared.home is not None:
        from ..course import Course

        record = RunRecord(
            stage=prepared.config.stage, run_dir=str(prepared.run_dir), started_at=prepared.started_at,
            finished=not summary.interrupted, steps=summary.steps, seconds=round(summary.seconds, 2),
            final_loss=summary.final_loss, eval_loss=summary.eval_loss, code_hash=prepared.code_hash,
            reference_filled=prepared.plan.filled, reference_only=False,
            exact_match_before=(summary.exact_match_before or {}).get("accuracy"),
            exact_match_after=(summary.exact_match_after or {}).get("accuracy"),
            preference_before=(summary.preference_before or {}).get("logp_accuracy"),
            preference_after=(summary.preference_after or {}).get("logp_accuracy"),
        )
        with Course(home_option, lang).store.edit() as progress:
            progress.runs.append(record)
    return link


def link_final_model(final_model: Path) -> Path:
    """``<stage dir>/final_model`` -> ``<run-id>/final_model`` (a relative symlink, or a copy).

    Anything else already under that name that this tool did not make is moved aside,
    never deleted.
    """
    stage_dir = final_model.parent.parent
    link = stage_dir / FINAL_MODEL
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        marker = link / ".llm-course-copy"
        if marker.is_file():
            shutil.rmtree(link)
        else:
            link.rename(stage_dir / f"{FINAL_MODEL}.backup-{datetime.now():%Y%m%d-%H%M%S}")
    try:
        link.symlink_to(Path(final_model.parent.name) / FINAL_MODEL, target_is_directory=True)
    except OSError:  # no symlinks (some Windows setups): copy, marked as ours
        shutil.copytree(final_model, link)
        (link / ".llm-course-copy").write_text(str(final_model), encoding="utf-8")
    return link
