"""Schema migrations with Alembic (scripts in models/migrations)."""
from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def _adopt_unversioned(connection, cfg: Config) -> None:  # type: ignore[no-untyped-def]
    """A database made before migrations existed (tables, no alembic_version): stamp what it has."""
    insp = inspect(connection)
    if not insp.has_table("trial") or MigrationContext.configure(connection).get_current_revision() is not None:
        return
    columns = {c["name"] for c in insp.get_columns("trial")}
    stamp = "0002" if "concepts" in columns else "0001"
    logger.info("adopting an unversioned database at revision %s", stamp)
    command.stamp(cfg, stamp)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent; an empty database gets every table)."""
    cfg = alembic_config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        _adopt_unversioned(connection, cfg)
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head
