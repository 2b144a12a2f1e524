"""The evidence store wired into the commands (:mod:`survey.evidence.wiring`).

The whole chain with known answers: a flight's photos (with drone and camera serials) and log
→ ``ingest --store`` → the before epoch added as originals → ``detect --store
--derived-from after=INGEST`` → ``package --store``; every lead traces back to those exact
photos and that log, the package's ledger excerpt proves itself against the signed head it
carries (inclusion proofs, ``openssl``), and ``sitewatch evidence verify`` passes. Then the
commands' refusals: a store that cannot be written is one line and nothing is written.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from change_detection.leads import leads_from_feature_collection
from maps.package import verify_evidence_package
from survey.cli import EXIT_ERROR, EXIT_USAGE, run
from survey.errors import EvidenceInputError, InputFileError, NotAStoreError, StoreReadOnlyError
from survey.evidence import EvidenceStore, leaf_hash, verify_inclusion
from survey.evidence.wiring import (
    STATEMENT_COMMAND,
    CommandStore,
    open_command_store,
    record_derived_from,
    resolve_derived_from,
)
from survey.synth import SynthSite
from tests.survey.ingest.test_cli_ingest import (
    CAMERA_SERIAL,
    DRONE_SERIAL,
    write_flight_with_serials,
)

CASE = "2024-017"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ok(args: list[str]) -> None:
    code = run(args)
    assert code == 0, args


@pytest.fixture(scope="module")
def chain(synth_site: SynthSite, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """photos + log → ingest → before epoch added → detect (after derived from the ingest) →
    package, all recorded in one store."""
    root = tmp_path_factory.mktemp("chain")
    store = root / "store"
    flight = write_flight_with_serials(root / "card")
    _ok(
        [
            "ingest",
            "--log",
            str(flight["log"]),
            "--images",
            str(flight["images"]),
            "--camera",
            "phantom4pro",
            "--out",
            str(root / "ingest"),
            "--store",
            str(store),
            "--case",
            CASE,
            "--operator",
            "op7",
        ]
    )
    site = synth_site
    _ok(["evidence", "add", "--store", str(store), "--case", CASE, str(site.before_ortho)])
    _ok(["evidence", "add", "--store", str(store), "--case", CASE, str(site.before_dsm)])
    detect = root / "detect"
    epochs = ["--before-ortho", str(site.before_ortho), "--before-dsm", str(site.before_dsm)]
    epochs += ["--after-ortho", str(site.after_ortho), "--after-dsm", str(site.after_dsm)]
    _ok(
        [
            "detect",
            *epochs,
            "--permits",
            str(site.permits),
            "--out",
            str(detect),
            "--store",
            str(store),
            "--case",
            CASE,
            "--operator",
            "an1",
            "--derived-from",
            f"after={root / 'ingest'}",
        ]
    )
    leads = leads_from_feature_collection(json.loads((detect / "leads.geojson").read_text()))
    lead = leads[0]
    pkg = root / "pkg"
    _ok(
        [
            "package",
            "--leads",
            str(detect / "leads.geojson"),
            "--lead",
            lead.lead_id,
            *epochs,
            "--after-registered",
            str(detect / "after_registered.tif"),
            "--after-registered-dsm",
            str(detect / "after_registered_dsm.tif"),
            "--permits",
            str(site.permits),
            "--store",
            str(store),
            "--case",
            CASE,
            "--pilot",
            "op7",
            "--analyst",
            "an1",
            "--out",
            str(pkg),
        ]
    )
    originals = [flight["log"], *sorted(flight["images"].iterdir())]
    return {
        "root": root,
        "store": store,
        "detect": detect,
        "pkg": pkg,
        "lead": lead,
        "log": flight["log"],
        "photos": sorted(flight["images"].iterdir()),
        "originals": {_sha(p): p for p in originals},
    }


def test_every_lead_traces_back_to_the_photos_and_the_log(chain: dict[str, Any]) -> None:
    s = EvidenceStore.open(chain["store"], read_only=True)
    prov = json.loads((chain["detect"] / "provenance.json").read_text())
    for traced_file in (chain["detect"] / "leads.geojson", chain["pkg"] / "lead.geojson"):
        trace = s.trace(_sha(traced_file))
        added = {e["sha256"]: e for e in trace if e.type == "add"}
        # every photo and the log, exactly, with the serials from the photos' XMP
        assert set(chain["originals"]) <= set(added)
        for sha, path in chain["originals"].items():
            assert added[sha]["source"] == str(path.resolve())
        photos = chain["photos"]
        assert photos and len(photos) == len(chain["originals"]) - 1  # all but the log
        for path in photos:
            device = added[_sha(path)]["device"]
            assert (device["kind"], device["drone_serial"], device["camera_serial"]) == (
                "photo",
                DRONE_SERIAL,
                CAMERA_SERIAL,
            )
        assert added[_sha(chain["log"])]["device"]["kind"] == "flight log"
        # and the before epoch, added as originals
        assert prov["inputs"]["before_ortho"]["sha256"] in added
        assert prov["inputs"]["before_dsm"]["sha256"] in added
        commands = [e["command"] for e in trace if e.type == "derive"]
        assert {"sitewatch ingest", STATEMENT_COMMAND, "sitewatch detect"} <= set(commands)
    (statement,) = [
        e for e in s.entries() if e.type == "derive" and e["command"] == STATEMENT_COMMAND
    ]
    # the statement: after rasters (as detect read them) from the photos and geo.txt
    assert {o["role"]: o["sha256"] for o in statement["outputs"]} == {
        r: prov["inputs"][r]["sha256"] for r in ("after_ortho", "after_dsm")
    }
    report = json.loads((chain["root"] / "ingest" / "report.json").read_text())
    assert sorted((i["role"], i["sha256"]) for i in statement["inputs"]) == sorted(
        [("geo.txt", report["outputs"]["geo.txt"]["sha256"])]
        + [("photos", _sha(p)) for p in chain["photos"]]
    )
    assert statement["parameters"]["epoch"] == "after" and statement["operator"] == "an1"


def test_the_package_ledger_excerpt_proves_itself_against_its_signed_head(
    chain: dict[str, Any],
) -> None:
    pkg = chain["pkg"]
    head = json.loads((pkg / "ledger_head.json").read_text())
    root_hash = bytes.fromhex(head["root_hash"])
    manifest = json.loads((pkg / "manifest.json").read_text())
    lines = (pkg / "ledger_excerpt.jsonl").read_bytes().splitlines()
    rows = [r.split("\t") for r in (pkg / "ledger_proofs.tsv").read_text().splitlines()]
    assert lines and len(rows) == len(lines) == len(manifest["ledger_excerpt"])
    for line, (seq, size, proof_hex), e in zip(
        lines, rows, manifest["ledger_excerpt"], strict=True
    ):
        # the exact ledger line: its SHA-256 is the entry's hash, it parses to the entry
        assert hashlib.sha256(line).hexdigest() == e["hash"] and json.loads(line) == e["entry"]
        assert int(seq) == e["seq"] and int(size) == e["tree_size"] == head["tree_size"]
        assert e["root_hash"] == head["root_hash"]
        proof = [bytes.fromhex(h) for h in proof_hex.split()]
        assert verify_inclusion(e["seq"], head["tree_size"], leaf_hash(line), proof, root_hash)
    excerpt = [json.loads(line) for line in lines]
    # the excerpt leads back to every photo and the log
    added = {e["sha256"] for e in excerpt if e["type"] == "add"}
    assert set(chain["originals"]) <= added
    # the head is the station's (openssl, as the README says) and today's ledger extends it
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is missing: the package README tells users to run it")
    proc = subprocess.run(
        [
            *(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", "station_public_key.pem"),
            *("-rawin", "-in", "ledger_head.msg", "-sigfile", "ledger_head.sig"),
        ],
        cwd=pkg,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and "Signature Verified Successfully" in proc.stdout, proc
    assert base64.b64decode(head["signature"]) == (pkg / "ledger_head.sig").read_bytes()
    s = EvidenceStore.open(chain["store"], read_only=True)
    assert s.verify_head(head)
    manifest = json.loads((pkg / "manifest.json").read_text())
    assert manifest["ledger_head"]["root_hash"] == head["root_hash"]
    assert verify_evidence_package(pkg) == []


def _sh(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], cwd=cwd, capture_output=True, text=True)


def test_the_package_ledger_excerpt_is_checked_with_sh_and_coreutils(
    chain: dict[str, Any], tmp_path: Path
) -> None:
    """What README.txt tells a court's expert to run: verify_ledger.sh, and by hand an
    entry's hash and leaf with sha256sum; a changed byte in a line fails and is named."""
    pkg = chain["pkg"]
    readme = (pkg / "README.txt").read_text()
    assert "sh verify_ledger.sh" in readme
    n_lines = len((pkg / "ledger_excerpt.jsonl").read_bytes().splitlines())
    ok = _sh("sh verify_ledger.sh", pkg)
    assert ok.returncode == 0, ok
    assert ok.stdout.rstrip().splitlines()[-1] == "ALL CHECKS PASSED"
    assert "Signature Verified Successfully" in ok.stdout
    assert ok.stdout.count(": included (SHA-256 ") == n_lines
    # the README's commands, as printed, for line 2
    manifest = json.loads((pkg / "manifest.json").read_text())
    e = manifest["ledger_excerpt"][1]
    hash_cmd = "sed -n Np ledger_excerpt.jsonl | tr -d '\\n' | sha256sum"
    leaf_cmd = "(printf '\\000'; sed -n Np ledger_excerpt.jsonl | tr -d '\\n') | sha256sum"
    for cmd, want in ((hash_cmd, e["hash"]), (leaf_cmd, e["leaf_hash"])):
        assert cmd in readme
        got = _sh(cmd.replace("Np", "2p"), pkg)
        assert got.stdout.split()[0] == want, (cmd, got)
    # one byte changed in line 3 (a copy of the package): the script fails and names it
    bad = tmp_path / "pkg"  # the script and the files it reads, copied
    bad.mkdir()
    for f in [*pkg.glob("ledger_*"), pkg / "verify_ledger.sh", pkg / "station_public_key.pem"]:
        shutil.copyfile(f, bad / f.name)
    path = bad / "ledger_excerpt.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"seq":', b'"seq": ', 1)  # same JSON, other bytes
    path.write_bytes(b"".join(lines))
    failed = _sh("sh verify_ledger.sh", bad)
    seq = manifest["ledger_excerpt"][2]["seq"]
    assert failed.returncode == 1 and "SOME CHECKS FAILED" in failed.stdout, failed
    assert f"entry {seq}: NOT in the signed tree" in failed.stdout
    assert failed.stdout.count(": included (SHA-256 ") == n_lines - 1


