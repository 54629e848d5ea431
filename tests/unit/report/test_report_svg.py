"""The inline SVG line chart: scales, ticks, gaps, thresholds and escaping, read back as XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from otelperf.report.html.svg import Line, Scale, Threshold, line_chart, nice_ticks, segments, time_ticks

NS = {"s": "http://www.w3.org/2000/svg"}
T0 = 1_800_000_000.0  # a round minute


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # must be well-formed XML, whatever the labels held


def polylines(root: ET.Element) -> list[list[tuple[float, float]]]:
    out = []
    for el in root.iterfind(".//s:polyline", NS):
        out.append([tuple(map(float, p.split(","))) for p in el.attrib["points"].split()])  # type: ignore[misc]
    return out


def texts(root: ET.Element) -> list[str]:
    return ["".join(el.itertext()) for el in root.iterfind(".//s:text", NS)]


def test_nice_ticks_cover_the_top_in_round_steps() -> None:
    assert nice_ticks(430) == [0, 100, 200, 300, 400, 500]
    assert nice_ticks(0.7) == [0, 0.2, 0.4, 0.6, 0.8]
    assert nice_ticks(500) == [0, 100, 200, 300, 400, 500]
    assert nice_ticks(0) == [0.0, 1.0]
    assert nice_ticks(float("nan")) == [0.0, 1.0]


def test_time_ticks_are_round_instants_inside_the_window() -> None:
    ticks = time_ticks(T0 + 7, T0 + 15 * 60)
    assert ticks[0] >= T0 + 7 and ticks[-1] <= T0 + 15 * 60
    assert all(t % 60 == 0 for t in ticks)
    assert 3 <= len(ticks) <= 7


def test_scale_maps_ends_and_inverts_for_y() -> None:
    y = Scale(0, 100, 200, 20)
    assert (y(0), y(100), y(50)) == (200, 20, 110)
    assert Scale(5, 5, 0, 10)(5) == 5  # a zero-width domain does not divide by zero


def test_points_land_on_the_axes_scale() -> None:
    points = [(T0, 0.0), (T0 + 30, 250.0), (T0 + 60, 500.0)]
    svg = line_chart([Line("p95", points)], title="t", unit="ms", start=T0, end=T0 + 60, width=700)
    root = parse(svg)
    (line,) = polylines(root)
    xs, ys = [p[0] for p in line], [p[1] for p in line]
    assert xs[0] == 62 and xs[-1] == 700 - 16  # the plot area's left and right edges
    assert xs[1] == (xs[0] + xs[2]) / 2
    assert ys[0] > ys[1] > ys[2]  # higher values are drawn higher up
    assert abs(ys[1] - (ys[0] + ys[2]) / 2) <= 0.1  # linear (coordinates have one decimal)
    assert ys[0] == 260 - 60  # 0 ms sits on the x axis
    labels = texts(root)
    assert {"0", "200", "400", "600"} <= set(labels)  # y ticks reach past the highest point


def test_gap_breaks_the_line_and_a_lone_point_is_a_dot() -> None:
    points = [
        (T0, 1.0),
        (T0 + 10, 2.0),
        (T0 + 20, None),
        (T0 + 30, 3.0),
        (T0 + 40, None),
        (T0 + 50, 4.0),
        (T0 + 60, 5.0),
    ]
    assert [len(s) for s in segments(points)] == [2, 1, 2]
    root = parse(line_chart([Line("x", points)], title="t", unit="ms", start=T0, end=T0 + 60))
    assert len(polylines(root)) == 2
    assert len(root.findall(".//s:circle[@class='point']", NS)) == 1


def test_one_point_series_is_visible() -> None:
    root = parse(line_chart([Line("only", [(T0 + 5, 42.0)])], title="t", unit="ms", start=T0, end=T0 + 60))
    assert polylines(root) == []
    (dot,) = root.findall(".//s:circle[@class='point']", NS)
    assert "42" in "".join(dot.itertext())
    assert "no data in this window" not in texts(root)


def test_empty_series_says_no_data() -> None:
    root = parse(
        line_chart([Line("p95", []), Line("p99", [(T0, None)])], title="t", unit="ms", start=T0, end=T0 + 60)
    )
    assert "no data in this window" in texts(root)
    assert polylines(root) == [] and root.findall(".//s:circle", NS) == []


def test_threshold_line_and_breach_markers() -> None:
    points = [(T0, 100.0), (T0 + 20, 600.0), (T0 + 40, 700.0), (T0 + 60, 300.0)]
    lines = [Line("p50", [(t, 650.0) for t, _ in points]), Line("p95", points)]
    svg = line_chart(
        lines, title="t", unit="ms", start=T0, end=T0 + 60, thresholds=[Threshold("p95 budget", 500.0, "p95")]
    )
    root = parse(svg)
    (budget,) = root.findall(".//s:line[@class='threshold']", NS)
    y500 = float(budget.attrib["y1"])
    # the budget's y sits between the 300 ms and 600 ms points of the p95 line
    p95 = polylines(root)[1]
    assert p95[3][1] > y500 > p95[1][1]
    breaches = root.findall(".//s:circle[@class='breach']", NS)
    assert len(breaches) == 2  # only the p95 line is judged against the p95 budget
    assert {float(c.attrib["cy"]) < y500 for c in breaches} == {True}
    assert "p95 budget" in texts(root)  # legend


def test_threshold_above_the_data_is_still_in_view() -> None:
    svg = line_chart(
        [Line("p95", [(T0, 10.0), (T0 + 60, 20.0)])],
        title="t",
        unit="ms",
        start=T0,
        end=T0 + 60,
        thresholds=[Threshold("budget", 500.0)],
    )
    root = parse(svg)
    (budget,) = root.findall(".//s:line[@class='threshold']", NS)
    assert float(budget.attrib["y1"]) >= 28  # inside the plot area, not above it


def test_labels_are_escaped() -> None:
    evil = 'GET /x"><script>alert(1)</script>&'
    svg = line_chart([Line(evil, [(T0, 1.0), (T0 + 60, 2.0)])], title=evil, unit="ms<", start=T0, end=T0 + 60)
    assert "<script" not in svg
    root = parse(svg)
    assert root.find(".//s:script", NS) is None
    assert evil in texts(root)  # shown as text, intact
    assert root.attrib["aria-label"] == evil
