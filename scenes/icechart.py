"""SIGRID-3 polygon codes of a raw scene -> the challenge's SIC, SOD and FLOE classes.

The raw AI4Arctic files hold the ice chart as a polygon id per 40 m pixel
(``polygon_icechart``) and one code string per polygon (``polygon_codes``,
``id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE``). The rules that turn
them into classes are FORMAT.md's ("The raw dataset"), with the code tables of
:mod:`scenes.sigrid`:

- SIC is the class of CT; a water polygon (POLY_TYPE ``W``) is SIC 0.
- The partial concentrations CA, CB, CC use the SIC table (in tenths); a
  partial that is not filled (``-9``) is an absent layer, except CA, which
  takes CT's tenths when CT is an ice class (1..10).
- SOD (FLOE): the concentrations of the layers whose stage (form) maps to the
  same class add up; the class with the largest sum is the polygon's if that
  sum is at least 65 % of CT's tenths, else 255. A form code 8 (fast ice) in
  any layer makes the polygon's FLOE 255.
- Wherever SIC is 0, SOD and FLOE are 0.

Two cases the published rules leave open are decided here (README, "Raw
data"): a polygon whose CT is unknown (SIC 255) has SOD and FLOE 255 (the
65 % rule needs CT), and so has a polygon with a partial concentration code
that is neither a known code nor ``-9``.

Everything is computed once per polygon (vectorised over the table), then
each pixel costs one table lookup (:class:`PolygonLookup`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from . import contract as C
from . import sigrid as S
from .reader import SceneError

#: The code fields the rules read, in this order in :attr:`PolygonTable.codes`.
CODE_FIELDS = ("CT",) + tuple(f for layer in S.LAYERS for f in layer)
_COL = {name: i for i, name in enumerate(CODE_FIELDS)}
_INT = re.compile(r"^[+-]?\d+$")
_INT_FLOAT = re.compile(r"^[+-]?\d+\.0*$")
#: Largest polygon id for a dense id -> row table (else a sorted search).
_DENSE_MAX = 1 << 24
#: A pixel whose id is in no table row (packed lookup value).
_ABSENT = np.uint32(0xFFFFFFFF)
_FILL_TRIPLE = np.uint32(C.MASK_VALUE | C.MASK_VALUE << 8 | C.MASK_VALUE << 16)


@dataclass(frozen=True)
class PolygonTable:
    """The parsed ``polygon_codes`` of a scene.

    Attributes
    ----------
    ids : ndarray of int64, shape (n,)
        Polygon ids, unique.
    codes : ndarray of int32, shape (n, 10)
        The fields of :data:`CODE_FIELDS`; ``-9`` where not filled.
    water : ndarray of bool, shape (n,)
        POLY_TYPE is ``W`` (any case).
    entries : tuple of str
        The code strings as stored (header excluded), for reports.
    """

    ids: np.ndarray
    codes: np.ndarray
    water: np.ndarray
    entries: tuple

    def __len__(self) -> int:
        return len(self.ids)


# --- parsing ------------------------------------------------------------------------
def _as_text(value) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")
    return str(value)


def _code(text: str):
    """Integer value of one field (``''`` = not filled), or None when it is not a number."""
    s = text.strip()
    if not s:
        return S.NOT_FILLED
    if _INT.match(s):
        return int(s)
    if _INT_FLOAT.match(s):  # "92.0": a table written from floats
        return int(float(s))
    return None


def _columns(header: list[str], path, variable):
    """Column index of id, POLY_TYPE and each code field, from a header entry."""
    names = [h.strip().upper() for h in header]
    missing = [f for f in CODE_FIELDS + ("POLY_TYPE",) if f not in names]
    if missing:
        raise SceneError(path, variable, f"header entry '{';'.join(header)}' lacks the field(s) "
                         f"{', '.join(missing)}",
                         "the first entry must name the fields " + ";".join(S.POLYGON_FIELDS))
    return 0, names.index("POLY_TYPE"), [names.index(f) for f in CODE_FIELDS], len(names)


def parse_polygon_codes(entries, path="scene", variable="polygon_codes") -> PolygonTable:
    """Parse the ``polygon_codes`` strings of a scene.

    Parameters
    ----------
    entries : sequence of str or bytes
        The stored entries. The first is the header when its first field is
        not a number (then fields are found by name, in any order); without a
        header the order of :data:`scenes.sigrid.POLYGON_FIELDS` is assumed.
        Fields may be padded with blanks; an empty field is not filled
        (``-9``); one trailing ``;`` is allowed.
    path, variable
        For messages.

    Raises
    ------
    SceneError
        An entry with the wrong number of fields, a code that is not an
        integer, a repeated id, or no entries.
    """
    rows = [_as_text(e) for e in np.asarray(entries).ravel()]
    rows = [r for r in rows if r.strip()]
    fix = ("each entry must read id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE with "
           "integer codes (-9 = not filled)")
    if not rows:
        raise SceneError(path, variable, "holds no entries", fix)
    first = rows[0].split(";")
    if _code(first[0]) is None or not first[0].strip():
        id_col, type_col, code_cols, n_fields = _columns(first, path, variable)
        rows = rows[1:]
    else:
        n_fields = len(S.POLYGON_FIELDS)
        id_col, type_col = 0, n_fields - 1
        code_cols = [S.POLYGON_FIELDS.index(f) for f in CODE_FIELDS]
    if not rows:
        raise SceneError(path, variable, "holds only the header, no polygon", fix)
    ids = np.empty(len(rows), np.int64)
    codes = np.empty((len(rows), len(CODE_FIELDS)), np.int32)
    water = np.empty(len(rows), bool)
    for k, row in enumerate(rows):
        fields = row.split(";")
        if len(fields) == n_fields + 1 and not fields[-1].strip():
            fields = fields[:-1]
        if len(fields) != n_fields:
            raise SceneError(path, variable, f"entry {k + 1} '{row}' has {len(fields)} fields, "
                             f"expected {n_fields}", fix)
        pid = fields[id_col].strip()
        if not _INT.match(pid):
            raise SceneError(path, variable, f"entry {k + 1} '{row}' has polygon id '{pid}', "
                             "not an integer", fix)
        ids[k] = int(pid)
        for j, col in enumerate(code_cols):
            v = _code(fields[col])
            if v is None:
                raise SceneError(path, variable, f"entry {k + 1} '{row}' has {CODE_FIELDS[j]} = "
                                 f"'{fields[col].strip()}', not an integer code", fix)
            codes[k, j] = v
        water[k] = fields[type_col].strip().upper() == S.WATER
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise SceneError(path, variable, f"polygon id {uniq[counts > 1][0]} appears "
                         f"{counts[counts > 1][0]} times", "each polygon id must appear once")
    return PolygonTable(ids, codes, water, tuple(rows))


# --- the rules ----------------------------------------------------------------------
def code_classes(table: dict, codes) -> np.ndarray:
    """Class (uint8) of each code under ``table``; codes not in it are :data:`UNKNOWN`."""
    codes = np.asarray(codes, np.int64)
    keys = np.fromiter(table.keys(), np.int64)
    lo, hi = int(min(keys.min(), 0)), int(keys.max())
    lut = np.full(hi - lo + 1, S.UNKNOWN, np.uint8)
    lut[keys - lo] = np.fromiter(table.values(), np.int64).astype(np.uint8)
    inside = (codes >= lo) & (codes <= hi)
    return np.where(inside, lut[np.clip(codes, lo, hi) - lo], np.uint8(S.UNKNOWN)).astype(np.uint8)


def _dominant(conc, classes, n_classes, ct, decidable):
    """Per polygon: the class whose layers' tenths sum to >= 65 % of ``ct``, else UNKNOWN."""
    sums = np.zeros((len(ct), n_classes), np.int64)
    for layer in range(conc.shape[1]):
        cls = classes[:, layer]
        known = cls < n_classes
        np.add.at(sums, (np.flatnonzero(known), cls[known]), conc[known, layer])
    best = sums.argmax(axis=1)
    top = sums[np.arange(len(ct)), best]
    # top / ct >= 0.65 in integers: tenths never sit on the threshold, but floats could
    ok = decidable & (20 * top >= 13 * ct)
    return np.where(ok, best, S.UNKNOWN).astype(np.uint8)


