"""A structural check of LightGBM text models before LightGBM parses them.

LightGBM's own parser trusts its input: a damaged model file can abort the
process natively (signal 6) instead of raising. The manifest's checksums
catch damage after training, but not a file changed together with its
manifest, so :func:`text_problem` reads the layout LightGBM relies on
(header, ``tree_sizes`` offsets, every tree's arrays and their lengths, the
closing ``end of trees``) and names the first thing that is off.
"""
from __future__ import annotations

import math

#: Per-tree arrays and their length: internal nodes (num_leaves - 1) or leaves.
_NODE_KEYS = ("split_feature", "split_gain", "threshold", "decision_type", "left_child",
              "right_child", "internal_value", "internal_weight", "internal_count")
_LEAF_KEYS = ("leaf_value", "leaf_weight", "leaf_count")


def _numbers(text: str, what: str, integer: bool = False) -> list:
    out = []
    for tok in text.split():
        try:
            value = int(tok) if integer else float(tok)
        except ValueError:
            raise ValueError(f"{what}: {tok[:30]!r} is not a number") from None
        if not integer and math.isnan(value):
            raise ValueError(f"{what}: NaN")
        out.append(value)
    return out


def _tree(block: str, index: int, n_features: int) -> None:
    # LightGBM cuts the trees at the tree_sizes offsets and expects each to start right
    # there (an extra blank line before a tree aborts its parser)
    if not block.startswith(f"Tree={index}\n"):
        raise ValueError(f"tree {index} does not start with 'Tree={index}' at its "
                         "tree_sizes offset")
    lines = block.rstrip("\n").split("\n")
    fields = {}
    for line in lines[1:]:
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"tree {index}: line {line[:40]!r} is not key=value")
        fields[key] = value
    try:
        n_leaves = int(fields["num_leaves"])
        n_cat = int(fields.get("num_cat", "0"))
    except (KeyError, ValueError):
        raise ValueError(f"tree {index}: num_leaves/num_cat missing or not whole numbers") from None
    if n_leaves < 1 or n_cat < 0:
        raise ValueError(f"tree {index}: num_leaves {n_leaves}, num_cat {n_cat}")
    if n_leaves == 1:
        if len(_numbers(fields.get("leaf_value", ""), f"tree {index} leaf_value")) != 1:
            raise ValueError(f"tree {index}: a one-leaf tree needs one leaf_value")
        return
    for key in _NODE_KEYS + _LEAF_KEYS:
        if key not in fields:
            raise ValueError(f"tree {index}: {key} missing")
        want = n_leaves - 1 if key in _NODE_KEYS else n_leaves
        integer = key in ("split_feature", "decision_type", "left_child", "right_child",
                          "leaf_count", "internal_count")
        values = _numbers(fields[key], f"tree {index} {key}", integer)
        if len(values) != want:
            raise ValueError(f"tree {index}: {key} has {len(values)} values, expected {want}")
        if key == "split_feature" and any(not 0 <= v < n_features for v in values):
            raise ValueError(f"tree {index}: split_feature outside 0..{n_features - 1}")
        if key in ("left_child", "right_child") and any(
                not -n_leaves <= v <= n_leaves - 2 for v in values):
            raise ValueError(f"tree {index}: {key} points outside the tree")
    if n_cat:
        raise ValueError(f"tree {index}: categorical splits, which these models never make")


def text_problem(text: str, n_features: int) -> str | None:
    """The first structural problem of a LightGBM text model, or None if it looks whole.

    Parameters
    ----------
    text : str
        The model file's text.
    n_features : int
        Features the model must have (from the manifest).
    """
    try:
        head, sep, body = text.partition("\n\nTree=0\n")
        if not sep or not head.startswith("tree\n"):
            raise ValueError("not a LightGBM text model (no 'tree' header and 'Tree=0')")
        header = dict(line.partition("=")[::2] for line in head.split("\n")[1:])
        max_idx = int(header.get("max_feature_idx", "-2"))
        if max_idx + 1 != n_features:
            raise ValueError(f"max_feature_idx {max_idx} for {n_features} features")
        sizes = _numbers(header.get("tree_sizes", ""), "tree_sizes", integer=True)
        if not sizes or any(s < 1 for s in sizes):
            raise ValueError("tree_sizes missing or not positive")
        body = "Tree=0\n" + body
        pos = 0
        for i, size in enumerate(sizes):
            if pos + size > len(body):
                raise ValueError(f"the file ends inside tree {i} (truncated)")
            _tree(body[pos:pos + size], i, n_features)
            pos += size
        tail = body[pos:]
        if not tail.lstrip("\n").startswith("end of trees"):
            raise ValueError(f"no 'end of trees' after the {len(sizes)} trees of tree_sizes")
        # LightGBM reads the parameters section unchecked too (signal 11 on a cut one)
        start = tail.find("\nparameters:\n")
        if start >= 0:
            end = tail.find("\nend of parameters", start)
            if end < 0:
                raise ValueError("the parameters section has no 'end of parameters' (truncated)")
            for line in tail[start + len("\nparameters:\n"):end].split("\n"):
                if line and not (line.startswith("[") and line.endswith("]") and ": " in line):
                    raise ValueError(f"parameters line {line[:40]!r} is not [name: value]")
    except ValueError as exc:
        return str(exc)
    return None
