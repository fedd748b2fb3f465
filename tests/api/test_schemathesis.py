"""Schemathesis against /api/v1/openapi.json, in-process through the Flask WSGI app.

One app per module (SQLite, fixture trials, the session pipeline, a very high
rate limit). Every operation of the document is exercised with positive and
negative cases (examples, coverage and fuzzing phases) and checked for:
no 5xx, responses matching their schema, and status codes listed in the document.

Coordinator/admin operations get an admin key (a share of the cases sends none,
which must give 401); session and referral operations get a live id for about
half of the cases (DELETE gets a freshly created one, so nothing is excluded);
trial ids (path and referral body) are replaced by a stored trial's id likewise.
The number of operations and cases is printed by the last test of the module.
"""
from __future__ import annotations

import collections
import zlib

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.conftest import make_test_app

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
MAX_EXAMPLES = 40  # fuzzing examples per operation (the coverage phase adds its deterministic cases)
CASES: collections.Counter[str] = collections.Counter()
STATUSES: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
LUPUS = ("45-year-old woman with systemic lupus erythematosus and lupus nephritis class IV, "
         "failed mycophenolate. UPCR 2.1 g/g.")

pytestmark = pytest.mark.filterwarnings("ignore::Warning:schemathesis.*")


@pytest.fixture(scope="module")
def api_state(tmp_path_factory, nlp, studies_file):
    tmp = tmp_path_factory.mktemp("schemathesis")
    app = make_test_app(tmp, nlp, studies_file, RATE_LIMIT="1000000 per minute")
    rt = app.extensions["trialmatch"]
    admin_key = rt.keys.create("schemathesis-admin", "admin")
    client = app.test_client()
    nct_id = rt.repo.list(page=1, per_page=1).items[0].nct_id
    sessions = [client.post("/api/v1/sessions").get_json()["id"] for _ in range(3)]
    client.post(f"/api/v1/sessions/{sessions[0]}/messages", json={"text": LUPUS})
    state = {"app": app, "client": client, "admin_key": admin_key, "sessions": sessions, "nct_id": nct_id}
    state["referrals"] = [_new_referral(state) for _ in range(4)]
    yield state
    rt.engine.dispose()


@pytest.fixture(scope="module")
def api_schema(api_state):
    config = SchemathesisConfig.from_dict({
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "with-security-parameters": False},
        "phases": {"stateful": {"enabled": False}},
        "seed": 20240501,
    })
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api_state["app"], config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


def _new_referral(state: dict) -> int:
    resp = state["client"].post("/api/v1/referrals", json={"nct_id": state["nct_id"], "text": LUPUS,
                                                           "contact_ref": "schemathesis"})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["id"]


def _pick(value: object, choices: list[str]) -> str | None:
    """Deterministically replace about half of the generated ids by a live one."""
    digest = zlib.crc32(repr(value).encode("utf-8", "surrogatepass"))
    return choices[digest % len(choices)] if digest % 2 == 0 else None


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_api_conforms_to_openapi(case, api_state) -> None:
    params = case.path_parameters or {}
    if "session_id" in params and _pick(params["session_id"], api_state["sessions"]) is not None:
        if case.method.upper() == "DELETE":  # deletes a fresh session, so the shared ones stay alive
            params["session_id"] = api_state["client"].post("/api/v1/sessions").get_json()["id"]
        else:
            params["session_id"] = _pick(params["session_id"], api_state["sessions"])
    if "referral_id" in params:
        shared = api_state["referrals"]
        live = _pick(params["referral_id"], [str(r) for r in shared])
        if case.method.upper() == "DELETE":  # deletes a fresh referral, so the shared ones stay
            if live is not None or str(params["referral_id"]) in {str(r) for r in shared}:
                params["referral_id"] = _new_referral(api_state)
        elif live is not None:
            params["referral_id"] = int(live)
    if "nct_id" in params and _pick(params["nct_id"], [api_state["nct_id"]]) is not None:
        params["nct_id"] = api_state["nct_id"]
    if isinstance(case.body, dict) and isinstance(case.body.get("nct_id"), str) and _pick(
            case.body["nct_id"], [api_state["nct_id"]]) is not None:
        case.body["nct_id"] = api_state["nct_id"]
    headers = {}
    secured = bool(case.operation.definition.raw.get("security"))
    if secured and zlib.crc32(repr((params, case.query)).encode("utf-8", "surrogatepass")) % 5:
        headers["X-API-Key"] = api_state["admin_key"]
    label = case.operation.label
    if case.method.upper() != case.operation.method.upper():
        label = "(unexpected methods) " + label
    CASES[label] += 1
    response = case.call_and_validate(headers=headers, checks=CHECKS)
    STATUSES[label][response.status_code] += 1
    if headers and response.status_code == 401:
        raise AssertionError(f"the admin key was refused: {response.text}")


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_out_of_range_referral_id_is_not_a_server_error(api_state, method) -> None:
    """The document allows any integer >= 1; ids past the database's integer range must be a 404, not a 500."""
    resp = getattr(api_state["client"], method)(f"/api/v1/referrals/{2**63}", json={"status": "new"},
                                                headers={"X-API-Key": api_state["admin_key"]})
    assert resp.status_code == 404, resp.get_data(as_text=True)


@pytest.mark.parametrize("operation", ["match", "message", "referral"])
def test_lone_surrogate_in_text_is_not_a_server_error(api_state, operation) -> None:
    """JSON may escape a lone surrogate ("\\ud800"); Python decodes it into the str the API then processes."""
    client = api_state["client"]
    text = '"lupus nephritis \\ud800 on mycophenolate"'
    if operation == "match":
        url, body = "/api/v1/match", '{"text": %s}' % text
    elif operation == "message":
        url, body = f"/api/v1/sessions/{api_state['sessions'][2]}/messages", '{"text": %s}' % text
    else:
        url, body = "/api/v1/referrals", '{"nct_id": "%s", "contact_ref": "c-1", "text": %s}' % (
            api_state["nct_id"], text)
    resp = client.post(url, data=body, content_type="application/json")
    assert resp.status_code < 500, resp.get_data(as_text=True)
    assert resp.status_code in (200, 201, 400), resp.get_data(as_text=True)


def test_zz_report_schemathesis_coverage(capsys) -> None:
    """Runs last in this module: print what the schemathesis run exercised (shown with -s or in the summary)."""
    operations = [label for label in CASES if not label.startswith("(")]
    lines = [f"schemathesis: {len(operations)} operations, {sum(CASES.values())} cases "
             f"({sum(CASES[label] for label in operations)} on documented operations, the rest probe "
             f"undocumented methods)"]
    for label in sorted(CASES):
        codes = ", ".join(f"{code}x{n}" for code, n in sorted(STATUSES[label].items()))
        lines.append(f"  {label}: {CASES[label]} cases ({codes})")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert CASES, "schemathesis ran no cases"
