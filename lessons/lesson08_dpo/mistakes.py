# ruff: noqa: F821
"""Wrong implementations of lesson 08's targets that learners really write.

``llm-course author verify lesson08`` splices each function below into a copy of the
reference in place of its symbol (so ``torch``, ``F``, ``IGNORE_INDEX``, ``DPO_LOSS_TYPES``,
``sequence_logps``, ``dpo_loss`` ... resolve in that module) and checks that some lesson test
fails. Each body is the reference with one bug (marked ``# <- bug``); argument checks are
left out where the bug is elsewhere.

Not here, because they are correct: ``torch.log_softmax(x, -1).gather(...)`` for
``gather - logsumexp``; ``per_token * mask`` for ``masked_fill`` (with finite logits);
``F.softplus(-beta * logits)`` for ``-F.logsigmoid(beta * logits)``; ``(pc - rc) - (pr - rr)``
for ``(pc - pr) - (rc - rr)``; the policy forward without ``attention_mask`` (right padding and
causal attention: the answer tokens never see the padding); ``concatenated_logps(model, batch,
self.average_logps)`` instead of writing the concatenation out.
"""

from __future__ import annotations

from intro2llm_cli.mistakes import mistake

DL = "loss/dpo_loss.py"
TR = "training/dpo_trainer.py"


# ============================================================ sequence_logps


