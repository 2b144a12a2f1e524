"""The detection pipeline: two survey epochs on disk → leads and their evidence on disk.

:func:`run_detect` opens the epochs (chunked with dask for large rasters), hashes every input,
brings the after epoch onto the before grid with :func:`change_detection.grids.align_epoch`
(co-registration and vertical alignment), runs :func:`change_detection.detect.detect_changes`,
overlays the permits and writes into ``out_dir``:

``leads.geojson``
    RFC 7946 FeatureCollection (WGS84) of the leads.
``leads.gpkg``
    The same leads as a GeoPackage layer (list properties stored as JSON text).
``change.tif``
    Per-pixel change classes (uint8, tiled, DEFLATE, internal overviews); the code table is in
    the dataset tags (``CHANGE_CODE_<n>``) and in ``change_detection.change.CHANGE_CODES``.
``coregistration.json``
    The co-registration report (shift, model, residuals, vertical offset, confidence).
``provenance.json``
    Inputs' paths and SHA-256, parameters, software version, outputs' SHA-256, the mode
    (``dsm`` or ``rgb_only``), the dates and the start and end times. Each orthophoto's entry
    also records how it was read (:meth:`survey.imagery.Orthophoto.record`: representation,
    band roles, validity, scaling to 8 bits) and ``assumptions``, the list of what was assumed
    about it (also logged as one warning line per file).
``after_registered.tif``, ``after_registered_dsm.tif``
    The after epoch as detection saw it: co-registered onto the before (detection) grid, the
    DSM with its vertical offset removed (see :mod:`survey.registered`). The leads are in this
    frame, so review maps and evidence packages should show these rather than the original
    after rasters. Listed in ``provenance.json`` outputs with their SHA-256, the original
    each derives from (path and SHA-256) and the co-registration model. Not written with
    ``write_registered=False`` or when co-registration is skipped.

Memory: large rasters are read and processed chunk by chunk (see ``DetectParams.chunk_px`` and
``group_px``), GDAL's block cache is held at :data:`GDAL_CACHE_MB` during a run unless
``GDAL_CACHEMAX`` is set, and glibc's malloc arenas are capped at one per core unless
``MALLOC_ARENA_MAX`` is set.

Orthophotos are read by :func:`survey.imagery.read_orthophoto`: any mask convention or none
(the edge collar is then nodata), 8-bit to float data, RGB, RGBA, RGB + NIR (the NIR band is
passed to detection when both epochs have one), paletted, and in height mode a single grey
band (used as grey in all three bands, without colour cues).

Survey dates default to the orthophotos' tags (``SITEWATCH_SURVEY_DATE``, else
``TIFFTAG_DATETIME``), then to a ``truth.json`` two folders above the before orthophoto (the
layout of a synthetic site); without any, permits are checked without dates.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import rasterio
import rasterio.env
import shapely
import xarray as xr
from pyproj import CRS, Transformer
from rasterio.enums import Resampling
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from change_detection.detect import ChangeResult, Epoch, detect_changes, limit_malloc_arenas
from change_detection.grids import AlignedEpoch, align_epoch, onto_reference_grid
from change_detection.leads import Lead
from change_detection.params import DetectParams
from change_detection.permits import build_leads, parse_date
from survey import __version__
from survey.errors import DetectInputError
from survey.imagery import Orthophoto, read_orthophoto
from survey.outputs import (
    Clock,
    WindowWriter,
    finish_change_tif,
    new_change_tif,
    write_json,
    write_leads,
)
from survey.permits import read_permits
from survey.rasters import (
    OPEN_ERRORS,
    atomic_path,
    open_dsm,
    quiet_gdal_messages,
    sha256_file,
)
from survey.registered import derivation_record, open_registered_epoch, write_registered_epoch
from survey.sites import read_site_area

__all__ = ["DetectResult", "run_detect"]

log = logging.getLogger(__name__)

#: Rasters with more pixels than this are opened chunked (dask) even with large chunks.
LARGE_PX = 50_000_000

#: GDAL block cache (MB) during a detection run unless ``GDAL_CACHEMAX`` is set. GDAL's
#: default, 5 % of the RAM, keeps decoded tiles that the pipeline never reads again (chunks
#: and strips are read once, in order): 1.2 GB on a 24 GB machine, which alone took the peak
#: of an 8192 px run from 0.9 to 2.1 GB.
GDAL_CACHE_MB = 128

_F = TypeVar("_F", bound=Callable[..., Any])


def bounded_memory(func: _F) -> _F:
    """Run ``func`` with GDAL's block cache at :data:`GDAL_CACHE_MB` unless the user set
    ``GDAL_CACHEMAX`` (in the environment or an enclosing ``rasterio.Env``), and glibc's
    malloc arenas capped (:func:`change_detection.detect.limit_malloc_arenas`)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        limit_malloc_arenas()
        user_env = rasterio.env.hasenv() and "GDAL_CACHEMAX" in rasterio.env.getenv()
        if os.environ.get("GDAL_CACHEMAX") or user_env:
            return func(*args, **kwargs)
        # rasterio hands an integer GDAL_CACHEMAX to GDALSetCacheMax64: bytes, not MB
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20):
            return func(*args, **kwargs)

    return cast(_F, wrapper)


