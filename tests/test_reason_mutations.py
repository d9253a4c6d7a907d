"""Every place that decides not to run or not to send records its reason there (DESIGN
§8.3). This proves the tests notice: each case below takes one such record out of a copy
of the source, runs the tests that cover it against that copy, and expects them to fail.
A record whose removal no test notices fails here."""

from __future__ import annotations

import os
import shutil
import subprocess  # nosec B404: runs this interpreter's pytest on a copy of the source
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "relayflow"
TRIGGERS = "tests/web/hooks/test_trigger_events.py"
DUPLICATES = TRIGGERS + "::TestDuplicates"
EXPLAIN = "tests/web/api/test_explain.py"


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # under src/relayflow
    text: str  # what is taken out (or replaced)
    occurrence: int  # which of its occurrences in the file, from 0
    tests: tuple[str, ...]
    replacement: str = ""


MUTATIONS = (
    *(Mutation(f"signature refusal {n}", "services/signed.py", '.because("signature")', n,
               (TRIGGERS,)) for n in range(4)),
    Mutation("no signing secret", "services/webhook.py", '.because("signature")', 0,
             (EXPLAIN + "::TestVerdicts::test_a_refused_webhook",)),
    Mutation("replay", "services/webhook.py", '.because("replay")', 0, (TRIGGERS,)),
    Mutation("workflow inactive", "services/webhook.py", '.because("workflow_inactive")', 0,
             (TRIGGERS,)),
    Mutation("rate limit", "services/webhook.py", ', reason="rate_limit"', 0, (TRIGGERS,)),
    Mutation("refusal recorded", "services/webhook.py",
             "_refused(session, request, exc, now=now, phone_region=phone_region)", 0,
             (TRIGGERS,), replacement="pass"),
    *(Mutation(f"duplicate {n}", "services/run.py", "duplicate(session, ", n, (DUPLICATES,),
               replacement="_not_recorded(session, ") for n in range(3)),
    Mutation("replayed duplicate", "services/webhook.py", "run_service.duplicate(", 0,
             (DUPLICATES,), replacement="run_service._not_recorded("),
    Mutation("schedule tick", "services/schedule.py", "schedule_repo.add_tick(session, ", 0,
             ("tests/services/test_schedule.py::TestTick", EXPLAIN + "::TestSchedule"),
             replacement="(lambda *_: None)(session, "),
    Mutation("no address", "engine/executors/send_message.py",
             ', output={"reason": "no_address"}', 0, (EXPLAIN,)),
    Mutation("suppressed by", "services/effects.py",
             '"suppressed_by": context.suppressed_by,', 0, (EXPLAIN,)),
    Mutation("frequency cap", "services/effects.py",
             '"suppressed_by": frequency_service.SUPPRESSED_BY,', 0,
             ("tests/services/test_frequency.py::TestSendPath",)),
)
# What the duplicate mutations call instead: the answer without the record.
_NOT_RECORDED = '''

def _not_recorded(session, existing, *, source, now):  # the mutation's stand-in
    run_repo.count_duplicate(session, existing.id)
    return Enrolled(existing, True)
'''


def _mutated(tmp_path: Path, mutation: Mutation) -> Path:
    copy = tmp_path / "src"
    shutil.copytree(SOURCE, copy / "relayflow",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    target = copy / "relayflow" / mutation.path
    text = target.read_text()
    at = -1
    for _ in range(mutation.occurrence + 1):
        at = text.index(mutation.text, at + 1)
    text = text[:at] + mutation.replacement + text[at + len(mutation.text):]
    if mutation.path == "services/run.py":
        text += _NOT_RECORDED
    target.write_text(text)
    return copy


@pytest.fixture(scope="module")
def bytecode(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Where the runs below keep the modules they compile, shared: with
    PYTHONDONTWRITEBYTECODE set, each run would compile every module it imports again
    (the tests' own with pytest's assertions, a second of every run). Each run's copy of
    the source has a path of its own, so its modules are never taken for another's."""
    return str(tmp_path_factory.mktemp("bytecode"))


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_taking_a_reason_out_fails_a_test(tmp_path: Path, bytecode: str,
                                           mutation: Mutation) -> None:
    copy = _mutated(tmp_path, mutation)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(copy), str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "PYTHONPYCACHEPREFIX": bytecode}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("RELAYFLOW_TEST_DATABASE_URL", None)  # the same on both databases: SQLite
    probe = subprocess.run(  # nosec B603: this interpreter, fixed arguments
        [sys.executable, "-c", "import relayflow; print(relayflow.__file__)"],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert probe.stdout.strip().startswith(str(copy)), probe.stdout  # the copy is imported
    # Without the fuzzing plugins, which no test here uses (loading them takes a second).
    result = subprocess.run(  # nosec B603
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
         "-p", "no:hypothesispytest", "-p", "no:schemathesis",
         f"--rootdir={ROOT}", f"--basetemp={tmp_path / 'run'}",
         *(str(ROOT / t) for t in mutation.tests)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, (
        f"no test noticed {mutation.name!r} taken out of {mutation.path}:\n"
        f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
