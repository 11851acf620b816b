# ruff: noqa: F821
"""Wrong implementations of lesson 07's targets that learners really write.

``llm-course author verify lesson07`` splices each function below into a copy of the
reference in place of its symbol (so ``torch``, ``F``, ``math``, ``REDUCTIONS`` resolve in
that module; ``@torch.no_grad()`` on the optimisers' ``step`` stays) and checks that some
lesson test fails. Each body is the reference with one bug (marked ``# <- bug``), so the
test that catches it is the one about that bug.

Not here, because they are correct: ``torch.logsumexp`` or ``F.log_softmax`` inside
``cross_entropy_loss``; ``F.softplus(rejected - chosen)`` for ``-F.logsigmoid(chosen -
rejected)``; ``p - lr * wd * p`` for ``p * (1 - lr * wd)``; ``m = β1·m + (1 - β1)·g`` for
``lerp``; ``sqrt(v / (1 - β2**t))`` for ``sqrt(v) / sqrt(1 - β2**t)`` (the advanced tests use
power-of-two learning rates and decays so that these orders agree to well within 1e-6).
"""

from __future__ import annotations

from intro2llm_cli.mistakes import mistake

CE = "loss/cross_entropy.py"
PREF = "loss/dpo_loss.py"
ADAMW = "optimizer/adamw.py"
LION = "optimizer/lion.py"
SCHED = "optimizer/scheduler.py"


# ============================================================ loss/cross_entropy.py


@mistake(CE, "cross_entropy_loss", "naive softmax: log(sum(exp(x))) without subtracting the max (inf above 88)")
def ce_naive_softmax(logits, labels, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not supported: use one of {REDUCTIONS}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing={label_smoothing} must be in [0, 1]")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must hold integer class ids, got dtype {labels.dtype}")
    if logits.dim() < 1 or tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError("labels must have the shape of logits without its last (class) axis")
    num_classes = logits.shape[-1]
    x = logits.reshape(-1, num_classes).to(torch.promote_types(logits.dtype, torch.float32))
    y = labels.reshape(-1).long()
    valid = y != ignore_index
    if ((y < 0) | (y >= num_classes))[valid].any():
        raise ValueError(f"labels must be in [0, {num_classes}) or equal ignore_index={ignore_index}")
    safe_y = y.masked_fill(~valid, 0)
    lse = torch.log(torch.exp(x).sum(dim=-1))  # <- bug: exp(1000) = inf
    nll = lse - x.gather(-1, safe_y[:, None]).squeeze(-1)
    if label_smoothing > 0.0:
        loss = (1.0 - label_smoothing) * nll + label_smoothing * (lse - x.mean(dim=-1))
    else:
        loss = nll
    loss = loss.masked_fill(~valid, 0.0)
    if reduction == "none":
        return loss.reshape(labels.shape)
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / valid.sum()


@mistake(CE, "cross_entropy_loss", "\"mean\" over all positions, ignored ones included (loss.mean())")
def ce_mean_over_all_positions(logits, labels, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not supported: use one of {REDUCTIONS}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing={label_smoothing} must be in [0, 1]")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must hold integer class ids, got dtype {labels.dtype}")
    if logits.dim() < 1 or tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError("labels must have the shape of logits without its last (class) axis")
    num_classes = logits.shape[-1]
    x = logits.reshape(-1, num_classes).to(torch.promote_types(logits.dtype, torch.float32))
    y = labels.reshape(-1).long()
    valid = y != ignore_index
    if ((y < 0) | (y >= num_classes))[valid].any():
        raise ValueError(f"labels must be in [0, {num_classes}) or equal ignore_index={ignore_index}")
    safe_y = y.masked_fill(~valid, 0)
    m = x.amax(dim=-1, keepdim=True).detach()
    lse = m.squeeze(-1) + torch.log(torch.exp(x - m).sum(dim=-1))
    nll = lse - x.gather(-1, safe_y[:, None]).squeeze(-1)
    if label_smoothing > 0.0:
        loss = (1.0 - label_smoothing) * nll + label_smoothing * (lse - x.mean(dim=-1))
    else:
        loss = nll
    loss = loss.masked_fill(~valid, 0.0)
    if reduction == "none":
        return loss.reshape(labels.shape)
    if reduction == "sum":
        return loss.sum()
    return loss.mean()  # <- bug: divides by every position


