"""Trainers of lesson 10: the training loop as a recipe.

- ``trainer``: ``TrainingArguments`` and ``Trainer`` (forward → loss → backward →
  clip → step → schedule, gradient accumulation, evaluation, checkpoints, metrics).
- ``pretrain_trainer``: ``PretrainTrainer``, next-token cross-entropy on already-shifted labels.
- ``sft_trainer``: ``SFTTrainer``, the same loss over the response tokens only, plus
  exact-match evaluation of generated answers.
- ``checkpointing``: training checkpoints as safetensors + JSON folders (no pickle),
  written atomically, for exact resume.

Import submodules directly (``from intro2llm.training.trainer import Trainer``).
Nothing is imported here on purpose: each module loads on its own, so a learner's
package with only some of them written still imports.
"""
