"""Small server-rendered charts: the geometry here, the SVG in ``templates/_chart.html``.

A chart is inline SVG (``role="img"`` with a title), readable without colour or script, and
the same numbers as a table inside ``<details>`` for screen readers and copying.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Bar", "Chart", "bar_chart"]

WIDTH, HEIGHT, GAP, AXIS = 640, 160, 2, 20


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    x: float
    y: float
    width: float
    height: float
    labelled: bool
    """Whether its label is written under it (every ``label_every``-th is)."""


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    peak: float
    bars: list[Bar]
    width: int = WIDTH
    height: int = HEIGHT
    axis_y: int = HEIGHT - 4


def bar_chart(
    title: str, values: Sequence[tuple[str, float]], *, unit: str = "", label_every: int = 1
) -> Chart:
    """Bars of ``(label, value)`` left to right, scaled to the largest value."""
    peak = max((value for _, value in values), default=0.0)
    scale = (HEIGHT - AXIS) / (peak or 1.0)
    width = (WIDTH - GAP * max(len(values) - 1, 0)) / max(len(values), 1)
    bars = [
        Bar(
            label=label,
            value=value,
            x=round(index * (width + GAP), 1),
            y=round(HEIGHT - AXIS - value * scale, 1),
            width=round(width, 1),
            height=round(value * scale, 1),
            labelled=index % max(label_every, 1) == 0,
        )
        for index, (label, value) in enumerate(values)
    ]
    return Chart(title=title, unit=unit, peak=peak, bars=bars)
