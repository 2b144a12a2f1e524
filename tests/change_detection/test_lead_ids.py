"""Lead ids that survive a re-run: what changes an id and what does not (issue #12).

An id is the class, the two survey dates and the 5 m WGS84 grid cell of the outline's centroid
(:func:`change_detection.permits.lead_id`). The known answers: edges moved across 0.5 m grid
lines (the old id's failure) keep the id; the same outline in another CRS keeps it; the
synthetic site with its after epoch in the next UTM zone, or with every raster re-exported
with another compression and tiling, gives the same ids as the normal run; two leads in one
cell are both kept, with distinct ids that do not depend on their order.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import shapely
from hypothesis import given
from hypothesis import strategies as st
from pyproj import Transformer
from shapely.geometry import box

from change_detection.errors import ChangeDetectionError
from change_detection.leads import Lead, with_unique_ids
from change_detection.objects import ChangeObject
from change_detection.params import DetectParams
from change_detection.permits import build_leads, lead_id
from survey.pipeline import DetectResult, run_detect

UTM50 = 32650
CELL_M = 5.0  # the documented tolerance of lead_id
M_PER_DEGREE = 111_320.0
TO_WGS84 = Transformer.from_crs(UTM50, 4326, always_xy=True)
TO_UTM50 = Transformer.from_crs(4326, UTM50, always_xy=True)


def _cell_of(x: float, y: float) -> tuple[float, float]:
    """Where (x, y) in UTM 50N sits in its id cell: (row, column) as fractions in [0, 1)."""
    lon, lat = TO_WGS84.transform(x, y)
    row = lat * M_PER_DEGREE / CELL_M
    middle = (math.floor(row) + 0.5) * CELL_M / M_PER_DEGREE
    col = lon * M_PER_DEGREE * math.cos(math.radians(middle)) / CELL_M
    return row % 1.0, col % 1.0


def _cell_centre(x: float, y: float) -> tuple[float, float]:
    """The centre, in UTM 50N, of the id cell that holds (x, y)."""
    for _ in range(3):  # the cell is square to within millimetres: two steps converge
        fr, fc = _cell_of(x, y)
        x, y = x + (0.5 - fc) * CELL_M, y + (0.5 - fr) * CELL_M
    return x, y


CX, CY = _cell_centre(500_000.0, 4_000_000.0)


def _building(dx0: float = 0.0, dy0: float = 0.0, dx1: float = 0.0, dy1: float = 0.0) -> Any:
    """A 10 x 8 m outline centred on a cell centre, its west/south/east/north edges moved."""
    return box(CX - 5 + dx0, CY - 4 + dy0, CX + 5 + dx1, CY + 4 + dy1)


def _id(geom: Any, cls: str = "no_permit", crs: Any = UTM50, **dates: Any) -> str:
    dates.setdefault("before_date", "2025-04-15")
    dates.setdefault("after_date", "2025-10-15")
    return lead_id(cls, geom, crs=crs, **dates)


def test_the_fixture_outline_sits_at_a_cell_centre() -> None:
    fr, fc = _cell_of(CX, CY)
    assert abs(fr - 0.5) < 1e-3 and abs(fc - 0.5) < 1e-3


def test_an_edge_moving_across_a_half_metre_grid_line_keeps_the_id() -> None:
    """The old id snapped the outline to 0.5 m: an edge at +0.24 and +0.26 m from a multiple of
    0.5 m snapped to two places, and the id changed."""
    east = CX + 5
    line = math.floor(east * 2) / 2  # a multiple of 0.5 m just west of the east edge
    a, b = _building(dx1=line + 0.24 - east), _building(dx1=line + 0.26 - east)
    assert shapely.set_precision(a, 0.5) != shapely.set_precision(b, 0.5)  # the old failure
    assert _id(a) == _id(b) == _id(_building())


@given(edges=st.tuples(*[st.floats(-0.99, 0.99)] * 4))
def test_sub_metre_moves_of_every_edge_keep_the_id(
    edges: tuple[float, float, float, float],
) -> None:
    """Edges moving by under a metre each (across 0.5 m lines) move the centroid by under a
    metre, and the cell reaches 2.5 m either side of it: the same id."""
    assert _id(_building(*edges)) == _id(_building())


def test_a_centroid_crossing_a_cell_edge_changes_the_id() -> None:
    """The documented limit: 5 m cells. Across a row edge, 10 cm apart, the ids differ."""
    edge_y = CY + CELL_M / 2  # the northern edge of the cell
    south = box(CX - 5, edge_y - 4.05, CX + 5, edge_y + 3.95)
    north = box(CX - 5, edge_y - 3.95, CX + 5, edge_y + 4.05)
    assert _cell_of(*south.centroid.coords[0])[0] > 0.98
    assert _cell_of(*north.centroid.coords[0])[0] < 0.02
    assert _id(south) != _id(north)
    assert _id(_building()) != _id(_building(CELL_M, 0.0, CELL_M, 0.0))


def test_the_crs_of_the_outline_does_not_matter() -> None:
    utm = _building(0.1, -0.2, 0.3, 0.05)
    to_51 = Transformer.from_crs(UTM50, 32651, always_xy=True)
    in_51 = shapely.transform(utm, lambda xy: np.column_stack(to_51.transform(*xy.T)))
    lonlat = shapely.transform(utm, lambda xy: np.column_stack(TO_WGS84.transform(*xy.T)))
    assert _id(utm) == _id(in_51, crs=32651) == _id(lonlat, crs=4326)


def test_class_and_each_survey_date_are_part_of_the_id() -> None:
    g = _building()
    ids = {
        _id(g),
        _id(g, cls="over_height"),
        _id(g, before_date="2025-04-16"),
        _id(g, after_date="2025-10-16"),
        _id(g, before_date=None),  # a first survey against the permit atlas: no before date
    }
    assert len(ids) == 5
    assert _id(g) == _id(g, before_date=dt.date(2025, 4, 15), after_date="2025-10-15T09:00:00")
    assert len(_id(g)) == 16 and set(_id(g)) <= set("0123456789abcdef")


def test_a_projected_outline_without_its_crs_and_an_empty_one_are_refused() -> None:
    with pytest.raises(ChangeDetectionError, match="pass crs="):
        lead_id("no_permit", _building())  # metres read as degrees
    with pytest.raises(ChangeDetectionError, match="no outline"):
        lead_id("no_permit", shapely.Polygon())


def test_a_lead_read_back_from_geojson_gives_its_id_again() -> None:
    (lead,) = _leads([_obj(_building(0.26, 0.0, 0.24, -0.31))])
    back = Lead.from_feature(json.loads(json.dumps(lead.to_feature())))
    again = lead_id(
        back.lead_class, back.geometry, before_date=back.before_date, after_date=back.after_date
    )
    assert again == lead.lead_id


# --- two leads in one cell --------------------------------------------------------------------


def _obj(geom: Any) -> ChangeObject:
    return ChangeObject(geom, "new", float(geom.area), 4.0, 4.0, 1, int(geom.area * 100), 0.9)


def _leads(objs: list[ChangeObject]) -> list[Lead]:
    return build_leads(
        objs,
        None,
        crs=UTM50,
        params=DetectParams(),
        before_date="2025-04-15",
        after_date="2025-10-15",
    )


def test_two_leads_in_one_cell_are_both_kept_with_distinct_order_free_ids() -> None:
    north = box(CX - 2, CY + 0.2, CX, CY + 2.2)  # 4 m2 sheds 0.4 m apart, one cell
    south = box(CX + 0.1, CY - 2.2, CX + 2.1, CY - 0.2)
    base = _id(north, cls="new_structure")
    assert _id(south, cls="new_structure") == base
    for order in ([north, south], [south, north]):
        leads = _leads([_obj(g) for g in order])
        assert len(leads) == 2
        by_id = {lead.lead_id: lead for lead in leads}
        assert set(by_id) == {base, f"{base}-2"}
        lon, lat = TO_WGS84.transform(*north.centroid.coords[0])
        assert by_id[base].geometry.centroid.distance(shapely.Point(lon, lat)) < 1e-7


def test_with_unique_ids_never_reuses_an_id() -> None:
    def mk(given_id: str, dy: float) -> Lead:
        g = box(114.5, 37.07 + dy, 114.50001, 37.07001 + dy)
        return Lead(given_id, "no_permit", g, (), 1.0, None, None)

    leads = with_unique_ids([mk("a", 0.0), mk("a", 1e-5), mk("a-2", 2e-5), mk("b", 0.0)])
    ids = [lead.lead_id for lead in leads]
    assert len(set(ids)) == 4 and ids[3] == "b" and "a" in ids and "a-2" in ids


# --- end to end on the synthetic site ---------------------------------------------------------


def _run(site: Any, out: Path, rasters: tuple[Path, Path, Path, Path] | None = None) -> Any:
    bo, ao, bd, ad = rasters or (
        site.before_ortho,
        site.after_ortho,
        site.before_dsm,
        site.after_dsm,
    )
    dates = {"before_date": site.truth["before_date"], "after_date": site.truth["after_date"]}
    return run_detect(bo, ao, out, before_dsm=bd, after_dsm=ad, permits=site.permits, **dates)


def _ids(result: DetectResult) -> list[tuple[str, str]]:
    return sorted((lead.lead_class, lead.lead_id) for lead in result.leads)


@pytest.fixture(scope="module")
def normal(synth_site: Any, tmp_path_factory: pytest.TempPathFactory) -> DetectResult:
    return _run(synth_site, tmp_path_factory.mktemp("ids-normal"))


def test_the_after_epoch_in_the_next_utm_zone_gives_the_same_ids(
    synth_site: Any, normal: DetectResult, tmp_path: Path
) -> None:
    """The old ids had 0 of 5 in common here (same 5 classes): the outlines moved by a
    resampling, across 0.5 m lines, while the centroids moved by 0.07 m at most."""
    from tests.change_detection.test_detect_synth import _after_in_the_next_utm_zone

    ortho, dsm = _after_in_the_next_utm_zone(synth_site, tmp_path, 0.07)
    moved = _run(
        synth_site,
        tmp_path / "out",
        (synth_site.before_ortho, ortho, synth_site.before_dsm, dsm),
    )
    assert any("reprojected" in w for w in moved.coregistration["warnings"])
    assert len(normal.leads) >= 5
    assert _ids(moved) == _ids(normal)


def _reexport(src: Path, dst: Path, **creation: Any) -> Path:
    """The same pixels, mask, tags and georeferencing, written with other creation options."""
    with rasterio.open(src) as ds:
        profile = {k: v for k, v in (ds.profile | creation).items() if v is not None}
        data, mask, tags = ds.read(), ds.dataset_mask(), ds.tags()
        has_mask = any(f.name == "per_dataset" for f in ds.mask_flag_enums[0])
    for key in ("blockxsize", "blockysize"):
        if not profile.get("tiled", False):
            profile.pop(key, None)
    with (
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
        rasterio.open(dst, "w", **profile) as out,
    ):
        out.write(data)
        out.update_tags(**tags)
        if has_mask:
            out.write_mask(mask)
    return dst


def test_re_exported_rasters_give_the_same_ids(
    synth_site: Any, normal: DetectResult, tmp_path: Path
) -> None:
    """LZW in 256 px tiles for the orthophotos, uncompressed strips for the DSMs."""
    tiles = {"compress": "lzw", "tiled": True, "blockxsize": 256, "blockysize": 256}
    strips = {"compress": None, "tiled": False, "predictor": None}
    rasters = (
        _reexport(synth_site.before_ortho, tmp_path / "before_ortho.tif", **tiles),
        _reexport(synth_site.after_ortho, tmp_path / "after_ortho.tif", **tiles),
        _reexport(synth_site.before_dsm, tmp_path / "before_dsm.tif", **strips),
        _reexport(synth_site.after_dsm, tmp_path / "after_dsm.tif", **strips),
    )
    with rasterio.open(rasters[0]) as a, rasterio.open(rasters[2]) as d:
        assert a.compression.name == "lzw" and a.block_shapes[0] == (256, 256)
        assert d.compression is None and d.block_shapes[0][1] == d.width  # strips
    assert _ids(_run(synth_site, tmp_path / "out", rasters)) == _ids(normal)
