"""TGTRUNK_WORKERS: one media worker per core from 4 cores unless told otherwise; a bad value is a clear error."""

from __future__ import annotations

import os

import pytest

from app.settings import SettingsError, auto_workers, load_settings


def test_default_is_one_worker_per_core_from_four_cores() -> None:
    assert [auto_workers(cores) for cores in (None, 1, 2, 3, 4, 16)] == [0, 0, 0, 0, 4, 16]
    assert load_settings({}).workers == auto_workers(os.cpu_count())
    assert load_settings({"TGTRUNK_WORKERS": "auto"}).workers == auto_workers(os.cpu_count())


def test_zero_keeps_the_media_in_the_gateway_process() -> None:
    assert load_settings({"TGTRUNK_WORKERS": "0"}).workers == 0
    assert load_settings({"TGTRUNK_WORKERS": "3"}).workers == 3


@pytest.mark.parametrize("value", ["-1", "many", "1000"])
def test_a_bad_value_says_what_is_allowed(value: str) -> None:
    with pytest.raises(SettingsError, match="TGTRUNK_WORKERS"):
        load_settings({"TGTRUNK_WORKERS": value})
