"""CSV downloads (runs, delivery attempts): cells a spreadsheet will not run as formulas,
written and streamed a large chunk at a time."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence

from fastapi.responses import StreamingResponse

# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """A cell as text, with a leading ' when a spreadsheet would read it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_chunks(columns: Sequence[str], records: Iterable[Sequence[object]], *,
               chunk_bytes: int = 256 * 1024) -> Iterator[str]:
    """The header row and the records as CSV text (RFC 4180: CRLF, quoted as needed), a
    chunk of about `chunk_bytes` at a time (each chunk is a hop from the server's event
    loop to a worker thread, so they must not be small)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow(record)
        if buffer.tell() >= chunk_bytes:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def csv_response(chunks: Iterator[str], *, filename: str) -> StreamingResponse:
    """A download of `chunks`, streamed as they are made: memory stays flat whatever the
    row count."""
    return StreamingResponse(chunks, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store"})
