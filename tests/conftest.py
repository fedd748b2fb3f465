"""Shared fixtures: settings on a temporary SQLite database, the trial repository, the real pipeline."""
from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import pytest

from assistant.settings import load_settings

PG_ADMIN_URL = os.environ.get("TRIALMATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
_pg_available: bool | None = None


def postgres_available() -> bool:
    global _pg_available
    if _pg_available is None:
        try:
            import psycopg

            with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
                _pg_available = True
        except Exception:  # noqa: BLE001 - any failure means: no server here
            _pg_available = False
    return _pg_available


@contextlib.contextmanager
def fresh_postgres_database():
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    name = f"tm_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path: Path):
    """Every database test runs on SQLite and on PostgreSQL (skipped where no server runs)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    if not postgres_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is required in CI but is not reachable")
        pytest.skip("PostgreSQL not reachable")
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> dict:
    return load_settings({"DATABASE_URL": database_url,
                          "INSTANCE_PATH": str(tmp_path / "instance"), "AUTOLOAD_BUNDLED": False},
                         environ={})


@pytest.fixture
def runtime(settings: dict, request):
    """The composition root on the test database; the session's pipeline is passed in when a test uses it."""
    from assistant.services import Services

    pipeline = request.getfixturevalue("nlp") if "nlp" in request.fixturenames else None
    return Services(settings, pipeline=pipeline)


@pytest.fixture
def repo(runtime):
    return runtime.repo


@pytest.fixture(scope="session")
def nlp():
    """The real pipeline, built once per test session."""
    from nlp.lexicon import default_lexicon
    from nlp.pipeline import build_pipeline

    return build_pipeline(lexicon=default_lexicon())


@pytest.fixture(scope="session")
def studies_file(tmp_path_factory) -> Path:
    import json

    from tests.helpers import fixture_studies

    path = tmp_path_factory.mktemp("studies") / "studies.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in fixture_studies()), encoding="utf-8")
    return path


def make_test_app(tmp_path: Path, nlp, studies_file: Path, database_url: str | None = None, **overrides):
    """An app on a fresh database with the fixture trials ingested and the shared pipeline."""
    from assistant import create_app
    from assistant.services import Services

    config = {"TESTING": True, "DATABASE_URL": database_url or f"sqlite:///{tmp_path / 'app.sqlite3'}",
              "INSTANCE_PATH": str(tmp_path / "instance"), "AUTOLOAD_BUNDLED": False, "PRELOAD": False,
              "RATE_LIMIT": "1000 per minute", **overrides}
    services = Services(load_settings(config, environ={}), pipeline=nlp)
    app = create_app(services=services)
    services.ingest([studies_file])  # stores the trials and swaps in their snapshot
    return app


@pytest.fixture
def app(tmp_path, nlp, studies_file, database_url):
    app = make_test_app(tmp_path, nlp, studies_file, database_url)
    yield app
    app.extensions["trialmatch"].engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def coordinator_key(app) -> str:
    return app.extensions["trialmatch"].keys.create("coord-test", "coordinator")


@pytest.fixture
def admin_key(app) -> str:
    return app.extensions["trialmatch"].keys.create("admin-test", "admin")
