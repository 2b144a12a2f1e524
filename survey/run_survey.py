"""One survey of a registered site, from its files to leads in the registry (``sitewatch run``).

:func:`run_survey` chains what the other commands do one by one, for a site the registry
(:mod:`survey.registry`) knows:

1. **Inputs** are checked before anything is written: the site exists, the files can be
   opened (an OpenDroneMap project folder through :func:`survey.ingest.odm.find_epoch`).
2. **The survey is registered** (:meth:`Registry.register_survey`), which refuses in one line a
   survey that lies outside its site; its evidence case (``S<site>-<date>-<survey>``) files
   what follows. Its outputs go to ``OUT/<site folder>/<date>-s<survey id>/``.
3. **The flight** (``flight_log`` and ``images``), when given, is ingested and checked
   (:func:`survey.ingest.run_ingest`, ``ingest/``); its QC verdict (:func:`qc_verdict`) is the
   survey's. A flight alone (no orthophoto yet) ends there.
4. **Detection**: a first survey (no approved survey of the site before its date) is checked
   against the permit atlas the registry holds — the permit versions in force on the date and
   the existing buildings (:func:`survey.check.run_check`, ``check/``); a later one is compared
   with the last approved survey (:func:`survey.pipeline.run_detect`, ``detect/``). The atlas
   as handed to them is kept in ``inputs/``.
5. **Construction progress** of every permitted project (:mod:`survey.progress_stages`):
   the stage reached, and a stage beyond the permit as an ``over_height`` /
   ``outside_footprint`` lead with the stage in its reasons; recorded in the registry
   (:meth:`Registry.record_progress`) and in ``progress.json``. ``leads.geojson`` of the run
   folder holds the leads as recorded.
6. **Evidence**, when the registry has an evidence store: the survey's rasters (and the
   flight's log and photos) are added as originals of its case, the detection recorded as a
   derivation (:mod:`survey.evidence.wiring`), their SHA-256 kept as the survey's evidence.
7. **The review map** (``review/``) with the per-project timeline of the site, read from the
   registry (:func:`site_timeline`), drawn in the map and as ``review/timeline.html``
   (:mod:`maps.timeline`); an **evidence package** per lead (``packages/lead-<registry id>/``).
8. **The registry** records the leads last (:meth:`Registry.record_leads`: a structure seen
   before keeps its lead, one gone is proposed for closure, a dismissed one that grew
   reopens).

Everything written is listed in the survey's ``products`` and in ``run.json``; a detection
against an earlier survey also lists the after epoch co-registered onto the reference's grid
(``after_registered``, ``after_registered_dsm``), which the review map, the packages and the
case platform's chips show so that the outlines fit both images.

**Progress**: ``progress(message, fraction)``, when given, is called as each step starts
(:data:`STEP_FRACTIONS`: the share of the run done when the step starts, rising to 1.0 at
``done``; once per lead while the packages are built). **The heavy steps** may run on a
dask.distributed cluster: ``scheduler`` is handed to :func:`survey.pipeline.run_detect`
(the atlas check of a first survey runs in this process: one warning line says so).

**A run that fails leaves the registry as it was.** If any step after registration fails
(an unreadable raster, a detection error, a full disk, an interrupt) up to and including
recording the leads, the survey is discarded (:meth:`Registry.discard_survey`: the survey and
its progress rows are removed) and its run folder deleted; the error is raised as it was. The
custody ledger is append-only: it keeps the ``survey-register`` entry and gains one
``survey-discard`` entry with the error (and the originals already added under the survey's
case stay in the store, named by that entry). Packages are built before the leads are
recorded (in ``packages/.staged-N/``) and moved to ``packages/lead-<registry id>/`` after, so
that nothing that can fail for the data's sake follows the recording of the leads.

This module is longer than most (about 1,000 lines, a third of them docstrings): the steps of
one run and their order — which is what keeps a failed run out of the registry — are kept in
one place where they can be checked as a whole; the steps themselves live in their modules.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from change_detection.leads import Lead
from change_detection.params import DetectParams
from survey.errors import DetectInputError
from survey.outputs import write_json, write_leads
from survey.progress_stages import (
    STAGE_NAMES,
    STAGES,
    ProjectProgress,
    flag_progress,
    measure_progress,
    read_progress,
    write_progress,
)

if TYPE_CHECKING:
    from survey.evidence.wiring import CommandStore
    from survey.registry import LeadUpdate, Registry, SiteRecord, SurveyRecord

__all__ = [
    "STEP_FRACTIONS",
    "Progress",
    "RunLead",
    "SurveyRun",
    "qc_verdict",
    "run_survey",
    "site_timeline",
    "timeline_stages",
]

log = logging.getLogger(__name__)

#: Share of the site the photos must cover for a passing flight (below half: ``fail``).
QC_MIN_COVERED_PCT = 50.0

#: What :func:`run_survey` reports as a step starts: ``progress(message, fraction)``.
Progress = Callable[[str, float], None]

#: The steps of a run in order and the share of the run done when each starts (the
#: detection takes most of a run; the packages, about 10 s a lead, the next share).
STEP_FRACTIONS: dict[str, float] = {
    "register": 0.0,
    "ingest": 0.05,
    "detect": 0.15,
    "progress": 0.6,
    "evidence": 0.65,
    "map": 0.7,
    "packages": 0.75,
    "record": 0.95,
    "done": 1.0,
}


def _no_progress(message: str, fraction: float) -> None:
    """The progress callback of a run nobody watches."""


@dataclass(frozen=True)
class RunLead:
    """A lead of the run: the registry's id, what the registry did, what detection found."""

    lead_id: int
    action: str
    lead: Lead

    def to_dict(self) -> dict[str, Any]:
        ld = self.lead
        return {
            "lead_id": self.lead_id,
            "action": self.action,
            "detection_id": ld.lead_id,
            "class": ld.lead_class,
            "kind": ld.kind,
            "area_m2": round(ld.area_m2, 2),
            "height_gain_m": None if ld.height_gain_m is None else round(ld.height_gain_m, 2),
            "floors_added": ld.floors_added,
            "permit_ids": list(ld.permit_ids),
            "reasons": list(ld.reasons),
        }


