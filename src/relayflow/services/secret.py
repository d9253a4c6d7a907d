from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from relayflow.errors import InvalidInput
from relayflow.services.runtime import SecretCipher
from relayflow.storage.db import session_scope
from relayflow.storage.models import Secret
from relayflow.storage.repositories import secret as secret_repo

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def put(
    session: Session, *, workspace_id: uuid.UUID, name: str, value: str, cipher: SecretCipher,
    now: datetime,
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
            with session_scope(self._sessions) as session:
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
