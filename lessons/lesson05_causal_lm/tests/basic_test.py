"""Lesson 05, basic tier: the contract of every target on small, hand-checkable cases.

Every expected value below is worked out by hand in the test's docstring (or follows
from a stated property, or from ``torch.nn.functional`` called in the test); none is
copied from running the reference.

Notation, as in the lesson's module: ``b`` batch, ``s`` new tokens, ``t`` cached + new
tokens, ``d`` hidden_size, ``V`` vocab_size, ``L`` layers, ``g`` key/value heads,
``hd`` head_dim.

**The constant-logits model** (``_constant_model``): a LayerNorm model whose final norm
has weight 0 and bias ``e_0 = [1, 0, ..., 0]``, so ``norm(hidden) = e_0`` exactly at
every position whatever the blocks compute, and whose ``lm_head.weight`` is zero except
column 0. Then ``logits = lm_head(e_0) = lm_head.weight[:, 0]`` at every position: the
logits are whatever the test writes there. With ``[2 ln 2, ln 2, 0, 0]`` the
probabilities are ``[4, 2, 1, 1] / 8 = [1/2, 1/4, 1/8, 1/8]``, so the cross-entropy of
token 0, 1, 2, 3 is ``1, 2, 3, 3`` times ``ln 2``: losses are counted in bits.

Other models are tiny (``d = 32``, 2 layers, 4 query heads of ``hd = 8``, 2 KV heads)
and get random weights far from the 0.02 init (``_perturb``), so their logits are not
flat and wrong formulas show.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from intro2llm_cli.testkit import (
    assert_close,
    assert_equal,
    assert_same_sequence,
    expect_error,
    learner,
    say,
)

INF = float("-inf")
LN2 = math.log(2.0)
BITS_LOGITS = [2 * LN2, LN2, 0.0, 0.0]  # probabilities [1/2, 1/4, 1/8, 1/8]


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Seed every test; run single-threaded (tiny models decode faster on one thread than on
    busy shared cores), restoring torch's thread count afterwards."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _lm():
    return learner("model.causal_lm")


def _config(**overrides):
    """The learner's ModelConfig: V = 40, d = 32, L = 2, 4 query heads (hd = 8), g = 2."""
    params = dict(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return learner("model.config").ModelConfig(**{**params, **overrides})


def _perturb(model, seed: int = 0):
    """Random weights far from the init: matrices N(0, (2 / sqrt(fan_in))^2), norm weights
    1 + N(0, 0.2^2), biases N(0, 0.2^2). Logits then spread over a few units."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if p.dim() == 1:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * noise)
            else:
                p.copy_(noise * 2.0 / math.sqrt(p.shape[1]))
    return model


def _model(seed: int = 0, **overrides):
    """The learner's CausalLM with ``_config(**overrides)`` and perturbed weights, in eval mode."""
    return _perturb(_lm().CausalLM(_config(**overrides)), seed).eval()


def _constant_model(values):
    """The constant-logits model of the module docstring: logits == ``values`` at every position."""
    config = _config(vocab_size=len(values), hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                     num_attention_heads=2, num_key_value_heads=1, norm_type="layernorm")
    model = _lm().CausalLM(config)
    with torch.no_grad():
        model.norm.weight.zero_()
        model.norm.bias.zero_()
        model.norm.bias[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[:, 0] = torch.tensor(values)
    return model.eval()


def _require_constant_logits(model, values, ids):
    """Tests built on the constant-logits model first check that it really is constant, so a
    wrong ``forward`` (e.g. no final norm) is reported as such and not as a loss or eos bug."""
    with torch.no_grad():
        logits = model(ids).logits
    expected = torch.tensor(values).expand(*ids.shape, len(values))
    if not isinstance(logits, torch.Tensor) or logits.shape != expected.shape or not torch.allclose(
            logits.float(), expected, atol=1e-5):
        raise AssertionError(say(
            f"这个测试用的“常数 logits 模型”没有输出 {values}：先修好 CausalLM.forward "
            "(logits = self.lm_head(self.norm(hidden))，见 test_logits_of_the_constant_model_come_through_the_final_norm)。",
            f"the constant-logits model behind this test does not return {values}: fix CausalLM.forward first "
            "(logits = self.lm_head(self.norm(hidden)); see test_logits_of_the_constant_model_come_through_the_final_norm)."))


def _with_hint(check, hint):
    """Run ``check()``; on failure append ``hint`` (the likely cause) to its message."""
    try:
        check()
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{hint}") from None


def _close(actual, expected, what, hint, **tolerance):
    assert_close(actual, expected, what, hint=hint, **tolerance)


def _tensor(value, what):
    if not isinstance(value, torch.Tensor):
        raise AssertionError(say(f"{what} 应是 torch.Tensor，实际是 {type(value).__name__}",
                                 f"{what} should be a torch.Tensor, got {type(value).__name__}"))
    return value


def _same_rows(actual, expected, what, hint):
    """Token tensors [b, n]: shape first, then row by row with the first differing position."""
    actual = _tensor(actual, what)
    _with_hint(lambda: assert_equal(list(actual.shape), list(expected.shape), f"{what}.shape"), hint)
    for row, (got, want) in enumerate(zip(actual.tolist(), expected.tolist(), strict=True)):
        _with_hint(lambda got=got, want=want, row=row: assert_same_sequence(got, want, f"{what}, row {row}"), hint)


def _assert_filtered(actual, expected, what, hint):
    """Filtered logits: the same entries must be -inf, and the kept ones unchanged (exactly)."""
    actual = _tensor(actual, what)
    assert_equal(list(actual.shape), list(expected.shape), f"{what}.shape")
    wrong = (torch.isneginf(actual) != torch.isneginf(expected)) | (
        torch.isfinite(expected) & (actual != expected))
    if wrong.any():
        raise AssertionError(say(
            f"{what}：{int(wrong.sum())} 个位置不对\n  期望：{expected.tolist()}\n  实际：{actual.tolist()}",
            f"{what}: {int(wrong.sum())} entries differ\n  expected: {expected.tolist()}\n  got:      {actual.tolist()}",
        ) + f"\n{hint}")


# ===================================================================== CausalLM.__init__


@pytest.mark.symbol("CausalLM.__init__")
@pytest.mark.parametrize("norm_type", ["rmsnorm", "layernorm"])
def test_model_has_the_llama_submodules_with_their_shapes(norm_type):
    """``embed_tokens.weight [V, d] = [40, 32]``, ``layers``: an ``nn.ModuleList`` of L = 2
    ``TransformerBlock``s, ``norm``: the ``norm_type`` norm over d, ``lm_head``: ``nn.Linear``
    with weight ``[V, d]`` and no bias (Hugging Face's names, so state dicts convert by name)."""
    model = _lm().CausalLM(_config(norm_type=norm_type))
    hint = say("提示：按顺序建 embed_tokens、layers (nn.ModuleList)、norm (build_norm)、lm_head (bias=False)。",
               "hint: build embed_tokens, layers (nn.ModuleList), norm (build_norm), lm_head (bias=False).")
    for name in ("embed_tokens", "layers", "norm", "lm_head"):
        assert isinstance(getattr(model, name, None), torch.nn.Module), say(
            f"CausalLM 缺少子模块 {name}\n{hint}", f"CausalLM has no submodule {name}\n{hint}")
    assert_equal(list(model.embed_tokens.weight.shape), [40, 32], "embed_tokens.weight.shape ([V, d])")
    assert isinstance(model.layers, torch.nn.ModuleList), say(
        "layers 应是 nn.ModuleList (普通 list 中的层不会注册参数)", "layers should be an nn.ModuleList (a plain list registers no parameters)")
    assert_equal(len(model.layers), 2, "len(layers) (num_hidden_layers)")
    block = learner("model.transformer_block").TransformerBlock
    assert all(isinstance(layer, block) for layer in model.layers), say(
        "layers 里应是 TransformerBlock", "layers should hold TransformerBlocks")
    norms = learner("model.norm")
    expected_norm = norms.RMSNorm if norm_type == "rmsnorm" else norms.LayerNorm
    assert isinstance(model.norm, expected_norm), say(
        f"norm_type={norm_type!r} 时 norm 应是 {expected_norm.__name__}，实际是 {type(model.norm).__name__} (用 build_norm(config))",
        f"with norm_type={norm_type!r}, norm should be a {expected_norm.__name__}, got {type(model.norm).__name__} "
        "(use build_norm(config))")
    assert_equal(list(model.lm_head.weight.shape), [40, 32], "lm_head.weight.shape ([V, d])")
    assert model.lm_head.bias is None, say("lm_head 不应有偏置 (bias=False)", "lm_head should have no bias (bias=False)")


@pytest.mark.symbol("CausalLM.__init__")
def test_tied_lm_head_is_the_embedding_parameter_itself():
    """``tie_word_embeddings=True``: ``lm_head.weight`` *is* ``embed_tokens.weight`` (one
    Parameter, not a copy), so the model has V·d = 40·32 = 1280 fewer parameters than untied,
    and a change to one is a change to the other."""
    tied = _lm().CausalLM(_config(tie_word_embeddings=True))
    untied = _lm().CausalLM(_config(tie_word_embeddings=False))
    hint = say("提示：共享要写 self.lm_head.weight = self.embed_tokens.weight (同一个 Parameter)；"
               "copy_() 或 .clone() 只是拷贝，训练时两者会分开。",
               "hint: tie with self.lm_head.weight = self.embed_tokens.weight (the same Parameter); "
               "copy_() or .clone() only copies, and training pulls the two apart.")
    assert tied.lm_head.weight is tied.embed_tokens.weight, say(
        f"tie_word_embeddings=True 时 lm_head.weight 应就是 embed_tokens.weight\n{hint}",
        f"with tie_word_embeddings=True, lm_head.weight should be embed_tokens.weight itself\n{hint}")
    count = sum(p.numel() for p in tied.parameters())
    _with_hint(lambda: assert_equal(count, sum(p.numel() for p in untied.parameters()) - 40 * 32,
                                    "parameters of the tied model (untied - V·d)"), hint)


@pytest.mark.symbol("CausalLM.__init__")
def test_untied_lm_head_is_a_separate_parameter():
    """``tie_word_embeddings=False``: two Parameters with their own storage, and both appear
    in the state dict (``embed_tokens.weight``, ``lm_head.weight``)."""
    model = _lm().CausalLM(_config(tie_word_embeddings=False))
    assert model.lm_head.weight is not model.embed_tokens.weight and (
        model.lm_head.weight.data_ptr() != model.embed_tokens.weight.data_ptr()), say(
        "tie_word_embeddings=False 时 lm_head.weight 与 embed_tokens.weight 应是两个独立的参数",
        "with tie_word_embeddings=False, lm_head.weight and embed_tokens.weight should be separate parameters")
    keys = set(model.state_dict())
    assert {"embed_tokens.weight", "lm_head.weight", "norm.weight"} <= keys, say(
        f"state_dict 缺少键：{sorted({'embed_tokens.weight', 'lm_head.weight', 'norm.weight'} - keys)}",
        f"the state_dict lacks keys: {sorted({'embed_tokens.weight', 'lm_head.weight', 'norm.weight'} - keys)}")


@pytest.mark.symbol("CausalLM.__init__")
@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_init_draws_weights_with_std_initializer_range_and_sets_norms_to_one(tie):
    """``initializer_range = 0.1`` (not the default 0.02, and not PyTorch's own Linear init,
    whose std is 1 / sqrt(3 · fan_in) = 0.072 for fan_in 64): every Linear and embedding
    weight has mean ~ 0 and std ~ 0.1, every norm weight is exactly 1 and LayerNorm biases 0.

    Sampling error: the smallest matrix (k_proj, 32 x 64 = 2048 values) estimates the std to
    ~1.6% and the mean to ~0.002, so the bounds (std within 15%, |mean| < 0.01) never trip
    on a correct init."""
    config = _config(vocab_size=512, hidden_size=64, intermediate_size=172, initializer_range=0.1,
                     norm_type="layernorm", tie_word_embeddings=tie)
    model = _lm().CausalLM(config)
    hint = say("提示：词嵌入用 init_std=config.initializer_range，最后调用 self.apply(self._init_weights)。",
               "hint: pass init_std=config.initializer_range to the embedding and finish with "
               "self.apply(self._init_weights).")
    checked = 0
    for name, p in model.named_parameters():
        if p.dim() == 2:
            checked += 1
            std, mean = float(p.detach().std()), float(p.detach().mean())
            assert abs(std - 0.1) < 0.015 and abs(mean) < 0.01, say(
                f"{name}：均值 {mean:.4f}，标准差 {std:.4f}，应为 0 与 initializer_range = 0.1\n{hint}",
                f"{name}: mean {mean:.4f}, std {std:.4f}; expected 0 and initializer_range = 0.1\n{hint}")
        elif name.endswith("weight"):
            assert bool((p == 1).all()), say(f"{name} 应全为 1", f"{name} should be all ones")
        else:
            assert bool((p == 0).all()), say(f"{name} (偏置) 应全为 0", f"{name} (a bias) should be all zeros")
    assert checked >= 2 * 7 + 1, say(f"只找到 {checked} 个矩阵参数", f"found only {checked} weight matrices")


# ===================================================================== CausalLM.forward


@pytest.mark.symbol("CausalLM.forward")
def test_forward_returns_logits_b_s_v_and_no_loss_or_cache_by_default():
    """``model(ids [2, 5])`` -> ``loss is None``, ``logits [2, 5, 40]`` float32,
    ``past_key_values is None`` (no cache unless asked for)."""
    out = _model()(torch.randint(0, 40, (2, 5)))
    assert out.loss is None, say("没有 labels 时 loss 应为 None", "without labels, loss should be None")
    logits = _tensor(out.logits, "out.logits")
    assert_equal(list(logits.shape), [2, 5, 40], "out.logits.shape ([b, s, V])")
    assert_equal(logits.dtype, torch.float32, "out.logits.dtype")
    assert out.past_key_values is None, say("use_cache=False 时 past_key_values 应为 None",
                                            "with use_cache=False, past_key_values should be None")


@pytest.mark.symbol("CausalLM.forward")
def test_forward_with_use_cache_returns_a_kv_cache_of_every_layer():
    """``use_cache=True`` on 5 tokens: a ``KVCache`` with L = 2 layers, ``get_seq_length() == 5``,
    each layer's keys and values ``[b, g, t, hd] = [2, 2, 5, 8]``."""
    lm = _lm()
    out = _model()(torch.randint(0, 40, (2, 5)), use_cache=True)
    cache = out.past_key_values
    assert isinstance(cache, lm.KVCache), say(
        f"use_cache=True 时 past_key_values 应是 KVCache，实际是 {type(cache).__name__}",
        f"with use_cache=True, past_key_values should be a KVCache, got {type(cache).__name__}")
    assert_equal(len(cache), 2, "len(past_key_values) (layers)")
    assert_equal(cache.get_seq_length(), 5, "past_key_values.get_seq_length()")
    for i in range(2):
        for name, tensor in zip(("k", "v"), (cache.key_cache[i], cache.value_cache[i]), strict=True):
            assert_equal(list(_tensor(tensor, f"layer {i} {name}").shape), [2, 2, 5, 8],
                         f"cached {name} of layer {i} ([b, g, t, hd])")


HINT_LOSS = say(
    "提示：位置 i 预测第 i + 1 个 token：logits[:, :-1] 对 labels[:, 1:]，"
    "F.cross_entropy(..., ignore_index=-100) 对计入的 token 求平均。",
    "hint: position i predicts token i + 1: logits[:, :-1] against labels[:, 1:], "
    "F.cross_entropy(..., ignore_index=-100), averaged over the counted tokens.")


@pytest.mark.symbol("CausalLM.forward")
@pytest.mark.parametrize("ids, labels, bits, wrong", [
    ([[0, 1, 2, 3]], [[0, 1, 2, 3]], 8 / 3,
     {9 / 4: "labels not shifted (logits vs labels)", 2.0: "labels not shifted (logits[:, :-1] vs labels[:, :-1])",
      8.0: "sum instead of mean"}),
    ([[0, 1, 2, 3]], [[0, 1, -100, 3]], 5 / 2,
     {2.0: "-100 counted as token 0", 5 / 3: "divided by every position, -100 included", 5.0: "sum instead of mean"}),
    ([[0, 1, 2, 3], [3, 2, 0, 0]], [[0, 1, 2, 3], [-100, -100, 0, 0]], 2.0,
     {11 / 6: "mean of the per-row means", 10.0: "sum instead of mean"}),
], ids=["shifted", "minus_100_ignored", "mean_over_counted_tokens"])
def test_loss_by_hand_on_the_constant_logits_model(ids, labels, bits, wrong):
    """Constant logits ``[2 ln 2, ln 2, 0, 0]`` (module docstring): token 0, 1, 2, 3 cost
    1, 2, 3, 3 bits. Position i is scored against ``labels[i + 1]``:

    - labels ``[0, 1, 2, 3]``: targets 1, 2, 3 -> (2 + 3 + 3) / 3 = 8/3 bits. Unshifted it
      would be (1 + 2 + 3 + 3) / 4 = 9/4; summed, 8.
    - labels ``[0, 1, -100, 3]``: targets 1, (ignored), 3 -> (2 + 3) / 2 = 5/2 bits; with
      -100 read as token 0 it would be (2 + 1 + 3) / 3 = 2.
    - two rows, the second ``[-100, -100, 0, 0]``: counted targets 1, 2, 3 and 0, 0 ->
      (2 + 3 + 3 + 1 + 1) / 5 = 2 bits (the mean of the row means would be 11/6).
    """
    model = _constant_model(BITS_LOGITS)
    _require_constant_logits(model, BITS_LOGITS, torch.tensor(ids))
    loss = _tensor(model(torch.tensor(ids), labels=torch.tensor(labels)).loss, "loss").detach()
    assert_equal(loss.dim(), 0, "loss.dim() (a scalar)")
    hint = HINT_LOSS
    for value, cause in wrong.items():
        if abs(float(loss) - value * LN2) < 1e-4:
            hint = say(f"你的 loss 正好是“{cause}”时的值。", f"your loss is exactly what '{cause}' gives.") + "\n" + HINT_LOSS
    _close(loss.float(), torch.tensor(bits * LN2), f"loss (in nats; {bits:.4g} bits expected)", hint,
           atol=1e-5, rtol=1e-5)


@pytest.mark.symbol("CausalLM.forward")
def test_loss_is_the_shifted_cross_entropy_of_the_models_own_logits():
    """A perturbed model, ids [3, 9] with some labels -100: ``out.loss`` equals
    ``F.cross_entropy(out.logits[:, :-1] as [3 · 8, V], labels[:, 1:] as [3 · 8], ignore_index=-100)``
    computed here from the same logits (atol = rtol = 1e-5: the same float32 reduction)."""
    model = _model(seed=1)
    ids = torch.randint(0, 40, (3, 9))
    labels = ids.clone()
    labels[0, :4] = -100
    labels[2, -2:] = -100
    out = model(ids, labels=labels)
    logits = _tensor(out.logits, "out.logits").detach()
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, 40).float(), labels[:, 1:].reshape(-1), ignore_index=-100)
    _close(_tensor(out.loss, "loss").detach().float(), expected, "loss vs F.cross_entropy of the shifted logits",
           HINT_LOSS, atol=1e-5, rtol=1e-5)
    assert out.loss.requires_grad, say("loss 应能反向传播 (不要 .item() 或 detach)",
                                       "the loss should be differentiable (no .item() or detach)")


