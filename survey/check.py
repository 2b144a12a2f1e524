"""The first survey checked against the permit atlas: one survey on disk → leads on disk.

Most sites have no earlier survey, so the bureaus compare the aerial survey with the permit
atlas (监管图册): the permits and the layer of legally existing buildings. :func:`run_check`
finds the structures of one survey from its height above ground and overlays the atlas:

* **Height above ground**: DSM − DTM, with the DTM given (``--dtm``: OpenDroneMap writes
  ``odm_dem/dtm.tif``) or derived from the DSM (:func:`change_detection.terrain.derive_dtm`).
* **Structures**: :func:`change_detection.detect.detect_changes` with a "before" epoch whose
  surface is the DTM and an "after" epoch that is the survey (the same orthophoto on the same
  grid, so nothing is co-registered): every structure is a height gain on open ground, and
  vegetation, speckle and edge artefacts are suppressed, minimum area and height applied and
  large rasters chunked exactly as in ``sitewatch detect``. Detect's ground filter runs on the
  "before" surface, here a DTM; it decides only new against raised and the height above *its*
  ground, so each structure's height is taken from DSM − DTM instead (``height_m`` is set to
  the height gain over the DTM) and every structure is ``new``. Height losses (the DSM below
  the DTM) are not structures and are dropped.
* **Alignment to the atlas**: a 1 m GNSS error makes a compliant wall look 1 m outside its
  footprint. With alignment on (the default), the offset between the atlas outlines (permits
  and existing buildings) and the building edges of the survey is measured
  (:func:`survey.atlas_overlay.align_atlas`); when it is well determined both layers are moved
  by it before the overlay. Leads stay in the survey's frame, where they fit the orthophoto.
* **Existing buildings** (:mod:`survey.buildings`) cover a structure as a valid permit does;
  one that no longer stands (less than :data:`STANDING_FRACTION` of its footprint at
  ``min_height_m`` above ground, :func:`survey.atlas_overlay.missing_buildings`) is a
  ``demolished`` lead unless a valid permit covers it.
* **Leads** (:func:`change_detection.permits.build_leads`): ``no_permit``,
  ``outside_footprint``, ``over_height``, ``demolished``, in the ``leads.geojson`` schema of
  ``detect``; ``height_gain_m`` is the structure's height above ground (its gain over bare
  ground), ``floors_added`` its floors, ``before_date`` the atlas date (or None) and
  ``after_date`` the survey date.

Outputs in ``out_dir``: ``leads.geojson``, ``leads.gpkg``, ``change.tif`` (the classes of
``detect``'s ``change.tif``, "new" meaning a structure; existing buildings that no longer
stand are leads, not pixels of it), ``check.json`` (the report: DTM,
alignment with offset, residual and outlines used, the atlas and what was found of it, the
assumptions made), ``provenance.json`` (inputs' and outputs' SHA-256, parameters, timings) and
``atlas_permits.geojson`` / ``atlas_existing.geojson`` (the atlas as the check used it, moved
by the offset when it was applied; WGS84), for the review map and evidence packages.

Memory: detection is chunked as in ``detect``; a DTM derived from a chunked DSM is computed
chunk by chunk from a coarse ground model (:func:`change_detection.terrain.derive_dtm_lazy`),
and the alignment reads the height above ground and the orthophoto in a window around each
atlas outline.

:func:`run_check` is six named stages, one function each, shown as they run by
:mod:`survey.progress`: open and check the inputs, ground model, align the atlas, classify,
vectorize and check permits, write products and provenance.

The module is over the house's ~500 lines: it is one pipeline (as :mod:`survey.pipeline` for
``detect``), those six stages and the report and provenance they write; the two steps that
work on the survey grid with the atlas are :mod:`survey.atlas_overlay`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
import xarray as xr
from affine import Affine
from pyproj import CRS
from rasterio.enums import Resampling
from shapely.geometry.base import BaseGeometry

from change_detection.detect import ChangeResult, Epoch, detect_changes
from change_detection.grids import onto_reference_grid
from change_detection.leads import Lead
from change_detection.objects import ChangeObject
from change_detection.params import DetectParams
from change_detection.permits import ExistingBuilding, Permit, build_leads, parse_date
from survey import __version__
from survey.atlas_overlay import (
    STANDING_FRACTION,
    align_atlas,
    grid_bounds,
    grid_window,
    missing_buildings,
    translate_atlas,
)
from survey.buildings import read_existing_buildings
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
from survey.pipeline import LARGE_PX, bounded_memory
from survey.progress import stage
from survey.rasters import (
    OPEN_ERRORS,
    atomic_path,
    open_dsm,
    quiet_gdal_messages,
    sha256_file,
)
from survey.sites import read_site_area
from survey.vectors import reproject_geometries, write_features

__all__ = ["STANDING_FRACTION", "CheckResult", "run_check"]

log = logging.getLogger(__name__)

#: The survey on its grid: the orthophoto (RGB), the DSM and the DTM.
_Surfaces = tuple[xr.DataArray, xr.DataArray, xr.DataArray]

#: Margin (m) of the site crop, as in ``detect``.
_SITE_MARGIN_M = 5.0


@dataclass(frozen=True)
class CheckResult:
    """What :func:`run_check` produced.

    Attributes
    ----------
    leads : tuple of Lead
    out_dir, leads_geojson, leads_gpkg, change_tif, check_json, provenance_json : Path
    atlas_permits : Path
        The permits as the check used them (moved by the atlas offset when it was applied).
    atlas_existing : Path or None
        The same for the existing buildings (None without ``existing``).
    report : dict
        The content of ``check.json``.
    timings_s : dict
        Wall time of each stage in seconds.
    """

    leads: tuple[Lead, ...]
    out_dir: Path
    leads_geojson: Path
    leads_gpkg: Path
    change_tif: Path
    check_json: Path
    provenance_json: Path
    atlas_permits: Path
    atlas_existing: Path | None = None
    report: dict[str, Any] = field(default_factory=dict, compare=False)
    timings_s: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def alignment(self) -> dict[str, Any]:
        """The ``alignment`` section of the report."""
        section: dict[str, Any] = self.report.get("alignment", {})
        return section


def _tag_date(path: Path) -> str | None:
    """Survey date from the raster's tags (``SITEWATCH_SURVEY_DATE``, ``TIFFTAG_DATETIME``)."""
    with quiet_gdal_messages(), rasterio.open(path) as ds:
        tags = ds.tags()
    if tags.get("SITEWATCH_SURVEY_DATE"):
        return str(tags["SITEWATCH_SURVEY_DATE"])[:10]
    stamp = tags.get("TIFFTAG_DATETIME")
    if stamp and len(stamp) >= 10:
        return stamp[:10].replace(":", "-")
    return None


