"""SIGRID-3 ice-chart codes and the challenge classes: one table, both directions.

Everything here is copied from FORMAT.md ("The raw dataset"): the starter
pack's rules that define the ready-to-train labels (code -> class) and the
representative code of each class for chart exports (class -> code). The raw
reader's chart conversion and the ice-chart products both use these tables;
nothing else spells a SIGRID-3 code.

Codes are integers as written in ``polygon_codes`` (``-9`` = not filled);
a class of :data:`UNKNOWN` (255, the contract's mask value) means "no chart
information" for that parameter.
"""
from __future__ import annotations

from .contract import MASK_VALUE

#: Class of a code that carries no information for the parameter.
UNKNOWN = MASK_VALUE
#: Code of a field that is not filled.
NOT_FILLED = -9
#: Field order of a ``polygon_codes`` entry (its first entry is this header).
POLYGON_FIELDS = ("id", "CT", "CA", "SA", "FA", "CB", "SB", "FB", "CC", "SC", "FC",
                  "CN", "CD", "CF", "POLY_TYPE")
#: POLY_TYPE of a water polygon (SIC 0 whatever CT says).
WATER = "W"
#: POLY_TYPE of an ice polygon in exports.
ICE = "I"
#: The partial layers: (concentration, stage of development, form) fields.
LAYERS = (("CA", "SA", "FA"), ("CB", "SB", "FB"), ("CC", "SC", "FC"))

# --- code -> class ------------------------------------------------------------
#: SIC class of a total (CT) or partial (CA, CB, CC) concentration code;
#: codes not listed (99 unknown, -9) are UNKNOWN.
SIC_OF_CODE = {0: 0, 1: 0, 2: 0, 55: 0,
               **{10 * k: k for k in range(1, 10)},
               91: 10, 92: 10}
#: SOD class of a stage-of-development code (SA, SB, SC).
SOD_OF_CODE = {0: 0, 80: 0, 81: 1, 82: 1, 83: 2, 84: 2, 85: 2, 87: 3, 88: 3, 89: 3,
               86: 4, 91: 4, 93: 4, 95: 5, 96: 5, 97: 5, 98: UNKNOWN, 99: UNKNOWN}
#: FLOE class of a form code (FA, FB, FC); 8 (fast ice) is FAST_ICE instead.
FLOE_OF_CODE = {0: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 5, 9: 6, 10: 6,
                1: UNKNOWN, 21: UNKNOWN, 22: UNKNOWN}
#: Form code of fast ice: any layer with it makes the polygon's FLOE UNKNOWN.
FAST_ICE = 8
#: A class is the polygon's SOD (FLOE) if its layers' concentrations sum to at
#: least this share of CT; else the polygon is UNKNOWN for that parameter.
DOMINANCE = 0.65

# --- class -> code (representative codes for chart exports) ----------------------
#: CT code of each SIC class.
CT_OF_SIC = {0: 0, **{k: 10 * k for k in range(1, 10)}, 10: 92}
#: SA code of each SOD ice class (class 0 is open water: no stage).
SA_OF_SOD = {1: 81, 2: 83, 3: 87, 4: 93, 5: 95}
#: FA code of each FLOE ice class (class 0 is open water: no form).
FA_OF_FLOE = {1: 2, 2: 3, 3: 4, 4: 5, 5: 6, 6: 10}


def poly_type(sic_class: int) -> str:
    """POLY_TYPE of an exported polygon: water where SIC is 0, ice elsewhere."""
    return WATER if int(sic_class) == 0 else ICE


def export_codes(sic: int, sod: int, floe: int) -> dict:
    """The SIGRID-3 fields of a polygon with these classes (``NOT_FILLED`` where none).

    CA takes CT (one layer); SA and FA are the representative codes of the
    SOD and FLOE classes; an UNKNOWN class leaves its field not filled.
    """
    sic, sod, floe = int(sic), int(sod), int(floe)
    ct = CT_OF_SIC.get(sic, NOT_FILLED)
    water = sic == 0
    return {"CT": ct, "CA": NOT_FILLED if water else ct,
            "SA": NOT_FILLED if water else SA_OF_SOD.get(sod, NOT_FILLED),
            "FA": NOT_FILLED if water else FA_OF_FLOE.get(floe, NOT_FILLED),
            "POLY_TYPE": poly_type(sic)}
