"""The evidence store, the commands' recording and the evidence package were split into one
module per subject (issue #15): every name users and commands import keeps its old place."""

from __future__ import annotations

import importlib

import pytest

#: Module → the names importable from it before the split (scripts and commands use them).
OLD_PLACES = {
    "survey.evidence.store": ["SOFTWARE", "EvidenceStore", "FileRef", "HashedFile", "StoredItem"],
    "survey.evidence.verify": [
        "HeadCheck",
        "Problem",
        "VerifyReport",
        "check_head",
        "verify_store",
    ],
    "survey.evidence.wiring": [
        "EPOCH_RASTERS",
        "STATEMENT_COMMAND",
        "CommandStore",
        "DerivedFrom",
        "check_writable",
        "open_command_store",
        "package_ledger",
        "record_check",
        "record_coregister",
        "record_derived_from",
        "record_detect",
        "record_ingest",
        "record_simulate_flight",
        "resolve_derived_from",
    ],
    "maps.package": [
        "MANIFEST_FORMAT",
        "EvidencePackage",
        "build_evidence_package",
        "sha256_of",
        "verify_evidence_package",
    ],
    "survey.cli.map": ["check_store", "say_recorded", "load_leads", "load_features"],
}


@pytest.mark.parametrize("module", sorted(OLD_PLACES))
def test_names_keep_their_old_place(module: str) -> None:
    mod = importlib.import_module(module)
    missing = [name for name in OLD_PLACES[module] if not hasattr(mod, name)]
    assert missing == [], f"{module} lost {missing}"


def test_the_store_is_one_class_made_of_its_parts() -> None:
    """Each method of the store is found on EvidenceStore, defined in the module of its
    subject."""
    from survey.evidence import EvidenceStore

    where = {
        "open": "survey.evidence.store",
        "batch": "survey.evidence.store_base",
        "add": "survey.evidence.store_add",
        "record_derivation": "survey.evidence.store_derive",
        "set_case": "survey.evidence.store_cases",
        "purge": "survey.evidence.store_cases",
        "trace": "survey.evidence.store_views",
        "ledger_excerpt": "survey.evidence.store_views",
        "verify": "survey.evidence.store_views",
        "export_case": "survey.evidence.store_views",
    }
    found = {name: getattr(EvidenceStore, name).__module__ for name in where}
    assert found == where


@pytest.mark.parametrize(
    "command", ["check", "coregister", "detect", "ingest", "map", "package", "simulate_flight"]
)
def test_every_command_opens_its_store_through_one_function(command: str) -> None:
    from survey.cli import _store

    mod = importlib.import_module(f"survey.cli.{command}")
    assert mod.check_store is _store.check_store
    assert mod.say_recorded is _store.say_recorded
