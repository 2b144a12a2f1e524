"""``sitewatch plan``: survey missions for a site (QGroundControl, DJI WPML, GeoJSON).

Writes, per battery-sized sortie, ``DIR/sortie-NN.plan`` and ``DIR/sortie-NN.waypoints``
(QGroundControl; ``--format qgc``, the default) and/or ``DIR/sortie-NN.kmz`` (DJI WPML for
DJI Pilot 2 and FlightHub 2; ``--format wpml`` with ``--drone NAME``), plus
``DIR/mission.geojson`` (flight lines, routes, photo positions and footprints, WGS84) and
``DIR/summary.json`` (figures, and each file's height mode and datum). ``--oblique`` adds the
four oblique routes of DJI's five-route pattern (WPML only). ``sitewatch plan --list-cameras``
and ``--list-drones`` print the presets.

``sitewatch plan --from FILE.kmz`` reads a WPML route (ours or one made in DJI Pilot 2 /
FlightHub 2) instead of planning: it prints what the file flies (aircraft, routes, waypoints,
photos, heights and their datum, GSD and overlaps with the payload's camera) and, with
``--out DIR``, writes the same mission as QGroundControl files (``DIR/sortie-NN.plan`` and
``.waypoints``, one per route, heights relative to take-off or above sea level as the file
has them) with ``DIR/summary.json``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from survey.cli._common import ensure_out_dir, existing_file, is_quiet
from survey.cli._store import _CASE_HELP, _OPERATOR_HELP, _STORE_HELP, check_store, say_recorded
from survey.progress import quiet_option

if TYPE_CHECKING:
    from flightplans.camera import Camera
    from flightplans.drones import Drone

__all__ = ["command"]

_RC_LOST = {"home": "goBack", "hover": "hover", "land": "landing", "continue": "goContinue"}


def _angle(value: str) -> float | None:
    if value.strip().lower() == "auto":
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: use auto or a bearing in degrees") from exc


def _home(value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lon_s, lat_s = value.split(",")
        lon, lat = float(lon_s), float(lat_s)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: write it as LON,LAT in degrees") from exc
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise click.BadParameter(f"{value!r}: LON,LAT out of range (longitude first)")
    return lon, lat


def _formats(value: str) -> tuple[str, ...]:
    names = tuple(f for f in (p.strip().lower() for p in value.split(",")) if f)
    bad = [f for f in names if f not in ("qgc", "wpml")]
    if bad or not names:
        raise click.BadParameter(f"{value!r}: use qgc, wpml or qgc,wpml")
    return tuple(dict.fromkeys(names))


def _list_cameras() -> None:
    from flightplans import list_cameras

    click.echo(f"{'name':<14} {'sensor mm':<13} {'focal mm':>8} {'image px':>12}  model")
    for c in list_cameras():
        click.echo(
            f"{c.name:<14} {c.sensor_w_mm:>5.2f} x {c.sensor_h_mm:<5.2f} {c.focal_mm:>8.2f} "
            f"{c.image_w_px:>5d} x {c.image_h_px:<5d}  {c.label}"
        )


def _list_drones() -> None:
    from flightplans import list_drones

    click.echo(f"{'name':<10} {'drone enum':<11} {'payload':>7}  {'camera':<15} aircraft")
    for d in list_drones():
        enum = f"{d.drone_enum}/{d.drone_sub_enum}"
        click.echo(f"{d.name:<10} {enum:<11} {d.payload_enum:>7}  {d.camera_name:<15} {d.label}")


def _from_wpml(path: Path, out_dir: Path | None) -> None:
    """``--from FILE.kmz``: say what the route flies; with ``--out`` write it for QGC."""
    from flightplans import read_wpml, wpml_survey
    from flightplans._files import write_text_atomic
    from flightplans.qgc import write_plan, write_waypoints

    wf = read_wpml(path)
    survey = wpml_survey(wf)
    summary = {**wf.summary(), **survey.figures}
    files: list[str] = []
    if out_dir is not None:
        ensure_out_dir(out_dir)
        width = max(2, len(str(len(wf.routes))))
        for k, route in enumerate(wf.routes, start=1):
            stem = f"sortie-{k:0{width}d}"
            write_plan(route.mission, out_dir / f"{stem}.plan")
            write_waypoints(route.mission, out_dir / f"{stem}.waypoints")
            files += [f"{stem}.plan", f"{stem}.waypoints"]
        stale = re.compile(r"^sortie-(\d{2,})\.(plan|waypoints)$")
        for f in out_dir.iterdir():
            m = stale.match(f.name)
            if m and int(m.group(1)) > len(wf.routes):
                f.unlink()
        summary["qgc_files"] = files
        write_text_atomic(
            out_dir / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n"
        )
    if is_quiet():
        return
    aircraft = wf.drone.label if wf.drone else f"unknown aircraft {summary['drone_enum']}"
    n_wp = sum(r["waypoints"] for r in summary["routes"])
    click.echo(
        f"{path.name}: {wf.template_type or 'no'} template for {aircraft}, "
        f"{len(wf.routes)} route(s), {n_wp} waypoints, {survey.figures['n_photos']} photos, "
        f"{survey.figures['length_m'] / 1000:.2f} km"
    )
    click.echo("heights: " + ", ".join(summary["execute_height_datums"]) + f"; {wf.namespace}")
    for r in summary["routes"]:
        pitch = r["gimbal_pitch_deg"]
        look = "gimbal unset" if pitch is None else f"gimbal {pitch:g} deg"
        click.echo(
            f"  route {r['wayline_id']}: {r['waypoints']} waypoints, "
            f"{r['photo_intervals']} photo interval(s), {r['photo_points']} photo point(s), "
            f"{look}, heading {r['heading_mode']}, {r['speed_ms']:g} m/s"
        )
    if "gsd_cm" in summary:
        click.echo(
            f"GSD {summary['gsd_cm']:.2f} cm/px at {summary['alt_m']:.1f} m with "
            f"{summary['camera']}; overlaps front {summary.get('front_pct')} %, side "
            f"{summary.get('side_pct')} %"
        )
    if out_dir is not None:
        click.echo(f"QGroundControl: {len(files) // 2} mission(s) -> {out_dir}")


@click.command(name="plan")
@quiet_option
@click.argument("site", type=existing_file, required=False)
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Output folder."
)
@click.option("--gsd-cm", type=float, help="Ground sample distance in cm/px.")
@click.option("--alt-m", type=float, help="Height above ground in metres (instead of --gsd-cm).")
@click.option(
    "--camera",
    "camera_name",
    help="Camera preset (see --list-cameras); default the --drone's camera, else phantom4pro.",
)
@click.option(
    "--sensor-mm", nargs=2, type=float, help="Custom camera: sensor width and height (mm)."
)
@click.option("--focal-mm", type=float, help="Custom camera: focal length (mm).")
@click.option("--image-px", nargs=2, type=int, help="Custom camera: image width and height (px).")
@click.option("--front", type=float, default=75.0, show_default=True, help="Front overlap %.")
@click.option("--side", type=float, default=65.0, show_default=True, help="Side overlap %.")
@click.option(
    "--angle", "angle", default="auto", show_default=True, help="auto or bearing in degrees."
)
@click.option("--crosshatch", is_flag=True, help="Add a perpendicular second pass.")
@click.option("--nofly", type=existing_file, help="Polygons never to fly over (any format/CRS).")
@click.option("--dem", type=existing_file, help="GeoTIFF DEM/DSM (any CRS) to follow terrain.")
@click.option(
    "--max-alt-m", type=float, default=120.0, show_default=True, help="Height limit above ground."
)
@click.option(
    "--min-alt-m",
    type=float,
    default=20.0,
    show_default=True,
    help="Lowest height above ground (clears cranes and buildings).",
)
@click.option("--speed-ms", type=float, default=8.0, show_default=True, help="Cruise speed (m/s).")
@click.option(
    "--battery-min", type=float, default=20.0, show_default=True, help="Battery endurance (min)."
)
@click.option(
    "--reserve", type=float, default=0.2, show_default=True, help="Battery reserve fraction."
)
@click.option("--home", "home", help="Take-off point LON,LAT (default: the site's south edge).")
@click.option(
    "--turnaround-m", type=float, default=10.0, show_default=True, help="Line extension (m)."
)
@click.option(
    "--hover-capture",
    is_flag=True,
    help="Stop and shoot at each photo instead of triggering by distance.",
)
@click.option(
    "--alt-mode",
    type=click.Choice(["relative", "amsl", "terrain"]),
    help="Altitude frame (default: relative; amsl with --dem).",
)
@click.option(
    "--format",
    "formats",
    default="qgc",
    show_default=True,
    help="Mission files: qgc (QGroundControl .plan/.waypoints), wpml (DJI .kmz) or qgc,wpml.",
)
@click.option(
    "--drone",
    "drone_name",
    help="DJI aircraft for WPML (see --list-drones); sets the camera too.",
)
@click.option(
    "--wpml-height",
    type=click.Choice(["relative", "egm96"]),
    help="WPML heights: relative to take-off, or above the EGM96 geoid (executed as WGS84 "
    "ellipsoid heights). Default: egm96 with --dem, relative without.",
)
@click.option(
    "--dem-datum",
    type=click.Choice(["egm96", "wgs84"]),
    help="Vertical datum of the --dem heights (default: egm96, with a warning).",
)
@click.option(
    "--shoot",
    type=click.Choice(["distance", "time"]),
    default="distance",
    show_default=True,
    help="WPML photos every trigger distance, or every trigger distance / speed seconds.",
)
@click.option(
    "--rc-lost",
    type=click.Choice(sorted(_RC_LOST)),
    default="home",
    show_default=True,
    help="WPML: what the aircraft does when the remote-controller link is lost.",
)
@click.option(
    "--oblique", is_flag=True, help="Add the four oblique routes of DJI's pattern (WPML only)."
)
@click.option(
    "--oblique-pitch",
    type=float,
    default=-45.0,
    show_default=True,
    help="Gimbal pitch of the oblique routes (deg).",
)
@click.option(
    "--from",
    "from_path",
    type=existing_file,
    help="Read a DJI WPML route (.kmz) instead of planning: print it; with --out write it "
    "as QGroundControl files.",
)
@click.option(
    "--list-cameras", "list_only", is_flag=True, help="Print the camera presets and exit."
)
@click.option("--list-drones", "list_drones", is_flag=True, help="Print the DJI aircraft and exit.")
@click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    help=_STORE_HELP + " Created if missing.",
)
@click.option("--case", help=_CASE_HELP)
@click.option("--operator", help=_OPERATOR_HELP)
def command(
    site: Path | None,
    out_dir: Path | None,
    gsd_cm: float | None,
    alt_m: float | None,
    camera_name: str | None,
    sensor_mm: tuple[float, float] | None,
    focal_mm: float | None,
    image_px: tuple[int, int] | None,
    front: float,
    side: float,
    angle: str,
    crosshatch: bool,
    nofly: Path | None,
    dem: Path | None,
    max_alt_m: float,
    min_alt_m: float,
    speed_ms: float,
    battery_min: float,
    reserve: float,
    home: str | None,
    turnaround_m: float,
    hover_capture: bool,
    alt_mode: str | None,
    formats: str,
    drone_name: str | None,
    wpml_height: str | None,
    dem_datum: str | None,
    shoot: str,
    rc_lost: str,
    oblique: bool,
    oblique_pitch: float,
    from_path: Path | None,
    list_only: bool,
    list_drones: bool,
    store: Path | None,
    case: str | None,
    operator: str | None,
) -> None:
    """Plan survey flights over SITE (GeoJSON, GeoPackage or KML polygon, any CRS)."""
    if list_only:
        _list_cameras()
        return
    if list_drones:
        _list_drones()
        return
    if from_path is not None:
        if site is not None:
            raise click.UsageError("give either a SITE to plan or --from FILE.kmz to read")
        _from_wpml(from_path, out_dir)
        return
    fmts = _check_plan_usage(site, out_dir, gsd_cm, alt_m, formats, drone_name, oblique)
    assert site is not None and out_dir is not None
    recorder = check_store(store, case=case, operator=operator, create=True)
    from flightplans import PlanParams, WpmlOptions, get_drone, write_mission_files
    from survey.sites import plan_site

    drone = get_drone(drone_name) if drone_name is not None else None
    kwargs: dict[str, Any] = {}
    if alt_mode is not None:
        kwargs["alt_mode"] = alt_mode
    params = PlanParams(
        gsd_cm=gsd_cm,
        alt_m=alt_m,
        camera=_camera(camera_name, drone, sensor_mm, focal_mm, image_px),
        front_pct=front,
        side_pct=side,
        angle_deg=_angle(angle),
        crosshatch=crosshatch,
        max_alt_m=max_alt_m,
        min_alt_m=min_alt_m,
        speed_ms=speed_ms,
        battery_min=battery_min,
        reserve_frac=reserve,
        turnaround_m=turnaround_m,
        hover_capture=hover_capture,
        **kwargs,
    )
    wpml = None
    if drone is not None and "wpml" in fmts:
        wpml = WpmlOptions(
            drone,
            height_mode=wpml_height,  # type: ignore[arg-type]
            dem_datum=dem_datum,  # type: ignore[arg-type]
            shoot=shoot,  # type: ignore[arg-type]
            rc_lost=_RC_LOST[rc_lost],  # type: ignore[arg-type]
        )
    ensure_out_dir(out_dir)
    plan = plan_site(site, None, params, nofly_path=nofly, dem_path=dem, home_lonlat=_home(home))
    routes = _oblique_routes(plan, dem, oblique_pitch) if oblique else ()
    written = write_mission_files(plan, out_dir, formats=fmts, wpml=wpml, routes=routes)
    if not is_quiet():
        _say_plan(plan, out_dir, wpml, routes)
    if recorder is not None:
        entry = recorder.record(
            "sitewatch plan",
            inputs={"site": site, "nofly": nofly, "dem": dem},
            outputs={p.relative_to(out_dir).as_posix(): p for p in written},
            parameters={
                "plan": dataclasses.asdict(params),
                "formats": list(fmts),
                "drone": drone_name,
                "wpml_height": wpml_height,
                "dem_datum": dem_datum,
                "oblique_pitch_deg": oblique_pitch if oblique else None,
                "home": home,
            },
        )
        say_recorded(recorder, [entry.seq])


def _check_plan_usage(
    site: Path | None,
    out_dir: Path | None,
    gsd_cm: float | None,
    alt_m: float | None,
    formats: str,
    drone_name: str | None,
    oblique: bool,
) -> tuple[str, ...]:
    """The usage errors of planning (one line each); returns the mission formats asked."""
    if site is None:
        raise click.UsageError("give a SITE file (or --from FILE.kmz, --list-cameras)")
    if out_dir is None:
        raise click.UsageError("give --out DIR")
    if (gsd_cm is None) == (alt_m is None):
        raise click.UsageError("give exactly one of --gsd-cm and --alt-m")
    fmts = _formats(formats)
    if "wpml" in fmts and drone_name is None:
        raise click.UsageError("--format wpml needs --drone NAME (see --list-drones)")
    if oblique and fmts != ("wpml",):
        raise click.UsageError(
            "--oblique routes are written as DJI WPML only: pass --format wpml and --drone"
        )
    return fmts


def _camera(
    camera_name: str | None,
    drone: Drone | None,
    sensor_mm: tuple[float, float] | None,
    focal_mm: float | None,
    image_px: tuple[int, int] | None,
) -> Camera:
    """The camera: custom (``--sensor-mm``, ``--focal-mm``, ``--image-px``), a preset
    (``--camera``), the ``--drone``'s, else the Phantom 4 Pro's."""
    from flightplans import get_camera
    from flightplans.camera import Camera

    custom = [sensor_mm, focal_mm, image_px]
    if any(v is not None for v in custom):
        if camera_name is not None or drone is not None:
            raise click.UsageError(
                "give either --camera/--drone or --sensor-mm/--focal-mm/--image-px"
            )
        if any(v is None for v in custom):
            raise click.UsageError(
                "a custom camera needs --sensor-mm W H, --focal-mm F and --image-px W H"
            )
        assert sensor_mm is not None and focal_mm is not None and image_px is not None
        return Camera(
            "custom", sensor_mm[0], sensor_mm[1], focal_mm, image_px[0], image_px[1], "custom"
        )
    if camera_name is not None:
        camera = get_camera(camera_name)
        if drone is not None and camera.name != drone.camera_name:
            raise click.UsageError(
                f"--camera {camera.name} is not the camera of --drone {drone.name} "
                f"({drone.camera_name}); drop --camera"
            )
        return camera
    return drone.camera if drone is not None else get_camera("phantom4pro")


def _oblique_routes(plan: Any, dem: Path | None, pitch_deg: float) -> tuple[Any, ...]:
    """The four oblique routes of DJI's five-route pattern over the plan (``--oblique``)."""
    from flightplans import plan_oblique
    from survey.sites import read_dem_sampler

    terrain = read_dem_sampler(dem, plan.crs, bounds=plan.site.bounds) if dem is not None else None
    return tuple(plan_oblique(plan, pitch_deg=pitch_deg, terrain=terrain))


