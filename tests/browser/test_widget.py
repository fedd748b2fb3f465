"""End-to-end tests of the chat widget at ``/`` in a real (headless Chromium) browser."""
from __future__ import annotations

import re
from collections import Counter

import pytest

pytestmark = pytest.mark.browser

LUPUS_PATIENT = ("45-year-old woman with refractory systemic lupus erythematosus, SLEDAI-2K 12, "
                 "failed mycophenolate and belimumab; no prior CAR-T")
SEED_TRIAL = "NCT06897930"
LABELS = {"Eligible", "Possibly eligible", "Not eligible"}
VERDICTS = {"met", "not_met", "unknown", "not_applicable"}
# Answers that resolve a lab question (read in the question's context, so a bare value is enough).
LAB_ANSWERS = {"sledai_2k": "12", "ana": "positive at 1:640", "anti_dsdna": "positive, 85 IU/mL",
               "upcr": "1.2 g/g", "uacr": "300 mg/g", "egfr": "85 mL/min/1.73m2", "creatinine": "0.9 mg/dL",
               "platelets": "220 x10^9/L", "anc": "3.1 x10^9/L", "wbc": "6.2 x10^9/L", "hemoglobin": "12.1 g/dL",
               "alt": "25 U/L", "ast": "22 U/L", "bilirubin": "0.6 mg/dL", "ecog": "1", "hba1c": "5.4%",
               "qtc": "420 ms", "lvef": "60%", "proteinuria": "1.1 g/day", "bmi": "24", "c3": "70 mg/dL",
               "c4": "8 mg/dL", "inr": "1.0", "albumin": "3.9 g/dL"}


def answer_for(key: str, text: str) -> str:
    """An answer to the widget's follow-up question that changes the patient profile."""
    kind, _, what = key.partition(":")
    if kind == "consent" or "consent" in text.lower():
        return "Yes, she is willing and able to give written informed consent and to follow the visit schedule."
    if kind == "lab" and what in LAB_ANSWERS:
        return LAB_ANSWERS[what]
    if kind in ("condition", "therapy"):
        return "no"  # a bare yes/no is read as a (negated) fact about the asked condition/therapy
    if kind == "therapy_count":
        return ("She has received three immunosuppressants: mycophenolate mofetil, azathioprine and "
                "belimumab (a biologic).")
    if kind == "therapy_date":
        return "more than 12 months ago"
    if kind == "age":
        return "45 years old"
    if kind == "sex":
        return "female"
    if kind == "healthy":
        return "No, she is not a healthy volunteer; she has lupus."
    raise AssertionError(f"no scripted answer for follow-up question {key!r}: {text!r}")


def send(page, text: str) -> dict:
    """Type ``text`` into the labelled textarea, press Send, return the messages API response body."""
    before = page.locator("#transcript > li").count()
    page.get_by_label("Patient description or answer").fill(text)
    with page.expect_response(lambda r: re.search(r"/api/v1/sessions/[^/]+/messages$", r.url)
                              and r.request.method == "POST") as resp:
        page.get_by_role("button", name="Send").click()
    assert resp.value.status == 200, resp.value.text()
    # The user's message and the assistant's reply are both in the transcript once the results are rendered.
    page.locator("#transcript > li").nth(before + 1).wait_for()
    page.wait_for_function("() => !document.getElementById('send').disabled")
    return resp.value.json()


def show_all(page) -> None:
    """Expand the collapsed "trials the patient may not qualify for" section when there is one."""
    section = page.locator("#ineligible-section")
    if section.is_visible() and section.get_attribute("open") is None:
        section.locator("summary").first.click()


def verdicts_of(page, nct_id: str) -> list[tuple[str, str, str]]:
    items = page.locator(f'.matches li.match[data-nct="{nct_id}"] ul.criteria > li')
    return [(li.get_attribute("data-kind"), li.get_attribute("data-verdict"), li.locator(".reason").inner_text())
            for li in items.all()]


def assert_clean(page) -> None:
    monitor = page.monitor
    assert monitor.page_errors == [], monitor.page_errors
    assert monitor.console_errors == [], monitor.console_errors
    assert monitor.non_local_requests() == [], monitor.non_local_requests()
    assert any(u.endswith("/static/app.js") for u in monitor.requests), monitor.requests


def test_page_accessibility_basics(browser_page):
    page = browser_page
    response = page.goto(page.base_url + "/")
    assert response is not None and response.ok
    assert "script-src 'self'" in response.headers.get("content-security-policy", "")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.title()
    textarea = page.get_by_label("Patient description or answer")
    assert textarea.evaluate("el => el.tagName") == "TEXTAREA"
    assert page.locator("#message").evaluate("el => el.labels.length") >= 1
    assert page.locator("#transcript").get_attribute("aria-live") in ("polite", "assertive")
    assert page.get_by_role("button", name="Send").is_visible()
    assert page.get_by_role("button", name="End session and delete data").is_visible()
    assert page.get_by_role("heading", level=1).count() == 1
    assert page.get_by_role("status").count() == 1
    # No inline scripts or styles: the page works under the 'self'-only CSP.
    assert page.locator("script:not([src])").count() == 0
    assert page.locator("style, [style]").count() == 0
    assert_clean(page)


