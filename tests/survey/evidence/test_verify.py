"""verify: every edit of the ledger or of a stored file is detected and named; exported heads
are proven prefixes of today's ledger, a fork's head is not."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from survey.errors import LedgerFormatError
from survey.evidence import EvidenceStore
from tests.survey.evidence._helpers import (
    Clock,
    copy_store,
    ledger_lines,
    write_bytes,
    write_ledger,
)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of ~40 entries with checkpoints every 5: adds in two cases, derivations, a
    tier change and a hold."""
    root = tmp_path_factory.mktemp("base")
    src = root / "src"
    files = [write_bytes(src / f"f{i}.bin", 50 + 7 * i, seed=i) for i in range(12)]
    store = EvidenceStore.open(
        root / "store", create=True, clock=Clock(), settings={"checkpoint_every": 5}
    )
    store.add(files[:6], case="A-1", risk="medium", operator="op1")
    store.add(files[4:9], case="B-2", risk="low")
    store.record_derivation(
        command="d1", inputs={"x": files[:3]}, outputs={"o": files[9]}, parameters={"k": 1}
    )
    store.set_case("B-2", hold=True, reason="court order 7")
    store.add(files[9:], case="A-1")
    store.record_derivation(
        command="d2", inputs={"o": files[9]}, outputs={"p": files[10]}, parameters={}
    )
    assert store.verify().ok
    return root / "store"


@pytest.fixture
def work() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="verify-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _verify(root: Path) -> object:
    return EvidenceStore.open(root, read_only=True).verify()


EDITS = st.sampled_from(["flip", "delete", "swap", "insert-copy", "insert-garbage", "truncate"])