def _bounds_in(arr: xr.DataArray, crs: Any) -> BaseGeometry:
    geom = grid_bounds(arr)
    if CRS.from_user_input(arr.rio.crs) == CRS.from_user_input(crs):
        return geom
    (out,) = reproject_geometries([shapely.segmentize(geom, geom.length / 200)], arr.rio.crs, crs)
    return out


def _check_overlap(grid: xr.DataArray, other: xr.DataArray, grid_path: Path, path: Path) -> None:
    theirs = _bounds_in(other, grid.rio.crs)
    if grid_bounds(grid).intersection(theirs).area <= 0:
        raise DetectInputError(
            f"{path} does not overlap {grid_path} (bounds "
            f"{tuple(round(v) for v in theirs.bounds)} vs "
            f"{tuple(round(v) for v in grid_bounds(grid).bounds)} in {grid.rio.crs}); give the "
            "DSM and DTM of the same survey as the orthophoto"
        )


def _crop(arr: xr.DataArray, rows: slice, cols: slice) -> xr.DataArray:
    t = arr.rio.transform()
    out = arr.isel(y=rows, x=cols)
    return out.rio.write_transform(t * Affine.translation(cols.start, rows.start))


def _derived_dtm(dsm: xr.DataArray, grid: xr.DataArray, params: DetectParams) -> xr.DataArray:
    """DTM derived from the DSM on its own grid, over the survey grid plus the ground window
    (lazily, chunk by chunk, for a dask-backed DSM)."""
    from change_detection.terrain import derive_dtm, derive_dtm_lazy

    win = grid_window(
        dsm.rio.transform(),
        (dsm.sizes["y"], dsm.sizes["x"]),
        _bounds_in(grid, dsm.rio.crs).bounds,
        params.ground_window_m,
    )
    assert win is not None  # the overlap was checked
    near = _crop(dsm, *win)
    t = near.rio.transform()
    gsd = (abs(t.a) + abs(t.e)) / 2
    log.info("deriving the DTM from the DSM (%dx%d px at %.3f m)", *near.shape, gsd)
    if hasattr(near.data, "dask"):
        ground = derive_dtm_lazy(near.data, gsd, params)
    else:
        ground = derive_dtm(np.asarray(near.values, np.float32), gsd, params)
    return near.copy(data=ground).rename("dtm")


