"""Sandboxed Jinja2 for templates and condition expressions.

Undefined variables raise (StrictUndefined) unless `| default(...)` is used; the
immutable sandbox refuses attribute access to internals such as `__class__`. Every
render is capped in time and output size (see engine.limits): a template over a cap
raises TemplateTooSlow or TemplateTooLarge, naming the cap and the `field` when given.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes

from relayflow.engine import limits, sandbox
from relayflow.engine.limits import (
    MAX_OUTPUT_CHARS,
    MAX_RENDER_SECONDS,
    TemplateLimitExceeded,
    TemplateTooLarge,
    TemplateTooSlow,
)

__all__ = [
    "MAX_OUTPUT_CHARS",
    "MAX_RENDER_SECONDS",
    "TemplateLimitExceeded",
    "TemplateSyntaxError",
    "TemplateTooLarge",
    "TemplateTooSlow",
    "compile_expression",
    "render",
    "render_value",
    "secret_refs",
]


class _StrictUndefined(StrictUndefined):
    """StrictUndefined that lets `steps.lookup.tier | default('x')` reach the filter.

    Attribute and item access on a missing value give back the same undefined (its error
    still names what was missing); any other use (print, compare, test, iterate) raises.
    Dunder lookups still fail, so the sandbox keeps refusing internals as before.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name[:2] == "__":
            raise AttributeError(name)
        return self

    def __getitem__(self, key: Any) -> Any:
        return self


_env = sandbox.LimitedSandbox(undefined=_StrictUndefined, autoescape=False)


@lru_cache(maxsize=8192)
def _compiled(source: str) -> Any:
    return _env.from_string(source)


@lru_cache(maxsize=8192)
def compile_expression(source: str) -> Any:
    """Compile a condition expression once; raises TemplateSyntaxError."""
    return _env.compile_expression(source, undefined_to_none=False)


def check_template(source: str) -> None:
    """Raise TemplateSyntaxError if `source` does not parse."""
    _compiled(source)


def render(source: str, variables: Mapping[str, Any], *, field: str | None = None) -> str:
    """Render one template string within the caps; `field` names it in limit errors."""
    if "{" not in source:  # the common case of plain text skips Jinja entirely
        return source
    template = _compiled(source)
    with limits.budget(field):
        return limits.collect(template.generate(variables))


def render_value(value: Any, variables: Mapping[str, Any], *, field: str | None = None) -> Any:
    """Render every string inside a JSON-like value; each string has its own caps."""
    if isinstance(value, str):
        return render(value, variables, field=field)
    if isinstance(value, Mapping):
        return {k: render_value(v, variables, field=f"{field}.{k}" if field else str(k))
                for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, variables, field=f"{field or ''}[{i}]")
                for i, v in enumerate(value)]
    return value


def evaluate(source: str, variables: Mapping[str, Any], *, field: str | None = None) -> Any:
    """Evaluate a condition expression within the time cap and the value-size guards."""
    with limits.budget(field):
        return compile_expression(source)(**variables)


def strings_in(value: Any) -> Iterator[str]:
    """Every string inside a JSON-like value (templates live in strings)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)


def secret_refs(source: str, *, expression: bool = False) -> set[str]:
    """Names used as `secrets.NAME` or `secrets['NAME']` in a template or expression."""
    tree = _env.parse(("{{ " + source + " }}") if expression else source)
    found: set[str] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, nodes.Getattr | nodes.Getitem)
        target = node.node
        if not (isinstance(target, nodes.Name) and target.name == "secrets"):
            continue
        if isinstance(node, nodes.Getattr):
            found.add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found.add(node.arg.value)
        else:
            found.add("*")
    for name in tree.find_all(nodes.Name):
        if name.name == "secrets" and not found:
            found.add("*")
    return found