@dataclass(frozen=True)
class DetectResult:
    """What :func:`run_detect` produced.

    Attributes
    ----------
    leads : tuple of Lead
    mode : str
        ``"dsm"`` or ``"rgb_only"``.
    out_dir, leads_geojson, leads_gpkg, change_tif, coregistration_json, provenance_json : Path
    coregistration : dict
        The co-registration report.
    timings_s : dict
        Wall time of each stage (open, hash, coregister, detect, leads, write) in seconds.
    after_registered, after_registered_dsm : Path or None
        The co-registered after orthophoto and DSM on the before grid (derived products);
        None when not written (``write_registered=False``, no co-registration, no DSM).
    """

    leads: tuple[Lead, ...]
    mode: str
    out_dir: Path
    leads_geojson: Path
    leads_gpkg: Path
    change_tif: Path
    coregistration_json: Path
    provenance_json: Path
    coregistration: dict[str, Any] = field(default_factory=dict, compare=False)
    timings_s: dict[str, float] = field(default_factory=dict, compare=False)
    after_registered: Path | None = None
    after_registered_dsm: Path | None = None


def _survey_date(path: Path) -> str | None:
    with quiet_gdal_messages(), rasterio.open(path) as ds:
        tags = ds.tags()
    if tags.get("SITEWATCH_SURVEY_DATE"):
        return str(tags["SITEWATCH_SURVEY_DATE"])[:10]
    stamp = tags.get("TIFFTAG_DATETIME")
    if stamp and len(stamp) >= 10:
        return stamp[:10].replace(":", "-")
    return None


