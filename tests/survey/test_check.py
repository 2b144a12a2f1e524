"""`sitewatch check`: the first survey of the synthetic site against the permit atlas.

The after epoch of the synthetic site plays a site's first survey: no before epoch, the
permits and the existing buildings (``existing.geojson``: what stood legally in the before
epoch). The atlas is in true coordinates and the after epoch is misregistered, which is
exactly a GNSS offset of the survey against the atlas (``truth.json``'s ``first_survey``).
Known answers: every planted violation is a lead of its expected class, permitted and existing
buildings are not, and the offset is recovered and removed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import shapely
import shapely.affinity
from shapely.geometry.base import BaseGeometry

from change_detection.leads import Lead, leads_from_feature_collection
from change_detection.params import DetectParams
from survey.check import CheckResult, run_check
from survey.cli import EXIT_ERROR, EXIT_USAGE, run
from survey.rasters import sha256_file
from survey.synth import AFTER_DTM_NAME, EXISTING_NAME, SynthSite
from survey.vectors import read_features, reproject_geometries, write_features

# --- helpers -----------------------------------------------------------------------------------


def _inputs(site: SynthSite) -> dict[str, Path]:
    return {
        "ortho": site.after_ortho,
        "dsm": site.after_dsm,
        "dtm": site.after_dsm.with_name(AFTER_DTM_NAME),
        "permits": site.permits,
        "existing": site.root / EXISTING_NAME,
        "site": site.site,
    }


def _to_after_frame(site: SynthSite, geom: BaseGeometry) -> BaseGeometry:
    """A geometry in true UTM coordinates moved to where it appears in the after rasters."""
    m = np.asarray(site.truth["misregistration"]["forward_matrix_m"])
    return shapely.transform(geom, lambda xy: xy @ m[:2, :2].T + m[:2, 2])


def _truth(site: SynthSite) -> list[tuple[BaseGeometry, dict[str, Any]]]:
    feats = read_features(site.truth_geojson, "truth").to_crs(site.truth["crs"])
    return [(_to_after_frame(site, g), p) for g, p in feats.pairs()]


def _matches(
    site: SynthSite, leads: list[Lead] | tuple[Lead, ...]
) -> list[tuple[Lead, str | None]]:
    """Each lead with the truth feature it covers (None when it covers none)."""
    truth = _truth(site)
    existing = read_features(site.root / EXISTING_NAME, "existing").to_crs(site.truth["crs"])
    truth += [
        (_to_after_frame(site, g), {"change_id": p["building_id"]}) for g, p in existing.pairs()
    ]
    out = []
    for lead in leads:
        (geom,) = reproject_geometries([lead.geometry], 4326, site.truth["crs"])
        best = max(truth, key=lambda t: t[0].intersection(geom).area)
        covered = best[0].intersection(geom).area >= 0.5 * geom.area
        out.append((lead, str(best[1]["change_id"]) if covered else None))
    return out


def _check(site: SynthSite, out: Path, *, drop: tuple[str, ...] = (), **kwargs: Any) -> CheckResult:
    f = {k: v for k, v in _inputs(site).items() if k not in drop}
    for key, value in kwargs.items():
        f[key] = value
    return run_check(
        f.pop("ortho"),
        f.pop("dsm"),
        out,
        permits=f.pop("permits"),
        **f,  # type: ignore[arg-type]
    )


def _assert_known_answer(site: SynthSite, result: CheckResult) -> None:
    expected = {p["change_id"]: p["expected_class"] for _, p in _truth(site) if p["must_flag"]}
    matched = _matches(site, result.leads)
    found = {name: lead.lead_class for lead, name in matched if name in expected}
    assert found == expected  # every planted violation, with its class
    false = [
        (lead.lead_class, lead.area_m2, name) for lead, name in matched if name not in expected
    ]
    assert false == []  # no permitted building, existing building, tree, car or pile


@pytest.fixture(scope="module")
def checked(synth_site: SynthSite, tmp_path_factory: pytest.TempPathFactory) -> CheckResult:
    """The survey checked with its DTM, the permits and the existing buildings, aligned."""
    return _check(synth_site, tmp_path_factory.mktemp("check"))


# --- known answers on the synthetic site -------------------------------------------------------


def test_every_planted_violation_is_found_and_nothing_else(
    synth_site: SynthSite, checked: CheckResult
) -> None:
    _assert_known_answer(synth_site, checked)
    by_id = {name: lead for lead, name in _matches(synth_site, checked.leads)}
    ext = by_id["extension-1"]
    truth_ext = next(p for _, p in _truth(synth_site) if p["change_id"] == "extension-1")
    assert ext.area_m2 == pytest.approx(truth_ext["area_m2"], rel=0.15)  # the part outside
    assert ext.permit_ids == ("P-2025-031",)
    storey = by_id["storey-1"]
    assert any("exceeds" in r and "P-2019-112" in r for r in storey.reasons)
    for name in ("demolition-1", "demolition-2"):
        assert any(f"existing building {name}" in r for r in by_id[name].reasons)
    for lead in checked.leads:
        assert lead.before_date is None and lead.after_date == synth_site.truth["after_date"]
        assert lead.input_hashes["ortho"] == sha256_file(synth_site.after_ortho)


def test_the_planted_gnss_offset_is_recovered_and_removed(
    synth_site: SynthSite, checked: CheckResult
) -> None:
    a = checked.alignment
    planted = synth_site.truth["first_survey"]["atlas_offset_m"]
    assert a["applied"] and a["reliable"]
    n_atlas = len(read_features(synth_site.permits, "permits"))
    n_atlas += len(synth_site.truth["first_survey"]["existing_building_ids"])
    assert a["n_outlines"] == n_atlas and a["n_used"] >= 3  # standing buildings that fit
    assert np.hypot(a["dx_m"] - planted[0], a["dy_m"] - planted[1]) < 0.15
    # the atlas as used is the given one moved by the offset
    crs = synth_site.truth["crs"]
    given = read_features(synth_site.permits, "permits").to_crs(crs).geometries
    used = read_features(checked.atlas_permits, "permits").to_crs(crs).geometries
    for g, u in zip(given, used, strict=True):
        moved = np.subtract(u.centroid.coords[0], g.centroid.coords[0])
        assert moved == pytest.approx([a["dx_m"], a["dy_m"]], abs=0.01)


def test_an_offset_added_to_the_atlas_is_recovered_and_the_leads_stay(
    synth_site: SynthSite, checked: CheckResult, tmp_path: Path
) -> None:
    """Shift the atlas by a further (+0.6, -0.5) m: the check measures the sum and removes it."""
    crs = synth_site.truth["crs"]
    extra = (0.6, -0.5)
    moved = {}
    for role, path in (
        ("permits", synth_site.permits),
        ("existing", synth_site.root / EXISTING_NAME),
    ):
        feats = read_features(path, role).to_crs(crs)
        geoms = [shapely.affinity.translate(g, *extra) for g in feats.geometries]
        moved[role] = write_features(
            tmp_path / f"{role}.geojson", reproject_geometries(geoms, crs, 4326), feats.properties
        )
    result = _check(synth_site, tmp_path / "out", **moved)
    a = result.alignment
    planted = np.subtract(synth_site.truth["first_survey"]["atlas_offset_m"], extra)
    assert a["applied"]
    assert np.hypot(a["dx_m"] - planted[0], a["dy_m"] - planted[1]) < 0.15
    _assert_known_answer(synth_site, result)
    now = sorted((x.lead_class, x.area_m2) for x in result.leads)
    before = sorted((x.lead_class, x.area_m2) for x in checked.leads)
    assert [c for c, _ in now] == [c for c, _ in before]
    assert [a for _, a in now] == pytest.approx([a for _, a in before], abs=2.0)


def test_without_alignment_the_offset_shows_at_the_footprint_edges(
    synth_site: SynthSite, checked: CheckResult, tmp_path: Path
) -> None:
    """The same atlas not aligned: the extension's outside part is off by the offset."""
    result = _check(synth_site, tmp_path, align=False)
    assert result.alignment == {"enabled": False, "applied": False, "summary": "--no-align"}
    ext = {n: x for x, n in _matches(synth_site, result.leads)}["extension-1"]
    aligned = {n: x for x, n in _matches(synth_site, checked.leads)}["extension-1"]
    truth_area = next(
        p["area_m2"] for _, p in _truth(synth_site) if p["change_id"] == "extension-1"
    )
    assert abs(aligned.area_m2 - truth_area) < abs(ext.area_m2 - truth_area)


