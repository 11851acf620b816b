"""Lesson 04, advanced tier: random weights, the reference, masks, the KV cache, dropout, gradients.

Expected values come from three places, never from outputs pasted into this file:

- **torch**: each FFN against its formula written with ``torch.nn.functional``
  (``F.linear``, ``F.silu``, ``F.gelu`` exact and ``approximate="tanh"``), in float64;
- **the reference library** (``intro2llm``): the learner's FFNs and block load the
  weights of a reference module (randomized, see ``_randomize``: not the default init,
  norms with weights away from 1 and non-zero biases) and must give the same outputs,
  caches and gradients on the same inputs;
- **properties**: decoding with a KV cache equals one full pass; dropout is the identity
  in eval mode and, in training, zeroes each sublayer's output (never the residual
  stream); finite differences agree with autograd (float64).

Tolerances (``|actual - expected| <= atol + rtol · |expected|``):

- ``F32 = 1e-5`` (atol and rtol), one FFN in float32 against the reference: the same three
  matrix products and one activation; correct variants (``gate * torch.sigmoid(gate)`` for
  ``F.silu``, another summation order) differ by a few float32 ulps of O(1-10) values,
  ~1e-6, while every wrong formula moves outputs by > 1e-3 (the two GELUs differ by up to
  4.7e-4 per feature, summed over I features).
- ``F64 = 1e-10``, an FFN in float64 against its ``torch.nn.functional`` formula: float64
  rounding is ~1e-16 relative; a float32 step anywhere in between shows up as ~1e-7.
- ``BLOCK = 1e-4``, the block in float32 against the reference block (and decoding with
  the cache against the full pass): the learner's block runs *their* lesson-02 norms and
  lesson-03 attention, each held to 1e-5 against the reference in its own lesson; the block
  chains attention, two norms and an FFN whose weights amplify differences a few times, so
  the bound is ten times theirs. Structural mistakes (post-LN, a missing residual, a mask
  not passed on) move outputs by 1e-2 or more.
- ``BF16 = atol 0.1, rtol 2e-2``, bfloat16 modules against the float32 reference on the same
  bfloat16-rounded weights and inputs: bfloat16 keeps 8 significant bits (relative step
  2^-8 = 3.9e-3). The I intermediate values are each rounded once (or twice, when the
  activation and the product are rounded separately) before ``down_proj`` sums them, and
  the gated products reach |y| ~ 20; measured with the reference over several seeds, the
  error stays below 0.05 + 2e-2 · |y|, so this bound leaves a margin of two.
- Weight gradients, ``atol = rtol = 1e-4``: sums over b · s positions of products of O(1)
  values, same reasoning as ``BLOCK``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from intro2llm_cli.testkit import assert_close, assert_equal, learner, reference, say

F32 = {"atol": 1e-5, "rtol": 1e-5}
F64 = {"atol": 1e-10, "rtol": 1e-10}
BLOCK = {"atol": 1e-4, "rtol": 1e-4}
BF16 = {"atol": 0.1, "rtol": 2e-2}
GRAD = {"atol": 1e-4, "rtol": 1e-4}

FFN_TYPES = ["swiglu", "geglu", "gelu"]
NORM_TYPES = ["rmsnorm", "layernorm"]
COMBOS = [(n, f) for n in NORM_TYPES for f in FFN_TYPES]
COMBO_IDS = [f"{n}-{f}" for n, f in COMBOS]
FFN_PARAMS = [
    pytest.param("FeedForward", marks=pytest.mark.symbol("FeedForward.forward"), id="FeedForward"),
    pytest.param("SwiGLU", marks=pytest.mark.symbol("SwiGLU.forward"), id="SwiGLU"),
    pytest.param("GeGLU", marks=pytest.mark.symbol("GeGLU.forward"), id="GeGLU"),
]

HINT_FFN = {
    "FeedForward": ("提示：return self.down_proj(F.gelu(self.up_proj(x)))：精确 GELU (approximate=\"none\")。",
                    "hint: return self.down_proj(F.gelu(self.up_proj(x))): the exact GELU (approximate=\"none\")."),
    "SwiGLU": ("提示：return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))：SiLU 只作用在 gate_proj 上。",
               "hint: return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x)): SiLU on gate_proj only."),
    "GeGLU": ("提示：return self.down_proj(F.gelu(self.gate_proj(x), approximate=\"tanh\") * self.up_proj(x))。",
              "hint: return self.down_proj(F.gelu(self.gate_proj(x), approximate=\"tanh\") * self.up_proj(x))."),
}
HINT_BLOCK = (
    "提示：Pre-LN：h = x + dropout(self_attn(input_layernorm(x), ...)[0])；"
    "out = h + dropout(mlp(post_attention_layernorm(h)))；残差流本身不归一化；注意力参数原样传下去。",
    "hint: pre-LN: h = x + dropout(self_attn(input_layernorm(x), ...)[0]); "
    "out = h + dropout(mlp(post_attention_layernorm(h))); the residual stream is never normalised; "
    "the attention arguments go through unchanged.",
)
HINT_MASK = (
    "\n以及：attention_mask 和 position_ids 是否原样传给了 self_attn？",
    "\nalso: are attention_mask and position_ids passed to self_attn unchanged?",
)
HINT_CACHE = (
    "提示：past_key_value 和 use_cache 原样传给 self_attn，并返回它给出的 present；block 不自己拼接缓存。",
    "hint: pass past_key_value and use_cache to self_attn unchanged and return the present it gives; the block "
    "does not concatenate caches itself.",
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _close(actual, expected, what, hint: tuple[str, str] | None = None, extra: str = "", **tolerance):
    assert_close(actual, expected, what, hint=(say(*hint) + extra) if hint else None, **(tolerance or F32))


def _config(module, **overrides):
    """d = 32, h = 4 query heads of hd = 8, g = 2, I = 48 (or overridden), positions up to 64."""
    params = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return module.ModelConfig(**{**params, **overrides})


def _randomize(module: nn.Module, seed: int, gain: float = 1.0) -> nn.Module:
    """Weights that are not the default init: every matrix ~ N(0, gain² / fan_in) (so
    pre-activations are O(gain) and both sides of every activation are used), norm
    weights 1 + N(0, 0.3²), norm biases N(0, 0.3²)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=generator, dtype=torch.float32)
            if p.dim() == 2:
                p.copy_(noise * gain / p.shape[1] ** 0.5)
            elif name.endswith("weight"):
                p.copy_(1.0 + 0.3 * noise)
            else:
                p.copy_(0.3 * noise)
    return module


