"""Versioned permits: reading a permit file with amendments, refusing overlaps, choosing the
version valid at a date.

A permit file is what ``sitewatch detect --permits`` reads (:mod:`survey.permits`: a polygon
per feature, ``permit_id``, ``max_height_m``, ``floors``, ``valid_from``, ``valid_to``) except
that one ``permit_id`` may appear several times: **each feature is a version**, told apart by
``valid_from``. An amendment is a new version with a later ``valid_from``.

A version is in force from its ``valid_from`` (an empty one: since ever) to its ``valid_to``
(an empty one: until the next version's ``valid_from`` replaces it, else open-ended),
inclusive. Versions of one permit may not overlap: two with the same ``valid_from`` (or two
without one), or a ``valid_to`` on or after the next version's ``valid_from``, are refused in
one line naming the file, the permit and both versions. Gaps are allowed (a permit lapsed,
then renewed).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import shapely
from shapely.geometry.base import BaseGeometry

from survey.registry.errors import RegistryInputError

if TYPE_CHECKING:
    from change_detection.permits import Permit

__all__ = [
    "PermitVersion",
    "check_versions",
    "in_force",
    "read_permit_versions",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PermitVersion:
    """One version of a permit (geometry in WGS84).

    Attributes
    ----------
    permit_id : str
    geometry : shapely Polygon or MultiPolygon
        Permitted footprint, longitude and latitude.
    max_height_m : float or None
    floors : int or None
    valid_from, valid_to : datetime.date or None
        As given (see the module docstring for the interval in force).
    source : str or None
        The file it was imported from.
    """

    permit_id: str
    geometry: BaseGeometry
    max_height_m: float | None = None
    floors: int | None = None
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    source: str | None = None

    def same_content(self, other: PermitVersion) -> bool:
        """True when both say the same (footprint within 1e-9 degrees, same numbers, dates)."""
        return (
            self.permit_id == other.permit_id
            and self.valid_from == other.valid_from
            and self.valid_to == other.valid_to
            and self.max_height_m == other.max_height_m
            and self.floors == other.floors
            and bool(shapely.equals_exact(self.geometry, other.geometry, tolerance=1e-9))
        )

    def label(self) -> str:
        """``P-3 from 2024-03-01`` for messages."""
        start = self.valid_from.isoformat() if self.valid_from else "no start date"
        return (
            f"{self.permit_id} from {start}" if self.valid_from else f"{self.permit_id} ({start})"
        )


def read_permit_versions(path: str | os.PathLike[str]) -> list[PermitVersion]:
    """Read a permit file whose features are versions of permits (module docstring).

    Returns
    -------
    list of PermitVersion
        In file order, footprints in WGS84; overlapping versions are refused.

    Raises
    ------
    PermitError
        No features, a feature without permit id or polygon, a number or date that cannot be
        read, a validity that ends before it starts.
    RegistryInputError
        Two versions of one permit that overlap (:func:`check_versions`).
    InputFileError, VectorFormatError, NotGeoreferencedError
        From :func:`survey.vectors.read_features`.
    """
    # the detection stack, imported when a file is read (see survey.registry)
    from change_detection.errors import PermitError
    from survey.permits import permit_from_feature
    from survey.vectors import feature_id, read_features

    features = read_features(path, role="permits file")
    if len(features) == 0:
        raise PermitError(
            f"{path}: the permits file has no features; give a file with permit footprints"
        )
    features = features.to_crs(4326)
    versions: list[PermitVersion] = []
    for i, (geom, props) in enumerate(zip(features.geometries, features.properties, strict=True)):
        pid = feature_id(props, ("permit_id", "id"))
        if pid is None:
            raise PermitError(
                f"{path}: feature {i} has no permit_id; add a permit_id attribute to every "
                "footprint"
            )
        permit = permit_from_feature(geom, props, pid, path)
        versions.append(
            PermitVersion(
                permit_id=pid,
                geometry=permit.geometry,
                max_height_m=permit.max_height_m,
                floors=permit.floors,
                valid_from=permit.valid_from,
                valid_to=permit.valid_to,
                source=str(path),
            )
        )
    check_versions(versions, where=str(path))
    return versions


def _start(v: PermitVersion) -> dt.date:
    return v.valid_from or dt.date.min


def check_versions(versions: Iterable[PermitVersion], *, where: str) -> None:
    """Refuse versions of one permit that overlap (module docstring), in one line.

    Raises
    ------
    RegistryInputError
        Names ``where`` (the file), the permit and the two versions.
    """
    by_id: dict[str, list[PermitVersion]] = {}
    for v in versions:
        by_id.setdefault(v.permit_id, []).append(v)
    for pid, group in by_id.items():
        group.sort(key=_start)
        for a, b in itertools.pairwise(group):
            if a.valid_from == b.valid_from:
                start = a.valid_from.isoformat() if a.valid_from else "no valid_from"
                raise RegistryInputError(
                    f"{where}: permit {pid} has two versions with {start}; an amendment is a "
                    "new version with its own valid_from — give each version a different one"
                )
            if a.valid_to is not None and b.valid_from is not None and a.valid_to >= b.valid_from:
                raise RegistryInputError(
                    f"{where}: versions of permit {pid} overlap: {a.label()} runs to "
                    f"{a.valid_to.isoformat()}, but {b.label()} starts on or before it; end the "
                    f"earlier version before {b.valid_from.isoformat()} (or leave its valid_to "
                    "empty: a new version replaces it)"
                )


def in_force(versions: Sequence[PermitVersion], date: dt.date) -> list[Permit]:
    """The versions in force on ``date``, one per permit, as :class:`Permit` records.

    Each record carries the interval it is in force (``valid_to`` closed at the day before
    the next version where it was open), so ``Permit.is_valid_during`` agrees with this
    choice. Geometries stay as given (WGS84 for stored versions).
    """
    from change_detection.permits import Permit

    by_id: dict[str, list[PermitVersion]] = {}
    for v in versions:
        by_id.setdefault(v.permit_id, []).append(v)
    out: list[Permit] = []
    for pid in sorted(by_id):
        group = sorted(by_id[pid], key=_start)
        for k, v in enumerate(group):
            end = v.valid_to
            if k + 1 < len(group):
                nxt = group[k + 1].valid_from
                assert nxt is not None  # check_versions: only the first may lack a start
                before_next = nxt - dt.timedelta(days=1)
                end = before_next if end is None else min(end, before_next)
            if (v.valid_from is None or v.valid_from <= date) and (end is None or date <= end):
                out.append(
                    Permit(
                        permit_id=pid,
                        geometry=v.geometry,
                        max_height_m=v.max_height_m,
                        floors=v.floors,
                        valid_from=v.valid_from,
                        valid_to=end,
                    )
                )
                break
    return out


def with_geometry(permit: Permit, geometry: BaseGeometry) -> Permit:
    """The same permit with another geometry (reprojected)."""
    return replace(permit, geometry=geometry)
