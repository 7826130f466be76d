"""Line settings: every bad input gets one clear message; good ones become the right pjsip objects."""

from __future__ import annotations

import hashlib

import pytest

from app.sip.line import LineError, LineRequest, build_line
from app.sip.pjsip import objects_for_line


def fields(objects, kind):
    return {k: v for obj in objects if obj.kind == kind for k, v in obj.fields}


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (LineRequest("a", "sideways"), "unknown mode 'sideways'"),
        (LineRequest("a", "register", trusted_ips=("10.0.0.300/8",)), "trusted IP '10.0.0.300/8' is not an address"),
        (LineRequest("bad name", "register"), "line name 'bad name'"),
        (LineRequest("a", "register", codecs="opus"), "codecs 'opus': choose from alaw, ulaw, g722"),
        (LineRequest("a", "register", dtmf="pulse"), "unknown DTMF method 'pulse'"),
        (LineRequest("a", "register", rules=("([0-9]=x",)), "bad regular expression"),
        (LineRequest("a", "register", callerid_templates=("{phone} {email}",)), "unknown field {email}"),
        (LineRequest("a", "outbound", username="u", password="p"), "needs --server"),
        (LineRequest("a", "outbound", server="pbx:99999", username="u", password="p"), "port must be a number"),
        (LineRequest("a", "ip"), "needs --host"),
        (LineRequest("a", "ip", host="h", headers=("NoColon",)), "must look like 'Field: Value'"),
        (LineRequest("a", "ip", host="h", password="p"), "--password does not apply to a ip line"),
        (LineRequest("a", "register", max_calls=0), "--max-calls must be at least 1"),
        (LineRequest("a", "stasis"), "a stasis line needs --originate"),
        (LineRequest("a", "stasis", originate="PJSIP/{phone}"), "must be an Asterisk dial string"),
        (LineRequest("a", "stasis", originate="PJSIP/1 00"), "must be an Asterisk dial string"),
        (LineRequest("a", "stasis", originate="PJSIP/{number}", host="pbx"), "--host does not apply to a stasis line"),
        (LineRequest("a", "register", originate="PJSIP/{number}"), "--originate is for stasis lines"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(request_, message):
    with pytest.raises(LineError, match=message.replace("(", r"\(").replace("{", r"\{").replace("}", r"\}")):
        build_line(request_)


def test_register_line_stores_only_a_digest_and_pushes_auth_acl():
    line, generated = build_line(LineRequest("office", "register", username="pbx1", password="pw",
                                             trusted_ips=("203.0.113.7",)))
    assert generated is None
    assert line.password_digest == hashlib.md5(b"pbx1:tgtrunk:pw").hexdigest()
    objects = objects_for_line(line)
    assert [o.kind for o in objects] == ["auth", "aor", "endpoint"]
    assert fields(objects, "auth")["password_digest"] == f"md5:{line.password_digest}"
    endpoint = fields(objects, "endpoint")
    assert endpoint["permit"] == "203.0.113.7/32" and endpoint["deny"] == "0.0.0.0/0"
    assert endpoint["set_var"] == "TGTRUNK_LINE=office"
    assert endpoint["allow"] == "alaw,ulaw" and endpoint["dtmf_mode"] == "rfc4733"


def test_generated_password_is_returned_once():
    line, generated = build_line(LineRequest("office", "register"))
    assert generated and len(generated) >= 16
    assert line.username == "office"
    assert generated not in (line.password_digest or "")


def test_outbound_line_registers_through_proxy_and_is_known_by_its_line_parameter_only():
    line, _ = build_line(LineRequest("up", "outbound", server="198.51.100.5:5070", username="7001",
                                     password="pw", proxy="198.51.100.6", codecs="g722,alaw"))
    objects = objects_for_line(line)
    registration = fields(objects, "registration")
    assert registration["server_uri"] == "sip:198.51.100.5:5070"
    assert registration["client_uri"] == "sip:7001@198.51.100.5"
    assert registration["outbound_proxy"] == "sip:198.51.100.6\\;lr"
    assert registration["line"] == "yes" and registration["auth_rejection_permanent"] == "no"
    # No identify by address: the PBX's other requests (a trunk registering here) must not land on this line.
    assert "identify" not in {o.kind for o in objects}
    endpoint = fields(objects, "endpoint")
    assert endpoint["allow"] == "g722,alaw"
    assert (endpoint["from_user"], endpoint["send_pai"], endpoint["send_rpid"]) == ("7001", "yes", "no")
    assert line.password_digest == hashlib.md5(b"7001:asterisk:pw").hexdigest()


def test_ip_line_has_no_auth_and_is_identified_by_address_only():
    line, _ = build_line(LineRequest("sbc", "ip", host="192.0.2.10:5060", headers=("X-Trunk: tg",)))
    objects = objects_for_line(line)
    assert "auth" not in {o.kind for o in objects}
    assert fields(objects, "identify")["match"] == "192.0.2.10"
    assert fields(objects, "endpoint")["identify_by"] == "ip"
    assert line.headers == ["X-Trunk: tg"]


def test_identity_header_and_callerid_in_from_settings():
    line, _ = build_line(LineRequest("up", "outbound", server="198.51.100.5", username="7001", password="pw",
                                     identity_header="rpid", callerid_in_from=True))
    endpoint = fields(objects_for_line(line), "endpoint")
    assert "from_user" not in endpoint  # Asterisk then puts the Caller ID (name and number) in From
    assert (endpoint["send_pai"], endpoint["send_rpid"], endpoint["trust_id_outbound"]) == ("no", "yes", "yes")
    with pytest.raises(LineError, match="identity header 'pia'"):
        build_line(LineRequest("a", "register", identity_header="pia"))
    with pytest.raises(LineError, match="--callerid-in-from is for outbound lines"):
        build_line(LineRequest("a", "register", callerid_in_from=True))


def test_stasis_line_is_a_route_with_an_originate_template():
    from app.sip.line import dial_string

    line, generated = build_line(LineRequest("telegram", "stasis", originate="Local/{number}@from-internal",
                                             pbx_number="600", rules=(r"9(\d+)=+\1",), max_calls=4))
    assert generated is None and (line.username, line.password_digest) == (None, None)
    assert dial_string(line, "600") == "Local/600@from-internal"
    register, _ = build_line(LineRequest("office", "register", username="pbx1", password="pw"))
    assert (dial_string(register, "100"), dial_string(register, "")) == ("PJSIP/100@pbx1", "PJSIP/pbx1")