@mistake(DL, "sequence_logps", "always the per-token mean: DPO's summed log-probability becomes a length average")
def logps_always_mean(logits, labels, average=False):
    x = logits.to(torch.promote_types(logits.dtype, torch.float32))
    mask = labels != IGNORE_INDEX
    safe_labels = labels.long().masked_fill(~mask, 0)
    per_token = x.gather(-1, safe_labels.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(x, dim=-1)
    total = per_token.masked_fill(~mask, 0.0).sum(dim=-1)
    return total / mask.sum(dim=-1).clamp(min=1)  # <- bug: `average` ignored


@mistake(DL, "sequence_logps", "-100 read as token 0: the prompt and the padding are scored too")
def logps_counts_the_prompt(logits, labels, average=False):
    x = logits.to(torch.promote_types(logits.dtype, torch.float32))
    safe_labels = labels.long().clamp(min=0)  # <- bug: no mask, every position counts
    per_token = x.gather(-1, safe_labels.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(x, dim=-1)
    total = per_token.sum(dim=-1)
    return total / labels.shape[-1] if average else total


@mistake(DL, "sequence_logps", "labels shifted once more, as for unshifted labels")
def logps_shifts_again(logits, labels, average=False):
    x = logits[:, :-1].to(torch.promote_types(logits.dtype, torch.float32))  # <- bug
    labels = labels[:, 1:]  # <- bug
    mask = labels != IGNORE_INDEX
    safe_labels = labels.long().masked_fill(~mask, 0)
    per_token = x.gather(-1, safe_labels.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(x, dim=-1)
    total = per_token.masked_fill(~mask, 0.0).sum(dim=-1)
    return total / mask.sum(dim=-1).clamp(min=1) if average else total


@mistake(DL, "sequence_logps", "no promotion: bf16 logits are scored and summed in bf16")
def logps_in_half_precision(logits, labels, average=False):
    if logits.dim() != 3 or tuple(labels.shape) != tuple(logits.shape[:-1]) or labels.is_floating_point():
        raise ValueError("labels must be [b, s] integers, logits [b, s, V]")
    x = logits  # <- bug: not promoted to float32
    mask = labels != IGNORE_INDEX
    safe_labels = labels.long().masked_fill(~mask, 0)
    per_token = x.gather(-1, safe_labels.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(x, dim=-1)
    total = per_token.masked_fill(~mask, 0.0).sum(dim=-1)
    return total / mask.sum(dim=-1).clamp(min=1) if average else total


@mistake(DL, "sequence_logps", "mean divides by mask.sum() without clamp: a row without labels is 0/0 = nan")
def logps_mean_nan_on_empty_rows(logits, labels, average=False):
    x = logits.to(torch.promote_types(logits.dtype, torch.float32))
    mask = labels != IGNORE_INDEX
    safe_labels = labels.long().masked_fill(~mask, 0)
    per_token = x.gather(-1, safe_labels.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(x, dim=-1)
    total = per_token.masked_fill(~mask, 0.0).sum(dim=-1)
    return total / mask.sum(dim=-1) if average else total  # <- bug: no clamp(min=1)


# ============================================================ dpo_loss


@mistake(DL, "dpo_loss", "margin sign flipped: rejected minus chosen")
def dpo_sign_flipped(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
                     beta=0.1, loss_type="sigmoid", label_smoothing=0.0):
    acc = torch.promote_types(policy_chosen_logps.dtype, torch.float32)
    pc, pr = policy_chosen_logps.to(acc), policy_rejected_logps.to(acc)
    rc, rr = ref_chosen_logps.to(acc), ref_rejected_logps.to(acc)
    logits = (pr - pc) - (rr - rc)  # <- bug
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    else:
        losses = torch.relu(1 - beta * logits)
    return losses.mean(), beta * (pc - rc).detach(), beta * (pr - rr).detach()


@mistake(DL, "dpo_loss", "beta applied twice: the rewards (already times beta) multiplied by beta again")
def dpo_beta_twice(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
                   beta=0.1, loss_type="sigmoid", label_smoothing=0.0):
    acc = torch.promote_types(policy_chosen_logps.dtype, torch.float32)
    pc, pr = policy_chosen_logps.to(acc), policy_rejected_logps.to(acc)
    rc, rr = ref_chosen_logps.to(acc), ref_rejected_logps.to(acc)
    logits = beta * (pc - rc) - beta * (pr - rr)  # <- bug: beta here and again below
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    else:
        losses = torch.relu(1 - beta * logits)
    return losses.mean(), beta * (pc - rc).detach(), beta * (pr - rr).detach()


@mistake(DL, "dpo_loss", "rewards not detached")
def dpo_rewards_attached(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
                         beta=0.1, loss_type="sigmoid", label_smoothing=0.0):
    acc = torch.promote_types(policy_chosen_logps.dtype, torch.float32)
    pc, pr = policy_chosen_logps.to(acc), policy_rejected_logps.to(acc)
    rc, rr = ref_chosen_logps.to(acc), ref_rejected_logps.to(acc)
    logits = (pc - pr) - (rc - rr)
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    else:
        losses = torch.relu(1 - beta * logits)
    return losses.mean(), beta * (pc - rc), beta * (pr - rr)  # <- bug: no .detach()


@mistake(DL, "dpo_loss", "label smoothing on the wrong side: (1 - eps) weighs the flipped label")
def dpo_smoothing_swapped(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
                          beta=0.1, loss_type="sigmoid", label_smoothing=0.0):
    acc = torch.promote_types(policy_chosen_logps.dtype, torch.float32)
    pc, pr = policy_chosen_logps.to(acc), policy_rejected_logps.to(acc)
    rc, rr = ref_chosen_logps.to(acc), ref_rejected_logps.to(acc)
    logits = (pc - pr) - (rc - rr)
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * logits) * label_smoothing - F.logsigmoid(-beta * logits) * (1 - label_smoothing)  # <- bug
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    else:
        losses = torch.relu(1 - beta * logits)
    return losses.mean(), beta * (pc - rc).detach(), beta * (pr - rr).detach()


@mistake(DL, "dpo_loss", "IPO target margin 1/beta instead of 1/(2 beta)")
def dpo_ipo_target(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
                   beta=0.1, loss_type="sigmoid", label_smoothing=0.0):
    acc = torch.promote_types(policy_chosen_logps.dtype, torch.float32)
    pc, pr = policy_chosen_logps.to(acc), policy_rejected_logps.to(acc)
    rc, rr = ref_chosen_logps.to(acc), ref_rejected_logps.to(acc)
    logits = (pc - pr) - (rc - rr)
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    elif loss_type == "ipo":
        losses = (logits - 1 / beta) ** 2  # <- bug
    else:
        losses = torch.relu(1 - beta * logits)
    return losses.mean(), beta * (pc - rc).detach(), beta * (pr - rr).detach()


@mistake(DL, "dpo_loss", "hinge without relu: pairs past the margin get a negative loss")
def dpo_hinge_without_relu(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
                           beta=0.1, loss_type="sigmoid", label_smoothing=0.0):
    acc = torch.promote_types(policy_chosen_logps.dtype, torch.float32)
    pc, pr = policy_chosen_logps.to(acc), policy_rejected_logps.to(acc)
    rc, rr = ref_chosen_logps.to(acc), ref_rejected_logps.to(acc)
    logits = (pc - pr) - (rc - rr)
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    else:
        losses = 1 - beta * logits  # <- bug
    return losses.mean(), beta * (pc - rc).detach(), beta * (pr - rr).detach()


@mistake(DL, "dpo_loss", "log(sigmoid(x)) instead of logsigmoid: inf at a margin of -200")
def dpo_log_of_sigmoid(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
                       beta=0.1, loss_type="sigmoid", label_smoothing=0.0):
    acc = torch.promote_types(policy_chosen_logps.dtype, torch.float32)
    pc, pr = policy_chosen_logps.to(acc), policy_rejected_logps.to(acc)
    rc, rr = ref_chosen_logps.to(acc), ref_rejected_logps.to(acc)
    logits = (pc - pr) - (rc - rr)
    if loss_type == "sigmoid":
        losses = (-torch.log(torch.sigmoid(beta * logits)) * (1 - label_smoothing)  # <- bug
                  - torch.log(torch.sigmoid(-beta * logits)) * label_smoothing)
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    else:
        losses = torch.relu(1 - beta * logits)
    return losses.mean(), beta * (pc - rc).detach(), beta * (pr - rr).detach()


@mistake(DL, "dpo_loss", "sum over the batch instead of the mean")
def dpo_sum_over_batch(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
                       beta=0.1, loss_type="sigmoid", label_smoothing=0.0):
    acc = torch.promote_types(policy_chosen_logps.dtype, torch.float32)
    pc, pr = policy_chosen_logps.to(acc), policy_rejected_logps.to(acc)
    rc, rr = ref_chosen_logps.to(acc), ref_rejected_logps.to(acc)
    logits = (pc - pr) - (rc - rr)
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    else:
        losses = torch.relu(1 - beta * logits)
    return losses.sum(), beta * (pc - rc).detach(), beta * (pr - rr).detach()  # <- bug


@mistake(DL, "dpo_loss", "no promotion: bf16 log-probs give a bf16 loss")
def dpo_in_half_precision(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
                          beta=0.1, loss_type="sigmoid", label_smoothing=0.0):
    if (not beta > 0 or not 0 <= label_smoothing < 0.5 or loss_type not in DPO_LOSS_TYPES
            or (label_smoothing > 0 and loss_type != "sigmoid") or policy_rejected_logps.shape != policy_chosen_logps.shape):
        raise ValueError("bad beta / label_smoothing / loss_type / shapes")
    pc, pr = policy_chosen_logps, policy_rejected_logps  # <- bug: not promoted to float32
    rc, rr = ref_chosen_logps, ref_rejected_logps
    logits = (pc - pr) - (rc - rr)
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    else:
        losses = torch.relu(1 - beta * logits)
    return losses.mean(), beta * (pc - rc).detach(), beta * (pr - rr).detach()


# ============================================================ DPOTrainer.compute_loss


@mistake(TR, "DPOTrainer.compute_loss", "the reference forward runs with gradients enabled (no torch.no_grad())")
def compute_loss_reference_with_grad(self, model, batch):
    b = batch["chosen_input_ids"].shape[0]
    input_ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]], dim=0)
    attention_mask = torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]], dim=0)
    labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]], dim=0)
    logps = sequence_logps(model(input_ids, attention_mask=attention_mask).logits, labels, average=self.average_logps)
    if "index" in batch and self.ref_chosen_logps is not None:
        ref_c, ref_r = self.ref_chosen_logps[batch["index"]], self.ref_rejected_logps[batch["index"]]
    else:
        ref_logits = self.ref_model(input_ids, attention_mask=attention_mask).logits  # <- bug: graph built
        ref_logps = sequence_logps(ref_logits, labels, average=self.average_logps)
        ref_c, ref_r = ref_logps[:b], ref_logps[b:]
    loss, chosen_rewards, rejected_rewards = dpo_loss(logps[:b], logps[b:], ref_c, ref_r, beta=self.beta,
                                                      loss_type=self.loss_type, label_smoothing=self.label_smoothing)
    if model.training and torch.is_grad_enabled():
        self.record_rewards(chosen_rewards, rejected_rewards)
    return loss