@pytest.mark.symbol("CausalLM.forward")
def test_labels_of_another_shape_are_rejected():
    """labels [2, 4] for input_ids [2, 5]: ValueError naming the shapes."""
    model = _model()
    expect_error(ValueError, lambda: model(torch.randint(0, 40, (2, 5)), labels=torch.zeros(2, 4, dtype=torch.long)),
                 "model(input_ids [2, 5], labels [2, 4])")


@pytest.mark.symbol("CausalLM.forward")
def test_logits_of_the_constant_model_come_through_the_final_norm():
    """The constant-logits model returns ``[3, 2, 1, 0]`` at every position only if ``lm_head``
    reads ``norm(hidden)``: without the final norm, or with the norm elsewhere, the logits
    depend on the tokens."""
    model = _constant_model([3.0, 2.0, 1.0, 0.0])
    logits = _tensor(model(torch.tensor([[0, 1, 2, 3, 3], [2, 2, 0, 1, 3]])).logits, "out.logits")
    _close(logits.detach(), torch.tensor([3.0, 2.0, 1.0, 0.0]).expand(2, 5, 4), "logits of the constant model", say(
        "提示：logits = self.lm_head(self.norm(hidden))：最后一个块之后先归一化再投影到词表。",
        "hint: logits = self.lm_head(self.norm(hidden)): normalise after the last block, then project."),
        atol=1e-6, rtol=1e-6)


