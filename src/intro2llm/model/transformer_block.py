"""The Transformer block: attention and feed-forward, each a pre-norm residual sublayer.

Notation: ``b = batch``, ``s = seq_len`` (new tokens), ``t = kv_len`` (cached +
new tokens), ``d = hidden_size``, ``g = num_key_value_heads``, ``hd = head_dim``.

Pre-LN (GPT-2 onwards, Llama)::

    h   = x + dropout(self_attn(input_layernorm(x)))
    out = h + dropout(mlp(post_attention_layernorm(h)))

The residual stream ``x -> h -> out`` is never normalised, only the input of
each sublayer is: the gradient reaches early layers through the additions
unchanged, which is why deep pre-LN stacks train without the learning-rate
warm-up tricks that the original post-LN Transformer (``norm(x + sublayer(x))``)
needed. The price: activations grow along the stream, hence the final ``norm``
in the model.

Names are Hugging Face's ``LlamaDecoderLayer``'s (``input_layernorm``,
``self_attn``, ``post_attention_layernorm``, ``mlp``); with ``norm_type="rmsnorm"``
and ``ffn_type="swiglu"`` the block computes exactly what Llama's does.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import GroupedQueryAttention
from .config import ModelConfig
from .feedforward import build_ffn
from .norm import build_norm


class TransformerBlock(nn.Module):
    """One decoder layer: pre-norm self-attention, then a pre-norm feed-forward network.

    Args:
        config: uses norm_type / rms_norm_eps (norms), ffn_type / intermediate_size (mlp),
            the attention fields, and hidden_dropout (dropout on each sublayer's output).
        layer_idx: position of the layer in the stack (passed to the attention layer).

    Submodules:
        input_layernorm, self_attn (GroupedQueryAttention), post_attention_layernorm,
        mlp (SwiGLU / GeGLU / FeedForward), dropout (nn.Dropout(hidden_dropout)).
    """

    def __init__(self, config: ModelConfig, layer_idx: int | None = None) -> None:
        """Create the two norms, the attention layer, the feed-forward network and dropout.

        Args:
            config: a validated ``ModelConfig``.
            layer_idx: index of this layer, or None.
        Returns:
            None.
        """
        # Step 1: 先调用 super().__init__()，保存 self.config、self.layer_idx、self.hidden_size = config.hidden_size
        super().__init__()
        self.config, self.layer_idx, self.hidden_size = config, layer_idx, config.hidden_size
        # Step 2: 注意力子层：self.input_layernorm = build_norm(config)，
        #         self.self_attn = GroupedQueryAttention(config, layer_idx)
        #         (名字与 Hugging Face 的 LlamaDecoderLayer 相同，权重才能按名字互换)
        self.input_layernorm = build_norm(config)
        self.self_attn = GroupedQueryAttention(config, layer_idx)
        # Step 3: 前馈子层：self.post_attention_layernorm = build_norm(config)，self.mlp = build_ffn(config)
        self.post_attention_layernorm = build_norm(config)
        self.mlp = build_ffn(config)
        # Step 4: self.dropout = nn.Dropout(config.hidden_dropout)，作用在每个子层的输出上 (加回残差之前)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_value: tuple[torch.Tensor, torch.Tensor] | None = None,
        use_cache: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """Pre-LN residual block: ``h = x + attn(norm1(x))``, ``out = h + mlp(norm2(h))``.

        Args:
            hidden_states: [b, s, d] the new tokens.
            attention_mask: None, a padding mask [b, t] of 1 / 0, or a 4-D additive mask
                [b, 1, s, t]: passed to ``self_attn`` unchanged.
            position_ids: [b, s] or None: passed to ``self_attn`` unchanged.
            past_key_value: None or (k_past, v_past), each [b, g, t_past, hd].
            use_cache: ask ``self_attn`` to return the updated (k, v).
        Returns:
            (hidden_states [b, s, d], present_key_value): present is (k, v), each
            [b, g, t, hd], when ``use_cache``, else None.
        """
        # Step 1: 保存残差 residual = hidden_states，先归一化 h = self.input_layernorm(hidden_states)
        #         (Pre-LN：只归一化子层的输入，残差流本身保持不变)
        residual = hidden_states
        h = self.input_layernorm(hidden_states)  # [b, s, d]
        # Step 2: 自注意力 h, present = self.self_attn(h, attention_mask=attention_mask, position_ids=position_ids,
        #         past_key_value=past_key_value, use_cache=use_cache)，参数原样传下去，h 形状 [b, s, d]
        h, present = self.self_attn(
            h,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_value=past_key_value,
            use_cache=use_cache,
        )
        # Step 3: 第一个残差连接 hidden_states = residual + self.dropout(h)
        hidden_states = residual + self.dropout(h)  # [b, s, d]
        # Step 4: 前馈子层同样是 Pre-LN 残差：h = self.mlp(self.post_attention_layernorm(hidden_states))，
        #         hidden_states = hidden_states + self.dropout(h)
        h = self.mlp(self.post_attention_layernorm(hidden_states))  # [b, s, d]
        hidden_states = hidden_states + self.dropout(h)  # [b, s, d]
        # Step 5: 返回 (hidden_states, present)；不使用缓存时 present 为 None
        return hidden_states, present
