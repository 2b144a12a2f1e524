"""What the bands of an orthophoto mean: band roles, 8-bit scaling, validity, representation.

Orthophotos reach sitewatch from many tools, and what a file does not declare has to be
decided by a rule, written down, and reported. :func:`read_orthophoto` applies these rules
and returns an :class:`Orthophoto` whose ``assumptions`` list every decision that was not
declared in the file (also logged as one warning line per file), and whose :meth:`Orthophoto.
record` is the JSON record that ``provenance.json`` (``sitewatch detect``) and the
co-registration report (``sitewatch coregister``) carry for each input.

Band roles
    From the colour interpretation (``red``, ``green``, ``blue``, ``alpha``; ``nir`` and the
    other spectral interpretations of GDAL >= 3.10, which rasterio exposes as
    ``ColorInterp.nir`` ...), else from the band descriptions ("Red", "NIR", "near infrared",
    ...); never from the band order, with one exception: a 3-band raster whose bands declare
    nothing at all (``gray``/``undefined``, no description: what most GIS exports write) is
    read as red, green, blue, the order every tool writes. A raster whose red, green and blue
    bands cannot be identified is an error that says how to declare them. One band is grey
    (or paletted: expanded through its colour table); two bands are grey + alpha.
Validity
    A GDAL mask band, an alpha band or a nodata value, whichever the file declares (and
    non-finite values of float data). When it declares none, every pixel is valid except the
    **collar**: pixels of one constant fill colour, exactly black (0 in every colour band) or
    white (the top of the data's range in every band), connected to the raster's edge
    (4-connected), which is the frame around a rotated or irregular mosaic. A black roof inside
    the image is not connected to the edge through black pixels and stays valid. In-memory
    rasters are labelled whole; chunked (dask) ones chunk by chunk, the labels joined across
    chunk seams (:func:`collar_mask`), which gives the same mask in memory bounded by a chunk.
    A map raster (line work on a plain background, see below) has no collar: its background is
    data.
Scaling to 8 bits
    uint8 is used as it is. Other types are brought to 0..255 per band, and how is recorded
    (:class:`BandScaling`). Data already in a display range keeps a **fixed** scale, because a
    per-band stretch would change the colour balance from one epoch to the next (a site that
    turned green between two surveys would be stretched differently in each) and the
    detectors compare colours across epochs: float data in 0..1 (x255) or 0..255 (x1, what
    OpenDroneMap writes as float RGB), integer data in 0..255, and integer data whose bit
    depth the file declares (``NBITS``, e.g. 12-bit in 16: 0..4095). Anything else (16-bit
    data of unknown depth, signed integers, reflectances, wide floats) has no range to keep,
    so each band is stretched between its robust percentiles (:data:`PERCENTILES`) measured
    on a decimated read of the valid pixels (overviews when the file has them; never GDAL
    statistics, which write a ``.aux.xml`` beside the user's file). Nodata stays nodata.
Representations
    ``rgb`` (colour), ``grey`` (one band; replicated into three bands, or kept as one band for
    co-registration, as asked), ``palette`` (expanded to RGB) and, where asked
    (``line_work=True``: co-registration references), ``line-work``: an 8-bit raster of a map,
    told by its colours: its commonest colour (the paper) covers at least 30 % of a sample and
    eight further colours at least half of the rest, which no photograph does.

This module is longer than the house's ~500 lines because it holds one subject whole: the
rules above are one decision per input, and the collar's chunked labelling (about 200 lines)
is the bounded-memory form of one of them, tested against the in-memory form.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import xarray as xr
from rasterio.enums import ColorInterp, MaskFlags
from scipy import ndimage

from survey.errors import RasterFormatError
from survey.rasters import (
    READ_ERRORS,
    _BlockReader,
    damaged_raster_error,
    open_checked,
    open_template,
    quiet_gdal_messages,
    quiet_nans,
)

__all__ = [
    "PERCENTILES",
    "BandScaling",
    "Orthophoto",
    "collar_mask",
    "heights_reason",
    "read_orthophoto",
]

log = logging.getLogger(__name__)

#: Robust percentiles (lower, upper, in %) between which data without a display range is
#: stretched to 0..255, per band.
PERCENTILES = (0.5, 99.5)

#: The decimated read that measures percentiles and colours is at most this many pixels a side.
SAMPLE_PX = 1024

Grey = Literal["refuse", "replicate", "keep"]

# Colour interpretations that name a band's role; GDAL < 3.10 (rasterio < 1.4) has no nir.
_INTERP_ROLES = {
    name: name
    for name in ("red", "green", "blue", "alpha", "nir", "rededge", "coastal", "swir", "pan")
    if hasattr(ColorInterp, name)
}
_UNDECLARED = ("gray", "undefined")

# Band descriptions, first match wins ("red edge" before "red", "near infra red" before "red").
_DESCRIPTION_ROLES = (
    ("rededge", re.compile(r"\bred ?edge\b")),
    ("nir", re.compile(r"\bnir\b|\bnear ?infra ?red\b")),
    ("red", re.compile(r"\bred\b")),
    ("green", re.compile(r"\bgreen\b")),
    ("blue", re.compile(r"\bblue\b")),
    ("alpha", re.compile(r"\balpha\b")),
)

_LINE_WORK_BACKGROUND = 0.3
_LINE_WORK_INK = 0.5


@dataclass(frozen=True)
class BandScaling:
    """How the bands were brought to 0..255: ``uint8 = round(clip((v - lo) / (hi - lo)) * 255)``.

    Attributes
    ----------
    method : str
        ``"fixed"`` (a display range kept for every band) or ``"percentile"`` (each band
        stretched between its robust percentiles).
    source_dtype : str
        The file's data type.
    lo, hi : dict of str to float
        Per band role (``red``, ``green``, ``blue``, ``grey``, ``nir``), in the file's units.
    reason : str
        Why this method (e.g. ``"float32 values within 0-255"``).
    percentiles : (float, float) or None
        The percentiles of the ``percentile`` method, in %.
    """

    method: str
    source_dtype: str
    lo: dict[str, float]
    hi: dict[str, float]
    reason: str
    percentiles: tuple[float, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (for provenance and reports)."""
        return {
            "method": self.method,
            "source_dtype": self.source_dtype,
            "lo": dict(self.lo),
            "hi": dict(self.hi),
            "reason": self.reason,
            "percentiles": None if self.percentiles is None else list(self.percentiles),
        }

    def describe(self) -> str:
        """One clause for the assumptions line."""
        if self.method == "fixed":
            lo, hi = next(iter(self.lo.values())), next(iter(self.hi.values()))
            return f"{self.reason}: scaled to 8 bits on the fixed range {lo:g}-{hi:g}"
        spans = ", ".join(f"{k} {self.lo[k]:.6g}-{self.hi[k]:.6g}" for k in self.lo)
        return (
            f"{self.reason}: each band stretched to 8 bits between its "
            f"{PERCENTILES[0]:g} and {PERCENTILES[1]:g} % percentiles ({spans})"
        )


