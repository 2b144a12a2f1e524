"""Scheduling machinery of the chunked detection: chunk grids, the per-block dask graph and the
groups of chunks computed one after the other.

:func:`change_detection.detect.detect_changes` says *what* each block computes; this module
says *how* the blocks are laid out and run, so reading the algorithm does not mean reading the
machinery:

* :func:`chunk_grid` (:class:`ChunkGrid`, :func:`axis_chunks`), :func:`as_dask` and
  :func:`overlap_depth` cut the grid into chunks with halos (the last chunk of an axis
  widened rather than left thinner than a halo);
* :func:`block_graph` builds one delayed task per block, with the key names given so dask
  need not hash every argument of every block, and splits each block's
  :class:`BlockOutput` into a codes array and what the block found;
* :func:`compute_in_groups` computes the chunk grid in square groups, one ``dask.compute``
  each, streaming the codes into a sink or an in-memory array. Dask reads ahead and a chunk's
  data lives until its neighbours' blocks are done, so what it holds at once grows with the
  chunks of a compute; groups keep peak memory flat on larger rasters (measured for the whole
  pipeline, ``make bench``: 0.99 GB at 8192 px, 1.43 GB at 20480 px, inputs with DSMs).

After every block (at most once a second) and every group the heap's free pages go back to
the system (:func:`change_detection._memory.release_freed_memory`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from change_detection._memory import release_freed_memory

__all__ = [
    "BlockOutput",
    "ChunkGrid",
    "as_dask",
    "axis_chunks",
    "block_graph",
    "chunk_grid",
    "compute_in_groups",
    "neighbourhood",
    "overlap_depth",
]

log = logging.getLogger(__name__)


def axis_chunks(n: int, size: int, min_last: int) -> tuple[int, ...]:
    """Chunk sizes along one axis of ``n`` pixels.

    Parameters
    ----------
    n : int
        Pixels along the axis.
    size : int
        Chunk size in pixels.
    min_last : int
        A remainder thinner than this is added to the last full chunk instead.

    Returns
    -------
    tuple of int
        Sizes summing to ``n``; ``(n,)`` when ``n < size``.
    """
    sizes = [size] * (n // size)
    rem = n - size * len(sizes)
    if rem:
        if sizes and rem < min_last:
            sizes[-1] += rem
        else:
            sizes.append(rem)
    return tuple(sizes) if sizes else (n,)


@dataclass(frozen=True)
class ChunkGrid:
    """How a grid is cut into chunks, each extended by a halo where it has a neighbour.

    Attributes
    ----------
    size : int
        Chunk size in pixels (the last chunk of an axis may differ).
    halo : int
        Halo in pixels on the sides of a chunk that have a neighbour.
    row_chunks, col_chunks : tuple of int
        Chunk sizes along y and x in pixels.
    """

    size: int
    halo: int
    row_chunks: tuple[int, ...]
    col_chunks: tuple[int, ...]

    @property
    def n_chunks(self) -> int:
        return len(self.row_chunks) * len(self.col_chunks)

    @property
    def halo_yx(self) -> tuple[int, int]:
        """Halo in pixels along y and x: none along an axis of one chunk."""
        return (
            self.halo if len(self.row_chunks) > 1 else 0,
            self.halo if len(self.col_chunks) > 1 else 0,
        )

    def pads(self, i: int, j: int) -> tuple[int, int, int, int]:
        """Halo of chunk ``(i, j)`` above, below, left and right, in pixels."""
        ny, nx, halo = len(self.row_chunks), len(self.col_chunks), self.halo
        return (
            halo if i > 0 else 0,
            halo if i < ny - 1 else 0,
            halo if j > 0 else 0,
            halo if j < nx - 1 else 0,
        )

    def origin(self, i: int, j: int) -> tuple[int, int]:
        """Row and column of the first pixel of chunk ``(i, j)``'s core."""
        return sum(self.row_chunks[:i]), sum(self.col_chunks[:j])


def chunk_grid(shape: tuple[int, int], size: int, halo: int, min_last: int) -> ChunkGrid:
    """Chunks of ``size`` px over a grid of ``shape`` (rows, cols) px; see :func:`axis_chunks`."""
    return ChunkGrid(
        size, halo, axis_chunks(shape[0], size, min_last), axis_chunks(shape[1], size, min_last)
    )


