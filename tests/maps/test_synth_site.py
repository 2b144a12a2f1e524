"""The review map and an evidence package of the synthetic site (leads from its truth)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from maps import build_evidence_package, render_review_map
from maps.assets import remote_references
from tests.maps.synth_leads import leads_from_truth, permits_of


def test_synth_site_review_and_package(synth_site: Any, tmp_path: Path) -> None:
    leads = leads_from_truth(synth_site)
    assert len(leads) >= 3
    permits = permits_of(synth_site)
    rm = render_review_map(
        leads,
        before_ortho=synth_site.before_ortho,
        after_ortho=synth_site.after_ortho,
        out_html=tmp_path / "review.html",
        permits=permits,
    )
    page = rm.html.read_text(encoding="utf-8")
    assert remote_references(page, sorted(rm.files_dir.rglob("*.css"))) == []
    data = re.findall(r'"_id": "([^"]+)"', page)
    assert {lead.lead_id for lead in leads} <= set(data)
    assert sum(1 for d in data if d.startswith("permit-")) == len(permits)
    # 10 cm at ~37 N: zoom 20 (0.19 web-mercator m/px) is the nearest level to 0.125
    assert rm.tiles["after"].max_zoom == 20

    pkg = build_evidence_package(
        leads[0],
        before_ortho=synth_site.before_ortho,
        after_ortho=synth_site.after_ortho,
        before_dsm=synth_site.before_dsm,
        after_dsm=synth_site.after_dsm,
        permits=permits,
        out_dir=tmp_path / "package",
    )
    manifest = json.loads(pkg.manifest.read_text())
    assert all(v["matches"] for v in manifest["inputs"].values())
    sha = shutil.which("sha256sum")
    if sha is not None:
        res = subprocess.run([sha, "-c", "--strict", "manifest.sha256"], cwd=pkg.directory)
        assert res.returncode == 0
