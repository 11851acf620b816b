"""What ``import my_llm`` means during a lesson run.

One mechanism serves the CLI, ``author verify`` and plain pytest: the
environment variable ``LLM_COURSE_TARGET`` names the target —

- ``reference``: the reference library's own files (``intro2llm``) loaded under
  the name ``my_llm``;
- ``stubs``: fresh stubs of the lesson under test, generated into a temp folder;
- a path: a workspace (a folder holding ``my_llm/``) or a package folder itself.

``activate`` installs a meta-path finder that maps ``my_llm`` and its submodules
to the target folder and compiles the source every time (no ``.pyc`` reuse, so
an edit saved within the same second is still seen), after dropping every
``my_llm`` module from ``sys.modules``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import linecache
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

PACKAGE = "my_llm"
TARGET_ENV = "LLM_COURSE_TARGET"


class _FreshSourceLoader(importlib.machinery.SourceFileLoader):
    """Compile from source on every import; never read or write bytecode caches."""

    def get_code(self, fullname: str):  # type: ignore[override]
        path = self.get_filename(fullname)
        return compile(self.get_data(path), path, "exec", dont_inherit=True)


class _TargetFinder(importlib.abc.MetaPathFinder):
    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(self, fullname: str, path=None, target: ModuleType | None = None):
        if fullname != PACKAGE and not fullname.startswith(PACKAGE + "."):
            return None
        base = self.root.joinpath(*fullname.split(".")[1:])
        init = base / "__init__.py"
        if init.is_file():
            return importlib.util.spec_from_file_location(
                fullname, init, loader=_FreshSourceLoader(fullname, str(init)),
                submodule_search_locations=[str(base)],
            )
        module_file = base.with_suffix(".py")
        if module_file.is_file():
            return importlib.util.spec_from_file_location(
                fullname, module_file, loader=_FreshSourceLoader(fullname, str(module_file))
            )
        return None


_active: tuple[str, Path] | None = None
_stub_dirs: dict[str, Path] = {}


def purge() -> None:
    """Forget every imported ``my_llm`` module so the next import reads the files again."""
    for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    linecache.checkcache()


def package_root(target: str, lesson_id: str | None = None) -> Path:
    """The folder that plays ``my_llm`` for ``target`` (see the module docstring)."""
    if target == "reference":
        from .paths import reference_dir

        return reference_dir()
    if target == "stubs":
        if lesson_id is None:
            raise ValueError("the 'stubs' target needs to know which lesson's stubs to build")
        return stub_package(lesson_id)
    path = Path(target).expanduser().resolve()
    if (path / PACKAGE / "__init__.py").is_file():
        return path / PACKAGE
    if (path / "__init__.py").is_file():
        return path
    raise ValueError(
        f"{TARGET_ENV}={target!r}: expected 'reference', 'stubs', a workspace folder holding "
        f"{PACKAGE}/, or a package folder"
    )


def stub_package(lesson_id: str) -> Path:
    """A full copy of the reference package with the lesson's targets stubbed (cached per process)."""
    if lesson_id not in _stub_dirs:
        from .catalog import Catalog
        from .paths import reference_dir
        from .stubgen import stub_source

        lesson = Catalog.load().get(lesson_id)
        root = Path(tempfile.mkdtemp(prefix=f"llm-course-stubs-{lesson.short_id}-")) / PACKAGE
        shutil.copytree(reference_dir(), root, ignore=shutil.ignore_patterns("__pycache__"))
        for target in lesson.targets:
            file = root / target.file
            file.write_text(stub_source(file.read_text(encoding="utf-8"), target.symbols, lesson.short_id),
                            encoding="utf-8")
        _stub_dirs[lesson_id] = root
    return _stub_dirs[lesson_id]


def activate_root(root: Path, key: str | None = None) -> Path:
    """Point ``my_llm`` at ``root`` (dropping modules imported from anywhere else)."""
    global _active
    key = key or str(root)
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _TargetFinder)]
    sys.meta_path.insert(0, _TargetFinder(root))
    purge()
    _active = (key, root)
    return root


def activate(target: str, lesson_id: str | None = None) -> Path:
    """Resolve ``target`` and make it the ``my_llm`` package; a no-op if already active."""
    key = f"{target}::{lesson_id}" if target == "stubs" else target
    if _active is not None and _active[0] == key:
        return _active[1]
    return activate_root(package_root(target, lesson_id), key)


def activate_from_environment(lesson_id: str | None) -> Path:
    target = os.environ.get(TARGET_ENV)
    if not target:
        from .paths import find_home

        home = find_home()
        workspace = _workspace_of(home)
        if workspace is None:
            raise RuntimeError(
                f"set {TARGET_ENV}=reference|stubs|<workspace path> to choose what my_llm means "
                f"(no course home with a workspace was found from {Path.cwd()})"
            )
        target = str(workspace)
    return activate(target, lesson_id)


def _workspace_of(home: Path) -> Path | None:
    from .progress import ProgressStore

    store = ProgressStore(home)
    if not store.exists():
        return None
    progress = store.load()
    return (home / progress.workspace).resolve()


def active_root() -> Path | None:
    return _active[1] if _active else None


def reset() -> None:
    """Forget the active target and its modules; the next activation resolves afresh."""
    global _active
    _active = None
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _TargetFinder)]
    purge()
