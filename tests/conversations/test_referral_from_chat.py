"""A referral created from a chat keeps the questions with their answers, and the coordinator's re-evaluation
agrees with what the chat showed for that trial (public HTTP API, SQLite and PostgreSQL)."""
from __future__ import annotations

TRIAL = "NCT06557265"
TURNS = ["47-year-old woman with lupus nephritis class IV on kidney biopsy, on prednisone 10 mg daily, "
         "UPCR 2.4 g/g.",
         "3 months ago",  # the pending biopsy-date question
         "She has never had CAR-T therapy.\nHer platelets are 210."]


def chat(client) -> tuple[str, list[dict]]:
    sid = client.post("/api/v1/sessions").get_json()["id"]
    replies = []
    for text in TURNS:
        resp = client.post(f"/api/v1/sessions/{sid}/messages", json={"text": text})
        assert resp.status_code == 200
        replies.append(resp.get_json())
    return sid, replies


def test_referral_keeps_questions_and_its_evaluation_agrees_with_the_chat(client, coordinator_key):
    sid, replies = chat(client)
    asked = replies[0]["next_question"]
    assert asked and asked["key"].startswith("condition_date:"), asked
    shown = next(m for m in replies[-1]["matches"] if m["nct_id"] == TRIAL)

    created = client.post("/api/v1/referrals", json={"nct_id": TRIAL, "session_id": sid, "contact_ref": "ref-17"})
    assert created.status_code == 201
    rid = created.get_json()["id"]
    got = client.get(f"/api/v1/referrals/{rid}", headers={"X-API-Key": coordinator_key})
    assert got.status_code == 200
    data = got.get_json()

    text = data["patient_text"]
    assert f"Q: {asked['text']} [{asked['key']}]\nA: 3 months ago" in text
    assert "\n3 months ago" not in text and not any(line.strip() in ("Yes", "No", "3 months ago")
                                                   for line in text.splitlines())
    assert text.startswith("Description: 47-year-old woman")
    assert "A: She has never had CAR-T therapy.\n  Her platelets are 210." in text

    evaluation = data["evaluation"]
    assert evaluation["label"] == shown["label"]
    assert {c["id"]: c["verdict"] for c in evaluation["criteria"]} == \
        {c["id"]: c["verdict"] for c in shown["criteria"]}
    # the answer dated the biopsy in the re-evaluation as in the chat
    dated = [c for c in data["profile"]["conditions"] if c["concept"] == "lupus nephritis"]
    assert dated and dated[0]["days_ago"] == 90


def test_a_referral_from_plain_text_is_still_read_as_text(client, coordinator_key):
    created = client.post("/api/v1/referrals", json={"nct_id": TRIAL, "text": TURNS[0], "contact_ref": "r"})
    rid = created.get_json()["id"]
    data = client.get(f"/api/v1/referrals/{rid}", headers={"X-API-Key": coordinator_key}).get_json()
    assert data["patient_text"] == TURNS[0]
    assert any(c["concept"] == "lupus nephritis" for c in data["profile"]["conditions"])
