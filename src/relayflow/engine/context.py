"""What a node sees while it runs: the run, the contact, the event, earlier output bags, now."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class _SecretMarkers(dict[str, str]):
    """Stands in for `secrets` when rendering the stored copy of a request."""

    def __missing__(self, name: str) -> str:
        return f"[secret:{name}]"


@dataclass(slots=True, kw_only=True)
class StepContext:
    """Mutable per-run state the step function reads; the services layer owns it."""

    run: Mapping[str, Any]
    event: Mapping[str, Any]
    contact: dict[str, Any] | None
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    now: datetime
    secrets: Mapping[str, str] = field(default_factory=dict)
    # Signed one-click unsubscribe links of this run's contact, per channel.
    unsubscribe_urls: Mapping[str, str] = field(default_factory=dict)

    def variables(self) -> dict[str, Any]:
        """Template variables; `secrets` is deliberately absent (see request_variables)."""
        out: dict[str, Any] = {"run": self.run, "event": self.event, "steps": self.steps}
        if self.contact is not None:
            out["contact"] = self.contact
        return out

    def request_variables(self, *, real: bool) -> dict[str, Any]:
        """Variables for an INTEGRATION request: real secrets, or markers for the stored copy."""
        out = self.variables()
        out["secrets"] = self.secrets if real else _SecretMarkers()
        return out
