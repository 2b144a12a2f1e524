"""The coarse co-registration pass from the overviews the orthophotos carry (issue #15).

Co-registration first finds the whole-image shift on both orthophotos block-averaged to about
``CoregParams.coarse_px`` (1024) pixels a side (:mod:`change_detection.coregistration.coarse`).
Made from the full-resolution pixels, that decodes both rasters in full for two small grey
images. A GeoTIFF with overviews (internal, or a ``.ovr`` beside it) already holds them:
OpenDroneMap builds them with ``--build-overviews`` (``gdaladdo -r average`` at 2, 4, 8 and
16, JPEG-compressed) or ``--cog``, and GIS tools and ``gdaladdo`` build them for display (its
default resampling is nearest). :func:`coarse_from_overviews` reads the two coarse images
from the overviews for :func:`change_detection.grids.align_epoch` (``coarse=``), so only the
tie-point windows are read at full resolution. Without usable overviews it returns None and
the coarse pass block-averages the full-resolution rasters as it always did.

The level
    The coarse factor is the full-resolution pass's, f = ceil(longest side of the reference
    grid / ``coarse_px``). An overview factor g <= f that both files carry is read and its
    pixels averaged further over k x k, g k being the smallest multiple of an available
    factor that is at least f (ties: the larger g, fewer pixels to read). 8192 px with the
    usual 2, 4, 8, 16: g = 8, k = 1; 20480 px: g = 4, k = 5. No overviews at or below f:
    None.
Placement
    The reference grid may be a crop of the before file (``detect --site``), and the target
    is put on the reference grid by a whole-pixel offset
    (:func:`change_detection.grids.snapped_offset`) that need not be a multiple of g. Each
    file's overview is read from its pixel nearest that offset, and where the corner of the
    coarse image lies on the reference grid is handed down
    (``CoarseImages.reference_origin_px`` / ``target_origin_px``): the measured shift is
    corrected by the difference, exactly. Grids that differ by more than a translation
    (CRS, pixel size, rotation: the target is resampled) give None.
Grey and validity
    The colour bands :func:`survey.imagery.read_orthophoto` identified, scaled to 8 bits as it
    scales them, averaged to grey. GDAL's overview of the mask (a mask band, an alpha band or
    a nodata value) marks an overview pixel valid when any pixel under it is (average) or
    when the pixel it samples is (nearest); the coarse pass wants wholly valid blocks, so an
    overview pixel next to an invalid one, or on the edge of the grid, is dropped. Paletted
    and line-work rasters, and validity that only the full-resolution pixels show (an edge
    collar), give None.
Checked, not trusted
    An overview can show other data than its file: a ``.ovr`` left from an earlier raster of
    the same name, pixels rewritten after ``gdaladdo``, a mask written after the overviews
    (the mask's overview then says "no data" everywhere), a mask band whose overviews were
    never built (GDAL then reads every overview pixel as valid). Before use, up to
    :data:`CHECK_WINDOWS` windows of :data:`CHECK_CELLS` x :data:`CHECK_CELLS` overview
    pixels, each inside one tile of the file, are read at full resolution. An overview pixel
    must not be valid where none of the pixels under it is, nor invalid where all are (at
    most :data:`MAX_VALID_CONTRADICTIONS` of the checked pixels), and its grey must
    correlate (at least :data:`MIN_CORRELATION`) with the mean of the pixels under it (an
    average overview) or with the pixel at one place in every block (a nearest one). An
    overview that does not is not used: one warning line names the file and what was found,
    and the coarse pass reads the full-resolution rasters. When the overviews are used, the
    co-registration report says so (``coarse_pass``), with the resampling GDAL recorded.

Measured on the ``make bench`` detect inputs at 8192 px (the synthetic site tiled, overviews
at 2, 4, 8, 16 added to copies): the 1/8 overview pixels correlate 1.000 with the means of
the pixels under them (average, DEFLATE), 0.94 and 0.98 (average, JPEG as OpenDroneMap
writes them), 1.000 with one pixel of each block (nearest); overviews left from other pixels
0.07-0.08 (the 1024 px scenes of the tests). The coarse shift from them was (-6.29, -5.29)
px (average, JPEG) and (-7.46, -5.38) px (nearest) against (-6.91, -6.17) px from the
full-resolution pixels (the coarse step there is 0.8 px), far inside the tie-point search
range (``window_px // 4`` = 32 px); the final shifts agreed within 0.002 px. Reading the two
coarse images and checking them took 0.2-0.3 s of CPU, the full-resolution coarse pass 3.3 s.

This module is a little over the house's ~500 lines because of this docstring and the
check against the full-resolution pixels, which belongs with the reading it guards.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import xarray as xr
from rasterio.windows import Window
from scipy import ndimage

from change_detection.coregistration import _block_mean
from change_detection.coregistration.coarse import CoarseImages
from change_detection.coregistration.params import CoregParams
from change_detection.grids import snapped_offset
from survey.imagery import BandScaling, Orthophoto
from survey.rasters import OPEN_ERRORS, quiet_gdal_messages, quiet_nans

__all__ = [
    "CHECK_CELLS",
    "CHECK_WINDOWS",
    "MAX_VALID_CONTRADICTIONS",
    "MIN_CORRELATION",
    "coarse_from_overviews",
]

log = logging.getLogger(__name__)

#: Side, in overview pixels, of each window checked against the full-resolution pixels.
CHECK_CELLS = 16
#: Most windows checked per file.
CHECK_WINDOWS = 6
#: Least correlation between an overview's grey and the means of the pixels under it.
MIN_CORRELATION = 0.5
#: Largest fraction of the checked overview pixels whose validity contradicts the pixels
#: under them: valid over pixels none of which is, or invalid over pixels all of which are
#: (either is wrong for an average and for a nearest overview; a mask band whose overviews
#: were never built reads as valid everywhere).
MAX_VALID_CONTRADICTIONS = 0.01
#: Fewest overview pixels valid in both that the correlation is measured on.
_MIN_CHECKED = 32

_FALLBACK = "the coarse co-registration pass reads the full-resolution rasters instead"


class _Unusable(Exception):
    """An overview that cannot stand for its file (the message says why)."""


@dataclass(frozen=True)
class _Level:
    """One overview level of a file: rasterio's ``overview_level``, the factor, the size of
    its pixels in full-resolution pixels (x, y) and the resampling GDAL recorded."""

    index: int
    factor: int
    pixel: tuple[float, float]
    resampling: str


@dataclass(frozen=True)
class _Side:
    """One input's coarse image: grey and valid fraction, and its corner (x, y) on the
    reference grid in full-resolution pixels."""

    grey: np.ndarray
    valid: np.ndarray
    origin: tuple[float, float]
    level: _Level


def coarse_from_overviews(
    reference: Orthophoto,
    target: Orthophoto,
    grid: xr.DataArray | None = None,
    params: CoregParams = CoregParams(),  # noqa: B008 - frozen dataclass, immutable default
) -> CoarseImages | None:
    """Both orthophotos block-averaged on the reference's coarse grid, from their overviews.

    Parameters
    ----------
    reference, target : Orthophoto
        The epochs as :func:`survey.imagery.read_orthophoto` read them (their files, band
        roles, scaling and validity are used).
    grid : DataArray, optional
        The reference grid co-registration runs on (the reference orthophoto cropped to the
        site, as ``detect`` hands it to :func:`change_detection.grids.align_epoch`); default
        ``reference.rgb``.
    params : CoregParams
        Its ``coarse_px`` sets the coarse factor, as in the full-resolution pass.

    Returns
    -------
    CoarseImages or None
        For ``align_epoch(..., coarse=...)``; None when the full-resolution pass is needed
        (no overviews at a suitable factor, grids that differ by more than a translation, a
        raster whose grey or validity its overviews cannot give, or overviews that fail the
        check against the full-resolution pixels: the last is one warning line naming the
        file; see the module docstring).
    """
    grid = reference.rgb if grid is None else grid
    rows, cols = int(grid.sizes["y"]), int(grid.sizes["x"])
    f = max(1, math.ceil(max(rows, cols) / params.coarse_px))
    if f < 2:
        return None
    ref_at, tgt_at = snapped_offset(reference.rgb, grid), snapped_offset(target.rgb, grid)
    if ref_at is None or tgt_at is None:
        log.info("the epochs' grids differ by more than a translation: %s", _FALLBACK)
        return None
    for ortho in (reference, target):
        why = _unsupported(ortho)
        if why:
            log.info("%s: %s; %s", ortho.path, why, _FALLBACK)
            return None
    try:
        chosen = _choose(f, _levels(reference), _levels(target))
        if chosen is None:
            log.debug("no overviews at a factor of at most %d in both orthophotos", f)
            return None
        (index_r, index_t), g, k = chosen
        shape = (rows // (g * k), cols // (g * k))
        ref = _coarse_side(reference, index_r, g, ref_at, shape, k)
        tgt = _coarse_side(target, index_t, g, tgt_at, shape, k)
    except _Unusable as exc:
        log.warning("%s; %s", exc, _FALLBACK)
        return None
    px, py = ref.level.pixel
    images = CoarseImages(
        factor=g * k,
        reference_grey=ref.grey,
        reference_valid=ref.valid,
        target_grey=tgt.grey,
        target_valid=tgt.valid,
        reference_origin_px=ref.origin,
        target_origin_px=tgt.origin,
        # GDAL sizes an overview ceil(side / g): its pixels are a little less than g wide
        pixel_px=None if (px, py) == (g, g) else (px * k, py * k),
        source=_source(ref.level, tgt.level, k),
    )
    log.info("coarse co-registration pass from the %s", images.source)
    return images


def _unsupported(ortho: Orthophoto) -> str:
    """Why the overviews of this orthophoto cannot give its grey and validity, or ""."""
    if ortho.representation not in ("rgb", "grey"):
        return f"a {ortho.representation} raster: its overviews are not used"
    if ortho.validity == "edge collar" and ortho.collar_px:
        return (
            "its validity is an edge collar found in the full-resolution pixels, which its "
            "overviews do not carry"
        )
    return ""


def _bands(ortho: Orthophoto) -> tuple[list[str], list[int]]:
    """The colour roles read (their names in the scaling) and their 1-based bands."""
    names = ["red", "green", "blue"] if ortho.representation == "rgb" else ["grey"]
    return names, [ortho.band_roles[n] for n in names]


def _levels(ortho: Orthophoto) -> dict[int, int]:
    """The overview factors every colour band of the file has, and rasterio's
    ``overview_level`` of each."""
    _, bands = _bands(ortho)
    try:
        with quiet_gdal_messages(), rasterio.open(ortho.path) as ds:
            factors = [ds.overviews(b) for b in bands]
    except OPEN_ERRORS as exc:
        raise _Unusable(f"{ortho.path}: its overviews cannot be listed ({exc})") from exc
    if any(f != factors[0] for f in factors):
        return {}
    return {int(g): i for i, g in enumerate(factors[0])}


def _choose(
    f: int, reference: dict[int, int], target: dict[int, int]
) -> tuple[tuple[int, int], int, int] | None:
    """The overview level of each file, the overview factor g and the further block side k
    (module docstring), or None."""
    common = [g for g in reference if g in target and 2 <= g <= f]
    if not common:
        return None
    # the finest coarse grid g k >= f, then the fewest pixels to read
    g = min(common, key=lambda g: (g * math.ceil(f / g), -g))
    return (reference[g], target[g]), g, math.ceil(f / g)


def _source(level_r: _Level, level_t: _Level, k: int) -> str:
    """The report's words for the coarse images made from these levels."""
    kinds = sorted({level_r.resampling, level_t.resampling})
    how = " and ".join(kinds) + " resampling"
    more = f", averaged over {k} x {k} of their pixels" if k > 1 else ""
    return f"overviews at 1/{level_r.factor} of both orthophotos ({how}{more})"


