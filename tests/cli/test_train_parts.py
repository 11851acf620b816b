"""The pieces of ``llm-course train`` that need no training: settings, code composition, plots."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from intro2llm_cli.catalog import Catalog
from intro2llm_cli.errors import CourseError
from intro2llm_cli.paths import reference_dir
from intro2llm_cli.progress import LessonState, Progress
from intro2llm_cli.stubgen import is_stub, stub_source
from intro2llm_cli.train import config as run_config
from intro2llm_cli.train.code import compose_package, plan_code, tree_hash
from intro2llm_cli.train.plot import text_plot, write_loss_png


def test_settings_layer_preset_then_file_then_command_line():
    config = run_config.resolve("pretrain", "smoke", {"seq_len": 48, "batch_size": 4}, {"batch_size": 2})
    assert (config.seq_len, config.batch_size, config.max_steps) == (48, 2, 12)
    assert run_config.resolve("pretrain", "default").max_steps == 400
    short = run_config.resolve("pretrain", "default", overrides={"max_steps": 5})
    assert short.warmup_steps == 5, "a preset warmup longer than the run is shortened to fit"


@pytest.mark.parametrize("values, field", [({"batch_size": 0}, "batch_size"), ({"seq_len": 10_000}, "seq_len"),
                                           ({"precision": "fp8"}, "precision"), ({"colour": 1}, "colour"),
                                           ({"warmup_steps": 50, "max_steps": 10}, "warmup_steps")])
def test_a_bad_setting_names_its_field(values, field):
    with pytest.raises(CourseError) as error:
        run_config.resolve("pretrain", "smoke", values)
    assert f"`{field}`" in error.value.render("en")


def test_run_toml_round_trips(tmp_path):
    config = run_config.resolve("sft", "smoke", overrides={"learning_rate": 5e-4})
    file = tmp_path / "run.toml"
    file.write_text(run_config.to_toml({**config.model_dump(), "run": {"code_hash": "x"}}), encoding="utf-8")
    again = run_config.resolve("sft", "smoke", run_config.read_config_file(file))
    assert again == config


def progress_with(catalog: Catalog, completed: list[int]) -> Progress:
    progress = Progress.new(catalog, "full", "en", "workspace")
    for lesson in catalog.lessons:
        if lesson.number in completed:
            progress.lesson(lesson.id).state = LessonState.completed
    return progress


def test_plan_refuses_missing_lessons_or_fills_them():
    catalog = Catalog.load()
    with pytest.raises(CourseError) as error:
        plan_code(catalog, progress_with(catalog, [1, 2]), "pretrain", fill=False, reference_only=False)
    assert "lesson03" in error.value.render("en") and "lesson01" not in error.value.render("en")
    plan = plan_code(catalog, progress_with(catalog, [1, 2]), "pretrain", fill=True, reference_only=False)
    sources = {use.lesson.number: use.source for use in plan.uses}
    assert sources[1] == "yours" and sources[3] == "filled"
    assert "lesson03" in plan.filled and "lesson01" not in plan.filled


def test_composition_keeps_learner_code_and_splices_reference_symbols(tmp_path):
    catalog = Catalog.load()
    lesson02 = catalog.resolve("lesson02")
    workspace = tmp_path / "my_llm"
    norm = lesson02.targets[0]
    (workspace / Path(norm.file).parent).mkdir(parents=True)
    reference_norm = (reference_dir() / norm.file).read_text(encoding="utf-8")
    (workspace / norm.file).write_text(stub_source(reference_norm, norm.symbols, "lesson02"), encoding="utf-8")
    learner_config = (reference_dir() / "model/config.py").read_text(encoding="utf-8") + "\nLEARNER_MARK = 1\n"
    (workspace / "model").mkdir(exist_ok=True)
    (workspace / "model/config.py").write_text(learner_config, encoding="utf-8")

    plan = plan_code(catalog, progress_with(catalog, [1]), "pretrain", fill=True, reference_only=False)
    root = compose_package(plan, workspace, tmp_path / "run" / "code")
    composed = (root / norm.file).read_text(encoding="utf-8")
    assert not any(is_stub(composed, symbol) for symbol in norm.symbols), "a filled lesson's stubs are replaced"
    assert "LEARNER_MARK = 1" in (root / "model/config.py").read_text(encoding="utf-8"), "completed lesson: learner's file"
    first = tree_hash(root)
    assert len(first) == 40 and tree_hash(root) == first
    (root / "model/config.py").write_text(learner_config + "# edited\n", encoding="utf-8")
    assert tree_hash(root) != first


def test_plots_draw_the_logged_losses(tmp_path):
    history = [{"step": s, "loss": 5.0 - 0.1 * s, "lr": 1e-3, "tokens_per_s": 1.0} for s in range(1, 21)]
    history.append({"step": 20, "eval_loss": 3.5})
    rows = text_plot(history, width=40, height=8)
    assert rows[0].startswith("  4.900") and rows[7].startswith("  3.000") and "o" in "".join(rows)
    png = write_loss_png(history, tmp_path / "curve.png", width=200, height=100).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (200, 100)
    idat = png.index(b"IDAT")
    length = struct.unpack(">I", png[idat - 4: idat])[0]
    raw = zlib.decompress(png[idat + 4: idat + 4 + length])
    assert len(raw) == height * (1 + 3 * width)
    assert raw.count(bytes((31, 119, 180))) > 50, "the blue training curve is drawn"
    assert write_loss_png([], tmp_path / "none.png") is None


@pytest.mark.parametrize("setting, words", [({"device": "tpu"}, "`device`"), ({"precision": "fp16", "device": "cpu"}, "`precision`"),
                                            ({"device": "cuda:7"}, "CUDA")])
def test_devices_and_precisions_the_machine_lacks_are_one_line(setting, words):
    import torch

    from intro2llm_cli.train.session import check_device

    if "cuda" in setting.get("device", "") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has that GPU")
    with pytest.raises(CourseError) as error:
        check_device(run_config.resolve("pretrain", "smoke", setting))
    assert words in error.value.render("en")


def test_the_tokenizer_cache_key_follows_the_tokenizer_code_and_the_data(tmp_path):
    import shutil

    from intro2llm_cli.train.tokenizer_cache import TOKENIZER_FILES, cache_key, training_sample

    root = tmp_path / "my_llm"
    for rel in TOKENIZER_FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(reference_dir() / rel, root / rel)
    texts = ["hello world", "你好，世界", "more text here"]
    sample = training_sample(texts, num_bytes=12)
    assert sample == texts[:2], "documents are taken until the byte budget is reached"
    key = cache_key(root, sample, 300, ["<pad>"])
    assert cache_key(root, sample, 300, ["<pad>"]) == key
    assert cache_key(root, sample, 301, ["<pad>"]) != key
    assert cache_key(root, texts, 300, ["<pad>"]) != key
    (root / "tokenizer/bpe_tokenizer.py").write_text("# edited\n", encoding="utf-8")
    assert cache_key(root, sample, 300, ["<pad>"]) != key, "editing the tokenizer retrains it"


def test_ctrl_c_stops_only_at_the_first_micro_batch_of_a_step():
    from intro2llm_cli.train.pipeline import InterruptGuard, StopRequested

    class Loop:
        def __init__(self):
            self.served = 0

        def next_batch(self):
            self.served += 1
            return self.served

    loop = Loop()
    with InterruptGuard(loop, grad_accum=3) as guard:
        for _ in range(4):  # one whole step and the first micro-batch of the next
            loop.next_batch()
        guard.requested = True  # Ctrl-C in the middle of step 2
        loop.next_batch()
        loop.next_batch()  # step 2 finishes: its gradients are complete
        with pytest.raises(StopRequested):
            loop.next_batch()  # the first micro-batch of step 3 is never drawn
    assert loop.served == 6
    assert "next_batch" not in vars(loop), "the wrapper is removed afterwards"
