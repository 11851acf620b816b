# ruff: noqa: F821
"""Wrong implementations of lesson 03's targets that learners really write.

``llm-course author verify lesson03`` splices each function below into a copy of the
reference ``model/attention.py`` in place of its symbol (so names such as ``torch``,
``F``, ``make_causal_mask``, ``repeat_kv`` or ``apply_rotary_pos_emb`` resolve in that
module) and checks that some lesson test fails. Each body is the reference with one
bug, so the test that catches it is the one about that bug.
"""

from __future__ import annotations

import torch  # only for default arguments such as dtype=torch.float32, evaluated when this file loads

from intro2llm_cli.mistakes import mistake

# ============================================================ make_causal_mask


@mistake("model/attention.py", "make_causal_mask", "off by one: the diagonal is masked too (a token cannot see itself)")
def causal_mask_masks_the_diagonal(q_len, kv_len, dtype=torch.float32, device=None):
    if q_len < 1 or kv_len < 1 or q_len > kv_len:
        raise ValueError(f"bad sizes q_len={q_len}, kv_len={kv_len}")
    mask = torch.full((q_len, kv_len), float("-inf"), dtype=dtype, device=device)
    return torch.triu(mask, diagonal=kv_len - q_len)


@mistake("model/attention.py", "make_causal_mask", "top-left aligned (triu(diagonal=1)): wrong when q_len < kv_len")
def causal_mask_top_left(q_len, kv_len, dtype=torch.float32, device=None):
    if q_len < 1 or kv_len < 1 or q_len > kv_len:
        raise ValueError(f"bad sizes q_len={q_len}, kv_len={kv_len}")
    mask = torch.full((q_len, kv_len), float("-inf"), dtype=dtype, device=device)
    return torch.triu(mask, diagonal=1)


@mistake("model/attention.py", "make_causal_mask", "finfo.min instead of -inf, and no check that q_len <= kv_len")
def causal_mask_finfo_min_unchecked(q_len, kv_len, dtype=torch.float32, device=None):
    mask = torch.full((q_len, kv_len), torch.finfo(dtype).min, dtype=dtype, device=device)
    return torch.triu(mask, diagonal=kv_len - q_len + 1)


# ============================================================ scaled_dot_product_attention


