"""Request validation (type, non-empty, size caps) -> typed values; raises APIError with stable codes."""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import Request

from assistant.matching.filters import FilterError, Filters, parse_statuses
from assistant.matching.filters import parse_filters as filters_from_dict
from assistant.web.errors import APIError
from models.workflow import REFERRAL_STATUSES


def bad_filter(message: str) -> APIError:
    return APIError("invalid_filter", message, 400)


def parse_filters(raw: Any, default_statuses: Sequence[str] = ()) -> Filters:
    """:func:`assistant.matching.filters.parse_filters`, its errors as 400 ``invalid_filter``."""
    try:
        return filters_from_dict(raw, default_statuses)
    except FilterError as exc:
        raise bad_filter(str(exc)) from None


# --------------------------------------------------------------------------- requests




NCT_RE = re.compile(r"^NCT\d{8}$")
SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
MAX_TOP_K = 50


@dataclass(frozen=True, slots=True)
class MatchRequest:
    text: str
    top_k: int
    filters: Filters


MAX_JSON_DEPTH = 16  # the deepest valid request (filters.near) is 3 levels


def json_depth(raw: bytes) -> int:
    """Deepest nesting of objects/arrays in a JSON text (strings skipped), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def check_text(value: str, where: str) -> str:
    """Every string that reaches the service: no NUL, no lone surrogate (the databases cannot store them)."""
    if "\x00" in value:
        raise APIError("invalid_characters", f"{where} contains a NUL character", 400)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise APIError("invalid_characters", f"{where} contains an invalid Unicode character", 400) from None
    return value


def check_strings(value: Any, where: str = "body") -> None:
    """Walk a decoded JSON value and check every string, keys included."""
    if isinstance(value, str):
        check_text(value, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(str(key), f"{where} key")
            check_strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_strings(item, f"{where}[{i}]")


def request_body(request: Request) -> bytes:
    """The raw body. A body without Content-Length (chunked) is cut by Werkzeug at MAX_CONTENT_LENGTH without an
    error; one that fills the limit is refused as too large instead of being read as truncated JSON."""
    data = request.get_data(cache=True)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        raise APIError("payload_too_large", f"the request body is larger than {limit} bytes", 413)
    return data


def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a clear error (never a RecursionError or an unstorable string)."""
    if not request.is_json:
        raise APIError("unsupported_media_type", "send a JSON body with Content-Type: application/json", 415)
    if json_depth(request_body(request)) > MAX_JSON_DEPTH:
        raise APIError("nesting_too_deep", f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels", 400)
    data = request.get_json(silent=True)
    if data is None:
        raise APIError("malformed_json", "the request body is not valid JSON", 400)
    if not isinstance(data, dict):
        raise APIError("invalid_request", "the JSON body must be an object", 400)
    check_strings(data)
    return data


def optional_json_object(request: Request) -> dict[str, Any]:
    if not request_body(request):
        return {}
    return json_object(request)


def parse_text(value: Any, settings: dict[str, Any], field: str = "text") -> str:
    if value is None:
        raise APIError("missing_text", f"'{field}' is required", 400)
    if not isinstance(value, str):
        raise APIError("invalid_type", f"'{field}' must be a string", 400)
    if not value.strip():
        raise APIError("empty_text", f"'{field}' must not be empty", 400)
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        raise APIError("invalid_text", f"'{field}' contains invalid Unicode (a lone surrogate)", 400)
    cap = int(settings["MAX_TEXT_CHARS"])
    if len(value) > cap:
        raise APIError("text_too_long", f"'{field}' has {len(value)} characters; the limit is {cap}", 413)
    return value


def parse_top_k(value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOP_K:
        raise APIError("invalid_type", f"'top_k' must be an integer from 1 to {MAX_TOP_K}", 400)
    return value


def _check_keys(data: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise APIError("invalid_request", f"unknown field(s): {', '.join(sorted(unknown))}", 400)


def parse_match_request(request: Request, settings: dict[str, Any]) -> MatchRequest:
    data = json_object(request)
    _check_keys(data, {"text", "top_k", "filters"})
    return MatchRequest(parse_text(data.get("text"), settings), parse_top_k(data.get("top_k"), int(settings["TOP_K"])),
                        parse_filters(data.get("filters"), default_statuses=settings["DEFAULT_STATUSES"]))


def parse_message(request: Request, settings: dict[str, Any]) -> MatchRequest:
    return parse_match_request(request, settings)


def parse_nct_id(value: str) -> str:
    value = value.strip().upper()
    if not NCT_RE.match(value):
        raise APIError("invalid_nct_id", "an NCT id looks like NCT01234567", 400)
    return value


def _int_arg(args: Any, name: str, default: int, low: int, high: int) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise APIError("invalid_type", f"'{name}' must be an integer", 400) from None
    if not low <= value <= high:
        raise APIError("invalid_type", f"'{name}' must be from {low} to {high}", 400)
    return value


def parse_trial_query(args: Any) -> dict[str, Any]:
    q = args.get("q") or None
    condition = args.get("condition") or None
    for name, value in (("q", q), ("condition", condition)):
        if value is not None and len(value) > 200:
            raise APIError("invalid_request", f"'{name}' is too long", 400)
    statuses = [s for raw in args.getlist("status") for s in raw.split(",") if s.strip()]
    try:
        statuses = parse_statuses(statuses) if statuses else []
    except FilterError as exc:
        raise bad_filter(str(exc)) from None
    return {"q": q, "condition": condition, "status": statuses, "page": _int_arg(args, "page", 1, 1, 100_000),
            "per_page": _int_arg(args, "per_page", 20, 1, 100)}


def parse_referral(request: Request, settings: dict[str, Any]) -> dict[str, Any]:
    data = json_object(request)
    _check_keys(data, {"nct_id", "text", "session_id", "contact_ref", "consent"})
    consent = data.get("consent")
    if consent is not None and consent is not True:
        raise APIError("consent_required", "'consent' must be true: a referral is sent only with consent", 400)
    nct = data.get("nct_id")
    if not isinstance(nct, str):
        raise APIError("invalid_type", "'nct_id' must be a string", 400)
    contact = data.get("contact_ref")
    if not isinstance(contact, str) or not contact.strip() or len(contact) > 200:
        raise APIError("invalid_type", "'contact_ref' must be a non-empty string of at most 200 characters", 400)
    session_id = data.get("session_id")
    text = data.get("text")
    if session_id is None and text is None:
        raise APIError("missing_text", "give either 'text' or 'session_id'", 400)
    if session_id is not None and not isinstance(session_id, str):
        raise APIError("invalid_type", "'session_id' must be a string", 400)
    return {"nct_id": parse_nct_id(nct), "contact_ref": contact.strip(), "session_id": session_id,
            "text": parse_text(text, settings) if text is not None else "", "consent": consent is True}


def parse_referral_query(args: Any) -> dict[str, Any]:
    status = args.get("status")
    if status is not None and status not in REFERRAL_STATUSES:
        raise APIError("invalid_filter", f"status must be one of {', '.join(REFERRAL_STATUSES)}", 400)
    nct = args.get("nct_id")
    out: dict[str, Any] = {"nct_id": parse_nct_id(nct) if nct else None, "status": status,
                           "page": _int_arg(args, "page", 1, 1, 100_000), "per_page": _int_arg(args, "per_page", 50, 1, 200)}
    for name in ("since", "until"):
        raw = args.get(name)
        if raw:
            try:
                out[name] = dt.datetime.fromisoformat(raw.replace("Z", ""))
            except ValueError:
                raise APIError("invalid_filter", f"'{name}' must be an ISO date", 400) from None
    return out


def parse_status_change(request: Request) -> dict[str, Any]:
    """``status``, ``note`` or both: a note alone is added to the audit trail without changing the status."""
    data = json_object(request)
    _check_keys(data, {"status", "note"})
    status = data.get("status")
    note = data.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 2000):
        raise APIError("invalid_type", "'note' must be a string of at most 2000 characters", 400)
    if status is None:
        if note is None or not note.strip():
            raise APIError("invalid_request", "give a 'status', a non-empty 'note', or both", 400)
        return {"status": None, "note": note.strip()}
    if status not in REFERRAL_STATUSES:
        raise APIError("invalid_status", f"status must be one of {', '.join(REFERRAL_STATUSES)}", 400)
    return {"status": status, "note": note}
