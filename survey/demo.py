"""The demo: every stage of sitewatch run on the bundled synthetic site.

``run_demo(out)`` generates the default synthetic site, plans its survey flights, flies the
plan over the after epoch with the simulator (``flight/``: the MAVLink log, the photos with
EXIF and the truth, :mod:`survey.simulate`), ingests that flight as a real one (``ingest/``:
telemetry, track, geotagged photos, coverage, :mod:`survey.ingest`) and says how the
ingestion did against the truth (camera-clock offset found and planted, positions against
the true trajectory), then hands the two epochs to the later stages as they exist. Each
stage writes into its own sub-folder of ``out`` and returns what it produced, so the
summary can say where everything is.

The review map (``review/``) shows the flight as flown: the track of the log
("Flight track (flown)"), the planned route beside it ("Planned route") and the photos where
they were taken, each popup with its thumbnail, time, position source and QC flags.

The first-survey check (``check/``, ``check_review/``) takes the after epoch alone, as a site
with no earlier survey, and checks it against the permits and the existing buildings: its
leads, the atlas offset it measured against the one planted in the site, and a review map.

Everything is recorded in an evidence store (``store/``, case :data:`DEMO_CASE`,
:mod:`survey.evidence.wiring`): the before epoch, the permits, the atlas and the site boundary
are added as originals (documents the bureau holds; the before epoch has no flight), the
flight's log and photos are added by the ingest, and the plan, the ingest, detection, the
check, the maps and the package are recorded as derivations. The after epoch stands for the
photogrammetry of the simulated flight (a ``--derived-from`` statement; in the demo the photos
were in fact rendered from it), so every lead traces back to the photos and the log, the
package carries its ledger excerpt and the signed head, and the last stage verifies the store.

The module is over the house's ~500 lines because it is one script read top to bottom: the
stages in the order :func:`run_demo` runs them, each a short function that calls the library
as a user would and returns its headline, then the recording of each stage in the store
(the second half, from ``the demo's evidence store``). It computes nothing of its own; the
natural cut, should it grow, is that second half into a module of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from survey.errors import OutputError
from survey.synth import SynthParams, SynthSite, generate_site

if TYPE_CHECKING:
    from survey.evidence.wiring import CommandStore

_T = TypeVar("_T")

__all__ = ["DemoResult", "DemoStage", "run_demo"]

log = logging.getLogger(__name__)

#: The flight-plan GSD of the demo: the synthetic orthophoto's 5 cm would need 18 m flights,
#: so the demo plans at the GSD a Phantom 4 Pro gets at ~55 m, a usual enforcement survey.
DEMO_PLAN_GSD_CM = 1.5

#: The DJI aircraft the demo also writes its site's plan for, as WPML (``plan_wpml/``).
DEMO_WPML_DRONE = "mavic3e"


@dataclass(frozen=True)
class DemoStage:
    """What one stage did: its name, the headline, the main outputs and its wall time."""

    name: str
    headline: str
    outputs: dict[str, Path]
    seconds: float
    details: tuple[str, ...] = ()


@dataclass
class DemoResult:
    """Everything the demo wrote, stage by stage."""

    out_dir: Path
    site: SynthSite
    stages: list[DemoStage] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


#: The case, tier and operator of the demo's evidence store (``store/``).
DEMO_CASE = "demo"
DEMO_RISK = "low"
DEMO_OPERATOR = "sitewatch demo"


def _timed(
    result: DemoResult,
    name: str,
    fn: Callable[[], tuple[str, dict[str, Path], tuple[str, ...]]],
    progress: Callable[[str], None],
) -> None:
    progress(f"[{len(result.stages) + 1}] {name} ...")
    t0 = time.perf_counter()
    headline, outputs, details = fn()
    result.stages.append(DemoStage(name, headline, outputs, time.perf_counter() - t0, details))


def run_demo(
    out_dir: Path,
    *,
    synth: SynthParams = SynthParams(),  # noqa: B008 (frozen dataclass)
    progress: Callable[[str], None] = lambda _msg: None,
) -> DemoResult:
    """Run every stage on the synthetic site into ``out_dir`` and return what was written."""
    out_dir = Path(out_dir)
    progress("[1] synthetic site ...")
    t0 = time.perf_counter()
    site = generate_site(out_dir / "site", synth)
    result = DemoResult(out_dir=out_dir, site=site)
    truth = site.truth
    result.stages.append(
        DemoStage(
            "synthetic site",
            f"{truth['shape_px'][0]}x{truth['shape_px'][1]} px at {truth['gsd_m'] * 100:g} cm, "
            f"{truth['n_planted']} planted changes ({len(truth['must_flag'])} must be flagged)",
            {"site": site.root},
            time.perf_counter() - t0,
        )
    )
    _open_store(result)
    _timed(result, "flight plan", lambda: _plan(result), progress)
    _record_plan(result)
    _timed(result, "simulated flight", lambda: _fly(result, synth.seed), progress)
    _timed(result, "ingest", lambda: _ingest(result), progress)
    _timed(result, "detection", lambda: _detect(result), progress)
    _timed(result, "review map", lambda: _review_map(result), progress)
    _timed(result, "evidence", lambda: _package(result), progress)
    _timed(result, "first-survey check", lambda: _check(result), progress)
    _timed(result, "check review map", lambda: _check_map(result), progress)
    _timed(result, "evidence store", lambda: _verify_store(result), progress)
    return result


def _plan(result: DemoResult) -> tuple[str, dict[str, Path], tuple[str, ...]]:
    from flightplans import PlanParams, WpmlOptions, get_camera, get_drone, write_mission_files
    from survey.sites import plan_site

    out = result.out_dir / "plan"
    params = PlanParams(gsd_cm=DEMO_PLAN_GSD_CM, camera=get_camera("phantom4pro"))
    plan = plan_site(result.site.site, out, params)
    s = plan.summary()
    result.data["plan"] = plan
    # The same site at the same GSD for a DJI enterprise aircraft, as DJI WPML route files
    # (the Phantom 4 Pro the simulator flies has no WPML): plan_wpml/sortie-NN.kmz.
    drone = get_drone(DEMO_WPML_DRONE)
    out_wpml = result.out_dir / "plan_wpml"
    plan_dji = plan_site(
        result.site.site, None, PlanParams(gsd_cm=DEMO_PLAN_GSD_CM, camera=drone.camera)
    )
    write_mission_files(plan_dji, out_wpml, formats=("wpml",), wpml=WpmlOptions(drone))
    result.data["plan_wpml"] = plan_dji
    headline = (
        f"{s['n_sorties']} sortie(s), {s['n_photos']} photos at {s['alt_m']:.0f} m "
        f"({s['gsd_cm']:.1f} cm/px), {s['length_m'] / 1000:.2f} km, "
        f"{s['duration_s'] / 60:.1f} min, bearing {s['angle_deg']:.0f} deg"
    )
    outputs = {
        "QGroundControl plan": out / "sortie-01.plan",
        "mission GeoJSON": out / "mission.geojson",
        f"DJI WPML route ({drone.label})": out_wpml / "sortie-01.kmz",
    }
    details = (
        f"DJI WPML: {plan_dji.stats['n_sorties']} route file(s) for {drone.label}, "
        f"{plan_dji.stats['n_photos']} photos at {plan_dji.stats['alt_m']:.0f} m, heights "
        "relative to take-off",
    )
    return headline, outputs, details


def _fly(result: DemoResult, seed: int) -> tuple[str, dict[str, Path], tuple[str, ...]]:
    from survey.evidence.wiring import record_simulate_flight
    from survey.simulate import SimParams, simulate_flight

    plan = result.out_dir / "plan"
    flight = simulate_flight(
        plan, result.site.root, result.out_dir / "flight", SimParams(seed=seed)
    )
    result.data["flight"] = flight
    _recording(
        result, lambda cs: record_simulate_flight(cs, flight, plan=plan, site=result.site.root)
    )
    t = flight.truth
    headline = (
        f"{t['flight']['photos']} photos in {t['flight']['duration_s'] / 60:.1f} min over the "
        f"after epoch, camera clock {flight.clock_offset_s:+.3f} s off, GNSS error "
        f"{t['noise']['horizontal_rms_m']:.2f} m RMS (correlated)"
    )
    outputs = {"flight log": flight.tlog, "truth": flight.truth_json}
    if flight.photos_dir is not None:
        outputs["photos"] = flight.photos_dir
    return headline, outputs, ()


def _ingest(result: DemoResult) -> tuple[str, dict[str, Path], tuple[str, ...]]:
    from survey.ingest import run_ingest
    from survey.synth import AFTER_DTM_NAME

    flight, site = result.data["flight"], result.site
    dtm = site.after_dsm.with_name(AFTER_DTM_NAME)
    ing = run_ingest(
        result.out_dir / "ingest",
        log=flight.tlog,
        images=flight.photos_dir,
        plan=result.out_dir / "plan",
        site=site.site,
        dem=dtm if dtm.is_file() else None,
    )
    result.data["ingest"] = ing
    _recording(result, lambda cs: _record_ingest(cs, ing))
    r = ing.report
    cov = r["coverage"] or {}
    site_cov = cov.get("site") or {}
    holes = site_cov.get("holes") or 0
    found = r["time_offset_s"]
    headline = (
        f"{r['images_placed']}/{r['images']} photos placed ({r['images_matched']} paired with "
        f"camera events), camera clock {found:+.3f} s found (planted "
        f"{flight.clock_offset_s:+.3f} s); site {site_cov.get('covered_pct', 0.0):.1f} % "
        f"covered, {holes} hole(s)"
    )
    details = [_position_check(ing, flight)]
    if cov.get("front_overlap_pct_median") is not None:
        details.append(
            f"overlaps achieved: front {cov['front_overlap_pct_median']:.0f} % (planned "
            f"{cov.get('planned_front_pct')} %), side {cov['side_overlap_pct_median']:.0f} % "
            f"(planned {cov.get('planned_side_pct')} %); {cov.get('images_flagged', 0)} "
            "photo(s) flagged"
        )
    outputs = {
        "flown track": ing.track_geojson,
        "photos": ing.photos_geojson,
        "ingest report": ing.report_json,
    }
    return headline, {k: v for k, v in outputs.items() if v is not None}, tuple(details)


def _position_check(ing: Any, flight: Any) -> str:
    """How far the ingested photo positions are from the simulator's truth."""
    import math

    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    truth = {e["photo"]: e for e in flight.truth["exposures"]}
    off_true: list[float] = []
    off_gnss: list[float] = []
    for p in ing.geotag.photos if ing.geotag is not None else ():
        e = truth.get(p.name)
        if e is None or not p.has_position:
            continue
        for key, out in (("true", off_true), ("reported", off_gnss)):
            _a, _b, d = geod.inv(p.lon, p.lat, e[key]["lon"], e[key]["lat"])
            out.append(abs(d))
    if not off_true:
        return "no photo placed to compare with the truth"
    rms = math.sqrt(sum(d * d for d in off_true) / len(off_true))
    return (
        f"photo positions against the true trajectory: {rms:.2f} m RMS, max "
        f"{max(off_true):.2f} m (the simulated GNSS error); against what the receiver "
        f"reported: max {max(off_gnss):.3f} m"
    )


