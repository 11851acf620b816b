# ruff: noqa: F821
"""Wrong implementations of lesson 04's targets that learners really write.

``llm-course author verify lesson04`` splices each function below into a copy of the
reference in place of its symbol (so names such as ``F``, ``SwiGLU``, ``build_norm``,
``build_ffn`` or ``GroupedQueryAttention`` resolve in that module: ``model/feedforward.py``
or ``model/transformer_block.py``) and checks that some lesson test fails. Each body is the
reference with one bug, so the test that catches it is the one about that bug.
"""

from __future__ import annotations

from intro2llm_cli.mistakes import mistake

# ============================================================ FeedForward / SwiGLU / GeGLU


@mistake("model/feedforward.py", "SwiGLU.forward", "SiLU on up_proj instead of gate_proj (the two branches swapped)")
def swiglu_silu_on_up_proj(self, x):
    gate = F.silu(self.up_proj(x))
    up = self.gate_proj(x)
    return self.down_proj(gate * up)


@mistake("model/feedforward.py", "SwiGLU.forward", "SiLU of the product, silu(gate * up), instead of silu(gate) * up")
def swiglu_silu_after_the_product(self, x):
    return self.down_proj(F.silu(self.gate_proj(x) * self.up_proj(x)))


@mistake("model/feedforward.py", "SwiGLU.forward", "ReLU instead of SiLU as the gate")
def swiglu_relu(self, x):
    gate = F.relu(self.gate_proj(x))
    return self.down_proj(gate * self.up_proj(x))


@mistake("model/feedforward.py", "SwiGLU.forward", "sigmoid gate (the original GLU) instead of silu(z) = z * sigmoid(z)")
def swiglu_sigmoid_gate(self, x):
    gate = torch.sigmoid(self.gate_proj(x))
    return self.down_proj(gate * self.up_proj(x))


@mistake("model/feedforward.py", "GeGLU.forward", "exact (erf) GELU where the tanh approximation is specified")
def geglu_exact_gelu(self, x):
    gate = F.gelu(self.gate_proj(x))
    return self.down_proj(gate * self.up_proj(x))


@mistake("model/feedforward.py", "GeGLU.forward", "gate and up swapped: gelu(up_proj(x)) * gate_proj(x)")
def geglu_gate_and_up_swapped(self, x):
    gate = F.gelu(self.up_proj(x), approximate="tanh")
    return self.down_proj(gate * self.gate_proj(x))


@mistake("model/feedforward.py", "FeedForward.forward", "GELU MLP with the tanh approximation instead of the exact GELU")
def feedforward_tanh_gelu(self, x):
    return self.down_proj(F.gelu(self.up_proj(x), approximate="tanh"))


@mistake("model/feedforward.py", "FeedForward.forward", "down_proj forgotten: the output keeps I features")
def feedforward_missing_down_proj(self, x):
    return F.gelu(self.up_proj(x))


# ============================================================ build_ffn


@mistake("model/feedforward.py", "build_ffn", "ffn_type ignored: always SwiGLU")
def build_ffn_ignores_ffn_type(config):
    return SwiGLU(config)


@mistake("model/feedforward.py", "build_ffn", "a dict lookup: an unknown ffn_type raises KeyError, not ValueError")
def build_ffn_dict_lookup(config):
    return {"swiglu": SwiGLU, "geglu": GeGLU, "gelu": FeedForward}[config.ffn_type](config)


@mistake("model/feedforward.py", "build_ffn", "'gelu' mapped to GeGLU (the gated unit) instead of the GELU MLP")
def build_ffn_gelu_is_geglu(config):
    if config.ffn_type == "swiglu":
        return SwiGLU(config)
    if config.ffn_type in ("geglu", "gelu"):
        return GeGLU(config)
    raise ValueError(f"ffn_type={config.ffn_type!r} is not supported: use 'swiglu', 'geglu' or 'gelu'")


# ============================================================ TransformerBlock.__init__


@mistake("model/transformer_block.py", "TransformerBlock.__init__", "one norm module reused for both sublayers")
def block_init_shared_norm(self, config, layer_idx=None):
    super().__init__()
    self.config, self.layer_idx, self.hidden_size = config, layer_idx, config.hidden_size
    self.input_layernorm = build_norm(config)
    self.self_attn = GroupedQueryAttention(config, layer_idx)
    self.post_attention_layernorm = self.input_layernorm
    self.mlp = build_ffn(config)
    self.dropout = nn.Dropout(config.hidden_dropout)