@dataclass
class _Survey:
    """What the first stage of :func:`run_check` opened and checked: the survey grid
    (orthophoto, cropped to the site), the DSM and DTM on their own grids, the atlas, the
    dates and the assumptions made so far (later stages add theirs)."""

    paths: dict[str, Path]
    hashes: dict[str, str]
    ortho: Orthophoto
    rgb: xr.DataArray
    valid: xr.DataArray
    nir: xr.DataArray | None
    dsm: xr.DataArray
    dtm: xr.DataArray | None
    permits: list[Permit]
    existing: list[ExistingBuilding]
    site: BaseGeometry | None
    atlas_date: dt.date | None
    survey_date: dt.date | None
    assumptions: list[str]

    @property
    def grid(self) -> xr.DataArray:
        """The grid of the check (the orthophoto's, cropped to the site)."""
        return self.rgb


@dataclass(frozen=True)
class _Found:
    """What the classify and vectorize stages found: the change result, the structures
    (height gains over the DTM), the height losses dropped and the existing buildings that
    no longer stand (with their summary)."""

    result: ChangeResult
    structures: list[ChangeObject]
    dropped: int
    missing: list[ChangeObject]
    existing_summary: dict[str, Any]


@bounded_memory
def run_check(
    ortho: str | os.PathLike[str],
    dsm: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    permits: str | os.PathLike[str],
    dtm: str | os.PathLike[str] | None = None,
    existing: str | os.PathLike[str] | None = None,
    site: str | os.PathLike[str] | None = None,
    survey_date: str | dt.date | None = None,
    atlas_date: str | dt.date | None = None,
    params: DetectParams = DetectParams(),  # noqa: B008 (frozen, immutable default)
    align: bool = True,
    max_offset_m: float = 3.0,
    epoch: Mapping[str, Any] | None = None,
) -> CheckResult:
    """Check one survey against the permit atlas and write the leads and their evidence.

    Six stages, each one function and one named stage of :mod:`survey.progress`: open and
    check the inputs (:func:`_open_survey`), ground model (:func:`_ground_on_grid`), align
    the atlas (:func:`_align`), classify (:func:`_classify`), vectorize and check permits
    (:func:`_check_permits`), write products and provenance (:func:`_write_products`,
    :func:`_provenance`).

    Parameters
    ----------
    ortho : path
        Orthophoto of the survey (its grid is the grid of the check).
    dsm : path
        DSM of the survey in metres, with nodata.
    out_dir : path
        Output folder (created).
    permits : path
        Permit footprints (any vector format and CRS; see :mod:`survey.permits`).
    dtm : path, optional
        DTM of the survey in the DSM's vertical frame (OpenDroneMap's ``dtm.tif``); derived
        from the DSM when not given.
    existing : path, optional
        Layer of legally existing buildings (see :mod:`survey.buildings`).
    site : path, optional
        Site boundary (its polygons; a self-intersecting ring is repaired, one warning line:
        :func:`survey.sites.read_site_area`); the check is cropped to it and leads outside it
        are dropped.
    survey_date : ISO 8601 date, optional
        Date of the survey (default: the orthophoto's tags); permits that start after it do
        not cover anything.
    atlas_date : ISO 8601 date, optional
        Date of the atlas; permits that ended before it do not cover anything (the buildings
        they allowed are in the existing-buildings layer by then).
    params : DetectParams
        ``coregister`` is ignored (one survey, one grid).
    align : bool
        Measure and remove the offset between the atlas and the survey (default True).
    max_offset_m : float
        Largest offset the alignment looks for, in metres.
    epoch : mapping, optional
        The record of the epoch the rasters were taken from
        (:meth:`survey.ingest.odm.SurveyEpoch.record`: an OpenDroneMap project's version and
        options, ...), kept in ``provenance.json`` as ``epoch``.

    Returns
    -------
    CheckResult

    Raises
    ------
    InputFileError, RasterFormatError, NotGeoreferencedError
        An input cannot be read.
    DetectInputError
        The DSM or DTM does not overlap the orthophoto, or the site lies outside it.
    PermitError
        The permits or existing buildings cannot be used, or a date cannot be read.
    """
    started = dt.datetime.now(dt.UTC)
    clock = Clock()
    out = Path(out_dir)
    optional = {"dtm": dtm, "permits": permits, "existing": existing, "site": site}
    paths = {"ortho": Path(ortho), "dsm": Path(dsm)}
    paths.update({role: Path(p) for role, p in optional.items() if p is not None})
    with stage("open and check the inputs"):
        survey = _open_survey(paths, params, clock, survey_date, atlas_date)
    with stage("ground model"):
        surfaces = _ground_on_grid(survey, params)
        clock.lap("dtm")
    with stage("align the atlas"):
        alignment, n_on = _align(survey, surfaces, params, align, max_offset_m)
        clock.lap("align")
    with stage("classify", dask_tasks=True):
        result = _classify(survey, surfaces, params, out)
        clock.lap("detect")
    with stage("vectorize and check permits"):
        found, leads = _check_permits(survey, surfaces, result, params)
        clock.lap("leads")
    with stage("write products and provenance"):
        report = _report(survey, alignment, n_on, found, leads)
        outputs = _write_products(out, survey, leads, report)
        clock.lap("write")
        provenance = _provenance(survey, result, report, leads, outputs, params, epoch)
        provenance["parameters"].update(align=align, max_offset_m=max_offset_m)
        provenance["timings_s"] = clock.laps
        provenance["started"] = started.isoformat()
        provenance["finished"] = dt.datetime.now(dt.UTC).isoformat()
        provenance_json = write_json(out / "provenance.json", provenance)
    log.info("%d leads written to %s", len(leads), out)
    return CheckResult(
        leads=tuple(leads),
        out_dir=out,
        leads_geojson=outputs["leads.geojson"],
        leads_gpkg=outputs["leads.gpkg"],
        change_tif=outputs["change.tif"],
        check_json=outputs["check.json"],
        provenance_json=provenance_json,
        atlas_permits=outputs["atlas_permits.geojson"],
        atlas_existing=outputs.get("atlas_existing.geojson"),
        report=report,
        timings_s=clock.laps,
    )


