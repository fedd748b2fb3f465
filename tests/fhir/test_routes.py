"""The FHIR routes end to end through the Flask client: Bundles in, searchset Bundles of ResearchStudy out."""
from __future__ import annotations

import datetime as dt

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from assistant.fhir.outbound import EXT_CRITERION, EXT_LABEL, NS
from tests.fhir.conftest import load_bundle

SEEDS = ("NCT06897930", "NCT06557265")
GOOD = ["sle_refractory.json", "lupus_nephritis.json", "membranous_nephropathy.json", "nsclc_markers.json",
        "refuted_resolved.json", "pregnancy.json", "medications_dated.json", "breast_cancer_receptors.json"]
# the same patients written as text (what a coordinator would type), for the parity test
TEXTS = {
    "lupus_nephritis.json": "38-year-old woman with systemic lupus erythematosus and lupus nephritis class IV "
                            "diagnosed 2 months ago. UPCR 2.4 g/g, eGFR 78 mL/min/1.73m2, anti-dsDNA positive. "
                            "Failed mycophenolate and cyclophosphamide. On prednisone 10 mg daily.",
    "sle_refractory.json": "41-year-old woman with systemic lupus erythematosus. ANA 1:320, SLEDAI-2K 12. She "
                           "failed mycophenolate and azathioprine. On hydroxychloroquine.",
    "membranous_nephropathy.json": "55-year-old man with primary membranous nephropathy, anti-PLA2R positive, "
                                   "kidney biopsy 1 month ago. UPCR 5.1 g/g. Refractory to rituximab and tacrolimus.",
}


