"""Browser tests: acting on a result (contact the study team, registry link, nearest site), colours by meaning,
the "may not qualify" section, the loading state, and the coordinator workspace at /coordinator."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from assistant.matching.filters import haversine_km
from assistant.web.api import CONSENT_NOTE
from tests.browser.test_widget import LUPUS_PATIENT, SEED_TRIAL, send, show_all
from tests.helpers import fixture_studies

pytestmark = pytest.mark.browser

TAMPA = (27.9506, -82.4572)  # given to the seed trial's Tampa site below (the fixture has no coordinates)
ORLANDO = (28.5384, -81.3789)
FAILS_LUPUS_TRIALS = "45-year-old man with systemic lupus erythematosus and active hepatitis B infection"
MEANING_COLOURS = {"favour": "rgb(45, 106, 79)", "against": "rgb(180, 35, 24)", "unknown": "rgb(217, 154, 0)"}


@pytest.fixture(scope="module")
def studies_file(tmp_path_factory) -> Path:
    """The fixture trials, the seed trial's Tampa site with coordinates (so a distance can be shown)."""
    studies = copy.deepcopy(fixture_studies())
    seed = next(s for s in studies if s.get("protocolSection", s)["identificationModule"]["nctId"] == SEED_TRIAL)
    sites = seed["protocolSection"]["contactsLocationsModule"]["locations"]
    tampa = next(site for site in sites if site.get("city") == "Tampa")
    tampa["geoPoint"] = {"lat": TAMPA[0], "lon": TAMPA[1]}
    path = tmp_path_factory.mktemp("geo-studies") / "studies.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in studies), encoding="utf-8")
    return path


def expected_meaning(kind: str, verdict: str) -> str:
    if verdict in ("unknown", "not_applicable"):
        return "unknown" if verdict == "unknown" else "neutral"
    return "favour" if (verdict == "met") == (kind == "inclusion") else "against"


def assert_no_errors(page) -> None:
    monitor = page.monitor
    assert monitor.page_errors == [], monitor.page_errors
    assert monitor.console_errors == [], monitor.console_errors
    assert monitor.non_local_requests() == [], monitor.non_local_requests()


def coordinator_key(live_server) -> str:
    return live_server.app.extensions["trialmatch"].keys.create("coord-browser", "coordinator")


