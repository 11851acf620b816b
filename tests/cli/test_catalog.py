"""The lesson catalogue: ids as people type them, graph, paths, broken data."""

from __future__ import annotations

from pathlib import Path

import pytest

from intro2llm_cli.catalog import Catalog
from intro2llm_cli.errors import CourseError


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.mark.parametrize("text", ["lesson03", "03", "3", "lesson03_attention", "L3", " Lesson03 "])
def test_lesson_ids_are_accepted_in_every_common_form(catalog, text):
    assert catalog.resolve(text).id == "lesson03_attention"


def test_unknown_lesson_suggests_the_nearest(catalog):
    with pytest.raises(CourseError) as info:
        catalog.resolve("lesosn03")
    assert info.value.key == "lesson.unknown"
    assert info.value.params["suggestion"] in ("lesson03", "lesson03_attention")
    with pytest.raises(CourseError):
        catalog.resolve("lesson99")


def test_twelve_lessons_in_six_stages_with_the_documented_graph(catalog):
    assert [lesson.number for lesson in catalog.lessons] == list(range(1, 13))
    assert {lesson.stage for lesson in catalog.lessons} == set(range(1, 7))
    deps = {lesson.number: sorted(catalog.get(d).number for d in lesson.depends_on) for lesson in catalog.lessons}
    assert deps == {1: [], 2: [1], 3: [2], 4: [3], 5: [4], 6: [5], 7: [6], 8: [7], 9: [8],
                    10: [7, 9], 11: [5], 12: [11]}


def test_paths_come_from_data_and_provide_missing_prerequisites(catalog):
    assert [x.number for x in catalog.path_lessons("mvp")] == [1, 2, 3, 4, 5, 7, 10]
    assert [x.number for x in catalog.provided_for("full")] == []
    assert [x.number for x in catalog.provided_for("mvp")] == [6, 8, 9]
    assert [x.number for x in catalog.provided_for("research")] == [1, 2, 3, 4, 5, 6, 7]
    with pytest.raises(CourseError, match="path"):
        catalog.path_lessons("speedrun")


def test_lesson01_is_ready_with_targets_and_hints(catalog):
    lesson = catalog.resolve("1")
    assert lesson.ready
    assert "BPETokenizer.train" in lesson.symbols
    assert lesson.hints, "lesson 01 ships graded hints"


def _break(lessons: Path, old: str, new: str) -> Path:
    file = lessons / "lesson02_norm_embedding" / "lesson.toml"
    file.write_text(file.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")
    return file


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("stage = 1", 'stage = "one"', "stage"),
        ('status = "ready"', 'status = "someday"', "status"),
        ('depends_on = ["lesson01_config_tokenizer"]', 'depends_on = ["lesson00_nothing"]', "depends_on"),
        ('id = "lesson02_norm_embedding"', 'id = "lesson02_norms"', "id"),
        ("number = 2", "number = 1", "number"),
        ("schema_version = 1", "schema_version = 1\nsurprise = true", "surprise"),
    ],
)
def test_a_broken_lesson_toml_is_reported_with_file_and_field(lessons_copy, old, new, field):
    broken = _break(lessons_copy, old, new)
    with pytest.raises(CourseError) as info:
        Catalog.load()
    message = info.value.render("en")
    assert field in message
    assert "lesson02" in message
    assert "\n" not in message
    del broken


def test_invalid_toml_syntax_names_the_file(lessons_copy):
    _break(lessons_copy, "number = 2", "number = = 2")
    with pytest.raises(CourseError) as info:
        Catalog.load()
    assert info.value.key == "catalog.bad_toml"
    assert "lesson02_norm_embedding" in info.value.render("en")
