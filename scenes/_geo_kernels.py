"""Numba kernel of :mod:`scenes.geolocation`: latitude/longitude of a grid of pixels.

The same bilinear interpolation of tie-point unit vectors as
``TiePoints.latlon``, fused per pixel so that a whole 5000 x 5200 scene takes
a fraction of a second and no (rows, cols, 3) temporaries.
"""
from __future__ import annotations

import math

from numba import njit, prange

from . import _jit  # noqa: F401  (a writable numba cache for the kernel below)


@njit(parallel=True, cache=True)
def grid_latlon(V, i0, a, j0, b, lat, lon):
    """``lat[y, x]``, ``lon[y, x]`` (degrees) of the pixel in row cell ``i0[y]`` at
    fraction ``a[y]`` and column cell ``j0[x]`` at fraction ``b[x]``.

    V : float64 (21, 21, 3) unit vectors of the tie points.
    """
    for y in prange(lat.shape[0]):
        i = i0[y]
        fa = a[y]
        for x in range(lat.shape[1]):
            j = j0[x]
            fb = b[x]
            w00 = (1 - fa) * (1 - fb)
            w01 = (1 - fa) * fb
            w10 = fa * (1 - fb)
            w11 = fa * fb
            vx = w00 * V[i, j, 0] + w01 * V[i, j + 1, 0] + w10 * V[i + 1, j, 0] + w11 * V[i + 1, j + 1, 0]
            vy = w00 * V[i, j, 1] + w01 * V[i, j + 1, 1] + w10 * V[i + 1, j, 1] + w11 * V[i + 1, j + 1, 1]
            vz = w00 * V[i, j, 2] + w01 * V[i, j + 1, 2] + w10 * V[i + 1, j, 2] + w11 * V[i + 1, j + 1, 2]
            n = math.sqrt(vx * vx + vy * vy + vz * vz)
            lat[y, x] = math.degrees(math.asin(min(max(vz / n, -1.0), 1.0)))
            lon[y, x] = math.degrees(math.atan2(vy, vx))
