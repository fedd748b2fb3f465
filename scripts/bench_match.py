#!/usr/bin/env python3
"""Benchmark full-match latency on the bundled corpus and on a corpus scaled to --trials.

(a) bundled: a Services on a temporary SQLite database with AUTOLOAD_BUNDLED;
    ``ensure_trials()`` ingests data/trials (with criterion parsing), the
    TF-IDF index is fitted, then --queries synthetic patient descriptions
    (templates, fixed seed; scripts/_bench_common.py) are timed through
    ``Services.match(text, {"status": "ANY"}, top_k=10)`` (the call behind ``POST /api/v1/match``)
    after a warm-up.
(b) scaled: a copy of that database grown to --trials trials. Each extra trial
    is a copy of a stored real trial (``repo.iter_all()``) with a new id
    (NCT9xxxxxxx), a perturbed title/official title/brief summary (condition
    names of other records swapped in, words swapped or dropped, summary
    sentences shuffled, dropped or duplicated) and the SAME criteria, parsed
    structure included; copies are written with ``repo.upsert`` in batches of
    2,000 (no re-parsing). The index is fitted on the whole corpus and the same
    queries are timed.

For each corpus it reports p50/p95 match latency, a per-stage breakdown of a
second pass over the same queries (extraction, TF-IDF search, trial load,
criterion checks + ranking), the candidate depth and check depth, index
build figures (read from the database, fit, save, load from disk) and peak RSS
(``ru_maxrss``; tracemalloc peak of the query phase with --tracemalloc).
Prints figures only, never description text.

Goals: p50 <= 50 ms at ~1k trials (the bundled corpus has ~3.75k) and <= 200 ms at 100k.

    python scripts/bench_match.py --skip-scaled            # bundled corpus only (~6 min: ingest)
    python scripts/bench_match.py                          # + 100,000 trials
    python scripts/bench_match.py --trials 20000 --json
    python scripts/bench_match.py --workdir /tmp/tm-bench  # keep/reuse the ingested database
    python scripts/bench_match.py --skip-bundled --workdir /tmp/tm-bench --reuse-scaled  # and the 100k one
"""
from __future__ import annotations

import argparse
import gc
import random
import re
import shutil
import sys
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench_common as bc  # noqa: E402

GOAL_SMALL_MS = 50.0
GOAL_LARGE_MS = 200.0
GOAL_LARGE_AT = 100_000
FILTERS = {"status": "ANY"}
TOP_K = 10
BATCH = 2000

_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")


# --------------------------------------------------------------------------- scaled corpus


class Perturber:
    """Deterministic perturbation of titles and summaries (criteria are never touched)."""

    def __init__(self, records: list[Any], seed: int) -> None:
        self.rng = random.Random(seed)
        pool = {c.strip() for r in records for c in r.conditions if 3 <= len(c.strip()) <= 60}
        self.conditions = sorted(pool)

    def _swap_conditions(self, text: str, own: tuple[str, ...]) -> str:
        rng = self.rng
        for cond in own:
            if cond and rng.random() < 0.7:
                pattern = re.compile(re.escape(cond), re.IGNORECASE)
                if pattern.search(text):
                    text = pattern.sub(rng.choice(self.conditions).replace("\\", ""), text, count=1)
        return text

    def title(self, text: str | None, own: tuple[str, ...]) -> str | None:
        if not text:
            return text
        rng = self.rng
        text = self._swap_conditions(text, own)
        words = text.split()
        if len(words) > 3 and rng.random() < 0.5:  # swap two neighbouring words
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        if len(words) > 5 and rng.random() < 0.3:  # drop one word
            del words[rng.randrange(len(words))]
        if rng.random() < 0.3:
            words += ["in", rng.choice(self.conditions)]
        return " ".join(words)

    def summary(self, text: str | None, own: tuple[str, ...]) -> str | None:
        if not text:
            return text
        rng = self.rng
        sentences = [s for s in _SENTENCE_RE.split(self._swap_conditions(text, own)) if s]
        kept = [s for s in sentences if rng.random() >= 0.2] or sentences[:1]
        if len(kept) > 1 and rng.random() < 0.5:
            rng.shuffle(kept)
        if rng.random() < 0.2:
            kept.insert(rng.randrange(len(kept) + 1), rng.choice(kept))
        return " ".join(kept)

    def copy(self, record: Any, number: int) -> Any:
        own = record.conditions
        return replace(record, nct_id=f"NCT9{number:07d}", title=self.title(record.title, own) or record.title,
                       official_title=self.title(record.official_title, own),
                       brief_summary=self.summary(record.brief_summary, own))