@mistake("model/attention.py", "scaled_dot_product_attention", "scale 1 / hd instead of 1 / sqrt(hd)")
def sdpa_scale_one_over_d(q, k, v, attn_mask=None, is_causal=False, dropout_p=0.0, scale=None, return_weights=False):
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4 or k.shape[1] != q.shape[1] or v.shape[1] != q.shape[1]:
        raise ValueError("q, k, v must be 4-D with the same heads: repeat_kv first")
    if scale is None:
        scale = 1.0 / q.shape[-1]
    acc = torch.promote_types(q.dtype, torch.float32)
    scores = (q.to(acc) @ k.to(acc).transpose(-2, -1)) * scale
    if is_causal:
        scores = scores + make_causal_mask(q.shape[-2], k.shape[-2], scores.dtype, scores.device)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask.to(scores.dtype)
    weights = torch.softmax(scores, dim=-1)
    if attn_mask is not None:
        weights = weights.masked_fill(torch.isneginf(scores).all(-1, keepdim=True), 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = (weights.to(v.dtype) @ v).to(q.dtype)
    return (out, weights) if return_weights else out


@mistake("model/attention.py", "scaled_dot_product_attention", "no scale at all (softmax(q @ k^T))")
def sdpa_no_scale(q, k, v, attn_mask=None, is_causal=False, dropout_p=0.0, scale=None, return_weights=False):
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4 or k.shape[1] != q.shape[1] or v.shape[1] != q.shape[1]:
        raise ValueError("q, k, v must be 4-D with the same heads: repeat_kv first")
    acc = torch.promote_types(q.dtype, torch.float32)
    scores = q.to(acc) @ k.to(acc).transpose(-2, -1)
    if scale is not None:
        scores = scores * scale
    if is_causal:
        scores = scores + make_causal_mask(q.shape[-2], k.shape[-2], scores.dtype, scores.device)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask.to(scores.dtype)
    weights = torch.softmax(scores, dim=-1)
    if attn_mask is not None:
        weights = weights.masked_fill(torch.isneginf(scores).all(-1, keepdim=True), 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = (weights.to(v.dtype) @ v).to(q.dtype)
    return (out, weights) if return_weights else out


@mistake("model/attention.py", "scaled_dot_product_attention", "softmax over the query axis (dim=-2) instead of the keys")
def sdpa_softmax_over_queries(q, k, v, attn_mask=None, is_causal=False, dropout_p=0.0, scale=None, return_weights=False):
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4 or k.shape[1] != q.shape[1] or v.shape[1] != q.shape[1]:
        raise ValueError("q, k, v must be 4-D with the same heads: repeat_kv first")
    if scale is None:
        scale = q.shape[-1] ** -0.5
    acc = torch.promote_types(q.dtype, torch.float32)
    scores = (q.to(acc) @ k.to(acc).transpose(-2, -1)) * scale
    if is_causal:
        scores = scores + make_causal_mask(q.shape[-2], k.shape[-2], scores.dtype, scores.device)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask.to(scores.dtype)
    weights = torch.softmax(scores, dim=-2)
    weights = torch.nan_to_num(weights)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = (weights.to(v.dtype) @ v).to(q.dtype)
    return (out, weights) if return_weights else out


@mistake("model/attention.py", "scaled_dot_product_attention", "the -inf mask is added after the softmax instead of before")
def sdpa_mask_after_softmax(q, k, v, attn_mask=None, is_causal=False, dropout_p=0.0, scale=None, return_weights=False):
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4 or k.shape[1] != q.shape[1] or v.shape[1] != q.shape[1]:
        raise ValueError("q, k, v must be 4-D with the same heads: repeat_kv first")
    if scale is None:
        scale = q.shape[-1] ** -0.5
    acc = torch.promote_types(q.dtype, torch.float32)
    scores = (q.to(acc) @ k.to(acc).transpose(-2, -1)) * scale
    weights = torch.softmax(scores, dim=-1)
    if is_causal:
        weights = weights + make_causal_mask(q.shape[-2], k.shape[-2], weights.dtype, weights.device)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            weights = weights.masked_fill(~attn_mask, float("-inf"))
        else:
            weights = weights + attn_mask.to(weights.dtype)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = (weights.to(v.dtype) @ v).to(q.dtype)
    return (out, weights) if return_weights else out


@mistake("model/attention.py", "scaled_dot_product_attention", "bool mask read the other way round (True = masked out)")
def sdpa_bool_mask_inverted(q, k, v, attn_mask=None, is_causal=False, dropout_p=0.0, scale=None, return_weights=False):
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4 or k.shape[1] != q.shape[1] or v.shape[1] != q.shape[1]:
        raise ValueError("q, k, v must be 4-D with the same heads: repeat_kv first")
    if scale is None:
        scale = q.shape[-1] ** -0.5
    acc = torch.promote_types(q.dtype, torch.float32)
    scores = (q.to(acc) @ k.to(acc).transpose(-2, -1)) * scale
    if is_causal:
        scores = scores + make_causal_mask(q.shape[-2], k.shape[-2], scores.dtype, scores.device)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask.to(scores.dtype)
    weights = torch.softmax(scores, dim=-1)
    if attn_mask is not None:
        weights = weights.masked_fill(torch.isneginf(scores).all(-1, keepdim=True), 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = (weights.to(v.dtype) @ v).to(q.dtype)
    return (out, weights) if return_weights else out


@mistake("model/attention.py", "scaled_dot_product_attention", "is_causal with a top-left mask (tril of ones(s, t)), wrong after a cache")
def sdpa_is_causal_top_left(q, k, v, attn_mask=None, is_causal=False, dropout_p=0.0, scale=None, return_weights=False):
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4 or k.shape[1] != q.shape[1] or v.shape[1] != q.shape[1]:
        raise ValueError("q, k, v must be 4-D with the same heads: repeat_kv first")
    if scale is None:
        scale = q.shape[-1] ** -0.5
    acc = torch.promote_types(q.dtype, torch.float32)
    scores = (q.to(acc) @ k.to(acc).transpose(-2, -1)) * scale
    if is_causal:
        keep = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask.to(scores.dtype)
    weights = torch.softmax(scores, dim=-1)
    if attn_mask is not None:
        weights = weights.masked_fill(torch.isneginf(scores).all(-1, keepdim=True), 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = (weights.to(v.dtype) @ v).to(q.dtype)
    return (out, weights) if return_weights else out


@mistake("model/attention.py", "scaled_dot_product_attention", "is_causal ignored when an attn_mask is given (if / elif)")
def sdpa_causal_or_mask(q, k, v, attn_mask=None, is_causal=False, dropout_p=0.0, scale=None, return_weights=False):
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4 or k.shape[1] != q.shape[1] or v.shape[1] != q.shape[1]:
        raise ValueError("q, k, v must be 4-D with the same heads: repeat_kv first")
    if scale is None:
        scale = q.shape[-1] ** -0.5
    acc = torch.promote_types(q.dtype, torch.float32)
    scores = (q.to(acc) @ k.to(acc).transpose(-2, -1)) * scale
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask.to(scores.dtype)
    elif is_causal:
        scores = scores + make_causal_mask(q.shape[-2], k.shape[-2], scores.dtype, scores.device)
    weights = torch.softmax(scores, dim=-1)
    if attn_mask is not None:
        weights = weights.masked_fill(torch.isneginf(scores).all(-1, keepdim=True), 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = (weights.to(v.dtype) @ v).to(q.dtype)
    return (out, weights) if return_weights else out


@mistake("model/attention.py", "scaled_dot_product_attention", "fully masked query rows left as NaN (0/0) instead of zeros")
def sdpa_fully_masked_rows_nan(q, k, v, attn_mask=None, is_causal=False, dropout_p=0.0, scale=None, return_weights=False):
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4 or k.shape[1] != q.shape[1] or v.shape[1] != q.shape[1]:
        raise ValueError("q, k, v must be 4-D with the same heads: repeat_kv first")
    if scale is None:
        scale = q.shape[-1] ** -0.5
    acc = torch.promote_types(q.dtype, torch.float32)
    scores = (q.to(acc) @ k.to(acc).transpose(-2, -1)) * scale
    if is_causal:
        scores = scores + make_causal_mask(q.shape[-2], k.shape[-2], scores.dtype, scores.device)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask.to(scores.dtype)
    weights = torch.softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = (weights.to(v.dtype) @ v).to(q.dtype)
    return (out, weights) if return_weights else out


@mistake("model/attention.py", "scaled_dot_product_attention", "scores and softmax in bfloat16 (no upcast to float32)")
def sdpa_softmax_in_half_precision(q, k, v, attn_mask=None, is_causal=False, dropout_p=0.0, scale=None, return_weights=False):
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4 or k.shape[1] != q.shape[1] or v.shape[1] != q.shape[1]:
        raise ValueError("q, k, v must be 4-D with the same heads: repeat_kv first")
    if scale is None:
        scale = q.shape[-1] ** -0.5
    scores = (q @ k.transpose(-2, -1)) * scale
    if is_causal:
        scores = scores + make_causal_mask(q.shape[-2], k.shape[-2], scores.dtype, scores.device)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask.to(scores.dtype)
    weights = torch.softmax(scores, dim=-1)
    if attn_mask is not None:
        weights = weights.masked_fill(torch.isneginf(scores).all(-1, keepdim=True), 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = weights @ v
    return (out, weights) if return_weights else out


@mistake("model/attention.py", "scaled_dot_product_attention", "dropout zeroes weights but does not rescale the survivors by 1 / (1 - p)")
def sdpa_dropout_without_rescale(q, k, v, attn_mask=None, is_causal=False, dropout_p=0.0, scale=None, return_weights=False):
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4 or k.shape[1] != q.shape[1] or v.shape[1] != q.shape[1]:
        raise ValueError("q, k, v must be 4-D with the same heads: repeat_kv first")
    if scale is None:
        scale = q.shape[-1] ** -0.5
    acc = torch.promote_types(q.dtype, torch.float32)
    scores = (q.to(acc) @ k.to(acc).transpose(-2, -1)) * scale
    if is_causal:
        scores = scores + make_causal_mask(q.shape[-2], k.shape[-2], scores.dtype, scores.device)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask.to(scores.dtype)
    weights = torch.softmax(scores, dim=-1)
    if attn_mask is not None:
        weights = weights.masked_fill(torch.isneginf(scores).all(-1, keepdim=True), 0.0)
    if dropout_p > 0.0:
        weights = weights * (torch.rand_like(weights) >= dropout_p)
    out = (weights.to(v.dtype) @ v).to(q.dtype)
    return (out, weights) if return_weights else out


# ============================================================ repeat_kv


@mistake("model/attention.py", "repeat_kv", "x.repeat(1, n_rep, 1, 1): tiles the heads (0,1,0,1) instead of grouping them (0,0,1,1)")
def repeat_kv_tiles(x, n_rep):
    if n_rep < 1:
        raise ValueError(f"n_rep={n_rep} must be >= 1")
    return x.repeat(1, n_rep, 1, 1)


@mistake("model/attention.py", "repeat_kv", "new axis after the sequence axis: expand then reshape mixes heads and positions")
def repeat_kv_expands_the_wrong_axis(x, n_rep):
    if n_rep < 1:
        raise ValueError(f"n_rep={n_rep} must be >= 1")
    if n_rep == 1:
        return x
    b, g, t, hd = x.shape
    return x[:, :, :, None, :].expand(b, g, t, n_rep, hd).reshape(b, g * n_rep, t, hd)


# ============================================================ prepare_attention_mask


@mistake("model/attention.py", "prepare_attention_mask", "padding mask ignored: only the causal part is returned")
def prepare_mask_ignores_padding(attention_mask, batch_size, q_len, kv_len, dtype, device=None):
    if attention_mask is None:
        return None
    causal = torch.ones(q_len, kv_len, dtype=torch.bool, device=device).tril(kv_len - q_len)
    allowed = causal[None, None].expand(batch_size, 1, q_len, kv_len)
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)


@mistake("model/attention.py", "prepare_attention_mask", "-inf instead of finfo(dtype).min: pad queries that see no key get 0 / NaN")
def prepare_mask_with_neg_inf(attention_mask, batch_size, q_len, kv_len, dtype, device=None):
    if attention_mask is None:
        return None
    if tuple(attention_mask.shape) != (batch_size, kv_len):
        raise ValueError(f"attention_mask must be [{batch_size}, {kv_len}]")
    causal = torch.ones(q_len, kv_len, dtype=torch.bool, device=device).tril(kv_len - q_len)
    allowed = causal[None, None] & attention_mask.to(device=device, dtype=torch.bool)[:, None, None, :]
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, float("-inf"))


@mistake("model/attention.py", "prepare_attention_mask", "causal and padding masks of finfo.min added: min + min overflows to -inf")
def prepare_mask_adds_two_minimums(attention_mask, batch_size, q_len, kv_len, dtype, device=None):
    if attention_mask is None:
        return None
    if tuple(attention_mask.shape) != (batch_size, kv_len):
        raise ValueError(f"attention_mask must be [{batch_size}, {kv_len}]")
    low = torch.finfo(dtype).min
    causal = torch.zeros(q_len, kv_len, dtype=dtype, device=device).masked_fill(
        ~torch.ones(q_len, kv_len, dtype=torch.bool, device=device).tril(kv_len - q_len), low)
    padding = torch.zeros(batch_size, kv_len, dtype=dtype, device=device).masked_fill(
        ~attention_mask.to(device=device, dtype=torch.bool), low)
    return causal[None, None] + padding[:, None, None, :]


@mistake("model/attention.py", "prepare_attention_mask", "causal part top-left aligned (tril(0)): wrong for chunks after a cache")
def prepare_mask_top_left(attention_mask, batch_size, q_len, kv_len, dtype, device=None):
    if attention_mask is None:
        return None
    if tuple(attention_mask.shape) != (batch_size, kv_len):
        raise ValueError(f"attention_mask must be [{batch_size}, {kv_len}]")
    causal = torch.ones(q_len, kv_len, dtype=torch.bool, device=device).tril()
    allowed = causal[None, None] & attention_mask.to(device=device, dtype=torch.bool)[:, None, None, :]
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)


@mistake("model/attention.py", "prepare_attention_mask", "finfo(float32).min whatever the dtype: -inf once cast to float16")
def prepare_mask_float32_minimum(attention_mask, batch_size, q_len, kv_len, dtype, device=None):
    if attention_mask is None:
        return None
    if attention_mask.dim() == 4:
        return attention_mask.to(dtype)
    if tuple(attention_mask.shape) != (batch_size, kv_len):
        raise ValueError(f"attention_mask must be [{batch_size}, {kv_len}]")
    causal = torch.ones(q_len, kv_len, dtype=torch.bool, device=device).tril(kv_len - q_len)
    allowed = causal[None, None] & attention_mask.to(device=device, dtype=torch.bool)[:, None, None, :]
    mask = torch.zeros(allowed.shape, device=device).masked_fill(~allowed, torch.finfo(torch.float32).min)
    return mask.to(dtype)


@mistake("model/attention.py", "prepare_attention_mask", "a complete 4-D mask is not passed through but checked as a padding mask")
def prepare_mask_rejects_4d_masks(attention_mask, batch_size, q_len, kv_len, dtype, device=None):
    if attention_mask is None:
        return None
    if tuple(attention_mask.shape) != (batch_size, kv_len):
        raise ValueError(f"attention_mask must be [{batch_size}, {kv_len}]")
    causal = torch.ones(q_len, kv_len, dtype=torch.bool, device=device).tril(kv_len - q_len)
    allowed = causal[None, None] & attention_mask.to(device=device, dtype=torch.bool)[:, None, None, :]
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)


# ============================================================ GroupedQueryAttention.__init__


@mistake("model/attention.py", "GroupedQueryAttention.__init__", "k_proj / v_proj sized for h heads (h * hd) instead of g heads")
def init_kv_projections_for_every_query_head(self, config, layer_idx=None, attn_implementation="sdpa"):
    super().__init__()
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f"attn_implementation={attn_implementation!r}")
    self.config, self.layer_idx, self.attn_implementation = config, layer_idx, attn_implementation
    self.hidden_size = d = config.hidden_size
    self.num_heads = h = config.num_attention_heads
    self.num_key_value_heads = h
    self.head_dim = hd = config.head_dim
    self.num_key_value_groups = 1
    self.scaling = hd**-0.5
    self.attention_dropout = config.attention_dropout
    self.q_proj = nn.Linear(d, h * hd, bias=False)
    self.k_proj = nn.Linear(d, h * hd, bias=False)
    self.v_proj = nn.Linear(d, h * hd, bias=False)
    self.o_proj = nn.Linear(h * hd, d, bias=False)
    self.rotary_emb = RotaryEmbedding(hd, config.max_position_embeddings, config.rope_theta)


@mistake("model/attention.py", "GroupedQueryAttention.__init__", "projections with biases (nn.Linear default bias=True)")
def init_projections_with_bias(self, config, layer_idx=None, attn_implementation="sdpa"):
    super().__init__()
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f"attn_implementation={attn_implementation!r}")
    self.config, self.layer_idx, self.attn_implementation = config, layer_idx, attn_implementation
    self.hidden_size = d = config.hidden_size
    self.num_heads = h = config.num_attention_heads
    self.num_key_value_heads = g = config.num_key_value_heads
    self.head_dim = hd = config.head_dim
    self.num_key_value_groups = h // g
    self.scaling = hd**-0.5
    self.attention_dropout = config.attention_dropout
    self.q_proj = nn.Linear(d, h * hd)
    self.k_proj = nn.Linear(d, g * hd)
    self.v_proj = nn.Linear(d, g * hd)
    self.o_proj = nn.Linear(h * hd, d)
    self.rotary_emb = RotaryEmbedding(hd, config.max_position_embeddings, config.rope_theta)


