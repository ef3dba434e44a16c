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

The streaming resampler (:mod:`anunzi_fast.resampler`) has python-soxr's API, so
``import anunzi_fast as soxr`` runs code written for soxr: :func:`resample`,
:class:`ResampleStream` and the quality constants ``QQ``, ``LQ``, ``MQ``, ``HQ``, ``VHQ``.

Set ``ANUNZI_FAST_ISA`` to ``portable``, ``sse2``, ``avx2`` or ``avx512`` before import to force
an instruction-set level; :func:`active_isa` tells which one runs.
"""

from anunzi_fast._native import (
    JitterBuffer,
    JitterStats,
    SpscRing,
    active_isa,
    float_to_pcm16,
    pcm16_to_float,
    supported_isas,
)
from anunzi_fast.auth import (
    DEFAULT_BASE_URL,
    RetryPolicy,
    SessionURL,
    request_session_url,
    request_session_url_sync,
)
from anunzi_fast.client import Call, CallEvent, CallMetrics, Reconnected, connect
from anunzi_fast.devices import Microphone, Speaker
from anunzi_fast.emulator import Emulator, Fault
from anunzi_fast.errors import (
    AnunziError,
    AssistantNotFoundError,
    AudioDeviceError,
    AuthenticationError,
    BadRequestError,
    CallerError,
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
    Event,
    MalformedMessage,
    ServerMessage,
    SessionProtocol,
)
from anunzi_fast.resampler import HQ, LQ, MQ, QQ, VHQ, ResampleStream, resample
from anunzi_fast.wav import WavAudio, read_wav, write_wav

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
    "AgentReady",
    "AnunziError",
    "AssistantNotFoundError",
    "AudioDeviceError",
    "AuthenticationError",
    "BadRequestError",
    "Call",
    "CallEvent",
    "CallMetrics",
    "CallerError",
    "ConnectionLostError",
    "CredentialsError",
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
    "RateLimitedError",
    "Reconnected",
    "RemoteProtocolError",
    "ResampleStream",
    "RetryPolicy",
    "ServerError",
    "ServerMessage",
    "SessionClosedError",
    "SessionProtocol",
    "SessionTokenRejectedError",
    "SessionURL",
    "Speaker",
    "SpscRing",
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
