"""GET /api/v1/places: towns with trial sites (coordinates from the stored sites, no external service)."""
from __future__ import annotations

from tests.api.test_api import error_code


def test_towns_by_prefix_with_their_site_coordinates(client):
    body = client.get("/api/v1/places?q=chic").get_json()
    assert body == {"places": [{"city": "Chicago", "state": "Illinois", "country": "United States",
                                "lat": 41.85, "lon": -87.65, "sites": 1}]}
    assert [p["city"] for p in client.get("/api/v1/places?q=BOS").get_json()["places"]] == ["Boston"]
    # sites without coordinates are not places (the seed trial's Tampa site has none in the fixture)
    assert client.get("/api/v1/places?q=Tampa").get_json() == {"places": []}


def test_wildcards_are_plain_characters(client):
    assert client.get("/api/v1/places?q=_o").get_json() == {"places": []}  # would match "Boston" as a pattern
    assert client.get("/api/v1/places?q=%25%25").get_json() == {"places": []}


def test_bad_queries_are_clear_400s(client):
    for url in ("/api/v1/places", "/api/v1/places?q=c", "/api/v1/places?q=%20%20c%20", "/api/v1/places?q=" + "x" * 101):
        resp = client.get(url)
        assert resp.status_code == 400 and error_code(resp) == "invalid_request", url
    assert error_code(client.get("/api/v1/places?q=ch%00")) == "invalid_characters"
