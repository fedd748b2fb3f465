"""The HTTP API through Flask's test client: every route and every error code."""
from __future__ import annotations

import datetime as dt
import logging

import pytest

from tests.conftest import make_test_app

LUPUS = ("45-year-old woman with systemic lupus erythematosus and lupus nephritis class IV on kidney biopsy, "
         "failed mycophenolate and rituximab. SLEDAI-2K 10. UPCR 2.1 g/g.")
SENTINEL = "Zebulon Quixwater"


def error_code(resp) -> str:
    body = resp.get_json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    return body["error"]["code"]


def test_health_reports_database_and_index(client, app):
    resp = client.get("/api/v1/health")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["database"] == "ok" and body["trials"] > 40 and body["index"] == "ready"


def test_first_start_answers_at_once_with_loading_progress(tmp_path, nlp, studies_file):
    """The app is up before the trials are: /health says loading with done/total, matching says 503 loading,
    and both turn ready once the background load finishes."""
    import gzip
    import threading
    import time

    from assistant import create_app
    from assistant.services import Services
    from assistant.settings import load_settings

    trials = tmp_path / "data" / "trials"
    trials.mkdir(parents=True)
    with gzip.open(trials / "studies.jsonl.gz", "wb") as fh:
        fh.write(studies_file.read_bytes())
    total = sum(1 for line in studies_file.read_text(encoding="utf-8").splitlines() if line.strip())
    gate = threading.Event()

    class GatedServices(Services):  # parsing waits until the test has looked at the loading state
        def parse_criteria(self, texts):  # type: ignore[no-untyped-def]
            gate.wait(60)
            return super().parse_criteria(texts)

    services = GatedServices(load_settings({
        "TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'first.sqlite3'}", "DATA_DIR": str(tmp_path / "data"),
        "INSTANCE_PATH": str(tmp_path / "instance"), "AUTOLOAD_BUNDLED": True, "PRELOAD": True,
        "SNAPSHOT_POLL_SECONDS": 0.0, "RATE_LIMIT": "1000 per minute"}, environ={}), pipeline=nlp)
    client = create_app(services=services).test_client()
    try:
        deadline = time.monotonic() + 30
        body = client.get("/api/v1/health").get_json()
        while body["progress"]["total"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
            body = client.get("/api/v1/health").get_json()
        resp = client.get("/api/v1/health")
        assert resp.status_code == 503 and resp.get_json()["status"] == "loading"
        assert resp.get_json()["progress"]["total"] == total and resp.get_json()["progress"]["done"] < total
        busy = client.post("/api/v1/match", json={"text": LUPUS})
        assert busy.status_code == 503 and error_code(busy) == "loading"
        assert busy.get_json()["error"]["progress"]["total"] == total and busy.headers["Retry-After"]
        gate.set()
        while client.get("/api/v1/health").status_code != 200 and time.monotonic() < deadline + 60:
            time.sleep(0.2)
        health = client.get("/api/v1/health").get_json()
        assert health["status"] == "ok" and health["trials"] == total and health["index"] == "ready"
        assert client.post("/api/v1/match", json={"text": LUPUS}).status_code == 200
    finally:
        gate.set()
        services.stop()
        services.engine.dispose()


def test_health_is_503_when_no_snapshot_is_loaded(tmp_path, nlp):
    from assistant import create_app
    from assistant.services import Services
    from assistant.settings import load_settings

    services = Services(load_settings({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'e.sqlite3'}",
                                       "INSTANCE_PATH": str(tmp_path / "i"), "AUTOLOAD_BUNDLED": False,
                                       "PRELOAD": False}, environ={}), pipeline=nlp)
    resp = create_app(services=services).test_client().get("/api/v1/health")
    assert resp.status_code == 503 and resp.get_json()["index"] == "not_loaded"


