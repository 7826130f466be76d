"""Media: RTP from Asterisk's externalMedia channel <-> 48 kHz mono PCM frames for NTgCalls."""
