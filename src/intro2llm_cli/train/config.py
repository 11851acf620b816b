"""What a training run is: ``RunConfig``, its presets, and how options combine.

A run's settings come from three layers, later ones winning: the preset
(``default`` or ``smoke``) for the stage, a TOML file (``--config``), and the
command-line options. The resolved ``RunConfig`` is written to the run folder as
``run.toml`` and is what a resumed run reads back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import CourseError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

STAGES = ("pretrain", "sft", "dpo")
PRESETS = ("default", "smoke")


class ModelShape(BaseModel):
    """The ``ModelConfig`` fields a run chooses (vocab_size comes from the tokenizer)."""

    model_config = ConfigDict(extra="forbid")
    hidden_size: int = 128
    intermediate_size: int = 344
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 512
    tie_word_embeddings: bool = True


class RunConfig(BaseModel):
    """Every setting of one ``llm-course train`` run (see ``PRESET_VALUES`` for the defaults)."""

    model_config = ConfigDict(extra="forbid")
    stage: Literal["pretrain", "sft", "dpo"] = "pretrain"
    preset: Literal["default", "smoke"] = "default"
    model: ModelShape = Field(default_factory=ModelShape)
    vocab_size: int = Field(2048, description="tokenizer vocabulary when a tokenizer is trained")
    tokenizer_sample_bytes: int = Field(400_000, description="corpus bytes the tokenizer learns from")
    corpus_bytes: int = Field(2_000_000, description="size of the built-in pretraining corpus")
    data: list[str] = Field(default_factory=list, description="data files instead of the built-in data")
    eval_fraction: float = 0.02
    seq_len: int = 128
    batch_size: int = 16
    grad_accum: int = 1
    max_steps: int = 400
    learning_rate: float = 2e-3
    warmup_steps: int = 20
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "fp32"
    device: str = "auto"
    log_every: int = 10
    eval_every: int = 100
    save_every: int = 200
    seed: int = 0
    model_path: str | None = Field(None, description="start from a saved model (sft; dpo needs one)")
    eval_tasks: int = Field(200, description="held-out tasks for exact match before / after (0 = skip)")
    max_new_tokens: int = 32
    beta: float = Field(0.1, description="dpo: strength of the KL leash to the reference model")
    loss_type: Literal["sigmoid", "ipo", "hinge"] = "sigmoid"
    label_smoothing: float = Field(0.0, description="dpo: conservative DPO's label noise (0 <= x < 0.5)")
    precompute_ref_logps: bool = Field(False, description="dpo: reference log-probs once, before training")
    eval_pairs: int = Field(200, description="dpo: held-out preference pairs for accuracy before / after")


# Per stage and preset: the values that differ from RunConfig's defaults.
PRESET_VALUES: dict[tuple[str, str], dict[str, Any]] = {
    ("pretrain", "default"): {},
    ("pretrain", "smoke"): {
        "model": {"hidden_size": 32, "intermediate_size": 88, "num_hidden_layers": 2,
                  "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 128},
        "vocab_size": 300, "tokenizer_sample_bytes": 40_000, "corpus_bytes": 60_000,
        "seq_len": 32, "batch_size": 8, "max_steps": 12, "warmup_steps": 2,
        "log_every": 2, "eval_every": 6, "save_every": 6,
    },
    ("sft", "default"): {"max_steps": 300, "learning_rate": 1e-3, "warmup_steps": 10, "seq_len": 160,
                         "eval_every": 100, "save_every": 150},
    ("dpo", "default"): {"max_steps": 150, "learning_rate": 5e-5, "warmup_steps": 10, "seq_len": 160,
                         "batch_size": 8, "eval_every": 50, "save_every": 75, "log_every": 5},
    ("dpo", "smoke"): {
        "model": {"hidden_size": 32, "intermediate_size": 88, "num_hidden_layers": 2,
                  "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 256},
        "seq_len": 128, "batch_size": 4, "max_steps": 6, "learning_rate": 5e-4, "warmup_steps": 1,
        "log_every": 2, "eval_every": 3, "save_every": 3, "eval_tasks": 8, "eval_pairs": 16, "max_new_tokens": 8,
    },
    ("sft", "smoke"): {
        "model": {"hidden_size": 32, "intermediate_size": 88, "num_hidden_layers": 2,
                  "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 256},
        "vocab_size": 300, "tokenizer_sample_bytes": 40_000, "corpus_bytes": 60_000,
        "seq_len": 128, "batch_size": 8, "max_steps": 8, "learning_rate": 1e-3, "warmup_steps": 2,
        "log_every": 2, "eval_every": 4, "save_every": 4, "eval_tasks": 8, "max_new_tokens": 8,
    },
}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings of a TOML file (the same names as ``run.toml``), checked for readability."""
    file = Path(path)
    if not file.is_file():
        raise CourseError("train.config_missing", file=file)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise CourseError("train.config_bad", file=file, problem=str(error)) from error
    data.pop("run", None)  # run.toml's record of the run itself, not a setting
    return data


