"""``seaice predict --products``: GeoTIFF, CF-NetCDF, polygons and confidence, opened with GDAL.

One CLI run on the tiny test scenes writes every product; the tests open
them with rasterio / GDAL and pyogrio as an analyst's GIS would.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5netcdf
import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
pyogrio = pytest.importorskip("pyogrio")
shapely = pytest.importorskip("shapely")
pyproj = pytest.importorskip("pyproj")

from rasterio.features import rasterize  # noqa: E402
from rasterio.transform import GCPTransformer  # noqa: E402

from evaluation import polygons as P  # noqa: E402
from evaluation.colours import CHART_COLOURS, rgba  # noqa: E402
from evaluation.figures import plot_submission_maps  # noqa: E402
from evaluation.products import ProductWriter  # noqa: E402
from evaluation.submission import open_submission, read_map  # noqa: E402
from models import load_model  # noqa: E402
from models.predict import Renderer, make_lattice, predict_scene  # noqa: E402
from scenes import contract as C  # noqa: E402
from scenes.geolocation import tie_points  # noqa: E402
from scenes.reader import list_scenes, open_scene, scene_key, valid_mask  # noqa: E402
from scenes.sigrid import export_codes  # noqa: E402

# GDAL warns that a GCP-georeferenced or NetCDF-geolocated raster has no geotransform
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
ROOT = Path(__file__).resolve().parents[1]
FORMATS = "geotiff,netcdf,gpkg,geojson,quicklook"


def _run(*args):
    return subprocess.run([sys.executable, str(ROOT / "run.py"), args[0], "-q",
                           *map(str, args[1:])], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def products(synth_dir, tiny_model, tmp_path_factory):
    """Products of the tiny test scenes, with warped GeoTIFFs, and the scenes' maps."""
    out = tmp_path_factory.mktemp("products")
    r = _run("predict", "--data", synth_dir / "test", "--model", tiny_model[0], "--out",
             out / "sub.nc", "--no-cache", "--products", out / "products", "--formats", FORMATS,
             "--crs")
    assert r.returncode == 0, r.stderr
    assert "product files for 2 scene(s)" in r.stdout
    scenes = {scene_key(p): p for p in list_scenes(synth_dir / "test")}
    maps = {}
    with open_submission(out / "sub.nc") as sub:
        for key in scenes:
            maps[key] = {c: read_map(sub, key, c) for c in C.LABEL_CHARTS}
    return out / "products", scenes, maps, out


def _scene(scenes, key):
    ds = open_scene(scenes[key], validate=False)
    try:
        return tie_points(ds), valid_mask(ds)
    finally:
        ds.close()


def _metres(lat1, lon1, lat2, lon2):
    return pyproj.Geod(ellps="WGS84").inv(lon1, lat1, lon2, lat2)[2]


def test_every_product_is_written_and_nothing_else(products):
    folder, scenes, _, _ = products
    names = sorted(p.name for p in folder.iterdir())
    for key in scenes:
        for layer in ("SIC", "SIC_spread", "SOD", "SOD_confidence", "FLOE", "FLOE_confidence"):
            assert f"{key}_{layer}.tif" in names and f"{key}_{layer}_epsg3413.tif" in names
        for suffix in ("charts.nc", "polygons.gpkg", "polygons.geojson", "quicklook.png"):
            assert f"{key}_{suffix}" in names
    assert not [n for n in names if n.endswith(".tmp") or n.startswith(".")]


def test_geotiffs_are_cogs_with_gcps_colours_and_the_maps(products):
    folder, scenes, maps, _ = products
    for key in scenes:
        tp, valid = _scene(scenes, key)
        H, W = valid.shape
        for chart in C.LABEL_CHARTS:
            with rasterio.open(folder / f"{key}_{chart}.tif") as src:
                assert src.driver == "GTiff" and src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
                assert src.dtypes == ("uint8",) and src.nodata == 255 and src.shape == (H, W)
                points, crs = src.gcps
                assert crs.to_epsg() == 4326 and len(points) == 21 * 21
                data = src.read(1)
                np.testing.assert_array_equal(data[valid], maps[key][chart][valid])
                assert (data[~valid] == 255).all()
                cmap = src.colormap(1)
                assert all(cmap[k] == rgba(c) for k, c in enumerate(CHART_COLOURS[chart]))
                assert src.tags(1)["class_0"] == C.CLASS_NAMES[chart][0]
                # the four scene corners land on the corner tie points (within one pixel)
                with GCPTransformer(points, tps=True) as t:
                    lon, lat = t.xy([0, 0, H - 1, H - 1], [0, W - 1, W - 1, 0])
                for (tla, tlo), la, lo in zip(tp.corners(), lat, lon):
                    assert _metres(tla, tlo, la, lo) < 80
        with rasterio.open(folder / f"{key}_SOD_confidence.tif") as src:
            conf = src.read(1)
            assert src.gcps[1].to_epsg() == 4326
            assert conf[valid].max() <= 100 and (conf[~valid] == 255).all()


