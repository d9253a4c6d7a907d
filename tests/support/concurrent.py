"""Sending many signed requests over real HTTP, one after the other or all at once."""

from __future__ import annotations

import threading

import httpx

SIGNATURE_HEADER = "Relayflow-Signature"


def send_signed(http: httpx.Client, url: str, requests: list[tuple[bytes, str]], *,
                together: bool) -> list[httpx.Response]:
    """POST each (body, signature); `together`: each on its own thread, released at once by
    a barrier so the server sees them race. Any request that raised fails the caller."""
    barrier = threading.Barrier(len(requests)) if together else None
    answers: list[httpx.Response | BaseException] = [RuntimeError("not sent")] * len(requests)

    def send(i: int) -> None:
        body, sig = requests[i]
        if barrier is not None:
            barrier.wait()
        try:
            answers[i] = http.post(url, content=body, headers={
                SIGNATURE_HEADER: sig, "Content-Type": "application/json"})
        except BaseException as exc:
            answers[i] = exc

    if together:
        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    else:
        for i in range(len(requests)):
            send(i)
    failures = [a for a in answers if not isinstance(a, httpx.Response)]
    assert not failures, failures[:3]
    return [a for a in answers if isinstance(a, httpx.Response)]
