"""Load tests of voice agents on Locust: ``VoiceUser`` and the ``anunzi-fast load`` command.

:class:`VoiceUser` is a Locust ``User`` whose every task is one real call: token request,
session, the user's speech paced in real time, silence as an open microphone sends, and a
hang-up once the agent has answered. Each measurement reaches Locust with
``events.request.fire`` as it happens: request types ``connect``, ``agent_ready``,
``first_audio``, ``turn`` and ``call`` (the whole call), failures carrying our error classes.
The calls run on an asyncio loop in an OS thread of each Locust process
(:mod:`anunzi_fast._loadgen`); Locust's master and workers spread them over processes and
machines.

Importing this module does not import Locust (which monkey-patches the process with gevent):
``VoiceUser`` is loaded on first access, so only a locustfile or the Locust processes that
``anunzi-fast load`` starts pay for it.

:func:`run_load` is the ``load`` command: Locust headless for the common case, with an
embedded emulator in its own process when asked, progress while it runs, and a report folder
with Locust's HTML and CSV files and ``summary.json``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.util
import json
import math
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from importlib.resources import as_file, files
from typing import TYPE_CHECKING, Any, ClassVar, Final, TextIO

from . import errors
from ._redact import redact, redact_url, register_secret
from .auth import API_KEY_ENV, _validate_api_key, _validate_assistant_id, _validate_base_url
from .emulator.process import start_emulator_process
from .errors import EXIT_NETWORK, EXIT_OK, InvalidArgumentError

if TYPE_CHECKING:
    from ._loadgen import CallOutcome
    from ._voice_user import VoiceUser

__all__ = [
    "MEASURES",
    "SUMMARY_FILE",
    "LoadOptions",
    "LoadTally",
    "VoiceUser",
    "account_samples",
    "parse_run_time",
    "percentiles",
    "print_load_summary",
    "run_load",
]

# Locust request type -> the summary's name for its figures.
MEASURES: Final = {"connect": "connect_s", "agent_ready": "agent_ready_s",
                   "first_audio": "first_audio_s", "turn": "turn_latency_s"}
SUMMARY_FILE: Final = "summary.json"
# Lines of the Locust processes' stderr shown while a load command runs (the rest is logged).
PROGRESS_PREFIX: Final = "[load "
ERROR_PREFIX: Final = "anunzi-fast load: error:"
PERCENTILES: Final = (50, 90, 95, 99)
EMULATOR_ASSISTANT: Final = "echo"
_RUN_TIME = re.compile(r"^\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s?)?\s*$")


def __getattr__(name: str) -> Any:
    # VoiceUser subclasses locust.User: importing Locust monkey-patches the process, so it
    # happens only when the class is asked for.
    if name == "VoiceUser":
        from ._voice_user import VoiceUser

        return VoiceUser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_run_time(text: str) -> int:
    """Locust's run time (``60``, ``60s``, ``2m``, ``1h30m``) in seconds.

    Raises:
        InvalidArgumentError: If it is not one, or is zero.
    """
    match = _RUN_TIME.match(text)
    if not text.strip() or match is None:
        raise InvalidArgumentError(f"run time must look like 60s, 2m or 1h30m, not {text!r}")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise InvalidArgumentError(f"run time must be more than 0 s, not {text!r}")
    return total


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """``count``, ``p50``, ``p90``, ``p95``, ``p99`` (and ``max``) of seconds; ``None`` if empty."""
    figures: dict[str, float | int | None] = {"count": len(values)}
    if not values:
        figures.update({f"p{p}": None for p in PERCENTILES} | {"max": None})
        return figures
    ordered = sorted(values)
    for p in PERCENTILES:
        # Linear interpolation between the closest ranks (numpy's default).
        rank = (len(ordered) - 1) * p / 100
        low, high = math.floor(rank), math.ceil(rank)
        figures[f"p{p}"] = round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), 6)
    figures["max"] = round(ordered[-1], 6)
    return figures


@dataclass
class LoadTally:
    """What the calls of one process (or, merged, of a whole run) did.

    Workers send :meth:`take` to the master, which :meth:`merge` s them; the master writes
    :meth:`summary`. Times are seconds.
    """

    calls_started: int = 0
    calls_completed: int = 0
    calls_failed: int = 0
    calls_cut: int = 0
    samples_sent: int = 0
    samples_received: int = 0
    frames_sent: int = 0
    frames_late: int = 0
    late_samples: int = 0
    max_lateness: float = 0.0
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    values: dict[str, list[float]] = field(
        default_factory=lambda: {kind: [] for kind in MEASURES})

    def add_value(self, kind: str, seconds: float) -> None:
        if kind in self.values:
            self.values[kind].append(seconds)

    def add_outcome(self, outcome: CallOutcome, frame_samples: int) -> None:
        if outcome.error is not None:
            self.calls_failed += 1
            self.failures[type(outcome.error).__name__] += 1
        elif outcome.cut:
            self.calls_cut += 1
        else:
            self.calls_completed += 1
        self.samples_sent += outcome.metrics.samples_sent
        self.samples_received += outcome.metrics.samples_received
        self.frames_sent += outcome.frames_sent
        self.frames_late += outcome.frames_late
        self.late_samples += outcome.frames_late * frame_samples
        self.max_lateness = max(self.max_lateness, outcome.max_lateness)

    _COUNTERS: ClassVar[tuple[str, ...]] = (
        "calls_started", "calls_completed", "calls_failed", "calls_cut", "samples_sent",
        "samples_received", "frames_sent", "frames_late", "late_samples")

    def take(self) -> dict[str, Any]:
        """Everything so far, as JSON-able data, and start again from zero (a worker's report)."""
        data: dict[str, Any] = {name: getattr(self, name) for name in self._COUNTERS}
        data["max_lateness"] = self.max_lateness
        data["failures"] = dict(self.failures)
        data["values"] = self.values
        fresh = LoadTally()
        for name in (*self._COUNTERS, "max_lateness", "failures", "values"):
            setattr(self, name, getattr(fresh, name))
        return data

    def merge(self, data: dict[str, Any]) -> None:
        """Add a worker's :meth:`take`."""
        for name in self._COUNTERS:
            setattr(self, name, getattr(self, name) + int(data.get(name, 0)))
        self.max_lateness = max(self.max_lateness, float(data.get("max_lateness", 0.0)))
        self.failures.update(data.get("failures", {}))
        for kind, values in data.get("values", {}).items():
            self.add_value_list(kind, values)

    def add_value_list(self, kind: str, values: list[float]) -> None:
        if kind in self.values:
            self.values[kind].extend(float(value) for value in values)

    def summary(self, **extra: Any) -> dict[str, Any]:
        """The figures of ``summary.json`` (``samples_lost``: client-side only, see
        :func:`account_samples` for the emulator's side)."""
        result: dict[str, Any] = {
            "calls_started": self.calls_started,
            "calls_completed": self.calls_completed,
            "calls_failed": self.calls_failed,
            "calls_cut": self.calls_cut,
            "samples_lost": self.late_samples,
            "samples": {"sent": self.samples_sent, "received": self.samples_received,
                        "late": self.late_samples, "checked_against": "client"},
            "frames_sent": self.frames_sent,
            "frames_late": self.frames_late,
            "max_frame_delay_s": round(self.max_lateness, 6),
            "failures": dict(self.failures.most_common()),
        }
        for kind, name in MEASURES.items():
            result[name] = percentiles(self.values[kind])
        result.update(extra)
        return result


def account_samples(summary: dict[str, Any], emulator: dict[str, int]) -> None:
    """Check the calls' counters against what the emulator received and sent.

    ``samples_lost`` becomes the user samples the emulator did not receive, plus the agent
    samples the calls did not receive, plus those sent too late for real time (either
    difference counts, in whichever direction).
    """
    samples = summary["samples"]
    uplink = abs(samples["sent"] - emulator["user_samples_received"])
    downlink = abs(emulator["agent_samples_sent"] - samples["received"])
    samples.update({"emulator_received": emulator["user_samples_received"],
                    "emulator_sent": emulator["agent_samples_sent"],
                    "uplink_missing": uplink, "downlink_missing": downlink,
                    "checked_against": "emulator"})
    summary["samples_lost"] = uplink + downlink + samples["late"]
    summary["emulator_sessions"] = emulator["sessions"]


# --- the load command ---------------------------------------------------------------------------


@dataclass
class LoadOptions:
    """The ``anunzi-fast load`` command's options (see its ``--help``)."""

    report: str
    emulator: bool = False
    base_url: str | None = None
    assistant_id: str | None = None
    api_key: str | None = None
    users: int = 10
    spawn_rate: float = 10.0
    run_time: str = "60s"
    processes: int = 1
    input: str | None = None
    frame_ms: float = 20.0
    driver: str | None = None
    verbose: int = 0


def _check_load_extra(driver: str | None) -> str:
    from ._loadgen import default_driver

    if importlib.util.find_spec("locust") is None:
        raise InvalidArgumentError(
            "the load command needs Locust: pip install \"anunzi-fast[load]\"")
    chosen = driver or default_driver()
    if chosen == "light" and importlib.util.find_spec("picows") is None:
        raise InvalidArgumentError(
            "the light driver needs picows: pip install \"anunzi-fast[load]\"")
    return chosen


def _locustfile() -> str:
    # A file of the installed package (Locust takes a path); sibling of this module.
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "_locustfile.py")


