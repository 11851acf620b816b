"""Preference losses: the Bradley-Terry preview of lesson 07 and DPO of lesson 08.

Notation: ``b = batch`` (number of preference pairs), ``s`` = sequence length,
``V`` = vocabulary size.

- ``preference_loss``: the Bradley-Terry model of pairwise preferences, as used
  to train a reward model (InstructGPT): a pair (chosen, rejected) is explained by
  ``P(chosen ≻ rejected) = sigmoid(r_chosen - r_rejected)``, and the loss is the
  negative log-likelihood of the observed preferences::

      loss = mean(-log sigmoid(r_chosen - r_rejected)) = mean(softplus(r_rejected - r_chosen))

  Only the *difference* of the scores matters: adding a constant to both changes nothing.

- ``sequence_logps``: ``log π(y | x)`` of whole answers, the sum (or mean) of the
  per-token log-probabilities of the label tokens (labels already shifted, -100 on
  the prompt and the padding, as ``DPODataset`` / ``dpo_collate`` write them).

- ``dpo_loss`` (Rafailov et al., 2023): the policy ``π`` *is* the reward model. Its
  implicit reward of an answer is ``r(x, y) = β · (log π(y|x) - log π_ref(y|x))``, and
  putting it into Bradley-Terry gives, with the log-ratio difference::

      logits = (log π(y_w) - log π(y_l)) - (log π_ref(y_w) - log π_ref(y_l))
      sigmoid: loss = -log sigmoid(β · logits)                      (DPO)
               with label smoothing ε (conservative DPO, cDPO: each label is wrong with
               probability ε): -(1 - ε) · log sigmoid(β · logits) - ε · log sigmoid(-β · logits)
      ipo:     loss = (logits - 1 / (2β))²                           (IPO, Azar et al., 2023)
      hinge:   loss = relu(1 - β · logits)                          (SLiC, Zhao et al., 2023)

  ``β`` sets how far the policy may drift from the frozen reference ``π_ref``: the
  loss flattens once ``β · logits`` is large (sigmoid), reaches the target margin
  ``1 / (2β)`` (ipo) or passes 1 (hinge). The same formulas as TRL's ``DPOTrainer``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .cross_entropy import IGNORE_INDEX  # -100: labels of prompt and padding positions

DPO_LOSS_TYPES = ("sigmoid", "ipo", "hinge")


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


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor, average: bool = False) -> torch.Tensor:
    """``log π(answer | prompt)`` of each sequence: the sum of its label tokens' log-probabilities.

    ``labels`` are **already shifted** (``labels[:, i]`` is the token after ``input_ids[:, i]``,
    -100 where nothing is scored), so position ``i`` of ``logits`` is scored against
    ``labels[:, i]`` directly; shifting again would score every token against the one
    after it. Summing only the answer tokens is enough for DPO: the shared prompt would add
    the same ``log π(prompt)`` to chosen and rejected and cancel in their difference.

    Args:
        logits: [b, s, V] float (any float dtype): the model's next-token logits.
        labels: [b, s] integer, already shifted; -100 (prompt, padding) is skipped.
        average: False: sum over the label tokens (DPO); True: their mean (IPO's
            length-normalised log-probability, as TRL computes it).
    Returns:
        [b]: float32 for half-precision / float32 logits (float64 stays float64).
        A row without any label token gives 0 (sum and mean alike, never nan).
    Raises:
        ValueError: ``logits`` is not [b, s, V], ``labels`` is not [b, s] of the same b, s,
            or ``labels`` are not integers.
    """
    # Step 1: logits.dim() != 3 或 labels.shape != logits.shape[:-1] 时 raise ValueError，说明怎么改：
    #         logits 是 [b, s, V]，labels 是 [b, s]，且 labels 已经错开一位 (来自 DPODataset / dpo_collate)，
    #         直接和同长度的 logits 对齐，不要再移位；labels 是浮点数 (labels.is_floating_point()) 时也 raise ValueError
    if logits.dim() != 3 or tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"logits {tuple(logits.shape)} must be [b, s, V] and labels {tuple(labels.shape)} [b, s] with the "
            "same b, s: labels from DPODataset are already shifted, pass them with the unshifted logits"
        )
    if labels.is_floating_point():
        raise ValueError(f"labels must hold integer token ids, got dtype {labels.dtype}")
    # Step 2: 升精度：x = logits.to(torch.promote_types(logits.dtype, torch.float32))，形状 [b, s, V]
    #         (bf16 / fp16 只有 8 / 11 位有效数字，几十个 token 的对数概率加起来误差太大；float64 保持不变)
    x = logits.to(torch.promote_types(logits.dtype, torch.float32))  # [b, s, V]
    # Step 3: 掩码 mask = labels != IGNORE_INDEX，形状 [b, s]；被忽略的位置换成合法的 0 以便 gather：
    #         safe_labels = labels.long().masked_fill(~mask, 0)
    mask = labels != IGNORE_INDEX  # [b, s]
    safe_labels = labels.long().masked_fill(~mask, 0)  # [b, s]
    # Step 4: 每个位置标签 token 的对数概率 log_softmax(x)[label] = x[label] - logsumexp(x)：
    #         per_token = x.gather(-1, safe_labels.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(x, dim=-1)，形状 [b, s]
    #         (logsumexp 先减去最大值，不会溢出；不必先算出整个 [b, s, V] 的 log_softmax)
    per_token = x.gather(-1, safe_labels.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(x, dim=-1)  # [b, s]
    # Step 5: 被忽略的位置置 0 后按行求和：total = per_token.masked_fill(~mask, 0.0).sum(dim=-1)，形状 [b]
    #         (用 masked_fill 而不是乘以 mask：被忽略位置的值即使是 inf / nan 也不会漏进结果)
    total = per_token.masked_fill(~mask, 0.0).sum(dim=-1)  # [b]
    # Step 6: average 为 True 时 return total / mask.sum(dim=-1).clamp(min=1) (没有标签 token 的行是 0 / 1 = 0，不是 nan)；
    #         否则 return total
    if average:
        return total / mask.sum(dim=-1).clamp(min=1)
    return total


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The DPO loss of a batch of pairs, and each answer's implicit reward.

    With ``logits = (π_c - π_r) - (ref_c - ref_r)`` (log-probabilities of the answers):
    ``sigmoid``: ``-(1 - ε) log σ(β·logits) - ε log σ(-β·logits)``; ``ipo``:
    ``(logits - 1/(2β))²``; ``hinge``: ``relu(1 - β·logits)``; the loss is their mean.
    Policy and reference enter only through the log-ratios, so the same logits are
    ``(π_c - ref_c) - (π_r - ref_r)``: the reward of chosen minus that of rejected, over β.

    Args:
        policy_chosen_logps: [b] ``log π(y_w | x)`` (``sequence_logps`` of the chosen answers),
            with a graph back to the policy.
        policy_rejected_logps: [b] ``log π(y_l | x)``.
        ref_chosen_logps: [b] ``log π_ref(y_w | x)`` of the frozen reference.
        ref_rejected_logps: [b] ``log π_ref(y_l | x)``.
        beta: β > 0, the strength of the implicit KL penalty (larger: stay closer to the reference).
        loss_type: "sigmoid" (DPO) | "ipo" | "hinge".
        label_smoothing: ε in [0, 0.5): the assumed probability that a label is flipped
            (conservative DPO); "sigmoid" only.
    Returns:
        ``(loss, chosen_rewards, rejected_rewards)``: the scalar mean loss, and [b]
        ``β · (π - ref)`` of each side, **detached** (for logging, not for gradients);
        float32 for half-precision inputs (float64 stays float64).
    Raises:
        ValueError: β <= 0, ε outside [0, 0.5) or ε > 0 with a loss other than "sigmoid",
            an unknown ``loss_type``, or inputs of different shapes.
    """
    # Step 1: 校验参数，出错时 raise ValueError 并说明怎么改：beta > 0；0 <= label_smoothing < 0.5
    #         (ε >= 0.5 意味着标签更可能是反的)；label_smoothing > 0 只用于 "sigmoid"；loss_type 在 DPO_LOSS_TYPES 中；
    #         四个输入形状相同 (每个偏好对各有一个 chosen 和一个 rejected，策略和参考模型各一份)
    if not beta > 0:
        raise ValueError(f"beta={beta!r} must be > 0 (typical values 0.1 ... 0.5)")
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing={label_smoothing!r} must be in [0, 0.5): it is the probability "
                         "that a preference label is flipped")
    if loss_type not in DPO_LOSS_TYPES:
        raise ValueError(f"loss_type={loss_type!r} is not supported: use one of {DPO_LOSS_TYPES}")
    if label_smoothing > 0 and loss_type != "sigmoid":
        raise ValueError(f"label_smoothing applies to loss_type='sigmoid' only: set it to 0 for {loss_type!r}")
    shapes = [tuple(t.shape) for t in (policy_chosen_logps, policy_rejected_logps,
                                       ref_chosen_logps, ref_rejected_logps)]
    if len(set(shapes)) != 1:
        raise ValueError(f"policy_chosen, policy_rejected, ref_chosen, ref_rejected logps have shapes {shapes}: "
                         "give all four as [b], one value per preference pair")
    # Step 2: 升到至少 float32：acc = torch.promote_types(policy_chosen_logps.dtype, torch.float32)，
    #         pc, pr, rc, rr = 四个输入分别 .to(acc)
    acc = torch.promote_types(policy_chosen_logps.dtype, torch.float32)
    pc, pr = policy_chosen_logps.to(acc), policy_rejected_logps.to(acc)  # [b]
    rc, rr = ref_chosen_logps.to(acc), ref_rejected_logps.to(acc)  # [b]
    # Step 3: 对数比之差 logits = (pc - pr) - (rc - rr)，形状 [b]
    #         (策略比参考模型更偏爱 chosen 多少；参考模型那一项扣掉了两个回答本身的难易差别)
    logits = (pc - pr) - (rc - rr)  # [b]
    # Step 4: 按 loss_type 计算每对的损失 losses，形状 [b]：
    #         "sigmoid": -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    #         (用 logsigmoid 而不是 log(sigmoid(...))，margin 很负时也不会出现 log(0))；
    #         "ipo": (logits - 1 / (2 * beta)) ** 2 (把 logits 拉向固定的目标间隔 1/(2β)，不会无限推大)；
    #         "hinge": torch.relu(1 - beta * logits)
    if loss_type == "sigmoid":
        losses = (-F.logsigmoid(beta * logits) * (1 - label_smoothing)
                  - F.logsigmoid(-beta * logits) * label_smoothing)
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    else:
        losses = torch.relu(1 - beta * logits)
    # Step 5: 隐式奖励 chosen_rewards = beta * (pc - rc).detach()，rejected_rewards = beta * (pr - rr).detach()，形状 [b]
    #         (只用于记录准确率和间隔；detach 以免有人把它们加进 loss 时梯度走错路)
    chosen_rewards = beta * (pc - rc).detach()  # [b]
    rejected_rewards = beta * (pr - rr).detach()  # [b]
    # Step 6: return losses.mean(), chosen_rewards, rejected_rewards
    return losses.mean(), chosen_rewards, rejected_rewards
