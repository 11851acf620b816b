# ruff: noqa: F821
"""Wrong implementations of lesson 05's targets that learners really write.

``llm-course author verify lesson05`` splices each function below into a copy of the
reference ``model/causal_lm.py`` in place of its symbol (so names such as ``torch``, ``F``,
``nn``, ``KVCache``, ``CausalLMOutput``, ``TokenEmbedding``, ``TransformerBlock``,
``build_norm``, ``prepare_attention_mask``, ``IGNORE_INDEX`` or the sampling helpers resolve
in that module; decorators such as ``@torch.no_grad()`` on ``generate`` stay) and checks
that some lesson test fails. Each body is the reference with one bug (marked ``# <- bug``),
so the test that catches it is the one about that bug.
"""

from __future__ import annotations

from intro2llm_cli.mistakes import mistake

FILE = "model/causal_lm.py"


# ============================================================ CausalLM.__init__


@mistake(FILE, "CausalLM.__init__", "weights tied by copying (copy_) instead of sharing one Parameter")
def init_ties_by_copying(self, config):
    super().__init__()
    self.config = config
    self.embed_tokens = TokenEmbedding(config.vocab_size, config.hidden_size, init_std=config.initializer_range)
    self.layers = nn.ModuleList([TransformerBlock(config, i) for i in range(config.num_hidden_layers)])
    self.norm = build_norm(config)
    self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
    self.apply(self._init_weights)
    if config.tie_word_embeddings:
        with torch.no_grad():
            self.lm_head.weight.copy_(self.embed_tokens.weight)  # <- bug: two Parameters with equal values


@mistake(FILE, "CausalLM.__init__", "embedding initialised with its default std (init_std not passed, no _init_weights)")
def init_without_initializer_range(self, config):
    super().__init__()
    self.config = config
    self.embed_tokens = TokenEmbedding(config.vocab_size, config.hidden_size)  # <- bug: std 0.02 whatever the config
    self.layers = nn.ModuleList([TransformerBlock(config, i) for i in range(config.num_hidden_layers)])
    self.norm = build_norm(config)
    self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
    if config.tie_word_embeddings:
        self.lm_head.weight = self.embed_tokens.weight
    # <- bug: self.apply(self._init_weights) forgotten: Linear layers keep PyTorch's kaiming init


# ============================================================ KVCache


@mistake(FILE, "KVCache.update", "cache concatenated on the head axis (dim=1) instead of the sequence axis (dim=2)")
def update_on_the_head_axis(self, layer_idx, k, v):
    if not 0 <= layer_idx < self.num_layers:
        raise ValueError(f"layer_idx={layer_idx} is out of range")
    old_k, old_v = self.key_cache[layer_idx], self.value_cache[layer_idx]
    if old_k is None or old_v is None:
        k_all, v_all = k, v
    else:
        k_all = torch.cat([old_k, k], dim=1)  # <- bug
        v_all = torch.cat([old_v, v], dim=1)  # <- bug
    self.key_cache[layer_idx], self.value_cache[layer_idx] = k_all, v_all
    return k_all, v_all


@mistake(FILE, "KVCache.update", "new keys overwrite the cache instead of being appended")
def update_overwrites(self, layer_idx, k, v):
    if not 0 <= layer_idx < self.num_layers:
        raise ValueError(f"layer_idx={layer_idx} is out of range")
    self.key_cache[layer_idx], self.value_cache[layer_idx] = k, v  # <- bug
    return k, v


@mistake(FILE, "KVCache.get_seq_length", "returns the number of layers, not the number of cached tokens")
def seq_length_is_the_layer_count(self, layer_idx=0):
    return len(self.key_cache)  # <- bug


# ============================================================ CausalLM.forward


