"""Model components: ``config`` (lesson 01) and, from lesson 02 on, the torch modules.

Import submodules directly (``from intro2llm.model.config import ModelConfig``).
Nothing is imported here on purpose: this package must load without torch, and
the lessons that add torch modules to it keep each one importable on its own.
"""
