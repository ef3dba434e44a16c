"""The load tester: its engine in process, and Locust (VoiceUser, the load command, a master
with two workers) in subprocesses only, so that gevent never patches this test process."""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

if importlib.util.find_spec("locust") is None or importlib.util.find_spec("picows") is None:
    # Checked without importing: importing Locust would gevent-patch this test process.
    pytest.skip("the load tester's tests need the 'load' extra (Locust, picows)",
                allow_module_level=True)

from anunzi_fast._light_driver import FramePacer
from anunzi_fast._loadgen import (
    CallConfig,
    CallOutcome,
    CallScript,
    NoReplyError,
    _Turns,
    run_call,
)
from anunzi_fast._loop_thread import LoopThread
from anunzi_fast.emulator import DEFAULT_API_KEY, Emulator, Fault
from anunzi_fast.errors import (
    AgentNotReadyError,
    AnunziError,
    AuthenticationError,
    InvalidArgumentError,
    ServerError,
)
from anunzi_fast.loadtest import (
    MEASURES,
    LoadTally,
    account_samples,
    parse_run_time,
    percentiles,
)
from anunzi_fast.metrics import TurnClock
from anunzi_fast.vad import EnergyVad
from anunzi_fast.wav import write_wav

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_LOCUSTFILE = REPO / "benchmarks" / "locustfile_example.py"
SECRET_KEY = "sk-load-test-secret-0123456789"


def _utterance(seconds: float = 0.6, rate: int = 48_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def short_wav(tmp_path_factory: pytest.TempPathFactory) -> str:
    """0.6 s of tone at 16 kHz: one utterance, so a call lasts about 1.5 s."""
    path = tmp_path_factory.mktemp("load") / "short.wav"
    write_wav(str(path), (_utterance(0.6, 16_000) * 32767).astype(np.int16), 16_000)
    return str(path)


def _config(base_url: str, driver: str, **changes: Any) -> CallConfig:
    options: dict[str, Any] = {"assistant_id": "echo", "api_key": DEFAULT_API_KEY,
                               "base_url": base_url, "driver": driver, "hangup_after": 0.3,
                               "reply_timeout": 5.0}
    options.update(changes)
    return CallConfig(**options)


# --- the script -------------------------------------------------------------------------------


def test_the_bundled_sample_makes_a_script_of_20_ms_frames() -> None:
    from importlib.resources import as_file, files

    with as_file(files("anunzi_fast") / "data" / "hello.wav") as path:
        script = CallScript.from_wav(str(path))
    assert script.frame_samples == 960
    assert all(len(frame) == 960 and frame.dtype == np.int16 for frame in script.frames)
    assert script.utterances >= 1
    assert script.speech_seconds == pytest.approx(len(script.frames) * 0.02)


def _two_utterances() -> CallScript:
    pause = np.zeros(28_800, np.float32)  # 0.6 s: longer than the VAD's hangover
    speech = np.concatenate([pause[:4800], _utterance(0.5), pause, _utterance(0.3)])
    return CallScript((speech * 32767).astype(np.int16), frame_ms=30)


@pytest.mark.parametrize("chunk", [1440, 960, 700, 5000])
def test_the_scripted_vad_says_what_a_live_vad_says_whatever_the_chunks(chunk: int) -> None:
    script = _two_utterances()
    audio = np.concatenate([*script.frames, *[script.silence] * 40])
    live, scripted = EnergyVad(48_000), script.vad()
    for start in range(0, len(audio), chunk):
        piece = audio[start : start + chunk]
        assert scripted.process(piece) == live.process(piece)
    assert script.utterances == 2


def test_turn_clocks_agree_batched_eager_and_scripted() -> None:
    script = _two_utterances()
    frames = [*script.frames, *[script.silence] * 60]
    clocks = [TurnClock([], batch=True), TurnClock([], batch=False),
              TurnClock([], vad=script.vad(), batch=False)]
    # The agent answers 0.3 s after the first utterance ends (before the VAD's hangover has
    # confirmed it) and 0.6 s after the second; audio frames every 20 ms for 0.4 s each.
    replies = [0.25 + 0.5 + 0.3, 0.25 + 0.5 + 0.6 + 0.3 + 0.6]
    arrivals = sorted(start + k * 0.02 for start in replies for k in range(20))
    now = 0.0
    for frame in frames:
        for clock in clocks:
            clock.on_sent(frame, now)
        while arrivals and arrivals[0] <= now + 0.03:
            at = arrivals.pop(0)
            for clock in clocks:
                clock.on_agent_audio(at)
        now += 0.03
    clocks[0].listen()
    assert len(clocks[0].latencies) == 2
    assert clocks[0].latencies == clocks[1].latencies == clocks[2].latencies


@pytest.mark.parametrize("frame_ms", [0, 4.9, 171, float("nan")])
def test_frame_sizes_out_of_range_are_refused(frame_ms: float) -> None:
    with pytest.raises(InvalidArgumentError, match="frame_ms"):
        CallScript(np.ones(48_000, np.int16) * 10_000, frame_ms)


def test_an_input_without_speech_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "quiet.wav"
    write_wav(str(path), np.zeros(16_000, np.int16), 16_000)
    with pytest.raises(InvalidArgumentError, match="no speech"):
        CallScript.from_wav(str(path))


def test_bad_call_settings_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="driver"):
        _config("http://127.0.0.1:1", "carrier-pigeon")
    with pytest.raises(InvalidArgumentError, match="reply_timeout"):
        _config("http://127.0.0.1:1", "light", reply_timeout=0)
    assert DEFAULT_API_KEY not in repr(_config("http://127.0.0.1:1", "light"))