def polygon_classes(table: PolygonTable) -> dict[str, np.ndarray]:
    """SIC, SOD and FLOE class (uint8, 255 = unknown) of every polygon of ``table``."""
    codes = table.codes
    ct = code_classes(S.SIC_OF_CODE, codes[:, _COL["CT"]]).astype(np.int64)
    sic = np.where(table.water, 0, ct).astype(np.uint8)
    ice_ct = (ct >= 1) & (ct <= 10)
    conc = np.zeros((len(table), len(S.LAYERS)), np.int64)
    unknown_partial = np.zeros(len(table), bool)
    for k, (cf, _sf, _ff) in enumerate(S.LAYERS):
        raw = codes[:, _COL[cf]]
        cls = code_classes(S.SIC_OF_CODE, raw).astype(np.int64)
        filled = raw != S.NOT_FILLED
        unknown_partial |= filled & (cls == S.UNKNOWN)
        conc[:, k] = np.where(filled & (cls != S.UNKNOWN), cls, 0)
        if k == 0:  # a polygon of one ice type often leaves CA empty: it is all of CT
            conc[:, 0] = np.where(~filled & ice_ct, ct, conc[:, 0])
    decidable = ice_ct & ~unknown_partial
    out = {"SIC": sic}
    for chart, lookup, field in (("SOD", S.SOD_OF_CODE, 1), ("FLOE", S.FLOE_OF_CODE, 2)):
        raw = codes[:, [_COL[layer[field]] for layer in S.LAYERS]]
        out[chart] = _dominant(conc, code_classes(lookup, raw), C.N_CLASSES[chart], ct, decidable)
    fast = (codes[:, [_COL[layer[2]] for layer in S.LAYERS]] == S.FAST_ICE).any(axis=1)
    out["FLOE"][fast] = S.UNKNOWN
    for chart in ("SOD", "FLOE"):
        out[chart][sic == 0] = 0
    return out


