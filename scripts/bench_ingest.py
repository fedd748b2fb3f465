#!/usr/bin/env python3
"""Benchmark ingestion of the bundled trials into an empty SQLite database.

Does what ``trialmatch ingest data/trials/studies.jsonl.gz data/trials/seeds``
does (``assistant.ingest.ingest_paths`` with ``parser=runtime.parse_criteria``,
i.e. criteria split and parsed with the real pipeline; large batches are parsed
in forked worker processes, see nlp/criterion_parser.py) on a fresh database in
a temporary folder, then ingests the same files again and reports how many
records were recognised as unchanged (the second pass should skip them all).

Two first passes: cold (empty parse cache: every distinct text is parsed once)
and warm (parse cache seeded from the shipped data/trials/parses.jsonl.gz, as
the first start does; the seeding time is reported separately and included in
the second rate). Also reports the distinct-criterion share (distinct texts /
all criterion texts) and whether cold and warm stored identical parses.

The pipeline is built before the timed ingest and its build time is reported
separately. Prints figures only.

    python scripts/bench_ingest.py
    python scripts/bench_ingest.py --json
    python scripts/bench_ingest.py --no-parse        # split criteria only, no parsing
    python scripts/bench_ingest.py --skip-cold       # warm pass only
"""
from __future__ import annotations

import argparse
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


def distinct_share(runtime) -> dict[str, object]:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from models import trial as orm

    with runtime.repo.session_factory() as session:
        total = session.scalar(select(func.count(orm.Criterion.id))) or 0
        distinct = session.scalar(select(func.count(func.distinct(orm.Criterion.text)))) or 0
    return {"criterion_texts": total, "distinct_texts": distinct,
            "distinct_share": round(distinct / total, 4) if total else None}


