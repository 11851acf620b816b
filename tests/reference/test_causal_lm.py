"""The causal LM, its KV cache, the sampling helpers and ``generate``.

- ``forward``: Hugging Face state-dict names, tied embeddings, initialisation, the loss
  (== ``F.cross_entropy`` on shifted logits, -100 ignored), caching == recomputing.
- ``generate``: KV cache == no cache token by token, a left-padded batch == each prompt
  alone, eos stops each row, seeded sampling is reproducible, temperature 0 is greedy.
- Sampling helpers: top-k / top-p boundaries and ties worked out by hand, Hugging Face's
  ``TopKLogitsWarper`` / ``TopPLogitsWarper`` / ``RepetitionPenaltyLogitsProcessor`` as
  oracles, and sampled frequencies against the filtered distribution.

Tolerances: float32 logits of O(1) compared at atol = rtol = 1e-5 (summation order only);
the loss at 1e-6 (one float32 log-softmax either way). Token sequences must be equal.
"""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from intro2llm.model.causal_lm import (
    CausalLM,
    KVCache,
    apply_repetition_penalty,
    sample_next_token,
    top_k_filter,
    top_p_filter,
)
from intro2llm.model.config import ModelConfig

F32 = {"atol": 1e-5, "rtol": 1e-5}
NEG_INF = float("-inf")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    random.seed(0)



def _config(**overrides) -> ModelConfig:
    """V = 96, d = 64, I = 96, L = 2, h = 4 query heads of hd = 16, g = 2 KV heads."""
    params = dict(vocab_size=96, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return ModelConfig(**{**params, **overrides})


def _model(**overrides) -> CausalLM:
    """Weights far from the default init (which gives nearly flat logits): std 0.15, norms 1 +- 0.2."""
    model = CausalLM(_config(**overrides))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.15)
    return model.eval()


# ----- the model ---------------------------------------------------------------------------


def test_state_dict_uses_hugging_face_names():
    names = set(CausalLM(_config(num_hidden_layers=1)).state_dict())
    layer = {f"layers.0.self_attn.{p}_proj.weight" for p in "qkvo"}
    layer |= {f"layers.0.mlp.{p}_proj.weight" for p in ("gate", "up", "down")}
    layer |= {"layers.0.input_layernorm.weight", "layers.0.post_attention_layernorm.weight"}
    assert names == {"embed_tokens.weight", "norm.weight", "lm_head.weight"} | layer


def test_tied_embeddings_share_one_parameter():
    tied, untied = CausalLM(_config(tie_word_embeddings=True)), CausalLM(_config())
    assert tied.lm_head.weight is tied.embed_tokens.weight
    n = sum(p.numel() for p in tied.parameters())  # parameters() lists a shared tensor once
    assert sum(p.numel() for p in untied.parameters()) - n == 96 * 64


def test_init_follows_initializer_range():
    model = CausalLM(_config(initializer_range=0.05, hidden_size=128, intermediate_size=256))
    assert abs(model.layers[0].mlp.up_proj.weight.std().item() - 0.05) < 0.003
    assert abs(model.embed_tokens.weight.std().item() - 0.05) < 0.003
    assert torch.equal(model.norm.weight, torch.ones(128))


def test_loss_is_cross_entropy_of_shifted_logits_ignoring_minus_100():
    """Position i predicts labels[:, i + 1]; the mean runs over the 2 · 9 - 5 counted targets."""
    model = _model()
    ids = torch.randint(0, 96, (2, 10))
    labels = ids.clone()
    labels[0, :3] = -100  # a prompt without loss
    labels[1, 7:] = -100  # padding at the end
    out = model(ids, labels=labels)
    logp = torch.log_softmax(out.logits.float(), dim=-1)
    terms = [-logp[b, i, labels[b, i + 1]] for b in range(2) for i in range(9) if labels[b, i + 1] != -100]
    assert len(terms) == 13
    torch.testing.assert_close(out.loss, torch.stack(terms).mean(), atol=1e-6, rtol=1e-6)
    expected = F.cross_entropy(out.logits[:, :-1].reshape(-1, 96), labels[:, 1:].reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, expected, atol=1e-6, rtol=1e-6)
    assert out.loss.dtype == torch.float32 and model(ids).loss is None


