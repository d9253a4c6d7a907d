"""Run volume as an inline SVG bar chart, stacked by status, drawn on the server.

No script and no library: the SVG carries a <title> and <desc>, every bar a tooltip, and
the same numbers follow as a table (in a <details>), so the chart reads without sight and
without colour. Times are in the viewer's timezone; the caption names it.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, tzinfo

from markupsafe import Markup, escape

from relayflow.services.run_history import Volume

# Bottom to top; RUNNING counts PENDING runs too (like the Running chip).
SERIES = (("COMPLETED", "Completed"), ("FAILED", "Failed"), ("RUNNING", "Running"),
          ("CANCELED", "Canceled"))
WIDTH, HEIGHT = 720, 150
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 10, 26
MAX_LABELS = 8
# Failed bars are hatched, so they differ from the others by more than colour.
HATCH = ('<defs><pattern id="volume-hatch" width="5" height="5" patternUnits="userSpaceOnUse" '
         'patternTransform="rotate(45)"><rect width="5" height="5" fill="#dc2626"/>'
         '<rect width="1.6" height="5" fill="#fca5a5"/></pattern></defs>')
_UNITS = {timedelta(hours=1): "hour", timedelta(hours=6): "6 hours", timedelta(days=1): "day",
          timedelta(days=7): "week"}


def unit(size: timedelta) -> str:
    return _UNITS.get(size, f"{size.days} days")


def nice_max(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above value (at least 1)."""
    if value <= 1:
        return 1
    power: int = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def _day(at: datetime) -> str:
    return f"{at:%b} {at.day}"


def ticked(local: list[datetime], size: timedelta) -> set[int]:
    """Which buckets get an axis label: at most about MAX_LABELS, on round local times
    (every few hours, or midnights) so the labels read as a scale."""
    n = len(local)
    if size == timedelta(hours=1):
        hours = next((h for h in (1, 2, 3, 4, 6, 12) if n / h <= MAX_LABELS), 24)
        return {i for i, at in enumerate(local) if at.hour % hours == 0}
    if size < timedelta(days=1):
        midnights = [i for i, at in enumerate(local) if (at.hour, at.minute) == (0, 0)]
        every = max(1, math.ceil(len(midnights) / MAX_LABELS))
        return set(midnights[::every])
    return set(range(0, n, max(1, math.ceil(n / MAX_LABELS))))


def tick_label(at: datetime, size: timedelta) -> str:
    """Short, for the axis."""
    if size < timedelta(days=1):
        return _day(at) if at.hour == 0 and at.minute == 0 else f"{at:%H:%M}"
    if size <= timedelta(days=7):
        return _day(at)
    return f"{at:%b %Y}"


def bucket_label(at: datetime, size: timedelta) -> str:
    """In full, for tooltips and the table: "Mar 4 2025, 14:00 to 15:00", "Mar 4 2025"."""
    end = at + size
    if size < timedelta(days=1):
        return f"{_day(at)} {at.year}, {at:%H:%M} to {end:%H:%M}"
    if size == timedelta(days=1):
        return f"{at:%a} {_day(at)} {at.year}"
    return f"{_day(at)} {at.year} to {_day(end - timedelta(seconds=1))} {end.year}"


def _runs(n: int) -> str:
    return f"{n:,} run" if n == 1 else f"{n:,} runs"


def _breakdown(counts: dict[str, int]) -> str:
    parts = [f"{counts[key]:,} {label.lower()}" for key, label in SERIES if counts[key]]
    return ", ".join(parts) if parts else "no runs"


def _bars(volume: Volume, zone: tzinfo, top: int) -> tuple[list[str], list[str]]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = len(volume.buckets)
    slot = plot_w / n
    bar_w = max(1.0, slot * 0.78)
    labelled = ticked([start.astimezone(zone) for start, _ in volume.buckets], volume.size)
    bars, ticks = [], []
    for i, (start, counts) in enumerate(volume.buckets):
        local = start.astimezone(zone)
        x = LEFT + i * slot + (slot - bar_w) / 2
        total = sum(counts.values())
        label = bucket_label(local, volume.size)
        data = " ".join(f'data-{key.lower()}="{counts[key]}"' for key, _ in SERIES)
        parts = [f'<g class="bar" data-start="{start.isoformat()}" data-total="{total}" {data}>'
                 f"<title>{escape(label)}: {_runs(total)} — {escape(_breakdown(counts))}"
                 "</title>"]
        y = float(TOP + plot_h)
        for key, _ in SERIES:
            h = counts[key] / top * plot_h
            if h > 0:
                y -= h
                parts.append(f'<rect class="s-{key.lower()}" x="{x:.1f}" y="{y:.1f}" '
                             f'width="{bar_w:.1f}" height="{h:.1f}"/>')
        bars.append("".join(parts) + "</g>")
        if i in labelled:
            ticks.append(f'<text class="tick" x="{x + bar_w / 2:.1f}" y="{HEIGHT - 8}" '
                         f'text-anchor="middle">{escape(tick_label(local, volume.size))}</text>')
    return bars, ticks


