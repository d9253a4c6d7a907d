"""The routes registered on the app, for tests that must cover every one of them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient


def api_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every route under /api/v1, through included routers
    (which FastAPI keeps nested rather than copying into `app.routes`)."""
    found = set()
    for route in iter_route_contexts(app.routes):
        path = route.path_format  # `{email}` for `{email:path}`, as the OpenAPI document has it
        if not path or not path.startswith("/api/v1/"):
            continue
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, path))
    assert found, "no /api/v1 routes found: has FastAPI changed how it keeps them?"
    return found


def visible_state(client: TestClient) -> dict[str, Any]:
    """Everything an admin of one workspace can read, minus the keys' last use (reading
    touches it): equal before and after a request that must change nothing."""
    keys = [{k: v for k, v in key.items() if k != "last_used_at"}
            for key in client.get("/api/v1/keys").json()["items"]]
    workflows = client.get("/api/v1/workflows").json()
    return {
        "workflows": workflows,
        "versions": [client.get(f"/api/v1/workflows/{w['key']}").json()["versions"]
                     for w in workflows["items"]],
        "runs": client.get("/api/v1/runs", params={"limit": 200}).json(),
        "contacts": client.get("/api/v1/contacts", params={"limit": 200}).json(),
        "secrets": client.get("/api/v1/secrets").json(),
        "members": client.get("/api/v1/members").json(),
        "audit": client.get("/api/v1/audit", params={"limit": 200}).json(),
        "keys": keys,
        "providers": client.get("/api/v1/providers").json(),
        "network": client.get("/api/v1/settings/network").json(),
        "deliveries": client.get("/api/v1/deliveries", params={"limit": 200}).json(),
        "bulk_operations": client.get("/api/v1/bulk-operations").json(),
    }
