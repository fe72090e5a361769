"""Small SVG charts written by hand (no plotting dependency)."""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"]
W, H, LEFT, RIGHT, TOP, BOTTOM = 640, 380, 70, 150, 40, 50


def _scale(lo: float, hi: float, log: bool, a: float, b: float):  # type: ignore[no-untyped-def]
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    span = (hi - lo) or 1.0

    def f(v: float) -> float:
        v = math.log10(v) if log else v
        return a + (v - lo) / span * (b - a)
    return f


def line_chart(path: Path, title: str, xlabel: str, ylabel: str,
               series: dict[str, list[tuple[float, float]]], *, logx: bool = True,
               logy: bool = False) -> Path:
    """Write a line chart: one polyline per series, points marked, legend on the right."""
    points = [p for s in series.values() for p in s if (p[1] == p[1] and p[1] > 0) or not logy]
    points = [p for p in points if p[1] == p[1]]
    if not points:
        points = [(1.0, 1.0), (10.0, 10.0)]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0 = min(ys) if logy else 0.0
    y1 = max(ys) * 1.1 or 1.0
    fx = _scale(x0, x1, logx, LEFT, W - RIGHT)
    fy = _scale(y0, y1, logy, H - BOTTOM, TOP)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
           f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" '
           'stroke="black"/>',
           f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" stroke="black"/>',
           f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 10}" text-anchor="middle">'
           f'{escape(xlabel)}</text>',
           f'<text x="15" y="{H / 2}" transform="rotate(-90 15 {H / 2})" text-anchor="middle">'
           f'{escape(ylabel)}</text>']
    for x in sorted(set(xs)):
        out.append(f'<text x="{fx(x):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">'
                   f'{x:,.0f}</text>')
    for k in range(5):
        value = (y0 + (y1 - y0) * k / 4) if not logy else 10 ** (
            math.log10(y0) + (math.log10(y1) - math.log10(y0)) * k / 4)
        y = fy(value)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 5}" y="{y + 4:.1f}" text-anchor="end">{value:,.3g}</text>')
    for n, (name, data) in enumerate(series.items()):
        colour = COLOURS[n % len(COLOURS)]
        good = [(x, y) for x, y in data if y == y and (y > 0 or not logy)]
        if good:
            coords = " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in good)
            out.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" '
                       'stroke-width="2"/>')
            out.extend(f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="3" fill="{colour}"/>'
                       for x, y in good)
        ly = TOP + 10 + 18 * n
        out.append(f'<rect x="{W - RIGHT + 10}" y="{ly - 8}" width="12" height="4" '
                   f'fill="{colour}"/><text x="{W - RIGHT + 28}" y="{ly - 2}">'
                   f'{escape(name)}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out))
    return path


def bar_chart(path: Path, title: str, ylabel: str, bars: dict[str, float]) -> Path:
    """Write a bar chart (one bar per label)."""
    top = max([v for v in bars.values() if v == v] or [1.0]) * 1.15 or 1.0
    width = (W - LEFT - 40) / max(1, len(bars))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
           f'<text x="15" y="{H / 2}" transform="rotate(-90 15 {H / 2})" text-anchor="middle">'
           f'{escape(ylabel)}</text>']
    for n, (label, value) in enumerate(bars.items()):
        v = value if value == value else 0.0
        h = (H - TOP - BOTTOM) * v / top
        x = LEFT + n * width + 8
        out.append(f'<rect x="{x:.1f}" y="{H - BOTTOM - h:.1f}" width="{width - 16:.1f}" '
                   f'height="{h:.1f}" fill="{COLOURS[n % len(COLOURS)]}"/>')
        out.append(f'<text x="{x + (width - 16) / 2:.1f}" y="{H - BOTTOM - h - 4:.1f}" '
                   f'text-anchor="middle">{v:,.4g}</text>')
        out.append(f'<text x="{x + (width - 16) / 2:.1f}" y="{H - BOTTOM + 16}" '
                   f'text-anchor="middle">{escape(label)}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out))
    return path