@mistake("model/attention.py", "GroupedQueryAttention.__init__", "scaling = 1 / head_dim (the layer passes it to both paths)")
def init_scaling_one_over_head_dim(self, config, layer_idx=None, attn_implementation="sdpa"):
    super().__init__()
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f"attn_implementation={attn_implementation!r}")
    self.config, self.layer_idx, self.attn_implementation = config, layer_idx, attn_implementation
    self.hidden_size = d = config.hidden_size
    self.num_heads = h = config.num_attention_heads
    self.num_key_value_heads = g = config.num_key_value_heads
    self.head_dim = hd = config.head_dim
    self.num_key_value_groups = h // g
    self.scaling = 1.0 / hd
    self.attention_dropout = config.attention_dropout
    self.q_proj = nn.Linear(d, h * hd, bias=False)
    self.k_proj = nn.Linear(d, g * hd, bias=False)
    self.v_proj = nn.Linear(d, g * hd, bias=False)
    self.o_proj = nn.Linear(h * hd, d, bias=False)
    self.rotary_emb = RotaryEmbedding(hd, config.max_position_embeddings, config.rope_theta)


# ============================================================ GroupedQueryAttention.forward
# Each is the reference forward with one change, marked "# <- bug".


@mistake("model/attention.py", "GroupedQueryAttention.forward", "heads merged with reshape(b, s, h*hd) straight from the b, h, s, hd layout, no transpose")
def forward_merges_heads_without_transpose(self, hidden_states, attention_mask=None, position_ids=None,
                                           past_key_value=None, use_cache=False):
    b, s, d = hidden_states.shape
    if d != self.hidden_size:
        raise ValueError(f"hidden_states has {d} features but hidden_size={self.hidden_size}")
    h, g, hd = self.num_heads, self.num_key_value_heads, self.head_dim
    q = self.q_proj(hidden_states).view(b, s, h, hd).transpose(1, 2)
    k = self.k_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)
    v = self.v_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)
    past_len = past_key_value[0].shape[2] if past_key_value is not None else 0
    if position_ids is None:
        position_ids = torch.arange(past_len, past_len + s, device=q.device)[None, :]
    cos, sin = self.rotary_emb(position_ids, dtype=q.dtype)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    if past_key_value is not None:
        k = torch.cat([past_key_value[0], k], dim=2)
        v = torch.cat([past_key_value[1], v], dim=2)
    present = (k, v) if use_cache else None
    mask = prepare_attention_mask(attention_mask, b, s, k.shape[2], q.dtype, q.device)
    k = repeat_kv(k, self.num_key_value_groups)
    v = repeat_kv(v, self.num_key_value_groups)
    dropout_p = self.attention_dropout if self.training else 0.0
    out = self._attend(q, k, v, mask, dropout_p)
    out = out.reshape(b, s, h * hd)  # <- bug
    return self.o_proj(out), present


