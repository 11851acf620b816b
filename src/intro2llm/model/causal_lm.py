"""The causal language model (Llama architecture) and text generation.

Notation: ``b = batch``, ``s = seq_len`` (new tokens), ``t`` = cached + new
tokens, ``d = hidden_size``, ``V = vocab_size``, ``L = num_hidden_layers``,
``g = num_key_value_heads``, ``hd = head_dim``.

- ``CausalLM``: ``embed_tokens -> L × TransformerBlock -> norm -> lm_head``;
  logits ``[b, s, V]`` score the next token at every position; with ``labels`` it
  also returns the shifted next-token cross-entropy. Parameter names are Hugging
  Face's ``LlamaForCausalLM``'s without the ``model.`` prefix (``interop/hf.py``).
- ``KVCache``: every layer's keys and values, so decoding computes each token once.
- Generation: ``sample_next_token`` turns the last position's logits into the next
  token in Hugging Face's order (repetition penalty -> temperature -> top-k ->
  top-p -> sample, or argmax for greedy); ``CausalLM.generate`` loops it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import prepare_attention_mask
from .config import ModelConfig
from .embedding import TokenEmbedding
from .norm import LayerNorm, RMSNorm, build_norm
from .transformer_block import TransformerBlock

IGNORE_INDEX = -100  # labels with this value count neither in the loss nor in its mean


# ----- sampling helpers (all on logits [b, V]) -----------------------------------------------


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of every row; set the others to -inf.

    Ties: every logit equal to the k-th largest is kept, so a row may keep more than
    ``k`` tokens (Hugging Face's ``TopKLogitsWarper`` does the same).

    Args:
        logits: [b, V] float.
        k: tokens to keep per row (>= 1); ``k >= V`` keeps everything.
    Returns:
        [b, V] new tensor: the kept logits unchanged, the rest -inf.
    Raises:
        ValueError: k < 1.
    """
    # Step 1: k < 1 时 raise ValueError；k >= V (logits.shape[-1]) 时什么都不过滤，return logits.clone()
    if k < 1:
        raise ValueError(f"top_k={k} must be >= 1 (use top_k=None to disable top-k filtering)")
    if k >= logits.shape[-1]:
        return logits.clone()
    # Step 2: 每行第 k 大的值 kth = torch.topk(logits, k, dim=-1).values[..., -1:]，形状 [b, 1]
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # [b, 1]
    # Step 3: return logits.masked_fill(logits < kth, float("-inf"))：
    #         只去掉严格小于第 k 大值的 token，与它相等的并列值全部保留
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose mass reaches ``p``.

    Sort each row by descending probability; a token is kept when the mass of the
    tokens BEFORE it is < p. So the kept prefix is the shortest whose mass is >= p
    (a token that brings the mass exactly to p is kept, the next one is not), and the
    most likely token is always kept (the mass before it is 0). Ties are ordered by
    token id (stable sort), so the result is deterministic.

    Args:
        logits: [b, V] float.
        p: in (0, 1]; ``p >= 1`` keeps everything.
    Returns:
        [b, V] new tensor: the kept logits unchanged, the rest -inf.
    Raises:
        ValueError: p <= 0.
    """
    # Step 1: p <= 0 时 raise ValueError；p >= 1 时什么都不过滤，return logits.clone()
    if not p > 0:
        raise ValueError(f"top_p={p} must be > 0 (use top_p=None to disable nucleus filtering)")
    if p >= 1:
        return logits.clone()
    # Step 2: 每行降序排序 sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=True, stable=True)，
    #         各 [b, V] (stable=True：并列的 logit 按 token id 从小到大排，结果确定)
    sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=True, stable=True)  # [b, V]
    # Step 3: probs = torch.softmax(sorted_logits.float(), dim=-1)，累积和 cum = probs.cumsum(-1)；
    #         排在每个 token 之前的总概率 mass_before = F.pad(cum[..., :-1], (1, 0))，即右移一位、开头补 0，形状 [b, V]
    probs = torch.softmax(sorted_logits.float(), dim=-1)  # [b, V]
    cum = probs.cumsum(dim=-1)  # [b, V]
    mass_before = F.pad(cum[..., :-1], (1, 0))  # [b, V]
    # Step 4: keep_sorted = mass_before < p (之前的质量还没到 p 就保留；第一个 token 的 mass_before 为 0，总会保留)
    keep_sorted = mass_before < p  # [b, V]
    # Step 5: 把排序后的布尔值放回原位置 keep = torch.zeros_like(keep_sorted).scatter(-1, sorted_idx, keep_sorted)，
    #         return logits.masked_fill(~keep, float("-inf"))
    keep = torch.zeros_like(keep_sorted).scatter(-1, sorted_idx, keep_sorted)  # [b, V]
    return logits.masked_fill(~keep, float("-inf"))


def apply_repetition_penalty(
    logits: torch.Tensor,
    input_ids: torch.Tensor,
    penalty: float,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Make tokens that already occur less likely (Hugging Face's convention, CTRL paper).

    For each token id present in a row's ``input_ids``: a positive logit is divided by
    ``penalty``, a negative one multiplied by it (either way it moves down for
    ``penalty > 1``). Each id is penalised once however often it occurs. Positions whose
    ``attention_mask`` is 0 (padding) do not count.

    Args:
        logits: [b, V] float.
        input_ids: [b, t] the tokens so far.
        penalty: > 0; 1.0 changes nothing, > 1 discourages repetition.
        attention_mask: optional [b, t] of 1 (token) / 0 (padding).
    Returns:
        [b, V] new tensor.
    Raises:
        ValueError: penalty <= 0.
    """
    # Step 1: penalty <= 0 时 raise ValueError；penalty == 1 时 return logits.clone()
    if not penalty > 0:
        raise ValueError(f"repetition_penalty={penalty} must be > 0 (1.0 disables it)")
    if penalty == 1.0:
        return logits.clone()
    # Step 2: 统计每行出现过哪些 id：weights = attention_mask.long() (没有 mask 时为 torch.ones_like(input_ids))，
    #         counts = torch.zeros(logits.shape, dtype=torch.long, device=logits.device).scatter_add(-1, input_ids, weights)，
    #         seen = counts > 0，形状 [b, V] (用 scatter_add 计数而不是 scatter 赋值：同一个 id 可能既出现在
    #         padding 又出现在正文，重复下标的 scatter 结果不确定)
    weights = torch.ones_like(input_ids) if attention_mask is None else attention_mask.long()
    counts = torch.zeros(logits.shape, dtype=torch.long, device=logits.device).scatter_add(-1, input_ids, weights)
    seen = counts > 0  # [b, V]
    # Step 3: penalized = torch.where(logits < 0, logits * penalty, logits / penalty)：
    #         正数除以 penalty、负数乘以 penalty，两种情况都让 logit 变小
    penalized = torch.where(logits < 0, logits * penalty, logits / penalty)
    # Step 4: 只替换出现过的 token：return torch.where(seen, penalized, logits)
    return torch.where(seen, penalized, logits)


