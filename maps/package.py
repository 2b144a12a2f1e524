"""The evidence package of one lead: a folder a reviewer can check with ``sha256sum`` alone.

Layout of a package folder (``DIR`` for one lead, ``DIR/<lead slug>/`` for ``--all``)::

    lead.geojson          the lead as an RFC 7946 FeatureCollection (WGS84)
    before.png            before chip: scale bar, north arrow, coordinates, survey date
    after.png             after chip, same frame
    profile.png           DSM heights across the structure (only when a DSM is given)
    permits.geojson       permit footprints near the lead (only when permits are given)
    map.html              offline swipe map centred on the lead, with map_files/ beside it
    map_files/...         vendored Leaflet + plugins (with licences), tiles around the lead
    README.txt            what the files are and how to verify them
    manifest.json         lead, inputs and their hashes, software, time, every file's size
                          and SHA-256, and ``ledger_excerpt``
    manifest.sha256       ``sha256sum`` lines (two spaces, relative paths) for every file
                          above, manifest.json included

A single survey checked against the permit atlas (``sitewatch check``; ``ortho`` instead of
``before_ortho`` and ``after_ortho``): ``survey.png`` is the one chip, ``profile.png`` draws
the survey's DSM (``dsm``), ``existing.geojson`` holds the existing buildings near the lead
(when ``existing`` is given), and the inputs are checked against the lead's ``ortho`` and
``dsm`` hashes.

Co-registered after epoch: leads are in the before (reference) frame. With
``after_registered`` (and ``after_registered_dsm``), the rasters ``sitewatch detect`` writes
on the before grid, ``after.png``, the after tiles of ``map.html`` and the after curve of
``profile.png`` come from them and are labelled "after (co-registered to before)".
``manifest.json`` then lists, besides the original ``inputs`` (checked against the lead's
hashes as before), ``derived``: each co-registered raster with its SHA-256, the role
``"derived: co-registered after epoch"``, the original it derives from (role, file, SHA-256,
and whether that hash is the lead's) and the co-registration model.

``cd DIR && sha256sum -c manifest.sha256`` verifies the package; changing any byte of any
listed file makes it fail.

Seam for the evidence store: ``manifest.json`` has a ``ledger_excerpt`` key, ``null`` today.
When the custody ledger exists, the caller passes the ledger entries of the lead's inputs
(``build_evidence_package(..., ledger_excerpt=[...])``, JSON-ready dicts, each with the hash of
the previous entry); they are written under that key (and, as ``ledger_excerpt.jsonl``, as a
file covered by ``manifest.sha256``). Nothing else in the layout changes.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shapely.geometry import mapping

from change_detection.leads import Lead, leads_to_feature_collection
from maps.assets import LIBRARIES, make_work_dir, replace_dir, write_text_atomic
from maps.chips import render_chip, render_height_profile
from maps.derived import REGISTERED_LABEL, derived_record, file_sha256
from maps.errors import PackageError
from maps.review import Feature, render_lead_view

__all__ = [
    "MANIFEST_FORMAT",
    "EvidencePackage",
    "build_evidence_package",
    "sha256_of",
]

log = logging.getLogger(__name__)

#: Value of ``manifest.json["format"]``.
MANIFEST_FORMAT = "sitewatch-evidence-package/1"


@dataclass(frozen=True)
class EvidencePackage:
    """A written evidence package.

    Attributes
    ----------
    directory : Path
        The package folder.
    lead_id : str
    files : tuple of Path
        Every file of the package (absolute), manifest files included.
    manifest : Path
        ``manifest.json``.
    checksums : Path
        ``manifest.sha256`` (verify with ``cd directory && sha256sum -c manifest.sha256``).
    """

    directory: Path
    lead_id: str
    files: tuple[Path, ...]
    manifest: Path
    checksums: Path


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file (cached by path, size and modification time within a process)."""
    return file_sha256(path)


def _software_version() -> str:
    try:
        return importlib.metadata.version("sitewatch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _inputs(
    lead: Lead, given: Mapping[str, Path | None], verify: bool
) -> dict[str, dict[str, Any]]:
    """Inputs of the lead: recorded hash (from detection), hash now, and whether they match."""
    out: dict[str, dict[str, Any]] = {}
    for role in sorted(set(lead.input_hashes) | {r for r, p in given.items() if p is not None}):
        path = given.get(role)
        recorded = lead.input_hashes.get(role)
        entry: dict[str, Any] = {"sha256": recorded, "file": None, "sha256_now": None}
        if path is not None:
            now = sha256_of(path)
            entry.update(file=path.name, sha256_now=now, matches=recorded in (None, now))
            if verify and recorded is not None and recorded != now:
                raise PackageError(
                    f"{path}: SHA-256 {now[:12]}… differs from the {role} hash "
                    f"{recorded[:12]}… recorded in lead {lead.lead_id}; package the lead with "
                    "the files it was detected from"
                )
        out[role] = entry
    return out


