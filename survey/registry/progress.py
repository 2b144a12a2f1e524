"""Construction progress in the registry: each survey's measure of every permitted project.

``sitewatch run`` measures, for every permit in force on a survey's date, the stage the
project reached (:mod:`survey.progress_stages`) and records it here
(:meth:`ProgressMixin.record_progress`, one row per survey and permit, table
``survey_progress``); :meth:`ProgressMixin.progress` reads a site's rows back by date, which is
the per-project timeline of the review map (:func:`survey.run_survey.site_timeline`,
:mod:`maps.timeline`). Rows go with their survey (a discarded survey takes its rows along).

Reading and writing progress imports nothing of the raster or detection stack: the rows are
taken by their attributes (``ProjectProgress`` or anything shaped like it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session

from survey.registry.core import RegistryCore
from survey.registry.errors import RegistryInputError
from survey.registry.models import ProgressRow, SiteRow, SurveyRow
from survey.registry.records import ProgressRecord

if TYPE_CHECKING:
    from survey.progress_stages import ProjectProgress

__all__ = ["PROGRESS_STAGES", "ProgressMixin"]

PROGRESS_STAGES: tuple[str, ...] = (
    "setting_out",
    "foundation",
    "ground_level",
    "first_floor",
    "standard_floors",
    "top_floor",
    "facade",
)
"""The stages of :data:`survey.progress_stages.STAGES`, spelled out so that the registry does
not import the raster stack (a test checks they agree)."""


def _day(value: str | dt.date | None, what: str) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise RegistryInputError(f"{what} {value!r} is not a date; write it as YYYY-MM-DD") from exc


class ProgressMixin(RegistryCore):
    """Construction progress (part of :class:`Registry`)."""

    def record_progress(
        self, survey_id: int, rows: Sequence[ProjectProgress]
    ) -> list[ProgressRecord]:
        """Record the progress of each permitted project a survey measured, replacing what
        was recorded for that survey before.

        Parameters
        ----------
        survey_id : int
            A registered survey.
        rows : sequence of survey.progress_stages.ProjectProgress
            One per permit (``progress.json`` of the run); their ``date`` is the survey's.

        Returns
        -------
        list of ProgressRecord
            As recorded, by permit id.

        Raises
        ------
        RegistryLookupError
            No such survey.
        RegistryInputError
            A stage the registry does not know, or a permit measured twice; nothing is
            recorded.
        """
        seen: set[str] = set()
        for p in rows:
            if p.stage not in PROGRESS_STAGES:
                raise RegistryInputError(
                    f"permit {p.permit_id}: stage {p.stage!r} is not one of "
                    f"{', '.join(PROGRESS_STAGES)}; nothing was recorded"
                )
            if p.permit_id in seen:
                raise RegistryInputError(
                    f"survey {survey_id}: permit {p.permit_id} measured twice; give one row per "
                    "permit — nothing was recorded"
                )
            seen.add(p.permit_id)
        with self._write() as s:
            survey = self._survey_row(s, survey_id, lock=True)
            s.execute(sa.delete(ProgressRow).where(ProgressRow.survey_id == survey.id))
            s.add_all(
                ProgressRow(
                    survey_id=survey.id,
                    permit_id=str(p.permit_id),
                    permit_valid_from=_day(p.permit_valid_from, "permit_valid_from"),
                    stage=p.stage,
                    height_m=float(p.height_m),
                    storeys=int(p.storeys),
                    permitted_floors=None
                    if p.permitted_floors is None
                    else int(p.permitted_floors),
                    permitted_height_m=(
                        None if p.permitted_height_m is None else float(p.permitted_height_m)
                    ),
                    built_fraction=float(p.built_fraction),
                    dug_fraction=float(p.dug_fraction),
                    outside_m2=float(p.outside_m2),
                    exceeds=list(p.exceeds),
                    reasons=list(p.reasons),
                    lead_ids=list(p.lead_ids),
                )
                for p in sorted(rows, key=lambda p: p.permit_id)
            )
            s.flush()
            site = s.get_one(SiteRow, survey.site_id).name
            return self._progress_records(s, [SurveyRow.id == survey.id], site)

    def progress(self, site: str, *, permit_id: str | None = None) -> list[ProgressRecord]:
        """A site's construction progress: every project in every survey that measured it,
        by survey date, survey id and permit id (one SQL statement).

        Parameters
        ----------
        site : str
        permit_id : str, optional
            Only this permit's rows.

        Raises
        ------
        RegistryLookupError
            An unknown site.
        """
        with self._read() as s:
            site_row = self._site_row(s, site)
            where = [SurveyRow.site_id == site_row.id]
            if permit_id is not None:
                where.append(ProgressRow.permit_id == permit_id)
            return self._progress_records(s, where, site_row.name)

    @staticmethod
    def _progress_records(
        s: Session, where: Sequence[sa.ColumnElement[bool]], site: str
    ) -> list[ProgressRecord]:
        query = (
            sa.select(ProgressRow, SurveyRow.date, SurveyRow.approved)
            .join(SurveyRow, SurveyRow.id == ProgressRow.survey_id)
            .where(*where)
            .order_by(SurveyRow.date, SurveyRow.id, ProgressRow.permit_id)
        )
        return [
            ProgressRecord(
                survey_id=r.survey_id,
                site=site,
                date=date,
                approved=bool(approved),
                permit_id=r.permit_id,
                stage=r.stage,
                height_m=r.height_m,
                storeys=r.storeys,
                permitted_floors=r.permitted_floors,
                permitted_height_m=r.permitted_height_m,
                built_fraction=r.built_fraction,
                dug_fraction=r.dug_fraction,
                outside_m2=r.outside_m2,
                exceeds=tuple(r.exceeds or ()),
                reasons=tuple(r.reasons or ()),
                permit_valid_from=r.permit_valid_from,
                lead_ids=tuple(r.lead_ids or ()),
            )
            for r, date, approved in s.execute(query).all()
        ]
