"""Before/after image chips and the height profile of a lead, as PNG figures for evidence.

A *chip* is a small map of the orthophoto around a lead: the lead outline, a scale bar in
metres, a north arrow pointing to true north (the grid of a projected CRS is rotated by the
meridian convergence), projected coordinates on the axes, the WGS84 centre to 7 decimals and
the survey date. The *height profile* samples the two DSMs along a transect through the lead's
centroid, across the structure (the long axis of its minimum rotated rectangle, extended on
both sides so the surrounding ground shows), and shades the part inside the lead.

Only a window around the lead is read from each raster (decimated to the output size), so
chips cost the same on a 10 GB orthophoto as on a small one. Figures use matplotlib's Agg
canvas directly (no pyplot state), so they are safe to draw from worker threads.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import shapely
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrow, Rectangle
from matplotlib.ticker import MaxNLocator
from pyproj import CRS, Transformer
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from scipy import ndimage
from shapely.geometry import LineString, MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from maps.errors import MapError

__all__ = [
    "ProfileSample",
    "nice_scale_length",
    "render_chip",
    "render_height_profile",
    "sample_profile",
    "true_north_angle",
    "utm_crs_for",
]

log = logging.getLogger(__name__)

_WGS84 = CRS.from_epsg(4326)


def utm_crs_for(lon: float, lat: float) -> CRS:
    """The WGS84 / UTM zone CRS of a point (EPSG 326xx north, 327xx south)."""
    zone = min(max(int((lon + 180.0) // 6.0) + 1, 1), 60)
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def nice_scale_length(width_m: float, fraction: float = 0.25) -> float:
    """Largest 1, 2 or 5 x 10^k metres not longer than ``fraction`` of ``width_m``."""
    target = max(width_m * fraction, 1e-3)
    exp = math.floor(math.log10(target))
    best = 10.0**exp
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * 10.0**exp <= target:
            best = m * 10.0**exp
    return best


def true_north_angle(crs: CRS, x: float, y: float) -> float:
    """Angle in degrees, clockwise from grid up (+y), of true north at (x, y) in ``crs``."""
    to_ll = Transformer.from_crs(crs, _WGS84, always_xy=True)
    from_ll = Transformer.from_crs(_WGS84, crs, always_xy=True)
    lon, lat = to_ll.transform(x, y)
    x2, y2 = from_ll.transform(lon, min(lat + 1e-4, 89.9999))
    return math.degrees(math.atan2(x2 - x, y2 - y))


def _projected(geom_wgs84: BaseGeometry, crs: CRS) -> BaseGeometry:
    tr = Transformer.from_crs(_WGS84, crs, always_xy=True)
    return shapely.transform(
        geom_wgs84, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))
    )


def _working_crs(ds_crs: CRS, geom_wgs84: BaseGeometry) -> CRS | None:
    """None when the raster's CRS is projected in metres; else a local UTM CRS to warp to."""
    crs = CRS.from_user_input(ds_crs)
    if crs.is_projected and crs.axis_info and crs.axis_info[0].unit_name in ("metre", "meter"):
        return None
    c = geom_wgs84.centroid
    return utm_crs_for(c.x, c.y)


def _outline_paths(geom: BaseGeometry) -> list[np.ndarray]:
    polys: list[Polygon] = []
    if isinstance(geom, Polygon):
        polys = [geom]
    elif isinstance(geom, MultiPolygon):
        polys = list(geom.geoms)
    else:
        return [np.asarray(geom.coords)] if hasattr(geom, "coords") else []
    out = []
    for p in polys:
        out.append(np.asarray(p.exterior.coords))
        out.extend(np.asarray(r.coords) for r in p.interiors)
    return out


def _new_figure(width_in: float, height_in: float, dpi: int) -> tuple[Figure, FigureCanvasAgg]:
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    return fig, FigureCanvasAgg(fig)


def _save(fig: Figure, out_png: Path) -> Path:
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_png.with_name(f".{out_png.name}.part")
    try:
        fig.savefig(tmp, format="png", metadata={"Software": "sitewatch"})
        os.replace(tmp, out_png)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_png


