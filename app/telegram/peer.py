"""A Telegram user as the gateway sees it."""

from __future__ import annotations

from dataclasses import dataclass

from pyrogram import raw


@dataclass(frozen=True)
class Peer:
    id: int
    access_hash: int
    phone: str | None = None
    username: str | None = None
    first_name: str = ""
    last_name: str = ""

    @classmethod
    def from_user(cls, user: raw.types.User) -> "Peer":
        return cls(
            id=user.id,
            access_hash=user.access_hash or 0,
            phone=f"+{user.phone}" if user.phone else None,
            username=user.username,
            first_name=user.first_name or "",
            last_name=user.last_name or "",
        )

    @property
    def name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)

    def input_user(self) -> raw.types.InputUser:
        return raw.types.InputUser(user_id=self.id, access_hash=self.access_hash)

    def input_peer(self) -> raw.types.InputPeerUser:
        return raw.types.InputPeerUser(user_id=self.id, access_hash=self.access_hash)
