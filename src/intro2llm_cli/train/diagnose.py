"""Which component to suspect when a run's loss or gradients stop being finite numbers."""

from __future__ import annotations

import math
from typing import Any


def explain_nonfinite(model: Any) -> str:
    """One line naming the first module whose weights, then whose gradients, are not finite.

    Weights that are nan / inf mean an earlier update blew up (learning rate, loss scale);
    finite weights with nan gradients point at the module whose backward overflowed; if
    both are finite, the forward itself produced the nan (a division, a log of zero, a
    mask filled with -inf on a whole row, token ids out of range).
    """
    import torch

    weights, grads = [], []
    norms: dict[str, float] = {}
    for name, param in model.named_parameters():
        module = name.rsplit(".", 1)[0]
        if not bool(torch.isfinite(param).all()):
            weights.append(module)
        if param.grad is not None:
            value = float(param.grad.float().norm())
            norms[module] = math.hypot(norms.get(module, 0.0), value) if math.isfinite(value) else value
            if not math.isfinite(value):
                grads.append(module)
    if weights:
        return f"weights of {_first(weights)} are not finite: an earlier step blew up; lower the learning rate"
    if grads:
        return f"gradients of {_first(grads)} are not finite first (per-module grad norms checked): look at its backward"
    if norms:
        biggest = max(norms, key=lambda k: norms[k])
        return f"weights and gradients are finite; the largest gradient norm is {biggest} ({norms[biggest]:.3g}): " \
               "look at the forward and the loss (log of 0, division, token ids >= vocab_size)"
    return "weights are finite: look at the forward and the loss (log of 0, division, token ids >= vocab_size)"


def _first(modules: list[str]) -> str:
    unique = list(dict.fromkeys(modules))
    more = f" (and {len(unique) - 1} more)" if len(unique) > 1 else ""
    return unique[0] + more