# ===================================================================== KVCache


def _hand_kv(offset: float, s: int):
    """k [1, 2, s, 4] = offset + 0, 1, 2, ... (row-major); v = -k."""
    k = offset + torch.arange(2 * s * 4, dtype=torch.float32).view(1, 2, s, 4)
    return k, -k


@pytest.mark.symbol("KVCache.update")
def test_kv_cache_update_appends_new_tokens_after_the_cached_ones():
    """Layer 0 gets 3 tokens, then 1 more: ``update`` returns and stores ``[1, 2, 4, 4]``
    tensors whose first 3 positions (axis 2) are the old keys / values and whose last is the
    new one. Layer 1, never updated, stays empty."""
    cache = _lm().KVCache(2)
    k1, v1 = _hand_kv(0.0, 3)
    k2, v2 = _hand_kv(100.0, 1)
    first = cache.update(0, k1, v1)
    _close(first[0], k1, "keys returned by the first update", "")
    k_all, v_all = cache.update(0, k2, v2)
    hint = say("提示：沿序列维拼接，旧的在前：torch.cat([old, new], dim=2)。",
               "hint: concatenate along the sequence axis, old first: torch.cat([old, new], dim=2).")
    expected_k = torch.empty(1, 2, 4, 4)
    expected_k[:, :, :3], expected_k[:, :, 3:] = k1, k2
    _close(k_all, expected_k, "keys returned after 3 + 1 tokens", hint, atol=0, rtol=0)
    _close(v_all, -expected_k, "values returned after 3 + 1 tokens", hint, atol=0, rtol=0)
    _close(cache.key_cache[0], expected_k, "cache.key_cache[0] (stored)", hint, atol=0, rtol=0)
    _close(cache.value_cache[0], -expected_k, "cache.value_cache[0] (stored)", hint, atol=0, rtol=0)
    assert cache.get(1) is None, say("只更新了第 0 层，第 1 层应仍为空", "only layer 0 was updated: layer 1 should be empty")