async def run_load(options: LoadOptions, out: TextIO = sys.stdout, err: TextIO = sys.stderr
                   ) -> int:
    """Run a headless load test; return the exit code (0: every call completed, nothing lost).

    Raises:
        InvalidArgumentError: For bad options, an unreadable or silent input, an unwritable
            report folder, a missing key, or a missing ``load`` extra; before starting anything.
    """
    from ._loadgen import CallScript

    driver = _check_load_extra(options.driver)
    run_seconds = parse_run_time(options.run_time)
    if options.users < 1 or options.processes < 1 or not options.spawn_rate > 0:
        raise InvalidArgumentError("users and processes must be >= 1, spawn rate > 0")
    with contextlib.ExitStack() as stack:
        wav = options.input or os.fspath(stack.enter_context(
            as_file(files("anunzi_fast") / "data" / "hello.wav")))
        script = CallScript.from_wav(wav, options.frame_ms)  # fails now on a bad input
        wav = os.path.abspath(wav)
        report = os.path.abspath(options.report)
        _prepare_report_folder(report)
        if options.emulator:
            from .emulator import DEFAULT_API_KEY

            assistant_id = _validate_assistant_id(options.assistant_id or EMULATOR_ASSISTANT)
            api_key = DEFAULT_API_KEY
        else:
            if options.base_url is None or options.assistant_id is None:
                raise InvalidArgumentError("pass --emulator, or --base-url and --assistant-id")
            _validate_base_url(options.base_url)
            assistant_id = _validate_assistant_id(options.assistant_id)
            if options.api_key is None and not os.environ.get(API_KEY_ENV):
                raise InvalidArgumentError(
                    f"no API key: pass --api-key KEY or set the {API_KEY_ENV} environment "
                    "variable")
            api_key = _validate_api_key(options.api_key)
        register_secret(api_key)
        # Calls started before the end finish (they hang up by themselves) within this.
        stop_timeout = math.ceil(script.speech_seconds + 15 + 15 + 10 + 5)
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        emulator_cpus = set(cpus[-1:]) if options.emulator and len(cpus) >= 2 else None
        load_cpus = set(cpus[:-1]) if emulator_cpus else None
        emulator = await start_emulator_process(emulator_cpus) if options.emulator else None
        try:
            base_url = emulator.base_url if emulator else str(options.base_url)
            where = "the embedded emulator" if emulator else redact_url(base_url)
            print(f"load test of {assistant_id!r} at {where}: {options.users} users, "
                  f"{options.spawn_rate:g}/s, {run_seconds} s, {options.processes} "
                  f"process(es), driver {driver}, {script.frame_ms:g} ms frames"
                  + (f"; emulator on CPU {min(emulator_cpus)}" if emulator_cpus else ""),
                  file=err, flush=True)
            command = [
                sys.executable, "-m", "locust", "-f", _locustfile(), "--headless",
                "--users", str(options.users), "--spawn-rate", f"{options.spawn_rate:g}",
                "--run-time", f"{run_seconds}s", "--stop-timeout", str(stop_timeout),
                "--host", base_url, "--csv", os.path.join(report, "locust"),
                "--html", os.path.join(report, "report.html"),
                "--loglevel", ("WARNING", "INFO", "DEBUG")[min(options.verbose, 2)],
                "--assistant-id", assistant_id, "--input-wav", wav,
                "--frame-ms", f"{script.frame_ms:g}", "--voice-driver", driver,
                "--summary-json", os.path.join(report, SUMMARY_FILE), "--voice-progress",
                "--exit-code-on-error", "0", "--only-summary",
            ]
            if options.processes > 1:
                command += ["--processes", str(options.processes)]
            # The key travels in the environment, never on a command line that ps shows.
            environment = {**os.environ, API_KEY_ENV: api_key}
            with open(os.path.join(report, "locust.log"), "wb") as log:
                locust_code = await _run_locust(command, environment, log, load_cpus, err,
                                                show_all=options.verbose > 0)
        finally:
            totals = await emulator.stop() if emulator else None
    summary_path = os.path.join(report, SUMMARY_FILE)
    try:
        with open(summary_path, encoding="utf-8") as file:
            summary = json.load(file)
    except (OSError, ValueError):
        raise errors.AnunziError(
            f"Locust ended (exit code {locust_code}) without a summary: see "
            f"{os.path.join(report, 'locust.log')}") from None
    if totals is not None:
        account_samples(summary, totals)
    summary["driver"], summary["frame_ms"] = driver, script.frame_ms
    with open(summary_path, "w", encoding="utf-8") as file:
        json.dump(summary, file, indent=2)
        file.write("\n")
    print_load_summary(summary, report, out)
    return _exit_code(summary, err)


