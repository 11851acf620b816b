"""AdamW and Lion against their oracles: ``torch.optim.AdamW`` and ``lion_pytorch.Lion``.

Each test trains two identical copies of a small model (embedding, two linear layers,
a LayerNorm and an unused frozen layer) on the same seeded batches for 200 steps, one
copy with ours and one with the oracle, with three parameter groups: matrices with
weight decay, biases / norm weights without, and the embedding with its own lr and betas.

Tolerances: AdamW performs torch's single-tensor operations in torch's order (``lerp`` for
``m``, ``sqrt(v) / sqrt(1 - β2**t)``), and on torch 2.13 the parameters are bit-identical
after 200 steps; the comparison is nevertheless atol = rtol = 1e-6 after every step, so a
torch release that reorders its float32 arithmetic (a foreach or fused kernel as the CPU
default) does not break the test: the textbook order ``sqrt(v / (1 - β2**t))`` with
``m.mul_().add_()`` stays within 0.4 of that tolerance over 200 steps here. Lion performs
``lion_pytorch``'s operations in the same order with no alternative kernel, so its
parameters are compared with ``torch.equal``: a single sign flip would move a coordinate
by 2·lr and must not hide under a tolerance.
"""

from __future__ import annotations

import copy
import io
import random

import pytest
import torch
from torch import nn

from intro2llm.optimizer.adamw import AdamW
from intro2llm.optimizer.lion import Lion

STEPS = 200
TIGHT = {"atol": 1e-6, "rtol": 1e-6}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    random.seed(0)



class _TinyModel(nn.Module):
    def __init__(self, vocab: int = 17, dim: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.fc1 = nn.Linear(dim, 16)
        self.norm = nn.LayerNorm(16)
        self.fc2 = nn.Linear(16, vocab)
        self.unused = nn.Linear(4, 4)  # never called: its grads stay None and must be skipped

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.norm(torch.relu(self.fc1(self.embed(ids)))))


def _groups(model: _TinyModel, decay_group: dict, embed_group: dict) -> list[dict]:
    decay = [model.fc1.weight, model.fc2.weight]
    no_decay = [model.fc1.bias, model.fc2.bias, model.norm.weight, model.norm.bias, *model.unused.parameters()]
    return [
        {"params": decay, **decay_group},
        {"params": no_decay, "weight_decay": 0.0},
        {"params": [model.embed.weight], **embed_group},
    ]


def _batches(n: int = STEPS, vocab: int = 17) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1234)
    return [(torch.randint(0, vocab, (4, 6), generator=g), torch.randint(0, vocab, (4, 6), generator=g)) for _ in range(n)]


def _train_step(model, opt, ids, targets) -> None:
    opt.zero_grad()
    logits = model(ids)
    nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)).backward()
    opt.step()


def _assert_params(ours, oracle, exact: bool, where: str) -> None:
    for (name, p), q in zip(ours.named_parameters(), oracle.parameters(), strict=True):
        if exact:
            assert torch.equal(p, q), f"{name} differs {where}"
        elif not torch.allclose(p, q, **TIGHT):  # cheap check every step, full report on failure
            torch.testing.assert_close(p, q, **TIGHT, msg=lambda m, name=name: f"{name} {where}: {m}")


def _run_side_by_side(make_ours, make_oracle, exact: bool, resume_at: int | None = None) -> None:
    """Train two copies step by step; optionally rebuild ours from a saved state at ``resume_at``."""
    model = _TinyModel()
    oracle_model = copy.deepcopy(model)
    opt, oracle_opt = make_ours(model), make_oracle(oracle_model)
    for i, (ids, targets) in enumerate(_batches()):
        if i == resume_at:
            buffer = io.BytesIO()
            torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
            buffer.seek(0)
            saved = torch.load(buffer, weights_only=True)
            model = _TinyModel()
            model.load_state_dict(saved["model"])
            opt = make_ours(model)  # fresh optimizer: everything must come from the state dict
            opt.load_state_dict(saved["opt"])
        _train_step(model, opt, ids, targets)
        _train_step(oracle_model, oracle_opt, ids, targets)
        _assert_params(model, oracle_model, exact, f"after step {i + 1}")
    assert model.unused.weight.grad is None


# ----- AdamW --------------------------------------------------------------------------------

ADAMW_DECAY = {"weight_decay": 0.1}
ADAMW_EMBED = {"lr": 3e-3, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.05}


def _adamw(cls):
    return lambda model: cls(_groups(model, ADAMW_DECAY, ADAMW_EMBED), lr=1e-2, betas=(0.9, 0.999), eps=1e-8)


def test_adamw_matches_torch_adamw_for_200_steps():
    _run_side_by_side(_adamw(AdamW), _adamw(torch.optim.AdamW), exact=False)


def test_adamw_resumes_exactly_from_state_dict():
    """Save after 100 steps, rebuild model and optimizer, load both: still on torch's track."""
    _run_side_by_side(_adamw(AdamW), _adamw(torch.optim.AdamW), exact=False, resume_at=100)


