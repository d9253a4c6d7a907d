"""Size guards: refuse an operation whose result would pass the output cap, before it runs.

Each check estimates the result from the operands (see `weight`) so that nothing large
is ever allocated; engine.sandbox calls them from the intercepted operators, from every
call and from the filters that can amplify their input.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from itertools import chain
from typing import Any

from jinja2 import filters as jinja_filters
from jinja2.nodes import EvalContext
from jinja2.utils import pass_environment, pass_eval_context
from markupsafe import Markup  # Jinja2's own string type (a dependency of Jinja2)

from relayflow.engine.limits import (
    MAX_INT_BITS,
    MAX_OUTPUT_CHARS,
    TemplateTooLarge,
    too_large,
    where,
)

_END = object()


def weight(value: Any, limit: int = MAX_OUTPUT_CHARS) -> int:
    """About how many characters `value` prints as; stops counting once past `limit`.

    A shared reference counts every time it appears, as it does when printed, so
    `[s] * n` weighs n times s even though it holds one string."""
    total = 0
    pending: list[Iterator[Any]] = [iter((value,))]
    while pending and total <= limit:
        item = next(pending[-1], _END)
        if item is _END:
            pending.pop()
        elif isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, Mapping):
            total += 1 + len(item)
            pending.append(chain.from_iterable(item.items()))
        elif isinstance(item, list | tuple | set | frozenset):
            total += 1 + len(item)
            pending.append(iter(item))
        else:
            total += 1
    return total


def check_size(size: int, what: str = "value") -> None:
    if size > MAX_OUTPUT_CHARS:
        raise too_large(what)


def _check_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise TemplateTooLarge(where(f"template number is larger than {MAX_INT_BITS} bits"))


def _check_repeat(sequence: Any, times: int) -> None:
    if times > 0:
        check_size(weight(sequence, MAX_OUTPUT_CHARS // times + 1) * times)


_PRINTF = re.compile(rb"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


def _printf_size(fmt: str | bytes, args: Any) -> int:
    """An upper bound on the length of `fmt % args`."""
    if isinstance(args, Mapping):
        values, widest = list(args.values()), weight(args)
    else:
        values = list(args) if isinstance(args, tuple) else [args]
        widest = max((weight(v) for v in values), default=0)
    raw = fmt.encode("utf-8", "replace") if isinstance(fmt, str) else fmt
    size = len(fmt)
    for match in _PRINTF.finditer(raw):
        for number in match.group(1, 2):
            if number == b"*":
                size += max((abs(v) for v in values if isinstance(v, int)), default=0)
            elif number:
                size += int(number) if len(number) < 10 else MAX_OUTPUT_CHARS + 1
        size += widest
    return size


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operator whose result would be too large, before computing it."""
    if operator == "*":
        if isinstance(left, int) and isinstance(right, int):
            _check_bits(left.bit_length() + right.bit_length())
        elif isinstance(left, str | bytes | list | tuple) and isinstance(right, int):
            _check_repeat(left, right)
        elif isinstance(left, int) and isinstance(right, str | bytes | list | tuple):
            _check_repeat(right, left)
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            _check_bits(left.bit_length() * right)
    elif operator == "+":
        if isinstance(left, str | bytes | list | tuple) and isinstance(
                right, str | bytes | list | tuple):
            check_size(weight(left) + weight(right))
    elif operator == "%" and isinstance(left, str | bytes):
        check_size(_printf_size(left, right))


def _int_arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], name: str, default: int) -> int:
    value = args[0] if args else kwargs.get(name, default)
    return value if isinstance(value, int) else default


def _joined(sep: str | bytes, items: list[Any]) -> int:
    return weight(items) + len(sep) * max(len(items) - 1, 0)