def _load(module: nn.Module, state: dict, what: str) -> nn.Module:
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise AssertionError(say(
            f"无法把参考实现的权重载入{what} (名字应与 Hugging Face 相同，无偏置)：{exc}",
            f"cannot load the reference weights into {what} (names as in Hugging Face, no biases): {exc}")) from None
    return module


def _ffn_pair(class_name: str, d: int = 32, inter: int = 48, seed: int = 1):
    """(learner FFN, reference FFN) of class ``class_name`` with the same random weights (gain 1.5)."""
    ref_config = _config(reference("model.config"), hidden_size=d, intermediate_size=inter)
    ref = _randomize(getattr(reference("model.feedforward"), class_name)(ref_config), seed, gain=1.5)
    config = _config(learner("model.config"), hidden_size=d, intermediate_size=inter)
    mine = getattr(learner("model.feedforward"), class_name)(config)
    return _load(mine, ref.state_dict(), f" {class_name}"), ref


def _block_pair(norm_type: str = "rmsnorm", ffn_type: str = "swiglu", seed: int = 2, **overrides):
    """(learner block, reference block), same random weights, both in eval mode."""
    kwargs = dict(norm_type=norm_type, ffn_type=ffn_type, **overrides)
    ref = reference("model.transformer_block").TransformerBlock(_config(reference("model.config"), **kwargs), layer_idx=0)
    _randomize(ref, seed)
    mine = learner("model.transformer_block").TransformerBlock(_config(learner("model.config"), **kwargs), layer_idx=0)
    return _load(mine, ref.state_dict(), " TransformerBlock").eval(), ref.eval()


