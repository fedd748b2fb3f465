"""Bundle -> PatientProfile: the facts each fixture bundle maps to (reference date fixed to the authoring day)."""
from __future__ import annotations

import copy

import pytest

from assistant.fhir import runtime_readers
from assistant.fhir.inbound import BundleError, bundle_to_profile, unwrap_request, validate_bundle
from tests.fhir.conftest import AUTHORED, load_bundle


@pytest.fixture(scope="module")
def readers(fhir_app):
    return runtime_readers(fhir_app.extensions["trialmatch"])


def profile_of(name: str, readers, bundle: dict | None = None):
    bundle, _ = unwrap_request(bundle if bundle is not None else load_bundle(name))
    validate_bundle(bundle)
    return bundle_to_profile(bundle, readers, reference_date=AUTHORED)


def by_concept(profile):
    return {f.concept: f for f in profile.conditions}


def test_evidence_points_into_the_summary_and_names_the_resource(readers):
    profile = profile_of("lupus_nephritis.json", readers)
    spans = [profile.age_span, profile.sex_span, *(f.span for f in profile.conditions),
             *(f.span for f in profile.labs), *(f.span for f in profile.therapies)]
    for span in spans:
        assert profile.text[span.start:span.end] == span.text
        assert span.source and "/" in span.source
    assert by_concept(profile)["lupus nephritis"].span.source == "Condition/ln"
    assert span.to_dict()["source"] == span.source


def test_lupus_nephritis_bundle(readers):
    p = profile_of("lupus_nephritis.json", readers)
    assert (p.age_years, p.sex) == (38.0, "female")
    ln = by_concept(p)["lupus nephritis"]
    assert ln.qualifier == "class IV" and ln.code == "ICD10CM:M32.14" and ln.days_ago == 61
    assert by_concept(p)["systemic lupus erythematosus"].code == "ICD10CM:M32"  # ICD-10-CM M32.9 -> M32
    labs = {f.name: f for f in p.labs}
    assert (labs["upcr"].value, labs["upcr"].normalized_value, labs["upcr"].normalized_unit) == (2.4, 2.4, "g/g")
    assert labs["egfr"].normalized_unit == "mL/min/1.73m2"  # UCUM mL/min/{1.73_m2}
    assert labs["anti_dsdna"].polarity == "positive" and labs["anti_dsdna"].value is None
    assert (labs["sbp"].value, labs["dbp"].value, labs["sbp"].span.source) == (138, 86, "Observation/bp")  # a panel
    t = {f.name: f for f in p.therapies}
    assert t["mycophenolate mofetil"].status == "prior" and t["mycophenolate mofetil"].response == "failed"
    assert t["mycophenolate mofetil"].days_ago == 120  # stopped: dated by its end
    assert t["cyclophosphamide"].response == "failed"  # uncoded: found by the text pipeline in its display
    assert "immunosuppressant" in t["cyclophosphamide"].classes
    assert t["prednisone"].status == "current" and t["prednisone"].prednisone_eq_mg_day == 10.0


def test_sle_bundle_titre_score_and_failed_therapies(readers):
    p = profile_of("sle_refractory.json", readers)
    labs = {f.name: f for f in p.labs}
    assert (labs["ana"].value, labs["ana"].unit, labs["ana"].polarity) == (320, "titer", "positive")  # H on a titre
    assert labs["sledai_2k"].value == 12  # uncoded: the lab named in the display text
    assert {t.name: t.response for t in p.therapies if t.status == "prior"} == {
        "mycophenolate mofetil": "failed", "azathioprine": "failed"}


def test_refuted_resolved_and_entered_in_error(readers):
    facts = by_concept(profile_of("refuted_resolved.json", readers))
    assert facts["tuberculosis"].context.negated
    hbv = facts["hepatitis b"]
    assert hbv.context.historical and not hbv.context.negated and hbv.days_ago == 4169  # abatement 2015 (mid-year)
    assert "rheumatoid arthritis" not in facts  # entered-in-error is dropped
    dm = facts["type 2 diabetes mellitus"]
    assert dm.context.uncertain and dm.context.historical  # provisional + inactive
    assert facts["systemic lupus erythematosus"].context.affirmed_current


def test_pregnancy_observation(readers):
    preg = by_concept(profile_of("pregnancy.json", readers))["pregnancy"]
    assert preg.context.affirmed_current and not preg.context.negated
    assert preg.span.source == "Observation/preg"
    bundle = load_bundle("pregnancy.json")
    bundle["entry"][2]["resource"]["valueCodeableConcept"]["coding"][0].update(code="60001007",
                                                                              display="Not pregnant")
    assert by_concept(profile_of("", readers, bundle))["pregnancy"].context.negated


