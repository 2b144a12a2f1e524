"""Every input reader against corrupted files: a library error naming the file, or sane data.

Each input kind the commands take is fuzzed from a small valid file written here: an
orthophoto GeoTIFF (RGB, internal mask, tiled, DEFLATE) and a DSM GeoTIFF (float32, nodata),
read whole and in dask chunks, and the DSM as the DEM of ``plan --dem`` and ``ingest --dem``
(:func:`survey.sites.read_dem_sampler`); ``permits.geojson`` and ``permits.gpkg``; a site
GeoJSON; an existing-buildings layer (GeoJSON and GeoPackage); ``leads.geojson``. Mutations
are bit flips, truncations, deleted, duplicated, moved and overwritten byte ranges and inserted
random bytes, and, for GeoJSON, edits of the JSON tree (a key or an element deleted or
duplicated, a value replaced by another JSON value: a ring that is not closed, a string for a
number, ...).

The property: the reader returns sane data (shapes, types, values that can be computed: for
rasters ``.values`` is taken, since decode errors surface at read time) or raises one of the
library's own errors (``SurveyError``, ``ChangeDetectionError``) in one line that contains the
file's name; never another exception, never a hang (a watchdog ends the process after
``HANG_S``), never a file written beside the input or the input changed.

The default suite runs a small derandomized set per reader. ``-m slow`` runs the campaign
(``CAMPAIGN_EXAMPLES`` per reader, over 10,000 in all); with ``SITEWATCH_FUZZ_REPORT=<file>``
the outcome counts (accepted, errors by type, per reader) are written there as JSON.

Reading a failure: an input that breaks the property is kept in a folder named after the
reader under the test's ``fuzz`` work folder (its path is in the failure's notes). GDAL and
libtiff report some problems once per process, so a violation may not repeat when Hypothesis
replays it: it then ends in a ``Flaky...`` error instead of a shrunk example, and the kept
inputs are the evidence (each reproduces in a fresh process). A segmentation fault ends the
process; the newest kept folder holds the input being read.
"""

from __future__ import annotations

import faulthandler
import hashlib
import importlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dask.threaded
import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from change_detection.errors import ChangeDetectionError
from change_detection.leads import Lead, leads_to_feature_collection
from change_detection.permits import Permit
from survey.errors import SurveyError, VectorFormatError
from survey.permits import read_permits
from survey.rasters import open_dsm, open_orthophoto, write_geotiff
from survey.sites import read_dem_sampler, read_nofly, read_site, read_site_area
from survey.vectors import VectorFeatures, read_features, read_leads, write_features

LIBRARY_ERRORS = (SurveyError, ChangeDetectionError)
DEFAULT_EXAMPLES = 20  # per reader in the default suite
CAMPAIGN_EXAMPLES = 1_500  # per reader under -m slow: 12 readers, 18,000 inputs
SLOW_S = 20.0  # one read of a 48 px raster or a 3-feature file; generous for a loaded machine
HANG_S = 120.0  # the watchdog: dump every thread's stack and end the process

UTM50 = 32650
X0, Y0 = 500_000.0, 4_000_000.0
LON0, LAT0 = 117.0, 36.14  # about (X0, Y0) in WGS84


# --- the valid seed files -----------------------------------------------------------------------


def _orthophoto(path: Path) -> None:
    n = 48
    yy, xx = np.mgrid[0:n, 0:n]
    rgb = np.stack([(xx * 5) % 256, (yy * 5) % 256, (xx + yy) % 256]).astype(np.uint8)
    valid = np.ones((n, n), bool)
    valid[:, :4] = False  # a collar, so the mask matters
    write_geotiff(
        path,
        rgb,
        transform=Affine(0.1, 0, X0, 0, -0.1, Y0),
        crs=UTM50,
        mask=valid,
        blocksize=16,
        tags={"SITEWATCH_SURVEY_DATE": "2025-10-15"},
    )


def _dsm(path: Path) -> None:
    n = 48
    yy, xx = np.mgrid[0:n, 0:n]
    z = (50.0 + 0.05 * xx + 0.02 * yy).astype(np.float32)
    z[10:20, 10:24] += 6.0  # a building
    z[:3, :3] = -9999.0
    write_geotiff(
        path,
        z,
        transform=Affine(0.1, 0, X0, 0, -0.1, Y0),
        crs=UTM50,
        nodata=-9999.0,
        blocksize=16,
    )


