"""Lesson 10 reference: ``Trainer`` / ``PretrainTrainer`` / ``SFTTrainer``, checkpoints, mixed precision.

Every test trains a model of a few thousand parameters on random token blocks for a
few steps, single-threaded, so results are deterministic and the file runs in seconds.
Tolerances: gradient accumulation 4 × 2 against one batch of 8 within 1e-6 (float32
sums in a different order); the exact-resume test compares every logged float with
``==`` and the final weights with ``torch.equal``; bf16 autocast on the CPU is compared
with fp32 within 2% relative (bf16 keeps 8 significant bits, ~0.4% per rounding).
"""

from __future__ import annotations

import json
import math
import pickle

import pytest
import torch
from torch import nn

from intro2llm.data.builtin import instruction_records
from intro2llm.data.sft_dataset import CHAT_SPECIAL_TOKENS, SFTDataset
from intro2llm.model.causal_lm import CausalLM
from intro2llm.model.config import ModelConfig
from intro2llm.optimizer.scheduler import cosine_lr_lambda
from intro2llm.tokenizer import DEFAULT_SPECIAL_TOKENS, ByteLevelTokenizer
from intro2llm.training.checkpointing import MODEL_FILE, OPTIMIZER_FILE, STATE_FILE
from intro2llm.training.pretrain_trainer import PretrainTrainer
from intro2llm.training.sft_trainer import SFTTrainer, exact_match_accuracy
from intro2llm.training.trainer import Trainer, TrainingArguments
from intro2llm.utils.mixed_precision import LossScaler, autocast_context, autocast_dtype

VOCAB = 64
SEQ = 16



def tiny_model(seed: int = 0, **overrides) -> CausalLM:
    torch.manual_seed(seed)
    config = ModelConfig.tiny(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                              num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                              max_position_embeddings=64, **overrides)
    return CausalLM(config)


def token_blocks(n: int, seed: int = 1) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    blocks = []
    for _ in range(n):
        x = torch.randint(3, VOCAB, (SEQ + 1,), generator=g)
        blocks.append({"input_ids": x[:-1], "labels": x[1:]})
    return blocks


def make_args(tmp_path, **overrides) -> TrainingArguments:
    params = dict(output_dir=str(tmp_path / "run"), max_steps=4, per_device_batch_size=4,
                  gradient_accumulation_steps=1, learning_rate=1e-3, weight_decay=0.1,
                  warmup_steps=0, lr_schedule="constant", max_grad_norm=None, log_every=1,
                  seed=0, device="cpu")
    return TrainingArguments(**{**params, **overrides})


def losses(history: list[dict]) -> list[float]:
    return [m["loss"] for m in history if "loss" in m]


# ----- TrainingArguments -------------------------------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("max_steps", 0), ("per_device_batch_size", 0), ("gradient_accumulation_steps", 0),
    ("learning_rate", 0.0), ("lr_schedule", "step"), ("precision", "fp8"), ("warmup_steps", 99),
    ("min_lr_ratio", 1.5), ("max_grad_norm", -1.0), ("eval_every", -1), ("log_every", 0),
])
def test_arguments_validation_names_the_field(tmp_path, field, value):
    with pytest.raises(ValueError, match=field):
        make_args(tmp_path, **{field: value})


def test_base_trainer_asks_for_compute_loss(tmp_path):
    trainer = Trainer(tiny_model(), make_args(tmp_path, max_steps=1), token_blocks(8))
    with pytest.raises(NotImplementedError, match="compute_loss"):
        trainer.train()


# ----- the loop ----------------------------------------------------------------------------------


def test_gradient_accumulation_equals_one_big_batch(tmp_path):
    data = token_blocks(8)
    a = PretrainTrainer(tiny_model(), make_args(tmp_path / "a", max_steps=1, per_device_batch_size=4,
                                                gradient_accumulation_steps=2), data)
    b = PretrainTrainer(tiny_model(), make_args(tmp_path / "b", max_steps=1, per_device_batch_size=8,
                                                gradient_accumulation_steps=1), data)
    ha, hb = a.train(), b.train()
    assert abs(ha[0]["loss"] - hb[0]["loss"]) < 1e-6
    assert abs(ha[0]["grad_norm"] - hb[0]["grad_norm"]) < 1e-6
    for (name, pa), pb in zip(a.model.named_parameters(), b.model.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, atol=1e-6, rtol=0, msg=name)


