"""Lesson 08, advanced tier: random inputs against brute force, torch and the reference.

Expected values come from three places, never from numbers pasted into this file:

- **brute force written here**: ``sequence_logps`` as a Python loop over every token
  (``torch.log_softmax`` of one position, its label picked by hand), ``dpo_loss`` as the
  textbook formulas in float64 with the sigmoid written ``1 / (1 + exp(-x))``, and autograd of
  both for the gradients;
- **torch and the model itself**: ``CausalLM(ids, labels=ids).loss`` (which shifts unshifted
  labels itself) against ``sequence_logps`` of the shifted labels;
- **the reference library** (``intro2llm``), run side by side: ``sequence_logps`` and
  ``dpo_loss`` on half-precision and extreme inputs, ``DPOTrainer.compute_loss`` on the same
  batch (loss, gradients, recorded rewards) and whole training runs (every logged loss and
  reward metric, the final weights), with accumulation, precomputed reference log-probs and
  evaluation.

Tolerances (``|actual - expected| <= atol + rtol·|expected|``):

- float64 against the brute force: ``1e-10`` (they agree to ~1e-15); float32 against float64
  brute force: ``1e-6`` + ``1e-6`` relative (sums of ~10 terms, a few ulps each);
- half precision: the result must equal the float32 computation on the upcast logits
  (``1e-6`` relative: both then compute in float32);
- the learner's trainer against the reference trainer, float32: ``1e-5`` on losses, rewards and
  gradients (the same float32 operations, possibly in another order, summed over up to ~90
  tokens: a correct implementation is ~1e-7 off). Training runs use plain SGD, which is linear
  in the gradient, so such rounding stays rounding (Adam divides a near-zero gradient by its
  own size and can turn it into a visible step); ``1e-5`` on every logged value and weight.
  The mistakes of ``mistakes.py`` move these numbers by 1e-2 or more.

Shared and not under test: the reference ``CausalLM`` (hidden 32, one layer, the 262-token chat
vocabulary), 32 built-in preference pairs, ``dpo_collate``, the ``Trainer`` loop.
Everything runs on the CPU in one thread, seeded.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from intro2llm_cli.testkit import assert_close, learner, reference, say

TIGHT64 = {"atol": 1e-10, "rtol": 1e-10}
F32 = {"atol": 1e-6, "rtol": 1e-6}
SIDE = {"atol": 1e-5, "rtol": 1e-5}
LOSS_CASES = [("sigmoid", 0.0), ("sigmoid", 0.2), ("ipo", 0.0), ("hinge", 0.0)]
LOSS_IDS = ["sigmoid", "sigmoid-smoothed", "ipo", "hinge"]

SEQ_HINT = (
    "对照 Step 注释：logits[:, i] 直接对 labels[:, i] 打分（labels 已错开，不要再移位）；只有 labels != -100 的位置计分；"
    "average=False 求和，average=True 除以 mask.sum(-1).clamp(min=1)；先升到至少 float32",
    "check against the Step comments: logits[:, i] scores labels[:, i] directly (labels are already shifted: no "
    "second shift); only positions with labels != -100 count; average=False sums, average=True divides by "
    "mask.sum(-1).clamp(min=1); promote to at least float32 first",
)
DPO_HINT = (
    "对照公式：logits = (π_c - π_r) - (ref_c - ref_r)；sigmoid: -(1-ε)·logsigmoid(β·logits) - ε·logsigmoid(-β·logits)；"
    "ipo: (logits - 1/(2β))²；hinge: relu(1 - β·logits)；对 batch 取平均；用 F.logsigmoid，不要 log(sigmoid)",
    "check the formula: logits = (π_c - π_r) - (ref_c - ref_r); sigmoid: -(1-ε)·logsigmoid(β·logits) - "
    "ε·logsigmoid(-β·logits); ipo: (logits - 1/(2β))²; hinge: relu(1 - β·logits); the batch mean; F.logsigmoid, not "
    "log(sigmoid)",
)
COMPUTE_HINT = (
    "和参考实现的 compute_loss 不一致：chosen 在前 rejected 在后拼成 [2b, L] 一次前向；labels 原样交给 sequence_logps；"
    "logps[:b] 是 chosen；参考模型 self.ref_model 在 torch.no_grad() 里对同样的输入前向；IPO 用 average=self.average_logps；"
    "dpo_loss 的 beta / loss_type / label_smoothing 取 self 上的值",
    "differs from the reference compute_loss: chosen first, rejected second, concatenated to [2b, L] for one forward; "
    "labels go to sequence_logps as they are; logps[:b] is chosen; the reference self.ref_model runs on the same "
    "inputs under torch.no_grad(); IPO uses average=self.average_logps; dpo_loss gets self's beta / loss_type / "
    "label_smoothing",
)
RUN_HINT = (
    "训练记录和参考实现不一致：第一条就不同说明 compute_loss（或 sequence_logps / dpo_loss）算的不同；后面才不同说明梯度不同"
    "（loss 要带着策略的计算图、参考模型那一项是常数）；rewards/* 来自 compute_loss 里调用的 self.record_rewards",
    "the training log differs from the reference's: a difference in the first entry means compute_loss (or "
    "sequence_logps / dpo_loss) computes something else; a later one means other gradients (the loss keeps the "
    "policy's graph, the reference term is a constant); rewards/* come from the self.record_rewards call in "
    "compute_loss",
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from intra-op threads; one thread is faster and repeatable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _dl():
    return learner("loss.dpo_loss")


def _ref_dl():
    return reference("loss.dpo_loss")


def _random_lm_batch(b=4, s=9, vocab=13, dtype=torch.float64, seed=0):
    """Logits ``[b, s, V]`` (scale 3) and shifted labels: a prompt of 0-2 positions (-100), an
    answer, right padding (-100); the last row has no label at all."""
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(b, s, vocab, generator=g) * 3).to(dtype)
    labels = torch.randint(0, vocab, (b, s), generator=g)
    for i in range(b):
        start, end = int(torch.randint(0, 3, (), generator=g)), int(torch.randint(4, s + 1, (), generator=g))
        labels[i, :start] = -100
        labels[i, end:] = -100
    labels[-1] = -100
    return logits, labels


def _loop_logps(logits, labels, average):
    """One token at a time: log_softmax of the position, the label's entry; sum or mean per row."""
    rows = []
    for i in range(logits.shape[0]):
        terms = [torch.log_softmax(logits[i, t].double(), dim=-1)[labels[i, t]]
                 for t in range(logits.shape[1]) if labels[i, t] != -100]
        total = sum(terms, torch.zeros((), dtype=torch.float64))
        rows.append(total / max(len(terms), 1) if average else total)
    return torch.stack(rows)


