"""Photogrammetry products as survey epochs, and a flight's photos sent to a NodeODM server.

:func:`find_epoch` takes an OpenDroneMap project folder (what ODM writes, or NodeODM's
``all.zip`` extracted) or any orthophoto GeoTIFF with its DSM (and DTM), checks that they can
be one epoch of a survey, and returns a :class:`SurveyEpoch`: the paths, ODM's version and
options from ``log.json`` when present, and one warning line per assumption. The layout of an
ODM project::

    PROJECT/odm_orthophoto/odm_orthophoto.tif   orthophoto (RGBA, the site's UTM zone)
    PROJECT/odm_dem/dsm.tif                     surface model (with ODM's --dsm)
    PROJECT/odm_dem/dtm.tif                     terrain model (with ODM's --dtm)
    PROJECT/log.json                            odmVersion, options, startTime, success

Checks, each an error naming the file, the value and the fix: the files exist and are
GeoTIFFs with a CRS and a geotransform; the CRS is projected in metres (areas and heights are
computed in metres); the orthophoto's colour bands can be identified (as ``sitewatch detect``
reads them); a DSM or DTM is one band of heights in metres with a nodata value; the DSM and
DTM overlap the orthophoto; a site given overlaps it. What was assumed (no DSM, an orthophoto
without a mask, the DSM covering part of the orthophoto, a site partly outside) is a warning.

:func:`submit_to_nodeodm` uploads a flight's photos (and ingest's ``geo.txt``, which NodeODM
hands to ODM as ``--geo`` because of its name) to a NodeODM server with pyodm, the NodeODM
client published by the OpenDroneMap project. pyodm is an optional dependency, imported only
here: ``pip install 'sitewatch[odm]'``. When the task has finished, download its assets
(NodeODM's web page, or ``pyodm.Node.from_url(url).get_task(uuid).download_assets(DIR)``) and
give ``DIR`` to :func:`find_epoch`.

The module is over 500 lines because it is one subject, OpenDroneMap, in both directions
(its products taken in as an epoch, a flight's photos sent to it); most of its length is the
checks' one-line messages and their documentation.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import re
import warnings as _pywarnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import rasterio
import rasterio.warp
import shapely
from pyproj import CRS
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from survey.errors import (
    DetectInputError,
    InputFileError,
    NodeODMArgumentError,
    NodeODMError,
    RasterFormatError,
)
from survey.imagery import heights_reason, read_orthophoto
from survey.ingest.images import IMAGE_SUFFIXES
from survey.rasters import open_checked, open_dsm
from survey.sites import read_site_area, utm_crs_for
from survey.vectors import reproject_geometries

__all__ = [
    "DEFAULT_NODEODM_OPTIONS",
    "ODM_DSM",
    "ODM_DTM",
    "ODM_LOG",
    "ODM_ORTHO",
    "NodeODMArgumentError",
    "NodeODMError",
    "NodeODMTask",
    "SurveyEpoch",
    "check_nodeodm_request",
    "find_epoch",
    "submit_to_nodeodm",
]

log = logging.getLogger(__name__)

ODM_ORTHO = "odm_orthophoto/odm_orthophoto.tif"
ODM_DSM = "odm_dem/dsm.tif"
ODM_DTM = "odm_dem/dtm.tif"
ODM_LOG = "log.json"

#: Options sent to NodeODM unless the caller sets them: an epoch needs the surface model,
#: and ``sitewatch check`` uses the terrain model.
DEFAULT_NODEODM_OPTIONS: Mapping[str, bool] = {"dsm": True, "dtm": True}

# Validation reads are lazy: only metadata and a decimated sample are read now.
_CHECK_CHUNK_PX = 1024
# Below these fractions a partial cover is worth a warning.
_DSM_COVER_WARN = 0.9
_SITE_COVER_WARN = 0.99
_OPTION_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


# ----------------------------------------------------------------------------- epochs


@dataclass(frozen=True)
class SurveyEpoch:
    """One survey's photogrammetry products, checked to be usable together.

    Attributes
    ----------
    root : pathlib.Path
        The ODM project folder, or the orthophoto for a plain pair.
    ortho, dsm, dtm : pathlib.Path or None
        Orthophoto, surface model and terrain model (``dsm``/``dtm`` None when absent).
    source : str
        ``"opendronemap"`` (a project folder) or ``"files"`` (a GeoTIFF pair).
    crs : str
        The orthophoto's CRS (``EPSG:32650`` or WKT).
    resolution_m : tuple of float
        Orthophoto pixel size (x, y) in metres.
    bounds : tuple of float
        Orthophoto bounds (left, bottom, right, top) in ``crs``, metres.
    odm_version, odm_options, odm_started, odm_success
        From ODM's ``log.json`` (None / empty when there is none): ODM's version, the options
        of the run (ODM's names, e.g. ``{"dsm": True, "orthophoto-resolution": 5}``), when
        processing started (ODM's local time, not the flight's) and whether it finished.
    ortho_reading : dict
        How the orthophoto is read (:meth:`survey.imagery.Orthophoto.record`): band roles,
        validity, scaling, assumptions.
    site_covered_pct : float or None
        Share of the site inside the orthophoto's bounds, when a site was given.
    warnings : tuple of str
        What was assumed, one line each (already logged).
    """

    root: Path
    ortho: Path
    dsm: Path | None
    dtm: Path | None
    source: str
    crs: str
    resolution_m: tuple[float, float]
    bounds: tuple[float, float, float, float]
    odm_version: str | None = None
    odm_options: Mapping[str, Any] = field(default_factory=dict)
    odm_started: str | None = None
    odm_success: bool | None = None
    ortho_reading: Mapping[str, Any] = field(default_factory=dict)
    site_covered_pct: float | None = None
    warnings: tuple[str, ...] = ()

    @property
    def rasters(self) -> dict[str, Path]:
        """Role (``ortho``, ``dsm``, ``dtm``) to path, for the rasters present."""
        out = {"ortho": self.ortho}
        if self.dsm is not None:
            out["dsm"] = self.dsm
        if self.dtm is not None:
            out["dtm"] = self.dtm
        return out

    def record(self) -> dict[str, Any]:
        """JSON-ready record of the epoch for provenance files."""
        return {
            "root": str(self.root),
            "source": self.source,
            **{role: str(p) for role, p in self.rasters.items()},
            "crs": self.crs,
            "resolution_m": list(self.resolution_m),
            "bounds": list(self.bounds),
            "odm_version": self.odm_version,
            "odm_options": dict(self.odm_options),
            "odm_started": self.odm_started,
            "odm_success": self.odm_success,
            "ortho_reading": dict(self.ortho_reading),
            "site_covered_pct": self.site_covered_pct,
            "warnings": list(self.warnings),
        }


def _warn(warnings: list[str], message: str) -> None:
    warnings.append(message)
    log.warning("%s", message)


def _locate(
    path: Path,
    dsm: str | os.PathLike[str] | None,
    dtm: str | os.PathLike[str] | None,
    warnings: list[str],
) -> tuple[Path, Path, Path | None, Path | None, str]:
    """(root, ortho, dsm, dtm, source) of what ``path`` names."""
    if not path.exists():
        raise InputFileError(
            f"{path}: no such file or folder; give an OpenDroneMap project folder or an "
            "orthophoto GeoTIFF"
        )
    if path.is_file():
        if path.suffix.lower() == ".zip":
            raise InputFileError(
                f"{path}: a ZIP archive; extract it (NodeODM's all.zip holds the project "
                "folders) and give the folder"
            )
        return path, path, Path(dsm) if dsm else None, Path(dtm) if dtm else None, "files"
    root = path
    if (
        root.name in ("odm_orthophoto", "odm_dem")
        and not (root / ODM_ORTHO).is_file()
        and (root.parent / ODM_ORTHO).is_file()
    ):
        _warn(
            warnings,
            f"{path}: is a sub-folder of an OpenDroneMap project; the project {root.parent} "
            "is read",
        )
        root = root.parent
    ortho = root / ODM_ORTHO
    if not ortho.is_file():
        found = sorted(p.name for p in root.iterdir())[:8]
        listing = ", ".join(found) if found else "nothing"
        raise InputFileError(
            f"{root}: not an OpenDroneMap project with an orthophoto (no {ODM_ORTHO}; the "
            f"folder holds {listing}); give the project folder after processing has finished, "
            "or the orthophoto GeoTIFF itself with its DSM"
        )
    dsm_path = Path(dsm) if dsm else (root / ODM_DSM if (root / ODM_DSM).is_file() else None)
    dtm_path = Path(dtm) if dtm else (root / ODM_DTM if (root / ODM_DTM).is_file() else None)
    return root, ortho, dsm_path, dtm_path, "opendronemap"


def _read_odm_log(root: Path, warnings: list[str]) -> dict[str, Any]:
    """Version, options, start and success from ODM's ``log.json`` (empty when unreadable)."""
    path = root / ODM_LOG
    if not path.is_file():
        _warn(
            warnings,
            f"{root}: no {ODM_LOG}; the OpenDroneMap version and options of this epoch are "
            "unknown (ODM 2.x writes it; NodeODM's all.zip includes it)",
        )
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise TypeError(f"a JSON {type(doc).__name__}, not an object")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
        _warn(
            warnings,
            f"{path}: cannot be read ({' '.join(str(exc).split())}); the OpenDroneMap version "
            "and options of this epoch are unknown",
        )
        return {}
    options = doc.get("options")
    out: dict[str, Any] = {
        "odm_version": str(doc["odmVersion"]) if doc.get("odmVersion") else None,
        "odm_options": dict(options) if isinstance(options, dict) else {},
        "odm_started": str(doc["startTime"]) if doc.get("startTime") else None,
        "odm_success": bool(doc["success"]) if "success" in doc else None,
    }
    if out["odm_success"] is False:
        error = doc.get("error")
        detail = f" ({error.get('message')})" if isinstance(error, dict) else ""
        _warn(
            warnings,
            f"{path}: says the OpenDroneMap run did not finish{detail}; its products may be "
            "incomplete or from an earlier run",
        )
    return out


def _metric_crs(
    path: Path, role: str
) -> tuple[CRS, tuple[float, float], tuple[float, float, float, float]]:
    """The raster's CRS, pixel size and bounds; an error unless its unit is the metre."""
    with open_checked(path, role) as ds:
        crs = CRS.from_user_input(ds.crs.to_wkt())
        res = (float(ds.res[0]), float(ds.res[1]))
        bounds = (
            float(ds.bounds.left),
            float(ds.bounds.bottom),
            float(ds.bounds.right),
            float(ds.bounds.top),
        )
    if crs.is_projected:
        unit = crs.axis_info[0].unit_name if crs.axis_info else ""
        factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        if math.isclose(factor, 1.0):
            return crs, res, bounds
        what = f"projected in {unit}"
    else:
        what = "in geographic coordinates (degrees)"
    cx, cy = (bounds[0] + bounds[2]) / 2.0, (bounds[1] + bounds[3]) / 2.0
    lon, lat = rasterio.warp.transform(crs.to_wkt(), "EPSG:4326", [cx], [cy])
    utm = utm_crs_for(float(lon[0]), float(lat[0])).to_string()
    raise RasterFormatError(
        f"{path}: the {role} is {what} ({crs.name}); areas and heights are computed in metres: "
        f"reproject it, e.g. gdalwarp -t_srs {utm} {path.name} {path.stem}_utm.tif"
    )


def _bounds_in(path: Path, role: str, crs: CRS) -> BaseGeometry:
    with open_checked(path, role) as ds:
        b = ds.bounds
        src = CRS.from_user_input(ds.crs.to_wkt())
    if src == crs:
        return box(b.left, b.bottom, b.right, b.top)
    left, bottom, right, top = rasterio.warp.transform_bounds(
        src.to_wkt(), crs.to_wkt(), *b, densify_pts=21
    )
    return box(left, bottom, right, top)


def _check_heights(path: Path, role: str) -> None:
    """One band of heights in metres with a nodata value (as :func:`open_dsm` reads them)."""
    _metric_crs(path, role)
    heights = open_dsm(path, chunks=_CHECK_CHUNK_PX)
    heights.close()


def _check_overlap(
    path: Path, role: str, ortho: Path, ortho_box: BaseGeometry, crs: CRS, warnings: list[str]
) -> None:
    theirs = _bounds_in(path, role, crs)
    shared = ortho_box.intersection(theirs).area
    if shared <= 0:
        raise DetectInputError(
            f"{path}: the {role} does not overlap the orthophoto {ortho} (bounds "
            f"{tuple(round(v) for v in theirs.bounds)} vs "
            f"{tuple(round(v) for v in ortho_box.bounds)} in {crs.to_string()}); give the "
            f"{role} of the same survey"
        )
    frac = shared / ortho_box.area
    if frac < _DSM_COVER_WARN:
        _warn(
            warnings,
            f"{path}: the {role} covers {100 * frac:.0f} % of the orthophoto's extent; "
            "heights are missing over the rest",
        )


def _site_cover(
    site: str | os.PathLike[str] | BaseGeometry,
    ortho: Path,
    ortho_box: BaseGeometry,
    crs: CRS,
    warnings: list[str],
) -> float:
    if isinstance(site, BaseGeometry):
        (area,) = reproject_geometries([site], 4326, crs)
        name = "the site"
    else:
        area = read_site_area(site, crs)
        name = f"the site {Path(site).name}"
    if area.is_empty or area.area <= 0:
        raise DetectInputError(f"{name} has no area; draw the site as a polygon")
    inside = shapely.intersection(area, ortho_box).area / area.area
    if inside <= 0:
        lo = shapely.bounds(area)
        raise DetectInputError(
            f"{ortho}: the orthophoto does not overlap {name} (bounds "
            f"{tuple(round(float(v)) for v in lo)} vs "
            f"{tuple(round(v) for v in ortho_box.bounds)} in {crs.to_string()}); give the "
            "survey of this site, or the site file of this survey"
        )
    if inside < _SITE_COVER_WARN:
        _warn(
            warnings,
            f"{ortho}: the orthophoto covers {100 * inside:.1f} % of {name}; the rest of the "
            "site is not surveyed in this epoch",
        )
    return round(100.0 * inside, 2)


def find_epoch(
    path: str | os.PathLike[str],
    *,
    dsm: str | os.PathLike[str] | None = None,
    dtm: str | os.PathLike[str] | None = None,
    site: str | os.PathLike[str] | BaseGeometry | None = None,
) -> SurveyEpoch:
    """A survey epoch from an OpenDroneMap project folder or an orthophoto + DSM pair.

    Parameters
    ----------
    path : str or os.PathLike
        An ODM project folder (``odm_orthophoto/odm_orthophoto.tif``, ``odm_dem/dsm.tif``,
        ``odm_dem/dtm.tif``, ``log.json``; a sub-folder of one is accepted with a warning),
        or an orthophoto GeoTIFF from any tool.
    dsm, dtm : str or os.PathLike, optional
        Surface and terrain models (single-band GeoTIFFs, metres, with nodata). For a folder
        they replace the project's own.
    site : str, os.PathLike or shapely geometry, optional
        Site boundary (any vector file and CRS, or a geometry in WGS84 lon/lat): the epoch
        must overlap it.

    Returns
    -------
    SurveyEpoch

    Raises
    ------
    InputFileError
        A missing file, a folder that is no ODM project with an orthophoto, a ZIP archive.
    NotGeoreferencedError
        A raster without a CRS or a geotransform.
    RasterFormatError
        A CRS not in metres, an orthophoto whose colour bands cannot be identified or that
        is a DSM, a DSM or DTM that is not one band of heights in metres with nodata.
    DetectInputError
        The DSM or DTM does not overlap the orthophoto, or the site lies outside it.

    Examples
    --------
    >>> epoch = find_epoch("odm_project/")  # doctest: +SKIP
    >>> epoch.ortho.name, epoch.dsm.name, epoch.odm_version  # doctest: +SKIP
    ('odm_orthophoto.tif', 'dsm.tif', '3.5.4')
    """
    warnings: list[str] = []
    root, ortho, dsm_path, dtm_path, source = _locate(Path(path), dsm, dtm, warnings)
    crs, res, bounds = _metric_crs(ortho, "orthophoto")
    if heights_reason(ortho, "orthophoto") is not None:
        raise RasterFormatError(
            f"{ortho}: holds one band of heights (a DSM), not an orthophoto; give the "
            "orthophoto first and the DSM as the DSM"
        )
    reading = read_orthophoto(ortho, _CHECK_CHUNK_PX, log_assumptions=False)
    reading.rgb.close()
    for note in reading.assumptions:
        _warn(warnings, f"{ortho}: assumed: {note}")
    ortho_box = box(*bounds)
    for role, p in (("DSM", dsm_path), ("DTM", dtm_path)):
        if p is None:
            continue
        _check_heights(p, role)
        _check_overlap(p, role, ortho, ortho_box, crs, warnings)
    if dsm_path is None:
        _warn(
            warnings,
            f"{root}: no DSM (run OpenDroneMap with --dsm, or give the DSM): the epoch has no "
            "heights, so change detection is RGB-only and weaker",
        )
    odm = _read_odm_log(root, warnings) if source == "opendronemap" else {}
    covered = _site_cover(site, ortho, ortho_box, crs, warnings) if site is not None else None
    epsg = crs.to_epsg()
    return SurveyEpoch(
        root=root,
        ortho=ortho,
        dsm=dsm_path,
        dtm=dtm_path,
        source=source,
        crs=f"EPSG:{epsg}" if epsg else crs.to_wkt(),
        resolution_m=res,
        bounds=bounds,
        ortho_reading=reading.record(),
        site_covered_pct=covered,
        warnings=tuple(warnings),
        **odm,
    )


# ----------------------------------------------------------------------------- NodeODM


@dataclass(frozen=True)
class NodeODMTask:
    """A task created on a NodeODM server.

    ``server`` is the URL without its token (safe to record); ``status`` is NodeODM's
    (``QUEUED``, ``RUNNING``, ``FAILED``, ``COMPLETED``, ``CANCELED``); ``options`` are
    those sent.
    """

    uuid: str
    name: str
    server: str
    status: str
    images: int
    options: Mapping[str, Any]
    submitted_utc: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "uuid": self.uuid,
            "name": self.name,
            "server": self.server,
            "status": self.status,
            "images": self.images,
            "options": dict(self.options),
            "submitted_utc": self.submitted_utc,
        }


