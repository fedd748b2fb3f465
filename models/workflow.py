"""Queries for chat sessions, referrals with their audit trail, and API keys.

Every write commits before the function returns (a referral status change and
its audit entry are one transaction). Returns frozen values, never ORM rows.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Iterable

from sqlalchemy import delete, func, select
from sqlalchemy.orm import selectinload, sessionmaker

from models.referral import DEFAULT_TEAM, ApiKey, Referral, ReferralEvent
from models.session import ChatSession

REFERRAL_STATUSES = ("new", "in_review", "contacted", "enrolled", "not_eligible")
# final statuses: a referral in one of them is erased REFERRAL_RETENTION_DAYS after its last change
CLOSED_STATUSES = ("enrolled", "not_eligible")
ROLES = ("coordinator", "admin")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class NotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class SessionState:
    id: str
    created_at: dt.datetime
    expires_at: dt.datetime
    messages: tuple[dict[str, Any], ...]
    asked: tuple[str, ...]
    pending_question: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    at: dt.datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    note: str | None


@dataclass(frozen=True, slots=True)
class ReferralRecord:
    id: int
    nct_id: str
    session_id: str | None
    patient_text: str
    contact_ref: str
    status: str
    needs_review: bool
    trial_hash: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    events: tuple[AuditEvent, ...] = ()
    team: str = DEFAULT_TEAM
    snapshot: "ReferralSnapshot | None" = None  # None: created before snapshots were stored


@dataclass(frozen=True, slots=True)
class ReferralSnapshot:
    """What a referral showed when it was made: the queue lists it without re-running matching."""

    trial_title: str | None = None
    label: str | None = None
    patient_summary: str | None = None
    transcript: tuple[dict[str, Any], ...] = ()  # [{"question": str | None, "answer": str}] of a chat


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str
    team: str | None = DEFAULT_TEAM  # None for admins: they see every team

    @property
    def scope(self) -> str | None:
        """The team this key is limited to; None means every team (admins)."""
        return None if self.role == "admin" else self.team


def _state(row: ChatSession) -> SessionState:
    return SessionState(row.id, row.created_at, row.expires_at, tuple(row.messages or ()), tuple(row.asked or ()),
                        row.pending_question)


def _referral(row: Referral, with_events: bool = False) -> ReferralRecord:
    events = tuple(AuditEvent(e.at, e.actor, e.action, e.from_status, e.to_status, e.note)
                   for e in row.events) if with_events else ()
    snapshot = None
    if row.trial_title is not None or row.label_at_creation is not None or row.patient_summary is not None:
        snapshot = ReferralSnapshot(row.trial_title, row.label_at_creation, row.patient_summary,
                                    tuple(row.transcript or ()))
    return ReferralRecord(row.id, row.nct_id, row.session_id, row.patient_text, row.contact_ref, row.status,
                          row.needs_review, row.trial_hash, row.created_at, row.updated_at, events, row.team,
                          snapshot)


def _checkpoint(factory: sessionmaker) -> None:
    from models.db import checkpoint

    engine = getattr(factory, "engine", None) or factory.kw.get("bind")
    if engine is not None:
        checkpoint(engine)


class SessionRepository:
    def __init__(self, session_factory: sessionmaker) -> None:
        self.session_factory = session_factory

    def create(self, ttl: dt.timedelta) -> SessionState:
        now = utcnow()
        row = ChatSession(id=secrets.token_urlsafe(32), created_at=now, updated_at=now, expires_at=now + ttl,
                          messages=[], asked=[], pending_question=None)
        with self.session_factory.begin() as s:
            s.add(row)
        return _state(row)

    def get(self, session_id: str) -> SessionState:
        """The live session; expired ones are deleted and reported as not found."""
        with self.session_factory.begin() as s:
            row = s.get(ChatSession, session_id)
            if row is None:
                raise NotFound(session_id)
            if row.expires_at <= utcnow():
                s.delete(row)
                raise NotFound(session_id)
            return _state(row)

    def save_turn(self, session_id: str, messages: list[dict[str, Any]], asked: list[str],
                  pending: dict[str, Any] | None, ttl: dt.timedelta) -> SessionState:
        with self.session_factory.begin() as s:
            row = s.get(ChatSession, session_id)
            if row is None:
                raise NotFound(session_id)
            now = utcnow()
            row.messages, row.asked, row.pending_question = messages, asked, pending
            row.updated_at, row.expires_at = now, now + ttl
            return _state(row)

    def delete(self, session_id: str) -> None:
        with self.session_factory.begin() as s:
            if s.execute(delete(ChatSession).where(ChatSession.id == session_id)).rowcount == 0:
                raise NotFound(session_id)
        _checkpoint(self.session_factory)

    def purge_expired(self) -> int:
        """Delete every expired session (their transcripts with them); returns how many."""
        with self.session_factory.begin() as s:
            n = s.execute(delete(ChatSession).where(ChatSession.expires_at <= utcnow())).rowcount
        if n:
            _checkpoint(self.session_factory)
        return n


class ReferralRepository:
    """Referrals belong to a team. Reads and writes take ``team``: a referral of another team is
    reported as not found (its existence is not revealed); ``team=None`` means every team (admins)."""

    def __init__(self, session_factory: sessionmaker) -> None:
        self.session_factory = session_factory

    def create(self, nct_id: str, patient_text: str, contact_ref: str, actor: str,
               session_id: str | None = None, trial_hash: str | None = None,
               team: str = DEFAULT_TEAM, snapshot: ReferralSnapshot | None = None,
               note: str | None = None) -> ReferralRecord:
        now = utcnow()
        snap = snapshot or ReferralSnapshot()
        row = Referral(nct_id=nct_id, session_id=session_id, patient_text=patient_text, contact_ref=contact_ref,
                       status="new", needs_review=False, trial_hash=trial_hash, created_at=now, updated_at=now,
                       team=team, trial_title=snap.trial_title, label_at_creation=snap.label,
                       patient_summary=snap.patient_summary,
                       transcript=[dict(t) for t in snap.transcript] if snapshot is not None else None)
        row.events.append(ReferralEvent(at=now, actor=actor, action="created", to_status="new", note=note))
        with self.session_factory.begin() as s:
            s.add(row)
            s.flush()
            return _referral(row, with_events=True)

    def get(self, referral_id: int, team: str | None = None) -> ReferralRecord:
        with self.session_factory() as s:
            stmt = select(Referral).where(Referral.id == referral_id).options(selectinload(Referral.events))
            if team is not None:
                stmt = stmt.where(Referral.team == team)
            row = s.scalar(stmt)
            if row is None:
                raise NotFound(str(referral_id))
            return _referral(row, with_events=True)

    def list(self, nct_id: str | None = None, status: str | None = None, since: dt.datetime | None = None,
             until: dt.datetime | None = None, page: int = 1, per_page: int = 50,
             team: str | None = None) -> tuple[list[ReferralRecord], int]:
        with self.session_factory() as s:
            stmt = select(Referral)
            if team is not None:
                stmt = stmt.where(Referral.team == team)
            if nct_id:
                stmt = stmt.where(Referral.nct_id == nct_id)
            if status:
                stmt = stmt.where(Referral.status == status)
            if since:
                stmt = stmt.where(Referral.created_at >= since)
            if until:
                stmt = stmt.where(Referral.created_at < until)
            total = s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
            rows = s.scalars(stmt.order_by(Referral.created_at.desc(), Referral.id.desc())
                             .offset((page - 1) * per_page).limit(per_page))
            return [_referral(r) for r in rows], total

    def change_status(self, referral_id: int, status: str, actor: str, note: str | None,
                      team: str | None = None) -> ReferralRecord:
        """Status and audit entry in one transaction, committed before returning."""
        return self._record(referral_id, actor, "status", status, note, team)

    def add_note(self, referral_id: int, actor: str, note: str, team: str | None = None) -> ReferralRecord:
        """A note without a status change: an audit entry of its own, committed before returning."""
        return self._record(referral_id, actor, "note", None, note, team)

    def _record(self, referral_id: int, actor: str, action: str, status: str | None, note: str | None,
                team: str | None) -> ReferralRecord:
        """One audit entry (and the new status, if any) in one transaction; a status change also clears the
        review flag (a coordinator has looked at it since the trial changed)."""
        with self.session_factory.begin() as s:
            row = s.get(Referral, referral_id, with_for_update=True)
            if row is None or (team is not None and row.team != team):
                raise NotFound(str(referral_id))
            now = utcnow()
            row.events.append(ReferralEvent(at=now, actor=actor, action=action, from_status=row.status,
                                            to_status=status or row.status, note=note))
            row.updated_at = now
            if status is not None:
                row.status = status
                row.needs_review = False
            s.flush()
        return self.get(referral_id, team=team)

    def delete(self, referral_id: int, team: str | None = None) -> None:
        with self.session_factory.begin() as s:
            row = s.get(Referral, referral_id)
            if row is None or (team is not None and row.team != team):
                raise NotFound(str(referral_id))
            s.delete(row)

    def purge_closed(self, older_than: dt.timedelta) -> int:
        """Erase closed referrals (CLOSED_STATUSES) last changed more than ``older_than`` ago, with their
        audit trail (its notes may quote the patient); returns how many referrals went."""
        cutoff = utcnow() - older_than
        with self.session_factory.begin() as s:
            ids = select(Referral.id).where(Referral.status.in_(CLOSED_STATUSES), Referral.updated_at < cutoff)
            s.execute(delete(ReferralEvent).where(ReferralEvent.referral_id.in_(ids)))
            n = s.execute(delete(Referral).where(Referral.id.in_(ids))).rowcount
        if n:
            _checkpoint(self.session_factory)
        return n

    def flag_changed_trials(self, changed_hashes: dict[str, str]) -> int:
        """Mark open referrals whose trial content changed (data refresh); audit each flag."""
        flagged = 0
        with self.session_factory.begin() as s:
            rows = s.scalars(select(Referral).where(Referral.nct_id.in_(list(changed_hashes)),
                                                    Referral.status.in_(("new", "in_review", "contacted"))))
            for row in rows:
                if row.trial_hash != changed_hashes[row.nct_id] and not row.needs_review:
                    row.needs_review = True
                    row.events.append(ReferralEvent(at=utcnow(), actor="system", action="trial_changed",
                                                    note="trial record changed; verdicts re-computed on open"))
                    flagged += 1
        return flagged


@dataclass(frozen=True, slots=True)
class PurgeCounts:
    sessions: int
    referrals: int


def purge_expired_data(sessions: SessionRepository, referrals: ReferralRepository,
                       referral_retention_days: float) -> PurgeCounts:
    """The retention rules in one place (scheduled purge in each worker and ``trialmatch purge``): expired chat
    sessions go; closed referrals go ``referral_retention_days`` after their last change (0: kept)."""
    n_sessions = sessions.purge_expired()
    n_referrals = (referrals.purge_closed(dt.timedelta(days=referral_retention_days))
                   if referral_retention_days > 0 else 0)
    return PurgeCounts(n_sessions, n_referrals)


TEAM_MAX_LEN = 64


def check_team(team: str) -> str:
    """A team name: non-empty, at most 64 characters, no control characters; surrounding space removed."""
    if not isinstance(team, str):
        raise ValueError("a team name must be a string")
    team = team.strip()
    if not team or len(team) > TEAM_MAX_LEN or any(ord(c) < 32 or ord(c) == 127 for c in team):
        raise ValueError(f"a team name must be 1-{TEAM_MAX_LEN} printable characters")
    return team


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class KeyRepository:
    """API keys: ``tm_<prefix>_<secret>``; only a SHA-256 of the whole key is stored."""

    def __init__(self, session_factory: sessionmaker) -> None:
        self.session_factory = session_factory

    def create(self, name: str, role: str, team: str | None = None) -> str:
        """A coordinator key sees only ``team`` (default: the "default" team); admins see every team."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if role == "admin" and team is not None:
            raise ValueError("admin keys see every team; --team applies to coordinator keys")
        team = check_team(team) if team is not None else DEFAULT_TEAM
        prefix = secrets.token_hex(4)
        key = f"tm_{prefix}_{secrets.token_urlsafe(32)}"
        with self.session_factory.begin() as s:
            s.add(ApiKey(name=name, role=role, team=team, prefix=prefix, key_hash=hash_key(key),
                         created_at=utcnow(), revoked=False))
        return key

    def authenticate(self, key: str) -> Principal | None:
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != "tm":
            return None
        digest = hash_key(key)
        with self.session_factory() as s:
            for row in s.scalars(select(ApiKey).where(ApiKey.prefix == parts[1], ApiKey.revoked.is_(False))):
                if hmac.compare_digest(row.key_hash, digest):
                    return Principal(row.name, row.role, None if row.role == "admin" else row.team)
        return None

    def revoke(self, name: str) -> None:
        with self.session_factory.begin() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.name == name))
            if row is None:
                raise NotFound(name)
            row.revoked = True

    def names(self) -> Iterable[tuple[str, str, bool]]:
        with self.session_factory() as s:
            return [(r.name, r.role, r.revoked) for r in s.scalars(select(ApiKey).order_by(ApiKey.name))]

    def entries(self) -> list[tuple[str, str, str | None, bool]]:
        """(name, role, team, revoked); the team is None for admins (every team)."""
        with self.session_factory() as s:
            return [(r.name, r.role, None if r.role == "admin" else r.team, r.revoked)
                    for r in s.scalars(select(ApiKey).order_by(ApiKey.name))]
