"""Lesson 08 reference: ``sequence_logps``, ``dpo_loss`` and ``DPOTrainer``, against TRL and by hand.

Oracles (TRL 1.16, ``pip install trl``, the ``dev`` extra):

- TRL's DPO loss is called, not transcribed. In TRL 1.x it is no longer a method of its
  own but the body of ``trl/trainer/dpo_trainer.py::DPOTrainer._compute_loss``; that method
  is called unbound with a stub ``self`` (``beta``, ``loss_types``, ``accelerator`` …) and
  (a) a stub model that returns what ``add_fused_lm_head`` returns (per-token log-probs
  of ``labels[:, 1:]``, 0 where the label is -100) for random logits, or (b) the real thing:
  our ``CausalLM`` converted to ``LlamaForCausalLM`` (``interop.hf``) and patched with TRL's
  ``add_fused_lm_head``, with TRL's own reference forward. TRL reports each pair's rewards
  through ``accelerator.gather``, which the stub records.
- TRL 1.x's DPO "sigmoid" has no label smoothing any more (its ``label_smoothing`` only
  feeds the "robust" / "exo_pair" / "aot" losses). The conservative-DPO formula
  ``-(1-ε) log σ(βz) - ε log σ(-βz)`` survives in
  ``trl/experimental/cpo/cpo_trainer.py::CPOTrainer.cpo_loss``, which has no reference
  model: given the *log-ratios* ``π - π_ref`` as its "policy log-probs" it is exactly the
  DPO loss (its logits ``(π_c - ref_c) - (π_r - ref_r)`` are DPO's), so every loss type is
  checked against it too, ε = 0 and 0.2 for "sigmoid".
- ``sequence_logps`` against ``CPOTrainer.get_batch_logps`` (a static method:
  ``selective_log_softmax``, then the masked sum or mean) and a per-token Python loop.
  TRL's shifts the labels itself (``labels[:, 1:]`` against ``logits[:, :-1]``); ours are
  shifted already, so TRL gets them with one -100 column in front (or, with
  ``is_encoder_decoder=True``, unshifted).
- IPO: TRL divides each side's log-ratio by its number of completion tokens, i.e. IPO on
  per-token mean log-probs; ``DPOTrainer(loss_type="ipo")`` feeds ``dpo_loss`` with
  ``sequence_logps(..., average=True)``, the same thing.

Tolerances: float64 inputs against TRL and the brute force at 1e-6 (they agree to ~1e-15);
our float32 ``CausalLM`` against TRL on the converted Llama at 1e-5 relative (two float32
models, summed over ~40 tokens); concatenated against separate forwards at 1e-6, and against
unpadded single-example forwards at 1e-5; precomputed against on-the-fly reference
log-probs at 1e-6 (batches padded differently). The tiny training run (32 built-in pairs,
1-layer hidden-32 model, 30 steps of 8 pairs at lr 1e-2, β = 0.1) moves the implicit-reward
accuracy from 0 (policy = reference: every reward is 0) to 1.0 and the policy's own
log-prob accuracy from 0.375 to 0.94; the test asserts >= 0.9 and a gain >= 0.3.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from intro2llm.data.builtin import preference_records
from intro2llm.data.dpo_dataset import DPODataset
from intro2llm.data.sft_dataset import CHAT_SPECIAL_TOKENS
from intro2llm.loss.cross_entropy import cross_entropy_loss
from intro2llm.loss.dpo_loss import dpo_loss, sequence_logps
from intro2llm.model.causal_lm import CausalLM
from intro2llm.model.config import ModelConfig
from intro2llm.tokenizer import DEFAULT_SPECIAL_TOKENS, ByteLevelTokenizer
from intro2llm.training.dpo_trainer import (
    REWARD_METRICS,
    DPOTrainer,
    concatenated_logps,
    preference_accuracy,
)
from intro2llm.training.trainer import TrainingArguments

TIGHT = {"atol": 1e-6, "rtol": 1e-6}
LOSS_CASES = [("sigmoid", 0.0), ("sigmoid", 0.2), ("ipo", 0.0), ("hinge", 0.0)]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def trl():
    """TRL's DPO / CPO trainers and helpers (imported once: ~10 s, it pulls in transformers.Trainer)."""
    pytest.importorskip("trl")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "importing from trl.experimental"
        from trl.experimental.cpo import CPOTrainer
        from trl.trainer.dpo_trainer import DPOTrainer as TRLDPOTrainer
        from trl.trainer.utils import add_fused_lm_head, selective_log_softmax
    return SimpleNamespace(DPOTrainer=TRLDPOTrainer, CPOTrainer=CPOTrainer,
                           add_fused_lm_head=add_fused_lm_head, selective_log_softmax=selective_log_softmax)


