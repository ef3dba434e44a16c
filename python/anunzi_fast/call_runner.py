"""One call from start to end, as the command line makes it.

The input (a WAV file, or the microphone) is sent paced in real time or as fast as possible,
then real-time silence like an open microphone; the agent's audio is collected, played (a
speaker, or a real-time read of the jitter buffer so that underruns mean something) and
written; the call stops when the service ends it, after ``idle_timeout`` seconds without agent
audio, or after ``max_duration``. :class:`CallResult` says which. No DSP here: the audio work is
:mod:`anunzi_fast.audio`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from ._redact import redact
from .aec import AEC_INSTALL_HINT, aec_available
from .audio import CallRecorder, resample_pcm16
from .client import Call
from .devices import Microphone, Speaker
from .errors import InvalidArgumentError, SessionClosedError
from .protocol import AGENT_SAMPLE_RATE, CLIENT_SAMPLE_RATE, AgentAudio
from .wav import WavAudio, read_wav, write_wav

__all__ = [
    "TICK_SECONDS",
    "CallResult",
    "RunOptions",
    "StatusLine",
    "check_outputs",
    "check_writable",
    "load_input",
    "print_summary",
    "run_call",
    "write_output",
]

TICK_SECONDS = 0.020  # one microphone block, the pacing unit of real-time sending


@dataclass
class RunOptions:
    """What ``call`` and ``demo`` share; see the command-line help for each field."""

    input: str
    output: str | None = None
    output_rate: int | None = None
    record: str | None = None
    pace: str = "realtime"
    idle_timeout: float = 5.0
    max_duration: float | None = None
    echo_cancellation: bool | None = None  # None: when the 'aec' extra is installed
    input_device: int | str | None = None
    output_device: int | str | None = None


@dataclass
class CallResult:
    """What a finished call produced.

    Attributes:
        call: The closed call (its metrics, close code and reason).
        agent_audio: The agent's audio as received, 16 kHz PCM16.
        ended_because: Why the call ended, in words.
    """

    call: Call
    agent_audio: npt.NDArray[np.int16]
    ended_because: str = ""


class StatusLine:
    """A live one-line status on a terminal; a line per second when not on a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.interval = 0.2 if self.live else 1.0

    def show(self, call: Call) -> None:
        metrics = call.metrics
        ready = "-" if metrics.agent_ready_after is None else f"{metrics.agent_ready_after:.2f}s"
        text = (f"agent ready {ready} | sent {metrics.seconds_sent:5.1f}s | received "
                f"{metrics.seconds_received:5.1f}s | turns {len(metrics.turn_latencies)} | "
                f"underruns {metrics.underruns}")
        self.stream.write(f"\r{text}" if self.live else f"{text}\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        """One line of advice, before the status starts."""
        self.stream.write(f"{text}\n")
        self.stream.flush()


def load_input(source: str) -> WavAudio | None:
    """The input WAV, or ``None`` for the microphone; read before connecting."""
    if source == "mic":
        return None
    audio = read_wav(source)
    if audio.samples.dtype not in (np.int16, np.float32, np.float64):
        raise InvalidArgumentError(f"{source!r}: unsupported sample type")
    return audio


def check_writable(path: str) -> None:
    """Refuse an output path that cannot be written, before the call starts rather than after.

    Raises:
        InvalidArgumentError: If its directory is missing or not writable, or it is a directory.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InvalidArgumentError(f"cannot write {path!r}: no directory {directory!r}")
    if os.path.isdir(path):
        raise InvalidArgumentError(f"cannot write {path!r}: it is a directory")
    target = path if os.path.exists(path) else directory
    if not os.access(target, os.W_OK):
        raise InvalidArgumentError(f"cannot write {path!r}: permission denied")


def check_outputs(options: RunOptions) -> None:
    """:func:`check_writable` for every file the call will write."""
    if options.output and options.output != "speaker":
        check_writable(options.output)
    if options.record:
        check_writable(options.record)


async def run_call(
    open_call: Callable[..., Call],
    options: RunOptions,
    *,
    status: StatusLine | None = None,
    microphone: Callable[[], Microphone] = Microphone,
    speaker: Callable[[Any], Speaker] = Speaker,
) -> CallResult:
    """Make one call: send the input, collect the agent, stop on close, idle or max duration.

    ``open_call(playback_rate=..., on_audio_sent=...)`` must return an unopened :class:`Call`.
    """
    wav = load_input(options.input)
    check_outputs(options)
    recorder = CallRecorder() if options.record else None
    use_speaker = options.output == "speaker"
    live = use_speaker and wav is None  # a microphone hears the speaker: cancel its echo
    extra: dict[str, Any] = {} if options.echo_cancellation is None or not live else {
        "echo_cancellation": options.echo_cancellation}
    call = open_call(
        playback_rate=CLIENT_SAMPLE_RATE if use_speaker else AGENT_SAMPLE_RATE,
        on_audio_sent=recorder.add_user if recorder else None, **extra,
    )
    if microphone is Microphone:
        microphone = functools.partial(Microphone, device=options.input_device)
    if speaker is Speaker:
        speaker = functools.partial(Speaker, device=options.output_device)
    agent_chunks: list[npt.NDArray[np.int16]] = []
    last_activity = [time.monotonic()]
    ended_because = ""

    async def receive() -> None:
        async for event in call:
            if isinstance(event, AgentAudio):
                agent_chunks.append(event.samples)
                last_activity[0] = time.monotonic()
                if recorder is not None:
                    recorder.add_agent(event.samples)

    async with call, contextlib.AsyncExitStack() as stack:
        jitter = call.jitter_buffer
        assert jitter is not None
        echo = call.echo.path() if live else None
        if live and echo is None and options.echo_cancellation is None and status is not None \
                and not aec_available():
            status.note(f"hint: {AEC_INSTALL_HINT} (--no-aec hides this)")
        played = None
        if use_speaker:
            played = speaker(jitter)
            played.echo = echo
            stack.enter_context(played)
        mic = None
        if wav is None:
            mic = microphone()
            mic.echo = echo
            await stack.enter_async_context(mic)
        receiver = asyncio.create_task(receive())
        loop = asyncio.get_running_loop()
        started = loop.time()
        # Without a speaker, play the buffer in real time ourselves, so underruns mean something.
        playback_block = np.zeros(round(AGENT_SAMPLE_RATE * TICK_SECONDS), np.int16)
        next_status = [started]

        def tick_playback() -> None:
            if not use_speaker:
                jitter.read_into(playback_block)
            if played is not None:  # agent started/stopped as heard
                for event in played.playout_events():
                    call.playout.report(event)
            if status is not None and loop.time() >= next_status[0]:
                next_status[0] += status.interval
                status.show(call)

        def out_of_time() -> bool:
            return options.max_duration is not None and (
                loop.time() - started >= options.max_duration)

        try:
            if wav is not None:
                await _send_wav(call, wav, options.pace, tick_playback, receiver, out_of_time)
            last_activity[0] = max(last_activity[0], time.monotonic())
            silence = np.zeros(round(CLIENT_SAMPLE_RATE * TICK_SECONDS), np.int16)
            next_tick = loop.time()
            # After the input, behave like an open microphone: real-time silence (or the mic).
            while not receiver.done() and not out_of_time():
                if time.monotonic() - last_activity[0] >= options.idle_timeout:
                    ended_because = (f"no agent audio for {options.idle_timeout:g} s "
                                     "(--idle-timeout)")
                    break
                if mic is not None:
                    block = await _next_block(mic, receiver)
                    if block is not None:
                        await call.send_audio(block, mic.sample_rate)
                else:
                    await call.send_audio(silence, CLIENT_SAMPLE_RATE)
                    next_tick += TICK_SECONDS
                    await asyncio.wait({receiver}, timeout=max(0.0, next_tick - loop.time()))
                tick_playback()
        except SessionClosedError:
            pass  # the service closed while we sent: the receiver tells how
        finally:
            tick_playback()
            if echo is not None:
                call.metrics.echo_delay_ms = echo.canceller.delay_ms
            if status is not None:
                status.finish()
            if receiver.done():
                ended_because = _service_ended(call)
            elif out_of_time():
                ended_because = f"--max-duration of {options.max_duration:g} s reached"
            if not receiver.done():
                await call.close()
            try:
                # Write what arrived even if the session failed: it helps to find out why.
                agent = np.concatenate(agent_chunks) if agent_chunks else np.zeros(0, np.int16)
                if options.output and options.output != "speaker":
                    write_output(options.output, agent, options.output_rate)
                if recorder is not None and options.record:
                    recorder.write(options.record)
            finally:
                # Always collected, so a failed write cannot leave its error unretrieved; a
                # session that ended abnormally is the error reported, even over a failed write.
                await receiver
    return CallResult(call, agent, ended_because or "the call was closed")


def _service_ended(call: Call) -> str:
    code, reason = call.close_code, call.close_reason
    return f"the service ended the session (code {code}" + (
        f", {redact(reason)!r})" if reason else ")")


async def _send_wav(
    call: Call,
    wav: WavAudio,
    pace: str,
    tick: Callable[[], None],
    receiver: asyncio.Task[None],
    out_of_time: Callable[[], bool],
) -> None:
    samples, rate = wav.samples, wav.sample_rate
    loop = asyncio.get_running_loop()
    block = max(1, round(rate * TICK_SECONDS))
    if pace == "fast":
        block = max(block, 8192 * rate // CLIENT_SAMPLE_RATE)
    next_tick = loop.time()
    for start in range(0, len(samples), block):
        if receiver.done() or out_of_time():
            return
        await call.send_audio(samples[start : start + block], rate)
        if pace == "realtime":
            next_tick += block / rate
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            tick()
    await call.flush_audio()


async def _next_block(mic: Microphone, receiver: asyncio.Task[None]) -> Any:
    reader = asyncio.ensure_future(mic.read())
    await asyncio.wait({reader, receiver}, return_when=asyncio.FIRST_COMPLETED)
    if reader.done():
        return reader.result()
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    return None


def write_output(path: str, agent: npt.NDArray[np.int16], output_rate: int | None) -> None:
    """The agent's audio as received (PCM16 16 kHz), or resampled to ``output_rate``."""
    rate = output_rate or AGENT_SAMPLE_RATE
    write_wav(path, resample_pcm16(agent, AGENT_SAMPLE_RATE, rate), rate)


def print_summary(result: CallResult, out: TextIO) -> None:
    """The figures users ask for, one per line."""
    metrics = result.call.metrics

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f} s"

    turns = ", ".join(f"{latency:.3f} s" for latency in metrics.turn_latencies) or "-"
    print(f"call ended          {result.ended_because}", file=out)
    print(f"agent ready after   {seconds(metrics.agent_ready_after)}", file=out)
    print(f"first audio after   {seconds(metrics.first_audio_after)}", file=out)
    print(f"turn latency        {turns}", file=out)
    if metrics.first_audio_heard_after is not None:
        heard = ", ".join(f"{t:.3f} s" for t in metrics.heard_turn_latencies) or "-"
        print(f"first audio heard   {seconds(metrics.first_audio_heard_after)}", file=out)
        print(f"turn latency, heard {heard}", file=out)
    if metrics.echo_delay_ms is not None:
        print(f"echo delay          {metrics.echo_delay_ms:.1f} ms", file=out)
    print(f"seconds sent        {metrics.seconds_sent:.2f} s", file=out)
    print(f"seconds received    {metrics.seconds_received:.2f} s", file=out)
    print(f"underruns           {metrics.underruns}", file=out)
    if result.call.close_code is not None:
        print(f"closed with code    {result.call.close_code}", file=out)


