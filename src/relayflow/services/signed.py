"""Signed requests, for webhooks (services/webhook.py) and provider callbacks
(services/callback.py):

- the signature covers `"<t>." + body` and `t` must be within 5 minutes of the server's clock;
- a signing secret is rotated without a gap: while `<NAME>_PREVIOUS` exists, a signature
  made with either value is accepted (and a sender may send one v1 entry per secret);
- a verified request is remembered by a digest of what the signature covers, for longer
  than it stays acceptable, so the same signed request sent again does nothing a second
  time, whatever unsigned headers (Idempotency-Key) it carries.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import uuid
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from relayflow.errors import Unauthorized
from relayflow.services.runtime import SecretCipher
from relayflow.storage.repositories import rate_counter as rate_counter_repo
from relayflow.storage.repositories import secret as secret_repo

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Relayflow-Signature"
TOLERANCE_SECONDS = 300
# While a secret named `<NAME>` + this exists, signatures made with it are accepted too.
PREVIOUS_SUFFIX = "_PREVIOUS"
_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")
_HEX_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")


# --- signatures -----------------------------------------------------------------------


def sign(secret: str, body: bytes, *, timestamp: int) -> str:
    """The hex HMAC-SHA256 a sender puts in `v1=`: over `"<timestamp>." + body`."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, *, timestamp: int) -> str:
    return f"t={timestamp},v1={sign(secret, body, timestamp=timestamp)}"


def _parse_signature(header: str) -> tuple[str, list[str]]:
    """`t=…,v1=…[,v1=…]` -> (timestamp text, v1 signatures); other schemes are ignored."""
    timestamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise ValueError(part)
        if name == "t":
            timestamps.append(value.strip())
        elif name == "v1":
            signatures.append(value.strip())
    if len(timestamps) != 1 or not _TIMESTAMP_RE.fullmatch(timestamps[0]) or not signatures:
        raise ValueError(header)
    if not all(_HEX_SHA256_RE.fullmatch(s) for s in signatures):
        raise ValueError(header)
    return timestamps[0], signatures


def verify_signature(
    *, secret: str, header: str | None, body: bytes, now: datetime, previous: str | None = None,
) -> int:
    """Raise Unauthorized unless `header` carries a fresh v1 signature of `body`; return the
    signed timestamp.

    Several v1 entries may be present (a sender rotating its secret signs with both), and
    during a rotation on our side a signature made with `previous` is accepted too; any one
    match is enough. Comparisons are constant-time.
    """
    if header is None or not header.strip():
        raise Unauthorized(f"The {SIGNATURE_HEADER} header is missing; this webhook only "
                           "accepts signed requests.").because("signature")
    try:
        timestamp, candidates = _parse_signature(header)
    except ValueError:
        raise Unauthorized(f"The {SIGNATURE_HEADER} header is malformed; expected "
                           "t=<unix seconds>,v1=<hex HMAC-SHA256>.").because("signature") from None
    if abs(now.timestamp() - int(timestamp)) > TOLERANCE_SECONDS:
        raise Unauthorized(f"The {SIGNATURE_HEADER} timestamp is outside the 5-minute window "
                           "around the server's clock; sign each request when sending it."
                           ).because("signature")
    covered = f"{timestamp}.".encode() + body
    # Check every pair, so the time taken does not tell which one matched.
    matched = False
    for value in (secret,) if previous is None else (secret, previous):
        expected = hmac.new(value.encode(), covered, hashlib.sha256).hexdigest().encode()
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate.lower().encode())
    if not matched:
        raise Unauthorized(f"The {SIGNATURE_HEADER} does not match the request body."
                           ).because("signature")
    return int(timestamp)


def signing_values(
    session: Session, *, workspace_id: uuid.UUID, name: str, cipher: SecretCipher, used_by: str,
) -> tuple[str, str | None] | None:
    """The secret `name` and, during a rotation, `<name>_PREVIOUS`; None when `name` itself
    is missing or unreadable (logged by name, never by value: every request is refused)."""
    current = _decrypted(session, workspace_id=workspace_id, name=name, cipher=cipher,
                         used_by=used_by, required=True)
    if current is None:
        return None
    previous = _decrypted(session, workspace_id=workspace_id, name=name + PREVIOUS_SUFFIX,
                          cipher=cipher, used_by=used_by, required=False)
    return current, previous


def _decrypted(
    session: Session, *, workspace_id: uuid.UUID, name: str, cipher: SecretCipher,
    used_by: str, required: bool,
) -> str | None:
    stored = secret_repo.get(session, workspace_id, name)
    if stored is None:
        if required:
            log.warning("%s names signing secret %r, which does not exist; refusing its "
                        "requests", used_by, name, extra={"secret": name})
        return None
    try:
        return cipher.decrypt(stored.ciphertext)
    except RuntimeError:
        log.error("signing secret %r of %s cannot be decrypted; %s", name, used_by,
                  "refusing its requests" if required else "ignoring it",
                  extra={"secret": name})
        return None


# --- replays --------------------------------------------------------------------------


def _signed_digest(timestamp: int, body: bytes, *, scope: bytes = b"") -> str:
    return hashlib.sha256(scope + f"{timestamp}.".encode() + body).hexdigest()


def replay_key(timestamp: int, body: bytes) -> str:
    """The Idempotency-Key of a signed request sent without one: what its signature covers,
    so the same signed request (under either secret of a rotation) finds the same run."""
    return f"signed:{_signed_digest(timestamp, body)}"


def remember(session: Session, *, scope: str, timestamp: int, body: bytes) -> bool:
    """Note a verified signed request; True when the same one was already received.

    The memory is a counter row (rate_counters, key `sig:<digest>`) in the caller's
    transaction: a request that fails afterwards is forgotten with its rollback, and a
    concurrent twin waits for the row and then counts 2 (PostgreSQL), or waits its turn
    (SQLite, BEGIN IMMEDIATE). The row's window starts at the signed time and is pruned an
    hour after (rate_limit.prune), well after the 5-minute acceptance window has passed.
    """
    digest = _signed_digest(timestamp, body, scope=scope.encode() + b"\n")
    key = f"sig:{digest[:60]}"  # the column holds 64 characters
    return rate_counter_repo.hit(session, key, datetime.fromtimestamp(timestamp, UTC)) > 1
