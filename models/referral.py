"""ORM classes for referrals, their audit trail, and coordinator API keys."""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.db import Base

DEFAULT_TEAM = "default"  # the team of rows from before referral scoping (migration 0004)


class Referral(Base):
    __tablename__ = "referral"

    id: Mapped[int] = mapped_column(primary_key=True)
    nct_id: Mapped[str] = mapped_column(String(16), index=True)
    session_id: Mapped[Optional[str]] = mapped_column(String(64))
    patient_text: Mapped[str] = mapped_column(Text)
    contact_ref: Mapped[str] = mapped_column(String(200))
    # the site team that may see and change it (coordinator keys are scoped to one team)
    team: Mapped[str] = mapped_column(String(64), index=True, default=DEFAULT_TEAM, server_default=DEFAULT_TEAM)
    status: Mapped[str] = mapped_column(String(32), index=True, default="new")
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)  # trial criteria changed since creation
    trial_hash: Mapped[Optional[str]] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)
    # snapshot at creation (migration 0005; None on older rows): what the queue lists without re-matching
    trial_title: Mapped[Optional[str]] = mapped_column(String(500))
    label_at_creation: Mapped[Optional[str]] = mapped_column(String(32))
    patient_summary: Mapped[Optional[str]] = mapped_column(String(300))  # age, sex, main conditions
    transcript: Mapped[Optional[list[dict[str, Any]]]] = mapped_column(JSON)  # [{"question", "answer"}] of a chat

    events: Mapped[list["ReferralEvent"]] = relationship(
        back_populates="referral", cascade="all, delete-orphan", order_by="ReferralEvent.id")


class ReferralEvent(Base):
    """Audit trail: who changed what, when. Rows are only ever added."""

    __tablename__ = "referral_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[Optional[str]] = mapped_column(String(32))
    to_status: Mapped[Optional[str]] = mapped_column(String(32))
    note: Mapped[Optional[str]] = mapped_column(Text)

    referral: Mapped[Referral] = relationship(back_populates="events")


class ApiKey(Base):
    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # coordinator | admin
    # a coordinator's team; ignored for admins (they see every team)
    team: Mapped[str] = mapped_column(String(64), default=DEFAULT_TEAM, server_default=DEFAULT_TEAM)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
