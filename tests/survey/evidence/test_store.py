"""The store's API: adding originals, provenance records, tracing, signed heads, roles."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from survey.errors import (
    CaseIdError,
    EvidenceInputError,
    EvidenceLookupError,
    InputFileError,
    NotAStoreError,
    StoreReadOnlyError,
)
from survey.evidence import (
    EvidenceStore,
    HashedFile,
    head_message,
    leaf_hash,
    verify_inclusion,
)
from tests.survey.evidence._helpers import (
    Clock,
    ledger_lines,
    sha256_of,
    snapshot,
    write_bytes,
    write_photo,
)


def test_add_copies_bit_exact_read_only_with_hashes_and_who_when_where(
    tmp_path: Path, store: EvidenceStore, clock: Clock
) -> None:
    card = tmp_path / "card"
    photo = write_photo(card / "DCIM" / "DJI_0001.JPG", body_serial="CAM-77", drone_serial="1ZNBJ9")
    blob = write_bytes(card / "DCIM" / "flight.bin", 2_500_000, seed=1)  # > 2 chunks
    before = snapshot(card)
    items = store.add(
        [card],
        case="2024-017",
        risk="medium",
        operator="op7",
        site="Xiamen-04",
        source_root=card,
    )
    assert [i.name for i in items] == ["DCIM/DJI_0001.JPG", "DCIM/flight.bin"]
    for item, src in zip(items, (photo, blob), strict=True):
        data = src.read_bytes()
        assert item.sha256 == hashlib.sha256(data).hexdigest()
        assert item.md5 == hashlib.md5(data).hexdigest()
        assert item.size == len(data)
        assert item.path == store.root / "objects" / item.sha256[:2] / item.sha256
        assert item.path.read_bytes() == data
        assert stat.S_IMODE(item.path.stat().st_mode) == 0o444
        assert item.new
    assert snapshot(card) == before  # inputs untouched, nothing written beside them
    assert stat.S_IMODE(store.ledger_path.stat().st_mode) == 0o444
    entries = list(store.entries())
    case, add_photo, add_blob = (e for e in entries if e.type in ("case", "add"))
    assert case.record["risk"] == "medium" and not case.record["risk_assumed"]
    r = add_photo.record
    assert r["operator"] == "op7" and r["site"] == "Xiamen-04" and r["case"] == "2024-017"
    assert r["source"] == "DCIM/DJI_0001.JPG" and r["source_root"] == str(card.resolve())
    assert r["time"] == "2025-01-15T09:30:00.000000Z"  # the injected clock
    assert r["device"]["camera_serial"] == "CAM-77"
    assert r["device"]["drone_serial"] == "1ZNBJ9"
    assert r["device"]["make"] == "DJI" and r["device"]["model"] == "FC6310"
    assert r["device"]["sources"] == {
        "camera_serial": "EXIF BodySerialNumber",
        "drone_serial": "XMP drone-dji:DroneSerialNumber",
        "drone_model": "XMP drone-dji:DroneModel",
    }
    assert r["device"]["drone_model"] == "M3E"
    assert r["station"]["host"] and r["station"]["user"]
    assert add_blob.record["device"] == {"kind": "file"}
    assert entries[-1].type == "checkpoint"  # every command ends signed
    assert store.verify().ok


def test_the_same_file_twice_is_stored_once_and_recorded_twice(
    tmp_path: Path, store: EvidenceStore
) -> None:
    a = write_bytes(tmp_path / "a.bin", 1000, seed=2)
    b = tmp_path / "copy-of-a.bin"
    b.write_bytes(a.read_bytes())
    first = store.add([a], case="C-1")
    second = store.add([b, a], case="C-2", risk="low")
    assert first[0].new and not second[0].new and not second[1].new
    assert {i.sha256 for i in [*first, *second]} == {sha256_of(a)}
    objects = [p for p in (store.root / "objects").rglob("*") if p.is_file()]
    assert len(objects) == 1
    adds = [e for e in store.entries() if e.type == "add"]
    assert [(e["case"], e["stored"]) for e in adds] == [
        ("C-1", True),
        ("C-2", False),
        ("C-2", False),
    ]
    state = store.state()
    assert set(state.objects[sha256_of(a)].cases) == {"C-1", "C-2"}


def test_a_case_without_tier_gets_the_default_with_a_warning(
    tmp_path: Path, store: EvidenceStore, caplog: pytest.LogCaptureFixture
) -> None:
    f = write_bytes(tmp_path / "f", 10, seed=3)
    with caplog.at_level(logging.WARNING, logger="survey.evidence"):
        store.add([f], case="X-1")
    assert [r.getMessage() for r in caplog.records if "no risk tier" in r.getMessage()]
    cs = store.state().cases["X-1"]
    assert cs.risk == "high" and cs.risk_assumed
    store.add([f], case="X-1", risk="low")  # a different tier given later: a change
    changes = [e for e in store.entries() if e.type == "case"]
    assert [c["changed"] for c in changes] == [["created"], ["risk"]]
    assert changes[1]["previous"] == {"risk": "high"}


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("../etc", "path separator"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("a..b", "'..'"),
        ("..", "'..'"),
        ("", "empty"),
        (".hidden", "starts with '.'"),
        ("-rf", "starts with '-'"),
        ("案件1", "starts with '案'"),
        ("a b", "' '"),
        ("x" * 129, "129 characters"),
    ],
)
def test_hostile_case_ids_get_one_line(
    tmp_path: Path, store: EvidenceStore, case: str, why: str
) -> None:
    f = write_bytes(tmp_path / "f", 10, seed=4)
    with pytest.raises(CaseIdError) as err:
        store.add([f], case=case)
    message = str(err.value)
    assert "\n" not in message and why in message and "e.g. 2024-017" in message
    assert not [e for e in store.entries() if e.type == "add"]


def test_a_folder_that_is_not_a_store_gets_one_line(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "x.jpg").write_bytes(b"x")
    for path, expected in (
        (tmp_path / "photos", "not an evidence store (no sitewatch-store.json)"),
        (tmp_path / "missing", "no such folder, not an evidence store"),
        (tmp_path / "photos" / "x.jpg", "a file, not an evidence store folder"),
    ):
        with pytest.raises(NotAStoreError) as err:
            EvidenceStore.open(path)
        assert expected in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(NotAStoreError):  # create never takes over a folder with files
        EvidenceStore.open(tmp_path / "photos", create=True)
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == ["x.jpg"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "sitewatch-store.json").write_text('{"format": "something else"}')
    with pytest.raises(NotAStoreError, match="is not a sitewatch store's"):
        EvidenceStore.open(other)


def test_a_file_that_vanishes_mid_add_records_nothing(tmp_path: Path, store: EvidenceStore) -> None:
    first = write_bytes(tmp_path / "in" / "1.bin", 3_000_000, seed=5)
    second = write_bytes(tmp_path / "in" / "2.bin", 1000, seed=6)

    def delete_the_second(source: Path, done: int, total: int) -> None:
        if source == first.absolute() and done >= total:
            second.unlink()

    with pytest.raises(InputFileError) as err:
        store.add([first, second], case="V-1", progress=delete_the_second)
    assert str(err.value).startswith(f"{second.absolute()}: vanished before it could be stored")
    assert "\n" not in str(err.value)
    assert not [p for p in (store.root / "objects").rglob("*") if p.is_file()]
    assert not list((store.root / "tmp").iterdir())
    assert not [e for e in store.entries() if e.type in ("add", "case")]
    assert store.verify().ok


def test_a_file_that_changes_while_copied_records_nothing(
    tmp_path: Path, store: EvidenceStore
) -> None:
    f = write_bytes(tmp_path / "growing.bin", 3_000_000, seed=7)

    def append(source: Path, done: int, total: int) -> None:
        if done == 1 << 20:
            with open(source, "ab") as fh:
                fh.write(b"more")

    with pytest.raises(EvidenceInputError, match="changed while it was being stored"):
        store.add([f], case="G-1", progress=append)
    assert not [e for e in store.entries() if e.type == "add"]


def test_read_only_store_refuses_every_write_and_still_verifies(
    tmp_path: Path, store: EvidenceStore
) -> None:
    f = write_bytes(tmp_path / "f", 100, seed=8)
    store.add([f], case="R-1")
    size = store.ledger_path.stat().st_size
    ro = EvidenceStore.open(store.root, read_only=True)
    attempts = [
        lambda: ro.add([f], case="R-1"),
        lambda: ro.record_derivation(command="x", inputs={}, outputs={}, parameters={}),
        lambda: ro.set_case("R-1", hold=True),
        lambda: ro.purge(),
    ]
    for attempt in attempts:
        with pytest.raises(StoreReadOnlyError, match="opened read-only"):
            attempt()
    with pytest.raises(StoreReadOnlyError), ro.batch():
        pass
    assert ro.purge(dry_run=True).dry_run
    assert ro.verify().ok
    assert ro.signed_head() == store.signed_head()
    assert store.ledger_path.stat().st_size == size
    with pytest.raises(NotAStoreError, match="not an evidence store"):
        EvidenceStore.open(tmp_path / "new", create=True, read_only=True)


def test_derivations_trace_back_to_the_originals(tmp_path: Path, store: EvidenceStore) -> None:
    photos = [write_photo(tmp_path / f"p{i}.jpg", seed=i) for i in range(3)]
    log = write_bytes(tmp_path / "flight.tlog", 500, seed=9)
    permit = write_bytes(tmp_path / "permits.geojson", 300, seed=10)  # never added
    added = store.add([*photos, log], case="T-1", risk="high")
    ortho = write_bytes(tmp_path / "ortho.tif", 800, seed=11)
    d1 = store.record_derivation(
        command="odm",
        inputs={"photos": list(photos), "log": added[-1].sha256},
        outputs={"ortho": ortho},
        parameters={"gsd_cm": 2.0, "out": tmp_path},
        operator="analyst1",
        case="T-1",
    )
    leads = write_bytes(tmp_path / "leads.geojson", 200, seed=12)
    d2 = store.record_derivation(
        command="sitewatch detect",
        inputs={"after": ortho, "permits": permit},
        outputs={"leads": leads},
        parameters={"min_height_m": 2.5},
    )
    assert d1.record["software"].startswith("sitewatch ")
    assert d1.record["parameters"] == {"gsd_cm": 2.0, "out": str(tmp_path)}
    assert [i["sha256"] for i in d1.record["inputs"]] == [a.sha256 for a in added]
    assert d1.record["outputs"] == [
        {
            "role": "ortho",
            "sha256": sha256_of(ortho),
            "size": 800,
            "path": str(ortho.resolve()),
            "stored": False,
        }
    ]
    chain = store.trace(sha256_of(leads))
    assert [e.seq for e in chain] == sorted([d2.seq, d1.seq, *(a.seq for a in added)])
    assert [e.type for e in store.trace(added[0].sha256)] == ["add"]
    with pytest.raises(EvidenceLookupError, match="not in the ledger"):
        store.trace("0" * 64)
    with pytest.raises(EvidenceInputError, match="not a SHA-256"):
        store.trace("abc")
    with pytest.raises(EvidenceInputError, match="no JSON form"):
        store.record_derivation(command="x", inputs={}, outputs={}, parameters={"f": object()})
    with pytest.raises(InputFileError, match="no such file"):
        store.record_derivation(
            command="x", inputs={"a": tmp_path / "nope"}, outputs={}, parameters={}
        )


def test_outputs_and_inputs_with_known_hashes_are_recorded_without_reading_them(
    tmp_path: Path, store: EvidenceStore
) -> None:
    """A command that hashed what it wrote passes the hash: the entry carries that hash, the
    path and the size (a stat), and the file is not read again — shown by a file whose bytes
    no longer match the hash given, which is recorded as given."""
    ortho = write_bytes(tmp_path / "ortho.tif", 800, seed=11)
    dsm = write_bytes(tmp_path / "dsm.tif", 600, seed=12)
    photo = write_bytes(tmp_path / "p.jpg", 300, seed=13)
    said = "ab" * 32  # not the hash of ortho.tif's bytes
    entry = store.record_derivation(
        command="odm",
        inputs={"photos": [HashedFile(photo, sha256_of(photo).upper())]},
        outputs={"ortho": HashedFile(ortho, said), "dsm": "CD" * 32, "report": dsm},
        parameters={},
    )
    assert entry.record["inputs"] == [
        {"role": "photos", "sha256": sha256_of(photo), "size": 300, "path": str(photo.resolve())}
    ]
    assert entry.record["outputs"] == [
        {
            "role": "ortho",
            "sha256": said,
            "size": 800,
            "path": str(ortho.resolve()),
            "stored": False,
        },
        {"role": "dsm", "sha256": "cd" * 32, "stored": False},
        {
            "role": "report",
            "sha256": sha256_of(dsm),
            "size": 600,
            "path": str(dsm.resolve()),
            "stored": False,
        },
    ]
    assert store.state().produced_by[said] == [entry.seq]
    # storing an output needs its bytes, and they must be the ones the command hashed
    before = ledger_lines(store.root)
    with pytest.raises(EvidenceInputError, match="given only by its SHA-256"):
        store.record_derivation(
            command="p", inputs={}, outputs={"x": "cd" * 32}, parameters={}, case="P-1",
            store_outputs=True,
        )  # fmt: skip
    with pytest.raises(EvidenceInputError, match="when p wrote it; run the command again"):
        store.record_derivation(
            command="p", inputs={}, outputs={"x": HashedFile(ortho, said)}, parameters={},
            case="P-1", store_outputs=True,
        )  # fmt: skip
    with pytest.raises(InputFileError, match="no such file"):
        store.record_derivation(
            command="p", inputs={}, outputs={"x": HashedFile(tmp_path / "gone", said)},
            parameters={},
        )  # fmt: skip
    with pytest.raises(EvidenceInputError, match="is not a SHA-256"):
        HashedFile(ortho, "abc")
    assert ledger_lines(store.root) == before
    assert not list(store.root.rglob("*.part"))
    assert store.verify().ok


def test_stored_outputs_are_items_of_their_case(tmp_path: Path, store: EvidenceStore) -> None:
    out = write_bytes(tmp_path / "package.zip", 5000, seed=13)
    entry = store.record_derivation(
        command="package",
        inputs={},
        outputs={"zip": out},
        parameters={},
        case="P-1",
        store_outputs=True,
    )
    assert entry.record["outputs"][0]["stored"]
    stored = store.object_path(sha256_of(out))
    assert stored.read_bytes() == out.read_bytes()
    assert "P-1" in store.state().objects[sha256_of(out)].cases
    with pytest.raises(EvidenceInputError, match="needs a case"):
        store.record_derivation(
            command="p", inputs={}, outputs={"zip": out}, parameters={}, store_outputs=True
        )
    assert store.verify().ok


def test_ledger_excerpt_proves_each_entry_in_the_signed_head(
    tmp_path: Path, store: EvidenceStore
) -> None:
    photos = [write_bytes(tmp_path / f"{i}.jpg", 100 + i, seed=i) for i in range(5)]
    added = store.add(photos, case="E-1")
    out = write_bytes(tmp_path / "out.tif", 64, seed=99)
    store.record_derivation(
        command="c", inputs={"p": photos[:2]}, outputs={"o": out}, parameters={}
    )
    excerpt = store.ledger_excerpt([sha256_of(out)])
    head = store.signed_head()
    assert [x["seq"] for x in excerpt] == [added[0].seq, added[1].seq, excerpt[-1]["seq"]]
    lines = ledger_lines(store.root)
    for x in excerpt:
        line = x["line"].encode()
        assert lines[x["seq"]] == line + b"\n"  # the exact ledger line
        assert x["hash"] == hashlib.sha256(line).hexdigest()
        assert x["prev"] == hashlib.sha256(lines[x["seq"] - 1].rstrip(b"\n")).hexdigest()
        assert x["tree_size"] == head["tree_size"] and x["root_hash"] == head["root_hash"]
        assert verify_inclusion(
            x["seq"],
            head["tree_size"],
            leaf_hash(line),
            [bytes.fromhex(h) for h in x["inclusion_proof"]],
            bytes.fromhex(head["root_hash"]),
        )
    json.dumps(excerpt)  # JSON-ready


def test_signed_head_verifies_with_the_exported_public_key(store: EvidenceStore) -> None:
    head = store.signed_head()
    public = serialization.load_pem_public_key(store.public_key_pem())
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert head["key_id"] == hashlib.sha256(der).hexdigest()
    public.verify(base64.b64decode(head["signature"]), head_message(head))  # type: ignore[call-arg, union-attr]
    assert head["tree_size"] == head["seq"] == 1 and head["algorithm"] == "Ed25519"
    assert head["signed_message"].encode() == head_message(head)  # for openssl -rawin
    assert head["public_key_pem"].encode() == store.public_key_pem()
    key = store.root / "keys" / "station.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o400
    assert store.verify_head(head)


def test_batch_is_one_command_with_one_checkpoint(tmp_path: Path, store: EvidenceStore) -> None:
    f = write_bytes(tmp_path / "f", 10, seed=14)
    before = len(ledger_lines(store.root))
    with store.batch():
        store.add([f], case="B-1", risk="low")
        store.set_case("B-1", hold=True, reason="order 5")
        store.record_derivation(command="x", inputs={"f": f}, outputs={}, parameters={})
    new = [json.loads(x) for x in ledger_lines(store.root)[before:]]
    assert [e["type"] for e in new] == ["case", "add", "case", "derive", "checkpoint"]
    assert store.state().cases["B-1"].hold
    assert store.verify().ok


def test_checkpoints_every_n_entries(tmp_path: Path, clock: Clock) -> None:
    s = EvidenceStore.open(
        tmp_path / "s", create=True, clock=clock, settings={"checkpoint_every": 3}
    )
    files = [write_bytes(tmp_path / f"{i}", 10, seed=i) for i in range(7)]
    s.add(files, case="N-1")
    types = [e.type for e in s.entries()]
    # store, cp | case add add, cp | add add add, cp | add add add, cp | (end) ...
    assert types == [
        "store",
        "checkpoint",
        "case",
        "add",
        "add",
        "checkpoint",
        "add",
        "add",
        "add",
        "checkpoint",
        "add",
        "add",
        "checkpoint",
    ]
    assert s.verify().ok and s.verify().signed_size == 12