@mistake(CE, "cross_entropy_loss", "ignore_index argument unused: the mask is labels != -100")
def ce_hard_coded_ignore_index(logits, labels, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not supported: use one of {REDUCTIONS}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing={label_smoothing} must be in [0, 1]")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must hold integer class ids, got dtype {labels.dtype}")
    if logits.dim() < 1 or tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError("labels must have the shape of logits without its last (class) axis")
    num_classes = logits.shape[-1]
    x = logits.reshape(-1, num_classes).to(torch.promote_types(logits.dtype, torch.float32))
    y = labels.reshape(-1).long()
    valid = y != -100  # <- bug
    if ((y < 0) | (y >= num_classes))[valid].any():
        raise ValueError(f"labels must be in [0, {num_classes}) or equal ignore_index={ignore_index}")
    safe_y = y.masked_fill(~valid, 0)
    m = x.amax(dim=-1, keepdim=True).detach()
    lse = m.squeeze(-1) + torch.log(torch.exp(x - m).sum(dim=-1))
    nll = lse - x.gather(-1, safe_y[:, None]).squeeze(-1)
    if label_smoothing > 0.0:
        loss = (1.0 - label_smoothing) * nll + label_smoothing * (lse - x.mean(dim=-1))
    else:
        loss = nll
    loss = loss.masked_fill(~valid, 0.0)
    if reduction == "none":
        return loss.reshape(labels.shape)
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / valid.sum()


@mistake(CE, "cross_entropy_loss", "label smoothing spreads ε over the C - 1 other classes, not over all C")
def ce_smoothing_over_other_classes(logits, labels, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not supported: use one of {REDUCTIONS}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing={label_smoothing} must be in [0, 1]")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must hold integer class ids, got dtype {labels.dtype}")
    if logits.dim() < 1 or tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError("labels must have the shape of logits without its last (class) axis")
    num_classes = logits.shape[-1]
    x = logits.reshape(-1, num_classes).to(torch.promote_types(logits.dtype, torch.float32))
    y = labels.reshape(-1).long()
    valid = y != ignore_index
    if ((y < 0) | (y >= num_classes))[valid].any():
        raise ValueError(f"labels must be in [0, {num_classes}) or equal ignore_index={ignore_index}")
    safe_y = y.masked_fill(~valid, 0)
    m = x.amax(dim=-1, keepdim=True).detach()
    lse = m.squeeze(-1) + torch.log(torch.exp(x - m).sum(dim=-1))
    nll = lse - x.gather(-1, safe_y[:, None]).squeeze(-1)
    if label_smoothing > 0.0:
        others = (num_classes * lse - x.sum(dim=-1) - nll) / (num_classes - 1)  # <- bug: mean over c != y
        loss = (1.0 - label_smoothing) * nll + label_smoothing * others
    else:
        loss = nll
    loss = loss.masked_fill(~valid, 0.0)
    if reduction == "none":
        return loss.reshape(labels.shape)
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / valid.sum()


