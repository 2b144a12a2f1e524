"""Finding the fonts of the case-file page on disk: Latin from matplotlib, Chinese from the system.

The page (:mod:`maps.casefile`) is written with matplotlib's PDF backend, which embeds
TrueType fonts as Type 42 (CID TrueType) subsets. Latin text uses DejaVu Sans and DejaVu
Sans Mono, which ship inside matplotlib. Simplified Chinese needs a system font with
**TrueType (glyf) outlines**: Debian's ``fonts-wqy-microhei`` (WenQuanYi Micro Hei, the one
``tools/install-fonts.sh`` installs) or ``fonts-wqy-zenhei``. Noto Sans CJK (``fonts-noto-cjk``)
is CFF-based; matplotlib embeds it as a CID Type 0C font that poppler reports as "Mismatch
between font type and embedded font file", so it is not taken.

The search never touches the network: ``$SITEWATCH_CJK_FONT`` when set (a ``.ttf`` or the
first face of a ``.ttc``), else the known Debian paths, else what fontconfig's ``fc-list``
lists for ``:lang=zh-cn:fontformat=TrueType``. A font is taken only if it has TrueType
outlines and maps every character of the page's Chinese text.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fontTools.ttLib import TTCollection, TTFont, TTLibError
from matplotlib import font_manager, ft2font

from maps.errors import MapError

__all__ = [
    "CJK_FONT_ENV",
    "DEBIAN_CJK_FONTS",
    "FONT_INSTALL_HINT",
    "PageFont",
    "covered_codepoints",
    "find_cjk_font",
    "latin_fonts",
    "register_font",
]

log = logging.getLogger(__name__)

#: Environment variable naming the CJK font file to use (overrides the search).
CJK_FONT_ENV = "SITEWATCH_CJK_FONT"

#: Where Debian's Simplified Chinese TrueType fonts live, in order of preference.
DEBIAN_CJK_FONTS: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
)

#: How to get a usable font, for messages.
FONT_INSTALL_HINT = (
    "install one with `sudo apt-get install fonts-wqy-microhei` (or `bash "
    f"tools/install-fonts.sh`), or set {CJK_FONT_ENV} to a .ttf/.ttc with TrueType outlines"
)

_lock = threading.Lock()


@dataclass(frozen=True)
class PageFont:
    """A font file matplotlib can embed in a PDF.

    Attributes
    ----------
    path : Path
        The font file (for a collection, its first face is used).
    family : str
        The family name matplotlib knows it by once :func:`register_font` has run.
    """

    path: Path
    family: str


def _open_first_face(path: Path) -> TTFont:
    data = io.BytesIO(path.read_bytes())  # fontTools leaves a file it fails on open
    if data.getvalue()[:4] == b"ttcf":
        return TTCollection(data, lazy=True).fonts[0]
    return TTFont(data, lazy=True)


@lru_cache(maxsize=16)
def _face_facts(path: Path, mtime_ns: int) -> tuple[bool, frozenset[int], str]:
    """(TrueType outlines?, code points mapped, family name) of the first face of ``path``."""
    font = _open_first_face(path)
    try:
        cmap = font.getBestCmap() or {}
        family = font["name"].getBestFamilyName() or path.stem
        return "glyf" in font, frozenset(cmap), str(family)
    finally:
        font.close()


def covered_codepoints(path: Path) -> frozenset[int]:
    """Unicode code points mapped by the first face of the font at ``path``."""
    path = Path(path)
    return _face_facts(path.resolve(), path.stat().st_mtime_ns)[1]


def _why_unusable(path: Path, sample: str) -> str | None:
    """None when ``path`` is a TrueType font covering ``sample``; else the reason, in words."""
    if not path.is_file():
        return "no such file"
    try:
        truetype, cmap, _family = _face_facts(path.resolve(), path.stat().st_mtime_ns)
    except (TTLibError, OSError, KeyError, AssertionError, IndexError, ValueError) as exc:
        return f"not a readable font ({type(exc).__name__}: {exc})"
    if not truetype:
        return "its outlines are CFF, not TrueType (matplotlib cannot embed it as Type 42)"
    missing = sorted({c for c in sample if ord(c) not in cmap and not c.isspace()})
    if missing:
        return f"it lacks {''.join(missing[:8])}"
    return None


def _fontconfig_candidates() -> list[Path]:
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return []
    try:
        res = subprocess.run(
            [fc_list, "--format", "%{file}\n", ":lang=zh-cn:fontformat=TrueType"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted({Path(line) for line in res.stdout.splitlines() if line.strip()})


def find_cjk_font(sample: str, candidates: Iterable[Path] | None = None) -> PageFont | None:
    """The Simplified Chinese font for the case-file page, or None when none is installed.

    Parameters
    ----------
    sample : str
        Every Chinese character the page will draw; a font must map all of them.
    candidates : iterable of Path, optional
        Files to try instead of the search (``$SITEWATCH_CJK_FONT``, the Debian paths, then
        fontconfig); for tests.

    Returns
    -------
    PageFont or None
        None when no usable font is on disk (say :data:`FONT_INSTALL_HINT`).

    Raises
    ------
    MapError
        ``$SITEWATCH_CJK_FONT`` names a file that is missing, not a font, CFF-based or lacks
        a character of ``sample``.
    """
    if candidates is None:
        chosen = os.environ.get(CJK_FONT_ENV, "").strip()
        if chosen:
            path = Path(chosen)
            why = _why_unusable(path, sample)
            if why is not None:
                raise MapError(
                    f"{path}: the font named by {CJK_FONT_ENV} cannot be used ({why}); name "
                    "a .ttf/.ttc with TrueType outlines such as "
                    f"{DEBIAN_CJK_FONTS[0]} (fonts-wqy-microhei), or unset it"
                )
            return PageFont(path, _face_facts(path.resolve(), path.stat().st_mtime_ns)[2])
        candidates = [*DEBIAN_CJK_FONTS, *_fontconfig_candidates()]
    seen: set[Path] = set()
    for path in candidates:
        path = Path(path)
        if path in seen:
            continue
        seen.add(path)
        why = _why_unusable(path, sample)
        if why is None:
            return PageFont(path, _face_facts(path.resolve(), path.stat().st_mtime_ns)[2])
        if path.is_file():
            log.debug("%s: not used for the case-file page: %s", path, why)
    return None


def register_font(font: PageFont) -> str:
    """Make ``font`` known to matplotlib's font manager (once per file); return its family.

    matplotlib's cached font list predates fonts installed after it was built, so the file is
    added explicitly rather than looked up by name.
    """
    path = str(font.path)
    manager = font_manager.fontManager
    with _lock:
        faces = [e for e in manager.ttflist if str(e.fname) == path and e.index == 0]
        if not any(font_manager.weight_dict.get(str(e.weight), e.weight) == 700 for e in faces):
            # A bold alias of the regular face: a CJK font without a bold face then draws the
            # Chinese of bold text in its regular weight, without matplotlib's "Failed to find
            # font weight bold" warning. addfont (harmless if the file is known from
            # matplotlib's own scan) then clears the lookup cache.
            regular = font_manager.ttfFontProperty(ft2font.FT2Font(path))
            manager.ttflist.append(dataclasses.replace(regular, weight=700))
            manager.addfont(path)
    return font.family


def latin_fonts() -> tuple[PageFont, PageFont]:
    """DejaVu Sans and DejaVu Sans Mono as shipped inside matplotlib (always present)."""
    data = Path(font_manager.__file__).parent / "mpl-data" / "fonts" / "ttf"
    return (
        PageFont(data / "DejaVuSans.ttf", "DejaVu Sans"),
        PageFont(data / "DejaVuSansMono.ttf", "DejaVu Sans Mono"),
    )