def _detect(result: DemoResult) -> tuple[str, dict[str, Path], tuple[str, ...]]:
    from survey.pipeline import run_detect

    site = result.site
    det = run_detect(
        site.before_ortho,
        site.after_ortho,
        result.out_dir / "detect",
        before_dsm=site.before_dsm,
        after_dsm=site.after_dsm,
        permits=site.permits,
        site=site.site,
        before_date=site.truth["before_date"],
        after_date=site.truth["after_date"],
    )
    result.data["detect"] = det
    _recording(result, lambda cs: _record_detect(result, cs, det))
    shift = det.coregistration
    headline = (
        f"{len(det.leads)} lead(s) [{det.mode}], after epoch moved by "
        f"({shift.get('shift_x_px', 0.0):+.2f}, {shift.get('shift_y_px', 0.0):+.2f}) px "
        f"({shift.get('model', '?')} model)"
    )
    details = tuple(
        f"{lead.lead_id}  {lead.lead_class:<17} {lead.area_m2:7.1f} m2"
        + ("" if lead.height_gain_m is None else f" {lead.height_gain_m:+5.1f} m")
        + f"  score {lead.score:.2f}"
        for lead in det.leads
    )
    outputs = {
        "leads": det.leads_geojson,
        "change classes": det.change_tif,
        "provenance": det.provenance_json,
    }
    if det.after_registered is not None:
        outputs["after, co-registered"] = det.after_registered
    return headline, outputs, details


