"""A season of surveys over two synthetic sites through ``run_survey`` and ``sitewatch run``
(issue #16): the registry, the lead states, the retention holds and the custody ledger come out
exactly as planted, on SQLite and on PostgreSQL.

The season (dates interleaved, so survey and lead ids follow them)::

    Alpha (risk medium; permit P-A1 3 floors / 10 m, amended from 2025-06-01 to 5 floors / 16 m;
    existing building B-A1)
      A1 2025-03-01  first survey: P-A1 a foundation pit, shed S1        -> lead S1 (no_permit)
      A2 2025-04-15  P-A1 2 floors, S1, new shed S2                      -> lead S2 (no_permit)
      A3 2025-05-20  P-A1 4 floors (one over v1), S1 demolished          -> lead OH (over_height,
                                                                            stage in its reasons),
                                                                            S1 proposed closure
      A4 2025-07-01  P-A1 5 floors (v2 in force)                         -> no lead; top floor
    Beta (risk high; permit P-B1 2 floors / 7 m)
      B1 2025-03-10  first survey: P-B1 not started, building U1         -> lead U1 (no_permit)
      B2 2025-05-10  P-B1 one floor, 4 m beyond its footprint (the CLI)  -> lead OF
                                                                            (outside_footprint)
      B3 2025-07-10  P-B1 2 floors, U1 demolished                        -> OF seen again, U1
                                                                            proposed closure

and between the surveys the inspectors move the leads: U1 and S2 through under_review ->
confirmed -> notice_issued (U1 then demolished -> closed after B3), OF to confirmed, S1 to
dismissed -> closed, OH to dismissed once the amendment allows its floors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from survey.cli import run as cli_run
from survey.evidence import EvidenceStore
from survey.progress_stages import ProjectProgress, classify_stage, read_progress
from survey.registry import Registry, RegistryInputError, RegistryLookupError
from survey.run_survey import SurveyRun, qc_verdict, run_survey, site_timeline
from tests.maps.test_review import timeline_in_map
from tests.survey.registry.conftest import db_url, postgres_admin  # noqa: F401 (fixtures)
from tests.survey.season_site import SeasonSite, Structure, floors_height

# ----------------------------------------------------------------------------- the two sites

ALPHA = SeasonSite("Alpha", 500_000.0, 4_102_000.0, seed=3)
BETA = SeasonSite("Beta", 500_300.0, 4_102_000.0, seed=7)

P_A1 = Structure("P-A1", 30, 30, 20, 15, -2.0)  # starts as a foundation pit
B_A1 = Structure("B-A1", 60, 55, 10, 10, floors_height(2), (170, 120, 100))
S1 = Structure("S1", 10, 50, 6, 5, 3.4, (60, 90, 170))
S2 = Structure("S2", 55, 25, 5, 4, 3.4, (60, 90, 170))
P_B1 = Structure("P-B1", 20, 30, 12, 10, 0.0)
P_B1_WIDE = Structure("P-B1+", 20, 30, 16, 10, floors_height(1), (200, 200, 205))  # 4 m beyond
U1 = Structure("U1", 50, 50, 8, 6, floors_height(2), (60, 90, 170))

EPOCHS: dict[str, tuple[SeasonSite, str, list[Structure]]] = {
    "A1": (ALPHA, "2025-03-01", [P_A1, B_A1, S1]),
    "B1": (BETA, "2025-03-10", [U1]),
    "A2": (ALPHA, "2025-04-15", [P_A1.grown(floors_height(2)), B_A1, S1, S2]),
    "B2": (BETA, "2025-05-10", [P_B1_WIDE, U1]),
    "A3": (ALPHA, "2025-05-20", [P_A1.grown(floors_height(4)), B_A1, S2]),
    "B3": (BETA, "2025-07-10", [P_B1_WIDE, P_B1.grown(floors_height(2))]),
    "A4": (ALPHA, "2025-07-01", [P_A1.grown(floors_height(5)), B_A1, S2]),
}
ORDER = ("A1", "B1", "A2", "B2", "A3", "A4", "B3")  # by date
SURVEY_ID = {name: i + 1 for i, name in enumerate(ORDER)}
USER = "inspector7"


@dataclass
class Season:
    """What the season left: the registry, the runs by epoch, the store and the folders."""

    registry: Registry
    store: Path
    out: Path
    runs: dict[str, SurveyRun | dict[str, Any]] = field(default_factory=dict)
    lead: dict[str, int] = field(default_factory=dict)


def _register_sites(reg: Registry, root: Path) -> None:
    ALPHA.write_boundary(root / "alpha" / "site.geojson")
    ALPHA.write_permits(
        root / "alpha" / "permits.geojson",
        [
            {
                "structure": P_A1,
                "permit_id": "P-A1",
                "floors": 3,
                "max_height_m": 10.0,
                "valid_from": "2025-01-01",
                "valid_to": "2025-05-31",
            },
            {
                "structure": P_A1,
                "permit_id": "P-A1",
                "floors": 5,
                "max_height_m": 16.0,
                "valid_from": "2025-06-01",
                "valid_to": None,
            },
        ],
    )
    ALPHA.write_existing(root / "alpha" / "existing.geojson", [("B-A1", B_A1)])
    BETA.write_boundary(root / "beta" / "site.geojson")
    BETA.write_permits(
        root / "beta" / "permits.geojson",
        [
            {
                "structure": P_B1,
                "permit_id": "P-B1",
                "floors": 2,
                "max_height_m": 7.0,
                "valid_from": "2025-01-01",
                "valid_to": None,
            }
        ],
    )
    reg.add_site("Alpha", root / "alpha" / "site.geojson", risk="medium", user=USER)
    reg.add_site("Beta", root / "beta" / "site.geojson", risk="high", user=USER)
    reg.import_permits(root / "alpha" / "permits.geojson", "Alpha", user=USER)
    reg.import_existing(root / "alpha" / "existing.geojson", "Alpha", user=USER)
    reg.import_permits(root / "beta" / "permits.geojson", "Beta", user=USER)


def _run(
    season: Season,
    name: str,
    *,
    via_cli: bool = False,
    review_map: bool = False,
    packages: bool = False,
    capsys: pytest.CaptureFixture[str] | None = None,
) -> None:
    site, date, structures = EPOCHS[name]
    files = site.write_epoch(season.out / "epochs" / name, structures, date)
    if via_cli:
        assert capsys is not None
        capsys.readouterr()
        args = [
            "run",
            site.name,
            "--date",
            date,
            "--ortho",
            str(files["ortho"]),
            "--dsm",
            str(files["dsm"]),
            "--dtm",
            str(files["dtm"]),
            "--db",
            str(season.registry.url.render_as_string(hide_password=False)),
            "--out",
            str(season.out / "runs"),
            "--user",
            USER,
            "--json",
        ]
        if not review_map:
            args.append("--no-map")
        if not packages:
            args.append("--no-packages")
        assert cli_run(args) == 0, capsys.readouterr().err
        season.runs[name] = json.loads(capsys.readouterr().out)
    else:
        season.runs[name] = run_survey(
            season.registry,
            site.name,
            date,
            out_dir=season.out / "runs",
            ortho=files["ortho"],
            dsm=files["dsm"],
            dtm=files["dtm"],
            user=USER,
            review_map=review_map,
            packages=packages,
        )
    season.registry.approve_survey(SURVEY_ID[name], user=USER)


def _leads_of(run: SurveyRun | dict[str, Any]) -> list[tuple[int, str, str]]:
    """(registry id, action, class) of a run's leads, from the result or the CLI's JSON."""
    if isinstance(run, SurveyRun):
        return [(r.lead_id, r.action, r.lead.lead_class) for r in run.leads]
    return [(r["lead_id"], r["action"], r["class"]) for r in run["leads"]]


def _status(season: Season, lead: str, *states: str, reason: str | None = None) -> None:
    for state in states:
        season.registry.set_lead_status(season.lead[lead], state, reason=reason, user=USER)


def play_season(
    db: str,
    root: Path,
    capsys: pytest.CaptureFixture[str],
    *,
    maps: Callable[[str], bool] = lambda name: name == "A3",
    packages: Callable[[str], bool] = lambda name: name == "B3",
) -> Season:
    """Play the season of the module docstring into ``db`` (the store and files in ``root``)."""
    store = root / "store"
    EvidenceStore.open(store, create=True)
    reg = Registry.open(db, user=USER)
    reg.set_evidence_store(store)
    season = Season(reg, store, root)
    _register_sites(reg, root)

    def run(name: str, **kw: Any) -> None:
        _run(season, name, review_map=maps(name), packages=packages(name), **kw)

    run("A1")
    season.lead["S1"] = 1
    run("B1")
    season.lead["U1"] = 2
    _status(season, "U1", "under_review", "confirmed", "notice_issued")
    run("A2")
    season.lead["S2"] = 3
    _status(season, "S1", "under_review")
    _status(season, "S2", "under_review", "confirmed", "notice_issued")
    run("B2", via_cli=True, capsys=capsys)
    season.lead["OF"] = 4
    _status(season, "OF", "under_review", "confirmed")
    run("A3")
    season.lead["OH"] = 5
    _status(season, "S1", "dismissed", reason="removed by its owner before any notice")
    _status(season, "S1", "closed")
    _status(season, "OH", "under_review")
    run("A4")
    _status(season, "OH", "dismissed", reason="permit P-A1 amended from 2025-06-01: 5 floors")
    run("B3")
    _status(season, "U1", "demolished", "closed")
    return season


def sid_name(survey_id: int) -> str:
    """The epoch name of a survey id of the season."""
    return {v: k for k, v in SURVEY_ID.items()}[survey_id]


# What the season must leave, exactly.
RUN_LEADS = {
    "A1": [(1, "created", "no_permit")],
    "B1": [(2, "created", "no_permit")],
    "A2": [(3, "created", "no_permit")],
    "B2": [(4, "created", "outside_footprint")],
    "A3": [(5, "created", "over_height")],
    "A4": [],
    "B3": [(4, "updated", "outside_footprint")],
}
PROPOSED_CLOSURE = {"A3": (1,), "B3": (2,)}
STAGES = {  # permit, stage, storeys, exceeds
    "A1": ("P-A1", "foundation", 0, ()),
    "A2": ("P-A1", "standard_floors", 2, ()),
    "A3": ("P-A1", "top_floor", 4, ("over_height",)),
    "A4": ("P-A1", "top_floor", 5, ()),
    "B1": ("P-B1", "setting_out", 0, ()),
    "B2": ("P-B1", "first_floor", 1, ("outside_footprint",)),
    "B3": ("P-B1", "top_floor", 2, ("outside_footprint",)),
}
FINAL = {  # lead id: site, class, state, risk, first survey, last survey
    1: ("Alpha", "no_permit", "closed", "medium", "A1", "A1"),
    2: ("Beta", "no_permit", "closed", "high", "B1", "B1"),
    3: ("Alpha", "no_permit", "notice_issued", "medium", "A2", "A2"),
    4: ("Beta", "outside_footprint", "confirmed", "high", "B2", "B3"),
    5: ("Alpha", "over_height", "dismissed", "medium", "A3", "A3"),
}
S, C, P = "state", "created", "closure_proposed"
EVENTS = {  # lead id: (kind, from, to, survey) of every change, in order
    1: [
        (C, None, "new", "A1"),
        (S, "new", "under_review", None),
        (P, "under_review", "under_review", "A3"),
        (S, "under_review", "dismissed", None),
        (S, "dismissed", "closed", None),
    ],
    2: [
        (C, None, "new", "B1"),
        (S, "new", "under_review", None),
        (S, "under_review", "confirmed", None),
        (S, "confirmed", "notice_issued", None),
        (P, "notice_issued", "notice_issued", "B3"),
        (S, "notice_issued", "demolished", None),
        (S, "demolished", "closed", None),
    ],
    3: [
        (C, None, "new", "A2"),
        (S, "new", "under_review", None),
        (S, "under_review", "confirmed", None),
        (S, "confirmed", "notice_issued", None),
    ],
    4: [
        (C, None, "new", "B2"),
        (S, "new", "under_review", None),
        (S, "under_review", "confirmed", None),
        ("observed", "confirmed", "confirmed", "B3"),
    ],
    5: [
        (C, None, "new", "A3"),
        (S, "new", "under_review", None),
        (S, "under_review", "dismissed", None),
    ],
}
HOLDS = {"A1": False, "A2": True, "A3": False, "A4": False, "B1": False, "B2": True, "B3": True}


def check_season(season: Season) -> None:
    """Assert everything the season must leave (the tables above)."""
    reg = season.registry
    sid = {v: k for k, v in SURVEY_ID.items()}
    for name in ORDER:
        assert _leads_of(season.runs[name]) == RUN_LEADS[name], name
        run = season.runs[name]
        proposed = (
            run.proposed_closure if isinstance(run, SurveyRun) else tuple(run["proposed_closure"])
        )
        assert proposed == PROPOSED_CLOSURE.get(name, ()), name
    # surveys: dates, references, approval, products, evidence
    for site_name, names in (("Alpha", ("A1", "A2", "A3", "A4")), ("Beta", ("B1", "B2", "B3"))):
        surveys = reg.surveys(site_name)
        assert [s.survey_id for s in surveys] == [SURVEY_ID[n] for n in names]
        for s, name in zip(surveys, names, strict=True):
            is_first = name.endswith("1")
            assert s.reference == ("atlas" if is_first else "survey"), name
            previous = None if is_first else SURVEY_ID[f"{name[0]}{int(name[1]) - 1}"]
            assert s.reference_survey_id == previous, name
            assert s.approved and s.approved_by == USER
            assert len(s.evidence) == 3  # orthophoto, DSM, DTM added as originals
            stage = STAGES[name]
            (progress,) = read_progress(s.products["progress"])
            assert (progress.permit_id, progress.stage, progress.storeys, progress.exceeds) == (
                stage
            ), name
    # the stage is in the reasons of the lead it earned
    oh = reg.lead(5)
    assert any(r.startswith("construction stage of permit P-A1: top floor") for r in oh.reasons)
    assert any("1 floor more than permit P-A1 allows (4 of 3)" in r for r in oh.reasons)
    of = reg.lead(4)
    assert any(r.startswith("construction stage of permit P-B1: top floor") for r in of.reasons)
    # the leads
    summaries = {ld.lead_id: ld for ld in reg.leads()}
    assert set(summaries) == set(FINAL)
    for lead_id, (site_name, cls, state, risk, first, last) in FINAL.items():
        rec = reg.lead(lead_id)
        assert (rec.site, rec.lead_class, rec.state, rec.risk) == (site_name, cls, state, risk)
        assert (rec.first_survey_id, rec.last_survey_id) == (SURVEY_ID[first], SURVEY_ID[last])
        assert not rec.closure_proposed or state != "closed"
        got = [
            (e.kind, e.from_state, e.to_state, None if e.survey_id is None else sid[e.survey_id])
            for e in rec.events
        ]
        assert got == EVENTS[lead_id], lead_id
        assert all(e.user == USER for e in rec.events)
    assert [ld.lead_id for ld in reg.leads(state="closed")] == [1, 2]
    assert [ld.lead_id for ld in reg.leads(site="Beta")] == [2, 4]
    # the ledger: one entry per change, naming the lead and the change
    store = EvidenceStore.open(season.store, read_only=True)
    entries = {e.seq: e for e in store.entries()}
    for lead_id in FINAL:
        for e in reg.lead(lead_id).events:
            assert e.ledger_seq is not None
            entry = entries[e.ledger_seq].record
            assert entry["command"] == f"sitewatch registry lead-{e.kind.replace('_', '-')}"
            p = entry["parameters"]
            assert (p["lead"], p["from"], p["to"], p["reason"]) == (
                lead_id,
                e.from_state,
                e.to_state,
                e.reason,
            )
    commands = [str(e.record.get("command")) for e in entries.values() if e.type == "derive"]
    assert sum(c.startswith("sitewatch registry lead-") for c in commands) == sum(
        len(v) for v in EVENTS.values()
    )
    assert commands.count("sitewatch registry survey-register") == len(ORDER)
    assert commands.count("sitewatch registry survey-approve") == len(ORDER)
    assert commands.count("sitewatch check") == 2
    assert commands.count("sitewatch detect") == len(ORDER) - 2
    # retention: the site's tier, a hold while a lead seen in the survey is in enforcement
    cases = store.state().cases
    for name in ORDER:
        case = reg.survey(SURVEY_ID[name]).case
        assert case is not None
        assert cases[case].hold is HOLDS[name], name
        assert cases[case].risk == ("medium" if name[0] == "A" else "high"), name
    assert store.verify().ok


@pytest.mark.usefixtures("postgres_admin")
def test_a_season_over_two_sites_comes_out_as_planted(
    db_url: str,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    on_sqlite = "://" not in db_url  # maps and packages do not depend on the database
    season = play_season(
        db_url,
        tmp_path,
        capsys,
        maps=lambda name: on_sqlite and name == "A3",
        packages=lambda name: on_sqlite and name == "B3",
    )
    try:
        check_season(season)
        tl = site_timeline(season.registry, "Alpha")
        assert [r["stage"] for r in tl["P-A1"]] == [
            "foundation",
            "standard_floors",
            "top_floor",
            "top_floor",
        ]
        assert [r["permitted_floors"] for r in tl["P-A1"]] == [3, 3, 3, 5]  # the amendment
        # the registry holds every survey's progress, which is what the timeline reads
        for site_name in ("Alpha", "Beta"):
            got = {
                sid_name(r.survey_id): (r.permit_id, r.stage, r.storeys, r.exceeds)
                for r in season.registry.progress(site_name)
            }
            assert got == {n: v for n, v in STAGES.items() if n[0] == site_name[0]}
        for run in season.runs.values():
            products = run.products if isinstance(run, SurveyRun) else run["products"]
            Path(products["progress"]).unlink()  # progress.json stays a product, not the source
        assert site_timeline(season.registry, "Alpha") == tl
        if not on_sqlite:
            return
        # the review map of A3 with its timeline, the package of B3's lead
        a3 = season.runs["A3"]
        assert isinstance(a3, SurveyRun)
        timeline = Path(a3.products["timeline"]).read_text()
        assert "Permit P-A1" in timeline and "foundation (基础)" in timeline
        assert "over_height" in timeline
        # the review map of A3 draws the project's stages up to A3 (parsed from the page)
        page = Path(a3.products["review_map"]).read_text(encoding="utf-8")
        drawn = timeline_in_map(page)
        assert [(r[0], r[1], r[2], r[3], r[6]) for r in drawn["P-A1"]] == [
            ("1", "2025-03-01", "foundation (基础)", "0", "—"),
            ("3", "2025-04-15", "standard floors (标准层)", "2", "—"),
            ("5", "2025-05-20", "top floor (顶层)", "4", "over_height"),
        ]
        assert set(drawn) == {"P-A1"}
        b3 = season.runs["B3"]
        assert isinstance(b3, SurveyRun)
        package = Path(b3.products["package_4"])
        assert (package / "manifest.json").is_file()
        from maps import verify_evidence_package

        assert verify_evidence_package(package) == []
    finally:
        season.registry.close()


@pytest.mark.slow
def test_a_season_with_every_map_and_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    season = play_season(
        str(tmp_path / "reg.db"), tmp_path, capsys, maps=lambda _: True, packages=lambda _: True
    )
    try:
        check_season(season)
        for name in ORDER:
            run = season.runs[name]
            products = run.products if isinstance(run, SurveyRun) else run["products"]
            assert "review_map" in products and "timeline" in products
    finally:
        season.registry.close()


# ----------------------------------------------------------------------------- bad input


@pytest.fixture
def one_site(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.open(tmp_path / "reg.db", user=USER)
    BETA.write_boundary(tmp_path / "site.geojson")
    BETA.write_permits(
        tmp_path / "permits.geojson",
        [{"structure": P_B1, "permit_id": "P-B1", "floors": 2, "valid_from": "2025-01-01"}],
    )
    reg.add_site("Beta", tmp_path / "site.geojson", risk="high")
    reg.import_permits(tmp_path / "permits.geojson", "Beta")
    yield reg
    reg.close()


def test_an_unknown_site_is_one_line_and_changes_nothing(
    one_site: Registry, tmp_path: Path
) -> None:
    files = BETA.write_epoch(tmp_path / "e", [U1], "2025-03-10")
    with pytest.raises(RegistryLookupError, match="no site named 'Gamma'"):
        run_survey(one_site, "Gamma", "2025-03-10", out_dir=tmp_path / "runs", **_rasters(files))
    assert not (tmp_path / "runs").exists()
    assert one_site.surveys("Beta") == []


def test_a_survey_outside_its_site_is_one_line_and_changes_nothing(
    one_site: Registry, tmp_path: Path
) -> None:
    elsewhere = SeasonSite("Beta", 510_000.0, 4_102_000.0, seed=7)  # 10 km east
    files = elsewhere.write_epoch(tmp_path / "e", [U1], "2025-03-10")
    with pytest.raises(RegistryInputError, match="lies outside site 'Beta'"):
        run_survey(one_site, "Beta", "2025-03-10", out_dir=tmp_path / "runs", **_rasters(files))
    assert not (tmp_path / "runs").exists()
    assert one_site.surveys("Beta") == []


def test_the_cli_refuses_an_unknown_site_in_one_line(
    one_site: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = BETA.write_epoch(tmp_path / "e", [U1], "2025-03-10")
    code = cli_run(
        [
            "run",
            "Gamma",
            "--date",
            "2025-03-10",
            "--ortho",
            str(files["ortho"]),
            "--dsm",
            str(files["dsm"]),
            "--db",
            str(tmp_path / "reg.db"),
            "--out",
            str(tmp_path / "runs"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "no site named 'Gamma'" in err[0]
    assert not (tmp_path / "runs").exists()


def test_an_orthophoto_without_its_dsm_is_refused_before_anything(
    one_site: Registry, tmp_path: Path
) -> None:
    files = BETA.write_epoch(tmp_path / "e", [U1], "2025-03-10")
    from survey.errors import DetectInputError

    with pytest.raises(DetectInputError, match="needs its DSM"):
        run_survey(one_site, "Beta", "2025-03-10", out_dir=tmp_path / "runs", ortho=files["ortho"])
    assert one_site.surveys("Beta") == []


def test_the_inputs_are_left_as_they_were(one_site: Registry, tmp_path: Path) -> None:
    files = BETA.write_epoch(tmp_path / "e", [U1], "2025-03-10")
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "e").iterdir()}
    run = run_survey(
        one_site, "Beta", "2025-03-10", out_dir=tmp_path / "runs", packages=False, **_rasters(files)
    )
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "e").iterdir()}
    assert after == before  # nothing written beside the inputs (no .aux.xml)
    assert [r.lead.lead_class for r in run.leads] == ["no_permit"]
    assert json.loads((run.out_dir / "run.json").read_text())["survey_id"] == run.survey_id


# ----------------------------------------------------------------------------- failed runs


def _damage_a_tile(path: Path) -> None:
    """Overwrite the compressed bytes of one tile in the middle of a GeoTIFF: the file still
    opens (its header is intact), reading its pixels fails."""
    import rasterio

    with rasterio.open(path) as ds:
        bh, bw = ds.block_shapes[0]
        rows, cols = -(-ds.height // bh), -(-ds.width // bw)
        key = f"BLOCK_OFFSET_{cols // 2}_{rows // 2}"
        offset = int(ds.get_tag_item(key, "TIFF", bidx=1))
        size = int(ds.get_tag_item(key.replace("OFFSET", "SIZE"), "TIFF", bidx=1))
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * size)


def _store_and_registry_state(reg: Registry, store: EvidenceStore) -> tuple[Any, ...]:
    return (
        reg.surveys("Beta"),
        reg.leads(),
        reg.progress("Beta"),
        sorted(store.state().cases),
        sorted(p.name for p in (store.root / "objects").rglob("*") if p.is_file()),
    )


@pytest.mark.usefixtures("postgres_admin")
def test_a_run_that_fails_after_registration_leaves_the_registry_as_it_was(
    db_url: str,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    """A DSM whose header reads but whose pixels do not: found only by detection, after the
    survey was registered. The survey is discarded, its folder removed, the ledger says so in
    one entry; a run with a good DSM then goes through."""
    store = EvidenceStore.open(tmp_path / "store", create=True)
    with Registry.open(db_url, user=USER) as reg:
        reg.set_evidence_store(tmp_path / "store")
        _register_sites(reg, tmp_path)
        files = BETA.write_epoch(tmp_path / "e", [U1], "2025-03-10")
        _damage_a_tile(files["dsm"])
        before = _store_and_registry_state(reg, store)
        n = len(list(store.entries()))
        with pytest.raises(Exception, match="dsm.tif") as failed:
            run_survey(reg, "Beta", "2025-03-10", out_dir=tmp_path / "runs", **_rasters(files))
        assert _store_and_registry_state(reg, store)[:3] == before[:3]
        assert not (tmp_path / "runs").exists()
        derived = [e for e in list(store.entries())[n:] if e.type == "derive"]
        assert [e["command"] for e in derived] == [
            "sitewatch registry survey-register",
            "sitewatch registry survey-discard",
        ]
        reason = derived[1]["parameters"]["reason"]
        assert reason.startswith(f"run failed: {type(failed.value).__name__}: ")
        assert "dsm.tif" in reason and derived[1]["case"] == derived[0]["case"]
        # the bureau flies again (or fixes the file): the run goes through
        good = BETA.write_epoch(tmp_path / "e2", [U1], "2025-03-10")
        run = run_survey(
            reg,
            "Beta",
            "2025-03-10",
            out_dir=tmp_path / "runs",
            review_map=False,
            packages=False,
            **_rasters(good),
        )
        assert [(r.lead_id, r.action, r.lead.lead_class) for r in run.leads] == [
            (1, "created", "no_permit")
        ]
        assert [s.survey_id for s in reg.surveys("Beta")] == [run.survey_id]
        assert [r.stage for r in reg.progress("Beta")] == ["setting_out"]
    assert store.verify().ok


def test_a_run_that_fails_at_its_last_step_leaves_the_registry_as_it_was(
    one_site: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The review map fails after detection, progress, evidence and the staged packages:
    nothing of the survey stays in the registry (no progress, no leads)."""
    import maps
    from maps.errors import MapError

    def full_disk(*args: Any, **kwargs: Any) -> Any:
        raise MapError("review.html: no space left on device")

    store = EvidenceStore.open(tmp_path / "store", create=True)
    one_site.set_evidence_store(tmp_path / "store")
    monkeypatch.setattr(maps, "render_review_map", full_disk)
    files = BETA.write_epoch(tmp_path / "e", [U1], "2025-03-10")
    with pytest.raises(MapError, match="no space left"):
        run_survey(one_site, "Beta", "2025-03-10", out_dir=tmp_path / "runs", **_rasters(files))
    assert (one_site.surveys("Beta"), one_site.leads(), one_site.progress("Beta")) == ([], [], [])
    assert not (tmp_path / "runs").exists()
    (discard,) = [e for e in store.entries() if e.get("command", "").endswith("survey-discard")]
    # the originals added before the failure stay in the store, named by the discard entry
    assert [r["role"] for r in discard["inputs"]] == ["evidence"] * 3
    stored = {p.name for p in (store.root / "objects").rglob("*") if p.is_file()}
    assert {r["sha256"] for r in discard["inputs"]} <= stored
    assert store.verify().ok