def as_dask(arr: xr.DataArray, chunks: tuple[tuple[int, ...], ...]) -> da.Array:
    """The data of ``arr`` as a dask array with ``chunks`` (rechunked, or wrapped if numpy)."""
    data = arr.data
    if isinstance(data, da.Array):
        return data.rechunk(chunks)
    return da.from_array(np.asarray(data), chunks=chunks)


def overlap_depth(depth: int, chunks: tuple[int, ...]) -> int:
    """Overlap along one axis: none for a single chunk, never more than the axis."""
    return 0 if len(chunks) == 1 else min(depth, sum(chunks) - 1)


def neighbourhood(grid: np.ndarray, i: int, j: int) -> list[list[Any]]:
    """Block ``(i, j)`` of a 2-D grid of delayed blocks with its neighbours.

    Parameters
    ----------
    grid : ndarray of object, shape (ny, nx)
        Delayed blocks (``dask.array.Array.to_delayed()``).
    i, j : int

    Returns
    -------
    list of list
        The 3 x 3 layout around ``(i, j)``, rows and columns beyond the grid left out.
    """
    ny, nx = grid.shape
    return [
        [grid[i + di, j + dj] for dj in (-1, 0, 1) if 0 <= j + dj < nx]
        for di in (-1, 0, 1)
        if 0 <= i + di < ny
    ]


@dataclass(frozen=True)
class BlockOutput:
    """What a block task returns.

    Attributes
    ----------
    codes : ndarray of uint8, shape (rows, cols)
        Per-pixel classes of the block's core (its halo trimmed).
    found : object
        What the block found for the merge (its pieces).
    """

    codes: np.ndarray
    found: Any


def _run_block(task: Callable[..., BlockOutput], *args: Any, **kwargs: Any) -> BlockOutput:
    out = task(*args, **kwargs)
    release_freed_memory(min_interval_s=1.0)
    return out


def _codes_of(result: BlockOutput) -> np.ndarray:
    return result.codes


def _found_of(result: BlockOutput) -> Any:
    return result.found


def block_graph(
    task: Callable[..., BlockOutput],
    row_chunks: tuple[int, ...],
    col_chunks: tuple[int, ...],
    args_of: Callable[[int, int], list[Any]],
    kwargs_of: Callable[[int, int], dict[str, Any]],
    token: str,
) -> tuple[list[list[da.Array]], dict[tuple[int, int], Any]]:
    """One delayed ``task`` per block of the chunk grid.

    Parameters
    ----------
    task : callable returning BlockOutput
        Pure; its constant arguments bound beforehand (``functools.partial``), as dask would
        otherwise walk the fields of the parameter dataclasses for every block (0.6 s of
        graph building at 8192 px).
    row_chunks, col_chunks : tuple of int
        Core sizes of the blocks in pixels.
    args_of, kwargs_of : callable (i, j) -> list, dict
        Positional (delayed blocks) and keyword arguments of block ``(i, j)``.
    token : str
        Unique to the inputs and parameters; names the tasks' keys.

    Returns
    -------
    codes_blocks : list of list of dask.array.Array
        ``codes_blocks[i][j]``, uint8, shape ``(row_chunks[i], col_chunks[j])``.
    found : dict of (i, j) to Delayed
        What each block found.
    """
    run = dask.delayed(functools.partial(_run_block, task), pure=True)
    codes_blocks: list[list[da.Array]] = []
    found: dict[tuple[int, int], Any] = {}
    for i, rows in enumerate(row_chunks):
        row_blocks = []
        for j, cols in enumerate(col_chunks):
            result = run(
                *args_of(i, j), **kwargs_of(i, j), dask_key_name=("process-" + token, i, j)
            )
            codes = dask.delayed(_codes_of)(result, dask_key_name=("codes-" + token, i, j))
            row_blocks.append(da.from_delayed(codes, shape=(rows, cols), dtype=np.uint8))
            found[(i, j)] = dask.delayed(_found_of)(result, dask_key_name=("pieces-" + token, i, j))
        codes_blocks.append(row_blocks)
    return codes_blocks, found