def _footprints() -> list[Any]:
    d = 0.0002
    return [box(LON0 + i * 2 * d, LAT0, LON0 + i * 2 * d + d, LAT0 + d) for i in range(3)]


def _permits(path: Path) -> None:
    props = [
        {
            "permit_id": f"P-{i}",
            "max_height_m": 9.0 + i,
            "floors": 3,
            "valid_from": "2025-01-01",
            "valid_to": "2026-12-31",
        }
        for i in range(3)
    ]
    write_features(path, _footprints(), props, crs=4326)


def _existing(path: Path) -> None:
    props = [{"building_id": f"B-{i}", "height_m": 6.0 + i, "floors": 2} for i in range(3)]
    write_features(path, _footprints(), props, crs=4326)


def _site(path: Path) -> None:
    write_features(path, [box(LON0, LAT0, LON0 + 0.002, LAT0 + 0.0015)], [{"name": "site"}])


def _leads(path: Path) -> None:
    leads = [
        Lead(
            lead_id=f"{i:016x}",
            lead_class=cls,
            geometry=g,
            reasons=("a new structure of 80 m², 6.0 m tall; no valid permit covers it",),
            area_m2=80.0,
            height_gain_m=6.0,
            floors_added=2,
            permit_ids=("P-1",) if cls != "no_permit" else (),
            score=0.9,
            before_date="2025-04-15",
            after_date="2025-10-15",
            input_hashes={"after_dsm": "ab" * 32},
        )
        for i, (cls, g) in enumerate(zip(("no_permit", "over_height"), _footprints(), strict=False))
    ]
    path.write_text(json.dumps(leads_to_feature_collection(leads), indent=1), encoding="utf-8")


# --- sanity of what a reader returned -------------------------------------------------------------


def _check_orthophoto(result: Any) -> None:
    rgb, valid = result[0], result[1]
    try:
        pixels, mask = np.asarray(rgb.values), np.asarray(valid.values)  # decode now
        assert rgb.dims == ("band", "y", "x") and pixels.shape[0] == 3
        assert pixels.dtype == np.uint8 and mask.dtype == bool
        assert mask.shape == pixels.shape[1:] and mask.ndim == 2
    finally:
        rgb.close()
        valid.close()


def _check_dsm(dsm: Any) -> None:
    try:
        z = np.asarray(dsm.values)  # decode now
        assert dsm.dims == ("y", "x") and z.dtype == np.float32 and z.ndim == 2
    finally:
        dsm.close()


def _check_dem_sampler(sample: Any) -> None:
    x = X0 + np.array([0.5, 2.4, 4.7, 100.0])  # three on the DEM, one beyond its reach
    z = np.asarray(sample(x, np.full(4, Y0 - 2.0)))
    assert z.shape == (4,) and z.dtype == np.float64
    assert np.isnan(z[3])


def _check_features(feats: VectorFeatures) -> None:
    assert len(feats.geometries) == len(feats.properties)
    for g, props in feats.pairs():
        assert g is None or isinstance(g, shapely.Geometry)
        assert isinstance(props, dict)


def _check_polygon_layer(feats: VectorFeatures) -> None:
    _check_features(feats)
    for g in feats.geometries:
        if g is not None and not g.is_empty:
            g.area  # noqa: B018 (GEOS evaluates it: must not raise)


def _check_permits(permits: list[Permit]) -> None:
    assert permits
    for p in permits:
        assert isinstance(p, Permit) and p.permit_id
        assert p.geometry.geom_type in ("Polygon", "MultiPolygon") and p.geometry.is_valid
        assert p.geometry.area > 0 and np.isfinite(shapely.get_coordinates(p.geometry)).all()
        assert p.max_height_m is None or (np.isfinite(p.max_height_m) and p.max_height_m >= 0)


def _check_site(site: Any) -> None:
    assert site.geometry.geom_type in ("Polygon", "MultiPolygon")
    assert np.isfinite(shapely.get_coordinates(site.geometry)).all()
    assert site.crs.is_projected


