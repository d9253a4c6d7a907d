from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from relayflow.engine import limits
from relayflow.errors import InvalidInput, NotFound
from relayflow.services import workspace as workspace_service
from relayflow.services.runtime import SecretCipher
from relayflow.storage.db import read_scope
from relayflow.storage.models import Secret
from relayflow.storage.repositories import secret as secret_repo

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretInfo:
    """What may be shown about a secret: never its value."""

    name: str
    updated_at: datetime


def put(
    session: Session, *, workspace_id: uuid.UUID, name: str, value: str, cipher: SecretCipher,
    now: datetime, actor: str = "system",
) -> None:
    if not NAME_RE.match(name):
        raise InvalidInput("a secret name is letters, digits and '_', starting with a letter")
    if not isinstance(value, str) or not value:
        raise InvalidInput("a secret value must be a non-empty string")
    existing = secret_repo.get(session, workspace_id, name)
    if existing is None:
        secret_repo.add(session, Secret(workspace_id=workspace_id, name=name,
                                        ciphertext=cipher.encrypt(value), created_at=now,
                                        updated_at=now))
    else:
        existing.ciphertext = cipher.encrypt(value)
        existing.updated_at = now
    # target_id holds 64 characters and a name may have 128: the full name goes in detail.
    workspace_service.audit(session, workspace_id=workspace_id, actor=actor, action="secret.set",
                            target_type="secret", target_id=name[:64], now=now,
                            detail={"name": name, "created": existing is None})


def delete(
    session: Session, *, workspace_id: uuid.UUID, name: str, now: datetime, actor: str = "system"
) -> None:
    if secret_repo.remove(session, workspace_id, name) == 0:
        raise NotFound(f"no secret {name!r} in this workspace")
    workspace_service.audit(session, workspace_id=workspace_id, actor=actor,
                            action="secret.delete", target_type="secret", target_id=name[:64],
                            now=now, detail={"name": name})


def list_info(session: Session, *, workspace_id: uuid.UUID) -> list[SecretInfo]:
    return [SecretInfo(name=s.name, updated_at=s.updated_at)
            for s in secret_repo.list_all(session, workspace_id)]


def names(session: Session, workspace_id: uuid.UUID) -> set[str]:
    return secret_repo.names(session, workspace_id)


class WorkspaceSecrets(Mapping[str, str]):
    """Decrypted secrets of one workspace, loaded on first use (most runs need none)."""

    def __init__(self, sessions: sessionmaker[Session], workspace_id: uuid.UUID,
                 cipher: SecretCipher) -> None:
        self._sessions, self._workspace_id, self._cipher = sessions, workspace_id, cipher
        self._values: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._values is None:
            # Usually reached from inside a template render: the query and the decryption
            # are not the template's time (engine/limits.py).
            with limits.unmetered(), read_scope(self._sessions) as session:
                rows = secret_repo.list_all(session, self._workspace_id)
                self._values = {r.name: self._cipher.decrypt(r.ciphertext) for r in rows}
        return self._values

    def loaded(self) -> dict[str, str]:
        return dict(self._values or {})

    def __getitem__(self, name: str) -> str:
        return self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretDetail:
    """A secret as the settings page lists it: its name and times, never its value."""

    name: str
    created_at: datetime
    updated_at: datetime


def list_details(session: Session, *, workspace_id: uuid.UUID) -> list[SecretDetail]:
    """Every secret of the workspace by name, with when it was created and last replaced."""
    return [SecretDetail(name=s.name, created_at=s.created_at, updated_at=s.updated_at)
            for s in secret_repo.list_all(session, workspace_id)]
