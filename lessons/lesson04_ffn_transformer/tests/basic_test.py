"""Lesson 04, basic tier: the contract of every target on small, hand-checkable cases.

Every expected value below is worked out by hand in the test's docstring (or follows
from a stated property); none is copied from running the reference.

Notation, as in the lesson's modules: ``b`` batch, ``s`` new tokens, ``t`` cached + new
tokens, ``d`` hidden_size, ``I`` intermediate_size, ``h`` query heads, ``g`` key/value
heads, ``hd`` head_dim. The block tests use ``d = 32``, ``h = 4``, ``g = 2``, ``hd = 8``,
``I = 48`` (``_config``).

The tiny feed-forward case used throughout (the README's worked example): ``d = 2``,
``I = 3``, one token ``x = [1, -2]``; ``gate_proj`` rows ``[1, 0], [0, 1], [1, 1]``,
``up_proj`` rows ``[2, 1], [1, 0], [0, -1]``, ``down_proj = [[1, 1, 1], [1, -1, 0]]``.
So ``gate_proj(x) = [1, -2, -1]`` and ``up_proj(x) = [0, 1, 2]``. A second token
``[2, 1]`` (``gate = [2, 1, 3]``, ``up = [5, 2, -1]``) makes sure no feature is zero
on both branches. Activations, written out with ``math`` in ``_silu`` / ``_gelu`` /
``_gelu_tanh``:

- ``silu(z) = z · sigmoid(z)``: ``silu(1) = 0.7311``, ``silu(-2) = -0.2384``, ``silu(-1) = -0.2689``;
- exact GELU ``z · Φ(z) = z · (1 + erf(z / sqrt 2)) / 2``: ``gelu(-1) = -0.15866``;
- tanh GELU ``z/2 · (1 + tanh(sqrt(2/π) · (z + 0.044715 z³)))``: ``gelu_tanh(-1) = -0.15881``.
  The two GELUs differ by ~1e-4 here, far above the 1e-6 tolerance of these tests.

The learner's code is imported inside each test (``learner(...)``), so a module that
fails to import is one failing test, not a broken suite.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from intro2llm_cli.testkit import assert_close, assert_equal, expect_error, learner, say

FFN_TYPES = ["swiglu", "geglu", "gelu"]
NORM_TYPES = ["rmsnorm", "layernorm"]
FFN_CLASS = {"swiglu": "SwiGLU", "geglu": "GeGLU", "gelu": "FeedForward"}
NORM_CLASS = {"rmsnorm": "RMSNorm", "layernorm": "LayerNorm"}
COMBOS = [(n, f) for n in NORM_TYPES for f in FFN_TYPES]
COMBO_IDS = [f"{n}-{f}" for n, f in COMBOS]

X_TOKENS = [[1.0, -2.0], [2.0, 1.0]]
GATE_W = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
UP_W = [[2.0, 1.0], [1.0, 0.0], [0.0, -1.0]]
DOWN_W = [[1.0, 1.0, 1.0], [1.0, -1.0, 0.0]]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _ffn():
    return learner("model.feedforward")


def _block_module():
    return learner("model.transformer_block")


def _config(**overrides):
    """The learner's ModelConfig: d = 32, h = 4 heads of hd = 8, g = 2, I = 48."""
    params = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return learner("model.config").ModelConfig(**{**params, **overrides})


def _close(actual, expected, what, hint="", **tolerance):
    assert_close(actual, expected, what, hint=hint, **tolerance)


def _silu(z: float) -> float:
    return z / (1.0 + math.exp(-z))


def _gelu(z: float) -> float:
    return 0.5 * z * (1.0 + math.erf(z / math.sqrt(2.0)))


def _gelu_tanh(z: float) -> float:
    return 0.5 * z * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3)))


def _matvec(matrix: list[list[float]], vector: list[float]) -> list[float]:
    return [sum(m * v for m, v in zip(row, vector, strict=True)) for row in matrix]


def _gated_by_hand(act, swap: bool = False, act_after_product: bool = False) -> torch.Tensor:
    """``down_proj(act(gate) * up)`` for the two tiny tokens, in plain Python; ``swap`` gives
    ``act(up) * gate`` and ``act_after_product`` gives ``act(gate * up)`` (two known mistakes)."""
    rows = []
    for x in X_TOKENS:
        gate, up = _matvec(GATE_W, x), _matvec(UP_W, x)
        if swap:
            gate, up = up, gate
        if act_after_product:
            product = [act(a * b) for a, b in zip(gate, up, strict=True)]
        else:
            product = [act(a) * b for a, b in zip(gate, up, strict=True)]
        rows.append(_matvec(DOWN_W, product))
    return torch.tensor([rows])  # [1, 2, 2]