@pytest.fixture(scope="module")
def chat_tokenizer():
    return ByteLevelTokenizer(list(DEFAULT_SPECIAL_TOKENS) + list(CHAT_SPECIAL_TOKENS))


@pytest.fixture(scope="module")
def pairs(chat_tokenizer):
    return DPODataset(preference_records(num=32, seed=0), chat_tokenizer, max_length=96)


def tiny_model(vocab_size: int, seed: int = 0, layers: int = 1, **overrides) -> CausalLM:
    torch.manual_seed(seed)
    return CausalLM(ModelConfig.tiny(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                                     num_hidden_layers=layers, num_attention_heads=2,
                                     num_key_value_heads=1, **overrides))


def make_args(tmp_path, **overrides) -> TrainingArguments:
    params = dict(output_dir=str(tmp_path / "run"), max_steps=4, per_device_batch_size=4,
                  gradient_accumulation_steps=1, learning_rate=1e-2, weight_decay=0.0,
                  warmup_steps=0, lr_schedule="constant", max_grad_norm=None, log_every=1,
                  seed=0, device="cpu")
    return TrainingArguments(**{**params, **overrides})


def random_lm_batch(b=4, s=9, vocab=13, dtype=torch.float64):
    """Logits [b, s, V] and shifted labels with a prompt (-100) prefix and right padding per row;
    the last row has no label at all."""
    logits = torch.randn(b, s, vocab, dtype=dtype) * 3
    labels = torch.randint(0, vocab, (b, s))
    for i in range(b):
        start, end = int(torch.randint(0, 3, ())), int(torch.randint(4, s + 1, ()))
        labels[i, :start] = -100
        labels[i, end:] = -100
    labels[-1] = -100
    return logits, labels


def random_logps(b=8, dtype=torch.float64):
    """Four [b] log-prob tensors of answers of ~20 tokens."""
    return [-20 + 5 * torch.randn(b, dtype=dtype) for _ in range(4)]


# ----- sequence_logps ----------------------------------------------------------------------------


@pytest.mark.parametrize("average", [False, True])
def test_sequence_logps_matches_a_per_token_loop(average):
    """log_softmax(logits[i, t])[labels[i, t]] summed (or averaged) over t with labels != -100,
    one token at a time in Python; a row without labels gives 0 either way."""
    logits, labels = random_lm_batch()
    expected = []
    for i in range(logits.shape[0]):
        terms = [torch.log_softmax(logits[i, t], dim=-1)[labels[i, t]]
                 for t in range(logits.shape[1]) if labels[i, t] != -100]
        total = sum(terms, torch.tensor(0.0, dtype=torch.float64))
        expected.append(total / max(len(terms), 1) if average else total)
    out = sequence_logps(logits, labels, average=average)
    assert out.shape == (logits.shape[0],) and out.dtype == torch.float64
    torch.testing.assert_close(out, torch.stack(expected), **TIGHT)
    assert out[-1] == 0