@mistake(TR, "DPOTrainer.compute_loss", "the policy used as its own reference (model under no_grad, not self.ref_model)")
def compute_loss_policy_as_reference(self, model, batch):
    b = batch["chosen_input_ids"].shape[0]
    input_ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]], dim=0)
    attention_mask = torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]], dim=0)
    labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]], dim=0)
    logps = sequence_logps(model(input_ids, attention_mask=attention_mask).logits, labels, average=self.average_logps)
    if "index" in batch and self.ref_chosen_logps is not None:
        ref_c, ref_r = self.ref_chosen_logps[batch["index"]], self.ref_rejected_logps[batch["index"]]
    else:
        with torch.no_grad():
            ref_logits = model(input_ids, attention_mask=attention_mask).logits  # <- bug
            ref_logps = sequence_logps(ref_logits, labels, average=self.average_logps)
        ref_c, ref_r = ref_logps[:b], ref_logps[b:]
    loss, chosen_rewards, rejected_rewards = dpo_loss(logps[:b], logps[b:], ref_c, ref_r, beta=self.beta,
                                                      loss_type=self.loss_type, label_smoothing=self.label_smoothing)
    if model.training and torch.is_grad_enabled():
        self.record_rewards(chosen_rewards, rejected_rewards)
    return loss


