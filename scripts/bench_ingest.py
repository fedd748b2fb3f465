#!/usr/bin/env python3
"""Benchmark ingestion of the bundled trials into an empty SQLite database.

Does what ``trialmatch ingest data/trials/studies.jsonl.gz data/trials/seeds``
does (``assistant.ingest.ingest_paths`` with ``parser=runtime.parse_criteria``,
i.e. criteria split and parsed with the real pipeline; large batches are parsed
in forked worker processes, see nlp/criterion_parser.py) on a fresh database in
a temporary folder, then ingests the same files again and reports how many
records were recognised as unchanged (the second pass should skip them all).

The pipeline is built before the timed ingest and its build time is reported
separately. Prints figures only.

    python scripts/bench_ingest.py
    python scripts/bench_ingest.py --json
    python scripts/bench_ingest.py --no-parse        # split criteria only, no parsing
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench_common as bc  # noqa: E402


def count_rows(runtime) -> dict[str, int]:  # type: ignore[no-untyped-def]
    from sqlalchemy import Text, cast, func, select

    from models import trial as orm

    with runtime.repo.session_factory() as session:
        return {"trials": session.scalar(select(func.count(orm.Trial.id))) or 0,
                "criteria": session.scalar(select(func.count(orm.Criterion.id))) or 0,
                # an unparsed criterion is stored as JSON null (the text 'null'), not SQL NULL
                "parsed_criteria": session.scalar(select(func.count(orm.Criterion.id)).where(
                    orm.Criterion.parsed.is_not(None), cast(orm.Criterion.parsed, Text) != "null")) or 0,
                "locations": session.scalar(select(func.count(orm.Location.id))) or 0}


def report_dict(report) -> dict[str, object]:  # type: ignore[no-untyped-def]
    c = report.counts
    return {"added": c.added, "updated": c.updated, "unchanged": c.unchanged, "rejected": len(report.rejected),
            "processed": report.processed, "seconds": round(report.seconds, 2),
            "trials_per_s": round(report.processed / report.seconds, 1) if report.seconds else None,
            "summary": report.summary()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=500, help="ingest batch size (default 500, as the CLI)")
    ap.add_argument("--no-parse", action="store_true", help="ingest without criterion parsing (--no-parse)")
    ap.add_argument("--paths", nargs="*", type=Path,
                    help="files/folders to ingest (default: data/trials/studies.jsonl.gz and data/trials/seeds)")
    ap.add_argument("--keep", type=Path, help="write the database into this folder and keep it")
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of the summary")
    args = ap.parse_args(argv)

    from assistant.ingest import ingest_paths
    from assistant.runtime import Runtime, bundled_paths

    result: dict[str, object] = {"benchmark": "ingest", "machine": bc.machine_info(), "loadavg_start": bc.loadavg()}
    with tempfile.TemporaryDirectory(prefix="tm-bench-ingest-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        rt = Runtime(bc.temp_settings(folder, autoload=False))
        paths = args.paths or bundled_paths(Path(rt.settings["DATA_DIR"]))
        parser = None
        if not args.no_parse:
            with bc.Stopwatch() as sw:
                rt.pipeline  # noqa: B018 - build before timing the ingest
            result["pipeline_build_s"] = round(sw.seconds, 2)
            parser = rt.parse_criteria
        result["parse_processes"] = 0 if args.no_parse else min(os.cpu_count() or 1, 4)

        first = ingest_paths(paths, rt.repo, parser=parser, batch_size=args.batch_size)
        result["first"] = report_dict(first)
        result["rows"] = count_rows(rt)
        db = folder / "bench.sqlite3"
        result["db_mb"] = round(db.stat().st_size / 1e6, 1) if db.exists() else None
        second = ingest_paths(paths, rt.repo, parser=parser, batch_size=args.batch_size)
        result["second"] = report_dict(second)
        valid = second.processed - len(second.rejected)
        result["unchanged_rate"] = round(second.counts.unchanged / valid, 4) if valid else None
        rt.engine.dispose()
    result["loadavg_end"] = bc.loadavg()
    result["peak_rss_mb"] = bc.peak_rss_mb()

    f, s, rows = result["first"], result["second"], result["rows"]
    mode = "no parsing" if args.no_parse else f"criterion parsing, {result['parse_processes']} forked workers"
    lines = [f"ingest benchmark at commit {result['machine']['commit']} "
             f"({result['machine']['modified_files']} tracked files modified)",
             f"  input: {', '.join(str(p.relative_to(bc.ROOT)) if p.is_relative_to(bc.ROOT) else str(p) for p in paths)}"
             f" -> empty SQLite ({mode}, batch {args.batch_size})"]
    if "pipeline_build_s" in result:
        lines.append(f"  pipeline build (before timing): {result['pipeline_build_s']:.2f} s")
    lines += [
        f"  first pass : {f['summary']}",  # type: ignore[index]
        f"               {f['trials_per_s']} trials/s; stored {rows['trials']} trials, {rows['criteria']} criteria "  # type: ignore[index]
        f"({rows['parsed_criteria']} parsed), {rows['locations']} locations; database {result['db_mb']} MB",  # type: ignore[index]
        f"  second pass: {s['summary']}",  # type: ignore[index]
        f"               unchanged rate {result['unchanged_rate']:.1%} of valid records "
        f"({s['trials_per_s']} trials/s)",  # type: ignore[index]
        f"  rejected records: {f['rejected']} (positions and reasons are not printed here; see `trialmatch ingest`)",  # type: ignore[index]
        f"  peak RSS of this process: {result['peak_rss_mb']} MB (forked parse workers not included); "
        f"load average start {result['loadavg_start']}, end {result['loadavg_end']}",
    ]
    bc.emit(result, args.json, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
