"""What a person types in the run search (`GET /api/v1/runs?q=`, the box on /runs), as a
`Search` the run listing applies (storage/repositories/run_search.py).

- Words: `ORD-1042`, `timeout`, `ada@example.com`. A term's words are its runs of letters
  and digits (`ORD-1042` is `ord` and `1042`); a run matches when the words of its trigger
  payload's values, captured fields, idempotency key and error include every one of them,
  ignoring case. Whole words: `1042` does not find `10420`.
- `key:value`: the payload's (or a captured field's) value at `key` equals `value`,
  ignoring case; a dotted key goes into objects (`customer.tier:gold`). Quotes keep a
  value with spaces together (`city:"New York"`).
- A term of 4 to 32 hexadecimal digits (dashes allowed) also finds the runs whose id
  starts with it, as the pages show ids.
- Terms separated by spaces must all match; every other filter applies as well.
"""

from __future__ import annotations

import re
import uuid

from relayflow.errors import InvalidInput
from relayflow.storage.repositories.run_search import Search, Term

MAX_LENGTH = 500
MAX_TERMS = 10
_TERMS = re.compile(r'(?:[^\s"]|"[^"]*")+')
_PAIR = re.compile(r"([A-Za-z_][\w-]*(?:\.[\w-]+)*):(.+)", re.DOTALL)
_WORD = re.compile(r"[^\W_]+")
_ID_START = re.compile(r"[0-9a-f]{4,32}")


def words(text: str) -> tuple[str, ...]:
    """Its runs of letters and digits, lower case: the words both indexes make."""
    return tuple(dict.fromkeys(_WORD.findall(text.lower())))


def _id_range(term: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    digits = term.replace("-", "").lower()
    if not _ID_START.fullmatch(digits):
        return None
    return uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))


def _term(raw: str) -> Term:
    pair = _PAIR.fullmatch(raw)
    if pair and not pair.group(2).startswith("/"):  # a URL is words, not key "https"
        value = pair.group(2).replace('"', "")
        found = words(value)
        if not found:
            raise InvalidInput(f"search: {raw!r} has no letters or digits in its value")
        return Term(words=found, path=tuple(pair.group(1).split(".")),
                    value=value.strip().lower())
    text = raw.replace('"', "")
    found = words(text)
    id_range = _id_range(text)
    if not found:
        raise InvalidInput(f"search: {raw!r} has no letters or digits to look for")
    return Term(words=found, id_range=id_range)


def parse(q: str | None) -> Search | None:
    """The search `q` asks for; None when it is empty. A clear InvalidInput for what
    cannot be searched (too long, too many terms, an unclosed quote, no words)."""
    text = (q or "").strip()
    if not text:
        return None
    if len(text) > MAX_LENGTH:
        raise InvalidInput(f"search: at most {MAX_LENGTH} characters")
    if "\x00" in text:
        raise InvalidInput("search: must not contain NUL (\\u0000) characters")
    if text.count('"') % 2:
        raise InvalidInput('search: a quote (") is not closed')
    raw = _TERMS.findall(text)
    if len(raw) > MAX_TERMS:
        raise InvalidInput(f"search: at most {MAX_TERMS} terms")
    return Search(terms=tuple(_term(term) for term in raw))
