"""The synthetic survey site: the system's default scene and its test oracle.

:func:`generate_site` writes two survey epochs of a construction site (orthophoto and DSM
GeoTIFFs), the site boundary, the permits and the ground truth of every planted change::

    DIR/before/orthophoto.tif   uint8 RGB, internal mask band, tiled, DEFLATE
    DIR/before/dsm.tif          float32 metres AMSL, nodata -9999
    DIR/after/...               the same, misregistered, relit and recoloured
    DIR/site.geojson            site boundary (WGS84)
    DIR/permits.geojson         permit_id, max_height_m, floors, valid_from, valid_to
    DIR/truth.geojson           one feature per planted change and distractor
    DIR/truth.json              misregistration, sun, colour change, noise, thresholds

The after epoch is misregistered: a ground point at true UTM (E, N) appears in the after
rasters at ``R(r)·((E, N) − c) + c + (dx, dy)`` (R the counter-clockwise rotation by
``rotation_deg``, c the site centre, (dx, dy) = ``shift_m``), it carries a global vertical
offset, a new sun (shadows, shading) and a colour change
``after_DN = 255·gain·(DN/255)^gamma + offset``, all declared in truth.json. Both epochs share
one grid, so the (row, col) shift that maps the after raster onto the before one is
``(dy/gsd, −dx/gsd)`` (``register_shift_rc_px``, the sign of skimage's
``phase_cross_correlation(before, after)``) and ``after_rc_from_before_rc`` is the full map
on pixel-centre indices.

Example
-------
>>> from pathlib import Path; import tempfile
>>> site = generate_site(Path(tempfile.mkdtemp()), SynthParams(seed=1, size_m=60, gsd_cm=20))
>>> site.truth["crs"]
'EPSG:32650'
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.enums import ColorInterp
from shapely.geometry.base import BaseGeometry

from survey.rasters import atomic_path, write_geotiff
from survey.synth.params import SynthParams, SynthSite
from survey.synth.render import Misregistration, SynthScene, polygon_mask, render_scene
from survey.vectors import reproject_geometries, write_features

__all__ = [
    "DSM_NODATA",
    "Misregistration",
    "SynthParams",
    "SynthScene",
    "SynthSite",
    "generate_site",
    "polygon_mask",
    "render_scene",
    "write_scene",
]

log = logging.getLogger(__name__)

#: Nodata value declared in the DSM GeoTIFFs.
DSM_NODATA = -9999.0


def generate_site(out_dir: Path, params: SynthParams = SynthParams()) -> SynthSite:  # noqa: B008
    """Render the synthetic site and write its files into ``out_dir``.

    Parameters
    ----------
    out_dir : Path
        Output folder (created if missing).
    params : SynthParams
        Seed, size, GSD and location; the same params give byte-identical files.

    Returns
    -------
    SynthSite
        Paths of the written files and the loaded truth record.

    Raises
    ------
    SynthParamsError
        The parameters are out of range (raised when ``SynthParams`` is built).
    OutputError
        ``out_dir`` cannot be written.
    """
    scene = render_scene(params)
    return write_scene(scene, Path(out_dir))


def write_scene(scene: SynthScene, out_dir: Path) -> SynthSite:
    """Write a rendered :class:`SynthScene` into ``out_dir`` and return its :class:`SynthSite`."""
    site = SynthSite.at(Path(out_dir), scene.truth)
    p = scene.params
    crs = f"EPSG:{scene.epsg}"
    rgb_ci = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
    for epoch, rgb, dsm, valid, ortho_path, dsm_path, date in (
        (
            "before",
            scene.before_rgb,
            scene.before_dsm,
            scene.before_valid,
            site.before_ortho,
            site.before_dsm,
            p.before_date,
        ),
        (
            "after",
            scene.after_rgb,
            scene.after_dsm,
            scene.after_valid,
            site.after_ortho,
            site.after_dsm,
            p.after_date,
        ),
    ):
        tags = {
            "SITEWATCH_SYNTH_SEED": str(p.seed),
            "SITEWATCH_EPOCH": epoch,
            "SITEWATCH_SURVEY_DATE": date,
            "TIFFTAG_DATETIME": date.replace("-", ":") + " 10:30:00",
            "TIFFTAG_SOFTWARE": "sitewatch synth",
        }
        write_geotiff(
            ortho_path,
            rgb,
            transform=scene.transform,
            crs=crs,
            mask=valid,
            tags=tags,
            colorinterp=rgb_ci,
        )
        dsm_out = np.where(np.isfinite(dsm), dsm, np.float32(DSM_NODATA)).astype(np.float32)
        write_geotiff(
            dsm_path,
            dsm_out,
            transform=scene.transform,
            crs=crs,
            nodata=DSM_NODATA,
            tags={**tags, "UNITS": "metre"},
        )

    utm = scene.epsg
    layout = scene.layout
    site_geom = reproject_geometries([layout.site], utm, 4326)
    write_features(
        site.site,
        site_geom,
        [{"site_id": f"synth-{p.seed}", "name": f"Synthetic site, seed {p.seed}"}],
    )
    permit_geoms = reproject_geometries([pm.footprint for pm in layout.permits], utm, 4326)
    permit_props = [
        {
            "permit_id": pm.permit_id,
            "max_height_m": pm.max_height_m,
            "floors": pm.floors,
            "valid_from": pm.valid_from,
            "valid_to": pm.valid_to,
        }
        for pm in layout.permits
    ]
    write_features(site.permits, permit_geoms, permit_props)
    geoms: list[BaseGeometry] = [g for g, _ in scene.features]
    props: list[dict[str, Any]] = [_ordered(pr) for _, pr in scene.features]
    write_features(site.truth_geojson, reproject_geometries(geoms, utm, 4326), props)
    with atomic_path(site.truth_json) as tmp:
        tmp.write_text(
            json.dumps(scene.truth, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
    log.info("synthetic site seed %d written to %s", p.seed, site.root)
    return site


_KEYS = (
    "change_id",
    "kind",
    "must_flag",
    "expected_class",
    "height_change_m",
    "area_m2",
    "permit_id",
    "structure_area_m2",
    "note",
)


def _ordered(props: dict[str, Any]) -> dict[str, Any]:
    out = {k: props.get(k) for k in _KEYS[:7]}
    out["structure_area_m2"] = props.get("structure_area_m2")
    out["note"] = props.get("note")
    return out
