"""The ``trialmatch`` command."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from assistant.settings import load_settings

logger = logging.getLogger(__name__)


def _runtime(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The composition root of a CLI command: one ``Services`` built from the settings and the flags."""
    from assistant.services import Services

    overrides: dict[str, Any] = {"PRELOAD": False}
    if getattr(args, "database_url", None):
        overrides["DATABASE_URL"] = args.database_url
    return Services(load_settings(overrides))


def cmd_init_db(args: argparse.Namespace) -> int:
    rt = _runtime(args)
    _ = rt.engine  # creates the schema
    if not args.empty:
        rt.ensure_trials(progress=sys.stderr.isatty())
    print(f"database ready: {rt.repo.count()} trials")
    return 0


def print_rejected(report) -> None:  # type: ignore[no-untyped-def]
    for position, reason in report.rejected:
        print(f"rejected {position}: {reason}", file=sys.stderr)


def print_flagged(report) -> None:  # type: ignore[no-untyped-def]
    if report.flagged:
        print(f"{report.flagged} open referral(s) flagged for review: their trial changed")


def _background_priority() -> None:
    """Ingest and sync are batch work: on a host that also serves, they yield the CPU to the workers."""
    if hasattr(os, "nice"):
        try:
            os.nice(10)
        except OSError:
            logger.debug("could not lower the priority of this command")


def cmd_ingest(args: argparse.Namespace) -> int:
    _background_priority()
    rt = _runtime(args)
    report = rt.ingest([Path(p) for p in args.paths], parse=not args.no_parse, batch_size=args.batch_size,
                       progress=not args.quiet)
    print_rejected(report)
    print(report.summary())
    print_flagged(report)
    return 0 if report.processed else 1


def _sync_query(args: argparse.Namespace, settings: dict[str, Any]):  # type: ignore[no-untyped-def]
    from assistant.sync import SyncQuery

    return SyncQuery(condition=args.condition, statuses=tuple(dict.fromkeys(args.status or ())), country=args.country,
                     since=args.since, page_size=args.page_size or int(settings["CTGOV_PAGE_SIZE"]))


