"""The package's public surface: a complete, sorted __all__ (as httpx tests it)."""

import types

import anunzi_fast


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
