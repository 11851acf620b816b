"""The tokenizer interface: special tokens, batching with padding, save / load.

A tokenizer turns text into a list of integer ids and back. This base class
holds what every tokenizer shares and leaves the algorithm to subclasses (the
minbpe pattern):

- ``encode`` / ``decode`` / ``vocab_size`` raise ``NotImplementedError`` here;
  ``BPETokenizer`` and ``ByteLevelTokenizer`` implement them.
- Special tokens come first in the vocabulary. The first four name the roles
  every model needs, in this order: padding, begin-of-sequence,
  end-of-sequence, unknown. With the defaults::

      <pad> -> 0    <bos> -> 1    <eos> -> 2    <unk> -> 3

- ``encode_batch`` turns a list of texts into a rectangle of ids plus an
  attention mask (1 = real token, 0 = padding)::

      texts      = ["hi", "hello"]        (say "hi" -> [7, 8], "hello" -> [7, 9, 10])
      input_ids  = [[7, 8, 0], [7, 9, 10]]   padding_side="right", pad id 0
      attention  = [[1, 1, 0], [1, 1, 1]]

- ``save`` writes one JSON file ``{"format_version": 1, "type": ..., "special_tokens": [...],
  **get_state()}``; ``BaseTokenizer.load`` reads any registered subclass back
  (it dispatches on ``"type"``), ``SomeTokenizer.load`` insists on that class.

Subclasses register themselves by setting the class attribute ``tokenizer_type``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

DEFAULT_SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
TOKENIZER_NAME = "tokenizer.json"
FORMAT_VERSION = 1


def _tokenizer_file(path: str | Path) -> Path:
    """``path`` itself when it names a ``.json`` file, else ``path / "tokenizer.json"``."""
    path = Path(path)
    return path if path.suffix == ".json" else path / TOKENIZER_NAME


class BaseTokenizer:
    """Special tokens, batching, persistence; subclasses supply the algorithm."""

    #: name written as ``"type"`` in saved files; each subclass sets its own.
    tokenizer_type: ClassVar[str] = "base"
    #: ``tokenizer_type`` -> class, filled by ``__init_subclass__``.
    _registry: ClassVar[dict[str, type[BaseTokenizer]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A subclass that does not name itself is registered under its class name.
        if "tokenizer_type" not in cls.__dict__:
            cls.tokenizer_type = cls.__name__
        BaseTokenizer._registry[cls.tokenizer_type] = cls

    def __init__(self, special_tokens: Sequence[str] | None = None) -> None:
        """Set up the special tokens, which take ids ``0 .. len(special_tokens) - 1``.

        Args:
            special_tokens: token strings, at least four; the first four are the
                pad, bos, eos and unk tokens. ``None`` -> ``DEFAULT_SPECIAL_TOKENS``.
        Raises:
            ValueError: fewer than four tokens, duplicates, or empty / non-string tokens.
        """
        # Step 1: special_tokens 为 None 时使用 DEFAULT_SPECIAL_TOKENS；转成 list 方便后面按位置取用
        tokens = list(DEFAULT_SPECIAL_TOKENS if special_tokens is None else special_tokens)
        # Step 2: 校验：每个元素都必须是非空字符串；至少 4 个(前四个依次是 pad / bos / eos / unk)；
        #         不能重复(重复会让同一个字符串对应两个 id)。不满足就 raise ValueError 并说明怎么改
        if any(not isinstance(tok, str) or not tok for tok in tokens):
            raise ValueError(f"special tokens must be non-empty strings, got {tokens!r}")
        if len(tokens) < 4:
            raise ValueError(
                f"need at least 4 special tokens (pad, bos, eos, unk in this order), got {tokens!r}"
            )
        if len(set(tokens)) != len(tokens):
            raise ValueError(f"special tokens must be unique, got {tokens!r}")
        # Step 3: 按顺序编号：self.special_tokens = {tok: i for i, tok in enumerate(tokens)}，
        #         特殊 token 永远占据词表最前面的 id 0 .. len(tokens)-1
        self.special_tokens: dict[str, int] = {tok: i for i, tok in enumerate(tokens)}
        # Step 4: 记录四个角色：self.pad_token, self.bos_token, self.eos_token, self.unk_token = tokens[:4]，
        #         以及对应的 self.pad_token_id = 0, bos_token_id = 1, eos_token_id = 2, unk_token_id = 3
        self.pad_token, self.bos_token, self.eos_token, self.unk_token = tokens[:4]
        self.pad_token_id = self.special_tokens[self.pad_token]
        self.bos_token_id = self.special_tokens[self.bos_token]
        self.eos_token_id = self.special_tokens[self.eos_token]
        self.unk_token_id = self.special_tokens[self.unk_token]

    # ----- the algorithm: subclasses implement these -------------------------------------

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Text -> ids. ``add_special_tokens=True`` wraps them in ``bos ... eos``."""
        raise NotImplementedError(f"{type(self).__name__} must implement encode")

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Ids -> text; ``skip_special_tokens=True`` drops the special tokens."""
        raise NotImplementedError(f"{type(self).__name__} must implement decode")

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included."""
        raise NotImplementedError(f"{type(self).__name__} must implement vocab_size")

    def get_state(self) -> dict[str, Any]:
        """What ``save`` stores besides the special tokens (JSON-serialisable)."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_state")

    @classmethod
    def from_state(cls, special_tokens: Sequence[str], state: dict[str, Any]) -> BaseTokenizer:
        """Rebuild a tokenizer from ``special_tokens`` and a ``get_state()`` dict."""
        raise NotImplementedError(f"{cls.__name__} must implement from_state")

    # ----- shared helpers ----------------------------------------------------------------

    def split_special_tokens(self, text: str) -> list[str]:
        """Cut ``text`` so that every special-token string is a piece of its own.

        Longer specials win over their prefixes; pieces concatenate back to ``text``::

            >>> BaseTokenizer().split_special_tokens("hi<eos>there<pad>")
            ['hi', '<eos>', 'there', '<pad>']

        A piece is a special token exactly when ``piece in self.special_tokens``.
        """
        key = tuple(self.special_tokens)
        if getattr(self, "_special_key", None) != key:
            alternatives = sorted(key, key=len, reverse=True)
            self._special_re = re.compile("(" + "|".join(map(re.escape, alternatives)) + ")")
            self._special_key = key
        return [piece for piece in self._special_re.split(text) if piece]

    # ----- batching and persistence (targets) --------------------------------------------

    def encode_batch(
        self,
        texts: Sequence[str],
        padding: bool | str = True,
        max_length: int | None = None,
        truncation: bool = False,
        add_special_tokens: bool = False,
        padding_side: str = "right",
        return_tensors: str | None = None,
    ) -> dict[str, Any]:
        """Encode several texts into a padded batch with an attention mask.

        Args:
            texts: list of strings, length ``batch``.
            padding: ``True`` / ``"longest"``: pad to the longest sequence;
                ``"max_length"``: pad to ``max_length``; ``False``: no padding (ragged lists).
            max_length: target length for ``padding="max_length"`` and for truncation.
            truncation: cut every sequence to ``max_length`` tokens (keeps the first ones).
            add_special_tokens: wrap each sequence in ``bos ... eos`` before truncating.
            padding_side: ``"right"`` (pads after the tokens) or ``"left"`` (pads before,
                what generation with a batch needs).
            return_tensors: ``None`` -> lists of lists; ``"pt"`` -> ``torch.long`` tensors.
        Returns:
            ``{"input_ids": [batch, seq_len], "attention_mask": [batch, seq_len]}``,
            mask 1 for real tokens and 0 for padding (``pad_token_id`` in ``input_ids``).
        Raises:
            ValueError: bad option values, truncation or ``padding="max_length"`` without
                ``max_length``, a sequence longer than ``max_length`` when padding to it
                without truncation, or ``return_tensors="pt"`` with ``padding=False``.
        """
        # Step 1: 检查参数：texts 不能是单个 str(应传 list)；padding 取值只能是 True/False/"longest"/"max_length"；
        #         padding_side 只能是 "left"/"right"；return_tensors 只能是 None/"pt"；
        #         truncation=True 或 padding="max_length" 时必须给 max_length(正整数)；
        #         padding=False 时不能 return_tensors="pt"(长度不齐无法组成矩阵)。都用 ValueError 说明改法
        if isinstance(texts, str):
            raise ValueError("encode_batch expects a list of strings: use encode(text) or pass [text]")
        if padding not in (True, False, "longest", "max_length"):
            raise ValueError(f"padding={padding!r} is invalid: use True, False, 'longest' or 'max_length'")
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side={padding_side!r} is invalid: use 'left' or 'right'")
        if return_tensors not in (None, "pt"):
            raise ValueError(f"return_tensors={return_tensors!r} is invalid: use None or 'pt'")
        if (truncation or padding == "max_length") and max_length is None:
            raise ValueError("truncation=True and padding='max_length' need max_length=<int>")
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                       or max_length <= 0):
            raise ValueError(f"max_length={max_length!r} must be a positive integer")
        if padding is False and return_tensors is not None:
            raise ValueError("return_tensors='pt' needs equal lengths: use padding=True or 'max_length'")
        # Step 2: 逐条编码 ids = self.encode(text, add_special_tokens=add_special_tokens)；
        #         truncation=True 时保留前 max_length 个：ids = ids[:max_length]
        batch = [self.encode(text, add_special_tokens=add_special_tokens) for text in texts]
        if truncation:
            batch = [ids[:max_length] for ids in batch]
        # Step 3: 确定目标长度：padding=False 时不填充，attention_mask 全为 1，直接返回两个 list；
        #         padding 为 True/"longest" 时 target = 最长序列的长度(空 batch 为 0)；
        #         padding="max_length" 时 target = max_length，若某条序列仍比它长(未截断)则 ValueError 提示 truncation=True
        if padding is False:
            return {"input_ids": batch, "attention_mask": [[1] * len(ids) for ids in batch]}
        if padding == "max_length":
            target = max_length
            for i, ids in enumerate(batch):
                if len(ids) > target:
                    raise ValueError(
                        f"text {i} has {len(ids)} tokens > max_length={max_length}: pass truncation=True"
                    )
        else:
            target = max((len(ids) for ids in batch), default=0)
        # Step 4: 填充：n_pad = target - len(ids)，pad = [self.pad_token_id] * n_pad，mask = [1] * len(ids)；
        #         padding_side="right" 时 ids + pad、mask + [0] * n_pad；"left" 时 pad + ids、[0] * n_pad + mask
        input_ids, attention_mask = [], []
        for ids in batch:
            n_pad = target - len(ids)
            pad, real, zeros = [self.pad_token_id] * n_pad, [1] * len(ids), [0] * n_pad
            if padding_side == "right":
                input_ids.append(ids + pad)
                attention_mask.append(real + zeros)
            else:
                input_ids.append(pad + ids)
                attention_mask.append(zeros + real)
        # Step 5: return_tensors="pt" 时在函数内部 import torch(第 1 课不依赖 torch)，
        #         转成 torch.tensor(..., dtype=torch.long)，形状 [batch, target]；否则返回 list
        if return_tensors == "pt":
            import torch

            shape = (len(input_ids), target)
            return {
                "input_ids": torch.tensor(input_ids, dtype=torch.long).reshape(shape),
                "attention_mask": torch.tensor(attention_mask, dtype=torch.long).reshape(shape),
            }
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def save(self, path: str | Path) -> Path:
        """Write the tokenizer to one JSON file.

        Args:
            path: a directory (``path/tokenizer.json`` is written, the directory is
                created) or a file path ending in ``.json``.
        Returns:
            the path of the file written.
        """
        # Step 1: 确定文件：path 以 ".json" 结尾就用它，否则写到 path / "tokenizer.json"；创建父目录
        file = _tokenizer_file(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        # Step 2: 组装内容 {"format_version": 1, "type": self.tokenizer_type,
        #         "special_tokens": list(self.special_tokens), **self.get_state()}；
        #         "type" 让 load 知道该用哪个子类来还原
        data = {
            "format_version": FORMAT_VERSION,
            "type": self.tokenizer_type,
            "special_tokens": list(self.special_tokens),
            **self.get_state(),
        }
        # Step 3: 以 UTF-8 写入 json.dumps(data, ensure_ascii=False, indent=2)(中文 token 保持可读)，返回文件路径
        file.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return file

    @classmethod
    def load(cls, path: str | Path) -> BaseTokenizer:
        """Read a tokenizer written by ``save``.

        ``BaseTokenizer.load`` returns whatever subclass the file names;
        ``BPETokenizer.load`` etc. also check that the file holds that class (or a subclass).

        Args:
            path: a directory holding ``tokenizer.json`` or the JSON file itself.
        Returns:
            the tokenizer, ready to encode.
        Raises:
            FileNotFoundError: no such file.
            ValueError: not JSON, wrong format version, unknown or mismatched ``"type"``.
        """
        # Step 1: 与 save 相同的规则确定文件；不存在就 raise FileNotFoundError(消息中给出路径)
        file = _tokenizer_file(path)
        if not file.is_file():
            raise FileNotFoundError(f"tokenizer file not found: {file} (save one with tokenizer.save(path))")
        # Step 2: 解析 JSON；json.JSONDecodeError 或顶层不是 dict 时 raise ValueError(写出文件名)；
        #         data.get("format_version") != 1 时也报 ValueError
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{file} is not valid JSON ({err}); re-create it with tokenizer.save") from None
        if not isinstance(data, dict):
            raise ValueError(f"{file} must hold a JSON object; re-create it with tokenizer.save")
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{file} has format_version={data.get('format_version')!r}, expected {FORMAT_VERSION}: "
                "re-create it with tokenizer.save"
            )
        # Step 3: 按 data["type"] 在注册表 BaseTokenizer._registry 中查找子类 klass；
        #         找不到就 ValueError 并列出已知类型；若 klass 不是 cls 的子类
        #         (例如用 ByteLevelTokenizer.load 读 BPE 文件)也 ValueError，提示改用 BaseTokenizer.load
        type_name = data.get("type")
        klass = BaseTokenizer._registry.get(type_name) if isinstance(type_name, str) else None
        if klass is None:
            raise ValueError(
                f"{file} has unknown tokenizer type {type_name!r}: known types are "
                f"{sorted(BaseTokenizer._registry)}"
            )
        if not issubclass(klass, cls):
            raise ValueError(
                f"{file} holds a {klass.__name__}, not a {cls.__name__}: load it with BaseTokenizer.load"
            )
        # Step 4: 其余键就是子类 get_state() 存下的状态：
        #         state = data 去掉 "format_version" / "type" / "special_tokens" 三个键，
        #         return klass.from_state(data["special_tokens"], state)
        state = {k: v for k, v in data.items() if k not in ("format_version", "type", "special_tokens")}
        return klass.from_state(data.get("special_tokens", DEFAULT_SPECIAL_TOKENS), state)
