"""A writer process for the concurrency and crash tests (run as a script, not collected).

    python _writer.py PLAN.json

PLAN: {"store", "writer", "go" (a file to wait for), "ops": [...], "result", and for the
crash tests "hook": "copy" | "flush" with "marker"}. Ops: ["add", [files], case],
["derive", name, [input files]], ["case", case, risk], ["sleep", seconds].
Hooks (fault injection, only in this test process): "copy" stops in the middle of copying a
file (after its first MiB), "flush" stops after the files are placed in objects/ but before
the ledger is written; both write ``marker`` and wait to be killed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from survey.evidence import EvidenceStore
from survey.evidence import ledger as ledger_module


def _stop(marker: str) -> None:
    Path(marker).write_text("stopped")
    time.sleep(120)


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    progress = None
    if plan.get("hook") == "copy":

        def progress(source: Path, done: int, total: int) -> None:
            if done < total:
                _stop(plan["marker"])

    elif plan.get("hook") == "flush":
        original = ledger_module.LedgerWriter.flush

        def flush(self: ledger_module.LedgerWriter) -> object:
            if any(e.type == "add" for e in self.pending):
                _stop(plan["marker"])
            return original(self)

        ledger_module.LedgerWriter.flush = flush  # type: ignore[method-assign]
    store = EvidenceStore.open(plan["store"])
    go = Path(plan["go"]) if plan.get("go") else None
    while go is not None and not go.exists():
        time.sleep(0.002)
    done = []
    for i, op in enumerate(plan["ops"]):
        tag = f"{plan['writer']}-{i}"
        if op[0] == "add":
            items = store.add(op[1], case=op[2], operator=tag, progress=progress)
            done.append(
                {"tag": tag, "seqs": [x.seq for x in items], "sha256": [x.sha256 for x in items]}
            )
        elif op[0] == "derive":
            entry = store.record_derivation(
                command=tag, inputs={"in": op[2]}, outputs={}, parameters={"name": op[1]}
            )
            done.append({"tag": tag, "seqs": [entry.seq]})
        elif op[0] == "case":
            store.set_case(op[1], risk=op[2], operator=tag)
            done.append({"tag": tag, "seqs": []})
        elif op[0] == "sleep":
            time.sleep(op[1])
    Path(plan["result"]).write_text(json.dumps(done))


if __name__ == "__main__":
    main()
