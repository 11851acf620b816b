"""Learning-rate schedules with linear warmup: cosine, linear and constant.

A schedule is a multiplier ``λ(step)`` of each parameter group's initial ``lr``:
``torch.optim.lr_scheduler.LambdaLR`` sets ``group["lr"] = initial_lr * λ(step)``
where ``step`` counts ``scheduler.step()`` calls (0 before the first one). This
module keeps the two halves apart:

- ``cosine_lr_lambda`` / ``linear_lr_lambda`` / ``constant_lr_lambda``: the formulas,
  plain functions of the step number;
- ``get_*_schedule_with_warmup``: the factories with Hugging Face ``transformers``'
  names and arguments, which bind the lengths with ``functools.partial`` and wrap the
  formula in a ``LambdaLR``.

Notation: ``W = num_warmup_steps``, ``T = num_training_steps``.

*Warmup* (all three): ``λ = step / W`` for ``step < W``, so the first optimiser step
uses lr 0 and the W-th the full lr. Early on Adam's ``v`` has seen few gradients and
its updates are large and noisy; a gentle start keeps them from wrecking the
freshly initialised network.

*After warmup*, with ``progress = (step - W) / (T - W)`` going from 0 to 1:

- cosine: ``λ = r + (1 - r) * 0.5 * (1 + cos(2π * num_cycles * progress))``, from 1
  down to ``r = min_lr_ratio`` along half a cosine (``num_cycles = 0.5``);
- linear: ``λ = 1 - progress``, down to 0;
- constant: ``λ = 1``.

Within ``0 <= step <= T`` the values are exactly ``transformers``'
(``min_lr_ratio=0``). One deliberate difference: past ``T`` (a few extra steps at
the end of an epoch, a resumed run) ``transformers``' cosine climbs back up, because
``cos`` is periodic; here progress is clamped to 1, so the lr stays where it ended
(the minimum, for the default half cycle). The linear schedule stays at 0 in both.
"""

from __future__ import annotations

import functools
import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def _check_steps(num_warmup_steps: int, num_training_steps: int | None = None) -> None:
    if num_warmup_steps < 0:
        raise ValueError(f"num_warmup_steps={num_warmup_steps} must be >= 0")
    if num_training_steps is not None and num_training_steps < num_warmup_steps:
        raise ValueError(
            f"num_training_steps={num_training_steps} must be >= num_warmup_steps={num_warmup_steps}: "
            "warmup is part of training"
        )


# ----- the formulas ----------------------------------------------------------------------------


def cosine_lr_lambda(
    current_step: int,
    *,
    num_warmup_steps: int,
    num_training_steps: int,
    min_lr_ratio: float = 0.0,
    num_cycles: float = 0.5,
) -> float:
    """Multiplier of the initial lr: linear warmup, then cosine decay to ``min_lr_ratio``.

    Example with W = 2, T = 6 (``min_lr_ratio=0``): steps 0..7 give
    ``0, 0.5, 1, 0.854, 0.5, 0.146, 0, 0`` (``0.5 * (1 + cos(π * k / 4))`` for k = 0..4).

    Args:
        current_step: scheduler steps taken so far (0, 1, 2, ...).
        num_warmup_steps: W >= 0.
        num_training_steps: T >= W, the total number of optimiser steps.
        min_lr_ratio: r in [0, 1], the final lr as a fraction of the initial one.
        num_cycles: waves of the cosine over the decay phase: 0.5 (default) = one half wave, 1 down to r
            at the midpoint of the decay; 1.0 = a full wave, back at the peak by num_training_steps.
    Returns:
        λ (float): ``current_step / W`` during warmup, then
        ``r + (1 - r) * 0.5 * (1 + cos(2π * num_cycles * min(1, progress)))``.
    """
    # Step 1: 预热阶段 current_step < num_warmup_steps 时
    #         return float(current_step) / float(max(1, num_warmup_steps)) (从 0 线性升到 1；第 0 步的 lr 为 0)
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    # Step 2: 衰减进度 progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))，
    #         再截断 progress = min(1.0, progress)
    #         (max(1, ...) 防止除以 0；截断让训练结束后 lr 停在终点的值 (默认半个周期时就是最小值)，而不是随 cos 的周期重新升高)
    progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
    progress = min(1.0, progress)
    # Step 3: 余弦因子 factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)) (num_cycles = 0.5 时从 1 降到 0)；
    #         映射到 [min_lr_ratio, 1]：return factor * (1 - min_lr_ratio) + min_lr_ratio
    factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
    return factor * (1 - min_lr_ratio) + min_lr_ratio


def linear_lr_lambda(current_step: int, *, num_warmup_steps: int, num_training_steps: int) -> float:
    """Multiplier of the initial lr: linear warmup, then linear decay to 0 at ``num_training_steps``.

    Example with W = 2, T = 6: steps 0..7 give ``0, 0.5, 1, 0.75, 0.5, 0.25, 0, 0``.

    Args:
        current_step: scheduler steps taken so far (0, 1, 2, ...).
        num_warmup_steps: W >= 0.
        num_training_steps: T >= W.
    Returns:
        λ (float): ``current_step / W`` during warmup, then ``max(0, (T - step) / (T - W))``.
    """
    # Step 1: current_step < num_warmup_steps 时 return float(current_step) / float(max(1, num_warmup_steps))
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    # Step 2: 之后线性降到 0：return max(0.0, float(num_training_steps - current_step) / float(max(1, num_training_steps - num_warmup_steps)))
    #         (max(0.0, ...) 让超过 num_training_steps 的步数停在 0，而不是变成负的学习率)
    return max(0.0, float(num_training_steps - current_step) / float(max(1, num_training_steps - num_warmup_steps)))