def grow_corpus(runtime: Any, target: int, seed: int) -> dict[str, Any]:
    """Add perturbed copies of the stored trials until the corpus holds ``target`` trials."""
    with bc.Stopwatch() as read:
        real = list(runtime.repo.iter_all())
    start = len(real)
    extra = max(0, target - start)
    perturber = Perturber(real, seed)
    written = 0
    rng = random.Random(seed + 1)
    order = list(range(start))
    with bc.Stopwatch() as sw:
        number = 1
        while written < extra:
            batch = []
            for _ in range(min(BATCH, extra - written)):
                if not order:
                    order = list(range(start))
                base = real[order.pop(rng.randrange(len(order)))]
                batch.append(perturber.copy(base, number))
                number += 1
            counts = runtime.repo.upsert(batch)
            written += counts.added
            if written and written % 20_000 < BATCH:
                print(f"  ... {start + written} trials stored in total ({time.perf_counter() - sw.started:.0f} s)",
                      file=sys.stderr, flush=True)
    return {"base_trials": start, "copies_written": written, "read_base_s": round(read.seconds, 2),
            "insert_s": round(sw.seconds, 1), "insert_trials_per_s": round(written / sw.seconds, 1) if written else None}


# --------------------------------------------------------------------------- index


def build_index(runtime: Any) -> dict[str, Any]:
    """The corpus snapshot (records read from the database, criteria parsed where missing, index fit,
    records encoded) built and saved as ``Services.refresh`` does it, then loaded from disk by a second
    ``Services`` the way another worker or a CLI command would."""
    from assistant.services import Services
    from assistant.snapshot import CorpusSnapshot, snapshot_key

    version = runtime.repo.corpus_version()
    rss_before = bc.current_rss_mb()
    gc.collect()
    with bc.Stopwatch() as build:
        snap = CorpusSnapshot.build(runtime.repo.iter_all(), version, runtime.fingerprint,
                                    parse=runtime.parse_criteria, decoded_max=runtime.settings.SNAPSHOT_DECODED_MAX)
    peak_after_build = bc.peak_rss_mb()
    with bc.Stopwatch() as save:
        snap.save(runtime.snapshot_path)
    ranker = snap.index.ranker
    w = ranker.weighted_
    stats = {"trials": len(snap.trials), "terms": len(ranker.vocabulary_), "weighted_nnz": int(w.nnz),
             "matrices_mb": round((w.data.nbytes + w.indices.nbytes + w.indptr.nbytes) / 1e6, 1),
             "tokens_mb": round(sum(len(b) for b in ranker.tokens_) / 1e6, 1),
             "records_mb": round(sum(len(b) for b in snap.trials.blobs.values()) / 1e6, 1)}
    del snap, ranker, w
    gc.collect()
    other = Services(runtime.settings, pipeline=runtime.pipeline, lexicon=runtime.lexicon)
    with bc.Stopwatch() as load:
        loaded = CorpusSnapshot.load(other.snapshot_path, snapshot_key(version, runtime.fingerprint),
                                     runtime.settings.SNAPSHOT_DECODED_MAX)
    if loaded is None:
        print("warning: the saved snapshot was not found for the current corpus version", file=sys.stderr)
    del loaded, other  # a worker holds one snapshot: the one refresh() loads below
    gc.collect()
    runtime.refresh()  # the runtime under test now serves that saved snapshot
    return {**stats, "build_s": round(build.seconds, 2), "save_s": round(save.seconds, 2),
            "load_from_disk_s": round(load.seconds, 2),
            "snapshot_file_mb": round(runtime.snapshot_path.stat().st_size / 1e6, 1),
            "rss_before_mb": rss_before, "peak_rss_after_build_mb": peak_after_build,
            "rss_after_load_mb": bc.current_rss_mb()}


