"""Measure what a listener would: the dominant frequency and the RMS level of received PCM."""

from __future__ import annotations

import numpy as np

from app.telegram.endpoint import SAMPLE_RATE as RATE  # the PCM rate NTgCalls gives and takes


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm[: len(pcm) // 2 * 2], "<i2").astype(np.float64)


def dominant_hz(pcm: bytes) -> float:
    x = samples(pcm)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    peak = int(np.argmax(spectrum[1:])) + 1
    # Parabolic interpolation around the peak bin for sub-bin accuracy.
    a, b, c = np.log(spectrum[peak - 1 : peak + 2] + 1e-12)
    offset = 0.5 * (a - c) / (a - 2 * b + c)
    return float((peak + offset) * RATE / len(x))


def level_dbfs(pcm: bytes) -> float:
    """RMS level relative to a full-scale sine's RMS (a -12 dBFS tone measures -12)."""
    x = samples(pcm)
    rms = float(np.sqrt(np.mean(x**2)))
    return 20 * float(np.log10(max(rms, 1e-9) / (32767 / np.sqrt(2))))