def check_call(obj: Any, args: tuple[Any, ...],
                        kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """Refuse a call that would build a huge value (str/bytes methods such as `center`,
    `replace`, `join`; `int.to_bytes`; `dict.fromkeys`) before it runs; returns the args.

    An iterable argument of `join` or `fromkeys` is materialized (so it can be measured)
    and passed on as a list.
    """
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if isinstance(owner, type) and issubclass(owner, dict) and name == "fromkeys" and args:
        keys = list(args[0])
        value = weight(args[1]) if len(args) > 1 else 1
        check_size(weight(keys) + len(keys) * value)
        return (keys, *args[1:])
    if isinstance(owner, int) and name == "to_bytes":
        check_size(_int_arg(args, kwargs, "length", 1))
        return args
    if not isinstance(owner, str | bytes):
        return args
    size = 0
    if name in ("center", "ljust", "rjust", "zfill"):
        size = _int_arg(args, kwargs, "width", 0)
    elif name == "expandtabs":
        tabsize = _int_arg(args, kwargs, "tabsize", 8)
        tab: Any = "\t" if isinstance(owner, str) else b"\t"
        size = len(owner) + owner.count(tab) * tabsize
    elif name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        if isinstance(old, str | bytes) and isinstance(new, str | bytes):
            hits = owner.count(old) if old else len(owner) + 1  # type: ignore[arg-type]
            limit = args[2] if len(args) > 2 and isinstance(args[2], int) else -1
            hits = hits if limit < 0 else min(hits, limit)
            size = len(owner) + hits * max(len(new) - len(old), 0)
    elif name == "translate" and args and isinstance(args[0], Mapping):
        widest = max((weight(v) for v in args[0].values()), default=1)
        size = len(owner) * max(widest, 1)
    elif name == "join" and args:
        items = list(args[0])
        size = _joined(owner, items)
        args = (items, *args[1:])
    check_size(size)
    return args



def amplifying_filters() -> dict[str, Callable[..., Any]]:
    """Wrappers of the filters that can amplify their input, checked before they run."""

    def center(value: Any, width: int = 80) -> str:
        if isinstance(width, int):
            check_size(width)
        return jinja_filters.do_center(value, width)

    def indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
        text = str(s)
        step = width if isinstance(width, int) else len(str(width))
        check_size(len(text) + (text.count("\n") + 1) * max(step, 0))
        return jinja_filters.do_indent(s, width, first, blank)

    @pass_environment
    def wordwrap(environment: Any, s: Any, width: int = 79, break_long_words: bool = True,
                 wrapstring: str | None = None, break_on_hyphens: bool = True) -> str:
        text = str(s)
        joint = len(wrapstring if wrapstring is not None else environment.newline_sequence)
        lines = len(text) // max(width if isinstance(width, int) else 1, 1) + 1
        check_size(len(text) + (lines + text.count("\n")) * joint)
        return jinja_filters.do_wordwrap(environment, s, width, break_long_words, wrapstring,
                                         break_on_hyphens)

    @pass_eval_context
    def replace(eval_ctx: EvalContext, s: Any, old: Any, new: Any,
                count: int | None = None) -> str:
        check_call(str(s).replace, (str(old), str(new), count or -1), {})
        return jinja_filters.do_replace(eval_ctx, s, old, new, count)

    @pass_eval_context
    def join(eval_ctx: EvalContext, value: Iterable[Any], d: str = "",
             attribute: str | int | None = None) -> str:
        items = list(value)
        check_size(_joined(str(d), items))
        return jinja_filters.sync_do_join(eval_ctx, items, d, attribute)

    def format_(value: Any, *args: Any, **kwargs: Any) -> str:
        check_size(_printf_size(str(value), kwargs or args))
        return jinja_filters.do_format(value, *args, **kwargs)

    def batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Iterator[Any]:
        if isinstance(linecount, int):
            check_size(linecount)
        return jinja_filters.do_batch(value, linecount, fill_with)

    def slice_(value: Collection[Any], slices: int, fill_with: Any = None) -> Iterator[Any]:
        if isinstance(slices, int):
            check_size(slices)
        return jinja_filters.sync_do_slice(value, slices, fill_with)

    @pass_eval_context
    def tojson(eval_ctx: EvalContext, value: Any, indent: int | None = None) -> Markup:
        if indent is not None:
            step = indent if isinstance(indent, int) else len(str(indent))
            check_size(weight(value) * (1 + max(step, 0)))
        return jinja_filters.do_tojson(eval_ctx, value, indent)

    return {"center": center, "indent": indent, "wordwrap": wordwrap, "replace": replace,
            "join": join, "format": format_, "batch": batch, "slice": slice_,
            "tojson": tojson}
