"""`trialmatch mcp`: the MCP server through the official SDK's client, in-process and over stdio.

The in-process tests share one SQLite database holding the fixture trials (the lupus seeds among them);
the stdio test launches `python -m assistant.cli mcp` as a subprocess on that database, so any byte the
server wrote to stdout besides the protocol would break the session.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import threading

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from assistant.ingest import RawItem
from assistant.mcp_server import build_server
from tests.helpers import REPO, fixture_studies

LUPUS = ("47-year-old woman with systemic lupus erythematosus and biopsy-proven lupus nephritis class IV, "
         "mycophenolate did not work, proteinuria 2.3 g/day, no prior CAR-T therapy.")
SENTINEL = "Quentin Marblefoot"
SEEDS = {"NCT06897930", "NCT06557265"}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory, nlp):
    from assistant.services import Services
    from assistant.settings import load_settings

    folder = tmp_path_factory.mktemp("mcp")
    rt = Services(load_settings({"DATABASE_URL": f"sqlite:///{folder / 'mcp.sqlite3'}", "INSTANCE_PATH": str(folder),
                                 "AUTOLOAD_BUNDLED": False, "PRELOAD": False}, environ={}), pipeline=nlp)
    rt.ingest_items([RawItem(str(i), s) for i, s in enumerate(fixture_studies())])
    yield rt
    rt.engine.dispose()


def run_async(fn, *args):
    """``anyio.run`` on a thread of its own: Playwright's sync API (the browser tests, earlier in the same
    session) keeps an event loop running in the main thread, where a second one cannot start."""
    out: dict = {}

    def target() -> None:
        try:
            out["value"] = anyio.run(fn, *args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            out["error"] = exc

    thread = threading.Thread(target=target, name="mcp-test-loop")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def call(server, tool: str, arguments: dict):
    async def go():
        async with Client(server) as client:
            return await client.call_tool(tool, arguments)

    return run_async(go)


def tool_error(result) -> str:
    assert result.is_error
    return result.content[0].text


def test_lists_the_tools_and_the_trial_resource(runtime):
    async def go():
        async with Client(build_server(runtime)) as client:
            return await client.list_tools(), await client.list_resource_templates()

    tools, templates = run_async(go)
    by_name = {t.name: t for t in tools.tools}
    assert set(by_name) == {"match_patient", "get_trial", "explain_match"}
    assert set(by_name["match_patient"].input_schema["properties"]) == {"text", "filters", "top_k"}
    assert by_name["match_patient"].input_schema["required"] == ["text"]
    assert set(by_name["explain_match"].input_schema["required"]) == {"nct_id", "text"}
    assert all(t.description for t in tools.tools)
    assert [t.uri_template for t in templates.resource_templates] == ["trial://{nct_id}"]


def test_match_patient_finds_the_lupus_seed_trials_with_reasons_and_questions(runtime):
    result = call(build_server(runtime), "match_patient", {"text": LUPUS, "top_k": 5})
    assert not result.is_error
    body = result.structured_content
    assert json.loads(result.content[0].text) == body  # the same JSON as text for clients without structure
    ids = [m["nct_id"] for m in body["matches"]]
    assert SEEDS <= set(ids)
    lupus = {c["concept"] for c in body["profile"]["conditions"]}
    assert any("lupus" in c for c in lupus) and body["profile"]["age"] == 47
    for m in body["matches"]:
        if m["nct_id"] in SEEDS:
            assert m["label"] in ("eligible", "possibly_eligible") and m["relevant_conditions"]
        for c in m["criteria"]:
            assert c["reason"] and c["verdict"] in ("met", "not_met", "unknown", "not_applicable")
            for ev in c["evidence"]:
                assert LUPUS[ev["start"]:ev["end"]] == ev["text"]
    assert body["questions"] and all(q["text"] for q in body["questions"])


def test_match_patient_answers_what_the_http_api_answers(app, client):
    rt = app.extensions["trialmatch"]
    request = {"text": LUPUS, "top_k": 4, "filters": {"status": "ANY", "phase": ["PHASE1"]}}
    over_http = client.post("/api/v1/match", json=request).get_json()
    over_mcp = call(build_server(rt), "match_patient", request).structured_content
    assert over_mcp == over_http
    assert over_mcp["matches"] and all("PHASE1" in m["phases"] for m in over_mcp["matches"])


def test_explain_match_evaluates_one_trial(runtime):
    server = build_server(runtime)
    body = call(server, "explain_match", {"nct_id": "nct06557265", "text": LUPUS}).structured_content
    match = body["match"]
    assert match["nct_id"] == "NCT06557265" and match["label"] in ("eligible", "possibly_eligible", "ineligible")
    assert match["criteria"] and all(c["reason"] for c in match["criteria"])
    assert {q["key"] for q in match["questions"]} <= {q["key"] for q in body["questions"]}
    # a trial about something else is still evaluated, and says why not
    other = call(server, "explain_match", {"nct_id": "NCT00000419", "text": "62-year-old man with gout"})
    assert not other.is_error and other.structured_content["match"]["nct_id"] == "NCT00000419"


def test_get_trial_and_the_resource_give_the_apis_trial(runtime, app, client):
    server = build_server(runtime)
    trial = call(server, "get_trial", {"nct_id": "NCT06897930"}).structured_content
    assert trial == client.get("/api/v1/trials/NCT06897930").get_json()
    assert trial["criteria"] and trial["title"]

    async def read():
        async with Client(server) as c:
            return await c.read_resource("trial://NCT06897930")

    (content,) = run_async(read).contents
    assert content.mime_type == "application/json" and json.loads(content.text) == trial


@pytest.mark.parametrize("tool,arguments,code", [
    ("get_trial", {"nct_id": "NCT123"}, "invalid_nct_id"),
    ("get_trial", {"nct_id": "NCT00000000"}, "trial_not_found"),
    ("explain_match", {"nct_id": "NCT00000000", "text": LUPUS}, "trial_not_found"),
    ("explain_match", {"nct_id": "lupus", "text": LUPUS}, "invalid_nct_id"),
    ("match_patient", {"text": "   "}, "empty_text"),
    ("match_patient", {"text": "lupus \x00"}, "invalid_characters"),
    ("match_patient", {"text": "lupus", "top_k": 0}, "invalid_type"),
    ("match_patient", {"text": "lupus", "top_k": 51}, "invalid_type"),
    ("match_patient", {"text": "lupus", "filters": {"status": "OPEN"}}, "invalid_filter"),
    ("match_patient", {"text": "lupus", "filters": {"colour": "red"}}, "invalid_filter"),
])
def test_bad_arguments_are_tool_errors_with_the_apis_codes(runtime, tool, arguments, code):
    assert f"{code}: " in tool_error(call(build_server(runtime), tool, arguments))


def test_missing_or_mistyped_arguments_are_tool_errors(runtime):
    server = build_server(runtime)
    assert "text" in tool_error(call(server, "match_patient", {}))
    assert "text" in tool_error(call(server, "match_patient", {"text": ["lupus"]}))


def test_text_size_cap_and_no_patient_text_in_the_logs(runtime, caplog):
    caplog.set_level(logging.DEBUG)
    server = build_server(runtime)
    cap = int(runtime.settings["MAX_TEXT_CHARS"])
    long_text = f"{SENTINEL} has lupus. " * (cap // 20 + 1)
    assert "text_too_long: " in tool_error(call(server, "match_patient", {"text": long_text}))
    assert not call(server, "match_patient", {"text": f"{SENTINEL}, 40, has lupus nephritis"}).is_error
    assert not call(server, "explain_match", {"nct_id": "NCT06897930", "text": f"{SENTINEL} has SLE"}).is_error
    assert caplog.records  # the server did log (tool failures, matching timings) ...
    assert all(SENTINEL not in r.getMessage() for r in caplog.records)  # ... but never the patient's words


def test_reading_an_unknown_or_malformed_trial_resource_is_a_protocol_error(runtime):
    async def read(uri: str) -> str:
        async with Client(build_server(runtime)) as c:
            with pytest.raises(MCPError) as exc:
                await c.read_resource(uri)
            return str(exc.value)

    assert "trial_not_found" in run_async(read, "trial://NCT00000000")
    assert "invalid_nct_id" in run_async(read, "trial://not-a-trial")


def test_stdio_server_speaks_only_the_protocol_on_stdout(runtime, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALMATCH_")}
    env.update({"TRIALMATCH_DATABASE_URL": runtime.settings["DATABASE_URL"], "TRIALMATCH_AUTOLOAD_BUNDLED": "false",
                "TRIALMATCH_INSTANCE_PATH": str(tmp_path / "instance")})
    params = StdioServerParameters(command=sys.executable, args=["-m", "assistant.cli", "mcp"], env=env, cwd=str(REPO))

    async def go():
        with anyio.fail_after(120):
            async with Client(params) as client:
                tools = await client.list_tools()
                trial = await client.call_tool("get_trial", {"nct_id": "NCT06897930"})
                bad = await client.call_tool("get_trial", {"nct_id": "NCT1"})
                return tools, trial, bad

    tools, trial, bad = run_async(go)
    assert {t.name for t in tools.tools} == {"match_patient", "get_trial", "explain_match"}
    assert trial.structured_content["nct_id"] == "NCT06897930"
    assert "invalid_nct_id: " in tool_error(bad)


def test_without_the_sdk_the_command_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    from assistant.cli import main

    monkeypatch.setitem(sys.modules, "mcp.server.mcpserver", None)  # as if the extra were not installed
    assert main(["--database-url", f"sqlite:///{tmp_path / 'db.sqlite3'}", "mcp"]) == 2
    err = capsys.readouterr().err
    assert "pip install -c constraints.txt -e '.[mcp]'" in err and "Traceback" not in err
    assert not (tmp_path / "db.sqlite3").exists()
