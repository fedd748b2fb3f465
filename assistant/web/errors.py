"""JSON errors with stable codes: ``{"error": {"code", "message"}}``. No traceback reaches a client."""
from __future__ import annotations

import logging
import traceback
import uuid
from typing import Any

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from models.domain import ExtractionBudgetExceeded

logger = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "payload_too_large",
    415: "unsupported_media_type", 429: "too_many_requests", 500: "internal_error", 503: "unavailable",
}


class APIError(Exception):
    """An error the client can act on; ``code`` is stable and documented."""

    def __init__(self, code: str, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


def _request_id() -> str:
    rid = getattr(g, "request_id", None)
    if rid is None:
        rid = g.request_id = uuid.uuid4().hex[:16]
    return rid


def register_error_handlers(app: Flask) -> None:
    @app.before_request
    def _assign_request_id() -> None:
        _request_id()

    @app.after_request
    def _stamp(response):  # type: ignore[no-untyped-def]
        response.headers["X-Request-Id"] = _request_id()
        return response

    @app.errorhandler(APIError)
    def _api_error(exc: APIError):  # type: ignore[no-untyped-def]
        return jsonify(exc.to_dict()), exc.status

    from assistant.services import NotReady

    @app.errorhandler(NotReady)
    def _not_ready(exc: NotReady):  # type: ignore[no-untyped-def]
        state = exc.state
        message = ("the trials are still loading (first start); try again shortly" if state.status != "error"
                   else "the trials could not be loaded; the service retries, see the server log")
        response = jsonify({"error": {"code": "loading", "message": message,
                                      "progress": {"done": state.done, "total": state.total}}})
        response.headers["Retry-After"] = "5"
        return response, 503

    @app.errorhandler(ExtractionBudgetExceeded)
    def _too_long(exc: ExtractionBudgetExceeded):  # type: ignore[no-untyped-def]
        # the step and the length only: never the text
        logger.warning("extraction budget exceeded before %s on %s (%d characters, request %s)", exc.stage,
                       request.url_rule.rule if request.url_rule is not None else "<no route>", exc.chars,
                       _request_id())
        error = APIError("extraction_too_long", "this description takes too long to read; please shorten it "
                         "(fewer repetitions, shorter lists) and try again", 422)
        return jsonify(error.to_dict()), error.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        status = exc.code or 500
        code = HTTP_CODES.get(status, "http_error")
        message = exc.description if status != 500 else "internal error"
        response = jsonify({"error": {"code": code, "message": message}})
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        rid = _request_id()
        # The exception type and stack only: a message could quote request content (patient text).
        # the route template, not the path: a path can carry a session id (the only key to a transcript)
        route = request.url_rule.rule if request.url_rule is not None else "<no route>"
        logger.error("unhandled %s on %s %s (request %s)\n%s", type(exc).__name__, request.method,
                     route, rid, "".join(traceback.format_tb(exc.__traceback__)))
        return jsonify({"error": {"code": "internal_error", "message": "internal error",
                                  "request_id": rid}}), 500
