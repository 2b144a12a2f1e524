"""Construction progress of permitted projects (规划"八录"): the stage each survey shows.

Chinese planning bureaus follow a permitted building through its recorded stages: setting-out
(放线), foundation (基础), ground level (±0), first floor, standard floors, top floor and
facade. For every permit in force on a survey's date, :func:`measure_progress` measures the
project on the survey's DSM — built height above the surrounding ground, storeys, the share of
the footprint built on or dug out, the built area beyond the footprint — and
:func:`classify_stage` names the stage reached:

=================  ============================================================================
``setting_out``    nothing built or dug on the footprint (the permit is in force, lines staked)
``foundation``     at least :data:`DUG_FRACTION` of the footprint dug more than ``DUG_M`` below
                   the ground around it (a foundation pit)
``ground_level``   a slab: at least half the footprint ``SLAB_M`` or more above the ground,
                   below half a storey (±0)
``first_floor``    one storey standing
``standard_floors`` between the first floor and the permitted number of floors
``top_floor``      the permitted floors (or, without a floor count, within a storey of the
                   permitted height) reached — or exceeded
``facade``         the top floor already reached in the previous survey and no storey added
                   since: the shell is done, the facade being finished (a DSM cannot see
                   cladding; the stage is read from the timeline)
=================  ============================================================================

A project that exceeds its permit — more storeys than permitted or taller than
``max_height_m`` (plus the detection's height tolerance), or a built area beyond the footprint
of at least ``min_area_m2`` — is flagged by :func:`flag_progress` as a lead of class
``over_height`` / ``outside_footprint`` with the stage in its reasons: a lead detection already
found for that permit gains the stage reason; otherwise a lead is made from the measurement
(detection compares with the last survey, so a project that exceeded earlier and stands
unchanged is found here again, and the registry matches it to its lead). A lead made here is
measured as it stands, as a first survey measures: ``kind`` ``new``, ``height_gain_m`` the
project's height above the ground around it, ``floors_added`` the floors beyond the permit.

Ground: the median of the DTM (else of the lower quarter of the DSM) over a ring
``RING_M`` metres wide around the footprint, so a pit in the DTM does not lower the ground of
the measurement. Heights are the 90th percentile of the DSM above it over the footprint.

The record of each survey (:class:`ProjectProgress`, ``progress.json``) is what the per-project
timeline of the review map shows (:mod:`maps.timeline`).

This module is longer than most (about 640 lines, a third of them docstrings): measuring a
project, naming its stage and flagging a stage beyond the permit share the thresholds and the
stage table above, and are kept in one module so that the rules can be read and checked as a
whole.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import shapely.geometry
from pyproj import CRS, Transformer
from rasterio.features import geometry_mask, shapes
from rasterio.windows import Window, from_bounds
from scipy import ndimage
from shapely.geometry.base import BaseGeometry

from change_detection.leads import Lead, with_unique_ids
from change_detection.params import DetectParams
from change_detection.permits import Permit, lead_id
from survey.outputs import write_json
from survey.rasters import open_checked

__all__ = [
    "DUG_FRACTION",
    "DUG_M",
    "RING_M",
    "SLAB_M",
    "STAGES",
    "STAGE_NAMES",
    "ProjectProgress",
    "classify_stage",
    "flag_progress",
    "measure_progress",
    "read_progress",
    "write_progress",
]

log = logging.getLogger(__name__)

STAGES: tuple[str, ...] = (
    "setting_out",
    "foundation",
    "ground_level",
    "first_floor",
    "standard_floors",
    "top_floor",
    "facade",
)
"""The recorded stages, in the order a project reaches them."""

STAGE_NAMES: Mapping[str, str] = {
    "setting_out": "setting-out (放线)",
    "foundation": "foundation (基础)",
    "ground_level": "ground level (±0)",
    "first_floor": "first floor (首层)",
    "standard_floors": "standard floors (标准层)",
    "top_floor": "top floor (顶层)",
    "facade": "facade (立面)",
}
"""How reasons and the timeline name each stage."""

RING_M = 4.0
"""Width of the ring around a footprint whose ground the project is measured from, metres."""
DUG_M = 0.5
"""Depth below the ground that counts as dug, metres."""
DUG_FRACTION = 0.25
"""Share of the footprint dug that makes a foundation pit."""
SLAB_M = 0.3
"""Height above the ground that counts as a slab at ground level, metres."""
FOOTPRINT_TOLERANCE_M = 0.5
"""Margin beyond a footprint not counted as built outside it (as detection's), metres."""
_BUILT_FRACTION = 0.25  # share of the footprint at half a storey or more: a storey stands
_HEIGHT_PERCENTILE = 90.0


@dataclass(frozen=True)
class ProjectProgress:
    """A permitted project as one survey shows it.

    Attributes
    ----------
    permit_id : str
    date : str
        Survey date (ISO 8601).
    stage : str
        One of :data:`STAGES`.
    height_m : float
        Built height above the surrounding ground (90th percentile over the footprint), m.
    storeys : int
        ``round(height_m / storey_height_m)`` (0 below half a storey).
    permitted_floors : int or None
    permitted_height_m : float or None
    built_fraction : float
        Share of the footprint at half a storey or more above the ground.
    dug_fraction : float
        Share of the footprint more than :data:`DUG_M` below it.
    outside_m2 : float
        Built area (at ``min_height_m`` or more) joined to the project beyond its footprint
        (after the footprint tolerance), m².
    exceeds : tuple of str
        Lead classes the project earns: ``over_height``, ``outside_footprint``.
    reasons : tuple of str
        The stage and each excess in words.
    permit_valid_from : str or None
        Start of the permit version in force (an amendment is a new version).
    lead_ids : tuple of str
        Detection ids of the leads that carry the stage (filled by :func:`flag_progress`).
    outside_geometry : shapely geometry or None
        The built area beyond the footprint, in the CRS of the permits (not in
        ``progress.json``).
    """

    permit_id: str
    date: str
    stage: str
    height_m: float
    storeys: int
    permitted_floors: int | None
    permitted_height_m: float | None
    built_fraction: float
    dug_fraction: float
    outside_m2: float
    exceeds: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    permit_valid_from: str | None = None
    lead_ids: tuple[str, ...] = ()
    outside_geometry: BaseGeometry | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "outside_geometry"
        }
        for key in ("exceeds", "reasons", "lead_ids"):
            out[key] = list(out[key])
        for key in ("height_m", "built_fraction", "dug_fraction", "outside_m2"):
            out[key] = round(float(out[key]), 2)
        out["stage_name"] = STAGE_NAMES[self.stage]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProjectProgress:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in names}
        for key in ("exceeds", "reasons", "lead_ids"):
            values[key] = tuple(values.get(key) or ())
        return cls(**values)