@mistake(FILE, "CausalLM.forward", "labels not shifted: position i scored against labels[:, i]")
def forward_labels_not_shifted(self, input_ids, attention_mask=None, labels=None, past_key_values=None,
                               use_cache=False, position_ids=None):
    b, s = input_ids.shape
    use_cache = use_cache or past_key_values is not None
    if use_cache and past_key_values is None:
        past_key_values = KVCache(len(self.layers))
    past_len = past_key_values.get_seq_length() if past_key_values is not None else 0
    if position_ids is None:
        if attention_mask is not None:
            pos = attention_mask.long().cumsum(-1) - 1
            position_ids = pos.masked_fill(attention_mask == 0, 1)[:, -s:]
        else:
            position_ids = torch.arange(past_len, past_len + s, device=input_ids.device)[None, :]
    hidden = self.embed_tokens(input_ids)
    mask = prepare_attention_mask(attention_mask, b, s, past_len + s, hidden.dtype, hidden.device)
    for i, layer in enumerate(self.layers):
        past = past_key_values.get(i) if past_key_values is not None else None
        hidden, present = layer(hidden, mask, position_ids, past_key_value=past, use_cache=use_cache)
        if past_key_values is not None and present is not None:
            past_key_values.update(i, present[0][:, :, past_len:], present[1][:, :, past_len:])
    logits = self.lm_head(self.norm(hidden))
    loss = None
    if labels is not None:
        if labels.shape != input_ids.shape:
            raise ValueError("labels must have the shape of input_ids")
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),  # <- bug
                               ignore_index=IGNORE_INDEX)
    return CausalLMOutput(loss=loss, logits=logits, past_key_values=past_key_values)


@mistake(FILE, "CausalLM.forward", "loss summed over tokens instead of averaged")
def forward_loss_summed(self, input_ids, attention_mask=None, labels=None, past_key_values=None,
                        use_cache=False, position_ids=None):
    b, s = input_ids.shape
    use_cache = use_cache or past_key_values is not None
    if use_cache and past_key_values is None:
        past_key_values = KVCache(len(self.layers))
    past_len = past_key_values.get_seq_length() if past_key_values is not None else 0
    if position_ids is None:
        if attention_mask is not None:
            pos = attention_mask.long().cumsum(-1) - 1
            position_ids = pos.masked_fill(attention_mask == 0, 1)[:, -s:]
        else:
            position_ids = torch.arange(past_len, past_len + s, device=input_ids.device)[None, :]
    hidden = self.embed_tokens(input_ids)
    mask = prepare_attention_mask(attention_mask, b, s, past_len + s, hidden.dtype, hidden.device)
    for i, layer in enumerate(self.layers):
        past = past_key_values.get(i) if past_key_values is not None else None
        hidden, present = layer(hidden, mask, position_ids, past_key_value=past, use_cache=use_cache)
        if past_key_values is not None and present is not None:
            past_key_values.update(i, present[0][:, :, past_len:], present[1][:, :, past_len:])
    logits = self.lm_head(self.norm(hidden))
    loss = None
    if labels is not None:
        if labels.shape != input_ids.shape:
            raise ValueError("labels must have the shape of input_ids")
        shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
        shift_labels = labels[:, 1:].reshape(-1)
        loss = F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX, reduction="sum")  # <- bug
    return CausalLMOutput(loss=loss, logits=logits, past_key_values=past_key_values)


@mistake(FILE, "CausalLM.forward", "-100 not ignored: the loss written by hand with labels.clamp(min=0)")
def forward_minus_100_counted(self, input_ids, attention_mask=None, labels=None, past_key_values=None,
                              use_cache=False, position_ids=None):
    b, s = input_ids.shape
    use_cache = use_cache or past_key_values is not None
    if use_cache and past_key_values is None:
        past_key_values = KVCache(len(self.layers))
    past_len = past_key_values.get_seq_length() if past_key_values is not None else 0
    if position_ids is None:
        if attention_mask is not None:
            pos = attention_mask.long().cumsum(-1) - 1
            position_ids = pos.masked_fill(attention_mask == 0, 1)[:, -s:]
        else:
            position_ids = torch.arange(past_len, past_len + s, device=input_ids.device)[None, :]
    hidden = self.embed_tokens(input_ids)
    mask = prepare_attention_mask(attention_mask, b, s, past_len + s, hidden.dtype, hidden.device)
    for i, layer in enumerate(self.layers):
        past = past_key_values.get(i) if past_key_values is not None else None
        hidden, present = layer(hidden, mask, position_ids, past_key_value=past, use_cache=use_cache)
        if past_key_values is not None and present is not None:
            past_key_values.update(i, present[0][:, :, past_len:], present[1][:, :, past_len:])
    logits = self.lm_head(self.norm(hidden))
    loss = None
    if labels is not None:
        if labels.shape != input_ids.shape:
            raise ValueError("labels must have the shape of input_ids")
        log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        targets = labels[:, 1:].clamp(min=0)  # <- bug: -100 becomes token 0 and is counted
        loss = -log_probs.gather(-1, targets[..., None]).mean()
    return CausalLMOutput(loss=loss, logits=logits, past_key_values=past_key_values)


