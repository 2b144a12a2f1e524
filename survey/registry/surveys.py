"""Surveys in the registry: registering a survey and its products, approval, the reference.

A survey belongs to one site and one date; it names its flight log, photos, orthophoto, DSM
and DTM as given, the SHA-256 of its originals in the evidence store and the store case they
are filed under (default ``S<site id>-<YYYYMMDD>-<survey id>``), its flight-QC verdict
(``pass``, ``warn``, ``fail``) and whether a reviewer approved it. The next survey of the site
is compared with the last approved one (:meth:`SurveysMixin.last_approved_survey`); a failed
QC verdict cannot be approved.

A survey whose footprint (given, or the bounds of its orthophoto or DSM) does not overlap its
site's boundary is refused in one line.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import shapely
import sqlalchemy as sa
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from survey.registry.core import RegistryCore, parse_day
from survey.registry.custody import highest_risk
from survey.registry.errors import RegistryInputError
from survey.registry.geometry import from_wkb, to_wkb
from survey.registry.models import (
    LeadEventRow,
    LeadObservationRow,
    LeadRow,
    SiteRow,
    SurveyRow,
)
from survey.registry.records import SurveyRecord

__all__ = ["QC_VERDICTS", "SurveysMixin", "raster_footprint"]

log = logging.getLogger(__name__)

QC_VERDICTS = ("pass", "warn", "fail")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def raster_footprint(path: str | os.PathLike[str], role: str) -> BaseGeometry:
    """The WGS84 bounding box of a georeferenced raster (opened read-only)."""
    from rasterio.warp import transform_bounds  # the raster stack, imported when used

    from survey.rasters import open_checked

    with open_checked(path, role) as ds:
        west, south, east, north = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    return box(west, south, east, north)


def _path(value: str | os.PathLike[str] | None) -> str | None:
    return None if value is None else str(Path(value).absolute())


class SurveysMixin(RegistryCore):
    """Surveys (part of :class:`Registry`)."""

    def register_survey(
        self,
        site: str,
        date: str | dt.date,
        *,
        ortho: str | os.PathLike[str] | None = None,
        dsm: str | os.PathLike[str] | None = None,
        dtm: str | os.PathLike[str] | None = None,
        flight_log: str | os.PathLike[str] | None = None,
        images: str | os.PathLike[str] | None = None,
        evidence: Sequence[str] = (),
        products: Mapping[str, str | os.PathLike[str]] | None = None,
        qc_verdict: str | None = None,
        case: str | None = None,
        footprint: BaseGeometry | None = None,
        user: str | None = None,
    ) -> SurveyRecord:
        """Register a survey of ``site`` on ``date`` (module docstring).

        Parameters
        ----------
        site : str
        date : date or ISO 8601 text
        ortho, dsm, dtm, flight_log, images : path, optional
            Its files (recorded as absolute paths; rasters are opened read-only to place the
            survey when no ``footprint`` is given).
        evidence : sequence of str
            SHA-256 of its originals in the evidence store.
        products : mapping, optional
            Other outputs by role (``leads``, ``map``, ``package``...).
        qc_verdict : str, optional
            ``pass``, ``warn`` or ``fail``.
        case : str, optional
            The evidence-store case of its originals (default ``S<site>-<date>-<survey>``).
        footprint : shapely geometry, optional
            What it covered, WGS84.
        user : str, optional

        Returns
        -------
        SurveyRecord

        Raises
        ------
        RegistryInputError
            A survey outside its site, a bad date, verdict, case or hash.
        RegistryLookupError
            An unknown site.
        """
        day = parse_day(date, "survey date")
        if qc_verdict is not None and qc_verdict not in QC_VERDICTS:
            raise RegistryInputError(
                f"QC verdict {qc_verdict!r} is not one of {', '.join(QC_VERDICTS)}"
            )
        hashes = [self._check_hash(h) for h in evidence]
        if case is not None:
            from survey.evidence.cases import validate_case_id  # the store's rule for case ids

            validate_case_id(case)
        if footprint is None:
            for value, role in ((ortho, "orthophoto"), (dsm, "DSM")):
                if value is not None:
                    footprint = raster_footprint(value, role)
                    break
        who = self._who(user)
        with self._write() as s:
            site_row = self._site_row(s, site)
            boundary = from_wkb(site_row.boundary)
            if footprint is not None and not shapely.intersects(footprint, boundary):
                what = next((str(v) for v in (ortho, dsm) if v is not None), "the footprint given")
                w, so, e, n = footprint.bounds
                bw, bs, be, bn = boundary.bounds
                raise RegistryInputError(
                    f"{what}: the survey of {day} lies outside site {site!r} (it covers lon "
                    f"{w:.5f}..{e:.5f}, lat {so:.5f}..{n:.5f}; the site lies at lon "
                    f"{bw:.5f}..{be:.5f}, lat {bs:.5f}..{bn:.5f}); check the site name and the "
                    "files"
                )
            row = SurveyRow(
                site_id=site_row.id,
                date=day,
                case_id=case,
                flight_log=_path(flight_log),
                images=_path(images),
                ortho=_path(ortho),
                dsm=_path(dsm),
                dtm=_path(dtm),
                footprint=None if footprint is None else to_wkb(footprint),
                evidence=hashes,
                products={k: str(v) for k, v in (products or {}).items()},
                qc_verdict=qc_verdict,
                approved=False,
                created_at=self.clock(),
                created_by=who,
            )
            s.add(row)
            s.flush()
            if row.case_id is None:
                row.case_id = f"S{site_row.id}-{day:%Y%m%d}-{row.id}"
            with self.custody.batch():
                self.custody.retain(row.case_id, operator=who, risk=site_row.risk)
                self.custody.record(
                    "survey-register",
                    case=row.case_id,
                    evidence=hashes,
                    parameters={"site": site_row.name, "survey": row.id, "date": day.isoformat()},
                    operator=who,
                )
            s.flush()
            return self._survey_record(row, site_row.name)

    @staticmethod
    def _check_hash(value: str) -> str:
        text = str(value).strip().lower()
        if not _HEX64.fullmatch(text):
            raise RegistryInputError(
                f"evidence id {value!r} is not a SHA-256 (64 hexadecimal digits); give the "
                "hashes the evidence store recorded"
            )
        return text

    def update_survey(
        self,
        survey_id: int,
        *,
        evidence: Sequence[str] | None = None,
        products: Mapping[str, str | os.PathLike[str]] | None = None,
        qc_verdict: str | None = None,
    ) -> SurveyRecord:
        """Add evidence ids and products to a survey, or set its QC verdict (for ``run``,
        which registers the survey before its outputs exist). Evidence and products are
        added to those already recorded."""
        if qc_verdict is not None and qc_verdict not in QC_VERDICTS:
            raise RegistryInputError(
                f"QC verdict {qc_verdict!r} is not one of {', '.join(QC_VERDICTS)}"
            )
        hashes = [self._check_hash(h) for h in evidence or ()]
        with self._write() as s:
            row = self._survey_row(s, survey_id, lock=True)
            if hashes:
                row.evidence = list(dict.fromkeys([*row.evidence, *hashes]))
            if products:
                row.products = {**row.products, **{k: str(v) for k, v in products.items()}}
            if qc_verdict is not None:
                row.qc_verdict = qc_verdict
            name = s.get_one(SiteRow, row.site_id).name
            return self._survey_record(row, name)

    def survey(self, survey_id: int) -> SurveyRecord:
        """One survey.

        Raises
        ------
        RegistryLookupError
        """
        with self._read() as s:
            row = self._survey_row(s, survey_id)
            name = s.get_one(SiteRow, row.site_id).name
            count = s.scalar(
                sa.select(sa.func.count(sa.distinct(LeadObservationRow.lead_id))).where(
                    LeadObservationRow.survey_id == row.id
                )
            )
            return self._survey_record(row, name, int(count or 0))

    def surveys(self, site: str) -> list[SurveyRecord]:
        """A site's surveys, oldest first, with how many leads each saw."""
        with self._read() as s:
            site_row = self._site_row(s, site)
            counts = (
                sa.select(
                    LeadObservationRow.survey_id,
                    sa.func.count(sa.distinct(LeadObservationRow.lead_id)).label("n"),
                )
                .join(SurveyRow, SurveyRow.id == LeadObservationRow.survey_id)
                .where(SurveyRow.site_id == site_row.id)
                .group_by(LeadObservationRow.survey_id)
                .subquery()
            )
            rows = s.execute(
                sa.select(SurveyRow, counts.c.n)
                .outerjoin(counts, counts.c.survey_id == SurveyRow.id)
                .where(SurveyRow.site_id == site_row.id)
                .order_by(SurveyRow.date, SurveyRow.id)
            ).all()
            return [self._survey_record(r, site_row.name, int(n or 0)) for r, n in rows]

    def last_approved_survey(
        self, site: str, *, before: str | dt.date | None = None
    ) -> SurveyRecord | None:
        """The latest approved survey of ``site`` (taken before ``before``, if given): what a
        new survey is compared with. None: there is none (a first survey: ``check``)."""
        with self._read() as s:
            site_row = self._site_row(s, site)
            query = sa.select(SurveyRow).where(
                SurveyRow.site_id == site_row.id, SurveyRow.approved.is_(True)
            )
            if before is not None:
                query = query.where(SurveyRow.date < parse_day(before, "date"))
            row = s.scalars(
                query.order_by(SurveyRow.date.desc(), SurveyRow.id.desc()).limit(1)
            ).first()
            return None if row is None else self._survey_record(row, site_row.name)

    def approve_survey(self, survey_id: int, *, user: str | None = None) -> SurveyRecord:
        """Approve a survey as the reference of the next ones (recorded in the ledger).

        Raises
        ------
        RegistryLookupError
            No such survey.
        RegistryInputError
            Already approved, or its flight QC failed.
        """
        who = self._who(user)
        with self._write() as s:
            row = self._survey_row(s, survey_id, lock=True)
            if row.approved:
                raise RegistryInputError(
                    f"survey {survey_id} was already approved by {row.approved_by} on "
                    f"{row.approved_at:%Y-%m-%d %H:%M} UTC; nothing to do"
                )
            if row.qc_verdict == "fail":
                raise RegistryInputError(
                    f"survey {survey_id} failed its flight QC; it cannot be the reference of "
                    "later surveys — fly the site again"
                )
            site_row = s.get_one(SiteRow, row.site_id)
            row.approved, row.approved_at, row.approved_by = True, self.clock(), who
            with self.custody.batch():
                self.custody.retain(row.case_id, operator=who, risk=highest_risk([site_row.risk]))
                self.custody.record(
                    "survey-approve",
                    case=row.case_id,
                    evidence=row.evidence,
                    parameters={
                        "site": site_row.name,
                        "survey": row.id,
                        "date": row.date.isoformat(),
                    },
                    operator=who,
                )
            return self._survey_record(row, site_row.name)

    def discard_survey(
        self, survey_id: int, *, reason: str, user: str | None = None
    ) -> SurveyRecord:
        """Remove a survey whose run failed, leaving the registry as it was before it was
        registered (its progress rows go with it).

        A survey can be discarded only while nothing else in the registry rests on it: no
        lead was recorded from it (no lead opened, seen, reopened or proposed for closure in
        it: its leads are evidence of the case and stay), it is not approved and no survey was
        compared with it. The custody ledger is append-only: its ``survey-register`` entry
        stays, and one ``survey-discard`` entry (the reason, the evidence ids it had) says the
        run failed; originals already added to the store under its case stay there, named by
        that entry.

        Parameters
        ----------
        survey_id : int
        reason : str
            Why (the error that stopped the run).
        user : str, optional

        Returns
        -------
        SurveyRecord
            The survey as it was.

        Raises
        ------
        RegistryLookupError
            No such survey.
        RegistryInputError
            Leads or another survey rest on it, or it is approved; nothing is changed.
        """
        who = self._who(user)
        why = " ".join(str(reason).split())[:1000] or "no reason given"
        with self._write() as s:
            row = self._survey_row(s, survey_id, lock=True)
            site_row = s.get_one(SiteRow, row.site_id)
            record = self._survey_record(row, site_row.name)
            leads = s.scalar(
                sa.select(sa.func.count())
                .select_from(LeadObservationRow)
                .where(LeadObservationRow.survey_id == row.id)
            )
            leads = (leads or 0) + (
                s.scalar(
                    sa.select(sa.func.count())
                    .select_from(LeadRow)
                    .where(
                        sa.or_(
                            LeadRow.first_survey_id == row.id,
                            LeadRow.last_survey_id == row.id,
                            LeadRow.closure_survey_id == row.id,
                        )
                    )
                )
                or 0
            )
            events = s.scalar(
                sa.select(sa.func.count())
                .select_from(LeadEventRow)
                .where(LeadEventRow.survey_id == row.id)
            )
            later = s.scalars(
                sa.select(SurveyRow.id).where(SurveyRow.reference_survey_id == row.id).limit(1)
            ).first()
            if leads or events:
                raise RegistryInputError(
                    f"survey {survey_id} cannot be discarded: leads were recorded from it "
                    f"(`sitewatch leads list --site {site_row.name!r}`); they are evidence of "
                    "their cases — nothing was changed"
                )
            if row.approved:
                raise RegistryInputError(
                    f"survey {survey_id} cannot be discarded: it was approved by "
                    f"{row.approved_by} as the reference of later surveys — nothing was changed"
                )
            if later is not None:
                raise RegistryInputError(
                    f"survey {survey_id} cannot be discarded: survey {later} was compared with "
                    "it — nothing was changed"
                )
            self.custody.record(
                "survey-discard",
                case=row.case_id,
                evidence=row.evidence,
                parameters={
                    "site": site_row.name,
                    "survey": row.id,
                    "date": row.date.isoformat(),
                    "reason": why,
                },
                operator=who,
            )
            s.delete(row)
        log.warning("survey %d of %s discarded: %s", survey_id, record.site, why)
        return record

    @staticmethod
    def _survey_record(row: SurveyRow, site: str, leads: int = 0) -> SurveyRecord:
        return SurveyRecord(
            survey_id=row.id,
            site=site,
            site_id=row.site_id,
            date=row.date,
            case=row.case_id,
            flight_log=row.flight_log,
            images=row.images,
            ortho=row.ortho,
            dsm=row.dsm,
            dtm=row.dtm,
            evidence=tuple(row.evidence or ()),
            products=dict(row.products or {}),
            qc_verdict=row.qc_verdict,
            reference=row.reference,
            reference_survey_id=row.reference_survey_id,
            approved=bool(row.approved),
            approved_at=row.approved_at,
            approved_by=row.approved_by,
            created_at=row.created_at,
            created_by=row.created_by,
            leads=leads,
        )