def _coarse_side(
    ortho: Orthophoto,
    index: int,
    g: int,
    at: tuple[int, int],
    shape: tuple[int, int],
    k: int,
) -> _Side:
    """The coarse image of one file from its overview ``index`` (factor g), on the
    reference's coarse grid of ``shape`` blocks of k x k overview pixels; ``at`` is the file
    pixel (row, col) at the grid's corner."""
    names, bands = _bands(ortho)
    path = ortho.path
    try:
        with (
            quiet_gdal_messages(),
            rasterio.open(path) as ds,
            rasterio.open(path, overview_level=index) as ov,
        ):
            level = _measured(index, g, ds, ov, path)
            px, py = level.pixel
            i0, j0 = round(at[0] / py), round(at[1] / px)
            rows, cols = shape[0] * k, shape[1] * k
            grey = np.zeros((rows, cols), np.float32)
            valid = np.zeros((rows, cols), bool)
            a0, a1 = max(i0, 0), min(i0 + rows, ov.height)
            b0, b1 = max(j0, 0), min(j0 + cols, ov.width)
            if a1 > a0 and b1 > b0:
                window = Window(b0, a0, b1 - b0, a1 - a0)
                part = (slice(a0 - i0, a1 - i0), slice(b0 - j0, b1 - j0))
                grey[part], valid[part] = _grey(ov, window, bands, names, ortho.scaling)
            if not valid.any():
                raise _Unusable(
                    f"{path}: its overview 1/{level.factor} is masked everywhere it covers "
                    "the reference grid (overviews built before the mask was written?)"
                )
            _check_against_pixels(ds, ov, level, bands, names, ortho.scaling, valid, (i0, j0))
    except OPEN_ERRORS as exc:
        raise _Unusable(f"{path}: its overview 1/{g} cannot be read ({exc})") from exc
    # an overview pixel next to an invalid one (or to the edge: a collar may leave the
    # raster there) may stand for a block partly without data; the coarse pass's taper
    # gives the outermost blocks no weight anyway
    valid = ndimage.binary_erosion(valid, np.ones((3, 3), bool), border_value=0)
    # k x k means over the valid pixels, as the full-resolution coarse pass takes them
    mean, fraction = _block_mean(grey, valid, k)
    origin = (j0 * level.pixel[0] - at[1], i0 * level.pixel[1] - at[0])
    return _Side(mean, fraction, origin, level)