def _random_logps(b=8, dtype=torch.float64, seed=1):
    """Four ``[b]`` log-probability tensors of answers of ~20 tokens."""
    g = torch.Generator().manual_seed(seed)
    return [(-20 + 5 * torch.randn(b, generator=g)).to(dtype) for _ in range(4)]


def _brute_dpo(pc, pr, rc, rr, beta, loss_type, eps):
    """The textbook formulas, the sigmoid written as 1 / (1 + exp(-x))."""
    z = (pc - pr) - (rc - rr)

    def sig(x):
        return 1 / (1 + torch.exp(-x))

    if loss_type == "sigmoid":
        losses = -(1 - eps) * torch.log(sig(beta * z)) - eps * torch.log(sig(-beta * z))
    elif loss_type == "ipo":
        losses = (z - 1 / (2 * beta)) ** 2
    else:
        losses = torch.clamp(1 - beta * z, min=0)
    return losses.mean()


# ===================================================================== sequence_logps


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("average", [False, True], ids=["sum", "mean"])
@pytest.mark.symbol("sequence_logps")
def test_sequence_logps_matches_a_per_token_loop(average, dtype):
    """Random logits ``[4, 9, 13]``, labels with a prompt prefix, padding, and one empty row:
    every row against the loop, values and gradients (``d/d logits``, through autograd of the
    loop); the empty row is exactly 0."""
    logits, labels = _random_lm_batch(dtype=dtype)
    mine = logits.clone().requires_grad_()
    brute = logits.clone().double().requires_grad_()
    out = _dl().sequence_logps(mine, labels, average=average)
    expected = _loop_logps(brute, labels, average)
    tol = TIGHT64 if dtype == torch.float64 else F32
    assert_close(out.double(), expected.detach(), f"sequence_logps({dtype}, average={average})", **tol, hint=SEQ_HINT)
    assert out.dtype == dtype, say(f"{dtype} 的 logits 应给出 {dtype}，得到 {out.dtype}",
                                   f"{dtype} logits should give {dtype}, got {out.dtype}")
    assert float(out[-1].detach()) == 0.0, say("没有标签 token 的行应该恰好是 0", "a row without label tokens must be exactly 0")
    weights = torch.randn(out.shape, dtype=torch.float64)
    (out.double() * weights).sum().backward()
    (expected * weights).sum().backward()
    assert_close(mine.grad.double(), brute.grad, f"d sequence_logps / d logits ({dtype}, average={average})", **tol,
                 hint=("值对了梯度不对？梯度只应落在计分的位置：softmax 之差 onehot(label) - softmax(logits)，-100 的位置为 0",
                       "values right, gradients wrong? the gradient belongs to the scored positions only: "
                       "onehot(label) - softmax(logits), and 0 at the -100 positions"))


