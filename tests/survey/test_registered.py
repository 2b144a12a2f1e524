"""The co-registered after epoch of a detection run, and the map and package drawn from it.

Known answers from the synthetic site: its after epoch is misregistered by (-0.72, -0.22) m
and 0.15 degrees (truth.json); after detection, ``after_registered*.tif`` must sit on the
before geometry (no residual image shift, DSM equal to the before DSM outside the planted
changes up to the DSM noise), while the original after rasters do not.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize
from scipy import ndimage
from skimage.registration import phase_cross_correlation

from change_detection.params import DetectParams
from maps import build_evidence_package, render_review_map
from maps.derived import DERIVED_ROLE, REGISTERED_LABEL
from maps.errors import PackageError
from survey.cli import run
from survey.pipeline import DetectResult, run_detect
from survey.rasters import sha256_file
from survey.registered import DERIVED_ROLE as SURVEY_DERIVED_ROLE
from survey.vectors import read_features
from tests.maps.synth_leads import permits_of


@pytest.fixture(scope="module")
def detected(synth_site: Any, tmp_path_factory: pytest.TempPathFactory) -> DetectResult:
    return run_detect(
        synth_site.before_ortho,
        synth_site.after_ortho,
        tmp_path_factory.mktemp("registered"),
        before_dsm=synth_site.before_dsm,
        after_dsm=synth_site.after_dsm,
        permits=synth_site.permits,
        params=DetectParams(chunk_px=512),
    )


def _read(path: Path) -> tuple[np.ndarray, Any]:
    with rasterio.open(path) as ds:
        return ds.read(masked=True).filled(np.nan).squeeze(), ds.transform


def test_registered_rasters_are_on_the_before_grid_and_in_provenance(
    detected: DetectResult, synth_site: Any
) -> None:
    assert detected.after_registered == detected.out_dir / "after_registered.tif"
    assert detected.after_registered_dsm == detected.out_dir / "after_registered_dsm.tif"
    with rasterio.open(synth_site.before_ortho) as ref:
        grid = (ref.crs, ref.transform, ref.shape)
    with rasterio.open(detected.after_registered) as ds:
        assert (ds.crs, ds.transform, ds.shape) == grid
        assert ds.count == 3 and ds.dtypes == ("uint8",) * 3
        assert ds.profile["tiled"] and ds.profile["blockxsize"] == 512
        assert ds.compression is not None
        assert all(rasterio.enums.MaskFlags.per_dataset in f for f in ds.mask_flag_enums)
        mask = ds.dataset_mask()
        assert 0.8 < (mask > 0).mean() < 1.0  # the moved after epoch leaves a border empty
        tags = ds.tags()
    with rasterio.open(detected.after_registered_dsm) as ds:
        assert (ds.crs, ds.transform, ds.shape) == grid
        assert ds.dtypes == ("float32",) and np.isnan(ds.nodata)
        dsm_tags = ds.tags()
    after_sha = sha256_file(synth_site.after_ortho)
    assert tags["SITEWATCH_DERIVED_FROM_SHA256"] == after_sha
    assert dsm_tags["SITEWATCH_DERIVED_FROM_SHA256"] == sha256_file(synth_site.after_dsm)
    assert tags["SITEWATCH_REFERENCE_SHA256"] == sha256_file(synth_site.before_ortho)
    assert tags["SITEWATCH_ROLE"] == DERIVED_ROLE == SURVEY_DERIVED_ROLE
    assert tags["SITEWATCH_SURVEY_DATE"] == "2025-10-15"

    prov = json.loads(detected.provenance_json.read_text(encoding="utf-8"))
    coreg = json.loads(detected.coregistration_json.read_text(encoding="utf-8"))
    for name, role, original in (
        ("after_registered.tif", "after_ortho", synth_site.after_ortho),
        ("after_registered_dsm.tif", "after_dsm", synth_site.after_dsm),
    ):
        out = prov["outputs"][name]
        assert out["sha256"] == sha256_file(out["path"])
        assert out["role"] == DERIVED_ROLE
        assert out["derived_from"]["role"] == role
        assert out["derived_from"]["sha256"] == sha256_file(original)
        assert out["derived_from"]["sha256"] == prov["inputs"][role]["sha256"]
        assert out["reference_grid"]["sha256"] == prov["inputs"]["before_ortho"]["sha256"]
        assert out["coregistration"]["model"] == coreg["model"]
        assert out["coregistration"]["shift_x_px"] == pytest.approx(coreg["shift_x_px"])
        assert out["coregistration"]["vertical_offset_m"] == pytest.approx(
            coreg["vertical_offset_m"]
        )
    # every earlier output is still there
    for name in ("leads.geojson", "leads.gpkg", "change.tif", "coregistration.json"):
        assert name in prov["outputs"]


def test_registered_dsm_matches_the_before_dsm_outside_the_changes(
    detected: DetectResult, synth_site: Any
) -> None:
    before, transform = _read(synth_site.before_dsm)
    after, _ = _read(synth_site.after_dsm)
    assert detected.after_registered_dsm is not None
    registered, _ = _read(detected.after_registered_dsm)
    truth = read_features(synth_site.truth_geojson, "truth").to_crs(synth_site.truth["crs"])
    changed = rasterize(
        [(g.buffer(1.0), 1) for g in truth.geometries], out_shape=before.shape, transform=transform
    ).astype(bool)
    ok = ~changed & np.isfinite(before) & np.isfinite(after) & np.isfinite(registered)
    reg_all = float(np.median(np.abs(registered - before)[ok]))
    orig_all = float(np.median(np.abs(after - before)[ok]))
    # measured 0.078 m (the DSM noise: 0.094 m per epoch) against 0.157 m
    assert reg_all < 0.1
    assert orig_all > 1.5 * reg_all
    # Edges of unchanged buildings (within 0.5 m of a 2.5 m step in the before DSM): the
    # misregistration moves them by 0.76 m; measured 0.18 m registered against 0.78 m.
    filled = np.where(np.isfinite(before), before, np.nanmedian(before))
    edges = ok & ((ndimage.maximum_filter(filled, 11) - ndimage.minimum_filter(filled, 11)) > 2.5)
    assert edges.sum() > 5000
    reg_edge = float(np.median(np.abs(registered - before)[edges]))
    orig_edge = float(np.median(np.abs(after - before)[edges]))
    assert reg_edge < 0.3
    assert orig_edge > 3.0 * reg_edge
    # the vertical offset is removed: signed median near zero
    assert abs(float(np.median((registered - before)[ok]))) < 0.03


def _edges(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        grey = ds.read().astype(np.float64).mean(axis=0)
    mag = np.hypot(ndimage.sobel(grey, 0), ndimage.sobel(grey, 1))
    n = mag.shape[0]
    return mag[n // 5 : -n // 5, n // 5 : -n // 5]


def test_registered_orthophoto_has_no_residual_shift(
    detected: DetectResult, synth_site: Any
) -> None:
    assert detected.after_registered is not None
    before = _edges(synth_site.before_ortho)
    orig, _, _ = phase_cross_correlation(before, _edges(synth_site.after_ortho), upsample_factor=20)
    reg, _, _ = phase_cross_correlation(
        before, _edges(detected.after_registered), upsample_factor=20
    )
    assert np.hypot(*orig) > 5.0  # (-2.25, 7.2) px: the planted misregistration
    assert np.hypot(*reg) < 0.3


def _package_args(site: Any, det: DetectResult, lead_id: str, out: Path) -> list[str]:
    return [
        "package",
        "--leads",
        str(det.leads_geojson),
        "--lead",
        lead_id,
        "--before-ortho",
        str(site.before_ortho),
        "--after-ortho",
        str(site.after_ortho),
        "--before-dsm",
        str(site.before_dsm),
        "--after-dsm",
        str(site.after_dsm),
        "--after-registered",
        str(det.after_registered),
        "--after-registered-dsm",
        str(det.after_registered_dsm),
        "--out",
        str(out),
    ]


def test_package_cli_with_registered_rasters_verifies_and_lists_them(
    detected: DetectResult, synth_site: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lead = max(detected.leads, key=lambda x: x.score)
    out = tmp_path / "pkg"
    code = run(_package_args(synth_site, detected, lead.lead_id, out))
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    # originals unchanged: checked against the lead's recorded hashes
    for role in ("before_ortho", "after_ortho", "before_dsm", "after_dsm"):
        entry = manifest["inputs"][role]
        assert entry["sha256"] == entry["sha256_now"] == sha256_file(getattr(synth_site, role))
        assert entry["matches"] is True
    assert detected.after_registered is not None and detected.after_registered_dsm is not None
    for key, path, role in (
        ("after_registered", detected.after_registered, "after_ortho"),
        ("after_registered_dsm", detected.after_registered_dsm, "after_dsm"),
    ):
        d = manifest["derived"][key]
        assert d["file"] == path.name and d["sha256"] == sha256_file(path)
        assert d["role"] == "derived: co-registered after epoch"
        assert d["derived_from"]["role"] == role
        assert d["derived_from"]["sha256"] == lead.input_hashes[role]
        assert d["derived_from"]["matches_lead"] is True
        assert d["coregistration"]["model"] == detected.coregistration["model"]
    assert "co-registered" in (out / "README.txt").read_text()
    assert REGISTERED_LABEL[1:] in (out / "map.html").read_text()
    sha = shutil.which("sha256sum")
    if sha is not None:
        res = subprocess.run([sha, "-c", "--strict", "manifest.sha256"], cwd=out)
        assert res.returncode == 0


def test_package_refuses_a_derivative_of_another_original(
    detected: DetectResult, synth_site: Any, tmp_path: Path
) -> None:
    assert detected.after_registered is not None
    other = tmp_path / "after_registered.tif"
    shutil.copyfile(detected.after_registered, other)
    with rasterio.open(other, "r+") as ds:
        ds.update_tags(SITEWATCH_DERIVED_FROM_SHA256="0" * 64)
    with pytest.raises(PackageError, match="derived from after ortho"):
        build_evidence_package(
            detected.leads[0],
            before_ortho=synth_site.before_ortho,
            after_ortho=synth_site.after_ortho,
            out_dir=tmp_path / "pkg",
            after_registered=other,
        )


def test_review_map_draws_the_registered_after_epoch(
    detected: DetectResult, synth_site: Any, tmp_path: Path
) -> None:
    assert detected.after_registered is not None
    rm = render_review_map(
        detected.leads,
        before_ortho=synth_site.before_ortho,
        after_ortho=synth_site.after_ortho,
        out_html=tmp_path / "review.html",
        permits=permits_of(synth_site),
        after_registered=detected.after_registered,
    )
    page = rm.html.read_text(encoding="utf-8")
    assert "After (co-registered to before)" in page
    assert sha256_file(detected.after_registered) in page  # the image shown, by hash
    assert sha256_file(synth_site.after_ortho) in page  # and the original it derives from
    assert REGISTERED_LABEL in rm.dual_html.read_text(encoding="utf-8")
    # the after tiles are the registered raster's: a tile of the centre matches the before
    # tile far better than the original after tile does
    plain = render_review_map(
        [],
        before_ortho=synth_site.before_ortho,
        after_ortho=synth_site.after_ortho,
        out_html=tmp_path / "plain" / "review.html",
    )
    z = rm.tiles["after"].max_zoom
    names = sorted(
        p.relative_to(rm.files_dir / "tiles" / "after")
        for p in (rm.files_dir / "tiles" / "after" / str(z)).rglob("*.png")
    )
    assert names
    from PIL import Image

    def tile(root: Path, rel: Path) -> np.ndarray:
        return np.asarray(Image.open(root / rel).convert("L"), dtype=np.float64)

    mid = names[len(names) // 2]
    before_t = tile(rm.files_dir / "tiles" / "before", mid)
    reg_t = tile(rm.files_dir / "tiles" / "after", mid)
    orig_t = tile(plain.files_dir / "tiles" / "after", mid)

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    assert corr(before_t, reg_t) > corr(before_t, orig_t) + 0.05


def test_map_cli_accepts_the_registered_orthophoto(
    detected: DetectResult, synth_site: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "review.html"
    code = run(
        [
            "map",
            "--leads",
            str(detected.leads_geojson),
            "--before-ortho",
            str(synth_site.before_ortho),
            "--after-ortho",
            str(synth_site.after_ortho),
            "--after-registered",
            str(detected.after_registered),
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "After (co-registered to before)" in out.read_text(encoding="utf-8")


def test_no_registered_flag_writes_none(synth_site: Any, tmp_path: Path) -> None:
    out = tmp_path / "det"
    code = run(
        [
            "detect",
            "--before-ortho",
            str(synth_site.before_ortho),
            "--after-ortho",
            str(synth_site.after_ortho),
            "--no-registered",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert not (out / "after_registered.tif").exists()
    prov = json.loads((out / "provenance.json").read_text())
    assert "after_registered.tif" not in prov["outputs"]
    # RGB-only mode without the flag: the orthophoto only
    rgb_only = run_detect(synth_site.before_ortho, synth_site.after_ortho, tmp_path / "rgb")
    assert rgb_only.mode == "rgb_only"
    assert rgb_only.after_registered is not None and rgb_only.after_registered.is_file()
    assert rgb_only.after_registered_dsm is None
    assert not (tmp_path / "rgb" / "after_registered_dsm.tif").exists()


def test_chunked_detection_reads_the_registered_rasters_with_the_same_result(
    synth_site: Any, tmp_path: Path
) -> None:
    """Chunked runs detect on the written rasters instead of a second warp: same output."""
    runs = {}
    for write in (False, True):
        runs[write] = run_detect(
            synth_site.before_ortho,
            synth_site.after_ortho,
            tmp_path / f"out-{write}",
            before_dsm=synth_site.before_dsm,
            after_dsm=synth_site.after_dsm,
            permits=synth_site.permits,
            site=synth_site.site,
            params=DetectParams(chunk_px=256),  # 800 px > 4 chunks: dask-backed
            write_registered=write,
        )
    plain, registered = runs[False], runs[True]
    assert plain.after_registered is None and registered.after_registered is not None
    assert "registered" in registered.timings_s
    assert json.loads(plain.leads_geojson.read_text()) == json.loads(
        registered.leads_geojson.read_text()
    )
    with rasterio.open(plain.change_tif) as a, rasterio.open(registered.change_tif) as b:
        assert np.array_equal(a.read(1), b.read(1))
    # on the site-cropped detection grid
    with rasterio.open(registered.after_registered) as ds:
        prov = json.loads(registered.provenance_json.read_text())
        assert list(ds.transform)[:6] == pytest.approx(prov["grid"]["transform"])
        assert [ds.height, ds.width] == prov["grid"]["shape"]
