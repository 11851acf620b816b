"""Preference losses: the Bradley-Terry preview of lesson 07 (DPO itself comes in lesson 08).

Notation: ``b = batch`` (number of preference pairs).

- ``preference_loss``: the Bradley-Terry model of pairwise preferences, as used
  to train a reward model (InstructGPT): a pair (chosen, rejected) is explained by
  ``P(chosen ≻ rejected) = sigmoid(r_chosen - r_rejected)``, and the loss is the
  negative log-likelihood of the observed preferences::

      loss = mean(-log sigmoid(r_chosen - r_rejected)) = mean(softplus(r_rejected - r_chosen))

  Only the *difference* of the scores matters: adding a constant to both changes nothing.

Lesson 08 adds to this module ``sequence_logps`` (summed log-probabilities of the
completion tokens) and ``dpo_loss``, which puts ``β · (log π/π_ref)`` of chosen and
rejected answers in the place of the two scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def preference_loss(chosen_scores: torch.Tensor, rejected_scores: torch.Tensor) -> torch.Tensor:
    """Bradley-Terry loss ``mean(-log sigmoid(chosen - rejected))``, computed stably.

    ``torch.log(torch.sigmoid(m))`` breaks for a very wrong pair: at ``m = -120`` the
    float32 sigmoid underflows to 0, the log is ``-inf`` and the gradient nan.
    ``F.logsigmoid(m) = -softplus(-m) = min(m, 0) - log1p(exp(-|m|))`` never takes the
    log of a tiny number, so the loss is finite (≈ ``-m``) and its gradient ≈ -1 / b,
    the strongest push, exactly where it is needed.

    Args:
        chosen_scores: [b] float: scores (rewards) of the preferred answers.
        rejected_scores: [b] float, same shape: scores of the rejected answers.
    Returns:
        scalar: the mean loss over the batch, float32 for half-precision inputs
        (float64 stays float64). ``log 2 ≈ 0.693`` when the scores are equal.
    Raises:
        ValueError: the two tensors have different shapes.
    """
    # Step 1: chosen_scores.shape != rejected_scores.shape 时 raise ValueError (每个偏好对各有一个 chosen 和一个 rejected 分数)
    if chosen_scores.shape != rejected_scores.shape:
        raise ValueError(
            f"chosen_scores {tuple(chosen_scores.shape)} and rejected_scores "
            f"{tuple(rejected_scores.shape)} must have the same shape: one score of each per pair"
        )
    # Step 2: 升到至少 float32 后求分差 margin = chosen - rejected，形状 [b]：
    #         acc = torch.promote_types(chosen_scores.dtype, torch.float32)，margin = chosen_scores.to(acc) - rejected_scores.to(acc)
    acc = torch.promote_types(chosen_scores.dtype, torch.float32)
    margin = chosen_scores.to(acc) - rejected_scores.to(acc)  # [b]
    # Step 3: return -F.logsigmoid(margin).mean()
    #         (不要写 torch.log(torch.sigmoid(margin))：margin 很负时 sigmoid 下溢为 0，log 得到 -inf，梯度变成 nan)
    return -F.logsigmoid(margin).mean()
