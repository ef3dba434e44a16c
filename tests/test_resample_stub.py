"""The hand-written stub _resampler.pyi must match the compiled resampler module."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from anunzi_fast import _resampler
from tests._stubtest import assert_stubtest_passes

STUB = Path(__file__).resolve().parents[1] / "python" / "anunzi_fast" / "_resampler.pyi"
# pybind11 classes have pybind11's own metaclass, which a stub cannot name.
ALLOWLIST = r"anunzi_fast\._resampler\.Resampler" + "\n"


def test_stubtest_agrees(tmp_path: Path) -> None:
    allowlist = tmp_path / "allowlist.txt"
    allowlist.write_text(ALLOWLIST)
    assert_stubtest_passes("anunzi_fast._resampler", allowlist)


def _stub_functions() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = [a.arg for a in node.args.args]
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not item.decorator_list:
                    found[f"{node.name}.{item.name}"] = [a.arg for a in item.args.args][1:]
    return found


@pytest.mark.parametrize("qualified", sorted(_stub_functions()))
def test_parameter_names_match_pybind_signature(qualified: str) -> None:
    owner: Any = _resampler
    for part in qualified.split("."):
        owner = getattr(owner, part)
    name = qualified.split(".")[-1]
    first_line = (owner.__doc__ or "").strip().splitlines()[0]
    match = re.match(rf"{re.escape(name)}\((.*)\) -> .*$", first_line)
    assert match, first_line
    names = [p.split(":")[0].strip() for p in match.group(1).split(",") if p.strip()]
    if "." in qualified:
        names = names[1:]  # self
    assert names == _stub_functions()[qualified]
