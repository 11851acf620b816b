"""Lesson 05, advanced tier: the whole model against the reference, the KV cache, generation, sampling.

Expected values come from three places, never from outputs pasted into this file:

- **the reference library** (``intro2llm``): the learner's ``CausalLM`` loads the state dict
  of a reference model whose weights are random and far from the init (``_perturb``:
  matrices N(0, (2 / sqrt(fan_in))^2), norms 1 + N(0, 0.2^2)), so the logits spread over a
  few units instead of sitting near 0, and must give the same logits, loss, gradients,
  caches and generated tokens. When the logits differ, ``first_divergence`` names the first
  submodule whose output differs (everything before it matches);
- **properties of the learner's own model**: cached decoding equals full recomputation;
  generation with and without the cache agree; a left-padded batch generates what each
  prompt generates alone; greedy tokens are the argmax of the logits;
- **oracles written here with plain loops** for the sampling filters and for the exact
  distribution that ``sample_next_token`` should draw from (20 000 seeded draws, compared
  by total-variation distance).

Configurations (``CONFIGS``): V = 96, d = 32, L = 2, 4 query heads (hd = 8) with
g = 2 (GQA), 4 (MHA) or 1 (MQA) key/value heads; RMSNorm or LayerNorm; SwiGLU, GeGLU or
GELU; tied or separate ``lm_head``.

Tolerances (``atol + rtol · |expected|``):

- logits, float32, ``atol = rtol = 1e-4`` (``LOGITS``): logits are O(1-10) after two
  blocks; two correct implementations differ only in summation order, fused kernels (SDPA
  with or without a mask) and where a cast happens, ~1e-6. Every wrong formula (missing
  norm, unshifted or wrong positions, a mask that leaks) moves them by 1e-1 or more.
- loss, ``atol = rtol = 1e-5`` (``LOSS``): a mean of O(1) cross-entropies of the same logits.
- gradients, ``atol = 1e-5, rtol = 1e-4`` (``GRAD``): sums over batch and positions of
  products of the above; entries are O(1e-3-1e-1).
- filters and the repetition penalty: exact (``atol = rtol = 0`` on the kept values, the
  same -inf pattern): they only select, divide or multiply.
- sampling: total-variation distance < 0.02 over 20 000 draws; the expected distance of a
  correct sampler is ~0.006 (sum over tokens of sqrt(2 p (1 - p) / (pi N)), halved).

Greedy generation compares token ids exactly: with these weights the top two logits are
never within float32 noise of each other, and everything is seeded.
"""

from __future__ import annotations

import math

import pytest
import torch

from intro2llm_cli.divergence import first_divergence
from intro2llm_cli.testkit import (
    assert_close,
    assert_equal,
    assert_same_sequence,
    learner,
    reference,
    say,
)

LOGITS = {"atol": 1e-4, "rtol": 1e-4}
LOSS = {"atol": 1e-5, "rtol": 1e-5}
GRAD = {"atol": 1e-5, "rtol": 1e-4}
V = 96
INF = float("-inf")

CONFIGS = {
    "gqa_rmsnorm_swiglu": dict(num_key_value_heads=2),
    "mha_rmsnorm_swiglu_tied": dict(num_key_value_heads=4, tie_word_embeddings=True),
    "mqa_layernorm_gelu": dict(num_key_value_heads=1, norm_type="layernorm", ffn_type="gelu"),
    "gqa_layernorm_geglu_tied": dict(num_key_value_heads=2, norm_type="layernorm", ffn_type="geglu",
                                     tie_word_embeddings=True),
}
CONFIG_IDS = list(CONFIGS)


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


