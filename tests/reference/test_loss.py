"""Losses of lesson 07 against their oracles.

- ``cross_entropy_loss`` == ``torch.nn.functional.cross_entropy`` (classes moved to the
  last axis) for every reduction, ``ignore_index`` and ``label_smoothing``, in values and
  in gradients; it stays finite for half-precision logits of magnitude 1e4, where a naive
  softmax overflows, and returns float32.
- ``preference_loss`` == ``-log(sigmoid(chosen - rejected)).mean()`` computed in float64
  where that is representable, and stays finite (with the right gradient) where it is not.

Tolerances: float32 losses of O(1..10) that differ from torch only in the order of the
same float32 operations (``lse - x_y`` against ``log_softmax`` then gather) are compared
at atol = rtol = 1e-6, a few float32 ulps. Half-precision logits are compared with
torch on the same logits upcast to float32: both then compute in float32 (1e-6 again).
"""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from intro2llm.loss.cross_entropy import cross_entropy_loss
from intro2llm.loss.dpo_loss import preference_loss

TIGHT = {"atol": 1e-6, "rtol": 1e-6}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    random.seed(0)


def _oracle(logits, labels, **kwargs):
    """torch's cross-entropy with classes on the last axis of ``logits`` [..., C]."""
    c = logits.shape[-1]
    out = F.cross_entropy(logits.reshape(-1, c), labels.reshape(-1), **kwargs)
    return out.reshape(labels.shape) if kwargs.get("reduction") == "none" else out


def _lm_batch(b=3, s=7, vocab=50, scale=3.0, ignore_frac=0.3):
    logits = torch.randn(b, s, vocab) * scale
    labels = torch.randint(0, vocab, (b, s))
    labels[torch.rand(b, s) < ignore_frac] = -100
    return logits, labels


# ----- cross_entropy_loss -------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
def test_cross_entropy_matches_torch_for_every_option(reduction, label_smoothing):
    """[b, s, V] logits with ~30% ignored labels: values at 1e-6."""
    logits, labels = _lm_batch()
    kwargs = {"label_smoothing": label_smoothing, "reduction": reduction}
    out = cross_entropy_loss(logits, labels, **kwargs)
    expected = _oracle(logits, labels, ignore_index=-100, **kwargs)
    assert out.dtype == torch.float32 and out.shape == expected.shape
    torch.testing.assert_close(out, expected, **TIGHT)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_gradients_match_torch(reduction, label_smoothing):
    """d loss / d logits (softmax - target, masked and scaled by the reduction) at 1e-6."""
    logits, labels = _lm_batch(b=2, s=5, vocab=11)
    ours = logits.clone().requires_grad_()
    ref = logits.clone().requires_grad_()
    upstream = torch.randn(labels.shape) if reduction == "none" else torch.tensor(1.0)
    kwargs = {"label_smoothing": label_smoothing, "reduction": reduction}
    (cross_entropy_loss(ours, labels, **kwargs) * upstream).sum().backward()
    (_oracle(ref, labels, **kwargs) * upstream).sum().backward()
    torch.testing.assert_close(ours.grad, ref.grad, **TIGHT)


def test_cross_entropy_custom_ignore_index_and_flat_inputs():
    """ignore_index=0 on [N, C] logits: position with label 0 is skipped, as in torch."""
    logits = torch.randn(20, 6)
    labels = torch.randint(0, 6, (20,))
    out = cross_entropy_loss(logits, labels, ignore_index=0)
    torch.testing.assert_close(out, F.cross_entropy(logits, labels, ignore_index=0), **TIGHT)


def test_cross_entropy_single_position_by_hand():
    """logits [0, ln 3] (p = [1/4, 3/4]): label 1 gives -ln(3/4) = 0.2877; with ε = 0.5 the
    loss is 0.5 * 0.2877 + 0.5 * mean(-ln 1/4, -ln 3/4) = 0.5 * 0.2877 + 0.5 * 0.8370 = 0.5623."""
    logits = torch.tensor([0.0, torch.log(torch.tensor(3.0)).item()])
    label = torch.tensor(1)
    torch.testing.assert_close(cross_entropy_loss(logits, label), torch.tensor(0.287682), **TIGHT)
    smoothed = 0.5 * 0.287682 + 0.5 * 0.5 * (1.386294 + 0.287682)
    torch.testing.assert_close(cross_entropy_loss(logits, label, label_smoothing=0.5), torch.tensor(smoothed), **TIGHT)


def test_cross_entropy_none_is_zero_at_ignored_positions_and_mean_counts_only_targets():
    logits, labels = _lm_batch(b=2, s=6, vocab=9, ignore_frac=0.5)
    labels[0, 0] = -100
    per_token = cross_entropy_loss(logits, labels, reduction="none")
    assert per_token.shape == labels.shape
    assert torch.all(per_token[labels == -100] == 0)
    n = (labels != -100).sum()
    torch.testing.assert_close(cross_entropy_loss(logits, labels), per_token.sum() / n, **TIGHT)


