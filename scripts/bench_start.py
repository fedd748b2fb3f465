#!/usr/bin/env python3
"""Benchmark a first start and cold commands, the way a new user meets them.

1. ``trialmatch serve`` on a fresh instance folder (empty SQLite database): seconds until the port answers,
   the ``/api/v1/health`` progress seen while loading, and seconds until it answers 200 (healthy).
2. The same server started again on that folder (the saved snapshot is loaded): seconds until healthy.
3. ``trialmatch match "<description>"`` as a cold command (a new process each time), median of --runs.

Only 127.0.0.1 is contacted; the description is a synthetic one and is not printed.

    python scripts/bench_start.py            # ~2 min on 2 cores
    python scripts/bench_start.py --json
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench_common as bc  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEXT = "52-year-old woman with systemic lupus erythematosus and lupus nephritis class IV, failed mycophenolate"


def _health(port: int) -> tuple[int, dict[str, Any]] | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/api/v1/health")
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    except (OSError, ValueError):
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(env: dict[str, str], timeout: float) -> dict[str, Any]:
    port = _free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "assistant.cli", "serve", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_open = healthy = None
    progress: list[tuple[float, int, int]] = []
    try:
        while time.perf_counter() - started < timeout:
            got = _health(port)
            now = time.perf_counter() - started
            if got is not None:
                port_open = port_open if port_open is not None else now
                status, body = got
                p = body.get("progress") or {}
                if status == 200:
                    healthy = now
                    break
                if body.get("status") == "loading":
                    progress.append((round(now, 1), int(p.get("done", 0)), int(p.get("total", 0))))
            time.sleep(0.25)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return {"port_open_s": round(port_open, 1) if port_open is not None else None,
            "healthy_s": round(healthy, 1) if healthy is not None else None,
            "progress_samples": progress[:: max(1, len(progress) // 6)] + progress[-1:] if progress else []}


def cold_match(env: dict[str, str], runs: int) -> dict[str, Any]:
    seconds = []
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "assistant.cli", "match", TEXT], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        seconds.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise SystemExit(f"trialmatch match failed ({done.returncode})")
    return {"runs": runs, "median_s": round(statistics.median(seconds), 2), "all_s": [round(s, 2) for s in seconds]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="cold `trialmatch match` runs (default 3)")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result: dict[str, Any] = {"benchmark": "start", "machine": bc.machine_info(), "loadavg_start": bc.loadavg()}
    with tempfile.TemporaryDirectory(prefix="tm-bench-start-") as tmp:
        env = {**os.environ, "TRIALMATCH_INSTANCE_PATH": tmp, "TRIALMATCH_DATABASE_URL": "",
               "TRIALMATCH_LOG_LEVEL": "WARNING"}
        result["first_serve"] = start_server(env, args.timeout)
        result["second_serve"] = start_server(env, args.timeout)
        result["cold_match"] = cold_match(env, args.runs)
    result["loadavg_end"] = bc.loadavg()
    first, second, cold = result["first_serve"], result["second_serve"], result["cold_match"]
    lines = [f"start benchmark at commit {result['machine']['commit']} ({result['machine']['cpus']} CPUs)",
             f"first `trialmatch serve` on an empty database: port answers after {first['port_open_s']} s, healthy "
             f"after {first['healthy_s']} s (goal <= 60 s -> {bc.goal((first['healthy_s'] or 1e9) <= 60)})",
             "  /health progress while loading (s, done, total): " + ", ".join(
                 f"({t}, {d}, {n})" for t, d, n in first["progress_samples"]),
             f"second start on the same folder: healthy after {second['healthy_s']} s",
             f"cold `trialmatch match`: median {cold['median_s']} s over {cold['runs']} runs {cold['all_s']} "
             f"(goal <= 3 s -> {bc.goal(cold['median_s'] <= 3)})",
             f"load average start {result['loadavg_start']}, end {result['loadavg_end']}"]
    bc.emit(result, args.json, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