@dataclass(frozen=True)
class Orthophoto:
    """An orthophoto as the detectors and co-registration see it, and what was assumed.

    Attributes
    ----------
    path : Path
    rgb : DataArray, uint8, dims (band, y, x)
        Three bands (red, green, blue; band coordinates 1, 2, 3), or one band for a grey
        image read with ``grey="keep"``. CRS and transform through rioxarray.
    valid : DataArray, bool, dims (y, x)
        True where the image has data.
    nir : DataArray, uint8, dims (y, x), or None
        The near-infrared band, scaled to 8 bits like the colour bands.
    representation : str
        ``rgb``, ``grey``, ``palette`` or ``line-work``.
    band_roles : dict of str to int
        The 1-based band of each identified role (``red``, ``green``, ``blue``, ``grey``,
        ``palette``, ``alpha``, ``nir``, ...).
    validity : str
        Where validity came from (``mask band``, ``alpha band 4``, ``nodata value 0``,
        ``edge collar``, ``every pixel``).
    collar_px : int or None
        Pixels taken as collar (None when the file declares its validity).
    scaling : BandScaling or None
        None for 8-bit data.
    assumptions : tuple of str
        Everything decided that the file did not declare, one clause each.
    """

    path: Path
    rgb: xr.DataArray
    valid: xr.DataArray
    nir: xr.DataArray | None
    representation: str
    band_roles: dict[str, int]
    validity: str
    collar_px: int | None
    scaling: BandScaling | None
    assumptions: tuple[str, ...] = field(default=())

    def with_assumption(self, text: str) -> Orthophoto:
        """A copy with one more assumption (e.g. the pipeline's about the NIR band)."""
        return _replace(self, assumptions=(*self.assumptions, text))

    def without_nir(self) -> Orthophoto:
        """A copy without the NIR band."""
        return _replace(self, nir=None)

    def log_assumptions(self) -> None:
        """Log the assumptions as one warning line (nothing when there are none)."""
        if self.assumptions:
            log.warning("%s: assumed: %s", self.path, "; ".join(self.assumptions))

    def record(self) -> dict[str, Any]:
        """The JSON record of this input's interpretation (provenance and reports)."""
        return {
            "representation": self.representation,
            "band_roles": dict(self.band_roles),
            "validity": self.validity,
            "collar_px": self.collar_px,
            "scaling": None if self.scaling is None else self.scaling.as_dict(),
            "nir": self.nir is not None,
            "assumptions": list(self.assumptions),
        }


def _replace(ortho: Orthophoto, **changes: Any) -> Orthophoto:
    import dataclasses

    return dataclasses.replace(ortho, **changes)


# --------------------------------------------------------------------------------------------
# Band roles
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    representation: str  # rgb, grey, palette
    image: tuple[int, ...]  # (red, green, blue) or (grey,) or (palette,)
    nir: int | None
    alpha: int | None
    roles: dict[str, int]
    notes: tuple[str, ...]


def _description_role(text: str | None) -> str | None:
    if not text:
        return None
    words = re.sub(r"[_\-.()/,:;]+", " ", text.lower())
    words = re.sub(r"(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])", " ", words)
    for role, pattern in _DESCRIPTION_ROLES:
        if pattern.search(words):
            return role
    return None