def _server(url: str) -> tuple[str, str]:
    """(the URL to connect with, the URL without its token for messages)."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError as exc:
        raise NodeODMArgumentError(
            f"NodeODM URL {url!r}: the port is not a number; give it as http://HOST:PORT "
            "(e.g. http://localhost:3000)"
        ) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NodeODMArgumentError(
            f"NodeODM URL {url!r} is not an http(s) address of a server; give it as "
            "http://HOST:PORT (e.g. http://localhost:3000), adding ?token=... if the node "
            "needs one"
        )
    if parts.path not in ("", "/"):
        raise NodeODMArgumentError(
            f"NodeODM URL {url!r} has a path ({parts.path}); give the server's root, "
            f"{parts.scheme}://{parts.netloc}"
        )
    unknown = set(parse_qs(parts.query)) - {"token"}
    if unknown:
        raise NodeODMArgumentError(
            f"NodeODM URL {url!r}: unknown query parameter(s) {', '.join(sorted(unknown))}; "
            "only ?token=... is understood"
        )
    shown = f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port else "")
    return url.strip(), shown


def _options(options: Mapping[str, Any] | None) -> dict[str, bool | int | float | str]:
    merged: dict[str, bool | int | float | str] = dict(DEFAULT_NODEODM_OPTIONS)
    for name, value in (options or {}).items():
        if not isinstance(name, str) or not _OPTION_NAME.match(name):
            hint = f" (write {name.replace('_', '-')!r})" if isinstance(name, str) else ""
            raise NodeODMArgumentError(
                f"NodeODM option name {name!r} is not one of ODM's option names, which are "
                f"lower case with hyphens{hint}, e.g. orthophoto-resolution"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise NodeODMArgumentError(f"NodeODM option {name}={value!r}: give a finite number")
        if not isinstance(value, bool | int | float | str):
            raise NodeODMArgumentError(
                f"NodeODM option {name}={value!r}: a {type(value).__name__}; give true/false, "
                "a number or a text"
            )
        merged[name] = value
    return merged


def check_nodeodm_request(
    url: str, options: Mapping[str, Any] | None = None
) -> dict[str, bool | int | float | str]:
    """Check a NodeODM URL and task options without contacting the server.

    Lets a caller refuse bad arguments before long work (``sitewatch ingest --nodeodm``).

    Returns
    -------
    dict
        The options that :func:`submit_to_nodeodm` would send (defaults included).

    Raises
    ------
    NodeODMArgumentError
        As :func:`submit_to_nodeodm`.
    """
    _server(url)
    return _options(options)


def _image_files(images: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(images, str | os.PathLike):
        folder = Path(images)
        if not folder.is_dir():
            raise InputFileError(
                f"{folder}: no such folder; pass the folder of the flight's photos"
            )
        files = sorted(
            f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise InputFileError(
                f"{folder}: no photos ({', '.join(IMAGE_SUFFIXES)}) to send to NodeODM"
            )
        return files
    files = [Path(f) for f in images]
    if not files:
        raise InputFileError("no photos to send to NodeODM; give the flight's photos")
    for f in files:
        if not f.is_file():
            raise InputFileError(f"{f}: no such file; check the photos sent to NodeODM")
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InputFileError(
            f"two photos named {dup}: NodeODM keeps one file per name; rename one of them"
        )
    return files


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    errno = re.search(r"\[Errno -?\d+\] [^\"')]+", text)
    return errno.group(0).strip() if errno else text


def submit_to_nodeodm(
    images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    url: str,
    options: Mapping[str, Any] | None = None,
    *,
    geo_txt: str | os.PathLike[str] | None = None,
    name: str | None = None,
    timeout_s: float = 30.0,
) -> NodeODMTask:
    """Create an OpenDroneMap task on a NodeODM server with a flight's photos.

    Needs the optional dependency pyodm (``pip install 'sitewatch[odm]'``), imported here
    only. The photos are uploaded as they are (read, never written); ODM processes them on
    the server. Nothing is waited for: the task's id and status come back at once.

    Parameters
    ----------
    images : folder or sequence of paths
        The photos (a folder: its JPEG and TIFF files).
    url : str
        The server, ``http://HOST:PORT`` (``?token=...`` when the node needs one).
    options : mapping, optional
        ODM options by ODM's names (``{"orthophoto-resolution": 2, "fast-orthophoto":
        True}``); :data:`DEFAULT_NODEODM_OPTIONS` (``dsm``, ``dtm``) apply unless set here.
    geo_txt : path, optional
        ``geo.txt`` written by ``sitewatch ingest``: photo positions from the flight log.
        NodeODM recognises it by its name, so the file must be called ``geo.txt``.
    name : str, optional
        Task name shown by NodeODM (default: the photos' folder name).
    timeout_s : float
        Network timeout of each request, seconds.

    Returns
    -------
    NodeODMTask

    Raises
    ------
    InputFileError
        No photo, a missing photo, two photos with one name, a ``geo_txt`` not named geo.txt.
    NodeODMArgumentError
        A URL that is not a server's address, an option name or value ODM cannot take.
    NodeODMError
        pyodm is not installed, the server cannot be reached, or it refused the task.

    Examples
    --------
    >>> task = submit_to_nodeodm("flight/photos", "http://localhost:3000",
    ...                          {"orthophoto-resolution": 2},
    ...                          geo_txt="ingest/geo.txt")  # doctest: +SKIP
    >>> task.uuid, task.status  # doctest: +SKIP
    """
    target, shown = _server(url)
    sent = _options(options)
    if not (isinstance(timeout_s, int | float) and math.isfinite(timeout_s) and timeout_s > 0):
        raise NodeODMArgumentError(f"NodeODM timeout {timeout_s!r}: give a positive number of s")
    files = _image_files(images)
    if geo_txt is not None:
        geo = Path(geo_txt)
        if geo.name != "geo.txt":
            raise InputFileError(
                f"{geo}: NodeODM recognises the positions file by its name; it must be called "
                "geo.txt (the file sitewatch ingest writes)"
            )
        if not geo.is_file():
            raise InputFileError(f"{geo}: no such file; run sitewatch ingest first")
        files.append(geo)
    task_name = name or files[0].parent.name or "sitewatch"
    try:
        from pyodm import Node
        from pyodm.exceptions import NodeConnectionError, NodeResponseError, OdmError
    except ImportError as exc:
        raise NodeODMError(
            "submitting to NodeODM needs pyodm, which is not installed; "
            "pip install 'sitewatch[odm]' (or pip install pyodm)"
        ) from exc
    n_images = sum(1 for f in files if f.suffix.lower() in IMAGE_SUFFIXES)
    log.info("sending %d photos to NodeODM at %s", n_images, shown)
    try:
        with _pywarnings.catch_warnings():
            # pyodm's TaskInfo uses datetime.utcfromtimestamp (deprecated in Python 3.12)
            _pywarnings.simplefilter("ignore", DeprecationWarning)
            node = Node.from_url(target, timeout=timeout_s)
            node.info()  # fails fast when the server is not there, before any upload
            task = node.create_task([str(f) for f in files], sent, name=task_name)
            info = task.info()
    except NodeConnectionError as exc:
        raise NodeODMError(
            f"NodeODM server {shown} cannot be reached ({_reason(exc)}); check the URL and "
            "that the node is running (e.g. docker run -p 3000:3000 opendronemap/nodeodm)"
        ) from exc
    except NodeResponseError as exc:
        raise NodeODMError(
            f"NodeODM server {shown} refused the task ({_reason(exc)}); check the options "
            "(its /options page lists those it takes) and the token"
        ) from exc
    except OdmError as exc:
        raise NodeODMError(
            f"NodeODM server {shown} answered unexpectedly ({_reason(exc)}); try again, or "
            "check the server's log"
        ) from exc
    return NodeODMTask(
        uuid=str(info.uuid),
        name=str(info.name),
        server=shown,
        status=str(getattr(info.status, "name", info.status)),
        images=n_images,
        options=sent,
        submitted_utc=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
