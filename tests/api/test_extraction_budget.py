"""The per-request extraction budget: past EXTRACTION_BUDGET_SECONDS a request gets 422 extraction_too_long."""
from __future__ import annotations

import logging
import time

import pytest

from models.domain import ExtractionBudgetExceeded
from nlp.profile import extract_profile
from tests.conftest import make_test_app

TEXT = "52-year-old woman with systemic lupus erythematosus, no diabetes, failed mycophenolate."


@pytest.fixture
def tight_app(tmp_path, nlp, studies_file):
    # a budget no pipeline can meet: every extraction is over it by the first component
    app = make_test_app(tmp_path, nlp, studies_file, EXTRACTION_BUDGET_SECONDS=1e-9)
    yield app
    app.extensions["trialmatch"].engine.dispose()


def test_extract_profile_stops_at_a_passed_deadline(nlp):
    with pytest.raises(ExtractionBudgetExceeded) as info:
        extract_profile(nlp, TEXT, deadline=time.monotonic() - 1)
    assert info.value.chars == len(TEXT) and TEXT not in str(info.value)


def test_extract_profile_within_its_deadline_equals_the_unbounded_run(nlp):
    bounded = extract_profile(nlp, TEXT, deadline=time.monotonic() + 60)
    assert bounded == extract_profile(nlp, TEXT)
    assert any(c.concept for c in bounded.conditions)


def test_match_over_budget_is_422_with_a_stable_code_and_no_text_logged(tight_app, caplog):
    caplog.set_level(logging.WARNING)
    resp = tight_app.test_client().post("/api/v1/match", json={"text": TEXT})
    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert error["code"] == "extraction_too_long" and "shorten" in error["message"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "extraction budget exceeded" in logged and "lupus" not in logged


def test_chat_message_over_budget_is_422_and_not_saved(tight_app):
    client = tight_app.test_client()
    sid = client.post("/api/v1/sessions").get_json()["id"]
    resp = client.post(f"/api/v1/sessions/{sid}/messages", json={"text": TEXT})
    assert resp.status_code == 422 and resp.get_json()["error"]["code"] == "extraction_too_long"
    assert client.get(f"/api/v1/sessions/{sid}").get_json()["messages"] == []


def test_default_budget_lets_ordinary_descriptions_through(client):
    resp = client.post("/api/v1/match", json={"text": TEXT})
    assert resp.status_code == 200 and resp.get_json()["profile"]["conditions"]