def _mlp_by_hand(act) -> torch.Tensor:
    """``down_proj(act(up_proj(x)))`` for the two tiny tokens, with up_proj's weight = GATE_W."""
    return torch.tensor([[_matvec(DOWN_W, [act(z) for z in _matvec(GATE_W, x)]) for x in X_TOKENS]])


def _set_weights(module: nn.Module, **weights: list[list[float]]) -> None:
    with torch.no_grad():
        for name, value in weights.items():
            getattr(module, name).weight.copy_(torch.tensor(value))


def _tiny_ffn(class_name: str) -> nn.Module:
    """The learner's FFN class with d = 2, I = 3 and the hand-set weights above."""
    module = getattr(_ffn(), class_name)(_config(hidden_size=2, intermediate_size=3, num_attention_heads=1,
                                                 num_key_value_heads=1))
    if class_name == "FeedForward":
        _set_weights(module, up_proj=GATE_W, down_proj=DOWN_W)
    else:
        _set_weights(module, gate_proj=GATE_W, up_proj=UP_W, down_proj=DOWN_W)
    return module


def _which_mistake(out, candidates: dict[str, torch.Tensor]) -> str | None:
    """The name of the known wrong formula whose result ``out`` equals, if any."""
    if not isinstance(out, torch.Tensor):
        return None
    for name, wrong in candidates.items():
        if out.shape == wrong.shape and torch.allclose(out.detach().float(), wrong, atol=1e-5, rtol=1e-5):
            return name
    return None


# ===================================================================== build_ffn


@pytest.mark.symbol("build_ffn")
@pytest.mark.parametrize("ffn_type", FFN_TYPES)
def test_build_ffn_returns_the_class_named_by_ffn_type(ffn_type):
    """``ffn_type`` "swiglu" -> ``SwiGLU``, "geglu" -> ``GeGLU``, "gelu" -> ``FeedForward``
    (the GELU MLP), each built from the same config."""
    ffn = _ffn()
    module = ffn.build_ffn(_config(ffn_type=ffn_type))
    expected = getattr(ffn, FFN_CLASS[ffn_type])
    assert type(module) is expected, say(
        f"build_ffn(ffn_type={ffn_type!r}) 应返回 {expected.__name__}，实际返回 {type(module).__name__}："
        "按 config.ffn_type 选择类，不要总是返回同一种。",
        f"build_ffn(ffn_type={ffn_type!r}) should return a {expected.__name__}, got {type(module).__name__}: "
        "choose the class by config.ffn_type, not always the same one.")


@pytest.mark.symbol("build_ffn")
@pytest.mark.parametrize("bad", ["relu", "SwiGLU", ""])
def test_build_ffn_rejects_an_unknown_ffn_type(bad):
    """A config changed after construction (``config.ffn_type = "relu"``, or the class name
    "SwiGLU" instead of "swiglu") is a ValueError whose message lists the valid types, not
    a KeyError from a dict lookup nor a silent default."""
    config = _config()
    config.ffn_type = bad
    ffn = _ffn()
    error = expect_error(ValueError, lambda: ffn.build_ffn(config), f"build_ffn(ffn_type={bad!r})")
    assert "swiglu" in str(error), say(
        f"错误信息应列出可选的 ffn_type ('swiglu', 'geglu', 'gelu')，实际是：{error}",
        f"the message should list the valid ffn_type values ('swiglu', 'geglu', 'gelu'), got: {error}")