@mistake("model/transformer_block.py", "TransformerBlock.__init__", "norm_type ignored: always RMSNorm")
def block_init_always_rmsnorm(self, config, layer_idx=None):
    from .norm import RMSNorm

    super().__init__()
    self.config, self.layer_idx, self.hidden_size = config, layer_idx, config.hidden_size
    self.input_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
    self.self_attn = GroupedQueryAttention(config, layer_idx)
    self.post_attention_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
    self.mlp = build_ffn(config)
    self.dropout = nn.Dropout(config.hidden_dropout)


@mistake("model/transformer_block.py", "TransformerBlock.__init__", "layer_idx not handed to the attention layer")
def block_init_drops_layer_idx(self, config, layer_idx=None):
    super().__init__()
    self.config, self.layer_idx, self.hidden_size = config, layer_idx, config.hidden_size
    self.input_layernorm = build_norm(config)
    self.self_attn = GroupedQueryAttention(config)
    self.post_attention_layernorm = build_norm(config)
    self.mlp = build_ffn(config)
    self.dropout = nn.Dropout(config.hidden_dropout)


# ============================================================ TransformerBlock.forward


@mistake("model/transformer_block.py", "TransformerBlock.forward", "post-LN: norm(x + sublayer(x)) instead of x + sublayer(norm(x))")
def block_post_ln(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None, use_cache=False):
    h, present = self.self_attn(hidden_states, attention_mask=attention_mask, position_ids=position_ids,
                                past_key_value=past_key_value, use_cache=use_cache)
    hidden_states = self.input_layernorm(hidden_states + self.dropout(h))
    h = self.mlp(hidden_states)
    hidden_states = self.post_attention_layernorm(hidden_states + self.dropout(h))
    return hidden_states, present


@mistake("model/transformer_block.py", "TransformerBlock.forward", "the residual stream normalised too: x = norm(x + attn), then x + mlp(x)")
def block_normalises_the_stream(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None,
                                use_cache=False):
    h, present = self.self_attn(self.input_layernorm(hidden_states), attention_mask=attention_mask,
                                position_ids=position_ids, past_key_value=past_key_value, use_cache=use_cache)
    hidden_states = self.post_attention_layernorm(hidden_states + self.dropout(h))
    hidden_states = hidden_states + self.dropout(self.mlp(hidden_states))
    return hidden_states, present


@mistake("model/transformer_block.py", "TransformerBlock.forward", "no residual connection around the MLP")
def block_no_mlp_residual(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None,
                          use_cache=False):
    residual = hidden_states
    h, present = self.self_attn(self.input_layernorm(hidden_states), attention_mask=attention_mask,
                                position_ids=position_ids, past_key_value=past_key_value, use_cache=use_cache)
    hidden_states = residual + self.dropout(h)
    hidden_states = self.dropout(self.mlp(self.post_attention_layernorm(hidden_states)))
    return hidden_states, present


@mistake("model/transformer_block.py", "TransformerBlock.forward", "the MLP reads the un-normalised stream (post_attention_layernorm skipped)")
def block_mlp_without_norm(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None,
                           use_cache=False):
    residual = hidden_states
    h, present = self.self_attn(self.input_layernorm(hidden_states), attention_mask=attention_mask,
                                position_ids=position_ids, past_key_value=past_key_value, use_cache=use_cache)
    hidden_states = residual + self.dropout(h)
    hidden_states = hidden_states + self.dropout(self.mlp(hidden_states))
    return hidden_states, present


@mistake("model/transformer_block.py", "TransformerBlock.forward", "residual taken after the norm: x = norm(x); x = x + attn(x)")
def block_residual_after_norm(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None,
                              use_cache=False):
    hidden_states = self.input_layernorm(hidden_states)
    h, present = self.self_attn(hidden_states, attention_mask=attention_mask, position_ids=position_ids,
                                past_key_value=past_key_value, use_cache=use_cache)
    hidden_states = hidden_states + self.dropout(h)
    hidden_states = self.post_attention_layernorm(hidden_states)
    hidden_states = hidden_states + self.dropout(self.mlp(hidden_states))
    return hidden_states, present


@mistake("model/transformer_block.py", "TransformerBlock.forward", "dropout on the residual stream, dropout(x + sublayer), not on the sublayer output")
def block_dropout_on_the_stream(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None,
                                use_cache=False):
    residual = hidden_states
    h, present = self.self_attn(self.input_layernorm(hidden_states), attention_mask=attention_mask,
                                position_ids=position_ids, past_key_value=past_key_value, use_cache=use_cache)
    hidden_states = self.dropout(residual + h)
    hidden_states = self.dropout(hidden_states + self.mlp(self.post_attention_layernorm(hidden_states)))
    return hidden_states, present


