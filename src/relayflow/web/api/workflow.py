from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response, status

from relayflow.engine.graph import parse_definition
from relayflow.errors import InvalidGraph, InvalidInput, MalformedInput, Problem
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.web.api.responses import errors
from relayflow.web.api.schemas import (
    MAX_JSON_DEPTH,
    RunCreate,
    RunEnqueued,
    Text,
    WorkflowList,
    WorkflowRead,
    clean_json,
    text_fault,
)
from relayflow.web.api.workflow_schemas import (
    WorkflowActivated,
    WorkflowDeactivation,
    WorkflowDetailRead,
    WorkflowSavedRead,
)
from relayflow.web.deps import (
    PrincipalDep,
    RuntimeDep,
    SessionDep,
    SettingsDep,
    WriterDep,
    wake_worker_after_commit,
)

router = APIRouter(prefix="/workflows", tags=["workflows"])

Key = Annotated[Text, Path(description="The workflow's key.")]


def _dates_as_text(value: Any) -> Any:
    """YAML reads `at: 2024-06-01T09:00:00Z` as a datetime; a definition is stored as JSON,
    so such values are kept as the ISO 8601 text they were written as."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _dates_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dates_as_text(v) for v in value]
    return value


def _shown(text: str, limit: int = 60) -> str:
    """Text that can go back in a JSON answer: lone surrogates escaped, cut short."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else f"{text[:limit]}..."


def _problem(path: tuple[str | int, ...], fault: str) -> Problem:
    """Name the node when the value lies inside one, and where in it."""
    in_node = len(path) >= 2 and path[0] == "nodes"
    node = _shown(str(path[1]), 200) if in_node else None
    inner = path[2:] if in_node else path
    where = ".".join(_shown(str(p)) for p in inner[:8]) + (".…" if len(inner) > 8 else "")
    return Problem(node, f"{where}: {fault}" if where else fault)


def _value_problems(definition: dict[str, Any]) -> list[Problem]:
    """Text both databases can store, finite numbers and nesting as deep as any JSON value
    the API takes, checked without recursion (no value, however deep, exhausts the stack)
    and each problem named with its node, so that one answer lists them all."""
    problems: list[Problem] = []
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(definition, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict | list) and len(path) >= MAX_JSON_DEPTH:
            problems.append(_problem(path, f"nested deeper than {MAX_JSON_DEPTH} levels"))
            continue
        if isinstance(value, dict):
            for key, item in value.items():
                fault = text_fault(key) if isinstance(key, str) else None
                if fault is not None:
                    label = "the node id" if path == ("nodes",) else "the name"
                    problems.append(_problem((*path, key), f"{label} {fault}"))
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, i)) for i, item in enumerate(value))
        elif isinstance(value, str):
            fault = text_fault(value)
            if fault is not None:
                problems.append(_problem(path, fault))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(_problem(path, "must not be NaN or infinite"))
    return problems


async def _definition(request: Request) -> dict[str, Any]:
    try:
        definition = parse_definition(
            await request.body(), content_type=request.headers.get("content-type", "").lower()
        )
    except RecursionError as exc:  # raised while checking that it is plain JSON
        raise MalformedInput("The definition nests too deeply to be read.") from exc
    except ValueError as exc:  # Python refuses integers of more than 4,300 digits
        raise MalformedInput("The definition holds a number too long to be read.") from exc
    problems = _value_problems(definition)
    if problems:
        raise InvalidGraph(problems)
    try:
        return dict(clean_json(_dates_as_text(definition)))
    except ValueError as exc:
        raise InvalidInput(f"The workflow definition is not valid: a value {exc}.") from exc


_EXAMPLE: dict[str, Any] = {
    "key": "welcome",
    "name": "Welcome email",
    "trigger": {"type": "manual"},
    "start": "check_plan",
    "nodes": {
        "check_plan": {"type": "CONDITION", "when": "contact.plan | default('free') == 'pro'",
                       "then": "tag_pro", "else": "welcome"},
        "tag_pro": {"type": "UPDATE_CONTACT", "set": {"segment": "pro"}, "next": "welcome"},
        "welcome": {"type": "SEND_MESSAGE", "channel": "email",
                    "subject": "Welcome, {{ contact.first_name | default('there') }}",
                    "body": "Glad to have you on board.", "next": "done"},
        "done": {"type": "END"},
    },
}
_EXAMPLE_YAML = """\
key: welcome
name: Welcome email
trigger: {type: manual}
start: check_plan
nodes:
  check_plan:
    type: CONDITION
    when: "contact.plan | default('free') == 'pro'"
    then: tag_pro
    else: welcome
  tag_pro: {type: UPDATE_CONTACT, set: {segment: pro}, next: welcome}
  welcome:
    type: SEND_MESSAGE
    channel: email
    subject: "Welcome, {{ contact.first_name | default('there') }}"
    body: Glad to have you on board.
    next: done
  done: {type: END}
"""
_DEFINITION_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A workflow definition (key, name, trigger, start, nodes) as JSON, "
                       "or as YAML when the Content-Type mentions yaml. The language is "
                       "described in docs/workflows.md; its JSON Schema is served at "
                       "/api/v1/schema/workflow.json.",
        "content": {
            "application/json": {"schema": {"type": "object"},
                                 "examples": {"welcome": {"value": _EXAMPLE}}},
            "application/yaml": {"schema": {"type": "string"},
                                 "examples": {"welcome": {"value": _EXAMPLE_YAML}}},
        },
    }
}


