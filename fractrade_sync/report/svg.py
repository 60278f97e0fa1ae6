"""Plain inline SVG charts for the report page when plotly (the `report` extra) is not installed: a line, bars and a
histogram, drawn here, so the page stays one self-contained file that opens offline either way. Each drawn datum is
an element of class `mark` (the page test counts them)."""

from __future__ import annotations

from html import escape
from typing import Callable

WIDTH = 640
HEIGHT = 240
PAD = 40


def _scale(values: list[float], low_px: float, high_px: float) -> tuple[float, float, Callable[[float], float]]:
    low = min(values + [0.0])
    high = max(values + [0.0])
    if high == low:
        high = low + 1.0

    def to_px(value: float) -> float:
        return high_px - (value - low) / (high - low) * (high_px - low_px)

    return low, high, to_px


def _frame(title: str, body: list[str], low: float, high: float, to_px) -> str:
    zero = to_px(0.0)
    axis = [
        f'<line x1="{PAD}" y1="{zero:.1f}" x2="{WIDTH - 10}" y2="{zero:.1f}" stroke="#999" stroke-width="1"/>',
        f'<text x="4" y="{to_px(high) + 4:.1f}" font-size="11">{high:.4g}</text>',
        f'<text x="4" y="{to_px(low) + 4:.1f}" font-size="11">{low:.4g}</text>',
    ]
    return (
        f'<svg class="svg-chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-label="{escape(title)}">{"".join(axis + body)}</svg>'
    )


def line(title: str, labels: list[str], values: list[float]) -> str:
    """A line through the values in order (e.g. the cumulative net PnL), a dot per value."""
    low, high, to_px = _scale(values, 10, HEIGHT - 20)
    step = (WIDTH - PAD - 20) / max(1, len(values) - 1)
    points = [(PAD + i * step, to_px(v)) for i, v in enumerate(values)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    body = [f'<polyline points="{path}" fill="none" stroke="#1f77b4" stroke-width="2"/>']
    body += [
        f'<circle class="mark" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1f77b4"><title>{escape(label)}: {v}</title>'
        "</circle>"
        for (x, y), label, v in zip(points, labels, values, strict=True)
    ]
    return _frame(title, body, low, high, to_px)


def bars(title: str, labels: list[str], values: list[float]) -> str:
    """One bar per value from zero (green up, red down), labelled below."""
    low, high, to_px = _scale(values, 10, HEIGHT - 30)
    width = (WIDTH - PAD - 20) / max(1, len(values))
    body = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        top, bottom = sorted((to_px(value), to_px(0.0)))
        x = PAD + i * width
        color = "#2ca02c" if value >= 0 else "#d62728"
        body.append(
            f'<rect class="mark" x="{x + 2:.1f}" y="{top:.1f}" width="{max(1.0, width - 4):.1f}" '
            f'height="{max(1.0, bottom - top):.1f}" fill="{color}"><title>{escape(label)}: {value}</title></rect>'
        )
        body.append(f'<text x="{x + 2:.1f}" y="{HEIGHT - 8}" font-size="10">{escape(label[-5:])}</text>')
    return _frame(title, body, low, high, to_px)


def histogram(title: str, values: list[float], bins: int = 12) -> str:
    """How the values spread: counts in equal bins between their least and greatest."""
    low = min(values)
    high = max(values)
    width = (high - low) / bins or 1.0
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, int((value - low) / width))] += 1
    labels = [f"{low + i * width:.3g}..{low + (i + 1) * width:.3g}" for i in range(bins)]
    kept = [(label, float(n)) for label, n in zip(labels, counts, strict=True)]
    return bars(title, [k[0] for k in kept], [k[1] for k in kept])
