"""Turn an exception from a lesson test into what a learner should look at."""

from __future__ import annotations

import re
import traceback
from pathlib import Path
from types import TracebackType

from ..messages import t
from ..stubgen import STUB_MARKER

_STUB = re.compile(re.escape(STUB_MARKER) + r"\d+\): (?P<symbol>[\w.]+)")
_MAX_LINES = 12


class Diagnosis:
    def __init__(self, message: str, location: str | None = None, stub: str | None = None,
                 timeout: bool = False) -> None:
        self.message = message
        self.location = location
        self.stub = stub
        self.timeout = timeout
        self.details = ""


def readable_traceback(exc: BaseException, tb: TracebackType | None, first_file: Path) -> str:
    """The traceback from the first frame in ``first_file``'s folder (the lesson's tests)
    onwards: pytest's and pluggy's own frames say nothing to a learner."""
    start = tb
    folder = str(first_file)
    while start is not None and not start.tb_frame.f_code.co_filename.startswith(folder):
        start = start.tb_next
    return "".join(traceback.format_exception(type(exc), exc, start or tb))


def _in_target(filename: str, root: Path | None) -> bool:
    if root is None:
        return False
    try:
        Path(filename).resolve().relative_to(root)
    except (ValueError, OSError):
        return False
    return True


def _display(filename: str, line: int | None, func: str | None, root: Path | None) -> str:
    path = Path(filename)
    if root is not None:
        try:
            path = Path(root.name) / path.resolve().relative_to(root)
        except (ValueError, OSError):
            pass
    where = f"{path.as_posix()}:{line}" if line else path.as_posix()
    return f"{where} ({func})" if func and func != "<module>" else where


def _learner_frame(tb: TracebackType | None, root: Path | None) -> str | None:
    """The innermost frame of the traceback that lies in the learner's package."""
    found = None
    for frame in traceback.extract_tb(tb):
        if _in_target(frame.filename, root):
            found = _display(frame.filename, frame.lineno, frame.name, root)
    return found


def _short(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if len(lines) > _MAX_LINES:
        lines = lines[:_MAX_LINES] + ["…"]
    return "\n".join(lines)


def diagnose(exc: BaseException, tb: TracebackType | None, root: Path | None, lang: str,
             tests_folder: Path) -> Diagnosis:
    """Explain ``exc`` raised while testing code under ``root`` (the my_llm folder)."""
    diagnosis = _explain(exc, tb, root, lang)
    diagnosis.details = readable_traceback(exc, tb, tests_folder)
    return diagnosis


def _explain(exc: BaseException, tb: TracebackType | None, root: Path | None, lang: str) -> Diagnosis:
    location = _learner_frame(tb, root)
    stub = _STUB.search(str(exc)) if isinstance(exc, NotImplementedError) else None
    if stub:
        symbol = stub.group("symbol")
        return Diagnosis(t("result.stub", lang, symbol=symbol), location, stub=symbol)
    if isinstance(exc, SyntaxError):
        where = _display(exc.filename or "?", exc.lineno, None, root)
        return Diagnosis(t("result.syntax", lang, error=exc.msg, where=where), where)
    name = type(exc).__name__
    text = str(exc)
    if name == "Failed" and text.startswith("Timeout"):
        seconds = re.findall(r"[\d.]+", text)
        return Diagnosis(t("result.timeout", lang, seconds=seconds[0] if seconds else "?"), location, timeout=True)
    if isinstance(exc, SystemExit):
        return Diagnosis(t("result.system_exit", lang, code=exc.code), location)
    if isinstance(exc, RecursionError):
        return Diagnosis(t("result.recursion", lang), location)
    if isinstance(exc, AssertionError):
        # pytest appends its own "assert ..." introspection after our message.
        ours = text.split("\nassert ")[0]
        return Diagnosis(_short(ours) or t("result.assertion", lang), location)
    if isinstance(exc, (ImportError, ModuleNotFoundError)) and location is None and "my_llm" in text:
        return Diagnosis(t("result.import", lang, error=text), location)
    return Diagnosis(_short(f"{name}: {text}"), location)