def _rasters(files: dict[str, Path]) -> dict[str, Any]:
    return {"ortho": files["ortho"], "dsm": files["dsm"], "dtm": files["dtm"]}


# ----------------------------------------------------------------------------- stages, QC


@pytest.mark.parametrize(
    ("measured", "previous", "expected"),
    [
        ({"height_m": 0.05, "built": 0.0, "dug": 0.0, "slab": 0.0}, None, ("setting_out", 0)),
        ({"height_m": 0.0, "built": 0.0, "dug": 0.9, "slab": 0.0}, None, ("foundation", 0)),
        ({"height_m": 0.6, "built": 0.0, "dug": 0.0, "slab": 0.95}, None, ("ground_level", 0)),
        ({"height_m": 3.4, "built": 0.9, "dug": 0.0, "slab": 1.0}, None, ("first_floor", 1)),
        ({"height_m": 9.4, "built": 0.9, "dug": 0.0, "slab": 1.0}, None, ("standard_floors", 3)),
        ({"height_m": 15.4, "built": 0.9, "dug": 0.0, "slab": 1.0}, None, ("top_floor", 5)),
        ({"height_m": 18.4, "built": 0.9, "dug": 0.0, "slab": 1.0}, None, ("top_floor", 6)),
        ({"height_m": 15.4, "built": 0.9, "dug": 0.0, "slab": 1.0}, "top_floor", ("facade", 5)),
        ({"height_m": 15.4, "built": 0.9, "dug": 0.0, "slab": 1.0}, "facade", ("facade", 5)),
    ],
)
def test_the_stage_of_a_five_floor_permit(
    measured: dict[str, float], previous: str | None, expected: tuple[str, int]
) -> None:
    before = (
        None
        if previous is None
        else ProjectProgress("P", "2025-01-01", previous, 15.4, 5, 5, None, 1.0, 0.0, 0.0)
    )
    assert (
        classify_stage(
            height_m=measured["height_m"],
            built_fraction=measured["built"],
            dug_fraction=measured["dug"],
            slab_fraction=measured["slab"],
            permitted_floors=5,
            permitted_height_m=None,
            previous=before,
        )
        == expected
    )