@pytest.mark.symbol("sequence_logps")
def test_sequence_logps_of_shifted_labels_is_the_models_own_loss():
    """``CausalLM(ids, labels=ids).loss`` shifts *unshifted* labels itself: the mean over the
    ``3 × 11`` predicted tokens of ``-log p(ids[t + 1] | ids[:t + 1])``. The same labels shifted
    once (``labels[:, i] = ids[:, i + 1]``, -100 at the end), as the datasets write them, give
    ``-sum(sequence_logps) / 33`` = that loss. A second shift inside ``sequence_logps`` scores
    every token against the one after it."""
    config = reference("model.config").ModelConfig.tiny(vocab_size=50, hidden_size=32, intermediate_size=64,
                                                        num_hidden_layers=1, num_attention_heads=2,
                                                        num_key_value_heads=1)
    torch.manual_seed(0)
    model = reference("model.causal_lm").CausalLM(config).eval()
    ids = torch.randint(0, 50, (3, 12))
    shifted = torch.cat([ids[:, 1:], torch.full((3, 1), -100)], dim=1)
    with torch.no_grad():
        out = model(ids, labels=ids)
        mine = _dl().sequence_logps(out.logits, shifted)
    assert_close(-mine.sum() / 33, out.loss, "-sum(sequence_logps) / 33 against CausalLM's loss", **F32,
                 hint=("labels 已经错开一位：logits[:, i] 对 labels[:, i]，不要再切 logits[:, :-1] / labels[:, 1:]",
                       "the labels are already shifted: logits[:, i] against labels[:, i], no more slicing "
                       "logits[:, :-1] / labels[:, 1:]"))


@pytest.mark.symbol("sequence_logps")
def test_sequence_logps_ignores_whatever_sits_at_minus_100():
    """The logits at prompt and padding positions (labels -100) are replaced by values of size
    1e4: the result must not move at all. Also the labels' -100 never reaches ``gather``
    (an index of -100 is an error, or silently the 100th-from-last token)."""
    logits, labels = _random_lm_batch(dtype=torch.float32)
    noisy = logits.clone()
    ignored = labels == -100
    noisy[ignored] = torch.randn(int(ignored.sum()), logits.shape[-1]) * 1e4
    for average in (False, True):
        assert_close(_dl().sequence_logps(noisy, labels, average=average),
                     _dl().sequence_logps(logits, labels, average=average),
                     f"sequence_logps(average={average}) with huge logits at the -100 positions", **F32,
                     hint=("-100 的位置不能影响结果：mask = labels != -100，per_token.masked_fill(~mask, 0) 之后再求和",
                           "the -100 positions must not count: mask = labels != -100, per_token.masked_fill(~mask, 0) "
                           "before the sum"))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.symbol("sequence_logps")
def test_sequence_logps_promotes_half_precision_logits(dtype):
    """Half-precision logits of magnitude ~1e3 (as mixed-precision training produces): the result
    is float32, finite, and equal to float32 scoring of the same values upcast. Summing ~10
    per-token log-probs in bf16 (8 significant bits) would be off by whole units."""
    logits, labels = _random_lm_batch(dtype=torch.float32)
    big = (logits * 300).to(dtype)
    for average in (False, True):
        out = _dl().sequence_logps(big, labels, average=average)
        expected = _ref_dl().sequence_logps(big.float(), labels, average=average)
        assert out.dtype == torch.float32, say(
            f"{dtype} 的 logits 应得到 float32，得到 {out.dtype}：先 logits.to(torch.promote_types(logits.dtype, "
            "torch.float32)) 再算 logsumexp",
            f"{dtype} logits should give float32, got {out.dtype}: logits.to(torch.promote_types(logits.dtype, "
            "torch.float32)) before the logsumexp")
        assert_close(out, expected, f"sequence_logps({dtype}, average={average})", atol=1e-6, rtol=1e-6,
                     hint=("在 float32 里算：半精度的 logsumexp 和求和会丢掉整数位的精度",
                           "compute in float32: a half-precision logsumexp and sum lose whole units"))


