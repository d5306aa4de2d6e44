"""Geolocation of a scene from its 21 x 21 tie points: the axis order, interpolation, the check."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from scenes import contract as C
from scenes import geolocation as G
from scenes.reader import SceneError
from scenes.synth import make_scene


def _scene(lat_ls, lon_ls, shape, order=G.TIEPOINT_ORDER, hh=None, dist_zone=None):
    """A minimal scene: tie points given in (line, sample) order, stored under ``order``."""
    H, W = shape
    hh = np.ones(shape, np.float32) if hh is None else hh
    zone = np.full(shape, 30.0) if dist_zone is None else dist_zone
    dm = np.where(hh != 0, C.to_zscore("distance_map", zone), 0).astype(np.float32)
    return xr.Dataset({
        C.SAR_VARS[0]: (C.SAR_DIMS, hh), "distance_map": (C.SAR_DIMS, dm),
        C.TIEPOINT_VARS[0]: (C.TIEPOINT_DIMS, np.array(G.to_stored(lat_ls, order))),
        C.TIEPOINT_VARS[1]: (C.TIEPOINT_DIMS, np.array(G.to_stored(lon_ls, order)))})


def _ramp(shape, lat0=70.0, lon0=-50.0, dlat=-0.01, dlon=0.03):
    """Tie points with latitude falling down the lines and longitude rising along the samples."""
    rows = G.tiepoint_positions(shape[0])[:, None]
    cols = G.tiepoint_positions(shape[1])[None, :]
    return lat0 + dlat * rows + 0 * cols, lon0 + dlon * cols + 0 * rows


def test_tie_point_k_sits_at_index_k_times_n_minus_1_over_20():
    np.testing.assert_allclose(G.tiepoint_positions(5001)[[0, 1, 20]], [0, 250, 5000])
    np.testing.assert_allclose(G.tiepoint_positions(101), np.arange(21) * 5)


def test_axis_order_is_explicit_and_the_two_readings_are_transposes():
    assert G.TIEPOINT_ORDER == "lines_first" and set(G.AXIS_ORDERS) == {"lines_first", "samples_first"}
    shape = (120, 200)
    lat, lon = _ramp(shape)
    ds = _scene(lat, lon, shape)
    tp = G.tie_points(ds)  # lines_first: array axis 0 runs down the lines
    np.testing.assert_array_equal(tp.lat, lat)
    assert tp.lat[0, 0] > tp.lat[-1, 0] and tp.lon[0, -1] > tp.lon[0, 0]
    other = G.tie_points(ds, "samples_first")
    np.testing.assert_array_equal(other.lat, lat.T)
    # stored the other way, read the other way: the same geolocation
    back = G.tie_points(_scene(lat, lon, shape, order="samples_first"), "samples_first")
    np.testing.assert_array_equal(back.lat, lat)
    with pytest.raises(ValueError, match="axis order must be one of"):
        G.tie_points(ds, "rows")


def test_synthetic_scenes_store_tie_points_lines_first():
    """The generator places row 0 and the last row at the two ends of its swath: reading
    the other way would swap which of the scene's corners lie where."""
    ds = make_scene((60, 200), seed=5, kind="test")
    tp = G.tie_points(ds)
    (la0, lo0), (la1, lo1), (la2, lo2), _ = tp.corners()
    km = lambda a, b, c, d: 111.2 * np.hypot(c - a, (d - b) * np.cos(np.radians(a)))  # noqa: E731
    # 200 samples x 80 m = 16 km along a line, 60 lines = 4.7 km down a sample
    assert km(la0, lo0, la1, lo1) == pytest.approx(199 * 0.08, rel=0.02)
    assert km(la1, lo1, la2, lo2) == pytest.approx(59 * 0.08, rel=0.02)
    assert ds[C.TIEPOINT_VARS[0]].dims == C.TIEPOINT_DIMS


def test_interpolation_hits_tie_points_and_corners_and_inverts():
    ds = make_scene((100, 110), seed=7, kind="test")
    tp = G.tie_points(ds)
    lat, lon = tp.grid(tp.rows, tp.cols)
    np.testing.assert_allclose(lat, tp.lat, atol=1e-9)
    np.testing.assert_allclose(lon, tp.lon, atol=1e-9)
    corners = np.array(tp.corners())
    np.testing.assert_allclose(corners[:, 0], [tp.lat[0, 0], tp.lat[0, -1], tp.lat[-1, -1],
                                               tp.lat[-1, 0]], atol=1e-9)
    rng = np.random.default_rng(0)
    r, c = rng.uniform(-0.5, 99.5, 500), rng.uniform(-0.5, 109.5, 500)
    la, lo = tp.latlon(r, c)
    gl, go = tp.grid(r[:5], c[:7])
    np.testing.assert_allclose(gl, tp.latlon(r[:5, None], c[None, :7])[0], atol=1e-10)
    np.testing.assert_allclose(go, tp.latlon(r[:5, None], c[None, :7])[1], atol=1e-10)
    r2, c2 = tp.index_of(la, lo)
    assert np.abs(r2 - r).max() < 1e-6 and np.abs(c2 - c).max() < 1e-6


