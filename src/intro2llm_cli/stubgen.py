"""Stubs from the reference source (注释即实现).

For each target symbol the stub keeps the decorators, the signature (however
many lines), the docstring and the ``# Step N:`` comments of the body (with the
indented comment lines that continue them), and replaces the code with
``raise NotImplementedError("TODO(lessonNN): Symbol")``. Everything else in the
file stays byte-for-byte as the reference wrote it. The same line-splicing is
used to drop a wrong implementation into a module (``replace_symbol``), which
is how ``author verify`` runs the lessons' known mistakes.

Works on text with ``ast`` line numbers, so comments and formatting outside the
targets survive, and the output is deterministic.
"""

from __future__ import annotations

import ast
import re
import textwrap

STUB_MARKER = "TODO(lesson"
_STEP = re.compile(r"^\s*#\s*Step\s*\d+", re.IGNORECASE)
_CONTINUATION = re.compile(r"^\s*#\s{2,}\S")  # "#   more of the step above"
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


class StubError(ValueError):
    """The reference source does not fit the stub conventions (an author error)."""


def find_symbol(tree: ast.Module, qualname: str) -> ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef:
    """Find ``func``, ``Class``, ``Class.method`` or ``Outer.Inner.method`` in a module."""
    scope: list[ast.stmt] = tree.body
    node: ast.AST | None = None
    for part in qualname.split("."):
        # Last definition wins, as at run time (a property setter reuses the name;
        # the getter is the one we want, so prefer the first plain definition).
        matches = [n for n in scope if isinstance(n, (*_FUNCTIONS, ast.ClassDef)) and n.name == part]
        if not matches:
            raise StubError(f"'{qualname}' is not defined in the module")
        node = matches[0]
        scope = node.body if isinstance(node, ast.ClassDef) else []
    assert isinstance(node, (*_FUNCTIONS, ast.ClassDef))
    return node


def _functions_of(node: ast.AST, qualname: str) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """A function target is itself; a class target means each of its methods with step comments."""
    if isinstance(node, _FUNCTIONS):
        return [(qualname, node)]
    assert isinstance(node, ast.ClassDef)
    return [(f"{qualname}.{n.name}", n) for n in node.body if isinstance(n, _FUNCTIONS)]


def _docstring_end(func: ast.FunctionDef | ast.AsyncFunctionDef, qualname: str) -> int:
    first = func.body[0]
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        raise StubError(f"target '{qualname}' has no docstring; stubs keep the docstring as the contract")
    assert first.end_lineno is not None
    return first.end_lineno


def _step_comments(lines: list[str]) -> list[str]:
    """The ``# Step`` comment blocks among ``lines``: each step line plus the
    indented comment lines (``#   ...``) directly below it. Any other comment in
    a target body is the author's note and does not reach the learner."""
    kept: list[str] = []
    in_step = False
    for line in lines:
        stripped = line.strip()
        if _STEP.match(line):
            in_step = True
            kept.append(stripped)
        elif in_step and _CONTINUATION.match(line):
            kept.append(stripped)
        else:
            in_step = False
    return kept


def orphan_continuations(source: str, symbols: list[str]) -> list[str]:
    """Step-continuation lines (``#   ...``) that follow code instead of a step line.

    The stub keeps only a step line and the continuation lines directly below it, so
    such a line would silently vanish from the learner's stub (an authoring slip).
    Returns ``"symbol:line"`` for each.
    """
    tree = ast.parse(source)
    lines = source.splitlines()
    found: list[str] = []
    for qualname in symbols:
        for name, func in _functions_of(find_symbol(tree, qualname), qualname):
            assert func.end_lineno is not None
            in_step = False
            for number in range(_docstring_end(func, name) + 1, func.end_lineno + 1):
                line = lines[number - 1]
                if _STEP.match(line):
                    in_step = True
                elif _CONTINUATION.match(line):
                    if not in_step:
                        found.append(f"{name}:{number}")
                else:
                    in_step = False
    return found


def _body_indent(func: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> str:
    line = lines[func.body[0].lineno - 1]
    return line[: len(line) - len(line.lstrip())]


def _splice(lines: list[str], start: int, end: int, new: list[str]) -> None:
    """Replace 1-based inclusive line range [start, end] with ``new``."""
    lines[start - 1 : end] = new


def stub_source(source: str, symbols: list[str], lesson_short_id: str) -> str:
    """Return ``source`` with every symbol in ``symbols`` turned into a stub."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    edits: list[tuple[int, int, list[str]]] = []
    for qualname in symbols:
        for name, func in _functions_of(find_symbol(tree, qualname), qualname):
            doc_end = _docstring_end(func, name)
            assert func.end_lineno is not None
            indent = _body_indent(func, lines)
            body = lines[doc_end : func.end_lineno]
            steps = [f"{indent}{comment}\n" for comment in _step_comments(body)]
            if isinstance(find_symbol(tree, qualname), ast.ClassDef) and not steps:
                continue  # helper methods of a class target without steps stay as written
            todo = f'{indent}raise NotImplementedError("{STUB_MARKER}{lesson_short_id[6:]}): {name}")\n'
            edits.append((doc_end + 1, func.end_lineno, [*steps, todo]))
    for start, end, new in sorted(edits, reverse=True):
        _splice(lines, start, end, new)
    return "".join(lines)


def is_stub(source: str, qualname: str) -> bool:
    """True when the function's body is still only the generated ``raise``."""
    func = find_symbol(ast.parse(source), qualname)
    if not isinstance(func, _FUNCTIONS):
        return False
    body = func.body[1:] if _has_docstring(func) else func.body
    if len(body) != 1 or not isinstance(body[0], ast.Raise):
        return False
    return STUB_MARKER in ast.unparse(body[0])


def _has_docstring(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    first = func.body[0]
    return isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)


def symbol_source(source: str, qualname: str) -> str:
    """The text of ``qualname``'s definition in ``source``, decorators included."""
    node = find_symbol(ast.parse(source), qualname)
    first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
    assert node.end_lineno is not None
    return "\n".join(source.splitlines()[first - 1: node.end_lineno])


def replace_symbol(source: str, qualname: str, new_definition: str) -> str:
    """Replace function ``qualname`` (its ``def`` through its last line) with
    ``new_definition``, renamed and re-indented to fit. Decorators of the
    original stay; decorators on ``new_definition`` are dropped."""
    tree = ast.parse(source)
    func = find_symbol(tree, qualname)
    if not isinstance(func, _FUNCTIONS):
        raise StubError(f"'{qualname}' is a class; name one of its methods")
    new_tree = ast.parse(textwrap.dedent(new_definition))
    new_func = next((n for n in new_tree.body if isinstance(n, _FUNCTIONS)), None)
    if new_func is None:
        raise StubError("the replacement holds no function definition")
    new_lines = textwrap.dedent(new_definition).splitlines(keepends=True)[new_func.lineno - 1 : new_func.end_lineno]
    new_lines[0] = re.sub(r"def\s+\w+", f"def {func.name}", new_lines[0], count=1)
    if not new_lines[-1].endswith("\n"):
        new_lines[-1] += "\n"
    lines = source.splitlines(keepends=True)
    indent = " " * func.col_offset
    assert func.end_lineno is not None
    _splice(lines, func.lineno, func.end_lineno,
            [indent + line if line.strip() else line for line in new_lines])
    return "".join(lines)
