"""``run.py check``: validate scene files against the data contract."""
from __future__ import annotations

from scenes import contract as C
from scenes.reader import iter_scenes, valid_mask


def add_parser(sub, parents):
    p = sub.add_parser("check", parents=parents, help="validate scene files against the data contract",
                       description="Open every scene of a folder (or one file) and check it fully.")
    p.add_argument("path", metavar="PATH", help="a scene file or a folder of scenes")
    p.set_defaults(func=run)


def run(args) -> int:
    n = 0
    for path, ds in iter_scenes(args.path):
        h, w = (ds.sizes[d] for d in C.SAR_DIMS)
        kind = ds.attrs["scene_kind"]
        extra = ""
        if kind != "reference":
            valid = float(valid_mask(ds).mean())
            extra = f", {100 * valid:.1f} % valid SAR pixels"
        print(f"{path.name}: {kind} scene, {h} x {w}{extra}: ok")
        n += 1
    print(f"{n} scene(s) ok")
    return 0
