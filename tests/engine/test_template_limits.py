"""The render caps: output size (64 KiB) and time (100 ms) per template string."""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from relayflow.engine import limits, templates
from relayflow.engine.outcome import Advance, Fail, Perform
from relayflow.engine.stepper import step
from relayflow.engine.templates import (
    MAX_OUTPUT_CHARS,
    MAX_RENDER_SECONDS,
    TemplateTooLarge,
    TemplateTooSlow,
)
from tests.engine.builders import graph_of, make_ctx

BIG = "{{ 'x' * 10**9 }}"
GIB_ATTEMPTS = [
    "{{ 'x' * 10**9 }}",
    "{{ 10**9 * 'x' }}",
    "{{ [0] * 10**9 }}",
    "{{ ('ab',) * (10**9 // 2) }}",
    "{{ ['x' * 65536] * 16384 }}",
    "{{ '%01000000000d' % 1 }}",
    "{{ '%.1000000000f' % 1.5 }}",
    "{{ '%*d' % (10**9, 1) }}",
    "{{ '%01000000000d'|format(1) }}",
    "{{ '{:>1000000000}'.format(1) }}",
    "{{ '{:{w}}'.format(1, w=10**9) }}",
    "{{ '{:.1000000000f}'.format(1.5) }}",
    "{{ '{0}{0}{0}{0}{0}{0}'.format('x' * 60000) }}",
    "{{ '{x}{x}{x}'.format_map({'x': 'y' * 60000}) }}",
    "{{ 'x'|center(10**9) }}",
    "{{ 'x'|center(1000000000) }}",
    "{{ 'x'.ljust(10**9) }}",
    "{{ 'x'.rjust(10**9) }}",
    "{{ '1'.zfill(10**9) }}",
    "{{ '\t'.expandtabs(10**9) }}",
    "{{ ('a' * 60000).translate({97: 'b' * 60000}) }}",
    "{{ ('x' * 1000)|replace('x', 'y' * 1000000) }}",
    "{{ ('x' * 1000).replace('x', 'y' * 60000) }}",
    "{{ range(100000)|join('x' * 10000) }}",
    "{{ ('x' * 10000).join(range(100000)|map('string')) }}",
    "{{ 'x'|indent(10**9) }}",
    "{{ ('x\n' * 30000)|indent(40000) }}",
    "{{ ('x' * 60000)|wordwrap(1, wrapstring='y' * 60000) }}",
    "{{ [1]|batch(10**9, 'x')|list }}",
    "{{ [1]|slice(10**9, 'x')|list }}",
    "{{ range(100000)|list|tojson(indent=10000) }}",
    "{{ dict.fromkeys(range(100000), 'x' * 60000) }}",
    "{{ (1).to_bytes(10**9, 'big') }}",
    "{{ ('x' * 40000) ~ ('y' * 40000) }}",
    "{{ ('x' * 40000) + ('y' * 40000) }}",
    "{{ [('x' * 40000)] + [('y' * 40000)] }}",
    "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s }}",
    "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
    "{% endfor %}{{ ns.s }}",
    "{% set ns = namespace(s=['x']) %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
    "{% endfor %}{{ ns.s }}",
    "{% macro m() %}{% for i in range(100000) %}{{ 'x' * 10000 }}{% endfor %}{% endmacro %}"
    "{{ m() }}",
    "{% set big %}{% for i in range(100000) %}{{ 'x' * 10000 }}{% endfor %}{% endset %}"
    "{{ big }}",
    "{% filter upper %}{% for i in range(100000) %}{{ 'x' * 10000 }}{% endfor %}{% endfilter %}",
    "{% for i in range(100000) %}{{ 'x' * 10000 }}{% endfor %}",
]


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Replace the render clock; returns a setter for the seconds every later read adds."""
    state = {"now": 0.0, "step": 0.0}

    def clock() -> float:
        state["now"] += state["step"]
        return state["now"]

    def advance_per_read(seconds: float) -> None:
        state["step"] = seconds

    monkeypatch.setattr(limits, "clock", clock)
    return advance_per_read


def _after_first_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clock whose first read starts the budget and whose next read is past the deadline."""
    reads = iter([0.0])

    def clock() -> float:
        return next(reads, 1.0)

    monkeypatch.setattr(limits, "clock", clock)


