"""The offline review map of a run: swipe map, dual view and the site overview of the leads.

:func:`render_review_map` writes, for ``out_html = review.html``::

    review.html            swipe comparison of the before/after orthophotos (SideBySideLayers),
                           permits, leads coloured by class with popups, flight track (flown
                           or planned), planned route, photos (with thumbnails), measure
                           tool, mouse coordinates (7 decimals), fullscreen, layer control,
                           legend and scale bar; ``review.html#lead=<id>`` zooms to a
                           lead and opens its popup
    review_dual.html       the two epochs side by side in synchronised maps (DualMap)
    review_overview.html   every lead of the run in a table, each linked to its view
    review_files/          vendor/ (Leaflet and plugins), tiles/{before,after}/{z}/{x}/{y}.png,
                           chips/<lead>_{before,after}.png, photos/<n>_<photo>.jpg (thumbnails)

Leads are in the before (reference) frame. When ``after_registered`` (the co-registered after
orthophoto written by ``sitewatch detect``) is given, the after tiles and chips come from it
and are labelled "after (co-registered to before)", so outlines fit both images; each lead's
popup lists the images shown with their SHA-256 and the original each derives from.

A first survey checked against the permit atlas (``sitewatch check``) has one orthophoto:
with ``ortho`` instead of ``before_ortho``/``after_ortho``, the swipe page shows that survey
alone (tiles in ``tiles/survey/``, no swipe), each lead has one chip, the dual view is not
written, and the permits and existing buildings (``existing``) are drawn over it.

The flight is shown as it is named: a track from a flight log (``track.geojson`` of
``sitewatch ingest``) is the "Flight track (flown)", the planner's route given as the track
is the "Flight track (planned route)", and ``route`` draws the planned route as its own
layer beside the flown track. Photos from ``sitewatch ingest`` (``photos.geojson``) are
"Photo positions (taken)": their popups show the time, the position source, the QC flags
and, with ``photo_dir``, a thumbnail written beside the page (:mod:`maps.photos`); the
planner's photo points are "Photo positions (planned)".

Nothing on the pages is fetched from the network (see :mod:`maps.assets`), and all text taken
from input files (permit attributes, reasons, ids) is HTML-escaped before it reaches a page.
:func:`render_lead_view` writes the small map page of one lead used by evidence packages.

The three pages and the lead view are one map drawn four ways, from shared parts:
:mod:`maps.leaflet` (the map, tile layers, tools, controls, the page file), :mod:`maps.layers`
(leads, permits, existing buildings, the flight), :mod:`maps.popups` (a lead's popup),
:mod:`maps.imagery` (which orthophotos are shown, their dates and lineage),
:mod:`maps.markup` (colours, CSS, escaping), :mod:`maps.overview` (the lead table),
:mod:`maps.lead_view` (:func:`render_lead_view`) and :mod:`maps.photos` (thumbnails and
their popups). This module assembles the pages.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import folium
import folium.plugins

from change_detection.leads import LEAD_CLASSES, Lead
from maps.assets import check_offline, copy_assets, localize_assets, write_text_atomic
from maps.chips import render_chip
from maps.errors import MapError
from maps.imagery import _dates, _single_survey, shown_imagery
from maps.layers import Feature, _add_vectors, _Flight, _flight_layers, _legend_html
from maps.layers import _select as _select
from maps.lead_view import render_lead_view
from maps.leaflet import (
    _add_head,
    _add_tools,
    _base_map,
    _HtmlControl,
    _LeadFocus,
    _tile_layer,
    _union_bounds,
    write_page,
)
from maps.markup import CLASS_COLORS, _e, _rel
from maps.overview import _overview_html
from maps.popups import _lead_popup
from maps.tiles import TileSet
from maps.timeline import add_timeline

__all__ = [
    "CLASS_COLORS",
    "Feature",
    "ReviewMap",
    "lead_slug",
    "render_lead_view",
    "render_review_map",
    "write_page",
]

log = logging.getLogger(__name__)


_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def lead_slug(lead_id: str) -> str:
    """File-name-safe form of a lead id (letters, digits, ``.``, ``_``, ``-``)."""
    slug = _SLUG.sub("_", lead_id).strip("._") or "lead"
    return slug[:80]


@dataclass(frozen=True)
class ReviewMap:
    """Paths written by :func:`render_review_map`.

    Attributes
    ----------
    html : Path
        The swipe map page.
    dual_html : Path or None
        The synchronised dual view page (None for a single survey).
    overview_html : Path
        The table of every lead, linked to ``html#lead=<id>``.
    files_dir : Path
        Folder beside the pages with vendor assets, tiles and chips.
    tiles : dict of str to TileSet
        ``"before"`` and ``"after"`` tile pyramids (``"survey"`` for a single survey).
    chips : dict of str to tuple of Path
        Before/after chip PNGs of each lead (the survey chip alone for a single survey), by
        lead id.
    """

    html: Path
    dual_html: Path | None
    overview_html: Path
    files_dir: Path
    tiles: dict[str, TileSet]
    chips: dict[str, tuple[Path, ...]] = field(default_factory=dict)

    @property
    def pages(self) -> list[Path]:
        """The pages written: swipe map, dual view (two surveys only) and lead table."""
        return [p for p in (self.html, self.dual_html, self.overview_html) if p is not None]

    @property
    def paths(self) -> list[Path]:
        """The pages and every file under ``files_dir``."""
        files = sorted(p for p in self.files_dir.rglob("*") if p.is_file())
        return [*self.pages, *files]


def render_review_map(
    leads: Sequence[Lead],
    *,
    before_ortho: Path | None = None,
    after_ortho: Path | None = None,
    out_html: Path,
    permits: Sequence[Feature] | None = None,
    track: Sequence[Feature] | None = None,
    photos: Sequence[Feature] | None = None,
    before_date: str | None = None,
    after_date: str | None = None,
    title: str = "sitewatch review",
    after_registered: Path | None = None,
    ortho: Path | None = None,
    existing: Sequence[Feature] | None = None,
    route: Sequence[Feature] | None = None,
    photo_dir: Path | None = None,
    timeline: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    stages: Sequence[tuple[str, str]] = (),
) -> ReviewMap:
    """Write the offline review pages of a run (see the module docstring for the layout).

    Parameters
    ----------
    leads : sequence of Lead
        Every lead of the run (may be empty: the pages still show the imagery).
    before_ortho, after_ortho : Path
        Orthophotos of the two epochs (8-bit RGB(A) GeoTIFF, any CRS).
    out_html : Path
        The swipe map page; the other pages and ``<stem>_files/`` are written beside it.
    permits, track, photos : sequence of (geometry, properties), optional
        Permit footprints, flight track lines and photo positions, geometries in WGS84. The
        track is named for what it is: the flown track of a log (``track.geojson`` of
        ``sitewatch ingest``) or the planner's route (``mission.geojson``); photos from
        ``photos.geojson`` of ``sitewatch ingest`` get popups with their time, position
        source and QC flags.
    before_date, after_date : str, optional
        Survey dates; default the dates carried by the leads.
    title : str
        Page title.
    after_registered : Path, optional
        The after orthophoto co-registered onto the before grid (``after_registered.tif`` of
        ``sitewatch detect``). When given, the after tiles and chips are drawn from it and
        labelled "after (co-registered to before)", so the lead outlines (in the before frame)
        fit both images; ``after_ortho`` stays the original the popups trace it back to.
    ortho : Path, optional
        The one orthophoto of a first survey checked against the permit atlas (``sitewatch
        check``), instead of ``before_ortho`` and ``after_ortho``: no swipe, no dual view.
    existing : sequence of (geometry, properties), optional
        Legally existing buildings of the atlas (WGS84), drawn as their own layer.
    route : sequence of (geometry, properties), optional
        The planned route (the planner's ``mission.geojson`` works: its ``route`` features),
        drawn dashed as "Planned route" beside the flown track.
    photo_dir : Path, optional
        Folder of the photo files named in ``photos`` (their ``name``): a thumbnail of each
        photo found there is written to ``<stem>_files/photos/`` and shown in its popup.
    timeline : mapping of str to sequence of mapping, optional
        The site's per-project construction timeline (permit id → one row per survey, as
        :func:`survey.run_survey.site_timeline` builds it), drawn on the swipe map as a
        collapsible control (:func:`maps.timeline.add_timeline`).
    stages : sequence of (str, str)
        The stages of the timeline in order, (key, label).

    Returns
    -------
    ReviewMap

    Raises
    ------
    MapError
        Neither ``ortho`` nor both ``before_ortho`` and ``after_ortho`` are given, or both.
    """
    out_html = Path(out_html)
    page_dir = out_html.parent
    page_dir.mkdir(parents=True, exist_ok=True)
    _check_unique(leads)
    single = _single_survey(before_ortho, after_ortho, ortho, after_registered)
    files = page_dir / f"{out_html.stem}_files"
    flight = _flight_layers(track, route, photos, photo_dir, files, page_dir)
    vendor = copy_assets(files / "vendor")
    dates = _dates(leads, before_date, after_date)
    shown = shown_imagery(before_ortho, after_ortho, ortho, after_registered, files / "tiles")
    tiles, after_title, after_label = shown.tiles, shown.after_title, shown.after_label
    chips = {
        lead.lead_id: _lead_chips(lead, before_ortho, shown.after_shown, after_title, files, dates)
        for lead in leads
    }
    overview = page_dir / f"{out_html.stem}_overview.html"
    dual = None if single else page_dir / f"{out_html.stem}_dual.html"
    popups = _lead_popups(leads, chips, page_dir, dates, overview, shown.sources_html, after_label)
    page = _Pages(
        title=title,
        out_html=out_html,
        overview=overview,
        dual=dual,
        vendor=vendor,
        tiles=tiles,
        dates=dates,
        after_title=after_title,
        after_label=after_label,
        leads=leads,
        popups=popups,
        permits=permits,
        existing=existing,
        flight=flight,
        timeline=timeline,
        stages=stages,
    )
    _write_swipe_page(page)
    if dual is not None:
        _write_dual_page(page, dual)
    _write_overview_page(page, chips)
    log.info("review map: %s (%d leads)", out_html, len(leads))
    return ReviewMap(out_html, dual, overview, files, tiles, chips)


def _lead_popups(
    leads: Sequence[Lead],
    chips: Mapping[str, tuple[Path, ...]],
    page_dir: Path,
    dates: tuple[str | None, str | None],
    overview: Path,
    sources_html: str,
    after_label: str,
) -> dict[str, str]:
    """The popup (HTML) of each lead, by lead id, linking to its row of the overview page."""
    return {
        lead.lead_id: _lead_popup(
            lead,
            chips[lead.lead_id],
            page_dir,
            dates,
            f"{overview.name}#lead-{urllib.parse.quote(lead.lead_id, safe='')}",
            sources_html,
            after_label,
        )
        for lead in leads
    }


def _lead_chips(
    lead: Lead,
    before_ortho: Path | None,
    after_shown: Path,
    after_title: str,
    files: Path,
    dates: tuple[str | None, str | None],
) -> tuple[Path, ...]:
    """The chips of one lead: (before, after), or (survey,) without a before orthophoto."""
    slug = lead_slug(lead.lead_id)
    shown: list[Path] = []
    if before_ortho is not None:
        shown.append(
            render_chip(
                before_ortho,
                lead.geometry,
                files / "chips" / f"{slug}_before.png",
                title="Before",
                date=lead.before_date or dates[0],
                size_in=3.2,
                dpi=100,
            )
        )
    shown.append(
        render_chip(
            after_shown,
            lead.geometry,
            files / "chips" / f"{slug}_{'after' if before_ortho is not None else 'survey'}.png",
            title=after_title,
            date=lead.after_date or dates[1],
            size_in=3.2,
            dpi=100,
        )
    )
    return tuple(shown)


@dataclass(frozen=True)
class _Pages:
    """What the swipe and dual pages of one run draw: their files, tiles and layers."""

    title: str
    out_html: Path
    overview: Path
    dual: Path | None
    vendor: Path
    tiles: dict[str, TileSet]
    dates: tuple[str | None, str | None]
    after_title: str
    after_label: str
    leads: Sequence[Lead]
    popups: Mapping[str, str]
    permits: Sequence[Feature] | None
    existing: Sequence[Feature] | None
    flight: _Flight
    timeline: Mapping[str, Sequence[Mapping[str, Any]]] | None = None
    stages: Sequence[tuple[str, str]] = ()

    @property
    def page_dir(self) -> Path:
        return self.out_html.parent

    @property
    def max_zoom(self) -> int:
        return max(ts.max_zoom for ts in self.tiles.values())

    @property
    def bounds(self) -> list[list[float]]:
        return _union_bounds(*(ts.leaflet_bounds for ts in self.tiles.values()))


def _write_swipe_page(page: _Pages) -> None:
    """The swipe map (``review.html``): before | after, or the single survey alone."""
    page_dir, dates, zmax, bounds = page.page_dir, page.dates, page.max_zoom, page.bounds
    links = f'<a href="{_e(page.overview.name)}">lead table ({len(page.leads)})</a>'
    if page.dual is not None:
        links += f'<a href="{_e(page.dual.name)}">dual view</a>'
    m = _base_map(page.title, bounds, zmax)
    if "survey" in page.tiles:
        _tile_layer(page.tiles["survey"], page_dir, "Survey", dates[1]).add_to(m)
        heading = f"<b>{_e(page.title)}</b> — survey {_e(dates[1] or '')} against the permit atlas"
    else:
        before_layer = _tile_layer(page.tiles["before"], page_dir, "Before", dates[0]).add_to(m)
        after_layer = _tile_layer(page.tiles["after"], page_dir, page.after_title, dates[1])
        after_layer.add_to(m)
        folium.plugins.SideBySideLayers(before_layer, after_layer).add_to(m)
        heading = f"<b>{_e(page.title)}</b> — swipe: before | {_e(page.after_label)}"
    lead_layer = _add_vectors(m, page.leads, page.popups, page.permits, page.flight, page.existing)
    _add_tools(m)
    if page.timeline:
        add_timeline(m, page.timeline, page.stages)
    folium.LayerControl(position="topright", collapsed=False).add_to(m)
    classes = [c for c in LEAD_CLASSES if any(lead.lead_class == c for lead in page.leads)]
    _HtmlControl(
        _legend_html(classes, bool(page.permits), page.flight, bool(page.existing)),
        "bottomright",
        "sw-legend",
    ).add_to(m)
    _HtmlControl(f"{heading} &nbsp; {links}", "topright", "sw-links").add_to(m)
    m.fit_bounds(bounds)
    _LeadFocus(lead_layer, zmax).add_to(m)
    localize_assets(m.get_root(), _rel(page.vendor, page_dir))
    write_page(m.get_root(), page.out_html, page.vendor)  # type: ignore[arg-type]


def _write_overview_page(page: _Pages, chips: Mapping[str, tuple[Path, ...]]) -> None:
    """The lead table (``review_overview.html``), each lead linked to its view."""
    write_text_atomic(
        page.overview,
        _overview_html(
            page.leads,
            chips,
            page.page_dir,
            page.out_html.name,
            None if page.dual is None else page.dual.name,
            page.title,
            page.dates,
            page.after_label,
        ),
    )
    check_offline(page.overview)


def _write_dual_page(page: _Pages, dual: Path) -> None:
    """The dual view (``review_dual.html``): the two epochs in synchronised maps."""
    page_dir, dates, zmax, bounds = page.page_dir, page.dates, page.max_zoom, page.bounds
    dm = folium.plugins.DualMap(
        location=[(bounds[0][0] + bounds[1][0]) / 2, (bounds[0][1] + bounds[1][1]) / 2],
        layout="horizontal",
        tiles=None,
        zoom_start=max(zmax - 3, 1),
        max_zoom=zmax + 3,
        control_scale=True,
    )
    _add_head(dm.get_root(), f"{page.title} — dual view")
    _tile_layer(page.tiles["before"], page_dir, "Before", dates[0]).add_to(dm.m1)
    _tile_layer(page.tiles["after"], page_dir, page.after_title, dates[1]).add_to(dm.m2)
    for sub, label in ((dm.m1, "before"), (dm.m2, page.after_label)):
        _add_vectors(sub, page.leads, page.popups, page.permits, page.flight, page.existing)
        folium.LayerControl(position="topright", collapsed=True).add_to(sub)
        folium.plugins.MousePosition(
            position="bottomleft",
            separator=", ",
            prefix=f"{label}: lat, lon:",
            num_digits=7,
            lat_formatter="function (n) { return n.toFixed(7); }",
            lng_formatter="function (n) { return n.toFixed(7); }",
        ).add_to(sub)
    _HtmlControl(
        f"<b>{_e(dates[0] or 'before')}</b> (left) | <b>{_e(dates[1] or 'after')}</b> "
        f"({_e(page.after_label)}, right)"
        f' &nbsp; <a href="{_e(page.out_html.name)}">swipe map</a>'
        f'<a href="{_e(page.overview.name)}">lead table</a>',
        "topright",
        "sw-links",
    ).add_to(dm.m2)
    dm.fit_bounds(bounds)
    localize_assets(dm.get_root(), _rel(page.vendor, page_dir))
    write_page(dm.get_root(), dual, page.vendor)  # type: ignore[arg-type]


def _check_unique(leads: Sequence[Lead]) -> None:
    seen: dict[str, str] = {}
    for lead in leads:
        if lead.lead_id in seen:
            raise MapError(f"lead id {lead.lead_id!r} appears twice; lead ids must be unique")
        slug = lead_slug(lead.lead_id)
        if slug in seen.values():
            raise MapError(
                f"lead ids {lead.lead_id!r} and another map to the same file name {slug!r}; "
                "rename one of them"
            )
        seen[lead.lead_id] = slug
