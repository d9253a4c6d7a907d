"""The `relayflow` command line."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from relayflow.config import Settings, get_settings
from relayflow.engine.graph import parse_definition
from relayflow.errors import NotFound, RelayflowError
from relayflow.services import auth, demo
from relayflow.services import contact as contact_service
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services import workspace as workspace_service
from relayflow.services.runtime import Runtime, base_url_of
from relayflow.storage.db import give_way, in_memory, session_scope
from relayflow.storage.repositories.run import RunFilter
from relayflow.telemetry import logs, metrics, tracing

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from relayflow.storage.models import Workspace

app = typer.Typer(help="relayflow: contact automations, run durably.", no_args_is_help=True)
workspace_app = typer.Typer(help="Workspaces.", no_args_is_help=True)
member_app = typer.Typer(help="Members who log in to a workspace.", no_args_is_help=True)
key_app = typer.Typer(help="API keys.", no_args_is_help=True)
provider_app = typer.Typer(help="Delivery providers per channel.", no_args_is_help=True)
app.add_typer(workspace_app, name="workspace")
app.add_typer(member_app, name="member")
app.add_typer(key_app, name="key")
app.add_typer(provider_app, name="provider")

console = Console()
err = Console(stderr=True)
WorkspaceOpt = Annotated[str, typer.Option("--workspace", "-w", envvar="RELAYFLOW_WORKSPACE",
                                           help="Workspace slug.")]


def _runtime() -> Runtime:
    return Runtime.from_settings(get_settings())


def _fail(exc: RelayflowError) -> None:
    err.print(f"[red]error:[/red] {exc.detail}")
    for problem in exc.extra().get("problems", []):
        err.print(f"  - node {problem['node'] or '(workflow)'}: {problem['message']}")
    raise typer.Exit(code=1)


@contextmanager
def _in_workspace(slug: str) -> Iterator[tuple[Runtime, Session, Workspace]]:
    """One transaction on the workspace `slug`; a RelayflowError inside ends the command
    with its message (exit code 1)."""
    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            yield runtime, session, workspace_service.get_by_slug(session, slug)
    except RelayflowError as exc:
        _fail(exc)


def _logging() -> None:
    """Log lines as the settings say, and traces when OTEL_EXPORTER_OTLP_ENDPOINT is set:
    for the commands that run for long (serve, worker)."""
    logs.configure(get_settings().log_format)
    tracing.configure()


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    from relayflow.storage.migrate import current, upgrade  # Alembic: not in serve or worker

    url = get_settings().database_url
    before = current(url)
    upgrade(url)
    after = current(url)
    if before is None:
        console.print(f"database created (schema {after})")
    elif before != after:
        console.print(f"database upgraded from schema {before} to {after}")
    else:
        console.print(f"database is up to date (schema {after})")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Web only, no worker.")] = False,
) -> None:
    """Serve the web UI and API, with workers beside it unless --no-worker."""
    from relayflow.web import server
    from relayflow.web.app import create_app
    from relayflow.worker.loop import Worker
    from relayflow.worker.process import WorkerProcesses, process_count

    _logging()
    settings = get_settings()
    settings = settings.model_copy(update={"host": host or settings.host,
                                           "port": port or settings.port})

    def in_this_process(runtime: Runtime) -> Worker:
        return Worker(runtime, settings)

    def beside(_runtime: Runtime) -> WorkerProcesses:
        return WorkerProcesses(process_count(settings.serve_worker_processes))

    # Workers run in processes of their own, so web and workers share every core
    # (worker/process.py), unless the database lives in this process's memory.
    worker = in_this_process if in_memory(settings.database_url) else beside
    # Before anything counts: the workers this starts write their metrics beside ours.
    shared = metrics.share_between_processes()
    try:
        server.run(create_app(settings, worker=None if no_worker else worker), settings)
    finally:
        metrics.remove_shared(shared)


@app.command()
def worker(
    wake_fd: Annotated[int | None, typer.Option(
        "--wake-fd", hidden=True,
        help="A pipe from relayflow serve: a byte is a wake, its closing a stop.")] = None,
) -> None:
    """Run a standalone worker until SIGINT or SIGTERM."""
    from relayflow.worker.loop import Worker
    from relayflow.worker.process import follow_parent

    _logging()
    give_way()  # on SQLite, a waiting request's write goes before the worker's next one
    settings = get_settings()
    instance = Worker(_runtime(), settings)

    def _stop(*_: Any) -> None:
        instance.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if wake_fd is not None:
        follow_parent(wake_fd, instance)
    instance.run_forever()


@workspace_app.command("create")
def workspace_create(
    slug: str,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
) -> None:
    """Create a workspace and print its first admin API key (shown once)."""
    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            workspace, key = workspace_service.create(session, slug=slug, name=name,
                                                      now=runtime.clock())
            slug = workspace.slug
    except RelayflowError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps({"slug": slug, "api_key": key}))  # noqa: T201
    else:
        console.print(f"workspace [bold]{slug}[/bold] created\nAPI key (shown once): {key}")


@member_app.command("add")
def member_add(
    slug: str, email: str,
    role: Annotated[str, typer.Option(help="admin, operator or viewer.")] = "operator",
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)] = "",
) -> None:
    """Add a member who can log in to the workspace."""
    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            workspace = workspace_service.get_by_slug(session, slug)
            auth.add_member(session, workspace_id=workspace.id, email=email, role=role,
                            password=password, now=runtime.clock())
    except RelayflowError as exc:
        _fail(exc)
    console.print(f"{email} added to {slug} as {role}")


@member_app.command("list")
def member_list(
    slug: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
) -> None:
    """List the workspace's members and their roles."""
    from rich.markup import escape

    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            workspace = workspace_service.get_by_slug(session, slug)
            rows = [(m.email, m.role, m.created_at.isoformat())
                    for m in auth.list_members(session, workspace_id=workspace.id)]
    except RelayflowError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps([{"email": e, "role": r, "created_at": c}  # noqa: T201
                          for e, r, c in rows]))
        return
    table = Table("email", "role", "added")
    for email, role, created in rows:
        table.add_row(escape(email), role, created)
    console.print(table)