def test_a_height_only_permit_reaches_its_top_within_a_storey() -> None:
    kw: dict[str, Any] = {"built_fraction": 1.0, "dug_fraction": 0.0, "slab_fraction": 1.0}
    assert classify_stage(height_m=12.4, permitted_floors=None, permitted_height_m=15.0, **kw) == (
        "top_floor",
        4,
    )
    assert classify_stage(height_m=9.4, permitted_floors=None, permitted_height_m=15.0, **kw) == (
        "standard_floors",
        3,
    )


@pytest.mark.parametrize(
    ("report", "verdict"),
    [
        ({"images": 10, "images_placed": 10, "coverage": {"site": {"covered_pct": 99.0}}}, "pass"),
        ({"images": 10, "images_placed": 9, "coverage": {"site": {"covered_pct": 99.0}}}, "warn"),
        ({"images": 10, "images_placed": 0}, "fail"),
        ({"images": 10, "images_placed": 10, "coverage": {"site": {"covered_pct": 30.0}}}, "fail"),
        ({"images": 10, "images_placed": 10, "coverage_holes": [{"area_m2": 40}]}, "warn"),
    ],
)
def test_the_qc_verdict_of_an_ingest_report(report: dict[str, Any], verdict: str) -> None:
    assert qc_verdict(report) == verdict