def _spans(n: int, per: int) -> list[tuple[int, int]]:
    """``n`` chunks cut into near-equal runs of at most ``per``."""
    k = -(-n // per)
    per = -(-n // k)
    return [(a, min(n, a + per)) for a in range(0, n, per)]


def _culled(collections: list[Any]) -> list[Any]:
    """``collections`` (delayed objects and dask arrays) over only the tasks they need.

    Each block's graph is the whole raster's (``to_delayed(optimize_graph=False)`` keeps it
    whole, so a read shared by two inputs stays one task), and the threaded scheduler converts
    and orders every task of the graph it is given before running the few it needs: 10.7 s of
    the main thread's time over the 9 groups at 20480 px (``order`` 6.5 s,
    ``convert_legacy_graph`` 4.2 s), against the group's own tasks only once culled.
    """
    merged = HighLevelGraph.merge(*(c.__dask_graph__() for c in collections))
    graph = dict(merged.cull([c.__dask_keys__() for c in collections]))
    return [
        da.Array(graph, c.name, c.chunks, c.dtype, meta=c._meta)
        if isinstance(c, da.Array)
        else Delayed(c.key, graph)
        for c in collections
    ]


def compute_in_groups(
    codes_blocks: list[list[da.Array]],
    found: dict[tuple[int, int], Any],
    row_chunks: tuple[int, ...],
    col_chunks: tuple[int, ...],
    chunks_per_group: int,
    *,
    codes_sink: MutableMapping[Any, Any] | Any,
    sink_lock: Any,
    scheduler: Any,
) -> tuple[np.ndarray | None, list[Any]]:
    """Compute the block graph in square groups of chunks, one ``dask.compute`` each.

    Parameters
    ----------
    codes_blocks, found
        From :func:`block_graph`.
    row_chunks, col_chunks : tuple of int
        Core sizes of the blocks in pixels.
    chunks_per_group : int
        At most this many chunks along each axis of a group (at least 1).
    codes_sink : object supporting ``sink[(row_slice, col_slice)] = block``, or None
        Where the codes are streamed; None to gather them in memory.
    sink_lock : lock or None
        Held while writing to ``codes_sink`` (None: a lock of dask's own).
    scheduler : str or dask.distributed.Client

    Returns
    -------
    codes : ndarray of uint8, shape (rows, cols), or None
        The whole codes raster; None when streamed to ``codes_sink``.
    found : list
        What every block found, group by group, row-major within a group.
    """
    row_starts = np.concatenate([[0], np.cumsum(row_chunks)])
    col_starts = np.concatenate([[0], np.cumsum(col_chunks)])
    codes_np: np.ndarray | None = None
    if codes_sink is None:
        codes_np = np.empty((int(row_starts[-1]), int(col_starts[-1])), np.uint8)
    per = max(1, chunks_per_group)
    groups = [(r, c) for r in _spans(len(row_chunks), per) for c in _spans(len(col_chunks), per)]
    found_list = []
    for (i0, i1), (j0, j1) in groups:
        rows = slice(int(row_starts[i0]), int(row_starts[i1]))
        cols = slice(int(col_starts[j0]), int(col_starts[j1]))
        codes = da.block([row[j0:j1] for row in codes_blocks[i0:i1]])
        wanted = [found[(i, j)] for i in range(i0, i1) for j in range(j0, j1)]
        if codes_sink is not None:
            store = da.store(
                codes,
                codes_sink,
                regions=(rows, cols),
                lock=sink_lock if sink_lock is not None else True,
                compute=False,
            )
            *got, _ = dask.compute(
                *_culled([*wanted, store]), scheduler=scheduler, optimize_graph=False
            )
        else:
            assert codes_np is not None
            *got, codes_np[rows, cols] = dask.compute(
                *_culled([*wanted, codes]), scheduler=scheduler, optimize_graph=False
            )
        found_list.extend(got)
        release_freed_memory()
    if len(groups) > 1:
        log.info("computed in %d groups of chunks", len(groups))
    return codes_np, found_list
