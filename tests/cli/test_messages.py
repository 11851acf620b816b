"""The message catalogue: both languages, same placeholders, every key used exists."""

from __future__ import annotations

import re
import string
from pathlib import Path

from intro2llm_cli.messages import MESSAGES, t

SOURCE_DIR = Path(__file__).resolve().parents[2] / "src" / "intro2llm_cli"


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_message_has_both_languages_with_the_same_placeholders():
    for key, (zh, en) in MESSAGES.items():
        assert zh and en, key
        assert fields(zh) == fields(en), key


def test_every_key_used_in_the_code_exists():
    used = set()
    for file in SOURCE_DIR.rglob("*.py"):
        text = file.read_text(encoding="utf-8")
        used |= set(re.findall(r'(?:\bt|CourseError)\(\s*"([a-z_]+\.[a-z_.]*[a-z])"', text))
    missing = sorted(key for key in used if key not in MESSAGES)
    assert not missing, missing


def test_language_choice():
    assert t("lang.unknown", "en", given="fr").startswith("unknown language")
    assert "不支持" in t("lang.unknown", "zh", given="fr")