@mistake("model/attention.py", "GroupedQueryAttention.forward", "heads split with view(b, h, s, hd) (no transpose): features of different tokens mixed")
def forward_splits_heads_without_transpose(self, hidden_states, attention_mask=None, position_ids=None,
                                           past_key_value=None, use_cache=False):
    b, s, d = hidden_states.shape
    if d != self.hidden_size:
        raise ValueError(f"hidden_states has {d} features but hidden_size={self.hidden_size}")
    h, g, hd = self.num_heads, self.num_key_value_heads, self.head_dim
    q = self.q_proj(hidden_states).view(b, h, s, hd)  # <- bug
    k = self.k_proj(hidden_states).view(b, g, s, hd)  # <- bug
    v = self.v_proj(hidden_states).view(b, g, s, hd)  # <- bug
    past_len = past_key_value[0].shape[2] if past_key_value is not None else 0
    if position_ids is None:
        position_ids = torch.arange(past_len, past_len + s, device=q.device)[None, :]
    cos, sin = self.rotary_emb(position_ids, dtype=q.dtype)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    if past_key_value is not None:
        k = torch.cat([past_key_value[0], k], dim=2)
        v = torch.cat([past_key_value[1], v], dim=2)
    present = (k, v) if use_cache else None
    mask = prepare_attention_mask(attention_mask, b, s, k.shape[2], q.dtype, q.device)
    k = repeat_kv(k, self.num_key_value_groups)
    v = repeat_kv(v, self.num_key_value_groups)
    dropout_p = self.attention_dropout if self.training else 0.0
    out = self._attend(q, k, v, mask, dropout_p)
    out = out.transpose(1, 2).reshape(b, s, h * hd)
    return self.o_proj(out), present


