"""Benchmark of RGB-only ``sitewatch detect`` on real labelled pairs, against CVA + Otsu.

Inputs: the 14 labelled bi-temporal pairs of ``../shared/realdata/cd`` (WHU-CD at 0.2 m,
GZ-CD at 0.55 m, SZTAKI AirChange at 1.5 m; see its ``SOURCES.md``), each wrapped as a user
would give it: a plain RGB GeoTIFF with no mask, no alpha and no nodata value, run through
``run_detect`` with no DSM (RGB-only mode). The pixels inside the leads are the prediction;
the label (building change, either direction) is the truth.

Baseline, computed in the same run on the same pixels: the change-vector magnitude
``|after - before|`` (RGB, DN) thresholded by Otsu's method per pair.

Reported per pair, per dataset and pooled (pixel counts summed over the pairs): precision,
recall and F1 of both; the number of leads, and the *false leads* (leads touching no labelled
pixel) on the nearly unchanged pairs (``NEARLY_UNCHANGED``). Targets (issue #18): pooled F1 at
least 1.5x the baseline's, at most 2 false leads per nearly unchanged pair.

Held out: the RGB-only parameters were chosen looking at WHU-CD only (and at the synthetic
site); GZ-CD and SZTAKI are unseen data for them, and their rows are the figures that count.

A second, independent check: the synthetic site (``survey.synth``, seed 0, 80 m at 10 cm)
with its DSMs dropped: planted changes that must be flagged and were found, and leads on
anything else (cars, trees, piles, relit roofs).

Run directly (``python benchmarks/bench_rgb_only.py``) for the per-pair table, or through
``benchmarks/run.py rgb_only``. Skips (no results) when the real data folder is absent.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import Result  # noqa: E402

BENCH = "rgb_only"
CD_ROOT = HERE.parent.parent / "shared" / "realdata" / "cd"
#: Ground sample distances of the datasets (``cd/SOURCES.md``).
GSD_M = {"WHU-CD": 0.2, "GZ-CD": 0.55, "SZTAKI-AirChange": 1.5}
#: Datasets the RGB-only parameters were chosen on; the others are unseen.
TUNED_ON = ("WHU-CD",)
#: Pairs where (almost) no building changed: their leads are false leads.
NEARLY_UNCHANGED = ("lgpnet_train_2", "lgpnet_train_3", "lgpnet_test_10")
_EPSG = 32650


@dataclass
class Counts:
    """Pixel counts: true positives, false positives, false negatives."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, pred: np.ndarray, truth: np.ndarray) -> Counts:
        self.tp += int((pred & truth).sum())
        self.fp += int((pred & ~truth).sum())
        self.fn += int((~pred & truth).sum())
        return self

    def prf(self) -> tuple[float, float, float]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)


@dataclass(frozen=True)
class PairResult:
    dataset: str
    name: str
    method: Counts
    baseline: Counts
    leads: int
    false_leads: int
    seconds: float
    max_score: float = 0.0


def _load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB")).transpose(2, 0, 1))


