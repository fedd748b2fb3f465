"""Application factory: settings, logging, database, pipeline + retriever, blueprints, errors."""
from __future__ import annotations

import logging
import logging.config
import threading
import time
from typing import Any

from flask import Flask, Response, request, send_from_directory
from sqlalchemy.exc import SQLAlchemyError

from assistant.services import Services
from assistant.settings import load_settings
from assistant.web.errors import register_error_handlers
from models.workflow import purge_expired_data

logger = logging.getLogger(__name__)

PUBLIC_LIMITED = frozenset({"api.match", "api.create_session", "api.post_message", "api.create_referral",
                            "api.get_session", "api.delete_session", "api.list_trials", "api.get_trial",
                            "fhir.fhir_match", "fhir.get_clinical_trial", "places.find_places"})
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
        # propagate False: a root handler (gunicorn's, a host's) would print every line a second time
        "loggers": {"assistant": {"level": level, "handlers": ["stderr"], "propagate": False},
                    "models": {"level": level, "handlers": ["stderr"], "propagate": False},
                    "nlp": {"level": level, "handlers": ["stderr"], "propagate": False}},
    })


class LimitStore:
    """Is the rate-limit store reachable? Checked at most every ``recheck`` seconds; a change is logged once."""

    def __init__(self, limiter: Any, recheck: float = 5.0) -> None:
        self.limiter = limiter
        self.recheck = recheck
        self._ok = True
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def healthy(self) -> bool:
        now = time.monotonic()
        if now - self._checked < self.recheck or not self._lock.acquire(blocking=False):
            return self._ok
        try:
            try:
                ok = bool(self.limiter.storage.check())
            except Exception:  # noqa: BLE001 - any storage failure means "cannot count requests"
                ok = False
            if ok != self._ok:
                (logger.info if ok else logger.error)("rate-limit store is %s", "reachable again" if ok else
                                                      "unreachable: refusing limited requests")
            self._ok, self._checked = ok, now
            return ok
        finally:
            self._lock.release()


def _init_limiter(app: Flask, settings: dict[str, Any]) -> None:
    """Per-client limits on widget routes and (higher) on coordinator routes. They fail closed: when the store
    cannot be reached, limited requests get 503 ``rate_limit_unavailable`` and /health reports it."""
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    from assistant.web.api import COORDINATOR_ENDPOINTS
    from assistant.web.errors import APIError

    limiter = Limiter(get_remote_address, app=app, storage_uri=settings["RATE_LIMIT_STORAGE_URL"],
                      default_limits=[], headers_enabled=True, swallow_errors=True)
    limits = {**{e: settings["RATE_LIMIT"] for e in PUBLIC_LIMITED},
              **{e: settings["COORDINATOR_RATE_LIMIT"] for e in COORDINATOR_ENDPOINTS}}
    for endpoint, limit in limits.items():
        view = app.view_functions.get(endpoint)
        if view is not None:
            app.view_functions[endpoint] = limiter.limit(limit)(view)
    store = LimitStore(limiter)

    @app.before_request
    def _fail_closed():  # type: ignore[no-untyped-def]
        if request.endpoint in limits and not store.healthy():
            raise APIError("rate_limit_unavailable", "the service cannot count requests right now; try again "
                           "shortly", 503)
        return None

    app.extensions["trialmatch_limiter"] = limiter
    app.extensions["trialmatch_limit_store"] = store


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


def _init_purge(app: Flask, runtime: Services, interval_seconds: float, retention_days: float) -> None:
    """Expired chat sessions and closed referrals past REFERRAL_RETENTION_DAYS are deleted (not hidden) by every
    worker at most once per interval: the purge runs before the first request that finds it due (on that
    request's thread), never twice at once."""
    lock = threading.Lock()
    state = {"next": 0.0}

    @app.before_request
    def _purge_expired():  # type: ignore[no-untyped-def]
        now = time.monotonic()
        if interval_seconds <= 0 or now < state["next"] or not lock.acquire(blocking=False):
            return None
        try:
            state["next"] = now + interval_seconds
            n = purge_expired_data(runtime.sessions, runtime.referrals, retention_days)
            if n.sessions or n.referrals:
                logger.info("purged %d expired chat sessions and %d closed referrals", n.sessions, n.referrals)
        except SQLAlchemyError:
            logger.warning("purge of expired data failed; will retry", exc_info=True)
        finally:
            lock.release()
        return None


MAX_URL_CHARS = 4096
MAX_HEADER_CHARS = 8190


def _init_edge_limits(app: Flask) -> None:
    """URL and header sizes checked by the app (below gunicorn's limits), answered in JSON."""
    from assistant.web.errors import APIError

    @app.before_request
    def _edge():  # type: ignore[no-untyped-def]
        if len(request.full_path) > MAX_URL_CHARS:
            raise APIError("uri_too_long", f"the URL is longer than {MAX_URL_CHARS} characters", 414)
        if any(len(name) + len(value) > MAX_HEADER_CHARS for name, value in request.headers.items()):
            raise APIError("header_too_large", f"a header is longer than {MAX_HEADER_CHARS} characters", 431)
        return None


def build_app(test_config: dict[str, Any] | None = None, *, services: Services | None = None) -> Flask:
    """The Flask app around one ``Services``. With PRELOAD the worker starts loading the trials in the
    background and answers at once: /health says ``loading`` with progress until the snapshot is in place,
    and matching routes answer 503 ``loading`` meanwhile."""
    app = Flask(__name__, static_folder="web/static", static_url_path="/static")
    if services is not None and test_config:
        raise ValueError("pass the settings inside the Services object, not beside it")
    settings = services.settings if services is not None else load_settings(test_config)
    hops = settings.PROXY_HOPS
    if hops > 0:  # behind that many trusted reverse proxies: the client address comes from X-Forwarded-For
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = int(settings["MAX_TEXT_CHARS"]) * 8 + 16_384
    if not settings.TESTING:
        configure_logging(settings["LOG_LEVEL"])
    runtime = services if services is not None else Services(settings)
    app.extensions["trialmatch"] = runtime
    register_error_handlers(app)
    _init_edge_limits(app)

    from assistant.web import api, fhir, places

    app.register_blueprint(api.bp)
    app.register_blueprint(fhir.bp)
    app.register_blueprint(places.bp)

    @app.get("/")
    def index():  # type: ignore[no-untyped-def]
        return send_from_directory(app.static_folder or "", "index.html")

    @app.get("/coordinator")
    def coordinator():  # type: ignore[no-untyped-def]
        return send_from_directory(app.static_folder or "", "coordinator.html")

    @app.get("/favicon.ico")
    def favicon():  # type: ignore[no-untyped-def]
        return send_from_directory(app.static_folder or "", "favicon.svg", mimetype="image/svg+xml")

    _init_limiter(app, settings)
    _init_cors_and_headers(app, list(settings["CORS_ORIGINS"]))
    _init_purge(app, runtime, settings.PURGE_INTERVAL_SECONDS, settings.REFERRAL_RETENTION_DAYS)
    if settings.PRELOAD:
        runtime.start()
    return app
