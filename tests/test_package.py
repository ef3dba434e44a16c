"""The package's public surface: a complete, sorted __all__ (as httpx tests it)."""

import importlib
import pkgutil
import subprocess
import sys
import types

import pytest

import anunzi_fast

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(anunzi_fast.__path__, "anunzi_fast.")
    if not info.name.rsplit(".", 1)[-1].startswith("_") and info.name != "anunzi_fast.__main__"
)


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then everything else, each alphabetical.
    kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return kind, name


def test_all_is_sorted_and_unique() -> None:
    assert anunzi_fast.__all__ == sorted(set(anunzi_fast.__all__), key=_isort_key)


def test_all_lists_every_public_name() -> None:
    public = {
        name
        for name, value in vars(anunzi_fast).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public <= set(anunzi_fast.__all__)
    for name in anunzi_fast.__all__:
        assert hasattr(anunzi_fast, name), name


def test_soxr_style_code_runs_on_the_package_and_the_submodule() -> None:
    import numpy as np

    import anunzi_fast as soxr
    import anunzi_fast.resampler as submodule

    x = np.zeros(480, np.float32)
    for api in (soxr, submodule):
        assert api.resample(x, 48000, 16000, quality="soxr_hq").shape == (160,)
        stream = api.ResampleStream(48000, 16000, 1, dtype="float32", quality=api.HQ)
        assert stream.resample_chunk(x, last=True).shape == (160,)
    assert soxr.resample is submodule.resample


@pytest.mark.parametrize("name", MODULES)
def test_every_module_all_is_complete_and_sorted(name: str) -> None:
    module = importlib.import_module(name)
    names = module.__all__
    assert names == sorted(set(names), key=_isort_key)
    public = {attr for attr, value in vars(module).items() if not attr.startswith("_")
              and getattr(value, "__module__", None) == module.__name__}
    assert public <= set(names), public - set(names)


def test_the_audio_engine_alone_imports_no_network_code() -> None:
    probe = ("import sys, numpy as np, anunzi_fast as a\n"
             "a.resample(np.zeros(480, np.float32), 48000, 16000)\n"
             "a.float_to_pcm16(np.zeros(8, np.float32)); a.SessionProtocol()\n"
             "print(sorted(m for m in ('websockets', 'httpx', 'httpcore', 'ssl') "
             "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_lazy_attributes_resolve_and_are_listed() -> None:
    from anunzi_fast.client import connect

    assert anunzi_fast.connect is connect
    assert "connect" in dir(anunzi_fast)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        anunzi_fast.nope  # noqa: B018


@pytest.mark.parametrize(("host", "loopback"),
                         [("localhost", True), ("LOCALHOST.", True), ("127.0.0.1", True),
                          ("127.9.9.9", True), ("[::1]", True), ("::1", True),
                          ("api.localhost", False), ("10.0.0.1", False), ("example.com", False),
                          ("", False), (None, False)])
def test_what_counts_as_loopback(host: str | None, loopback: bool) -> None:
    from anunzi_fast._net import is_loopback_host

    assert is_loopback_host(host) is loopback
