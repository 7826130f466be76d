"""The Telegram side: accounts, the private-call engine on NTgCalls, and the simulated network (`sim`).

Nothing here knows about SIP.
"""
