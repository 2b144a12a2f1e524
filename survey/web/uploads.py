"""Checking and keeping an uploaded survey: a flight log and photos, or an OpenDroneMap
project folder as a zip.

Nothing hostile is kept: a log that is not a MAVLink telemetry log, a DataFlash ``.bin`` or a
PX4 ULog; a photo that is not a JPEG or TIFF image; a zip entry with an absolute path, a
``..`` component or a link; a zip that would unpack to more than the configured size or to
too many files. Each refusal is one line naming the file, what is wrong and what to do, and
the job folder is removed. Sizes are counted as the bytes arrive (the declared sizes of a zip
are not trusted). Request bodies over the limit are refused before this (:mod:`.security`).
"""

from __future__ import annotations

import io
import re
import shutil
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from survey.web.errors import UploadRejected

__all__ = [
    "IMAGE_SUFFIXES",
    "LOG_SUFFIXES",
    "MAX_ZIP_ENTRIES",
    "check_image",
    "check_log",
    "remove_folder",
    "safe_name",
    "save_stream",
    "tiny_jpeg",
    "unpack_zip",
]

LOG_SUFFIXES = (".tlog", ".bin", ".ulg")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".tif", ".tiff")
MAX_ZIP_ENTRIES = 50_000
_CHUNK = 1024 * 1024
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str | None, what: str) -> str:
    """The last component of an uploaded file's name, reduced to ``[A-Za-z0-9._-]``."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    clean = _SAFE.sub("_", base).lstrip(".")[:128]
    if not clean or clean in {".", ".."}:
        raise UploadRejected(f"{what} {name!r} has no usable file name; rename it and retry")
    return clean


def save_stream(source: BinaryIO, target: Path, limit: int, *, name: str) -> int:
    """Copy ``source`` to ``target`` in 1 MiB pieces, refusing more than ``limit`` bytes."""
    done = 0
    with target.open("xb") as out:
        while chunk := source.read(_CHUNK):
            done += len(chunk)
            if done > limit:
                raise UploadRejected(
                    f"{name} is larger than {limit / 1024**2:.0f} MiB, the most this server "
                    "takes; split the upload or ask the administrator to raise the limit"
                )
            out.write(chunk)
    return done


def _head(path: Path, n: int = 16) -> bytes:
    with path.open("rb") as f:
        return f.read(n)


def check_log(path: Path, shown: str) -> None:
    """Refuse a file that is not a flight log sitewatch reads (by suffix and first bytes)."""
    suffix = path.suffix.lower()
    head = _head(path)
    if suffix not in LOG_SUFFIXES:
        raise UploadRejected(
            f"{shown}: not a flight log (suffix {suffix or 'none'!r}); upload a MAVLink .tlog, "
            "an ArduPilot DataFlash .bin or a PX4 .ulg"
        )
    ok = (
        (suffix == ".ulg" and head.startswith(b"ULog"))
        or (suffix == ".bin" and head[:2] == b"\xa3\x95")
        # a tlog record: 8-byte timestamp, then a MAVLink 1 (0xFE) or 2 (0xFD) frame
        or (suffix == ".tlog" and len(head) >= 9 and head[8] in (0xFE, 0xFD))
    )
    if not ok:
        raise UploadRejected(
            f"{shown}: its content is not a {suffix} flight log (first bytes {head[:8].hex()}); "
            "upload the log as the ground station or the autopilot wrote it"
        )


def check_image(path: Path, shown: str) -> None:
    """Refuse a file that is not a JPEG or TIFF photo (by suffix, and Pillow reading its
    header)."""
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise UploadRejected(
            f"{shown}: not a photo (suffix {suffix or 'none'!r}); upload JPEG or TIFF images"
        )
    try:
        with Image.open(path) as im:
            fmt = im.format
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UploadRejected(
            f"{shown}: not a readable image ({exc.__class__.__name__}); upload the camera's "
            "original JPEG or TIFF"
        ) from exc
    if fmt not in ("JPEG", "TIFF", "MPO"):
        raise UploadRejected(f"{shown}: a {fmt} image, not JPEG or TIFF; upload the originals")


def _member_path(info: zipfile.ZipInfo, archive: str) -> PurePosixPath | None:
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in path.parts:
        raise UploadRejected(
            f"{archive}: entry {info.filename!r} points outside the archive (absolute path or "
            "'..'); zip the project folder itself"
        )
    mode = (info.external_attr >> 16) & 0o170000
    if mode == 0o120000:
        raise UploadRejected(
            f"{archive}: entry {info.filename!r} is a symbolic link; zip the files themselves"
        )
    if info.is_dir():
        return None
    return path


def unpack_zip(archive: Path, dest: Path, max_bytes: int, *, shown: str) -> list[Path]:
    """Unpack an OpenDroneMap project zip into ``dest`` after checking every entry.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    UploadRejected
        Not a zip, a hostile entry, too many entries, or more than ``max_bytes`` unpacked.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UploadRejected(f"{shown}: not a zip archive ({exc}); zip the ODM folder") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            raise UploadRejected(
                f"{shown}: {len(infos)} entries, more than {MAX_ZIP_ENTRIES}; zip only the "
                "project folder"
            )
        members = [(i, _member_path(i, shown)) for i in infos]
        declared = sum(i.file_size for i, p in members if p is not None)
        if declared > max_bytes:
            raise UploadRejected(_too_big(shown, max_bytes))
        written: list[Path] = []
        total = 0
        for info, rel in members:
            if rel is None:
                continue
            target = dest.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("xb") as out:
                while chunk := src.read(_CHUNK):
                    total += len(chunk)
                    if total > max_bytes:
                        raise UploadRejected(_too_big(shown, max_bytes))
                    out.write(chunk)
            written.append(target)
    return written


def _too_big(shown: str, max_bytes: int) -> str:
    return (
        f"{shown}: unpacks to more than {max_bytes / 1024**3:.1f} GiB, the most this server "
        "takes; upload the orthophoto and DSM folders only"
    )


def remove_folder(folder: Path) -> None:
    """Remove a job folder and everything in it (after a refused upload)."""
    shutil.rmtree(folder, ignore_errors=True)


def tiny_jpeg() -> bytes:
    """A valid 8 x 8 JPEG (for the demo and for tests of uploads)."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (120, 130, 140)).save(buf, format="JPEG")
    return buf.getvalue()