def _params(**overrides):
    params = dict(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return {**params, **overrides}


def _perturb(model, seed: int):
    """Matrices N(0, (2 / sqrt(fan_in))^2); norm weights 1 + N(0, 0.2^2); biases N(0, 0.2^2)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if p.dim() == 1:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * noise)
            else:
                p.copy_(noise * 2.0 / math.sqrt(p.shape[1]))
    return model


def _reference_model(config: str = "gqa_rmsnorm_swiglu", seed: int = 1234, **overrides):
    ref_config = reference("model.config").ModelConfig(**_params(**{**CONFIGS[config], **overrides}))
    return _perturb(reference("model.causal_lm").CausalLM(ref_config), seed).eval()


def _pair(config: str = "gqa_rmsnorm_swiglu", seed: int = 1234, **overrides):
    """(learner model, reference model) in eval mode with the same perturbed weights."""
    ref = _reference_model(config, seed, **overrides)
    mine = _lm().CausalLM(learner("model.config").ModelConfig(**_params(**{**CONFIGS[config], **overrides})))
    try:
        mine.load_state_dict(ref.state_dict())
    except RuntimeError as exc:
        raise AssertionError(say(
            f"无法载入参考模型的权重 (名字应为 embed_tokens / layers.i.* / norm / lm_head)：{exc}",
            f"cannot load the reference model's weights (names embed_tokens / layers.i.* / norm / lm_head): {exc}",
        )) from None
    return mine.eval(), ref


def _where(mine, ref, inputs: dict) -> str:
    """``first_divergence(...).describe()``, or a line saying every submodule agrees."""
    try:
        found = first_divergence(mine, ref, inputs, **LOGITS)
    except Exception as exc:  # the learner's forward itself fails on these inputs
        return say(f"(无法逐个子模块比较：{type(exc).__name__}: {exc})",
                   f"(could not compare submodule by submodule: {type(exc).__name__}: {exc})")
    if found is not None:
        return found.describe()
    return say("逐个子模块比较：在这组输入上 (不带缓存的一次前向) 每个子模块的输出都与参考实现一致，所以差别出在子模块之外："
               "CausalLM 自己的步骤 (位置 position_ids、掩码、缓存的读写、loss、权重共享或生成循环)。",
               "submodule by submodule, every output matches the reference on these inputs (one forward without a "
               "cache), so the difference lies outside them: in CausalLM's own steps (position_ids, the mask, reading / "
               "writing the cache, the loss, weight tying, or the generation loop).")


def _model_close(actual, expected, what, mine, ref, inputs, hint="", **tolerance):
    """``assert_close``; on failure the message adds where the two models first diverge on
    ``inputs`` (a plain forward without a cache) and ``hint``."""
    try:
        assert_close(actual, expected, what, **(tolerance or LOGITS))
    except AssertionError as exc:
        raise AssertionError("\n".join(x for x in (str(exc), _where(mine, ref, inputs), hint) if x)) from None


def _close(actual, expected, what, hint="", **tolerance):
    assert_close(actual, expected, what, hint=hint, **(tolerance or LOGITS))


def _same_tokens(actual, expected, what, hint="", extra=None):
    """Token tensors [b, n], row by row; ``extra()`` (called on failure only) adds a line."""
    if not isinstance(actual, torch.Tensor):
        raise AssertionError(say(f"{what} 应是 torch.Tensor，实际是 {type(actual).__name__}",
                                 f"{what} should be a torch.Tensor, got {type(actual).__name__}"))
    try:
        assert_equal(list(actual.shape), list(expected.shape), f"{what}.shape")
        for row, (got, want) in enumerate(zip(actual.tolist(), expected.tolist(), strict=True)):
            assert_same_sequence(got, want, f"{what}, row {row}")
    except AssertionError as exc:
        lines = [str(exc)] + ([extra()] if extra else []) + ([hint] if hint else [])
        raise AssertionError("\n".join(lines)) from None


def _logits(model, **inputs):
    with torch.no_grad():
        return model(**inputs).logits


def _left_pad(prompts: list[list[int]], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists to one length: (input_ids [b, t], attention_mask [b, t])."""
    t = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (t - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (t - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


HINT_MODEL = say(
    "提示：embed_tokens -> 每个 layer(hidden, mask, position_ids, ...) -> norm -> lm_head；"
    "掩码用 prepare_attention_mask 构造一次，所有层共用。",
    "hint: embed_tokens -> every layer(hidden, mask, position_ids, ...) -> norm -> lm_head; build the mask once "
    "with prepare_attention_mask and share it across layers.")
HINT_PADDING = say(
    "提示：有 attention_mask 时 position_ids = mask.cumsum(-1) - 1 (pad 处填 1)，取最后 s 列："
    "左填充的行从第一个真实 token 开始数 0，用缓存的步骤也一样 (mask 覆盖缓存 + 新 token)。"
    "左填充的位置不是从掩码得到的？pad 有没有被 prepare_attention_mask 遮住？",
    "hint: with an attention_mask, position_ids = mask.cumsum(-1) - 1 (pads set to 1), last s columns: a left-padded "
    "row counts 0 from its first real token, in cached steps too (the mask covers cached + new tokens). Are the "
    "left-padding positions not taken from the mask? Are the pads hidden by prepare_attention_mask?")
HINT_CACHE = say(
    "提示：past_len = past_key_values.get_seq_length()；没有 mask 时 position_ids = arange(past_len, past_len + s) "
    "(缓存之后位置从 0 重新开始了？)；每层只把新的部分存进缓存：update(i, present[0][:, :, past_len:], ...)。",
    "hint: past_len = past_key_values.get_seq_length(); without a mask position_ids = arange(past_len, past_len + s) "
    "(do positions restart at 0 after the cache?); each layer stores only the new part: "
    "update(i, present[0][:, :, past_len:], ...).")
HINT_GENERATE = say(
    "提示：用缓存时第一步送整个提示，之后每步只送最后一个 token (input_ids[:, -1:]) 和完整的 mask；"
    "不用缓存时每步送整个序列。",
    "hint: with the cache, the first step feeds the whole prompt and every later step only the last token "
    "(input_ids[:, -1:]) with the full mask; without the cache every step feeds the whole sequence.")


# ===================================================================== the model vs the reference


@pytest.mark.symbol("CausalLM.forward")
@pytest.mark.parametrize("config", CONFIG_IDS)
def test_logits_match_the_reference_with_the_same_weights(config):
    """Random ids [3, 9], no mask: the learner's logits equal the reference's (LOGITS)."""
    mine, ref = _pair(config)
    inputs = {"input_ids": torch.randint(0, V, (3, 9))}
    _model_close(_logits(mine, **inputs), _logits(ref, **inputs), f"logits ({config})", mine, ref, inputs, HINT_MODEL)


@pytest.mark.symbol("CausalLM.forward")
@pytest.mark.parametrize("config", ["gqa_rmsnorm_swiglu", "mqa_layernorm_gelu"])
def test_logits_with_left_padding_match_the_reference_on_real_tokens(config):
    """Prompts of 8, 5 and 2 tokens left-padded to 8: the logits of the real tokens equal the
    reference's (pad positions are free: no loss or generation reads them)."""
    mine, ref = _pair(config)
    ids, mask = _left_pad([torch.randint(1, V, (n,)).tolist() for n in (8, 5, 2)])
    inputs = {"input_ids": ids, "attention_mask": mask}
    real = mask.bool()
    _model_close(_logits(mine, **inputs)[real], _logits(ref, **inputs)[real], f"logits of real tokens ({config})",
                 mine, ref, inputs, HINT_PADDING)


@pytest.mark.symbol("CausalLM.forward")
def test_left_padded_prompt_has_the_logits_of_the_prompt_alone():
    """A 4-token prompt behind 3 pads, in a batch with an unpadded 7-token row: its logits equal
    those of the prompt run alone without a mask: the pads must be hidden from attention.
    (RoPE sees only position differences, so a whole row shifted by its pad count would
    still pass here; the cached and generation tests catch positions that jump mid-row.)"""
    mine, ref = _pair()
    prompt = torch.randint(1, V, (4,)).tolist()
    ids, mask = _left_pad([torch.randint(1, V, (7,)).tolist(), prompt])
    padded = _logits(mine, input_ids=ids, attention_mask=mask)[1, 3:]
    alone = _logits(mine, input_ids=torch.tensor([prompt]))[0]
    _model_close(padded, alone, "logits of a left-padded prompt vs the prompt alone", mine, ref,
                 {"input_ids": ids, "attention_mask": mask}, HINT_PADDING)


@pytest.mark.symbol("CausalLM.forward")
@pytest.mark.parametrize("config", CONFIG_IDS)
def test_loss_matches_the_reference(config):
    """Random ids [3, 10], labels = ids with -100 on a prompt part and at the end: the loss
    equals the reference's (LOSS)."""
    mine, ref = _pair(config)
    ids = torch.randint(0, V, (3, 10))
    labels = ids.clone()
    labels[0, :5] = -100
    labels[1, -3:] = -100
    with torch.no_grad():
        got, want = mine(ids, labels=labels).loss, ref(ids, labels=labels).loss
    if not isinstance(got, torch.Tensor):
        raise AssertionError(say(f"有 labels 时 loss 应是张量，实际是 {type(got).__name__}",
                                 f"with labels, the loss should be a tensor, got {type(got).__name__}"))
    _model_close(got.float(), want, f"loss ({config})", mine, ref, {"input_ids": ids}, say(
        "提示：shift_logits = logits[:, :-1]，shift_labels = labels[:, 1:]，F.cross_entropy(..., ignore_index=-100) "
        "对计入的 token 求平均。",
        "hint: shift_logits = logits[:, :-1], shift_labels = labels[:, 1:], F.cross_entropy(..., ignore_index=-100), "
        "the mean over counted tokens."), **LOSS)


@pytest.mark.symbol("CausalLM.__init__")
@pytest.mark.parametrize("config", ["gqa_rmsnorm_swiglu", "mha_rmsnorm_swiglu_tied"])
def test_loss_gradients_match_the_reference(config):
    """Backward of the loss on ids [2, 8]: every parameter's gradient equals the reference's
    (GRAD). With tied weights the embedding gets the sum of the two uses' gradients, which
    only happens when ``lm_head.weight`` *is* ``embed_tokens.weight``."""
    mine, ref = _pair(config)
    ids = torch.randint(0, V, (2, 8))
    for model in (mine, ref):
        model.zero_grad()
        model(ids, labels=ids).loss.backward()
    ref_grads = dict(ref.named_parameters())
    for name, p in mine.named_parameters():
        assert p.grad is not None, say(f"{name} 没有梯度", f"{name} has no gradient")
        _model_close(p.grad, ref_grads[name].grad, f"gradient of {name} ({config})", mine, ref, {"input_ids": ids},
                     say("提示：tie_word_embeddings 时要共享同一个 Parameter (不是拷贝)，两处用法的梯度才会相加。",
                         "hint: with tie_word_embeddings share one Parameter (not a copy), so both uses' gradients add up."),
                     **GRAD)


# ===================================================================== the KV cache


@pytest.mark.symbol("CausalLM.forward")
@pytest.mark.parametrize("padded", [False, True], ids=["no_pad", "left_pad"])
@pytest.mark.parametrize("chunks", [[4, 1, 1, 1, 1], [3, 2, 3]], ids=["prefill_then_tokens", "chunks_3_2_3"])
@pytest.mark.parametrize("config", ["gqa_rmsnorm_swiglu", "mha_rmsnorm_swiglu_tied"])
def test_cached_decoding_logits_equal_full_recomputation(config, chunks, padded):
    """Feed 8 tokens in pieces, passing the returned ``past_key_values`` back (and, when padded,
    the mask over cached + new tokens): after each piece the cache holds every token so far,
    and the pieces' logits equal one full forward of the learner's model and the reference's
    (real tokens only)."""
    mine, ref = _pair(config)
    b, total = 3, sum(chunks)
    if padded:
        ids, mask = _left_pad([torch.randint(1, V, (n,)).tolist() for n in (8, 6, 3)])
    else:
        ids, mask = torch.randint(0, V, (b, total)), None
    full_inputs = {"input_ids": ids} if mask is None else {"input_ids": ids, "attention_mask": mask}
    cache, start, pieces = None, 0, []
    with torch.no_grad():
        for n in chunks:
            piece_mask = None if mask is None else mask[:, : start + n]
            out = mine(ids[:, start : start + n], attention_mask=piece_mask, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            assert cache is not None, say("use_cache=True 时应返回 past_key_values", "use_cache=True should return past_key_values")
            assert_equal(cache.get_seq_length(), start + n, f"cached tokens after {start + n} tokens")
            pieces.append(out.logits)
            start += n
    real = mask.bool() if padded else torch.ones(b, total, dtype=torch.bool)
    cached = torch.cat(pieces, dim=1)[real]
    _model_close(cached, _logits(mine, **full_inputs)[real], f"logits decoded in chunks {chunks} vs one full pass",
                 mine, ref, full_inputs, HINT_CACHE)
    _model_close(cached, _logits(ref, **full_inputs)[real], f"logits decoded in chunks {chunks} vs the reference",
                 mine, ref, full_inputs, HINT_CACHE)


@pytest.mark.symbol("CausalLM.forward")
def test_kv_cache_holds_the_reference_keys_and_values():
    """5 tokens, then 1, then 2: after each call every layer's cached keys (after RoPE) and
    values equal the reference cache's, [b, g, t, hd] with t = 5, 6, 8."""
    mine, ref = _pair()
    ids = torch.randint(0, V, (2, 8))
    cache_mine = cache_ref = None
    start = 0
    with torch.no_grad():
        for n in (5, 1, 2):
            cache_mine = mine(ids[:, start : start + n], past_key_values=cache_mine, use_cache=True).past_key_values
            cache_ref = ref(ids[:, start : start + n], past_key_values=cache_ref, use_cache=True).past_key_values
            start += n
            for i in range(2):
                for name, got, want in (("k", cache_mine.key_cache[i], cache_ref.key_cache[i]),
                                        ("v", cache_mine.value_cache[i], cache_ref.value_cache[i])):
                    _close(got, want, f"layer {i} cached {name} after {start} tokens", HINT_CACHE)


@pytest.mark.symbol("CausalLM.forward")
def test_passing_a_cache_implies_using_it():
    """``model(ids, past_key_values=cache)`` without ``use_cache=True`` still reads and extends
    the cache (4 + 2 = 6 tokens) and returns it, with the logits of positions 4, 5."""
    mine, _ = _pair()
    ids = torch.randint(0, V, (2, 6))
    with torch.no_grad():
        cache = mine(ids[:, :4], use_cache=True).past_key_values
        out = mine(ids[:, 4:], past_key_values=cache)
    assert out.past_key_values is cache, say("传入的缓存应原样返回 (就地更新)", "the cache passed in should be returned (updated in place)")
    assert_equal(cache.get_seq_length(), 6, "cached tokens after 4 + 2")
    _close(out.logits, _logits(mine, input_ids=ids)[:, 4:], "logits after the cache", HINT_CACHE)


@pytest.mark.symbol("CausalLM._next_token_logits")
@pytest.mark.parametrize("padded", [False, True], ids=["no_pad", "left_pad"])
def test_next_token_logits_with_a_cache_feed_only_the_new_token(padded):
    """Prefill a 4-token prompt, then grow the sequence one token at a time passing the whole
    sequence so far and the cache: the cache grows by exactly one token per step (feeding the
    whole sequence again would add it twice) and the logits equal a full recomputation."""
    mine, ref = _pair()
    if padded:
        ids, mask = _left_pad([torch.randint(1, V, (8,)).tolist(), torch.randint(1, V, (5,)).tolist()])
    else:
        ids, mask = torch.randint(0, V, (2, 8)), None
    cache = None
    for t in range(4, 9):
        step_mask = None if mask is None else mask[:, :t]
        logits, cache = mine._next_token_logits(ids[:, :t], step_mask, cache, True)
        assert cache is not None, say("use_cache=True 时应返回缓存", "use_cache=True should return the cache")
        assert_equal(cache.get_seq_length(), t, f"cached tokens after a step on {t} tokens")
        inputs = {"input_ids": ids[:, :t]} if mask is None else {"input_ids": ids[:, :t], "attention_mask": step_mask}
        _model_close(logits, _logits(mine, **inputs)[:, -1].float(), f"next-token logits with the cache, {t} tokens",
                     mine, ref, inputs, HINT_GENERATE)


# ===================================================================== generation


@pytest.mark.symbol("CausalLM.generate")
@pytest.mark.parametrize("sampling", [False, True], ids=["greedy", "sampling"])
@pytest.mark.parametrize("config", CONFIG_IDS)
def test_generation_with_the_cache_equals_generation_without_it(config, sampling):
    """12 new tokens after a [2, 5] prompt, with ``use_cache=True`` and ``False``: the same tokens,
    one by one (sampling: the same seeded generator, top_k 20, temperature 0.9)."""
    mine, ref = _pair(config)
    prompt = torch.randint(0, V, (2, 5))
    kwargs = dict(do_sample=True, temperature=0.9, top_k=20) if sampling else {}

    def run(use_cache):
        generator = torch.Generator().manual_seed(7)
        return mine.generate(prompt, max_new_tokens=12, use_cache=use_cache, generator=generator, **kwargs)

    expected = run(False)
    _same_tokens(run(True), expected, f"tokens with the cache vs without ({config})", HINT_GENERATE + "\n" + HINT_CACHE,
                 extra=lambda: _where(mine, ref, {"input_ids": expected}))


@pytest.mark.symbol("CausalLM.generate")
@pytest.mark.parametrize("config", CONFIG_IDS)
def test_greedy_generation_matches_the_reference(config):
    """Greedy, 12 new tokens after a [3, 4] prompt, repetition penalty 1.2: the same tokens as
    the reference."""
    mine, ref = _pair(config)
    prompt = torch.randint(0, V, (3, 4))
    expected = ref.generate(prompt, max_new_tokens=12, repetition_penalty=1.2)
    _same_tokens(mine.generate(prompt, max_new_tokens=12, repetition_penalty=1.2), expected,
                 f"greedy tokens vs the reference ({config})", HINT_GENERATE,
                 extra=lambda: _where(mine, ref, {"input_ids": expected}))


@pytest.mark.symbol("CausalLM.generate")
def test_greedy_tokens_are_the_argmax_of_a_full_recomputation():
    """Every greedy token is the argmax of the learner's own full forward over the tokens before
    it: ``model(out[:, :-1]).logits[:, s - 1:].argmax(-1) == out[:, s:]``."""
    mine, ref = _pair()
    prompt = torch.randint(0, V, (3, 5))
    out = mine.generate(prompt, max_new_tokens=10)
    if not isinstance(out, torch.Tensor) or list(out.shape) != [3, 15]:
        raise AssertionError(say(f"generate 应返回 [3, 15] 的张量，实际是 {getattr(out, 'shape', type(out))}",
                                 f"generate should return a [3, 15] tensor, got {getattr(out, 'shape', type(out))}"))
    expected = _logits(mine, input_ids=out[:, :-1])[:, 4:].argmax(-1)
    _same_tokens(out[:, 5:], expected, "greedy tokens vs the argmax of the full forward", HINT_GENERATE,
                 extra=lambda: _where(mine, ref, {"input_ids": out}))


@pytest.mark.symbol("CausalLM.generate")
@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "no_cache"])
def test_left_padded_batch_generates_what_each_prompt_generates_alone(use_cache):
    """Prompts of 3, 7 and 5 tokens, left-padded with id 0 (the mask marks them), greedy with
    repetition penalty 1.3, 8 new tokens: every row's new tokens equal those of its prompt
    generated alone (batch of 1, no padding). The pads must change neither positions,
    attention, nor the penalty."""
    mine, ref = _pair()
    prompts = [torch.randint(1, V, (n,)).tolist() for n in (3, 7, 5)]
    ids, mask = _left_pad(prompts)
    batch = mine.generate(ids, attention_mask=mask, max_new_tokens=8, repetition_penalty=1.3, use_cache=use_cache)
    if not isinstance(batch, torch.Tensor) or list(batch.shape) != [3, 15]:
        raise AssertionError(say(f"generate 应返回 [3, 15] 的张量，实际是 {getattr(batch, 'shape', type(batch))}",
                                 f"generate should return a [3, 15] tensor, got {getattr(batch, 'shape', type(batch))}"))
    full_mask = torch.cat([mask, torch.ones(3, 8, dtype=mask.dtype)], dim=1)  # mask of prompt + new tokens
    for row, prompt in enumerate(prompts):
        alone = mine.generate(torch.tensor([prompt]), max_new_tokens=8, repetition_penalty=1.3, use_cache=use_cache)
        _same_tokens(batch[row : row + 1, 7:], alone[:, len(prompt):],
                     f"new tokens of left-padded row {row} vs its prompt alone", HINT_PADDING + "\n" + say(
                         "生成时 mask 每步在末尾补一列 1；重复惩罚要传入 attention_mask，pad 不算出现过。",
                         "while generating, the mask gets a column of 1 per step; pass attention_mask to the "
                         "repetition penalty so pads do not count as seen."),
                     extra=lambda: _where(mine, ref, {"input_ids": batch, "attention_mask": full_mask}))


@pytest.mark.symbol("CausalLM.generate")
def test_generation_with_eos_matches_the_reference():
    """Greedy, eos = the 3rd new token of row 0 of a first run (so row 0 stops early and the
    others stop when they meet it, or run on), pad id 5: the same tokens, length and padding
    as the reference."""
    mine, ref = _pair()
    prompt = torch.randint(6, V, (4, 4))
    eos = int(ref.generate(prompt, max_new_tokens=3)[0, -1])
    expected = ref.generate(prompt, max_new_tokens=16, eos_token_id=eos, pad_token_id=5)
    _same_tokens(mine.generate(prompt, max_new_tokens=16, eos_token_id=eos, pad_token_id=5), expected,
                 f"tokens with eos {eos} and pad 5 vs the reference", say(
                     "提示：结束的行之后写 pad；所有行都结束时停止。", "hint: finished rows get the pad; stop once every row is finished."),
                 extra=lambda: _where(mine, ref, {"input_ids": expected}))


@pytest.mark.symbol("CausalLM.generate")
def test_seeded_sampling_is_reproducible():
    """``do_sample=True`` with ``torch.Generator().manual_seed(3)`` twice: the same 12 tokens; a
    different seed gives different ones (the generator is really used)."""
    mine, _ = _pair()
    prompt = torch.randint(0, V, (3, 4))

    def run(seed):
        return mine.generate(prompt, max_new_tokens=12, do_sample=True, top_p=0.95,
                             generator=torch.Generator().manual_seed(seed))

    first = run(3)
    hint = say("提示：把 generator 一路传给 torch.multinomial(probs, 1, generator=generator)。",
               "hint: pass the generator through to torch.multinomial(probs, 1, generator=generator).")
    _same_tokens(run(3), first, "two sampled generations with seed 3", hint)
    assert not torch.equal(run(4), first), say(f"种子 3 和 4 得到了相同的 token\n{hint}",
                                              f"seeds 3 and 4 gave the same tokens\n{hint}")


# ===================================================================== sampling


def _top_k_set(row: list[float], k: int) -> set[int]:
    """Token ids whose logit is >= the k-th largest (ties kept), by sorting a Python list."""
    kth = sorted(row, reverse=True)[k - 1]
    return {i for i, x in enumerate(row) if x >= kth}


def _softmax(row: list[float]) -> list[float]:
    top = max(row)
    exps = [math.exp(x - top) if x != INF else 0.0 for x in row]
    total = sum(exps)
    return [e / total for e in exps]


def _nucleus(row: list[float], p: float) -> tuple[set[int], float]:
    """The smallest set of most likely tokens (ties by id) whose probability reaches p, and the
    distance of the deciding cumulative mass from p (to keep the test away from float ties)."""
    probs = _softmax(row)
    order = sorted(range(len(row)), key=lambda i: (-probs[i], i))
    kept, mass, margin = set(), 0.0, 1.0
    for i in order:
        if mass >= p:
            break
        kept.add(i)
        mass += probs[i]
        margin = min(margin, abs(mass - p))
    return kept, margin


def _oracle_distribution(row, seen, temperature, top_k, top_p, penalty) -> list[float]:
    """What ``sample_next_token`` draws from, with loops in float64: penalty on seen tokens,
    divide by the temperature, keep the top-k, keep the nucleus, softmax."""
    row = [float(x) for x in row]
    for i in set(seen):
        row[i] = row[i] * penalty if row[i] < 0 else row[i] / penalty
    row = [x / temperature for x in row]
    if top_k is not None:
        keep = _top_k_set(row, top_k)
        row = [x if i in keep else INF for i, x in enumerate(row)]
    if top_p is not None:
        keep, _ = _nucleus(row, top_p)
        row = [x if i in keep else INF for i, x in enumerate(row)]
    return _softmax(row)


@pytest.mark.symbol("sample_next_token")
@pytest.mark.parametrize("k, temperature", [(1, 1.0), (5, 1.0), (5, 0.7), (12, 2.0)])
def test_top_k_sampling_never_emits_a_token_outside_the_k_best(k, temperature):
    """4 rows of 40 random logits, 5000 seeded draws each (20 000 in all): every drawn token is
    among the row's k largest logits (set built here by sorting), and with k >= 5 more than
    one of them is drawn."""
    logits = torch.randn(4, 40) * 2
    draws = _lm().sample_next_token(logits.repeat_interleave(5000, dim=0), do_sample=True, temperature=temperature,
                                    top_k=k, generator=torch.Generator().manual_seed(11))
    draws = draws.view(4, 5000)
    for row in range(4):
        allowed = _top_k_set(logits[row].tolist(), k)
        seen = set(draws[row].tolist())
        assert seen <= allowed, say(
            f"第 {row} 行：采样出了 top-{k} 之外的 token {sorted(seen - allowed)} (允许的是 {sorted(allowed)})",
            f"row {row}: drew tokens outside the top-{k}: {sorted(seen - allowed)} (allowed: {sorted(allowed)})")
        if k >= 5:
            assert len(seen) > 1, say(f"第 {row} 行：5000 次只采到 {seen}", f"row {row}: 5000 draws gave only {seen}")


@pytest.mark.symbol("top_p_filter")
@pytest.mark.parametrize("p", [0.05, 0.3, 0.6, 0.9, 0.99])
def test_top_p_keeps_exactly_the_smallest_set_whose_mass_reaches_p(p):
    """16 rows of 50 random logits: the tokens ``top_p_filter`` keeps are exactly the oracle's
    nucleus (most likely first, stop once the mass reached p), and kept logits are unchanged."""
    logits = torch.randn(16, 50) * 2
    out = _lm().top_p_filter(logits, p)
    if not isinstance(out, torch.Tensor) or out.shape != logits.shape:
        raise AssertionError(say("top_p_filter 应返回与输入同形状的张量", "top_p_filter should return a tensor of the input's shape"))
    for row in range(16):
        nucleus, margin = _nucleus(logits[row].tolist(), p)
        assert margin > 1e-5, "test design: the cumulative mass lands too close to p"
        kept = set(torch.isfinite(out[row]).nonzero().flatten().tolist())
        assert kept == nucleus, say(
            f"第 {row} 行 (p={p})：保留了 {len(kept)} 个 token，应为 {len(nucleus)} 个；多出 {sorted(kept - nucleus)}，"
            f"缺少 {sorted(nucleus - kept)}。先按概率降序排序，保留之前累计质量 < p 的 token。",
            f"row {row} (p={p}): kept {len(kept)} tokens, expected {len(nucleus)}; extra {sorted(kept - nucleus)}, "
            f"missing {sorted(nucleus - kept)}. Sort by probability first, keep tokens whose preceding mass is < p.")
        assert torch.equal(out[row][list(nucleus)], logits[row][list(nucleus)]), say(
            "保留的 logit 应保持不变", "kept logits should be unchanged")


@pytest.mark.symbol("sample_next_token")
@pytest.mark.parametrize("p", [0.3, 0.8])
def test_top_p_sampling_draws_every_nucleus_token_and_nothing_else(p):
    """2 rows of 30 logits, 10 000 seeded draws each: the drawn tokens are exactly the nucleus
    (every nucleus token has probability > 1/100 here, so each shows up)."""
    logits = torch.randn(2, 30) * 1.5
    draws = _lm().sample_next_token(logits.repeat_interleave(10000, dim=0), do_sample=True, top_p=p,
                                    generator=torch.Generator().manual_seed(12)).view(2, 10000)
    for row in range(2):
        nucleus, _ = _nucleus(logits[row].tolist(), p)
        assert min(_softmax(logits[row].tolist())[i] for i in nucleus) > 0.01, "test design: rare nucleus token"
        seen = set(draws[row].tolist())
        assert seen == nucleus, say(
            f"第 {row} 行 (top_p={p})：采到的 token 集合与核 (nucleus) 不同；多出 {sorted(seen - nucleus)}，缺少 {sorted(nucleus - seen)}",
            f"row {row} (top_p={p}): the drawn tokens differ from the nucleus; extra {sorted(seen - nucleus)}, "
            f"missing {sorted(nucleus - seen)}")


SAMPLING_SETTINGS = {
    "plain": dict(temperature=1.0, top_k=None, top_p=None, penalty=1.0),
    "cold_top_k": dict(temperature=0.5, top_k=4, top_p=None, penalty=1.0),
    "hot_top_p": dict(temperature=1.5, top_k=None, top_p=0.8, penalty=1.0),
    "everything": dict(temperature=0.8, top_k=6, top_p=0.9, penalty=1.5),
}


@pytest.mark.symbol("sample_next_token")
@pytest.mark.parametrize("setting", list(SAMPLING_SETTINGS))
def test_sampled_frequencies_match_the_filtered_distribution(setting):
    """12 logits ``[2, -1, 0.5, 1.5, -0.5, 1, 0, 2.5, -2, 0.3, 1.2, -0.2]`` (token 7 is the
    favourite), tokens 0, 4, 7 already seen. 20 000 seeded draws; their frequencies are within
    total variation 0.02 of the oracle's distribution (penalty, / temperature, top-k, top-p,
    softmax in float64 with loops). See the module docstring for the bound."""
    s = SAMPLING_SETTINGS[setting]
    row = [2.0, -1.0, 0.5, 1.5, -0.5, 1.0, 0.0, 2.5, -2.0, 0.3, 1.2, -0.2]
    seen = [0, 4, 7, 4]
    n = 20000
    expected = _oracle_distribution(row, seen, s["temperature"], s["top_k"], s["top_p"], s["penalty"])
    draws = _lm().sample_next_token(
        torch.tensor([row]).expand(n, 12), torch.tensor([seen]).expand(n, 4), do_sample=True,
        temperature=s["temperature"], top_k=s["top_k"], top_p=s["top_p"], repetition_penalty=s["penalty"],
        generator=torch.Generator().manual_seed(13))
    if not isinstance(draws, torch.Tensor) or list(draws.shape) != [n]:
        raise AssertionError(say(f"应返回 [{n}] 的张量", f"should return a [{n}] tensor"))
    freq = (torch.bincount(draws, minlength=12).double() / n).tolist()
    tv = 0.5 * sum(abs(f - e) for f, e in zip(freq, expected, strict=True))
    assert tv < 0.02, say(
        f"{setting}：采样频率与应有分布的总变差距离为 {tv:.3f} (> 0.02)\n  应有：{[round(e, 3) for e in expected]}\n"
        f"  实际：{[round(f, 3) for f in freq]}\n提示：顺序是 重复惩罚 -> logits / temperature -> top-k -> top-p -> softmax -> multinomial。",
        f"{setting}: total-variation distance {tv:.3f} (> 0.02) between the sampled frequencies and the distribution\n"
        f"  expected: {[round(e, 3) for e in expected]}\n  got:      {[round(f, 3) for f in freq]}\n"
        "hint: the order is repetition penalty -> logits / temperature -> top-k -> top-p -> softmax -> multinomial.")


@pytest.mark.symbol("top_k_filter")
@pytest.mark.parametrize("k", [1, 3, 10, 49, 50])
@pytest.mark.parametrize("kind", ["continuous", "integer_ties"])
def test_top_k_filter_matches_the_reference_on_random_logits(k, kind):
    """8 rows of 50 logits, continuous (N(0, 4)) or integers 0..4 (many ties): the same kept
    entries and values as the reference, exactly."""
    logits = torch.randn(8, 50) * 2 if kind == "continuous" else torch.randint(0, 5, (8, 50)).float()
    got = _lm().top_k_filter(logits, k)
    want = reference("model.causal_lm").top_k_filter(logits, k)
    _close(got, want, f"top_k_filter(k={k}, {kind})", say(
        "提示：与第 k 大的值并列的 logit 都保留 (logits < kth 才设为 -inf)。",
        "hint: keep every logit tied with the k-th largest (only logits < kth become -inf)."), atol=0, rtol=0)


@pytest.mark.symbol("top_p_filter")
@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 1.0])
def test_top_p_filter_matches_the_reference_on_random_logits(p):
    """8 rows of 50 continuous logits: the same kept entries and values as the reference, exactly."""
    logits = torch.randn(8, 50) * 2
    _close(_lm().top_p_filter(logits, p), reference("model.causal_lm").top_p_filter(logits, p),
           f"top_p_filter(p={p})", atol=0, rtol=0)


