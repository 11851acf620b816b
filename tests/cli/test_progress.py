"""The progress file: created, unlocked, written atomically, never replaced when damaged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intro2llm_cli.catalog import Catalog
from intro2llm_cli.errors import CourseError
from intro2llm_cli.progress import LessonState, Progress, ProgressStore, json_schema

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def new_store(tmp_path: Path, catalog: Catalog, path: str = "full") -> ProgressStore:
    store = ProgressStore(tmp_path)
    store.create(Progress.new(catalog, path, "zh", "workspace"))
    return store


def test_new_progress_unlocks_only_lessons_without_missing_prerequisites(tmp_path, catalog):
    progress = new_store(tmp_path, catalog).load()
    assert progress.state("lesson01_config_tokenizer") is LessonState.available
    assert progress.state("lesson02_norm_embedding") is LessonState.locked


def test_research_path_marks_prerequisites_provided_and_unlocks_lesson08(tmp_path, catalog):
    progress = new_store(tmp_path, catalog, "research").load()
    assert progress.state("lesson07_loss_optimizer") is LessonState.provided
    assert progress.state("lesson08_dpo") is LessonState.available
    assert progress.state("lesson11_lora_flash") is LessonState.available
    # 09 waits for 08 once 08 is published; an unpublished (planned) lesson blocks no one.
    lesson08_ready = catalog.get("lesson08_dpo").ready
    assert progress.state("lesson09_grpo_ppo") is (LessonState.locked if lesson08_ready else LessonState.available)


def test_an_unpublished_prerequisite_counts_once_its_own_prerequisites_do(tmp_path, catalog):
    planned = [lesson for lesson in catalog.lessons if not lesson.ready]
    if not planned:
        pytest.skip("every lesson is published")
    store = new_store(tmp_path, catalog)
    with store.edit() as progress:
        first = planned[0]
        assert progress.satisfied(first.id, catalog) is all(progress.satisfied(d, catalog) for d in first.depends_on)
        for dep in first.depends_on:
            progress.lesson(dep).state = LessonState.completed
        assert progress.satisfied(first.id, catalog)
        assert first.id not in progress.missing_prerequisites(
            next(lesson.id for lesson in catalog.lessons if first.id in lesson.depends_on), catalog)


def test_completing_a_lesson_unlocks_its_dependents_and_never_relocks(tmp_path, catalog):
    store = new_store(tmp_path, catalog)
    with store.edit() as progress:
        progress.lesson("lesson01_config_tokenizer").state = LessonState.completed
        assert progress.refresh_unlocks(catalog) == ["lesson02_norm_embedding"]
    with store.edit() as progress:
        progress.lesson("lesson01_config_tokenizer").state = LessonState.in_progress
        assert progress.refresh_unlocks(catalog) == []
    assert store.load().state("lesson02_norm_embedding") is LessonState.available


def test_round_trip_keeps_every_field(tmp_path, catalog):
    store = new_store(tmp_path, catalog)
    with store.edit() as progress:
        entry = progress.lesson("lesson01_config_tokenizer")
        entry.hints_used.append("BPETokenizer.train#1")
        entry.attempts = 3
    again = store.load()
    assert again.lessons["lesson01_config_tokenizer"].hints_used == ["BPETokenizer.train#1"]
    assert again.lessons["lesson01_config_tokenizer"].attempts == 3
    assert again == store.load()


def test_an_error_inside_edit_writes_nothing(tmp_path, catalog):
    store = new_store(tmp_path, catalog)
    before = store.file.read_bytes()
    with pytest.raises(RuntimeError):
        with store.edit() as progress:
            progress.lesson("lesson01_config_tokenizer").attempts = 99
            raise RuntimeError("interrupted")
    assert store.file.read_bytes() == before
    assert not list(store.file.parent.glob(".progress-*.tmp"))


@pytest.mark.parametrize(
    ("damage", "key"),
    [
        (lambda text: text[: len(text) // 2] + "\n[[[", "progress.damaged"),
        (lambda text: text.replace('state = "available"', 'state = "finished"', 1), "progress.damaged"),
        (lambda text: text.replace("schema_version = 1", "schema_version = 7"), "progress.version"),
        (lambda text: text.replace('path = "full"', 'path = "full"\nfavourite = "x"'), "progress.damaged"),
        (lambda text: "\udcff", "progress.damaged"),
    ],
)
def test_a_damaged_file_is_reported_in_one_line_and_left_untouched(tmp_path, catalog, damage, key):
    store = new_store(tmp_path, catalog)
    text = store.file.read_text(encoding="utf-8")
    broken = damage(text).encode("utf-8", "surrogateescape")
    store.file.write_bytes(broken)
    for action in (store.load, lambda: store.edit().__enter__()):
        with pytest.raises(CourseError) as info:
            action()
        assert info.value.key == key
        assert "\n" not in info.value.render("en")
        assert store.file.read_bytes() == broken


def test_creating_twice_refuses_and_keeps_the_first(tmp_path, catalog):
    store = new_store(tmp_path, catalog)
    before = store.file.read_bytes()
    with pytest.raises(CourseError, match="already set up"):
        store.create(Progress.new(catalog, "mvp", "en", "elsewhere"))
    assert store.file.read_bytes() == before


def test_the_published_json_schema_matches_the_model():
    published = json.loads((REPO / "progress" / "progress.schema.json").read_text(encoding="utf-8"))
    assert published == json_schema(), "regenerate with: python -m intro2llm_cli.progress > progress/progress.schema.json"


def test_mvp_path_opens_lesson07_only_after_lesson05_through_the_provided_lesson06(tmp_path, catalog):
    store = new_store(tmp_path, catalog, "mvp")
    progress = store.load()
    assert progress.state("lesson06_datasets") is LessonState.provided
    assert progress.state("lesson07_loss_optimizer") is LessonState.locked
    assert progress.missing_prerequisites("lesson07_loss_optimizer", catalog) == ["lesson05_causal_lm"]
    with store.edit() as progress:
        for lesson in ("lesson01_config_tokenizer", "lesson02_norm_embedding", "lesson03_attention",
                       "lesson04_ffn_transformer", "lesson05_causal_lm"):
            progress.lesson(lesson).state = LessonState.completed
        unlocked = progress.refresh_unlocks(catalog)
    assert "lesson07_loss_optimizer" in unlocked
