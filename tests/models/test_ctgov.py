from __future__ import annotations

import copy
import datetime as dt

import pytest

from models.ctgov import InvalidRecord, parse_age, parse_study
from tests.helpers import fixture_studies


def _seed(nct_id: str) -> dict:
    return next(s for s in fixture_studies() if s["protocolSection"]["identificationModule"]["nctId"] == nct_id)


@pytest.mark.parametrize("raw,years", [("18 Years", 18.0), ("6 Months", 0.5), ("70 years", 70.0),
                                       ("N/A", None), ("", None), (None, None), ("2 Weeks", 0.0383)])
def test_parse_age(raw, years):
    assert parse_age(raw) == years


def test_parse_seed_trial_fields():
    trial = parse_study(_seed("NCT06557265"))
    assert trial.nct_id == "NCT06557265"
    assert trial.minimum_age_years == 18.0 and trial.maximum_age_years == 70.0
    assert trial.overall_status == "RECRUITING"
    assert trial.sex == "ALL"
    assert len(trial.locations) == 14
    assert "Inclusion Criteria" in trial.eligibility_text


def test_parse_azd0120_locations_and_interventions():
    trial = parse_study(_seed("NCT06897930"))
    assert len(trial.locations) == 8
    assert {loc.status for loc in trial.locations} == {"RECRUITING", "NOT_YET_RECRUITING"}
    assert any("AZD0120" in i.name for i in trial.interventions)


def test_status_is_normalized():
    study = copy.deepcopy(_seed("NCT06897930"))
    study["protocolSection"]["statusModule"]["overallStatus"] = "Active, not recruiting"
    assert parse_study(study).overall_status == "ACTIVE_NOT_RECRUITING"
    study["protocolSection"]["statusModule"]["overallStatus"] = "Unknown status"
    assert parse_study(study).overall_status == "UNKNOWN"


def test_last_update_date():
    study = copy.deepcopy(_seed("NCT06897930"))
    study["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {"date": "2026-01-09"}
    assert parse_study(study).last_update == dt.date(2026, 1, 9)


@pytest.mark.parametrize("mutate,reason", [
    (lambda s: s.pop("protocolSection"), "missing protocolSection"),
    (lambda s: s["protocolSection"]["identificationModule"].pop("nctId"), "nctId"),
    (lambda s: s["protocolSection"]["identificationModule"].update(nctId="XYZ"), "malformed NCT id"),
    (lambda s: s["protocolSection"]["conditionsModule"].update(conditions="lupus"), "expected list"),
    (lambda s: s["protocolSection"]["eligibilityModule"].update(eligibilityCriteria=["a"]), "expected str"),
    (lambda s: s["protocolSection"]["eligibilityModule"].update(eligibilityCriteria="x" * 300_000), "exceeds"),
    (lambda s: s["protocolSection"].update(eligibilityModule=[1, 2]), "expected dict"),
])
def test_invalid_records_are_rejected_with_reason(mutate, reason):
    study = copy.deepcopy(_seed("NCT06897930"))
    study["protocolSection"].setdefault("conditionsModule", {"conditions": []})
    mutate(study)
    with pytest.raises(InvalidRecord, match=reason):
        parse_study(study)


def test_non_object_is_rejected():
    with pytest.raises(InvalidRecord):
        parse_study(["not", "a", "study"])
