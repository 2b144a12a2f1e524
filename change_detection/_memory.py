"""Memory machinery: glibc malloc arena caps, ``malloc_trim`` and reading a lazy array into one
buffer, away from the algorithm.

numpy frees its arrays through glibc's malloc, which keeps the freed pages in its arenas
instead of handing them back to the system. In a pipeline whose chunks are allocated and freed
by several threads, the resident size then creeps up although what is alive stays the same.
Two knobs bound it, both no-ops off glibc:

* :func:`limit_malloc_arenas` caps the number of arenas for the rest of the process. glibc
  gives threads their own arenas (up to eight per core); the pipeline's short-lived thread
  pools (tie points, vertical offset, warps) took the peak of an 8192 px run from 0.96 to
  1.23 GB that way, and a cap of one arena per core brought it back to 0.95 GB at the same
  speed.
* :func:`release_freed_memory` hands the heap's free pages back (``malloc_trim``), as
  dask.distributed does for its workers. A trim walks the heap (tens of milliseconds), so
  callers may trim at most once every ``min_interval_s`` seconds (measured at 8192 px:
  trimming after every block cost 10 % of the detection time for 20 % less peak memory).

* :func:`read_into` computes a lazy (dask) array chunk by chunk into one numpy array. Computing
  it whole (``np.asarray``, ``dask.compute``) makes every chunk and then concatenates them,
  holding the rows twice; the full-width bands the tie points and the registered strips read
  are hundreds of megabytes at 20480 px.

:mod:`change_detection._exec` trims after every block (at most once a second) and after every
group of chunks; :func:`survey.pipeline.bounded_memory` caps the arenas.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from typing import Any

__all__ = ["limit_malloc_arenas", "read_into", "release_freed_memory"]


@functools.cache
def _libc() -> Any:
    """The C library through ctypes (None where it cannot be loaded)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def _malloc_trim() -> Any:
    """glibc's ``malloc_trim`` (None elsewhere)."""
    return getattr(_libc(), "malloc_trim", None)


_M_ARENA_MAX = -8  # glibc's mallopt parameter


@functools.cache
def limit_malloc_arenas(n: int | None = None) -> bool:
    """Cap glibc's malloc arenas at ``n`` (default: one per core; at least 2) for the rest of
    the process, unless ``MALLOC_ARENA_MAX`` is set; True when the cap was applied.

    glibc gives threads their own arenas (up to eight per core) and each keeps the pages that
    numpy freed in it; the pipeline's short-lived thread pools (tie points, vertical offset,
    warps) took the peak of an 8192 px run from 0.96 to 1.23 GB that way, and a cap of one
    arena per core brought it back to 0.95 GB at the same speed. No-op off glibc.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None or _malloc_trim() is None:  # not glibc
        return False
    return bool(mallopt(_M_ARENA_MAX, max(2, n or os.cpu_count() or 2)))


_TRIM_LOCK = threading.Lock()
_LAST_TRIM = [0.0]


def release_freed_memory(min_interval_s: float = 0.0) -> None:
    """Hand the heap's free pages back to the system (glibc ``malloc_trim``).

    glibc keeps what numpy freed in its arenas (chunks are allocated and freed by several
    threads), so without this the resident size creeps up although what is alive stays the
    same; dask.distributed trims its workers the same way. A trim walks the heap (tens of
    milliseconds), so blocks trim at most once every ``min_interval_s`` seconds (measured at
    8192 px: every block cost 10 % of the detection time for 20 % less peak memory).

    Parameters
    ----------
    min_interval_s : float
        Seconds since the last trim (of any thread) below which this call does nothing.
    """
    trim = _malloc_trim()
    if trim is None:
        return
    now = time.monotonic()
    with _TRIM_LOCK:
        if now - _LAST_TRIM[0] < min_interval_s:
            return
        _LAST_TRIM[0] = now
    trim(0)


def read_into(arrays: list[Any], outs: list[Any] | None = None) -> list[Any]:
    """The values of ``arrays`` as numpy arrays, the lazy ones stored chunk by chunk (one
    compute for all of them, so tasks they share run once).

    Parameters
    ----------
    arrays : list of dask arrays, numpy arrays or anything ``np.asarray`` reads
    outs : list of ndarray, optional
        Where to put each (a view works: a band's lower rows); shapes as ``arrays``'.

    Returns
    -------
    list of ndarray
        ``outs`` when given; else new arrays (``np.asarray`` of what is not lazy).
    """
    import numpy as np

    # dask collections, told apart as the rest of the project does (no dask import here)
    if outs is None:
        outs = [np.empty(a.shape, a.dtype) if hasattr(a, "dask") else np.asarray(a) for a in arrays]
    else:
        for a, o in zip(arrays, outs, strict=True):
            if not hasattr(a, "dask"):
                o[...] = np.asarray(a)
    pairs = [(a, o) for a, o in zip(arrays, outs, strict=True) if hasattr(a, "dask")]
    if not pairs:
        return outs
    import dask
    import dask.array as da
    import dask.local
    import dask.threaded

    lazies, targets = [a for a, _ in pairs], [o for _, o in pairs]
    if dask.base.get_scheduler(collections=lazies) in (dask.threaded.get, dask.local.get_sync):
        # each chunk is written into its output as it is computed and then freed
        da.store(lazies, targets, lock=False)
    else:
        # worker processes (dask.distributed, multiprocessing) would store into copies
        for o, v in zip(targets, dask.compute(*lazies), strict=True):
            o[...] = v
    return outs
