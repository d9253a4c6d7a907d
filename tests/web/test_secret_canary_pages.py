"""Secret canaries on the web surfaces: after the canary scenario (see
tests/services/test_secret_canary.py), no form of any canary appears in any JSON API
response (every GET of the OpenAPI document, lists and details) nor in any page, including
an operator's resend whose provider answer quotes the credential back."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from relayflow.services import resend as resend_service
from tests.services.test_secret_canary import (
    EMAIL,
    Search,
    check_the_echoes_were_redacted,
    check_the_secrets_went_out,
    run_scenario,
    search_database,
)
from tests.services.test_secret_canary import _report as report

# The GETs that also take a workflow's key (a required query parameter): each is called
# for every workflow.
FOR_EACH_WORKFLOW = {"/api/v1/contacts/{contact_id}/explain"}


def _api_paths(app: FastAPI, ids: dict[str, list[str]]) -> list[str]:
    """Every GET of the API, its path parameters filled with every id we know of."""
    paths = []
    for template, operations in app.openapi()["paths"].items():
        if "get" not in operations or not template.startswith("/api/"):
            continue
        params = re.findall(r"{(\w+)}", template)
        if not params:
            paths.append(template)
            continue
        [param] = params
        assert param in ids, f"no ids to fill {template}"
        filled = [template.replace(f"{{{param}}}", value) for value in ids[param]]
        if template in FOR_EACH_WORKFLOW:
            filled = [f"{path}?workflow={key}" for path in filled for key in ids["key"]]
        paths += filled
    return paths


def _ids(client: TestClient) -> dict[str, list[str]]:
    runs = [r["id"] for r in client.get("/api/v1/runs?limit=100").json()["items"]]
    deliveries = [d["id"] for d in client.get("/api/v1/deliveries?limit=100").json()["items"]]
    workflows = [w["key"] for w in client.get("/api/v1/workflows").json()["items"]]
    contacts = [c["id"] for c in client.get(f"/api/v1/contacts?email={EMAIL}").json()["items"]]
    operations = [o["id"] for o in client.get("/api/v1/bulk-operations").json()["items"]]
    return {"run_id": runs, "delivery_id": deliveries, "key": workflows,
            "contact_id": contacts, "channel": ["email", "sms"], "operation_id": operations}


def _pages(ids: dict[str, list[str]]) -> list[str]:
    pages = ["/runs", "/runs?status=FAILED", "/delivery-ops", "/delivery-ops?status=FAILED",
             "/runs.csv?range=custom", "/delivery-ops.csv?range=all",
             "/settings/secrets", "/settings/providers", "/settings/audit", "/settings",
             "/workflows", "/contacts"]
    pages += [f"/runs/{r}" for r in ids["run_id"]] + [f"/runs/{r}/row" for r in ids["run_id"]]
    pages += [f"/delivery-ops/{d}" for d in ids["delivery_id"]]
    pages += [f"/workflows/{k}" for k in ids["key"]]
    pages += [f"/contacts/{c}" for c in ids["contact_id"]]
    pages += ["/failures", "/failures?kind=delivery", "/bulk-operations",
              "/bulk-operations/new?action=retry&range=24h"]
    pages += [f"/bulk-operations/{o}" for o in ids["operation_id"]]
    return pages


def _resend_failed_text(client: TestClient, runtime: Any) -> None:
    """An operator resends the refused text; the provider refuses again, quoting the token."""
    failed = client.get("/api/v1/deliveries?status=FAILED&channel=sms").json()["items"]
    assert failed
    answer = client.post(f"/api/v1/deliveries/{failed[0]['id']}/resend",
                         json={"reason": "canary check"})
    assert answer.status_code == 202, answer.text
    assert resend_service.send_queued(runtime) == 1


def test_no_form_of_any_canary_in_api_responses_or_pages(app, client, page_client, runtime,
                                                         workspace, http_server,
                                                         tmp_path) -> None:
    scenario = run_scenario(runtime, workspace.id, http_server, tmp_path)
    check_the_secrets_went_out(runtime, scenario, http_server)
    _resend_failed_text(client, runtime)
    # A bulk retry of every run: its dry run shows runs' errors, and so may its page.
    search = Search()
    for dry_run in (True, False):
        made = client.post("/api/v1/bulk-operations", json={
            "action": "retry", "filter": {"range": "24h"}, "dry_run": dry_run, "rate": 0.001})
        assert made.status_code in (200, 202), made.text
        search.look(f"POST /api/v1/bulk-operations dry_run={dry_run}", made.text)

    ids = _ids(client)
    assert len(ids["run_id"]) == len(scenario.runs)
    assert len(ids["delivery_id"]) >= 5
    assert len(ids["operation_id"]) == 1
    api_paths = _api_paths(app, ids)
    for path in api_paths:
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[:200])
        search.look(f"GET {path}", response.text)
    pages = _pages(ids)
    for path in pages:
        response = page_client.get(path)
        assert response.status_code == 200, (path, response.text[:200])
        assert "<html" in response.text or path.endswith("/row") or ".csv?" in path, path
        search.look(f"page {path}", response.text)
    markers = "\n".join(page_client.get(f"/runs/{r}").text for r in ids["run_id"])
    assert "[secret:" in markers  # the pages show the redacted echoes, not nothing
    search_database(runtime, search)  # the resend wrote too

    report(search, f"{len(api_paths)} API responses, {len(pages)} pages and the database")
    assert search.found == []
    assert len(api_paths) >= 30
    check_the_echoes_were_redacted(runtime, scenario)
