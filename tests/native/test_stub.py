"""The hand-written stub _native.pyi must match the compiled module.

mypy's stubtest checks names, kinds and properties, but cannot read the signatures of
pybind11 functions (they have no __text_signature__). pybind11 writes each signature as the
first line of the docstring, so the second test parses those and compares them with the stub's
parameters: names, order, keyword-only markers and which ones have defaults.
"""

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from anunzi_fast import _native
from tests._stubtest import assert_stubtest_passes

STUB = Path(_native.__file__).with_name("_native.pyi")
if not STUB.exists():  # an editable install keeps the stub in the source tree
    import anunzi_fast

    STUB = Path(anunzi_fast.__file__).with_name("_native.pyi")
ALLOWLIST = Path(__file__).with_name("stubtest_allowlist.txt")


def test_stubtest_agrees() -> None:
    assert_stubtest_passes("anunzi_fast._native", ALLOWLIST)


def _shape(args: ast.arguments, drop_self: bool) -> tuple[list[str], list[str], int, int]:
    # Positional-only parameters are marked with a trailing "/" on their name.
    positional = [a.arg + "/" for a in args.posonlyargs] + [a.arg for a in args.args]
    if drop_self and positional[:1] and positional[0].rstrip("/") == "self":
        positional = positional[1:]
    keyword_only = [a.arg for a in args.kwonlyargs]
    defaults = len(args.defaults) + sum(d is not None for d in args.kw_defaults)
    return positional, keyword_only, defaults, int(args.vararg is not None)


def _stub_signatures() -> dict[str, ast.arguments]:
    tree = ast.parse(STUB.read_text())
    found: dict[str, ast.arguments] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found.setdefault(node.name, node.args)  # overloads share one runtime signature
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                is_property = isinstance(item, ast.FunctionDef) and any(
                    isinstance(d, ast.Name) and d.id == "property" for d in item.decorator_list
                )
                if isinstance(item, ast.FunctionDef) and not is_property:
                    found.setdefault(f"{node.name}.{item.name}", item.args)
    return found


def _runtime_signature(obj: Any, name: str) -> ast.arguments:
    text_signature = getattr(obj, "__text_signature__", None)
    if text_signature:  # methods bound with CPython's own protocol carry a real signature
        tree = ast.parse(f"def f{text_signature.replace('$self', 'self')}: pass")
        func = tree.body[0]
        assert isinstance(func, ast.FunctionDef)
        return func.args
    first_line = (obj.__doc__ or "").strip().splitlines()[0]
    match = re.match(rf"{re.escape(name)}\((.*)\) -> .*$", first_line)
    assert match, f"no pybind11 signature line for {name}: {first_line!r}"
    # pybind11 writes C++-ish annotations and defaults; strip annotations, keep the shape.
    params = re.sub(r":\s*[\w\.\[\], ]+?(?=\s*(=|,|$))", "", match.group(1))
    params = re.sub(r"=\s*'[^']*'|=\s*[^,]+", "=0", params)
    tree = ast.parse(f"def f({params}): pass")
    func = tree.body[0]
    assert isinstance(func, ast.FunctionDef)
    return func.args


@pytest.mark.parametrize("qualified", sorted(_stub_signatures()))
def test_signature_matches_docstring(qualified: str) -> None:
    stub_args = _stub_signatures()[qualified]
    owner: Any = _native
    for part in qualified.split("."):
        owner = getattr(owner, part)
    name = "__init__" if qualified.endswith("__init__") else qualified.split(".")[-1]
    runtime_args = _runtime_signature(owner, name)
    assert _shape(stub_args, True) == _shape(runtime_args, True)
