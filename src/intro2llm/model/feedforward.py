"""Feed-forward networks: the per-token MLP of a Transformer block.

Notation: ``b = batch``, ``s = seq_len``, ``d = hidden_size``,
``I = intermediate_size``. Every variant maps ``[b, s, d] -> [b, s, d]`` and
works on each token on its own (attention is where tokens meet).

- ``FeedForward``: the classic MLP of GPT-2 / BERT,
  ``down_proj(gelu(up_proj(x)))``, usually with ``I = 4·d``.
- ``SwiGLU``: Llama's MLP, ``down_proj(silu(gate_proj(x)) * up_proj(x))``.
- ``GeGLU``: the same gate with GELU (tanh approximation), as in Gemma.

Why gated units (Shazeer, "GLU Variants Improve Transformer", 2020): the
product ``act(gate_proj(x)) * up_proj(x)`` lets one projection decide, per
token and per feature, how much of the other passes through: a multiplicative,
input-dependent gate instead of a fixed non-linearity. At the same parameter
count and compute, GLU variants reach a lower perplexity than a plain MLP.

Why ``I ≈ 8/3·d``: a gated MLP has three ``d × I`` matrices instead of two, so
to keep the parameter count of a ``4·d`` GELU MLP (``2 · d · 4d = 8d²``) it needs
``3 · d · I = 8d²``, i.e. ``I = 8d/3``. Llama-2-7B: ``8/3 · 4096 ≈ 10923``,
rounded up to a multiple of 256 for fast matrix shapes: 11008.

Parameter names are Hugging Face's (``gate_proj``, ``up_proj``, ``down_proj``,
no biases), so ``SwiGLU`` loads the weights of ``LlamaMLP`` unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig


class FeedForward(nn.Module):
    """Classic two-layer MLP with exact (erf) GELU: ``down_proj(gelu(up_proj(x)))``.

    Args:
        config: uses hidden_size (d) and intermediate_size (I).

    Parameters (no biases):
        up_proj [I, d], down_proj [d, I].
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.hidden_size = config.hidden_size
        self.intermediate_size = config.intermediate_size
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Expand each token to I features, apply GELU, project back to d.

        Args:
            x: [b, s, d].
        Returns:
            [b, s, d].
        """
        # Step 1: 升维 h = self.up_proj(x)，形状 [b, s, I]
        h = self.up_proj(x)  # [b, s, I]
        # Step 2: 精确的 GELU 激活 h = F.gelu(h) (erf 版本，即 approximate="none"，GPT-2 / BERT 的 MLP)
        h = F.gelu(h)
        # Step 3: 降维回 d：return self.down_proj(h)，形状 [b, s, d]
        return self.down_proj(h)  # [b, s, d]


class SwiGLU(nn.Module):
    """Llama's gated MLP: ``down_proj(silu(gate_proj(x)) * up_proj(x))``.

    Exactly Hugging Face's ``LlamaMLP`` (``hidden_act="silu"``, ``mlp_bias=False``).

    Args:
        config: uses hidden_size (d) and intermediate_size (I, ~8/3·d).

    Parameters (no biases):
        gate_proj [I, d], up_proj [I, d], down_proj [d, I].
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.hidden_size = config.hidden_size
        self.intermediate_size = config.intermediate_size
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate one projection of each token with SiLU of another, then project back.

        Args:
            x: [b, s, d].
        Returns:
            [b, s, d].
        """
        # Step 1: 门控分支 gate = F.silu(self.gate_proj(x))，形状 [b, s, I]；silu(z) = z * sigmoid(z)
        gate = F.silu(self.gate_proj(x))  # [b, s, I]
        # Step 2: 数值分支 up = self.up_proj(x)，形状 [b, s, I]
        up = self.up_proj(x)  # [b, s, I]
        # Step 3: 逐元素相乘做门控后降维：return self.down_proj(gate * up)，形状 [b, s, d]
        #         (gate 按 token、按特征决定 up 的每个特征放行多少)
        return self.down_proj(gate * up)  # [b, s, d]


class GeGLU(SwiGLU):
    """Gated MLP with GELU: ``down_proj(gelu_tanh(gate_proj(x)) * up_proj(x))``.

    What it adds to ``SwiGLU``: only the gate's activation. The GELU is the tanh
    approximation, ``F.gelu(z, approximate="tanh")``: Gemma's
    ``hidden_act="gelu_pytorch_tanh"``. Parameters are SwiGLU's (no biases):
    gate_proj [I, d], up_proj [I, d], down_proj [d, I].
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate one projection of each token with GELU (tanh) of another, then project back.

        Args:
            x: [b, s, d].
        Returns:
            [b, s, d].
        """
        # Step 1: 门控分支 gate = F.gelu(self.gate_proj(x), approximate="tanh")，形状 [b, s, I]
        #         (tanh 近似版 GELU，与 Gemma 的 gelu_pytorch_tanh 相同)
        gate = F.gelu(self.gate_proj(x), approximate="tanh")  # [b, s, I]
        # Step 2: 数值分支 up = self.up_proj(x)，形状 [b, s, I]
        up = self.up_proj(x)  # [b, s, I]
        # Step 3: return self.down_proj(gate * up)，形状 [b, s, d]
        return self.down_proj(gate * up)  # [b, s, d]


def build_ffn(config: ModelConfig) -> nn.Module:
    """The feed-forward network that ``config.ffn_type`` names.

    Args:
        config: uses ffn_type ("swiglu" | "geglu" | "gelu"), hidden_size, intermediate_size.
    Returns:
        ``SwiGLU``, ``GeGLU`` or ``FeedForward`` (GELU MLP).
    Raises:
        ValueError: any other ffn_type (the message lists the valid ones).
    """
    # Step 1: 按 config.ffn_type 选择："swiglu" -> SwiGLU(config)，"geglu" -> GeGLU(config)，
    #         "gelu" -> FeedForward(config)
    if config.ffn_type == "swiglu":
        return SwiGLU(config)
    if config.ffn_type == "geglu":
        return GeGLU(config)
    if config.ffn_type == "gelu":
        return FeedForward(config)
    # Step 2: 其他取值 raise ValueError(f"ffn_type={config.ffn_type!r} is not supported: use 'swiglu', 'geglu' or 'gelu'")
    #         (配置可能在构造后被改过，所以这里还要再检查一次)
    raise ValueError(f"ffn_type={config.ffn_type!r} is not supported: use 'swiglu', 'geglu' or 'gelu'")
