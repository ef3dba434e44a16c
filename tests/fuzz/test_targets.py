"""Every fuzz target, briefly, on every interpreter: its seed corpus, then hypothesis examples.

The long and the coverage-guided runs are ``python -m tests.fuzz`` (see ``tests/fuzz/run.py``);
these tests keep the targets themselves working and their invariants true on the seeds.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from tests.fuzz import TARGETS
from tests.fuzz._strategies import inputs, seeds
from tests.fuzz.run import ROOT, main

EXAMPLES = 200


def fuzz_one_of(target: str) -> Callable[[bytes], None]:
    function: Callable[[bytes], None] = importlib.import_module(
        f"tests.fuzz.fuzz_{target}").fuzz_one
    return function


@pytest.mark.parametrize("target", TARGETS)
def test_seed_corpus(target: str) -> None:
    corpus = seeds(target)
    assert 3 <= len(corpus) <= 20 and all(len(seed) <= 64 * 1024 for seed in corpus)
    fuzz_one = fuzz_one_of(target)
    for seed in corpus:
        fuzz_one(seed)


@pytest.mark.parametrize("target", TARGETS)
def test_hypothesis_examples(target: str) -> None:
    fuzz_one = fuzz_one_of(target)

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck),
              phases=(Phase.explicit, Phase.generate, Phase.shrink))
    @given(inputs(target))
    def check(data: bytes) -> None:
        fuzz_one(data)

    check()


def test_runner_hypothesis_engine_and_replay(tmp_path: Path) -> None:
    assert main(["--target", "wav", "--engine", "hypothesis", "--runs", "50",
                 "--workdir", str(tmp_path)]) == 0
    assert (tmp_path / "summary.jsonl").read_text().count('"target": "wav"') == 1
    seed = next((ROOT / "tests/fuzz/corpus/wav").iterdir())
    assert main(["--target", "wav", "--replay", str(seed)]) == 0


def test_runner_saves_a_failing_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fuzz import fuzz_wav

    def broken(data: bytes) -> None:
        assert len(data) != 5, "planted failure"  # no seed is 5 bytes long

    monkeypatch.setattr(fuzz_wav, "fuzz_one", broken)
    assert main(["--target", "wav", "--engine", "hypothesis", "--runs", "5000",
                 "--workdir", str(tmp_path)]) == 1
    (artifact,) = (tmp_path / "artifacts").iterdir()
    assert artifact.read_bytes() == bytes(5)  # shrunk to the simplest failing input


def test_runner_needs_a_budget() -> None:
    completed = subprocess.run([sys.executable, "-m", "tests.fuzz", "--target", "all"],
                               cwd=ROOT, capture_output=True, text=True, check=False)
    assert completed.returncode == 2 and "--runs" in completed.stderr


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
def test_atheris_campaign_instruments_the_package(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "tests.fuzz._atheris_worker", "protocol", "-runs=100",
         f"-artifact_prefix={tmp_path}/", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr[-2000:]
    # However the package was installed (an editable install's loader escapes the import hook).
    line = next(x for x in completed.stderr.splitlines() if "functions instrumented" in x)
    done, already = (int(word) for word in line.split() if word.isdigit())
    assert done + already >= 50, line
