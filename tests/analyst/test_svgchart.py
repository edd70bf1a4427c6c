"""The report's charts (cvas.analyst.svgchart): round ticks that hold every value, time axes
whose labels do not crowd, and SVG a page can inline (well-formed, labelled, no ids, nothing
fetched, the same bytes for the same inputs)."""

from __future__ import annotations

import datetime as dt
import math
import re
import xml.etree.ElementTree as ET

import pytest

from cvas.analyst.svgchart import (GRID, SHADE, WIDTH, Panel, Series, date_labels, date_ticks, hbar_chart,
                                   nice_ticks, tick_label, time_chart)

NS = "{http://www.w3.org/2000/svg}"
START = dt.date(2025, 10, 3)
DAYS = [START + dt.timedelta(days=i) for i in range(90)]
NAN = float("nan")


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return root


def gridline_ys(root: ET.Element) -> list[float]:
    return sorted(float(e.get("y1")) for e in root.iter(f"{NS}line") if e.get("stroke") == GRID)


def path_ys(path: ET.Element) -> list[float]:
    return [float(y) for y in re.findall(r"[ML][-\d.]+ ([-\d.]+)", path.get("d"))]


def texts(root: ET.Element) -> list[str]:
    return [e.text for e in root.iter(f"{NS}text")]


@pytest.mark.parametrize("lo, hi, integer", [
    (0, 69548.96, False), (0, 800, True), (0, 799, True), (-75, 99, True), (0, 0.0031, False), (0, 0.27, False),
    (0, 261644, True), (0, 3.3, True), (0, 0, True), (5, 5, False), (-3, -1, False), (0, 12.4, False),
    (0, 1e-7, False), (0, 7.3e9, True)])
def test_ticks_are_round_and_hold_every_value(lo, hi, integer):
    ticks = nice_ticks(lo, hi, integer=integer)
    step = ticks[1] - ticks[0]
    assert ticks[0] <= min(lo, 0) and ticks[-1] >= max(hi, 0), "every value within the ticks"
    assert ticks[-1] - step < max(hi, 0) or ticks[-1] == 0 or (lo == hi == 0), "the top tick is the first above"
    assert 1 <= len(ticks) - 1 <= 5
    assert all(math.isclose(b - a, step, rel_tol=1e-9) for a, b in zip(ticks, ticks[1:]))
    assert round(step / 10 ** math.floor(math.log10(step)), 6) in (1, 2, 2.5, 5)
    if integer:
        assert step == int(step)


def test_tick_labels_are_formatted_for_people():
    assert tick_label(80000, "eur", 20000) == "€80,000"
    assert tick_label(0, "eur", 0.1) == "€0"
    assert tick_label(0.3, "eur", 0.1) == "€0.30"
    assert tick_label(7.5, "eur", 2.5) == "€7.50"
    assert tick_label(0.003, "pct", 0.001) == "0.3%"
    assert tick_label(0.0025, "pct", 0.0025) == "0.25%"
    assert tick_label(-50, "signed", 50) == "\u221250"
    assert tick_label(300000, "count", 100000) == "300,000"


@pytest.mark.parametrize("days", [1, 5, 10, 31, 60, 90, 200, 365, 1095])
def test_date_ticks_fit_the_axis(days):
    last = START + dt.timedelta(days=days - 1)
    ticks = date_ticks(START, last, most=8)
    assert 1 <= len(ticks) <= 8 and ticks == sorted(ticks) and START <= ticks[0] and ticks[-1] <= last
    assert len(date_ticks(START, last, most=4)) <= 4


def test_date_labels():
    assert date_labels([dt.date(2025, 10, 15), dt.date(2025, 11, 1)]) == ["15 Oct", "1 Nov"]
    assert date_labels([dt.date(2025, 11, 1), dt.date(2025, 12, 1), dt.date(2026, 1, 1)]) == \
        ["Nov 2025", "Dec", "Jan 2026"]


def test_no_bar_rises_above_the_top_tick():
    """Stacked bars whose tallest stack is just above a round number, and a day exactly on one."""
    paid = tuple(500.0 + (i % 7) * 30 for i in range(90))
    free = tuple(210.0 if i == 40 else 100.0 for i in range(90))
    free = free[:41] + (800.0 - paid[41],) + free[42:]
    root = parse(time_chart("activations", "Activations", DAYS, [Panel(
        (Series("Paid", paid, "#1f77b4", "stack"), Series("Free", free, "#aec7e8", "stack"),
         Series("Upgrades", tuple(120.0 for _ in DAYS), "#ff7f0e", "line")))]))
    top = gridline_ys(root)[0]
    bars = [r for g in root.iter(f"{NS}g") if g.get("fill") in ("#1f77b4", "#aec7e8") for r in g]
    assert len(bars) == 180
    assert min(float(r.get("y")) for r in bars) >= top - 0.05
    assert "1,000" in texts(root) and "800" in texts(root)
    legend = [t for t in texts(root) if t in ("Paid", "Free", "Upgrades")]
    assert legend == ["Paid", "Free", "Upgrades"], "several series: a legend"