def render_chip(
    raster: str | os.PathLike[str],
    geometry: BaseGeometry,
    out_png: Path,
    *,
    title: str,
    date: str | None = None,
    margin_m: float | None = None,
    size_in: float = 6.0,
    dpi: int = 150,
    outline_color: str = "#ff2d2d",
) -> Path:
    """Draw the orthophoto around ``geometry`` into a PNG and return its path.

    Parameters
    ----------
    raster : path
        8-bit RGB(A) orthophoto GeoTIFF (mask, alpha or nodata for missing pixels).
    geometry : shapely geometry
        The lead (WGS84 lon/lat), outlined on the chip.
    out_png : Path
        Output file (written atomically).
    title : str
        Epoch label ("Before", "After"); the date is appended.
    margin_m : float, optional
        Ground shown around the lead in metres; default half the lead's size, at least 10 m.
    size_in, dpi : float, int
        Figure size in inches (square) and resolution: 6 in x 150 dpi = 900 px.
    """
    path = Path(raster)
    if not path.is_file():
        raise MapError(f"{path}: orthophoto not found; check the path")
    with rasterio.open(path) as src:
        if src.crs is None:
            raise MapError(f"{path}: orthophoto has no CRS; a chip cannot be placed")
        work_crs = _working_crs(src.crs, geometry)
        ds = WarpedVRT(src, crs=work_crs, add_alpha=True) if work_crs is not None else src
        try:
            crs = CRS.from_user_input(ds.crs)
            geom = _projected(geometry, crs)
            minx, miny, maxx, maxy = geom.bounds
            size = max(maxx - minx, maxy - miny, 1.0)
            margin = margin_m if margin_m is not None else max(0.5 * size, 10.0)
            cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
            half = size / 2 + margin
            x0, x1, y0, y1 = cx - half, cx + half, cy - half, cy + half
            rgba = _read_window(ds, (x0, y0, x1, y1), round(size_in * dpi))
        finally:
            if ds is not src:
                ds.close()
    fig, _canvas = _new_figure(size_in, size_in + 0.6, dpi)
    ax = fig.add_axes((0.14, 0.14, 0.82, 0.74))
    ax.set_facecolor("#d9d9d9")
    ax.imshow(rgba, extent=(x0, x1, y0, y1), origin="upper", interpolation="bilinear")
    for ring in _outline_paths(geom):
        ax.plot(ring[:, 0], ring[:, 1], color=outline_color, linewidth=1.6)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.tick_params(labelsize=6)
    unit = crs.axis_info[0].unit_name if crs.axis_info else "m"
    ax.set_xlabel(f"easting ({unit}), {crs.name}", fontsize=6)
    ax.set_ylabel(f"northing ({unit})", fontsize=6)
    _draw_scale_bar(ax, x0, y0, x1 - x0)
    _draw_north_arrow(ax, crs, cx, cy, x0, x1, y0, y1)
    lon, lat = Transformer.from_crs(crs, _WGS84, always_xy=True).transform(
        geom.centroid.x, geom.centroid.y
    )
    heading = f"{title} — {date}" if date else f"{title} — date unknown"
    fig.text(0.5, 0.965, heading, ha="center", va="top", fontsize=10, weight="bold")
    fig.text(
        0.5,
        0.915,
        f"lead centre {lat:.7f}°, {lon:.7f}° (WGS84 lat, lon)",
        ha="center",
        va="top",
        fontsize=7,
    )
    fig.text(0.01, 0.005, f"source: {path.name}", fontsize=5, color="#555555")
    return _save(fig, out_png)