# ===================================================================== dpo_loss


@pytest.mark.parametrize("loss_type, eps", LOSS_CASES, ids=LOSS_IDS)
@pytest.mark.symbol("dpo_loss")
def test_dpo_loss_matches_the_float64_textbook_formula_with_gradients(loss_type, eps):
    """8 pairs of float32 log-probs (~-20 ± 5), β = 0.3: the loss and the gradients of all four
    inputs against autograd of the textbook formula on float64 copies. The gradient on the
    reference inputs is minus that on the policy's (only the log-ratios enter)."""
    inputs32 = [t.float().requires_grad_() for t in _random_logps()]
    inputs64 = [t.detach().double().requires_grad_() for t in inputs32]
    loss = _dl().dpo_loss(*inputs32, beta=0.3, loss_type=loss_type, label_smoothing=eps)[0]
    expected = _brute_dpo(*inputs64, 0.3, loss_type, eps)
    what = f"dpo_loss(loss_type={loss_type!r}, beta=0.3, label_smoothing={eps})"
    assert loss.dim() == 0 and loss.dtype == torch.float32, say(
        f"{what} 应是 0 维 float32 张量，得到 {tuple(loss.shape)} {loss.dtype}：返回 losses.mean()",
        f"{what} should be a 0-d float32 tensor, got {tuple(loss.shape)} {loss.dtype}: return losses.mean()")
    assert_close(loss.double(), expected.detach(), what, **F32, hint=DPO_HINT)
    loss.backward()
    expected.backward()
    for name, ours, theirs in zip(("policy_chosen", "policy_rejected", "ref_chosen", "ref_rejected"), inputs32,
                                  inputs64, strict=True):
        assert ours.grad is not None, say(f"{name}_logps 没有梯度", f"{name}_logps got no gradient")
        assert_close(ours.grad.double(), theirs.grad, f"{what}: d loss / d {name}_logps", **F32, hint=DPO_HINT)


@pytest.mark.parametrize("loss_type, eps", LOSS_CASES, ids=LOSS_IDS)
@pytest.mark.symbol("dpo_loss")
def test_dpo_loss_rewards_are_detached_log_ratios_for_every_loss_type(loss_type, eps):
    """Whatever the loss, ``chosen_rewards = β·(π_c - ref_c)`` and ``rejected_rewards = β·(π_r - ref_r)``
    (``[b]``, float64 here), without a graph."""
    pc, pr, rc, rr = (t.requires_grad_() for t in _random_logps())
    _, chosen, rejected = _dl().dpo_loss(pc, pr, rc, rr, beta=0.4, loss_type=loss_type, label_smoothing=eps)
    for name, got, want in (("chosen_rewards", chosen, 0.4 * (pc - rc)), ("rejected_rewards", rejected,
                                                                         0.4 * (pr - rr))):
        assert not got.requires_grad and got.grad_fn is None, say(
            f"{name} 连着计算图：奖励要 detach", f"{name} is attached to the graph: detach the rewards")
        assert_close(got, want.detach(), f"{name} ({loss_type})", **TIGHT64,
                     hint=("奖励是 β·(策略 - 参考)，每一边各自算", "a reward is β·(policy - reference), per side"))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64], ids=["bf16", "fp16", "float64"])