def test_the_package_is_recorded_and_the_store_verifies(
    chain: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    s = EvidenceStore.open(chain["store"], read_only=True)
    (entry,) = [
        e for e in s.entries() if e.type == "derive" and e["command"] == "sitewatch package"
    ]
    pkg = chain["pkg"]
    assert {o["role"]: o["sha256"] for o in entry["outputs"]} == {
        name: _sha(pkg / name)
        for name in ("manifest.json", "manifest.sha256", "report.pdf", "lead.geojson")
    }
    inputs = {i["role"]: i["sha256"] for i in entry["inputs"]}
    assert inputs["leads"] == _sha(chain["detect"] / "leads.geojson")
    assert entry["operator"] == "an1" and entry["case"] == CASE  # --analyst by default
    # the package's files lead back to the photos too
    added = {e["sha256"] for e in s.trace(_sha(pkg / "manifest.sha256")) if e.type == "add"}
    assert set(chain["originals"]) <= added
    assert run(["evidence", "verify", str(chain["store"])]) == 0
    assert "ok: " in capsys.readouterr().out


def test_map_store_records_the_pages(
    chain: dict[str, Any], synth_site: SynthSite, tmp_path: Path
) -> None:
    page = tmp_path / "review" / "review.html"
    detect = chain["detect"]
    _ok(
        [
            "map",
            "--leads",
            str(detect / "leads.geojson"),
            "--before-ortho",
            str(synth_site.before_ortho),
            "--after-ortho",
            str(synth_site.after_ortho),
            "--after-registered",
            str(detect / "after_registered.tif"),
            "--store",
            str(chain["store"]),
            "--out",
            str(page),
        ]
    )
    s = EvidenceStore.open(chain["store"], read_only=True)
    entry = [e for e in s.entries() if e.type == "derive" and e["command"] == "sitewatch map"][-1]
    assert {o["role"]: o["sha256"] for o in entry["outputs"]} == {
        p.name: _sha(p) for p in sorted(page.parent.glob("*.html"))
    }
    assert {i["role"]: i["sha256"] for i in entry["inputs"]} == {
        "leads": _sha(detect / "leads.geojson"),
        "before_ortho": _sha(synth_site.before_ortho),
        "after_ortho": _sha(synth_site.after_ortho),
        "after_registered": _sha(detect / "after_registered.tif"),
    }
    added = {e["sha256"] for e in s.trace(_sha(page)) if e.type == "add"}
    assert set(chain["originals"]) <= added


def test_coregister_store_records_inputs_outputs_and_the_model(
    synth_site: SynthSite, tmp_path: Path
) -> None:
    store = EvidenceStore.open(tmp_path / "store", create=True)
    out, report = tmp_path / "aligned.tif", tmp_path / "coreg.json"
    args = ["coregister", "--reference", str(synth_site.before_ortho)]
    args += ["--target", str(synth_site.after_ortho), "--out", str(out), "--report", str(report)]
    _ok([*args, "--store", str(store.root), "--operator", "an1"])
    (entry,) = [e for e in store.entries() if e.type == "derive"]
    assert entry["command"] == "sitewatch coregister" and entry["case"] is None
    assert {i["role"]: i["sha256"] for i in entry["inputs"]} == {
        "reference": _sha(synth_site.before_ortho),
        "target": _sha(synth_site.after_ortho),
    }
    residuals = report.with_suffix(".residuals.geojson")
    assert {o["role"]: o["sha256"] for o in entry["outputs"]} == {
        "aligned": _sha(out),
        "report": _sha(report),
        "residuals": _sha(residuals),
    }
    found = json.loads(report.read_text())
    assert entry["parameters"]["result"]["model"] == found["model"]
    assert entry["parameters"]["result"]["shift_x_px"] == found["shift_x_px"]
    assert entry["parameters"]["coregistration"]["window_px"] == 128


# --- --derived-from values -----------------------------------------------------------------------


def test_derived_from_names_an_ingest_a_hash_a_file_or_a_folder(tmp_path: Path) -> None:
    photos = {"DJI_0001.JPG": "1" * 64, "DJI_0002.JPG": "2" * 64}
    ingest = tmp_path / "ingest"
    ingest.mkdir()
    (ingest / "report.json").write_text(
        json.dumps(
            {
                "command": "ingest",
                "inputs": {"images": {"sha256": photos}},
                "outputs": {"geo.txt": {"sha256": "3" * 64}},
            }
        )
    )
    card = tmp_path / "card"
    (card / "sub").mkdir(parents=True)
    (card / "a.jpg").write_bytes(b"a")
    (card / "sub" / "b.jpg").write_bytes(b"b")
    got = resolve_derived_from(
        [
            f"after={ingest}",
            f"before={ingest / 'report.json'}",
            "before=" + "AB" * 32,
            f"after={card / 'a.jpg'}",
            f"after={card}",
        ],
        epochs=("before", "after"),
    )
    assert [(d.epoch, d.kind) for d in got] == [
        ("after", "ingest"),
        ("before", "ingest"),
        ("before", "sha256"),
        ("after", "file"),
        ("after", "folder"),
    ]
    assert got[0].inputs == {"photos": ["1" * 64, "2" * 64], "geo.txt": ["3" * 64]}
    assert got[1].inputs == got[0].inputs
    assert got[2].inputs == {"original": ["ab" * 32]}
    assert got[3].inputs == {"file": [hashlib.sha256(b"a").hexdigest()]}
    assert got[4].inputs == {"files": [hashlib.sha256(x).hexdigest() for x in (b"a", b"b")]}
    assert got[4].source == f"after={card}"
    # one survey: no epoch needed
    (one,) = resolve_derived_from([str(card / "a.jpg")], epochs=("survey",))
    assert (one.epoch, one.kind) == ("survey", "file")


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        ("{card}", EvidenceInputError, "say which epoch the rasters are of: before="),
        ("survey={card}", EvidenceInputError, "this command has no survey epoch"),
        ("after=", EvidenceInputError, "no source after '='"),
        ("after={missing}", InputFileError, "is no file or folder and not a SHA-256"),
        ("after={empty}", EvidenceInputError, "holds no file"),
        ("after={logonly}", EvidenceInputError, "read no photos"),
    ],
)
def test_bad_derived_from_values_are_one_line(
    tmp_path: Path, value: str, error: type[Exception], text: str
) -> None:
    (tmp_path / "card").mkdir()
    (tmp_path / "card" / "x").write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "logonly").mkdir()
    (tmp_path / "logonly" / "report.json").write_text(
        json.dumps({"command": "ingest", "inputs": {"log": {}}, "outputs": {}})
    )
    given = value.format(
        card=tmp_path / "card",
        missing=tmp_path / "missing",
        empty=tmp_path / "empty",
        logonly=tmp_path / "logonly",
    )
    with pytest.raises(error) as info:
        resolve_derived_from([given], epochs=("before", "after"))
    message = str(info.value)
    assert text in message and given in message and "\n" not in message


