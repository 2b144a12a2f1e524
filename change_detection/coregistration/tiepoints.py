"""Measuring the tie-point grid and screening it: reliability, local consistency, guided passes."""

from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from change_detection.coregistration.caches import (
    _banded,
    _read_pulled_window,
    _read_window,
    _WindowStash,
)
from change_detection.coregistration.correlation import _phase_correlate
from change_detection.coregistration.lines import _MIN_INK_SPAN, LineWork, ink_representation
from change_detection.coregistration.models import _apply_affine, _fit_affine, _ransac_affine
from change_detection.coregistration.params import (
    TIEPOINT_DTYPE,
    CoregParams,
    _Sliceable,
    _tie_geometry,
)
from change_detection.coregistration.representation import (
    _center,
    _hann2d,
    _normalise,
    _raw_gradient,
    _tukey2d,
    _weights,
)

_BATCH = 128


@dataclass(frozen=True)
class _Pass:
    """One pass over the tie-point grid: where each window is, where its target is cut, and
    what the windows are matched with.

    ``positions`` are the windows' top-left pixels (row, col) in row-major order, ``offsets``
    the (row, col) offset at which each target window is cut (ignored with ``pull``), ``m``
    the side read (the window ``n`` plus a ``halo`` on each side for the filters).
    """

    positions: list[tuple[int, int]]
    offsets: np.ndarray  # (K, 2) int64
    n: int
    halo: int
    m: int
    search: int
    apod: np.ndarray  # (n, n) float32 taper
    erode: int
    lines: tuple[LineWork | None, LineWork | None]
    params: CoregParams
    pull: np.ndarray | None = None  # (2, 3) affine pull matrix


@dataclass(frozen=True)
class _Inputs:
    """The rasters one pass reads its windows from (row-band cached when lazy), and the
    reference's windows when the coarse pass stashed them."""

    reference: _Sliceable
    target: _Sliceable
    reference_valid: _Sliceable | None
    target_valid: _Sliceable | None
    stash: _WindowStash | None


