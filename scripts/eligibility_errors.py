"""Classify trial-level triage errors on half A of the TREC judgments (the taxonomy in docs/quality.md).

    python scripts/eligibility_errors.py --studies ../shared/trials/studies.jsonl \
        --queries ../shared/benchmarks/trec/queries.jsonl --qrels ../shared/benchmarks/trec/qrels.tsv

A false exclusion (judged eligible, labelled ineligible) is classified by the first verdict that made the trial
ineligible; a missed exclusion (judged excluded, not labelled ineligible) is counted as one class. Only half A
is read: half B is for checking, never for reading errors.
"""
from __future__ import annotations

import argparse
import inspect
import re
from collections import Counter
from pathlib import Path

CLASSES = [
    ("the trial's own disease read as excluding it", r"is the condition this trial studies|exclusion applies — .* is "
                                                     r"present"),
    ("sex or a sex-specific state applied as a requirement", r"patient is (?:fe)?male; criterion requires"),
    ("age bound (sub-cohort or misread age)", r"\bage [\d.]+(?:-[\d.]+)? is outside"),
    ("prior or current therapy against a 'no prior X' / drug exclusion", r"absence required: .*: \"|exclusion applies"
                                                                           r" — [^\"]*: \""),
    ("a condition the patient has against a 'no X' inclusion", r"absence required: .* is present"),
    ("lab value, unit or threshold", r"meets?|does not meet|value"),
    ("healthy-volunteer requirement", r"healthy|the patient has "),
    ("other", r""),
]


def classify(reason: str) -> str:
    return next(name for name, pattern in CLASSES if re.search(pattern, reason))


def main() -> None:
    from assistant.evaluation import ELIGIBLE, EXCLUDED, half_of, load_trials, read_qrels, read_queries
    from assistant.matching.ranking import evaluate_trial
    from assistant.services import Services
    from assistant.settings import load_settings
    from models.domain import CriterionKind, TrialLabel, Verdict

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--studies", action="append", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--qrels", required=True)
    ap.add_argument("--details", action="store_true", help="also print each false exclusion's deciding reason")
    args = ap.parse_args()
    rt = Services(load_settings({"AUTOLOAD_BUNDLED": False}))
    queries, qrels = read_queries(Path(args.queries)), read_qrels(Path(args.qrels))
    wanted = {n for q, j in qrels.items() if q in queries and half_of(q) == "A" for n, g in j.items()
              if g in (EXCLUDED, ELIGIBLE)}
    trials = load_trials([Path(s) for s in args.studies], wanted, rt.parse_criteria)
    params = inspect.signature(evaluate_trial).parameters  # also runs on older checkouts, for "before" counts
    extra = {k: getattr(rt, v) for k, v in (("category_of", "category_of"), ("related", "is_related")) if k in params}
    counts: Counter = Counter()
    details: list[str] = []
    n = 0
    for qid, judged in sorted(qrels.items()):
        if qid not in queries or half_of(qid) != "A":
            continue
        profile = rt.extract(queries[qid])
        for nct, grade in judged.items():
            if grade not in (EXCLUDED, ELIGIBLE) or nct not in trials:
                continue
            n += 1
            match = evaluate_trial(profile, trials[nct], 1.0, rt.is_a, **extra)
            ineligible = match.label is TrialLabel.INELIGIBLE
            if grade == EXCLUDED and not ineligible:
                counts["missed exclusion (judged excluded, not labelled ineligible)"] += 1
                if args.details:
                    unknown = [v.reason for v in match.criteria if v.verdict is Verdict.UNKNOWN]
                    details.append(f"{qid}\t{nct}\tmissed exclusion ({match.label.value}, {len(unknown)} unknown)"
                                   f"\t" + " | ".join(unknown))
            elif grade == ELIGIBLE and ineligible:
                first = next(v for v in match.criteria if (v.kind is CriterionKind.INCLUSION and v.verdict is
                                                           Verdict.NOT_MET) or (v.kind is CriterionKind.EXCLUSION
                                                                                and v.verdict is Verdict.MET))
                name = "false exclusion: " + classify(first.reason)
                counts[name] += 1
                if args.details:
                    details.append(f"{qid}\t{nct}\t{name}\t{first.reason}")
    print(f"{n} judged pairs on half A, {sum(counts.values())} errors")
    for name, k in counts.most_common():
        print(f"{k:4d}  {name}")
    for line in details:
        print(line)


if __name__ == "__main__":
    main()