def _check_leads(leads: list[Lead]) -> None:
    assert len({lead.lead_id for lead in leads}) == len(leads)
    for lead in leads:
        assert lead.geometry.geom_type in ("Polygon", "MultiPolygon")
        xy = shapely.get_coordinates(lead.geometry)
        assert np.isfinite(xy).all() and (np.abs(xy) <= [180, 90]).all()
        assert np.isfinite(lead.area_m2) and 0 <= lead.score <= 1


def _read_existing_buildings(path: Path) -> Any:
    """The dedicated reader of the existing-buildings layer (issue #12), when it exists."""
    try:
        module = importlib.import_module("survey.buildings")
    except ImportError:
        pytest.skip("survey.buildings.read_existing_buildings is not there yet")
    return module.read_existing_buildings(path, UTM50)


def _check_existing_buildings(buildings: list[Any]) -> None:
    for b in buildings:
        assert b.geometry.geom_type in ("Polygon", "MultiPolygon") and b.geometry.area > 0


#: name -> (file name, writer of the valid seed, reader, check of the result, JSON-aware)
READERS: dict[
    str, tuple[str, Callable[[Path], None], Callable[[Path], Any], Callable[[Any], None], bool]
] = {
    "orthophoto": (
        "ortho.tif",
        _orthophoto,
        lambda p: open_orthophoto(p),
        _check_orthophoto,
        False,
    ),
    "orthophoto-chunked": (
        "ortho.tif",
        _orthophoto,
        lambda p: open_orthophoto(p, chunks=16),
        _check_orthophoto,
        False,
    ),
    "dsm": ("dsm.tif", _dsm, lambda p: open_dsm(p), _check_dsm, False),
    "dsm-chunked": ("dsm.tif", _dsm, lambda p: open_dsm(p, chunks=16), _check_dsm, False),
    "dem-sampler": (
        "dem.tif",
        _dsm,
        lambda p: read_dem_sampler(p, UTM50, extend_m=10.0),
        _check_dem_sampler,
        False,
    ),
    "permits-geojson": (
        "permits.geojson",
        _permits,
        lambda p: read_permits(p, UTM50),
        _check_permits,
        True,
    ),
    "permits-gpkg": (
        "permits.gpkg",
        _permits,
        lambda p: read_permits(p, UTM50),
        _check_permits,
        False,
    ),
    "site-geojson": ("site.geojson", _site, read_site, _check_site, True),
    # The existing-buildings layer as the commands read it today (a polygon layer through
    # read_features); "existing-buildings" points the same files at the dedicated reader.
    "existing-geojson": (
        "existing.geojson",
        _existing,
        lambda p: read_features(p, role="existing buildings"),
        _check_polygon_layer,
        True,
    ),
    "existing-gpkg": (
        "existing.gpkg",
        _existing,
        lambda p: read_features(p, role="existing buildings"),
        _check_polygon_layer,
        False,
    ),
    "existing-buildings": (
        "existing.geojson",
        _existing,
        _read_existing_buildings,
        _check_existing_buildings,
        True,
    ),
    "leads-geojson": ("leads.geojson", _leads, read_leads, _check_leads, True),
}


# --- mutations ----------------------------------------------------------------------------------

_POS = st.integers(0, 2**31 - 1)  # a position, taken modulo the length (shrinks to the start)
_BYTE_OPS = st.one_of(
    st.tuples(st.just("flip"), _POS, st.integers(0, 7)),
    st.tuples(st.just("truncate"), _POS),
    st.tuples(st.just("delete"), _POS, st.integers(1, 64)),
    st.tuples(st.just("duplicate"), _POS, st.integers(1, 64)),
    st.tuples(st.just("move"), _POS, st.integers(1, 64), _POS),
    st.tuples(st.just("overwrite"), _POS, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("insert"), _POS, st.binary(min_size=1, max_size=16)),
)
_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_JSON_OPS = st.one_of(
    st.tuples(st.just("json-delete"), _POS),
    st.tuples(st.just("json-duplicate"), _POS),
    st.tuples(st.just("json-replace"), _POS, _JSON_VALUES),
)


