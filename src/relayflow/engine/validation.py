"""Every check of a workflow definition, reported together with the node it concerns."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from croniter import croniter
from jinja2 import nodes as jinja_nodes

from relayflow.engine import sandbox, templates
from relayflow.engine.durations import parse_duration
from relayflow.engine.graph import NODE_TYPES, TERMINAL_TYPES, TRIGGER_TYPES, Node, WorkflowGraph
from relayflow.errors import InvalidGraph, Problem

KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
NODE_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
TOP_LEVEL = {"key", "name", "description", "trigger", "start", "nodes"}
COMMON = {"type", "name", "description"}
HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}
RESERVED_ATTRIBUTES = {"id", "email", "phone", "external_id"}
EDGE_FIELDS = {"CONDITION": ("then", "else"), "INTEGRATION": ("next", "on_error")}
# The fields inside a node's or trigger's nested mappings, and the words some fields take.
# The JSON Schema (engine/workflow.schema.json) and docs/workflows.md are tested against these.
BRANCH_FIELDS = frozenset({"weight", "next", "name"})  # each item of a SPLIT's branches
REQUEST_FIELDS = frozenset({"method", "url", "headers", "body"})  # an INTEGRATION's request
CONTACT_FIELDS = frozenset({"email", "phone", "external_id"})  # a webhook trigger's contact
CAPTURE_ROOTS = ("status", "headers", "body")  # where an INTEGRATION capture path starts
CHANNELS = ("email", "sms")
ON_FAILURE = ("continue", "fail")  # a SEND_MESSAGE's on_failure; executors say the default
# Jinja's compiler re-walks every sub-expression at each level of nesting, so its time grows
# far faster than the template: `{{ x[0][0]...}}` 100 deep takes seconds. These caps keep
# checking any definition that fits in a request to well under a second.
MAX_TEMPLATE_TOKENS = 1_000  # inside the tags of one template or expression
MAX_DEFINITION_TOKENS = 10_000  # over every template of a definition
MAX_EXPRESSION_DEPTH = 32
SHOWN_CHARS = 400  # of a value quoted back in a message
_syntax = sandbox.LimitedSandbox()  # the same syntax as templates: to lex and parse, not run


@dataclass(frozen=True, slots=True)
class Spec:
    required: frozenset[str]
    optional: frozenset[str]


def _spec(required: str = "", optional: str = "") -> Spec:
    return Spec(frozenset(required.split()), frozenset(optional.split()))


SPECS: dict[str, Spec] = {
    "CONDITION": _spec("when then else"),
    "SPLIT": _spec("branches"),
    "WAIT": _spec("next", "duration until"),
    "SEND_MESSAGE": _spec("channel body next", "to subject html on_failure"),
    "INTEGRATION": _spec("request next", "capture timeout retries on_error"),
    "UPDATE_CONTACT": _spec("set next"),
    "TRIGGER_WORKFLOW": _spec("workflow next"),
    "END": _spec(),
    "STOP_ERROR": _spec("message"),
}
TRIGGER_FIELDS: dict[str, set[str]] = {
    "manual": set(),
    "webhook": {"contact", "signing_secret"},
    "schedule": {"cron", "timezone", "audience", "at"},
    "upstream": set(),
}


def _shown(value: Any) -> str:
    """A value quoted in a message, cut short: a message never echoes a huge value whole."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}...({len(text)} chars)"


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.tokens_left = MAX_DEFINITION_TOKENS
        self.refused: set[str] = set()  # template sources that were not compiled

    def add(self, node: str | None, message: str) -> None:
        self.problems.append(Problem(node, message))


def validate(
    data: Mapping[str, Any],
    *,
    known_secrets: set[str] | None = None,
    known_workflows: set[str] | None = None,
) -> list[Problem]:
    """Return every problem in `data`; an empty list means it is valid.

    `known_secrets` / `known_workflows` enable the reference checks (None skips them).
    """
    out = _Collector()
    for field in sorted(set(data) - TOP_LEVEL, key=repr):
        out.add(None, f"unknown field {_shown(field)} (expected {', '.join(sorted(TOP_LEVEL))})")
    key = data.get("key")
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):
        out.add(None, "key must be a slug: lower-case letters, digits, '-' or '_', at most 64")
    _check_labels(None, data, out)
    _check_trigger(data.get("trigger"), out)

    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, Mapping) or not raw_nodes:
        out.add(None, "nodes must be a non-empty mapping of node id to node")
        return out.problems
    nodes: dict[str, Node] = {}
    for node_id, cfg in raw_nodes.items():
        if not isinstance(node_id, str) or not NODE_ID_RE.fullmatch(node_id):
            out.add(str(node_id), "node id must start with a letter or '_' and use only letters, "
                    "digits and '_' (at most 64)")
            continue
        if not isinstance(cfg, Mapping):
            out.add(node_id, "a node must be a mapping with a 'type'")
            continue
        node = Node(id=node_id, type=str(cfg.get("type")), config=cfg)
        if _check_node(node, out, known_secrets, known_workflows):
            nodes[node_id] = node

    start = data.get("start")
    if not isinstance(start, str):
        out.add(None, "start must name the first node")
    elif start not in raw_nodes:
        out.add(None, f"start points to missing node {_shown(start)}")
    _check_edges(nodes, set(raw_nodes), out)
    if isinstance(start, str) and start in nodes:
        _check_shape(nodes, start, out)
    return out.problems