def post(client, name: str, url: str = "/api/v1/fhir/match", **extra):
    body = load_bundle(name, dt.date.today())
    if extra:
        body = {"patientData": body.get("patientData", body), **extra}
    resp = client.post(url, json=body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "application/fhir+json"
    return resp.get_json(force=True)


def studies(bundle: dict) -> dict[str, dict]:
    return {e["resource"]["id"]: e for e in bundle["entry"] if e["resource"]["resourceType"] == "ResearchStudy"}


def label(entry: dict) -> str:
    return next(x["valueCode"] for x in entry["resource"]["extension"] if x["url"] == EXT_LABEL)


def criteria(entry: dict) -> list[dict[str, list]]:
    out = []
    for ext in entry["resource"]["extension"]:
        if ext["url"] == EXT_CRITERION:
            parts: dict[str, list] = {}
            for sub in ext["extension"]:
                parts.setdefault(sub["url"], []).append(next(v for k, v in sub.items() if k.startswith("value")))
            out.append(parts)
    return out


@pytest.mark.parametrize("name", GOOD)
def test_every_fixture_answers_a_valid_searchset_bundle(fhir_client, name):
    body = post(fhir_client, name)
    Bundle.model_validate(body)  # the answer is a valid R4 Bundle
    assert body["type"] == "searchset"
    for entry in studies(body).values():
        study, search = entry["resource"], entry["search"]
        assert search["mode"] == "match" and 0 <= search["score"] <= 1
        assert study["identifier"][0] == {"use": "official", "system": "https://clinicaltrials.gov",
                                          "value": study["id"]}
        assert study["status"] in ("active", "approved", "closed-to-accrual", "completed", "in-review",
                                   "temporarily-closed-to-accrual", "administratively-completed", "withdrawn")
        assert label(entry) in ("eligible", "possibly_eligible", "ineligible")
        assert all(ext["url"].startswith(NS) for ext in study["extension"])
        refs = {s["reference"][1:] for s in study.get("site", [])}
        assert refs == {c["id"] for c in study.get("contained", [])}


@pytest.mark.parametrize("name,trial,cohort", [
    ("lupus_nephritis.json", "NCT06557265", "(ln)"),
    ("membranous_nephropathy.json", "NCT06557265", "(pmn)"),
    ("sle_refractory.json", "NCT06897930", None),
])
def test_top_trials_and_labels(fhir_client, name, trial, cohort):
    body = post(fhir_client, name, top_k=5)
    found = studies(body)
    assert trial in list(found)[:2], list(found)
    assert label(found[trial]) == "possibly_eligible"
    if cohort:
        ext = {x["url"].rsplit("/", 1)[-1]: x.get("valueString") for x in found[trial]["resource"]["extension"]}
        assert cohort in (ext.get("match-cohort") or "").lower()


def test_coded_facts_are_the_evidence_of_verdicts(fhir_client):
    entry = studies(post(fhir_client, "sle_refractory.json"))["NCT06897930"]
    evidence = {e for c in criteria(entry) for e in c.get("evidence", [])}
    assert {"Condition/sle", "Patient/sle-1", "Observation/sledai"} <= evidence, evidence
    assert all("reason" in c and c["verdict"][0] in ("met", "not_met", "unknown", "not_applicable")
               for c in criteria(entry))


def test_pregnancy_observation_reaches_the_verdicts(fhir_client):
    found = studies(post(fhir_client, "pregnancy.json", top_k=10))
    pregnancy = [c for e in found.values() for c in criteria(e) if "Observation/preg" in c.get("evidence", [])]
    assert pregnancy and all(c["kind"] == ["exclusion"] and c["verdict"] == ["met"] for c in pregnancy)
    assert label(found["NCT06557265"]) == "ineligible"


def test_refuted_condition_is_not_counted_as_present(fhir_client):
    found = studies(post(fhir_client, "refuted_resolved.json", top_k=10))
    tb = [c for e in found.values() for c in criteria(e) if "Condition/tb" in c.get("evidence", [])]
    assert all(c["verdict"] != ["met"] or c["kind"] == ["inclusion"] for c in tb)


def test_get_clinical_trial_alias_with_patient_data(fhir_client):
    body = post(fhir_client, "lupus_nephritis.json", url="/getClinicalTrial", top_k=3,
                filters={"status": "ANY"})
    assert 1 <= len(studies(body)) <= 3


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_same_patient_as_text_and_as_fhir_gets_the_same_seed_labels(fhir_client, name):
    """Both seed trials for the lupus patients; the lupus trial is not retrieved for the membranous one."""
    text = fhir_client.post("/api/v1/match", json={"text": TEXTS[name], "top_k": 50}).get_json()
    from_text = {m["nct_id"]: m["label"] for m in text["matches"] if m["nct_id"] in SEEDS}
    found = studies(post(fhir_client, name, top_k=50))
    from_fhir = {nct: label(found[nct]) for nct in SEEDS if nct in found}
    assert from_text and {nct: from_fhir.get(nct) for nct in from_text} == from_text


def test_accept_fhir_on_the_text_route(fhir_client):
    resp = fhir_client.post("/api/v1/match", json={"text": TEXTS["sle_refractory.json"], "top_k": 3},
                            headers={"Accept": "application/fhir+json"})
    assert resp.status_code == 200 and resp.mimetype == "application/fhir+json"
    body = resp.get_json(force=True)
    Bundle.model_validate(body)
    assert "NCT06897930" in studies(body)
    for accept in (None, "*/*", "application/json", "application/json, application/fhir+json;q=0.5"):
        plain = fhir_client.post("/api/v1/match", json={"text": TEXTS["sle_refractory.json"], "top_k": 3},
                                 headers={"Accept": accept} if accept else {})
        assert plain.mimetype == "application/json" and "matches" in plain.get_json(), accept


@pytest.mark.parametrize("kwargs,status,code", [
    ({"json": load_bundle("bad_bundle.json")}, 400, "invalid_bundle"),
    ({"json": {"resourceType": "Patient", "id": "p"}}, 400, "not_a_bundle"),
    ({"json": {"patientData": "a bundle"}}, 400, "invalid_bundle"),
    ({"json": {"patientData": load_bundle("pregnancy.json"), "colour": 1}}, 400, "invalid_request"),
    ({"json": {"patientData": load_bundle("pregnancy.json"), "top_k": 0}}, 400, "invalid_type"),
    ({"json": {"patientData": load_bundle("pregnancy.json"), "filters": {"status": "OPEN"}}}, 400, "invalid_filter"),
    ({"json": [1, 2]}, 400, "invalid_request"),
    ({"data": "{not json", "content_type": "application/fhir+json"}, 400, "malformed_json"),
    ({"data": "", "content_type": "application/json"}, 400, "missing_bundle"),
    ({"data": "<Bundle/>", "content_type": "application/fhir+xml"}, 415, "unsupported_media_type"),
    ({"data": '{"resourceType": "Bundle", "type": "collection", "entry": [' + '{"resource": {"resourceType": '
      '"Basic", "id": "x"}},' * 9000 + ']}', "content_type": "application/json"}, 413, "payload_too_large"),
])
def test_bad_requests_get_an_operation_outcome(fhir_client, kwargs, status, code):
    for url in ("/api/v1/fhir/match", "/getClinicalTrial"):
        resp = fhir_client.post(url, **kwargs)
        assert resp.status_code == status, resp.get_data(as_text=True)
        body = resp.get_json(force=True)
        OperationOutcome.model_validate(body)
        issue = body["issue"][0]
        assert issue["severity"] == "error" and issue["diagnostics"]
        assert issue["details"]["coding"][0]["code"] == code
        assert status != 400 or issue["code"] == "invalid"


def test_validation_errors_do_not_echo_patient_values(fhir_client):
    resp = fhir_client.post("/api/v1/fhir/match", json=load_bundle("bad_bundle.json"))
    text = resp.get_data(as_text=True)
    assert "birthDate" in text and "1980-02-30" not in text and "lupus" not in text


def test_fhir_routes_are_rate_limited(tmp_path, nlp, studies_file):
    from tests.conftest import make_test_app

    app = make_test_app(tmp_path, nlp, studies_file, RATE_LIMIT="2 per minute")
    client = app.test_client()
    bad = {"resourceType": "Patient"}  # answered fast; the limit counts every request
    for url in ("/api/v1/fhir/match", "/getClinicalTrial"):
        codes = [client.post(url, json=bad).status_code for _ in range(3)]
        assert codes == [400, 400, 429], (url, codes)
    app.extensions["trialmatch"].engine.dispose()
