"""Reading a DJI WPML route file (``.kmz``) safely: the archive and its XML.

The file is never extracted: the two XML members are read into memory, each at most
:data:`MAX_MEMBER_BYTES`, through defusedxml with DTDs refused (no entity expansion, no
external references: an XML bomb is one clear error). A file that is not a ZIP, has no
``wpmz/`` folder, holds a member whose name climbs out of the archive (``..``, an absolute
path) or is malformed is one :class:`~flightplans.errors.PlanFileError` line naming it
(:func:`unusable_route`). :mod:`flightplans.wpml_read` turns the XML into routes.
"""

from __future__ import annotations

import math
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from flightplans.errors import PlanFileError
from flightplans.wpml import KML_NS, KMZ_FOLDER, TEMPLATE_NAME, WAYLINES_NAME, WPML_NS_PATTERN

__all__ = [
    "MAX_MEMBERS",
    "MAX_MEMBER_BYTES",
    "WpmlXml",
    "kml_child",
    "parse_xml",
    "placemark_latlon",
    "read_members",
    "unusable_route",
    "xml_number",
]

#: Largest XML member read from a KMZ (bytes, uncompressed); real routes are a few MB.
MAX_MEMBER_BYTES = 64 * 1024 * 1024
#: Most members a KMZ may list.
MAX_MEMBERS = 10_000

_FIX = (
    "export the route from DJI Pilot 2 or FlightHub 2 again, or write it with "
    "`sitewatch plan --format wpml`"
)


def unusable_route(path: Path, what: str) -> PlanFileError:
    """The one-line error for a route file that cannot be used, saying ``what`` is wrong."""
    return PlanFileError(f"{path}: not a usable DJI WPML route ({what}); {_FIX}")


def _unsafe(name: str) -> bool:
    parts = re.split(r"[\\/]", name)
    return (
        name.startswith(("/", "\\"))
        or ".." in parts
        or bool(re.match(r"^[A-Za-z]:", name))
        or "\x00" in name
    )


def read_members(path: Path) -> tuple[bytes | None, bytes]:
    """The template (if any) and the waylines XML of a KMZ, read in memory."""
    if not zipfile.is_zipfile(path):
        raise unusable_route(
            path,
            "not a ZIP archive; a .kmz route is a ZIP holding wpmz/template.kml "
            "and wpmz/waylines.wpml",
        )
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise unusable_route(path, f"{len(infos)} members inside, more than {MAX_MEMBERS}")
            for info in infos:
                if _unsafe(info.filename):
                    raise unusable_route(
                        path,
                        f"member {info.filename!r} names a path outside the archive; refused "
                        "(nothing was extracted)",
                    )
            names = {i.filename: i for i in infos}
            if not any(n == KMZ_FOLDER + "/" or n.startswith(KMZ_FOLDER + "/") for n in names):
                listed = ", ".join(sorted(names)[:5]) or "nothing"
                raise unusable_route(path, f"no {KMZ_FOLDER}/ folder inside (it holds {listed})")
            if WAYLINES_NAME not in names:
                what = (
                    f"only {TEMPLATE_NAME}, no {WAYLINES_NAME}: open it in DJI Pilot 2 and save "
                    "it so the execution file is generated"
                    if TEMPLATE_NAME in names
                    else f"no {WAYLINES_NAME}"
                )
                raise unusable_route(path, what)
            template = _read_member(zf, names.get(TEMPLATE_NAME), path)
            waylines = _read_member(zf, names[WAYLINES_NAME], path)
    except zipfile.BadZipFile as exc:
        raise unusable_route(path, f"damaged ZIP archive: {exc}") from exc
    assert waylines is not None
    return template, waylines


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo | None, path: Path) -> bytes | None:
    if info is None:
        return None
    if info.file_size > MAX_MEMBER_BYTES:
        raise unusable_route(
            path,
            f"{info.filename} would unpack to {info.file_size} bytes, more than {MAX_MEMBER_BYTES}",
        )
    try:
        with zf.open(info) as f:
            data = f.read(MAX_MEMBER_BYTES + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise unusable_route(path, f"{info.filename} cannot be unpacked ({exc})") from exc
    if len(data) > MAX_MEMBER_BYTES:
        raise unusable_route(path, f"{info.filename} unpacks to more than {MAX_MEMBER_BYTES} bytes")
    return data


@dataclass(frozen=True)
class WpmlXml:
    root: Element
    ns: str
    name: str

    def w(self, name: str) -> str:
        return f"{{{self.ns}}}{name}"

    def find(self, el: Element, name: str) -> Element | None:
        return el.find(self.w(name))

    def text(self, el: Element | None, name: str) -> str | None:
        if el is None:
            return None
        e = el.find(self.w(name))
        if e is None or e.text is None:
            return None
        return e.text.strip()


def parse_xml(data: bytes, member: str, path: Path) -> WpmlXml:
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise unusable_route(
            path,
            f"{member} declares a DTD or entities ({type(exc).__name__}); refused as a possible "
            "XML bomb or external reference",
        ) from exc
    except ParseError as exc:
        raise unusable_route(path, f"{member} is not well-formed XML ({exc})") from exc
    if root.tag != f"{{{KML_NS}}}kml":
        raise unusable_route(path, f"{member}'s root element is {root.tag!r}, not KML 2.2 <kml>")
    uris = {
        el.tag[1:].split("}", 1)[0]
        for el in root.iter()
        if isinstance(el.tag, str) and el.tag.startswith("{http://www.dji.com/wpmz/")
    }
    good = sorted(u for u in uris if WPML_NS_PATTERN.match(u))
    if not good:
        raise unusable_route(path, f"{member} has no http://www.dji.com/wpmz/1.0.x elements")
    if len(uris) > 1:
        raise unusable_route(path, f"{member} mixes WPML namespaces {sorted(uris)}")
    return WpmlXml(root, good[0], member)


def xml_number(
    x: WpmlXml, el: Element | None, name: str, path: Path, default: float | None = None
) -> float:
    t = x.text(el, name)
    if t is None:
        if default is not None:
            return default
        raise unusable_route(path, f"{x.name} has no wpml:{name}")
    try:
        v = float(t)
    except ValueError as exc:
        raise unusable_route(path, f"{x.name}: wpml:{name} is {t!r}, not a number") from exc
    if not math.isfinite(v):
        raise unusable_route(path, f"{x.name}: wpml:{name} is {t!r}, not a finite number")
    return v


def kml_child(el: Element, name: str) -> Element | None:
    return el.find(f"{{{KML_NS}}}{name}")


def placemark_latlon(pm: Element, x: WpmlXml, path: Path, k: int) -> tuple[float, float]:
    pt = kml_child(pm, "Point")
    c = kml_child(pt, "coordinates") if pt is not None else None
    if c is None or not c.text:
        raise unusable_route(path, f"{x.name}: Placemark {k} has no Point/coordinates")
    parts = [p for p in re.split(r"[,\s]+", c.text.strip()) if p]
    try:
        lon, lat = float(parts[0]), float(parts[1])
    except (ValueError, IndexError) as exc:
        raise unusable_route(
            path, f"{x.name}: Placemark {k} coordinates {c.text.strip()!r}"
        ) from exc
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise unusable_route(
            path,
            f"{x.name}: Placemark {k} at lon {lon}, lat {lat} is no place on Earth "
            "(coordinates are longitude,latitude)",
        )
    return lat, lon
