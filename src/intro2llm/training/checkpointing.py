"""Training checkpoints as a folder of safetensors + JSON: no pickle anywhere.

A checkpoint folder holds everything a run needs to continue exactly where it stopped::

    checkpoint-500/
        model.safetensors        the weights (tied weights stored once)
        optimizer.safetensors    every tensor of the optimizer state, under "state.<param index>.<name>"
        trainer_state.json       step, epoch, data position, scheduler state, optimizer
                                 param_groups and non-tensor state (e.g. AdamW's "step"),
                                 RNG states (python, torch CPU, data generator, CUDA), args

``torch.save`` would be shorter, but it pickles, and loading a pickle runs arbitrary
code; safetensors holds only tensors and JSON holds only plain values. RNG states are
byte tensors, stored in JSON as lists of ints.

Writes are atomic: everything goes into a temporary sibling folder which is then
renamed into place, so a crash (or Ctrl-C) mid-write never leaves a half checkpoint
under the final name.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"


# ----- optimizer state <-> (tensors, JSON) ----------------------------------------------------------


def optimizer_state_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into safetensors-ready tensors and JSON-ready metadata.

    Args:
        optimizer: any ``torch.optim.Optimizer``.
    Returns:
        (tensors, meta): ``tensors["state.<i>.<name>"]`` for every tensor in the state of
        parameter ``i``; ``meta = {"param_groups": [...], "state": {"<i>": {name: value}}}``
        with the non-tensor values (ints, floats, lists). Tuples become lists.
    """
    # Step 1: sd = optimizer.state_dict()：sd["state"] 是 {参数序号: {名字: 值}}，sd["param_groups"] 是超参数列表
    sd = optimizer.state_dict()
    # Step 2: 遍历每个参数的每个状态：张量放进 tensors[f"state.{i}.{name}"] (.contiguous()，safetensors 要求)，
    #         其他值 (如 AdamW 的 int "step") 放进 meta_state[str(i)][name] (JSON 的键只能是字符串)
    tensors: dict[str, torch.Tensor] = {}
    meta_state: dict[str, dict[str, Any]] = {}
    for index, param_state in sd["state"].items():
        for name, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value.detach().contiguous()
            else:
                meta_state.setdefault(str(index), {})[name] = _plain(value)
    # Step 3: return tensors, {"param_groups": [_plain(g) for g in sd["param_groups"]], "state": meta_state}
    return tensors, {"param_groups": [_plain(g) for g in sd["param_groups"]], "state": meta_state}


