"""The savings report: one self-contained HTML file drawn from GetStats.

Inline SVG charts and inline CSS, no script and nothing fetched, so the file
opens anywhere, offline, and can be mailed around:

- headline figures (lookups, hit rate, money saved and spent, latency),
- hit rate over time, over the lookups of each slice,
- money spent on planning against money saved by hits, cumulative,
- the templates that served most, and why lookups missed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from html import escape

from plancache.v1 import stats_service_pb2 as pb

__all__ = ["SLICES", "render_report"]

SLICES = 40  # time slices the CLI asks for

_BLUE, _GREEN, _RED, _GREY, _INK, _MUTED = "#2563eb", "#16a34a", "#dc2626", "#cbd5e1", "#0f172a", "#64748b"
_WIDTH = 760
_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#0f172a;
  background:#f8fafc;margin:0}
main{max-width:820px;margin:0 auto;padding:28px 24px 40px}
h1{font-size:22px;margin:0 0 2px}
h2{font-size:16px;margin:0 0 4px}
.sub{color:#64748b;font-size:13px;margin:0 0 18px}
.tiles{display:grid;grid-template-columns:repeat(3,1fr);gap:12px;margin-bottom:18px}
.tile{background:#fff;border:1px solid #e2e8f0;border-radius:10px;padding:12px 14px}
.tile b{display:block;font-size:24px;font-weight:650;letter-spacing:-.01em}
.tile span{color:#64748b;font-size:12.5px}
section{background:#fff;border:1px solid #e2e8f0;border-radius:10px;padding:16px 18px;margin-bottom:16px}
section p{color:#64748b;font-size:13px;margin:0 0 10px}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
.empty{color:#64748b;font-style:italic;padding:18px 0}
footer{color:#64748b;font-size:12px;margin-top:8px}
"""


def _usd(value: float) -> str:
    if value == 0:
        return "$0"
    if abs(value) >= 100:
        return f"${value:,.0f}"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${value:.4f}"


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power + 1e-12:
            return step * power
    return 10 * power


