"""FHIR routes: ``POST /api/v1/fhir/match`` and its alias ``POST /getClinicalTrial`` (the convention of the
open-source clinical-trial-matching-service). Parse, map, call the service, answer a FHIR Bundle; no matching
logic here. Errors raised by these views are answered as an OperationOutcome (same status, stable code in
``issue[0].details.coding[0].code``).
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Request, Response, current_app, json, request
from werkzeug.exceptions import HTTPException

from assistant.fhir import runtime_readers
from assistant.fhir.inbound import BundleError, bundle_to_profile, unwrap_request, validate_bundle
from assistant.fhir.outbound import match_bundle, operation_outcome
from assistant.web import schemas
from assistant.web.errors import HTTP_CODES, APIError
from models.domain import MatchResult

logger = logging.getLogger(__name__)
bp = Blueprint("fhir", __name__)
FHIR_JSON = "application/fhir+json"
ENDPOINTS = ("fhir.fhir_match", "fhir.get_clinical_trial")


def _runtime():  # type: ignore[no-untyped-def]
    return current_app.extensions["trialmatch"]


def fhir_response(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype=FHIR_JSON)


def wants_fhir(req: Request) -> bool:
    """``Accept`` names application/fhir+json, at least as high as application/json (``*/*`` alone: plain JSON)."""
    named = {}
    for mimetype, quality in req.accept_mimetypes:
        named[mimetype] = max(quality, named.get(mimetype, 0))
    return named.get(FHIR_JSON, 0) > 0 and named[FHIR_JSON] >= named.get("application/json", 0)


def result_bundle(runtime: Any, result: MatchResult) -> Response:
    """The searchset Bundle of a match result (trial records, for conditions and sites, from the snapshot)."""
    trials = runtime.snapshot().get_many([m.nct_id for m in result.matches]) if result.matches else {}
    return fhir_response(match_bundle(result, trials, base_url=request.host_url.rstrip("/") + "/api/v1/fhir"))


def _match():  # type: ignore[no-untyped-def]
    rt = _runtime()
    data = schemas.json_object(request) if request.get_data(cache=True) else None
    if data is None:
        raise BundleError("missing_bundle", "send a FHIR Bundle (or {\"patientData\": Bundle}) as the JSON body")
    bundle, options = unwrap_request(data)
    validate_bundle(bundle)
    top_k = schemas.parse_top_k(options.get("top_k"), int(rt.settings["TOP_K"]))
    filters = schemas.parse_filters(options.get("filters"), default_statuses=rt.settings["DEFAULT_STATUSES"])
    # the rim reads the clock; the mapping only sees the date handed to it
    profile = bundle_to_profile(bundle, runtime_readers(rt), reference_date=rt.clock())
    result = rt.match(profile, filters, top_k=top_k)
    return result_bundle(rt, result)


@bp.post("/api/v1/fhir/match")
def fhir_match():  # type: ignore[no-untyped-def]
    return _match()


@bp.post("/getClinicalTrial")
def get_clinical_trial():  # type: ignore[no-untyped-def]
    return _match()


@bp.errorhandler(BundleError)
def _bundle_error(exc: BundleError):  # type: ignore[no-untyped-def]
    return fhir_response(operation_outcome(exc.code, exc.message, 400), 400)


@bp.errorhandler(APIError)
def _api_error(exc: APIError):  # type: ignore[no-untyped-def]
    return fhir_response(operation_outcome(exc.code, exc.message, exc.status), exc.status)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
    status = exc.code or 500
    if status >= 500:
        raise exc
    return fhir_response(operation_outcome(HTTP_CODES.get(status, "http_error"), exc.description or "", status),
                         status)
