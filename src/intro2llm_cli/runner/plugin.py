"""The pytest plugin that turns reports into ``TestResult`` objects."""

from __future__ import annotations

from pathlib import Path

import pytest

from .diagnose import Diagnosis, diagnose
from .results import Outcome, TestResult

_PHASES = ("setup", "call", "teardown")


class ResultCollector:
    """Passed to ``pytest.main(plugins=[...])``; collects one result per test."""

    def __init__(self, lesson_folder: Path, target_root: Path | None, lang: str) -> None:
        self.lesson_folder = lesson_folder
        self.target_root = target_root
        self.lang = lang
        self.results: dict[str, TestResult] = {}
        self.collection_errors: list[str] = []
        self._diagnoses: dict[tuple[str, str], Diagnosis] = {}
        self._symbols: dict[str, str | None] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        marker = item.get_closest_marker("symbol")
        self._symbols[item.nodeid] = marker.args[0] if marker and marker.args else None
        if call.excinfo is not None and report.failed:
            self._diagnoses[(item.nodeid, call.when)] = diagnose(
                call.excinfo.value, call.excinfo.tb, self.target_root, self.lang, self.lesson_folder
            )
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        result = self.results.get(report.nodeid)
        if result is None:
            path = report.nodeid.split("::")[0]
            tier = Path(path).stem.removesuffix("_test")
            result = TestResult(
                test_id=report.nodeid, name=report.nodeid.split("::")[-1], tier=tier,
                outcome=Outcome.passed, symbol=self._symbols.get(report.nodeid),
            )
            self.results[report.nodeid] = result
        result.seconds += report.duration
        if result.outcome is not Outcome.passed:
            return  # keep the first problem
        if report.skipped:
            result.outcome = Outcome.skipped
            result.message = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
        elif report.failed:
            diagnosis = self._diagnoses.get((report.nodeid, report.when))
            if diagnosis and diagnosis.timeout:
                result.outcome = Outcome.timeout
            else:
                result.outcome = Outcome.failed if report.when == "call" else Outcome.error
            result.message = diagnosis.message if diagnosis else report.longreprtext.strip().splitlines()[-1]
            result.location = diagnosis.location if diagnosis else None
            result.stub = diagnosis.stub if diagnosis else None
            result.details = diagnosis.details if diagnosis else report.longreprtext

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors.append(report.longreprtext.strip())
