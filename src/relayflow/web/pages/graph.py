"""A workflow version drawn as inline SVG, optionally with the path one run took.

Layout is layered, top to bottom: the trigger on top, each node one layer below its
deepest predecessor (edges that close a loop through a WAIT are drawn as back edges on
the right and ignored for layering), and nodes ordered within a layer by the average
position of their parents, two sweeps, which keeps most edges from crossing on graphs of
the size people build. No layout library: the ones that exist need Graphviz binaries.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from relayflow.engine.graph import WorkflowGraph

TRIGGER = "trigger"  # node_id of every run's first step (seq 0)
NODE_W, NODE_H = 184, 46
GAP_X, GAP_Y = 28, 62
PAD = 24
BACK_EDGE_ROOM = 48
MAX_LABEL = 22

TYPE_LABELS = {
    "CONDITION": "Condition", "SPLIT": "Split", "WAIT": "Wait", "SEND_MESSAGE": "Send message",
    "INTEGRATION": "Integration", "UPDATE_CONTACT": "Update contact",
    "TRIGGER_WORKFLOW": "Start workflow", "END": "End", "STOP_ERROR": "Stop with error",
    "TRIGGER": "Trigger",
}


@dataclass(frozen=True, slots=True)
class _Edge:
    source: str
    target: str
    name: str
    back: bool


def _edges(trigger_id: str, graph: WorkflowGraph) -> list[tuple[str, str, str]]:
    edges = [(trigger_id, graph.start, "")] if graph.start in graph.nodes else []
    for node in graph.nodes.values():
        names = _branch_names(node.config) if node.type == "SPLIT" else {}
        edges += [(node.id, target, names.get(name, name)) for name, target in node.edges()
                  if target in graph.nodes]
    return edges


def _branch_names(config: Mapping[str, Any]) -> dict[str, str]:
    """`branch 0` → the branch's name, or its weight as a share ("50%") when unnamed."""
    branches = [b for b in config.get("branches") or [] if isinstance(b, Mapping)]
    weights = [b.get("weight") for b in branches]
    total = sum(w for w in weights if isinstance(w, int | float) and w > 0)
    names = {}
    for i, branch in enumerate(branches):
        weight = branch.get("weight")
        share = f"{weight / total:.0%}" if total and isinstance(weight, int | float) else ""
        names[f"branch {i}"] = str(branch.get("name") or share or f"branch {i}")
    return names


def _classify(root: str, order: list[str],
              edges: list[tuple[str, str, str]]) -> tuple[list[_Edge], list[str]]:
    """Mark back edges with an iterative DFS from the root; returns edges and DFS order."""
    out: dict[str, list[tuple[str, str]]] = {}
    for source, target, name in edges:
        out.setdefault(source, []).append((target, name))
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    back: set[tuple[str, str, str]] = set()
    seen_order: list[str] = []
    for start in [root, *order]:
        if start in state:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        state[start] = 1
        seen_order.append(start)
        while stack:
            node, index = stack[-1]
            targets = out.get(node, [])
            if index == len(targets):
                state[node] = 2
                stack.pop()
                continue
            stack[-1] = (node, index + 1)
            target, name = targets[index]
            if state.get(target) == 1:
                back.add((node, target, name))
            elif target not in state:
                state[target] = 1
                seen_order.append(target)
                stack.append((target, 0))
    return [_Edge(s, t, n, (s, t, n) in back) for s, t, n in edges], seen_order


def _layers(nodes: list[str], edges: list[_Edge]) -> dict[str, int]:
    """Longest path from the sources over forward edges (a DAG once back edges are out)."""
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    for edge in edges:
        if not edge.back:
            preds[edge.target].append(edge.source)
    layer: dict[str, int] = {}

    def depth(node: str) -> int:
        stack, result = [node], 0
        while stack:
            current = stack[-1]
            missing = [p for p in preds[current] if p not in layer]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            layer[current] = max((layer[p] + 1 for p in preds[current]), default=0)
            result = layer[current]
        return result

    for node in nodes:
        if node not in layer:
            depth(node)
    return layer


