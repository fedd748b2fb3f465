#!/usr/bin/env python3
"""Benchmark the extraction pipeline: load time and single-core throughput.

(a) Load time: ``build_pipeline(lexicon=default_lexicon())`` in a FRESH Python
    subprocess, split into imports, lexicon load and pipeline build (plus the
    first extraction, and the subprocess wall time including interpreter
    start-up). Each variant runs --load-runs times and the median is reported:
    - cold: $TRIALMATCH_CACHE_DIR points at a new empty temp folder per run, so
      the terminology component prepares its matcher index from the lexicon;
    - warm: the same temp cache folder, filled by one priming run first.
(b) Throughput: ``extract_profile(nlp, text)`` on --n synthetic patient
    descriptions (templates, fixed seed; see scripts/_bench_common.py) in this
    one process, pinned to one CPU with OMP/MKL/OpenBLAS threads set to 1.

Prints figures only (never description text). Goals: >= 200 descriptions/s, load < 3 s.

    python scripts/bench_extraction.py            # human-readable summary
    python scripts/bench_extraction.py --json     # one JSON line
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench_common as bc  # noqa: E402

bc.single_thread_env()  # before numpy/spaCy are imported (they are imported lazily below)

GOAL_RATE = 200.0  # descriptions per second
GOAL_LOAD_S = 3.0

CHILD_CODE = r"""
import json, time
t0 = time.perf_counter()
import spacy  # noqa: F401
ta = time.perf_counter()
import medspacy  # noqa: F401  (pulls in quickumls -> nltk -> scipy.stats)
tb = time.perf_counter()
from nlp.lexicon import default_lexicon
from nlp.pipeline import build_pipeline
from nlp.components import demographics, measurements, terminology, timing  # noqa: F401
from nlp.profile import extract_profile
t1 = time.perf_counter()
lexicon = default_lexicon()
t2 = time.perf_counter()
nlp = build_pipeline(lexicon=lexicon)
t3 = time.perf_counter()
extract_profile(nlp, "58-year-old woman with stage II breast cancer on tamoxifen.")
t4 = time.perf_counter()
print(json.dumps({"imports_s": t1 - t0, "import_spacy_s": ta - t0, "import_medspacy_s": tb - ta,
                  "import_project_s": t1 - tb, "lexicon_s": t2 - t1, "build_s": t3 - t2, "first_extract_s": t4 - t3}))