@mistake(FILE, "CausalLM.forward", "final norm missing: lm_head reads the raw residual stream")
def forward_without_final_norm(self, input_ids, attention_mask=None, labels=None, past_key_values=None,
                               use_cache=False, position_ids=None):
    b, s = input_ids.shape
    use_cache = use_cache or past_key_values is not None
    if use_cache and past_key_values is None:
        past_key_values = KVCache(len(self.layers))
    past_len = past_key_values.get_seq_length() if past_key_values is not None else 0
    if position_ids is None:
        if attention_mask is not None:
            pos = attention_mask.long().cumsum(-1) - 1
            position_ids = pos.masked_fill(attention_mask == 0, 1)[:, -s:]
        else:
            position_ids = torch.arange(past_len, past_len + s, device=input_ids.device)[None, :]
    hidden = self.embed_tokens(input_ids)
    mask = prepare_attention_mask(attention_mask, b, s, past_len + s, hidden.dtype, hidden.device)
    for i, layer in enumerate(self.layers):
        past = past_key_values.get(i) if past_key_values is not None else None
        hidden, present = layer(hidden, mask, position_ids, past_key_value=past, use_cache=use_cache)
        if past_key_values is not None and present is not None:
            past_key_values.update(i, present[0][:, :, past_len:], present[1][:, :, past_len:])
    logits = self.lm_head(hidden)  # <- bug
    loss = None
    if labels is not None:
        if labels.shape != input_ids.shape:
            raise ValueError("labels must have the shape of input_ids")
        shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
        loss = F.cross_entropy(shift_logits, labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
    return CausalLMOutput(loss=loss, logits=logits, past_key_values=past_key_values)


@mistake(FILE, "CausalLM.forward", "final norm in the wrong place: applied to the embeddings, lm_head reads the raw stream")
def forward_norm_before_the_layers(self, input_ids, attention_mask=None, labels=None, past_key_values=None,
                                   use_cache=False, position_ids=None):
    b, s = input_ids.shape
    use_cache = use_cache or past_key_values is not None
    if use_cache and past_key_values is None:
        past_key_values = KVCache(len(self.layers))
    past_len = past_key_values.get_seq_length() if past_key_values is not None else 0
    if position_ids is None:
        if attention_mask is not None:
            pos = attention_mask.long().cumsum(-1) - 1
            position_ids = pos.masked_fill(attention_mask == 0, 1)[:, -s:]
        else:
            position_ids = torch.arange(past_len, past_len + s, device=input_ids.device)[None, :]
    hidden = self.norm(self.embed_tokens(input_ids))  # <- bug
    mask = prepare_attention_mask(attention_mask, b, s, past_len + s, hidden.dtype, hidden.device)
    for i, layer in enumerate(self.layers):
        past = past_key_values.get(i) if past_key_values is not None else None
        hidden, present = layer(hidden, mask, position_ids, past_key_value=past, use_cache=use_cache)
        if past_key_values is not None and present is not None:
            past_key_values.update(i, present[0][:, :, past_len:], present[1][:, :, past_len:])
    logits = self.lm_head(hidden)  # <- bug
    loss = None
    if labels is not None:
        if labels.shape != input_ids.shape:
            raise ValueError("labels must have the shape of input_ids")
        shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
        loss = F.cross_entropy(shift_logits, labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
    return CausalLMOutput(loss=loss, logits=logits, past_key_values=past_key_values)


@mistake(FILE, "CausalLM.forward", "positions restart at 0 after the cache (arange(s) instead of arange(past, past + s))")
def forward_positions_restart_after_cache(self, input_ids, attention_mask=None, labels=None, past_key_values=None,
                                          use_cache=False, position_ids=None):
    b, s = input_ids.shape
    use_cache = use_cache or past_key_values is not None
    if use_cache and past_key_values is None:
        past_key_values = KVCache(len(self.layers))
    past_len = past_key_values.get_seq_length() if past_key_values is not None else 0
    if position_ids is None:
        if attention_mask is not None:
            pos = attention_mask.long().cumsum(-1) - 1
            position_ids = pos.masked_fill(attention_mask == 0, 1)[:, -s:]
        else:
            position_ids = torch.arange(s, device=input_ids.device)[None, :]  # <- bug
    hidden = self.embed_tokens(input_ids)
    mask = prepare_attention_mask(attention_mask, b, s, past_len + s, hidden.dtype, hidden.device)
    for i, layer in enumerate(self.layers):
        past = past_key_values.get(i) if past_key_values is not None else None
        hidden, present = layer(hidden, mask, position_ids, past_key_value=past, use_cache=use_cache)
        if past_key_values is not None and present is not None:
            past_key_values.update(i, present[0][:, :, past_len:], present[1][:, :, past_len:])
    logits = self.lm_head(self.norm(hidden))
    loss = None
    if labels is not None:
        if labels.shape != input_ids.shape:
            raise ValueError("labels must have the shape of input_ids")
        shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
        loss = F.cross_entropy(shift_logits, labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
    return CausalLMOutput(loss=loss, logits=logits, past_key_values=past_key_values)


@mistake(FILE, "CausalLM.forward",
         "positions from the mask only in the prefill; cached steps use arange(past, past + s), so a "
         "left-padded row jumps ahead by its number of pads")
def forward_positions_from_the_mask_only_in_the_prefill(self, input_ids, attention_mask=None, labels=None,
                                                        past_key_values=None, use_cache=False, position_ids=None):
    # (A row-wide constant offset would be harmless: RoPE only sees position differences. So
    # "arange everywhere, mask ignored" gives the right logits; mixing the two does not.)
    b, s = input_ids.shape
    use_cache = use_cache or past_key_values is not None
    if use_cache and past_key_values is None:
        past_key_values = KVCache(len(self.layers))
    past_len = past_key_values.get_seq_length() if past_key_values is not None else 0
    if position_ids is None:
        if attention_mask is not None and past_len == 0:  # <- bug: only before anything is cached
            pos = attention_mask.long().cumsum(-1) - 1
            position_ids = pos.masked_fill(attention_mask == 0, 1)[:, -s:]
        else:
            position_ids = torch.arange(past_len, past_len + s, device=input_ids.device)[None, :]
    hidden = self.embed_tokens(input_ids)
    mask = prepare_attention_mask(attention_mask, b, s, past_len + s, hidden.dtype, hidden.device)
    for i, layer in enumerate(self.layers):
        past = past_key_values.get(i) if past_key_values is not None else None
        hidden, present = layer(hidden, mask, position_ids, past_key_value=past, use_cache=use_cache)
        if past_key_values is not None and present is not None:
            past_key_values.update(i, present[0][:, :, past_len:], present[1][:, :, past_len:])
    logits = self.lm_head(self.norm(hidden))
    loss = None
    if labels is not None:
        if labels.shape != input_ids.shape:
            raise ValueError("labels must have the shape of input_ids")
        shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
        loss = F.cross_entropy(shift_logits, labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
    return CausalLMOutput(loss=loss, logits=logits, past_key_values=past_key_values)


@mistake(FILE, "CausalLM.forward", "the whole present (old + new) stored in the cache again: cached tokens doubled")
def forward_caches_the_old_part_twice(self, input_ids, attention_mask=None, labels=None, past_key_values=None,
                                      use_cache=False, position_ids=None):
    b, s = input_ids.shape
    use_cache = use_cache or past_key_values is not None
    if use_cache and past_key_values is None:
        past_key_values = KVCache(len(self.layers))
    past_len = past_key_values.get_seq_length() if past_key_values is not None else 0
    if position_ids is None:
        if attention_mask is not None:
            pos = attention_mask.long().cumsum(-1) - 1
            position_ids = pos.masked_fill(attention_mask == 0, 1)[:, -s:]
        else:
            position_ids = torch.arange(past_len, past_len + s, device=input_ids.device)[None, :]
    hidden = self.embed_tokens(input_ids)
    mask = prepare_attention_mask(attention_mask, b, s, past_len + s, hidden.dtype, hidden.device)
    for i, layer in enumerate(self.layers):
        past = past_key_values.get(i) if past_key_values is not None else None
        hidden, present = layer(hidden, mask, position_ids, past_key_value=past, use_cache=use_cache)
        if past_key_values is not None and present is not None:
            past_key_values.update(i, present[0], present[1])  # <- bug
    logits = self.lm_head(self.norm(hidden))
    loss = None
    if labels is not None:
        if labels.shape != input_ids.shape:
            raise ValueError("labels must have the shape of input_ids")
        shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
        loss = F.cross_entropy(shift_logits, labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
    return CausalLMOutput(loss=loss, logits=logits, past_key_values=past_key_values)


# ============================================================ top_k_filter


@mistake(FILE, "top_k_filter", "keeps k + 1 tokens (off by one in topk)")
def top_k_keeps_one_too_many(logits, k):
    if k < 1:
        raise ValueError(f"top_k={k} must be >= 1")
    if k >= logits.shape[-1]:
        return logits.clone()
    kth = torch.topk(logits, min(k + 1, logits.shape[-1]), dim=-1).values[..., -1:]  # <- bug
    return logits.masked_fill(logits < kth, float("-inf"))


@mistake(FILE, "top_k_filter", "keeps k - 1 tokens: strict > against the k-th value drops it")
def top_k_keeps_one_too_few(logits, k):
    if k < 1:
        raise ValueError(f"top_k={k} must be >= 1")
    if k >= logits.shape[-1]:
        return logits.clone()
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits <= kth, float("-inf"))  # <- bug


@mistake(FILE, "top_k_filter", "exactly k tokens by index: logits tied with the k-th are dropped")
def top_k_drops_ties(logits, k):
    if k < 1:
        raise ValueError(f"top_k={k} must be >= 1")
    if k >= logits.shape[-1]:
        return logits.clone()
    idx = torch.topk(logits, k, dim=-1).indices
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, idx, True)  # <- bug
    return logits.masked_fill(~keep, float("-inf"))


# ============================================================ top_p_filter


@mistake(FILE, "top_p_filter", "drops the token that crosses p (keeps cum < p instead of mass_before < p)")
def top_p_drops_the_crossing_token(logits, p):
    if not p > 0:
        raise ValueError(f"top_p={p} must be > 0")
    if p >= 1:
        return logits.clone()
    sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=True, stable=True)
    cum = torch.softmax(sorted_logits.float(), dim=-1).cumsum(dim=-1)
    keep_sorted = cum < p  # <- bug
    keep_sorted[..., 0] = True
    keep = torch.zeros_like(keep_sorted).scatter(-1, sorted_idx, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))


@mistake(FILE, "top_p_filter", "keeps one too many at the boundary (mass_before <= p)")
def top_p_keeps_one_too_many(logits, p):
    if not p > 0:
        raise ValueError(f"top_p={p} must be > 0")
    if p >= 1:
        return logits.clone()
    sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=True, stable=True)
    cum = torch.softmax(sorted_logits.float(), dim=-1).cumsum(dim=-1)
    mass_before = F.pad(cum[..., :-1], (1, 0))
    keep_sorted = mass_before <= p  # <- bug
    keep = torch.zeros_like(keep_sorted).scatter(-1, sorted_idx, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))