def _check_labels(node: str | None, cfg: Mapping[str, Any], out: _Collector) -> None:
    """`name` and `description` are free text for people, but text of a bounded size."""
    for field, limit in (("name", 200), ("description", 2000)):
        value = cfg.get(field)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            out.add(node, f"{field} must be a string of at most {limit} characters")


def _check_trigger(trigger: Any, out: _Collector) -> None:
    if trigger is None:
        return  # manual
    if not isinstance(trigger, Mapping):
        out.add(None, "trigger must be a mapping with a 'type'")
        return
    kind = trigger.get("type")
    if kind not in TRIGGER_TYPES:
        expected = ", ".join(TRIGGER_TYPES)
        out.add(None, f"trigger: unknown type {_shown(kind)} (expected one of {expected})")
        return
    for field in sorted(set(trigger) - {"type"} - TRIGGER_FIELDS[kind], key=repr):
        out.add(None, f"trigger: unknown field {_shown(field)} for a {kind} trigger")
    if kind == "webhook":
        mapping = trigger.get("contact")
        if mapping is not None:
            if not isinstance(mapping, Mapping) or not mapping:
                out.add(None, "trigger: contact must map email, phone or external_id to templates")
            else:
                for field, tpl in mapping.items():
                    if field not in CONTACT_FIELDS:
                        out.add(None, f"trigger: contact field {_shown(field)} is not email, "
                                "phone or external_id")
                    _check_template(None, f"trigger.contact.{field}", tpl, out)
        secret = trigger.get("signing_secret")
        if secret is not None and not isinstance(secret, str):
            out.add(None, "trigger: signing_secret must name a workspace secret")
    if kind == "schedule":
        _check_schedule(trigger, out)


def _check_schedule(trigger: Mapping[str, Any], out: _Collector) -> None:
    cron, at = trigger.get("cron"), trigger.get("at")
    if (cron is None) == (at is None):
        out.add(None, "trigger: a schedule needs exactly one of cron or at")
    if cron is not None and (not isinstance(cron, str) or not croniter.is_valid(cron)):
        out.add(None, f"trigger: invalid cron expression {_shown(cron)}")
    if at is not None:
        try:
            if not isinstance(at, str):
                raise ValueError(at)
            datetime.fromisoformat(at)
        except ValueError:
            out.add(None, f"trigger: at must be an ISO 8601 datetime, got {_shown(at)}")
    tz = trigger.get("timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(str(tz))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: 'America', too long
        out.add(None, f"trigger: unknown timezone {_shown(tz)}")
    audience = trigger.get("audience")
    if audience is not None:
        _check_template(None, "trigger.audience", audience, out, expression=True)


def _check_template(
    node: str | None, where: str, source: Any, out: _Collector, *, expression: bool = False
) -> bool:
    if len(where) > SHOWN_CHARS:
        where = f"{where[:SHOWN_CHARS]}..."
    if not isinstance(source, str):
        out.add(node, f"{where} must be a string")
        return False
    if not expression and not any(mark in source for mark in ("{{", "{%", "{#")):
        return True  # plain text: nothing for Jinja to parse
    try:
        refusal = _refusal(source, expression, out)
        if refusal is None:
            if expression:
                templates.compile_expression(source)
            else:
                templates.check_template(source)
    except templates.TemplateSyntaxError as exc:
        refusal = f"template syntax error: {exc.message} (line {exc.lineno})"
    except (RecursionError, SyntaxError):  # Python's own compiler gives up on deep nesting
        refusal = f"nests expressions more than {MAX_EXPRESSION_DEPTH} deep"
    if refusal is not None:
        out.refused.add(source)
        out.add(node, f"{where}: {refusal}")
        return False
    return True


def _refusal(source: str, expression: bool, out: _Collector) -> str | None:
    """Why `source` is too large or too deep to compile, or None; raises TemplateSyntaxError.

    Lexing stops at the cap, so the cost of this check is bounded whatever the source."""
    text = "{{ " + source + " }}" if expression else source
    tokens = 0
    for _, kind, _ in _syntax.lex(text):
        if kind != "data":
            tokens += 1
            if tokens > MAX_TEMPLATE_TOKENS:
                return f"is too large: more than {MAX_TEMPLATE_TOKENS} tokens inside its tags"
    if tokens > out.tokens_left:
        return (f"is one template too many: the definition's templates hold more than "
                f"{MAX_DEFINITION_TOKENS} tokens")
    out.tokens_left -= tokens
    if _depth(_syntax.parse(text)) > MAX_EXPRESSION_DEPTH:
        return f"nests expressions more than {MAX_EXPRESSION_DEPTH} deep"
    return None


def _depth(tree: jinja_nodes.Node) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in node.iter_child_nodes())
    return deepest


