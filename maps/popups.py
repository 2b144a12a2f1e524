"""The popup of a lead on the review pages: its facts, images, chips and hashes."""

from __future__ import annotations

from pathlib import Path

from change_detection.leads import Lead
from maps.markup import CLASS_COLORS, _e, _fmt, _rel


def _lead_popup(
    lead: Lead,
    chips: tuple[Path, ...] | None,
    page_dir: Path,
    dates: tuple[str | None, str | None],
    overview_href: str | None,
    imagery: str = "",
    after_label: str = "after",
) -> str:
    """The popup of a lead; ``chips`` are (before, after), or (survey,) for a single survey."""
    before_date = lead.before_date or dates[0]
    after_date = lead.after_date or dates[1]
    color = CLASS_COLORS.get(lead.lead_class, "#000")
    reasons = "".join(f"<li>{_e(r)}</li>" for r in lead.reasons) or "<li>—</li>"
    permits = ", ".join(_e(p) for p in lead.permit_ids) or "none"
    hashes = "".join(
        f"<tr><th>{_e(k)}</th><td><code>{_e(v)}</code></td></tr>"
        for k, v in sorted(lead.input_hashes.items())
    )
    rows = [
        (
            "class",
            f'<span class="sw-swatch" style="background:{color}"></span>'
            f"{_e(lead.lead_class)} ({_e(lead.kind)})",
        ),
        ("reasons", f"<ul>{reasons}</ul>"),
        ("area", _e(_fmt(lead.area_m2, "m²", 1))),
        ("height gain", _e(_fmt(lead.height_gain_m, "m"))),
        ("floors added", _e("—" if lead.floors_added is None else lead.floors_added)),
        ("permits", permits),
        ("score", _e(f"{lead.score:.2f}")),
        (
            ("survey", f"{_e(after_date or '?')} (checked against the permit atlas)")
            if chips is not None and len(chips) == 1
            else ("surveys", f"{_e(before_date or '?')} → {_e(after_date or '?')}")
        ),
    ]
    if lead.rgb_only:
        rows.append(("evidence", "RGB only (no DSM): heights not measured"))
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    parts = [f'<div class="sw-popup"><h4>Lead {_e(lead.lead_id)}</h4><table>{body}</table>']
    if hashes:
        parts.append(
            f"<details><summary>input hashes (SHA-256)</summary><table>{hashes}</table></details>"
        )
    if imagery:
        parts.append(
            f"<details><summary>images shown (SHA-256)</summary><table>{imagery}</table></details>"
        )
    if chips is not None:
        figs = []
        captions = (("before", before_date), (after_label, after_date))[-len(chips) :]
        for (label, date), chip in zip(captions, chips, strict=True):
            href = _e(_rel(chip, page_dir))
            figs.append(
                f'<figure><a href="{href}" target="_blank"><img src="{href}" '
                f'alt="{_e(label)} chip"></a><figcaption>{_e(label)} {_e(date or "")}'
                "</figcaption>"
                "</figure>"
            )
        parts.append(f'<div class="sw-chips">{"".join(figs)}</div>')
    if overview_href:
        parts.append(f'<p><a href="{_e(overview_href)}">all leads</a></p>')
    parts.append("</div>")
    return "".join(parts)
