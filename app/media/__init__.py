"""Media: RTP from Asterisk's externalMedia channel <-> little-endian PCM for NTgCalls (slin, 8 kHz)."""