def resolve(stage: str, preset: str, file_values: dict[str, Any] | None = None,
            overrides: dict[str, Any] | None = None, source: str = "the command line") -> RunConfig:
    """Preset < config file < command-line options, validated into one ``RunConfig``."""
    if preset not in PRESETS:
        raise CourseError("train.bad_preset", preset=preset, choices=", ".join(PRESETS))
    values: dict[str, Any] = {"stage": stage, "preset": preset}
    values = _merge(values, PRESET_VALUES[(stage, preset)])
    chosen = _merge(file_values or {}, {k: v for k, v in (overrides or {}).items() if v is not None})
    values = _merge(values, chosen)
    values["stage"], values["preset"] = stage, preset
    if "warmup_steps" not in chosen and "max_steps" in chosen:
        # A shorter run than the preset's keeps the preset's warmup only where it fits.
        values["warmup_steps"] = min(values.get("warmup_steps", 20), values["max_steps"])
    try:
        config = RunConfig.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise CourseError("train.bad_setting", field=field, problem=first["msg"], source=source) from error
    check_config(config)
    return config


def check_config(config: RunConfig) -> None:
    """Cross-field checks pydantic cannot express, each as one ``CourseError`` line."""
    positive = ("seq_len", "batch_size", "grad_accum", "max_steps", "log_every", "vocab_size",
                "tokenizer_sample_bytes", "corpus_bytes")
    for name in positive:
        if getattr(config, name) < 1:
            raise CourseError("train.bad_setting", field=name, problem="must be >= 1", source="the command line")
    if config.seq_len >= config.model.max_position_embeddings:
        raise CourseError("train.bad_setting", field="seq_len",
                          problem=f"must be < model.max_position_embeddings={config.model.max_position_embeddings}",
                          source="the command line")
    if config.warmup_steps > config.max_steps:
        raise CourseError("train.bad_setting", field="warmup_steps",
                          problem=f"must be <= max_steps={config.max_steps}", source="the command line")
    if config.stage == "dpo" and not config.model_path:
        raise CourseError("train.dpo_needs_model")
    if not config.beta > 0 or not 0 <= config.label_smoothing < 0.5:
        raise CourseError("train.bad_setting", field="beta" if not config.beta > 0 else "label_smoothing",
                          problem="need beta > 0 and 0 <= label_smoothing < 0.5", source="the command line")
    if not 0 <= config.eval_fraction < 0.5:
        raise CourseError("train.bad_setting", field="eval_fraction", problem="must be in [0, 0.5)",
                          source="the command line")


def to_toml(values: dict[str, Any]) -> str:
    """``values`` as TOML text (None values left out: TOML has no null)."""
    import tomli_w

    def drop_none(d: dict[str, Any]) -> dict[str, Any]:
        return {k: drop_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}

    return tomli_w.dumps(drop_none(values))