def _layout(ds: rasterio.DatasetReader, path: Path, role: str) -> _Layout:
    """Which band is what, from the colour interpretation and descriptions (module doc)."""
    count = ds.count
    interps = [c.name for c in ds.colorinterp]
    descriptions = list(ds.descriptions or (None,) * count)
    found: dict[str, list[int]] = {}
    by_description: list[str] = []
    for i, (interp, text) in enumerate(zip(interps, descriptions, strict=True), start=1):
        band_role = _INTERP_ROLES.get(interp)
        if band_role is None and interp == "palette" and i == 1:
            band_role = "palette"
        if band_role is None and interp in _UNDECLARED:
            band_role = _description_role(text)
            if band_role is not None:
                by_description.append(f"band {i} {text!r} as {band_role}")
        if band_role is not None:
            found.setdefault(band_role, []).append(i)
    for r in ("red", "green", "blue", "nir", "alpha"):
        if len(found.get(r, [])) > 1:
            raise RasterFormatError(
                f"{path}: {role} bands {', '.join(map(str, found[r]))} are all declared {r}; "
                f"declare each band once, e.g. gdal_edit.py -colorinterp_1 red "
                f"-colorinterp_2 green -colorinterp_3 blue {path}"
            )
    notes: list[str] = []
    if by_description:
        notes.append("band roles from the band descriptions: " + ", ".join(by_description))
    roles = {r: bands[0] for r, bands in found.items()}
    alpha = roles.get("alpha")
    nir = roles.get("nir")
    if "palette" in roles:
        return _Layout("palette", (1,), None, alpha, roles, tuple(notes))
    if all(r in roles for r in ("red", "green", "blue")):
        unused = [i for i in range(1, count + 1) if i not in roles.values()]
        if unused:
            notes.append(
                f"band(s) {', '.join(map(str, unused))} declare no role (colour interpretation "
                "or description) and were not used"
            )
        return _Layout(
            "rgb", (roles["red"], roles["green"], roles["blue"]), nir, alpha, roles, tuple(notes)
        )
    if count == 3 and not found:
        notes.append(
            "3 bands without colour interpretation or description read as red, green, blue "
            "(the order every tool writes)"
        )
        roles = {"red": 1, "green": 2, "blue": 3}
        return _Layout("rgb", (1, 2, 3), None, None, roles, tuple(notes))
    if count == 1 or (count == 2 and alpha == 2):
        roles = {"grey": 1, **({"alpha": 2} if alpha == 2 else {})}
        return _Layout("grey", (1,), None, alpha, roles, tuple(notes))
    declared = ", ".join(
        f"{i}: {interp}" + (f" {text!r}" if text else "")
        for i, (interp, text) in enumerate(zip(interps, descriptions, strict=True), start=1)
    )
    example = " ".join(
        f"-colorinterp_{i} {r}" for i, r in enumerate(("red", "green", "blue", "nir")[:count], 1)
    )
    raise RasterFormatError(
        f"{path}: the red, green and blue bands of this {count}-band {role} cannot be "
        f"identified (bands {declared}); declare them in the file, e.g. gdal_edit.py "
        f"{example} {path} (nir needs GDAL >= 3.10; or set the band descriptions)"
    )


def heights_reason(path: str | os.PathLike[str], role: str = "raster") -> str | None:
    """Why a raster is read as heights (a DSM) rather than as an image, or None.

    A single band that is not paletted and holds floating-point or signed integer values
    (what DSMs are written as; greyscale images are unsigned) is heights; so is one whose
    unit is declared as metres. Returns the assumption clause to record.
    """
    with quiet_gdal_messages(), open_checked(path, role) as ds:
        if ds.count != 1 or ds.colorinterp[0] == ColorInterp.palette:
            return None
        dtype = np.dtype(ds.dtypes[0])
        unit = (ds.units[0] or "").lower() if ds.units else ""
    if unit in ("m", "metre", "meter", "metres", "meters"):
        return f"a single band in {unit}: read as heights (a DSM), matched on height gradients"
    if np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.signedinteger):
        return (
            f"a single {dtype.name} band (not an image type): read as heights (a DSM), "
            "matched on height gradients"
        )
    return None


# --------------------------------------------------------------------------------------------
# Sampling and scaling
# --------------------------------------------------------------------------------------------