@mistake("model/attention.py", "GroupedQueryAttention.forward", "positions restart at 0 on every call (not offset by the cache length)")
def forward_positions_restart_at_zero(self, hidden_states, attention_mask=None, position_ids=None,
                                      past_key_value=None, use_cache=False):
    b, s, d = hidden_states.shape
    if d != self.hidden_size:
        raise ValueError(f"hidden_states has {d} features but hidden_size={self.hidden_size}")
    h, g, hd = self.num_heads, self.num_key_value_heads, self.head_dim
    q = self.q_proj(hidden_states).view(b, s, h, hd).transpose(1, 2)
    k = self.k_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)
    v = self.v_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)
    if position_ids is None:
        position_ids = torch.arange(s, device=q.device)[None, :]  # <- bug
    cos, sin = self.rotary_emb(position_ids, dtype=q.dtype)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    if past_key_value is not None:
        k = torch.cat([past_key_value[0], k], dim=2)
        v = torch.cat([past_key_value[1], v], dim=2)
    present = (k, v) if use_cache else None
    mask = prepare_attention_mask(attention_mask, b, s, k.shape[2], q.dtype, q.device)
    k = repeat_kv(k, self.num_key_value_groups)
    v = repeat_kv(v, self.num_key_value_groups)
    dropout_p = self.attention_dropout if self.training else 0.0
    out = self._attend(q, k, v, mask, dropout_p)
    out = out.transpose(1, 2).reshape(b, s, h * hd)
    return self.o_proj(out), present


