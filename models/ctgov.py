"""ClinicalTrials.gov API v2 study JSON -> :class:`TrialRecord` (pure; field paths from ctg-oas-v2.yaml)."""
from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Any

from models.domain import Intervention, Location, TrialRecord

NCT_RE = re.compile(r"^NCT[0-9]{8}$")
AGE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(year|month|week|day|hour|minute)s?\s*$", re.IGNORECASE)
AGE_UNIT_YEARS = {"year": 1.0, "month": 1 / 12, "week": 7 / 365.25, "day": 1 / 365.25,
                  "hour": 1 / 8766, "minute": 1 / 525960}
MAX_TEXT_FIELD = 200_000  # characters; a larger eligibility or summary string is rejected
# column sizes of the trial store: a longer value is rejected rather than truncated silently
FIELD_LIMITS = {"overallStatus": 32, "sex": 16, "minimumAge": 64, "maximumAge": 64, "studyType": 32,
                "city": 128, "state": 128, "country": 128, "zip": 32, "status": 32}
MAX_INT = 2**31 - 1


class InvalidRecord(ValueError):
    """A study object that cannot be stored; the message says why."""


def _get(obj: Any, *path: str, expect: type | tuple[type, ...] | None = None) -> Any:
    for key in path:
        if obj is None:
            return None
        if not isinstance(obj, dict):
            raise InvalidRecord(f"{'.'.join(path)}: expected an object on the path, got {type(obj).__name__}")
        obj = obj.get(key)
    if obj is not None and expect is not None and not isinstance(obj, expect):
        names = expect.__name__ if isinstance(expect, type) else "/".join(t.__name__ for t in expect)
        raise InvalidRecord(f"{'.'.join(path)}: expected {names}, got {type(obj).__name__}")
    return obj


def _text(obj: Any, *path: str) -> str | None:
    value = _get(obj, *path, expect=str)
    if value is None:
        return None
    limit = FIELD_LIMITS.get(path[-1], MAX_TEXT_FIELD)
    if len(value) > limit:
        raise InvalidRecord(f"{'.'.join(path)}: {len(value)} characters exceeds the {limit} limit")
    if "\x00" in value:
        raise InvalidRecord(f"{'.'.join(path)}: contains a NUL character")
    return value.strip() if value else value


def _str_list(obj: Any, *path: str) -> tuple[str, ...]:
    value = _get(obj, *path, expect=list) or []
    if not all(isinstance(v, str) for v in value):
        raise InvalidRecord(f"{'.'.join(path)}: expected a list of strings")
    return tuple(v.strip() for v in value if v.strip())


def parse_age(raw: str | None) -> float | None:
    """'18 Years' -> 18.0, '6 Months' -> 0.5; 'N/A' or garbage -> None (no limit)."""
    if not raw:
        return None
    match = AGE_RE.match(raw)
    if not match:
        return None
    return round(float(match.group(1)) * AGE_UNIT_YEARS[match.group(2).lower()], 4)


def _parse_date(raw: str | None) -> dt.date | None:
    if not raw:
        return None
    for fmt in ("%Y-%m-%d", "%Y-%m", "%B %d, %Y", "%B %Y"):
        try:
            return dt.datetime.strptime(raw.strip(), fmt).date()
        except ValueError:
            continue
    return None


