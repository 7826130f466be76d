"""TGTRUNK_WORKERS: one media worker per core unless told otherwise; a bad value is a clear error."""

from __future__ import annotations

import os

import pytest

from app.settings import SettingsError, load_settings


def test_default_is_one_worker_per_core() -> None:
    assert load_settings({}).workers == (os.cpu_count() or 1)
    assert load_settings({"TGTRUNK_WORKERS": "auto"}).workers == (os.cpu_count() or 1)


def test_zero_keeps_the_media_in_the_gateway_process() -> None:
    assert load_settings({"TGTRUNK_WORKERS": "0"}).workers == 0
    assert load_settings({"TGTRUNK_WORKERS": "3"}).workers == 3


@pytest.mark.parametrize("value", ["-1", "many", "1000"])
def test_a_bad_value_says_what_is_allowed(value: str) -> None:
    with pytest.raises(SettingsError, match="TGTRUNK_WORKERS"):
        load_settings({"TGTRUNK_WORKERS": value})
