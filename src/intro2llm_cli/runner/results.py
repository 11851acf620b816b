"""The result model of a lesson run: what the views render and progress records."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, Field


class Outcome(str, Enum):
    passed = "passed"
    failed = "failed"
    error = "error"  # failed outside the test body (fixture, import of the test file)
    timeout = "timeout"
    skipped = "skipped"


class TestResult(BaseModel):
    __test__ = False  # not a pytest test class

    test_id: str = Field(description="pytest node id relative to the lesson folder")
    name: str = Field(description="test function name, with parameters")
    tier: str
    outcome: Outcome
    seconds: float = 0.0
    symbol: str | None = Field(default=None, description="target symbol the test is about")
    message: str = Field(default="", description="short explanation for the learner")
    location: str | None = Field(default=None, description="file:line in the learner's code")
    stub: str | None = Field(default=None, description="the stub that was hit, if any")
    details: str = Field(default="", description="full pytest report, shown with -v")

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.passed, Outcome.skipped)


class SuiteResult(BaseModel):
    lesson: str
    tiers: list[str]
    target: str
    tests: list[TestResult] = Field(default_factory=list)
    collection_errors: list[str] = Field(default_factory=list)
    seconds: float = 0.0

    def for_tier(self, tier: str) -> list[TestResult]:
        return [test for test in self.tests if test.tier == tier]

    @property
    def passed(self) -> int:
        return sum(test.outcome is Outcome.passed for test in self.tests)

    @property
    def failed(self) -> int:
        return sum(not test.ok for test in self.tests) + len(self.collection_errors)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.passed > 0

    @property
    def all_failed(self) -> bool:
        """Every test failed (what fresh stubs must achieve)."""
        return bool(self.tests) and all(not test.ok for test in self.tests)

    def first_failure(self) -> TestResult | None:
        return next((test for test in self.tests if not test.ok), None)
