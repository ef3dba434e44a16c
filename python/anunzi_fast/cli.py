"""The ``anunzi-fast`` command: ``demo``, ``call`` and ``serve``.

Exit codes: 0 done; 2 usage (bad arguments, unreadable input, no audio device); 3 credentials,
permission or unknown assistant; 4 network or protocol (including a session the service ended
abnormally). Errors are one line on stderr, without traceback and without secrets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import as_file, files
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from ._redact import install_log_redaction, redact
from .audio import CallRecorder, resample_pcm16
from .auth import API_KEY_ENV, DEFAULT_BASE_URL, request_session_url
from .client import Call, connect
from .devices import Microphone, Speaker
from .emulator import DEFAULT_API_KEY, Emulator, Fault
from .errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    AnunziError,
    InvalidArgumentError,
    SessionClosedError,
    exit_code_for,
)
from .protocol import AGENT_SAMPLE_RATE, CLIENT_SAMPLE_RATE, AgentAudio
from .wav import WavAudio, read_wav, write_wav

__all__ = [
    "CallOptions",
    "CallResult",
    "StatusLine",
    "build_parser",
    "check_outputs",
    "check_writable",
    "command_call",
    "command_demo",
    "command_serve",
    "exit_code_for",
    "load_input",
    "main",
    "print_summary",
    "run_call",
    "write_output",
]

TICK_SECONDS = 0.020  # one microphone block, the pacing unit of real-time sending
DEMO_ASSISTANT = "demo"
PROGRAM = "anunzi-fast"


# --- the call loop ----------------------------------------------------------------------------


@dataclass
class CallOptions:
    """What ``call`` and ``demo`` share; see the command-line help for each field."""

    input: str
    output: str | None = None
    output_rate: int | None = None
    record: str | None = None
    pace: str = "realtime"
    idle_timeout: float = 5.0
    max_duration: float | None = None


@dataclass
class CallResult:
    """What a finished call produced."""

    call: Call
    agent_audio: npt.NDArray[np.int16]


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


def check_outputs(options: CallOptions) -> None:
    """:func:`check_writable` for every file the call will write."""
    if options.output and options.output != "speaker":
        check_writable(options.output)
    if options.record:
        check_writable(options.record)


async def run_call(
    open_call: Callable[..., Call],
    options: CallOptions,
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
    call = open_call(
        playback_rate=CLIENT_SAMPLE_RATE if use_speaker else AGENT_SAMPLE_RATE,
        on_audio_sent=recorder.add_user if recorder else None,
    )
    agent_chunks: list[npt.NDArray[np.int16]] = []
    last_activity = [time.monotonic()]

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
        if use_speaker:
            stack.enter_context(speaker(jitter))
        mic = None if wav is not None else await stack.enter_async_context(microphone())
        receiver = asyncio.create_task(receive())
        loop = asyncio.get_running_loop()
        started = loop.time()
        # Without a speaker, play the buffer in real time ourselves, so underruns mean something.
        playback_block = np.zeros(round(AGENT_SAMPLE_RATE * TICK_SECONDS), np.int16)
        next_status = [started]

        def tick_playback() -> None:
            if not use_speaker:
                jitter.read_into(playback_block)
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
            if status is not None:
                status.finish()
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
    return CallResult(call, agent)


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
    print(f"agent ready after   {seconds(metrics.agent_ready_after)}", file=out)
    print(f"first audio after   {seconds(metrics.first_audio_after)}", file=out)
    print(f"turn latency        {turns}", file=out)
    print(f"seconds sent        {metrics.seconds_sent:.2f} s", file=out)
    print(f"seconds received    {metrics.seconds_received:.2f} s", file=out)
    print(f"underruns           {metrics.underruns}", file=out)
    if result.call.close_code is not None:
        print(f"closed with code    {result.call.close_code}", file=out)


# --- commands ---------------------------------------------------------------------------------


def _call_options(args: argparse.Namespace) -> CallOptions:
    return CallOptions(
        input=args.input, output=args.output, output_rate=args.output_rate, record=args.record,
        pace=args.pace, idle_timeout=args.idle_timeout, max_duration=args.max_duration,
    )


async def command_call(args: argparse.Namespace) -> int:
    options = _call_options(args)
    if args.session_url is not None:
        def open_call(**extra: Any) -> Call:
            return connect(args.session_url, **extra)
    else:
        def open_call(**extra: Any) -> Call:
            return connect(assistant_id=args.assistant_id, api_key=args.api_key,
                           base_url=args.base_url, **extra)
    result = await run_call(open_call, options, status=StatusLine(sys.stderr))
    print_summary(result, sys.stdout)
    return EXIT_OK


async def command_demo(args: argparse.Namespace) -> int:
    options = _call_options(args)
    with contextlib.ExitStack() as stack:
        if options.input is None:
            bundled = files("anunzi_fast") / "data" / "hello.wav"
            options.input = os.fspath(stack.enter_context(as_file(bundled)))
        load_input(options.input)  # fail on a bad file before starting anything
        check_outputs(options)
        async with Emulator(pace="fast" if args.pace == "fast" else "realtime") as emulator:
            print(f"emulator listening on {emulator.base_url}", file=sys.stderr)
            url = await request_session_url(DEMO_ASSISTANT, DEFAULT_API_KEY,
                                            base_url=emulator.base_url)

            def open_call(**extra: Any) -> Call:
                return connect(url, **extra)

            result = await run_call(open_call, options, status=StatusLine(sys.stderr))
    print_summary(result, sys.stdout)
    if options.output and options.output != "speaker":
        print(f"agent reply written to {options.output}", file=sys.stdout)
    return EXIT_OK


async def command_serve(args: argparse.Namespace) -> int:
    keys = args.api_key or [DEFAULT_API_KEY]
    # A long-running server keeps counts, not audio: memory stays flat whatever the load.
    async with Emulator(host=args.host, port=args.port, api_keys=keys, pace=args.pace,
                        token_ttl=args.token_ttl, record_audio=False) as emulator:
        # Only the emulator's public default key is ever printed; a chosen key stays secret.
        shown = DEFAULT_API_KEY if args.api_key is None else "$" + API_KEY_ENV
        print(f"Anunzi emulator listening on {emulator.base_url}", flush=True)
        print("Get a session URL:", flush=True)
        print(f"  curl -H \"Authorization: Bearer {shown}\" "
              f"{emulator.base_url}/websocket/token/echo", flush=True)
        faults = ", ".join(fault.value for fault in Fault)
        print(f"Fault modes (use as assistant id): {faults}", flush=True)
        await emulator.serve_forever()
    return EXIT_OK


# --- entry point ------------------------------------------------------------------------------


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text}")
    return value


def _add_call_options(parser: argparse.ArgumentParser, *, demo: bool) -> None:
    parser.add_argument("--input", required=not demo, default=None, metavar="WAV|mic",
                        help="WAV file (any rate, PCM or float, mono or stereo) or 'mic'"
                        + ("; the bundled speech sample by default" if demo else ""))
    parser.add_argument("--output", metavar="WAV|speaker",
                        default="anunzi-demo-reply.wav" if demo else None,
                        help="where the agent's audio goes (WAV: PCM16 16 kHz as received)")
    parser.add_argument("--output-rate", type=_positive_int, metavar="HZ",
                        help="resample the output WAV to this rate")
    parser.add_argument("--record", metavar="WAV",
                        help="both sides, time-aligned, 48 kHz stereo: user left, agent right")
    parser.add_argument("--pace", choices=("realtime", "fast"), default="realtime",
                        help="send the input in real time (default) or as fast as possible")
    parser.add_argument("--idle-timeout", type=_positive_float, default=2.0 if demo else 5.0,
                        metavar="S", help="stop after this long without agent audio")
    parser.add_argument("--max-duration", type=_positive_float, metavar="S",
                        default=120.0 if demo else None, help="stop after this long in all")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``anunzi-fast``."""
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Talk to Anunzi voice agents.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log to stderr (-v info, -vv debug); secrets are redacted")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="a call with the bundled sample on a local emulator")
    _add_call_options(demo, demo=True)
    call = commands.add_parser("call", help="call an agent")
    target = call.add_mutually_exclusive_group(required=True)
    target.add_argument("--assistant-id", metavar="ID", help="the widget agent's id")
    target.add_argument("--session-url", metavar="URL", help="a session URL (single-use)")
    call.add_argument("--api-key", metavar="KEY", help=f"API key (default: ${API_KEY_ENV})")
    call.add_argument("--base-url", default=DEFAULT_BASE_URL, metavar="URL",
                      help="token route base URL")
    _add_call_options(call, demo=False)
    serve = commands.add_parser("serve", help="run the local emulator")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind")
    serve.add_argument("--port", type=int, default=8765, help="TCP port (0: any free port)")
    serve.add_argument("--api-key", action="append", metavar="KEY",
                       help=f"accepted API key (repeatable; default {DEFAULT_API_KEY!r})")
    serve.add_argument("--pace", choices=("realtime", "fast"), default="realtime",
                       help="agent audio in real time (default) or as fast as possible")
    serve.add_argument("--token-ttl", type=_positive_float, default=60.0, metavar="S",
                       help="seconds a session token stays valid")
    return parser


_COMMANDS = {"demo": command_demo, "call": command_call, "serve": command_serve}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    install_log_redaction()
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else logging.INFO,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return asyncio.run(_run(_COMMANDS[args.command], args))
    except AnunziError as exc:
        print(f"{PROGRAM}: error: {redact(str(exc))}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        return EXIT_OK if args.command == "serve" else EXIT_INTERRUPTED
    except Exception as exc:  # a bug: still one line, unless asked for the traceback
        if args.verbose:
            raise
        print(f"{PROGRAM}: internal error: {type(exc).__name__}: {redact(str(exc))} "
              "(run with -v for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


async def _run(command: Callable[[argparse.Namespace], Any], args: argparse.Namespace) -> int:
    # SIGTERM stops like Ctrl-C, so that `serve` under a supervisor exits cleanly.
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, lambda: task.cancel() if task else None)
    try:
        return int(await command(args))
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
