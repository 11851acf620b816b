"""Run a lesson's test suites in-process and return a result model."""

from .results import Outcome, SuiteResult, TestResult
from .run import run_suite

__all__ = ["Outcome", "SuiteResult", "TestResult", "run_suite"]