@mistake("model/transformer_block.py", "TransformerBlock.forward", "dropout on the attention output only, not on the MLP's")
def block_dropout_on_attention_only(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None,
                                    use_cache=False):
    residual = hidden_states
    h, present = self.self_attn(self.input_layernorm(hidden_states), attention_mask=attention_mask,
                                position_ids=position_ids, past_key_value=past_key_value, use_cache=use_cache)
    hidden_states = residual + self.dropout(h)
    hidden_states = hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))
    return hidden_states, present


@mistake("model/transformer_block.py", "TransformerBlock.forward", "F.dropout without training=self.training: drops in eval mode too")
def block_functional_dropout_always_on(self, hidden_states, attention_mask=None, position_ids=None,
                                       past_key_value=None, use_cache=False):
    p = self.config.hidden_dropout
    residual = hidden_states
    h, present = self.self_attn(self.input_layernorm(hidden_states), attention_mask=attention_mask,
                                position_ids=position_ids, past_key_value=past_key_value, use_cache=use_cache)
    hidden_states = residual + torch.nn.functional.dropout(h, p)
    h = self.mlp(self.post_attention_layernorm(hidden_states))
    hidden_states = hidden_states + torch.nn.functional.dropout(h, p)
    return hidden_states, present


@mistake("model/transformer_block.py", "TransformerBlock.forward", "use_cache not passed to the attention: present is always None")
def block_use_cache_not_passed(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None,
                               use_cache=False):
    residual = hidden_states
    h, present = self.self_attn(self.input_layernorm(hidden_states), attention_mask=attention_mask,
                                position_ids=position_ids, past_key_value=past_key_value)
    hidden_states = residual + self.dropout(h)
    hidden_states = hidden_states + self.dropout(self.mlp(self.post_attention_layernorm(hidden_states)))
    return hidden_states, present


@mistake("model/transformer_block.py", "TransformerBlock.forward", "past_key_value not passed on: every call attends to its own tokens only")
def block_past_not_passed(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None,
                          use_cache=False):
    residual = hidden_states
    h, present = self.self_attn(self.input_layernorm(hidden_states), attention_mask=attention_mask,
                                position_ids=position_ids, use_cache=use_cache)
    hidden_states = residual + self.dropout(h)
    hidden_states = hidden_states + self.dropout(self.mlp(self.post_attention_layernorm(hidden_states)))
    return hidden_states, present


@mistake("model/transformer_block.py", "TransformerBlock.forward", "attention_mask not passed on: padding is ignored")
def block_mask_not_passed(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None,
                          use_cache=False):
    residual = hidden_states
    h, present = self.self_attn(self.input_layernorm(hidden_states), position_ids=position_ids,
                                past_key_value=past_key_value, use_cache=use_cache)
    hidden_states = residual + self.dropout(h)
    hidden_states = hidden_states + self.dropout(self.mlp(self.post_attention_layernorm(hidden_states)))
    return hidden_states, present


@mistake("model/transformer_block.py", "TransformerBlock.forward", "position_ids not passed on: left-padded rows get the wrong RoPE positions")
def block_positions_not_passed(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None,
                               use_cache=False):
    residual = hidden_states
    h, present = self.self_attn(self.input_layernorm(hidden_states), attention_mask=attention_mask,
                                past_key_value=past_key_value, use_cache=use_cache)
    hidden_states = residual + self.dropout(h)
    hidden_states = hidden_states + self.dropout(self.mlp(self.post_attention_layernorm(hidden_states)))
    return hidden_states, present


@mistake("model/transformer_block.py", "TransformerBlock.forward", "returns only hidden_states, not (hidden_states, present)")
def block_returns_hidden_states_only(self, hidden_states, attention_mask=None, position_ids=None,
                                     past_key_value=None, use_cache=False):
    residual = hidden_states
    h, _ = self.self_attn(self.input_layernorm(hidden_states), attention_mask=attention_mask,
                          position_ids=position_ids, past_key_value=past_key_value, use_cache=use_cache)
    hidden_states = residual + self.dropout(h)
    return hidden_states + self.dropout(self.mlp(self.post_attention_layernorm(hidden_states)))


@mistake("model/transformer_block.py", "TransformerBlock.forward", "residual detached: gradients reach the input only through the sublayers")
def block_detached_residual(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None,
                            use_cache=False):
    residual = hidden_states.detach()
    h, present = self.self_attn(self.input_layernorm(hidden_states), attention_mask=attention_mask,
                                position_ids=position_ids, past_key_value=past_key_value, use_cache=use_cache)
    hidden_states = residual + self.dropout(h)
    hidden_states = hidden_states + self.dropout(self.mlp(self.post_attention_layernorm(hidden_states)))
    return hidden_states, present