def test_loss_falls_on_a_repeated_batch(tmp_path):
    args = make_args(tmp_path, max_steps=40, learning_rate=1e-2, save_every=0)
    history = PretrainTrainer(tiny_model(), args, token_blocks(4)).train()
    values = losses(history)
    assert len(values) == 40
    assert values[-1] < 0.5 * values[0]


def test_clipping_caps_the_gradient_norm(tmp_path):
    trainer = PretrainTrainer(tiny_model(), make_args(tmp_path, max_steps=3, max_grad_norm=0.01),
                              token_blocks(8))
    seen = []

    def record_norm(optimizer, args, kwargs):
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

    trainer.optimizer.register_step_pre_hook(record_norm)
    history = trainer.train()
    assert len(seen) == 3
    assert all(n <= 0.01 * (1 + 1e-4) for n in seen)
    assert all(m["grad_norm"] > 0.01 for m in history)  # the logged norm is the one before clipping


def test_scheduler_steps_once_per_optimizer_step(tmp_path):
    args = make_args(tmp_path, max_steps=6, gradient_accumulation_steps=3, per_device_batch_size=2,
                     lr_schedule="cosine", warmup_steps=2, min_lr_ratio=0.1, learning_rate=1e-2)
    history = PretrainTrainer(tiny_model(), args, token_blocks(8)).train()
    expected = [1e-2 * cosine_lr_lambda(i, num_warmup_steps=2, num_training_steps=6, min_lr_ratio=0.1)
                for i in range(6)]
    assert [m["lr"] for m in history] == pytest.approx(expected, rel=1e-12, abs=0)
    assert [m["step"] for m in history] == [1, 2, 3, 4, 5, 6]


def test_metrics_reach_callbacks_every_log_every_steps(tmp_path):
    received = []
    args = make_args(tmp_path, max_steps=5, log_every=2, eval_every=2)
    trainer = PretrainTrainer(tiny_model(), args, token_blocks(8), eval_dataset=token_blocks(3, seed=5),
                              callbacks=[received.append])
    trainer.train()
    train_logs = [m for m in received if "loss" in m]
    eval_logs = [m for m in received if "eval_loss" in m]
    assert [m["step"] for m in train_logs] == [2, 4, 5]  # and always the last step
    assert [m["step"] for m in eval_logs] == [2, 4]
    for m in train_logs:
        assert {"step", "loss", "lr", "grad_norm", "tokens_per_s"} <= set(m)
        assert m["tokens_per_s"] > 0 and math.isfinite(m["loss"])