def test_kv_cache_forward_equals_recomputation():
    """Prompt of 6, then one token at a time: every step's logits == the full forward's."""
    model = _model()
    ids = torch.randint(0, 96, (2, 12))
    full = model(ids).logits
    out = model(ids[:, :6], use_cache=True)
    cache = out.past_key_values
    assert isinstance(cache, KVCache) and cache.get_seq_length() == 6
    steps = [out.logits]
    for i in range(6, 12):
        out = model(ids[:, i : i + 1], past_key_values=cache, use_cache=True)
        assert out.past_key_values is cache
        steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, **F32)
    assert cache.get_seq_length() == 12 and len(cache) == 2
    # memory: 2 (k and v) · L · b · g · t · hd · 4 bytes
    assert cache.nbytes() == 2 * 2 * 2 * 2 * 12 * 16 * 4


def test_kv_cache_update_concatenates_along_the_sequence():
    cache = KVCache(3)
    assert cache.get(1) is None and cache.get_seq_length() == 0
    k1, v1, k2, v2 = (torch.randn(2, 2, t, 4) for t in (3, 3, 1, 1))
    cache.update(0, k1, v1)
    k, v = cache.update(0, k2, v2)
    assert torch.equal(k, torch.cat([k1, k2], dim=2)) and torch.equal(v, torch.cat([v1, v2], dim=2))
    assert cache.get_seq_length() == 4 and cache.get(0)[0] is k
    with pytest.raises(ValueError, match="layer_idx"):
        cache.update(3, k1, v1)


# ----- generate ----------------------------------------------------------------------------


@pytest.mark.parametrize("do_sample", [False, True])
def test_generate_with_cache_equals_without(do_sample):
    model = _model()
    ids = torch.randint(0, 96, (2, 5))
    kwargs = dict(max_new_tokens=12, do_sample=do_sample, top_k=20, top_p=0.9, repetition_penalty=1.2)
    cached = model.generate(ids, generator=torch.Generator().manual_seed(1), use_cache=True, **kwargs)
    recomputed = model.generate(ids, generator=torch.Generator().manual_seed(1), use_cache=False, **kwargs)
    assert cached.shape == (2, 17)
    assert torch.equal(cached, recomputed)
    assert torch.equal(cached[:, :5], ids)


def test_left_padded_batch_generates_what_each_prompt_generates_alone():
    model = _model()
    prompts = [torch.randint(3, 96, (n,)) for n in (3, 7, 5)]
    batch = torch.zeros(3, 7, dtype=torch.long)
    mask = torch.zeros(3, 7, dtype=torch.long)
    for i, p in enumerate(prompts):
        batch[i, 7 - len(p):], mask[i, 7 - len(p):] = p, 1
    out = model.generate(batch, attention_mask=mask, max_new_tokens=16, repetition_penalty=1.3)
    for i, p in enumerate(prompts):
        alone = model.generate(p[None], max_new_tokens=16, repetition_penalty=1.3)
        assert torch.equal(out[i, 7:], alone[0, len(p):]), f"row {i}"


def test_generate_rejects_right_padding():
    model = _model()
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    with pytest.raises(ValueError, match="left"):
        model.generate(torch.ones(2, 3, dtype=torch.long), attention_mask=mask, max_new_tokens=2)