def test_with_a_derived_dtm_the_answer_is_the_same(synth_site: SynthSite, tmp_path: Path) -> None:
    result = _check(synth_site, tmp_path, drop=("dtm",))
    assert result.report["dtm"]["source"] == "derived"
    assert any("DTM was derived" in a for a in result.report["assumptions"])
    _assert_known_answer(synth_site, result)


def test_chunked_with_a_derived_dtm_the_answer_is_the_same(
    synth_site: SynthSite, checked: CheckResult, tmp_path: Path
) -> None:
    """Small chunks: the rasters are read lazily, the DTM derived chunk by chunk."""
    result = _check(synth_site, tmp_path, drop=("dtm",), params=DetectParams(chunk_px=256))
    assert result.report["dtm"]["source"] == "derived"
    assert json.loads(result.provenance_json.read_text())["grid"]["chunks"] > 1
    _assert_known_answer(synth_site, result)


def test_an_atlas_dated_after_the_survey_is_one_clear_error(
    synth_site: SynthSite, tmp_path: Path
) -> None:
    from survey.errors import DetectInputError

    with pytest.raises(DetectInputError, match="atlas date 2026-01-01 is after the survey date"):
        _check(synth_site, tmp_path, atlas_date="2026-01-01", survey_date="2025-10-15")


