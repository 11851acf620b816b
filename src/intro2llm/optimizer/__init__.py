"""Optimisers and learning-rate schedules of lesson 07.

- ``adamw``: ``AdamW`` — Adam's two moments with bias correction, plus decoupled
  weight decay (the oracle is ``torch.optim.AdamW``).
- ``lion``: ``Lion`` — the sign of an interpolated momentum; one state tensor per
  parameter instead of two (the oracle is ``lion_pytorch.Lion``).
- ``scheduler``: linear warmup followed by cosine decay, linear decay or a constant
  (the oracles are ``transformers``' functions of the same names).

Import submodules directly (``from intro2llm.optimizer.adamw import AdamW``).
Nothing is imported here on purpose: each module loads on its own, so a learner's
package with only some of them written still imports.
"""
