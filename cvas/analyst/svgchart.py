"""Charts as inline SVG elements built directly: time charts (bars, stacked bars, lines, stacked areas, panels) and horizontal bars."""

from __future__ import annotations

import datetime as dt
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Sequence

WIDTH = 640                 # user units of the viewBox; the page scales a chart to its column
FONT = "DejaVu Sans, Verdana, Arial, sans-serif"   # installed fonts only: nothing is fetched
TICK = 11                   # font size of tick labels, legends and bar labels
INK = "#333a40"             # text
GRID = "#e5e8eb"            # gridlines (one per tick)
SHADE = "#e9ebee"           # days without data
AXIS = "#8a939c"            # the time axis and its tick marks
ZERO = "#444444"            # the zero line of a signed axis
LINE_WIDTH = 2
MARKERS_UP_TO = 31          # lines get a dot per day on short windows
INTERVALS = 5               # at most this many intervals between y ticks


@dataclass(frozen=True)
class Series:
    """One series of a time chart: a value per day of the chart (NaN: no data that day).
    style: bar, stack (bars stacked on the panel's earlier stack series), line, or area
    (areas stacked on the panel's earlier area series)."""

    label: str
    values: tuple[float, ...]
    colour: str
    style: str = "bar"


@dataclass(frozen=True)
class Panel:
    """One plot with its own y axis (kind: count, signed, eur or pct); the panels of a chart
    share the time axis, one above the other. A panel without series says so in words."""

    series: tuple[Series, ...]
    kind: str = "count"
    title: str = ""
    height: int = 180
    empty: str = "no data in the window"


@dataclass(frozen=True)
class _Box:
    x: float
    y: float
    w: float
    h: float


# -- numbers, dates and text -------------------------------------------------------------

def nice_ticks(lo: float, hi: float, intervals: int = INTERVALS, integer: bool = False) -> list[float]:
    """Round ticks (1, 2, 2.5 or 5 × 10ⁿ apart, at most `intervals` intervals) from at or below
    min(lo, 0) to at or above max(hi, 0): every value lies within the ticks, none above the top one."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo <= 0:
        hi = lo + 1.0
    magnitude = 10.0 ** math.floor(math.log10((hi - lo) / intervals))
    step = first = last = 0.0
    for m in (1, 2, 2.5, 5, 10, 20, 25, 50):
        step = m * magnitude
        if integer and (step < 1 or abs(step - round(step)) > 1e-9):
            continue
        first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
        if last - first <= intervals:
            break
    return [round(k * step, 12) for k in range(int(first), int(last) + 1)]


def _decimals(step: float) -> int:
    """Decimals that show every multiple of `step` exactly (2.5 → 1, 0.25 → 2)."""
    for d in range(0, 8):
        if abs(step * 10 ** d - round(step * 10 ** d)) < 1e-6:
            return d
    return 8


def tick_label(value: float, kind: str, step: float) -> str:
    """A tick's text: thousands separators, € amounts, percentages; a true minus sign."""
    sign = "\u2212" if value < 0 and abs(value) > step * 1e-9 else ""
    v = abs(value)
    if kind == "pct":
        return f"{sign}{v * 100:,.{_decimals(step * 100)}f}%"
    if kind == "eur":   # whole euros on whole steps, else cents
        return f"{sign}€{v:,.{0 if _decimals(step) == 0 or v == 0 else max(2, _decimals(step))}f}"
    return f"{sign}{v:,.{_decimals(step)}f}"


def date_ticks(first: dt.date, last: dt.date, most: int = 8) -> list[dt.date]:
    """Days to label on a time axis from `first` to `last`: the finest of daily, every other
    day, Mondays, the 1st and 15th, month starts, quarter starts, year starts with at most `most`."""
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    rules = (lambda d: True, lambda d: d.toordinal() % 2 == 0, lambda d: d.weekday() == 0,
             lambda d: d.day in (1, 15), lambda d: d.day == 1, lambda d: d.day == 1 and d.month % 2 == 1,
             lambda d: d.day == 1 and d.month % 3 == 1, lambda d: d.day == 1 and d.month % 6 == 1,
             lambda d: d.day == 1 and d.month == 1)
    for rule in rules:
        ticks = [d for d in days if rule(d)]
        if len(ticks) <= most:
            return ticks
    return [first]


def date_labels(ticks: Sequence[dt.date]) -> list[str]:
    """'15 Oct'; on month starts only the month, with its year on January and on the first tick."""
    if len(ticks) > 1 and all(d.day == 1 for d in ticks):
        return [f"{d:%b %Y}" if d.month == 1 or i == 0 else f"{d:%b}" for i, d in enumerate(ticks)]
    return [f"{d.day} {d:%b}" for d in ticks]