def test_existing_buildings_are_what_makes_old_buildings_legal(
    synth_site: SynthSite, tmp_path: Path
) -> None:
    """Without the existing-building layer every standing building of the before epoch
    without a permit is a no_permit lead; with it, none is."""
    result = _check(synth_site, tmp_path, drop=("existing",), align=False)
    names = {
        name for lead, name in _matches(synth_site, result.leads) if lead.lead_class == "no_permit"
    }
    standing = {
        b
        for b in synth_site.truth["first_survey"]["existing_building_ids"]
        if b.startswith("existing-")
    }
    assert standing and standing <= names


def test_outputs_provenance_and_untouched_inputs(
    synth_site: SynthSite, checked: CheckResult
) -> None:
    out = checked.out_dir
    for name in (
        "leads.geojson",
        "leads.gpkg",
        "change.tif",
        "check.json",
        "provenance.json",
        "atlas_permits.geojson",
        "atlas_existing.geojson",
    ):
        assert (out / name).is_file(), name
    prov = json.loads(checked.provenance_json.read_text())
    assert prov["command"] == "check"
    for role, path in _inputs(synth_site).items():
        assert prov["inputs"][role]["sha256"] == sha256_file(path)
    for name, rec in prov["outputs"].items():
        assert rec["sha256"] == sha256_file(out / name)
    assert prov["alignment"]["applied"] is True
    report = json.loads(checked.check_json.read_text())
    assert report["leads"]["n"] == len(checked.leads)
    assert report["atlas"]["existing_buildings"]["no_longer_standing"] == [
        "demolition-1",
        "demolition-2",
    ]
    leads = leads_from_feature_collection(json.loads(checked.leads_geojson.read_text()))
    assert [x.lead_id for x in leads] == [x.lead_id for x in checked.leads]
    with rasterio.open(checked.change_tif) as ds:
        codes = ds.read(1)
        assert ds.tags()["SITEWATCH_MODE"] == "dsm"
    assert (codes == 1).sum() > 0  # structures
    # nothing written beside the inputs
    for folder in (synth_site.root, synth_site.after_ortho.parent):
        assert not list(folder.glob("*.aux.xml"))