@settings(
    max_examples=int(os.environ.get("EVIDENCE_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(edit=EDITS, data=st.data())
def test_random_ledger_edits_are_detected_and_named(
    base: Path, edit: str, data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_store(base, Path(tmp) / "s")
        lines = ledger_lines(root)
        n = len(lines)
        named: set[int]
        if edit == "flip":
            i = data.draw(st.integers(0, n - 1), label="line")
            pos = data.draw(st.integers(0, len(lines[i]) - 2), label="byte")
            mask = data.draw(st.integers(1, 255), label="mask")
            line = bytearray(lines[i])
            line[pos] ^= mask
            lines[i] = bytes(line)
            named = {i}
        elif edit == "delete":
            i = data.draw(st.integers(0, n - 1), label="line")
            del lines[i]
            named = {i}
        elif edit == "swap":
            i = data.draw(st.integers(0, n - 2), label="i")
            j = data.draw(st.integers(i + 1, n - 1), label="j")
            lines[i], lines[j] = lines[j], lines[i]
            named = {i, j}
        elif edit == "insert-copy":
            m = data.draw(st.integers(0, n - 1), label="copy of")
            k = data.draw(st.integers(0, n), label="at")
            lines.insert(k, lines[m])
            named = {m}
        elif edit == "insert-garbage":
            k = data.draw(st.integers(0, n), label="at")
            junk = data.draw(st.binary(min_size=1, max_size=40), label="junk")
            lines.insert(k, junk.replace(b"\n", b" ") + b"\n")
            named = {k}
        else:
            data_bytes = b"".join(lines)
            cut = data.draw(st.integers(0, len(data_bytes) - 1), label="cut")
            kept = data_bytes[:cut]
            lines = [kept]
            named = {kept.count(b"\n")}
        write_ledger(root, lines)
        report = _verify(root)
        assert not report.ok, f"{edit}: not detected"
        assert named <= report.named_seqs, (edit, named, [p.message for p in report.problems])
        for p in report.problems:
            assert "\n" not in p.message


@settings(max_examples=25, deadline=None)
@given(which=st.integers(0, 100), how=st.sampled_from(["flip", "delete", "truncate", "append"]))
def test_random_edits_of_stored_files_are_detected_and_named(
    base: Path, which: int, how: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_store(base, Path(tmp) / "s")
        objects = sorted(p for p in (root / "objects").rglob("*") if p.is_file())
        target = objects[which % len(objects)]
        rel = target.relative_to(root).as_posix()
        os.chmod(target, 0o644)
        data = bytearray(target.read_bytes())
        if how == "flip":
            data[which % len(data)] ^= 0x40
            target.write_bytes(bytes(data))
        elif how == "delete":
            target.unlink()
        elif how == "truncate":
            target.write_bytes(bytes(data[: len(data) // 2]))
        else:
            target.write_bytes(bytes(data) + b"\x00")
        report = _verify(root)
        assert not report.ok
        assert report.named_paths == {rel}
        kind = "file-missing" if how == "delete" else "file-modified"
        assert [p.kind for p in report.problems] == [kind]


def test_verify_names_exactly_on_known_edits(base: Path, work: Path) -> None:
    root = copy_store(base, work / "s")
    lines = ledger_lines(root)
    entry = json.loads(lines[7])
    entry["operator"] = "someone else"
    lines[7] = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    del lines[20]
    write_ledger(root, lines)
    report = _verify(root)
    messages = [p.message for p in report.problems]
    assert "entry 7 modified: its SHA-256 is not the prev recorded by entry 8" in messages
    assert "entry 20 missing from the ledger (deleted)" in messages
    assert report.named_seqs >= {7, 20}


def test_a_ledger_cut_short_at_a_line_boundary_is_caught_by_head_json(
    base: Path, work: Path
) -> None:
    root = copy_store(base, work / "s")
    lines = ledger_lines(root)
    write_ledger(root, lines[:-6])  # whole commands removed, the rest chains perfectly
    report = _verify(root)
    assert not report.ok
    assert any(p.kind == "deleted" and p.path == "head.json" for p in report.problems)
    assert len(lines) - 6 in report.named_seqs


def test_head_json_tampered_or_missing(base: Path, work: Path) -> None:
    root = copy_store(base, work / "s")
    head = root / "head.json"
    os.chmod(head, 0o644)
    data = json.loads(head.read_text())
    data["tree_size"] -= 1
    head.write_text(json.dumps(data))
    report = _verify(root)
    assert [p.path for p in report.problems] == ["head.json"]
    head.unlink()
    assert [p.message for p in _verify(root).problems] == [
        "head.json is missing (the store's copy of its latest signed head)"
    ]


def test_a_ledger_line_that_is_not_json_is_one_line_for_readers(base: Path, work: Path) -> None:
    root = copy_store(base, work / "s")
    lines = ledger_lines(root)
    lines[3] = b"{not json\n"
    write_ledger(root, lines)
    store = EvidenceStore.open(root, read_only=True)
    with pytest.raises(LedgerFormatError) as err:
        list(store.entries())
    message = str(err.value)
    assert message.startswith(f"{root / 'ledger.jsonl'} line 4: not JSON (")
    assert message.endswith(f"run `sitewatch evidence verify {root}` to see every problem")
    assert "\n" not in message
    writer = EvidenceStore.open(root)
    with pytest.raises(LedgerFormatError):
        writer.set_case("A-1", hold=True)  # reads case entries: refuses a damaged ledger
    report = store.verify()
    assert report.problems[0].message.startswith(
        "ledger line 4 (where entry 3 belongs) is not a ledger entry: not JSON"
    )


def test_a_torn_last_line_is_a_note_and_the_next_writer_repairs_it(
    base: Path, work: Path, tmp_path: Path
) -> None:
    root = copy_store(base, work / "s")
    path = root / "ledger.jsonl"
    os.chmod(path, 0o644)
    with open(path, "ab") as fh:
        fh.write(b'{"seq":99,"prev":"ab')  # power lost in the middle of a write
    os.chmod(path, 0o444)
    report = _verify(root)
    assert report.ok and any("partial entry of 20 bytes" in n for n in report.notes)
    store = EvidenceStore.open(root)
    store.set_case("A-1", risk="high")
    repairs = [e for e in store.entries() if e.type == "repair"]
    assert len(repairs) == 1 and repairs[0]["dropped_bytes"] == 20
    after = store.verify()
    assert after.ok and not after.notes


def test_exported_head_is_a_prefix_and_a_forked_head_is_not(base: Path, work: Path) -> None:
    a = copy_store(base, work / "a")
    b = copy_store(base, work / "b")  # the same station's key, the same history so far
    old_head = EvidenceStore.open(a).signed_head()
    sa, sb = EvidenceStore.open(a), EvidenceStore.open(b)
    f = write_bytes(work / "x.bin", 10, seed=1)
    g = write_bytes(work / "y.bin", 10, seed=2)
    sa.add([f], case="A-1")
    sb.add([g], case="A-1")  # the fork
    check = sa.check_head(old_head)
    assert check.ok and check.tree_size < check.current_size and check.consistency_proof
    assert sa.verify_head(sa.signed_head())
    fork_head = sb.signed_head()
    assert sa.head_signature_ok(fork_head)  # signed by the same key, yet
    assert not sa.verify_head(fork_head)  # not a prefix of a's ledger
    assert "not those the head signed" in sa.check_head(fork_head).reason
    tampered = dict(old_head, root_hash="00" * 32)
    assert not sa.verify_head(tampered)
    assert "signature" in sa.check_head(tampered).reason
    other = EvidenceStore.open(work / "other", create=True)
    assert not other.verify_head(old_head)


def test_rewriting_the_whole_chain_without_the_key_fails_the_signatures(
    base: Path, work: Path
) -> None:
    """A forger rewrites entry 5 and re-chains every later entry (prev hashes recomputed):
    the chain is perfect, but the checkpoints' roots and signatures give it away."""
    import hashlib

    root = copy_store(base, work / "s")
    lines = [json.loads(x) for x in ledger_lines(root)]
    lines[5]["operator"] = "forger"
    out, prev = [], "0" * 64
    for e in lines:
        e["prev"] = prev
        line = json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        prev = hashlib.sha256(line).hexdigest()
        out.append(line + b"\n")
    write_ledger(root, out)
    report = _verify(root)
    assert not report.ok
    kinds = {p.kind for p in report.problems}
    assert "checkpoint" in kinds and "head" in kinds
    first_bad = min(s for p in report.problems if p.kind == "checkpoint" for s in p.seqs)
    assert first_bad > 5  # the first checkpoint after the forged entry
