"""The hand-written stubs _native.pyi, _resampler.pyi and _echo.pyi must match the compiled modules.

mypy's stubtest checks names, kinds and properties, but cannot read the signatures of
pybind11 functions (they have no __text_signature__). pybind11 writes each signature as the
first line of the docstring, so the second test parses those and compares them with the stub's
parameters: names, order, keyword-only markers and which ones have defaults.
"""

import ast
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import anunzi_fast
from anunzi_fast import _echo, _native, _resampler
from tests._stubtest import assert_stubtest_passes

MODULES: dict[str, ModuleType] = {"_echo": _echo, "_native": _native, "_resampler": _resampler}

# What stubtest may not hold against each stub.
ALLOWLISTS = {
    "_native": [
        # pybind11 classes have pybind11's own metaclass; a stub cannot name it.
        r"anunzi_fast\._native\.(SpscRing|JitterBuffer|JitterStats)",
        # JitterStats has no constructor (Python only receives it); pybind11 still defines it.
        r"anunzi_fast\._native\.JitterStats\.__init__",
    ],
    "_resampler": [
        r"anunzi_fast\._resampler\.Resampler",
    ],
    "_echo": [
        r"anunzi_fast\._echo\.(ReferenceAligner|TimedTap|PlayoutMonitor|OutputEngine|InputEngine)",
    ],
}


def stub_path(module: str) -> Path:
    # Beside the package's __init__.py: the source tree in an editable install, else the wheel.
    return Path(anunzi_fast.__file__).with_name(f"{module}.pyi")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_stubtest_agrees(module: str, tmp_path: Path) -> None:
    allowlist = tmp_path / "allowlist.txt"
    allowlist.write_text("\n".join(ALLOWLISTS[module]) + "\n")
    assert_stubtest_passes(f"anunzi_fast.{module}", allowlist)


def _shape(args: ast.arguments, drop_self: bool) -> tuple[list[str], list[str], int, int]:
    # Positional-only parameters are marked with a trailing "/" on their name.
    positional = [a.arg + "/" for a in args.posonlyargs] + [a.arg for a in args.args]
    if drop_self and positional[:1] and positional[0].rstrip("/") == "self":
        positional = positional[1:]
    keyword_only = [a.arg for a in args.kwonlyargs]
    defaults = len(args.defaults) + sum(d is not None for d in args.kw_defaults)
    return positional, keyword_only, defaults, int(args.vararg is not None)


def _stub_signatures(module: str) -> dict[str, ast.arguments]:
    tree = ast.parse(stub_path(module).read_text())
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


@pytest.mark.parametrize(
    ("module", "qualified"),
    [(module, qualified) for module in sorted(MODULES) for qualified in _stub_signatures(module)],
)
def test_signature_matches_the_module(module: str, qualified: str) -> None:
    stub_args = _stub_signatures(module)[qualified]
    owner: Any = MODULES[module]
    for part in qualified.split("."):
        owner = getattr(owner, part)
    name = "__init__" if qualified.endswith("__init__") else qualified.split(".")[-1]
    runtime_args = _runtime_signature(owner, name)
    assert _shape(stub_args, True) == _shape(runtime_args, True)


def test_every_module_has_a_stub_and_every_stub_a_module() -> None:
    stubs = {p.stem for p in stub_path("_native").parent.glob("_*.pyi")}
    assert stubs == set(MODULES)
