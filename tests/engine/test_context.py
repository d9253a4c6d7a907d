from __future__ import annotations

from tests.engine.builders import make_ctx


class TestVariables:
    def test_exposes_run_event_steps_and_contact_but_never_secrets(self) -> None:
        ctx = make_ctx(event={"e": 1}, steps={"s": {"o": 2}}, secrets={"TOKEN": "t0p"})

        variables = ctx.variables()

        assert set(variables) == {"run", "event", "steps", "contact"}
        assert variables["event"] == {"e": 1}
        assert variables["steps"] == {"s": {"o": 2}}
        assert "t0p" not in repr(variables)

    def test_contact_is_absent_for_an_event_run(self) -> None:
        assert "contact" not in make_ctx(contact=None).variables()


class TestRequestVariables:
    def test_real_gives_the_secret_values(self) -> None:
        ctx = make_ctx(secrets={"TOKEN": "t0p"})

        assert ctx.request_variables(real=True)["secrets"]["TOKEN"] == "t0p"

    def test_stored_gives_markers_for_any_name(self) -> None:
        ctx = make_ctx(secrets={"TOKEN": "t0p"})

        markers = ctx.request_variables(real=False)["secrets"]

        assert markers["TOKEN"] == "[secret:TOKEN]"
        assert markers["OTHER"] == "[secret:OTHER]"
