"""Load generator: starts `trialmatch serve` (gunicorn) on 127.0.0.1 and measures it under load.

    python scripts/load_test.py --workers 2 --threads 2 --concurrency 8 --seconds 60            # mixed
    python scripts/load_test.py --scenario match --workers 2 --concurrency 4 --seconds 30      # match only

The mixed scenario has each client mix matches, chat (a session and its messages; a new session every four
turns) and referral writes (a public create, then a coordinator PATCH). Prints the requests, the errors by
kind, status and code, and p50/p95/p99 latency (ms) per kind; exits 1 on any error. Uses the database of the
current settings (TRIALMATCH_DATABASE_URL or the embedded SQLite default; loaded on first start): give it a
scratch database, the mixed scenario writes sessions, referrals and an API key. Only 127.0.0.1 is contacted.

    python scripts/load_test.py --scenario match --concurrency 4 --seconds 120 --reingest 100

runs the load twice on the same server, half the time each: alone, then while `trialmatch ingest` stores 100
changed bundled trials round after round (each round is a new corpus version: the ingesting process builds
and saves the snapshot, every worker loads it on its background thread). It prints both phases, the max
latency of each, and p95 during re-ingest / p95 steady (goal <= 1.5: no request waits for a refit).
"""
from __future__ import annotations

import argparse
import datetime as dt
import gzip
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TEXTS = [
    "52-year-old woman with SLE, lupus nephritis class IV on biopsy, failed mycophenolate and belimumab, UPCR 2.1 g/g",
    "67 year old man with metastatic non-small cell lung cancer, EGFR mutation, ECOG 1, prior osimertinib",
    "45F with type 2 diabetes and CKD stage 3, eGFR 42, HbA1c 8.1%, on metformin and insulin",
    "my mom is 71 and has heart failure, EF 30%, she is on sacubitril/valsartan and had a heart attack last year",
    "34-year-old man with relapsing multiple sclerosis on ocrelizumab, EDSS 3.0",
    "child aged 9 with severe asthma on inhaled corticosteroids, two exacerbations this year",
    "58M with multiple myeloma, 3 prior lines including daratumumab and lenalidomide, no prior anti-BCMA",
    "28-year-old pregnant woman with gestational diabetes at 26 weeks",
]


def _call(port: int, method: str, path: str, body: object = None,
          headers: dict[str, str] | None = None) -> tuple[int, str | None, dict, float]:
    """(status, error code, JSON body, ms); a connection failure is status 0."""
    data = json.dumps(body) if body is not None else None
    hdrs = {"Content-Type": "application/json", **(headers or {})} if data is not None else dict(headers or {})
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        status = resp.status
    except (OSError, http.client.HTTPException) as exc:
        return 0, type(exc).__name__, {}, (time.perf_counter() - start) * 1000
    finally:
        conn.close()
    ms = (time.perf_counter() - start) * 1000
    try:
        payload = json.loads(raw) if raw else {}
    except ValueError:
        payload = {}
    code = (payload.get("error") or {}).get("code") if isinstance(payload, dict) and status >= 400 else None
    return status, code, payload if isinstance(payload, dict) else {}, ms


def _post(port: int, text: str) -> tuple[int, float]:
    status, _, _, ms = _call(port, "POST", "/api/v1/match", {"text": text, "top_k": 10, "filters": {"status": "ANY"}})
    return status, ms


