import pytest

from app.settings import SettingsError, load_settings


def test_defaults_run_out_of_the_box():
    settings = load_settings({})
    assert str(settings.sip_bind) == "0.0.0.0:5060"
    assert str(settings.http_bind) == "127.0.0.1:8080"
    assert settings.database_url == "sqlite:////var/lib/tgtrunk/tgtrunk.db"
    assert (settings.rtp_ports.start, settings.rtp_ports.end) == (10000, 20000)
    assert settings.max_calls is None
    assert load_settings({"TGTRUNK_MAX_CALLS": "12"}).max_calls == 12


@pytest.mark.parametrize(("name", "value", "message"), [
    ("TGTRUNK_SIP_BIND", "0.0.0.0:70000", "out of range"),
    ("TGTRUNK_RTP_PORTS", "20000-10000", "need 0 < start < end"),
    ("TGTRUNK_ARI_PORT", "eighty", "not a whole number"),
    ("TGTRUNK_MAX_CALLS", "lots", "not a whole number"),
])
def test_bad_settings_say_which_variable(name, value, message):
    with pytest.raises(SettingsError, match=message):
        load_settings({name: value})
