"""Retention that is true: expired chat sessions and closed referrals past REFERRAL_RETENTION_DAYS are erased by
the scheduled purge in each worker and by ``trialmatch purge``, their text gone from the database files too."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import text as sql

from assistant.cli import main
from tests.conftest import make_test_app

NCT = "NCT06897930"


def _referral(client, marker: str) -> int:
    resp = client.post("/api/v1/referrals", json={"nct_id": NCT, "contact_ref": f"phone {marker}",
                                                  "text": f"52-year-old woman with lupus nephritis {marker}"})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["id"]


def _close(client, key: str, rid: int, status: str, note: str) -> None:
    resp = client.patch(f"/api/v1/referrals/{rid}", json={"status": status, "note": note},
                        headers={"X-API-Key": key})
    assert resp.status_code == 200, resp.get_json()


def _age(engine, rid: int, days: float) -> None:
    """Pretend the referral's last change was ``days`` ago (time passing, not a shortcut through the API)."""
    with engine.begin() as conn:
        conn.execute(sql("UPDATE referral SET updated_at = :t WHERE id = :id"),
                     {"t": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(days=days),
                      "id": rid})


def _events(engine, rid: int) -> int:
    with engine.connect() as conn:
        return conn.execute(sql("SELECT count(*) FROM referral_event WHERE referral_id = :id"), {"id": rid}).scalar()


def _sqlite_bytes(url: str) -> bytes:
    path = Path(url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def _setup(tmp_path, nlp, studies_file, database_url, **overrides):
    app = make_test_app(tmp_path, nlp, studies_file, database_url, **overrides)
    rt = app.extensions["trialmatch"]
    key = rt.keys.create("coord", "coordinator")
    client = app.test_client()
    ids = {
        "closed_old": _referral(client, "MARKER-CLOSED-OLD"),
        "not_eligible_old": _referral(client, "MARKER-NE-OLD"),
        "closed_recent": _referral(client, "MARKER-CLOSED-RECENT"),
        "open_old": _referral(client, "MARKER-OPEN-OLD"),
    }
    _close(client, key, ids["closed_old"], "enrolled", "note MARKER-NOTE-OLD")
    _close(client, key, ids["not_eligible_old"], "not_eligible", "note MARKER-NOTE-NE")
    _close(client, key, ids["closed_recent"], "enrolled", "recent")
    _close(client, key, ids["open_old"], "contacted", "still open")
    for name in ("closed_old", "not_eligible_old", "open_old"):
        _age(rt.engine, ids[name], 40)
    _age(rt.engine, ids["closed_recent"], 5)
    return app, rt, key, client, ids


def _assert_purged(rt, client, key, ids, url) -> None:
    def status(name: str) -> int:
        return client.get(f"/api/v1/referrals/{ids[name]}", headers={"X-API-Key": key}).status_code

    assert status("closed_old") == 404 and status("not_eligible_old") == 404
    assert status("closed_recent") == 200 and status("open_old") == 200
    assert _events(rt.engine, ids["closed_old"]) == 0 and _events(rt.engine, ids["not_eligible_old"]) == 0
    assert _events(rt.engine, ids["open_old"]) == 2
    if url.startswith("sqlite"):
        data = _sqlite_bytes(url)
        for marker in (b"MARKER-CLOSED-OLD", b"MARKER-NE-OLD", b"MARKER-NOTE-OLD", b"MARKER-NOTE-NE"):
            assert marker not in data, marker
        assert b"MARKER-OPEN-OLD" in data


def test_scheduled_purge_erases_closed_referrals_past_retention(tmp_path, nlp, studies_file, database_url):
    app, rt, key, client, ids = _setup(tmp_path, nlp, studies_file, database_url, REFERRAL_RETENTION_DAYS=30,
                                       PURGE_INTERVAL_SECONDS=0.001)
    client.get("/api/v1/health")  # any request runs the purge once it is due
    _assert_purged(rt, client, key, ids, database_url)
    rt.engine.dispose()


def test_retention_zero_keeps_closed_referrals(tmp_path, nlp, studies_file, database_url):
    app, rt, key, client, ids = _setup(tmp_path, nlp, studies_file, database_url, REFERRAL_RETENTION_DAYS=0,
                                       PURGE_INTERVAL_SECONDS=0.001)
    client.get("/api/v1/health")
    for rid in ids.values():
        assert client.get(f"/api/v1/referrals/{rid}", headers={"X-API-Key": key}).status_code == 200
    rt.engine.dispose()


def test_cli_purge_erases_expired_sessions_and_closed_referrals(tmp_path, nlp, studies_file, database_url,
                                                                monkeypatch, capsys):
    app, rt, key, client, ids = _setup(tmp_path, nlp, studies_file, database_url, PURGE_INTERVAL_SECONDS=0)
    sid = client.post("/api/v1/sessions").get_json()["id"]
    assert client.post(f"/api/v1/sessions/{sid}/messages", json={"text": "MARKER-SESSION lupus"}).status_code == 200
    with rt.engine.begin() as conn:  # the session's time is up
        conn.execute(sql("UPDATE chat_session SET expires_at = :t WHERE id = :id"),
                     {"t": dt.datetime(2000, 1, 1), "id": sid})
    monkeypatch.setenv("TRIALMATCH_REFERRAL_RETENTION_DAYS", "30")
    monkeypatch.setenv("TRIALMATCH_INSTANCE_PATH", str(tmp_path / "instance"))
    assert main(["--database-url", database_url, "purge"]) == 0
    out = capsys.readouterr().out
    assert "deleted 1 expired chat sessions and 2 closed referrals older than 30 days" in out
    _assert_purged(rt, client, key, ids, database_url)
    with rt.engine.connect() as conn:
        assert conn.execute(sql("SELECT count(*) FROM chat_session")).scalar() == 0
    if database_url.startswith("sqlite"):
        assert b"MARKER-SESSION" not in _sqlite_bytes(database_url)
    rt.engine.dispose()


def test_cli_purge_with_retention_zero_keeps_referrals(tmp_path, nlp, studies_file, database_url, monkeypatch,
                                                       capsys):
    app, rt, key, client, ids = _setup(tmp_path, nlp, studies_file, database_url, PURGE_INTERVAL_SECONDS=0)
    monkeypatch.setenv("TRIALMATCH_REFERRAL_RETENTION_DAYS", "0")
    assert main(["--database-url", database_url, "purge"]) == 0
    assert "0 closed referrals (kept: retention 0)" in capsys.readouterr().out
    for rid in ids.values():
        assert client.get(f"/api/v1/referrals/{rid}", headers={"X-API-Key": key}).status_code == 200
    rt.engine.dispose()
