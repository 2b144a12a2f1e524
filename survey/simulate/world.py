"""The synthetic site as the simulated camera sees it: colours and heights at true positions.

:func:`load_world` reads one epoch of a site written by ``sitewatch synth`` (``DIR/after/`` or
``DIR/before/``: ``orthophoto.tif`` and ``dsm.tif``) once, at about the resolution the photos
need (never finer than the file), into a :class:`SiteWorld`.

True positions: the synthetic after epoch is misregistered on purpose (``truth.json``'s
``misregistration``: a ground point at true (E, N) appears in the after rasters at
``forward_matrix_m · (E, N, 1)``, and its heights carry ``vertical_offset_m``). The simulated
drone flies in the true world, so the world undoes both: a photo of true position P shows
the after orthophoto at the forward image of P, and heights are the after DSM's minus the
vertical offset. The before epoch is in the true frame already. Without a ``truth.json`` the
rasters are taken as true, with a warning.

Outside the orthophoto (or in its nodata collar) the ground is a plain field: the
orthophoto's median colour with a mottled texture fixed to the world (so that overlapping
photos agree); heights there are the DSM's median (flat ground), and continue the DSM's
edge beyond it.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS
from rasterio.enums import Resampling
from scipy import ndimage

from survey.errors import InputFileError, RasterFormatError
from survey.rasters import _open_checked

__all__ = ["SiteWorld", "bilinear", "load_world"]

log = logging.getLogger(__name__)

_FIELD_CELL_M = 0.25  # the background texture's cell
_FIELD_CELLS = 1024  # it repeats every 256 m


@dataclass(frozen=True, eq=False)
class SiteWorld:
    """Colours and heights of the ground in the true frame.

    Attributes
    ----------
    rgb
        Orthophoto, (3, rows, cols) uint8.
    valid
        Where the orthophoto has data, (rows, cols) bool.
    dsm
        Surface heights, (rows, cols) float32, metres above sea level in the raster's frame
        (nodata filled with the median height).
    transform
        Affine of ``rgb``, ``valid`` and ``dsm`` (pixel corners).
    to_pixel
        (2, 3) map from true (x, y, 1) to the arrays' pixel-centre (col, row): the
        misregistration, then the inverse of ``transform``.
    crs
        Their projected CRS.
    world_to_raster
        (3, 3) map from true (x, y, 1) to the rasters' (x, y, 1).
    vertical_offset_m
        The rasters' heights minus the true heights.
    field
        Background texture (cells, cells) around 1, tiled over the world.
    field_rgb
        Background colour (3,) (the orthophoto's median).
    z_min, z_max
        Lowest and highest height of ``dsm``.
    source
        What was read, for ``truth.json``.
    """

    rgb: np.ndarray
    valid: np.ndarray
    dsm: np.ndarray
    transform: Affine
    to_pixel: np.ndarray
    crs: CRS
    world_to_raster: np.ndarray
    vertical_offset_m: float
    field: np.ndarray
    field_rgb: np.ndarray
    source: dict[str, Any]
    z_min: float = 0.0
    z_max: float = 0.0

    @property
    def pixel_m(self) -> float:
        """Side of a pixel of the arrays (m)."""
        return float(abs(self.transform.a))

    def pixel_coords(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, col) float32 pixel-centre coordinates in the arrays of true ``x``, ``y``."""
        m = self.to_pixel
        row = m[1, 0] * x + m[1, 1] * y + m[1, 2]
        col = m[0, 0] * x + m[0, 1] * y + m[0, 2]
        return row.astype(np.float32), col.astype(np.float32)

    def height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """True surface height (m above sea level) at true ``x``, ``y`` (any shape)."""
        xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        row, col = self.pixel_coords(xa.ravel(), ya.ravel())
        z = bilinear(self.dsm, row, col) - np.float32(self.vertical_offset_m)
        return z.reshape(xa.shape)

    def height_range(
        self,
        ox: float,
        oy: float,
        oz: float,
        gx: np.ndarray,
        gy: np.ndarray,
        inv_dz: np.ndarray,
    ) -> tuple[float, float]:
        """(lowest, highest) true surface height (m) under rays from (ox, oy, oz).

        The rays (directions ``gx``, ``gy``, ``1 / inv_dz`` vertically, all downwards) are
        followed to the DSM's lowest height; the DSM's range over their bounding box is
        returned (the whole DSM's where the box leaves it).
        """
        lowest = float(self.z_min) - self.vertical_offset_m
        if len(gx) == 0:
            return lowest, lowest
        t = (lowest - oz) * inv_dz
        xs = np.concatenate([[ox], ox + t * gx])
        ys = np.concatenate([[oy], oy + t * gy])
        corners_x = np.array([xs.min(), xs.max(), xs.min(), xs.max()])
        corners_y = np.array([ys.min(), ys.min(), ys.max(), ys.max()])
        row, col = self.pixel_coords(corners_x, corners_y)
        rows, cols = self.dsm.shape
        r0, r1 = int(np.floor(row.min())), int(np.ceil(row.max())) + 1
        c0, c1 = int(np.floor(col.min())), int(np.ceil(col.max())) + 1
        if r0 < 0 or c0 < 0 or r1 > rows or c1 > cols:  # off the DSM: its edges continue
            r0, c0, r1, c1 = max(r0, 0), max(c0, 0), min(max(r1, 1), rows), min(max(c1, 1), cols)
        window = self.dsm[min(r0, rows - 1) : max(r1, r0 + 1), min(c0, cols - 1) : max(c1, c0 + 1)]
        if window.size == 0:
            return lowest, float(self.z_max) - self.vertical_offset_m
        off = self.vertical_offset_m
        return float(window.min()) - off, float(window.max()) - off

    def colour(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """RGB (k, 3) float32 in 0..255 of the ground at true ``x``, ``y`` (each (k,))."""
        xa, ya = np.asarray(x, np.float64), np.asarray(y, np.float64)
        row, col = self.pixel_coords(xa, ya)
        out = bilinear(self.rgb, row, col)
        rows, cols = self.valid.shape
        ri = np.rint(row).astype(np.intp)
        ci = np.rint(col).astype(np.intp)
        inside = (ri >= 0) & (ri < rows) & (ci >= 0) & (ci < cols)
        ok = inside.copy()
        ok[inside] = self.valid[ri[inside], ci[inside]]
        bad = ~ok
        if bad.any():
            fr = (ya[bad] / -_FIELD_CELL_M) % _FIELD_CELLS
            fc = (xa[bad] / _FIELD_CELL_M) % _FIELD_CELLS
            tex = ndimage.map_coordinates(self.field, [fr, fc], order=1, mode="grid-wrap")
            out[bad] = self.field_rgb[None, :] * tex[:, None]
        return out


def bilinear(image: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` (rows, cols) or (bands, rows, cols) at pixel-centre
    coordinates ``row``, ``col`` (k,); edges extend outwards. Returns (k,) or (k, bands)
    float32."""
    rows, cols = image.shape[-2:]
    r = np.clip(row, 0.0, rows - 1.0).astype(np.float32, copy=False)
    c = np.clip(col, 0.0, cols - 1.0).astype(np.float32, copy=False)
    r0 = np.minimum(r.astype(np.intp), max(rows - 2, 0))
    c0 = np.minimum(c.astype(np.intp), max(cols - 2, 0))
    fr = r - r0
    fc = c - c0
    i00 = r0 * cols + c0
    i01 = i00 + (1 if cols > 1 else 0)
    i10 = i00 + (cols if rows > 1 else 0)
    i11 = i10 + (i01 - i00)

    def blend(flat: np.ndarray) -> np.ndarray:
        top = flat[i00] * (1.0 - fc) + flat[i01] * fc
        bottom = flat[i10] * (1.0 - fc) + flat[i11] * fc
        out: np.ndarray = (top * (1.0 - fr) + bottom * fr).astype(np.float32, copy=False)
        return out

    if image.ndim == 2:
        return blend(image.ravel())
    return np.column_stack([blend(band.ravel()) for band in image])


def _to_pixel(transform: Affine, world_to_raster: np.ndarray) -> np.ndarray:
    inv = ~transform
    pix = np.array([[inv.a, inv.b, inv.c - 0.5], [inv.d, inv.e, inv.f - 0.5], [0.0, 0.0, 1.0]])
    out: np.ndarray = (pix @ world_to_raster)[:2]
    return out


def _field(seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 11])
    noise = rng.normal(0.0, 1.0, (_FIELD_CELLS, _FIELD_CELLS))
    coarse = ndimage.gaussian_filter(noise, 12.0, mode="wrap")  # patches of a few metres
    fine = ndimage.gaussian_filter(noise, 0.7, mode="wrap")  # tufts and clods
    coarse /= max(float(coarse.std()), 1e-9)
    fine /= max(float(fine.std()), 1e-9)
    return np.clip(1.0 + 0.1 * coarse + 0.15 * fine, 0.5, 1.5).astype(np.float32)


def _misregistration(root: Path, epoch: str) -> tuple[np.ndarray, float, str]:
    truth_path = root / "truth.json"
    if not truth_path.is_file():
        log.warning(
            "%s: no truth.json; the %s rasters are taken as the true ground (no "
            "misregistration undone)",
            root,
            epoch,
        )
        return np.eye(3), 0.0, "none: no truth.json"
    try:
        truth = json.loads(truth_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(
            f"{truth_path}: cannot be read as the site's truth ({exc}); generate the site "
            "again with sitewatch synth"
        ) from exc
    if epoch != "after":
        return np.eye(3), 0.0, "none: the before epoch is in the true frame"
    mis = truth.get("misregistration") or {}
    matrix = np.asarray(mis.get("forward_matrix_m", np.eye(3)), dtype=np.float64)
    if matrix.shape != (3, 3) or not np.isfinite(matrix).all():
        raise InputFileError(
            f"{truth_path}: misregistration.forward_matrix_m is not a 3x3 matrix; generate "
            "the site again with sitewatch synth"
        )
    offset = float(truth.get("vertical_offset_m", 0.0) or 0.0)
    return matrix, offset, "undone: truth.json misregistration.forward_matrix_m"


def load_world(root: Path, epoch: str, pixel_m: float, seed: int = 0) -> SiteWorld:
    """Read one epoch of a synthetic site at about ``pixel_m`` metres a pixel.

    Parameters
    ----------
    root
        The folder ``sitewatch synth --out`` wrote.
    epoch
        ``"after"`` or ``"before"``.
    pixel_m
        Wanted pixel side (m); the file's own when it is coarser.
    seed
        Seed of the background texture.

    Raises
    ------
    InputFileError
        The epoch's orthophoto or DSM is missing, or truth.json is unreadable.
    RasterFormatError
        The orthophoto is not 8-bit with three colour bands, the DSM has no valid height,
        or the raster is not in a projected CRS in metres.
    """
    folder = root / epoch
    ortho_path, dsm_path = folder / "orthophoto.tif", folder / "dsm.tif"
    for p, what in ((ortho_path, "orthophoto"), (dsm_path, "DSM")):
        if not p.is_file():
            raise InputFileError(
                f"{p}: the site's {epoch} {what} is missing; pass the folder written by "
                "`sitewatch synth --out DIR` as --site"
            )
    with rasterio.Env(), _open_checked(ortho_path, "orthophoto") as ds:
        crs = CRS.from_user_input(ds.crs.to_wkt())
        unit = crs.axis_info[0].unit_name if crs.axis_info else ""
        if not crs.is_projected or unit not in ("metre", "meter"):
            raise RasterFormatError(
                f"{ortho_path}: CRS {crs.name!r} is not projected in metres; the simulator "
                "flies over a site in its UTM zone (sitewatch synth writes one)"
            )
        if ds.count < 3 or ds.dtypes[0] != "uint8":
            raise RasterFormatError(
                f"{ortho_path}: {ds.count} band(s) of {ds.dtypes[0]}; the simulator needs an "
                "8-bit RGB orthophoto (sitewatch synth writes one)"
            )
        factor = max(1, math.floor(pixel_m / abs(ds.transform.a) + 1e-9))
        shape = (max(1, ds.height // factor), max(1, ds.width // factor))
        rgb = ds.read((1, 2, 3), out_shape=(3, *shape), resampling=Resampling.average)
        valid = ds.dataset_mask(out_shape=shape, resampling=Resampling.nearest) > 0
        transform = ds.transform * Affine.scale(ds.width / shape[1], ds.height / shape[0])
    with rasterio.Env(), _open_checked(dsm_path, "DSM") as ds:
        dsm_masked = ds.read(
            1, out_shape=shape, resampling=Resampling.bilinear, masked=True
        ).astype(np.float32)
    dsm = np.ma.filled(dsm_masked, np.nan)
    holes = ~np.isfinite(dsm)
    if holes.all():
        raise RasterFormatError(f"{dsm_path}: the DSM has no valid height; pass the site's DSM")
    if holes.any():  # the nodata collar and holes: flat ground at the median height
        dsm[holes] = np.float32(np.median(dsm[~holes][::16]))
    matrix, offset, how = _misregistration(root, epoch)
    shown = (rgb[:, valid] if valid.any() else rgb.reshape(3, -1))[:, ::16]
    return SiteWorld(
        rgb=np.ascontiguousarray(rgb),
        valid=valid,
        dsm=dsm,
        transform=transform,
        to_pixel=_to_pixel(transform, matrix),
        crs=crs,
        world_to_raster=matrix,
        vertical_offset_m=offset,
        field=_field(seed),
        field_rgb=np.median(shown, axis=1).astype(np.float32),
        z_min=float(dsm.min()),
        z_max=float(dsm.max()),
        source={
            "epoch": epoch,
            "orthophoto": str(ortho_path),
            "dsm": str(dsm_path),
            "read_pixel_m": round(abs(transform.a), 4),
            "misregistration": how,
            "world_to_raster": matrix.tolist(),
            "vertical_offset_m": offset,
        },
    )
