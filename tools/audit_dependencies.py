"""Audit the installed Python distributions against PyPI's vulnerability data.

pip-audit asks PyPI about each installed version (`/pypi/<name>/<version>/json`) or asks
OSV; our build machines reach neither (the registry proxy answers only the per-project
document, `/pypi/<name>/json`). That document carries PyPI's advisories for the project's
latest release. So:

- a distribution installed at its latest release is audited: any advisory listed for it
  fails the audit;
- a distribution older than its latest release cannot be audited here; it is listed, so a
  reader sees exactly what was not checked, and `--strict` fails on it.

Exit status: 0 when nothing known is vulnerable, 1 when an advisory applies, 2 when PyPI
could not be read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import distributions

PROJECT_URL = "https://pypi.org/pypi/{name}/json"
OWN = {"relayflow"}


@dataclass(frozen=True)
class Verdict:
    name: str
    installed: str
    latest: str | None
    advisories: list[str] = field(default_factory=list)
    problem: str | None = None

    @property
    def audited(self) -> bool:
        return self.problem is None and self.installed == self.latest


def _fetch(name: str, *, attempts: int = 3) -> dict[str, object]:
    for attempt in range(attempts):
        try:  # a fixed https URL: bandit's B310 (file: and custom schemes) does not apply
            with urllib.request.urlopen(PROJECT_URL.format(name=name), timeout=30) as response:  # nosec B310
                document: dict[str, object] = json.load(response)
                return document
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError):
            if attempt == attempts - 1:
                raise
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def judge(name: str, installed: str) -> Verdict:
    try:
        document = _fetch(name)
    except urllib.error.HTTPError as exc:
        return Verdict(name, installed, None, problem=f"PyPI answered {exc.code}")
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
        return Verdict(name, installed, None, problem=f"PyPI unreachable: {exc}")
    info = document.get("info") or {}
    latest = str(info.get("version")) if isinstance(info, dict) else None
    advisories = []
    if latest == installed:
        for item in document.get("vulnerabilities") or []:  # type: ignore[attr-defined]
            if not item.get("withdrawn"):
                fixed = ", ".join(item.get("fixed_in") or []) or "no release"
                advisories.append(f"{item.get('id')} (fixed in {fixed})")
    return Verdict(name, installed, latest, advisories)


def installed() -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in OWN:
            seen.setdefault(name.lower(), dist.version)
    return sorted(seen.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strict", action="store_true",
                        help="also fail when a distribution cannot be audited")
    args = parser.parse_args(argv)
    packages = installed()
    with ThreadPoolExecutor(8) as pool:
        verdicts = list(pool.map(lambda p: judge(*p), packages))
    vulnerable = [v for v in verdicts if v.advisories]
    unreachable = [v for v in verdicts if v.problem]
    older = [v for v in verdicts if not v.problem and not v.audited]
    for v in vulnerable:
        print(f"VULNERABLE {v.name} {v.installed}: {'; '.join(v.advisories)}")
    for v in older:
        print(f"not audited {v.name} {v.installed} (latest is {v.latest})")
    for v in unreachable:
        print(f"not audited {v.name} {v.installed}: {v.problem}")
    audited = sum(v.audited for v in verdicts)
    print(f"dependency audit: {len(verdicts)} distributions, {audited} audited at their latest "
          f"release, {len(vulnerable)} with known vulnerabilities, "
          f"{len(older) + len(unreachable)} not audited")
    if vulnerable:
        return 1
    if len(unreachable) == len(verdicts) or (args.strict and (older or unreachable)):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
