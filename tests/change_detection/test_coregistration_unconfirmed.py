"""A coarse whole-image shift that the tie points do not confirm does not move the target.

When too few tie points agree for a model, the coarse whole-image peak used to be applied on
its own (at confidence 0.2). On already aligned real pairs that moved the after epoch by up to
1.6 px and made false RGB-only leads. It is now applied only when the tie windows with a clear
peak do not mostly put the shift elsewhere (none at all on a raster too small for strong
windows: ``test_small_raster_falls_back_to_the_whole_image_shift_with_low_confidence``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from PIL import Image
from scipy import ndimage

from change_detection.coregistration import coregister
from change_detection.detect import Epoch, detect_changes

GSD = 0.2
T = Affine(GSD, 0.0, 500000.0, 0.0, -GSD, 4000000.0)


def _da(data: np.ndarray) -> xr.DataArray:
    dims = ("band", "y", "x") if data.ndim == 3 else ("y", "x")
    return xr.DataArray(data, dims=dims).rio.write_crs(32650).rio.write_transform(T)


def _low_texture_rgb(n: int = 384, seed: int = 3) -> np.ndarray:
    """A field of bare soil: smooth colour variations of a few DN, uint8 (3, n, n)."""
    rng = np.random.default_rng(seed)
    soil = ndimage.gaussian_filter(rng.normal(0.0, 1.0, (n, n)), 8.0)
    soil = 5.0 * soil / soil.std()
    rgb = np.stack([150 + soil, 135 + soil, 110 + 0.8 * soil])
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def test_identical_aligned_low_texture_epochs_are_not_moved_and_give_no_lead() -> None:
    rgb = _low_texture_rgb()
    result = coregister(rgb, rgb.copy())
    assert (result.shift_x_px, result.shift_y_px) == (0.0, 0.0)
    moved = result.warp(rgb.astype(np.float32))
    assert np.array_equal(np.asarray(moved), rgb.astype(np.float32))
    ok = _da(np.ones(rgb.shape[1:], bool))
    found = detect_changes(Epoch(_da(rgb), ok, None), Epoch(_da(rgb.copy()), ok, None))
    assert found.mode == "rgb_only"
    assert found.objects == ()


@pytest.mark.realdata
def test_an_aligned_real_pair_is_left_unshifted_with_the_reason(realdata: Path) -> None:
    """WHU-CD ``lgpnet_train_2`` (an unchanged residential tile, already aligned): the
    whole-image peak is at (1.63, -0.34) px but only 7 of the 24 tie windows with a clear
    peak agree with it (measured), so the after epoch is not moved."""
    folder = realdata / "cd" / "WHU-CD"
    before, after = (
        np.asarray(Image.open(folder / e / "lgpnet_train_2.tif").convert("RGB")).transpose(2, 0, 1)
        for e in ("A", "B")
    )
    result = coregister(before, after)
    assert result.model == "identity"
    assert (result.shift_x_px, result.shift_y_px) == (0.0, 0.0)
    assert result.confidence == 0.0
    assert result.coarse_shift_px[0] == pytest.approx(1.63, abs=0.05)
    assert any("was not applied" in w and "left unshifted" in w for w in result.warnings)