def optimizer_state_from_flat(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Rebuild an ``optimizer.state_dict()`` from ``optimizer_state_to_flat``'s two halves."""
    state: dict[int, dict[str, Any]] = {}
    for index, values in meta["state"].items():
        state.setdefault(int(index), {}).update(values)
    for key, tensor in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = tensor
    groups = []
    for group in meta["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def _plain(value: Any) -> Any:
    """A JSON-ready copy of value (dicts, lists, numbers, strings, None); tensors of one element become numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in trainer_state.json: only plain values")


# ----- RNG states ---------------------------------------------------------------------------------


def capture_rng_state(data_generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every random number generator a training step draws from, as JSON-ready values.

    Args:
        data_generator: the generator that shuffles the data (its state is also saved).
    Returns:
        {"python": random.getstate() as lists, "torch": torch.get_rng_state() as a list of ints,
        "data": data_generator.get_state() as ints or None, "cuda": one list per GPU or None}.
    """
    # Step 1: python 的 random.getstate() 是 (version, 625 个 int 的 tuple, gauss_next)，转成列表
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {"python": [version, list(internal), gauss_next]}
    # Step 2: torch CPU 生成器状态是 uint8 张量：torch.get_rng_state().tolist() (dropout 从这里取随机数)
    state["torch"] = torch.get_rng_state().tolist()
    # Step 3: 数据生成器 data_generator.get_state().tolist() (没有时 None)；
    #         CUDA 可用时 [s.tolist() for s in torch.cuda.get_rng_state_all()]，否则 None
    state["data"] = data_generator.get_state().tolist() if data_generator is not None else None
    state["cuda"] = ([s.tolist() for s in torch.cuda.get_rng_state_all()]
                     if torch.cuda.is_available() else None)
    return state


def restore_rng_state(state: dict[str, Any], data_generator: torch.Generator | None = None) -> None:
    """Put back the generators saved by ``capture_rng_state``."""
    # Step 1: random.setstate((version, tuple(internal), gauss_next))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    # Step 2: torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    # Step 3: 有数据生成器且保存过时 data_generator.set_state(torch.tensor(state["data"], dtype=torch.uint8))；
    #         有 CUDA 状态且 CUDA 可用时 torch.cuda.set_rng_state_all([...])
    if data_generator is not None and state.get("data") is not None:
        data_generator.set_state(torch.tensor(state["data"], dtype=torch.uint8))
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


# ----- save / load --------------------------------------------------------------------------------


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    trainer_state: dict[str, Any]) -> Path:
    """Write ``model.safetensors``, ``optimizer.safetensors`` and ``trainer_state.json`` atomically.

    Args:
        path: the checkpoint folder (replaced if it exists).
        model: its weights go to model.safetensors (``safetensors.torch.save_model``
            stores tied weights once).
        optimizer: its state is split by ``optimizer_state_to_flat``.
        trainer_state: JSON-ready dict (step, data position, scheduler state, RNG states, args ...);
            the optimizer metadata is added under "optimizer".
    Returns:
        the final folder path.
    """
    # Step 1: 先写到同一目录下的临时文件夹 tmp = path.parent / f".{path.name}.tmp-{os.getpid()}" (同一文件系统，rename 才是原子的)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    # Step 2: save_model(model, tmp / MODEL_FILE)；tensors, meta = optimizer_state_to_flat(optimizer)，
    #         save_file(tensors, tmp / OPTIMIZER_FILE)；把 meta 放进 trainer_state["optimizer"]，json.dump 到 tmp / STATE_FILE
    try:
        save_model(model, str(tmp / MODEL_FILE))
        tensors, meta = optimizer_state_to_flat(optimizer)
        save_file(tensors, str(tmp / OPTIMIZER_FILE))
        state = {**trainer_state, "optimizer": meta}
        with open(tmp / STATE_FILE, "w", encoding="utf-8") as f:
            json.dump(state, f)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed save leaves nothing behind; the old checkpoint stays
        raise
    # Step 3: 旧的同名文件夹先改名为 old，os.replace(tmp, path)，再删掉 old
    #         (任何时刻 path 要么是完整的旧检查点，要么是完整的新检查点)
    old = path.parent / f".{path.name}.old-{os.getpid()}"
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    if old.exists():
        shutil.rmtree(old)
    return path


def load_checkpoint(path: str | os.PathLike, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """Load the weights (and the optimizer state) in place; return the trainer state dict.

    Args:
        path: a folder written by ``save_checkpoint``.
        model: receives the weights (strict: every key must match).
        optimizer: receives the optimizer state when given.
    Returns:
        the dict from trainer_state.json.
    Raises:
        FileNotFoundError: a file of the checkpoint is missing (one line naming it).
    """
    # Step 1: 三个文件缺一个就 raise FileNotFoundError 并说出缺哪个
    path = Path(path)
    for name in (MODEL_FILE, OPTIMIZER_FILE, STATE_FILE):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path} is not a training checkpoint: {name} is missing")
    # Step 2: 读 JSON；load_model(model, path / MODEL_FILE, device=参数所在设备)
    with open(path / STATE_FILE, encoding="utf-8") as f:
        state = json.load(f)
    device = next(model.parameters()).device
    load_model(model, str(path / MODEL_FILE), device=str(device))
    # Step 3: 给了 optimizer 时 optimizer.load_state_dict(optimizer_state_from_flat(load_file(...), state["optimizer"]))
    #         (torch 会把状态张量搬到对应参数的设备上)；return state
    if optimizer is not None:
        tensors = load_file(str(path / OPTIMIZER_FILE), device=str(device))
        optimizer.load_state_dict(optimizer_state_from_flat(tensors, state["optimizer"]))
    return state