def test_a_statement_records_the_rasters_with_the_hashes_the_command_read(tmp_path: Path) -> None:
    """The epoch's rasters are recorded with the SHA-256 the command computed (they may be
    many GB), not read again: a raster whose bytes differ from the hash given is recorded
    with the hash given; one without a hash is hashed."""
    cs = open_command_store(tmp_path / "store", case=CASE, create=True)
    ortho, dsm = tmp_path / "ortho.tif", tmp_path / "dsm.tif"
    ortho.write_bytes(b"ortho")
    dsm.write_bytes(b"dsm")
    (statement,) = resolve_derived_from(["ab" * 32], epochs=("survey",))
    read = "12" * 32
    entry = record_derived_from(
        cs, statement, {"ortho": ortho, "dsm": dsm}, expected={"ortho": read}
    )
    assert [(o["role"], o["sha256"], o["size"]) for o in entry["outputs"]] == [
        ("ortho", read, 5),
        ("dsm", _sha(dsm), 3),
    ]
    assert entry["inputs"] == [{"role": "original", "sha256": "ab" * 32}]


# --- a store that cannot be written: one line, nothing written -----------------------------------


def test_a_read_only_or_unwritable_store_is_refused_before_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = EvidenceStore.open(tmp_path / "store", create=True).root
    ledger = (root / "ledger.jsonl").read_bytes()
    with pytest.raises(StoreReadOnlyError, match="opened read-only") as info:
        CommandStore(EvidenceStore.open(root, read_only=True), CASE)
    assert str(root) in str(info.value) and "\n" not in str(info.value)
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == root / "objects" else real_access(p, mode)
    )
    with pytest.raises(StoreReadOnlyError, match="objects/ is not writable by this user"):
        open_command_store(root, case=CASE)
    assert (root / "ledger.jsonl").read_bytes() == ledger


