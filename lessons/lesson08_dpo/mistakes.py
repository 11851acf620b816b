# ruff: noqa: F821
"""Wrong implementations of lesson 08's targets that learners really write.

``llm-course author verify lesson08`` splices each function below into a copy of the
reference in place of its symbol (so ``torch``, ``F``, ``IGNORE_INDEX``, ``DPO_LOSS_TYPES``,
``sequence_logps``, ``dpo_loss`` ... resolve in that module) and checks that some lesson test
fails. Each is the reference with one bug (marked ``# <- bug``): short functions written out
(argument checks left out where the bug is elsewhere), long ones as ``patched(...)`` text
replacements of the reference definition.

Not here, because they are correct: ``torch.log_softmax(x, -1).gather(...)`` for
``gather - logsumexp``; ``per_token * mask`` for ``masked_fill`` (with finite logits);
``F.softplus(-beta * logits)`` for ``-F.logsigmoid(beta * logits)``; ``(pc - rc) - (pr - rr)``
for ``(pc - pr) - (rc - rr)``; the policy forward without ``attention_mask`` (right padding and
causal attention: the answer tokens never see the padding); ``concatenated_logps(model, batch,
self.average_logps)`` instead of writing the concatenation out.
"""

from __future__ import annotations

from intro2llm_cli.mistakes import mistake, patched

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


dpo_sign_flipped = patched(
    DL, "dpo_loss", "margin sign flipped: rejected minus chosen",
    replace=[
    ('logits = (pc - pr) - (rc - rr)  # [b]',
     'logits = (pr - pc) - (rr - rc)  # <- bug')])

dpo_beta_twice = patched(
    DL, "dpo_loss", "beta applied twice: the rewards (already times beta) multiplied by beta again",
    replace=[
    ('logits = (pc - pr) - (rc - rr)  # [b]',
     'logits = beta * (pc - rc) - beta * (pr - rr)  # <- bug: beta here and again below')])

dpo_rewards_attached = patched(
    DL, "dpo_loss", "rewards not detached",
    replace=[
    ('chosen_rewards = beta * (pc - rc).detach()  # [b]',
     'chosen_rewards = beta * (pc - rc)  # <- bug: not detached'),
    ('rejected_rewards = beta * (pr - rr).detach()  # [b]',
     'rejected_rewards = beta * (pr - rr)  # <- bug: not detached')])

dpo_smoothing_swapped = patched(
    DL, "dpo_loss", "label smoothing on the wrong side: (1 - eps) weighs the flipped label",
    replace=[
    ('losses = (-F.logsigmoid(beta * logits) * (1 - label_smoothing)\n                  - F.logsigmoid(-beta * logits) * label_smoothing)',
     'losses = (-F.logsigmoid(beta * logits) * label_smoothing  # <- bug: the sides swapped\n                  - F.logsigmoid(-beta * logits) * (1 - label_smoothing))')])

dpo_ipo_target = patched(
    DL, "dpo_loss", "IPO target margin 1/beta instead of 1/(2 beta)",
    replace=[
    ('\n        losses = (logits - 1 / (2 * beta)) ** 2',
     '\n        losses = (logits - 1 / beta) ** 2  # <- bug')])

dpo_hinge_without_relu = patched(
    DL, "dpo_loss", "hinge without relu: pairs past the margin get a negative loss",
    replace=[
    ('\n        losses = torch.relu(1 - beta * logits)',
     '\n        losses = 1 - beta * logits  # <- bug')])

dpo_log_of_sigmoid = patched(
    DL, "dpo_loss", "log(sigmoid(x)) instead of logsigmoid: inf at a margin of -200",
    replace=[
    ('\n        losses = (-F.logsigmoid(beta * logits) * (1 - label_smoothing)',
     '\n        losses = (-torch.log(torch.sigmoid(beta * logits)) * (1 - label_smoothing)  # <- bug')])

dpo_sum_over_batch = patched(
    DL, "dpo_loss", "sum over the batch instead of the mean",
    replace=[
    ('\n    return losses.mean(), chosen_rewards, rejected_rewards',
     '\n    return losses.sum(), chosen_rewards, rejected_rewards  # <- bug')])

