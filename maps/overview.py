"""The lead table page of a review map (``review_overview.html``)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path

from change_detection.leads import Lead
from maps.markup import CLASS_COLORS, _e, _fmt, _rel


def _overview_html(
    leads: Sequence[Lead],
    chips: Mapping[str, tuple[Path, ...]],
    page_dir: Path,
    map_name: str,
    dual_name: str | None,
    title: str,
    dates: tuple[str | None, str | None],
    after_label: str = "after",
) -> str:
    counts: dict[str, int] = {}
    for lead in leads:
        counts[lead.lead_class] = counts.get(lead.lead_class, 0) + 1
    summary = ", ".join(f"{n} {_e(c.replace('_', ' '))}" for c, n in sorted(counts.items()))
    rows = []
    for lead in sorted(leads, key=lambda x: (-x.score, x.lead_id)):
        qid = urllib.parse.quote(lead.lead_id, safe="")
        href = _e(f"{map_name}#lead={qid}")
        color = CLASS_COLORS.get(lead.lead_class, "#000")
        thumbs = ""
        if lead.lead_id in chips:
            shown = chips[lead.lead_id]
            labels = ("before", after_label)[-len(shown) :]
            thumbs = "".join(
                f'<a href="{_e(_rel(p, page_dir))}"><img src="{_e(_rel(p, page_dir))}" '
                f'alt="{_e(lab)}" width="90"></a>'
                for p, lab in zip(shown, labels, strict=True)
            )
        rows.append(
            f'<tr id="lead-{_e(qid)}"><td><a class="lead-link" href="{href}">'
            f"{_e(lead.lead_id)}</a></td>"
            f'<td><span class="sw-swatch" style="background:{color}"></span>'
            f"{_e(lead.lead_class)}</td>"
            f"<td>{_e(lead.kind)}</td>"
            f'<td class="num">{lead.area_m2:.1f}</td>'
            f'<td class="num">{_e(_fmt(lead.height_gain_m, ""))}</td>'
            f'<td class="num">{_e("—" if lead.floors_added is None else lead.floors_added)}</td>'
            f"<td>{_e(', '.join(lead.permit_ids) or '—')}</td>"
            f'<td class="num">{lead.score:.2f}</td>'
            f"<td>{'<br>'.join(_e(r) for r in lead.reasons)}</td>"
            f"<td>{thumbs}</td></tr>"
        )
    body = "\n".join(rows) or '<tr><td colspan="10">No leads in this run.</td></tr>'
    if dual_name is None:  # a single survey checked against the permit atlas
        surveys = f"Survey {_e(dates[1] or '?')}, checked against the permit atlas."
        pages = f'Open the <a href="{_e(map_name)}">map</a>;'
        chip_head = _e(after_label)
    else:
        surveys = f"Surveys: before {_e(dates[0] or '?')}, after {_e(dates[1] or '?')}."
        pages = (
            f'Open the <a href="{_e(map_name)}">swipe map</a> or the '
            f'<a href="{_e(dual_name)}">dual view</a>;'
        )
        chip_head = f"before / {_e(after_label)}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} — leads</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#222}}
table{{border-collapse:collapse;width:100%}}
th,td{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}}
th{{background:#f2f2f2;position:sticky;top:0}}
td.num{{text-align:right;white-space:nowrap}}
tr:target{{background:#fff4c2}}
img{{border:1px solid #999;margin-right:3px}}
.sw-swatch{{display:inline-block;width:11px;height:11px;border:1px solid #333;margin-right:4px}}
</style></head><body>
<h1>{_e(title)}</h1>
<p>{surveys}
{len(leads)} lead(s){": " + summary if summary else ""}.
{pages}
each lead id opens the map zoomed to it with its popup.</p>
<table id="leads"><thead><tr><th>lead</th><th>class</th><th>kind</th><th>area (m²)</th>
<th>height gain (m)</th><th>floors added</th><th>permits</th><th>score</th><th>reasons</th>
<th>{chip_head}</th></tr></thead>
<tbody>
{body}
</tbody></table>
</body></html>
"""
