"""Derived rasters shown instead of originals: their labels, hashes and lineage.

Leads are drawn in the before (reference) frame, because detection co-registers the after
epoch onto the before grid. A review map or an evidence package that shows the after epoch
should therefore show the co-registered after rasters that detection writes
(``after_registered.tif``, ``after_registered_dsm.tif``), labelled as such, and let a reader
trace them back to the original survey by hash. :func:`derived_record` reads that lineage
from the tags the detection run writes into each derived raster (``SITEWATCH_DERIVED_FROM``,
``SITEWATCH_DERIVED_FROM_SHA256``, ``SITEWATCH_REFERENCE_SHA256``, ``COREGISTRATION_*``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import rasterio
import rasterio.errors

from maps.errors import MapError

__all__ = ["DERIVED_ROLE", "REGISTERED_LABEL", "derived_record", "file_sha256"]

#: Role of a co-registered after raster in manifests and provenance records.
DERIVED_ROLE = "derived: co-registered after epoch"
#: How the co-registered after epoch is labelled on maps, chips and profiles.
REGISTERED_LABEL = "after (co-registered to before)"

_CHUNK = 1 << 22
_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file (cached by path, size and modification time within a process)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    _cache[key] = digest = h.hexdigest()
    return digest


def derived_record(path: Path, original_role: str) -> dict[str, Any]:
    """Lineage of a co-registered after raster, JSON-ready.

    Parameters
    ----------
    path : Path
        ``after_registered.tif`` or ``after_registered_dsm.tif`` of a detection run.
    original_role : str
        Role of the original it replaces on the page (``"after_ortho"``, ``"after_dsm"``).

    Returns
    -------
    dict
        ``file``, ``sha256``, ``role`` (:data:`DERIVED_ROLE`), ``derived_from`` (``role``,
        ``file`` and ``sha256`` of the original, from the raster's tags; None where the tags
        do not say), ``reference_sha256`` and ``coregistration`` (model, shift in pixels,
        confidence, vertical offset removed).

    Raises
    ------
    MapError
        The file is missing or not a raster.
    """
    path = Path(path)
    if not path.is_file():
        raise MapError(f"{path}: co-registered raster not found; check the path")
    try:
        with rasterio.open(path) as ds:
            tags = ds.tags()
    except rasterio.errors.RasterioIOError as exc:
        raise MapError(
            f"{path}: not a raster ({exc}); pass the after_registered*.tif written by "
            "sitewatch detect"
        ) from exc
    return {
        "file": path.name,
        "sha256": file_sha256(path),
        "role": DERIVED_ROLE,
        "derived_from": {
            "role": original_role,
            "file": tags.get("SITEWATCH_DERIVED_FROM"),
            "sha256": tags.get("SITEWATCH_DERIVED_FROM_SHA256"),
        },
        "reference_sha256": tags.get("SITEWATCH_REFERENCE_SHA256"),
        "coregistration": {
            "model": tags.get("COREGISTRATION_MODEL"),
            "shift_px": tags.get("COREGISTRATION_SHIFT_PX"),
            "confidence": tags.get("COREGISTRATION_CONFIDENCE"),
            "vertical_offset_removed_m": tags.get("VERTICAL_OFFSET_REMOVED_M"),
        },
    }
