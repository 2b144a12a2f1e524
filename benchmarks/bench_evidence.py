"""Evidence store: ``add`` of a flight's photos against ``cp`` + ``sha256sum``; ``verify`` on
ledgers of 10,000 and 100,000 entries.

Figures, each against a baseline measured in the same run:

* ``add`` — :meth:`EvidenceStore.add` of a folder of 8 MiB files (a survey camera's JPEGs;
  random bytes, each file different) into a new store, against ``cp -r`` of the same folder
  plus ``sha256sum`` of its files. Both read the files from the page cache (they were just
  written); ``sync`` runs before each timing so neither pays for the other's write-back.
  ``add`` reads each byte once, hashing SHA-256 in the main thread and MD5 in a worker while
  copying, and fsyncs every stored file before recording it (``cp`` does not: the figure
  with ``sync`` after ``cp`` is given too). Target: ratio <= 1.3. Size: 3 GiB (about 380
  photos), ``--quick`` 256 MiB, or ``SITEWATCH_BENCH_EVIDENCE_MB``. Best of two runs each.
* ``verify`` — time and peak Python heap (tracemalloc) of :meth:`EvidenceStore.verify` on a
  ledger of 100,000 entries (derivation records with three inputs and one output, a signed
  checkpoint every 1,000, 100 stored files) against the same on 10,000 entries: time should
  grow 10x (linear; the baseline is 10x the small ledger's time), memory not at all (flat).
  ``--quick``: 2,000 and 20,000.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import Result, median_time, traced_peak_mb  # noqa: E402

from survey.evidence import EvidenceStore  # noqa: E402

BENCH = "evidence"
PHOTO_BYTES = 8 << 20


def _write_photos(folder: Path, total_mb: int) -> int:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(14)
    n = max(1, (total_mb << 20) // PHOTO_BYTES)
    for i in range(n):
        (folder / f"DJI_{i:04d}.JPG").write_bytes(rng.bytes(PHOTO_BYTES))
    return n


def _sync() -> None:
    os.sync()


def _time_cp_sha256sum(src: Path, dst: Path, *, sync: bool) -> float:
    files = sorted(str(p) for p in src.iterdir())
    _sync()
    t0 = time.perf_counter()
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
    subprocess.run(["sha256sum", *files], check=True, stdout=subprocess.DEVNULL)
    if sync:
        _sync()
    elapsed = time.perf_counter() - t0
    shutil.rmtree(dst)
    return elapsed


def _time_add(src: Path, store_dir: Path) -> float:
    store = EvidenceStore.open(store_dir, create=True)
    _sync()
    t0 = time.perf_counter()
    items = store.add([src], case="BENCH-1", risk="low", operator="bench")
    elapsed = time.perf_counter() - t0
    assert len(items) == len(list(src.iterdir())) and all(i.new for i in items)
    shutil.rmtree(store_dir)
    return elapsed


def _bench_add(quick: bool) -> list[Result]:
    total_mb = int(os.environ.get("SITEWATCH_BENCH_EVIDENCE_MB", 256 if quick else 3072))
    with tempfile.TemporaryDirectory(prefix="bench-evidence-", dir=os.environ.get("TMPDIR")) as t:
        tmp = Path(t)
        t0 = time.perf_counter()
        n = _write_photos(tmp / "flight", total_mb)
        size_mb = n * PHOTO_BYTES / 2**20
        print(
            f"   wrote {n} photos, {size_mb:.0f} MiB in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        base, base_sync, ours = [], [], []
        for _ in range(2):
            base.append(_time_cp_sha256sum(tmp / "flight", tmp / "copy", sync=False))
            ours.append(_time_add(tmp / "flight", tmp / "store"))
            base_sync.append(_time_cp_sha256sum(tmp / "flight", tmp / "copy", sync=True))
        print(f"   cp+sha256sum {base}, +sync {base_sync}, add {ours}", flush=True)
    b, bs, o = min(base), min(base_sync), min(ours)
    note = (
        f"{n} x 8 MiB; add {size_mb / o:.0f} MiB/s (SHA-256 + MD5 while copying, fsync of "
        f"every file), cp+sha256sum {size_mb / b:.0f} MiB/s; best of 2"
    )
    return [
        Result(
            BENCH,
            f"add {size_mb:.0f} MiB of photos",
            o,
            "s",
            baseline=b,
            baseline_name="cp -r + sha256sum, same files",
            target="ratio <= 1.3",
            ok=o <= 1.3 * b,
            note=note,
        ),
        Result(
            BENCH,
            f"add {size_mb:.0f} MiB of photos (vs cp with sync)",
            o,
            "s",
            baseline=bs,
            baseline_name="cp -r + sha256sum + sync, same files",
            target="ratio <= 1.3",
            ok=o <= 1.3 * bs,
            note="the same add against a cp whose copies are on disk too",
        ),
    ]


def _build_ledger(root: Path, entries: int) -> EvidenceStore:
    src = root / "src"
    src.mkdir(parents=True)
    files = []
    for i in range(100):
        f = src / f"p{i:03d}.jpg"
        f.write_bytes(hashlib.sha256(str(i).encode()).digest() * 32)
        files.append(f)
    out = src / "out.tif"
    out.write_bytes(b"o" * 1024)
    store = EvidenceStore.open(root / "store", create=True)
    added = store.add(files, case="V-1", risk="medium")
    hashes = [a.sha256 for a in added]
    with store.batch():
        while store._writer is not None and store._writer.size < entries - 1:
            k = store._writer.size
            store.record_derivation(
                command="sitewatch detect",
                inputs={
                    "before": hashes[k % 100],
                    "after": hashes[(k + 1) % 100],
                    "permits": hashes[(k + 2) % 100],
                },
                outputs={"leads": out},
                parameters={"min_height_m": 2.5, "min_area_m2": 20.0, "run": k},
                operator="analyst",
            )
    return store


def _bench_verify(quick: bool) -> list[Result]:
    small_n, large_n = (2_000, 20_000) if quick else (10_000, 100_000)
    figures = {}
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as t:
        for n in (small_n, large_n):
            t0 = time.perf_counter()
            store = _build_ledger(Path(t) / str(n), n)
            size_mb = store.ledger_path.stat().st_size / 1e6
            built = time.perf_counter() - t0
            report = store.verify()
            assert report.ok, report.problems
            seconds = median_time(store.verify, repeat=3)
            peak = traced_peak_mb(store.verify)
            figures[n] = (seconds, peak, report.entries, size_mb)
            print(
                f"   {report.entries} entries ({size_mb:.0f} MB) built in {built:.1f} s: "
                f"verify {seconds:.2f} s, peak heap {peak:.2f} MiB",
                flush=True,
            )
    (ts, ms, es, _), (tl, ml, el, mbl) = figures[small_n], figures[large_n]
    return [
        Result(
            BENCH,
            f"verify, {el} entries",
            tl,
            "s",
            baseline=ts * el / es,
            baseline_name=f"{el / es:.0f} x verify of {es} entries (linear)",
            target="ratio <= 1.2 (linear)",
            ok=tl <= 1.2 * ts * el / es,
            note=f"{el / tl:.0f} entries/s, {mbl / tl:.0f} MB/s of ledger",
        ),
        Result(
            BENCH,
            f"verify peak heap, {el} entries",
            ml,
            "MiB",
            baseline=ms,
            baseline_name=f"the same on {es} entries",
            target="ratio <= 1.5 (flat)",
            ok=ml <= 1.5 * ms,
            note="tracemalloc peak during verify",
        ),
    ]


def run(quick: bool) -> list[Result]:
    return [*_bench_add(quick), *_bench_verify(quick)]