def _sample(ds: rasterio.DatasetReader, path: Path, indexes: Sequence[int]) -> np.ma.MaskedArray:
    """A decimated masked read of ``indexes`` (at most :data:`SAMPLE_PX` a side)."""
    k = max(1, math.ceil(max(ds.height, ds.width) / SAMPLE_PX))
    shape = (len(indexes), max(1, ds.height // k), max(1, ds.width // k))
    try:
        return ds.read(list(indexes), out_shape=shape, masked=True)
    except READ_ERRORS as exc:
        names = ", ".join(map(str, indexes))
        raise damaged_raster_error(path, exc, f"band(s) {names} (decimated read)") from exc


def _scaling(
    ds: rasterio.DatasetReader,
    sample: np.ma.MaskedArray,
    names: Sequence[str],
    declared_validity: bool,
) -> BandScaling | None:
    """The scaling of the sampled bands ``names`` to 8 bits (module docstring), None for uint8."""
    dtype = np.dtype(ds.dtypes[0])
    if dtype == np.uint8:
        return None
    data = quiet_nans(np.ma.getdata(sample)).astype(np.float64)
    ok = ~np.ma.getmaskarray(sample).any(axis=0) & np.isfinite(data).all(axis=0)
    if not declared_validity:
        # fill-coloured pixels are collar candidates: they would pull the percentiles
        ok &= ~(data == 0).all(axis=0)
        if np.issubdtype(dtype, np.integer):
            ok &= ~(data == np.iinfo(dtype).max).all(axis=0)
    values = [band[ok] for band in data]
    lo_all = min((float(v.min()) for v in values if v.size), default=0.0)
    hi_all = max((float(v.max()) for v in values if v.size), default=0.0)
    # the bit depth is a band tag (GDAL's NBITS, written by the GTiff creation option)
    nbits = ds.tags(1, ns="IMAGE_STRUCTURE").get("NBITS")
    bits = int(nbits) if nbits and nbits.isdigit() else None
    fixed: tuple[float, float] | None = None
    reason = ""
    if np.issubdtype(dtype, np.integer) and bits and 8 < bits < 8 * dtype.itemsize:
        fixed, reason = (0.0, float(2**bits - 1)), f"{dtype.name} with a declared {bits}-bit depth"
    elif np.issubdtype(dtype, np.floating) and lo_all >= 0.0 and hi_all <= 1.0:
        fixed, reason = (0.0, 1.0), f"{dtype.name} values within 0-1"
    elif lo_all >= 0.0 and hi_all <= 255.0:
        fixed, reason = (0.0, 255.0), f"{dtype.name} values within 0-255"
    if fixed is not None:
        return BandScaling(
            "fixed",
            dtype.name,
            {n: fixed[0] for n in names},
            {n: fixed[1] for n in names},
            reason,
        )
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    for n, v in zip(names, values, strict=True):
        a, b = np.percentile(v, PERCENTILES) if v.size else (0.0, 1.0)
        lo[n], hi[n] = float(a), float(b) if b > a else float(a) + 1.0
    return BandScaling(
        "percentile",
        dtype.name,
        lo,
        hi,
        f"{dtype.name} values outside a display range ({lo_all:.6g} to {hi_all:.6g})",
        PERCENTILES,
    )


def _to_uint8(raw: xr.DataArray, lo: Sequence[float], hi: Sequence[float]) -> xr.DataArray:
    """``raw`` (dims (band, y, x) or (y, x); invalid pixels already 0) scaled to uint8."""
    lo_a = np.asarray(lo, np.float32)
    gain = np.float32(255.0) / (np.asarray(hi, np.float32) - lo_a)
    if raw.ndim == 3:
        lo_a, gain = lo_a[:, None, None], gain[:, None, None]
    else:
        lo_a, gain = lo_a.reshape(()), gain.reshape(())
    out = ((raw.astype(np.float32) - lo_a) * gain).clip(0, 255).round().astype(np.uint8)
    out.attrs = dict(raw.attrs)
    return out


def _line_work(colours: np.ndarray) -> tuple[bool, str]:
    """Whether sampled colours (n, pixels) of 8-bit data look like a map (module docstring)."""
    packed = np.zeros(colours.shape[1], np.int64)
    for band in colours:
        packed = packed * 256 + band.astype(np.int64)
    if packed.size == 0:
        return False, ""
    _, counts = np.unique(packed, return_counts=True)
    counts = np.sort(counts)[::-1]
    background = counts[0] / packed.size
    rest = packed.size - counts[0]
    ink = 1.0 if rest == 0 else counts[1:9].sum() / rest
    is_map = background >= _LINE_WORK_BACKGROUND and ink >= _LINE_WORK_INK
    return is_map, (
        f"{len(counts)} colours in a sample, the commonest on {background:.0%} of it and eight "
        f"more on {ink:.0%} of the rest"
    )


# --------------------------------------------------------------------------------------------
# The collar
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fill:
    """A fill colour: raw values per image band, or palette indices that show it."""

    name: str
    values: tuple[float, ...] = ()
    indices: tuple[int, ...] = ()

    def match(self, block: np.ndarray) -> np.ndarray:
        """Pixels of ``block`` (bands, rows, cols) in this colour, shape (rows, cols)."""
        if self.indices:
            return np.isin(block[0], np.asarray(self.indices))
        ref = np.asarray(self.values, dtype=block.dtype)[:, None, None]
        out: np.ndarray = (block == ref).all(axis=0)
        return out


def _label(candidates: np.ndarray) -> tuple[np.ndarray, int]:
    labels, n = ndimage.label(candidates)  # 4-connected
    return labels, int(n)


def _edge_labels(labels: np.ndarray) -> np.ndarray:
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return np.unique(edge[edge > 0])


def _collar_numpy(image: np.ndarray, fills: Sequence[_Fill]) -> tuple[np.ndarray, int]:
    """Collar of an in-memory image (bands, rows, cols): the whole raster labelled at once."""
    collar = np.zeros(image.shape[-2:], bool)
    for fill in fills:
        labels, n = _label(fill.match(image))
        lut = np.zeros(n + 1, bool)
        lut[_edge_labels(labels)] = True
        collar |= lut[labels]
    return collar, int(collar.sum())


@dataclass(frozen=True)
class _ChunkLabels:
    """Per fill: label count, pixels per label and the labels along the chunk's four sides."""

    n: tuple[int, ...]
    sizes: tuple[np.ndarray, ...]
    sides: tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], ...]