def test_cog_has_mode_overviews_and_tags(tmp_path, synth_dir):
    from evaluation.rasters import write_cog

    path = list_scenes(synth_dir / "test")[0]
    tp, _ = _scene({"x": path}, "x")
    a = (np.arange(1100)[:, None] // 100 + np.arange(1200)[None, :] // 150).astype(np.uint8) % 6
    write_cog(tmp_path / "x.tif", a, tp=tp, chart="SOD", class_names=C.CLASS_NAMES["SOD"],
              tags={"scene_id": "x"})
    with rasterio.open(tmp_path / "x.tif") as src:
        assert src.overviews(1) and src.tags()["scene_id"] == "x"
        ov = src.read(1, out_shape=(550, 600))
        assert set(np.unique(ov)) <= set(range(6))  # classes, never averages of classes


def test_warped_geotiff_contains_the_scene(products):
    folder, scenes, maps, _ = products
    to_3413 = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3413", always_xy=True)
    for key in scenes:
        tp, valid = _scene(scenes, key)
        with rasterio.open(folder / f"{key}_SOD_epsg3413.tif") as src:
            assert src.crs.to_epsg() == 3413 and src.res == (80.0, 80.0)
            assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            x, y = to_3413.transform(tp.lon.ravel(), tp.lat.ravel())
            b = src.bounds
            assert b.left <= x.min() and x.max() <= b.right and b.bottom <= y.min() and y.max() <= b.top
            warped = src.read(1)
            have = warped[warped != 255]
            assert have.size > 0.5 * valid.sum()
            assert set(np.unique(have)) <= set(np.unique(maps[key]["SOD"][valid]))  # nearest


def test_netcdf_is_cf_with_flags_confidence_and_latlon(products):
    folder, scenes, maps, _ = products
    for key in scenes:
        tp, valid = _scene(scenes, key)
        with h5netcdf.File(folder / f"{key}_charts.nc", "r") as f:
            g = f.attrs
            assert g["Conventions"] == "CF-1.8" and g["scene_id"] == f"{key}_prep.nc"
            assert len(g["model_manifest_sha256"]) == 64 and "seed" in g["model_training_run"]
            assert g["software_version"].startswith("seaice-gbm")
            sic = f.variables["SIC"]
            assert sic.attrs["standard_name"] == "sea_ice_area_fraction" and sic.attrs["units"] == "%"
            assert sic.attrs["coordinates"] == "lat lon" and sic.attrs["_FillValue"] == 255
            np.testing.assert_array_equal(sic[...][valid], 10 * maps[key]["SIC"][valid])
            assert (sic[...][~valid] == 255).all()
            for chart in ("SOD", "FLOE"):
                v = f.variables[chart]
                np.testing.assert_array_equal(v.attrs["flag_values"], np.arange(C.N_CLASSES[chart]))
                assert v.attrs["flag_values"].dtype == np.uint8
                assert len(v.attrs["flag_meanings"].split()) == C.N_CLASSES[chart]
                assert v.attrs["ancillary_variables"] == f"{chart}_confidence"
                conf = f.variables[f"{chart}_confidence"]
                assert conf.attrs["units"] == "%" and conf[...][valid].max() <= 100
            assert f.variables["SIC_spread"].attrs["standard_name"] == \
                "sea_ice_area_fraction standard_error"
            lat, lon = f.variables["lat"], f.variables["lon"]
            assert lat.attrs["standard_name"] == "latitude" and lat.attrs["units"] == "degrees_north"
            assert lon.attrs["standard_name"] == "longitude" and lon.attrs["units"] == "degrees_east"
            la, lo = lat[...], lon[...]
            H, W = valid.shape
            for (tla, tlo), (r, c) in zip(tp.corners(), ((0, 0), (0, W - 1), (H - 1, W - 1), (H - 1, 0))):
                assert _metres(tla, tlo, float(la[r, c]), float(lo[r, c])) < 80
    # GDAL reads it with its 2-D geolocation arrays
    with rasterio.open(f'netcdf:{folder / (key + "_charts.nc")}:SOD') as src:
        geoloc = src.tags(ns="GEOLOCATION")
        assert geoloc["X_DATASET"].endswith(":lon") and geoloc["Y_DATASET"].endswith(":lat")


def test_polygons_are_valid_with_sigrid_codes_and_rasterise_back(products):
    folder, scenes, maps, _ = products
    for key in scenes:
        tp, valid = _scene(scenes, key)
        info = pyogrio.read_info(folder / f"{key}_polygons.gpkg")
        assert info["crs"] == "EPSG:4326" and info["geometry_type"] == "MultiPolygon"
        assert list(info["fields"]) == list(P.FIELDS)
        meta, _, wkb, values = pyogrio.raw.read(folder / f"{key}_polygons.gpkg")
        geoms = shapely.from_wkb(wkb)
        assert shapely.is_valid(geoms).all() and len(geoms) > 0
        fields = dict(zip(meta["fields"], values))
        for i in range(len(geoms)):
            codes = export_codes(fields["SIC"][i], fields["SOD"][i], fields["FLOE"][i])
            assert fields["CT"][i] == P.sigrid_text(codes["CT"])
            assert fields["SA"][i] == P.sigrid_text(codes["SA"])
            assert fields["POLY_TYPE"][i] == codes["POLY_TYPE"]
            assert fields["SIC_pct"][i] == 10 * fields["SIC"][i]
        # back onto the scene grid: lat/lon -> SAR index -> GDAL pixel coordinates (+0.5)
        def to_pixels(xy):
            r, c = tp.index_of(xy[:, 1], xy[:, 0])
            return np.column_stack([c + 0.5, r + 0.5])
        px = shapely.transform(geoms, to_pixels)
        codes = (fields["SIC"] * 6 + fields["SOD"]) * 7 + fields["FLOE"]
        back = rasterize(zip(px, codes.tolist()), out_shape=valid.shape, fill=65535,
                         dtype="uint16")
        truth = P.joint_code(maps[key])
        agree = (back[valid] == truth[valid]).mean()
        assert agree >= 0.99, agree
        assert ((back == 65535) | valid).mean() > 0.99  # polygons stay on the SAR data
        # the GeoJSON holds the same polygons
        assert pyogrio.read_info(folder / f"{key}_polygons.geojson")["features"] == len(geoms)


def test_confidence_layers_leave_the_maps_alone(synth_dir, tiny_model):
    bundle = load_model(tiny_model[0])
    ds = open_scene(list_scenes(synth_dir / "test")[0])
    try:
        plain = predict_scene(ds, bundle)
        both = predict_scene(ds, bundle, confidence=True)
        valid = valid_mask(ds)
    finally:
        ds.close()
    for chart in C.LABEL_CHARTS:
        np.testing.assert_array_equal(plain[chart], both[chart])
    layers = set(both) - set(C.LABEL_CHARTS)
    assert layers == {"SOD_confidence", "FLOE_confidence",
                      "SIC_spread" if bundle.sic_mode == "regression" else "SIC_confidence"}
    for name in layers:
        assert both[name].dtype == np.uint8 and both[name][valid].max() <= 100
        assert (both[name][~valid] == 255).all()


def test_confidence_is_the_probability_of_the_chosen_class():
    rng = np.random.default_rng(3)
    lattice = make_lattice((30, 34), 4)
    Hl, Wl = lattice.lattice_shape
    lat = {f"{c}_proba": rng.dirichlet(np.ones(C.N_CLASSES[c]), (Hl, Wl)).transpose(2, 0, 1)
           .astype(np.float32) for c in C.LABEL_CHARTS}
    valid_l = np.ones((Hl, Wl), bool)
    valid = rng.random((30, 34)) > 0.1
    r = Renderer(lat, lattice, valid_l, valid)
    maps = r.maps("argmax", {})
    conf = r.confidence(maps, "argmax", {})
    assert set(conf) == {"SIC_confidence", "SOD_confidence", "FLOE_confidence"}
    # the same probabilities interpolated in numpy
    for chart in C.LABEL_CHARTS:
        P_ = lat[f"{chart}_proba"]
        y, x = 17, 22
        i0, a = r.ri[y], r.ra[y]
        j0, b = r.ci[x], r.ca[x]
        k = maps[chart][y, x]
        v = ((1 - a) * ((1 - b) * P_[k, i0, j0] + b * P_[k, i0, j0 + 1])
             + a * ((1 - b) * P_[k, i0 + 1, j0] + b * P_[k, i0 + 1, j0 + 1]))
        if valid[y, x]:
            assert abs(int(conf[f"{chart}_confidence"][y, x]) - 100 * v) <= 0.5 + 1e-4
        assert (conf[f"{chart}_confidence"][~valid] == 255).all()
    # SIC argmax: the chosen class is the most probable one, so at least 1/11
    assert conf["SIC_confidence"][valid].min() >= 100 // 11


def test_map_figures_get_a_confidence_row(products, synth_dir):
    folder, scenes, _, out = products
    pngs = plot_submission_maps(out / "sub.nc", scenes, synth_dir / "reference", out / "report",
                                products_dir=folder)
    assert len(pngs) == 2 and all(p.stat().st_size > 20_000 for p in pngs)


def test_writer_leaves_nothing_on_error(products, tmp_path):
    folder, scenes, maps, _ = products
    key = next(iter(scenes))
    w = ProductWriter(tmp_path / "p", formats="geotiff,netcdf,gpkg")
    with pytest.raises(RuntimeError, match="boom"):
        with w:
            w.add(key, {**maps[key], "SOD_confidence": maps[key]["SOD"]}, scene=scenes[key])
            raise RuntimeError("boom")
    assert list((tmp_path / "p").iterdir()) == []


def test_product_options_without_products_are_refused_by_the_cli(synth_dir, tiny_model, tmp_path):
    r = _run("predict", "--data", synth_dir / "test", "--model", tiny_model[0], "--out",
             tmp_path / "s.nc", "--no-cache", "--formats", "geotiff")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.strip().endswith("--formats applies to the products: add --products DIR")
    assert not (tmp_path / "s.nc").exists()


@pytest.mark.parametrize("kwargs, says", [
    ({"formats": "geotiff,shp"}, "--formats geotiff,shp: unknown format 'shp'; choose from "),
    ({"crs": "EPSG:999999"}, "--crs EPSG:999999: not a coordinate reference system"),
    ({"crs": "EPSG:4326"}, "--crs EPSG:4326 is not projected: give --resolution"),
    ({"resolution": 100.0}, "--resolution applies to the warped GeoTIFFs: add --crs"),
    ({"crs": "EPSG:3413", "resolution": -1.0}, "--resolution -1.0: must be a positive"),
    ({"formats": "netcdf", "crs": "EPSG:3413"}, "--crs warps the GeoTIFFs: add geotiff"),
])
def test_product_options_are_checked_before_any_work(kwargs, says, tmp_path):
    with pytest.raises(ValueError) as e:
        ProductWriter(tmp_path / "p", **kwargs)
    assert says in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "p").exists()


def test_missing_geo_package_is_one_line():
    from evaluation.geo import require

    with pytest.raises(ValueError, match=r"--products needs nosuchgeo .*pip install 'seaice-gbm\[geo\]'"):
        require("nosuchgeo")


def test_same_polygons_same_bytes(tmp_path):
    geoms = shapely.polygons([[(0, 60), (1, 60), (1, 61), (0, 60)]])
    fields = P.attributes(np.array([P.joint_code({"SIC": np.uint8(10), "SOD": np.uint8(4),
                                                  "FLOE": np.uint8(5)})]), geoms)
    for name in ("a.gpkg", "b.gpkg"):
        P.write_polygons(tmp_path / name, geoms, fields)
    assert (tmp_path / "a.gpkg").read_bytes() == (tmp_path / "b.gpkg").read_bytes()
    assert fields["CT"][0] == "92" and fields["SA"][0] == "93" and fields["FA"][0] == "06"
