"""The enforcement lead: the unit of output of change detection.

A :class:`Lead` is a frozen record with its geometry in WGS84 (longitude, latitude), and it
round-trips losslessly through an RFC 7946 GeoJSON Feature, the exchange format read by the
review map (:mod:`maps`) and written to ``leads.geojson`` by the pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import shapely
import shapely.errors
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from change_detection.errors import ChangeDetectionError

__all__ = [
    "LEAD_CLASSES",
    "LEAD_KINDS",
    "Lead",
    "leads_from_feature_collection",
    "leads_to_feature_collection",
    "with_unique_ids",
]

#: Classes of a lead. With permits: ``no_permit``, ``outside_footprint``, ``over_height``,
#: ``demolished``. Without permits every change is ``new_structure``, ``raised`` or
#: ``demolished``.
LEAD_CLASSES: tuple[str, ...] = (
    "no_permit",
    "outside_footprint",
    "over_height",
    "demolished",
    "new_structure",
    "raised",
)

#: What physically changed: a new object, an existing one made taller, one removed.
LEAD_KINDS: tuple[str, ...] = ("new", "raised", "removed")

_COORD_DECIMALS = 8  # 1e-8 degrees is about 1 mm: lossless for survey-grade geometry.


@dataclass(frozen=True)
class Lead:
    """One enforcement lead.

    Attributes
    ----------
    lead_id : str
        Stable identifier: the same change found in a re-run gets the same id. 16 hex digits
        from the class, the two survey dates and the 5 m WGS84 grid cell of the outline's
        centroid (:func:`change_detection.permits.lead_id`), with ``-2``, ``-3``, ... appended
        for further leads in the same cell (:func:`with_unique_ids`).
    lead_class : str
        One of :data:`LEAD_CLASSES`; serialised as the GeoJSON property ``class``.
    geometry : shapely geometry
        Polygon or MultiPolygon in WGS84, (longitude, latitude) order.
    reasons : tuple of str
        Why it was flagged, in plain words for an inspector.
    area_m2 : float
        Area of the lead geometry in square metres (measured in the projected CRS).
    height_gain_m : float or None
        Robust height change in metres (negative for a demolition); None in RGB-only mode.
    floors_added : int or None
        ``round(height_gain_m / storey_height)``; None in RGB-only mode.
    permit_ids : tuple of str
        Permits the lead was checked against (empty for ``no_permit``).
    score : float
        Confidence in [0, 1].
    kind : str
        One of :data:`LEAD_KINDS`.
    before_date, after_date : str or None
        Survey dates (ISO 8601) of the two epochs.
    rgb_only : bool
        True when no DSM was available: weaker evidence.
    input_hashes : mapping of str to str
        SHA-256 of every input file, keyed by role (``before_ortho``, ``after_dsm``, ...).
    """

    lead_id: str
    lead_class: str
    geometry: BaseGeometry
    reasons: tuple[str, ...]
    area_m2: float
    height_gain_m: float | None
    floors_added: int | None
    permit_ids: tuple[str, ...] = ()
    score: float = 0.0
    kind: str = "new"
    before_date: str | None = None
    after_date: str | None = None
    rgb_only: bool = False
    input_hashes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.lead_class not in LEAD_CLASSES:
            raise ChangeDetectionError(
                f"lead {_short(self.lead_id)}: class {_short(self.lead_class)} is not one of "
                f"{LEAD_CLASSES}"
            )
        if self.kind not in LEAD_KINDS:
            raise ChangeDetectionError(
                f"lead {_short(self.lead_id)}: kind {_short(self.kind)} is not one of {LEAD_KINDS}"
            )
        if not 0.0 <= self.score <= 1.0 or math.isnan(self.score):
            raise ChangeDetectionError(
                f"lead {_short(self.lead_id)}: score {self.score} is not in [0, 1]"
            )

    def to_feature(self) -> dict[str, Any]:
        """Return the lead as an RFC 7946 GeoJSON Feature (a plain, JSON-ready dict)."""
        geom = shapely.set_precision(self.geometry, 10.0**-_COORD_DECIMALS)
        return {
            "type": "Feature",
            "id": self.lead_id,
            "geometry": _rounded(mapping(geom)),
            "properties": {
                "lead_id": self.lead_id,
                "class": self.lead_class,
                "reasons": list(self.reasons),
                "area_m2": round(float(self.area_m2), 2),
                "height_gain_m": None
                if self.height_gain_m is None
                else round(float(self.height_gain_m), 2),
                "floors_added": self.floors_added,
                "permit_ids": list(self.permit_ids),
                "score": round(float(self.score), 3),
                "kind": self.kind,
                "before_date": self.before_date,
                "after_date": self.after_date,
                "rgb_only": self.rgb_only,
                "input_hashes": dict(self.input_hashes),
            },
        }

    @classmethod
    def from_feature(cls, feature: Mapping[str, Any]) -> Lead:
        """Build a lead from a GeoJSON Feature written by :meth:`to_feature`.

        Raises
        ------
        ChangeDetectionError
            The feature is not a JSON object, a property is missing or of the wrong type, a
            number is not finite (area, height), or the geometry cannot be built.
        """
        if not isinstance(feature, Mapping):
            raise ChangeDetectionError(
                f"a feature is a JSON {type(feature).__name__}, not a sitewatch lead; "
                "leads files are written by `sitewatch detect`"
            )
        try:
            props = feature["properties"]
            geom = shape(feature["geometry"])
            for name in ("area_m2", "height_gain_m"):
                value = props.get(name)
                if value is not None and not math.isfinite(float(value)):
                    raise ValueError(f"{name} is {value}")
            return cls(
                lead_id=str(props["lead_id"]),
                lead_class=str(props["class"]),
                geometry=geom,
                reasons=tuple(str(r) for r in props.get("reasons", ())),
                area_m2=float(props["area_m2"]),
                height_gain_m=None
                if props.get("height_gain_m") is None
                else float(props["height_gain_m"]),
                floors_added=None
                if props.get("floors_added") is None
                else int(props["floors_added"]),
                permit_ids=tuple(str(p) for p in props.get("permit_ids", ())),
                score=float(props.get("score", 0.0)),
                kind=str(props.get("kind", "new")),
                before_date=props.get("before_date"),
                after_date=props.get("after_date"),
                rgb_only=bool(props.get("rgb_only", False)),
                input_hashes=dict(props.get("input_hashes", {})),
            )
        except (
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
            IndexError,
            OverflowError,
            RecursionError,
            shapely.errors.ShapelyError,
        ) as exc:
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
            raise ChangeDetectionError(
                f"feature {_short(feature.get('id', '?'))} is not a sitewatch lead ({reason}); "
                "leads files are written by `sitewatch detect`"
            ) from exc


def leads_to_feature_collection(leads: Iterable[Lead]) -> dict[str, Any]:
    """Return an RFC 7946 FeatureCollection of ``leads`` (WGS84, no ``crs`` member)."""
    return {"type": "FeatureCollection", "features": [lead.to_feature() for lead in leads]}


def leads_from_feature_collection(collection: Mapping[str, Any]) -> list[Lead]:
    """Parse a FeatureCollection written by :func:`leads_to_feature_collection`."""
    if collection.get("type") != "FeatureCollection":
        raise ChangeDetectionError(
            f"expected a GeoJSON FeatureCollection of leads, got type "
            f"{_short(collection.get('type'))}"
        )
    features: Sequence[Mapping[str, Any]] = collection.get("features", [])
    if not isinstance(features, list):
        raise ChangeDetectionError(
            f"'features' of the FeatureCollection is a JSON {type(features).__name__}, not a "
            "list; leads files are written by `sitewatch detect`"
        )
    leads = []
    for i, feature in enumerate(features):
        try:
            leads.append(Lead.from_feature(feature))
        except ChangeDetectionError as exc:
            raise ChangeDetectionError(f"feature {i}: {exc}") from exc
    return leads


def with_unique_ids(leads: Iterable[Lead]) -> list[Lead]:
    """Give leads that share an id distinct, deterministic ids; the order is kept.

    Ids are places (see :func:`change_detection.permits.lead_id`), so two leads of one class
    whose centroids fall in the same grid cell get the same id. Each such group is ordered by
    centroid, north to south and then west to east (then by area and outline, for exact
    ties): the first keeps the id, the others get ``-2``, ``-3``, ... appended
    (``3f2a...-2``). The result does not depend on the order of ``leads``.

    >>> from shapely.geometry import box
    >>> a = Lead("x", "no_permit", box(0, 0.00002, 0.00001, 0.00003), (), 1.0, None, None)
    >>> b = Lead("x", "no_permit", box(0, 0, 0.00001, 0.00001), (), 1.0, None, None)
    >>> [lead.lead_id for lead in with_unique_ids([b, a])]
    ['x-2', 'x']
    """
    out = list(leads)
    groups: dict[str, list[int]] = {}
    for i, lead in enumerate(out):
        groups.setdefault(lead.lead_id, []).append(i)
    taken = set(groups)

    def order(i: int) -> tuple[float, float, float, bytes]:
        c = out[i].geometry.centroid
        return (-c.y, c.x, out[i].area_m2, shapely.to_wkb(out[i].geometry))

    for base, members in groups.items():
        n = 1
        for i in sorted(members, key=order)[1:]:
            n += 1
            while f"{base}-{n}" in taken:  # only when given ids already look like ours
                n += 1
            taken.add(f"{base}-{n}")
            out[i] = replace(out[i], lead_id=f"{base}-{n}")
    return out


def _short(value: object, limit: int = 60) -> str:
    """``repr(value)`` on one line, cut to ``limit`` characters, for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rounded(obj: Any) -> Any:
    if isinstance(obj, float):
        return round(obj, _COORD_DECIMALS)
    if isinstance(obj, list | tuple):
        return [_rounded(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    return obj