@pytest.mark.symbol("KVCache.update")
@pytest.mark.parametrize("layer_idx", [2, -1])
def test_kv_cache_update_rejects_a_layer_index_out_of_range(layer_idx):
    """A 2-layer cache has layers 0 and 1; 2 and -1 (which Python would read as layer 1) raise ValueError."""
    cache = _lm().KVCache(2)
    k, v = _hand_kv(0.0, 1)
    expect_error(ValueError, lambda: cache.update(layer_idx, k, v), f"KVCache(2).update({layer_idx}, k, v)")


@pytest.mark.symbol("KVCache.get_seq_length")
def test_get_seq_length_counts_cached_tokens_not_layers():
    """A 3-layer cache: 0 before anything is cached; 5 after every layer got 5 tokens; 7 after
    2 more. ``get_seq_length(layer_idx)`` looks at that layer: a layer never updated has 0."""
    cache = _lm().KVCache(3)
    hint = say("提示：缓存的 token 数是 key_cache[layer_idx].shape[2] (序列维)，不是层数 len(cache)。",
               "hint: the cached length is key_cache[layer_idx].shape[2] (the sequence axis), not len(cache).")
    _with_hint(lambda: assert_equal(cache.get_seq_length(), 0, "get_seq_length() of an empty cache"), hint)
    k, v = torch.zeros(2, 2, 5, 4), torch.zeros(2, 2, 5, 4)
    cache.update(0, k, v)
    _with_hint(lambda: assert_equal(cache.get_seq_length(1), 0, "get_seq_length(1) when only layer 0 holds tokens"), hint)
    for i in (1, 2):
        cache.update(i, k, v)
    _with_hint(lambda: assert_equal(cache.get_seq_length(), 5, "get_seq_length() after 5 tokens"), hint)
    for i in range(3):
        cache.update(i, k[:, :, :2], v[:, :, :2])
    _with_hint(lambda: assert_equal(cache.get_seq_length(), 7, "get_seq_length() after 5 + 2 tokens"), hint)
    _with_hint(lambda: assert_equal(cache.get_seq_length(2), 7, "get_seq_length(2) after 5 + 2 tokens"), hint)


# ===================================================================== top_k_filter

HINT_TOP_K = say(
    "提示：kth = torch.topk(logits, k, dim=-1).values[..., -1:]，再 masked_fill(logits < kth, -inf)："
    "严格小于第 k 大的值才去掉，与它并列的都保留。",
    "hint: kth = torch.topk(logits, k, dim=-1).values[..., -1:], then masked_fill(logits < kth, -inf): "
    "only logits strictly below the k-th largest go; ties with it stay.")