# ------------------------------------------- progress, co-registered products, dask scheduler

#: Beta's second survey flown with a georeferencing error of (1.3 m east, 0.7 m south): the
#: whole epoch (ground, structures, DSM) is (6.5, 3.5) px off the first survey's grid.
BETA_OFF = SeasonSite("Beta", BETA.east0 + 1.3, BETA.north0 - 0.7, seed=BETA.seed)


@dataclass
class DetectRun:
    """B1 checked and approved, then B2 (flown off by :data:`BETA_OFF`) detected against it."""

    registry: Registry
    root: Path
    run: SurveyRun
    steps: list[tuple[str, float]]


def _first_survey_then(
    root: Path, **run_b2: Any
) -> tuple[Registry, dict[str, Path], dict[str, Any]]:
    """A registry with Beta, B1 run and approved, and B2's rasters (with ``run_b2``)."""
    EvidenceStore.open(root / "store", create=True)
    reg = Registry.open(root / "reg.db", user=USER)
    reg.set_evidence_store(root / "store")
    _register_sites(reg, root)
    b1 = BETA.write_epoch(root / "e1", [U1], "2025-03-10")
    first = run_survey(
        reg, "Beta", "2025-03-10", out_dir=root / "runs", review_map=False, packages=False,
        **_rasters(b1),
    )  # fmt: skip
    reg.approve_survey(first.survey_id, user=USER)
    b2 = BETA_OFF.write_epoch(root / "e2", [P_B1_WIDE, U1], "2025-05-10")
    return reg, b2, {"out_dir": root / "runs", **_rasters(b2), **run_b2}


