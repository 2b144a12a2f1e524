"""Parameters of change detection, one frozen dataclass with documented defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from change_detection.errors import ChangeDetectionError

__all__ = ["DetectParams"]


@dataclass(frozen=True)
class DetectParams:
    """Thresholds and windows of :func:`change_detection.detect.detect_changes`.

    Lengths are in metres of the projected grid and converted to pixels with the ground
    sampling distance, so the same parameters work at 2 cm and at 20 cm.

    Attributes
    ----------
    min_area_m2 : float
        Smallest change footprint that becomes a lead (default 6 m², a garden shed).
    min_height_m : float
        Smallest height change that counts as built (default 2.5 m, below one storey; parked
        cars, material piles and DSM noise stay under it).
    storey_height_m : float
        Height of one floor for ``floors_added`` (default 3 m).
    height_quantile : float
        Quantile of the per-pixel height changes inside an object reported as its height gain
        (default 0.5, the median: robust to edge pixels and DSM spikes).
    edge_margin_m : float
        Objects are eroded by this margin before their height is measured, so the blurred
        edges of a DSM do not pull the statistic down (default 0.5 m).
    edge_grow_m : float
        Objects grow by up to this distance into pixels whose height change is at least half
        the local peak change, so the outline sits at half the step height of the DSM's ramped
        edges (default 0.45 m).
    open_radius_m : float
        Radius of the morphological opening that removes speckle and the thin slivers left at
        building edges by residual misregistration (default 0.3 m).
    close_radius_m : float
        Radius of the closing that fills pin holes and edge notches (default 0.1 m).
    ground_window_m : float
        Width of the grey-scale opening that estimates the ground under the before epoch
        (an nDSM: structures narrower than this are lifted off the ground; default 40 m).
    ground_cell_m : float
        The ground filter runs on a grid of about this cell size (block minimum; default
        0.4 m), which keeps it cheap and its halo small.
    vegetation_exg_exr : float
        A pixel is vegetation when ExG − ExR exceeds this (Meyer & Neto 2008 use 0; default
        0.05) and its GLI exceeds ``vegetation_gli``.
    vegetation_gli : float
        Green Leaf Index threshold (default 0.03).
    vegetation_ndvi : float
        With a near-infrared band (``Epoch.nir``), a pixel has the colour of vegetation when
        its NDVI = (NIR − R) / (NIR + R) exceeds this instead of the RGB indices (default
        0.3: leaves reflect NIR strongly, paint, soil and concrete do not).
    planar_window_m : float
        Side of the square windows of the DSM plane fit that tell a roof from a canopy
        (default 1.6 m: several fit on a shed's roof, while a crown's clumps and gaps do not
        fit a plane at that scale). The windows sit on a grid of about 0.2 m (half the
        ground filter's cell). A height change whose colour says vegetation is suppressed
        unless it lies in a planar window, one whose pixels all changed height in the same
        direction (a lawn beside a tree is planar but did not change), or within
        ``roof_edge_m`` of one.
    roof_edge_m : float
        How far beyond its planar windows a roof in a vegetation colour keeps its pixels
        (default 0.4 m: the band along its walls where DSM artefacts make windows non-planar,
        about 0.3 m in dense matching, and the windows' grid step). Wider takes in more of a
        lawn's ramp along the walls, narrower loses roof edges.
    planar_residual_m : float
        A window is planar when the RMS residual of its least-squares plane is at most this
        (default 0.13 m: the windows of a roof with 0.1 m of DSM noise stay under 0.12 m,
        those of a canopy with about 1 m of relief within a metre fall under 0.13 m about
        twice in 10^4; on the synthetic site roofs give 0.05–0.09 m, crowns a median of
        0.24–0.37 m). Smoother canopies (a dense crop) look planar. 0 turns the test off: the
        colour alone decides, as before issue 12.
    shadow_ratio : float
        RGB-only mode: a roof candidate whose mean brightness is below this fraction of its
        orthophoto's mean brightness is taken for a shadow (default 0.6; very dark roofs are
        missed with it). The pixel classifier
        :func:`~change_detection.spectral.classify_spectral_change` compares pixels with the
        local mean brightness instead.
    norm_window_m : float
        Window of the local normalisation of
        :func:`~change_detection.spectral.classify_spectral_change`, the earlier pixel
        classifier of RGB-only mode, still public (default 60 m).
    chroma_threshold : float
        Chromaticity change (r, g distance, after the local normalisation) above which a pixel
        has changed to the earlier pixel classifier (default 0.06).
    brightness_threshold : float
        Absolute log-brightness ratio (after the local normalisation) above which a pixel has
        changed to the earlier pixel classifier (default 0.35, a factor of about 1.4).
    rgb_smooth_m : float
        RGB-only mode (:mod:`change_detection.spectral`): standard deviation of the Gaussian
        that smooths both orthophotos before their colour gradients and differences are
        taken (default 0.15 m, at least 0.7 px): below the width of a roof's edge, above
        roof tiles and sensor noise.
    rgb_edge_contrast : float
        A colour step (step-normalised colour gradient, DN) larger than this fraction of the
        orthophoto's colour spread (the RMS over bands of the inter-quartile range / 1.349,
        at least 8 DN) bounds a segment (default 0.5).
    rgb_tolerance_m : float
        Misregistration and relief displacement that the comparison of the epochs forgives:
        a pixel has not changed when its colour lies within the range of the other epoch's
        colours within this distance, and the outline of a segment is "an edge in the other
        epoch" when an edge lies within it (default 0.6 m).
    rgb_change_sigma : float
        A segment changed when its mean colour difference to the other epoch (that range
        test, after the radiometric normalisation) is at least this multiple of the before
        orthophoto's colour spread (default 0.75).
    rgb_outline_ratio : float
        Roofs are bounded by edges: a segment is a roof candidate when the edge strength along
        its outline is at least this multiple of its interior's mean gradient in its own epoch,
        and a *new* one (or a removed one) when that ratio stays below it in the other epoch —
        otherwise the outline was already there (an existing roof re-coloured or relit, a lawn
        turning green inside its fences; default 4).
    min_building_width_m : float
        RGB-only mode: narrowest roof (the short side of the minimum rotated rectangle of its
        outline, default 2.5 m: cars and vans are at most 2.1 m wide, garden sheds wider).
    rgb_min_solidity : float
        RGB-only mode: smallest ratio of a roof's area to its convex hull's (default 0.8; roof
        facets are convex, tracks, shadows of trees and piles of material are not).
    rgb_vegetation_fraction : float
        RGB-only mode: a segment with at least this fraction of pixels in the colour of
        vegetation (:func:`~change_detection.change.vegetation_mask`) is vegetation
        (default 0.3) unless it is rectilinear (``rgb_painted_rectangularity``).
    rgb_painted_rectangularity : float
        Vegetation is not a colour: a segment in the colour of vegetation whose area fills at
        least this fraction of its minimum rotated rectangle is kept as a painted roof (green
        colour steel); crowns (a disk fills 0.785) and lawns inside old fences (their outline
        is an edge in both epochs) are not (default 0.85). With a near-infrared band NDVI
        decides and there is no exception.
    rgb_lead_min_width_m : float
        RGB-only mode: narrowest lead (the short side of the minimum rotated rectangle of the
        assembled roof, default 4 m). Without heights a narrower change is more often a
        vehicle, a container or caravan (at most 2.6 m wide) or a sliver of misregistration
        along an existing building than a building.
    rgb_lead_min_area_m2 : float
        RGB-only mode: smallest lead (default 25 m²: many building codes exempt smaller
        single-storey detached buildings, e.g. New Zealand's Building Act, Schedule 1; a
        site with stricter rules lowers it); ``min_area_m2`` still applies when larger.
    rgb_normalise : bool
        Radiometric normalisation between the epochs in RGB-only mode (default True): each
        band of the after orthophoto is multiplied by the gain at the mode of the per-band
        log-ratio of 0.4 m cell means nearest to no change (a mean shift from 0 with a 0.1
        bandwidth), so a global change of exposure or white balance cancels while changed
        areas, off that mode, do not pull it.
    rgb_saturated_dn : int
        RGB-only mode: a pixel with a band at this value or above is blown out (default 255,
        the 8-bit ceiling): its colour is unknown, so it is no evidence of a roof either way
        and is left out of the segments and of the colour ranges compared with.
    height_tolerance_m : float
        Measured building height may exceed a permit's ``max_height_m`` by this much before
        it is flagged ``over_height`` (default 0.5 m: DSM noise and roof furniture).
    simplify_m : float
        Douglas–Peucker tolerance of the output polygons (default 0.1 m).
    chunk_px : int
        Side of the square processing chunks in pixels (rounded to a multiple of the ground
        cell; default 1024).
    group_px : int
        Side of the square groups of chunks computed one after the other (default 8192 px,
        8 x 8 chunks; the rows and columns of chunks are split evenly, so a 20480 px raster
        runs as 3 x 3 groups of 7168 px): dask works through a group row by row and holds
        the rows of chunks its halos still need, so what it holds grows with the width of a
        group; groups keep peak memory flat for larger rasters, at the cost of reading the
        chunks around each group twice. A group is at least one chunk, whatever
        ``chunk_px``. Results do not depend on it. Measured for the whole detect at 16384 px
        (inputs with DSMs): groups of 8192 px 1.35 GB peak and 36 s in the detection stage,
        one group of 16384 px 2.45 GB and 30 s.
    coregister : bool
        Co-register the after epoch onto the before epoch before differencing (default True).
    """

    min_area_m2: float = 6.0
    min_height_m: float = 2.5
    storey_height_m: float = 3.0
    height_quantile: float = 0.5
    edge_margin_m: float = 0.5
    edge_grow_m: float = 0.45
    open_radius_m: float = 0.3
    close_radius_m: float = 0.1
    ground_window_m: float = 40.0
    ground_cell_m: float = 0.4
    vegetation_exg_exr: float = 0.05
    vegetation_gli: float = 0.03
    vegetation_ndvi: float = 0.3
    planar_window_m: float = 1.6
    roof_edge_m: float = 0.4
    planar_residual_m: float = 0.13
    shadow_ratio: float = 0.6
    norm_window_m: float = 60.0
    chroma_threshold: float = 0.06
    brightness_threshold: float = 0.35
    rgb_smooth_m: float = 0.15
    rgb_edge_contrast: float = 0.5
    rgb_tolerance_m: float = 0.6
    rgb_change_sigma: float = 0.75
    rgb_outline_ratio: float = 4.0
    min_building_width_m: float = 2.5
    rgb_min_solidity: float = 0.8
    rgb_vegetation_fraction: float = 0.3
    rgb_painted_rectangularity: float = 0.85
    rgb_lead_min_width_m: float = 4.0
    rgb_lead_min_area_m2: float = 25.0
    rgb_normalise: bool = True
    rgb_saturated_dn: int = 255
    height_tolerance_m: float = 0.5
    simplify_m: float = 0.1
    chunk_px: int = 1024
    group_px: int = 8192
    coregister: bool = True

    def __post_init__(self) -> None:
        positive = {
            "min_area_m2": self.min_area_m2,
            "min_height_m": self.min_height_m,
            "storey_height_m": self.storey_height_m,
            "ground_window_m": self.ground_window_m,
            "ground_cell_m": self.ground_cell_m,
            "norm_window_m": self.norm_window_m,
            "chroma_threshold": self.chroma_threshold,
            "brightness_threshold": self.brightness_threshold,
            "shadow_ratio": self.shadow_ratio,
            "planar_window_m": self.planar_window_m,
            "rgb_smooth_m": self.rgb_smooth_m,
            "rgb_edge_contrast": self.rgb_edge_contrast,
            "rgb_change_sigma": self.rgb_change_sigma,
            "rgb_outline_ratio": self.rgb_outline_ratio,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ChangeDetectionError(f"DetectParams.{name} = {value}; it must be > 0")
        non_negative = {
            "edge_margin_m": self.edge_margin_m,
            "edge_grow_m": self.edge_grow_m,
            "open_radius_m": self.open_radius_m,
            "close_radius_m": self.close_radius_m,
            "height_tolerance_m": self.height_tolerance_m,
            "simplify_m": self.simplify_m,
            "planar_residual_m": self.planar_residual_m,
            "roof_edge_m": self.roof_edge_m,
            "rgb_tolerance_m": self.rgb_tolerance_m,
            "min_building_width_m": self.min_building_width_m,
            "rgb_lead_min_width_m": self.rgb_lead_min_width_m,
            "rgb_lead_min_area_m2": self.rgb_lead_min_area_m2,
        }
        for name, value in non_negative.items():
            if not value >= 0:
                raise ChangeDetectionError(f"DetectParams.{name} = {value}; it must be >= 0")
        if not 0.0 <= self.height_quantile <= 1.0:
            raise ChangeDetectionError(
                f"DetectParams.height_quantile = {self.height_quantile}; use a value in [0, 1]"
            )
        if not -1.0 < self.vegetation_ndvi < 1.0:
            raise ChangeDetectionError(
                f"DetectParams.vegetation_ndvi = {self.vegetation_ndvi}; use a value in (-1, 1)"
            )
        for name, value in (
            ("rgb_min_solidity", self.rgb_min_solidity),
            ("rgb_vegetation_fraction", self.rgb_vegetation_fraction),
            ("rgb_painted_rectangularity", self.rgb_painted_rectangularity),
        ):
            if not 0.0 <= value <= 1.0:
                raise ChangeDetectionError(
                    f"DetectParams.{name} = {value}; use a fraction in [0, 1]"
                )
        if not 1 <= self.rgb_saturated_dn <= 256:
            raise ChangeDetectionError(
                f"DetectParams.rgb_saturated_dn = {self.rgb_saturated_dn}; use 1-255 "
                "(256 treats no pixel as saturated)"
            )
        if self.chunk_px < 64:
            raise ChangeDetectionError(
                f"DetectParams.chunk_px = {self.chunk_px}; use at least 64 pixels"
            )
        if self.group_px < 1:
            raise ChangeDetectionError(
                f"DetectParams.group_px = {self.group_px}; use a positive number of pixels"
            )

    def as_dict(self) -> dict[str, Any]:
        """Return the parameters as a JSON-ready dict (for provenance records)."""
        return asdict(self)
