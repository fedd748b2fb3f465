"""A four-turn conversation in the browser: after each turn the profile panel shows what the API extracted
(earlier facts kept, new ones added) and the seed trial's verdicts are the API's."""
from __future__ import annotations

import pytest

from tests.browser.test_widget import SEED_TRIAL, send, show_all

pytestmark = pytest.mark.browser

# (message, facts the profile panel must show after it, facts it must no longer show)
TURNS = [
    ("38-year-old woman with systemic lupus erythematosus and lupus nephritis class IV on biopsy, "
     "failed mycophenolate.",
     ["Age: 38", "Sex: female", "Condition: systemic lupus erythematosus", "Condition: lupus nephritis class IV",
      "Treatment: mycophenolate mofetil (failed)"]),
    ("Her UPCR is 2.4 g/g.", ["Test: upcr 2.4 g/g"]),
    ("She has never received CAR-T cell therapy.", ["Treatment: car_t (no)"]),
    ("Her SLEDAI-2K score is 12.", ["Test: sledai_2k 12"]),
]


def profile_fact_count(profile: dict) -> int:
    return (int(profile["age"] is not None or profile["age_range"] is not None) + int(profile["sex"] is not None)
            + len(profile["conditions"]) + len(profile["labs"]) + len(profile["therapies"])
            + len(profile["therapy_counts"]))


def shown_verdicts(page) -> list[tuple[str, str, str]]:
    items = page.locator(f'.matches li.match[data-nct="{SEED_TRIAL}"] ul.criteria > li')
    return [(li.get_attribute("data-kind"), li.get_attribute("data-verdict"), li.locator(".reason").text_content())
            for li in items.all()]


def sledai_verdict(data: dict) -> str:
    seed = next(m for m in data["matches"] if m["nct_id"] == SEED_TRIAL)
    return next(c["verdict"] for c in seed["criteria"] if "SLEDAI" in c["text"])


def test_four_turns_keep_the_profile_and_show_the_apis_verdicts(browser_page):
    page = browser_page
    page.goto(page.base_url + "/")
    assert page.locator("#profile-panel").is_hidden()
    expected: list[str] = []
    replies = []
    for turn, (message, facts) in enumerate(TURNS, 1):
        data = send(page, message)
        replies.append(data)
        assert page.locator("#transcript > li").count() == 2 * turn
        expected += facts
        panel = page.locator("#profile > li").all_inner_texts()
        assert len(panel) == profile_fact_count(data["profile"])
        missing = [f for f in expected if f not in panel]
        assert not missing, (turn, missing, panel)  # what earlier turns said is still there
        show_all(page)
        card = page.locator(f'.matches li.match[data-nct="{SEED_TRIAL}"]')
        card.wait_for()
        seed = next(m for m in data["matches"] if m["nct_id"] == SEED_TRIAL)
        assert card.get_attribute("data-label") == seed["label"]
        assert shown_verdicts(page) == [(c["kind"], c["verdict"], c["reason"]) for c in seed["criteria"]]
    # the SLEDAI criterion was open until the score was given, and settled by it
    assert [sledai_verdict(d) for d in replies[:3]] == ["unknown"] * 3
    assert sledai_verdict(replies[3]) != "unknown"
    assert page.monitor.page_errors == [] and page.monitor.console_errors == []