@member_app.command("role")
def member_role(slug: str, email: str, role: str) -> None:
    """Change a member's role (admin, operator or viewer); the last admin stays one."""
    from rich.markup import escape

    from relayflow.services import member as member_service

    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            workspace = workspace_service.get_by_slug(session, slug)
            change = member_service.change_role(session, workspace_id=workspace.id,
                                                email=email, role=role, actor="cli",
                                                now=runtime.clock())
            address, revoked = change.member.email, change.revoked_keys
    except RelayflowError as exc:
        _fail(exc)
    console.print(f"{escape(address)} is now {role} in {slug}", highlight=False)
    if revoked:
        console.print(f"revoked the API keys they created above {role}: {', '.join(revoked)}")


@member_app.command("remove")
def member_remove(slug: str, email: str) -> None:
    """Remove a member: their sessions end and the API keys they created are revoked."""
    from rich.markup import escape

    from relayflow.services import member as member_service

    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            workspace = workspace_service.get_by_slug(session, slug)
            change = member_service.remove(session, workspace_id=workspace.id, email=email,
                                           actor="cli", now=runtime.clock())
            address, ended, revoked = (change.member.email, change.sessions_ended,
                                       change.revoked_keys)
    except RelayflowError as exc:
        _fail(exc)
    console.print(f"{escape(address)} removed from {slug}; {ended} session(s) ended",
                  highlight=False)
    if revoked:
        console.print(f"revoked the API keys they created: {', '.join(revoked)}")


@member_app.command("reset-password")
def member_reset_password(
    slug: str, email: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
) -> None:
    """Set a new random password (printed once) and end the member's sessions."""
    from rich.markup import escape

    from relayflow.services import member as member_service

    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            workspace = workspace_service.get_by_slug(session, slug)
            change, password = member_service.reset_password(
                session, workspace_id=workspace.id, email=email, actor="cli",
                now=runtime.clock())
            address = change.member.email
    except RelayflowError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps({"email": address, "password": password}))  # noqa: T201
        return
    console.print(f"new password for {escape(address)} (shown once):", highlight=False)
    # On a line of its own, never wrapped or styled by the console.
    print(password)  # noqa: T201


