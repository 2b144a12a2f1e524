"""``sitewatch package``: evidence packages of leads, verifiable with ``sha256sum -c``.

``--lead ID`` writes one package into ``--out DIR``; ``--all`` writes one per lead into
``DIR/<lead id>/`` (ids made file-name safe). Each package holds the before/after chips, the
height profile (with DSMs), the lead's GeoJSON, an offline map page, ``manifest.json`` and
``manifest.sha256`` (see :mod:`maps.package`). ``--after-registered`` and
``--after-registered-dsm`` (the co-registered after rasters of the detection run) are drawn in
place of the original after epoch and listed in the manifest as derived products.

For the output of ``sitewatch check`` (one survey against the permit atlas) pass ``--ortho``
and ``--dsm`` (the survey) instead of the before and after epochs, with ``--permits
atlas_permits.geojson --existing atlas_existing.geojson`` from the check's folder.

Every package has ``report.pdf``, the case-file page to file (English and Simplified
Chinese; see :mod:`maps.casefile`): ``--case``, ``--pilot`` and ``--analyst`` fill its case
number and who flew and who analysed (and are kept in ``manifest.json``). Without a Chinese
font on the machine the page is written in English only, with one warning line saying how to
install one (``tools/install-fonts.sh``).

``--store STORE`` (an evidence store where the detection was recorded, ``detect --store``)
puts into every package the ledger entries that trace its lead back to the original photos and
logs, each with its inclusion proof, and the store's signed tree head with the station's public
key (``ledger_excerpt.jsonl``, ``ledger_head.*``; printed on ``report.pdf``), then records the
packages in the ledger (:func:`survey.evidence.wiring.package_ledger`). ``--case`` is the case
the entries are filed under; ``--operator`` (default ``--analyst``) who made the packages.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from survey.cli._common import ensure_out_dir, existing_file, is_quiet
from survey.cli._store import check_store, say_recorded
from survey.cli.map import (
    _EXISTING_HELP,
    _ORTHO_HELP,
    _REGISTERED_HELP,
    check_epochs,
    load_features,
    load_leads,
)
from survey.progress import Stage, quiet_option, reporting, stage

if TYPE_CHECKING:
    from change_detection.leads import Lead
    from survey.evidence.wiring import CommandStore

_PACKAGE_STORE_HELP = (
    "Evidence store where the detection was recorded: each package carries the ledger "
    "entries that trace its lead back to the original photos and logs and the signed ledger "
    "head, and the packages are recorded in the ledger."
)

__all__ = ["command"]


@click.command(name="package")
@quiet_option
@click.option("--leads", "leads_path", required=True, type=existing_file, help="leads.geojson.")
@click.option("--lead", "lead_id", help="Id of the lead to package.")
@click.option("--all", "all_leads", is_flag=True, help="Package every lead into DIR/<id>/.")
@click.option("--before-ortho", type=existing_file, help="Before orthophoto.")
@click.option("--after-ortho", type=existing_file, help="After orthophoto.")
@click.option("--before-dsm", type=existing_file, help="Before DSM (for the height profile).")
@click.option("--after-dsm", type=existing_file, help="After DSM (for the height profile).")
@click.option("--ortho", type=existing_file, help=_ORTHO_HELP)
@click.option("--dsm", type=existing_file, help="DSM of the single survey (with --ortho).")
@click.option("--permits", type=existing_file, help="Permit footprints (any format, any CRS).")
@click.option("--existing", type=existing_file, help=_EXISTING_HELP)
@click.option("--after-registered", type=existing_file, help=_REGISTERED_HELP)
@click.option(
    "--after-registered-dsm",
    type=existing_file,
    help="The after DSM co-registered to the before grid (after_registered_dsm.tif of "
    "sitewatch detect), for the after side of the height profile.",
)
@click.option("--store", type=click.Path(path_type=Path), help=_PACKAGE_STORE_HELP)
@click.option(
    "--case",
    "case_id",
    help="Enforcement case number, printed on report.pdf (and the store's case, with --store).",
)
@click.option("--pilot", help="Who flew the survey(s): pilot or operator, printed on report.pdf.")
@click.option("--analyst", help="Who analysed the surveys, printed on report.pdf.")
@click.option(
    "--operator",
    help="Who makes the packages, recorded in the store's ledger (with --store; default "
    "--analyst).",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Package folder (--lead) or parent folder of the packages (--all).",
)
def command(
    leads_path: Path,
    lead_id: str | None,
    all_leads: bool,
    before_ortho: Path | None,
    after_ortho: Path | None,
    before_dsm: Path | None,
    after_dsm: Path | None,
    ortho: Path | None,
    dsm: Path | None,
    permits: Path | None,
    existing: Path | None,
    after_registered: Path | None,
    after_registered_dsm: Path | None,
    store: Path | None,
    case_id: str | None,
    pilot: str | None,
    analyst: str | None,
    operator: str | None,
    out: Path,
) -> None:
    """Write the evidence package of one lead (--lead ID) or of every lead (--all)."""
    check_epochs(before_ortho, after_ortho, ortho)
    if ortho is None and dsm is not None:
        raise click.UsageError("--dsm is the DSM of --ortho (a single survey); pass --ortho too")
    if (lead_id is None) == (not all_leads):
        raise click.UsageError("give exactly one of --lead ID or --all")
    recorder = check_store(
        store,
        case=case_id if store is not None else None,
        operator=operator or (analyst if store is not None else None),
        case_needs_store=False,
    )
    files = {
        "leads": leads_path,
        "before_ortho": before_ortho,
        "after_ortho": after_ortho,
        "before_dsm": before_dsm,
        "after_dsm": after_dsm,
        "ortho": ortho,
        "dsm": dsm,
        "permits": permits,
        "existing": existing,
        "after_registered": after_registered,
        "after_registered_dsm": after_registered_dsm,
    }
    people = {"case_id": case_id, "pilot": pilot, "analyst": analyst}
    targets = _targets(leads_path, lead_id, out)
    layers = {
        "permits": load_features(permits, "permits"),
        "existing": load_features(existing, "existing buildings"),
    }
    read: dict[str, str] = {}
    ledgers: dict[frozenset[str], _Ledger] = {}
    if recorder is not None:
        read, ledgers = _ledgers(recorder, files, targets)
    if all_leads:
        ensure_out_dir(out)
    # one stage, once every input has been read and checked (a bad one is one line alone)
    progress = reporting(quiet=is_quiet(), command="package")
    with progress, stage("build evidence packages", total=len(targets)) as building:
        made = _build(
            targets, files, layers, people, read, ledgers, building, single=lead_id is not None
        )
    if recorder is not None and targets:
        entry = recorder.record(
            "sitewatch package",
            inputs={role: read[role] for role in files if role in read},
            outputs=made,
            parameters={
                "leads": [lead.lead_id for lead, _ in targets],
                **people,
                "signed_heads": sorted(
                    {(h["tree_size"], h["root_hash"]) for _, h in ledgers.values()}
                ),
            },
        )
        say_recorded(recorder, [entry.seq], err=True)
    if not is_quiet():
        click.echo(
            "file report.pdf; verify: cd <package> && sha256sum -c manifest.sha256", err=True
        )


#: A lead's ledger excerpt and the signed head it is proved against.
_Ledger = tuple[list[dict[str, Any]], dict[str, Any]]


def _targets(leads_path: Path, lead_id: str | None, out: Path) -> list[tuple[Lead, Path]]:
    """The leads to package and the folder of each: ``--lead ID`` into ``out``, ``--all``
    into ``out/<lead id>/``."""
    from maps.errors import PackageError
    from maps.review import lead_slug

    leads = load_leads(leads_path)
    if lead_id is None:
        return [(lead, out / lead_slug(lead.lead_id)) for lead in leads]
    chosen = [lead for lead in leads if lead.lead_id == lead_id]
    if not chosen:
        known = ", ".join(lead.lead_id for lead in leads[:10]) or "none"
        raise PackageError(f"{leads_path}: no lead {lead_id!r} (ids: {known}); check --lead")
    return [(chosen[0], out)]


def _wanted(read: dict[str, str], lead: Lead) -> frozenset[str]:
    """The hashes whose trace a lead's package carries: the files read and the lead's inputs."""
    return frozenset([*read.values(), *lead.input_hashes.values()])


def _ledgers(
    recorder: CommandStore,
    files: dict[str, Path | None],
    targets: list[tuple[Lead, Path]],
) -> tuple[dict[str, str], dict[frozenset[str], _Ledger]]:
    """The files read, hashed, and each lead's ledger excerpt and signed head, taken before
    anything is written."""
    from survey.evidence.wiring import package_ledger

    read = _hashes(files)
    ledgers: dict[frozenset[str], _Ledger] = {}
    for lead, _folder in targets:
        wanted = _wanted(read, lead)
        if wanted not in ledgers:
            ledgers[wanted] = package_ledger(recorder, sorted(wanted))
    return read, ledgers


def _build(
    targets: list[tuple[Lead, Path]],
    files: dict[str, Path | None],
    layers: dict[str, Any],
    people: dict[str, str | None],
    read: dict[str, str],
    ledgers: dict[frozenset[str], _Ledger],
    building: Stage,
    *,
    single: bool,
) -> dict[str, Path]:
    """Write each lead's package (printing its folder) and return the files to record."""
    from maps import build_evidence_package

    made: dict[str, Path] = {}
    for lead, folder in targets:
        excerpt, head = ledgers[_wanted(read, lead)] if ledgers else (None, None)
        pkg = build_evidence_package(
            lead,
            before_ortho=files["before_ortho"],
            after_ortho=files["after_ortho"],
            before_dsm=files["before_dsm"],
            after_dsm=files["after_dsm"],
            ortho=files["ortho"],
            dsm=files["dsm"],
            permits=layers["permits"],
            existing=layers["existing"],
            out_dir=folder,
            after_registered=files["after_registered"],
            after_registered_dsm=files["after_registered_dsm"],
            case_id=people["case_id"],
            pilot=people["pilot"],
            analyst=people["analyst"],
            ledger_excerpt=excerpt,
            signed_head=head,
        )
        prefix = "" if single else f"{folder.name}/"
        for name in ("manifest.json", "manifest.sha256", "report.pdf", "lead.geojson"):
            if (pkg.directory / name).is_file():
                made[f"{prefix}{name}"] = pkg.directory / name
        if not is_quiet():
            click.echo(f"lead {lead.lead_id}: {len(pkg.files)} files", err=True)
        click.echo(str(pkg.directory))
        building.advance()
    return made


def _hashes(files: dict[str, Path | None]) -> dict[str, str]:
    """SHA-256 of every file given, read once (traced in the store, recorded as inputs)."""
    from survey.evidence.objects import hash_file

    return {role: hash_file(p)[0] for role, p in files.items() if p is not None}
