"""``seaice check``: audit scene files against the data contract, every file, with a summary."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from scenes import contract as C
from scenes.raw import raw_scene_key
from scenes.reader import SceneError, open_scene, scene_key, valid_mask

from .convert_raw import check_raw
from .geolocation import geolocation_lines


def add_parser(sub, parents):
    p = sub.add_parser("check", parents=parents, help="audit scene files against the data contract",
                       description="Check every scene file under the given files and folders "
                                   "(folders are searched recursively) fully: names, variables, "
                                   "dims, dtypes, values and labels. Prints one line per file and "
                                   "a summary; exits 1 if any file is bad or would be ignored by "
                                   "train and predict.")
    p.add_argument("path", metavar="PATH", nargs="+", help="scene files and/or folders of scenes")
    p.add_argument("--raw", action="store_true",
                   help="PATH are raw AI4Arctic files (40 m, polygon codes): print each one's "
                        "layout (variables, dims, dtypes, fills, first polygon codes) and convert "
                        "it to a temporary file to check it fully")
    p.add_argument("--geolocation", action="store_true",
                   help="also check the tie-point axis order: how many of each scene's land "
                        "pixels (no SAR next to the coast) fall on land in an offline land mask, "
                        "for each order (needs pip install 'seaice-gbm[geo]')")
    p.set_defaults(func=run)


def candidates(paths) -> list[Path]:
    """Every ``.nc`` entry under ``paths`` (files, folders and links named ``*.nc``), sorted."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            inside = list(path.rglob("*.nc"))
            if not inside:
                raise SceneError(path, None, "holds no .nc files (searched recursively)",
                                 "pass the folder of the scene files")
            found += inside
        elif path.exists() or path.is_symlink():
            found.append(path)
        else:
            raise SceneError(path, None, "no such file or folder", "check the path")
    return sorted(set(found))


def audit(path: Path) -> tuple[str, str]:
    """``(status, text)`` of one entry: status ``ok``, ``bad`` or ``ignored``."""
    if C.parse_scene_name(path.name) is None:
        if raw_scene_key(path.name):
            return "ignored", ("a raw AI4Arctic file: check it with `seaice check --raw`, convert "
                               "it with `seaice convert-raw` (train and predict take raw folders)")
        return "ignored", ("not named YYYYMMDDTHHMMSS_{dmi|cis}_prep[_reference].nc: train, "
                           "predict and evaluate ignore it; rename it if it is a scene")
    try:
        ds = open_scene(path)
    except SceneError as exc:
        return "bad", str(exc).removeprefix(f"{path}: ")
    try:
        h, w = (ds.sizes[d] for d in C.SAR_DIMS)
        kind = ds.attrs["scene_kind"]
        extra = ""
        if kind != "reference":
            extra = f", {100 * float(valid_mask(ds).mean()):.1f} % valid SAR pixels"
    finally:
        ds.close()
    return "ok", f"{kind} scene, {h} x {w}{extra}"


def run(args) -> int:
    if args.raw:
        return check_raw(candidates(args.path))
    entries = candidates(args.path)
    counts = Counter()
    seen: dict[tuple[Path, str], Path] = {}
    for path in entries:
        status, text = audit(path)
        key = (path.parent, scene_key(path) + ("_ref" if path.name.endswith("_reference.nc") else ""))
        if status == "ok" and key in seen:
            status, text = "bad", (f"same scene key as {seen[key].name} in the same folder: "
                                   "folder commands refuse the folder; keep one file per scene")
        seen.setdefault(key, path)
        counts[status] += 1
        if status != "ok" or not args.quiet:
            label = {"ok": "ok", "bad": "BAD", "ignored": "IGNORED"}[status]
            print(f"{path}: {label}: {text}" if status != "ok" else f"{path}: {text}: ok")
        if args.geolocation and status == "ok":
            print("\n".join(geolocation_lines(path)))
    print(f"{len(entries)} file(s): {counts['ok']} ok, {counts['bad']} bad, "
          f"{counts['ignored']} ignored (not named like scenes)")
    return 1 if counts["bad"] or counts["ignored"] else 0
