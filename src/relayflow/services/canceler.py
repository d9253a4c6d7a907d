"""Who canceled a run, as the run records it (`workflow_runs.canceled_by`) and shows it.

Every cancel path names itself: a member (`member:<email>`) or an API key
(`api-key:<prefix>`) through services.run.cancel, a workflow's deactivation
(`deactivation`, its reason naming who deactivated it) through the deactivation and its
background sweep, a bulk operation (`bulk:<operation id>`) through services.bulk.
"""

from __future__ import annotations

DEACTIVATION = "deactivation"
MAX_CANCELED_BY = 320  # the column's length


def canceler(actor: str) -> str:
    """The `canceled_by` of a cancel `actor` asked for: a member (an actor is their e-mail)
    as `member:<email>`, an API key (`key:<prefix>`, services.auth) as `api-key:<prefix>`,
    any other actor (`deactivation`, `bulk:<id>`, `cli`) as it is."""
    if actor.startswith("key:"):
        named = "api-key:" + actor.removeprefix("key:")
    elif "@" in actor and not actor.startswith(("member:", "bulk:", "api-key:")):
        named = "member:" + actor
    else:
        named = actor
    return named[:MAX_CANCELED_BY]


def actor_text(actor: str) -> str:
    """An actor as a sentence names it: `olga@acme.test`, `API key rf_1a2b`."""
    if actor.startswith("key:"):
        return "API key " + actor.removeprefix("key:")
    return actor


def deactivation(workflow_key: str, deactivated_by: str | None) -> tuple[str, str]:
    """(`canceled_by`, `cancel_reason`) of a run canceled because its workflow was
    deactivated by `deactivated_by` (an actor; None when not known)."""
    who = f" by {actor_text(deactivated_by)}" if deactivated_by else ""
    return DEACTIVATION, f"workflow {workflow_key} was deactivated{who}"
