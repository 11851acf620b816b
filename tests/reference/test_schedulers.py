"""Warmup schedules against ``transformers``' functions of the same names.

Each schedule drives a real optimizer with two parameter groups (different peak lrs)
through ``scheduler.step()``, side by side with ``transformers``' schedule, and the
learning rates are compared at every step from 0 to ``num_training_steps``. Both sides
evaluate the same float64 expression, so the comparison is exact up to 1e-12
(relative), which only leaves room for ``r + (1 - r) * f`` being written in another
order when ``min_lr_ratio > 0``.

One documented difference is checked on purpose: past ``num_training_steps``
``transformers``' cosine rises again, ours stays at its minimum.
"""

from __future__ import annotations

import math

import pytest
import torch

from intro2llm.optimizer.scheduler import (
    constant_lr_lambda,
    cosine_lr_lambda,
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
    linear_lr_lambda,
)

PEAKS = (1e-3, 3e-4)
# (num_warmup_steps, num_training_steps): usual, no warmup, all warmup, one step of decay
LENGTHS = [(10, 50), (0, 20), (7, 7), (5, 6), (3, 100)]


def _optimizer() -> torch.optim.Optimizer:
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]
    return torch.optim.SGD([{"params": [params[0]], "lr": PEAKS[0]}, {"params": [params[1]], "lr": PEAKS[1]}])


def _lrs(make_scheduler, steps: int) -> list[list[float]]:
    """The lrs of both groups at step 0 (right after construction) .. ``steps``."""
    opt = _optimizer()
    scheduler = make_scheduler(opt)
    lrs = [scheduler.get_last_lr()]
    for _ in range(steps):
        opt.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr())
    return lrs


def _assert_same(ours: list[list[float]], theirs: list[list[float]]) -> None:
    assert len(ours) == len(theirs)
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-18), f"step {step}: {a} != {b}"


@pytest.mark.parametrize(("warmup", "total"), LENGTHS)
def test_cosine_matches_transformers_at_every_step(warmup, total):
    from transformers import get_cosine_schedule_with_warmup as hf

    ours = _lrs(lambda o: get_cosine_schedule_with_warmup(o, warmup, total), total)
    _assert_same(ours, _lrs(lambda o: hf(o, warmup, total), total))


@pytest.mark.parametrize("num_cycles", [0.5, 1.0, 1.5])
def test_cosine_num_cycles_matches_transformers(num_cycles):
    from transformers import get_cosine_schedule_with_warmup as hf

    ours = _lrs(lambda o: get_cosine_schedule_with_warmup(o, 4, 40, num_cycles=num_cycles), 40)
    _assert_same(ours, _lrs(lambda o: hf(o, 4, 40, num_cycles=num_cycles), 40))


@pytest.mark.parametrize("min_lr_ratio", [0.1, 0.5])
def test_cosine_min_lr_ratio_matches_transformers_lambda(min_lr_ratio):
    """transformers' public min-lr schedule shifts its steps by one (``step + 1``); its base
    cosine lambda with ``min_lr_rate`` is the same curve as ours, so that is the oracle."""
    from transformers.optimization import _get_cosine_schedule_with_warmup_lr_lambda as hf

    for step in range(0, 31):
        expected = hf(step, num_warmup_steps=5, num_training_steps=30, num_cycles=0.5, min_lr_rate=min_lr_ratio)
        ours = cosine_lr_lambda(step, num_warmup_steps=5, num_training_steps=30, min_lr_ratio=min_lr_ratio)
        assert ours == pytest.approx(expected, rel=1e-12), step
    assert cosine_lr_lambda(30, num_warmup_steps=5, num_training_steps=30, min_lr_ratio=min_lr_ratio) == pytest.approx(min_lr_ratio)


@pytest.mark.parametrize(("warmup", "total"), LENGTHS)
def test_linear_matches_transformers_at_every_step_and_beyond(warmup, total):
    """Linear decay is clamped at 0 in both, so they agree past the end too."""
    from transformers import get_linear_schedule_with_warmup as hf

    ours = _lrs(lambda o: get_linear_schedule_with_warmup(o, warmup, total), total + 10)
    _assert_same(ours, _lrs(lambda o: hf(o, warmup, total), total + 10))


