"""Sub-pixel co-registration of a new survey epoch against a reference epoch.

The package, one module per subject (the steps below name where each lives):

- :mod:`.estimate` — :func:`coregister`, the whole estimate, step by step;
- :mod:`.params` — :class:`CoregParams`, the tie-point table (:data:`TIEPOINT_DTYPE`) and grid;
- :mod:`.result` — :class:`CoregResult` and the pull map of a model;
- :mod:`.representation` — what is matched (step 1) and the window tapers;
- :mod:`.lines` — line work (permit maps): detection, ink, repeats;
- :mod:`.coarse` — the coarse whole-image shift (step 2);
- :mod:`.correlation` — the batched phase correlation and its sub-pixel refinement (step 3);
- :mod:`.tiepoints` — the tie-point passes and their screening (steps 3 and 4);
- :mod:`.models` — translation, affine, warp field, RANSAC (scikit-image), BIC (step 5);
- :mod:`.selection` — the model chosen, its confidence, plain failures (steps 5 and 6);
- :mod:`.warp` — resampling by a model;
- :mod:`.vertical` — the DSM vertical offset;
- :mod:`.caches` — the speed and memory machinery the algorithm calls: the row-band cache,
  the reference's window stash, block means read strip by strip or chunk by chunk.

The algorithm works on two rasters that already share one pixel grid (the xarray layer in
:mod:`change_detection.grids` brings them there) and estimates the residual misregistration:

1. **Illumination-robust representation.** Each image (grey, or RGB averaged to grey) is
   smoothed with a Gaussian (``sigma_px``), its gradient magnitude (central differences) is
   divided by its own local mean (box of half-width ``normalise_px``) plus a floor, so a
   change of brightness, contrast or local shading leaves it nearly unchanged; DSM heights
   are matched the same way (height steps are the structure two DSMs share). Line work (a
   permit map) is matched on its ink instead (see "Line work" below). Invalid pixels are
   weighted out smoothly so mask borders create no structure.
2. **Coarse global shift.** Both images are block-averaged to at most ``coarse_px`` pixels a
   side (read strip by strip, so memory stays bounded), or handed in as :class:`CoarseImages`
   (e.g. from the files' overviews, :mod:`survey.overviews`) with where each coarse grid lies,
   and phase-correlated as a whole. This finds shifts of up to half the raster and checks the
   overlap of the valid areas.
3. **Tie points.** Windows of ``window_px`` on a regular grid are phase-correlated at full
   resolution around the coarse shift, the target window being cut at the coarse offset. The
   integer peak of the normalised cross-power spectrum is refined by the matrix-multiply
   upsampled DFT of Guizar-Sicairos et al. (2008) in stages of 10x (to 1/``upsample`` px); we
   write our own batched version instead of calling ``skimage.registration.
   phase_cross_correlation`` per window because it refines hundreds of windows in one batched
   matrix product, restricts the search to the plausible range around the coarse shift, and
   gives the second-highest peak needed to detect repeating patterns. The normalised
   cross-power spectrum is weighted by a Gaussian low-pass (``spectral_sigma``) with the
   Nyquist terms removed: pure phase correlation on windows is pulled towards whole pixels by
   window leakage (measured bias 0.07 px at a 0.25 px shift, < 0.003 px with the weight).
   When a robust affine fit of this pass moves windows by more than a quarter of the search
   range from the coarse offset (rotation or scale on a large raster), the grid is measured
   again, each target window cut where that fit puts it. Lazy inputs are read through a
   row-band cache so each band of rows is decoded once; a lazy reference's windows, whose
   places do not depend on the shift, are cut out of the chunks the coarse pass decodes, so
   the tie-point passes decode only the target.
4. **Reliability.** A tie point is rejected when its windows are mostly nodata, featureless,
   its peak is weak (peak-to-noise below ``min_snr``), ambiguous (second peak over
   ``max_peak_ratio`` of the first: periodic texture), at the edge of the search range, locally
   inconsistent with its neighbours (after removing a robust affine trend, so smooth warps pass)
   or an outlier of the final model (RANSAC-style threshold ``ransac_threshold_px``).
5. **Model chosen by the data.** Translation, affine and a smooth local warp (affine plus a
   bilinear displacement field on a coarse control grid, fitted by ridge regression with a
   second-difference penalty whose weight is chosen by generalised cross-validation) are
   compared by the Bayesian information criterion (the warp counted with the trace of its hat
   matrix, per component) on the same tie points; ``params.model`` can force one.
6. **Confidence** in 0..1 from the number, spread, inlier fraction and residual of the tie
   points; failures give warnings and low confidence, or :class:`CoregistrationError` under
   ``strict``.

Line work
---------
A georeferenced permit map (outlines of buildings and road edges drawn as ink on plain paper,
rasterised or scanned, with text and hatching) shares with a photograph the places where
things begin and end, not their look. Matching the gradient magnitude of both (step 1) fails:
a stroke's gradient is a double ridge, one on each side of the stroke and zero on it, while a
photo's building edge gives one ridge on the edge; and a map has no texture, so its windows
far from lines hold nothing. Measured on a 512 px rendered town (tests' ``render_lines``:
outlines drawn just inside each footprint) against a photo of it: mapping error 0.68 px for a
shift, 0.71 px at 0.5 deg, 0.57 px at 1.005 scale, 0.93 px at -1 deg and 0.99 scale, at
confidence 0.10-0.19, 32-33 of 49 windows "weak". So, for an input that
:func:`detect_line_work` finds to be line work (or that ``CoregParams.reference_kind`` /
``target_kind`` declares so):

- it is matched on its **ink density** (:func:`ink_representation`: distance from the paper
  level over the ink contrast, blurred by ``sigma_px``), which peaks on the stroke's centre as
  the photo's gradient magnitude peaks on the edge; the other input keeps its representation;
- windows with less ink than a line across a third of the window are "featureless" and do not
  vote;
- the windows are tapered by a flat-topped Tukey window instead of a Hann window, which keeps
  the strokes of whole buildings near the window's edges: with outlines centred on the
  footprint, 47 of 49 windows within 0.3 px (spread 0.10 px) against 30 of 49 (0.18 px);
- after the first pass, the windows are measured once more on the target resampled (cubic)
  through a robust affine fit of that pass, so a rotation or scale no longer smears the broad
  peaks inside a window: at -1 deg and 0.99 scale, 0.23 -> 0.08 px;
- line work that repeats itself exactly (a regular estate drawn identically, a grid; an
  isolated autocorrelation peak of at least 0.75, see :func:`_self_repeat`) cannot tell a
  shift from one a whole repeat longer, which a photo's texture can: the result is capped at
  confidence 0.25 with a warning (an estate shifted by one repeat was reported 40 px off at
  confidence 0.90 before).

Measured after (same scenes): outlines centred on the footprints, antialiased or not, 1.5 or
2.5 px wide, with text clutter and hatching, dark on light or light on dark: 0.04-0.08 px at
confidence 0.84-0.92 for a shift, 1 deg, 0.99 scale, -0.3 deg with 1.003; outlines drawn just
inside the footprints: 0.14-0.22 px at confidence 0.47 (each stroke lies 0.75 px inside its
edge; that cancels only over whole buildings). Twelve towns with other suns, shadows of 4 to
10 px, other contrast and random shifts (up to 8 px), rotations (up to 1 deg) and scales (up
to 1 %): median 0.14 px, worst 0.23 px (a shadow's outer edge a few pixels from an outline
pulls the peak; the shortest shadows pull most). Wrong answers: maps of twelve other towns, a
blank sheet, a grid, text alone and random lines against a photo: confidence 0; photos of other
places against a map: 0. Photo pairs are matched exactly as before (bit-identical tie points).
Outlines drawn from the WHU-CD change labels (only the changed buildings, hand-digitised)
against their real after images: 0.05-1.0 px at confidence 0.08-0.22, i.e. reported as
unreliable.

Conventions
-----------
Pixel coordinates are array indices: ``x`` is the column, ``y`` the row, the centre of pixel
``[row, col]`` is ``(x=col, y=row)``.

The **shift** ``(shift_x_px, shift_y_px)`` is the displacement that maps the target onto the
reference, in reference pixels: a feature seen at target pixel ``(x, y)`` lies at
``(x + shift_x_px, y + shift_y_px)`` in the reference, and the aligned target is
``aligned[y, x] = target[y - shift_y_px, x - shift_x_px]``. It is the same convention as
``skimage.registration.phase_cross_correlation(reference, target)`` and
``scipy.ndimage.shift(target, (shift_y_px, shift_x_px)) ~ reference``. For affine and warp
models it is the displacement at the centre of the reference raster.

The **mapping** of a model is the pull map from a reference pixel ``p = (x, y)`` to the target
pixel ``q`` showing the same ground (what resampling needs): ``q = p - shift`` for a
translation, ``q = A p + b`` for an affine model (``A``, ``b`` in ``parameters["pull_matrix"]``
as a 2x3 matrix ``[A | b]``), ``q = A p + b + w(p)`` for the warp, ``w`` bilinear on the control
grid ``parameters["grid_x"], ["grid_y"]`` with values ``["grid_dx"], ["grid_dy"]``.

Tie point measurements ``dx, dy`` use the shift convention at the window centre ``(x, y)``.

Example
-------
>>> import numpy as np
>>> from scipy import ndimage
>>> rng = np.random.default_rng(0)
>>> scene = ndimage.gaussian_filter(rng.normal(size=(512, 512)), 2.0)
>>> target = ndimage.shift(scene, (-3.25, 1.5), order=3, mode="nearest")
>>> result = coregister(scene, target, params=CoregParams(model="translation"))
>>> round(result.shift_x_px, 1), round(result.shift_y_px, 1)
(-1.5, 3.2)
"""

