"""GET /api/v1/runs paging: the keyset cursor never skips or repeats a run, however many
runs arrive between pages, and wherever they fall in the order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from relayflow.services.runtime import Runtime
from tests.web.api.definitions import create, straight, trigger
from tests.web.api.history import freeze

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
# Minutes before T0 of the runs that exist before paging starts; repeats share a created_at,
# so the id has to break the tie.
EXISTING = [10, 10, 10, 9, 8, 8, 8, 8, 5, 5, 1, 1]


def _at(runtime: Runtime, client: TestClient, moment: datetime) -> str:
    freeze(runtime, moment)
    return trigger(client, "onboarding")


def _key(item: dict[str, Any]) -> tuple[datetime, uuid.UUID]:
    return datetime.fromisoformat(item["created_at"].replace("Z", "+00:00")), uuid.UUID(item["id"])


def _page(client: TestClient, cursor: str | None, **params: Any) -> dict[str, Any]:
    query: dict[str, Any] = {"limit": 3, **params}
    if cursor:
        query["cursor"] = cursor
    response = client.get("/api/v1/runs", params=query)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class TestListRunsPagingWhileInserting:
    def test_no_run_is_skipped_or_repeated(self, client: TestClient, runtime: Runtime) -> None:
        freeze(runtime, T0 - timedelta(hours=2))
        create(client, straight())
        existing = [_at(runtime, client, T0 - timedelta(minutes=m)) for m in EXISTING]
        newer, ties, older = [], [], []
        seen: list[dict[str, Any]] = []
        cursor = None

        for step in range(20):
            page = _page(client, cursor)
            seen += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            # Between pages: one run newer than all, one at exactly the cursor's created_at
            # (a later id, so ahead of the cursor), one older than all (behind the cursor).
            newer.append(_at(runtime, client, T0 + timedelta(minutes=step + 1)))
            ties.append(_at(runtime, client, _key(page["items"][-1])[0]))
            older.append(_at(runtime, client, T0 - timedelta(hours=1, minutes=step)))

        ids = [i["id"] for i in seen]
        assert len(ids) == len(set(ids)), "a run was repeated"
        assert set(existing) <= set(ids), "a run that existed before paging was skipped"
        assert not set(newer + ties) & set(ids), "a run ahead of the cursor showed up"
        assert set(older) <= set(ids), "a run behind the cursor was skipped"
        keys = [_key(i) for i in seen]
        assert keys == sorted(keys, reverse=True)
        assert len(set(keys)) == len(keys)

    def test_ties_on_created_at_are_split_across_pages_by_id(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        freeze(runtime, T0)
        create(client, straight())
        same_moment = [trigger(client, "onboarding") for _ in range(7)]

        first = _page(client, None)
        second = _page(client, first["next_cursor"])
        third = _page(client, second["next_cursor"])

        walked = [i["id"] for p in (first, second, third) for i in p["items"]]
        assert walked == sorted(same_moment, key=uuid.UUID, reverse=True)
        assert third["next_cursor"] is None

    def test_filtered_paging_survives_inserts_too(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        freeze(runtime, T0 - timedelta(hours=2))
        create(client, straight())
        create(client, straight("other"))
        existing = [_at(runtime, client, T0 - timedelta(minutes=m)) for m in EXISTING]
        seen: list[str] = []
        cursor = None

        for step in range(20):
            page = _page(client, cursor, workflow="onboarding", status="PENDING")
            seen += [i["id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            freeze(runtime, T0 + timedelta(minutes=step))
            trigger(client, "onboarding")
            trigger(client, "other")

        newest_first = sorted(zip(EXISTING, existing, strict=True),
                              key=lambda pair: (-pair[0], uuid.UUID(pair[1])), reverse=True)
        assert seen == [run_id for _, run_id in newest_first]
