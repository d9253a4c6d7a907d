"""What the use cases need from outside: sessions, the secret cipher and the clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Dialect, Engine
from sqlalchemy.orm import Session, sessionmaker

from relayflow.config import Settings
from relayflow.delivery.egress import AllowList
from relayflow.storage.db import make_engine, make_sessionmaker


def utcnow() -> datetime:
    return datetime.now(UTC)


class SecretCipher:
    """Fernet encryption for secret values at rest."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()
        try:
            self._fernet = Fernet(key.encode())
        except ValueError:
            # Any passphrase works: derive a proper 32-byte key from it.
            derived = base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest())
            self._fernet = Fernet(derived)

    def derive(self, purpose: str) -> bytes:
        """A key for one purpose (e.g. signing links), derived from the secret key."""
        return hmac.new(self._key, f"relayflow:{purpose}".encode(), hashlib.sha256).digest()

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise RuntimeError("secret cannot be decrypted: RELAYFLOW_SECRET_KEY changed?") from exc


def load_secret_key(settings: Settings) -> str:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = Path(settings.secret_key_file)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(Fernet.generate_key().decode())
    return path.read_text().strip()


def base_url_of(settings: Settings) -> str:
    """Where users reach this server: `public_url` when set (behind a proxy or TLS
    terminator), else the address it listens on."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = f"[{settings.host}]" if ":" in settings.host else settings.host  # IPv6 literal
    return f"http://{host}:{settings.port}"


def network_allow_of(settings: Settings) -> AllowList:
    """RELAYFLOW_NETWORK_ALLOW parsed; a bad entry stops startup with the entries named."""
    try:
        return AllowList.parse(settings.network_allow)
    except ValueError as exc:
        raise ValueError(f"RELAYFLOW_NETWORK_ALLOW: {exc}") from exc


@dataclass(slots=True, kw_only=True)
class Runtime:
    sessions: sessionmaker[Session]
    cipher: SecretCipher
    clock: Callable[[], datetime] = field(default=utcnow)
    base_url: str = "http://127.0.0.1:8000"
    # A message gets this many attempts in all; transient failures wait base·2^(n-1) (jittered).
    delivery_max_attempts: int = 4
    delivery_retry_base_seconds: float = 30.0
    # Private targets outbound requests may reach in every workspace (RELAYFLOW_NETWORK_ALLOW);
    # empty: only public addresses.
    network_allow: AllowList = field(default_factory=AllowList)
    # Upstream-trigger caps (Settings.max_trigger_depth, max_child_runs).
    max_trigger_depth: int = 10
    max_child_runs: int = 100
    cancel_batch_size: int = 500
    # The overall deadline of one provider call (SMTP or HTTP), connect and all reads included.
    provider_timeout_seconds: float = 30.0
    # Sessions on a read replica (RELAYFLOW_READ_DATABASE_URL) for history reads, or None.
    replica: sessionmaker[Session] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        engine = make_engine(settings.database_url)
        replica = settings.read_database_url
        return cls(
            sessions=make_sessionmaker(engine),
            replica=make_sessionmaker(make_engine(replica)) if replica else None,
            cipher=SecretCipher(load_secret_key(settings)),
            base_url=base_url_of(settings),
            delivery_max_attempts=settings.delivery_max_attempts,
            delivery_retry_base_seconds=settings.delivery_retry_base_seconds,
            network_allow=network_allow_of(settings),
            max_trigger_depth=settings.max_trigger_depth,
            max_child_runs=settings.max_child_runs,
            cancel_batch_size=settings.cancel_batch_size,
            provider_timeout_seconds=settings.provider_timeout_seconds,
        )

    @property
    def dialect(self) -> Dialect:
        """The database's SQLAlchemy dialect."""
        return cast(Engine, self.sessions.kw["bind"]).dialect

    def dispose(self) -> None:
        for sessions in (self.sessions, self.replica):
            bind = sessions.kw.get("bind") if sessions is not None else None
            if bind is not None:
                bind.dispose()
