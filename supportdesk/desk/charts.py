"""Tiny inline-SVG charts for the admin dashboard: no JavaScript, no CDN, escaped text.

Every label and number goes through ``escape``; the SVG is assembled from those pieces
and marked safe once at the end. Each chart carries a ``<title>`` and ``<desc>`` and the
page shows the same numbers in a table beside it, so screen readers get the data too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 560
HEIGHT = 220
LEFT = 48
RIGHT = 12
TOP = 14
BOTTOM = 34


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float]
    color: str


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    if value < 1:
        magnitude = 0.1
        while magnitude / 10 >= value:
            magnitude /= 10
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def bar_chart(
    *,
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    stacked: bool = True,
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
) -> SafeString:
    """Bars per label (a day), stacked or side by side, with a y axis and a legend."""
    count = max(1, len(labels))
    if stacked:
        totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    else:
        totals = [max((s.values[i] for s in series), default=0) for i in range(len(labels))]
    top = _nice_max(max(totals, default=0))
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / count
    bar_w = max(2.0, slot * 0.7 / (1 if stacked else max(1, len(series))))
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" '
        'preserveAspectRatio="xMidYMid meet">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(_describe(labels, series, fmt))}</desc>',
    ]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
            f"{escape(fmt(top * fraction))}</text>"
        )
    for index, _label in enumerate(labels):
        x0 = LEFT + slot * index + (slot - bar_w * (1 if stacked else len(series))) / 2
        base = 0.0
        for position, item in enumerate(series):
            value = float(item.values[index])
            if value <= 0:
                continue
            height = plot_h * value / top
            x = x0 if stacked else x0 + position * bar_w
            y = TOP + plot_h - height - (plot_h * base / top if stacked else 0)
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{height:.1f}" '
                f'fill="{escape(item.color)}"><title>{escape(labels[index])}: '
                f"{escape(item.label)} {escape(fmt(value))}</title></rect>"
            )
            if stacked:
                base += value
    for index in _tick_indexes(len(labels)):
        x = LEFT + slot * index + slot / 2
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" class="axis">'
            f"{escape(_short_day(labels[index]))}</text>"
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span class="legend-item"><span class="swatch" style="background:{escape(s.color)}">'
        f"</span>{escape(s.label)}</span>"
        for s in series
    )
    return mark_safe(f'{"".join(parts)}<div class="legend">{legend}</div>')


def share_bar(*, chart_id: str, title: str, parts: Sequence[tuple[str, float, str]]) -> SafeString:
    """One horizontal 100 % bar split into ``(label, value, color)`` parts."""
    total = sum(value for _, value, _ in parts)
    pieces = []
    x = 0.0
    for label, value, color in parts:
        width = 0.0 if total <= 0 else 100.0 * value / total
        if width > 0:
            pieces.append(
                f'<rect x="{x:.2f}%" y="0" width="{width:.2f}%" height="28" '
                f'fill="{escape(color)}"><title>{escape(label)}: {width:.0f}%</title></rect>'
            )
        x += width
    if not pieces:
        pieces.append('<rect x="0" y="0" width="100%" height="28" class="empty-bar"/>')
    described = ", ".join(
        f"{label} {0 if total <= 0 else round(100 * value / total)}%" for label, value, _ in parts
    )
    legend = "".join(
        f'<span class="legend-item"><span class="swatch" style="background:{escape(color)}">'
        f"</span>{escape(label)}: {escape(_percent(value, total))}</span>"
        for label, value, color in parts
    )
    svg = (
        f'<svg class="share" id="{escape(chart_id)}" width="100%" height="28" role="img" '
        f'aria-label="{escape(title)}: {escape(described)}">{"".join(pieces)}</svg>'
    )
    return mark_safe(f'{svg}<div class="legend">{legend}</div>')


def _percent(value: float, total: float) -> str:
    return "—" if total <= 0 else f"{100 * value / total:.0f}%"


def _tick_indexes(count: int) -> list[int]:
    if count <= 8:
        return list(range(count))
    step = max(1, round(count / 6))
    ticks = list(range(0, count, step))
    if ticks[-1] != count - 1:
        ticks[-1] = count - 1
    return ticks


def _short_day(label: str) -> str:
    # "2025-11-24" → "11-24": enough on an axis that spans weeks.
    return label[5:] if len(label) == 10 and label[4] == "-" else label


def _describe(labels: Sequence[str], series: Sequence[Series], fmt: Callable[[float], str]) -> str:
    totals = ", ".join(f"{s.label} {fmt(sum(s.values))}" for s in series)
    span = f"{labels[0]} to {labels[-1]}" if labels else "no days"
    return f"Per day from {span}. Totals: {totals}."