def stored_parses(runtime) -> list[tuple[str, int, str]]:  # type: ignore[no-untyped-def]
    import json

    from sqlalchemy import select

    from models import trial as orm

    with runtime.repo.session_factory() as session:
        return [(nct, pos, json.dumps(parsed, sort_keys=True)) for nct, pos, parsed in session.execute(
            select(orm.Trial.nct_id, orm.Criterion.position, orm.Criterion.parsed).join(orm.Criterion.trial)
            .order_by(orm.Trial.nct_id, orm.Criterion.kind, orm.Criterion.position))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=500, help="ingest batch size (default 500, as the CLI)")
    ap.add_argument("--no-parse", action="store_true", help="ingest without criterion parsing (--no-parse)")
    ap.add_argument("--skip-cold", action="store_true",
                    help="only the warm pass (parse cache seeded from data/trials/parses.jsonl.gz)")
    ap.add_argument("--paths", nargs="*", type=Path,
                    help="files/folders to ingest (default: data/trials/studies.jsonl.gz and data/trials/seeds)")
    ap.add_argument("--keep", type=Path, help="write the (warm) database into this folder and keep it")
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of the summary")
    args = ap.parse_args(argv)

    from assistant.ingest import ingest_paths, read_parses_header, seed_parse_cache
    from assistant.services import Services, bundled_paths
    from nlp.criterion_parser import default_processes
    from nlp.pipeline import pipeline_fingerprint

    result: dict[str, object] = {"benchmark": "ingest", "machine": bc.machine_info(), "loadavg_start": bc.loadavg()}
    fingerprint = pipeline_fingerprint()
    with tempfile.TemporaryDirectory(prefix="tm-bench-ingest-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        rt = Services(bc.temp_settings(folder, autoload=False))
        paths = args.paths or bundled_paths(Path(rt.settings["DATA_DIR"]))
        shipped = rt.shipped_parses_path
        parser = None
        if not args.no_parse:
            with bc.Stopwatch() as sw:
                rt.pipeline  # noqa: B018 - build before timing the ingest
            result["pipeline_build_s"] = round(sw.seconds, 2)
            parser = rt.parse_criteria
        result["parse_processes"] = 0 if args.no_parse else default_processes()
        result["fingerprint"] = fingerprint
        header = read_parses_header(shipped)
        result["shipped_parses"] = {"path": str(shipped.relative_to(bc.ROOT)), "exists": shipped.exists(),
                                    "mb": round(shipped.stat().st_size / 1e6, 2) if shipped.exists() else None,
                                    "rows": header and header.get("count"),
                                    "matches": bool(header and header.get("fingerprint") == fingerprint)}
        cold_parses = None
        if parser is not None and not args.skip_cold:
            cold_dir = folder / "cold"
            cold_dir.mkdir(exist_ok=True)
            cold_rt = Services(bc.temp_settings(cold_dir, autoload=False))
            cold = ingest_paths(paths, cold_rt.repo, parser=parser, batch_size=args.batch_size, fingerprint=fingerprint)
            result["cold"] = {**report_dict(cold), "parse": vars(cold.parse)}
            cold_parses = stored_parses(cold_rt)
            cold_rt.engine.dispose()

        if parser is not None:
            with bc.Stopwatch() as sw:
                seeded = seed_parse_cache(rt.repo, shipped, fingerprint)
            result["seed"] = {"rows": seeded, "seconds": round(sw.seconds, 2)}
        first = ingest_paths(paths, rt.repo, parser=parser, batch_size=args.batch_size, fingerprint=fingerprint)
        result["first"] = {**report_dict(first), "parse": vars(first.parse)}
        if parser is not None:
            total = first.seconds + float(result["seed"]["seconds"])  # type: ignore[index]
            result["first_with_seed_trials_per_s"] = round(first.processed / total, 1)
        result["rows"] = count_rows(rt)
        result["distinct"] = distinct_share(rt)
        if cold_parses is not None:
            result["cold_and_warm_parses_identical"] = cold_parses == stored_parses(rt)
        db = folder / "bench.sqlite3"
        result["db_mb"] = round(db.stat().st_size / 1e6, 1) if db.exists() else None
        second = ingest_paths(paths, rt.repo, parser=parser, batch_size=args.batch_size, fingerprint=fingerprint)
        result["second"] = report_dict(second)
        valid = second.processed - len(second.rejected)
        result["unchanged_rate"] = round(second.counts.unchanged / valid, 4) if valid else None
        rt.engine.dispose()
    result["loadavg_end"] = bc.loadavg()
    result["peak_rss_mb"] = bc.peak_rss_mb()

    f, s, rows, d = result["first"], result["second"], result["rows"], result["distinct"]
    mode = ("no parsing" if args.no_parse
            else f"criterion parsing through the parse cache, up to {result['parse_processes']} forked workers")
    sp = result["shipped_parses"]
    lines = [f"ingest benchmark at commit {result['machine']['commit']} "
             f"({result['machine']['modified_files']} tracked files modified)",
             f"  input: {', '.join(str(p.relative_to(bc.ROOT)) if p.is_relative_to(bc.ROOT) else str(p) for p in paths)}"
             f" -> empty SQLite ({mode}, batch {args.batch_size})"]
    if "pipeline_build_s" in result:
        lines.append(f"  pipeline build (before timing): {result['pipeline_build_s']:.2f} s; pipeline {fingerprint}")
        lines.append(f"  shipped parses {sp['path']}: {sp['mb']} MB, {sp['rows']} rows, "  # type: ignore[index]
                     f"fingerprint {'matches' if sp['matches'] else 'DOES NOT match'}")  # type: ignore[index]
    if "cold" in result:
        c = result["cold"]
        lines += [f"  cold (empty cache, no shipped parses): {c['summary']}",  # type: ignore[index]
                  f"               {c['trials_per_s']} trials/s; texts {c['parse']['texts']}, distinct per batch "  # type: ignore[index]
                  f"{c['parse']['distinct']}, parsed {c['parse']['parsed']}, cache hits {c['parse']['cached']}"]  # type: ignore[index]
    if "seed" in result:
        lines.append(f"  seed the parse cache from the shipped file: {result['seed']['rows']} rows in "  # type: ignore[index]
                     f"{result['seed']['seconds']} s")  # type: ignore[index]
    lines += [
        f"  {'warm' if parser is not None else 'first'} pass : {f['summary']}",  # type: ignore[index]
        f"               {f['trials_per_s']} trials/s"  # type: ignore[index]
        + (f" ({result['first_with_seed_trials_per_s']} trials/s counting the seeding); parsed "  # type: ignore[index]
           f"{f['parse']['parsed']} texts, cache hits {f['parse']['cached']}" if parser is not None else "")  # type: ignore[index]
        + f"; goal >= 200 trials/s: {bc.goal((f['trials_per_s'] or 0) >= 200)}" * (parser is not None),  # type: ignore[index]
        f"               stored {rows['trials']} trials, {rows['criteria']} criteria "  # type: ignore[index]
        f"({rows['parsed_criteria']} parsed), {rows['locations']} locations; database {result['db_mb']} MB",  # type: ignore[index]
        f"  distinct criterion texts: {d['distinct_texts']} of {d['criterion_texts']} "  # type: ignore[index]
        f"(distinct share {d['distinct_share']:.1%})",  # type: ignore[index]
    ]
    if "cold_and_warm_parses_identical" in result:
        lines.append(f"  stored parses identical cold vs warm: {result['cold_and_warm_parses_identical']}")
    lines += [
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