class Recorder:
    """Latencies and errors per kind of request (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter = Counter()

    def add(self, kind: str, status: int, code: str | None, ms: float, expected: int) -> bool:
        with self.lock:
            self.ms[kind].append(ms)
            if status != expected:
                self.errors[f"{kind} {status} {code or ''}".strip()] += 1
        return status == expected

    def summary(self, elapsed: float) -> dict:
        def pct(values: list[float]) -> dict:
            q = statistics.quantiles(values, n=100) if len(values) > 1 else [values[0] if values else 0.0] * 99
            return {"requests": len(values), "p50_ms": round(q[49], 1), "p95_ms": round(q[94], 1),
                    "p99_ms": round(q[98], 1), "max_ms": round(max(values, default=0.0), 1)}

        every = [v for values in self.ms.values() for v in values]
        return {"seconds": round(elapsed, 1), "requests": len(every),
                "requests_per_s": round(len(every) / elapsed, 1) if elapsed else 0.0,
                "errors": sum(self.errors.values()), "errors_by_kind_status_code": dict(self.errors),
                "all": pct(every), "kinds": {k: pct(v) for k, v in sorted(self.ms.items())}}


def mixed_client(port: int, seed: int, stop: float, rec: Recorder, key: str, nct_ids: list[str]) -> None:
    """One user of the widget and one coordinator, interleaved: match, chat, refer, review."""
    rng = random.Random(seed)
    session: str | None = None
    turns = 0
    while time.time() < stop:
        roll = rng.random()
        if roll < 0.35:
            status, code, _, ms = _call(port, "POST", "/api/v1/match",
                                        {"text": rng.choice(TEXTS), "top_k": 10, "filters": {"status": "ANY"}})
            rec.add("match", status, code, ms, 200)
        elif roll < 0.75:
            if session is None or turns >= 4:
                status, code, body, ms = _call(port, "POST", "/api/v1/sessions", {})
                if not rec.add("session_create", status, code, ms, 201):
                    continue
                session, turns = body["id"], 0
            status, code, _, ms = _call(port, "POST", f"/api/v1/sessions/{session}/messages",
                                        {"text": rng.choice(TEXTS), "filters": {"status": "ANY"}})
            rec.add("chat_message", status, code, ms, 200)
            turns += 1
        else:
            status, code, body, ms = _call(port, "POST", "/api/v1/referrals",
                                           {"nct_id": rng.choice(nct_ids), "text": rng.choice(TEXTS),
                                            "contact_ref": f"load client {seed}"})
            if not rec.add("referral_create", status, code, ms, 201):
                continue
            status, code, _, ms = _call(port, "PATCH", f"/api/v1/referrals/{body['id']}",
                                        {"status": rng.choice(["in_review", "contacted", "not_eligible"]),
                                         "note": "load test"}, headers={"X-API-Key": key})
            rec.add("referral_patch", status, code, ms, 200)


def _prepare_mixed() -> tuple[str, list[str]]:
    """A coordinator key and a few trial ids, from the database the server will use."""
    from assistant.services import Services
    from assistant.settings import load_settings

    rt = Services(load_settings({"PRELOAD": False}))
    rt.ensure_trials(progress=False)
    nct_ids = [t.nct_id for t in rt.repo.list(page=1, per_page=20).items]
    # widget referrals to unmapped trials belong to DEFAULT_TEAM: a coordinator of that team reviews them
    key = rt.keys.create(f"load-test-{int(time.time())}-{os.getpid()}", "coordinator",
                         team=rt.settings.get("DEFAULT_TEAM") or "default")
    rt.engine.dispose()
    return key, nct_ids


def _wait_ready(port: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/v1/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit("server did not become ready")


def _changed_studies(folder: Path, n: int, round_no: int) -> Path:
    """N bundled trials, each changed (title and a later last-update date), written for one ingest round."""
    path = folder / f"changed-{round_no}.jsonl"
    day = dt.date(2031, 1, 1) + dt.timedelta(days=round_no)
    with gzip.open(ROOT / "data" / "trials" / "studies.jsonl.gz", "rt", encoding="utf-8") as src, \
            open(path, "w", encoding="utf-8") as out:
        for _, line in zip(range(n), src):
            study = json.loads(line)
            ps = study["protocolSection"]
            ps["identificationModule"]["briefTitle"] = f"{ps['identificationModule'].get('briefTitle', '')} [r{round_no}]"
            ps.setdefault("statusModule", {})["lastUpdatePostDateStruct"] = {"date": day.isoformat()}
            out.write(json.dumps(study) + "\n")
    return path


def _run_phase(args: argparse.Namespace, env: dict[str, str], key: str, nct_ids: list[str], seconds: float,
               reingest: bool) -> dict[str, Any]:
    rec = Recorder()
    stop = time.time() + seconds

    def match_client(seed: int) -> None:
        rng = random.Random(seed)
        while time.time() < stop:
            status, code, _, ms = _call(args.port, "POST", "/api/v1/match",
                                        {"text": rng.choice(TEXTS), "top_k": 10, "filters": {"status": "ANY"}})
            rec.add("match", status, code, ms, 200)

    ingests = {"rounds": 0, "seconds": 0.0}

    def reingest_rounds() -> None:
        with tempfile.TemporaryDirectory(prefix="tm-reingest-") as tmp:
            while time.time() < stop:
                path = _changed_studies(Path(tmp), args.reingest, ingests["rounds"] + int(time.time()) % 10_000)
                started = time.time()
                subprocess.run([sys.executable, "-m", "assistant.cli", "ingest", "-q", str(path)], env=env,
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
                ingests["rounds"] += 1
                ingests["seconds"] += time.time() - started

    if args.scenario == "mixed":
        threads = [threading.Thread(target=mixed_client, args=(args.port, i, stop, rec, key, nct_ids))
                   for i in range(args.concurrency)]
    else:
        threads = [threading.Thread(target=match_client, args=(i,)) for i in range(args.concurrency)]
    if reingest:
        threads.append(threading.Thread(target=reingest_rounds))
    started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {**rec.summary(time.time() - started), "reingests": ingests["rounds"],
            "reingest_mean_s": round(ingests["seconds"] / ingests["rounds"], 1) if ingests["rounds"] else None}


def _print_phase(name: str, result: dict[str, Any]) -> None:
    print(f"[{name}] " + " ".join(f"{k}: {result[k]}" for k in ("seconds", "requests", "requests_per_s", "errors",
                                                                 "reingests", "reingest_mean_s")))
    for kind, row in [("all", result["all"]), *result["kinds"].items()]:
        print(f"  {kind:<16} requests {row['requests']:>6}  p50 {row['p50_ms']:>8.1f} ms  "
              f"p95 {row['p95_ms']:>8.1f} ms  p99 {row['p99_ms']:>8.1f} ms  max {row.get('max_ms', 0):>8.1f} ms")
    for what, n in sorted(result["errors_by_kind_status_code"].items()):
        print(f"  error {what}: {n}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", choices=["mixed", "match"], default="mixed")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--port", type=int, default=5077)
    ap.add_argument("--reingest", type=int, nargs="?", const=100, default=0, metavar="N",
                    help="run the load twice, half of --seconds each: first alone, then while `trialmatch ingest` "
                         "re-ingests N changed bundled trials (default 100) round after round; prints both "
                         "phases and the ratio of their p95")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    env = {**os.environ, "TRIALMATCH_RATE_LIMIT": "1000000 per minute",
           "TRIALMATCH_COORDINATOR_RATE_LIMIT": "1000000 per minute"}
    key, nct_ids = _prepare_mixed() if args.scenario == "mixed" else ("", [])
    server = subprocess.Popen([sys.executable, "-m", "assistant.cli", "serve", "--host", "127.0.0.1", "--workers",
                               str(args.workers), "--threads", str(args.threads), "--port", str(args.port)],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(args.port, 900)
        for text in TEXTS:  # warm every worker
            _post(args.port, text)
        phases = [("steady", args.seconds / 2), ("reingest", args.seconds / 2)] if args.reingest else [
            ("steady", args.seconds)]
        results = {name: _run_phase(args, env, key, nct_ids, seconds, reingest=name == "reingest")
                   for name, seconds in phases}
        result = {"scenario": args.scenario, "workers": args.workers, "threads": args.threads,
                  "concurrency": args.concurrency, **results["steady"]}
        if "reingest" in results:
            result["during_reingest"] = results["reingest"]
            result["p95_ratio_reingest_to_steady"] = round(
                results["reingest"]["all"]["p95_ms"] / max(results["steady"]["all"]["p95_ms"], 1e-6), 2)
        if args.json:
            print(json.dumps(result))
        else:
            for name, row in results.items():
                _print_phase(name, row)
            if "p95_ratio_reingest_to_steady" in result:
                print(f"p95 during re-ingest / p95 steady: {result['p95_ratio_reingest_to_steady']} (goal <= 1.5)")
        return 1 if any(r["errors"] for r in results.values()) else 0
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