@pytest.mark.symbol("dpo_loss")
def test_dpo_loss_promotes_half_precision_inputs(dtype):
    """Half-precision log-probs give a float32 loss and float32 rewards, equal to the computation on
    the upcast values; float64 stays float64."""
    inputs = [t.to(dtype) for t in _random_logps()]
    out = _dl().dpo_loss(*inputs, beta=0.2, label_smoothing=0.1)
    expected = _ref_dl().dpo_loss(*[t.to(torch.promote_types(dtype, torch.float32)) for t in inputs], beta=0.2,
                                  label_smoothing=0.1)
    for name, got, want in zip(("loss", "chosen_rewards", "rejected_rewards"), out, expected, strict=True):
        assert got.dtype == want.dtype, say(
            f"{dtype} 输入时 {name} 应是 {want.dtype}，得到 {got.dtype}：先 .to(torch.promote_types(dtype, torch.float32))",
            f"with {dtype} inputs {name} should be {want.dtype}, got {got.dtype}: first "
            ".to(torch.promote_types(dtype, torch.float32))")
        assert_close(got, want, f"{name} ({dtype} inputs)", **F32, hint=DPO_HINT)


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.symbol("dpo_loss")
def test_dpo_loss_is_finite_and_exact_at_extreme_margins(eps):
    """β = 0.5, ``z = ±2000`` (``β·z = ±1000``) and a moderate pair: float32 ``sigmoid(-1000)`` is 0,
    so ``log(sigmoid(·))`` is ``-inf`` on one side or the other (with smoothing both sides are
    used); ``F.logsigmoid`` gives the exact ``-1000``. Loss and gradients equal the reference's."""
    pc = torch.tensor([-2000.0, 0.0, -3.0], requires_grad=True)
    pr = torch.tensor([0.0, -2000.0, -4.0])
    zero = torch.zeros(3)
    loss = _dl().dpo_loss(pc, pr, zero, zero, beta=0.5, label_smoothing=eps)[0]
    ref_pc = pc.detach().clone().requires_grad_()
    expected = _ref_dl().dpo_loss(ref_pc, pr, zero, zero, beta=0.5, label_smoothing=eps)[0]
    hint = ("log(sigmoid(x)) 在 |x| 很大时是 log(0) = -inf：用 F.logsigmoid(x) 和 F.logsigmoid(-x)",
            "log(sigmoid(x)) at large |x| is log(0) = -inf: use F.logsigmoid(x) and F.logsigmoid(-x)")
    assert_close(loss, expected.detach(), f"dpo_loss at β·z = ±1000 (label_smoothing={eps})", **F32, hint=hint)
    loss.backward()
    expected.backward()
    assert_close(pc.grad, ref_pc.grad, f"d loss / d policy_chosen_logps at β·z = ±1000 (label_smoothing={eps})",
                 **F32, hint=hint)


# ===================================================================== DPOTrainer.compute_loss


@pytest.fixture(scope="module")
def tokenizer():
    tok = reference("tokenizer")
    chat = reference("data.sft_dataset").CHAT_SPECIAL_TOKENS
    return tok.ByteLevelTokenizer(list(tok.DEFAULT_SPECIAL_TOKENS) + list(chat))


@pytest.fixture(scope="module")
def pairs(tokenizer):
    records = reference("data.builtin").preference_records(num=32, seed=0)
    return reference("data.dpo_dataset").DPODataset(records, tokenizer, max_length=96)


def _model(vocab: int, seed: int = 0, dropout: float = 0.0):
    config = reference("model.config").ModelConfig.tiny(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=128, attention_dropout=dropout)
    torch.manual_seed(seed)
    return reference("model.causal_lm").CausalLM(config)


def _recording(module):
    """``module.DPOTrainer`` whose record_rewards also keeps what compute_loss passed it."""

    class Recording(module.DPOTrainer):
        def record_rewards(self, chosen_rewards, rejected_rewards):
            self.seen_rewards = [*getattr(self, "seen_rewards", []),
                                 (chosen_rewards.detach().clone(), rejected_rewards.detach().clone())]
            super().record_rewards(chosen_rewards, rejected_rewards)

    return Recording


def _pair_of_trainers(tmp_path, pairs, vocab, sgd: bool = False, **kwargs):
    """The learner's and the reference's DPOTrainer on identical copies of one policy (seed 0) and
    one reference (seed 1); plain SGD (lr 0.5) when ``sgd``."""
    args_overrides = kwargs.pop("args", {})
    policy, ref = _model(vocab, 0), _model(vocab, 1)
    out = []
    for side in ("mine", "reference"):
        get = learner if side == "mine" else reference
        base = dict(max_steps=4, per_device_batch_size=4, gradient_accumulation_steps=1, learning_rate=0.5,
                    weight_decay=0.0, warmup_steps=0, lr_schedule="constant", max_grad_norm=None, log_every=1,
                    seed=0, device="cpu")
        args = get("training.trainer").TrainingArguments(output_dir=str(tmp_path / side),
                                                         **{**base, **args_overrides})
        model = copy.deepcopy(policy)
        extra = {"optimizer": torch.optim.SGD(model.parameters(), lr=args.learning_rate)} if sgd else {}
        out.append(_recording(get("training.dpo_trainer"))(model, args, pairs, ref_model=copy.deepcopy(ref),
                                                           **extra, **kwargs))
    return out