def _float(value: Any, low: float = -180.0, high: float = 180.0) -> float | None:
    """A finite coordinate in range, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and low <= number <= high else None


def _locations(protocol: dict[str, Any]) -> tuple[Location, ...]:
    items = _get(protocol, "contactsLocationsModule", "locations", expect=list) or []
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidRecord("contactsLocationsModule.locations: expected objects")
        geo = item.get("geoPoint") if isinstance(item.get("geoPoint"), dict) else {}
        out.append(Location(
            facility=_text(item, "facility"), city=_text(item, "city"), state=_text(item, "state"),
            country=_text(item, "country"), zip=_text(item, "zip"), status=_text(item, "status"),
            lat=_float(geo.get("lat"), -90, 90), lon=_float(geo.get("lon")),
        ))
    return tuple(out)


def _interventions(protocol: dict[str, Any]) -> tuple[Intervention, ...]:
    items = _get(protocol, "armsInterventionsModule", "interventions", expect=list) or []
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidRecord("armsInterventionsModule.interventions: each needs a string name")
        out.append(Intervention(name=item["name"].strip(), type=_text(item, "type"),
                                other_names=_str_list(item, "otherNames")))
    return tuple(out)


def _healthy(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return {"yes": True, "true": True, "no": False, "false": False}.get(value.strip().lower())
    return None


def _status_module(protocol: dict[str, Any]) -> tuple[str | None, dt.date | None]:
    status = _text(protocol, "statusModule", "overallStatus")
    last = _text(protocol, "statusModule", "lastUpdatePostDateStruct", "date")
    last = last or _text(protocol, "statusModule", "lastUpdateSubmitDate")
    if status:
        status = status.upper().replace(",", "").replace(" ", "_")
        status = "UNKNOWN" if status == "UNKNOWN_STATUS" else status
    return status, _parse_date(last)


def _enrollment(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRecord("designModule.enrollmentInfo.count: not a finite number")
    if not 0 <= value <= MAX_INT:
        raise InvalidRecord("designModule.enrollmentInfo.count: out of range")
    return int(value)


def _check_encodable(obj: Any) -> None:
    """The raw record must be storable as strict JSON text (no NaN/Infinity, no lone surrogates)."""
    try:
        json.dumps(obj, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except ValueError as exc:
        raise InvalidRecord(f"not storable as JSON: {str(exc)[:80]}") from None
    except RecursionError:
        raise InvalidRecord("nested too deeply") from None


def parse_study(obj: Any) -> TrialRecord:
    """Validate one API v2 study object and return its :class:`TrialRecord`.

    Raises :class:`InvalidRecord` with a reason when the object cannot be stored.
    Criteria are not split here (see ``nlp.criteria``).
    """
    if not isinstance(obj, dict):
        raise InvalidRecord(f"expected a study object, got {type(obj).__name__}")
    _check_encodable(obj)
    protocol = _get(obj, "protocolSection", expect=dict)
    if protocol is None:
        raise InvalidRecord("missing protocolSection")
    nct_id = _text(protocol, "identificationModule", "nctId")
    if not nct_id:
        raise InvalidRecord("missing protocolSection.identificationModule.nctId")
    if not NCT_RE.match(nct_id):
        raise InvalidRecord(f"malformed NCT id {nct_id[:20]!r}")
    title = _text(protocol, "identificationModule", "briefTitle") or _text(
        protocol, "identificationModule", "officialTitle") or nct_id
    elig = _get(protocol, "eligibilityModule", expect=dict) or {}
    status, last_update = _status_module(protocol)
    enrollment = _enrollment(_get(protocol, "designModule", "enrollmentInfo", "count", expect=(int, float)))
    sex = _text(elig, "sex")
    return TrialRecord(
        nct_id=nct_id,
        title=title,
        official_title=_text(protocol, "identificationModule", "officialTitle"),
        brief_summary=_text(protocol, "descriptionModule", "briefSummary"),
        detailed_description=_text(protocol, "descriptionModule", "detailedDescription"),
        conditions=_str_list(protocol, "conditionsModule", "conditions"),
        keywords=_str_list(protocol, "conditionsModule", "keywords"),
        interventions=_interventions(protocol),
        phases=_str_list(protocol, "designModule", "phases"),
        study_type=(_text(protocol, "designModule", "studyType") or "").upper() or None,
        overall_status=status,
        minimum_age_years=parse_age(_text(elig, "minimumAge")),
        maximum_age_years=parse_age(_text(elig, "maximumAge")),
        minimum_age_raw=_text(elig, "minimumAge"),
        maximum_age_raw=_text(elig, "maximumAge"),
        sex=sex.upper() if sex and sex.upper() in ("ALL", "FEMALE", "MALE") else None,
        healthy_volunteers=_healthy(elig.get("healthyVolunteers")),
        enrollment=enrollment,
        last_update=last_update,
        locations=_locations(protocol),
        eligibility_text=_text(elig, "eligibilityCriteria") or "",
        raw=obj,
    )
