"""``sitewatch coregister`` end to end on real GeoTIFFs with planted misregistration."""

from __future__ import annotations

import json
import re
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
    PushMap,
    affine_push,
    make_scene,
    mapping_error,
    render,
    render_lines,
    render_map,
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
        # permit maps with outlines centred on the footprints: grey dark on light, and RGB
        # light on dark (a map exported with a dark theme)
        "map_1band": write_geotiff(
            d / "map_1band.tif", render_map(scene).astype(np.uint8), transform=T_REF, crs=CRS
        ),
        "map_3band_dark": write_geotiff(
            d / "map_3band_dark.tif",
            np.stack(
                [render_map(scene, ink=v, paper=p) for v, p in ((230, 25), (200, 35), (120, 60))]
            ).astype(np.uint8),
            transform=T_REF,
            crs=CRS,
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
    m = re.search(r"shift \(([-+]\d+\.\d+), ([-+]\d+\.\d+)\) px", printed.out)
    assert m is not None, printed.out
    assert (float(m[1]), float(m[2])) == pytest.approx(SHIFT, abs=0.1)
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
    assert not [w for w in res.report["warnings"] if "reprojected" in w]


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
    assert err < 0.3, (err, report["confidence"])  # was 0.76 px at confidence 0.14
    assert report["confidence"] > 0.3
    assert report["representation"] == {"reference": "lines (dark on light)", "target": "gradient"}


# --- rotation and scale at the file level --------------------------------------------------------

CENTER = ((SHAPE[0] - 1) / 2, (SHAPE[1] - 1) / 2)
INVALID_COLS = 40  # the target's right-hand columns without data


def _affine_target(tmp_path: Path, push: PushMap) -> Path:
    """The after epoch (another sun, other exposure) seen through ``push`` (target pixel ->
    reference pixel), as an RGB GeoTIFF on the reference's grid, with a mask: no data where
    ``push`` leaves the rendered scene and in the last :data:`INVALID_COLS` columns."""
    after = render(make_scene(SHAPE, seed=11), 200.0, 8.0) * 0.8 + 30
    rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]].astype(np.float64)
    pr, pc = push(rows, cols)
    inside = (pr >= 0) & (pr <= SHAPE[0] - 1) & (pc >= 0) & (pc <= SHAPE[1] - 1)
    valid = inside & (cols < SHAPE[1] - INVALID_COLS)
    rgb = _rgb(sample(after, push))
    return write_geotiff(tmp_path / "tgt_affine.tif", rgb, transform=T_REF, crs=CRS, mask=valid)


def _true_pull(push: PushMap, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, ...]:
    """Target (row, col) showing each reference pixel: ``push`` inverted by fixed point."""
    qr, qc = rows.astype(np.float64).copy(), cols.astype(np.float64).copy()
    for _ in range(20):
        pr, pc = push(qr, qc)
        qr, qc = qr + rows - pr, qc + cols - pc
    return qr, qc


