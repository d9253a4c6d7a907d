"""A burst of parallel API requests against a live server: every one answered, promptly.

Without the request bound (web/concurrency.py) a burst larger than the connection pool
deadlocks the thread pool until the pool's 30 s timeout turns requests into 500s.
"""

from __future__ import annotations

import threading
import time

import httpx

from tests.web.api.definitions import create


def test_sixty_parallel_triggers_all_succeed(client, live_url, workspace):
    create(client, {"key": "burst", "trigger": {"type": "manual"}, "start": "done",
                    "nodes": {"done": {"type": "END"}}})
    barrier = threading.Barrier(60)
    answers: list[int] = []
    lock = threading.Lock()

    def fire(i: int) -> None:
        with httpx.Client(base_url=live_url, headers=workspace.headers, timeout=60) as http:
            barrier.wait()
            response = http.post("/api/v1/workflows/burst/runs",
                                 json={"contact": {"email": f"burst{i}@example.com"}})
            with lock:
                answers.append(response.status_code)

    started = time.monotonic()
    threads = [threading.Thread(target=fire, args=(i,)) for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    elapsed = time.monotonic() - started
    assert answers.count(202) == 60, answers
    assert elapsed < 25  # the pool timeout is 30 s: a deadlock would show up as ≥ 30 s