def test_medications_with_dates_and_statuses(readers):
    t = {f.name: f for f in profile_of("medications_dated.json", readers).therapies}
    assert "methotrexate" not in t and "cyclophosphamide" not in t  # not-taken / entered-in-error dropped
    assert t["rituximab"].status == "prior" and t["rituximab"].context.historical and t["rituximab"].days_ago == 379
    assert t["belimumab"].status == "current" and t["belimumab"].span.source == "MedicationRequest/bel"
    assert "blys_inhibitor" in t["belimumab"].classes  # brand name of a referenced Medication
    assert t["methylprednisolone"].span.source == "MedicationAdministration/mp"
    assert t["prednisone"].dose_mg_day == 20.0 and t["prednisone"].days_ago == 181
    assert t["anifrolumab"].status == "planned" and t["anifrolumab"].context.hypothetical


def test_cancer_with_mcode_markers(readers):
    p = profile_of("nsclc_markers.json", readers)
    nsclc = by_concept(p)["non-small cell lung cancer"]
    assert nsclc.category == "cancer" and nsclc.qualifier == "stage IV"
    labs = {f.name: f for f in p.labs}
    assert labs["egfr_mutation"].polarity == "positive" and labs["alk_fusion"].polarity == "negative"
    assert "egfr" not in labs  # the EGFR gene is not the filtration rate
    assert (labs["pd_l1"].value, labs["pd_l1"].unit) == (60.0, "%")
    assert labs["ecog"].value == 1.0
    assert {f.name for f in p.therapies} == {"osimertinib"}


def test_receptors_qualify_the_breast_cancer_and_unknown_codes_keep_their_display(readers):
    facts = by_concept(profile_of("breast_cancer_receptors.json", readers))
    assert facts["breast cancer"].qualifier == "ER+/HER2-"  # as the text path writes it
    odd = facts["zebra stripe syndrome"]
    assert odd.code == "SNOMED:999999999" and odd.span.text == "Zebra stripe syndrome"


def test_membranous_nephropathy_display_fallbacks(readers):
    p = profile_of("membranous_nephropathy.json", readers)
    facts = by_concept(p)
    assert facts["membranous nephropathy"].days_ago == 45
    assert facts["kidney biopsy"].category == "procedure" and facts["kidney biopsy"].days_ago == 31
    assert {f.name: f.polarity for f in p.labs}["anti_pla2r"] == "positive"
    assert {f.name: f.response for f in p.therapies} == {"rituximab": "refractory", "tacrolimus": "refractory"}


@pytest.mark.parametrize("mutate,code", [
    (lambda b: b.update(resourceType="Patient"), "not_a_bundle"),
    (lambda b: b.update(type="document"), "invalid_bundle"),
    (lambda b: b.update(type={}), "invalid_bundle"),
    (lambda b: b["entry"].append("Patient"), "invalid_bundle"),
    (lambda b: b["entry"].append({"resource": "Patient"}), "invalid_bundle"),
    (lambda b: b.update(entry={"resource": {}}), "invalid_bundle"),
    (lambda b: b["entry"][1]["resource"].update(resourceType="Illness"), "invalid_bundle"),
    (lambda b: b["entry"][1]["resource"].update(onsetDateTime="last spring"), "invalid_bundle"),
    (lambda b: b.update(entry=[]), "no_patient_data"),
    (lambda b: b["entry"].append({"resource": {"resourceType": "Patient", "id": "other"}}), "several_patients"),
])
def test_invalid_bundles_are_rejected_with_a_stable_code(mutate, code):
    bundle = copy.deepcopy(load_bundle("pregnancy.json"))
    mutate(bundle)
    with pytest.raises(BundleError) as err:
        validate_bundle(bundle)
    assert err.value.code == code


@pytest.mark.parametrize("edit,message", [
    (lambda d: d["conditions"].update({"SNOMED|1": "no such disease"}), "lexicon concept"),
    (lambda d: d["drugs"].update({"RXNORM|1": "no such drug"}), "lexicon drug"),
    (lambda d: d["labs"].update({"1-1": "no_such_lab"}), "not a lab"),
    (lambda d: d["values"].update({"SNOMED|1": "maybe"}), "unknown polarities"),
    (lambda d: d["markers"].update({"x": {"words": ["X"], "receptor": "KRAS"}}), "receptor must be"),
    (lambda d: d.update(colour="red"), "unknown keys"),
])
def test_code_tables_are_validated_on_load(fhir_app, edit, message):
    import json

    from assistant.fhir.terms import DEFAULT_PATH, FhirTermsError, parse_terms
    from nlp.components.measurements import load_lab_rules

    data = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    lexicon, labs = fhir_app.extensions["trialmatch"].lexicon, frozenset(load_lab_rules().labs)
    parse_terms(copy.deepcopy(data), lexicon, labs)  # the shipped tables are valid
    edit(data)
    with pytest.raises(FhirTermsError, match=message):
        parse_terms(data, lexicon, labs)