def _apply_bytes(data: bytes, op: tuple[Any, ...]) -> bytes:
    b = bytearray(data)
    n = len(b)
    kind, at = op[0], op[1] % (n + 1)
    if kind == "flip" and n:
        b[at % n] ^= 1 << op[2]
    elif kind == "truncate":
        del b[at:]
    elif kind == "delete":
        del b[at : at + op[2]]
    elif kind == "duplicate":
        b[at:at] = b[at : at + op[2]]
    elif kind == "move":
        piece = bytes(b[at : at + op[2]])
        del b[at : at + op[2]]
        to = op[3] % (len(b) + 1)
        b[to:to] = piece
    elif kind == "overwrite":
        b[at : at + len(op[2])] = op[2]
    elif kind == "insert":
        b[at:at] = op[2]
    return bytes(b)


def _nodes(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths (keys and indexes) of every node below the root, depth first."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield (*path, k)
            yield from _nodes(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield (*path, i)
            yield from _nodes(v, (*path, i))


def _apply_json(data: bytes, op: tuple[Any, ...]) -> bytes:
    try:
        doc = json.loads(data)
    except ValueError:
        return data  # an earlier byte mutation broke the JSON: nothing to walk
    paths = list(_nodes(doc))
    if not paths:
        return data
    path = paths[op[1] % len(paths)]
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if op[0] == "json-delete":
        del parent[last]
    elif op[0] == "json-duplicate":
        if isinstance(parent, list):
            parent.insert(last, json.loads(json.dumps(parent[last])))
        else:
            parent[f"{last}_2"] = parent[last]
    else:
        parent[last] = op[2]
    return json.dumps(doc).encode()


def _mutate(seed: bytes, ops: list[tuple[Any, ...]]) -> bytes:
    data = seed
    for op in ops:
        data = _apply_json(data, op) if op[0].startswith("json") else _apply_bytes(data, op)
    return data


def _ops(json_aware: bool) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    one = st.one_of(_BYTE_OPS, _JSON_OPS) if json_aware else _BYTE_OPS
    return st.lists(one, min_size=1, max_size=4)


# --- the property -------------------------------------------------------------------------------

OUTCOMES: Counter[tuple[str, str]] = Counter()
SECONDS: Counter[str] = Counter()


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The valid seed file of each reader, as bytes; each one must be accepted as it is."""
    folder = tmp_path_factory.mktemp("fuzz-seeds")
    out = {}
    for name, (file_name, write, _, _, _) in READERS.items():
        path = folder / name / file_name
        path.parent.mkdir()
        write(path)
        out[name] = path.read_bytes()
    return out


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    target = os.environ.get("SITEWATCH_FUZZ_REPORT")
    if target and OUTCOMES:
        per_reader: dict[str, dict[str, int]] = {}
        for (reader, outcome), n in sorted(OUTCOMES.items()):
            per_reader.setdefault(reader, {})[outcome] = n
        report = {"per_reader": per_reader, "seconds": dict(SECONDS)}
        Path(target).write_text(json.dumps(report, indent=1), encoding="utf-8")


def _read_one(reader: str, data: bytes, workdir: Path) -> str:
    """Write ``data`` alone in a fresh folder, read it, check the property; the outcome.

    The folder is removed when the property holds and kept otherwise (its path is in the
    failure's notes; after a crash, the newest folder under ``workdir`` holds the input).
    """
    folder = Path(tempfile.mkdtemp(dir=workdir, prefix=f"{reader}-"))
    try:
        outcome = _check_property(reader, data, folder)
    except BaseException as exc:
        exc.add_note(f"the input is kept in {folder}")
        raise
    shutil.rmtree(folder)
    OUTCOMES[(reader, outcome)] += 1
    return outcome


def _check_property(reader: str, data: bytes, folder: Path) -> str:
    file_name, _, read, check, _ = READERS[reader]
    path = folder / file_name
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    # Exceptions raised where they cannot propagate (a C callback, a __del__) are printed to
    # stderr as tracebacks: the user sees them, so they break the property too. Collected here,
    # so that the input that caused one is the one reported.
    ignored: list[str] = []
    pytest_hook = sys.unraisablehook
    sys.unraisablehook = lambda u: ignored.append(f"{u.exc_type.__name__}: {u.exc_value}")
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    start = time.perf_counter()
    try:
        result = read(path)
        check(result)
        outcome = "accepted"
    except LIBRARY_ERRORS as exc:
        message = str(exc)
        assert file_name in message, f"{type(exc).__name__} without the file name: {message}"
        assert "\n" not in message.strip(), f"{type(exc).__name__} of several lines: {message}"
        outcome = type(exc).__name__
    finally:
        faulthandler.cancel_dump_traceback_later()
        sys.unraisablehook = pytest_hook
    elapsed = time.perf_counter() - start
    SECONDS[reader] += elapsed
    assert not ignored, f"exceptions printed to stderr while reading: {ignored}"
    assert elapsed < SLOW_S, f"{reader} took {elapsed:.1f} s"
    assert sorted(os.listdir(folder)) == [file_name], "a file was written beside the input"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, "the input was changed"
    return outcome


@pytest.mark.parametrize("reader", list(READERS))
def test_every_seed_file_is_read(reader: str, seeds: dict[str, bytes], tmp_path: Path) -> None:
    """Without corruption, each reader accepts its seed (else the fuzzing proves nothing)."""
    assert _read_one(reader, seeds[reader], tmp_path) == "accepted"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


_SETTINGS = {
    "deadline": None,  # timing is checked by _read_one (SLOW_S) and the watchdog (HANG_S)
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


def _fuzz_here(reader: str, examples: int, seeds: dict[str, bytes], workdir: Path) -> None:
    """The property for ``reader`` over ``examples`` corrupted inputs (Hypothesis, this
    process)."""

    @settings(max_examples=examples, **_SETTINGS)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        ops = data.draw(_ops(READERS[reader][4]), label="mutations")
        _read_one(reader, _mutate(seeds[reader], ops), workdir)

    run()


def _fuzz_in_child(reader: str, examples: int, seeds: dict[str, bytes], workdir: Path) -> None:
    """:func:`_fuzz_here` in a forked child: a crash in C code (GDAL, GEOS) fails this test with
    its signal instead of ending the test run. The child inherits pytest's warning filters and
    sends back its failure (Hypothesis's report) and its outcome counts."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read_end)
        dask.threaded.default_pool = None  # its threads stayed in the parent: start new ones
        dask.threaded.pools.clear()
        failure = ""
        try:
            _fuzz_here(reader, examples, seeds, workdir)
        except BaseException:
            failure = traceback.format_exc()
        counts = [[r, o, n] for (r, o), n in OUTCOMES.items() if r == reader]
        report = {"failure": failure[-20_000:], "outcomes": counts, "seconds": SECONDS[reader]}
        with os.fdopen(write_end, "w") as out:
            out.write(json.dumps(report))
        os._exit(1 if failure else 0)
    os.close(write_end)
    with os.fdopen(read_end) as answer:
        text = answer.read()  # until the child exits (a hang ends at the watchdog, HANG_S)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        pytest.fail(
            f"reading a corrupted {reader} killed the process ({name}); the newest "
            f"{reader}-* folder in {workdir} holds the input"
        )
    report = json.loads(text) if text else {"failure": f"exit status {status}", "outcomes": []}
    for r, outcome, n in report["outcomes"]:
        OUTCOMES[(r, outcome)] += n
    SECONDS[reader] += report.get("seconds", 0.0)
    assert not report["failure"], report["failure"]


@pytest.mark.parametrize("reader", list(READERS))
def test_corrupted_inputs_give_a_library_error_naming_the_file(
    reader: str, seeds: dict[str, bytes], workdir: Path
) -> None:
    _fuzz_in_child(reader, DEFAULT_EXAMPLES, seeds, workdir)


@pytest.mark.slow
@pytest.mark.parametrize("reader", list(READERS))
def test_fuzz_campaign(reader: str, seeds: dict[str, bytes], workdir: Path) -> None:
    """The campaign of issue #12: over 10,000 corrupted inputs in all (``-m slow``)."""
    _fuzz_in_child(reader, CAMPAIGN_EXAMPLES, seeds, workdir)


# --- known answers of the errors ----------------------------------------------------------------


def _geojson(path: Path, ring: list[list[float]], props: dict[str, Any]) -> Path:
    feature = {
        "type": "Feature",
        "properties": props,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    return path


SQUARE = [[LON0, LAT0], [LON0 + 1e-4, LAT0], [LON0 + 1e-4, LAT0 + 1e-4], [LON0, LAT0 + 1e-4]]


def test_a_permit_whose_ring_is_not_closed_names_the_file_the_feature_and_the_fix(
    tmp_path: Path,
) -> None:
    """It crashed detect with a GEOS traceback (issue #12)."""
    path = _geojson(tmp_path / "permits.geojson", SQUARE, {"permit_id": "P-9"})
    with pytest.raises(SurveyError) as info:
        read_permits(path, UTM50)
    message = str(info.value)
    assert str(path) in message and "feature 0 (permit_id 'P-9')" in message
    assert "not closed" in message and "repeat each ring's first point as its last" in message
    assert "\n" not in message


def test_a_degenerate_permit_footprint_is_refused(tmp_path: Path) -> None:
    """Three points, closed: GEOS reads it, make_valid turns it into a line."""
    ring = [SQUARE[0], SQUARE[1], SQUARE[0]]
    path = _geojson(tmp_path / "permits.geojson", ring, {"permit_id": "P-3"})
    with pytest.raises(
        ChangeDetectionError, match=r"permits\.geojson: permit P-3 has a footprint of no area"
    ):
        read_permits(path, UTM50)


def test_a_leads_file_with_broken_json_or_a_foreign_feature(tmp_path: Path) -> None:
    bad = tmp_path / "leads.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [')
    with pytest.raises(SurveyError, match=r"leads\.geojson: leads file is not valid JSON"):
        read_leads(bad)
    bad.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature"}]}')
    with pytest.raises(ChangeDetectionError, match=r"leads\.geojson: feature 0: .*not a sitewatch"):
        read_leads(bad)
    bad.write_text('{"type": "FeatureCollection", "features": [], "x": NaN}')
    with pytest.raises(SurveyError, match="NaN, which JSON does not allow"):
        read_leads(bad)


def test_a_site_point_that_is_no_place_on_earth_is_refused(tmp_path: Path) -> None:
    """A coordinate of three numbers that shifted ([117, 117, 36.14]) made the site's UTM zone
    from an infinite centroid: OverflowError / ValueError before."""
    ring = [*SQUARE[:2], [LON0 + 1e-4, LON0 + 1e-4], SQUARE[3], SQUARE[0]]
    path = _geojson(tmp_path / "site.geojson", ring, {"name": "yard"})
    with pytest.raises(VectorFormatError) as info:
        read_site(path)
    assert str(info.value) == (
        f"{path}: the site has a point (117, 117) that is no place on Earth in WGS 84; check "
        "the coordinate order (x = longitude / easting first) and the CRS the file declares"
    )


def test_a_site_whose_only_polygon_is_empty_is_refused(tmp_path: Path) -> None:
    """An empty polygon (its ring deleted) crashed on the centroid of nothing (GEOSException)."""
    path = tmp_path / "site.geojson"
    empty = {"type": "Polygon", "coordinates": []}
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [{"type": "Feature", "properties": {}, "geometry": empty}],
            }
        )
    )
    with pytest.raises(VectorFormatError, match=r"site\.geojson: the site file holds no polygon"):
        read_site(path)


def test_read_site_area_and_read_nofly_repair_a_bow_tie(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Detection crops to the site: shapely.union_all of a bow-tie and another polygon raised
    a GEOS TopologyException; the area reader repairs it to its two triangles (one warning)."""
    d = 1e-4
    bow_tie = [[LON0, LAT0], [LON0 + d, LAT0 + d], [LON0 + d, LAT0], [LON0, LAT0 + d], [LON0, LAT0]]
    square = box(LON0 + d / 2, LAT0 + d / 2, LON0 + 2 * d, LAT0 + 2 * d)
    path = tmp_path / "site.geojson"
    features = [
        {
            "type": "Feature",
            "properties": {},
            "geometry": {"type": "Polygon", "coordinates": [bow_tie]},
        },
        {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(square)},
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    area = read_site_area(path, UTM50)
    assert area.is_valid and area.geom_type in ("Polygon", "MultiPolygon")
    square_m2 = read_site_area(
        _geojson(tmp_path / "sq.geojson", [list(c) for c in square.exterior.coords], {}), UTM50
    ).area
    assert square_m2 < area.area < square_m2 + 0.5 * (d * 111_000) ** 2
    assert any("invalid" in r.getMessage() and "repaired" in r.getMessage() for r in caplog.records)
    zones = read_nofly(path, UTM50)
    assert all(z.is_valid for z in zones)
    assert shapely.union_all(zones).area == pytest.approx(area.area, rel=1e-6)