@mistake(CE, "cross_entropy_loss", "mask applied to the nll only: the smoothing term still counts at ignored positions")
def ce_smoothing_at_ignored_positions(logits, labels, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not supported: use one of {REDUCTIONS}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing={label_smoothing} must be in [0, 1]")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must hold integer class ids, got dtype {labels.dtype}")
    if logits.dim() < 1 or tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError("labels must have the shape of logits without its last (class) axis")
    num_classes = logits.shape[-1]
    x = logits.reshape(-1, num_classes).to(torch.promote_types(logits.dtype, torch.float32))
    y = labels.reshape(-1).long()
    valid = y != ignore_index
    if ((y < 0) | (y >= num_classes))[valid].any():
        raise ValueError(f"labels must be in [0, {num_classes}) or equal ignore_index={ignore_index}")
    safe_y = y.masked_fill(~valid, 0)
    m = x.amax(dim=-1, keepdim=True).detach()
    lse = m.squeeze(-1) + torch.log(torch.exp(x - m).sum(dim=-1))
    nll = (lse - x.gather(-1, safe_y[:, None]).squeeze(-1)).masked_fill(~valid, 0.0)  # <- bug: masked too early
    loss = (1.0 - label_smoothing) * nll + label_smoothing * (lse - x.mean(dim=-1))
    if reduction == "none":
        return loss.reshape(labels.shape)
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / valid.sum()


@mistake(CE, "cross_entropy_loss", "no upcast: computed and returned in float16 / bfloat16")
def ce_without_upcast(logits, labels, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not supported: use one of {REDUCTIONS}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing={label_smoothing} must be in [0, 1]")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must hold integer class ids, got dtype {labels.dtype}")
    if logits.dim() < 1 or tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError("labels must have the shape of logits without its last (class) axis")
    num_classes = logits.shape[-1]
    x = logits.reshape(-1, num_classes)  # <- bug: stays in the input dtype
    y = labels.reshape(-1).long()
    valid = y != ignore_index
    if ((y < 0) | (y >= num_classes))[valid].any():
        raise ValueError(f"labels must be in [0, {num_classes}) or equal ignore_index={ignore_index}")
    safe_y = y.masked_fill(~valid, 0)
    m = x.amax(dim=-1, keepdim=True).detach()
    lse = m.squeeze(-1) + torch.log(torch.exp(x - m).sum(dim=-1))
    nll = lse - x.gather(-1, safe_y[:, None]).squeeze(-1)
    if label_smoothing > 0.0:
        loss = (1.0 - label_smoothing) * nll + label_smoothing * (lse - x.mean(dim=-1))
    else:
        loss = nll
    loss = loss.masked_fill(~valid, 0.0)
    if reduction == "none":
        return loss.reshape(labels.shape)
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / valid.sum()


# ============================================================ loss/dpo_loss.py


@mistake(PREF, "preference_loss", "sign flipped: -logsigmoid(rejected - chosen) rewards the rejected answer")
def preference_sign_flipped(chosen_scores, rejected_scores):
    if chosen_scores.shape != rejected_scores.shape:
        raise ValueError("chosen_scores and rejected_scores must have the same shape")
    acc = torch.promote_types(chosen_scores.dtype, torch.float32)
    margin = rejected_scores.to(acc) - chosen_scores.to(acc)  # <- bug
    return -F.logsigmoid(margin).mean()


@mistake(PREF, "preference_loss", "-log(sigmoid(margin)): sigmoid underflows to 0 for a very wrong pair, loss inf")
def preference_log_of_sigmoid(chosen_scores, rejected_scores):
    if chosen_scores.shape != rejected_scores.shape:
        raise ValueError("chosen_scores and rejected_scores must have the same shape")
    acc = torch.promote_types(chosen_scores.dtype, torch.float32)
    margin = chosen_scores.to(acc) - rejected_scores.to(acc)
    return -torch.log(torch.sigmoid(margin)).mean()  # <- bug


@mistake(PREF, "preference_loss", "no upcast: bfloat16 scores give a bfloat16 loss")
def preference_without_upcast(chosen_scores, rejected_scores):
    if chosen_scores.shape != rejected_scores.shape:
        raise ValueError("chosen_scores and rejected_scores must have the same shape")
    margin = chosen_scores - rejected_scores  # <- bug
    return -F.logsigmoid(margin).mean()


# ============================================================ optimizer/adamw.py


