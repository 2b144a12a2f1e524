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

:func:`run_detect` is five named stages, one function each, shown as they run by
:mod:`survey.progress`: open and check the inputs, co-register, classify, vectorize and check
permits, write products and provenance. The module is over the house's ~500 lines because it
holds the whole pipeline: those five stages, the input checks they need (overlap, site crop,
dates) and the memory and scheduler settings of a run (:func:`bounded_memory`,
:func:`_scheduler`); the machinery they set lives in :mod:`change_detection._memory` and
:mod:`change_detection._exec`.
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

from change_detection._memory import limit_malloc_arenas
from change_detection.detect import ChangeResult, Epoch, detect_changes
from change_detection.grids import align_epoch, onto_reference_grid
from change_detection.leads import Lead
from change_detection.params import DetectParams
from change_detection.permits import Permit, build_leads, parse_date
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
from survey.overviews import coarse_from_overviews
from survey.permits import read_permits
from survey.progress import stage
from survey.rasters import (
    OPEN_ERRORS,
    atomic_path,
    open_dsm,
    quiet_gdal_messages,
    sha256_file,
)
from survey.registered import (
    RegisteredEpoch,
    derivation_record,
    open_registered_epoch,
    write_registered_epoch,
)
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
    malloc arenas capped (:func:`change_detection._memory.limit_malloc_arenas`)."""

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


@dataclass(frozen=True)
class _Inputs:
    """What the first stage of :func:`run_detect` opened, checked and hashed.

    ``before`` is the reference epoch, cropped to the site; the after epoch is still on its
    own grid (``after_ortho``, ``after_dsm``).
    """

    paths: dict[str, Path]
    hashes: dict[str, str]
    before_ortho: Orthophoto
    after_ortho: Orthophoto
    before: Epoch
    after_dsm: xr.DataArray | None
    permits: list[Permit] | None
    site: BaseGeometry | None
    before_date: dt.date | None
    after_date: dt.date | None


@dataclass(frozen=True)
class _OnBeforeGrid:
    """What the co-registration stage hands on: the after epoch on the before grid, the
    co-registration report, and the co-registered after epoch as written (None if not)."""

    after: Epoch
    report: dict[str, Any]
    written: RegisteredEpoch | None = None


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

    Five stages, each one function and one named stage of :mod:`survey.progress`: open and
    check the inputs (:func:`_open_inputs`), co-register (:func:`_coregister`), classify
    (:func:`_classify`), vectorize and check permits (:func:`_check_permits`), write products
    and provenance (:func:`_write_products`).

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
    paths = _input_paths(before_ortho, after_ortho, before_dsm, after_dsm, permits, site)
    with stage("open and check the inputs"):
        inputs = _open_inputs(paths, params, scheduler, clock, (before_date, after_date))
    with stage("co-register"):
        grid = _coregister(inputs, params, out, clock, write_registered=write_registered)
    with stage("classify", dask_tasks=True):
        result = _classify(inputs.before, grid.after, params, out / "change.tif", scheduler)
        clock.lap("detect")
    with stage("vectorize and check permits"):
        leads = _check_permits(result, inputs, params)
        clock.lap("leads")
    with stage("write products and provenance"):
        outputs = _write_products(out, leads, grid.report)
        clock.lap("write")
        provenance = _provenance(inputs, result, grid, leads, outputs, params, epochs)
        provenance["timings_s"] = clock.laps
        provenance["started"] = started.isoformat()
        provenance["finished"] = dt.datetime.now(dt.UTC).isoformat()
        provenance_json = write_json(out / "provenance.json", provenance)
    log.info("%d leads written to %s", len(leads), out)
    return DetectResult(
        leads=tuple(leads),
        mode=result.mode,
        out_dir=out,
        leads_geojson=outputs["leads.geojson"],
        leads_gpkg=outputs["leads.gpkg"],
        change_tif=outputs["change.tif"],
        coregistration_json=outputs["coregistration.json"],
        provenance_json=provenance_json,
        coregistration=grid.report,
        timings_s=clock.laps,
        after_registered=None if grid.written is None else grid.written.ortho,
        after_registered_dsm=None if grid.written is None else grid.written.dsm,
    )


def _input_paths(
    before_ortho: str | os.PathLike[str],
    after_ortho: str | os.PathLike[str],
    before_dsm: str | os.PathLike[str] | None,
    after_dsm: str | os.PathLike[str] | None,
    permits: str | os.PathLike[str] | None,
    site: str | os.PathLike[str] | None,
) -> dict[str, Path]:
    """The inputs by role, in the order ``provenance.json`` lists them; one DSM is an error."""
    if (before_dsm is None) != (after_dsm is None):
        given = "before" if before_dsm is not None else "after"
        raise DetectInputError(
            f"only the {given} DSM was given; pass both --before-dsm and --after-dsm for height "
            "mode, or neither for RGB-only mode"
        )
    named = {
        "before_ortho": before_ortho,
        "after_ortho": after_ortho,
        "before_dsm": before_dsm,
        "after_dsm": after_dsm,
        "permits": permits,
        "site": site,
    }
    return {role: Path(p) for role, p in named.items() if p is not None}


def _open_inputs(
    paths: dict[str, Path],
    params: DetectParams,
    scheduler: str | None,
    clock: Clock,
    dates: tuple[str | dt.date | None, str | dt.date | None],
) -> _Inputs:
    """Stage 1: open (and so validate) every input before the slower hashing, check that the
    epochs overlap, hash the files, settle the dates and crop the before epoch to the site."""
    n_px = _pixel_count(paths["before_ortho"])
    big = n_px > 4 * params.chunk_px**2
    chunks = params.chunk_px if big or scheduler or n_px > LARGE_PX else None
    height_mode = "before_dsm" in paths
    ortho_b, ortho_a = _read_orthophotos(paths, chunks, height_mode=height_mode)
    dsm_b = open_dsm(paths["before_dsm"], chunks=chunks) if height_mode else None
    dsm_a = open_dsm(paths["after_dsm"], chunks=chunks) if height_mode else None
    _check_overlap(ortho_b.rgb, ortho_a.rgb, paths["before_ortho"], paths["after_ortho"])
    crs = ortho_b.rgb.rio.crs
    permit_list = read_permits(paths["permits"], crs) if "permits" in paths else None
    clock.lap("open")
    # hashlib releases the GIL on large buffers: the inputs are hashed side by side
    with ThreadPoolExecutor(min(len(paths), os.cpu_count() or 2)) as pool:
        digests = list(pool.map(sha256_file, paths.values()))
    hashes = dict(zip(paths, digests, strict=True))
    clock.lap("hash")
    start, end = _survey_dates(paths["before_ortho"], paths["after_ortho"], *dates)
    before = Epoch(rgb=ortho_b.rgb, valid=ortho_b.valid, dsm=dsm_b, nir=ortho_b.nir)
    site_geom: BaseGeometry | None = None
    if "site" in paths:
        # valid whatever the file holds (a self-intersecting ring is repaired, one warning)
        site_geom = read_site_area(paths["site"], crs)
        before, site_geom = _crop_to_site(before, site_geom, paths["site"], margin_m=5.0)
    return _Inputs(
        paths=paths,
        hashes=hashes,
        before_ortho=ortho_b,
        after_ortho=ortho_a,
        before=before,
        after_dsm=dsm_a,
        permits=permit_list,
        site=site_geom,
        before_date=start,
        after_date=end,
    )


def _survey_dates(
    before_ortho: Path,
    after_ortho: Path,
    before_date: str | dt.date | None,
    after_date: str | dt.date | None,
) -> tuple[dt.date | None, dt.date | None]:
    """The dates given, else the orthophotos' tags, else a synthetic site's ``truth.json``."""
    start = parse_date(before_date, "--before-date")
    end = parse_date(after_date, "--after-date")
    truth_dates = _truth_dates(before_ortho)
    if start is None:
        start = parse_date(_survey_date(before_ortho) or truth_dates[0], "before date")
    if end is None:
        end = parse_date(_survey_date(after_ortho) or truth_dates[1], "after date")
    return start, end


def _coregister(
    inputs: _Inputs, params: DetectParams, out: Path, clock: Clock, *, write_registered: bool
) -> _OnBeforeGrid:
    """Stage 2: the after epoch on the before grid, co-registered
    (:func:`change_detection.grids.align_epoch`) and, with ``write_registered``, written as
    ``after_registered*.tif``; with ``params.coregister`` off only resampled onto the grid."""
    before, ortho_a = inputs.before, inputs.after_ortho
    if not params.coregister:
        report: dict[str, Any] = {
            "coregistered": False,
            "model": "none",
            "warnings": ["co-registration skipped (--no-coregister): the grids were only matched"],
        }
        grid = _OnBeforeGrid(_matched_grids(inputs), report)
        clock.lap("coregister")
        out.mkdir(parents=True, exist_ok=True)
        return grid
    aligned = align_epoch(
        before.rgb,
        ortho_a.rgb,
        ortho_a.valid,
        target_dsm=inputs.after_dsm,
        reference_dsm=before.dsm,
        reference_valid=before.valid,
        target_nir=ortho_a.nir,
        # the coarse pass from the files' overviews when they carry usable ones
        coarse=coarse_from_overviews(inputs.before_ortho, ortho_a, before.rgb),
    )
    after = Epoch(rgb=aligned.rgb, valid=aligned.valid, dsm=aligned.dsm, nir=aligned.nir)
    report = aligned.report()
    report["coregistered"] = True
    clock.lap("coregister")
    out.mkdir(parents=True, exist_ok=True)
    if not write_registered:
        return _OnBeforeGrid(after, report)
    paths, hashes = inputs.paths, inputs.hashes
    written = write_registered_epoch(
        aligned,
        out,
        after_ortho=paths["after_ortho"],
        after_ortho_sha256=hashes["after_ortho"],
        reference_sha256=hashes["before_ortho"],
        after_dsm=paths.get("after_dsm"),
        after_dsm_sha256=hashes.get("after_dsm"),
        survey_date=inputs.after_date.isoformat() if inputs.after_date else None,
    )
    if aligned.rgb.chunks is not None:
        # Detection reads the written rasters (same values, lossless) rather than
        # computing the warp of the after epoch a second time.
        rgb_r, valid_r, dsm_r = open_registered_epoch(written, aligned)
        after = Epoch(rgb=rgb_r, valid=valid_r, dsm=dsm_r, nir=aligned.nir)
    clock.lap("registered")
    return _OnBeforeGrid(after, report, written)


def _matched_grids(inputs: _Inputs) -> Epoch:
    """The after epoch resampled onto the before grid, not co-registered."""
    grid, ortho_a, dsm_a = inputs.before.rgb, inputs.after_ortho, inputs.after_dsm
    bilinear, nearest = Resampling.bilinear, Resampling.nearest
    return Epoch(
        rgb=onto_reference_grid(ortho_a.rgb, grid, resampling=bilinear, fill=0),
        valid=onto_reference_grid(ortho_a.valid, grid, resampling=nearest, fill=False).astype(bool),
        dsm=None
        if dsm_a is None
        else onto_reference_grid(dsm_a, grid, resampling=bilinear, fill=np.nan),
        nir=None
        if ortho_a.nir is None
        else onto_reference_grid(ortho_a.nir, grid, resampling=bilinear, fill=0),
    )


def _classify(
    before: Epoch, after: Epoch, params: DetectParams, change_tif: Path, scheduler: str | None
) -> ChangeResult:
    """Stage 3: :func:`change_detection.detect.detect_changes` chunk by chunk (on
    ``scheduler``), writing each chunk's classes into ``change_tif`` as it is done."""
    sched, closer = _scheduler(scheduler)
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
    return result


