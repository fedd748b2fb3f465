"""The OpenAPI 3 document of /api/v1 (a test checks it matches the app's real routes)."""
from __future__ import annotations

from typing import Any

from assistant import __version__


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Invalid request", 401: "Missing or invalid API key", 403: "Forbidden", 404: "Not found",
            413: "Text too long", 414: "URL too long", 415: "Not JSON", 429: "Too many requests",
            431: "Header too large", 503: "Not ready, or the rate-limit store is unreachable"}
    return {str(c): _json(_ref("Error"), text[c]) for c in codes}


def _fhir(name: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/fhir+json": {"schema": _ref(name)}}}


def _fhir_errors(*codes: int) -> dict[str, Any]:
    text = {400: "Invalid Bundle or request (OperationOutcome)", 413: "Body too large", 415: "Not JSON"}
    return {str(c): _fhir("OperationOutcome", text[c]) for c in codes}


FHIR_EXAMPLE = {"patientData": {"resourceType": "Bundle", "type": "collection", "entry": [
    {"resource": {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1984-05-01"}},
    {"resource": {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
                  "code": {"coding": [{"system": "http://snomed.info/sct", "code": "55464009",
                                       "display": "Systemic lupus erythematosus"}]}}},
    {"resource": {"resourceType": "MedicationStatement", "id": "m1", "status": "stopped",
                  "subject": {"reference": "Patient/p1"}, "statusReason": [{"text": "treatment failure"}],
                  "medicationCodeableConcept": {"text": "mycophenolate mofetil"}}}]}, "top_k": 3}


def _fhir_match(operation_id: str, summary: str) -> dict[str, Any]:
    media = {"schema": _ref("FhirMatchRequest"), "example": FHIR_EXAMPLE}
    return {"post": {"operationId": operation_id, "summary": summary,
                     "requestBody": {"required": True, "content": {"application/fhir+json": media,
                                                                   "application/json": media}},
                     "responses": {"200": _fhir("SearchsetBundle"), **_fhir_errors(400, 413, 415),
                                   **_errors(429)}}}


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


SECURED = [{"ApiKey": []}, {"Bearer": []}]
NCT_PARAM = {"name": "nct_id", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^NCT[0-9]{8}$"}}
SESSION_PARAM = {"name": "session_id", "in": "path", "required": True,
                 "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{20,64}$"}}
REFERRAL_PARAM = {"name": "referral_id", "in": "path", "required": True,
                  "schema": {"type": "integer", "minimum": 1, "maximum": 2147483647}}
STATUS_ENUM = ["RECRUITING", "NOT_YET_RECRUITING", "ENROLLING_BY_INVITATION", "ACTIVE_NOT_RECRUITING", "COMPLETED",
               "SUSPENDED", "TERMINATED", "WITHDRAWN", "UNKNOWN", "ANY"]
REFERRAL_STATUS = ["new", "in_review", "contacted", "enrolled", "not_eligible"]
NULLABLE_STR = {"type": ["string", "null"]}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                       "request_id": {"type": "string"}}}}},
    "Filters": {"type": "object", "additionalProperties": False, "properties": {
        "status": {"oneOf": [{"type": "string", "enum": STATUS_ENUM},
                             {"type": "array", "maxItems": 20, "items": {"type": "string", "enum": STATUS_ENUM}}]},
        "phase": {"oneOf": [{"type": "string", "enum": ["EARLY_PHASE1", "PHASE1", "PHASE2", "PHASE3", "PHASE4", "NA"]},
                            {"type": "array", "maxItems": 20, "items": {"type": "string", "enum": [
                                "EARLY_PHASE1", "PHASE1", "PHASE2", "PHASE3", "PHASE4", "NA"]}}]},
        "country": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"\S"},
        "state": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"\S"},
        "city": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"\S"},
        "near": {"type": "object", "required": ["lat", "lon"], "additionalProperties": False, "properties": {
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "lon": {"type": "number", "minimum": -180, "maximum": 180},
            "radius_km": {"type": "number", "minimum": 0.1, "maximum": 20037}}}}},
    "MatchRequest": {"type": "object", "required": ["text"], "additionalProperties": False, "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 20000, "pattern": r"\S"},
        "top_k": {"type": "integer", "minimum": 1, "maximum": 50},
        "filters": _ref("Filters")}},
    "Evidence": {"type": "object", "required": ["start", "end", "text"], "properties": {
        "start": {"type": "integer"}, "end": {"type": "integer"}, "text": {"type": "string"},
        "source": {"type": "string", "description": "the FHIR resource a coded fact came from (Condition/abc)"}}},
    "FhirBundle": {"type": "object", "required": ["resourceType"], "description": "A FHIR R4 Bundle "
                   "(transaction, collection or searchset) of Patient, Condition, Observation, Procedure and "
                   "Medication* resources; see docs/fhir.md",
                   "properties": {"resourceType": {"type": "string", "const": "Bundle"},
                                  "type": {"type": "string", "enum": ["transaction", "collection", "searchset"]},
                                  "entry": {"type": "array", "maxItems": 1000, "items": {"type": "object"}}}},
    "FhirMatchRequest": {"oneOf": [
        {"$ref": "#/components/schemas/FhirBundle"},
        {"type": "object", "required": ["patientData"], "additionalProperties": False, "properties": {
            "patientData": {"$ref": "#/components/schemas/FhirBundle"},
            "top_k": {"type": "integer", "minimum": 1, "maximum": 50},
            "filters": {"$ref": "#/components/schemas/Filters"}}}]},
    "SearchsetBundle": {"type": "object", "required": ["resourceType", "type", "entry"], "properties": {
        "resourceType": {"const": "Bundle"}, "type": {"const": "searchset"}, "total": {"type": "integer"},
        "entry": {"type": "array", "items": {"type": "object", "required": ["resource", "search"]}}}},
    "OperationOutcome": {"type": "object", "required": ["resourceType", "issue"], "properties": {
        "resourceType": {"const": "OperationOutcome"}, "issue": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["severity", "code"]}}}},
    "Criterion": {"type": "object", "required": ["kind", "text", "verdict", "reason", "evidence"], "properties": {
        "id": {"type": "string"}, "kind": {"type": "string", "enum": ["inclusion", "exclusion"]},
        "text": {"type": "string"},
        "verdict": {"type": "string", "enum": ["met", "not_met", "unknown", "not_applicable"]},
        "reason": {"type": "string"}, "evidence": {"type": "array", "items": _ref("Evidence")},
        "missing": NULLABLE_STR, "cohort": NULLABLE_STR}},
    "Question": {"type": "object", "required": ["key", "text"], "properties": {
        "key": {"type": "string"}, "text": {"type": "string"},
        "criteria": {"type": "array", "items": {"type": "string"}},
        "trials": {"type": "array", "items": {"type": "string"}}, "weight": {"type": "number"}}},
    "Match": {"type": "object", "required": ["nct_id", "title", "score", "label", "criteria", "questions"],
              "properties": {
                  "nct_id": {"type": "string"}, "title": {"type": "string"}, "score": {"type": "number"},
                  "relevance": {"type": "number"},
                  "label": {"type": "string", "enum": ["eligible", "possibly_eligible", "ineligible"]},
                  "overall_status": NULLABLE_STR, "phases": {"type": "array", "items": {"type": "string"}},
                  "cohort": NULLABLE_STR, "nearest_site_km": {"type": ["number", "null"]},
                  "nearest_site": NULLABLE_STR,
                  "criteria": {"type": "array", "items": _ref("Criterion")},
                  "questions": {"type": "array", "items": _ref("Question")},
                  "relevant_conditions": {"type": "array", "items": {"type": "string"}}}},
    "MatchResult": {"type": "object", "required": ["profile", "matches", "questions"], "properties": {
        "profile": {"type": "object"}, "matches": {"type": "array", "items": _ref("Match")},
        "questions": {"type": "array", "items": _ref("Question")}, "notice": NULLABLE_STR}},
    "TrialSummary": {"type": "object", "required": ["nct_id", "title"], "properties": {
        "nct_id": {"type": "string"}, "title": {"type": "string"}, "overall_status": NULLABLE_STR}},
    "TrialPage": {"type": "object", "required": ["total", "trials"], "properties": {
        "page": {"type": "integer"}, "per_page": {"type": "integer"}, "total": {"type": "integer"},
        "trials": {"type": "array", "items": _ref("TrialSummary")}}},
    "TrialDetail": {"type": "object", "required": ["nct_id", "title", "criteria"], "properties": {
        "nct_id": {"type": "string"}, "title": {"type": "string"}, "criteria": {"type": "array", "items": {
            "type": "object", "required": ["kind", "text"]}}}},
    "Session": {"type": "object", "required": ["id", "expires_at"], "properties": {
        "id": {"type": "string"}, "expires_at": {"type": "string"}}},
    "MessageRequest": {"type": "object", "required": ["text"], "additionalProperties": False, "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 20000, "pattern": r"\S"},
        "top_k": {"type": "integer", "minimum": 1, "maximum": 50}, "filters": _ref("Filters")}},
    "Reply": {"type": "object", "required": ["session_id", "reply", "profile", "matches", "next_question"],
              "properties": {"session_id": {"type": "string"}, "reply": {"type": "string"},
                             "profile": {"type": "object"}, "matches": {"type": "array", "items": _ref("Match")},
                             "questions": {"type": "array", "items": _ref("Question")},
                             "next_question": {"oneOf": [_ref("Question"), {"type": "null"}]},
                             "notice": {"type": ["string", "null"]}}},
    "ReferralRequest": {"type": "object", "required": ["nct_id", "contact_ref"], "additionalProperties": False,
                        "properties": {
                            "nct_id": {"type": "string", "pattern": "^NCT[0-9]{8}$"},
                            "text": {"type": "string", "minLength": 1, "maxLength": 20000, "pattern": r"\S"},
                            "session_id": {"type": "string"},
                            "contact_ref": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S"},
                            "consent": {"type": "boolean", "enum": [True], "description": "the patient agreed to "
                                        "share the conversation and contact (recorded in the audit trail)"}}},
    "Referral": {"type": "object", "required": ["id", "nct_id", "status"], "properties": {
        "id": {"type": "integer"}, "nct_id": {"type": "string"},
        "team": {"type": "string", "description": "the site team that sees it (coordinator keys see only their team)"},
        "status": {"type": "string", "enum": REFERRAL_STATUS}, "needs_review": {"type": "boolean"},
        "trial_title": {**NULLABLE_STR, "description": "the trial's title when the referral was made"},
        "label_at_creation": {**NULLABLE_STR, "description": "the trial's label for the patient when referred"},
        "label_now": {**NULLABLE_STR, "description": "list: the label at creation while the trial is unchanged, "
                      "null after a change; detail: re-computed against the current trial"},
        "trial_changed": {"type": ["boolean", "null"],
                          "description": "the trial's record changed since the referral (null: unknown)"},
        "patient_summary": {**NULLABLE_STR, "description": "age, sex and main conditions from the extracted "
                            "profile (never the patient's words)"},
        "transcript": {"type": "array", "description": "detail only: the chat's messages with the question "
                       "pending when each was written",
                       "items": {"type": "object", "properties": {"question": NULLABLE_STR,
                                                                  "question_key": NULLABLE_STR,
                                                                  "answer": {"type": "string"}}}},
        "audit": {"type": "array", "items": {"type": "object"}}}},
    "ReferralPage": {"type": "object", "required": ["total", "referrals"], "properties": {
        "total": {"type": "integer"}, "page": {"type": "integer"},
        "referrals": {"type": "array", "items": _ref("Referral")}}},
    "StatusChange": {"type": "object", "additionalProperties": False, "minProperties": 1,
                     "description": "a status, a note, or both (a note alone leaves the status as it is)",
                     "properties": {"status": {"type": "string", "enum": REFERRAL_STATUS},
                                    "note": {"type": "string", "maxLength": 2000, "pattern": r"\S"}}},
    "PlaceList": {"type": "object", "required": ["places"], "properties": {"places": {"type": "array", "items": {
        "type": "object", "required": ["city", "lat", "lon", "sites"], "properties": {
            "city": {"type": "string"}, "state": NULLABLE_STR, "country": NULLABLE_STR,
            "lat": {"type": "number"}, "lon": {"type": "number"}, "sites": {"type": "integer"}}}}}},
    "Health": {"type": "object", "required": ["status", "database", "trials"], "properties": {
        "status": {"type": "string"}, "database": {"type": "string"}, "trials": {"type": "integer"},
        "index": {"type": "string"}, "corpus_version": NULLABLE_STR}},
}


