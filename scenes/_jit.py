"""A place numba can keep the compiled kernels of this package between runs.

Every numba kernel of the package is ``@njit(cache=True)``: compiling them
takes about half a minute, once; later runs load them from numba's cache.
numba writes that cache beside the source (``__pycache__``), else, where the
package is installed read-only, in the user's cache folder
(``~/.cache/numba``), or in ``NUMBA_CACHE_DIR`` when that is set. Where it
can write none of them (a read-only install and no writable home, as in some
containers), numba refuses to define a cached kernel at all: the import
fails. :func:`ensure_cache_dir` then points numba at a folder in the
temporary directory instead. Each kernel module imports this module before
its first ``@njit(cache=True)``.

Saving a freshly compiled kernel to that cache can fail too (a full disk, a
file size limit): numba then raises from inside the kernel's first call, and
the job would stop with an error about numba's cache file instead of the
work. :func:`_save_or_skip` makes such a failure cost only the caching: the
kernel runs, and compiles again in the next run.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numba
from numba.core import caching

log = logging.getLogger(__name__)


def _probe():  # pragma: no cover - never called; numba locates its cache from its file
    pass


def ensure_cache_dir() -> str | None:
    """Make sure numba can cache kernels defined in this package; return the folder chosen.

    None when numba's own choice works (beside the source, the user's cache
    folder or ``NUMBA_CACHE_DIR``); else the temporary folder set as
    ``numba.config.CACHE_DIR``.
    """
    try:
        caching.FunctionCache(_probe)  # numba's own search for a writable cache location
        return None
    except RuntimeError:
        pass
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    folder = Path(tempfile.gettempdir()) / f"seaice-gbm-numba-cache-{uid}"
    numba.config.CACHE_DIR = str(folder)
    log.debug("numba cannot write its cache beside %s nor in the user's cache folder; "
              "using %s (set NUMBA_CACHE_DIR to choose)", Path(__file__).parent, folder)
    return str(folder)


CACHE_DIR = ensure_cache_dir()


_numba_save = caching.Cache.save_overload


def _save_or_skip(self, sig, data):
    """numba's ``Cache.save_overload``, with an ``OSError`` logged instead of raised (numba
    removes its own temporary file first)."""
    try:
        _numba_save(self, sig, data)
    except OSError as e:
        log.info("numba could not cache a compiled kernel (%s); it compiles again next run", e)


caching.Cache.save_overload = _save_or_skip
