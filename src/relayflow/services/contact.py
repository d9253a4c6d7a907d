"""Contacts: normalised addresses, find-or-create for triggers, upsert, search and detail."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import phonenumbers
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from relayflow.errors import Conflict, InvalidInput, NotFound
from relayflow.services import audit as audit_service
from relayflow.services import paging, trigger_events
from relayflow.storage.ids import new_id, parse_id
from relayflow.storage.models import AuditEvent, Contact, RunStep, TriggerEvent
from relayflow.storage.repositories import contact as contact_repo
from relayflow.storage.repositories import delivery as delivery_repo
from relayflow.storage.repositories import run as run_repo
from relayflow.storage.repositories import workflow as workflow_repo
from relayflow.storage.repositories import workspace as workspace_repo
from relayflow.storage.repositories.delivery import DeliveryFilter, DeliveryRow
from relayflow.storage.repositories.run import RunFilter, RunRow

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
IDENTIFIERS = ("email", "phone", "external_id")
MAX_LENGTH = {"email": 320, "phone": 32, "external_id": 200}
RECENT_RUNS = 20
# What people type around phone digits: "+1 (415) 555-0123".
_PHONE_PUNCTUATION = re.compile(r"[\s().\-]")
_PHONE_SEARCH = re.compile(r"^\+?[0-9]+$")


# Characters an address may not hold, by Unicode category: control (Cc: NUL, escape, bell,
# ...), format (Cf: bidi overrides and isolates, zero-width space/joiners, the BOM, soft
# hyphen), line and paragraph separators, private use, surrogates and unassigned code
# points. Each either does not print or reorders what prints, so an address holding one
# looks like another contact's address while being a different one.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})
# In an email address, also symbols (So: emoji, dingbats) and variation selectors. IDNA
# forbids them in domain names; in the local part SMTPUTF8 would carry them, but few
# mailbox providers accept such addresses, and an emoji differing by a skin tone or a
# selector is a look-alike of another contact. Accented and non-Latin letters stay valid.
_EMAIL_SYMBOL_CATEGORIES = frozenset({"So", "Sk"})
_VARIATION_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
# Only ordinary whitespace around an address is trimmed; anything else is checked.
_TRIMMED = " \t\r\n"


def _character_name(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed character')}"


def _check_visible(field: str, value: str, *, symbols: bool = True) -> None:
    for char in value:
        category = unicodedata.category(char)
        if category in _HIDDEN_CATEGORIES:
            raise InvalidInput(f"{field} holds an invisible or control character "
                               f"({_character_name(char)}); remove it")
        if not symbols and (category in _EMAIL_SYMBOL_CATEGORIES
                            or _VARIATION_SELECTORS.match(char)):
            raise InvalidInput(f"{field} holds a symbol ({_character_name(char)}); an email "
                               "address may hold letters, digits and punctuation only")


def normalize_email(value: str) -> str:
    """NFC, lower-cased (local part too: every stored address and lookup is), trimmed."""
    text = value.strip(_TRIMMED)
    _check_visible("email", text, symbols=False)
    email = unicodedata.normalize("NFC", text).lower()
    if not EMAIL_RE.match(email):
        raise InvalidInput(f"{value!r} is not an email address")
    return email


def normalize_phone(value: str, *, region: str | None = None) -> str:
    """E.164 (`+14155550123`). Without a leading + the number is read in `region`."""
    text = value.strip(_TRIMMED)
    # phonenumbers skips what it does not read, zero-width characters included.
    _check_visible("phone", text)
    try:
        number = phonenumbers.parse(unicodedata.normalize("NFKC", text), region)
    except phonenumbers.NumberParseException as exc:
        hint = "" if region else " (write it with its country code, e.g. +14155550123)"
        raise InvalidInput(f"{value!r} is not a phone number{hint}") from exc
    if not phonenumbers.is_possible_number(number):
        raise InvalidInput(f"{value!r} is not a phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _identifiers(spec: dict[str, Any], phone_region: str | None) -> dict[str, str]:
    """The normalised identifiers a spec gives (email, phone, external_id)."""
    values: dict[str, str] = {}
    if spec.get("email"):
        values["email"] = normalize_email(str(spec["email"]))
    if spec.get("phone"):
        values["phone"] = normalize_phone(str(spec["phone"]), region=phone_region)
    if spec.get("external_id"):
        values["external_id"] = str(spec["external_id"])
        _check_visible("external_id", values["external_id"])
    for field, value in values.items():
        if len(value) > MAX_LENGTH[field]:
            raise InvalidInput(f"{field} is at most {MAX_LENGTH[field]} characters")
    return values


def _new(workspace_id: uuid.UUID, spec: dict[str, Any], values: dict[str, str],
         now: datetime) -> Contact:
    """A contact not yet stored, with the spec's identifiers and attributes."""
    return Contact(**_new_row(workspace_id, spec, values, now))


