# ruff: noqa: F821, B905
"""Wrong implementations of lesson 01's targets that learners really write.

``llm-course author verify lesson01`` splices each function below into a copy of the
reference in place of its symbol (so names such as ``Counter``, ``merge_pair`` or
``_config_file`` resolve in that module) and checks that some lesson test fails.
Each body is the reference with one bug, so the test that catches it is the one
about that bug.
"""

from __future__ import annotations

from intro2llm_cli.mistakes import mistake

# ============================================================ model/config.py


@mistake("model/config.py", "ModelConfig.__post_init__", "validates before filling num_key_value_heads=None (None % ... raises TypeError)")
def post_init_validates_before_filling_kv(self) -> None:
    for name in _POSITIVE_INT_FIELDS:
        value = getattr(self, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise ValueError(f"{name}={value!r} must be a positive integer")
    if self.hidden_size % self.num_attention_heads != 0:
        raise ValueError(f"hidden_size={self.hidden_size} is not divisible by num_attention_heads={self.num_attention_heads}")
    if self.num_attention_heads % self.num_key_value_heads != 0:
        raise ValueError(f"num_key_value_heads={self.num_key_value_heads} does not divide num_attention_heads")
    if self.num_key_value_heads is None:
        self.num_key_value_heads = self.num_attention_heads
    if (self.hidden_size // self.num_attention_heads) % 2 != 0:
        raise ValueError("head_dim must be even")
    if self.norm_type not in NORM_TYPES:
        raise ValueError(f"norm_type={self.norm_type!r} is not supported")
    if self.ffn_type not in FFN_TYPES:
        raise ValueError(f"ffn_type={self.ffn_type!r} is not supported")
    for name in ("attention_dropout", "hidden_dropout"):
        if not 0.0 <= getattr(self, name) < 1.0:
            raise ValueError(f"{name} must satisfy 0 <= {name} < 1")
    for name in ("rms_norm_eps", "rope_theta", "initializer_range"):
        if not getattr(self, name) > 0:
            raise ValueError(f"{name} must be > 0")


@mistake("model/config.py", "ModelConfig.__post_init__", "does not check num_attention_heads % num_key_value_heads == 0")
def post_init_skips_kv_divisibility(self) -> None:
    if self.num_key_value_heads is None:
        self.num_key_value_heads = self.num_attention_heads
    for name in _POSITIVE_INT_FIELDS:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name}={value!r} must be a positive integer")
    if self.hidden_size % self.num_attention_heads != 0:
        raise ValueError(f"hidden_size={self.hidden_size} is not divisible by num_attention_heads={self.num_attention_heads}")
    if (self.hidden_size // self.num_attention_heads) % 2 != 0:
        raise ValueError("head_dim (hidden_size // num_attention_heads) must be even")
    if self.norm_type not in NORM_TYPES:
        raise ValueError(f"norm_type={self.norm_type!r} is not supported")
    if self.ffn_type not in FFN_TYPES:
        raise ValueError(f"ffn_type={self.ffn_type!r} is not supported")
    for name in ("attention_dropout", "hidden_dropout"):
        if not 0.0 <= getattr(self, name) < 1.0:
            raise ValueError(f"{name} must satisfy 0 <= {name} < 1")
    for name in ("rms_norm_eps", "rope_theta", "initializer_range"):
        if not getattr(self, name) > 0:
            raise ValueError(f"{name} must be > 0")


@mistake("model/config.py", "ModelConfig.__post_init__", "dropout allowed up to and including 1 (p <= 1)")
def post_init_dropout_one_allowed(self) -> None:
    if self.num_key_value_heads is None:
        self.num_key_value_heads = self.num_attention_heads
    for name in _POSITIVE_INT_FIELDS:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name}={value!r} must be a positive integer")
    if self.hidden_size % self.num_attention_heads != 0:
        raise ValueError(f"hidden_size={self.hidden_size} is not divisible by num_attention_heads={self.num_attention_heads}")
    if self.num_attention_heads % self.num_key_value_heads != 0:
        raise ValueError(f"num_key_value_heads={self.num_key_value_heads} does not divide num_attention_heads")
    if (self.hidden_size // self.num_attention_heads) % 2 != 0:
        raise ValueError("head_dim (hidden_size // num_attention_heads) must be even")
    if self.norm_type not in NORM_TYPES:
        raise ValueError(f"norm_type={self.norm_type!r} is not supported")
    if self.ffn_type not in FFN_TYPES:
        raise ValueError(f"ffn_type={self.ffn_type!r} is not supported")
    for name in ("attention_dropout", "hidden_dropout"):
        if not 0.0 <= getattr(self, name) <= 1.0:
            raise ValueError(f"{name} must satisfy 0 <= {name} <= 1")
    for name in ("rms_norm_eps", "rope_theta", "initializer_range"):
        if not getattr(self, name) > 0:
            raise ValueError(f"{name} must be > 0")


@mistake("model/config.py", "ModelConfig.head_dim", "true division: head_dim is the float 16.0, not the int 16")
def head_dim_true_division(self) -> int:
    return self.hidden_size / self.num_attention_heads


@mistake("model/config.py", "ModelConfig.num_key_value_groups", "ratio inverted: num_key_value_heads // num_attention_heads")
def kv_groups_inverted(self) -> int:
    return self.num_key_value_heads // self.num_attention_heads


@mistake("model/config.py", "ModelConfig.to_dict", "derived properties head_dim / num_key_value_groups written into the dict")
def to_dict_includes_derived(self):
    data = asdict(self)
    data["head_dim"] = self.head_dim
    data["num_key_value_groups"] = self.num_key_value_groups
    return data


@mistake("model/config.py", "ModelConfig.from_dict", "unknown keys silently dropped (a typo gives a default silently)")
def from_dict_ignores_unknown_keys(cls, data):
    valid = {f.name for f in fields(cls)}
    return cls(**{key: value for key, value in data.items() if key in valid})


@mistake("model/config.py", "ModelConfig.save", "writes the JSON to the directory path itself instead of path/config.json")
def save_writes_to_the_directory_path_itself(self, path):
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return file


@mistake("model/config.py", "ModelConfig.save", "keys left in field order (no sort_keys=True)")
def save_without_sorted_keys(self, path):
    file = _config_file(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
    return file


@mistake("model/config.py", "ModelConfig.load", "a broken file raises a bare JSONDecodeError that does not say which file")
def load_without_naming_the_file(cls, path):
    file = _config_file(path)
    if not file.is_file():
        raise FileNotFoundError(f"config file not found: {file}")
    return cls.from_dict(json.loads(file.read_text(encoding="utf-8")))


# ============================================================ tokenizer/base_tokenizer.py


@mistake("tokenizer/base_tokenizer.py", "BaseTokenizer.__init__", "duplicate special tokens accepted (one string, two ids)")
def base_init_allows_duplicates(self, special_tokens=None) -> None:
    tokens = list(DEFAULT_SPECIAL_TOKENS if special_tokens is None else special_tokens)
    if len(tokens) < 4:
        raise ValueError("need at least 4 special tokens")
    self.special_tokens = {tok: i for i, tok in enumerate(tokens)}
    self.pad_token, self.bos_token, self.eos_token, self.unk_token = tokens[:4]
    self.pad_token_id, self.bos_token_id, self.eos_token_id, self.unk_token_id = 0, 1, 2, 3



@mistake("tokenizer/base_tokenizer.py", "BaseTokenizer.encode_batch", "padding_side honoured backwards (pads left when asked for right)")
def encode_batch_pads_on_the_wrong_side(self, texts, padding=True, max_length=None, truncation=False,
                                        add_special_tokens=False, padding_side="right", return_tensors=None):
    if isinstance(texts, str):
        raise ValueError("encode_batch expects a list of strings")
    if padding not in (True, False, "longest", "max_length") or padding_side not in ("left", "right"):
        raise ValueError("bad padding or padding_side")
    if return_tensors not in (None, "pt") or (padding is False and return_tensors is not None):
        raise ValueError("bad return_tensors")
    if (truncation or padding == "max_length") and max_length is None:
        raise ValueError("max_length needed")
    batch = [self.encode(text, add_special_tokens=add_special_tokens) for text in texts]
    if truncation:
        batch = [ids[:max_length] for ids in batch]
    if padding is False:
        return {"input_ids": batch, "attention_mask": [[1] * len(ids) for ids in batch]}
    target = max_length if padding == "max_length" else max((len(ids) for ids in batch), default=0)
    if any(len(ids) > target for ids in batch):
        raise ValueError("a text is longer than max_length: pass truncation=True")
    input_ids, attention_mask = [], []
    for ids in batch:
        n_pad = target - len(ids)
        if padding_side == "left":
            input_ids.append(ids + [self.pad_token_id] * n_pad)
            attention_mask.append([1] * len(ids) + [0] * n_pad)
        else:
            input_ids.append([self.pad_token_id] * n_pad + ids)
            attention_mask.append([0] * n_pad + [1] * len(ids))
    if return_tensors == "pt":
        import torch

        shape = (len(input_ids), target)
        return {"input_ids": torch.tensor(input_ids, dtype=torch.long).reshape(shape),
                "attention_mask": torch.tensor(attention_mask, dtype=torch.long).reshape(shape)}
    return {"input_ids": input_ids, "attention_mask": attention_mask}


@mistake("tokenizer/base_tokenizer.py", "BaseTokenizer.encode_batch", "attention mask inverted (0 for tokens, 1 for padding)")
def encode_batch_mask_inverted(self, texts, padding=True, max_length=None, truncation=False,
                               add_special_tokens=False, padding_side="right", return_tensors=None):
    if isinstance(texts, str):
        raise ValueError("encode_batch expects a list of strings")
    if padding not in (True, False, "longest", "max_length") or padding_side not in ("left", "right"):
        raise ValueError("bad padding or padding_side")
    if return_tensors not in (None, "pt") or (padding is False and return_tensors is not None):
        raise ValueError("bad return_tensors")
    if (truncation or padding == "max_length") and max_length is None:
        raise ValueError("max_length needed")
    batch = [self.encode(text, add_special_tokens=add_special_tokens) for text in texts]
    if truncation:
        batch = [ids[:max_length] for ids in batch]
    if padding is False:
        return {"input_ids": batch, "attention_mask": [[0] * len(ids) for ids in batch]}
    target = max_length if padding == "max_length" else max((len(ids) for ids in batch), default=0)
    if any(len(ids) > target for ids in batch):
        raise ValueError("a text is longer than max_length: pass truncation=True")
    input_ids, attention_mask = [], []
    for ids in batch:
        n_pad = target - len(ids)
        if padding_side == "right":
            input_ids.append(ids + [self.pad_token_id] * n_pad)
            attention_mask.append([0] * len(ids) + [1] * n_pad)
        else:
            input_ids.append([self.pad_token_id] * n_pad + ids)
            attention_mask.append([1] * n_pad + [0] * len(ids))
    if return_tensors == "pt":
        import torch

        shape = (len(input_ids), target)
        return {"input_ids": torch.tensor(input_ids, dtype=torch.long).reshape(shape),
                "attention_mask": torch.tensor(attention_mask, dtype=torch.long).reshape(shape)}
    return {"input_ids": input_ids, "attention_mask": attention_mask}


@mistake("tokenizer/base_tokenizer.py", "BaseTokenizer.encode_batch", "truncation keeps the last max_length ids instead of the first")
def encode_batch_truncation_keeps_the_end(self, texts, padding=True, max_length=None, truncation=False,
                                          add_special_tokens=False, padding_side="right", return_tensors=None):
    if isinstance(texts, str):
        raise ValueError("encode_batch expects a list of strings")
    if padding not in (True, False, "longest", "max_length") or padding_side not in ("left", "right"):
        raise ValueError("bad padding or padding_side")
    if return_tensors not in (None, "pt") or (padding is False and return_tensors is not None):
        raise ValueError("bad return_tensors")
    if (truncation or padding == "max_length") and max_length is None:
        raise ValueError("max_length needed")
    batch = [self.encode(text, add_special_tokens=add_special_tokens) for text in texts]
    if truncation:
        batch = [ids[-max_length:] for ids in batch]
    if padding is False:
        return {"input_ids": batch, "attention_mask": [[1] * len(ids) for ids in batch]}
    target = max_length if padding == "max_length" else max((len(ids) for ids in batch), default=0)
    if any(len(ids) > target for ids in batch):
        raise ValueError("a text is longer than max_length: pass truncation=True")
    input_ids, attention_mask = [], []
    for ids in batch:
        n_pad = target - len(ids)
        if padding_side == "right":
            input_ids.append(ids + [self.pad_token_id] * n_pad)
            attention_mask.append([1] * len(ids) + [0] * n_pad)
        else:
            input_ids.append([self.pad_token_id] * n_pad + ids)
            attention_mask.append([0] * n_pad + [1] * len(ids))
    if return_tensors == "pt":
        import torch

        shape = (len(input_ids), target)
        return {"input_ids": torch.tensor(input_ids, dtype=torch.long).reshape(shape),
                "attention_mask": torch.tensor(attention_mask, dtype=torch.long).reshape(shape)}
    return {"input_ids": input_ids, "attention_mask": attention_mask}


@mistake("tokenizer/base_tokenizer.py", "BaseTokenizer.encode_batch", "bos/eos added after truncating, so rows exceed max_length")
def encode_batch_adds_specials_after_truncating(self, texts, padding=True, max_length=None, truncation=False,
                                                add_special_tokens=False, padding_side="right", return_tensors=None):
    if isinstance(texts, str):
        raise ValueError("encode_batch expects a list of strings")
    if padding not in (True, False, "longest", "max_length") or padding_side not in ("left", "right"):
        raise ValueError("bad padding or padding_side")
    if return_tensors not in (None, "pt") or (padding is False and return_tensors is not None):
        raise ValueError("bad return_tensors")
    if (truncation or padding == "max_length") and max_length is None:
        raise ValueError("max_length needed")
    batch = [self.encode(text) for text in texts]
    if truncation:
        batch = [ids[:max_length] for ids in batch]
    if add_special_tokens:
        batch = [[self.bos_token_id, *ids, self.eos_token_id] for ids in batch]
    if padding is False:
        return {"input_ids": batch, "attention_mask": [[1] * len(ids) for ids in batch]}
    target = max_length if padding == "max_length" else max((len(ids) for ids in batch), default=0)
    if any(len(ids) > target for ids in batch):
        raise ValueError("a text is longer than max_length: pass truncation=True")
    input_ids, attention_mask = [], []
    for ids in batch:
        n_pad = target - len(ids)
        if padding_side == "right":
            input_ids.append(ids + [self.pad_token_id] * n_pad)
            attention_mask.append([1] * len(ids) + [0] * n_pad)
        else:
            input_ids.append([self.pad_token_id] * n_pad + ids)
            attention_mask.append([0] * n_pad + [1] * len(ids))
    if return_tensors == "pt":
        import torch

        shape = (len(input_ids), target)
        return {"input_ids": torch.tensor(input_ids, dtype=torch.long).reshape(shape),
                "attention_mask": torch.tensor(attention_mask, dtype=torch.long).reshape(shape)}
    return {"input_ids": input_ids, "attention_mask": attention_mask}


@mistake("tokenizer/base_tokenizer.py", "BaseTokenizer.save", "json.dumps without ensure_ascii=False: Chinese tokens saved as \\uXXXX escapes")
def save_escapes_non_ascii(self, path):
    file = _tokenizer_file(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    data = {"format_version": FORMAT_VERSION, "type": self.tokenizer_type,
            "special_tokens": list(self.special_tokens), **self.get_state()}
    file.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return file


@mistake("tokenizer/base_tokenizer.py", "BaseTokenizer.load", "no dispatch on \"type\": cls.from_state is called (BaseTokenizer.load cannot build anything)")
def load_ignores_the_type(cls, path):
    file = _tokenizer_file(path)
    if not file.is_file():
        raise FileNotFoundError(f"tokenizer file not found: {file}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{file} is not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{file} is not a tokenizer file of format_version {FORMAT_VERSION}")
    state = {k: v for k, v in data.items() if k not in ("format_version", "type", "special_tokens")}
    return cls.from_state(data["special_tokens"], state)


@mistake("tokenizer/base_tokenizer.py", "BaseTokenizer.load", "format_version never checked (a future format is read as if it were version 1)")
def load_skips_format_version(cls, path):
    file = _tokenizer_file(path)
    if not file.is_file():
        raise FileNotFoundError(f"tokenizer file not found: {file}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{file} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{file} must hold a JSON object")
    klass = BaseTokenizer._registry.get(data.get("type"))
    if klass is None:
        raise ValueError(f"{file} has unknown tokenizer type {data.get('type')!r}")
    if not issubclass(klass, cls):
        raise ValueError(f"{file} holds a {klass.__name__}, not a {cls.__name__}")
    state = {k: v for k, v in data.items() if k not in ("format_version", "type", "special_tokens")}
    return klass.from_state(data["special_tokens"], state)


# ============================================================ tokenizer/bpe_tokenizer.py


@mistake("tokenizer/bpe_tokenizer.py", "pre_tokenize", "str.split(): whitespace is lost, so decode(encode(t)) != t")
def pre_tokenize_with_str_split(text):
    return text.split()


@mistake("tokenizer/bpe_tokenizer.py", "pre_tokenize", "whitespace attached after the word (\\S+\\s*) instead of before it")
def pre_tokenize_trailing_whitespace(text):
    return re.findall(r"\S+\s*|\s+", text)


@mistake("tokenizer/bpe_tokenizer.py", "get_pair_counts", "pairs counted once per distinct word, not weighted by the word's frequency")
def get_pair_counts_unweighted(words):
    counts = Counter()
    for word in words:
        for pair in zip(word, word[1:]):
            counts[pair] += 1
    return counts


@mistake("tokenizer/bpe_tokenizer.py", "merge_pair", "overlapping matches: ('a','a','a') with ('a','a') gives ('aa','aa')")
def merge_pair_overlapping(word, pair):
    out = []
    for i in range(len(word) - 1):
        if (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
        elif not out or (word[i - 1], word[i]) != pair:
            out.append(word[i])
    if word and (len(word) < 2 or (word[-2], word[-1]) != pair):
        out.append(word[-1])
    return tuple(out)


@mistake("tokenizer/bpe_tokenizer.py", "merge_pair", "string replace on the space-joined word: matches across symbol boundaries")
def merge_pair_by_string_replace(word, pair):
    joined = " ".join(word).replace(f"{pair[0]} {pair[1]}", pair[0] + pair[1])
    return tuple(joined.split(" ")) if word else ()



@mistake("tokenizer/bpe_tokenizer.py", "BPETokenizer.train", "tie broken towards the LARGEST pair (max over (count, pair))")
def train_tie_to_largest_pair(self, texts, vocab_size, special_tokens=None, min_frequency=1, verbose=False):
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings")
    if special_tokens is not None:
        BaseTokenizer.__init__(self, special_tokens)
    word_counts = Counter()
    for text in texts:
        for piece in self.split_special_tokens(text):
            if piece not in self.special_tokens:
                word_counts.update(self.pre_tokenize(piece))
    vocab = dict(self.special_tokens)
    for symbol in self.initial_alphabet(word_counts):
        vocab.setdefault(symbol, len(vocab))
    if vocab_size < len(vocab):
        raise ValueError(f"vocab_size={vocab_size} is too small: need {len(vocab)}")
    words = {tuple(word): count for word, count in word_counts.items()}
    merges = []
    while len(vocab) < vocab_size:
        counts = get_pair_counts(words)
        if not counts:
            break
        best = max(counts, key=lambda p: (counts[p], p))
        if counts[best] < max(min_frequency, 1):
            break
        merges.append(best)
        vocab.setdefault(best[0] + best[1], len(vocab))
        words = {merge_pair(word, best): count for word, count in words.items()}
    self._set_vocab_and_merges(vocab, merges)
    return self


@mistake("tokenizer/bpe_tokenizer.py", "BPETokenizer.train", "tie broken by first occurrence (Counter.most_common(1))")
def train_tie_to_first_occurrence(self, texts, vocab_size, special_tokens=None, min_frequency=1, verbose=False):
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings")
    if special_tokens is not None:
        BaseTokenizer.__init__(self, special_tokens)
    word_counts = Counter()
    for text in texts:
        for piece in self.split_special_tokens(text):
            if piece not in self.special_tokens:
                word_counts.update(self.pre_tokenize(piece))
    vocab = dict(self.special_tokens)
    for symbol in self.initial_alphabet(word_counts):
        vocab.setdefault(symbol, len(vocab))
    if vocab_size < len(vocab):
        raise ValueError(f"vocab_size={vocab_size} is too small: need {len(vocab)}")
    words = {tuple(word): count for word, count in word_counts.items()}
    merges = []
    while len(vocab) < vocab_size:
        counts = get_pair_counts(words)
        if not counts:
            break
        best, count = counts.most_common(1)[0]
        if count < max(min_frequency, 1):
            break
        merges.append(best)
        vocab.setdefault(best[0] + best[1], len(vocab))
        words = {merge_pair(word, best): c for word, c in words.items()}
    self._set_vocab_and_merges(vocab, merges)
    return self


@mistake("tokenizer/bpe_tokenizer.py", "BPETokenizer.train", "alphabet numbered in order of first appearance instead of sorted")
def train_alphabet_in_order_of_appearance(self, texts, vocab_size, special_tokens=None, min_frequency=1, verbose=False):
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings")
    if special_tokens is not None:
        BaseTokenizer.__init__(self, special_tokens)
    word_counts = Counter()
    for text in texts:
        for piece in self.split_special_tokens(text):
            if piece not in self.special_tokens:
                word_counts.update(self.pre_tokenize(piece))
    vocab = dict(self.special_tokens)
    for symbol in "".join(word_counts):
        vocab.setdefault(symbol, len(vocab))
    if vocab_size < len(vocab):
        raise ValueError(f"vocab_size={vocab_size} is too small: need {len(vocab)}")
    words = {tuple(word): count for word, count in word_counts.items()}
    merges = []
    while len(vocab) < vocab_size:
        counts = get_pair_counts(words)
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        if counts[best] < max(min_frequency, 1):
            break
        merges.append(best)
        vocab.setdefault(best[0] + best[1], len(vocab))
        words = {merge_pair(word, best): count for word, count in words.items()}
    self._set_vocab_and_merges(vocab, merges)
    return self


@mistake("tokenizer/bpe_tokenizer.py", "BPETokenizer.train", "no pre-tokenization: each text is one word, so merges cross spaces")
def train_without_pre_tokenization(self, texts, vocab_size, special_tokens=None, min_frequency=1, verbose=False):
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings")
    if special_tokens is not None:
        BaseTokenizer.__init__(self, special_tokens)
    word_counts = Counter()
    for text in texts:
        for piece in self.split_special_tokens(text):
            if piece not in self.special_tokens:
                word_counts[piece] += 1
    vocab = dict(self.special_tokens)
    for symbol in self.initial_alphabet(word_counts):
        vocab.setdefault(symbol, len(vocab))
    if vocab_size < len(vocab):
        raise ValueError(f"vocab_size={vocab_size} is too small: need {len(vocab)}")
    words = {tuple(word): count for word, count in word_counts.items()}
    merges = []
    while len(vocab) < vocab_size:
        counts = get_pair_counts(words)
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        if counts[best] < max(min_frequency, 1):
            break
        merges.append(best)
        vocab.setdefault(best[0] + best[1], len(vocab))
        words = {merge_pair(word, best): count for word, count in words.items()}
    self._set_vocab_and_merges(vocab, merges)
    return self


@mistake("tokenizer/bpe_tokenizer.py", "BPETokenizer.train", "special-token strings in the texts are learned from as ordinary text")
def train_learns_from_special_tokens(self, texts, vocab_size, special_tokens=None, min_frequency=1, verbose=False):
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings")
    if special_tokens is not None:
        BaseTokenizer.__init__(self, special_tokens)
    word_counts = Counter()
    for text in texts:
        word_counts.update(self.pre_tokenize(text))
    vocab = dict(self.special_tokens)
    for symbol in self.initial_alphabet(word_counts):
        vocab.setdefault(symbol, len(vocab))
    if vocab_size < len(vocab):
        raise ValueError(f"vocab_size={vocab_size} is too small: need {len(vocab)}")
    words = {tuple(word): count for word, count in word_counts.items()}
    merges = []
    while len(vocab) < vocab_size:
        counts = get_pair_counts(words)
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        if counts[best] < max(min_frequency, 1):
            break
        merges.append(best)
        vocab.setdefault(best[0] + best[1], len(vocab))
        words = {merge_pair(word, best): count for word, count in words.items()}
    self._set_vocab_and_merges(vocab, merges)
    return self


@mistake("tokenizer/bpe_tokenizer.py", "BPETokenizer.train", "min_frequency ignored: merges pairs seen only once or twice")
def train_ignores_min_frequency(self, texts, vocab_size, special_tokens=None, min_frequency=1, verbose=False):
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings")
    if special_tokens is not None:
        BaseTokenizer.__init__(self, special_tokens)
    word_counts = Counter()
    for text in texts:
        for piece in self.split_special_tokens(text):
            if piece not in self.special_tokens:
                word_counts.update(self.pre_tokenize(piece))
    vocab = dict(self.special_tokens)
    for symbol in self.initial_alphabet(word_counts):
        vocab.setdefault(symbol, len(vocab))
    if vocab_size < len(vocab):
        raise ValueError(f"vocab_size={vocab_size} is too small: need {len(vocab)}")
    words = {tuple(word): count for word, count in word_counts.items()}
    merges = []
    while len(vocab) < vocab_size:
        counts = get_pair_counts(words)
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        vocab.setdefault(best[0] + best[1], len(vocab))
        words = {merge_pair(word, best): count for word, count in words.items()}
    self._set_vocab_and_merges(vocab, merges)
    return self


@mistake("tokenizer/bpe_tokenizer.py", "BPETokenizer.train", "incremental: old pairs decremented by 1 instead of by the word's frequency")
def train_incremental_forgets_frequency(self, texts, vocab_size, special_tokens=None, min_frequency=1, verbose=False):
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings")
    if special_tokens is not None:
        BaseTokenizer.__init__(self, special_tokens)
    word_counts = Counter()
    for text in texts:
        for piece in self.split_special_tokens(text):
            if piece not in self.special_tokens:
                word_counts.update(self.pre_tokenize(piece))
    vocab = dict(self.special_tokens)
    for symbol in self.initial_alphabet(word_counts):
        vocab.setdefault(symbol, len(vocab))
    if vocab_size < len(vocab):
        raise ValueError(f"vocab_size={vocab_size} is too small: need {len(vocab)}")
    words = [tuple(word) for word in word_counts]
    freqs = list(word_counts.values())
    pair_counts = Counter()
    where = {}
    for k, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freqs[k]
            where.setdefault(pair, set()).add(k)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    merges = []
    while len(vocab) < vocab_size and heap:
        neg, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if -neg != count:
            if 0 < count < -neg:
                heapq.heappush(heap, (-count, pair))
            continue
        if count < max(min_frequency, 1):
            break
        merges.append(pair)
        vocab.setdefault(pair[0] + pair[1], len(vocab))
        for k in where.pop(pair, ()):
            old = words[k]
            new = merge_pair(old, pair)
            if new == old:
                continue
            for p in zip(old, old[1:]):
                pair_counts[p] -= 1
            for p in zip(new, new[1:]):
                pair_counts[p] += freqs[k]
                where.setdefault(p, set()).add(k)
                heapq.heappush(heap, (-pair_counts[p], p))
            words[k] = new
        pair_counts.pop(pair, None)
    self._set_vocab_and_merges(vocab, merges)
    return self


@mistake("tokenizer/bpe_tokenizer.py", "BPETokenizer.train", "incremental: popped heap entries trusted without checking they are stale")
def train_incremental_trusts_stale_heap_entries(self, texts, vocab_size, special_tokens=None, min_frequency=1, verbose=False):
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings")
    if special_tokens is not None:
        BaseTokenizer.__init__(self, special_tokens)
    word_counts = Counter()
    for text in texts:
        for piece in self.split_special_tokens(text):
            if piece not in self.special_tokens:
                word_counts.update(self.pre_tokenize(piece))
    vocab = dict(self.special_tokens)
    for symbol in self.initial_alphabet(word_counts):
        vocab.setdefault(symbol, len(vocab))
    if vocab_size < len(vocab):
        raise ValueError(f"vocab_size={vocab_size} is too small: need {len(vocab)}")
    words = [tuple(word) for word in word_counts]
    freqs = list(word_counts.values())
    pair_counts = Counter()
    where = {}
    for k, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freqs[k]
            where.setdefault(pair, set()).add(k)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    merges = []
    while len(vocab) < vocab_size and heap:
        neg, pair = heapq.heappop(heap)
        count = -neg
        if count < max(min_frequency, 1):
            break
        merges.append(pair)
        vocab.setdefault(pair[0] + pair[1], len(vocab))
        for k in where.pop(pair, ()):
            old = words[k]
            new = merge_pair(old, pair)
            if new == old:
                continue
            for p in zip(old, old[1:]):
                pair_counts[p] -= freqs[k]
            for p in zip(new, new[1:]):
                pair_counts[p] += freqs[k]
                where.setdefault(p, set()).add(k)
                heapq.heappush(heap, (-pair_counts[p], p))
            words[k] = new
        pair_counts.pop(pair, None)
    self._set_vocab_and_merges(vocab, merges)
    return self



@mistake("tokenizer/bpe_tokenizer.py", "BPETokenizer.train", "incremental: in A B A B the pair (B, A) is subtracted twice (right neighbour not left to the next occurrence)")
def train_incremental_abab_double_subtract(self, texts, vocab_size, special_tokens=None, min_frequency=1, verbose=False):
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings")
    if special_tokens is not None:
        BaseTokenizer.__init__(self, special_tokens)
    word_counts = Counter()
    for text in texts:
        for piece in self.split_special_tokens(text):
            if piece not in self.special_tokens:
                word_counts.update(self.pre_tokenize(piece))
    vocab = dict(self.special_tokens)
    for symbol in self.initial_alphabet(word_counts):
        vocab.setdefault(symbol, len(vocab))
    if vocab_size < len(vocab):
        raise ValueError(f"vocab_size={vocab_size} is too small: need {len(vocab)}")
    words = [list(word) for word in word_counts]
    freqs = list(word_counts.values())
    pair_counts = {}
    where = {}
    for k, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pair_counts[pair] = pair_counts.get(pair, 0) + freqs[k]
            where.setdefault(pair, set()).add(k)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    merges = []
    while len(vocab) < vocab_size and heap:
        neg, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if -neg != count:
            if 0 < count < -neg:
                heapq.heappush(heap, (-count, pair))
            continue
        if count < max(min_frequency, 1):
            break
        a, b = pair
        new = a + b
        merges.append(pair)
        vocab.setdefault(new, len(vocab))
        increased = set()
        for k in where.pop(pair, ()):
            word, f, n = words[k], freqs[k], len(words[k])
            out = []
            i = 0
            while i < n:
                if not (i + 1 < n and word[i] == a and word[i + 1] == b):
                    out.append(word[i])
                    i += 1
                    continue
                if out:
                    pair_counts[(word[i - 1], a)] = pair_counts.get((word[i - 1], a), 0) - f
                    added = (out[-1], new)
                    pair_counts[added] = pair_counts.get(added, 0) + f
                    where.setdefault(added, set()).add(k)
                    increased.add(added)
                if i + 2 < n:
                    y = word[i + 2]
                    if True:
                        pair_counts[(b, y)] = pair_counts.get((b, y), 0) - f
                        added = (new, y)
                        pair_counts[added] = pair_counts.get(added, 0) + f
                        where.setdefault(added, set()).add(k)
                        increased.add(added)
                out.append(new)
                i += 2
            words[k] = out
        del pair_counts[pair]
        for p in increased:
            if pair_counts.get(p, 0) > 0:
                heapq.heappush(heap, (-pair_counts[p], p))
    self._set_vocab_and_merges(vocab, merges)
    return self


@mistake("tokenizer/bpe_tokenizer.py", "BPETokenizer.train", "incremental: words not added to where[] of the new pairs, so later merges miss them")
def train_incremental_index_not_updated(self, texts, vocab_size, special_tokens=None, min_frequency=1, verbose=False):
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings")
    if special_tokens is not None:
        BaseTokenizer.__init__(self, special_tokens)
    word_counts = Counter()
    for text in texts:
        for piece in self.split_special_tokens(text):
            if piece not in self.special_tokens:
                word_counts.update(self.pre_tokenize(piece))
    vocab = dict(self.special_tokens)
    for symbol in self.initial_alphabet(word_counts):
        vocab.setdefault(symbol, len(vocab))
    if vocab_size < len(vocab):
        raise ValueError(f"vocab_size={vocab_size} is too small: need {len(vocab)}")
    words = [list(word) for word in word_counts]
    freqs = list(word_counts.values())
    pair_counts = {}
    where = {}
    for k, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pair_counts[pair] = pair_counts.get(pair, 0) + freqs[k]
            where.setdefault(pair, set()).add(k)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    merges = []
    while len(vocab) < vocab_size and heap:
        neg, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if -neg != count:
            if 0 < count < -neg:
                heapq.heappush(heap, (-count, pair))
            continue
        if count < max(min_frequency, 1):
            break
        a, b = pair
        new = a + b
        merges.append(pair)
        vocab.setdefault(new, len(vocab))
        increased = set()
        for k in where.pop(pair, ()):
            word, f, n = words[k], freqs[k], len(words[k])
            out = []
            i = 0
            while i < n:
                if not (i + 1 < n and word[i] == a and word[i + 1] == b):
                    out.append(word[i])
                    i += 1
                    continue
                if out:
                    pair_counts[(word[i - 1], a)] = pair_counts.get((word[i - 1], a), 0) - f
                    added = (out[-1], new)
                    pair_counts[added] = pair_counts.get(added, 0) + f
                    increased.add(added)
                if i + 2 < n:
                    y = word[i + 2]
                    if not (y == a and i + 3 < n and word[i + 3] == b):
                        pair_counts[(b, y)] = pair_counts.get((b, y), 0) - f
                        added = (new, y)
                        pair_counts[added] = pair_counts.get(added, 0) + f
                        increased.add(added)
                out.append(new)
                i += 2
            words[k] = out
        del pair_counts[pair]
        for p in increased:
            if pair_counts.get(p, 0) > 0:
                heapq.heappush(heap, (-pair_counts[p], p))
    self._set_vocab_and_merges(vocab, merges)
    return self


@mistake("tokenizer/bpe_tokenizer.py", "BPETokenizer.encode", "merges applied left to right as soon as a known pair is found, not lowest rank first")
def encode_left_to_right_greedy(self, text, add_special_tokens=False):
    ids = [self.bos_token_id] if add_special_tokens else []
    for piece in self.split_special_tokens(text):
        if piece in self.special_tokens:
            ids.append(self.special_tokens[piece])
            continue
        for word in self.pre_tokenize(piece):
            symbols = list(word)
            changed = True
            while changed:
                changed = False
                for i in range(len(symbols) - 1):
                    if (symbols[i], symbols[i + 1]) in self._ranks:
                        symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
                        changed = True
                        break
            ids.extend(self.vocab.get(symbol, self.unk_token_id) for symbol in symbols)
    if add_special_tokens:
        ids.append(self.eos_token_id)
    return ids


@mistake("tokenizer/bpe_tokenizer.py", "BPETokenizer.encode", "picks the known pair most frequent in the word (like training) instead of the lowest rank")
def encode_by_frequency_in_the_text(self, text, add_special_tokens=False):
    ids = [self.bos_token_id] if add_special_tokens else []
    for piece in self.split_special_tokens(text):
        if piece in self.special_tokens:
            ids.append(self.special_tokens[piece])
            continue
        for word in self.pre_tokenize(piece):
            symbols = tuple(word)
            while len(symbols) > 1:
                counts = Counter(zip(symbols, symbols[1:]))
                known = [pair for pair in counts if pair in self._ranks]
                if not known:
                    break
                symbols = merge_pair(symbols, max(known, key=lambda pair: counts[pair]))
            ids.extend(self.vocab.get(symbol, self.unk_token_id) for symbol in symbols)
    if add_special_tokens:
        ids.append(self.eos_token_id)
    return ids


@mistake("tokenizer/bpe_tokenizer.py", "BPETokenizer.encode", "special tokens not cut out first: '<eos>' in the text is split into characters")
def encode_splits_special_tokens(self, text, add_special_tokens=False):
    ids = [self.bos_token_id] if add_special_tokens else []
    for word in self.pre_tokenize(text):
        symbols = tuple(word)
        while len(symbols) > 1:
            best = min(zip(symbols, symbols[1:]), key=lambda p: self._ranks.get(p, float("inf")))
            if best not in self._ranks:
                break
            symbols = merge_pair(symbols, best)
        ids.extend(self.vocab.get(symbol, self.unk_token_id) for symbol in symbols)
    if add_special_tokens:
        ids.append(self.eos_token_id)
    return ids


@mistake("tokenizer/bpe_tokenizer.py", "BPETokenizer.encode", "unknown characters dropped instead of mapped to unk_token_id")
def encode_drops_unknown_characters(self, text, add_special_tokens=False):
    ids = [self.bos_token_id] if add_special_tokens else []
    for piece in self.split_special_tokens(text):
        if piece in self.special_tokens:
            ids.append(self.special_tokens[piece])
            continue
        for word in self.pre_tokenize(piece):
            symbols = tuple(word)
            while len(symbols) > 1:
                best = min(zip(symbols, symbols[1:]), key=lambda p: self._ranks.get(p, float("inf")))
                if best not in self._ranks:
                    break
                symbols = merge_pair(symbols, best)
            ids.extend(self.vocab[symbol] for symbol in symbols if symbol in self.vocab)
    if add_special_tokens:
        ids.append(self.eos_token_id)
    return ids


@mistake("tokenizer/bpe_tokenizer.py", "BPETokenizer.decode", "special tokens always dropped, whatever skip_special_tokens says")
def decode_always_skips_specials(self, ids, skip_special_tokens=False):
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    parts = []
    for idx in ids:
        if not 0 <= idx < len(self.id_to_token_list):
            raise ValueError(f"unknown token id {idx}")
        token = self.id_to_token_list[idx]
        if token in self.special_tokens:
            continue
        parts.append(token)
    return "".join(parts)


@mistake("tokenizer/bpe_tokenizer.py", "BPETokenizer.decode", "no range check: id -1 silently decodes to the last token")
def decode_without_range_check(self, ids, skip_special_tokens=False):
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    parts = []
    for idx in ids:
        try:
            token = self.id_to_token_list[idx]
        except IndexError:
            raise ValueError(f"unknown token id {idx}") from None
        if skip_special_tokens and token in self.special_tokens:
            continue
        parts.append(token)
    return "".join(parts)


# ============================================================ tokenizer/byte_level_tokenizer.py


@mistake("tokenizer/byte_level_tokenizer.py", "bytes_to_unicode", "non-printable byte b mapped to chr(256 + b) instead of chr(256 + n)")
def bytes_to_unicode_offset_by_byte_value():
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    return {b: chr(b) if b in printable else chr(256 + b) for b in range(256)}


@mistake("tokenizer/byte_level_tokenizer.py", "bytes_to_unicode", "every byte b mapped to chr(b): control bytes and space stay invisible")
def bytes_to_unicode_identity():
    return {b: chr(b) for b in range(256)}


@mistake("tokenizer/byte_level_tokenizer.py", "ByteLevelTokenizer.pre_tokenize", "no GPT-2 regex split: the whole text is one word")
def byte_pre_tokenize_without_regex(self, text):
    return ["".join(self.byte_encoder[b] for b in text.encode("utf-8"))] if text else []


@mistake("tokenizer/byte_level_tokenizer.py", "ByteLevelTokenizer.pre_tokenize", "code points instead of UTF-8 bytes (ord(ch) & 0xFF through the table)")
def byte_pre_tokenize_code_points(self, text):
    return ["".join(self.byte_encoder[ord(ch) & 0xFF] for ch in piece) for piece in regex.findall(GPT2_SPLIT_PATTERN, text)]


@mistake("tokenizer/byte_level_tokenizer.py", "ByteLevelTokenizer.decode", "symbols turned into bytes with latin-1 instead of the inverse table")
def byte_decode_latin1(self, ids, skip_special_tokens=False):
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    parts = []
    for idx in ids:
        if not 0 <= idx < len(self.id_to_token_list):
            raise ValueError(f"unknown token id {idx}")
        token = self.id_to_token_list[idx]
        if skip_special_tokens and token in self.special_tokens:
            continue
        parts.append(token)
    return "".join(parts).encode("latin-1", errors="replace").decode("utf-8", errors="replace")


@mistake("tokenizer/byte_level_tokenizer.py", "ByteLevelTokenizer.decode", "each token's bytes decoded on their own: a character split over tokens breaks")
def byte_decode_token_by_token(self, ids, skip_special_tokens=False):
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    parts = []
    for idx in ids:
        if not 0 <= idx < len(self.id_to_token_list):
            raise ValueError(f"unknown token id {idx}")
        token = self.id_to_token_list[idx]
        if token in self.special_tokens:
            if not skip_special_tokens:
                parts.append(token)
            continue
        parts.append(bytes(self.byte_decoder[ch] for ch in token).decode("utf-8", errors="replace"))
    return "".join(parts)


@mistake("tokenizer/byte_level_tokenizer.py", "ByteLevelTokenizer.decode", "strict UTF-8 decoding: a cut character raises UnicodeDecodeError")
def byte_decode_strict_utf8(self, ids, skip_special_tokens=False):
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    parts, pending = [], []
    for idx in [*ids, None]:
        if idx is not None and not 0 <= idx < len(self.id_to_token_list):
            raise ValueError(f"unknown token id {idx}")
        token = None if idx is None else self.id_to_token_list[idx]
        if token is not None and token not in self.special_tokens:
            pending.append(token)
            continue
        if pending:
            parts.append(bytes(self.byte_decoder[ch] for ch in "".join(pending)).decode("utf-8"))
            pending = []
        if token is not None and not skip_special_tokens:
            parts.append(token)
    return "".join(parts)
