"""Embeddings: token ids to vectors, and positions to rotations (RoPE).

Notation: ``b = batch``, ``s = seq_len``, ``d = hidden_size``, ``V = vocab_size``,
``h = num_attention_heads``, ``g = num_key_value_heads``, ``hd = head_dim``.

- ``TokenEmbedding``: a ``[V, d]`` table; a token's vector is its row.
- ``RotaryEmbedding`` + ``apply_rotary_pos_emb``: rotary position embedding
  (RoPE, Su et al. 2021), as in Llama. Nothing is added to the hidden states;
  instead each query and key vector is rotated by an angle proportional to its
  position, pair of features by pair of features, pair ``k`` at the frequency
  ``inv_freq[k] = base ** (-2k / hd)``. A rotation by ``m·θ`` dotted with a
  rotation by ``n·θ`` depends only on ``m - n``, so attention scores see
  *relative* positions, and the same code handles any offset (a KV cache).

  Layout: Hugging Face's non-interleaved one. Feature ``i`` pairs with
  ``i + hd/2`` (not with ``i + 1`` as in the paper and Meta's original code),
  hence ``cos = cat(freqs, freqs)`` and ``rotate_half``. Using HF's layout
  means HF Llama checkpoints load without permuting ``q_proj`` / ``k_proj``.
- ``PositionalEncoding``: the fixed sinusoidal table of "Attention Is All You
  Need" (added to the token embeddings), for comparison with RoPE.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class TokenEmbedding(nn.Module):
    """Look-up table from token ids to ``d``-dimensional vectors.

    Same parameter as ``nn.Embedding`` (``weight [V, d]``, so state dicts are
    interchangeable), looked up by plain indexing: the gradient reaches only
    the rows that were used.

    Args:
        vocab_size: V, number of rows.
        hidden_size: d, features per token.
        padding_idx: row set to zeros at initialisation (the pad token's vector).
            Unlike ``nn.Embedding`` the row is not frozen: padded positions are
            masked out of attention and loss, so it receives no gradient anyway.
        init_std: standard deviation of the normal initialisation (Llama: 0.02).

    Parameters:
        weight: [V, d].
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        padding_idx: int | None = None,
        init_std: float = 0.02,
    ) -> None:
        super().__init__()
        if vocab_size < 1 or hidden_size < 1:
            raise ValueError(f"vocab_size={vocab_size} and hidden_size={hidden_size} must be positive")
        if padding_idx is not None and not 0 <= padding_idx < vocab_size:
            raise ValueError(f"padding_idx={padding_idx} must be in [0, {vocab_size}) or None")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.padding_idx = padding_idx
        self.init_std = init_std
        self.weight = nn.Parameter(torch.empty(vocab_size, hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, init_std) weights; the padding row (if any) zeros."""
        nn.init.normal_(self.weight, mean=0.0, std=self.init_std)
        if self.padding_idx is not None:
            with torch.no_grad():
                self.weight[self.padding_idx].zero_()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Replace every id by its row of ``weight``.

        Args:
            input_ids: [b, s] integer tensor (any shape works) with ids in [0, V).
        Returns:
            [b, s, d] (``input_ids.shape + (d,)``), dtype of ``weight``.
        Raises:
            ValueError: non-integer ids, or an id outside [0, V) (the message names it).
        """
        # Step 1: input_ids 必须是整数张量：dtype 为 bool、浮点 (input_ids.is_floating_point()) 或复数
        #         (input_ids.is_complex()) 时 raise ValueError，提示用 input_ids.long() 转换
        if input_ids.dtype == torch.bool or input_ids.is_floating_point() or input_ids.is_complex():
            raise ValueError(f"input_ids must be an integer tensor, got {input_ids.dtype}: use input_ids.long()")
        # Step 2: 检查越界：bad = (input_ids < 0) | (input_ids >= self.vocab_size)；若 bad.any()，
        #         raise ValueError 并写出第一个坏 id (input_ids[bad][0].item()) 和 vocab_size
        #         (负数 id 会被 Python 索引悄悄当成倒数第几行，所以必须显式检查)
        bad = (input_ids < 0) | (input_ids >= self.vocab_size)
        if bad.any():
            bad_id = int(input_ids[bad][0])
            raise ValueError(
                f"token id {bad_id} is out of range for vocab_size={self.vocab_size}: "
                "ids must be in [0, vocab_size); check the tokenizer's vocab_size matches the config"
            )
        # Step 3: 直接按行索引 self.weight[input_ids]，得到 [b, s, d]
        #         (反向传播时只有被用到的行得到梯度)
        return self.weight[input_ids]  # [b, s, d]

    def extra_repr(self) -> str:
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.vocab_size}, {self.hidden_size}{pad}"


