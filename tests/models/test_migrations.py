"""Alembic migrations: from an empty database and from the previous release's schema (0001)."""
from __future__ import annotations

from sqlalchemy import inspect, text

from models.db import make_engine
from models.migrate import current_revision, head_revision, upgrade


def test_upgrade_from_empty_creates_every_table(database_url):
    engine = make_engine(database_url)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"trial", "criterion", "location", "chat_session", "referral", "referral_event", "api_key",
            "corpus_meta", "parse_cache"} <= tables
    upgrade(engine)  # idempotent
    engine.dispose()


def test_upgrade_from_previous_release_keeps_data(database_url):
    engine = make_engine(database_url)
    upgrade(engine, "0001")
    assert "concepts" not in {c["name"] for c in inspect(engine).get_columns("trial")}
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO trial (nct_id, title, conditions, keywords, interventions, phases, eligibility_text, "
            "content_hash, raw, updated_at) VALUES ('NCT00000001', 'Old trial', '[]', '[]', '[]', '[]', '', 'x', "
            "'{}', CURRENT_TIMESTAMP)"))
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert "concepts" in {c["name"] for c in inspect(engine).get_columns("trial")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT title FROM trial WHERE nct_id = 'NCT00000001'")).scalar() == "Old trial"
    engine.dispose()


def test_cli_db_upgrade(tmp_path, capsys):
    from assistant.cli import main

    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    assert main(["--database-url", url, "db", "upgrade"]) == 0
    assert f"schema revision: {head_revision()}" in capsys.readouterr().out


def test_unversioned_database_from_before_migrations_is_adopted(database_url):
    from models.db import Base

    engine = make_engine(database_url)
    upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))  # as create_all() left it, before Alembic
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_upgrade_to_the_parse_cache_stamps_existing_parses(database_url):
    engine = make_engine(database_url)
    upgrade(engine, "0002")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO trial (nct_id, title, conditions, keywords, interventions, phases, eligibility_text, "
            "content_hash, raw, updated_at) VALUES ('NCT00000001', 'Old trial', '[]', '[]', '[]', '[]', '', 'x', "
            "'{}', CURRENT_TIMESTAMP)"))
        trial_id = conn.execute(text("SELECT id FROM trial")).scalar()
        for position, parsed in ((0, '{"logic": "all", "parsed": true, "requirements": []}'), (1, None), (2, 'null')):
            conn.execute(text("INSERT INTO criterion (trial_id, kind, position, depth, text, parsed) "
                              "VALUES (:t, 'inclusion', :p, 0, 'Age 18-70', :parsed)"),
                         {"t": trial_id, "p": position, "parsed": parsed})
        conn.execute(text("INSERT INTO corpus_meta (key, value) VALUES ('parser_version', 'fp-before')"))
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert "parse_cache" in inspect(engine).get_table_names()
    with engine.connect() as conn:
        stamps = conn.execute(text("SELECT position, parser_version FROM criterion ORDER BY position")).all()
    assert [tuple(r) for r in stamps] == [(0, "fp-before"), (1, None), (2, None)]
    engine.dispose()


def test_upgrade_to_referral_teams_puts_existing_rows_in_the_default_team(database_url):
    engine = make_engine(database_url)
    upgrade(engine, "0003")
    assert "team" not in {c["name"] for c in inspect(engine).get_columns("referral")}
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO api_key (name, role, prefix, key_hash, created_at, revoked) "
                          "VALUES ('alice', 'coordinator', 'abcd1234', 'h', CURRENT_TIMESTAMP, :f)"), {"f": False})
        conn.execute(text("INSERT INTO referral (nct_id, patient_text, contact_ref, status, needs_review, "
                          "created_at, updated_at) VALUES ('NCT00000001', 'old text', 'c-1', 'new', :f, "
                          "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"f": False})
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    insp = inspect(engine)
    for table in ("api_key", "referral"):
        team = {c["name"]: c for c in insp.get_columns(table)}["team"]
        assert team["nullable"] is False and "default" in str(team["default"])
    assert any(ix["column_names"] == ["team"] for ix in insp.get_indexes("referral"))
    with engine.begin() as conn:
        assert conn.execute(text("SELECT team FROM api_key")).scalar() == "default"
        assert conn.execute(text("SELECT patient_text, team FROM referral")).one() == ("old text", "default")
        # rows written without a team (an older worker during a rolling upgrade) get the default too
        conn.execute(text("INSERT INTO referral (nct_id, patient_text, contact_ref, status, needs_review, "
                          "created_at, updated_at) VALUES ('NCT00000002', 't', 'c-2', 'new', :f, "
                          "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"f": False})
        assert conn.execute(text("SELECT team FROM referral WHERE contact_ref = 'c-2'")).scalar() == "default"
    engine.dispose()


def test_referral_teams_downgrade(database_url):
    from alembic import command

    from models.migrate import alembic_config

    engine = make_engine(database_url)
    upgrade(engine)
    cfg = alembic_config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0003")
    assert current_revision(engine) == "0003"
    assert "team" not in {c["name"] for c in inspect(engine).get_columns("referral")}
    assert "team" not in {c["name"] for c in inspect(engine).get_columns("api_key")}
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    engine.dispose()
