"""OpenDroneMap projects and orthophoto + DSM pairs as survey epochs; NodeODM submission.

Each fixture writes real GeoTIFFs the way OpenDroneMap lays them out; every test expects a
known answer or one clear line naming the file. NodeODM is never faked: only the argument
checks and the error from a closed local port are tested.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.enums import ColorInterp
from shapely.geometry import box

from survey.errors import (
    DetectInputError,
    InputFileError,
    NotGeoreferencedError,
    RasterFormatError,
    SurveyError,
)
from survey.ingest.odm import (
    DEFAULT_NODEODM_OPTIONS,
    NodeODMArgumentError,
    NodeODMError,
    check_nodeodm_request,
    find_epoch,
    submit_to_nodeodm,
)
from survey.rasters import write_geotiff
from tests.survey.ingest._flight import texture, write_photo

CRS = "EPSG:32650"
X0, Y0 = 500_000.0, 2_500_000.0  # top-left corner, UTM 50N
GSD = 0.5
SHAPE = (120, 160)  # rows, cols: 60 x 80 m
ORTHO_BOX = box(X0, Y0 - SHAPE[0] * GSD, X0 + SHAPE[1] * GSD, Y0)
_TO_LL = Transformer.from_crs(CRS, 4326, always_xy=True)
LOG = {
    "odmVersion": "3.5.4",
    "memory": {"total": 64000, "available": 60000},
    "cpus": 16,
    "images": 42,
    "options": {"dsm": True, "dtm": True, "orthophoto-resolution": 5.0, "fast-orthophoto": False},
    "startTime": "2024-05-02T09:15:00.123456",
    "stages": [],
    "processes": [],
    "success": True,
    "endTime": "2024-05-02T10:01:12.5",
}


def _transform(x0: float = X0, y0: float = Y0, gsd: float = GSD) -> Affine:
    return Affine(gsd, 0.0, x0, 0.0, -gsd, y0)


def write_ortho(path: Path, *, crs: str = CRS, transform: Affine | None = None) -> Path:
    """An RGBA uint8 orthophoto as ODM writes it (alpha 0 on a collar of 5 rows)."""
    rgb = np.moveaxis(texture(1, SHAPE), -1, 0)
    alpha = np.full(SHAPE, 255, np.uint8)
    alpha[:5] = 0
    return write_geotiff(
        path,
        np.concatenate([rgb, alpha[None]]),
        transform=transform or _transform(),
        crs=crs,
        colorinterp=(ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha),
    )


def write_heights(
    path: Path, *, offset: float = 0.0, nodata: float | None = -9999.0, x0: float = X0
) -> Path:
    """A float32 height model in metres with ODM's nodata."""
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    z = (30.0 + 0.01 * xx + offset).astype(np.float32)
    z[yy < 3] = -9999.0
    return write_geotiff(path, z, transform=_transform(x0=x0), crs=CRS, nodata=nodata)


def write_project(root: Path, *, dsm: bool = True, dtm: bool = True, log: Any = LOG) -> Path:
    write_ortho(root / "odm_orthophoto" / "odm_orthophoto.tif")
    if dsm:
        write_heights(root / "odm_dem" / "dsm.tif", offset=2.0)
    if dtm:
        write_heights(root / "odm_dem" / "dtm.tif")
    (root / "images").mkdir(parents=True, exist_ok=True)
    if log is not None:
        (root / "log.json").write_text(log if isinstance(log, str) else json.dumps(log))
    return root


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "odm")


def _site(path: Path, geom: Any) -> Path:
    """A GeoJSON site (WGS84) of a UTM geometry."""
    import shapely
    from shapely.geometry import mapping

    ll = shapely.transform(geom, lambda c: np.column_stack(_TO_LL.transform(c[:, 0], c[:, 1])))
    feature = {"type": "Feature", "properties": {}, "geometry": mapping(ll)}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    return path


# --- OpenDroneMap projects ----------------------------------------------------------------------


