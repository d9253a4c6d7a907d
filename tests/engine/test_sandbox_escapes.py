"""Sandbox-escape payloads: each is refused or renders harmlessly, and none executes anything.

Three independent canaries watch every render: a context object whose only side-effecting
method records its calls, a file the payloads try to create, and a Python audit hook that
records process, file, network and import-time events while the template renders.
"""

from __future__ import annotations

import importlib.metadata
import sys
import typing
from pathlib import Path
from typing import Any

import jinja2
import pytest
from jinja2.exceptions import (
    SecurityError,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
)

from relayflow.engine import templates

REFUSED = "refused"
HARMLESS = "harmless"
SECRET = "canary-secret-5f3e"
CANARY_GLOBAL = SECRET  # reaching this module's globals would print it

PAYLOADS: list[tuple[str, str]] = [
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", REFUSED),
    ('{{ ().__class__.__base__.__subclasses__() }}', REFUSED),
    ('{{ [].__class__.__base__.__subclasses__() }}', REFUSED),
    ('{{ x.__class__ }}', REFUSED),
    ('{{ x.__dict__ }}', REFUSED),
    ('{{ canary.__dict__ }}', REFUSED),
    ('{{ canary.__init__.__globals__ }}', REFUSED),
    ('{{ canary.fire() }}', REFUSED),
    ("{{ (canary|attr('fire'))() }}", REFUSED),
    ("{{ canary['fire']() }}", REFUSED),
    ("{{ [canary]|map(attribute='fire')|map('string')|join }}", HARMLESS),
    ('{{ canary._secret }}', REFUSED),
    ("{{ canary|attr('_secret') }}", REFUSED),
    ('{{ cycler.__init__.__globals__ }}', REFUSED),
    ('{{ joiner.__init__.__globals__ }}', REFUSED),
    ('{{ namespace.__init__.__globals__ }}', REFUSED),
    ('{{ lipsum.__globals__ }}', REFUSED),
    ("{{ lipsum.__globals__['os'].system('id') }}", REFUSED),
    ('{{ self._TemplateReference__context }}', REFUSED),
    ('{{ self.__init__.__globals__ }}', REFUSED),
    ('{{ request }}', REFUSED),
    ('{{ config }}', REFUSED),
    ('{{ config.items() }}', REFUSED),
    ('{{ [].pop.__self__ }}', REFUSED),
    ('{{ [1].pop() }}', REFUSED),
    ('{{ contact.clear() }}', REFUSED),
    ("{{ ''|attr('__class__') }}", REFUSED),
    ("{{ ''|attr('__class__')|attr('__mro__') }}", REFUSED),
    ("{{ x|attr('\\x5f\\x5fclass\\x5f\\x5f') }}", REFUSED),
    ("{{ x['\\x5f\\x5fclass\\x5f\\x5f'] }}", REFUSED),
    ("{{ x['\\u005f\\u005fclass\\u005f\\u005f'] }}", REFUSED),
    ("{{ x[('_' * 2) ~ 'class' ~ ('_' * 2)] }}", REFUSED),
    ("{{ '{0.__class__}'.format(x) }}", REFUSED),
    ("{{ '{0.__class__.__mro__[1].__subclasses__}'.format(x) }}", REFUSED),
    ("{{ '{0.fire}'.format(canary) }}", HARMLESS),
    ("{{ '{0._secret}'.format(canary) }}", REFUSED),
    ("{{ '{x.__class__}'.format_map({'x': x}) }}", REFUSED),
    ("{{ ('{0.__class__}'|attr('format'))(x) }}", REFUSED),
    ("{% set f = '{0.__class__.__mro__}'.format %}{{ f(x) }}", REFUSED),
    ("{{ ['{0.__class__}']|map(attribute='format')|first }}", HARMLESS),
    ("{% set f = ['{0.__init__.__globals__}']|map(attribute='format')|first %}{{ f(canary) }}",
     REFUSED),
    ("{{ '%s'|format(''.__class__) }}", REFUSED),
    ("{{ '%(a)s' % {'a': x.__class__} }}", REFUSED),
    ("{{ x.__class__.__mro__|map('string')|join }}", REFUSED),
    ("{{ [x]|map(attribute='__class__')|list }}", HARMLESS),
    ("{{ [x]|selectattr('__class__')|list }}", REFUSED),
    ("{{ [canary]|selectattr('fire')|list|length }}", HARMLESS),
    ("{{ [canary]|map(attribute='_secret')|list }}", HARMLESS),
    ("{{ [canary]|sort(attribute='__class__') }}", HARMLESS),
    ("{{ [canary]|groupby('__class__') }}", HARMLESS),
    ("{{ [canary]|sum(attribute='__class__') }}", REFUSED),
    ('{{ range.__init__ }}', REFUSED),
    ('{{ range.__globals__ }}', REFUSED),
    ('{{ range.__code__ }}', REFUSED),
    ('{{ dict.mro() }}', REFUSED),
    ('{{ dict.mro()[1].__subclasses__() }}', REFUSED),
    ('{{ dict.__subclasses__() }}', REFUSED),
    ('{{ dict.fromkeys.__self__ }}', REFUSED),
    ('{{ joiner }}', HARMLESS),
    ('{{ joiner().__call__.__globals__ }}', REFUSED),
    ('{{ cycler(1, 2).__dict__ }}', REFUSED),
    ('{% set c = cycler(canary.fire) %}{{ c.next()() }}', REFUSED),
    ('{% for i in [1] %}{{ loop.cycle.__self__ }}{% endfor %}', REFUSED),
    ('{% for i in [1] %}{{ loop.__class__ }}{% endfor %}', REFUSED),
    ('{% for i in [1] %}{{ loop._iterator }}{% endfor %}', REFUSED),
    ('{% for i in [1] recursive %}{{ loop.__call__.__globals__ }}{% endfor %}', REFUSED),
    ('{% set ns = namespace() %}{% set ns.__class__ = 1 %}{{ ns.__class__ }}', REFUSED),
    ('{% set ns = namespace(fire=canary.fire) %}{{ ns.fire() }}', REFUSED),
    ('{% set ns = namespace() %}{{ ns._Namespace__attrs }}', REFUSED),
    ('{{ namespace(a=1).__dict__ }}', REFUSED),
    ("{{ gettext('x') }}", REFUSED),
    ("{{ ngettext('a', 'b', 1) }}", REFUSED),
    ("{{ _('x') }}", REFUSED),
    ('{{ environment }}', REFUSED),
    ('{{ context }}', REFUSED),
    ('{{ __builtins__ }}', REFUSED),
    ('{{ os }}', REFUSED),
    ("{{ __import__('os').system('touch CANARY_PATH') }}", REFUSED),
    ("{{ open('CANARY_PATH', 'w').write('x') }}", REFUSED),
    ("{{ eval('1+1') }}", REFUSED),
    ("{{ exec('import os') }}", REFUSED),
    ("{% import 'os' as os %}{{ os.system('id') }}", REFUSED),
    ("{% include '/etc/passwd' %}", REFUSED),
    ("{% extends '/etc/passwd' %}", REFUSED),
    ("{% from 'x' import y %}", REFUSED),
    ('{{ x.format.__globals__ }}', REFUSED),
    ('{{ x.encode.__self__ }}', REFUSED),
    ("{{ x|string|attr('format') }}", HARMLESS),
    ("{{ (x|attr('format'))('{0.__class__}') }}", HARMLESS),
    ('{{ x.__len__() }}', REFUSED),
    ('{{ 1.__class__ }}', REFUSED),
    ('{{ (1).__class__.__base__ }}', REFUSED),
    ('{{ x.mro }}', REFUSED),
    ('{{ contact.__class__.__init__.__globals__ }}', REFUSED),
    ('{{ contact.items.__self__.__class__ }}', REFUSED),
    ("{{ steps.setdefault('a', 1) }}", REFUSED),
    ("{{ event.update({'a': 1}) }}", REFUSED),
    ('{% set d = dict(a=1) %}{{ d.update(b=2) }}', REFUSED),
    ("{{ x|map('attr', '__class__')|list }}", HARMLESS),
    ("{{ [x]|map('attr', '__class__')|list }}", HARMLESS),
    ("{{ [canary]|map('attr', 'fire')|map('string')|list }}", HARMLESS),
    ("{{ [[canary.fire]]|map('first')|list }}", HARMLESS),
    ('{{ caller }}', REFUSED),
    ('{{ varargs }}', REFUSED),
    ('{{ kwargs }}', REFUSED),
    ('{% macro m() %}{{ caller.__globals__ }}{% endmacro %}{% call m() %}x{% endcall %}', REFUSED),
    ('{% macro m() %}{{ m._func.__globals__ }}{% endmacro %}{{ m() }}', REFUSED),
    ("{{ x.__getattribute__('__class__') }}", REFUSED),
    ("{{ x|attr('__getattribute__') }}", REFUSED),
    ('{{ x.__reduce_ex__(2) }}', REFUSED),
    ('{{ x.__init_subclass__ }}', REFUSED),
    ('{{ canary.fire.__func__ }}', REFUSED),
    ("{{ ''.__class__.__mro__[1].__subclasses__()[0].__init__.__globals__['__builtins__']"
     "['open']('CANARY_PATH', 'w').write('x') }}", REFUSED),
    ("{{ cycler.__init__.__globals__.os.popen('touch CANARY_PATH').read() }}", REFUSED),
    ("{{ self.__init__.__globals__.__builtins__.__import__('os').system('touch CANARY_PATH') }}",
     REFUSED),
    ("{{ namespace.__init__.__globals__.os.system('touch CANARY_PATH') }}", REFUSED),
    ("{{ x.__class__.__base__.__subclasses__()|map(attribute='__init__')"
     "|map(attribute='__globals__')|list }}", REFUSED),
    ("{{ [].__class__.__base__.__subclasses__()|selectattr('__name__', 'equalto', 'Popen')"
     "|first }}", REFUSED),
]