@pytest.fixture(scope="module")
def detect_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DetectRun]:
    """B2 with every step: evidence store, review map, one package (about 5 s)."""
    root = tmp_path_factory.mktemp("detect-run")
    steps: list[tuple[str, float]] = []
    reg, _files, kw = _first_survey_then(root)
    run = run_survey(reg, "Beta", "2025-05-10", progress=lambda m, f: steps.append((m, f)), **kw)
    yield DetectRun(reg, root, run, steps)
    reg.close()


def test_a_run_reports_its_steps_in_order(detect_run: DetectRun) -> None:
    assert detect_run.steps == [
        ("registering the survey", 0.0),
        ("detecting changes since survey 1", 0.15),
        ("measuring the construction progress of the permits", 0.6),
        ("adding the evidence to the store", 0.65),
        ("drawing the review map", 0.7),
        ("building the evidence package of lead 1 of 1", 0.75),
        ("recording 1 lead(s) in the registry", 0.95),
        ("done", 1.0),
    ]


def test_a_run_that_fails_never_reports_done(one_site: Registry, tmp_path: Path) -> None:
    from survey.errors import SurveyError

    steps: list[tuple[str, float]] = []
    files = BETA.write_epoch(tmp_path / "e", [U1], "2025-03-10")
    _damage_a_tile(files["dsm"])
    with pytest.raises(SurveyError, match="dsm.tif"):
        run_survey(
            one_site, "Beta", "2025-03-10", out_dir=tmp_path / "runs",
            progress=lambda m, f: steps.append((m, f)), **_rasters(files),
        )  # fmt: skip
    assert steps == [
        ("registering the survey", 0.0),
        ("checking the survey against the permit atlas", 0.15),
    ]


