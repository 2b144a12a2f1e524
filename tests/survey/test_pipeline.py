"""run_detect end to end: the files it writes, their content, and its errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box, mapping

from change_detection.change import CHANGE_CODES
from change_detection.errors import PermitError
from change_detection.leads import leads_from_feature_collection
from change_detection.params import DetectParams
from survey.errors import DetectInputError
from survey.pipeline import DetectResult, run_detect
from survey.rasters import sha256_file, write_geotiff
from survey.vectors import read_features, write_features


@pytest.fixture(scope="module")
def detected(synth_site: Any, tmp_path_factory: pytest.TempPathFactory) -> DetectResult:
    out = tmp_path_factory.mktemp("pipeline")
    return run_detect(
        synth_site.before_ortho,
        synth_site.after_ortho,
        out,
        before_dsm=synth_site.before_dsm,
        after_dsm=synth_site.after_dsm,
        permits=synth_site.permits,
        site=synth_site.site,
        params=DetectParams(chunk_px=512),
    )


def test_leads_geojson_is_rfc7946_with_every_property(detected: DetectResult) -> None:
    data = json.loads(detected.leads_geojson.read_text(encoding="utf-8"))
    assert data["type"] == "FeatureCollection" and "crs" not in data
    assert len(data["features"]) == len(detected.leads) >= 5
    for feat in data["features"]:
        props = feat["properties"]
        for key in (
            "lead_id",
            "class",
            "reasons",
            "area_m2",
            "height_gain_m",
            "floors_added",
            "permit_ids",
            "score",
            "before_date",
            "after_date",
        ):
            assert key in props
        assert feat["id"] == props["lead_id"]
        lon, lat = feat["geometry"]["coordinates"][0][0]
        assert -180 <= lon <= 180 and -90 <= lat <= 90
    back = leads_from_feature_collection(data)
    assert [(x.lead_id, x.lead_class, x.permit_ids) for x in back] == [
        (x.lead_id, x.lead_class, x.permit_ids) for x in detected.leads
    ]


def test_leads_gpkg_holds_the_same_leads(detected: DetectResult) -> None:
    feats = read_features(detected.leads_gpkg)
    assert feats.crs.to_epsg() == 4326
    assert sorted(p["lead_id"] for p in feats.properties) == sorted(
        lead.lead_id for lead in detected.leads
    )
    by_id = {p["lead_id"]: p for p in feats.properties}
    for lead in detected.leads:
        assert json.loads(by_id[lead.lead_id]["permit_ids"]) == list(lead.permit_ids)


def test_change_tif_is_tiled_with_overviews_and_a_code_table(detected: DetectResult) -> None:
    with rasterio.open(detected.change_tif) as ds:
        assert ds.dtypes[0] == "uint8" and ds.nodata == 255
        assert ds.profile["tiled"] and ds.profile["blockxsize"] == 512
        assert ds.overviews(1) == [2]
        tags = ds.tags()
        assert json.loads(tags["CHANGE_CODES"]) == {str(k): v for k, v in CHANGE_CODES.items()}
        codes = ds.read(1)
    assert set(np.unique(codes)) <= set(CHANGE_CODES)
    assert (codes == 1).sum() > 1000  # new structures


def test_provenance_names_inputs_outputs_parameters_and_mode(
    detected: DetectResult, synth_site: Any
) -> None:
    prov = json.loads(detected.provenance_json.read_text(encoding="utf-8"))
    assert prov["mode"] == "dsm" and prov["rgb_only"] is False
    assert prov["software"]["version"]
    assert prov["inputs"]["before_ortho"]["sha256"] == sha256_file(synth_site.before_ortho)
    assert set(prov["inputs"]) == {
        "before_ortho",
        "after_ortho",
        "before_dsm",
        "after_dsm",
        "permits",
        "site",
    }
    for name in ("leads.geojson", "leads.gpkg", "change.tif", "coregistration.json"):
        out = prov["outputs"][name]
        assert out["sha256"] == sha256_file(out["path"])
    assert prov["parameters"]["min_area_m2"] == 6.0 and prov["parameters"]["chunk_px"] == 512
    assert prov["before_date"] == "2025-04-15" and prov["after_date"] == "2025-10-15"
    assert prov["started"] <= prov["finished"]
    coreg = json.loads(detected.coregistration_json.read_text(encoding="utf-8"))
    assert coreg["coregistered"] and coreg["model"] in ("translation", "affine", "warp")
    for lead in detected.leads:
        assert lead.input_hashes["permits"] == prov["inputs"]["permits"]["sha256"]


def test_rgb_only_mode_is_marked_everywhere(synth_site: Any, tmp_path: Path) -> None:
    result = run_detect(
        synth_site.before_ortho,
        synth_site.after_ortho,
        tmp_path,
        before_date="2025-04-01",
        after_date="2025-11-01",
    )
    prov = json.loads(result.provenance_json.read_text(encoding="utf-8"))
    assert result.mode == prov["mode"] == "rgb_only" and prov["rgb_only"] is True
    assert prov["before_date"] == "2025-04-01"
    assert result.leads, "the new roofs are visible in the orthophotos alone"
    for lead in result.leads:
        assert lead.rgb_only and lead.height_gain_m is None and lead.floors_added is None
        assert lead.lead_class in ("new_structure", "raised", "demolished")
        assert lead.after_date == "2025-11-01"


# --- errors ------------------------------------------------------------------------------------

T = Affine(0.1, 0.0, 500000.0, 0.0, -0.1, 4000000.0)


def _ortho(path: Path, transform: Affine = T, n: int = 96) -> Path:
    rgb = np.full((3, n, n), 120, np.uint8)
    return write_geotiff(path, rgb, transform=transform, crs=32650, mask=np.ones((n, n), bool))


def test_epochs_that_do_not_overlap(tmp_path: Path) -> None:
    a = _ortho(tmp_path / "a.tif")
    b = _ortho(tmp_path / "b.tif", Affine(0.1, 0.0, 501000.0, 0.0, -0.1, 4000000.0))
    with pytest.raises(DetectInputError, match="does not overlap"):
        run_detect(a, b, tmp_path / "out")


def test_a_site_outside_the_rasters(tmp_path: Path) -> None:
    a = _ortho(tmp_path / "a.tif")
    site = tmp_path / "site.geojson"
    write_features(site, [box(501000, 4000000, 501050, 4000050)], [{"name": "x"}], crs=32650)
    with pytest.raises(DetectInputError, match="outside the rasters"):
        run_detect(a, a, tmp_path / "out", site=site)


def test_an_empty_permits_file(tmp_path: Path) -> None:
    a = _ortho(tmp_path / "a.tif")
    permits = tmp_path / "permits.geojson"
    permits.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(PermitError, match="no features"):
        run_detect(a, a, tmp_path / "out", permits=permits)


def test_permits_without_ids_or_with_bad_dates(tmp_path: Path) -> None:
    a = _ortho(tmp_path / "a.tif")
    permits = tmp_path / "permits.geojson"
    footprint = mapping(box(117.0, 36.1, 117.0001, 36.1001))
    for props, message in (
        ({"max_height_m": 9}, "no permit_id"),
        ({"permit_id": "P", "valid_from": "01/02/2025"}, "ISO 8601"),
        (
            {"permit_id": "P", "valid_from": "2025-05-01", "valid_to": "2025-01-01"},
            "ends before it starts",
        ),
    ):
        feat = {"type": "Feature", "geometry": footprint, "properties": props}
        permits.write_text(json.dumps({"type": "FeatureCollection", "features": [feat]}))
        with pytest.raises(PermitError, match=message):
            run_detect(a, a, tmp_path / "out", permits=permits)


def test_only_one_dsm(tmp_path: Path) -> None:
    a = _ortho(tmp_path / "a.tif")
    dsm = write_geotiff(
        tmp_path / "dsm.tif", np.zeros((96, 96), np.float32), transform=T, crs=32650, nodata=-9999.0
    )
    with pytest.raises(DetectInputError, match="only the before DSM"):
        run_detect(a, a, tmp_path / "out", before_dsm=dsm)


def test_an_orthophoto_without_mask_or_nodata_is_read_with_its_edge_collar(
    tmp_path: Path,
) -> None:
    """No mask, alpha or nodata: the black frame connected to the edge is the collar, the
    rest is valid, and provenance.json records what was assumed."""
    img = np.full((3, 64, 64), 9, np.uint8)
    img[:, :5, :] = 0  # a 5-row black collar along the top
    bare = write_geotiff(tmp_path / "bare.tif", img, transform=T, crs=32650)
    result = run_detect(bare, bare, tmp_path / "out")
    record = json.loads(result.provenance_json.read_text())["inputs"]["before_ortho"]
    assert record["collar_px"] == 5 * 64
    assert any("collar" in a for a in record["assumptions"])


def test_a_dask_distributed_scheduler_gives_the_same_leads(
    synth_site: Any, detected: DetectResult, tmp_path: Path
) -> None:
    """``--scheduler local`` (a LocalCluster of worker processes) gives the same leads.

    Run through the console entry point in a child process, as a user runs it: the cluster's
    sockets and processes live and die with that process, not with the test session.
    """
    import subprocess
    import sys

    args = [
        "detect",
        "--before-ortho",
        str(synth_site.before_ortho),
        "--after-ortho",
        str(synth_site.after_ortho),
        "--before-dsm",
        str(synth_site.before_dsm),
        "--after-dsm",
        str(synth_site.after_dsm),
        "--permits",
        str(synth_site.permits),
        "--site",
        str(synth_site.site),
        "--chunk-px",
        "512",
        "--scheduler",
        "local",
        "--out",
        str(tmp_path),
    ]
    proc = subprocess.run(
        [sys.executable, "-c", "from survey.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    leads = leads_from_feature_collection(
        json.loads((tmp_path / "leads.geojson").read_text(encoding="utf-8"))
    )
    assert [x.lead_id for x in leads] == [x.lead_id for x in detected.leads]
    with rasterio.open(tmp_path / "change.tif") as a, rasterio.open(detected.change_tif) as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))


def test_run_detect_holds_gdal_block_cache_at_its_bound_unless_the_user_set_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bound is in MB: rasterio passes an integer GDAL_CACHEMAX to GDAL as bytes."""
    from survey.pipeline import GDAL_CACHE_MB, bounded_memory

    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    probe = bounded_memory(lambda: rasterio.env.get_gdal_config("GDAL_CACHEMAX"))
    assert int(probe()) == GDAL_CACHE_MB * 2**20
    with rasterio.Env(GDAL_CACHEMAX=512 * 2**20):
        assert int(probe()) == 512 * 2**20  # the user's own setting is kept


