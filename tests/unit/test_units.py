from __future__ import annotations

import json

import pytest

from nlp import units
from nlp.units import (
    UnitRulesError,
    convert,
    is_known_unit,
    is_relative_unit,
    load_unit_rules,
    normalize_unit,
)


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("mg/dl", "mg/dL"),
        ("MG/DL", "mg/dL"),
        ("µmol/L", "umol/L"),
        ("μmol/l", "umol/L"),
        ("x10^9/L", "10^9/L"),
        ("x 10E9/L", "10^9/L"),
        ("× 10⁹/L", "10^9/L"),
        ("10*9/L", "10^9/L"),
        ("x 10^3/µL", "10^9/L"),
        ("K/uL", "10^9/L"),
        ("/mm^3", "/mm3"),
        ("/mm³", "/mm3"),
        ("/µL", "/uL"),
        ("cells/μL", "cells/uL"),
        ("mL/min", "mL/min"),
        ("ml/min/1.73 m²", "mL/min/1.73m2"),
        ("mL/min/1.73m^2", "mL/min/1.73m2"),
        ("mg/24h", "mg/day"),
        ("g/24 h", "g/day"),
        ("g/d", "g/day"),
        ("mg/g creatinine", "mg/g"),
        ("kg/m²", "kg/m2"),
        ("mm Hg", "mmHg"),
        ("msec", "ms"),
        ("percent", "%"),
        ("× ULN", "x ULN"),
        ("times the upper limit of normal", "x ULN"),
        ("IU/ml", "IU/mL"),
        ("uIU/mL", "mIU/L"),
    ],
)
def test_normalize_unit_gives_one_spelling(written: str, canonical: str) -> None:
    assert normalize_unit(written) == canonical


def test_normalize_unit_keeps_unknown_and_empty_values() -> None:
    assert normalize_unit("furlongs/fortnight") == "furlongs/fortnight"
    assert normalize_unit(None) is None
    assert normalize_unit("  ") == ""
    assert not is_known_unit("furlongs/fortnight")
    assert is_known_unit("K/µL")


@pytest.mark.parametrize(
    ("value", "source", "target", "lab", "expected"),
    [
        (1.4, "mg/dL", "umol/L", "creatinine", 123.76),
        (123.76, "µmol/L", "mg/dL", "creatinine", 1.4),
        (170, "mg/mmol", "g/g", "upcr", 170 / 113),
        (2.1, "mg/mg", "g/g", "upcr", 2.1),
        (1500, "mg/g", "g/g", "upcr", 1.5),
        (60000, "/mm3", "10^9/L", "platelets", 60.0),
        (1500, "cells/µL", "10^9/L", "anc", 1.5),
        (60, "K/uL", "10^9/L", "platelets", 60.0),
        (9.0, "g/dL", "g/L", "hemoglobin", 90.0),
        (6.0, "mmol/L", "g/dL", "hemoglobin", 6.0 * 1.611),
        (180, "mg/dL", "mmol/L", "glucose", 10.0),
        (1.0, "mg/dL", "umol/L", "bilirubin", 17.1),
        (7.0, "%", "mmol/mol", "hba1c", 10.929 * (7.0 - 2.15)),
        (53.0, "mmol/mol", "%", "hba1c", 53.0 / 10.929 + 2.15),
        (3.2, "g/dL", "g/L", "albumin", 32.0),
        (500, "mg/24 h", "g/day", "proteinuria", 0.5),
        (2.0, "g/24h", "mg/day", None, 2000.0),
        (38.5, "°C", "°F", None, 101.3),
    ],
)
def test_convert_uses_lab_factors(value, source, target, lab, expected) -> None:
    assert convert(value, source, target, lab=lab) == pytest.approx(expected, rel=1e-6)


def test_convert_returns_none_when_not_convertible() -> None:
    assert convert(1.4, "mg/dL", "umol/L") is None  # needs the lab's molar mass
    assert convert(1.4, "mg/dL", "%", lab="creatinine") is None
    assert convert(2.5, "x ULN", "U/L", lab="alt") is None
    assert convert(None, "mg/dL", "mg/dL") is None
    assert convert(1.0, None, "mg/dL") is None
    assert convert(float("nan"), "mg/dL", "mg/dL") is None
    assert convert("abc", "mg/dL", "mg/dL") is None


def test_convert_same_unit_is_identity_after_normalization() -> None:
    assert convert(45, "ml/min/1.73 m2", "mL/min/1.73m2") == 45.0
    assert convert(2.5, "× ULN", "x ULN") == 2.5


def test_relative_units() -> None:
    assert is_relative_unit("× ULN")
    assert is_relative_unit("titre")
    assert not is_relative_unit("mg/dL")


@pytest.mark.parametrize(
    ("text", "unit"),
    [("mg/dL, then", "mg/dL"), ("x 10^9/L)", "10^9/L"), ("× 10⁹/L", "10^9/L"), ("/mm3 and", "/mm3"),
     ("mL/min/1.73 m² x", "mL/min/1.73m2"), ("K/µL", "10^9/L"), ("mmHg", "mmHg")],
)
def test_unit_regex_reads_a_unit_at_a_position(text: str, unit: str) -> None:
    match = units.unit_regex().match(text)
    assert match is not None
    assert normalize_unit(match.group()) == unit


def test_unit_regex_does_not_read_words_as_units() -> None:
    assert units.unit_regex().match("in 2019") is None
    assert units.unit_regex().match("mgx") is None


def _write(tmp_path, data) -> str:
    path = tmp_path / "units.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def test_rules_reject_unknown_keys_naming_the_file(tmp_path) -> None:
    path = _write(tmp_path, {"aliases": {}, "conversion": []})
    with pytest.raises(UnitRulesError, match=r"units\.json.*unknown keys \['conversion'\]"):
        load_unit_rules(path)


def test_rules_reject_bad_groups(tmp_path) -> None:
    bad_key = _write(tmp_path, {"aliases": {"g/L": []}, "conversions": [{"units": {"g/L": 1}, "lab": ["x"]}]})
    with pytest.raises(UnitRulesError, match=r"conversions\[0\] has unknown keys \['lab'\]"):
        load_unit_rules(bad_key)
    bad_factor = tmp_path / "other.json"
    negative = {"aliases": {}, "conversions": [{"units": {"g/L": -1}}]}
    bad_factor.write_text(json.dumps(negative), encoding="utf-8")
    with pytest.raises(UnitRulesError, match="other.json"):
        load_unit_rules(str(bad_factor))


def test_rules_file_that_is_not_json_is_reported(tmp_path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(UnitRulesError, match="broken.json"):
        load_unit_rules(str(path))


def test_custom_rules_file_is_used(tmp_path) -> None:
    path = _write(
        tmp_path,
        {"aliases": {"stone": ["st"], "kg": []}, "conversions": [{"units": {"kg": 1, "stone": 0.157473}}]},
    )
    rules = load_unit_rules(path)
    assert normalize_unit("st", rules) == "stone"
    assert convert(10, "st", "kg", rules=rules) == pytest.approx(63.5, rel=1e-3)