def classify_stage(
    *,
    height_m: float,
    built_fraction: float,
    dug_fraction: float,
    slab_fraction: float,
    permitted_floors: int | None,
    permitted_height_m: float | None,
    storey_height_m: float = 3.0,
    previous: ProjectProgress | None = None,
) -> tuple[str, int]:
    """The stage reached and the storeys standing (module docstring for the rules).

    Parameters
    ----------
    height_m : float
        Built height above the surrounding ground, m.
    built_fraction, dug_fraction, slab_fraction : float
        Shares of the footprint at half a storey or more, dug more than :data:`DUG_M`, and at
        :data:`SLAB_M` or more above the ground.
    permitted_floors, permitted_height_m : int, float or None
        The permit's limits.
    storey_height_m : float
    previous : ProjectProgress, optional
        The project in the previous survey (for ``facade``).

    Returns
    -------
    (str, int)
        The stage (one of :data:`STAGES`) and the storeys.

    Examples
    --------
    >>> classify_stage(height_m=6.4, built_fraction=0.9, dug_fraction=0.0, slab_fraction=0.9,
    ...                permitted_floors=5, permitted_height_m=None)
    ('standard_floors', 2)
    >>> classify_stage(height_m=0.0, built_fraction=0.0, dug_fraction=0.8, slab_fraction=0.0,
    ...                permitted_floors=5, permitted_height_m=None)
    ('foundation', 0)
    """
    storeys = round(height_m / storey_height_m) if height_m >= 0.5 * storey_height_m else 0
    if built_fraction < _BUILT_FRACTION or storeys == 0:
        if dug_fraction >= DUG_FRACTION:
            return "foundation", 0
        if slab_fraction >= 0.5:
            return "ground_level", 0
        return "setting_out", 0
    if permitted_floors is not None:
        top = storeys >= permitted_floors
    elif permitted_height_m is not None:
        top = height_m >= permitted_height_m - storey_height_m
    else:
        top = False
    if top:
        if (
            previous is not None
            and previous.stage in ("top_floor", "facade")
            and previous.storeys == storeys
        ):
            return "facade", storeys
        return "top_floor", storeys
    if storeys <= 1:
        return "first_floor", storeys
    return "standard_floors", storeys


