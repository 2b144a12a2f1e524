"""Progress a person can watch: the named stages of a long command, as they run.

The pipelines name their stages (``with stage("co-register"): ...``); the command line
decides how they are shown (``with reporting(quiet=...)``), one of three ways:

* on a terminal (stderr is a tty): a tqdm bar per stage, left on screen with its time when
  the stage ends; a stage that counts its work (``total=`` and :meth:`Stage.advance`, or the
  tasks of the dask graphs it computes with ``dask_tasks=True``) shows how far it is, the
  others their running time;
* otherwise (a log file, a pipe, click's ``CliRunner``): one line per stage when it ends,
  ``<command>: <stage> <seconds> s``;
* under ``-q``, or when nothing set up reporting (a library call): nothing.

A stage that raises leaves nothing behind (no line, its bar cleared): the error is then the
one line the user reads.

Only the thread that entered :func:`reporting` reports (a context variable); work in other
threads may still :meth:`Stage.advance` a stage it was handed. The chunked work of dask on
its local schedulers is counted through a ``dask.callbacks.Callback``; a dask.distributed
cluster shows its progress on its own dashboard instead.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO, TypeVar

__all__ = ["Reporter", "Stage", "quiet_option", "reporting", "stage"]

Mode = Literal["bar", "lines", "off"]

_F = TypeVar("_F", bound=Callable[..., Any])

#: Seconds between two refreshes of a bar that does not count its work (its running time).
_TICK_S = 0.5


@dataclass
class Reporter:
    """Where and how stages are shown: ``mode`` is ``"bar"``, ``"lines"`` or ``"off"``.

    Attributes
    ----------
    mode : str
    stream : text stream
        Where the bars or lines go (stderr).
    command : str
        Prefix of each line (``"detect"``), empty for none.
    done : list of (str, float)
        The stages finished so far with their wall time in seconds.
    """

    mode: Mode = "off"
    stream: TextIO | None = None
    command: str = ""
    done: list[tuple[str, float]] = field(default_factory=list)


_OFF = Reporter()
_current: contextvars.ContextVar[Reporter] = contextvars.ContextVar("sitewatch_progress")


@contextlib.contextmanager
def reporting(
    *, quiet: bool, command: str = "", stream: TextIO | None = None
) -> Iterator[Reporter]:
    """Show the stages run inside this block (in this thread).

    Parameters
    ----------
    quiet : bool
        Show nothing (``-q``).
    command : str
        Name put before each line when stderr is not a terminal (``"detect"``).
    stream : text stream, optional
        Where to show them (default ``sys.stderr`` as it is when the block is entered, so
        click's ``CliRunner`` captures it).

    Yields
    ------
    Reporter
    """
    out = sys.stderr if stream is None else stream
    mode: Mode = "off" if quiet else ("bar" if _is_terminal(out) else "lines")
    reporter = Reporter(mode=mode, stream=out, command=command)
    token = _current.set(reporter)
    try:
        yield reporter
    finally:
        _current.reset(token)


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # a closed stream
        return False


class Stage:
    """One running stage: :meth:`advance` counts its work when it has a ``total``."""

    def __init__(self, name: str, bar: Any = None) -> None:
        self.name = name
        self._bar = bar

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units of the stage's work done (thread-safe)."""
        if self._bar is not None:
            self._bar.update(n)

    def add_total(self, n: int) -> None:
        """The stage has ``n`` more units of work than it said (thread-safe)."""
        bar = self._bar
        if bar is None:
            return
        with bar.get_lock():
            bar.total = (bar.total or 0) + n
            bar.bar_format = _COUNTED
        bar.refresh()


@contextlib.contextmanager
def stage(name: str, total: int | None = None, *, dask_tasks: bool = False) -> Iterator[Stage]:
    """Run a named stage and show it as :func:`reporting` asked (nothing by default).

    Parameters
    ----------
    name : str
        What the stage does, as a person reads it (``"co-register"``).
    total : int, optional
        Units of work the stage will :meth:`Stage.advance` through (its bar shows them).
    dask_tasks : bool
        Count the tasks of the dask graphs computed inside the stage on dask's local
        schedulers (the chunked work) as its work.

    Yields
    ------
    Stage
    """
    reporter = _current.get(_OFF)
    if reporter.mode == "off":
        yield Stage(name)
        return
    t0 = time.perf_counter()
    bar = _open_bar(reporter, name, total)
    running = Stage(name, bar)
    ticker = _Ticker(bar) if bar is not None else None
    counter: contextlib.AbstractContextManager[Any] = (
        _dask_counter(running) if bar is not None and dask_tasks else contextlib.nullcontext()
    )
    failed = True
    try:
        with counter:
            yield running
        failed = False
    finally:
        if ticker is not None:
            ticker.stop()
        _finish(reporter, name, time.perf_counter() - t0, bar, failed=failed)


def _finish(reporter: Reporter, name: str, seconds: float, bar: Any, *, failed: bool) -> None:
    """Leave the stage's bar (or write its line) with its time; a stage that failed leaves
    nothing, so that the error is the one line the user reads."""
    if bar is not None:
        bar.leave = not failed
        bar.close()
        if not failed:
            reporter.done.append((name, seconds))
        return
    if failed:
        return
    reporter.done.append((name, seconds))
    if reporter.stream is not None:
        prefix = f"{reporter.command}: " if reporter.command else ""
        print(f"{prefix}{name} {seconds:.1f} s", file=reporter.stream, flush=True)


#: A bar that counts its work, and one that shows only its running time (no count yet).
_COUNTED = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]"
_TIMED = "{desc}: {elapsed}"


def _open_bar(reporter: Reporter, name: str, total: int | None) -> Any:
    """A tqdm bar for the stage on a terminal; None in lines mode."""
    if reporter.mode != "bar":
        return None
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=name,
        file=reporter.stream,
        leave=True,
        bar_format=_TIMED if total is None else _COUNTED,
        dynamic_ncols=True,
        mininterval=0.2,
    )


class _Ticker:
    """Refresh a bar twice a second, so its running time moves between counts."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sitewatch-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(_TICK_S):
            self._bar.refresh()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def _dask_counter(running: Stage) -> Iterator[None]:
    """Count the tasks of every dask graph computed in the block (local schedulers)."""
    from dask.callbacks import Callback

    class _Count(Callback):
        def _start_state(self, dsk: Any, state: dict[str, Any]) -> None:
            running.add_total(sum(len(state[k]) for k in ("ready", "waiting", "running")))

        def _posttask(self, *_args: Any) -> None:
            running.advance()

    with _Count():
        yield


def quiet_option(func: _F) -> _F:
    """The ``-q/--quiet`` option of a command: the same as ``sitewatch -q`` (no progress, no
    summary, warnings off), for those who put it after the command name."""
    import logging

    import click

    def callback(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        if value:
            root = ctx.find_root()
            root.ensure_object(dict)
            root.obj["quiet"] = True
            for name in ("sitewatch", "survey", "flightplans", "change_detection", "maps"):
                logger = logging.getLogger(name)
                logger.setLevel(max(logger.getEffectiveLevel(), logging.ERROR))
        return value

    option = click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=callback,
        help="No progress and no summary; warnings off (as sitewatch -q).",
    )
    return option(func)