@mistake("model/attention.py", "GroupedQueryAttention.forward", "RoPE applied to the whole k after concatenating the cache: cached keys rotated twice")
def forward_rope_after_cache_double_rotation(self, hidden_states, attention_mask=None, position_ids=None,
                                             past_key_value=None, use_cache=False):
    b, s, d = hidden_states.shape
    if d != self.hidden_size:
        raise ValueError(f"hidden_states has {d} features but hidden_size={self.hidden_size}")
    h, g, hd = self.num_heads, self.num_key_value_heads, self.head_dim
    q = self.q_proj(hidden_states).view(b, s, h, hd).transpose(1, 2)
    k = self.k_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)
    v = self.v_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)
    past_len = past_key_value[0].shape[2] if past_key_value is not None else 0
    if position_ids is None:
        position_ids = torch.arange(past_len, past_len + s, device=q.device)[None, :]
    if past_key_value is not None:
        k = torch.cat([past_key_value[0], k], dim=2)
        v = torch.cat([past_key_value[1], v], dim=2)
    cos, sin = self.rotary_emb(position_ids, dtype=q.dtype)
    all_positions = torch.arange(k.shape[2], device=q.device)[None, :]
    cos_k, sin_k = self.rotary_emb(all_positions, dtype=k.dtype)
    q, _ = apply_rotary_pos_emb(q, q, cos, sin)
    _, k = apply_rotary_pos_emb(k, k, cos_k, sin_k)  # <- bug: the cached part was rotated already
    present = (k, v) if use_cache else None
    mask = prepare_attention_mask(attention_mask, b, s, k.shape[2], q.dtype, q.device)
    k = repeat_kv(k, self.num_key_value_groups)
    v = repeat_kv(v, self.num_key_value_groups)
    dropout_p = self.attention_dropout if self.training else 0.0
    out = self._attend(q, k, v, mask, dropout_p)
    out = out.transpose(1, 2).reshape(b, s, h * hd)
    return self.o_proj(out), present


@mistake("model/attention.py", "GroupedQueryAttention.forward", "k cached before RoPE: cached keys never rotated")
def forward_caches_keys_before_rope(self, hidden_states, attention_mask=None, position_ids=None,
                                    past_key_value=None, use_cache=False):
    b, s, d = hidden_states.shape
    if d != self.hidden_size:
        raise ValueError(f"hidden_states has {d} features but hidden_size={self.hidden_size}")
    h, g, hd = self.num_heads, self.num_key_value_heads, self.head_dim
    q = self.q_proj(hidden_states).view(b, s, h, hd).transpose(1, 2)
    k = self.k_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)
    v = self.v_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)
    past_len = past_key_value[0].shape[2] if past_key_value is not None else 0
    if position_ids is None:
        position_ids = torch.arange(past_len, past_len + s, device=q.device)[None, :]
    k_raw = k if past_key_value is None else torch.cat([past_key_value[0], k], dim=2)
    cos, sin = self.rotary_emb(position_ids, dtype=q.dtype)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    if past_key_value is not None:
        k = torch.cat([past_key_value[0], k], dim=2)
        v = torch.cat([past_key_value[1], v], dim=2)
    present = (k_raw, v) if use_cache else None  # <- bug
    mask = prepare_attention_mask(attention_mask, b, s, k.shape[2], q.dtype, q.device)
    k = repeat_kv(k, self.num_key_value_groups)
    v = repeat_kv(v, self.num_key_value_groups)
    dropout_p = self.attention_dropout if self.training else 0.0
    out = self._attend(q, k, v, mask, dropout_p)
    out = out.transpose(1, 2).reshape(b, s, h * hd)
    return self.o_proj(out), present


