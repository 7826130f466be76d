"""The recommended Telegram settings for a gateway account (reference page, "Applying Telegram Settings")."""

from __future__ import annotations

from dataclasses import dataclass

from pyrogram import Client, raw

from app.telegram.errors import rpc_id


@dataclass(frozen=True)
class SettingResult:
    name: str
    ok: bool
    detail: str = ""

    def __str__(self) -> str:
        return f"{'ok' if self.ok else 'FAILED'}: {self.name}" + (f" ({self.detail})" if self.detail else "")


FRESH_HINT = "can only be changed 24 h after login; run `tgtrunk account privacy NAME` later"

RECOMMENDED = (
    ("Allow calls from all users", raw.types.InputPrivacyKeyPhoneCall, raw.types.InputPrivacyValueAllowAll),
    ("Allow P2P calls from everybody", raw.types.InputPrivacyKeyPhoneP2P, raw.types.InputPrivacyValueAllowAll),
    ("Disallow adding to groups", raw.types.InputPrivacyKeyChatInvite, raw.types.InputPrivacyValueDisallowAll),
)


async def apply_recommended(client: Client) -> list[SettingResult]:
    results = []
    for name, key, value in RECOMMENDED:
        try:
            await client.invoke(raw.functions.account.SetPrivacy(key=key(), rules=[value()]))
            results.append(SettingResult(name, True))
        except Exception as exc:  # noqa: BLE001
            results.append(SettingResult(name, False, _explain(exc)))
    results.append(await _disable_calls_on_other_devices(client))
    return results


async def _disable_calls_on_other_devices(client: Client) -> SettingResult:
    name = "Disable calls on other devices"
    try:
        result = await client.invoke(raw.functions.account.GetAuthorizations())
        others = [a for a in result.authorizations if not a.current and not a.call_requests_disabled]
        for authorization in others:
            await client.invoke(raw.functions.account.ChangeAuthorizationSettings(
                hash=authorization.hash, call_requests_disabled=True))
    except Exception as exc:  # noqa: BLE001
        return SettingResult(name, False, _explain(exc))
    return SettingResult(name, True, f"{len(others)} device(s) changed")


def _explain(exc: BaseException) -> str:
    error = rpc_id(exc) if hasattr(exc, "ID") or hasattr(exc, "value") else type(exc).__name__
    if error.startswith("FRESH_") or "TOO_FRESH" in error:
        return FRESH_HINT
    return error