def _open_survey(
    paths: dict[str, Path],
    params: DetectParams,
    clock: Clock,
    survey_date: str | dt.date | None,
    atlas_date: str | dt.date | None,
) -> _Survey:
    """Stage 1: open (and so validate) every input, check the DSM and DTM overlap the
    orthophoto, read the atlas, hash the files, settle the dates and crop to the site."""
    assumptions: list[str] = []
    n_px = _pixel_count(paths["ortho"])
    chunks = params.chunk_px if n_px > min(LARGE_PX, 4 * params.chunk_px**2) else None
    ortho_read = read_orthophoto(
        paths["ortho"], chunks, role="orthophoto", grey="replicate", log_assumptions=False
    )
    ortho_read.log_assumptions()
    assumptions += [f"{paths['ortho']}: {a}" for a in ortho_read.assumptions]
    rgb, valid, nir = ortho_read.rgb, ortho_read.valid, ortho_read.nir
    dsm_native = open_dsm(paths["dsm"], chunks=chunks)
    dtm_native = open_dsm(paths["dtm"], chunks=chunks) if "dtm" in paths else None
    _check_overlap(rgb, dsm_native, paths["ortho"], paths["dsm"])
    if dtm_native is not None:
        _check_overlap(rgb, dtm_native, paths["ortho"], paths["dtm"])
    crs = rgb.rio.crs
    permit_list = read_permits(paths["permits"], crs)
    existing_list = (
        read_existing_buildings(paths["existing"], crs, assumptions) if "existing" in paths else []
    )
    clock.lap("open")
    with ThreadPoolExecutor(min(len(paths), os.cpu_count() or 2)) as pool:
        hashes = dict(zip(paths, pool.map(sha256_file, paths.values()), strict=True))
    clock.lap("hash")
    start, end = _dates(survey_date, atlas_date, paths["ortho"], assumptions)
    site_geom: BaseGeometry | None = None
    if "site" in paths:
        site_geom, win = _site(paths["site"], rgb)
        rgb, valid = _crop(rgb, *win), _crop(valid, *win)
        nir = None if nir is None else _crop(nir, *win)
    return _Survey(
        paths=paths,
        hashes=hashes,
        ortho=ortho_read,
        rgb=rgb,
        valid=valid,
        nir=nir,
        dsm=dsm_native,
        dtm=dtm_native,
        permits=permit_list,
        existing=existing_list,
        site=site_geom,
        atlas_date=start,
        survey_date=end,
        assumptions=assumptions,
    )