@mistake(FILE, "top_p_filter", "cumulative sum taken in token-id order (no sort)")
def top_p_without_sorting(logits, p):
    if not p > 0:
        raise ValueError(f"top_p={p} must be > 0")
    if p >= 1:
        return logits.clone()
    cum = torch.softmax(logits.float(), dim=-1).cumsum(dim=-1)  # <- bug
    mass_before = F.pad(cum[..., :-1], (1, 0))
    return logits.masked_fill(~(mass_before < p), float("-inf"))


# ============================================================ apply_repetition_penalty


@mistake(FILE, "apply_repetition_penalty", "divides negative logits too (makes them larger: more likely)")
def penalty_divides_negatives(logits, input_ids, penalty, attention_mask=None):
    if not penalty > 0:
        raise ValueError(f"repetition_penalty={penalty} must be > 0")
    if penalty == 1.0:
        return logits.clone()
    weights = torch.ones_like(input_ids) if attention_mask is None else attention_mask.long()
    counts = torch.zeros(logits.shape, dtype=torch.long, device=logits.device).scatter_add(-1, input_ids, weights)
    return torch.where(counts > 0, logits / penalty, logits)  # <- bug


@mistake(FILE, "apply_repetition_penalty", "penalises every token, seen or not")
def penalty_on_every_token(logits, input_ids, penalty, attention_mask=None):
    if not penalty > 0:
        raise ValueError(f"repetition_penalty={penalty} must be > 0")
    if penalty == 1.0:
        return logits.clone()
    return torch.where(logits < 0, logits * penalty, logits / penalty)  # <- bug


