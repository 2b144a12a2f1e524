"""Fill coverage gaps that keep-out areas leave: short patch lines.

The band rule of :mod:`flightplans.grid` covers every point of the site when nothing blocks
the lines. A keep-out area (hole or no-fly zone grown by its margin) can hide a pocket of the
site from every line whose band holds it, e.g. a corner between two no-fly zones. Here the
nominal ground coverage of the transects (one rectangle per transect: its photo span grown by
half the front footprint along track and half the side footprint across) is subtracted from
the site; for each piece left over a short patch line is laid along the pass's bearing, at the
nearest offset (within what one footprint can reach) whose photo span stays clear of keep-out,
or failing that at 90°, 45° or 135° to it (a pocket open on one side only).
Pieces no line can reach without crossing keep-out stay uncovered and are logged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from flightplans.grid import Transect

__all__ = ["fill_gaps"]

log = logging.getLogger(__name__)


def _span_rectangles(
    transects: Sequence[Transect], trigger: float, side: float, front: float
) -> list[BaseGeometry]:
    out = []
    for t in transects:
        ph = t.photo_positions(trigger)
        d = np.asarray(t.direction())
        n = np.array([d[1], -d[0]])
        a = ph[0] - d * front / 2
        b = ph[-1] + d * front / 2
        w = n * side / 2
        out.append(shapely.polygons([a + w, b + w, b - w, a - w, a + w]))
    return out


def _patch(
    piece: BaseGeometry,
    keepout: BaseGeometry,
    bearing_deg: float,
    trigger: float,
    side: float,
    turnaround: float,
    pass_index: int,
) -> Transect | None:
    """A line along ``bearing_deg`` whose photos cover ``piece`` and that avoids keep-out."""
    t = math.radians(bearing_deg)
    d = np.array([math.sin(t), math.cos(t)])
    n = np.array([math.cos(t), -math.sin(t)])
    xy = shapely.get_coordinates(piece)
    u, v = xy @ d, xy @ n
    u0, u1 = float(u.min()), float(u.max())
    v0, v1 = float(v.min()), float(v.max())
    reach = side / 2 - (v1 - v0) / 2
    if reach < 0:
        return None
    vc = (v0 + v1) / 2
    steps = np.linspace(0.0, reach, max(2, math.ceil(reach / 2.0) + 1))
    offsets = np.concatenate([[0.0], np.ravel(np.column_stack([steps[1:], -steps[1:]]))])
    count = max(0, math.ceil((u1 - u0) / trigger - 1e-9))
    end_u = u0 + count * trigger + min(0.05, 0.05 * trigger)
    for off in offsets:
        vv = vc + off
        for lead in (turnaround, 0.0):
            p0 = (u0 - lead) * d + vv * n
            p1 = (end_u + lead) * d + vv * n
            if not shapely.intersects(keepout, shapely.linestrings([p0, p1])):
                s_xy, e_xy = u0 * d + vv * n, end_u * d + vv * n
                return Transect(
                    pass_index,
                    0,
                    (float(s_xy[0]), float(s_xy[1])),
                    (float(e_xy[0]), float(e_xy[1])),
                    lead,
                    lead,
                )
    return None


def fill_gaps(
    target: BaseGeometry,
    keepout: BaseGeometry,
    transects: Sequence[Transect],
    bearing_deg: float,
    *,
    trigger: float,
    side: float,
    front: float,
    turnaround: float,
    pass_index: int,
) -> list[Transect]:
    """Patch transects for the parts of ``target`` that ``transects`` leave unphotographed.

    Parameters
    ----------
    target
        Area to photograph (metric CRS).
    keepout
        Area never to fly over.
    transects
        The lines laid so far (one pass).
    bearing_deg
        Their bearing; patches use it too.
    trigger, side, front, turnaround
        Trigger distance, side and front footprint, turnaround (m).
    pass_index
        Pass the patches belong to.

    Returns
    -------
    list of Transect
        The patches; ``line_index`` is that of the nearest regular line.
    """
    if not transects:
        return []
    shrink = 0.98  # a little inside the nominal footprint
    covered = shapely.union_all(_span_rectangles(transects, trigger, side * shrink, front * shrink))
    left = shapely.difference(target, covered)
    pieces = [p for p in shapely.get_parts(left) if p.area > 0.5]
    if not pieces:
        return []
    shapely.prepare(keepout)
    line_xy = np.array([tr.start for tr in transects])
    line_k = np.array([tr.line_index for tr in transects])
    patches: list[Transect] = []
    for piece in pieces:
        patch = None
        # the pass's bearing first; a pocket open to one side only may need another
        for b in (bearing_deg, bearing_deg + 90.0, bearing_deg + 45.0, bearing_deg + 135.0):
            patch = _patch(piece, keepout, b, trigger, side * shrink, turnaround, pass_index)
            if patch is not None:
                break
        if patch is None:
            log.warning(
                "a %.0f m² pocket of the site cannot be photographed without flying over a "
                "no-fly zone or hole; left unphotographed",
                piece.area,
            )
            continue
        near = int(np.argmin(np.hypot(*(line_xy - np.asarray(patch.start)).T)))
        patches.append(
            Transect(
                pass_index,
                int(line_k[near]),
                patch.start,
                patch.end,
                patch.lead_in,
                patch.lead_out,
            )
        )
    return patches