@mistake(ADAMW, "AdamW.step", "bias correction forgotten: p -= lr * m / (sqrt(v) + eps)")
def adamw_without_bias_correction(self, closure=None):
    loss = None
    if closure is not None:
        with torch.enable_grad():
            loss = closure()
    for group in self.param_groups:
        lr = group["lr"]
        beta1, beta2 = group["betas"]
        eps, weight_decay = group["eps"], group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = p.grad
            state = self.state[p]
            if len(state) == 0:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            p.mul_(1 - lr * weight_decay)
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            p.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(eps), value=-lr)  # <- bug
    return loss


@mistake(ADAMW, "AdamW.step", "weight decay as L2 through the gradient (g + wd * p), i.e. Adam, not AdamW")
def adamw_l2_through_the_gradient(self, closure=None):
    loss = None
    if closure is not None:
        with torch.enable_grad():
            loss = closure()
    for group in self.param_groups:
        lr = group["lr"]
        beta1, beta2 = group["betas"]
        eps, weight_decay = group["eps"], group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = p.grad + weight_decay * p  # <- bug: decay goes through m and v
            state = self.state[p]
            if len(state) == 0:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            t = state["step"]
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            bias_correction1 = 1 - beta1**t
            bias_correction2 = 1 - beta2**t
            denom = (exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(eps)
            p.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)
    return loss


@mistake(ADAMW, "AdamW.step", "decay applied to the moment (exp_avg *= 1 - lr * wd) instead of the parameter")
def adamw_decays_the_moment(self, closure=None):
    loss = None
    if closure is not None:
        with torch.enable_grad():
            loss = closure()
    for group in self.param_groups:
        lr = group["lr"]
        beta1, beta2 = group["betas"]
        eps, weight_decay = group["eps"], group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = p.grad
            state = self.state[p]
            if len(state) == 0:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            t = state["step"]
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            exp_avg.mul_(1 - lr * weight_decay)  # <- bug
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            bias_correction1 = 1 - beta1**t
            bias_correction2 = 1 - beta2**t
            denom = (exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(eps)
            p.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)
    return loss


@mistake(ADAMW, "AdamW.step", "decay applied after the update: (p - lr * u) * (1 - lr * wd)")
def adamw_decays_after_the_update(self, closure=None):
    loss = None
    if closure is not None:
        with torch.enable_grad():
            loss = closure()
    for group in self.param_groups:
        lr = group["lr"]
        beta1, beta2 = group["betas"]
        eps, weight_decay = group["eps"], group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = p.grad
            state = self.state[p]
            if len(state) == 0:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            t = state["step"]
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            bias_correction1 = 1 - beta1**t
            bias_correction2 = 1 - beta2**t
            denom = (exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(eps)
            p.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)
            p.mul_(1 - lr * weight_decay)  # <- bug: after the update
    return loss


@mistake(ADAMW, "AdamW.step", "eps inside the square root: sqrt(v_hat + eps)")
def adamw_eps_inside_the_root(self, closure=None):
    loss = None
    if closure is not None:
        with torch.enable_grad():
            loss = closure()
    for group in self.param_groups:
        lr = group["lr"]
        beta1, beta2 = group["betas"]
        eps, weight_decay = group["eps"], group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = p.grad
            state = self.state[p]
            if len(state) == 0:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            t = state["step"]
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            p.mul_(1 - lr * weight_decay)
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            bias_correction1 = 1 - beta1**t
            bias_correction2 = 1 - beta2**t
            denom = (exp_avg_sq / bias_correction2 + eps).sqrt()  # <- bug
            p.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)
    return loss


