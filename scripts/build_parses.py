#!/usr/bin/env python3
"""Build data/trials/parses.jsonl.gz: the parsed criteria of the bundled trials.

Ingests the bundled trials (data/trials/studies.jsonl.gz and data/trials/seeds) with criterion
parsing into a temporary SQLite database — the same code path as the first start, each distinct
text parsed once over every core — and writes the parse cache it filled: one header line
``{"format": 1, "fingerprint": <nlp.pipeline.pipeline_fingerprint()>, "count": N}`` then one
``[sha256 of the text, parsed dict]`` line per distinct text (criteria and study titles), gzip.

A fresh database seeds its parse cache from this file on the first start when the fingerprint
matches, so nothing is parsed. Rerun after any change under nlp/, data/rules or data/lexicons:

    python scripts/build_parses.py
    python scripts/build_parses.py --out /tmp/parses.jsonl.gz
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "trials" / "parses.jsonl.gz")
    ap.add_argument("--paths", nargs="*", type=Path, help="studies to parse (default: the bundled trials)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from assistant.ingest import ingest_paths, write_parses_file
    from assistant.services import Services, bundled_paths
    from assistant.settings import load_settings
    from nlp.pipeline import pipeline_fingerprint

    started = time.perf_counter()
    fingerprint = pipeline_fingerprint()
    with tempfile.TemporaryDirectory(prefix="tm-build-parses-") as tmp:
        rt = Services(load_settings({"DATABASE_URL": f"sqlite:///{Path(tmp) / 'parses.sqlite3'}",
                                    "INSTANCE_PATH": str(Path(tmp) / "instance"), "AUTOLOAD_BUNDLED": False},
                                   environ={}))
        paths = args.paths or bundled_paths(Path(rt.settings["DATA_DIR"]))
        report = ingest_paths(paths, rt.repo, parser=rt.parse_criteria, fingerprint=fingerprint, batch_size=1000)
        if report.rejected:
            print(f"{len(report.rejected)} rejected records (ignored)", file=sys.stderr)
        n = write_parses_file(args.out, fingerprint, rt.repo.parse_cache_rows(fingerprint))
        rt.engine.dispose()
    print(f"wrote {n} parses (pipeline {fingerprint}) to {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) "
          f"in {time.perf_counter() - started:.0f} s; {report.summary()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