def _new_row(workspace_id: uuid.UUID, spec: dict[str, Any], values: dict[str, str],
             now: datetime) -> dict[str, Any]:
    attributes = spec.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise InvalidInput("contact attributes must be an object")
    return {"workspace_id": workspace_id, "email": None, "phone": None, "external_id": None,
            "attributes": attributes, "suppressed": {}, "created_at": now, "updated_at": now,
            **values}


def resolve(
    session: Session, *, workspace_id: uuid.UUID, spec: dict[str, Any], now: datetime,
    phone_region: str | None = None,
) -> Contact:
    """Find a contact by id, email, phone or external_id; create it if an address is given."""
    if "id" in spec:
        contact_id = parse_id(str(spec["id"]))
        contact = contact_repo.get(session, workspace_id, contact_id) if contact_id else None
        if contact is None:
            raise NotFound(f"no contact {spec['id']!r} in this workspace")
        return contact
    values = _identifiers(spec, phone_region)
    if not values:
        raise InvalidInput("contact needs one of id, email, phone or external_id")
    for field in IDENTIFIERS:
        if field in values:
            found = contact_repo.find(session, workspace_id, field=field, value=values[field])
            if found is not None:
                return found
    contact = _new(workspace_id, spec, values, now)
    try:
        with session.begin_nested():
            return contact_repo.add(session, contact)
    except IntegrityError:
        # A concurrent request created the same contact first (on PostgreSQL both may try;
        # the unique constraint stops the second). That row is committed now: use it.
        for field in IDENTIFIERS:
            if field in values:
                found = contact_repo.find(session, workspace_id, field=field,
                                          value=values[field])
                if found is not None:
                    return found
        raise


def resolve_many(
    session: Session, *, workspace_id: uuid.UUID, specs: Sequence[dict[str, Any]],
    now: datetime, phone_region: str | None = None,
) -> list[Contact]:
    """`resolve` for many specs of one workspace at once, each by email, phone or
    external_id: one query finds the known contacts, and the new ones are created together
    (a spec given twice finds the contact its first use created). No savepoint: a contact
    created meanwhile by another transaction fails the flush, for the caller to start again."""
    wanted = [_identifiers(spec, phone_region) for spec in specs]
    if not all(wanted):
        raise InvalidInput("contact needs one of id, email, phone or external_id")
    known = contact_repo.find_many(session, workspace_id, wanted)
    contacts: list[Contact] = []
    rows: list[dict[str, Any]] = []
    for spec, values in zip(specs, wanted, strict=True):
        found = next((known[(field, values[field])] for field in IDENTIFIERS
                      if (field, values.get(field)) in known), None)
        if found is None:
            row = {"id": new_id(), **_new_row(workspace_id, spec, values, now)}
            rows.append(row)
            found = Contact(**row)
            known.update({(field, value): found for field, value in values.items()})
        contacts.append(found)
    contact_repo.add_rows(session, rows)
    return contacts


