"""Trial filters (status, phase, place, distance to the nearest recruiting site). Pure."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from models.domain import Location, TrialRecord

RECRUITING_SITE_STATUSES = frozenset({"RECRUITING", "NOT_YET_RECRUITING", "ENROLLING_BY_INVITATION"})
EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True, slots=True)
class Near:
    lat: float
    lon: float
    radius_km: float


@dataclass(frozen=True, slots=True)
class Filters:
    statuses: tuple[str, ...] = ()  # empty = any status
    phases: tuple[str, ...] = ()
    country: str | None = None
    state: str | None = None
    city: str | None = None
    near: Near | None = None
    nct_ids: frozenset[str] | None = None  # restrict to these trials (e.g. a judged pool)


@dataclass(frozen=True, slots=True)
class TrialMeta:
    """What the filters need of one trial, kept in memory beside the retriever."""

    nct_id: str
    status: str | None
    phases: tuple[str, ...]
    locations: tuple[Location, ...] = field(default=())


def trial_meta(trial: TrialRecord) -> TrialMeta:
    return TrialMeta(trial.nct_id, trial.overall_status, trial.phases, trial.locations)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def nearest_site(locations: Iterable[Location], lat: float, lon: float) -> tuple[Location, float] | None:
    """The nearest recruiting site with coordinates (a site without a status counts) and its distance in km."""
    best: tuple[Location, float] | None = None
    for loc in locations:
        if loc.lat is None or loc.lon is None:
            continue
        if loc.status and loc.status.upper() not in RECRUITING_SITE_STATUSES:
            continue
        d = haversine_km(lat, lon, loc.lat, loc.lon)
        if best is None or d < best[1]:
            best = (loc, d)
    return best


def nearest_site_km(locations: Iterable[Location], lat: float, lon: float) -> float | None:
    """Distance to the nearest recruiting site with coordinates (a site without a status counts)."""
    found = nearest_site(locations, lat, lon)
    return found[1] if found is not None else None


def site_name(loc: Location) -> str:
    """``facility, city, state, country`` (the parts that are known)."""
    return ", ".join(p for p in (loc.facility, loc.city, loc.state, loc.country) if p)


def _norm(value: str | None) -> str:
    return (value or "").strip().casefold()


def _place_ok(meta: TrialMeta, filters: Filters) -> bool:
    if not (filters.country or filters.state or filters.city):
        return True
    for loc in meta.locations:
        if filters.country and _norm(loc.country) != _norm(filters.country):
            continue
        if filters.state and _norm(loc.state) != _norm(filters.state):
            continue
        if filters.city and _norm(loc.city) != _norm(filters.city):
            continue
        return True
    return False


def _phase_key(phase: str) -> str:
    return phase.upper().replace(" ", "").replace("_", "")


def accepts(meta: TrialMeta, filters: Filters) -> bool:
    if filters.nct_ids is not None and meta.nct_id not in filters.nct_ids:
        return False
    if filters.statuses and (meta.status or "").upper() not in filters.statuses:
        return False
    if filters.phases:
        wanted = {_phase_key(p) for p in filters.phases}
        if not wanted.intersection(_phase_key(p) for p in meta.phases):
            return False
    if not _place_ok(meta, filters):
        return False
    if filters.near is not None:
        d = nearest_site_km(meta.locations, filters.near.lat, filters.near.lon)
        if d is None or d > filters.near.radius_km:
            return False
    return True


def build_mask(metas: Sequence[TrialMeta], filters: Filters) -> np.ndarray | None:
    """Boolean mask over the fitted trials, or None when nothing is filtered."""
    if filters == Filters():
        return None
    if filters.statuses and not (filters.phases or filters.country or filters.state or filters.city
                                 or filters.near or filters.nct_ids is not None):
        wanted = set(filters.statuses)
        return np.fromiter(((m.status or "").upper() in wanted for m in metas), dtype=bool, count=len(metas))
    return np.fromiter((accepts(m, filters) for m in metas), dtype=bool, count=len(metas))
