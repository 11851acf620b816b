"""Pytest hooks and fixtures shared by every lesson suite.

``lessons/conftest.py`` imports this module, so the same machinery works under
``llm-course check`` and under plain ``pytest``: before each test, ``my_llm``
is pointed at the target named by ``LLM_COURSE_TARGET`` for the lesson the test
file belongs to.
"""

from __future__ import annotations

import pytest

from . import targets


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "symbol(name): the target symbol a lesson test is about")


@pytest.fixture(autouse=True)
def _my_llm_target(request: pytest.FixtureRequest) -> None:
    lesson_id = request.path.parent.parent.name
    try:
        targets.activate_from_environment(lesson_id)
    except (RuntimeError, ValueError) as exc:
        pytest.fail(str(exc), pytrace=False)
