"""Media worker processes: each runs its own NTgCalls and owns its calls' RTP sockets (docs/decisions.md)."""