def test_heights_are_dsm_minus_dtm(synth_site: SynthSite, checked: CheckResult) -> None:
    """The raised building measures its recorded height plus the planted storey (3 m): the
    height comes from DSM - DTM, not from detect's ground filter (which, run on a DTM,
    lowers the ground on the site's rises by up to 1 m)."""
    storey = {n: x for x, n in _matches(synth_site, checked.leads)}["storey-1"]
    recorded = next(
        p["height_m"]
        for p in read_features(synth_site.root / EXISTING_NAME, "existing").properties
        if p["building_id"] == "storey-1"
    )
    assert storey.height_gain_m == pytest.approx(recorded + 3.0, abs=0.3)


# --- errors and assumptions -------------------------------------------------------------------


def test_a_dtm_of_another_place_is_one_clear_error(
    synth_site: SynthSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    far = tmp_path / "far_dtm.tif"
    with rasterio.open(synth_site.after_dsm) as src:
        profile = src.profile
        data = src.read()
        t = src.transform
    profile["transform"] = rasterio.Affine(t.a, t.b, t.c + 5000, t.d, t.e, t.f)
    with rasterio.open(far, "w", **profile) as dst:
        dst.write(data)
    f = _inputs(synth_site)
    code = run(
        [
            "check",
            "--ortho",
            str(f["ortho"]),
            "--dsm",
            str(f["dsm"]),
            "--dtm",
            str(far),
            "--permits",
            str(f["permits"]),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_ERROR
    assert len(err) == 1 and "far_dtm.tif does not overlap" in err[0]


def test_an_atlas_somewhere_else_is_said_and_recorded(
    synth_site: SynthSite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crs = synth_site.truth["crs"]
    feats = read_features(synth_site.permits, "permits").to_crs(crs)
    off = [shapely.affinity.translate(g, 450.0, -300.0) for g in feats.geometries]
    permits = write_features(
        tmp_path / "gcj.geojson", reproject_geometries(off, crs, 4326), feats.properties
    )
    with caplog.at_level("WARNING"):
        result = _check(synth_site, tmp_path / "out", permits=permits, drop=("existing",))
    assert any("no permit or existing-building outline" in a for a in result.report["assumptions"])
    assert any("GCJ-02" in r.getMessage() for r in caplog.records)
    assert result.alignment["applied"] is False


# --- the command line ---------------------------------------------------------------------------


def test_cli_check_then_map_and_package(
    synth_site: SynthSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = _inputs(synth_site)
    out = tmp_path / "check"
    args = ["check", "--out", str(out)]
    for role in ("ortho", "dsm", "dtm", "permits", "existing", "site"):
        args += [f"--{role}", str(f[role])]
    code = run([*args, "--date", synth_site.truth["after_date"]])
    text = capsys.readouterr().out
    assert code == 0
    assert "atlas moved by" in text and "lead(s) from DSM - given DTM" in text
    leads = leads_from_feature_collection(json.loads((out / "leads.geojson").read_text()))
    atlas = ["--permits", str(out / "atlas_permits.geojson")]
    atlas += ["--existing", str(out / "atlas_existing.geojson")]

    page = tmp_path / "map" / "review.html"
    code = run(
        [
            "map",
            "--leads",
            str(out / "leads.geojson"),
            "--ortho",
            str(f["ortho"]),
            *atlas,
            "--out",
            str(page),
        ]
    )
    printed = capsys.readouterr().out.split()
    assert code == 0
    assert printed == [str(page), str(page.with_name("review_overview.html"))]
    html = page.read_text()
    assert "Existing buildings" in html and "Permit footprints" in html
    assert "SideBySide" not in html and not page.with_name("review_dual.html").exists()
    for lead in leads:
        assert lead.lead_id in html

    pkg = tmp_path / "pkg"
    code = run(
        [
            "package",
            "--leads",
            str(out / "leads.geojson"),
            "--lead",
            leads[0].lead_id,
            "--ortho",
            str(f["ortho"]),
            "--dsm",
            str(f["dsm"]),
            *atlas,
            "--out",
            str(pkg),
        ]
    )
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((pkg / "manifest.json").read_text())
    assert manifest["inputs"]["ortho"]["matches"] is True
    assert manifest["inputs"]["dsm"]["matches"] is True
    for name in ("survey.png", "profile.png", "map.html", "manifest.sha256"):
        assert (pkg / name).is_file()
    assert not (pkg / "before.png").exists()


def test_cli_map_refuses_two_kinds_of_survey_at_once(
    synth_site: SynthSite, checked: CheckResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        [
            "map",
            "--leads",
            str(checked.leads_geojson),
            "--ortho",
            str(synth_site.after_ortho),
            "--before-ortho",
            str(synth_site.before_ortho),
            "--out",
            str(tmp_path / "r.html"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_USAGE and len(err) == 1 and "not both" in err[0]
    code = run(["map", "--leads", str(checked.leads_geojson), "--out", str(tmp_path / "r.html")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_USAGE and len(err) == 1 and "--ortho" in err[0]


def test_cli_requires_permits(synth_site: SynthSite, tmp_path: Path) -> None:
    f = _inputs(synth_site)
    code = run(
        ["check", "--ortho", str(f["ortho"]), "--dsm", str(f["dsm"]), "--out", str(tmp_path)]
    )
    assert code == EXIT_USAGE


# --- the synthetic site's first-survey files ---------------------------------------------------


def test_synth_writes_the_dtm_and_the_existing_buildings(synth_site: SynthSite) -> None:
    from survey.synth import render_scene, true_terrain

    first = synth_site.truth["first_survey"]
    existing = read_features(synth_site.root / first["existing"], "existing")
    ids = [p["building_id"] for p in existing.properties]
    assert ids == first["existing_building_ids"]
    assert {"storey-1", "demolition-1"} <= set(ids) and "new-1" not in ids
    assert all(p["height_m"] > 2.5 and p["floors"] >= 1 for p in existing.properties)
    with rasterio.open(synth_site.root / first["after_dtm"]) as ds:
        dtm = ds.read(1, masked=True)
        assert ds.transform == rasterio.open(synth_site.after_dsm).transform
    with rasterio.open(synth_site.after_dsm) as ds:
        dsm = ds.read(1, masked=True)
    assert (dtm.mask == dsm.mask).all()
    # the DTM is the ground under the DSM: equal where nothing stands (noise, micro-relief)
    diff = (dsm - dtm).compressed()
    assert abs(float(np.median(diff))) < 0.1
    assert float(np.percentile(diff, 1)) > -0.5
    # and the terrain is the one the renderer painted: every object stands on it
    scene = render_scene(_params_of(synth_site))
    terrain = true_terrain(scene)
    for true in (scene.true_before_dsm, scene.true_after_dsm):
        assert float((true - terrain).min()) > -1e-3
        assert float((np.abs(true - terrain) < 1e-3).mean()) > 0.5


def _params_of(site: SynthSite) -> Any:
    from survey.synth import SynthParams

    t = site.truth
    return SynthParams(seed=t["seed"], size_m=t["size_m"], gsd_cm=t["gsd_m"] * 100)


def test_min_area_applies_to_structures_and_demolitions(
    synth_site: SynthSite, tmp_path: Path
) -> None:
    """At 80 m² only the largest new building (92 m²) is left: the other structures, the
    extension's 21 m² outside its permit and the demolitions (51 and 59 m²) are smaller."""
    result = _check(synth_site, tmp_path, params=DetectParams(min_area_m2=80.0))
    assert [(x.lead_class, n) for x, n in _matches(synth_site, result.leads)] == [
        ("no_permit", "new-2")
    ]


# --- the existing-buildings reader --------------------------------------------------------------

_UTM = 32650
_X0, _Y0 = 500000.0, 4000000.0


def _layer(tmp_path: Path, props: list[dict[str, Any]], geoms: list[Any] | None = None) -> Path:
    from shapely.geometry import box

    geoms = geoms or [box(_X0 + 20 * i, _Y0, _X0 + 20 * i + 10, _Y0 + 8) for i in range(len(props))]
    return write_features(tmp_path / "existing.gpkg", geoms, props, crs=_UTM)


def test_buildings_are_read_with_ids_heights_and_floors_in_the_grid_crs(tmp_path: Path) -> None:
    from survey.buildings import read_existing_buildings

    path = _layer(
        tmp_path,
        [
            {"building_id": "B-12", "height_m": 6.5, "floors": 2.0},
            {"id": 7, "height_m": None, "floors": None},
        ],
    )
    a, b = read_existing_buildings(path, 4326)
    assert (a.building_id, a.height_m, a.floors) == ("B-12", 6.5, 2)
    assert (b.building_id, b.height_m, b.floors) == ("7", None, None)
    lon, lat = a.geometry.centroid.coords[0]
    assert 116.9 < lon < 117.1 and 36.0 < lat < 36.2
    (again,) = read_existing_buildings(_layer(tmp_path, [{"building_id": "X"}]), _UTM)
    assert again.geometry.area == pytest.approx(80.0)


def test_buildings_without_ids_are_named_by_position_and_it_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from survey.buildings import read_existing_buildings

    notes: list[str] = []
    with caplog.at_level("WARNING"):
        got = read_existing_buildings(_layer(tmp_path, [{"name": "a"}, {"name": "b"}]), _UTM, notes)
    assert [b.building_id for b in got] == ["B-1", "B-2"]
    assert len(notes) == 1 and "2 of 2 existing buildings have no building_id" in notes[0]
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1


@pytest.mark.parametrize(
    ("props", "geoms", "words"),
    [
        ([], None, "has no features"),
        ([{"building_id": "A"}, {"building_id": "A"}], None, "building_id A appears twice"),
        ([{"building_id": "A", "height_m": "tall"}], None, "height_m='tall', not a number"),
        ([{"building_id": "A", "floors": -1}], None, "use a number >= 0"),
        ([{"building_id": "P"}], ["point"], "existing building P (feature 0) has Point"),
        ([{"building_id": "Z"}], ["flat"], "existing building Z has a footprint of no area"),
    ],
)
def test_bad_building_layers_are_one_line_naming_the_file_and_feature(
    tmp_path: Path, props: list[dict[str, Any]], geoms: list[Any] | None, words: str
) -> None:
    from shapely.geometry import Point, Polygon

    from survey.buildings import read_existing_buildings
    from survey.errors import VectorFormatError

    flat = Polygon([(_X0, _Y0), (_X0 + 10, _Y0), (_X0 + 20, _Y0), (_X0, _Y0)])
    shapes = None if not geoms else [Point(_X0, _Y0) if geoms == ["point"] else flat]
    path = (
        _layer(tmp_path, props, shapes)
        if props
        else write_features(tmp_path / "existing.geojson", [], [])
    )
    with pytest.raises(VectorFormatError) as info:
        read_existing_buildings(path, _UTM)
    text = str(info.value)
    assert words in text and str(path) in text and "\n" not in text


# --- real rasters -------------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.parametrize("date", ["1_30", "2_40", "3_70", "4_100"])
def test_a_real_field_without_buildings_gives_no_lead(
    realdata: Path, tmp_path: Path, date: str
) -> None:
    """Real drone orthophotos (float32 RGB, no declared bands) and DSMs of a crop field on
    four dates, with its DTM derived: the crops are not structures, so no lead."""
    from shapely.geometry import box

    folder = realdata / "rasters" / "multidate"
    with rasterio.open(folder / f"{date}_dsm.tif") as ds:
        b, crs = ds.bounds, ds.crs
    permits = write_features(
        tmp_path / "permits.gpkg",
        [box(b.left + 5, b.bottom + 5, b.left + 15, b.bottom + 15)],
        [{"permit_id": "P-1"}],
        crs=crs,
    )
    result = run_check(
        folder / f"{date}_RGB.tif", folder / f"{date}_dsm.tif", tmp_path / "out", permits=permits
    )
    assert result.leads == ()
    assert result.report["structures"]["n"] == 0
    assert any("read as red, green, blue" in a for a in result.report["assumptions"])


# --- the site crop -------------------------------------------------------------------------------


def test_a_self_intersecting_site_is_repaired_not_a_geos_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """shapely.union_all of a bow-tie and another polygon raised GEOS's TopologyException;
    the site is read as in detect (survey.sites.read_site_area): repaired, one warning."""
    from affine import Affine
    from shapely.geometry import box, mapping

    from survey.rasters import write_geotiff

    t = Affine(0.1, 0.0, _X0, 0.0, -0.1, _Y0)
    n = 120
    ortho = write_geotiff(
        tmp_path / "ortho.tif",
        np.full((3, n, n), 120, np.uint8),
        transform=t,
        crs=_UTM,
        mask=np.ones((n, n), bool),
    )
    z = np.full((n, n), 30.0, np.float32)
    dsm = write_geotiff(tmp_path / "dsm.tif", z, transform=t, crs=_UTM, nodata=-9999.0)
    dtm = write_geotiff(tmp_path / "dtm.tif", z, transform=t, crs=_UTM, nodata=-9999.0)
    permits = write_features(
        tmp_path / "permits.geojson",
        reproject_geometries([box(_X0 + 1, _Y0 - 11, _X0 + 4, _Y0 - 8)], _UTM, 4326),
        [{"permit_id": "P-1"}],
    )
    x, y = _X0 + 2.0, _Y0 - 2.0
    bow_tie = [[x, y], [x + 4, y - 4], [x + 4, y], [x, y - 4], [x, y]]
    features = [
        {"type": "Feature", "properties": {}, "geometry": g}
        for g in (
            {"type": "Polygon", "coordinates": [bow_tie]},
            mapping(box(x + 3, y - 6, x + 6, y - 3)),
        )
    ]
    site = tmp_path / "site.geojson"
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32650"}}
    site.write_text(json.dumps({"type": "FeatureCollection", "crs": crs, "features": features}))
    result = run_check(ortho, dsm, tmp_path / "out", permits=permits, dtm=dtm, site=site)
    assert result.leads == ()
    assert any("site polygon is invalid" in r.getMessage() for r in caplog.records)


# --- the survey as an OpenDroneMap project folder (--epoch) -------------------------------------


def _permit_away_from_the_building(path: Path) -> Path:
    """A permit for a building elsewhere on the survey: the planted one has none."""
    from shapely.geometry import box

    from tests.survey._odm import T

    x, y = T.c + 5.0, T.f - 5.0
    (geom,) = reproject_geometries([box(x, y - 8.0, x + 8.0, y)], _UTM, 4326)
    return write_features(path, [geom], [{"permit_id": "P-7", "max_height_m": 9.0}])


def test_cli_check_of_an_odm_project_uses_its_dsm_and_dtm_and_records_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--epoch PROJECT: the project's orthophoto, DSM and DTM (odm_dem/dtm.tif, the default),
    the building without a permit is the one lead, and provenance.json keeps the record."""
    from tests.survey._odm import BUILDING_M, write_project

    project = write_project(tmp_path / "odm", building=True)
    permits = _permit_away_from_the_building(tmp_path / "permits.geojson")
    out = tmp_path / "out"
    code = run(["check", "--epoch", str(project), "--permits", str(permits), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert "from DSM - given DTM" in capsys.readouterr().out
    (lead,) = leads_from_feature_collection(json.loads((out / "leads.geojson").read_text()))
    assert lead.lead_class == "no_permit" and lead.area_m2 == pytest.approx(100.0, rel=0.15)
    assert lead.height_gain_m == pytest.approx(BUILDING_M, abs=0.3)
    report = json.loads((out / "check.json").read_text())
    dtm = project / "odm_dem" / "dtm.tif"
    assert report["dtm"]["source"] == "file" and report["dtm"]["path"] == str(dtm.resolve())
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["epoch"]["source"] == "opendronemap" and prov["epoch"]["odm_version"] == "3.5.4"
    assert prov["inputs"]["dsm"]["path"] == str((project / "odm_dem" / "dsm.tif").resolve())
    assert prov["after_date"] == "2025-10-15"


def test_cli_check_epoch_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--epoch excludes --ortho; --dsm replaces the project's (a flat one: no lead); an
    orthophoto as the epoch needs --dsm."""
    from tests.survey._odm import heights, write_heights, write_project

    project = write_project(tmp_path / "odm", building=True)
    ortho = project / "odm_orthophoto" / "odm_orthophoto.tif"
    permits = _permit_away_from_the_building(tmp_path / "permits.geojson")
    base = ["check", "--permits", str(permits)]
    code = run([*base, "--epoch", str(project), "--ortho", str(ortho), "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_USAGE and len(err) == 1 and "--epoch and --ortho" in err[0]
    flat = write_heights(tmp_path / "flat.tif", heights(False))
    out = tmp_path / "flat_out"
    assert run([*base, "--epoch", str(project), "--dsm", str(flat), "--out", str(out)]) == 0
    assert json.loads((out / "leads.geojson").read_text())["features"] == []
    assert json.loads((out / "provenance.json").read_text())["epoch"]["dsm"] == str(flat)
    code = run([*base, "--epoch", str(ortho), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_ERROR and err[-1].startswith(f"sitewatch: error: {ortho}: the survey")
    assert "has no DSM (give the DSM with --dsm)" in err[-1]
    code = run([*base, "--out", str(tmp_path / "none")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_USAGE and len(err) == 1 and "give --epoch" in err[0]


# --- check --store: the check recorded, with the survey's origin stated (#14) -------------------


def test_cli_check_store_records_the_check_and_the_stated_origin_of_the_survey(
    synth_site: SynthSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from survey.evidence import EvidenceStore

    # the flight's photos, as one archive added as an original of the case
    archive = tmp_path / "card" / "DCIM.zip"
    archive.parent.mkdir()
    archive.write_bytes(np.random.default_rng(3).bytes(5000))
    store = tmp_path / "store"
    assert run(["evidence", "add", "--store", str(store), "--case", "C-9", str(archive)]) == 0
    zip_sha = sha256_file(archive)
    f = _inputs(synth_site)
    out = tmp_path / "check"
    args = ["check", "--out", str(out), "--date", synth_site.truth["after_date"]]
    for role in ("ortho", "dsm", "dtm", "permits", "existing", "site"):
        args += [f"--{role}", str(f[role])]
    args += ["--store", str(store), "--case", "C-9", "--derived-from", zip_sha]
    assert run(args) == 0, capsys.readouterr().err
    s = EvidenceStore.open(store, read_only=True)
    statement, check = [e for e in s.entries() if e.type == "derive"]
    prov = json.loads((out / "provenance.json").read_text())
    # the statement: the survey's rasters (as the check read them) made from the archive
    assert statement["command"] == "photogrammetry outside sitewatch (stated by the user)"
    assert [(i["role"], i["sha256"]) for i in statement["inputs"]] == [("original", zip_sha)]
    assert {o["role"]: o["sha256"] for o in statement["outputs"]} == {
        role: prov["inputs"][role]["sha256"] for role in ("ortho", "dsm", "dtm")
    }
    assert statement["parameters"]["epoch"] == "survey"
    assert statement["software"] == "not recorded (outside sitewatch)"
    # the check: exactly provenance.json's hashes
    assert check["command"] == "sitewatch check" and check["case"] == "C-9"
    assert {i["role"]: i["sha256"] for i in check["inputs"]} == {
        role: rec["sha256"] for role, rec in prov["inputs"].items()
    }
    outputs = {o["role"]: o["sha256"] for o in check["outputs"]}
    assert outputs.pop("provenance.json") == sha256_file(out / "provenance.json")
    assert outputs == {name: rec["sha256"] for name, rec in prov["outputs"].items()}
    # a lead traces back to the archive's add entry
    traced = s.trace(sha256_file(out / "leads.geojson"))
    assert [e.seq for e in traced if e.type == "add"] == [
        e.seq for e in s.entries() if e.type == "add" and e["sha256"] == zip_sha
    ]
    assert {statement.seq, check.seq} <= {e.seq for e in traced}
    assert s.verify().ok


def test_cli_check_derived_from_needs_a_store(
    synth_site: SynthSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = _inputs(synth_site)
    args = ["check", "--ortho", str(f["ortho"]), "--dsm", str(f["dsm"])]
    args += ["--permits", str(f["permits"]), "--out", str(tmp_path / "out")]
    assert run([*args, "--derived-from", "a" * 64]) == EXIT_USAGE
    assert "--derived-from is recorded in an evidence store" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
