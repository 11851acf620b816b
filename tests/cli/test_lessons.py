"""Every published lesson is a real teaching instrument, under the CLI and under plain pytest.

``author verify`` proves: the reference passes every test, fresh stubs fail
every test, and each known learner mistake in ``mistakes.py`` is caught.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from intro2llm_cli.catalog import Catalog
from intro2llm_cli.paths import lessons_dir

READY = [lesson.short_id for lesson in Catalog.load().lessons if lesson.ready]


@pytest.mark.timeout(900)  # a whole suite per known mistake: ~1-2 min per lesson on 2 cores
@pytest.mark.parametrize("lesson", READY)
def test_author_verify_passes(tmp_path, lesson):
    done = subprocess.run(
        [sys.executable, "-m", "intro2llm_cli.main", "--lang", "en", "author", "verify", lesson, "-v"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "OK" in done.stdout


@pytest.mark.parametrize(("target", "expect_pass"), [("reference", True), ("stubs", False)])
def test_plain_pytest_runs_a_lesson_against_any_target(tmp_path, target, expect_pass):
    lesson = Catalog.load().resolve(READY[0])
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(lesson.tests_dir()), "-q", "-p", "no:randomly"],
        cwd=lessons_dir().parent, capture_output=True, text=True, timeout=600,
        env={**os.environ, "LLM_COURSE_TARGET": target},
    )
    summary = done.stdout.strip().splitlines()[-1]
    if expect_pass:
        assert done.returncode == 0, done.stdout[-2000:]
        assert "passed" in summary and "failed" not in summary
    else:
        assert done.returncode == 1, done.stdout[-2000:]
        assert "failed" in summary and "passed" not in summary, summary


def test_plain_pytest_without_a_target_says_how_to_choose_one(tmp_path):
    lesson = Catalog.load().resolve(READY[0])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_COURSE_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(lesson.tests_dir() / "basic_test.py"), "-q", "-x"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env,
    )
    assert done.returncode == 1
    assert "LLM_COURSE_TARGET=reference|stubs|<workspace path>" in done.stdout