def test_contact_the_study_team_then_a_coordinator_opens_and_updates_the_referral(browser_page, live_server):
    page = browser_page
    page.goto(page.base_url + "/")
    with page.expect_response(lambda r: r.url.endswith("/api/v1/sessions") and r.request.method == "POST") as made:
        data = send(page, LUPUS_PATIENT)
    session_id = made.value.json()["id"]
    show_all(page)
    card = page.locator(f'.matches li.match[data-nct="{SEED_TRIAL}"]')
    card.wait_for()
    link = card.get_by_role("link", name=re.compile("ClinicalTrials.gov"))
    assert link.get_attribute("href") == f"https://clinicaltrials.gov/study/{SEED_TRIAL}"
    assert link.get_attribute("rel") == "noopener noreferrer"

    card.get_by_role("button", name="Contact the study team about this trial").click()
    card.get_by_label("How should the study team contact you?").fill("phone 555-0142, afternoons")
    # nothing is sent without the consent box ticked
    sent = []
    page.on("request", lambda r: sent.append(r.url) if r.url.endswith("/api/v1/referrals") else None)
    card.get_by_role("button", name="Send to the study team").click()
    result = card.locator(".contact-result")
    assert "tick the consent box" in result.inner_text() and "error" in result.get_attribute("class")
    assert sent == []
    card.get_by_label(re.compile("I agree that this conversation")).check()
    with page.expect_response(lambda r: r.url.endswith("/api/v1/referrals") and r.request.method == "POST") as ref:
        card.get_by_role("button", name="Send to the study team").click()
    assert ref.value.status == 201, ref.value.text()
    referral_id = ref.value.json()["id"]
    page.wait_for_function("el => el.classList.contains('ok')", arg=result.element_handle())
    assert result.inner_text() == f"Sent. The study team of {SEED_TRIAL} will contact you (reference {referral_id})."

    key = coordinator_key(live_server)
    auth = {"Authorization": f"Bearer {key}"}
    stored = page.request.get(f"{page.base_url}/api/v1/referrals/{referral_id}", headers=auth).json()
    assert (stored["nct_id"], stored["session_id"], stored["contact_ref"], stored["status"]) == (
        SEED_TRIAL, session_id, "phone 555-0142, afternoons", "new")
    assert stored["audit"][0]["note"] == CONSENT_NOTE  # the ticked box is on record
    seed_then = next(m for m in data["matches"] if m["nct_id"] == SEED_TRIAL)
    assert stored["label_at_creation"] == seed_then["label"]  # what the widget showed

    # ---- the coordinator workspace
    response = page.goto(page.base_url + "/coordinator")
    assert response is not None and response.ok
    assert "script-src 'self'" in response.headers.get("content-security-policy", "")
    assert page.locator("script:not([src])").count() == 0 and page.locator("style, [style]").count() == 0
    assert page.locator("#queue-section").is_hidden()
    page.get_by_label("Coordinator API key").fill(key)
    page.get_by_role("button", name="Use this key").click()
    row = page.locator(f'#queue-rows tr[data-id="{referral_id}"]')
    row.wait_for()
    trial = page.request.get(f"{page.base_url}/api/v1/trials/{SEED_TRIAL}").json()
    assert trial["title"] in row.locator("td.trial").inner_text()
    assert row.locator("td.label-then .label").inner_text() in ("Eligible", "Possibly eligible", "Not eligible")
    assert row.locator("td.label-now .label").inner_text() == row.locator("td.label-then .label").inner_text()
    summary = row.locator("td.summary").inner_text()
    assert summary.startswith("45-year-old female; ") and "systemic lupus erythematosus" in summary
    assert "belimumab" not in summary and LUPUS_PATIENT not in page.locator("#queue").inner_text()
    assert page.evaluate("() => sessionStorage.getItem('trialmatch.coordinatorKey')") == key
    assert page.evaluate("() => localStorage.length") == 0

    row.get_by_role("button", name=f"Open referral {referral_id}").click()
    page.locator("#detail").wait_for(state="visible")
    assert page.locator("#detail-title").inner_text() == f"Referral #{referral_id} — {SEED_TRIAL}"
    criteria = page.locator("#detail-criteria > li")
    assert criteria.count() == len(stored["evaluation"]["criteria"]) > 5
    for item in criteria.all():
        assert item.get_attribute("data-meaning") == expected_meaning(item.get_attribute("data-kind"),
                                                                      item.get_attribute("data-verdict"))
    qa = page.locator("#detail-transcript")
    assert qa.locator("dt").first.inner_text() == "Description"
    assert qa.locator("dd").first.inner_text() == LUPUS_PATIENT
    assert [li.get_attribute("data-action") for li in page.locator("#detail-audit > li").all()] == ["created"]

    # a note alone
    page.get_by_label("Note").fill("Left a voicemail; will call again Monday.")
    with page.expect_response(lambda r: r.request.method == "PATCH") as patched:
        page.get_by_role("button", name="Save").click()
    assert patched.value.status == 200 and json.loads(patched.value.request.post_data) == {
        "note": "Left a voicemail; will call again Monday."}
    page.wait_for_function("() => document.getElementById('update-result').textContent !== ''")
    assert page.locator("#update-result").inner_text() == "Saved: note added."
    audit = page.locator("#detail-audit > li")
    assert audit.count() == 2 and audit.nth(1).get_attribute("data-action") == "note"
    assert "Left a voicemail" in audit.nth(1).inner_text()
    api = page.request.get(f"{page.base_url}/api/v1/referrals/{referral_id}", headers=auth).json()
    assert api["status"] == "new" and api["audit"][-1]["note"] == "Left a voicemail; will call again Monday."

    # a status change
    page.get_by_label("Status", exact=True).select_option("in_review")
    page.get_by_role("button", name="Save").click()
    page.wait_for_function("() => document.getElementById('detail-audit').children.length === 3")
    assert page.locator("#update-result").inner_text() == "Saved: status is now in review."
    assert page.request.get(f"{page.base_url}/api/v1/referrals/{referral_id}",
                            headers=auth).json()["status"] == "in_review"

    # the key stays for this tab: back to the queue after a reload, without entering it again
    page.reload()
    page.get_by_role("button", name="Back to the queue").click()
    page.locator(f'#queue-rows tr[data-id="{referral_id}"][data-status="in_review"]').wait_for()
    page.get_by_role("button", name="Forget the key").click()
    assert page.evaluate("() => sessionStorage.getItem('trialmatch.coordinatorKey')") is None
    assert page.locator("#queue-section").is_hidden()
    assert_no_errors(page)