def _left_padding(b: int, t: int) -> torch.Tensor:
    """[b, t] of 1 / 0: row 0 unpadded, row 1 with 3 left pads, further rows with 1 left pad."""
    mask = torch.ones(b, t, dtype=torch.long)
    mask[1, :3] = 0
    mask[2:, :1] = 0
    return mask


def _additive_4d_mask(padding: torch.Tensor) -> torch.Tensor:
    """A complete [b, 1, s, s] additive mask (0 = may attend, finfo.min = masked), built with
    loops from causality and the key padding; the block must hand it to attention unchanged."""
    b, s = padding.shape
    mask = torch.full((b, 1, s, s), torch.finfo(torch.float32).min)
    for bi in range(b):
        for i in range(s):
            for j in range(i + 1):
                if padding[bi, j] == 1:
                    mask[bi, 0, i, j] = 0.0
    return mask


# ===================================================================== feed-forward networks


@pytest.mark.parametrize("class_name", FFN_PARAMS)
@pytest.mark.parametrize("shape", [(1, 1, 8, 16), (2, 5, 32, 48), (3, 7, 64, 172)],
                         ids=["b1-s1-d8-I16", "b2-s5-d32-I48", "b3-s7-d64-I172"])
def test_ffn_matches_the_reference_with_the_same_weights(class_name, shape):
    """Random weights (pre-activations of size ~1.5, where the GELU variants differ most) and
    random inputs [b, s, d]: the same output as the reference FFN (F32). The last shape is
    ``tiny()``'s d = 64, I = 172."""
    b, s, d, inter = shape
    mine, ref = _ffn_pair(class_name, d, inter)
    x = torch.randn(b, s, d)
    with torch.no_grad():
        out, expected = mine(x), ref(x)
    _close(out, expected, f"{class_name} output, [b, s, d] = {[b, s, d]}, I = {inter}", HINT_FFN[class_name], **F32)


@pytest.mark.parametrize("class_name", FFN_PARAMS)
def test_ffn_matches_its_torch_functional_formula_in_float64(class_name):
    """float64, random weights Wg, Wu [I, d], Wd [d, I] read from the module:

    - FeedForward: ``F.linear(F.gelu(F.linear(x, Wu)), Wd)`` (exact GELU);
    - SwiGLU: ``F.linear(F.silu(F.linear(x, Wg)) * F.linear(x, Wu), Wd)``;
    - GeGLU: ``F.linear(F.gelu(F.linear(x, Wg), approximate="tanh") * F.linear(x, Wu), Wd)``.

    At F64 even the 1e-4 gap between the two GELUs is a million times the tolerance."""
    mine, _ = _ffn_pair(class_name)
    mine = mine.double()
    x = torch.randn(2, 6, 32, dtype=torch.float64)
    up, down = mine.up_proj.weight.detach(), mine.down_proj.weight.detach()
    if class_name == "FeedForward":
        expected = F.linear(F.gelu(F.linear(x, up)), down)
    else:
        gate = F.linear(x, mine.gate_proj.weight.detach())
        act = F.silu(gate) if class_name == "SwiGLU" else F.gelu(gate, approximate="tanh")
        expected = F.linear(act * F.linear(x, up), down)
    with torch.no_grad():
        out = mine(x)
    _close(out, expected, f"{class_name} output in float64 vs its formula", HINT_FFN[class_name], **F64)


@pytest.mark.parametrize("class_name", FFN_PARAMS)
def test_ffn_in_bfloat16_stays_bfloat16_and_matches_float32(class_name):
    """Module and input in bfloat16: a bfloat16 output (no float32 leaking out), within BF16
    of the float32 reference run on the same rounded weights and input."""
    mine, ref = _ffn_pair(class_name, 32, 48)
    mine = mine.to(torch.bfloat16)
    ref.load_state_dict({k: v.float() for k, v in mine.state_dict().items()})
    x = torch.randn(3, 7, 32).to(torch.bfloat16)
    with torch.no_grad():
        out, expected = mine(x), ref(x.float())
    assert_equal(out.dtype, torch.bfloat16, f"{class_name} output dtype for a bfloat16 module and input")
    _close(out.float(), expected, f"bfloat16 {class_name} output (as float32) vs float32", HINT_FFN[class_name], **BF16)


