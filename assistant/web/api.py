"""Blueprint at /api/v1: parse, call the service, jsonify. No matching logic here.

Widget endpoints (match, trials, sessions, creating a referral) are public but
rate-limited; coordinator endpoints (listing, opening and updating referrals)
need an API key (``Authorization: Bearer tm_...`` or ``X-API-Key``).
"""
from __future__ import annotations

import datetime as dt
import logging
from functools import wraps
from typing import Any, Callable

from flask import Blueprint, current_app, g, jsonify, request

from assistant import chat, referrals, responses
from assistant.responses import (
    match_result_to_dict,
    match_to_dict,
    profile_to_dict,
)
from assistant.web import fhir, schemas
from assistant.web.errors import APIError
from models.repository import TrialNotFound, content_hash
from models.workflow import REFERRAL_STATUSES, NotFound, Principal, ReferralSnapshot, check_team

logger = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api/v1")

COORDINATOR_ENDPOINTS: set[str] = set()


def runtime():  # type: ignore[no-untyped-def]
    return current_app.extensions["trialmatch"]


def limiter():  # type: ignore[no-untyped-def]
    return current_app.extensions["trialmatch_limiter"]


def _presented_key() -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("X-API-Key", "")


def require_role(role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Coordinator routes: a valid key; admin routes: an admin key."""
    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        COORDINATOR_ENDPOINTS.add(f"api.{view.__name__}")

        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            key = _presented_key()
            principal = runtime().keys.authenticate(key) if key else None
            if principal is None:
                raise APIError("unauthenticated", "a valid API key is required", 401)
            if role == "admin" and principal.role != "admin":
                raise APIError("forbidden", "this action needs an admin key", 403)
            g.principal = principal
            return view(*args, **kwargs)

        wrapped.requires_auth = role  # type: ignore[attr-defined]
        return wrapped
    return decorator


@bp.before_request
def _check_query_strings():  # type: ignore[no-untyped-def]
    """Query parameters and path parts pass the same character checks as JSON bodies."""
    for key, value in request.args.items(multi=True):
        schemas.check_text(key, "query parameter name")
        schemas.check_text(value, f"query parameter {key}")
    for key, value in (request.view_args or {}).items():
        if isinstance(value, str):
            schemas.check_text(value, key)


# --------------------------------------------------------------------------- public


@bp.get("/health")
def health():  # type: ignore[no-untyped-def]
    """200 ``ok`` when matching works; 503 ``loading`` with progress during a first start; 503 ``degraded``
    when the database or the rate-limit store is unreachable."""
    rt = runtime()
    state = rt.load_state()
    try:
        trials = rt.repo.count()
        database = "ok"
    except Exception:  # noqa: BLE001 - health reports the failure instead of raising
        logger.exception("health: database check failed")
        trials, database = 0, "error"
    version = rt.current_version() if state.status == "ready" else None
    store = current_app.extensions.get("trialmatch_limit_store")
    limits = "ok" if store is None or store.healthy() else "error"
    ready = state.status == "ready" and database == "ok" and trials > 0 and limits == "ok"
    status = "ok" if ready else "loading" if state.status == "loading" and database == "ok" else "degraded"
    body = {"status": status, "database": database, "trials": trials,
            "index": "ready" if state.status == "ready" else "not_loaded", "corpus_version": version,
            "rate_limit": limits, "progress": {"done": state.done, "total": state.total}}
    return jsonify(body), 200 if ready else 503


@bp.post("/match")
def match():  # type: ignore[no-untyped-def]
    req = schemas.parse_match_request(request, runtime().settings)
    rt = runtime()
    result = rt.match(req.text, req.filters, top_k=req.top_k, deadline=rt.extraction_deadline())
    if fhir.wants_fhir(request):  # Accept: application/fhir+json -> a searchset Bundle of ResearchStudy
        return fhir.result_bundle(rt, result)
    return jsonify(match_result_to_dict(result))


@bp.get("/trials")
def list_trials():  # type: ignore[no-untyped-def]
    args = schemas.parse_trial_query(request.args)
    page = runtime().repo.list(q=args["q"], condition=args["condition"], statuses=args["status"],
                               page=args["page"], per_page=args["per_page"])
    return jsonify({"page": args["page"], "per_page": args["per_page"], "total": page.total,
                    "trials": [responses.trial_summary(t) for t in page.items]})


@bp.get("/trials/<nct_id>")
def get_trial(nct_id: str):  # type: ignore[no-untyped-def]
    nct_id = schemas.parse_nct_id(nct_id)
    try:
        trial = runtime().repo.get(nct_id)
    except TrialNotFound:
        raise APIError("trial_not_found", f"no trial {nct_id}", 404) from None
    return jsonify(responses.trial_detail(trial))


@bp.get("/openapi.json")
def openapi():  # type: ignore[no-untyped-def]
    from assistant.web.openapi import openapi_document

    return jsonify(openapi_document())


# --------------------------------------------------------------------------- chat sessions


def _ttl() -> dt.timedelta:
    return dt.timedelta(minutes=int(runtime().settings["SESSION_TTL_MINUTES"]))


def _session(session_id: str):  # type: ignore[no-untyped-def]
    if not schemas.SESSION_ID_RE.match(session_id):
        raise APIError("session_not_found", "unknown or expired session", 404)
    try:
        return runtime().sessions.get(session_id)
    except NotFound:
        raise APIError("session_not_found", "unknown or expired session", 404) from None


@bp.post("/sessions")
def create_session():  # type: ignore[no-untyped-def]
    schemas.optional_json_object(request)
    state = runtime().sessions.create(_ttl())
    return jsonify({"id": state.id, "expires_at": state.expires_at.isoformat() + "Z"}), 201


@bp.get("/sessions/<session_id>")
def get_session(session_id: str):  # type: ignore[no-untyped-def]
    state = _session(session_id)
    return jsonify({"id": state.id, "expires_at": state.expires_at.isoformat() + "Z",
                    "messages": list(state.messages), "pending_question": state.pending_question})


@bp.delete("/sessions/<session_id>")
def delete_session(session_id: str):  # type: ignore[no-untyped-def]
    _session(session_id)
    runtime().sessions.delete(session_id)
    return "", 204


@bp.post("/sessions/<session_id>/messages")
def post_message(session_id: str):  # type: ignore[no-untyped-def]
    state = _session(session_id)
    body = schemas.parse_message(request, runtime().settings)
    rt = runtime()
    total = sum(len(m["text"]) for m in state.messages if m.get("role") == "user") + len(body.text)
    if total > int(rt.settings["MAX_TEXT_CHARS"]) * 2:
        raise APIError("session_too_long", "this conversation is too long; please start a new session", 413)
    turn = rt.chat_turn(state, body.text, body.filters, top_k=body.top_k, deadline=rt.extraction_deadline())
    data = match_result_to_dict(turn.result)
    profile_data = chat.annotate_turns(data["profile"], list(turn.messages))  # each fact: which turn stated it
    return jsonify({"session_id": session_id, "reply": turn.reply, "profile": profile_data,
                    "matches": data["matches"], "questions": data["questions"], "next_question": turn.next_question,
                    "notice": data["notice"]})


# --------------------------------------------------------------------------- referrals


MAX_ID = 2**31 - 1


def _referral_id(referral_id: int) -> int:
    if referral_id > MAX_ID:
        raise APIError("referral_not_found", f"no referral {referral_id}", 404)
    return referral_id


def _actor() -> str:
    principal: Principal | None = getattr(g, "principal", None)
    return principal.name if principal else "widget"


def _scope() -> str | None:
    """The team the caller's key is limited to (None: an admin, every team)."""
    principal: Principal = g.principal
    return principal.scope


def referral_team_map(settings: dict[str, Any]) -> dict[str, str]:
    """NCT id -> team from ``REFERRAL_TEAMS`` (team -> list of NCT ids; its JSON and types are checked when the
    settings load). A trial listed under two teams is a configuration error: a referral belongs to one team.
    """
    out: dict[str, str] = {}
    for team, nct_ids in settings["REFERRAL_TEAMS"].items():
        team = check_team(team)
        for nct in nct_ids:
            nct = nct.strip().upper()
            if not schemas.NCT_RE.match(nct):
                raise ValueError(f"REFERRAL_TEAMS[{team!r}]: {nct!r} is not an NCT id")
            if out.get(nct, team) != team:
                raise ValueError(f"REFERRAL_TEAMS lists {nct} under both {out[nct]!r} and {team!r}")
            out[nct] = team
    return out


def default_team(settings: dict[str, Any]) -> str:
    return check_team(settings.get("DEFAULT_TEAM") or "default")


def referral_team(settings: dict[str, Any], nct_id: str) -> str:
    """The team a widget referral to ``nct_id`` belongs to: REFERRAL_TEAMS, else DEFAULT_TEAM."""
    return referral_team_map(settings).get(nct_id, default_team(settings))


@bp.record_once
def _check_team_settings(state) -> None:  # type: ignore[no-untyped-def]
    """A malformed team mapping stops the app at start, not at the first referral."""
    rt = state.app.extensions.get("trialmatch")
    if rt is not None:
        referral_team_map(rt.settings)
        default_team(rt.settings)


def _trials_changed(refs) -> dict[int, bool | None]:  # type: ignore[no-untyped-def]
    """Referral id -> has its trial's content changed since the referral was made (None: trial gone or no hash
    stored). One query for the whole page."""
    stored = runtime().repo.stored_state({r.nct_id for r in refs})
    out: dict[int, bool | None] = {}
    for r in refs:
        state = stored.get(r.nct_id)
        out[r.id] = None if state is None or r.trial_hash is None else state[0] != r.trial_hash
    return out


CONSENT_NOTE = "the patient consented to sharing the conversation and contact details with the study team"


@bp.post("/referrals")
def create_referral():  # type: ignore[no-untyped-def]
    """Public (widget) or a coordinator: a coordinator's referral belongs to the coordinator's team."""
    rt = runtime()
    key = _presented_key()
    if key:  # optional: a key that is presented must be valid (no silent fallback to the widget)
        principal = rt.keys.authenticate(key)
        if principal is None:
            raise APIError("unauthenticated", "the API key is not valid", 401)
        g.principal = principal
    body = schemas.parse_referral(request, rt.settings)
    text = body["text"]
    transcript: tuple[dict[str, Any], ...] = ()
    if body["session_id"]:
        state = _session(body["session_id"])
        # the questions with their answers ("Q: ... / A: ...") for the coordinator to read; the same turns are
        # stored as a structured transcript and re-read exactly as the chat read them
        text = chat.render_transcript(state.messages)
        transcript = referrals.chat_transcript(state.messages)
        if not chat.transcript_text(state.messages).strip():
            raise APIError("invalid_request", "the session has no patient description yet", 400)
    try:
        trial = rt.repo.get(body["nct_id"], with_raw=True)
    except TrialNotFound:
        raise APIError("trial_not_found", f"no trial {body['nct_id']}", 404) from None
    principal: Principal | None = getattr(g, "principal", None)
    team = principal.scope if principal is not None else None
    if team is None:  # the widget, or an admin (no team of their own)
        team = referral_team(rt.settings, body["nct_id"])
    profile, evaluation = rt.evaluate_referral(body["nct_id"], text, transcript, from_chat=bool(body["session_id"]))
    snapshot = ReferralSnapshot(trial.title, evaluation.label.value if evaluation is not None else None,
                                referrals.patient_summary(profile), transcript)
    ref = rt.referrals.create(body["nct_id"], text, body["contact_ref"], _actor(), session_id=body["session_id"],
                              trial_hash=content_hash(trial.raw), team=team, snapshot=snapshot,
                              note=CONSENT_NOTE if body["consent"] else None)
    return jsonify(responses.referral_to_dict(ref, trial_changed=False)), 201


@bp.get("/referrals")
@require_role("coordinator")
def list_referrals():  # type: ignore[no-untyped-def]
    args = schemas.parse_referral_query(request.args)
    items, total = runtime().referrals.list(**args, team=_scope())
    changed = _trials_changed(items)
    return jsonify({"total": total, "page": args["page"],
                    "referrals": [responses.referral_to_dict(r, trial_changed=changed[r.id]) for r in items]})


@bp.get("/referrals/<int:referral_id>")
@require_role("coordinator")
def get_referral(referral_id: int):  # type: ignore[no-untyped-def]
    referral_id = _referral_id(referral_id)
    rt = runtime()
    try:
        ref = rt.referrals.get(referral_id, team=_scope())  # another team's referral: 404, as if absent
    except NotFound:
        raise APIError("referral_not_found", f"no referral {referral_id}", 404) from None
    out = responses.referral_to_dict(ref, with_events=True, trial_changed=_trials_changed([ref])[ref.id])
    out["patient_text"] = ref.patient_text
    out["transcript"] = list(ref.snapshot.transcript) if ref.snapshot is not None else []
    profile, evaluation = rt.reevaluate(ref)  # against the current version of the trial
    out["profile"] = profile_to_dict(profile)
    if ref.snapshot is not None and ref.snapshot.transcript:  # each fact says which chat turn stated it
        out["profile"] = chat.annotate_turns(out["profile"], referrals.transcript_messages(ref.snapshot.transcript))
    out["evaluation"] = match_to_dict(evaluation) if evaluation is not None else None
    out["label_now"] = evaluation.label.value if evaluation is not None else None
    out["trial_title"] = out["trial_title"] or (evaluation.title if evaluation is not None else None)
    if out["patient_summary"] is None:
        out["patient_summary"] = referrals.patient_summary(profile)
    return jsonify(out)


@bp.patch("/referrals/<int:referral_id>")
@require_role("coordinator")
def update_referral(referral_id: int):  # type: ignore[no-untyped-def]
    referral_id = _referral_id(referral_id)
    body = schemas.parse_status_change(request)
    repo = runtime().referrals
    try:
        if body["status"] is None:  # a note alone: the status stays
            ref = repo.add_note(referral_id, _actor(), body["note"], team=_scope())
        else:
            ref = repo.change_status(referral_id, body["status"], _actor(), body["note"], team=_scope())
    except NotFound:
        raise APIError("referral_not_found", f"no referral {referral_id}", 404) from None
    return jsonify(responses.referral_to_dict(ref, with_events=True, trial_changed=_trials_changed([ref])[ref.id]))


@bp.delete("/referrals/<int:referral_id>")
@require_role("admin")
def delete_referral(referral_id: int):  # type: ignore[no-untyped-def]
    referral_id = _referral_id(referral_id)
    """Admin: erase a referral and its patient text (the audit trail goes with it)."""
    try:
        runtime().referrals.delete(referral_id)
    except NotFound:
        raise APIError("referral_not_found", f"no referral {referral_id}", 404) from None
    return "", 204


@bp.get("/referral-statuses")
def referral_statuses():  # type: ignore[no-untyped-def]
    return jsonify({"statuses": list(REFERRAL_STATUSES)})

