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


def test_external_asterisk_settings(tmp_path):
    password_file = tmp_path / "ari-password"
    password_file.write_text("s3cret\n")
    settings = load_settings({"TGTRUNK_ARI_URL": "https://pbx.example:8089/asterisk/ari/", "TGTRUNK_ARI_USER": "gw",
                              "TGTRUNK_ARI_PASSWORD_FILE": str(password_file), "TGTRUNK_MEDIA_ADDRESS": "192.0.2.5",
                              "TGTRUNK_ARI_APP": "tg"})
    external = settings.external_ari
    assert (external.url, external.user, external.password) == ("https://pbx.example:8089/asterisk", "gw", "s3cret")
    assert (settings.ari_app, settings.media_address) == ("tg", "192.0.2.5")
    assert "s3cret" not in repr(settings)
    assert load_settings({}).external_ari is None
    assert (load_settings({}).ari_app, load_settings({}).media_address) == ("tgtrunk", "127.0.0.1")


@pytest.mark.parametrize(("env", "message"), [
    ({"TGTRUNK_ARI_URL": "pbx:8088"}, "must look like http://HOST:PORT"),
    ({"TGTRUNK_ARI_URL": "http://pbx:99999"}, "port is not a number"),
    ({"TGTRUNK_ARI_URL": "http://pbx:8088"}, "TGTRUNK_ARI_USER must name"),
    ({"TGTRUNK_ARI_URL": "http://pbx:8088", "TGTRUNK_ARI_USER": "gw"}, "give the ari.conf user's password"),
    ({"TGTRUNK_ARI_URL": "http://pbx:8088", "TGTRUNK_ARI_USER": "gw", "TGTRUNK_ARI_PASSWORD_FILE": "/nonexistent"},
     "TGTRUNK_ARI_PASSWORD_FILE /nonexistent"),
    ({"TGTRUNK_ARI_URL": "http://pbx:8088", "TGTRUNK_ARI_USER": "gw", "TGTRUNK_ARI_PASSWORD": "p",
      "TGTRUNK_MEDIA_ADDRESS": "pbx.example"}, "TGTRUNK_MEDIA_ADDRESS 'pbx.example'"),
    ({"TGTRUNK_ARI_URL": "http://pbx:8088", "TGTRUNK_ARI_USER": "gw", "TGTRUNK_ARI_PASSWORD": "p",
      "TGTRUNK_ARI_APP": "two words"}, "TGTRUNK_ARI_APP 'two words'"),
])
def test_bad_external_asterisk_settings_say_which_variable(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env)