@key_app.command("create")
def key_create(
    slug: str,
    role: Annotated[str, typer.Option(help="admin, operator or viewer.")] = "admin",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
) -> None:
    """Create an API key (shown once)."""
    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            workspace = workspace_service.get_by_slug(session, slug)
            _, key = auth.create_api_key(session, workspace_id=workspace.id, role=role,
                                         created_by="cli", now=runtime.clock())
    except RelayflowError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps({"api_key": key}))  # noqa: T201
    else:
        console.print(f"API key (shown once): {key}")


@app.command()
def apply(
    file: Path,
    workspace: WorkspaceOpt,
    activate: Annotated[bool, typer.Option(help="Activate after saving.")] = True,
) -> None:
    """Create or update a workflow from a YAML or JSON file."""
    runtime = _runtime()
    try:
        definition = parse_definition(file.read_bytes(),
                                      content_type="json" if file.suffix == ".json" else "yaml")
        with session_scope(runtime.sessions) as session:
            ws = workspace_service.get_by_slug(session, workspace)
            saved = workflow_service.save(session, workspace_id=ws.id, definition=definition,
                                          now=runtime.clock())
            if activate:
                workflow_service.activate(session, workspace_id=ws.id, key=saved.workflow.key,
                                          actor="cli", now=runtime.clock())
            key, status, number = saved.workflow.key, saved.workflow.status, saved.version.number
    except RelayflowError as exc:
        _fail(exc)
    verb = "created" if saved.created else ("updated" if saved.new_version else "unchanged")
    console.print(f"workflow {key} {verb}: version {number}, {status}")


@app.command()
def trigger(
    key: str,
    contact: Annotated[str, typer.Option(help="Contact email (or phone starting with +).")],
    workspace: WorkspaceOpt,
    event: Annotated[str, typer.Option(help="Event payload as JSON.")] = "{}",
) -> None:
    """Start a run of a workflow for one contact."""
    runtime = _runtime()
    field = "phone" if contact.startswith("+") else "email"
    try:
        payload = json.loads(event)
        with session_scope(runtime.sessions) as session:
            ws = workspace_service.get_by_slug(session, workspace)
            workflow = workflow_service.get(session, workspace_id=ws.id, key=key)
            person = contact_service.resolve(session, workspace_id=ws.id,
                                             spec={field: contact}, now=runtime.clock())
            enrolled = run_service.enroll(session, workflow=workflow, contact=person,
                                          trigger_type="manual", event=payload,
                                          now=runtime.clock())
            run_id, status = enrolled.run.id, enrolled.run.status
    except json.JSONDecodeError as exc:
        err.print(f"[red]error:[/red] --event is not valid JSON: {exc}")
        raise typer.Exit(code=1) from exc
    except RelayflowError as exc:
        _fail(exc)
    console.print(f"run {run_id} {status}")


