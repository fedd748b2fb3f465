"""Referral queue fields (title, labels, patient summary, changed trial), the chat transcript, note-only updates."""
from __future__ import annotations

from sqlalchemy import text as sql

from tests.api.test_api import error_code

TRIAL = "NCT06897930"
PATIENT = ("52-year-old man with systemic lupus erythematosus since 2015, anti-dsDNA positive, "
           "failed mycophenolate and belimumab. His neighbour Wilhelmina Sprocket drove him in.")


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _create(client, **body) -> dict:
    resp = client.post("/api/v1/referrals", json={"nct_id": TRIAL, "contact_ref": "phone 555-0100", **body})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def test_the_queue_lists_title_labels_and_a_summary_without_the_patient_text(client, coordinator_key):
    created = _create(client, text=PATIENT)
    trial = client.get(f"/api/v1/trials/{TRIAL}").get_json()
    assert created["trial_title"] == trial["title"]
    assert created["label_at_creation"] in ("eligible", "possibly_eligible", "ineligible")
    listing = client.get("/api/v1/referrals", headers=_auth(coordinator_key)).get_json()
    row = next(r for r in listing["referrals"] if r["id"] == created["id"])
    assert row["trial_title"] == trial["title"]
    assert row["label_at_creation"] == created["label_at_creation"]
    assert row["label_now"] == row["label_at_creation"] and row["trial_changed"] is False
    summary = row["patient_summary"]
    assert summary.startswith("52-year-old male; ") and "systemic lupus erythematosus" in summary
    assert "Sprocket" not in summary and "neighbour" not in summary and "patient_text" not in row
    # the detail page re-evaluates: the label now is the re-computed one and agrees with the evaluation
    opened = client.get(f"/api/v1/referrals/{created['id']}", headers=_auth(coordinator_key)).get_json()
    assert opened["label_now"] == opened["evaluation"]["label"] == created["label_at_creation"]
    assert opened["transcript"] == []  # made from a text, not a chat


def test_a_changed_trial_is_flagged_and_its_label_now_left_to_the_detail_page(client, app, coordinator_key):
    created = _create(client, text=PATIENT)
    with app.extensions["trialmatch"].engine.begin() as conn:
        conn.execute(sql("UPDATE trial SET content_hash = 'changed' WHERE nct_id = :n"), {"n": TRIAL})
    row = client.get("/api/v1/referrals", headers=_auth(coordinator_key)).get_json()["referrals"][0]
    assert row["id"] == created["id"] and row["trial_changed"] is True and row["label_now"] is None
    opened = client.get(f"/api/v1/referrals/{created['id']}", headers=_auth(coordinator_key)).get_json()
    assert opened["trial_changed"] is True and opened["label_now"] == opened["evaluation"]["label"]


def test_a_referral_from_a_chat_keeps_each_answer_with_its_question(client, coordinator_key):
    sid = client.post("/api/v1/sessions").get_json()["id"]
    first = client.post(f"/api/v1/sessions/{sid}/messages", json={"text": PATIENT}).get_json()
    asked = first["next_question"]
    assert asked is not None
    last = client.post(f"/api/v1/sessions/{sid}/messages", json={"text": "no"}).get_json()
    created = _create(client, session_id=sid)
    opened = client.get(f"/api/v1/referrals/{created['id']}", headers=_auth(coordinator_key)).get_json()
    assert opened["transcript"] == [{"question": None, "question_key": None, "answer": PATIENT},
                                    {"question": asked["text"], "question_key": asked["key"], "answer": "no"}]
    # the referral is read as the chat read it: the label and verdicts the chat showed last
    shown = next(m for m in last["matches"] if m["nct_id"] == TRIAL)
    assert created["label_at_creation"] == opened["label_now"] == shown["label"]
    assert [(c["id"], c["verdict"]) for c in opened["evaluation"]["criteria"]] == [
        (c["id"], c["verdict"]) for c in shown["criteria"]]
    assert opened["profile"] == last["profile"]


def test_a_note_alone_is_added_without_changing_the_status(client, coordinator_key):
    rid = _create(client, text=PATIENT)["id"]
    auth = _auth(coordinator_key)
    resp = client.patch(f"/api/v1/referrals/{rid}", headers=auth, json={"note": "left a voicemail"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "new"
    assert [(a["action"], a["from_status"], a["to_status"], a["note"]) for a in body["audit"]] == [
        ("created", None, "new", None), ("note", "new", "new", "left a voicemail")]
    moved = client.patch(f"/api/v1/referrals/{rid}", headers=auth, json={"status": "contacted"}).get_json()
    assert moved["status"] == "contacted" and [a["action"] for a in moved["audit"]] == ["created", "note", "status"]
    for bad in ({}, {"note": "   "}, {"note": None}, {"status": None}):
        resp = client.patch(f"/api/v1/referrals/{rid}", headers=auth, json=bad)
        assert resp.status_code == 400 and error_code(resp) == "invalid_request", bad
    assert error_code(client.patch(f"/api/v1/referrals/{rid}", headers=auth, json={"note": 5})) == "invalid_type"
    assert client.patch(f"/api/v1/referrals/{rid}", json={"note": "x"}).status_code == 401
    missing = client.patch("/api/v1/referrals/999999", headers=auth, json={"note": "x"})
    assert missing.status_code == 404 and error_code(missing) == "referral_not_found"


def test_consent_given_with_a_referral_is_in_the_audit_trail(client, coordinator_key):
    from assistant.web.api import CONSENT_NOTE

    with_consent = _create(client, text=PATIENT, consent=True)
    without = _create(client, text=PATIENT)
    auth = _auth(coordinator_key)
    first = client.get(f"/api/v1/referrals/{with_consent['id']}", headers=auth).get_json()["audit"][0]
    assert (first["action"], first["note"]) == ("created", CONSENT_NOTE)
    assert client.get(f"/api/v1/referrals/{without['id']}", headers=auth).get_json()["audit"][0]["note"] is None
    for bad in (False, "yes", 1):
        resp = client.post("/api/v1/referrals", json={"nct_id": TRIAL, "text": PATIENT, "contact_ref": "x",
                                                      "consent": bad})
        assert resp.status_code == 400 and error_code(resp) == "consent_required", bad
