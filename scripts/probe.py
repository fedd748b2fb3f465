"""Reliability probe (issue 11) against `trialmatch serve` on this machine only (loopback).

    python scripts/probe.py                      # starts its own servers (2 workers x 2 threads)
    python scripts/probe.py --url http://127.0.0.1:5000   # targets a running server for the generic items

Uses the database of the current settings (TRIALMATCH_DATABASE_URL, or the embedded SQLite default); give a
scratch database: the probe writes sessions, referrals and API keys into it. Besides the main server it
starts small ones with their own settings: one whose rate-limit store is unreachable (redis://127.0.0.1:1),
one with low limits behind PROXY_HOPS=1, and (with --url) one configured for teams and retention.

Items: concurrent chat and referral writes; hostile input (deep nesting, NUL and lone surrogates in every
string field of every route, query strings and path parts included; oversized bodies, chunked too; over-long
URL and headers; a NUL in a header); expensive input against EXTRACTION_BUDGET_SECONDS; rate limits that
fail closed; coordinator limits; PROXY_HOPS; retention (deleted or purged text gone from the database files);
referral scoping across two team keys; {"phase": "phase 2"}; log lines printed once, without patient text or
session ids. Every loop is bounded; only 127.0.0.0/8 or ::1 is ever contacted. Prints attempts and failures
per item and exits 1 on any failure (2 on a refused target).
"""
from __future__ import annotations

import argparse
import datetime as dt
import http.client
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MARK = "zqxprobe"  # in every patient text the probe sends: it must never appear in a log
TEXT = f"52-year-old woman with systemic lupus erythematosus and lupus nephritis, failed mycophenolate {MARK}"
STARTUP_SECONDS = 900
REQUEST_TIMEOUT = 60.0
SERVER_LOGS: list[Path] = []


@dataclass(frozen=True)
class Resp:
    status: int
    headers: dict[str, str]
    body: bytes
    ms: float

    def json(self) -> dict | None:
        try:
            value = json.loads(self.body)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    @property
    def code(self) -> str | None:
        data = self.json()
        return (data.get("error") or {}).get("code") if data else None


class Tally:
    def __init__(self) -> None:
        self.attempts: Counter = Counter()
        self.failures: Counter = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)
        self.notes: dict[str, list[str]] = defaultdict(list)
        self.lock = threading.Lock()

    def check(self, item: str, ok: bool, what: str) -> bool:
        with self.lock:
            self.attempts[item] += 1
            if not ok:
                self.failures[item] += 1
                if len(self.examples[item]) < 6:
                    self.examples[item].append(what)
        return ok

    def note(self, item: str, text: str) -> None:
        self.notes[item].append(text)


# --------------------------------------------------------------------------- HTTP


def request(port: int, method: str, path: str, body: object = None, headers: dict[str, str] | None = None,
            raw: bytes | None = None, timeout: float = REQUEST_TIMEOUT) -> Resp:
    hdrs = dict(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
    if data is not None:
        hdrs.setdefault("Content-Type", "application/json")
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        payload = r.read()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, payload,
                    (time.perf_counter() - start) * 1000)
    except (OSError, http.client.HTTPException) as exc:
        return Resp(0, {}, repr(exc).encode(), (time.perf_counter() - start) * 1000)
    finally:
        conn.close()


def raw_request(port: int, head: bytes, body_chunks: list[bytes] | None = None, chunked: bool = False,
                timeout: float = REQUEST_TIMEOUT) -> Resp:
    """Bytes on a socket: for what http.client refuses to send (a NUL in a header, a hand-made chunked body)."""
    start = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(head)
            try:
                for chunk in body_chunks or []:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # the server may answer (413) and close before the whole body is sent
            data = b""
            while True:
                try:
                    part = sock.recv(65536)
                except OSError:
                    break
                if not part:
                    break
                data += part
    except OSError as exc:
        return Resp(0, {}, repr(exc).encode(), (time.perf_counter() - start) * 1000)
    head_part, _, payload = data.partition(b"\r\n\r\n")
    lines = head_part.split(b"\r\n")
    match = re.match(rb"HTTP/1\.[01] (\d{3})", lines[0] if lines else b"")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        payload = _dechunk(payload)
    return Resp(int(match.group(1)) if match else 0, headers, payload, (time.perf_counter() - start) * 1000)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out, data = out + rest[:size], rest[size + 2:]
    return out


