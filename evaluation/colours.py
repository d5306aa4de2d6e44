"""Class colours of the three charts, for figures and GeoTIFF colour tables.

SIC and SOD follow the WMO Ice Chart Colour Code Standard (JCOMM Technical
Report No. 24, WMO/TD-No. 1215), which analysts read at a glance:

- SIC: the total-concentration code, ice free blue, 1-3 tenths green, 4-6
  yellow, 7-8 orange, 9-10 red; each group shaded from light to dark so that
  every class has its own colour, and 0 % (blue) is far from 10 % (green).
- SOD: the stage-of-development code, open water light blue, new ice pale
  lilac, young ice purple, thin first-year yellow-green, thick first-year dark
  green, old ice brown.
- FLOE: the WMO has no floe-size colour code; water as in SOD, then light to
  dark with floe size, bergs purple.
"""
from __future__ import annotations

from scenes import contract as C

#: Hex colour of each class index, per chart.
CHART_COLOURS = {
    "SIC": ("#0064ff",                          # 0 %: ice free
            "#8cffa0", "#6ee68c", "#50cd78",    # 10-30 %: 1-3 tenths, green
            "#ffff00", "#f0e100", "#dcc800",    # 40-60 %: 4-6 tenths, yellow
            "#ff7d07", "#e65f00",               # 70-80 %: 7-8 tenths, orange
            "#ff0000", "#b40000"),              # 90-100 %: 9-10 tenths, red
    "SOD": ("#96c8ff",   # open water (< 1/10)
            "#f0d2fa",   # new ice (SIGRID 81, 82)
            "#aa28f0",   # young ice (83-85)
            "#9bd200",   # thin first-year (87-89)
            "#007800",   # thick first-year (86, 91, 93)
            "#b46432"),  # old ice (95-97)
    "FLOE": ("#96c8ff", "#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026", "#7a0177"),
}
#: Colour of pixels without a class (no SAR data, masked reference).
NO_DATA_COLOUR = "#bbbbbb"

assert all(len(CHART_COLOURS[c]) == C.N_CLASSES[c] for c in C.LABEL_CHARTS)


def rgba(hex_colour: str, alpha: int = 255) -> tuple:
    """``(r, g, b, a)`` 0..255 of a ``#rrggbb`` colour."""
    h = hex_colour.lstrip("#")
    return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), alpha)


def colour_table(chart: str) -> dict:
    """GDAL colour table of a chart's classes: ``{class: (r, g, b, 255)}``."""
    return {k: rgba(c) for k, c in enumerate(CHART_COLOURS[chart])}