def sample_next_token(
    logits: torch.Tensor,
    input_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Choose the next token of every row from the last position's logits.

    Order (Hugging Face's): repetition penalty -> temperature -> top-k -> top-p ->
    sample. Greedy decoding (``do_sample=False`` or ``temperature == 0``) takes the
    argmax after the repetition penalty: temperature, top-k and top-p never change it.

    Args:
        logits: [b, V] logits of the next token.
        input_ids: [b, t] the tokens so far (for the repetition penalty), or None.
        attention_mask: [b, t] of 1 / 0, or None.
        do_sample: sample from the distribution (True) or take the argmax (False).
        temperature: >= 0; < 1 sharpens the distribution, > 1 flattens it, 0 is greedy.
        top_k: keep the k most likely tokens (None: all).
        top_p: keep the nucleus of mass p (None: all).
        repetition_penalty: see ``apply_repetition_penalty`` (1.0: off).
        generator: random generator for reproducible sampling.
    Returns:
        [b] int64 token ids.
    """
    # Step 1: temperature < 0 时 raise ValueError；logits = logits.float() (softmax 与采样在 float32 中做)
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0 (0 means greedy decoding)")
    logits = logits.float()
    # Step 2: repetition_penalty != 1.0 且 input_ids 不为 None 时，
    #         logits = apply_repetition_penalty(logits, input_ids, repetition_penalty, attention_mask)
    if repetition_penalty != 1.0 and input_ids is not None:
        logits = apply_repetition_penalty(logits, input_ids, repetition_penalty, attention_mask)
    # Step 3: 贪心解码：not do_sample 或 temperature == 0 时 return logits.argmax(dim=-1)，形状 [b]
    if not do_sample or temperature == 0:
        return logits.argmax(dim=-1)  # [b]
    # Step 4: 温度缩放 logits = logits / temperature (先缩放再过滤：top-p 看的是缩放后的分布)
    logits = logits / temperature
    # Step 5: top_k 不为 None 时 logits = top_k_filter(logits, top_k)；再在 top_p 不为 None 时 logits = top_p_filter(logits, top_p)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    # Step 6: probs = torch.softmax(logits, dim=-1) (被过滤的 -inf 概率为 0)，
    #         return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)，形状 [b]
    probs = torch.softmax(logits, dim=-1)  # [b, V]
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)  # [b]


# ----- KV cache and model output ---------------------------------------------------------------


class KVCache:
    """Every layer's keys and values, so that each new token is computed once.

    Layer ``i`` holds ``(k, v)``, each ``[b, g, t, hd]`` (keys with RoPE already
    applied; only the ``g`` key/value heads, not the repeated ``h``). Memory:
    ``2 · L · b · g · t · hd · bytes_per_element``: Llama-2-7B (g = 32, hd = 128) in
    float16 needs 2 · 32 · 1 · 32 · 4096 · 128 · 2 B = 2 GiB for one 4096-token
    sequence; Llama-3-8B's GQA (g = 8) needs a quarter of that.

    ``len(cache)`` is the number of layers (as for Hugging Face's caches);
    ``get_seq_length()`` the number of cached tokens.
    """

    def __init__(self, num_layers: int) -> None:
        if num_layers < 1:
            raise ValueError(f"num_layers={num_layers} must be >= 1")
        self.num_layers = num_layers
        self.key_cache: list[torch.Tensor | None] = [None] * num_layers
        self.value_cache: list[torch.Tensor | None] = [None] * num_layers

    def update(self, layer_idx: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new tokens' keys and values of one layer.

        Args:
            layer_idx: in [0, num_layers).
            k, v: [b, g, s, hd] of the new tokens.
        Returns:
            (k_all, v_all): each [b, g, t_past + s, hd], everything cached for the layer.
        """
        # Step 1: layer_idx 不在 [0, self.num_layers) 中时 raise ValueError
        if not 0 <= layer_idx < self.num_layers:
            raise ValueError(f"layer_idx={layer_idx} is out of range for a cache of {self.num_layers} layers")
        # Step 2: 该层还没有缓存 (self.key_cache[layer_idx] is None) 时 k_all, v_all = k, v；
        #         否则沿序列维 (dim=2) 拼接到末尾：k_all = torch.cat([self.key_cache[layer_idx], k], dim=2)，v_all 同理
        old_k, old_v = self.key_cache[layer_idx], self.value_cache[layer_idx]
        if old_k is None or old_v is None:
            k_all, v_all = k, v
        else:
            k_all = torch.cat([old_k, k], dim=2)  # [b, g, t, hd]
            v_all = torch.cat([old_v, v], dim=2)  # [b, g, t, hd]
        # Step 3: 存回 self.key_cache[layer_idx] = k_all、self.value_cache[layer_idx] = v_all，return (k_all, v_all)
        self.key_cache[layer_idx], self.value_cache[layer_idx] = k_all, v_all
        return k_all, v_all

    def get(self, layer_idx: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(k, v) of one layer, each [b, g, t, hd], or None before its first update."""
        k, v = self.key_cache[layer_idx], self.value_cache[layer_idx]
        return None if k is None or v is None else (k, v)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Number of cached tokens.

        Args:
            layer_idx: the layer to look at (all layers hold the same length between forwards).
        Returns:
            int: t, or 0 when nothing is cached yet.
        """
        # Step 1: k = self.key_cache[layer_idx]；return 0 if k is None else k.shape[2] (序列维)
        k = self.key_cache[layer_idx]
        return 0 if k is None else k.shape[2]

    def __len__(self) -> int:
        return self.num_layers

    def nbytes(self) -> int:
        """Bytes held by the cached tensors: 2 · L · b · g · t · hd · element size."""
        tensors = [x for x in self.key_cache + self.value_cache if x is not None]
        return sum(x.numel() * x.element_size() for x in tensors)


@dataclass
class CausalLMOutput:
    """What ``CausalLM.forward`` returns.

    Attributes:
        loss: scalar float32 next-token cross-entropy when labels were given, else None.
        logits: [b, s, V] next-token scores at every position.
        past_key_values: the updated ``KVCache`` when caching, else None.
    """

    loss: torch.Tensor | None
    logits: torch.Tensor
    past_key_values: KVCache | None = None


# ----- the model ---------------------------------------------------------------------------


class CausalLM(nn.Module):
    """Decoder-only Transformer language model (Llama when rmsnorm + swiglu).

    Args:
        config: a validated ``ModelConfig``.

    Submodules (state-dict names = Hugging Face's without ``model.``):
        embed_tokens [V, d], layers.{i} (TransformerBlock), norm, lm_head [V, d] (no bias;
        the same Parameter as ``embed_tokens.weight`` when ``config.tie_word_embeddings``).
    """

    def __init__(self, config: ModelConfig) -> None:
        """Build embedding, blocks, final norm and output head, then initialise the weights.

        Args:
            config: a validated ``ModelConfig``.
        Returns:
            None.
        """
        # Step 1: super().__init__()，保存 self.config = config
        super().__init__()
        self.config = config
        # Step 2: 词嵌入 self.embed_tokens = TokenEmbedding(config.vocab_size, config.hidden_size,
        #         init_std=config.initializer_range)，权重名 embed_tokens.weight，形状 [V, d]
        self.embed_tokens = TokenEmbedding(config.vocab_size, config.hidden_size, init_std=config.initializer_range)
        # Step 3: L 个块 self.layers = nn.ModuleList([TransformerBlock(config, i) for i in range(config.num_hidden_layers)])，
        #         以及最后的归一化 self.norm = build_norm(config) (Pre-LN 的残差流从未归一化，输出前补一次)
        self.layers = nn.ModuleList([TransformerBlock(config, i) for i in range(config.num_hidden_layers)])
        self.norm = build_norm(config)
        # Step 4: 输出头 self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)，权重 [V, d]
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        # Step 5: config.tie_word_embeddings 为 True 时共享权重：self.lm_head.weight = self.embed_tokens.weight
        #         (同一个 Parameter，不是拷贝：省 V·d 个参数，两处用法的梯度相加)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        # Step 6: 初始化所有权重 self.apply(self._init_weights)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """Linear and embedding weights ~ normal(0, initializer_range), biases 0, norm weights 1."""
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding, TokenEmbedding)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        if isinstance(module, (RMSNorm, LayerNorm)):
            nn.init.ones_(module.weight)
        if isinstance(module, (nn.Linear, LayerNorm)) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        use_cache: bool = False,
        position_ids: torch.Tensor | None = None,
    ) -> CausalLMOutput:
        """Next-token logits at every position, and the loss when ``labels`` are given.

        Args:
            input_ids: [b, s] int64 new tokens.
            attention_mask: None (no padding) or [b, t] of 1 (token) / 0 (padding) over
                cached + new tokens; batches of prompts are left-padded.
            labels: None or [b, s]; usually ``input_ids`` with -100 where no loss is wanted.
                The model shifts them: position i is scored against labels[:, i + 1].
            past_key_values: a ``KVCache`` from an earlier call (updated in place), or None.
            use_cache: build and return a cache (implied when one is passed in).
            position_ids: [b, s]; default: from attention_mask (``cumsum - 1``, pads at 1)
                when given, else ``arange(past, past + s)``.
        Returns:
            ``CausalLMOutput(loss, logits [b, s, V], past_key_values)``.
        """
        # Step 1: input_ids 不是二维时 raise ValueError；b, s = input_ids.shape；传入了缓存就一定使用它 (use_cache = use_cache or past_key_values is not None)；
        #         use_cache 且 past_key_values 为 None 时新建 KVCache(len(self.layers))；
        #         past_len = past_key_values.get_seq_length() (没有缓存时为 0)
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, seq_len], got shape {tuple(input_ids.shape)}")
        b, s = input_ids.shape
        use_cache = use_cache or past_key_values is not None
        if use_cache and past_key_values is None:
            past_key_values = KVCache(len(self.layers))
        past_len = past_key_values.get_seq_length() if past_key_values is not None else 0
        # Step 2: position_ids 为 None 时：有 attention_mask 则 pos = attention_mask.long().cumsum(-1) - 1，
        #         pos = pos.masked_fill(attention_mask == 0, 1)，取最后 s 列 pos[:, -s:] (左填充的行从第一个真实 token 起数 0)；
        #         否则 torch.arange(past_len, past_len + s, device=input_ids.device)[None, :]，形状 [1, s]
        if position_ids is None:
            if attention_mask is not None:
                pos = attention_mask.long().cumsum(-1) - 1  # [b, t]
                position_ids = pos.masked_fill(attention_mask == 0, 1)[:, -s:]  # [b, s]
            else:
                position_ids = torch.arange(past_len, past_len + s, device=input_ids.device)[None, :]  # [1, s]
        # Step 3: hidden = self.embed_tokens(input_ids)，形状 [b, s, d]；
        #         所有层共用一个掩码 mask = prepare_attention_mask(attention_mask, b, s, past_len + s, hidden.dtype, hidden.device)
        #         (None 表示纯因果；否则 [b, 1, s, t] 加性掩码，只构造一次而不是每层一次)
        hidden = self.embed_tokens(input_ids)  # [b, s, d]
        mask = prepare_attention_mask(attention_mask, b, s, past_len + s, hidden.dtype, hidden.device)
        # Step 4: 逐层计算：past = past_key_values.get(i) (没有缓存时为 None)，
        #         hidden, present = layer(hidden, mask, position_ids, past_key_value=past, use_cache=use_cache)；
        #         使用缓存时 present 已含旧缓存，只把新的部分存进去：
        #         past_key_values.update(i, present[0][:, :, past_len:], present[1][:, :, past_len:])
        for i, layer in enumerate(self.layers):
            past = past_key_values.get(i) if past_key_values is not None else None
            hidden, present = layer(hidden, mask, position_ids, past_key_value=past, use_cache=use_cache)
            if past_key_values is not None and present is not None:
                past_key_values.update(i, present[0][:, :, past_len:], present[1][:, :, past_len:])
        # Step 5: 最后归一化再投影到词表：logits = self.lm_head(self.norm(hidden))，形状 [b, s, V]
        logits = self.lm_head(self.norm(hidden))  # [b, s, V]
        # Step 6: 有 labels 时 (形状须与 input_ids 相同，否则 raise ValueError) 计算错位的下一个 token 交叉熵 (位置 i 预测第 i + 1 个 token)：
        #         shift_logits = logits[:, :-1].reshape(-1, V).float() (float32 更稳)，shift_labels = labels[:, 1:].reshape(-1)，
        #         loss = F.cross_entropy(shift_logits, shift_labels, ignore_index=-100) (对计入的 token 求平均)；没有 labels 时 loss = None
        loss = None
        if labels is not None:
            if labels.shape != input_ids.shape:
                raise ValueError(f"labels {tuple(labels.shape)} must have the shape of input_ids {tuple(input_ids.shape)}")
            shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()  # [b*(s-1), V]
            shift_labels = labels[:, 1:].reshape(-1).to(logits.device)  # [b*(s-1)]
            loss = F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX)
        # Step 7: return CausalLMOutput(loss=loss, logits=logits, past_key_values=past_key_values)
        return CausalLMOutput(loss=loss, logits=logits, past_key_values=past_key_values)

    def _next_token_logits(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        past_key_values: KVCache | None,
        use_cache: bool,
    ) -> tuple[torch.Tensor, KVCache | None]:
        """Logits of the token after ``input_ids``, with or without a KV cache.

        Args:
            input_ids: [b, t] every token so far (prompt + generated).
            attention_mask: None or [b, t] of 1 / 0.
            past_key_values: the cache of all tokens but the last, or None before the first step.
            use_cache: False recomputes the whole sequence at every step (slow, for checking).
        Returns:
            (logits [b, V] float32, the updated cache or None).
        """
        # Step 1: 不用缓存：每步把整个序列重算一遍 out = self(input_ids, attention_mask=attention_mask)，
        #         return out.logits[:, -1, :].float(), None
        if not use_cache:
            out = self(input_ids, attention_mask=attention_mask)
            return out.logits[:, -1, :].float(), None
        # Step 2: 用缓存的第一步 (past_key_values is None，即 prefill)：一次处理整个提示并建立缓存
        #         out = self(input_ids, attention_mask=attention_mask, use_cache=True)
        if past_key_values is None:
            out = self(input_ids, attention_mask=attention_mask, use_cache=True)
        # Step 3: 之后每步只送最后一个 token：out = self(input_ids[:, -1:], attention_mask=attention_mask,
        #         past_key_values=past_key_values, use_cache=True)；mask 仍是完整的 [b, t]，位置由 forward 从 mask 或缓存长度推出
        else:
            out = self(input_ids[:, -1:], attention_mask=attention_mask, past_key_values=past_key_values, use_cache=True)
        # Step 4: return out.logits[:, -1, :].float(), out.past_key_values
        return out.logits[:, -1, :].float(), out.past_key_values

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        max_new_tokens: int = 32,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        repetition_penalty: float = 1.0,
        eos_token_id: int | None = None,
        pad_token_id: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Continue every prompt by up to ``max_new_tokens`` tokens.

        Prompts of different lengths must be LEFT-padded by the caller (pads first,
        ``attention_mask`` 0 there), so every row's last position is a real token and
        the new tokens line up in one column. Runs in eval mode (no dropout) and
        restores the training flag afterwards. ``use_cache=False`` recomputes the whole
        sequence at each step and produces the same tokens, only slower.

        Args:
            input_ids: [b, s] int64 prompts.
            attention_mask: None (no padding) or [b, s] of 1 / 0, left padding only.
            max_new_tokens: most tokens to add (>= 0).
            do_sample, temperature, top_k, top_p, repetition_penalty, generator:
                see ``sample_next_token``.
            eos_token_id: a row is finished once it produced this id; generation stops
                early when every row is finished. None: always ``max_new_tokens`` tokens.
            pad_token_id: written after a row's eos (default: eos_token_id).
            use_cache: decode with a ``KVCache``.
        Returns:
            [b, s + n] int64, prompt then the n <= max_new_tokens new tokens.
        Raises:
            ValueError: right padding (a 0 after a 1, or a 0 in the last column) or bad sizes.
        """
        # Step 1: 检查输入：input_ids 为 [b, s]；max_new_tokens >= 0；attention_mask 给出时形状等于 input_ids，
        #         并且每行必须是左填充 0...01...1：若 (attention_mask[:, 1:] < attention_mask[:, :-1]).any()
        #         或最后一列有 0，raise ValueError 要求改用左填充 (右填充时最后一个位置是 pad，模型会接着 pad 往下写)
        if input_ids.dim() != 2 or max_new_tokens < 0:
            raise ValueError(f"input_ids must be [batch, seq_len] and max_new_tokens >= 0, got {tuple(input_ids.shape)}, {max_new_tokens}")
        if attention_mask is not None:
            if attention_mask.shape != input_ids.shape:
                raise ValueError(f"attention_mask {tuple(attention_mask.shape)} must match input_ids {tuple(input_ids.shape)}")
            if (attention_mask[:, 1:] < attention_mask[:, :-1]).any() or (attention_mask[:, -1] == 0).any():
                raise ValueError("attention_mask shows right padding: pad prompts on the LEFT (padding_side='left') to generate")
        # Step 2: 已结束的行之后填 pad = pad_token_id，为 None 时用 eos_token_id (都为 None 时不会有行结束，取 0 即可)
        pad = pad_token_id if pad_token_id is not None else (eos_token_id if eos_token_id is not None else 0)
        # Step 3: 记下 was_training = self.training，调用 self.eval() 关闭 dropout；Step 4-7 写在 try 中，
        #         finally 里 self.train(was_training) 恢复原来的模式 (出错时也要恢复)
        was_training = self.training
        self.eval()
        try:
            # Step 4: 循环状态：tokens = input_ids，mask = attention_mask，cache = None，
            #         unfinished = torch.ones(b, dtype=torch.bool, device=input_ids.device)
            tokens, mask, cache = input_ids, attention_mask, None
            unfinished = torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            # Step 5: for 循环 max_new_tokens 次 (Step 5-7 是循环体)：
            #         logits, cache = self._next_token_logits(tokens, mask, cache, use_cache)，[b, V]；
            #         next_tokens = sample_next_token(logits, tokens, mask, do_sample, temperature, top_k, top_p,
            #         repetition_penalty, generator)，[b]；已结束的行填 pad：torch.where(unfinished, next_tokens, pad)
            for _ in range(max_new_tokens):
                logits, cache = self._next_token_logits(tokens, mask, cache, use_cache)  # [b, V]
                next_tokens = sample_next_token(
                    logits, tokens, mask, do_sample, temperature, top_k, top_p, repetition_penalty, generator
                )  # [b]
                next_tokens = torch.where(unfinished, next_tokens, torch.full_like(next_tokens, pad))
                # Step 6: (循环内) 追加新 token：tokens = torch.cat([tokens, next_tokens[:, None]], dim=1)，[b, t + 1]；
                #         mask 不为 None 时同样在末尾补一列 1：torch.cat([mask, mask.new_ones(b, 1)], dim=1)
                tokens = torch.cat([tokens, next_tokens[:, None]], dim=1)  # [b, t + 1]
                if mask is not None:
                    mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)  # [b, t + 1]
                # Step 7: (循环内) eos_token_id 不为 None 时 unfinished = unfinished & (next_tokens != eos_token_id)；
                #         所有行都结束 (not unfinished.any()) 时提前 break
                if eos_token_id is not None:
                    unfinished = unfinished & (next_tokens != eos_token_id)
                    if not unfinished.any():
                        break
        finally:
            self.train(was_training)
        # Step 8: return tokens，形状 [b, s + n]
        return tokens