# --------------------------------------------------------------------------- queries


def time_queries(runtime: Any, queries: list[str], warmup: list[str], trace: bool) -> dict[str, Any]:
    for text in warmup:
        runtime.match(text, FILTERS, top_k=TOP_K)
    if trace:
        tracemalloc.start()
    seconds, returned = [], 0
    for i, text in enumerate(queries, 1):
        if i % 50 == 0:
            print(f"  ... query {i}/{len(queries)}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        result = runtime.match(text, FILTERS, top_k=TOP_K)
        seconds.append(time.perf_counter() - t0)
        returned += len(result.matches)
    out: dict[str, Any] = {**bc.latency_summary(seconds), "mean_returned": round(returned / len(queries), 2)}
    if trace:
        out["tracemalloc_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 1e6, 1)
        tracemalloc.stop()
    return out


def stage_breakdown(runtime: Any, queries: list[str]) -> dict[str, Any]:
    """A second pass mirroring ``match_profile`` step by step (same calls, separately timed)."""
    from assistant.matching.filters import parse_filters
    from assistant.matching.questions import choose_questions, trial_questions
    from assistant.matching.ranking import evaluate_trial, rank_matches
    from assistant.service import build_query

    settings = runtime.settings
    filters = parse_filters(FILTERS, default_statuses=settings["DEFAULT_STATUSES"])
    depth = int(settings["CANDIDATE_DEPTH"])
    check_depth = int(settings["CHECK_DEPTH"])
    snapshot = runtime.snapshot()
    stages: dict[str, list[float]] = {"extract": [], "search": [], "load_trials": [], "checks_rank": []}
    candidates, checked = [], []
    for text in queries:
        t0 = time.perf_counter()
        profile = runtime.extract(text)
        t1 = time.perf_counter()
        hits = snapshot.search(build_query(profile, runtime.lexicon.synonyms), k=depth, filters=filters)
        t2 = time.perf_counter()
        ids = hits.ids[:max(check_depth, TOP_K)]
        trials = snapshot.get_many(ids)
        records = [trials[i] for i in ids if i in trials]
        t3 = time.perf_counter()
        relevance = dict(zip(hits.ids, (float(s) for s in hits.scores)))
        top = max(relevance.values(), default=1.0)
        ranked = rank_matches([evaluate_trial(profile, t, relevance[t.nct_id], runtime.is_a, top)
                               for t in records])[:TOP_K]
        ranked = [replace(m, questions=trial_questions(m)) for m in ranked]
        choose_questions(ranked)
        t4 = time.perf_counter()
        for name, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            stages[name].append(dt)
        candidates.append(len(hits.ids))
        checked.append(len(records))
    out = {name: {k: v for k, v in bc.latency_summary(vals).items() if k in ("p50_ms", "p95_ms", "mean_ms")}
           for name, vals in stages.items()}
    return {"stages": out, "candidate_depth": depth, "check_depth": check_depth,
            "mean_candidates": round(sum(candidates) / len(candidates), 1),
            "mean_checked": round(sum(checked) / len(checked), 1)}


def bench_corpus(runtime: Any, label: str, queries: list[str], warmup: list[str], trace: bool) -> dict[str, Any]:
    print(f"[{label}] fitting the index ...", file=sys.stderr, flush=True)
    index = build_index(runtime)
    print(f"[{label}] timing {len(queries)} queries ...", file=sys.stderr, flush=True)
    latency = time_queries(runtime, queries, warmup, trace)
    breakdown = stage_breakdown(runtime, queries)
    st = breakdown["stages"]
    # how much the whole match costs over its two irreducible parts, measured in the same run
    latency["ratio_to_extract_plus_search"] = round(
        latency["p50_ms"] / max(st["extract"]["p50_ms"] + st["search"]["p50_ms"], 1e-6), 2)
    return {"trials": runtime.repo.count(), "index": index, "latency": latency, **breakdown,
            "peak_rss_mb": bc.peak_rss_mb(), "rss_mb": bc.current_rss_mb()}


# --------------------------------------------------------------------------- output


def describe(label: str, r: dict[str, Any], goal_ms: float | None, goal_text: str) -> list[str]:
    lat, ix, st = r["latency"], r["index"], r["stages"]
    lines = [f"{label}: {r['trials']} trials",
             f"  match latency over {lat['n']} queries: p50 {lat['p50_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms "
             f"(mean {lat['mean_ms']:.1f}, max {lat['max_ms']:.1f}); match p50 / (extraction p50 + search p50) "
             f"= {lat['ratio_to_extract_plus_search']}"
             + (f"  goal p50 <= {goal_ms:.0f} ms {goal_text} -> {bc.goal(lat['p50_ms'] <= goal_ms)}"
                if goal_ms is not None else "")]
    lines.append("  stages p50/p95 ms: " + ", ".join(f"{k} {v['p50_ms']:.1f}/{v['p95_ms']:.1f}" for k, v in st.items()))
    lines.append(f"  candidate depth {r['candidate_depth']} (mean {r['mean_candidates']} hits), check depth "
                 f"{r['check_depth']} (mean {r['mean_checked']} trials checked), top_k {TOP_K}, filters {FILTERS}")
    lines.append(f"  snapshot: built in {ix['build_s']:.1f} s (read {ix['trials']} trials from the database, "
                 f"TF-IDF fit: {ix['terms']} terms, {ix['weighted_nnz']} non-zeros in the weighted matrix "
                 f"({ix['matrices_mb']} MB), compressed token ids {ix['tokens_mb']} MB; "
                 f"compressed records {ix['records_mb']} MB), save {ix['save_s']:.1f} s "
                 f"({ix['snapshot_file_mb']} MB), load from disk {ix['load_from_disk_s']:.1f} s")
    lines.append(f"  memory: peak RSS after the build {ix['peak_rss_after_build_mb']} MB, RSS while serving "
                 f"{r['rss_mb']} MB"
                 + (f", tracemalloc peak during queries {lat['tracemalloc_peak_mb']} MB"
                    if "tracemalloc_peak_mb" in lat else ""))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=GOAL_LARGE_AT, help="size of the scaled corpus (default 100000)")
    ap.add_argument("--queries", type=int, default=200, help="timed queries per corpus (default 200)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed warm-up queries (default 10)")
    ap.add_argument("--seed", type=int, default=7, help="seed for queries and perturbation (default 7)")
    ap.add_argument("--skip-scaled", action="store_true", help="only the bundled corpus")
    ap.add_argument("--skip-bundled", action="store_true", help="only the scaled corpus")
    ap.add_argument("--workdir", type=Path, help="keep databases here; an existing bundled database is reused")
    ap.add_argument("--reuse-scaled", action="store_true",
                    help="with --workdir: reuse a scaled database of that size left by an earlier run instead of "
                         "growing it again (its snapshot is still rebuilt and timed)")
    ap.add_argument("--tracemalloc", action="store_true", help="also report tracemalloc peak of the query phase")
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of the summary")
    args = ap.parse_args(argv)

    from assistant.services import Services

    queries = bc.synthetic_descriptions(args.queries, seed=args.seed)
    warmup = bc.synthetic_descriptions(args.warmup, seed=args.seed + 1000)
    result: dict[str, Any] = {"benchmark": "match", "machine": bc.machine_info(), "loadavg_start": bc.loadavg(),
                              "queries": args.queries, "seed": args.seed,
                              "goals": {"p50_ms_bundled": GOAL_SMALL_MS, "p50_ms_100k": GOAL_LARGE_MS}}
    tmp = tempfile.TemporaryDirectory(prefix="tm-bench-match-")
    work = args.workdir or Path(tmp.name)
    try:
        base = work / "bundled"
        base.mkdir(parents=True, exist_ok=True)
        rt = Services(bc.temp_settings(base, autoload=True))
        with bc.Stopwatch() as sw:
            rt.pipeline  # noqa: B018
        result["pipeline_build_s"] = round(sw.seconds, 2)
        existing = rt.repo.count()
        print(f"[bundled] {'reusing ' + str(existing) + ' stored trials' if existing else 'ingesting the bundled trials'}"
              " ...", file=sys.stderr, flush=True)
        with bc.Stopwatch() as sw:
            rt.ensure_trials()
        result["ensure_trials_s"] = round(sw.seconds, 1) if not existing else None
        if not args.skip_bundled:
            result["bundled"] = bench_corpus(rt, "bundled", queries, warmup, args.tracemalloc)
        rt.engine.dispose()

        if not args.skip_scaled and args.trials > 0:
            scaled = work / "scaled"
            db = scaled / "bench.sqlite3"
            srt = None
            if args.reuse_scaled and db.exists():
                srt = Services(bc.temp_settings(scaled, autoload=False), pipeline=rt.pipeline, lexicon=rt.lexicon)
                if srt.repo.count() != args.trials:
                    srt.engine.dispose()
                    srt = None
            if srt is None:
                if scaled.exists():
                    shutil.rmtree(scaled)
                scaled.mkdir(parents=True)
                for suffix in ("", "-wal", "-shm"):  # the engine was disposed, so normally only the main file
                    if (base / f"bench.sqlite3{suffix}").exists():
                        shutil.copyfile(base / f"bench.sqlite3{suffix}", scaled / f"bench.sqlite3{suffix}")
                srt = Services(bc.temp_settings(scaled, autoload=False), pipeline=rt.pipeline, lexicon=rt.lexicon)
                print(f"[scaled] writing perturbed copies up to {args.trials} trials ...", file=sys.stderr, flush=True)
                grow = grow_corpus(srt, args.trials, args.seed)
            else:
                print(f"[scaled] reusing the {args.trials} stored trials ...", file=sys.stderr, flush=True)
                grow = {"base_trials": None, "copies_written": 0, "reused": True}
            grow["db_mb"] = round(db.stat().st_size / 1e6, 1)
            result["scaled_build"] = grow
            result["scaled"] = bench_corpus(srt, "scaled", queries, warmup, args.tracemalloc)
            srt.engine.dispose()
    finally:
        if args.workdir is None:
            tmp.cleanup()
    result["loadavg_end"] = bc.loadavg()
    result["peak_rss_mb"] = bc.peak_rss_mb()

    lines = [f"match benchmark at commit {result['machine']['commit']} "
             f"({result['machine']['modified_files']} tracked files modified; {args.queries} synthetic queries, seed {args.seed}, "
             f"Services.match(top_k={TOP_K}, filters={FILTERS}); python {result['machine']['python']}, "
             f"{result['machine']['cpus']} CPUs)",
             f"pipeline build {result['pipeline_build_s']:.1f} s"
             + (f"; bundled ingest (ensure_trials) {result['ensure_trials_s']:.0f} s"
                if result.get("ensure_trials_s") else "")]
    if "bundled" in result:
        lines += describe("bundled corpus", result["bundled"], GOAL_SMALL_MS, "(~1k trials)")
    if "scaled" in result:
        g = result["scaled_build"]
        if g.get("reused"):
            lines.append(f"scaled corpus: database of an earlier run reused (--reuse-scaled); {g['db_mb']} MB")
        else:
            lines.append(f"scaled corpus: {g['copies_written']} perturbed copies of {g['base_trials']} stored "
                         f"trials written in {g['insert_s']:.0f} s ({g['insert_trials_per_s']} trials/s, batches "
                         f"of {BATCH}); database {g['db_mb']} MB")
        n = result["scaled"]["trials"]
        goal_ms = GOAL_LARGE_MS if n >= GOAL_LARGE_AT else None
        lines += describe("scaled corpus", result["scaled"], goal_ms, "(100k trials)")
        if goal_ms is None:
            lines.append(f"  (the {GOAL_LARGE_MS:.0f} ms goal is for {GOAL_LARGE_AT} trials; this run has {n})")
    lines.append(f"peak RSS of this process: {result['peak_rss_mb']} MB; load average start {result['loadavg_start']}, "
                 f"end {result['loadavg_end']}")
    bc.emit(result, args.json, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
