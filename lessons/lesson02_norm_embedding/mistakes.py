# ruff: noqa: F821
"""Wrong implementations of lesson 02's targets that learners really write.

``llm-course author verify lesson02`` splices each function below into a copy of the
reference in place of its symbol (so ``torch``, ``nn`` and ``math`` resolve in that
module) and checks that some lesson test fails. Each body is the reference with one bug,
so the test that catches it is the one about that bug.

Not here, because it is correct: ``TokenEmbedding`` as ``one_hot(ids, V) @ weight``
(same values, same gradient), ``F.layer_norm`` on the float32 copy, ``/ torch.sqrt`` for
``* torch.rsqrt``, ``torch.chunk`` in ``rotate_half``, ``base ** -e`` for ``1 / base ** e``.
Where the cast back to the input dtype happens *is* visible in bfloat16: LayerNorm must
round once, after the affine step (as ``torch.nn.LayerNorm``); RMSNorm must round ``x / rms``
before the weight (as Llama; a hand-worked bfloat16 case shows the difference), then cast
the product once more so a float32 weight does not promote the output.
"""

from __future__ import annotations

# Only for the default ``dtype=torch.float32`` below, evaluated when this file loads;
# inside the bodies ``torch`` is the target module's.
import torch

from intro2llm_cli.mistakes import mistake

# ============================================================ model/norm.py — LayerNorm


@mistake("model/norm.py", "LayerNorm.forward", "eps added outside the square root: (x - mean) / (sqrt(var) + eps)")
def layernorm_eps_outside_the_root(self, x):
    input_dtype = x.dtype
    h = x.to(torch.promote_types(input_dtype, torch.float32))
    mean = h.mean(-1, keepdim=True)
    centered = h - mean
    var = centered.pow(2).mean(-1, keepdim=True)
    h = centered / (torch.sqrt(var) + self.eps)
    return (h * self.weight + self.bias).to(input_dtype)


@mistake("model/norm.py", "LayerNorm.forward", "variance with Bessel's correction: h.var(-1) is unbiased (divides by d - 1)")
def layernorm_unbiased_variance(self, x):
    input_dtype = x.dtype
    h = x.to(torch.promote_types(input_dtype, torch.float32))
    mean = h.mean(-1, keepdim=True)
    var = h.var(-1, keepdim=True)
    h = (h - mean) * torch.rsqrt(var + self.eps)
    return (h * self.weight + self.bias).to(input_dtype)


@mistake("model/norm.py", "LayerNorm.forward", "statistics over the first axis (dim=0, like BatchNorm) instead of the last")
def layernorm_normalises_over_dim_0(self, x):
    input_dtype = x.dtype
    h = x.to(torch.promote_types(input_dtype, torch.float32))
    mean = h.mean(0, keepdim=True)
    centered = h - mean
    var = centered.pow(2).mean(0, keepdim=True)
    h = centered * torch.rsqrt(var + self.eps)
    return (h * self.weight + self.bias).to(input_dtype)


@mistake("model/norm.py", "LayerNorm.forward", "no float32 upcast: statistics computed in the input dtype (float16 squares overflow)")
def layernorm_without_upcast(self, x):
    mean = x.mean(-1, keepdim=True)
    centered = x - mean
    var = centered.pow(2).mean(-1, keepdim=True)
    h = centered * torch.rsqrt(var + self.eps)
    return (h * self.weight + self.bias).to(x.dtype)


@mistake("model/norm.py", "LayerNorm.forward", "never casts back: returns float32 for a bfloat16 / float16 input")
def layernorm_forgets_the_cast_back(self, x):
    h = x.to(torch.promote_types(x.dtype, torch.float32))
    mean = h.mean(-1, keepdim=True)
    centered = h - mean
    var = centered.pow(2).mean(-1, keepdim=True)
    h = centered * torch.rsqrt(var + self.eps)
    return h * self.weight + self.bias


@mistake("model/norm.py", "LayerNorm.forward", "casts back before the affine step: weight and bias applied in bfloat16 (three roundings, not one)")
def layernorm_affine_after_the_cast(self, x):
    input_dtype = x.dtype
    h = x.to(torch.promote_types(input_dtype, torch.float32))
    mean = h.mean(-1, keepdim=True)
    centered = h - mean
    var = centered.pow(2).mean(-1, keepdim=True)
    h = (centered * torch.rsqrt(var + self.eps)).to(input_dtype)
    return (h * self.weight + self.bias).to(input_dtype)


