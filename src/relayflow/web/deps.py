"""Request dependencies as Annotated aliases: the session, the runtime and the caller."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from relayflow.config import Settings
from relayflow.errors import Forbidden, InvalidInput, Unauthorized
from relayflow.services import auth as auth_service
from relayflow.services.auth import Principal
from relayflow.services.runtime import Runtime
from relayflow.storage.db import is_unavailable, read_scope, session_scope
from relayflow.storage.dialect import replica_lag

logger = logging.getLogger(__name__)

_WAKE_WORKER = "relayflow.wake_worker"
_bearer = HTTPBearer(auto_error=False, description="A workspace API key: `Bearer rf_….…`")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def get_session(request: Request, runtime: RuntimeDep) -> Iterator[Session]:
    if request.method in ("GET", "HEAD"):  # reads only: on SQLite no write lock is taken
        with read_scope(runtime.sessions) as session:
            yield session
        return
    with session_scope(runtime.sessions) as session:
        yield session
    # Only after the commit: a worker woken earlier would not see the new run yet.
    worker = request.app.state.worker
    if worker is not None and session.info.get(_WAKE_WORKER):
        worker.wake()


# scope="function": commit before the response is sent, so a failed commit is answered
# with an error instead of a success for data that was never written.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_history_session(request: Request, response: Response,
                        runtime: RuntimeDep) -> Iterator[Session]:
    """A read transaction for the history lists, counts, charts and exports: on the read
    replica when RELAYFLOW_READ_DATABASE_URL names one, else on the primary. What must be
    current (a run's detail, anything after an action) keeps to SessionDep and the primary.

    How far behind the replica is goes into `request.state.replica_lag` (the pages say so
    past templating.REPLICA_NOTICE_SECONDS) and the `Replica-Lag` header. A replica that
    cannot be reached is not an outage: the primary answers, and the header says
    `unavailable`. `request.state.history_sessions` is whichever was used."""
    request.state.replica_lag = None
    request.state.history_sessions = runtime.sessions
    if runtime.replica is not None:
        with ExitStack() as replica:
            try:
                session = replica.enter_context(read_scope(runtime.replica))
                lag = replica_lag(session)
            except DBAPIError as exc:
                if not is_unavailable(exc):
                    raise
                replica.close()
                logger.warning("the read replica cannot be reached (%s); reading the primary",
                               type(exc.orig).__name__)
                response.headers["Replica-Lag"] = "unavailable"
            else:
                request.state.replica_lag = lag
                request.state.history_sessions = runtime.replica
                response.headers["Replica-Lag"] = f"{lag or 0:.1f}"
                yield session
                return
    with read_scope(runtime.sessions) as session:
        yield session


HistorySessionDep = Annotated[Session, Depends(get_history_session, scope="function")]


def wake_worker_after_commit(session: Session) -> None:
    """Ask serve's worker (if any) to poll as soon as this request's work is committed."""
    session.info[_WAKE_WORKER] = True


def _refuse_nul(request: Request) -> None:
    """PostgreSQL cannot store or even compare text with NUL characters, so a path or query
    value holding one is refused up front, alike on both databases, for every route."""
    query = request.query_params.multi_items()
    if "\x00" in request.url.path or any("\x00" in k + v for k, v in query):
        raise InvalidInput("The request's path or query holds a NUL (\\u0000) character.")


def get_principal(
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    _refuse_nul(request)
    if credentials is None or not credentials.credentials.strip():
        raise Unauthorized("An API key is required: send `Authorization: Bearer <key>`.")
    # Its own short transaction, committed before the request's work begins (and before the
    # request's session takes a connection): a refused request must stay counted, which the
    # request transaction's rollback would undo, and must leave nothing else behind.
    with session_scope(runtime.sessions) as session:
        principal, admission = auth_service.admit_key(
            session, token=credentials.credentials.strip(), now=runtime.clock(),
            per_minute=settings.rate_limit_api_per_minute,
        )
    admission.check("This API key")
    response.headers.update(admission.headers())
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_writer(principal: PrincipalDep) -> Principal:
    if not principal.can_write:
        raise Forbidden(f"The {principal.role} role can read but not change anything.")
    return principal


WriterDep = Annotated[Principal, Depends(get_writer)]


def get_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise Forbidden(f"Only the admin role may do this; this key's role is {principal.role}.")
    return principal


AdminDep = Annotated[Principal, Depends(get_admin)]
