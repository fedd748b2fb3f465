"""Settings: one typed, frozen object; every key has an environment override; mistakes fail at start."""
from __future__ import annotations

import dataclasses

import pytest

from assistant.settings import ENV_PREFIX, Settings, SettingsError, load_settings

SAMPLES = {bool: ("false", False), int: ("7", 7), float: ("0.25", 0.25), str: ("x", "x")}


def test_every_key_has_an_environment_override():
    defaults = load_settings(environ={})
    for f in dataclasses.fields(Settings):
        kind = type(defaults[f.name])
        if kind is list:
            raw, expected = '["A", "B"]', ["A", "B"]
        elif kind is dict:
            raw, expected = '{"team": ["NCT01234567"]}', {"team": ["NCT01234567"]}
        else:
            raw, expected = SAMPLES[kind]
        assert load_settings(environ={ENV_PREFIX + f.name: raw})[f.name] == expected, f.name


def test_settings_are_frozen_and_read_like_a_mapping():
    s = load_settings({"CHECK_DEPTH": 12}, environ={})
    assert s["CHECK_DEPTH"] == s.CHECK_DEPTH == 12 and s.get("NOT_A_KEY") is None and "PORT" in s
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.CHECK_DEPTH = 3  # type: ignore[misc]
    assert s.replace(CHECK_DEPTH=3).CHECK_DEPTH == 3 and s.CHECK_DEPTH == 12


@pytest.mark.parametrize("source", ["override", "env"])
def test_unknown_or_mistyped_settings_fail_loudly(source):
    if source == "override":
        with pytest.raises(SettingsError, match="CHEK_DEPTH"):
            load_settings({"CHEK_DEPTH": 5}, environ={})
        with pytest.raises(SettingsError, match="CHECK_DEPTH"):
            load_settings({"CHECK_DEPTH": "deep"}, environ={})
    else:
        with pytest.raises(SettingsError, match="CHECK_DEPTH"):
            load_settings(environ={ENV_PREFIX + "CHECK_DEPTH": "deep"})
        with pytest.raises(SettingsError, match="PRELOAD"):
            load_settings(environ={ENV_PREFIX + "PRELOAD": "maybe"})


def test_config_file_keys_are_checked(tmp_path):
    conf = tmp_path / "site.toml"
    conf.write_text('RELEVANCE_FLOOR = 0.2\nREFERRAL_TEAMS = { lyon = ["NCT06557265"] }\n', encoding="utf-8")
    s = load_settings(environ={ENV_PREFIX + "CONFIG": str(conf)})
    assert s.RELEVANCE_FLOOR == 0.2 and s.REFERRAL_TEAMS == {"lyon": ["NCT06557265"]}
    conf.write_text("RELEVANCE_FLOR = 0.2\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="RELEVANCE_FLOR"):
        load_settings(environ={ENV_PREFIX + "CONFIG": str(conf)})
