"""Request validation (type, non-empty, size caps) -> typed values; raises APIError with stable codes."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assistant.matching.filters import Filters, Near
from assistant.web.errors import APIError

KNOWN_STATUSES = frozenset({
    "RECRUITING", "NOT_YET_RECRUITING", "ENROLLING_BY_INVITATION", "ACTIVE_NOT_RECRUITING", "COMPLETED",
    "SUSPENDED", "TERMINATED", "WITHDRAWN", "UNKNOWN", "AVAILABLE", "NO_LONGER_AVAILABLE",
    "TEMPORARILY_NOT_AVAILABLE", "APPROVED_FOR_MARKETING", "WITHHELD",
})
KNOWN_PHASES = frozenset({"EARLY_PHASE1", "PHASE1", "PHASE2", "PHASE3", "PHASE4", "NA"})
FILTER_KEYS = frozenset({"status", "phase", "country", "state", "city", "near"})


def bad_filter(message: str) -> APIError:
    return APIError("invalid_filter", message, 400)


def _str_list(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise bad_filter(f"filters.{name} must be a string or a list of strings")
    if len(value) > 20:
        raise bad_filter(f"filters.{name} has too many values")
    return [v.strip().upper().replace(" ", "_").replace(",", "") for v in value]


def _place(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        raise bad_filter(f"filters.{name} must be a non-empty string of at most 100 characters")
    return value.strip()


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise bad_filter(f"filters.near.{name} must be a number between {low:g} and {high:g}")
    return float(value)


def _near(value: Any) -> Near | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not {"lat", "lon"} <= set(value) or set(value) - {"lat", "lon", "radius_km"}:
        raise bad_filter("filters.near must be an object with lat, lon and optional radius_km")
    return Near(_number(value["lat"], "lat", -90, 90), _number(value["lon"], "lon", -180, 180),
                _number(value.get("radius_km", 100), "radius_km", 0.1, 20037))


def parse_filters(raw: Any, default_statuses: Sequence[str] = ()) -> Filters:
    """Validate the ``filters`` object of a match request. ``status: []`` or ``"ANY"`` means any status."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise bad_filter("filters must be an object")
    unknown = set(raw) - FILTER_KEYS
    if unknown:
        raise bad_filter(f"unknown filter(s): {', '.join(sorted(unknown))}")
    statuses = _str_list(raw["status"], "status") if "status" in raw and raw["status"] != [] else (
        [] if raw.get("status") == [] else [s.upper() for s in default_statuses])
    if statuses == ["ANY"]:
        statuses = []
    bad = [s for s in statuses if s not in KNOWN_STATUSES]
    if bad:
        raise bad_filter(f"unknown status: {', '.join(bad)}")
    phases = _str_list(raw["phase"], "phase") if raw.get("phase") is not None else []
    bad = [p for p in phases if p not in KNOWN_PHASES]
    if bad:
        raise bad_filter(f"unknown phase: {', '.join(bad)}")
    return Filters(statuses=tuple(statuses), phases=tuple(phases), country=_place(raw.get("country"), "country"),
                   state=_place(raw.get("state"), "state"), city=_place(raw.get("city"), "city"),
                   near=_near(raw.get("near")))
