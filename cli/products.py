"""The ``--products`` options of ``seaice predict``: analysts' ice-chart products beside
the submission (see :mod:`evaluation.products`)."""
from __future__ import annotations

import argparse

from evaluation.polygons import DEFAULT_MIN_AREA_KM2, DEFAULT_SIMPLIFY_M
from evaluation.products import DEFAULT_CRS, DEFAULT_FORMATS, FORMATS, ProductWriter, model_info

#: Options that only mean something with --products, and their defaults.
_PRODUCT_ONLY = {"formats": None, "crs": None, "resolution": None, "simplify": None,
                 "min_area": None}


def add_product_options(p: argparse.ArgumentParser) -> None:
    """``--products DIR`` and the options of the products it writes."""
    g = p.add_argument_group("ice-chart products (need pip install 'seaice-gbm[geo]')")
    g.add_argument("--products", metavar="DIR", default=None,
                   help="also write, per scene, georeferenced GeoTIFFs, CF-NetCDF and ice-chart "
                        "polygons with confidence layers into DIR (the submission is unchanged)")
    g.add_argument("--formats", default=None, metavar="LIST",
                   help=f"comma-separated products among {','.join(FORMATS)} "
                        f"(default {','.join(DEFAULT_FORMATS)})")
    g.add_argument("--crs", nargs="?", const=DEFAULT_CRS, default=None, metavar="CRS",
                   help=f"also warp the GeoTIFFs to this CRS (alone: {DEFAULT_CRS}, polar "
                        "stereographic north), nearest neighbour")
    g.add_argument("--resolution", type=float, default=None, metavar="R",
                   help="pixel size of the warped GeoTIFFs in CRS units (default 80 m)")
    g.add_argument("--simplify", type=float, default=None, metavar="M",
                   help=f"polygon simplification tolerance in metres (default {DEFAULT_SIMPLIFY_M:g})")
    g.add_argument("--min-area", type=float, default=None, metavar="KM2",
                   help="smallest polygon in km2; smaller patches merge into a neighbour "
                        f"(default {DEFAULT_MIN_AREA_KM2:g})")


def product_writers(args, model_dir) -> list:
    """The predict job's writers: the submission path, and the products writer if asked for."""
    if args.products is None:
        given = [f"--{k.replace('_', '-')}" for k in _PRODUCT_ONLY if getattr(args, k) is not None]
        if given:
            raise ValueError(f"{given[0]} applies to the products: add --products DIR")
        return [args.out]
    writer = ProductWriter(
        args.products, formats=args.formats or DEFAULT_FORMATS, crs=args.crs,
        resolution=args.resolution,
        simplify_m=DEFAULT_SIMPLIFY_M if args.simplify is None else args.simplify,
        min_area_km2=DEFAULT_MIN_AREA_KM2 if args.min_area is None else args.min_area,
        model=model_info(model_dir))
    return [args.out, writer]


def products_line(writers) -> str | None:
    """One line saying what the products writer wrote, if there was one."""
    if len(writers) < 2:
        return None
    w = writers[1]
    polygons = sum(w.polygons.values())
    extra = f", {polygons} polygons" if w.polygons else ""
    return f"wrote {len(w.written)} product files for {len(w.keys)} scene(s) to {w.path}{extra}"
