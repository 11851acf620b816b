import pytest

from intro2llm_cli.testkit import assert_equal, learner


@pytest.mark.symbol("ModelConfig.head_dim")
def test_head_dim():
    cfg = learner("model.config").ModelConfig(hidden_size=64, num_attention_heads=4, intermediate_size=100, num_hidden_layers=1)
    assert_equal(cfg.head_dim, 16, "head_dim")


@pytest.mark.symbol("ModelConfig.to_dict")
def test_to_dict():
    cfg = learner("model.config").ModelConfig()
    assert_equal(cfg.to_dict()["hidden_size"], 4096, "to_dict")
