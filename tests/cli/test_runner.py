"""The runner survives whatever a learner's code does and says where it went wrong.

A throw-away lesson (one test per kind of fault) runs against a throw-away
``my_llm`` package in a subprocess, exactly as ``llm-course check`` runs it:
in-process pytest with the result plugin.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from intro2llm_cli.paths import lessons_dir

LESSON_TOML = """\
schema_version = 1
id = "lesson01_faults"
number = 1
stage = 1
title = { zh = "故障", en = "Faults" }
[[targets]]
file = "fine.py"
symbols = ["value"]
"""

COURSE_TOML = """\
schema_version = 1
[[stages]]
number = 1
title = { zh = "一", en = "one" }
[paths.full]
title = { zh = "全部", en = "all" }
lessons = [1]
"""

TESTS = '''\
import pytest
import torch

from intro2llm_cli.testkit import assert_close, assert_same_sequence, learner

pytestmark = pytest.mark.symbol("value")


def test_syntax_error():
    learner("broken_syntax")


def test_missing_import():
    learner("missing_import")


def test_endless_loop():
    learner("looping").spin()


def test_sys_exit():
    learner("exits").leave()


def test_recursion():
    learner("recursive").down(1)


def test_wrong_shape():
    assert_close(learner("shapes").make(), torch.zeros(2, 3), "make()")


def test_wrong_values():
    expected = torch.zeros(2, 3)
    actual = expected.clone()
    actual[1, 2] = 0.5
    assert_close(actual, expected, "make()")


def test_sequence_difference():
    assert_same_sequence([1, 2, 9, 4], [1, 2, 3, 4], "ids")


def test_stub():
    learner("stubbed").todo()


def test_passes():
    assert learner("fine").value() == 1
'''

MODULES = {
    "__init__.py": "",
    "broken_syntax.py": "def f(:\n    pass\n",
    "missing_import.py": "from .nowhere import thing\n",
    "looping.py": "def spin():\n    while True:\n        pass\n",
    "exits.py": "import sys\n\ndef leave():\n    sys.exit(3)\n",
    "recursive.py": "def down(n):\n    return down(n + 1)\n",
    "shapes.py": "import torch\n\ndef make():\n    return torch.zeros(3, 2)\n",
    "stubbed.py": 'def todo():\n    """Doc."""\n    raise NotImplementedError("TODO(lesson01): todo")\n',
    "fine.py": "def value():\n    return 1\n",
}

RUN = textwrap.dedent("""\
    import json, sys
    from intro2llm_cli.catalog import Catalog
    from intro2llm_cli.runner import run_suite
    lesson = Catalog.load().get("lesson01_faults")
    first = run_suite(lesson, ["basic"], sys.argv[1], lang="en", timeout=2)
    second = run_suite(lesson, ["basic"], sys.argv[1], lang="en", timeout=2)
    print(json.dumps([first.model_dump(mode="json"), second.passed]))
""")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("faults")
    lessons = root / "lessons"
    (lessons / "lesson01_faults" / "tests").mkdir(parents=True)
    for name in ("conftest.py", "pytest.ini"):
        shutil.copy(lessons_dir() / name, lessons / name)
    (lessons / "course.toml").write_text(COURSE_TOML, encoding="utf-8")
    (lessons / "lesson01_faults" / "lesson.toml").write_text(LESSON_TOML, encoding="utf-8")
    (lessons / "lesson01_faults" / "tests" / "basic_test.py").write_text(TESTS, encoding="utf-8")
    package = root / "workspace" / "my_llm"
    package.mkdir(parents=True)
    for name, text in MODULES.items():
        (package / name).write_text(text, encoding="utf-8")
    env = {**__import__("os").environ, "LLM_COURSE_LESSONS": str(lessons)}
    done = subprocess.run([sys.executable, "-c", RUN, str(root / "workspace")], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    suite, second_passed = json.loads(done.stdout.strip().splitlines()[-1])
    assert second_passed == 1, "a second run in the same process works too"
    return {test["name"]: test for test in suite["tests"]}


def test_every_fault_becomes_one_result(results):
    assert len(results) == 10
    assert results["test_passes"]["outcome"] == "passed"


def test_syntax_error_names_file_and_line(results):
    test = results["test_syntax_error"]
    assert test["outcome"] == "failed"
    assert "syntax error" in test["message"]
    assert "my_llm/broken_syntax.py:1" in test["location"]


def test_import_error_points_into_the_learner_module(results):
    test = results["test_missing_import"]
    assert "nowhere" in test["message"]
    assert test["location"].startswith("my_llm/missing_import.py:1")


def test_endless_loop_is_cut_off_by_the_timeout(results):
    test = results["test_endless_loop"]
    assert test["outcome"] == "timeout", (test["message"], test["details"][-600:])
    assert "2" in test["message"]
    assert test["location"].startswith("my_llm/looping.py:")


def test_sys_exit_and_recursion_are_reported_not_fatal(results):
    assert "sys.exit(3)" in results["test_sys_exit"]["message"]
    assert results["test_sys_exit"]["location"].startswith("my_llm/exits.py:4")
    assert "RecursionError" in results["test_recursion"]["message"]
    assert results["test_recursion"]["location"].startswith("my_llm/recursive.py:2")


def test_comparison_messages_say_what_differs(results):
    assert "expected [2, 3], got [3, 2]" in results["test_wrong_shape"]["message"]
    values = results["test_wrong_values"]["message"]
    assert "1/6 elements" in values and "index [1, 2]" in values and "0.5" in values
    assert "element 2 differs: expected 3, got 9" in results["test_sequence_difference"]["message"]


def test_stub_is_named(results):
    test = results["test_stub"]
    assert test["stub"] == "todo"
    assert "todo is still a stub" in test["message"]