@mistake(ADAMW, "AdamW.step", "reads self.defaults[\"lr\"] / [\"weight_decay\"]: every group gets the default values")
def adamw_ignores_group_hyperparameters(self, closure=None):
    loss = None
    if closure is not None:
        with torch.enable_grad():
            loss = closure()
    for group in self.param_groups:
        lr = self.defaults["lr"]  # <- bug
        beta1, beta2 = group["betas"]
        eps, weight_decay = group["eps"], self.defaults["weight_decay"]  # <- bug
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = p.grad
            state = self.state[p]
            if len(state) == 0:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            t = state["step"]
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            p.mul_(1 - lr * weight_decay)
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            bias_correction1 = 1 - beta1**t
            bias_correction2 = 1 - beta2**t
            denom = (exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(eps)
            p.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)
    return loss


@mistake(ADAMW, "AdamW.step", "step count kept on the optimizer (self._t), not in state: lost by a state_dict round trip")
def adamw_step_count_outside_the_state(self, closure=None):
    loss = None
    if closure is not None:
        with torch.enable_grad():
            loss = closure()
    self._t = getattr(self, "_t", 0) + 1  # <- bug: state_dict() does not save it
    t = self._t
    for group in self.param_groups:
        lr = group["lr"]
        beta1, beta2 = group["betas"]
        eps, weight_decay = group["eps"], group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = p.grad
            state = self.state[p]
            if len(state) == 0:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            p.mul_(1 - lr * weight_decay)
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            bias_correction1 = 1 - beta1**t
            bias_correction2 = 1 - beta2**t
            denom = (exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(eps)
            p.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)
    return loss


# ============================================================ optimizer/lion.py


@mistake(LION, "Lion.step", "momentum updated before the sign is taken (the sign then sees the new m)")
def lion_momentum_before_the_sign(self, closure=None):
    loss = None
    if closure is not None:
        with torch.enable_grad():
            loss = closure()
    for group in self.param_groups:
        lr = group["lr"]
        beta1, beta2 = group["betas"]
        weight_decay = group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = p.grad
            state = self.state[p]
            if len(state) == 0:
                state["exp_avg"] = torch.zeros_like(p)
            exp_avg = state["exp_avg"]
            p.mul_(1 - lr * weight_decay)
            exp_avg.mul_(beta2).add_(grad, alpha=1 - beta2)  # <- bug: before the sign
            update = exp_avg.mul(beta1).add(grad, alpha=1 - beta1).sign_()
            p.add_(update, alpha=-lr)
    return loss


@mistake(LION, "Lion.step", "β2 used for the update interpolation: sign(β2 * m + (1 - β2) * g)")
def lion_beta2_in_the_update(self, closure=None):
    loss = None
    if closure is not None:
        with torch.enable_grad():
            loss = closure()
    for group in self.param_groups:
        lr = group["lr"]
        beta1, beta2 = group["betas"]
        weight_decay = group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = p.grad
            state = self.state[p]
            if len(state) == 0:
                state["exp_avg"] = torch.zeros_like(p)
            exp_avg = state["exp_avg"]
            p.mul_(1 - lr * weight_decay)
            update = exp_avg.mul(beta2).add(grad, alpha=1 - beta2).sign_()  # <- bug
            p.add_(update, alpha=-lr)
            exp_avg.mul_(beta2).add_(grad, alpha=1 - beta2)
    return loss


@mistake(LION, "Lion.step", "weight decay added to the gradient before the sign (L2), not decoupled")
def lion_decay_through_the_gradient(self, closure=None):
    loss = None
    if closure is not None:
        with torch.enable_grad():
            loss = closure()
    for group in self.param_groups:
        lr = group["lr"]
        beta1, beta2 = group["betas"]
        weight_decay = group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = p.grad + weight_decay * p  # <- bug
            state = self.state[p]
            if len(state) == 0:
                state["exp_avg"] = torch.zeros_like(p)
            exp_avg = state["exp_avg"]
            update = exp_avg.mul(beta1).add(grad, alpha=1 - beta1).sign_()
            p.add_(update, alpha=-lr)
            exp_avg.mul_(beta2).add_(grad, alpha=1 - beta2)
    return loss