@pytest.mark.parametrize("class_name", FFN_PARAMS)
def test_ffn_works_on_each_token_on_its_own(class_name):
    """The FFN mixes features, never positions: changing token 3 of 6 changes output row 3
    only, and a [b·s, d] batch of rows gives the same numbers as the [b, s, d] tensor."""
    mine, _ = _ffn_pair(class_name)
    x = torch.randn(2, 6, 32)
    y = x.clone()
    y[:, 3] = torch.randn(2, 32)
    with torch.no_grad():
        out_x, out_y, flat = mine(x), mine(y), mine(x.reshape(12, 32))
    keep = [0, 1, 2, 4, 5]
    hint = ("提示：FFN 只作用在最后一维 (nn.Linear)，不要在序列维上求和、归一化或 reshape。",
            "hint: the FFN acts on the last axis only (nn.Linear): no sums, norms or reshapes over the sequence.")
    _close(out_y[:, keep], out_x[:, keep], f"{class_name} outputs of the unchanged tokens", hint, **F32)
    _close(flat, out_x.reshape(12, 32), f"{class_name} on [b*s, d] rows vs on [b, s, d]", hint, **F32)


# ===================================================================== the block against the reference


@pytest.mark.symbol("TransformerBlock.forward")
@pytest.mark.parametrize("masking", ["causal", "left_pad", "strided_positions", "additive_4d"])
@pytest.mark.parametrize("norm_type, ffn_type", COMBOS, ids=COMBO_IDS)
def test_block_matches_the_reference_with_the_same_weights(norm_type, ffn_type, masking):
    """b = 3, s = 7, every norm × FFN: the same output as the reference block (BLOCK).

    - causal: no mask, default positions;
    - left_pad: padding mask [b, t] with 0, 3 and 1 left pads and the positions generate()
      passes (real tokens start at 0): both must reach the attention layer;
    - strided_positions: ``position_ids`` 0, 2, 4, ... (row 1 shifted by 1). RoPE only sees
      differences of positions, so a uniform shift (as in left_pad) cannot tell whether the
      positions arrived; a stride of 2 doubles every distance and can;
    - additive_4d: a complete [b, 1, s, t] float mask, passed through as it is."""
    mine, ref = _block_pair(norm_type, ffn_type)
    b, s = 3, 7
    x = torch.randn(b, s, 32)
    kwargs = {}
    if masking == "left_pad":
        padding = _left_padding(b, s)
        kwargs = dict(attention_mask=padding, position_ids=(padding.cumsum(-1) - 1).clamp(min=0))
    elif masking == "strided_positions":
        kwargs = dict(position_ids=torch.arange(s).expand(b, s) * 2 + torch.tensor([[0], [1], [0]]))
    elif masking == "additive_4d":
        kwargs = dict(attention_mask=_additive_4d_mask(_left_padding(b, s)))
    with torch.no_grad():
        out, present = mine(x, **kwargs)
        expected, _ = ref(x, **kwargs)
    assert present is None, say("未传 use_cache=True 时 present_key_value 应为 None",
                                "present_key_value should be None without use_cache=True")
    _close(out, expected, f"block output ({norm_type}, {ffn_type}, {masking})", HINT_BLOCK,
           extra="" if masking == "causal" else say(*HINT_MASK), **BLOCK)


@pytest.mark.symbol("TransformerBlock.forward")
@pytest.mark.parametrize("norm_type, ffn_type", [("rmsnorm", "swiglu"), ("layernorm", "gelu")],
                         ids=["rmsnorm-swiglu", "layernorm-gelu"])
def test_block_in_bfloat16_stays_bfloat16_and_matches_float32(norm_type, ffn_type):
    """The block cast to bfloat16 on a bfloat16 input: a bfloat16 output, within BF16 of the
    float32 reference block on the same rounded weights and input."""
    mine, ref = _block_pair(norm_type, ffn_type)
    mine = mine.to(torch.bfloat16)
    ref.load_state_dict({k: v.float() for k, v in mine.state_dict().items()})
    x = torch.randn(2, 6, 32).to(torch.bfloat16)
    with torch.no_grad():
        out, _ = mine(x)
        expected, _ = ref(x.float())
    assert_equal(out.dtype, torch.bfloat16, "block output dtype in bfloat16")
    _close(out.float(), expected, f"bfloat16 block output (as float32) vs float32 ({norm_type}, {ffn_type})",
           HINT_BLOCK, **BF16)


