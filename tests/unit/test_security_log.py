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


ANONYMOUS = WRONG.replace("ChallengeResponseFailed", "InvalidAccountID").replace('AccountID="pbx1"', 'AccountID="anonymous"')
SUCCESS = WRONG.replace("ChallengeResponseFailed", "SuccessfulAuth")


def watcher(tmp_path, threshold: int = 3):  # type: ignore[no-untyped-def]
    from app.sip.security import SecurityWatcher
    from app.store.db import Database

    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    return SecurityWatcher(tmp_path / "security.log", db, lambda account: None, threshold, 60.0, 600.0), db


def test_a_burst_of_anonymous_invites_that_authenticate_on_retry_bans_nobody(tmp_path):
    """A PBX whose From is "anonymous" is identified only by its authenticated retry (same Call-ID);
    Asterisk logs InvalidAccountID for each first attempt in a burst, which must not ban the PBX."""
    from app.store.ban import Ban
    from sqlmodel import select

    security, db = watcher(tmp_path)
    for n in range(20):
        security.handle_line(ANONYMOUS.replace('SessionID="abc"', f'SessionID="call-{n}"'), now=100.0)
        security.handle_line(SUCCESS.replace('SessionID="abc"', f'SessionID="call-{n}"'), now=100.1)
    security.flush(now=110.0)
    with db.session() as session:
        assert list(session.exec(select(Ban))) == []

    for n in range(3):  # the same requests never authenticated: after the grace they count, and ban
        security.handle_line(ANONYMOUS.replace('SessionID="abc"', f'SessionID="bad-{n}"'), now=200.0)
    security.flush(now=201.0)
    with db.session() as session:
        assert list(session.exec(select(Ban))) == []  # still within the grace for a retry
    security.flush(now=202.5)
    with db.session() as session:
        assert [(b.address, b.failures) for b in session.exec(select(Ban))] == [("127.0.0.3", 3)]
    db.close()


def test_a_success_does_not_excuse_wrong_passwords_or_another_address(tmp_path):
    from app.store.ban import Ban
    from sqlmodel import select

    security, db = watcher(tmp_path)
    # Wrong passwords count at once, even if a request with the same Call-ID then gets in.
    for n in range(2):
        security.handle_line(WRONG.replace('SessionID="abc"', f'SessionID="guess-{n}"'), now=300.0 + n * 2)
        security.handle_line(SUCCESS.replace('SessionID="abc"', f'SessionID="guess-{n}"'), now=300.1 + n * 2)
    # An unidentified request is not excused by a success from another address.
    security.handle_line(ANONYMOUS.replace('SessionID="abc"', 'SessionID="x"'), now=305.0)
    security.handle_line(SUCCESS.replace('SessionID="abc"', 'SessionID="x"').replace("127.0.0.3/", "127.0.0.9/"),
                         now=305.1)
    security.flush(now=308.0)
    with db.session() as session:
        assert [(b.address, b.failures) for b in session.exec(select(Ban))] == [("127.0.0.3", 3)]
    db.close()
