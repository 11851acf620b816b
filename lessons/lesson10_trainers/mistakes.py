# ruff: noqa: F821
"""Wrong implementations of lesson 10's targets that learners really write.

``llm-course author verify lesson10`` splices each function below into a copy of the
reference in place of its symbol (so ``torch``, ``math``, ``random``, ``time``,
``autocast_context``, ``IGNORE_INDEX``, ``distributed``, ``load_checkpoint`` ... resolve in
that module, and ``@torch.no_grad()`` on ``Trainer.evaluate`` stays) and checks that some
lesson test fails. Each is the reference with one bug (marked ``# <- bug``), so the test
that catches it is the one about that bug: short functions written out, long ones as
``patched(...)`` text replacements of the reference definition.

Not here, because they are correct: ``loss * (1 / k)`` for ``loss / k``; clipping with
``clip_grad_norm_(self.model.parameters(), ...)`` (every parameter requires grad);
``zero_grad()`` instead of ``zero_grad(set_to_none=True)``; backward inside the autocast
block; ``self.model`` instead of ``self.train_model`` in one process.
"""

from __future__ import annotations

from intro2llm_cli.mistakes import mistake, patched

MP = "utils/mixed_precision.py"
TR = "training/trainer.py"
CK = "training/checkpointing.py"
PT = "training/pretrain_trainer.py"


# ============================================================ utils/mixed_precision.py


@mistake(MP, "autocast_dtype", "fp16 allowed on the CPU (no device check for fp16)")
def autocast_fp16_anywhere(precision, device):
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not supported: use one of {PRECISIONS}")
    device_type = _device_type(device)
    if device_type == "cpu":
        bf16_ok = True
    elif device_type == "cuda":
        bf16_ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    else:
        bf16_ok = False
    if precision == "fp32":
        return None
    if precision == "auto":
        if bf16_ok:
            return torch.bfloat16
        return torch.float16 if device_type == "cuda" else None
    if precision == "bf16":
        if not bf16_ok:
            raise ValueError(f"precision='bf16' is not supported on {device}: use 'fp16' or 'fp32'")
        return torch.bfloat16
    return torch.float16  # <- bug: no CUDA check


@mistake(MP, "autocast_context", "device_type hard-coded to 'cuda': no autocast at all on the CPU")
def autocast_context_cuda_only(device, dtype):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)  # <- bug


unscale_twice = patched(
    MP, "LossScaler.unscale_", "no once-per-step guard: a second unscale_ divides the gradients again",
    replace=[
             ('\n        if not self.enabled or self._unscaled:\n',
              '\n        if not self.enabled:  # <- bug: `or self._unscaled` missing\n')])

unscale_misses_nan = patched(
    MP, "LossScaler.unscale_", "looks for inf only (torch.isinf): a nan gradient goes through",
    replace=[
             ('if not bool(torch.isfinite(p.grad).all()):',
              'if bool(torch.isinf(p.grad).any()):  # <- bug')])

@mistake(MP, "LossScaler.step", "steps even when the gradients overflowed")
def scaler_never_skips(self, optimizer):
    if self.enabled and not self._unscaled:
        self.unscale_(optimizer)
    optimizer.step()  # <- bug: no found_inf check
    return True


update_never_backs_off = patched(
    MP, "LossScaler.update", "does not halve the scale on an overflow (only restarts the count)",
    replace=[
             ('\n            self.scale_value *= self.backoff_factor\n',
              '\n            pass  # <- bug: scale_value *= backoff_factor missing\n')])

update_without_reset = patched(
    MP, "LossScaler.update", "does not reset found_inf / _unscaled: the next step is never unscaled",
    replace=[
             ('\n        self.found_inf = False\n        self._unscaled = False',
              '\n        pass  # <- bug: found_inf and _unscaled are not reset')])

update_keeps_counting = patched(
    MP, "LossScaler.update", "an overflow does not restart the count of good steps",
    replace=[
             ('            self.scale_value *= self.backoff_factor\n            self.good_steps = 0\n',
              '            self.scale_value *= self.backoff_factor  # <- bug: good_steps = 0 missing\n')])

# ============================================================ training/pretrain_trainer.py


@mistake(PT, "PretrainTrainer.compute_loss", "labels passed to the model: CausalLM shifts them a second time")
def compute_loss_double_shift(self, model, batch):
    return model(batch["input_ids"], attention_mask=batch.get("attention_mask"), labels=batch["labels"]).loss  # <- bug


