"""The learner's workspace: ``<workspace>/my_llm/`` and its bookkeeping.

Files are written from the reference: target modules as stubs, prerequisite
modules the learner's path provides as the reference wrote them, and the
package ``__init__.py`` files. A manifest (``.llm-course/manifest.json``)
remembers the hash of every file the tool wrote, so a file the learner changed
is recognised and never overwritten; ``reset`` copies files into
``.llm-course/backups/<time>/`` before it writes anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field

from .catalog import Catalog, LessonSpec
from .paths import reference_dir
from .progress import LessonState, Progress
from .stubgen import stub_source
from .targets import PACKAGE


def reference_imports(modules: list[str]) -> list[str]:
    """Every reference module that ``modules`` import, directly or not, through relative imports.

    Args:
        modules: package-relative paths such as ``"training/dpo_trainer.py"``.
    Returns:
        package-relative paths of the imported modules (``modules`` themselves left out), sorted.
    """
    import ast

    reference = reference_dir()
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module in seen or not (reference / module).is_file():
            continue
        seen.add(module)
        package = list(Path(module).parent.parts)
        for node in ast.walk(ast.parse((reference / module).read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or node.level == 0:
                continue
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            stem = base + (node.module.split(".") if node.module else [])
            candidates = [stem] if node.module else [stem + [alias.name] for alias in node.names]
            for parts in candidates:
                for relpath in (Path(*parts).with_suffix(".py"), Path(*parts, "__init__.py")):
                    if parts and (reference / relpath).is_file():
                        todo.append(relpath.as_posix())
    return sorted(seen - set(modules))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ManifestEntry(BaseModel):
    sha256: str
    kind: str = Field(description="stub | provided | package")
    lesson: str | None = None


class WriteReport(BaseModel):
    """What ``write_lesson`` / ``reset_lesson`` did, as workspace-relative paths."""

    written: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    kept: list[str] = Field(default_factory=list, description="learner-changed files left alone")
    provided: list[str] = Field(default_factory=list)
    backup: str | None = None


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.package = root / PACKAGE
        self.meta = root / ".llm-course"
        self.manifest_file = self.meta / "manifest.json"

    def exists(self) -> bool:
        return self.package.is_dir()

    # -- manifest ----------------------------------------------------------

    def _manifest(self) -> dict[str, ManifestEntry]:
        if not self.manifest_file.is_file():
            return {}
        raw = json.loads(self.manifest_file.read_text(encoding="utf-8"))
        return {path: ManifestEntry.model_validate(entry) for path, entry in raw.items()}

    def _save_manifest(self, manifest: dict[str, ManifestEntry]) -> None:
        self.meta.mkdir(parents=True, exist_ok=True)
        data = {path: entry.model_dump(exclude_none=True) for path, entry in sorted(manifest.items())}
        tmp = self.manifest_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, self.manifest_file)

    def learner_changed(self, relpath: str, manifest: dict[str, ManifestEntry] | None = None) -> bool:
        """True when the file exists and is not byte-for-byte what the tool last wrote."""
        file = self.root / relpath
        if not file.exists():
            return False
        entry = (manifest if manifest is not None else self._manifest()).get(relpath)
        return entry is None or entry.sha256 != _digest(file.read_text(encoding="utf-8"))

    # -- writing -----------------------------------------------------------

    def create(self) -> None:
        self.package.mkdir(parents=True, exist_ok=True)
        self.meta.mkdir(parents=True, exist_ok=True)
        manifest = self._manifest()
        self._write_package_inits("__init__.py", manifest, WriteReport())
        self._save_manifest(manifest)

    def _put(self, relpath: str, text: str, kind: str, lesson: str | None,
             manifest: dict[str, ManifestEntry], report: WriteReport, overwrite: bool = False) -> None:
        file = self.root / relpath
        if file.exists() and not overwrite:
            if self.learner_changed(relpath, manifest):
                report.kept.append(relpath)
                return
            if file.read_text(encoding="utf-8") == text:
                report.unchanged.append(relpath)
                return
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")
        manifest[relpath] = ManifestEntry(sha256=_digest(text), kind=kind, lesson=lesson)
        (report.provided if kind == "provided" else report.written).append(relpath)

    def _write_package_inits(self, module: str, manifest: dict[str, ManifestEntry], report: WriteReport) -> None:
        """Copy the reference ``__init__.py`` of every package on the way to ``module``."""
        reference = reference_dir()
        parts = Path(module).parts[:-1]
        for depth in range(len(parts) + 1):
            init = Path(*parts[:depth], "__init__.py")
            source = reference / init
            relpath = (Path(PACKAGE) / init).as_posix()
            if source.is_file() and not (self.root / relpath).exists():
                self._put(relpath, source.read_text(encoding="utf-8"), "package", None, manifest, report)

    def stub_text(self, catalog: Catalog, progress: Progress, module: str,
                  lesson: LessonSpec | None = None) -> str:
        """The module with ``lesson``'s targets and every target not yet completed
        or provided turned into stubs."""
        text = (reference_dir() / module).read_text(encoding="utf-8")
        for owner, symbols in catalog.lessons_sharing_file(module):
            if owner is lesson or not progress.state(owner.id).done:
                text = stub_source(text, symbols, owner.short_id)
        return text

    def write_lesson(self, catalog: Catalog, progress: Progress, lesson: LessonSpec) -> WriteReport:
        """Write the lesson's stubs and the modules of every provided lesson (never
        overwriting a learner's change)."""
        manifest = self._manifest()
        report = WriteReport()
        for target in lesson.targets:
            self._write_package_inits(target.file, manifest, report)
            relpath = f"{PACKAGE}/{target.file}"
            self._put(relpath, self.stub_text(catalog, progress, target.file, lesson), "stub", lesson.id,
                      manifest, report)
        self._write_provided(catalog, progress, manifest, report)
        self._write_support(lesson, manifest, report)
        self._save_manifest(manifest)
        return report

    def _write_support(self, lesson: LessonSpec, manifest: dict[str, ManifestEntry], report: WriteReport) -> None:
        """Reference modules the lesson's files import that the workspace does not have yet.

        E.g. lesson 08's ``DPOTrainer`` subclasses lesson 10's ``Trainer``: a learner who
        reaches 08 first gets ``training/trainer.py`` as the reference wrote it (replaced by
        stubs, like any unchanged file the tool wrote, when they start lesson 10).
        """
        reference = reference_dir()
        for module in reference_imports([target.file for target in lesson.targets]):
            relpath = f"{PACKAGE}/{module}"
            if (self.root / relpath).exists():
                continue
            self._write_package_inits(module, manifest, report)
            self._put(relpath, (reference / module).read_text(encoding="utf-8"), "provided", None,
                      manifest, report)

    def _write_provided(self, catalog: Catalog, progress: Progress,
                        manifest: dict[str, ManifestEntry], report: WriteReport) -> None:
        reference = reference_dir()
        for lesson in catalog.lessons:
            if progress.state(lesson.id) is not LessonState.provided:
                continue
            for target in lesson.targets:
                relpath = f"{PACKAGE}/{target.file}"
                if not (reference / target.file).is_file() or (self.root / relpath).exists():
                    continue
                self._write_package_inits(target.file, manifest, report)
                self._put(relpath, self.stub_text(catalog, progress, target.file), "provided",
                          lesson.id, manifest, report)

    def reset_lesson(self, catalog: Catalog, progress: Progress, lesson: LessonSpec) -> WriteReport:
        """Back up the lesson's files, then write fresh stubs over them."""
        files = [f"{PACKAGE}/{target.file}" for target in lesson.targets]
        backup = self.backup([f for f in files if (self.root / f).exists()])
        manifest = self._manifest()
        report = WriteReport(backup=str(backup.relative_to(self.root)) if backup else None)
        for target in lesson.targets:
            self._write_package_inits(target.file, manifest, report)
            self._put(f"{PACKAGE}/{target.file}", self.stub_text(catalog, progress, target.file, lesson),
                      "stub", lesson.id, manifest, report, overwrite=True)
        self._save_manifest(manifest)
        return report

    def backup(self, relpaths: list[str]) -> Path | None:
        if not relpaths:
            return None
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        folder = self.meta / "backups" / stamp
        for relpath in relpaths:
            destination = folder / relpath
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.root / relpath, destination)
        return folder