def _check_permits(result: ChangeResult, inputs: _Inputs, params: DetectParams) -> list[Lead]:
    """Stage 4: the change objects inside the site as leads (WGS84 outlines, stable ids),
    each checked against the permits."""
    objects = list(result.objects)
    if inputs.site is not None:
        objects = [o for o in objects if o.geometry.intersects(inputs.site)]
    return build_leads(
        objects,
        inputs.permits,
        crs=result.crs,
        params=params,
        before_date=inputs.before_date,
        after_date=inputs.after_date,
        rgb_only=result.mode == "rgb_only",
        input_hashes=inputs.hashes,
    )


def _write_products(out: Path, leads: list[Lead], coreg_report: dict[str, Any]) -> dict[str, Path]:
    """Stage 5 (first half): ``leads.geojson``, ``leads.gpkg`` and ``coregistration.json``
    beside the ``change.tif`` stage 3 wrote; every product by name."""
    leads_geojson, leads_gpkg = write_leads(out, leads)
    coreg_json = write_json(out / "coregistration.json", coreg_report)
    return {
        "leads.geojson": leads_geojson,
        "leads.gpkg": leads_gpkg,
        "change.tif": out / "change.tif",
        "coregistration.json": coreg_json,
    }


#: The fields of the co-registration report repeated in ``provenance.json``.
_COREG_FIELDS = (
    "coregistered",
    "model",
    "shift_x_px",
    "shift_y_px",
    "rmse_px",
    "vertical_offset_m",
    "confidence",
)


