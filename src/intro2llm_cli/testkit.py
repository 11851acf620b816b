"""Helpers for lesson tests: import the learner's code, compare, explain.

Lesson tests import the learner's modules through ``learner("model.norm")``
inside the test (never at the top of the file), so an import error or a hang
at import time becomes one readable failing test. Comparisons fail with a
message that says what to look at — lengths, the first differing position,
shapes, dtypes, the largest difference and where — in the learner's language.
torch is imported only by the tensor helpers.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from .messages import t
from .stubgen import STUB_MARKER


def lang() -> str:
    return os.environ.get("LLM_COURSE_LANG", "zh")


def say(zh: str, en: str) -> str:
    """Pick the learner's language for a test-specific message."""
    return zh if lang() == "zh" else en


def learner(module: str) -> ModuleType:
    """The learner's module, e.g. ``learner("tokenizer.bpe_tokenizer")`` -> ``my_llm.tokenizer.bpe_tokenizer``."""
    return importlib.import_module(f"my_llm.{module}")


def reference(module: str) -> ModuleType:
    """The reference library's module of the same name (``intro2llm.<module>``)."""
    return importlib.import_module(f"intro2llm.{module}")


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def assert_equal(actual: Any, expected: Any, what: str) -> None:
    """Plain equality with both values in the message."""
    assert actual == expected, t("diff.value", lang(), what=what, expected=_short(expected), actual=_short(actual))


def assert_same_sequence(actual: Any, expected: Sequence[Any], what: str) -> None:
    """Sequences equal element by element; the message shows the first difference."""
    if not isinstance(actual, (list, tuple)):
        raise AssertionError(t("diff.not_sequence", lang(), what=what, type=type(actual).__name__))
    actual = list(actual)
    expected = list(expected)
    for index, (got, want) in enumerate(zip(actual, expected, strict=False)):
        if got != want:
            start = max(0, index - 2)
            raise AssertionError(t(
                "diff.sequence", lang(), what=what, index=index, expected=_short(want), actual=_short(got),
                context_expected=_short(expected[start : index + 3]), context_actual=_short(actual[start : index + 3]),
            ))
    if len(actual) != len(expected):
        raise AssertionError(t("diff.length", lang(), what=what, expected=len(expected), actual=len(actual),
                               extra=_short(actual[len(expected):] or expected[len(actual):])))


def expect_error(error: type[BaseException], call: Callable[[], Any], what: str) -> BaseException:
    """``call()`` must raise ``error``; returns the exception for further checks."""
    try:
        value = call()
    except error as exc:
        return exc
    except NotImplementedError as exc:
        if STUB_MARKER in str(exc):
            raise  # still a stub: let the runner report it as such
        raise AssertionError(t("diff.wrong_error", lang(), what=what, expected=error.__name__,
                               actual=f"NotImplementedError: {exc}")) from exc
    except Exception as exc:  # a different exception: say which
        raise AssertionError(t("diff.wrong_error", lang(), what=what, expected=error.__name__,
                               actual=f"{type(exc).__name__}: {exc}")) from exc
    raise AssertionError(t("diff.no_error", lang(), what=what, expected=error.__name__, value=_short(value)))


def with_hint(message: str, hint: str | tuple[str, str] | None) -> str:
    """``message`` plus a line naming the likely cause: a string, or ``(zh, en)``."""
    if not hint:
        return message
    return f"{message}\n{say(*hint) if isinstance(hint, tuple) else hint}"


def assert_close(actual: Any, expected: Any, what: str, *, atol: float = 1e-5, rtol: float = 1e-5,
                 check_dtype: bool = True, hint: str | tuple[str, str] | None = None) -> None:
    """Tensors equal within ``atol + rtol * |expected|``: type, shape and dtype first,
    then the worst element and its position. ``hint`` (a string or ``(zh, en)``)
    is appended to the message on failure, to name the likely cause."""
    try:
        _assert_close(actual, expected, what, atol=atol, rtol=rtol, check_dtype=check_dtype)
    except AssertionError as exc:
        if not hint:
            raise
        raise AssertionError(with_hint(str(exc), hint)) from None


def _assert_close(actual: Any, expected: Any, what: str, *, atol: float, rtol: float,
                  check_dtype: bool) -> None:
    import torch

    if not isinstance(actual, torch.Tensor):
        raise AssertionError(t("diff.not_tensor", lang(), what=what, type=type(actual).__name__))
    if actual.shape != expected.shape:
        raise AssertionError(t("diff.shape", lang(), what=what, expected=list(expected.shape),
                               actual=list(actual.shape)))
    if check_dtype and actual.dtype != expected.dtype:
        raise AssertionError(t("diff.dtype", lang(), what=what, expected=expected.dtype, actual=actual.dtype))
    got = actual.detach().to(torch.float64).cpu()
    want = expected.detach().to(torch.float64).cpu()
    if not torch.isfinite(got).all() and torch.isfinite(want).all():
        bad = (~torch.isfinite(got)).nonzero()[0].tolist()
        raise AssertionError(t("diff.nonfinite", lang(), what=what, index=bad if got.dim() else "()"))
    diff = (got - want).abs()
    diff = torch.where(torch.isnan(diff), torch.zeros_like(diff), diff)
    allowed = atol + rtol * want.abs()
    bad_mask = diff > allowed
    if bad_mask.any():
        # Point at the element that breaks the tolerance worst, not merely the
        # largest absolute difference (which may sit within rtol of a big value).
        flat = int((diff - allowed).argmax())
        index = [int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape)] if diff.dim() else []
        raise AssertionError(t(
            "diff.values", lang(), what=what, count=int(bad_mask.sum()), total=diff.numel(),
            max_diff=f"{float(diff.flatten()[flat]):.3g}", index=index,
            expected=f"{float(want.flatten()[flat]):.6g}", actual=f"{float(got.flatten()[flat]):.6g}",
            atol=atol, rtol=rtol,
        ))


def nested_difference(actual, expected, where: str = "") -> str | None:
    """Where two nested values (dicts, lists / tuples alike, tensors by value, dtype and shape) first differ.

    Returns a path such as ``state_dict['state'][0]['exp_avg']: ...`` naming the first difference, or None.
    """
    import torch

    if isinstance(expected, torch.Tensor):
        if not isinstance(actual, torch.Tensor):
            return f"{where}: {type(actual).__name__} instead of a tensor"
        if actual.dtype != expected.dtype or actual.shape != expected.shape or not torch.equal(actual.cpu(), expected):
            return f"{where}: tensor {actual.dtype} {list(actual.shape)} != {expected.dtype} {list(expected.shape)}"
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or set(actual) != set(expected):
            keys = sorted(map(str, actual)) if isinstance(actual, dict) else type(actual).__name__
            return f"{where}: keys {keys} != {sorted(map(str, expected))}"
        for key in expected:
            found = nested_difference(actual[key], expected[key], f"{where}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(expected, (list, tuple)):
        if not isinstance(actual, (list, tuple)) or len(actual) != len(expected):
            return f"{where}: {actual!r} != {expected!r}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            found = nested_difference(a, e, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if actual == expected else f"{where}: {actual!r} != {expected!r}"
