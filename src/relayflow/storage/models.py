"""Tables for every entity of the domain. Every row carries workspace_id."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    and_,
    false,
    literal_column,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from relayflow.engine.status import RunStatus
from relayflow.storage.ids import new_id
from relayflow.storage.types import JSONType, UTCDateTime

# The status most runs end in: the status index leaves it out (WorkflowRun.status_in).
COMMON_STATUS = RunStatus.COMPLETED
_NOT_COMMON = f"status <> '{COMMON_STATUS}'"
_HAS_FINGERPRINT = "fingerprint IS NOT NULL"
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType, uuid.UUID: Uuid()}


# SQLite: the table's primary key is its own order, not an index beside a rowid (the runs,
# their steps and the rollups, where a second copy of every key was most of an index).
_NO_ROWID = {"sqlite_with_rowid": False}


def _id() -> Mapped[uuid.UUID]:
    return mapped_column(Uuid(), primary_key=True, default=new_id)


def _workspace() -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=False)


class Workspace(Base):
    __tablename__ = "workspaces"
    id: Mapped[uuid.UUID] = _id()
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    # Days of history `relayflow prune` keeps (None: what the command is given), and days
    # it keeps failed runs and failed or bounced deliveries (None: the same).
    retention_days: Mapped[int | None]
    failed_retention_days: Mapped[int | None]


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("workspace_id", "email"),)
    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace()
    email: Mapped[str] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace()
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    hash: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16), default="admin")
    created_by: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("workspace_id", "email"),
        UniqueConstraint("workspace_id", "phone"),
        UniqueConstraint("workspace_id", "external_id"),
    )
    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace()
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    external_id: Mapped[str | None] = mapped_column(String(200))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # channel -> reason ("unsubscribed", "bounced", "complained"); filled by delivery
    suppressed: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Set when the contact was erased (services/erase.py): the row stays as a tombstone.
    erased_at: Mapped[datetime | None]


class Workflow(Base):
    __tablename__ = "workflows"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)
    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace()
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="DRAFT")
    trigger_type: Mapped[str] = mapped_column(String(16), default="manual")
    current_version_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    webhook_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # When the workflow last became ACTIVE: a schedule never fires a tick from before it.
    activated_at: Mapped[datetime | None]
    # The newest schedule tick fully enrolled (or skipped), so it is not rescanned every poll.
    # Only an optimisation: the runs' idempotency keys are what keep a tick from doubling.
    schedule_last_tick: Mapped[datetime | None]
    # Deactivation cancels in the background: the runs created before `cancel_before` that
    # are still in flight are canceled in batches by the workers, then it is cleared.
    # `cancel_total` is how many there were, for "canceling N of M".
    cancel_before: Mapped[datetime | None]
    cancel_total: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Who last deactivated it: the reason its background cancel gives each run it stops.
    deactivated_by: Mapped[str | None] = mapped_column(String(320))


class WorkflowVersion(Base):
    __tablename__ = "workflow_versions"
    __table_args__ = (UniqueConstraint("workflow_id", "number"),)
    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace()
    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(BigInteger)
    definition: Mapped[dict[str, Any]]
    definition_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class WorkflowRun(Base):
    """On PostgreSQL partitioned by month of id (storage/partitions.py); so are steps (by
    their run's id) and delivery attempts. A unique constraint there must hold the id, so
    the uniqueness of idempotency keys lives in run_keys."""

    __tablename__ = "workflow_runs"
    __table_args__ = (
        Index("ix_runs_ws_created", "workspace_id", "created_at", "id"),
        # COMPLETED runs, most of any history, are left out (see status_in).
        Index("ix_runs_ws_status_created", "workspace_id", "status", "created_at", "id",
              sqlite_where=text(_NOT_COMMON), postgresql_where=text(_NOT_COMMON)),
        Index("ix_runs_ws_workflow_created", "workspace_id", "workflow_id", "created_at", "id"),
        Index("ix_runs_ws_contact_created", "workspace_id", "contact_id", "created_at", "id"),
        # Failed runs by cause (/failures, ?fingerprint=); every other run has none.
        Index("ix_runs_ws_fingerprint_created", "workspace_id", "fingerprint", "created_at",
              "id", sqlite_where=text(_HAS_FINGERPRINT),
              postgresql_where=text(_HAS_FINGERPRINT)),
        # A run's retries (its page, /failures' unresolved counts, bulk retry's skips); most
        # runs are none.
        Index("ix_runs_retry_of", "retry_of", sqlite_where=text("retry_of IS NOT NULL"),
              postgresql_where=text("retry_of IS NOT NULL")),
        # The runs TRIGGER_WORKFLOW steps started (a run's family and children); most have
        # no parent.
        Index("ix_runs_parent_run_id", "parent_run_id",
              sqlite_where=text("parent_run_id IS NOT NULL"),
              postgresql_where=text("parent_run_id IS NOT NULL")),
        _NO_ROWID,
    )
    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace()
    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow_versions.id"))
    contact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("contacts.id"))
    trigger_type: Mapped[str] = mapped_column(String(16))
    trigger_payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    duplicates_ignored: Mapped[int] = mapped_column(BigInteger, default=0)
    parent_run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    retry_of: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    # Hops of upstream triggers above this run (0: started by a manual, webhook, schedule
    # trigger or a retry); capped by Runtime.max_trigger_depth.
    trigger_depth: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    status: Mapped[str] = mapped_column(String(16), default="PENDING")
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    current_node: Mapped[str | None] = mapped_column(String(64))
    wake_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    # A FAILED run's cause (engine.fingerprint; described once in failure_groups).
    fingerprint: Mapped[str | None] = mapped_column(String(16))
    # Who asked for the cancel ("member:<email>", "api-key:<prefix>", "deactivation",
    # "bulk:<operation id>") and why; set when it is asked for, so a run its worker has
    # still to stop shows them too.
    canceled_by: Mapped[str | None] = mapped_column(String(320))
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    # What its INTEGRATION steps captured, by capture name (the last value of each): kept
    # on the run, beside its trigger payload, so that one index searches both
    # (storage/search.py).
    captured: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # SQLite: the run's row in run_search, its full-text index (set by a trigger of
    # migration 0024). NULL on PostgreSQL, where an expression index on the run serves.
    search_doc: Mapped[int | None] = mapped_column(BigInteger)

    @classmethod
    def status_in(cls, statuses: Collection[str]) -> ColumnElement[bool]:
        """Runs in one of `statuses`. The status index holds no COMPLETED run (9 in 10 of
        a history, about 120 bytes each): completed runs are listed through the time
        index, where nearly every entry is one. SQLite uses a partial index only for a
        query that repeats its condition word for word, so the condition is added."""
        condition = cls.status.in_(list(statuses))
        if COMMON_STATUS in statuses:
            return condition
        return and_(condition, cls.status != literal_column(f"'{COMMON_STATUS}'"))


class RunKey(Base):
    """The run opened under each (workflow, idempotency key): what makes a key open one run
    only, whatever the database (a partitioned table can hold no unique key but its
    partitions'). Goes with its run."""

    __tablename__ = "run_keys"
    workflow_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workflow_runs.id", ondelete="CASCADE"), index=True)


class RunStep(Base):
    """Keyed by (run_id, seq), how every query finds a step; the id is unique but has no
    index (no query finds a step by its id alone). On SQLite the table has no rowid: the
    key is the table's own order, so the steps of a run lie together and no second index
    repeats them. On PostgreSQL a partitioned table's key must hold the column it is split
    by, run_id (storage/partitions.py)."""

    __tablename__ = "run_steps"
    __table_args__ = (PrimaryKeyConstraint("run_id", "seq"), _NO_ROWID)
    id: Mapped[uuid.UUID] = mapped_column(Uuid(), default=new_id)
    workspace_id: Mapped[uuid.UUID] = _workspace()
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    node_id: Mapped[str] = mapped_column(String(64))
    node_type: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # BIGINT (migration 0008): a WAIT may last a year, 3.2e10 ms; INTEGER stops at 24.8 days.
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    branch: Mapped[str | None] = mapped_column(String(64))
    output: Mapped[dict[str, Any]] = mapped_column(default=dict)
    request: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    delivery_attempt_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    error: Mapped[str | None] = mapped_column(Text)


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"
    __table_args__ = (
        Index("ix_deliveries_ws_created", "workspace_id", "created_at", "id"),
        Index("ix_deliveries_ws_status_created", "workspace_id", "status", "created_at", "id"),
        Index("ix_deliveries_ws_contact_created", "workspace_id", "contact_id", "created_at",
              "id"),
        Index("ix_deliveries_ws_workflow_created", "workspace_id", "workflow_id", "created_at",
              "id"),
        # An attempt's chain of retries and resends (delivery_ops.chain); most have none.
        Index("ix_deliveries_retry_of", "retry_of",
              sqlite_where=text("retry_of IS NOT NULL"),
              postgresql_where=text("retry_of IS NOT NULL")),
        Index("ix_deliveries_resend_of", "resend_of",
              sqlite_where=text("resend_of IS NOT NULL"),
              postgresql_where=text("resend_of IS NOT NULL")),
        Index("ix_deliveries_ws_fingerprint_created", "workspace_id", "fingerprint",
              "created_at", "id", sqlite_where=text(_HAS_FINGERPRINT),
              postgresql_where=text(_HAS_FINGERPRINT)),
    )
    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace()
    run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid(), index=True)
    step_seq: Mapped[int | None] = mapped_column(BigInteger)
    workflow_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    contact_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    channel: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="QUEUED")
    attempt_number: Mapped[int] = mapped_column(Integer, default=1)
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    provider_response: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    suppressed_by: Mapped[str | None] = mapped_column(String(32))
    resend_of: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    # The attempt this one retries after a transient failure (the chain of retries).
    retry_of: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    actor: Mapped[str | None] = mapped_column(String(320))
    reason: Mapped[str | None] = mapped_column(Text)
    # A manual resend that an operator sent despite the contact's suppression.
    suppression_override: Mapped[bool] = mapped_column(Boolean, default=False,
                                                       server_default=false())
    html: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    # Set (and committed) just before the provider is called: an attempt still QUEUED with
    # this set was interrupted mid-send, and recovery must reconcile rather than resend.
    send_started_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    # A FAILED or BOUNCED attempt's cause (engine.fingerprint).
    fingerprint: Mapped[str | None] = mapped_column(String(16))