def _axis(top: int) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    values = sorted({0, top // 2, top} if top % 2 == 0 else {0, top})
    out = []
    for value in values:
        y = TOP + plot_h - value / top * plot_h
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" '
                   f'y2="{y:.1f}"/><text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" '
                   f'text-anchor="end">{value:,}</text>')
    return out


def _table(volume: Volume, zone: tzinfo) -> str:
    head = "".join(f'<th scope="col" class="num">{label}</th>' for _, label in SERIES)
    rows = []
    for start, counts in volume.buckets:
        if not any(counts.values()):
            continue
        cells = "".join(f'<td class="num">{counts[key]:,}</td>' for key, _ in SERIES)
        label = escape(bucket_label(start.astimezone(zone), volume.size))
        rows.append(f'<tr><th scope="row">{label}</th>{cells}'
                    f'<td class="num">{sum(counts.values()):,}</td></tr>')
    totals = volume.totals()
    foot = "".join(f'<td class="num">{totals[key]:,}</td>' for key, _ in SERIES)
    body = "".join(rows) or f'<tr><td colspan="{len(SERIES) + 2}">No runs.</td></tr>'
    return (f'<details class="volume-numbers"><summary>Show the numbers</summary>'
            f'<div class="table-wrap"><table class="data"><caption class="visually-hidden">'
            f"Runs per {unit(volume.size)} by status</caption><thead><tr>"
            f'<th scope="col">{unit(volume.size).capitalize()}</th>{head}'
            f'<th scope="col" class="num">Total</th></tr></thead><tbody>{body}</tbody>'
            f'<tfoot><tr><th scope="row">All</th>{foot}<td class="num">'
            f"{sum(totals.values()):,}</td></tr></tfoot></table></div></details>")


def _legend(volume: Volume) -> str:
    totals = volume.totals()
    items = "".join(
        f'<li data-series="{key}"><span class="swatch s-{key.lower()}" aria-hidden="true">'
        f'</span>{label} <strong data-count>{totals[key]:,}</strong></li>'
        for key, label in SERIES)
    return f'<ul class="legend">{items}</ul>'


def render_volume(volume: Volume, *, zone: tzinfo, zone_name: str) -> Markup:
    totals = volume.totals()
    total = sum(totals.values())
    peak = max((sum(c.values()) for _, c in volume.buckets), default=0)
    top = nice_max(peak)
    first = volume.start.astimezone(zone)
    last = volume.end.astimezone(zone)
    title = (f"Runs per {unit(volume.size)}, {_day(first)} {first.year} to {_day(last)} "
             f"{last.year} ({zone_name})")
    desc = f"{_runs(total)}: {_breakdown(totals)}."
    if peak:
        busiest = max(volume.buckets, key=lambda b: sum(b[1].values()))
        desc += (f" Busiest {unit(volume.size)}: "
                 f"{bucket_label(busiest[0].astimezone(zone), volume.size)} with {peak:,}.")
    bars, ticks = _bars(volume, zone, top)
    empty = ("" if total else
             f'<text class="empty-note" x="{(WIDTH + LEFT) / 2}" y="{HEIGHT / 2}" '
             'text-anchor="middle">No runs in this window</text>')
    svg = (f'<svg class="volume-svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
           f'aria-labelledby="volume-title volume-desc" focusable="false">'
           f'<title id="volume-title">{escape(title)}</title>'
           f'<desc id="volume-desc">{escape(desc)}</desc>{HATCH}'
           f'{"".join(_axis(top))}<g class="bars">{"".join(bars)}</g>'
           f'<g class="ticks">{"".join(ticks)}</g>{empty}</svg>')
    caption = (f'<figcaption>{_legend(volume)}<p class="muted small">One bar per '
               f"{unit(volume.size)} · times in {escape(zone_name)}</p></figcaption>")
    # Safe markup: parts escaped.
    return Markup(f'<figure class="volume" data-total="{total}" '  # nosec B704
                  f'data-bucket-seconds="{int(volume.size.total_seconds())}">'
                  f"{svg}{caption}{_table(volume, zone)}</figure>")
