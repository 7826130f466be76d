"""tgtrunk: a Telegram account that behaves like a SIP trunk."""

__version__ = "0.1.0"
