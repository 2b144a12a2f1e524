"""The evidence package's ``README.txt``: what each file is and how to verify all of it.

Only the files the package holds are described; the verification steps follow (``sha256sum``
for every byte, ``sh verify_ledger.sh`` and the by-hand steps for the ledger excerpt,
``openssl`` for the head's signature).
"""

from __future__ import annotations

from collections.abc import Sequence

from change_detection.leads import Lead
from maps.casefile import HEAD_MESSAGE_FILE, HEAD_SIGNATURE_FILE, STATION_KEY_FILE
from maps.ledger_excerpt import LEDGER_LINES_FILE, LEDGER_PROOFS_FILE, VERIFY_LEDGER_FILE
from maps.package_ledger import HEAD_FILE

__all__ = ["readme"]


def readme(
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
    """The text of ``README.txt`` for the files the package holds (the flags say which)."""
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