class FailureGroup(Base):
    """One cause of failure, described once: the first run or attempt to fail of it writes
    this row (later ones find it there); counts, first and last seen are read from the
    runs and attempts that carry its fingerprint (by hour through RunFailureCount and
    DeliveryFailureCount), so they follow retention."""

    __tablename__ = "failure_groups"
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(16), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # run | delivery
    workflow_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    node_id: Mapped[str | None] = mapped_column(String(64))
    node_type: Mapped[str | None] = mapped_column(String(32))
    error_class: Mapped[str] = mapped_column(String(64))
    pattern: Mapped[str] = mapped_column(Text)
    sample_error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class Provider(Base):
    """The delivery provider of one channel in one workspace (secrets by name only)."""

    __tablename__ = "providers"
    __table_args__ = (UniqueConstraint("workspace_id", "channel"),)
    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace()
    channel: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Secret(Base):
    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace()
    name: Mapped[str] = mapped_column(String(128))
    ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_ws_at", "workspace_id", "at"),
                      Index("ix_audit_ws_target_at", "workspace_id", "target_type", "target_id",
                            "at"))
    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace()
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime]


class TriggerEvent(Base):
    """A trigger that opened no run of its own: refused (a webhook's signature, a replayed
    signed request, its rate limit, an invalid payload, a workflow that is not ACTIVE) or a
    duplicate of one that did (its idempotency key). Written where the decision is made
    (services/trigger_events.py) for "why not?" and the contact's timeline; the request's
    payload is never kept, only the contact it named, when it names a known one."""

    __tablename__ = "trigger_events"
    __table_args__ = (
        Index("ix_trigger_events_ws_contact_at", "workspace_id", "contact_id", "at",
              sqlite_where=text("contact_id IS NOT NULL"),
              postgresql_where=text("contact_id IS NOT NULL")),
        Index("ix_trigger_events_ws_at", "workspace_id", "at"),
    )
    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace()
    workflow_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    contact_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    source: Mapped[str] = mapped_column(String(16))  # the trigger's type: webhook, …
    code: Mapped[str] = mapped_column(String(32))  # a reason code (docs/runs.md)
    cause: Mapped[str | None] = mapped_column(String(32))  # of a refusal: signature, …
    run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())  # the run a duplicate repeated
    at: Mapped[datetime]