def _ground_on_grid(survey: _Survey, params: DetectParams) -> _Surfaces:
    """Stage 2: ``(rgb, dsm, dtm)`` on the survey grid; the DTM derived from the DSM when
    none was given (an assumption of the report)."""
    dtm_native = survey.dtm
    if dtm_native is None:
        dtm_native = _derived_dtm(survey.dsm, survey.grid, params)
        _assume(survey.assumptions, "no --dtm: the DTM was derived from the DSM")
    bilinear = Resampling.bilinear
    return (
        survey.grid,
        onto_reference_grid(survey.dsm, survey.grid, resampling=bilinear, fill=np.nan),
        onto_reference_grid(dtm_native, survey.grid, resampling=bilinear, fill=np.nan),
    )


def _align(
    survey: _Survey,
    surfaces: _Surfaces,
    params: DetectParams,
    align: bool,
    max_offset_m: float,
) -> tuple[dict[str, Any], int]:
    """Stage 3: measure the atlas offset against the walls of the survey and, when it is
    well determined, move the atlas by it (``survey.permits`` and ``survey.existing``);
    returns the ``alignment`` section of the report and the number of atlas outlines that
    lie on the survey."""
    survey_extent = grid_bounds(survey.grid)
    n_on = sum(p.geometry.intersects(survey_extent) for p in survey.permits)
    n_on += sum(b.geometry.intersects(survey_extent) for b in survey.existing)
    if n_on == 0:
        _assume(
            survey.assumptions,
            f"{survey.paths['permits']}: no permit or existing-building outline lies on the "
            f"survey (survey bounds {tuple(round(v) for v in survey_extent.bounds)} in "
            f"{survey.grid.rio.crs}); every structure becomes a lead. An atlas traced on "
            "Chinese web maps (GCJ-02, BD-09) lies a few hundred metres off: reproject it to "
            "CGCS2000",
        )
    if not align:
        return {"enabled": False, "applied": False, "summary": "--no-align"}, n_on
    alignment, offset = align_atlas(survey.permits, survey.existing, surfaces, params, max_offset_m)
    if offset is not None:
        survey.permits, survey.existing = translate_atlas(survey.permits, survey.existing, *offset)
        log.info("atlas moved by (%+.2f, %+.2f) m: %s", *offset, alignment.get("summary"))
    else:
        _assume(
            survey.assumptions,
            f"the atlas offset was not well determined ({alignment.get('summary', '')}); "
            "the atlas is used as given",
        )
    return alignment, n_on