def _measure_tiepoints(
    reference: _Sliceable,
    target: _Sliceable,
    reference_valid: _Sliceable | None,
    target_valid: _Sliceable | None,
    coarse: tuple[int, int] | np.ndarray,
    params: CoregParams,
    stash: _WindowStash | None = None,
    lines: tuple[LineWork | None, LineWork | None] = (None, None),
    pull: np.ndarray | None = None,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Measure the tie-point grid; ``coarse`` is one (row, col) offset or one per window.
    The reference's windows come from ``stash`` when the coarse pass filled it. ``lines``:
    the line work of the reference and the target (None = an image, matched on gradients).
    With ``pull`` (an affine pull matrix, 2 x 3), each target window is resampled through it
    instead of cut at an offset, and the residual shift measured there is turned back into
    a tie point of the original target.

    Returns
    -------
    table : ndarray of TIEPOINT_DTYPE, shape (rows * cols,)
        Row-major over the grid; ``status`` is candidate, edge, ambiguous, weak, featureless
        or nodata; ``res_x``/``res_y`` are NaN (the model fills them).
    grid : (rows, cols)
    """
    H, W = reference.shape[-2], reference.shape[-1]
    n = params.window_px
    rows0, cols0, halo, m = _tie_geometry(H, W, params)
    lines_r, lines_t = lines
    tie = _Pass(
        positions=[(int(r), int(c)) for r in rows0 for c in cols0],
        offsets=np.broadcast_to(
            np.asarray(coarse, dtype=np.int64).reshape(-1, 2), (rows0.size * cols0.size, 2)
        ),
        n=n,
        halo=halo,
        m=m,
        search=params.search_px if params.search_px is not None else n // 4,
        # sparse line work: a flat-topped window keeps the strokes near the window's edges,
        # which a Hann window all but removes (see "Line work" in the package docstring)
        apod=_hann2d(n, n) if lines_r is None and lines_t is None else _tukey2d(n, n),
        erode=math.ceil(2 * params.sigma_px) + 1,
        lines=lines,
        params=params,
        pull=pull,
    )
    if stash is not None and not (
        stash.complete and stash.key == ((H, W), n, params.spacing_px, params.max_tiepoints, halo)
    ):
        stash = None
    inputs = _Inputs(
        reference=reference if stash is not None else _banded(reference),
        target=_banded(target),
        reference_valid=None
        if reference_valid is None or stash is not None
        else _banded(reference_valid),
        target_valid=None if target_valid is None else _banded(target_valid),
        stash=stash,
    )
    table = np.zeros(len(tie.positions), dtype=TIEPOINT_DTYPE)
    # Batches are measured on two worker threads while the next ones are read (the FFTs and
    # filters release the GIL); the windows are read in order on this thread (the band caches
    # are not thread-safe). Two threads, not one per core: each holds a batch, and the FFTs
    # use every core already. Memory: three batches of windows.
    workers = max(1, min(2, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        pending: list[Any] = []
        for b0 in range(0, len(tie.positions), _BATCH):
            windows = _read_batch(inputs, tie, b0)
            if len(pending) >= workers:
                pending.pop(0).result()
            pending.append(pool.submit(_measure_batch, tie, table, b0, *windows))
        for job in pending:
            job.result()
    table["status"][_featureless(table, lines, params)] = "featureless"
    table["res_x"] = np.nan
    table["res_y"] = np.nan
    table["status"][table["valid"] < params.min_valid_fraction] = "nodata"
    return table, (len(rows0), len(cols0))


def _read_batch(inputs: _Inputs, tie: _Pass, b0: int) -> tuple[np.ndarray, ...]:
    """Grey windows and validity (K, m, m) of the reference and the target for the batch of
    windows starting at ``b0``: the reference from the stash or read, the target cut at the
    window's offset or resampled through ``tie.pull``."""
    batch = tie.positions[b0 : b0 + _BATCH]
    k, m, halo = len(batch), tie.m, tie.halo
    gref = np.zeros((k, m, m), np.float32)
    vref = np.zeros((k, m, m), bool)
    gtgt = np.zeros((k, m, m), np.float32)
    vtgt = np.zeros((k, m, m), bool)
    off = tie.offsets[b0 : b0 + k]
    for i, (r, c) in enumerate(batch):
        if inputs.stash is not None:
            gref[i], vref[i] = inputs.stash.grey[b0 + i], inputs.stash.ok[b0 + i]
        else:
            gref[i], vref[i] = _read_window(
                inputs.reference, inputs.reference_valid, r - halo, c - halo, m, m
            )
        if tie.pull is not None:
            gtgt[i], vtgt[i] = _read_pulled_window(
                inputs.target, inputs.target_valid, tie.pull, r - halo, c - halo, m
            )
            continue
        oy, ox = int(off[i, 0]), int(off[i, 1])
        gtgt[i], vtgt[i] = _read_window(
            inputs.target, inputs.target_valid, r - oy - halo, c - ox - halo, m, m
        )
    return gref, vref, gtgt, vtgt


def _measure_batch(
    tie: _Pass,
    table: np.ndarray,
    b0: int,
    gref: np.ndarray,
    vref: np.ndarray,
    gtgt: np.ndarray,
    vtgt: np.ndarray,
) -> None:
    """Phase-correlate one batch of windows and write its rows of ``table`` (the texture of
    each side goes to ``res_x``/``res_y`` for :func:`_featureless`)."""
    batch = tie.positions[b0 : b0 + _BATCH]
    k, n, halo, params = len(batch), tie.n, tie.halo, tie.params
    off = tie.offsets[b0 : b0 + k]
    inner = (slice(None), slice(halo, halo + n), slice(halo, halo + n))
    rep_r, raw_r = _window_representation(gref, vref, tie.lines[0], params)
    rep_t, raw_t = _window_representation(gtgt, vtgt, tie.lines[1], params)
    rep_r, rep_t = rep_r[inner], rep_t[inner]
    vr, vt = vref[inner], vtgt[inner]
    a = _center(rep_r, _weights(vr, tie.erode, tie.apod))
    bb = _center(rep_t, _weights(vt, tie.erode, tie.apod))
    pk = _phase_correlate(a, bb, tie.search, params.upsample, 4, params.spectral_sigma)
    sl = slice(b0, b0 + k)
    rr = np.array([p[0] for p in batch], dtype=np.float64)
    cc = np.array([p[1] for p in batch], dtype=np.float64)
    table["x"][sl] = cc + (n - 1) / 2.0
    table["y"][sl] = rr + (n - 1) / 2.0
    if tie.pull is not None:
        # the resampled window shows target pixel pull(p) at p: the ground at the centre
        # p_c lies at target pixel pull(p_c - residual)
        p_c = np.column_stack([cc, rr]) + (n - 1) / 2.0
        q_c = _apply_affine(tie.pull, p_c - np.column_stack([pk.dx, pk.dy]))
        table["dx"][sl] = p_c[:, 0] - q_c[:, 0]
        table["dy"][sl] = p_c[:, 1] - q_c[:, 1]
    else:
        table["dx"][sl] = pk.dx + off[:, 1]
        table["dy"][sl] = pk.dy + off[:, 0]
    table["peak"][sl] = pk.peak
    table["snr"][sl] = pk.snr
    table["ratio"][sl] = pk.ratio
    table["valid"][sl] = np.minimum(vr.mean(axis=(1, 2)), vt.mean(axis=(1, 2)))
    # texture: mean raw gradient magnitude (or ink) inside the window (for "featureless")
    tex_r = (raw_r[inner] * vr).sum(axis=(1, 2)) / np.maximum(vr.sum(axis=(1, 2)), 1)
    tex_t = (raw_t[inner] * vt).sum(axis=(1, 2)) / np.maximum(vt.sum(axis=(1, 2)), 1)
    status = np.full(k, "candidate", dtype="U12")
    status[pk.at_edge] = "edge"
    status[pk.ratio > params.max_peak_ratio] = "ambiguous"
    status[pk.snr < params.min_snr] = "weak"
    table["status"][sl] = status
    table["res_x"][sl] = tex_r  # temporarily: texture
    table["res_y"][sl] = tex_t


def _window_representation(
    g: np.ndarray, v: np.ndarray, work: LineWork | None, params: CoregParams
) -> tuple[np.ndarray, np.ndarray]:
    """Matched representation of a batch of windows (K, m, m) and its raw strength (the
    gradient magnitude, or the ink density of line work) for the "featureless" test."""
    if work is not None:
        ink = ink_representation(g, v, line_work=work, sigma_px=params.sigma_px, axes=(1, 2))
        return ink, ink
    raw = _raw_gradient(g, v, params.sigma_px)
    return _normalise(raw, v, params.normalise_px), raw


def _featureless(
    table: np.ndarray,
    lines: tuple[LineWork | None, LineWork | None],
    params: CoregParams,
) -> np.ndarray:
    """Windows with nothing to match, from the textures the measuring pass left in res_x
    (reference) and res_y (target).

    Images: the weaker side's mean gradient magnitude under 5 % of its median over the
    windows with data. Line work: less ink than a line across a third of the window.
    """
    out = np.zeros(table.size, bool)
    if not table.size:
        return out
    textures = [table["res_x"], table["res_y"]]
    images = [t for t, work in zip(textures, lines, strict=True) if work is None]
    if images:
        texture = np.minimum(*images) if len(images) == 2 else images[0]
        with_data = table["valid"] >= params.min_valid_fraction
        ref_level = float(np.median(texture[with_data])) if with_data.any() else 0.0
        out |= texture < 0.05 * ref_level + 1e-6
    min_ink = _MIN_INK_SPAN / params.window_px  # a line 1 px wide across a third of it
    for t, work in zip(textures, lines, strict=True):
        if work is not None:
            out |= t < min_ink
    return out


def _local_consistency(
    values: np.ndarray, cand: np.ndarray, grid: tuple[int, int], tol: float, loose: float
) -> np.ndarray:
    """Keep candidates within ``tol`` of what their grid neighbours predict.

    A candidate passes when it is close either to its neighbours' median (robust to an
    outlier among them) or to the plane fitted through them (exact for any linear trend, so
    points at the edge of a smoothly warped grid are not lost); a candidate with fewer than
    two candidate neighbours must lie within ``loose`` of zero (values are detrended).
    """
    ny, nx = grid
    vx = np.full((ny + 2, nx + 2), np.nan)
    vy = np.full((ny + 2, nx + 2), np.nan)
    vx[1:-1, 1:-1] = np.where(cand, values[:, 0], np.nan).reshape(ny, nx)
    vy[1:-1, 1:-1] = np.where(cand, values[:, 1], np.nan).reshape(ny, nx)
    nbx, nby, offs = [], [], []
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di == 0 and dj == 0:
                continue
            nbx.append(vx[1 + di : ny + 1 + di, 1 + dj : nx + 1 + dj].ravel())
            nby.append(vy[1 + di : ny + 1 + di, 1 + dj : nx + 1 + dj].ravel())
            offs.append((1.0, float(di), float(dj)))
    sx, sy = np.stack(nbx, axis=1), np.stack(nby, axis=1)  # (n, 8)
    have = np.isfinite(sx)
    count = have.sum(axis=1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mx = np.nanmedian(sx, axis=1)
        my = np.nanmedian(sy, axis=1)
    dev_med = np.hypot(values[:, 0] - mx, values[:, 1] - my)
    # plane through the neighbours, evaluated at the centre: batched 3x3 normal equations
    design = np.asarray(offs)  # (8, 3)
    wgt = have.astype(np.float64)
    normal = np.einsum("nk,ki,kj->nij", wgt, design, design)
    rhs = np.stack(
        [
            np.einsum("nk,ki->ni", wgt * np.nan_to_num(sx), design),
            np.einsum("nk,ki->ni", wgt * np.nan_to_num(sy), design),
        ],
        axis=2,
    )  # (n, 3, 2)
    det = np.linalg.det(normal)
    solvable = (count >= 4) & (np.abs(det) > 1e-6)
    normal[~solvable] = np.eye(3)
    coef = np.linalg.solve(normal, rhs)  # (n, 3, 2)
    dev_plane = np.hypot(values[:, 0] - coef[:, 0, 0], values[:, 1] - coef[:, 0, 1])
    dev_plane = np.where(solvable, dev_plane, np.inf)
    mag = np.hypot(values[:, 0], values[:, 1])
    ok = np.where(count >= 2, np.minimum(dev_med, dev_plane) <= tol, mag <= loose)
    return cand & ok


def _guided_offsets(
    table: np.ndarray, first: tuple[int, int], params: CoregParams
) -> np.ndarray | None:
    """Per-window (row, col) offsets from a robust affine fit of a first pass, if they differ.

    None when the first pass is too poor to fit, or when the affine offsets stay within a
    quarter of the search range of the first pass's single offset everywhere.
    """
    m = _robust_affine(table, params)
    if m is None:
        return None
    p = np.column_stack([table["x"], table["y"]])
    shift = p - _apply_affine(m, p)  # (n, 2) as (x, y)
    guided = np.column_stack([np.round(shift[:, 1]), np.round(shift[:, 0])]).astype(np.int64)
    search = params.search_px if params.search_px is not None else params.window_px // 4
    if np.abs(guided - np.asarray(first)).max() <= max(2, search // 4):
        return None
    return guided


def _robust_affine(table: np.ndarray, params: CoregParams) -> np.ndarray | None:
    """Pull matrix (2, 3) of a loose RANSAC affine fit of a pass's candidate tie points, or
    None when there are too few of them."""
    cand = table["status"] == "candidate"
    if cand.sum() < max(params.min_tiepoints, 4):
        return None
    p = np.column_stack([table["x"], table["y"]])
    q = p - np.column_stack([table["dx"], table["dy"]])
    rng = np.random.default_rng(params.seed)
    inl = _ransac_affine(p[cand], q[cand], max(4 * params.ransac_threshold_px, 3.0), rng)
    if inl.sum() < max(params.min_tiepoints, 4):
        return None
    return _fit_affine(p[cand][inl], q[cand][inl])