def test_interpolation_across_the_antimeridian_stays_between_its_tie_points():
    shape = (101, 101)
    lat, lon = _ramp(shape, lat0=71.0, lon0=179.0, dlon=0.02)
    lon = (lon + 180) % 360 - 180  # 179 .. 181 stored as 179 .. -179
    tp = G.tie_points(_scene(lat, lon, shape))
    la, lo = tp.latlon(50.0, np.arange(0, 101, 10.0))
    assert np.all(np.abs(lo) > 178.9)  # never through 0 degrees
    assert np.all(np.diff(np.mod(lo, 360)) > 0)


def test_bad_tie_points_are_one_line(tmp_path):
    shape = (40, 50)
    lat, lon = _ramp(shape)
    bad = _scene(lat, lon, shape)
    bad[C.TIEPOINT_VARS[0]].values[3, 4] = np.nan
    with pytest.raises(SceneError, match="sar_grid2d_latitude: holds values that are not finite"):
        G.tie_points(bad)
    with pytest.raises(SceneError, match="sar_grid2d_longitude: missing"):
        G.tie_points(_scene(lat, lon, shape).drop_vars(C.TIEPOINT_VARS[1]))


def test_land_check_tells_the_axis_orders_apart():
    """Land north of 69.8 N: the scene's top rows have no SAR (land) next to coastal water.
    Read lines-first, those pixels are on land and the open sea is at sea; read the
    other way, the latitude runs along the samples and most of them are not."""
    shape = (200, 240)
    lat, lon = _ramp(shape, lat0=70.0, dlat=-0.002, dlon=0.01)  # 70.0 N at the top, 69.6 at the bottom
    tp = G.TiePoints(lat, lon, shape)
    plat, _ = tp.grid(np.arange(shape[0]), np.arange(shape[1]))
    land = plat > 69.8
    hh = np.where(land, 0, 1).astype(np.float32)
    from scipy import ndimage
    dist_km = ndimage.distance_transform_edt(~land) * 0.08
    zone = np.where(dist_km <= 0.5, 1, np.where(dist_km > 20, 30, 10)).astype(np.float64)
    zone[170:, :] = 30  # called far from land: the check's sea sample
    ds = _scene(lat, lon, shape, hh=hh, dist_zone=zone)
    result = G.land_agreement(ds, lambda la, lo: la > 69.8)
    good, bad = result["lines_first"], result["samples_first"]
    assert good["land"] > 100 and good["land_on_land"] == good["land"]
    assert good["sea_on_sea"] == good["sea"] > 100
    assert bad["land_on_land"] < 0.8 * bad["land"]


def test_geolocation_lines_report_both_orders_and_a_verdict(tmp_path):
    from cli.geolocation import geolocation_lines
    from scenes.reader import open_scene
    from scenes.synth import write_synthetic_dataset

    path = write_synthetic_dataset(tmp_path, n_train=0, n_test=1, size=(120, 130), seed=3,
                                   progress=False)["test"][0]
    ds = open_scene(path, check_values=False)
    tp, (r, c) = G.tie_points(ds), G.coastal_samples(ds)["land"]
    ds.close()
    # a land mask that is land exactly where the scene's land pixels fall, read lines-first
    land = set(zip(*tp.latlon(r, c)))
    is_land = lambda la, lo: np.array([p in land for p in zip(la, lo)], bool)  # noqa: E731
    lines = geolocation_lines(path, is_land=is_land)
    assert lines[0].startswith("  geolocation lines_first (used): scene land on land ")
    assert lines[1].startswith("  geolocation samples_first: ")
    assert r.size and lines[0].split("land on land ")[1].startswith(f"{r.size}/{r.size} (100 %)")
    assert lines[-1] in ("  geolocation: lines_first fits, as used",
                         "  geolocation: undecided on this scene (too little coast); try "
                         "another coastal scene")


def test_check_geolocation_command_favours_lines_first_on_a_coastal_scene(tmp_path):
    """`seaice check --geolocation` with the offline land mask, in its own process (it
    loads 1 GB), on a synthetic coastal scene placed on a real coast (scenes/synth.py COASTS)."""
    pytest.importorskip("global_land_mask")
    import subprocess
    import sys
    from pathlib import Path

    ds = make_scene((300, 320), seed=5, kind="test")
    path = tmp_path / ds.attrs["scene_id"]
    ds.to_netcdf(path, engine="h5netcdf", encoding={v: {"_FillValue": None} for v in ds.data_vars})
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(root / "run.py"), "check", "--geolocation", str(path)],
                       capture_output=True, text=True, cwd=root)
    assert r.returncode == 0, r.stderr
    assert "geolocation lines_first (used): scene land on land" in r.stdout
    assert "geolocation samples_first:" in r.stdout and "1 file(s): 1 ok" in r.stdout
    assert "  geolocation: lines_first fits, as used" in r.stdout, r.stdout