@mistake(LION, "Lion.step", "momentum kept outside self.state (a dict on the optimizer): lost by a state_dict round trip")
def lion_momentum_outside_the_state(self, closure=None):
    loss = None
    if closure is not None:
        with torch.enable_grad():
            loss = closure()
    if not hasattr(self, "_momentum"):
        self._momentum = {}  # <- bug: state_dict() does not save it
    for group in self.param_groups:
        lr = group["lr"]
        beta1, beta2 = group["betas"]
        weight_decay = group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = p.grad
            if p not in self._momentum:
                self._momentum[p] = torch.zeros_like(p)
            exp_avg = self._momentum[p]
            self.state[p]["exp_avg"] = exp_avg
            p.mul_(1 - lr * weight_decay)
            update = exp_avg.mul(beta1).add(grad, alpha=1 - beta1).sign_()
            p.add_(update, alpha=-lr)
            exp_avg.mul_(beta2).add_(grad, alpha=1 - beta2)
    return loss


# ============================================================ optimizer/scheduler.py


@mistake(SCHED, "cosine_lr_lambda", "warmup off by one: (step + 1) / W, so the first step already has lr / W")
def cosine_warmup_off_by_one(current_step, *, num_warmup_steps, num_training_steps, min_lr_ratio=0.0, num_cycles=0.5):
    if current_step < num_warmup_steps:
        return float(current_step + 1) / float(max(1, num_warmup_steps))  # <- bug
    progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
    progress = min(1.0, progress)
    factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
    return factor * (1 - min_lr_ratio) + min_lr_ratio


@mistake(SCHED, "cosine_lr_lambda", "progress divided by T instead of T - W: the cosine never reaches the minimum")
def cosine_progress_over_total(current_step, *, num_warmup_steps, num_training_steps, min_lr_ratio=0.0, num_cycles=0.5):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps))  # <- bug
    progress = min(1.0, progress)
    factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
    return factor * (1 - min_lr_ratio) + min_lr_ratio


@mistake(SCHED, "cosine_lr_lambda", "progress not clamped to 1: past T the cosine climbs back up")
def cosine_not_clamped(current_step, *, num_warmup_steps, num_training_steps, min_lr_ratio=0.0, num_cycles=0.5):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
    factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))  # <- bug: no min(1, progress)
    return factor * (1 - min_lr_ratio) + min_lr_ratio


@mistake(SCHED, "cosine_lr_lambda", "minimum by clipping, max(r, factor), instead of rescaling to r + (1 - r) * factor")
def cosine_minimum_by_clipping(current_step, *, num_warmup_steps, num_training_steps, min_lr_ratio=0.0, num_cycles=0.5):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
    progress = min(1.0, progress)
    factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
    return max(min_lr_ratio, factor)  # <- bug


@mistake(SCHED, "linear_lr_lambda", "wrong slope: (T - step) / T, so the decay starts below 1 after warmup")
def linear_wrong_slope(current_step, *, num_warmup_steps, num_training_steps):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    return max(0.0, float(num_training_steps - current_step) / float(max(1, num_training_steps)))  # <- bug


@mistake(SCHED, "linear_lr_lambda", "no max(0, ...): past T the learning rate turns negative")
def linear_goes_negative(current_step, *, num_warmup_steps, num_training_steps):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    return float(num_training_steps - current_step) / float(max(1, num_training_steps - num_warmup_steps))  # <- bug


@mistake(SCHED, "linear_lr_lambda", "warmup off by one: (step + 1) / W")
def linear_warmup_off_by_one(current_step, *, num_warmup_steps, num_training_steps):
    if current_step < num_warmup_steps:
        return float(current_step + 1) / float(max(1, num_warmup_steps))  # <- bug
    return max(0.0, float(num_training_steps - current_step) / float(max(1, num_training_steps - num_warmup_steps)))


@mistake(SCHED, "constant_lr_lambda", "no warmup: always 1.0")
def constant_without_warmup(current_step, *, num_warmup_steps):
    return 1.0  # <- bug
