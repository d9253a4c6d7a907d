"""docs/operations.md, the Grafana dashboard and the Prometheus alert rules
(deploy/monitoring/) name only what /metrics serves: every metric they name is a series of
a real scrape, every label they group by or select on is a label of that family, and the
page describes every relayflow family. The scrape is of the app on a SQLite file migrated
here (no database fixture): a webhook run walked, a webhook refused and a database error
met first, so every labelled family has samples that show its labels."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import text

from relayflow.config import Settings
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime, SecretCipher, network_allow_of
from relayflow.storage.db import make_engine, make_sessionmaker, session_scope
from relayflow.storage.migrate import upgrade
from relayflow.web.app import create_app
from tests.conftest import TEST_SECRET_KEY, make_workspace
from tests.support.flows import install
from tests.support.worker import drain

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "operations.md"
DASHBOARD = ROOT / "deploy" / "monitoring" / "relayflow-dashboard.json"
RULES = ROOT / "deploy" / "monitoring" / "relayflow-alerts.yml"
FILES = {"page": PAGE, "dashboard": DASHBOARD, "rules": RULES}
SCRAPE_LABELS = {"job", "instance"}  # what Prometheus adds to every series it scrapes
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
HOOK = {"key": "docs-hook",
        "trigger": {"type": "webhook", "contact": {"email": "{{ event.email }}"}},
        "start": "mail", "nodes": {
            "mail": {"type": "SEND_MESSAGE", "channel": "email", "subject": "Hi",
                     "body": "Hello", "next": "done"},
            "done": {"type": "END"}}}

NAME = re.compile(r"\brelayflow_[a-z0-9_]*[a-z0-9]")
SELECTOR = re.compile(r"\b(relayflow_[a-z0-9_]+)\s*\{([^{}]*)\}")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(by|without)\s*\(([^()]*)\)")
FAMILY_ROW = re.compile(r"^\| `(relayflow_\w+)` \| (\w+) \|([^|]*)\|", re.MULTILINE)
LABEL_VALUES = re.compile(r"label_values\(\s*(relayflow_[a-z0-9_]+)[^,]*,\s*(\w+)\s*\)")


@dataclass
class Family:
    name: str
    type: str
    labels: set[str] = field(default_factory=set)
    sampled: bool = False

    @property
    def series(self) -> list[str]:
        return [self.name + suffix for suffix in SUFFIXES[self.type]]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Family]:
    """Every relayflow series name of a scrape, with the family it belongs to."""
    directory = tmp_path_factory.mktemp("operations-docs")
    url = f"sqlite:///{directory / 'relayflow.db'}"
    upgrade(url)
    settings = Settings(database_url=url, secret_key=SecretStr(TEST_SECRET_KEY),
                        secret_key_file=str(directory / "secret.key"))
    engine = make_engine(url)
    runtime = Runtime(sessions=make_sessionmaker(engine), cipher=SecretCipher(TEST_SECRET_KEY),
                      network_allow=network_allow_of(settings))
    try:
        scraped = _exercise(settings, runtime)
    finally:
        engine.dispose()
    families: dict[str, Family] = {}
    for parsed in text_string_to_metric_families(scraped):
        if parsed.name.startswith("relayflow_"):
            family = Family(parsed.name, parsed.type)
            for sample in parsed.samples:
                family.labels.update(sample.labels)
                family.sampled = True
            families.update((name, family) for name in family.series)
    return families


def _exercise(settings: Settings, runtime: Runtime) -> str:
    workspace = make_workspace(runtime, "docs")
    install(runtime, workspace.id, HOOK)
    with session_scope(runtime.sessions) as session:
        token = workflow_service.get(session, workspace_id=workspace.id,
                                     key=HOOK["key"]).webhook_token
    with TestClient(create_app(settings, runtime=runtime),
                    raise_server_exceptions=False) as client:
        assert client.post(f"/hooks/{token}", json={"email": "ada@example.com"}
                           ).status_code == 202
        assert client.post("/hooks/no-such-token", json={}).status_code == 404
        drain(runtime)
        with session_scope(runtime.sessions) as session:  # a database error to meet
            session.execute(text("ALTER TABLE contacts RENAME TO contacts_away"))
        assert client.get("/api/v1/contacts", headers=workspace.headers).status_code == 500
        scrape = client.get("/metrics")
    assert scrape.status_code == 200
    return scrape.text


def expressions(which: str) -> Iterator[str]:
    """The PromQL of a file: the dashboard's queries, the rules' expressions, the page's
    code spans and blocks."""
    if which == "dashboard":
        yield from _queries(json.loads(DASHBOARD.read_text(encoding="utf-8")))
    elif which == "rules":
        for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]:
            yield from (rule["expr"] for rule in group["rules"])
    else:
        yield from re.findall(r"`([^`\n]*relayflow_[^`\n]*)`", PAGE.read_text(encoding="utf-8"))


def _queries(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query", "definition") and isinstance(value, str):
                yield value
            else:
                yield from _queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from _queries(item)


def _argument(expr: str, start: int) -> str:
    """The parenthesised argument that begins at `expr[start]` (a `(`), parentheses balanced."""
    depth = 0
    for i in range(start, len(expr)):
        depth += {"(": 1, ")": -1}.get(expr[i], 0)
        if depth == 0:
            return expr[start:i + 1]
    raise AssertionError(f"unbalanced parentheses in {expr!r}")


def label_uses(expr: str) -> Iterator[tuple[str, set[str], str]]:
    """(metric, labels the expression needs it to have, where) for each selector, grouping
    and label_values() of `expr`."""
    for match in SELECTOR.finditer(expr):
        yield match[1], set(MATCHER.findall(match[2])), match[0]
    for match in GROUPING.finditer(expr):
        rest = expr[match.end():].lstrip()
        assert match[1] == "by", f"group with by(), not without(): {expr!r}"
        assert rest.startswith("("), (
            f"write `sum by (labels) (expr)`, not by() after its argument: {expr!r}")
        argument = _argument(rest, 0)
        labels = {label.strip() for label in match[2].split(",") if label.strip()}
        for name in set(NAME.findall(argument)):
            yield name, labels, f"{match[0]} over {name}"
    for match in LABEL_VALUES.finditer(expr):
        yield match[1], {match[2]}, match[0]


class TestRulesFile:
    def test_is_prometheus_alerting_rules(self) -> None:
        rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
        assert set(rules) == {"groups"}
        alerts = []
        for group in rules["groups"]:
            assert group["name"], group
            assert group["rules"], group
            for rule in group["rules"]:
                assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule), rule
                assert re.fullmatch(r"[A-Z][A-Za-z]+", rule["alert"]), rule["alert"]
                assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["for"]
                assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
                assert rule["annotations"]["summary"], rule["alert"]
                assert NAME.search(rule["expr"]), rule["alert"]
                alerts.append(rule["alert"])
        assert len(alerts) == len(set(alerts))
        # Each named in the page, with what it watches.
        page = PAGE.read_text(encoding="utf-8")
        assert [alert for alert in alerts if f"`{alert}`" not in page] == []


class TestDashboard:
    def test_is_an_importable_grafana_dashboard(self) -> None:
        dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
        assert dashboard["schemaVersion"] >= 36
        assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
        panels = dashboard["panels"]
        assert len({p["id"] for p in panels}) == len(panels)
        graphs = [p for p in panels if p["type"] != "row"]
        assert len(graphs) >= 10
        for panel in graphs:
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
            assert panel["targets"], panel["title"]
            assert all(NAME.search(t["expr"]) for t in panel["targets"]), panel["title"]


@pytest.mark.parametrize("which", list(FILES))
def test_every_metric_named_is_served(served: dict[str, Family], which: str) -> None:
    named = set(NAME.findall(FILES[which].read_text(encoding="utf-8")))
    assert named, which
    known = set(served)
    if which == "page":  # prose may name a histogram by its family's name
        known |= {family.name for family in served.values()}
    unknown = sorted(named - known)
    assert unknown == [], f"{which} names what /metrics does not serve: {unknown}"


@pytest.mark.parametrize("which", list(FILES))
def test_every_label_used_is_the_familys(served: dict[str, Family], which: str) -> None:
    wrong = []
    for expr in expressions(which):
        for name, labels, where in label_uses(expr):
            family = served.get(name)
            if family is None:
                continue  # test_every_metric_named_is_served says so
            assert family.sampled or not labels, (
                f"no sample of {family.name} in the scrape: exercise it so its labels show")
            unknown = labels - family.labels - SCRAPE_LABELS
            if unknown:
                wrong.append(f"{where}: {sorted(unknown)} not among {sorted(family.labels)}")
    assert wrong == []


def test_the_page_describes_every_family(served: dict[str, Family]) -> None:
    """Each family has its row in the page's table, with the scrape's type and labels."""
    rows = {name: (kind, set(re.findall(r"`(\w+)`", labels))) for name, kind, labels in
            FAMILY_ROW.findall(PAGE.read_text(encoding="utf-8"))}
    families = {family.name: family for family in served.values()}
    assert len(families) >= 15
    assert [name for name, family in families.items() if not family.sampled] == []
    wrong = []
    for family in families.values():
        queried = family.series[0] if family.type == "counter" else family.name
        if queried not in rows:
            wrong.append(f"{queried}: no row")
            continue
        kind, labels = rows.pop(queried)
        if kind != family.type:
            wrong.append(f"{queried}: {kind}, served as a {family.type}")
        if family.sampled and labels != family.labels - {"le"}:
            wrong.append(f"{queried}: labels {sorted(labels)}, served with "
                         f"{sorted(family.labels - {'le'})}")
    assert wrong == []
    assert list(rows) == [], "rows for families /metrics does not serve"