def test_cross_entropy_all_ignored_mean_is_nan_like_torch():
    """0 / 0: torch's mean over zero targets is nan; ours too (sum and none give zeros)."""
    logits = torch.randn(2, 3, 5)
    labels = torch.full((2, 3), -100)
    assert torch.isnan(cross_entropy_loss(logits, labels))
    assert torch.isnan(_oracle(logits, labels))
    assert cross_entropy_loss(logits, labels, reduction="sum") == 0
    assert torch.all(cross_entropy_loss(logits, labels, reduction="none") == 0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cross_entropy_half_precision_large_logits_stay_finite_and_float32(dtype):
    """Logits of magnitude 1e4: exp overflows (float16 above 11, bfloat16/float32 above 88),
    so a naive softmax gives inf / inf = nan. Log-sum-exp subtracts the row max first. The
    result is float32 and equals torch on the same logits upcast to float32."""
    logits = (torch.randn(2, 4, 32) * 1e4).to(dtype)
    labels = torch.randint(0, 32, (2, 4))
    e = logits.float().exp()  # exp(1e4) = inf
    naive = -torch.log(e / e.sum(-1, keepdim=True))  # inf / inf = nan
    assert not torch.isfinite(naive).all()
    for reduction in ("mean", "none"):
        out = cross_entropy_loss(logits, labels, label_smoothing=0.1, reduction=reduction)
        assert out.dtype == torch.float32 and torch.isfinite(out).all()
        expected = _oracle(logits.float(), labels, label_smoothing=0.1, reduction=reduction)
        torch.testing.assert_close(out, expected, **TIGHT)


def test_cross_entropy_float64_stays_float64():
    logits = torch.randn(4, 7, dtype=torch.float64)
    labels = torch.randint(0, 7, (4,))
    out = cross_entropy_loss(logits, labels)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, F.cross_entropy(logits, labels), atol=1e-12, rtol=1e-12)


def test_cross_entropy_gradcheck_float64():
    logits = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([1, -100, 4])
    assert torch.autograd.gradcheck(lambda x: cross_entropy_loss(x, labels, label_smoothing=0.1), (logits,))


@pytest.mark.parametrize(
    ("logits_shape", "labels", "kwargs", "match"),
    [
        ((2, 3, 5), torch.zeros(2, 4, dtype=torch.long), {}, "shape"),
        ((2, 5), torch.zeros(2, 5, dtype=torch.long), {}, "shape"),
        ((2, 5), torch.zeros(2), {}, "integer"),
        ((2, 5), torch.zeros(2, dtype=torch.long), {"reduction": "avg"}, "reduction"),
        ((2, 5), torch.zeros(2, dtype=torch.long), {"label_smoothing": 1.5}, "label_smoothing"),
        ((2, 5), torch.tensor([1, 5]), {}, r"\[0, 5\)"),
        ((2, 5), torch.tensor([1, -1]), {}, r"\[0, 5\)"),
    ],
)
def test_cross_entropy_rejects_bad_inputs(logits_shape, labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cross_entropy_loss(torch.randn(logits_shape), labels, **kwargs)


# ----- preference_loss ----------------------------------------------------------------------


def test_preference_loss_matches_log_sigmoid_in_float64():
    """Moderate margins, where the direct formula is exact in float64: 1e-6."""
    chosen, rejected = torch.randn(16) * 3, torch.randn(16) * 3
    expected = -torch.log(torch.sigmoid((chosen - rejected).double())).mean()
    out = preference_loss(chosen, rejected)
    assert out.dim() == 0 and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), expected, **TIGHT)


def test_preference_loss_equal_scores_is_log_two_and_shift_invariant():
    """sigmoid(0) = 1/2, so the loss is ln 2; adding 100 to both scores changes nothing."""
    scores = torch.randn(8)
    torch.testing.assert_close(preference_loss(scores, scores), torch.tensor(0.693147), **TIGHT)
    chosen, rejected = torch.randn(8), torch.randn(8)
    torch.testing.assert_close(preference_loss(chosen + 100, rejected + 100), preference_loss(chosen, rejected), atol=1e-5, rtol=1e-5)


def test_preference_loss_is_stable_for_huge_margins():
    """margin -200: sigmoid underflows to 0 in float32 (log -> inf); logsigmoid gives 200,
    with gradient -1/b to the chosen score. margin +200: loss 0, gradient 0."""
    chosen = torch.tensor([0.0, 200.0], requires_grad=True)
    rejected = torch.tensor([200.0, 0.0])
    naive = -torch.log(torch.sigmoid(chosen.detach() - rejected))
    assert torch.isinf(naive[0])
    loss = preference_loss(chosen, rejected)
    torch.testing.assert_close(loss, torch.tensor(100.0))  # (200 + 0) / 2
    loss.backward()
    torch.testing.assert_close(chosen.grad, torch.tensor([-0.5, 0.0]))


def test_preference_loss_half_precision_returns_float32():
    chosen, rejected = torch.randn(4).bfloat16(), torch.randn(4).bfloat16()
    out = preference_loss(chosen, rejected)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, preference_loss(chosen.float(), rejected.float()), **TIGHT)


def test_preference_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        preference_loss(torch.zeros(3), torch.zeros(4))
