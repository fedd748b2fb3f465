"""MatchResult -> a FHIR R4 ``searchset`` Bundle of ResearchStudy (pure); errors -> an OperationOutcome.

Everything the JSON answer says and FHIR has no element for (the label, each criterion's verdict and reason,
the follow-up questions) travels in extensions under :data:`NS`; docs/fhir.md documents them.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.domain import CriterionVerdict, MatchResult, Question, TrialMatch, TrialRecord

NS = "https://trialmatch.example.org/fhir/StructureDefinition"
EXT_LABEL = f"{NS}/match-label"
EXT_COHORT = f"{NS}/match-cohort"
EXT_RELEVANCE = f"{NS}/match-relevance"
EXT_CRITERION = f"{NS}/criterion-verdict"
EXT_QUESTION = f"{NS}/follow-up-question"
EXT_RELEVANT = f"{NS}/relevant-condition"
ERROR_SYSTEM = "https://trialmatch.example.org/fhir/CodeSystem/error-code"
CTGOV = "https://clinicaltrials.gov"
PHASE_SYSTEM = "http://terminology.hl7.org/CodeSystem/research-study-phase"

STATUS = {  # ClinicalTrials.gov overallStatus -> R4 ResearchStudy.status
    "RECRUITING": "active", "ENROLLING_BY_INVITATION": "active", "NOT_YET_RECRUITING": "approved",
    "ACTIVE_NOT_RECRUITING": "closed-to-accrual", "COMPLETED": "completed",
    "SUSPENDED": "temporarily-closed-to-accrual", "TERMINATED": "administratively-completed",
    "WITHDRAWN": "withdrawn", "WITHHELD": "withdrawn", "UNKNOWN": "in-review",
}
PHASE = {
    frozenset({"NA"}): "n-a", frozenset({"EARLY_PHASE1"}): "early-phase-1", frozenset({"PHASE1"}): "phase-1",
    frozenset({"PHASE1", "PHASE2"}): "phase-1-phase-2", frozenset({"PHASE2"}): "phase-2",
    frozenset({"PHASE2", "PHASE3"}): "phase-2-phase-3", frozenset({"PHASE3"}): "phase-3",
    frozenset({"PHASE4"}): "phase-4",
}
ISSUE_CODES = {400: "invalid", 413: "too-costly", 415: "not-supported", 404: "not-found", 429: "throttled"}


def _string(url: str, value: str) -> dict[str, Any]:
    return {"url": url, "valueString": value}


def _code(url: str, value: str) -> dict[str, Any]:
    return {"url": url, "valueCode": value}


def _criterion(v: CriterionVerdict) -> dict[str, Any]:
    parts = [_string("id", v.criterion_id), _code("kind", v.kind.value), _string("text", v.text[:4000]),
             _code("verdict", v.verdict.value), _string("reason", v.reason[:4000])]
    if v.missing:
        parts.append(_string("missing", v.missing))
    if v.cohort:
        parts.append(_string("cohort", v.cohort))
    parts.extend(_string("evidence", s.source or s.text) for s in v.evidence if (s.source or s.text))
    if v.assumed:
        parts.append({"url": "assumed", "valueBoolean": True})
    return {"url": EXT_CRITERION, "extension": parts}


def _question(q: Question) -> dict[str, Any]:
    parts = [_string("key", q.key), _string("text", q.text)]
    parts.extend(_string("criterion", c) for c in dict.fromkeys(q.criterion_ids))
    return {"url": EXT_QUESTION, "extension": parts}


def _location(i: int, loc: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Location", "id": f"site-{i}"}
    if loc.facility:
        out["name"] = loc.facility[:500]
    address = {k: v for k, v in (("city", loc.city), ("state", loc.state), ("postalCode", loc.zip),
                                 ("country", loc.country)) if v}
    if address:
        out["address"] = address
    if loc.lat is not None and loc.lon is not None:
        out["position"] = {"latitude": loc.lat, "longitude": loc.lon}
    return out


def research_study(m: TrialMatch, trial: TrialRecord | None) -> dict[str, Any]:
    """One ResearchStudy: registry facts from the trial record, the match in extensions."""
    study: dict[str, Any] = {
        "resourceType": "ResearchStudy", "id": m.nct_id,
        "identifier": [{"use": "official", "system": CTGOV, "value": m.nct_id}],
        "title": m.title or m.nct_id,
        "status": STATUS.get((m.overall_status or "UNKNOWN").upper(), "in-review"),
    }
    phase = PHASE.get(frozenset(m.phases))
    if phase:
        study["phase"] = {"coding": [{"system": PHASE_SYSTEM, "code": phase}], "text": ", ".join(m.phases)}
    if trial is not None:
        if trial.conditions:
            study["condition"] = [{"text": c} for c in trial.conditions]
        sites = [loc for loc in trial.locations if loc.facility or loc.city or loc.country][:100]
        if sites:
            study["contained"] = [_location(i, loc) for i, loc in enumerate(sites, 1)]
            study["site"] = [{"reference": f"#site-{i}"} for i in range(1, len(sites) + 1)]
        if trial.brief_summary:
            study["description"] = trial.brief_summary[:10_000]
    extensions = [_code(EXT_LABEL, m.label.value), {"url": EXT_RELEVANCE, "valueDecimal": round(m.relevance, 4)}]
    if m.cohort:
        extensions.append(_string(EXT_COHORT, m.cohort))
    extensions.extend(_string(EXT_RELEVANT, c) for c in m.topical)
    extensions.extend(_criterion(v) for v in m.criteria)
    extensions.extend(_question(q) for q in m.questions)
    study["extension"] = extensions
    return study


def _outcome_entry(result: MatchResult) -> dict[str, Any] | None:
    """The notice and the questions of the whole result, as an OperationOutcome with search.mode outcome."""
    issues = []
    if result.notice:
        issues.append({"severity": "warning", "code": "informational", "diagnostics": result.notice})
    for q in result.questions:
        issues.append({"severity": "information", "code": "informational", "diagnostics": q.text,
                       "extension": [_question(q)]})
    if not issues:
        return None
    return {"resource": {"resourceType": "OperationOutcome", "issue": issues}, "search": {"mode": "outcome"}}


def match_bundle(result: MatchResult, trials: Mapping[str, TrialRecord], base_url: str = "") -> dict[str, Any]:
    """The searchset Bundle: one entry per match in rank order, ``search.score`` clamped to 0..1."""
    entries: list[dict[str, Any]] = []
    for m in result.matches:
        entry: dict[str, Any] = {"resource": research_study(m, trials.get(m.nct_id)),
                                 "search": {"mode": "match", "score": round(min(max(m.score, 0.0), 1.0), 4)}}
        if base_url:
            entry["fullUrl"] = f"{base_url.rstrip('/')}/ResearchStudy/{m.nct_id}"
        entries.append(entry)
    outcome = _outcome_entry(result)
    if outcome is not None:
        entries.append(outcome)
    return {"resourceType": "Bundle", "type": "searchset", "total": len(result.matches), "entry": entries}


def operation_outcome(code: str, message: str, status: int = 400) -> dict[str, Any]:
    """An error as FHIR: one issue, severity error, the stable project code in ``details``."""
    return {"resourceType": "OperationOutcome", "issue": [{
        "severity": "error", "code": ISSUE_CODES.get(status, "processing"), "diagnostics": message,
        "details": {"coding": [{"system": ERROR_SYSTEM, "code": code}], "text": message}}]}
