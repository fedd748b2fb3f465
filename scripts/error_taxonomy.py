"""Count half-A criterion errors by class (the taxonomy in docs/quality.md).

    trialmatch evaluate criteria ../shared/benchmarks/criteria/dev.json --errors A > errors_A.jsonl
    python scripts/error_taxonomy.py errors_A.jsonl

Each error (gold label vs trialmatch's label and reason) falls in the first class whose test matches; the tests
read only the labels and trialmatch's own reason, so the same rules classify any run.
"""
from __future__ import annotations

import json
import re
import sys
from collections import Counter

CLASSES = [
    ("gold 'not applicable' (criterion does not concern the patient)", lambda g, p, r: g == "not applicable"),
    ("demographics (age/sex read or applied wrongly)",
     lambda g, p, r: bool(re.search(r"\bage \d|patient is (?:fe)?male|years\)", r)) and p in (
         "not included", "included", "excluded")),
    ("negation scope / stated absence", lambda g, p, r: "negated" in r or "absence required" in r),
    ("closed-world policy (silence read as absence)",
     lambda g, p, r: p in ("not excluded", "included") and ("ssumed" in r or "no mention" in r
                                                            or "no " in r and "value is given" in r)),
    ("unstructured criterion (lexical fallback)",
     lambda g, p, r: "not structured" in r or "could not be checked" in r or "clinician must review" in r),
    ("parse coverage / partial check (part of the criterion decided it)",
     lambda g, p, r: p in ("included", "excluded") or "was not checked" in r),
    ("lab values, units and thresholds", lambda g, p, r: bool(re.search(r"meets?|value|cannot be compared", r))),
    ("terminology gap (the patient's fact was not recognised)",
     lambda g, p, r: g in ("included", "excluded", "not included") and ("not mentioned" in r or "no mention" in r)),
    ("closed-world policy (silence read as absence)", lambda g, p, r: "not mentioned" in r),
    ("other", lambda g, p, r: True),
]


def classify(row: dict) -> str:
    gold, pred, reason = row["gold"], row["pred"], row.get("reason") or ""
    return next(name for name, test in CLASSES if test(gold, pred, reason))


def main(path: str) -> None:
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    counts = Counter(classify(r) for r in rows)
    print(f"{len(rows)} errors")
    for name, n in counts.most_common():
        print(f"{n:4d}  {name}")


if __name__ == "__main__":
    main(sys.argv[1])
