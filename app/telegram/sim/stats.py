"""What a simulated person counts about its calls (read by a benchmark after a run)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from app.telegram.callengine import SAMPLE_RATE

BYTES_PER_SECOND = SAMPLE_RATE * 2  # mono s16le


@dataclass
class PhoneStats:
    user_id: int = 0
    username: str | None = None
    phone: str = ""
    calls: int = 0  # calls seen (placed or received)
    answered: int = 0  # incoming calls this person accepted
    frames_heard: int = 0  # audio frame callbacks (10 ms each from NTgCalls)
    bytes_heard: int = 0  # PCM bytes heard at SAMPLE_RATE, mono s16le

    @property
    def seconds_heard(self) -> float:
        return self.bytes_heard / BYTES_PER_SECOND

    def heard(self, pcm: bytes) -> None:
        self.frames_heard += 1
        self.bytes_heard += len(pcm)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds_heard": round(self.seconds_heard, 3)}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "PhoneStats":
        return cls(**{k: v for k, v in row.items() if k in cls.__dataclass_fields__})
