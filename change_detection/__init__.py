"""Co-registration and change detection: pure array code plus a thin xarray layer."""

from change_detection.change import CHANGE_CODES
from change_detection.coregistration import (
    CoregParams,
    CoregResult,
    coregister,
    estimate_vertical_offset,
)
from change_detection.detect import ChangeResult, Epoch, detect_changes
from change_detection.grids import AlignedEpoch, align_epoch
from change_detection.objects import ChangeObject
from change_detection.params import DetectParams
from change_detection.permits import Permit, build_leads, lead_id

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