@pytest.mark.symbol("top_k_filter")
@pytest.mark.parametrize("k, expected", [
    (1, [[INF, 4.0, INF, INF, INF], [INF, INF, INF, INF, 9.0]]),
    (2, [[INF, 4.0, INF, 3.0, INF], [INF, INF, INF, 5.0, 9.0]]),
    (3, [[INF, 4.0, 2.0, 3.0, INF], [INF, -1.0, INF, 5.0, 9.0]]),
], ids=["k1", "k2", "k3"])
def test_top_k_keeps_the_k_largest_logits_of_each_row(k, expected):
    """Rows ``[1, 4, 2, 3, 0]`` and ``[-5, -1, -3, 5, 9]``: k = 1 keeps 4 and 9; k = 2 also 3
    and 5; k = 3 also 2 and -1. Kept logits are unchanged, the rest -inf."""
    logits = torch.tensor([[1.0, 4.0, 2.0, 3.0, 0.0], [-5.0, -1.0, -3.0, 5.0, 9.0]])
    _assert_filtered(_lm().top_k_filter(logits, k), torch.tensor(expected), f"top_k_filter(logits, {k})", HINT_TOP_K)


@pytest.mark.symbol("top_k_filter")
@pytest.mark.parametrize("k, expected", [
    (1, [3.0, INF, 3.0, INF, 3.0]),
    (2, [3.0, INF, 3.0, INF, 3.0]),
    (4, [3.0, INF, 3.0, 2.0, 3.0]),
], ids=["k1", "k2", "k4"])
def test_top_k_keeps_every_logit_tied_with_the_kth(k, expected):
    """``[3, 1, 3, 2, 3]``: the 1st, 2nd and 3rd largest are all 3, so k = 1 and k = 2 keep all
    three 3s (three tokens); k = 4: the 4th largest is 2, keep 3, 3, 2, 3."""
    logits = torch.tensor([[3.0, 1.0, 3.0, 2.0, 3.0]])
    _assert_filtered(_lm().top_k_filter(logits, k), torch.tensor([expected]),
                     f"top_k_filter([3, 1, 3, 2, 3], {k})", HINT_TOP_K)


@pytest.mark.symbol("top_k_filter")
def test_top_k_with_k_at_least_vocab_keeps_everything_and_never_changes_its_input():
    """k = V = 5 and k = 9 return the logits unchanged, as a new tensor; k = 2 leaves the input
    itself untouched (no in-place masked_fill_); k = 0 raises ValueError."""
    top_k_filter = _lm().top_k_filter
    logits = torch.tensor([[1.0, 4.0, 2.0, 3.0, 0.0]])
    before = logits.clone()
    for k in (5, 9):
        _assert_filtered(top_k_filter(logits, k), before, f"top_k_filter(logits, {k}) with V = 5", HINT_TOP_K)
    top_k_filter(logits, 2)
    _assert_filtered(logits, before, "the input after top_k_filter(logits, 2)", say(
        "提示：不要原地修改输入：用 masked_fill (不带下划线)。", "hint: do not modify the input: masked_fill, not masked_fill_."))
    expect_error(ValueError, lambda: top_k_filter(logits, 0), "top_k_filter(logits, 0)")


# ===================================================================== top_p_filter

HINT_TOP_P = say(
    "提示：降序排序 (stable=True)，mass_before = 排在它前面的概率之和 (cumsum 右移一位)，保留 mass_before < p 的 token，"
    "再 scatter 回原位置。这样刚好使累计概率达到 p 的那个 token 保留，之后的去掉。",
    "hint: sort descending (stable=True), mass_before = probability of the tokens before it (cumsum shifted right), "
    "keep mass_before < p, scatter back. The token that brings the mass to p is kept, the next one is not.")


@pytest.mark.symbol("top_p_filter")
@pytest.mark.parametrize("p, kept", [
    (0.25, [0]),
    (0.5, [0, 1]),
    (0.75, [0, 1, 2]),
    (0.7, [0, 1, 2]),
], ids=["p0.25", "p0.5", "p0.75", "p0.7"])
def test_top_p_keeps_the_token_that_brings_the_mass_exactly_to_p(p, kept):
    """Four equal logits: probabilities exactly 1/4 each (exact in every float format), ties
    ordered by token id. Masses before the tokens: 0, 1/4, 1/2, 3/4.

    - p = 1/4: token 0 alone reaches it -> keep {0} (not {0, 1}: 1/4 is not < 1/4).
    - p = 1/2: tokens 0, 1 reach exactly 1/2 -> keep {0, 1}; keeping token 2 too is one too many.
    - p = 3/4 -> {0, 1, 2}; p = 0.7 -> 3/4 is the first mass >= 0.7 -> {0, 1, 2}.
    """
    logits = torch.full((1, 4), 2.0)
    expected = torch.full((1, 4), INF)
    expected[0, kept] = 2.0
    _assert_filtered(_lm().top_p_filter(logits, p), expected, f"top_p_filter([2, 2, 2, 2], {p})", HINT_TOP_P)


@pytest.mark.symbol("top_p_filter")
@pytest.mark.parametrize("p, kept", [
    (0.01, [1]),
    (0.6, [1, 3]),
    (0.8, [0, 1, 3]),
    (0.9, [0, 1, 2, 3]),
], ids=["tiny_p", "p0.6", "p0.8", "p0.9"])
def test_top_p_sorts_by_probability_before_accumulating(p, kept):
    """Probabilities ``[1/8, 1/2, 1/8, 1/4]`` (not sorted): by probability the order is token
    1 (1/2), 3 (1/4), then 0 and 2 (1/8 each, id order), with masses before them 0, 1/2, 3/4, 7/8.

    - p = 0.01: one token, the most likely (1).
    - p = 0.6: {1, 3} (mass 3/4 >= 0.6). Without sorting, the cumulative sum in id order
      (1/8, 5/8, ...) would keep {0, 1} instead.
    - p = 0.8: {1, 3, 0}; p = 0.9: all four (7/8 < 0.9).
    """
    logits = torch.tensor([[0.125, 0.5, 0.125, 0.25]]).log()
    expected = torch.full((1, 4), INF)
    expected[0, kept] = logits[0, kept]
    _assert_filtered(_lm().top_p_filter(logits, p), expected, f"top_p_filter(log [1/8, 1/2, 1/8, 1/4], {p})",
                     HINT_TOP_P)


