"""The demo: every stage of sitewatch run on the bundled synthetic site.

``run_demo(out)`` generates the default synthetic site, plans its survey flights, and hands the
two epochs to the later stages as they exist. Each stage writes into its own sub-folder of
``out`` and returns what it produced, so the summary can say where everything is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from survey.synth import SynthParams, SynthSite, generate_site

__all__ = ["DemoResult", "DemoStage", "run_demo"]

log = logging.getLogger(__name__)

#: The flight-plan GSD of the demo: the synthetic orthophoto's 5 cm would need 18 m flights,
#: so the demo plans at the GSD a Phantom 4 Pro gets at ~55 m, a usual enforcement survey.
DEMO_PLAN_GSD_CM = 1.5


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


def _timed(
    result: DemoResult,
    name: str,
    fn: Callable[[], tuple[str, dict[str, Path], tuple[str, ...]]],
    progress: Callable[[str], None],
) -> None:
    progress(f"[{len(result.stages) + 2}] {name} ...")
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
    _timed(result, "flight plan", lambda: _plan(result), progress)
    return result


def _plan(result: DemoResult) -> tuple[str, dict[str, Path], tuple[str, ...]]:
    from flightplans import PlanParams, get_camera
    from survey.sites import plan_site

    out = result.out_dir / "plan"
    params = PlanParams(gsd_cm=DEMO_PLAN_GSD_CM, camera=get_camera("phantom4pro"))
    plan = plan_site(result.site.site, out, params)
    s = plan.summary()
    result.data["plan"] = plan
    headline = (
        f"{s['n_sorties']} sortie(s), {s['n_photos']} photos at {s['alt_m']:.0f} m "
        f"({s['gsd_cm']:.1f} cm/px), {s['length_m'] / 1000:.2f} km, "
        f"{s['duration_s'] / 60:.1f} min, bearing {s['angle_deg']:.0f} deg"
    )
    outputs = {
        "QGroundControl plan": out / "sortie-01.plan",
        "mission GeoJSON": out / "mission.geojson",
    }
    return headline, outputs, ()
