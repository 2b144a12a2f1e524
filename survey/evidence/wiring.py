"""The evidence store wired into the commands: what ``--store`` records, and the trace model.

``sitewatch simulate-flight``, ``ingest``, ``detect``, ``check``, ``coregister``, ``map`` and
``package`` take ``--store STORE`` (with ``--case CASE`` and ``--operator ID``) and record in
the store's custody ledger what they read and wrote, through this module; a command without
``--store`` does exactly what it did before. Each command's entries are written as one batch
(one lock, one signed checkpoint).

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

Modules
-------
:mod:`survey.evidence.command_store` opens a command's store and checks it can be written
before the command writes anything (:func:`open_command_store`, :class:`CommandStore`:
writable or nothing); :mod:`survey.evidence.derived_from` parses and records
``--derived-from`` statements; this module holds what each command records (``record_*``)
and what a package carries (:func:`package_ledger`). Every name is importable from here.

>>> cs = open_command_store("evidence", case="2024-017", operator="op7")  # doctest: +SKIP
>>> result = run_detect(...)  # doctest: +SKIP
>>> entry = record_detect(cs, result)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from survey.errors import EvidenceInputError, EvidenceLookupError
from survey.evidence.command_store import CommandStore, check_writable, open_command_store
from survey.evidence.derived_from import (
    EPOCH_RASTERS,
    HEX64_ANY_CASE,
    STATEMENT_COMMAND,
    DerivedFrom,
    record_derived_from,
    resolve_derived_from,
)
from survey.evidence.ledger import LedgerEntry
from survey.evidence.objects import HashedFile
from survey.evidence.store import FileRef, StoredItem

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
        HashedFile(path, sha256)
        if isinstance(sha256, str) and HEX64_ANY_CASE.fullmatch(sha256)
        else path
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
