"""Uploading a survey (a flight log and photos, or an ODM project as a zip) and watching its
job: the form, the checks, the queue, the progress bar and the result page."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from survey.web import queries, uploads
from survey.web.app import Platform
from survey.web.db import audit, reading
from survey.web.errors import UploadRejected
from survey.web.jobs import create_job, job_row
from survey.web.models import JobRow, UserRow
from survey.web.rendering import render
from survey.web.security import MayUpload, MayViewJobs, Principal

__all__ = ["job_dict", "own_job", "router", "visible_jobs"]

router = APIRouter()


def platform(request: Request) -> Platform:
    out: Platform = request.app.state.platform
    return out


def _form(request: Request, who: Principal, error: str | None, status: int) -> Response:
    sites = queries.visible_sites(platform(request).engine, who.user)
    return render(request, "upload.html", http_status=status, sites=sites, error=error)


@router.get("/upload", name="upload_form", response_class=HTMLResponse)
def upload_form(request: Request, who: MayUpload) -> Response:
    return _form(request, who, None, 200)


def _keep_flight(
    folder: Path, log: UploadFile | None, photos: list[UploadFile], limit: int
) -> list[str]:
    if log is None or not log.filename:
        raise UploadRejected("no flight log given; choose the .tlog, .bin or .ulg of the flight")
    (folder / "log").mkdir()
    (folder / "images").mkdir()
    name = uploads.safe_name(log.filename, "flight log")
    target = folder / "log" / name
    uploads.save_stream(log.file, target, limit, name=log.filename)
    uploads.check_log(target, log.filename)
    real_photos = [p for p in photos if p.filename]
    if not real_photos:
        raise UploadRejected("no photos given; choose the flight's JPEG or TIFF photos")
    names = [name]
    for photo in real_photos:
        pname = uploads.safe_name(photo.filename, "photo")
        target = folder / "images" / pname
        if target.exists():
            raise UploadRejected(f"{photo.filename}: two photos with this name; rename one")
        uploads.save_stream(photo.file, target, limit, name=str(photo.filename))
        uploads.check_image(target, str(photo.filename))
        names.append(pname)
    return names


def _keep_odm(folder: Path, odm: UploadFile | None, limit: int, unpacked: int) -> list[str]:
    if odm is None or not odm.filename:
        raise UploadRejected("no zip given; zip the OpenDroneMap project folder and choose it")
    shown = str(odm.filename)
    archive = folder / "upload.zip"
    uploads.save_stream(odm.file, archive, limit, name=shown)
    (folder / "odm").mkdir()
    written = uploads.unpack_zip(archive, folder / "odm", unpacked, shown=shown)
    archive.unlink()
    return [p.relative_to(folder / "odm").as_posix() for p in written]


@router.post("/upload", name="upload", response_class=HTMLResponse)
def upload(
    request: Request,
    who: MayUpload,
    site: Annotated[str, Form(max_length=200)],
    date: Annotated[str, Form(max_length=10)],
    kind: Annotated[str, Form(max_length=8)] = "flight",
    log: Annotated[UploadFile | None, File()] = None,
    photos: Annotated[list[UploadFile] | None, File()] = None,
    odm: Annotated[UploadFile | None, File()] = None,
) -> Response:
    p = platform(request)
    if site not in {s.name for s in queries.visible_sites(p.engine, who.user)}:
        return _form(request, who, f"site {site!r} is not one of your team's sites", 400)
    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        return _form(request, who, f"date {date!r} is not a date; write YYYY-MM-DD", 400)
    if kind not in ("flight", "odm"):
        return _form(request, who, f"kind {kind!r} is not 'flight' or 'odm'", 400)
    folder = p.config.folder("jobs") / uuid.uuid4().hex
    folder.mkdir(mode=0o700)
    limit = p.config.max_upload_bytes
    try:
        if kind == "flight":
            names = _keep_flight(folder, log, photos or [], limit)
        else:
            names = _keep_odm(folder, odm, limit, p.config.max_unpacked_bytes)
    except UploadRejected as exc:
        uploads.remove_folder(folder)
        return _form(request, who, str(exc), 400)
    except BaseException:
        uploads.remove_folder(folder)
        raise
    job_id = create_job(
        p.engine, user_id=who.user.user_id, site=site, date=day, kind=kind, folder=folder
    )
    audit(
        p.registry(who.user.username),
        "upload",
        operator=who.user.username,
        parameters={"job": job_id, "site": site, "date": day.isoformat(), "kind": kind,
                    "files": names[:1000]},
    )  # fmt: skip
    p.enqueue(job_id)
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


def visible_jobs(p: Platform, who: Principal, limit: int = 200) -> list[tuple[JobRow, str]]:
    """Jobs ``who`` may see (an operator: their own), newest first."""
    query = (
        sa.select(JobRow, UserRow.username)
        .join(UserRow, UserRow.id == JobRow.user_id)
        .order_by(JobRow.id.desc())
        .limit(limit)
    )
    if who.user.role == "operator":
        query = query.where(JobRow.user_id == who.user.user_id)
    with reading(p.engine) as s:
        return [(r[0], r[1]) for r in s.execute(query).all()]


def own_job(p: Platform, who: Principal, job_id: int) -> tuple[JobRow, str]:
    """The job if ``who`` may see it (404 otherwise)."""
    found = job_row(p.engine, job_id)
    if found is None or (who.user.role == "operator" and found[0].user_id != who.user.user_id):
        raise HTTPException(404, f"no job {job_id} that you may see")
    return found


def job_dict(job: JobRow, username: str) -> dict[str, Any]:
    """A job as the API and the progress bar see it."""

    def iso(value: dt.datetime | None) -> str | None:
        return None if value is None else value.isoformat().replace("+00:00", "Z")

    return {
        "job_id": job.id,
        "user": username,
        "site": job.site,
        "date": job.date.isoformat(),
        "kind": job.kind,
        "status": job.status,
        "progress": round(float(job.progress), 3),
        "stage": job.stage,
        "message": job.message,
        "survey_id": job.survey_id,
        "result": job.result,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
    }


@router.get("/jobs", name="jobs_page", response_class=HTMLResponse)
def jobs_page(request: Request, who: MayViewJobs) -> Response:
    return render(request, "jobs.html", jobs=visible_jobs(platform(request), who))


@router.get("/jobs/{job_id}", name="job_page", response_class=HTMLResponse)
def job_page(request: Request, job_id: int, who: MayViewJobs) -> Response:
    job, username = own_job(platform(request), who, job_id)
    return render(request, "job.html", job=job, owner=username)


@router.get("/jobs/{job_id}/status", name="job_status")
def job_status(request: Request, job_id: int, who: MayViewJobs) -> dict[str, Any]:
    return job_dict(*own_job(platform(request), who, job_id))
