"""Choosing and checking the files an evidence package is made from.

Two surveys (``before_ortho``, ``after_ortho`` and their DSMs, from ``sitewatch detect``) or
one (``ortho`` and ``dsm``, from ``sitewatch check``); optionally the co-registered after
epoch (``after_registered``, ``after_registered_dsm``). :func:`choose_inputs` refuses a mix,
a missing file or an ``out_dir`` that is not a package before anything is hashed, then records
each input's SHA-256 against the hash the lead carries (refusing a mismatch when asked) and
the lineage of the co-registered rasters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from change_detection.leads import Lead
from maps.derived import REGISTERED_LABEL, derived_record
from maps.errors import PackageError
from maps.package_manifest import sha256_of

__all__ = ["PackageInputs", "choose_inputs"]


@dataclass(frozen=True)
class PackageInputs:
    """The files of one package, checked.

    Attributes
    ----------
    single : bool
        One survey (``ortho``) rather than two.
    given : mapping of str to Path or None
        Role → original file: ``ortho``, ``dsm`` or ``before_ortho``, ``after_ortho``,
        ``before_dsm``, ``after_dsm``.
    registered, registered_dsm : Path or None
        The co-registered after orthophoto and DSM.
    records : dict
        ``manifest.json["inputs"]``: per role the recorded and current SHA-256.
    derived : dict
        ``manifest.json["derived"]``: the lineage of the co-registered rasters.
    """

    single: bool
    given: Mapping[str, Path | None]
    registered: Path | None
    registered_dsm: Path | None
    records: dict[str, dict[str, Any]]
    derived: dict[str, dict[str, Any]]

    @property
    def shown_after(self) -> Path:
        """The raster of the after (or the survey's) chip."""
        after = self.given["ortho" if self.single else "after_ortho"]
        assert after is not None
        return self.registered or after

    @property
    def after_title(self) -> str:
        """The after chip's title."""
        if self.single:
            return "Survey"
        return (REGISTERED_LABEL[0].upper() + REGISTERED_LABEL[1:]) if self.registered else "After"


def choose_inputs(
    lead: Lead,
    *,
    before_ortho: Path | None,
    after_ortho: Path | None,
    before_dsm: Path | None,
    after_dsm: Path | None,
    ortho: Path | None,
    dsm: Path | None,
    after_registered: Path | None,
    after_registered_dsm: Path | None,
    out_dir: Path,
    verify: bool,
) -> PackageInputs:
    """Check the package's files and record their hashes (see the module docstring).

    Raises
    ------
    PackageError
        Neither ``ortho`` nor both ``before_ortho`` and ``after_ortho``, or both kinds; a
        file missing; ``out_dir`` holds something other than a package; with ``verify``, an
        input (or a co-registered raster's original) whose SHA-256 is not the lead's.
    """
    single = _single(before_ortho, after_ortho, ortho, before_dsm, after_dsm, dsm)
    given: dict[str, Path | None]
    if single:
        assert ortho is not None
        given = {"ortho": Path(ortho), "dsm": Path(dsm) if dsm is not None else None}
    else:
        assert before_ortho is not None and after_ortho is not None
        given = {
            "before_ortho": Path(before_ortho),
            "after_ortho": Path(after_ortho),
            "before_dsm": Path(before_dsm) if before_dsm is not None else None,
            "after_dsm": Path(after_dsm) if after_dsm is not None else None,
        }
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
    records = _input_records(lead, given, verify)
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
    derived = _derived_records(
        lead, {"after_registered": reg, "after_registered_dsm": reg_dsm}, verify
    )
    return PackageInputs(single, given, reg, reg_dsm, records, derived)


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


def _input_records(
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


def _derived_records(
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
