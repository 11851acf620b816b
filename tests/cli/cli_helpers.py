"""Run the real ``llm-course`` command in a subprocess, the way a learner does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def llm_course(home: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_COURSE_")}
    env["COLUMNS"] = "200"  # keep rich from wrapping the lines tests look for
    return subprocess.run(
        [sys.executable, "-m", "intro2llm_cli.main", *args], cwd=home, env=env,
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )
