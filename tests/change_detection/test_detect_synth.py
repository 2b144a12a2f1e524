"""Known-answer tests on the synthetic site, end to end through run_detect.

Every planted change that must be flagged is found with the right class, area within 10 %
and height within 0.3 m; nothing else is flagged (permitted building, shed, pile, moved cars,
growing trees, shadows, the colour change, the misregistration); re-running and chunking give
the same lead ids; an unchanged pair (the before epoch re-coloured, re-lit and shifted) gives
no lead at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from scipy import ndimage

from change_detection.leads import Lead
from change_detection.params import DetectParams
from survey.pipeline import DetectResult, run_detect
from survey.rasters import write_geotiff
from survey.vectors import read_features

AREA_TOL = 0.10
HEIGHT_TOL_M = 0.3


def _detect(
    site: Any, out: Path, after: tuple[Path, Path] | None = None, **kw: Any
) -> DetectResult:
    """run_detect on the site; ``after`` replaces its after (orthophoto, DSM)."""
    after_ortho, after_dsm = after if after is not None else (site.after_ortho, site.after_dsm)
    return run_detect(
        site.before_ortho,
        after_ortho,
        out,
        before_dsm=site.before_dsm,
        after_dsm=after_dsm,
        permits=site.permits,
        **kw,
    )


def _truth(site: Any) -> list[tuple[Any, dict[str, Any]]]:
    feats = read_features(site.truth_geojson).to_crs(site.truth["crs"])
    return list(zip(feats.geometries, feats.properties, strict=True))


def _match(lead: Lead, truth: list[tuple[Any, dict[str, Any]]], crs: str) -> dict[str, Any] | None:
    from survey.vectors import reproject_geometries

    (geom,) = reproject_geometries([lead.geometry], 4326, crs)
    best, best_overlap = None, 0.0
    for tg, props in truth:
        overlap = geom.intersection(tg).area
        if overlap > best_overlap:
            best, best_overlap = props, overlap
    return best


def check_known_answers(site: Any, result: DetectResult) -> None:
    truth = _truth(site)
    crs = site.truth["crs"]
    found: dict[str, Lead] = {}
    for lead in result.leads:
        props = _match(lead, truth, crs)
        assert props is not None, f"lead {lead.lead_class} {lead.area_m2} m2 matches no change"
        assert props["must_flag"], f"false positive on {props['change_id']} ({props['kind']})"
        assert lead.lead_class == props["expected_class"], (props["change_id"], lead.lead_class)
        assert props["change_id"] not in found, f"{props['change_id']} flagged twice"
        found[props["change_id"]] = lead
    for _, props in truth:
        if not props["must_flag"]:
            continue
        lead = found.get(props["change_id"])
        assert lead is not None, f"missed {props['change_id']} ({props['expected_class']})"
        assert lead.area_m2 == pytest.approx(props["area_m2"], rel=AREA_TOL), props["change_id"]
        assert lead.height_gain_m == pytest.approx(props["height_change_m"], abs=HEIGHT_TOL_M)
        assert lead.floors_added == round(props["height_change_m"] / 3.0)
        assert lead.before_date == site.truth["before_date"]
        assert lead.after_date == site.truth["after_date"]
        assert set(lead.input_hashes) == {
            "before_ortho",
            "after_ortho",
            "before_dsm",
            "after_dsm",
            "permits",
        }
        assert lead.reasons and 0.0 < lead.score <= 1.0


@pytest.fixture(scope="module")
def seed0(synth_site: Any, tmp_path_factory: pytest.TempPathFactory) -> DetectResult:
    """One whole-array run on the default synthetic site, shared by the tests below."""
    return _detect(synth_site, tmp_path_factory.mktemp("detect-seed0"))


def test_known_answers_on_the_synthetic_site(synth_site: Any, seed0: DetectResult) -> None:
    assert seed0.mode == "dsm"
    check_known_answers(synth_site, seed0)
    report = seed0.coregistration
    assert report["coregistered"]
    assert report["vertical_offset_m"] == pytest.approx(
        synth_site.truth["vertical_offset_m"], abs=0.05
    )


def _codes_in(result: DetectResult, geom: Any) -> np.ndarray:
    from survey.synth import polygon_mask

    with rasterio.open(result.change_tif) as ds:
        codes = ds.read(1)
        inside = polygon_mask(geom, ds.transform, codes.shape)
    return np.asarray(codes[inside])


def test_colour_steel_sheds_are_leads_and_vegetation_is_still_suppressed(
    synth_site: Any, seed0: DetectResult, tmp_path: Path
) -> None:
    """Issue 12: the green steel shed and the demolished green roof are leads because their
    DSM is planar; the growing trees and the planted hedge, as green and rough, are still
    suppressed (seen and coded vegetation, no lead). With the colour alone deciding (the
    planarity test off) the green roofs are missed and the blue shed is still found."""
    from change_detection.change import CODE_NEW, CODE_REMOVED, CODE_VEGETATION

    truth = {p["change_id"]: (g, p) for g, p in _truth(synth_site)}
    crs = synth_site.truth["crs"]

    def matched_ids(leads: tuple[Lead, ...]) -> set[str]:
        found = [_match(lead, list(truth.values()), crs) for lead in leads]
        return {str(p["change_id"]) for p in found if p is not None}

    matched = matched_ids(seed0.leads)
    assert {"steel-shed-green", "steel-shed-blue", "demolition-2"} <= matched
    for lead in seed0.leads:  # the reasons tell the inspector why a green roof was kept
        name = _match(lead, list(truth.values()), crs)
        planar_green = any("planar surface" in r for r in lead.reasons)
        is_green_roof = name is not None and name["change_id"] in ("steel-shed-green",
                                                                     "demolition-2")  # fmt: skip
        assert planar_green == is_green_roof, (lead.lead_class, lead.reasons)
    for name, code in (("steel-shed-green", CODE_NEW), ("demolition-2", CODE_REMOVED)):
        inner = _codes_in(seed0, truth[name][0].buffer(-0.5))
        assert (inner == code).mean() > 0.97 and not (inner == CODE_VEGETATION).any(), name
    hedge = _codes_in(seed0, truth["hedge-1"][0])
    assert (hedge == CODE_VEGETATION).sum() > 200  # the hedge passed the height threshold
    assert not np.isin(hedge, (CODE_NEW, CODE_REMOVED)).any()
    trees = [g for g, p in truth.values() if p["kind"] == "tree_growth"]
    seen = sum(int((_codes_in(seed0, g) == CODE_VEGETATION).sum()) for g in trees)
    assert seen > 500
    colour_only = _detect(
        synth_site, tmp_path / "colour", params=DetectParams(planar_residual_m=0.0)
    )
    found = matched_ids(colour_only.leads)
    assert "steel-shed-blue" in found
    assert not found & {"steel-shed-green", "demolition-2"}


def test_known_answers_on_a_second_seed(make_synth_site: Any, tmp_path: Path) -> None:
    site = make_synth_site(1, 80.0, 10.0)
    check_known_answers(site, _detect(site, tmp_path / "out"))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3, 4, 5, 6, 7])
def test_known_answers_on_more_seeds(make_synth_site: Any, tmp_path: Path, seed: int) -> None:
    site = make_synth_site(seed, 80.0, 10.0)
    check_known_answers(site, _detect(site, tmp_path / "out"))


@pytest.mark.slow
def test_known_answers_at_5_cm(make_synth_site: Any, tmp_path: Path) -> None:
    site = make_synth_site(0, 100.0, 5.0)
    check_known_answers(site, _detect(site, tmp_path / "out"))


def test_a_chunked_rerun_gives_the_same_leads(
    synth_site: Any, seed0: DetectResult, tmp_path: Path
) -> None:
    """Re-running (here in 256 px chunks, with dask-backed inputs) gives the same lead ids."""
    chunked = _detect(synth_site, tmp_path / "c", params=DetectParams(chunk_px=256))
    ids = [lead.lead_id for lead in seed0.leads]
    assert ids and ids == [lead.lead_id for lead in chunked.leads]
    for x, y in zip(seed0.leads, chunked.leads, strict=True):
        assert (x.lead_class, x.area_m2, x.height_gain_m, x.floors_added) == (
            y.lead_class,
            y.area_m2,
            y.height_gain_m,
            y.floors_added,
        )
        assert x.geometry.equals_exact(y.geometry, 1e-9)
    with rasterio.open(seed0.change_tif) as a, rasterio.open(chunked.change_tif) as c:
        np.testing.assert_array_equal(a.read(1), c.read(1))


def _after_in_the_next_utm_zone(site: Any, out: Path, gsd_m: float) -> tuple[Path, Path]:
    """The after epoch as another photogrammetry run could deliver it: in the neighbouring
    UTM zone, at another pixel size (the date tag kept)."""
    from pyproj import CRS
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    with rasterio.open(site.after_ortho) as src:
        rgb, valid = src.read(), src.dataset_mask()
        t, crs, tags = src.transform, src.crs, src.tags()
        bounds, shape = src.bounds, (src.height, src.width)
    with rasterio.open(site.after_dsm) as src:
        dsm = src.read(1, masked=True).filled(np.nan).astype(np.float32)
    zone = CRS.from_user_input(crs).to_epsg()
    assert zone is not None and 32601 <= zone <= 32659
    other = f"EPSG:{zone + 1}"
    dst_t, w, h = calculate_default_transform(
        crs, other, shape[1], shape[0], *bounds, resolution=gsd_m
    )

    def warp(a: np.ndarray, resampling: Resampling, nodata: float | None) -> np.ndarray:
        dst = np.full((a.shape[0], h, w), 0 if nodata is None else nodata, a.dtype)
        reproject(
            a,
            dst,
            src_transform=t,
            src_crs=crs,
            src_nodata=nodata,
            dst_transform=dst_t,
            dst_crs=other,
            dst_nodata=nodata,
            resampling=resampling,
        )
        return dst

    ortho = write_geotiff(
        out / "after_ortho_next_zone.tif",
        warp(rgb, Resampling.bilinear, None),
        transform=dst_t,
        crs=other,
        mask=warp(valid[None], Resampling.nearest, None)[0] > 0,
        tags=tags,
    )
    dsm_path = write_geotiff(
        out / "after_dsm_next_zone.tif",
        np.nan_to_num(warp(dsm[None], Resampling.bilinear, np.nan)[0], nan=-9999.0),
        transform=dst_t,
        crs=other,
        nodata=-9999.0,
    )
    return ortho, dsm_path


@pytest.mark.parametrize("chunk_px", [None, 256])
def test_known_answers_with_the_after_epoch_in_another_crs_and_pixel_size(
    synth_site: Any, tmp_path: Path, chunk_px: int | None
) -> None:
    """An after epoch in the next UTM zone at 7 cm is reprojected onto the before grid (chunk
    by chunk when chunked) and co-registered: the same known answers."""
    after = _after_in_the_next_utm_zone(synth_site, tmp_path, 0.07)
    params = DetectParams() if chunk_px is None else DetectParams(chunk_px=chunk_px)
    result = _detect(synth_site, tmp_path / "out", after, params=params)
    assert any("reprojected" in w for w in result.coregistration["warnings"])
    check_known_answers(synth_site, result)


def _unchanged_pair(site: Any, out: Path) -> tuple[Path, Path]:
    """The before epoch re-coloured, with new cast shadows, shifted and lifted: no change."""
    from survey.synth.shadows import cast_shadows

    with rasterio.open(site.before_ortho) as src:
        rgb = src.read().astype(np.float32)
        valid = src.dataset_mask() > 0
        transform, crs = src.transform, src.crs
    with rasterio.open(site.before_dsm) as src:
        dsm = src.read(1, masked=True).filled(np.nan).astype(np.float32)
    gsd = abs(transform.a)
    shadow = cast_shadows(np.nan_to_num(dsm, nan=float(np.nanmin(dsm))), gsd, 120.0, 35.0)
    lit = rgb * (1.0 - 0.5 * shadow)[None]
    gain = np.array([1.08, 1.12, 0.95], np.float32)[:, None, None]
    offset = np.array([10.0, 6.0, -4.0], np.float32)[:, None, None]
    coloured = 255.0 * gain * (lit / 255.0) ** 1.08 + offset
    dy, dx = 2.6, -4.3  # pixels
    moved = np.stack([ndimage.shift(b, (dy, dx), order=1, mode="nearest") for b in coloured])
    moved_valid = ndimage.shift(valid.astype(np.float32), (dy, dx), order=0, cval=0.0) > 0.5
    moved_dsm = ndimage.shift(np.nan_to_num(dsm, nan=-9999.0), (dy, dx), order=1, cval=-9999.0)
    moved_dsm = np.where(moved_dsm > -1000.0, moved_dsm + 0.35, -9999.0).astype(np.float32)
    ortho = write_geotiff(
        out / "after_ortho.tif",
        np.clip(moved, 0, 255).astype(np.uint8),
        transform=transform,
        crs=crs,
        mask=moved_valid,
        tags={"SITEWATCH_SURVEY_DATE": "2025-10-15"},
    )
    dsm_path = write_geotiff(
        out / "after_dsm.tif", moved_dsm, transform=transform, crs=crs, nodata=-9999.0
    )
    return ortho, dsm_path


def test_an_unchanged_pair_gives_no_lead(synth_site: Any, tmp_path: Path) -> None:
    result = _detect(synth_site, tmp_path / "out", _unchanged_pair(synth_site, tmp_path))
    assert result.leads == ()
    assert abs(result.coregistration["shift_x_px"] - 4.3) < 0.3
