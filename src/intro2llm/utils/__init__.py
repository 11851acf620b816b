"""Utilities shared by the trainers and the evaluation lessons.

- ``mixed_precision`` (lesson 10): the autocast dtype choice (bf16 / fp16 / fp32), the
  autocast context, and ``LossScaler``, the dynamic loss scale that fp16 training needs.

Import submodules directly (``from intro2llm.utils.mixed_precision import LossScaler``).
Nothing is imported here on purpose: each module loads on its own.
"""
