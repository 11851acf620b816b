"""The one exception type the tool shows to people.

A ``CourseError`` carries a message key and its arguments rather than text, so
the CLI renders it in the learner's language through ``messages`` and nothing
else needs to know about languages.
"""

from __future__ import annotations

from typing import Any


class CourseError(Exception):
    """An error a learner or course author can fix; shown as one or two lines."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params = params

    def render(self, lang: str | None = None) -> str:
        from .messages import t

        return t(self.key, lang, **self.params)

    def __str__(self) -> str:
        return self.render("en")