# --- the engine against an emulator, both drivers -----------------------------------------------


class Reports:
    def __init__(self) -> None:
        self.items: list[tuple[str, float | None, Exception | None, int]] = []

    def __call__(self, kind: str, seconds: float | None, error: Exception | None,
                 length: int) -> None:
        self.items.append((kind, seconds, error, length))

    def kinds(self) -> list[str]:
        return [kind for kind, *_ in self.items]


async def test_the_light_driver_logs_no_secret_at_any_level(
        short_wav: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(1)  # picows' own debug level (9), which prints its handshake, included
    script = CallScript.from_wav(short_wav)
    async with asyncio.timeout(30), Emulator(pace="fast") as emulator:
        outcome = await run_call(_config(emulator.base_url, "light"), script, Reports())
        await asyncio.wait_for(emulator.sessions[0].closed.wait(), 5)
    assert outcome.error is None
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "GET /websocket/start" in logged  # picows' handshake log is there, redacted:
    assert "token=" not in logged.replace("token=<redacted>", "")
    assert DEFAULT_API_KEY not in logged


@pytest.mark.parametrize("driver", ["light", "client"])
async def test_calls_are_measured_and_every_sample_is_accounted_for(driver: str,
                                                                    short_wav: str) -> None:
    script = CallScript.from_wav(short_wav)
    async with asyncio.timeout(30), Emulator(pace="fast") as emulator:
        reports = [Reports() for _ in range(3)]
        outcomes = await asyncio.gather(*(
            run_call(_config(emulator.base_url, driver), script, report) for report in reports))
        for record in emulator.sessions:
            await asyncio.wait_for(record.closed.wait(), 5)
        records = list(emulator.sessions)
    assert len(records) == 3
    for outcome, report in zip(outcomes, reports, strict=True):
        assert outcome.error is None and not outcome.cut, outcome
        metrics = outcome.metrics
        assert metrics.agent_ready_after is not None and metrics.first_audio_after is not None
        assert len(metrics.turn_latencies) == script.utterances == 1
        assert 0.3 < metrics.turn_latencies[0] < 2.0  # the emulator's VAD waits 0.4 s
        assert outcome.close_code == 1000
        assert outcome.frames_sent * script.frame_samples == metrics.samples_sent
        assert report.kinds()[0] == "connect" and report.kinds()[-1] == "call"
        assert {"agent_ready", "first_audio", "turn"} <= set(report.kinds())
        assert all(error is None for *_, error, _ in report.items)
    sent = sorted(outcome.metrics.samples_sent for outcome in outcomes)
    received = sorted(outcome.metrics.samples_received for outcome in outcomes)
    assert sent == sorted(record.protocol.samples_received for record in records)
    assert received == sorted(record.protocol.samples_sent for record in records)


@pytest.mark.parametrize("driver", ["light", "client"])
async def test_failures_carry_our_error_classes_and_their_stage(driver: str,
                                                                short_wav: str) -> None:
    script = CallScript.from_wav(short_wav)
    async with asyncio.timeout(30), Emulator(pace="fast") as emulator:
        cases = [
            (_config(emulator.base_url, driver, api_key="wrong-key-123"), AuthenticationError,
             "connect"),
            (_config(emulator.base_url, driver, assistant_id=Fault.CLOSE_1011), ServerError,
             "call"),
            (_config(emulator.base_url, driver, assistant_id=Fault.NEVER_READY,
                     agent_ready_timeout=0.3), AgentNotReadyError, "agent_ready"),
        ]
        for config, error_class, stage in cases:
            report = Reports()
            outcome = await run_call(config, script, report)
            assert isinstance(outcome.error, error_class), outcome
            assert outcome.failed_at == stage
            assert report.items[-1][0] == stage and report.items[-1][2] is outcome.error


def test_an_agent_that_does_not_answer_in_time_fails_the_turn(short_wav: str) -> None:
    script = CallScript.from_wav(short_wav)
    config = _config("http://127.0.0.1:1", "light", reply_timeout=2.0, hangup_after=0.5)
    outcome = CallOutcome()
    turns = _Turns(script, config, Reports(), outcome, started=100.0)
    metrics = outcome.metrics
    metrics.agent_ready_after = 0.01
    assert turns.verdict(101.0, metrics) is False  # still speaking
    turns.speech_sent_at = 101.0
    assert turns.verdict(102.9, metrics) is False
    error = turns.verdict(103.1, metrics)
    assert isinstance(error, NoReplyError) and "0 of 1 utterances" in str(error)
    metrics.turn_latencies.append(0.4)
    turns.last_agent_audio = 103.0
    assert turns.verdict(103.4, metrics) is False  # the answer may go on
    assert turns.verdict(103.6, metrics) is True  # silent long enough: hang up


def test_an_agent_that_is_never_ready_fails_even_while_the_user_speaks(short_wav: str) -> None:
    script = CallScript.from_wav(short_wav)
    config = _config("http://127.0.0.1:1", "light", agent_ready_timeout=1.0)
    outcome = CallOutcome()
    turns = _Turns(script, config, Reports(), outcome, started=100.0)
    assert turns.verdict(100.5, outcome.metrics) is False
    assert isinstance(turns.verdict(101.5, outcome.metrics), AgentNotReadyError)


async def test_a_cancelled_call_hangs_up_and_still_counts(short_wav: str) -> None:
    script = CallScript.from_wav(short_wav)
    async with asyncio.timeout(30), Emulator(pace="fast") as emulator:
        task = asyncio.create_task(run_call(_config(emulator.base_url, "light"), script,
                                            Reports()))
        await asyncio.sleep(0.5)
        task.cancel()
        outcome = await task
        record = emulator.sessions[-1]
        await asyncio.wait_for(record.closed.wait(), 5)
    assert outcome.cut and outcome.error is None
    assert outcome.metrics.samples_sent == record.protocol.samples_received > 0
    assert record.close_code == 1000


def test_loop_threads_run_calls_and_hand_back_their_outcome(short_wav: str) -> None:
    script = CallScript.from_wav(short_wav)
    server, calls = LoopThread(), LoopThread()
    server.start()
    assert server.loop is not None

    async def start() -> Emulator:
        emulator = Emulator(pace="fast")
        await emulator.start()
        return emulator

    try:
        emulator = asyncio.run_coroutine_threadsafe(start(), server.loop).result(10)
        done: concurrent.futures.Future[CallOutcome | BaseException] = (
            concurrent.futures.Future())
        calls.spawn(lambda: run_call(_config(emulator.base_url, "light"), script, Reports()),
                    done.set_result)
        outcome = done.result(30)
        assert isinstance(outcome, CallOutcome) and outcome.error is None
        assert outcome.metrics.turn_latencies
        asyncio.run_coroutine_threadsafe(emulator.stop(), server.loop).result(10)
    finally:
        server.stop()
        calls.stop()


# --- figures ----------------------------------------------------------------------------------


def test_percentiles_interpolate_like_numpy() -> None:
    values = [0.5, 0.1, 0.3, 0.2, 0.4, 1.0, 0.05]
    figures = percentiles(values)
    assert figures["count"] == 7
    for p in (50, 90, 95, 99):
        assert figures[f"p{p}"] == pytest.approx(np.percentile(values, p))
    assert percentiles([]) == {"count": 0, "p50": None, "p90": None, "p95": None,
                               "p99": None, "max": None}


def test_worker_tallies_merge_into_the_masters() -> None:
    worker, master = LoadTally(), LoadTally()
    worker.calls_started = 3
    outcome = CallOutcome(frames_sent=10, frames_late=1)
    outcome.metrics.samples_sent, outcome.metrics.samples_received = 9600, 3200
    worker.add_outcome(outcome, 960)
    outcome.error = AuthenticationError("no")
    worker.add_outcome(outcome, 960)
    worker.add_value("turn", 0.5)
    master.merge(json.loads(json.dumps(worker.take())))
    master.merge(worker.take())  # taken: nothing twice
    summary = master.summary()
    assert summary["calls_started"] == 3 and summary["calls_completed"] == 1
    assert summary["calls_failed"] == 1 and summary["failures"] == {"AuthenticationError": 1}
    assert summary["samples"]["sent"] == 19200 and summary["samples_lost"] == 1920
    assert summary["turn_latency_s"]["count"] == 1
    assert set(MEASURES.values()) <= set(summary)
    account_samples(summary, {"sessions": 2, "user_samples_received": 19200,
                              "agent_samples_sent": 6400 + 5})
    assert summary["samples_lost"] == 1920 + 5


@pytest.mark.parametrize(("text", "seconds"), [("60", 60), ("60s", 60), ("2m", 120),
                                               ("1h30m", 5400), ("1m5s", 65)])
def test_run_times_parse_like_locusts(text: str, seconds: int) -> None:
    assert parse_run_time(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "soon", "5x", "-1"])