def _load_label(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L")) > 127


def cva_otsu(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """The baseline: change-vector magnitude over RGB, thresholded by Otsu's method."""
    from skimage.filters import threshold_otsu

    d = np.sqrt(((after.astype(np.float64) - before.astype(np.float64)) ** 2).sum(axis=0))
    return np.asarray(d > threshold_otsu(d))


def _lead_masks(leads: Any, shape: tuple[int, int], transform: Any) -> list[np.ndarray]:
    """Each lead (WGS84) rasterised on the pair's pixel grid (pixel centres inside)."""
    import rasterio.features

    from survey.vectors import reproject_geometries

    masks = []
    for lead in leads:
        (geom,) = reproject_geometries([lead.geometry], 4326, _EPSG)
        masks.append(
            rasterio.features.rasterize([(geom, 1)], out_shape=shape, transform=transform).astype(
                bool
            )
        )
    return masks


def run_pair(dataset: str, name: str, before_path: Path, work: Path) -> PairResult:
    """RGB-only run_detect and the baseline on one labelled pair."""
    from affine import Affine

    from survey.pipeline import run_detect
    from survey.rasters import write_geotiff

    gsd = GSD_M[dataset]
    before = _load_rgb(before_path)
    after = _load_rgb(CD_ROOT / dataset / "B" / before_path.name)
    truth = _load_label(CD_ROOT / dataset / "label" / before_path.name)
    transform = Affine(gsd, 0.0, 500_000.0, 0.0, -gsd, 4_000_000.0)
    b = write_geotiff(work / f"{name}_A.tif", before, transform=transform, crs=_EPSG)
    a = write_geotiff(work / f"{name}_B.tif", after, transform=transform, crs=_EPSG)
    t0 = time.perf_counter()
    result = run_detect(b, a, work / f"out-{name}", write_registered=False)
    seconds = time.perf_counter() - t0
    assert result.mode == "rgb_only"
    masks = _lead_masks(result.leads, truth.shape, transform)
    pred = np.zeros(truth.shape, bool)
    for m in masks:
        pred |= m
    false_leads = sum(1 for m in masks if not (m & truth).any())
    return PairResult(
        dataset,
        name,
        Counts().add(pred, truth),
        Counts().add(cva_otsu(before, after), truth),
        len(masks),
        false_leads,
        seconds,
        max((float(lead.score) for lead in result.leads), default=0.0),
    )


def run_pairs() -> list[PairResult]:
    """Every labelled pair, in a fixed order."""
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-rgb-only-") as tmp:
        for dataset in sorted(GSD_M):
            for a in sorted((CD_ROOT / dataset / "A").iterdir()):
                out.append(run_pair(dataset, a.stem, a, Path(tmp)))
    return out


def _pooled(rows: list[PairResult]) -> tuple[Counts, Counts]:
    m, b = Counts(), Counts()
    for r in rows:
        for tot, c in ((m, r.method), (b, r.baseline)):
            tot.tp += c.tp
            tot.fp += c.fp
            tot.fn += c.fn
    return m, b


def synthetic_check() -> tuple[int, int, int]:
    """The synthetic site without DSMs: (must-flag changes found, must-flag changes, leads on
    anything else)."""
    from survey.pipeline import run_detect
    from survey.synth import SynthParams, generate_site
    from survey.vectors import read_features, reproject_geometries

    with tempfile.TemporaryDirectory(prefix="bench-rgb-only-synth-") as tmp:
        site = generate_site(Path(tmp) / "site", SynthParams(seed=0, size_m=80.0, gsd_cm=10.0))
        result = run_detect(site.before_ortho, site.after_ortho, Path(tmp) / "out")
        crs = site.truth["crs"]
        feats = read_features(site.truth_geojson).to_crs(crs)
        truth = list(zip(feats.geometries, feats.properties, strict=True))
        found: set[str] = set()
        false = 0
        for lead in result.leads:
            (geom,) = reproject_geometries([lead.geometry], 4326, crs)
            hits = [p for g, p in truth if p["must_flag"] and geom.intersection(g).area > 0]
            if hits:
                found.update(p["change_id"] for p in hits)
            else:
                false += 1
        must = sum(1 for _, p in truth if p["must_flag"])
        return len(found), must, false


def _table(rows: list[PairResult]) -> str:
    lines = [
        f"{'dataset':17s} {'pair':15s} {'P':>5s} {'R':>5s} {'F1':>5s} | {'base P':>6s} "
        f"{'R':>5s} {'F1':>5s} | leads false  seconds  top score"
    ]
    for r in rows:
        p, rec, f = r.method.prf()
        bp, br, bf = r.baseline.prf()
        lines.append(
            f"{r.dataset:17s} {r.name:15s} {p:5.3f} {rec:5.3f} {f:5.3f} | {bp:6.3f} {br:5.3f} "
            f"{bf:5.3f} | {r.leads:5d} {r.false_leads:5d} {r.seconds:8.2f} {r.max_score:10.3f}"
        )
    for dataset in sorted(GSD_M):
        m, b = _pooled([r for r in rows if r.dataset == dataset])
        seen = "tuned on" if dataset in TUNED_ON else "unseen"
        lines.append(_summary_line(f"{dataset} ({seen})", m, b))
    m, b = _pooled(rows)
    lines.append(_summary_line("POOLED", m, b))
    unseen = [r for r in rows if r.dataset not in TUNED_ON]
    if unseen:
        m, b = _pooled(unseen)
        lines.append(_summary_line("POOLED unseen", m, b))
    return "\n".join(lines)


def _summary_line(label: str, m: Counts, b: Counts) -> str:
    p, r, f = m.prf()
    bp, br, bf = b.prf()
    ratio = f / bf if bf else float("nan")
    return (
        f"{label:33s} {p:5.3f} {r:5.3f} {f:5.3f} | {bp:6.3f} {br:5.3f} {bf:5.3f} | "
        f"F1 ratio {ratio:.2f}"
    )


def run(quick: bool = False) -> list[Result]:
    """Benchmark entry point for ``benchmarks/run.py`` (``quick`` changes nothing)."""
    if not CD_ROOT.is_dir():
        print(f"   {CD_ROOT} is absent: skipped")
        return []
    rows = run_pairs()
    print(_table(rows))
    results: list[Result] = []
    groups: list[tuple[str, list[PairResult]]] = [
        (d, [r for r in rows if r.dataset == d]) for d in sorted(GSD_M)
    ]
    groups.append(("pooled", rows))
    groups.append(("pooled unseen", [r for r in rows if r.dataset not in TUNED_ON]))
    for label, group in groups:
        m, b = _pooled(group)
        f, bf = m.prf()[2], b.prf()[2]
        target = "≥ 1.5x baseline" if label == "pooled" else ""
        results.append(
            Result(
                BENCH,
                f"pixel F1 {label}",
                round(f, 3),
                "F1",
                baseline=round(bf, 3),
                baseline_name="CVA + Otsu",
                target=target,
                ok=(f >= 1.5 * bf) if target else None,
                note="higher is better",
            )
        )
    for r in rows:
        if r.name in NEARLY_UNCHANGED:
            results.append(
                Result(
                    BENCH,
                    f"false leads {r.name}",
                    r.false_leads,
                    "leads",
                    target="≤ 2",
                    ok=r.false_leads <= 2,
                    note=f"{r.leads} leads in all",
                )
            )
    found, must, false = synthetic_check()
    results.append(
        Result(
            BENCH,
            "synthetic site, DSMs dropped: planted changes found",
            found,
            "changes",
            note=f"of {must} that must be flagged; {false} leads on anything else",
        )
    )
    return results


if __name__ == "__main__":
    from _common import format_table

    print(format_table(run()))
