"""The look and the escaping the review pages share: class colours, CSS, HTML text."""

from __future__ import annotations

import html
import os
from pathlib import Path

#: Colour of each lead class on the map, the legend and the overview table.
CLASS_COLORS: dict[str, str] = {
    "no_permit": "#e31a1c",
    "outside_footprint": "#ff7f00",
    "over_height": "#6a3d9a",
    "demolished": "#1f78b4",
    "new_structure": "#e7298a",
    "raised": "#b15928",
}


_PERMIT_COLOR = "#1a9850"


_EXISTING_COLOR = "#7f7f7f"


_TRACK_COLOR = "#00b7ff"


_ROUTE_COLOR = "#f032e6"


_PHOTO_COLOR = "#ffd700"


_CSS = """
.sw-popup{font:12px/1.35 system-ui,sans-serif;max-width:500px}
.sw-popup h4{margin:0 0 6px;font-size:14px}
.sw-popup table{border-collapse:collapse}
.sw-popup th{text-align:left;padding:1px 8px 1px 0;vertical-align:top;color:#444;
 font-weight:600;white-space:nowrap}
.sw-popup td{padding:1px 0;vertical-align:top}
.sw-popup ul{margin:0;padding-left:16px}
.sw-popup code{font-size:10px;word-break:break-all}
.sw-chips{display:flex;gap:6px;margin-top:6px}
.sw-chips figure{margin:0;text-align:center;font-size:11px}
.sw-chips img{width:150px;height:178px;border:1px solid #999}
.sw-swatch{display:inline-block;width:11px;height:11px;border:1px solid #333;
 margin-right:4px;vertical-align:-1px}
.sw-legend,.sw-links{background:rgba(255,255,255,.92);padding:6px 9px;border-radius:5px;
 box-shadow:0 1px 5px rgba(0,0,0,.4);font:12px/1.5 system-ui,sans-serif}
.sw-legend b{display:block;margin-bottom:2px}
.sw-links a{margin-right:8px}
.sw-popup-open .leaflet-sbs{visibility:hidden}
.sw-thumb{display:block;max-width:320px;max-height:240px;border:1px solid #999;margin:0 0 6px}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: float | None, unit: str, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f} {unit}".strip()


def _rel(path: Path, page_dir: Path) -> str:
    return Path(os.path.relpath(path, page_dir)).as_posix()