@pytest.mark.parametrize("loss_type, eps", LOSS_CASES, ids=LOSS_IDS)
@pytest.mark.symbol("DPOTrainer.compute_loss")
def test_compute_loss_matches_the_reference_trainer(tmp_path, pairs, tokenizer, loss_type, eps):
    """Your whole stack against the reference's on the same 5 pairs (answers and prompts of
    different lengths, so padding matters), β = 0.3: the loss, its gradient on every policy
    weight, and the per-pair rewards passed to ``record_rewards``."""
    mine, ref = _pair_of_trainers(tmp_path, pairs, tokenizer.vocab_size, beta=0.3, loss_type=loss_type,
                                  label_smoothing=eps)
    batch = ref.collate_fn([pairs[i] for i in (3, 8, 1, 20, 14)])
    losses = []
    for trainer in (mine, ref):
        trainer.model.train()
        loss = trainer.compute_loss(trainer.model, {k: v.clone() for k, v in batch.items()})
        loss.backward()
        losses.append(loss)
    what = f"compute_loss(loss_type={loss_type!r}, beta=0.3, label_smoothing={eps})"
    assert_close(losses[0].detach(), losses[1].detach(), what, **SIDE, hint=COMPUTE_HINT)
    for (name, p), q in zip(mine.model.named_parameters(), ref.model.parameters(), strict=True):
        assert p.grad is not None, say(f"策略参数 {name} 没有梯度", f"the policy parameter {name} got no gradient")
        assert_close(p.grad, q.grad, f"{what}: gradient of {name}", **SIDE, hint=COMPUTE_HINT)
    seen, expected = getattr(mine, "seen_rewards", []), ref.seen_rewards
    assert len(seen) == 1, say(f"compute_loss 应调用 self.record_rewards 一次，实际 {len(seen)} 次",
                               f"compute_loss should call self.record_rewards once, it did {len(seen)} times")
    for name, got, want in zip(("chosen_rewards", "rejected_rewards"), seen[0], expected[0], strict=True):
        assert_close(got, want, f"{what}: recorded {name}", **SIDE,
                     hint=("把 dpo_loss 返回的 chosen_rewards, rejected_rewards 原样交给 self.record_rewards",
                           "pass dpo_loss's chosen_rewards, rejected_rewards to self.record_rewards as they are"))


@pytest.mark.symbol("DPOTrainer.compute_loss")
def test_training_run_matches_the_reference_trainer(tmp_path, pairs, tokenizer):
    """6 steps of 2 micro-batches of 4 pairs (so two epochs of the 32 pairs), SGD lr 0.5, β = 0.2,
    sigmoid with ε = 0.1, attention dropout 0 (deterministic): every logged loss and
    ``rewards/chosen | rejected | accuracy | margin`` and the final policy weights equal the
    reference trainer's; the reference model stays bit-identical, frozen and out of the optimiser."""
    mine, ref = _pair_of_trainers(tmp_path, pairs, tokenizer.vocab_size, sgd=True, beta=0.2, label_smoothing=0.1,
                                  args={"max_steps": 6, "gradient_accumulation_steps": 2})
    start = {k: v.clone() for k, v in mine.ref_model.state_dict().items()}
    got, want = mine.train(), ref.train()
    keys = ("loss", "rewards/chosen", "rewards/rejected", "rewards/accuracy", "rewards/margin")
    got, want = [m for m in got if "loss" in m], [m for m in want if "loss" in m]
    assert len(got) == len(want), say(f"记录了 {len(got)} 条训练日志，应为 {len(want)}",
                                      f"{len(got)} training log entries, expected {len(want)}")
    for m, r in zip(got, want, strict=True):
        for key in keys:
            value = m.get(key)
            ok = isinstance(value, (int, float)) and abs(value - r[key]) <= 1e-5 + 1e-5 * abs(r[key])
            assert ok, say(
                f"第 {r['step']} 步的 {key} 是 {value!r}，参考实现是 {r[key]!r}\n{RUN_HINT[0]}",
                f"{key} at step {r['step']} is {value!r}, the reference trainer logged {r[key]!r}\n{RUN_HINT[1]}")
    for (name, p), q in zip(mine.model.named_parameters(), ref.model.parameters(), strict=True):
        assert_close(p.detach(), q.detach(), f"policy weight {name} after 6 steps", **SIDE, hint=RUN_HINT)
    changed = [k for k, v in mine.ref_model.state_dict().items() if not torch.equal(v, start[k])]
    assert not changed and all(not p.requires_grad and p.grad is None for p in mine.ref_model.parameters()), say(
        f"参考模型被改动或带了梯度：{changed[:3]}", f"the reference model changed or holds gradients: {changed[:3]}")
    in_optimizer = {id(p) for group in mine.optimizer.param_groups for p in group["params"]}
    assert not in_optimizer & {id(p) for p in mine.ref_model.parameters()}, say(
        "参考模型的参数在优化器里", "the reference model's parameters are in the optimiser")