def _derived(
    lead: Lead, registered: Mapping[str, Path | None], verify: bool
) -> dict[str, dict[str, Any]]:
    """Lineage of the co-registered rasters shown in place of the after originals."""
    out: dict[str, dict[str, Any]] = {}
    for name, (path, original_role) in {
        "after_registered": (registered.get("after_registered"), "after_ortho"),
        "after_registered_dsm": (registered.get("after_registered_dsm"), "after_dsm"),
    }.items():
        if path is None:
            continue
        rec = derived_record(path, original_role)
        recorded = lead.input_hashes.get(original_role)
        src = rec["derived_from"]["sha256"]
        rec["derived_from"]["matches_lead"] = None if recorded is None else src == recorded
        if verify and recorded is not None and src is not None and src != recorded:
            raise PackageError(
                f"{path}: derived from {original_role.replace('_', ' ')} SHA-256 {src[:12]}…, "
                f"but lead {lead.lead_id} was detected from {recorded[:12]}…; pass the "
                "after_registered files of the same detection run"
            )
        out[name] = rec
    return out


def _related_permits(lead: Lead, permits: Sequence[Feature]) -> list[Feature]:
    """Permits (or existing buildings) named by the lead or within about 20 m of it."""
    ids = set(lead.permit_ids)
    zone = lead.geometry.buffer(0.0002)  # ~20 m around the lead
    out = []
    for geom, props in permits:
        if geom is None:
            continue
        pid = next(
            (str(props[k]) for k in ("permit_id", "building_id", "id") if props.get(k) is not None),
            "",
        )
        if pid in ids or geom.intersects(zone):
            out.append((geom, props))
    return out


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _readme(
    lead: Lead,
    has_profile: bool,
    has_permits: bool,
    registered: bool = False,
    single: bool = False,
    has_existing: bool = False,
) -> str:
    lines = [
        f"sitewatch evidence package — lead {lead.lead_id} ({lead.lead_class})",
        "",
        "lead.geojson     the lead (WGS84, RFC 7946) with its class, reasons, measures, survey",
        "                 dates and the SHA-256 of the inputs it was detected from",
    ]
    if single:
        lines.append(
            "survey.png       orthophoto chip of the survey (scale bar, north arrow, date)"
        )
    else:
        lines += [
            "before.png       orthophoto chip of the first survey (scale bar, north arrow, date)",
            "after.png        the same frame in the second survey",
        ]
    if registered:
        lines += [
            "                 (co-registered to the first survey's grid, so the outline fits",
            "                 both; manifest.json 'derived' names the original and its hash)",
        ]
    if has_profile:
        lines.append("profile.png      DSM heights along a transect across the structure")
    if has_permits:
        lines.append("permits.geojson  permit footprints near the lead")
    if has_existing:
        lines.append("existing.geojson existing buildings of the atlas near the lead")
    lines += [
        "map.html         offline map of the lead (open in a browser; needs map_files/)",
        "manifest.json    inputs and their hashes, software version, time, every file's hash",
        "manifest.sha256  checksums of every file",
        "",
        "Verify: cd into this folder and run   sha256sum -c manifest.sha256",
        "Every line must say OK; any changed byte in any file makes the check fail.",
        "",
    ]
    return "\n".join(lines)


