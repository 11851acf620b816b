"""``pip install .`` (a real wheel, not an editable install) gives a working course."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root), str(REPO)],
        capture_output=True, text=True, timeout=600,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(root.glob("intro2llm-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "intro2llm_cli/_lessons/course.toml" in names
    assert "intro2llm_cli/_lessons/lesson01_config_tokenizer/tests/basic_test.py" in names
    assert "intro2llm_cli/_lessons/lesson01_config_tokenizer/README.md" in names
    assert "intro2llm/tokenizer/bpe_tokenizer.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "llm-course = intro2llm_cli.main:run" in zipfile.ZipFile(wheel).read(entry_points).decode()
    site = root / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    return site


def run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_COURSE_")}
    env["PYTHONPATH"] = str(site)  # ahead of the editable checkout
    env["COLUMNS"] = "200"
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)


def test_the_installed_wheel_uses_its_own_lessons_and_reference(wheel_site, tmp_path):
    probe = run(wheel_site, tmp_path, "-c",
                "from intro2llm_cli.paths import lessons_dir, reference_dir; print(lessons_dir()); print(reference_dir())")
    lessons, reference = probe.stdout.split()
    assert lessons == str(wheel_site / "intro2llm_cli" / "_lessons")
    assert reference == str(wheel_site / "intro2llm")


def test_the_installed_wheel_runs_a_lesson_end_to_end(wheel_site, tmp_path):
    cli = ["-m", "intro2llm_cli.main", "--lang", "en"]
    assert run(wheel_site, tmp_path, *cli, "init").returncode == 0
    assert run(wheel_site, tmp_path, *cli, "start", "1").returncode == 0
    failing = run(wheel_site, tmp_path, *cli, "check")
    assert failing.returncode == 1 and "still a stub" in failing.stdout
    for file in ("model/config.py", "tokenizer/base_tokenizer.py", "tokenizer/bpe_tokenizer.py",
                 "tokenizer/byte_level_tokenizer.py"):
        shutil.copy(wheel_site / "intro2llm" / file, tmp_path / "workspace" / "my_llm" / file)
    passing = run(wheel_site, tmp_path, *cli, "check")
    assert passing.returncode == 0, passing.stdout[-2000:] + passing.stderr[-2000:]
    assert "unlocked lesson02" in passing.stdout
    shown = run(wheel_site, tmp_path, *cli, "show", "1")
    assert shown.returncode == 0 and "BPE" in shown.stdout
