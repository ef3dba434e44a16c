"""anunzi-fast: a real-time Python client for Anunzi voice agents with a native audio core.

The session (see :func:`connect`)::

    async with anunzi_fast.connect(assistant_id="...", api_key="...") as call:
        await call.send_audio(samples, sample_rate)
        async for event in call:
            ...

:func:`request_session_url` (and its sync twin) fetches a session URL; the errors form one
tree under :class:`AnunziError`; :class:`Emulator` runs the service locally.

The native core (``anunzi_fast._native``):

- :func:`float_to_pcm16` / :func:`pcm16_to_float`: browser-exact PCM conversion, zero copy.
- :class:`SpscRing`: a lock-free single-producer/single-consumer sample ring.
- :class:`JitterBuffer`: the playback queue with prefill, underrun and overflow accounting.

Echo cancellation for calls without headphones (:mod:`anunzi_fast.aec`, with the optional
``aec`` extra): :class:`EchoCanceller`, and ``connect(..., echo_cancellation=True)``.

The streaming resampler (:mod:`anunzi_fast.resampler`) has python-soxr's API, so
``import anunzi_fast as soxr`` runs code written for soxr: :func:`resample`,
:class:`ResampleStream` and the quality constants ``QQ``, ``LQ``, ``MQ``, ``HQ``, ``VHQ``.

Set ``ANUNZI_FAST_ISA`` to ``portable``, ``sse2``, ``avx2`` or ``avx512`` before import to force
an instruction-set level; :func:`active_isa` tells which one runs.
"""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from anunzi_fast._native import (
    JitterBuffer,
    JitterStats,
    SpscRing,
    active_isa,
    float_to_pcm16,
    pcm16_to_float,
    supported_isas,
)
from anunzi_fast.errors import (
    AgentNotReadyError,
    AnunziError,
    AssistantNotFoundError,
    AudioDeviceError,
    AuthenticationError,
    BadRequestError,
    CallerError,
    CertificateError,
    ConnectionLostError,
    CredentialsError,
    InvalidArgumentError,
    NetworkError,
    PeerError,
    PermissionDeniedError,
    RateLimitedError,
    RemoteProtocolError,
    ServerError,
    SessionClosedError,
    SessionTokenRejectedError,
)
from anunzi_fast.protocol import (
    AGENT_SAMPLE_RATE,
    CLIENT_SAMPLE_RATE,
    AgentAudio,
    AgentReady,
    ClientMessage,
    ClientReady,
    Event,
    MalformedMessage,
    ServerEvent,
    ServerMessage,
    SessionProtocol,
    Side,
    UserAudio,
)
from anunzi_fast.resampler import HQ, LQ, MQ, QQ, VHQ, ResampleStream, resample
from anunzi_fast.wav import WavAudio, read_wav, write_wav

# The network side (websockets, httpx and ssl cost about 60 ms and 300 modules to import) is
# loaded on first use, so that code using only the audio engine never pays for it.
_LAZY = {
    "DEFAULT_BASE_URL": "anunzi_fast.auth",
    "request_session_url": "anunzi_fast.auth",
    "request_session_url_sync": "anunzi_fast.auth",
    "SessionURL": "anunzi_fast.auth",
    "RetryPolicy": "anunzi_fast.retry",
    "Call": "anunzi_fast.client",
    "CallEvent": "anunzi_fast.client",
    "CallState": "anunzi_fast.client",
    "Reconnected": "anunzi_fast.client",
    "connect": "anunzi_fast.client",
    "CallMetrics": "anunzi_fast.metrics",
    "CallOptions": "anunzi_fast.options",
    "CallRecorder": "anunzi_fast.audio",
    "Playback": "anunzi_fast.audio",
    "UplinkEncoder": "anunzi_fast.audio",
    "Emulator": "anunzi_fast.emulator",
    "Fault": "anunzi_fast.emulator",
    "Microphone": "anunzi_fast.devices",
    "Speaker": "anunzi_fast.devices",
    "EchoCanceller": "anunzi_fast.aec",
    "EchoCancellationUnavailableError": "anunzi_fast.aec",
    "EchoPath": "anunzi_fast.aec",
    "AgentStartedSpeaking": "anunzi_fast.events",
    "AgentStoppedSpeaking": "anunzi_fast.events",
}

if _TYPE_CHECKING:
    from anunzi_fast.aec import EchoCancellationUnavailableError, EchoCanceller, EchoPath
    from anunzi_fast.audio import CallRecorder, Playback, UplinkEncoder
    from anunzi_fast.auth import (
        DEFAULT_BASE_URL,
        SessionURL,
        request_session_url,
        request_session_url_sync,
    )
    from anunzi_fast.client import Call, CallEvent, CallState, Reconnected, connect
    from anunzi_fast.devices import Microphone, Speaker
    from anunzi_fast.emulator import Emulator, Fault
    from anunzi_fast.events import AgentStartedSpeaking, AgentStoppedSpeaking
    from anunzi_fast.metrics import CallMetrics
    from anunzi_fast.options import CallOptions
    from anunzi_fast.retry import RetryPolicy


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'anunzi_fast' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"

__all__ = [
    "AGENT_SAMPLE_RATE",
    "CLIENT_SAMPLE_RATE",
    "DEFAULT_BASE_URL",
    "HQ",
    "LQ",
    "MQ",
    "QQ",
    "VHQ",
    "AgentAudio",
    "AgentNotReadyError",
    "AgentReady",
    "AgentStartedSpeaking",
    "AgentStoppedSpeaking",
    "AnunziError",
    "AssistantNotFoundError",
    "AudioDeviceError",
    "AuthenticationError",
    "BadRequestError",
    "Call",
    "CallEvent",
    "CallMetrics",
    "CallOptions",
    "CallRecorder",
    "CallState",
    "CallerError",
    "CertificateError",
    "ClientMessage",
    "ClientReady",
    "ConnectionLostError",
    "CredentialsError",
    "EchoCancellationUnavailableError",
    "EchoCanceller",
    "EchoPath",
    "Emulator",
    "Event",
    "Fault",
    "InvalidArgumentError",
    "JitterBuffer",
    "JitterStats",
    "MalformedMessage",
    "Microphone",
    "NetworkError",
    "PeerError",
    "PermissionDeniedError",
    "Playback",
    "RateLimitedError",
    "Reconnected",
    "RemoteProtocolError",
    "ResampleStream",
    "RetryPolicy",
    "ServerError",
    "ServerEvent",
    "ServerMessage",
    "SessionClosedError",
    "SessionProtocol",
    "SessionTokenRejectedError",
    "SessionURL",
    "Side",
    "Speaker",
    "SpscRing",
    "UplinkEncoder",
    "UserAudio",
    "WavAudio",
    "__version__",
    "active_isa",
    "connect",
    "float_to_pcm16",
    "pcm16_to_float",
    "read_wav",
    "request_session_url",
    "request_session_url_sync",
    "resample",
    "supported_isas",
    "write_wav",
]