def test_evaluate_changes_nothing_and_restores_train_mode(tmp_path):
    class Recording(PretrainTrainer):
        def compute_loss(self, model, batch):
            modes.append((model.training, torch.is_grad_enabled()))
            return super().compute_loss(model, batch)

    modes: list[tuple[bool, bool]] = []
    model = tiny_model(attention_dropout=0.5)
    trainer = Recording(model, make_args(tmp_path), token_blocks(8), eval_dataset=token_blocks(5, seed=3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    first = trainer.evaluate()["eval_loss"]
    second = trainer.evaluate()["eval_loss"]
    assert first == second  # dropout off
    assert modes and all(m == (False, False) for m in modes)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    model.eval()
    trainer.evaluate()
    assert not model.training


def test_nan_loss_raises_naming_the_step(tmp_path):
    class Exploding(PretrainTrainer):
        def compute_loss(self, model, batch):
            loss = super().compute_loss(model, batch)
            return loss * float("nan") if self.step + 1 == 3 else loss

    trainer = Exploding(tiny_model(), make_args(tmp_path, max_steps=5), token_blocks(8))
    with pytest.raises(FloatingPointError, match="step 3"):
        trainer.train()


# ----- checkpoints and exact resume --------------------------------------------------------------


class Interrupt(Exception):
    pass


def resume_args(tmp_path):
    return make_args(tmp_path, max_steps=12, per_device_batch_size=2, gradient_accumulation_steps=2,
                     lr_schedule="cosine", warmup_steps=3, learning_rate=5e-3, max_grad_norm=1.0,
                     save_every=3, eval_every=4)


def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path, monkeypatch):
    # 10 examples = 5 micro-batches of 2 per epoch, 2 micro-batches per step: checkpoint-3 is
    # 6 micro-batches in, in the middle of the second epoch (its permutation is re-drawn on resume)
    data, eval_data = token_blocks(10), token_blocks(3, seed=9)
    straight = PretrainTrainer(tiny_model(attention_dropout=0.2), resume_args(tmp_path / "a"), data,
                               eval_dataset=eval_data)
    full = straight.train()

    def stop_at_4(metrics):
        if metrics.get("step") == 4:
            raise Interrupt

    first = PretrainTrainer(tiny_model(attention_dropout=0.2), resume_args(tmp_path / "b"), data,
                            eval_dataset=eval_data, callbacks=[stop_at_4])
    with pytest.raises(Interrupt):
        first.train()
    checkpoint = tmp_path / "b" / "run" / "checkpoint-3"
    state = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    assert (state["epoch"], state["position"]) == (1, 2), "the checkpoint should sit mid-epoch"

    # a different initialisation and a disturbed global RNG: the checkpoint must restore both
    torch.manual_seed(1234)
    resumed = PretrainTrainer(tiny_model(seed=7, attention_dropout=0.2), resume_args(tmp_path / "b"), data,
                              eval_dataset=eval_data)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load (pickle) was used"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("pickle.load was used"))
    again = resumed.train(resume_from=checkpoint)

    assert len(losses(full)) == 12
    def without_speed(history):
        return [{k: v for k, v in m.items() if k != "tokens_per_s"} for m in history]

    # every logged loss, lr, grad_norm and eval_loss (all but the timing), compared as exact floats
    assert without_speed(again) == without_speed(full)
    for pa, pb in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_checkpoint_holds_safetensors_and_json_only(tmp_path):
    trainer = PretrainTrainer(tiny_model(tie_word_embeddings=True), make_args(tmp_path, max_steps=2), token_blocks(8))
    trainer.train()
    folder = tmp_path / "run" / "checkpoint-2"
    assert sorted(p.name for p in folder.iterdir()) == sorted([MODEL_FILE, OPTIMIZER_FILE, STATE_FILE])
    assert not list((tmp_path / "run").glob(".*"))  # no temporary folder left behind
    from safetensors import safe_open

    for name in (MODEL_FILE, OPTIMIZER_FILE):
        raw = (folder / name).read_bytes()
        assert not raw.startswith(b"\x80") and not raw.startswith(b"PK")  # neither pickle nor torch.save zip
        with safe_open(str(folder / name), framework="pt") as f:
            assert len(list(f.keys())) > 0
    with safe_open(str(folder / OPTIMIZER_FILE), framework="pt") as f:
        assert all(k.startswith("state.") for k in f.keys())
        assert any(k.endswith(".exp_avg_sq") for k in f.keys())
    state = json.loads((folder / STATE_FILE).read_text())
    assert state["step"] == 2
    assert {"rng", "scheduler", "optimizer", "position", "epoch", "args"} <= set(state)
    assert len(state["rng"]["torch"]) == torch.get_rng_state().numel()


def test_checkpoint_is_replaced_atomically_when_saved_twice(tmp_path):
    trainer = PretrainTrainer(tiny_model(), make_args(tmp_path, max_steps=1), token_blocks(8))
    trainer.train()
    path = trainer.save_checkpoint()  # same step: replaces the folder
    assert sorted(p.name for p in path.iterdir()) == sorted([MODEL_FILE, OPTIMIZER_FILE, STATE_FILE])
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint-1"]


# ----- mixed precision ---------------------------------------------------------------------------


def test_autocast_dtype_choices():
    assert autocast_dtype("fp32", "cpu") is None
    assert autocast_dtype("bf16", "cpu") is torch.bfloat16
    assert autocast_dtype("auto", "cpu") is torch.bfloat16
    with pytest.raises(ValueError, match="bf16"):
        autocast_dtype("fp16", "cpu")
    with pytest.raises(ValueError, match="precision"):
        autocast_dtype("half", "cpu")


def test_bf16_autocast_on_cpu_is_close_to_fp32(tmp_path):
    data = token_blocks(8)
    model = tiny_model()
    with autocast_context("cpu", torch.bfloat16):
        logits = model(data[0]["input_ids"][None]).logits
    assert logits.dtype == torch.bfloat16
    h32 = PretrainTrainer(tiny_model(), make_args(tmp_path / "a", max_steps=3), data).train()
    trainer16 = PretrainTrainer(tiny_model(), make_args(tmp_path / "b", max_steps=3, precision="bf16"), data)
    h16 = trainer16.train()
    assert trainer16.amp_dtype is torch.bfloat16
    assert all(p.dtype == torch.float32 for p in trainer16.model.parameters())  # weights stay fp32
    for a, b in zip(losses(h32), losses(h16), strict=True):
        assert math.isfinite(b) and abs(a - b) <= 0.02 * abs(a)


def test_loss_scaler_skips_inf_steps_halves_and_grows():
    p = nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=0.1)
    scaler = LossScaler(init_scale=1024.0, growth_interval=2)
    scaler.scale((p * 2).sum()).backward()
    assert torch.equal(p.grad, torch.full((3,), 2048.0))
    assert scaler.unscale_(opt) is False and torch.equal(p.grad, torch.full((3,), 2.0))
    assert scaler.step(opt) is True
    scaler.update()
    assert torch.allclose(p.detach(), torch.full((3,), 0.8))
    opt.zero_grad()

    p.grad = torch.tensor([1.0, float("inf"), 0.0])
    before = p.detach().clone()
    assert scaler.step(opt) is False  # overflow: skipped
    scaler.update()
    assert torch.equal(p.detach(), before)
    assert scaler.scale_value == 512.0
    for _ in range(2):
        p.grad = torch.ones(3)
        assert scaler.step(opt) is True
        scaler.update()
    assert scaler.scale_value == 1024.0  # two good steps in a row: grown again
    restored = LossScaler()
    restored.load_state_dict(json.loads(json.dumps(scaler.state_dict())))
    assert restored.scale_value == 1024.0