def _prepare_report_folder(report: str) -> None:
    try:
        os.makedirs(report, exist_ok=True)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot create the report folder {report!r}: "
                                   f"{exc.strerror or type(exc).__name__}") from None
    if not os.access(report, os.W_OK):
        raise InvalidArgumentError(f"cannot write into the report folder {report!r}")
    with contextlib.suppress(FileNotFoundError):  # a summary of an earlier run is not ours
        os.remove(os.path.join(report, SUMMARY_FILE))


async def _run_locust(command: list[str], environment: dict[str, str], log: Any,
                      cpus: set[int] | None, err: TextIO, *, show_all: bool) -> int:
    """Run Locust; its output goes to ``log``; progress and errors (or, with ``show_all``,
    all of its stderr) are shown too."""
    process = await asyncio.create_subprocess_exec(
        *command, env=environment, stdout=log, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL)
    if cpus:
        with contextlib.suppress(OSError):  # forked workers inherit it
            os.sched_setaffinity(process.pid, cpus)

    async def relay() -> None:
        assert process.stderr is not None
        async for raw in process.stderr:
            log.write(raw)
            line = redact(raw.decode(errors="replace"))
            if show_all or line.startswith((PROGRESS_PREFIX, ERROR_PREFIX)) or (
                    "Traceback" in line):
                err.write(line)
                err.flush()

    try:
        await relay()
        return await process.wait()
    except asyncio.CancelledError:
        # Ctrl-C or SIGTERM: Locust stops its users and still writes its reports.
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(process.wait())
        raise