"""


def run_child(cache_dir: Path) -> dict[str, float]:
    env = dict(os.environ, TRIALMATCH_CACHE_DIR=str(cache_dir))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD_CODE], cwd=str(bc.ROOT), env=env, capture_output=True,
                          text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"load subprocess failed ({proc.returncode}): {proc.stderr[-2000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    data["load_s"] = data["imports_s"] + data["lexicon_s"] + data["build_s"]
    data["process_wall_s"] = wall
    return data


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}


def bench_load(runs: int) -> dict[str, object]:
    cold_runs, warm_runs = [], []
    with tempfile.TemporaryDirectory(prefix="tm-bench-cache-") as tmp:
        for i in range(runs):  # every cold run gets its own empty cache folder
            cold_runs.append(run_child(Path(tmp) / f"cold{i}"))
        warm_dir = Path(tmp) / "warm"
        run_child(warm_dir)  # priming run: fills the cache, not counted
        for _ in range(runs):
            warm_runs.append(run_child(warm_dir))
    return {"runs": runs, "cold": median_of(cold_runs), "warm": median_of(warm_runs),
            "cold_all_load_s": [round(r["load_s"], 3) for r in cold_runs],
            "warm_all_load_s": [round(r["load_s"], 3) for r in warm_runs]}


def bench_throughput(n: int, seed: int, warmup: int, pin: bool) -> dict[str, object]:
    cpu = bc.pin_to_one_core() if pin else None
    from nlp.lexicon import default_lexicon
    from nlp.pipeline import build_pipeline
    from nlp.profile import extract_profile

    nlp = build_pipeline(lexicon=default_lexicon())
    texts = bc.synthetic_descriptions(n, seed=seed)
    for text in bc.synthetic_descriptions(warmup, seed=seed + 1):
        extract_profile(nlp, text)
    per_doc: list[float] = []
    counts = {"conditions": 0, "labs": 0, "therapies": 0, "with_age": 0, "with_sex": 0}
    started = time.perf_counter()
    for text in texts:
        t0 = time.perf_counter()
        profile = extract_profile(nlp, text)
        per_doc.append(time.perf_counter() - t0)
        counts["conditions"] += len(profile.conditions)
        counts["labs"] += len(profile.labs)
        counts["therapies"] += len(profile.therapies)
        counts["with_age"] += profile.age_years is not None
        counts["with_sex"] += profile.sex is not None
    total = time.perf_counter() - started
    lat = bc.latency_summary(per_doc)
    return {"n": n, "seed": seed, "pinned_cpu": cpu, "threads_env": os.environ.get("OMP_NUM_THREADS"),
            "total_s": round(total, 3), "descriptions_per_s": round(n / total, 1),
            "p50_ms": lat["p50_ms"], "p95_ms": lat["p95_ms"], "mean_ms": lat["mean_ms"], "max_ms": lat["max_ms"],
            "mean_chars": round(statistics.fmean(len(t) for t in texts), 1), "extracted": counts}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="synthetic descriptions to time (default 1000)")
    ap.add_argument("--seed", type=int, default=20261122, help="generator seed (default 20261122)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed warm-up descriptions (default 20)")
    ap.add_argument("--load-runs", type=int, default=3, help="subprocess runs per load variant (default 3)")
    ap.add_argument("--skip-load", action="store_true", help="skip the load-time subprocesses")
    ap.add_argument("--skip-throughput", action="store_true", help="skip the throughput run")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the throughput run to one CPU")
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of the summary")
    args = ap.parse_args(argv)

    result: dict[str, object] = {"benchmark": "extraction", "machine": bc.machine_info(),
                                 "goals": {"descriptions_per_s": GOAL_RATE, "load_s": GOAL_LOAD_S}}
    result["loadavg_start"] = bc.loadavg()
    lines = [f"extraction benchmark (python {result['machine']['python']}, {os.cpu_count()} CPUs, "
             f"commit {result['machine']['commit']}, {result['machine']['modified_files']} tracked files modified)"]  # type: ignore[index]
    if not args.skip_load:
        load = bench_load(args.load_runs)
        result["load"] = load
        lines.append(f"load time, fresh subprocess, median of {args.load_runs} (goal < {GOAL_LOAD_S:.0f} s):")
        for name in ("cold", "warm"):
            m = load[name]  # type: ignore[index]
            lines.append(f"  {name:<4} cache: imports {m['imports_s']:.2f} s + lexicon {m['lexicon_s']:.2f} s + "
                         f"build {m['build_s']:.2f} s = {m['load_s']:.2f} s  -> {bc.goal(m['load_s'] < GOAL_LOAD_S)}"
                         f"   (first extraction {m['first_extract_s'] * 1000:.0f} ms; "
                         f"whole process {m['process_wall_s']:.2f} s)")
            lines.append(f"             imports = spacy {m['import_spacy_s']:.2f} s + medspacy "
                         f"{m['import_medspacy_s']:.2f} s + project modules {m['import_project_s']:.2f} s")
    if not args.skip_throughput:
        tp = bench_throughput(args.n, args.seed, args.warmup, pin=not args.no_pin)
        result["throughput"] = tp
        pinned = f"pinned to CPU {tp['pinned_cpu']}" if tp["pinned_cpu"] is not None else "not pinned"
        lines.append(f"throughput, one process ({pinned}, OMP/MKL threads=1), {tp['n']} synthetic descriptions "
                     f"(mean {tp['mean_chars']:.0f} chars, seed {tp['seed']}):")
        lines.append(f"  {tp['descriptions_per_s']:.1f} descriptions/s  (goal >= {GOAL_RATE:.0f}) -> "
                     f"{bc.goal(tp['descriptions_per_s'] >= GOAL_RATE)}")  # type: ignore[operator]
        lines.append(f"  per description: p50 {tp['p50_ms']:.2f} ms, p95 {tp['p95_ms']:.2f} ms, "
                     f"mean {tp['mean_ms']:.2f} ms, max {tp['max_ms']:.2f} ms; total {tp['total_s']:.2f} s")
        ex = tp["extracted"]
        lines.append(f"  extracted (sanity): {ex['conditions']} conditions, {ex['labs']} labs, "  # type: ignore[index]
                     f"{ex['therapies']} therapies, age in {ex['with_age']}, sex in {ex['with_sex']}")  # type: ignore[index]
    result["loadavg_end"] = bc.loadavg()
    lines.append(f"load average (1/5/15 min) at start {result['loadavg_start']}, at end {result['loadavg_end']}")
    result["peak_rss_mb"] = bc.peak_rss_mb()
    lines.append(f"peak RSS of this process: {result['peak_rss_mb']} MB")
    bc.emit(result, args.json, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
