"""The evidence package of one lead: a folder a reviewer can check with ``sha256sum`` alone.

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

The package is built in named steps, one module each: :mod:`maps.package_inputs` (choose and
check the files, hash them against the lead), :mod:`maps.package_views` (lead, chips,
profile, nearby permits, map), :mod:`maps.package_ledger` (ledger excerpt, proofs, signed
head), :mod:`maps.package_readme`, :mod:`maps.package_manifest` (``manifest.json``,
``manifest.sha256``), the case-file page (:mod:`maps.casefile`, here), and
:mod:`maps.package_verify` (:func:`verify_evidence_package`).
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from change_detection.leads import Lead
from maps.assets import make_work_dir, replace_dir, write_text_atomic
from maps.casefile import CaseFile, find_page_font, render_case_file
from maps.fonts import FONT_INSTALL_HINT, PageFont
from maps.package_inputs import PackageInputs, choose_inputs
from maps.package_ledger import HEAD_FILE, checkable_entries, head_files, write_ledger_files
from maps.package_manifest import (
    CHECKSUMS_FILE,
    MANIFEST_FORMAT,
    REPORT_FILE,
    sha256_of,
    software_version,
    write_checksums,
    write_manifest_json,
)
from maps.package_readme import readme
from maps.package_verify import verify_evidence_package
from maps.package_views import PackageViews, write_views
from maps.review import Feature

__all__ = [
    "CHECKSUMS_FILE",
    "HEAD_FILE",
    "MANIFEST_FORMAT",
    "REPORT_FILE",
    "EvidencePackage",
    "build_evidence_package",
    "sha256_of",
    "verify_evidence_package",
]

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class _Particulars:
    """What the manifest and the page say besides the files: when, who, the survey dates
    (the lead's, else those given), the custody ledger, and the page's Chinese font."""

    created_utc: str
    people: Mapping[str, str | None]
    before_date: str | None
    after_date: str | None
    ledger_excerpt: Sequence[Mapping[str, Any]] | None
    signed_head: Mapping[str, Any] | None
    cjk_font: PageFont | None


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
        The package folder, built beside it and renamed into place; an existing folder is
        replaced only if it is empty or an earlier package (it has a ``manifest.json``).
    before_date, after_date : str, optional
        Survey dates when the lead carries none.
    verify_inputs : bool
        Refuse inputs whose SHA-256 differs from the hash recorded in the lead.
    ledger_excerpt : sequence of dict, optional
        Custody-ledger entries of the lead's inputs (from the evidence store, when it exists).
    after_registered, after_registered_dsm : Path, optional
        The co-registered after orthophoto and DSM of ``sitewatch detect``: the after chip,
        tiles and profile curve come from them (module docstring). With ``verify_inputs``,
        one whose recorded original is not the lead's is refused.
    ortho, dsm : Path, optional
        The orthophoto and DSM of a single survey checked against the permit atlas
        (``sitewatch check``), instead of the before and after epochs.
    existing : sequence of (geometry WGS84, properties), optional
        Existing buildings of the atlas; those near the lead or named by it are packaged.
    case_id, pilot, analyst : str, optional
        The enforcement case, who flew the survey(s) (pilot or operator) and who analysed
        them; shown on ``report.pdf`` ("not given" when absent) and kept in the manifest.
    signed_head : mapping, optional
        The ledger's latest signed tree head, as the evidence store's ``signed_head()`` gives
        it (``tree_size``, ``root_hash``, ``timestamp``, ``key_id``, ``signature``, and
        optionally ``public_key_pem`` and ``signed_message``): the ``ledger_head.*`` files
        and the page; None: the page says the inputs are not recorded in an evidence store.

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
        ``$SITEWATCH_CJK_FONT`` names an unusable font (with no Chinese font at all the page
        is in English only, with one warning line).
    """
    out_dir = Path(out_dir)
    files = choose_inputs(
        lead,
        before_ortho=before_ortho,
        after_ortho=after_ortho,
        before_dsm=before_dsm,
        after_dsm=after_dsm,
        ortho=ortho,
        dsm=dsm,
        after_registered=after_registered,
        after_registered_dsm=after_registered_dsm,
        out_dir=out_dir,
        verify=verify_inputs,
    )
    head = head_files(signed_head)
    checkable = checkable_entries(ledger_excerpt, out_dir)
    about = _Particulars(
        created_utc=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        people={"case_id": case_id, "pilot": pilot, "analyst": analyst},
        before_date=lead.before_date or before_date,
        after_date=lead.after_date or after_date,
        ledger_excerpt=ledger_excerpt,
        signed_head=signed_head,
        cjk_font=_page_font(out_dir),
    )
    work = make_work_dir(out_dir)
    try:
        views = write_views(
            work, lead, files, permits, existing, about.before_date, about.after_date
        )
        write_ledger_files(work, checkable, head)
        _write_readme(work, lead, files, views, bool(checkable), sorted(head), about.cjk_font)
        _write_manifest(work, lead, files, about)
        page = _case_file(work, lead, files, views, about)
        render_case_file(page, work / REPORT_FILE, about.cjk_font)
        write_checksums(work)
        replace_dir(work, out_dir)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return _written(out_dir, lead.lead_id)


def _written(out_dir: Path, lead_id: str) -> EvidencePackage:
    """The package now in ``out_dir`` (said in one info line)."""
    listed = tuple(sorted(p for p in out_dir.rglob("*") if p.is_file()))
    log.info("evidence package of %s: %s (%d files)", lead_id, out_dir, len(listed))
    return EvidencePackage(
        out_dir,
        lead_id,
        listed,
        out_dir / "manifest.json",
        out_dir / CHECKSUMS_FILE,
        out_dir / REPORT_FILE,
    )


def _page_font(out_dir: Path) -> PageFont | None:
    """The Chinese font of the case-file page, or None (English only, said in one warning)."""
    cjk_font = find_page_font()
    if cjk_font is None:
        log.warning(
            "%s: report.pdf is written in English only: no Simplified Chinese font found; %s",
            out_dir,
            FONT_INSTALL_HINT,
        )
    return cjk_font


def _write_readme(
    work: Path,
    lead: Lead,
    files: PackageInputs,
    views: PackageViews,
    has_excerpt: bool,
    head_names: Sequence[str],
    cjk_font: PageFont | None,
) -> None:
    """``README.txt``, describing the files written."""
    text = readme(
        lead,
        views.has_profile,
        bool(views.permits),
        files.registered is not None,
        files.single,
        bool(views.existing),
        has_excerpt=has_excerpt,
        head_files=head_names,
        chinese=cjk_font is not None,
    )
    write_text_atomic(work / "README.txt", text)


def _write_manifest(work: Path, lead: Lead, files: PackageInputs, about: _Particulars) -> None:
    """``manifest.json`` over the files written so far, naming the page it precedes."""
    write_manifest_json(
        work,
        lead,
        files.records,
        about.ledger_excerpt,
        files.derived,
        created_utc=about.created_utc,
        people=about.people,
        signed_head=about.signed_head,
        report={
            "file": REPORT_FILE,
            "languages": ["en", "zh-Hans"] if about.cjk_font is not None else ["en"],
            "cjk_font": None if about.cjk_font is None else about.cjk_font.family,
            "shows_sha256_of": "manifest.json",
            "listed_in": "manifest.sha256",
        },
    )


def _case_file(
    work: Path, lead: Lead, files: PackageInputs, views: PackageViews, about: _Particulars
) -> CaseFile:
    """What ``report.pdf`` shows, ``manifest.json`` (already written in ``work``) included."""
    chip_roles = (
        ("survey",) if files.single else ("before", "registered" if files.registered else "after")
    )
    excerpt = about.ledger_excerpt
    return CaseFile(
        lead=lead,
        chips=tuple(zip(views.chips, chip_roles, strict=True)),
        profile=work / "profile.png" if views.has_profile else None,
        originals={
            r: (e["file"], e["sha256_now"] or e["sha256"]) for r, e in files.records.items()
        },
        manifest_sha256=sha256_of(work / "manifest.json"),
        created_utc=about.created_utc,
        software=f"sitewatch {software_version()}",
        permits=[dict(props) for _g, props in views.permits],
        case_id=about.people["case_id"],
        pilot=about.people["pilot"],
        analyst=about.people["analyst"],
        before_date=None if files.single else about.before_date,
        after_date=about.after_date,
        signed_head=about.signed_head,
        ledger_entries=None if excerpt is None else len(excerpt),
        existing_buildings=len(views.existing),
    )
