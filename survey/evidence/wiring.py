"""The evidence store wired into the commands: what ``--store`` records, and the trace model.

``sitewatch simulate-flight``, ``ingest``, ``detect``, ``check``, ``coregister``, ``map`` and
``package`` take ``--store STORE`` (with ``--case CASE`` and ``--operator ID``) and record in
the store's custody ledger what they read and wrote, through this module; a command without
``--store`` does exactly what it did before. Each command's entries are written as one batch
(one lock, one signed checkpoint).

(Over 500 lines, about half documentation: what every command records and the trace model
are kept in this one place, so that each command adds only a few lines.)

What each command records
-------------------------
``simulate-flight``
    One ``derive`` entry ``sitewatch simulate-flight``: inputs the plan's files
    (``sortie-NN.plan``, ``summary.json``) and the site's (the epoch's orthophoto and DSM,
    ``truth.json``); outputs ``flight.tlog``, every photo and ``truth.json``; parameters the
    simulation's (seed, noise, clock offset). The hashes are those ``truth.json`` lists (the
    simulator computed them). ``ingest --store`` then adds the log and the photos as
    originals, which so trace back to the synthetic site they were rendered from.
``ingest``
    The originals — the flight log and every photo read — copied into the store under
    ``--case`` (``add`` entries, with the drone and camera serials the store reads from the
    files, :mod:`survey.evidence.devices`), then one ``derive`` entry ``sitewatch ingest``:
    inputs the log and the photos (their SHA-256 as ingest read them, from ``report.json``),
    the plan's, site's and DEM's files; outputs ``telemetry.csv``, ``track.geojson``,
    ``photos.geojson``, ``geo.txt``, ``report.json`` (and the geotagged copies).
``detect``, ``check``
    One ``derive`` entry whose inputs and outputs are exactly the roles and SHA-256 of
    ``provenance.json``, plus ``provenance.json`` itself as an output; parameters, mode and
    dates from it. Before it, one statement entry per ``--derived-from`` (below).
``coregister``
    Inputs the reference, the target and their DSMs; outputs the aligned rasters, the report
    and its residual layer; the co-registration parameters.
``map``
    Inputs the leads and every layer drawn; outputs the pages (``review.html``,
    ``review_dual.html``, ``review_overview.html``). The tiles, chips and thumbnails under
    ``review_files/`` are re-derivable from the inputs and are not hashed one by one; the
    photos read for thumbnails are reached through ``photos.geojson``.
``package``
    Before the package is built, the ledger entries that trace its lead back to the
    originals (:func:`package_ledger`: the leads file, the lead's inputs and every file given
    to the package, traced by :meth:`EvidenceStore.trace`) with their inclusion proofs, and
    the signed tree head; the package carries both (``ledger_excerpt.jsonl``,
    ``ledger_head.*``, ``report.pdf``). Then one ``derive`` entry for the command: inputs the
    files it read, outputs each package's ``manifest.json``, ``manifest.sha256`` (which covers
    every file of the package), ``report.pdf`` and ``lead.geojson``.

Derived products are recorded, not copied (they can be re-derived from the recorded inputs,
parameters and software); originals are copied.

The trace model
---------------
:meth:`EvidenceStore.trace` walks from a file to the ``derive`` entries that list it among
their outputs, to their inputs, recursively, and collects the ``add`` entries of every
original reached. A lead traces back through ``leads.geojson`` ← ``detect`` ← the epochs'
orthophotos and DSMs and the permits. The rasters were made from the photos by photogrammetry
outside sitewatch (OpenDroneMap, a contractor), so that link is the user's statement, recorded
in one of two ways:

1. ``--derived-from [EPOCH=]SOURCE`` on ``detect`` (``EPOCH`` is ``before`` or ``after``) and
   ``check`` (one survey; ``survey=`` may be left out) records, before the command's own
   entry, a ``derive`` entry with the command :data:`STATEMENT_COMMAND` whose outputs are the
   epoch's rasters and whose inputs are SOURCE: an ingest output folder or its
   ``report.json`` (the photos it read and its ``geo.txt``: OpenDroneMap's inputs; ``ingest
   --store`` put the photos in the store and recorded ``geo.txt`` as derived from the log), a
   SHA-256 (of a file already in the store), a file, or a folder (every file in it). Its
   software is the OpenDroneMap version when the epoch is an OpenDroneMap project folder,
   else "not recorded"; its parameters say it is a statement, name SOURCE as given and keep
   the ODM options. Nothing checks that those photos made those rasters.
2. The rasters added as originals (``sitewatch evidence add --store STORE --case CASE
   orthophoto.tif dsm.tif``), e.g. an orthophoto delivered by a contractor or an epoch with
   no photos: the trace ends at them.

Both may be used; the trace collects both. A statement whose sources the store does not know
(the flight was ingested without ``--store``) is recorded, and said in one warning line: the
trace then ends at those files' hashes.

Writable or nothing
-------------------
A command opens its store and checks it can write to it (:func:`open_command_store`,
:class:`CommandStore`) before it writes anything: a folder that is not a store, a missing store
(``ingest`` creates one, as ``sitewatch evidence add`` does), a store opened read-only or one
this user cannot write is one line and the command writes nothing.

>>> cs = open_command_store("evidence", case="2024-017", operator="op7")  # doctest: +SKIP
>>> result = run_detect(...)  # doctest: +SKIP
>>> entry = record_detect(cs, result)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from survey.errors import (
    EvidenceInputError,
    EvidenceLookupError,
    InputFileError,
    NotAStoreError,
    StoreReadOnlyError,
)
from survey.evidence.cases import validate_case_id
from survey.evidence.ledger import LedgerEntry
from survey.evidence.objects import HashedFile, hash_file
from survey.evidence.store import SOFTWARE, EvidenceStore, FileRef, StoredItem

if TYPE_CHECKING:
    from survey.check import CheckResult
    from survey.coregister import CoregisterOutputs
    from survey.ingest.run import IngestResult
    from survey.pipeline import DetectResult
    from survey.simulate import SimulatedFlight

__all__ = [
    "EPOCH_RASTERS",
    "STATEMENT_COMMAND",
    "CommandStore",
    "DerivedFrom",
    "check_writable",
    "open_command_store",
    "package_ledger",
    "record_check",
    "record_coregister",
    "record_derived_from",
    "record_detect",
    "record_ingest",
    "record_simulate_flight",
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

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def check_writable(store: EvidenceStore) -> None:
    """Raise :class:`StoreReadOnlyError` unless this process can record into ``store``.

    Checked before a command writes anything: the store's ``read_only`` flag (a supervisor's
    view), write access to its folders, and ownership of its ledger (kept 0444 between
    writes; each writer lifts the bit, which needs the owner).
    """
    root = store.root
    if store.read_only:
        raise StoreReadOnlyError(
            f"{root}: opened read-only (a supervisor's view); recording needs the store opened "
            "for writing by an operator or analyst — nothing was written"
        )
    for folder in (root, root / "objects", root / "tmp"):
        if not os.access(folder, os.W_OK | os.X_OK):
            raise StoreReadOnlyError(
                f"{root}: {folder.name}/ is not writable by this user; ask the store's owner for "
                "write access, or run without --store — nothing was written"
            )
    euid = os.geteuid()
    if euid != 0 and store.ledger_path.stat().st_uid != euid:
        raise StoreReadOnlyError(
            f"{store.ledger_path}: owned by another user, so this user cannot append to it; run "
            "the command as the store's owner, or without --store — nothing was written"
        )


@dataclass(frozen=True)
class CommandStore:
    """An evidence store a command records into, with the case and operator it records.

    Making one checks that the store can be written (:func:`check_writable`) and that the
    case id is valid, so a command makes it before it writes anything.

    Attributes
    ----------
    store : EvidenceStore
    case : str or None
        The case the entries belong to (required by :func:`record_ingest`).
    operator : str or None
        Who ran the command (recorded in every entry).
    """

    store: EvidenceStore
    case: str | None = None
    operator: str | None = None

    def __post_init__(self) -> None:
        if self.case is not None:
            validate_case_id(self.case)
        check_writable(self.store)

    @property
    def root(self) -> Path:
        """The store folder."""
        return self.store.root

    def record(
        self,
        command: str,
        *,
        inputs: Mapping[str, FileRef | Sequence[FileRef] | None],
        outputs: Mapping[str, FileRef | None],
        parameters: Mapping[str, Any],
        software: str | None = None,
    ) -> LedgerEntry:
        """One ``derive`` entry (:meth:`EvidenceStore.record_derivation`); inputs and outputs
        that are None or empty lists are left out.

        Parameters
        ----------
        command : str
            What made the outputs (``"sitewatch map"``).
        inputs : mapping
            Role → a file (hashed now), a SHA-256, a :class:`HashedFile` (not read again), or
            a list of those.
        outputs : mapping
            Role → the file written (hashed now), or a :class:`HashedFile` with the hash
            the command computed when it wrote it (not read again).
        parameters : mapping
        software : str, optional
            Default ``"sitewatch <version>"``.
        """
        ins = {
            role: (list(v) if isinstance(v, list | tuple) else v)
            for role, v in inputs.items()
            if v is not None and not (isinstance(v, list | tuple) and not v)
        }
        outs = {role: p for role, p in outputs.items() if p is not None}
        return self.store.record_derivation(
            command=command,
            inputs=ins,
            outputs=outs,
            parameters=parameters,
            operator=self.operator,
            case=self.case,
            software=software or SOFTWARE,
        )


def open_command_store(
    path: str | os.PathLike[str],
    *,
    case: str | None = None,
    operator: str | None = None,
    create: bool = False,
) -> CommandStore:
    """Open the store a command was given with ``--store`` and check it can be written.

    Parameters
    ----------
    path : path-like
        The store folder.
    case, operator : str, optional
        Recorded in the command's entries.
    create : bool
        Create the store when ``path`` is missing or an empty folder (``ingest``, as
        ``sitewatch evidence add`` does); the other commands record derivations and need the
        store their inputs were recorded in.

    Raises
    ------
    CaseIdError
        A bad case id (checked before the store is created).
    NotAStoreError
        ``path`` is not a store (or is missing or empty and ``create`` is False: the hint
        then says to give the store the inputs were recorded in, as a command that only
        records derivations cannot start one).
    StoreReadOnlyError
        The store cannot be written by this user.
    """
    if case is not None:
        validate_case_id(case)
    root = Path(path).absolute()
    if not create and (not root.exists() or (root.is_dir() and not any(root.iterdir()))):
        what = "no such folder" if not root.exists() else "an empty folder"
        raise NotAStoreError(
            f"{root}: {what}, not an evidence store; this command records what it made from "
            "files in a store, so give the store they were recorded in (by `sitewatch ingest "
            "--store` or `sitewatch evidence add --store`), or run without --store — nothing "
            "was written"
        )
    return CommandStore(EvidenceStore.open(root, create=create), case, operator)


# ------------------------------------------------------------------ statements (derived from)


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
            if not _HEX64.fullmatch(sha):
                raise EvidenceInputError(
                    f"--derived-from {given}: {path} lists {sha!r}, not a SHA-256; run sitewatch "
                    "ingest again"
                )
    return inputs


def _resolve_one(epoch: str, value: str, given: str) -> DerivedFrom:
    if _HEX64.fullmatch(value):
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


# ------------------------------------------------------------------ commands


def record_ingest(
    cs: CommandStore, result: IngestResult, *, risk: str | None = None, site: str | None = None
) -> tuple[list[StoredItem], LedgerEntry]:
    """Add an ingest's originals (log, photos) to the store and record its derivation.

    Parameters
    ----------
    cs : CommandStore
        With the case the originals are filed under.
    result : IngestResult
        What :func:`survey.ingest.run_ingest` returned.
    risk : str, optional
        The case's risk tier (``--risk``).
    site : str, optional
        The site surveyed (recorded in the ``add`` entries).

    Returns
    -------
    (list of StoredItem, LedgerEntry)
        The originals added (log first, then the photos by name) and the ``derive`` entry.

    Raises
    ------
    EvidenceInputError
        No case.
    """
    if cs.case is None:
        raise EvidenceInputError(
            "ingest --store copies the log and the photos into the store under a case; give "
            "--case CASE"
        )
    report = result.report
    inputs = report["inputs"]
    read: dict[Path, str] = {}  # original → SHA-256 as ingest read it
    if "log" in inputs:
        read[Path(inputs["log"]["path"])] = str(inputs["log"]["sha256"])
    photos = (
        sorted((p.image for p in result.geotag.photos), key=lambda rec: rec.name)
        if result.geotag is not None
        else []
    )
    for rec in photos:
        read[Path(rec.path).absolute()] = rec.sha256
    # the outputs with the SHA-256 ingest computed when it wrote them (report.json, written
    # last, is hashed now): the geotagged copies are a flight's worth of photos
    written = report.get("outputs") or {}
    outputs: dict[str, FileRef | None] = {
        name: _as_written(path, (written.get(name) or {}).get("sha256"))
        for name, path in result.outputs.items()
    }
    copy_hashes = (written.get("geotagged_copies") or {}).get("sha256") or {}
    for copy in result.geotagged_copies:
        outputs[f"geotagged_copies/{copy.name}"] = _as_written(copy, copy_hashes.get(copy.name))
    plan = inputs.get("plan") or {}
    with cs.store.batch():
        items = cs.store.add(list(read), case=cs.case, risk=risk, operator=cs.operator, site=site)
        for item in items:
            then = read.get(item.source)
            if then is not None and then != item.sha256:
                log.warning(
                    "%s: changed between ingest reading it (SHA-256 %s…) and the store copying "
                    "it (%s…); the store holds the later bytes",
                    item.source,
                    then[:16],
                    item.sha256[:16],
                )
        entry = cs.record(
            "sitewatch ingest",
            inputs={
                "log": inputs.get("log", {}).get("sha256"),
                "photos": [rec.sha256 for rec in photos],
                "plan": sorted((plan.get("sha256") or {}).values()),
                "site": (inputs.get("site") or {}).get("sha256"),
                "dem": (inputs.get("dem") or {}).get("sha256"),
            },
            outputs=outputs,
            parameters=report.get("parameters") or {},
        )
    return items, entry


def record_simulate_flight(
    cs: CommandStore, flight: SimulatedFlight, *, plan: Path, site: Path
) -> LedgerEntry:
    """Record a ``sitewatch simulate-flight`` run (module docstring).

    Parameters
    ----------
    cs : CommandStore
    flight : SimulatedFlight
        What :func:`survey.simulate.simulate_flight` returned.
    plan, site : Path
        The plan and site folders it was given.

    Returns
    -------
    LedgerEntry
        The ``derive`` entry.
    """
    truth = flight.truth
    ins = truth.get("inputs") or {}
    where = truth.get("site") or {}
    summary = plan / "summary.json"
    site_truth = site / "truth.json"
    inputs: dict[str, FileRef | Sequence[FileRef] | None] = {
        "plan": [
            _as_written(plan / name, sha) for name, sha in sorted((ins.get("plan") or {}).items())
        ],
        "plan_summary": summary if summary.is_file() else None,
        "orthophoto": _as_written(Path(where["orthophoto"]), ins.get("orthophoto_sha256"))
        if where.get("orthophoto")
        else None,
        "dsm": _as_written(Path(where["dsm"]), ins.get("dsm_sha256")) if where.get("dsm") else None,
        "site_truth": _as_written(site_truth, where.get("truth_sha256"))
        if site_truth.is_file()
        else None,
    }
    outs = truth.get("outputs") or {}
    photo_hashes = outs.get("photos") or {}
    outputs: dict[str, FileRef | None] = {
        "flight.tlog": _as_written(flight.tlog, (outs.get("flight.tlog") or {}).get("sha256")),
    }
    for photo in flight.photos:
        outputs[f"photos/{photo.name}"] = _as_written(photo, photo_hashes.get(photo.name))
    outputs["truth.json"] = flight.truth_json
    return cs.record(
        "sitewatch simulate-flight",
        inputs=inputs,
        outputs=outputs,
        parameters={
            "simulation": truth.get("parameters"),
            "camera_offset_s": flight.clock_offset_s,
            "camera": (truth.get("camera") or {}).get("preset"),
            "epoch": where.get("epoch"),
            "note": "a simulated flight over a synthetic site, not a real one",
        },
    )


def _as_written(path: Path, sha256: Any) -> FileRef:
    """``path`` with the SHA-256 its command recorded (not read again), or ``path`` alone
    (hashed when recorded) when there is none."""
    return (
        HashedFile(path, sha256) if isinstance(sha256, str) and _HEX64.fullmatch(sha256) else path
    )


def _provenance(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _record_provenance(
    cs: CommandStore,
    command: str,
    provenance_json: Path,
    derived_from: Sequence[DerivedFrom],
    epoch_records: Mapping[str, Mapping[str, Any] | None],
) -> LedgerEntry:
    """Statements, then one ``derive`` entry with exactly provenance.json's hashes."""
    prov = _provenance(provenance_json)
    ins = prov["inputs"]
    read = {role: str(rec["sha256"]) for role, rec in ins.items()}
    with cs.store.batch():
        for statement in derived_from:
            rasters = {
                role: Path(ins[role]["path"])
                for role in EPOCH_RASTERS[statement.epoch]
                if role in ins
            }
            record_derived_from(
                cs,
                statement,
                rasters,
                expected=read,
                epoch_record=epoch_records.get(statement.epoch),
            )
        outputs: dict[str, FileRef | None] = {
            name: HashedFile(Path(rec["path"]), str(rec["sha256"]))
            for name, rec in prov["outputs"].items()
        }
        outputs["provenance.json"] = provenance_json
        entry = cs.record(
            command,
            inputs=read,
            outputs=outputs,
            parameters={
                k: prov.get(k)
                for k in ("mode", "parameters", "before_date", "after_date", "n_leads")
            }
            | {k: prov[k] for k in ("coregistration", "alignment", "dtm") if k in prov},
        )
    return entry