LEAKS = (SECRET, "<module", "__builtins__", "subprocess", "Popen", "catch_warnings",
         "_frozen_importlib", "<built-in function", "FIRED")
_DANGEROUS_PREFIXES = ("os.", "subprocess.", "shutil.", "socket.", "ctypes.", "pty.",
                       "urllib.", "http.", "ftplib.", "smtplib.", "webbrowser.", "glob.",
                       "tempfile.", "sqlite3.")
_DANGEROUS = {"sys.settrace", "sys.setprofile", "sys._getframe", "sys.addaudithook",
              "builtins.input", "builtins.breakpoint", "gc.get_objects", "gc.get_referrers",
              "gc.get_referents", "function.__new__", "object.__setattr__",
              "object.__delattr__"}
_JINJA_FILENAMES = ("<template>", "<unknown>")
_PYTHON_HOME = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix})


class Canary:
    """In every context; `fire` is the side effect a successful escape would trigger."""

    calls: list[str] = []  # noqa: RUF012 (class-level on purpose: shared by every copy)
    _secret = SECRET

    def fire(self) -> str:
        Canary.calls.append("fire")
        return "FIRED"

    fire.alters_data = True  # type: ignore[attr-defined]  # the sandbox's "unsafe" marker


_recording: list[tuple[str, tuple[Any, ...]]] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _recording is not None:
        _recording.append((event, args))


