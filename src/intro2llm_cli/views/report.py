"""Rendering of the course's result objects (check results, status, hints, writes)."""

from __future__ import annotations

from ..messages import t
from . import terminal

MARKS = {"passed": "[green]✓[/]", "failed": "[red]✗[/]", "error": "[red]E[/]",
         "timeout": "[red]⏱[/]", "skipped": "[dim]-[/]"}


def write_report(report, lang: str) -> None:
    for path in report.written:
        terminal.info(t("write.written", lang, path=path))
    for path in report.provided:
        terminal.info(t("write.provided", lang, path=path))
    for path in report.kept:
        terminal.warning(t("write.kept", lang, path=path))
    if report.backup:
        terminal.info(t("write.backup", lang, path=report.backup))


MAX_FAILURES_SHOWN = 8


def suite_result(suite, lang: str, verbose: bool) -> None:
    """One tier: stubs grouped by symbol, then the first failures in detail
    (every test with -v), then the raw reports with -v."""
    tier = suite.tiers[0] if len(suite.tiers) == 1 else "+".join(suite.tiers)
    title = t("check.tier_title", lang, tier=t("tier." + tier, lang) if len(suite.tiers) == 1 else tier,
              passed=suite.passed, total=len(suite.tests), seconds=f"{suite.seconds:.2f}")
    lines = []
    stubs: dict[str, int] = {}
    for test in suite.tests:
        if test.stub:
            stubs[test.stub] = stubs.get(test.stub, 0) + 1
    for symbol, count in stubs.items():
        lines.append((MARKS["failed"], t("check.stub_group", lang, symbol=symbol, count=count), []))
    failures = [test for test in suite.tests if not test.ok and not test.stub]
    shown = failures if verbose else failures[:MAX_FAILURES_SHOWN]
    for test in suite.tests if verbose else shown:
        details = []
        if not test.ok:
            details = test.message.splitlines()
            if test.location:
                details.append(t("check.location", lang, location=test.location))
        lines.append((MARKS[test.outcome.value], test.name, details))
    if len(failures) > len(shown):
        lines.append(("…", t("check.more_failures", lang, count=len(failures) - len(shown)), []))
    for error in suite.collection_errors:
        lines.append((MARKS["error"], t("check.collection_error", lang), error.splitlines()[-3:]))
    verbose_details = [test.details for test in suite.tests if verbose and test.details]
    terminal.suite(title, lines, verbose_details)


def check_result(result, lang: str, verbose: bool) -> None:
    for suite in result.suites:
        suite_result(suite, lang, verbose)
    lesson = result.lesson.short_id
    if result.ok and result.state.value == "completed" and len(result.suites) == 2:
        terminal.success(t("check.completed", lang, lesson=lesson))
    elif result.ok and result.suites and result.suites[-1].tiers == ["basic"]:
        terminal.success(t("check.basic_passed", lang, lesson=lesson))
    elif not result.ok:
        terminal.info(t("check.try_hint", lang))
    for unlocked in result.unlocked:
        terminal.success(t("check.unlocked", lang, lesson=unlocked.short_id, title=unlocked.title(lang)))
    if result.ok and result.next_lesson is not None and result.state.value == "completed":
        terminal.info(t("next.start", lang, lesson=result.next_lesson.short_id))


def hint_result(result, lang: str) -> None:
    if result.hint is None:
        terminal.info(t("hint.none_left", lang, lesson=result.lesson.short_id))
        return
    title = t("hint.title", lang, symbol=result.hint.symbol, level=result.hint.level,
              seen=result.seen, total=result.total)
    terminal.panel(result.hint.zh if lang == "zh" else result.hint.en, title)


def status_table(progress, rows, lang: str, title_key: str) -> None:
    headers = [t("col.lesson", lang), t("col.title", lang), t("col.state", lang),
               t("col.basic", lang), t("col.advanced", lang), t("col.hints", lang)]
    table_rows = []
    for row in rows:
        planned = "" if row.lesson.ready else f" [dim]({t('lesson.planned_tag', lang)})[/]"
        table_rows.append([
            row.lesson.short_id,
            row.lesson.title(lang) + planned,
            terminal.state_label(row.state.value if row.state else None, lang),
            terminal.tier_cell(row.basic, lang),
            terminal.tier_cell(row.advanced, lang),
            str(row.hints_used) if row.hints_used else "",
        ])
    terminal.lesson_table(t(title_key, lang, path=progress.path), table_rows, headers)


def _sample_lines(data, index: int) -> list[str]:
    record = data.records[index]
    if data.kind == "pretrain":
        text = record if len(record) <= 400 else record[:400] + "…"
        return [text]
    return [f"{key}: {value}" for key, value in record.items()]


def data_report(result, lang: str, show: int) -> None:
    headers = [t("col.data_set", lang), t("col.records", lang), t("col.size", lang), t("col.seconds", lang)]
    rows = [[f"{data.kind}/{data.split}", str(len(data.records)), f"{data.size_bytes / 1e6:.2f} MB",
             f"{data.seconds:.2f}"] for data in result.sets]
    terminal.lesson_table(t("data.title", lang), rows, headers)
    for data in result.sets:
        for index in range(min(show, len(data.records))):
            terminal.plain(f"--- {data.kind}/{data.split} #{index}")
            for line in _sample_lines(data, index):
                terminal.plain(line)
    for path in result.written:
        terminal.info(t("write.written", lang, path=str(path)))
