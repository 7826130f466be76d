"""Parsing Asterisk's security log lines."""

from app.sip.security import AuthFailure

WRONG = ('[2026-11-27 03:32:16] SECURITY[1] res_security_log.c: SecurityEvent="ChallengeResponseFailed",'
         'EventTV="x",Severity="Error",Service="PJSIP",EventVersion="1",AccountID="pbx1",SessionID="abc",'
         'LocalAddress="IPV4/UDP/127.0.0.1/5060",RemoteAddress="IPV4/UDP/127.0.0.3/37167",Challenge="c"')
DECOY = WRONG.replace('AccountID="pbx1"', 'AccountID="<unknown>"')
SENT = WRONG.replace("ChallengeResponseFailed", "ChallengeSent")


def test_wrong_password_is_a_failure_with_account_and_address():
    assert AuthFailure.parse(WRONG) == AuthFailure("wrong password", "pbx1", "127.0.0.3", "37167", "abc")


def test_a_wrong_answer_to_the_decoy_challenge_is_an_unknown_user():
    """Asterisk logs credentials for a user it does not know as ChallengeResponseFailed of "<unknown>"."""
    assert AuthFailure.parse(DECOY) == AuthFailure("unknown user", "<unknown>", "127.0.0.3", "37167", "abc")
    assert AuthFailure.parse(DECOY.replace("ChallengeResponseFailed", "ChallengeSent")) == AuthFailure(
        "unknown user", "<unknown>", "127.0.0.3", "37167", "abc", challenged=True)


def test_a_normal_challenge_is_not_a_failure():
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


def event(kind: str, account: str, session: str = "s1", address: str = "127.0.0.5") -> str:
    """A line as Asterisk 22 writes it (fields trimmed)."""
    return (f'[2026-11-29 19:00:09] SECURITY[21287] res_security_log.c: SecurityEvent="{kind}",Severity="Error",'
            f'Service="PJSIP",EventVersion="1",AccountID="{account}",SessionID="{session}",'
            f'LocalAddress="IPV4/UDP/127.0.0.1/47277",RemoteAddress="IPV4/UDP/{address}/40639"')


def bans(db):  # type: ignore[no-untyped-def]
    from app.store.ban import Ban
    from sqlmodel import select

    with db.session() as session:
        return [(b.address, b.reason, b.failures) for b in session.exec(select(Ban))]


def test_slow_guesses_for_an_unknown_user_each_count_once(tmp_path):
    """Seen on the bundled Asterisk: each guess (REGISTER, 401, REGISTER with credentials, 401) logs a decoy
    ChallengeSent and ChallengeResponseFailed for "<unknown>"; InvalidAccountID only for some requests."""
    security, db = watcher(tmp_path, threshold=12)
    for n in range(12):
        now = 100.0 + 1.2 * n
        named = n % 3 == 2  # Asterisk names the user for some requests only
        if named:
            security.handle_line(event("InvalidAccountID", "nobody"), now=now)
        security.handle_line(event("ChallengeSent", "<unknown>"), now=now)
        if named:
            security.handle_line(event("InvalidAccountID", "nobody"), now=now)
        security.handle_line(event("ChallengeResponseFailed", "<unknown>"), now=now + 0.01)
        security.flush(now=now + 0.2)
        assert bans(db) == ([] if n < 11 else [("127.0.0.5", "unknown user", 12)])
    db.close()


def test_a_flood_counts_every_request_and_a_burst_of_retries_once(tmp_path):
    security, db = watcher(tmp_path, threshold=50)
    for n in range(13):  # baresip retrying one REGISTER with new nonces, within milliseconds
        security.handle_line(event("ChallengeResponseFailed", "<unknown>", "retry"), now=99.0 + n * 0.001)
    for n in range(49):  # a scanner: a new Call-ID each request
        security.handle_line(event("ChallengeResponseFailed", "<unknown>", f"f{n}"), now=100.0 + n * 0.001)
    assert bans(db) == [("127.0.0.5", "unknown user", 50)]
    db.close()


def test_an_untrusted_address_counts_once_per_attempt(tmp_path):
    """Each request logs FailedACL, then the decoy event of the same request."""
    security, db = watcher(tmp_path, threshold=3)
    for n in range(2):
        security.handle_line(event("FailedACL", "acl1"), now=100.0 + n)
        security.handle_line(event("ChallengeSent", "<unknown>"), now=100.0 + n)
        security.handle_line(event("FailedACL", "acl1"), now=100.0 + n)
        security.handle_line(event("ChallengeResponseFailed", "<unknown>"), now=100.0 + n)
    security.flush(now=110.0)
    assert bans(db) == []
    security.handle_line(event("FailedACL", "acl1"), now=111.0)
    security.handle_line(event("ChallengeResponseFailed", "<unknown>"), now=111.0)
    assert bans(db) == [("127.0.0.5", "untrusted address", 3)]
    db.close()


def test_a_pbx_whose_unidentified_invite_is_challenged_then_gets_in_is_not_counted(tmp_path):
    security, db = watcher(tmp_path, threshold=1)
    for n in range(5):
        security.handle_line(event("InvalidAccountID", "anonymous", f"c{n}"), now=100.0)
        security.handle_line(event("ChallengeSent", "<unknown>", f"c{n}"), now=100.0)
        security.handle_line(event("SuccessfulAuth", "pbx1", f"c{n}"), now=100.1)
    security.flush(now=110.0)
    assert bans(db) == []
    db.close()


def test_addresses_are_forgotten_once_their_failures_and_bans_are_over(tmp_path):
    """Issue 8 item 8: a failure from each of many addresses (a spray) was kept for ever, and so was every ban
    after it ended: the watcher grew with every address that ever failed."""
    security, db = watcher(tmp_path, threshold=3)  # a 60 s window, 600 s bans
    for n in range(1000):
        security.handle_line(event("ChallengeResponseFailed", "pbx1", f"s{n}", f"10.0.{n // 250}.{n % 250}"), now=100.0)
    for n in range(3):
        security.handle_line(event("ChallengeResponseFailed", "pbx1", f"b{n}", "127.0.0.9"), now=100.0 + n)
    assert security.active_bans(now=103.0) == ["127.0.0.9"]
    security.flush(now=103.0)
    assert len(security._failures) == 1000

    security.flush(now=170.0)  # the window is over: their failures no longer count
    assert (dict(security._failures), security._last_counted) == ({}, {})
    assert security.active_bans(now=170.0) == ["127.0.0.9"]  # the ban holds
    security.flush(now=710.0)
    assert (security.active_bans(now=710.0), security._banned) == ([], {})
    for n in range(3):  # counting still works afterwards
        security.handle_line(event("ChallengeResponseFailed", "pbx1", f"c{n}", "10.0.0.1"), now=800.0 + n)
    assert security.active_bans(now=803.0) == ["10.0.0.1"]
    db.close()