@dataclass(frozen=True)
class SurveyRun:
    """What :func:`run_survey` did.

    Attributes
    ----------
    survey : SurveyRecord
        The survey as registered at the end (evidence, products, QC verdict).
    reference : str or None
        ``atlas`` (a first survey), ``survey`` (against ``reference_survey_id``), None (a
        flight without rasters: no detection).
    reference_survey_id : int or None
    out_dir : Path
        The survey's folder.
    leads : tuple of RunLead
        The leads detection found, with their registry ids.
    proposed_closure : tuple of int
        Registry leads whose structure this survey found gone.
    progress : tuple of ProjectProgress
        Each permitted project's stage.
    products : mapping of str to Path
    """

    survey: SurveyRecord
    reference: str | None
    reference_survey_id: int | None
    out_dir: Path
    leads: tuple[RunLead, ...] = ()
    proposed_closure: tuple[int, ...] = ()
    progress: tuple[ProjectProgress, ...] = ()
    products: Mapping[str, Path] = field(default_factory=dict)

    @property
    def survey_id(self) -> int:
        return self.survey.survey_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "survey_id": self.survey_id,
            "site": self.survey.site,
            "date": self.survey.date.isoformat(),
            "case": self.survey.case,
            "qc_verdict": self.survey.qc_verdict,
            "reference": self.reference,
            "reference_survey_id": self.reference_survey_id,
            "out_dir": str(self.out_dir),
            "leads": [ld.to_dict() for ld in self.leads],
            "proposed_closure": list(self.proposed_closure),
            "progress": [p.to_dict() for p in self.progress],
            "products": {k: str(v) for k, v in self.products.items()},
            "evidence": list(self.survey.evidence),
        }


def qc_verdict(report: Mapping[str, Any]) -> str:
    """The flight-QC verdict of an ingest report (``report.json`` of ``sitewatch ingest``).

    ``fail``: photos were given and none could be placed, or they cover less than
    :data:`QC_MIN_COVERED_PCT` of the site; ``warn``: coverage holes, flagged or unplaced
    photos, unmatched camera events or warnings; ``pass`` otherwise.
    """
    images = int(report.get("images") or 0)
    placed = int(report.get("images_placed") or 0)
    coverage = report.get("coverage") or {}
    site_cov = coverage.get("site") or {}
    covered = site_cov.get("covered_pct")
    if images and not placed:
        return "fail"
    if covered is not None and float(covered) < QC_MIN_COVERED_PCT:
        return "fail"
    if (
        report.get("coverage_holes")
        or (coverage.get("images_flagged") or 0) > 0
        or placed < images
        or (report.get("unmatched_camera_events") or 0) > 0
        or report.get("warnings")
    ):
        return "warn"
    return "pass"


