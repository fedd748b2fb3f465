"""ORM classes for trials, their criteria, locations, and corpus metadata."""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import JSON, Date, DateTime, Float, ForeignKey, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.db import Base


class Trial(Base):
    __tablename__ = "trial"

    id: Mapped[int] = mapped_column(primary_key=True)
    nct_id: Mapped[str] = mapped_column(String(16), unique=True, index=True)
    title: Mapped[str] = mapped_column(Text)
    official_title: Mapped[Optional[str]] = mapped_column(Text)
    brief_summary: Mapped[Optional[str]] = mapped_column(Text)
    detailed_description: Mapped[Optional[str]] = mapped_column(Text)
    conditions: Mapped[list[str]] = mapped_column(JSON, default=list)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    interventions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    phases: Mapped[list[str]] = mapped_column(JSON, default=list)
    study_type: Mapped[Optional[str]] = mapped_column(String(32))
    overall_status: Mapped[Optional[str]] = mapped_column(String(32), index=True)
    minimum_age_years: Mapped[Optional[float]] = mapped_column(Float)
    maximum_age_years: Mapped[Optional[float]] = mapped_column(Float)
    minimum_age_raw: Mapped[Optional[str]] = mapped_column(String(64))
    maximum_age_raw: Mapped[Optional[str]] = mapped_column(String(64))
    sex: Mapped[Optional[str]] = mapped_column(String(16))
    healthy_volunteers: Mapped[Optional[bool]]
    enrollment: Mapped[Optional[int]] = mapped_column(Integer)
    last_update: Mapped[Optional[dt.date]] = mapped_column(Date)
    eligibility_text: Mapped[str] = mapped_column(Text, default="")
    concepts: Mapped[Optional[list[str]]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))
    raw: Mapped[dict[str, Any]] = mapped_column(JSON, deferred=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now(), onupdate=func.now())

    criteria: Mapped[list["Criterion"]] = relationship(
        back_populates="trial", cascade="all, delete-orphan", order_by="Criterion.id"
    )
    locations: Mapped[list["Location"]] = relationship(
        back_populates="trial", cascade="all, delete-orphan", order_by="Location.id"
    )


class Criterion(Base):
    __tablename__ = "criterion"

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trial.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # inclusion | exclusion
    position: Mapped[int] = mapped_column(Integer)
    parent: Mapped[Optional[int]] = mapped_column(Integer)
    depth: Mapped[int] = mapped_column(Integer, default=0)
    cohort: Mapped[Optional[str]] = mapped_column(Text)
    heading: Mapped[Optional[str]] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    parsed: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    # pipeline fingerprint that produced ``parsed`` (None: not parsed, or parsed before 0003 without a stamp)
    parser_version: Mapped[Optional[str]] = mapped_column(String(64))

    trial: Mapped[Trial] = relationship(back_populates="criteria")


class Location(Base):
    __tablename__ = "location"

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trial.id", ondelete="CASCADE"), index=True)
    facility: Mapped[Optional[str]] = mapped_column(Text)
    city: Mapped[Optional[str]] = mapped_column(String(128))
    state: Mapped[Optional[str]] = mapped_column(String(128))
    country: Mapped[Optional[str]] = mapped_column(String(128), index=True)
    zip: Mapped[Optional[str]] = mapped_column(String(32))
    status: Mapped[Optional[str]] = mapped_column(String(32))
    lat: Mapped[Optional[float]] = mapped_column(Float)
    lon: Mapped[Optional[float]] = mapped_column(Float)

    trial: Mapped[Trial] = relationship(back_populates="locations")


class CorpusMeta(Base):
    """Key/value metadata; ``corpus_version`` changes whenever trials change."""

    __tablename__ = "corpus_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ParseCache(Base):
    """A parsed criterion text, keyed by the text's sha256 and the pipeline fingerprint that parsed it.

    Criterion texts repeat across trials; ingest parses each distinct text once per pipeline version.
    ``parsed`` is ``models.domain.parsed_to_dict`` of the result.
    """

    __tablename__ = "parse_cache"

    text_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    parsed: Mapped[dict[str, Any]] = mapped_column(JSON)