def test_sequence_logps_scores_labels_without_shifting_them():
    """Labels already shifted: the summed log-probs are minus lesson 07's summed cross-entropy,
    and per token they are CausalLM's own loss, which shifts unshifted labels itself."""
    logits, labels = random_lm_batch(dtype=torch.float32)
    torch.testing.assert_close(sequence_logps(logits, labels).sum(),
                               -cross_entropy_loss(logits, labels, reduction="sum"), **TIGHT)
    model = tiny_model(vocab_size=50)
    ids = torch.randint(0, 50, (3, 12))
    shifted = torch.cat([ids[:, 1:], torch.full((3, 1), -100)], dim=1)  # labels[:, i] = ids[:, i + 1]
    with torch.no_grad():
        out = model(ids, labels=ids)
    torch.testing.assert_close(-sequence_logps(out.logits, shifted).sum() / (3 * 11), out.loss, **TIGHT)


def test_sequence_logps_half_precision_is_float32_and_finite():
    """bf16 logits of magnitude ~1e3: float32 result, equal to the float32 computation on the
    upcast logits; naive softmax-then-log would give -inf."""
    logits, labels = random_lm_batch(dtype=torch.float32)
    big = (logits * 300).bfloat16()
    out = sequence_logps(big, labels)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    torch.testing.assert_close(out, sequence_logps(big.float(), labels), **TIGHT)
    assert torch.isinf(torch.log(torch.softmax(big.float(), dim=-1))).any()


@pytest.mark.parametrize("logits_shape, labels_shape, dtype", [
    ((2, 5, 7), (2, 4), torch.long),  # labels shifted a second time
    ((2, 5, 7), (2, 5, 7), torch.long),
    ((10, 7), (10,), torch.long),  # not [b, s, V]
    ((2, 5, 7), (2, 5), torch.float32),
])
def test_sequence_logps_rejects_bad_inputs(logits_shape, labels_shape, dtype):
    labels = torch.zeros(labels_shape, dtype=dtype)
    with pytest.raises(ValueError, match="labels"):
        sequence_logps(torch.randn(logits_shape), labels)


@pytest.mark.parametrize("average", [False, True])
def test_sequence_logps_matches_trl_get_batch_logps(trl, average):
    """CPOTrainer.get_batch_logps: shifting itself (our labels behind one -100 column) and not
    (is_encoder_decoder=True); rows with labels only, as TRL's mean is 0/0 on an empty row."""
    logits, labels = random_lm_batch()
    logits, labels = logits[:-1], labels[:-1]
    ours = sequence_logps(logits, labels, average=average)
    padded_logits = torch.cat([logits, torch.zeros_like(logits[:, :1])], dim=1)  # [b, s + 1, V]
    unshifted = torch.cat([torch.full_like(labels[:, :1], -100), labels], dim=1)  # [b, s + 1]
    shifting = trl.CPOTrainer.get_batch_logps(padded_logits, unshifted.clone(), average_log_prob=average)
    not_shifting = trl.CPOTrainer.get_batch_logps(logits, labels.clone(), average_log_prob=average,
                                                  is_encoder_decoder=True)
    torch.testing.assert_close(ours, shifting, **TIGHT)
    torch.testing.assert_close(ours, not_shifting, **TIGHT)


# ----- dpo_loss ----------------------------------------------------------------------------------


def brute_force_dpo(pc, pr, rc, rr, beta, loss_type, eps):
    """The textbook formulas, float64, sigmoid written as 1 / (1 + exp(-x))."""
    z = (pc - pr) - (rc - rr)
    sig = lambda x: 1 / (1 + torch.exp(-x))  # noqa: E731
    if loss_type == "sigmoid":
        losses = -(1 - eps) * torch.log(sig(beta * z)) - eps * torch.log(sig(-beta * z))
    elif loss_type == "ipo":
        losses = (z - 1 / (2 * beta)) ** 2
    else:
        losses = torch.clamp(1 - beta * z, min=0)
    return losses.mean()


