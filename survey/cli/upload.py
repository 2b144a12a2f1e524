"""``sitewatch upload``: send a sortie to an ArduPilot vehicle and prove it arrived intact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from survey.cli._common import existing_file, is_quiet

__all__ = ["command"]


def _read_mission(path: Path) -> Any:
    from flightplans.qgc import read_plan, read_waypoints

    if path.suffix.lower() == ".waypoints":
        return read_waypoints(path)
    return read_plan(path)


def _write_report(path: Path, report: Any) -> None:
    from survey.rasters import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")


def _echo_summary(report: Any, plan: Path, cleared: bool) -> None:
    click.echo(f"uploaded {plan.name} to {report.connection}: {report.result}")
    click.echo(
        f"  before  : the vehicle held {report.items_before} mission item(s); "
        + ("cleared and replaced" if cleared else "replaced (no MISSION_CLEAR_ALL)")
    )
    click.echo(
        f"  sent    : {report.items_sent} MISSION_ITEM_INT (home + {report.items_sent - 1} "
        f"items) in {report.upload_attempts} attempt(s)"
        + (f", {report.boot_wait_s:.1f} s waiting for the boot" if report.boot_wait_s else "")
        + (f", {report.retransmissions} resent" if report.retransmissions else "")
    )
    click.echo(
        f"  readback: {report.items_received} items, max position difference "
        f"{report.max_position_diff_deg:.1e} deg, max altitude difference "
        f"{report.max_alt_diff_m:.3f} m"
    )
    for line in report.dropped_params:
        click.echo(f"  note    : {line}")


@click.command(name="upload")
@click.argument("plan", type=existing_file)
@click.option(
    "--connect",
    "connection",
    required=True,
    metavar="CONN",
    help="MAVLink connection: udpin:0.0.0.0:14550, tcp:127.0.0.1:5760, /dev/ttyUSB0, ...",
)
@click.option(
    "--baud",
    type=click.IntRange(min=1200),
    default=115200,
    show_default=True,
    help="Serial baud rate.",
)
@click.option(
    "--timeout-s",
    type=click.FloatRange(min=0.5, max=600.0),
    default=30.0,
    show_default=True,
    help="Seconds to wait for the vehicle's first heartbeat.",
)
@click.option(
    "--wait-ready-s",
    type=click.FloatRange(min=0.5, max=600.0),
    default=60.0,
    show_default=True,
    help="Seconds to wait for the parameters, the mode and AUTOPILOT_VERSION.",
)
@click.option(
    "--boot-wait-s",
    type=click.FloatRange(min=0.0, max=600.0),
    default=30.0,
    show_default=True,
    help="Seconds to keep retrying while a booting vehicle refuses the upload.",
)
@click.option(
    "--no-clear",
    is_flag=True,
    help="Do not send MISSION_CLEAR_ALL first (the upload still replaces the whole mission).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a JSON report (items sent/received, differences, result) to this file.",
)
def command(
    plan: Path,
    connection: str,
    baud: int,
    timeout_s: float,
    wait_ready_s: float,
    boot_wait_s: float,
    no_clear: bool,
    report_path: Path | None,
) -> None:
    """Upload PLAN (a .plan or .waypoints sortie) to an ArduPilot vehicle as MISSION_ITEM_INT,
    read it back and check every waypoint to 1e-7 degrees."""
    from flightplans.errors import MissionMismatchError
    from flightplans.vehicle import upload_mission

    mission = _read_mission(plan)
    try:
        report = upload_mission(
            mission,
            connection,
            baud=baud,
            timeout_s=timeout_s,
            wait_ready_s=wait_ready_s,
            boot_wait_s=boot_wait_s,
            clear=not no_clear,
        )
    except MissionMismatchError as exc:
        if report_path is not None and exc.report is not None:
            _write_report(report_path, exc.report)
        raise
    if report_path is not None:
        _write_report(report_path, report)
    if not is_quiet():
        _echo_summary(report, plan, cleared=not no_clear)
