from __future__ import annotations

from relayflow.engine.outcome import Fail, Finish
from relayflow.engine.stepper import step
from tests.engine.builders import graph_of, make_ctx

GRAPH = graph_of({
    "done": {"type": "END"},
    "stop": {"type": "STOP_ERROR", "message": "plan {{ contact.plan }} is not supported"},
    "bare_stop": {"type": "STOP_ERROR"},
    "broken_stop": {"type": "STOP_ERROR", "message": "{{ steps.lookup.error }}"},
})


class TestStep:
    def test_end_finishes(self) -> None:
        assert step(GRAPH, "done", make_ctx()) == Finish()

    def test_stop_error_fails_with_the_rendered_message(self) -> None:
        outcome = step(GRAPH, "stop", make_ctx())

        assert outcome == Fail(reason="plan pro is not supported", error_class="StopError",
                               output={"message": "plan pro is not supported"})

    def test_stop_error_without_message_says_stopped(self) -> None:
        assert step(GRAPH, "bare_stop", make_ctx()) == Fail(
            reason="stopped", error_class="StopError", output={"message": "stopped"})

    def test_stop_error_with_missing_variable_fails_with_the_error(self) -> None:
        outcome = step(GRAPH, "broken_stop", make_ctx())

        assert isinstance(outcome, Fail)
        assert outcome.reason == ("UndefinedError: message: 'dict object' has no attribute "
                                  "'lookup' in {{ steps.lookup.error }}")
