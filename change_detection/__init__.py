"""Co-registration and change detection: pure array code plus a thin xarray layer."""

from change_detection.coregistration import (
    CoregParams,
    CoregResult,
    coregister,
    estimate_vertical_offset,
)
from change_detection.grids import AlignedEpoch, align_epoch

__all__ = [
    "AlignedEpoch",
    "CoregParams",
    "CoregResult",
    "align_epoch",
    "coregister",
    "estimate_vertical_offset",
]
