"""Blueprint at /api/v1: parse, call the service, jsonify. No logic."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def runtime():  # type: ignore[no-untyped-def]
    return current_app.extensions["trialmatch"]


@bp.get("/health")
def health():  # type: ignore[no-untyped-def]
    rt = runtime()
    trials = rt.repo.count()
    return jsonify({"status": "ok" if trials else "empty", "database": "ok", "trials": trials})
