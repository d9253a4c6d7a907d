"""The dependency audit against PyPI itself (the registry is reachable from every machine
this project builds on): it must flag a release with published advisories, pass one
without, and say plainly what it could not audit."""

from __future__ import annotations

import pytest
from tools.audit_dependencies import judge, main


def test_a_latest_release_with_published_advisories_is_flagged() -> None:
    # pycrypto's last release (2.6.1) has advisories and no fixed release.
    verdict = judge("pycrypto", "2.6.1")
    assert verdict.audited
    assert any(a.startswith("PYSEC-") for a in verdict.advisories), verdict


def test_an_older_release_is_reported_as_not_audited() -> None:
    verdict = judge("setuptools", "65.5.0")
    assert verdict.latest not in (None, "65.5.0")
    assert not verdict.audited
    assert verdict.advisories == []


def test_an_unknown_project_is_a_problem_not_a_pass() -> None:
    verdict = judge("relayflow-no-such-project-7f3a", "1.0")
    assert verdict.problem == "PyPI answered 404"
    assert not verdict.audited


def test_this_environment_has_no_known_vulnerability(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    assert "0 with known vulnerabilities" in summary