@pytest.mark.symbol("build_ffn")
@pytest.mark.parametrize("ffn_type", FFN_TYPES)
def test_build_ffn_parameters_have_hugging_face_names_and_shapes(ffn_type):
    """d = 32, I = 48. Gated FFNs: ``gate_proj.weight [I, d] = [48, 32]``, ``up_proj.weight
    [48, 32]``, ``down_proj.weight [d, I] = [32, 48]``; the GELU MLP has only ``up_proj`` and
    ``down_proj``. No biases (Llama's ``mlp_bias=False``)."""
    module = _ffn().build_ffn(_config(ffn_type=ffn_type))
    shapes = {name: list(p.shape) for name, p in module.state_dict().items()}
    expected = {"up_proj.weight": [48, 32], "down_proj.weight": [32, 48]}
    if ffn_type != "gelu":
        expected["gate_proj.weight"] = [48, 32]
    assert_equal(sorted(shapes), sorted(expected), say(f"{ffn_type} 的 state_dict 键 (nn.Linear(..., bias=False))",
                                                       f"{ffn_type} state_dict keys (nn.Linear(..., bias=False))"))
    for name, shape in expected.items():
        assert_equal(shapes[name], shape, f"{name}.shape ({ffn_type})")


# ===================================================================== the three FFNs