def _time_label(seconds: float, span: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    if span <= 2 * 3600:
        return moment.strftime("%H:%M:%S") if span < 600 else moment.strftime("%H:%M")
    if span <= 2 * 86400:
        return moment.strftime("%d %b %H:%M")
    return moment.strftime("%d %b")


def _legend(items: Sequence[tuple[str, str, str]], x: float, y: float) -> str:
    """Colour keys from the right edge leftwards: (label, colour, shape) with shape line|box."""
    parts, right = [], x
    for label, colour, shape in reversed(items):
        width = 7.2 * len(label) + 26
        left = right - width
        if shape == "line":
            parts.append(f'<line x1="{left:.1f}" y1="{y - 4}" x2="{left + 16:.1f}" y2="{y - 4}" '
                         f'stroke="{colour}" stroke-width="3" stroke-linecap="round"/>')
        else:
            parts.append(f'<rect x="{left + 3:.1f}" y="{y - 10}" width="11" height="11" rx="2" fill="{colour}"/>')
        parts.append(f'<text x="{left + 21:.1f}" y="{y}" font-size="12" fill="{_INK}">{escape(label)}</text>')
        right = left - 6
    return "".join(parts)


def _time_chart(
    starts: Sequence[float],
    width_s: float,
    lines: Sequence[tuple[str, str, Sequence[float | None]]],
    *,
    y_format: Callable[[float], str],
    y_max: float | None = None,
    bars: tuple[str, Sequence[float]] | None = None,
    height: int = 240,
) -> str:
    """A time chart: lines on the left axis, optional light bars scaled to their own maximum."""
    left, right, top, bottom = 62, 14, 30, 30
    plot_w, plot_h = _WIDTH - left - right, height - top - bottom
    t0, t1 = starts[0], starts[-1] + width_s
    span = max(t1 - t0, 1e-9)
    values = [v for _, _, series in lines for v in series if v is not None]
    top_value = y_max if y_max is not None else _nice_ceiling(max(values, default=0.0) * 1.05)

    def x_of(t: float) -> float:
        return left + (t - t0) / span * plot_w

    def y_of(v: float) -> float:
        return top + plot_h - (v / top_value) * plot_h

    out = [f'<svg viewBox="0 0 {_WIDTH} {height}" width="100%" role="img" xmlns="http://www.w3.org/2000/svg">']
    for i in range(5):
        tick = top_value * i / 4
        y = y_of(tick)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" font-size="11.5" text-anchor="end" '
                   f'fill="{_MUTED}">{escape(y_format(tick))}</text>')
    if bars is not None:
        label, heights = bars
        highest = max(heights, default=0.0) or 1.0
        slot = plot_w / len(starts)
        for start, count in zip(starts, heights, strict=True):
            h = count / highest * plot_h * 0.9
            out.append(f'<rect x="{x_of(start) + slot * 0.12:.1f}" y="{top + plot_h - h:.1f}" '
                       f'width="{slot * 0.76:.1f}" height="{h:.1f}" fill="{_GREY}" opacity="0.7">'
                       f'<title>{escape(label)}: {count:g}</title></rect>')
    for i in range(5):
        t = t0 + span * i / 4
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        out.append(f'<text x="{x_of(t):.1f}" y="{height - 10}" font-size="11.5" text-anchor="{anchor}" '
                   f'fill="{_MUTED}">{escape(_time_label(t, span))}</text>')
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#94a3b8"/>')
    for _name, colour, series in lines:
        runs: list[list[tuple[float, float]]] = [[]]
        for start, value in zip(starts, series, strict=True):
            if value is None:
                runs.append([])
                continue
            runs[-1].append((x_of(start + width_s / 2), y_of(value)))
        for run in runs:
            if len(run) > 1:
                points = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2.5" '
                           'stroke-linejoin="round" stroke-linecap="round"/>')
            if len(starts) <= 60 or len(run) == 1:
                out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.6" fill="{colour}"/>' for x, y in run]
    keys = [(name, colour, "line") for name, colour, _ in lines]
    if bars is not None:
        keys.append((bars[0], _GREY, "box"))
    out.append(_legend(keys, left + plot_w, 16))
    out.append("</svg>")
    return "".join(out)


def _bar_chart(rows: Sequence[tuple[str, float, str]], colour: str) -> str:
    """Horizontal bars: (label, value, text written after the bar)."""
    label_w, row_h, text_w = 210, 28, 330
    bar_w = _WIDTH - label_w - text_w
    height = row_h * len(rows) + 6
    highest = max((value for _, value, _ in rows), default=0.0) or 1.0
    out = [f'<svg viewBox="0 0 {_WIDTH} {height}" width="100%" role="img" xmlns="http://www.w3.org/2000/svg">']
    for i, (label, value, note) in enumerate(rows):
        y = i * row_h + 4
        shown = label if len(label) <= 26 else label[:25] + "…"
        w = max(value / highest * bar_w, 2.0)
        out.append(f'<text x="{label_w - 10}" y="{y + 17}" font-size="13" text-anchor="end" fill="{_INK}">'
                   f'{escape(shown)}<title>{escape(label)}</title></text>')
        out.append(f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 10}" rx="3" fill="{colour}"/>')
        out.append(f'<text x="{label_w + w + 8:.1f}" y="{y + 17}" font-size="12.5" fill="{_MUTED}">{escape(note)}</text>')
    out.append("</svg>")
    return "".join(out)


def _tiles(stats: pb.GetStatsResponse) -> str:
    net = stats.saved_usd - stats.spent_usd
    tiles = [
        (f"{stats.lookups:,}", f"lookups ({stats.hits:,} hits, {stats.planned:,} planned, {stats.misses:,} misses)"),
        (f"{stats.hit_rate:.1%}", "hit rate: requests served from the cache"),
        (_usd(stats.saved_usd), f"saved by hits ({stats.saved_tokens:,} planning tokens not spent)"),
        (_usd(stats.spent_usd), f"spent on planning ({stats.planner_calls:,} planner calls)"),
        (("+" if net >= 0 else "−") + _usd(abs(net)), "net: saved minus spent"),
        (f"{stats.latency_p50_ms:.0f} / {stats.latency_p99_ms:.0f} ms", "Lookup latency p50 / p99"),
    ]
    cells = "".join(f'<div class="tile"><b>{escape(a)}</b><span>{escape(b)}</span></div>' for a, b in tiles)
    return f'<div class="tiles">{cells}</div>'


