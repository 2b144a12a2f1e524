"""``sitewatch evidence``: the evidence store and custody ledger (:mod:`survey.evidence`).

Subcommands::

    init STORE                        create a store (station key, ledger)
    add --store STORE --case CASE [--risk TIER] [--operator ID] [--site SITE] FILES...
    log STORE [--case CASE] [--json]  read the ledger
    verify STORE [--head HEAD.json]   check chain, signed heads, files (exit 0 ok, 1 problems)
    purge --store STORE [--dry-run]   delete expired, unheld items (recorded in the ledger)
    export --store STORE --case CASE --out DIR    archive set for write-once media
    case --store STORE CASE [--risk TIER]         show or set a case's risk tier
    hold / release --store STORE CASE [--reason]  legal hold on / off
    trace STORE SHA256                entries from a file back to its originals
    head STORE / key STORE            the latest signed head / the station's public key

Stores are created by ``init`` or by the first ``add``. ``verify``, ``log``, ``trace``,
``head``, ``key``, ``purge --dry-run`` and ``export --read-only`` open the store read-only (a
supervisor needs read access only); the others write and are recorded in the ledger.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from survey.cli._common import is_quiet

__all__ = ["command"]

_store_dir = click.Path(file_okay=False, path_type=Path)


def _open(store: Path, *, write: bool = False, create: bool = False) -> Any:
    from survey.evidence import EvidenceStore

    return EvidenceStore.open(store, create=create, read_only=not write)


def _summary(entry: Any) -> str:
    r = entry.record
    t = entry.type
    if t == "add":
        who = f" by {r['operator']}" if r.get("operator") else ""
        again = "" if r.get("stored") else " (already stored)"
        dev = r.get("device") or {}
        serial = dev.get("drone_serial") or dev.get("camera_serial")
        device = f", {dev.get('kind')}" + (f" {serial}" if serial else "") if dev else ""
        return (
            f"case {r['case']}: {r['sha256'][:16]} {r['size']} B {r['source']}{who}{device}{again}"
        )
    if t == "derive":
        outs = ", ".join(f"{o['role']}={o['sha256'][:12]}" for o in r.get("outputs", []))
        case = f"case {r['case']}: " if r.get("case") else ""
        return f"{case}{r['command']}: {len(r.get('inputs', []))} input(s) -> {outs}"
    if t == "case":
        hold = ", on hold" if r.get("hold") else ""
        why = f" ({r['reason']})" if r.get("reason") else ""
        return f"case {r['case']}: tier {r['risk']}{hold}; {'+'.join(r.get('changed', []))}{why}"
    if t == "purge":
        return f"purged {r['sha256'][:16]} ({r['size']} B), expired {r['expired']}"
    if t == "export":
        return f"case {r['case']}: exported {r['files']} file(s) to {r['out']}"
    if t == "checkpoint":
        return f"signed head: {r['tree_size']} entries, root {r['root_hash'][:16]}"
    if t == "store":
        return f"store {r['store_id']} created, key {r['key_id'][:16]}"
    if t == "repair":
        return f"repair: {r['reason']} ({r['dropped_bytes']} B)"
    return ""


@click.group("evidence")
def command() -> None:
    """Evidence store and custody ledger: add originals, read and verify the ledger,
    purge by retention, export archive sets."""


@command.command("init")
@click.argument("store", type=_store_dir)
@click.option(
    "--retention",
    "retention",
    multiple=True,
    metavar="TIER=PERIOD",
    help="Risk tier and how long it keeps evidence (ISO 8601: P12M, P6M, P90D; or "
    "permanent). Repeat for each tier; default high=permanent medium=P12M low=P6M.",
)
@click.option("--default-risk", help="Tier of a case created without one (default high).")
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=1),
    help="A signed checkpoint after this many entries (default 1000).",
)
def init(
    store: Path, retention: tuple[str, ...], default_risk: str | None, checkpoint_every: int | None
) -> None:
    """Create an evidence store in STORE (a new or empty folder)."""
    from survey.evidence import EvidenceStore

    settings: dict[str, Any] = {}
    if retention:
        tiers: dict[str, str | None] = {}
        for item in retention:
            tier, sep, period = item.partition("=")
            if not sep or not tier.strip():
                raise click.BadParameter(
                    f"{item!r}: write TIER=PERIOD, e.g. medium=P12M", param_hint="--retention"
                )
            tiers[tier.strip()] = None if period.strip().lower() == "permanent" else period
        settings["retention"] = tiers
    if default_risk:
        settings["default_risk"] = default_risk
    if checkpoint_every:
        settings["checkpoint_every"] = checkpoint_every
    if store.exists() and not (store.is_dir() and not any(store.iterdir())):
        raise click.ClickException(
            f"{store}: exists and is not an empty folder; give a new folder for the store"
        )
    s = EvidenceStore.open(store, create=True, settings=settings)
    click.echo(
        f"created evidence store {s.root} (id {s.config.store_id}, station key "
        f"{s.key.key_id[:16]}…, tiers "
        + ", ".join(f"{t} {p or 'permanent'}" for t, p in s.config.retention.items())
        + ")"
    )


@command.command("add")
@click.option("--store", "store", required=True, type=_store_dir, help="The evidence store.")
@click.option("--case", "case", required=True, help="Case id (letters, digits, - _ .).")
@click.option("--risk", help="The case's risk tier (high, medium, low).")
@click.option("--operator", help="Who adds the files (recorded).")
@click.option("--site", help="The site surveyed (recorded).")
@click.option(
    "--source-root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Record sources relative to this folder (e.g. the SD card) instead of absolute.",
)
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def add(
    store: Path,
    case: str,
    risk: str | None,
    operator: str | None,
    site: str | None,
    source_root: Path | None,
    files: tuple[Path, ...],
) -> None:
    """Copy FILES (and folders) into the store bit-exact and record them in the ledger."""
    s = _open(store, write=True, create=True)
    with _progress_bar(files) as progress:
        items = s.add(
            list(files),
            case=case,
            risk=risk,
            operator=operator,
            site=site,
            source_root=source_root,
            progress=progress,
        )
    for item in items:
        click.echo(f"{'stored ' if item.new else 'already'}  {item.sha256}  {item.name}")
    new = sum(1 for i in items if i.new)
    click.echo(
        f"{len(items)} file(s), {new} new, {sum(i.size for i in items)} bytes, case {case}; "
        f"ledger entries {items[0].seq}..{items[-1].seq}"
    )


class _Bar:
    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.last: dict[Path, int] = {}

    def __call__(self, source: Path, done: int, total: int) -> None:
        self.bar.update(done - self.last.get(source, 0))
        self.last[source] = done


class _progress_bar:  # a context manager used like a function
    def __init__(self, files: tuple[Path, ...]) -> None:
        self.files = files
        self.bar: Any = None

    def __enter__(self) -> Any:
        if is_quiet() or not sys.stderr.isatty():
            return None
        total = 0
        for f in self.files:
            paths: Iterator[Path] = f.rglob("*") if f.is_dir() else iter([f])
            total += sum(p.stat().st_size for p in paths if p.is_file())
        self.bar = click.progressbar(length=total, label="copying", file=sys.stderr)
        self.bar.__enter__()
        return _Bar(self.bar)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


@command.command("log")
@click.argument("store", type=_store_dir)
@click.option("--case", "case", help="Only the entries of this case.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines: the entries as recorded.")
def log_(store: Path, case: str | None, as_json: bool) -> None:
    """Print the custody ledger of STORE (one line per entry)."""
    s = _open(store)
    for entry in s.entries(case=case):
        if as_json:
            click.echo(entry.line.decode("utf-8"))
        else:
            click.echo(f"{entry.seq:>6}  {entry.time}  {entry.type:<10}  {_summary(entry)}")


@command.command("verify")
@click.argument("store", type=_store_dir)
@click.option(
    "--head",
    "heads",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A signed head given out earlier (head.json of an export or package): prove today's "
    "ledger extends it. Repeatable.",
)
@click.option("--no-files", is_flag=True, help="Check presence of stored files, not hashes.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
def verify(store: Path, heads: tuple[Path, ...], no_files: bool, as_json: bool) -> None:
    """Check STORE: hash chain, signed tree heads, every stored file; exit 1 with one line
    per problem."""
    from survey.errors import EvidenceInputError

    s = _open(store)
    report = s.verify(files=not no_files)
    checks = []
    for path in heads:
        try:
            head = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(head, dict):
                raise ValueError("not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise EvidenceInputError(
                f"{path}: not a signed head ({exc}); give head.json of an archive set"
            ) from exc
        checks.append((path, s.check_head(head)))
    ok = report.ok and all(c.ok for _, c in checks)
    if as_json:
        out = report.to_dict()
        out["heads"] = {str(p): c.to_dict() for p, c in checks}
        out["ok"] = ok
        click.echo(json.dumps(out, indent=2))
    else:
        for problem in report.problems:
            click.echo(f"PROBLEM: {problem.message}")
        for path, check in checks:
            click.echo(f"{'head' if check.ok else 'PROBLEM: head'} {path}: {check.reason}")
        for note in report.notes:
            click.echo(f"note: {note}", err=True)
        if report.ok:
            click.echo(
                f"ok: {report.entries} ledger entries, {report.objects} stored file(s), signed "
                f"head at {report.signed_size} entries"
            )
    if not ok:
        bad = len(report.problems) + sum(1 for _, c in checks if not c.ok)
        # exit status 1 through the CLI's error path (one line on stderr)
        raise click.ClickException(f"{store}: {bad} problem(s), listed above")


@command.command("purge")
@click.option("--store", "store", required=True, type=_store_dir, help="The evidence store.")
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
@click.option("--operator", help="Who purges (recorded).")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
def purge(store: Path, dry_run: bool, operator: str | None, as_json: bool) -> None:
    """Delete stored items whose retention has expired (never high-tier or held ones)."""
    s = _open(store, write=not dry_run)
    report = s.purge(dry_run=dry_run, operator=operator)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    verb = "would delete" if dry_run else "deleted"
    for item in report.removed:
        cases = ", ".join(f"{c} ({v['risk']})" for c, v in item.cases.items())
        name = item.names[0] if item.names else ""
        click.echo(f"{verb}  {item.sha256}  {name}  expired {item.expired}  cases {cases}")
    for leftover in report.cleaned:
        click.echo(f"cleaned  {leftover}")
    click.echo(
        f"{len(report.removed)} item(s) {verb} ({report.bytes_freed} bytes); kept "
        f"{len(report.kept_held)} on hold, {len(report.kept_permanent)} permanent, "
        f"{len(report.kept_unexpired)} not yet expired"
    )


@command.command("export")
@click.option("--store", "store", required=True, type=_store_dir, help="The evidence store.")
@click.option("--case", "case", required=True, help="The case to export.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="New folder.")
@click.option(
    "--read-only",
    is_flag=True,
    help="Open the store read-only (a supervisor): the export is not recorded in the ledger.",
)
def export(store: Path, case: str, out: Path, read_only: bool) -> None:
    """Write the archive set of CASE for write-once media into OUT (a new folder)."""
    s = _open(store, write=not read_only)
    out = s.export_case(case, out)
    files = len(list((out / "files").iterdir()))
    click.echo(f"exported case {case}: {files} file(s) to {out}; check with: sh {out}/verify.sh")


@command.command("case")
@click.option("--store", "store", required=True, type=_store_dir, help="The evidence store.")
@click.argument("case")
@click.option("--risk", help="Set the case's risk tier.")
@click.option("--operator", help="Who changes it (recorded).")
@click.option("--reason", help="Why (recorded).")
def case_(
    store: Path, case: str, risk: str | None, operator: str | None, reason: str | None
) -> None:
    """Show CASE, or set its risk tier with --risk."""
    s = _open(store, write=risk is not None)
    if risk is not None:
        s.set_case(case, risk=risk, operator=operator, reason=reason)
    _print_case(s, case)


def _print_case(s: Any, case: str) -> None:
    from survey.errors import EvidenceLookupError

    state = s.state()
    cs = state.cases.get(case)
    if cs is None:
        raise EvidenceLookupError(f"case {case} is not in the ledger of {s.root}; check the id")
    items = [o for o in state.objects.values() if o.present and case in o.cases]
    hold = f", on legal hold ({cs.hold_reason})" if cs.hold else ""
    assumed = " (assumed: the store's default)" if cs.risk_assumed else ""
    period = s.config.retention.get(cs.risk) or "permanent"
    click.echo(
        f"case {case}: tier {cs.risk}{assumed}, kept {period}{hold}; {len(items)} stored "
        f"file(s), {sum(o.size for o in items)} bytes"
    )


def _hold(store: Path, case: str, hold: bool, operator: str | None, reason: str | None) -> None:
    s = _open(store, write=True)
    s.set_case(case, hold=hold, operator=operator, reason=reason)
    _print_case(s, case)


@command.command("hold")
@click.option("--store", "store", required=True, type=_store_dir, help="The evidence store.")
@click.argument("case")
@click.option("--reason", help="Why (e.g. the court order), recorded.")
@click.option("--operator", help="Who sets it (recorded).")
def hold(store: Path, case: str, reason: str | None, operator: str | None) -> None:
    """Put CASE on legal hold: its items are never purged until released."""
    _hold(store, case, True, operator, reason)


@command.command("release")
@click.option("--store", "store", required=True, type=_store_dir, help="The evidence store.")
@click.argument("case")
@click.option("--reason", help="Why, recorded.")
@click.option("--operator", help="Who releases it (recorded).")
def release(store: Path, case: str, reason: str | None, operator: str | None) -> None:
    """Release CASE's legal hold (its tier's retention applies again)."""
    _hold(store, case, False, operator, reason)


@command.command("trace")
@click.argument("store", type=_store_dir)
@click.argument("sha256")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines: the entries as recorded.")
def trace(store: Path, sha256: str, as_json: bool) -> None:
    """The ledger entries that lead from the file SHA256 back to its originals."""
    s = _open(store)
    for entry in s.trace(sha256):
        if as_json:
            click.echo(entry.line.decode("utf-8"))
        else:
            click.echo(f"{entry.seq:>6}  {entry.time}  {entry.type:<10}  {_summary(entry)}")


@command.command("head")
@click.argument("store", type=_store_dir)
def head(store: Path) -> None:
    """Print the latest signed tree head of STORE (JSON; keep it outside the station)."""
    click.echo(json.dumps(_open(store).signed_head(), indent=2, sort_keys=True))


@command.command("key")
@click.argument("store", type=_store_dir)
def key(store: Path) -> None:
    """Print the station's public key (PEM) of STORE."""
    click.echo(_open(store).public_key_pem().decode("ascii"), nl=False)
