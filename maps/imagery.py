"""Which orthophotos a review page shows: one survey or two, the after view, dates, lineage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from change_detection.leads import Lead
from maps.derived import REGISTERED_LABEL, derived_record, file_sha256
from maps.errors import MapError
from maps.markup import _e
from maps.tiles import TileSet, render_tiles


def _single_survey(
    before_ortho: Path | None,
    after_ortho: Path | None,
    ortho: Path | None,
    after_registered: Path | None,
) -> bool:
    """True for one survey (``ortho``), False for two; MapError for any other combination."""
    if ortho is not None:
        if before_ortho is not None or after_ortho is not None or after_registered is not None:
            raise MapError(
                "give either the orthophoto of a single survey (ortho, --ortho) or the before "
                "and after orthophotos (--before-ortho, --after-ortho), not both"
            )
        return True
    if before_ortho is None or after_ortho is None:
        given = "before" if before_ortho is not None else "after" if after_ortho is not None else ""
        raise MapError(
            (f"only the {given} orthophoto was given; " if given else "no orthophoto was given; ")
            + "pass --before-ortho and --after-ortho for two surveys, or --ortho for a single "
            "survey checked against the permit atlas (sitewatch check)"
        )
    return False


def _after_view(after_ortho: Path, after_registered: Path | None) -> tuple[Path, str, str]:
    """(raster to show as the after epoch, its title, its lower-case label)."""
    if after_registered is None:
        return Path(after_ortho), "After", "after"
    reg = Path(after_registered)
    if not reg.is_file():
        raise MapError(f"{reg}: co-registered after orthophoto not found; check the path")
    return reg, REGISTERED_LABEL[0].upper() + REGISTERED_LABEL[1:], REGISTERED_LABEL


def _dates(
    leads: Sequence[Lead], before_date: str | None, after_date: str | None
) -> tuple[str | None, str | None]:
    b = before_date or next((lead.before_date for lead in leads if lead.before_date), None)
    a = after_date or next((lead.after_date for lead in leads if lead.after_date), None)
    return b, a


def _imagery_sources(
    before_ortho: Path | None, after_ortho: Path, after_registered: Path | None
) -> str:
    """HTML rows naming every image shown on the page, with its SHA-256 and lineage
    (``before_ortho`` None: ``after_ortho`` is the single survey)."""
    if before_ortho is None:
        rows = [("survey", after_ortho.name, file_sha256(after_ortho), "original")]
        return "".join(
            f"<tr><th>{_e(label)}</th><td>{_e(name)}<br><code>{_e(digest)}</code><br>"
            f"{_e(note)}</td></tr>"
            for label, name, digest, note in rows
        )
    rows = [("before", before_ortho.name, file_sha256(before_ortho), "original")]
    if after_registered is None:
        rows.append(("after", after_ortho.name, file_sha256(after_ortho), "original"))
    else:
        rec = derived_record(after_registered, "after_ortho")
        src = rec["derived_from"]
        lineage = (
            f"derived from {src['file'] or after_ortho.name} "
            f"(SHA-256 {src['sha256'] or 'not recorded'}) by the "
            f"{rec['coregistration']['model'] or '?'} co-registration model"
        )
        rows.append((REGISTERED_LABEL, rec["file"], rec["sha256"], lineage))
    return "".join(
        f"<tr><th>{_e(label)}</th><td>{_e(name)}<br><code>{_e(digest)}</code><br>{_e(note)}"
        "</td></tr>"
        for label, name, digest, note in rows
    )


@dataclass(frozen=True)
class ShownImagery:
    """The orthophotos a page shows: the after (or single survey) raster drawn, its title
    and label, the HTML rows of their lineage, and their tile pyramids by name
    (``before``/``after``, or ``survey``)."""

    after_shown: Path
    after_title: str
    after_label: str
    sources_html: str
    tiles: dict[str, TileSet]


def shown_imagery(
    before_ortho: Path | None,
    after_ortho: Path | None,
    ortho: Path | None,
    after_registered: Path | None,
    tiles_dir: Path,
    area: tuple[float, float, float, float] | None = None,
    max_levels: int = 6,
) -> ShownImagery:
    """Render the tiles of what a page shows (after :func:`_single_survey` checked the
    combination): the single survey ``ortho``, or the before orthophoto and the after one
    (its co-registered version when given), into ``tiles_dir/<name>``."""
    if ortho is not None:
        tiles = {
            "survey": render_tiles(ortho, tiles_dir / "survey", area=area, max_levels=max_levels)
        }
        return ShownImagery(
            Path(ortho), "Survey", "survey", _imagery_sources(None, Path(ortho), None), tiles
        )
    assert before_ortho is not None and after_ortho is not None
    after_shown, after_title, after_label = _after_view(after_ortho, after_registered)
    sources = _imagery_sources(Path(before_ortho), Path(after_ortho), after_registered)
    tiles = {
        "before": render_tiles(
            before_ortho, tiles_dir / "before", area=area, max_levels=max_levels
        ),
        "after": render_tiles(after_shown, tiles_dir / "after", area=area, max_levels=max_levels),
    }
    return ShownImagery(after_shown, after_title, after_label, sources, tiles)
