"""The synthetic survey site: the system's default scene and its test oracle.

:func:`generate_site` writes two survey epochs of a construction site (orthophoto and DSM
GeoTIFFs), the site boundary, the permits and the ground truth of every planted change::

    DIR/before/orthophoto.tif   uint8 RGB, internal mask band, tiled, DEFLATE
    DIR/before/dsm.tif          float32 metres AMSL, nodata -9999
    DIR/after/...               the same, misregistered, relit and recoloured
    DIR/after/dtm.tif           the true terrain under the after epoch, on the after grid
    DIR/site.geojson            site boundary (WGS84)
    DIR/permits.geojson         permit_id, max_height_m, floors, valid_from, valid_to
    DIR/existing.geojson        buildings standing legally in the before epoch: building_id,
                                height_m (highest point above ground), floors
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

The first survey against the permit atlas (``sitewatch check``) takes the after epoch alone:
its orthophoto and DSM, ``after/dtm.tif`` (what OpenDroneMap writes as ``odm_dem/dtm.tif``:
the bare terrain in the DSM's frame, vertical offset included, nodata where the DSM has none;
the 1 cm micro-relief of the ground is not in it), the permits and ``existing.geojson``. The
atlas is in true coordinates and the after epoch is misregistered, so the misregistration is
exactly a GNSS offset of the survey against the atlas: ``truth.json``'s ``first_survey``
record gives the offset to add to the atlas at the centroid of its outlines
(``atlas_offset_m``; the rotation adds a few centimetres across the site).

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
import math
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from rasterio.enums import ColorInterp
from scipy import ndimage
from shapely.geometry.base import BaseGeometry

from survey.rasters import atomic_path, write_geotiff
from survey.synth.layout import STOREY_HEIGHT_M, Building
from survey.synth.params import SynthParams, SynthSite
from survey.synth.render import (
    Misregistration,
    SynthScene,
    _smooth_noise,
    polygon_mask,
    render_scene,
)
from survey.synth.resample import upsample_linear
from survey.vectors import reproject_geometries, write_features

__all__ = [
    "AFTER_DTM_NAME",
    "DSM_NODATA",
    "EXISTING_NAME",
    "Misregistration",
    "SynthParams",
    "SynthScene",
    "SynthSite",
    "after_dtm",
    "generate_site",
    "polygon_mask",
    "render_scene",
    "true_terrain",
    "write_scene",
]

log = logging.getLogger(__name__)

#: Nodata value declared in the DSM GeoTIFFs.
DSM_NODATA = -9999.0
#: File name of the after epoch's DTM, beside its DSM.
AFTER_DTM_NAME = "dtm.tif"
#: File name of the layer of legally existing buildings, in the site folder.
EXISTING_NAME = "existing.geojson"


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
    existing = [b for b in scene.layout.buildings if b.before]
    truth = {**scene.truth, "first_survey": _first_survey_truth(scene, existing)}
    site = SynthSite.at(Path(out_dir), truth)
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
    after_tags = {
        "SITEWATCH_SYNTH_SEED": str(p.seed),
        "SITEWATCH_EPOCH": "after",
        "SITEWATCH_SURVEY_DATE": p.after_date,
        "TIFFTAG_DATETIME": p.after_date.replace("-", ":") + " 10:30:00",
        "TIFFTAG_SOFTWARE": "sitewatch synth",
        "SITEWATCH_PRODUCT": "dtm",
        "UNITS": "metre",
    }
    dtm = after_dtm(scene)
    write_geotiff(
        site.after_dsm.with_name(AFTER_DTM_NAME),
        np.where(np.isfinite(dtm), dtm, np.float32(DSM_NODATA)).astype(np.float32),
        transform=scene.transform,
        crs=crs,
        nodata=DSM_NODATA,
        tags=after_tags,
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
    write_features(
        site.root / EXISTING_NAME,
        reproject_geometries([b.footprint.polygon() for b in existing], utm, 4326),
        [_existing_props(b) for b in existing],
    )
    geoms: list[BaseGeometry] = [g for g, _ in scene.features]
    props: list[dict[str, Any]] = [_ordered(pr) for _, pr in scene.features]
    write_features(site.truth_geojson, reproject_geometries(geoms, utm, 4326), props)
    with atomic_path(site.truth_json) as tmp:
        tmp.write_text(
            json.dumps(truth, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
    log.info("synthetic site seed %d written to %s", p.seed, site.root)
    return site


def true_terrain(scene: SynthScene) -> np.ndarray:
    """The bare terrain of the site on the true (before) grid, metres, float32 (rows, cols).

    The relief the renderer paints under every object (three long waves and a smooth noise
    field on cells of about 0.4 m, upsampled bilinearly), drawn again from the same seed; the
    renderer keeps no copy of it. Everything the renderer paints stands on it, so it equals the
    noise-free DSM wherever nothing stands (tested).
    """
    params, t = scene.params, scene.transform
    gsd, n = params.gsd_m, params.side_px
    rng = np.random.default_rng([params.seed, 2])
    fc = max(1, round(0.4 / gsd))
    m = -(-n // fc) + 1
    cell = fc * gsd
    cx, cy = scene.layout.center
    de = t.c + (np.arange(m) + 0.5) * cell - cx
    dn = t.f - (np.arange(m) + 0.5) * cell - cy
    terrain = np.zeros((m, m), dtype=np.float64)
    for _ in range(3):
        lam = rng.uniform(90.0, 260.0)
        phi = rng.uniform(0, 2 * math.pi)
        amp = rng.uniform(0.6, 1.4)
        k = 2 * math.pi / lam
        ae = k * math.cos(phi) * de + rng.uniform(0, 2 * math.pi)
        an = k * math.sin(phi) * dn
        terrain += amp * (np.outer(np.cos(an), np.sin(ae)) + np.outer(np.sin(an), np.cos(ae)))
    terrain += rng.uniform(58.0, 66.0) + 0.35 * _smooth_noise(rng, m, 12.0 / cell)
    return upsample_linear(terrain, fc, (n, n))


def after_dtm(scene: SynthScene) -> np.ndarray:
    """The true terrain under the after epoch, on the after grid, float32 metres (NaN where the
    after DSM has no data): :func:`true_terrain` resampled through the planted misregistration
    (bilinear, as the renderer resamples the after DSM) plus the after epoch's vertical offset.
    """
    forward = np.asarray(scene.truth["misregistration"]["after_rc_from_before_rc"], float)
    after_to_true = np.linalg.inv(forward)
    dtm = ndimage.affine_transform(
        true_terrain(scene),
        after_to_true[:2, :2],
        offset=after_to_true[:2, 2],
        order=1,
        mode="constant",
        cval=np.nan,
        prefilter=False,
    ).astype(np.float32)
    dtm += np.float32(scene.truth["vertical_offset_m"])
    dtm[~scene.after_valid] = np.nan
    return dtm


def _existing_props(b: Building) -> dict[str, Any]:
    top = b.height + (b.ridge if b.roof == "gable" else 0.0)
    return {
        "building_id": b.name,
        "height_m": round(top, 2),
        "floors": max(1, round(b.height / STOREY_HEIGHT_M)),
        "roof": b.roof,
    }


def _first_survey_truth(scene: SynthScene, existing: list[Building]) -> dict[str, Any]:
    """What a first-survey check of the after epoch should find (``truth.json``)."""
    outlines = [pm.footprint for pm in scene.layout.permits]
    outlines += [b.footprint.polygon() for b in existing]
    centre = shapely.MultiPoint([g.centroid for g in outlines]).centroid
    e, n = scene.misregistration.forward(np.array([centre.x]), np.array([centre.y]))
    return {
        "existing": EXISTING_NAME,
        "after_dtm": f"after/{AFTER_DTM_NAME}",
        "existing_building_ids": [b.name for b in existing],
        "atlas_offset_m": [round(float(e[0]) - centre.x, 4), round(float(n[0]) - centre.y, 4)],
        "atlas_centroid": [round(centre.x, 3), round(centre.y, 3)],
        "note": (
            "the after epoch alone, checked against permits.geojson and existing.geojson, "
            "should give the leads of must_flag with their expected_class; atlas_offset_m is "
            "the shift to add to the atlas (true coordinates) at atlas_centroid to put it on "
            "the after rasters"
        ),
    }


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