@pytest.mark.symbol("top_p_filter")
def test_top_p_of_one_keeps_everything_and_never_changes_its_input():
    """p = 1 returns the logits unchanged; p = 0.3 leaves the input itself untouched; p = 0
    raises ValueError."""
    top_p_filter = _lm().top_p_filter
    logits = torch.tensor([[1.0, 4.0, 2.0, 3.0, 0.0]])
    before = logits.clone()
    _assert_filtered(top_p_filter(logits, 1.0), before, "top_p_filter(logits, 1.0)", HINT_TOP_P)
    top_p_filter(logits, 0.3)
    _assert_filtered(logits, before, "the input after top_p_filter(logits, 0.3)", say(
        "提示：不要原地修改输入。", "hint: do not modify the input in place."))
    expect_error(ValueError, lambda: top_p_filter(logits, 0.0), "top_p_filter(logits, 0.0)")


# ===================================================================== apply_repetition_penalty

HINT_PENALTY = say(
    "提示：只处理 input_ids 中出现过的 token (每个 id 只罚一次)：正 logit 除以 penalty，负 logit 乘以 penalty "
    "(两种情况都变小)；attention_mask 为 0 的位置不算出现。",
    "hint: only tokens present in input_ids, each once: a positive logit is divided by the penalty, a negative one "
    "multiplied (both move down); positions with attention_mask 0 do not count.")


@pytest.mark.symbol("apply_repetition_penalty")
def test_repetition_penalty_divides_positive_and_multiplies_negative_logits_of_seen_tokens():
    """Both rows have logits ``[2, -2, 1, -1, 0.5]``, penalty 2.

    - Row 0 saw ``[0, 1, 1]``: token 0: 2 / 2 = 1; token 1 (seen twice, penalised once):
      -2 · 2 = -4; tokens 2, 3, 4 unchanged -> ``[1, -4, 1, -1, 0.5]``.
    - Row 1 saw ``[3, 4, 4]``: -1 · 2 = -2 and 0.5 / 2 = 0.25 -> ``[2, -2, 1, -2, 0.25]``.

    Dividing -2 by 2 would give -1: *more* likely, the opposite of a penalty.
    """
    logits = torch.tensor([[2.0, -2.0, 1.0, -1.0, 0.5]] * 2)
    ids = torch.tensor([[0, 1, 1], [3, 4, 4]])
    out = _lm().apply_repetition_penalty(logits, ids, 2.0)
    expected = torch.tensor([[1.0, -4.0, 1.0, -1.0, 0.5], [2.0, -2.0, 1.0, -2.0, 0.25]])
    _close(_tensor(out, "apply_repetition_penalty(...)"), expected, "penalised logits (penalty 2)", HINT_PENALTY,
           atol=1e-6, rtol=1e-6)
    _close(logits, torch.tensor([[2.0, -2.0, 1.0, -1.0, 0.5]] * 2), "the input after the call", say(
        "提示：不要原地修改输入。", "hint: do not modify the input in place."), atol=0, rtol=0)


@pytest.mark.symbol("apply_repetition_penalty")
def test_repetition_penalty_ignores_padding_positions():
    """``input_ids [[2, 0, 3]]`` with ``attention_mask [[0, 1, 1]]``: token 2 only appears in the
    padding, so it is not penalised; tokens 0 and 3 are. Logits ``[4, 4, 4, 4]``, penalty 4 ->
    ``[1, 4, 4, 1]``. Row 1, ``[3, 3, 1]`` with mask ``[0, 1, 1]``: 3 appears in the padding
    *and* in the text, so it counts -> ``[4, 1, 4, 1]``."""
    logits = torch.full((2, 4), 4.0)
    out = _lm().apply_repetition_penalty(logits, torch.tensor([[2, 0, 3], [3, 3, 1]]), 4.0,
                                         attention_mask=torch.tensor([[0, 1, 1], [0, 1, 1]]))
    _close(_tensor(out, "apply_repetition_penalty(..., attention_mask)"),
           torch.tensor([[1.0, 4.0, 4.0, 1.0], [4.0, 1.0, 4.0, 1.0]]), "penalised logits with left padding",
           HINT_PENALTY, atol=1e-6, rtol=1e-6)


@pytest.mark.symbol("apply_repetition_penalty")
def test_repetition_penalty_of_one_changes_nothing_and_zero_is_rejected():
    """penalty 1.0 returns the logits unchanged; penalty 0 and -1 raise ValueError."""
    penalty = _lm().apply_repetition_penalty
    logits = torch.tensor([[2.0, -2.0, 1.0]])
    ids = torch.tensor([[0, 1, 2]])
    _close(_tensor(penalty(logits, ids, 1.0), "apply_repetition_penalty(..., 1.0)"), logits, "penalty 1.0",
           HINT_PENALTY, atol=0, rtol=0)
    for bad in (0.0, -1.0):
        expect_error(ValueError, lambda bad=bad: penalty(logits, ids, bad), f"apply_repetition_penalty(..., {bad})")


# ===================================================================== sample_next_token


@pytest.mark.symbol("sample_next_token")
@pytest.mark.parametrize("kwargs", [
    {},
    {"do_sample": False, "temperature": 0.3, "top_k": 2, "top_p": 0.1},
    {"do_sample": True, "temperature": 0.0},
], ids=["default", "greedy_ignores_filters", "temperature_0"])
def test_greedy_decoding_is_the_argmax(kwargs):
    """64 random rows of 50 logits: ``do_sample=False`` (the default; temperature, top-k and
    top-p then change nothing) and ``temperature=0`` both return ``logits.argmax(-1)``:
    int64, shape [64]."""
    logits = torch.randn(64, 50) * 2
    out = _tensor(_lm().sample_next_token(logits, **kwargs), f"sample_next_token(logits, {kwargs})")
    hint = say("提示：贪心 (do_sample=False 或 temperature == 0) 直接 return logits.argmax(dim=-1)，不采样。",
               "hint: greedy (do_sample=False or temperature == 0) returns logits.argmax(dim=-1), no sampling.")
    assert_equal(out.dtype, torch.int64, "token dtype")
    _same_rows(out[None], logits.argmax(-1)[None], f"sample_next_token(logits, {kwargs})", hint)


@pytest.mark.symbol("sample_next_token")
def test_greedy_decoding_applies_the_repetition_penalty_first():
    """Logits ``[3, 2.9, 0]``, token 0 already seen, penalty 2: 3 / 2 = 1.5 < 2.9, so the argmax
    moves to token 1. Without ``input_ids`` (or with penalty 1) it stays token 0."""
    sample = _lm().sample_next_token
    logits = torch.tensor([[3.0, 2.9, 0.0]])
    hint = say("提示：先 apply_repetition_penalty，再 argmax。", "hint: apply_repetition_penalty first, then the argmax.")
    _same_rows(sample(logits, torch.tensor([[0]]), repetition_penalty=2.0)[None], torch.tensor([[1]]),
               "greedy token with penalty 2 after token 0", hint)
    _same_rows(sample(logits, None, repetition_penalty=2.0)[None], torch.tensor([[0]]),
               "greedy token without input_ids", hint)


