"""Referral scoping: a coordinator key sees and changes only its team's referrals; admins see all."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.conftest import make_test_app

BOSTON_TRIAL = "NCT06897930"
LYON_TRIAL = "NCT06557265"
TEAMS = {"boston": [BOSTON_TRIAL], "lyon": [LYON_TRIAL.lower()]}  # ids are matched case-insensitively
LUPUS = "45-year-old woman with systemic lupus erythematosus and lupus nephritis class IV, failed mycophenolate."


def error_code(resp) -> str:
    body = resp.get_json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    return body["error"]["code"]


@pytest.fixture
def teams_app(tmp_path, nlp, studies_file, database_url):
    app = make_test_app(tmp_path, nlp, studies_file, database_url, REFERRAL_TEAMS=TEAMS, DEFAULT_TEAM="triage")
    yield app
    app.extensions["trialmatch"].engine.dispose()


@pytest.fixture
def teams_client(teams_app):
    return teams_app.test_client()


def _refer(client, nct_id: str, contact: str, headers: dict | None = None) -> dict:
    resp = client.post("/api/v1/referrals", json={"nct_id": nct_id, "text": LUPUS, "contact_ref": contact},
                       headers=headers or {})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()


def test_each_coordinator_sees_and_changes_only_its_teams_referrals(teams_app, teams_client):
    client, keys = teams_client, teams_app.extensions["trialmatch"].keys
    boston = {"X-API-Key": keys.create("alice", "coordinator", team="boston")}
    lyon = {"Authorization": "Bearer " + keys.create("bruno", "coordinator", team="lyon")}
    admin = {"X-API-Key": keys.create("root", "admin")}
    b1 = _refer(client, BOSTON_TRIAL, "b-1")
    b2 = _refer(client, BOSTON_TRIAL, "b-2")
    ly = _refer(client, LYON_TRIAL, "l-1")
    assert (b1["team"], b2["team"], ly["team"]) == ("boston", "boston", "lyon")  # routed by REFERRAL_TEAMS

    listing = client.get("/api/v1/referrals", headers=boston).get_json()
    assert listing["total"] == 2 and {r["id"] for r in listing["referrals"]} == {b1["id"], b2["id"]}
    listing = client.get("/api/v1/referrals", headers=lyon).get_json()
    assert listing["total"] == 1 and [r["id"] for r in listing["referrals"]] == [ly["id"]]
    # filters narrow within the team, never widen it
    other = client.get(f"/api/v1/referrals?nct_id={LYON_TRIAL}&status=new", headers=boston).get_json()
    assert other["total"] == 0 and other["referrals"] == []

    # another team's referral answers exactly like one that does not exist
    missing = client.get("/api/v1/referrals/999999", headers=boston)
    hidden = client.get(f"/api/v1/referrals/{ly['id']}", headers=boston)
    assert hidden.status_code == missing.status_code == 404
    assert error_code(hidden) == error_code(missing) == "referral_not_found"
    assert LUPUS not in hidden.get_data(as_text=True)
    assert hidden.get_json()["error"]["message"] == f"no referral {ly['id']}"
    patched = client.patch(f"/api/v1/referrals/{ly['id']}", headers=boston, json={"status": "enrolled", "note": "x"})
    assert patched.status_code == 404 and error_code(patched) == "referral_not_found"
    assert error_code(client.get(f"/api/v1/referrals/{b1['id']}", headers=lyon)) == "referral_not_found"
    assert error_code(client.patch(f"/api/v1/referrals/{b2['id']}", headers=lyon,
                                   json={"status": "contacted"})) == "referral_not_found"
    assert client.delete(f"/api/v1/referrals/{b1['id']}", headers=lyon).status_code == 403  # admins only

    # the own team's referrals open (with patient text) and change
    opened = client.get(f"/api/v1/referrals/{ly['id']}", headers=lyon).get_json()
    assert opened["patient_text"] == LUPUS and opened["team"] == "lyon"
    changed = client.patch(f"/api/v1/referrals/{b1['id']}", headers=boston, json={"status": "in_review"})
    assert changed.status_code == 200 and changed.get_json()["status"] == "in_review"

    # the refused PATCH changed nothing and left no audit entry
    audit = client.get(f"/api/v1/referrals/{ly['id']}", headers=admin).get_json()
    assert audit["status"] == "new" and [a["action"] for a in audit["audit"]] == ["created"]

    # admins see every team
    everything = client.get("/api/v1/referrals", headers=admin).get_json()
    assert everything["total"] == 3
    assert {r["id"]: r["team"] for r in everything["referrals"]} == {
        b1["id"]: "boston", b2["id"]: "boston", ly["id"]: "lyon"}
    assert client.patch(f"/api/v1/referrals/{b2['id']}", headers=admin,
                        json={"status": "contacted"}).status_code == 200


def test_unmapped_trial_goes_to_the_default_team(teams_app, teams_client):
    keys = teams_app.extensions["trialmatch"].keys
    triage = {"X-API-Key": keys.create("tess", "coordinator", team="triage")}
    boston = {"X-API-Key": keys.create("alice", "coordinator", team="boston")}
    rt = teams_app.extensions["trialmatch"]
    unmapped = next(t.nct_id for t in rt.repo.list(per_page=100).items
                    if t.nct_id not in (BOSTON_TRIAL, LYON_TRIAL))
    ref = _refer(teams_client, unmapped, "u-1")
    assert ref["team"] == "triage"
    assert [r["id"] for r in teams_client.get("/api/v1/referrals", headers=triage).get_json()["referrals"]] \
        == [ref["id"]]
    assert teams_client.get("/api/v1/referrals", headers=boston).get_json()["total"] == 0


def test_a_coordinators_referral_belongs_to_the_coordinators_team(teams_app, teams_client):
    keys = teams_app.extensions["trialmatch"].keys
    lyon = {"X-API-Key": keys.create("bruno", "coordinator", team="lyon")}
    boston = {"X-API-Key": keys.create("alice", "coordinator", team="boston")}
    admin = {"X-API-Key": keys.create("root", "admin")}
    ref = _refer(teams_client, BOSTON_TRIAL, "l-2", headers=lyon)  # the mapping would say boston
    assert ref["team"] == "lyon"
    opened = teams_client.get(f"/api/v1/referrals/{ref['id']}", headers=lyon).get_json()
    assert opened["audit"][0]["actor"] == "bruno"
    assert error_code(teams_client.get(f"/api/v1/referrals/{ref['id']}", headers=boston)) == "referral_not_found"
    # an admin has no team: its referral is routed like the widget's
    assert _refer(teams_client, BOSTON_TRIAL, "a-1", headers=admin)["team"] == "boston"
    # a presented key must be valid; it does not silently fall back to the widget
    bad = teams_client.post("/api/v1/referrals", headers={"X-API-Key": "tm_nope_nope"},
                            json={"nct_id": BOSTON_TRIAL, "text": LUPUS, "contact_ref": "x"})
    assert bad.status_code == 401 and error_code(bad) == "unauthenticated"


def test_default_keys_and_referrals_share_the_default_team(app, client, coordinator_key, admin_key):
    """Without any team configuration everything is in "default": behaviour as before scoping."""
    ref = _refer(client, LYON_TRIAL, "c-1")
    assert ref["team"] == "default"
    other = app.extensions["trialmatch"].keys.create("elsewhere", "coordinator", team="elsewhere")
    assert client.get("/api/v1/referrals", headers={"X-API-Key": coordinator_key}).get_json()["total"] == 1
    assert client.get(f"/api/v1/referrals/{ref['id']}", headers={"X-API-Key": coordinator_key}).status_code == 200
    assert client.get("/api/v1/referrals", headers={"X-API-Key": other}).get_json()["total"] == 0
    assert client.get("/api/v1/referrals", headers={"X-API-Key": admin_key}).get_json()["total"] == 1


def test_team_mapping_from_the_environment_as_json():
    from assistant.settings import load_settings
    from assistant.web.api import referral_team

    settings = load_settings(environ={"TRIALMATCH_REFERRAL_TEAMS": '{"boston": ["nct06897930"]}',
                                      "TRIALMATCH_DEFAULT_TEAM": "triage"})
    assert referral_team(settings, BOSTON_TRIAL) == "boston"
    assert referral_team(settings, LYON_TRIAL) == "triage"
    defaults = load_settings(environ={})
    assert defaults["REFERRAL_TEAMS"] == {} and referral_team(defaults, BOSTON_TRIAL) == "default"


@pytest.mark.parametrize("teams", [{"a": [BOSTON_TRIAL], "b": [BOSTON_TRIAL]}, {"a": ["not-an-id"]},
                                   {"a": BOSTON_TRIAL}, {"": [BOSTON_TRIAL]}, "{not json"])
def test_a_malformed_team_mapping_stops_the_app_at_start(tmp_path, teams):
    from assistant import create_app

    with pytest.raises(ValueError):
        create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'bad.sqlite3'}",
                    "INSTANCE_PATH": str(tmp_path / "instance"), "AUTOLOAD_BUNDLED": False, "PRELOAD": False,
                    "REFERRAL_TEAMS": teams})


def test_key_teams(app):
    keys = app.extensions["trialmatch"].keys
    with pytest.raises(ValueError):
        keys.create("root", "admin", team="boston")  # admins see every team
    with pytest.raises(ValueError):
        keys.create("blank", "coordinator", team="  ")
    keys.create("alice", "coordinator", team=" boston ")
    keys.create("root", "admin")
    assert keys.entries() == [("alice", "coordinator", "boston", False), ("root", "admin", None, False)]


def test_cli_users_create_with_team(tmp_path, capsys):
    from assistant.cli import main

    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    assert main(["--database-url", url, "users", "create", "alice", "--role", "coordinator", "--team", "boston"]) == 0
    assert "team 'boston'" in capsys.readouterr().out
    assert main(["--database-url", url, "users", "create", "carl"]) == 0  # no --team: DEFAULT_TEAM
    assert main(["--database-url", url, "users", "create", "root", "--role", "admin", "--team", "boston"]) == 2
    assert main(["--database-url", url, "users", "create", "root", "--role", "admin"]) == 0
    capsys.readouterr()
    assert main(["--database-url", url, "users", "list"]) == 0
    rows = {line.split()[0]: line.split()[2] for line in capsys.readouterr().out.splitlines()}
    assert rows == {"alice": "boston", "carl": "default", "root": "(all"}


def test_referrals_from_before_scoping_stay_visible_to_the_default_team(tmp_path, nlp, studies_file, database_url):
    """A database at 0003 with a referral and a coordinator key: after 0004 both are in the "default" team."""
    from models.db import make_engine
    from models.migrate import upgrade
    from models.workflow import hash_key

    old_key = "tm_0ld0ld00_pre-scoping-secret"
    engine = make_engine(database_url)
    upgrade(engine, "0003")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO api_key (name, role, prefix, key_hash, created_at, revoked) "
                          "VALUES ('veteran', 'coordinator', '0ld0ld00', :h, CURRENT_TIMESTAMP, :f)"),
                     {"h": hash_key(old_key), "f": False})
        conn.execute(text("INSERT INTO referral (nct_id, patient_text, contact_ref, status, needs_review, "
                          "created_at, updated_at) VALUES (:n, 'old patient text', 'old-1', 'new', :f, "
                          "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"n": BOSTON_TRIAL, "f": False})
    engine.dispose()

    app = make_test_app(tmp_path, nlp, studies_file, database_url)  # upgrades to 0004 on start
    try:
        client, keys = app.test_client(), app.extensions["trialmatch"].keys
        new_default = {"X-API-Key": keys.create("newbie", "coordinator")}
        boston = {"X-API-Key": keys.create("alice", "coordinator", team="boston")}
        for headers in ({"X-API-Key": old_key}, new_default):
            listing = client.get("/api/v1/referrals", headers=headers).get_json()
            assert [(r["contact_ref"], r["team"]) for r in listing["referrals"]] == [("old-1", "default")]
            rid = listing["referrals"][0]["id"]
            assert client.get(f"/api/v1/referrals/{rid}", headers=headers).get_json()["patient_text"] == \
                "old patient text"
        assert client.get("/api/v1/referrals", headers=boston).get_json()["total"] == 0
        assert error_code(client.get(f"/api/v1/referrals/{rid}", headers=boston)) == "referral_not_found"
    finally:
        app.extensions["trialmatch"].engine.dispose()
