"""Loading a workspace's secrets on first use is not charged to the template asking for them.

The render budget is CPU time of the template's own work; the first `{{ secrets.X }}` of a
run reads and decrypts the secrets, which on a loaded machine alone can take longer than
the whole budget (seen failing an INTEGRATION step that only said `Bearer {{ ... }}`)."""

from __future__ import annotations

import pytest

from relayflow.engine import limits, templates
from relayflow.engine.limits import TemplateTooSlow
from relayflow.services.runtime import SecretCipher
from relayflow.services.secret import WorkspaceSecrets
from tests.conftest import TEST_SECRET_KEY
from tests.support.flows import set_secret


class SlowCipher(SecretCipher):
    """Decrypts for real, and moves the render clock on by one second each time."""

    def __init__(self, key: str, clock: dict[str, float]) -> None:
        super().__init__(key)
        self.clock = clock

    def decrypt(self, token: str) -> str:
        self.clock["now"] += 1.0
        return super().decrypt(token)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    state = {"now": 0.0}
    monkeypatch.setattr(limits, "clock", lambda: state["now"])
    return state


def test_a_slow_first_load_of_the_secrets_does_not_fail_the_render(
    runtime, workspace, clock: dict[str, float]
) -> None:
    set_secret(runtime, workspace.id, "CRM_TOKEN", "tok-123")
    secrets = WorkspaceSecrets(runtime.sessions, workspace.id,
                               SlowCipher(TEST_SECRET_KEY, clock))

    rendered = templates.render("Bearer {{ secrets.CRM_TOKEN }}", {"secrets": secrets})

    assert rendered == "Bearer tok-123"
    assert clock["now"] == 1.0  # the load did take "a second"


def test_the_template_own_time_is_still_capped(clock: dict[str, float]) -> None:
    class Slow(dict):  # a value whose reading is the template's own business
        def __getitem__(self, key: str) -> str:
            clock["now"] += 1.0
            return "x"

    with pytest.raises(TemplateTooSlow):
        templates.render("{{ v.a }}{{ v.b }}{% for i in range(3) %}{% endfor %}",
                         {"v": Slow()})