def text_width(text: str, size: float = TICK) -> float:
    """An estimate, a little generous, of the width of `text` in DejaVu Sans at `size`."""
    em = 0.0
    for ch in text:
        if ch in " .,:;!|'()[]ijl":
            em += 0.34
        elif ch in "frt-":
            em += 0.44
        elif ch in "mwMW":
            em += 0.95
        elif ch.isupper():
            em += 0.74
        else:
            em += 0.64
    return em * size


def _fit(text: str, width: float, size: float = TICK) -> str:
    """`text`, cut with an ellipsis to fit `width`."""
    if text_width(text, size) <= width:
        return text
    while text and text_width(text + "…", size) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _n(v: float) -> str:
    """A coordinate: one decimal, no trailing zero (short and reproducible)."""
    text = f"{v:.1f}"
    return text[:-2] if text.endswith(".0") else text


# -- elements ----------------------------------------------------------------------------

def _el(parent: ET.Element, tag: str, **attrs: object) -> ET.Element:
    """A child element; attribute names with '_' become '-' (stroke_width → stroke-width)."""
    return ET.SubElement(parent, tag, {k.replace("_", "-"): _n(v) if isinstance(v, float) else str(v)
                                       for k, v in attrs.items()})


def _text(parent: ET.Element, x: float, y: float, text: str, size: float = TICK, anchor: str = "start",
          weight: str = "normal", fill: str = INK) -> None:
    attrs: dict[str, object] = {"x": float(x), "y": float(y), "font_size": size, "fill": fill}
    if anchor != "start":
        attrs["text_anchor"] = anchor
    if weight != "normal":
        attrs["font_weight"] = weight
    _el(parent, "text", **attrs).text = text


def _document(name: str, title: str) -> ET.Element:
    """The chart's <svg>: scaled to its container, labelled for screen readers (role, aria-label
    and <title>), and named by `data-chart`. No id: many charts share a page."""
    root = ET.Element("svg", {"xmlns": "http://www.w3.org/2000/svg", "width": "100%", "role": "img",
                              "aria-label": title, "data-chart": name, "font-family": FONT})
    ET.SubElement(root, "title").text = title
    return root


def _finish(root: ET.Element, height: float) -> str:
    root.set("viewBox", f"0 0 {WIDTH} {_n(math.ceil(height))}")
    return ET.tostring(root, encoding="unicode", short_empty_elements=True)


# -- time charts -------------------------------------------------------------------------

def _stack_tops(series: Sequence[Series], style: str, n: int) -> list[float]:
    """Per day, the top of the stack of the series of `style` (NaN where none has a value)."""
    tops = []
    for i in range(n):
        vals = [s.values[i] for s in series if s.style == style and not math.isnan(s.values[i])]
        tops.append(sum(vals) if vals else math.nan)
    return tops