# ===================================================================== the KV cache through the block


@pytest.mark.symbol("TransformerBlock.forward")
@pytest.mark.parametrize("padded", [False, True], ids=["no_pad", "left_pad"])
@pytest.mark.parametrize("chunks", [[1] * 7, [3, 1, 3]], ids=["token_by_token", "chunks_3_1_3"])
def test_block_decoding_with_the_cache_equals_one_full_pass(chunks, padded):
    """Feed 7 tokens in pieces, carrying ``present`` from call to call (default positions):
    every piece's output equals the matching rows of one full pass of the learner's own block
    (BLOCK), and the cache holds [b, g, tokens so far, hd]. Only real tokens are compared: a
    pad query sees a different set of keys in a cached step than in the full pass."""
    mine, _ = _block_pair("layernorm", "geglu")
    b, total = 3, sum(chunks)
    x = torch.randn(b, total, 32)
    padding = _left_padding(b, total) if padded else None
    with torch.no_grad():
        full, _ = mine(x, attention_mask=padding)
        past, start, pieces = None, 0, []
        for n in chunks:
            mask = padding[:, : start + n] if padded else None  # covers cached + new tokens
            out, past = mine(x[:, start : start + n], attention_mask=mask, past_key_value=past, use_cache=True)
            assert isinstance(past, tuple) and len(past) == 2, say(
                "use_cache=True 时 block 应返回 present = (k, v)", "with use_cache=True the block should return present = (k, v)"
            ) + "\n" + say(*HINT_CACHE)
            for name, tensor in zip("kv", past, strict=True):
                assert_equal(list(tensor.shape), [b, 2, start + n, 8],
                             f"cached {name}.shape after {start + n} tokens ([b, g, t, hd])")
            pieces.append(out)
            start += n
    real = padding.bool() if padded else torch.ones(b, total, dtype=torch.bool)
    _close(torch.cat(pieces, dim=1)[real], full[real], f"block outputs decoded in chunks {chunks} vs one pass",
           HINT_CACHE, **BLOCK)


@pytest.mark.symbol("TransformerBlock.forward")
def test_block_cache_equals_the_reference_cache():
    """A 4-token prompt, then 1 token, then 2: after each call the learner's (k, v) and output
    equal the reference block's (BLOCK): the block hands attention's cache over untouched."""
    mine, ref = _block_pair("rmsnorm", "swiglu")
    x = torch.randn(2, 7, 32)
    past_mine = past_ref = None
    start = 0
    with torch.no_grad():
        for n in (4, 1, 2):
            piece = x[:, start : start + n]
            out, past_mine = mine(piece, past_key_value=past_mine, use_cache=True)
            expected, past_ref = ref(piece, past_key_value=past_ref, use_cache=True)
            start += n
            assert isinstance(past_mine, tuple) and len(past_mine) == 2, say(
                "use_cache=True 时应返回 (k, v)", "with use_cache=True present should be (k, v)") + "\n" + say(*HINT_CACHE)
            _close(out, expected, f"block output after {start} tokens", HINT_CACHE, **BLOCK)
            for name, got, want in zip("kv", past_mine, past_ref, strict=True):
                _close(got, want, f"cached {name} after {start} tokens", HINT_CACHE, **BLOCK)


# ===================================================================== dropout


class _ConstantAttention(nn.Module):
    """A stand-in attention whose output is ``a`` everywhere (and no cache)."""

    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = a

    def forward(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None, use_cache=False):
        return torch.full_like(hidden_states, self.a), None


class _Constant(nn.Module):
    """A stand-in FFN whose output is ``m`` everywhere."""

    def __init__(self, m: float) -> None:
        super().__init__()
        self.m = m

    def forward(self, x):
        return torch.full_like(x, self.m)


