"""Bodies without Content-Length (chunked, as gunicorn passes them): too large is 413, not truncated JSON."""
from __future__ import annotations

import io
import json

import pytest

CHUNKED = {"Transfer-Encoding": "chunked", "Content-Type": "application/json"}


def _chunked(client, path: str, body: bytes):
    # gunicorn marks a chunked body as terminated (wsgi.input_terminated); the test client does not by itself
    return client.post(path, input_stream=io.BytesIO(body), headers=CHUNKED,
                       environ_overrides={"wsgi.input_terminated": True})


@pytest.mark.parametrize("path", ["/api/v1/match", "/api/v1/sessions", "/api/v1/referrals"])
def test_oversized_chunked_body_is_413(app, client, path):
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = json.dumps({"text": "lupus " * (limit // 5)}).encode()
    resp = _chunked(client, path, body)
    assert resp.status_code == 413
    assert resp.get_json()["error"]["code"] == "payload_too_large"


def test_small_chunked_body_is_read_whole(client):
    resp = _chunked(client, "/api/v1/match", json.dumps({"text": "woman with lupus nephritis", "top_k": 2}).encode())
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["profile"]["conditions"]
