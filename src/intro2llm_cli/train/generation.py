"""``llm-course generate``: continue a prompt with a saved model and the lesson-05 sampling strategies.

The model is loaded with the code that trained it when it comes from a run folder
(``<run>/code/my_llm``), and with the reference library otherwise (any Hugging Face
Llama folder with a ``tokenizer.json`` of ours).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import CourseError
from .pipeline import check_model_dir

STAGE_FILE = "llm_course.json"


@dataclass
class GenerateRequest:
    model_path: str
    prompt: str
    max_new_tokens: int = 64
    do_sample: bool = True
    temperature: float = 0.8
    top_k: int | None = 50
    top_p: float | None = 0.95
    repetition_penalty: float = 1.1
    seed: int = 0
    chat: bool | None = None  # None: the chat template for sft / dpo models


def _code_root(model_path: Path) -> Path | None:
    code = model_path.resolve().parent / "code" / "my_llm"
    return code if (code / "__init__.py").is_file() else None


def model_stage(model_path: Path) -> str | None:
    """The stage that produced the model ("pretrain", "sft", ...), from the run folder's run.toml."""
    run_file = model_path.resolve().parent / "run.toml"
    if run_file.is_file():
        from .config import read_config_file

        return read_config_file(run_file).get("stage")
    meta = model_path / STAGE_FILE
    return json.loads(meta.read_text(encoding="utf-8")).get("stage") if meta.is_file() else None


def generate(request: GenerateRequest) -> tuple[str, str]:
    """(the text fed to the model, the continuation)."""
    import torch

    from .. import targets

    path = Path(request.model_path).expanduser()
    check_model_dir(path)
    root = _code_root(path)
    if root is not None:
        targets.activate_root(root, key=f"generate:{root}")
        from my_llm.data.sft_dataset import format_prompt  # type: ignore[import-not-found]
        from my_llm.interop.hf import load_hf  # type: ignore[import-not-found]
        from my_llm.tokenizer import BaseTokenizer  # type: ignore[import-not-found]
    else:
        from intro2llm.data.sft_dataset import format_prompt
        from intro2llm.interop.hf import load_hf
        from intro2llm.tokenizer import BaseTokenizer

    tokenizer = BaseTokenizer.load(path)
    model = load_hf(path)
    if model.config.vocab_size != tokenizer.vocab_size:
        raise CourseError("train.vocab_mismatch", path=path, model=model.config.vocab_size,
                          tokenizer=tokenizer.vocab_size)
    chat = request.chat if request.chat is not None else model_stage(path) in ("sft", "dpo")
    text = format_prompt({"instruction": request.prompt, "input": ""}) if chat else request.prompt
    ids = tokenizer.encode(text)
    if not ids:
        raise CourseError("generate.empty_prompt")
    generator = torch.Generator().manual_seed(request.seed)
    out = model.generate(
        torch.tensor([ids]), max_new_tokens=request.max_new_tokens, do_sample=request.do_sample,
        temperature=request.temperature, top_k=request.top_k, top_p=request.top_p,
        repetition_penalty=request.repetition_penalty, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, generator=generator,
    )
    new = out[0, len(ids):].tolist()
    if tokenizer.eos_token_id in new:
        new = new[: new.index(tokenizer.eos_token_id)]
    return text, tokenizer.decode(new, skip_special_tokens=True)
