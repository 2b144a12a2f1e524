"""Choosing the model from the tie points (RANSAC, BIC), its confidence, and failing plainly."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from change_detection.coregistration.coarse import _COARSE_DOUBT, _Coarse, _replace_coarse
from change_detection.coregistration.lines import _REPEAT_CONFIDENCE, _REPEAT_RATIO
from change_detection.coregistration.models import (
    _apply_affine,
    _bic,
    _Fit,
    _fit_affine,
    _fit_model,
    _predict_residual,
    _ransac_affine,
    _ransac_translation,
)
from change_detection.coregistration.params import CoregParams
from change_detection.coregistration.result import CoregResult, _Mapping, translation_mapping
from change_detection.coregistration.tiepoints import _local_consistency
from change_detection.errors import CoregistrationError

log = logging.getLogger(__name__)


def _fit(
    table: np.ndarray,
    grid: tuple[int, int],
    shape: tuple[int, int],
    coarse: _Coarse,
    warnings: list[str],
    params: CoregParams,
) -> CoregResult:
    """The model of a measured tie-point table: screen the candidates, find the robust
    evaluation set, choose the model by the BIC, fit it on its inliers and score it.

    ``table`` (TIEPOINT_DTYPE, row-major over ``grid``) gets its ``status``, ``used`` and
    residual columns filled; ``warnings`` is appended to.
    """
    rng = np.random.default_rng(params.seed)
    p_all = np.column_stack([table["x"], table["y"]])
    q_all = p_all - np.column_stack([table["dx"], table["dy"]])
    n_meas = int(np.isin(table["status"], ("candidate", "ambiguous", "weak", "edge")).sum())
    n_amb = int((table["status"] == "ambiguous").sum())
    if n_amb > 0.3 * max(n_meas, 1):
        warnings.append(
            f"{n_amb} of {n_meas} tie windows have several similar correlation peaks "
            "(repeating pattern); their shifts were not used"
        )
    idx = np.flatnonzero(_consistent_candidates(table, grid, p_all, q_all, params, rng))
    if idx.size < params.min_tiepoints:
        return _failure(table, shape, coarse, warnings, params, n_meas)
    p, q = p_all[idx], q_all[idx]
    keep = _evaluation_set(p, q, shape, params, rng)
    if keep.sum() < params.min_tiepoints:
        table["status"][idx] = "outlier"
        return _failure(table, shape, coarse, warnings, params, n_meas)
    chosen, fit, used, scores = _choose_model(p, q, keep, shape, params)
    res = _predict_residual(fit.mapping, p, q)
    table["status"][idx] = np.where(used, "used", "outlier")
    table["used"][idx] = used
    # residual in shift units: measured shift - model shift = -(q_meas - q_model)
    table["res_x"][idx] = -res[:, 0]
    table["res_y"][idx] = -res[:, 1]
    n_used = int(used.sum())
    rmse = float(np.sqrt(np.mean(np.sum(res[used] ** 2, axis=1))))
    mapping = fit.mapping
    cx, cy = (shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0
    qx, qy = mapping.pull(np.array([cx]), np.array([cy]))
    sx, sy = float(cx - qx[0]), float(cy - qy[0])
    coarse = _weigh_coarse_doubt(coarse, (sx, sy), n_used, n_meas, warnings)
    confidence = _confidence(table, used, p[used], rmse, shape, n_meas, coarse, params)
    confidence = _repeat_doubt(coarse, confidence, warnings)
    _warn_about_agreement(n_used, n_meas, confidence, params, warnings)
    return CoregResult(
        shift_x_px=sx,
        shift_y_px=sy,
        model=chosen,
        parameters=_parameters(mapping, sx, sy, scores),
        rmse_px=rmse,
        n_tiepoints=int(table.size),
        n_used=n_used,
        confidence=confidence,
        warnings=tuple(warnings),
        tiepoints=table,
        shape=shape,
        coarse_shift_px=coarse.shift,
        representation=coarse.representation,
        mapping=mapping,
    )


def _consistent_candidates(
    table: np.ndarray,
    grid: tuple[int, int],
    p_all: np.ndarray,
    q_all: np.ndarray,
    params: CoregParams,
    rng: np.random.Generator,
) -> np.ndarray:
    """Candidates (bool, per row of ``table``) that agree with their grid neighbours after
    removing a loose RANSAC affine trend; the others are marked "inconsistent"."""
    cand = table["status"] == "candidate"
    if cand.sum() < max(params.min_tiepoints, 3):
        return cand
    loose = max(4 * params.ransac_threshold_px, 3.0)
    idx = np.flatnonzero(cand)
    inl = _ransac_affine(p_all[idx], q_all[idx], loose, rng)
    if inl.sum() < 3:
        return cand
    trend = _fit_affine(p_all[idx][inl], q_all[idx][inl])
    detr = q_all - _apply_affine(trend, p_all)
    cons = _local_consistency(detr, cand, grid, params.consistency_px, loose)
    table["status"][cand & ~cons] = "inconsistent"
    return cons


def _evaluation_set(
    p: np.ndarray,
    q: np.ndarray,
    shape: tuple[int, int],
    params: CoregParams,
    rng: np.random.Generator,
) -> np.ndarray:
    """The robust evaluation set (bool, per point): inliers of the most flexible model
    allowed, refined up to four times with a threshold from their median residual."""
    thr = params.ransac_threshold_px
    flex = (
        "warp"
        if params.model in ("auto", "warp") and p.shape[0] >= 16
        else ("affine" if params.model in ("auto", "affine", "warp") else "translation")
    )
    if flex == "translation":
        keep = _ransac_translation(p, q, thr)
    else:
        keep = _ransac_affine(p, q, max(2 * thr, 2.0) if flex == "warp" else thr, rng)
        if flex == "warp":
            keep = np.ones(p.shape[0], bool) if keep.sum() < 0.5 * p.shape[0] else keep
    for _ in range(4):
        if keep.sum() < params.min_tiepoints:
            break
        fit = _fit_model(flex, p[keep], q[keep], shape, params.warp_smoothness)
        full = _predict_residual(fit.mapping, p, q)
        e = np.hypot(full[:, 0], full[:, 1])
        mad = 1.4826 * float(np.median(e[keep])) if keep.any() else thr
        new = e <= max(min(thr, 3 * mad + 0.05), 0.1) if flex != "translation" else e <= thr
        if np.array_equal(new, keep):
            break
        keep = new
    return keep


def _choose_model(
    p: np.ndarray,
    q: np.ndarray,
    keep: np.ndarray,
    shape: tuple[int, int],
    params: CoregParams,
) -> tuple[str, _Fit, np.ndarray, dict[str, float]]:
    """The model with the lowest BIC on the evaluation set ``keep``, refitted on its own
    inliers: (name, fit, used points (bool per point), BIC of each candidate model)."""
    thr = params.ransac_threshold_px
    pe, qe = p[keep], q[keep]
    candidates = ["translation", "affine", "warp"] if params.model == "auto" else [params.model]
    if pe.shape[0] < 16:
        candidates = [c for c in candidates if c != "warp"] or ["affine"]
    fits = {c: _fit_model(c, pe, qe, shape, params.warp_smoothness) for c in candidates}
    scores = {c: _bic(f.residual, f.dof) for c, f in fits.items()}
    chosen = min(scores, key=lambda c: scores[c])
    log.debug("model scores (BIC): %s -> %s", scores, chosen)
    used = keep.copy()
    fit = fits[chosen]
    for _ in range(3):
        res = _predict_residual(fit.mapping, p, q)
        new = np.hypot(res[:, 0], res[:, 1]) <= thr
        if new.sum() < params.min_tiepoints or np.array_equal(new, used):
            break
        used = new
        fit = _fit_model(chosen, p[used], q[used], shape, params.warp_smoothness)
    return chosen, fit, used, scores


def _weigh_coarse_doubt(
    coarse: _Coarse, shift: tuple[float, float], n_used: int, n_meas: int, warnings: list[str]
) -> _Coarse:
    """Warn when the tie points' shift disagrees with a reliable whole-image one; withdraw
    the doubt about an unreliable whole-image peak when most tie windows agree."""
    sx, sy = shift
    if coarse.reliable and math.hypot(sx - coarse.shift[0], sy - coarse.shift[1]) > max(
        2.0 * coarse.factor, 3.0
    ):
        warnings.append(
            f"the tie points' shift ({sx:.1f}, {sy:.1f}) px disagrees with the whole-image "
            f"estimate ({coarse.shift[0]:.1f}, {coarse.shift[1]:.1f}) px"
        )
    if not coarse.reliable and n_used >= max(20, 0.5 * n_meas):
        # The whole-image peak was doubtful (and not used), but most tie windows have one
        # clear peak each and agree on one model: they settled it, so the doubt is withdrawn.
        warnings[:] = [w for w in warnings if not w.startswith(_COARSE_DOUBT)]
        coarse = _replace_coarse(coarse, reliable=True)
    return coarse


def _warn_about_agreement(
    n_used: int, n_meas: int, confidence: float, params: CoregParams, warnings: list[str]
) -> None:
    """Warnings about few reliable tie points, poor agreement and low confidence."""
    if n_used < 2 * params.min_tiepoints:
        warnings.append(f"only {n_used} tie points were reliable")
    if n_meas and n_used < 0.3 * n_meas:
        warnings.append(
            f"only {n_used} of {n_meas} measurable tie windows agree; the images may differ "
            "too much (different kind of image, large changes or shadows)"
        )
    if confidence < 0.5:
        warnings.append(f"low co-registration confidence ({confidence:.2f}); check the result")


def _repeat_doubt(coarse: _Coarse, confidence: float, warnings: list[str]) -> float:
    """Confidence capped at :data:`_REPEAT_CONFIDENCE`, and a warning, when line work
    repeats itself (see :func:`_self_repeat`)."""
    for side, repeat in (("reference", coarse.reference_repeat), ("target", coarse.target_repeat)):
        if repeat is not None and repeat[0] >= _REPEAT_RATIO:
            warnings.append(
                f"the {side}'s line work repeats itself every ({repeat[1]:.0f}, "
                f"{repeat[2]:.0f}) px (x, y), a regular pattern: a shift by whole repeats "
                "cannot be told apart, so the result may be off by one"
            )
            confidence = min(confidence, _REPEAT_CONFIDENCE)
    return confidence


def _confidence(
    table: np.ndarray,
    used: np.ndarray,
    pu: np.ndarray,
    rmse: float,
    shape: tuple[int, int],
    n_meas: int,
    coarse: _Coarse,
    params: CoregParams,
) -> float:
    """Confidence in 0..1 as a product of plain factors.

    count: 1 - exp(-n_used / 8); agreement: (n_used / measurable windows) ** 0.5;
    residual: 1 / (1 + (rmse / 0.5 px) ** 2); spread: share of the 3x3 cells of the used
    tie points' bounding grid that hold a used tie point, ** 0.5; capped at 0.3 when the
    whole-image peak was ambiguous and the tie points were few.
    """
    n_used = int(used.sum())
    c_count = 1.0 - math.exp(-n_used / 8.0)
    c_agree = math.sqrt(n_used / max(n_meas, n_used, 1))
    c_res = 1.0 / (1.0 + (rmse / 0.5) ** 2)
    meas = table[
        np.isin(table["status"], ("used", "outlier", "inconsistent", "ambiguous", "weak", "edge"))
    ]
    if meas.size:
        x0, x1 = float(meas["x"].min()), float(meas["x"].max())
        y0, y1 = float(meas["y"].min()), float(meas["y"].max())
        cx = np.clip(((pu[:, 0] - x0) / max(x1 - x0, 1e-9) * 3).astype(int), 0, 2)
        cy = np.clip(((pu[:, 1] - y0) / max(y1 - y0, 1e-9) * 3).astype(int), 0, 2)
        nx = 3 if x1 - x0 > params.window_px else 1
        ny = 3 if y1 - y0 > params.window_px else 1
        cells = len({(int(a) * ny // 3, int(b) * nx // 3) for a, b in zip(cy, cx, strict=True)})
        c_spread = math.sqrt(cells / (nx * ny))
    else:
        c_spread = 0.0
    conf = c_count * c_agree * c_res * c_spread
    if not coarse.reliable and coarse.ratio > params.max_peak_ratio and n_used < 20:
        conf = min(conf, 0.3)
    return float(np.clip(conf, 0.0, 1.0))


def _parameters(
    mapping: _Mapping, sx: float, sy: float, scores: dict[str, float]
) -> dict[str, Any]:
    m = mapping.matrix
    out: dict[str, Any] = {"shift_x_px": sx, "shift_y_px": sy}
    if mapping.kind in ("affine", "warp"):
        a = m[:, :2]
        # push map (target -> reference) is the inverse of the pull map
        ainv = np.linalg.inv(a)
        push = np.column_stack([ainv, -ainv @ m[:, 2]])
        out["pull_matrix"] = m.tolist()
        out["push_matrix"] = push.tolist()
        out["rotation_deg"] = float(math.degrees(math.atan2(push[1, 0], push[0, 0])))
        out["scale_x"] = float(math.hypot(push[0, 0], push[1, 0]))
        out["scale_y"] = float(math.hypot(push[0, 1], push[1, 1]))
    if mapping.kind == "warp":
        assert mapping.grid_x is not None and mapping.grid_y is not None
        assert mapping.field is not None
        out["grid_x"] = mapping.grid_x.tolist()
        out["grid_y"] = mapping.grid_y.tolist()
        out["grid_dx"] = mapping.field[0].tolist()
        out["grid_dy"] = mapping.field[1].tolist()
        out["max_warp_px"] = float(np.abs(mapping.field).max())
    out["bic"] = {k: float(v) for k, v in scores.items()}
    return out


def _windows_agreeing(
    table: np.ndarray, shift: tuple[float, float], params: CoregParams
) -> tuple[int, int]:
    """How many tie windows with a clear peak (measured, not weak) lie within
    ``consistency_px`` of ``shift`` (x, y), and how many have a clear peak."""
    clear = ~np.isin(table["status"], ("nodata", "featureless", "weak"))
    clear &= np.isfinite(table["dx"]) & np.isfinite(table["dy"])
    off = np.hypot(table["dx"][clear] - shift[0], table["dy"][clear] - shift[1])
    return int((off <= params.consistency_px).sum()), int(clear.sum())


def _failure(
    table: np.ndarray,
    shape: tuple[int, int],
    coarse: _Coarse,
    warnings: list[str],
    params: CoregParams,
    n_meas: int,
) -> CoregResult:
    counts = {s: int((table["status"] == s).sum()) for s in np.unique(table["status"])}
    why = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    msg = (
        f"no reliable co-registration: fewer than {params.min_tiepoints} consistent tie points "
        f"({why})"
    )
    if params.strict:
        raise CoregistrationError(
            msg + "; the images may be featureless, periodic or too different; try a larger "
            "--window-px or check that both rasters show the same site"
        )
    agree, clear = _windows_agreeing(table, coarse.shift, params)
    if coarse.reliable and 2 * agree >= clear:
        # Too few windows for a model, but none or only a minority of those with a clear
        # peak contradict the whole-image peak (weak windows are noise and cannot): a
        # raster too small for strong windows, sparse line work.
        sx, sy = coarse.shift
        conf = 0.2
        model = "translation"
        warnings.append(msg + "; only the coarse whole-image shift was applied")
    elif coarse.reliable:
        # Most windows with a clear peak put it elsewhere: the whole-image peak is not
        # corroborated locally (an already aligned pair whose changes or relief pull the
        # global peak), and an unconfirmed estimate does not move the target.
        sx, sy = 0.0, 0.0
        conf = 0.0
        model = "identity"
        warnings.append(
            msg + f"; the coarse whole-image shift ({coarse.shift[0]:.2f}, "
            f"{coarse.shift[1]:.2f}) px was not applied, as only {agree} of the {clear} "
            "tie windows with a clear peak agree with it; the target was left unshifted"
        )
    else:
        sx, sy = 0.0, 0.0
        conf = 0.0
        model = "identity"
        warnings.append(msg + "; the target was left unshifted")
    return CoregResult(
        shift_x_px=sx,
        shift_y_px=sy,
        model=model,
        parameters={"shift_x_px": sx, "shift_y_px": sy},
        rmse_px=float("nan"),
        n_tiepoints=int(table.size),
        n_used=0,
        confidence=conf,
        warnings=tuple(warnings),
        tiepoints=table,
        shape=shape,
        coarse_shift_px=coarse.shift,
        representation=coarse.representation,
        mapping=translation_mapping(sx, sy),
    )
