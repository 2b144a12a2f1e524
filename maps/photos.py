"""Photos on the review map: what a photo layer is, thumbnails beside the page, popups.

A photo layer is either the photos a flight took (``photos.geojson`` of ``sitewatch
ingest``: each Point has ``name``, ``time_utc``, ``position_source`` and ``qc``, a list of
``{"flag", "reason"}`` — or that list as JSON text, as GDAL reads it back), the photo
positions a plan intends (the planner's ``mission.geojson``, ``kind`` ``photo``), or any
Point layer.

:func:`write_thumbnails` writes a small JPEG of each photo whose file is found in the given
folder (by its ``name``, a plain file name: nothing outside that folder is ever opened),
decoded read-only at a reduced scale; the originals are never written. :func:`photo_popup`
is the popup of a taken photo: thumbnail (when there is one), time, position source,
position, camera angles and QC flags with their reasons, every value HTML-escaped.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from shapely.geometry.base import BaseGeometry

__all__ = [
    "PHOTO_KINDS",
    "photo_kind",
    "photo_popup",
    "qc_flags",
    "write_thumbnails",
]

log = logging.getLogger(__name__)

#: What a photo layer holds: ``"taken"`` (ingest), ``"planned"`` (planner) or ``"points"``.
PHOTO_KINDS = ("taken", "planned", "points")

_THUMB_PX = 320
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def photo_kind(photos: Sequence[tuple[BaseGeometry, Mapping[str, Any]]]) -> str:
    """``"taken"`` when the features are a flight's photos (``position_source`` or ``qc``),
    ``"planned"`` when they are a plan's photo positions (``kind`` ``photo``), else
    ``"points"``."""
    props = [p for _, p in photos]
    if props and all("position_source" in p or "qc" in p for p in props):
        return "taken"
    if props and all(p.get("kind") == "photo" for p in props):
        return "planned"
    return "points"


def qc_flags(value: Any) -> list[tuple[str, str]]:
    """The (flag, reason) pairs of a photo's ``qc`` property (a list, or JSON text of one)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return [("qc", value)] if value.strip() else []
    if not isinstance(value, list):
        return []
    out = []
    for item in value:
        if isinstance(item, Mapping):
            out.append((str(item.get("flag", "")), str(item.get("reason", ""))))
        elif item is not None:
            out.append((str(item), ""))
    return out


def _plain_name(name: Any) -> str | None:
    """``name`` when it is a bare file name (no folder part), else None."""
    if not isinstance(name, str) or not name or name in (".", ".."):
        return None
    if "/" in name or "\\" in name or "\x00" in name:
        return None
    return name


def write_thumbnails(
    photos: Sequence[tuple[BaseGeometry, Mapping[str, Any]]],
    photo_dir: Path,
    out_dir: Path,
    max_px: int = _THUMB_PX,
) -> dict[int, tuple[Path, tuple[int, int]]]:
    """Write a thumbnail of each photo found in ``photo_dir``.

    Returns {feature index: (thumbnail path, (width, height) px)}.

    Parameters
    ----------
    photos
        The photo features (their ``name`` property is the file name).
    photo_dir
        Folder of the photo files (only read).
    out_dir
        Folder for the thumbnails (created), beside the page.
    max_px
        Longest side of a thumbnail (px).

    Notes
    -----
    Photos not found, or not readable as images, get no thumbnail; the count is logged as
    one warning line.
    """
    root = Path(photo_dir)
    out: dict[int, tuple[Path, tuple[int, int]]] = {}
    missing: list[str] = []
    for i, (_g, props) in enumerate(photos):
        name = _plain_name(props.get("name"))
        if name is None:
            continue
        src = root / name
        if not src.is_file():
            missing.append(name)
            continue
        stem = _SAFE.sub("_", Path(name).stem).strip("._")[:60] or "photo"
        target = out_dir / f"{i:05d}_{stem}.jpg"
        try:
            with Image.open(src) as im:
                im.draft("RGB", (max_px, max_px))
                small = im.convert("RGB")
                small.thumbnail((max_px, max_px))
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            missing.append(f"{name} ({exc})")
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        small.save(tmp, format="JPEG", quality=80)
        tmp.replace(target)
        out[i] = (target, small.size)
    if missing:
        log.warning(
            "%d photo(s) of the photo layer not found or not readable in %s (e.g. %s): "
            "no thumbnail in their popups",
            len(missing),
            root,
            missing[0],
        )
    return out


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int, unit: str) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "—"
    return f"{v:.{digits}f}{unit}" if math.isfinite(v) else "—"


def photo_popup(
    props: Mapping[str, Any],
    thumb_href: str | None,
    thumb_size: tuple[int, int] | None = None,
    title: str = "Photo",
) -> str:
    """HTML popup of a taken photo (module docstring).

    ``thumb_href`` is the thumbnail's address relative to the page and ``thumb_size`` its
    (width, height) in pixels, given so the popup has its size before the image loads (the
    map then pans the whole popup into view).
    """
    name = props.get("name") or props.get("image") or "?"
    flags = qc_flags(props.get("qc"))
    if flags:
        qc = (
            "<ul>"
            + "".join(f"<li><b>{_e(f)}</b>{': ' + _e(r) if r else ''}</li>" for f, r in flags)
            + "</ul>"
        )
    else:
        qc = "none" if "qc" in props else "—"
    rows = [
        ("time (UTC)", _e(props.get("time_utc") or "—")),
        ("position from", _e(props.get("position_source") or "—")),
        ("lat, lon", f"{_num(props.get('lat'), 7, '')}, {_num(props.get('lon'), 7, '')}"),
        ("altitude", _num(props.get("alt_m"), 1, " m")),
        (
            "camera",
            f"yaw {_num(props.get('yaw_deg'), 1, '°')}, pitch "
            f"{_num(props.get('pitch_deg'), 1, '°')}, roll {_num(props.get('roll_deg'), 1, '°')}",
        ),
        ("QC flags", qc),
    ]
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    thumb = ""
    if thumb_href:
        href = _e(thumb_href)
        size = f' width="{thumb_size[0]}" height="{thumb_size[1]}"' if thumb_size else ""
        thumb = (
            f'<a href="{href}" target="_blank"><img class="sw-thumb" src="{href}"{size} '
            f'alt="{_e(name)}"></a>'
        )
    sha = props.get("sha256")
    digest = f"<p><code>SHA-256 {_e(sha)}</code></p>" if sha else ""
    return (
        f'<div class="sw-popup sw-photo"><h4>{_e(title)} {_e(name)}</h4>{thumb}'
        f"<table>{body}</table>{digest}</div>"
    )