def cmd_sync(args: argparse.Namespace) -> int:
    """Page through ClinicalTrials.gov API v2 and upsert each page through the ingest path."""
    from assistant import sync

    _background_priority()
    rt = _runtime(args)  # the database is opened on first use (never by a dry run)
    settings = rt.settings
    query = _sync_query(args, settings)
    try:
        client = sync.RegistryClient(str(settings["CTGOV_API_URL"]), sync.RetryPolicy.from_settings(settings))
        if args.dry_run:
            total = sync.count(query, client)
            pages = -(-total // query.page_size) if total else 0
            print(f"dry run: would fetch {total} studies ({pages} page(s) of {query.page_size}) "
                  f"from {client.base_url}; nothing written")
            return 0
        def store(items):  # type: ignore[no-untyped-def]
            # one page through the ingest path; the snapshot is built once, after the last page
            return rt.ingest_items(items, parse=not args.no_parse, batch_size=args.batch_size, refresh=False)

        def on_page(page_no: int, n: int, result) -> None:  # type: ignore[no-untyped-def]
            print_rejected(result)
            if not args.quiet:
                print(f"page {page_no}: {n} studies; {result.summary()}", file=sys.stderr)

        cursors = sync.MetaCursorStore(rt.repo)
        report = sync.sync(query, client, cursors, store, restart=args.restart, max_pages=args.max_pages,
                           on_page=on_page)
    except sync.SyncError as exc:
        print(f"sync failed: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("sync interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    if report.resumed_at is not None:
        print(f"resumed an interrupted sync at page {report.resumed_at}")
    if report.restarted:
        print("the saved cursor was refused by the registry; started again from the first page")
    if report.total is not None:
        print(f"{report.total} studies match the query")
    print(report.summary())
    print_flagged(report.ingest)
    if report.ingest.counts.added or report.ingest.counts.updated:
        rt.refresh()  # the new corpus version's snapshot, saved for the workers to load
    return 0


def _iso_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {value!r}") from None


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return int(value)


def _page_size(value: str) -> int:
    from assistant.sync import MAX_PAGE_SIZE

    try:
        n = int(value)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"expected an integer from 1 to {MAX_PAGE_SIZE}, got {value!r}")
    return n


def _statuses(value: str) -> list[str]:
    """'recruiting, not yet recruiting' -> ['RECRUITING', 'NOT_YET_RECRUITING'] (registry status names)."""
    from assistant.matching.filters import KNOWN_STATUSES

    statuses = [s for s in (p.strip().upper().replace(" ", "_") for p in value.split(",")) if s]
    bad = [s for s in statuses if s not in KNOWN_STATUSES]
    if bad or not statuses:
        raise argparse.ArgumentTypeError(f"unknown status {', '.join(bad) or repr(value)} "
                                         "(e.g. RECRUITING, NOT_YET_RECRUITING)")
    return statuses


def cmd_db(args: argparse.Namespace) -> int:
    from models.db import make_engine
    from models.migrate import current_revision, head_revision, upgrade

    settings = _runtime(args).settings
    engine = make_engine(settings["DATABASE_URL"])
    if args.action == "upgrade":
        upgrade(engine, args.revision)
    print(f"schema revision: {current_revision(engine)} (latest: {head_revision()})")
    engine.dispose()
    return 0


def cmd_trials(args: argparse.Namespace) -> int:
    from models.repository import TrialNotFound

    rt = _runtime(args)
    rt.ensure_trials(progress=sys.stderr.isatty())
    if args.action == "list":
        page = rt.repo.list(q=args.q, condition=args.condition, statuses=args.status or (),
                            page=args.page, per_page=args.per_page)
        for t in page.items:
            print(f"{t.nct_id}  {t.overall_status or '-':<20} {t.title[:90]}")
        print(f"-- {len(page.items)} of {page.total} trials (page {args.page})")
        return 0
    status = 0
    for nct_id in args.nct_ids:
        try:
            trial = rt.repo.get(nct_id.upper())
        except TrialNotFound:
            print(f"{nct_id}: not found", file=sys.stderr)
            status = 1
            continue
        print(_format_trial(trial))
    return status


def _format_trial(trial) -> str:  # type: ignore[no-untyped-def]
    lines = [f"{trial.nct_id}  {trial.title}",
             f"status: {trial.overall_status}  phases: {', '.join(trial.phases) or '-'}  "
             f"ages: {trial.minimum_age_raw or 'no minimum'} - {trial.maximum_age_raw or 'no maximum'}  "
             f"sex: {trial.sex or '-'}",
             f"conditions: {'; '.join(trial.conditions) or '-'}", ""]
    for kind in ("inclusion", "exclusion"):
        items = [c for c in trial.criteria if c.kind.value == kind]
        lines.append(f"{kind.capitalize()} criteria ({len(items)}):")
        cohort = None
        for c in items:
            if c.cohort != cohort:
                cohort = c.cohort
                lines.append(f"  [cohort: {cohort}]" if cohort else "  [all participants]")
            lines.append(f"  {'    ' * c.depth}{c.position:>3}. {c.text}")
            if c.parsed is not None:
                lines.append(f"  {'    ' * c.depth}       -> {_describe_parse(c.parsed)}")
    return "\n".join(lines)


def _describe_parse(parsed) -> str:  # type: ignore[no-untyped-def]
    """One line for a parsed criterion: its requirements, logic and guards."""
    if not parsed.parsed:
        return "not structured (checked by wording; never 'met')"

    def one(r) -> str:  # type: ignore[no-untyped-def]
        what = r.lab or ", ".join(r.concepts + r.classes) or r.sex or r.type
        cmp = f" {r.comparator.value} {r.value:g}" if r.comparator and r.value is not None else ""
        high = f"..{r.value_high:g}" if r.value_high is not None else ""
        extra = "".join(f" {k}={v}" for k, v in (("min", r.min_count), ("qualifier", r.qualifier),
                                                   ("within_days", r.within_days)) if v)
        return f"{'' if r.present else 'NO '}{r.type}({what}{cmp}{high}{' ' + r.unit if r.unit else ''}{extra})"

    text = f" {parsed.logic.upper()} ".join(one(r) for r in parsed.requirements)
    if parsed.guards:
        text = f"if {' and '.join(one(g) for g in parsed.guards)}: {text}"
    return text


def cmd_serve(args: argparse.Namespace) -> int:
    from assistant.server import serve

    settings = load_settings({k: v for k, v in {
        "HOST": args.host, "PORT": args.port, "WORKERS": args.workers, "THREADS": args.threads,
    }.items() if v is not None})
    return serve(settings, debug=args.debug)


def cmd_match(args: argparse.Namespace) -> int:
    from assistant.matching.filters import FilterError, parse_filters
    from assistant.responses import match_result_to_dict

    rt = _runtime(args)
    try:
        filters = parse_filters({"status": args.status} if args.status else None,
                                default_statuses=rt.settings.DEFAULT_STATUSES)
    except FilterError as exc:
        print(f"trialmatch match: {exc}", file=sys.stderr)
        return 2
    rt.prepare(progress=sys.stderr.isatty())
    result = rt.match(args.text, filters, top_k=args.top_k)
    data = match_result_to_dict(result)
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        from assistant.responses import format_result_text

        print(format_result_text(data))
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    """Serve the Model Context Protocol on stdin/stdout (stdout carries only the protocol)."""
    from assistant.mcp_server import MCPUnavailable, serve_stdio

    try:
        return serve_stdio(_runtime(args))
    except MCPUnavailable as exc:
        print(str(exc), file=sys.stderr)
        return 2


def cmd_purge(args: argparse.Namespace) -> int:
    """Delete expired chat sessions and closed referrals past REFERRAL_RETENTION_DAYS now (for cron; workers
    also do it on their own)."""
    from models.workflow import purge_expired_data

    rt = _runtime(args)
    days = rt.settings.REFERRAL_RETENTION_DAYS
    n = purge_expired_data(rt.sessions, rt.referrals, days)
    kept = f"closed referrals older than {days:g} days" if days > 0 else "closed referrals (kept: retention 0)"
    print(f"deleted {n.sessions} expired chat sessions and {n.referrals} {kept}")
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    from models.workflow import NotFound

    rt = _runtime(args)
    if args.action == "create":
        # a coordinator without --team joins DEFAULT_TEAM (where unmapped referrals go); admins see every team
        team = args.team if args.team is not None or args.role == "admin" else rt.settings.get("DEFAULT_TEAM")
        try:
            key = rt.keys.create(args.name, args.role, team=team or None)
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        except Exception as exc:  # noqa: BLE001 - e.g. a duplicate name (integrity error)
            print(f"could not create {args.name!r}: {type(exc).__name__}", file=sys.stderr)
            return 1
        scope = "every team" if args.role == "admin" else f"team {(team or 'default').strip()!r}"
        print(f"created {args.role} key for {args.name} ({scope}); store it now, it is not shown again:")
        print(key)
        return 0
    if args.action == "revoke":
        try:
            rt.keys.revoke(args.name)
        except NotFound:
            print(f"no key named {args.name!r}", file=sys.stderr)
            return 1
        print(f"revoked {args.name}")
        return 0
    for name, role, team, revoked in rt.keys.entries():
        print(f"{name:<30} {role:<12} {team or '(all teams)':<20} {'revoked' if revoked else 'active'}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from assistant import evaluation

    return evaluation.run_cli(args)


def cmd_train(args: argparse.Namespace) -> int:
    from assistant import training

    return training.run_cli(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trialmatch", description="Match patients to clinical trials, offline.")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: TRIALMATCH_DATABASE_URL or SQLite)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init-db", help="create the schema and load the bundled trials if empty")
    p.add_argument("--empty", action="store_true", help="create the schema only")
    p.set_defaults(func=cmd_init_db)

    p = sub.add_parser("db", help="schema migrations (Alembic)")
    dsub = p.add_subparsers(dest="action", required=True)
    d = dsub.add_parser("upgrade", help="upgrade the schema (default: to the latest revision)")
    d.add_argument("revision", nargs="?", default="head")
    dsub.add_parser("current", help="show the schema revision")
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("ingest", help="upsert ClinicalTrials.gov API v2 study JSON (file, folder, JSONL, zip)")
    p.add_argument("paths", nargs="+", help="files or folders")
    p.add_argument("--batch-size", type=int, default=500, help="studies per transaction")
    p.add_argument("--no-parse", action="store_true", help="skip criterion parsing (parsed lazily later)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("sync", help="fetch studies from ClinicalTrials.gov API v2 (CTGOV_API_URL) and upsert "
                       "them like ingest; resumes an interrupted sync of the same query")
    p.add_argument("--condition", help="conditions query (query.cond), e.g. 'lupus nephritis'")
    p.add_argument("--status", action="extend", type=_statuses,
                   help="overall status filter (repeatable or comma-separated), e.g. RECRUITING")
    p.add_argument("--country", help="a site in this country (query.locn AREA[LocationCountry]), e.g. 'United States'")
    p.add_argument("--since", type=_iso_date, metavar="YYYY-MM-DD",
                   help="only studies last updated on or after this date (LastUpdatePostDate)")
    p.add_argument("--page-size", type=_page_size, help="studies per page (default CTGOV_PAGE_SIZE; at most 1000)")
    p.add_argument("--max-pages", type=_positive_int, help="stop after this many pages (the next run resumes)")
    p.add_argument("--restart", action="store_true", help="ignore a saved cursor and start from the first page")
    p.add_argument("--dry-run", action="store_true", help="print how many studies would be fetched; write nothing")
    p.add_argument("--batch-size", type=int, default=500, help="studies per transaction")
    p.add_argument("--no-parse", action="store_true", help="skip criterion parsing (parsed lazily later)")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-page progress lines")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("trials", help="list trials or show one with its parsed criteria")
    tsub = p.add_subparsers(dest="action", required=True)
    tl = tsub.add_parser("list", help="list stored trials")
    tl.add_argument("--q", help="text in the title or an NCT id")
    tl.add_argument("--condition", help="text in the conditions")
    tl.add_argument("--status", action="append", help="overall status (repeatable), e.g. RECRUITING")
    tl.add_argument("--page", type=int, default=1)
    tl.add_argument("--per-page", type=int, default=20)
    ts = tsub.add_parser("show", help="show trials with their parsed criteria")
    ts.add_argument("nct_ids", nargs="+", metavar="NCT")
    p.set_defaults(func=cmd_trials)

    p = sub.add_parser("serve", help="run the HTTP service (gunicorn; Flask dev server with --debug)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--debug", action="store_true", help="Flask development server with reloader off")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("match", help="match a patient description against the stored trials")
    p.add_argument("text", help="free-text patient description")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--status", action="append", help="overall status filter (default recruiting + not yet)")
    p.add_argument("--json", action="store_true", help="print the API's JSON")
    p.set_defaults(func=cmd_match)

    p = sub.add_parser("mcp", help="serve the Model Context Protocol over stdio (tools: match_patient, get_trial, "
                       "explain_match; resource trial://{nct_id}); needs the optional extra .[mcp]")
    p.set_defaults(func=cmd_mcp)

    p = sub.add_parser("purge", help="delete expired chat sessions (their transcripts with them) and closed "
                       "referrals past REFERRAL_RETENTION_DAYS")
    p.set_defaults(func=cmd_purge)

    p = sub.add_parser("users", help="coordinator/admin API keys (stored hashed)")
    usub = p.add_subparsers(dest="action", required=True)
    u = usub.add_parser("create", help="create an API key and print it once")
    u.add_argument("name")
    u.add_argument("--role", choices=["coordinator", "admin"], default="coordinator")
    u.add_argument("--team", help="the site team whose referrals a coordinator key sees and changes "
                   "(default: DEFAULT_TEAM); admin keys see every team and take no team")
    u = usub.add_parser("revoke", help="revoke a key")
    u.add_argument("name")
    usub.add_parser("list", help="list keys (names, roles and teams only)")
    p.set_defaults(func=cmd_users)

    p = sub.add_parser("evaluate", help="benchmark evaluations (ner, criteria, eligibility, ranking)")
    esub = p.add_subparsers(dest="what", required=True)
    e = esub.add_parser("ner", help="slot extraction on a criteria-NER TSV file")
    e.add_argument("file")
    e.add_argument("--json", action="store_true")
    e = esub.add_parser("criteria", help="criterion-level verdicts vs TrialGPT expert labels")
    e.add_argument("file")
    e.add_argument("--json", action="store_true")
    e.add_argument("--errors", choices=["A"], help="print the wrongly labelled items of half A (JSON lines); "
                   "half B is for checking only and its errors are never printed")
    e = esub.add_parser("eligibility", help="trial-level triage vs TREC judgments (excluded=1 vs eligible=2)")
    e.add_argument("--studies", action="append", required=True, help="trial records (repeatable)")
    e.add_argument("--queries", required=True)
    e.add_argument("--qrels", required=True)
    e.add_argument("--json", action="store_true")
    e = esub.add_parser("ranking", help="patient-to-trial ranking vs qrels")
    e.add_argument("--studies", action="append", required=True)
    e.add_argument("--queries", required=True)
    e.add_argument("--qrels", required=True)
    e.add_argument("--pool", choices=["all", "judged"], default="all")
    e.add_argument("--no-ranker", action="store_true", help="hand-set score combination instead of the learned ranker")
    e.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("train", help="train learned components")
    tsub = p.add_subparsers(dest="what", required=True)
    t = tsub.add_parser("ranker", help="fit the ranker on qrels (GroupKFold by topic) and write it as JSON")
    t.add_argument("--set", nargs=4, action="append", required=True, metavar=("NAME", "STUDIES", "QUERIES", "QRELS"),
                   help="a training set; STUDIES may list several files separated by ','. Repeatable.")
    t.add_argument("--half", action="append", default=[], metavar="NAME=A",
                   help="use only the topics of one half of a set (e.g. sigir=A); the other half stays unseen")
    t.add_argument("--folds", type=int, default=5)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default="data/models/ranker.json")
    t.add_argument("--features-cache", help="save the collected feature rows here, or reuse them if the file exists "
                   "(to refit without re-running extraction and checks)")
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
