"""The environment templates render in: Jinja2's immutable sandbox with the render limits.

See engine.limits for the caps and engine.guards for the size checks this wires in.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterable, Iterator
from functools import update_wrapper
from string import Formatter
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.runtime import Context
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
)
from markupsafe import Markup  # Jinja2's own string type (a dependency of Jinja2)

from relayflow.engine import guards
from relayflow.engine.limits import MAX_OUTPUT_CHARS, check_deadline, guarded, too_large


class _CappedBuffer(list[str]):
    """The output buffer of a macro, block, `{% set %}` or `{% filter %}` body."""

    __slots__ = ("_size",)

    def __init__(self) -> None:
        super().__init__()
        self._size = 0

    def append(self, item: str, /) -> None:
        self._size += len(item)
        if self._size > MAX_OUTPUT_CHARS:
            raise too_large()
        check_deadline()
        super().append(item)

    def extend(self, items: Iterable[str], /) -> None:
        for item in items:
            self.append(item)


class _CodeGenerator(CodeGenerator):
    """Jinja2's code generator, with every buffered body written into a _CappedBuffer and
    every `~` concatenation measured before it is joined (neither passes a sandbox hook)."""

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.capped_buffer()")

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        else:
            join = "markup_join" if frame.eval_ctx.autoescape else "str_join"
        self.write(f"environment.guarded_concat({join}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _CappedFormatting(Formatter):
    """`str.format` in the sandbox: no huge widths, and stop once the result passes the cap."""

    _size = 0

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self._size = 0
        return super().vformat(format_string, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> Any:
        for digits in re.findall(r"\d+", format_spec):
            guards.check_size(int(digits) if len(digits) < 10 else MAX_OUTPUT_CHARS + 1)
        text = super().format_field(value, format_spec)
        self._size += len(text)
        guards.check_size(self._size)
        return text


class _CappedFormatter(_CappedFormatting, SandboxedFormatter):
    pass


class _CappedEscapeFormatter(_CappedFormatting, SandboxedEscapeFormatter):
    pass


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment with the time and size caps of this module."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # lipsum(n) loops n times inside one call; nothing in contact automation needs it.
        self.globals.pop("lipsum", None)
        self.filters.update(guards.amplifying_filters())

    def capped_buffer(self) -> list[str]:
        return _CappedBuffer()

    def guarded_concat(self, join: Callable[[Iterable[Any]], str], parts: tuple[Any, ...]) -> str:
        guards.check_size(sum(guards.weight(part) for part in parts))
        return join(parts)

    def guarded_loop(self, iterable: Iterable[Any]) -> Iterator[Any]:
        return guarded(iterable)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in list(tree.find_all(nodes.For)):
            loop.iter = nodes.Call(nodes.EnvironmentAttribute("guarded_loop"), [loop.iter], [],
                                   None, None, lineno=loop.lineno)
            loop.iter.set_environment(self)
        return tree

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        check_deadline()
        guards.check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        check_deadline()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        check_deadline()
        return super().getitem(obj, argument)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        check_deadline()
        args = guards.check_call(__obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        # A call missed by the checks above may not have built a value past the cap, but
        # handing back (a part or copy of) data it was given is fine: `steps.x.get('body')`.
        size = guards.weight(result)
        given = (getattr(__obj, "__self__", None), args, kwargs)
        if size > MAX_OUTPUT_CHARS and size > guards.weight(given, size):
            raise too_large("value")
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja2 3.1.6's own `wrap_str_format`, with the formatters swapped for capped ones.

        A copy because Jinja2 builds its formatter inside the method; the escape tests
        (str.format via `|attr`, stored `format` references) cover it."""
        if not isinstance(value, types.MethodType | types.BuiltinMethodType) or (
                value.__name__ not in ("format", "format_map")):
            return None
        owner: Any = value.__self__
        if not isinstance(owner, str):
            return None
        str_type: type[str] = type(owner)
        is_format_map = value.__name__ == "format_map"
        formatter: SandboxedFormatter
        if isinstance(owner, Markup):
            formatter = _CappedEscapeFormatter(self, escape=owner.escape)
        else:
            formatter = _CappedFormatter(self)
        vformat = formatter.vformat

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(
                        f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs, args = args[0], ()
            return str_type(vformat(owner, args, kwargs))

        return update_wrapper(wrapper, value)