@app.command()
def runs(
    workspace: WorkspaceOpt,
    status: Annotated[str | None, typer.Option(help="Only runs with this status.")] = None,
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow key.")] = None,
    contact: Annotated[str | None, typer.Option(
        help="Only runs of the contact with this email or phone.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
) -> None:
    """List recent runs, newest first."""
    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            ws = workspace_service.get_by_slug(session, workspace)
            workflow_id = (workflow_service.get(session, workspace_id=ws.id, key=workflow).id
                           if workflow else None)
            contact_id = None
            if contact is not None:
                person = contact_service.find_by_address(
                    session, workspace_id=ws.id, address=contact,
                    phone_region=get_settings().default_phone_region)
                if person is None:
                    raise NotFound(f"no contact {contact} in workspace {workspace}")
                contact_id = person.id
            page = run_service.list_page(session, run_filter=RunFilter(
                workspace_id=ws.id, statuses=(status.upper(),) if status else (),
                workflow_id=workflow_id, contact_id=contact_id), limit=limit, cursor=None)
    except RelayflowError as exc:
        _fail(exc)
    header = ("run", "workflow", "contact", "status", "created", "node", "error")
    rows = [
        (str(row.run.id), row.workflow_key, row.contact_email or row.contact_phone or "-",
         row.run.status, row.run.created_at.strftime("%Y-%m-%d %H:%M:%S"),
         row.run.current_node or "-", (row.run.error or "").replace("\n", " ")[:80])
        for row in page.rows
    ]
    if not sys.stdout.isatty():  # piped: one tab-separated line per run, for scripts
        for line in (header, *rows):
            print("\t".join(line))  # noqa: T201
        return
    table = Table(*header)
    for values in rows:
        table.add_row(values[0][-12:], *values[1:])
    console.print(table)


@app.command()
def prune(
    older_than: Annotated[str, typer.Option(
        "--older-than", help="Age, e.g. 90d, for workspaces that set no retention.")] = "90d",
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Count what would be deleted; delete nothing.")] = False,
) -> None:
    """Delete finished runs and delivery attempts older than each workspace's retention."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from relayflow.services import retention

    give_way()  # on SQLite, the server's writes go before each of the next batches
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True,
                  disable=not console.is_terminal) as bar:
        task = bar.add_task("pruning")

        def show(so_far: retention.Pruned) -> None:
            verb = "would delete" if dry_run else "deleted"
            bar.update(task, description=f"{verb} {so_far.runs:,} runs and "
                                         f"{so_far.attempts:,} delivery attempts")

        try:
            result = retention.prune(_runtime(), older_than=older_than, dry_run=dry_run,
                                     progress=show)
        except RelayflowError as exc:
            _fail(exc)
    verb = "would delete" if dry_run else "deleted"
    for month in result.months:
        console.print(f"  {'would drop' if dry_run else 'dropped'} {month.partition}"
                      + ("" if month.rows is None else
                         f": {month.rows:,} rows in {month.seconds or 0:.1f} s"))
    for slug, (runs, attempts) in result.by_workspace.items():
        console.print(f"  {slug}: {runs:,} runs, {attempts:,} delivery attempts")
    console.print(f"{verb} {result.runs:,} runs and {result.attempts:,} delivery attempts "
                  f"(finished before {result.cutoff:%Y-%m-%d %H:%M} UTC where a workspace "
                  "sets no retention of its own)")


@workspace_app.command("retention")
def workspace_retention(
    slug: str,
    days: Annotated[int | None, typer.Option(
        help="Days of history prune keeps; 0: what prune --older-than says.")] = None,
    failed_days: Annotated[int | None, typer.Option(
        help="Days failed runs and failed or bounced deliveries are kept; 0: as --days.")
    ] = None,
) -> None:
    """Show, or set, how long the workspace keeps its history."""
    from relayflow.services import retention

    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            workspace = workspace_service.get_by_slug(session, slug)
            kept, failed = workspace.retention_days, workspace.failed_retention_days
            if days is not None or failed_days is not None:
                stored = retention.put(
                    session, workspace_id=workspace.id,
                    days=kept if days is None else (days or None),
                    failed_days=failed if failed_days is None else (failed_days or None),
                    now=runtime.clock(), actor="cli")
                kept, failed = stored.days, stored.failed_days
    except RelayflowError as exc:
        _fail(exc)
    console.print(f"{slug} keeps its history "
                  f"{f'{kept} days' if kept else 'as long as prune --older-than says'}, and "
                  f"failures {f'{failed} days' if failed else 'as long as the rest'}")


run_app = typer.Typer(help="One run: show, cancel or retry it.", no_args_is_help=True)
app.add_typer(run_app, name="run")


@run_app.command("show")
def run_show(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    workspace: WorkspaceOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """What one run did: its status, contact and every step."""
    from rich.markup import escape

    with _in_workspace(workspace) as (_, session, ws):
        shown = run_service.detail(session, workspace_id=ws.id, run_id=run_id)
        run, row = shown.row.run, shown.row
        summary: dict[str, Any] = {
            "id": str(run.id), "workflow": row.workflow_key, "status": run.status,
            "contact": row.contact_email or row.contact_phone, "trigger": run.trigger_type,
            "created_at": _when(run.created_at), "finished_at": _when(run.finished_at),
            "current_node": run.current_node, "error": run.error,
            "parent_run_id": str(run.parent_run_id) if run.parent_run_id else None,
            "retry_of": str(run.retry_of) if run.retry_of else None,
            "steps": [{"seq": s.seq, "node": s.node_id, "type": s.node_type,
                       "status": s.status, "duration_ms": s.duration_ms,
                       "branch": s.branch, "error": s.error} for s in shown.steps],
        }
    if as_json:
        print(json.dumps(summary))  # noqa: T201
        return
    for name in ("id", "workflow", "status", "contact", "trigger", "created_at",
                 "finished_at", "current_node", "error", "parent_run_id", "retry_of"):
        if summary[name] is not None:
            console.print(f"[bold]{name}[/bold]: {escape(str(summary[name]))}")
    table = Table("seq", "node", "type", "status", "ms", "branch / error")
    for step in summary["steps"]:
        table.add_row(str(step["seq"]), escape(step["node"]), step["type"], step["status"],
                      "-" if step["duration_ms"] is None else str(step["duration_ms"]),
                      escape(step["error"] or step["branch"] or ""))
    console.print(table)


def _when(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


@run_app.command("cancel")
def run_cancel(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    workspace: WorkspaceOpt,
    reason: Annotated[str, typer.Option(help="Why: kept on the run and audited.")] = "",
) -> None:
    """Cancel a run: at once when no worker holds it, else at its next step."""
    with _in_workspace(workspace) as (runtime, session, ws):
        run = run_service.cancel(session, workspace_id=ws.id, run_id=run_id, actor="cli",
                                 now=runtime.clock(),
                                 reason=reason or "canceled from the command line")
        status = run.status
    console.print(f"run {run_id} {'CANCELED' if status == 'CANCELED' else 'cancel requested'}")


@run_app.command("retry")
def run_retry(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    workspace: WorkspaceOpt,
    version: Annotated[str, typer.Option(
        help="original: the version the run used; current: the workflow's current one.")]
    = "original",
) -> None:
    """Start a new run for the same contact and payload, linked to this one."""
    with _in_workspace(workspace) as (runtime, session, ws):
        retried = run_service.retry(session, workspace_id=ws.id, run_id=run_id,
                                    actor="cli", now=runtime.clock(), version=version)
        new_id, status = retried.id, retried.status
    console.print(f"run {new_id} {status} (retry of {run_id})")


bulk_app = typer.Typer(help="Retry or cancel every run a filter matches.", no_args_is_help=True)
app.add_typer(bulk_app, name="bulk")
StatusOpt = Annotated[str | None, typer.Option(help="Run statuses, comma-separated.")]
WorkflowOpt = Annotated[str | None, typer.Option(help="A workflow key.")]
FingerprintOpt = Annotated[str | None, typer.Option(help="A cause of failure (/failures).")]
RangeOpt = Annotated[str | None, typer.Option("--range", help="24h, 7d or 30d.")]
ContactOpt = Annotated[str | None, typer.Option(help="A contact's email, phone or id.")]
ReasonOpt = Annotated[str, typer.Option(help="Kept on the operation (and canceled runs).")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Say what would happen; do nothing.")]
WaitOpt = Annotated[bool, typer.Option(
    "--wait/--no-wait", help="Follow it to the end (acting too, beside any worker).")]


@bulk_app.command("retry")
def bulk_retry(
    workspace: WorkspaceOpt, status: StatusOpt = None, workflow: WorkflowOpt = None,
    fingerprint: FingerprintOpt = None, range_: RangeOpt = None, contact: ContactOpt = None,
    version: Annotated[str, typer.Option(
        help="original: each run's own version; current: the workflow's.")] = "original",
    reason: ReasonOpt = "", dry_run: DryRunOpt = False, wait: WaitOpt = True,
) -> None:
    """Retry every finished run the filters match; runs retried successfully are skipped."""
    _bulk("retry", workspace, {"status": status, "workflow": workflow, "contact": contact,
                               "fingerprint": fingerprint, "range": range_},
          version=version, reason=reason, dry_run=dry_run, wait=wait)


@bulk_app.command("cancel")
def bulk_cancel(
    workspace: WorkspaceOpt, status: StatusOpt = None, workflow: WorkflowOpt = None,
    fingerprint: FingerprintOpt = None, range_: RangeOpt = None, contact: ContactOpt = None,
    reason: ReasonOpt = "", dry_run: DryRunOpt = False, wait: WaitOpt = True,
) -> None:
    """Cancel every pending or running run the filters match."""
    _bulk("cancel", workspace, {"status": status, "workflow": workflow, "contact": contact,
                                "fingerprint": fingerprint, "range": range_},
          version=None, reason=reason, dry_run=dry_run, wait=wait)


def _bulk(action: str, workspace: str, filter_: dict[str, str | None], *,
          version: str | None, reason: str, dry_run: bool, wait: bool) -> None:
    import getpass

    from relayflow.services import bulk

    runtime = _runtime()
    try:
        request = bulk.spec(action=action, filter={k: v for k, v in filter_.items() if v},
                            version=version, reason=reason)
        with session_scope(runtime.sessions) as session:
            ws = workspace_service.get_by_slug(session, workspace)
            if dry_run:
                seen = bulk.preview(session, workspace_id=ws.id, request=request,
                                    now=runtime.clock())
            else:
                operation = bulk.create(session, workspace_id=ws.id, request=request,
                                        actor=f"cli:{getpass.getuser()}", now=runtime.clock())
                operation_id, total = operation.id, operation.total
    except RelayflowError as exc:
        _fail(exc)
    if dry_run:
        _show_preview(action, seen)
        return
    console.print(f"bulk {action} {operation_id}: {total:,} runs")
    if wait:
        _follow(runtime, operation_id, total)


def _show_preview(action: str, seen: Any) -> None:
    verb = "retried" if action == "retry" else "canceled"
    console.print(f"{seen.count:,} runs match; {seen.acting:,} would be {verb}")
    for why, n in seen.skipped.items():
        console.print(f"  {n:,} skipped: {why}")
    if action == "retry":
        console.print(f"up to {seen.effects.messages:,} messages may be sent again and "
                      f"{seen.effects.integrations:,} integration requests made again"
                      + (" (more where a path loops)" if seen.effects.loops else ""))
    table = Table("run", "workflow", "contact", "status", "error")
    for row in seen.sample:
        table.add_row(str(row.run.id)[-12:], row.workflow_key,
                      row.contact_email or row.contact_phone or "-", row.run.status,
                      (row.run.error or "")[:60])
    if seen.sample:
        console.print(table)


def _follow(runtime: Runtime, operation_id: Any, total: int) -> None:
    """A progress bar until the operation ends. This process acts on it too, as one more
    worker would (the operation's lease keeps one at a time)."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from relayflow.services import bulk
    from relayflow.storage.models import BulkOperation

    me = f"cli:{os.getpid()}"
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task("acting", total=total)
        while True:
            acted = bulk.advance(runtime, worker=me)
            with session_scope(runtime.sessions) as session:
                found = session.get(BulkOperation, operation_id)
                assert found is not None
                status, done, skipped, failed = (found.status, found.done, found.skipped,
                                                 found.failed)
            bar.update(task, completed=done + skipped + failed,
                       description=f"{done:,} done, {skipped:,} skipped, {failed:,} failed")
            if status != "RUNNING":
                break
            if not acted:
                time.sleep(0.2)
    console.print(f"{status}: {done:,} done, {skipped:,} skipped, {failed:,} failed")


@app.command("demo")
def demo_command(
    quiet: Annotated[bool, typer.Option(help="Only print the key lines.")] = False,
) -> None:
    """Create the demo workspace on first use; print a fresh demo API key."""
    runtime = _runtime()
    result = demo.ensure(runtime)
    if result.created and not quiet:
        console.print(f"demo workspace created with {result.runs} runs")
    settings: Settings = get_settings()
    if settings.host in ("0.0.0.0", "::"):  # nosec B104: only to print a reachable address
        settings = settings.model_copy(update={"host": "127.0.0.1"})
    base = base_url_of(settings)
    lines = [f"Demo workspace 'demo' at {base}",
             f"  open {base}/runs and sign in as"]
    lines += [f"    {email} / {result.password}   ({role})" for email, role in result.logins]
    lines += [f"  API key {result.api_key}",
              f"  try: curl -H 'Authorization: Bearer {result.api_key}' {base}/api/v1/runs",
              "  CLI:  export RELAYFLOW_WORKSPACE=demo; .venv/bin/relayflow runs"]
    print("\n".join(lines))  # noqa: T201


@provider_app.command("set")
def provider_set(
    channel: str,
    config: Annotated[str, typer.Option("--json", help="The configuration as JSON.")],
    workspace: WorkspaceOpt,
) -> None:
    """Set a channel's provider (email or sms); secrets are referenced by name."""
    from relayflow.services import provider as provider_service

    runtime = _runtime()
    try:
        data = json.loads(config)
        with session_scope(runtime.sessions) as session:
            ws = workspace_service.get_by_slug(session, workspace)
            stored = provider_service.put(session, workspace_id=ws.id, channel=channel,
                                          data=data, now=runtime.clock(), actor="cli",
                                          network_allow=runtime.network_allow)
    except json.JSONDecodeError as exc:
        err.print(f"[red]error:[/red] --json is not valid JSON: {exc}")
        raise typer.Exit(code=1) from exc
    except RelayflowError as exc:
        _fail_provider(exc)
    print(json.dumps(stored))  # noqa: T201


@provider_app.command("show")
def provider_show(channel: str, workspace: WorkspaceOpt) -> None:
    """Print a channel's provider configuration as JSON (secret names, never values)."""
    from relayflow.services import provider as provider_service

    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            ws = workspace_service.get_by_slug(session, workspace)
            shown = provider_service.show(session, workspace_id=ws.id, channel=channel)
    except RelayflowError as exc:
        _fail(exc)
    print(json.dumps(shown))  # noqa: T201


contact_app = typer.Typer(help="Contacts.", no_args_is_help=True)
app.add_typer(contact_app, name="contact")


@contact_app.command("erase")
def contact_erase(
    contact_id: Annotated[str, typer.Argument(help="The contact's id.")],
    reason: Annotated[str, typer.Option(help="Why: kept in the audit trail.")],
    workspace: WorkspaceOpt,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask to confirm.")] = False,
) -> None:
    """Erase a contact's personal data from every table (statuses and counts stay; the
    contact stays as a tombstone). It cannot be undone."""
    from relayflow.services import erase as erase_service

    if not yes and not typer.confirm(f"Erase contact {contact_id}? It cannot be undone."):
        raise typer.Exit(code=1)
    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            ws = workspace_service.get_by_slug(session, workspace)
            erased = erase_service.erase(session, workspace_id=ws.id, contact_id=contact_id,
                                         reason=reason, actor="cli", now=runtime.clock())
    except RelayflowError as exc:
        _fail(exc)
    console.print(f"contact {erased.contact_id} erased: {erased.runs} runs and "
                  f"{erased.attempts} messages scrubbed")


def _fail_provider(exc: RelayflowError) -> None:
    # Provider problems are plain strings, not workflow nodes as _fail expects.
    err.print(f"[red]error:[/red] {exc.detail}")
    for problem in exc.extra().get("problems", []):
        err.print(f"  - {problem}")
    raise typer.Exit(code=1)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
