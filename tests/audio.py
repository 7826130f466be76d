"""Measure what a listener would: tone generation, the dominant frequency and the level of received PCM."""

from __future__ import annotations

import numpy as np

from app.telegram.callengine import SAMPLE_RATE as RATE  # the PCM rate NTgCalls gives and takes


def tone(freq: float, seconds: float, amplitude: float = 0.3, rate: int = RATE) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype("<i2").tobytes()


def dominant_frequency(pcm: bytes, rate: int = RATE, dtype: str = "<i2") -> float:
    samples = np.frombuffer(pcm, dtype=dtype).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    spectrum[:5] = 0  # ignore DC
    peak = int(np.argmax(spectrum))
    # parabolic interpolation around the peak bin for sub-bin accuracy
    if 0 < peak < len(spectrum) - 1:
        a, b, c = spectrum[peak - 1 : peak + 2]
        peak += 0.5 * (a - c) / (a - 2 * b + c)
    return peak * rate / len(samples)


def rms_dbfs(pcm: bytes, dtype: str = "<i2") -> float:
    samples = np.frombuffer(pcm, dtype=dtype).astype(np.float64) / 32768
    return 20 * np.log10(np.sqrt(np.mean(samples**2)) + 1e-12)


def level_dbfs(pcm: bytes) -> float:
    """RMS level relative to a full-scale sine's RMS (a -12 dBFS tone measures -12)."""
    return rms_dbfs(pcm) + 20 * float(np.log10(np.sqrt(2)))
