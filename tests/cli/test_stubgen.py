"""The stub generator on the shapes of code a reference really contains."""

from __future__ import annotations

import ast
import textwrap

import pytest

from intro2llm_cli.stubgen import StubError, is_stub, replace_symbol, stub_source

SOURCE = textwrap.dedent('''\
    """Module docstring stays."""
    import functools
    from dataclasses import dataclass

    CONSTANT = 3  # a comment outside every target stays


    def helper(x):
        """Not a target."""
        # Step 1: this step comment belongs to a non-target and stays
        return x + 1


    def decorated(fn):
        return fn


    @dataclass
    class Config:
        """A dataclass with a __post_init__ target."""

        size: int = 4

        def __post_init__(self) -> None:
            """Validate.

            Raises:
                ValueError: when size is not positive.
            """
            # Step 1: size 必须为正
            #         否则 raise ValueError
            # a private remark that must not reach the learner
            if self.size <= 0:
                raise ValueError("size must be positive")

        @property
        def double(self) -> int:
            """Twice the size."""
            # Step 1: 返回 2 * size
            return 2 * self.size

        @classmethod
        @decorated
        def make(
            cls,
            size: int,
            *,
            scale: int = 1,
        ) -> "Config":
            """Multi-line signature, two decorators."""
            # Step 1: 构造
            def inner(value):
                """Nested function: removed with the body."""
                return value * scale
            return cls(inner(size))


    async def fetch(n: int) -> int:
        """An async target."""
        # Step 1: 返回 n
        return n


    def last(x):
        """The last function in the file."""
        # Step 1: 返回 x
        return x
''')


def stub(symbols):
    return stub_source(SOURCE, symbols, "lesson07")


def test_stub_keeps_signature_docstring_and_step_comments():
    out = stub(["Config.__post_init__"])
    assert "def __post_init__(self) -> None:" in out
    assert "ValueError: when size is not positive." in out  # docstring kept whole
    assert "# Step 1: size 必须为正\n        #         否则 raise ValueError\n" in out
    assert "a private remark" not in out  # non-step comments in a target body are dropped
    assert 'raise NotImplementedError("TODO(lesson07): Config.__post_init__")' in out
    assert "size must be positive" not in out  # the implementation is gone


def test_everything_outside_targets_is_byte_identical():
    out = stub(["Config.double"])
    before = SOURCE.split("    @property")[0]
    after = SOURCE.split("    @classmethod")[1]
    assert out.startswith(before)
    assert out.endswith(after)


def test_decorators_and_multiline_signature_survive():
    out = stub(["Config.make", "Config.double"])
    assert "    @classmethod\n    @decorated\n    def make(\n        cls,\n        size: int," in out
    assert "    @property\n    def double(self) -> int:" in out
    assert "def inner" not in out  # nested functions are part of the body
    tree = ast.parse(out)  # the stub is valid Python
    assert tree


def test_async_and_last_function_in_file():
    out = stub(["fetch", "last"])
    assert 'raise NotImplementedError("TODO(lesson07): fetch")' in out
    assert out.endswith('    # Step 1: 返回 x\n    raise NotImplementedError("TODO(lesson07): last")\n')


def test_stub_is_deterministic_and_idempotent_in_effect():
    assert stub(["helper", "Config.make"]) == stub(["helper", "Config.make"])
    twice = stub_source(stub(["helper"]), ["helper"], "lesson07")
    assert twice == stub(["helper"])


def test_stubbed_module_still_imports_and_raises_a_named_todo():
    namespace: dict = {}
    exec(compile(stub(["Config.double", "helper"]), "<stub>", "exec"), namespace)
    config = namespace["Config"](size=2)
    with pytest.raises(NotImplementedError, match=r"TODO\(lesson07\): Config.double"):
        _ = config.double
    with pytest.raises(NotImplementedError, match="helper"):
        namespace["helper"](1)


def test_class_target_stubs_its_methods_with_steps():
    out = stub(["Config"])
    for name in ("__post_init__", "double", "make"):
        assert f"TODO(lesson07): Config.{name}" in out


def test_missing_symbol_and_missing_docstring_are_author_errors():
    with pytest.raises(StubError, match="not defined"):
        stub(["Config.nope"])
    with pytest.raises(StubError, match="no docstring"):
        stub(["decorated"])


def test_is_stub_tells_stubs_from_work_in_progress():
    out = stub(["helper"])
    assert is_stub(out, "helper")
    assert not is_stub(SOURCE, "helper")
    edited = out.replace('raise NotImplementedError("TODO(lesson07): helper")', "return x + 2")
    assert not is_stub(edited, "helper")


def test_replace_symbol_renames_reindents_and_keeps_decorators():
    wrong = textwrap.dedent('''\
        @some_marker("ignored")
        def double_wrong(self) -> int:
            """Wrong on purpose."""
            return 3 * self.size
        ''')
    out = replace_symbol(SOURCE, "Config.double", wrong)
    namespace: dict = {}
    exec(compile(out, "<patched>", "exec"), namespace)
    assert namespace["Config"](size=2).double == 6
    assert "    @property\n    def double(self) -> int:" in out
    assert "some_marker" not in out


def test_a_broken_mistakes_file_is_one_line_naming_file_and_line(tmp_path):
    from intro2llm_cli.mistakes import MistakeFileError, load_mistakes

    (tmp_path / "mistakes.py").write_text("import math\n\nvalue = undefined_name\n", encoding="utf-8")
    with pytest.raises(MistakeFileError) as info:
        load_mistakes(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'mistakes.py'}:3: NameError")


def test_a_step_continuation_after_code_is_reported():
    from intro2llm_cli.stubgen import orphan_continuations

    source = (
        "def f(x):\n"
        '    """Doc."""\n'
        "    # Step 1: double x,\n"
        "    #         then add one\n"
        "    y = 2 * x\n"
        "    #         (this line would vanish from the stub)\n"
        "    return y + 1\n"
    )
    assert orphan_continuations(source, ["f"]) == ["f:6"]
    assert orphan_continuations(source.replace("    #         (this", "    # Step 2: (this"), ["f"]) == []


def test_a_patched_mistake_is_the_reference_with_its_replacements(tmp_path):
    from intro2llm_cli.mistakes import MistakeFileError, load_mistakes

    (tmp_path / "mistakes.py").write_text(
        "from intro2llm_cli.mistakes import patched\n"
        "eps_outside = patched('model/norm.py', 'RMSNorm.forward', 'eps outside the root',\n"
        "    replace=[('\\n        h = h * torch.rsqrt(variance + self.eps)', '\\n        h = h * torch.rsqrt(variance) + self.eps')])\n",
        encoding="utf-8")
    [wrong] = load_mistakes(tmp_path)
    assert (wrong.id, wrong.symbol, wrong.why) == ("eps_outside", "RMSNorm.forward", "eps outside the root")
    assert "h = h * torch.rsqrt(variance) + self.eps" in wrong.source and wrong.source.lstrip().startswith("def forward")
    (tmp_path / "mistakes.py").write_text(
        "from intro2llm_cli.mistakes import patched\n"
        "missing = patched('model/norm.py', 'RMSNorm.forward', 'x', replace=[('no such text', 'y')])\n",
        encoding="utf-8")
    with pytest.raises(MistakeFileError) as info:
        load_mistakes(tmp_path)
    assert "missing" in str(info.value) and "occurs 0 times" in str(info.value)
