"""GET /api/v1/places?q=Tamp: towns with trial sites, for the widget's location field.

An offline place lookup: names and coordinates come from the sites of the stored trials, so a
patient can give a town instead of coordinates and nothing is sent to another service.
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from assistant.web import schemas
from assistant.web.errors import APIError

bp = Blueprint("places", __name__, url_prefix="/api/v1")
MIN_CHARS, MAX_CHARS, LIMIT = 2, 100, 10


def parse_place_query(args) -> str:  # type: ignore[no-untyped-def]
    q = schemas.check_text(args.get("q", ""), "query parameter q").strip()
    if not MIN_CHARS <= len(q) <= MAX_CHARS:
        raise APIError("invalid_request", f"'q' must be {MIN_CHARS} to {MAX_CHARS} characters", 400)
    return q


@bp.get("/places")
def find_places():  # type: ignore[no-untyped-def]
    q = parse_place_query(request.args)
    places = current_app.extensions["trialmatch"].repo.places(q, limit=LIMIT)
    return jsonify({"places": [p._asdict() for p in places]})
