"""What a message may carry in its envelope and headers, checked before anything is sent.

Subjects and recipients are rendered from templates over contact and webhook data, so they
can hold anything. A CR or LF in a header value would start a new header (`Bcc:` an
outsider) or end the headers early, and a `to` listing several addresses would send one
attempt to all of them. Such a message is refused for good, before the "sending now" mark
is committed and before any provider sees it, with an error that names the field.

Pure: no I/O, stdlib only.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from email import headerregistry

from relayflow.delivery.base import DeliveryError

# RFC 5322 field names: printable ASCII except the colon.
_FIELD_NAME = re.compile(r"^[!-9;-~]+$")
# A phone number as people write it: an optional +, then digits and the usual separators.
_PHONE = re.compile(r"^\+?[0-9 ().-]+$")
_PHONE_DIGITS = (3, 15)  # E.164 allows at most 15 digits
_REGISTRY = headerregistry.HeaderRegistry()


class InvalidMessage(DeliveryError):
    """The message cannot be sent as rendered; retrying cannot change that."""

    def __init__(self, message: str) -> None:
        super().__init__(f"not sent: {message}", retryable=False,
                         response={"refused_before_sending": True})


def _control(value: str) -> str | None:
    """The first character that would break a header line: a C0/C1 control (CR, LF, NUL,
    TAB, ...), DEL, or a Unicode line or paragraph separator."""
    for char in value:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            return char
    return None


def check_header(name: str, value: str) -> None:
    """InvalidMessage unless `name` is a field name and `value` has no control character."""
    if not _FIELD_NAME.match(name):
        raise InvalidMessage(f"the header name {name[:60]!r} is not a valid field name")
    bad = _control(value)
    if bad is None and "=?" in value:
        # The email library decodes RFC 2047 encoded words in a value it is given and
        # writes the result out: `=?utf-8?q?Hi=0D=0ABcc:...?=` would become a second line.
        try:
            bad = _control(str(_REGISTRY(name, value)))
        except Exception:  # a value the parser cannot read is not sent either
            bad = "?"
    if bad is not None:
        raise InvalidMessage(f"the {name} header contains the control character "
                             f"{bad!r}; header values must be one line")


MAX_LOCAL_PART = 64
MAX_ADDRESS = 254
# The common case, an ASCII dot-atom at a host name (RFC 5322 3.2.3, RFC 1035 labels),
# which the email library would return unchanged.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*\Z")


@functools.lru_cache(maxsize=4096)
def email_address(value: str, *, field: str = "to") -> str:
    """The one address `value` names (`ada@example.com` or `Ada <ada@example.com>`), as
    the envelope uses it; InvalidMessage for anything else (several addresses, a group,
    an address that does not parse). Remembered: a message's addresses are checked
    several times on their way out, and the email library's parser is slow."""
    if _PLAIN_ADDRESS.match(value) and len(value) <= MAX_ADDRESS and (
            len(value.partition("@")[0]) <= MAX_LOCAL_PART):
        return value  # what _parsed_address makes of it, at a hundredth of the cost
    return _parsed_address(value, field)


def _parsed_address(value: str, field: str) -> str:
    check_header(field, value)
    try:
        header = _REGISTRY(field, value)
        groups = header.groups  # type: ignore[attr-defined]
        addresses = header.addresses  # type: ignore[attr-defined]
    except Exception as exc:  # the parser raises IndexError and friends on some inputs
        raise InvalidMessage(f"{field} {value[:200]!r} is not an email address") from exc
    if len(addresses) > 1 or len(groups) > 1:
        raise InvalidMessage(f"{field} must be exactly one email address, not a list "
                             f"({len(addresses)} addresses in {value[:200]!r})")
    if not addresses or any(g.display_name is not None for g in groups):
        raise InvalidMessage(f"{field} {value[:200]!r} is not one email address")
    address = addresses[0]
    if header.defects or not address.username or not address.domain:
        raise InvalidMessage(f"{field} {value[:200]!r} is not an email address")
    if _control(address.display_name) is not None:  # an encoded word can hide a CR or LF
        raise InvalidMessage(f"the {field} display name contains a control character")
    # RFC 5321's limits: servers may refuse longer ones, and nobody has such an address.
    if len(address.username.encode()) > MAX_LOCAL_PART or len(address.addr_spec) > MAX_ADDRESS:
        raise InvalidMessage(f"{field} is longer than an email address may be (at most "
                             f"{MAX_LOCAL_PART} bytes before the @, {MAX_ADDRESS} characters "
                             f"in all): {value[:80]!r}…")
    return str(address.addr_spec)


def phone_number(value: str, *, field: str = "to") -> str:
    """The one phone number `value` holds; InvalidMessage for a list or anything else."""
    digits = sum(char.isdigit() for char in value)
    if (not _PHONE.match(value.strip()) or not _PHONE_DIGITS[0] <= digits <= _PHONE_DIGITS[1]
            or value.count("+") > 1):
        raise InvalidMessage(f"{field} must be one phone number (digits, an optional leading "
                             f"+, spaces, dashes, dots or brackets), not {value[:200]!r}")
    return value.strip()


def check(*, channel: str, to: str, subject: str, headers: Mapping[str, str] | None = None,
          sender: str | None = None) -> None:
    """Everything a message needs before any provider may take it; raises InvalidMessage
    naming the first field at fault."""
    if channel == "sms":
        phone_number(to)
        return
    email_address(to, field="to")
    check_header("Subject", subject)
    if sender is not None:
        email_address(sender, field="from")
    for name, value in (headers or {}).items():
        if name.lower() in ("reply-to", "from", "to", "cc", "bcc"):
            email_address(value, field=name)
        else:
            check_header(name, value)


__all__ = ["InvalidMessage", "check", "check_header", "email_address", "phone_number"]