@mistake("model/norm.py", "LayerNorm.forward", "weight and bias swapped: h * bias + weight")
def layernorm_weight_and_bias_swapped(self, x):
    input_dtype = x.dtype
    h = x.to(torch.promote_types(input_dtype, torch.float32))
    mean = h.mean(-1, keepdim=True)
    centered = h - mean
    var = centered.pow(2).mean(-1, keepdim=True)
    h = centered * torch.rsqrt(var + self.eps)
    return (h * self.bias + self.weight).to(input_dtype)


@mistake("model/norm.py", "LayerNorm.forward", "upcasts with x.float(): float64 inputs are computed in float32")
def layernorm_upcasts_float64_down(self, x):
    input_dtype = x.dtype
    h = x.float()
    mean = h.mean(-1, keepdim=True)
    centered = h - mean
    var = centered.pow(2).mean(-1, keepdim=True)
    h = centered * torch.rsqrt(var + self.eps)
    return (h * self.weight + self.bias).to(input_dtype)


@mistake("model/norm.py", "LayerNorm.forward", "statistics detached from the graph (as for running stats): forward right, gradient wrong")
def layernorm_detached_statistics(self, x):
    input_dtype = x.dtype
    h = x.to(torch.promote_types(input_dtype, torch.float32))
    mean = h.mean(-1, keepdim=True).detach()
    centered = h - mean
    var = centered.pow(2).mean(-1, keepdim=True).detach()
    h = centered * torch.rsqrt(var + self.eps)
    return (h * self.weight + self.bias).to(input_dtype)


# ============================================================ model/norm.py — RMSNorm


@mistake("model/norm.py", "RMSNorm.forward", "eps added outside the square root: x / (sqrt(mean(x²)) + eps)")
def rmsnorm_eps_outside_the_root(self, x):
    input_dtype = x.dtype
    h = x.to(torch.promote_types(input_dtype, torch.float32))
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h / (torch.sqrt(variance) + self.eps)
    return (self.weight * h.to(input_dtype)).to(input_dtype)


@mistake("model/norm.py", "RMSNorm.forward", "subtracts the mean first (that is LayerNorm without a bias)")
def rmsnorm_subtracts_the_mean(self, x):
    input_dtype = x.dtype
    h = x.to(torch.promote_types(input_dtype, torch.float32))
    h = h - h.mean(-1, keepdim=True)
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + self.eps)
    return (self.weight * h.to(input_dtype)).to(input_dtype)


@mistake("model/norm.py", "RMSNorm.forward", "mean without keepdim=True: [..., d] * [...] broadcasts over the wrong axis")
def rmsnorm_mean_without_keepdim(self, x):
    input_dtype = x.dtype
    h = x.to(torch.promote_types(input_dtype, torch.float32))
    variance = h.pow(2).mean(-1)
    h = h * torch.rsqrt(variance + self.eps)
    return (self.weight * h.to(input_dtype)).to(input_dtype)


@mistake("model/norm.py", "RMSNorm.forward", "divides by the L2 norm sqrt(sum(x²)) instead of the root mean square")
def rmsnorm_divides_by_the_l2_norm(self, x):
    input_dtype = x.dtype
    h = x.to(torch.promote_types(input_dtype, torch.float32))
    h = h * torch.rsqrt(h.pow(2).sum(-1, keepdim=True) + self.eps)
    return (self.weight * h.to(input_dtype)).to(input_dtype)


@mistake("model/norm.py", "RMSNorm.forward", "no float32 upcast: mean(x²) in bfloat16 / float16 (float16 squares overflow, output zeros)")
def rmsnorm_without_upcast(self, x):
    variance = x.pow(2).mean(-1, keepdim=True)
    return (self.weight * (x * torch.rsqrt(variance + self.eps))).to(x.dtype)


@mistake("model/norm.py", "RMSNorm.forward", "Hugging Face verbatim, no outer cast: a float32 weight promotes a bfloat16 input's output to float32")
def rmsnorm_without_the_outer_cast(self, x):
    input_dtype = x.dtype
    h = x.to(torch.promote_types(input_dtype, torch.float32))
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + self.eps)
    return self.weight * h.to(input_dtype)


@mistake("model/norm.py", "RMSNorm.forward", "weight multiplied before the cast back: (weight * h).to(input_dtype), not Llama's order")
def rmsnorm_weight_before_the_cast(self, x):
    input_dtype = x.dtype
    h = x.to(torch.promote_types(input_dtype, torch.float32))
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + self.eps)
    return (self.weight * h).to(input_dtype)


@mistake("model/norm.py", "RMSNorm.forward", "upcasts with x.float(): float64 inputs are computed in float32")
def rmsnorm_upcasts_float64_down(self, x):
    input_dtype = x.dtype
    h = x.float()
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + self.eps)
    return (self.weight * h.to(input_dtype)).to(input_dtype)


