"""Expensive allowed inputs (issue 11): time per pipeline component at 5k/10k/20k characters, the match after it,
and what EXTRACTION_BUDGET_SECONDS does to each 20k case. Prints figures; not a test.

    python scripts/bench_expensive.py               # uses the database of the current settings for the match
    python scripts/bench_expensive.py --budget 3.0 --no-match
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CASES = {
    "negation run": "no no not denies without ",
    "negated conditions, one sentence": "no lupus, no diabetes, denies asthma, without hypertension, ",
    "negations in sentences": "no fever, no cough, denies chest pain, no history of diabetes, not on insulin. ",
    "one hyphenated token": "lupus-",
    "punctuation run": "(",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=3.0)
    ap.add_argument("--no-match", action="store_true", help="extraction only (no database needed)")
    args = ap.parse_args()
    from assistant.services import Services
    from assistant.settings import load_settings
    from models.domain import ExtractionBudgetExceeded
    from nlp.pipeline import safe_text

    rt = Services(load_settings({"PRELOAD": False}))
    nlp = rt.pipeline
    if not args.no_match:
        rt.prepare()
    rt.extract("warm-up: woman with lupus")
    for name, unit in CASES.items():
        for n in (5000, 10000, 20000):
            text = (unit * (n // len(unit) + 1))[:n]
            doc = nlp.make_doc(safe_text(text))
            steps = []
            for step, proc in nlp.pipeline:
                start = time.perf_counter()
                doc = proc(doc)
                steps.append((step, time.perf_counter() - start))
            slowest = max(steps, key=lambda s: s[1])
            line = (f"{name:<34} {n:>6} chars {len(doc):>6} tokens  pipeline {sum(s for _, s in steps):6.2f} s  "
                    f"slowest {slowest[0]} {slowest[1]:.2f} s")
            if n == 20000:
                start = time.perf_counter()
                profile = rt.extract(text)
                extract_s = time.perf_counter() - start
                if not args.no_match:
                    start = time.perf_counter()
                    rt.match(profile, None, top_k=10)
                    line += (f"  | no budget: extract {extract_s:.2f} s + match {time.perf_counter() - start:.2f} s "
                             f"({len(profile.conditions)} condition facts)")
                start = time.perf_counter()
                try:
                    rt.extract(text, deadline=time.monotonic() + args.budget)
                    outcome = "within budget"
                except ExtractionBudgetExceeded as exc:
                    outcome = f"exceeded (before {exc.stage})"
                line += f"  | budget {args.budget:g} s: {outcome} after {time.perf_counter() - start:.2f} s"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
