"""Settings from TGTRUNK_* environment variables, with defaults that run out of the box."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A TGTRUNK_* variable holds a value that cannot be used."""


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, default_port: int | None = None, what: str = "address") -> "HostPort":
        host, sep, port = text.rpartition(":")
        if not sep:
            host, port = text, ""
        if not port:
            if default_port is None:
                raise SettingsError(f"{what} {text!r} needs a port (HOST:PORT)")
            return cls(host or "0.0.0.0", default_port)
        try:
            number = int(port)
        except ValueError:
            raise SettingsError(f"{what} {text!r}: port {port!r} is not a number") from None
        if not 0 < number < 65536:
            raise SettingsError(f"{what} {text!r}: port {number} is out of range 1-65535")
        return cls(host or "0.0.0.0", number)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class PortRange:
    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> "PortRange":
        try:
            start, end = (int(part) for part in text.split("-", 1))
        except ValueError:
            raise SettingsError(f"TGTRUNK_RTP_PORTS {text!r} must look like 10000-20000") from None
        if not 0 < start < end < 65536:
            raise SettingsError(f"TGTRUNK_RTP_PORTS {text!r}: need 0 < start < end < 65536")
        return cls(start, end)


@dataclass(frozen=True)
class ExternalAri:
    """The ARI of an Asterisk the user runs (TGTRUNK_ARI_URL): tgtrunk is only a Stasis application on it."""

    url: str  # http(s)://host:port[/prefix], without /ari
    user: str
    password: str = field(repr=False)
    app: str = "tgtrunk"
    media_address: str = "127.0.0.1"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    sip_bind: HostPort
    rtp_ports: PortRange
    http_bind: HostPort
    ari_port: int
    asterisk_root: Path
    ban_threshold: int = 10
    ban_window_s: float = 60.0
    ban_duration_s: float = 600.0
    telegram_sim: str | None = None  # HOST:PORT of a simulated network in its own process
    max_calls: int | None = None  # concurrent calls the whole gateway takes (None: no limit); see bench/
    bot_token: str | None = None  # TGTRUNK_BOT_TOKEN; else the file `tgtrunk bot set` writes
    notify_fold_s: float = 600.0  # one notification per event kind in this window (repeats are folded)
    account_check_s: float = 60.0  # how often each account is asked for itself (revoked, limited)
    flood_notify_s: int = 300  # a FLOOD_WAIT at least this long is told to the administrators
    failed_calls_notify: int = 5  # this many failed (5xx) calls in a row on a line are told to the administrators
    external_address: HostPort | None = None  # behind NAT: the public address put in SDP and Contact
    local_nets: tuple[str, ...] = ()  # networks reached without NAT (they get the private address)
    workers: int = 0  # TGTRUNK_WORKERS (default auto): media worker processes (0: media in this process)
    external_ari: ExternalAri | None = None  # set: run on the user's Asterisk, start none of our own

    @property
    def ari_app(self) -> str:
        return self.external_ari.app if self.external_ari else "tgtrunk"

    @property
    def media_address(self) -> str:
        """Where Asterisk sends externalMedia RTP: tgtrunk binds its relay sockets there."""
        return self.external_ari.media_address if self.external_ari else "127.0.0.1"

    @property
    def secret_key_path(self) -> Path:
        return self.data_dir / "secret.key"

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    @property
    def admin_token_path(self) -> Path:
        return self.data_dir / "admin-token"

    @property
    def admin_password_path(self) -> Path:
        return self.data_dir / "admin-password"

    @property
    def ari_password_path(self) -> Path:
        return self.data_dir / "ari-password"

    @property
    def bot_token_path(self) -> Path:
        return self.data_dir / "bot-token"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "serve.pid"


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None


_HOST = re.compile(r"^[A-Za-z0-9.-]+$")


def _external_address(raw: str | None, sip_port: int) -> HostPort | None:
    if not raw:
        return None
    address = HostPort.parse(raw, sip_port, "TGTRUNK_EXTERNAL_ADDRESS")
    if not _HOST.match(address.host) or address.host == "0.0.0.0":
        raise SettingsError(f"TGTRUNK_EXTERNAL_ADDRESS {raw!r} must be the public IP address or host name "
                            "(optionally :PORT when the router forwards another SIP port)")
    return address


def _local_nets(raw: str | None) -> tuple[str, ...]:
    nets = []
    for part in (raw or "").replace(" ", ",").split(","):
        if not part:
            continue
        try:
            nets.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise SettingsError(f"TGTRUNK_LOCAL_NETS: {part!r} is not a network (e.g. 192.168.0.0/16)") from None
    return tuple(nets)


