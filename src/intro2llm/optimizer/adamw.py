"""AdamW: Adam with bias correction and decoupled weight decay (Loshchilov & Hutter, 2019).

Notation: ``p`` a parameter, ``g`` its gradient, ``m`` / ``v`` the running first and
second moments (``exp_avg`` / ``exp_avg_sq``), ``t`` the number of steps taken
(1 on the first step), ``lr`` the learning rate, ``wd`` the weight decay.

One step, for every parameter with a gradient::

    p = p * (1 - lr * wd)                      # decoupled weight decay
    m = β1 * m + (1 - β1) * g                  # mean of the gradient
    v = β2 * v + (1 - β2) * g * g              # mean of its square
    m̂ = m / (1 - β1**t),  v̂ = v / (1 - β2**t)   # bias correction
    p = p - lr * m̂ / (sqrt(v̂) + eps)

*Bias correction*: ``m`` and ``v`` start at zero, so early on they are too small:
after one step ``m = (1 - β1) * g``, a tenth of the gradient for β1 = 0.9, and
``v = (1 - β2) * g²``, a thousandth for β2 = 0.999. For a constant gradient
``m_t = (1 - β1**t) * g``, so dividing by ``1 - β1**t`` gives back ``g`` exactly.

*Decoupled decay*: Adam with L2 regularisation adds ``wd * p`` to the gradient,
where ``sqrt(v̂)`` then divides it: parameters with large gradients are barely
decayed. AdamW shrinks the parameter directly, the same fraction ``lr * wd`` for
every weight, and keeps the decay out of ``m`` and ``v``.

The arithmetic, down to the order of the float operations, is ``torch.optim.AdamW``'s
(``amsgrad=False``, ``maximize=False``, the default single-tensor path): the decay comes
first, ``m`` is a ``lerp`` towards ``g``, ``sqrt(v̂)`` is ``sqrt(v) / sqrt(1 - β2**t)`` and
``eps`` is added after the square root, so the two follow the same trajectory (the tests
check 200 steps). State per parameter:
``step`` (int), ``exp_avg`` and ``exp_avg_sq`` (like ``p``); it survives
``state_dict()`` / ``load_state_dict()``, so training resumes exactly.

    >>> model = torch.nn.Linear(4, 2)
    >>> opt = AdamW([{"params": [model.weight], "weight_decay": 0.1},
    ...              {"params": [model.bias], "weight_decay": 0.0}], lr=1e-3)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch


def _check_hyperparameters(lr: float, betas: tuple[float, float], eps: float, weight_decay: float) -> None:
    """The checks of ``torch.optim.AdamW``, as ValueErrors that say what is allowed."""
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr} (lr must be >= 0)")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps} (eps must be >= 0)")
    if len(betas) != 2:
        raise ValueError(f"betas={betas} must be a pair (beta1, beta2)")
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta} (betas must be in [0, 1))")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay} (weight_decay must be >= 0)")


class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay, a drop-in for ``torch.optim.AdamW`` (without amsgrad).

    Args:
        params: parameters, or dicts of parameter groups (``{"params": [...], "lr": ...}``);
            any hyper-parameter below can be set per group.
        lr: learning rate (>= 0).
        betas: (β1, β2) in [0, 1): decay rates of the first and second moment.
        eps: added to ``sqrt(v̂)`` so the division never blows up (>= 0).
        weight_decay: decoupled weight decay (>= 0); the step multiplies ``p`` by ``1 - lr * wd``.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        _check_hyperparameters(lr, betas, eps, weight_decay)
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (``torch.optim.Optimizer`` fills in the defaults) and check its hyper-parameters."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        _check_hyperparameters(group["lr"], group["betas"], group["eps"], group["weight_decay"])

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient by one AdamW step.

        For each parameter ``p`` with gradient ``g``, in place, with the hyper-parameters
        of ``p``'s group and ``t`` = this parameter's step count (1 on its first step)::

            p = p * (1 - lr * wd)
            m = β1 * m + (1 - β1) * g;     v = β2 * v + (1 - β2) * g * g
            p = p - lr * (m / (1 - β1**t)) / (sqrt(v / (1 - β2**t)) + eps)

        Args:
            closure: optional; re-evaluates the model and returns the loss (needed by
                some optimisers, accepted by all). Called with gradients enabled.
        Returns:
            the closure's loss, or None without a closure.
        Raises:
            RuntimeError: a sparse gradient (``nn.Embedding(sparse=True)``), which AdamW
                does not support.

        State per parameter (``self.state[p]``): ``"step"`` int, ``"exp_avg"`` m and
        ``"exp_avg_sq"`` v, both shaped like ``p``, created at zero on the first step.
        """
        # Step 1: closure 不为 None 时 loss = closure()，要包在 with torch.enable_grad(): 里
        #         (step 本身在 @torch.no_grad() 下运行，参数的原地更新不进入计算图)；否则 loss = None
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Step 2: 遍历 self.param_groups 的每个 group，读出本组超参数：lr = group["lr"]，
        #         beta1, beta2 = group["betas"]，eps = group["eps"]，weight_decay = group["weight_decay"]
        #         (不同参数组可以有不同的 lr 和 weight_decay，例如 bias 和 norm 的权重不做衰减)
        for group in self.param_groups:
            lr = group["lr"]
            beta1, beta2 = group["betas"]
            eps, weight_decay = group["eps"], group["weight_decay"]
            # Step 3: 遍历 group["params"] 中的每个参数 p：p.grad 为 None 时 continue (冻结或本步没用到的参数)；
            #         grad = p.grad，grad.is_sparse 时 raise RuntimeError (AdamW 不支持稀疏梯度，
            #         提示改用 nn.Embedding(sparse=False) 或 torch.optim.SparseAdam)
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise RuntimeError(
                        "AdamW does not support sparse gradients: use nn.Embedding(sparse=False) "
                        "or torch.optim.SparseAdam"
                    )
                # Step 4: 状态 state = self.state[p]；第一次 (len(state) == 0) 时初始化 state["step"] = 0、
                #         state["exp_avg"] = torch.zeros_like(p) (一阶矩 m)、state["exp_avg_sq"] = torch.zeros_like(p) (二阶矩 v)；
                #         然后 state["step"] += 1，t = state["step"] (第一步 t = 1)
                #         (状态都放在 self.state 里，state_dict() / load_state_dict() 才能保存和恢复它们)
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                # Step 5: 解耦权重衰减，直接缩小参数：p.mul_(1 - lr * weight_decay)
                #         (先衰减再更新，与 torch.optim.AdamW 相同；衰减不加进 grad，所以不会被 sqrt(v) 除掉，也不进入 m、v)
                p.mul_(1 - lr * weight_decay)
                # Step 6: 原地更新两个矩 (指数滑动平均)：
                #         m = beta1 * m + (1 - beta1) * g，即从 m 向 g 线性插值：exp_avg.lerp_(grad, 1 - beta1)；
                #         v = beta2 * v + (1 - beta2) * g * g：exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                # Step 7: 偏差修正：bias_correction1 = 1 - beta1 ** t，bias_correction2 = 1 - beta2 ** t
                #         (m、v 从 0 开始，前几步偏小；常数梯度下 m_t = (1 - beta1 ** t) * g，除以它正好还原 g)
                bias_correction1 = 1 - beta1**t
                bias_correction2 = 1 - beta2**t
                # Step 8: 更新参数 p = p - lr * m_hat / (sqrt(v_hat) + eps)，m_hat = m / bias_correction1，
                #         sqrt(v_hat) = sqrt(v) / sqrt(bias_correction2)，eps 加在开方之后：
                #         denom = (exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(eps)，
                #         p.addcdiv_(exp_avg, denom, value=-lr / bias_correction1) (即 p += value * exp_avg / denom)
                denom = (exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(eps)
                p.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)
        # Step 9: return loss
        return loss
