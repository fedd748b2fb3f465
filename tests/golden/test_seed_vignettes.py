"""Own vignettes against the two seed trials: trial-level label and the deciding criterion verdicts."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.matching.ranking import evaluate_trial
from models.domain import TrialRecord

CASES = [json.loads(line) for line in (Path(__file__).parent / "seed_vignettes.jsonl").read_text().splitlines()
         if line.strip()]


def _verdict(match, needle: str):
    if needle == "@age":
        return next(v for v in match.criteria if v.criterion_id.endswith(":age"))
    found = [v for v in match.criteria if needle.lower() in v.text.lower()]
    assert found, f"no criterion containing {needle!r}"
    return found[0]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_seed_vignette(case, seed_runtime):
    rt = seed_runtime
    trial: TrialRecord = rt.repo.get(case["trial"])
    profile = rt.extract(case["text"])
    match = evaluate_trial(profile, trial, 1.0, rt.is_a)
    details = {v.text[:60]: (v.verdict.value, v.reason) for v in match.criteria}
    assert match.label.value in case["expect_label"], details
    for needle, verdict in case["expect_verdicts"].items():
        v = _verdict(match, needle)
        assert v.verdict.value == verdict, (needle, v.reason)
        assert v.reason and (v.verdict.value != "unknown" or v.missing)
    if "expect_cohort_contains" in case:
        assert match.cohort and case["expect_cohort_contains"] in match.cohort.lower()


def test_at_least_thirty_vignettes():
    assert len(CASES) >= 30
