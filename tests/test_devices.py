"""Microphone and speaker with fake streams standing in for sounddevice."""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

import numpy as np
import pytest

from anunzi_fast._native import JitterBuffer
from anunzi_fast.devices import Microphone, Speaker, load_sounddevice
from anunzi_fast.errors import AudioDeviceError, CallerError, InvalidArgumentError


class FakeStream:
    """Records how it was opened; the test drives its callback."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.callback = options["callback"]
        self.started = self.stopped = self.closed = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        self.closed = True


class Factory:
    def __init__(self) -> None:
        self.streams: list[FakeStream] = []

    def __call__(self, **options: Any) -> FakeStream:
        stream = FakeStream(**options)
        self.streams.append(stream)
        return stream


async def test_microphone_delivers_blocks_from_the_device_thread() -> None:
    factory = Factory()
    async with asyncio.timeout(5), Microphone(stream_factory=factory) as mic:
        (stream,) = factory.streams
        assert stream.started
        assert stream.options["samplerate"] == 48_000 and stream.options["blocksize"] == 960
        assert stream.options["channels"] == 1 and stream.options["dtype"] == "float32"
        blocks = [np.full((960, 1), i / 10, np.float32) for i in range(3)]

        def device_thread() -> None:
            for block in blocks:
                stream.callback(block, 960, None, None)
                block[:] = 9.0  # the device reuses its buffer: the mic must have copied

        thread = threading.Thread(target=device_thread)
        thread.start()
        thread.join()
        for i in range(3):
            received = await mic.read()
            assert received.shape == (960,) and received[0] == np.float32(i / 10)
    assert stream.stopped and stream.closed


async def test_microphone_drops_oldest_when_the_loop_lags() -> None:
    factory = Factory()
    async with asyncio.timeout(5), Microphone(stream_factory=factory, max_blocks=2) as mic:
        stream = factory.streams[0]
        for i in range(5):
            stream.callback(np.full((960, 1), i, np.float32), 960, None, "input overflow")
        await asyncio.sleep(0)  # let call_soon_threadsafe run
        assert mic.dropped_blocks == 3 and mic.overflows == 5
        assert (await mic.read())[0] == 3 and (await mic.read())[0] == 4


async def test_microphone_read_needs_open() -> None:
    with pytest.raises(InvalidArgumentError):
        await Microphone(stream_factory=Factory()).read()


def test_speaker_plays_the_jitter_buffer_then_silence() -> None:
    jitter = JitterBuffer(48_000, prefill_ms=0.0, dtype="float32")
    jitter.push(np.full(1000, 0.5, np.float32))
    factory = Factory()
    with Speaker(jitter, stream_factory=factory) as speaker:
        stream = factory.streams[0]
        assert stream.options["samplerate"] == 48_000
        out = np.full((960, 1), 7.0, np.float32)
        stream.callback(out, 960, None, None)
        assert np.all(out == 0.5)
        stream.callback(out, 960, None, None)
        assert np.all(out[:40] == 0.5) and np.all(out[40:] == 0.0)
        assert speaker.samples_played == 1000
    assert stream.closed
    assert jitter.stats.underruns >= 1


def test_speaker_needs_float_playback() -> None:
    with pytest.raises(InvalidArgumentError):
        Speaker(JitterBuffer(16_000), stream_factory=Factory())


def test_missing_sounddevice_is_a_clear_caller_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail, whether or not the devices extra is installed.
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(AudioDeviceError, match="pip install sounddevice") as info:
        load_sounddevice()
    assert isinstance(info.value, CallerError)
    with pytest.raises(AudioDeviceError):
        Speaker(JitterBuffer(48_000, dtype="float32")).__enter__()


def test_device_failures_are_wrapped() -> None:
    def broken(**options: Any) -> FakeStream:
        raise RuntimeError("Error opening OutputStream: Invalid device")

    with pytest.raises(AudioDeviceError, match="Invalid device"):
        Speaker(JitterBuffer(48_000, dtype="float32"), stream_factory=broken).__enter__()


@pytest.mark.parametrize(("kind", "direction"), [(Microphone, "input"), (Speaker, "output")])
async def test_no_default_device_says_so(kind: type, direction: str) -> None:
    def no_device(**options: Any) -> FakeStream:
        raise RuntimeError("Error querying device -1")

    device: Any = (kind(stream_factory=no_device) if kind is Microphone else
                   kind(JitterBuffer(48_000, dtype="float32"), stream_factory=no_device))
    with pytest.raises(AudioDeviceError, match=f"no default audio {direction} device"):
        if kind is Microphone:
            async with device:
                pass
        else:
            with device:
                pass


def test_speaker_reports_when_the_agent_is_heard() -> None:
    from types import SimpleNamespace

    from anunzi_fast.events import AgentStartedSpeaking, AgentStoppedSpeaking

    jitter = JitterBuffer(48_000, prefill_ms=0.0, dtype="float32")
    jitter.push(np.full(1500, 0.5, np.float32))
    factory = Factory()
    now = [100.0]
    with Speaker(jitter, stream_factory=factory, clock=lambda: now[0]) as speaker:
        assert not speaker.native_callback  # a stream factory: the Python callback
        stream = factory.streams[0]
        out = np.zeros((960, 1), np.float32)
        for _ in range(7):  # 1500 samples of audio, then silence past the 100 ms gap
            stream.callback(out, 960, SimpleNamespace(currentTime=now[0],
                                                      outputBufferDacTime=now[0] + 0.05), None)
            now[0] += 0.02
        events = speaker.playout_events()
    assert [type(e) for e in events] == [AgentStartedSpeaking, AgentStoppedSpeaking]
    assert speaker.output_latency == pytest.approx(0.05)
    # Heard 50 ms after the first callback; stopped 1500 samples (31.25 ms) after that.
    assert events[1].heard_at - events[0].heard_at == pytest.approx(1500 / 48_000)
    assert speaker.samples_played == 1500


def test_parse_device() -> None:
    from anunzi_fast.devices import parse_device

    assert parse_device(None) is None
    assert parse_device(" 2 ") == 2
    assert parse_device("MacBook Pro Microphone") == "MacBook Pro Microphone"
