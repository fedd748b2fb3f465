"""Scripted multi-turn conversations through the public chat API (POST /api/v1/sessions, .../messages).

Each line of ``conversations.jsonl`` is one conversation of our own: the user's turns and, after each turn, what
the profile must hold (facts present/negated/absent, values, dates, doses, the turn that said each fact), the
pending question (key and wording), verdicts and labels of named trials. The bare answers in a script are written
for the question the previous turn must have left pending, so every turn asserts that question first.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CONVERSATIONS = [json.loads(line) for line in (HERE / "conversations.jsonl").read_text(encoding="utf-8").splitlines()
                 if line.strip()]
EXPECT_KEYS = {"present", "negated", "absent", "values", "days_ago", "qualifier", "dose", "turn", "age", "sex",
               "question", "question_any", "question_text", "question_not", "pronoun", "verdicts", "labels",
               "labels_not", "conditions_count"}


@pytest.fixture(scope="module")
def chat_client(tmp_path_factory, nlp, studies_file):
    """The app over the fixture trials (SQLite), shared by the conversations of this module."""
    from tests.conftest import make_test_app

    app = make_test_app(tmp_path_factory.mktemp("conversations"), nlp, studies_file)
    yield app.test_client()
    app.extensions["trialmatch"].engine.dispose()


def facts(profile: dict) -> dict[str, list[dict]]:
    """Every fact of the profile JSON by its subject (concept, lab or drug name)."""
    out: dict[str, list[dict]] = {}
    for kind, name in (("conditions", "concept"), ("labs", "name"), ("therapies", "name")):
        for f in profile[kind]:
            out.setdefault(f[name], []).append({**f, "kind": kind})
    return out


def check_profile(profile: dict, expect: dict, where: str) -> None:
    by = facts(profile)
    for name in expect.get("present", []):
        assert any(not f["negated"] for f in by.get(name, [])), f"{where}: {name} should be present: {by.keys()}"
    for name in expect.get("negated", []):
        assert by.get(name) and all(f["negated"] for f in by[name]), f"{where}: {name} should be negated: {by.get(name)}"
    for name in expect.get("absent", []):
        assert name not in by, f"{where}: {name} should be absent: {by.get(name)}"
    for field, attr in (("values", "value"), ("days_ago", "days_ago"), ("qualifier", "qualifier"),
                        ("dose", "prednisone_eq_mg_day"), ("turn", "turn")):
        for name, wanted in expect.get(field, {}).items():
            got = [f.get(attr) for f in by.get(name, [])]
            assert got, f"{where}: no fact about {name}"
            if isinstance(wanted, float | int) and not isinstance(wanted, bool) and attr != "turn":
                assert any(g is not None and g == pytest.approx(wanted) for g in got), f"{where}: {name} {attr} {got}"
            else:
                assert wanted in got, f"{where}: {name} {attr} should be {wanted!r}, got {got}"
    if "age" in expect:
        assert profile["age"] == expect["age"], where
    if "sex" in expect:
        assert profile["sex"] == expect["sex"], where
    if "conditions_count" in expect:
        assert len(profile["conditions"]) == expect["conditions_count"], where


def check_question(data: dict, expect: dict, where: str) -> None:
    pending = data["next_question"]
    key = pending["key"] if pending else None
    if "question" in expect:
        assert key == expect["question"], f"{where}: pending {key!r}, expected {expect['question']!r}"
    if "question_any" in expect:
        assert key in expect["question_any"], f"{where}: pending {key!r}"
    if "question_text" in expect:
        assert pending and expect["question_text"].lower() in pending["text"].lower(), f"{where}: {pending}"
    for banned in expect.get("question_not", []):
        assert all(q["key"] != banned and not q["key"].startswith(banned + ":") for q in data["questions"]), \
            f"{where}: {banned} asked: {[q['key'] for q in data['questions']]}"
    if "pronoun" in expect and pending:
        words = pending["text"].lower().replace("?", " ").split()
        assert "the patient" not in pending["text"].lower() and ({"she", "her"} & set(words)), f"{where}: {pending}"
    # never asked: administrative questions; asked only about relevant (topical) trials
    topical = {m["nct_id"] for m in data["matches"] if m["relevant_conditions"]}
    for q in data["questions"]:
        assert q["key"] != "consent", where
        assert set(q["trials"]) <= topical, f"{where}: {q['key']} comes from a trial not about the patient's disease"


def check_trials(data: dict, expect: dict, where: str) -> None:
    matches = {m["nct_id"]: m for m in data["matches"]}
    for cid, verdict in expect.get("verdicts", {}).items():
        nct = cid.split(":")[0]
        assert nct in matches, f"{where}: {nct} not shown"
        got = {c["id"]: c["verdict"] for c in matches[nct]["criteria"]}.get(cid)
        assert got == verdict, f"{where}: {cid} is {got}, expected {verdict}"
    for nct, label in expect.get("labels", {}).items():
        assert nct in matches and matches[nct]["label"] == label, f"{where}: {nct} {matches.get(nct, {}).get('label')}"
    for nct, label in expect.get("labels_not", {}).items():
        assert nct not in matches or matches[nct]["label"] != label, f"{where}: {nct} still {label}"


def test_the_scripts_cover_enough():
    assert len(CONVERSATIONS) >= 15 and len({c["id"] for c in CONVERSATIONS}) == len(CONVERSATIONS)
    assert all(len(c["turns"]) >= 2 for c in CONVERSATIONS)
    for c in CONVERSATIONS:
        for t in c["turns"]:
            assert set(t["expect"]) <= EXPECT_KEYS, (c["id"], set(t["expect"]) - EXPECT_KEYS)


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=[c["id"] for c in CONVERSATIONS])
def test_conversation(chat_client, conversation):
    created = chat_client.post("/api/v1/sessions")
    assert created.status_code == 201
    sid = created.get_json()["id"]
    for i, turn in enumerate(conversation["turns"]):
        resp = chat_client.post(f"/api/v1/sessions/{sid}/messages", json={"text": turn["say"]})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        data = resp.get_json()
        where = f"{conversation['id']} turn {i} ({turn['say']!r})"
        check_profile(data["profile"], turn["expect"], where)
        check_question(data, turn["expect"], where)
        check_trials(data, turn["expect"], where)
    stored = chat_client.get(f"/api/v1/sessions/{sid}").get_json()["messages"]
    users = [m for m in stored if m["role"] == "user"]
    assert [m["text"] for m in users] == [t["say"] for t in conversation["turns"]]
    assert all(m["answered"] is None or {"key", "text"} <= set(m["answered"]) for m in users)
