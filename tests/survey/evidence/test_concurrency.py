"""Two writer processes at once lose nothing; a writer killed (SIGKILL) in the middle of an
add leaves no partial file in the store and a ledger that verifies."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from survey.evidence import EvidenceStore
from tests.survey.evidence._helpers import sha256_of, write_bytes

WRITER = Path(__file__).with_name("_writer.py")


def _start(tmp: Path, name: str, plan: dict[str, object]) -> subprocess.Popen[bytes]:
    path = tmp / f"{name}.plan.json"
    path.write_text(json.dumps(plan))
    return subprocess.Popen([sys.executable, str(WRITER), str(path)], stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()


OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.lists(st.integers(0, 9), min_size=1, max_size=3),
            st.sampled_from(["A-1", "B-2"]),
        ),
        st.tuples(st.just("derive"), st.integers(0, 9)),
        st.tuples(
            st.just("case"),
            st.sampled_from(["A-1", "B-2", "C-3"]),
            st.sampled_from(["high", "medium", "low"]),
        ),
        st.tuples(st.just("sleep"), st.floats(0, 0.02)),
    ),
    min_size=2,
    max_size=7,
)


@settings(max_examples=int(os.environ.get("EVIDENCE_EXAMPLES", "6")), deadline=None)
@given(ops_a=OPS, ops_b=OPS)
def test_two_writer_processes_lose_nothing(ops_a: list[tuple], ops_b: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        shared = [write_bytes(tmp / "shared" / f"s{i}.bin", 3000 + i, seed=i) for i in range(5)]
        store = EvidenceStore.open(tmp / "store", create=True)
        go = tmp / "go"
        procs, plans = [], {}
        for writer, ops in (("a", ops_a), ("b", ops_b)):
            own = [
                write_bytes(tmp / writer / f"o{i}.bin", 2000 + i, seed=100 + i) for i in range(5)
            ]
            pool = [*shared, *own]  # indexes 0-4 shared by both writers, 5-9 its own
            plan_ops = []
            for op in ops:
                if op[0] == "add":
                    plan_ops.append(["add", [str(pool[i]) for i in op[1]], op[2]])
                elif op[0] == "derive":
                    plan_ops.append(["derive", str(op[1]), [str(pool[op[1]])]])
                else:
                    plan_ops.append(list(op))
            plans[writer] = plan_ops
            procs.append(
                _start(
                    tmp,
                    writer,
                    {
                        "store": str(store.root),
                        "writer": writer,
                        "go": str(go),
                        "ops": plan_ops,
                        "result": str(tmp / f"{writer}.result.json"),
                    },
                )
            )
        go.write_text("go")
        for proc in procs:
            _finish(proc)
        entries = list(store.entries())
        assert [e.seq for e in entries] == list(range(len(entries)))
        for writer in ("a", "b"):
            done = json.loads((tmp / f"{writer}.result.json").read_text())
            for i, op in enumerate(plans[writer]):
                tag = f"{writer}-{i}"
                if op[0] == "add":
                    mine = [e for e in entries if e.type == "add" and e["operator"] == tag]
                    assert [e["sha256"] for e in mine] == [sha256_of(Path(f)) for f in op[1]]
                    record = next(d for d in done if d["tag"] == tag)
                    assert [e.seq for e in mine] == record["seqs"]
                    for e in mine:
                        assert (
                            store.object_path(e["sha256"]).read_bytes()
                            == Path(e["source"]).read_bytes()
                        )
                elif op[0] == "derive":
                    mine = [e for e in entries if e.type == "derive" and e["command"] == tag]
                    assert len(mine) == 1
                elif op[0] == "case":
                    mine = [e for e in entries if e.type == "case" and e["operator"] == tag]
                    assert len(mine) <= 1  # nothing recorded when the tier was already that
        report = store.verify()
        assert report.ok, [p.message for p in report.problems]
        assert not report.notes


def _kill_when(proc: subprocess.Popen[bytes], marker: Path, timeout: float = 60) -> None:
    t0 = time.monotonic()
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() - t0 < timeout, "the writer never reached the hook"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _stored_files(store: EvidenceStore) -> list[Path]:
    return sorted(p for p in (store.root / "objects").rglob("*") if p.is_file())


def _check_after_kill(store: EvidenceStore, big: Path, *, work_folder_left: bool) -> None:
    """The store verifies, holds no file and no add entry of the killed writer (its dead work
    folder is still there, or not), and the next add stores the file anew and cleans up."""
    report = store.verify()
    assert report.ok, [p.message for p in report.problems]
    assert _stored_files(store) == []  # no partial file visible, nothing placed left over
    assert not [e for e in store.entries() if e.type == "add"]
    assert bool(list((store.root / "tmp").iterdir())) is work_folder_left
    item = store.add([big], case="K-1")[0]  # the store goes on working, and cleans up
    assert item.new  # nothing of the killed add was kept
    assert _stored_files(store) == [item.path]
    assert item.sha256 == sha256_of(item.path) == sha256_of(big)
    assert not list((store.root / "tmp").iterdir())
    assert store.verify().ok


@pytest.mark.parametrize("hook", ["copy", "flush"])
def test_a_writer_killed_mid_add_leaves_a_store_that_verifies(tmp_path: Path, hook: str) -> None:
    """``copy``: killed in the middle of copying an 8 MB file; ``flush``: killed after the
    files were renamed into objects/ but before the ledger was written."""
    store = EvidenceStore.open(tmp_path / "store", create=True)
    big = write_bytes(tmp_path / "big.bin", 8 << 20, seed=1)
    small = write_bytes(tmp_path / "small.bin", 100, seed=2)
    marker = tmp_path / "stopped"
    proc = _start(
        tmp_path,
        "w",
        {
            "store": str(store.root),
            "writer": "w",
            "ops": [["add", [str(small), str(big)], "K-1"]],
            "result": str(tmp_path / "w.result.json"),
            "hook": hook,
            "marker": str(marker),
        },
    )
    _kill_when(proc, marker)
    if hook == "copy":
        assert _stored_files(store) == []
    else:  # placed but never recorded: not evidence, noted, removed by the next purge
        assert [p.name for p in _stored_files(store)] == sorted((sha256_of(small), sha256_of(big)))
        report = store.verify()
        assert report.ok and sum("no entry records it" in n for n in report.notes) == 2
        assert len(store.purge().cleaned) == 3  # two objects and the dead work folder
    _check_after_kill(store, big, work_folder_left=hook == "copy")


def test_a_writer_killed_while_waiting_for_the_lock(tmp_path: Path) -> None:
    """The writer has copied its file and waits for the store lock (another writer holds
    it) when it is killed."""
    store = EvidenceStore.open(tmp_path / "store", create=True)
    big = write_bytes(tmp_path / "big.bin", 32 << 20, seed=3)
    proc = _start(
        tmp_path,
        "w",
        {
            "store": str(store.root),
            "writer": "w",
            "ops": [["add", [str(big)], "K-1"]],
            "result": str(tmp_path / "w.result.json"),
        },
    )
    t0 = time.monotonic()
    while not list((store.root / "tmp").iterdir()):  # its work folder: it is copying
        assert time.monotonic() - t0 < 60 and proc.poll() is None
        time.sleep(0.0005)
    fd = os.open(store.root / "lock", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # now another writer holds the store
    try:
        while True:  # copied, and blocked on the lock
            parts = list((store.root / "tmp").rglob("*.part"))
            if parts and parts[0].stat().st_size == big.stat().st_size:
                break
            assert time.monotonic() - t0 < 60 and proc.poll() is None
            time.sleep(0.005)
        time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        os.close(fd)
    assert proc.returncode == -signal.SIGKILL
    _check_after_kill(store, big, work_folder_left=True)
