"""services.webhook: signatures, payload parsing, the contact mapping, receive and rotate."""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from relayflow.config import Settings
from relayflow.errors import Conflict, InvalidInput, MalformedInput, NotFound, Unauthorized
from relayflow.services import signed
from relayflow.services import webhook as webhook_service
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime, base_url_of
from relayflow.storage.db import session_scope
from relayflow.storage.models import AuditEvent, Contact, Workflow, WorkflowRun
from tests.support.flows import install, set_secret

NOW = datetime(2025, 10, 26, 1, 30, tzinfo=UTC)
T = int(NOW.timestamp())
SECRET = "s3cret-signing-value"
BODY = b'{"kind": "order", "email": "Ada@Example.com"}'


def _v1(body: bytes, t: int, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def _definition(**trigger: Any) -> dict[str, Any]:
    return {"key": "inbound", "trigger": {"type": "webhook", **trigger}, "start": "done",
            "nodes": {"done": {"type": "END"}}}


def _token(runtime: Runtime, workspace_id: Any, key: str = "inbound") -> str:
    with session_scope(runtime.sessions) as session:
        token = workflow_service.get(session, workspace_id=workspace_id, key=key).webhook_token
    assert token is not None
    return token


def _count(runtime: Runtime, model: type[Any]) -> int:
    with session_scope(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _receive(runtime: Runtime, token: str, body: bytes = BODY, **over: Any) -> Any:
    args: dict[str, Any] = {"signature": None, "idempotency_key": None, "now": NOW}
    args.update(over)
    with session_scope(runtime.sessions) as session:
        return webhook_service.receive(session, token=token, body=body, cipher=runtime.cipher,
                                       **args)


class TestVerifySignature:
    def test_a_valid_signature_passes(self) -> None:
        signed.verify_signature(secret=SECRET, header=f"t={T},v1={_v1(BODY, T)}",
                                         body=BODY, now=NOW)

    def test_upper_case_hex_and_spaces_pass(self) -> None:
        header = f" t={T} , v1={_v1(BODY, T).upper()} "

        signed.verify_signature(secret=SECRET, header=header, body=BODY, now=NOW)

    def test_any_matching_v1_entry_passes(self) -> None:
        header = f"t={T},v1={_v1(BODY, T, 'old')},v1={_v1(BODY, T)},v1={'0' * 64}"

        signed.verify_signature(secret=SECRET, header=header, body=BODY, now=NOW)

    def test_other_schemes_are_ignored(self) -> None:
        header = f"t={T},v0=whatever,v1={_v1(BODY, T)}"

        signed.verify_signature(secret=SECRET, header=header, body=BODY, now=NOW)

    def test_matches_what_signature_header_builds(self) -> None:
        header = signed.signature_header(SECRET, BODY, timestamp=T)

        assert header == f"t={T},v1={_v1(BODY, T)}"

    @pytest.mark.parametrize("header", [None, "", "   "])
    def test_missing(self, header: str | None) -> None:
        with pytest.raises(Unauthorized, match="missing"):
            signed.verify_signature(secret=SECRET, header=header, body=BODY, now=NOW)

    @pytest.mark.parametrize("header", [
        "nonsense",
        f"t={T}",
        f"v1={'a' * 64}",
        f"t=-{T},v1={'a' * 64}",
        f"t={T}.5,v1={'a' * 64}",
        f"t={T},v1={'a' * 63}",
        f"t={T},v1={'g' * 64}",
        f"t={T},t={T + 1},v1={'a' * 64}",
        f"t={T},v1={'a' * 64},junk",
        f"t=١٢٣,v1={'a' * 64}",  # non-ASCII digits are not a timestamp
    ])
    def test_malformed(self, header: str) -> None:
        with pytest.raises(Unauthorized, match="malformed"):
            signed.verify_signature(secret=SECRET, header=header, body=BODY, now=NOW)

    @pytest.mark.parametrize("offset", [-301, 301, -86_400])
    def test_stale(self, offset: int) -> None:
        t = T + offset
        with pytest.raises(Unauthorized, match="outside the 5-minute window"):
            signed.verify_signature(secret=SECRET, header=f"t={t},v1={_v1(BODY, t)}",
                                             body=BODY, now=NOW)

    @pytest.mark.parametrize("offset", [-300, 300])
    def test_at_the_edge_of_the_window(self, offset: int) -> None:
        t = T + offset
        signed.verify_signature(secret=SECRET, header=f"t={t},v1={_v1(BODY, t)}",
                                         body=BODY, now=NOW)

    def test_wrong_secret(self) -> None:
        with pytest.raises(Unauthorized, match="does not match"):
            signed.verify_signature(
                secret=SECRET, header=f"t={T},v1={_v1(BODY, T, 'other')}", body=BODY, now=NOW)

    def test_one_byte_of_the_body_changed(self) -> None:
        changed = BODY[:-2] + b"x" + BODY[-1:]

        with pytest.raises(Unauthorized, match="does not match"):
            signed.verify_signature(secret=SECRET, header=f"t={T},v1={_v1(BODY, T)}",
                                             body=changed, now=NOW)

    def test_signature_of_another_timestamp(self) -> None:
        with pytest.raises(Unauthorized, match="does not match"):
            signed.verify_signature(
                secret=SECRET, header=f"t={T},v1={_v1(BODY, T - 1)}", body=BODY, now=NOW)

    def test_returns_the_signed_timestamp(self) -> None:
        t = T - 42

        signed_at = signed.verify_signature(
            secret=SECRET, header=f"t={t},v1={_v1(BODY, t)}", body=BODY, now=NOW)

        assert signed_at == t

    @pytest.mark.parametrize("signer", [SECRET, "the-previous-one"])
    def test_either_secret_of_a_rotation_passes(self, signer: str) -> None:
        signed.verify_signature(secret=SECRET, previous="the-previous-one",
                                         header=f"t={T},v1={_v1(BODY, T, signer)}", body=BODY,
                                         now=NOW)

    def test_a_third_secret_fails_during_a_rotation(self) -> None:
        with pytest.raises(Unauthorized, match="does not match"):
            signed.verify_signature(
                secret=SECRET, previous="the-previous-one",
                header=f"t={T},v1={_v1(BODY, T, 'a-third')}", body=BODY, now=NOW)

    def test_one_byte_of_the_signature_changed(self) -> None:
        good = _v1(BODY, T)
        changed = good[:-1] + ("0" if good[-1] != "0" else "1")

        with pytest.raises(Unauthorized, match="does not match"):
            signed.verify_signature(secret=SECRET, header=f"t={T},v1={changed}",
                                             body=BODY, now=NOW)


class TestReplayKey:
    def test_is_what_the_signature_covers_and_fits_the_column(self) -> None:
        key = signed.replay_key(T, BODY)

        assert key == "signed:" + hashlib.sha256(f"{T}.".encode() + BODY).hexdigest()
        assert len(key) <= 200

    def test_differs_by_timestamp_and_body(self) -> None:
        keys = {signed.replay_key(T, BODY), signed.replay_key(T + 1, BODY),
                signed.replay_key(T, BODY + b" ")}

        assert len(keys) == 3


class TestParseEvent:
    def test_an_object_is_the_event(self) -> None:
        assert webhook_service.parse_event(b'{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}

    @pytest.mark.parametrize("body", [
        b"", b"  ", b"{", b"{'a': 1}", b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1e400}',
        b"\xc3\x28", b"[" * 100_000 + b"]" * 100_000,
    ])
    def test_what_is_not_json_is_malformed(self, body: bytes) -> None:
        with pytest.raises(MalformedInput):
            webhook_service.parse_event(body)

    @pytest.mark.parametrize(("body", "kind"), [
        (b"[]", "an array"), (b'"x"', "a string"), (b"1", "a number"), (b"null", "null"),
        (b"false", "a boolean"),
    ])
    def test_json_that_is_not_an_object_is_invalid(self, body: bytes, kind: str) -> None:
        with pytest.raises(InvalidInput, match=f"not {kind}"):
            webhook_service.parse_event(body)

    @pytest.mark.parametrize("body", [
        b'{"a": "x\\u0000y"}', b'{"a\\u0000": 1}', b'{"a": ["\\ud800"]}',
    ])
    def test_strings_no_database_can_store_are_invalid(self, body: bytes) -> None:
        with pytest.raises(InvalidInput):
            webhook_service.parse_event(body)


class TestContactSpec:
    def test_renders_each_field_over_the_event(self) -> None:
        spec = webhook_service.contact_spec(
            {"email": "{{ event.user.email }}", "external_id": "crm-{{ event.user.id }}"},
            {"user": {"email": " Ada@Example.com ", "id": 7}},
        )

        assert spec == {"email": "Ada@Example.com", "external_id": "crm-7"}

    def test_a_field_rendering_empty_is_left_out(self) -> None:
        spec = webhook_service.contact_spec(
            {"email": "{{ event.email | default('') }}", "phone": "{{ event.phone }}"},
            {"phone": "+14155550123"},
        )

        assert spec == {"phone": "+14155550123"}

    def test_nothing_rendered_is_invalid(self) -> None:
        with pytest.raises(InvalidInput, match="gave no value"):
            webhook_service.contact_spec({"email": "{{ event.email | default('') }}"}, {})

    @pytest.mark.parametrize("template", [
        "{{ event.missing }}", "{{ event.__class__ }}", "{{ 1 / 0 }}", "{{ event.n + 'x' }}",
    ])
    def test_a_template_that_fails_is_invalid_and_names_the_field(self, template: str) -> None:
        with pytest.raises(InvalidInput, match="contact mapping failed for email"):
            webhook_service.contact_spec({"email": template}, {"n": 1})

    def test_a_value_longer_than_the_column_is_invalid(self) -> None:
        with pytest.raises(InvalidInput, match="longer than 200"):
            webhook_service.contact_spec({"external_id": "{{ event.id }}"}, {"id": "x" * 201})


class TestReceive:
    def test_opens_a_webhook_run_for_the_mapped_contact(self, runtime, workspace) -> None:
        install(runtime, workspace.id, _definition(contact={"email": "{{ event.email }}"}))

        enrolled = _receive(runtime, _token(runtime, workspace.id))

        with session_scope(runtime.sessions) as session:
            run = session.get(WorkflowRun, enrolled.run.id)
            assert run is not None
            contact = session.get(Contact, run.contact_id)
            assert contact is not None
            assert contact.email == "ada@example.com"
            assert run.trigger_type == "webhook"
            assert run.trigger_payload == {"kind": "order", "email": "Ada@Example.com"}

    def test_phone_is_read_in_the_region_given(self, runtime, workspace) -> None:
        install(runtime, workspace.id, _definition(contact={"phone": "{{ event.tel }}"}))

        enrolled = _receive(runtime, _token(runtime, workspace.id),
                            body=b'{"tel": "(415) 555-0123"}', phone_region="US")

        with session_scope(runtime.sessions) as session:
            contact = session.get(Contact, enrolled.run.contact_id)
            assert contact is not None
            assert contact.phone == "+14155550123"

    def test_national_phone_without_a_region_is_invalid(self, runtime, workspace) -> None:
        install(runtime, workspace.id, _definition(contact={"phone": "{{ event.tel }}"}))

        with pytest.raises(InvalidInput, match="invalid contact"):
            _receive(runtime, _token(runtime, workspace.id), body=b'{"tel": "(415) 555-0123"}')
        assert _count(runtime, Contact) == 0

    @pytest.mark.parametrize("token", ["nope", "a\x00b", "x" * 65, "../etc"])
    def test_unknown_or_impossible_token_is_not_found(self, runtime, workspace,
                                                      token: str) -> None:
        install(runtime, workspace.id, _definition())

        with pytest.raises(NotFound):
            _receive(runtime, token)

    def test_inactive_workflow_is_a_conflict(self, runtime, workspace) -> None:
        install(runtime, workspace.id, _definition(), activate=False)

        with pytest.raises(Conflict):
            _receive(runtime, _token(runtime, workspace.id))

    def test_unsigned_request_to_a_signed_webhook_opens_no_run(self, runtime, workspace) -> None:
        set_secret(runtime, workspace.id, "HOOK", SECRET)
        install(runtime, workspace.id, _definition(signing_secret="HOOK",
                                                   contact={"email": "{{ event.email }}"}))

        with pytest.raises(Unauthorized, match="missing"):
            _receive(runtime, _token(runtime, workspace.id))
        assert _count(runtime, WorkflowRun) == 0
        assert _count(runtime, Contact) == 0

    def test_signed_request_opens_a_run(self, runtime, workspace) -> None:
        set_secret(runtime, workspace.id, "HOOK", SECRET)
        install(runtime, workspace.id, _definition(signing_secret="HOOK"))

        enrolled = _receive(runtime, _token(runtime, workspace.id),
                            signature=f"t={T},v1={_v1(BODY, T)}")

        assert enrolled.duplicate is False

    def test_the_same_signed_request_twice_is_a_duplicate_of_one_run(
        self, runtime, workspace
    ) -> None:
        set_secret(runtime, workspace.id, "HOOK", SECRET)
        install(runtime, workspace.id, _definition(signing_secret="HOOK"))
        token = _token(runtime, workspace.id)

        first = _receive(runtime, token, signature=f"t={T},v1={_v1(BODY, T)}")
        again = _receive(runtime, token, signature=f"t={T},v1={_v1(BODY, T)}")

        assert (first.duplicate, again.duplicate) == (False, True)
        assert again.run.id == first.run.id
        assert first.run.idempotency_key == signed.replay_key(T, BODY)
        assert _count(runtime, WorkflowRun) == 1

    def test_a_replay_under_another_idempotency_key_is_a_conflict(
        self, runtime, workspace
    ) -> None:
        set_secret(runtime, workspace.id, "HOOK", SECRET)
        install(runtime, workspace.id, _definition(signing_secret="HOOK"))
        token = _token(runtime, workspace.id)
        _receive(runtime, token, signature=f"t={T},v1={_v1(BODY, T)}", idempotency_key="a")

        with pytest.raises(Conflict, match="already received"):
            _receive(runtime, token, signature=f"t={T},v1={_v1(BODY, T)}", idempotency_key="b")
        assert _count(runtime, WorkflowRun) == 1

    def test_missing_signing_secret_refuses_and_warns_without_the_value(
        self, runtime, workspace, caplog: pytest.LogCaptureFixture
    ) -> None:
        install(runtime, workspace.id, _definition(signing_secret="NEVER_SET"))

        with caplog.at_level(logging.WARNING, logger="relayflow"), \
                pytest.raises(Unauthorized, match="signing secret"):
            _receive(runtime, _token(runtime, workspace.id), signature=f"t={T},v1={_v1(BODY, T)}")

        assert "NEVER_SET" in caplog.text
        assert _count(runtime, WorkflowRun) == 0

    def test_same_idempotency_key_counts_a_duplicate(self, runtime, workspace) -> None:
        install(runtime, workspace.id, _definition())
        token = _token(runtime, workspace.id)

        first = _receive(runtime, token, idempotency_key="evt-1")
        again = _receive(runtime, token, idempotency_key="evt-1")

        assert again.duplicate is True
        assert again.run.id == first.run.id
        with session_scope(runtime.sessions) as session:
            run = session.get(WorkflowRun, first.run.id)
            assert run is not None
            assert run.duplicates_ignored == 1

    @pytest.mark.parametrize("key", ["", "k" * 201, "a\x00b"])
    def test_unusable_idempotency_key_is_invalid(self, runtime, workspace, key: str) -> None:
        install(runtime, workspace.id, _definition())

        with pytest.raises(InvalidInput, match="Idempotency-Key"):
            _receive(runtime, _token(runtime, workspace.id), idempotency_key=key)


class TestRotateToken:
    def test_replaces_the_token_and_audits_it(self, runtime, workspace) -> None:
        install(runtime, workspace.id, _definition())
        old = _token(runtime, workspace.id)

        with session_scope(runtime.sessions) as session:
            webhook_service.rotate_token(session, workspace_id=workspace.id, key="inbound",
                                         actor="key:rf_test", now=NOW)

        new = _token(runtime, workspace.id)
        assert new != old
        with pytest.raises(NotFound):
            _receive(runtime, old)
        with session_scope(runtime.sessions) as session:
            [event] = session.scalars(select(AuditEvent).where(
                AuditEvent.action == "workflow.webhook_rotate"))
            assert (event.actor, event.target_id, event.at) == ("key:rf_test", "inbound", NOW)

    def test_a_workflow_without_a_webhook_is_a_conflict(self, runtime, workspace) -> None:
        install(runtime, workspace.id, {**_definition(), "trigger": {"type": "manual"}})

        with session_scope(runtime.sessions) as session, pytest.raises(Conflict):
            webhook_service.rotate_token(session, workspace_id=workspace.id, key="inbound",
                                         actor="test", now=NOW)


class TestUrlOf:
    def test_joins_the_base_url_and_the_token(self) -> None:
        workflow = Workflow(trigger_type="webhook", webhook_token="tok")

        url = webhook_service.url_of(workflow, base_url="https://relay.example.com/")

        assert url == "https://relay.example.com/hooks/tok"

    def test_none_for_a_workflow_without_a_webhook(self) -> None:
        workflow = Workflow(trigger_type="manual", webhook_token="tok")

        assert webhook_service.url_of(workflow, base_url="http://x") is None


class TestBaseUrlOf:
    def test_public_url_wins_without_its_trailing_slash(self) -> None:
        settings = Settings(public_url="https://relay.example.com/", host="0.0.0.0", port=9000)

        assert base_url_of(settings) == "https://relay.example.com"

    def test_host_and_port_without_a_public_url(self) -> None:
        settings = Settings(public_url=None, host="10.0.0.5", port=9000)

        assert base_url_of(settings) == "http://10.0.0.5:9000"

    def test_ipv6_host_is_bracketed(self) -> None:
        settings = Settings(public_url=None, host="::1", port=8000)

        assert base_url_of(settings) == "http://[::1]:8000"

    def test_runtime_from_settings_uses_it(self, settings: Settings) -> None:
        runtime = Runtime.from_settings(
            settings.model_copy(update={"public_url": "https://relay.example.com"}))
        try:
            assert runtime.base_url == "https://relay.example.com"
        finally:
            runtime.dispose()
