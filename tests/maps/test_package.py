"""Evidence packages: contents, manifests, and our verifier and `sha256sum -c` catching any
changed byte (coreutils' sha256sum is part of every Debian system: its absence fails, never
skips)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from maps.errors import PackageError
from maps.package import (
    MANIFEST_FORMAT,
    EvidencePackage,
    build_evidence_package,
    verify_evidence_package,
)
from tests.maps.scenes import Scene


@pytest.fixture(scope="module")
def package(scene: Scene, tmp_path_factory: pytest.TempPathFactory) -> EvidencePackage:
    return build_evidence_package(
        scene.leads[1],
        before_ortho=scene.before_ortho,
        after_ortho=scene.after_ortho,
        before_dsm=scene.before_dsm,
        after_dsm=scene.after_dsm,
        permits=scene.permits,
        out_dir=tmp_path_factory.mktemp("pkg") / "L-0002",
    )


def _verify(folder: Path) -> subprocess.CompletedProcess[str]:
    sha256sum = shutil.which("sha256sum")
    if sha256sum is None:
        pytest.fail("coreutils' sha256sum is missing: the package's README tells users to run it")
    return subprocess.run(
        [sha256sum, "-c", "--strict", "manifest.sha256"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )


def _verify_ledger(folder: Path) -> subprocess.CompletedProcess[str]:
    """``sh verify_ledger.sh`` run from another folder, as the README says it may be."""
    return subprocess.run(
        ["sh", str(folder / "verify_ledger.sh")],
        cwd=folder.parent,
        capture_output=True,
        text=True,
        check=False,
    )


def test_package_contents(package: EvidencePackage, scene: Scene) -> None:
    d = package.directory
    for name in (
        "lead.geojson",
        "before.png",
        "after.png",
        "profile.png",
        "permits.geojson",
        "map.html",
        "README.txt",
        "manifest.json",
        "manifest.sha256",
        "report.pdf",
    ):
        assert (d / name).is_file(), name
    assert package.report == d / "report.pdf"
    assert (d / "report.pdf").read_bytes().startswith(b"%PDF-")
    assert (d / "map_files" / "vendor" / "leaflet-1.9.4" / "LICENSE").is_file()
    umask = os.umask(0)
    os.umask(umask)
    for folder in (d, d / "map_files" / "tiles" / "after"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0700
    assert any((d / "map_files" / "tiles" / "after").rglob("*.png"))
    fc = json.loads((d / "lead.geojson").read_text())
    assert fc["features"][0]["properties"]["lead_id"] == "L-0002"
    permits = json.loads((d / "permits.geojson").read_text())
    ids = {f["properties"]["permit_id"] for f in permits["features"]}
    assert "<script>alert(1)</script>" in ids and "P-9" not in ids  # only the related permit
    assert "<script>alert(1)" not in (d / "map.html").read_text()


def test_manifest_lists_every_file_with_hash_and_size(package: EvidencePackage) -> None:
    d = package.directory
    m = json.loads(package.manifest.read_text())
    assert m["format"] == MANIFEST_FORMAT
    assert m["lead_id"] == "L-0002" and m["lead"]["id"] == "L-0002"
    assert m["ledger_excerpt"] is None and m["ledger_head"] is None
    assert (m["case_id"], m["pilot"], m["analyst"]) == (None, None, None)
    assert m["software"]["name"] == "sitewatch" and m["software"]["version"]
    assert m["created_utc"].endswith("+00:00")
    on_disk = {p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()}
    listed = {f["path"] for f in m["files"]}
    # the page prints manifest.json's hash, so the manifest lists every file but the page
    assert listed == on_disk - {"manifest.json", "manifest.sha256", "report.pdf"}
    assert m["report"]["file"] == "report.pdf" and m["report"]["listed_in"] == "manifest.sha256"
    for f in m["files"]:
        data = (d / f["path"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (f["bytes"], f["sha256"])
    assert verify_evidence_package(d) == []
    inputs = m["inputs"]
    for role in ("before_ortho", "after_ortho", "before_dsm", "after_dsm"):
        assert inputs[role]["matches"] is True
        assert inputs[role]["sha256"] == inputs[role]["sha256_now"]
    lines = package.checksums.read_text().splitlines()
    assert {ln.split("  ", 1)[1] for ln in lines} == on_disk - {"manifest.sha256"}
    assert all(len(ln.split("  ", 1)[0]) == 64 for ln in lines)


def test_sha256sum_and_our_verifier_catch_one_flipped_byte(
    package: EvidencePackage, tmp_path: Path
) -> None:
    ok = _verify(package.directory)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    d = package.directory
    tile = next((d / "map_files" / "tiles" / "before").rglob("*.png"))
    victims = [
        "before.png",
        "profile.png",
        "lead.geojson",
        "permits.geojson",
        "map.html",
        "README.txt",
        "manifest.json",
        "report.pdf",
        "map_files/vendor/leaflet-1.9.4/leaflet.js",
        "map_files/vendor/leaflet-1.9.4/leaflet.css",
        tile.relative_to(d).as_posix(),
    ]
    for rel in victims:
        copy = tmp_path / rel.replace("/", "_")
        shutil.copytree(d, copy)
        target = copy / rel
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
        res = _verify(copy)
        assert res.returncode != 0, rel
        assert f"{rel}: FAILED" in res.stdout, res.stdout
        problems = verify_evidence_package(copy)
        assert problems and problems[0].startswith(f"{rel}: modified (SHA-256 "), problems
    # a deleted file fails too, and an added one
    copy = tmp_path / "deleted"
    shutil.copytree(d, copy)
    (copy / "after.png").unlink()
    (copy / "extra.txt").write_text("planted")
    assert _verify(copy).returncode != 0
    assert verify_evidence_package(copy) == [
        "after.png: missing (listed in manifest.sha256)",
        "extra.txt: not listed in manifest.sha256",
        "after.png: missing (listed in manifest.json)",
    ]


def test_inputs_that_differ_from_the_lead_are_refused(scene: Scene, tmp_path: Path) -> None:
    wrong = replace(scene.leads[0], input_hashes={"after_ortho": "0" * 64})
    with pytest.raises(PackageError, match="differs from the after_ortho hash"):
        build_evidence_package(
            wrong,
            before_ortho=scene.before_ortho,
            after_ortho=scene.after_ortho,
            out_dir=tmp_path / "p",
        )
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("entry", "text"),
    [
        ({"seq": "3", "line": "{}"}, "ledger excerpt entry 1: .* has no integer seq"),
        ({"seq": 3, "line": '{"a":1}\n{"b":2}'}, "ledger excerpt entry 3: its line is not one"),
    ],
)
def test_a_malformed_ledger_excerpt_is_one_line_before_anything_is_written(
    scene: Scene, tmp_path: Path, entry: dict[str, object], text: str
) -> None:
    with pytest.raises(PackageError, match=text) as info:
        build_evidence_package(
            scene.leads[0],
            before_ortho=scene.before_ortho,
            after_ortho=scene.after_ortho,
            out_dir=tmp_path / "p",
            ledger_excerpt=[entry],
        )
    assert "ledger_excerpt()" in str(info.value) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_rgb_only_package_and_output_folder_rules(scene: Scene, tmp_path: Path) -> None:
    lead = scene.leads[0]
    out = tmp_path / "p"
    pkg = build_evidence_package(
        lead, before_ortho=scene.before_ortho, after_ortho=scene.after_ortho, out_dir=out
    )
    assert not (out / "profile.png").exists() and not (out / "permits.geojson").exists()
    assert pkg.lead_id == lead.lead_id
    # an earlier package is replaced; a folder with other content is refused
    build_evidence_package(
        lead, before_ortho=scene.before_ortho, after_ortho=scene.after_ortho, out_dir=out
    )
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.docx").write_text("mine")
    with pytest.raises(PackageError, match="not an evidence package"):
        build_evidence_package(
            lead, before_ortho=scene.before_ortho, after_ortho=scene.after_ortho, out_dir=other
        )
    assert (other / "thesis.docx").read_text() == "mine"
    assert not list(tmp_path.glob(".p.*"))


def test_a_package_from_an_evidence_store_proves_its_ledger_excerpt(
    scene: Scene, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The package carries the store's entries of the lead's inputs, each proven against the
    signed head it also carries (RFC 9162 inclusion, openssl for the signature)."""
    from survey.evidence import EvidenceStore, leaf_hash, verify_inclusion
    from survey.evidence.wiring import CommandStore, package_ledger

    store = EvidenceStore.open(tmp_path / "store", create=True)
    rasters = [scene.before_ortho, scene.after_ortho, scene.before_dsm, scene.after_dsm]
    items = store.add(rasters, case="C-1", operator="op7")
    lead = scene.leads[1]
    with caplog.at_level("WARNING", logger="survey.evidence.wiring"):
        excerpt, head = package_ledger(CommandStore(store, "C-1"), lead.input_hashes.values())
    # rasters added as originals: no photo or log behind them, and it is said in one line
    (said,) = [r.getMessage() for r in caplog.records if r.name == "survey.evidence.wiring"]
    assert "reaches no original photo or flight log" in said
    assert [e["seq"] for e in excerpt] == [i.seq for i in items]
    pkg = build_evidence_package(
        lead,
        before_ortho=scene.before_ortho,
        after_ortho=scene.after_ortho,
        before_dsm=scene.before_dsm,
        after_dsm=scene.after_dsm,
        out_dir=tmp_path / "pkg",
        ledger_excerpt=excerpt,
        signed_head=head,
    )
    d = pkg.directory
    raw_lines = (d / "ledger_excerpt.jsonl").read_bytes().split(b"\n")
    assert raw_lines.pop() == b""  # every line ends with a newline
    stored = json.loads((d / "ledger_head.json").read_text(encoding="utf-8"))
    root = bytes.fromhex(stored["root_hash"])
    manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    # the excerpt holds the exact ledger lines: each hashes to its entry's hash
    assert raw_lines == [e["line"].encode("utf-8") for e in excerpt]
    assert [json.loads(x)["sha256"] for x in raw_lines] == [i.sha256 for i in items]
    assert [hashlib.sha256(x).hexdigest() for x in raw_lines] == [e["hash"] for e in excerpt]
    assert manifest["ledger_excerpt"] == excerpt  # kept whole in the manifest
    rows = (d / "ledger_proofs.tsv").read_text(encoding="ascii").splitlines()
    assert len(rows) == len(raw_lines)
    for line, row in zip(raw_lines, rows, strict=True):
        seq, size, proof_hex = row.split("\t")
        assert (int(seq), int(size)) == (json.loads(line)["seq"], stored["tree_size"])
        proof = [bytes.fromhex(h) for h in proof_hex.split()]
        assert verify_inclusion(int(seq), int(size), leaf_hash(line), proof, root)
    # the package's own script says so with sh and coreutils, and names a changed line
    ok = _verify_ledger(d)
    assert ok.returncode == 0 and ok.stdout.rstrip().endswith("ALL CHECKS PASSED"), ok
    assert ok.stdout.count(": included (SHA-256 ") == len(items)
    assert store.verify_head(stored)
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is missing: the package README tells users to run it")
    proc = subprocess.run(
        [
            *(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", "station_public_key.pem"),
            *("-rawin", "-in", "ledger_head.msg", "-sigfile", "ledger_head.sig"),
        ],
        cwd=d,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Signature Verified Successfully" in proc.stdout, proc
    assert _verify(d).returncode == 0
    assert verify_evidence_package(d) == []
    # one byte of the second excerpt line changed (a digit of the file's SHA-256): the script
    # fails and names that entry
    bad = tmp_path / "bad"  # the script and the files it reads, copied
    bad.mkdir()
    for f in [*d.glob("ledger_*"), d / "verify_ledger.sh", d / "station_public_key.pem"]:
        shutil.copyfile(f, bad / f.name)
    path = bad / "ledger_excerpt.jsonl"
    data = bytearray(path.read_bytes())
    at = data.index(items[1].sha256.encode()) + 10
    data[at] = ord("0") if data[at] != ord("0") else ord("1")
    path.write_bytes(bytes(data))
    failed = _verify_ledger(bad)
    assert failed.returncode == 1 and "SOME CHECKS FAILED" in failed.stdout, failed
    assert f"entry {items[1].seq}: NOT in the signed tree" in failed.stdout
    assert failed.stdout.count(": included (SHA-256 ") == len(items) - 1
