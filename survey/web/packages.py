"""Evidence on the platform: the store's verification status, a lead's package (built,
found, zipped for download) and the before/after images of the lead page.

A lead's package is looked for, in order, in the platform's own folder
(``<data>/packages/lead-<id>``, built here by an analyst) and among the products of the
survey that last saw it (``package_<registry id>`` as ``sitewatch run`` records them, ``package``
or ``packages/<detection id>``). It is handed out as a zip of the package folder, which holds
``manifest.sha256``: ``unzip lead-7.zip && cd lead-7 && sha256sum -c manifest.sha256``.
"""

from __future__ import annotations

import io
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.enums import ColorInterp
from rasterio.transform import from_bounds as transform_from_bounds
from rasterio.vrt import WarpedVRT

from survey.registry import LeadRecord, Registry, SurveyRecord
from survey.web.errors import WebError

__all__ = [
    "Chip",
    "StoreStatus",
    "build_package",
    "find_package",
    "lead_chip",
    "store_status",
    "zip_folder",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreStatus:
    """The evidence store as ``sitewatch evidence verify`` sees it (read-only)."""

    configured: bool
    path: str | None
    ok: bool
    entries: int
    objects: int
    signed_size: int | None
    problems: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "configured": self.configured,
            "path": self.path,
            "ok": self.ok,
            "entries": self.entries,
            "objects": self.objects,
            "signed_size": self.signed_size,
            "problems": list(self.problems),
        }


def store_status(store: str | None) -> StoreStatus:
    """Verify the evidence store ``store`` read-only (its chain, heads, signatures, files)."""
    if not store:
        return StoreStatus(False, None, False, 0, 0, None, ("no evidence store is set",))
    from survey.errors import SurveyError
    from survey.evidence import EvidenceStore

    try:
        report = EvidenceStore.open(store, read_only=True).verify()
    except SurveyError as exc:
        return StoreStatus(True, store, False, 0, 0, None, (str(exc),))
    return StoreStatus(
        True,
        store,
        report.ok,
        report.entries,
        report.objects,
        report.signed_size,
        tuple(str(p) for p in report.problems),
    )


def _package_dirs(reg: Registry, lead: LeadRecord, data_dir: Path) -> list[Path]:
    dirs = [Path(data_dir) / "packages" / f"lead-{lead.lead_id}"]
    products = reg.survey(lead.last_survey_id).products
    if f"package_{lead.lead_id}" in products:  # sitewatch run: packages/lead-<registry id>
        dirs.append(Path(products[f"package_{lead.lead_id}"]))
    if "package" in products:
        dirs.append(Path(products["package"]))
    if "packages" in products:
        dirs.append(Path(products["packages"]) / lead.detection_id)
    return dirs


def find_package(reg: Registry, lead: LeadRecord, data_dir: Path) -> Path | None:
    """The folder of the lead's evidence package (it has ``manifest.sha256``), or None."""
    for folder in _package_dirs(reg, lead, data_dir):
        if (folder / "manifest.sha256").is_file():
            return folder
    return None


