"""trialmatch as a Model Context Protocol server (``trialmatch mcp``, stdio).

Tools: ``match_patient(text, filters, top_k)``, ``get_trial(nct_id)``, ``explain_match(nct_id, text)``;
resource: ``trial://{nct_id}``. Arguments are validated by the HTTP API's own validators and results are
the HTTP API's own validation and response shaping (``assistant.web.schemas``, ``assistant.responses``), so a chat assistant
gets the same labels, per-criterion reasons, evidence spans and follow-up questions as ``POST /api/v1/match``.
A rejected argument is a tool error ``"<code>: <message>"`` with the API's stable code. Patient text is
never logged, and nothing but the protocol is written to stdout.

The ``mcp`` SDK is an optional dependency (``pip install -e '.[mcp]'``); it is imported only here.
"""
from __future__ import annotations

import contextlib
import json
import logging
import sys
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from assistant import __version__, responses
from assistant.matching.filters import Filters
from assistant.responses import (
    match_result_to_dict,
    match_to_dict,
    profile_to_dict,
    question_to_dict,
)
from assistant.web import schemas
from assistant.web.errors import APIError
from models.repository import TrialNotFound

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

logger = logging.getLogger(__name__)

INSTRUCTIONS = (
    "trialmatch matches a free-text patient description to clinical trials and explains every eligibility "
    "criterion. Call match_patient with the description (age, sex, diagnoses, treatments and their outcome, "
    "lab values) to get ranked trials with a label (eligible, possibly_eligible, ineligible), a verdict and "
    "reason per criterion, and follow-up questions whose answers would settle the unknown criteria; ask the "
    "user those questions and call again with the answers added. get_trial (or the trial://{nct_id} resource) "
    "returns a trial with its criteria; explain_match evaluates one trial for one description."
)

TextArg = Annotated[str, Field(description="Free-text patient description (no names or identifiers needed).")]
NctArg = Annotated[str, Field(description="ClinicalTrials.gov identifier, e.g. NCT06897930.")]
FiltersArg = Annotated[dict[str, Any] | None, Field(description=(
    "Optional filters, as in the HTTP API: status (a status or list; default RECRUITING and "
    "NOT_YET_RECRUITING; 'ANY' for all), phase (e.g. ['PHASE2']), country, state, city, "
    "near {lat, lon, radius_km}."))]
TopKArg = Annotated[int | None, Field(description=f"How many trials to return (1-{schemas.MAX_TOP_K}).")]


class MCPUnavailable(RuntimeError):
    """The optional ``mcp`` SDK is not installed."""


def _sdk():  # type: ignore[no-untyped-def]
    try:
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
    except ImportError:
        raise MCPUnavailable("the MCP server needs the optional 'mcp' package: "
                             "pip install -c constraints.txt -e '.[mcp]'") from None
    return MCPServer, ToolError, ResourceError, ResourceNotFoundError


def error_text(exc: APIError) -> str:
    """A tool error as the model reads it: the API's stable code, then its message."""
    return f"{exc.code}: {exc.message}"


def _log_unexpected(where: str, exc: Exception) -> None:
    # the type and stack only: an exception message could quote the patient text
    logger.error("unexpected %s in %s\n%s", type(exc).__name__, where, "".join(traceback.format_tb(exc.__traceback__)))


def build_server(runtime: Any) -> "MCPServer":
    """The MCP server over one :class:`~assistant.services.Services` (trials already loaded)."""
    MCPServer, ToolError, ResourceError, ResourceNotFoundError = _sdk()
    settings = runtime.settings
    server = MCPServer("trialmatch", instructions=INSTRUCTIONS, version=__version__,
                       log_level=str(settings["LOG_LEVEL"]).upper())  # type: ignore[arg-type]

    @contextlib.contextmanager
    def tool_errors(tool: str) -> Iterator[None]:
        try:
            yield
        except APIError as exc:
            raise ToolError(error_text(exc)) from None
        except Exception as exc:  # noqa: BLE001 - never a traceback (or patient text) to the client
            _log_unexpected(f"tool {tool}", exc)
            raise ToolError("internal_error: the matcher failed; the server log has the details") from None

    def text_arg(value: Any) -> str:
        schemas.check_strings(value, "text")
        return schemas.parse_text(value, settings)

    def nct_arg(value: Any) -> str:
        if not isinstance(value, str):
            raise APIError("invalid_type", "'nct_id' must be a string")
        schemas.check_text(value, "nct_id")
        return schemas.parse_nct_id(value)

    def trial(nct_id: str) -> Any:
        try:
            return runtime.repo.get(nct_id)
        except TrialNotFound:
            raise APIError("trial_not_found", f"no trial {nct_id}", 404) from None

    @server.tool()
    def match_patient(text: TextArg, filters: FiltersArg = None, top_k: TopKArg = None) -> dict[str, Any]:
        """Match a patient description to clinical trials.

        Returns the extracted patient profile, the ranked matches (each with nct_id, title, score, label,
        relevant_conditions and one entry per criterion: kind, verdict, reason, evidence spans into the text,
        what is missing) and the follow-up questions that would settle the most unknown criteria.
        """
        with tool_errors("match_patient"):
            text = text_arg(text)
            schemas.check_strings(filters, "filters")
            parsed = schemas.parse_filters(filters, default_statuses=settings["DEFAULT_STATUSES"])
            k = schemas.parse_top_k(top_k, int(settings["TOP_K"]))
            return match_result_to_dict(runtime.match(text, parsed, top_k=k))

    @server.tool()
    def get_trial(nct_id: NctArg) -> dict[str, Any]:
        """A stored trial: title, status, phases, conditions, ages, sites and its eligibility criteria."""
        with tool_errors("get_trial"):
            return responses.trial_detail(trial(nct_arg(nct_id)))

    @server.tool()
    def explain_match(nct_id: NctArg, text: TextArg) -> dict[str, Any]:
        """Evaluate one trial (whatever its recruitment status) for a patient description.

        Returns the profile, the trial's label with a verdict and reason for every criterion, and the
        follow-up questions for this trial.
        """
        with tool_errors("explain_match"):
            nct = nct_arg(nct_id)
            text = text_arg(text)
            trial(nct)
            profile = runtime.extract(text)
            result = runtime.match(profile, Filters(nct_ids=frozenset({nct})), top_k=1)
            match = result.matches[0] if result.matches else None
            return {"profile": profile_to_dict(profile), "match": match_to_dict(match) if match else None,
                    "questions": [question_to_dict(q) for q in result.questions], "notice": result.notice}

    @server.resource("trial://{nct_id}", name="trial", mime_type="application/json",
                     description="A ClinicalTrials.gov trial stored in trialmatch, with its parsed criteria.")
    def trial_resource(nct_id: str) -> str:
        try:
            return json.dumps(responses.trial_detail(trial(nct_arg(nct_id))), ensure_ascii=False)
        except APIError as exc:
            error = ResourceNotFoundError if exc.code == "trial_not_found" else ResourceError
            raise error(error_text(exc)) from None

    return server


def serve_stdio(runtime: Any) -> int:
    """Load the trials (first start), then serve MCP on stdin/stdout until the client closes it."""
    server = build_server(runtime)  # first: a missing SDK is said before the (long) first load
    with contextlib.redirect_stdout(sys.stderr):  # the warm-up never writes on the protocol's stream
        runtime.prepare()
    server.run("stdio")
    return 0
