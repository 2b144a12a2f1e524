"""``sitewatch plan``: survey missions for a site (QGroundControl .plan, .waypoints, GeoJSON).

Writes ``DIR/sortie-NN.plan`` and ``DIR/sortie-NN.waypoints`` per battery-sized sortie,
``DIR/mission.geojson`` (flight lines, routes, photo positions and footprints, WGS84) and
``DIR/summary.json``. ``sitewatch plan --list-cameras`` prints the camera presets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from survey.cli._common import ensure_out_dir, existing_file, is_quiet

__all__ = ["command"]


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


def _list_cameras() -> None:
    from flightplans import list_cameras

    click.echo(f"{'name':<14} {'sensor mm':<13} {'focal mm':>8} {'image px':>12}  model")
    for c in list_cameras():
        click.echo(
            f"{c.name:<14} {c.sensor_w_mm:>5.2f} x {c.sensor_h_mm:<5.2f} {c.focal_mm:>8.2f} "
            f"{c.image_w_px:>5d} x {c.image_h_px:<5d}  {c.label}"
        )


@click.command(name="plan")
@click.argument("site", type=existing_file, required=False)
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Output folder."
)
@click.option("--gsd-cm", type=float, help="Ground sample distance in cm/px.")
@click.option("--alt-m", type=float, help="Height above ground in metres (instead of --gsd-cm).")
@click.option(
    "--camera", "camera_name", help="Camera preset (see --list-cameras); default phantom4pro."
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
    "--list-cameras", "list_only", is_flag=True, help="Print the camera presets and exit."
)
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
    list_only: bool,
) -> None:
    """Plan survey flights over SITE (GeoJSON, GeoPackage or KML polygon, any CRS)."""
    if list_only:
        _list_cameras()
        return
    if site is None:
        raise click.UsageError("give a SITE file (or --list-cameras)")
    if out_dir is None:
        raise click.UsageError("give --out DIR")
    if (gsd_cm is None) == (alt_m is None):
        raise click.UsageError("give exactly one of --gsd-cm and --alt-m")
    from flightplans import PlanParams, get_camera
    from flightplans.camera import Camera
    from survey.sites import plan_site

    custom = [sensor_mm, focal_mm, image_px]
    if any(v is not None for v in custom):
        if camera_name is not None:
            raise click.UsageError("give either --camera or --sensor-mm/--focal-mm/--image-px")
        if any(v is None for v in custom):
            raise click.UsageError(
                "a custom camera needs --sensor-mm W H, --focal-mm F and --image-px W H"
            )
        assert sensor_mm is not None and focal_mm is not None and image_px is not None
        camera = Camera(
            "custom", sensor_mm[0], sensor_mm[1], focal_mm, image_px[0], image_px[1], "custom"
        )
    else:
        camera = get_camera(camera_name or "phantom4pro")
    kwargs: dict[str, Any] = {}
    if alt_mode is not None:
        kwargs["alt_mode"] = alt_mode
    params = PlanParams(
        gsd_cm=gsd_cm,
        alt_m=alt_m,
        camera=camera,
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
    ensure_out_dir(out_dir)
    plan = plan_site(site, out_dir, params, nofly_path=nofly, dem_path=dem, home_lonlat=_home(home))
    if not is_quiet():
        s = plan.summary()
        click.echo(
            f"{s['n_sorties']} sortie(s), {s['n_photos']} photos, {s['length_m'] / 1000:.2f} km, "
            f"{s['duration_s'] / 60:.1f} min at {s['alt_m']:.1f} m ({s['gsd_cm']:.2f} cm/px), "
            f"bearing {s['angle_deg']:.1f} deg -> {out_dir}"
        )
        click.echo(json.dumps({k: s[k] for k in ("spacing_m", "trigger_m", "area_m2")}))