def test_negative_bars_go_below_a_zero_line():
    net = tuple(float((i % 9) * 20 - 75) for i in range(90))
    root = parse(time_chart("net_adds", "Net adds", DAYS, [Panel((Series("Net adds", net, "#17becf"),), "signed")]))
    lines = gridline_ys(root)
    zero = [e for e in root.iter(f"{NS}line") if e.get("stroke") == "#444444"]
    assert len(zero) == 1 and lines[0] < float(zero[0].get("y1")) < lines[-1]
    assert "\u2212100" in texts(root) and "Net adds" not in texts(root), "one series: no legend"


def test_panels_stack_one_above_the_other_each_with_its_axis():
    churn = tuple(0.0028 + (i % 5) * 0.0001 for i in range(90))
    arpu = tuple(0.26 + (i % 3) * 0.01 for i in range(90))
    root = parse(time_chart("churn_arpu", "Churn and ARPU", DAYS, [
        Panel((Series("Churn", churn, "#d62728", "line"),), "pct", title="Churn", height=110),
        Panel((Series("ARPU (€)", arpu, "#2ca02c", "line"),), "eur", title="ARPU (€)", height=110)]))
    churn_path, arpu_path = [p for p in root.iter(f"{NS}path")]
    assert churn_path.get("stroke") == "#d62728" and arpu_path.get("stroke") == "#2ca02c"
    assert max(path_ys(churn_path)) < min(path_ys(arpu_path))
    assert {"Churn", "ARPU (€)", "0.3%", "€0.30", "15 Oct"} <= set(texts(root))
    assert texts(root).count("15 Oct") == 1, "date labels under the bottom panel only"


def test_days_without_data_are_shaded_and_break_the_line():
    values = tuple(NAN if 20 <= i <= 24 else 100.0 for i in range(90))
    root = parse(time_chart("t", "T", DAYS, [Panel((Series("A", values, "#d62728", "line"),))],
                            gaps=[(DAYS[20], DAYS[24]), (START - dt.timedelta(days=9), START - dt.timedelta(days=1))]))
    shade = [r for r in root.iter(f"{NS}rect") if r.get("fill") == SHADE]
    assert len(shade) == 1, "a gap outside the shown days draws nothing"
    path = next(root.iter(f"{NS}path"))
    assert path.get("d").count("M") == 2
    day = float(shade[0].get("width")) / 5
    assert 5 < day < WIDTH / 90


def test_stacked_areas_hold_their_sum_and_list_the_top_first():
    a = tuple(100.0 for _ in DAYS)
    b = tuple(NAN if i == 3 else 50.0 for i in range(90))
    root = parse(time_chart("areas", "Areas", DAYS, [Panel((Series("Big", a, "#2ca02c", "area"),
                                                            Series("Small", b, "#d62728", "area")), "eur")],
                            legend="right"))
    polygons = list(root.iter(f"{NS}polygon"))
    assert [p.get("fill") for p in polygons] == ["#2ca02c", "#d62728"]
    assert "€160" in texts(root) or "€150" in texts(root)
    assert [t for t in texts(root) if t in ("Big", "Small")] == ["Small", "Big"]


def test_an_empty_panel_says_so():
    root = parse(time_chart("areas", "Areas", DAYS[:5], [Panel((), "eur")], legend="right"))
    assert "no data in the window" in texts(root)


def test_horizontal_bars_fit_and_are_labelled():
    labels = ["Free Time", "A service with a very long name that would push the plot off the chart", "UNKNOWN"]
    root = parse(hbar_chart("services", "Services", labels, [24402.99, 15191.92, 533.33], ["#2ca02c"] * 3, "eur"))
    bars = list(root.iter(f"{NS}rect"))
    ticks = [e for e in root.iter(f"{NS}line") if e.get("stroke") == GRID]
    right = max(float(e.get("x1")) for e in ticks)
    assert len(bars) == 3 and max(float(r.get("x")) + float(r.get("width")) for r in bars) <= right + 0.05
    shown = texts(root)
    assert "Free Time" in shown and "€24,403" in shown and "€25,000" in shown
    long = next(t for t in shown if t.startswith("A service"))
    assert long.endswith("…") and len(long) < len(labels[1])
    assert "no activity" in texts(parse(hbar_chart("services", "Services", [], [], [], "eur")))


def test_the_markup_can_be_inlined_many_times_in_a_page():
    def chart() -> str:
        return time_chart("revenue", 'Revenue <per> "day" & more', DAYS,
                          [Panel((Series("Revenue", tuple(float(i) for i in range(90)), "#1f77b4"),), "eur")])

    svg = chart()
    assert svg == chart(), "the same inputs give the same bytes"
    root = parse(svg)
    assert root.get("role") == "img" and root.get("aria-label") == 'Revenue <per> "day" & more'
    assert root.find(f"{NS}title").text == 'Revenue <per> "day" & more'
    assert (root.get("data-chart"), root.get("width"), root.get("height")) == ("revenue", "100%", None)
    assert root.get("viewBox").startswith(f"0 0 {WIDTH} ")
    assert not [e for e in root.iter() if "id" in e.attrib], "no ids: nothing to collide across charts"
    assert not re.search(r"href|url\(|<script|<image|<style|@import|<foreignObject", svg, re.I)