def _bow_tie_site(path: Path) -> Path:
    """A site of two polygons, one a self-intersecting bow-tie, inside the rasters of ``T``."""
    x, y = 500002.0, 3999996.0
    bow_tie = {
        "type": "Polygon",
        "coordinates": [[[x, y], [x + 4, y - 4], [x + 4, y], [x, y - 4], [x, y]]],
    }
    square = mapping(box(x + 3, y - 6, x + 6, y - 3))
    features = [{"type": "Feature", "properties": {}, "geometry": g} for g in (bow_tie, square)]
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32650"}}
    path.write_text(json.dumps({"type": "FeatureCollection", "crs": crs, "features": features}))
    return path


def test_a_self_intersecting_site_is_repaired_not_a_geos_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """shapely.union_all of a bow-tie and another polygon raised GEOS's TopologyException."""
    a = _ortho(tmp_path / "a.tif")
    result = run_detect(a, a, tmp_path / "out", site=_bow_tie_site(tmp_path / "site.geojson"))
    assert result.leads == ()
    assert any("site polygon is invalid" in r.getMessage() for r in caplog.records)


# --- detect --store: the run recorded in the evidence store (#14) --------------------------------


def _detect_args(site: Any, out: Path, *extra: str) -> list[str]:
    return [
        "detect",
        "--before-ortho",
        str(site.before_ortho),
        "--before-dsm",
        str(site.before_dsm),
        "--after-ortho",
        str(site.after_ortho),
        "--after-dsm",
        str(site.after_dsm),
        "--permits",
        str(site.permits),
        "--out",
        str(out),
        *extra,
    ]


