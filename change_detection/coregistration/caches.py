"""Reading windows and block means of large or lazy arrays: the speed and memory machinery."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from change_detection._memory import read_into
from change_detection.coregistration.params import CoregParams, _Sliceable, _tie_geometry
from change_detection.coregistration.representation import _to_grey

#: Largest set of reference tie-point windows the coarse pass keeps (grey float32 + mask).
_STASH_MAX_BYTES = 256 * 2**20


def _read_window(
    arr: _Sliceable, valid: _Sliceable | None, r0: int, c0: int, h: int, w: int
) -> tuple[np.ndarray, np.ndarray]:
    """Grey window and validity at (r0, c0) of size (h, w), padded as invalid outside."""
    H, W = arr.shape[-2], arr.shape[-1]
    out = np.zeros((h, w), np.float32)
    ok = np.zeros((h, w), bool)
    y0, y1, x0, x1 = max(r0, 0), min(r0 + h, H), max(c0, 0), min(c0 + w, W)
    if y1 <= y0 or x1 <= x0:
        return out, ok
    g = _to_grey(arr[..., y0:y1, x0:x1])
    v = np.isfinite(g)
    if valid is not None:
        v &= np.asarray(valid[y0:y1, x0:x1], dtype=bool)
    out[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0] = np.where(v, g, 0)
    ok[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0] = v
    return out, ok


def _read_pulled_window(
    arr: _Sliceable, valid: _Sliceable | None, pull: np.ndarray, r0: int, c0: int, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """Target window resampled through an affine pull map: pixel (r0 + i, c0 + j) of the
    result shows target pixel ``pull @ (c0 + j, r0 + i, 1)`` (cubic spline), and is valid
    where every target pixel it draws on is."""
    cols = c0 + np.arange(m, dtype=np.float64)
    rows = r0 + np.arange(m, dtype=np.float64)
    qx = pull[0, 0] * cols[None, :] + pull[0, 1] * rows[:, None] + pull[0, 2]
    qy = pull[1, 0] * cols[None, :] + pull[1, 1] * rows[:, None] + pull[1, 2]
    y0, x0 = math.floor(qy.min()) - 2, math.floor(qx.min()) - 2
    h, w = math.ceil(qy.max()) + 3 - y0, math.ceil(qx.max()) + 3 - x0
    g, ok = _read_window(arr, valid, y0, x0, h, w)
    coords = np.stack([qy - y0, qx - x0])
    out = ndimage.map_coordinates(g, coords, order=3, mode="nearest").astype(np.float32)
    if ok.all():
        return out, np.ones((m, m), bool)
    # a pixel is valid when its cubic support (4 x 4) was: erode by one, then interpolate
    ok = ndimage.binary_erosion(ok, structure=np.ones((3, 3), bool), border_value=0)
    still = ndimage.map_coordinates(ok.astype(np.float32), coords, order=1, mode="constant")
    good = still >= 0.999
    return np.where(good, out, np.float32(0)), good


class _BandCache:
    """Row-band cache over a lazy array: windows read in row order decode each row once.

    Slicing a dask (or file-backed) array window by window would read and decode whole
    chunks hundreds of times; tie windows come in row-major order, so a band of at least
    ``band_px`` rows read once serves every window inside it. When the windows move below
    the band, the rows the new band shares with the old one are kept and only the rows
    below are read; on a dask array the band's edges are its chunk rows, so no chunk row is
    decoded twice. Memory: one band (``band_px`` rows plus up to two chunk rows).
    """

    def __init__(self, arr: _Sliceable, band_px: int = 2048) -> None:
        self.arr = arr
        self.shape = tuple(arr.shape)
        self.ndim = len(self.shape)
        self.band_px = band_px
        self._rows = (0, 0)
        self._band: np.ndarray | None = None
        # edges of the chunk rows of a dask array ((rows, ...), ...); other arrays (zarr,
        # h5py, memmaps) are cut where the windows need (None)
        chunks = getattr(arr, "chunks", None)
        self._edges: np.ndarray | None = None
        if chunks is not None and len(chunks) >= 2 and isinstance(chunks[-2], tuple):
            self._edges = np.concatenate([[0], np.cumsum(chunks[-2])]).astype(np.int64)

    def _read(self, b0: int, b1: int) -> np.ndarray:
        """Rows b0 .. b1, reusing what the current band holds of them."""
        a0, a1 = self._rows
        if self._band is None or b0 < a0 or b0 >= a1:
            return read_into([self.arr[..., b0:b1, :]])[0]
        kept = self._band[..., b0 - a0 : min(a1, b1) - a0, :]
        if b1 <= a1:
            return kept.copy()
        band = np.empty((*self.shape[:-2], b1 - b0, self.shape[-1]), kept.dtype)
        band[..., : kept.shape[-2], :] = kept
        read_into([self.arr[..., a1:b1, :]], [band[..., kept.shape[-2] :, :]])
        return band

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = tuple(k for k in key if k is not Ellipsis)
        rs, cs = key[-2], key[-1]
        H = self.shape[-2]
        r0, r1, _ = rs.indices(H)
        if self._band is None or r0 < self._rows[0] or r1 > self._rows[1]:
            # start a little above: windows of one grid row may climb (rotated targets)
            b0 = max(0, min(r0, r0 - self.band_px // 8))
            b1 = min(H, max(r1, b0 + self.band_px))
            e = self._edges
            if e is not None:
                # out to the chunk rows' edges: a chunk row is decoded whole anyway
                b0 = int(e[np.searchsorted(e, b0, "right") - 1])
                b1 = int(e[min(len(e) - 1, np.searchsorted(e, b1, "left"))])
            self._band = self._read(b0, b1)
            self._rows = (b0, b1)
        a0 = self._rows[0]
        return self._band[..., r0 - a0 : r1 - a0, cs]


def _banded(arr: _Sliceable) -> _Sliceable:
    return arr if isinstance(arr, np.ndarray) else _BandCache(arr)


class _WindowStash:
    """The reference's tie-point windows, cut out of the chunks the coarse pass decodes.

    The coarse pass reads every pixel of both rasters; the tie-point windows of the reference
    sit where the grid puts them whatever the shift, so they are kept on the way (grey and
    validity exactly as :func:`_read_window` makes them) and the tie-point passes decode only
    the target. Memory: the windows of the grid (about 74 MB with the defaults); a grid
    whose windows would take more than :data:`_STASH_MAX_BYTES` is not stashed
    (:meth:`for_grid` gives None) and the reference is read window by window as before.
    Chunks fill disjoint parts of the windows, so dask's threads fill them side by side. The
    stash is used only when every pixel of every window was filled (:attr:`complete`): chunks
    computed in other processes (a dask.distributed cluster) fill copies of it, and then the
    tie-point passes read the reference themselves.
    """

    def __init__(self, shape: tuple[int, int], params: CoregParams) -> None:
        rows0, cols0, halo, m = _tie_geometry(shape[0], shape[1], params)
        self.key = (shape, params.window_px, params.spacing_px, params.max_tiepoints, halo)
        self.tops = rows0 - halo
        self.lefts = cols0 - halo
        self.m = m
        k = rows0.size * cols0.size
        self.grey = np.zeros((k, m, m), np.float32)
        self.ok = np.zeros((k, m, m), bool)
        # pixels of the windows inside the raster, and those filled so far
        inside_r = np.clip(self.tops + m, 0, shape[0]) - np.clip(self.tops, 0, shape[0])
        inside_c = np.clip(self.lefts + m, 0, shape[1]) - np.clip(self.lefts, 0, shape[1])
        self.expected = int(inside_r.sum()) * int(inside_c.sum())
        self._filled: list[int] = []
        self.complete = False

    @staticmethod
    def for_grid(shape: tuple[int, int], params: CoregParams) -> _WindowStash | None:
        """A stash for the tie-point grid of ``params`` on ``shape``, None if too large."""
        rows0, cols0, _, m = _tie_geometry(shape[0], shape[1], params)
        if rows0.size * cols0.size * m * m * 5 > _STASH_MAX_BYTES:
            return None
        return _WindowStash(shape, params)

    def finish(self) -> None:
        """Mark the stash usable if the chunks filled every pixel of every window."""
        self.complete = sum(self._filled) == self.expected

    def fill(self, raw: np.ndarray, vraw: np.ndarray | None, y0: int, x0: int) -> None:
        """Copy the parts of the windows inside the block whose top-left pixel is (y0, x0)."""
        h, w = raw.shape[-2], raw.shape[-1]
        m = self.m
        rows = np.flatnonzero((self.tops < y0 + h) & (self.tops + m > y0))
        cols = np.flatnonzero((self.lefts < x0 + w) & (self.lefts + m > x0))
        for i in rows:
            top = int(self.tops[i])
            a0, a1 = max(top, y0), min(top + m, y0 + h)
            for j in cols:
                left = int(self.lefts[j])
                b0, b1 = max(left, x0), min(left + m, x0 + w)
                src = (slice(a0 - y0, a1 - y0), slice(b0 - x0, b1 - x0))
                g = _to_grey(raw[(..., *src)])
                v = np.isfinite(g)
                if vraw is not None:
                    v &= np.asarray(vraw[src], dtype=bool)
                k = i * self.lefts.size + j
                dst = (k, slice(a0 - top, a1 - top), slice(b0 - left, b1 - left))
                self.grey[dst] = np.where(v, g, 0)
                self.ok[dst] = v
                self._filled.append((a1 - a0) * (b1 - b0))


def _block_sum(a: np.ndarray, f: int) -> np.ndarray:
    """Sum of f x f blocks of a 2-D array whose sides are multiples of f."""
    h, w = a.shape
    rows = a.reshape(h // f, f, w).sum(axis=1, dtype=a.dtype)
    return rows.reshape(h // f, w // f, f).sum(axis=2, dtype=a.dtype)


def _compute(*parts: Any) -> list[np.ndarray]:
    """numpy arrays of sliced windows; dask ones computed together (their reads in parallel)."""
    lazy = [i for i, p in enumerate(parts) if p is not None and hasattr(p, "dask")]
    out = [None if p is None else p for p in parts]
    if lazy:
        import dask

        done = dask.compute(*(parts[i] for i in lazy))
        for i, v in zip(lazy, done, strict=True):
            out[i] = v
    return [None if p is None else np.asarray(p) for p in out]  # type: ignore[misc]


def _block_sums_of(raw: np.ndarray, vraw: np.ndarray | None, f: int) -> np.ndarray:
    """(2, rows // f, cols // f) float64: sum of the band-mean grey and count of valid pixels
    of each f x f block (8-bit bands in integer arithmetic, exact)."""
    raw = raw.reshape((-1, *raw.shape[-2:]))
    h, w = (raw.shape[-2] // f) * f, (raw.shape[-1] // f) * f
    raw = raw[:, :h, :w]
    bands = raw.shape[0]
    if np.issubdtype(raw.dtype, np.integer) and raw.dtype.itemsize == 1:
        s = raw.sum(axis=0, dtype=np.uint16) if bands > 1 else raw[0].astype(np.uint16)
        if vraw is None:
            n = np.full((h // f, w // f), f * f, np.float64)
        else:
            v = np.asarray(vraw, dtype=bool)[:h, :w]
            s *= v
            n = _block_sum(v.astype(np.uint32), f).astype(np.float64)
        total = _block_sum(s.astype(np.uint32), f).astype(np.float64) / bands
        return np.stack([total, n])
    g = raw.astype(np.float32).mean(axis=0) if bands > 1 else raw[0].astype(np.float32)
    v = np.isfinite(g)
    if vraw is not None:
        v &= np.asarray(vraw, dtype=bool)[:h, :w]
    g = np.where(v, g, np.float32(0))
    return np.stack(
        [_block_sum(g, f).astype(np.float64), _block_sum(v.astype(np.uint32), f).astype(np.float64)]
    )


def _chunked(arr: Any, valid: Any) -> bool:
    """Whether an array and its validity mask (or None) are both dask arrays."""
    return hasattr(arr, "dask") and (valid is None or hasattr(valid, "dask"))


def _block_mean_lazy(
    arr: Any, valid: Any, f: int, stash: _WindowStash | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`_block_mean` of dask arrays chunk by chunk on dask's threads (rechunked to
    multiples of ``f`` where they are not), or None for other arrays. With ``stash``, each
    chunk also fills the tie-point windows it holds."""
    import dask.array as dsa

    if not _chunked(arr, valid):
        return None
    a = arr if arr.ndim == 3 else arr[None]
    rows, cols = a.chunks[-2], a.chunks[-1]
    if any(c % f for c in rows[:-1]) or any(c % f for c in cols[:-1]):
        # a grid snapped by a few pixels starts with a short chunk: cut at multiples of f
        size = max(f, (max(*rows, *cols) // f) * f)
        a = a.rechunk({1: size, 2: size})
    a = a.rechunk({0: -1})
    # every chunk but the last of a row or column is a multiple of f; the last one's rest
    # (under f pixels) makes no whole block and is left out of the sums
    out_rows = tuple(c // f for c in a.chunks[-2])
    out_cols = tuple(c // f for c in a.chunks[-1])
    parts = [a]
    if valid is not None:
        parts.append(valid.rechunk(a.chunks[-2:]))

    def one(*blocks: np.ndarray, block_info: dict[Any, Any] | None = None) -> np.ndarray:
        vraw = blocks[1] if len(blocks) > 1 else None
        if stash is not None and block_info is not None:
            (_, _), (y0, _), (x0, _) = block_info[0]["array-location"]
            stash.fill(blocks[0], vraw, y0, x0)
        return _block_sums_of(blocks[0], vraw, f)

    sums = dsa.map_blocks(
        one,
        *parts,
        chunks=((2,), out_rows, out_cols),
        dtype=np.float64,
        meta=np.zeros((0, 0, 0)),
    )
    out = _mean_and_fraction(np.asarray(sums.compute()), f)
    if stash is not None:
        stash.finish()
    return out


def _stash_windows(arr: Any, valid: Any, stash: _WindowStash) -> None:
    """Fill ``stash`` from dask arrays chunk by chunk on dask's threads, as the coarse pass
    fills it on its way: for a coarse pass that read no pixels (coarse images handed in), so
    that the tie-point passes still decode only the target. At 8192 px (the benchmark's
    before orthophoto, 1024 px chunks) this took 1.2-1.4 s of CPU against 1.7-1.8 s for the
    same windows read through :class:`_BandCache`."""
    import dask.array as dsa

    a = (arr if arr.ndim == 3 else arr[None]).rechunk({0: -1})
    parts = [a] if valid is None else [a, valid.rechunk(a.chunks[-2:])]

    def one(*blocks: np.ndarray, block_info: dict[Any, Any] | None = None) -> np.ndarray:
        if block_info is not None:
            (_, _), (y0, _), (x0, _) = block_info[0]["array-location"]
            stash.fill(blocks[0], blocks[1] if len(blocks) > 1 else None, y0, x0)
        return np.zeros((1, 1, 1), np.uint8)

    ones = tuple((1,) * len(c) for c in a.chunks[-2:])
    dsa.map_blocks(
        one, *parts, chunks=((1,), *ones), dtype=np.uint8, meta=np.zeros((0, 0, 0), np.uint8)
    ).compute()
    stash.finish()


def _mean_and_fraction(sums: np.ndarray, f: int) -> tuple[np.ndarray, np.ndarray]:
    """Block mean and valid fraction (float32) from :func:`_block_sums_of`'s sums."""
    total, n = sums
    return (total / np.maximum(n, 1)).astype(np.float32), (n / float(f * f)).astype(np.float32)


def _block_mean(
    arr: _Sliceable,
    valid: _Sliceable | None,
    f: int,
    strip_rows: int = 2048,
    stash: _WindowStash | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Block-averaged grey image and valid fraction, read strip by strip (dask arrays: chunk
    by chunk on dask's threads, filling ``stash`` on the way)."""
    lazy = _block_mean_lazy(arr, valid, f, stash)
    if lazy is not None:
        return lazy
    H, W = arr.shape[-2], arr.shape[-1]
    hc, wc = H // f, W // f
    grey = np.zeros((hc, wc), np.float32)
    frac = np.zeros((hc, wc), np.float32)
    rows_per = max(1, strip_rows // f)
    for i0 in range(0, hc, rows_per):
        i1 = min(hc, i0 + rows_per)
        rows = slice(i0 * f, i1 * f)
        raw, vraw = _compute(
            arr[..., rows, : wc * f], None if valid is None else valid[rows, : wc * f]
        )
        grey[i0:i1], frac[i0:i1] = _mean_and_fraction(_block_sums_of(raw, vraw, f), f)
    return grey, frac