@pytest.mark.parametrize("warmup", [0, 1, 8])
def test_constant_matches_transformers_at_every_step(warmup):
    from transformers import get_constant_schedule_with_warmup as hf

    ours = _lrs(lambda o: get_constant_schedule_with_warmup(o, warmup), 30)
    _assert_same(ours, _lrs(lambda o: hf(o, warmup), 30))


def test_first_step_uses_lr_zero_and_warmup_reaches_the_peak_at_step_w():
    """transformers' convention: lr(0) = 0 (the first optimizer step does nothing), lr(W) = peak."""
    lrs = _lrs(lambda o: get_cosine_schedule_with_warmup(o, 4, 20), 4)
    assert lrs[0] == [0.0, 0.0]
    assert lrs[2] == pytest.approx([PEAKS[0] / 2, PEAKS[1] / 2])
    assert lrs[4] == pytest.approx(list(PEAKS))


def test_lambdas_by_hand():
    """The docstring examples: W = 2, T = 6 (cosine: 0.5 * (1 + cos(pi * k / 4)) after warmup)."""
    cos = [cosine_lr_lambda(s, num_warmup_steps=2, num_training_steps=6) for s in range(8)]
    assert cos == pytest.approx([0, 0.5, 1, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 - math.cos(math.pi / 4)), 0, 0], abs=1e-12)
    lin = [linear_lr_lambda(s, num_warmup_steps=2, num_training_steps=6) for s in range(8)]
    assert lin == pytest.approx([0, 0.5, 1, 0.75, 0.5, 0.25, 0, 0])
    assert [constant_lr_lambda(s, num_warmup_steps=4) for s in range(6)] == pytest.approx([0, 0.25, 0.5, 0.75, 1, 1])


def test_cosine_stays_at_minimum_past_the_end_where_transformers_rises_again():
    """Documented difference: 20 steps past T = 30, transformers' lr has climbed back
    (cos is periodic); ours holds the minimum (here min_lr_ratio = 0.1 of the peak)."""
    from transformers import get_cosine_schedule_with_warmup as hf

    theirs = _lrs(lambda o: hf(o, 5, 30), 50)
    assert theirs[50][0] > 0.3 * PEAKS[0]
    ours = _lrs(lambda o: get_cosine_schedule_with_warmup(o, 5, 30, min_lr_ratio=0.1), 50)
    assert all(lr[0] == pytest.approx(0.1 * PEAKS[0]) for lr in ours[30:])


def test_scheduler_resumes_from_state_dict():
    """A run restarted from the scheduler's state dict continues the same curve."""
    lrs = _lrs(lambda o: get_cosine_schedule_with_warmup(o, 5, 30), 30)
    opt = _optimizer()
    first = get_cosine_schedule_with_warmup(opt, 5, 30)
    for _ in range(12):
        opt.step()
        first.step()
    state = first.state_dict()
    opt2 = _optimizer()
    opt2.load_state_dict(opt.state_dict())
    resumed = get_cosine_schedule_with_warmup(opt2, 5, 30)
    resumed.load_state_dict(state)
    for step in range(13, 31):
        opt2.step()
        resumed.step()
        assert resumed.get_last_lr() == pytest.approx(lrs[step], rel=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        lambda o: get_cosine_schedule_with_warmup(o, -1, 10),
        lambda o: get_cosine_schedule_with_warmup(o, 10, 5),
        lambda o: get_cosine_schedule_with_warmup(o, 1, 10, min_lr_ratio=1.5),
        lambda o: get_cosine_schedule_with_warmup(o, 1, 10, num_cycles=0.0),
        lambda o: get_linear_schedule_with_warmup(o, 10, 5),
        lambda o: get_constant_schedule_with_warmup(o, -2),
    ],
)
def test_schedules_reject_bad_lengths(make):
    with pytest.raises(ValueError):
        make(_optimizer())
