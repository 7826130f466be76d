"""Parsing Asterisk's security log lines."""

from app.sip.security import AuthFailure

WRONG = ('[2026-11-27 03:32:16] SECURITY[1] res_security_log.c: SecurityEvent="ChallengeResponseFailed",'
         'EventTV="x",Severity="Error",Service="PJSIP",EventVersion="1",AccountID="pbx1",SessionID="abc",'
         'LocalAddress="IPV4/UDP/127.0.0.1/5060",RemoteAddress="IPV4/UDP/127.0.0.3/37167",Challenge="c"')
DECOY = WRONG.replace('AccountID="pbx1"', 'AccountID="<unknown>"')
SENT = WRONG.replace("ChallengeResponseFailed", "ChallengeSent")


def test_wrong_password_is_a_failure_with_account_and_address():
    assert AuthFailure.parse(WRONG) == AuthFailure("wrong password", "pbx1", "127.0.0.3", "37167", "abc")


def test_decoy_challenge_and_normal_challenge_are_not_failures():
    assert AuthFailure.parse(DECOY) is None
    assert AuthFailure.parse(SENT) is None
