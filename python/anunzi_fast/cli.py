"""The ``anunzi-fast`` command: ``demo``, ``call``, ``serve``, ``devices`` and ``load``.

Exit codes (one map, :data:`anunzi_fast.errors.EXIT_CODES`): 0 done; 2 usage (bad arguments,
unreadable input, no audio device, a busy port); 3 credentials, permission or unknown
assistant; 4 network or protocol (including a session the service ended abnormally); 130
interrupted. Errors are one line on stderr, without traceback and without secrets.

This module only parses arguments and wires rooms together: the call loop is
:mod:`anunzi_fast.call_runner`'s, the audio work :mod:`anunzi_fast.audio`'s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import as_file, files
from typing import Any

from ._redact import install_log_redaction, redact
from .auth import API_KEY_ENV, DEFAULT_BASE_URL, request_session_url
from .call_runner import RunOptions, StatusLine, check_outputs, load_input, print_summary, run_call
from .client import Call, connect
from .devices import describe_devices, parse_device
from .emulator import DEFAULT_API_KEY, Emulator, Fault, LightEmulator
from .errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    AnunziError,
    InvalidArgumentError,
    exit_code_for,
)

__all__ = ["DEMO_OUTPUT", "PROGRAM", "build_parser", "main"]

PROGRAM = "anunzi-fast"
DEMO_ASSISTANT = "demo"
DEMO_OUTPUT = "anunzi-demo-reply.wav"
MSG_NO_API_KEY = f"no API key: pass --api-key KEY or set the {API_KEY_ENV} environment variable"

_logger = logging.getLogger("anunzi_fast.cli")


# --- commands ---------------------------------------------------------------------------------


def _run_options(args: argparse.Namespace) -> RunOptions:
    return RunOptions(
        input=args.input, output=args.output, output_rate=args.output_rate, record=args.record,
        pace=args.pace, idle_timeout=args.idle_timeout, max_duration=args.max_duration,
        echo_cancellation=False if args.no_aec else None,
        input_device=parse_device(args.input_device),
        output_device=parse_device(args.output_device),
    )


async def _command_call(args: argparse.Namespace) -> int:
    options = _run_options(args)
    open_call: Callable[..., Call]
    if args.session_url is not None:
        def open_call(**extra: Any) -> Call:
            return connect(args.session_url, **extra)
    else:
        if args.api_key is None and not os.environ.get(API_KEY_ENV):
            raise InvalidArgumentError(MSG_NO_API_KEY)

        def open_call(**extra: Any) -> Call:
            return connect(assistant_id=args.assistant_id, api_key=args.api_key,
                           base_url=args.base_url, **extra)
    result = await run_call(open_call, options, status=StatusLine(sys.stderr))
    print_summary(result, sys.stdout)
    return EXIT_OK


async def _command_demo(args: argparse.Namespace) -> int:
    options = _run_options(args)
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


async def _command_serve(args: argparse.Namespace) -> int:
    keys = args.api_key or [DEFAULT_API_KEY]
    # A long-running server keeps counts, not audio: memory stays flat whatever the load.
    server = LightEmulator if args.server == "picows" else Emulator
    emulator = server(host=args.host, port=args.port, api_keys=keys, pace=args.pace,
                      token_ttl=args.token_ttl, record_audio=False)
    try:
        await emulator.start()
    except OSError as exc:
        why = "address already in use" if exc.errno == errno.EADDRINUSE else (
            exc.strerror or type(exc).__name__).lower()
        raise InvalidArgumentError(f"cannot listen on {args.host}:{args.port}: {why}") from exc
    try:
        # Only the emulator's public default key is ever printed; a chosen key stays secret.
        shown = DEFAULT_API_KEY if args.api_key is None else "$" + API_KEY_ENV
        print(f"Anunzi emulator listening on {emulator.base_url}", flush=True)
        print("Get a session URL:", flush=True)
        print(f"  curl -H \"Authorization: Bearer {shown}\" "
              f"{emulator.base_url}/websocket/token/echo", flush=True)
        faults = ", ".join(fault.value for fault in Fault)
        print(f"Fault modes (use as assistant id): {faults}", flush=True)
        await emulator.serve_forever()
    finally:
        await emulator.stop()
    return EXIT_OK


async def _command_devices(args: argparse.Namespace) -> int:
    for line in describe_devices():
        print(line)
    print("(> default input, < default output; --input-device/--output-device take the index "
          "or a unique part of the name)")
    return EXIT_OK


async def _command_load(args: argparse.Namespace) -> int:
    # Locust runs in its own processes: this one stays free of gevent's monkey-patching.
    from .loadtest import LoadOptions, run_load

    return await run_load(LoadOptions(
        report=args.report, emulator=args.emulator, base_url=args.base_url,
        assistant_id=args.assistant_id, api_key=args.api_key, users=args.users,
        spawn_rate=args.spawn_rate, run_time=args.run_time, processes=args.processes,
        input=args.input, frame_ms=args.frame_ms, driver=args.driver, verbose=args.verbose))


_COMMANDS = {"demo": _command_demo, "call": _command_call, "serve": _command_serve,
             "devices": _command_devices, "load": _command_load}


# --- arguments --------------------------------------------------------------------------------


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    noun = "an integer" if kind is int else "a number"

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun} > 0, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected {noun} > 0, got {text!r}")
        return value

    parse.__name__ = f"positive {'integer' if kind is int else 'number'}"  # argparse names it
    return parse


_POSITIVE_FLOAT = _positive(float)
_POSITIVE_INT = _positive(int)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {value}")
    return value


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every default (``%(default)s``) but not the useless ``(default: None)``."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is argparse.SUPPRESS or (
                action.default is False):
            return action.help
        return super()._get_help_string(action)


def _add_verbose(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Accepted before and after the command (after it, its count is the one used).
    parser.add_argument("-v", "--verbose", action="count",
                        default=0 if top else argparse.SUPPRESS,
                        help="log to stderr (-v info, -vv debug); secrets are redacted")


def _add_call_options(parser: argparse.ArgumentParser, *, demo: bool) -> None:
    parser.add_argument("--input", required=not demo, default=None, metavar="WAV|mic",
                        help="WAV file (any rate, PCM or float, mono or stereo) or 'mic'"
                        + ("; the bundled speech sample by default" if demo else ""))
    output_help = "where the agent's audio goes: a WAV (PCM16 16 kHz as received) or 'speaker'"
    if demo:
        output_help += "; written into the current folder by default"
    parser.add_argument("--output", metavar="WAV|speaker", default=DEMO_OUTPUT if demo else None,
                        help=output_help)
    parser.add_argument("--output-rate", type=_POSITIVE_INT, metavar="HZ",
                        help="resample the output WAV to this rate (default: 16000, as received)")
    parser.add_argument("--record", metavar="WAV",
                        help="both sides, time-aligned, 48 kHz stereo: user left, agent right")
    parser.add_argument("--pace", choices=("realtime", "fast"), default="realtime",
                        help="send the input in real time or as fast as possible")
    parser.add_argument("--idle-timeout", type=_POSITIVE_FLOAT, default=2.0 if demo else 5.0,
                        metavar="S", help="stop after this many seconds without agent audio")
    parser.add_argument("--max-duration", type=_POSITIVE_FLOAT, metavar="S",
                        default=120.0 if demo else None,
                        help="stop after this many seconds in all" + (
                            "" if demo else " (default: no limit)"))
    parser.add_argument("--no-aec", action="store_true",
                        help="with --input mic --output speaker: do not cancel the agent's echo "
                        "(it is cancelled by default when the 'aec' extra is installed)")
    parser.add_argument("--input-device", metavar="DEVICE",
                        help="microphone: index or name (see 'anunzi-fast devices')")
    parser.add_argument("--output-device", metavar="DEVICE",
                        help="speaker: index or name (see 'anunzi-fast devices')")
    _add_verbose(parser, top=False)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``anunzi-fast``."""
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Talk to Anunzi voice agents.",
                                     formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"{PROGRAM} {_version()}")
    _add_verbose(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", formatter_class=_Formatter,
        help="a whole call with the bundled speech sample against a local emulator",
        description="A whole call against a local emulator, offline. The agent's reply is "
                    f"written to ./{DEMO_OUTPUT} unless --output says otherwise.")
    _add_call_options(demo, demo=True)
    call = commands.add_parser("call", formatter_class=_Formatter, help="call an agent",
                               description="Call an Anunzi agent.")
    target = call.add_mutually_exclusive_group(required=True)
    target.add_argument("--assistant-id", metavar="ID", help="the widget agent's id")
    target.add_argument("--session-url", metavar="URL", help="a session URL (single-use)")
    call.add_argument("--api-key", metavar="KEY", help=f"API key (default: ${API_KEY_ENV})")
    call.add_argument("--base-url", default=DEFAULT_BASE_URL, metavar="URL",
                      help="token route base URL")
    _add_call_options(call, demo=False)
    serve = commands.add_parser("serve", formatter_class=_Formatter,
                                help="run the local emulator",
                                description="Run the local emulator of the Anunzi service.")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind")
    serve.add_argument("--port", type=_port, default=8765, help="TCP port (0: any free port)")
    serve.add_argument("--api-key", action="append", metavar="KEY",
                       help=f"accepted API key, repeatable (default: {DEFAULT_API_KEY!r})")
    serve.add_argument("--pace", choices=("realtime", "fast"), default="realtime",
                       help="agent audio in real time or as fast as possible")
    serve.add_argument("--token-ttl", type=_POSITIVE_FLOAT, default=60.0, metavar="S",
                       help="seconds a session token stays valid")
    serve.add_argument("--server", choices=("websockets", "picows"), default="websockets",
                       help="the WebSocket server: picows takes about half the CPU per "
                            "session, for load tests (needs the load extra)")
    _add_verbose(serve, top=False)
    devices = commands.add_parser("devices", formatter_class=_Formatter,
                                  help="list audio input and output devices",
                                  description="List the audio devices (needs sounddevice).")
    _add_verbose(devices, top=False)
    _add_load_parser(commands)
    return parser


