"""Cross-entropy for next-token prediction, written out with log-sum-exp.

Notation: ``C`` = number of classes (the vocabulary size ``V`` for a language
model), ``N`` = number of positions (``b * s`` for logits ``[b, s, V]``). Classes
are on the **last** axis, as language models produce them; ``torch``'s
``F.cross_entropy`` wants them on axis 1, so the oracle is
``F.cross_entropy(logits.reshape(-1, C), labels.reshape(-1), ...)``.

For one position with logits ``x`` and target ``y``::

    -log p_y = -log(exp(x_y) / sum_c exp(x_c)) = logsumexp(x) - x_y

``logsumexp(x) = m + log(sum_c exp(x_c - m))`` with ``m = max_c x_c``: every
``exp`` sees a number ``<= 0``, so nothing overflows however large the logits
(a naive ``exp(x)`` is ``inf`` above 88 in float32 and above 11 in float16).

Label smoothing (Szegedy et al., 2016) spreads ``ε`` of the target's probability
mass uniformly over all ``C`` classes::

    loss = (1 - ε) * (logsumexp(x) - x_y) + ε * mean_c(logsumexp(x) - x_c)

the same definition as torch's ``label_smoothing``.

Positions whose label is ``ignore_index`` (-100: prompt and padding tokens)
contribute nothing: ``reduction="none"`` gives 0 there, ``"sum"`` skips them and
``"mean"`` divides by the number of positions that are **not** ignored. If every
position is ignored, ``"mean"`` is ``0 / 0 = nan``, exactly as in torch; a
training loop should skip such a batch rather than step on it.

The result is float32 (float64 stays float64) even for bfloat16 / float16
logits: torch would return the input dtype, but a loss rounded to 8 mantissa
bits cannot show the small improvements of a long training run.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100  # the label value that ``cross_entropy_loss`` skips by default
REDUCTIONS = ("mean", "sum", "none")


def cross_entropy_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy between ``softmax(logits)`` and integer class labels, via log-sum-exp.

    Same values and gradients as ``torch.nn.functional.cross_entropy`` with class
    indices as targets (classes on the last axis here), stable for float16 /
    bfloat16 logits of any magnitude.

    Args:
        logits: [..., C] float (usually [b, s, V]): unnormalised scores of every class.
        labels: [...] integer class ids in ``[0, C)`` (usually [b, s]); positions equal to
            ``ignore_index`` are skipped.
        ignore_index: the label value that contributes no loss (default -100).
        label_smoothing: ε in [0, 1]; the target distribution becomes
            ``(1 - ε) * one_hot(y) + ε / C``.
        reduction: "mean" (over non-ignored positions), "sum", or "none".
    Returns:
        "mean" / "sum": a scalar; "none": [...] with the shape of ``labels`` and 0 at
        ignored positions. float32 for float16 / bfloat16 / float32 logits (float64 for
        float64). "mean" with every position ignored is nan (0 / 0), as in torch.
    Raises:
        ValueError: ``labels.shape != logits.shape[:-1]``, non-integer labels, a label
            outside ``[0, C)`` that is not ``ignore_index``, a bad ``reduction`` or
            ``label_smoothing``.
    """
    # Step 1: 校验参数，出错时 raise ValueError 并说明怎么改：
    #         reduction 必须在 REDUCTIONS 中；0.0 <= label_smoothing <= 1.0；
    #         labels 必须是整数类型 (not labels.is_floating_point())；labels.shape == logits.shape[:-1]
    #         (语言模型要先把 logits 和 labels 错开一位再传进来)
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not supported: use one of {REDUCTIONS}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing={label_smoothing} must be in [0, 1]")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must hold integer class ids, got dtype {labels.dtype}")
    if logits.dim() < 1 or tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"labels {tuple(labels.shape)} must have the shape of logits {tuple(logits.shape)} "
            "without its last (class) axis"
        )
    # Step 2: 展平并升精度：C = logits.shape[-1]，x = logits.reshape(-1, C) 转成
    #         torch.promote_types(logits.dtype, torch.float32)，形状 [N, C]；y = labels.reshape(-1).long()，形状 [N]
    #         (半精度 exp / 求和误差太大，float16 的 exp 超过 11 就溢出；float64 保持不变)
    num_classes = logits.shape[-1]
    x = logits.reshape(-1, num_classes).to(torch.promote_types(logits.dtype, torch.float32))  # [N, C]
    y = labels.reshape(-1).long()  # [N]
    # Step 3: 掩码 valid = y != ignore_index，形状 [N]；若 ((y < 0) | (y >= C))[valid] 有任何 True，
    #         raise ValueError (越界的类别 id 会让 gather 报错，在 GPU 上甚至只是一个难懂的 device assert)；
    #         被忽略的位置换成合法的 0 以便 gather：safe_y = y.masked_fill(~valid, 0)
    valid = y != ignore_index  # [N]
    if ((y < 0) | (y >= num_classes))[valid].any():
        raise ValueError(f"labels must be in [0, {num_classes}) or equal ignore_index={ignore_index}")
    safe_y = y.masked_fill(~valid, 0)  # [N]
    # Step 4: log-sum-exp：m = x.amax(dim=-1, keepdim=True).detach()，形状 [N, 1]；
    #         lse = m.squeeze(-1) + torch.log(torch.exp(x - m).sum(dim=-1))，形状 [N]
    #         (先减每行最大值，exp 的参数都 <= 0，不会溢出；m 只是平移，不影响结果，所以不需要梯度)
    m = x.amax(dim=-1, keepdim=True).detach()  # [N, 1]
    lse = m.squeeze(-1) + torch.log(torch.exp(x - m).sum(dim=-1))  # [N]
    # Step 5: 负对数似然 nll = lse - x.gather(-1, safe_y[:, None]).squeeze(-1)，形状 [N]
    #         (因为 -log p_y = -(x_y - lse) = lse - x_y，不必算出整个 log_softmax)
    nll = lse - x.gather(-1, safe_y[:, None]).squeeze(-1)  # [N]
    # Step 6: label_smoothing = ε > 0 时，均匀分布部分 smooth = lse - x.mean(dim=-1) (即 mean_c(-log p_c))，
    #         loss = (1 - ε) * nll + ε * smooth；否则 loss = nll
    if label_smoothing > 0.0:
        smooth = lse - x.mean(dim=-1)  # [N]
        loss = (1.0 - label_smoothing) * nll + label_smoothing * smooth
    else:
        loss = nll
    # Step 7: 被忽略的位置置 0：loss = loss.masked_fill(~valid, 0.0)
    loss = loss.masked_fill(~valid, 0.0)  # [N]
    # Step 8: 归约："none" 返回 loss.reshape(labels.shape)；"sum" 返回 loss.sum()；
    #         "mean" 返回 loss.sum() / valid.sum() (只除以未被忽略的位置数；全部被忽略时 0 / 0 = nan，与 torch 相同)
    if reduction == "none":
        return loss.reshape(labels.shape)
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / valid.sum()