def _wgs84_pairs(path: Path, role: str) -> list[tuple[Any, dict[str, Any]]]:
    from survey.vectors import read_features

    return read_features(path, role).to_crs(4326).pairs()


def _permits(result: DemoResult) -> list[tuple[Any, dict[str, Any]]]:
    """The site's permits in WGS84, read once for the map and the package."""
    if "permits" not in result.data:
        result.data["permits"] = _wgs84_pairs(result.site.permits, "permits")
    permits: list[tuple[Any, dict[str, Any]]] = result.data["permits"]
    return permits


def _review_map(result: DemoResult) -> tuple[str, dict[str, Path], tuple[str, ...]]:
    from maps import render_review_map

    site, det = result.site, result.data["detect"]
    ing, flight = result.data["ingest"], result.data["flight"]
    mission = result.out_dir / "plan" / "mission.geojson"
    planned = _wgs84_pairs(mission, "mission") if mission.exists() else None
    flown = _wgs84_pairs(ing.track_geojson, "flight track") if ing.track_geojson else None
    taken = _wgs84_pairs(ing.photos_geojson, "photos") if ing.photos_geojson else None
    review = render_review_map(
        det.leads,
        before_ortho=site.before_ortho,
        after_ortho=site.after_ortho,
        out_html=result.out_dir / "review" / "review.html",
        permits=_permits(result),
        track=flown,
        route=planned,
        photos=taken,
        photo_dir=flight.photos_dir,
        before_date=site.truth["before_date"],
        after_date=site.truth["after_date"],
        title="sitewatch demo site",
        after_registered=det.after_registered,
    )
    assert review.dual_html is not None  # two surveys
    _record_map(
        result,
        review.pages,
        leads=det.leads_geojson,
        before_ortho=site.before_ortho,
        after_ortho=site.after_ortho,
        permits=site.permits,
        track=ing.track_geojson,
        route=mission if mission.exists() else None,
        photos=ing.photos_geojson,
        after_registered=det.after_registered,
    )
    outputs = {
        "review map": review.html,
        "dual view": review.dual_html,
        "lead table": review.overview_html,
    }
    n_photos = len(taken or ())
    return (
        f"{len(det.leads)} lead(s) on an offline map with the flown track, the planned route "
        f"and {n_photos} photos",
        outputs,
        (),
    )


