"""Offline web assets: the vendored Leaflet stack and the rewiring of folium onto it.

folium links Leaflet, jQuery, Bootstrap, Font Awesome and every plugin on public CDNs. The
review pages must open on closed networks, so the libraries they need ship in
``maps/static/vendor`` (one folder per npm release, with its licence; see ``VENDOR.md`` there),
:func:`copy_assets` copies them beside a page, and :func:`localize_assets` points every folium
element of a page at those copies (and drops the defaults the pages do not use). After
rendering, :func:`check_offline` parses the HTML and refuses any remote script, stylesheet,
image or font.
"""

from __future__ import annotations

import filecmp
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from branca.element import Element

from maps.errors import MapError

__all__ = [
    "LIBRARIES",
    "VENDOR_DIR",
    "VendoredLibrary",
    "check_offline",
    "copy_assets",
    "localize_assets",
    "make_work_dir",
    "remote_references",
    "replace_dir",
    "write_text_atomic",
]

log = logging.getLogger(__name__)

#: Folder of the vendored third-party web libraries inside the installed package.
VENDOR_DIR: Path = Path(__file__).resolve().parent / "static" / "vendor"


@dataclass(frozen=True)
class VendoredLibrary:
    """One third-party web library shipped with :mod:`maps`.

    Attributes
    ----------
    name, version, licence : str
        npm package name, release and SPDX licence identifier.
    folder : str
        Folder under :data:`VENDOR_DIR` (``<name>-<version>``).
    licence_file : str
        The library's own licence file inside ``folder``.
    """

    name: str
    version: str
    licence: str
    folder: str
    licence_file: str


#: Every vendored library (see ``maps/static/vendor/VENDOR.md`` for provenance and hashes).
LIBRARIES: tuple[VendoredLibrary, ...] = (
    VendoredLibrary("leaflet", "1.9.4", "BSD-2-Clause", "leaflet-1.9.4", "LICENSE"),
    VendoredLibrary(
        "leaflet-side-by-side", "2.2.0", "MIT", "leaflet-side-by-side-2.2.0", "LICENSE"
    ),
    VendoredLibrary("leaflet-measure", "2.1.7", "MIT", "leaflet-measure-2.1.7", "LICENSE"),
    VendoredLibrary("leaflet.fullscreen", "3.0.0", "MIT", "leaflet.fullscreen-3.0.0", "LICENSE"),
    VendoredLibrary(
        "leaflet-mouse-position",
        "1.2.0",
        "MIT",
        "leaflet-mouse-position-1.2.0",
        "MIT-LICENCE.txt",
    ),
    VendoredLibrary("leaflet.sync", "0.2.4", "BSD-3-Clause", "leaflet.sync-0.2.4", "LICENSE"),
)

# folium's link names (folium 0.20: Map, SideBySideLayers, MeasureControl, Fullscreen,
# MousePosition, DualMap) -> vendored files, relative to VENDOR_DIR.
_JS: dict[str, tuple[str, ...]] = {
    "leaflet": ("leaflet-1.9.4/leaflet.js",),
    "leaflet.sidebyside": ("leaflet-side-by-side-2.2.0/leaflet-side-by-side.js",),
    "leaflet_measure_js": ("leaflet-measure-2.1.7/leaflet-measure.min.js",),
    "Control.Fullscreen.js": ("leaflet.fullscreen-3.0.0/Control.FullScreen.js",),
    "Control_MousePosition_js": ("leaflet-mouse-position-1.2.0/L.Control.MousePosition.js",),
    "Leaflet.Sync": ("leaflet.sync-0.2.4/L.Map.Sync.js",),
}
_CSS: dict[str, tuple[str, ...]] = {
    "leaflet_css": ("leaflet-1.9.4/leaflet.css",),
    "leaflet_measure_css": ("leaflet-measure-2.1.7/leaflet-measure.css",),
    "Control.FullScreen.css": ("leaflet.fullscreen-3.0.0/Control.FullScreen.css",),
    "Control_MousePosition_css": ("leaflet-mouse-position-1.2.0/L.Control.MousePosition.css",),
}
# Stylesheets a script needs that folium does not link (cssify injected them upstream).
_CSS_OF_JS: dict[str, tuple[str, ...]] = {
    "leaflet.sidebyside": (
        "leaflet-side-by-side-2.2.0/layout.css",
        "leaflet-side-by-side-2.2.0/range.css",
    ),
}
# folium Map defaults that no review page uses (awesome markers and their fonts).
_DROPPED = frozenset(
    {
        "jquery",
        "bootstrap",
        "awesome_markers",
        "bootstrap_css",
        "glyphicons_css",
        "awesome_markers_font_css",
        "awesome_markers_css",
        "awesome_rotate_css",
    }
)

_REMOTE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
_CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)", re.IGNORECASE)
_CSS_IMPORT = re.compile(r"@import\s+['\"]([^'\"]+)['\"]", re.IGNORECASE)


def copy_assets(dest: Path) -> Path:
    """Copy the vendored libraries (with their licence files) into ``dest`` and return it.

    Files already present with identical bytes are left alone, so pages that share a folder
    copy once. ``dest`` then mirrors :data:`VENDOR_DIR` (``dest/leaflet-1.9.4/leaflet.js``...).
    """
    if not VENDOR_DIR.is_dir():
        raise MapError(
            f"{VENDOR_DIR}: the vendored web libraries are missing; reinstall sitewatch "
            "(pip install --force-reinstall .)"
        )
    for src in sorted(VENDOR_DIR.rglob("*")):
        if not src.is_file():
            continue
        target = dest / src.relative_to(VENDOR_DIR)
        if target.is_file() and filecmp.cmp(src, target, shallow=False):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        shutil.copyfile(src, tmp)
        os.replace(tmp, target)
    return dest