def constant_lr_lambda(current_step: int, *, num_warmup_steps: int) -> float:
    """Multiplier of the initial lr: linear warmup, then constant 1.

    Example with W = 4: steps 0..5 give ``0, 0.25, 0.5, 0.75, 1, 1``.

    Args:
        current_step: scheduler steps taken so far (0, 1, 2, ...).
        num_warmup_steps: W >= 0.
    Returns:
        λ (float): ``current_step / W`` during warmup, then 1.0.
    """
    # Step 1: current_step < num_warmup_steps 时 return float(current_step) / float(max(1, num_warmup_steps))
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    # Step 2: 预热结束后 return 1.0 (保持初始学习率)
    return 1.0


# ----- the factories (transformers' names and arguments) -----------------------------------------


def get_cosine_schedule_with_warmup(
    optimizer: torch.optim.Optimizer,
    num_warmup_steps: int,
    num_training_steps: int,
    min_lr_ratio: float = 0.0,
    num_cycles: float = 0.5,
    last_epoch: int = -1,
) -> LambdaLR:
    """Linear warmup to each group's lr, then a cosine decay to ``min_lr_ratio`` times it.

    Args:
        optimizer: its groups' current ``lr`` become the peak values (``initial_lr``).
        num_warmup_steps: W >= 0.
        num_training_steps: T >= W.
        min_lr_ratio: r in [0, 1]: the lr ends at ``r * initial_lr``.
        num_cycles: cosine waves over the decay phase (0.5: from the peak down once).
        last_epoch: index of the last step when resuming (-1: start fresh); prefer
            ``scheduler.load_state_dict`` to resume.
    Returns:
        a ``LambdaLR`` calling ``cosine_lr_lambda``; call ``scheduler.step()`` after
        every ``optimizer.step()``.
    Raises:
        ValueError: W < 0, T < W, r outside [0, 1] or num_cycles <= 0.
    """
    # Step 1: 校验：num_warmup_steps >= 0、num_training_steps >= num_warmup_steps、0 <= min_lr_ratio <= 1、num_cycles > 0，否则 raise ValueError
    _check_steps(num_warmup_steps, num_training_steps)
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio={min_lr_ratio} must be in [0, 1]")
    if not num_cycles > 0:
        raise ValueError(f"num_cycles={num_cycles} must be > 0")
    # Step 2: 用 functools.partial 把步数参数绑定到 cosine_lr_lambda 上，得到只接受 current_step 的函数，
    #         return LambdaLR(optimizer, lr_lambda, last_epoch)
    #         (LambdaLR 每次 step() 令 group["lr"] = initial_lr * lr_lambda(步数)，构造时就按第 0 步设置一次)
    lr_lambda = functools.partial(
        cosine_lr_lambda,
        num_warmup_steps=num_warmup_steps,
        num_training_steps=num_training_steps,
        min_lr_ratio=min_lr_ratio,
        num_cycles=num_cycles,
    )
    return LambdaLR(optimizer, lr_lambda, last_epoch)


def get_linear_schedule_with_warmup(
    optimizer: torch.optim.Optimizer, num_warmup_steps: int, num_training_steps: int, last_epoch: int = -1
) -> LambdaLR:
    """Linear warmup to each group's lr, then a linear decay to 0 at ``num_training_steps``.

    Args:
        optimizer: its groups' current ``lr`` become the peak values.
        num_warmup_steps: W >= 0.
        num_training_steps: T >= W.
        last_epoch: index of the last step when resuming (-1: start fresh).
    Returns:
        a ``LambdaLR`` calling ``linear_lr_lambda``.
    Raises:
        ValueError: W < 0 or T < W.
    """
    # Step 1: 校验 num_warmup_steps >= 0 且 num_training_steps >= num_warmup_steps，否则 raise ValueError
    _check_steps(num_warmup_steps, num_training_steps)
    # Step 2: lr_lambda = functools.partial(linear_lr_lambda, num_warmup_steps=..., num_training_steps=...)，
    #         return LambdaLR(optimizer, lr_lambda, last_epoch)
    lr_lambda = functools.partial(
        linear_lr_lambda, num_warmup_steps=num_warmup_steps, num_training_steps=num_training_steps
    )
    return LambdaLR(optimizer, lr_lambda, last_epoch)


def get_constant_schedule_with_warmup(
    optimizer: torch.optim.Optimizer, num_warmup_steps: int, last_epoch: int = -1
) -> LambdaLR:
    """Linear warmup to each group's lr, then constant.

    Args:
        optimizer: its groups' current ``lr`` become the values after warmup.
        num_warmup_steps: W >= 0.
        last_epoch: index of the last step when resuming (-1: start fresh).
    Returns:
        a ``LambdaLR`` calling ``constant_lr_lambda``.
    Raises:
        ValueError: W < 0.
    """
    # Step 1: 校验 num_warmup_steps >= 0，否则 raise ValueError
    _check_steps(num_warmup_steps)
    # Step 2: lr_lambda = functools.partial(constant_lr_lambda, num_warmup_steps=num_warmup_steps)，
    #         return LambdaLR(optimizer, lr_lambda, last_epoch)
    lr_lambda = functools.partial(constant_lr_lambda, num_warmup_steps=num_warmup_steps)
    return LambdaLR(optimizer, lr_lambda, last_epoch)
