"""Trial filters (status, phase, place, distance to the nearest recruiting site). Pure."""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.domain import Location, TrialRecord


class FilterError(ValueError):
    """A filters object that cannot be read; the message names the field (never echoes a free-text value)."""


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


# --------------------------------------------------------------------------- reading a filters object

KNOWN_STATUSES = frozenset({
    "RECRUITING", "NOT_YET_RECRUITING", "ENROLLING_BY_INVITATION", "ACTIVE_NOT_RECRUITING", "COMPLETED",
    "SUSPENDED", "TERMINATED", "WITHDRAWN", "UNKNOWN", "AVAILABLE", "NO_LONGER_AVAILABLE",
    "TEMPORARILY_NOT_AVAILABLE", "APPROVED_FOR_MARKETING", "WITHHELD",
})
KNOWN_PHASES = frozenset({"EARLY_PHASE1", "PHASE1", "PHASE2", "PHASE3", "PHASE4", "NA"})
FILTER_KEYS = frozenset({"status", "phase", "country", "state", "city", "near"})


def _str_list(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise FilterError(f"filters.{name} must be a string or a list of strings")
    if len(value) > 20:
        raise FilterError(f"filters.{name} has too many values")
    return [v.strip().upper().replace(" ", "_").replace(",", "") for v in value]


def _place(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        raise FilterError(f"filters.{name} must be a non-empty string of at most 100 characters")
    return value.strip()


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise FilterError(f"filters.near.{name} must be a number between {low:g} and {high:g}")
    return float(value)


def _near(value: Any) -> Near | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not {"lat", "lon"} <= set(value) or set(value) - {"lat", "lon", "radius_km"}:
        raise FilterError("filters.near must be an object with lat, lon and optional radius_km")
    return Near(_number(value["lat"], "lat", -90, 90), _number(value["lon"], "lon", -180, 180),
                _number(value.get("radius_km", 100), "radius_km", 0.1, 20037))


def parse_filters(raw: Any, default_statuses: Sequence[str] = ()) -> Filters:
    """Validate the ``filters`` object of a match request. ``status: []`` or ``"ANY"`` means any status."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise FilterError("filters must be an object")
    unknown = set(raw) - FILTER_KEYS
    if unknown:
        raise FilterError(f"unknown filter(s): {', '.join(sorted(unknown))}")
    statuses = _str_list(raw["status"], "status") if "status" in raw and raw["status"] != [] else (
        [] if raw.get("status") == [] else [s.upper() for s in default_statuses])
    if statuses == ["ANY"]:
        statuses = []
    statuses = _known_statuses(statuses)
    phases = [re.sub(r"PHASE_(\d)$", r"PHASE\1", p) for p in _str_list(raw["phase"], "phase")] if raw.get(
        "phase") is not None else []  # "phase 2" and "Phase2" both mean PHASE2
    bad = [p for p in phases if p not in KNOWN_PHASES]
    if bad:
        raise FilterError(f"unknown phase: {', '.join(bad)}")
    return Filters(statuses=tuple(statuses), phases=tuple(phases), country=_place(raw.get("country"), "country"),
                   state=_place(raw.get("state"), "state"), city=_place(raw.get("city"), "city"),
                   near=_near(raw.get("near")))


def _known_statuses(statuses: list[str]) -> list[str]:
    bad = [s for s in statuses if s not in KNOWN_STATUSES]
    if bad:
        raise FilterError(f"unknown status: {', '.join(bad)}")
    return statuses


def parse_statuses(values: Any) -> list[str]:
    """Registry status names from a string or list ("recruiting", "NOT YET RECRUITING" ...), checked."""
    return _known_statuses(_str_list(values, "status"))
