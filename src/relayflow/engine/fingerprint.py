"""Fingerprints: one short name for one cause of failure (DESIGN §8.1).

Two failures share a fingerprint when the same thing broke in the same place: the same
workflow, node and node type, the same class of error (for a delivery: the same channel,
provider and provider code), and the same message once what differs from one run to the
next is taken out of it. `pattern` takes it out: e-mail addresses, URLs, UUIDs and other
long hexadecimal ids, dates and times, numbers, and quoted values become placeholders, so
"no attribute 'x' for ada@example.com at 2026-12-01T10:00:00Z, order 4417" and the same
for another contact, time and order are one pattern. What stays is the text the code
wrote. A number that tells causes apart (an HTTP status, a provider's code) is part of the
class instead, where it is kept whole.

The fingerprint is the first 16 hexadecimal digits (64 bits) of a SHA-256 over the parts,
each length-prefixed so that no two lists of parts hash the same, and over VERSION: new
rules make new fingerprints instead of silently merging or splitting old groups.
"""

from __future__ import annotations

import hashlib
import re

VERSION = 1
LENGTH = 16
MAX_PATTERN = 500  # characters of normalised text kept (a message may quote a whole body)

# Applied in one pass, leftmost match first; at one position the earlier rule wins, so a
# URL or an address is taken whole before its digits could be.
_RULES = (
    # a URL ends before the punctuation that follows it in a sentence
    ("url", r"\b(?:https?|wss?|ftp|mailto):[^\s'\"<>]*[^\s'\"<>.,;:!?)\]]"),
    ("email", r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    ("uuid", r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
             r"[0-9a-fA-F]{12}\b"),  # without its dashes, a UUID is one more <hex>
    ("time", r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
             r"(?:Z|[+-]\d{2}:?\d{2})?)?\b|\b\d{1,2}:\d{2}(?::\d{2})?\b"),
    ("hex", r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"),
    ("quoted", r"'[^'\n]*'|\"[^\"\n]*\""),
    ("number", r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?![\w.]*[A-Za-z_])"),
    # a prefixed id (ORD-0004417, cus_9fA8b7c6): letters, a dash or underscore, then six or
    # more letters and digits with a digit among them (a field such as card_last4 stays)
    ("id", r"\b[A-Za-z]+[-_](?=[A-Za-z0-9]*\d)[A-Za-z0-9]{6,}\b"),
)
_ANY = re.compile("|".join(f"(?P<{name}>{regex})" for name, regex in _RULES))
_SPACE = re.compile(r"\s+")


def pattern(text: str) -> str:
    """The message with what varies between runs replaced by placeholders (`<email>`,
    `<url>`, `<uuid>`, `<time>`, `<hex>`, `<quoted>`, `<number>`, `<id>`), its spaces
    collapsed."""
    normal = _ANY.sub(lambda m: f"<{m.lastgroup}>", text)
    return _SPACE.sub(" ", normal).strip()[:MAX_PATTERN]


def _digest(kind: str, *parts: str) -> str:
    h = hashlib.sha256(f"relayflow-fingerprint/{VERSION}/{kind}".encode())
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")  # an error may quote a lone surrogate
        h.update(len(data).to_bytes(4, "big"))
        h.update(data)
    return h.hexdigest()[:LENGTH]


def of_run(*, workflow: str, node_id: str, node_type: str, error_class: str,
           error: str) -> str:
    """A FAILED run's fingerprint: where it failed, the class of error, and its pattern."""
    return _digest("run", workflow, node_id, node_type, error_class, pattern(error))


def of_attempt(*, workflow: str, node_id: str, channel: str, provider: str, code: str,
               error: str) -> str:
    """A FAILED or BOUNCED delivery attempt's: where it was sent from, to which provider,
    the provider's code (an SMTP reply code, an HTTP status; "" when none), the pattern."""
    return _digest("attempt", workflow, node_id, channel, provider, code, pattern(error))
