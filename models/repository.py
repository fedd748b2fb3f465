"""Every database query. Returns domain values, never ORM rows."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, NamedTuple

from sqlalchemy import Text, cast, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker, undefer

from models import trial as orm
from models.domain import (
    CriterionKind,
    CriterionText,
    Intervention,
    Location,
    TrialRecord,
    parsed_from_dict,
    parsed_to_dict,
)

logger = logging.getLogger(__name__)

CORPUS_VERSION_KEY = "corpus_version"
PARSER_VERSION_KEY = "parser_version"
PARSE_CACHE_CHUNK = 2000  # keys per IN (...) / rows per INSERT statement (SQLite's variable limit)


class TrialNotFound(LookupError):
    pass


@dataclass
class UpsertCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    changed_hashes: dict[str, str] = field(default_factory=dict)  # updated trial -> its new content hash

    def __iadd__(self, other: "UpsertCounts") -> "UpsertCounts":
        self.added += other.added
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.changed_hashes.update(other.changed_hashes)
        return self


class Place(NamedTuple):
    """A town with trial sites: its name and the mean coordinates of its sites (an offline place lookup)."""

    city: str
    state: str | None
    country: str | None
    lat: float
    lon: float
    sites: int


class TrialPage(NamedTuple):
    items: list[TrialRecord]
    total: int


def content_hash(raw: dict[str, Any]) -> str:
    canonical = json.dumps(raw, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _criterion_values(trial_id: int, criterion: CriterionText, parser_version: str | None = None,
                      dicts: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    parsed = None
    if criterion.parsed is not None:
        if dicts is None:
            parsed = parsed_to_dict(criterion.parsed)
        else:  # one serialization per distinct parse (repeated texts share their ParsedCriterion)
            parsed = dicts.get(id(criterion.parsed))
            if parsed is None:
                parsed = dicts[id(criterion.parsed)] = parsed_to_dict(criterion.parsed)
    return {"trial_id": trial_id, "kind": criterion.kind.value, "position": criterion.position,
            "parent": criterion.parent, "depth": criterion.depth, "cohort": criterion.cohort,
            "heading": criterion.heading, "text": criterion.text, "parsed": parsed,
            "parser_version": parser_version if parsed is not None else None}


def text_key(text: str) -> str:
    """Parse-cache key of a criterion text: its sha256."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _insert_ignoring_duplicates(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """INSERT rows, skipping those whose primary key already exists (a concurrent writer got there first)."""
    if not rows:
        return
    # one key order for every writer: two concurrent batches sharing texts cannot deadlock (PostgreSQL)
    rows = sorted(rows, key=lambda r: (r["text_hash"], r["fingerprint"]))
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        for start in range(0, len(rows), PARSE_CACHE_CHUNK):
            session.execute(dialect_insert(table).on_conflict_do_nothing(), rows[start:start + PARSE_CACHE_CHUNK])
        return
    keys = {(r["text_hash"], r["fingerprint"]) for r in rows}
    existing = set(session.execute(select(table.c.text_hash, table.c.fingerprint).where(
        table.c.text_hash.in_([k for k, _ in keys]))).tuples())
    fresh = [r for r in rows if (r["text_hash"], r["fingerprint"]) not in existing]
    if fresh:
        session.execute(insert(table), fresh)


def _location_values(trial_id: int, loc: Location) -> dict[str, Any]:
    return {"trial_id": trial_id, "facility": loc.facility, "city": loc.city, "state": loc.state,
            "country": loc.country, "zip": loc.zip, "status": loc.status, "lat": loc.lat, "lon": loc.lon}


def _trial_values(record: TrialRecord, digest: str) -> dict[str, Any]:
    return {
        "nct_id": record.nct_id, "title": record.title, "official_title": record.official_title,
        "brief_summary": record.brief_summary, "detailed_description": record.detailed_description,
        "conditions": list(record.conditions), "keywords": list(record.keywords),
        "interventions": [{"name": i.name, "type": i.type, "other_names": list(i.other_names)}
                          for i in record.interventions],
        "phases": list(record.phases), "study_type": record.study_type, "overall_status": record.overall_status,
        "minimum_age_years": record.minimum_age_years, "maximum_age_years": record.maximum_age_years,
        "minimum_age_raw": record.minimum_age_raw, "maximum_age_raw": record.maximum_age_raw, "sex": record.sex,
        "healthy_volunteers": record.healthy_volunteers, "enrollment": record.enrollment,
        "last_update": record.last_update, "eligibility_text": record.eligibility_text, "content_hash": digest,
        "concepts": list(record.concepts),
        "raw": record.raw,
    }


def _to_record(row: orm.Trial, with_raw: bool = False) -> TrialRecord:
    criteria = tuple(
        CriterionText(
            kind=CriterionKind(c.kind), position=c.position, text=c.text, parent=c.parent,
            cohort=c.cohort, heading=c.heading, depth=c.depth,
            parsed=parsed_from_dict(c.text, c.parsed) if c.parsed else None,
        )
        for c in row.criteria
    )
    return TrialRecord(
        nct_id=row.nct_id, title=row.title, official_title=row.official_title,
        brief_summary=row.brief_summary, detailed_description=row.detailed_description,
        conditions=tuple(row.conditions or ()), keywords=tuple(row.keywords or ()),
        interventions=tuple(
            Intervention(name=i["name"], type=i.get("type"), other_names=tuple(i.get("other_names") or ()))
            for i in row.interventions or ()
        ),
        phases=tuple(row.phases or ()), study_type=row.study_type, overall_status=row.overall_status,
        minimum_age_years=row.minimum_age_years, maximum_age_years=row.maximum_age_years,
        minimum_age_raw=row.minimum_age_raw, maximum_age_raw=row.maximum_age_raw, sex=row.sex,
        healthy_volunteers=row.healthy_volunteers, enrollment=row.enrollment, last_update=row.last_update,
        locations=tuple(
            Location(facility=loc.facility, city=loc.city, state=loc.state, country=loc.country, zip=loc.zip,
                     status=loc.status, lat=loc.lat, lon=loc.lon)
            for loc in row.locations
        ),
        eligibility_text=row.eligibility_text, criteria=criteria, concepts=tuple(row.concepts or ()),
        raw=row.raw if with_raw else {},
    )


def _snapshot(session: Session) -> None:
    """One consistent snapshot for a multi-statement read (trial + criteria + locations).

    PostgreSQL's default READ COMMITTED would let a concurrent ingest commit
    between the statements of one read; REPEATABLE READ pins the snapshot.
    SQLite's read transactions are already snapshots (WAL).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


