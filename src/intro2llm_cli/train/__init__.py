"""``llm-course train`` and ``generate``: training runs built from the learner's own code.

- ``config``: ``RunConfig``, presets, TOML config files.
- ``code``: which lessons' code a run uses, composed into the run folder.
- ``tokenizer_cache``: the learner's BPE, trained once per (code, data) and cached.
- ``pipeline``: the run itself (in this process or in each torchrun worker).
- ``session``: prepare / launch / record a run (the command's side).
- ``metrics``, ``plot``, ``diagnose``: metrics.jsonl, loss curves, non-finite diagnosis.
- ``generation``: sampling from a saved model.
"""
