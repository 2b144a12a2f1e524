"""The co-registered after epoch as derived products of a detection run.

Detection co-registers the after epoch onto the before grid, so every lead geometry lives in
the reference (before) frame. The original after rasters are misregistered (decimetres to
metres with consumer GNSS), so outlines drawn on them sit beside the structure. This module
writes the after epoch *as detection saw it* so that reviewers can be shown images the
outlines fit, each traceable to its original by hash:

``after_registered.tif``
    uint8 RGB + internal mask band on the before grid (the detection grid: cropped to the site
    when one is given), tiled 512, DEFLATE.
``after_registered_dsm.tif``
    float32 metres, NaN declared as nodata, on the same grid, with the vertical offset
    (``vertical_offset_m`` of the co-registration report) removed (DSM mode only).

Dask-backed (lazy) epochs are written window by window (bounded memory). Each file carries
tags naming the original it derives from (``SITEWATCH_DERIVED_FROM``,
``SITEWATCH_DERIVED_FROM_SHA256``), the reference's hash and the co-registration model, and
:func:`derivation_record` gives the same as a JSON-ready dict for ``provenance.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from change_detection.grids import AlignedEpoch
from survey import __version__
from survey.coregister import _write_raster

__all__ = [
    "DERIVED_ROLE",
    "REGISTERED_DSM_NAME",
    "REGISTERED_NAME",
    "RegisteredEpoch",
    "derivation_record",
    "write_registered_epoch",
]

log = logging.getLogger(__name__)

#: File names of the derived products in a detection output folder.
REGISTERED_NAME = "after_registered.tif"
REGISTERED_DSM_NAME = "after_registered_dsm.tif"
#: The role the derived products carry in provenance records and evidence manifests.
DERIVED_ROLE = "derived: co-registered after epoch"

_MODEL_KEYS = (
    "model",
    "shift_x_px",
    "shift_y_px",
    "shift_east_m",
    "shift_north_m",
    "rmse_px",
    "rmse_m",
    "confidence",
    "vertical_offset_m",
)


@dataclass(frozen=True)
class RegisteredEpoch:
    """Paths written by :func:`write_registered_epoch` (``dsm`` None without a DSM)."""

    ortho: Path
    dsm: Path | None


def _model_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    return {k: report.get(k) for k in _MODEL_KEYS}


def derivation_record(
    original_role: str,
    original_path: Path,
    original_sha256: str,
    reference_sha256: str,
    report: Mapping[str, Any],
    report_file: str = "coregistration.json",
) -> dict[str, Any]:
    """What a derived raster was made from, for ``provenance.json``.

    Parameters
    ----------
    original_role : str
        ``"after_ortho"`` or ``"after_dsm"``.
    original_path, original_sha256 : Path, str
        The original raster and its SHA-256.
    reference_sha256 : str
        SHA-256 of the before orthophoto whose grid the product is on.
    report : mapping
        The co-registration report (:meth:`AlignedEpoch.report`).
    report_file : str
        Name of the report file written beside the product.
    """
    return {
        "role": DERIVED_ROLE,
        "derived_from": {
            "role": original_role,
            "path": str(Path(original_path).resolve()),
            "sha256": original_sha256,
        },
        "reference_grid": {"role": "before_ortho", "sha256": reference_sha256},
        "coregistration": {"report": report_file, **_model_summary(report)},
    }


def _tags(
    original: Path,
    original_sha256: str,
    reference_sha256: str,
    report: Mapping[str, Any],
    survey_date: str | None,
) -> dict[str, str]:
    tags = {
        "SITEWATCH_ROLE": DERIVED_ROLE,
        "SITEWATCH_DERIVED_FROM": original.name,
        "SITEWATCH_DERIVED_FROM_SHA256": original_sha256,
        "SITEWATCH_REFERENCE_SHA256": reference_sha256,
        "COREGISTRATION_MODEL": str(report.get("model")),
        "COREGISTRATION_SHIFT_PX": (
            f"{float(report.get('shift_x_px') or 0.0):.4f},"
            f"{float(report.get('shift_y_px') or 0.0):.4f}"
        ),
        "COREGISTRATION_CONFIDENCE": f"{float(report.get('confidence') or 0.0):.3f}",
        "TIFFTAG_SOFTWARE": f"sitewatch {__version__}",
    }
    if report.get("vertical_offset_m") is not None:
        tags["VERTICAL_OFFSET_REMOVED_M"] = f"{float(report['vertical_offset_m']):.4f}"
    if survey_date:
        tags["SITEWATCH_SURVEY_DATE"] = survey_date
    return tags


def write_registered_epoch(
    aligned: AlignedEpoch,
    out_dir: Path,
    *,
    after_ortho: Path,
    after_ortho_sha256: str,
    reference_sha256: str,
    after_dsm: Path | None = None,
    after_dsm_sha256: str | None = None,
    survey_date: str | None = None,
) -> RegisteredEpoch:
    """Write the aligned after epoch into ``out_dir`` (names in the module docstring).

    Parameters
    ----------
    aligned : AlignedEpoch
        From :func:`change_detection.grids.align_epoch`; numpy- or dask-backed.
    out_dir : Path
        Output folder (exists).
    after_ortho, after_ortho_sha256 : Path, str
        The original after orthophoto and its SHA-256 (written into the tags).
    reference_sha256 : str
        SHA-256 of the before orthophoto (the grid).
    after_dsm, after_dsm_sha256 : Path, str, optional
        The original after DSM and its hash; the DSM product is written when ``aligned.dsm``
        exists.
    survey_date : str, optional
        ISO date of the after survey (tag ``SITEWATCH_SURVEY_DATE``).

    Returns
    -------
    RegisteredEpoch
    """
    report = aligned.report()
    crs = aligned.reference_crs
    transform = aligned.reference_transform
    ortho = _write_raster(
        Path(out_dir) / REGISTERED_NAME,
        aligned.rgb,
        transform=transform,
        crs=crs,
        mask=aligned.valid.astype(bool),
        tags=_tags(after_ortho, after_ortho_sha256, reference_sha256, report, survey_date),
    )
    dsm: Path | None = None
    if aligned.dsm is not None:
        src = after_dsm if after_dsm is not None else after_ortho
        dsm = _write_raster(
            Path(out_dir) / REGISTERED_DSM_NAME,
            aligned.dsm.astype(np.float32),
            transform=transform,
            crs=crs,
            nodata=float("nan"),
            tags=_tags(
                src, after_dsm_sha256 or after_ortho_sha256, reference_sha256, report, survey_date
            ),
        )
    log.info("co-registered after epoch written: %s%s", ortho, "" if dsm is None else f", {dsm}")
    return RegisteredEpoch(ortho, dsm)
