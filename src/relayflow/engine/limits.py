"""Render limits of templates: a time cap and an output size cap, and their errors.

Jinja2's sandbox stops a template reaching Python internals, but not from spending the
worker's memory or CPU: `{{ 'x' * 10**9 }}` builds a gigabyte, `{{ 2 ** 10**10 }}` never
returns and two nested `range(100000)` loops run for minutes. So every render gets

- MAX_OUTPUT_CHARS: the output is collected chunk by chunk from `Template.generate()` and
  the render stops as soon as it grows past the cap (`collect`); macro, block and
  `{% set %}` bodies are buffered in a list that refuses to grow past it (engine.sandbox).
  No single value a template builds with an operator, a call or an amplifying filter may
  be larger either; engine.guards checks each from its operands *before* it is built.
- MAX_RENDER_SECONDS: a deadline checked between output chunks, on every loop iteration,
  call, attribute or item lookup and intercepted operator. Nothing runs long between two
  checks because the size guards keep every single operation small.

Both raise a TemplateLimitExceeded that names the cap and, when the caller said which,
the field being rendered; the stepper turns it into the step's Fail like any template
error, so the run fails and the worker carries on.

About the clock: the engine never reads the clock for *domain* time (`now` comes in the
StepContext). A CPU budget is different: it only decides when to give up, never what a
run does, and it must be read deep inside rendering, where no context reaches. So it is
read through the module-level `clock`, which tests replace. It is the CPU time of the
rendering thread (time.thread_time), not wall time: a busy machine that leaves the worker
waiting for a core must not fail a run whose template is cheap, and only the template's
own work can exhaust its budget. A garbage collection is not the template's work either,
though it runs in whichever thread allocated last and a full one over a large heap can
take longer than a whole budget: the time of every collection that runs during a render is
given back to that render (`_collected`, registered in `gc.callbacks`).

Reading a thread's CPU clock is a system call (ten times the wall clock's cost, and far
more on a loaded machine), while a run renders dozens of templates and each checks its
deadline hundreds of times. Two facts avoid nearly every read. A thread cannot have used
more CPU than wall time has passed, so while the wall clock is short of the budget (plus
whatever was given back) the CPU clock need not be read at all (`_Budget.gate`). And a
render may start from the thread's last reading if it is under 5 ms old (`_start`): the CPU
time now is then taken as that reading plus all the wall time since, never less than the
truth, so the budget is never shorter than its due and at most 5 ms longer. (A system call
made while holding the GIL is also a point where the thread can be preempted with the GIL
held, stopping every other thread of the process.)
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from jinja2.exceptions import TemplateRuntimeError

MAX_OUTPUT_CHARS = 64 * 1024
"""Cap on one rendered template string, and on any single value built while rendering it."""
MAX_RENDER_SECONDS = 0.100
"""Cap on the CPU time one template string may take to render."""
MAX_INT_BITS = 1 << 16
"""Cap on the size of an integer built with `*` or `**` (about 19,700 digits)."""

_CPU = time.thread_time
clock: Callable[[], float] = _CPU
"""The CPU-time clock the render deadline is read from; see the module docstring."""

_KIB = MAX_OUTPUT_CHARS // 1024
_MS = round(MAX_RENDER_SECONDS * 1000)


class TemplateLimitExceeded(TemplateRuntimeError):
    """A template went over one of its render limits."""


class TemplateTooSlow(TemplateLimitExceeded):
    """The template took longer than MAX_RENDER_SECONDS to render."""


class TemplateTooLarge(TemplateLimitExceeded):
    """The template's output, or a value it builds, is larger than MAX_OUTPUT_CHARS."""


_wall: Callable[[], float] = time.perf_counter
_STALE_SECONDS = 0.005
_last_reading = threading.local()  # (wall clock, thread CPU clock) of the thread's last read


def _start() -> tuple[float, float]:
    """(CPU time a render's budget counts from, wall time it starts at). A test's injected
    clock is read every time, and never gated."""
    if clock is not _CPU:
        return clock(), 0.0
    now = _wall()
    seen: tuple[float, float] | None = getattr(_last_reading, "seen", None)
    if seen is None or now - seen[0] > _STALE_SECONDS:
        seen = (now, _CPU())
        _last_reading.seen = seen
    # The CPU clock cannot have advanced more than the wall clock since the reading.
    return seen[1] + (now - seen[0]), now


class _Budget:
    __slots__ = ("collecting_since", "deadline", "field", "gate")

    def __init__(self, field: str | None) -> None:
        cpu, wall = _start()
        self.field = field
        self.deadline = cpu + MAX_RENDER_SECONDS
        # Before this wall-clock time the CPU deadline cannot have passed (the CPU clock
        # cannot advance more than the wall clock from `wall`, when it was at most `cpu`).
        self.gate = wall + MAX_RENDER_SECONDS if wall else 0.0
        self.collecting_since: float | None = None

    def give_back(self, seconds: float) -> None:
        self.deadline += seconds
        self.gate += seconds


_budget: ContextVar[_Budget | None] = ContextVar("relayflow_template_budget", default=None)


@contextmanager
def budget(field: str | None) -> Iterator[None]:
    """Start the time budget of one render; `field` names what is rendered in errors."""
    token = _budget.set(_Budget(field))
    try:
        yield
    finally:
        _budget.reset(token)


@contextmanager
def unmetered() -> Iterator[None]:
    """Work inside is not charged to the current render's budget: the host loading what a
    template asked for (a workspace's secrets from the database, on first use) is not the
    template's own computation."""
    current = _budget.get()
    started = clock()
    try:
        yield
    finally:
        if current is not None:
            current.give_back(clock() - started)


def _collected(phase: str, _info: dict[str, int]) -> None:
    """gc.callbacks hook: a collection's time is not charged to the render it interrupts.
    Called in the collecting thread, so the budget found is that thread's own render. It
    reads the real thread CPU clock, not `clock`: a collection's cost is real whatever clock
    a test injects, and reading an injected clock here would use up the reads it scripts."""
    current = _budget.get()
    if current is None:
        return
    if phase == "start":
        current.collecting_since = time.thread_time()
    elif current.collecting_since is not None:
        current.give_back(time.thread_time() - current.collecting_since)
        current.collecting_since = None


gc.callbacks.append(_collected)


def where(message: str) -> str:
    current = _budget.get()
    if current is None or not current.field:
        return message
    return f"{message} while rendering {current.field!r}"


def check_deadline() -> None:
    current = _budget.get()
    if current is None or _wall() < current.gate:
        return
    if clock() > current.deadline:
        raise TemplateTooSlow(where(f"template took longer than {_MS} ms"))


def too_large(what: str = "output") -> TemplateTooLarge:
    return TemplateTooLarge(where(
        f"template {what} is larger than {_KIB} KiB ({MAX_OUTPUT_CHARS} characters)"))


def collect(chunks: Iterable[str]) -> str:
    """Join rendered chunks, stopping as soon as they pass the output cap or the deadline."""
    parts: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise too_large()
        check_deadline()
        parts.append(chunk)
    return "".join(parts)


def guarded(iterable: Iterable[object]) -> Iterator[object]:
    """Iterate with a deadline check per item (every `{% for %}` loop goes through this)."""
    for item in iterable:
        check_deadline()
        yield item