def _over_time(stats: pb.GetStatsResponse) -> str:
    buckets = list(stats.series)
    if not buckets or not any(b.lookups for b in buckets):
        return '<div class="empty">No lookups in this window yet.</div>'
    starts = [b.start.ToMicroseconds() / 1e6 for b in buckets]
    width = (starts[1] - starts[0]) if len(starts) > 1 else 60.0
    rates = [b.hits / b.lookups if b.lookups else None for b in buckets]
    hit_chart = _time_chart(
        starts, width, [("hit rate", _BLUE, rates)], y_format=lambda v: f"{v:.0%}", y_max=1.0,
        bars=("lookups per slice", [float(b.lookups) for b in buckets]),
    )
    saved, spent, total_saved, total_spent = [], [], 0.0, 0.0
    for b in buckets:
        total_saved += b.saved_usd
        total_spent += b.spent_usd
        saved.append(total_saved)
        spent.append(total_spent)
    money_chart = _time_chart(
        starts, width, [("saved by hits", _GREEN, saved), ("spent on planning", _RED, spent)],
        y_format=_usd,
    )
    return (
        "<section><h2>Hit rate over time</h2><p>Share of lookups each slice served from the cache "
        "(line), over the number of lookups (bars).</p>" + hit_chart + "</section>"
        "<section><h2>Money: spent on planning against saved by hits</h2><p>Cumulative US dollars. "
        "A hit saves what planning its request again would cost.</p>" + money_chart + "</section>"
    )


def _top_and_misses(stats: pb.GetStatsResponse) -> str:
    parts = []
    if stats.top_templates:
        rows = []
        for t in stats.top_templates:
            note = f"{t.hits:,} hits · {_usd(t.saved_usd)} saved"
            if t.successes or t.failures:
                note += f" · {t.successes} worked, {t.failures} failed"
            label = t.template_id if len({x.collection for x in stats.top_templates}) == 1 else f"{t.collection}/{t.template_id}"
            rows.append((label, float(t.hits), note))
        parts.append("<section><h2>Templates that served most</h2><p>Hits in the window, money they saved, "
                     "and how the executions reported went (all time).</p>" + _bar_chart(rows, _BLUE) + "</section>")
    if stats.miss_reasons:
        misses = sum(m.count for m in stats.miss_reasons) or 1
        rows = [(m.reason.replace("_", " "), float(m.count), f"{m.count:,} ({m.count / misses:.0%} of misses)")
                for m in stats.miss_reasons]
        parts.append("<section><h2>Why lookups missed</h2><p>A miss serves nothing rather than risk a wrong "
                     "plan; the reason says what would have been needed.</p>" + _bar_chart(rows, "#f59e0b") + "</section>")
    return "".join(parts)


def render_report(stats: pb.GetStatsResponse, *, title: str, now: datetime | None = None) -> str:
    """The report as one HTML document."""
    now = now or datetime.now(UTC)
    since = stats.since.ToDatetime(tzinfo=UTC)
    subtitle = f"{since:%Y-%m-%d %H:%M} – {now:%Y-%m-%d %H:%M} UTC · generated by plancache report"
    body = _tiles(stats) + _over_time(stats) + _top_and_misses(stats)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{escape(title)}</title>'
        f"<style>{_CSS}</style></head><body><main>"
        f"<h1>{escape(title)}</h1><p class=\"sub\">{escape(subtitle)}</p>{body}"
        "<footer>Counts cover the time since the server started (or the window asked for); "
        "template outcomes come from the store's running counters.</footer>"
        "</main></body></html>\n"
    )
