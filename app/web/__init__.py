"""The admin HTTP API (aiohttp), on TGTRUNK_HTTP_BIND, with a bearer token from the data directory."""