@mistake(FILE, "apply_repetition_penalty", "padding positions count as seen (attention_mask ignored)")
def penalty_counts_padding(logits, input_ids, penalty, attention_mask=None):
    if not penalty > 0:
        raise ValueError(f"repetition_penalty={penalty} must be > 0")
    if penalty == 1.0:
        return logits.clone()
    weights = torch.ones_like(input_ids)  # <- bug
    counts = torch.zeros(logits.shape, dtype=torch.long, device=logits.device).scatter_add(-1, input_ids, weights)
    penalized = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(counts > 0, penalized, logits)


@mistake(FILE, "apply_repetition_penalty", "a token seen n times is penalised n times (penalty ** n)")
def penalty_per_occurrence(logits, input_ids, penalty, attention_mask=None):
    if not penalty > 0:
        raise ValueError(f"repetition_penalty={penalty} must be > 0")
    if penalty == 1.0:
        return logits.clone()
    weights = torch.ones_like(input_ids) if attention_mask is None else attention_mask.long()
    counts = torch.zeros(logits.shape, dtype=torch.long, device=logits.device).scatter_add(-1, input_ids, weights)
    factor = penalty ** counts.float()  # <- bug
    return torch.where(logits < 0, logits * factor, logits / factor)


# ============================================================ sample_next_token


