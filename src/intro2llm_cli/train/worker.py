"""Entry point of one torchrun process: ``python -m intro2llm_cli.train.worker <run>/run_spec.json``."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from ..errors import CourseError
    from ..views import terminal
    from .pipeline import RunSpec, run

    spec = RunSpec.load(argv[0])
    try:
        run(spec)
    except CourseError as error:
        terminal.error(error.render(spec.lang))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