def _exit_code(summary: dict[str, Any], err: TextIO) -> int:
    failures: dict[str, int] = summary.get("failures", {})
    if summary["calls_failed"]:
        worst = max(failures, key=lambda name: failures[name]) if failures else "AnunziError"
        code = _exit_code_of(worst)
        print(f"{summary['calls_failed']} of {summary['calls_started']} calls failed "
              f"(mostly {worst})", file=err)
        return code
    if summary["samples_lost"]:
        print(f"{summary['samples_lost']} samples lost", file=err)
        return EXIT_NETWORK
    if not summary["calls_completed"]:
        print("no call completed", file=err)
        return EXIT_NETWORK
    return EXIT_OK


def _exit_code_of(class_name: str) -> int:
    """The CLI's exit code for a failure class, by name (as the summary holds it)."""
    from . import _loadgen

    cls = getattr(errors, class_name, None) or getattr(_loadgen, class_name, None)
    if isinstance(cls, type):
        for base in cls.__mro__:
            if base in errors.EXIT_CODES:
                return errors.EXIT_CODES[base]
    return EXIT_NETWORK


def print_load_summary(summary: dict[str, Any], report: str, out: TextIO) -> None:
    """The run's figures, a few lines."""
    print(f"calls               {summary['calls_started']} started, "
          f"{summary['calls_completed']} completed, {summary['calls_failed']} failed"
          + (f", {summary['calls_cut']} cut at the end" if summary.get("calls_cut") else ""),
          file=out)
    for kind, name in MEASURES.items():
        figures = summary[name]
        if figures["count"]:
            print(f"{kind + ' (s)':<19} n={figures['count']} p50 {figures['p50']:.3f}  "
                  f"p90 {figures['p90']:.3f}  p95 {figures['p95']:.3f}  "
                  f"p99 {figures['p99']:.3f}", file=out)
    samples = summary["samples"]
    checked = ("checked against the emulator" if samples["checked_against"] == "emulator"
               else "late frames only: the service's side cannot be seen")
    print(f"samples lost        {summary['samples_lost']} ({checked}; sent {samples['sent']}, "
          f"received {samples['received']})", file=out)
    print(f"frames late         {summary['frames_late']} of {summary['frames_sent']} over "
          f"100 ms (the latest {summary['max_frame_delay_s'] * 1000:.1f} ms behind)", file=out)
    for name, count in summary.get("failures", {}).items():
        print(f"failure             {name}: {count}", file=out)
    print(f"report              {report} (report.html, locust_*.csv, locust.log, "
          f"{SUMMARY_FILE})",
          file=out)