def _say_plan(plan: Any, out_dir: Path, wpml: Any, routes: tuple[Any, ...]) -> None:
    """The plan's figures, and its WPML files and oblique routes when written."""
    s = plan.summary()
    click.echo(
        f"{s['n_sorties']} sortie(s), {s['n_photos']} photos, {s['length_m'] / 1000:.2f} km, "
        f"{s['duration_s'] / 60:.1f} min at {s['alt_m']:.1f} m ({s['gsd_cm']:.2f} cm/px), "
        f"bearing {s['angle_deg']:.1f} deg -> {out_dir}"
    )
    click.echo(json.dumps({k: s[k] for k in ("spacing_m", "trigger_m", "area_m2")}))
    if wpml is None:
        return
    doc = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    recs = doc["wpml"]["files"]
    modes = sorted({(r["execute_height_mode"], r["execute_height_datum"]) for r in recs})
    click.echo(
        f"DJI WPML for {wpml.drone.label}: {len(recs)} route file(s) "
        f"{recs[0]['file']}..{recs[-1]['file']}, heights "
        + "; ".join(f"{m} ({d})" for m, d in modes)
    )
    if routes:
        click.echo(
            "oblique: "
            + ", ".join(
                f"{r.look.name} gimbal {r.look.gimbal_pitch_deg:g} deg "
                f"({len(r.plan.sorties)} sortie(s))"
                for r in routes
            )
        )