@mistake("model/norm.py", "RMSNorm.forward", "rsqrt computed under torch.no_grad(): forward right, gradient wrong")
def rmsnorm_scale_without_gradient(self, x):
    input_dtype = x.dtype
    h = x.to(torch.promote_types(input_dtype, torch.float32))
    with torch.no_grad():
        scale = torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
    h = h * scale
    return (self.weight * h.to(input_dtype)).to(input_dtype)


# ============================================================ model/embedding.py — TokenEmbedding


@mistake("model/embedding.py", "TokenEmbedding.forward", "returns weight[ids].detach(): the table never learns")
def token_embedding_detached(self, input_ids):
    if input_ids.dtype == torch.bool or input_ids.is_floating_point() or input_ids.is_complex():
        raise ValueError(f"input_ids must be an integer tensor, got {input_ids.dtype}: use input_ids.long()")
    bad = (input_ids < 0) | (input_ids >= self.vocab_size)
    if bad.any():
        raise ValueError(f"token id {int(input_ids[bad][0])} is out of range for vocab_size={self.vocab_size}")
    return self.weight[input_ids].detach()


@mistake("model/embedding.py", "TokenEmbedding.forward", "indexes with input_ids.T: [b, s] ids give [s, b, d]")
def token_embedding_transposed_ids(self, input_ids):
    if input_ids.dtype == torch.bool or input_ids.is_floating_point() or input_ids.is_complex():
        raise ValueError(f"input_ids must be an integer tensor, got {input_ids.dtype}: use input_ids.long()")
    bad = (input_ids < 0) | (input_ids >= self.vocab_size)
    if bad.any():
        raise ValueError(f"token id {int(input_ids[bad][0])} is out of range for vocab_size={self.vocab_size}")
    return self.weight[input_ids.T]


@mistake("model/embedding.py", "TokenEmbedding.forward", "checks only ids >= vocab_size: id -1 silently reads the last row")
def token_embedding_allows_negative_ids(self, input_ids):
    if input_ids.dtype == torch.bool or input_ids.is_floating_point() or input_ids.is_complex():
        raise ValueError(f"input_ids must be an integer tensor, got {input_ids.dtype}: use input_ids.long()")
    bad = input_ids >= self.vocab_size
    if bad.any():
        raise ValueError(f"token id {int(input_ids[bad][0])} is out of range for vocab_size={self.vocab_size}")
    return self.weight[input_ids]


@mistake("model/embedding.py", "TokenEmbedding.forward", "one_hot(ids) without num_classes=vocab_size: width is max(id) + 1, the matmul fails")
def token_embedding_one_hot_without_num_classes(self, input_ids):
    if input_ids.dtype == torch.bool or input_ids.is_floating_point() or input_ids.is_complex():
        raise ValueError(f"input_ids must be an integer tensor, got {input_ids.dtype}: use input_ids.long()")
    bad = (input_ids < 0) | (input_ids >= self.vocab_size)
    if bad.any():
        raise ValueError(f"token id {int(input_ids[bad][0])} is out of range for vocab_size={self.vocab_size}")
    return torch.nn.functional.one_hot(input_ids).to(self.weight.dtype) @ self.weight


# ============================================================ model/embedding.py — RotaryEmbedding


