"""Load generator: starts `trialmatch serve` (gunicorn) on 127.0.0.1 and measures /api/v1/match.

    python scripts/load_test.py --workers 2 --concurrency 4 --seconds 30

Prints requests/s and p50/p95/p99 latency (ms) and the status codes seen. Uses the database of the
current settings (TRIALMATCH_DATABASE_URL or the embedded SQLite default; loaded on first start).
Optionally re-ingests a file while the load runs (--reingest FILE) to measure load under refresh.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter

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


def _post(port: int, text: str) -> tuple[int, float]:
    body = json.dumps({"text": text, "top_k": 10, "filters": {"status": "ANY"}})
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/api/v1/match", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, (time.perf_counter() - start) * 1000
    finally:
        conn.close()


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--port", type=int, default=5077)
    ap.add_argument("--reingest", help="a study file to ingest repeatedly while the load runs")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    env = {**os.environ, "TRIALMATCH_RATE_LIMIT": "1000000 per minute"}
    server = subprocess.Popen([sys.executable, "-m", "assistant.cli", "serve", "--workers", str(args.workers),
                               "--threads", str(args.threads), "--port", str(args.port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(args.port, 900)
        for text in TEXTS:  # warm every worker
            _post(args.port, text)
        latencies: list[float] = []
        codes: Counter = Counter()
        stop = time.time() + args.seconds
        lock = threading.Lock()

        def client(seed: int) -> None:
            rng = random.Random(seed)
            while time.time() < stop:
                status, ms = _post(args.port, rng.choice(TEXTS))
                with lock:
                    codes[status] += 1
                    latencies.append(ms)

        ingests = 0

        def reingest() -> None:
            nonlocal ingests
            while time.time() < stop:
                subprocess.run([sys.executable, "-m", "assistant.cli", "ingest", "-q", args.reingest], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
                ingests += 1

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.concurrency)]
        if args.reingest:
            threads.append(threading.Thread(target=reingest))
        started = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.time() - started
        q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
        result = {"workers": args.workers, "threads": args.threads, "concurrency": args.concurrency,
                  "seconds": round(elapsed, 1), "requests": len(latencies),
                  "requests_per_s": round(len(latencies) / elapsed, 1), "p50_ms": round(q[49], 1),
                  "p95_ms": round(q[94], 1), "p99_ms": round(q[98], 1), "status_codes": dict(codes),
                  "reingests": ingests}
        print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
        return 0 if set(codes) == {200} else 1
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
