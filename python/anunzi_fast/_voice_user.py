"""Locust's side of the load tester: :class:`VoiceUser`, its options, and the figures.

Imported through ``anunzi_fast.loadtest.VoiceUser`` only: importing Locust monkey-patches the
process with gevent. The calls themselves run on an asyncio loop in a real OS thread of each
Locust process (:class:`~anunzi_fast._loop_thread.LoopThread`); their measurements come back to
gevent's thread through the hub's thread-safe callbacks, where they are fired as Locust
requests and tallied. Workers send their tally to the master with each report; the master (or
a single process) prints progress and writes ``summary.json``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from importlib.resources import as_file, files
from typing import Any, ClassVar

import gevent  # type: ignore[import-untyped]
import gevent.event  # type: ignore[import-untyped]
import gevent.monkey  # type: ignore[import-untyped]
from locust import User, constant, events, task
from locust.env import Environment
from locust.runners import STATE_STOPPING, MasterRunner, WorkerRunner
from locust.stats import CSV_STATS_INTERVAL_SEC

from ._loadgen import (
    DEFAULT_FRAME_MS,
    DRIVERS,
    MAX_FRAME_MS,
    MIN_FRAME_MS,
    CallConfig,
    CallOutcome,
    CallScript,
    default_driver,
    run_call,
)
from ._loop_thread import LoopThread
from ._redact import install_log_redaction, redact_url, register_secret
from .auth import API_KEY_ENV, DEFAULT_BASE_URL, _validate_api_key
from .errors import AnunziError, InvalidArgumentError
from .loadtest import ERROR_PREFIX, MEASURES, PROGRESS_PREFIX, LoadTally, percentiles

__all__ = ["VoiceUser"]

PROGRESS_SECONDS = 2.0
# Custom messages: the master asks its workers to let their calls end; they answer.
DRAIN = "anunzi_fast_drain"
DRAINED = "anunzi_fast_drained"
# After a failed call a user waits this long before the next one, so that a wrong key or a
# service that is down is not hammered in a tight loop.
PAUSE_AFTER_FAILURE = 1.0

_logger = logging.getLogger("anunzi_fast.loadtest")
_start_new_thread = gevent.monkey.get_original("_thread", "start_new_thread")


class _Process:
    """This process's loop thread (started with its first call), scripts and tally."""

    def __init__(self) -> None:
        self.thread = LoopThread(start_thread=_start_new_thread)
        self.tally = LoadTally()
        self.scripts: dict[tuple[str, float], CallScript] = {}
        self.started_at = time.monotonic()

    def script(self, path: str | None, frame_ms: float) -> CallScript:
        key = (path or "", frame_ms)
        if key not in self.scripts:
            if path is None:
                with as_file(files("anunzi_fast") / "data" / "hello.wav") as bundled:
                    self.scripts[key] = CallScript.from_wav(os.fspath(bundled), frame_ms)
            else:
                self.scripts[key] = CallScript.from_wav(path, frame_ms)
        return self.scripts[key]


_PROCESS = _Process()


# --- options ------------------------------------------------------------------------------------


def _add_options(parser: Any) -> None:
    group = parser.add_argument_group("anunzi-fast VoiceUser",
                                      f"The API key is read from ${API_KEY_ENV}.")
    group.add_argument("--assistant-id", default=None, help="the agent to call")
    group.add_argument("--input-wav", default=None,
                       help="what each caller says (any WAV); the bundled sample by default")
    group.add_argument("--frame-ms", type=float, default=None,
                       help=f"audio per message, ms (default {DEFAULT_FRAME_MS:g})")
    group.add_argument("--voice-driver", choices=DRIVERS, default=None,
                       help="light (picows, the default when installed) or client "
                            "(anunzi_fast.connect)")
    group.add_argument("--reply-timeout", type=float, default=None,
                       help="seconds allowed for the agent's answers after the speech")
    group.add_argument("--hangup-after", type=float, default=None,
                       help="seconds of agent silence after its answer before hanging up")
    group.add_argument("--summary-json", default=None,
                       help="write the run's figures here (master or single process)")
    group.add_argument("--voice-progress", action="store_true", default=False,
                       help="print calls, failures and p95 every 2 s (master or single process)")


def _option(environment: Environment, name: str, default: Any) -> Any:
    """A command-line option if given (the master passes them to its workers), else default."""
    value = getattr(environment.parsed_options, name, None)
    return default if value is None else value