def build_evidence_package(
    lead: Lead,
    *,
    before_ortho: Path | None = None,
    after_ortho: Path | None = None,
    before_dsm: Path | None = None,
    after_dsm: Path | None = None,
    permits: Sequence[Feature] | None = None,
    out_dir: Path,
    before_date: str | None = None,
    after_date: str | None = None,
    verify_inputs: bool = True,
    ledger_excerpt: Sequence[Mapping[str, Any]] | None = None,
    after_registered: Path | None = None,
    after_registered_dsm: Path | None = None,
    ortho: Path | None = None,
    dsm: Path | None = None,
    existing: Sequence[Feature] | None = None,
) -> EvidencePackage:
    """Write the evidence package of ``lead`` into ``out_dir`` (see the module docstring).

    Parameters
    ----------
    lead : Lead
    before_ortho, after_ortho : Path
        Orthophotos of the two epochs.
    before_dsm, after_dsm : Path, optional
        DSMs; with at least one, ``profile.png`` is drawn.
    permits : sequence of (geometry WGS84, properties), optional
        All permits of the site; those near the lead or named by it are packaged.
    out_dir : Path
        The package folder. It is built in a temporary folder beside it and renamed into
        place; an existing folder is replaced only if it is an earlier package (it has a
        ``manifest.json``) or empty.
    before_date, after_date : str, optional
        Survey dates when the lead carries none.
    verify_inputs : bool
        Refuse inputs whose SHA-256 differs from the hash recorded in the lead.
    ledger_excerpt : sequence of dict, optional
        Custody-ledger entries of the lead's inputs (from the evidence store, when it exists).
    after_registered, after_registered_dsm : Path, optional
        The co-registered after orthophoto and DSM written by ``sitewatch detect``; when
        given, the after chip, map tiles and profile curve come from them (see the module
        docstring). With ``verify_inputs``, a derivative whose recorded original hash differs
        from the lead's is refused.
    ortho, dsm : Path, optional
        The orthophoto and DSM of a single survey checked against the permit atlas
        (``sitewatch check``), instead of the before and after epochs.
    existing : sequence of (geometry WGS84, properties), optional
        Existing buildings of the atlas; those near the lead or named by it are packaged.

    Returns
    -------
    EvidencePackage

    Raises
    ------
    PackageError
        An input is missing or does not match the lead's recorded hash, ``out_dir`` holds
        something other than a package, or neither ``ortho`` nor both ``before_ortho`` and
        ``after_ortho`` are given.
    """
    out_dir = Path(out_dir)
    single = _single(before_ortho, after_ortho, ortho, before_dsm, after_dsm, dsm)
    given: dict[str, Path | None]
    if single:
        assert ortho is not None
        given = {"ortho": Path(ortho), "dsm": Path(dsm) if dsm is not None else None}
        shown_after = Path(ortho)
    else:
        assert before_ortho is not None and after_ortho is not None
        given = {
            "before_ortho": Path(before_ortho),
            "after_ortho": Path(after_ortho),
            "before_dsm": Path(before_dsm) if before_dsm is not None else None,
            "after_dsm": Path(after_dsm) if after_dsm is not None else None,
        }
        shown_after = Path(after_ortho)
    for role, p in given.items():
        if p is not None and not p.is_file():
            raise PackageError(f"{p}: {role.replace('_', ' ')} not found; check the path")
    if out_dir.exists() and (
        not out_dir.is_dir()
        or (any(out_dir.iterdir()) and not (out_dir / "manifest.json").is_file())
    ):
        raise PackageError(
            f"{out_dir}: exists and is not an evidence package; choose an empty or new --out"
        )
    inputs = _inputs(lead, given, verify_inputs)
    reg = Path(after_registered) if after_registered is not None else None
    reg_dsm = Path(after_registered_dsm) if after_registered_dsm is not None else None
    if single and (reg is not None or reg_dsm is not None):
        raise PackageError(
            "--after-registered and --after-registered-dsm belong to a detection run (two "
            "surveys); a single survey (--ortho) has no co-registered epoch"
        )
    for role, p in (("after registered", reg), ("after registered DSM", reg_dsm)):
        if p is not None and not p.is_file():
            raise PackageError(f"{p}: {role} not found; check the path")
    derived = _derived(
        lead, {"after_registered": reg, "after_registered_dsm": reg_dsm}, verify_inputs
    )
    if single:
        after_title = "Survey"
    else:
        after_title = (REGISTERED_LABEL[0].upper() + REGISTERED_LABEL[1:]) if reg else "After"
    before_date = lead.before_date or before_date
    after_date = lead.after_date or after_date
    work = make_work_dir(out_dir)
    try:
        write_text_atomic(
            work / "lead.geojson", json.dumps(leads_to_feature_collection([lead]), indent=2)
        )
        chips: tuple[Path, ...] = ()
        if not single:
            assert before_ortho is not None
            chips += (
                render_chip(
                    Path(before_ortho),
                    lead.geometry,
                    work / "before.png",
                    title="Before",
                    date=before_date,
                ),
            )
        chips += (
            render_chip(
                reg or shown_after,
                lead.geometry,
                work / ("survey.png" if single else "after.png"),
                title=after_title,
                date=after_date,
            ),
        )
        profile_before = None if single else given["before_dsm"]
        profile_after = given["dsm"] if single else (reg_dsm or given["after_dsm"])
        has_profile = profile_before is not None or profile_after is not None
        if has_profile:
            render_height_profile(
                lead.geometry,
                work / "profile.png",
                before_dsm=profile_before,
                after_dsm=profile_after,
                before_date=before_date,
                after_date=after_date,
                title=f"Height profile across lead {lead.lead_id}",
                after_label="survey DSM"
                if single
                else (REGISTERED_LABEL if reg_dsm is not None else "after"),
            )
        related = _related_permits(lead, permits or [])
        if related:
            _write_features_json(work / "permits.geojson", related)
        near_existing = _related_permits(lead, existing or [])
        if near_existing:
            _write_features_json(work / "existing.geojson", near_existing)
        render_lead_view(
            lead,
            before_ortho=None if single else before_ortho,
            after_ortho=None if single else after_ortho,
            ortho=ortho if single else None,
            out_html=work / "map.html",
            permits=related,
            existing=near_existing,
            chips=chips,
            before_date=before_date,
            after_date=after_date,
            after_registered=reg,
        )
        if ledger_excerpt is not None:
            write_text_atomic(
                work / "ledger_excerpt.jsonl",
                "".join(
                    json.dumps(_json_ready(dict(e)), sort_keys=True) + "\n" for e in ledger_excerpt
                ),
            )
        write_text_atomic(
            work / "README.txt",
            _readme(lead, has_profile, bool(related), reg is not None, single, bool(near_existing)),
        )
        _write_manifests(work, lead, inputs, ledger_excerpt, derived)
        replace_dir(work, out_dir)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    files = tuple(sorted(p for p in out_dir.rglob("*") if p.is_file()))
    log.info("evidence package of %s: %s (%d files)", lead.lead_id, out_dir, len(files))
    return EvidencePackage(
        out_dir, lead.lead_id, files, out_dir / "manifest.json", out_dir / "manifest.sha256"
    )