def _order(nodes: list[str], layer: dict[str, int], edges: list[_Edge]) -> list[list[str]]:
    rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=0) + 1)]
    for node in nodes:  # DFS order first: siblings stay in definition order
        rows[layer[node]].append(node)
    parents: dict[str, list[str]] = {n: [] for n in nodes}
    for edge in edges:
        if not edge.back:
            parents[edge.target].append(edge.source)
    position = {n: i for row in rows for i, n in enumerate(row)}

    def barycenter(n: str) -> float:
        ps = parents[n]
        return sum(position[p] for p in ps) / len(ps) if ps else position[n]

    for _ in range(2):
        for row in rows[1:]:
            row.sort(key=barycenter)
            position.update({n: i for i, n in enumerate(row)})
    return rows


def _label(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _state(node_id: str, visited: set[str], failed: str | None, current: str | None,
           waiting: str | None, handled: set[str]) -> str:
    if node_id == failed:
        return "failed"
    if node_id == waiting:
        return "waiting"
    if node_id == current:
        return "current"
    if node_id in handled:
        return "handled"
    return "visited" if node_id in visited else "idle"


STATE_WORDS = {"failed": "failed here", "waiting": "waiting here", "current": "running now",
               "handled": "failed, handled by its on_error edge", "visited": "visited",
               "idle": "not visited"}


def render_graph(
    definition: Mapping[str, Any], *, visited: Sequence[str] = (), failed: str | None = None,
    current: str | None = None, waiting: str | None = None, handled: Sequence[str] = (),
) -> Markup:
    """Inline SVG of a workflow definition. `visited` is the run's step node ids in order
    (its first entry may be the trigger step); the edges between consecutive visits are
    highlighted, `failed` is marked as the failing node, `current`/`waiting` as where the
    run is now, `handled` as nodes that failed and went on by their on_error edge."""
    graph = WorkflowGraph.from_dict(definition)
    trigger_id = TRIGGER if TRIGGER not in graph.nodes else "\x00trigger"
    path = list(visited)
    if path and path[0] == TRIGGER:
        path[0] = trigger_id
    elif path:
        path.insert(0, trigger_id)
    kinds: dict[str, str] = {trigger_id: "TRIGGER"}
    kinds.update({n.id: n.type for n in graph.nodes.values()})
    edges, order = _classify(trigger_id, list(graph.nodes), _edges(trigger_id, graph))
    layer = _layers(order, edges)
    rows = _order(order, layer, edges)
    widest = max(len(row) for row in rows)
    has_back = any(e.back for e in edges) or any(
        layer[e.target] - layer[e.source] > 1 for e in edges if not e.back)
    width = PAD * 2 + widest * NODE_W + (widest - 1) * GAP_X + (BACK_EDGE_ROOM if has_back else 0)
    height = PAD * 2 + len(rows) * NODE_H + (len(rows) - 1) * GAP_Y
    spread = widest * NODE_W + (widest - 1) * GAP_X
    xy: dict[str, tuple[float, float]] = {}
    for r, row in enumerate(rows):
        row_width = len(row) * NODE_W + (len(row) - 1) * GAP_X
        left = PAD + (spread - row_width) / 2
        for i, node in enumerate(row):
            xy[node] = (left + i * (NODE_W + GAP_X), PAD + r * (NODE_H + GAP_Y))
    seen, errored = set(path), set(handled)
    taken = set(itertools.pairwise(path))
    parts = [_edge_svg(e, xy, (e.source, e.target) in taken, width) for e in edges]
    trigger_label = f"{graph.trigger_type} trigger"
    for node_id in order:
        parts.append(_node_svg(node_id, kinds[node_id], xy[node_id],
                               _state(node_id, seen, failed, current, waiting, errored),
                               trigger_label if node_id == trigger_id else node_id))
    summary = _summary(path[1:], failed, waiting, current, handled)
    # Safe markup: every label is escaped above.
    return Markup(  # nosec B704
        f'<svg class="wf-graph" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
        f'height="{height:.0f}" role="img" aria-labelledby="wf-graph-title wf-graph-desc" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="wf-graph-title">Graph of workflow {escape(graph.key)}</title>'
        f'<desc id="wf-graph-desc">{escape(summary)}</desc>'
        f"<defs>{_marker('wf-arrow')}{_marker('wf-arrow-taken')}</defs>"
        + "".join(parts) + "</svg>"
    )


def _marker(marker_id: str) -> str:
    return (f'<marker id="{marker_id}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" '
            'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
            '<path d="M0,0 L10,5 L0,10 z"/></marker>')


def _summary(path: list[str], failed: str | None, waiting: str | None,
             current: str | None, handled: Sequence[str] = ()) -> str:
    if not path:
        return "The nodes of this workflow and the edges between them."
    text = "This run visited " + " → ".join(path) + "."
    if handled:
        text += f" {', '.join(dict.fromkeys(handled))} failed and went on by on_error."
    if failed:
        text += f" It failed at {failed}."
    elif waiting:
        text += f" It is waiting at {waiting}."
    elif current:
        text += f" It is now at {current}."
    return text


def _edge_svg(edge: _Edge, xy: Mapping[str, tuple[float, float]], taken: bool,
              width: float) -> str:
    (sx, sy), (tx, ty) = xy[edge.source], xy[edge.target]
    css = "wf-edge wf-edge-taken" if taken else "wf-edge"
    marker = "url(#wf-arrow-taken)" if taken else "url(#wf-arrow)"
    if edge.back:
        x1, y1 = sx + NODE_W, sy + NODE_H / 2
        x2, y2 = tx + NODE_W, ty + NODE_H / 2
        bend = width - PAD
        r = 10  # rounded corners on the way out to the margin and back
        d = (f"M{x1:.0f},{y1:.0f} H{bend - r:.0f} Q{bend:.0f},{y1:.0f} {bend:.0f},{y1 - r:.0f} "
             f"V{y2 + r:.0f} Q{bend:.0f},{y2:.0f} {bend - r:.0f},{y2:.0f} H{x2 + 2:.0f}")
        label_at = (bend - 44, (y1 + y2) / 2)
    elif ty - sy > NODE_H + GAP_Y + 1:
        # Skips a layer: run down the gap beside the column so it is not hidden behind
        # the nodes in between.
        x1, y1 = sx + NODE_W / 2, sy + NODE_H
        x2, y2 = tx + NODE_W / 2, ty - 2
        side = max(sx, tx) + NODE_W + GAP_X / 2
        top, bottom = y1 + GAP_Y / 2, y2 - GAP_Y / 2
        d = (f"M{x1:.0f},{y1:.0f} C{x1:.0f},{top:.0f} {side:.0f},{y1:.0f} {side:.0f},{top:.0f} "
             f"V{bottom:.0f} C{side:.0f},{y2:.0f} {x2:.0f},{bottom:.0f} {x2:.0f},{y2:.0f}")
        label_at = (side + 4, top + 10)
    else:
        x1, y1 = sx + NODE_W / 2, sy + NODE_H
        x2, y2 = tx + NODE_W / 2, ty - 2
        mid = (y1 + y2) / 2
        d = f"M{x1:.0f},{y1:.0f} C{x1:.0f},{mid:.0f} {x2:.0f},{mid:.0f} {x2:.0f},{y2:.0f}"
        label_at = ((x1 + x2) / 2 + 6, mid + 4)
    label = ""
    if edge.name and edge.name != "next":
        label = (f'<text class="wf-edge-label" x="{label_at[0]:.0f}" y="{label_at[1]:.0f}">'
                 f'{escape(edge.name)}</text>')
    return (f'<g class="{css}" data-edge="{escape(edge.source)}→{escape(edge.target)}">'
            f'<path d="{d}" marker-end="{marker}"/>{label}</g>')


def _node_svg(node_id: str, kind: str, at: tuple[float, float], state: str,
              label: str) -> str:
    x, y = at
    shown = "trigger" if kind == "TRIGGER" else node_id
    mark = {"failed": "✕ ", "waiting": "‖ ", "current": "▶ ", "handled": "⚠ "}.get(state, "")
    return (
        f'<g class="wf-node wf-node-{state} wf-type-{kind.lower()}" data-node="{escape(shown)}" '
        f'data-state="{state}" transform="translate({x:.0f},{y:.0f})">'
        f'<title>{escape(label)} ({escape(TYPE_LABELS.get(kind, kind))}): '
        f'{STATE_WORDS[state]}</title>'
        f'<rect width="{NODE_W}" height="{NODE_H}" rx="8"/>'
        f'<text class="wf-node-type" x="12" y="17">{escape(TYPE_LABELS.get(kind, kind))}</text>'
        f'<text class="wf-node-id" x="12" y="35">{mark}{escape(_label(label))}</text></g>'
    )


def node_types(definition: Mapping[str, Any]) -> dict[str, str]:
    """Node id → type, for templates that label steps."""
    graph = WorkflowGraph.from_dict(definition)
    return {node.id: node.type for node in graph.nodes.values()}


__all__ = ["node_types", "render_graph"]
