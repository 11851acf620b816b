"""Normalisation layers: LayerNorm (GPT-2, BERT) and RMSNorm (Llama).

Both rescale each token's feature vector on its own, so activations keep a
stable size however deep the network is. Notation: ``b = batch``,
``s = seq_len``, ``d = hidden_size``; inputs are ``[..., d]``, usually
``[b, s, d]``, and only the last axis is normalised.

- ``LayerNorm``: ``(x - mean) / sqrt(var + eps) * weight + bias``.
- ``RMSNorm``: ``x / sqrt(mean(x**2) + eps) * weight``: no mean subtraction and
  no bias. Cheaper, and Llama shows it trains just as well.

Both compute in float32 (float64 inputs stay float64) and return the input dtype: ``mean(x**2)`` over 4096
bfloat16 features loses most of its precision (bfloat16 keeps 8 mantissa bits),
and float16 squares overflow above 256. The arithmetic of ``RMSNorm`` is
exactly Hugging Face's ``LlamaRMSNorm`` (including *where* the cast back
happens), so a Llama checkpoint gives the same numbers here.

Example::

    >>> import torch
    >>> norm = RMSNorm(4)
    >>> norm(torch.tensor([[3.0, -3.0, 3.0, -3.0]]))   # rms = 3
    tensor([[ 1.0000, -1.0000,  1.0000, -1.0000]], grad_fn=<MulBackward0>)
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig


def _check_sizes(hidden_size: int, eps: float) -> None:
    if hidden_size < 1:
        raise ValueError(f"hidden_size={hidden_size} must be a positive integer")
    if not eps > 0:
        raise ValueError(f"eps={eps} must be > 0: it keeps the division away from zero")


class LayerNorm(nn.Module):
    """Layer normalisation over the last axis, with a learnt scale and shift.

    Same result as ``torch.nn.LayerNorm(hidden_size, eps)``; written out so the
    steps are visible.

    Args:
        hidden_size: d, the size of the normalised (last) axis.
        eps: added to the variance before the square root.

    Parameters:
        weight: [d], initialised to ones (gamma).
        bias: [d], initialised to zeros (beta).
    """

    def __init__(self, hidden_size: int, eps: float = 1e-5) -> None:
        super().__init__()
        _check_sizes(hidden_size, eps)
        self.hidden_size = hidden_size
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.bias = nn.Parameter(torch.zeros(hidden_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise every feature vector to mean 0 and variance 1, then scale and shift.

        Args:
            x: [..., d], any float dtype (usually [b, s, d]).
        Returns:
            [..., d], same shape and dtype as ``x``.
        """
        # Step 1: 记下 input_dtype = x.dtype，再转成至少 float32 计算：h = x.to(torch.promote_types(x.dtype, torch.float32))
        #         (bfloat16 / float16 升到 float32：求均值和方差精度不够，float16 的平方还可能溢出；float64 保持不变)
        input_dtype = x.dtype
        h = x.to(torch.promote_types(input_dtype, torch.float32))
        # Step 2: 在最后一维求均值 mean = h.mean(-1, keepdim=True)，形状 [..., 1]
        mean = h.mean(-1, keepdim=True)
        # Step 3: 有偏方差 var = (h - mean).pow(2).mean(-1, keepdim=True)，形状 [..., 1]
        #         (除以 d 而不是 d - 1，即 unbiased=False，与 torch.nn.LayerNorm 相同)
        centered = h - mean
        var = centered.pow(2).mean(-1, keepdim=True)
        # Step 4: 标准化 h = (h - mean) * torch.rsqrt(var + self.eps)；eps 防止方差为 0 时除以 0
        h = centered * torch.rsqrt(var + self.eps)
        # Step 5: 仿射变换 h * self.weight + self.bias (仍在高精度中计算)，
        #         最后 .to(input_dtype) 转回输入的 dtype 再返回
        return (h * self.weight + self.bias).to(input_dtype)

    def extra_repr(self) -> str:
        return f"{self.hidden_size}, eps={self.eps}"


class RMSNorm(nn.Module):
    """Root-mean-square normalisation (Zhang & Sennrich, 2019), as in Llama.

    ``y = x / sqrt(mean(x**2) + eps) * weight``: LayerNorm without re-centring
    and without bias. Same arithmetic as Hugging Face's ``LlamaRMSNorm``.

    Args:
        hidden_size: d, the size of the normalised (last) axis.
        eps: added to the mean square before the square root (Llama-2: 1e-5 or 1e-6).

    Parameters:
        weight: [d], initialised to ones.
    """

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        _check_sizes(hidden_size, eps)
        self.hidden_size = hidden_size
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Divide every feature vector by its root mean square, then scale by ``weight``.

        Args:
            x: [..., d], any float dtype (usually [b, s, d]).
        Returns:
            [..., d], same shape and dtype as ``x``. When ``weight`` has the dtype of
            ``x`` (a model cast as a whole) the numbers are exactly Llama's.
        """
        # Step 1: 记下 input_dtype = x.dtype，再转成至少 float32 以保证数值稳定性：
        #         h = x.to(torch.promote_types(x.dtype, torch.float32)) (半精度升到 float32，float64 保持不变)
        input_dtype = x.dtype
        h = x.to(torch.promote_types(input_dtype, torch.float32))
        # Step 2: 均方值 variance = h.pow(2).mean(-1, keepdim=True)，形状 [..., 1]
        #         (不减均值，这正是 RMSNorm 比 LayerNorm 省的那一步)
        variance = h.pow(2).mean(-1, keepdim=True)
        # Step 3: h = h * torch.rsqrt(variance + self.eps)，即除以均方根；rsqrt(v) = 1 / sqrt(v)
        h = h * torch.rsqrt(variance + self.eps)
        # Step 4: 先转回输入 dtype 再乘权重，结果仍是输入 dtype：
        #         return (self.weight * h.to(input_dtype)).to(input_dtype)
        #         (先舍入再乘与 Hugging Face LlamaRMSNorm 完全一致；外层 .to 保证 float32 权重
        #         遇到 bf16 输入时也返回 bf16，而不是被类型提升成 float32)
        return (self.weight * h.to(input_dtype)).to(input_dtype)

    def extra_repr(self) -> str:
        return f"{self.hidden_size}, eps={self.eps}"


def build_norm(config: ModelConfig) -> nn.Module:
    """The normalisation layer that ``config.norm_type`` names.

    Args:
        config: uses ``norm_type`` ("rmsnorm" | "layernorm"), ``hidden_size``
            and ``rms_norm_eps`` (the eps of either kind).
    Returns:
        ``RMSNorm`` or ``LayerNorm`` over ``hidden_size`` features.
    """
    if config.norm_type == "rmsnorm":
        return RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
    if config.norm_type == "layernorm":
        return LayerNorm(config.hidden_size, eps=config.rms_norm_eps)
    raise ValueError(f"norm_type={config.norm_type!r} is not supported: use 'rmsnorm' or 'layernorm'")