def get(session: Session, *, workspace_id: uuid.UUID, contact_id: str | uuid.UUID) -> Contact:
    parsed = contact_id if isinstance(contact_id, uuid.UUID) else parse_id(contact_id)
    contact = contact_repo.get(session, workspace_id, parsed) if parsed else None
    if contact is None:
        raise NotFound(f"no contact {contact_id!s} in this workspace")
    return contact


def find_by_address(
    session: Session, *, workspace_id: uuid.UUID, address: str, phone_region: str | None = None
) -> Contact | None:
    """The contact an email or phone number (in any usual spelling) belongs to, if any.

    An address that cannot be read as either is an error, not a miss."""
    text = address.strip()
    if "@" in text:
        return contact_repo.find(session, workspace_id, field="email",
                                 value=normalize_email(text))
    phone = normalize_phone(text, region=phone_region)
    return contact_repo.find(session, workspace_id, field="phone", value=phone)


def find_existing(session: Session, *, workspace_id: uuid.UUID, spec: dict[str, Any],
                  phone_region: str | None = None) -> Contact | None:
    """The stored contact a spec's identifiers name (external id first, then email, then
    phone), creating none; None when none matches."""
    values = _identifiers(spec, phone_region)
    found = contact_repo.find_any(session, workspace_id, values)
    return next((found[field] for field in ("external_id", "email", "phone")
                 if field in found), None)


SUPPRESSIBLE = ("email", "sms")
MAX_REASON = 500


def lift_suppression(session: Session, *, workspace_id: uuid.UUID, contact_id: str,
                     channel: str, reason: str, actor: str, now: datetime) -> Contact:
    """Let messages reach the contact on `channel` again (an unsubscribe, a bounce or a
    complaint, lifted by an admin who knows better: the address was fixed, the person asked);
    audited with what the suppression was and why it was lifted."""
    if channel not in SUPPRESSIBLE:
        raise InvalidInput(f"channel must be one of {', '.join(SUPPRESSIBLE)}")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("reason is required: say why the suppression is lifted")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"reason is at most {MAX_REASON} characters")
    contact = get(session, workspace_id=workspace_id, contact_id=contact_id)
    was = (contact.suppressed or {}).get(channel)
    if not was:
        raise Conflict(f"The contact's {channel} is not suppressed.")
    contact.suppressed = {k: v for k, v in (contact.suppressed or {}).items() if k != channel}
    contact.updated_at = now
    audit_service.record(session, workspace_id=workspace_id, actor=actor,
                         action="contact.suppression_lift", target_type="contact",
                         target_id=str(contact.id), now=now,
                         detail={"channel": channel, "was": was, "reason": reason})
    return contact


# --- upsert -----------------------------------------------------------------------------


class ContactConflict(Conflict):
    """The identifiers given belong to different contacts."""

    def __init__(self, matches: dict[str, Contact]) -> None:
        self.matches = {field: str(c.id) for field, c in matches.items()}
        fields = " and ".join(sorted(self.matches))
        super().__init__(f"{fields} belong to different contacts; send identifiers of one "
                         "contact, or update each contact separately")

    def extra(self) -> dict[str, Any]:
        return {"matches": self.matches}


@dataclass(frozen=True, slots=True)
class Upserted:
    contact: Contact
    created: bool


