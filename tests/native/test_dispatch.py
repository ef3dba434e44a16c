"""Runtime CPU dispatch: each level can be forced, by environment variable and at run time."""

import os
import subprocess
import sys

import numpy as np
import pytest

import anunzi_fast
from anunzi_fast import _native
from tests.conftest import browser_pcm16

# The level in use by the conversions and by a resampler stream, and a conversion's output.
PROBE = (
    "import numpy as np, anunzi_fast as a;"
    "x = np.random.default_rng(0).uniform(-1.5, 1.5, 1001).astype(np.float32);"
    "print(a.active_isa(), a.ResampleStream(16000, 48000, 1)._core.isa,"
    " a.float_to_pcm16(x).tobytes().hex())"
)


def run_probe(isa_request: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANUNZI_FAST_ISA": isa_request}
    return subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("isa", _native.supported_isas())
def test_environment_variable_forces_each_level(isa: str) -> None:
    result = run_probe(isa)
    assert result.returncode == 0, result.stderr
    active, stream_isa, hex_output = result.stdout.split()
    assert active == stream_isa == isa
    x = np.random.default_rng(0).uniform(-1.5, 1.5, 1001).astype(np.float32)
    assert bytes.fromhex(hex_output) == browser_pcm16(x).tobytes()
    assert "RuntimeWarning" not in result.stderr


def test_unknown_environment_value_falls_back_to_the_best_level() -> None:
    # The one rule for every part: the best level, and a RuntimeWarning naming the bad value.
    result = run_probe("avx9000")
    assert result.returncode == 0, result.stderr
    active, stream_isa, _ = result.stdout.split()
    assert active == stream_isa == _native.supported_isas()[-1]
    assert "RuntimeWarning: ANUNZI_FAST_ISA='avx9000' is unknown" in result.stderr
    assert result.stderr.count("RuntimeWarning") == 1


def test_levels_listed_lowest_first_and_portable_always_there() -> None:
    levels = anunzi_fast.supported_isas()
    order = ["portable", "sse2", "avx2", "avx512"]
    assert levels[0] == "portable"
    assert levels == sorted(levels, key=order.index)
    assert anunzi_fast.active_isa() in levels


def test_set_active_isa_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown ISA level"):
        _native.set_active_isa("mmx")
