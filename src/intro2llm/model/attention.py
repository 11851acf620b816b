"""Attention: scaled dot-product attention, causal masks, and the GQA / MHA / MQA layer.

Notation, fixed for this module: ``b = batch``, ``s = seq_len`` (query length),
``t = kv_len`` (key length: cached + new tokens), ``d = hidden_size``,
``h = num_attention_heads``, ``g = num_key_value_heads``, ``hd = head_dim``,
``n_rep = h // g`` (query heads per key/value head).

- ``scaled_dot_product_attention``: ``softmax(q @ k^T / sqrt(hd) + mask) @ v``
  written out; the oracle is ``torch.nn.functional.scaled_dot_product_attention``.
- ``make_causal_mask`` / ``prepare_attention_mask``: who may look at whom.
  Masks are *bottom-right aligned*: with ``s`` new queries after ``t - s``
  cached tokens, query ``i`` sits at absolute position ``t - s + i``.
- ``repeat_kv``: GQA shares each key/value head among ``n_rep`` query heads.
- ``GroupedQueryAttention``: the Llama attention layer (``q_proj``, ``k_proj``,
  ``v_proj``, ``o_proj`` as in Hugging Face), with RoPE, padding masks and an
  optional KV cache. ``g == h`` is multi-head attention (``MultiHeadAttention``),
  ``g == 1`` multi-query attention.

Two implementations give the same numbers: ``attn_implementation="eager"``
calls this module's ``scaled_dot_product_attention`` (readable, easy to step
through), ``"sdpa"`` (default) calls PyTorch's fused kernel (fast and
memory-efficient; FlashAttention on GPUs when no mask is needed).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .embedding import RotaryEmbedding, apply_rotary_pos_emb

ATTN_IMPLEMENTATIONS = ("sdpa", "eager")


def make_causal_mask(
    q_len: int, kv_len: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """Additive causal mask, bottom-right aligned (the last query sees every key).

    Query ``i`` sits at absolute position ``kv_len - q_len + i`` and may see keys
    ``j <= kv_len - q_len + i``. With ``q_len == kv_len`` this is the usual lower
    triangle; with ``q_len < kv_len`` (decoding after ``kv_len - q_len`` cached
    tokens) every query also sees the whole cache. Example, q_len=2, kv_len=4::

        [[0., 0., 0., -inf],
         [0., 0., 0.,   0.]]

    Args:
        q_len: s, number of queries (>= 1).
        kv_len: t, number of keys (>= q_len).
        dtype: a floating dtype for the mask.
        device: where to build it.
    Returns:
        [s, t] tensor: 0.0 where attention is allowed, -inf where it is masked.
    """
    # Step 1: 校验：q_len >= 1、kv_len >= 1 且 q_len <= kv_len (查询不会比键多：键包含缓存和当前 token)，
    #         否则 raise ValueError 说明要求
    if q_len < 1 or kv_len < 1:
        raise ValueError(f"q_len={q_len} and kv_len={kv_len} must both be >= 1")
    if q_len > kv_len:
        raise ValueError(f"q_len={q_len} > kv_len={kv_len}: keys include every query's token, so kv_len >= q_len")
    # Step 2: mask = torch.full((q_len, kv_len), float("-inf"), dtype=dtype, device=device)，形状 [s, t]
    mask = torch.full((q_len, kv_len), float("-inf"), dtype=dtype, device=device)  # [s, t]
    # Step 3: 只保留"未来"位置的 -inf：return torch.triu(mask, diagonal=kv_len - q_len + 1)
    #         (第 i 行中 j > kv_len - q_len + i 的位置为 -inf，其余置 0)
    return torch.triu(mask, diagonal=kv_len - q_len + 1)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
    return_weights: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``softmax(q @ k^T * scale + mask) @ v``, written out.

    Arguments and mask semantics are those of ``torch.nn.functional.scaled_dot_product_attention``
    with one difference: ``is_causal`` here is bottom-right aligned (``make_causal_mask``),
    torch's is top-left aligned; they agree when ``s == t``. Rows whose keys are all
    masked (-inf) give zeros, as in torch.

    Args:
        q: [b, h, s, hd] queries.
        k: [b, h, t, hd] keys, same number of heads as ``q`` (GQA callers ``repeat_kv`` first).
        v: [b, h, t, hd] values.
        attn_mask: None; or a bool mask broadcastable to [b, h, s, t], True = may attend;
            or a float mask broadcastable to [b, h, s, t], added to the scores (0 keeps, -inf drops).
        is_causal: also apply ``make_causal_mask(s, t)``.
        dropout_p: probability of zeroing an attention weight (survivors scaled by
            ``1 / (1 - dropout_p)``); pass 0.0 outside training.
        scale: multiplies the scores; default ``hd ** -0.5``.
        return_weights: also return the attention weights.
    Returns:
        out: [b, h, s, hd] in q's dtype; with ``return_weights``, ``(out, weights)``,
        weights [b, h, s, t] float32, float64 for float64 inputs (after dropout: the ones applied to ``v``).
    """
    # Step 1: 检查 q、k、v 都是 4-D [b, heads, len, hd]，且 k.shape[1] == q.shape[1]，
    #         否则 raise ValueError (头数不同是 GQA：提示先用 repeat_kv(k, h // g) 复制 KV 头)
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, k, v must be 4-D [batch, heads, len, head_dim], got {q.dim()}-D, {k.dim()}-D, {v.dim()}-D")
    if k.shape[1] != q.shape[1] or v.shape[1] != q.shape[1]:
        raise ValueError(f"q has {q.shape[1]} heads but k/v have {k.shape[1]}/{v.shape[1]}: repeat_kv them first")
    # Step 2: 计算精度 acc = torch.promote_types(q.dtype, torch.float32) (半精度升到 float32，float64 不变)；
    #         打分 scores = (q.to(acc) @ k.to(acc).transpose(-2, -1)) * scale，形状 [b, h, s, t]，
    #         scale 默认 q.shape[-1] ** -0.5 (除以 sqrt(hd) 让点积方差约为 1，softmax 不至于饱和)
    if scale is None:
        scale = q.shape[-1] ** -0.5
    acc = torch.promote_types(q.dtype, torch.float32)
    scores = (q.to(acc) @ k.to(acc).transpose(-2, -1)) * scale  # [b, h, s, t]
    # Step 3: is_causal 为 True 时 scores = scores + make_causal_mask(s, t, scores.dtype, scores.device)
    #         (右下角对齐：第 i 个查询只看位置 <= t - s + i 的键)
    if is_causal:
        scores = scores + make_causal_mask(q.shape[-2], k.shape[-2], scores.dtype, scores.device)
    # Step 4: attn_mask 是 bool 时 scores = scores.masked_fill(~attn_mask, float("-inf")) (True 表示可以看)，
    #         是浮点数时直接相加 scores = scores + attn_mask.to(scores.dtype)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask.to(scores.dtype)
    # Step 5: 在键的维度上做 softmax：weights = torch.softmax(scores, dim=-1) (仍是 acc 精度)；
    #         有 attn_mask 时，整行都是 -inf 的查询 softmax 得到 0/0 = NaN，与 PyTorch 一致把这些行置 0：
    #         weights = weights.masked_fill(torch.isneginf(scores).all(-1, keepdim=True), 0.0)
    weights = torch.softmax(scores, dim=-1)  # [b, h, s, t]
    if attn_mask is not None:
        weights = weights.masked_fill(torch.isneginf(scores).all(-1, keepdim=True), 0.0)
    # Step 6: dropout_p > 0 时 weights = F.dropout(weights, p=dropout_p) (随机丢弃一部分注意力权重)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    # Step 7: out = weights.to(v.dtype) @ v，形状 [b, h, s, hd]，按 q.dtype 返回；
    #         return_weights 为 True 时返回 (out, weights)
    out = (weights.to(v.dtype) @ v).to(q.dtype)  # [b, h, s, hd]
    return (out, weights) if return_weights else out


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Repeat every key/value head ``n_rep`` times, so GQA can use plain attention.

    Same as ``torch.repeat_interleave(x, n_rep, dim=1)``: KV head ``j`` serves query
    heads ``[j * n_rep, (j + 1) * n_rep)``, Hugging Face's layout.

    Args:
        x: [b, g, t, hd] keys or values.
        n_rep: h // g (>= 1).
    Returns:
        [b, g * n_rep, t, hd]; ``x`` itself when ``n_rep == 1``.
    """
    # Step 1: n_rep < 1 时 raise ValueError；n_rep == 1 (MHA) 时直接返回 x，不做复制
    if n_rep < 1:
        raise ValueError(f"n_rep={n_rep} must be >= 1 (num_attention_heads // num_key_value_heads)")
    if n_rep == 1:
        return x
    # Step 2: b, g, t, hd = x.shape；插入新维再扩展：x[:, :, None, :, :].expand(b, g, n_rep, t, hd)，
    #         形状 [b, g, n_rep, t, hd] (expand 不复制内存)
    b, g, t, hd = x.shape
    x = x[:, :, None, :, :].expand(b, g, n_rep, t, hd)  # [b, g, n_rep, t, hd]
    # Step 3: 合并前两维返回 x.reshape(b, g * n_rep, t, hd)：同一个 KV 头的 n_rep 个副本相邻
    return x.reshape(b, g * n_rep, t, hd)  # [b, g * n_rep, t, hd]


def prepare_attention_mask(
    attention_mask: torch.Tensor | None,
    batch_size: int,
    q_len: int,
    kv_len: int,
    dtype: torch.dtype,
    device: torch.device | str | None = None,
) -> torch.Tensor | None:
    """Combine padding and causality into one additive mask for the attention scores.

    Masked entries hold ``torch.finfo(dtype).min``, not -inf: with left padding a
    pad query may see no key at all (its causal window is all padding), and with
    -inf its softmax row would be 0/0 = NaN, which spreads into later layers and
    gradients although the loss ignores the position. With the most negative finite
    number the row is a harmless average (Hugging Face does the same). The minimum
    of ``dtype``, because float32's overflows to -inf in float16 / bfloat16.

    Args:
        attention_mask: None (causal attention only); or a padding mask [b, t] of
            1 (real token) / 0 (padding) over cached + current tokens; or a complete
            additive float mask [b or 1, 1, s, t], passed through.
        batch_size: b.
        q_len: s.
        kv_len: t (cached + current tokens).
        dtype: dtype of the mask (the queries' dtype).
        device: where to build it.
    Returns:
        None for ``attention_mask=None`` (the caller applies plain causal masking);
        else [b, 1, s, t] in ``dtype``: 0 where query i may see key j (j is not
        padding and j <= t - s + i), ``finfo(dtype).min`` elsewhere.
    """
    # Step 1: attention_mask 为 None 时 return None (只需因果掩码，交给注意力函数处理)
    if attention_mask is None:
        return None
    # Step 2: 4-D 浮点掩码是调用方构造好的完整加性掩码：检查 shape[-2:] == (q_len, kv_len)、
    #         shape[0] in (1, batch_size) 且不是 bool，否则 raise ValueError；通过则 return attention_mask.to(dtype)
    if attention_mask.dim() == 4:
        shape = tuple(attention_mask.shape)
        if shape[-2:] != (q_len, kv_len) or shape[0] not in (1, batch_size) or attention_mask.dtype == torch.bool:
            raise ValueError(f"4-D attention_mask must be a float mask [{batch_size}, 1, {q_len}, {kv_len}], got {shape}")
        return attention_mask.to(dtype)
    # Step 3: 否则必须是形状 (batch_size, kv_len) 的 padding 掩码 (解码时要包含缓存中 token 的那部分)，
    #         否则 raise ValueError 写出期望的形状
    if tuple(attention_mask.shape) != (batch_size, kv_len):
        got = tuple(attention_mask.shape)
        raise ValueError(f"attention_mask {got} must be [batch, past + q_len] = [{batch_size}, {kv_len}]: mask cached tokens too")
    # Step 4: 因果部分 causal = torch.ones(q_len, kv_len, dtype=torch.bool, device=device).tril(kv_len - q_len)，
    #         形状 [s, t]，True 表示第 i 个查询可以看第 j 个键 (j <= t - s + i)
    causal = torch.ones(q_len, kv_len, dtype=torch.bool, device=device).tril(kv_len - q_len)  # [s, t]
    # Step 5: 与 padding 合并 allowed = causal[None, None] & attention_mask.bool()[:, None, None, :]，形状 [b, 1, s, t]
    #         (在布尔值上合并：两个 finfo.min 相加会溢出成 -inf)
    padding = attention_mask.to(device=device, dtype=torch.bool)[:, None, None, :]  # [b, 1, 1, t]
    allowed = causal[None, None] & padding  # [b, 1, s, t]
    # Step 6: 返回加性掩码 torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)


class GroupedQueryAttention(nn.Module):
    """Llama's attention layer: grouped-query attention with RoPE and an optional KV cache.

    ``g`` key/value heads are shared by ``h`` query heads (``n_rep = h // g`` each), so
    ``k_proj`` / ``v_proj`` and the KV cache are ``n_rep`` times smaller than in MHA.

    Args:
        config: uses hidden_size, num_attention_heads, num_key_value_heads, head_dim,
            max_position_embeddings, rope_theta, attention_dropout.
        layer_idx: position of the layer in the stack (for caches and debugging).
        attn_implementation: "sdpa" (PyTorch's fused kernel) or "eager" (this module's
            ``scaled_dot_product_attention``); both give the same result.

    Parameters (Hugging Face names, no biases):
        q_proj [h*hd, d], k_proj [g*hd, d], v_proj [g*hd, d], o_proj [d, h*hd].
    """

    def __init__(self, config: ModelConfig, layer_idx: int | None = None, attn_implementation: str = "sdpa") -> None:
        """Create the projections and the rotary embedding.

        Args:
            config: a validated ``ModelConfig`` (heads divide hidden_size, kv heads divide heads).
            layer_idx: index of this layer, or None.
            attn_implementation: "sdpa" | "eager".
        Returns:
            None.
        """
        # Step 1: 先调用 super().__init__()；attn_implementation 不在 ATTN_IMPLEMENTATIONS 中时 raise ValueError 列出可选值
        super().__init__()
        if attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ValueError(f"attn_implementation={attn_implementation!r}: use one of {ATTN_IMPLEMENTATIONS}")
        # Step 2: 保存 self.config、self.layer_idx、self.attn_implementation，以及尺寸 self.hidden_size = d、
        #         self.num_heads = h、self.num_key_value_heads = g、self.head_dim = config.head_dim、
        #         self.num_key_value_groups = h // g、self.scaling = head_dim ** -0.5、self.attention_dropout
        self.config, self.layer_idx, self.attn_implementation = config, layer_idx, attn_implementation
        self.hidden_size = d = config.hidden_size
        self.num_heads = h = config.num_attention_heads
        self.num_key_value_heads = g = config.num_key_value_heads
        self.head_dim = hd = config.head_dim
        self.num_key_value_groups = h // g
        self.scaling = hd**-0.5
        self.attention_dropout = config.attention_dropout
        # Step 3: 四个无偏置线性层 (名字与 Hugging Face 相同，权重可直接互换)：
        #         q_proj = nn.Linear(d, h * hd, bias=False)，k_proj、v_proj = nn.Linear(d, g * hd, bias=False)，
        #         o_proj = nn.Linear(h * hd, d, bias=False)
        self.q_proj = nn.Linear(d, h * hd, bias=False)
        self.k_proj = nn.Linear(d, g * hd, bias=False)
        self.v_proj = nn.Linear(d, g * hd, bias=False)
        self.o_proj = nn.Linear(h * hd, d, bias=False)
        # Step 4: 旋转位置编码 self.rotary_emb = RotaryEmbedding(hd, config.max_position_embeddings, config.rope_theta)
        self.rotary_emb = RotaryEmbedding(hd, config.max_position_embeddings, config.rope_theta)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_value: tuple[torch.Tensor, torch.Tensor] | None = None,
        use_cache: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """Causal self-attention of the new tokens over the cached and the new ones.

        Args:
            hidden_states: [b, s, d] the new tokens.
            attention_mask: None (no padding); a padding mask [b, t] of 1 / 0 over cached +
                new tokens; or a complete 4-D mask (see ``prepare_attention_mask``).
            position_ids: [b, s] positions of the new tokens; default
                ``arange(past_len, past_len + s)``, continuing after the cache.
            past_key_value: None or (k_past, v_past), each [b, g, t_past, hd], RoPE already applied to k_past.
            use_cache: return the updated (k, v) for the next call.
        Returns:
            (output [b, s, d], present_key_value): present is (k, v), each [b, g, t, hd] with
            t = t_past + s, when ``use_cache``, else None.
        """
        # Step 1: b, s, d = hidden_states.shape；d != self.hidden_size 时 raise ValueError (写出两个数)
        b, s, d = hidden_states.shape
        if d != self.hidden_size:
            raise ValueError(f"hidden_states has {d} features but hidden_size={self.hidden_size}: check the config")
        # Step 2: 令 h, g, hd = self.num_heads, self.num_key_value_heads, self.head_dim；投影并拆成多头：
        #         q = self.q_proj(hidden_states).view(b, s, h, hd).transpose(1, 2)，形状 [b, h, s, hd]；
        #         k、v 同理用 k_proj、v_proj 拆成 g 个头，形状 [b, g, s, hd]
        h, g, hd = self.num_heads, self.num_key_value_heads, self.head_dim
        q = self.q_proj(hidden_states).view(b, s, h, hd).transpose(1, 2)  # [b, h, s, hd]
        k = self.k_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)  # [b, g, s, hd]
        v = self.v_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)  # [b, g, s, hd]
        # Step 3: 缓存长度 past_len = past_key_value[0].shape[2] (没有缓存时为 0)；position_ids 为 None 时
        #         令其为 torch.arange(past_len, past_len + s, device=q.device)[None, :]，形状 [1, s]：
        #         位置接着缓存往后数 (每次从 0 重新开始是 KV cache 的经典 bug)
        past_len = past_key_value[0].shape[2] if past_key_value is not None else 0
        known_len = None
        if position_ids is None:
            position_ids = torch.arange(past_len, past_len + s, device=q.device)[None, :]  # [1, s]
            known_len = past_len + s
        # Step 4: cos, sin = self.rotary_emb(position_ids, dtype=q.dtype, seq_len=...)，各 [b, s, hd]
        #         (位置由上一步生成时传 seq_len=past_len + s，省去读取 position_ids.max() 的 GPU 同步；否则传 None)；
        #         q, k = apply_rotary_pos_emb(q, k, cos, sin)：只旋转 q 和 k，v 不变
        cos, sin = self.rotary_emb(position_ids, dtype=q.dtype, seq_len=known_len)  # [b, s, hd]
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        # Step 5: 有缓存时沿序列维拼接 k = torch.cat([past_key_value[0], k], dim=2)，v 同理，形状 [b, g, t, hd]；
        #         present = (k, v) if use_cache else None (缓存的是旋转后的 k，且只存 g 个头，不存复制后的 h 个)
        if past_key_value is not None:
            k = torch.cat([past_key_value[0], k], dim=2)  # [b, g, t, hd]
            v = torch.cat([past_key_value[1], v], dim=2)  # [b, g, t, hd]
        present = (k, v) if use_cache else None
        # Step 6: mask = prepare_attention_mask(attention_mask, b, s, k.shape[2], q.dtype, q.device)
        #         (None 表示纯因果；否则是合并了 padding 与因果的加性掩码 [b, 1, s, t])
        mask = prepare_attention_mask(attention_mask, b, s, k.shape[2], q.dtype, q.device)
        # Step 7: 只在计算时复制 KV 头：k、v 各经 repeat_kv(·, self.num_key_value_groups) 变成 [b, h, t, hd]；
        #         dropout_p = self.attention_dropout if self.training else 0.0；
        #         out = self._attend(q, k, v, mask, dropout_p)，形状 [b, h, s, hd]
        k = repeat_kv(k, self.num_key_value_groups)  # [b, h, t, hd]
        v = repeat_kv(v, self.num_key_value_groups)  # [b, h, t, hd]
        dropout_p = self.attention_dropout if self.training else 0.0
        out = self._attend(q, k, v, mask, dropout_p)  # [b, h, s, hd]
        # Step 8: 合并多头 out.transpose(1, 2).reshape(b, s, h * hd)，经 self.o_proj 得到 [b, s, d]，返回 (output, present)
        out = out.transpose(1, 2).reshape(b, s, h * hd)  # [b, s, h*hd]
        return self.o_proj(out), present  # [b, s, d]

    def _attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, dropout_p: float
    ) -> torch.Tensor:
        """Attention with the configured implementation.

        Args:
            q: [b, h, s, hd]; k, v: [b, h, t, hd] (KV heads already repeated).
            mask: None for plain causal attention, or an additive mask [b, 1, s, t].
            dropout_p: attention dropout probability (0.0 in eval).
        Returns:
            [b, h, s, hd].
        """
        s, t = q.shape[2], k.shape[2]
        if self.attn_implementation == "eager":
            return scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=mask is None, dropout_p=dropout_p, scale=self.scaling
            )
        # torch's is_causal is top-left aligned, right only when s == t. With s == 1 the one
        # new token sees every key (no mask); otherwise build the bottom-right mask.
        if mask is None and s > 1 and s != t:
            mask = make_causal_mask(s, t, dtype=q.dtype, device=q.device)
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=mask is None and s == t, scale=self.scaling
        )


class MultiHeadAttention(GroupedQueryAttention):
    """Classic multi-head attention: every query head has its own key/value head.

    Adds nothing but the configuration: ``GroupedQueryAttention`` with
    ``num_key_value_heads = num_attention_heads`` (``n_rep = 1``, ``repeat_kv`` is a no-op),
    whatever the config says. Multi-query attention is the other extreme,
    ``GroupedQueryAttention`` with ``num_key_value_heads = 1``.
    """

    def __init__(self, config: ModelConfig, layer_idx: int | None = None, attn_implementation: str = "sdpa") -> None:
        mha_config = dataclasses.replace(config, num_key_value_heads=config.num_attention_heads)
        super().__init__(mha_config, layer_idx=layer_idx, attn_implementation=attn_implementation)