def zip_folder(folder: Path, name: str) -> bytes:
    """A zip of ``folder``'s files under the top folder ``name`` (links are not followed)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                zf.write(path, f"{name}/{path.relative_to(folder).as_posix()}")
    return buf.getvalue()


def _detection(reg: Registry, lead: LeadRecord):  # type: ignore[no-untyped-def]
    from survey.vectors import read_leads

    survey = reg.survey(lead.last_survey_id)
    path = survey.products.get("leads")
    if path is None or not Path(path).is_file():
        raise WebError(
            f"survey {survey.survey_id} has no leads file among its products; run the survey "
            "again with `sitewatch run` to build packages"
        )
    for det in read_leads(path):
        if det.lead_id == lead.detection_id:
            return det, survey
    raise WebError(
        f"{path}: lead {lead.detection_id} of registry lead {lead.lead_id} is not in the "
        "survey's leads file; run the survey again"
    )


def build_package(reg: Registry, lead_id: int, data_dir: Path, *, analyst: str) -> Path:
    """Build the evidence package of a lead into ``<data>/packages/lead-<id>``.

    Raises
    ------
    WebError
        The survey's files needed are not recorded or gone.
    """
    from maps.package import build_evidence_package

    lead = reg.lead(lead_id)
    det, after = _detection(reg, lead)
    out = Path(data_dir) / "packages" / f"lead-{lead.lead_id}"
    out.parent.mkdir(parents=True, exist_ok=True)
    before = reg.survey(after.reference_survey_id) if after.reference_survey_id else None
    store = reg.custody.store()
    kwargs: dict[str, object] = {}
    if before is not None and before.ortho and after.ortho:
        kwargs.update(before_ortho=Path(before.ortho), after_ortho=Path(after.ortho))
        kwargs.update(
            before_dsm=Path(before.dsm) if before.dsm else None,
            after_dsm=Path(after.dsm) if after.dsm else None,
            before_date=before.date.isoformat(),
            after_date=after.date.isoformat(),
        )
        # the after epoch co-registered onto the before grid, as ``sitewatch run`` records it
        for key in ("after_registered", "after_registered_dsm"):
            registered = after.products.get(key)
            if registered and Path(registered).is_file():
                kwargs[key] = Path(registered)
    elif after.ortho:
        kwargs.update(
            ortho=Path(after.ortho),
            dsm=Path(after.dsm) if after.dsm else None,
            after_date=after.date.isoformat(),
        )
    else:
        raise WebError(f"survey {after.survey_id} has no orthophoto recorded; cannot package")
    package = build_evidence_package(
        det,
        out_dir=out,
        case_id=after.case,
        pilot=after.created_by,
        analyst=analyst,
        verify_inputs=False,
        signed_head=store.signed_head() if store is not None else None,
        **kwargs,  # type: ignore[arg-type]
    )
    return package.directory


@dataclass(frozen=True)
class Chip:
    """A PNG of an orthophoto around a lead, and its bounds (west, south, east, north)."""

    path: Path
    bounds: tuple[float, float, float, float]


def _window_bounds(lead: LeadRecord) -> tuple[float, float, float, float]:
    w, s, e, n = lead.geometry.bounds
    pad_x = max((e - w) * 0.75, 15 / 88_000)
    pad_y = max((n - s) * 0.75, 15 / 111_000)
    return (w - pad_x, s - pad_y, e + pad_x, n + pad_y)


def lead_chip(reg: Registry, lead: LeadRecord, which: str, data_dir: Path) -> Chip | None:
    """The ``before`` or ``after`` orthophoto around the lead as a 512 px PNG in WGS84 (made
    once, then cached), or None when the survey has no orthophoto.

    The ``after`` chip is drawn from the after epoch co-registered onto the before grid (the
    survey's ``after_registered`` product, which ``sitewatch run`` records after a detection),
    so that the lead's outline, in the before frame, fits it; from the survey's own
    orthophoto when there is none (a first survey: the outline is in its frame)."""
    after = reg.survey(lead.last_survey_id)
    survey: SurveyRecord | None
    if which == "after":
        survey = after
        raster = _after_raster(after)
    else:
        survey = reg.survey(after.reference_survey_id) if after.reference_survey_id else None
        raster = survey.ortho if survey is not None else None
    if survey is None or not raster or not Path(raster).is_file():
        return None
    bounds = _window_bounds(lead)
    out = Path(data_dir) / "chips" / f"lead-{lead.lead_id}-{survey.survey_id}-{which}.png"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        _render_chip(Path(raster), bounds, out)
    return Chip(out, bounds)


def _after_raster(after: SurveyRecord) -> str | None:
    """The raster of an ``after`` chip: the co-registered after epoch, else the orthophoto."""
    registered = after.products.get("after_registered")
    if registered and Path(registered).is_file():
        return str(registered)
    if registered:
        log.warning(
            "survey %d: its co-registered after epoch %s is gone; the after chip shows the "
            "survey's orthophoto (outlines may be off by the co-registration shift); run the "
            "survey again to restore it",
            after.survey_id,
            registered,
        )
    return after.ortho


def _render_chip(raster: Path, bounds: tuple[float, float, float, float], out: Path) -> None:
    size = 512
    grid = transform_from_bounds(*bounds, size, size)
    with rasterio.open(raster) as src:
        # an orthophoto with its own alpha band (OpenDroneMap's RGBA) keeps it as the mask
        alpha = [i for i, c in enumerate(src.colorinterp, 1) if c == ColorInterp.alpha]
        with WarpedVRT(
            src, crs="EPSG:4326", transform=grid, width=size, height=size, add_alpha=not alpha
        ) as vrt:
            mask = alpha[0] if alpha else vrt.count
            colour = [i for i in range(1, vrt.count + 1) if i != mask][:3] or [1]
            data = vrt.read(indexes=[*colour, mask])
    if data.dtype != np.uint8:  # scale a non-8-bit orthophoto to its 2-98 % range
        values = data[:-1].astype(np.float64)
        lo, hi = np.nanpercentile(values, [2, 98]) if values.size else (0.0, 1.0)
        scaled = np.clip((values - lo) / max(hi - lo, 1e-9) * 255, 0, 255)
        data = np.concatenate([scaled, (data[-1:] > 0) * 255]).astype(np.uint8)
    rgba = np.moveaxis(data, 0, -1)
    if rgba.shape[-1] == 2:  # grey + alpha
        rgba = np.concatenate([rgba[..., :1]] * 3 + [rgba[..., 1:]], axis=-1)
    image = Image.fromarray(np.ascontiguousarray(rgba), "RGBA")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    image.save(tmp, format="PNG")
    os.replace(tmp, out)
