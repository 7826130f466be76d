import time

import pytest

from app.sip.callerid import caller_fields, caller_id
from app.sip.dialplan import RuleError, apply_rules
from app.sip.line import LineError, LineRequest, build_line, check_rule
from app.telegram.target import Target, TargetError, TargetKind, parse_target


def target_for(rules: list[str], dialled: str) -> Target:
    """As a call from SIP reads the dialled string: the line's rules, then the one target grammar."""
    return parse_target(apply_rules(rules, dialled))


@pytest.mark.parametrize(("dialled", "target"), [
    ("+15551234567", Target(TargetKind.PHONE, "15551234567")),
    ("15551234567", Target(TargetKind.PHONE, "15551234567")),
    ("@alice_bot", Target(TargetKind.USERNAME, "alice_bot")),
    ("%40alice", Target(TargetKind.USERNAME, "alice")),
    ("alice", Target(TargetKind.USERNAME, "alice")),
    ("id123456789", Target(TargetKind.USER_ID, "123456789")),
    ("tg42", Target(TargetKind.USER_ID, "42")),
    ("echo", Target(TargetKind.USERNAME, "echo")),  # 4 characters: the shortest usernames Telegram has
    ("+123456789012345", Target(TargetKind.PHONE, "123456789012345")),  # E.164's 15 digits
])
def test_dial_strings(dialled, target):
    assert target_for([], dialled) == target


@pytest.mark.parametrize("dialled", ["12", "+1-555", "@ab", "@abc", "+1234567890123456", "*#", "tg" + "1" * 31])
def test_malformed_numbers_say_what_is_understood(dialled):
    with pytest.raises(TargetError, match=r"dial \+PHONE, @username"):
        target_for([], dialled)


def test_rules_apply_in_order_to_the_whole_string():
    rules = [r"00(\d+)=+\1", r"8(\d{10})=+7\1", r"\*(\d+)=id\1"]
    assert apply_rules(rules, "0044201234567") == "+44201234567"
    assert apply_rules(rules, "89161234567") == "+79161234567"
    assert target_for(rules, "*777000") == Target(TargetKind.USER_ID, "777000")
    assert apply_rules(rules, "12345") == "12345"  # no rule matches the whole string


def test_caller_id_first_fully_known_template_wins():
    known = caller_fields("+15550001", None, 777, "Zoë Ünal")
    assert caller_id(["{username}", "+{phone}"], "{name_ascii} (TG)", known) == ("+15550001", "Zoe Unal (TG)")
    cyrillic = caller_fields("+79161234567", None, 5, "Иван Петров")
    assert caller_id([], "{name_ascii}", cyrillic) == ("+79161234567", "Ivan Petrov")
    hidden = caller_fields(None, "zoe", 777, "Zoë")
    assert caller_id(["+{phone}", "{userid}"], None, hidden) == ("777", "Zoë")


@pytest.mark.parametrize(("rule", "message"), [
    (r"(\d+)=\2", r"bad replacement '\\\\2' \(invalid group reference"),
    (r"(?P<n>\d+)=\g<m>", r"bad replacement .*unknown group"),
    ("([0-9]=x", "bad regular expression"),
    ("abc=x\\", "bad replacement"),
    ("=x", "must look like 'REGEX=REPLACEMENT'"),
])
def test_a_rule_that_would_fail_on_a_call_is_refused_when_saved(rule, message):
    with pytest.raises(LineError, match=message):
        build_line(LineRequest("desk", "register", rules=(rule,)))


def test_inline_flags_work_as_written():
    rule = "(?i)ECHO=echo"
    assert check_rule(rule) == rule
    assert target_for([rule], "Echo") == Target(TargetKind.USERNAME, "echo")
    assert target_for(["x(?i)y=zed1"], "xY") == Target(TargetKind.USERNAME, "zed1")


# Time is measured as this thread's CPU time: what the rule costs the event loop, without the time a loaded CI
# machine spends running other processes.
def test_a_rule_that_backtracks_for_ever_is_stopped_within_the_time_limit():
    rules = [r"(a|a)+$=x"]
    started = time.thread_time()
    with pytest.raises(RuleError, match=r"gave no answer for 'a{40}b' within 25 ms"):
        apply_rules(rules, "a" * 40 + "b")
    assert time.thread_time() - started < 0.1


def test_the_time_limit_covers_all_of_a_lines_rules_together():
    rules = [r"(a|aa)+$=x"] * 5
    started = time.thread_time()
    with pytest.raises(RuleError, match="gave no answer"):
        apply_rules(rules, "a" * 30 + "b")
    assert time.thread_time() - started < 0.1