class TestOutputCap:
    def test_the_cap_is_64_kib(self) -> None:
        assert MAX_OUTPUT_CHARS == 64 * 1024

    def test_output_of_exactly_the_cap_renders(self) -> None:
        assert len(templates.render("{{ 'x' * 65536 }}", {})) == MAX_OUTPUT_CHARS

    def test_one_character_over_the_cap_is_refused(self) -> None:
        with pytest.raises(TemplateTooLarge, match=r"64 KiB \(65536 characters\)"):
            templates.render("{{ 'x' * 65536 }}!", {})

    def test_streamed_output_stops_as_soon_as_it_passes_the_cap(self) -> None:
        calls: list[int] = []

        def chunk() -> str:
            calls.append(1)
            return "x" * 1000

        with pytest.raises(TemplateTooLarge, match="output is larger than 64 KiB"):
            templates.render("{% for i in range(100000) %}{{ chunk() }}{% endfor %}",
                             {"chunk": chunk})

        assert len(calls) == MAX_OUTPUT_CHARS // 1000 + 1

    def test_a_buffered_macro_body_stops_as_soon_as_it_passes_the_cap(self) -> None:
        calls: list[int] = []

        def chunk() -> str:
            calls.append(1)
            return "x" * 1000

        source = ("{% macro m() %}{% for i in range(100000) %}{{ chunk() }}{% endfor %}"
                  "{% endmacro %}{{ m() }}")
        with pytest.raises(TemplateTooLarge):
            templates.render(source, {"chunk": chunk})

        assert len(calls) == MAX_OUTPUT_CHARS // 1000 + 1

    @pytest.mark.parametrize("source", GIB_ATTEMPTS)
    def test_a_gigabyte_attempt_fails_before_allocating_it(
        self, source: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Only the size cap is under test: tracemalloc slows allocation several times, and
        # on a loaded machine the CPU budget could stop a render first.
        monkeypatch.setattr(limits, "clock", lambda: 0.0)
        tracemalloc.start()
        try:
            with pytest.raises(TemplateTooLarge):
                templates.render(source, {})
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

        assert peak < 10 * 2**20, f"peak {peak / 2**20:.1f} MiB"

    @pytest.mark.parametrize(
        "source", ["{{ 2 ** (10**10) }}", "{{ (10**10000) * (10**10000) }}",
                   "{% set ns = namespace(n=3) %}{% for i in range(40) %}"
                   "{% set ns.n = ns.n * ns.n %}{% endfor %}{{ ns.n > 0 }}"])
    def test_a_huge_number_is_refused_before_it_is_computed(self, source: str) -> None:
        started = time.perf_counter()

        with pytest.raises(TemplateTooLarge, match="larger than 65536 bits"):
            templates.render(source, {})

        assert time.perf_counter() - started < MAX_RENDER_SECONDS

    def test_a_call_may_hand_back_large_data_it_was_given(self) -> None:
        steps = {"lookup": {"body": "x" * 100_000, "items": list(range(100_000))}}
        source = ("{{ steps.lookup.get('body')|length }} {{ steps.lookup.body.strip()|length }}"
                  " {{ steps.lookup.get('items')|length }}")

        assert templates.render(source, {"steps": steps}) == "100000 100000 100000"

    def test_lipsum_is_not_available(self) -> None:
        with pytest.raises(Exception, match="lipsum"):
            templates.render("{{ lipsum(10**6) }}", {})

    @pytest.mark.parametrize(
        ("source", "expected"),
        [
            ("{{ 'ab' * 3 }}", "ababab"),
            ("{{ 3 * 'ab' }}", "ababab"),
            ("{{ [1, 2] * 2 }}", "[1, 2, 1, 2]"),
            ("{{ 2 ** 64 }}", "18446744073709551616"),
            ("{{ 7 * 6 }}", "42"),
            ("{{ 'a' + 'b' }}|{{ [1] + [2] }}|{{ 1 + 2 }}", "ab|[1, 2]|3"),
            ("{{ '%05.1f' % 3.14159 }}|{{ '%s-%s' % ('a', 'b') }}", "003.1|a-b"),
            ("{{ '%(n)s!'|format(n='hi') }}|{{ '%d%%'|format(5) }}", "hi!|5%"),
            ("{{ '{:>5}|{:.2f}|{n}'.format('x', 2.5, n=1) }}", "    x|2.50|1"),
            ("{{ '{a}'.format_map({'a': 1}) }}", "1"),
            ("{{ 'x'|center(5) }}|{{ 'x'.ljust(3) }}|{{ '7'.zfill(3) }}", "  x  |x  |007"),
            ("{{ items|join(', ') }}|{{ ', '.join(items) }}", "a, b|a, b"),
            ("{{ 'a-b'|replace('-', '+') }}|{{ 'a-b'.replace('-', '') }}", "a+b|ab"),
            ("{{ 'a\nb'|indent(2, first=True) }}", "  a\n  b"),
            ("{{ 'aaa bbb'|wordwrap(3) }}", "aaa\nbbb"),
            ("{{ [1, 2, 3]|batch(2)|list }}|{{ [1, 2, 3]|slice(2)|list }}",
             "[[1, 2], [3]]|[[1, 2], [3]]"),
            ("{{ {'a': 1}|tojson(indent=2) }}", '{\n  "a": 1\n}'),
            ("{{ 'a' ~ 1 ~ 'b' }}", "a1b"),
            ("{{ dict.fromkeys(['a'], 0) }}", "{'a': 0}"),
            ("{% for i in items %}{{ loop.index }}{{ i }}{% if not loop.last %},{% endif %}"
             "{% else %}none{% endfor %}", "1a,2b"),
            ("{% for i in [] %}x{% else %}none{% endfor %}", "none"),
            ("{% set t %}{{ items|length }}{% endset %}{{ t }}", "2"),
            ("{% macro m(x) %}<{{ x }}>{% endmacro %}{{ m(1) }}", "<1>"),
        ],
    )
    def test_ordinary_templates_still_render(self, source: str, expected: str) -> None:
        assert templates.render(source, {"items": ["a", "b"]}) == expected


class TestTimeCap:
    def test_the_cap_is_100_ms(self) -> None:
        assert MAX_RENDER_SECONDS == 0.100

    def test_a_heavy_loop_is_stopped_at_the_deadline(self) -> None:
        source = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
        started = time.perf_counter()

        with pytest.raises(TemplateTooSlow, match="template took longer than 100 ms"):
            templates.render(source, {})

        elapsed = time.perf_counter() - started
        assert MAX_RENDER_SECONDS <= elapsed < 5 * MAX_RENDER_SECONDS

    def test_recursive_loops_are_stopped(self) -> None:
        source = ("{% for i in range(100000) recursive %}"
                  "{% if loop.depth < 3 %}{{ loop(range(100000)) }}{% endif %}{% endfor %}")

        with pytest.raises(TemplateTooSlow):
            templates.render(source, {})

    def test_the_deadline_comes_from_the_injected_clock(
            self, fake_clock: Callable[[float], None]) -> None:
        source = "{% for i in range(1000) %}{% endfor %}done"
        fake_clock(0.0)
        assert templates.render(source, {}) == "done"

        fake_clock(0.001)  # every read 1 ms later: the 101st check is past the deadline
        with pytest.raises(TemplateTooSlow):
            templates.render(source, {})

    @pytest.mark.parametrize(
        "source",
        [
            "{{ v }}",  # between output chunks
            "{% for i in [1] %}{% endfor %}",  # each loop iteration
            "{{ f() }}",  # each call
            "{{ d.k }}",  # attribute lookup
            "{{ d['k'] }}",  # item lookup
            "{{ n * 2 }}",  # intercepted operator
            "{% set s %}x{% endset %}",  # a buffered body
        ],
    )
    def test_the_deadline_is_checked_at(self, source: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
        _after_first_read(monkeypatch)

        with pytest.raises(TemplateTooSlow):
            templates.render(source, {"v": "x", "f": lambda: "", "d": {"k": 1}, "n": 1})

    def test_a_condition_expression_is_timed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        _after_first_read(monkeypatch)

        with pytest.raises(TemplateTooSlow, match="while rendering 'when'"):
            templates.evaluate("d.k == 1", {"d": {"k": 1}}, field="when")

    def test_plain_text_reads_no_clock(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def clock() -> float:
            raise AssertionError("clock read")

        monkeypatch.setattr(limits, "clock", clock)

        assert templates.render("no braces", {}) == "no braces"


class TestCpuClockReads:
    """With the real CPU clock, the clock is read only when it can matter (engine.limits)."""

    @pytest.fixture
    def clocks(self, monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
        """Scripted wall and thread CPU clocks, installed as the real ones; counts CPU reads."""
        state = {"wall": 100.0, "cpu": 10.0, "cpu_reads": 0}

        def cpu() -> float:
            state["cpu_reads"] += 1
            return state["cpu"]

        monkeypatch.setattr(limits, "_CPU", cpu)
        monkeypatch.setattr(limits, "clock", cpu)
        monkeypatch.setattr(limits, "_wall", lambda: state["wall"])
        monkeypatch.setattr(limits, "_last_reading", threading.local())
        return state

    def test_renders_within_5_ms_share_one_reading(self, clocks: dict[str, float]) -> None:
        for _ in range(50):
            assert templates.render("{% for i in range(20) %}{{ i }}{% endfor %}", {})
            clocks["wall"] += 0.0001
            clocks["cpu"] += 0.0001
        assert clocks["cpu_reads"] == 1  # 50 renders, 20 loops each, in 5 ms

        clocks["wall"] += 0.005
        templates.render("{{ 1 }}", {})
        assert clocks["cpu_reads"] == 2

    def test_a_shared_reading_never_shortens_the_budget(
            self, clocks: dict[str, float]) -> None:
        templates.render("{{ 1 }}", {})  # the reading, at CPU 10.0
        clocks["wall"] += 0.004
        clocks["cpu"] += 0.004  # busy since: the next render starts at CPU 10.004

        def burn(cpu: float) -> str:
            clocks["wall"] += 0.2
            clocks["cpu"] += cpu
            return ""

        # 99.9 ms of its own CPU: within the budget, though 103.9 ms after the reading.
        assert templates.render("{{ burn(0.0999) }}{{ 1 }}", {"burn": burn}) == "1"

    def test_a_shared_reading_lengthens_it_by_at_most_its_age(
            self, clocks: dict[str, float]) -> None:
        templates.render("{{ 1 }}", {})  # the reading, at CPU 10.0
        clocks["wall"] += 0.004  # idle since: the next render starts at CPU 10.0, taken as 10.004

        def burn() -> str:
            clocks["wall"] += 0.2
            clocks["cpu"] += 0.1041  # over 100 ms + the reading's 4 ms
            return ""

        with pytest.raises(TemplateTooSlow):
            templates.render("{{ burn() }}{{ 1 }}", {"burn": burn})

    def test_the_cpu_clock_is_not_read_before_the_budget_in_wall_time(
            self, clocks: dict[str, float]) -> None:
        ticks = {"n": 0}

        def tick() -> str:
            ticks["n"] += 1
            clocks["wall"] += 0.001
            clocks["cpu"] += 0.001
            return ""

        with pytest.raises(TemplateTooSlow):
            templates.render("{% for i in range(1000) %}{{ tick() }}{% endfor %}",
                             {"tick": tick})
        # 1 reading at the start, none for the first 100 ms of checks, then one per check
        assert 100 <= ticks["n"] <= 102
        assert clocks["cpu_reads"] <= 2 * (ticks["n"] - 99) + 1


class TestErrorsNameTheField:
    def test_render_names_the_field(self) -> None:
        with pytest.raises(TemplateTooLarge) as caught:
            templates.render("{{ 'x' * 10**9 }}", {}, field="body")

        assert str(caught.value) == (
            "template value is larger than 64 KiB (65536 characters) while rendering 'body'")

    def test_render_value_names_the_nested_path(self) -> None:
        value = {"a": "ok", "items": ["ok", {"big": "{{ 'x' * 10**9 }}"}]}

        with pytest.raises(TemplateTooLarge, match=r"'request\.body\.items\[1\]\.big'"):
            templates.render_value(value, {}, field="request.body")

    def test_without_a_field_the_message_stands_alone(self) -> None:
        with pytest.raises(TemplateTooSlow) as caught:
            templates.render("{% for i in range(100000) %}{% for j in range(100000) %}"
                             "{% endfor %}{% endfor %}", {})

        assert str(caught.value) == "template took longer than 100 ms"


def _graph(node: dict[str, Any]) -> Any:
    return graph_of({"first": node})


class TestStepFailsOnALimit:
    def test_send_message_over_the_size_cap_fails_naming_the_field(self) -> None:
        graph = _graph({"type": "SEND_MESSAGE", "channel": "email",
                        "body": "{{ 'x' * 10**9 }}", "next": "done"})

        outcome = step(graph, "first", make_ctx())

        assert isinstance(outcome, Fail)
        assert not isinstance(outcome, Perform)
        assert outcome.reason == ("TemplateTooLarge: template value is larger than 64 KiB "
                                  "(65536 characters) while rendering 'body'")

    def test_update_contact_over_the_time_cap_fails_naming_the_field(self) -> None:
        graph = _graph({"type": "UPDATE_CONTACT", "next": "done", "set": {
            "tier": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                    "{% endfor %}"}})

        outcome = step(graph, "first", make_ctx())

        assert isinstance(outcome, Fail)
        assert outcome.reason == ("TemplateTooSlow: template took longer than 100 ms "
                                  "while rendering 'set.tier'")

    @pytest.mark.parametrize(
        ("node", "field"),
        [
            ({"type": "SEND_MESSAGE", "channel": "email", "subject": BIG, "body": "b",
              "next": "done"}, "subject"),
            ({"type": "SEND_MESSAGE", "channel": "email", "body": "b", "html": BIG,
              "next": "done"}, "html"),
            ({"type": "SEND_MESSAGE", "channel": "email", "to": BIG, "body": "b",
              "next": "done"}, "to"),
            ({"type": "INTEGRATION", "request": {"url": "https://x.example/" + BIG},
              "next": "done"}, "request.url"),
            ({"type": "INTEGRATION", "request": {"url": "https://x.example/",
                                                 "headers": {"X-A": BIG}},
              "next": "done"}, "request.headers.X-A"),
            ({"type": "INTEGRATION", "request": {"url": "https://x.example/", "method": "POST",
                                                 "body": {"a": [BIG]}},
              "next": "done"}, "request.body.a[0]"),
            ({"type": "WAIT", "until": BIG, "next": "done"}, "until"),
            ({"type": "STOP_ERROR", "message": BIG}, "message"),
            ({"type": "CONDITION", "when": "('x' * 10**9)|length > 0", "then": "done",
              "else": "done"}, "when"),
        ],
    )
    def test_every_templated_field_is_capped(self, node: dict[str, Any], field: str) -> None:
        outcome = step(_graph(node), "first", make_ctx())

        assert isinstance(outcome, Fail), outcome
        assert outcome.reason == ("TemplateTooLarge: template value is larger than 64 KiB "
                                  f"(65536 characters) while rendering {field!r}")

    def test_a_node_within_the_caps_still_advances(self) -> None:
        graph = _graph({"type": "UPDATE_CONTACT", "set": {"tier": "{{ 'x' * 100 }}"},
                        "next": "done"})

        outcome = step(graph, "first", make_ctx())

        assert isinstance(outcome, Advance)
        assert outcome.output == {"set": {"tier": "x" * 100}}