def test_match_returns_seed_trial_with_reasons(client):
    resp = client.post("/api/v1/match", json={"text": LUPUS, "top_k": 5})
    assert resp.status_code == 200
    body = resp.get_json()
    assert set(body) >= {"profile", "matches", "questions"}
    ids = [m["nct_id"] for m in body["matches"]]
    assert "NCT06897930" in ids
    m = body["matches"][ids.index("NCT06897930")]
    assert {"nct_id", "title", "score", "label", "criteria", "questions"} <= set(m)
    for c in m["criteria"]:
        assert {"kind", "text", "verdict", "reason", "evidence"} <= set(c)
        assert c["verdict"] in ("met", "not_met", "unknown", "not_applicable")
        for ev in c["evidence"]:
            assert LUPUS[ev["start"]:ev["end"]] == ev["text"]


def test_match_filters(client):
    body = client.post("/api/v1/match", json={"text": LUPUS, "filters": {"status": "ANY", "phase": ["PHASE1"]}}
                       ).get_json()
    assert body["matches"] and all("PHASE1" in m["phases"] for m in body["matches"])
    near = client.post("/api/v1/match", json={"text": LUPUS, "filters": {
        "status": "ANY", "near": {"lat": 0.0, "lon": 0.0, "radius_km": 1}}}).get_json()
    assert near["matches"] == []


