"""sitewatch maps: offline review maps and evidence packages (presentation only).

The only folium importer of the project. It takes leads, raster paths and WGS84 features as
data and renders them; it computes no detection logic and never imports :mod:`survey`.
"""

from __future__ import annotations

from maps.assets import LIBRARIES, VendoredLibrary, check_offline, copy_assets
from maps.casefile import CaseFile, render_case_file
from maps.chips import render_chip, render_height_profile, sample_profile
from maps.errors import MapError, PackageError
from maps.package import EvidencePackage, build_evidence_package, verify_evidence_package
from maps.review import CLASS_COLORS, ReviewMap, render_lead_view, render_review_map
from maps.tiles import TileSet, native_zoom, render_tiles

__all__ = [
    "CLASS_COLORS",
    "LIBRARIES",
    "CaseFile",
    "EvidencePackage",
    "MapError",
    "PackageError",
    "ReviewMap",
    "TileSet",
    "VendoredLibrary",
    "build_evidence_package",
    "check_offline",
    "copy_assets",
    "native_zoom",
    "render_case_file",
    "render_chip",
    "render_height_profile",
    "render_lead_view",
    "render_review_map",
    "render_tiles",
    "sample_profile",
    "verify_evidence_package",
]