@mistake("model/embedding.py", "RotaryEmbedding._compute_inv_freq", "exponent without the 2: base ** (-k / hd) for k = 0 .. hd/2 - 1")
def inv_freq_exponent_without_the_2(self):
    exponents = torch.arange(0, self.head_dim // 2, dtype=torch.float32) / self.head_dim
    return 1.0 / (self.base**exponents)


@mistake("model/embedding.py", "RotaryEmbedding._compute_inv_freq", "arange(0, hd) / hd: one frequency per feature, hd instead of hd/2")
def inv_freq_one_per_feature(self):
    exponents = torch.arange(0, self.head_dim, dtype=torch.float32) / self.head_dim
    return 1.0 / (self.base**exponents)


@mistake("model/embedding.py", "RotaryEmbedding._compute_inv_freq", "forgets the reciprocal: base ** (2k / hd) grows instead of shrinking")
def inv_freq_without_the_reciprocal(self):
    exponents = torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim
    return self.base**exponents


@mistake("model/embedding.py", "RotaryEmbedding._set_cos_sin_cache", "interleaved tables: freqs.repeat_interleave(2, -1) with HF's rotate_half")
def cos_sin_cache_interleaved(self, seq_len):
    inv_freq = self._compute_inv_freq().to(self.inv_freq.device)
    positions = torch.arange(seq_len, device=inv_freq.device, dtype=torch.float32)
    freqs = torch.outer(positions, inv_freq)
    emb = freqs.repeat_interleave(2, dim=-1)
    self.register_buffer("cos_cached", emb.cos(), persistent=False)
    self.register_buffer("sin_cached", emb.sin(), persistent=False)
    self.max_seq_len_cached = seq_len


@mistake("model/embedding.py", "RotaryEmbedding._set_cos_sin_cache", "positions off by one: arange(1, seq_len + 1), so position 0 is already rotated")
def cos_sin_cache_positions_off_by_one(self, seq_len):
    inv_freq = self._compute_inv_freq().to(self.inv_freq.device)
    positions = torch.arange(1, seq_len + 1, device=inv_freq.device, dtype=torch.float32)
    freqs = torch.outer(positions, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    self.register_buffer("cos_cached", emb.cos(), persistent=False)
    self.register_buffer("sin_cached", emb.sin(), persistent=False)
    self.max_seq_len_cached = seq_len


@mistake("model/embedding.py", "RotaryEmbedding._set_cos_sin_cache", "caches registered as persistent buffers: they land in the state dict")
def cos_sin_cache_persistent(self, seq_len):
    inv_freq = self._compute_inv_freq().to(self.inv_freq.device)
    positions = torch.arange(seq_len, device=inv_freq.device, dtype=torch.float32)
    freqs = torch.outer(positions, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    self.register_buffer("cos_cached", emb.cos())
    self.register_buffer("sin_cached", emb.sin())
    self.max_seq_len_cached = seq_len


@mistake("model/embedding.py", "RotaryEmbedding._set_cos_sin_cache", "reads self.inv_freq, which model.to(bfloat16) has rounded to 3 digits")
def cos_sin_cache_from_the_cast_buffer(self, seq_len):
    inv_freq = self.inv_freq
    positions = torch.arange(seq_len, device=inv_freq.device, dtype=torch.float32)
    freqs = torch.outer(positions, inv_freq.float())
    emb = torch.cat((freqs, freqs), dim=-1)
    self.register_buffer("cos_cached", emb.cos(), persistent=False)
    self.register_buffer("sin_cached", emb.sin(), persistent=False)
    self.max_seq_len_cached = seq_len


@mistake("model/embedding.py", "RotaryEmbedding.forward", "returns (sin, cos) instead of (cos, sin)")
def rotary_forward_returns_sin_then_cos(self, position_ids, dtype=torch.float32, seq_len=None):
    needed = seq_len
    if needed is None:
        needed = int(position_ids.max()) + 1 if position_ids.numel() > 0 else 0
    if needed > self.max_seq_len_cached:
        self._set_cos_sin_cache(max(needed, 2 * self.max_seq_len_cached))
    cos = self.cos_cached[position_ids]
    sin = self.sin_cached[position_ids]
    return sin.to(dtype), cos.to(dtype)


@mistake("model/embedding.py", "RotaryEmbedding.forward", "slices cos_cached[:s] instead of indexing by position_ids (ignores offsets)")
def rotary_forward_ignores_position_ids(self, position_ids, dtype=torch.float32, seq_len=None):
    needed = seq_len
    if needed is None:
        needed = int(position_ids.max()) + 1 if position_ids.numel() > 0 else 0
    if needed > self.max_seq_len_cached:
        self._set_cos_sin_cache(max(needed, 2 * self.max_seq_len_cached))
    s = position_ids.shape[-1]
    cos = self.cos_cached[:s].expand(*position_ids.shape, self.head_dim)
    sin = self.sin_cached[:s].expand(*position_ids.shape, self.head_dim)
    return cos.to(dtype), sin.to(dtype)


@mistake("model/embedding.py", "RotaryEmbedding.forward", "never grows the cache: positions >= max_position_embeddings raise IndexError")
def rotary_forward_without_cache_extension(self, position_ids, dtype=torch.float32, seq_len=None):
    cos = self.cos_cached[position_ids]
    sin = self.sin_cached[position_ids]
    return cos.to(dtype), sin.to(dtype)


@mistake("model/embedding.py", "RotaryEmbedding.forward", "length needed is max(position) instead of max(position) + 1: off by one at the cache edge")
def rotary_forward_needed_off_by_one(self, position_ids, dtype=torch.float32, seq_len=None):
    needed = seq_len
    if needed is None:
        needed = int(position_ids.max()) if position_ids.numel() > 0 else 0
    if needed > self.max_seq_len_cached:
        self._set_cos_sin_cache(max(needed, 2 * self.max_seq_len_cached))
    cos = self.cos_cached[position_ids]
    sin = self.sin_cached[position_ids]
    return cos.to(dtype), sin.to(dtype)


@mistake("model/embedding.py", "RotaryEmbedding.forward", "ignores dtype: always returns float32 tables")
def rotary_forward_ignores_dtype(self, position_ids, dtype=torch.float32, seq_len=None):
    needed = seq_len
    if needed is None:
        needed = int(position_ids.max()) + 1 if position_ids.numel() > 0 else 0
    if needed > self.max_seq_len_cached:
        self._set_cos_sin_cache(max(needed, 2 * self.max_seq_len_cached))
    return self.cos_cached[position_ids], self.sin_cached[position_ids]


# ============================================================ model/embedding.py — rotate_half


@mistake("model/embedding.py", "rotate_half", "interleaved pairs x[..., ::2], x[..., 1::2] (the paper's layout, not HF's)")
def rotate_half_interleaved(x):
    x1 = x[..., ::2]
    x2 = x[..., 1::2]
    return torch.cat((-x2, x1), dim=-1)


@mistake("model/embedding.py", "rotate_half", "minus sign on the wrong half: cat(x2, -x1)")
def rotate_half_sign_on_the_wrong_half(x):
    half = x.shape[-1] // 2
    return torch.cat((x[..., half:], -x[..., :half]), dim=-1)


@mistake("model/embedding.py", "rotate_half", "halves swapped without the minus: cat(x2, x1), a reflection, not a rotation")
def rotate_half_without_the_minus(x):
    half = x.shape[-1] // 2
    return torch.cat((x[..., half:], x[..., :half]), dim=-1)


# ============================================================ model/embedding.py — apply_rotary_pos_emb


@mistake("model/embedding.py", "apply_rotary_pos_emb", "sin and cos swapped: q * sin + rotate_half(q) * cos")
def apply_rope_sin_and_cos_swapped(q, k, cos, sin, unsqueeze_dim=1):
    cos = cos.unsqueeze(unsqueeze_dim).to(q.dtype)
    sin = sin.unsqueeze(unsqueeze_dim).to(q.dtype)
    q_embed = q * sin + rotate_half(q) * cos
    k_embed = k * sin.to(k.dtype) + rotate_half(k) * cos.to(k.dtype)
    return q_embed, k_embed


@mistake("model/embedding.py", "apply_rotary_pos_emb", "minus instead of plus: q * cos - rotate_half(q) * sin turns clockwise")
def apply_rope_turns_clockwise(q, k, cos, sin, unsqueeze_dim=1):
    cos = cos.unsqueeze(unsqueeze_dim).to(q.dtype)
    sin = sin.unsqueeze(unsqueeze_dim).to(q.dtype)
    q_embed = q * cos - rotate_half(q) * sin
    k_embed = k * cos.to(k.dtype) - rotate_half(k) * sin.to(k.dtype)
    return q_embed, k_embed


@mistake("model/embedding.py", "apply_rotary_pos_emb", "no cast of the float32 tables: bfloat16 q and k come back float32")
def apply_rope_without_the_cast(q, k, cos, sin, unsqueeze_dim=1):
    cos = cos.unsqueeze(unsqueeze_dim)
    sin = sin.unsqueeze(unsqueeze_dim)
    q_embed = q * cos + rotate_half(q) * sin
    k_embed = k * cos + rotate_half(k) * sin
    return q_embed, k_embed


@mistake("model/embedding.py", "apply_rotary_pos_emb", "hard-codes unsqueeze(1) and ignores unsqueeze_dim")
def apply_rope_ignores_unsqueeze_dim(q, k, cos, sin, unsqueeze_dim=1):
    cos = cos.unsqueeze(1).to(q.dtype)
    sin = sin.unsqueeze(1).to(q.dtype)
    q_embed = q * cos + rotate_half(q) * sin
    k_embed = k * cos.to(k.dtype) + rotate_half(k) * sin.to(k.dtype)
    return q_embed, k_embed


@mistake("model/embedding.py", "apply_rotary_pos_emb", "copy-paste: k_embed uses rotate_half(q)")
def apply_rope_k_uses_rotate_half_of_q(q, k, cos, sin, unsqueeze_dim=1):
    cos = cos.unsqueeze(unsqueeze_dim).to(q.dtype)
    sin = sin.unsqueeze(unsqueeze_dim).to(q.dtype)
    q_embed = q * cos + rotate_half(q) * sin
    k_embed = k * cos.to(k.dtype) + rotate_half(q) * sin.to(k.dtype)
    return q_embed, k_embed