@pytest.mark.symbol("TransformerBlock.forward")
@pytest.mark.parametrize("norm_type, ffn_type", [("rmsnorm", "swiglu"), ("layernorm", "gelu")],
                         ids=["rmsnorm-swiglu", "layernorm-gelu"])
def test_block_dropout_is_off_in_eval_mode(norm_type, ffn_type):
    """``hidden_dropout = 0.5`` but ``.eval()``: two calls give identical outputs, equal to the
    reference block's (BLOCK). ``F.dropout(h, p)`` without ``training=self.training`` (its
    default is True) drops in eval too; ``nn.Dropout`` follows ``.train()`` / ``.eval()``."""
    mine, ref = _block_pair(norm_type, ffn_type, hidden_dropout=0.5)
    x = torch.randn(2, 6, 32)
    with torch.no_grad():
        first, _ = mine(x)
        second, _ = mine(x)
        expected, _ = ref(x)
    hint = ("提示：用 self.dropout = nn.Dropout(config.hidden_dropout)，它在 eval 模式下不起作用；"
            "F.dropout 要写 training=self.training。",
            "hint: use self.dropout = nn.Dropout(config.hidden_dropout), which does nothing in eval mode; "
            "F.dropout needs training=self.training.")
    _close(second, first, "two eval-mode calls with hidden_dropout=0.5", hint, atol=0, rtol=0)
    _close(first, expected, "eval-mode output vs the reference", hint, **BLOCK)


@pytest.mark.symbol("TransformerBlock.forward")
def test_block_dropout_in_training_drops_the_sublayer_outputs_only():
    """Training mode, ``hidden_dropout = p = 0.5``; attention replaced by a constant a = 1, the
    FFN by a constant m = 10. Pre-LN with dropout on each sublayer's output:

        out - x = dropout(a) + dropout(m),  dropout(c) = 0 or c / (1 - p) = 2c

    so every element of ``out - x`` is one of 0, 2, 20, 22, the attention part is dropped for
    about half of the 2 · 8 · 32 = 512 elements and so is the FFN part (we accept 0.35 to
    0.65: five standard deviations), and two calls differ. Dropout on the residual stream
    (``dropout(x + sublayer)``) drops pieces of x too, which leaves other values."""
    config = _config(learner("model.config"), hidden_dropout=0.5)
    block = learner("model.transformer_block").TransformerBlock(config, layer_idx=0)
    block.self_attn = _ConstantAttention(1.0)
    block.mlp = _Constant(10.0)
    block.train()
    x = torch.randn(2, 8, 32)
    with torch.no_grad():
        first, _ = block(x)
        second, _ = block(x)
    hint = say("提示：dropout 只作用在子层输出上，再加回残差：h = x + dropout(attn)；out = h + dropout(mlp)。"
               "不要对残差流 (x + sublayer) 做 dropout，也不要漏掉任何一个子层。",
               "hint: dropout acts on each sublayer's output before it is added back: h = x + dropout(attn); "
               "out = h + dropout(mlp). Never on the residual stream (x + sublayer), and on both sublayers.")
    delta = first - x
    allowed = torch.tensor([0.0, 2.0, 20.0, 22.0])
    nearest = (delta[..., None] - allowed).abs().min(-1).values
    bad = nearest > 1e-4
    if bad.any():
        index = bad.nonzero()[0].tolist()
        raise AssertionError(say(
            f"训练模式下 out - x 只能是 0、2、20、22 之一，实际有 {int(bad.sum())} / {bad.numel()} 个不是，"
            f"例如索引 {index} 处为 {delta[tuple(index)].item():.4f}。",
            f"in training out - x must be one of 0, 2, 20, 22; {int(bad.sum())} / {bad.numel()} elements are not, "
            f"e.g. {delta[tuple(index)].item():.4f} at index {index}.") + f"\n{hint}")
    attn_dropped = ((delta - 0.0).abs() < 1e-4) | ((delta - 20.0).abs() < 1e-4)
    mlp_dropped = ((delta - 0.0).abs() < 1e-4) | ((delta - 2.0).abs() < 1e-4)
    for name, dropped in (("attention", attn_dropped), ("mlp", mlp_dropped)):
        fraction = dropped.float().mean().item()
        assert 0.35 <= fraction <= 0.65, say(
            f"{name} 子层输出被丢弃的比例应约为 p = 0.5，实际 {fraction:.3f}。",
            f"the {name} sublayer's output should be dropped for a fraction ~p = 0.5 of elements, got {fraction:.3f}.") \
            + f"\n{hint}"
    assert not torch.equal(first, second), say("训练模式下两次调用的输出应不同 (每次都重新采样 dropout)",
                                               "in training two calls should differ (dropout samples anew)") + f"\n{hint}"