sys.addaudithook(_audit)  # cannot be removed; records only while a payload renders


def _in_python_home(path: object) -> bool:
    return isinstance(path, str) and path.startswith(_PYTHON_HOME)


def _harmful(event: str, args: tuple[Any, ...]) -> bool:
    """Anything a template render has no business doing.

    Jinja2 itself compiles and execs a one-line `raise` to rewrite tracebacks (filename
    `<template>`, or `<unknown>` for a syntax error) and lazily imports a few of its
    modules from the Python installation; typing asks for the frame of its own code (to name
    a generic alias's module) when one is first built during a render. Everything else counts.
    """
    if event == "sys._getframe" and getattr(
            getattr(args[0], "f_code", None), "co_filename", None) == typing.__file__:
        return False
    if event in _DANGEROUS or event.startswith(_DANGEROUS_PREFIXES):
        return True
    if event == "open":
        path, mode = args[0], args[1] if len(args) > 1 else "r"
        return not (_in_python_home(path) and "w" not in str(mode) and "a" not in str(mode))
    if event == "compile":
        return not (args[1] in _JINJA_FILENAMES or _in_python_home(args[1]))
    if event == "exec":
        filename = getattr(args[0], "co_filename", "")
        return not (filename in _JINJA_FILENAMES or _in_python_home(filename))
    return False