def test_a_detection_records_the_co_registered_after_epoch(detect_run: DetectRun) -> None:
    """``after_registered*`` are products of the run and of the survey in the registry, on
    the first survey's grid, with the planted offset taken out."""
    import rasterio

    run = detect_run.run
    assert [(r.lead_id, r.action, r.lead.lead_class) for r in run.leads] == [
        (2, "created", "outside_footprint")
    ]
    assert run.leads[0].lead.area_m2 == pytest.approx(40.0, rel=0.05)  # 4 m x 10 m beyond
    survey = detect_run.registry.survey(run.survey_id)
    for key, name in (("after_registered", "after_registered.tif"),
                      ("after_registered_dsm", "after_registered_dsm.tif")):  # fmt: skip
        assert run.products[key] == run.out_dir / "detect" / name
        assert survey.products[key] == str(run.products[key])
    first = detect_run.registry.survey(1)
    assert first.ortho is not None
    with rasterio.open(first.ortho) as ref, rasterio.open(run.products["after_registered"]) as reg:
        assert (reg.crs, reg.transform, reg.shape) == (ref.crs, ref.transform, ref.shape)
    report = json.loads(Path(run.products["detect_provenance"]).read_text())["coregistration"]
    assert (report["shift_x_px"], report["shift_y_px"]) == (
        pytest.approx(-6.5, abs=0.1),
        pytest.approx(-3.5, abs=0.1),
    )
    # the package sitewatch run built shows the co-registered epoch too
    manifest = json.loads((run.products["package_2"] / "manifest.json").read_text())
    assert set(manifest["derived"]) == {"after_registered", "after_registered_dsm"}


