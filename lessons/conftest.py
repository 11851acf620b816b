"""Every lesson suite resolves ``my_llm`` through LLM_COURSE_TARGET; see intro2llm_cli.targets."""

from intro2llm_cli.lesson_plugin import _my_llm_target, pytest_configure  # noqa: F401