class ScheduleTick(Base):
    """One tick of a schedule, fired: its audience as it stood and what came of it. A
    contact that was in the workspace when the tick fired and has no run of it (its
    idempotency key: services/schedule.idempotency_key) was not in the audience, so one
    row a tick answers "why not?" for every contact, however large the audience."""

    __tablename__ = "schedule_ticks"
    __table_args__ = (Index("ix_schedule_ticks_ws_workflow_tick", "workspace_id",
                            "workflow_id", "tick"),)
    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace()
    workflow_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    tick: Mapped[datetime]  # the instant the schedule named
    fired_at: Mapped[datetime]  # when its scan began: every contact there by then counted
    audience: Mapped[str | None] = mapped_column(Text)  # the expression; None: everyone
    opened: Mapped[int]  # runs opened
    existing: Mapped[int]  # audience contacts whose run of the tick was open already
    outside: Mapped[int]  # contacts the audience did not select (errors included)
    audience_errors: Mapped[int]  # contacts for whom the expression raised


class Job(Base):
    """Work for the worker: one row per unfinished run, claimed under a fenced lease."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_due", "due_at"),)
    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workflow_runs.id", ondelete="CASCADE"), primary_key=True
    )
    workspace_id: Mapped[uuid.UUID] = _workspace()
    due_at: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    # Incremented on every claim; a write carrying an older token is refused (fencing).
    # BIGINT, like every counter with no product bound (see migration 0008).
    lease_token: Mapped[int] = mapped_column(BigInteger, default=0)
    claims: Mapped[int] = mapped_column(BigInteger, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # The W3C traceparent of the span that opened the run (a webhook request's, a parent
    # run's step), so each walk of the run joins that trace (telemetry/tracing.py). On the
    # job, not the run: it is needed only until the run ends, and a history keeps nothing
    # of it. NULL when tracing is off.
    traceparent: Mapped[str | None] = mapped_column(String(55))


class RunCount(Base):
    """Runs of one workflow created in one hour (epoch seconds of its start, UTC) that are
    now in one status: the rollup chip counts and the volume chart read instead of the
    runs. Kept exact by the database itself: triggers on workflow_runs append every
    insert, status change and delete to run_count_changes in the same transaction, and
    the worker folds those into this table and run_totals (storage/repositories/
    run_counts.py); a reader adds what is not folded yet."""

    __tablename__ = "run_counts"
    __table_args__ = _NO_ROWID
    workspace_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    workflow_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    runs: Mapped[int] = mapped_column(BigInteger)


class RunTotal(Base):
    """RunCount over every workflow of the workspace: what an unfiltered page reads (a
    year of it is about 9,000 hours times the statuses, whatever the number of runs)."""

    __tablename__ = "run_totals"
    __table_args__ = _NO_ROWID
    workspace_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    runs: Mapped[int] = mapped_column(BigInteger)


class RunCountChange(Base):
    """One run entering a status (new_status), leaving one (old_status), or both, written
    by the triggers of workflow_runs and folded away by the worker. Never read by id: a
    reader scans what is here, which is what the last fold left behind."""

    __tablename__ = "run_count_changes"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    workflow_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    hour: Mapped[int] = mapped_column(BigInteger)
    old_status: Mapped[str | None] = mapped_column(String(16))
    new_status: Mapped[str | None] = mapped_column(String(16))
    # The run's fingerprint before and after (a FAILED run's cause): folded into
    # run_failure_counts.
    old_fingerprint: Mapped[str | None] = mapped_column(String(16))
    new_fingerprint: Mapped[str | None] = mapped_column(String(16))


class RunFailureCount(Base):
    """FAILED runs of one cause (fingerprint) created in one hour: what /failures counts
    instead of the runs, kept exact like RunCount (the same triggers and fold)."""

    __tablename__ = "run_failure_counts"
    __table_args__ = _NO_ROWID
    workspace_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(16), primary_key=True)
    failures: Mapped[int] = mapped_column(BigInteger)


class DeliveryCount(Base):
    """Delivery attempts of one workflow (NO_WORKFLOW for a test send) on one channel,
    created in one hour, now in one status: the rollup of delivery ops, kept like
    RunCount (storage/repositories/rollup.py)."""

    __tablename__ = "delivery_counts"
    __table_args__ = _NO_ROWID
    workspace_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    workflow_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    attempts: Mapped[int] = mapped_column(BigInteger)


class DeliveryTotal(Base):
    """DeliveryCount over every workflow of the workspace."""

    __tablename__ = "delivery_totals"
    __table_args__ = _NO_ROWID
    workspace_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    attempts: Mapped[int] = mapped_column(BigInteger)


class DeliveryCountChange(Base):
    """Like RunCountChange, for delivery attempts."""

    __tablename__ = "delivery_count_changes"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    workflow_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    channel: Mapped[str] = mapped_column(String(16))
    hour: Mapped[int] = mapped_column(BigInteger)
    old_status: Mapped[str | None] = mapped_column(String(16))
    new_status: Mapped[str | None] = mapped_column(String(16))
    old_fingerprint: Mapped[str | None] = mapped_column(String(16))
    new_fingerprint: Mapped[str | None] = mapped_column(String(16))


class DeliveryFailureCount(Base):
    """Like RunFailureCount, for failed and bounced delivery attempts."""

    __tablename__ = "delivery_failure_counts"
    __table_args__ = _NO_ROWID
    workspace_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(16), primary_key=True)
    failures: Mapped[int] = mapped_column(BigInteger)


class WorkerBeat(Base):
    """A worker process that is running: written when it starts and on every heartbeat
    (timed by the database's clock, like leases), removed when it stops cleanly. A worker
    that was killed leaves its row behind until its beat is old enough to be forgotten."""

    __tablename__ = "worker_beats"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime]
    seen_at: Mapped[datetime]


class WebSession(Base):
    """A browser login. The cookie carries a random token; only its SHA-256 is stored, so a
    leaked table opens no session. One login covers every workspace the email is a member
    of whose password matched; `member_id` is the one being viewed."""

    __tablename__ = "web_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    member_ids: Mapped[dict[str, Any]] = mapped_column(default=dict)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class LoginFailure(Base):
    """A failed login, counted per email and per client address to slow down guessing."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)
    id: Mapped[uuid.UUID] = _id()
    key: Mapped[str] = mapped_column(String(330))
    at: Mapped[datetime]


class RateCounter(Base):
    """Requests counted for one subject (`key:<prefix>` of an API key, `hook:<workflow id>` of
    a webhook) in the fixed one-minute window starting at `window_start`; also the memory of
    verified signed requests (`sig:<digest>`, window = the signed time), so a replay inside
    the acceptance window is recognised (services/webhook.remember)."""

    __tablename__ = "rate_counters"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class NetworkSetting(Base):
    """A workspace's outbound allow-list: CIDRs and host names its INTEGRATION requests and
    HTTP providers may reach although they are private (see delivery/egress.py)."""

    __tablename__ = "network_settings"
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True)
    allow: Mapped[list[str]] = mapped_column(JSONType)
    updated_at: Mapped[datetime]