@mistake("model/attention.py", "GroupedQueryAttention.forward", "RoPE applied to q only, k left unrotated")
def forward_rope_not_applied_to_k(self, hidden_states, attention_mask=None, position_ids=None,
                                  past_key_value=None, use_cache=False):
    b, s, d = hidden_states.shape
    if d != self.hidden_size:
        raise ValueError(f"hidden_states has {d} features but hidden_size={self.hidden_size}")
    h, g, hd = self.num_heads, self.num_key_value_heads, self.head_dim
    q = self.q_proj(hidden_states).view(b, s, h, hd).transpose(1, 2)
    k = self.k_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)
    v = self.v_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)
    past_len = past_key_value[0].shape[2] if past_key_value is not None else 0
    if position_ids is None:
        position_ids = torch.arange(past_len, past_len + s, device=q.device)[None, :]
    cos, sin = self.rotary_emb(position_ids, dtype=q.dtype)
    q, _ = apply_rotary_pos_emb(q, k, cos, sin)  # <- bug
    if past_key_value is not None:
        k = torch.cat([past_key_value[0], k], dim=2)
        v = torch.cat([past_key_value[1], v], dim=2)
    present = (k, v) if use_cache else None
    mask = prepare_attention_mask(attention_mask, b, s, k.shape[2], q.dtype, q.device)
    k = repeat_kv(k, self.num_key_value_groups)
    v = repeat_kv(v, self.num_key_value_groups)
    dropout_p = self.attention_dropout if self.training else 0.0
    out = self._attend(q, k, v, mask, dropout_p)
    out = out.transpose(1, 2).reshape(b, s, h * hd)
    return self.o_proj(out), present


@mistake("model/attention.py", "GroupedQueryAttention.forward", "cache concatenated on the head axis (dim=1) instead of the sequence axis")
def forward_cache_on_the_head_axis(self, hidden_states, attention_mask=None, position_ids=None,
                                   past_key_value=None, use_cache=False):
    b, s, d = hidden_states.shape
    if d != self.hidden_size:
        raise ValueError(f"hidden_states has {d} features but hidden_size={self.hidden_size}")
    h, g, hd = self.num_heads, self.num_key_value_heads, self.head_dim
    q = self.q_proj(hidden_states).view(b, s, h, hd).transpose(1, 2)
    k = self.k_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)
    v = self.v_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)
    past_len = past_key_value[0].shape[2] if past_key_value is not None else 0
    if position_ids is None:
        position_ids = torch.arange(past_len, past_len + s, device=q.device)[None, :]
    cos, sin = self.rotary_emb(position_ids, dtype=q.dtype)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    if past_key_value is not None:
        k = torch.cat([past_key_value[0], k], dim=1)  # <- bug
        v = torch.cat([past_key_value[1], v], dim=1)  # <- bug
    present = (k, v) if use_cache else None
    mask = prepare_attention_mask(attention_mask, b, s, k.shape[2], q.dtype, q.device)
    k = repeat_kv(k, self.num_key_value_groups)
    v = repeat_kv(v, self.num_key_value_groups)
    dropout_p = self.attention_dropout if self.training else 0.0
    out = self._attend(q, k, v, mask, dropout_p)
    out = out.transpose(1, 2).reshape(b, s, h * hd)
    return self.o_proj(out), present


@mistake("model/attention.py", "GroupedQueryAttention.forward", "new keys put before the cached ones: torch.cat of (k, past) instead of (past, k)")
def forward_cache_order_swapped(self, hidden_states, attention_mask=None, position_ids=None,
                                past_key_value=None, use_cache=False):
    b, s, d = hidden_states.shape
    if d != self.hidden_size:
        raise ValueError(f"hidden_states has {d} features but hidden_size={self.hidden_size}")
    h, g, hd = self.num_heads, self.num_key_value_heads, self.head_dim
    q = self.q_proj(hidden_states).view(b, s, h, hd).transpose(1, 2)
    k = self.k_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)
    v = self.v_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)
    past_len = past_key_value[0].shape[2] if past_key_value is not None else 0
    if position_ids is None:
        position_ids = torch.arange(past_len, past_len + s, device=q.device)[None, :]
    cos, sin = self.rotary_emb(position_ids, dtype=q.dtype)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    if past_key_value is not None:
        k = torch.cat([k, past_key_value[0]], dim=2)  # <- bug
        v = torch.cat([v, past_key_value[1]], dim=2)  # <- bug
    present = (k, v) if use_cache else None
    mask = prepare_attention_mask(attention_mask, b, s, k.shape[2], q.dtype, q.device)
    k = repeat_kv(k, self.num_key_value_groups)
    v = repeat_kv(v, self.num_key_value_groups)
    dropout_p = self.attention_dropout if self.training else 0.0
    out = self._attend(q, k, v, mask, dropout_p)
    out = out.transpose(1, 2).reshape(b, s, h * hd)
    return self.o_proj(out), present


