"""Where two models with the same weights first disagree.

When a learner's whole model gives wrong logits, "logits differ" says nothing
about where to look. ``first_divergence`` runs the learner's model and the
reference on the same inputs with a forward hook on every submodule, then walks
the learner's modules in the order they *finished* (children before parents,
layer 0 before layer 1) and returns the first one whose output differs from the
reference module of the same name — e.g. ``layers.1.self_attn.o_proj`` — so the
message can say "everything up to here matches; this module is wrong".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .messages import t
from .testkit import lang


@dataclass
class Divergence:
    module: str  # dotted name, "" for the whole model
    max_diff: float
    index: list[int]
    shape_learner: list[int] | None = None
    shape_reference: list[int] | None = None

    def describe(self) -> str:
        if self.shape_learner != self.shape_reference:
            return t("divergence.shape", lang(), module=self.module or "(model)",
                     learner=self.shape_learner, reference=self.shape_reference)
        return t("divergence.values", lang(), module=self.module or "(model)",
                 max_diff=f"{self.max_diff:.3g}", index=self.index)


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        return next((item for item in (_first_tensor(x) for x in output) if item is not None), None)
    for name in ("logits", "last_hidden_state"):
        value = getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value
    return None


def _record(model: nn.Module, inputs: dict[str, Any]) -> tuple[list[str], dict[str, torch.Tensor]]:
    order: list[str] = []
    outputs: dict[str, torch.Tensor] = {}
    handles = []

    def hook_for(name: str):
        def hook(_module, _args, output):
            tensor = _first_tensor(output)
            if tensor is not None and name not in outputs:  # first call only
                order.append(name)
                outputs[name] = tensor.detach().to(torch.float64).cpu()
        return hook

    for name, module in model.named_modules():
        handles.append(module.register_forward_hook(hook_for(name)))
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    return order, outputs


def first_divergence(learner_model: nn.Module, reference_model: nn.Module, inputs: dict[str, Any],
                     atol: float = 1e-5, rtol: float = 1e-5) -> Divergence | None:
    """The first submodule (in finishing order) whose output differs beyond
    ``atol + rtol * |reference|``, or None when every module agrees.

    Both models must hold the same weights; ``inputs`` are keyword arguments of
    their ``forward``. Modules the reference lacks are skipped.
    """
    order, learner_out = _record(learner_model, inputs)
    _, reference_out = _record(reference_model, inputs)
    for name in order:
        if name not in reference_out:
            continue
        got, want = learner_out[name], reference_out[name]
        if got.shape != want.shape:
            return Divergence(name, float("inf"), [], list(got.shape), list(want.shape))
        diff = (got - want).abs().nan_to_num(nan=float("inf"))
        excess = diff - (atol + rtol * want.abs())
        if (excess > 0).any():
            flat = int(excess.argmax())
            index = [int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape)] if diff.dim() else []
            return Divergence(name, float(diff.flatten()[flat]), index, list(got.shape), list(want.shape))
    return None