def openapi_document() -> dict[str, Any]:
    q = {"in": "query", "required": False}
    paths: dict[str, Any] = {
        "/api/v1/health": {"get": {"operationId": "health", "summary": "Database and index readiness",
                                   "responses": {"200": _json(_ref("Health")), "503": _json(_ref("Health"), "Not ready")}}},
        "/api/v1/openapi.json": {"get": {"operationId": "openapi", "summary": "This document",
                                         "responses": {"200": _json({"type": "object"})}}},
        "/api/v1/match": {"post": {"operationId": "match", "summary": "Match a patient description",
                                   "requestBody": _body("MatchRequest"),
                                   "responses": {"200": {**_json(_ref("MatchResult")), "content": {
                                       "application/json": {"schema": _ref("MatchResult")},
                                       "application/fhir+json": {"schema": _ref("SearchsetBundle")}},
                                       "description": "OK (a searchset Bundle with Accept: application/fhir+json)"},
                                       **_errors(400, 413, 415, 429)}}},
        "/api/v1/fhir/match": _fhir_match("fhirMatch", "Match a FHIR R4 patient Bundle; answers a searchset "
                                                       "Bundle of ResearchStudy"),
        "/getClinicalTrial": _fhir_match("getClinicalTrial", "Alias of /api/v1/fhir/match (the "
                                                             "clinical-trial-matching-service convention)"),
        "/api/v1/trials": {"get": {"operationId": "listTrials", "summary": "List trials", "parameters": [
            {"name": "q", **q, "schema": {"type": "string", "maxLength": 200}},
            {"name": "condition", **q, "schema": {"type": "string", "maxLength": 200}},
            {"name": "status", **q, "schema": {"type": "string", "enum": STATUS_ENUM[:-1]}},
            {"name": "page", **q, "schema": {"type": "integer", "minimum": 1, "maximum": 100000}},
            {"name": "per_page", **q, "schema": {"type": "integer", "minimum": 1, "maximum": 100}}],
            "responses": {"200": _json(_ref("TrialPage")), **_errors(400, 429)}}},
        "/api/v1/trials/{nct_id}": {"get": {"operationId": "getTrial", "summary": "A trial with parsed criteria",
                                            "parameters": [NCT_PARAM],
                                            "responses": {"200": _json(_ref("TrialDetail")), **_errors(400, 404, 429)}}},
        "/api/v1/sessions": {"post": {"operationId": "createSession", "summary": "Start a chat session",
                                      "responses": {"201": _json(_ref("Session"), "Created"), **_errors(400, 415, 429)}}},
        "/api/v1/sessions/{session_id}": {
            "get": {"operationId": "getSession", "parameters": [SESSION_PARAM],
                    "responses": {"200": _json(_ref("Session")), **_errors(404, 429)}},
            "delete": {"operationId": "deleteSession", "summary": "Delete the session and its data",
                       "parameters": [SESSION_PARAM],
                       "responses": {"204": {"description": "Deleted"}, **_errors(404, 429)}}},
        "/api/v1/sessions/{session_id}/messages": {"post": {
            "operationId": "postMessage", "summary": "Send a message; get the reply, matches and next question",
            "parameters": [SESSION_PARAM], "requestBody": _body("MessageRequest"),
            "responses": {"200": _json(_ref("Reply")), **_errors(400, 404, 413, 415, 429)}}},
        "/api/v1/referrals": {
            "post": {"operationId": "createReferral",
                     "summary": "Refer a patient to a trial (widget: team from REFERRAL_TEAMS; a coordinator key: its team)",
                     "security": [{}, *SECURED], "requestBody": _body("ReferralRequest"),
                     "responses": {"201": _json(_ref("Referral"), "Created"),
                                   **_errors(400, 401, 404, 413, 415, 429)}},
            "get": {"operationId": "listReferrals",
                    "summary": "Coordinator: list referrals (the key's team; admin keys: every team)", "security": SECURED,
                    "parameters": [
                        {"name": "nct_id", **q, "schema": {"type": "string", "pattern": "^NCT[0-9]{8}$"}},
                        {"name": "status", **q, "schema": {"type": "string", "enum": REFERRAL_STATUS}},
                        {"name": "since", **q, "schema": {"type": "string", "format": "date"}},
                        {"name": "until", **q, "schema": {"type": "string", "format": "date"}},
                        {"name": "page", **q, "schema": {"type": "integer", "minimum": 1, "maximum": 100000}},
                        {"name": "per_page", **q, "schema": {"type": "integer", "minimum": 1, "maximum": 200}}],
                    "responses": {"200": _json(_ref("ReferralPage")), **_errors(400, 401)}}},
        "/api/v1/referrals/{referral_id}": {
            "get": {"operationId": "getReferral",
                    "summary": "Coordinator: a referral with re-computed verdicts (another team's: 404)",
                    "security": SECURED, "parameters": [REFERRAL_PARAM],
                    "responses": {"200": _json(_ref("Referral")), **_errors(401, 404)}},
            "patch": {"operationId": "updateReferral",
                      "summary": "Coordinator: change status (audited; another team's: 404)",
                      "security": SECURED, "parameters": [REFERRAL_PARAM], "requestBody": _body("StatusChange"),
                      "responses": {"200": _json(_ref("Referral")), **_errors(400, 401, 404, 415)}},
            "delete": {"operationId": "deleteReferral", "summary": "Admin: erase a referral and its patient text",
                       "security": SECURED, "parameters": [REFERRAL_PARAM],
                       "responses": {"204": {"description": "Deleted"}, **_errors(401, 403, 404)}}},
        "/api/v1/places": {"get": {
            "operationId": "findPlaces", "summary": "Towns with trial sites whose name starts with q (offline lookup)",
            "parameters": [{"name": "q", "in": "query", "required": True,
                            "schema": {"type": "string", "minLength": 2, "maxLength": 100, "pattern": r"\S"}}],
            "responses": {"200": _json(_ref("PlaceList")), **_errors(400, 429)}}},
        "/api/v1/referral-statuses": {"get": {"operationId": "referralStatuses", "summary": "Referral statuses",
                                              "responses": {"200": _json({"type": "object"})}}},
    }
    edge = _errors(400, 414, 431)  # checked at the edge for every route: characters, URL and header sizes
    limited = _errors(503)  # rate-limited routes fail closed when the limit store is down
    for operations in paths.values():
        for operation in operations.values():
            responses = operation["responses"]
            for code, response in edge.items():
                responses.setdefault(code, response)
            if "429" in responses:
                responses.setdefault("503", limited["503"])
    return {
        "openapi": "3.1.0",
        "info": {"title": "trialmatch API", "version": __version__,
                 "description": "Match patients to clinical trials with reasons per criterion."},
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "Bearer": {"type": "http", "scheme": "bearer"}}},
    }
