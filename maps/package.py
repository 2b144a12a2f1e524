"""The evidence package of one lead: a folder a reviewer can check with ``sha256sum`` alone.

(Over 500 lines because it owns the package's layout end to end: building it, its manifests
and the order of their hashes, the signed-head files, and the verifier that checks them.)

Layout of a package folder (``DIR`` for one lead, ``DIR/<lead slug>/`` for ``--all``)::

    lead.geojson          the lead as an RFC 7946 FeatureCollection (WGS84)
    before.png            before chip: scale bar, north arrow, coordinates, survey date
    after.png             after chip, same frame
    profile.png           DSM heights across the structure (only when a DSM is given)
    permits.geojson       permit footprints near the lead (only when permits are given)
    map.html              offline swipe map centred on the lead, with map_files/ beside it
    map_files/...         vendored Leaflet + plugins (with licences), tiles around the lead
    ledger_excerpt.jsonl  the custody-ledger entries that trace the lead back to the original
                          photos and logs (with an evidence store): one per line, byte for
                          byte the ledger line the ledger hashed
    ledger_proofs.tsv     each line's seq, tree size and RFC 9162 inclusion proof
    verify_ledger.sh      checks every excerpt line against the signed head with POSIX sh and
                          coreutils (and the head's signature with openssl)
    ledger_head.json      the ledger's signed tree head (with an evidence store)
    ledger_head.sig       its raw Ed25519 signature
    station_public_key.pem  the station's public key (when the head carries it)
    ledger_head.msg       the exact bytes signed (when the head carries them as
                          ``signed_message``), for ``openssl pkeyutl -verify -rawin``
    README.txt            what the files are and how to verify them
    manifest.json         lead, inputs and their hashes, software, time, case, pilot,
                          analyst, signed head, every file's size and SHA-256 (all files
                          above; not report.pdf, see below), and ``ledger_excerpt`` (each
                          entry whole: seq, hash, prev, line, entry parsed, proof)
    report.pdf            the case-file page (:mod:`maps.casefile`): one A4 page in English
                          and Simplified Chinese that prints the SHA-256 of manifest.json
    manifest.sha256       ``sha256sum`` lines (two spaces, relative paths) for every file
                          above, manifest.json and report.pdf included

Order of the hashes: the page shows the SHA-256 of ``manifest.json``, so the manifest cannot
list the page. ``manifest.json`` is written first (covering every other file), then
``report.pdf`` (printing the manifest's hash, also in its PDF Subject), then
``manifest.sha256`` over everything, the page included. :func:`verify_evidence_package`
checks all three links; ``sha256sum -c manifest.sha256`` checks every byte.

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

Seam for the evidence store: the caller passes the ledger entries of the lead's inputs
(``ledger_excerpt=[...]``, the dicts of the store's ``ledger_excerpt``: ``seq``, ``hash``,
``prev``, ``line``, ``entry``, ``tree_size``, ``inclusion_proof``), kept whole under
``manifest.json["ledger_excerpt"]``, their ``line`` written as ``ledger_excerpt.jsonl`` and
their proofs as ``ledger_proofs.tsv`` (:mod:`maps.ledger_excerpt`, which also holds
``verify_ledger.sh``), and the store's latest signed head (``signed_head={...}``), written as
the ``ledger_head.*`` files, under ``manifest.json["ledger_head"]`` and on the page. Without
them both keys are ``null`` and the page says the inputs are not recorded in an evidence
store. An entry without its ``line`` (a ledger line cannot be rebuilt from the parsed entry)
is kept in ``manifest.json`` only, with one warning line.

Checking the excerpt with ``sha256sum`` alone (the README says it too): line N of
``ledger_excerpt.jsonl`` without its newline hashes to the entry's SHA-256 (the ``prev`` of the
next ledger entry); ``SHA-256(0x00 || line)`` is its Merkle leaf, which folded with row N of
``ledger_proofs.tsv`` gives the ``root_hash`` that ``ledger_head.msg`` carries and the
station signed.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shapely.geometry import mapping

from change_detection.leads import Lead, leads_to_feature_collection
from maps.assets import LIBRARIES, make_work_dir, replace_dir, write_text_atomic
from maps.casefile import (
    HEAD_MESSAGE_FILE,
    HEAD_SIGNATURE_FILE,
    STATION_KEY_FILE,
    CaseFile,
    find_page_font,
    render_case_file,
)
from maps.chips import render_chip, render_height_profile
from maps.derived import REGISTERED_LABEL, derived_record, file_sha256
from maps.errors import PackageError
from maps.fonts import FONT_INSTALL_HINT
from maps.ledger_excerpt import (
    LEDGER_LINES_FILE,
    LEDGER_PROOFS_FILE,
    VERIFY_LEDGER_FILE,
    VERIFY_LEDGER_SH,
    excerpt_lines,
    proof_rows,
)
from maps.review import Feature, render_lead_view

__all__ = [
    "MANIFEST_FORMAT",
    "EvidencePackage",
    "build_evidence_package",
    "sha256_of",
    "verify_evidence_package",
]

log = logging.getLogger(__name__)

#: Value of ``manifest.json["format"]``.
MANIFEST_FORMAT = "sitewatch-evidence-package/1"
#: The case-file page, the checksums over every file, and the signed ledger head.
REPORT_FILE = "report.pdf"
CHECKSUMS_FILE = "manifest.sha256"
HEAD_FILE = "ledger_head.json"


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
    report : Path or None
        ``report.pdf``, the case-file page.
    """

    directory: Path
    lead_id: str
    files: tuple[Path, ...]
    manifest: Path
    checksums: Path
    report: Path | None = None


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
    *,
    has_excerpt: bool = False,
    head_files: Sequence[str] = (),
    chinese: bool = True,
) -> str:
    languages = "English and Simplified Chinese" if chinese else "English only (no Chinese font)"
    lines = [
        f"sitewatch evidence package — lead {lead.lead_id} ({lead.lead_class})",
        "",
        "report.pdf       the case-file page to file: chips, height profile, measurements,",
        "                 reasons, permits, survey dates, who flew and who analysed, the",
        "                 SHA-256 of the originals and of manifest.json, the signed ledger",
        f"                 head; {languages}",
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
    if has_excerpt:
        lines += [
            f"{LEDGER_LINES_FILE}  the custody-ledger entries that trace the lead back to the",
            "                  original photos and logs, one per line, exactly as the ledger",
            "                  hashed them (manifest.json 'ledger_excerpt' has them parsed)",
            f"{LEDGER_PROOFS_FILE}  per line: its seq, the tree size, its inclusion proof",
            f"{VERIFY_LEDGER_FILE}  checks every line against the signed ledger head (sh and",
            "                  coreutils; the signature too, when openssl is installed)",
        ]
    if head_files:
        lines += [
            f"{HEAD_FILE}  the custody ledger's signed tree head (tree size, root hash, time,",
            "                  key id, Ed25519 signature) when the package was made",
            f"{STATION_KEY_FILE}  the station's public key; {HEAD_SIGNATURE_FILE}: the raw "
            "signature",
        ]
        if HEAD_MESSAGE_FILE in head_files:
            lines.append(f"{HEAD_MESSAGE_FILE}  the exact bytes the station signed")
    lines += [
        "map.html         offline map of the lead (open in a browser; needs map_files/)",
        "manifest.json    inputs and their hashes, software version, time, case, pilot,",
        "                 analyst, every file's hash except report.pdf's (the page prints",
        "                 manifest.json's own hash, so the manifest cannot list the page)",
        "manifest.sha256  checksums of every file, manifest.json and report.pdf included",
        "",
        "Verify: cd into this folder and run   sha256sum -c manifest.sha256",
        "Every line must say OK; any changed byte in any file makes the check fail.",
        "Then   sha256sum manifest.json   must print the manifest hash shown on report.pdf.",
    ]
    if has_excerpt and head_files:
        lines += [
            "",
            f"The ledger excerpt, with sha256sum alone:   sh {VERIFY_LEDGER_FILE}",
            "must end with 'ALL CHECKS PASSED' (without openssl it says the signature was not",
            "checked: see below). By hand, for line N of the excerpt:",
            f"  sed -n Np {LEDGER_LINES_FILE} | tr -d '\\n' | sha256sum",
            "is the entry's SHA-256 (its 'hash' in manifest.json, the 'prev' of the next entry",
            "in the station's ledger), and",
            f"  (printf '\\000'; sed -n Np {LEDGER_LINES_FILE} | tr -d '\\n') | sha256sum",
            "its Merkle leaf hash. Folding the leaf with the proof hashes of line N of",
            f"{LEDGER_PROOFS_FILE} (SHA-256 of 0x01, left and right, as RFC 9162 section",
            f"2.1.3.2 says; {VERIFY_LEDGER_FILE} does it) must give the root_hash of",
            f"{HEAD_FILE}, which {HEAD_MESSAGE_FILE} carries and the station signed.",
            "",
        ]
    if HEAD_MESSAGE_FILE in head_files:
        lines += [
            "The ledger head's signature:",
            f"  openssl pkeyutl -verify -pubin -inkey {STATION_KEY_FILE} -rawin "
            f"-in {HEAD_MESSAGE_FILE} -sigfile {HEAD_SIGNATURE_FILE}",
            "must print 'Signature Verified Successfully'. At the station,",
            "`sitewatch evidence verify STORE` proves the head is a prefix of today's ledger.",
        ]
    elif head_files:
        lines += [
            "The ledger head's signature and its place in today's ledger are checked at the",
            "station with `sitewatch evidence verify STORE`.",
        ]
    lines.append("")
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
    case_id: str | None = None,
    pilot: str | None = None,
    analyst: str | None = None,
    signed_head: Mapping[str, Any] | None = None,
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
    case_id, pilot, analyst : str, optional
        The enforcement case, who flew the survey(s) (pilot or operator) and who analysed
        them; shown on ``report.pdf`` ("not given" when absent) and kept in the manifest.
    signed_head : mapping, optional
        The custody ledger's latest signed tree head from the evidence store (``tree_size``
        int, ``root_hash`` hex, ``timestamp`` ISO 8601, ``key_id``, ``signature`` base64
        Ed25519, ``public_key_pem``; optionally ``signed_message``, the exact text signed).
        Written as ``ledger_head.json``, ``ledger_head.sig``, ``station_public_key.pem``
        (and ``ledger_head.msg``) and printed on the page; None: the page says the inputs
        are not recorded in an evidence store.

    Returns
    -------
    EvidencePackage

    Raises
    ------
    PackageError
        An input is missing or does not match the lead's recorded hash, ``out_dir`` holds
        something other than a package, neither ``ortho`` nor both ``before_ortho`` and
        ``after_ortho`` are given, or ``signed_head`` lacks a field or has a malformed one.
    MapError
        ``$SITEWATCH_CJK_FONT`` names an unusable font (without it and without a Chinese font
        on disk the page is written in English only, with one warning line).
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
    head_files = _head_files(signed_head)
    checkable = _checkable_entries(ledger_excerpt, out_dir)
    cjk_font = find_page_font()
    if cjk_font is None:
        log.warning(
            "%s: report.pdf is written in English only: no Simplified Chinese font found; %s",
            out_dir,
            FONT_INSTALL_HINT,
        )
    created_utc = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
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
        if checkable:
            _write_bytes_atomic(work / LEDGER_LINES_FILE, excerpt_lines(checkable))
            _write_bytes_atomic(work / LEDGER_PROOFS_FILE, proof_rows(checkable))
            _write_bytes_atomic(work / VERIFY_LEDGER_FILE, VERIFY_LEDGER_SH.encode("ascii"))
            os.chmod(work / VERIFY_LEDGER_FILE, 0o755)
        for name, data in head_files.items():
            _write_bytes_atomic(work / name, data)
        write_text_atomic(
            work / "README.txt",
            _readme(
                lead,
                has_profile,
                bool(related),
                reg is not None,
                single,
                bool(near_existing),
                has_excerpt=bool(checkable),
                head_files=sorted(head_files),
                chinese=cjk_font is not None,
            ),
        )
        people = {"case_id": case_id, "pilot": pilot, "analyst": analyst}
        report = {
            "file": REPORT_FILE,
            "languages": ["en", "zh-Hans"] if cjk_font is not None else ["en"],
            "cjk_font": None if cjk_font is None else cjk_font.family,
            "shows_sha256_of": "manifest.json",
            "listed_in": "manifest.sha256",
        }
        _write_manifest_json(
            work,
            lead,
            inputs,
            ledger_excerpt,
            derived,
            created_utc=created_utc,
            people=people,
            signed_head=signed_head,
            report=report,
        )
        chip_roles = ("survey",) if single else ("before", "registered" if reg else "after")
        case = CaseFile(
            lead=lead,
            chips=tuple(zip(chips, chip_roles, strict=True)),
            profile=work / "profile.png" if has_profile else None,
            originals={r: (e["file"], e["sha256_now"] or e["sha256"]) for r, e in inputs.items()},
            manifest_sha256=sha256_of(work / "manifest.json"),
            created_utc=created_utc,
            software=f"sitewatch {_software_version()}",
            permits=[dict(props) for _g, props in related],
            case_id=case_id,
            pilot=pilot,
            analyst=analyst,
            before_date=None if single else before_date,
            after_date=after_date,
            signed_head=signed_head,
            ledger_entries=None if ledger_excerpt is None else len(ledger_excerpt),
            existing_buildings=len(near_existing),
        )
        render_case_file(case, work / REPORT_FILE, cjk_font)
        _write_checksums(work)
        replace_dir(work, out_dir)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    files = tuple(sorted(p for p in out_dir.rglob("*") if p.is_file()))
    log.info("evidence package of %s: %s (%d files)", lead.lead_id, out_dir, len(files))
    return EvidencePackage(
        out_dir,
        lead.lead_id,
        files,
        out_dir / "manifest.json",
        out_dir / "manifest.sha256",
        out_dir / REPORT_FILE,
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


def _checkable_entries(
    excerpt: Sequence[Mapping[str, Any]] | None, out_dir: Path
) -> list[Mapping[str, Any]]:
    """The excerpt entries that carry their ledger line (written to ``ledger_excerpt.jsonl``).

    Raises PackageError for an entry that is not a mapping with an integer ``seq``, or whose
    line is not one line.
    """
    if excerpt is None:
        return []
    out: list[Mapping[str, Any]] = []
    missing: list[str] = []
    for n, e in enumerate(excerpt, 1):
        seq = e.get("seq") if isinstance(e, Mapping) else None
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise PackageError(
                f"ledger excerpt entry {n}: {str(e)[:40]!r} has no integer seq; pass the "
                "entries the evidence store's ledger_excerpt() returns"
            )
        line = e.get("line")
        if line is None:
            missing.append(str(seq))
        elif not isinstance(line, str) or "\n" in line:
            raise PackageError(
                f"ledger excerpt entry {seq}: its line is not one line of text; pass the "
                "entries the evidence store's ledger_excerpt() returns"
            )
        else:
            out.append(e)
    if missing:
        log.warning(
            "%s: ledger excerpt entries %s carry no ledger line; they are kept in manifest.json "
            "only, and %s cannot check them",
            out_dir,
            ", ".join(missing),
            VERIFY_LEDGER_FILE,
        )
    return out


def _write_features_json(path: Path, features: Sequence[Feature]) -> None:
    fc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": mapping(g), "properties": _json_ready(dict(p))}
            for g, p in features
        ],
    }
    write_text_atomic(path, json.dumps(fc, indent=2))


