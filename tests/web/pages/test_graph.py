"""The workflow graph SVG: every node, the run's path and the failing node."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from relayflow.web.pages.graph import render_graph

SVG = "{http://www.w3.org/2000/svg}"
LOOP = {
    "key": "loop", "start": "a", "nodes": {
        "a": {"type": "CONDITION", "when": "x", "then": "w", "else": "b"},
        "w": {"type": "WAIT", "duration": "1d", "next": "a"},
        "b": {"type": "SPLIT", "branches": [{"weight": 1, "next": "c"},
                                            {"weight": 1, "next": "e"}]},
        "c": {"type": "INTEGRATION", "request": {}, "next": "e", "on_error": "f"},
        "e": {"type": "END"},
        "f": {"type": "STOP_ERROR", "message": "boom"},
    },
}


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def states(root: ET.Element) -> dict[str, str]:
    return {g.get("data-node"): g.get("data-state") for g in root.iter(f"{SVG}g")
            if g.get("data-node")}


class TestRenderGraph:
    def test_every_node_and_the_trigger_are_drawn_once(self) -> None:
        root = parse(render_graph(LOOP))
        assert states(root) == {n: "idle" for n in ["trigger", "a", "w", "b", "c", "e", "f"]}

    def test_the_path_taken_and_the_failed_node_are_marked(self) -> None:
        root = parse(render_graph(LOOP, visited=["trigger", "a", "w", "a", "b", "c", "f"],
                                  failed="f"))
        assert states(root) == {"trigger": "visited", "a": "visited", "w": "visited",
                                "b": "visited", "c": "visited", "e": "idle", "f": "failed"}
        taken = {g.get("data-edge") for g in root.iter(f"{SVG}g")
                 if "wf-edge-taken" in (g.get("class") or "")}
        assert taken == {"trigger→a", "a→w", "w→a", "a→b", "b→c", "c→f"}
        desc = root.find(f"{SVG}desc")
        assert desc is not None
        assert desc.text == "This run visited a → w → a → b → c → f. It failed at f."

    def test_waiting_and_current_nodes(self) -> None:
        waiting = states(parse(render_graph(LOOP, visited=["trigger", "a", "w"], waiting="w")))
        assert waiting["w"] == "waiting"
        current = states(parse(render_graph(LOOP, visited=["trigger", "a"], current="b")))
        assert current["b"] == "current"

    def test_a_node_whose_error_was_handled_is_marked_so_not_as_visited(self) -> None:
        root = parse(render_graph(LOOP, visited=["trigger", "a", "b", "c", "f"],
                                  handled=["c"]))
        assert states(root) == {"trigger": "visited", "a": "visited", "w": "idle",
                                "b": "visited", "c": "handled", "e": "idle", "f": "visited"}
        node = next(g for g in root.iter(f"{SVG}g") if g.get("data-node") == "c")
        assert "wf-node-handled" in (node.get("class") or "")
        assert "⚠ c" in "".join(node.itertext())
        title = node.find(f"{SVG}title")
        assert title is not None
        assert title.text == "c (Integration): failed, handled by its on_error edge"
        desc = root.find(f"{SVG}desc")
        assert desc is not None
        assert desc.text == "This run visited a → b → c → f. c failed and went on by on_error."

    def test_layers_go_down_and_loops_do_not_break_the_layout(self) -> None:
        root = parse(render_graph(LOOP))
        y = {g.get("data-node"): int(re.findall(r"translate\(\d+,(\d+)\)",
                                                g.get("transform") or "")[0])
             for g in root.iter(f"{SVG}g") if g.get("data-node")}
        assert y["trigger"] < y["a"] < y["b"] < y["c"] < y["e"]
        assert y["w"] == y["b"]  # w → a closes the loop: drawn back up, not below a

    def test_labels_are_escaped(self) -> None:
        definition = {"key": "k<b>", "start": "x", "nodes": {"x": {"type": "END"}}}
        svg = str(render_graph(definition))
        assert "k<b>" not in svg
        assert "k&lt;b&gt;" in svg
        parse(svg)  # still well-formed XML

    def test_split_branches_are_labelled_by_name_or_share(self) -> None:
        labels = re.findall(r'class="wf-edge-label"[^>]*>([^<]*)<', str(render_graph(LOOP)))
        assert labels.count("50%") == 2
        named = {**LOOP, "nodes": {**LOOP["nodes"], "b": {
            "type": "SPLIT", "branches": [{"name": "control", "weight": 1, "next": "c"},
                                          {"name": "variant", "weight": 3, "next": "e"}]}}}
        labels = re.findall(r'class="wf-edge-label"[^>]*>([^<]*)<', str(render_graph(named)))
        assert {"control", "variant"} <= set(labels)