@mistake(TR, "DPOTrainer.compute_loss", "chosen and rejected swapped when splitting the concatenated log-probs")
def compute_loss_split_swapped(self, model, batch):
    b = batch["chosen_input_ids"].shape[0]
    input_ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]], dim=0)
    attention_mask = torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]], dim=0)
    labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]], dim=0)
    logps = sequence_logps(model(input_ids, attention_mask=attention_mask).logits, labels, average=self.average_logps)
    if "index" in batch and self.ref_chosen_logps is not None:
        ref_c, ref_r = self.ref_chosen_logps[batch["index"]], self.ref_rejected_logps[batch["index"]]
    else:
        with torch.no_grad():
            ref_logps = sequence_logps(self.ref_model(input_ids, attention_mask=attention_mask).logits, labels,
                                       average=self.average_logps)
        ref_c, ref_r = ref_logps[:b], ref_logps[b:]
    loss, chosen_rewards, rejected_rewards = dpo_loss(logps[b:], logps[:b], ref_c, ref_r, beta=self.beta,  # <- bug
                                                      loss_type=self.loss_type, label_smoothing=self.label_smoothing)
    if model.training and torch.is_grad_enabled():
        self.record_rewards(chosen_rewards, rejected_rewards)
    return loss


@mistake(TR, "DPOTrainer.compute_loss", "two policy forwards (chosen, then rejected) instead of one concatenated one")
def compute_loss_two_forwards(self, model, batch):
    b = batch["chosen_input_ids"].shape[0]
    logps = torch.cat([sequence_logps(model(batch[f"{side}_input_ids"],  # <- bug: one forward per side
                                            attention_mask=batch[f"{side}_attention_mask"]).logits,
                                      batch[f"{side}_labels"], average=self.average_logps)
                       for side in ("chosen", "rejected")])
    input_ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]], dim=0)
    attention_mask = torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]], dim=0)
    labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]], dim=0)
    if "index" in batch and self.ref_chosen_logps is not None:
        ref_c, ref_r = self.ref_chosen_logps[batch["index"]], self.ref_rejected_logps[batch["index"]]
    else:
        with torch.no_grad():
            ref_logps = sequence_logps(self.ref_model(input_ids, attention_mask=attention_mask).logits, labels,
                                       average=self.average_logps)
        ref_c, ref_r = ref_logps[:b], ref_logps[b:]
    loss, chosen_rewards, rejected_rewards = dpo_loss(logps[:b], logps[b:], ref_c, ref_r, beta=self.beta,
                                                      loss_type=self.loss_type, label_smoothing=self.label_smoothing)
    if model.training and torch.is_grad_enabled():
        self.record_rewards(chosen_rewards, rejected_rewards)
    return loss


