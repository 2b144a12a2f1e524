"""The synthetic site's planted misregistration and DSM offset are removed by align_epoch."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from change_detection import AlignedEpoch, CoregParams, align_epoch
from survey.rasters import open_dsm, open_orthophoto


def _truth_error_px(aligned: AlignedEpoch, transform: Any, mis: dict[str, Any]) -> np.ndarray:
    """Distance (px) between the estimated and the planted pull map over the raster."""
    r = aligned.result
    h, w = r.shape
    rows, cols = np.mgrid[16 : h - 16 : 8, 16 : w - 16 : 8].astype(float)
    qr, qc = r.source_coordinates(rows, cols)
    t = transform
    e = t.c + t.a * (cols + 0.5)
    n = t.f + t.e * (rows + 0.5)
    rot = math.radians(mis["rotation_deg"])
    ce, cn = mis["center"]
    de, dn = mis["shift_m"]
    # truth: a ground point at (E, N) appears in the after rasters at R (p - c) + c + d
    ef = math.cos(rot) * (e - ce) - math.sin(rot) * (n - cn) + ce + de
    nf = math.sin(rot) * (e - ce) + math.cos(rot) * (n - cn) + cn + dn
    true_c = (ef - t.c) / t.a - 0.5
    true_r = (nf - t.f) / t.e - 0.5
    return np.hypot(qc - true_c, qr - true_r)


def _align(site: Any) -> tuple[AlignedEpoch, Any]:
    rb, vb = open_orthophoto(site.before_ortho)
    ra, va = open_orthophoto(site.after_ortho)
    aligned = align_epoch(
        rb,
        ra,
        va,
        open_dsm(site.after_dsm),
        open_dsm(site.before_dsm),
        CoregParams(),
        reference_valid=vb,
    )
    return aligned, rb.rio.transform()


def _check(site: Any) -> None:
    aligned, transform = _align(site)
    mis = site.truth["misregistration"]
    err = _truth_error_px(aligned, transform, mis)
    assert float(np.sqrt(np.mean(err**2))) < 0.25
    assert float(err.max()) < 0.5
    rc = mis["register_shift_rc_px"]  # (row, col), same sign as our shift
    r = aligned.result
    assert (r.shift_y_px, r.shift_x_px) == pytest.approx(tuple(rc), abs=0.25)
    assert r.confidence > 0.6
    assert aligned.vertical_offset_m == pytest.approx(site.truth["vertical_offset_m"], abs=0.05)
    report = aligned.report()
    assert report["vertical_offset_m"] == aligned.vertical_offset_m
    # the aligned DSM has no vertical offset left on the ground
    before = open_dsm(site.before_dsm).values
    after = aligned.dsm.values if aligned.dsm is not None else None
    assert after is not None
    both = np.isfinite(before) & np.isfinite(after)
    assert float(np.median((after - before)[both])) == pytest.approx(0.0, abs=0.05)


def test_synth_site_misregistration_removed(synth_site: Any) -> None:
    _check(synth_site)


def test_synth_site_other_seed(make_synth_site: Any) -> None:
    _check(make_synth_site(3, 80.0, 10.0))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 4, 5, 6])
def test_synth_site_many_seeds(make_synth_site: Any, seed: int) -> None:
    _check(make_synth_site(seed, 80.0, 10.0))
