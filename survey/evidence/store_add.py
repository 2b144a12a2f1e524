"""Adding originals to the store: bit-exact copies with who, when, which device and where from.

:meth:`StoreAdding.add` is :meth:`survey.evidence.store.EvidenceStore.add`: each file is copied
into a private work folder while SHA-256 and MD5 are computed (:func:`.objects.copy_hashing`),
fsynced, then, under the store lock, renamed into ``objects/`` and recorded by an ``add``
entry (:class:`.store_base.StoreBase` holds the lock and the session).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from survey.errors import EvidenceInputError, InputFileError
from survey.evidence.atomic import fsync_dir
from survey.evidence.canonical import utc_text
from survey.evidence.cases import validate_case_id, validate_risk
from survey.evidence.devices import describe_file
from survey.evidence.objects import Progress, copy_hashing
from survey.evidence.store_base import OBJECTS_DIR, StoreBase, fsync_file, station_record

__all__ = ["StoreAdding", "StoredItem"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredItem:
    """One file added to the store.

    Attributes
    ----------
    sha256, md5 : str
        Hex digests of its bytes.
    size : int
        Bytes.
    path : pathlib.Path
        The stored copy, ``STORE/objects/<sha256[:2]>/<sha256>`` (0444).
    source : pathlib.Path
        The original it was copied from (absolute).
    name : str
        The source as recorded (relative to ``source_root`` when one was given).
    case : str
    new : bool
        Copied now (False: the same bytes were already stored; only the event is recorded).
    seq : int
        The ``add`` entry that records it.
    device : dict
        What the file says about its device (:mod:`survey.evidence.devices`).
    """

    sha256: str
    md5: str
    size: int
    path: Path
    source: Path
    name: str
    case: str
    new: bool
    seq: int
    device: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "sha256": self.sha256,
            "md5": self.md5,
            "size": self.size,
            "path": str(self.path),
            "source": str(self.source),
            "name": self.name,
            "case": self.case,
            "new": self.new,
            "seq": self.seq,
            "device": dict(self.device),
        }


def _expand(files: Iterable[str | os.PathLike[str]] | str | os.PathLike[str]) -> list[Path]:
    """Files as given, folders walked (sorted); absolute paths."""
    if isinstance(files, str | os.PathLike):
        files = [files]
    out: list[Path] = []
    for f in files:
        p = Path(f)
        if p.is_dir():
            for folder, dirs, names in os.walk(p):
                dirs.sort()
                for name in sorted(names):
                    child = Path(folder) / name
                    if child.is_file():
                        out.append(child.absolute())
                    else:
                        log.warning("%s: not a regular file; left out", child)
        elif p.exists():
            out.append(p.absolute())
        else:
            raise InputFileError(f"{p}: no such file or folder; check the path (nothing was added)")
    return out


def _source_name(path: Path, root: Path | None) -> str:
    if root is None:
        return str(path.resolve())
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError as exc:
        raise EvidenceInputError(
            f"{path}: not inside the source root {root}; give a --source-root that holds "
            "every file added"
        ) from exc


class StoreAdding(StoreBase):
    """The part of :class:`~survey.evidence.store.EvidenceStore` that adds originals."""

    def add(
        self,
        files: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
        *,
        case: str,
        risk: str | None = None,
        operator: str | None = None,
        site: str | None = None,
        source_root: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> list[StoredItem]:
        """Copy originals into the store bit-exact and record who, when, which device, case,
        site and source path.

        Each file is read once: copied into a work folder while SHA-256 and MD5 are computed,
        fsynced, then (under the store lock) renamed to ``objects/<sha256[:2]>/<sha256>``
        (0444) unless the same bytes are already stored, and recorded by an ``add`` entry —
        the same file twice is stored once and recorded twice. A new case gets a ``case``
        entry (tier ``risk``, or the store's default with a warning); a different ``risk`` for
        an existing case is recorded as a change of tier. All or nothing: if any file cannot
        be read, vanishes or changes while it is copied, nothing is stored or recorded.

        Parameters
        ----------
        files : path-like or iterable of path-like
            Files, and folders (walked, sorted).
        case : str
            Case id (:func:`survey.evidence.cases.validate_case_id`).
        risk : str, optional
            The case's risk tier (``high``, ``medium``, ``low`` by default).
        operator : str, optional
            Who added them (recorded; the station's host and OS user are recorded too).
        site : str, optional
            The site surveyed.
        source_root : path-like, optional
            Record sources relative to this folder (e.g. the SD card's root) instead of as
            absolute paths; every file must be inside it.
        progress : callable, optional
            ``progress(source, bytes_done, bytes_total)`` after every 1 MiB copied.

        Returns
        -------
        list of StoredItem
            One per file, in the order added.

        Raises
        ------
        StoreReadOnlyError, CaseIdError, EvidenceInputError, InputFileError
        """
        self._require_writable("adding files")
        case = validate_case_id(case)
        if risk is not None:
            validate_risk(risk, self.config.tiers)
        root = Path(source_root).resolve() if source_root is not None else None
        sources = _expand(files)
        if not sources:
            raise EvidenceInputError("no files to add; name files or folders that hold some")
        names = [_source_name(p, root) for p in sources]
        with self._work_dir() as work, ThreadPoolExecutor(max_workers=1) as pool:
            copies = [
                copy_hashing(src, work / f"{i:06d}.part", pool=pool, progress=progress)
                for i, src in enumerate(sources)
            ]
            for c in copies:
                fsync_file(c.copy)
            devices = [describe_file(c.copy) for c in copies]
            items: list[StoredItem] = []
            with self._writing("adding files") as writer:
                self._ensure_case(writer, case, risk, operator)
                placed = [self._place(c.copy, c.sha256) for c in copies]
                for folder in {p.parent for p, new in placed if new}:
                    fsync_dir(folder)
                fsync_dir(self.root / OBJECTS_DIR)
                station = station_record()
                for c, name, device, (path, new) in zip(
                    copies, names, devices, placed, strict=True
                ):
                    entry = writer.append(
                        {
                            "type": "add",
                            "sha256": c.sha256,
                            "md5": c.md5,
                            "size": c.size,
                            "case": case,
                            "site": site,
                            "operator": operator,
                            "source": name,
                            "source_root": str(root) if root is not None else None,
                            "source_mtime": utc_text(
                                dt.datetime.fromtimestamp(c.mtime_ns / 1e9, dt.UTC)
                            ),
                            "stored": new,
                            "device": device,
                            "station": station,
                        }
                    )
                    items.append(
                        StoredItem(
                            c.sha256,
                            c.md5,
                            c.size,
                            path,
                            c.source,
                            name,
                            case,
                            new,
                            entry.seq,
                            device,
                        )
                    )
        return items