@dataclass
class _Inputs:
    ortho: Path | None
    dsm: Path | None
    dtm: Path | None
    epoch: dict[str, Any] | None


def _inputs(
    ortho: str | os.PathLike[str] | None,
    dsm: str | os.PathLike[str] | None,
    dtm: str | os.PathLike[str] | None,
    odm: str | os.PathLike[str] | None,
    flight_log: str | os.PathLike[str] | None,
    images: str | os.PathLike[str] | None,
) -> _Inputs:
    """The rasters of the survey, checked (nothing is written)."""
    from survey.rasters import open_checked

    if odm is not None and ortho is not None:
        raise DetectInputError(f"{odm}: give the survey as --odm or as --ortho, not both")
    if odm is None and ortho is None and flight_log is None and images is None:
        raise DetectInputError(
            "no survey given: give --ortho (with --dsm), --odm DIR or a flight (--log, --images)"
        )
    if (flight_log is None) != (images is None):
        given = "--log" if flight_log is not None else "--images"
        raise DetectInputError(
            f"{flight_log or images}: a flight is its log and its photos; {given} needs "
            f"{'--images' if given == '--log' else '--log'} too"
        )
    if odm is not None:
        from survey.ingest.odm import find_epoch

        epoch = find_epoch(odm, dsm=dsm, dtm=dtm)
        if epoch.dsm is None:
            raise DetectInputError(
                f"{odm}: the project has no DSM; run OpenDroneMap with --dsm or give --dsm FILE"
            )
        return _Inputs(epoch.ortho, epoch.dsm, epoch.dtm, epoch.record())
    if ortho is None:
        return _Inputs(None, None, None, None)
    if dsm is None:
        raise DetectInputError(
            f"{ortho}: the survey needs its DSM (heights find structures and storeys); give "
            "--dsm FILE"
        )
    paths = {"orthophoto": Path(ortho), "DSM": Path(dsm)}
    if dtm is not None:
        paths["DTM"] = Path(dtm)
    for role, p in paths.items():
        with open_checked(p, role):
            pass
    return _Inputs(Path(ortho), Path(dsm), None if dtm is None else Path(dtm), None)


def _write_layer(path: Path, features: Sequence[tuple[BaseGeometry, Mapping[str, Any]]]) -> Path:
    """A GeoJSON layer (WGS84) of what the registry holds, for the pipelines and the map."""
    collection = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": mapping(g), "properties": dict(p)} for g, p in features
        ],
    }
    return write_json(path, collection)


