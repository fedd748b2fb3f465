"""Requests gunicorn itself rejects get the API's JSON errors (assistant.gunicorn_worker), on a real gunicorn."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def wsgi_app(environ, start_response):  # type: ignore[no-untyped-def]
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "12")])
    return [b'{"ok": true}']


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _send(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.fixture(scope="module")
def gunicorn_port():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                             "--worker-class", "assistant.gunicorn_worker.JSONErrorWorker",
                             "--limit-request-line", "200", "--limit-request-field_size", "300",
                             "tests.production.test_gunicorn_errors:wsgi_app"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if _send(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("gunicorn did not start")
        yield port
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
        assert b"secret-header-value" not in err  # rejected input is not logged


@pytest.mark.parametrize("raw,status,code", [
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Test: secret-header-value\x00b\r\nConnection: close\r\n\r\n", 400,
     "invalid_header"),
    (b"GET /" + b"a" * 400 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 414, "uri_too_long"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 400 + b"\r\nConnection: close\r\n\r\n", 431,
     "header_too_large"),
    (b"GARBAGE\r\n\r\n", 400, "bad_request"),
])
def test_gunicorn_rejections_are_json(gunicorn_port, raw, status, code):
    got, headers, body = _send(gunicorn_port, raw)
    assert got == status
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == code


def test_valid_requests_reach_the_app(gunicorn_port):
    assert _send(gunicorn_port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[2] == b'{"ok": true}'