def test_bad_run_times_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="run time"):
        parse_run_time(text)


def test_importing_the_package_and_loadtest_does_not_import_locust() -> None:
    probe = ("import sys, anunzi_fast, anunzi_fast.loadtest, anunzi_fast.cli\n"
             "print(sorted(m for m in ('locust', 'gevent') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"


# --- Locust, in subprocesses --------------------------------------------------------------------


@pytest.fixture
def emulator_process() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The load command's emulator, in its own process (as Locust tests need)."""
    process = subprocess.Popen([sys.executable, "-m", "anunzi_fast.emulator.process"],
                               stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    try:
        yield process.stdout.readline().strip(), process
    finally:
        if process.poll() is None:
            process.communicate(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _environment(**extra: str) -> dict[str, str]:
    return {**os.environ, "ANUNZI_API_KEY": DEFAULT_API_KEY, **extra}


@pytest.mark.slow
def test_voice_user_in_a_locust_environment(
        emulator_process: tuple[str, subprocess.Popen[str]], short_wav: str,
        tmp_path: Path) -> None:
    base_url, _ = emulator_process
    script = tmp_path / "run_voice_user.py"
    script.write_text(textwrap.dedent(f"""
        import json, gevent
        from locust import events
        from locust.env import Environment
        from anunzi_fast.loadtest import VoiceUser

        class Caller(VoiceUser):
            assistant_id = "echo"
            input_wav = {short_wav!r}
            hangup_after = 0.3

        seen = []
        def on_request(request_type, exception, response_time, **_):
            seen.append((request_type, None if exception is None else type(exception).__name__,
                         response_time))
        env = Environment(user_classes=[Caller], host={base_url!r}, events=events)
        env.events.request.add_listener(on_request)
        runner = env.create_local_runner()
        env.events.test_start.fire(environment=env)
        runner.start(2, spawn_rate=10)
        deadline = 30
        while sum(kind == "call" for kind, *_ in seen) < 4 and deadline > 0:
            gevent.sleep(0.1); deadline -= 0.1
        runner.quit()
        print(json.dumps(seen))
    """), encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=90, env=_environment(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    kinds = [kind for kind, *_ in seen]
    assert kinds.count("call") >= 4
    assert {"connect", "agent_ready", "first_audio", "turn"} <= set(kinds)
    assert all(error is None for _, error, _ in seen)
    turns = [ms for kind, _, ms in seen if kind == "turn"]
    assert all(300 < ms < 2000 for ms in turns)  # milliseconds, as Locust counts them


def _load(args: list[str], tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str],
                                                               dict[str, Any]]:
    report = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "anunzi_fast", "load", *args, "--report", str(report)],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
        env={**os.environ, **env})
    summary_path = report / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return result, summary


def _all_output(result: subprocess.CompletedProcess[str], folder: Path) -> str:
    texts = [result.stdout, result.stderr]
    texts += [path.read_text(errors="replace") for path in folder.rglob("*") if path.is_file()]
    return "\n".join(texts)


@pytest.mark.slow
def test_the_load_command_against_the_embedded_emulator(short_wav: str, tmp_path: Path) -> None:
    result, summary = _load(["--emulator", "--users", "3", "--spawn-rate", "10", "--run-time",
                             "2s", "--input", short_wav], tmp_path)
    samples = summary["samples"]
    # Every sample arrived. Frames the generator sent too late for real time (a CPU starved
    # by other work on a shared machine) are the only loss allowed, and they fail the run.
    assert samples["uplink_missing"] == samples["downlink_missing"] == 0, samples
    assert summary["samples_lost"] == samples["late"]
    assert (result.returncode == 0) is (samples["late"] == 0), result.stderr[-3000:]
    report = tmp_path / "report"
    for name in ("report.html", "locust_stats.csv", "locust_failures.csv",
                 "locust_stats_history.csv", "summary.json"):
        assert (report / name).stat().st_size > 0, name
    assert summary["calls_started"] >= 3
    assert summary["calls_completed"] == summary["calls_started"]
    assert summary["calls_failed"] == 0
    assert summary["samples"]["checked_against"] == "emulator"
    assert summary["samples"]["emulator_received"] == summary["samples"]["sent"] > 0
    for name in MEASURES.values():
        figures = summary[name]
        assert figures["count"] >= 3
        assert figures["p50"] <= figures["p90"] <= figures["p95"] <= figures["p99"]
    stats = (report / "locust_stats.csv").read_text()
    for kind in ("connect", "agent_ready", "first_audio", "turn", "call"):
        assert f"{kind},echo" in stats
    assert "users" in result.stderr and "completed" in result.stderr  # progress
    assert f"samples lost        {samples['late']}" in result.stdout


@pytest.mark.slow
def test_the_load_command_fails_with_our_error_classes_and_keeps_the_key_secret(
        emulator_process: tuple[str, subprocess.Popen[str]], short_wav: str,
        tmp_path: Path) -> None:
    base_url, _ = emulator_process
    result, summary = _load(["--base-url", base_url, "--assistant-id", "echo", "--users", "2",
                             "--run-time", "2s", "--input", short_wav], tmp_path,
                            ANUNZI_API_KEY=SECRET_KEY)
    assert result.returncode == 3, result.stderr[-3000:]  # credentials, as for 'call'
    assert summary["calls_failed"] == summary["calls_started"] >= 2
    assert summary["failures"] == {"AuthenticationError": summary["calls_failed"]}
    assert "AuthenticationError" in (tmp_path / "report" / "locust_failures.csv").read_text()
    assert "AuthenticationError" in result.stdout
    assert SECRET_KEY not in _all_output(result, tmp_path / "report")


@pytest.mark.slow
def test_the_load_command_reports_a_failing_agent(short_wav: str, tmp_path: Path) -> None:
    result, summary = _load(["--emulator", "--assistant-id", Fault.CLOSE_1011, "--users", "2",
                             "--run-time", "1s", "--input", short_wav], tmp_path)
    assert result.returncode == 4
    assert summary["calls_failed"] >= 2 and set(summary["failures"]) == {"ServerError"}
    assert "failed" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    ([], "one of the arguments --emulator --base-url is required"),
    (["--base-url", "http://127.0.0.1:9"], "--assistant-id"),
    (["--base-url", "http://127.0.0.1:9", "--assistant-id", "a"], "no API key"),
    (["--emulator", "--run-time", "soon"], "run time"),
    (["--emulator", "--input", "missing.wav"], "missing.wav"),
    (["--emulator", "--frame-ms", "500"], "frame_ms"),
])
def test_the_load_command_refuses_bad_input_before_starting(args: list[str], message: str,
                                                            tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "ANUNZI_API_KEY"}
    result = subprocess.run([sys.executable, "-m", "anunzi_fast", "load", *args, "--report",
                             str(tmp_path / "report")], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_master_with_two_workers_on_loopback(
        emulator_process: tuple[str, subprocess.Popen[str]], short_wav: str,
        tmp_path: Path) -> None:
    base_url, _ = emulator_process
    port = str(_free_port())
    common = [sys.executable, "-m", "locust", "-f", str(EXAMPLE_LOCUSTFILE)]
    summary_path = tmp_path / "summary.json"
    # Only the workers call: the master needs no key.
    master_env = {key: value for key, value in os.environ.items() if key != "ANUNZI_API_KEY"}
    master = subprocess.Popen(
        [*common, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
         "--headless", "--expect-workers", "2", "-u", "4", "-r", "10", "-t", "3s",
         "--stop-timeout", "30", "--host", base_url, "--only-summary",
         "--input-wav", short_wav, "--hangup-after", "0.3",
         "--summary-json", str(summary_path), "--csv", str(tmp_path / "run")],
        env=master_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    workers = [subprocess.Popen(
        [*common, "--worker", "--master-host", "127.0.0.1", "--master-port", port],
        env=_environment(), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True) for _ in range(2)]
    try:
        _, master_err = master.communicate(timeout=120)
        worker_errs = [worker.communicate(timeout=60)[1] for worker in workers]
    finally:
        for process in (master, *workers):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert master.returncode == 0, master_err[-3000:]
    assert all(worker.returncode == 0 for worker in workers), worker_errs
    summary = json.loads(summary_path.read_text())
    assert summary["calls_started"] >= 4
    assert summary["calls_completed"] == summary["calls_started"]  # the drain counted them all
    assert summary["calls_failed"] == 0
    assert summary["turn_latency_s"]["count"] == summary["calls_completed"]
    stats = (tmp_path / "run_stats.csv").read_text()
    assert "turn,echo" in stats


async def test_the_pacer_keeps_time_for_every_call_when_one_fails() -> None:
    class FakeCall:
        def __init__(self, broken: bool) -> None:
            self.broken, self.ticks, self.failed = broken, 0, None

        def on_tick(self, lateness: float) -> None:
            self.ticks += 1
            if self.broken:
                raise ZeroDivisionError

        def fail(self, error: Exception, stage: str) -> None:
            self.failed = (error, stage)
            pacer.remove(self)  # type: ignore[arg-type]

    lateness: list[tuple[float, int]] = []
    pacer = FramePacer(0.005, on_tick=lambda late, calls: lateness.append((late, calls)))
    calls = [FakeCall(broken=index == 1) for index in range(6)]
    for call in calls:
        pacer.add(call)  # type: ignore[arg-type]
    await asyncio.sleep(0.2)
    for call in calls:
        pacer.remove(call)  # type: ignore[arg-type]
    broken = calls[1]
    assert broken.failed is not None and broken.failed[1] == "call"
    assert type(broken.failed[0]) is AnunziError and "ZeroDivisionError" in str(broken.failed[0])
    assert all(call.ticks >= 10 for index, call in enumerate(calls) if index != 1)
    assert sum(count for _, count in lateness) >= 50


@pytest.mark.slow
def test_a_locust_run_without_a_key_stops_at_once_with_one_clear_line(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "ANUNZI_API_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(EXAMPLE_LOCUSTFILE), "--headless", "-u", "1",
         "-t", "30s", "--host", "http://127.0.0.1:9"], capture_output=True, text=True,
        timeout=60, env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "anunzi-fast load: error:" in result.stderr and "ANUNZI_API_KEY" in result.stderr
