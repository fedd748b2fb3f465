"""gunicorn's gthread worker with JSON errors: a request gunicorn itself rejects (a NUL in a header, a malformed
request line or chunk, an over-long URL or header past gunicorn's own limits) gets the API's JSON error body
with a stable code instead of gunicorn's HTML page. Errors inside the app are the app's (assistant.web.errors)."""
from __future__ import annotations

import json

from gunicorn.http import errors as gerr
from gunicorn.util import write_nonblock
from gunicorn.workers.gthread import ThreadWorker

# the application's fault or the server's (a bad response header, a configuration problem): gunicorn's 500
APP_FAULTS = (gerr.InvalidResponseHeader, gerr.InvalidResponseHeaderName, gerr.ConfigurationProblem)
# gunicorn parse error -> (status, reason, stable code, message); checked in order (subclasses first)
PARSE_ERRORS: tuple[tuple[type[Exception], int, str, str, str], ...] = (
    (gerr.LimitRequestLine, 414, "URI Too Long", "uri_too_long", "the URL is too long"),
    (gerr.LimitRequestHeaders, 431, "Request Header Fields Too Large", "header_too_large",
     "the request headers are too large"),
    (gerr.InvalidHeaderName, 400, "Bad Request", "invalid_header", "a header name is not valid"),
    (gerr.InvalidHeader, 400, "Bad Request", "invalid_header",
     "a header is not valid (control characters such as NUL are not allowed)"),
    (gerr.ExpectationFailed, 417, "Expectation Failed", "expectation_failed", "the Expect header is not supported"),
    (gerr.ForbiddenProxyRequest, 403, "Forbidden", "forbidden", "request forbidden"),
    (gerr.UnsupportedTransferCoding, 501, "Not Implemented", "unsupported_transfer_coding",
     "this transfer coding is not supported"),
    (gerr.ParseException, 400, "Bad Request", "bad_request", "the request is not valid HTTP"),
)


def error_response(exc: Exception) -> bytes | None:
    """The raw HTTP response for a request gunicorn could not parse; None for anything else."""
    if isinstance(exc, APP_FAULTS):
        return None
    for cls, status, reason, code, message in PARSE_ERRORS:
        if isinstance(exc, cls):
            body = json.dumps({"error": {"code": code, "message": message}}).encode()
            head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
                    f"Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n")
            return head.encode("latin-1") + body
    return None


class JSONErrorWorker(ThreadWorker):
    def handle_error(self, req, client, addr, exc):  # type: ignore[no-untyped-def]
        response = error_response(exc)
        if response is None:  # an application error: gunicorn's own handling (logged, a bare 500)
            return super().handle_error(req, client, addr, exc)
        # the error class only: a rejected header or request line could quote anything the client sent
        self.log.warning("rejected a request gunicorn could not parse: %s", type(exc).__name__)
        try:
            write_nonblock(client, response)
        except OSError:
            self.log.debug("failed to send the error response")
        return None