def _add_load_parser(commands: Any) -> None:
    load = commands.add_parser(
        "load", formatter_class=_Formatter, help="load-test an agent with many callers (Locust)",
        description="Run many real-time calls at once on Locust, headless, and write Locust's "
                    "HTML and CSV reports and summary.json into the report folder. Exit 0 when "
                    "every call completed and no sample was lost. Needs the load extra: "
                    'pip install "anunzi-fast[load]".')
    target = load.add_mutually_exclusive_group(required=True)
    target.add_argument("--emulator", action="store_true",
                        help="start the embedded emulator, in its own process, and call it")
    target.add_argument("--base-url", metavar="URL", help="the service's token route base URL")
    load.add_argument("--assistant-id", metavar="ID",
                      help="the agent to call (with --emulator: 'echo' by default)")
    load.add_argument("--api-key", metavar="KEY", help=f"API key (default: ${API_KEY_ENV})")
    load.add_argument("--users", type=_POSITIVE_INT, default=10, metavar="N",
                      help="concurrent callers")
    load.add_argument("--spawn-rate", type=_POSITIVE_FLOAT, default=10.0, metavar="R",
                      help="callers started per second")
    load.add_argument("--run-time", default="60s", metavar="TIME",
                      help="how long to start calls (e.g. 60s, 5m); calls under way then finish")
    load.add_argument("--processes", type=_POSITIVE_INT, default=1, metavar="P",
                      help="load generator processes (Locust workers)")
    load.add_argument("--input", metavar="WAV",
                      help="what each caller says; the bundled speech sample by default")
    load.add_argument("--frame-ms", type=_POSITIVE_FLOAT, default=20.0, metavar="MS",
                      help="audio per message")
    load.add_argument("--driver", choices=("light", "client"),
                      help="light (picows, the default when installed) or client "
                           "(anunzi_fast.connect)")
    load.add_argument("--report", default="anunzi-load-report", metavar="DIR",
                      help="folder for report.html, locust_*.csv, locust.log and summary.json")
    _add_verbose(load, top=False)


def _version() -> str:
    try:
        return version("anunzi-fast")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        from . import __version__

        return __version__


# --- entry point ------------------------------------------------------------------------------


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