def test_a_wrong_key_is_refused_and_removed(browser_page):
    page = browser_page
    page.goto(page.base_url + "/coordinator")
    page.get_by_label("Coordinator API key").fill("tm_nothing_wrong")
    page.get_by_role("button", name="Use this key").click()
    page.wait_for_function("() => document.getElementById('status').textContent.includes('not accepted')")
    assert page.evaluate("() => sessionStorage.getItem('trialmatch.coordinatorKey')") is None
    assert page.get_by_label("Coordinator API key").is_visible()
    assert page.monitor.page_errors == []


def test_colours_by_meaning_and_the_may_not_qualify_section(browser_page):
    page = browser_page
    page.goto(page.base_url + "/")
    data = send(page, FAILS_LUPUS_TRIALS)
    labels = [m["label"] for m in data["matches"]]
    assert "ineligible" in labels and any(label != "ineligible" for label in labels), labels
    # likely trials in the main list, the others in a collapsed section, none dropped
    main = page.locator("#matches > li.match")
    assert "ineligible" not in [li.get_attribute("data-label") for li in main.all()]
    section = page.locator("#ineligible-section")
    assert section.is_visible() and section.get_attribute("open") is None
    summary = section.locator("summary").first
    assert summary.inner_text() == f"Show trials the patient may not qualify for ({labels.count('ineligible')})"
    assert not page.locator("#ineligible > li.match").first.is_visible()
    summary.click()
    shown = [li.get_attribute("data-nct") for li in page.locator("#ineligible > li.match").all()]
    assert shown == [m["nct_id"] for m in data["matches"] if m["label"] == "ineligible"]
    assert main.count() + len(shown) == len(data["matches"])

    seen = set()
    for card in page.locator(".matches li.match").all():
        card.locator("summary").click()
        for item in card.locator("ul.criteria > li").all():
            kind, verdict = item.get_attribute("data-kind"), item.get_attribute("data-verdict")
            meaning = item.get_attribute("data-meaning")
            assert meaning == expected_meaning(kind, verdict), (kind, verdict, meaning)
            if meaning in MEANING_COLOURS:
                colour = item.evaluate("el => getComputedStyle(el).borderLeftColor")
                assert colour == MEANING_COLOURS[meaning], (kind, verdict, colour)
            seen.add((kind, verdict))
    # an exclusion that is not met is good news (green), an inclusion not met is bad news (red)
    assert ("exclusion", "not_met") in seen and ("inclusion", "met") in seen
    favicon = page.request.get(page.base_url + "/favicon.ico")
    assert favicon.status == 200 and favicon.headers["content-type"].startswith("image/svg+xml")
    assert_no_errors(page)