@pytest.mark.parametrize(
    ("reference", "rot_deg", "scale", "shift"),
    [
        ("ref", 0.8, 1.0, (2.4, -3.1)),
        ("ref", -0.4, 1.006, (-1.7, 0.6)),
        ("map_1band", 0.8, 1.0, (2.4, -3.1)),
        ("map_1band", 0.0, 0.994, (1.1, 2.3)),
        ("map_3band_dark", -0.5, 1.004, (-2.2, -1.4)),
    ],
)
def test_cli_rotation_and_scale(
    epochs: dict[str, Path],
    tmp_path: Path,
    reference: str,
    rot_deg: float,
    scale: float,
    shift: tuple[float, float],
) -> None:
    """The after raster resampled through a known affine is brought back onto the reference
    (a photo, or a permit map) grid: the report gives the rotation and scale, the written
    raster shows the after scene where it was, its mask where the truth puts it."""
    push = affine_push(shift[0], shift[1], rot_deg, scale, CENTER)
    target = _affine_target(tmp_path, push)
    out, rep = tmp_path / "out.tif", tmp_path / "r.json"
    code = run(
        ["coregister", "--reference", str(epochs[reference]), "--target", str(target),
         "--out", str(out), "--report", str(rep)]
    )  # fmt: skip
    assert code == 0
    report = json.loads(rep.read_text())
    is_map = reference != "ref"
    assert report["representation"]["reference"] == (
        "gradient"
        if not is_map
        else "lines (light on dark)"
        if "dark" in reference
        else "lines (dark on light)"
    )
    assert report["model"] in ("affine", "warp")
    params = report["parameters"]
    # photo pairs: measured within 0.01 deg and 0.0002; maps within 0.03 deg and 0.0007
    assert params["rotation_deg"] == pytest.approx(rot_deg, abs=0.06 if is_map else 0.02)
    assert params["scale_x"] == pytest.approx(scale, abs=0.0015 if is_map else 0.0005)
    assert params["scale_y"] == pytest.approx(scale, abs=0.0015 if is_map else 0.0005)
    assert report["confidence"] > 0.6
    # the report's pull matrix against the truth, over the raster
    m = np.asarray(params["pull_matrix"])

    def pull(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return m[1, 0] * cols + m[1, 1] * rows + m[1, 2], m[0, 0] * cols + m[0, 1] * rows + m[0, 2]

    if report["model"] == "affine":
        assert mapping_error(pull, push, SHAPE) < (0.3 if is_map else 0.1)
    # the written raster: on the reference grid, the after scene where the reference shows it
    with rasterio.open(out) as ds:
        assert ds.transform == T_REF and ds.crs == rasterio.crs.CRS.from_string(CRS)
        assert ds.tags()["COREGISTRATION_MODEL"] == report["model"]
        aligned = ds.read().astype(np.float64)
        valid = ds.dataset_mask() > 0
    rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    qr, qc = _true_pull(push, rows, cols)
    # valid where the truth draws on valid target pixels (showing the rendered scene), 2 px
    # clear of any edge
    inside = (qr >= 2) & (qr <= SHAPE[0] - 3) & (qc >= 2) & (qc <= SHAPE[1] - INVALID_COLS - 3)
    inside &= (rows >= 2) & (rows <= SHAPE[0] - 3) & (cols >= 2) & (cols <= SHAPE[1] - 3)
    outside = (qr < -2) | (qr > SHAPE[0] + 1) | (qc < -2) | (qc > SHAPE[1] - INVALID_COLS + 1)
    assert valid[inside].all() and not valid[outside].any()
    after = render(make_scene(SHAPE, seed=11), 200.0, 8.0) * 0.8 + 30
    expected = _rgb(after).astype(np.float64)
    unaligned = open_orthophoto(target)[0].values.astype(np.float64)
    core = inside & (rows > 8) & (rows < SHAPE[0] - 8) & (cols > 8) & (cols < SHAPE[1] - 8)
    error = np.abs(aligned - expected)[:, core].mean()
    assert error < 1.5  # grey levels; bilinear resampling of the after raster
    assert np.abs(unaligned - expected)[:, core].mean() > 5 * error


def test_cli_map_of_another_place_is_not_trusted(
    epochs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A permit map of another town on the same grid: reported, never trusted."""
    other = write_geotiff(
        tmp_path / "other_map.tif",
        render_map(make_scene(SHAPE, seed=12), text=30).astype(np.uint8),
        transform=T_REF,
        crs=CRS,
    )
    rep = tmp_path / "r.json"
    code = run(
        ["coregister", "--reference", str(other), "--target", str(epochs["tgt"]),
         "--out", str(tmp_path / "o.tif"), "--report", str(rep)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = json.loads(rep.read_text())
    assert report["representation"]["reference"] == "lines (dark on light)"
    assert report["confidence"] < 0.3
    assert any("tie points" in w for w in report["warnings"])
    code = run(
        ["coregister", "--reference", str(other), "--target", str(epochs["tgt"]),
         "--out", str(tmp_path / "strict.tif"), "--strict"]
    )  # fmt: skip
    assert code == EXIT_ERROR and not (tmp_path / "strict.tif").exists()


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