def _render(payload: str, canary_path: Path) -> tuple[str | None, Exception | None]:
    global _recording
    source = payload.replace("CANARY_PATH", str(canary_path))
    variables = {"x": "text", "canary": Canary(), "contact": {"email": "a@example.com"},
                 "event": {"k": "v"}, "steps": {"prev": {"n": 1}}, "run": {"id": "r-1"}}
    _recording = []
    try:
        return templates.render(source, variables), None
    except Exception as exc:  # the payload is judged below, whatever it raised
        return None, exc
    finally:
        events, _recording = _recording, None
        harmful = [f"{event} {args!r:.120}" for event, args in events if _harmful(event, args)]
        if harmful:
            raise AssertionError(f"harmful events while rendering: {harmful}")


class TestJinja2Release:
    def test_installed_jinja2_has_the_2024_2025_sandbox_fixes(self) -> None:
        version = importlib.metadata.version("jinja2")

        assert version == jinja2.__version__
        assert tuple(int(part) for part in version.split(".")[:3]) >= (3, 1, 6), version

    def test_attr_filter_cannot_reach_an_unsandboxed_str_format(self) -> None:
        # CVE-2025-27516 (fixed in 3.1.6): |attr('format') used to bypass the sandbox.
        with pytest.raises(SecurityError):
            templates.render("{{ ('{0.__class__.__mro__}'|attr('format'))(x) }}", {"x": ""})

    def test_a_stored_str_format_reference_stays_sandboxed(self) -> None:
        # CVE-2024-56326 (fixed in 3.1.5): format called indirectly, outside `call`.
        source = ("{% set f = ['{0.__init__.__globals__}']|map(attribute='format')|first %}"
                  "{{ f(canary) }}")

        with pytest.raises(SecurityError):
            templates.render(source, {"canary": Canary()})


class TestPayloads:
    def test_there_are_at_least_forty(self) -> None:
        assert len(PAYLOADS) >= 40
        assert len({payload for payload, _ in PAYLOADS}) == len(PAYLOADS)

    @pytest.mark.parametrize(("payload", "expected"), PAYLOADS,
                             ids=[f"p{i:03d}" for i in range(len(PAYLOADS))])
    def test_payload_is_refused_or_harmless_and_executes_nothing(
            self, payload: str, expected: str, tmp_path: Path) -> None:
        Canary.calls.clear()
        canary_path = tmp_path / "pwned"

        output, error = _render(payload, canary_path)

        assert Canary.calls == []
        assert not canary_path.exists()
        if expected == REFUSED:
            assert isinstance(error, SecurityError | UndefinedError | TemplateError | TypeError), (
                error)
            assert not isinstance(error, TemplateSyntaxError), "a payload must parse to count"
            # an error may echo the name the payload asked for, but nothing it reached
            assert not [leak for leak in LEAKS if leak in str(error) and leak not in payload]
        else:
            assert error is None, error
            assert output is not None
            assert not [leak for leak in LEAKS if leak in output], output

    def test_the_canaries_would_notice_an_escape(self, tmp_path: Path) -> None:
        """The same checks see a real side effect when one is let through on purpose."""
        global _recording
        canary_path = tmp_path / "pwned"
        _recording = []
        try:
            Canary().fire()
            canary_path.write_text("x")
        finally:
            events, _recording = _recording, None

        assert Canary.calls == ["fire"]
        assert canary_path.exists()
        assert [event for event, args in events if _harmful(event, args)] == ["open"]
        Canary.calls.clear()