def test_odm_project_known_answers(project: Path, tmp_path: Path) -> None:
    before = _tree(project)
    site = _site(tmp_path / "site.geojson", ORTHO_BOX.buffer(-5.0))
    epoch = find_epoch(project, site=site)
    assert epoch.source == "opendronemap" and epoch.root == project
    assert epoch.ortho == project / "odm_orthophoto" / "odm_orthophoto.tif"
    assert epoch.dsm == project / "odm_dem" / "dsm.tif"
    assert epoch.dtm == project / "odm_dem" / "dtm.tif"
    assert epoch.crs == CRS and epoch.resolution_m == (GSD, GSD)
    assert epoch.bounds == pytest.approx(ORTHO_BOX.bounds)
    assert epoch.odm_version == "3.5.4" and epoch.odm_success is True
    assert epoch.odm_options == LOG["options"]
    assert epoch.odm_started == LOG["startTime"]
    assert epoch.ortho_reading["validity"] == "alpha band 4"
    assert epoch.site_covered_pct == 100.0
    assert epoch.warnings == ()
    assert set(epoch.rasters) == {"ortho", "dsm", "dtm"}
    record = epoch.record()
    assert json.loads(json.dumps(record)) == record
    assert record["odm_version"] == "3.5.4" and record["dsm"].endswith("dsm.tif")
    assert _tree(project) == before  # read-only: no .aux.xml, nothing changed


def test_sub_folder_reads_its_project(project: Path) -> None:
    epoch = find_epoch(project / "odm_dem")
    assert epoch.root == project and epoch.dsm == project / "odm_dem" / "dsm.tif"
    assert len(epoch.warnings) == 1 and "sub-folder" in epoch.warnings[0]


def test_project_without_dsm_or_log_is_said(tmp_path: Path) -> None:
    root = write_project(tmp_path / "odm", dsm=False, dtm=False, log=None)
    epoch = find_epoch(root)
    assert epoch.dsm is None and epoch.dtm is None and epoch.odm_version is None
    text = " | ".join(epoch.warnings)
    assert "no DSM" in text and "--dsm" in text and "RGB-only" in text
    assert "no log.json" in text


@pytest.mark.parametrize(
    ("log", "words"),
    [
        ("{not json", "cannot be read"),
        ("[1, 2]", "cannot be read"),
        (
            {**LOG, "success": False, "error": {"code": 1, "message": "Not enough memory"}},
            "did not finish (Not enough memory)",
        ),
    ],
)
def test_damaged_or_failed_log_json_is_a_warning(tmp_path: Path, log: Any, words: str) -> None:
    root = write_project(tmp_path / "odm", log=log)
    epoch = find_epoch(root)
    assert any(words in w for w in epoch.warnings)
    assert epoch.dsm is not None


def test_orthophoto_and_dsm_pair(tmp_path: Path) -> None:
    ortho = write_ortho(tmp_path / "ortho.tif")
    dsm = write_heights(tmp_path / "dsm.tif", x0=X0 + 40.0)  # half of the orthophoto
    epoch = find_epoch(ortho, dsm=dsm)
    assert epoch.source == "files" and epoch.root == ortho
    assert epoch.ortho == ortho and epoch.dsm == dsm and epoch.dtm is None
    assert epoch.odm_version is None and epoch.odm_options == {}
    (warning,) = epoch.warnings
    assert "covers 50 % of the orthophoto" in warning


def test_site_partly_outside_is_a_warning_with_its_share(project: Path, tmp_path: Path) -> None:
    minx, miny, maxx, maxy = ORTHO_BOX.bounds
    half_out = box(minx + 40.0, miny, maxx + 40.0, maxy)  # 40 of its 80 m outside
    epoch = find_epoch(project, site=_site(tmp_path / "site.geojson", half_out))
    assert epoch.site_covered_pct == pytest.approx(50.0, abs=0.5)
    assert any("covers 50.0 % of the site" in w for w in epoch.warnings)


# --- one clear line for every unusable input -----------------------------------------------------


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text and isinstance(exc.value, SurveyError)
    return text