def _merge(attributes: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Top-level merge: given keys replace, `null` removes, others are kept."""
    merged = {**attributes, **changes}
    return {k: v for k, v in merged.items() if v is not None}


def upsert(
    session: Session, *, workspace_id: uuid.UUID, now: datetime, email: str | None = None,
    phone: str | None = None, external_id: str | None = None,
    attributes: dict[str, Any] | None = None, phone_region: str | None = None,
    actor: str | None = None,
) -> Upserted:
    """Create a contact, or update the one its identifiers match.

    Every identifier given is looked up. One contact matched: the given identifiers are
    set on it (so a known email can bring a new phone) and the attributes merged in. None
    matched: a new contact. Two different contacts matched: ContactConflict, nothing
    changes. With an `actor`, attributes it changed on a known contact leave an audit
    event (their names, not their values) that the contact's timeline shows."""
    spec = {"email": email, "phone": phone, "external_id": external_id}
    values = _identifiers(spec, phone_region)
    if not values:
        raise InvalidInput("a contact needs at least one of email, phone or external_id")
    for attempt in range(2):
        matches = contact_repo.find_any(session, workspace_id, values)
        if len({c.id for c in matches.values()}) > 1:
            raise ContactConflict(matches)
        found = next(iter(matches.values()), None)
        try:
            with session.begin_nested():
                if found is None:
                    found = contact_repo.add(session, Contact(
                        workspace_id=workspace_id, attributes=_merge({}, attributes or {}),
                        suppressed={}, created_at=now, updated_at=now, **values))
                    return Upserted(found, True)
                for field, value in values.items():
                    setattr(found, field, value)
                before = dict(found.attributes or {})
                found.attributes = _merge(before, attributes or {})
                found.updated_at = now
                session.flush()
                if actor is not None:
                    _record_attributes(session, found, before, actor, now)
                return Upserted(found, False)
        except IntegrityError as exc:
            # A concurrent request took one of these identifiers first: look again.
            if attempt:
                raise Conflict("the contact changed while it was being saved; try again") from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _record_attributes(session: Session, contact: Contact, before: dict[str, Any], actor: str,
                       now: datetime) -> None:
    after = contact.attributes or {}
    changed = sorted(k for k in after if before.get(k) != after[k])
    removed = sorted(k for k in before if k not in after)
    if changed or removed:
        audit_service.record(session, workspace_id=contact.workspace_id, actor=actor,
                             action="contact.attributes", target_type="contact",
                             target_id=str(contact.id), now=now,
                             detail={"set": changed, "removed": removed})


# --- listing and detail -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContactPage:
    contacts: list[Contact]
    next_cursor: str | None


def search(
    session: Session, *, workspace_id: uuid.UUID, text: str | None = None, limit: int = 50,
    cursor: str | None = None,
) -> ContactPage:
    """Newest first. `text` matches part of an email, phone number or external id, in any
    case; a phone number matches however it is spaced or punctuated."""
    paging.check_limit(limit)
    before = paging.decode_id(cursor) if cursor else None
    needle = (text or "").strip()
    digits = _PHONE_PUNCTUATION.sub("", needle)
    phone_search = digits if _PHONE_SEARCH.match(digits) else None
    contacts = contact_repo.list_page(session, workspace_id, limit=limit + 1,
                                      search=needle or None, phone_search=phone_search,
                                      before=before)
    if len(contacts) <= limit:
        return ContactPage(contacts, None)
    contacts = contacts[:limit]
    return ContactPage(contacts, paging.encode_id(contacts[-1].id))


@dataclass(frozen=True, slots=True)
class Detail:
    contact: Contact
    runs: list[RunRow]


def detail(session: Session, *, workspace_id: uuid.UUID, contact_id: str) -> Detail:
    """A contact with its newest runs (the rest through /runs?contact=<id>)."""
    contact = get(session, workspace_id=workspace_id, contact_id=contact_id)
    runs = run_repo.list_page(session, RunFilter(workspace_id=workspace_id,
                                                 contact_id=contact.id), limit=RECENT_RUNS)
    return Detail(contact, run_repo.with_latest_retries(session, workspace_id, runs))


# --- for the contact pages ----------------------------------------------------------------

TIMELINE = 50


@dataclass(frozen=True, slots=True)
class BrowsePage:
    """A page of contacts that can be left both ways: `older_cursor` continues with older
    contacts (`cursor=`), `newer_cursor` goes back towards the newest (`after=`)."""

    contacts: list[Contact]
    older_cursor: str | None
    newer_cursor: str | None


def _needles(text: str | None) -> tuple[str | None, str | None]:
    needle = (text or "").strip()
    digits = _PHONE_PUNCTUATION.sub("", needle)
    return needle or None, digits if _PHONE_SEARCH.match(digits) else None


def browse(
    session: Session, *, workspace_id: uuid.UUID, text: str | None = None, limit: int = 50,
    cursor: str | None = None, after: str | None = None,
) -> BrowsePage:
    """`search`, plus the way back: `after` (a cursor) gives the contacts just newer."""
    if cursor and after:
        raise InvalidInput("give cursor (older) or after (newer), not both")
    if not after:
        page = search(session, workspace_id=workspace_id, text=text, limit=limit, cursor=cursor)
        newer = paging.encode_id(page.contacts[0].id) if cursor and page.contacts else None
        return BrowsePage(page.contacts, page.next_cursor, newer)
    paging.check_limit(limit)
    since = paging.decode_id(after)
    needle, phone_search = _needles(text)
    found = contact_repo.list_page_newer(session, workspace_id, limit=limit + 1, after=since,
                                         search=needle, phone_search=phone_search)
    more_newer = len(found) > limit
    found = found[-limit:] if more_newer else found
    return BrowsePage(found, paging.encode_id(found[-1].id) if found else None,
                      paging.encode_id(found[0].id) if more_newer else None)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One thing that happened to a contact: a run, a delivery attempt, a trigger that
    opened no run of its own (refused, or a duplicate), or a change to its suppression (an
    unsubscribe, a suppression lifted)."""

    # "run", "delivery", "callback" (a provider's bounce or complaint about a delivery),
    # "trigger", "suppression" or "attributes" (set by a run's step, or through the API)
    kind: str
    at: datetime
    run: RunRow | None = None
    delivery: DeliveryRow | None = None
    trigger: TriggerEvent | None = None
    workflow_key: str | None = None  # of a trigger event (None once its workflow is gone)
    says: str = ""  # of a trigger event or a suppression's change
    audit: AuditEvent | None = None  # of a suppression's change
    step: RunStep | None = None  # the UPDATE_CONTACT step that set attributes


# The audit actions that change a contact's suppression, as the timeline says them.
SUPPRESSION_ACTIONS = ("contact.unsubscribe", "contact.suppression_lift")
# Callbacks a timeline shows on their own: what a provider said went wrong after sending.
CALLBACKS = {"bounced": "the provider reported a {bounce} bounce",
             "complained": "the recipient reported it as spam (a complaint)"}


def _callbacks(deliveries: list[DeliveryRow]) -> list[TimelineEntry]:
    found = []
    for row in deliveries:
        for event in (row.attempt.provider_response or {}).get("events", []):
            said = CALLBACKS.get(str(event.get("type")))
            if said is not None and event.get("at"):
                found.append(TimelineEntry(
                    "callback", datetime.fromisoformat(str(event["at"])), delivery=row,
                    says=said.format(bounce=event.get("bounce", "hard"))))
    return found


def _changed(event: AuditEvent) -> str:
    said = [f"{verb} " + ", ".join(event.detail[key])
            for verb, key in (("set", "set"), ("removed", "removed")) if event.detail.get(key)]
    return "; ".join(said) + f" (by {event.actor})"


def _says(event: AuditEvent) -> str:
    channel = event.detail.get("channel", "a channel")
    if event.action == "contact.unsubscribe":
        return f"unsubscribed from {channel} (the unsubscribe link)"
    return (f"suppression on {channel} ({event.detail.get('was')}) lifted by {event.actor}: "
            f"{event.detail.get('reason', '')}")


@dataclass(frozen=True, slots=True)
class Suppressed:
    """Why a channel is suppressed, and since when: what the contact page says of it."""

    why: str  # unsubscribed, bounced, complained
    at: datetime | None  # None: no record of it is left (pruned with its message)
    attempt_id: uuid.UUID | None = None  # the message whose bounce or complaint it was


def suppressions(session: Session, contact: Contact) -> dict[str, Suppressed]:
    """Each suppressed channel of the contact, with when and from what: an unsubscribe from
    the audit trail, a bounce or a complaint from the provider's event on the message."""
    found: dict[str, Suppressed] = {}
    suppressed = contact.suppressed or {}
    if not suppressed:
        return found
    unsubscribes = workspace_repo.audit_of(
        session, contact.workspace_id, target_type="contact", target_id=str(contact.id),
        actions=("contact.unsubscribe",), limit=20)
    events = [(a, e) for row in delivery_repo.list_page(session, DeliveryFilter(
        workspace_id=contact.workspace_id, contact_id=contact.id,
        statuses=("BOUNCED", "SENT", "DELIVERED")), limit=100)
        for a in (row.attempt,) for e in (a.provider_response or {}).get("events", [])]
    for channel, why in suppressed.items():
        origin = Suppressed(str(why), None)
        if why == "unsubscribed":
            origin = next((Suppressed(why, u.at) for u in unsubscribes
                           if u.detail.get("channel") == channel), origin)
        else:
            kind = "bounced" if why == "bounced" else "complained"
            origin = next((Suppressed(str(why), datetime.fromisoformat(e["at"]), a.id)
                           for a, e in events if a.channel == channel and e.get("type") == kind),
                          origin)
        found[channel] = origin
    return found


@dataclass(frozen=True, slots=True)
class Timeline:
    contact: Contact
    entries: list[TimelineEntry]
    more: bool  # older entries exist beyond these (see /runs and /delivery-ops)


def timeline(session: Session, *, workspace_id: uuid.UUID, contact_id: str,
             limit: int = TIMELINE) -> Timeline:
    """A contact with its newest runs, delivery attempts, trigger events, changes to its
    suppression and attributes set by its runs, interleaved newest first.

    The newest `limit` of the merge are always among the newest `limit` of each list, so
    four bounded reads give an exact timeline."""
    contact = get(session, workspace_id=workspace_id, contact_id=contact_id)
    runs = run_repo.list_page(session, RunFilter(workspace_id=workspace_id,
                                                 contact_id=contact.id), limit=limit + 1)
    deliveries = delivery_repo.list_page(
        session, DeliveryFilter(workspace_id=workspace_id, contact_id=contact.id),
        limit=limit + 1)
    events = trigger_events.of_contact(session, workspace_id=workspace_id,
                                       contact_id=contact.id, limit=limit + 1)
    keys = {w.id: w.key for w in workflow_repo.get_many(
        session, {e.workflow_id for e in events}).values()}
    entries = [TimelineEntry("run", r.run.created_at, run=r) for r in runs]
    entries += [TimelineEntry("delivery", d.attempt.created_at, delivery=d) for d in deliveries]
    entries += _callbacks(deliveries)
    entries += [TimelineEntry("trigger", e.at, trigger=e, workflow_key=keys.get(e.workflow_id),
                              says=trigger_events.says(e)) for e in events]
    steps = run_repo.steps_of(session, [r.run.id for r in runs]) if runs else {}
    entries += [TimelineEntry("attributes", step.finished_at or step.started_at, step=step,
                              says="set " + ", ".join(sorted((step.output or {}).get("set", {}))),
                              run=row)
                for row in runs for step in steps.get(row.run.id, [])
                if step.node_type == "UPDATE_CONTACT" and step.status == "COMPLETED"]
    for a in workspace_repo.audit_of(
            session, workspace_id, target_type="contact", target_id=str(contact.id),
            actions=(*SUPPRESSION_ACTIONS, "contact.attributes"), limit=limit + 1):
        if a.action == "contact.attributes":
            entries.append(TimelineEntry("attributes", a.at, audit=a, says=_changed(a)))
        else:
            entries.append(TimelineEntry("suppression", a.at, audit=a, says=_says(a)))
    # Same instant: a run's delivery is what the run did, so it shows above the run.
    entries.sort(key=lambda e: (e.at, e.kind == "delivery"), reverse=True)
    return Timeline(contact, entries[:limit], len(entries) > limit)