def _truth_dates(before_ortho: Path) -> tuple[str | None, str | None]:
    truth = before_ortho.resolve().parent.parent / "truth.json"
    if not truth.is_file():
        return None, None
    try:
        data = json.loads(truth.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    return data.get("before_date"), data.get("after_date")


def _bounds_polygon(arr: xr.DataArray) -> BaseGeometry:
    t = arr.rio.transform()
    rows, cols = arr.sizes["y"], arr.sizes["x"]
    x0, y0 = t * (0, 0)
    x1, y1 = t * (cols, rows)
    return box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _to_crs(geom: BaseGeometry, src: Any, dst: Any) -> BaseGeometry:
    src_crs, dst_crs = CRS.from_user_input(src), CRS.from_user_input(dst)
    if src_crs == dst_crs:
        return geom
    tr = Transformer.from_crs(src_crs, dst_crs, always_xy=True)
    dense = shapely.segmentize(geom, max(geom.length / 200.0, 1e-9)) if geom.length else geom
    return shapely.transform(dense, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def _check_overlap(
    before: xr.DataArray, after: xr.DataArray, before_path: Path, after_path: Path
) -> None:
    b = _bounds_polygon(before)
    a = _to_crs(_bounds_polygon(after), after.rio.crs, before.rio.crs)
    inter = b.intersection(a).area
    if inter <= 0:
        raise DetectInputError(
            f"{after_path} does not overlap {before_path} (bounds "
            f"{tuple(round(v) for v in a.bounds)} vs {tuple(round(v) for v in b.bounds)} in "
            f"{before.rio.crs}); give two surveys of the same site"
        )


def _crop_to_site(
    epoch: Epoch, site: BaseGeometry, site_path: Path, margin_m: float
) -> tuple[Epoch, BaseGeometry]:
    bounds = _bounds_polygon(epoch.rgb)
    if not site.intersects(bounds) or site.intersection(bounds).area <= 0:
        raise DetectInputError(
            f"{site_path}: the site lies outside the rasters (site bounds "
            f"{tuple(round(v) for v in site.bounds)}, raster bounds "
            f"{tuple(round(v) for v in bounds.bounds)}); check the site file and its CRS"
        )
    t = epoch.rgb.rio.transform()
    minx, miny, maxx, maxy = site.buffer(margin_m).intersection(bounds).bounds
    inv = ~t
    cols, rows = zip(*(inv * (x, y) for x in (minx, maxx) for y in (miny, maxy)), strict=True)
    r0, r1 = max(0, math.floor(min(rows))), min(epoch.rgb.sizes["y"], math.ceil(max(rows)))
    c0, c1 = max(0, math.floor(min(cols))), min(epoch.rgb.sizes["x"], math.ceil(max(cols)))
    sel = {"y": slice(r0, r1), "x": slice(c0, c1)}

    def crop(a: xr.DataArray | None) -> xr.DataArray | None:
        if a is None:
            return None
        out = a.isel(sel)
        return out.rio.write_transform(t * t.translation(c0, r0))

    rgb, valid = crop(epoch.rgb), crop(epoch.valid)
    assert rgb is not None and valid is not None
    return Epoch(rgb=rgb, valid=valid, dsm=crop(epoch.dsm), nir=crop(epoch.nir)), site


def _scheduler(scheduler: str | None) -> tuple[Any, Any]:
    """Return (scheduler for dask.compute, something to close afterwards).

    ``None``: the in-process threaded scheduler (measured at 8192 px: 26 s, against 48 s on an
    in-process LocalCluster with the same peak memory). ``"local"``: a LocalCluster of one
    single-threaded worker process per core. Anything else: a scheduler address.
    """
    if not scheduler:
        return None, None
    from dask.distributed import Client, LocalCluster

    if scheduler == "local":
        n = os.cpu_count() or 2
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
        log.info("running on a dask LocalCluster of %d worker processes", n)
        return client, _Closer(client, cluster)
    client = Client(scheduler)
    return client, client


class _Closer:
    def __init__(self, *things: Any) -> None:
        self.things = things

    def close(self) -> None:
        for t in self.things:
            t.close()


@bounded_memory
def run_detect(
    before_ortho: str | os.PathLike[str],
    after_ortho: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    before_dsm: str | os.PathLike[str] | None = None,
    after_dsm: str | os.PathLike[str] | None = None,
    permits: str | os.PathLike[str] | None = None,
    site: str | os.PathLike[str] | None = None,
    before_date: str | dt.date | None = None,
    after_date: str | dt.date | None = None,
    params: DetectParams = DetectParams(),  # noqa: B008 (frozen, immutable default)
    scheduler: str | None = None,
    write_registered: bool = True,
    epochs: Mapping[str, Mapping[str, Any]] | None = None,
) -> DetectResult:
    """Detect changes between two survey epochs and write the leads and their evidence.

    Parameters
    ----------
    before_ortho, after_ortho : path
        Orthophotos: RGB (any data type, scaled to 8 bits), RGBA, RGB + NIR or paletted, with
        a mask, an alpha band, a nodata value or none (the edge collar is then nodata); in
        height mode also a single grey band. See :mod:`survey.imagery`.
    out_dir : path
        Output folder (created).
    before_dsm, after_dsm : path, optional
        DSMs in metres with nodata; with both, height mode; with neither, RGB-only mode.
    permits : path, optional
        Permit footprints (any vector format and CRS); without it, leads are
        ``new_structure`` / ``raised`` / ``demolished``.
    site : path, optional
        Site boundary (its polygons; a self-intersecting ring is repaired, one warning line:
        :func:`survey.sites.read_site_area`); detection is cropped to it and leads outside
        it are dropped.
    before_date, after_date : ISO 8601 date, optional
        Survey dates (default: from the orthophotos' tags, see the module docstring).
    params : DetectParams
    scheduler : str, optional
        Address of a dask.distributed scheduler (``tcp://host:8786``; its workers must see
        the input and output paths), or ``"local"`` for a LocalCluster of one worker process
        per core. By default the chunks run in-process on dask's threaded scheduler (one chunk:
        synchronous), which measured faster than an in-process LocalCluster at 8192 px.
    write_registered : bool
        Also write the co-registered after epoch (``after_registered.tif`` and, with DSMs,
        ``after_registered_dsm.tif``) as derived products; skipped without co-registration.
    epochs : mapping, optional
        The records of the epochs the rasters were taken from (``{"before": ..., "after":
        ...}``, :meth:`survey.ingest.odm.SurveyEpoch.record`: an OpenDroneMap project's
        version and options, ...), kept in ``provenance.json`` as ``epochs``.

    Returns
    -------
    DetectResult

    Raises
    ------
    InputFileError, RasterFormatError, NotGeoreferencedError, VectorFormatError
        An input cannot be read (missing, damaged, DSM in feet or without nodata, orthophoto
        whose colour bands cannot be identified, a grey orthophoto in RGB-only mode, a site
        file without a polygon, ...).
    DetectInputError
        The epochs do not overlap, or the site lies outside the rasters; only one DSM.
    PermitError
        The permits file is empty or has unusable records.
    """
    started = dt.datetime.now(dt.UTC)
    clock = Clock()
    out = Path(out_dir)
    paths = {"before_ortho": Path(before_ortho), "after_ortho": Path(after_ortho)}
    if before_dsm is not None:
        paths["before_dsm"] = Path(before_dsm)
    if after_dsm is not None:
        paths["after_dsm"] = Path(after_dsm)
    if (before_dsm is None) != (after_dsm is None):
        given = "before" if before_dsm is not None else "after"
        raise DetectInputError(
            f"only the {given} DSM was given; pass both --before-dsm and --after-dsm for height "
            "mode, or neither for RGB-only mode"
        )
    if permits is not None:
        paths["permits"] = Path(permits)
    if site is not None:
        paths["site"] = Path(site)
    # Open (and so validate) every raster before the slower hashing.
    n_px = _pixel_count(paths["before_ortho"])
    big = n_px > 4 * params.chunk_px**2
    chunks = params.chunk_px if big or scheduler or n_px > LARGE_PX else None
    ortho_b, ortho_a = _read_orthophotos(paths, chunks, height_mode=before_dsm is not None)
    rgb_b, valid_b = ortho_b.rgb, ortho_b.valid
    rgb_a, valid_a = ortho_a.rgb, ortho_a.valid
    dsm_b = open_dsm(paths["before_dsm"], chunks=chunks) if before_dsm is not None else None
    dsm_a = open_dsm(paths["after_dsm"], chunks=chunks) if after_dsm is not None else None
    _check_overlap(rgb_b, rgb_a, paths["before_ortho"], paths["after_ortho"])
    permit_list = read_permits(paths["permits"], rgb_b.rio.crs) if permits is not None else None
    clock.lap("open")
    # hashlib releases the GIL on large buffers: the inputs are hashed side by side
    with ThreadPoolExecutor(min(len(paths), os.cpu_count() or 2)) as pool:
        digests = list(pool.map(sha256_file, paths.values()))
    hashes = dict(zip(paths, digests, strict=True))
    clock.lap("hash")
    start = parse_date(before_date, "--before-date")
    end = parse_date(after_date, "--after-date")
    truth_dates = _truth_dates(paths["before_ortho"])
    if start is None:
        start = parse_date(_survey_date(paths["before_ortho"]) or truth_dates[0], "before date")
    if end is None:
        end = parse_date(_survey_date(paths["after_ortho"]) or truth_dates[1], "after date")

    before = Epoch(rgb=rgb_b, valid=valid_b, dsm=dsm_b, nir=ortho_b.nir)
    site_geom: BaseGeometry | None = None
    if site is not None:
        # valid whatever the file holds (a self-intersecting ring is repaired, one warning)
        site_geom = read_site_area(paths["site"], rgb_b.rio.crs)
        before, site_geom = _crop_to_site(before, site_geom, paths["site"], margin_m=5.0)

    aligned: AlignedEpoch | None = None
    if params.coregister:
        aligned = align_epoch(
            before.rgb,
            rgb_a,
            valid_a,
            target_dsm=dsm_a,
            reference_dsm=before.dsm,
            reference_valid=before.valid,
            target_nir=ortho_a.nir,
        )
        after = Epoch(rgb=aligned.rgb, valid=aligned.valid, dsm=aligned.dsm, nir=aligned.nir)
        coreg_report: dict[str, Any] = aligned.report()
        coreg_report["coregistered"] = True
    else:
        after = Epoch(
            rgb=onto_reference_grid(rgb_a, before.rgb, resampling=Resampling.bilinear, fill=0),
            valid=onto_reference_grid(
                valid_a, before.rgb, resampling=Resampling.nearest, fill=False
            ).astype(bool),
            dsm=None
            if dsm_a is None
            else onto_reference_grid(
                dsm_a, before.rgb, resampling=Resampling.bilinear, fill=np.nan
            ),
            nir=None
            if ortho_a.nir is None
            else onto_reference_grid(
                ortho_a.nir, before.rgb, resampling=Resampling.bilinear, fill=0
            ),
        )
        coreg_report = {
            "coregistered": False,
            "model": "none",
            "warnings": ["co-registration skipped (--no-coregister): the grids were only matched"],
        }

    clock.lap("coregister")
    out.mkdir(parents=True, exist_ok=True)
    registered = None
    if write_registered and aligned is not None:
        registered = write_registered_epoch(
            aligned,
            out,
            after_ortho=paths["after_ortho"],
            after_ortho_sha256=hashes["after_ortho"],
            reference_sha256=hashes["before_ortho"],
            after_dsm=paths.get("after_dsm"),
            after_dsm_sha256=hashes.get("after_dsm"),
            survey_date=end.isoformat() if end else None,
        )
        if aligned.rgb.chunks is not None:
            # Detection reads the written rasters (same values, lossless) rather than
            # computing the warp of the after epoch a second time.
            rgb_r, valid_r, dsm_r = open_registered_epoch(registered, aligned)
            after = Epoch(rgb=rgb_r, valid=valid_r, dsm=dsm_r, nir=aligned.nir)
        clock.lap("registered")
    sched, closer = _scheduler(scheduler)
    change_tif = out / "change.tif"
    lock: Any
    if sched is not None:
        from dask.distributed import Lock

        lock = Lock("sitewatch-change-tif")
    else:
        lock = threading.Lock()
    try:
        with atomic_path(change_tif) as tmp:
            new_change_tif(
                tmp,
                (before.rgb.sizes["y"], before.rgb.sizes["x"]),
                before.rgb.rio.transform(),
                before.rgb.rio.crs,
            )
            result: ChangeResult = detect_changes(
                before,
                after,
                params,
                codes_sink=WindowWriter(tmp),
                sink_lock=lock,
                scheduler=sched,
            )
            finish_change_tif(tmp, result.mode)
    finally:
        if closer is not None:
            closer.close()

    clock.lap("detect")
    objects = list(result.objects)
    if site_geom is not None:
        objects = [o for o in objects if o.geometry.intersects(site_geom)]
    rgb_only = result.mode == "rgb_only"
    leads = build_leads(
        objects,
        permit_list,
        crs=result.crs,
        params=params,
        before_date=start,
        after_date=end,
        rgb_only=rgb_only,
        input_hashes=hashes,
    )

    clock.lap("leads")
    leads_geojson, leads_gpkg = write_leads(out, leads)
    coreg_json = write_json(out / "coregistration.json", coreg_report)
    outputs = {
        "leads.geojson": leads_geojson,
        "leads.gpkg": leads_gpkg,
        "change.tif": change_tif,
        "coregistration.json": coreg_json,
    }
    clock.lap("write")
    derived: dict[str, dict[str, Any]] = {}
    products = (
        ()
        if registered is None
        else (("after_ortho", registered.ortho), ("after_dsm", registered.dsm))
    )
    for role, product in products:
        if product is None:
            continue
        outputs[product.name] = product
        derived[product.name] = derivation_record(
            role, paths[role], hashes[role], hashes["before_ortho"], coreg_report, coreg_json.name
        )
    readings = {"before_ortho": ortho_b.record(), "after_ortho": ortho_a.record()}
    provenance = {
        "software": {"name": "sitewatch", "version": __version__},
        "command": "detect",
        "mode": result.mode,
        "rgb_only": rgb_only,
        "inputs": {
            role: {"path": str(p.resolve()), "sha256": hashes[role], **readings.get(role, {})}
            for role, p in paths.items()
        },
        "before_date": start.isoformat() if start else None,
        "after_date": end.isoformat() if end else None,
        "parameters": params.as_dict(),
        "grid": {
            "crs": str(result.crs),
            "transform": list(result.transform)[:6],
            "shape": list(result.shape),
            "chunks": result.n_chunks,
        },
        "coregistration": {
            k: coreg_report.get(k)
            for k in (
                "coregistered",
                "model",
                "shift_x_px",
                "shift_y_px",
                "rmse_px",
                "vertical_offset_m",
                "confidence",
            )
        },
        "epochs": {when: dict(record) for when, record in (epochs or {}).items()},
        "n_leads": len(leads),
        "outputs": {
            name: {"path": str(p.resolve()), "sha256": sha256_file(p), **derived.get(name, {})}
            for name, p in outputs.items()
        },
        "timings_s": clock.laps,
        "started": started.isoformat(),
        "finished": dt.datetime.now(dt.UTC).isoformat(),
    }
    provenance_json = write_json(out / "provenance.json", provenance)
    log.info("%d leads written to %s", len(leads), out)
    return DetectResult(
        leads=tuple(leads),
        mode=result.mode,
        out_dir=out,
        leads_geojson=leads_geojson,
        leads_gpkg=leads_gpkg,
        change_tif=change_tif,
        coregistration_json=coreg_json,
        provenance_json=provenance_json,
        coregistration=coreg_report,
        timings_s=clock.laps,
        after_registered=None if registered is None else registered.ortho,
        after_registered_dsm=None if registered is None else registered.dsm,
    )


#: The fix named when a grey orthophoto is given in RGB-only mode.
_GREY_IN_RGB_MODE = (
    "RGB-only mode compares colours, which one grey band does not have: give an RGB "
    "orthophoto, or both DSMs (--before-dsm, --after-dsm) for height mode"
)


def _read_orthophotos(
    paths: dict[str, Path], chunks: int | None, *, height_mode: bool
) -> tuple[Orthophoto, Orthophoto]:
    """Both orthophotos through :func:`survey.imagery.read_orthophoto`, their NIR bands kept
    only when both have one, and each file's assumptions logged as one warning line."""
    read = {
        role: read_orthophoto(
            paths[role],
            chunks,
            role=role.replace("_ortho", " orthophoto"),
            grey="replicate" if height_mode else "refuse",
            grey_fix=_GREY_IN_RGB_MODE,
            log_assumptions=False,
        )
        for role in ("before_ortho", "after_ortho")
    }
    before, after = read["before_ortho"], read["after_ortho"]
    if (before.nir is None) != (after.nir is None):
        lacking = "after" if after.nir is None else "before"
        note = (
            f"its NIR band is not used: the {lacking} orthophoto has none, so vegetation is "
            "told from the colour bands in both epochs"
        )
        if before.nir is not None:
            before = before.with_assumption(note).without_nir()
        else:
            after = after.with_assumption(note).without_nir()
    before.log_assumptions()
    after.log_assumptions()
    return before, after


def _pixel_count(path: Path) -> int:
    """Pixels of a raster, 0 when it cannot be opened (open_orthophoto then says why)."""
    try:
        with quiet_gdal_messages(), rasterio.open(path) as ds:
            return int(ds.width) * int(ds.height)
    except OPEN_ERRORS:
        return 0
    except OSError:
        return 0