def test_missing_stores_and_bad_case_ids_create_nothing(tmp_path: Path) -> None:
    with pytest.raises(NotAStoreError, match="no such folder, not an evidence store") as info:
        open_command_store(tmp_path / "nostore")
    # a command that records derivations cannot start a store: the hint says which to give
    assert "give the store they were recorded in" in str(info.value)
    assert "add files with --store" not in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotAStoreError, match="an empty folder, not an evidence store") as info:
        open_command_store(tmp_path / "empty")
    assert "sitewatch ingest --store" in str(info.value) and "\n" not in str(info.value)
    assert list((tmp_path / "empty").iterdir()) == []
    (tmp_path / "empty").rmdir()
    from survey.errors import CaseIdError

    with pytest.raises(CaseIdError, match="has '..'"):
        open_command_store(tmp_path / "new", case="a..b", create=True)
    assert sorted(tmp_path.iterdir()) == []


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("WARNING ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_commands_refuse_an_unusable_store_and_write_nothing(
    chain: dict[str, Any],
    synth_site: SynthSite,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    leads = chain["detect"] / "leads.geojson"
    epochs = ["--before-ortho", str(synth_site.before_ortho)]
    epochs += ["--after-ortho", str(synth_site.after_ortho)]
    other = EvidenceStore.open(tmp_path / "other", create=True).root  # knows none of it
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    cases = [
        (["map", "--leads", str(leads), *epochs, "--out", str(out / "r.html")], "--store", None),
        (["package", "--leads", str(leads), "--all", *epochs, "--out", str(out)], "--store", None),
        (
            ["package", "--leads", str(leads), "--all", *epochs, "--out", str(out)],
            "--store",
            other,
        ),
        (
            ["detect", *epochs, "--out", str(out), "--derived-from", str(chain["root"])],
            "--store",
            chain["store"],
        ),
        (["map", "--leads", str(leads), *epochs, "--out", str(out / "r.html")], "--store", empty),
    ]
    texts = [
        "not an evidence store",
        "not an evidence store",
        "its ledger names neither the leads file nor any input of the lead",
        "say which epoch the rasters are of",
        "an empty folder, not an evidence store; this command records what it made from files",
    ]
    other_ledger = (other / "ledger.jsonl").read_bytes()
    store_ledger = (chain["store"] / "ledger.jsonl").read_bytes()
    for (args, flag, store), text in zip(cases, texts, strict=True):
        target = store if store is not None else synth_site.root  # a folder of other files
        assert run([*args, flag, str(target)]) == EXIT_ERROR
        assert text in _one_error_line(capsys.readouterr().err)
        assert not out.exists()
    assert (other / "ledger.jsonl").read_bytes() == other_ledger
    assert (chain["store"] / "ledger.jsonl").read_bytes() == store_ledger
    assert list(empty.iterdir()) == []
    # store flags without --store are usage errors
    assert run(["map", "--leads", str(leads), *epochs, "--out", str(out / "r.html"),
                "--operator", "x"]) == EXIT_USAGE  # fmt: skip
    assert "--operator is recorded in an evidence store" in capsys.readouterr().err
    assert not out.exists()
