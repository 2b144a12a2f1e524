"""Registry at city scale: ``schedule`` and ``leads list`` over 2,000 sites and 100,000 leads
on SQLite.

The registry is filled by bulk inserts (2,000 sites of 200 x 200 m, 10 surveys each over a
year, 50 leads each in every state and class), then each figure is the median of three runs:

* ``due_sites`` (what ``sitewatch schedule`` prints) against ``SELECT count(*) FROM surveys``;
* ``leads()`` of the whole city, of one site, of one state and of one class, against the same
  rows fetched with the plain ``sqlite3`` driver (the cost of reading them at all);
* the commands themselves in-process (``sitewatch leads list --json`` and as a table of the
  whole city, ``sitewatch leads list --state confirmed``, ``sitewatch schedule``), opening
  the registry and printing included (the interpreter's start is not);
* and as a user runs them (a new ``sitewatch`` process: the interpreter, the imports, the
  work), against a bare ``python -c pass``; opening the registry imports neither the detection
  stack nor rasterio.

Target: every figure under one second. ``--quick``: 200 sites, 10,000 leads. Size by
``SITEWATCH_BENCH_REGISTRY_SITES`` (leads are 50 per site).
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import sqlalchemy as sa  # noqa: E402
from _common import Result, median_time  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from shapely.geometry import box  # noqa: E402

from survey.cli import cli  # noqa: E402
from survey.registry import LEAD_STATES, Registry  # noqa: E402
from survey.registry.geometry import bbox, to_wkb  # noqa: E402
from survey.registry.models import LeadRow, SiteRow, SurveyRow  # noqa: E402

BENCH = "registry"
LEADS_PER_SITE = 50
SURVEYS_PER_SITE = 10
CLASSES = ("no_permit", "outside_footprint", "over_height", "demolished")
TARGET_S = 1.0


def _fill(reg: Registry, n_sites: int) -> None:
    now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    start = dt.date(2023, 6, 1)
    sites, surveys, leads = [], [], []
    survey_id = 0
    for i in range(n_sites):
        lon, lat = 114.0 + (i % 50) * 0.01, 37.0 + (i // 50) * 0.01
        geom = box(lon, lat, lon + 0.00225, lat + 0.0018)
        sites.append(
            {
                "id": i + 1,
                "name": f"site-{i:05d}",
                "boundary": to_wkb(geom),
                "nofly": None,
                **bbox(geom),
                "area_m2": 40_000.0,
                "cadence_days": (7, 14, 30, 60)[i % 4],
                "risk": ("high", "medium", "low")[i % 3],
                "team": f"team-{i % 12}",
                "gsd_cm": 2.0,
                "boundary_source": None,
                "created_at": now,
                "created_by": "bench",
            }
        )
        first = survey_id + 1
        for k in range(SURVEYS_PER_SITE):
            survey_id += 1
            surveys.append(
                {
                    "id": survey_id,
                    "site_id": i + 1,
                    "date": start + dt.timedelta(days=30 * k + i % 30),
                    "case_id": f"S{i + 1}-{survey_id}",
                    "evidence": [],
                    "products": {},
                    "qc_verdict": "fail" if (i + k) % 17 == 0 else "pass",
                    "reference": "atlas" if k == 0 else "survey",
                    "approved": k % 2 == 0,
                    "created_at": now,
                    "created_by": "bench",
                }
            )
        for j in range(LEADS_PER_SITE):
            g = box(lon + j * 4e-5, lat, lon + j * 4e-5 + 3e-5, lat + 3e-5)
            leads.append(
                {
                    "site_id": i + 1,
                    "lead_class": CLASSES[j % len(CLASSES)],
                    "kind": "removed" if j % len(CLASSES) == 3 else "new",
                    "state": LEAD_STATES[(i + j) % len(LEAD_STATES)],
                    "risk": sites[-1]["risk"],
                    "footprint": to_wkb(g),
                    **bbox(g),
                    "area_m2": 8.0 + j,
                    "height_gain_m": 3.0,
                    "floors_added": 1,
                    "detection_id": f"{i:06d}{j:010d}",
                    "reasons": ["no permit covers it"],
                    "permit_ids": [],
                    "first_survey_id": first,
                    "last_survey_id": first + j % SURVEYS_PER_SITE,
                    "closure_proposed": j % 11 == 0,
                    "created_at": now,
                    "updated_at": now,
                    "state_changed_at": now,
                    "state_changed_by": "bench",
                }
            )
    with reg.engine.begin() as conn:
        conn.execute(sa.insert(SiteRow), sites)
        conn.execute(sa.insert(SurveyRow), surveys)
        for k in range(0, len(leads), 20_000):
            conn.execute(sa.insert(LeadRow), leads[k : k + 20_000])
        conn.exec_driver_sql("ANALYZE")


_PLAIN_LIST = (
    "SELECT leads.id, sites.name, leads.lead_class, leads.kind, leads.state, leads.risk, "
    "leads.area_m2, leads.height_gain_m, surveys.date, leads.closure_proposed "
    "FROM leads JOIN sites ON sites.id = "
    "leads.site_id JOIN surveys ON surveys.id = leads.last_survey_id {where} ORDER BY leads.id"
)


def run(quick: bool = False) -> list[Result]:
    n_sites = int(os.environ.get("SITEWATCH_BENCH_REGISTRY_SITES", 200 if quick else 2000))
    n_leads = n_sites * LEADS_PER_SITE
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        db = str(Path(tmp) / "city.db")
        reg = Registry.open(db)
        _fill(reg, n_sites)
        day = "2024-04-01"  # about half the sites due
        con = sqlite3.connect(db)

        def plain(where: str = "", args: tuple[object, ...] = ()) -> None:
            con.execute(_PLAIN_LIST.format(where=where), args).fetchall()

        count_s = median_time(lambda: con.execute("SELECT count(*) FROM surveys").fetchone())
        due = reg.due_sites(day)
        t = median_time(lambda: reg.due_sites(day))
        results.append(
            Result(
                BENCH,
                f"due_sites ({n_sites} sites, {len(due)} due)",
                t,
                "s",
                count_s,
                "SELECT count(*) FROM surveys",
                f"< {TARGET_S} s",
                t < TARGET_S,
            )
        )
        cases: list[tuple[str, dict[str, str], str, tuple[object, ...]]] = [
            (f"leads() all {n_leads}", {}, "", ()),
            ("leads(site=...)", {"site": "site-00007"}, "WHERE leads.site_id = ?", (8,)),
            (
                "leads(state='confirmed')",
                {"state": "confirmed"},
                "WHERE leads.state = ?",
                ("confirmed",),
            ),
            (
                "leads(lead_class='over_height')",
                {"lead_class": "over_height"},
                "WHERE leads.lead_class = ?",
                ("over_height",),
            ),
        ]
        for name, kwargs, where, args in cases:
            base = median_time(lambda w=where, a=args: plain(w, a))  # type: ignore[misc]
            t = median_time(lambda k=kwargs: reg.leads(**k))  # type: ignore[misc]
            results.append(
                Result(
                    BENCH,
                    name,
                    t,
                    "s",
                    base,
                    "sqlite3 fetchall, same rows",
                    f"< {TARGET_S} s",
                    t < TARGET_S,
                )
            )
        reg.close()
        runner = CliRunner()
        all_base = median_time(lambda: plain())
        for name, cli_args in (
            (f"cli leads list --json ({n_leads})", ["leads", "list", "--json", "--db", db]),
            (f"cli leads list, table ({n_leads})", ["leads", "list", "--db", db]),
            (
                "cli leads list --state confirmed",
                ["leads", "list", "--state", "confirmed", "--db", db],
            ),
            ("cli schedule --date", ["schedule", "--date", day, "--db", db]),
        ):

            def invoke(a: list[str] = cli_args) -> None:
                res = runner.invoke(cli, a, catch_exceptions=False)
                assert res.exit_code == 0, res.output

            t = median_time(invoke)
            results.append(
                Result(
                    BENCH,
                    name,
                    t,
                    "s",
                    all_base,
                    "sqlite3 fetchall of every lead",
                    f"< {TARGET_S} s",
                    t < TARGET_S,
                    note="in-process: opening the registry and printing included",
                )
            )
        con.close()
        sitewatch = [sys.executable, "-c", "from survey.cli import main; main()"]
        bare = median_time(
            lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), repeat=5
        )
        for name, cmd in (
            (f"process: sitewatch leads list --json ({n_leads})", ("leads", "list", "--json")),
            (f"process: sitewatch leads list, table ({n_leads})", ("leads", "list")),
            (
                "process: sitewatch leads list --state confirmed",
                ("leads", "list", "--state", "confirmed"),
            ),
            ("process: sitewatch schedule --date", ("schedule", "--date", day)),
        ):

            def spawn(c: tuple[str, ...] = cmd) -> None:
                subprocess.run(
                    [*sitewatch, *c, "--db", db],
                    check=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )

            t = median_time(spawn, repeat=5)
            results.append(
                Result(
                    BENCH,
                    name,
                    t,
                    "s",
                    bare,
                    "python -c pass",
                    f"< {TARGET_S} s",
                    t < TARGET_S,
                    note="a new process: interpreter, imports, opening the registry, printing",
                )
            )
    return results


if __name__ == "__main__":
    from _common import format_table

    print(format_table(run(quick="--quick" in sys.argv)))