class FrequencyCap(Base):
    """A workspace's per-contact frequency caps: channel -> the most messages one contact may
    be sent on that channel per UTC day (a channel not named is not capped)."""

    __tablename__ = "frequency_caps"
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True)
    caps: Mapped[dict[str, Any]] = mapped_column(JSONType)
    updated_at: Mapped[datetime]


class FrequencyCount(Base):
    """Messages counted against a cap: one contact, one channel, one UTC day. A send takes a
    slot with one conditional upsert, so the count never passes the cap however many
    workers race for the last slot."""

    __tablename__ = "frequency_counts"
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class FrequencyReservation(Base):
    """The slot one message took in a count, keyed by the message (the run step that sends
    it, or a resend's attempt): a message retried, or recovered after a crash, takes its
    slot once."""

    __tablename__ = "frequency_reservations"
    __table_args__ = (Index("ix_frequency_reservations_day", "day"),)
    key: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    workspace_id: Mapped[uuid.UUID] = _workspace()
    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    channel: Mapped[str] = mapped_column(String(16))
    day: Mapped[date]
    created_at: Mapped[datetime]


class BulkOperation(Base):
    """Retry or cancel every run a filter matched when the operation was made (DESIGN
    §8.2). Its runs are frozen then, as bulk_items; workers act on them a few at a time
    (services/bulk.py) and keep the counts here as they go."""

    __tablename__ = "bulk_operations"
    __table_args__ = (Index("ix_bulk_operations_ws_created", "workspace_id", "created_at"),)
    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace()
    action: Mapped[str] = mapped_column(String(16))  # retry | cancel
    version: Mapped[str | None] = mapped_column(String(16))  # retry: original | current
    status: Mapped[str] = mapped_column(String(16), default="RUNNING")
    filter: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(320))
    rate: Mapped[float] = mapped_column(Float)  # runs a second at most
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # One worker at a time acts for an operation: the one whose lease has not run out.
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None]


class BulkItem(Base):
    """One run of an operation: PENDING until a worker acts on it, then DONE (retried or
    canceled: `result_run_id` is the retry), SKIPPED (`detail` says why) or FAILED. The
    item changes state in the transaction that acts, so no run is acted on twice."""

    __tablename__ = "bulk_items"
    __table_args__ = (Index("ix_bulk_items_pending", "operation_id", "run_id",
                            sqlite_where=text("state = 'PENDING'"),
                            postgresql_where=text("state = 'PENDING'")),)
    operation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("bulk_operations.id", ondelete="CASCADE"), primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="PENDING")
    result_run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    detail: Mapped[str | None] = mapped_column(Text)
    acted_at: Mapped[datetime | None]