def _read_window(
    ds: rasterio.io.DatasetReader | WarpedVRT,
    bounds: tuple[float, float, float, float],
    max_px: int,
) -> np.ndarray:
    """RGBA (n, n, 4) uint8 of a square ``bounds`` (x0, y0, x1, y1), decimated to <= max_px.

    Only the part inside the raster is read; the rest stays transparent.
    """
    x0, y0, x1, y1 = bounds
    t = ds.transform
    col0, col1 = (x0 - t.c) / t.a, (x1 - t.c) / t.a
    row0, row1 = (y1 - t.f) / t.e, (y0 - t.f) / t.e
    n = int(max(64, min(max_px, math.ceil(col1 - col0))))
    scale = n / (col1 - col0)  # output px per source px
    out = np.zeros((n, n, 4), np.uint8)
    c_lo, c_hi = max(col0, 0.0), min(col1, float(ds.width))
    r_lo, r_hi = max(row0, 0.0), min(row1, float(ds.height))
    if c_lo >= c_hi or r_lo >= r_hi:
        return out
    oc0, oc1 = round((c_lo - col0) * scale), round((c_hi - col0) * scale)
    or0, or1 = round((r_lo - row0) * scale), round((r_hi - row0) * scale)
    if oc1 <= oc0 or or1 <= or0:
        return out
    win = Window(c_lo, r_lo, c_hi - c_lo, r_hi - r_lo)
    shape = (or1 - or0, oc1 - oc0)
    rgb = ds.read(
        indexes=[1, 2, 3], window=win, out_shape=(3, *shape), resampling=Resampling.bilinear
    )
    mask = ds.dataset_mask(window=win, out_shape=shape)
    out[or0:or1, oc0:oc1, :3] = np.moveaxis(rgb, 0, -1)
    out[or0:or1, oc0:oc1, 3] = mask
    return out


def _draw_scale_bar(ax: Axes, x0: float, y0: float, width: float) -> None:
    length = nice_scale_length(width)
    pad = 0.05 * width
    bx, by = x0 + pad, y0 + pad
    h = 0.015 * width
    ax.add_patch(
        Rectangle(
            (bx - 0.01 * width, by - 0.012 * width),
            length + 0.02 * width,
            h + 0.06 * width,
            facecolor="white",
            alpha=0.75,
            edgecolor="none",
        )
    )
    ax.add_patch(Rectangle((bx, by), length / 2, h, facecolor="black", edgecolor="black"))
    ax.add_patch(
        Rectangle((bx + length / 2, by), length / 2, h, facecolor="white", edgecolor="black")
    )
    label = f"{length:g} m" if length >= 1 else f"{length * 100:g} cm"
    ax.text(bx + length / 2, by + h + 0.008 * width, label, ha="center", va="bottom", fontsize=7)


