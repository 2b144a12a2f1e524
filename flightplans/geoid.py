"""Heights between the WGS84 ellipsoid, the EGM96 geoid and the take-off point.

DJI WPML files carry heights in three references (``wpml:heightMode``,
``wpml:executeHeightMode``): above the take-off point (``relativeToStartPoint``), above the
EGM96 geoid (``EGM96``, orthometric "sea level" heights) and above the WGS84 ellipsoid
(``WGS84``, what GNSS measures). The two absolute ones differ by the geoid undulation ``N``::

    h_ellipsoid = H_egm96 + N(lon, lat)

``N`` is read from the EGM96 15' grid that PROJ publishes (``us_nga_egm96_15.tif``, or its
older name ``egm96_15.gtx``, which Debian's ``proj-data`` package installs in
``/usr/share/proj``) through a pyproj ``vgridshift`` pipeline, bilinear between the grid
nodes: within 0.06 m of NGA's reference values (``test_geoid.py``). Over China ``N`` runs
from about -60 m to +40 m (-43.6 m in central Mongolia), so a plan that mixed the datums would
fly tens of metres off its height. The grid is never downloaded: :func:`find_egm96_grid`
looks in ``$SITEWATCH_EGM96_GRID``, pyproj's data and user folders, ``$PROJ_DATA`` /
``$PROJ_LIB`` and ``/usr/share/proj``, and says how to install it when it is missing.

pyproj's own EPSG path (``EPSG:4979`` to ``EPSG:9707``) silently falls back to a "ballpark"
transformation with ``N = 0`` when the grid is absent; this module never does.

Example
-------
>>> geoid = EGM96Geoid()                                      # doctest: +SKIP
>>> round(float(geoid.undulation(102.448729, 46.874319)), 2)  # doctest: +SKIP
-43.62
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import numpy as np
import pyproj
import pyproj.exceptions
from numpy.typing import ArrayLike
from pyproj import Transformer

from flightplans.errors import GeoidGridError

__all__ = [
    "EGM96_GRID_NAMES",
    "EGM96Geoid",
    "GeoidGridError",
    "egm96_geoid",
    "find_egm96_grid",
]

log = logging.getLogger(__name__)

#: File names of the EGM96 15-minute grid, newest first (PROJ-data; Debian ``proj-data``).
EGM96_GRID_NAMES = ("us_nga_egm96_15.tif", "egm96_15.gtx")

#: Environment variable naming the grid file explicitly.
GRID_ENV = "SITEWATCH_EGM96_GRID"

_INSTALL_HINT = (
    "install it (Debian/Ubuntu: apt-get install proj-data, which puts egm96_15.gtx in "
    "/usr/share/proj), or copy us_nga_egm96_15.tif from PROJ-data into "
    f"{pyproj.datadir.get_user_data_dir()}, or name the file in ${GRID_ENV}; "
    "sitewatch never downloads it"
)


def _search_dirs() -> list[Path]:
    dirs: list[str] = []
    dirs += pyproj.datadir.get_data_dir().split(os.pathsep)
    dirs.append(pyproj.datadir.get_user_data_dir())
    for var in ("PROJ_DATA", "PROJ_LIB"):
        dirs += [d for d in os.environ.get(var, "").split(os.pathsep) if d]
    dirs += ["/usr/share/proj", "/usr/local/share/proj"]
    seen: list[Path] = []
    for d in dirs:
        p = Path(d)
        if p not in seen:
            seen.append(p)
    return seen


def find_egm96_grid() -> Path:
    """The installed EGM96 15' grid file.

    Looks in ``$SITEWATCH_EGM96_GRID`` (a file), then for :data:`EGM96_GRID_NAMES` in pyproj's
    data folders, its user data folder, ``$PROJ_DATA`` / ``$PROJ_LIB``, ``/usr/share/proj`` and
    ``/usr/local/share/proj``.

    Raises
    ------
    GeoidGridError
        No grid found (the message says how to install one), or ``$SITEWATCH_EGM96_GRID``
        names a file that does not exist.
    """
    named = os.environ.get(GRID_ENV)
    if named:
        p = Path(named)
        if not p.is_file():
            raise GeoidGridError(
                f"${GRID_ENV} names {p}, which is not a file; point it at the EGM96 grid "
                "(us_nga_egm96_15.tif or egm96_15.gtx) or unset it"
            )
        return p
    for d in _search_dirs():
        for name in EGM96_GRID_NAMES:
            p = d / name
            if p.is_file():
                return p
    raise GeoidGridError(
        "the EGM96 geoid grid (us_nga_egm96_15.tif or egm96_15.gtx) is not installed, and "
        f"heights above the geoid or the ellipsoid need it; {_INSTALL_HINT}"
    )


class EGM96Geoid:
    """EGM96 geoid undulation from a grid file, through one reused pyproj pipeline.

    Parameters
    ----------
    grid
        The grid file (GeoTIFF or GTX); ``None`` finds the installed one
        (:func:`find_egm96_grid`). Any grid of geoid undulations in metres works, which is
        how the tests plant a known geoid.
    """

    def __init__(self, grid: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(grid) if grid is not None else find_egm96_grid()
        if not self.path.is_file():
            raise GeoidGridError(f"{self.path}: no such geoid grid file; {_INSTALL_HINT}")
        if any(c.isspace() or c in "+\"'" for c in str(self.path.resolve())):
            raise GeoidGridError(
                f"{self.path}: PROJ cannot name a grid whose path holds spaces, quotes or '+'; "
                f"move it (or link it) to a plain path and name that in ${GRID_ENV}"
            )
        pipeline = (
            "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad "
            f"+step +proj=vgridshift +grids={self.path.resolve()} +multiplier=1 "
            "+step +proj=unitconvert +xy_in=rad +xy_out=deg"
        )
        try:
            self._tr = Transformer.from_pipeline(pipeline)
        except pyproj.exceptions.ProjError as exc:
            raise self._unreadable(exc) from exc

    def _unreadable(self, exc: Exception) -> GeoidGridError:
        return GeoidGridError(
            f"{self.path}: PROJ cannot read this geoid grid ({' '.join(str(exc).split())}); "
            f"replace it with EGM96's us_nga_egm96_15.tif or egm96_15.gtx; {_INSTALL_HINT}"
        )

    @property
    def name(self) -> str:
        """The grid's file name (for provenance)."""
        return self.path.name

    def _shift(self, lon: ArrayLike, lat: ArrayLike, h: ArrayLike, *, inverse: bool) -> np.ndarray:
        lo, la, hh = np.broadcast_arrays(
            np.asarray(lon, dtype=np.float64),
            np.asarray(lat, dtype=np.float64),
            np.asarray(h, dtype=np.float64),
        )
        shape = lo.shape
        lo, la, hh = lo.ravel().copy(), la.ravel().copy(), hh.ravel().copy()
        try:
            _x, _y, z = self._tr.transform(
                lo, la, hh, direction="INVERSE" if inverse else "FORWARD"
            )
        except pyproj.exceptions.ProjError as exc:
            raise self._unreadable(exc) from exc
        z = np.asarray(z, dtype=np.float64)
        if not np.isfinite(z).all():
            k = int(np.argmin(np.isfinite(z)))
            raise GeoidGridError(
                f"{self.path}: the geoid grid does not cover lon {lo[k]:.6f}, lat {la[k]:.6f}; "
                "check that the points are longitude, latitude in degrees"
            )
        return z.reshape(shape)

    def undulation(self, lon: ArrayLike, lat: ArrayLike) -> np.ndarray:
        """Geoid undulation ``N`` (m): ellipsoid height minus EGM96 height, at lon/lat degrees."""
        return self._shift(lon, lat, np.zeros(np.shape(lon)), inverse=False)

    def to_ellipsoid(self, lon: ArrayLike, lat: ArrayLike, h_egm96: ArrayLike) -> np.ndarray:
        """Heights above the EGM96 geoid (m) to heights above the WGS84 ellipsoid (m)."""
        return self._shift(lon, lat, h_egm96, inverse=False)

    def to_egm96(self, lon: ArrayLike, lat: ArrayLike, h_ellipsoid: ArrayLike) -> np.ndarray:
        """Heights above the WGS84 ellipsoid (m) to heights above the EGM96 geoid (m)."""
        return self._shift(lon, lat, h_ellipsoid, inverse=True)


@functools.lru_cache(maxsize=4)
def _cached(path: str) -> EGM96Geoid:
    return EGM96Geoid(path)


def egm96_geoid(grid: str | os.PathLike[str] | None = None) -> EGM96Geoid:
    """The :class:`EGM96Geoid` of ``grid`` (default: the installed one), created once."""
    path = Path(grid) if grid is not None else find_egm96_grid()
    geoid = _cached(str(path.resolve()))
    log.debug("EGM96 geoid from %s", geoid.path)
    return geoid