# ===================================================================== gradients


@pytest.mark.symbol("TransformerBlock.forward")
@pytest.mark.parametrize("norm_type, ffn_type", COMBOS, ids=COMBO_IDS)
def test_block_gradients_reach_every_parameter_and_match_the_reference(norm_type, ffn_type):
    """Backward of ``(out · r).sum()`` (r a fixed random [b, s, d] tensor) with left padding:
    the input and every named parameter get a gradient, equal to the reference block's
    (``GRAD``). A ``.detach()``, ``.data`` or ``torch.no_grad()`` on any branch leaves a
    parameter without gradient or changes the input's."""
    mine, ref = _block_pair(norm_type, ffn_type)
    x = torch.randn(2, 5, 32)
    r = torch.randn(2, 5, 32)
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]])
    grads = []
    for block in (mine, ref):
        xi = x.clone().requires_grad_()
        block.zero_grad(set_to_none=True)
        (block(xi, attention_mask=mask)[0] * r).sum().backward()
        grads.append({"input": xi.grad, **{name: p.grad for name, p in block.named_parameters()}})
    hint = ("提示：梯度缺失或不同通常是某个分支被 .detach() / .data / torch.no_grad() 切断，或残差连接不对。",
            "hint: a missing or different gradient usually means a branch was cut by .detach() / .data / "
            "torch.no_grad(), or a residual connection is wrong.")
    mine_grads, ref_grads = grads
    assert_equal(sorted(mine_grads), sorted(ref_grads), say("有梯度的参数名", "names of the parameters with gradients"))
    for name, want in ref_grads.items():
        got = mine_grads[name]
        assert got is not None, say(f"{name} 没有梯度：计算图在哪里被切断了？",
                                    f"{name} has no gradient: where was the graph cut?") + f"\n{say(*hint)}"
        _close(got, want, f"gradient of {name} ({norm_type}, {ffn_type})", hint, **GRAD)


@pytest.mark.symbol("TransformerBlock.forward")
@pytest.mark.parametrize("norm_type, ffn_type", [("rmsnorm", "swiglu"), ("layernorm", "gelu"), ("rmsnorm", "geglu")],
                         ids=["rmsnorm-swiglu", "layernorm-gelu", "rmsnorm-geglu"])
def test_block_gradcheck_in_float64(norm_type, ffn_type):
    """A tiny float64 block (d = 8, 2 heads of hd = 4, 1 KV head, I = 12) on [1, 3, 8]:
    autograd's gradient of the output with respect to the input equals finite differences
    (``torch.autograd.gradcheck``)."""
    from torch.autograd.gradcheck import GradcheckError

    config = _config(learner("model.config"), hidden_size=8, intermediate_size=12, num_attention_heads=2,
                     num_key_value_heads=1, norm_type=norm_type, ffn_type=ffn_type)
    block = learner("model.transformer_block").TransformerBlock(config, layer_idx=0)
    block = _randomize(block, seed=3).double().eval()
    x = torch.randn(1, 3, 8, dtype=torch.float64, requires_grad=True)
    try:
        torch.autograd.gradcheck(lambda x: block(x)[0], (x,), eps=1e-6, atol=1e-5, rtol=1e-3)
    except GradcheckError as exc:
        first = "\n".join(str(exc).strip().splitlines()[:4])
        raise AssertionError(say(
            "float64 下反向传播的梯度与有限差分不一致：是否有 .detach()、原地修改或转成了 float32？\n" + first,
            "float64 backward gradients differ from finite differences: a .detach(), an in-place edit, or a cast "
            "to float32?\n" + first)) from None
