"""``trialmatch serve``: gunicorn in production, the Flask dev server only with --debug."""
from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def serve(settings: Any, debug: bool = False) -> int:
    """Open the port at once. Each worker loads the trials in the background (the first load of the bundled
    trials runs once per host, under a lock file); until then /api/v1/health answers 503 ``loading`` with
    progress, and the log says how far the first start is."""
    host, port = settings["HOST"], int(settings["PORT"])
    if debug:
        from assistant import create_app

        create_app(dict(settings)).run(host=host, port=port, debug=True, use_reloader=False)
        return 0
    from gunicorn.app.base import BaseApplication

    class _Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", int(settings["WORKERS"]))
            self.cfg.set("threads", int(settings["THREADS"]))
            self.cfg.set("worker_class", "assistant.gunicorn_worker.JSONErrorWorker")  # gthread, JSON errors
            self.cfg.set("timeout", 120)
            self.cfg.set("accesslog", None)  # URLs carry no patient text, but keep the log quiet by default
            # gunicorn's own limits sit above the app's (assistant.app.EDGE_LIMITS), so an over-long URL or
            # header reaches the app and gets a JSON error with a stable code instead of gunicorn's HTML page
            self.cfg.set("limit_request_line", 8190)
            self.cfg.set("limit_request_field_size", 16380)

        def load(self):  # type: ignore[no-untyped-def]
            from assistant import create_app

            return create_app(dict(settings))

    print(f"trialmatch serving on http://{host}:{port} with {settings['WORKERS']} workers; "
          "a first start loads the bundled trials in the background (GET /api/v1/health shows progress)",
          flush=True)
    _Gunicorn().run()
    return 0
