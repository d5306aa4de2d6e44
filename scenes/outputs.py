"""Where an output may go: never onto, over or into what the user gave.

Every command checks its outputs with :func:`check_outputs` before any work.
An output is refused when it is, or resolves to (``..``, symbolic links, hard
links), one of the inputs; when replacing it would remove an input (it is a
folder holding one); when it lies inside a sealed input (a model folder, whose
files are checksummed); and when a file output is an existing folder.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Input:
    """Something the user gave, that no output may touch.

    Attributes
    ----------
    path : Path
    option : str
        How the user named it (``--data``, ``--model``...), for messages.
    sealed : bool
        No new file may appear inside it either (a model folder).
    """

    path: Path
    option: str
    sealed: bool = False


@dataclass(frozen=True)
class Output:
    """Something a command will write.

    Attributes
    ----------
    path : Path
    option : str
    folder : bool
        A folder output (model folder, report, cache); else a file.
    """

    path: Path
    option: str
    folder: bool = False


def _real(path: Path) -> Path:
    return Path(os.path.realpath(os.path.abspath(path)))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _files_of(path: Path) -> list[Path]:
    """The regular files directly in a folder input (hard links are per file)."""
    try:
        return [p for p in path.iterdir() if p.is_file()]
    except OSError:
        return []


def check_outputs(outputs, inputs) -> None:
    """Raise one ``ValueError`` line if an output could touch an input.

    Parameters
    ----------
    outputs : iterable of Output
    inputs : iterable of Input

    Raises
    ------
    ValueError
        Naming the output's option and path, the input's option and path,
        and the fix.
    """
    inputs = [i for i in inputs if i.path is not None]
    outputs = [o for o in outputs if o.path is not None]
    for out in outputs:
        where = f"{out.option} {out.path}"
        real = _real(out.path)
        if not out.folder and real.is_dir():
            raise ValueError(f"{where} is an existing folder; give a file name for the output "
                             "(a folder is never replaced by a file)")
        for inp in inputs:
            given = f"{inp.option} {inp.path}"
            inp_real = _real(inp.path)
            if real == inp_real or (real.exists() and _same_file(real, inp_real)):
                raise ValueError(f"{where} is the input {given}; write the output elsewhere "
                                 "(inputs are never overwritten)")
            if _inside(inp_real, real):
                raise ValueError(f"{where} holds the input {given}; writing there could remove "
                                 "it, choose another output")
            if inp.sealed and _inside(real, inp_real):
                raise ValueError(f"{where} is inside {given}, which must stay as it was "
                                 "written; choose an output outside it")
            if inp_real.is_dir() and real.exists():
                for f in _files_of(inp_real):
                    if _same_file(real, f):
                        raise ValueError(f"{where} is {f}, a file of the input {given} (or a "
                                         "link to it); write the output elsewhere")
        for other in outputs:
            if other is not out and _real(other.path) == real:
                raise ValueError(f"{where} is also {other.option}; give them different paths")
