"""The audio rooms: uplink encoder, playback and the call recorder, without a network."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from anunzi_fast.audio import WORKER_SAMPLES, CallRecorder, Playback, UplinkEncoder
from anunzi_fast.errors import InvalidArgumentError
from anunzi_fast.resampler import ResampleStream
from anunzi_fast.wav import read_wav


def test_recorded_agent_track_is_sample_aligned_and_complete(tmp_path: Path) -> None:
    now = [0.0]
    recorder = CallRecorder(clock=lambda: now[0])
    rng = np.random.default_rng(7)
    agent = (rng.standard_normal(320 * 25) * 3_000).astype(np.int16)
    start = 0.1  # the agent starts speaking 100 ms into the call, in real time
    for index, offset in enumerate(range(0, len(agent), 320)):
        now[0] = start + index * 0.02
        recorder.add_agent(agent[offset : offset + 320])
    recorder.write(str(tmp_path / "both.wav"))
    track = read_wav(tmp_path / "both.wav").samples[:, 1]
    stream = ResampleStream(16_000, 48_000, 1, dtype="int16", quality="HQ")
    expected = stream.resample_chunk(agent, last=True)
    assert len(expected) == 3 * len(agent)
    begin = round(start * 48_000)
    assert not track[:begin].any()  # nothing before the first agent audio arrived
    # Every sample, the filter's delay flushed at the end, each where its audio arrived.
    np.testing.assert_array_equal(track[begin:], expected)


def test_encoder_passes_48k_int16_through_and_converts_floats_exactly() -> None:
    encoder = UplinkEncoder()
    pcm = np.arange(-5, 5, dtype=np.int16)
    array, rate = encoder.check(pcm, 48_000)
    assert encoder.encode(array, rate).tobytes() == pcm.tobytes()
    floats = np.array([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, np.nan], np.float32)
    array, rate = encoder.check(floats, 48_000)
    np.testing.assert_array_equal(encoder.encode(array, rate),
                                  [-32768, -32768, -16384, 0, 16383, 32767, 0])


@pytest.mark.parametrize(
    ("samples", "rate", "match"),
    [(np.zeros(4, np.int32), 48_000, "float32, float64 or int16"),
     (np.zeros((2, 2, 2), np.float32), 48_000, "1-D"),
     (np.zeros((10, 0), np.float32), 48_000, "at least one channel"),
     (np.zeros((2, 480), np.float32), 48_000, r"array\.T"),
     (np.zeros(4, np.float32), 0, "positive int"),
     (np.zeros(4, np.float32), 44_100.0, "positive int"),
     (np.zeros(4, np.float32), True, "positive int")],
)
def test_encoder_rejects_bad_input_before_any_work(samples: np.ndarray, rate: object,
                                                   match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        UplinkEncoder().check(samples, rate)


def test_encoder_resamples_across_calls_and_flushes_before_a_rate_switch() -> None:
    encoder = UplinkEncoder()
    tone = np.sin(np.arange(16_000) * 2 * np.pi * 440 / 16_000).astype(np.float32) * 0.5
    out = [encoder.encode(*encoder.check(tone[i : i + 160], 16_000)) for i in range(0, 16_000, 160)]
    assert encoder.input_rate == 16_000
    with pytest.raises(InvalidArgumentError, match="flush_audio"):
        encoder.check(tone, 44_100)
    out.append(encoder.flush())
    assert encoder.input_rate is None
    total = np.concatenate(out)
    assert len(total) == 48_000  # every input sample arrives, the filter delay flushed
    expected = ResampleStream(16_000, 48_000, 1, dtype="float32", quality="HQ").resample_chunk(
        tone, last=True)
    np.testing.assert_allclose(total / 32768.0, expected, atol=2 / 32768)
    encoder.check(tone, 44_100)  # a new rate is fine after the flush


def test_encoder_flags_work_for_a_worker_thread() -> None:
    encoder = UplinkEncoder()
    small = np.zeros(960, np.float32)
    assert not encoder.needs_worker(small, 48_000)
    assert encoder.needs_worker(np.zeros(WORKER_SAMPLES + 1, np.float32), 48_000)
    assert encoder.needs_worker(small, 44_100)  # designs a new filter first
    encoder.encode(small, 44_100)
    assert not encoder.needs_worker(small, 44_100)  # the stream exists now
    assert encoder.needs_worker(np.zeros((WORKER_SAMPLES // 2 + 1, 2), np.float32), 44_100)


def test_encoder_downmixes_int16_with_rounding() -> None:
    stereo = np.array([[1, 2], [-3, -4], [32767, 32767]], np.int16)
    encoder = UplinkEncoder()
    np.testing.assert_array_equal(encoder.encode(*encoder.check(stereo, 48_000)),
                                  [2, -4, 32767])


def test_playback_keeps_pcm16_at_16k_and_resamples_otherwise() -> None:
    direct = Playback(16_000)
    assert not direct.needs_worker and direct.jitter_buffer.dtype == np.int16
    direct.push(np.arange(320, dtype=np.int16))
    assert direct.jitter_buffer.stats.samples_in == 320
    device = Playback(48_000, prefill_ms=0)
    assert device.needs_worker and device.jitter_buffer.dtype == np.float32
    designed_in: list[str] = []
    worker = threading.Thread(target=lambda: (device.prepare(),
                                              designed_in.append("worker")))
    worker.start()
    worker.join()
    assert not device.needs_worker and designed_in == ["worker"]
    device.push(np.full(1600, 16_384, np.int16))
    assert 3 * 1600 - device.jitter_buffer.stats.samples_in <= 480  # minus the filter delay
    with pytest.raises(InvalidArgumentError):
        Playback(0)