@mistake(PT, "PretrainTrainer.compute_loss", "shifts the already-shifted labels again by hand")
def compute_loss_shifts_by_hand(self, model, batch):
    logits = model(batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
    return cross_entropy_loss(logits[:, :-1], batch["labels"][:, 1:])  # <- bug


# ============================================================ training/trainer.py


next_batch_keeps_the_tail = patched(
    TR, "Trainer.next_batch", "keeps the incomplete tail: the last batch of an epoch is smaller",
    replace=[
             ('elif self.position + span > len(self._order):',
              'elif self.position >= len(self._order):  # <- bug: a partial batch is still served')])

next_batch_same_order_every_epoch = patched(
    TR, "Trainer.next_batch", "re-seeds the data generator every epoch: every epoch has the same order",
    replace=[
             ('\n            self.epoch += 1\n            self._start_epoch()',
              '\n            self.epoch += 1\n            self.data_generator.manual_seed(self.args.seed)  # <- bug\n            self._start_epoch()')])

training_step_without_dividing = patched(
    TR, "Trainer.training_step", "accumulation without dividing the loss by k: k times the gradient",
    replace=[
             ('\n        scaled = loss / self.args.gradient_accumulation_steps\n',
              '\n        scaled = loss  # <- bug: not divided by gradient_accumulation_steps\n')])

training_step_zeroes_each_micro_batch = patched(
    TR, "Trainer.training_step", "zero_grad before every backward: only the last micro-batch's gradient is left",
    replace=[
             ('        with autocast_context(self.device, self.amp_dtype):\n            loss =',
              '        self.optimizer.zero_grad(set_to_none=True)  # <- bug\n        with autocast_context(self.device, self.amp_dtype):\n            loss =')])

training_step_steps_the_scheduler = patched(
    TR, "Trainer.training_step", "scheduler stepped per micro-batch",
    replace=[
             ('\n        self.scaler.scale(scaled).backward()\n',
              '\n        self.scaler.scale(scaled).backward()\n        self.scheduler.step()  # <- bug\n')])

training_step_without_autocast = patched(
    TR, "Trainer.training_step", "forward outside autocast: bf16 training silently runs in fp32",
    replace=[
             ('        with autocast_context(self.device, self.amp_dtype):\n            loss = self.compute_loss(self.train_model, batch)\n',
              '        loss = self.compute_loss(self.train_model, batch)  # <- bug: outside autocast\n')])

training_step_without_loss_scaling = patched(
    TR, "Trainer.training_step", "backward of the unscaled loss while the optimiser step unscales",
    replace=[
             ('\n        self.scaler.scale(scaled).backward()\n',
              '\n        scaled.backward()  # <- bug: self.scaler.scale(...) missing\n')])

optimizer_step_clips_after_the_step = patched(
    TR, "Trainer.optimizer_step", "clips after optimizer.step(): the step used the unclipped gradients",
    replace=[
             ('\n        self.scaler.unscale_(self.optimizer)\n',
              '\n        self.scaler.unscale_(self.optimizer)\n        stepped = self.scaler.step(self.optimizer)  # <- bug: before clipping\n'),
             ('        stepped = self.scaler.step(self.optimizer)\n        self.scaler.update()',
              '        self.scaler.update()')])

optimizer_step_clips_before_unscale = patched(
    TR, "Trainer.optimizer_step", "clips before unscaling: the threshold applies to the scaled gradients",
    replace=[
             ('\n        self.scaler.unscale_(self.optimizer)\n',
              '\n'),
             ('        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)\n',
              '        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)\n        self.scaler.unscale_(self.optimizer)  # <- bug: after clipping\n')])

optimizer_step_schedules_skipped_steps = patched(
    TR, "Trainer.optimizer_step", "the scheduler steps even when the loss scaler skipped the step",
    replace=[
             ('        if stepped:\n            self.scheduler.step()',
              '        self.scheduler.step()  # <- bug: also after a skipped step')])

train_logs_the_next_lr = patched(
    TR, "Trainer.train", "lr logged after the optimiser step (and so after scheduler.step())",
    replace=[('lr = self.optimizer.param_groups[0]["lr"]\n            grad_norm = self.optimizer_step()',
              'grad_norm = self.optimizer_step()\n            lr = self.optimizer.param_groups[0]["lr"]  # <- bug')])

train_reseeds_after_resume = patched(
    TR, "Trainer.train", "seeds the RNGs after loading the checkpoint: the restored RNG states are overwritten",
    replace=[("        else:\n            random.seed(args.seed)\n            torch.manual_seed(args.seed)\n"
              "            self.data_generator.manual_seed(args.seed)\n",
              "        random.seed(args.seed)  # <- bug: also when resuming\n        torch.manual_seed(args.seed)\n"
              "        self.data_generator.manual_seed(args.seed)\n")])


@mistake(TR, "Trainer.evaluate", "no model.eval(): dropout stays on during evaluation")
def evaluate_in_train_mode(self):
    if self.eval_dataset is None or len(self.eval_dataset) == 0:
        return {"eval_loss": math.nan}
    b = self.args.per_device_batch_size
    total, count = 0.0, 0  # <- bug: self.model.eval() missing
    for start in range(0, len(self.eval_dataset), b):
        items = [self.eval_dataset[i] for i in range(start, min(start + b, len(self.eval_dataset)))]
        batch = {k: v.to(self.device) for k, v in self.collate_fn(items).items()}
        with autocast_context(self.device, self.amp_dtype):
            loss = self.compute_loss(self.model, batch)
        n = int((batch["labels"] != IGNORE_INDEX).sum())
        total += float(loss) * n
        count += n
    return {"eval_loss": total / max(count, 1)}


@mistake(TR, "Trainer.evaluate", "model.eval() without restoring the mode: training continues without dropout")
def evaluate_leaves_eval_mode(self):
    if self.eval_dataset is None or len(self.eval_dataset) == 0:
        return {"eval_loss": math.nan}
    b = self.args.per_device_batch_size
    self.model.eval()  # <- bug: never switched back
    total, count = 0.0, 0
    for start in range(0, len(self.eval_dataset), b):
        items = [self.eval_dataset[i] for i in range(start, min(start + b, len(self.eval_dataset)))]
        batch = {k: v.to(self.device) for k, v in self.collate_fn(items).items()}
        with autocast_context(self.device, self.amp_dtype):
            loss = self.compute_loss(self.model, batch)
        n = int((batch["labels"] != IGNORE_INDEX).sum())
        total += float(loss) * n
        count += n
    return {"eval_loss": total / max(count, 1)}


@mistake(TR, "Trainer.evaluate", "mean of the batch means instead of the mean over label tokens")
def evaluate_mean_of_batch_means(self):
    if self.eval_dataset is None or len(self.eval_dataset) == 0:
        return {"eval_loss": math.nan}
    b = self.args.per_device_batch_size
    was_training = self.model.training
    self.model.eval()
    losses = []
    try:
        for start in range(0, len(self.eval_dataset), b):
            items = [self.eval_dataset[i] for i in range(start, min(start + b, len(self.eval_dataset)))]
            batch = {k: v.to(self.device) for k, v in self.collate_fn(items).items()}
            with autocast_context(self.device, self.amp_dtype):
                losses.append(float(self.compute_loss(self.model, batch)))
    finally:
        self.model.train(was_training)
    return {"eval_loss": sum(losses) / len(losses)}  # <- bug: every batch weighs the same


@mistake(TR, "Trainer.save_checkpoint", "the epoch's generator state is not saved: the resumed epoch has another order")
def trainer_save_without_epoch_state(self):
    state = {
        "step": self.step,
        "epoch": self.epoch,
        "position": self.position,
        "epoch_start_state": None,  # <- bug
        "scheduler": _json_scheduler_state(self.scheduler),
        "scaler": self.scaler.state_dict(),
        "rng": capture_rng_state(self.data_generator),
        "args": dataclasses.asdict(self.args),
        "log_history": self.log_history,
    }
    path = self.checkpoint_dir()
    save_checkpoint(path, self.model, self.optimizer, state)
    self._last_saved_step = self.step
    return path


@mistake(TR, "Trainer.load_checkpoint", "RNG states not restored on resume: other dropout masks")
def trainer_load_without_rng(self, path):
    state = load_checkpoint(path, self.model, self.optimizer)
    self.scheduler.load_state_dict(state["scheduler"])
    self.scaler.load_state_dict(state["scaler"])
    self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
    self.log_history = list(state.get("log_history", []))
    self._last_saved_step = self.step
    # <- bug: restore_rng_state(state["rng"], self.data_generator) missing
    if state.get("epoch_start_state") is not None:
        self.data_generator.set_state(torch.tensor(state["epoch_start_state"], dtype=torch.uint8))
        self._epoch_start_state = self.data_generator.get_state()
        self._order = torch.randperm(len(self.train_dataset), generator=self.data_generator)
    else:
        self._epoch_start_state, self._order = None, None
    return state


@mistake(TR, "Trainer.load_checkpoint", "the epoch's permutation is not re-drawn: the resumed run starts a new epoch order")
def trainer_load_without_data_order(self, path):
    state = load_checkpoint(path, self.model, self.optimizer)
    self.scheduler.load_state_dict(state["scheduler"])
    self.scaler.load_state_dict(state["scaler"])
    self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
    self.log_history = list(state.get("log_history", []))
    self._last_saved_step = self.step
    restore_rng_state(state["rng"], self.data_generator)
    self._order = None  # <- bug: the next batch draws a fresh permutation
    return state


@mistake(TR, "Trainer.load_checkpoint", "scheduler and loss scaler not restored: the lr restarts from the warmup")
def trainer_load_without_scheduler(self, path):
    state = load_checkpoint(path, self.model, self.optimizer)  # <- bug: scheduler / scaler load_state_dict missing
    self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
    self.log_history = list(state.get("log_history", []))
    self._last_saved_step = self.step
    restore_rng_state(state["rng"], self.data_generator)
    if state.get("epoch_start_state") is not None:
        self.data_generator.set_state(torch.tensor(state["epoch_start_state"], dtype=torch.uint8))
        self._epoch_start_state = self.data_generator.get_state()
        self._order = torch.randperm(len(self.train_dataset), generator=self.data_generator)
    return state


# ============================================================ training/checkpointing.py


@mistake(CK, "optimizer_state_to_flat", "keeps only the tensors: AdamW's int step is lost")
def flat_drops_plain_values(optimizer):
    sd = optimizer.state_dict()
    tensors = {}
    for index, param_state in sd["state"].items():
        for name, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value.detach().contiguous()
    return tensors, {"param_groups": [_plain(g) for g in sd["param_groups"]], "state": {}}  # <- bug


@mistake(CK, "capture_rng_state", "forgets the data generator")
def capture_without_data(data_generator=None):
    version, internal, gauss_next = random.getstate()
    return {"python": [version, list(internal), gauss_next], "torch": torch.get_rng_state().tolist(),
            "data": None,  # <- bug
            "cuda": [s.tolist() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else None}


@mistake(CK, "restore_rng_state", "python's random is not restored")
def restore_without_python(state, data_generator=None):
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))  # <- bug: random.setstate missing
    if data_generator is not None and state.get("data") is not None:
        data_generator.set_state(torch.tensor(state["data"], dtype=torch.uint8))
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