dpo_in_half_precision = patched(
    DL, "dpo_loss", "no promotion: bf16 log-probs give a bf16 loss",
    replace=[
    ('\n    acc = torch.promote_types(policy_chosen_logps.dtype, torch.float32)',
     '\n    acc = policy_chosen_logps.dtype  # <- bug: not promoted to float32')])

# ============================================================ DPOTrainer.compute_loss


compute_loss_reference_with_grad = patched(
    TR, "DPOTrainer.compute_loss", "the reference forward runs with gradients enabled (no torch.no_grad())",
    replace=[
    ('\n            with torch.no_grad():\n                ref_logits',
     '\n            if True:  # <- bug: no torch.no_grad(), a graph is built\n                ref_logits')])

compute_loss_policy_as_reference = patched(
    TR, "DPOTrainer.compute_loss", "the policy used as its own reference (model under no_grad, not self.ref_model)",
    replace=[
    ('ref_logits = self.ref_model(input_ids, attention_mask=attention_mask).logits  # [2b, L, V]',
     'ref_logits = model(input_ids, attention_mask=attention_mask).logits  # <- bug')])

compute_loss_split_swapped = patched(
    TR, "DPOTrainer.compute_loss", "chosen and rejected swapped when splitting the concatenated log-probs",
    replace=[
    ('\n        policy_chosen_logps, policy_rejected_logps = logps[:b], logps[b:]',
     '\n        policy_chosen_logps, policy_rejected_logps = logps[b:], logps[:b]  # <- bug')])

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


compute_loss_shifts_labels = patched(
    TR, "DPOTrainer.compute_loss", "labels shifted again before sequence_logps",
    replace=[
    ('logps = sequence_logps(logits, labels, average=self.average_logps)  # [2b]',
     'logps = sequence_logps(logits[:, :-1], labels[:, 1:], average=self.average_logps)  # <- bug'),
    ('ref_logps = sequence_logps(ref_logits, labels, average=self.average_logps)  # [2b]',
     'ref_logps = sequence_logps(ref_logits[:, :-1], labels[:, 1:], average=self.average_logps)  # <- bug')])

compute_loss_ipo_summed = patched(
    TR, "DPOTrainer.compute_loss", "IPO fed with summed log-probs (average_logps ignored)",
    replace=[
    ('logps = sequence_logps(logits, labels, average=self.average_logps)  # [2b]',
     'logps = sequence_logps(logits, labels)  # <- bug: average_logps ignored'),
    ('ref_logps = sequence_logps(ref_logits, labels, average=self.average_logps)  # [2b]',
     'ref_logps = sequence_logps(ref_logits, labels)  # <- bug')])

compute_loss_default_beta = patched(
    TR, "DPOTrainer.compute_loss", "dpo_loss called with its defaults: self.beta / label_smoothing not passed",
    replace=[
    ('            beta=self.beta, loss_type=self.loss_type, label_smoothing=self.label_smoothing,\n',
     '            loss_type=self.loss_type,  # <- bug: beta and label_smoothing not passed\n')])

compute_loss_records_in_eval = patched(
    TR, "DPOTrainer.compute_loss", "rewards recorded in evaluation too (no model.training / grad check)",
    replace=[
    ('\n        if model.training and torch.is_grad_enabled():',
     '\n        if True:  # <- bug: also under evaluate()')])

compute_loss_ignores_the_cache = patched(
    TR, "DPOTrainer.compute_loss", "the precomputed reference cache is ignored: the reference runs every batch",
    replace=[
    ('        if "index" in batch and self.ref_chosen_logps is not None and self.ref_rejected_logps is not None:',
     '        if False:  # <- bug: the precomputed cache is never used')])

compute_loss_cache_by_position = patched(
    TR, "DPOTrainer.compute_loss", "the cache read with the first b entries instead of the batch's indices",
    replace=[
    ('ref_chosen_logps = self.ref_chosen_logps[batch["index"]]  # [b]',
     'ref_chosen_logps = self.ref_chosen_logps[:b]  # <- bug: by position, not by index'),
    ('ref_rejected_logps = self.ref_rejected_logps[batch["index"]]  # [b]',
     'ref_rejected_logps = self.ref_rejected_logps[:b]  # <- bug')])
