"""Application factory: settings, logging, database, pipeline + retriever, blueprints, errors."""
from __future__ import annotations

import logging
import logging.config
from typing import Any

from flask import Flask, Response, request, send_from_directory

from assistant.runtime import Runtime
from assistant.settings import load_settings
from assistant.web.errors import register_error_handlers

logger = logging.getLogger(__name__)

PUBLIC_LIMITED = frozenset({"api.match", "api.create_session", "api.post_message", "api.create_referral",
                            "api.get_session", "api.delete_session", "api.list_trials", "api.get_trial"})
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "geolocation=(), camera=(), microphone=()",
}
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def configure_logging(level: str) -> None:
    """One logging setup per process; request bodies and patient text are never logged anywhere."""
    logging.config.dictConfig({
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
        "loggers": {"assistant": {"level": level, "handlers": ["stderr"], "propagate": True},
                    "models": {"level": level, "handlers": ["stderr"], "propagate": True},
                    "nlp": {"level": level, "handlers": ["stderr"], "propagate": True}},
    })


def _init_limiter(app: Flask, settings: dict[str, Any]) -> None:
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    limiter = Limiter(get_remote_address, app=app, storage_uri=settings["RATE_LIMIT_STORAGE_URL"],
                      default_limits=[], headers_enabled=True, swallow_errors=True)
    for endpoint in PUBLIC_LIMITED:
        view = app.view_functions.get(endpoint)
        if view is not None:
            app.view_functions[endpoint] = limiter.limit(settings["RATE_LIMIT"])(view)
    app.extensions["trialmatch_limiter"] = limiter


def _init_cors_and_headers(app: Flask, origins: list[str]) -> None:
    allowed = frozenset(origins)

    @app.before_request
    def _preflight():  # type: ignore[no-untyped-def]
        if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
            return Response(status=204)
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if origin and origin in allowed and request.path.startswith("/api/"):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PATCH, DELETE, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization, X-API-Key"
            response.headers["Access-Control-Max-Age"] = "600"
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
            response.headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
        else:
            response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
        return response


def build_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, static_folder="web/static", static_url_path="/static")
    settings = load_settings(test_config)
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = int(settings["MAX_TEXT_CHARS"]) * 8 + 16_384
    if not settings.get("TESTING"):
        configure_logging(settings["LOG_LEVEL"])
    runtime = Runtime(settings)
    app.extensions["trialmatch"] = runtime
    register_error_handlers(app)

    from assistant.web import api

    app.register_blueprint(api.bp)

    @app.get("/")
    def index():  # type: ignore[no-untyped-def]
        return send_from_directory(app.static_folder or "", "index.html")

    _init_limiter(app, settings)
    _init_cors_and_headers(app, list(settings["CORS_ORIGINS"]))
    if settings.get("PRELOAD", True):
        runtime.ensure_trials()
        runtime.ensure_index()
        runtime.pipeline  # noqa: B018 - load the pipeline once per worker, before the first request
    return app
