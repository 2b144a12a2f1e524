"""Split an ordered route into sorties that each fit one battery.

A sortie is home → (routed transit) → transects in route order, with the routed transits
between them → (routed transit) → home. Its time is the polyline time of that path (cruise
speed, turn model of :mod:`flightplans.ordering`) plus a fixed overhead (takeoff climb and
landing descent) plus per-transect extras (hover-and-capture stops). Transects are added to
the current sortie while the whole sortie, return included, fits the usable battery time;
splits therefore fall at line ends and every sortie is complete on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from flightplans.errors import PlanParameterError
from flightplans.grid import Transect
from flightplans.ordering import polyline_time

__all__ = ["sortie_path", "split_sorties"]

PathFn = Callable[[tuple[float, float], tuple[float, float]], np.ndarray]


def sortie_path(
    transects: Sequence[Transect], home: tuple[float, float], path: PathFn
) -> np.ndarray:
    """(n, 2) polyline of one sortie, home to home, transits routed by ``path``."""
    parts: list[np.ndarray] = []
    pos = home
    for t in transects:
        parts.append(path(pos, t.entry())[:-1])
        parts.append(np.array([t.entry(), t.start, t.end, t.exit()]))
        pos = t.exit()
    parts.append(path(pos, home))
    return np.vstack(parts)


def _appended_time(acc: np.ndarray, new: np.ndarray, speed: float, accel: float) -> float:
    """Time added to polyline ``acc`` by appending points ``new`` (turn at the joint too)."""
    if len(new) == 0:
        return 0.0
    tail = acc[-1:]
    for k in range(len(acc) - 2, -1, -1):  # the last point distinct from acc[-1]
        if np.hypot(*(acc[k] - acc[-1])) > 1e-6:
            tail = np.vstack([acc[k], acc[-1]])
            break
    with_tail = polyline_time(np.vstack([tail, new]), speed, accel)
    return with_tail - polyline_time(tail, speed, accel)


def split_sorties(
    ordered: Sequence[Transect],
    home: tuple[float, float],
    path: PathFn,
    *,
    speed: float,
    accel: float,
    budget_s: float,
    overhead_s: float,
    extra_s: Sequence[float],
) -> list[list[Transect]]:
    """Greedy split of ``ordered`` into battery-sized sorties.

    Raises
    ------
    PlanParameterError
        One transect alone, with its transits, does not fit ``budget_s``.
    """
    sorties: list[list[Transect]] = []
    i, n = 0, len(ordered)
    while i < n:
        current: list[Transect] = []
        acc = np.asarray([home], dtype=np.float64)  # path so far, without the return
        acc_t = 0.0
        extra = 0.0
        j = i
        pos = home
        while j < n:
            t = ordered[j]
            step = np.vstack([path(pos, t.entry())[1:], [t.start, t.end, t.exit()]])
            step_t = _appended_time(acc, step, speed, accel)
            back = path(t.exit(), home)
            back_t = _appended_time(np.vstack([acc, step]), back[1:], speed, accel)
            total = acc_t + step_t + back_t + overhead_s + extra + extra_s[j]
            if total > budget_s:
                break
            current.append(t)
            acc = np.vstack([acc, step])
            acc_t += step_t
            extra += extra_s[j]
            pos = t.exit()
            j += 1
        if not current:
            t1 = (
                polyline_time(sortie_path([ordered[i]], home, path), speed, accel)
                + overhead_s
                + extra_s[i]
            )
            raise PlanParameterError(
                f"one flight line alone needs {t1 / 60:.1f} min with the transit from and to "
                f"home, more than the {budget_s / 60:.1f} usable battery minutes; raise "
                "--battery-min, move --home closer or fly faster (--speed-ms)"
            )
        sorties.append(current)
        i = j
    return sorties
