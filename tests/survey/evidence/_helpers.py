"""Shared helpers of the evidence tests: a settable clock, photos with serials, stores."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image

T0 = dt.datetime(2025, 1, 15, 9, 30, tzinfo=dt.UTC)


class Clock:
    """A clock the test moves by hand (``store.clock``)."""

    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, now: dt.datetime) -> None:
        self.now = now


def write_photo(
    path: Path,
    *,
    make: str = "DJI",
    model: str = "FC6310",
    body_serial: str | None = None,
    drone_serial: str | None = None,
    seed: int = 0,
) -> Path:
    """A small JPEG with EXIF Make/Model/BodySerialNumber and DJI XMP DroneSerialNumber."""
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    ex = Image.Exif()
    ex[ExifTags.Base.Make] = make
    ex[ExifTags.Base.Model] = model
    sub = ex.get_ifd(ExifTags.IFD.Exif)
    sub[ExifTags.Base.DateTimeOriginal] = "2025:01:15 09:12:30"
    if body_serial:
        sub[ExifTags.Base.BodySerialNumber] = body_serial
    kwargs: dict[str, object] = {"exif": ex.tobytes(), "quality": 90}
    if drone_serial:
        kwargs["xmp"] = (
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
            'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
            'rdf:about="" xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/" '
            f'drone-dji:DroneSerialNumber="{drone_serial}" drone-dji:DroneModel="M3E"/>'
            "</rdf:RDF></x:xmpmeta>"
        ).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format="JPEG", **kwargs)  # type: ignore[arg-type]
    return path


def write_bytes(path: Path, size: int, seed: int) -> Path:
    """``size`` pseudo-random bytes (deterministic by seed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).bytes(size))
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, tuple[str, int, int]]:
    """Every file under ``folder``: (SHA-256, mtime ns, mode) — to prove inputs untouched."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[p.relative_to(folder).as_posix()] = (sha256_of(p), st.st_mtime_ns, st.st_mode)
    return out


def copy_store(src: Path, dst: Path) -> Path:
    """A copy of a store folder (modes kept)."""
    shutil.copytree(src, dst)
    return dst


def ledger_lines(store_root: Path) -> list[bytes]:
    return (store_root / "ledger.jsonl").read_bytes().splitlines(keepends=True)


def write_ledger(store_root: Path, lines: list[bytes]) -> None:
    path = store_root / "ledger.jsonl"
    os.chmod(path, 0o644)
    path.write_bytes(b"".join(lines))
    os.chmod(path, 0o444)