class VoiceUser(User):
    """A caller: each task is one whole real-time call to the agent.

    Subclass it in a locustfile and set what the command line does not: the command-line
    options (``--assistant-id``, ``--input-wav``, ``--frame-ms``, ``--voice-driver``,
    ``--reply-timeout``, ``--hangup-after``) override these attributes. The base URL is
    Locust's ``--host`` (or ``host``); the API key comes from ``$ANUNZI_API_KEY``.

    Attributes:
        assistant_id: The agent to call.
        input_wav: What the caller says (any WAV); ``None``: the bundled sample.
        frame_ms: Audio per message (20 ms, a microphone block).
        driver: ``"light"`` (picows) or ``"client"`` (:func:`anunzi_fast.connect`);
            ``None``: light when picows is installed.
        reply_timeout: Seconds allowed for the agent's answers once the speech is sent.
        hangup_after: Seconds of agent silence after its last answer before hanging up.
        agent_ready_timeout: Seconds allowed for ``status_agent_ready``.
    """

    abstract = True
    wait_time = constant(0)  # a caller calls again as soon as it hung up
    assistant_id: ClassVar[str | None] = None
    input_wav: ClassVar[str | None] = None
    frame_ms: ClassVar[float] = DEFAULT_FRAME_MS
    driver: ClassVar[str | None] = None
    reply_timeout: ClassVar[float] = 15.0
    hangup_after: ClassVar[float] = 1.0
    agent_ready_timeout: ClassVar[float] = 15.0

    @classmethod
    def settings(cls, environment: Environment) -> tuple[CallConfig, CallScript]:
        """This class's call configuration and script, options applied.

        Raises:
            InvalidArgumentError: For a missing assistant id or key, or a bad input or option.
        """
        config = cls._config_of(environment, _validate_api_key(None))  # $ANUNZI_API_KEY
        register_secret(config.api_key)
        script = _PROCESS.script(_option(environment, "input_wav", cls.input_wav),
                                 _option(environment, "frame_ms", cls.frame_ms))
        return config, script

    @classmethod
    def _config_of(cls, environment: Environment, api_key: str) -> CallConfig:
        assistant_id = _option(environment, "assistant_id", cls.assistant_id)
        if not assistant_id:
            raise InvalidArgumentError(
                f"{cls.__name__} needs an assistant id: --assistant-id ID, or assistant_id "
                "in the class")
        frame_ms = _option(environment, "frame_ms", cls.frame_ms)
        if not MIN_FRAME_MS <= frame_ms <= MAX_FRAME_MS:
            raise InvalidArgumentError(f"frame_ms must be from {MIN_FRAME_MS:g} to "
                                       f"{MAX_FRAME_MS:.0f}, not {frame_ms!r}")
        return CallConfig(
            assistant_id=assistant_id, api_key=api_key,
            base_url=environment.host or cls.host or DEFAULT_BASE_URL,
            driver=_option(environment, "voice_driver", cls.driver) or default_driver(),
            reply_timeout=_option(environment, "reply_timeout", cls.reply_timeout),
            hangup_after=_option(environment, "hangup_after", cls.hangup_after),
            agent_ready_timeout=cls.agent_ready_timeout)

    @classmethod
    def check(cls, environment: Environment) -> None:
        """Check the options before the run: all of them in a single process; on a master,
        what does not depend on the workers (their key and WAV are theirs to check)."""
        if isinstance(environment.runner, MasterRunner):
            cls._config_of(environment, api_key="")
        else:
            cls.settings(environment)

    def on_start(self) -> None:
        self._config, self._script = self.settings(self.environment)

    @task
    def call(self) -> None:
        """One whole call; returns when it has ended."""
        environment, tally = self.environment, _PROCESS.tally
        config, script = self._config, self._script
        hub = gevent.get_hub()
        result: gevent.event.AsyncResult = gevent.event.AsyncResult()

        def fire(kind: str, seconds: float | None, error: AnunziError | None,
                 length: int) -> None:  # gevent's thread
            if error is None and seconds is not None:
                tally.add_value(kind, seconds)
            environment.events.request.fire(
                request_type=kind, name=config.assistant_id,
                response_time=(seconds or 0.0) * 1000, response_length=length,
                exception=error, context={})

        def finish(outcome: CallOutcome | BaseException) -> None:  # gevent's thread
            if isinstance(outcome, CallOutcome):
                tally.add_outcome(outcome, script.frame_samples)
            result.set(outcome)

        def report(kind: str, seconds: float | None, error: AnunziError | None,
                   length: int) -> None:  # the loop's thread
            hub.loop.run_callback_threadsafe(fire, kind, seconds, error, length)

        tally.calls_started += 1
        handle = _PROCESS.thread.spawn(
            lambda: run_call(config, script, report),
            lambda outcome: hub.loop.run_callback_threadsafe(finish, outcome))
        try:
            outcome = result.get()
        except BaseException:  # GreenletExit: the test stops; hang up, the tally still counts
            handle.cancel()
            raise
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome.error is not None:
            gevent.sleep(PAUSE_AFTER_FAILURE)


# --- figures: workers to master, progress, summary ----------------------------------------


