"""Data for training: built-in sets, file readers, datasets and cleaning (lesson 06).

- ``builtin``: the data every run uses when the learner passes no files. Generated
  by the project (seeded, deterministic, Chinese and English, nothing downloaded): a
  pretraining corpus, instruction records with verifiable answers and a checker per
  task family, preference records whose rejected answer is a plausible mistake.
- ``readers``: the learner's own files (plain text / JSONL ``{"text"}``, Alpaca-style
  or ``{"conversations": [...]}`` JSONL, ``{"prompt", "chosen", "rejected"}`` JSONL);
  a malformed line raises ``DataFormatError`` naming ``file:line``.
- ``pretrain_dataset``: ``PretrainDataset`` (tokenize, append EOS, pack into blocks),
  ``collate`` (dynamic right padding, attention mask).
- ``sft_dataset``: the chat template, ``build_sft_example`` (prompt labels = -100),
  ``SFTDataset``.
- ``dpo_dataset``: ``DPODataset`` (chosen and rejected, each masked like SFT), ``dpo_collate``.
- ``filtering``: length and repetition filters, MinHash + LSH ``deduplicate``,
  ``quality_score``.

Labels convention, shared by every dataset here: **labels are already shifted**.
``labels[i]`` is the token that follows ``input_ids[i]`` (``-100`` where no loss is
taken), so the training step computes ``cross_entropy_loss(logits, labels)``
directly (lesson 07) and must NOT pass them to ``CausalLM(labels=...)``, which
shifts once more.

Nothing is imported here: ``builtin``, ``readers`` and ``filtering`` need no torch,
so ``llm-course data`` stays light; the dataset modules import torch themselves.
"""
