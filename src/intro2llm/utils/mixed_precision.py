"""Mixed precision: which dtype to autocast to, the autocast context, and a loss scaler.

Under ``torch.autocast`` the matrix multiplications run in a 16-bit dtype while the
weights, the optimizer state and the reductions that need range (softmax, norms, the
loss) stay in float32. Two 16-bit formats:

- **bf16** (bfloat16): 8 exponent bits, the range of float32 with 3 significant digits.
  Gradients do not underflow, so no loss scaling is needed. Supported on recent GPUs
  (Ampere and later) and by CPU autocast.
- **fp16** (float16): 5 exponent bits, max 65504, smallest normal 6e-5. Small gradients
  flush to zero, so the loss is multiplied by a large *scale* before ``backward`` and the
  gradients divided by it before the step; when that overflows (inf / nan gradients)
  the step is skipped and the scale halved (``LossScaler``). CUDA only here: CPU
  autocast in float16 is slow and not what anyone trains with.
- **fp32**: no autocast at all (the reference result, and the fallback).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def _device_type(device: torch.device | str) -> str:
    return torch.device(device).type


def autocast_dtype(precision: str, device: torch.device | str) -> torch.dtype | None:
    """The dtype to autocast to for a precision name on a device (None = plain fp32).

    Args:
        precision: "bf16" | "fp16" | "fp32" | "auto".
        device: where the model runs ("cpu", "cuda", "cuda:0", a torch.device).
    Returns:
        torch.bfloat16, torch.float16 or None. "auto" gives bf16 on a CPU or on a CUDA
        device that supports it, fp16 on a CUDA device without bf16, None elsewhere.
    Raises:
        ValueError: an unknown precision; fp16 on a CPU; bf16 on a device without it.
    """
    # Step 1: precision 不在 PRECISIONS 中时 raise ValueError (一行说明可选值)；
    #         device_type = torch.device(device).type ("cpu" / "cuda" / "mps" ...)
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not supported: use one of {PRECISIONS}")
    device_type = _device_type(device)
    # Step 2: 当前设备是否支持 bf16：CPU 支持 (CPU autocast 有 bf16 内核)；
    #         CUDA 时 bf16_ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()；其他设备不支持
    if device_type == "cpu":
        bf16_ok = True
    elif device_type == "cuda":
        bf16_ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    else:
        bf16_ok = False
    # Step 3: "fp32" -> return None (不用 autocast)；"auto" -> bf16_ok 时 torch.bfloat16，
    #         否则 CUDA 上 torch.float16 (老显卡只有 fp16)，其他设备 None
    if precision == "fp32":
        return None
    if precision == "auto":
        if bf16_ok:
            return torch.bfloat16
        return torch.float16 if device_type == "cuda" else None
    # Step 4: "bf16" -> 不支持时 raise ValueError (提示改用 fp16 或 fp32)，否则 torch.bfloat16；
    #         "fp16" -> 不是 CUDA 时 raise ValueError (提示 CPU 上用 bf16 或 fp32)，否则 torch.float16
    if precision == "bf16":
        if not bf16_ok:
            raise ValueError(f"precision='bf16' is not supported on {device}: use 'fp16' or 'fp32'")
        return torch.bfloat16
    if device_type != "cuda":
        raise ValueError(f"precision='fp16' needs a CUDA device, got {device}: use 'bf16' or 'fp32' on a CPU")
    return torch.float16


def autocast_context(device: torch.device | str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``, or a no-op context when ``dtype`` is None.

    Args:
        device: where the model runs.
        dtype: from ``autocast_dtype``: torch.bfloat16, torch.float16 or None.
    Returns:
        a context manager for the forward pass (and the loss); ``backward`` runs outside it.
    """
    # Step 1: dtype 为 None 时 return contextlib.nullcontext() (fp32，什么都不做)
    if dtype is None:
        return contextlib.nullcontext()
    # Step 2: 否则 return torch.autocast(device_type=torch.device(device).type, dtype=dtype)
    #         (autocast 只改变算子的计算精度，参数本身仍然是 fp32)
    return torch.autocast(device_type=_device_type(device), dtype=dtype)