def test_detect_store_records_exactly_the_hashes_of_provenance_json(
    synth_site: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from survey.cli import run
    from survey.evidence import EvidenceStore

    store = EvidenceStore.open(tmp_path / "store", create=True)
    before = len(list(store.entries()))
    out = tmp_path / "out"
    args = ["--store", str(store.root), "--case", "2024-017", "--operator", "an1"]
    assert run(_detect_args(synth_site, out, *args)) == 0
    text = capsys.readouterr().out
    new = [e for e in store.entries() if e.seq >= before and e.type != "checkpoint"]
    # a new case (tier assumed), then one derivation; nothing else
    assert [e.type for e in new] == ["case", "derive"]
    derive = new[1]
    assert f"recorded in the evidence store {store.root}: ledger entry {derive.seq}" in text
    prov = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    assert derive["command"] == "sitewatch detect"
    assert (derive["case"], derive["operator"]) == ("2024-017", "an1")
    assert {i["role"]: i["sha256"] for i in derive["inputs"]} == {
        role: rec["sha256"] for role, rec in prov["inputs"].items()
    }
    outputs = {o["role"]: o["sha256"] for o in derive["outputs"]}
    assert outputs.pop("provenance.json") == sha256_file(out / "provenance.json")
    assert outputs == {name: rec["sha256"] for name, rec in prov["outputs"].items()}
    assert set(outputs) >= {"leads.geojson", "change.tif", "after_registered.tif"}
    assert derive["parameters"]["parameters"] == prov["parameters"]
    assert derive["software"].startswith("sitewatch ")
    assert not any(o.get("stored") for o in derive["outputs"])  # recorded, not copied
    assert store.verify().ok
    # the leads trace back to that run (the rasters were neither added nor stated: it ends there)
    (traced,) = store.trace(sha256_file(out / "leads.geojson"))
    assert traced.seq == derive.seq


def test_detect_store_that_is_not_one_writes_nothing(
    synth_site: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from survey.cli import EXIT_ERROR, run

    out = tmp_path / "out"
    for store in (tmp_path / "missing", synth_site.root):  # no folder; a folder of other files
        assert run(_detect_args(synth_site, out, "--store", str(store))) == EXIT_ERROR
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "not an evidence store" in err, err
        assert not out.exists() and not (tmp_path / "missing").exists()