def test_adamw_state_has_step_and_both_moments():
    model = _TinyModel()
    opt = AdamW(model.parameters())
    _train_step(model, opt, *_batches(1)[0])
    state = opt.state[model.fc1.weight]
    assert state["step"] == 1
    assert state["exp_avg"].shape == state["exp_avg_sq"].shape == model.fc1.weight.shape
    assert model.unused.weight not in opt.state


def test_adamw_first_step_moves_every_coordinate_by_lr():
    """Bias correction on step 1: m̂ = g and v̂ = g², so the update is lr * g / (|g| + eps)
    ≈ lr * sign(g) (without correction it would be ~0.1 / sqrt(0.001) ≈ 3.2x larger)."""
    p = nn.Parameter(torch.zeros(5))
    p.grad = torch.tensor([1.0, -2.0, 3.0, -0.5, 10.0])
    AdamW([p], lr=0.1, eps=0.0, weight_decay=0.0).step()
    torch.testing.assert_close(p.detach(), -0.1 * p.grad.sign())


def test_adamw_weight_decay_is_decoupled_from_the_gradient():
    """Zero gradient: m = v = 0, so the update is 0 and only the decay acts: p *= 1 - lr * wd.
    (L2 through the gradient would instead give an update of lr * sign(p) on this step.)"""
    p = nn.Parameter(torch.full((3,), 2.0))
    p.grad = torch.zeros(3)
    AdamW([p], lr=0.1, weight_decay=0.5).step()
    torch.testing.assert_close(p.detach(), torch.full((3,), 2.0 * (1 - 0.1 * 0.5)))


def test_adamw_closure_is_called_with_grad_enabled():
    model = _TinyModel()
    opt = AdamW(model.parameters())
    ids, targets = _batches(1)[0]

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(ids).reshape(-1, 17), targets.reshape(-1))
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss is not None and loss.requires_grad


def test_adamw_rejects_sparse_gradients():
    emb = nn.Embedding(10, 4, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        AdamW(emb.parameters()).step()


@pytest.mark.parametrize(
    "kwargs",
    [{"lr": -1e-3}, {"eps": -1e-8}, {"betas": (1.0, 0.999)}, {"betas": (0.9, -0.1)}, {"weight_decay": -0.1}],
)
def test_adamw_rejects_bad_hyperparameters_like_torch(kwargs):
    params = [nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError):
        torch.optim.AdamW(params, **kwargs)
    with pytest.raises(ValueError):
        AdamW(params, **kwargs)
    with pytest.raises(ValueError):  # also per parameter group
        AdamW([{"params": params, **kwargs}])


# ----- Lion ---------------------------------------------------------------------------------

LION_DECAY = {"weight_decay": 0.3}
LION_EMBED = {"lr": 5e-4, "betas": (0.95, 0.98), "weight_decay": 0.1}


def _lion(cls):
    return lambda model: cls(_groups(model, LION_DECAY, LION_EMBED), lr=1e-3, betas=(0.9, 0.99))


def test_lion_matches_lion_pytorch_for_200_steps():
    from lion_pytorch import Lion as OracleLion

    _run_side_by_side(_lion(Lion), _lion(OracleLion), exact=True)


def test_lion_resumes_exactly_from_state_dict():
    from lion_pytorch import Lion as OracleLion

    _run_side_by_side(_lion(Lion), _lion(OracleLion), exact=True, resume_at=100)


def test_lion_first_step_is_sign_of_gradient_and_momentum_comes_after():
    """m = 0 at first: update = sign((1 - β1) g) = sign(g); then m = (1 - β2) g."""
    p = nn.Parameter(torch.ones(4))
    p.grad = torch.tensor([0.5, -2.0, 0.0, 1e-9])
    opt = Lion([p], lr=0.1, betas=(0.9, 0.99), weight_decay=1.0)
    opt.step()
    # decay: 1 * (1 - 0.1 * 1.0) = 0.9; then -0.1 * sign(g)
    torch.testing.assert_close(p.detach(), torch.tensor([0.8, 1.0, 0.9, 0.8]))
    torch.testing.assert_close(opt.state[p]["exp_avg"], 0.01 * p.grad)


def test_lion_keeps_one_state_tensor_per_parameter():
    model = _TinyModel()
    opt = Lion(model.parameters())
    _train_step(model, opt, *_batches(1)[0])
    assert set(opt.state[model.fc1.weight]) == {"exp_avg"}


@pytest.mark.parametrize("kwargs", [{"lr": 0.0}, {"lr": -1e-4}, {"betas": (1.1, 0.99)}, {"weight_decay": -1.0}])
def test_lion_rejects_bad_hyperparameters(kwargs):
    with pytest.raises(ValueError):
        Lion([nn.Parameter(torch.zeros(2))], **kwargs)
