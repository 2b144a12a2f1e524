"""The per-project construction timeline (规划"八录"): the stage each survey recorded.

Takes the timeline as data — permit id → one row per survey (``date``, ``stage``,
``stage_name``, ``storeys``, ``permitted_floors``, ``height_m``, ``permitted_height_m``,
``exceeds``, ``reasons``, ``survey_id``), as :func:`survey.run_survey.site_timeline` builds it
from each survey's ``progress.json`` — and the ordered stages, and renders:

* :func:`timeline_html`: an HTML fragment, one table per project, one row per survey, the
  stages as a strip of cells filled up to the stage reached, a stage beyond the permit in red;
* :func:`write_timeline_page`: that fragment as a standalone offline page;
* :func:`add_timeline`: that fragment as a collapsible control of a folium review map.

All text from the data is HTML-escaped. Nothing is fetched from the network.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import folium
from branca.element import MacroElement
from folium.template import Template

from maps.assets import write_text_atomic

__all__ = ["add_timeline", "timeline_html", "write_timeline_page"]

Timeline = Mapping[str, Sequence[Mapping[str, Any]]]
"""permit id → its rows, one per survey, by date."""

_CSS = """
.sw-timeline { font: 13px/1.35 sans-serif; max-height: 60vh; overflow: auto; }
.sw-timeline h3 { margin: 10px 0 4px; font-size: 14px; }
.sw-timeline table { border-collapse: collapse; margin-bottom: 8px; }
.sw-timeline td, .sw-timeline th { border: 1px solid #ccc; padding: 2px 6px; }
.sw-timeline td.stage { width: 14px; padding: 0; }
.sw-timeline td.done { background: #4a90d9; }
.sw-timeline td.over { background: #d0021b; }
.sw-timeline tr.exceeds td.text { color: #d0021b; font-weight: bold; }
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _limit(row: Mapping[str, Any]) -> str:
    floors = row.get("permitted_floors")
    height = row.get("permitted_height_m")
    parts = []
    if floors is not None:
        parts.append(f"{floors} fl.")
    if height is not None:
        parts.append(f"{float(height):.1f} m")
    return " / ".join(parts) or "—"


def timeline_html(timeline: Timeline, stages: Sequence[tuple[str, str]]) -> str:
    """The timeline as an HTML fragment (module docstring).

    Parameters
    ----------
    timeline : mapping of str to sequence of mapping
        Permit id → rows (one per survey).
    stages : sequence of (str, str)
        The stages in order, (key, label).

    Returns
    -------
    str
    """
    keys = [k for k, _ in stages]
    head = "".join(f'<th title="{_e(label)}">{i + 1}</th>' for i, (_, label) in enumerate(stages))
    legend = ", ".join(f"{i + 1} {_e(label)}" for i, (_, label) in enumerate(stages))
    parts = [f'<div class="sw-timeline"><style>{_CSS}</style>', f"<p>Stages: {legend}</p>"]
    if not timeline:
        parts.append("<p>No permitted project on this site yet.</p>")
    for permit_id in sorted(timeline):
        rows = timeline[permit_id]
        parts.append(f"<h3>Permit {_e(permit_id)}</h3>")
        parts.append(
            "<table><tr><th>survey</th><th>date</th><th>stage</th><th>floors</th>"
            f"<th>height</th><th>permitted</th>{head}<th>flags</th></tr>"
        )
        for row in rows:
            stage = str(row.get("stage", ""))
            reached = keys.index(stage) if stage in keys else -1
            exceeds = list(row.get("exceeds") or [])
            cells = "".join(
                '<td class="stage {}"></td>'.format(
                    ("over" if exceeds else "done") if i <= reached else ""
                )
                for i in range(len(keys))
            )
            flags = ", ".join(_e(x) for x in exceeds) or "—"
            reasons = " | ".join(str(r) for r in row.get("reasons") or [])
            height = row.get("height_m")
            parts.append(
                f'<tr class="{"exceeds" if exceeds else ""}" title="{_e(reasons)}">'
                f'<td class="text">{_e(row.get("survey_id", ""))}</td>'
                f'<td class="text">{_e(row.get("date"))}</td>'
                f'<td class="text">{_e(row.get("stage_name", stage))}</td>'
                f'<td class="text">{_e(row.get("storeys"))}</td>'
                f'<td class="text">{"" if height is None else f"{float(height):.1f} m"}</td>'
                f'<td class="text">{_e(_limit(row))}</td>{cells}'
                f'<td class="text">{flags}</td></tr>'
            )
        parts.append("</table>")
    parts.append("</div>")
    return "".join(parts)


def write_timeline_page(
    path: str | Path,
    timeline: Timeline,
    stages: Sequence[tuple[str, str]],
    *,
    title: str = "construction progress",
) -> Path:
    """Write the timeline as a standalone offline page (atomically); returns its path."""
    page = (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title></head><body><h2>{_e(title)}</h2>"
        f"{timeline_html(timeline, stages)}</body></html>\n"
    )
    return write_text_atomic(Path(path), page)


class _TimelineControl(MacroElement):
    """A collapsible Leaflet control holding the timeline fragment."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var c = L.control({position: "bottomleft"});
            c.onAdd = function () {
                var div = L.DomUtil.create("div", "leaflet-bar sw-timeline-control");
                div.style.background = "white";
                div.style.padding = "4px 8px";
                div.innerHTML = {{ this.html|tojson }};
                L.DomEvent.disableClickPropagation(div);
                L.DomEvent.disableScrollPropagation(div);
                return div;
            };
            c.addTo({{ this._parent.get_name() }});
        })();
        {% endmacro %}
        """
    )

    def __init__(self, html_text: str) -> None:
        super().__init__()
        self._name = "TimelineControl"
        self.html = html_text


def add_timeline(m: folium.Map, timeline: Timeline, stages: Sequence[tuple[str, str]]) -> None:
    """Add the timeline to a review map as a collapsible control (bottom left)."""
    body = timeline_html(timeline, stages)
    m.add_child(
        _TimelineControl(
            f"<details><summary>Construction progress ({len(timeline)} project"
            f"{'s' if len(timeline) != 1 else ''})</summary>{body}</details>"
        )
    )