@pytest.mark.parametrize("loss_type, eps", LOSS_CASES)
def test_dpo_loss_values_and_gradients_match_a_float64_brute_force(loss_type, eps):
    """Float32 inputs: loss and the gradients of all four inputs against autograd of the
    brute force on float64 copies (1e-6)."""
    inputs32 = [t.float().requires_grad_() for t in random_logps()]
    inputs64 = [t.detach().double().requires_grad_() for t in inputs32]
    loss, chosen_rewards, rejected_rewards = dpo_loss(*inputs32, beta=0.3, loss_type=loss_type,
                                                      label_smoothing=eps)
    expected = brute_force_dpo(*inputs64, 0.3, loss_type, eps)
    assert loss.dim() == 0 and loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), expected, **TIGHT)
    loss.backward()
    expected.backward()
    for ours, theirs in zip(inputs32, inputs64, strict=True):
        torch.testing.assert_close(ours.grad.double(), theirs.grad, **TIGHT)


def test_dpo_loss_rewards_are_detached_beta_log_ratios():
    pc, pr, rc, rr = (t.requires_grad_() for t in random_logps())
    loss, chosen_rewards, rejected_rewards = dpo_loss(pc, pr, rc, rr, beta=0.25)
    assert not chosen_rewards.requires_grad and not rejected_rewards.requires_grad
    torch.testing.assert_close(chosen_rewards, 0.25 * (pc - rc).detach(), **TIGHT)
    torch.testing.assert_close(rejected_rewards, 0.25 * (pr - rr).detach(), **TIGHT)
    assert loss.requires_grad


def test_dpo_loss_policy_equal_to_reference_is_log_two_and_stays_finite_far_away():
    """Policy = reference: z = 0, the sigmoid loss is ln 2, ipo 1/(4β²), hinge 1, the rewards 0.
    z = ±2000 at β = 0.5: log(sigmoid) would be -inf; logsigmoid is finite."""
    pc, pr, _, _ = random_logps(dtype=torch.float32)
    loss, cr, rr = dpo_loss(pc, pr, pc, pr, beta=0.5)
    torch.testing.assert_close(loss, torch.tensor(math.log(2)), **TIGHT)
    assert torch.equal(cr, torch.zeros_like(cr)) and torch.equal(rr, torch.zeros_like(rr))
    assert dpo_loss(pc, pr, pc, pr, beta=0.5, loss_type="ipo")[0].item() == pytest.approx(1.0)
    assert dpo_loss(pc, pr, pc, pr, beta=0.5, loss_type="hinge")[0].item() == pytest.approx(1.0)
    chosen = torch.tensor([-2000.0, 0.0], requires_grad=True)
    zero = torch.zeros(2)
    far = dpo_loss(chosen, torch.tensor([0.0, -2000.0]), zero, zero, beta=0.5, label_smoothing=0.1)[0]
    assert torch.isfinite(far)
    far.backward()
    assert torch.isfinite(chosen.grad).all()


@pytest.mark.parametrize("kwargs, match", [
    ({"beta": 0.0}, "beta"), ({"beta": -0.1}, "beta"),
    ({"label_smoothing": 0.5}, "label_smoothing"), ({"label_smoothing": -0.1}, "label_smoothing"),
    ({"loss_type": "kto"}, "loss_type"), ({"loss_type": "ipo", "label_smoothing": 0.1}, "label_smoothing"),
])
def test_dpo_loss_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dpo_loss(*random_logps(), **kwargs)


def test_dpo_loss_rejects_mismatched_shapes():
    pc, pr, rc, rr = random_logps()
    with pytest.raises(ValueError, match="shape"):
        dpo_loss(pc, pr[:-1], rc, rr)


class _RecordingAccelerator:
    """What ``_compute_loss`` asks of ``accelerate.Accelerator`` in one process; keeps what is gathered
    (in order: chosen rewards, rejected rewards, accuracies, margins, chosen logps, rejected logps)."""

    device = torch.device("cpu")

    def __init__(self):
        self.gathered = []

    def gather_for_metrics(self, x):
        return x

    def gather(self, x):
        self.gathered.append(x)
        return x