def _draw_north_arrow(
    ax: Axes, crs: CRS, cx: float, cy: float, x0: float, x1: float, y0: float, y1: float
) -> None:
    angle = math.radians(true_north_angle(crs, cx, cy))
    w = x1 - x0
    ax_x, ax_y = x1 - 0.09 * w, y1 - 0.2 * (y1 - y0)
    length = 0.1 * w
    dx, dy = length * math.sin(angle), length * math.cos(angle)
    ax.add_patch(
        FancyArrow(
            ax_x,
            ax_y,
            dx,
            dy,
            width=0.012 * w,
            head_width=0.04 * w,
            head_length=0.035 * w,
            length_includes_head=True,
            color="black",
        )
    )
    ax.text(
        ax_x + dx * 1.25,
        ax_y + dy * 1.25,
        "N",
        ha="center",
        va="center",
        fontsize=9,
        weight="bold",
        bbox={"boxstyle": "circle,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
    )


@dataclass(frozen=True)
class ProfileSample:
    """Heights sampled along a transect.

    Attributes
    ----------
    distance_m : ndarray, shape (n,)
        Distance from the start of the transect in metres.
    before_m, after_m : ndarray, shape (n,) or None
        DSM heights in metres (NaN where the DSM has no data); None when not given.
    inside : ndarray of bool, shape (n,)
        True where the sample lies inside the lead.
    line : LineString
        The transect in ``crs``.
    crs : CRS
        Projected CRS of the transect (metres).
    """

    distance_m: np.ndarray
    before_m: np.ndarray | None
    after_m: np.ndarray | None
    inside: np.ndarray
    line: LineString
    crs: CRS


def _transect(geom: BaseGeometry, extend_m: float | None) -> LineString:
    rect = geom.minimum_rotated_rectangle
    c = geom.centroid
    coords = np.asarray(rect.exterior.coords)[:4] if isinstance(rect, Polygon) else None
    if coords is None or len(coords) < 4:
        size = max(geom.length, 10.0)
        axis = np.array([1.0, 0.0])
        long_len = size
    else:
        e1, e2 = coords[1] - coords[0], coords[2] - coords[1]
        axis_vec = e1 if np.hypot(*e1) >= np.hypot(*e2) else e2
        long_len = float(np.hypot(*axis_vec))
        axis = axis_vec / max(long_len, 1e-9)
    ext = extend_m if extend_m is not None else max(0.5 * long_len, 10.0)
    half = long_len / 2 + ext
    p0 = (c.x - axis[0] * half, c.y - axis[1] * half)
    p1 = (c.x + axis[0] * half, c.y + axis[1] * half)
    return LineString([p0, p1])


def _sample_dsm(path: Path, line: LineString, line_crs: CRS, n: int) -> np.ndarray:
    with rasterio.open(path) as ds:
        if ds.crs is None:
            raise MapError(f"{path}: DSM has no CRS; the profile cannot be placed")
        tr = Transformer.from_crs(line_crs, ds.crs, always_xy=True)
        t = np.linspace(0.0, 1.0, n)
        (ax0, ay0), (ax1, ay1) = line.coords
        xs, ys = tr.transform(ax0 + t * (ax1 - ax0), ay0 + t * (ay1 - ay0))
        xs, ys = np.asarray(xs), np.asarray(ys)
        t = ds.transform
        if t.b != 0 or t.d != 0:
            raise MapError(f"{path}: rotated DSM geotransforms are not supported; warp it north-up")
        cols = (xs - t.c) / t.a - 0.5
        rows = (ys - t.f) / t.e - 0.5
        c0, r0 = math.floor(cols.min()) - 1, math.floor(rows.min()) - 1
        c1, r1 = math.ceil(cols.max()) + 2, math.ceil(rows.max()) + 2
        c0, r0 = max(c0, 0), max(r0, 0)
        c1, r1 = min(c1, ds.width), min(r1, ds.height)
        if c1 <= c0 or r1 <= r0:
            raise MapError(f"{path}: the lead lies outside the DSM; check the DSM covers the site")
        arr = ds.read(1, window=Window(c0, r0, c1 - c0, r1 - r0), masked=True)
        arr = arr.astype(np.float64)
        units = (ds.units[0] or "").lower() if ds.units else ""
    data = np.ma.filled(arr, np.nan)
    if units and units not in ("m", "metre", "meter", "metres", "meters"):
        raise MapError(f"{path}: DSM heights are in {units!r}; convert them to metres")
    out = ndimage.map_coordinates(
        data, [rows - r0, cols - c0], order=1, mode="constant", cval=np.nan
    )
    return np.asarray(out, dtype=np.float64)


def sample_profile(
    geometry: BaseGeometry,
    *,
    before_dsm: str | os.PathLike[str] | None,
    after_dsm: str | os.PathLike[str] | None,
    spacing_m: float | None = None,
    extend_m: float | None = None,
) -> ProfileSample:
    """Sample the DSMs along the transect across ``geometry`` (WGS84) with bilinear weights.

    The transect is the long axis of the lead's minimum rotated rectangle through its
    centroid, extended by ``extend_m`` on each side (default half its length, at least 10 m).
    Samples are ``spacing_m`` apart (default: the finer DSM pixel, at most 2000 samples).
    """
    paths = [Path(p) for p in (before_dsm, after_dsm) if p is not None]
    if not paths:
        raise MapError("a height profile needs at least one DSM; pass --before-dsm/--after-dsm")
    for p in paths:
        if not p.is_file():
            raise MapError(f"{p}: DSM not found; check the path")
    c = geometry.centroid
    crs = utm_crs_for(c.x, c.y)
    with rasterio.open(paths[0]) as ds:
        if ds.crs is not None and CRS.from_user_input(ds.crs).is_projected:
            crs = CRS.from_user_input(ds.crs)
        res = abs(ds.transform.a) if CRS.from_user_input(ds.crs).is_projected else 0.1
    geom = _projected(geometry, crs)
    line = _transect(geom, extend_m)
    step = spacing_m if spacing_m is not None else max(res, line.length / 2000.0)
    n = max(int(line.length / step) + 1, 2)
    distance = np.linspace(0.0, line.length, n)
    pts = [line.interpolate(d) for d in distance]
    inside = np.array([geom.buffer(1e-9).contains(p) for p in pts], dtype=bool)
    before = _sample_dsm(Path(before_dsm), line, crs, n) if before_dsm is not None else None
    after = _sample_dsm(Path(after_dsm), line, crs, n) if after_dsm is not None else None
    return ProfileSample(distance, before, after, inside, line, crs)


def render_height_profile(
    geometry: BaseGeometry,
    out_png: Path,
    *,
    before_dsm: str | os.PathLike[str] | None,
    after_dsm: str | os.PathLike[str] | None,
    before_date: str | None = None,
    after_date: str | None = None,
    title: str = "Height profile",
    dpi: int = 150,
    after_label: str = "after",
) -> Path:
    """Plot the DSM heights across the lead (see :func:`sample_profile`) into a PNG.

    ``after_label`` names the after curve in the legend (e.g. "after (co-registered to
    before)" when ``after_dsm`` is the co-registered DSM of a detection run).
    """
    prof = sample_profile(geometry, before_dsm=before_dsm, after_dsm=after_dsm)
    fig, _canvas = _new_figure(7.0, 3.8, dpi)
    ax = fig.add_axes((0.1, 0.15, 0.86, 0.68))
    if prof.inside.any():
        idx = np.flatnonzero(prof.inside)
        ax.axvspan(
            prof.distance_m[idx[0]],
            prof.distance_m[idx[-1]],
            color="#ffd6d6",
            label="inside the lead",
        )
    if prof.before_m is not None:
        ax.plot(
            prof.distance_m,
            prof.before_m,
            color="#1f5fbf",
            linewidth=1.4,
            label=f"before ({before_date or 'date unknown'})",
        )
    if prof.after_m is not None:
        ax.plot(
            prof.distance_m,
            prof.after_m,
            color="#d62728",
            linewidth=1.4,
            label=f"{after_label}, {after_date or 'date unknown'}"
            if after_label != "after"
            else f"after ({after_date or 'date unknown'})",
        )
    note = ""
    if prof.before_m is not None and prof.after_m is not None and prof.inside.any():
        diff = prof.after_m[prof.inside] - prof.before_m[prof.inside]
        if np.isfinite(diff).any():
            note = f"median change inside the lead: {np.nanmedian(diff):+.2f} m"
    ax.set_xlabel("distance along the transect (m)", fontsize=8)
    ax.set_ylabel("DSM height (m)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, linewidth=0.4, alpha=0.6)
    ax.legend(fontsize=7, loc="upper right")
    tr = Transformer.from_crs(prof.crs, _WGS84, always_xy=True)
    (sx, sy), (ex, ey) = prof.line.coords
    slon, slat = tr.transform(sx, sy)
    elon, elat = tr.transform(ex, ey)
    fig.text(0.5, 0.97, title, ha="center", va="top", fontsize=10, weight="bold")
    fig.text(
        0.5,
        0.905,
        f"from {slat:.7f}, {slon:.7f} to {elat:.7f}, {elon:.7f} (WGS84 lat, lon)"
        + (f"   {note}" if note else ""),
        ha="center",
        va="top",
        fontsize=6.5,
    )
    return _save(fig, out_png)