def _measured(
    index: int, g: int, ds: rasterio.DatasetReader, ov: rasterio.DatasetReader, path: Path
) -> _Level:
    """The overview level ``index`` of factor g: the true size of its pixels and its
    recorded resampling, checked to be an overview of this raster (GDAL makes it
    ceil(side / g) pixels)."""
    for side, got, name in ((ds.width, ov.width, "wide"), (ds.height, ov.height, "high")):
        if abs(got - side / g) > 1:
            raise _Unusable(
                f"{path}: its overview 1/{g} is {got} px {name}, not 1/{g} of its {side} px: an "
                "overview of another raster (a stale .ovr?)"
            )
    resampling = (ov.tags(1).get("RESAMPLING") or "unrecorded").lower()
    return _Level(index, g, (ds.width / ov.width, ds.height / ov.height), resampling)


def _grey(
    ds: rasterio.DatasetReader,
    window: Window,
    bands: list[int],
    names: list[str],
    scaling: BandScaling | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Grey (band mean of the colour bands scaled to 8 bits, float32) and validity (the
    dataset mask and finite values) of a window of ``ds``."""
    raw = quiet_nans(ds.read(bands, window=window)).astype(np.float32)
    # a lossy (JPEG) overview of an alpha band is not exactly 0 or 255
    ok = np.isfinite(raw).all(axis=0) & (ds.dataset_mask(window=window) > 127)
    raw = np.where(ok, raw, np.float32(0))
    if scaling is not None:
        lo = np.asarray([scaling.lo[n] for n in names], np.float32)[:, None, None]
        hi = np.asarray([scaling.hi[n] for n in names], np.float32)[:, None, None]
        raw = np.clip((raw - lo) * (np.float32(255.0) / (hi - lo)), 0, 255)
    grey = np.where(ok, raw.mean(axis=0), np.float32(0)).astype(np.float32)
    return grey, ok


def _check_against_pixels(
    ds: rasterio.DatasetReader,
    ov: rasterio.DatasetReader,
    level: _Level,
    bands: list[int],
    names: list[str],
    scaling: BandScaling | None,
    valid: np.ndarray,
    corner: tuple[int, int],
) -> None:
    """Raise :class:`_Unusable` unless the overview shows the file's pixels: overview pixels
    against the full-resolution pixels under them, in windows where the overview has data
    (module docstring). ``valid`` is the overview's validity over the region read, whose
    first pixel is overview pixel ``corner`` (row, col).

    The grey is compared with the mean of the valid pixels under each overview pixel (what
    an average overview holds) and, for whole-pixel factors, with each of the factor x
    factor pixels an overview pixel can stand for (what a nearest overview holds: one of
    them, the same in every block); the best correlation counts.
    """
    ov_grey: list[np.ndarray] = []
    ov_ok: list[np.ndarray] = []
    wholly: list[np.ndarray] = []
    candidates: list[list[tuple[np.ndarray, np.ndarray]]] = []
    for i, j, n_r, n_c in _check_windows(ds, ov, level, valid, corner):
        g, ok = _grey(ov, Window(j, i, n_c, n_r), bands, names, scaling)
        ov_grey.append(g.ravel())
        ov_ok.append(ok.ravel())
        all_ok, found = _pixel_candidates(ds, level, (i, j, n_r, n_c), bands, names, scaling)
        wholly.append(all_ok)
        candidates.append(found)
    g_ov, ok_ov = np.concatenate(ov_grey), np.concatenate(ov_ok)
    where = f"{ds.name}: its overview 1/{level.factor}"
    # candidate 0 is the block mean, valid where any pixel under it is
    some = np.concatenate([c[0][1] for c in candidates])
    wrong = float(((ok_ov & ~some) | (~ok_ov & np.concatenate(wholly))).mean())
    if wrong > MAX_VALID_CONTRADICTIONS:
        raise _Unusable(
            f"{where} contradicts its mask on {wrong:.0%} of {ok_ov.size} checked overview "
            "pixels (data where none is, or none where all is: overviews of other data, or "
            "built before the mask was written, or a mask without overviews)"
        )
    best, checked = -1.0, 0
    for k in range(len(candidates[0])):
        g_px = np.concatenate([c[k][0] for c in candidates])
        ok_px = np.concatenate([c[k][1] for c in candidates])
        both = ok_ov & ok_px
        if int(both.sum()) < _MIN_CHECKED:
            continue
        a, b = g_ov[both].astype(np.float64), g_px[both].astype(np.float64)
        if a.std() < 0.5 or b.std() < 0.5:
            # a flat image has no correlation to measure: the levels must match
            r = 1.0 if abs(a.mean() - b.mean()) <= 2.0 else 0.0
        else:
            r = float(np.corrcoef(a, b)[0, 1])
        if r > best:
            best, checked = r, a.size
    if checked == 0:
        raise _Unusable(
            f"{where} has fewer than {_MIN_CHECKED} pixels with data to check it against its pixels"
        )
    log.debug(
        "%s: validity contradicts on %.3f, grey correlates %.3f on %d checked pixels",
        where,
        wrong,
        best,
        checked,
    )
    if best < MIN_CORRELATION:
        raise _Unusable(
            f"{where} does not show its pixels: its grey correlates {best:.2f} at best with "
            f"the pixels under it on {checked} checked overview pixels, below "
            f"{MIN_CORRELATION} (overviews of other data: rebuild them with gdaladdo)"
        )


def _check_windows(
    ds: rasterio.DatasetReader,
    ov: rasterio.DatasetReader,
    level: _Level,
    valid: np.ndarray,
    corner: tuple[int, int],
) -> list[tuple[int, int, int, int]]:
    """Up to :data:`CHECK_WINDOWS` windows (row, col, rows, cols) of overview pixels: on a
    4 x 4 grid over the region read, where the overview has data, each moved to the start
    of the file's tile that holds it so that its full-resolution pixels lie in one tile."""
    px, py = level.pixel
    bh, bw = ds.block_shapes[0]
    rows, cols = valid.shape
    found: list[tuple[int, int, int, int]] = []
    # the middle of the region first, then outwards
    order = sorted(
        ((a, b) for a in range(4) for b in range(4)),
        key=lambda ab: abs(ab[0] - 1.5) + abs(ab[1] - 1.5),
    )
    for a, b in order:
        r, c = int((a + 0.5) * rows / 4), int((b + 0.5) * cols / 4)
        if not valid[r, c]:
            continue
        i, n_r = _check_span(corner[0] + r, py, bh, ov.height)
        j, n_c = _check_span(corner[1] + c, px, bw, ov.width)
        if n_r > 0 and n_c > 0 and (i, j, n_r, n_c) not in found:
            found.append((i, j, n_r, n_c))
        if len(found) == CHECK_WINDOWS:
            break
    return found


def _check_span(cell: int, pixel: float, block: int, size: int) -> tuple[int, int]:
    """First overview pixel and count of a checked window along one axis, as near overview
    pixel ``cell`` as the file's tile that holds it allows: :data:`CHECK_CELLS` overview
    pixels whose full-resolution pixels all lie in that tile, when it has room for them,
    else from ``cell`` on (to the overview's end)."""
    cell = min(max(cell, 0), size - 1)
    start = (math.floor(cell * pixel) // block) * block
    first = math.ceil(start / pixel)
    last = min(size, math.floor((start + block) / pixel))  # exclusive
    if last - first >= CHECK_CELLS:
        return max(first, min(cell - CHECK_CELLS // 2, last - CHECK_CELLS)), CHECK_CELLS
    return cell, min(CHECK_CELLS, size - cell)


def _pixel_candidates(
    ds: rasterio.DatasetReader,
    level: _Level,
    cells: tuple[int, int, int, int],
    bands: list[int],
    names: list[str],
    scaling: BandScaling | None,
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Whether all the full-resolution pixels under each overview pixel of the window
    ``cells`` (row, col, rows, cols) have data, and what each overview pixel may hold, as
    (grey, valid) pairs: first the mean grey of the valid pixels under it (valid: any has
    data), then, for whole-pixel factors, the pixel at each offset (dy, dx) in its block.
    Every array has shape (rows * cols,)."""
    i, j, n_r, n_c = cells
    px, py = level.pixel
    y0, y1 = math.floor(i * py), min(ds.height, math.ceil((i + n_r) * py))
    x0, x1 = math.floor(j * px), min(ds.width, math.ceil((j + n_c) * px))
    grey, ok = _grey(ds, Window(x0, y0, x1 - x0, y1 - y0), bands, names, scaling)
    # each pixel counts for the overview pixel its centre lies in
    cy = np.floor((np.arange(y0, y1) + 0.5) / py).astype(np.int64) - i
    cx = np.floor((np.arange(x0, x1) + 0.5) / px).astype(np.int64) - j
    keep_y, keep_x = (cy >= 0) & (cy < n_r), (cx >= 0) & (cx < n_c)
    g_in, ok_in = grey[np.ix_(keep_y, keep_x)], ok[np.ix_(keep_y, keep_x)]
    index = (cy[keep_y][:, None] * n_c + cx[keep_x][None, :]).ravel()
    w = ok_in.ravel().astype(np.float64)
    total = np.bincount(index, weights=g_in.ravel() * w, minlength=n_r * n_c)
    count = np.bincount(index, weights=w, minlength=n_r * n_c)
    under = np.bincount(index, minlength=n_r * n_c)
    out = [((total / np.maximum(count, 1)).astype(np.float32), count > 0)]
    wholly = (count == under) & (under > 0)
    sy, sx = round(py), round(px)
    if (sy, sx) != (py, px):
        return wholly, out
    for dy in range(sy):
        for dx in range(sx):
            g = np.zeros((n_r, n_c), np.float32)
            v = np.zeros((n_r, n_c), bool)
            picked_g, picked_v = grey[dy::sy, dx::sx][:n_r, :n_c], ok[dy::sy, dx::sx][:n_r, :n_c]
            g[: picked_g.shape[0], : picked_g.shape[1]] = picked_g
            v[: picked_v.shape[0], : picked_v.shape[1]] = picked_v
            out.append((g.ravel(), v.ravel()))
    return wholly, out