def trl_dpo_self(loss_type, beta, model, ref_model=None):
    """A stub ``self`` for ``trl.DPOTrainer._compute_loss`` (standard DPO: reverse KL, one loss)."""
    return SimpleNamespace(
        model=model, ref_model=ref_model, accelerator=_RecordingAccelerator(), beta=beta,
        loss_types=[loss_type], loss_weights=[1.0], label_smoothing=0.0, f_divergence_type="reverse_kl",
        precompute_ref_logps=ref_model is None, ld_alpha=None, use_weighting=False, aux_loss_enabled=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)}, _total_train_tokens=0, _tp_size=1,
        args=SimpleNamespace(gradient_checkpointing_kwargs=None),
    )


class _FusedHeadStub:
    """Returns what a model patched by ``trl.trainer.utils.add_fused_lm_head`` returns for fixed
    logits: log-probs of ``labels[:, 1:]`` at positions ``:-1``, 0 where the label is -100."""

    training = False

    def __init__(self, logits, selective_log_softmax):
        self.logits, self.selective_log_softmax = logits, selective_log_softmax

    def __call__(self, input_ids, attention_mask=None, labels=None, fused_lm_head=False, use_cache=None):
        shifted = labels[:, 1:]
        per_token = self.selective_log_softmax(self.logits[:, :-1], shifted.clamp(min=0))
        per_token = per_token.masked_fill(shifted == -100, 0.0)
        zeros = torch.zeros_like(per_token)
        return SimpleNamespace(log_probs=per_token, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool(),
                               aux_loss=None)


@pytest.mark.parametrize("loss_type", ["sigmoid", "hinge", "ipo"])
def test_dpo_loss_matches_trl_dpo_trainer(trl, loss_type):
    """Random float64 logits for 3 pairs (prompt of 1-3 tokens, answers of different lengths,
    right padding): TRL's ``DPOTrainer._compute_loss`` with cached reference log-probs against
    ``dpo_loss(sequence_logps(...))``; loss and per-pair rewards at 1e-6."""
    b, s, vocab, beta = 3, 10, 11, 0.3
    logits = torch.randn(2 * b, s, vocab, dtype=torch.float64) * 2
    input_ids = torch.randint(0, vocab, (2 * b, s))
    completion_mask = torch.zeros(2 * b, s, dtype=torch.long)
    for i in range(2 * b):
        prompt_end = 1 + i % 3
        completion_mask[i, prompt_end: s - i % 2 * 3] = 1
    ref = -10 + torch.randn(2 * b, dtype=torch.float64)
    inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
              "completion_mask": completion_mask, "ref_chosen_logps": ref[:b], "ref_rejected_logps": ref[b:]}
    stub = trl_dpo_self(loss_type, beta, model=SimpleNamespace(training=False))
    theirs = trl.DPOTrainer._compute_loss(stub, _FusedHeadStub(logits, trl.selective_log_softmax), inputs,
                                          return_outputs=False)
    # ours: labels shifted once, here; -100 where TRL's completion mask is 0
    labels = torch.cat([input_ids[:, 1:].masked_fill(completion_mask[:, 1:] == 0, -100),
                        torch.full((2 * b, 1), -100)], dim=1)
    logps = sequence_logps(logits, labels, average=loss_type == "ipo")
    avg = completion_mask.sum(dim=1) if loss_type == "ipo" else torch.ones(2 * b)
    ours, chosen_rewards, rejected_rewards = dpo_loss(logps[:b], logps[b:], ref[:b] / avg[:b], ref[b:] / avg[b:],
                                                      beta=beta, loss_type=loss_type)
    torch.testing.assert_close(ours, theirs, **TIGHT)
    trl_chosen, trl_rejected = stub.accelerator.gathered[:2]
    torch.testing.assert_close(chosen_rewards * avg[:b], trl_chosen, **TIGHT)  # TRL's are of summed logps
    torch.testing.assert_close(rejected_rewards * avg[b:], trl_rejected, **TIGHT)
    summed = sequence_logps(logits, labels)
    torch.testing.assert_close(stub._metrics["eval"]["logps/chosen"][0], summed[:b].mean().item(), **TIGHT)