@pytest.mark.symbol("sample_next_token")
@pytest.mark.parametrize("kwargs", [{"top_k": 1}, {"top_p": 0.01}, {"temperature": 1e-3}],
                         ids=["top_k_1", "tiny_top_p", "tiny_temperature"])
def test_sampling_with_a_single_candidate_returns_the_argmax(kwargs):
    """``do_sample=True`` over 256 rows, each a shuffle of ``0, 0.1, ..., 2.9``: top_k = 1 and a
    tiny top_p leave one candidate; temperature 1e-3 divides the logits by 1e-3, so the
    runner-up (0.1 lower) is e^-100 times less likely. Every draw is the argmax."""
    logits = torch.argsort(torch.rand(256, 30), dim=-1).float() * 0.1
    generator = torch.Generator().manual_seed(1)
    out = _lm().sample_next_token(logits, do_sample=True, generator=generator, **kwargs)
    _same_rows(_tensor(out, "sampled tokens")[None], logits.argmax(-1)[None], f"tokens sampled with {kwargs}", say(
        "提示：顺序是 温度 (logits / temperature，除而不是乘) -> top-k -> top-p -> softmax -> torch.multinomial。",
        "hint: the order is temperature (logits / temperature: divide, not multiply) -> top-k -> top-p -> softmax "
        "-> torch.multinomial."))


@pytest.mark.symbol("sample_next_token")
def test_temperature_is_applied_before_top_p():
    """Probabilities ``[0.5, 0.3, 0.2]``, temperature 0.5, top_p 0.6.

    Dividing the logits by 0.5 squares the probabilities: ``[0.25, 0.09, 0.04] / 0.38 =
    [0.658, 0.237, 0.105]``; token 0 alone reaches 0.6, so every draw is token 0. Filtering
    first (0.5 < 0.6 keeps tokens 0 and 1) and scaling afterwards would draw token 1 about a
    quarter of the time; so would multiplying by the temperature. 1000 seeded draws.
    """
    logits = torch.tensor([[0.5, 0.3, 0.2]]).log().expand(1000, 3)
    out = _lm().sample_next_token(logits, do_sample=True, temperature=0.5, top_p=0.6,
                                  generator=torch.Generator().manual_seed(2))
    out = _tensor(out, "sampled tokens")
    counts = torch.bincount(out, minlength=3).tolist()
    assert counts[0] == 1000, say(
        f"1000 次采样中各 token 的次数 {counts}：应全部是 token 0。先除以温度再做 top-k / top-p "
        "(top-p 看的是缩放后的分布)。",
        f"token counts in 1000 draws: {counts}; every draw should be token 0. Divide by the temperature first, "
        "then top-k / top-p (top-p sees the scaled distribution).")


@pytest.mark.symbol("sample_next_token")
def test_negative_temperature_is_rejected():
    """temperature -1: ValueError (0 means greedy; negative has no meaning)."""
    sample = _lm().sample_next_token
    expect_error(ValueError, lambda: sample(torch.randn(2, 5), do_sample=True, temperature=-1.0),
                 "sample_next_token(..., temperature=-1.0)")


# ===================================================================== CausalLM._next_token_logits


@pytest.mark.symbol("CausalLM._next_token_logits")
def test_next_token_logits_without_cache_are_the_last_position_of_a_full_forward():
    """``_next_token_logits(ids [2, 6], None, None, use_cache=False)`` returns
    ``(model(ids).logits[:, -1] as float32 [2, V], None)``."""
    model = _model()
    ids = torch.randint(0, 40, (2, 6))
    logits, cache = model._next_token_logits(ids, None, None, False)
    with torch.no_grad():
        expected = model(ids).logits[:, -1].float()
    _close(_tensor(logits, "logits").detach(), expected, "next-token logits without cache", say(
        "提示：不用缓存时 out = self(input_ids, attention_mask=...)，取 out.logits[:, -1, :].float()。",
        "hint: without a cache, out = self(input_ids, attention_mask=...), return out.logits[:, -1, :].float()."),
        atol=1e-6, rtol=1e-6)
    assert cache is None, say("use_cache=False 时第二个返回值应为 None", "with use_cache=False the second value should be None")


@pytest.mark.symbol("CausalLM._next_token_logits")
def test_next_token_logits_prefill_builds_a_cache_of_the_whole_prompt():
    """First cached step (no cache yet) on a 6-token prompt: a ``KVCache`` holding 6 tokens,
    and the same logits as without the cache."""
    model = _model()
    ids = torch.randint(0, 40, (2, 6))
    logits, cache = model._next_token_logits(ids, None, None, True)
    with torch.no_grad():
        expected = model(ids).logits[:, -1].float()
    hint = say("提示：第一步 (past_key_values 为 None) 用 self(input_ids, ..., use_cache=True) 处理整个提示。",
               "hint: the first step (past_key_values None) runs self(input_ids, ..., use_cache=True) on the whole prompt.")
    assert isinstance(cache, _lm().KVCache), say(f"应返回 KVCache，实际是 {type(cache).__name__}\n{hint}",
                                                 f"should return a KVCache, got {type(cache).__name__}\n{hint}")
    _with_hint(lambda: assert_equal(cache.get_seq_length(), 6, "cached tokens after the prefill"), hint)
    _close(_tensor(logits, "logits").detach(), expected, "next-token logits of the prefill", hint, atol=1e-5, rtol=1e-5)


@pytest.mark.symbol("CausalLM._next_token_logits")
def test_next_token_logits_after_the_prefill_add_one_token_to_the_cache():
    """Prefill 5 tokens, then call again with all 6 tokens so far and the cache: only the new
    (6th) token is fed, so the cache grows from 5 to 6 (feeding all 6 again would make it 11)
    and the logits equal those of a full forward over the 6 tokens."""
    model = _model()
    ids = torch.randint(0, 40, (2, 6))
    _, cache = model._next_token_logits(ids[:, :5], None, None, True)
    logits, cache = model._next_token_logits(ids, None, cache, True)
    with torch.no_grad():
        expected = model(ids).logits[:, -1].float()
    hint = say("提示：之后每步只送最后一个 token：self(input_ids[:, -1:], attention_mask=..., past_key_values=cache, "
               "use_cache=True)。", "hint: after the prefill feed only the last token: self(input_ids[:, -1:], "
               "attention_mask=..., past_key_values=cache, use_cache=True).")
    _with_hint(lambda: assert_equal(cache.get_seq_length(), 6, "cached tokens after the prefill (5) and one step"), hint)
    _close(_tensor(logits, "logits").detach(), expected, "next-token logits of the cached step", hint,
           atol=1e-4, rtol=1e-4)


