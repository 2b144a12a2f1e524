"""The case-file page ``report.pdf`` of an evidence package: one A4 page, English and Chinese.

(One subject, about 660 lines: one page, its bilingual labels and the drawing of each of its
parts.)

The page an officer files and a court reads: the lead's id, class and case, the before and
after chips (or the one survey's chip), the height profile, the measurements, the reasons,
the permits, the survey dates, who flew and who analysed, the SHA-256 of the originals and of
the package's ``manifest.json``, the signed head of the custody ledger (or "not recorded in an
evidence store"), how to verify all of it, and lines for the filing officer's signature.
Every label is in English and Simplified Chinese; free text from the detector (the reasons)
and from the user's files (permit ids, names) is printed as it is.

Why matplotlib writes it: matplotlib is already a dependency (the chips and the profile are
matplotlib figures), its PDF backend embeds TrueType fonts as Type 42 (CID TrueType) subsets
with a ToUnicode map, so the text stays searchable and ``pdftotext`` reads it back, and since
3.6 it falls back from DejaVu Sans to a CJK font glyph by glyph. ReportLab (BSD) lays out
documents more comfortably but would be a new dependency for one fixed page. The page is
laid out in millimetres on an A4 figure; the chips and the profile are the package's own PNG
files, embedded unresampled (``interpolation="none"``), so the page shows exactly the pixels
whose hashes the manifest lists. Fonts: :mod:`maps.fonts`. Without a Chinese font the page is
still written, in English only (the caller, :mod:`maps.package`, says so in one warning line
with the way to install the font), because the evidence is whole without the translation.

(Over 500 lines: the labels in both languages and the layout of the one page, kept together so
the page reads top to bottom in one file.)
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_pdf import FigureCanvasPdf
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Rectangle
from matplotlib.textpath import text_to_path
from PIL import Image

from change_detection.leads import Lead
from maps.errors import MapError
from maps.fonts import (
    PageFont,
    covered_codepoints,
    find_cjk_font,
    latin_fonts,
    register_font,
)

__all__ = ["CLASS_NAMES", "CaseFile", "chinese_characters", "find_page_font", "render_case_file"]

log = logging.getLogger(__name__)

#: Lead classes in plain words: (English, Simplified Chinese).
CLASS_NAMES: dict[str, tuple[str, str]] = {
    "no_permit": ("built without a permit", "未取得许可擅自建设"),
    "outside_footprint": ("built outside the permitted footprint", "超出许可范围建设"),
    "over_height": ("higher than the permit allows", "超过许可高度"),
    "demolished": ("demolished or removed", "已拆除"),
    "new_structure": ("new structure", "新建构筑物"),
    "raised": ("existing structure raised", "原有建筑加高"),
}
_KIND_NAMES = {"new": ("new", "新增"), "raised": ("raised", "加高"), "removed": ("removed", "拆除")}

# Every bilingual label of the page, (English, Chinese); the Chinese font must map all of them.
_L = {
    "title": ("CASE FILE · CONSTRUCTION LEAD", "违法建设线索案件档案"),
    "case": ("Case", "案件编号"),
    "lead": ("Lead", "线索编号"),
    "class": ("Class", "类别"),
    "generated": ("Generated (UTC)", "生成时间"),
    "before": ("Before", "前期"),
    "after": ("After", "后期"),
    "registered": ("After, co-registered to before", "后期（已配准至前期）"),
    "survey": ("Survey", "本期测量"),
    "single": ("Single survey checked against the permit atlas.", "单期测量与规划许可图比对。"),
    "no_before": ("There is no earlier survey.", "无前期影像。"),
    "existing": ("Existing buildings near the lead", "附近现有建筑"),
    "profile": ("Height profile", "高度剖面"),
    "no_profile": ("No DSM given: heights not measured", "未提供数字表面模型，未测高度"),
    "findings": ("Findings", "认定事实"),
    "area": ("Area", "面积"),
    "height": ("Height change", "高度变化"),
    "floors": ("Floors added", "增加层数"),
    "kind": ("Change", "变化类型"),
    "score": ("Confidence", "置信度"),
    "date_before": ("Survey before", "前期测量日期"),
    "date_after": ("Survey after", "后期测量日期"),
    "date_single": ("Survey date", "测量日期"),
    "pilot": ("Flown by (pilot)", "飞手"),
    "analyst": ("Analysed by", "分析人员"),
    "not_given": ("not given", "未填写"),
    "unknown": ("unknown", "未知"),
    "rgb_only": ("RGB only", "仅影像"),
    "reasons": ("Reasons", "判定理由"),
    "reasons_note": ("as written by the detector", "检测程序原文"),
    "permits": ("Permits", "规划许可"),
    "no_permits": ("No permit covers or is named by this lead.", "无相关规划许可。"),
    "permit_cols": ("id · max height · floors · valid", "编号 · 限高 · 层数 · 有效期"),
    "integrity": ("Integrity", "完整性"),
    "originals": ("Originals (SHA-256)", "原始数据"),
    "manifest": ("Package manifest", "证据包清单"),
    "head": ("Custody ledger head", "监管链签名树头"),
    "no_store": ("Not recorded in an evidence store.", "未录入证据库。"),
    "head_fields": ("tree size · signed at", "条目数 · 签署时间"),
    "key_id": ("key id", "密钥标识"),
    "root": ("root hash", "根哈希"),
    "signature": ("signature (Ed25519)", "签名"),
    "excerpt": ("ledger entries in this package", "本包所含监管链条目"),
    "verify": ("How to verify", "核验方法"),
    "verify_1": ("every file, this page included", "核验全部文件（含本页）"),
    "verify_2": ("must equal the manifest hash above", "应与上方清单哈希值一致"),
    "verify_3": ("the station's signature on the ledger head", "核验工作站签名"),
    "notes": ("Officer's notes", "执法人员备注"),
    "filed_by": ("Filed by", "经办人"),
    "sign": ("Signature", "签名"),
    "date": ("Date", "日期"),
    "page": ("page 1 of 1", "第 1 页 共 1 页"),
    "more": ("more in", "其余见"),
}

_A4_MM = (210.0, 297.0)
_LEFT, _RIGHT = 14.0, 196.0
_INK, _GREY, _RULE, _BAND = "#111111", "#5a5a5a", "#9a9a9a", "#1d2b3a"
_PT_MM = 25.4 / 72.0
# Lines each list may take (the last one says "… N more in <file>"): with these the fullest
# page (a signed head, six originals) ends above the signature lines.
_MAX_LINES = {"reasons": 3, "permits": 2, "originals": 6}
_SIGNATURE_Y = 281.5


@dataclass(frozen=True)
class CaseFile:
    """What the page shows. Paths are the package's own files; hashes are hex SHA-256.

    Attributes
    ----------
    lead : Lead
    chips : sequence of (Path, str)
        The chip PNGs in order and their role: ``"before"``, ``"after"``, ``"registered"``
        (after, co-registered to before) or ``"survey"`` (a single survey).
    profile : Path or None
        The height-profile PNG; None without DSMs.
    permits : sequence of dict
        Properties of the permits near or named by the lead (``permit_id``, ``max_height_m``,
        ``floors``, ``valid_from``, ``valid_to``).
    originals : mapping of str to (str or None, str or None)
        Role → (file name, SHA-256) of every original input.
    manifest_sha256 : str
        SHA-256 of the package's ``manifest.json``.
    created_utc : str
        ISO 8601 time the package was made (the manifest's ``created_utc``).
    software : str
        ``"sitewatch <version>"``.
    case_id, pilot, analyst : str or None
        The enforcement case, who flew the survey(s), who analysed them.
    before_date, after_date : str or None
        Survey dates (ISO 8601); for a single survey only ``after_date``.
    signed_head : mapping or None
        The custody ledger's signed tree head (``tree_size``, ``root_hash``, ``timestamp``,
        ``key_id``, ``signature``); None when the inputs are in no evidence store.
    ledger_entries : int or None
        Number of ledger entries in the package's ``ledger_excerpt.jsonl``.
    existing_buildings : int
        Existing buildings of the atlas packaged with a single survey's lead.
    """

    lead: Lead
    chips: Sequence[tuple[Path, str]]
    profile: Path | None
    originals: Mapping[str, tuple[str | None, str | None]]
    manifest_sha256: str
    created_utc: str
    software: str
    permits: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    case_id: str | None = None
    pilot: str | None = None
    analyst: str | None = None
    before_date: str | None = None
    after_date: str | None = None
    signed_head: Mapping[str, Any] | None = None
    ledger_entries: int | None = None
    existing_buildings: int = 0


def chinese_characters() -> str:
    """Every Chinese character the page can draw (its labels and class names), sorted."""
    texts = [zh for _en, zh in _L.values()] + [zh for _en, zh in CLASS_NAMES.values()]
    texts += [zh for _en, zh in _KIND_NAMES.values()]
    return "".join(sorted({c for t in texts for c in t if ord(c) > 0x7F}))


def find_page_font() -> PageFont | None:
    """The Chinese font of the page (see :func:`maps.fonts.find_cjk_font`), or None."""
    return find_cjk_font(chinese_characters())


class _Sheet:
    """An A4 figure addressed in millimetres from the top-left corner."""

    def __init__(self, cjk: PageFont | None) -> None:
        w, h = _A4_MM
        self.fig = Figure(figsize=(w / 25.4, h / 25.4))
        FigureCanvasPdf(self.fig)
        sans, mono = latin_fonts()  # shipped with matplotlib, always in its font list
        self.sans = [sans.family]
        self.mono = [mono.family]
        self.covered = set(covered_codepoints(sans.path)) | set(covered_codepoints(mono.path))
        self.zh = cjk is not None
        if cjk is not None:
            self.sans.append(register_font(cjk))
            self.mono.append(self.sans[-1])
            self.covered |= covered_codepoints(cjk.path)

    def clean(self, text: object) -> str:
        """One line of printable text; characters no font has become '?'."""
        out = []
        for c in " ".join(str(text).split()):
            if unicodedata.category(c)[0] == "C":
                continue
            out.append(c if ord(c) in self.covered else "?")
        return "".join(out)

    def text(
        self,
        x: float,
        y: float,
        s: str,
        size: float = 7.0,
        *,
        mono: bool = False,
        bold: bool = False,
        color: str = _INK,
        ha: str = "left",
    ) -> None:
        """Draw ``s`` (made printable) with its baseline at ``y`` mm."""
        w, h = _A4_MM
        self.fig.text(
            x / w,
            1.0 - y / h,
            self.clean(s),
            fontsize=size,
            family=self.mono if mono else self.sans,
            weight="bold" if bold else "normal",
            color=color,
            ha=ha,
            va="baseline",
            parse_math=False,
        )

    def rect(
        self, x: float, y: float, wd: float, ht: float, *, fill: str = "none", edge: str = _RULE
    ) -> None:
        w, h = _A4_MM
        self.fig.add_artist(
            Rectangle(
                (x / w, 1.0 - (y + ht) / h),
                wd / w,
                ht / h,
                transform=self.fig.transFigure,
                facecolor=fill,
                edgecolor=edge,
                linewidth=0.5,
            )
        )

    def line(self, x0: float, y0: float, x1: float, y1: float, color: str = _RULE) -> None:
        self.rect(x0, y0, x1 - x0, y1 - y0, edge=color)

    def image(self, png: Path, x: float, y: float, wd: float, ht: float) -> None:
        """``png`` fitted into the box (aspect kept, centred), its pixels as they are."""
        try:
            with Image.open(png) as im:
                rgb = np.asarray(im.convert("RGB"))
        except (OSError, ValueError) as exc:
            raise MapError(f"{png}: cannot be read for the case-file page ({exc})") from exc
        scale = min(wd / rgb.shape[1], ht / rgb.shape[0])
        iw, ih = rgb.shape[1] * scale, rgb.shape[0] * scale
        x, y = x + (wd - iw) / 2, y + (ht - ih) / 2
        w, h = _A4_MM
        ax = self.fig.add_axes((x / w, 1.0 - (y + ih) / h, iw / w, ih / h))
        ax.imshow(rgb, interpolation="none", aspect="auto")
        ax.set_axis_off()

    def both(self, key: str, sep: str = " · ") -> str:
        """The label ``key`` as ``English · 中文`` (English only without the Chinese font)."""
        en, zh = _L.get(key, (key, key))
        return f"{en}{sep}{zh}" if self.zh else en

    def label(self, x: float, y: float, key: str, size: float = 5.8) -> None:
        """A grey bilingual label."""
        self.text(x, y, self.both(key), size, color=_GREY)

    def heading(self, y: float, key: str, note: str = "") -> None:
        """A section heading over a rule across the page, with a note on the right."""
        self.line(_LEFT, y + 1.2, _RIGHT, y + 1.2, color=_INK)
        self.text(_LEFT, y, self.both(key), 8.0, bold=True)
        if note:
            self.text(_RIGHT, y, note, 6.0, color=_GREY, ha="right")

    def width(self, s: str, size: float, *, mono: bool = False, bold: bool = False) -> float:
        """Width of ``s`` in mm as matplotlib lays it out (fallback fonts included)."""
        prop = FontProperties(
            family=self.mono if mono else self.sans,
            weight="bold" if bold else "normal",
            size=size,
        )
        w, _h, _d = text_to_path.get_text_width_height_descent(s, prop, ismath=False)
        return float(w) * _PT_MM

    def fit(
        self, s: object, width_mm: float, size: float, *, mono: bool = False, bold: bool = False
    ) -> str:
        """``s`` made printable and cut with an ellipsis to fit ``width_mm``."""
        text = self.clean(s)
        if self.width(text, size, mono=mono, bold=bold) <= width_mm:
            return text
        lo, hi = 0, len(text)  # longest prefix that fits with the ellipsis: binary search
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.width(text[:mid] + "…", size, mono=mono, bold=bold) <= width_mm:
                lo = mid
            else:
                hi = mid - 1
        return text[:lo] + "…"

    def shrink(self, s: object, width_mm: float, size: float, smallest: float) -> float:
        """The largest bold size from ``size`` down to ``smallest`` at which ``s`` fits."""
        text = self.clean(s)
        while size > smallest and self.width(text, size, bold=True) > width_mm:
            size -= 0.25
        return size

    def wrap(self, s: str, width_mm: float, size: float) -> list[str]:
        """Greedy line breaks at spaces (and between CJK characters) to fit ``width_mm``."""
        lines: list[str] = []
        line = ""
        for word in self.clean(s).split(" "):
            pieces = [word] if word.isascii() else list(word)
            for i, piece in enumerate(pieces):
                sep = " " if line and i == 0 else ""
                if not line or self.width(line + sep + piece, size) <= width_mm:
                    line += sep + piece
                else:
                    lines.append(line)
                    line = piece
        if line:
            lines.append(line)
        return [self.fit(line, width_mm, size) for line in lines]


def _number(value: object, unit: str, digits: int, sign: bool = False) -> str | None:
    """``value`` as a number with ``unit``; None when absent; as given when not a number."""
    if value is None or value == "":
        return None
    try:
        x = float(str(value))
    except ValueError:
        return str(value)
    return f"{x:+.{digits}f}{unit}" if sign else f"{x:.{digits}f}{unit}"


def _draw_header(sheet: _Sheet, case: CaseFile) -> None:
    en, zh = _L["title"]
    sheet.rect(_LEFT, 9.0, _RIGHT - _LEFT, 12.0, fill=_BAND, edge=_BAND)
    sheet.text(_LEFT + 3.0, 17.0, en, 13.0, bold=True, color="white")
    if sheet.zh:
        sheet.text(_RIGHT - 3.0, 17.2, zh, 13.0, color="white", ha="right")
    lead = case.lead
    cls_en, cls_zh = CLASS_NAMES.get(lead.lead_class, (lead.lead_class, lead.lead_class))
    created = case.created_utc.replace("T", " ").replace("+00:00", "")
    boxes = (
        ("case", 40.0, case.case_id or "—", ""),
        ("lead", 44.0, lead.lead_id, ""),
        ("class", 56.0, lead.lead_class, f"{cls_en} · {cls_zh}" if sheet.zh else cls_en),
        ("generated", 42.0, created, ""),
    )
    x = _LEFT
    for key, wd, value, extra in boxes:
        sheet.rect(x, 23.5, wd - 1.5, 13.0)
        sheet.label(x + 1.5, 26.8, key)
        size = sheet.shrink(value, wd - 4.0, 9.0, 6.0)  # ids whole where they can be
        sheet.text(x + 1.5, 31.3, sheet.fit(value, wd - 4.0, size, bold=True), size, bold=True)
        if extra:
            sheet.text(x + 1.5, 35.0, sheet.fit(extra, wd - 4.0, 6.2), 6.2)
        x += wd


def _draw_chips(sheet: _Sheet, case: CaseFile) -> None:
    top, ht, slot = 39.0, 77.0, (_RIGHT - _LEFT - 4.0) / 2
    dates = {"before": case.before_date}
    dates.update(after=case.after_date, registered=case.after_date, survey=case.after_date)
    for i, (png, role) in enumerate(case.chips):
        x = _LEFT + i * (slot + 4.0)
        caption = f"{sheet.both(role)} — {dates.get(role) or '?'}"
        sheet.text(x, top + 3.0, sheet.fit(caption, slot, 7.0), 7.0)
        sheet.image(png, x, top + 4.5, slot, ht - 4.5)
    if len(case.chips) == 1:
        x = _LEFT + slot + 4.0
        y = top + 14.0
        for key in ("single", "no_before"):
            en, zh = _L[key]
            sheet.text(x + 4.0, y, en, 7.5)
            if sheet.zh:
                sheet.text(x + 4.0, y + 4.2, zh, 7.5)
            y += 11.0
        text = f"{sheet.both('existing')}: {case.existing_buildings}"
        sheet.text(x + 4.0, y, sheet.fit(text, slot - 8.0, 7.5), 7.5)
        if case.existing_buildings:
            sheet.text(x + 4.0, y + 4.2, "existing.geojson", 7.0, mono=True)


def _findings(sheet: _Sheet, case: CaseFile) -> list[tuple[str, str]]:
    lead = case.lead
    unknown, rgb = sheet.both("unknown"), sheet.both("rgb_only")
    kind_en, kind_zh = _KIND_NAMES.get(lead.kind, (lead.kind, lead.kind))
    rows = [
        ("area", f"{lead.area_m2:.1f} m²"),
        ("height", _number(lead.height_gain_m, " m", 2, sign=True) or rgb),
        ("floors", str(lead.floors_added) if lead.floors_added is not None else rgb),
        ("kind", f"{kind_en} · {kind_zh}" if sheet.zh else kind_en),
        ("score", f"{lead.score:.2f}"),
    ]
    if len(case.chips) == 1:
        rows.append(("date_single", case.after_date or unknown))
    else:
        rows += [
            ("date_before", case.before_date or unknown),
            ("date_after", case.after_date or unknown),
        ]
    given = sheet.both("not_given")
    rows += [("pilot", case.pilot or given), ("analyst", case.analyst or given)]
    return rows


def _draw_profile_and_findings(sheet: _Sheet, case: CaseFile) -> None:
    top, pw = 119.0, 96.0
    if case.profile is not None:
        sheet.label(_LEFT, top + 2.5, "profile")
        sheet.image(case.profile, _LEFT, top + 3.5, pw, 48.0)
    else:
        sheet.rect(_LEFT, top + 3.5, pw, 46.0)
        en, zh = _L["no_profile"]
        sheet.text(_LEFT + pw / 2, top + 27.0, en, 7.5, color=_GREY, ha="center")
        if sheet.zh:
            sheet.text(_LEFT + pw / 2, top + 31.5, zh, 7.5, color=_GREY, ha="center")
    x0 = _LEFT + pw + 4.0
    sheet.text(x0, top + 2.5, sheet.both("findings"), 8.0, bold=True)
    y = top + 7.8
    for key, value in _findings(sheet, case):
        sheet.label(x0, y, key, 6.2)
        shown = sheet.fit(value, 44.0, 7.5, bold=True)
        sheet.text(_RIGHT, y, shown, 7.5, bold=True, ha="right")
        sheet.line(x0, y + 1.3, _RIGHT, y + 1.3, color="#d0d0d0")
        y += 4.9


def _permit_id(props: Mapping[str, Any]) -> str:
    for key in ("permit_id", "building_id", "id"):
        if props.get(key) is not None:
            return str(props[key])
    return "?"


def _draw_reasons_and_permits(sheet: _Sheet, case: CaseFile, y: float) -> float:
    sheet.heading(y, "reasons", sheet.both("reasons_note"))
    y += 4.6
    lines: list[str] = []
    for reason in case.lead.reasons:
        wrapped = sheet.wrap(reason, _RIGHT - _LEFT - 5.0, 7.2)
        lines += [("• " if i == 0 else "   ") + part for i, part in enumerate(wrapped)]
    if len(lines) > _MAX_LINES["reasons"]:
        lines = [*lines[: _MAX_LINES["reasons"] - 1], f"   … {_L['more'][0]} lead.geojson"]
    for line in lines or ["—"]:
        sheet.text(_LEFT + 1.0, y, line, 7.2)
        y += 3.5
    y += 1.5
    sheet.heading(y, "permits", sheet.both("permit_cols"))
    y += 4.6
    if not case.permits:
        sheet.text(_LEFT + 1.0, y, sheet.both("no_permits", " "), 7.2)
        return y + 3.5
    columns = (_LEFT + 1.0, 92.0, 118.0, 138.0)
    shown = _MAX_LINES["permits"] - (len(case.permits) > _MAX_LINES["permits"])
    for props in case.permits[:shown]:
        start, end = props.get("valid_from"), props.get("valid_to")
        cells = (
            _permit_id(props),
            _number(props.get("max_height_m"), " m", 1) or "—",
            str(props.get("floors") or "—"),
            f"{start or '…'} – {end or '…'}" if start or end else "—",
        )
        for i, (x, cell) in enumerate(zip(columns, cells, strict=True)):
            right = columns[i + 1] - 2.0 if i + 1 < len(columns) else _RIGHT
            bold = i == 0
            sheet.text(x, y, sheet.fit(cell, right - x, 7.2, bold=bold), 7.2, bold=bold)
        y += 3.5
    if len(case.permits) > shown:
        more = f"… {len(case.permits) - shown} {_L['more'][0]} permits.geojson"
        sheet.text(_LEFT + 1.0, y, more, 7.2)
        y += 3.5
    return y


def _draw_integrity(sheet: _Sheet, case: CaseFile, y: float) -> float:
    sheet.heading(y, "integrity")
    y += 4.6
    sheet.label(_LEFT, y, "originals")
    y += 3.4
    originals = list(case.originals.items())
    shown = _MAX_LINES["originals"] - (len(originals) > _MAX_LINES["originals"])
    for role, (name, digest) in originals[:shown]:
        sheet.text(_LEFT + 1.0, y, sheet.fit(f"{role}  {name or '—'}", 60.0, 6.4), 6.4)
        sheet.text(
            _RIGHT, y, sheet.fit(digest or "—", 110.0, 6.4, mono=True), 6.4, mono=True, ha="right"
        )
        y += 3.2
    if len(originals) > shown:
        more = f"… {len(originals) - shown} {_L['more'][0]} manifest.json"
        sheet.text(_LEFT + 1.0, y, more, 6.4)
        y += 3.2
    y += 0.8
    sheet.label(_LEFT, y, "manifest")
    sheet.text(_LEFT + 42.0, y, "manifest.json", 6.4, mono=True)
    sheet.text(_RIGHT, y, case.manifest_sha256, 6.4, mono=True, ha="right")
    y += 4.4
    sheet.label(_LEFT, y, "head")
    head = case.signed_head
    if head is None:
        sheet.text(_LEFT + 42.0, y, sheet.both("no_store", " "), 7.0, bold=True)
        return y + 3.6
    rows = [
        ("head_fields", f"{head.get('tree_size', '?')} · {head.get('timestamp', '?')}"),
        ("key_id", head.get("key_id", "?")),
        ("root", head.get("root_hash", "?")),
        ("signature", head.get("signature", "?")),
    ]
    if case.ledger_entries is not None:
        rows.append(("excerpt", f"{case.ledger_entries} (ledger_excerpt.jsonl)"))
    y += 3.2
    for key, value in rows:
        sheet.label(_LEFT + 2.0, y, key)
        sheet.text(_RIGHT, y, sheet.fit(value, 128.0, 6.2, mono=True), 6.2, mono=True, ha="right")
        y += 3.2
    return y + 0.4


def _draw_verify(sheet: _Sheet, case: CaseFile, y: float) -> float:
    sheet.heading(y, "verify")
    y += 4.4
    commands = [
        ("sha256sum -c manifest.sha256", "verify_1"),
        ("sha256sum manifest.json", "verify_2"),
    ]
    if case.signed_head is not None and case.signed_head.get("signed_message") is not None:
        command = (
            f"openssl pkeyutl -verify -pubin -inkey {STATION_KEY_FILE} -rawin "
            f"-in {HEAD_MESSAGE_FILE} -sigfile {HEAD_SIGNATURE_FILE}"
        )
        commands.append((command, "verify_3"))
    for command, key in commands:
        sheet.text(_LEFT + 1.0, y, command, 6.4, mono=True)
        if sheet.width(command, 6.4, mono=True) > 110.0:
            y += 3.1
        sheet.text(_RIGHT, y, sheet.both(key), 6.0, color=_GREY, ha="right")
        y += 3.4
    return y


def _draw_signature_and_footer(sheet: _Sheet, case: CaseFile) -> None:
    y, x = _SIGNATURE_Y, _LEFT
    for key, wd in (("filed_by", 64.0), ("sign", 64.0), ("date", 54.0)):
        sheet.label(x, y, key, 6.4)
        sheet.line(x, y + 5.5, x + wd - 6.0, y + 5.5, color=_INK)
        x += wd
    left = f"{case.software} · lead {case.lead.lead_id} · report.pdf"
    sheet.text(_LEFT, 292.0, sheet.fit(left, 120.0, 5.8), 5.8, color=_GREY)
    sheet.text(_RIGHT, 292.0, sheet.both("page"), 5.8, color=_GREY, ha="right")


#: Files of the package that the signature check names (written by :mod:`maps.package`).
STATION_KEY_FILE = "station_public_key.pem"
HEAD_MESSAGE_FILE = "ledger_head.msg"
HEAD_SIGNATURE_FILE = "ledger_head.sig"

_pdf_lock = threading.Lock()


def render_case_file(case: CaseFile, out_pdf: Path, cjk_font: PageFont | None) -> Path:
    """Write the case-file page of ``case`` to ``out_pdf`` (one A4 page) and return the path.

    Parameters
    ----------
    case : CaseFile
        What the page shows.
    out_pdf : Path
        The PDF to write, atomically (a ``.part`` file renamed into place).
    cjk_font : PageFont or None
        The Chinese font (:func:`find_page_font`); None writes the English half only.

    Returns
    -------
    Path
        ``out_pdf``.

    Raises
    ------
    MapError
        Not one or two chips, a chip or the profile cannot be read, or the PDF cannot be
        written.
    """
    if len(case.chips) not in (1, 2):
        raise MapError(f"{out_pdf}: a case file shows one or two chips, not {len(case.chips)}")
    sheet = _Sheet(cjk_font)
    _draw_header(sheet, case)
    _draw_chips(sheet, case)
    _draw_profile_and_findings(sheet, case)
    y = _draw_reasons_and_permits(sheet, case, 174.0)
    y = _draw_integrity(sheet, case, y + 3.0)
    y = _draw_verify(sheet, case, y + 2.0)
    if y + 14.0 < _SIGNATURE_Y - 4.0:  # room left: a box for the officer's own notes
        sheet.rect(_LEFT, y + 1.0, _RIGHT - _LEFT, _SIGNATURE_Y - 5.0 - y, edge="#c8c8c8")
        sheet.label(_LEFT + 1.5, y + 4.5, "notes", 6.2)
    _draw_signature_and_footer(sheet, case)
    try:
        created = dt.datetime.fromisoformat(case.created_utc)
    except ValueError:
        created = dt.datetime.now(dt.UTC)
    metadata = {
        "Title": f"Case file of lead {sheet.clean(case.lead.lead_id)}",
        "Subject": f"{case.lead.lead_class}; manifest.json SHA-256 {case.manifest_sha256}",
        "Creator": case.software,
        "Author": sheet.clean(case.analyst or ""),
        "Keywords": sheet.clean(" ".join(x for x in (case.case_id, case.lead.lead_id) if x)),
        "CreationDate": created,
    }
    out_pdf = Path(out_pdf)
    tmp = out_pdf.with_name(f".{out_pdf.name}.part")
    try:
        with _pdf_lock, matplotlib.rc_context({"pdf.fonttype": 42, "pdf.compression": 6}):
            sheet.fig.savefig(tmp, format="pdf", metadata=metadata)
        os.replace(tmp, out_pdf)
    except OSError as exc:
        raise MapError(
            f"{out_pdf}: cannot write ({exc.strerror}); choose a writable --out"
        ) from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_pdf
