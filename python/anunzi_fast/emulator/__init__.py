"""A local emulator of the Anunzi widget service, for tests, demos and load tests.

Example:
    >>> async with Emulator(pace="fast") as emulator:  # doctest: +SKIP
    ...     url = await request_session_url("echo", DEFAULT_API_KEY, base_url=emulator.base_url)
"""

from .agent import EchoAgent, decimate_48k_to_16k, default_greeting
from .base import DEFAULT_API_KEY, EmulatorBase
from .light import LightEmulator, light_emulator_available
from .server import Emulator
from .session import Fault, Pace, SessionRecord
from .tokens import SessionGrant, TokenStore

__all__ = [
    "DEFAULT_API_KEY",
    "EchoAgent",
    "Emulator",
    "EmulatorBase",
    "Fault",
    "LightEmulator",
    "Pace",
    "SessionGrant",
    "SessionRecord",
    "TokenStore",
    "decimate_48k_to_16k",
    "default_greeting",
    "light_emulator_available",
]