def test_disabled_loss_scaler_is_a_pass_through():
    scaler = LossScaler(enabled=False)
    loss = torch.tensor(3.0)
    assert scaler.scale(loss) is loss
    assert scaler.scale_value == 1.0


# ----- SFT ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chat_tokenizer():
    return ByteLevelTokenizer(list(DEFAULT_SPECIAL_TOKENS) + list(CHAT_SPECIAL_TOKENS))


def test_sft_trainer_trains_on_response_labels(tmp_path, chat_tokenizer):
    records = instruction_records(num=8, seed=0)
    data = SFTDataset(records, chat_tokenizer, max_length=96)
    torch.manual_seed(0)
    model = CausalLM(ModelConfig.tiny(vocab_size=chat_tokenizer.vocab_size, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1))
    trainer = SFTTrainer(model, make_args(tmp_path, max_steps=2, per_device_batch_size=4), data)
    batch = trainer.collate_fn([data[i] for i in range(4)])
    labels = batch["labels"]
    assert (labels == -100).any() and (labels != -100).any()
    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    keep = labels != -100
    expected = nn.functional.cross_entropy(logits[keep], labels[keep])
    torch.testing.assert_close(trainer.compute_loss(model, batch), expected, atol=1e-5, rtol=1e-5)
    history = trainer.train()
    assert all(math.isfinite(v) for v in losses(history))


def test_exact_match_accuracy_checks_generated_answers(chat_tokenizer):
    records = instruction_records(num=4, seed=0, split="heldout")
    answers = [r["output"] if i % 2 == 0 else "wrong" for i, r in enumerate(records)]

    class Answering(nn.Module):
        """Stands in for a model: appends the i-th scripted answer and EOS to the i-th prompt."""

        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(1))
            self.calls = 0

        def generate(self, input_ids, attention_mask=None, max_new_tokens=32, eos_token_id=None,
                     pad_token_id=None, **kwargs):
            rows = []
            for _ in range(input_ids.shape[0]):
                ids = chat_tokenizer.encode(answers[self.calls]) + [eos_token_id]
                ids = (ids + [pad_token_id] * max_new_tokens)[:max_new_tokens]
                rows.append(ids)
                self.calls += 1
            return torch.cat([input_ids, torch.tensor(rows, dtype=torch.long)], dim=1)

    result = exact_match_accuracy(Answering(), chat_tokenizer, records, max_new_tokens=40, batch_size=3)
    assert (result["correct"], result["total"], result["accuracy"]) == (2, 4, 0.5)
    assert result["predictions"][1] == "wrong"