@pytest.mark.symbol("DPOTrainer.compute_loss")
def test_precomputed_reference_run_matches_and_never_runs_the_reference(tmp_path, pairs, tokenizer):
    """``precompute_ref_logps=True``, IPO (per-token means, β = 0.5), 4 steps of 4 pairs: the
    reference model never runs during ``train()``, and every logged loss and reward equals the
    reference trainer's run with the same cache."""
    mine, ref = _pair_of_trainers(tmp_path, pairs, tokenizer.vocab_size, sgd=True, beta=0.5, loss_type="ipo",
                                  precompute_ref_logps=True)
    calls = []
    mine.ref_model.register_forward_pre_hook(lambda *args: calls.append(1))
    got, want = mine.train(), ref.train()
    assert not calls, say(
        f"缓存了参考对数概率，训练时参考模型却运行了 {len(calls)} 次：batch 里有 \"index\" 且缓存不为 None 时取缓存",
        f"the reference log-probs are cached, yet the reference ran {len(calls)} times during training: when the batch "
        "has \"index\" and the cache is not None, use the cache")
    for m, r in zip([m for m in got if "loss" in m], [m for m in want if "loss" in m], strict=True):
        for key in ("loss", "rewards/chosen", "rewards/rejected", "rewards/margin"):
            value = m.get(key)
            ok = isinstance(value, (int, float)) and abs(value - r[key]) <= 1e-5 + 1e-5 * abs(r[key])
            assert ok, say(f"第 {r['step']} 步的 {key} 是 {value!r}，参考实现是 {r[key]!r}\n{RUN_HINT[0]}",
                           f"{key} at step {r['step']} is {value!r}, the reference trainer logged {r[key]!r}\n"
                           f"{RUN_HINT[1]}")


@pytest.mark.symbol("DPOTrainer.compute_loss")
def test_evaluation_matches_the_reference_and_leaves_training_metrics_alone(tmp_path, pairs, tokenizer):
    """Hinge loss, β = 0.4: ``evaluate()`` on 6 pairs (batches of 4 and 2) gives the reference
    trainer's ``eval_loss``, records no rewards, and changes no weight."""
    eval_pairs = [pairs[i] for i in range(6)]
    mine, ref = _pair_of_trainers(tmp_path, pairs, tokenizer.vocab_size, beta=0.4, loss_type="hinge",
                                  eval_dataset=eval_pairs)
    before = {k: v.clone() for k, v in mine.model.state_dict().items()}
    got, want = mine.evaluate()["eval_loss"], ref.evaluate()["eval_loss"]
    assert abs(got - want) <= 1e-5 + 1e-5 * abs(want), say(
        f"eval_loss 是 {got!r}，参考实现是 {want!r}\n{COMPUTE_HINT[0]}",
        f"eval_loss is {got!r}, the reference trainer gives {want!r}\n{COMPUTE_HINT[1]}")
    assert not getattr(mine, "seen_rewards", []), say(
        "evaluate() 里调用了 record_rewards：只在 model.training and torch.is_grad_enabled() 时记录",
        "evaluate() called record_rewards: record only when model.training and torch.is_grad_enabled()")
    assert all(torch.equal(v, before[k]) for k, v in mine.model.state_dict().items()), say(
        "evaluate() 改变了权重", "evaluate() changed the weights")
    assert math.isfinite(got)
