"""Sandboxed Jinja2 for templates and condition expressions.

Undefined variables raise (StrictUndefined) unless `| default(...)` is used; the
immutable sandbox refuses attribute access to internals such as `__class__`. Every
render is capped in time and output size (see engine.limits): a template over a cap
raises TemplateTooSlow or TemplateTooLarge, naming the cap and the `field` when given.
"""

from __future__ import annotations

import contextlib
import json
import re
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
    "describe",
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
    """Render one template string within the caps; `field` names it in limit errors, and
    any other error raised is marked with the field and the expression (see `describe`)."""
    if "{" not in source:  # the common case of plain text skips Jinja entirely
        return source
    template = _compiled(source)
    try:
        with limits.budget(field):
            return limits.collect(template.generate(variables))
    except TemplateLimitExceeded:
        raise  # names its field already
    except Exception as exc:
        _mark(exc, field, _failing_segment(source, exc))
        raise


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
    """Evaluate a condition expression within the time cap and the value-size guards; an
    error is marked with the field and the expression, as in `render`."""
    try:
        with limits.budget(field):
            return compile_expression(source)(**variables)
    except TemplateLimitExceeded:
        raise
    except Exception as exc:
        _mark(exc, field, source)
        raise


# --- where an error came from -------------------------------------------------------------
#
# A template error says what went wrong ("'dict object' has no attribute 'card_last4'") but
# not where. `render` and `evaluate` mark the exception they let through with the field
# being rendered and the expression in it that failed; `describe` puts the three together.

MAX_EXPRESSION_CHARS = 200
_WHERE = "_relayflow_template_where"
_SEGMENT = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
_MISSING = re.compile(r"has no (?:attribute|element) '([^']+)'$|^'([^']+)' is undefined$")


def _clip(text: str, limit: int = MAX_EXPRESSION_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mark(exc: Exception, field: str | None, expression: str) -> None:
    if getattr(exc, _WHERE, None) is None:
        with contextlib.suppress(AttributeError, TypeError):  # an exception without a __dict__
            setattr(exc, _WHERE, (field, _clip(expression)))


def _template_line(exc: BaseException) -> int | None:
    """The template line the error was raised on: Jinja rewrites a render's traceback so
    that the template's frames carry its own line numbers."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _failing_segment(source: str, exc: Exception) -> str:
    """The `{{ ... }}` or `{% ... %}` of `source` the error came from: those on the line
    the error was raised on, narrowed to the one naming the missing variable; when more
    than one is left, the text from the first to the last of them. The whole source when
    it has none."""
    segments = []
    for found in _SEGMENT.finditer(source):
        first = source.count("\n", 0, found.start()) + 1
        segments.append((first, first + found.group().count("\n"), found.start(), found.end()))
    line = _template_line(exc)
    if line is not None:
        segments = [s for s in segments if s[0] <= line <= s[1]] or segments
    missing = _MISSING.search(str(exc))
    if missing is not None:
        name = re.compile(rf"\b{re.escape(missing.group(1) or missing.group(2))}\b")
        segments = [s for s in segments if name.search(source, s[2], s[3])] or segments
    if not segments:
        return source
    return source[segments[0][2]:segments[-1][3]]


def describe(exc: BaseException) -> str:
    """The error's message, after the field and before the expression it came from when
    `render` or `evaluate` raised it: `body: 'dict object' has no attribute 'card_last4'
    in {{ contact.card_last4 }}`."""
    where = getattr(exc, _WHERE, None)
    if where is None:
        return str(exc)
    field, expression = where
    return f"{field}: {exc} in {expression}" if field else f"{exc} in {expression}"


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


# --- what an expression saw ---------------------------------------------------------------
#
# A CONDITION step records the variables its expression read and their values, so the run
# page can say why the branch was taken. Bounded: at most MAX_SEEN_NAMES paths, each value
# shown whole while its JSON is at most MAX_SEEN_CHARS characters, else as a clipped text.

MAX_SEEN_NAMES = 20
MAX_SEEN_CHARS = 200
VarPath = tuple[str | int, ...]
_ABSENT = object()


def _path(node: nodes.Node) -> VarPath | None:
    """`contact.plan` → ("contact", "plan"); None for anything but a chain of attribute
    and constant-index lookups on a variable."""
    if isinstance(node, nodes.Name):
        return (node.name,)
    if isinstance(node, nodes.Getattr):
        base = _path(node.node)
        return (*base, node.attr) if base is not None else None
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
            and isinstance(node.arg.value, str | int) and not isinstance(node.arg.value, bool):
        base = _path(node.node)
        return (*base, node.arg.value) if base is not None else None
    return None


@lru_cache(maxsize=4096)
def references(source: str) -> tuple[VarPath, ...]:
    """The variables an expression reads, each as the longest path it follows from a name
    (`contact.plan == 'pro'` reads ("contact", "plan")), in order, each once. A computed
    index ends a path: `contact[key]` reads `contact` and `key`. Globals (`range`, ...)
    are not variables."""
    found: dict[VarPath, None] = {}
    stack: list[nodes.Node] = [_env.parse("{{ " + source + " }}")]
    while stack:
        node = stack.pop()
        path = _path(node)
        if path is not None:
            if not (len(path) == 1 and path[0] in _env.globals):
                found.setdefault(path, None)
            continue
        stack.extend(reversed(list(node.iter_child_nodes())))
    return tuple(found)


def path_text(path: VarPath) -> str:
    """("contact", "plan") → `contact.plan`; ("steps", "x", 0) → `steps.x[0]`."""
    out = str(path[0])
    for part in path[1:]:
        out += f".{part}" if isinstance(part, str) and part.isidentifier() else f"[{part!r}]"
    return out


def _lookup(variables: Mapping[str, Any], path: VarPath) -> Any:
    value: Any = variables.get(str(path[0]), _ABSENT)
    for part in path[1:]:
        keyed = isinstance(value, Mapping) and part in value
        indexed = (isinstance(value, list | tuple) and isinstance(part, int)
                   and -len(value) <= part < len(value))
        if not (keyed or indexed):
            return _ABSENT
        value = value[part]
    return value


def _bounded(value: Any) -> Any:
    """The value as it is when small and plain JSON, else its text cut to MAX_SEEN_CHARS."""
    if isinstance(value, str):
        return value if len(value) <= MAX_SEEN_CHARS else value[: MAX_SEEN_CHARS - 1] + "…"
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        text = repr(value)
    else:
        if len(text) <= MAX_SEEN_CHARS:
            return value
    return text if len(text) <= MAX_SEEN_CHARS else text[: MAX_SEEN_CHARS - 1] + "…"


def seen(source: str, variables: Mapping[str, Any]) -> dict[str, Any]:
    """What the expression read, for a step's output: `seen` (path → value, bounded),
    `undefined` (paths it read that have no value, e.g. under `is defined`) and
    `seen_omitted` (how many paths past MAX_SEEN_NAMES were left out), the last two only
    when not empty."""
    paths = references(source)
    values: dict[str, Any] = {}
    missing: list[str] = []
    for path in paths[:MAX_SEEN_NAMES]:
        value = _lookup(variables, path)
        if value is _ABSENT:
            missing.append(path_text(path))
        else:
            values[path_text(path)] = _bounded(value)
    out: dict[str, Any] = {"seen": values}
    if missing:
        out["undefined"] = missing
    if len(paths) > MAX_SEEN_NAMES:
        out["seen_omitted"] = len(paths) - MAX_SEEN_NAMES
    return out
