"""Application factory: settings, logging, database, pipeline + retriever, blueprints, errors."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from assistant.runtime import Runtime
from assistant.settings import load_settings
from assistant.web.errors import register_error_handlers

logger = logging.getLogger(__name__)


def build_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, static_folder="web/static", static_url_path="/static")
    settings = load_settings(test_config)
    app.config.update(settings)
    runtime = Runtime(settings)
    app.extensions["trialmatch"] = runtime
    register_error_handlers(app)

    from assistant.web import api

    app.register_blueprint(api.bp)
    return app