@mistake(FILE, "sample_next_token", "greedy decoding samples instead of taking the argmax")
def sample_greedy_by_sampling(logits, input_ids=None, attention_mask=None, do_sample=False, temperature=1.0,
                              top_k=None, top_p=None, repetition_penalty=1.0, generator=None):
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0")
    logits = logits.float()
    if repetition_penalty != 1.0 and input_ids is not None:
        logits = apply_repetition_penalty(logits, input_ids, repetition_penalty, attention_mask)
    if temperature > 0:
        logits = logits / temperature
    if do_sample and top_k is not None:
        logits = top_k_filter(logits, top_k)
    if do_sample and top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)  # <- bug: also when greedy


@mistake(FILE, "sample_next_token", "temperature applied after top-k / top-p (top-p sees the unscaled distribution)")
def sample_temperature_after_filters(logits, input_ids=None, attention_mask=None, do_sample=False, temperature=1.0,
                                     top_k=None, top_p=None, repetition_penalty=1.0, generator=None):
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0")
    logits = logits.float()
    if repetition_penalty != 1.0 and input_ids is not None:
        logits = apply_repetition_penalty(logits, input_ids, repetition_penalty, attention_mask)
    if not do_sample or temperature == 0:
        return logits.argmax(dim=-1)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    logits = logits / temperature  # <- bug: after the filters
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


