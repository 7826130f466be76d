"""ARI access: a thin typed asyncio client on aiohttp (see docs/decisions.md)."""

from app.ari.client import AriClient, AriError

__all__ = ["AriClient", "AriError"]
