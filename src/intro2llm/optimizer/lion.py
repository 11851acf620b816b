"""Lion: EvoLved Sign Momentum (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms").

Notation: ``p`` a parameter, ``g`` its gradient, ``m`` the momentum (``exp_avg``),
``lr`` the learning rate, ``wd`` the weight decay.

One step, for every parameter with a gradient::

    p = p * (1 - lr * wd)                        # decoupled weight decay, as in AdamW
    p = p - lr * sign(β1 * m + (1 - β1) * g)     # every coordinate moves by exactly ±lr (or 0)
    m = β2 * m + (1 - β2) * g                    # momentum updated *after* the sign

Two different interpolations: the update mixes in the new gradient with β1 = 0.9,
the momentum remembers with the slower β2 = 0.99. Compared with AdamW:

- *memory*: one state tensor per parameter (``m``) instead of two (``m``, ``v``);
- *update size*: the sign gives every coordinate the same magnitude ``lr``, larger
  than Adam's typical update, so Lion wants a 3-10x smaller ``lr`` and a 3-10x
  larger ``wd`` (the paper's advice) to keep ``lr * wd`` similar;
- no bias correction and no ``eps``: a sign needs neither.

The arithmetic (and its order) is ``lion_pytorch.Lion``'s (``decoupled_weight_decay=False``),
so the two produce identical parameters. State per parameter: ``exp_avg``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch


def _check_hyperparameters(lr: float, betas: tuple[float, float], weight_decay: float) -> None:
    """ValueErrors for hyper-parameters that make no sense (``lion_pytorch`` asserts the same)."""
    if not lr > 0.0:
        raise ValueError(f"Invalid learning rate: {lr} (lr must be > 0)")
    if len(betas) != 2:
        raise ValueError(f"betas={betas} must be a pair (beta1, beta2)")
    for i, beta in enumerate(betas):
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta} (betas must be in [0, 1])")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay} (weight_decay must be >= 0)")


class Lion(torch.optim.Optimizer):
    """The Lion optimiser: sign of an interpolated momentum, with decoupled weight decay.

    Args:
        params: parameters, or dicts of parameter groups; any hyper-parameter below can
            be set per group.
        lr: learning rate (> 0); typically 3-10x smaller than AdamW's.
        betas: (β1, β2) in [0, 1]: β1 mixes the gradient into the update, β2 into the momentum.
        weight_decay: decoupled weight decay (>= 0); the step multiplies ``p`` by ``1 - lr * wd``.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
    ) -> None:
        _check_hyperparameters(lr, betas, weight_decay)
        defaults = {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay}
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (``torch.optim.Optimizer`` fills in the defaults) and check its hyper-parameters."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        _check_hyperparameters(group["lr"], group["betas"], group["weight_decay"])

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient by one Lion step.

        For each parameter ``p`` with gradient ``g``, in place, with the hyper-parameters
        of ``p``'s group::

            p = p * (1 - lr * wd)
            p = p - lr * sign(β1 * m + (1 - β1) * g)
            m = β2 * m + (1 - β2) * g

        Args:
            closure: optional; re-evaluates the model and returns the loss. Called with
                gradients enabled.
        Returns:
            the closure's loss, or None without a closure.

        State per parameter (``self.state[p]``): ``"exp_avg"`` m, shaped like ``p``,
        created at zero on the first step.
        """
        # Step 1: closure 不为 None 时在 with torch.enable_grad(): 里调用 loss = closure()；否则 loss = None
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Step 2: 遍历 self.param_groups 的每个 group，读出 lr = group["lr"]，beta1, beta2 = group["betas"]，
        #         weight_decay = group["weight_decay"]；再遍历 group["params"] 中的 p，p.grad 为 None 时 continue
        for group in self.param_groups:
            lr = group["lr"]
            beta1, beta2 = group["betas"]
            weight_decay = group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                # Step 3: 状态 state = self.state[p]；第一次 (len(state) == 0) 时 state["exp_avg"] = torch.zeros_like(p)；
                #         exp_avg = state["exp_avg"] (Lion 只有这一个状态张量，比 AdamW 省一半优化器显存)
                state = self.state[p]
                if len(state) == 0:
                    state["exp_avg"] = torch.zeros_like(p)
                exp_avg = state["exp_avg"]
                # Step 4: 解耦权重衰减：p.mul_(1 - lr * weight_decay)
                p.mul_(1 - lr * weight_decay)
                # Step 5: 更新方向取符号：update = exp_avg.mul(beta1).add(grad, alpha=1 - beta1).sign_()
                #         (用的是更新动量 *之前* 的 m；mul 不是 mul_，不能改动 exp_avg)；
                #         然后 p.add_(update, alpha=-lr)：每个坐标都恰好移动 lr (符号为 0 时不动)
                update = exp_avg.mul(beta1).add(grad, alpha=1 - beta1).sign_()
                p.add_(update, alpha=-lr)
                # Step 6: 最后才更新动量：exp_avg.mul_(beta2).add_(grad, alpha=1 - beta2)
                #         (beta2 = 0.99 比 beta1 = 0.9 记得更久；先更新再取符号就成了另一个算法)
                exp_avg.mul_(beta2).add_(grad, alpha=1 - beta2)
        # Step 7: return loss
        return loss
