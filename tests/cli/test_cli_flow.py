"""End to end, as a learner: init -> start -> check fails -> fill in -> check passes -> unlock.

Each step runs the installed command in a fresh process inside a temporary
course home; the learner's "implementation" is the reference copied in.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from intro2llm_cli.paths import reference_dir

from .cli_helpers import llm_course

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LESSON01_FILES = ["model/config.py", "tokenizer/base_tokenizer.py", "tokenizer/bpe_tokenizer.py",
                  "tokenizer/byte_level_tokenizer.py"]


def progress_of(home: Path) -> dict:
    return tomllib.loads((home / "progress" / "progress.toml").read_text(encoding="utf-8"))


def state(home: Path, lesson: str) -> str:
    return progress_of(home)["lessons"][lesson]["state"]


def one_line_error(result) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_learner_flow_from_init_to_unlocking_lesson02(tmp_path: Path):
    home = tmp_path
    assert "llm-course init" in one_line_error(llm_course(home, "status"))

    done = llm_course(home, "init", "--path", "full", "--lang", "en")
    assert done.returncode == 0, done.stderr
    assert state(home, "lesson01_config_tokenizer") == "available"
    assert "already set up" in one_line_error(llm_course(home, "init"))

    assert "complete lesson01 first" in one_line_error(llm_course(home, "start", "lesson02"))
    assert "did you mean `lesson01" in one_line_error(llm_course(home, "start", "lesosn01"))
    assert "llm-course start lesson01" in one_line_error(llm_course(home, "check"))

    started = llm_course(home, "start", "1")
    assert started.returncode == 0, started.stderr
    workspace = home / "workspace" / "my_llm"
    for file in LESSON01_FILES:
        assert "TODO(lesson01)" in (workspace / file).read_text(encoding="utf-8")
    assert state(home, "lesson01_config_tokenizer") == "in_progress"

    failing = llm_course(home, "check")
    assert failing.returncode == 1
    assert "is still a stub" in failing.stdout
    assert state(home, "lesson01_config_tokenizer") == "in_progress"
    assert progress_of(home)["lessons"]["lesson01_config_tokenizer"]["basic"]["passed"] == 0

    hint = llm_course(home, "hint")
    assert hint.returncode == 0 and "hint" in hint.stdout
    assert len(progress_of(home)["lessons"]["lesson01_config_tokenizer"]["hints_used"]) == 1

    # The learner edits one file; starting again must keep it.
    config = workspace / "model" / "config.py"
    config.write_text(config.read_text(encoding="utf-8") + "\n# my notes\n", encoding="utf-8")
    again = llm_course(home, "start", "lesson01")
    assert "kept your changed my_llm/model/config.py" in again.stdout
    assert "llm-course reset lesson01" in again.stdout
    assert config.read_text(encoding="utf-8").endswith("# my notes\n")

    for file in LESSON01_FILES:
        shutil.copy(reference_dir() / file, workspace / file)
    passing = llm_course(home, "check")
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "lesson01 completed" in passing.stdout
    assert "unlocked lesson02" in passing.stdout
    progress = progress_of(home)
    assert progress["lessons"]["lesson01_config_tokenizer"]["state"] == "completed"
    assert progress["lessons"]["lesson02_norm_embedding"]["state"] == "available"
    assert progress["lessons"]["lesson01_config_tokenizer"]["best_check_seconds"] > 0

    status = llm_course(home, "status")
    assert status.returncode == 0 and "completed" in status.stdout
    lesson02 = llm_course(home, "start", "2")
    assert lesson02.returncode == 0, lesson02.stderr
    assert "TODO(lesson02): RMSNorm.forward" in (workspace / "model" / "norm.py").read_text(encoding="utf-8")
    assert "TODO" not in (workspace / "model" / "config.py").read_text(encoding="utf-8")  # lesson 01 work kept
    solution = llm_course(home, "solution", "1")
    assert solution.returncode == 0 and "def merge_pair" in solution.stdout

    # reset backs the learner's work up before writing fresh stubs
    reset = llm_course(home, "reset", "1", "--yes")
    assert reset.returncode == 0, reset.stderr
    backups = list((home / "workspace" / ".llm-course" / "backups").glob("*/my_llm/model/config.py"))
    assert len(backups) == 1
    assert backups[0].read_text(encoding="utf-8") == (reference_dir() / "model/config.py").read_text(encoding="utf-8")
    assert "TODO(lesson01)" in config.read_text(encoding="utf-8")
    assert state(home, "lesson01_config_tokenizer") == "completed"  # progress is never lost


def test_solution_before_completion_needs_force_and_is_recorded(tmp_path: Path):
    assert llm_course(tmp_path, "init", "--lang", "en").returncode == 0
    assert "--force" in one_line_error(llm_course(tmp_path, "solution", "1"))
    forced = llm_course(tmp_path, "solution", "1", "--force")
    assert forced.returncode == 0 and "def bytes_to_unicode" in forced.stdout
    assert progress_of(tmp_path)["lessons"]["lesson01_config_tokenizer"]["solution_viewed"] is True


def test_damaged_progress_file_stops_every_command_and_is_kept(tmp_path: Path):
    assert llm_course(tmp_path, "init", "--lang", "en").returncode == 0
    file = tmp_path / "progress" / "progress.toml"
    broken = file.read_text(encoding="utf-8").replace("[lessons.", "[[lessons.", 1)
    file.write_text(broken, encoding="utf-8")
    for command in (["status"], ["start", "1"], ["hint"], ["check"]):
        line = one_line_error(llm_course(tmp_path, "--lang", "en", *command))
        assert "damaged" in line and "left untouched" in line
    assert file.read_text(encoding="utf-8") == broken


def test_paths_and_languages_from_flags(tmp_path: Path):
    done = llm_course(tmp_path, "init", "--path", "research", "--lang", "zh", "--workspace", "ws")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ws" / "my_llm" / "__init__.py").is_file()
    progress = progress_of(tmp_path)
    assert progress["path"] == "research" and progress["workspace"] == "ws"
    assert progress["lessons"]["lesson01_config_tokenizer"]["state"] == "provided"
    assert "课程" in llm_course(tmp_path, "status").stdout
    assert "still being written" in one_line_error(llm_course(tmp_path, "--lang", "en", "start", "11"))
    started = llm_course(tmp_path, "--lang", "en", "start", "8")
    assert started.returncode == 0, started.stderr
    # lesson 08's trainer builds on lesson 10's Trainer, which the research path does not teach: provided
    assert "provided reference module my_llm/training/trainer.py" in started.stdout
    assert "provided" in llm_course(tmp_path, "--lang", "en", "status").stdout
    assert "`fr`" in one_line_error(llm_course(tmp_path, "--lang", "fr", "status"))


def test_a_home_is_found_from_a_subfolder(tmp_path: Path):
    assert llm_course(tmp_path, "init", "--lang", "en").returncode == 0
    inner = tmp_path / "workspace" / "my_llm"
    assert "lesson01" in llm_course(inner, "status").stdout


LIGHT = ("torch", "pytest", "intro2llm", "numpy")


@pytest.mark.parametrize(
    ("command", "heavy"),
    [(["--help"], LIGHT), (["status"], LIGHT), (["list"], LIGHT), (["hint"], LIGHT), (["start", "1"], LIGHT),
     (["data", "sft"], ("torch", "pytest", "numpy"))],  # data runs the reference's generators, torch-free
)
def test_light_commands_never_import_torch_or_pytest(tmp_path: Path, command, heavy):
    import subprocess

    assert llm_course(tmp_path, "init", "--lang", "en").returncode == 0
    probe = (
        "import sys\nfrom intro2llm_cli.main import run\nsys.argv = ['llm-course', *sys.argv[1:]]\n"
        "try:\n    run()\nexcept SystemExit:\n    pass\n"
        f"heavy = [m for m in {heavy!r} if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, *command], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert "HEAVY []" in done.stdout, done.stdout[-500:] + done.stderr[-500:]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_published_handout_renders_in_both_languages(tmp_path: Path, lang):
    from intro2llm_cli.catalog import Catalog

    for lesson in (x for x in Catalog.load().lessons if x.ready):
        shown = llm_course(tmp_path, "--lang", lang, "show", lesson.short_id)
        assert shown.returncode == 0, shown.stderr
        assert len(shown.stdout.splitlines()) > 200, f"{lesson.short_id} handout looks empty"
