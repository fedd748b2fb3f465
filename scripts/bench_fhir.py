"""Latency of POST /api/v1/fhir/match against POST /api/v1/match for the same patients.

The patients are the FHIR fixture bundles of tests/fixtures/fhir and their text versions in
tests/fhir/test_routes.py (written for the tests, no benchmark data); the trials are the fixture trials plus the
two seeds on a temporary SQLite database. Prints the median of ``--repeat`` requests per route; no patient
content is printed.

    python scripts/bench_fhir.py [--repeat 20]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _median_ms(call, repeat: int) -> float:  # type: ignore[no-untyped-def]
    call()  # warm-up
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from nlp.lexicon import default_lexicon
    from nlp.pipeline import build_pipeline
    from tests.conftest import make_test_app
    from tests.fhir.conftest import load_bundle
    from tests.fhir.test_routes import TEXTS
    from tests.helpers import fixture_studies

    tmp = Path(tempfile.mkdtemp(prefix="bench_fhir_"))
    studies = tmp / "studies.jsonl"
    studies.write_text("".join(json.dumps(s) + "\n" for s in fixture_studies()), encoding="utf-8")
    app = make_test_app(tmp, build_pipeline(lexicon=default_lexicon()), studies, RATE_LIMIT="1000000 per minute")
    client = app.test_client()
    for name, text in TEXTS.items():
        bundle = load_bundle(name, dt.date.today())
        fhir = _median_ms(lambda b=bundle: client.post("/api/v1/fhir/match", json=b), args.repeat)
        plain = _median_ms(lambda t=text: client.post("/api/v1/match", json={"text": t}), args.repeat)
        print(f"{name:30s} fhir {fhir:6.1f} ms   text {plain:6.1f} ms   (median of {args.repeat})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
