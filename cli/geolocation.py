"""``seaice check --geolocation``: does the tie-point axis order put a scene's land on land?

Reads a scene's own land (SAR no-data next to the coast, distance zone 0)
and open sea (over 20 km from land), places them with each tie-point axis
order (:mod:`scenes.geolocation`) and looks them up in an offline global
land mask. The order this code uses, ``lines_first``, should win clearly on
real scenes; if ``samples_first`` wins, the geolocation (and every product's
position) is transposed: please report it.
"""
from __future__ import annotations

from scenes.geolocation import TIEPOINT_ORDER, global_land, land_agreement
from scenes.reader import open_scene

#: A side wins when its land share beats the other's by this much.
MARGIN = 0.1


def _share(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.0f} %)" if n else "none"


def geolocation_lines(path, is_land=global_land) -> list[str]:
    """Lines reporting :func:`scenes.geolocation.land_agreement` for one scene file."""
    ds = open_scene(path, check_values=False)
    try:
        if ds.attrs["scene_kind"] == "reference":
            return ["  geolocation: a reference file has no SAR or tie points; check its scene"]
        result = land_agreement(ds, is_land)
    finally:
        ds.close()
    lines = []
    for order, r in result.items():
        mark = " (used)" if order == TIEPOINT_ORDER else ""
        lines.append(f"  geolocation {order}{mark}: scene land on land "
                     f"{_share(r['land_on_land'], r['land'])}; open sea (> 20 km out) on sea "
                     f"{_share(r['sea_on_sea'], r['sea'])}")
    shares = {o: r["land_on_land"] / r["land"] for o, r in result.items() if r["land"]}
    if len(shares) < 2:
        lines.append("  geolocation: no land next to the SAR in this scene, so the axis order "
                     "cannot be told here; try a coastal scene")
    else:
        best = max(shares, key=shares.get)
        other = min(shares, key=shares.get)
        if shares[best] - shares[other] < MARGIN:
            lines.append("  geolocation: undecided on this scene (too little coast); try "
                         "another coastal scene")
        elif best == TIEPOINT_ORDER:
            lines.append(f"  geolocation: {best} fits, as used")
        else:
            lines.append(f"  geolocation: {best} fits better than {TIEPOINT_ORDER}, which this "
                         "code uses: positions are transposed; please report it with this output")
    return lines
