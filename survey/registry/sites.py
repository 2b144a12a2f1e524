"""Sites and their atlas in the registry: boundaries, permit versions, existing buildings.

A site is a boundary (a polygon with holes, never flown over; several polygons are one site),
optional no-fly zones, a cadence in days, a risk tier (``high``, ``medium``, ``low``: the
retention of its leads' evidence) and a responsible team. Its permits are versioned
(:mod:`survey.registry.permit_versions`); its existing-buildings layer is replaced whole by
each import.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
import sqlalchemy as sa
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from survey.registry.core import RegistryCore, parse_day
from survey.registry.errors import RegistryInputError
from survey.registry.geometry import bbox, from_wkb, metric_crs, to_crs, to_metric, to_wkb
from survey.registry.models import ExistingBuildingRow, PermitVersionRow, SiteRow
from survey.registry.permit_versions import (
    PermitVersion,
    check_versions,
    in_force,
    read_permit_versions,
)
from survey.registry.records import SiteRecord

if TYPE_CHECKING:  # pyproj: imported by the calls that use it (start-up: survey.registry)
    from pyproj import CRS

    from change_detection.permits import ExistingBuilding, Permit

__all__ = ["RISKS", "PermitImport", "SitesMixin"]

RISKS = ("high", "medium", "low")
DEFAULT_CADENCE_DAYS = 30
DEFAULT_GSD_CM = 2.0


@dataclass(frozen=True)
class PermitImport:
    """What ``permits import`` did: versions added, versions already there, permits touched."""

    site: str
    added: tuple[str, ...]
    unchanged: int
    permits: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "added": list(self.added),
            "unchanged": self.unchanged,
            "permits": self.permits,
        }


def _polygonal(geom: BaseGeometry | None, what: str) -> BaseGeometry:
    """The valid polygonal part of ``geom`` (WGS84), refused in one line when there is none."""
    parts = (
        []
        if geom is None
        else [g for g in shapely.get_parts(geom) if isinstance(g, Polygon | MultiPolygon)]
    )
    if not parts:
        raise RegistryInputError(f"{what} has no polygon; draw the site as a polygon")
    area = shapely.union_all([g if g.is_valid else shapely.make_valid(g) for g in parts])
    area = shapely.union_all(
        [g for g in shapely.get_parts(area) if isinstance(g, Polygon | MultiPolygon)]
    )
    xy = shapely.get_coordinates(area)
    if (
        area.is_empty
        or not np.isfinite(xy).all()
        or (np.abs(xy[:, 0]) > 180).any()
        or (np.abs(xy[:, 1]) > 90).any()
    ):
        raise RegistryInputError(
            f"{what} has no area or a point that is no place on Earth; check the coordinates "
            "and the CRS the file declares"
        )
    return area


class SitesMixin(RegistryCore):
    """Sites, permit versions and existing buildings (part of :class:`Registry`)."""

    # ------------------------------------------------------------------ sites

    def add_site(
        self,
        name: str,
        boundary: str | os.PathLike[str] | BaseGeometry,
        *,
        nofly: str | os.PathLike[str] | BaseGeometry | None = None,
        cadence_days: int = DEFAULT_CADENCE_DAYS,
        risk: str = "medium",
        team: str | None = None,
        gsd_cm: float = DEFAULT_GSD_CM,
        user: str | None = None,
    ) -> SiteRecord:
        """Register a site.

        Parameters
        ----------
        name : str
            Unique name.
        boundary : path or shapely geometry
            A polygon file (GeoJSON, GeoPackage, KML; any CRS: its polygons are one site,
            holes kept), or a WGS84 polygon.
        nofly : path or shapely geometry, optional
            No-fly polygons (file in any CRS, or WGS84 geometry).
        cadence_days : int
            Days between surveys (> 0).
        risk : str
            ``high``, ``medium`` or ``low``.
        team : str, optional
        gsd_cm : float
            Ground sample distance of its scheduled flights (cm/px).
        user : str, optional

        Raises
        ------
        RegistryInputError
            A name already registered, a bad cadence, tier or GSD, a boundary without area.
        InputFileError, VectorFormatError, NotGeoreferencedError
            From reading the files.
        """
        row = self._site_values(name, boundary, nofly, cadence_days, risk, team, gsd_cm, user)
        with self._write() as s:
            self._refuse_taken(s, [row.name])
            s.add(row)
            s.flush()
            return self._site_record(row)

    def _site_values(
        self,
        name: str,
        boundary: str | os.PathLike[str] | BaseGeometry,
        nofly: str | os.PathLike[str] | BaseGeometry | None,
        cadence_days: Any,
        risk: Any,
        team: Any,
        gsd_cm: Any,
        user: str | None,
        *,
        where: str = "",
    ) -> SiteRow:
        name = self._check_name(name)
        label = f"{where}site {name!r}"
        try:
            cadence = int(cadence_days)
            if cadence != float(cadence_days) or cadence <= 0:
                raise ValueError
        except (TypeError, ValueError) as exc:
            raise RegistryInputError(
                f"{label}: cadence_days {cadence_days!r} is not a whole number of days > 0; "
                "give e.g. 30"
            ) from exc
        if risk not in RISKS:
            raise RegistryInputError(
                f"{label}: risk {risk!r} is not one of high, medium, low; give one of them"
            )
        try:
            gsd = float(gsd_cm)
            if not 0.1 <= gsd <= 50:
                raise ValueError
        except (TypeError, ValueError) as exc:
            raise RegistryInputError(
                f"{label}: gsd_cm {gsd_cm!r} is not a ground sample distance in cm/px (0.1 to "
                "50); give e.g. 2"
            ) from exc
        from survey.sites import read_nofly, read_site_area  # file readers, imported when used

        source: str | None = None
        if isinstance(boundary, BaseGeometry):
            area = _polygonal(boundary, label)
        else:
            source = str(Path(boundary).absolute())
            area = _polygonal(read_site_area(boundary, 4326), f"{boundary}")
        nofly_geom: BaseGeometry | None = None
        if isinstance(nofly, BaseGeometry):
            nofly_geom = _polygonal(nofly, f"{label} no-fly zones")
        elif nofly is not None:
            nofly_geom = shapely.union_all(read_nofly(nofly, 4326))
        crs = metric_crs(area)
        now = self.clock()
        return SiteRow(
            name=name,
            boundary=to_wkb(area),
            nofly=None if nofly_geom is None else to_wkb(nofly_geom),
            **bbox(area),
            area_m2=float(to_metric([area], crs)[0].area),
            cadence_days=cadence,
            risk=risk,
            team=None if team is None or str(team).strip() == "" else str(team).strip()[:200],
            gsd_cm=gsd,
            boundary_source=source,
            created_at=now,
            created_by=self._who(user),
        )

    def _refuse_taken(self, s: Any, names: Sequence[str], where: str = "") -> None:
        taken = s.scalars(sa.select(SiteRow.name).where(SiteRow.name.in_(list(names)))).all()
        if taken:
            raise RegistryInputError(
                f"{where}site {taken[0]!r} is already registered in {self.where}; choose another "
                "name (`sitewatch sites show NAME` shows it)"
            )

    def import_sites(
        self, path: str | os.PathLike[str], *, user: str | None = None
    ) -> list[SiteRecord]:
        """Register every site of a GeoPackage or GeoJSON: one polygon feature each, with
        properties ``name`` (required), ``cadence_days``, ``risk``, ``team``, ``gsd_cm``.

        All or nothing: one bad feature or a name already registered (or twice in the file)
        registers none of them.

        Raises
        ------
        RegistryInputError, InputFileError, VectorFormatError, NotGeoreferencedError
        """
        from pyproj import CRS

        from survey.vectors import read_features

        features = read_features(path, role="sites file")
        if len(features) == 0:
            raise RegistryInputError(f"{path}: the sites file has no features; give one per site")
        geoms = (
            to_crs(features.geometries, 4326)
            if features.crs != CRS.from_epsg(4326)
            else list(features.geometries)
        )
        rows: list[SiteRow] = []
        seen: set[str] = set()
        for i, (geom, props) in enumerate(zip(geoms, features.properties, strict=True)):
            name = props.get("name")
            where = f"{path}: feature {i}: "
            if name is None or str(name).strip() == "":
                raise RegistryInputError(f"{where}no name; give every feature a name property")
            name = str(name).strip()
            if name in seen:
                raise RegistryInputError(f"{path}: site {name!r} appears twice; make names unique")
            seen.add(name)
            rows.append(
                self._site_values(
                    name,
                    _polygonal(geom, f"{where}site {name!r}"),
                    None,
                    props.get("cadence_days") or DEFAULT_CADENCE_DAYS,
                    props.get("risk") or "medium",
                    props.get("team"),
                    props.get("gsd_cm") or DEFAULT_GSD_CM,
                    user,
                    where=where,
                )
            )
            rows[-1].boundary_source = str(Path(path).absolute())
        with self._write() as s:
            self._refuse_taken(s, [r.name for r in rows], where=f"{path}: ")
            s.add_all(rows)
            s.flush()
            return [self._site_record(r) for r in rows]

    def sites(self) -> list[SiteRecord]:
        """Every site, by name."""
        with self._read() as s:
            return [
                self._site_record(r) for r in s.scalars(sa.select(SiteRow).order_by(SiteRow.name))
            ]

    def site(self, name: str) -> SiteRecord:
        """The site named ``name``.

        Raises
        ------
        RegistryLookupError
        """
        with self._read() as s:
            return self._site_record(self._site_row(s, name))

    def site_crs(self, name: str) -> CRS:
        """The UTM zone the site's geometry is measured in."""
        return metric_crs(self.site(name).boundary)

    # ------------------------------------------------------------------ permits

    def import_permits(
        self, path: str | os.PathLike[str], site: str, *, user: str | None = None
    ) -> PermitImport:
        """Add the permit versions of a file to a site (:mod:`.permit_versions`).

        A version already registered with the same content is skipped (importing a file twice
        changes nothing); one with the same permit id and ``valid_from`` but other content is
        refused, and so are versions that overlap, in the file or with those registered.
        All or nothing.

        Raises
        ------
        RegistryInputError, RegistryLookupError, PermitError, InputFileError,
        VectorFormatError, NotGeoreferencedError
        """
        versions = read_permit_versions(path)
        who = self._who(user)
        with self._write() as s:
            site_row = self._site_row(s, site)
            known = self._versions(s, site_row.id)
            by_key = {(v.permit_id, v.valid_from): v for v in known}
            added: list[PermitVersion] = []
            unchanged = 0
            for v in versions:
                old = by_key.get((v.permit_id, v.valid_from))
                if old is None:
                    added.append(v)
                elif old.same_content(v):
                    unchanged += 1
                else:
                    raise RegistryInputError(
                        f"{path}: permit {v.label()} is already registered for site {site!r} "
                        f"(from {old.source or 'another file'}) with other content; an amendment "
                        "is a new version with its own valid_from"
                    )
            check_versions([*known, *added], where=f"{path} (with the versions registered)")
            now = self.clock()
            for v in added:
                s.add(
                    PermitVersionRow(
                        site_id=site_row.id,
                        permit_id=v.permit_id,
                        valid_from=v.valid_from,
                        valid_to=v.valid_to,
                        max_height_m=v.max_height_m,
                        floors=v.floors,
                        footprint=to_wkb(v.geometry),
                        source=str(Path(path).absolute()),
                        imported_at=now,
                        imported_by=who,
                    )
                )
            if added:
                self.custody.record(
                    "permits-import",
                    case=None,
                    evidence=[],
                    parameters={
                        "site": site,
                        "file": str(Path(path).absolute()),
                        "versions": [v.label() for v in added],
                    },
                    operator=who,
                )
        return PermitImport(
            site,
            tuple(v.label() for v in added),
            unchanged,
            len({v.permit_id for v in versions}),
        )

    @staticmethod
    def _versions(s: Any, site_id: int) -> list[PermitVersion]:
        rows = s.scalars(
            sa.select(PermitVersionRow)
            .where(PermitVersionRow.site_id == site_id)
            .order_by(PermitVersionRow.permit_id, PermitVersionRow.valid_from)
        )
        return [
            PermitVersion(
                permit_id=r.permit_id,
                geometry=from_wkb(r.footprint),
                max_height_m=r.max_height_m,
                floors=r.floors,
                valid_from=r.valid_from,
                valid_to=r.valid_to,
                source=r.source,
            )
            for r in rows
        ]

    def permit_versions(self, site: str) -> list[PermitVersion]:
        """Every version of every permit of a site (WGS84), by permit id and start."""
        with self._read() as s:
            return self._versions(s, self._site_row(s, site).id)

    def permits_at(
        self, site: str, date: str | dt.date, crs: CRS | str | int | None = None
    ) -> list[Permit]:
        """The permits in force on ``date``, one version each, as ``build_leads`` takes them.

        Parameters
        ----------
        site : str
        date : date or ISO 8601 text
            The survey date.
        crs : CRS, optional
            CRS of the returned footprints (the detection grid's); default the site's UTM zone.
        """
        from change_detection.permits import Permit

        day = parse_day(date, "survey date")
        versions = self.permit_versions(site)
        permits = in_force(versions, day)
        target = crs if crs is not None else self.site_crs(site)
        geoms = to_crs([p.geometry for p in permits], target)
        return [
            Permit(p.permit_id, g, p.max_height_m, p.floors, p.valid_from, p.valid_to)
            for p, g in zip(permits, geoms, strict=True)
        ]

    # ------------------------------------------------------------------ existing buildings

    def import_existing(
        self, path: str | os.PathLike[str], site: str, *, user: str | None = None
    ) -> int:
        """Replace a site's existing-buildings layer with the buildings of a file
        (:func:`survey.buildings.read_existing_buildings`); returns how many.

        Raises
        ------
        RegistryLookupError, VectorFormatError, InputFileError, NotGeoreferencedError
        """
        from survey.buildings import read_existing_buildings

        buildings = read_existing_buildings(path, 4326)
        who = self._who(user)
        with self._write() as s:
            site_row = self._site_row(s, site)
            s.execute(
                sa.delete(ExistingBuildingRow).where(ExistingBuildingRow.site_id == site_row.id)
            )
            now = self.clock()
            s.add_all(
                ExistingBuildingRow(
                    site_id=site_row.id,
                    building_id=b.building_id,
                    footprint=to_wkb(b.geometry),
                    height_m=b.height_m,
                    floors=b.floors,
                    source=str(Path(path).absolute()),
                    imported_at=now,
                    imported_by=who,
                )
                for b in buildings
            )
            self.custody.record(
                "existing-import",
                case=None,
                evidence=[],
                parameters={
                    "site": site,
                    "file": str(Path(path).absolute()),
                    "buildings": len(buildings),
                },
                operator=who,
            )
        return len(buildings)

    def existing_buildings(
        self, site: str, crs: CRS | str | int | None = None
    ) -> list[ExistingBuilding]:
        """A site's existing buildings as ``build_leads`` takes them (footprints in ``crs``,
        default the site's UTM zone); empty when it has no layer."""
        from change_detection.permits import ExistingBuilding

        with self._read() as s:
            site_row = self._site_row(s, site)
            rows = s.scalars(
                sa.select(ExistingBuildingRow)
                .where(ExistingBuildingRow.site_id == site_row.id)
                .order_by(ExistingBuildingRow.id)
            ).all()
            boundary = from_wkb(site_row.boundary)
        target = crs if crs is not None else metric_crs(boundary)
        geoms = to_crs([from_wkb(r.footprint) for r in rows], target)
        return [
            ExistingBuilding(r.building_id, g, r.height_m, r.floors)
            for r, g in zip(rows, geoms, strict=True)
        ]