# ===================================================================== CausalLM.generate


@pytest.mark.symbol("CausalLM.generate")
def test_generate_returns_prompt_then_max_new_tokens_new_tokens():
    """No eos: ``generate(prompt [2, 4], max_new_tokens=5)`` -> int64 ``[2, 9]`` whose first 4
    columns are the prompt; ``max_new_tokens=0`` returns the prompt itself."""
    model = _model()
    prompt = torch.randint(0, 40, (2, 4))
    out = _tensor(model.generate(prompt, max_new_tokens=5), "generate(...)")
    hint = say("提示：循环 max_new_tokens 次，每次把新 token 拼到末尾：torch.cat([tokens, next_tokens[:, None]], dim=1)。",
               "hint: loop max_new_tokens times, appending each new token: torch.cat([tokens, next_tokens[:, None]], dim=1).")
    assert_equal(out.dtype, torch.int64, "generate(...).dtype")
    _with_hint(lambda: assert_equal(list(out.shape), [2, 9], "generate(prompt [2, 4], max_new_tokens=5).shape"), hint)
    _same_rows(out[:, :4], prompt, "the first 4 columns (the prompt)", hint)
    _same_rows(model.generate(prompt, max_new_tokens=0), prompt, "generate(prompt, max_new_tokens=0)", hint)


@pytest.mark.symbol("CausalLM.generate")
def test_generate_by_hand_on_the_constant_model_with_a_repetition_penalty():
    """Constant logits ``[3, 2, 1, 0]``, greedy, repetition penalty 10 (seen positive logits
    become 0.3, 0.2, 0.1; 0 stays 0), so each row takes the best token it has not seen:

    - prompt ``[3, 3]`` -> 0, then 1, then 2;
    - prompt ``[0, 3]`` -> 1, then 2, then (all seen: [0.3, 0.2, 0.1, 0]) 0;
    - prompt ``[1, 0]`` -> 2, then 0, 0, ...

    Without eos and ``max_new_tokens=4`` every row gets 4 tokens.
    """
    model = _constant_model([3.0, 2.0, 1.0, 0.0])
    prompt = torch.tensor([[3, 3], [0, 3], [1, 0]])
    _require_constant_logits(model, [3.0, 2.0, 1.0, 0.0], prompt)
    out = model.generate(prompt, max_new_tokens=4, repetition_penalty=10.0)
    expected = torch.tensor([[3, 3, 0, 1, 2, 0], [0, 3, 1, 2, 0, 0], [1, 0, 2, 0, 0, 0]])
    _same_rows(out, expected, "greedy generation on the constant model", say(
        "提示：每步 sample_next_token(logits, tokens, mask, ...) 要拿到目前为止的全部 token (提示 + 已生成) 来做重复惩罚。",
        "hint: every step passes all tokens so far (prompt + generated) to sample_next_token for the repetition penalty."))


@pytest.mark.symbol("CausalLM.generate")
@pytest.mark.parametrize("pad_token_id, pad", [(3, 3), (None, 2)], ids=["pad_3", "pad_defaults_to_eos"])
def test_generate_stops_each_row_at_eos_and_pads_it(pad_token_id, pad):
    """The previous case with ``eos_token_id=2`` and ``max_new_tokens=6``: row 2 produces 2 at
    step 1, row 1 at step 2, row 0 at step 3. A finished row gets ``pad_token_id`` (default:
    the eos id) and generation stops once every row is finished: 3 new tokens, not 6::

        [3, 3, 0, 1, 2]
        [0, 3, 1, 2, P]
        [1, 0, 2, P, P]
    """
    model = _constant_model([3.0, 2.0, 1.0, 0.0])
    prompt = torch.tensor([[3, 3], [0, 3], [1, 0]])
    _require_constant_logits(model, [3.0, 2.0, 1.0, 0.0], prompt)
    out = model.generate(prompt, max_new_tokens=6, repetition_penalty=10.0,
                         eos_token_id=2, pad_token_id=pad_token_id)
    p = pad
    expected = torch.tensor([[3, 3, 0, 1, 2], [0, 3, 1, 2, p], [1, 0, 2, p, p]])
    _same_rows(out, expected, f"generation with eos 2, pad_token_id={pad_token_id}", say(
        "提示：unfinished = unfinished & (next_tokens != eos)；已结束的行写 pad：torch.where(unfinished, next_tokens, pad)；"
        "所有行都结束就 break。",
        "hint: unfinished = unfinished & (next_tokens != eos); finished rows get the pad: "
        "torch.where(unfinished, next_tokens, pad); break once no row is unfinished."))


@pytest.mark.symbol("CausalLM.generate")
def test_generate_runs_in_eval_mode_and_restores_training_mode():
    """Dropout 0.3 everywhere, model in train mode: two greedy generations are identical (no
    dropout while generating), equal to generating in eval mode, and the model is back in
    train mode afterwards."""
    model = _model(hidden_dropout=0.3, attention_dropout=0.3)
    prompt = torch.randint(0, 40, (2, 4))
    expected = model.generate(prompt, max_new_tokens=8)
    model.train()
    hint = say("提示：was_training = self.training；self.eval()；try: ... finally: self.train(was_training)。",
               "hint: was_training = self.training; self.eval(); try: ... finally: self.train(was_training).")
    _same_rows(model.generate(prompt, max_new_tokens=8), expected, "greedy generation in train mode", hint)
    _same_rows(model.generate(prompt, max_new_tokens=8), expected, "a second greedy generation in train mode", hint)
    assert model.training, say(f"generate 之后模型应回到训练模式\n{hint}", f"after generate the model should be in train mode again\n{hint}")


@pytest.mark.symbol("CausalLM.generate")
def test_generate_rejects_right_padding():
    """A mask with a 0 after a 1 (right padding) would make the model continue after a pad:
    ValueError asking for left padding. Left padding is accepted."""
    model = _model()
    prompt = torch.randint(0, 40, (2, 4))
    expect_error(ValueError, lambda: model.generate(prompt, attention_mask=torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]),
                                                    max_new_tokens=2), "generate with right padding")
    out = model.generate(prompt, attention_mask=torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]]), max_new_tokens=2)
    assert_equal(list(_tensor(out, "generate(...)").shape), [2, 6], "generate with left padding: shape")