@pytest.mark.parametrize("loss_type, eps", LOSS_CASES)
def test_dpo_loss_matches_trl_cpo_loss_on_log_ratios(trl, loss_type, eps):
    """``CPOTrainer.cpo_loss(π_c - ref_c, π_r - ref_r)`` is DPO's loss, label smoothing included;
    its rewards β · (π - ref) are DPO's too."""
    pc, pr, rc, rr = random_logps()
    stub = SimpleNamespace(alpha=0.0, beta=0.2, label_smoothing=eps, loss_type=loss_type, simpo_gamma=0.5,
                           accelerator=SimpleNamespace(device=torch.device("cpu")))
    losses, trl_chosen, trl_rejected = trl.CPOTrainer.cpo_loss(stub, pc - rc, pr - rr)
    loss, chosen_rewards, rejected_rewards = dpo_loss(pc, pr, rc, rr, beta=0.2, loss_type=loss_type,
                                                      label_smoothing=eps)
    torch.testing.assert_close(loss, losses.mean(), **TIGHT)
    torch.testing.assert_close(chosen_rewards, trl_chosen, **TIGHT)
    torch.testing.assert_close(rejected_rewards, trl_rejected, **TIGHT)


# ----- DPOTrainer --------------------------------------------------------------------------------


def trl_inputs(data: DPODataset, indices, pad_token_id: int) -> dict[str, torch.Tensor]:
    """TRL's batch for the same pairs: full sequences prompt + answer + EOS (chosen rows, then
    rejected), right-padded, with ``completion_mask`` 1 on the answer and its EOS."""
    rows, masks = [], []
    for side in (1, 2):
        for i in indices:
            prompt, answer = data.examples[i][0], data.examples[i][side]
            rows.append([*prompt, *answer, data.eos_token_id])
            masks.append([0] * len(prompt) + [1] * (len(answer) + 1))
    width = max(len(r) for r in rows)
    return {"input_ids": torch.tensor([r + [pad_token_id] * (width - len(r)) for r in rows]),
            "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
            "completion_mask": torch.tensor([m + [0] * (width - len(m)) for m in masks])}


