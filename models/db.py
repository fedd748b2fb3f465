"""Engine and sessions. ``Base`` is the declarative base of every ORM class."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool

logger = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # Let SQLAlchemy issue BEGIN itself (below): pysqlite would not start a transaction for SELECTs,
    # so a multi-statement read (trial + criteria + locations) would not be one snapshot.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA secure_delete=ON")  # deleted patient text is overwritten, not left in free pages
    cursor.close()


def _sqlite_begin(connection) -> None:  # type: ignore[no-untyped-def]
    # A write transaction takes the write lock at BEGIN: a deferred BEGIN that reads and then writes fails at
    # once with SQLITE_BUSY_SNAPSHOT when another writer committed in between (busy_timeout cannot help).
    immediate = connection.get_execution_options().get(WRITE_OPTION)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


WRITE_OPTION = "trialmatch_write"


def make_engine(url: str) -> Engine:
    """Create an engine for any SQLAlchemy URL; SQLite gets WAL and foreign keys."""
    if url.startswith("sqlite"):
        if url in ("sqlite://", "sqlite:///:memory:"):
            engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
        else:
            path = url.split("sqlite:///", 1)[-1]
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, pool_pre_ping=True)


class SessionFactory(sessionmaker):
    """``factory()`` opens a read session; ``factory.begin()`` a write transaction (BEGIN IMMEDIATE on SQLite)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(bind=engine, expire_on_commit=False)
        self.engine = engine
        self.write_engine = engine.execution_options(**{WRITE_OPTION: True})

    @contextlib.contextmanager
    def begin(self) -> Iterator[Session]:  # type: ignore[override]
        with self(bind=self.write_engine) as session:
            with session.begin():
                yield session


def make_session_factory(engine: Engine) -> SessionFactory:
    return SessionFactory(engine)


def checkpoint(engine: Engine) -> None:
    """After deleting patient data on SQLite: copy the WAL into the database file and truncate it, so the
    deleted text does not linger in the -wal file (no-op elsewhere)."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def create_schema(engine: Engine) -> None:
    """Bring the schema to the latest migration (an empty database gets every table)."""
    from models.migrate import upgrade

    upgrade(engine)