def test_eos_stops_each_row_and_pads_after_it():
    """Row 0 is a prompt whose greedy continuation is (a, b, x, ...); row 1 is that prompt
    followed by a, b, so it continues with x at once. With eos = x, row 1 finishes at its
    first new token and gets pads after it, row 0 at its third, and generation stops there
    although max_new_tokens is 10."""
    model = _model()
    prompt = torch.randint(3, 95, (4,))
    free = model.generate(prompt[None], max_new_tokens=3)[0]  # prompt, a, b, x
    a, b, eos = free[4:].tolist()
    assert eos not in (a, b)
    pad = 95
    batch = torch.stack([torch.cat([torch.tensor([pad, pad]), prompt]), free[:6]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    out = model.generate(batch, attention_mask=mask, max_new_tokens=10, eos_token_id=eos, pad_token_id=pad)
    assert out[:, 6:].tolist() == [[a, b, eos], [eos, pad, pad]]
    without_eos = model.generate(prompt[None], max_new_tokens=10)
    assert without_eos.shape == (1, 14)  # no eos given: always max_new_tokens
    single = model.generate(prompt[None], max_new_tokens=10, eos_token_id=eos)
    assert single[0].tolist() == free.tolist()


def test_generate_runs_in_eval_mode_and_restores_training():
    model = _model(hidden_dropout=0.5, attention_dropout=0.5).train()
    ids = torch.randint(0, 96, (1, 4))
    first, second = model.generate(ids, max_new_tokens=6), model.generate(ids, max_new_tokens=6)
    assert torch.equal(first, second)  # no dropout while generating
    assert model.training
    assert torch.equal(model.generate(ids, max_new_tokens=0), ids)


def test_seeded_sampling_is_reproducible():
    model = _model()
    ids = torch.randint(0, 96, (2, 4))

    def sample(seed: int) -> torch.Tensor:
        return model.generate(ids, max_new_tokens=16, do_sample=True, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(sample(7), sample(7))
    assert not torch.equal(sample(7), sample(8))


def test_temperature_zero_is_greedy():
    model = _model()
    ids = torch.randint(0, 96, (2, 4))
    greedy = model.generate(ids, max_new_tokens=8)
    assert torch.equal(model.generate(ids, max_new_tokens=8, do_sample=True, temperature=0.0), greedy)
    # a temperature near 0 puts all the mass on the argmax (gaps of ~1e-2 / 1e-4 = 100 nats)
    logits = torch.randn(64, 96)
    picked = sample_next_token(logits, do_sample=True, temperature=1e-4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(picked, logits.argmax(-1))
    with pytest.raises(ValueError, match="temperature"):
        sample_next_token(logits, do_sample=True, temperature=-1.0)


# ----- top-k -------------------------------------------------------------------------------


def test_top_k_by_hand_keeps_ties():
    logits = torch.tensor([[1.0, 3.0, 2.0, 2.0, 0.0]])
    assert torch.equal(top_k_filter(logits, 1), torch.tensor([[NEG_INF, 3.0, NEG_INF, NEG_INF, NEG_INF]]))
    # k = 2: the 2nd largest value, 2.0, is tied: both 2.0s stay (3 tokens)
    assert torch.equal(top_k_filter(logits, 2), torch.tensor([[NEG_INF, 3.0, 2.0, 2.0, NEG_INF]]))
    assert torch.equal(top_k_filter(logits, 5), logits) and torch.equal(top_k_filter(logits, 50), logits)
    assert top_k_filter(logits, 50) is not logits
    with pytest.raises(ValueError, match="top_k"):
        top_k_filter(logits, 0)


def test_top_k_matches_hugging_face():
    from transformers.generation.logits_process import TopKLogitsWarper

    logits = torch.randn(4, 96)
    assert torch.equal(top_k_filter(logits, 7), TopKLogitsWarper(7)(None, logits.clone()))


def test_top_k_sampling_never_leaves_the_k_best():
    logits = torch.randn(4, 96)
    best = logits.topk(5, dim=-1).indices  # [4, 5]
    rows = logits.repeat(500, 1)  # 2000 draws, 500 per row
    picked = sample_next_token(rows, do_sample=True, top_k=5, generator=torch.Generator().manual_seed(0))
    assert (picked.view(500, 4, 1) == best[None]).any(-1).all()


# ----- top-p -------------------------------------------------------------------------------


def test_top_p_boundary_mass_equal_to_p_and_ties():
    """Four equal logits: probabilities 0.25 each, exact in float32. Ties go by token id.
    p = 0.5: mass before token 1 is 0.25 < 0.5 (kept), before token 2 it is 0.5, not < 0.5."""
    logits = torch.zeros(1, 4)
    assert torch.equal(top_p_filter(logits, 0.5), torch.tensor([[0.0, 0.0, NEG_INF, NEG_INF]]))
    assert torch.equal(top_p_filter(logits, 0.5001), torch.tensor([[0.0, 0.0, 0.0, NEG_INF]]))
    assert torch.equal(top_p_filter(logits, 0.25), torch.tensor([[0.0, NEG_INF, NEG_INF, NEG_INF]]))
    tied = torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.0]])  # the two 1.0s first, in id order
    assert torch.equal(top_p_filter(tied, 0.3), torch.tensor([[NEG_INF, 1.0, NEG_INF, NEG_INF, NEG_INF]]))


def test_top_p_tiny_p_keeps_one_token_and_p_one_keeps_all():
    logits = torch.randn(3, 96)
    kept = top_p_filter(logits, 1e-9).isfinite()
    assert kept.sum(-1).tolist() == [1, 1, 1]
    assert torch.equal(kept.int().argmax(-1), logits.argmax(-1))
    assert torch.equal(top_p_filter(logits, 1.0), logits)
    for p in (0.0, -0.5):
        with pytest.raises(ValueError, match="top_p"):
            top_p_filter(logits, p)


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.randn(8, 96) * 2
    p = 0.8
    kept = top_p_filter(logits, p).isfinite()
    probs = torch.softmax(logits, dim=-1)
    for row in range(8):
        mass = probs[row][kept[row]].sum()
        smallest_kept = probs[row][kept[row]].min()
        assert mass >= p and mass - smallest_kept < p  # reaches p; without its last token it would not
        assert probs[row][~kept[row]].max() <= smallest_kept  # the most likely tokens


def test_top_p_matches_hugging_face():
    from transformers.generation.logits_process import TopPLogitsWarper

    logits = torch.randn(6, 96) * 2
    for p in (0.3, 0.9):
        assert torch.equal(top_p_filter(logits, p), TopPLogitsWarper(p)(None, logits.clone()))


def test_sampled_frequencies_follow_the_filtered_distribution():
    """40000 seeded draws from softmax(top_p(top_k(logits / T))): nothing outside the support,
    chi-square below the 0.1 % critical value, total variation below 0.02 (expected ~0.005)."""
    logits = torch.tensor([2.0, 1.5, 1.2, 1.0, 0.6, 0.3, 0.0, -0.5, -1.0, -2.0, -3.0, -4.0])
    t, k, p, n = 0.8, 7, 0.9, 40000
    expected = torch.softmax(top_p_filter(top_k_filter(logits[None] / t, k), p), dim=-1)[0]
    support = expected > 0
    picked = sample_next_token(logits.expand(n, -1), do_sample=True, temperature=t, top_k=k, top_p=p,
                               generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(picked, minlength=12).double()
    assert counts[~support].sum() == 0
    df = int(support.sum()) - 1
    chi2 = ((counts[support] - n * expected[support]) ** 2 / (n * expected[support])).sum().item()
    critical = [10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88, 29.59][df - 1]
    assert 2 <= df and chi2 < critical
    assert 0.5 * (counts / n - expected).abs().sum() < 0.02


# ----- repetition penalty ------------------------------------------------------------------


@pytest.mark.parametrize("penalty", [1.3, 0.7])
def test_repetition_penalty_matches_hugging_face(penalty):
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

    logits = torch.randn(3, 96) * 3
    ids = torch.randint(0, 20, (3, 15))  # many repeats
    expected = RepetitionPenaltyLogitsProcessor(penalty)(ids, logits.clone())
    torch.testing.assert_close(apply_repetition_penalty(logits, ids, penalty), expected, atol=0.0, rtol=0.0)


def test_repetition_penalty_by_hand_and_padding():
    logits = torch.tensor([[2.0, -2.0, 1.0, 4.0]])
    ids = torch.tensor([[0, 1, 1, 3]])
    expected = torch.tensor([[1.0, -4.0, 1.0, 2.0]])  # +: divided by 2, -: multiplied by 2, once per id
    assert torch.equal(apply_repetition_penalty(logits, ids, 2.0), expected)
    mask = torch.tensor([[0, 1, 1, 1]])  # id 0 is a pad here: not penalised
    assert torch.equal(apply_repetition_penalty(logits, ids, 2.0, mask), torch.tensor([[2.0, -4.0, 1.0, 2.0]]))
    assert torch.equal(apply_repetition_penalty(logits, ids, 1.0), logits)
    with pytest.raises(ValueError, match="repetition_penalty"):
        apply_repetition_penalty(logits, ids, 0.0)
