"""Response shaping: domain values -> the JSON documents every interface answers with.

The HTTP API, the CLI (``--json`` and text), the MCP tools and the chat all shape their answers here, so a
match, a profile or a trial reads the same wherever it comes from. (FHIR has its own vocabulary:
:mod:`assistant.fhir.outbound`.)
"""
from __future__ import annotations

from typing import Any

from models.domain import MatchResult, PatientProfile, Question, TrialMatch, TrialRecord
from models.workflow import ReferralRecord


def _span_dict(span: Any) -> dict[str, Any] | None:
    return span.to_dict() if span is not None else None


def profile_to_dict(profile: PatientProfile) -> dict[str, Any]:
    def ctx(c: Any) -> dict[str, bool]:
        return {k: getattr(c, k) for k in ("negated", "historical", "family", "hypothetical", "uncertain")}

    return {
        "age": profile.age_years,
        "age_range": [profile.age_low, profile.age_high] if profile.age_low is not None else None,
        "age_evidence": _span_dict(profile.age_span),
        "sex": profile.sex,
        "sex_evidence": _span_dict(profile.sex_span),
        "conditions": [{"concept": f.concept, "category": f.category, "code": f.code, "qualifier": f.qualifier,
                        "days_ago": f.days_ago, **ctx(f.context), "evidence": f.span.to_dict()}
                       for f in profile.conditions],
        "labs": [{"name": f.name, "value": f.value, "value_high": f.value_high, "unit": f.unit,
                  "comparator": f.comparator.value, "normalized_value": f.normalized_value,
                  "normalized_unit": f.normalized_unit, "polarity": f.polarity, "negated": f.context.negated,
                  "evidence": f.span.to_dict()} for f in profile.labs],
        "therapies": [{"name": t.name, "classes": list(t.classes), "response": t.response, "status": t.status,
                       "prednisone_eq_mg_day": t.prednisone_eq_mg_day, "days_ago": t.days_ago,
                       **ctx(t.context), "evidence": t.span.to_dict()} for t in profile.therapies],
        "therapy_counts": [{"class": c.drug_class, "count": c.count, "response": c.response,
                            "evidence": c.span.to_dict()} for c in profile.therapy_counts],
    }


def question_to_dict(q: Question) -> dict[str, Any]:
    return {"key": q.key, "text": q.text, "criteria": list(q.criterion_ids), "trials": list(dict.fromkeys(q.nct_ids)),
            "weight": q.weight}


def match_to_dict(m: TrialMatch) -> dict[str, Any]:
    return {
        "nct_id": m.nct_id, "title": m.title, "score": m.score, "relevance": m.relevance, "label": m.label.value,
        "overall_status": m.overall_status, "phases": list(m.phases), "cohort": m.cohort,
        "nearest_site_km": m.nearest_site_km, "nearest_site": m.nearest_site,
        "criteria": [{"id": v.criterion_id, "kind": v.kind.value, "text": v.text, "verdict": v.verdict.value,
                      "reason": v.reason, "evidence": [s.to_dict() for s in v.evidence], "missing": v.missing,
                      "cohort": v.cohort} for v in m.criteria],
        "questions": [question_to_dict(q) for q in m.questions],
        "relevant_conditions": list(m.topical),
    }


def match_result_to_dict(result: MatchResult) -> dict[str, Any]:
    return {"profile": profile_to_dict(result.profile), "matches": [match_to_dict(m) for m in result.matches],
            "questions": [question_to_dict(q) for q in result.questions], "notice": result.notice}


def format_result_text(data: dict[str, Any]) -> str:
    lines = [data["notice"], ""] if data.get("notice") else []
    for i, m in enumerate(data["matches"], 1):
        lines.append(f"{i:>2}. {m['nct_id']}  [{m['label']}]  score {m['score']:.3f}  {m['title'][:80]}")
        for c in m["criteria"]:
            if c["verdict"] in ("not_met", "met") and (c["kind"] == "exclusion") == (c["verdict"] == "met"):
                lines.append(f"      why not: {c['reason'][:200]}")
    if data["questions"]:
        lines.append("")
        lines.append("Follow-up questions:")
        lines.extend(f"  - {q['text']}" for q in data["questions"])
    return "\n".join(lines)


def trial_summary(t: TrialRecord) -> dict[str, Any]:
    return {"nct_id": t.nct_id, "title": t.title, "overall_status": t.overall_status, "phases": list(t.phases),
            "conditions": list(t.conditions), "minimum_age": t.minimum_age_raw, "maximum_age": t.maximum_age_raw,
            "sex": t.sex}


def trial_detail(t: TrialRecord) -> dict[str, Any]:
    return {**trial_summary(t), "official_title": t.official_title, "brief_summary": t.brief_summary,
            "keywords": list(t.keywords), "study_type": t.study_type, "enrollment": t.enrollment,
            "healthy_volunteers": t.healthy_volunteers,
            "last_update": t.last_update.isoformat() if t.last_update else None,
            "interventions": [{"name": i.name, "type": i.type, "other_names": list(i.other_names)}
                              for i in t.interventions],
            "locations": [{"facility": l.facility, "city": l.city, "state": l.state, "country": l.country,
                           "zip": l.zip, "status": l.status, "lat": l.lat, "lon": l.lon} for l in t.locations],
            "criteria": [{"id": t.criterion_id(c), "kind": c.kind.value, "position": c.position, "parent": c.parent,
                          "depth": c.depth, "cohort": c.cohort, "heading": c.heading, "text": c.text,
                          "parsed": c.parsed is not None and c.parsed.parsed} for c in t.criteria]}


def referral_to_dict(ref: ReferralRecord, with_events: bool = False,
                     trial_changed: bool | None = None) -> dict[str, Any]:
    """A referral as JSON. ``label_now`` here is the label at creation while the trial is unchanged (same profile,
    same trial: matching is not re-run per row); after a change it is null until the referral is opened."""
    snap = ref.snapshot
    label = snap.label if snap is not None else None
    out = {"id": ref.id, "nct_id": ref.nct_id, "session_id": ref.session_id, "contact_ref": ref.contact_ref,
           "team": ref.team,
           "status": ref.status, "needs_review": ref.needs_review, "created_at": ref.created_at.isoformat() + "Z",
           "updated_at": ref.updated_at.isoformat() + "Z",
           "trial_title": snap.trial_title if snap is not None else None,
           "label_at_creation": label,
           "label_now": label if trial_changed is False else None,
           "trial_changed": trial_changed,
           "patient_summary": snap.patient_summary if snap is not None else None}
    if with_events:
        out["audit"] = [{"at": e.at.isoformat() + "Z", "actor": e.actor, "action": e.action,
                         "from_status": e.from_status, "to_status": e.to_status, "note": e.note} for e in ref.events]
    return out
