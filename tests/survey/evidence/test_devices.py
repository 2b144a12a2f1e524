"""What the store records about the device behind a file (:mod:`survey.evidence.devices`):
a georeferenced TIFF is a raster with its grid, a camera's TIFF or JPEG a photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import ExifTags, Image
from rasterio.transform import from_origin

from survey.cli import run
from survey.evidence import EvidenceStore
from tests.survey.evidence._helpers import write_photo


def _geotiff(path: Path, *, crs: str | None = "EPSG:32650", bigtiff: bool = False) -> Path:
    """A 3-band 40 x 30 uint8 GeoTIFF at 0.1 m, its origin at (500000, 2700000)."""
    data = np.random.default_rng(1).integers(0, 255, (3, 30, 40), dtype=np.uint8)
    profile = {
        "driver": "GTiff",
        "width": 40,
        "height": 30,
        "count": 3,
        "dtype": "uint8",
        "crs": crs,
        "transform": from_origin(500000.0, 2700000.0, 0.1, 0.1),
    }
    if bigtiff:
        profile["BIGTIFF"] = "YES"
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
        ds.update_tags(TIFFTAG_SOFTWARE="OpenDroneMap 3.5.4")
    return path


def _camera_tiff(path: Path) -> Path:
    """A TIFF as a multispectral camera writes it: EXIF Make and Model, no georeferencing."""
    ex = Image.Exif()
    ex[ExifTags.Base.Make] = "MicaSense"
    ex[ExifTags.Base.Model] = "RedEdge-M"
    Image.fromarray(np.zeros((20, 30), np.uint16)).save(path, format="TIFF", exif=ex.tobytes())
    return path


def test_a_geotiff_is_a_raster_and_a_camera_tiff_a_photo(
    tmp_path: Path, store: EvidenceStore, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [
        _geotiff(tmp_path / "orthophoto.tif"),
        _geotiff(tmp_path / "dsm_bigtiff.tif", bigtiff=True),
        _geotiff(tmp_path / "no_crs.tif", crs=None),
        _camera_tiff(tmp_path / "IMG_0001_1.tif"),
        write_photo(tmp_path / "DJI_0001.JPG", body_serial="CAM-77"),
    ]
    items = store.add(files, case="C-1")
    adds = {e["source"]: e["device"] for e in store.entries() if e.type == "add"}
    ortho = adds[str(files[0].resolve())]
    assert ortho == {
        "kind": "raster",
        "format": "GeoTIFF",
        "width": 40,
        "height": 30,
        "bands": 3,
        "dtype": "uint8",
        "crs": "EPSG:32650",
        "pixel_size": [0.1, 0.1],
        "software": "OpenDroneMap 3.5.4",
    }
    big = adds[str(files[1].resolve())]
    assert (big["kind"], big["crs"], big["width"]) == ("raster", "EPSG:32650", 40)
    no_crs = adds[str(files[2].resolve())]  # a geotransform without a CRS is still a raster
    assert no_crs["kind"] == "raster" and "crs" not in no_crs
    assert no_crs["pixel_size"] == [0.1, 0.1]
    camera = adds[str(files[3].resolve())]
    assert (camera["kind"], camera["make"], camera["format"]) == ("photo", "MicaSense", "TIFF")
    jpeg = adds[str(files[4].resolve())]
    assert (jpeg["kind"], jpeg["camera_serial"]) == ("photo", "CAM-77")
    # read from the stored copies, with nothing written beside them (no .aux.xml)
    stored = sorted(p.name for p in (store.root / "objects").rglob("*") if p.is_file())
    assert stored == sorted(i.sha256 for i in items)
    # `evidence log` shows the rasters as rasters
    assert run(["evidence", "log", str(store.root)]) == 0
    log = capsys.readouterr().out
    for name, kind in (("orthophoto.tif", "raster"), ("IMG_0001_1.tif", "photo")):
        (line,) = [ln for ln in log.splitlines() if name in ln]
        assert f", {kind}" in line, line