@pytest.mark.parametrize("class_name", [
    pytest.param("FeedForward", marks=pytest.mark.symbol("FeedForward.forward")),
    pytest.param("SwiGLU", marks=pytest.mark.symbol("SwiGLU.forward")),
    pytest.param("GeGLU", marks=pytest.mark.symbol("GeGLU.forward")),
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_ffn_output_has_the_input_shape_and_dtype(class_name, dtype):
    """[b, s, d] = [2, 5, 32] in -> [2, 5, 32] out (through [b, s, I] = [2, 5, 48] inside: a
    missing ``down_proj`` leaves 48 features), in the module's dtype."""
    module = getattr(_ffn(), class_name)(_config()).to(dtype)
    out = module(torch.randn(2, 5, 32, dtype=dtype))
    assert isinstance(out, torch.Tensor), say(f"{class_name}.forward 应返回一个张量，实际是 {type(out).__name__}",
                                              f"{class_name}.forward should return one tensor, got {type(out).__name__}")
    assert_equal(list(out.shape), [2, 5, 32], say(f"{class_name} 输出形状 (最后要经过 down_proj 回到 d)",
                                                  f"{class_name} output shape (down_proj brings it back to d)"))
    assert_equal(out.dtype, dtype, f"{class_name} output dtype")


@pytest.mark.symbol("SwiGLU.forward")
def test_swiglu_by_hand_gates_up_proj_with_silu_of_gate_proj():
    """Token ``[1, -2]``: ``silu(gate) = [0.7311, -0.2384, -0.2689]``, times ``up = [0, 1, 2]``
    gives ``[0, -0.2384, -0.5379]``; ``down_proj``: ``[0 - 0.2384 - 0.5379, 0 + 0.2384 - 0]
    = [-0.7763, 0.2384]``. Token ``[2, 1]``: ``silu([2, 1, 3]) · [5, 2, -1]``, then down_proj.

    ``silu(up) * gate`` (branches swapped) would give ``[-3.2237, 1.4621]`` for the first token;
    ``relu(gate) * up`` gives ``[0, 0]``."""
    out = _tiny_ffn("SwiGLU")(torch.tensor([X_TOKENS]))
    wrong = {
        "swap": _gated_by_hand(_silu, swap=True),
        "relu": _gated_by_hand(lambda z: max(z, 0.0)),
        "sigmoid": _gated_by_hand(lambda z: 1.0 / (1.0 + math.exp(-z))),
        "after": _gated_by_hand(_silu, act_after_product=True),
    }
    hints = {
        "swap": ("你的结果正好是 silu(up_proj(x)) * gate_proj(x)：SiLU 应作用在 gate_proj 上，up_proj 是线性分支。",
                 "your result is exactly silu(up_proj(x)) * gate_proj(x): SiLU goes on gate_proj; up_proj is the "
                 "linear branch."),
        "relu": ("你的结果正好是用 ReLU 算出来的：SwiGLU 的门是 F.silu (z * sigmoid(z))。",
                 "your result is exactly what ReLU gives: SwiGLU's gate is F.silu (z * sigmoid(z))."),
        "sigmoid": ("你的结果正好是 sigmoid(gate) * up (原始 GLU)：SwiGLU 用 silu(z) = z * sigmoid(z)。",
                    "your result is exactly sigmoid(gate) * up (the original GLU): SwiGLU uses silu(z) = z * sigmoid(z)."),
        "after": ("你的结果正好是 silu(gate * up)：先对 gate_proj(x) 做 SiLU，再与 up_proj(x) 相乘。",
                  "your result is exactly silu(gate * up): apply SiLU to gate_proj(x) first, then multiply by "
                  "up_proj(x)."),
    }
    found = _which_mistake(out, wrong)
    hint = say(*hints[found]) if found else say(
        "提示：return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))。",
        "hint: return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x)).")
    _close(out, _gated_by_hand(_silu), "SwiGLU output for the tiny hand-set weights", hint, atol=1e-6, rtol=1e-6)


@pytest.mark.symbol("GeGLU.forward")
def test_geglu_by_hand_uses_the_tanh_gelu_on_gate_proj():
    """Same weights and tokens as the SwiGLU case, with ``gelu_tanh`` as the gate. Token
    ``[1, -2]``: ``gelu_tanh([1, -2, -1]) = [0.84119, -0.04540, -0.15881]``, times
    ``[0, 1, 2]`` -> ``[0, -0.04540, -0.31762]``; down_proj -> ``[-0.36302, 0.04540]``.
    The exact (erf) GELU would give ``[-0.36281, 0.04550]``: 2e-4 away, so the variant
    shows (Gemma's ``gelu_pytorch_tanh`` is the tanh one)."""
    out = _tiny_ffn("GeGLU")(torch.tensor([X_TOKENS]))
    wrong = {"exact": _gated_by_hand(_gelu), "swap": _gated_by_hand(_gelu_tanh, swap=True),
             "silu": _gated_by_hand(_silu)}
    hints = {
        "exact": ("你的结果正好是精确 (erf) GELU 的结果：GeGLU 用 tanh 近似，F.gelu(z, approximate=\"tanh\")。",
                  "your result is exactly the exact (erf) GELU's: GeGLU uses the tanh approximation, "
                  "F.gelu(z, approximate=\"tanh\")."),
        "swap": ("你的结果正好是 gelu(up_proj(x)) * gate_proj(x)：GELU 应作用在 gate_proj 上。",
                 "your result is exactly gelu(up_proj(x)) * gate_proj(x): GELU goes on gate_proj."),
        "silu": ("你的结果正好是 SwiGLU 的：GeGLU 的门是 GELU (tanh 近似)，不是 SiLU。",
                 "your result is exactly SwiGLU's: GeGLU's gate is GELU (tanh approximation), not SiLU."),
    }
    found = _which_mistake(out, wrong)
    hint = say(*hints[found]) if found else say(
        "提示：return self.down_proj(F.gelu(self.gate_proj(x), approximate=\"tanh\") * self.up_proj(x))。",
        "hint: return self.down_proj(F.gelu(self.gate_proj(x), approximate=\"tanh\") * self.up_proj(x)).")
    _close(out, _gated_by_hand(_gelu_tanh), "GeGLU output for the tiny hand-set weights", hint, atol=1e-6, rtol=1e-6)


@pytest.mark.symbol("FeedForward.forward")
def test_feedforward_by_hand_uses_the_exact_gelu():
    """``up_proj`` rows ``[1, 0], [0, 1], [1, 1]``, ``down_proj = [[1, 1, 1], [1, -1, 0]]``.
    Token ``[1, -2]``: ``up = [1, -2, -1]``, exact ``gelu = [0.84134, -0.04550, -0.15866]``,
    down_proj -> ``[0.63719, 0.88684]``. The tanh GELU would give ``[0.63698, 0.88659]``:
    the classic GPT-2 / BERT MLP here is the exact (erf) one, ``F.gelu(h)``."""
    out = _tiny_ffn("FeedForward")(torch.tensor([X_TOKENS]))
    wrong = {"tanh": _mlp_by_hand(_gelu_tanh), "relu": _mlp_by_hand(lambda z: max(z, 0.0)),
             "silu": _mlp_by_hand(_silu)}
    hints = {
        "tanh": ("你的结果正好是 tanh 近似 GELU 的：FeedForward 用精确 GELU，F.gelu(h) (approximate=\"none\")。",
                 "your result is exactly the tanh GELU's: FeedForward uses the exact GELU, F.gelu(h) "
                 "(approximate=\"none\")."),
        "relu": ("你的结果正好是 ReLU 的：激活函数是 F.gelu。", "your result is exactly ReLU's: the activation is F.gelu."),
        "silu": ("你的结果正好是 SiLU 的：激活函数是 F.gelu。", "your result is exactly SiLU's: the activation is F.gelu."),
    }
    found = _which_mistake(out, wrong)
    hint = say(*hints[found]) if found else say(
        "提示：return self.down_proj(F.gelu(self.up_proj(x)))。",
        "hint: return self.down_proj(F.gelu(self.up_proj(x))).")
    _close(out, _mlp_by_hand(_gelu), "FeedForward output for the tiny hand-set weights", hint, atol=1e-6, rtol=1e-6)


# ===================================================================== TransformerBlock.__init__


@pytest.mark.symbol("TransformerBlock.__init__")
@pytest.mark.parametrize("norm_type, ffn_type", COMBOS, ids=COMBO_IDS)
def test_block_submodules_have_hugging_face_names_and_follow_the_config(norm_type, ffn_type):
    """``input_layernorm`` and ``post_attention_layernorm`` are the norm ``norm_type`` names
    (``RMSNorm`` / ``LayerNorm``), ``self_attn`` a ``GroupedQueryAttention``, ``mlp`` the FFN
    ``ffn_type`` names: Hugging Face ``LlamaDecoderLayer``'s names, so weights load by name."""
    block = _block_module().TransformerBlock(_config(norm_type=norm_type, ffn_type=ffn_type), layer_idx=0)
    norm, ffn, attention = learner("model.norm"), _ffn(), learner("model.attention")
    expected = {
        "input_layernorm": getattr(norm, NORM_CLASS[norm_type]),
        "self_attn": attention.GroupedQueryAttention,
        "post_attention_layernorm": getattr(norm, NORM_CLASS[norm_type]),
        "mlp": getattr(ffn, FFN_CLASS[ffn_type]),
    }
    for name, cls in expected.items():
        child = getattr(block, name, None)
        assert isinstance(child, cls), say(
            f"block.{name} 应是 {cls.__name__} (norm_type={norm_type!r}, ffn_type={ffn_type!r})，实际是 "
            f"{type(child).__name__}：用 build_norm(config) / GroupedQueryAttention(config, layer_idx) / build_ffn(config)，"
            "名字与 Hugging Face 相同。",
            f"block.{name} should be a {cls.__name__} (norm_type={norm_type!r}, ffn_type={ffn_type!r}), got "
            f"{type(child).__name__}: use build_norm(config) / GroupedQueryAttention(config, layer_idx) / "
            "build_ffn(config), with Hugging Face's names.")


@pytest.mark.symbol("TransformerBlock.__init__")
@pytest.mark.parametrize("norm_type, ffn_type", [("rmsnorm", "swiglu"), ("layernorm", "gelu")],
                         ids=["rmsnorm-swiglu", "layernorm-gelu"])
def test_block_parameters_are_named_like_llama_and_the_two_norms_are_separate(norm_type, ffn_type):
    """d = 32, h·hd = 32, g·hd = 16, I = 48. Attention: q_proj [32, 32], k_proj and v_proj
    [16, 32], o_proj [32, 32] = 3072 parameters. SwiGLU: 3 · 32 · 48 = 4608; the GELU MLP
    2 · 32 · 48 = 3072. Norms: RMSNorm weight [32] each (64 in all), LayerNorm weight and
    bias [32] each (128). Totals: rmsnorm-swiglu 3072 + 4608 + 64 = 7744, layernorm-gelu
    3072 + 3072 + 128 = 6272.

    The two norms are two modules: one norm reused for both sublayers shares its weight,
    and ``block.parameters()`` (which counts a shared tensor once) comes out 32 or 64 short."""
    block = _block_module().TransformerBlock(_config(norm_type=norm_type, ffn_type=ffn_type))
    expected = {"self_attn.q_proj.weight": [32, 32], "self_attn.k_proj.weight": [16, 32],
                "self_attn.v_proj.weight": [16, 32], "self_attn.o_proj.weight": [32, 32],
                "mlp.up_proj.weight": [48, 32], "mlp.down_proj.weight": [32, 48]}
    for norm in ("input_layernorm", "post_attention_layernorm"):
        expected[f"{norm}.weight"] = [32]
        if norm_type == "layernorm":
            expected[f"{norm}.bias"] = [32]
    if ffn_type == "swiglu":
        expected["mlp.gate_proj.weight"] = [48, 32]
    shapes = {name: list(p.shape) for name, p in block.state_dict().items()}
    assert_equal(sorted(shapes), sorted(expected), say("block.state_dict() 的键 (Hugging Face 的名字)",
                                                       "block.state_dict() keys (Hugging Face's names)"))
    for name, shape in expected.items():
        assert_equal(shapes[name], shape, f"{name}.shape")
    assert block.input_layernorm is not block.post_attention_layernorm, say(
        "input_layernorm 和 post_attention_layernorm 是同一个模块：两个子层各需要自己的 build_norm(config)。",
        "input_layernorm and post_attention_layernorm are the same module: each sublayer needs its own "
        "build_norm(config).")
    total = {"rmsnorm": 7744, "layernorm": 6272}[norm_type]
    assert_equal(sum(p.numel() for p in block.parameters()), total,
                 say("block 的参数总数 (共享的张量只算一次)", "number of parameters of the block (a shared tensor counts once)"))


@pytest.mark.symbol("TransformerBlock.__init__")
def test_block_passes_layer_idx_to_its_attention():
    """``TransformerBlock(config, layer_idx=3)`` keeps ``layer_idx = 3`` and hands it to
    ``GroupedQueryAttention`` (lesson 05 gives every layer its own index)."""
    block = _block_module().TransformerBlock(_config(), layer_idx=3)
    assert_equal(getattr(block, "layer_idx", None), 3, "block.layer_idx")
    assert_equal(getattr(block.self_attn, "layer_idx", None), 3, "block.self_attn.layer_idx")


# ===================================================================== TransformerBlock.forward


class _Scale(nn.Module):
    """A stand-in norm: ``x -> c · x``."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, x):
        return x * self.c


class _Square(nn.Module):
    """A stand-in FFN: ``x -> x²``."""

    def forward(self, x):
        return x * x


class _PlusOneAttention(nn.Module):
    """A stand-in attention: ``x -> x + 1``; records its arguments and returns ``present``
    (a recognisable pair of tensors) when ``use_cache`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict] = []
        self.present = (torch.full((1,), 7.0), torch.full((1,), 8.0))

    def forward(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None, use_cache=False):
        self.calls.append(dict(attention_mask=attention_mask, position_ids=position_ids,
                               past_key_value=past_key_value, use_cache=use_cache))
        return hidden_states + 1.0, (self.present if use_cache else None)


def _stubbed_block(**overrides):
    """The learner's block with norm1 = 2·x, attention = x + 1, norm2 = 3·x, mlp = x² (eval mode)."""
    block = _block_module().TransformerBlock(_config(**overrides), layer_idx=0)
    block.input_layernorm = _Scale(2.0)
    block.self_attn = _PlusOneAttention()
    block.post_attention_layernorm = _Scale(3.0)
    block.mlp = _Square()
    return block.eval()


@pytest.mark.symbol("TransformerBlock.forward")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_block_returns_the_input_shape_and_dtype_and_no_cache_by_default(dtype):
    """[b, s, d] = [2, 5, 32] in -> ``(hidden_states [2, 5, 32], None)``: a pair, the output in
    the block's dtype, and no ``present_key_value`` without ``use_cache``."""
    block = _block_module().TransformerBlock(_config(), layer_idx=0).to(dtype).eval()
    with torch.no_grad():
        result = block(torch.randn(2, 5, 32, dtype=dtype))
    assert isinstance(result, tuple) and len(result) == 2, say(
        "forward 应返回 (hidden_states, present_key_value) 二元组", "forward should return the pair (hidden_states, present_key_value)")
    out, present = result
    assert_equal(list(out.shape), [2, 5, 32], "block output shape [b, s, d]")
    assert_equal(out.dtype, dtype, "block output dtype")
    assert present is None, say("未传 use_cache=True 时 present_key_value 应为 None",
                                "present_key_value should be None without use_cache=True")


@pytest.mark.symbol("TransformerBlock.forward")
def test_block_is_pre_ln_by_hand():
    """Sublayers replaced by stand-ins: norm1(x) = 2x, attn(y) = y + 1, norm2(x) = 3x, mlp(y) = y².
    Pre-LN:

        h   = x + attn(norm1(x)) = x + 2x + 1 = 3x + 1
        out = h + mlp(norm2(h))  = h + (3h)² = h + 9h²

    e.g. x = 1: h = 4, out = 4 + 144 = 148. Post-LN (``norm(x + sublayer(x))``) gives instead
    h = 2(x + x + 1) = 4x + 2 and out = 3(h + h²): 3 · (6 + 36) = 126 for x = 1."""
    block = _stubbed_block()
    x = torch.linspace(-1.0, 1.0, 64).view(1, 2, 32)
    with torch.no_grad():
        out, _ = block(x)
    h = 3 * x + 1
    expected = h + 9 * h * h
    post_h = 4 * x + 2
    wrong = {
        "post_ln": 3 * (post_h + post_h * post_h),
        "no_mlp_residual": 9 * h * h,
        # h = 2x + 1: either attn(norm1(x)) without "+ x", or x + attn(x) without norm1
        "first_sublayer": (2 * x + 1) + 9 * (2 * x + 1) ** 2,
        "normed_stream": 3 * h + 9 * h * h,  # the residual is norm2(h) = 3h instead of h
        "mlp_on_raw_stream": h + h * h,
        # residual taken after each norm: h' = 2x + (2x + 1) = 4x + 1, out = 3h' + (3h')²
        "residual_after_norm": 3 * (4 * x + 1) + 9 * (4 * x + 1) ** 2,
    }
    hints = {
        "post_ln": ("你的结果正好是 Post-LN 的 norm(x + sublayer(x))：本课是 Pre-LN，x + sublayer(norm(x))，残差流本身不归一化。",
                    "your result is exactly post-LN's norm(x + sublayer(x)): this lesson is pre-LN, "
                    "x + sublayer(norm(x)); the residual stream itself is never normalised."),
        "no_mlp_residual": ("你的结果少了第二个残差连接：hidden_states = hidden_states + dropout(mlp(...))。",
                            "your result misses the second residual connection: "
                            "hidden_states = hidden_states + dropout(mlp(...))."),
        "first_sublayer": ("第一个子层不对：要么少了残差 (residual + attn 输出)，要么 self_attn 的输入没经过 input_layernorm。",
                           "the first sublayer is wrong: either the residual is missing (residual + attention "
                           "output) or self_attn's input skipped input_layernorm."),
        "normed_stream": ("你把归一化后的 post_attention_layernorm(h) 当成了残差：残差要加回未归一化的 h。",
                          "you used the normalised post_attention_layernorm(h) as the residual: add back the "
                          "un-normalised h."),
        "residual_after_norm": ("你的残差取在归一化之后 (x = norm(x); x = x + sublayer(x))：先保存 residual = hidden_states，"
                                "再归一化，子层输出加回未归一化的 residual。",
                                "your residual is taken after the norm (x = norm(x); x = x + sublayer(x)): keep "
                                "residual = hidden_states first, normalise, then add the sublayer's output back to "
                                "the un-normalised residual."),
        "mlp_on_raw_stream": ("mlp 的输入没有经过 post_attention_layernorm：h + mlp(post_attention_layernorm(h))。",
                              "the mlp input skipped post_attention_layernorm: h + mlp(post_attention_layernorm(h))."),
    }
    found = _which_mistake(out, wrong)
    hint = say(*hints[found]) if found else say(
        "提示：Pre-LN：h = x + attn(input_layernorm(x))；out = h + mlp(post_attention_layernorm(h))。",
        "hint: pre-LN: h = x + attn(input_layernorm(x)); out = h + mlp(post_attention_layernorm(h)).")
    _close(out, expected, "block output with stand-in sublayers (expected h + 9h², h = 3x + 1)", hint,
           atol=1e-5, rtol=1e-6)


@pytest.mark.symbol("TransformerBlock.forward")
def test_block_passes_the_attention_arguments_through_unchanged():
    """The block does not interpret the attention arguments: ``attention_mask``,
    ``position_ids``, ``past_key_value`` and ``use_cache`` reach ``self_attn`` as given, and
    the block returns the ``present`` that attention returned."""
    block = _stubbed_block()
    x = torch.randn(2, 3, 32)
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    positions = torch.tensor([[2, 3, 4], [0, 1, 2]])
    past = (torch.randn(2, 2, 2, 8), torch.randn(2, 2, 2, 8))
    with torch.no_grad():
        _, present = block(x, attention_mask=mask, position_ids=positions, past_key_value=past, use_cache=True)
    calls = block.self_attn.calls
    assert_equal(len(calls), 1, say("self_attn 被调用的次数", "number of calls to self_attn"))
    got = calls[0]
    hint = say("提示：把 attention_mask、position_ids、past_key_value、use_cache 原样传给 self.self_attn。",
               "hint: pass attention_mask, position_ids, past_key_value and use_cache to self.self_attn unchanged.")
    for name, want in (("attention_mask", mask), ("position_ids", positions)):
        value = got[name]
        assert isinstance(value, torch.Tensor) and torch.equal(value, want), say(
            f"self_attn 收到的 {name} 是 {value!r}，应为传给 block 的那个张量。", f"self_attn got {name}={value!r}, "
            "not the tensor given to the block.") + f"\n{hint}"
    received = got["past_key_value"]
    assert received is not None and all(a is b for a, b in zip(received, past, strict=True)), say(
        "self_attn 收到的 past_key_value 不是传给 block 的那个缓存。",
        "self_attn did not receive the past_key_value given to the block.") + f"\n{hint}"
    assert got["use_cache"] is True, say(f"self_attn 收到 use_cache={got['use_cache']!r}，应为 True。",
                                         f"self_attn got use_cache={got['use_cache']!r}, expected True.") + f"\n{hint}"
    assert present is block.self_attn.present, say(
        "block 返回的 present_key_value 应是 self_attn 返回的那个 (k, v)。",
        "the block should return the present_key_value that self_attn returned.") + f"\n{hint}"


@pytest.mark.symbol("TransformerBlock.forward")
@pytest.mark.parametrize("norm_type, ffn_type", COMBOS, ids=COMBO_IDS)
def test_block_with_zero_output_projections_is_the_identity(norm_type, ffn_type):
    """With ``self_attn.o_proj`` and ``mlp.down_proj`` zeroed, both sublayers output 0, so
    ``out = x + 0 + 0 = x`` exactly: the residual stream passes through untouched. A norm on
    the stream (post-LN, or ``norm(x + attn)``) would return ``norm(x)`` instead."""
    block = _block_module().TransformerBlock(_config(norm_type=norm_type, ffn_type=ffn_type), layer_idx=0).eval()
    with torch.no_grad():
        block.self_attn.o_proj.weight.zero_()
        block.mlp.down_proj.weight.zero_()
        x = torch.randn(2, 5, 32) * 3 + 1
        out, _ = block(x)
    _close(out, x, f"block output with zero o_proj and down_proj ({norm_type}, {ffn_type})", say(
        "提示：子层输出为 0 时 block 应原样返回输入：残差流不做归一化 (Pre-LN)，两个子层都要加回残差。",
        "hint: with zero sublayer outputs the block returns its input: the residual stream is not normalised "
        "(pre-LN), and both sublayers add back to the residual."), atol=0, rtol=0)


@pytest.mark.symbol("TransformerBlock.forward")
def test_block_use_cache_returns_the_attention_cache_and_it_grows():
    """``use_cache=True`` on 5 tokens: present = (k, v), each [b, g, t, hd] = [2, 2, 5, 8], the
    same as ``self_attn(input_layernorm(x), use_cache=True)`` returns (the cache is
    attention's, the block only hands it over). One more token with that cache: [2, 2, 6, 8]."""
    block = _block_module().TransformerBlock(_config(), layer_idx=0).eval()
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        _, present = block(x, use_cache=True)
        _, expected = block.self_attn(block.input_layernorm(x), use_cache=True)
    hint = say("提示：把 use_cache 传给 self_attn，并把它返回的 present 作为第二个返回值。",
               "hint: pass use_cache to self_attn and return the present it gives back as the second value.")
    assert isinstance(present, tuple) and len(present) == 2, say(
        f"use_cache=True 时 present_key_value 应为 (k, v)，实际是 {type(present).__name__}",
        f"with use_cache=True present_key_value should be (k, v), got {type(present).__name__}") + f"\n{hint}"
    for name, got, want in zip("kv", present, expected, strict=True):
        _close(got, want, f"present {name} after 5 tokens", hint, atol=1e-6, rtol=1e-6)
    with torch.no_grad():
        out, present = block(torch.randn(2, 1, 32), past_key_value=present, use_cache=True)
    assert_equal(list(out.shape), [2, 1, 32], "output shape of the decoding step")
    assert isinstance(present, tuple) and len(present) == 2, say("解码一步后 present 应为 (k, v)",
                                                                 "after a decoding step present should be (k, v)")
    for name, tensor in zip("kv", present, strict=True):
        assert_equal(list(tensor.shape), [2, 2, 6, 8], f"present {name}.shape after 5 + 1 tokens ([b, g, t, hd])")