def _check_node(
    node: Node,
    out: _Collector,
    known_secrets: set[str] | None,
    known_workflows: set[str] | None,
) -> bool:
    """Check one node's fields; returns False when its type is unknown."""
    if node.type not in SPECS:
        out.add(node.id, f"unknown node type {_shown(node.config.get('type'))} "
                f"(expected one of {', '.join(NODE_TYPES)})")
        return False
    spec = SPECS[node.type]
    for field in sorted(set(node.config) - COMMON - spec.required - spec.optional, key=repr):
        out.add(node.id, f"unknown field {_shown(field)} for {node.type}")
    for field in sorted(spec.required - set(node.config)):
        out.add(node.id, f"missing required field {field!r} for {node.type}")
    for field in EDGE_FIELDS.get(node.type, ("next",)):
        if field in node.config and not isinstance(node.config[field], str):
            out.add(node.id, f"{field} must name a node")
    _check_labels(node.id, node.config, out)
    _FIELD_CHECKS[node.type](node, out)
    _check_secret_use(node, out, known_secrets)
    if node.type == "TRIGGER_WORKFLOW" and known_workflows is not None:
        target = node.config.get("workflow")
        if isinstance(target, str) and target not in known_workflows:
            out.add(node.id, f"unknown upstream workflow {_shown(target)}")
    return True


def _check_condition(node: Node, out: _Collector) -> None:
    if "when" in node.config:
        _check_template(node.id, "when", node.config["when"], out, expression=True)


def _check_split(node: Node, out: _Collector) -> None:
    if "branches" not in node.config:
        return  # reported as missing
    branches = node.config["branches"]
    if not isinstance(branches, list) or not branches:
        out.add(node.id, "branches must be a non-empty list of {weight, next}")
        return
    for i, branch in enumerate(branches):
        if not isinstance(branch, Mapping):
            out.add(node.id, f"branch {i} must be a mapping with weight and next")
            continue
        for field in sorted(set(branch) - BRANCH_FIELDS, key=repr):
            out.add(node.id, f"branch {i}: unknown field {_shown(field)}")
        weight = branch.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
            out.add(node.id, f"branch {i}: weight must be a positive number")
        if not isinstance(branch.get("next"), str):
            out.add(node.id, f"branch {i}: next must name a node")
        name = branch.get("name")  # the step records it as the branch taken
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            out.add(node.id, f"branch {i}: name must be a string of at most 200 characters")


def _check_wait(node: Node, out: _Collector) -> None:
    # Present, not merely non-null: the executor waits on `until` only without `duration`.
    has_duration, has_until = "duration" in node.config, "until" in node.config
    duration, until = node.config.get("duration"), node.config.get("until")
    if has_duration == has_until:
        out.add(node.id, "a WAIT needs exactly one of duration or until")
    if isinstance(duration, str) and len(duration) > 32:  # `1w2d3h4m5s` needs 10
        out.add(node.id, f"invalid duration {_shown(duration)}: too long")
    elif has_duration:
        try:
            parse_duration(node.config["duration"])
        except ValueError as exc:
            out.add(node.id, str(exc))
    if has_until:
        _check_template(node.id, "until", until, out)


def _check_send_message(node: Node, out: _Collector) -> None:
    cfg = node.config
    channel = cfg.get("channel")
    if "channel" in cfg and channel not in CHANNELS:
        out.add(node.id, f"channel must be email or sms, got {_shown(channel)}")
    for field in ("to", "subject", "body", "html"):
        if field in cfg:
            _check_template(node.id, field, cfg[field], out)
    if "on_failure" in cfg and cfg["on_failure"] not in ON_FAILURE:
        out.add(node.id, "on_failure must be fail or continue")