def test_describe_patient_then_answer_follow_up(browser_page):
    page = browser_page
    page.goto(page.base_url + "/")

    data = send(page, LUPUS_PATIENT)
    transcript = page.locator("#transcript > li")
    assert transcript.nth(0).inner_text().endswith(LUPUS_PATIENT)
    assert "not medical advice" in transcript.nth(1).inner_text()

    # The seed trial is listed with a label.
    show_all(page)
    match = page.locator(f'.matches li.match[data-nct="{SEED_TRIAL}"]')
    match.wait_for()
    assert match.get_attribute("data-label") in ("eligible", "possibly_eligible", "ineligible")
    label = match.locator(".label").inner_text().strip()
    assert label in LABELS
    assert SEED_TRIAL in match.locator("h3").inner_text()
    assert re.search(r"\d+ trials shown", page.get_by_role("status").inner_text())

    # Reasons are collapsed until expanded, then show a verdict and a reason per criterion.
    criteria_list = match.locator("ul.criteria")
    assert not criteria_list.is_visible()
    match.locator("summary").click()
    criteria_list.wait_for(state="visible")
    before = verdicts_of(page, SEED_TRIAL)
    api_match = next(m for m in data["matches"] if m["nct_id"] == SEED_TRIAL)
    assert len(before) == len(api_match["criteria"]) > 5
    trial = page.request.get(f"{page.base_url}/api/v1/trials/{SEED_TRIAL}").json()
    criterion_texts = [c["text"] for c in trial["criteria"]]
    for kind, verdict, reason in before:
        assert kind in ("inclusion", "exclusion")
        assert verdict in VERDICTS
        quoted = re.match(r'(Inclusion|Exclusion) "(.+?)"(?: \(registry field\))?: ', reason, re.S)
        assert quoted, f"reason does not quote its criterion: {reason!r}"
        assert quoted.group(1).lower() == kind
        if "(registry field)" not in reason:
            fragment = quoted.group(2).rstrip("…").strip()
            assert any(fragment in text for text in criterion_texts), fragment
    shown = match.locator("ul.criteria .verdict").all_inner_texts()
    assert all(re.match(r"(Inclusion|Exclusion) · (Met|Not met|Unknown|Not applicable)$", t) for t in shown), shown

    # A follow-up question is displayed, and it is the one the API asked.
    question = page.locator("#question")
    question.wait_for(state="visible")
    question_text = question.inner_text()
    assert question_text.startswith("Follow-up question: ")
    asked = data["next_question"]
    assert asked and question_text == "Follow-up question: " + asked["text"]
    assert SEED_TRIAL in asked["trials"], asked

    # Answer it; the seed trial's verdicts change.
    answer = answer_for(asked["key"], question_text.removeprefix("Follow-up question: "))
    data2 = send(page, answer)
    assert page.locator("#transcript > li").count() == 4
    show_all(page)
    match = page.locator(f'.matches li.match[data-nct="{SEED_TRIAL}"]')
    match.wait_for()
    match.locator("summary").click()
    match.locator("ul.criteria").wait_for(state="visible")
    after = verdicts_of(page, SEED_TRIAL)
    assert after != before
    counts_before = Counter(v for _, v, _ in before)
    counts_after = Counter(v for _, v, _ in after)
    # the answer is in the profile and settles at least part of what was unknown (a criterion that also needs
    # something else may stay unknown, with a different reason)
    assert counts_after["unknown"] <= counts_before["unknown"], (asked, answer, counts_before, counts_after)
    kind, _, what = asked["key"].partition(":")
    if kind == "lab":
        assert what in [lab["name"] for lab in data2["profile"]["labs"]], data2["profile"]
    else:
        assert counts_after["unknown"] < counts_before["unknown"], (asked, answer, counts_before, counts_after)
    # The question just answered is not asked again.
    if data2["next_question"]:
        assert data2["next_question"]["key"] != asked["key"]
        assert page.locator("#question").inner_text() == "Follow-up question: " + data2["next_question"]["text"]
    else:
        assert page.locator("#question").is_hidden()
    assert_clean(page)


def test_end_session_deletes_data(browser_page):
    page = browser_page
    page.goto(page.base_url + "/")
    with page.expect_response(lambda r: r.url.endswith("/api/v1/sessions") and r.request.method == "POST") as created:
        send(page, LUPUS_PATIENT)
    assert created.value.status == 201
    session_id = created.value.json()["id"]
    session_url = f"{page.base_url}/api/v1/sessions/{session_id}"
    stored = page.request.get(session_url)
    assert stored.status == 200
    assert any(m["text"] == LUPUS_PATIENT for m in stored.json()["messages"])
    assert page.locator(".matches li.match").count() > 0

    with page.expect_response(lambda r: r.url == session_url and r.request.method == "DELETE") as deleted:
        page.get_by_role("button", name="End session and delete data").click()
    assert deleted.value.status == 204
    page.wait_for_function("() => document.getElementById('transcript').children.length === 0")
    assert page.locator("#transcript > li").count() == 0
    assert page.locator("#transcript").inner_text().strip() == ""
    assert page.locator(".matches li").count() == 0
    assert page.locator("#ineligible-section").is_hidden()
    assert page.locator("#question").is_hidden()
    assert "deleted" in page.get_by_role("status").inner_text()
    assert page.request.get(session_url).status == 404

    # The widget starts a new session afterwards instead of writing to the deleted one.
    with page.expect_response(lambda r: r.url.endswith("/api/v1/sessions") and r.request.method == "POST") as again:
        send(page, LUPUS_PATIENT)
    assert again.value.json()["id"] != session_id
    assert page.locator("#transcript > li").count() == 2
    assert_clean(page)
