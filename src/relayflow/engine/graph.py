"""Workflow definitions: parsing (YAML or JSON), the graph value type and loading.

`validation.load(data)` returns a WorkflowGraph or raises InvalidGraph with every problem
found; a loaded graph is immutable and safe to cache per version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import yaml

from relayflow.errors import MalformedInput

NODE_TYPES = (
    "CONDITION",
    "SPLIT",
    "WAIT",
    "SEND_MESSAGE",
    "INTEGRATION",
    "UPDATE_CONTACT",
    "TRIGGER_WORKFLOW",
    "END",
    "STOP_ERROR",
)
TRIGGER_TYPES = ("manual", "webhook", "schedule", "upstream")
TERMINAL_TYPES = frozenset({"END", "STOP_ERROR"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    id: str
    type: str
    config: Mapping[str, Any]

    def edges(self) -> list[tuple[str, str]]:
        """(edge name, target node id) pairs, in definition order."""
        cfg = self.config
        if self.type == "CONDITION":
            names = ("then", "else")
            return [(name, cfg[name]) for name in names if isinstance(cfg.get(name), str)]
        if self.type == "SPLIT":
            branches = cfg.get("branches")
            if not isinstance(branches, list):
                return []
            return [
                (f"branch {i}", b["next"])
                for i, b in enumerate(branches)
                if isinstance(b, Mapping) and isinstance(b.get("next"), str)
            ]
        edge_names: tuple[str, ...] = ("next", "on_error") if self.type == "INTEGRATION" else (
            "next",
        )
        return [(name, cfg[name]) for name in edge_names if isinstance(cfg.get(name), str)]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowGraph:
    key: str
    name: str
    trigger: Mapping[str, Any]
    start: str
    nodes: Mapping[str, Node]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkflowGraph:
        """Build without validating; use `load` for untrusted input."""
        nodes = {
            node_id: Node(id=node_id, type=str(cfg.get("type")), config=MappingProxyType(dict(cfg)))
            for node_id, cfg in data["nodes"].items()
        }
        return cls(
            key=data["key"],
            name=data.get("name") or data["key"],
            trigger=MappingProxyType(dict(data.get("trigger") or {"type": "manual"})),
            start=data["start"],
            nodes=MappingProxyType(nodes),
        )

    @property
    def trigger_type(self) -> str:
        return str(self.trigger.get("type", "manual"))


class _Loader(yaml.SafeLoader):
    """Safe YAML that leaves unquoted timestamps as strings (`at: 2026-12-01T09:00:00`),
    so every definition stays plain JSON data."""


_Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
MAX_VALUES = 100_000  # after YAML aliases are expanded: stops "billion laughs" documents


def _count_values(data: Any, budget: int) -> int:
    """Values in `data` as JSON would write them out; stops counting past `budget`."""
    seen, stack = 0, [data]
    while stack and seen <= budget:
        item = stack.pop()
        seen += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return seen


def parse_definition(raw: str | bytes, *, content_type: str = "") -> dict[str, Any]:
    """Parse a YAML or JSON document into a dict of plain JSON data; raises MalformedInput."""
    try:
        text = raw.decode("utf-8", errors="strict") if isinstance(raw, bytes) else raw
        # _Loader is a SafeLoader subclass: no arbitrary Python objects.
        data = json.loads(text) if "json" in content_type else yaml.load(text, Loader=_Loader)  # nosec B506
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedInput(f"The definition is not valid YAML or JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedInput("The definition must be a mapping with key, trigger, start and nodes.")
    if _count_values(data, MAX_VALUES) > MAX_VALUES:
        raise MalformedInput(f"The definition expands to more than {MAX_VALUES} values.")
    try:
        json.dumps(data)
    except (TypeError, ValueError) as exc:  # e.g. !!binary or !!set tags
        raise MalformedInput(f"The definition holds a value JSON cannot carry: {exc}") from exc
    return data

