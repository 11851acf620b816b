"""A lesson's files get the reference modules they import that the workspace does not have yet."""

from __future__ import annotations

import os
import subprocess
import sys

from intro2llm_cli.catalog import Catalog
from intro2llm_cli.progress import LessonState, Progress
from intro2llm_cli.stubgen import is_stub
from intro2llm_cli.workspace import Workspace, reference_imports


def test_the_import_closure_follows_relative_imports():
    closure = reference_imports(["training/dpo_trainer.py"])
    assert {"training/trainer.py", "training/distributed.py", "utils/mixed_precision.py",
            "data/dpo_dataset.py"} <= set(closure)
    assert "training/dpo_trainer.py" not in closure
    assert reference_imports(["model/norm.py"]) == ["model/config.py"]
    assert reference_imports(["tokenizer/base_tokenizer.py"]) == []


def test_lesson08_before_lesson10_gets_the_trainer_and_later_its_stubs(tmp_path):
    catalog = Catalog.load()
    progress = Progress.new(catalog, "full", "en", "workspace")
    for lesson in catalog.lessons:
        if lesson.number <= 7:
            progress.lesson(lesson.id).state = LessonState.completed
    progress.refresh_unlocks(catalog)
    workspace = Workspace(tmp_path / "workspace")
    workspace.create()
    report = workspace.write_lesson(catalog, progress, catalog.resolve("lesson08"))
    trainer = workspace.package / "training" / "trainer.py"
    assert "my_llm/training/trainer.py" in report.provided and "my_llm/training/distributed.py" in report.provided
    assert not is_stub(trainer.read_text(encoding="utf-8"), "Trainer.train"), "lesson 10 not started: the reference"

    code = "import sys, intro2llm_cli.targets as t; t.activate(sys.argv[1]); " \
           "import my_llm.training.dpo_trainer, my_llm.training.trainer; print('ok')"
    done = subprocess.run([sys.executable, "-c", code, str(workspace.root)], capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if k != "LLM_COURSE_TARGET"})
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr

    progress.lesson("lesson08_dpo").state = LessonState.completed
    progress.refresh_unlocks(catalog)
    report = workspace.write_lesson(catalog, progress, catalog.resolve("lesson10"))
    assert is_stub(trainer.read_text(encoding="utf-8"), "Trainer.train"), "starting lesson 10 writes its stubs"