def _panel_ticks(panel: Panel, n: int) -> list[float]:
    values = [v for s in panel.series for v in s.values if not math.isnan(v)]
    values += [v for style in ("stack", "area") for v in _stack_tops(panel.series, style, n) if not math.isnan(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    return nice_ticks(lo, hi, integer=panel.kind in ("count", "signed"))


def _legend_row(parent: ET.Element, x: float, y: float, series: Sequence[Series]) -> None:
    """Swatches and labels side by side, their baseline at `y`."""
    for s in series:
        if s.style == "line":
            _el(parent, "line", x1=float(x), y1=y - 4.0, x2=x + 16.0, y2=y - 4.0, stroke=s.colour,
                stroke_width=LINE_WIDTH)
            x += 20
        else:
            _el(parent, "rect", x=float(x), y=y - 9.0, width=10, height=10, fill=s.colour)
            x += 14
        _text(parent, x, y, s.label, size=TICK - 0.5)
        x += text_width(s.label, TICK - 0.5) + 16


def _legend_column(parent: ET.Element, x: float, y: float, series: Sequence[Series]) -> None:
    """One swatch and label a line, the top of the stack first."""
    for s in reversed(series):
        _el(parent, "rect", x=float(x), y=y - 9.0, width=10, height=10, fill=s.colour)
        _text(parent, x + 14, y, s.label, size=TICK - 0.5)
        y += 16


def _y_axis(parent: ET.Element, box: _Box, ticks: list[float], kind: str) -> None:
    """A gridline and a label per y tick."""
    step = ticks[1] - ticks[0]
    for t in ticks:
        y = _y(box, ticks, t)
        _el(parent, "line", x1=box.x, y1=y, x2=box.x + box.w, y2=y, stroke=GRID, stroke_width=1)
        _text(parent, box.x - 6, y + TICK * 0.35, tick_label(t, kind, step), anchor="end")


def _y(box: _Box, ticks: list[float], v: float) -> float:
    return box.y + box.h * (ticks[-1] - v) / (ticks[-1] - ticks[0])


def _x(box: _Box, n: int, i: float) -> float:
    return box.x + box.w * (i + 0.5) / n


def _shade(parent: ET.Element, box: _Box, days: list[dt.date], gaps: Sequence[tuple[dt.date, dt.date]]) -> None:
    """Runs of days without data as grey bands across the plot."""
    n = len(days)
    for first, last in gaps:
        a, b = (first - days[0]).days, (last - days[0]).days
        if b < 0 or a >= n:
            continue
        a, b = max(a, 0), min(b, n - 1)
        x0, x1 = _x(box, n, a - 0.5), _x(box, n, b + 0.5)
        _el(parent, "rect", x=x0, y=box.y, width=x1 - x0, height=box.h, fill=SHADE)


def _bars(parent: ET.Element, box: _Box, ticks: list[float], panel: Panel, n: int) -> None:
    """Bars and stacked bars, 80% of a day wide; a missing value draws nothing."""
    width = 0.8 * box.w / n
    bottom = [0.0] * n
    for s in panel.series:
        if s.style not in ("bar", "stack"):
            continue
        group = _el(parent, "g", fill=s.colour)
        for i, v in enumerate(s.values):
            if math.isnan(v) or v == 0:
                continue
            base = bottom[i] if s.style == "stack" else 0.0
            y0, y1 = _y(box, ticks, base), _y(box, ticks, base + v)
            _el(group, "rect", x=_x(box, n, i) - width / 2, y=min(y0, y1), width=width, height=abs(y1 - y0))
            if s.style == "stack":
                bottom[i] += v


def _areas(parent: ET.Element, box: _Box, ticks: list[float], panel: Panel, n: int) -> None:
    """Stacked areas over the days where any series has a value (joined across days without)."""
    areas = [s for s in panel.series if s.style == "area"]
    have = [i for i in range(n) if any(not math.isnan(s.values[i]) for s in areas)]
    below = [0.0] * n
    for s in areas:
        above = [below[i] + (0.0 if math.isnan(s.values[i]) else s.values[i]) for i in range(n)]
        top = [f"{_n(_x(box, n, i))},{_n(_y(box, ticks, above[i]))}" for i in have]
        bottom = [f"{_n(_x(box, n, i))},{_n(_y(box, ticks, below[i]))}" for i in reversed(have)]
        if have:
            # the stroke in the fill's colour closes the hairline seams anti-aliasing leaves between areas
            _el(parent, "polygon", points=" ".join(top + bottom), fill=s.colour, stroke=s.colour,
                stroke_width=0.6, stroke_linejoin="round")
        below = above


def _lines(parent: ET.Element, box: _Box, ticks: list[float], panel: Panel, n: int) -> None:
    """Lines broken where a value is missing; a dot per day on short windows."""
    for s in panel.series:
        if s.style != "line":
            continue
        path, pen_down = [], False
        points = []
        for i, v in enumerate(s.values):
            if math.isnan(v):
                pen_down = False
                continue
            x, y = _x(box, n, i), _y(box, ticks, v)
            path.append(f"{'L' if pen_down else 'M'}{_n(x)} {_n(y)}")
            points.append((x, y))
            pen_down = True
        _el(parent, "path", d="".join(path), fill="none", stroke=s.colour, stroke_width=LINE_WIDTH,
            stroke_linejoin="round")
        if n <= MARKERS_UP_TO:
            dots = _el(parent, "g", fill=s.colour)
            for x, y in points:
                _el(dots, "circle", cx=x, cy=y, r=2.5)


def _time_axis(parent: ET.Element, box: _Box, days: list[dt.date], labels: bool) -> None:
    """The baseline with a tick mark per labelled day; the labels under the bottom panel only."""
    bottom = box.y + box.h
    _el(parent, "line", x1=box.x, y1=bottom, x2=box.x + box.w, y2=bottom, stroke=AXIS, stroke_width=1)
    most = max(2, int(box.w // (text_width("30 Sep") + 18)))
    ticks = date_ticks(days[0], days[-1], most=most)
    for d, label in zip(ticks, date_labels(ticks)):
        x = _x(box, len(days), (d - days[0]).days)
        _el(parent, "line", x1=x, y1=bottom, x2=x, y2=bottom + 4.0, stroke=AXIS, stroke_width=1)
        if labels:
            _text(parent, x, bottom + 17, label, anchor="middle")


def _plot(parent: ET.Element, box: _Box, panel: Panel, days: list[dt.date],
          gaps: Sequence[tuple[dt.date, dt.date]], ticks: list[float]) -> None:
    """One panel's plot: days without data, gridlines, areas, bars, lines, then the zero line."""
    n = len(days)
    _shade(parent, box, days, gaps)
    _y_axis(parent, box, ticks, panel.kind)
    if not panel.series:
        _text(parent, box.x + box.w / 2, box.y + box.h / 2, panel.empty, anchor="middle")
        return
    _areas(parent, box, ticks, panel, n)
    _bars(parent, box, ticks, panel, n)
    _lines(parent, box, ticks, panel, n)
    if ticks[0] < 0:
        y = _y(box, ticks, 0.0)
        _el(parent, "line", x1=box.x, y1=y, x2=box.x + box.w, y2=y, stroke=ZERO, stroke_width=1)


def time_chart(name: str, title: str, days: Sequence[dt.date], panels: Sequence[Panel], *,
               gaps: Sequence[tuple[dt.date, dt.date]] = (), legend: str = "top") -> str:
    """A chart over consecutive `days` (each series holds a value per day): panels one above
    the other sharing the time axis, each with its own y axis on round ticks from zero (or
    below, for negative values) to at or above its largest value or stack. `gaps`: runs of
    days without data, shaded. Legend: above a panel with several series ("top"), or one
    column to the right ("right", for stacked areas)."""
    days = list(days)
    ticks = [_panel_ticks(p, len(days)) for p in panels]
    labels = [tick_label(t, p.kind, tk[1] - tk[0]) for p, tk in zip(panels, ticks) for t in tk]
    left = max(36.0, max(text_width(t) for t in labels) + 12)
    right = 16.0
    every = [s for p in panels for s in p.series]
    if legend == "right" and every:
        right = max(text_width(s.label, TICK - 0.5) for s in every) + 14 + 28
    root = _document(name, title)
    y = 8.0
    for k, panel in enumerate(panels):
        if panel.title:
            _text(root, left, y + 12, panel.title, size=TICK + 1, weight="bold")
            y += 20
        if legend == "top" and len(panel.series) > 1:
            _legend_row(root, left, y + 11, panel.series)
            y += 20
        elif k == 0:
            y += 4   # room for the top tick's label
        box = _Box(left, y, WIDTH - left - right, float(panel.height))
        _plot(root, box, panel, days, gaps, ticks[k])
        _time_axis(root, box, days, labels=k == len(panels) - 1)
        if legend == "right" and panel.series:
            _legend_column(root, box.x + box.w + 20, box.y + 10, panel.series)
        y += panel.height + (26 if k == len(panels) - 1 else 16)
    return _finish(root, y)


# -- horizontal bars -----------------------------------------------------------------------

def hbar_chart(name: str, title: str, labels: Sequence[str], values: Sequence[float], colours: Sequence[str],
               kind: str, empty: str = "no activity") -> str:
    """Horizontal bars in the given order, top to bottom, each labelled with its value; the
    value axis on round ticks from zero to at or above the largest value."""
    root = _document(name, title)
    if not labels:
        _text(root, WIDTH / 2, 40, empty, anchor="middle")
        return _finish(root, 70)
    row = 22.0
    ticks = nice_ticks(min(values), max(values), integer=kind in ("count", "signed"))
    step = ticks[1] - ticks[0]
    shown = [_fit(label, 190) for label in labels]
    left = max(text_width(s) for s in shown) + 14
    right = max(text_width(tick_label(ticks[-1], kind, step)) / 2,
                max(text_width(tick_label(v, kind, min(step, 1)), TICK - 0.5) for v in values) + 4) + 8
    box = _Box(left, 6.0, WIDTH - left - right, row * len(labels))

    def x_of(v: float) -> float:
        return box.x + box.w * (v - ticks[0]) / (ticks[-1] - ticks[0])

    for t in ticks:
        _el(root, "line", x1=x_of(t), y1=box.y, x2=x_of(t), y2=box.y + box.h, stroke=GRID, stroke_width=1)
        _text(root, x_of(t), box.y + box.h + 16, tick_label(t, kind, step), anchor="middle")
    for i, (label, value, colour) in enumerate(zip(shown, values, colours)):
        middle = box.y + row * (i + 0.5)
        x0, x1 = sorted((x_of(0.0), x_of(value)))
        _el(root, "rect", x=x0, y=middle - row * 0.36, width=x1 - x0, height=row * 0.72, fill=colour)
        _text(root, box.x - 6, middle + TICK * 0.35, label, anchor="end")
        _text(root, x1 + 4, middle + TICK * 0.35, tick_label(value, kind, min(step, 1)), size=TICK - 0.5,
              fill="#5b6570")
    _el(root, "line", x1=x_of(0.0), y1=box.y, x2=x_of(0.0), y2=box.y + box.h, stroke=AXIS, stroke_width=1)
    return _finish(root, box.y + box.h + 24)