@router.post(
    "",
    name="workflows:save",
    summary="Create or update a workflow from its definition",
    description="`warnings` says what is allowed but worth knowing, e.g. that the workflow "
                "can start itself through TRIGGER_WORKFLOW nodes.",
    response_model=WorkflowSavedRead,
    status_code=status.HTTP_200_OK,
    responses={201: {"model": WorkflowSavedRead, "description": "Created"},
               **errors(400, 401, 403, 413, 422)},
    openapi_extra=_DEFINITION_BODY,
)
def save_workflow(
    principal: WriterDep,
    definition: Annotated[dict[str, Any], Depends(_definition)],
    response: Response,
    session: SessionDep,
    runtime: RuntimeDep,
) -> WorkflowSavedRead:
    saved = workflow_service.save(
        session, workspace_id=principal.workspace_id, definition=definition, now=runtime.clock()
    )
    if saved.created:
        response.status_code = status.HTTP_201_CREATED
    read = WorkflowRead.build(saved.workflow, saved.version, base_url=runtime.base_url)
    return WorkflowSavedRead(**read.model_dump(), new_version=saved.new_version,
                             warnings=list(saved.warnings))


@router.get("", name="workflows:list", summary="List workflows", response_model=WorkflowList,
            responses=errors(401))
def list_workflows(
    session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep
) -> WorkflowList:
    pairs = workflow_service.list_current(session, workspace_id=principal.workspace_id)
    return WorkflowList(
        items=[WorkflowRead.build(w, v, base_url=runtime.base_url) for w, v in pairs]
    )


@router.get(
    "/{key}",
    name="workflows:detail",
    summary="Get a workflow with its versions",
    description="`canceling` shows a deactivation's background cancel while it lasts.",
    response_model=WorkflowDetailRead,
    responses=errors(401, 404, 422),
)
def get_workflow(
    key: Key, session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep
) -> WorkflowDetailRead:
    detail = workflow_service.detail(session, workspace_id=principal.workspace_id, key=key)
    return WorkflowDetailRead.from_service(detail, base_url=runtime.base_url, now=runtime.clock())


@router.post(
    "/{key}/activate",
    name="workflows:activate",
    summary="Activate a workflow",
    description="Validates the current version again first (422 lists every problem); "
                "`warnings` as when saving.",
    response_model=WorkflowActivated,
    responses=errors(401, 403, 404, 409, 422),
)
def activate_workflow(
    key: Key, session: SessionDep, runtime: RuntimeDep, principal: WriterDep
) -> WorkflowActivated:
    workflow = workflow_service.activate(
        session, workspace_id=principal.workspace_id, key=key, actor=principal.actor,
        now=runtime.clock(),
    )
    version = workflow_service.current_version(session, workflow)
    read = WorkflowRead.build(workflow, version, base_url=runtime.base_url)
    return WorkflowActivated(**read.model_dump(),
                             warnings=list(workflow_service.warnings(session, workflow=workflow)))


@router.post(
    "/{key}/deactivate",
    name="workflows:deactivate",
    summary="Deactivate a workflow and cancel its in-flight runs",
    description="Answers at once: the first batch of in-flight runs is canceled before the "
                "answer, the rest by the workers in the background (GET the workflow to "
                "follow `canceling`). A run started after the workflow is activated again is "
                "not canceled.",
    response_model=WorkflowDeactivation,
    responses=errors(401, 403, 404, 409, 422),
)
def deactivate_workflow(
    key: Key, session: SessionDep, runtime: RuntimeDep, principal: WriterDep
) -> WorkflowDeactivation:
    workflow, canceled = workflow_service.deactivate(
        session, workspace_id=principal.workspace_id, key=key, actor=principal.actor,
        now=runtime.clock(), batch_size=runtime.cancel_batch_size,
    )
    version = workflow_service.current_version(session, workflow)
    read = WorkflowRead.build(workflow, version, base_url=runtime.base_url)
    return WorkflowDeactivation.of(read, workflow, canceled)


@router.post(
    "/{key}/runs",
    name="workflows:trigger",
    summary="Start a run by hand",
    description="Finds or creates the contact, then queues a run; the same "
                "`idempotency_key` on this workflow answers with the first run (duplicate: true).",
    response_model=RunEnqueued,
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(400, 401, 403, 404, 409, 413, 422),
)
def trigger_run(
    key: Key, principal: WriterDep, body: RunCreate, session: SessionDep, runtime: RuntimeDep,
    settings: SettingsDep,
) -> RunEnqueued:
    contact = body.contact.model_dump(exclude_none=True) if body.contact else None
    enrolled = run_service.trigger_manual(
        session, workspace_id=principal.workspace_id, workflow_key=key, contact=contact,
        event=body.event, idempotency_key=body.idempotency_key, now=runtime.clock(),
        phone_region=settings.default_phone_region,
    )
    if not enrolled.duplicate:
        wake_worker_after_commit(session)
    return RunEnqueued(id=enrolled.run.id, status=enrolled.run.status,
                       duplicate=enrolled.duplicate)
