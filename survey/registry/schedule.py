"""The schedule: which sites are due for a survey on a date, and their flight plans.

A site is due on ``D`` when it was never surveyed, or when its last survey that counts (any
registered survey whose flight QC did not fail: a failed flight is flown again) was
``cadence_days`` or more before ``D``. Due sites come most overdue first, then by risk tier
(high first) and name. One SQL statement (sites left-joined to the latest survey date per site,
which the ``(site_id, date)`` index serves), whatever the number of sites.

:meth:`ScheduleMixin.plan_due` writes a ready-to-fly plan per due site with
:func:`flightplans.plan_survey` and :func:`flightplans.write_mission_files`: the boundary in
its UTM zone, its holes and no-fly zones avoided, at the site's GSD, into ``DIR/<site>/``. A site
the planner refuses is reported (one warning line, ``plan_error``) and the others are planned.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import shapely
import sqlalchemy as sa

from survey.registry.core import RegistryCore, parse_day
from survey.registry.custody import RISK_ORDER
from survey.registry.geometry import from_wkb, metric_crs, to_crs
from survey.registry.models import SiteRow, SurveyRow
from survey.registry.records import DueSite

if TYPE_CHECKING:
    from flightplans import PlanParams

__all__ = ["ScheduleMixin", "site_folder"]

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^\w.-]+")


def site_folder(name: str, site_id: int) -> str:
    """A folder name for a site's plan: its name with anything but letters, digits, ``.``,
    ``-`` and ``_`` replaced, prefixed by its id (names may differ only in those)."""
    slug = _UNSAFE.sub("_", name).strip("._") or "site"
    return f"{site_id:04d}-{slug[:80]}"


def last_survey_dates(up_to: dt.date | None = None) -> sa.Subquery:
    """(site_id, last) subquery: each site's last survey that counts for its cadence (any QC
    verdict but "fail"), on or before ``up_to`` when given. The schedule and the platform's
    site map both date a site's next survey from it."""
    query = sa.select(SurveyRow.site_id, sa.func.max(SurveyRow.date).label("last")).where(
        sa.or_(SurveyRow.qc_verdict.is_(None), SurveyRow.qc_verdict != "fail")
    )
    if up_to is not None:
        query = query.where(SurveyRow.date <= up_to)
    return query.group_by(SurveyRow.site_id).subquery()


class ScheduleMixin(RegistryCore):
    """The schedule (part of :class:`Registry`)."""

    def due_sites(self, date: str | dt.date | None = None) -> list[DueSite]:
        """The sites due for a survey on ``date`` (default today, UTC).

        Returns
        -------
        list of DueSite
            Most overdue first (never surveyed first of all), then high risk first, then name.
        """
        day = parse_day(date, "date") if date is not None else self.clock().date()
        last = last_survey_dates(day)
        query = sa.select(
            SiteRow.id,
            SiteRow.name,
            SiteRow.team,
            SiteRow.risk,
            SiteRow.cadence_days,
            last.c.last,
        ).outerjoin(last, last.c.site_id == SiteRow.id)
        with self._read() as s:
            rows = s.execute(query).all()
        due: list[DueSite] = []
        for site_id, name, team, risk, cadence, last_day in rows:
            if last_day is None:
                due.append(DueSite(site_id, name, team, risk, cadence, None, None, 0))
                continue
            if isinstance(last_day, str):  # SQLite returns max() of a date as text
                last_day = dt.date.fromisoformat(last_day)
            next_day = last_day + dt.timedelta(days=cadence)
            if next_day <= day:
                due.append(
                    DueSite(
                        site_id,
                        name,
                        team,
                        risk,
                        cadence,
                        last_day,
                        next_day,
                        (day - next_day).days,
                    )
                )
        due.sort(
            key=lambda d: (d.last_survey is not None, -d.overdue_days, -RISK_ORDER[d.risk], d.name)
        )
        return due

    def plan_due(
        self,
        out_dir: str | os.PathLike[str],
        date: str | dt.date | None = None,
        *,
        params: PlanParams | None = None,
    ) -> list[DueSite]:
        """Write a ready-to-fly plan for every site due on ``date`` under ``out_dir``.

        Parameters
        ----------
        out_dir : path
            Plans go to ``out_dir/<id>-<name>/`` (:func:`site_folder`): ``sortie-NN.plan``,
            ``sortie-NN.waypoints``, ``mission.geojson``, ``summary.json``.
        date : date or ISO 8601 text, optional
        params : PlanParams, optional
            Planning parameters; the site's ``gsd_cm`` replaces their GSD. Default
            ``PlanParams(gsd_cm=site.gsd_cm)``.

        Returns
        -------
        list of DueSite
            With ``plan_dir`` and ``plan_summary`` (or ``plan_error``) filled in.
        """
        from flightplans import PlanParams, plan_survey, write_mission_files
        from flightplans.errors import FlightPlanError

        due = self.due_sites(date)
        out = Path(out_dir)
        ids = [d.site_id for d in due]
        with self._read() as s:
            sites = (
                {r.id: r for r in s.scalars(sa.select(SiteRow).where(SiteRow.id.in_(ids))).all()}
                if ids
                else {}
            )
        planned: list[DueSite] = []
        for d in due:
            row = sites[d.site_id]
            boundary = from_wkb(row.boundary)
            crs = metric_crs(boundary)
            site_m = to_crs([boundary], crs)[0]
            nofly = (
                []
                if row.nofly is None
                else list(shapely.get_parts(to_crs([from_wkb(row.nofly)], crs)[0]))
            )
            p = (
                PlanParams(gsd_cm=row.gsd_cm)
                if params is None
                else replace(params, gsd_cm=row.gsd_cm, alt_m=None)
            )
            folder = out / site_folder(row.name, row.id)
            try:
                plan = plan_survey(site_m, p, crs=crs, nofly=nofly)
                write_mission_files(plan, folder)
            except FlightPlanError as exc:
                text = " ".join(str(exc).split())
                log.warning("site %r: no flight plan written (%s)", row.name, text)
                planned.append(replace(d, plan_error=text))
                continue
            summary = plan.summary()
            planned.append(
                replace(
                    d,
                    plan_dir=str(folder),
                    plan_summary={
                        k: summary[k]
                        for k in (
                            "n_sorties",
                            "n_photos",
                            "length_m",
                            "duration_s",
                            "alt_m",
                            "gsd_cm",
                        )
                        if k in summary
                    },
                )
            )
        return planned
