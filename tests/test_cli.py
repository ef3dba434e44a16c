"""The anunzi-fast command: calls against an emulator thread, exit codes, outputs, serve."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from anunzi_fast.cli import main
from anunzi_fast.emulator import DEFAULT_API_KEY, Emulator, Fault, SessionRecord
from anunzi_fast.errors import (
    AssistantNotFoundError,
    AudioDeviceError,
    AuthenticationError,
    ConnectionLostError,
    InvalidArgumentError,
    RemoteProtocolError,
    ServerError,
    SessionClosedError,
    exit_code_for,
)
from anunzi_fast.wav import read_wav, write_wav
from tests.conftest import browser_pcm16, tone


class EmulatorThread:
    """An emulator on its own event loop, so that ``main()`` can run ``asyncio.run``."""

    def __init__(self, **options: object) -> None:
        self.loop = asyncio.new_event_loop()
        options.setdefault("pace", "fast")
        self.emulator = Emulator(**options)  # type: ignore[arg-type]
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.emulator.start())
        self._started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.emulator.stop())
        # A test's own coroutines on this loop (a stop it asked for) end before it closes.
        pending = asyncio.all_tasks(self.loop)
        if pending:
            self.loop.run_until_complete(asyncio.wait(pending, timeout=5))
        self.loop.close()

    def __enter__(self) -> EmulatorThread:
        self._thread.start()
        assert self._started.wait(5)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def finished_session(self, index: int = 0) -> SessionRecord:
        record = self.emulator.sessions[index]
        asyncio.run_coroutine_threadsafe(record.closed.wait(), self.loop).result(5)
        return record

    def call_args(self, assistant_id: str = "echo", key: str = DEFAULT_API_KEY) -> list[str]:
        return ["call", "--assistant-id", assistant_id, "--api-key", key,
                "--base-url", self.emulator.base_url]


@pytest.fixture
def server() -> Iterator[EmulatorThread]:
    with EmulatorThread(assistant_ids=None) as running:
        yield running


@pytest.fixture
def speech_wav(tmp_path: Path) -> tuple[Path, np.ndarray]:
    speech = tone(0.5, dtype=np.int16)
    samples = np.concatenate((speech, np.zeros(24_000, np.int16)))
    write_wav(tmp_path / "speech.wav", samples, 48_000)
    return tmp_path / "speech.wav", samples


FAST = ["--pace", "fast", "--idle-timeout", "0.3"]


def test_call_sends_input_exactly_then_silence_and_writes_the_agent(
    server: EmulatorThread, speech_wav: tuple[Path, np.ndarray], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, samples = speech_wav
    output, record = tmp_path / "out.wav", tmp_path / "both.wav"
    code = main([*server.call_args(), "--input", str(path), "--output", str(output),
                 "--record", str(record), *FAST])
    assert code == 0
    session = server.finished_session()
    received = np.frombuffer(bytes(session.received), "<i2")
    assert received[: len(samples)].tobytes() == samples.tobytes()
    assert len(received) > len(samples) and not received[len(samples):].any()
    written = read_wav(output)
    assert written.sample_rate == 16_000
    assert written.samples.tobytes() == bytes(session.sent)
    stereo = read_wav(record)
    assert stereo.sample_rate == 48_000 and stereo.channels == 2
    assert stereo.samples[: len(samples), 0].tobytes() == samples.tobytes()
    assert np.abs(stereo.samples[:, 1]).max() > 5_000  # the agent side is there
    out = capsys.readouterr()
    assert "turn latency" in out.out and "seconds sent" in out.out
    assert "agent ready" in out.err  # the status line


def test_any_rate_float_stereo_input_and_output_rate(
    server: EmulatorThread, tmp_path: Path
) -> None:
    stereo = np.zeros((16_000, 2), np.float32)
    stereo[:8_000, 0] = 0.5 * np.sin(2 * np.pi * 300 * np.arange(8_000) / 16_000)
    write_wav(tmp_path / "in.wav", stereo, 16_000)
    code = main([*server.call_args(), "--input", str(tmp_path / "in.wav"),
                 "--output", str(tmp_path / "out.wav"), "--output-rate", "48000", *FAST])
    assert code == 0
    received = np.frombuffer(bytes(server.finished_session().received), "<i2")
    assert len(received) >= 48_000 and np.abs(received[:24_000]).max() > 5_000
    output = read_wav(tmp_path / "out.wav")
    assert output.sample_rate == 48_000
    assert len(output.samples) == 3 * len(server.finished_session().sent) // 2


def test_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "reply.wav"
    assert main(["demo", "--output", str(output), *FAST]) == 0
    out = capsys.readouterr().out
    assert "turn latency" in out and f"written to {output}" in out
    reply = read_wav(output)
    assert reply.sample_rate == 16_000 and reply.duration > 2.0  # greeting and two echoes


def test_max_duration_stops_a_realtime_call(
    server: EmulatorThread, speech_wav: tuple[Path, np.ndarray]
) -> None:
    path, _ = speech_wav
    assert main([*server.call_args(), "--input", str(path), "--max-duration", "0.2"]) == 0
    assert server.finished_session().bytes_received < 2 * 48_000 * 0.5


@pytest.mark.parametrize(
    ("assistant", "key", "code", "message"),
    [
        ("echo", "wrong-key-12345", 3, "API key was refused"),
        (Fault.FORBIDDEN.value, DEFAULT_API_KEY, 3, "may not use"),
        (Fault.BAD_BODY.value, DEFAULT_API_KEY, 4, "sessionURL"),
        (Fault.CLOSE_1011.value, DEFAULT_API_KEY, 4, "1011"),
        (Fault.ABRUPT_CLOSE.value, DEFAULT_API_KEY, 4, "1006"),
        ("a/b", DEFAULT_API_KEY, 2, "invalid assistant id"),
    ],
)
def test_failures_are_one_line_with_the_right_exit_code(
    server: EmulatorThread, speech_wav: tuple[Path, np.ndarray],
    capsys: pytest.CaptureFixture[str], assistant: str, key: str, code: int, message: str,
) -> None:
    path, _ = speech_wav
    assert main([*server.call_args(assistant, key), "--input", str(path), *FAST]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("anunzi-fast: error: ") and message in err[-1]
    assert not any("Traceback" in line for line in err)
    assert all(key not in line for line in err)


def test_output_is_written_even_when_the_session_fails(
    server: EmulatorThread, speech_wav: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    path, _ = speech_wav
    output = tmp_path / "partial.wav"
    assert main([*server.call_args(Fault.CLOSE_1011.value), "--input", str(path),
                 "--output", str(output), *FAST]) == 4
    assert read_wav(output).samples.tobytes() == bytes(server.finished_session().sent)


def test_unknown_assistant_and_reused_session_url_exit_3(
    speech_wav: tuple[Path, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = speech_wav
    with EmulatorThread(assistant_ids={"echo"}) as server:
        assert main([*server.call_args("nobody"), "--input", str(path), *FAST]) == 3
        assert "'nobody'" in capsys.readouterr().err
        url = server.emulator.issue_session_url()
        assert main(["call", "--session-url", url, "--input", str(path), *FAST]) == 0
        assert main(["call", "--session-url", url, "--input", str(path), *FAST]) == 3
        err = capsys.readouterr().err
        assert "refused" in err and url.split("token=")[1] not in err


def test_network_failure_exits_4(
    speech_wav: tuple[Path, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path, _ = speech_wav
    url = f"ws://127.0.0.1:{port}/websocket/start?token=secret-token-123"
    assert main(["call", "--session-url", url, "--input", str(path), *FAST]) == 4
    assert "secret-token-123" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["call", "--assistant-id", "a"],  # no --input
        ["call", "--input", "x.wav"],  # no target
        ["call", "--assistant-id", "a", "--session-url", "ws://x", "--input", "x.wav"],
        ["call", "--assistant-id", "a", "--input", "x.wav", "--idle-timeout", "-1"],
        ["nonsense"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2


def test_unreadable_input_and_missing_devices_exit_2(
    server: EmulatorThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert main([*server.call_args(), "--input", str(tmp_path / "missing.wav")]) == 2
    (tmp_path / "junk.wav").write_bytes(b"junk")
    assert main([*server.call_args(), "--input", str(tmp_path / "junk.wav")]) == 2
    # Without sounddevice (None in sys.modules makes its import fail, whether or not the devices
    # extra is installed): a clear message, not a traceback.
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    assert main([*server.call_args(), "--input", "mic", *FAST]) == 2
    assert "pip install sounddevice" in capsys.readouterr().err


def test_exit_code_mapping() -> None:
    assert exit_code_for(AuthenticationError("x")) == 3
    assert exit_code_for(AssistantNotFoundError("x")) == 3
    assert exit_code_for(InvalidArgumentError("x")) == 2
    assert exit_code_for(AudioDeviceError("x")) == 2
    assert exit_code_for(RemoteProtocolError("x")) == 4
    assert exit_code_for(ServerError("x", status=503)) == 4
    assert exit_code_for(ConnectionLostError("x")) == 4
    assert exit_code_for(SessionClosedError("x")) == 4


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("server", ["websockets", "picows"])
def test_serve_prints_url_and_curl_then_stops_cleanly(
    stop_signal: signal.Signals, server: str
) -> None:
    if server == "picows":
        pytest.importorskip("picows", reason="the picows server needs the 'load' extra")
    env = dict(os.environ)  # the subprocess imports the same anunzi_fast as this one
    process = subprocess.Popen(
        [sys.executable, "-m", "anunzi_fast", "serve", "--port", "0", "--pace", "fast",
         "--server", server],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("Anunzi emulator listening on http://127.0.0.1:")
        base_url = first.split()[-1]
        assert process.stdout.readline().strip() == "Get a session URL:"
        curl = process.stdout.readline()
        assert f"Bearer {DEFAULT_API_KEY}" in curl and f"{base_url}/websocket/token/echo" in curl
        response = httpx.get(f"{base_url}/websocket/token/echo",
                             headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"}, timeout=5)
        assert response.json()["sessionURL"].startswith("ws://127.0.0.1:")
        process.send_signal(stop_signal)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=5)


def test_serve_never_prints_a_chosen_key() -> None:
    env = dict(os.environ)  # the subprocess imports the same anunzi_fast as this one
    process = subprocess.Popen(
        [sys.executable, "-m", "anunzi_fast", "serve", "--port", "0", "--api-key", "my-secret-1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
        _, err = process.communicate(timeout=5)
    assert all("my-secret-1" not in line for line in [*lines, err])
    assert "$ANUNZI_API_KEY" in lines[2]


class DeviceThreadStream:
    """A fake sounddevice stream whose own thread calls back every block, like PortAudio."""

    def __init__(self, produce: bool, log: list[np.ndarray], **options: object) -> None:
        self.options = options
        self.produce = produce
        self.log = log
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        size = int(self.options["blocksize"])  # type: ignore[call-overload]
        callback = self.options["callback"]
        index = 0
        while not self._stopped.wait(0.005):  # faster than real time keeps the test short
            if self.produce:
                t = (np.arange(size) + index * size) / 48_000
                level = 0.4 if index < 25 else 0.0  # 0.5 s of "speech", then silence
                block = (level * np.sin(2 * np.pi * 300 * t)).astype(np.float32)[:, None]
                self.log.append(block[:, 0].copy())
                callback(block, size, None, None)  # type: ignore[operator]
            else:
                out = np.full((size, 1), 9.0, np.float32)
                callback(out, size, None, None)  # type: ignore[operator]
                self.log.append(out[:, 0].copy())
            index += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(5)

    def close(self) -> None:
        pass


def test_microphone_and_speaker_call(server: EmulatorThread) -> None:
    from anunzi_fast.call_runner import RunOptions, run_call
    from anunzi_fast.client import connect
    from anunzi_fast.devices import Microphone, Speaker

    captured: list[np.ndarray] = []
    played: list[np.ndarray] = []

    def open_call(**extra: object) -> object:
        return connect(server.emulator.issue_session_url(), **extra)  # type: ignore[arg-type]

    async def scenario() -> object:
        async with asyncio.timeout(20):
            return await run_call(
                open_call,  # type: ignore[arg-type]
                # Without echo cancellation: what was captured is exactly what is sent.
                RunOptions(input="mic", output="speaker", idle_timeout=0.5, max_duration=10,
                           echo_cancellation=False),
                microphone=lambda: Microphone(
                    max_blocks=10_000,  # never drop: the comparison below is exact
                    stream_factory=lambda **o: DeviceThreadStream(True, captured, **o)),
                speaker=lambda jitter: Speaker(
                    jitter, stream_factory=lambda **o: DeviceThreadStream(False, played, **o)),
            )

    result = asyncio.run(scenario())
    session = server.finished_session()
    received = np.frombuffer(bytes(session.received), "<i2")
    sent_by_mic = np.concatenate(captured)
    # Every block the call sent is the browser conversion of a captured block, in order.
    expected = browser_pcm16(sent_by_mic)
    assert len(received) > 25 * 960
    np.testing.assert_array_equal(received, expected[: len(received)])
    assert session.utterances == 1
    speaker_out = np.concatenate(played)
    assert np.abs(speaker_out).max() > 0.2 and np.all(np.abs(speaker_out) <= 1.0)
    assert result.call.metrics.samples_received > 0  # type: ignore[attr-defined]


def test_unwritable_output_and_internal_errors_are_one_line(
    server: EmulatorThread, speech_wav: tuple[Path, np.ndarray], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, _ = speech_wav
    unwritable = tmp_path / "no-such-dir" / "out.wav"
    assert main([*server.call_args(), "--input", str(path), "--output", str(unwritable),
                 *FAST]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("anunzi-fast: error:")

    from anunzi_fast import cli

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "print_summary", broken)
    assert main([*server.call_args(), "--input", str(path), *FAST]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: a bug" in err and "Traceback" not in err


def test_record_is_time_aligned(speech_wav: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, _ = speech_wav  # 0.5 s of tone, then 0.5 s of silence
    record = tmp_path / "both.wav"
    with EmulatorThread(pace="realtime") as server:
        assert main([*server.call_args(), "--input", str(path), "--record", str(record),
                     "--idle-timeout", "0.3"]) == 0
    stereo = read_wav(record).samples.astype(np.float64)
    rate = 48_000

    def onsets(channel: int) -> list[float]:
        """Start times of the loud stretches of one channel, in 10 ms windows."""
        windows = stereo[: len(stereo) // 480 * 480, channel].reshape(-1, 480)
        loud = np.sqrt((windows**2).mean(axis=1)) > 1_000
        starts = np.flatnonzero(loud & ~np.concatenate(([False], loud[:-1])))
        return [index * 480 / rate for index in starts]

    user_start = onsets(0)[0]
    user_end = user_start + 0.5
    echo = [t for t in onsets(1) if t > user_end]
    assert echo, "the echo is missing from the agent side"
    # On one clock, the agent answers after the end of the user's speech by the emulator's
    # VAD hangover (0.4 s) plus a frame or two, never before it.
    assert 0.35 <= echo[0] - user_end <= 0.6, echo[0] - user_end


@pytest.mark.parametrize("option", ["--output", "--record"])
def test_unwritable_paths_are_refused_before_connecting(
    server: EmulatorThread, speech_wav: tuple[Path, np.ndarray], tmp_path: Path, option: str
) -> None:
    path, _ = speech_wav
    unwritable = tmp_path / "no-such-dir" / "x.wav"
    process = subprocess.run(
        [sys.executable, "-m", "anunzi_fast", *server.call_args(Fault.CLOSE_1011.value),
         "--input", str(path), option, str(unwritable), *FAST],
        capture_output=True, text=True, env=dict(os.environ), timeout=30,
    )
    assert process.returncode == 2
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("anunzi-fast: error: "), lines
    assert "no-such-dir" in lines[0]
    assert server.emulator.token_requests == 0 and not server.emulator.sessions


def test_the_session_error_is_retrieved_when_writing_fails(
    server: EmulatorThread, speech_wav: tuple[Path, np.ndarray], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    from anunzi_fast import call_runner

    def disk_full(*args: object, **kwargs: object) -> None:
        raise InvalidArgumentError("cannot write: disk full")

    monkeypatch.setattr(call_runner, "write_output", disk_full)
    path, _ = speech_wav
    code = main([*server.call_args(Fault.CLOSE_1011.value), "--input", str(path),
                 "--output", str(tmp_path / "out.wav"), *FAST])
    gc.collect()  # a task whose exception nobody retrieved says so when it is collected
    assert "never retrieved" not in caplog.text
    assert code == 4  # the session failed: that is what the user must hear first
    assert "1011" in capsys.readouterr().err.strip().splitlines()[-1]


# --- a newcomer's first hour ---------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from anunzi_fast import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"anunzi-fast {__version__}"


@pytest.mark.parametrize(
    ("command", "shown"),
    [(["--help"], ["-v, --verbose"]),
     (["demo", "--help"], ["(default: realtime)", "(default: 2.0)", "(default: 120.0)",
                           "anunzi-demo-reply.wav", "current folder"]),
     (["call", "--help"], ["(default: https://widgets.anunzi.net)", "(default: 5.0)",
                           "no limit", "$ANUNZI_API_KEY"]),
     (["serve", "--help"], ["(default: 8765)", "(default: 127.0.0.1)", "(default: 60.0)",
                            "'emulator-key'"])],
)
def test_every_help_shows_the_defaults(command: list[str], shown: list[str],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(command)
    text = " ".join(capsys.readouterr().out.split())
    for fragment in shown:
        assert fragment in text, fragment
    assert "(default: None)" not in text


def test_verbose_is_accepted_after_the_command(
    server: EmulatorThread, speech_wav: tuple[Path, np.ndarray],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, _ = speech_wav
    assert main([*server.call_args(), "--input", str(path), *FAST, "-v"]) == 0


@pytest.mark.parametrize(("option", "value"), [("--idle-timeout", "soon"),
                                               ("--output-rate", "4.5"),
                                               ("--max-duration", "0")])
def test_bad_values_say_what_was_expected(option: str, value: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["call", "--assistant-id", "a", "--input", "x.wav", option, value])
    err = capsys.readouterr().err
    assert f"argument {option}: expected " in err and repr(value) in err
    assert "_positive" not in err


def test_a_missing_key_names_the_option(monkeypatch: pytest.MonkeyPatch,
                                        speech_wav: tuple[Path, np.ndarray],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("ANUNZI_API_KEY", raising=False)
    path, _ = speech_wav
    assert main(["call", "--assistant-id", "echo", "--input", str(path)]) == 2
    assert "pass --api-key KEY or set the ANUNZI_API_KEY" in capsys.readouterr().err


def test_serve_on_a_busy_port_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"anunzi-fast: error: cannot listen on 127.0.0.1:{port}: "
                   "address already in use"]


def test_a_refused_connection_names_the_host_and_port(
    speech_wav: tuple[Path, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path, _ = speech_wav
    assert main(["call", "--assistant-id", "echo", "--api-key", "k-123456", "--base-url",
                 f"http://127.0.0.1:{port}", "--input", str(path), *FAST]) == 4
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"127.0.0.1:{port}" in err and "connection refused" in err


@pytest.mark.parametrize(("extra", "reason"),
                         [(["--idle-timeout", "0.3"], "no agent audio for 0.3 s"),
                          (["--idle-timeout", "30", "--max-duration", "0.5"],
                           "--max-duration of 0.5 s reached")])
def test_the_summary_says_why_the_call_ended(
    server: EmulatorThread, speech_wav: tuple[Path, np.ndarray], extra: list[str],
    reason: str, capsys: pytest.CaptureFixture[str],
) -> None:
    path, _ = speech_wav
    assert main([*server.call_args(), "--input", str(path), "--pace", "fast", *extra]) == 0
    assert f"call ended          {reason}" in capsys.readouterr().out


def test_the_summary_names_a_close_by_the_service(
    speech_wav: tuple[Path, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = speech_wav
    with EmulatorThread() as server:
        url = server.emulator.issue_session_url()

        async def stop_soon() -> None:
            await asyncio.sleep(0.3)
            await server.emulator.stop()

        threading.Timer(0.0, lambda: asyncio.run_coroutine_threadsafe(
            stop_soon(), server.loop)).start()
        assert main(["call", "--session-url", url, "--input", str(path),
                     "--idle-timeout", "30"]) == 0
    assert "call ended          the service ended the session (code 1001" in (
        capsys.readouterr().out)


def test_devices_lists_inputs_and_outputs(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import types

    fake = types.ModuleType("sounddevice")
    fake.query_hostapis = lambda: [{"name": "ALSA"}]  # type: ignore[attr-defined]
    fake.query_devices = lambda: [  # type: ignore[attr-defined]
        {"index": 0, "name": "Built-in Microphone", "hostapi": 0, "max_input_channels": 2,
         "max_output_channels": 0, "default_samplerate": 48000.0},
        {"index": 1, "name": "Built-in Speakers", "hostapi": 0, "max_input_channels": 0,
         "max_output_channels": 2, "default_samplerate": 44100.0},
    ]
    fake.default = types.SimpleNamespace(device=[0, 1])  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    assert main(["devices"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ">    0 Built-in Microphone (ALSA), 2 in, 0 out, 48000 Hz"
    assert lines[1] == " <   1 Built-in Speakers (ALSA), 0 in, 2 out, 44100 Hz"


def test_devices_without_sounddevice_exits_2(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # absent, installed or not
    assert main(["devices"]) == 2
    assert "pip install sounddevice" in capsys.readouterr().err


def test_device_and_echo_flags_reach_the_run_options() -> None:
    from anunzi_fast.cli import _run_options, build_parser

    args = build_parser().parse_args(
        ["call", "--session-url", "ws://x", "--input", "mic", "--output", "speaker",
         "--input-device", "3", "--output-device", "USB Headset", "--no-aec"])
    options = _run_options(args)
    assert options.input_device == 3 and options.output_device == "USB Headset"
    assert options.echo_cancellation is False
    default = _run_options(build_parser().parse_args(["call", "--session-url", "ws://x",
                                                      "--input", "mic"]))
    assert default.echo_cancellation is None and default.input_device is None