def _window(ds: Any, geom: BaseGeometry, margin: float) -> Window:
    w, s, e, n = geom.bounds
    win = from_bounds(w - margin, s - margin, e + margin, n + margin, ds.transform)
    win = win.round_offsets().round_lengths()
    return win.intersection(Window(0, 0, ds.width, ds.height))


def _read(path: Path, role: str, geom: BaseGeometry, margin: float) -> tuple[np.ndarray, Any]:
    """The raster in a window around ``geom`` (NaN for nodata) and the window's transform."""
    with open_checked(path, role) as ds:
        win = _window(ds, geom, margin)
        data = ds.read(1, window=win, masked=True).astype(np.float32).filled(np.nan)
        return data, ds.window_transform(win)


def _to_crs(geom: BaseGeometry, src: CRS, dst: CRS) -> BaseGeometry:
    if src == dst:
        return geom
    tr = Transformer.from_crs(src, dst, always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def measure_progress(
    dsm: str | os.PathLike[str],
    permits: Sequence[Permit],
    *,
    date: str | dt.date,
    crs: CRS | str | int,
    dtm: str | os.PathLike[str] | None = None,
    params: DetectParams = DetectParams(),  # noqa: B008 (frozen, immutable default)
    previous: Mapping[str, ProjectProgress] | None = None,
) -> list[ProjectProgress]:
    """Measure each permitted project on a survey and name its stage (module docstring).

    Parameters
    ----------
    dsm : path
        The survey's DSM (metres), opened read-only.
    permits : sequence of Permit
        The permits in force on ``date`` (one version each), footprints in ``crs``.
    date : date or ISO 8601 text
    crs : CRS
        CRS of the permit footprints.
    dtm : path, optional
        The survey's DTM (the ground of the ring); without it the lower quarter of the DSM
        over the ring.
    params : DetectParams
        ``storey_height_m``, ``min_height_m``, ``min_area_m2``, ``height_tolerance_m``.
    previous : mapping of str to ProjectProgress, optional
        Each project in the previous survey, by permit id.

    Returns
    -------
    list of ProjectProgress
        One per permit whose footprint lies on the DSM, by permit id.
    """
    day = dt.date.fromisoformat(str(date)) if not isinstance(date, dt.date) else date
    with open_checked(dsm, "DSM") as ds:
        raster_crs = CRS.from_user_input(ds.crs)
        res = abs(ds.transform.a)
        extent = shapely.box(*ds.bounds)
    out: list[ProjectProgress] = []
    src = CRS.from_user_input(crs)
    for permit in sorted(permits, key=lambda p: p.permit_id):
        foot = _to_crs(permit.geometry, src, raster_crs)
        if not foot.intersects(extent):
            continue
        measured = _height_above_ground(Path(dsm), None if dtm is None else Path(dtm), foot)
        if measured is None:
            continue
        above, inside, transform = measured
        values = above[inside & np.isfinite(above)]
        if values.size == 0:
            continue
        height = max(float(np.percentile(values, _HEIGHT_PERCENTILE)), 0.0)
        storey = params.storey_height_m
        built = float(np.mean(values >= 0.5 * storey))
        dug = float(np.mean(values <= -DUG_M))
        slab = float(np.mean(values >= SLAB_M))
        before = (previous or {}).get(permit.permit_id)
        stage, storeys = classify_stage(
            height_m=height,
            built_fraction=built,
            dug_fraction=dug,
            slab_fraction=slab,
            permitted_floors=permit.floors,
            permitted_height_m=permit.max_height_m,
            storey_height_m=storey,
            previous=before,
        )
        outside, outside_geom = _outside_area(above, inside, foot, transform, params, res)
        exceeds, excess_reasons = _beyond_permit(permit, storeys, height, outside, params)
        out.append(
            ProjectProgress(
                permit_id=permit.permit_id,
                date=day.isoformat(),
                stage=stage,
                height_m=height,
                storeys=storeys,
                permitted_floors=permit.floors,
                permitted_height_m=permit.max_height_m,
                built_fraction=built,
                dug_fraction=dug,
                outside_m2=outside,
                exceeds=tuple(exceeds),
                reasons=(_stage_reason(permit, stage, storeys, height), *excess_reasons),
                permit_valid_from=None
                if permit.valid_from is None
                else permit.valid_from.isoformat(),
                outside_geometry=None
                if outside_geom is None
                else _to_crs(outside_geom, raster_crs, src),
            )
        )
    return out


def _height_above_ground(
    dsm: Path, dtm: Path | None, foot: BaseGeometry
) -> tuple[np.ndarray, np.ndarray, Any] | None:
    """The DSM above the ground around a footprint, in a window around it.

    Parameters
    ----------
    dsm, dtm : Path
        The survey's DSM and, optionally, DTM (metres).
    foot : BaseGeometry
        The footprint, in the rasters' CRS.

    Returns
    -------
    tuple of (ndarray, ndarray, Affine) or None
        Height above the ground (float32, metres, NaN for nodata; shape of the window), the
        footprint's mask (bool, same shape) and the window's transform; None when the
        footprint covers no pixel or the ring around it has no ground value. The ground is
        the median of the DTM over the ring (module docstring), else of the lower quarter of
        the DSM there (also when the DTM's window differs in shape).
    """
    margin = RING_M + FOOTPRINT_TOLERANCE_M + 20.0
    surface, transform = _read(dsm, "DSM", foot, margin)
    ground_src = surface
    if dtm is not None:
        ground_src, _ = _read(dtm, "DTM", foot, margin)
        if ground_src.shape != surface.shape:
            ground_src = surface
    shape = surface.shape
    inside = ~geometry_mask([foot], shape, transform, all_touched=False)
    ring_geom = foot.buffer(RING_M + FOOTPRINT_TOLERANCE_M).difference(
        foot.buffer(FOOTPRINT_TOLERANCE_M)
    )
    ring = ~geometry_mask([ring_geom], shape, transform, all_touched=False)
    ring_values = ground_src[ring & np.isfinite(ground_src)]
    if inside.sum() == 0 or ring_values.size == 0:
        return None
    if dtm is not None and ground_src is not surface:
        ground = float(np.median(ring_values))
    else:
        ground = float(np.median(ring_values[ring_values <= np.quantile(ring_values, 0.25)]))
    return surface - ground, inside, transform


def _beyond_permit(
    permit: Permit, storeys: int, height: float, outside: float, params: DetectParams
) -> tuple[list[str], list[str]]:
    """How a project exceeds its permit: the lead classes (``over_height``,
    ``outside_footprint``) and a reason line for each excess (storeys, metres, m² beyond
    the footprint); both empty for a project within its permit."""
    reasons: list[str] = []
    exceeds: list[str] = []
    over_floors = permit.floors is not None and storeys > permit.floors
    over_height = (
        permit.max_height_m is not None and height > permit.max_height_m + params.height_tolerance_m
    )
    if over_floors or over_height:
        exceeds.append("over_height")
        if over_floors:
            extra = storeys - (permit.floors or 0)
            reasons.append(
                f"{extra} floor{'s' if extra > 1 else ''} more than permit "
                f"{permit.permit_id} allows ({storeys} of {permit.floors})"
            )
        if over_height:
            reasons.append(
                f"{height:.1f} m above ground where permit {permit.permit_id} allows "
                f"{permit.max_height_m:.1f} m"
            )
    if outside >= params.min_area_m2:
        exceeds.append("outside_footprint")
        reasons.append(f"{outside:.0f} m² built beyond the footprint of permit {permit.permit_id}")
    return exceeds, reasons


def _stage_reason(permit: Permit, stage: str, storeys: int, height: float) -> str:
    allowed = (
        f"{permit.floors} floors permitted"
        if permit.floors is not None
        else (
            f"{permit.max_height_m:.1f} m permitted"
            if permit.max_height_m is not None
            else "no limit recorded"
        )
    )
    return (
        f"construction stage of permit {permit.permit_id}: {STAGE_NAMES[stage]}, {storeys} "
        f"floor{'s' if storeys != 1 else ''} ({height:.1f} m) standing, {allowed}"
    )


def _outside_area(
    above: np.ndarray,
    inside: np.ndarray,
    foot: BaseGeometry,
    transform: Any,
    params: DetectParams,
    res: float,
) -> tuple[float, BaseGeometry | None]:
    """Built area joined to the project's structure beyond its footprint (plus tolerance):
    its area (m²) and outline (raster CRS; None when there is none)."""
    built = np.nan_to_num(above, nan=0.0) >= params.min_height_m
    labels, n = ndimage.label(built)
    if n == 0:
        return 0.0, None
    touching = np.unique(labels[inside & built])
    touching = touching[touching > 0]
    if touching.size == 0:
        return 0.0, None
    project = np.isin(labels, touching)
    tolerated = ~geometry_mask(
        [foot.buffer(FOOTPRINT_TOLERANCE_M)], above.shape, transform, all_touched=True
    )
    beyond = project & ~tolerated
    count = int(np.count_nonzero(beyond))
    if count == 0:
        return 0.0, None
    polygons = [
        shapely.geometry.shape(g)
        for g, v in shapes(beyond.astype(np.uint8), mask=beyond, transform=transform)
        if v == 1
    ]
    return count * res * res, shapely.unary_union(polygons)


def flag_progress(
    leads: Sequence[Lead],
    progress: Sequence[ProjectProgress],
    permits: Sequence[Permit],
    *,
    crs: CRS | str | int,
    before_date: str | None,
    after_date: str | None,
    input_hashes: Mapping[str, str] | None = None,
) -> tuple[list[Lead], list[ProjectProgress]]:
    """Put each project's stage into the leads its excess earns (module docstring).

    Parameters
    ----------
    leads : sequence of Lead
        What detection found (WGS84).
    progress : sequence of ProjectProgress
        From :func:`measure_progress`.
    permits : sequence of Permit
        The same permits, footprints in ``crs``.
    crs : CRS
    before_date, after_date : str or None
        The dates of the leads made here (those of the detection).
    input_hashes : mapping, optional
        Recorded in leads made here.

    Returns
    -------
    (list of Lead, list of ProjectProgress)
        The leads (detection's, with stage reasons where they apply, and those made from the
        measurement), and the progress with ``lead_ids`` filled.
    """
    by_id = {p.permit_id: p for p in permits}
    to_wgs84 = Transformer.from_crs(CRS.from_user_input(crs), 4326, always_xy=True)

    def wgs84(geom: BaseGeometry) -> BaseGeometry:
        return shapely.transform(
            geom, lambda xy: np.column_stack(to_wgs84.transform(xy[:, 0], xy[:, 1]))
        )

    out = list(leads)
    made: list[Lead] = []
    updated_progress: list[ProjectProgress] = []
    for prog in progress:
        permit = by_id.get(prog.permit_id)
        ids: list[str] = []
        if permit is None or not prog.exceeds:
            updated_progress.append(prog)
            continue
        foot = wgs84(permit.geometry)
        for lead_class in prog.exceeds:
            found = [
                i
                for i, ld in enumerate(out)
                if ld.lead_class == lead_class
                and (prog.permit_id in ld.permit_ids or ld.geometry.intersects(foot))
            ]
            if found:
                for i in found:
                    ld = out[i]
                    extra = tuple(r for r in prog.reasons if r not in ld.reasons)
                    out[i] = dataclasses.replace(ld, reasons=(*ld.reasons, *extra))
                    ids.append(ld.lead_id)
                continue
            geometry = foot
            if lead_class == "outside_footprint" and prog.outside_geometry is not None:
                geometry = wgs84(prog.outside_geometry)
            made.append(
                Lead(
                    lead_id=lead_id(
                        lead_class,
                        geometry,
                        before_date=_day(before_date),
                        after_date=_day(after_date),
                    ),
                    lead_class=lead_class,
                    geometry=geometry,
                    reasons=prog.reasons,
                    area_m2=round(
                        prog.outside_m2
                        if lead_class == "outside_footprint"
                        else float(permit.geometry.area),
                        2,
                    ),
                    height_gain_m=round(prog.height_m, 2),
                    floors_added=None
                    if permit.floors is None
                    else max(prog.storeys - permit.floors, 0),
                    permit_ids=(prog.permit_id,),
                    score=0.6,
                    kind="new",  # measured as it stands, as a first survey measures
                    before_date=before_date,
                    after_date=after_date,
                    input_hashes=dict(input_hashes or {}),
                )
            )
        updated_progress.append(prog)
    if made:
        merged = with_unique_ids([*out, *made])
        made_ids = {ld.lead_id for ld in merged[len(out) :]}
        out = merged
    else:
        made_ids = set()
    final: list[ProjectProgress] = []
    for prog in updated_progress:
        ids = [
            ld.lead_id
            for ld in out
            if any(
                r.startswith(f"construction stage of permit {prog.permit_id}:") for r in ld.reasons
            )
        ]
        final.append(dataclasses.replace(prog, lead_ids=tuple(ids)))
    if made_ids:
        log.info("progress: %d lead(s) made from the construction stage", len(made_ids))
    return out, final


def _day(value: str | None) -> dt.date | None:
    return None if value is None else dt.date.fromisoformat(value)


def write_progress(path: str | os.PathLike[str], progress: Iterable[ProjectProgress]) -> Path:
    """Write ``progress.json`` (atomically): ``{"projects": [...]}``."""
    return write_json(Path(path), {"projects": [p.to_dict() for p in progress]})


def read_progress(path: str | os.PathLike[str]) -> list[ProjectProgress]:
    """Read a ``progress.json`` written by :func:`write_progress`."""
    data = json.loads(Path(path).read_text())
    return [ProjectProgress.from_dict(d) for d in data.get("projects", [])]