class LossScaler:
    """Dynamic loss scaling for fp16 training (what ``torch.amp.GradScaler`` does, written out).

    Usage per optimiser step::

        scaler.scale(loss).backward()        # each micro-batch
        found_inf = scaler.unscale_(optimizer)   # grads back to their true size, before clipping
        clip_grad_norm_(...)
        scaler.step(optimizer)               # skipped when found_inf
        scaler.update()                      # halve on overflow, grow after growth_interval good steps

    Args:
        init_scale: the first scale (2**16).
        growth_factor: multiplier after ``growth_interval`` overflow-free steps (2.0).
        backoff_factor: multiplier after an overflow (0.5).
        growth_interval: overflow-free steps before growing (2000).
        enabled: False makes every method a pass-through (scale 1, never skips).
    """

    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True) -> None:
        if not init_scale > 0 or not growth_factor > 1 or not 0 < backoff_factor < 1 or growth_interval < 1:
            raise ValueError("LossScaler needs init_scale > 0, growth_factor > 1, "
                             "0 < backoff_factor < 1 and growth_interval >= 1")
        self.enabled = enabled
        self.scale_value = float(init_scale) if enabled else 1.0
        self.growth_factor = growth_factor
        self.backoff_factor = backoff_factor
        self.growth_interval = growth_interval
        self.good_steps = 0
        self.found_inf = False
        self._unscaled = False

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """``loss * scale`` (call ``.backward()`` on the result); the loss itself when disabled."""
        return loss * self.scale_value if self.enabled else loss

    def unscale_(self, optimizer: torch.optim.Optimizer) -> bool:
        """Divide every gradient by the scale, in place, once per step; return whether any is inf / nan.

        Args:
            optimizer: its parameters' ``.grad`` are unscaled.
        Returns:
            found_inf (bool), also kept in ``self.found_inf`` for ``step`` and ``update``.
        """
        # Step 1: 未启用或本步已经 unscale 过时，直接 return self.found_inf (重复除以 scale 会把梯度缩得太小)
        if not self.enabled or self._unscaled:
            return self.found_inf
        # Step 2: inv = 1.0 / self.scale_value；对每个 param_group 里 grad 不为 None 的参数：
        #         p.grad.mul_(inv)，并记下 not torch.isfinite(p.grad).all() (任何一个 inf / nan 都算溢出)
        inv = 1.0 / self.scale_value
        found = False
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                p.grad.mul_(inv)
                if not bool(torch.isfinite(p.grad).all()):
                    found = True
        # Step 3: self.found_inf = found，self._unscaled = True，return found
        self.found_inf = found
        self._unscaled = True
        return found

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """``optimizer.step()`` unless the gradients overflowed; return whether it stepped."""
        # Step 1: 还没 unscale 时先 self.unscale_(optimizer)
        if self.enabled and not self._unscaled:
            self.unscale_(optimizer)
        # Step 2: self.found_inf 为 True 时跳过这一步 return False (带 inf 的更新会毁掉参数)；
        #         否则 optimizer.step()，return True
        if self.enabled and self.found_inf:
            return False
        optimizer.step()
        return True

    def update(self) -> None:
        """Adjust the scale after a step: ×backoff_factor on overflow, ×growth_factor after growth_interval good steps."""
        # Step 1: 未启用时 return
        if not self.enabled:
            return
        # Step 2: 溢出 (self.found_inf) 时 scale_value *= backoff_factor，good_steps = 0；
        #         否则 good_steps += 1，达到 growth_interval 时 scale_value *= growth_factor 并清零 good_steps
        #         (缩放尽量大以保住小梯度，溢出了就退一半，长时间没溢出再试着加大)
        if self.found_inf:
            self.scale_value *= self.backoff_factor
            self.good_steps = 0
        else:
            self.good_steps += 1
            if self.good_steps >= self.growth_interval:
                self.scale_value *= self.growth_factor
                self.good_steps = 0
        # Step 3: 为下一步复位：self.found_inf = False，self._unscaled = False
        self.found_inf = False
        self._unscaled = False

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state: scale, good_steps (the factors come from the constructor)."""
        return {"scale": self.scale_value, "good_steps": self.good_steps, "enabled": self.enabled}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        scale = float(state["scale"])
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"loss scale {scale} in the checkpoint is not a positive finite number")
        self.scale_value = scale
        self.good_steps = int(state["good_steps"])
        self.enabled = bool(state.get("enabled", self.enabled))
