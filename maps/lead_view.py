"""The small swipe map of one lead that travels in an evidence package."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import folium
import folium.plugins

from change_detection.leads import Lead
from maps.assets import copy_assets, localize_assets
from maps.imagery import _dates, _single_survey, shown_imagery
from maps.layers import Feature, _add_vectors, _Flight, _legend_html
from maps.leaflet import (
    _add_tools,
    _base_map,
    _geom_bounds,
    _HtmlControl,
    _LeadFocus,
    _tile_layer,
    write_page,
)
from maps.markup import _rel
from maps.popups import _lead_popup


def render_lead_view(
    lead: Lead,
    *,
    before_ortho: Path | None = None,
    after_ortho: Path | None = None,
    out_html: Path,
    permits: Sequence[Feature] | None = None,
    chips: tuple[Path, ...] | None = None,
    before_date: str | None = None,
    after_date: str | None = None,
    margin_m: float = 40.0,
    after_registered: Path | None = None,
    ortho: Path | None = None,
    existing: Sequence[Feature] | None = None,
) -> list[Path]:
    """Write a small offline swipe map centred on one lead; return every file written.

    Tiles are rendered only around the lead (its bounding box plus ``margin_m``), so the page
    stays small enough to travel in an evidence package. Its files go to
    ``<stem>_files/`` beside ``out_html``. With ``after_registered`` (see
    :func:`render_review_map`) the after tiles come from it, labelled as co-registered. With
    ``ortho`` (a single survey checked against the permit atlas) the survey is shown alone,
    with the permits and existing buildings (``existing``) near the lead.
    """
    out_html = Path(out_html)
    page_dir = out_html.parent
    single = _single_survey(before_ortho, after_ortho, ortho, after_registered)
    files = page_dir / f"{out_html.stem}_files"
    vendor = copy_assets(files / "vendor")
    w, s, e, n = lead.geometry.bounds
    lat = (s + n) / 2
    dlat = margin_m / 111_320.0
    dlon = margin_m / (111_320.0 * max(math.cos(math.radians(lat)), 1e-6))
    area = (w - dlon, s - dlat, e + dlon, n + dlat)
    dates = _dates([lead], before_date, after_date)
    shown = shown_imagery(
        before_ortho, after_ortho, ortho, after_registered, files / "tiles", area, max_levels=4
    )
    tiles, after_title, after_label = shown.tiles, shown.after_title, shown.after_label
    zmax = max(t.max_zoom for t in tiles.values())
    lead_bounds = _geom_bounds([lead.geometry])
    assert lead_bounds is not None
    m = _base_map(f"Lead {lead.lead_id}", lead_bounds, zmax)
    if single:
        _tile_layer(tiles["survey"], page_dir, after_title, dates[1]).add_to(m)
    else:
        bl = _tile_layer(tiles["before"], page_dir, "Before", dates[0]).add_to(m)
        al = _tile_layer(tiles["after"], page_dir, after_title, dates[1]).add_to(m)
        folium.plugins.SideBySideLayers(bl, al).add_to(m)
    popup = _lead_popup(lead, chips, page_dir, dates, None, shown.sources_html, after_label)
    zone = lead.geometry.buffer(margin_m / 111_320.0)
    near = None
    if permits:
        near = [(g, p) for g, p in permits if g is not None and g.intersects(zone)]
    near_existing = None
    if existing:
        near_existing = [(g, p) for g, p in existing if g is not None and g.intersects(zone)]
    layer = _add_vectors(m, [lead], {lead.lead_id: popup}, near, _Flight(), near_existing)
    _add_tools(m)
    folium.LayerControl(position="topright", collapsed=False).add_to(m)
    _HtmlControl(
        _legend_html([lead.lead_class], bool(near), _Flight(), bool(near_existing)),
        "bottomright",
        "sw-legend",
    ).add_to(m)
    m.fit_bounds(lead_bounds, padding=(60, 60), max_zoom=zmax)
    _LeadFocus(layer, zmax).add_to(m)
    localize_assets(m.get_root(), _rel(vendor, page_dir))
    write_page(m.get_root(), out_html, vendor)  # type: ignore[arg-type]
    return [out_html, *sorted(p for p in files.rglob("*") if p.is_file())]