def write_text_atomic(path: Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` through a temporary file renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise MapError(f"{path}: cannot write ({exc.strerror}); choose a writable --out") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def make_work_dir(target: Path) -> Path:
    """Create an empty temporary folder beside ``target`` to build it in, then rename.

    Unlike a bare ``tempfile.mkdtemp`` (mode 0700), the folder gets the permissions of a
    folder made by ``mkdir`` under the current umask, so the published result is readable
    by the reviewers and web servers that plain folders are readable by.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(work, 0o777 & ~umask)
    return work


def replace_dir(new: Path, target: Path) -> None:
    """Rename the finished folder ``new`` onto ``target`` (same file system).

    An existing ``target`` is first moved aside and removed only after the rename, so a
    crash leaves either the old folder or the new one, never a mix.
    """
    old: Path | None = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _walk(element: Element) -> Iterator[Element]:
    yield element
    for child in list(getattr(element, "_children", {}).values()):
        yield from _walk(child)
    for attr in ("m1", "m2"):  # folium.plugins.DualMap keeps its two maps as attributes
        sub = getattr(element, attr, None)
        if isinstance(sub, Element):
            yield from _walk(sub)


def localize_assets(root: Element, base_url: str) -> None:
    """Point every folium element under ``root`` at the vendored copies under ``base_url``.

    Parameters
    ----------
    root : branca Element
        A folium Map, DualMap or Figure, before it is rendered.
    base_url : str
        URL of the copied vendor folder relative to the page (e.g. ``"review_files/vendor"``).

    Raises
    ------
    MapError
        An element links a library that is not vendored (it would be fetched from a CDN).

    Notes
    -----
    The lists are replaced on each instance, never mutated in place: folium keeps its
    defaults as class attributes shared by every map of the process.
    """
    base = base_url.rstrip("/")
    seen: set[int] = set()
    for element in _walk(root):
        if id(element) in seen or not hasattr(element, "default_js"):
            continue
        seen.add(id(element))
        js: list[tuple[str, str]] = []
        css: list[tuple[str, str]] = []
        for name, url in getattr(element, "default_js", []):
            if name in _DROPPED:
                continue
            if name in _JS:
                js.extend((f"{name}#{i}", f"{base}/{p}") for i, p in enumerate(_JS[name]))
                css.extend(
                    (f"{name}_css#{i}", f"{base}/{p}")
                    for i, p in enumerate(_CSS_OF_JS.get(name, ()))
                )
            elif _REMOTE.match(url):
                raise MapError(
                    f"{type(element).__name__} links {url} ({name}) on a CDN; vendor it in "
                    f"{VENDOR_DIR} and map it in maps/assets.py"
                )
            else:
                js.append((name, url))
        for name, url in getattr(element, "default_css", []):
            if name in _DROPPED:
                continue
            if name in _CSS:
                css.extend((f"{name}#{i}", f"{base}/{p}") for i, p in enumerate(_CSS[name]))
            elif _REMOTE.match(url):
                raise MapError(
                    f"{type(element).__name__} links {url} ({name}) on a CDN; vendor it in "
                    f"{VENDOR_DIR} and map it in maps/assets.py"
                )
            else:
                css.append((name, url))
        element.default_js = js
        element.default_css = css  # type: ignore[attr-defined]


class _ResourceParser(HTMLParser):
    """Collect every URL an HTML page would fetch by itself."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str]] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "script" and "src" in a:
            self.urls.append(("script", a["src"]))
        elif tag == "link" and "href" in a:
            rel = a.get("rel", "").lower()
            if any(r in rel for r in ("stylesheet", "icon", "preload", "prefetch", "manifest")):
                self.urls.append(("link", a["href"]))
        elif tag in ("img", "source", "iframe", "embed", "audio", "video", "input"):
            for key in ("src", "srcset", "poster"):
                if a.get(key):
                    self.urls.append((tag, a[key]))
        elif tag == "object" and a.get("data"):
            self.urls.append((tag, a["data"]))
        if "style" in a:
            self.urls.extend(("style", u) for u in _css_urls(a["style"]))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.urls.extend(("style", u) for u in _css_urls(data))


def _css_urls(text: str) -> list[str]:
    return [m.group(1) for m in _CSS_URL.finditer(text)] + [
        m.group(1) for m in _CSS_IMPORT.finditer(text)
    ]


def remote_references(html: str, css_files: list[Path] | None = None) -> list[str]:
    """Return every remote (``http:``, ``https:``, protocol-relative) resource reference.

    Looks at ``<script src>``, ``<link href>`` of stylesheets and icons, images and other
    embedded media, inline ``style`` attributes and ``<style>`` blocks of ``html``, and the
    ``url(...)`` and ``@import`` references of ``css_files``. Plain links (``<a href>``) are
    navigation, not fetched, and are not reported.
    """
    parser = _ResourceParser()
    parser.feed(html)
    found = [f"{kind}: {url}" for kind, url in parser.urls if _REMOTE.match(url)]
    for css in css_files or []:
        text = css.read_text(encoding="utf-8", errors="replace")
        found.extend(f"{css.name}: {u}" for u in _css_urls(text) if _REMOTE.match(u))
    return found


def check_offline(html_path: Path, asset_dir: Path | None = None) -> None:
    """Raise :class:`MapError` if a rendered page (or its copied CSS) references a remote URL."""
    css = sorted(asset_dir.rglob("*.css")) if asset_dir is not None else []
    remote = remote_references(html_path.read_text(encoding="utf-8"), css)
    if remote:
        raise MapError(
            f"{html_path}: the page would fetch {remote[0]} from the network "
            f"({len(remote)} remote reference(s)); vendor the resource in {VENDOR_DIR}"
        )
