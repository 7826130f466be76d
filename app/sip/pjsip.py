"""A line as the res_pjsip objects Asterisk needs (pushed through ARI dynamic configuration)."""

from __future__ import annotations

from dataclasses import dataclass

from app.sip.line import endpoint_id, host_of
from app.store.line import Line, LineMode

INBOUND_CONTEXT = "tgtrunk-in"


@dataclass(frozen=True)
class PjsipObject:
    kind: str  # auth, aor, endpoint, identify, registration, acl
    id: str
    fields: tuple[tuple[str, str], ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.id)


# Push order: what an object refers to goes first; removal runs the other way round.
PUSH_ORDER = ("auth", "aor", "endpoint", "identify", "registration", "acl")


def objects_for_line(line: Line) -> list[PjsipObject]:
    eid = endpoint_id(line)
    endpoint: dict[str, str] = {
        "context": INBOUND_CONTEXT,
        "disallow": "all",
        "allow": line.codecs,
        "aors": eid,
        "dtmf_mode": line.dtmf.value,
        "direct_media": "no",
        "rtp_symmetric": "yes",
        "force_rport": "yes",
        "rewrite_contact": "yes",
        "trust_id_inbound": "no",
        # The Caller ID also travels in P-Asserted-Identity / Remote-Party-ID: a PBX that trusts them shows it
        # even when From has to carry the login (outbound lines).
        "send_pai": "yes" if line.identity_header in ("pai", "both") else "no",
        "send_rpid": "yes" if line.identity_header in ("rpid", "both") else "no",
        "trust_id_outbound": "yes",
        "set_var": f"TGTRUNK_LINE={line.name}",
    }
    objects: list[PjsipObject] = []
    if line.mode is LineMode.REGISTER:
        objects.append(_auth(eid, line))
        objects.append(_obj("aor", eid, max_contacts="1", remove_existing="yes"))
        endpoint["auth"] = eid
        endpoint["identify_by"] = "username,auth_username"
        if line.trusted_ips:
            permit = ",".join(line.trusted_ips)
            endpoint.update(deny="0.0.0.0/0", permit=permit, contact_deny="0.0.0.0/0", contact_permit=permit)
    elif line.mode is LineMode.OUTBOUND:
        assert line.server and line.username
        objects.append(_auth(eid, line))
        objects.append(_obj("aor", eid, contact=f"sip:{line.server}"))
        # The PBX's calls come to the registered contact and carry its `line` parameter, which identifies them
        # (pjsip.conf's endpoint_identifier_order). No identify by address: it would also take the unchallenged
        # INVITEs of a trunk the same PBX registers to a register line (see docs/decisions.md).
        endpoint.update(outbound_auth=eid, from_domain=line.domain or "", identify_by="ip")
        if not line.callerid_in_from:
            # Asterisk then leaves From alone (no name, the login as user): the PBX knows which account calls.
            endpoint["from_user"] = line.username
        if line.proxy:
            endpoint["outbound_proxy"] = f"sip:{line.proxy}\\;lr"
        registration = {
            "server_uri": f"sip:{line.server}",
            "client_uri": f"sip:{line.username}@{line.domain}",
            "contact_user": line.username,
            "outbound_auth": eid,
            "retry_interval": "10",
            # A refused registration is tried again (not stopped until a restart): the PBX may be fixed meanwhile.
            "auth_rejection_permanent": "no",
            "forbidden_retry_interval": "30",
            "fatal_retry_interval": "30",
            "max_retries": "100000",
            "expiration": "300",
            "line": "yes",
            "endpoint": eid,
        }
        if line.proxy:
            registration["outbound_proxy"] = f"sip:{line.proxy}\\;lr"
        objects.append(_obj("registration", eid, **registration))
    else:
        assert line.host
        objects.append(_obj("aor", eid, contact=f"sip:{line.host}"))
        endpoint["identify_by"] = "ip"
        objects.append(_obj("identify", eid, endpoint=eid, match=host_of(line.host)))
    objects.append(_obj("endpoint", eid, **endpoint))
    return sorted(objects, key=lambda o: PUSH_ORDER.index(o.kind))


def ban_object(address: str) -> PjsipObject:
    return _obj("acl", "ban-" + address.replace(".", "-").replace(":", "_"), deny=address)


def _auth(eid: str, line: Line) -> PjsipObject:
    assert line.username and line.password_digest and line.realm
    return _obj(
        "auth",
        eid,
        auth_type="digest",
        username=line.username,
        realm=line.realm,
        password_digest=f"md5:{line.password_digest}",
    )


def _obj(kind: str, oid: str, **fields: str) -> PjsipObject:
    return PjsipObject(kind, oid, tuple(fields.items()))
