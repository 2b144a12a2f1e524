"""The ``sitewatch`` command line.

Each subcommand lives in its own module of this package and exposes a click command named
``command``; the module name is the subcommand name (``survey/cli/coregister.py`` gives
``sitewatch coregister``). Modules are imported only when their command runs, so
``sitewatch --help`` stays fast and one broken optional stack cannot break the others.

Library errors (``SurveyError``, ``FlightPlanError``, ``ChangeDetectionError``, ``MapError``
and plain ``OSError``) become one line on stderr and exit code 1; usage errors (bad flag
values, missing options) become one line and exit code 2.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
from typing import Any

import click

from survey import __version__

__all__ = ["EXIT_ERROR", "EXIT_USAGE", "main", "run"]

EXIT_ERROR = 1
EXIT_USAGE = 2

log = logging.getLogger("sitewatch")


# Commands whose module cannot carry the command's name: ``survey/cli/run.py`` would replace
# this package's ``run`` function with the module once imported (``from survey.cli import run``).
_MODULE_OF = {"run": "run_survey"}
_COMMAND_OF = {module: command for command, module in _MODULE_OF.items()}


def _command_names() -> list[str]:
    return sorted(
        _COMMAND_OF.get(m.name, m.name.replace("_", "-"))
        for m in pkgutil.iter_modules(__path__)
        if not m.name.startswith("_")
    )


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return _command_names()

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _command_names():
            return None
        name = _MODULE_OF.get(cmd_name, cmd_name.replace("-", "_"))
        module = importlib.import_module(f"{__name__}.{name}")
        cmd = getattr(module, "command", None)
        if not isinstance(cmd, click.Command):
            raise RuntimeError(f"{module.__name__} defines no click command named `command`")
        return cmd


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING - 10 * verbosity
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in ("sitewatch", "survey", "flightplans", "change_detection", "maps"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(max(level, logging.DEBUG))
        lg.propagate = False


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="sitewatch")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", count=True, help="Less output: warnings and progress off.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: int) -> None:
    """sitewatch: drone surveys of construction sites checked against planning permits."""
    ctx.ensure_object(dict)
    ctx.obj["verbosity"] = verbose - quiet
    ctx.obj["quiet"] = quiet > 0
    _configure_logging(verbose - quiet)


_ERROR_ROOTS = (
    ("survey.errors", "SurveyError"),
    ("flightplans.errors", "FlightPlanError"),
    ("change_detection.errors", "ChangeDetectionError"),
    ("maps.errors", "MapError"),
)


def _library_errors() -> tuple[type[BaseException], ...]:
    """The roots of the library errors, plus OSError. Only those of packages already imported:
    an error can only come from a module that was loaded, and importing ``maps`` or
    ``flightplans`` here just to print one line would cost a second (folium, the planner)."""
    roots: list[type[BaseException]] = [
        getattr(sys.modules[module], name) for module, name in _ERROR_ROOTS if module in sys.modules
    ]
    return (*roots, OSError)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def run(args: list[str] | None = None, prog_name: str = "sitewatch") -> int:
    """Run the CLI and return its exit code instead of exiting (used by ``main`` and tests)."""
    try:
        # a command that ends with ctx.exit(N) returns N here (standalone_mode=False)
        returned = cli.main(args=args, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        click.echo(f"{prog_name}: aborted", err=True)
        return EXIT_ERROR
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else prog_name
        click.echo(f"{where}: error: {_one_line(exc.format_message())}", err=True)
        return EXIT_USAGE
    except click.ClickException as exc:
        click.echo(f"{prog_name}: error: {_one_line(exc.format_message())}", err=True)
        return exc.exit_code
    except _library_errors() as exc:
        log.debug("traceback", exc_info=True)
        click.echo(f"{prog_name}: error: {_one_line(str(exc))}", err=True)
        return EXIT_ERROR
    return returned if type(returned) is int else 0


def main(args: list[str] | None = None) -> Any:
    """Console-script entry point."""
    sys.exit(run(args))