# --- per pixel ----------------------------------------------------------------------
class PolygonLookup:
    """Polygon id -> packed (SIC, SOD, FLOE) per pixel, one lookup each.

    Parameters
    ----------
    table : PolygonTable
    path, variable
        For messages about ids that are in no table entry.
    """

    def __init__(self, table: PolygonTable, path="scene", variable="polygon_icechart"):
        self.path, self.variable = path, variable
        cls = polygon_classes(table)
        self.classes = cls
        packed = (cls["SIC"].astype(np.uint32) | cls["SOD"].astype(np.uint32) << 8
                  | cls["FLOE"].astype(np.uint32) << 16)
        ids = table.ids
        self._dense = ids.size and ids.min() >= 0 and ids.max() < _DENSE_MAX
        if self._dense:
            self._lut = np.full(int(ids.max()) + 1, _ABSENT, np.uint32)
            self._lut[ids] = packed
        else:
            order = np.argsort(ids)
            self._ids, self._packed = ids[order], packed[order]

    def packed(self, ids: np.ndarray, fill: np.ndarray | None = None) -> np.ndarray:
        """Packed classes (uint32: SIC | SOD << 8 | FLOE << 16) of integer ``ids``.

        ``fill`` marks pixels without a polygon (all three classes 255).

        Raises
        ------
        SceneError
            An id (outside ``fill``) that no table entry has.
        """
        ids = np.asarray(ids)
        if self._dense:
            inside = ids < self._lut.size
            if ids.dtype.kind == "i":
                inside &= ids >= 0
            if inside.all():
                out = self._lut[ids]
            else:
                out = np.where(inside, self._lut[np.where(inside, ids, 0)], _ABSENT)
        else:
            pos = np.clip(np.searchsorted(self._ids, ids), 0, len(self._ids) - 1)
            out = np.where(self._ids[pos] == ids, self._packed[pos], _ABSENT)
        if fill is not None:
            out[fill] = _FILL_TRIPLE
        absent = out == _ABSENT
        if absent.any():
            missing = np.unique(ids[absent])
            raise SceneError(self.path, self.variable,
                             f"holds polygon id(s) {', '.join(map(str, missing[:5].tolist()))} "
                             f"that polygon_codes does not list",
                             "every id of the raster needs an entry in polygon_codes (or must be "
                             "the variable's _FillValue); the file is damaged or from another chart")
        return out

    def charts(self, ids: np.ndarray, fill: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """SIC, SOD and FLOE (uint8) of integer ``ids``, 255 where ``fill``."""
        bytes4 = self.packed(ids, fill).view(np.uint8).reshape(np.shape(ids) + (4,))
        little = np.little_endian
        return {c: bytes4[..., k if little else 3 - k] for k, c in enumerate(C.LABEL_CHARTS)}