@mistake(FILE, "sample_next_token", "logits multiplied by the temperature instead of divided")
def sample_temperature_multiplied(logits, input_ids=None, attention_mask=None, do_sample=False, temperature=1.0,
                                  top_k=None, top_p=None, repetition_penalty=1.0, generator=None):
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0")
    logits = logits.float()
    if repetition_penalty != 1.0 and input_ids is not None:
        logits = apply_repetition_penalty(logits, input_ids, repetition_penalty, attention_mask)
    if not do_sample or temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits * temperature  # <- bug
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


@mistake(FILE, "sample_next_token", "repetition penalty forgotten in greedy mode (applied only when sampling)")
def sample_penalty_only_when_sampling(logits, input_ids=None, attention_mask=None, do_sample=False, temperature=1.0,
                                      top_k=None, top_p=None, repetition_penalty=1.0, generator=None):
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0")
    logits = logits.float()
    if not do_sample or temperature == 0:
        return logits.argmax(dim=-1)  # <- bug: before the penalty
    if repetition_penalty != 1.0 and input_ids is not None:
        logits = apply_repetition_penalty(logits, input_ids, repetition_penalty, attention_mask)
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


# ============================================================ CausalLM._next_token_logits


@mistake(FILE, "CausalLM._next_token_logits", "feeds the whole sequence at every step while also passing the cache")
def next_token_logits_whole_sequence_with_cache(self, input_ids, attention_mask, past_key_values, use_cache):
    if not use_cache:
        out = self(input_ids, attention_mask=attention_mask)
        return out.logits[:, -1, :].float(), None
    out = self(input_ids, attention_mask=attention_mask, past_key_values=past_key_values, use_cache=True)  # <- bug
    return out.logits[:, -1, :].float(), out.past_key_values


@mistake(FILE, "CausalLM._next_token_logits", "cache built but never passed back: every step feeds one token with no past")
def next_token_logits_cache_not_passed(self, input_ids, attention_mask, past_key_values, use_cache):
    if not use_cache:
        out = self(input_ids, attention_mask=attention_mask)
        return out.logits[:, -1, :].float(), None
    if past_key_values is None:
        out = self(input_ids, attention_mask=attention_mask, use_cache=True)
    else:
        out = self(input_ids[:, -1:], use_cache=True)  # <- bug: neither the cache nor the mask
    return out.logits[:, -1, :].float(), out.past_key_values


# ============================================================ CausalLM.generate


@mistake(FILE, "CausalLM.generate", "finished rows are not padded after eos: they keep generating")
def generate_without_padding_finished_rows(self, input_ids, attention_mask=None, max_new_tokens=32, do_sample=False,
                                           temperature=1.0, top_k=None, top_p=None, repetition_penalty=1.0,
                                           eos_token_id=None, pad_token_id=None, generator=None, use_cache=True):
    if attention_mask is not None:
        if (attention_mask[:, 1:] < attention_mask[:, :-1]).any() or (attention_mask[:, -1] == 0).any():
            raise ValueError("pad prompts on the LEFT to generate")
    was_training = self.training
    self.eval()
    try:
        tokens, mask, cache = input_ids, attention_mask, None
        unfinished = torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for _ in range(max_new_tokens):
            logits, cache = self._next_token_logits(tokens, mask, cache, use_cache)
            next_tokens = sample_next_token(
                logits, tokens, mask, do_sample, temperature, top_k, top_p, repetition_penalty, generator
            )  # <- bug: finished rows are not replaced by the pad
            tokens = torch.cat([tokens, next_tokens[:, None]], dim=1)
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
            if eos_token_id is not None:
                unfinished = unfinished & (next_tokens != eos_token_id)
                if not unfinished.any():
                    break
    finally:
        self.train(was_training)
    return tokens