def test_missing_path_and_not_a_project(tmp_path: Path) -> None:
    with pytest.raises(InputFileError) as exc:
        find_epoch(tmp_path / "nowhere")
    assert "nowhere: no such file or folder" in _one_line(exc)
    raw = tmp_path / "raw"
    (raw / "images").mkdir(parents=True)
    with pytest.raises(InputFileError) as exc:
        find_epoch(raw)
    text = _one_line(exc)
    assert "no odm_orthophoto/odm_orthophoto.tif" in text and "holds images" in text
    archive = tmp_path / "all.zip"
    archive.write_bytes(b"PK\x03\x04")
    with pytest.raises(InputFileError, match="extract it"):
        find_epoch(archive)


def test_missing_dsm_given_is_one_line(tmp_path: Path) -> None:
    ortho = write_ortho(tmp_path / "ortho.tif")
    with pytest.raises(InputFileError) as exc:
        find_epoch(ortho, dsm=tmp_path / "dsm.tif")
    assert "dsm.tif: DSM not found" in _one_line(exc)


def test_orthophoto_in_degrees_names_the_utm_zone(tmp_path: Path) -> None:
    lon, lat = _TO_LL.transform(X0, Y0)
    ortho = write_ortho(
        tmp_path / "ortho_ll.tif", crs="EPSG:4326", transform=Affine(5e-6, 0, lon, 0, -5e-6, lat)
    )
    with pytest.raises(RasterFormatError) as exc:
        find_epoch(ortho)
    text = _one_line(exc)
    assert "geographic coordinates (degrees)" in text and "gdalwarp -t_srs EPSG:32650" in text


def test_orthophoto_in_feet_is_refused(tmp_path: Path) -> None:
    ortho = write_ortho(
        tmp_path / "ortho_ft.tif", crs="EPSG:2227", transform=_transform(6_000_000.0, 2_000_000.0)
    )
    with pytest.raises(RasterFormatError) as exc:
        find_epoch(ortho)
    assert "projected in US survey foot" in _one_line(exc)


def test_orthophoto_without_crs(tmp_path: Path) -> None:
    ortho = tmp_path / "ortho.tif"
    profile = {"driver": "GTiff", "width": 16, "height": 16, "count": 3, "dtype": "uint8"}
    with rasterio.open(ortho, "w", transform=_transform(), **profile) as ds:
        ds.write(np.zeros((3, 16, 16), np.uint8))
    with pytest.raises(NotGeoreferencedError) as exc:
        find_epoch(ortho)
    assert "has no CRS" in _one_line(exc)


def test_dsm_given_as_the_orthophoto(tmp_path: Path) -> None:
    dsm = write_heights(tmp_path / "dsm.tif")
    with pytest.raises(RasterFormatError) as exc:
        find_epoch(dsm)
    assert "one band of heights (a DSM), not an orthophoto" in _one_line(exc)


def test_dsm_without_nodata_or_in_feet(tmp_path: Path) -> None:
    ortho = write_ortho(tmp_path / "ortho.tif")
    no_nodata = write_heights(tmp_path / "dsm_nonodata.tif", nodata=None)
    with pytest.raises(RasterFormatError) as exc:
        find_epoch(ortho, dsm=no_nodata)
    assert "declares no nodata" in _one_line(exc)
    feet = write_heights(tmp_path / "dsm_ft.tif")
    with rasterio.open(feet, "r+") as ds:
        ds.units = ("ft",)
    with pytest.raises(RasterFormatError) as exc:
        find_epoch(ortho, dsm=feet)
    assert "'ft'" in _one_line(exc) and "metres" in str(exc.value)


def test_dsm_elsewhere_does_not_overlap(tmp_path: Path) -> None:
    ortho = write_ortho(tmp_path / "ortho.tif")
    far = write_heights(tmp_path / "dsm_far.tif", x0=X0 + 5000.0)
    with pytest.raises(DetectInputError) as exc:
        find_epoch(ortho, dtm=far)
    assert "the DTM does not overlap the orthophoto" in _one_line(exc)


def test_site_outside_the_epoch(project: Path, tmp_path: Path) -> None:
    site = _site(tmp_path / "site.geojson", box(X0 + 2000, Y0, X0 + 2100, Y0 + 100))
    with pytest.raises(DetectInputError) as exc:
        find_epoch(project, site=site)
    assert "does not overlap the site site.geojson" in _one_line(exc)