from __future__ import annotations

# private names that grids.py, survey.overviews, the benchmarks and the tests import from here
from change_detection.coregistration.caches import _BandCache as _BandCache
from change_detection.coregistration.caches import _block_mean as _block_mean
from change_detection.coregistration.caches import _read_window as _read_window
from change_detection.coregistration.caches import _WindowStash as _WindowStash
from change_detection.coregistration.coarse import CoarseImages
from change_detection.coregistration.estimate import coregister
from change_detection.coregistration.lines import LineWork, detect_line_work, ink_representation
from change_detection.coregistration.params import TIEPOINT_DTYPE, CoregParams, InputKind, ModelName
from change_detection.coregistration.params import _tie_geometry as _tie_geometry
from change_detection.coregistration.representation import gradient_representation
from change_detection.coregistration.result import (
    SHIFT_CONVENTION,
    CoregResult,
    translation_mapping,
)
from change_detection.coregistration.result import _Mapping as _Mapping
from change_detection.coregistration.vertical import estimate_vertical_offset
from change_detection.coregistration.warp import _gather_bilinear as _gather_bilinear
from change_detection.coregistration.warp import _warp_kind as _warp_kind
from change_detection.coregistration.warp import warp_array, warp_arrays

__all__ = [
    "SHIFT_CONVENTION",
    "TIEPOINT_DTYPE",
    "CoarseImages",
    "CoregParams",
    "CoregResult",
    "InputKind",
    "LineWork",
    "ModelName",
    "coregister",
    "detect_line_work",
    "estimate_vertical_offset",
    "gradient_representation",
    "ink_representation",
    "translation_mapping",
    "warp_array",
    "warp_arrays",
]
