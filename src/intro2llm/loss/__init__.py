"""Losses: next-token cross-entropy (lesson 07) and preference / RL objectives (lessons 07–09).

- ``cross_entropy``: ``cross_entropy_loss`` via log-sum-exp, with ``ignore_index``,
  label smoothing and the three reductions (lesson 07).
- ``dpo_loss``: ``preference_loss``, the Bradley-Terry preview (lesson 07); lesson 08
  adds ``sequence_logps`` and ``dpo_loss``.
- ``grpo_loss`` / ``ppo_loss``: lesson 09.

Import submodules directly (``from intro2llm.loss.cross_entropy import
cross_entropy_loss``). Nothing is imported here on purpose: each module loads on
its own, so a learner's package with only some of them written still imports.
"""
