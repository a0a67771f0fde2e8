"""Comfort and hold audio made at start with the `wave` module, so the engine ships no media files.

8 kHz 16-bit mono (what the conference bridge runs at). The comfort tone is a soft 440 Hz beep every few
seconds (the caller knows they are still connected); hold audio is a two-note chime. Neither uses 600 Hz
or 1000 Hz, which the end-to-end tests send between caller and agent.
"""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

RATE = 8000


def _samples(segments: list[tuple[float, float]], amplitude: float = 0.25) -> bytes:
    """segments: (frequency Hz, seconds); frequency 0 is silence. Short fades avoid clicks."""
    out = bytearray()
    for freq, seconds in segments:
        n = int(seconds * RATE)
        fade = min(80, n // 4)
        for i in range(n):
            if freq <= 0:
                v = 0.0
            else:
                ramp = min(1.0, i / fade, (n - 1 - i) / fade) if fade else 1.0
                v = amplitude * ramp * math.sin(2 * math.pi * freq * i / RATE)
            out += struct.pack("<h", int(v * 32767))
    return bytes(out)


def write_wav(path: Path, segments: list[tuple[float, float]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(_samples(segments))
    return path


def comfort_audio(media_dir: Path) -> Path:
    return write_wav(media_dir / "comfort.wav", [(440.0, 0.4), (0.0, 2.6)])


def hold_audio(media_dir: Path) -> Path:
    return write_wav(media_dir / "hold.wav", [(523.0, 0.3), (659.0, 0.3), (0.0, 1.4)])