class RotaryEmbedding(nn.Module):
    """cos / sin tables of rotary position embedding, cached per position.

    Args:
        head_dim: hd, features per head (even: RoPE rotates pairs).
        max_position_embeddings: positions cached up front; larger positions
            extend the cache when first seen.
        base: rope_theta, the base of the frequencies (Llama-2 10000, Llama-3 500000).

    Buffers (all non-persistent: rebuilt from the arguments, not saved, like HF's ``inv_freq``):
        inv_freq: [hd/2] float32, ``1 / base ** (arange(0, hd, 2) / hd)``.
        cos_cached, sin_cached: [max_seq_len_cached, hd] float32.
    """

    def __init__(self, head_dim: int, max_position_embeddings: int = 2048, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim < 2 or head_dim % 2 != 0:
            raise ValueError(f"head_dim={head_dim} must be a positive even number: RoPE rotates pairs of features")
        if max_position_embeddings < 1:
            raise ValueError(f"max_position_embeddings={max_position_embeddings} must be >= 1")
        if not base > 0:
            raise ValueError(f"base (rope_theta)={base} must be > 0")
        self.head_dim = head_dim
        self.max_position_embeddings = max_position_embeddings
        self.base = float(base)
        self.register_buffer("inv_freq", self._compute_inv_freq(), persistent=False)
        self.max_seq_len_cached = 0
        self._set_cos_sin_cache(max_position_embeddings)

    def _compute_inv_freq(self) -> torch.Tensor:
        """Rotation frequency of each feature pair.

        Returns:
            inv_freq: [hd/2] float32; ``inv_freq[k] = 1 / base ** (2k / hd)``, from 1
            (pair 0 turns one radian per position) down to nearly ``1 / base``.
        """
        # Step 1: 指数 exponents = torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim，
        #         即 [0, 2/hd, 4/hd, ...]，共 hd/2 个
        exponents = torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim  # [hd/2]
        # Step 2: 返回 1.0 / (self.base ** exponents)，形状 [hd/2]
        #         (低维转得快，记录近距离位置；高维转得慢，记录远距离位置)
        return 1.0 / (self.base**exponents)

    def _set_cos_sin_cache(self, seq_len: int) -> None:
        """(Re)build ``cos_cached`` and ``sin_cached`` for positions ``0 .. seq_len - 1``.

        Args:
            seq_len: number of positions to cache; sets ``self.max_seq_len_cached = seq_len``.
        Returns:
            None; registers the non-persistent buffers cos_cached, sin_cached: [seq_len, hd] float32.
        """
        # Step 1: inv_freq = self._compute_inv_freq().to(self.inv_freq.device)：重新以 float32 计算
        #         (不直接读 self.inv_freq，因为 model.to(torch.bfloat16) 会把浮点 buffer 也转成低精度)
        inv_freq = self._compute_inv_freq().to(self.inv_freq.device)  # [hd/2]
        # Step 2: positions = torch.arange(seq_len, device=inv_freq.device, dtype=torch.float32)，
        #         freqs = torch.outer(positions, inv_freq)，形状 [seq_len, hd/2]：位置 m 第 k 对的转角 m * inv_freq[k]
        positions = torch.arange(seq_len, device=inv_freq.device, dtype=torch.float32)  # [seq_len]
        freqs = torch.outer(positions, inv_freq)  # [seq_len, hd/2]
        # Step 3: emb = torch.cat((freqs, freqs), dim=-1)，形状 [seq_len, hd]
        #         (HF 的非交错布局：第 i 维与第 i + hd/2 维组成一对，共用同一个角度)
        emb = torch.cat((freqs, freqs), dim=-1)  # [seq_len, hd]
        # Step 4: 用 self.register_buffer("cos_cached", emb.cos(), persistent=False)，sin_cached 同理
        #         (非持久 buffer：随 .to(device) 移动，但不进 state_dict)，并令 self.max_seq_len_cached = seq_len
        self.register_buffer("cos_cached", emb.cos(), persistent=False)
        self.register_buffer("sin_cached", emb.sin(), persistent=False)
        self.max_seq_len_cached = seq_len

    def forward(
        self,
        position_ids: torch.Tensor,
        dtype: torch.dtype = torch.float32,
        seq_len: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin of every position's rotation angles.

        Args:
            position_ids: [b, s] (or [s]) integer positions, >= 0.
            dtype: dtype of the returned tables (pass the dtype of q / k).
            seq_len: optional upper bound (largest position + 1) known to the caller;
                saves reading ``position_ids.max()``, which on a GPU waits for the device.
        Returns:
            (cos, sin): each [b, s, hd] (or [s, hd] for 1-D ``position_ids``) in ``dtype``.
        """
        # Step 1: 需要缓存的长度 needed = seq_len，若 seq_len 为 None 则 needed = int(position_ids.max()) + 1
        #         (position_ids 为空时取 0)；needed > self.max_seq_len_cached 时调用
        #         self._set_cos_sin_cache(max(needed, 2 * self.max_seq_len_cached)) 扩展缓存
        #         (位置超出训练长度时按需外推；长度翻倍，逐 token 生成时不必每步都重建)
        needed = seq_len
        if needed is None:
            needed = int(position_ids.max()) + 1 if position_ids.numel() > 0 else 0
        if needed > self.max_seq_len_cached:
            self._set_cos_sin_cache(max(needed, 2 * self.max_seq_len_cached))
        # Step 2: 按位置取表：cos = self.cos_cached[position_ids]，sin = self.sin_cached[position_ids]，
        #         形状 [b, s, hd] (1-D 输入则为 [s, hd])，再 .to(dtype) 后返回 (cos, sin)
        cos = self.cos_cached[position_ids]  # [b, s, hd]
        sin = self.sin_cached[position_ids]  # [b, s, hd]
        return cos.to(dtype), sin.to(dtype)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, max_position_embeddings={self.max_position_embeddings}, base={self.base}"


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """Turn each feature pair ``(x[i], x[i + hd/2])`` into ``(-x[i + hd/2], x[i])``.

    That is the pair multiplied by ``i`` as a complex number (a 90-degree turn), so
    ``x * cos + rotate_half(x) * sin`` rotates every pair by its angle.

    Args:
        x: [..., hd] with hd even.
    Returns:
        [..., hd]: ``cat(-x[..., hd/2:], x[..., :hd/2], dim=-1)``.

    Example: ``rotate_half(tensor([1., 2., 3., 4.])) == tensor([-3., -4., 1., 2.])``.
    """
    # Step 1: 沿最后一维切成两半：x1 = x[..., : hd // 2]，x2 = x[..., hd // 2 :]，hd = x.shape[-1]
    half = x.shape[-1] // 2
    x1 = x[..., :half]  # [..., hd/2]
    x2 = x[..., half:]  # [..., hd/2]
    # Step 2: 返回 torch.cat((-x2, x1), dim=-1)，形状 [..., hd]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, unsqueeze_dim: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate queries and keys by their positions' angles (RoPE).

    Args:
        q: [b, h, s, hd] queries.
        k: [b, g, s, hd] keys (g may differ from h: GQA).
        cos, sin: [b, s, hd] from ``RotaryEmbedding`` (b may be 1: broadcast over the batch).
        unsqueeze_dim: axis where cos / sin get a size-1 head axis so they
            broadcast over heads: 1 for the [b, heads, s, hd] layout, 2 for [b, s, heads, hd].
    Returns:
        (q_embed [b, h, s, hd], k_embed [b, g, s, hd]) in the dtypes of q and k.
    """
    # Step 1: 在 unsqueeze_dim 处给 cos、sin 加一个头维：cos.unsqueeze(unsqueeze_dim)，形状 [b, 1, s, hd]，
    #         并 .to(q.dtype)，使输出的 dtype 跟随 q 而不被 float32 的 cos / sin 提升
    cos = cos.unsqueeze(unsqueeze_dim).to(q.dtype)  # [b, 1, s, hd]
    sin = sin.unsqueeze(unsqueeze_dim).to(q.dtype)  # [b, 1, s, hd]
    # Step 2: q_embed = q * cos + rotate_half(q) * sin，即每对特征旋转一个角度 (复数乘以 e^{i·m·θ})
    q_embed = q * cos + rotate_half(q) * sin  # [b, h, s, hd]
    # Step 3: k_embed = k * cos + rotate_half(k) * sin (cos / sin 先转成 k.dtype)，返回 (q_embed, k_embed)
    k_embed = k * cos.to(k.dtype) + rotate_half(k) * sin.to(k.dtype)  # [b, g, s, hd]
    return q_embed, k_embed


class PositionalEncoding(nn.Module):
    """Fixed sinusoidal positions of "Attention Is All You Need", added to the input.

    ``pe[pos, 2i] = sin(pos / 10000 ** (2i / d))``, ``pe[pos, 2i + 1] = cos(...)``.
    Unlike RoPE it encodes absolute positions in the hidden states and cannot go
    past ``max_len``. Kept for comparison; the Llama model uses RoPE.

    Args:
        hidden_size: d (even).
        max_len: longest sequence supported.
        base: 10000 in the paper.
    """

    def __init__(self, hidden_size: int, max_len: int = 2048, base: float = 10000.0) -> None:
        super().__init__()
        if hidden_size < 2 or hidden_size % 2 != 0:
            raise ValueError(f"hidden_size={hidden_size} must be a positive even number for sin / cos pairs")
        position = torch.arange(max_len, dtype=torch.float32)[:, None]  # [max_len, 1]
        div = torch.exp(torch.arange(0, hidden_size, 2, dtype=torch.float32) * (-math.log(base) / hidden_size))
        pe = torch.zeros(max_len, hidden_size)
        pe[:, 0::2] = torch.sin(position * div)  # [max_len, d/2]
        pe[:, 1::2] = torch.cos(position * div)  # [max_len, d/2]
        self.max_len = max_len
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add the encodings of positions ``0 .. s - 1``.

        Args:
            x: [b, s, d].
        Returns:
            [b, s, d]: ``x + pe[:s]`` in the dtype of ``x``.
        """
        s = x.shape[-2]
        if s > self.max_len:
            raise ValueError(
                f"sequence length {s} exceeds max_len={self.max_len}: build PositionalEncoding with a larger max_len"
            )
        return x + self.pe[:s].to(x.dtype)  # [b, s, d]
