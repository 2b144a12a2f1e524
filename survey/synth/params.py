"""Parameters of the synthetic survey site and the record of a generated site."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from survey.errors import SynthParamsError

__all__ = ["SynthParams", "SynthSite"]

#: Largest raster side the generator accepts, in pixels (memory stays below ~3 GiB).
MAX_SIDE_PX = 12_000


@dataclass(frozen=True)
class SynthParams:
    """Parameters of :func:`survey.synth.generate_site`.

    Attributes
    ----------
    seed : int
        Seed of every random choice (layout, textures, noise, misregistration, sun, colour).
        The same parameters give byte-identical files.
    size_m : float
        Side of the square raster extent in metres (>= 60; every planted kind still fits).
    gsd_cm : float
        Ground sampling distance in centimetres per pixel (2 to 20).
    lon, lat : float
        WGS84 position of the site centre; the rasters are in its UTM zone.
    before_date, after_date : str
        ISO dates of the two survey epochs (written to truth.json and the GeoTIFF tags).
    misregister : bool
        Misregister the after epoch by the drawn shift and rotation (the default). False keeps
        both epochs on one frame (everything else drawn as with True), for callers that tile
        the scene into a mosaic and misregister the mosaic as a whole (a per-tile rotation
        would repeat across the tiles, which no survey does).
    """

    seed: int = 0
    size_m: float = 160.0
    gsd_cm: float = 5.0
    lon: float = 114.50
    lat: float = 37.07
    before_date: str = "2025-04-15"
    after_date: str = "2025-10-15"
    misregister: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise SynthParamsError(f"seed={self.seed!r} is invalid; pass an integer >= 0")
        if not (math.isfinite(self.size_m) and 60.0 <= self.size_m <= 1000.0):
            raise SynthParamsError(
                f"size_m={self.size_m!r} is out of range; pass a side between 60 and 1000 m"
            )
        if not (math.isfinite(self.gsd_cm) and 2.0 <= self.gsd_cm <= 20.0):
            raise SynthParamsError(
                f"gsd_cm={self.gsd_cm!r} is out of range; pass 2 to 20 cm per pixel"
            )
        if self.side_px > MAX_SIDE_PX:
            raise SynthParamsError(
                f"size_m={self.size_m} at gsd_cm={self.gsd_cm} gives {self.side_px} px a side "
                f"(limit {MAX_SIDE_PX}); use a coarser --gsd-cm or a smaller --size-m"
            )
        if not (-180.0 < self.lon < 180.0):
            raise SynthParamsError(f"lon={self.lon!r} is out of range; pass -180 < lon < 180")
        if not (-80.0 <= self.lat <= 84.0):
            raise SynthParamsError(
                f"lat={self.lat!r} is outside the UTM latitudes; pass -80 <= lat <= 84"
            )
        if not self.before_date < self.after_date:
            raise SynthParamsError(
                f"before_date={self.before_date!r} is not before after_date="
                f"{self.after_date!r}; swap them"
            )

    @property
    def gsd_m(self) -> float:
        """Ground sampling distance in metres."""
        return self.gsd_cm / 100.0

    @property
    def side_px(self) -> int:
        """Raster side in pixels."""
        return round(self.size_m / self.gsd_m)

    @property
    def epsg(self) -> int:
        """EPSG code of the UTM zone of (lon, lat)."""
        zone = int((self.lon + 180.0) // 6.0) + 1
        return (32600 if self.lat >= 0 else 32700) + zone


@dataclass(frozen=True)
class SynthSite:
    """Where a generated site's files are, and its loaded truth.json.

    Attributes
    ----------
    root : Path
        The output folder.
    before_ortho, before_dsm, after_ortho, after_dsm : Path
        The four GeoTIFFs (``before/orthophoto.tif`` ...).
    site, permits, truth_geojson, truth_json : Path
        The vector files (WGS84 GeoJSON) and the truth record.
    truth : dict
        Content of ``truth.json`` (misregistration, sun, colour change, noise, thresholds).
    """

    root: Path
    before_ortho: Path
    before_dsm: Path
    after_ortho: Path
    after_dsm: Path
    site: Path
    permits: Path
    truth_geojson: Path
    truth_json: Path
    truth: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def at(cls, root: Path, truth: dict[str, Any] | None = None) -> SynthSite:
        """Return the record of a site generated into ``root`` (paths follow the fixed layout)."""
        return cls(
            root=root,
            before_ortho=root / "before" / "orthophoto.tif",
            before_dsm=root / "before" / "dsm.tif",
            after_ortho=root / "after" / "orthophoto.tif",
            after_dsm=root / "after" / "dsm.tif",
            site=root / "site.geojson",
            permits=root / "permits.geojson",
            truth_geojson=root / "truth.geojson",
            truth_json=root / "truth.json",
            truth=dict(truth or {}),
        )