def _provenance(
    inputs: _Inputs,
    result: ChangeResult,
    grid: _OnBeforeGrid,
    leads: list[Lead],
    products: dict[str, Path],
    params: DetectParams,
    epochs: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, Any]:
    """Stage 5 (second half): the content of ``provenance.json`` but its times; the
    co-registered after epoch joins the outputs with the original each derives from."""
    paths, hashes, report = inputs.paths, inputs.hashes, grid.report
    outputs = dict(products)
    derived: dict[str, dict[str, Any]] = {}
    written = grid.written
    pairs = () if written is None else (("after_ortho", written.ortho), ("after_dsm", written.dsm))
    for role, product in pairs:
        if product is None:
            continue
        outputs[product.name] = product
        derived[product.name] = derivation_record(
            role,
            paths[role],
            hashes[role],
            hashes["before_ortho"],
            report,
            products["coregistration.json"].name,
        )
    readings = {
        "before_ortho": inputs.before_ortho.record(),
        "after_ortho": inputs.after_ortho.record(),
    }
    start, end = inputs.before_date, inputs.after_date
    return {
        "software": {"name": "sitewatch", "version": __version__},
        "command": "detect",
        "mode": result.mode,
        "rgb_only": result.mode == "rgb_only",
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
        "coregistration": {k: report.get(k) for k in _COREG_FIELDS},
        "epochs": {when: dict(record) for when, record in (epochs or {}).items()},
        "n_leads": len(leads),
        "outputs": {
            name: {"path": str(p.resolve()), "sha256": sha256_file(p), **derived.get(name, {})}
            for name, p in outputs.items()
        },
    }


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
