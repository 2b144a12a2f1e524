"""``--derived-from``: the user's statement that an epoch's rasters were made from these files.

The rasters of an epoch were made from the photos by photogrammetry outside sitewatch
(OpenDroneMap, a contractor), so the link from a lead back to the flight is the user's
statement. :func:`resolve_derived_from` parses ``--derived-from [EPOCH=]SOURCE`` and hashes
what it names (an ingest output folder or its ``report.json``, a SHA-256, a file or a
folder); :func:`record_derived_from` records it as a ``derive`` entry with the command
:data:`STATEMENT_COMMAND` whose outputs are the epoch's rasters (see "The trace model" in
:mod:`survey.evidence.wiring`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from survey.errors import EvidenceInputError, InputFileError
from survey.evidence.command_store import CommandStore
from survey.evidence.ledger import LedgerEntry
from survey.evidence.objects import HashedFile, hash_file
from survey.evidence.store import FileRef

__all__ = [
    "EPOCH_RASTERS",
    "HEX64_ANY_CASE",
    "STATEMENT_COMMAND",
    "DerivedFrom",
    "record_derived_from",
    "resolve_derived_from",
]

log = logging.getLogger(__name__)

STATEMENT_COMMAND = "photogrammetry outside sitewatch (stated by the user)"
"""The ``command`` of a ``--derived-from`` statement entry."""

EPOCH_RASTERS: dict[str, tuple[str, ...]] = {
    "before": ("before_ortho", "before_dsm"),
    "after": ("after_ortho", "after_dsm"),
    "survey": ("ortho", "dsm", "dtm"),
}
"""The rasters of each epoch, as ``provenance.json`` names them (the statement's outputs)."""

HEX64_ANY_CASE = re.compile(r"[0-9a-fA-F]{64}")
"""A SHA-256 as a user may type it (either case)."""


@dataclass(frozen=True)
class DerivedFrom:
    """The user's statement that an epoch's rasters were made from these files.

    Attributes
    ----------
    epoch : str
        ``"before"``, ``"after"`` or ``"survey"`` (:data:`EPOCH_RASTERS`).
    source : str
        SOURCE as given.
    kind : str
        ``"ingest"`` (an ingest output folder or its report.json), ``"sha256"``, ``"file"``
        or ``"folder"``.
    inputs : dict of str to list of str
        Role → SHA-256s (``photos`` and ``geo.txt`` of an ingest; ``file``; ``files``).
    note : str
        Added to the statement's parameters (the demo says what its stand-in is).
    """

    epoch: str
    source: str
    kind: str
    inputs: Mapping[str, Sequence[str]]
    note: str = ""

    def hashes(self) -> list[str]:
        """Every SHA-256 of the sources."""
        return [h for values in self.inputs.values() for h in values]


def _ingest_report(path: Path) -> dict[str, Any] | None:
    """The content of an ingest ``report.json``, or None when ``path`` is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if isinstance(data, dict) and data.get("command") == "ingest":
        return data
    return None


def _from_ingest(report: dict[str, Any], path: Path, given: str) -> dict[str, list[str]]:
    inputs: dict[str, list[str]] = {}
    try:
        photos = (report.get("inputs") or {}).get("images") or {}
        shas = [str(s) for s in (photos.get("sha256") or {}).values()]
        if shas:
            inputs["photos"] = shas
        geo = (report.get("outputs") or {}).get("geo.txt")
        if geo:
            inputs["geo.txt"] = [str(geo["sha256"])]
    except (AttributeError, KeyError, TypeError) as exc:
        raise EvidenceInputError(
            f"--derived-from {given}: {path} is a damaged ingest report ({exc}); run "
            "sitewatch ingest again or give the photos' folder"
        ) from exc
    if not inputs:
        raise EvidenceInputError(
            f"--derived-from {given}: the ingest in {path} read no photos, so no raster was made "
            "from it; give the ingest of the flight's photos"
        )
    for values in inputs.values():
        for sha in values:
            if not HEX64_ANY_CASE.fullmatch(sha):
                raise EvidenceInputError(
                    f"--derived-from {given}: {path} lists {sha!r}, not a SHA-256; run sitewatch "
                    "ingest again"
                )
    return inputs


def _resolve_one(epoch: str, value: str, given: str) -> DerivedFrom:
    if HEX64_ANY_CASE.fullmatch(value):
        return DerivedFrom(epoch, given, "sha256", {"original": [value.lower()]})
    path = Path(value)
    if path.is_dir():
        report = _ingest_report(path / "report.json")
        if report is not None:
            return DerivedFrom(
                epoch, given, "ingest", _from_ingest(report, path / "report.json", given)
            )
        files = sorted(p for p in path.rglob("*") if p.is_file())
        if not files:
            raise EvidenceInputError(
                f"--derived-from {given}: {path} holds no file; give the photos' folder, an "
                "ingest output folder, a file or a SHA-256"
            )
        return DerivedFrom(epoch, given, "folder", {"files": [hash_file(p)[0] for p in files]})
    if path.is_file():
        report = _ingest_report(path) if path.name == "report.json" else None
        if report is not None:
            return DerivedFrom(epoch, given, "ingest", _from_ingest(report, path, given))
        return DerivedFrom(epoch, given, "file", {"file": [hash_file(path)[0]]})
    raise InputFileError(
        f"--derived-from {given}: {value} is no file or folder and not a SHA-256; give an "
        "ingest output folder, the photos' folder, a file or a SHA-256"
    )


def resolve_derived_from(values: Iterable[str], *, epochs: Sequence[str]) -> list[DerivedFrom]:
    """Parse ``--derived-from [EPOCH=]SOURCE`` values and hash what they name.

    Parameters
    ----------
    values : iterable of str
        As given on the command line.
    epochs : sequence of str
        The command's epochs (``("before", "after")`` for detect, ``("survey",)`` for check).
        With one epoch, ``EPOCH=`` may be left out.

    Returns
    -------
    list of DerivedFrom

    Raises
    ------
    EvidenceInputError
        An unknown or missing epoch, an ingest report that read no photos.
    InputFileError
        SOURCE is neither a file, a folder nor a SHA-256.
    """
    out: list[DerivedFrom] = []
    for given in values:
        name, sep, rest = given.partition("=")
        if sep and name in EPOCH_RASTERS:
            if name not in epochs:
                raise EvidenceInputError(
                    f"--derived-from {given}: this command has no {name} epoch; use "
                    + " or ".join(f"{e}=SOURCE" for e in epochs)
                )
            epoch, value = name, rest
        elif len(epochs) == 1:
            epoch, value = epochs[0], given
        else:
            raise EvidenceInputError(
                f"--derived-from {given}: say which epoch the rasters are of: "
                + " or ".join(f"{e}={given}" for e in epochs)
            )
        if not value:
            raise EvidenceInputError(
                f"--derived-from {given}: no source after '='; give an ingest output folder, a "
                "file, a folder or a SHA-256"
            )
        out.append(_resolve_one(epoch, value, given))
    return out


def record_derived_from(
    cs: CommandStore,
    statement: DerivedFrom,
    rasters: Mapping[str, Path],
    *,
    expected: Mapping[str, str] | None = None,
    epoch_record: Mapping[str, Any] | None = None,
) -> LedgerEntry:
    """Record a ``--derived-from`` statement: ``rasters`` made from ``statement``'s files.

    Parameters
    ----------
    cs : CommandStore
    statement : DerivedFrom
    rasters : mapping of str to Path
        Role → raster file: the statement's outputs.
    expected : mapping of str to str, optional
        Role → the SHA-256 the command computed when it read the raster: recorded as it is,
        without reading the (possibly multi-GB) raster again. A raster without one is hashed
        now.
    epoch_record : mapping, optional
        The epoch's record (:meth:`survey.ingest.odm.SurveyEpoch.record`): its OpenDroneMap
        version names the software, its options are kept.

    Returns
    -------
    LedgerEntry
        The statement's ``derive`` entry.
    """
    record = dict(epoch_record or {})
    version = record.get("odm_version")
    software = f"OpenDroneMap {version}" if version else "not recorded (outside sitewatch)"
    state = cs.store.state()
    if not any(state.knows(h) for h in statement.hashes()):
        log.warning(
            "--derived-from %s: %s does not know these files, so the trace of the %s epoch ends "
            "at their hashes; ingest the flight with --store %s first",
            statement.source,
            cs.root,
            statement.epoch,
            cs.root,
        )
    parameters: dict[str, Any] = {
        "statement": (
            f"the {statement.epoch} epoch's rasters were made from these files by photogrammetry "
            "outside sitewatch (stated by the user; not checked)"
        ),
        "epoch": statement.epoch,
        "derived_from": statement.source,
        "source_kind": statement.kind,
        "odm_options": record.get("odm_options"),
        "odm_project": record.get("root") if version else None,
    }
    if statement.note:
        parameters["note"] = statement.note
    known = expected or {}
    outputs: dict[str, FileRef | None] = {
        role: HashedFile(path, known[role]) if role in known else path
        for role, path in rasters.items()
    }
    return cs.record(
        STATEMENT_COMMAND,
        inputs={role: list(v) for role, v in statement.inputs.items()},
        outputs=outputs,
        parameters=parameters,
        software=software,
    )
