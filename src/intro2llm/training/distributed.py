"""Data parallelism helpers: who am I, how many of us, and averaging across processes.

With ``torchrun --nproc-per-node N`` every process runs the same script; torchrun sets
``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` and
``init_distributed`` joins the process group (gloo on CPU, nccl on CUDA). Then:

- every process holds a full copy of the model (``DistributedDataParallel`` broadcasts
  rank 0's weights at construction, so all copies start equal);
- each process reads a different slice of every global batch (``Trainer.next_batch``);
- ``backward`` all-reduces (averages) the gradients, so every copy takes the same step:
  W processes with batch b compute exactly the update of one process with batch W × b;
- only rank 0 logs and writes checkpoints.

Without ``torch.distributed`` initialised every helper here is the single-process
identity (world size 1, rank 0, ``reduce_mean(x) == x``), so the trainer reads the same
in both cases.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes (1 without torch.distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's index in ``0 .. world_size() - 1`` (0 without torch.distributed)."""
    return dist.get_rank() if is_distributed() else 0


def is_main_process() -> bool:
    """Rank 0: the process that logs, prints and writes files."""
    return rank() == 0


def reduce_mean(value: float | torch.Tensor) -> float:
    """The mean of ``value`` over all processes, as a float (``value`` itself in one process)."""
    if not is_distributed():
        return float(value)
    tensor = torch.as_tensor(value, dtype=torch.float64, device=_reduce_device()).detach().clone()
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor) / dist.get_world_size()


def reduce_sum(value: float | torch.Tensor) -> float:
    """The sum of ``value`` over all processes, as a float (``value`` itself in one process)."""
    if not is_distributed():
        return float(value)
    tensor = torch.as_tensor(value, dtype=torch.float64, device=_reduce_device()).detach().clone()
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor)


def barrier() -> None:
    """Wait for every process (no-op in one process); e.g. before reading a checkpoint rank 0 wrote."""
    if is_distributed():
        dist.barrier()


def _reduce_device() -> torch.device:
    # nccl only reduces CUDA tensors; gloo reduces CPU tensors.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def launched_by_torchrun() -> bool:
    """True when torchrun (or another launcher) set the process-group environment."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device: str = "auto") -> torch.device:
    """Join the process group torchrun described in the environment; return this process's device.

    Args:
        device: "auto" (cuda:LOCAL_RANK when CUDA is available, else cpu), "cpu" or "cuda".
    Returns:
        the device this rank should train on. Without torchrun's environment nothing is
        initialised and ``device`` is resolved as usual.
    """
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        if device == "auto":
            return torch.device("cuda" if use_cuda else "cpu")
        return torch.device(device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        target = torch.device("cuda", local_rank)
    else:
        target = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return target


def wrap_for_training(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` in a process group, the model itself otherwise.

    The wrapper is what the training forward runs through (its backward all-reduces the
    gradients); evaluation, generation and checkpoints use the plain model.
    """
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [torch.cuda.current_device() if device.index is None else device.index] \
        if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)