@mistake(TR, "DPOTrainer.compute_loss", "labels shifted again before sequence_logps")
def compute_loss_shifts_labels(self, model, batch):
    b = batch["chosen_input_ids"].shape[0]
    input_ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]], dim=0)
    attention_mask = torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]], dim=0)
    labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]], dim=0)
    logits = model(input_ids, attention_mask=attention_mask).logits
    logps = sequence_logps(logits[:, :-1], labels[:, 1:], average=self.average_logps)  # <- bug
    if "index" in batch and self.ref_chosen_logps is not None:
        ref_c, ref_r = self.ref_chosen_logps[batch["index"]], self.ref_rejected_logps[batch["index"]]
    else:
        with torch.no_grad():
            ref_logits = self.ref_model(input_ids, attention_mask=attention_mask).logits
            ref_logps = sequence_logps(ref_logits[:, :-1], labels[:, 1:], average=self.average_logps)  # <- bug
        ref_c, ref_r = ref_logps[:b], ref_logps[b:]
    loss, chosen_rewards, rejected_rewards = dpo_loss(logps[:b], logps[b:], ref_c, ref_r, beta=self.beta,
                                                      loss_type=self.loss_type, label_smoothing=self.label_smoothing)
    if model.training and torch.is_grad_enabled():
        self.record_rewards(chosen_rewards, rejected_rewards)
    return loss


@mistake(TR, "DPOTrainer.compute_loss", "IPO fed with summed log-probs (average_logps ignored)")
def compute_loss_ipo_summed(self, model, batch):
    b = batch["chosen_input_ids"].shape[0]
    input_ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]], dim=0)
    attention_mask = torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]], dim=0)
    labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]], dim=0)
    logps = sequence_logps(model(input_ids, attention_mask=attention_mask).logits, labels)  # <- bug
    if "index" in batch and self.ref_chosen_logps is not None:
        ref_c, ref_r = self.ref_chosen_logps[batch["index"]], self.ref_rejected_logps[batch["index"]]
    else:
        with torch.no_grad():
            ref_logps = sequence_logps(self.ref_model(input_ids, attention_mask=attention_mask).logits, labels)  # <- bug
        ref_c, ref_r = ref_logps[:b], ref_logps[b:]
    loss, chosen_rewards, rejected_rewards = dpo_loss(logps[:b], logps[b:], ref_c, ref_r, beta=self.beta,
                                                      loss_type=self.loss_type, label_smoothing=self.label_smoothing)
    if model.training and torch.is_grad_enabled():
        self.record_rewards(chosen_rewards, rejected_rewards)
    return loss


@mistake(TR, "DPOTrainer.compute_loss", "dpo_loss called with its defaults: self.beta / label_smoothing not passed")
def compute_loss_default_beta(self, model, batch):
    b = batch["chosen_input_ids"].shape[0]
    input_ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]], dim=0)
    attention_mask = torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]], dim=0)
    labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]], dim=0)
    logps = sequence_logps(model(input_ids, attention_mask=attention_mask).logits, labels, average=self.average_logps)
    if "index" in batch and self.ref_chosen_logps is not None:
        ref_c, ref_r = self.ref_chosen_logps[batch["index"]], self.ref_rejected_logps[batch["index"]]
    else:
        with torch.no_grad():
            ref_logps = sequence_logps(self.ref_model(input_ids, attention_mask=attention_mask).logits, labels,
                                       average=self.average_logps)
        ref_c, ref_r = ref_logps[:b], ref_logps[b:]
    loss, chosen_rewards, rejected_rewards = dpo_loss(logps[:b], logps[b:], ref_c, ref_r,
                                                      loss_type=self.loss_type)  # <- bug
    if model.training and torch.is_grad_enabled():
        self.record_rewards(chosen_rewards, rejected_rewards)
    return loss