def _iso(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


def _progress_of_surveys(registry: Registry, site: str) -> list[dict[str, Any]]:
    """Every project in every survey of the site, by survey date: the registry's rows, and
    for surveys recorded before the registry held progress (schema 0003 and older) their
    ``progress.json``."""
    rows = [{**p.to_dict(), "stage_name": STAGE_NAMES[p.stage]} for p in registry.progress(site)]
    recorded = {r["survey_id"] for r in rows}
    for s in registry.surveys(site):
        path = s.products.get("progress")
        if s.survey_id in recorded or not path or not Path(path).is_file():
            continue
        for p in read_progress(path):
            rows.append({**p.to_dict(), "survey_id": s.survey_id, "approved": s.approved})
    rows.sort(key=lambda r: (r["date"], r["survey_id"], r["permit_id"]))
    return rows


def _previous_progress(registry: Registry, site: str, day: dt.date) -> dict[str, ProjectProgress]:
    """Each project in the latest earlier survey of the site that recorded its progress."""
    found: dict[str, ProjectProgress] = {}
    for row in _progress_of_surveys(registry, site):
        if dt.date.fromisoformat(row["date"]) < day:
            found[row["permit_id"]] = ProjectProgress.from_dict(row)  # later replace earlier
    return found


def site_timeline(registry: Registry, site: str) -> dict[str, list[dict[str, Any]]]:
    """The per-project timeline of a site: permit id → its progress in each survey, by date
    (the registry's rows, :meth:`Registry.progress`; :mod:`maps.timeline` draws it). Each row
    has the keys of ``progress.json`` plus ``survey_id`` and ``approved``."""
    timeline: dict[str, list[dict[str, Any]]] = {}
    for row in _progress_of_surveys(registry, site):
        timeline.setdefault(row["permit_id"], []).append(row)
    return timeline


def timeline_stages() -> list[tuple[str, str]]:
    """The stages in order as (key, label), as :mod:`maps.timeline` takes them."""
    return [(k, STAGE_NAMES[k]) for k in STAGES]


def run_survey(
    registry: Registry,
    site: str,
    date: str | dt.date,
    *,
    out_dir: str | os.PathLike[str] = ".",
    ortho: str | os.PathLike[str] | None = None,
    dsm: str | os.PathLike[str] | None = None,
    dtm: str | os.PathLike[str] | None = None,
    odm: str | os.PathLike[str] | None = None,
    flight_log: str | os.PathLike[str] | None = None,
    images: str | os.PathLike[str] | None = None,
    params: DetectParams = DetectParams(),  # noqa: B008 (frozen, immutable default)
    user: str | None = None,
    review_map: bool = True,
    packages: bool = True,
    progress: Progress | None = None,
    scheduler: str | None = None,
) -> SurveyRun:
    """Run one survey of a registered site end to end (module docstring).

    Parameters
    ----------
    registry : Registry
        Open registry; its evidence store (if any) receives the evidence.
    site : str
        The site's name in the registry.
    date : date or ISO 8601 text
        The survey date.
    out_dir : path
        Root of the outputs (the survey's folder is made under it).
    ortho, dsm, dtm : path, optional
        The survey's rasters (a DSM is required with an orthophoto).
    odm : path, optional
        An OpenDroneMap project folder instead (``dsm`` / ``dtm`` replace its own).
    flight_log, images : path, optional
        The flight: ingested and checked; with rasters, recorded as their source.
    params : DetectParams
    user : str, optional
        Who runs it (registry and ledger); default the registry's user.
    review_map, packages : bool
        Write the review map, and an evidence package per lead seen.
    progress : callable, optional
        ``progress(message, fraction)``, called as each step starts with the share of the
        run done (0 to 1, never falling; :data:`STEP_FRACTIONS`) and a line saying what
        runs, and with ``("done", 1.0)`` at the end; not called after a failure.
    scheduler : str, optional
        A dask.distributed scheduler address (``tcp://host:8786``, its workers seeing the
        input and output paths) or ``"local"``, for the chunked steps of a detection against
        an earlier survey (:func:`survey.pipeline.run_detect`); by default they run in this
        process.

    Returns
    -------
    SurveyRun

    Raises
    ------
    RegistryLookupError
        An unknown site.
    RegistryInputError
        A bad date, a survey outside its site.
    DetectInputError, InputFileError, RasterFormatError
        Inputs that cannot be used (nothing registered).
    """
    from survey.registry.core import parse_day
    from survey.registry.schedule import site_folder

    report = progress or _no_progress
    day = parse_day(date, "survey date")
    site_rec = registry.site(site)
    given = _inputs(ortho, dsm, dtm, odm, flight_log, images)
    reference = registry.last_approved_survey(site, before=day) if given.ortho is not None else None
    permits_wgs84 = registry.permits_at(site, day, crs=4326)
    if given.ortho is not None and reference is None and not permits_wgs84:
        raise DetectInputError(
            f"site {site!r} has no permit in force on {day}, and a first survey is checked "
            "against the permit atlas; import it with `sitewatch permits import FILE --site "
            f"{site!r}`"
        )
    report("registering the survey", STEP_FRACTIONS["register"])
    survey = registry.register_survey(
        site,
        day,
        ortho=given.ortho,
        dsm=given.dsm,
        dtm=given.dtm,
        flight_log=flight_log,
        images=images,
        user=user,
    )
    run_dir = Path(out_dir) / site_folder(site_rec.name, site_rec.site_id)
    run_dir = run_dir / f"{day.isoformat()}-s{survey.survey_id}"
    # the topmost folder this run creates (removed again if the run fails)
    made = next((p for p in reversed([run_dir, *run_dir.parents]) if not p.exists()), None)
    job = _Job(
        registry,
        site_rec,
        survey,
        day,
        given,
        reference,
        run_dir,
        params,
        user,
        progress=report,
        scheduler=scheduler,
    )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        recorded = _run_until_recorded(
            job, permits_wgs84, flight_log, images, review_map=review_map, packages=packages
        )
    except BaseException as exc:
        _discard(job, exc, made)
        raise
    run = _finish(job, recorded)
    report("done", STEP_FRACTIONS["done"])
    return run


@dataclass(frozen=True)
class _Job:
    """What every step of one run needs."""

    registry: Registry
    site: SiteRecord
    survey: SurveyRecord
    day: dt.date
    given: _Inputs
    reference: SurveyRecord | None
    run_dir: Path
    params: DetectParams
    user: str | None
    progress: Progress = _no_progress
    scheduler: str | None = None

    def report(self, step: str, message: str) -> None:
        """Say that ``step`` (a key of :data:`STEP_FRACTIONS`) starts."""
        self.progress(message, STEP_FRACTIONS[step])


@dataclass
class _Recorded:
    """What a run has done when its leads are recorded (or when a flight alone is checked)."""

    run: SurveyRun | None = None
    products: dict[str, Path] = field(default_factory=dict)
    leads: list[Lead] = field(default_factory=list)
    progress: list[ProjectProgress] = field(default_factory=list)
    update: LeadUpdate | None = None
    ref_kind: str = "atlas"
    ref_id: int | None = None
    staged: dict[str, Path] = field(default_factory=dict)


def _discard(job: _Job, exc: BaseException, made: Path | None) -> None:
    """Undo a failed run: the survey out of the registry, the folders it made removed."""
    import shutil

    why = " ".join(str(exc).split()) or type(exc).__name__
    try:
        job.registry.discard_survey(
            job.survey.survey_id,
            reason=f"run failed: {type(exc).__name__}: {why}",
            user=job.user,
        )
    except Exception as undo:  # never hide the error that stopped the run
        log.error(
            "survey %d could not be discarded after its run failed (%s); discard it with "
            "`sitewatch surveys discard %d --reason TEXT`",
            job.survey.survey_id,
            " ".join(str(undo).split()),
            job.survey.survey_id,
        )
    if made is not None:
        shutil.rmtree(made, ignore_errors=True)


def _run_until_recorded(
    job: _Job,
    permits_wgs84: Sequence[Any],
    flight_log: str | os.PathLike[str] | None,
    images: str | os.PathLike[str] | None,
    *,
    review_map: bool,
    packages: bool,
) -> _Recorded:
    """Every step of a run up to and including recording its leads (module docstring)."""
    registry, survey = job.registry, job.survey
    done = _Recorded()
    products = done.products
    _write_inputs(job, permits_wgs84, products)
    cs = _command_store(registry, survey.case, job.user)
    evidence: list[str] = []
    verdict: str | None = None
    ingest = None
    if flight_log is not None and images is not None:
        ingest, verdict = _ingest_flight(job, flight_log, images, products, cs, evidence)
    if job.given.ortho is None:
        done.run = _flight_alone(job, products, evidence, verdict)
        return done
    result = _detect(job, done)
    _progress_and_leads(job, done, result)
    leads = done.leads
    if cs is not None:
        job.report("evidence", "adding the evidence to the store")
        evidence += _record_evidence(
            cs, result, done.ref_kind, job.given, job.site.risk, job.site.name, ingest
        )
        # kept at once: a run that fails from here on names them when it is discarded
        registry.update_survey(survey.survey_id, evidence=evidence)
    if review_map:
        job.report("map", "drawing the review map")
        products.update(
            _review(
                registry,
                job.site.name,
                job.run_dir,
                result,
                done.ref_kind,
                job.reference,
                job.given,
                leads,
                job.day,
            )
        )
    if packages and leads:
        done.staged = _packages(
            job.run_dir,
            result,
            done.ref_kind,
            job.reference,
            job.given,
            leads,
            survey.case,
            cs,
            job.progress,
        )
    registry.update_survey(
        survey.survey_id,
        evidence=evidence,
        products={k: str(v) for k, v in products.items()},
        qc_verdict=verdict,
    )
    job.report("record", f"recording {len(leads)} lead(s) in the registry")
    done.update = registry.record_leads(
        survey.survey_id,
        leads,
        reference=done.ref_kind,
        reference_survey_id=done.ref_id,
        user=job.user,
    )
    return done


def _write_inputs(job: _Job, permits_wgs84: Sequence[Any], products: dict[str, Path]) -> None:
    """The site, the permits in force and the existing buildings as the run hands them to
    the pipelines: GeoJSON layers in ``inputs/``, added to ``products``."""
    site_rec = job.site
    inputs_dir = job.run_dir / "inputs"
    products["site"] = _write_layer(
        inputs_dir / "site.geojson", [(site_rec.boundary, {"name": site_rec.name})]
    )
    products["permits"] = _write_layer(
        inputs_dir / "permits.geojson",
        [
            (
                p.geometry,
                {
                    "permit_id": p.permit_id,
                    "max_height_m": p.max_height_m,
                    "floors": p.floors,
                    "valid_from": _iso(p.valid_from),
                    "valid_to": _iso(p.valid_to),
                },
            )
            for p in permits_wgs84
        ],
    )
    existing = job.registry.existing_buildings(site_rec.name, crs=4326)
    if existing:
        products["existing"] = _write_layer(
            inputs_dir / "existing.geojson",
            [
                (
                    b.geometry,
                    {"building_id": b.building_id, "height_m": b.height_m, "floors": b.floors},
                )
                for b in existing
            ],
        )


def _ingest_flight(
    job: _Job,
    flight_log: str | os.PathLike[str],
    images: str | os.PathLike[str],
    products: dict[str, Path],
    cs: CommandStore | None,
    evidence: list[str],
) -> tuple[Any, str]:
    """Ingest and check the flight (``ingest/``); with an evidence store, its log and photos
    become originals of the case and their hashes are appended to ``evidence`` (and kept in
    the registry at once). Returns the ingest result and its QC verdict."""
    from survey.ingest import run_ingest

    job.report("ingest", "ingesting and checking the flight")
    ingest = run_ingest(
        job.run_dir / "ingest",
        log=flight_log,
        images=images,
        site=products["site"],
        dem=job.given.dtm,
    )
    verdict = qc_verdict(ingest.report)
    products["ingest"] = ingest.report_json
    if cs is not None:
        from survey.evidence.wiring import record_ingest

        items, _entry = record_ingest(cs, ingest, risk=job.site.risk, site=job.site.name)
        evidence += [it.sha256 for it in items]
        job.registry.update_survey(job.survey.survey_id, evidence=evidence)  # named if it fails
    return ingest, verdict


def _flight_alone(
    job: _Job, products: dict[str, Path], evidence: list[str], verdict: str | None
) -> SurveyRun:
    """End a run given a flight without an orthophoto: one warning line, the survey's
    products and QC verdict in the registry, no detection."""
    site, day = job.site.name, job.day
    log.warning(
        "%s %s: a flight without an orthophoto: ingested and checked (QC %s), no "
        "detection; run the photogrammetry and then `sitewatch run %s --date %s --odm DIR`",
        site,
        day,
        verdict,
        site,
        day,
    )
    record = job.registry.update_survey(
        job.survey.survey_id,
        evidence=evidence,
        products={k: str(v) for k, v in products.items()},
        qc_verdict=verdict,
    )
    return SurveyRun(record, None, None, job.run_dir, products=products)


def _detect(job: _Job, done: _Recorded) -> Any:
    """Check a first survey against the permit atlas (``check/``) or detect the changes since
    the reference survey (``detect/``); sets ``done.ref_kind`` / ``done.ref_id`` and adds the
    provenance (and the co-registered after epoch) to ``done.products``. Returns the
    pipeline's result."""
    given, day, products, reference = job.given, job.day, done.products, job.reference
    assert given.ortho is not None and given.dsm is not None
    result: Any
    if reference is None:
        from survey.check import run_check

        if job.scheduler:
            log.warning(
                "%s %s: a first survey is checked against the permit atlas in this process; "
                "the scheduler %s runs detections against an earlier survey",
                job.site.name,
                day,
                job.scheduler,
            )
        job.report("detect", "checking the survey against the permit atlas")
        result = run_check(
            given.ortho,
            given.dsm,
            job.run_dir / "check",
            permits=products["permits"],
            dtm=given.dtm,
            existing=products.get("existing"),
            site=products["site"],
            survey_date=day,
            params=job.params,
            epoch=given.epoch,
        )
        done.ref_kind, done.ref_id = "atlas", None
    else:
        from survey.pipeline import run_detect

        assert reference.ortho is not None
        job.report("detect", f"detecting changes since survey {reference.survey_id}")
        result = run_detect(
            reference.ortho,
            given.ortho,
            job.run_dir / "detect",
            before_dsm=reference.dsm,
            after_dsm=given.dsm,
            permits=products["permits"],
            site=products["site"],
            before_date=reference.date,
            after_date=day,
            params=job.params,
            scheduler=job.scheduler,
            epochs=None if given.epoch is None else {"after": given.epoch},
        )
        # the after epoch as detection saw it, on the reference's grid (maps, chips, packages)
        if result.after_registered is not None:
            products["after_registered"] = Path(result.after_registered)
        if result.after_registered_dsm is not None:
            products["after_registered_dsm"] = Path(result.after_registered_dsm)
        done.ref_kind, done.ref_id = "survey", reference.survey_id
    kind = "check" if done.ref_kind == "atlas" else "detect"
    products[f"{kind}_provenance"] = result.provenance_json
    return result


def _progress_and_leads(job: _Job, done: _Recorded, result: Any) -> None:
    """Measure each permitted project's stage, flag the stages beyond their permit as leads,
    and write ``progress.json`` and ``leads.geojson`` (the progress also to the registry);
    sets ``done.leads`` and ``done.progress``."""
    registry, site, day, given = job.registry, job.site.name, job.day, job.given
    assert given.dsm is not None
    reference = job.reference
    before_date = None if done.ref_kind == "atlas" or reference is None else reference.date
    job.report("progress", "measuring the construction progress of the permits")
    crs = _raster_crs(given.dsm)
    permits_grid = registry.permits_at(site, day, crs=crs)
    progress = measure_progress(
        given.dsm,
        permits_grid,
        date=day,
        crs=crs,
        dtm=given.dtm,
        params=job.params,
        previous=_previous_progress(registry, site, day),
    )
    leads, progress = flag_progress(
        list(result.leads),
        progress,
        permits_grid,
        crs=crs,
        before_date=None if before_date is None else before_date.isoformat(),
        after_date=day.isoformat(),
        input_hashes=result.leads[0].input_hashes if result.leads else None,
    )
    done.leads, done.progress = leads, progress
    products = done.products
    products["progress"] = write_progress(job.run_dir / "progress.json", progress)
    registry.record_progress(job.survey.survey_id, progress)
    products["leads"], _gpkg = write_leads(job.run_dir, leads)


def _finish(job: _Job, done: _Recorded) -> SurveyRun:
    """After the leads are recorded: the packages to their registry ids, ``run.json``."""
    import shutil

    if done.run is not None:  # a flight alone
        write_json(job.run_dir / "run.json", done.run.to_dict())
        return done.run
    assert done.update is not None
    products = done.products
    run_leads = _run_leads(done.leads, done.update)
    for rl in run_leads:
        staged = done.staged.get(rl.lead.lead_id)
        if staged is not None:
            final = staged.parent / f"lead-{rl.lead_id}"
            os.replace(staged, final)
            products[f"package_{rl.lead_id}"] = final
    for staged in done.staged.values():  # removals that only proposed a lead's closure
        if staged.exists():
            shutil.rmtree(staged)
    survey = job.registry.update_survey(
        job.survey.survey_id, products={k: str(v) for k, v in products.items()}
    )
    run = SurveyRun(
        survey,
        done.ref_kind,
        done.ref_id,
        job.run_dir,
        leads=run_leads,
        proposed_closure=done.update.proposed_closure,
        progress=tuple(done.progress),
        products=products,
    )
    write_json(job.run_dir / "run.json", run.to_dict())
    return run


def _raster_crs(path: Path) -> Any:
    from pyproj import CRS

    from survey.rasters import open_checked

    with open_checked(path, "DSM") as ds:
        return CRS.from_user_input(ds.crs)


def _command_store(registry: Registry, case: str | None, user: str | None) -> CommandStore | None:
    """The registry's evidence store as a command records into it, or None."""
    store = registry.evidence_store()
    if store is None:
        return None
    from survey.evidence.wiring import CommandStore

    return CommandStore(store, case, user or registry.user)


def _record_evidence(
    cs: CommandStore,
    result: Any,
    ref_kind: str,
    given: _Inputs,
    risk: str,
    site: str,
    ingest: Any,
) -> list[str]:
    """Add the survey's rasters as originals of its case and record the detection."""
    from survey.evidence.wiring import record_check, record_detect, resolve_derived_from

    assert cs.case is not None
    rasters = [p for p in (given.ortho, given.dsm, given.dtm) if p is not None]
    items = cs.store.add(rasters, case=cs.case, risk=risk, operator=cs.operator, site=site)
    epoch = "survey" if ref_kind == "atlas" else "after"
    statements = (
        []
        if ingest is None
        else resolve_derived_from([f"{epoch}={ingest.out_dir}"], epochs=(epoch,))
    )
    if ref_kind == "atlas":
        record_check(cs, result, statements)
    else:
        record_detect(cs, result, statements)
    return [it.sha256 for it in items]


def _run_leads(leads: Sequence[Lead], update: LeadUpdate) -> tuple[RunLead, ...]:
    created, reopened = set(update.created), set(update.reopened)
    out = []
    for ld in leads:
        rid = update.by_detection.get(ld.lead_id)
        if rid is None:
            continue  # a removal that only proposed a lead's closure
        action = "created" if rid in created else "reopened" if rid in reopened else "updated"
        out.append(RunLead(rid, action, ld))
    return tuple(sorted(out, key=lambda r: r.lead_id))


def _pairs(path: Path | None) -> list[tuple[Any, dict[str, Any]]] | None:
    if path is None or not Path(path).is_file():
        return None
    from survey.vectors import read_features

    feats = read_features(path, "layer")
    return feats.to_crs(4326).pairs() if len(feats) else []


def _review(
    registry: Registry,
    site: str,
    run_dir: Path,
    result: Any,
    ref_kind: str,
    reference: SurveyRecord | None,
    given: _Inputs,
    leads: Sequence[Lead],
    day: dt.date,
) -> dict[str, Path]:
    from maps import render_review_map
    from maps.timeline import write_timeline_page

    out_html = run_dir / "review" / "review.html"
    title = f"{site}: survey of {day.isoformat()}"
    timeline = site_timeline(registry, site)
    stages = timeline_stages()
    if ref_kind == "atlas":
        review = render_review_map(
            leads,
            ortho=given.ortho,
            out_html=out_html,
            permits=_pairs(result.atlas_permits),
            existing=_pairs(result.atlas_existing),
            after_date=day.isoformat(),
            title=title,
            timeline=timeline,
            stages=stages,
        )
    else:
        assert reference is not None and reference.ortho is not None
        review = render_review_map(
            leads,
            before_ortho=Path(reference.ortho),
            after_ortho=given.ortho,
            out_html=out_html,
            permits=_pairs(run_dir / "inputs" / "permits.geojson"),
            existing=_pairs(run_dir / "inputs" / "existing.geojson"),
            before_date=reference.date.isoformat(),
            after_date=day.isoformat(),
            title=title,
            after_registered=result.after_registered,
            timeline=timeline,
            stages=stages,
        )
    page = write_timeline_page(
        run_dir / "review" / "timeline.html",
        timeline,
        stages,
        title=f"{site}: construction progress",
    )
    return {"review_map": review.html, "timeline": page}


def _packages(
    run_dir: Path,
    result: Any,
    ref_kind: str,
    reference: SurveyRecord | None,
    given: _Inputs,
    leads: Sequence[Lead],
    case: str | None,
    cs: CommandStore | None,
    progress: Progress = _no_progress,
) -> dict[str, Path]:
    """An evidence package per lead of the run, staged before the leads are recorded
    (``packages/.staged-N``; :func:`_finish` moves each to ``packages/lead-<registry id>``).

    Returns
    -------
    dict of str to Path
        Detection lead id → its staged package folder.
    """
    from maps import build_evidence_package

    permits = _pairs(run_dir / "inputs" / "permits.geojson")
    existing = _pairs(run_dir / "inputs" / "existing.geojson")
    leads_hash = None
    if cs is not None:
        from survey.evidence.wiring import package_ledger
        from survey.rasters import sha256_file

        # every lead's ledger excerpt starts from the same leads.geojson: hashed once
        leads_hash = sha256_file(result.leads_geojson)
    out: dict[str, Path] = {}
    start, share = STEP_FRACTIONS["packages"], STEP_FRACTIONS["record"] - STEP_FRACTIONS["packages"]
    for n, lead in enumerate(leads, start=1):
        progress(
            f"building the evidence package of lead {n} of {len(leads)}",
            start + share * (n - 1) / len(leads),
        )
        excerpt, head = None, None
        if cs is not None:
            assert leads_hash is not None
            excerpt, head = package_ledger(cs, [leads_hash, *lead.input_hashes.values()])
        folder = run_dir / "packages" / f".staged-{n}"
        common: dict[str, Any] = {
            "permits": permits,
            "out_dir": folder,
            "case_id": case,
            "ledger_excerpt": excerpt,
            "signed_head": head,
            "existing": existing,
            "verify_inputs": False,
        }
        if ref_kind == "atlas":
            pkg = build_evidence_package(lead, ortho=given.ortho, dsm=given.dsm, **common)
        else:
            assert reference is not None and reference.ortho is not None
            pkg = build_evidence_package(
                lead,
                before_ortho=Path(reference.ortho),
                after_ortho=given.ortho,
                before_dsm=None if reference.dsm is None else Path(reference.dsm),
                after_dsm=given.dsm,
                after_registered=result.after_registered,
                after_registered_dsm=result.after_registered_dsm,
                **common,
            )
        out[lead.lead_id] = pkg.directory
    return out


def read_run(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a survey's ``run.json`` (what ``sitewatch run --json`` printed)."""
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data
