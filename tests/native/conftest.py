"""Fixtures for the native core: run tests once per instruction-set level this CPU has."""

from collections.abc import Iterator

import pytest

from anunzi_fast import _native


@pytest.fixture(params=_native.supported_isas())
def isa(request: pytest.FixtureRequest) -> Iterator[str]:
    """Force each dispatch level in turn, restoring the default afterwards."""
    before = _native.active_isa()
    _native.set_active_isa(request.param)
    try:
        yield request.param
    finally:
        _native.set_active_isa(before)