def _package(result: DemoResult) -> tuple[str, dict[str, Path], tuple[str, ...]]:
    from maps import build_evidence_package

    site, det = result.site, result.data["detect"]
    if not det.leads:
        return "no lead, no package", {}, ()
    lead = max(det.leads, key=lambda lead: (lead.score, lead.area_m2))
    excerpt, head = _recording(result, lambda cs: _package_ledger(cs, det, lead))
    pkg = build_evidence_package(
        lead,
        before_ortho=site.before_ortho,
        after_ortho=site.after_ortho,
        before_dsm=site.before_dsm,
        after_dsm=site.after_dsm,
        permits=_permits(result),
        out_dir=result.out_dir / "packages" / lead.lead_id,
        before_date=site.truth["before_date"],
        after_date=site.truth["after_date"],
        after_registered=det.after_registered,
        after_registered_dsm=det.after_registered_dsm,
        case_id=DEMO_CASE,
        ledger_excerpt=excerpt,
        signed_head=head,
    )
    _recording(result, lambda cs: _record_package(result, cs, det, pkg.directory))
    result.data["package_lead"] = lead
    headline = f"package of lead {lead.lead_id} ({lead.lead_class}), {len(pkg.files)} files"
    details = (f"verify with: cd {pkg.directory} && sha256sum -c {pkg.checksums.name}",)
    return headline, {"evidence package": pkg.directory}, details