@pytest.mark.realdata
def test_real_orthophoto_and_dsm_pair(realdata: Path) -> None:
    folder = realdata / "rasters" / "multidate"
    epoch = find_epoch(folder / "1_30_RGB.tif", dsm=folder / "1_30_dsm.tif")
    assert epoch.crs == "EPSG:32616"
    assert epoch.resolution_m == pytest.approx((0.27024, 0.27024), abs=1e-5)
    assert epoch.ortho_reading["band_roles"] == {"red": 1, "green": 2, "blue": 3}
    assert epoch.ortho_reading["scaling"]["method"] == "fixed"


# --- NodeODM ------------------------------------------------------------------------------------


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(3):
        write_photo(folder / f"IMG_{k:04d}.JPG", texture(k))
    return folder


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("localhost:3000", "not an http(s) address"),
        ("ftp://localhost:3000", "not an http(s) address"),
        ("http://", "not an http(s) address"),
        ("http://localhost:30x0", "port is not a number"),
        ("http://localhost:3000/task/new", "has a path"),
        ("http://localhost:3000/?tokn=abc", "unknown query parameter(s) tokn"),
    ],
)
def test_bad_urls_are_one_line(photos: Path, url: str, words: str) -> None:
    with pytest.raises(NodeODMArgumentError) as exc:
        submit_to_nodeodm(photos, url)
    assert words in _one_line(exc)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"fast_orthophoto": True}, "write 'fast-orthophoto'"),
        ({"": 1}, "is not one of ODM's option names"),
        ({"dsm": [True]}, "a list"),
        ({"orthophoto-resolution": float("nan")}, "finite number"),
    ],
)
def test_bad_options_are_one_line(photos: Path, options: dict[str, Any], words: str) -> None:
    with pytest.raises(NodeODMArgumentError) as exc:
        submit_to_nodeodm(photos, "http://localhost:3000", options)
    assert words in _one_line(exc)


def test_options_sent_are_the_defaults_and_the_callers() -> None:
    sent = check_nodeodm_request(
        "http://localhost:3000?token=abc", {"orthophoto-resolution": 2, "dtm": False}
    )
    assert sent == {**DEFAULT_NODEODM_OPTIONS, "orthophoto-resolution": 2, "dtm": False}


def test_bad_photo_sets_are_one_line(tmp_path: Path, photos: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    cases: list[tuple[Any, dict[str, Any], str]] = [
        (empty, {}, "no photos"),
        (tmp_path / "nowhere", {}, "no such folder"),
        ([], {}, "no photos to send"),
        ([photos / "IMG_0000.JPG", tmp_path / "gone.JPG"], {}, "gone.JPG: no such file"),
        ([photos / "IMG_0000.JPG", photos / "IMG_0000.JPG"], {}, "two photos named IMG_0000.JPG"),
        (photos, {"geo_txt": tmp_path / "positions.txt"}, "must be called geo.txt"),
        (photos, {"geo_txt": tmp_path / "geo.txt"}, "geo.txt: no such file"),
    ]
    for images, kwargs, words in cases:
        with pytest.raises(InputFileError) as exc:
            submit_to_nodeodm(images, "http://localhost:3000", **kwargs)
        assert words in _one_line(exc), words


def test_unreachable_server_is_one_line_without_the_token(photos: Path) -> None:
    pytest.importorskip("pyodm")
    port = _closed_port()
    before = _tree(photos)
    with pytest.raises(NodeODMError) as exc:
        submit_to_nodeodm(photos, f"http://127.0.0.1:{port}/?token=s3cret", timeout_s=5)
    text = _one_line(exc)
    assert f"http://127.0.0.1:{port} cannot be reached" in text
    assert "Connection refused" in text and "s3cret" not in text
    assert isinstance(exc.value, ConnectionError)
    assert _tree(photos) == before


def test_without_pyodm_the_error_says_how_to_install_it(
    photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyodm", None)  # import pyodm raises ImportError
    with pytest.raises(NodeODMError) as exc:
        submit_to_nodeodm(photos, "http://localhost:3000")
    assert "pip install 'sitewatch[odm]'" in _one_line(exc)