def is_json_error(resp: Resp, status: int | None = None, code: str | None = None) -> bool:
    if resp.headers.get("content-type", "").split(";")[0] != "application/json" or resp.code is None:
        return False
    return (status is None or resp.status == status) and (code is None or resp.code == code)


def client_error(resp: Resp) -> bool:
    """A 4xx answered in JSON with a stable code: what bad input must get (never a 5xx or an HTML page)."""
    return 400 <= resp.status < 500 and is_json_error(resp)


# --------------------------------------------------------------------------- servers


def check_loopback(url: str) -> int:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "http" or not loopback:
        raise SystemExit(2)
    return parts.port or 80


def start_server(port: int, workers: int, threads: int, env_extra: dict[str, str], log_dir: Path,
                 name: str) -> subprocess.Popen:
    log = log_dir / f"{name}.log"
    SERVER_LOGS.append(log)
    env = {**os.environ, **env_extra}
    return subprocess.Popen([sys.executable, "-m", "assistant.cli", "serve", "--host", "127.0.0.1", "--port",
                             str(port), "--workers", str(workers), "--threads", str(threads)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=log.open("wb"), start_new_session=True)


def wait_listening(port: int, proc: subprocess.Popen | None, timeout: float = STARTUP_SECONDS) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {proc.returncode}")
        if request(port, "GET", "/api/v1/health", timeout=5).status in (200, 503):
            return
        time.sleep(1)
    raise SystemExit(f"server on port {port} did not answer within {timeout:.0f} s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: gunicorn's master and its workers
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


# --------------------------------------------------------------------------- items


def concurrent_writes(t: Tally, port: int, keys: dict[str, str], nct: str, clients: int = 8, turns: int = 4) -> None:
    item = "concurrent_chat_and_referral_writes"
    admin = {"X-API-Key": keys["admin"]}

    def one(i: int) -> None:
        r = request(port, "POST", "/api/v1/sessions", body={})
        if not t.check(item, r.status == 201, f"create session {r.status}"):
            return
        sid = (r.json() or {})["id"]
        for k in range(turns):
            r = request(port, "POST", f"/api/v1/sessions/{sid}/messages",
                        body={"text": f"{TEXT} turn {k}", "filters": {"status": "ANY"}})
            t.check(item, r.status == 200, f"message {r.status} {r.code}")
            r = request(port, "POST", "/api/v1/referrals", body={"nct_id": nct, "text": f"{TEXT} client {i}",
                                                                 "contact_ref": f"client {i}"})
            if t.check(item, r.status == 201, f"referral {r.status} {r.code}"):
                rid = (r.json() or {})["id"]
                r = request(port, "PATCH", f"/api/v1/referrals/{rid}", body={"status": "in_review", "note": "x"},
                            headers=admin)
                t.check(item, r.status == 200, f"patch {r.status} {r.code}")
        r = request(port, "GET", f"/api/v1/sessions/{sid}")
        t.check(item, r.status == 200 and len((r.json() or {}).get("messages", ())) == 2 * turns,
                f"transcript {r.status}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def _deep(kind: str, n: int = 1000) -> str:
    return ("[" * n + "]" * n) if kind == "array" else ('{"a":' * n + "1" + "}" * n)


def json_routes(port: int, keys: dict[str, str], nct: str) -> list[tuple[str, str, dict, dict[str, str]]]:
    """(method, path, a valid body, headers) for every route with a JSON body."""
    sid = (request(port, "POST", "/api/v1/sessions", body={}).json() or {}).get("id", "x" * 40)
    rid = (request(port, "POST", "/api/v1/referrals", body={"nct_id": nct, "text": TEXT, "contact_ref": "c"}).json()
           or {}).get("id", 1)
    coordinator = {"X-API-Key": keys["admin"]}
    filters = {"status": ["RECRUITING"], "phase": ["PHASE2"], "country": "United States", "state": "Ohio",
               "city": "Cleveland"}
    return [
        ("POST", "/api/v1/match", {"text": TEXT, "top_k": 3, "filters": filters}, {}),
        ("POST", "/api/v1/sessions", {"locale": "en"}, {}),
        ("POST", f"/api/v1/sessions/{sid}/messages", {"text": TEXT, "filters": filters}, {}),
        ("POST", "/api/v1/referrals", {"nct_id": nct, "text": TEXT, "contact_ref": "phone 555"}, {}),
        ("POST", "/api/v1/referrals", {"nct_id": nct, "session_id": sid, "contact_ref": "phone 555"}, {}),
        ("PATCH", f"/api/v1/referrals/{rid}", {"status": "in_review", "note": "called back"}, coordinator),
    ]


def _string_paths(value: object, path: tuple = ()) -> list[tuple]:
    if isinstance(value, str):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _string_paths(v, path + (k,))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _string_paths(v, path + (i,))]
    return []


def _replace(value: object, path: tuple, new: str) -> object:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)  # type: ignore[call-overload]
    copy[path[0]] = _replace(copy[path[0]], path[1:], new)
    return copy


def hostile_json(t: Tally, port: int, keys: dict[str, str], nct: str) -> None:
    for method, path, body, headers in json_routes(port, keys, nct):
        route = re.sub(r"/[A-Za-z0-9_-]{20,}|/\d+$", "/{id}", path)
        for kind in ("array", "object"):
            for doc in (f'{{"text": {_deep(kind)}}}', _deep(kind)):
                r = request(port, method, path, raw=doc.encode(), headers=headers)
                t.check("hostile_deep_nesting", is_json_error(r, 400, "nesting_too_deep"),
                        f"{method} {route} {kind}: {r.status} {r.code}")
        for field in _string_paths(body):
            for label, bad in (("NUL", "a\x00b"), ("lone surrogate", "a\ud800b"), ("lone low surrogate", "\udc00")):
                doc = json.dumps(_replace(body, field, bad))  # ensure_ascii: the surrogate travels as \\ud800
                r = request(port, method, path, raw=doc.encode(), headers=headers)
                t.check("hostile_nul_surrogate_body", client_error(r),
                        f"{method} {route} {'.'.join(map(str, field))} {label}: {r.status} {r.code}")
        for label, key in (("NUL key", "a\x00"), ("surrogate key", "\ud800")):
            r = request(port, method, path, raw=json.dumps({**body, key: 1}).encode(), headers=headers)
            t.check("hostile_nul_surrogate_body", client_error(r), f"{method} {route} {label}: {r.status}")
        r = request(port, method, path, raw=b'{"text": "unterminated', headers=headers)
        t.check("hostile_nul_surrogate_body", is_json_error(r, 400), f"{method} {route} malformed: {r.status}")


def hostile_query(t: Tally, port: int, keys: dict[str, str]) -> None:
    coordinator = {"X-API-Key": keys["admin"]}
    routes = [("/api/v1/trials", ("q", "condition", "status", "page", "per_page"), {}),
              ("/api/v1/referrals", ("nct_id", "status", "since", "until", "page", "per_page"), coordinator)]
    nul, surrogate, bad_utf8 = "%00", "%ED%A0%80", "%FF%FE"
    for path, names, headers in routes:
        for name in names:
            for label, value, must_reject in (("NUL", f"a{nul}b", True), ("surrogate bytes", surrogate, False),
                                              ("invalid UTF-8", bad_utf8, False)):
                r = request(port, "GET", f"{path}?{name}={value}", headers=headers)
                ok = client_error(r) if must_reject else (r.status == 200 or client_error(r))
                t.check("hostile_query_and_path", ok, f"GET {path}?{name}= {label}: {r.status} {r.code}")
        r = request(port, "GET", f"{path}?a{nul}=1", headers=headers)
        t.check("hostile_query_and_path", client_error(r), f"GET {path} NUL in a parameter name: {r.status}")
    for path in ("/api/v1/trials/NCT0%001234", "/api/v1/sessions/a%00" + "b" * 30, "/api/v1/trials/%ED%A0%80",
                 "/api/v1/referrals/99999999999999999999", "/api/v1/sessions/" + "%ED%A0%80" * 8):
        for method in ("GET", "DELETE") if "/sessions/" in path else ("GET",):
            r = request(port, method, path, headers=coordinator)
            t.check("hostile_query_and_path", client_error(r), f"{method} {path[:40]}: {r.status} {r.code}")


def oversized(t: Tally, port: int) -> None:
    item = "oversized_bodies"
    big = json.dumps({"text": "lupus " * 60_000}).encode()  # ~360 kB, above MAX_CONTENT_LENGTH
    r = request(port, "POST", "/api/v1/match", raw=big)
    t.check(item, is_json_error(r, 413), f"content-length body: {r.status} {r.code}")
    head = (b"POST /api/v1/match HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    r = raw_request(port, head, [big[i:i + 16384] for i in range(0, len(big), 16384)], chunked=True)
    t.check(item, is_json_error(r, 413), f"chunked body: {r.status} {r.code}")
    small = json.dumps({"text": TEXT, "top_k": 1}).encode()
    r = raw_request(port, head, [small[:20], small[20:]], chunked=True)
    t.check(item, r.status == 200, f"small chunked body is read: {r.status} {r.code}")
    for path in ("/api/v1/sessions", "/api/v1/referrals"):
        r = request(port, "POST", path, raw=big)
        t.check(item, is_json_error(r, 413), f"{path}: {r.status} {r.code}")


def edges(t: Tally, port: int) -> None:
    item = "edge_url_headers"
    for n in (4200, 8000):
        r = request(port, "GET", "/api/v1/trials?q=" + "a" * n)
        t.check(item, is_json_error(r, 414, "uri_too_long"), f"URL of {n}: {r.status} {r.code}")
    for n in (9000, 16000):
        r = request(port, "GET", "/api/v1/trials", headers={"X-Filler": "a" * n})
        t.check(item, is_json_error(r, 431, "header_too_large"), f"header of {n}: {r.status} {r.code}")
    for value in (b"a\x00b", b"\x00"):
        r = raw_request(port, b"GET /api/v1/trials HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Test: " + value
                        + b"\r\nConnection: close\r\n\r\n")
        t.check(item, client_error(r), f"NUL in a header value: {r.status} {r.body[:60]!r}")
    r = request(port, "GET", "/api/v1/nowhere")
    t.check(item, is_json_error(r, 404), f"unknown route: {r.status}")


def expensive(t: Tally, port: int, budget: float) -> None:
    item = "expensive_inputs"
    cases = {
        "negation run (20,000 chars)": ("no no not denies without " * 1000)[:20000],
        "negated conditions, one sentence (20,000 chars)":
            ("no lupus, no diabetes, denies asthma, without hypertension, " * 400)[:20000],
        "negations in sentences (20,000 chars)":
            ("no fever, no cough, denies chest pain, no history of diabetes, not on insulin. " * 300)[:20000],
        "one hyphenated token (20,000 chars)": "-".join(["lupus"] * 4000)[:20000],
        "punctuation run (20,000 chars)": "(" * 20000,
    }
    for name, text in cases.items():
        r = request(port, "POST", "/api/v1/match", body={"text": f"{MARK} {text}"[:20000]}, timeout=120)
        ok = (r.status == 200 or is_json_error(r, 422, "extraction_too_long")) and r.ms < (budget + 12) * 1000
        t.check(item, ok, f"{name}: {r.status} {r.code} in {r.ms / 1000:.1f} s")
        t.note(item, f"{name}: {r.status} {r.code or ''} {r.ms / 1000:.2f} s")


def phase_filter(t: Tally, port: int) -> None:
    for phase in ("phase 2", ["Phase2"], "PHASE_2", ["phase 1", "phase 2"]):
        r = request(port, "POST", "/api/v1/match", body={"text": TEXT, "filters": {"phase": phase, "status": "ANY"}})
        t.check("phase_filter", r.status == 200, f"phase {phase!r}: {r.status} {r.code}")
    r = request(port, "POST", "/api/v1/match", body={"text": TEXT, "filters": {"phase": "phase 9"}})
    t.check("phase_filter", is_json_error(r, 400), f"phase 9: {r.status} {r.code}")


def scoping(t: Tally, port: int, keys: dict[str, str], nct_a: str, nct_b: str) -> None:
    item = "referral_scoping"
    a, b, admin = ({"X-API-Key": keys[k]} for k in ("a", "b", "admin"))
    ra = (request(port, "POST", "/api/v1/referrals", body={"nct_id": nct_a, "text": TEXT, "contact_ref": "a"}).json()
          or {}).get("id")
    rb = (request(port, "POST", "/api/v1/referrals", body={"nct_id": nct_b, "text": TEXT, "contact_ref": "b"}).json()
          or {}).get("id")
    if not t.check(item, bool(ra and rb), "create referrals"):
        return

    def ids(headers: dict[str, str]) -> set[int]:
        out, page = set(), 1
        while page <= 50:
            body = request(port, "GET", f"/api/v1/referrals?per_page=200&page={page}", headers=headers).json() or {}
            out |= {r["id"] for r in body.get("referrals", [])}
            if page * 200 >= body.get("total", 0):
                return out
            page += 1
        return out

    seen_a, seen_b, seen_admin = ids(a), ids(b), ids(admin)
    t.check(item, ra in seen_a and rb not in seen_a, "team a lists only its own")
    t.check(item, rb in seen_b and ra not in seen_b, "team b lists only its own")
    t.check(item, {ra, rb} <= seen_admin, "admin lists both")
    for headers, rid, want, what in ((a, rb, 404, "a opens b's"), (b, ra, 404, "b opens a's"),
                                     (a, ra, 200, "a opens its own"), (admin, rb, 200, "admin opens b's")):
        r = request(port, "GET", f"/api/v1/referrals/{rid}", headers=headers)
        t.check(item, r.status == want, f"{what}: {r.status}")
        leaked = want == 404 and MARK.encode() in r.body
        t.check(item, not leaked, f"{what}: text in the 404")
    for headers, rid, want, what in ((b, ra, 404, "b changes a's"), (a, ra, 200, "a changes its own")):
        r = request(port, "PATCH", f"/api/v1/referrals/{rid}", body={"status": "contacted"}, headers=headers)
        t.check(item, r.status == want, f"{what}: {r.status}")
    r = request(port, "GET", f"/api/v1/referrals/{ra}", headers=admin)
    t.check(item, (r.json() or {}).get("status") == "contacted", "b's refused change left a's referral alone")


def sqlite_files(url: str) -> list[Path]:
    if not url.startswith("sqlite:///"):
        return []
    path = Path(url.removeprefix("sqlite:///"))
    return sorted(path.parent.glob(path.name + "*"))


def text_stored(engine, url: str, marker: str) -> bool:  # type: ignore[no-untyped-def]
    """Is ``marker`` anywhere in the database: the SQLite files byte by byte (WAL included), else the tables."""
    files = sqlite_files(url)
    if files:
        return any(marker.encode() in p.read_bytes() for p in files)
    from sqlalchemy import text as sql

    with engine.connect() as conn:
        hits = conn.execute(sql("SELECT (SELECT count(*) FROM chat_session WHERE CAST(messages AS TEXT) LIKE :m)"
                                " + (SELECT count(*) FROM referral WHERE patient_text LIKE :m OR contact_ref LIKE :m)"
                                " + (SELECT count(*) FROM referral_event WHERE note LIKE :m)"),
                            {"m": f"%{marker}%"}).scalar()
    return bool(hits)


def retention(t: Tally, port: int, rt, keys: dict[str, str], nct: str, purge_interval: float) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text as sql

    item = "retention"
    url = rt.settings["DATABASE_URL"]
    marker = f"{MARK}session{int(time.time() * 1000)}"
    sid = (request(port, "POST", "/api/v1/sessions", body={}).json() or {}).get("id")
    r = request(port, "POST", f"/api/v1/sessions/{sid}/messages", body={"text": f"{TEXT} {marker}"})
    t.check(item, r.status == 200 and text_stored(rt.engine, url, marker), "session text stored")
    r = request(port, "DELETE", f"/api/v1/sessions/{sid}")
    t.check(item, r.status == 204, f"delete session {r.status}")
    t.check(item, not text_stored(rt.engine, url, marker), "deleted session text gone from the database files")
    # a session whose time is up goes with the scheduled purge
    marker = f"{MARK}expired{int(time.time() * 1000)}"
    sid = (request(port, "POST", "/api/v1/sessions", body={}).json() or {}).get("id")
    request(port, "POST", f"/api/v1/sessions/{sid}/messages", body={"text": f"{TEXT} {marker}"})
    # a closed referral past REFERRAL_RETENTION_DAYS goes with it
    rmark = f"{MARK}referral{int(time.time() * 1000)}"
    rid = (request(port, "POST", "/api/v1/referrals", body={"nct_id": nct, "text": f"{TEXT} {rmark}",
                                                            "contact_ref": "r"}).json() or {}).get("id")
    admin = {"X-API-Key": keys["admin"]}
    r = request(port, "PATCH", f"/api/v1/referrals/{rid}", body={"status": "enrolled", "note": rmark}, headers=admin)
    t.check(item, r.status == 200, f"close referral {r.status}")
    old = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(days=400)
    with rt.engine.begin() as conn:  # time passes: the session expired, the referral was closed long ago
        conn.execute(sql("UPDATE chat_session SET expires_at = :t WHERE id = :id"), {"t": old, "id": sid})
        conn.execute(sql("UPDATE referral SET updated_at = :t WHERE id = :id"), {"t": old, "id": rid})
    gone = False
    for _ in range(int(purge_interval * 4) + 20):  # every worker purges at most once per interval
        time.sleep(0.5)
        for _ in range(4):
            request(port, "GET", "/api/v1/trials?per_page=1")
        if not text_stored(rt.engine, url, marker) and not text_stored(rt.engine, url, rmark):
            gone = True
            break
    t.check(item, gone, "expired session and closed referral purged from the database files")
    r = request(port, "GET", f"/api/v1/referrals/{rid}", headers=admin)
    t.check(item, r.status == 404, f"purged referral {r.status}")


def fail_closed(t: Tally, port: int, keys: dict[str, str], log: Path) -> None:
    item = "rate_limit_fail_closed"
    for _ in range(20):
        for method, path, body, headers in (("POST", "/api/v1/match", {"text": TEXT}, {}),
                                            ("GET", "/api/v1/trials", None, {}),
                                            ("GET", "/api/v1/referrals", None, {"X-API-Key": keys["admin"]})):
            r = request(port, method, path, body=body, headers=headers)
            t.check(item, is_json_error(r, 503, "rate_limit_unavailable"), f"{method} {path}: {r.status} {r.code}")
    r = request(port, "GET", "/api/v1/health")
    body = r.json() or {}
    t.check(item, r.status == 503 and body.get("rate_limit") == "error" and body.get("status") == "degraded",
            f"health {r.status} {body}")
    lines = log.read_text(errors="replace").splitlines()
    unreachable = [ln for ln in lines if "rate-limit store is unreachable" in ln]
    t.check(item, 1 <= len(unreachable) <= 2, f"store failure logged {len(unreachable)} times (once per worker)")
    t.check(item, not any("Traceback" in ln for ln in lines), "no traceback logged")


def limits_and_proxy(t: Tally, port: int, keys: dict[str, str], limit: int) -> None:
    coord = {"X-API-Key": keys["admin"], "X-Forwarded-For": "127.0.0.9"}
    statuses = [request(port, "GET", "/api/v1/referrals", headers=coord).status for _ in range(limit + 3)]
    t.check("coordinator_limits", statuses[:limit] == [200] * limit, f"first {limit}: {statuses[:limit]}")
    t.check("coordinator_limits", statuses[-1] == 429, f"after the limit: {statuses[limit:]}")
    r = request(port, "GET", "/api/v1/referrals", headers=coord)
    t.check("coordinator_limits", is_json_error(r, 429), f"429 is JSON: {r.status} {r.code}")
    item = "proxy_hops"
    # behind one trusted proxy the client is the last X-Forwarded-For entry, whatever the client prepended
    spoofed = [request(port, "GET", "/api/v1/trials?per_page=1",
                       headers={"X-Forwarded-For": f"198.51.100.{i}, 127.0.0.2"}).status for i in range(limit + 2)]
    t.check(item, spoofed[-1] == 429, f"prepended addresses share the real client's bucket: {spoofed}")
    r = request(port, "GET", "/api/v1/trials?per_page=1", headers={"X-Forwarded-For": "127.0.0.3"})
    t.check(item, r.status == 200, f"another client has its own bucket: {r.status}")
    r = request(port, "GET", "/api/v1/trials?per_page=1", headers={"X-Forwarded-For": "127.0.0.2"})
    t.check(item, r.status == 429, f"the limited client stays limited: {r.status}")


def budget_log_once(t: Tally, port: int) -> str | None:
    """A request that logs one warning (budget exceeded); its request id must be in the log exactly once."""
    r = request(port, "POST", "/api/v1/match", body={"text": (MARK + " no no not denies without" * 1000)[:20000]},
                timeout=120)
    return r.headers.get("x-request-id") if r.code == "extraction_too_long" else None


def logs(t: Tally, logs_: list[Path], session_ids: list[str], request_ids: list[str]) -> None:
    item = "logs"
    text = "\n".join(p.read_text(errors="replace") for p in logs_ if p.exists())
    lines = text.splitlines()
    t.check(item, MARK not in text, f"patient text in the logs: {sum(MARK in ln for ln in lines)} lines")
    leaked = [s for s in session_ids if s and s in text]
    t.check(item, not leaked, f"{len(leaked)} session ids in the logs")
    for rid in request_ids:
        n = sum(rid in ln for ln in lines)
        t.check(item, n == 1, f"request {rid} logged {n} times")
    t.note(item, f"{len(lines)} log lines read, {len(request_ids)} single-line checks")


# --------------------------------------------------------------------------- main


def make_keys(rt, teams: tuple[str, str]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    stamp = f"{int(time.time())}-{os.getpid()}"
    return {"admin": rt.keys.create(f"probe-admin-{stamp}", "admin"),
            "a": rt.keys.create(f"probe-a-{stamp}", "coordinator", team=teams[0]),
            "b": rt.keys.create(f"probe-b-{stamp}", "coordinator", team=teams[1])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running trialmatch serve on loopback (default: start one)")
    ap.add_argument("--port", type=int, default=5181, help="first port for the servers the probe starts")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clients", type=int, default=8, help="concurrent writers")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.url:
        try:
            target = check_loopback(args.url)
        except SystemExit:
            print(f"refusing {args.url}: the probe only talks to loopback addresses (127.0.0.0/8, ::1, localhost)",
                  file=sys.stderr)
            return 2
    from assistant.services import Services
    from assistant.settings import load_settings

    rt = Services(load_settings({"PRELOAD": False}))
    rt.ensure_trials(progress=False)  # what `serve` does first; here to pick two trials for the team mapping
    page = rt.repo.list(page=1, per_page=2)
    nct_a, nct_b = (trial.nct_id for trial in page.items)
    teams = ("probe-a", "probe-b")
    keys = make_keys(rt, teams)
    purge_interval = 1.0
    config_env = {"TRIALMATCH_RATE_LIMIT": "1000000 per minute",
                  "TRIALMATCH_COORDINATOR_RATE_LIMIT": "1000000 per minute",
                  "TRIALMATCH_REFERRAL_TEAMS": json.dumps({teams[0]: [nct_a], teams[1]: [nct_b]}),
                  "TRIALMATCH_REFERRAL_RETENTION_DAYS": "30",
                  "TRIALMATCH_PURGE_INTERVAL_SECONDS": str(int(purge_interval)),
                  "TRIALMATCH_LOG_LEVEL": "INFO"}
    tally = Tally()
    servers: list[subprocess.Popen] = []
    log_dir = Path(tempfile.mkdtemp(prefix="trialmatch-probe-"))
    budget = rt.settings.EXTRACTION_BUDGET_SECONDS
    started = time.time()
    try:
        ports = iter(range(args.port, args.port + 10))
        if args.url:
            main_port = target
            wait_listening(main_port, None, 30)
            config_port = next(ports)
            servers.append(start_server(config_port, 1, 2, config_env, log_dir, "config"))
        else:
            main_port = config_port = next(ports)
            servers.append(start_server(main_port, args.workers, args.threads, config_env, log_dir, "main"))
        closed_port, limited_port = next(ports), next(ports)
        servers.append(start_server(closed_port, 1, 1, {**config_env, "TRIALMATCH_RATE_LIMIT_STORAGE_URL":
                                                        "redis://127.0.0.1:1"}, log_dir, "fail-closed"))
        limit = 5
        servers.append(start_server(limited_port, 1, 1, {**config_env, "TRIALMATCH_PROXY_HOPS": "1",
                                                         "TRIALMATCH_RATE_LIMIT": f"{limit} per minute",
                                                         "TRIALMATCH_COORDINATOR_RATE_LIMIT": f"{limit} per minute"},
                                    log_dir, "limited"))
        for port, proc in ((main_port, None if args.url else servers[0]), (config_port, servers[0]),
                           (closed_port, servers[-2]), (limited_port, servers[-1])):
            wait_listening(port, proc)
        r = request(main_port, "GET", "/api/v1/health")
        tally.check("health", r.status == 200, f"health {r.status}")
        for text in (TEXT, TEXT + " and diabetes"):  # warm every worker
            for _ in range(args.workers * 2):
                request(main_port, "POST", "/api/v1/match", body={"text": text})
        session_ids: list[str] = []

        def steps() -> None:
            concurrent_writes(tally, main_port, keys, nct_a, clients=args.clients)
            hostile_json(tally, main_port, keys, nct_a)
            hostile_query(tally, main_port, keys)
            oversized(tally, main_port)
            edges(tally, main_port)
            expensive(tally, main_port, budget)
            phase_filter(tally, main_port)
            scoping(tally, config_port, keys, nct_a, nct_b)
            retention(tally, config_port, rt, keys, nct_a, purge_interval)
            fail_closed(tally, closed_port, keys, log_dir / "fail-closed.log")
            limits_and_proxy(tally, limited_port, keys, limit)

        steps()
        request_ids = [rid for rid in (budget_log_once(tally, config_port) for _ in range(3)) if rid]
        if budget > 0:
            tally.check("logs", len(request_ids) == 3, f"{len(request_ids)} of 3 budget warnings had request ids")
        from sqlalchemy import text as sql

        with rt.engine.connect() as conn:  # every session id the servers ever issued for this database
            session_ids = [row[0] for row in conn.execute(sql("SELECT id FROM chat_session"))]
    finally:
        for proc in servers:
            stop_server(proc)
    logs(tally, [p for p in SERVER_LOGS], session_ids, request_ids)
    elapsed = time.time() - started
    items = sorted(tally.attempts)
    if args.json:
        print(json.dumps({"seconds": round(elapsed, 1), "database": rt.engine.url.get_backend_name(),
                          "items": {i: {"attempts": tally.attempts[i], "failures": tally.failures[i],
                                        "examples": tally.examples[i], "notes": tally.notes[i]} for i in items}},
                         indent=2))
    else:
        print(f"probe on {rt.engine.url.get_backend_name()}, {args.workers} workers x {args.threads} threads, "
              f"{elapsed:.0f} s; server logs in {log_dir}")
        print(f"{'item':<38} {'attempts':>8} {'failures':>8}")
        for i in items:
            print(f"{i:<38} {tally.attempts[i]:>8} {tally.failures[i]:>8}")
            for ex in tally.examples[i]:
                print(f"    FAIL {ex}")
            for note in tally.notes[i]:
                print(f"    {note}")
        print(f"{'total':<38} {sum(tally.attempts.values()):>8} {sum(tally.failures.values()):>8}")
    rt.engine.dispose()
    return 1 if sum(tally.failures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