def _on_init(environment: Environment, **_: Any) -> None:
    install_log_redaction(("locust",))
    runner = environment.runner
    options = environment.parsed_options
    hooks: Any = environment.events  # Locust's hooks are untyped
    if isinstance(runner, WorkerRunner):
        def send(client_id: str, data: dict[str, Any]) -> None:
            data["anunzi_fast"] = _PROCESS.tally.take()

        hooks.report_to_master.add_listener(send)
        runner.register_message(DRAIN, _drain_worker, concurrent=True)
        return
    if isinstance(runner, MasterRunner):
        def receive(client_id: str, data: dict[str, Any]) -> None:
            if "anunzi_fast" in data:
                _PROCESS.tally.merge(data["anunzi_fast"])

        hooks.worker_report.add_listener(receive)
        drained: set[str] = set()
        runner.register_message(DRAINED, lambda msg, **_: drained.add(msg.node_id))
        if options is not None and getattr(options, "headless", False):
            hooks.test_stopping.add_listener(lambda **_: _drain_workers(environment, drained))
    if options is not None and getattr(options, "voice_progress", False):
        gevent.spawn(_print_progress, environment)
    summary_path = getattr(options, "summary_json", None) if options is not None else None
    if summary_path:
        # After runner.quit(): the workers' last reports have arrived by then.
        hooks.quit.add_listener(lambda exit_code, **_: _write_summary(environment, summary_path))


def _check_settings(environment: Environment, **_: Any) -> None:
    # Fail at once, with one clear line, rather than once per user.
    if isinstance(environment.runner, WorkerRunner):
        return
    _PROCESS.started_at = time.monotonic()
    for user_class in environment.user_classes:
        if issubclass(user_class, VoiceUser):
            try:
                user_class.check(environment)
            except AnunziError as exc:
                _logger.error("%s", exc)
                print(f"{ERROR_PREFIX} {exc}", file=sys.stderr, flush=True)
                environment.process_exit_code = 2
                if environment.runner is not None:
                    gevent.spawn_later(0, environment.runner.quit)
                return


def _drain_workers(environment: Environment, drained: set[str]) -> None:
    """A headless master's run time is over: let the workers' calls finish, as one process's do.

    Locust's master quits at once at the end of ``--run-time``: its workers stop their users
    within ``--stop-timeout``, but their last report comes too late. Asked to drain first,
    each worker lets its calls end, reports them and answers; then the master quits.
    """
    runner = environment.runner
    if not isinstance(runner, MasterRunner) or not environment.stop_timeout:
        return
    runner.update_state(STATE_STOPPING)  # no new users for a worker that is done first
    workers = {client.id for client in runner.clients.all}
    runner.send_message(DRAIN)
    deadline = time.monotonic() + environment.stop_timeout + 10
    while not workers <= drained and time.monotonic() < deadline:
        gevent.sleep(0.1)


def _drain_worker(environment: Environment, msg: Any, **_: Any) -> None:
    runner = environment.runner
    assert isinstance(runner, WorkerRunner)
    runner.stop_users(dict(runner.user_classes_count))  # within --stop-timeout
    runner._send_stats()
    runner.send_message(DRAINED)


def _print_progress(environment: Environment) -> None:
    while True:
        gevent.sleep(PROGRESS_SECONDS)
        runner = environment.runner
        if runner is None or runner.state in ("stopped", "quitting"):
            continue
        tally = _PROCESS.tally
        p95 = {kind: percentiles(tally.values[kind][-2000:])["p95"] for kind in MEASURES}
        shown = ", ".join(f"{kind} {value:.3f}" for kind, value in p95.items()
                          if value is not None) or "-"
        elapsed = time.monotonic() - _PROCESS.started_at
        print(f"{PROGRESS_PREFIX}{elapsed:4.0f}s] users {runner.user_count} | calls "
              f"{tally.calls_started} "
              f"started, {tally.calls_completed} completed, {tally.calls_failed} failed | "
              f"p95 (s, recent) {shown}", file=sys.stderr, flush=True)


def _write_summary(environment: Environment, path: str) -> None:
    options = environment.parsed_options
    if getattr(options, "csv_prefix", None):
        # Locust writes its CSV files every second and not at the end: let it write once
        # more, so that they hold the calls that ended after the run time too.
        gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.2)
    summary = _PROCESS.tally.summary(
        users=getattr(options, "num_users", None),
        target=redact_url(environment.host or DEFAULT_BASE_URL),
    )
    with open(path, "w", encoding="utf-8") as file:
        json.dump(summary, file, indent=2)
        file.write("\n")


_hooks: Any = events  # Locust's hooks are untyped
_hooks.init_command_line_parser.add_listener(_add_options)
_hooks.init.add_listener(_on_init)
_hooks.test_start.add_listener(_check_settings)