def _classify(
    survey: _Survey, surfaces: _Surfaces, params: DetectParams, out: Path
) -> ChangeResult:
    """Stage 4: :func:`change_detection.detect.detect_changes` with the DTM as the "before"
    surface and the DSM as the "after" one (same orthophoto, same grid), writing each
    chunk's classes into ``out/change.tif``."""
    rgb, dsm_on_grid, dtm_on_grid = surfaces
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "change.tif") as tmp:
        shape = (rgb.sizes["y"], rgb.sizes["x"])
        new_change_tif(tmp, shape, rgb.rio.transform(), rgb.rio.crs)
        result = detect_changes(
            Epoch(rgb=rgb, valid=survey.valid, dsm=dtm_on_grid, nir=survey.nir),
            Epoch(rgb=rgb, valid=survey.valid, dsm=dsm_on_grid, nir=survey.nir),
            params,
            codes_sink=WindowWriter(tmp),
            sink_lock=threading.Lock(),
        )
        finish_change_tif(tmp, result.mode)
    return result


def _check_permits(
    survey: _Survey,
    surfaces: _Surfaces,
    result: ChangeResult,
    params: DetectParams,
) -> tuple[_Found, list[Lead]]:
    """Stage 5: the structures (height gains, as ``new`` with their height above ground)
    and the existing buildings that no longer stand, inside the site, as leads checked
    against the (aligned) atlas."""
    structures = [
        dataclasses.replace(o, kind="new", height_m=o.height_gain_m)
        for o in result.objects
        if o.kind != "removed"
    ]
    dropped = len(result.objects) - len(structures)
    missing, existing_summary = missing_buildings(survey.existing, surfaces, params)
    objects: list[ChangeObject] = structures + missing
    if survey.site is not None:
        objects = [o for o in objects if o.geometry.intersects(survey.site)]
    leads = build_leads(
        objects,
        survey.permits,
        crs=result.crs,
        params=params,
        before_date=survey.atlas_date,
        after_date=survey.survey_date,
        input_hashes=survey.hashes,
        existing=survey.existing,
        first_survey=True,
    )
    return _Found(result, structures, dropped, missing, existing_summary), leads


def _report(
    survey: _Survey, alignment: dict[str, Any], n_on: int, found: _Found, leads: list[Lead]
) -> dict[str, Any]:
    """The content of ``check.json``."""
    by_class: dict[str, int] = {}
    for lead in leads:
        by_class[lead.lead_class] = by_class.get(lead.lead_class, 0) + 1
    given_dtm = "dtm" in survey.paths
    return {
        "command": "check",
        "survey_date": survey.survey_date,
        "atlas_date": survey.atlas_date,
        "dtm": {
            "source": "file" if given_dtm else "derived",
            "path": str(survey.paths["dtm"].resolve()) if given_dtm else None,
            "method": None if given_dtm else "change_detection.terrain.derive_dtm",
        },
        "alignment": alignment,
        "atlas": {
            "permits": len(survey.permits),
            "existing_buildings": found.existing_summary if "existing" in survey.paths else None,
            "outlines_on_survey": n_on,
        },
        "structures": {"n": len(found.structures), "height_losses_dropped": found.dropped},
        "leads": {"n": len(leads), "by_class": by_class},
        "assumptions": survey.assumptions,
    }


def _write_products(
    out: Path, survey: _Survey, leads: list[Lead], report: dict[str, Any]
) -> dict[str, Path]:
    """Stage 6 (first half): the leads, the atlas as the check used it (WGS84) and
    ``check.json`` beside the ``change.tif`` stage 4 wrote; every product by name."""
    crs = survey.grid.rio.crs
    leads_geojson, leads_gpkg = write_leads(out, leads)
    atlas_permits = _write_atlas(
        out / "atlas_permits.geojson",
        [p.geometry for p in survey.permits],
        [_permit_props(p) for p in survey.permits],
        crs,
    )
    atlas_existing = None
    if "existing" in survey.paths:
        atlas_existing = _write_atlas(
            out / "atlas_existing.geojson",
            [b.geometry for b in survey.existing],
            [
                {"building_id": b.building_id, "height_m": b.height_m, "floors": b.floors}
                for b in survey.existing
            ],
            crs,
        )
    check_json = write_json(out / "check.json", report)
    outputs = {
        "leads.geojson": leads_geojson,
        "leads.gpkg": leads_gpkg,
        "change.tif": out / "change.tif",
        "check.json": check_json,
        "atlas_permits.geojson": atlas_permits,
    }
    if atlas_existing is not None:
        outputs["atlas_existing.geojson"] = atlas_existing
    return outputs


