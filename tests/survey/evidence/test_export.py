"""Archive sets for write-once media, checked with the real ``sha256sum``, ``openssl`` and
``sh`` — the tools the README tells a court clerk to use."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from survey.errors import EvidenceInputError, EvidenceLookupError
from survey.evidence import EvidenceStore
from tests.survey.evidence._helpers import Clock, sha256_of, write_bytes, write_photo

TOOLS = ("sha256sum", "openssl", "sh", "basenc", "paste", "sed", "tr", "cut")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    for tool in TOOLS:  # part of the test set-up (Debian base, coreutils): never skipped
        assert shutil.which(tool), f"{tool} is missing: install it (see Makefile's test set-up)"
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def case_store(tmp_path: Path, clock: Clock) -> tuple[EvidenceStore, dict[str, Path]]:
    store = EvidenceStore.open(tmp_path / "store", create=True, clock=clock)
    src = tmp_path / "card"
    files = {
        "photo": write_photo(src / "DJI_0001.JPG", body_serial="C1", drone_serial="D1"),
        "photo2": write_photo(src / "DJI_0002.JPG", seed=2),
        "log": write_bytes(src / "flight 1.bin", 3000, seed=3),
        "other": write_bytes(src / "other.bin", 100, seed=4),
    }
    store.add(
        [files["photo"], files["photo2"], files["log"]],
        case="E-1",
        risk="high",
        operator="op1",
        source_root=src,
    )
    store.add([files["other"]], case="Z-9", risk="low")
    report = write_bytes(tmp_path / "report.pdf", 700, seed=5)
    store.record_derivation(
        command="sitewatch package",
        inputs={"photos": [files["photo"], files["photo2"]]},
        outputs={"report": report},
        parameters={"lead": "L-1"},
        case="E-1",
        store_outputs=True,
    )
    store.set_case("E-1", hold=True, reason="court order 2025-12")
    files["report"] = report
    return store, files


def test_archive_set_checks_with_sha256sum_openssl_and_sh(
    case_store: tuple[EvidenceStore, dict[str, Path]], tmp_path: Path
) -> None:
    store, files = case_store
    out = store.export_case("E-1", tmp_path / "disc")
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    stored = sorted(n for n in names if n.startswith("files/"))
    assert sorted(n.split("_", 1)[1] for n in stored) == sorted(
        ["DJI_0001.JPG", "DJI_0002.JPG", "flight_1.bin", "report.pdf"]
    )
    for key in ("photo", "photo2", "log", "report"):
        sha = sha256_of(files[key])
        (copy,) = [out / n for n in stored if n.startswith(f"files/{sha[:12]}_")]
        assert copy.read_bytes() == files[key].read_bytes()
    assert not any(sha256_of(files["other"])[:12] in n for n in names)  # another case's file
    assert all(os.stat(out / n).st_mode & 0o777 == 0o444 for n in names)

    check = _run(["sha256sum", "-c", "MANIFEST.sha256"], out)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == len(names) - 1  # every file but the manifest

    sig = _run(
        [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "station.pub",
            "-rawin",
            "-in",
            "signed-head.json",
            "-sigfile",
            "signed-head.sig",
        ],
        out,
    )
    assert sig.returncode == 0 and "Signature Verified Successfully" in sig.stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", "station.pub", "-outform", "DER"],
        cwd=out,
        capture_output=True,
        check=True,
    ).stdout
    head = json.loads((out / "signed-head.json").read_bytes())
    assert hashlib.sha256(der).hexdigest() == head["key_id"] == store.key.key_id

    script = _run(["sh", "verify.sh"], out)
    assert script.returncode == 0, script.stdout + script.stderr
    assert script.stdout.rstrip().endswith("ALL CHECKS PASSED")
    excerpt = [json.loads(x) for x in (out / "ledger-excerpt.jsonl").read_text().splitlines()]
    assert script.stdout.count(": included") == len(excerpt)
    types = [e["type"] for e in excerpt]
    assert types.count("add") == 3 and types.count("derive") == 1 and types.count("case") == 2
    assert all(e.get("case") == "E-1" for e in excerpt)
    readme = (out / "README.txt").read_text()
    assert "sha256sum -c MANIFEST.sha256" in readme and "openssl pkeyutl -verify" in readme
    exports = [e for e in store.entries() if e.type == "export"]
    assert exports[-1]["manifest_sha256"] == sha256_of(out / "MANIFEST.sha256")
    assert store.verify().ok

    # later: the station proves its ledger still extends the head it gave out
    store.add([files["other"]], case="Z-9")
    assert store.check_head(json.loads((out / "head.json").read_text())).ok


def _tampered(out: Path, tmp_path: Path, name: str) -> Path:
    copy = tmp_path / name
    shutil.copytree(out, copy)
    for p in copy.rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return copy


def test_tampering_with_an_archive_set_fails_its_checks(
    case_store: tuple[EvidenceStore, dict[str, Path]], tmp_path: Path
) -> None:
    store, _ = case_store
    out = store.export_case("E-1", tmp_path / "disc")

    flipped = _tampered(out, tmp_path, "flipped")
    target = next((flipped / "files").iterdir())
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 1
    target.write_bytes(bytes(data))
    assert _run(["sha256sum", "-c", "MANIFEST.sha256"], flipped).returncode != 0
    assert _run(["sh", "verify.sh"], flipped).returncode != 0

    # a forger edits an entry and rewrites the manifest: the signed tree gives it away
    forged = _tampered(out, tmp_path, "forged")
    lines = (forged / "ledger-excerpt.jsonl").read_text().splitlines(keepends=True)
    lines[0] = lines[0].replace('"operator":"op1"', '"operator":"someone"')
    (forged / "ledger-excerpt.jsonl").write_text("".join(lines))
    manifest = subprocess.run(
        "sha256sum $(grep -v MANIFEST MANIFEST.sha256 | cut -c67-)",
        shell=True,
        cwd=forged,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (forged / "MANIFEST.sha256").write_text(manifest)
    result = _run(["sh", "verify.sh"], forged)
    assert result.returncode == 1
    assert "NOT in the signed tree" in result.stdout and "1. every file" in result.stdout

    # and a new head for the forged tree cannot be signed without the station's key
    resigned = _tampered(out, tmp_path, "resigned")
    head = (resigned / "signed-head.json").read_text()
    (resigned / "signed-head.json").write_text(head.replace('"tree_size":', '"tree_size":1'))
    sig = _run(
        [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "station.pub",
            "-rawin",
            "-in",
            "signed-head.json",
            "-sigfile",
            "signed-head.sig",
        ],
        resigned,
    )
    assert sig.returncode != 0


def test_export_refuses_a_folder_in_use_and_unknown_cases(
    case_store: tuple[EvidenceStore, dict[str, Path]], tmp_path: Path
) -> None:
    store, _ = case_store
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(EvidenceInputError, match="exists and is not an empty folder"):
        store.export_case("E-1", busy)
    with pytest.raises(EvidenceLookupError, match="case NOPE is not in the ledger"):
        store.export_case("NOPE", tmp_path / "new")
    assert not (tmp_path / "new").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert store.export_case("Z-9", empty) == empty


def test_read_only_export_is_not_recorded(
    case_store: tuple[EvidenceStore, dict[str, Path]], tmp_path: Path
) -> None:
    store, _ = case_store
    ro = EvidenceStore.open(store.root, read_only=True)
    size = store.ledger_path.stat().st_size
    out = ro.export_case("E-1", tmp_path / "ro")
    assert store.ledger_path.stat().st_size == size
    assert _run(["sh", "verify.sh"], out).returncode == 0
