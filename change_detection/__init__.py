"""Co-registration and change detection: pure array code plus a thin xarray layer."""

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

__all__ = [
    "AlignedEpoch",
    "CoregParams",
    "CoregResult",
    "align_epoch",
    "coregister",
    "estimate_vertical_offset",
]
__all__ += [
    "CHANGE_CODES",
    "ChangeObject",
    "ChangeResult",
    "DetectParams",
    "Epoch",
    "Permit",
    "build_leads",
    "detect_changes",
    "lead_id",
]
__all__ += [
    "AtlasOffset",
    "ExistingBuilding",
    "Lead",
    "LineWork",
    "OutlineMatch",
    "derive_dtm",
    "derive_dtm_lazy",
    "detect_line_work",
    "estimate_atlas_offset",
    "ink_representation",
    "with_unique_ids",
]