def _single(
    before_ortho: Path | None,
    after_ortho: Path | None,
    ortho: Path | None,
    before_dsm: Path | None,
    after_dsm: Path | None,
    dsm: Path | None,
) -> bool:
    """True for a single survey (``ortho``), False for two; PackageError otherwise."""
    two = (before_ortho, after_ortho, before_dsm, after_dsm)
    if ortho is not None and any(p is not None for p in two):
        raise PackageError(
            "give either the survey of a sitewatch check (--ortho, --dsm) or the before and "
            "after epochs (--before-ortho, --after-ortho, their DSMs), not both"
        )
    if ortho is None and dsm is not None:
        raise PackageError("--dsm belongs to --ortho (a single survey); pass --ortho too")
    if ortho is None and (before_ortho is None or after_ortho is None):
        raise PackageError(
            "pass --before-ortho and --after-ortho for two surveys, or --ortho for a single "
            "survey checked against the permit atlas (sitewatch check)"
        )
    return ortho is not None


def _write_features_json(path: Path, features: Sequence[Feature]) -> None:
    fc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": mapping(g), "properties": _json_ready(dict(p))}
            for g, p in features
        ],
    }
    write_text_atomic(path, json.dumps(fc, indent=2))


def _write_manifests(
    work: Path,
    lead: Lead,
    inputs: Mapping[str, Any],
    ledger_excerpt: Sequence[Mapping[str, Any]] | None,
    derived: Mapping[str, Any] | None = None,
) -> None:
    entries = []
    for p in sorted(work.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(work).as_posix()
        if "\n" in rel or "\\" in rel:
            raise PackageError(f"{rel!r}: file names with newlines or backslashes cannot be listed")
        entries.append({"path": rel, "bytes": p.stat().st_size, "sha256": sha256_of(p)})
    manifest = {
        "format": MANIFEST_FORMAT,
        "lead_id": lead.lead_id,
        "lead": lead.to_feature(),
        "inputs": inputs,
        "derived": dict(derived or {}),
        "software": {
            "name": "sitewatch",
            "version": _software_version(),
            "web_libraries": [
                {"name": lib.name, "version": lib.version, "licence": lib.licence}
                for lib in LIBRARIES
            ],
        },
        "created_utc": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "files": entries,
        "ledger_excerpt": None if ledger_excerpt is None else _json_ready(list(ledger_excerpt)),
        "verify": "sha256sum -c manifest.sha256",
    }
    write_text_atomic(work / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    lines = [f"{e['sha256']}  {e['path']}\n" for e in entries]
    lines.append(f"{sha256_of(work / 'manifest.json')}  manifest.json\n")
    write_text_atomic(work / "manifest.sha256", "".join(sorted(lines, key=lambda s: s[66:])))