def test_nearest_site_and_the_no_trial_notice_with_a_location(browser_page):
    page = browser_page
    page.goto(page.base_url + "/")
    page.get_by_label("Latitude").fill(str(ORLANDO[0]))
    page.get_by_label("Longitude").fill(str(ORLANDO[1]))
    page.get_by_label("Within (km)").fill("300")
    with page.expect_request(lambda r: r.url.endswith("/messages")) as req:
        data = send(page, LUPUS_PATIENT)
    assert json.loads(req.value.post_data)["filters"] == {"near": {"lat": ORLANDO[0], "lon": ORLANDO[1],
                                                                    "radius_km": 300}}
    seed = next(m for m in data["matches"] if m["nct_id"] == SEED_TRIAL)
    assert seed["nearest_site_km"] == pytest.approx(haversine_km(*ORLANDO, *TAMPA), abs=0.1)
    show_all(page)
    site = page.locator(f'.matches li.match[data-nct="{SEED_TRIAL}"] .site').inner_text()
    assert seed["nearest_site"].endswith("Tampa, Florida, United States"), seed["nearest_site"]
    assert site == f"Nearest recruiting site: {seed['nearest_site']}, {seed['nearest_site_km']:,} km away"
    assert page.locator("#notice").is_hidden()

    # far from every site: no trial, and the notice says so
    page.get_by_label("Latitude").fill("-45")
    page.get_by_label("Longitude").fill("170")
    page.get_by_label("Within (km)").fill("50")
    data = send(page, "She also has lupus nephritis.")
    assert data["matches"] == []
    notice = page.locator("#notice")
    notice.wait_for(state="visible")
    assert notice.inner_text().startswith("No relevant recruiting trial found")
    assert page.locator(".matches li.match").count() == 0

    # half a location is refused in the page, before any request
    page.get_by_label("Longitude").fill("")
    page.get_by_label("Patient description or answer").fill("lupus")
    page.get_by_role("button", name="Send").click()
    assert "give both a latitude" in page.get_by_role("status").inner_text()
    assert_no_errors(page)


def test_the_widget_says_it_is_loading_trials_until_the_server_is_ready(browser_page):
    page = browser_page
    state = {"done": 120, "ready": False, "calls": 0}

    def health(route):
        state["calls"] += 1
        if state["ready"]:
            route.continue_()
        else:
            route.fulfill(status=503, content_type="application/json",
                          body=json.dumps({"status": "loading", "progress": {"done": state["done"], "total": 500}}))

    page.route("**/api/v1/health", health)
    page.goto(page.base_url + "/")
    status = page.get_by_role("status")
    page.wait_for_function("() => document.getElementById('status').textContent === 'Loading trials, 120 of 500…'")
    assert page.get_by_role("button", name="Send").is_disabled()
    state["done"] = 480
    page.wait_for_function("() => document.getElementById('status').textContent === 'Loading trials, 480 of 500…'")
    assert page.get_by_role("button", name="Send").is_disabled()
    state["ready"] = True
    page.wait_for_function("() => !document.getElementById('send').disabled")
    assert status.inner_text() == "Ready."
    assert state["calls"] >= 3
    send(page, LUPUS_PATIENT)
    assert page.locator(".matches li.match").count() > 0
    # the stubbed 503 answers are logged by Chromium as failed loads; nothing else may be
    page.monitor.console_errors[:] = [e for e in page.monitor.console_errors if "status of 503" not in e]
    assert_no_errors(page)


def test_a_town_with_trial_sites_fills_in_the_coordinates(browser_page):
    page = browser_page
    page.goto(page.base_url + "/")
    town = page.get_by_label("Town or city")
    with page.expect_response(lambda r: "/api/v1/places?q=tamp" in r.url.lower()) as looked_up:
        town.fill("tamp")
    assert looked_up.value.status == 200
    option = page.locator("#places option").first
    option.wait_for(state="attached")
    name = option.get_attribute("value")
    assert name.startswith("Tampa, ")
    town.fill(name)
    assert (float(page.get_by_label("Latitude").input_value()), float(page.get_by_label("Longitude").input_value())
            ) == TAMPA
    data = send(page, LUPUS_PATIENT)
    seed = next(m for m in data["matches"] if m["nct_id"] == SEED_TRIAL)
    assert seed["nearest_site_km"] == 0.0
    show_all(page)
    assert page.locator(f'.matches li.match[data-nct="{SEED_TRIAL}"] .site').inner_text() == \
        f"Nearest recruiting site: {seed['nearest_site']}, 0 km away"
    page.get_by_label("Town or city").fill("Xyzzyville")
    page.wait_for_function("() => document.getElementById('place-hint').textContent.startsWith('No trial site')")
    assert_no_errors(page)
