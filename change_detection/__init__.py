"""Co-registration and change detection: pure array code plus a thin xarray layer.

The public names below are imported on first use (PEP 562): ``import change_detection`` or
``from change_detection.leads import Lead`` costs only the modules they need, not scipy,
scikit-image, xarray and rasterio (about 2 s of CPU), which commands that only read the
registry never touch. ``from change_detection import X``, ``change_detection.X`` and
``change_detection.<submodule>`` work as if everything had been imported here.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real imports, for type checkers and readers
    from change_detection.atlas import AtlasOffset, OutlineMatch, estimate_atlas_offset
    from change_detection.change import CHANGE_CODES
    from change_detection.coregistration import (
        CoregParams,
        CoregResult,
        LineWork,
        coregister,
        detect_line_work,
        estimate_vertical_offset,
        ink_representation,
    )
    from change_detection.detect import ChangeResult, Epoch, detect_changes
    from change_detection.grids import AlignedEpoch, align_epoch
    from change_detection.leads import Lead, with_unique_ids
    from change_detection.objects import ChangeObject
    from change_detection.params import DetectParams
    from change_detection.permits import ExistingBuilding, Permit, build_leads, lead_id
    from change_detection.terrain import derive_dtm, derive_dtm_lazy

_SUBMODULE: dict[str, str] = {
    "AtlasOffset": "atlas",
    "OutlineMatch": "atlas",
    "estimate_atlas_offset": "atlas",
    "CHANGE_CODES": "change",
    "CoregParams": "coregistration",
    "CoregResult": "coregistration",
    "LineWork": "coregistration",
    "coregister": "coregistration",
    "detect_line_work": "coregistration",
    "estimate_vertical_offset": "coregistration",
    "ink_representation": "coregistration",
    "ChangeResult": "detect",
    "Epoch": "detect",
    "detect_changes": "detect",
    "AlignedEpoch": "grids",
    "align_epoch": "grids",
    "Lead": "leads",
    "with_unique_ids": "leads",
    "ChangeObject": "objects",
    "DetectParams": "params",
    "ExistingBuilding": "permits",
    "Permit": "permits",
    "build_leads": "permits",
    "lead_id": "permits",
    "derive_dtm": "terrain",
    "derive_dtm_lazy": "terrain",
}
"""Public name → the submodule that defines it."""

__all__ = [
    "CHANGE_CODES",
    "AlignedEpoch",
    "AtlasOffset",
    "ChangeObject",
    "ChangeResult",
    "CoregParams",
    "CoregResult",
    "DetectParams",
    "Epoch",
    "ExistingBuilding",
    "Lead",
    "LineWork",
    "OutlineMatch",
    "Permit",
    "align_epoch",
    "build_leads",
    "coregister",
    "derive_dtm",
    "derive_dtm_lazy",
    "detect_changes",
    "detect_line_work",
    "estimate_atlas_offset",
    "estimate_vertical_offset",
    "ink_representation",
    "lead_id",
    "with_unique_ids",
]


def __getattr__(name: str) -> Any:
    """Import a public name's submodule on first use (then it is an ordinary attribute)."""
    submodule = _SUBMODULE.get(name)
    if submodule is not None:
        value = getattr(importlib.import_module(f"{__name__}.{submodule}"), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f"{__name__}.{name}")  # change_detection.grids etc.
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
