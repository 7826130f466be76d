"""Validation of line settings and the password digest; one clear message per bad input."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from dataclasses import dataclass
from typing import Annotated

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from app.sip.dialplan import RuleError, compile_rule
from app.store.line import DtmfMethod, Line, LineMode

GATEWAY_REALM = "tgtrunk"
# The realm a PBX challenges with when nothing else is configured (Asterisk, FreePBX).
DEFAULT_PBX_REALM = "asterisk"
CODECS = ("alaw", "ulaw", "g722")
TEMPLATE_FIELDS = ("phone", "username", "userid", "name", "name_ascii")
IDENTITY_HEADERS = ("pai", "rpid", "both", "none")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_USERNAME = re.compile(r"^[A-Za-z0-9_.+-]{1,64}$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:]+\]$")
_HEADER = re.compile(r"^([A-Za-z0-9-]+):\s*(\S.*)$")
_TEMPLATE_FIELD = re.compile(r"\{([^{}]*)\}")


class LineError(ValueError):
    """A line setting that cannot be used; the message says which and why."""


def password_digest(username: str, realm: str, password: str) -> str:
    """Asterisk's password_digest form: md5(username:realm:password)."""
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise LineError(
            f"line name {name!r} must be 1-40 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return name


def check_host_port(text: str, what: str) -> str:
    host, sep, port = text.rpartition(":") if not text.endswith("]") else (text, "", "")
    if not sep:
        host, port = text, ""
    if not host or not _HOST.match(host):
        raise LineError(f"{what} {text!r} is not a host name or IP address (HOST or HOST:PORT)")
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        raise LineError(f"{what} {text!r}: port must be a number 1-65535")
    return text


def host_of(host_port: str) -> str:
    if host_port.startswith("["):
        return host_port[1 : host_port.index("]")]
    return host_port.rsplit(":", 1)[0] if host_port.count(":") == 1 else host_port


def check_cidr(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise LineError(f"trusted IP {text!r} is not an address or CIDR network (e.g. 203.0.113.0/24)") from None


def check_header(text: str) -> str:
    if not _HEADER.match(text):
        raise LineError(f"header {text!r} must look like 'Field: Value'")
    return text


def check_codecs(text: str) -> str:
    codecs = [c.strip().lower() for c in text.split(",") if c.strip()]
    unknown = [c for c in codecs if c not in CODECS]
    if not codecs or unknown:
        raise LineError(f"codecs {text!r}: choose from {', '.join(CODECS)} (comma separated)")
    return ",".join(dict.fromkeys(codecs))


def check_rule(text: str) -> str:
    try:
        compile_rule(text)
    except RuleError as exc:
        raise LineError(str(exc)) from None
    return text


def check_template(text: str) -> str:
    unknown = [f for f in _TEMPLATE_FIELD.findall(text) if f not in TEMPLATE_FIELDS]
    if unknown:
        raise LineError(
            f"template {text!r}: unknown field {{{unknown[0]}}}; use {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}"
        )
    return text


def endpoint_id(line: Line) -> str:
    """The Asterisk endpoint of a line: a PBX registering identifies itself by username."""
    if line.mode is LineMode.REGISTER and line.username:
        return line.username
    return line.name


def dial_string(line: Line, number: str) -> str:
    """What Asterisk dials to ring `number` on the PBX side of a line ("": the device registered on the line)."""
    if line.mode is LineMode.STASIS:
        return (line.originate or "").replace("{number}", number)
    return f"PJSIP/{number}@{endpoint_id(line)}" if number else f"PJSIP/{endpoint_id(line)}"


@dataclass
class LineRequest:
    """What a user asked for on the command line or the admin API, before validation.

    Types are checked strictly by `build_line` (no "abc" for a number, no list for a text, no unknown field)."""

    __pydantic_config__ = ConfigDict(strict=True, extra="forbid", revalidate_instances="always")

    name: str
    mode: str
    username: str | None = None
    password: str | None = None
    realm: str | None = None
    trusted_ips: tuple[str, ...] = ()
    server: str | None = None
    domain: str | None = None
    proxy: str | None = None
    host: str | None = None
    headers: tuple[str, ...] = ()
    pbx_number: str | None = None
    codecs: str = "alaw,ulaw"
    dtmf: str = "rfc4733"
    rules: tuple[str, ...] = ()
    callerid_templates: tuple[str, ...] = ()
    callername_template: str | None = None
    identity_header: str = "pai"
    callerid_in_from: bool = False
    priority: Annotated[int, Field(ge=-1_000_000, le=1_000_000)] = 0
    max_calls: Annotated[int, Field(le=1_000_000)] | None = None
    account: str | None = None
    callback_number: str | None = None
    callback_take_number: bool = True
    record: bool = False
    record_chat: str | None = None
    originate: str | None = None


_LINE_REQUEST = TypeAdapter(LineRequest)


def line_request_from_json(body: bytes) -> LineRequest:
    """A LineRequest from a JSON object (the admin API's body); LineError says what is wrong with it."""
    try:
        return _LINE_REQUEST.validate_json(body)
    except ValidationError as exc:
        raise LineError(validation_message(exc)) from None


def validation_message(error: ValidationError) -> str:
    """Every problem pydantic found, one clause each: 'priority: Input should be a valid integer'."""
    problems = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"])
        message = "unknown field" if item["type"] in ("unexpected_keyword_argument", "extra_forbidden") else item["msg"]
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


def build_line(request: LineRequest) -> tuple[Line, str | None]:
    """Validate a request into a Line; returns the generated password (to show once), if any."""
    try:
        request = _LINE_REQUEST.validate_python(request)
    except ValidationError as exc:
        raise LineError(validation_message(exc)) from None
    try:
        mode = LineMode(request.mode)
    except ValueError:
        raise LineError(f"unknown mode {request.mode!r}: use register, outbound, ip or stasis") from None
    try:
        dtmf = DtmfMethod(request.dtmf)
    except ValueError:
        raise LineError(f"unknown DTMF method {request.dtmf!r}: use rfc4733, info, inband or auto") from None
    if request.identity_header not in IDENTITY_HEADERS:
        raise LineError(f"identity header {request.identity_header!r}: use {', '.join(IDENTITY_HEADERS)}")
    if request.callerid_in_from and mode is not LineMode.OUTBOUND:
        raise LineError("--callerid-in-from is for outbound lines; the other modes always send the Caller ID in From")
    if request.max_calls is not None and request.max_calls < 1:
        raise LineError("--max-calls must be at least 1")
    line = Line(
        name=check_name(request.name),
        mode=mode,
        trusted_ips=[check_cidr(c) for c in request.trusted_ips],
        headers=[check_header(h) for h in request.headers],
        pbx_number=request.pbx_number,
        codecs=check_codecs(request.codecs),
        dtmf=dtmf,
        rules=[check_rule(r) for r in request.rules],
        callerid_templates=[check_template(t) for t in request.callerid_templates],
        callername_template=check_template(request.callername_template) if request.callername_template else None,
        identity_header=request.identity_header,
        callerid_in_from=request.callerid_in_from,
        priority=request.priority,
        max_calls=request.max_calls,
        account=request.account,
        callback_number=request.callback_number or None,
        callback_take_number=request.callback_take_number,
        record=request.record,
        record_chat=check_record_chat(request.record_chat) if request.record_chat else None,
    )
    generated = _apply_mode(line, request)
    return line, generated


def _apply_mode(line: Line, request: LineRequest) -> str | None:
    generated = None
    if line.mode is LineMode.REGISTER:
        line.username = _check_username(request.username or line.name)
        password = request.password
        if not password:
            password = generated = generate_password()
        if request.realm and request.realm != GATEWAY_REALM:
            raise LineError(f"a register line's realm is always {GATEWAY_REALM!r} (the gateway challenges with it)")
        line.realm = GATEWAY_REALM
        line.password_digest = password_digest(line.username, line.realm, password)
        _refuse(request, "server", "domain", "proxy", "host")
    elif line.mode is LineMode.OUTBOUND:
        if not request.server:
            raise LineError("an outbound line needs --server HOST[:PORT] (the PBX's registrar)")
        if not request.username or not request.password:
            raise LineError("an outbound line needs --username and --password (the account at the PBX)")
        line.server = check_host_port(request.server, "--server")
        line.proxy = check_host_port(request.proxy, "--proxy") if request.proxy else None
        line.domain = request.domain or host_of(line.server)
        line.username = _check_username(request.username)
        line.realm = request.realm or DEFAULT_PBX_REALM
        line.password_digest = password_digest(line.username, line.realm, request.password)
        _refuse(request, "host")
        if line.trusted_ips:
            raise LineError("--trusted-ip is for register lines; an outbound line trusts its --server")
    elif line.mode is LineMode.STASIS:
        line.originate = check_originate(request.originate)
        _refuse(request, "username", "password", "realm", "server", "domain", "proxy", "host", "headers")
        if line.trusted_ips:
            raise LineError("--trusted-ip does not apply to a stasis line: your Asterisk decides who reaches it")
    else:
        if not request.host:
            raise LineError("an ip line needs --host HOST[:PORT] (the PBX that sends and receives calls)")
        line.host = check_host_port(request.host, "--host")
        _refuse(request, "username", "password", "server", "domain", "proxy")
    if line.mode is not LineMode.STASIS and request.originate:
        raise LineError("--originate is for stasis lines (routes on your own Asterisk)")
    return generated


_ORIGINATE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*/[^\s,|]+$")


def check_originate(template: str | None) -> str:
    """The dial string a stasis line's Telegram calls are originated with; `{number}` is the line's --pbx-number."""
    if not template:
        raise LineError("a stasis line needs --originate TEMPLATE, the dial string for Telegram calls: "
                        "'PJSIP/{number}' or 'Local/{number}@from-internal' ({number} is --pbx-number)")
    unknown = [f for f in _TEMPLATE_FIELD.findall(template) if f != "number"]
    if unknown or not _ORIGINATE.match(template):
        raise LineError(f"--originate {template!r} must be an Asterisk dial string TECH/RESOURCE with no spaces, "
                        "commas or '|', and {number} as its only field (e.g. 'PJSIP/{number}', "
                        "'Local/{number}@from-internal')")
    return template


_RECORD_CHAT = re.compile(r"^(me|@[A-Za-z0-9_]{4,32}|\+?[0-9]{5,16}|id[0-9]{1,20}|-?[0-9]{1,20})$")


def check_record_chat(chat: str) -> str:
    if not _RECORD_CHAT.match(chat):
        raise LineError(f"record chat {chat!r}: use me (Saved Messages), @username, +phone, idUSERID or a chat id "
                        "such as -1001234567890")
    return chat


def _check_username(username: str) -> str:
    if not _USERNAME.match(username):
        raise LineError(f"username {username!r} must be 1-64 letters, digits, '_', '.', '+' or '-'")
    return username


def _refuse(request: LineRequest, *fields: str) -> None:
    for name in fields:
        if getattr(request, name):
            raise LineError(f"--{name} does not apply to a {request.mode} line")


def check_unique(lines: "list[Line]", line: Line, exclude_id: int | None = None) -> None:
    """A line's name and its SIP username (endpoint) must be its own."""
    for other in lines:
        if other.id == exclude_id:
            continue
        if other.name == line.name:
            raise LineError(f"a line named {line.name!r} already exists; pick another name or `tgtrunk line remove` it")
        if endpoint_id(other) == endpoint_id(line):
            raise LineError(f"SIP username {endpoint_id(line)!r} is already used by line {other.name!r}")