def _check_integration(node: Node, out: _Collector) -> None:
    cfg = node.config
    request = cfg.get("request")
    if "request" in cfg:
        if not isinstance(request, Mapping):
            out.add(node.id, "request must be a mapping with method and url")
        else:
            _check_request(node, request, out)
    capture = cfg.get("capture")
    if capture is not None:
        if not isinstance(capture, Mapping):
            out.add(node.id, "capture must map output names to response paths")
        else:
            for name, path in capture.items():
                if not isinstance(name, str) or not NODE_ID_RE.fullmatch(name):
                    out.add(node.id, f"capture name {_shown(name)} must be an identifier")
                if not isinstance(path, str) or path.split(".")[0] not in CAPTURE_ROOTS:
                    out.add(node.id, f"capture {_shown(name)}: path must start with status, "
                            "headers or body")
    timeout = cfg.get("timeout", 10)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 300:
        out.add(node.id, "timeout must be a number of seconds between 0 and 300")
    retries = cfg.get("retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        out.add(node.id, "retries must be a whole number from 0 to 10")


def _check_request(node: Node, request: Mapping[str, Any], out: _Collector) -> None:
    for field in sorted(set(request) - REQUEST_FIELDS, key=repr):
        out.add(node.id, f"request: unknown field {_shown(field)}")
    method = str(request.get("method", "GET")).upper()
    if method not in HTTP_METHODS:
        out.add(node.id, f"request: method must be one of {', '.join(sorted(HTTP_METHODS))}")
    if "url" not in request:
        out.add(node.id, "request: missing url")
    else:
        _check_template(node.id, "request.url", request["url"], out)
    headers = request.get("headers", {})
    if not isinstance(headers, Mapping):
        out.add(node.id, "request: headers must be a mapping of name to template")
    else:
        for name, value in headers.items():
            _check_template(node.id, f"request.headers.{name}", value, out)
    for source in templates.strings_in(request.get("body")):
        _check_template(node.id, "request.body", source, out)


def _check_update_contact(node: Node, out: _Collector) -> None:
    if "set" not in node.config:
        return  # reported as missing
    values = node.config["set"]
    if not isinstance(values, Mapping) or not values:
        out.add(node.id, "set must map attribute names to templates")
        return
    for name, value in values.items():
        if name in RESERVED_ATTRIBUTES:
            out.add(node.id, f"set: {_shown(name)} is not an attribute UPDATE_CONTACT may change")
        for source in templates.strings_in(value):
            _check_template(node.id, f"set.{name}", source, out)


def _check_trigger_workflow(node: Node, out: _Collector) -> None:
    target = node.config.get("workflow")
    if "workflow" in node.config and (
        not isinstance(target, str) or not KEY_RE.fullmatch(target)
    ):
        out.add(node.id, "workflow must be the key of another workflow")


def _check_stop_error(node: Node, out: _Collector) -> None:
    if "message" in node.config:
        _check_template(node.id, "message", node.config["message"], out)


def _no_fields(node: Node, out: _Collector) -> None:
    return None


_FIELD_CHECKS: dict[str, Callable[[Node, _Collector], None]] = {
    "CONDITION": _check_condition,
    "SPLIT": _check_split,
    "WAIT": _check_wait,
    "SEND_MESSAGE": _check_send_message,
    "INTEGRATION": _check_integration,
    "UPDATE_CONTACT": _check_update_contact,
    "TRIGGER_WORKFLOW": _check_trigger_workflow,
    "END": _no_fields,
    "STOP_ERROR": _check_stop_error,
}


def _template_sources(node: Node) -> list[tuple[str, bool]]:
    """(source, is_expression) for every template in a node, for reference checks."""
    cfg = node.config
    if node.type == "CONDITION":
        return [(cfg["when"], True)] if isinstance(cfg.get("when"), str) else []
    sources = [s for s in templates.strings_in({k: v for k, v in cfg.items() if k != "type"})]
    return [(s, False) for s in sources]


def _check_secret_use(node: Node, out: _Collector, known: set[str] | None) -> None:
    in_request = (set(templates.strings_in(node.config.get("request")))
                  if node.type == "INTEGRATION" else set())
    for source, expression in _template_sources(node):
        if "secrets" not in source or source in out.refused:
            continue  # no reference possible, or not compiled and already reported
        try:
            refs = templates.secret_refs(source, expression=expression)
        except (templates.TemplateSyntaxError, RecursionError):
            continue  # already reported
        if not refs:
            continue
        if source not in in_request:
            out.add(node.id, "secrets can only be used inside an INTEGRATION request")
            continue
        if "*" in refs:
            out.add(node.id, "secrets must be named directly, as secrets.NAME")
        if known is not None:
            for name in sorted(refs - {"*"} - known):
                out.add(node.id, f"unknown secret {_shown(name)}")


def _check_edges(nodes: Mapping[str, Node], all_ids: set[str], out: _Collector) -> None:
    for node in nodes.values():
        for edge, target in node.edges():
            if target not in all_ids:
                out.add(node.id, f"edge {edge!r} points to missing node {_shown(target)}")


def _check_shape(nodes: Mapping[str, Node], start: str, out: _Collector) -> None:
    """Reachability, termination and WAIT-less cycles over the known nodes."""
    succ = {n.id: [t for _, t in n.edges() if t in nodes] for n in nodes.values()}
    reachable = _reach(start, succ)
    for node_id in nodes:
        if node_id not in reachable:
            out.add(node_id, f"unreachable: no path from start {_shown(start)} leads here")
    pred: dict[str, list[str]] = {n: [] for n in nodes}
    for src, targets in succ.items():
        for t in targets:
            pred[t].append(src)
    finishing: set[str] = set()
    for node in nodes.values():
        if node.type in TERMINAL_TYPES:
            finishing |= _reach(node.id, pred)
    for node_id in nodes:
        if node_id in reachable and node_id not in finishing:
            out.add(node_id, "no path from this node reaches an END or STOP_ERROR")
    no_wait = {n: [t for t in ts if nodes[t].type != "WAIT"]
               for n, ts in succ.items() if nodes[n].type != "WAIT"}
    for cycle in _cycles(no_wait):
        more = f" and {len(cycle) - 10} more" if len(cycle) > 10 else ""
        through = ", ".join(cycle[:10]) + more
        out.add(cycle[0], f"cycle without a WAIT through {through}: "
                "a run would loop without pausing")


def _reach(origin: str, edges: Mapping[str, list[str]]) -> set[str]:
    seen, stack = {origin}, [origin]
    while stack:
        for nxt in edges.get(stack.pop(), []):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _cycles(edges: Mapping[str, list[str]]) -> list[list[str]]:
    """Strongly connected components that contain a cycle (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    order = {node: i for i, node in enumerate(edges)}
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(edges.get(root, [])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in edges:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges.get(child, []))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges.get(node, []):
                    result.append(sorted(component, key=order.__getitem__))
    return result


def trigger_targets(data: Mapping[str, Any]) -> set[str]:
    """The workflow keys a definition's TRIGGER_WORKFLOW nodes start."""
    nodes = data.get("nodes")
    if not isinstance(nodes, Mapping):
        return set()
    return {str(cfg["workflow"]) for cfg in nodes.values()
            if isinstance(cfg, Mapping) and cfg.get("type") == "TRIGGER_WORKFLOW"
            and isinstance(cfg.get("workflow"), str)}


def trigger_cycle(key: str, targets: Mapping[str, set[str]]) -> list[str] | None:
    """The shortest chain of TRIGGER_WORKFLOW hops by which workflow `key` starts itself
    again, as `[key, ..., key]`; None when it cannot. `targets` maps each workflow key to
    the keys it starts (see `trigger_targets`). Breadth first, so the chain shown is the
    shortest and every workflow is visited once however the others link."""
    parent: dict[str, str] = {}
    frontier = [key]
    while frontier:
        following: list[str] = []
        for current in frontier:
            for nxt in sorted(targets.get(current, set())):
                if nxt == key:
                    chain = [current]
                    while chain[-1] != key:
                        chain.append(parent[chain[-1]])
                    return [key, *reversed(chain[:-1]), key] if current != key else [key, key]
                if nxt not in parent:
                    parent[nxt] = current
                    following.append(nxt)
        frontier = following
    return None


__all__ = ["SPECS", "WorkflowGraph", "trigger_cycle", "trigger_targets", "validate"]


def load(
    data: Mapping[str, Any],
    *,
    known_secrets: set[str] | None = None,
    known_workflows: set[str] | None = None,
) -> WorkflowGraph:
    """Validate and build; raises InvalidGraph listing every problem."""
    problems = validate(data, known_secrets=known_secrets, known_workflows=known_workflows)
    if problems:
        raise InvalidGraph(problems)
    return WorkflowGraph.from_dict(data)
