"""A demo case platform: the synthetic site in a registry, two surveys, detected leads, an
evidence store, and one user per role (``sitewatch serve --demo``).

The first survey (the before epoch) is registered against the permit atlas and approved; the
second (the after epoch) is compared with it by ``detect`` (:func:`survey.pipeline.run_detect`)
and its leads recorded. The originals of both go into the evidence store under their cases.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from survey.registry import Registry
from survey.synth import SynthParams, generate_site
from survey.web.accounts import add_user

__all__ = ["DEMO_SITE", "DEMO_TEAM", "DEMO_USERS", "DemoPlatform", "build_demo"]

DEMO_SITE = "Demo site"
DEMO_TEAM = "team-1"
DEMO_USERS: dict[str, tuple[str, str, str]] = {
    "operator": ("demo-operator", "Demo operator", "zh_CN"),
    "analyst": ("demo-analyst", "Demo analyst", "zh_CN"),
    "supervisor": ("demo-supervisor", "Demo supervisor", "zh_CN"),
    "admin": ("demo-admin", "Demo admin", "en"),
}
"""Role → user name, display name, language of the demo's users."""


@dataclass
class DemoPlatform:
    """What :func:`build_demo` made."""

    root: Path
    db: Path
    store: Path
    data_dir: Path
    passwords: dict[str, str] = field(default_factory=dict)  # user name → password


def build_demo(
    root: Path,
    *,
    synth: SynthParams = SynthParams(size_m=80.0, gsd_cm=10.0),  # noqa: B008 (frozen)
    users: bool = True,
) -> DemoPlatform:
    """Build the demo platform in ``root`` (a new or empty folder).

    Returns
    -------
    DemoPlatform
        Paths, and the users' passwords (made up here; printed once by ``serve --demo``).
    """
    from survey.evidence import EvidenceStore
    from survey.pipeline import run_detect

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    demo = DemoPlatform(root, root / "sitewatch.db", root / "store", root / "web")
    site = generate_site(root / "site", synth)
    store = EvidenceStore.open(demo.store, create=True)
    with Registry.open(demo.db, store=store, user="sitewatch demo") as reg:
        reg.set_evidence_store(demo.store)
        reg.add_site(DEMO_SITE, site.site, cadence_days=14, risk="medium", team=DEMO_TEAM)
        reg.import_permits(site.permits, DEMO_SITE)
        before_date, after_date = site.truth["before_date"], site.truth["after_date"]
        before = _survey(reg, store, before_date, site.before_ortho, site.before_dsm, {})
        reg.record_leads(before, [], reference="atlas")
        reg.approve_survey(before)
        det = run_detect(
            site.before_ortho,
            site.after_ortho,
            root / "detect",
            before_dsm=site.before_dsm,
            after_dsm=site.after_dsm,
            permits=site.permits,
            site=site.site,
            before_date=before_date,
            after_date=after_date,
        )
        products = {"leads": det.leads_geojson, "provenance": det.provenance_json}
        if det.after_registered is not None:
            products["after_registered"] = det.after_registered
        if det.after_registered_dsm is not None:
            products["after_registered_dsm"] = det.after_registered_dsm
        after = _survey(reg, store, after_date, site.after_ortho, site.after_dsm, products)
        reg.record_leads(after, det.leads, reference="survey", reference_survey_id=before)
        if users:
            for role, (name, display, language) in DEMO_USERS.items():
                password = secrets.token_urlsafe(12)
                add_user(
                    reg.engine,
                    name,
                    role,
                    password,
                    team=DEMO_TEAM if role == "operator" else None,
                    display_name=display,
                    language=language,
                )
                demo.passwords[name] = password
    demo.data_dir.mkdir(exist_ok=True)
    return demo


def _survey(
    reg: Registry,
    store: object,
    date: str,
    ortho: Path,
    dsm: Path,
    products: dict[str, Path],
) -> int:
    from survey.evidence import EvidenceStore

    assert isinstance(store, EvidenceStore)
    case = f"demo-{date}"
    items = store.add(
        [ortho, dsm], case=case, risk="medium", operator="sitewatch demo", site=DEMO_SITE
    )
    survey = reg.register_survey(
        DEMO_SITE,
        date,
        ortho=ortho,
        dsm=dsm,
        evidence=[i.sha256 for i in items],
        products={k: str(v) for k, v in products.items()},
        case=case,
        qc_verdict="pass",
    )
    return survey.survey_id
