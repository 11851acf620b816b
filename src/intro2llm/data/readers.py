"""Readers for the learner's own data files, and ``write_jsonl`` to export records.

A run does not start on bad data: the first malformed line raises
``DataFormatError`` (a ``ValueError``) whose one-line message names the place
(``path:line``, or ``path: record N`` in a ``.json`` array), what is wrong and how to
fix it. A file with no records at all is an error too.

Layouts (UTF-8; blank lines in JSONL are skipped; unknown extra keys are ignored):

- **Pretraining** ``read_pretrain_file(path) -> list[str]``:
  ``.txt`` / ``.md``: one document per block of lines separated by blank lines (each
  block stripped); ``.jsonl``: one ``{"text": "..."}`` object per line.
- **SFT** ``read_sft_file(path) -> list[dict]``, each normalised to
  ``{"instruction", "input", "output"}`` (what ``SFTDataset`` reads):

  * Alpaca style: ``{"instruction": str, "input": str (optional), "output": str}``;
  * conversations: ``{"conversations": [{"role": ..., "content": ...}, ...]}``
    (``"messages"`` is accepted as the key too): an optional ``system`` message, then
    one ``user`` and one ``assistant`` message. The user message becomes the
    instruction (a system message is put before it, followed by a blank line), the
    assistant message the output. Multi-turn conversations are rejected rather than
    silently cut: split them into single-turn records.

- **DPO** ``read_dpo_file(path) -> list[dict]``:
  ``{"prompt": str, "chosen": str, "rejected": str}``, chosen and rejected non-empty
  and different (an identical pair teaches nothing).

SFT and DPO files are JSONL (``.jsonl``); a ``.json`` file holding one JSON array of
the same objects (the original Alpaca release) is read too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class DataFormatError(ValueError):
    """A data file that cannot be used; the message names ``file:line`` and the fix."""


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); "
                              "save the file as UTF-8") from None


def _json_records(path: Path, what: str) -> Iterator[tuple[str, Any]]:
    """Yield ``(place, object)`` for each record of a ``.jsonl`` or ``.json`` file."""
    text = _read_text(path)
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataFormatError(f"{path}:{err.lineno}: invalid JSON ({err.msg}); "
                                  f"a .json file must hold one array of {what} objects") from None
        if not isinstance(data, list):
            raise DataFormatError(f"{path}: a .json file must hold one array of {what} objects "
                                  "(or use .jsonl with one object per line)")
        for i, obj in enumerate(data, start=1):
            yield f"{path}: record {i}", obj
        return
    if path.suffix != ".jsonl":
        raise DataFormatError(f"{path}: unsupported file type {path.suffix!r}; "
                              f"use .jsonl (one {what} object per line) or .json (an array)")
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFormatError(f"{path}:{lineno}: invalid JSON ({err.msg} at column {err.colno}); "
                                  f"each line must be one {what} object") from None
        yield f"{path}:{lineno}", obj


def _require_object(place: str, obj: Any, what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DataFormatError(f"{place}: expected a JSON object {what}, got {type(obj).__name__}")
    return obj


def _string(place: str, obj: dict[str, Any], key: str, *, required: bool = True,
            non_empty: bool = False) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if value is None:
        raise DataFormatError(f"{place}: missing key {key!r}; add \"{key}\": \"...\"")
    if not isinstance(value, str):
        raise DataFormatError(f"{place}: {key!r} must be a string, got {type(value).__name__}")
    if non_empty and not value.strip():
        raise DataFormatError(f"{place}: {key!r} is empty; give it some text or drop the record")
    return value


def _no_records(path: Path, what: str) -> DataFormatError:
    return DataFormatError(f"{path}: no records found (empty file or only blank lines); "
                           f"add at least one {what}")


def read_pretrain_file(path: str | Path) -> list[str]:
    """Read pretraining documents from ``.txt`` / ``.md`` (blank-line separated) or ``.jsonl``.

    Args:
        path: the file.
    Returns:
        list of documents (non-empty strings).
    Raises:
        DataFormatError: unsupported suffix, invalid line, missing / non-string ``"text"``,
            no documents.
    """
    path = Path(path)
    if path.suffix in (".txt", ".md"):
        blocks = re.split(r"\n[ \t]*\n", _read_text(path).replace("\r\n", "\n"))
        documents = [block.strip() for block in blocks if block.strip()]
    elif path.suffix == ".jsonl":
        documents = []
        for place, obj in _json_records(path, '{"text": ...}'):
            text = _string(place, _require_object(place, obj, '{"text": ...}'), "text")
            if text.strip():
                documents.append(text)
    else:
        raise DataFormatError(f"{path}: unsupported file type {path.suffix!r}; use .txt "
                              '(documents separated by blank lines) or .jsonl ({"text": ...} per line)')
    if not documents:
        raise _no_records(path, "document")
    return documents


def _from_conversation(place: str, messages: Any) -> dict[str, str]:
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise DataFormatError(f"{place}: 'conversations' must be a list of "
                              '{"role": ..., "content": ...} objects')
    roles = []
    for m in messages:
        _string(place, m, "content")
        roles.append(m.get("role"))
    system = ""
    if roles and roles[0] == "system":
        system, messages, roles = messages[0]["content"], messages[1:], roles[1:]
    if roles != ["user", "assistant"]:
        raise DataFormatError(f"{place}: conversation roles are {roles}, expected an optional "
                              "'system' then one 'user' and one 'assistant' message "
                              "(split multi-turn conversations into single-turn records)")
    instruction = messages[0]["content"]
    if not instruction.strip() or not messages[1]["content"].strip():
        raise DataFormatError(f"{place}: empty user or assistant message; give both some text")
    return {"instruction": f"{system}\n\n{instruction}" if system.strip() else instruction,
            "input": "", "output": messages[1]["content"]}


def read_sft_file(path: str | Path) -> list[dict[str, str]]:
    """Read SFT records (Alpaca-style or single-turn conversations) from JSONL / a JSON array.

    Args:
        path: a ``.jsonl`` file (or a ``.json`` array).
    Returns:
        list of ``{"instruction", "input", "output"}`` (``input`` "" when absent).
    Raises:
        DataFormatError: the first malformed record, with ``file:line``; no records.
    """
    path = Path(path)
    what = '{"instruction", "input", "output"} or {"conversations": [...]}'
    records = []
    for place, obj in _json_records(path, what):
        obj = _require_object(place, obj, what)
        key = "conversations" if "conversations" in obj else "messages" if "messages" in obj else None
        if key is not None:
            records.append(_from_conversation(place, obj[key]))
            continue
        if "instruction" not in obj or "output" not in obj:
            raise DataFormatError(f"{place}: expected keys 'instruction' and 'output' (Alpaca style) "
                                  f"or 'conversations', found {sorted(obj)}")
        records.append({"instruction": _string(place, obj, "instruction", non_empty=True),
                        "input": _string(place, obj, "input", required=False),
                        "output": _string(place, obj, "output", non_empty=True)})
    if not records:
        raise _no_records(path, "SFT record")
    return records


def read_dpo_file(path: str | Path) -> list[dict[str, str]]:
    """Read preference pairs ``{"prompt", "chosen", "rejected"}`` from JSONL / a JSON array.

    Args:
        path: a ``.jsonl`` file (or a ``.json`` array).
    Returns:
        list of ``{"prompt", "chosen", "rejected"}``.
    Raises:
        DataFormatError: the first malformed record, with ``file:line``; no records.
    """
    path = Path(path)
    what = '{"prompt", "chosen", "rejected"}'
    records = []
    for place, obj in _json_records(path, what):
        obj = _require_object(place, obj, what)
        record = {"prompt": _string(place, obj, "prompt"),
                  "chosen": _string(place, obj, "chosen", non_empty=True),
                  "rejected": _string(place, obj, "rejected", non_empty=True)}
        if record["chosen"] == record["rejected"]:
            raise DataFormatError(f"{place}: 'chosen' and 'rejected' are identical; "
                                  "a preference pair needs two different answers")
        records.append(record)
    if not records:
        raise _no_records(path, "preference record")
    return records


def write_jsonl(records: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write one JSON object per line (UTF-8, Chinese kept readable); creates parent folders.

    Args:
        records: the objects (e.g. ``[{"text": doc} for doc in pretrain_corpus()]``).
        path: the ``.jsonl`` file to write.
    Returns:
        the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path