_APP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _external_ari(env: dict[str, str]) -> ExternalAri | None:
    url = (env.get("TGTRUNK_ARI_URL") or "").strip()
    if not url:
        return None
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query or parsed.fragment:
        raise SettingsError(f"TGTRUNK_ARI_URL {url!r} must look like http://HOST:PORT (the Asterisk's HTTP server, "
                            "http.conf)")
    try:
        parsed.port
    except ValueError:
        raise SettingsError(f"TGTRUNK_ARI_URL {url!r}: the port is not a number 1-65535") from None
    path = parsed.path.rstrip("/")
    if path.endswith("/ari"):
        path = path[: -len("/ari")]
    user = env.get("TGTRUNK_ARI_USER") or ""
    if not user:
        raise SettingsError("TGTRUNK_ARI_URL is set: TGTRUNK_ARI_USER must name the ari.conf user too")
    password = env.get("TGTRUNK_ARI_PASSWORD") or ""
    password_file = env.get("TGTRUNK_ARI_PASSWORD_FILE")
    if password_file:
        try:
            password = Path(password_file).read_text().strip()
        except OSError as exc:
            raise SettingsError(f"TGTRUNK_ARI_PASSWORD_FILE {password_file}: {exc.strerror}") from None
    if not password:
        raise SettingsError("TGTRUNK_ARI_URL is set: give the ari.conf user's password in TGTRUNK_ARI_PASSWORD or "
                            "TGTRUNK_ARI_PASSWORD_FILE")
    app = env.get("TGTRUNK_ARI_APP") or "tgtrunk"
    if not _APP_NAME.match(app):
        raise SettingsError(f"TGTRUNK_ARI_APP {app!r} must be 1-64 letters, digits, '_', '.' or '-'")
    media = env.get("TGTRUNK_MEDIA_ADDRESS") or "127.0.0.1"
    try:
        ipaddress.IPv4Address(media)
    except ValueError:
        raise SettingsError(f"TGTRUNK_MEDIA_ADDRESS {media!r} must be this machine's IPv4 address that the Asterisk "
                            "sends externalMedia RTP to (127.0.0.1 when it runs on this host)") from None
    base = f"{parsed.scheme}://{parsed.netloc.rpartition('@')[2]}{path}"
    return ExternalAri(base, user, password, app, media)


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    data_dir = Path(env.get("TGTRUNK_DATA_DIR") or "/var/lib/tgtrunk").absolute()
    database_url = env.get("TGTRUNK_DATABASE_URL") or f"sqlite:///{data_dir / 'tgtrunk.db'}"
    sip_bind = HostPort.parse(env.get("TGTRUNK_SIP_BIND") or "0.0.0.0:5060", 5060, "TGTRUNK_SIP_BIND")
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        sip_bind=sip_bind,
        rtp_ports=PortRange.parse(env.get("TGTRUNK_RTP_PORTS") or "10000-20000"),
        http_bind=HostPort.parse(env.get("TGTRUNK_HTTP_BIND") or "127.0.0.1:8080", 8080, "TGTRUNK_HTTP_BIND"),
        ari_port=_int(env, "TGTRUNK_ARI_PORT", 8088),
        asterisk_root=Path(env.get("TGTRUNK_ASTERISK_ROOT") or data_dir / "asterisk-root").absolute(),
        ban_threshold=_int(env, "TGTRUNK_BAN_THRESHOLD", 10),
        ban_window_s=float(_int(env, "TGTRUNK_BAN_WINDOW", 60)),
        ban_duration_s=float(_int(env, "TGTRUNK_BAN_SECONDS", 600)),
        telegram_sim=env.get("TGTRUNK_TELEGRAM_SIM") or None,
        max_calls=_int(env, "TGTRUNK_MAX_CALLS", 0) or None,
        bot_token=env.get("TGTRUNK_BOT_TOKEN") or None,
        notify_fold_s=float(_int(env, "TGTRUNK_NOTIFY_FOLD", 600)),
        account_check_s=float(_int(env, "TGTRUNK_ACCOUNT_CHECK", 60)),
        flood_notify_s=_int(env, "TGTRUNK_FLOOD_NOTIFY", 300),
        failed_calls_notify=_int(env, "TGTRUNK_FAILED_CALLS_NOTIFY", 5),
        external_address=_external_address(env.get("TGTRUNK_EXTERNAL_ADDRESS"), sip_bind.port),
        local_nets=_local_nets(env.get("TGTRUNK_LOCAL_NETS")),
        external_ari=_external_ari(env),
        workers=_workers(env),
    )


# Media workers pay for themselves from 4 cores. On 2 cores (bench/README.md, "Media workers") two workers cost 1.5x
# the CPU per call of the one-process path, and at 30 calls the Telegram side heard 37-47 frames/s of 100 against
# 91-101 without workers, with the simulator and both Asterisks on the same machine.
WORKERS_FROM_CORES = 4


def auto_workers(cores: int | None) -> int:
    """`auto` (the default): one media worker per core from WORKERS_FROM_CORES cores; none below."""
    return cores if cores and cores >= WORKERS_FROM_CORES else 0


DEFAULT_WORKERS = auto_workers(os.cpu_count())


def _workers(env: dict[str, str]) -> int:
    if (env.get("TGTRUNK_WORKERS") or "").strip().lower() == "auto":
        return DEFAULT_WORKERS
    workers = _int(env, "TGTRUNK_WORKERS", DEFAULT_WORKERS)
    if not 0 <= workers <= 256:
        raise SettingsError(f"TGTRUNK_WORKERS={workers} must be 0 (no worker processes), 1 to 256, or auto "
                            f"(one per core from {WORKERS_FROM_CORES} cores)")
    return workers
