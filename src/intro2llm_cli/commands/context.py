"""The options every command shares (``--home``, ``--lang``), set by the app callback."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Options:
    home: str | None = None
    lang: str | None = None


options = Options()


def course():
    from ..course import Course

    return Course(options.home, options.lang)