def _check(result: DemoResult) -> tuple[str, dict[str, Path], tuple[str, ...]]:
    from survey.check import run_check
    from survey.synth import AFTER_DTM_NAME, EXISTING_NAME

    site = result.site
    chk = run_check(
        site.after_ortho,
        site.after_dsm,
        result.out_dir / "check",
        permits=site.permits,
        dtm=site.after_dsm.with_name(AFTER_DTM_NAME),
        existing=site.root / EXISTING_NAME,
        site=site.site,
        survey_date=site.truth["after_date"],
    )
    result.data["check"] = chk
    _recording(result, lambda cs: _record_check(result, cs, chk))
    a = chk.alignment
    truth = site.truth.get("first_survey", {}).get("atlas_offset_m")
    planted = "" if truth is None else f" (planted ({truth[0]:+.2f}, {truth[1]:+.2f}) m)"
    if a.get("applied"):
        moved = f"atlas moved by ({a['dx_m']:+.2f}, {a['dy_m']:+.2f}) m{planted}"
    else:
        moved = f"atlas used as given: {a.get('summary', '')}"
    headline = f"{len(chk.leads)} lead(s) from the after survey alone against the atlas, {moved}"
    details = tuple(
        f"{lead.lead_id}  {lead.lead_class:<17} {lead.area_m2:7.1f} m2"
        + ("" if lead.height_gain_m is None else f" {lead.height_gain_m:+5.1f} m")
        + f"  score {lead.score:.2f}"
        for lead in chk.leads
    )
    outputs = {
        "leads": chk.leads_geojson,
        "check report": chk.check_json,
        "provenance": chk.provenance_json,
    }
    return headline, outputs, details


def _check_map(result: DemoResult) -> tuple[str, dict[str, Path], tuple[str, ...]]:
    from maps import render_review_map

    site, chk = result.site, result.data["check"]
    review = render_review_map(
        chk.leads,
        ortho=site.after_ortho,
        out_html=result.out_dir / "check_review" / "review.html",
        permits=_wgs84_pairs(chk.atlas_permits, "permits"),
        existing=None
        if chk.atlas_existing is None
        else _wgs84_pairs(chk.atlas_existing, "existing buildings"),
        after_date=site.truth["after_date"],
        title="sitewatch demo site: first survey against the permit atlas",
    )
    _record_map(
        result,
        review.pages,
        leads=chk.leads_geojson,
        ortho=site.after_ortho,
        permits=chk.atlas_permits,
        existing=chk.atlas_existing,
    )
    outputs = {"review map": review.html, "lead table": review.overview_html}
    return f"{len(chk.leads)} lead(s) over the survey and the atlas", outputs, ()


# ---------------------------------------------------------------- the demo's evidence store

_STAND_IN = (
    "demo stand-in: the synthetic after epoch stands for the photogrammetry of the simulated "
    "flight (whose photos were in fact rendered from it)"
)


def _recording(result: DemoResult, fn: Callable[[CommandStore], _T]) -> _T:
    """Run ``fn`` on the demo's store, adding its time to ``result.data["store_s"]``."""
    t0 = time.perf_counter()
    try:
        return fn(result.data["store"])
    finally:
        result.data["store_s"] = result.data.get("store_s", 0.0) + time.perf_counter() - t0


def _open_store(result: DemoResult) -> None:
    """Create (or open) ``store/`` and add the site's documents and before epoch as originals."""
    from survey.evidence.wiring import open_command_store
    from survey.synth import EXISTING_NAME

    t0 = time.perf_counter()
    cs = open_command_store(
        result.out_dir / "store", case=DEMO_CASE, operator=DEMO_OPERATOR, create=True
    )
    result.data["store"] = cs
    site = result.site
    originals = [
        site.before_ortho,
        site.before_dsm,
        site.permits,
        site.site,
        site.root / EXISTING_NAME,
    ]
    cs.store.add(
        [p for p in originals if p.is_file()],
        case=DEMO_CASE,
        risk=DEMO_RISK,
        operator=DEMO_OPERATOR,
        site="sitewatch demo site",
    )
    result.data["store_s"] = time.perf_counter() - t0


def _record_plan(result: DemoResult) -> None:
    """The plan's files (every file the plan stage wrote) as derived from the site boundary."""

    def record(cs: CommandStore) -> None:
        files = [
            p
            for folder in ("plan", "plan_wpml")
            for p in sorted((result.out_dir / folder).rglob("*"))
            if p.is_file()
        ]
        cs.record(
            "sitewatch plan",
            inputs={"site": result.site.site},
            outputs={p.relative_to(result.out_dir).as_posix(): p for p in files},
            parameters={"gsd_cm": DEMO_PLAN_GSD_CM, "camera": "phantom4pro"},
        )

    _recording(result, record)


