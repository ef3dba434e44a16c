"""Fixtures of the emulator tests."""

from __future__ import annotations

import pytest

from anunzi_fast.emulator import Emulator, EmulatorBase


@pytest.fixture(params=["websockets", "picows"])
def emulator_class(request: pytest.FixtureRequest) -> type[EmulatorBase]:
    """Every emulator test runs on both servers: websockets', and picows' (the load extra)."""
    if request.param == "websockets":
        return Emulator
    pytest.importorskip("picows", reason="the light emulator needs the 'load' extra")
    from anunzi_fast.emulator import LightEmulator

    return LightEmulator
