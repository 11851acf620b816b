"""first_divergence names the first submodule whose output differs."""

from __future__ import annotations

import copy

import torch
from torch import nn

from intro2llm_cli.divergence import first_divergence


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(8)
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        return x + self.proj(self.norm(x))


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, 8)
        self.layers = nn.ModuleList([Block() for _ in range(3)])
        self.head = nn.Linear(8, 11)

    def forward(self, input_ids):
        h = self.embed(input_ids)
        for layer in self.layers:
            h = layer(h)
        return self.head(h)


def models():
    torch.manual_seed(0)
    reference = Tiny()
    return copy.deepcopy(reference), reference


INPUTS = {"input_ids": torch.tensor([[1, 2, 3, 4]])}


def test_identical_models_have_no_divergence():
    learner, reference = models()
    assert first_divergence(learner, reference, INPUTS) is None


def test_the_first_wrong_module_is_named_not_its_parents_or_successors():
    learner, reference = models()
    with torch.no_grad():
        learner.layers[1].proj.weight[2, 3] += 0.5
    found = first_divergence(learner, reference, INPUTS)
    assert found is not None and found.module == "layers.1.proj"
    assert found.index[-1] == 2  # output feature 2 is the one that moved
    assert "layers.1.proj" in found.describe()


def test_a_wrong_forward_with_right_weights_is_found_too():
    learner, reference = models()
    learner.layers[0].norm.forward = lambda x: x  # forgot to normalise
    found = first_divergence(learner, reference, INPUTS)
    assert found is not None and found.module == "layers.0.norm"


def test_assert_close_appends_the_hint_in_the_learners_language(monkeypatch):
    import pytest

    from intro2llm_cli.testkit import assert_close

    monkeypatch.setenv("LLM_COURSE_LANG", "en")
    with pytest.raises(AssertionError) as info:
        assert_close(torch.zeros(2), torch.ones(2), "out", hint=("缩放错了？", "wrong scale?"))
    assert str(info.value).splitlines()[-1] == "wrong scale?"
    assert "worst at index [0]" in str(info.value)
    assert_close(torch.ones(2), torch.ones(2), "out", hint=("x", "y"))  # passing: no hint, no error