def _listed_files(work: Path, skip: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Path, size and SHA-256 of every file under ``work`` but ``skip``, sorted by path."""
    entries = []
    for p in sorted(work.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(work).as_posix()
        if rel in skip:
            continue
        if "\n" in rel or "\\" in rel:
            raise PackageError(f"{rel!r}: file names with newlines or backslashes cannot be listed")
        entries.append({"path": rel, "bytes": p.stat().st_size, "sha256": sha256_of(p)})
    return entries


def _write_manifest_json(
    work: Path,
    lead: Lead,
    inputs: Mapping[str, Any],
    ledger_excerpt: Sequence[Mapping[str, Any]] | None,
    derived: Mapping[str, Any] | None = None,
    *,
    created_utc: str,
    people: Mapping[str, str | None],
    signed_head: Mapping[str, Any] | None,
    report: Mapping[str, Any],
) -> None:
    """``manifest.json`` over every file written so far (all but the page and the checksums)."""
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
        "created_utc": created_utc,
        **dict(people),
        "files": _listed_files(work),
        "ledger_excerpt": None if ledger_excerpt is None else _json_ready(list(ledger_excerpt)),
        "ledger_head": None if signed_head is None else _json_ready(dict(signed_head)),
        "report": dict(report),
        "verify": "sha256sum -c manifest.sha256",
    }
    write_text_atomic(work / "manifest.json", json.dumps(manifest, indent=2) + "\n")


def _write_checksums(work: Path) -> None:
    """``manifest.sha256``: ``sha256sum`` lines for every file, the page and manifest included."""
    entries = _listed_files(work, frozenset({CHECKSUMS_FILE}))
    lines = [f"{e['sha256']}  {e['path']}\n" for e in entries]
    write_text_atomic(work / CHECKSUMS_FILE, "".join(sorted(lines, key=lambda s: s[66:])))


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise PackageError(
            f"{path}: cannot write ({exc.strerror}); choose a writable --out"
        ) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def _head_files(head: Mapping[str, Any] | None) -> dict[str, bytes]:
    """The files of a signed ledger head: JSON, raw signature, public key, signed bytes.

    Raises PackageError (one line naming the field) when the head is malformed.
    """
    if head is None:
        return {}
    if not isinstance(head, Mapping):
        raise PackageError(
            f"signed ledger head is a {type(head).__name__}, not a mapping; pass the dict "
            "the evidence store's signed_head() returns"
        )

    def bad(name: str, want: str) -> PackageError:
        value = str(head.get(name))
        shown = value if len(value) <= 24 else value[:23] + "…"
        return PackageError(
            f"signed ledger head: {name}={shown!r} is not {want}; pass the dict the evidence "
            "store's signed_head() returns"
        )

    size = head.get("tree_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise bad("tree_size", "a whole number >= 0")
    root = head.get("root_hash")
    if not isinstance(root, str) or not _is_hex(root, 64):
        raise bad("root_hash", "64 hex digits (a SHA-256)")
    for name in ("timestamp", "key_id"):
        if not isinstance(head.get(name), str) or not head[name].strip():
            raise bad(name, "a non-empty text")
    try:
        signature = base64.b64decode(str(head.get("signature", "")), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad("signature", "base64") from exc
    if not signature:
        raise bad("signature", "base64")
    files = {
        HEAD_FILE: (json.dumps(_json_ready(dict(head)), indent=2, sort_keys=True) + "\n").encode(),
        HEAD_SIGNATURE_FILE: signature,
    }
    pem = head.get("public_key_pem")
    if pem is not None:
        if not isinstance(pem, str | bytes) or b"PUBLIC KEY" not in _as_bytes(pem):
            raise bad("public_key_pem", "a PEM public key")
        files[STATION_KEY_FILE] = _as_bytes(pem)
    message = head.get("signed_message")
    if message is not None:
        if not isinstance(message, str | bytes):
            raise bad("signed_message", "text")
        files[HEAD_MESSAGE_FILE] = _as_bytes(message)
    return files


def _as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdefABCDEF" for c in text)


def _hash_now(path: Path) -> str:
    """SHA-256 read from disk now (no cache: a verifier trusts nothing it computed before)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def verify_evidence_package(directory: Path) -> list[str]:
    """Check an evidence package; return its problems, one line each (empty when intact).

    Three links are checked: every line of ``manifest.sha256`` against the file's bytes (and
    no file unlisted), every entry of ``manifest.json`` (size and SHA-256) against the file,
    and the SHA-256 of ``manifest.json`` against the one ``report.pdf`` carries (in its PDF
    Subject, beside the printed page). The same as ``sha256sum -c --strict manifest.sha256``
    plus the cross-checks, with nothing but Python.

    Parameters
    ----------
    directory : Path
        The package folder.

    Returns
    -------
    list of str
        ``"<file>: <what is wrong>"`` for every modified, missing, unlisted or inconsistent
        file, in file order.
    """
    directory = Path(directory)
    problems: list[str] = []
    sums = directory / CHECKSUMS_FILE
    if not sums.is_file():
        return [f"{CHECKSUMS_FILE}: missing; this is not an evidence package"]
    listed: dict[str, str] = {}
    for n, line in enumerate(sums.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        digest, sep, rel = line.partition("  ")
        if not sep or not _is_hex(digest, 64) or not rel:
            problems.append(f"{CHECKSUMS_FILE}: line {n} is not '<sha256>  <file>'")
            continue
        listed[rel] = digest.lower()
    on_disk = {p.relative_to(directory).as_posix(): p for p in directory.rglob("*") if p.is_file()}
    now: dict[str, str] = {}
    for rel in sorted(set(listed) | set(on_disk) - {CHECKSUMS_FILE}):
        if rel not in on_disk:
            problems.append(f"{rel}: missing (listed in {CHECKSUMS_FILE})")
        elif rel not in listed:
            problems.append(f"{rel}: not listed in {CHECKSUMS_FILE}")
        else:
            now[rel] = _hash_now(on_disk[rel])
            if now[rel] != listed[rel]:
                problems.append(
                    f"{rel}: modified (SHA-256 {now[rel][:12]}…, listed {listed[rel][:12]}…)"
                )
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        entries = manifest["files"]
        wanted = {str(e["path"]): (int(e["bytes"]), str(e["sha256"])) for e in entries}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        problems.append(f"manifest.json: unreadable ({type(exc).__name__}); the package is damaged")
        return problems
    for rel, (size, digest) in sorted(wanted.items()):
        path = on_disk.get(rel)
        if path is None:
            problems.append(f"{rel}: missing (listed in manifest.json)")
        elif path.stat().st_size != size or now.get(rel, _hash_now(path)) != digest:
            problems.append(f"{rel}: differs from its manifest.json entry")
    report = on_disk.get(REPORT_FILE)
    if report is not None and "manifest.json" in on_disk:
        digest = now.get("manifest.json") or _hash_now(on_disk["manifest.json"])
        if f"manifest.json SHA-256 {digest}".encode("ascii") not in report.read_bytes():
            problems.append(f"{REPORT_FILE}: does not carry the SHA-256 of this manifest.json")
    return problems
