"""`relayflow serve` puts what start-up made out of the garbage collector's reach before it
serves (web/server.run): a full collection then walks only what requests made."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from relayflow.config import Settings
from relayflow.web import server


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_startup_objects_are_frozen_before_serving(monkeypatch, unfrozen):
    made_at_startup = [object() for _ in range(1000)]
    seen: dict[str, Any] = {}

    def serve(application: Any, **options: Any) -> None:
        seen["frozen"] = gc.get_freeze_count()
        seen["tracked"] = any(o is made_at_startup for o in gc.get_objects())

    monkeypatch.setattr(server.uvicorn, "run", serve)
    server.run(object(), Settings(database_url="sqlite://"))
    assert seen["frozen"] >= len(made_at_startup)
    assert not seen["tracked"], "a start-up object is still in the collected generations"