def _provenance(
    survey: _Survey,
    result: ChangeResult,
    report: dict[str, Any],
    leads: list[Lead],
    outputs: dict[str, Path],
    params: DetectParams,
    epoch: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Stage 6 (second half): the content of ``provenance.json`` but its times and the
    alignment parameters."""
    alignment = report["alignment"]
    return {
        "software": {"name": "sitewatch", "version": __version__},
        "command": "check",
        "mode": result.mode,
        "inputs": {
            role: {
                "path": str(p.resolve()),
                "sha256": survey.hashes[role],
                **(survey.ortho.record() if role == "ortho" else {}),
            }
            for role, p in survey.paths.items()
        },
        "before_date": survey.atlas_date,
        "after_date": survey.survey_date,
        "parameters": params.as_dict(),
        "grid": {
            "crs": str(result.crs),
            "transform": list(result.transform)[:6],
            "shape": list(result.shape),
            "chunks": result.n_chunks,
        },
        "dtm": report["dtm"],
        "alignment": {
            k: alignment.get(k)
            for k in ("enabled", "applied", "dx_m", "dy_m", "residual_m", "n_used", "n_outlines")
        },
        "assumptions": survey.assumptions,
        "epoch": None if epoch is None else dict(epoch),
        "n_leads": len(leads),
        "outputs": {
            name: {"path": str(p.resolve()), "sha256": sha256_file(p)}
            for name, p in outputs.items()
        },
    }


def _dates(
    survey_date: str | dt.date | None,
    atlas_date: str | dt.date | None,
    ortho: Path,
    assumptions: list[str],
) -> tuple[dt.date | None, dt.date | None]:
    """(atlas date, survey date); the survey's from the orthophoto's tags when not given."""
    end = parse_date(survey_date, "--date") or parse_date(_tag_date(ortho), "survey date")
    start = parse_date(atlas_date, "--atlas-date")
    if end is None:
        _assume(
            assumptions,
            "no survey date (--date or the orthophoto's tags): permits are checked without dates",
        )
    if start is not None and end is not None and end < start:
        raise DetectInputError(
            f"the atlas date {start} is after the survey date {end}; check --atlas-date and --date"
        )
    return start, end


def _site(path: Path, grid: xr.DataArray) -> tuple[BaseGeometry, tuple[slice, slice]]:
    """The site boundary in the grid's CRS and the window of the grid that covers it."""
    # valid whatever the file holds (a self-intersecting ring is repaired, one warning)
    geom = read_site_area(path, grid.rio.crs)
    t, shape = grid.rio.transform(), (grid.sizes["y"], grid.sizes["x"])
    extent = grid_bounds(grid)
    win = grid_window(t, shape, geom.bounds, _SITE_MARGIN_M) if geom.intersects(extent) else None
    if win is None:
        raise DetectInputError(
            f"{path}: the site lies outside the orthophoto (site bounds "
            f"{tuple(round(v) for v in geom.bounds)}, raster bounds "
            f"{tuple(round(v) for v in extent.bounds)}); check the site file and its CRS"
        )
    return geom, win


def _assume(assumptions: list[str], text: str) -> None:
    """Record an assumption: one warning line and an entry of the report."""
    log.warning("%s", text)
    assumptions.append(text)


def _permit_props(p: Permit) -> dict[str, Any]:
    return {
        "permit_id": p.permit_id,
        "max_height_m": p.max_height_m,
        "floors": p.floors,
        "valid_from": p.valid_from.isoformat() if p.valid_from else None,
        "valid_to": p.valid_to.isoformat() if p.valid_to else None,
    }


def _write_atlas(
    path: Path, geometries: list[BaseGeometry], props: list[dict[str, Any]], crs: Any
) -> Path:
    return write_features(path, reproject_geometries(geometries, crs, 4326), props)


def _pixel_count(path: Path) -> int:
    """Pixels of a raster, 0 when it cannot be opened (open_orthophoto then says why)."""
    try:
        with quiet_gdal_messages(), rasterio.open(path) as ds:
            return int(ds.width) * int(ds.height)
    except OPEN_ERRORS:
        return 0
    except OSError:
        return 0