@pytest.mark.symbol("apply_repetition_penalty")
@pytest.mark.parametrize("penalty", [0.7, 1.3, 2.0])
@pytest.mark.parametrize("masked", [False, True], ids=["no_mask", "left_pad_mask"])
def test_repetition_penalty_matches_the_reference_on_random_inputs(penalty, masked):
    """Logits [6, 40] (both signs), ids [6, 15] with repeats, optionally a left-padding mask:
    equal to the reference (atol = rtol = 1e-6: one division or multiplication per entry)."""
    logits = torch.randn(6, 40) * 3
    ids = torch.randint(0, 40, (6, 15))
    mask = None
    if masked:
        mask = torch.ones(6, 15, dtype=torch.long)
        for row, pads in enumerate((0, 3, 7, 1, 14, 5)):
            mask[row, :pads] = 0
    got = _lm().apply_repetition_penalty(logits, ids, penalty, attention_mask=mask)
    want = reference("model.causal_lm").apply_repetition_penalty(logits, ids, penalty, attention_mask=mask)
    _close(got, want, f"apply_repetition_penalty(penalty={penalty}, mask={'yes' if masked else 'no'})", say(
        "提示：只罚出现过的 token (mask 为 1 的位置)；正的除以 penalty，负的乘以 penalty。",
        "hint: penalise only tokens that occur (where the mask is 1); divide positives, multiply negatives."),
        atol=1e-6, rtol=1e-6)


@pytest.mark.symbol("sample_next_token")
def test_greedy_tokens_match_the_reference_on_random_inputs():
    """200 rows of 60 logits with ids and a left-padding mask, penalty 1.4: the same greedy
    tokens as the reference."""
    logits = torch.randn(200, 60) * 2
    ids = torch.randint(0, 60, (200, 10))
    mask = (torch.arange(10)[None] >= torch.randint(0, 9, (200, 1))).long()
    got = _lm().sample_next_token(logits, ids, mask, repetition_penalty=1.4)
    want = reference("model.causal_lm").sample_next_token(logits, ids, mask, repetition_penalty=1.4)
    _same_tokens(got[None] if isinstance(got, torch.Tensor) else got, want[None], "greedy tokens vs the reference", say(
        "提示：先做重复惩罚 (传入 attention_mask)，再 argmax。",
        "hint: apply the repetition penalty first (with the attention_mask), then the argmax."))