def _chip_pixels(path: Path) -> Any:
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_the_platform_draws_and_packages_a_lead_from_the_co_registered_epoch(
    detect_run: DetectRun, tmp_path: Path
) -> None:
    """The after chip of the lead page is in the before frame: away from the new building it
    matches the before chip, where the after orthophoto as flown is 1.3 m off; a package
    built on the platform carries the co-registered epoch."""
    import numpy as np

    from maps import verify_evidence_package
    from survey.rasters import sha256_file
    from survey.web.packages import _render_chip, build_package, lead_chip

    reg, run = detect_run.registry, detect_run.run
    lead = reg.lead(2)
    after = lead_chip(reg, lead, "after", tmp_path / "web")
    before = lead_chip(reg, lead, "before", tmp_path / "web")
    assert after is not None and before is not None
    raw = tmp_path / "raw-after.png"
    _render_chip(Path(str(reg.survey(run.survey_id).ortho)), after.bounds, raw)
    b, a, r = _chip_pixels(before.path), _chip_pixels(after.path), _chip_pixels(raw)
    registered = float(np.median(np.abs(a - b)))
    as_flown = float(np.median(np.abs(r - b)))
    assert registered <= 2.0 < 6.0 <= as_flown, (registered, as_flown)
    # a package built by an analyst on the platform
    folder = build_package(reg, 2, tmp_path / "web", analyst="an")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {k: v["sha256"] for k, v in manifest["derived"].items()} == {
        k: sha256_file(run.products[k]) for k in ("after_registered", "after_registered_dsm")
    }
    assert verify_evidence_package(folder) == []


def test_a_detection_on_a_dask_cluster_finds_the_same_leads(
    detect_run: DetectRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sitewatch run --scheduler ADDRESS`` (an in-process LocalCluster): the cluster runs
    the detection's chunks, and the leads are those of the run in this process."""
    distributed = pytest.importorskip("distributed")
    reg, _files, kw = _first_survey_then(tmp_path)
    url = reg.url.render_as_string(hide_password=False)
    reg.close()
    args = ["run", "Beta", "--date", "2025-05-10", "--ortho", str(kw["ortho"]), "--dsm",
            str(kw["dsm"]), "--dtm", str(kw["dtm"]), "--db", url, "--out", str(kw["out_dir"]),
            "--no-map", "--no-packages", "--json"]  # fmt: skip
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        capsys.readouterr()
        assert cli_run([*args, "--scheduler", cluster.scheduler_address]) == 0
        out = json.loads(capsys.readouterr().out)
        ran = cluster.scheduler.transition_counter
    assert ran > 0  # the cluster ran the detection's tasks
    assert out["leads"] == [r.to_dict() for r in detect_run.run.leads]
    assert out["products"]["after_registered"].endswith("after_registered.tif")