def _record_ingest(cs: CommandStore, ing: Any) -> None:
    from survey.evidence.wiring import record_ingest

    record_ingest(cs, ing, risk=DEMO_RISK, site="sitewatch demo site")


def _stand_in(result: DemoResult, epoch: str) -> list[Any]:
    """The statement that the after epoch was made from the ingested flight."""
    import dataclasses

    from survey.evidence.wiring import resolve_derived_from

    (statement,) = resolve_derived_from([f"{epoch}={result.out_dir / 'ingest'}"], epochs=(epoch,))
    return [dataclasses.replace(statement, note=_STAND_IN)]


def _record_detect(result: DemoResult, cs: CommandStore, det: Any) -> None:
    from survey.evidence.wiring import record_detect

    record_detect(cs, det, _stand_in(result, "after"))


def _record_check(result: DemoResult, cs: CommandStore, chk: Any) -> None:
    from survey.evidence.wiring import record_check

    record_check(cs, chk, _stand_in(result, "survey"))


def _record_map(result: DemoResult, pages: list[Path], **inputs: Path | None) -> None:
    def record(cs: CommandStore) -> None:
        cs.record(
            "sitewatch map",
            inputs=inputs,
            outputs={p.name: p for p in pages},
            parameters={"title": "sitewatch demo site"},
        )

    _recording(result, record)


def _package_inputs(result: DemoResult, det: Any) -> dict[str, Path | None]:
    site = result.site
    return {
        "leads": det.leads_geojson,
        "before_ortho": site.before_ortho,
        "after_ortho": site.after_ortho,
        "before_dsm": site.before_dsm,
        "after_dsm": site.after_dsm,
        "permits": site.permits,
        "after_registered": det.after_registered,
        "after_registered_dsm": det.after_registered_dsm,
    }


def _package_ledger(
    cs: CommandStore, det: Any, lead: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from survey.evidence.wiring import package_ledger
    from survey.rasters import sha256_file

    hashes = [sha256_file(det.leads_geojson), *lead.input_hashes.values()]
    return package_ledger(cs, hashes)


def _record_package(result: DemoResult, cs: CommandStore, det: Any, folder: Path) -> None:
    cs.record(
        "sitewatch package",
        inputs=_package_inputs(result, det),
        outputs={
            name: folder / name
            for name in ("manifest.json", "manifest.sha256", "report.pdf", "lead.geojson")
            if (folder / name).is_file()
        },
        parameters={"leads": [folder.name], "case_id": DEMO_CASE},
    )


def _verify_store(result: DemoResult) -> tuple[str, dict[str, Path], tuple[str, ...]]:
    """Verify the store and say where the package's lead leads back to."""
    from survey.rasters import sha256_file

    cs: CommandStore = result.data["store"]
    report = cs.store.verify()
    if not report.ok:
        raise OutputError(
            f"{cs.root}: the demo's evidence store does not verify "
            f"({report.problems[0].message}); run `sitewatch evidence verify {cs.root}`"
        )
    details = [f"verify with: sitewatch evidence verify {cs.root}"]
    det, lead = result.data["detect"], result.data.get("package_lead")
    if lead is not None:
        trace = cs.store.trace(sha256_file(det.leads_geojson))
        devices = [e.get("device") or {} for e in trace if e.type == "add"]
        logs = sum(d.get("kind") == "flight log" for d in devices)
        photos = sum(d.get("kind") == "photo" and bool(d.get("make")) for d in devices)
        details.append(
            f"leads.geojson traces back through {sum(e.type == 'derive' for e in trace)} "
            f"derivations to {logs} flight log, {photos} photos and "
            f"{len(devices) - logs - photos} other originals (before epoch, permits, site)"
        )
    headline = (
        f"{report.entries} ledger entries, {report.objects} stored file(s), signed head at "
        f"{report.signed_size} entries: verified; recording took "
        f"{result.data.get('store_s', 0.0):.1f} s of the demo"
    )
    return headline, {"evidence store": cs.root}, tuple(details)