def record_detect(
    cs: CommandStore, result: DetectResult, derived_from: Sequence[DerivedFrom] = ()
) -> LedgerEntry:
    """Record a ``sitewatch detect`` run (and its ``--derived-from`` statements).

    The ``derive`` entry's inputs and outputs are the roles and SHA-256 of the run's
    ``provenance.json`` (outputs: every file it lists, and ``provenance.json`` itself).

    The hashes are provenance.json's, recorded without reading the rasters again
    (:class:`HashedFile`); only provenance.json itself is hashed now.

    Raises
    ------
    InputFileError
        A file provenance.json lists is no longer there.
    """
    prov = _provenance(result.provenance_json)
    epochs = prov.get("epochs") or {}
    return _record_provenance(cs, "sitewatch detect", result.provenance_json, derived_from, epochs)


def record_check(
    cs: CommandStore, result: CheckResult, derived_from: Sequence[DerivedFrom] = ()
) -> LedgerEntry:
    """Record a ``sitewatch check`` run (and its ``--derived-from`` statements), as
    :func:`record_detect` does."""
    prov = _provenance(result.provenance_json)
    return _record_provenance(
        cs,
        "sitewatch check",
        result.provenance_json,
        derived_from,
        {"survey": prov.get("epoch")},
    )


def record_coregister(
    cs: CommandStore,
    outputs: CoregisterOutputs,
    *,
    inputs: Mapping[str, Path | None],
    parameters: Mapping[str, Any],
) -> LedgerEntry:
    """Record a ``sitewatch coregister`` run: ``inputs`` (reference, target, DSMs), the
    aligned rasters, report and residuals written, and the parameters with the model found."""
    rep = outputs.report
    found = {
        k: rep.get(k)
        for k in ("model", "shift_x_px", "shift_y_px", "rmse_px", "vertical_offset_m", "confidence")
    }
    return cs.record(
        "sitewatch coregister",
        inputs=dict(inputs),
        outputs={
            "aligned": outputs.out,
            "aligned_dsm": outputs.out_dsm,
            "report": outputs.report_path,
            "residuals": outputs.residuals_path,
        },
        parameters={**parameters, "result": _finite(found)},
    )


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats as None (a ledger entry is JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _from_a_flight(entry: Mapping[str, Any]) -> bool:
    """An ``add`` entry of a flight log or a photo (not a raster, not another file).

    Stores written before rasters had their own kind recorded a GeoTIFF as a ``photo`` of
    format ``TIFF`` without a camera make or time; such an entry is not a photo either.
    """
    if entry.get("type") != "add":
        return False
    device = entry.get("device") or {}
    kind = device.get("kind")
    if kind == "photo" and device.get("format") == "TIFF":
        return bool(device.get("make") or device.get("camera_time"))
    return kind in ("flight log", "photo")


def package_ledger(
    cs: CommandStore, hashes: Iterable[str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The ledger excerpt and signed head an evidence package carries.

    Parameters
    ----------
    cs : CommandStore
    hashes : iterable of str
        SHA-256 of what the package is made from: the leads file, the lead's inputs, the
        rasters and layers given. Those the ledger does not name are left out.

    Returns
    -------
    (list of dict, dict)
        :meth:`EvidenceStore.ledger_excerpt` of the known hashes (every entry with its
        inclusion proof) and :meth:`EvidenceStore.signed_head` (with ``signed_message`` and
        ``public_key_pem``), taken under one lock so that the proofs are against that head:
        ``ledger_excerpt=`` and ``signed_head=`` of :func:`maps.build_evidence_package`.

    Raises
    ------
    EvidenceLookupError
        The ledger names none of ``hashes``.
    """
    wanted = list(dict.fromkeys(h.lower() for h in hashes if h))
    store = cs.store
    with store.batch():
        state = store.state()
        known = [h for h in wanted if state.knows(h)]
        if not known:
            raise EvidenceLookupError(
                f"{store.root}: its ledger names neither the leads file nor any input of the "
                "lead; record the detection with `sitewatch detect --store` (or add the "
                "rasters with `sitewatch evidence add`) first — nothing was written"
            )
        excerpt = store.ledger_excerpt(known)
        head = store.signed_head()
    if not any(_from_a_flight(e["entry"]) for e in excerpt):
        log.warning(
            "the ledger excerpt of %s reaches no original photo or flight log: the lead's "
            "rasters are not linked to a flight (record it with detect --derived-from "
            "EPOCH=INGEST_FOLDER, or add the rasters as originals)",
            store.root,
        )
    return excerpt, head
