"""Energy VAD: utterance boundaries at frame precision, streaming equals one-shot."""

from __future__ import annotations

import numpy as np
import pytest

from anunzi_fast.errors import InvalidArgumentError
from anunzi_fast.vad import EnergyVad, SpeechEnded, SpeechStarted
from tests.conftest import tone as shared_tone

RATE = 16_000


def tone(seconds: float, level: float = 0.3) -> np.ndarray:
    return shared_tone(seconds, rate=RATE, frequency=440.0, level=level, dtype=np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), np.int16)


def test_one_utterance_boundaries() -> None:
    audio = np.concatenate((silence(0.5), tone(1.0), silence(1.0)))
    events = EnergyVad(RATE).process(audio)
    assert events == [SpeechStarted(8000), SpeechEnded(24000)]


def test_pause_shorter_than_hangover_is_bridged_and_longer_splits() -> None:
    vad = EnergyVad(RATE, hangover_ms=300)
    bridged = np.concatenate((tone(0.5), silence(0.2), tone(0.5), silence(0.5)))
    assert [type(e) for e in vad.process(bridged)] == [SpeechStarted, SpeechEnded]
    split = np.concatenate((tone(0.5), silence(0.5), tone(0.5), silence(0.5)))
    assert len(EnergyVad(RATE, hangover_ms=300).process(split)) == 4


def test_quiet_and_short_bursts_are_not_speech() -> None:
    vad = EnergyVad(RATE, threshold_dbfs=-30, min_speech_ms=60)
    assert vad.process(np.concatenate((tone(1.0, level=0.001), silence(0.5)))) == []
    assert vad.process(np.concatenate((tone(0.02), silence(0.5)))) == []


@pytest.mark.parametrize("chunk", [1, 7, 160, 319, 320, 4096])
def test_streaming_in_any_chunks_equals_one_shot(chunk: int) -> None:
    audio = np.concatenate((silence(0.33), tone(0.71), silence(0.6), tone(0.4), silence(0.5)))
    expected = EnergyVad(RATE).process(audio)
    vad = EnergyVad(RATE)
    events = []
    for start in range(0, len(audio), chunk):
        events += vad.process(audio[start : start + chunk])
    assert events == expected and len(expected) == 4
    assert vad.samples_seen == len(audio)


def test_float_input_matches_int16() -> None:
    audio = np.concatenate((silence(0.2), tone(0.5), silence(0.6)))
    assert EnergyVad(RATE).process(audio / 32768.0) == EnergyVad(RATE).process(audio)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(InvalidArgumentError):
        EnergyVad(0)
    with pytest.raises(InvalidArgumentError):
        EnergyVad(RATE).process(np.zeros((2, 2), np.int16))