@mistake(FILE, "CausalLM.generate", "never stops early: always max_new_tokens tokens even when every row finished")
def generate_never_stops(self, input_ids, attention_mask=None, max_new_tokens=32, do_sample=False,
                         temperature=1.0, top_k=None, top_p=None, repetition_penalty=1.0,
                         eos_token_id=None, pad_token_id=None, generator=None, use_cache=True):
    if attention_mask is not None:
        if (attention_mask[:, 1:] < attention_mask[:, :-1]).any() or (attention_mask[:, -1] == 0).any():
            raise ValueError("pad prompts on the LEFT to generate")
    pad = pad_token_id if pad_token_id is not None else (eos_token_id if eos_token_id is not None else 0)
    was_training = self.training
    self.eval()
    try:
        tokens, mask, cache = input_ids, attention_mask, None
        unfinished = torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for _ in range(max_new_tokens):
            logits, cache = self._next_token_logits(tokens, mask, cache, use_cache)
            next_tokens = sample_next_token(
                logits, tokens, mask, do_sample, temperature, top_k, top_p, repetition_penalty, generator
            )
            next_tokens = torch.where(unfinished, next_tokens, torch.full_like(next_tokens, pad))
            tokens = torch.cat([tokens, next_tokens[:, None]], dim=1)
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
            if eos_token_id is not None:
                unfinished = unfinished & (next_tokens != eos_token_id)  # <- bug: no break
    finally:
        self.train(was_training)
    return tokens


@mistake(FILE, "CausalLM.generate", "generates in train mode (no self.eval()): dropout changes the tokens")
def generate_in_train_mode(self, input_ids, attention_mask=None, max_new_tokens=32, do_sample=False,
                           temperature=1.0, top_k=None, top_p=None, repetition_penalty=1.0,
                           eos_token_id=None, pad_token_id=None, generator=None, use_cache=True):
    if attention_mask is not None:
        if (attention_mask[:, 1:] < attention_mask[:, :-1]).any() or (attention_mask[:, -1] == 0).any():
            raise ValueError("pad prompts on the LEFT to generate")
    pad = pad_token_id if pad_token_id is not None else (eos_token_id if eos_token_id is not None else 0)
    tokens, mask, cache = input_ids, attention_mask, None  # <- bug: no self.eval()
    unfinished = torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    for _ in range(max_new_tokens):
        logits, cache = self._next_token_logits(tokens, mask, cache, use_cache)
        next_tokens = sample_next_token(
            logits, tokens, mask, do_sample, temperature, top_k, top_p, repetition_penalty, generator
        )
        next_tokens = torch.where(unfinished, next_tokens, torch.full_like(next_tokens, pad))
        tokens = torch.cat([tokens, next_tokens[:, None]], dim=1)
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        if eos_token_id is not None:
            unfinished = unfinished & (next_tokens != eos_token_id)
            if not unfinished.any():
                break
    return tokens


@mistake(FILE, "CausalLM.generate", "the repetition penalty sees only the prompt, not the tokens generated so far")
def generate_penalty_sees_only_the_prompt(self, input_ids, attention_mask=None, max_new_tokens=32, do_sample=False,
                                          temperature=1.0, top_k=None, top_p=None, repetition_penalty=1.0,
                                          eos_token_id=None, pad_token_id=None, generator=None, use_cache=True):
    if attention_mask is not None:
        if (attention_mask[:, 1:] < attention_mask[:, :-1]).any() or (attention_mask[:, -1] == 0).any():
            raise ValueError("pad prompts on the LEFT to generate")
    pad = pad_token_id if pad_token_id is not None else (eos_token_id if eos_token_id is not None else 0)
    was_training = self.training
    self.eval()
    try:
        tokens, mask, cache = input_ids, attention_mask, None
        unfinished = torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for _ in range(max_new_tokens):
            logits, cache = self._next_token_logits(tokens, mask, cache, use_cache)
            next_tokens = sample_next_token(
                logits, input_ids, attention_mask, do_sample, temperature, top_k, top_p,  # <- bug
                repetition_penalty, generator
            )
            next_tokens = torch.where(unfinished, next_tokens, torch.full_like(next_tokens, pad))
            tokens = torch.cat([tokens, next_tokens[:, None]], dim=1)
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
            if eos_token_id is not None:
                unfinished = unfinished & (next_tokens != eos_token_id)
                if not unfinished.any():
                    break
    finally:
        self.train(was_training)
    return tokens
