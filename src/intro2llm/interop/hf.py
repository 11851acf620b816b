"""Hugging Face Llama interop: our ``CausalLM`` <-> ``transformers.LlamaForCausalLM``.

The reference model uses Hugging Face's parameter names, so converting a state
dict only adds or strips the ``model.`` prefix (``lm_head`` has none)::

    ours                              Hugging Face
    embed_tokens.weight               model.embed_tokens.weight
    layers.0.self_attn.q_proj.weight  model.layers.0.self_attn.q_proj.weight
    norm.weight                       model.norm.weight
    lm_head.weight                    lm_head.weight  (absent when tied)

A directory written by ``save_hf`` (``config.json`` + ``model.safetensors``) loads
with ``LlamaForCausalLM.from_pretrained(directory)`` without warnings, and
``load_hf`` reads such a directory back, or one written by ``save_pretrained``.

Only Llama's choices convert: ``norm_type="rmsnorm"`` and ``ffn_type="swiglu"``
(anything else raises ``ValueError`` naming the field). ``hidden_dropout`` has
no Llama counterpart and is dropped on export (it only matters in training).
Written for transformers 5.x (``rope_parameters``); 4.x files with a top-level
``rope_theta`` load too. Reference only, not a lesson target.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..model.causal_lm import CausalLM
from ..model.config import CONFIG_NAME, ModelConfig

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
_PREFIX = "model."
_LM_HEAD = "lm_head.weight"
# Fields with the same name and meaning in ModelConfig and LlamaConfig.
_SHARED_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "max_position_embeddings",
    "rms_norm_eps",
    "attention_dropout",
    "tie_word_embeddings",
    "initializer_range",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
)


def _check_llama_compatible(config: ModelConfig) -> None:
    if config.norm_type != "rmsnorm":
        raise ValueError(f"norm_type={config.norm_type!r} has no Llama equivalent: Hugging Face Llama needs norm_type='rmsnorm'")
    if config.ffn_type != "swiglu":
        raise ValueError(f"ffn_type={config.ffn_type!r} has no Llama equivalent: Hugging Face Llama needs ffn_type='swiglu'")


def config_to_hf(config: ModelConfig, dtype: torch.dtype | str = "float32") -> dict[str, Any]:
    """A ``config.json`` dict that ``transformers.LlamaConfig`` (5.x) reads as this model.

    Args:
        config: a Llama-compatible ``ModelConfig`` (rmsnorm, swiglu).
        dtype: dtype of the saved weights, written as ``"dtype"``.
    Returns:
        JSON-serialisable dict (model_type "llama", architectures, rope_parameters, ...).
    Raises:
        ValueError: norm_type or ffn_type that Llama does not have.
    """
    _check_llama_compatible(config)
    dtype_name = str(dtype).removeprefix("torch.")
    hf: dict[str, Any] = {name: getattr(config, name) for name in _SHARED_FIELDS}
    hf.update(
        architectures=["LlamaForCausalLM"],
        model_type="llama",
        head_dim=config.head_dim,
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
        rope_parameters={"rope_type": "default", "rope_theta": float(config.rope_theta)},
        pretraining_tp=1,
        use_cache=True,
        dtype=dtype_name,
    )
    return hf


def config_from_hf(hf: dict[str, Any]) -> ModelConfig:
    """A ``ModelConfig`` from a Llama ``config.json`` dict (transformers 4.x or 5.x).

    Args:
        hf: the parsed JSON. ``rope_theta`` is read from ``rope_parameters`` (5.x) or
            the top level (4.x); missing fields take LlamaConfig's defaults; a list of
            eos ids (Llama-3.1) keeps the first; a null pad id becomes 0.
    Returns:
        a validated ``ModelConfig`` with norm_type "rmsnorm" and ffn_type "swiglu".
    Raises:
        ValueError: a config Llama-the-architecture here cannot represent (other model
            type, activation, biases, head_dim, RoPE scaling), naming the field.
    """
    if hf.get("model_type", "llama") != "llama":
        raise ValueError(f"model_type={hf.get('model_type')!r}: only 'llama' configs convert")
    if hf.get("hidden_act", "silu") != "silu":
        raise ValueError(f"hidden_act={hf['hidden_act']!r}: only 'silu' (SwiGLU) is supported")
    for name in ("attention_bias", "mlp_bias"):
        if hf.get(name, False):
            raise ValueError(f"{name}=True: the reference model has no biases")
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise ValueError(f"rope_parameters={rope!r}: only the default RoPE (no scaling) is supported")
    params = {name: hf[name] for name in _SHARED_FIELDS if hf.get(name) is not None}
    if isinstance(params.get("eos_token_id"), list):
        params["eos_token_id"] = params["eos_token_id"][0]
    params["rope_theta"] = float(rope.get("rope_theta", hf.get("rope_theta", 10000.0)))
    # LlamaConfig's defaults differ from ModelConfig's in two fields.
    params.setdefault("max_position_embeddings", 2048)
    params.setdefault("rms_norm_eps", 1e-6)
    config = ModelConfig(**params, norm_type="rmsnorm", ffn_type="swiglu")
    if hf.get("head_dim") not in (None, config.head_dim):
        raise ValueError(f"head_dim={hf['head_dim']} != hidden_size // num_attention_heads = {config.head_dim}: not supported")
    return config


def to_hf_state_dict(model: CausalLM) -> dict[str, torch.Tensor]:
    """Our state dict renamed for ``LlamaForCausalLM``.

    Args:
        model: a Llama-compatible ``CausalLM``.
    Returns:
        name -> detached contiguous tensor: ``model.`` + name, except ``lm_head.weight``,
        which is left out when the embeddings are tied (Hugging Face re-ties it on load).
    """
    _check_llama_compatible(model.config)
    tied = model.config.tie_word_embeddings
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        if name == _LM_HEAD:
            if not tied:
                out[name] = tensor.detach().contiguous()
        else:
            out[_PREFIX + name] = tensor.detach().contiguous()
    return out


def from_hf_state_dict(state_dict: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """A Hugging Face Llama state dict renamed for ``CausalLM(config).load_state_dict``.

    Args:
        state_dict: ``model.*`` and (unless tied) ``lm_head.weight``; rotary ``inv_freq``
            buffers of old checkpoints are ignored.
        config: the model's config (for ``tie_word_embeddings``).
    Returns:
        our names -> tensors; with tied embeddings ``lm_head.weight`` is the embedding
        tensor, so a strict ``load_state_dict`` finds every key.
    Raises:
        KeyError: the output head is missing from an untied checkpoint.
    """
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state_dict.items():
        if name.endswith("rotary_emb.inv_freq"):
            continue
        out[name.removeprefix(_PREFIX) if name.startswith(_PREFIX) else name] = tensor
    if config.tie_word_embeddings:
        out[_LM_HEAD] = out["embed_tokens.weight"]
    elif _LM_HEAD not in out:
        raise KeyError("lm_head.weight is missing and tie_word_embeddings is False: the checkpoint has no output head")
    return out


def save_hf(model: CausalLM, directory: str | Path) -> Path:
    """Write ``config.json`` and ``model.safetensors`` that ``LlamaForCausalLM.from_pretrained`` loads.

    Args:
        model: a Llama-compatible ``CausalLM``.
        directory: created if needed; existing files of the same names are overwritten.
    Returns:
        the directory.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    state_dict = to_hf_state_dict(model)
    hf_config = config_to_hf(model.config, dtype=next(iter(state_dict.values())).dtype)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_NAME).write_text(json.dumps(hf_config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    save_file(state_dict, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
    return directory


def _read_safetensors(directory: Path) -> dict[str, torch.Tensor]:
    """One ``model.safetensors`` file, or every shard listed in ``model.safetensors.index.json``."""
    from safetensors.torch import load_file

    if (directory / WEIGHTS_NAME).is_file():
        return load_file(str(directory / WEIGHTS_NAME))
    index = directory / WEIGHTS_INDEX_NAME
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        return {k: v for shard in shards for k, v in load_file(str(directory / shard)).items()}
    raise FileNotFoundError(f"no {WEIGHTS_NAME} (or {WEIGHTS_INDEX_NAME}) in {directory}: save with save_hf or safetensors")


def load_hf(directory: str | Path) -> CausalLM:
    """Build a ``CausalLM`` from a Hugging Face Llama directory (``save_hf`` or ``save_pretrained``).

    Args:
        directory: holds ``config.json`` and ``model.safetensors`` (or sharded safetensors).
    Returns:
        the model in float32 (weights of another dtype are cast), in eval mode.
    Raises:
        FileNotFoundError: config or weights missing. ValueError: a config that is not Llama.
    """
    directory = Path(directory)
    config_file = directory / CONFIG_NAME
    if not config_file.is_file():
        raise FileNotFoundError(f"config file not found: {config_file}")
    config = config_from_hf(json.loads(config_file.read_text(encoding="utf-8")))
    model = CausalLM(config)
    model.load_state_dict(from_hf_state_dict(_read_safetensors(directory), config), strict=True)
    return model.eval()
