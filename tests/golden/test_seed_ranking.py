"""Whole-service ranking on a small corpus: who should, and who must not, be shown the two seed trials.

Goes through ``Services.match`` (the call behind ``POST /api/v1/match``) with the
default status filter (``filters=None`` -> the configured DEFAULT_STATUSES), on the seed trials plus
``tests/fixtures/studies_small.jsonl``.

Clinical requirement for patients who must NOT see the seeds (other diseases, family history only,
lupus ruled out): a seed trial may sit in the top 3 only if it is labelled ``ineligible``. A coordinator
reads the first few results as candidates, so a CD19 CAR-T/CAR-NK lupus trial offered there as
"possibly eligible" to, say, a man with lung cancer is a wrong referral; shown as ineligible it is
harmless. An empty result trivially satisfies this.

Patients with refractory SLE, lupus nephritis or primary membranous nephropathy must find the seed trial
whose population they belong to in the top 5, not labelled ineligible.
"""
from __future__ import annotations

import pytest

from models.domain import TrialLabel

AZD = "NCT06897930"  # AZD0120 CD19/BCMA CAR-T, refractory SLE
NKX = "NCT06557265"  # NKX019 CD19 CAR-NK, lupus nephritis and primary membranous nephropathy cohorts
SEED_IDS = {AZD, NKX}

MUST_NOT_SEE = [
    pytest.param("67-year-old man with stage IV non-small cell lung adenocarcinoma harboring an EGFR exon 19 "
                 "deletion, progressing on osimertinib. ECOG 1. No autoimmune disease.", id="lung-egfr"),
    pytest.param("9-year-old boy with type 1 diabetes mellitus diagnosed two years ago, on an insulin pump, "
                 "HbA1c 8.1%.", id="child-type-1-diabetes"),
    pytest.param("52-year-old woman with seropositive rheumatoid arthritis, anti-CCP positive, erosive disease "
                 "despite methotrexate and adalimumab. No other autoimmune disease.", id="rheumatoid-arthritis-only"),
    pytest.param("26-year-old woman with migraine. Her sister has systemic lupus erythematosus and lupus nephritis; "
                 "she herself has no lupus, a negative ANA and normal kidney function.", id="family-history-lupus"),
    pytest.param("38-year-old woman referred for joint pain and fatigue. Lupus was ruled out by rheumatology: ANA "
                 "negative, complement normal, urinalysis normal. Diagnosed with fibromyalgia.", id="lupus-ruled-out"),
    pytest.param("71-year-old man with severe COPD on home oxygen, 50 pack-year smoking history, two exacerbations "
                 "this year.", id="copd"),
    pytest.param("24-year-old man with ileocolonic Crohn disease, failed infliximab and vedolizumab, now on "
                 "ustekinumab.", id="crohn-disease"),
    pytest.param("69-year-old man with metastatic castration-resistant prostate cancer, PSA rising on "
                 "enzalutamide.", id="prostate-cancer"),
]

# (text, acceptable seed trials): the patient must find at least one of them in the top 5, not ineligible.
SHOULD_SEE = [
    pytest.param("35-year-old woman with refractory systemic lupus erythematosus with arthritis and malar rash, "
                 "ANA 1:640, SLEDAI-2K 12. She failed mycophenolate, azathioprine and belimumab.", {AZD},
                 id="refractory-sle"),
    pytest.param("47-year-old man with lupus (SLE) complicated by pleurisy and pericarditis, SLEDAI-2K 8, ANA "
                 "1:1280, refractory to azathioprine, mycophenolate and anifrolumab.", {AZD}, id="sle-serositis"),
    pytest.param("29-year-old woman with SLE and class IV lupus nephritis on kidney biopsy 2 months ago, UPCR 2.5 "
                 "g/g, anti-dsDNA positive. No response to mycophenolate and cyclophosphamide with prednisone.",
                 {NKX, AZD}, id="refractory-lupus-nephritis"),
    pytest.param("41-year-old woman with lupus nephritis class III plus V, proteinuria 3.2 g/day, refractory to "
                 "voclosporin and mycophenolate on steroids.", {NKX, AZD}, id="lupus-nephritis-iii-v"),
    pytest.param("57-year-old man with primary membranous nephropathy, anti-PLA2R antibodies positive, kidney "
                 "biopsy 3 months ago, UPCR 6.0 g/g. No remission after rituximab and tacrolimus.", {NKX},
                 id="refractory-membranous"),
]


def _summary(result) -> list[tuple[str, str, float]]:
    return [(m.nct_id, m.label.value, round(m.score, 3)) for m in result.matches]


def test_corpus_holds_both_seeds(small_runtime):
    assert small_runtime.repo.get(AZD) is not None and small_runtime.repo.get(NKX) is not None


@pytest.mark.parametrize("text", MUST_NOT_SEE)
def test_unrelated_patient_is_not_offered_a_seed_trial(text, small_runtime):
    result = small_runtime.match(text, None, top_k=10)
    offered = [m for m in result.matches[:3] if m.nct_id in SEED_IDS and m.label is not TrialLabel.INELIGIBLE]
    assert not offered, _summary(result)


@pytest.mark.parametrize("text,wanted", SHOULD_SEE)
def test_seed_population_patient_sees_a_seed_trial(text, wanted, small_runtime):
    result = small_runtime.match(text, None, top_k=10)
    top5 = [m for m in result.matches[:5] if m.nct_id in wanted]
    assert top5, _summary(result)
    assert any(m.label is not TrialLabel.INELIGIBLE for m in top5), _summary(result)


def test_at_least_eight_must_not_and_four_should():
    assert len(MUST_NOT_SEE) >= 8 and len(SHOULD_SEE) >= 4
