"""Webhook lookups: a workflow by the token in its /hooks/{token} address."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from relayflow.storage.models import Workflow


def get_by_token(session: Session, token: str) -> Workflow | None:
    """Tokens are unique across workspaces: the token alone names the workflow."""
    return session.scalar(select(Workflow).where(Workflow.webhook_token == token))