def _chunk_labels(block: np.ndarray, fills: Sequence[_Fill]) -> _ChunkLabels:
    ns, sizes, sides = [], [], []
    for fill in fills:
        labels, n = _label(fill.match(np.asarray(block)))
        ns.append(n)
        sizes.append(np.bincount(labels.ravel(), minlength=n + 1))
        sides.append(
            (labels[0].copy(), labels[-1].copy(), labels[:, 0].copy(), labels[:, -1].copy())
        )
    return _ChunkLabels(tuple(ns), tuple(sizes), tuple(sides))


def _chunk_collar(block: np.ndarray, fills: Sequence[_Fill], luts: Sequence[np.ndarray]) -> Any:
    out = np.zeros(block.shape[-2:], bool)
    for fill, lut in zip(fills, luts, strict=True):
        if lut.any():
            labels, _ = _label(fill.match(np.asarray(block)))
            out |= lut[labels]
    return out


def _collar_dask(image: Any, fills: Sequence[_Fill]) -> tuple[Any, int]:
    """Collar of a dask image (bands, rows, cols) chunk by chunk.

    Each chunk is labelled on its own (4-connected) and only its count, its label sizes and
    the labels on its four sides are kept. Labels that touch across a chunk seam (the same
    row or column on both sides, both candidates) are joined as edges of a graph over all
    chunk labels; the components that hold a label on the raster's outer edge are collar.
    The mask is then built lazily, each chunk labelled again (the same labels) and looked up;
    chunks without collar are constant. Memory: a few chunks at a time plus the side labels.
    """
    import dask
    import dask.array as dsa
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    image = image.rechunk({0: -1})
    blocks = image.to_delayed()[0]
    ny, nx = blocks.shape
    ych, xch = image.chunks[1], image.chunks[2]
    summary = dask.delayed(_chunk_labels, pure=True)
    found: list[_ChunkLabels] = list(
        dask.compute(*[summary(blocks[i, j], fills) for i in range(ny) for j in range(nx)])
    )
    luts = [[np.zeros(1, bool)] * len(fills) for _ in range(ny * nx)]
    n_px = 0
    for f in range(len(fills)):
        counts = np.array([c.n[f] for c in found], np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        total = int(offsets[-1])
        if total == 0:
            continue

        def gid(k: int, labels: np.ndarray, offsets: np.ndarray = offsets) -> Any:
            return offsets[k] + labels.astype(np.int64) - 1

        a_ids, b_ids, border = [], [], []
        for i in range(ny):
            for j in range(nx):
                k = i * nx + j
                top, bottom, left, right = found[k].sides[f]
                if j + 1 < nx:  # seam with the chunk on the right
                    other = found[k + 1].sides[f][2]
                    both = (right > 0) & (other > 0)
                    a_ids.append(gid(k, right[both]))
                    b_ids.append(gid(k + 1, other[both]))
                if i + 1 < ny:  # seam with the chunk below
                    other = found[k + nx].sides[f][0]
                    both = (bottom > 0) & (other > 0)
                    a_ids.append(gid(k, bottom[both]))
                    b_ids.append(gid(k + nx, other[both]))
                for side, outer in ((top, i == 0), (bottom, i == ny - 1)):
                    if outer:
                        border.append(gid(k, side[side > 0]))
                for side, outer in ((left, j == 0), (right, j == nx - 1)):
                    if outer:
                        border.append(gid(k, side[side > 0]))
        a = np.concatenate(a_ids) if a_ids else np.zeros(0, np.int64)
        b = np.concatenate(b_ids) if b_ids else np.zeros(0, np.int64)
        graph = coo_matrix((np.ones(a.size, np.int8), (a, b)), shape=(total, total))
        _, component = connected_components(graph, directed=False)
        outer_ids = np.concatenate(border) if border else np.zeros(0, np.int64)
        is_collar = np.zeros(int(component.max()) + 1, bool)
        is_collar[component[outer_ids]] = True
        for k in range(ny * nx):
            lut = np.concatenate([[False], is_collar[component[offsets[k] : offsets[k + 1]]]])
            luts[k][f] = lut
            n_px += int(found[k].sizes[f][lut].sum())
    collar_of = dask.delayed(_chunk_collar, pure=True)
    rows = []
    for i in range(ny):
        row = []
        for j in range(nx):
            k = i * nx + j
            shape = (ych[i], xch[j])
            if any(lut.any() for lut in luts[k]):
                part = collar_of(blocks[i, j], fills, luts[k])
                row.append(dsa.from_delayed(part, shape, dtype=bool))
            else:
                row.append(dsa.zeros(shape, dtype=bool, chunks=shape))
        rows.append(row)
    return dsa.block(rows), n_px


def collar_mask(image: Any, fills: Sequence[Any]) -> tuple[Any, int]:
    """Pixels of the edge collar of ``image`` and their number.

    Parameters
    ----------
    image : ndarray or dask array, shape (bands, rows, cols)
        The raw colour bands (file data type; the palette indices of a paletted raster).
    fills : sequence of fill colours
        Each either a tuple of raw values, one per band (exactly that value in every band), or
        an internal fill description.

    Returns
    -------
    collar : ndarray or dask array of bool, shape (rows, cols)
        True on pixels of a fill colour 4-connected to the raster's edge through pixels of the
        same colour. A dask image gives a lazy mask computed chunk by chunk (the labels are
        joined across chunk seams), equal to the in-memory one.
    n_px : int
        Number of collar pixels.
    """
    as_fills = [f if isinstance(f, _Fill) else _Fill(str(f), tuple(f)) for f in fills]
    if hasattr(image, "dask"):
        return _collar_dask(image, as_fills)
    return _collar_numpy(np.asarray(image), as_fills)


def _edge_fills(image: Any, fills: Sequence[_Fill]) -> list[_Fill]:
    """The fills present on the raster's outer rows and columns (only those can be collar):
    four thin windows read, so a file without a collar costs no full pass."""
    import dask

    strips = [image[:, :1, :], image[:, -1:, :], image[:, :, :1], image[:, :, -1:]]
    if hasattr(image, "dask"):
        strips = list(dask.compute(*strips))
    return [f for f in fills if any(f.match(np.asarray(s)).any() for s in strips)]


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _lookup(lut: np.ndarray, index: Any) -> Any:
    """``lut[:, index]`` for an index array (rows, cols), numpy or dask: (k, rows, cols)."""
    if hasattr(index, "dask"):
        return index.map_blocks(
            functools.partial(_take, lut),
            new_axis=0,
            chunks=((lut.shape[0],), *index.chunks),
            dtype=lut.dtype,
        )
    return _take(lut, np.asarray(index))


def _take(lut: np.ndarray, index: np.ndarray) -> np.ndarray:
    return lut[:, np.clip(index, 0, lut.shape[1] - 1)]


def _palette(ds: rasterio.DatasetReader, path: Path) -> np.ndarray:
    """The colour table as a (4, n) uint8 lookup (red, green, blue, alpha)."""
    try:
        table = ds.colormap(1)
    except ValueError as exc:
        raise RasterFormatError(
            f"{path}: band 1 is declared paletted but has no colour table; export it as RGB "
            "(gdal_translate -expand rgb)"
        ) from exc
    size = max(256, max(table) + 1) if table else 256
    lut = np.zeros((4, size), np.uint8)
    lut[3] = 255  # indices outside the table: opaque black
    for i, rgba in table.items():
        lut[:, i] = rgba
    return lut


def read_orthophoto(
    path: str | os.PathLike[str],
    chunks: int | None = None,
    *,
    role: str = "orthophoto",
    grey: Grey = "refuse",
    grey_fix: str = "export the RGB orthomosaic, not a single band or index",
    line_work: bool = False,
    log_assumptions: bool = True,
) -> Orthophoto:
    """Read an orthophoto (or a map raster) and interpret its bands (module docstring).

    Parameters
    ----------
    path : path
    chunks : int, optional
        Read lazily as dask arrays in chunks of this many pixels a side (bounded memory);
        by default the pixels are read now, so a damaged file is reported here.
    role : str
        What the file is, for messages (``"before orthophoto"``).
    grey : {"refuse", "replicate", "keep"}
        A single grey band: an error (with ``grey_fix`` as the fix), replicated into three
        bands (an assumption: colour cues are unavailable), or kept as one band.
    line_work : bool
        Recognise map rasters (line work on a plain background, representation
        ``line-work``): every pixel of them is valid, there is no collar.
    log_assumptions : bool
        Log the assumptions as one warning line now (callers that add their own log later).

    Returns
    -------
    Orthophoto

    Raises
    ------
    InputFileError, NotGeoreferencedError
        Missing file, no CRS or geotransform.
    RasterFormatError
        Red, green and blue cannot be identified; a grey band with ``grey="refuse"``; pixels
        that cannot be decoded (the file, the window and the fix).
    """
    p = Path(path)
    ins = _inspect(p, role, line_work)
    layout, dtype, lut, scaling, is_map = ins.layout, ins.dtype, ins.lut, ins.scaling, ins.is_map
    if layout.representation == "grey" and grey == "refuse" and not is_map:
        raise RasterFormatError(
            f"{p}: {role} must be RGB (or paletted), found one grey band; {grey_fix}"
        )
    assumptions = list(layout.notes)
    if lut is not None:
        assumptions.append("paletted: expanded to RGB through its colour table")
    if scaling is not None:
        assumptions.append(scaling.describe())

    raw, template, mask, reader, crs, transform = _read_bands(p, role, ins, chunks)
    plane = template.isel(band=0, drop=True)
    n_image = len(layout.image)
    image = raw.isel(band=slice(0, n_image))

    valid, validity, collar_px, note = _validity(
        raw, image, plane, layout, dtype, ins.nodata, mask, is_map, ins.map_note, scaling, lut
    )
    if note:
        assumptions.append(note)
    valid = valid.rename("valid").rio.write_crs(crs).rio.write_transform(transform)

    # Colour bands as uint8
    representation = "line-work" if is_map else layout.representation
    rgb, nir, valid = _colour_bands(ins, raw, image, plane, valid, template.attrs)
    if layout.nir is not None and nir is not None:
        nir = nir.rename("nir").rio.write_crs(crs).rio.write_transform(transform)
    if layout.representation == "grey" and grey == "replicate":
        rgb = xr.concat([rgb] * 3, dim="band").assign_coords(band=[1, 2, 3])
        assumptions.append(
            "a single grey band used as red, green and blue: colour cues (vegetation colour "
            "of losses) are unavailable"
        )
    rgb.attrs.pop("_FillValue", None)
    rgb = rgb.assign_coords(band=np.arange(1, rgb.sizes["band"] + 1))
    rgb = rgb.rio.write_crs(crs).rio.write_transform(transform)
    if chunks is not None:
        # .close() on any of them closes the datasets the reader's threads opened
        for arr in (rgb, valid, nir):
            if arr is not None:
                arr.set_close(reader.close)
    roles = dict(layout.roles)
    ortho = Orthophoto(
        path=p,
        rgb=rgb,
        valid=valid,
        nir=nir,
        representation=representation,
        band_roles=roles,
        validity=validity,
        collar_px=collar_px,
        scaling=scaling,
        assumptions=tuple(assumptions),
    )
    if log_assumptions:
        ortho.log_assumptions()
    return ortho


def _read_bands(
    p: Path, role: str, ins: _Inspection, chunks: int | None
) -> tuple[xr.DataArray, xr.DataArray, Any, _BlockReader, Any, Any]:
    """The bands read (image, then NIR, then alpha; numbered from 1), the rioxarray template
    they came with (coordinates, metadata), the mask band (None without one), the block
    reader (closed unless the arrays are lazy, ``chunks``), and the file's CRS and transform."""
    layout, dtype, has_mask = ins.layout, ins.dtype, ins.has_mask
    indexes = [
        *layout.image,
        *([layout.nir] if layout.nir else []),
        *([layout.alpha] if layout.alpha else []),
    ]
    kwargs: dict[str, Any] = {"masked": False}
    if chunks is not None:
        kwargs.update(chunks={"band": -1, "y": chunks, "x": chunks}, lock=False)
    template = open_template(p, role, **kwargs)
    crs, transform = template.rio.crs, template.rio.transform()
    template = template.isel(band=[i - 1 for i in indexes])
    template.attrs.pop("_FillValue", None)
    template.attrs.pop("long_name", None)
    plane = template.isel(band=0, drop=True)
    reader = _BlockReader(p)
    try:
        if chunks is not None:
            data = reader.lazy("bands", template, dtype, tuple(indexes))
            mask = reader.lazy("valid", plane, bool) if has_mask else None
        else:
            data = reader.whole("bands", tuple(indexes))
            mask = reader.whole("valid") if has_mask else None
    finally:
        if chunks is None:
            reader.close()
    raw = template.copy(data=data).assign_coords(band=np.arange(1, len(indexes) + 1))
    return raw, template, mask, reader, crs, transform


@dataclass(frozen=True, eq=False)
class _Inspection:
    """What :func:`read_orthophoto` learns from a file's header and a sample of its pixels:
    the band layout, the data type, whether a mask band (not alpha) and a nodata value say
    what is valid, the colour table (4, 256) of a paletted file, the colour bands' names,
    the scaling to 8 bits (None for uint8 data) and whether it is a map raster (line work)."""

    layout: _Layout
    dtype: np.dtype[Any]
    has_mask: bool
    nodata: float | None
    lut: np.ndarray | None
    names: list[str]
    scaling: BandScaling | None
    is_map: bool
    map_note: str


def _inspect(p: Path, role: str, line_work: bool) -> _Inspection:
    """Open ``p`` and read its layout, validity declarations, palette, scaling and kind."""
    with quiet_gdal_messages(), open_checked(p, role) as ds:
        layout = _layout(ds, p, role)
        dtype = np.dtype(ds.dtypes[0])
        flags = ds.mask_flag_enums[0]
        has_mask = MaskFlags.per_dataset in flags and layout.alpha is None
        nodata = ds.nodata
        declared = has_mask or layout.alpha is not None or nodata is not None
        lut = _palette(ds, p) if layout.representation == "palette" else None
        names = (
            ["red", "green", "blue"] if layout.representation == "rgb" else [layout.representation]
        )
        sampled = list(layout.image) + ([layout.nir] if layout.nir is not None else [])
        scaling = None
        if lut is None and dtype != np.uint8:
            sample = _sample(ds, p, sampled)
            scaling = _scaling(ds, sample, names + (["nir"] if layout.nir else []), declared)
        map_note = ""
        is_map = False
        if line_work and dtype == np.uint8:
            colours = np.ma.getdata(_sample(ds, p, layout.image)).reshape(len(layout.image), -1)
            if lut is not None:
                colours = lut[:3, colours[0]]
            is_map, map_note = _line_work(colours)
    return _Inspection(layout, dtype, has_mask, nodata, lut, names, scaling, is_map, map_note)


def _colour_bands(
    ins: _Inspection,
    raw: xr.DataArray,
    image: xr.DataArray,
    plane: xr.DataArray,
    valid: xr.DataArray,
    attrs: dict[str, Any],
) -> tuple[xr.DataArray, xr.DataArray | None, xr.DataArray]:
    """The colour bands as uint8 (a palette expanded, other data types scaled), the NIR band
    (uint8, unnamed) if any, and the validity (narrowed by a palette's transparent entries)."""
    lut, scaling, names = ins.lut, ins.scaling, ins.names
    nir: xr.DataArray | None = None
    if lut is not None:
        expanded = _lookup(lut, image.isel(band=0).data)
        shown = plane.copy(data=expanded[3] > 0) if (lut[3] == 0).any() else None
        if shown is not None:
            valid = (valid & shown).rename("valid")
        rgb = xr.DataArray(
            expanded[:3],
            dims=("band", "y", "x"),
            coords={"band": [1, 2, 3], "y": plane["y"], "x": plane["x"]},
            attrs=dict(attrs),
        )
        return rgb, nir, valid
    rgb = image
    if scaling is not None:
        rgb = _to_uint8(
            image.where(valid, 0),
            [scaling.lo[n] for n in names],
            [scaling.hi[n] for n in names],
        )
    if ins.layout.nir is not None:
        nir = raw.isel(band=len(ins.layout.image), drop=True)
        if scaling is not None:
            nir = _to_uint8(nir.where(valid, 0), [scaling.lo["nir"]], [scaling.hi["nir"]])
    return rgb, nir, valid


def _validity(
    raw: xr.DataArray,
    image: xr.DataArray,
    plane: xr.DataArray,
    layout: _Layout,
    dtype: np.dtype[Any],
    nodata: float | None,
    mask: Any,
    is_map: bool,
    map_note: str,
    scaling: BandScaling | None,
    lut: np.ndarray | None,
) -> tuple[xr.DataArray, str, int | None, str]:
    """Where the image has data (module docstring): (valid (y, x), where it came from, collar
    pixels or None, the assumption made or "")."""
    collar_px: int | None = None
    note = ""
    valid: xr.DataArray
    if layout.alpha is not None:
        valid = raw.isel(band=-1, drop=True) > 0
        validity = f"alpha band {layout.alpha}"
    elif mask is not None:
        valid = plane.copy(data=mask)
        validity = "mask band"
    elif nodata is not None:
        if math.isnan(nodata):
            valid = _all_valid(plane)  # NaN: the finite test below
        else:
            valid = (image != np.asarray(nodata, dtype=dtype)).any("band")
        validity = f"nodata value {nodata:g}"
    elif is_map:
        valid = _all_valid(plane)
        validity = "every pixel"
        note = (
            f"read as line work (a map on a plain background: {map_note}): no mask, alpha or "
            "nodata, every pixel valid"
        )
    else:
        present = _edge_fills(image.data, _fills(layout, dtype, scaling, lut))
        if present:
            collar, collar_px = collar_mask(image.data, present)
            valid = plane.copy(data=~collar)
        else:
            collar_px = 0
            valid = _all_valid(plane)
        validity = "edge collar"
        names = " or ".join(f.name for f in present) if present else "black or white"
        note = (
            "no mask, alpha band or nodata value: every pixel valid except a constant "
            f"{names} collar connected to the edge ({collar_px} px)"
        )
    if np.issubdtype(dtype, np.floating):
        valid = valid & xr.apply_ufunc(np.isfinite, image, dask="allowed").all("band")
    valid = valid.drop_vars("band", errors="ignore")
    if not hasattr(valid.data, "dask"):
        valid = valid.copy(data=np.asarray(valid.data, dtype=bool))
    return valid, validity, collar_px, note


def _all_valid(plane: xr.DataArray) -> xr.DataArray:
    """True everywhere on ``plane``'s grid (lazy, on its chunks, when it is chunked)."""
    if plane.chunks is not None:
        import dask.array as dsa

        return plane.copy(data=dsa.ones(plane.shape, dtype=bool, chunks=plane.chunks))
    return plane.copy(data=np.ones(plane.shape, bool))


def _fills(
    layout: _Layout, dtype: np.dtype[Any], scaling: BandScaling | None, lut: np.ndarray | None
) -> list[_Fill]:
    """The colours a collar may have: black, and white where the data's range has a top."""
    if lut is not None:
        colours = lut[:3].T
        black = tuple(int(i) for i in np.flatnonzero((colours == 0).all(axis=1)))
        white = tuple(int(i) for i in np.flatnonzero((colours == 255).all(axis=1)))
        return [_Fill(n, indices=ix) for n, ix in (("black", black), ("white", white)) if ix]
    n = len(layout.image)
    fills = [_Fill("black", (0.0,) * n)]
    top: float | None
    if dtype == np.uint8:
        top = 255.0
    elif scaling is not None and scaling.method == "fixed":
        top = next(iter(scaling.hi.values()))
    elif np.issubdtype(dtype, np.integer):
        top = float(np.iinfo(dtype).max)
    else:
        top = None  # wide-range floats: no white to speak of
    if top is not None:
        fills.append(_Fill("white", (top,) * n))
    return fills
