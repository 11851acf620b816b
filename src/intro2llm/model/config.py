"""Model configuration: one dataclass that every later lesson reads.

``ModelConfig`` uses the field names of Hugging Face's ``LlamaConfig``
(``hidden_size``, ``num_key_value_heads``, ``rope_theta``, ...), so a saved
``config.json`` reads like a Hugging Face one and ``interop/hf.py`` can convert
between the two by name.

Notation used by the model lessons:

- ``D = hidden_size``, ``H = num_attention_heads``, ``KV = num_key_value_heads``
- ``hd = head_dim = D // H``: every head works on ``hd`` features.
- ``g = num_key_value_groups = H // KV``: grouped-query attention (GQA) lets
  ``g`` query heads share one key/value head. ``KV == H`` is ordinary
  multi-head attention (MHA), ``KV == 1`` is multi-query attention (MQA).

Example::

    >>> cfg = ModelConfig.tiny()
    >>> cfg.head_dim, cfg.num_key_value_groups
    (16, 2)
    >>> ModelConfig.from_dict(cfg.to_dict()) == cfg
    True
    >>> ModelConfig(hidden_size=64, num_attention_heads=5)
    Traceback (most recent call last):
    ...
    ValueError: hidden_size=64 is not divisible by num_attention_heads=5: choose a head count that divides hidden_size

Validation happens in ``__post_init__``, so a bad config fails where it is
built, with a one-line message that names the field and the fix, instead of
deep inside a matrix multiplication three lessons later.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

CONFIG_NAME = "config.json"
NORM_TYPES = ("rmsnorm", "layernorm")
FFN_TYPES = ("swiglu", "geglu", "gelu")

# Fields that must be positive integers (sizes and counts).
_POSITIVE_INT_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "max_position_embeddings",
)


def _config_file(path: str | Path) -> Path:
    """``path`` itself when it names a ``.json`` file, else ``path / "config.json"``."""
    path = Path(path)
    return path if path.suffix == ".json" else path / CONFIG_NAME


def _is_number(value: object) -> bool:
    """int or float, but not bool (``True > 0`` would pass a plain comparison)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class ModelConfig:
    """Hyper-parameters of a decoder-only Transformer (Llama family).

    Defaults are Llama-2-7B's; use a preset (``tiny()``, ``small()``, ...) for
    something that trains on a laptop.
    """

    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008  # FFN width; Llama uses ~8/3 * hidden_size for SwiGLU
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None  # None -> num_attention_heads (plain MHA)
    max_position_embeddings: int = 2048
    rope_theta: float = 10000.0  # RoPE base; larger = slower-rotating, longer contexts
    rms_norm_eps: float = 1e-6
    norm_type: str = "rmsnorm"  # "rmsnorm" | "layernorm"
    ffn_type: str = "swiglu"  # "swiglu" | "geglu" | "gelu"
    attention_dropout: float = 0.0
    hidden_dropout: float = 0.0
    tie_word_embeddings: bool = False  # share embed_tokens.weight with lm_head.weight
    initializer_range: float = 0.02  # std of the normal init of linear / embedding weights
    pad_token_id: int = 0
    bos_token_id: int = 1
    eos_token_id: int = 2

    def __post_init__(self) -> None:
        """Fill ``num_key_value_heads`` and validate every field.

        Raises:
            ValueError: one line naming the field, the bad value and the fix.
        """
        # Step 1: num_key_value_heads 为 None 时表示普通多头注意力(MHA)，
        #         令 self.num_key_value_heads = self.num_attention_heads
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        # Step 2: _POSITIVE_INT_FIELDS 中的每个字段都必须是正整数(int 且不是 bool，且 > 0)，
        #         否则 raise ValueError(f"{name}={value!r} must be a positive integer")
        for name in _POSITIVE_INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        # Step 3: 多头切分要求 hidden_size % num_attention_heads == 0
        #         (每个头分到 head_dim = hidden_size // num_attention_heads 维)，不整除就报错并给出修改建议
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}: choose a head count that divides hidden_size"
            )
        # Step 4: GQA 要求 num_attention_heads % num_key_value_heads == 0
        #         (每个 KV 头服务 num_attention_heads // num_key_value_heads 个查询头)
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(
                f"num_key_value_heads={self.num_key_value_heads} does not divide "
                f"num_attention_heads={self.num_attention_heads}: pick a divisor of num_attention_heads"
            )
        # Step 5: RoPE 把向量按两维一组旋转，所以 head_dim = hidden_size // num_attention_heads 必须是偶数
        head_dim = self.hidden_size // self.num_attention_heads
        if head_dim % 2 != 0:
            raise ValueError(
                f"head_dim={head_dim} (hidden_size // num_attention_heads) must be even for RoPE: "
                "change hidden_size or num_attention_heads"
            )
        # Step 6: norm_type 必须在 NORM_TYPES 中，ffn_type 必须在 FFN_TYPES 中，否则报错并列出可选值
        if self.norm_type not in NORM_TYPES:
            raise ValueError(f"norm_type={self.norm_type!r} is not supported: use one of {NORM_TYPES}")
        if self.ffn_type not in FFN_TYPES:
            raise ValueError(f"ffn_type={self.ffn_type!r} is not supported: use one of {FFN_TYPES}")
        # Step 7: 概率类字段 attention_dropout、hidden_dropout 必须是数字(int/float，不是 bool 或 None，
        #         比如 config.json 里的 null)，且满足 0 <= p < 1 (p == 1 会把所有激活置零)
        for name in ("attention_dropout", "hidden_dropout"):
            p = getattr(self, name)
            if not _is_number(p) or not 0.0 <= p < 1.0:
                raise ValueError(f"{name}={p!r} must be a number with 0 <= {name} < 1")
        # Step 8: rms_norm_eps(防止除以 0)、rope_theta(频率的底数)、initializer_range(初始化标准差)
        #         都必须是数字且 > 0
        for name in ("rms_norm_eps", "rope_theta", "initializer_range"):
            value = getattr(self, name)
            if not _is_number(value) or not value > 0:
                raise ValueError(f"{name}={value!r} must be a number > 0")

    @property
    def head_dim(self) -> int:
        """Features per attention head: ``hidden_size // num_attention_heads``.

        Returns:
            int, e.g. 4096 // 32 = 128 for Llama-2-7B.
        """
        # Step 1: 返回 hidden_size // num_attention_heads (整除，__post_init__ 已保证能整除)
        return self.hidden_size // self.num_attention_heads

    @property
    def num_key_value_groups(self) -> int:
        """Query heads per key/value head: ``num_attention_heads // num_key_value_heads``.

        Returns:
            int: 1 for MHA, ``num_attention_heads`` for MQA, e.g. 32 // 8 = 4 for Llama-3-8B.
        """
        # Step 1: 返回 num_attention_heads // num_key_value_heads (GQA 中每个 KV 头被多少个查询头共享)
        return self.num_attention_heads // self.num_key_value_heads

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain, JSON-serialisable dict (derived properties excluded).

        Returns:
            dict mapping each field name (in declaration order) to its value.
        """
        # Step 1: 用 dataclasses.asdict(self) 得到 {字段名: 值}；只包含字段，
        #         不包含 head_dim 这类派生属性(它们可以从字段算出来，存下来反而可能不一致)
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build a config from a dict such as ``to_dict()`` returns.

        Args:
            data: field name -> value; missing fields take their defaults.
        Returns:
            a validated ``ModelConfig``.
        Raises:
            ValueError: for keys that are not fields (they are listed, with the valid names).
        """
        # Step 1: 合法字段名 valid = [f.name for f in dataclasses.fields(cls)]
        valid = [f.name for f in fields(cls)]
        # Step 2: data 中不在 valid 里的键(拼写错误最常见)要报 ValueError，
        #         消息里列出这些未知键以及全部合法字段名，方便用户改正
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ValueError(f"unknown config keys {unknown}: valid keys are {valid}")
        # Step 3: return cls(**data)；缺失的字段用默认值，构造时 __post_init__ 会自动完成校验
        return cls(**data)

    def save(self, path: str | Path) -> Path:
        """Write the config as JSON (indent 2, sorted keys).

        Args:
            path: a directory (``path/config.json`` is written, the directory is
                created) or a file path ending in ``.json``.
        Returns:
            the path of the file written.
        """
        # Step 1: 确定文件路径：path 以 ".json" 结尾就直接用它，否则写到 path / "config.json"
        #         (与 Hugging Face 的目录布局一致)；用 mkdir(parents=True, exist_ok=True) 创建父目录
        file = _config_file(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        # Step 2: 写入 json.dumps(self.to_dict(), indent=2, sort_keys=True)(末尾加换行)，
        #         返回写入的文件路径
        file.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return file

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        """Read a config written by ``save``.

        Args:
            path: a directory holding ``config.json`` or the JSON file itself.
        Returns:
            the validated ``ModelConfig``.
        Raises:
            FileNotFoundError: no such file (the message gives the path).
            ValueError: the file is not valid JSON or not a JSON object (the message names the file).
        """
        # Step 1: 与 save 相同的规则确定文件路径；文件不存在时 raise FileNotFoundError，消息中给出完整路径
        file = _config_file(path)
        if not file.is_file():
            raise FileNotFoundError(f"config file not found: {file} (save one with ModelConfig.save(path))")
        # Step 2: json.loads 读取；json.JSONDecodeError 或顶层不是 dict 时 raise ValueError，消息中写出文件名
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{file} is not valid JSON ({err}); re-create it with ModelConfig.save") from None
        if not isinstance(data, dict):
            raise ValueError(f"{file} must hold a JSON object of config fields; re-create it with ModelConfig.save")
        # Step 3: 交给 cls.from_dict(data)，由它检查未知键并校验取值
        return cls.from_dict(data)

    # ----- presets -------------------------------------------------------------------------

    @classmethod
    def tiny(cls, **overrides: Any) -> ModelConfig:
        """~0.16M parameters with GQA (4 query heads, 2 KV heads): for tests and CPU demos."""
        params: dict[str, Any] = dict(
            vocab_size=512,
            hidden_size=64,
            intermediate_size=172,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
        )
        return cls(**{**params, **overrides})

    @classmethod
    def small(cls, **overrides: Any) -> ModelConfig:
        """~27M parameters (tied embeddings), GQA 8 query / 4 KV heads, head_dim 64.

        Sized for the course's pretraining run on a single GPU (or slowly on a CPU).
        """
        params: dict[str, Any] = dict(
            vocab_size=8192,
            hidden_size=512,
            intermediate_size=1376,  # ~8/3 * 512, rounded to a multiple of 32
            num_hidden_layers=8,
            num_attention_heads=8,
            num_key_value_heads=4,
            max_position_embeddings=1024,
            tie_word_embeddings=True,
        )
        return cls(**{**params, **overrides})

    @classmethod
    def llama2_7b(cls, **overrides: Any) -> ModelConfig:
        """Llama-2-7B (the shapes of meta-llama/Llama-2-7b-hf's config.json)."""
        params: dict[str, Any] = dict(
            vocab_size=32000,
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            max_position_embeddings=4096,
            rms_norm_eps=1e-5,
        )
        return cls(**{**params, **overrides})

    @classmethod
    def llama3_8b(cls, **overrides: Any) -> ModelConfig:
        """Llama-3-8B: 128K vocabulary, GQA with 8 KV heads, rope_theta 500000."""
        params: dict[str, Any] = dict(
            vocab_size=128256,
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            max_position_embeddings=8192,
            rope_theta=500000.0,
            rms_norm_eps=1e-5,
            bos_token_id=128000,
            eos_token_id=128001,
        )
        return cls(**{**params, **overrides})