@mistake("model/attention.py", "GroupedQueryAttention.forward", "the h repeated heads are cached instead of the g KV heads")
def forward_caches_repeated_heads(self, hidden_states, attention_mask=None, position_ids=None,
                                  past_key_value=None, use_cache=False):
    b, s, d = hidden_states.shape
    if d != self.hidden_size:
        raise ValueError(f"hidden_states has {d} features but hidden_size={self.hidden_size}")
    h, g, hd = self.num_heads, self.num_key_value_heads, self.head_dim
    q = self.q_proj(hidden_states).view(b, s, h, hd).transpose(1, 2)
    k = self.k_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)
    v = self.v_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)
    past_len = past_key_value[0].shape[2] if past_key_value is not None else 0
    if position_ids is None:
        position_ids = torch.arange(past_len, past_len + s, device=q.device)[None, :]
    cos, sin = self.rotary_emb(position_ids, dtype=q.dtype)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    k = repeat_kv(k, self.num_key_value_groups)  # <- bug: repeated before caching
    v = repeat_kv(v, self.num_key_value_groups)
    if past_key_value is not None:
        k = torch.cat([past_key_value[0], k], dim=2)
        v = torch.cat([past_key_value[1], v], dim=2)
    present = (k, v) if use_cache else None
    mask = prepare_attention_mask(attention_mask, b, s, k.shape[2], q.dtype, q.device)
    dropout_p = self.attention_dropout if self.training else 0.0
    out = self._attend(q, k, v, mask, dropout_p)
    out = out.transpose(1, 2).reshape(b, s, h * hd)
    return self.o_proj(out), present


@mistake("model/attention.py", "GroupedQueryAttention.forward", "padding mask ignored: attention_mask never reaches the attention")
def forward_ignores_the_padding_mask(self, hidden_states, attention_mask=None, position_ids=None,
                                     past_key_value=None, use_cache=False):
    b, s, d = hidden_states.shape
    if d != self.hidden_size:
        raise ValueError(f"hidden_states has {d} features but hidden_size={self.hidden_size}")
    h, g, hd = self.num_heads, self.num_key_value_heads, self.head_dim
    q = self.q_proj(hidden_states).view(b, s, h, hd).transpose(1, 2)
    k = self.k_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)
    v = self.v_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)
    past_len = past_key_value[0].shape[2] if past_key_value is not None else 0
    if position_ids is None:
        position_ids = torch.arange(past_len, past_len + s, device=q.device)[None, :]
    cos, sin = self.rotary_emb(position_ids, dtype=q.dtype)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    if past_key_value is not None:
        k = torch.cat([past_key_value[0], k], dim=2)
        v = torch.cat([past_key_value[1], v], dim=2)
    present = (k, v) if use_cache else None
    mask = None  # <- bug
    k = repeat_kv(k, self.num_key_value_groups)
    v = repeat_kv(v, self.num_key_value_groups)
    dropout_p = self.attention_dropout if self.training else 0.0
    out = self._attend(q, k, v, mask, dropout_p)
    out = out.transpose(1, 2).reshape(b, s, h * hd)
    return self.o_proj(out), present


@mistake("model/attention.py", "GroupedQueryAttention.forward", "attention dropout also in eval mode (self.training not checked)")
def forward_dropout_in_eval(self, hidden_states, attention_mask=None, position_ids=None,
                            past_key_value=None, use_cache=False):
    b, s, d = hidden_states.shape
    if d != self.hidden_size:
        raise ValueError(f"hidden_states has {d} features but hidden_size={self.hidden_size}")
    h, g, hd = self.num_heads, self.num_key_value_heads, self.head_dim
    q = self.q_proj(hidden_states).view(b, s, h, hd).transpose(1, 2)
    k = self.k_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)
    v = self.v_proj(hidden_states).view(b, s, g, hd).transpose(1, 2)
    past_len = past_key_value[0].shape[2] if past_key_value is not None else 0
    if position_ids is None:
        position_ids = torch.arange(past_len, past_len + s, device=q.device)[None, :]
    cos, sin = self.rotary_emb(position_ids, dtype=q.dtype)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    if past_key_value is not None:
        k = torch.cat([past_key_value[0], k], dim=2)
        v = torch.cat([past_key_value[1], v], dim=2)
    present = (k, v) if use_cache else None
    mask = prepare_attention_mask(attention_mask, b, s, k.shape[2], q.dtype, q.device)
    k = repeat_kv(k, self.num_key_value_groups)
    v = repeat_kv(v, self.num_key_value_groups)
    dropout_p = self.attention_dropout  # <- bug
    out = self._attend(q, k, v, mask, dropout_p)
    out = out.transpose(1, 2).reshape(b, s, h * hd)
    return self.o_proj(out), present