@pytest.mark.parametrize("loss_type", ["sigmoid", "hinge", "ipo"])
def test_compute_loss_matches_trl_on_the_converted_llama(trl, tmp_path, chat_tokenizer, pairs, loss_type):
    """Policy and reference (two random 1-layer models) converted to ``LlamaForCausalLM`` and given
    TRL's fused LM head; TRL runs its own concatenated and reference forwards."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from intro2llm.interop.hf import config_to_hf, to_hf_state_dict

    def to_trl(model):
        hf = LlamaForCausalLM(LlamaConfig(**config_to_hf(model.config)))
        hf.load_state_dict(to_hf_state_dict(model), strict=not model.config.tie_word_embeddings)
        trl.add_fused_lm_head(hf, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
        return hf.eval()

    policy, ref = tiny_model(chat_tokenizer.vocab_size, seed=0), tiny_model(chat_tokenizer.vocab_size, seed=1)
    trainer = DPOTrainer(policy, make_args(tmp_path), pairs, ref_model=ref, beta=0.2, loss_type=loss_type)
    policy.eval()
    batch = trainer.collate_fn([pairs[i] for i in range(4)])
    with torch.no_grad():
        ours = trainer.compute_loss(policy, batch)
    hf_policy, hf_ref = to_trl(policy), to_trl(ref)
    stub = trl_dpo_self(loss_type, 0.2, model=hf_policy, ref_model=hf_ref)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers: is_gradient_checkpointing is deprecated
        theirs = trl.DPOTrainer._compute_loss(stub, hf_policy, trl_inputs(pairs, range(4), chat_tokenizer.pad_token_id),
                                              return_outputs=False)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)


def test_concatenated_forward_equals_two_separate_forwards(tmp_path, chat_tokenizer, pairs):
    """One forward of [chosen; rejected] (2b rows) = chosen and rejected forwards of b rows (1e-6)
    = each sequence alone without padding (1e-5); the loss is dpo_loss of those log-probs."""
    policy, ref = tiny_model(chat_tokenizer.vocab_size, layers=2), tiny_model(chat_tokenizer.vocab_size, seed=3, layers=2)
    trainer = DPOTrainer(policy, make_args(tmp_path), pairs, ref_model=ref, beta=0.1)
    batch = trainer.collate_fn([pairs[i] for i in range(4)])
    policy.eval()
    with torch.no_grad():
        chosen, rejected = concatenated_logps(policy, batch)
        separate = [sequence_logps(policy(batch[f"{side}_input_ids"],
                                          attention_mask=batch[f"{side}_attention_mask"]).logits,
                                   batch[f"{side}_labels"]) for side in ("chosen", "rejected")]
        alone = [[sequence_logps(policy(pairs[i][f"{side}_input_ids"][None]).logits, pairs[i][f"{side}_labels"][None])
                  for i in range(4)] for side in ("chosen", "rejected")]
        ref_c, ref_r = concatenated_logps(ref, batch)
        loss = trainer.compute_loss(policy, batch)
    torch.testing.assert_close(chosen, separate[0], **TIGHT)
    torch.testing.assert_close(rejected, separate[1], **TIGHT)
    torch.testing.assert_close(chosen, torch.cat(alone[0]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rejected, torch.cat(alone[1]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss, dpo_loss(chosen, rejected, ref_c, ref_r, beta=0.1)[0], **TIGHT)


def test_dpo_training_raises_preference_accuracy(tmp_path, chat_tokenizer, pairs):
    """32 pairs, 30 steps: reward accuracy 0 -> 1.0, log-prob accuracy 0.375 -> 0.94, loss < ln 2."""
    model = tiny_model(chat_tokenizer.vocab_size)
    args = make_args(tmp_path, max_steps=30, per_device_batch_size=8, log_every=5)
    trainer = DPOTrainer(model, args, pairs, beta=0.1)
    before = preference_accuracy(trainer.model, trainer.ref_model, pairs, beta=0.1)
    history = trainer.train()
    after = preference_accuracy(trainer.model, trainer.ref_model, pairs, beta=0.1)
    assert before["accuracy"] == 0.0 and before["margin"] == 0.0 and before["total"] == 32
    assert after["accuracy"] >= 0.9 and after["margin"] > 0.5
    assert after["logp_accuracy"] >= before["logp_accuracy"] + 0.3
    assert after["chosen_reward"] > 0 > after["rejected_reward"]
    losses = [m["loss"] for m in history if "loss" in m]
    assert losses[-1] < 0.5 < math.log(2)
    assert history[-1]["rewards/accuracy"] >= 0.9


def test_reference_model_is_frozen_and_outside_the_optimizer(tmp_path, chat_tokenizer, pairs):
    model = tiny_model(chat_tokenizer.vocab_size, attention_dropout=0.3)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = DPOTrainer(model, make_args(tmp_path, max_steps=5, learning_rate=5e-2), pairs)
    ref = trainer.ref_model
    assert ref is not model and not ref.training
    assert all(not p.requires_grad for p in ref.parameters())
    in_optimizer = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not in_optimizer & {id(p) for p in ref.parameters()}
    trainer.train()
    assert not ref.training and all(p.grad is None for p in ref.parameters())
    for name, value in ref.state_dict().items():
        assert torch.equal(value, start[name]), name  # bit-identical to the policy at the start
    assert any(not torch.equal(v, start[k]) for k, v in model.state_dict().items())


def test_trainer_rejects_bad_arguments(tmp_path, chat_tokenizer, pairs):
    model = tiny_model(chat_tokenizer.vocab_size)
    for kwargs, match in [({"beta": 0}, "beta"), ({"loss_type": "orpo"}, "loss_type"),
                          ({"label_smoothing": 0.5}, "label_smoothing"), ({"ref_model": model}, "ref_model")]:
        with pytest.raises(ValueError, match=match):
            DPOTrainer(model, make_args(tmp_path), pairs, **kwargs)


def test_precomputed_reference_logps_give_the_same_run(tmp_path, chat_tokenizer, pairs):
    """The cache holds each pair's on-the-fly values; the run logs the same losses and rewards
    (1e-6) and the reference never runs during training."""
    args = dict(max_steps=6, per_device_batch_size=4, gradient_accumulation_steps=2)
    live = DPOTrainer(tiny_model(chat_tokenizer.vocab_size), make_args(tmp_path / "a", **args), pairs)
    cached = DPOTrainer(tiny_model(chat_tokenizer.vocab_size), make_args(tmp_path / "b", **args), pairs,
                        precompute_ref_logps=True)
    assert cached.ref_chosen_logps.shape == (len(pairs),)
    with torch.no_grad():
        for i in (0, 13, 31):
            batch = live.collate_fn([pairs[i]])
            c, r = concatenated_logps(live.ref_model, batch)
            torch.testing.assert_close(cached.ref_chosen_logps[i], c[0], **TIGHT)
            torch.testing.assert_close(cached.ref_rejected_logps[i], r[0], **TIGHT)
    calls = []
    cached.ref_model.register_forward_pre_hook(lambda *a: calls.append(1))
    h_live, h_cached = live.train(), cached.train()
    assert not calls
    for a, b in zip(h_live, h_cached, strict=True):
        for key in ("loss", *REWARD_METRICS):
            assert a[key] == pytest.approx(b[key], abs=1e-6), key


def test_reward_metrics_average_the_micro_batches_since_the_last_log(tmp_path, chat_tokenizer, pairs):
    """Accumulation 2, log_every 2: each training entry averages 4 micro-batches' statistics;
    evaluation entries carry none and evaluation records nothing."""
    seen = []

    class Recording(DPOTrainer):
        def record_rewards(self, chosen_rewards, rejected_rewards):
            seen.append((chosen_rewards.clone(), rejected_rewards.clone()))
            super().record_rewards(chosen_rewards, rejected_rewards)

    args = make_args(tmp_path, max_steps=4, gradient_accumulation_steps=2, log_every=2, eval_every=2)
    trainer = Recording(tiny_model(chat_tokenizer.vocab_size), args, pairs, loss_type="ipo", beta=0.5,
                        eval_dataset=[pairs[i] for i in range(6)])
    history = trainer.train()
    train_logs = [m for m in history if "loss" in m]
    eval_logs = [m for m in history if "eval_loss" in m]
    assert len(seen) == 8 and len(train_logs) == 2 and len(eval_logs) == 2
    for k, entry in enumerate(train_logs):
        window = seen[4 * k: 4 * k + 4]
        expected = {
            "rewards/chosen": sum(c.mean().item() for c, _ in window) / 4,
            "rewards/rejected": sum(r.mean().item() for _, r in window) / 4,
            "rewards/accuracy": sum((c > r).float().mean().item() for c, r in window) / 4,
            "rewards/margin": sum((c - r).mean().item() for c, r in window) / 4,
        }
        for key, value in expected.items():
            assert entry[key] == pytest.approx(value, abs=1e-6), key
        assert entry["tokens_per_s"] > 0
    assert all(not set(REWARD_METRICS) & set(m) for m in eval_logs)
    assert not trainer._reward_stats


def test_evaluate_gives_the_mean_dpo_loss_of_the_batches(tmp_path, chat_tokenizer, pairs):
    """6 evaluation pairs in batches of 4 and 2: eval_loss is the mean of the two batch losses;
    the weights do not change and no reward statistics are recorded."""
    model = tiny_model(chat_tokenizer.vocab_size)
    eval_pairs = [pairs[i] for i in range(6)]
    trainer = DPOTrainer(model, make_args(tmp_path), pairs, ref_model=tiny_model(chat_tokenizer.vocab_size, seed=5),
                         eval_dataset=eval_pairs)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = trainer.evaluate()
    model.eval()
    with torch.no_grad():
        expected = [trainer.compute_loss(model, trainer.collate_fn(chunk)).item()
                    for chunk in (eval_pairs[:4], eval_pairs[4:])]
    assert result["eval_loss"] == pytest.approx(sum(expected) / 2, abs=1e-6)
    assert not trainer._reward_stats
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
