"""The README's two Quickstart commands are the ones that really run."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def bash_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, re.S)]


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    test_commands = [block for block in bash_blocks(readme) if block.endswith("python -m pytest")]
    assert test_commands, "README must show the command that sets up and runs the tests"
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    for command in test_commands:
        assert command in ci


def test_the_setup_command_starts_the_course():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = [block for block in bash_blocks(readme) if "llm-course init" in block and "start lesson01" in block]
    assert start and all("pip install torch==2.13.0" in block for block in start)
