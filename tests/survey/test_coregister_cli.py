"""``sitewatch coregister`` end to end on real GeoTIFFs with planted misregistration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import Resampling, calculate_default_transform, reproject

from survey.cli import EXIT_ERROR, EXIT_USAGE, run
from survey.coregister import coregister_files
from survey.rasters import open_dsm, open_orthophoto, write_geotiff
from tests.change_detection.test_coregistration_scenes import (
    make_scene,
    render,
    render_lines,
    sample,
    shift_push,
)

GSD = 0.05
T_REF = Affine(GSD, 0, 500000.0, 0, -GSD, 4100000.0)
CRS = "EPSG:32650"
SHAPE = (384, 448)
SHIFT = (-7.3, 12.6)  # px, shift convention: target feature at (x, y) is at (x+sx, y+sy) in ref


def _rgb(grey: np.ndarray) -> np.ndarray:
    return (
        np.clip(np.stack([grey, grey * 0.85 + 10, grey * 1.1 - 5]), 0, 255).round().astype(np.uint8)
    )


@pytest.fixture(scope="module")
def epochs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("coreg")
    scene = make_scene(SHAPE, seed=11)
    ref = render(scene, 135.0)
    push = shift_push(*SHIFT)
    tgt = sample(render(scene, 200.0, 8.0), push) * 0.8 + 30
    valid = np.ones(SHAPE, bool)
    valid[:, -40:] = False
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    ground = 20 + 0.01 * xx + 0.02 * yy
    dsm_ref = (ground + rng.normal(0, 0.02, SHAPE)).astype(np.float32)
    dsm_tgt = (sample(ground, push, order=1) + 0.42 + rng.normal(0, 0.02, SHAPE)).astype(np.float32)
    dsm_tgt[50:90, 60:120] += 7.0  # a new building
    paths = {
        "ref": write_geotiff(
            d / "ref.tif", _rgb(ref), transform=T_REF, crs=CRS, mask=None, nodata=0
        ),
        "tgt": write_geotiff(d / "tgt.tif", _rgb(tgt), transform=T_REF, crs=CRS, mask=valid),
        "ref_dsm": write_geotiff(
            d / "ref_dsm.tif", dsm_ref, transform=T_REF, crs=CRS, nodata=-9999.0
        ),
        "tgt_dsm": write_geotiff(
            d / "tgt_dsm.tif", dsm_tgt, transform=T_REF, crs=CRS, nodata=-9999.0
        ),
        "lines": write_geotiff(
            d / "lines.tif", render_lines(scene).astype(np.uint8), transform=T_REF, crs=CRS
        ),
    }
    return paths


def test_cli_aligns_orthophoto_and_dsm(
    epochs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, out_dsm, rep = tmp_path / "out.tif", tmp_path / "out_dsm.tif", tmp_path / "r.json"
    code = run(
        [
            "coregister",
            "--reference", str(epochs["ref"]),
            "--target", str(epochs["tgt"]),
            "--out", str(out),
            "--report", str(rep),
            "--reference-dsm", str(epochs["ref_dsm"]),
            "--target-dsm", str(epochs["tgt_dsm"]),
            "--out-dsm", str(out_dsm),
        ]
    )  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "shift (-7.2" in printed.out or "shift (-7.3" in printed.out
    report = json.loads(rep.read_text())
    for key in (
        "shift_x_px", "shift_y_px", "shift_convention", "model", "parameters", "rmse_px",
        "n_tiepoints", "n_used", "vertical_offset_m", "confidence", "warnings", "residuals",
    ):  # fmt: skip
        assert key in report
    assert report["shift_x_px"] == pytest.approx(SHIFT[0], abs=0.1)
    assert report["shift_y_px"] == pytest.approx(SHIFT[1], abs=0.1)
    assert report["shift_east_m"] == pytest.approx(SHIFT[0] * GSD, abs=0.005)
    assert report["shift_north_m"] == pytest.approx(-SHIFT[1] * GSD, abs=0.005)
    assert report["vertical_offset_m"] == pytest.approx(0.42, abs=0.05)
    assert report["confidence"] > 0.6
    assert report["inputs"]["target"]["sha256"]
    fc = report["residuals"]
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == report["n_tiepoints"]
    lon, lat = fc["features"][0]["geometry"]["coordinates"]
    assert 116 < lon < 118 and 36 < lat < 38  # UTM 50N, 4100 km north
    assert sum(f["properties"]["used"] for f in fc["features"]) == report["n_used"]
    beside = json.loads(rep.with_suffix(".residuals.geojson").read_text())
    assert beside == fc
    # outputs on the reference grid; aligning them again finds nothing left to remove
    rgb, valid = open_orthophoto(out)
    assert rgb.rio.transform() == T_REF and rgb.shape == (3, *SHAPE)
    # aligned[y, x] = target[y - 12.6, x + 7.3]: no source above row 12.6, and the target's
    # 40 invalid columns on the right come 7.3 px further left
    assert not valid.values[:12].any() and not valid.values[:, -47:].any()
    assert valid.values[14:, :-49].all()
    dsm = open_dsm(out_dsm)
    inner = dsm.values[100:300, 150:300]
    ref_dsm = open_dsm(epochs["ref_dsm"]).values[100:300, 150:300]
    assert float(np.nanmedian(inner - ref_dsm)) == pytest.approx(0.0, abs=0.05)
    again = coregister_files(epochs["ref"], out, tmp_path / "again.tif")
    assert abs(again.report["shift_x_px"]) < 0.1 and abs(again.report["shift_y_px"]) < 0.1


def test_cli_target_on_another_grid_and_crs(epochs: dict[str, Path], tmp_path: Path) -> None:
    with rasterio.open(epochs["tgt"]) as src:
        data = src.read()
        mask = src.dataset_mask()
        dst_crs = "EPSG:3857"
        tr, w, h = calculate_default_transform(src.crs, dst_crs, src.width, src.height, *src.bounds)
        out = np.zeros((3, h, w), np.uint8)
        out_mask = np.zeros((h, w), np.uint8)
        for b in range(3):
            reproject(
                data[b],
                out[b],
                src_transform=src.transform,
                src_crs=src.crs,
                dst_transform=tr,
                dst_crs=dst_crs,
                resampling=Resampling.cubic,
            )
        reproject(
            mask,
            out_mask,
            src_transform=src.transform,
            src_crs=src.crs,
            dst_transform=tr,
            dst_crs=dst_crs,
            resampling=Resampling.nearest,
        )
    path = write_geotiff(
        tmp_path / "tgt3857.tif", out, transform=tr, crs=dst_crs, mask=out_mask > 0
    )
    res = coregister_files(epochs["ref"], path, tmp_path / "o.tif", report=tmp_path / "r.json")
    rep = res.report
    assert rep["shift_x_px"] == pytest.approx(SHIFT[0], abs=0.15)
    assert rep["shift_y_px"] == pytest.approx(SHIFT[1], abs=0.15)
    assert any("reprojected" in w for w in rep["warnings"])


def test_cli_target_offset_by_whole_pixels(epochs: dict[str, Path], tmp_path: Path) -> None:
    rgb, valid = open_orthophoto(epochs["tgt"])
    crop = rgb.values[:, 20:, 30:]  # the same pixels, georeferenced 20 rows / 30 cols further
    t = T_REF * Affine.translation(30, 20)
    path = write_geotiff(
        tmp_path / "crop.tif", crop, transform=t, crs=CRS, mask=valid.values[20:, 30:]
    )
    res = coregister_files(epochs["ref"], path, tmp_path / "o.tif")
    assert res.report["shift_x_px"] == pytest.approx(SHIFT[0], abs=0.1)
    assert res.report["shift_y_px"] == pytest.approx(SHIFT[1], abs=0.1)
    assert res.report["warnings"] == [] or all(
        "reprojected" not in w for w in res.report["warnings"]
    )


def test_cli_line_map_reference(
    epochs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rep = tmp_path / "r.json"
    code = run(
        [
            "coregister",
            "--reference",
            str(epochs["lines"]),
            "--target",
            str(epochs["tgt"]),
            "--out",
            str(tmp_path / "o.tif"),
            "--report",
            str(rep),
        ]
    )
    assert code == 0, capsys.readouterr().err
    report = json.loads(rep.read_text())
    err = np.hypot(report["shift_x_px"] - SHIFT[0], report["shift_y_px"] - SHIFT[1])
    assert err < 0.5 or report["confidence"] < 0.3


def test_cli_no_overlap_is_one_line_error(
    epochs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rgb, valid = open_orthophoto(epochs["tgt"])
    far = write_geotiff(
        tmp_path / "far.tif",
        rgb.values,
        transform=T_REF * Affine.translation(5000, 0),
        crs=CRS,
        mask=valid.values,
    )
    code = run(
        [
            "coregister",
            "--reference",
            str(epochs["ref"]),
            "--target",
            str(far),
            "--out",
            str(tmp_path / "o.tif"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == EXIT_ERROR
    assert len(err.splitlines()) == 1 and "does not overlap" in err and "far.tif" in err
    assert not (tmp_path / "o.tif").exists()


def test_cli_dsm_flags_must_come_together(
    epochs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        [
            "coregister",
            "--reference",
            str(epochs["ref"]),
            "--target",
            str(epochs["tgt"]),
            "--out",
            str(tmp_path / "o.tif"),
            "--target-dsm",
            str(epochs["tgt_dsm"]),
        ]
    )
    assert code == EXIT_USAGE
    assert "--out-dsm" in capsys.readouterr().err


def test_chunked_run_writes_the_same_rasters(epochs: dict[str, Path], tmp_path: Path) -> None:
    kwargs = {
        "reference_dsm": epochs["ref_dsm"],
        "target_dsm": epochs["tgt_dsm"],
    }
    whole = coregister_files(
        epochs["ref"], epochs["tgt"], tmp_path / "w.tif", out_dsm=tmp_path / "wd.tif", **kwargs
    )
    chunked = coregister_files(
        epochs["ref"],
        epochs["tgt"],
        tmp_path / "c.tif",
        out_dsm=tmp_path / "cd.tif",
        chunk_px=256,
        **kwargs,
    )
    assert chunked.aligned.rgb.chunks is not None  # the lazy, windowed path was taken
    assert chunked.report["shift_x_px"] == whole.report["shift_x_px"]
    assert chunked.report["vertical_offset_m"] == pytest.approx(
        whole.report["vertical_offset_m"], abs=1e-4
    )
    with rasterio.open(tmp_path / "w.tif") as a, rasterio.open(tmp_path / "c.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
        np.testing.assert_array_equal(a.dataset_mask(), b.dataset_mask())
        assert b.profile["tiled"] and b.tags()["COREGISTRATION_MODEL"] == whole.report["model"]
    np.testing.assert_array_equal(
        open_dsm(tmp_path / "wd.tif").values, open_dsm(tmp_path / "cd.tif").values
    )
