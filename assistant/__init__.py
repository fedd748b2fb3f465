"""trialmatch: the matching engine, the Flask app, the chat dialogue and the CLI."""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def create_app(test_config: dict[str, Any] | None = None, *, services: Any = None):  # type: ignore[no-untyped-def]
    """Application factory (see ``assistant.app``). ``services``: a ready ``assistant.services.Services``
    (tests pass one in with the shared pipeline); by default one is built from the settings."""
    from assistant.app import build_app

    return build_app(test_config, services=services)
