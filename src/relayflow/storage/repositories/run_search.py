"""Runs found by what they hold (GET /api/v1/runs?q=): the words of their trigger payload,
captured fields, idempotency key and error (migration 0024 indexes them in run_search:
PostgreSQL a table of tsvectors under a GIN index, SQLite an FTS5 table), a value at a
key, or the start of their id. services/search.py turns what a person typed into a
`Search`."""

from __future__ import annotations

import typing
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, Uuid, and_, func, literal, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement

from relayflow.storage.models import WorkflowRun


@dataclass(frozen=True, slots=True)
class Term:
    """One search term: every word among the run's, and the value at `path` equal to
    `value` (ignoring case) when it is a key:value term; or, for a term that could be
    the start of an id, the run's id in `id_range` instead."""

    words: tuple[str, ...]
    path: tuple[str, ...] = ()
    value: str | None = None
    id_range: tuple[uuid.UUID, uuid.UUID] | None = None


@dataclass(frozen=True, slots=True)
class Search:
    terms: tuple[Term, ...]


_RUNS = typing.cast(Table, WorkflowRun.__table__)


class _HasWords(ColumnElement[bool]):
    """The run's indexed words include every one of `words` (lower case, letters and
    digits only: services/search.py makes them so)."""

    # No type: a Boolean would be written `(... IN (...)) = 1` on SQLite, which no index
    # can drive.
    inherit_cache = False

    def __init__(self, words: tuple[str, ...],
                 id_range: tuple[uuid.UUID, uuid.UUID] | None = None) -> None:
        self.words = words
        self.id_range = id_range


def _or_id_range(element: _HasWords, compiler: SQLCompiler, **kw: Any) -> str:
    """The runs whose id is in the element's range, as more rows of the same subquery:
    one `id IN (...)` that both databases drive by key, where `IN (...) OR id BETWEEN`
    made PostgreSQL read every run and test each."""
    if element.id_range is None:
        return ""
    low, high = (compiler.process(literal(value, Uuid()), **kw) for value in element.id_range)
    # Bound parameters only (the values are given to the compiler, not written in).
    return f" UNION ALL SELECT id FROM workflow_runs WHERE id BETWEEN {low} AND {high}"  # nosec B608


@compiles(_HasWords, "sqlite")
def _sqlite_words(element: _HasWords, compiler: SQLCompiler, **kw: Any) -> str:
    # Each word quoted: an FTS5 string, never its query syntax. The subquery's rows are
    # the matching runs' ids, compared as the text SQLite stores.
    query = " AND ".join(f'"{word}"' for word in element.words)
    return (f"{compiler.process(_RUNS.c.id, **kw)} IN (SELECT run_id FROM run_search "
            f"WHERE run_search MATCH {compiler.process(literal(query), **kw)}"
            f"{_or_id_range(element, compiler, **kw)})")  # nosec B608


@compiles(_HasWords, "postgresql")
def _postgres_words(element: _HasWords, compiler: SQLCompiler, **kw: Any) -> str:
    words = compiler.process(literal(" ".join(element.words)), **kw)
    return (f"{compiler.process(_RUNS.c.id, **kw)} IN (SELECT run_id FROM run_search "
            f"WHERE words @@ plainto_tsquery('simple'::regconfig, {words})"
            f"{_or_id_range(element, compiler, **kw)})")  # nosec B608


def _value_at(term: Term) -> ColumnElement[bool]:
    return or_(*(func.lower(column[term.path].as_string()) == term.value
                 for column in (WorkflowRun.trigger_payload, WorkflowRun.captured)))


def condition(search: Search) -> ColumnElement[bool]:
    """The runs `search` finds: the words of every term that cannot be an id are asked of
    the index at once; a term that could be the start of an id also matches by id."""
    words = tuple(dict.fromkeys(w for t in search.terms if t.id_range is None for w in t.words))
    parts: list[ColumnElement[bool]] = [_HasWords(words)] if words else []
    for term in search.terms:
        if term.id_range is not None:
            parts.append(_HasWords(term.words, term.id_range))
        if term.path:
            parts.append(_value_at(term))
    return and_(*parts)