class TrialRepository:
    """Trial storage behind a session factory (one transaction per call)."""

    def __init__(self, session_factory: sessionmaker) -> None:
        self.session_factory = session_factory

    # ------------------------------------------------------------------ writes
    def stored_state(self, nct_ids: Iterable[str]) -> dict[str, tuple[str, dt.date | None]]:
        """(content hash, last update) of the stored trials among ``nct_ids``."""
        ids = list(nct_ids)
        with self.session_factory() as session:
            rows = session.execute(select(orm.Trial.nct_id, orm.Trial.content_hash, orm.Trial.last_update)
                                   .where(orm.Trial.nct_id.in_(ids)))
            return {r.nct_id: (r.content_hash, r.last_update) for r in rows}

    @staticmethod
    def is_unchanged(record: TrialRecord, stored: tuple[str, dt.date | None] | None) -> bool:
        """Same content, or older than the stored record (the newer stored one wins)."""
        if stored is None:
            return False
        digest, last = stored
        return digest == content_hash(record.raw) or bool(
            last and record.last_update and record.last_update < last)

    def upsert(self, records: Iterable[TrialRecord], *, parser_version: str | None = None,
               cache_rows: dict[str, dict[str, Any]] | None = None,
               meta: dict[str, str] | None = None) -> UpsertCounts:
        """Insert or replace trials (with criteria and locations) in ONE transaction.

        ``parser_version`` stamps the parsed criteria with the pipeline fingerprint that parsed them;
        ``cache_rows`` (text hash -> parsed dict) are new parse-cache rows for that fingerprint and
        ``meta`` corpus metadata, both written in the same transaction (a crash leaves all or nothing).
        """
        records = list({r.nct_id: r for r in records}.values())
        counts = UpsertCounts()
        if not records:
            return counts
        with self.session_factory.begin() as session:
            if cache_rows and parser_version:
                _insert_ignoring_duplicates(session, orm.ParseCache.__table__, [
                    {"text_hash": h, "fingerprint": parser_version, "parsed": d} for h, d in cache_rows.items()])
            for key, value in (meta or {}).items():
                self._set_meta(session, key, value)
            existing = {r.nct_id: r for r in session.execute(
                select(orm.Trial.id, orm.Trial.nct_id, orm.Trial.content_hash, orm.Trial.last_update)
                .where(orm.Trial.nct_id.in_([r.nct_id for r in records])))}
            new, changed = [], []
            for record in records:
                row = existing.get(record.nct_id)
                if row is None:
                    new.append(record)
                elif self.is_unchanged(record, (row.content_hash, row.last_update)):
                    counts.unchanged += 1
                else:
                    changed.append((row.id, record))
            if changed:
                ids = [trial_id for trial_id, _ in changed]
                session.execute(delete(orm.Criterion).where(orm.Criterion.trial_id.in_(ids)))
                session.execute(delete(orm.Location).where(orm.Location.trial_id.in_(ids)))
                session.execute(update(orm.Trial), [{"id": trial_id, **_trial_values(r, content_hash(r.raw))}
                                                    for trial_id, r in changed])
            new_ids: list[int] = []
            if new:
                result = session.execute(insert(orm.Trial).returning(orm.Trial.id, sort_by_parameter_order=True),
                                         [_trial_values(r, content_hash(r.raw)) for r in new])
                new_ids = [row.id for row in result]
            written = list(zip(new_ids, new)) + changed
            dicts: dict[int, dict[str, Any]] = {}
            crit_rows = [_criterion_values(tid, c, parser_version, dicts) for tid, r in written for c in r.criteria]
            loc_rows = [_location_values(tid, loc) for tid, r in written for loc in r.locations]
            if crit_rows:
                session.execute(insert(orm.Criterion), crit_rows)
            if loc_rows:
                session.execute(insert(orm.Location), loc_rows)
            counts.added += len(new)
            counts.updated += len(changed)
            counts.changed_hashes.update({r.nct_id: content_hash(r.raw) for _, r in changed})
            if written:
                self._bump_version(session)
        return counts

    def set_parsed(self, parsed: dict[int, dict[str, Any]], *, parser_version: str | None = None,
                   cache_rows: dict[str, dict[str, Any]] | None = None) -> None:
        """Store parsed criterion structures by criterion row id (and new parse-cache rows, same transaction)."""
        with self.session_factory.begin() as session:
            if cache_rows and parser_version:
                _insert_ignoring_duplicates(session, orm.ParseCache.__table__, [
                    {"text_hash": h, "fingerprint": parser_version, "parsed": d} for h, d in cache_rows.items()])
            if parsed:
                session.execute(update(orm.Criterion), [
                    {"id": cid, "parsed": value, "parser_version": parser_version} for cid, value in parsed.items()])

    # ------------------------------------------------------------------ parse cache
    def cached_parses(self, keys: Iterable[str], fingerprint: str) -> dict[str, dict[str, Any]]:
        """Cached parsed dicts by text hash, for the texts of ``keys`` parsed by ``fingerprint``."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        table = orm.ParseCache.__table__
        with self.session_factory() as session:
            for start in range(0, len(keys), PARSE_CACHE_CHUNK):
                rows = session.execute(select(table.c.text_hash, table.c.parsed).where(
                    table.c.fingerprint == fingerprint, table.c.text_hash.in_(keys[start:start + PARSE_CACHE_CHUNK])))
                found.update((key, parsed) for key, parsed in rows)
        return found

    def seed_parse_cache(self, rows: Iterable[tuple[str, dict[str, Any]]], fingerprint: str) -> int:
        """Add (text hash, parsed dict) rows for ``fingerprint`` in one transaction; existing keys are kept."""
        n = 0
        with self.session_factory.begin() as session:
            chunk: list[dict[str, Any]] = []
            for key, parsed in rows:
                chunk.append({"text_hash": key, "fingerprint": fingerprint, "parsed": parsed})
                if len(chunk) >= 20_000:
                    _insert_ignoring_duplicates(session, orm.ParseCache.__table__, chunk)
                    n += len(chunk)
                    chunk = []
            _insert_ignoring_duplicates(session, orm.ParseCache.__table__, chunk)
            n += len(chunk)
        return n

    def parse_cache_rows(self, fingerprint: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every cached (text hash, parsed dict) of ``fingerprint``, ordered by hash."""
        table = orm.ParseCache.__table__
        with self.session_factory() as session:
            for key, parsed in session.execute(select(table.c.text_hash, table.c.parsed).where(
                    table.c.fingerprint == fingerprint).order_by(table.c.text_hash)):
                yield key, parsed

    def parse_cache_count(self, fingerprint: str | None = None) -> int:
        stmt = select(func.count()).select_from(orm.ParseCache)
        if fingerprint is not None:
            stmt = stmt.where(orm.ParseCache.fingerprint == fingerprint)
        with self.session_factory() as session:
            return session.scalar(stmt) or 0

    def has_stale_parses(self, fingerprint: str) -> bool:
        """Whether a stored criterion parse was made by another pipeline version."""
        with self.session_factory() as session:
            return session.scalar(select(orm.Criterion.id).where(
                orm.Criterion.parser_version.is_not(None), orm.Criterion.parser_version != fingerprint)
                .limit(1)) is not None

    def stale_criterion_batches(self, fingerprint: str, size: int = 20_000) -> Iterator[list[tuple[int, str]]]:
        """(id, text) of the criteria not parsed by ``fingerprint`` (unparsed or parsed by another version)."""
        last = 0
        while True:
            with self.session_factory() as session:
                rows = list(session.execute(
                    select(orm.Criterion.id, orm.Criterion.text).where(
                        orm.Criterion.id > last,
                        or_(orm.Criterion.parser_version.is_(None), orm.Criterion.parser_version != fingerprint))
                    .order_by(orm.Criterion.id).limit(size)))
            if not rows:
                return
            last = rows[-1].id
            yield [(r.id, r.text) for r in rows]

    def unparsed_criteria(self, limit: int = 5000) -> list[tuple[int, str]]:
        with self.session_factory() as session:
            rows = session.execute(
                select(orm.Criterion.id, orm.Criterion.text).where(orm.Criterion.parsed.is_(None)).limit(limit)
            )
            return [(r.id, r.text) for r in rows]

    def clear_parsed(self) -> None:
        with self.session_factory.begin() as session:
            session.execute(orm.Criterion.__table__.update().values(parsed=None, parser_version=None))

    def get_meta(self, key: str) -> str | None:
        with self.session_factory() as session:
            row = session.get(orm.CorpusMeta, key)
            return row.value if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.session_factory.begin() as session:
            self._set_meta(session, key, value)

    @staticmethod
    def _set_meta(session: Session, key: str, value: str) -> None:
        row = session.get(orm.CorpusMeta, key)
        if row is None:
            session.add(orm.CorpusMeta(key=key, value=value))
        else:
            row.value = value

    def criterion_batches(self, size: int = 20_000) -> Iterator[list[tuple[int, str]]]:
        """(criterion id, text) of every stored criterion, in batches."""
        last = 0
        while True:
            with self.session_factory() as session:
                rows = list(session.execute(select(orm.Criterion.id, orm.Criterion.text)
                                            .where(orm.Criterion.id > last).order_by(orm.Criterion.id).limit(size)))
            if not rows:
                return
            last = rows[-1].id
            yield [(r.id, r.text) for r in rows]

    def study_texts(self) -> list[tuple[str, str, list[str]]]:
        with self.session_factory() as session:
            return [(r.nct_id, r.title, list(r.conditions or ())) for r in session.execute(
                select(orm.Trial.nct_id, orm.Trial.title, orm.Trial.conditions))]

    def set_concepts(self, concepts: dict[str, list[str]]) -> None:
        with self.session_factory.begin() as session:
            session.execute(update(orm.Trial), [
                {"id": tid, "concepts": concepts[nct]} for tid, nct in session.execute(
                    select(orm.Trial.id, orm.Trial.nct_id).where(orm.Trial.nct_id.in_(list(concepts))))])
            self._bump_version(session)

    def _bump_version(self, session: Session) -> None:
        meta = session.get(orm.CorpusMeta, CORPUS_VERSION_KEY)
        stamp = uuid.uuid4().hex
        if meta is None:
            session.add(orm.CorpusMeta(key=CORPUS_VERSION_KEY, value=stamp))
        else:
            meta.value = stamp

    def delete(self, nct_id: str) -> None:
        with self.session_factory.begin() as session:
            result = session.execute(delete(orm.Trial).where(orm.Trial.nct_id == nct_id))
            if result.rowcount == 0:
                raise TrialNotFound(nct_id)
            self._bump_version(session)

    # ------------------------------------------------------------------ reads
    def corpus_version(self) -> str | None:
        with self.session_factory() as session:
            meta = session.get(orm.CorpusMeta, CORPUS_VERSION_KEY)
            return meta.value if meta else None

    def count(self) -> int:
        with self.session_factory() as session:
            return session.scalar(select(func.count(orm.Trial.id))) or 0

    def get(self, nct_id: str, with_raw: bool = False) -> TrialRecord:
        with self.session_factory() as session:
            _snapshot(session)
            stmt = select(orm.Trial).where(orm.Trial.nct_id == nct_id).options(
                selectinload(orm.Trial.criteria), selectinload(orm.Trial.locations))
            if with_raw:
                stmt = stmt.options(undefer(orm.Trial.raw))
            row = session.scalar(stmt)
            if row is None:
                raise TrialNotFound(nct_id)
            return _to_record(row, with_raw)

    def get_many(self, nct_ids: Iterable[str]) -> dict[str, TrialRecord]:
        ids = list(dict.fromkeys(nct_ids))
        if not ids:
            return {}
        with self.session_factory() as session:
            _snapshot(session)
            rows = session.scalars(
                select(orm.Trial).where(orm.Trial.nct_id.in_(ids)).options(
                    selectinload(orm.Trial.criteria), selectinload(orm.Trial.locations))
            )
            return {row.nct_id: _to_record(row) for row in rows}

    def places(self, prefix: str, limit: int = 10) -> list[Place]:
        """Towns whose name starts with ``prefix`` (any case) among the sites that have coordinates, the towns
        with most sites first: where a patient can say where they are without an external geocoder."""
        pattern = prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        loc = orm.Location
        with self.session_factory() as session:
            rows = session.execute(
                select(loc.city, loc.state, loc.country, func.avg(loc.lat), func.avg(loc.lon), func.count())
                .where(loc.lat.is_not(None), loc.lon.is_not(None), loc.city.is_not(None),
                       func.lower(loc.city).like(pattern, escape="\\"))
                .group_by(loc.city, loc.state, loc.country)
                .order_by(func.count().desc(), loc.city, loc.state, loc.country).limit(limit))
            return [Place(r[0], r[1], r[2], round(float(r[3]), 4), round(float(r[4]), 4), int(r[5])) for r in rows]

    def iter_all(self, batch_size: int = 1000) -> Iterator[TrialRecord]:
        """All trials ordered by NCT id (for fitting the retriever)."""
        last = ""
        while True:
            with self.session_factory() as session:
                _snapshot(session)
                rows = list(session.scalars(
                    select(orm.Trial).where(orm.Trial.nct_id > last).order_by(orm.Trial.nct_id)
                    .limit(batch_size).options(selectinload(orm.Trial.criteria),
                                               selectinload(orm.Trial.locations))
                ))
                if not rows:
                    return
                records = [_to_record(row) for row in rows]
            last = records[-1].nct_id
            yield from records

    def list(self, q: str | None = None, condition: str | None = None, statuses: Iterable[str] = (),
             page: int = 1, per_page: int = 20) -> TrialPage:
        with self.session_factory() as session:
            _snapshot(session)
            stmt = select(orm.Trial)
            if q:
                like = f"%{q.lower()}%"
                stmt = stmt.where(or_(func.lower(orm.Trial.title).like(like), orm.Trial.nct_id == q.upper()))
            if condition:
                stmt = stmt.where(func.lower(cast(orm.Trial.conditions, Text)).like(f"%{condition.lower()}%"))
            statuses = [s.upper() for s in statuses]
            if statuses:
                stmt = stmt.where(orm.Trial.overall_status.in_(statuses))
            total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
            rows = session.scalars(
                stmt.order_by(orm.Trial.nct_id).offset((page - 1) * per_page).limit(per_page)
                .options(selectinload(orm.Trial.criteria), selectinload(orm.Trial.locations))
            )
            return TrialPage([_to_record(r) for r in rows], total)
