"""Caller ID and Caller Name from a line's templates: the first template whose fields are all known wins."""

from __future__ import annotations

import re
from collections.abc import Mapping

from anyascii import anyascii

_FIELD = re.compile(r"\{(\w+)\}")


def ascii_name(name: str) -> str:
    """Transliterated for PBXs and phones that show only ASCII (Ørsted -> Orsted, Иван -> Ivan)."""
    return " ".join(anyascii(name).split())


def render(templates: list[str], fields: Mapping[str, str | None]) -> str | None:
    for template in templates:
        names = _FIELD.findall(template)
        if all(fields.get(n) for n in names):
            return _FIELD.sub(lambda m: str(fields[m.group(1)]), template)
    return None


def caller_fields(phone: str | None, username: str | None, user_id: int | None, name: str | None) -> dict[str, str | None]:
    return {
        "phone": phone.lstrip("+") if phone else None,
        "username": username,
        "userid": str(user_id) if user_id else None,
        "name": name or None,
        "name_ascii": ascii_name(name) if name else None,
    }


def caller_id(number_templates: list[str], name_template: str | None, fields: Mapping[str, str | None]) -> tuple[str, str]:
    """(number, name) for the SIP side; defaults: the phone or user id, and the Telegram name."""
    number = render(number_templates, fields) or render(["+{phone}", "{userid}"], fields) or "anonymous"
    name = render([name_template] if name_template else [], fields) or fields.get("name") or ""
    return number, name