@mistake(TR, "DPOTrainer.compute_loss", "rewards recorded in evaluation too (no model.training / grad check)")
def compute_loss_records_in_eval(self, model, batch):
    b = batch["chosen_input_ids"].shape[0]
    input_ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]], dim=0)
    attention_mask = torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]], dim=0)
    labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]], dim=0)
    logps = sequence_logps(model(input_ids, attention_mask=attention_mask).logits, labels, average=self.average_logps)
    if "index" in batch and self.ref_chosen_logps is not None:
        ref_c, ref_r = self.ref_chosen_logps[batch["index"]], self.ref_rejected_logps[batch["index"]]
    else:
        with torch.no_grad():
            ref_logps = sequence_logps(self.ref_model(input_ids, attention_mask=attention_mask).logits, labels,
                                       average=self.average_logps)
        ref_c, ref_r = ref_logps[:b], ref_logps[b:]
    loss, chosen_rewards, rejected_rewards = dpo_loss(logps[:b], logps[b:], ref_c, ref_r, beta=self.beta,
                                                      loss_type=self.loss_type, label_smoothing=self.label_smoothing)
    self.record_rewards(chosen_rewards, rejected_rewards)  # <- bug: also under evaluate()
    return loss


@mistake(TR, "DPOTrainer.compute_loss", "the precomputed reference cache is ignored: the reference runs every batch")
def compute_loss_ignores_the_cache(self, model, batch):
    b = batch["chosen_input_ids"].shape[0]
    input_ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]], dim=0)
    attention_mask = torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]], dim=0)
    labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]], dim=0)
    logps = sequence_logps(model(input_ids, attention_mask=attention_mask).logits, labels, average=self.average_logps)
    with torch.no_grad():  # <- bug: self.ref_chosen_logps[batch["index"]] never used
        ref_logps = sequence_logps(self.ref_model(input_ids, attention_mask=attention_mask).logits, labels,
                                   average=self.average_logps)
    loss, chosen_rewards, rejected_rewards = dpo_loss(logps[:b], logps[b:], ref_logps[:b], ref_logps[b:],
                                                      beta=self.beta, loss_type=self.loss_type,
                                                      label_smoothing=self.label_smoothing)
    if model.training and torch.is_grad_enabled():
        self.record_rewards(chosen_rewards, rejected_rewards)
    return loss


@mistake(TR, "DPOTrainer.compute_loss", "the cache read with the first b entries instead of the batch's indices")
def compute_loss_cache_by_position(self, model, batch):
    b = batch["chosen_input_ids"].shape[0]
    input_ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]], dim=0)
    attention_mask = torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]], dim=0)
    labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]], dim=0)
    logps = sequence_logps(model(input_ids, attention_mask=attention_mask).logits, labels, average=self.average_logps)
    if "index" in batch and self.ref_chosen_logps is not None:
        ref_c, ref_r = self.ref_chosen_logps[:b], self.ref_rejected_logps[:b]  # <- bug
    else:
        with torch.no_grad():
            ref_logps = sequence_logps(self.ref_model(input_ids, attention_mask=attention_mask).logits, labels,
                                       average=self.average_logps)
        ref_c, ref_r = ref_logps[:b], ref_logps[b:]
    loss, chosen_rewards, rejected_rewards = dpo_loss(logps[:b], logps[b:], ref_c, ref_r, beta=self.beta,
                                                      loss_type=self.loss_type, label_smoothing=self.label_smoothing)
    if model.training and torch.is_grad_enabled():
        self.record_rewards(chosen_rewards, rejected_rewards)
    return loss