@mistake(CK, "save_checkpoint", "writes straight into the final folder: a crash leaves a half checkpoint")
def save_not_atomic(path, model, optimizer, trainer_state):
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)  # <- bug: no temporary folder
    save_model(model, str(path / MODEL_FILE))
    tensors, meta = optimizer_state_to_flat(optimizer)
    save_file(tensors, str(path / OPTIMIZER_FILE))
    with open(path / STATE_FILE, "w", encoding="utf-8") as f:
        json.dump({**trainer_state, "optimizer": meta}, f)
    return path


@mistake(CK, "save_checkpoint", "optimizer state pickled with torch.save")
def save_with_pickle(path, model, optimizer, trainer_state):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_model(model, str(tmp / MODEL_FILE))
    torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)  # <- bug
    with open(tmp / STATE_FILE, "w", encoding="utf-8") as f:
        json.dump(trainer_state, f)
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


@mistake(CK, "load_checkpoint", "loads the weights but not the optimizer state")
def load_without_optimizer(path, model, optimizer=None):
    path = Path(path)
    for name in (MODEL_FILE, OPTIMIZER_FILE, STATE_FILE):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path} is not a training checkpoint: {name} is missing")
    with open(path / STATE_FILE, encoding="utf-8") as f:
        state = json.load(f)
    load_model(model, str(path / MODEL_FILE), device=str(next(model.parameters()).device))
    return state  # <- bug: optimizer.load_state_dict(...) missing
