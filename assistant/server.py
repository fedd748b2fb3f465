"""``trialmatch serve``: gunicorn in production, the Flask dev server only with --debug."""
from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def prepare(settings: dict[str, Any]) -> None:
    """Work done once before workers start: schema, bundled trials, retrieval index."""
    from assistant.runtime import Runtime

    rt = Runtime(settings)
    rt.ensure_trials(progress=True)
    rt.ensure_index()


def serve(settings: dict[str, Any], debug: bool = False) -> int:
    prepare(settings)
    host, port = settings["HOST"], int(settings["PORT"])
    if debug:
        from assistant import create_app

        create_app().run(host=host, port=port, debug=True, use_reloader=False)
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

            return create_app()

    print(f"trialmatch serving on http://{host}:{port} with {settings['WORKERS']} workers", flush=True)
    _Gunicorn().run()
    return 0