@pytest.mark.parametrize("kwargs,status,code", [
    ({"data": "{not json", "content_type": "application/json"}, 400, "malformed_json"),
    ({"data": "text=hi", "content_type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
    ({"json": ["a list"]}, 400, "invalid_request"),
    ({"json": {"text": 42}}, 400, "invalid_type"),
    ({"json": {}}, 400, "missing_text"),
    ({"json": {"text": "   "}}, 400, "empty_text"),
    ({"json": {"text": "x" * 20001}}, 413, "text_too_long"),
    ({"json": {"text": "lupus", "top_k": 0}}, 400, "invalid_type"),
    ({"json": {"text": "lupus", "top_k": "5"}}, 400, "invalid_type"),
    ({"json": {"text": "lupus", "extra": 1}}, 400, "invalid_request"),
    ({"json": {"text": "lupus", "filters": {"status": "OPEN"}}}, 400, "invalid_filter"),
    ({"json": {"text": "lupus", "filters": {"near": {"lat": 100, "lon": 0}}}}, 400, "invalid_filter"),
    ({"json": {"text": "lupus", "filters": {"colour": "red"}}}, 400, "invalid_filter"),
    ({"json": {"text": "lupus", "filters": "RECRUITING"}}, 400, "invalid_filter"),
])
def test_match_errors_have_stable_codes(client, kwargs, status, code):
    resp = client.post("/api/v1/match", **kwargs)
    assert resp.status_code == status
    assert error_code(resp) == code


def test_trials_list_and_detail(client):
    body = client.get("/api/v1/trials?condition=lupus&per_page=5").get_json()
    assert body["total"] >= 3 and len(body["trials"]) <= 5
    detail = client.get("/api/v1/trials/NCT06557265").get_json()
    assert detail["nct_id"] == "NCT06557265"
    kinds = {c["kind"] for c in detail["criteria"]}
    assert kinds == {"inclusion", "exclusion"}
    assert any(c["cohort"] for c in detail["criteria"])


@pytest.mark.parametrize("url,status,code", [
    ("/api/v1/trials/NCT00000000", 404, "trial_not_found"),
    ("/api/v1/trials/banana", 400, "invalid_nct_id"),
    ("/api/v1/trials?page=zero", 400, "invalid_type"),
    ("/api/v1/trials?status=OPEN", 400, "invalid_filter"),
    ("/api/v1/nothing-here", 404, "not_found"),
])
def test_trial_errors(client, url, status, code):
    resp = client.get(url)
    assert resp.status_code == status and error_code(resp) == code


def test_method_not_allowed_is_json(client):
    resp = client.put("/api/v1/match", json={})
    assert resp.status_code == 405 and error_code(resp) == "method_not_allowed"


def test_chat_session_flow_and_delete(client, app):
    sid = client.post("/api/v1/sessions").get_json()["id"]
    assert len(sid) >= 40
    first = client.post(f"/api/v1/sessions/{sid}/messages", json={"text": LUPUS}).get_json()
    assert first["reply"] and first["matches"]
    assert first["next_question"] is None or first["next_question"]["text"].endswith("?")
    second = client.post(f"/api/v1/sessions/{sid}/messages", json={"text": "She has never had CAR-T."}).get_json()
    assert second["profile"]["therapies"]
    state = client.get(f"/api/v1/sessions/{sid}").get_json()
    assert [m["role"] for m in state["messages"]] == ["user", "assistant", "user", "assistant"]
    assert client.delete(f"/api/v1/sessions/{sid}").status_code == 204
    gone = client.get(f"/api/v1/sessions/{sid}")
    assert gone.status_code == 404 and error_code(gone) == "session_not_found"
    from models.session import ChatSession

    with app.extensions["trialmatch"].repo.session_factory() as s:
        assert s.get(ChatSession, sid) is None  # deleted, not hidden


def test_unknown_and_expired_sessions(client, app):
    assert error_code(client.post("/api/v1/sessions/nope/messages", json={"text": "hi"})) == "session_not_found"
    rt = app.extensions["trialmatch"]
    state = rt.sessions.create(dt.timedelta(minutes=-1))
    resp = client.post(f"/api/v1/sessions/{state.id}/messages", json={"text": "lupus"})
    assert resp.status_code == 404 and error_code(resp) == "session_not_found"


def test_referral_workflow_with_audit_and_auth(client, coordinator_key, admin_key):
    created = client.post("/api/v1/referrals", json={"nct_id": "NCT06897930", "text": LUPUS,
                                                     "contact_ref": "clinic-42"})
    assert created.status_code == 201
    rid = created.get_json()["id"]
    assert client.get("/api/v1/referrals").status_code == 401
    assert error_code(client.get("/api/v1/referrals", headers={"X-API-Key": "tm_bad_key"})) == "unauthenticated"
    auth = {"Authorization": f"Bearer {coordinator_key}"}
    listing = client.get("/api/v1/referrals?nct_id=NCT06897930&status=new", headers=auth).get_json()
    assert [r["id"] for r in listing["referrals"]] == [rid]
    opened = client.get(f"/api/v1/referrals/{rid}", headers=auth).get_json()
    assert opened["evaluation"]["nct_id"] == "NCT06897930" and opened["evaluation"]["criteria"]
    changed = client.patch(f"/api/v1/referrals/{rid}", headers=auth, json={"status": "in_review", "note": "call"})
    assert changed.status_code == 200
    audit = changed.get_json()["audit"]
    assert [(a["action"], a["to_status"], a["actor"]) for a in audit] == [
        ("created", "new", "widget"), ("status", "in_review", "coord-test")]
    assert error_code(client.patch(f"/api/v1/referrals/{rid}", headers=auth, json={"status": "lost"})) == \
        "invalid_status"
    forbidden = client.delete(f"/api/v1/referrals/{rid}", headers=auth)
    assert forbidden.status_code == 403 and error_code(forbidden) == "forbidden"
    assert client.delete(f"/api/v1/referrals/{rid}", headers={"X-API-Key": admin_key}).status_code == 204
    assert error_code(client.get(f"/api/v1/referrals/{rid}", headers=auth)) == "referral_not_found"


def test_referral_errors(client):
    assert error_code(client.post("/api/v1/referrals", json={"nct_id": "NCT00000000", "text": "x",
                                                             "contact_ref": "c"})) == "trial_not_found"
    assert error_code(client.post("/api/v1/referrals", json={"nct_id": "NCT06897930", "contact_ref": "c"})) == \
        "missing_text"


def test_rate_limit_returns_429_json(tmp_path, nlp, studies_file):
    app = make_test_app(tmp_path, nlp, studies_file, RATE_LIMIT="2 per minute")
    client = app.test_client()
    codes = [client.get("/api/v1/trials/NCT06897930").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert error_code(client.get("/api/v1/trials/NCT06897930")) == "too_many_requests"


def test_cors_only_for_configured_origins(client):
    ok = client.get("/api/v1/trials/NCT06897930", headers={"Origin": "http://localhost:5000"})
    assert ok.headers["Access-Control-Allow-Origin"] == "http://localhost:5000"
    other = client.get("/api/v1/trials/NCT06897930", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    pre = client.options("/api/v1/match", headers={"Origin": "http://localhost:5000",
                                                   "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == "http://localhost:5000"


def test_security_headers(client):
    resp = client.get("/api/v1/trials/NCT06897930")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Frame-Options"] == "DENY"
    page = client.get("/")
    assert page.status_code == 200 and b"<form" in page.data
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_unexpected_error_is_500_json_with_request_id_and_no_text_in_log(client, app, caplog, monkeypatch):
    def boom(text):
        raise RuntimeError(f"failed on {text}")

    monkeypatch.setattr(app.extensions["trialmatch"], "extract", boom)
    with caplog.at_level(logging.DEBUG):
        resp = client.post("/api/v1/match", json={"text": f"{SENTINEL} has lupus"})
    assert resp.status_code == 500
    body = resp.get_json()
    assert body["error"]["code"] == "internal_error" and body["error"]["request_id"]
    assert body["error"]["request_id"] in caplog.text
    assert SENTINEL not in caplog.text and "Traceback" not in resp.get_data(as_text=True)


def test_patient_text_never_logged(client, caplog):
    with caplog.at_level(logging.DEBUG):
        client.post("/api/v1/match", json={"text": f"{SENTINEL}, 52-year-old woman with SLE"})
        sid = client.post("/api/v1/sessions").get_json()["id"]
        client.post(f"/api/v1/sessions/{sid}/messages", json={"text": f"{SENTINEL} has lupus nephritis"})
        client.post("/api/v1/match", json={"text": SENTINEL * 2000})
    assert caplog.records  # the app does log (ids, counts, timings)
    assert SENTINEL not in caplog.text


def test_openapi_matches_the_real_routes(app, client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    real = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/api/v1", "/getClinicalTrial")):
            continue
        path = rule.rule
        for arg in rule.arguments:
            path = path.replace(f"<int:{arg}>", f"{{{arg}}}").replace(f"<{arg}>", f"{{{arg}}}")
        real |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == real


def test_every_coordinator_route_requires_auth(app, client):
    """Enumerate the URL map: referral reads/updates must answer 401 without a key."""
    from assistant.web.api import COORDINATOR_ENDPOINTS

    protected = [r for r in app.url_map.iter_rules() if r.endpoint in COORDINATOR_ENDPOINTS]
    assert len(protected) >= 3
    for rule in protected:
        url = rule.rule.replace("<int:referral_id>", "1")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            resp = client.open(url, method=method, json={"status": "new"})
            assert resp.status_code == 401, (url, method)


def test_unrelated_patient_gets_a_notice_not_lupus_trials(client):
    body = client.post("/api/v1/match", json={
        "text": "63-year-old man with gout flares in both knees, on allopurinol."}).get_json()
    seeds = [m for m in body["matches"] if m["nct_id"] in ("NCT06897930", "NCT06557265")]
    assert not any(m["label"] != "ineligible" for m in seeds)
    assert body["notice"], body["matches"][:2]
    for m in body["matches"]:
        assert m["relevant_conditions"] == []


def test_related_trials_name_the_patient_condition_they_study(client):
    body = client.post("/api/v1/match", json={"text": LUPUS, "top_k": 5}).get_json()
    assert body["notice"] is None
    first = body["matches"][0]
    assert first["relevant_conditions"], first["nct_id"]


def test_a_referral_is_evaluated_against_its_trial_even_when_unrelated(client, coordinator_key):
    created = client.post("/api/v1/referrals", json={
        "nct_id": "NCT06897930", "text": "63-year-old man with gout on allopurinol.", "contact_ref": "desk-3"})
    assert created.status_code == 201
    body = client.get(f"/api/v1/referrals/{created.get_json()['id']}",
                      headers={"Authorization": f"Bearer {coordinator_key}"}).get_json()
    assert body["evaluation"] is not None and body["evaluation"]["nct_id"] == "NCT06897930"
    assert body["evaluation"]["label"] != "eligible"


DEEP = "[" * 1000 + "]" * 1000


@pytest.mark.parametrize("method, path", [("post", "/api/v1/match"), ("post", "/api/v1/sessions"),
                                          ("post", "/api/v1/referrals")])
def test_deeply_nested_json_is_a_clear_400(client, method, path):
    body = '{"text": ' + DEEP + "}"
    resp = getattr(client, method)(path, data=body, content_type="application/json")
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "nesting_too_deep"


def test_deeply_nested_json_in_a_chat_message_and_a_referral_update(client, coordinator_key):
    sid = client.post("/api/v1/sessions").get_json()["id"]
    resp = client.post(f"/api/v1/sessions/{sid}/messages", data='{"text": ' + DEEP + "}",
                       content_type="application/json")
    assert resp.get_json()["error"]["code"] == "nesting_too_deep"
    resp = client.patch("/api/v1/referrals/1", data='{"note": ' + DEEP + "}", content_type="application/json",
                        headers={"Authorization": f"Bearer {coordinator_key}"})
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "nesting_too_deep"


@pytest.mark.parametrize("body", [
    '{"nct_id": "NCT06897930", "text": "lupus", "contact_ref": "desk \\ud800"}',
    '{"nct_id": "NCT06897930", "text": "lupus\\u0000nephritis", "contact_ref": "desk-1"}',
])
def test_unstorable_characters_are_rejected_before_the_database(client, body):
    resp = client.post("/api/v1/referrals", data=body, content_type="application/json")
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "invalid_characters"


@pytest.mark.parametrize("query", ["q=lu%00pus", "condition=%00"])
def test_nul_in_a_query_parameter_is_a_clear_400(client, query):
    resp = client.get(f"/api/v1/trials?{query}")
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "invalid_characters"


def test_expired_sessions_are_deleted_by_the_worker(app, client):
    import datetime as dt

    from sqlalchemy import func, select

    from models.session import ChatSession

    rt = app.extensions["trialmatch"]
    rt.sessions.create(dt.timedelta(seconds=-1))
    live = rt.sessions.create(dt.timedelta(minutes=5))
    client.get("/api/v1/health")
    with rt.repo.session_factory() as s:
        ids = s.scalars(select(ChatSession.id)).all()
        assert ids == [live.id]
        assert s.scalar(select(func.count()).select_from(ChatSession)) == 1


def test_rate_limits_fail_closed_when_their_store_is_down(tmp_path, nlp, studies_file):
    from tests.conftest import make_test_app

    app = make_test_app(tmp_path, nlp, studies_file, RATE_LIMIT_STORAGE_URL="redis://127.0.0.1:1")
    client = app.test_client()
    resp = client.post("/api/v1/match", json={"text": LUPUS})
    assert resp.status_code == 503 and resp.get_json()["error"]["code"] == "rate_limit_unavailable"
    health = client.get("/api/v1/health")
    assert health.status_code == 503 and health.get_json()["rate_limit"] == "error"
    assert client.get("/api/v1/referrals").status_code == 503  # coordinator routes are limited too
    app.extensions["trialmatch"].engine.dispose()


def test_client_address_comes_from_the_trusted_proxy_only(tmp_path, nlp, studies_file):
    from tests.conftest import make_test_app

    app = make_test_app(tmp_path, nlp, studies_file, PROXY_HOPS=1, RATE_LIMIT="2 per minute")
    client = app.test_client()
    codes = [client.post("/api/v1/sessions", headers={"X-Forwarded-For": f"10.0.0.{i % 2}"}).status_code
             for i in range(4)]
    assert codes == [201, 201, 201, 201]  # two clients behind the proxy, two requests each
    assert client.post("/api/v1/sessions", headers={"X-Forwarded-For": "10.0.0.1"}).status_code == 429
    app.extensions["trialmatch"].engine.dispose()


def test_over_long_url_and_header_get_json_errors(client):
    resp = client.get("/api/v1/trials?q=" + "a" * 5000)
    assert resp.status_code == 414 and resp.get_json()["error"]["code"] == "uri_too_long"
    resp = client.get("/api/v1/health", headers={"X-Long": "b" * 9000})
    assert resp.status_code == 431 and resp.get_json()["error"]["code"] == "header_too_large"


def test_phase_written_as_words_is_understood(client):
    body = client.post("/api/v1/match", json={"text": LUPUS, "filters": {"status": "ANY", "phase": "phase 1"}}
                       ).get_json()
    assert "error" not in body and all("PHASE1" in m["phases"] for m in body["matches"])
