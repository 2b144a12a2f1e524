"""The case-file page ``report.pdf``: read back as a person would, with poppler's tools.

The page of a real package (the hand-made scene, a ledger head signed with a real Ed25519 key
by ``openssl``) is turned into text with ``pdftotext`` and into pixels with ``pdftoppm``; the
words, the hashes and the Chinese labels must be there, the chips where they belong (the new
red roof of lead L-0001 in the after chip on the right, not in the before chip on the left),
and the ``openssl`` line the page prints must verify the signature. These tools come from
``tools/install-fonts.sh`` (``make test``); without them the tests fail, they never skip.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.t2CharStringPen import T2CharStringPen
from fontTools.pens.ttGlyphPen import TTGlyphPen
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from maps import fonts
from maps.casefile import (
    CaseFile,
    _Sheet,
    chinese_characters,
    find_page_font,
    render_case_file,
)
from maps.errors import MapError, PackageError
from maps.fonts import CJK_FONT_ENV, find_cjk_font
from maps.package import EvidencePackage, build_evidence_package, verify_evidence_package
from survey.cli import run
from survey.rasters import sha256_file
from tests.maps.scenes import Scene

INSTALL = "run `bash tools/install-fonts.sh` (as root) or `make test`"
PILOT, ANALYST, CASE = "Li Wei 李伟", "Zhang Min 张敏", "SZ-2024-0117"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; {INSTALL}")
    return path


def _text(pdf: Path) -> str:
    res = subprocess.run(
        [_tool("pdftotext"), "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    )
    return res.stdout


def _pixels(pdf: Path, out: Path, dpi: int = 50) -> np.ndarray:
    """The page as an RGB array (rows, columns, 3) at ``dpi``; exactly one page."""
    subprocess.run(
        [_tool("pdftoppm"), "-r", str(dpi), "-png", str(pdf), str(out / "page")], check=True
    )
    pages = sorted(out.glob("page*.png"))
    assert len(pages) == 1, pages
    with Image.open(pages[0]) as im:
        return np.asarray(im.convert("RGB")).astype(int)


@pytest.fixture(scope="module")
def signed_head(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A ledger head signed by a real Ed25519 key (openssl), as the evidence store gives it."""
    openssl = _tool("openssl")
    d = tmp_path_factory.mktemp("station")
    subprocess.run([openssl, "genpkey", "-algorithm", "ed25519", "-out", d / "k.pem"], check=True)
    pem = subprocess.run(
        [openssl, "pkey", "-in", d / "k.pem", "-pubout"], check=True, capture_output=True
    ).stdout.decode()
    der = base64.b64decode("".join(pem.strip().splitlines()[1:-1]))
    head = {
        "key_id": hashlib.sha256(der).hexdigest(),
        "root_hash": hashlib.sha256(b"ledger").hexdigest(),
        "store_id": "station-7",
        "timestamp": "2024-06-03T08:00:00Z",
        "tree_size": 4711,
        "version": "sitewatch-tree-head/1",
    }
    message = json.dumps(head, sort_keys=True, separators=(",", ":"))
    (d / "msg").write_text(message)
    signature = subprocess.run(
        [openssl, "pkeyutl", "-sign", "-inkey", d / "k.pem", "-rawin", "-in", d / "msg"],
        check=True,
        capture_output=True,
    ).stdout
    return {
        **head,
        "signature": base64.b64encode(signature).decode(),
        "public_key_pem": pem,
        "signed_message": message,
    }


@pytest.fixture(scope="module")
def package(
    scene: Scene, signed_head: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> EvidencePackage:
    return build_evidence_package(
        scene.leads[0],
        before_ortho=scene.before_ortho,
        after_ortho=scene.after_ortho,
        before_dsm=scene.before_dsm,
        after_dsm=scene.after_dsm,
        permits=scene.permits,
        out_dir=tmp_path_factory.mktemp("casefile") / "L-0001",
        ledger_excerpt=[{"seq": 1, "prev": "0" * 64}, {"seq": 2, "prev": "1" * 64}],
        case_id=CASE,
        pilot=PILOT,
        analyst=ANALYST,
        signed_head=signed_head,
    )


def test_the_page_says_everything_in_english_and_chinese(
    package: EvidencePackage, scene: Scene, signed_head: dict[str, Any]
) -> None:
    assert package.report == package.directory / "report.pdf"
    text = _text(package.report)
    words = " ".join(text.split())
    assert "违法建设线索案件档案" in text, f"no Chinese on the page; {INSTALL}"
    for expected in (
        "CASE FILE",
        "L-0001",
        CASE,
        PILOT,
        ANALYST,
        "no_permit",
        "built without a permit · 未取得许可擅自建设",
        "600.0 m²",
        "+6.00 m",
        "Floors added · 增加层数 2",
        "new · 新增",
        "Survey before · 前期测量日期 2024-01-10",
        "Survey after · 后期测量日期 2024-06-02",
        "new roofed structure of 600 m² with no permit",
        "<script>alert(1)</script>",  # the permit, as text, never as markup
        "Flown by (pilot) · 飞手",
        "Analysed by · 分析人员",
        "判定理由",
        "完整性",
        "sha256sum -c manifest.sha256",
        "openssl pkeyutl -verify -pubin -inkey station_public_key.pem -rawin "
        "-in ledger_head.msg -sigfile ledger_head.sig",
        "第 1 页 共 1 页",
    ):
        assert expected in words, expected
    for role in ("before_ortho", "after_ortho", "before_dsm", "after_dsm"):
        assert sha256_file(getattr(scene, role)) in text, role
    manifest_hash = hashlib.sha256(package.manifest.read_bytes()).hexdigest()
    assert re.search(rf"manifest\.json\s+{manifest_hash}", text)
    for key in ("root_hash", "key_id", "signature"):
        assert signed_head[key] in text, key
    assert "4711 · 2024-06-03T08:00:00Z" in text
    assert "Not recorded in an evidence store" not in text
    fonts_used = subprocess.run(
        [_tool("pdffonts"), str(package.report)], capture_output=True, text=True, check=True
    ).stdout
    # the Chinese glyphs are drawn from an embedded TrueType subset, not left to the viewer
    cjk = [ln for ln in fonts_used.splitlines() if "WenQuanYi" in ln]
    assert cjk and all("CID TrueType" in ln and " yes yes yes " in ln for ln in cjk), fonts_used


def test_the_page_looks_like_a_filled_form_with_the_chips_in_place(
    package: EvidencePackage, tmp_path: Path
) -> None:
    px = _pixels(package.report, tmp_path)
    rows, cols, _ = px.shape
    assert abs(rows - 585) <= 1 and abs(cols - 413) <= 1  # A4 portrait at 50 dpi
    ink = (px.sum(axis=2) < 600).mean()
    assert 0.15 < ink < 0.6, ink  # neither blank nor a black slab
    band = px[int(rows * 0.035) : int(rows * 0.065), int(cols * 0.1) : int(cols * 0.9)]
    assert (band.sum(axis=2) < 200).mean() > 0.5  # the dark title band across the top

    def roof(region: np.ndarray) -> int:
        """Pixels of the new roof's colour (190, 55, 45); the outline (255, 45, 45) is not."""
        r, g, b = region[..., 0], region[..., 1], region[..., 2]
        return int(((abs(r - 190) < 15) & (g < 85) & (b < 80)).sum())

    chips = px[int(rows * 0.13) : int(rows * 0.40)]  # below the header boxes, above the profile
    left, right = roof(chips[:, : cols // 2]), roof(chips[:, cols // 2 :])
    assert right > 800, right  # the after chip, on the right, shows the red roof
    assert left < right / 100, (left, right)  # the before chip does not
    assert roof(px[int(rows * 0.42) :]) < right / 100  # and nothing below the chips does


def test_the_signature_line_on_the_page_verifies_with_openssl(
    package: EvidencePackage, tmp_path: Path
) -> None:
    # the command as printed on the page, copied and run the way an officer would
    printed = next(ln.strip() for ln in _text(package.report).splitlines() if "pkeyutl" in ln)
    command = [_tool("openssl"), *shlex.split(printed)[1:]]
    ok = subprocess.run(command, cwd=package.directory, capture_output=True, text=True)
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout, ok.stderr
    forged = tmp_path / "forged"
    shutil.copytree(package.directory, forged)
    msg = forged / "ledger_head.msg"
    msg.write_text(msg.read_text().replace('"tree_size":4711', '"tree_size":4712'))
    bad = subprocess.run(command, cwd=forged, capture_output=True, text=True)
    assert bad.returncode != 0
    head = json.loads((package.directory / "ledger_head.json").read_text())
    assert head["tree_size"] == 4711 and "signed_message" in head


def test_manifest_page_and_checksums_chain_and_a_forgery_is_named(
    package: EvidencePackage, tmp_path: Path
) -> None:
    d = package.directory
    manifest = json.loads(package.manifest.read_text())
    listed = {f["path"] for f in manifest["files"]}
    assert "report.pdf" not in listed and "ledger_head.sig" in listed
    assert manifest["report"]["languages"] == ["en", "zh-Hans"]
    assert (manifest["case_id"], manifest["pilot"], manifest["analyst"]) == (CASE, PILOT, ANALYST)
    assert manifest["ledger_head"]["tree_size"] == 4711
    sums = dict(
        reversed(line.split("  ", 1)) for line in package.checksums.read_text().splitlines()
    )
    assert sums["report.pdf"] == hashlib.sha256(package.report.read_bytes()).hexdigest()
    assert sums["manifest.json"] == hashlib.sha256(package.manifest.read_bytes()).hexdigest()
    assert verify_evidence_package(d) == []
    readme = (d / "README.txt").read_text()
    assert "report.pdf" in readme and "sha256sum manifest.json" in readme
    assert "openssl pkeyutl -verify" in readme

    # A forger who edits the manifest and re-hashes manifest.sha256 to match is caught by the
    # page, which still carries the old manifest's hash.
    forged = tmp_path / "forged"
    shutil.copytree(d, forged)
    m = json.loads((forged / "manifest.json").read_text())
    m["pilot"] = "someone else"
    (forged / "manifest.json").write_text(json.dumps(m, indent=2) + "\n")
    new = hashlib.sha256((forged / "manifest.json").read_bytes()).hexdigest()
    lines = (forged / "manifest.sha256").read_text().splitlines()
    fixed = [f"{new}  manifest.json" if ln.endswith("  manifest.json") else ln for ln in lines]
    (forged / "manifest.sha256").write_text("\n".join(fixed) + "\n")
    assert verify_evidence_package(forged) == [
        "report.pdf: does not carry the SHA-256 of this manifest.json"
    ]


def test_single_survey_page_and_cli_flags(
    scene: Scene, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lead = replace(
        scene.leads[0],
        input_hashes={"ortho": sha256_file(scene.after_ortho), "dsm": sha256_file(scene.after_dsm)},
        before_date=None,
    )
    leads = tmp_path / "leads.geojson"
    leads.write_text(json.dumps({"type": "FeatureCollection", "features": [lead.to_feature()]}))
    out = tmp_path / "pkg"
    code = run(
        [
            "package",
            "--leads",
            str(leads),
            "--lead",
            "L-0001",
            "--ortho",
            str(scene.after_ortho),
            "--dsm",
            str(scene.after_dsm),
            "--pilot",
            PILOT,
            "--analyst",
            ANALYST,
            "--case",
            CASE,
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    words = " ".join(_text(out / "report.pdf").split())
    for expected in (
        "Survey · 本期测量 — 2024-06-02",
        "Single survey checked against the permit atlas.",
        "单期测量与规划许可图比对。",
        "Survey date · 测量日期 2024-06-02",
        PILOT,
        ANALYST,
        CASE,
        "Not recorded in an evidence store. 未录入证据库。",
        "No permit covers or is named by this lead.",
    ):
        assert expected in words, expected
    assert "openssl" not in words and "Survey before" not in words
    assert verify_evidence_package(out) == []


def test_without_a_chinese_font_the_page_is_english_with_one_warning(
    scene: Scene,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a machine without the font: no Debian font file, fontconfig listing nothing
    empty = tmp_path / "fonts.conf"
    empty.write_text('<?xml version="1.0"?>\n<fontconfig></fontconfig>\n')
    monkeypatch.setenv("FONTCONFIG_FILE", str(empty))
    monkeypatch.delenv(CJK_FONT_ENV, raising=False)
    monkeypatch.setattr(fonts, "DEBIAN_CJK_FONTS", (tmp_path / "absent.ttc",))
    with caplog.at_level(logging.WARNING, logger="maps"):
        pkg = build_evidence_package(
            replace(scene.leads[0], reasons=("roof $x$ {y} 屋顶",)),
            before_ortho=scene.before_ortho,
            after_ortho=scene.after_ortho,
            out_dir=tmp_path / "p",
            pilot=PILOT,
        )
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "English only" in warnings[0]
    assert "apt-get install fonts-wqy-microhei" in warnings[0]
    assert pkg.report is not None
    text = _text(pkg.report)
    assert "CASE FILE" in text and "Li Wei ??" in text and "roof $x$ {y} ??" in text
    assert not re.search(r"[\u4e00-\u9fff]", text)  # no Chinese, and no tofu either
    assert "No DSM given: heights not measured" in text
    assert json.loads(pkg.manifest.read_text())["report"]["languages"] == ["en"]
    assert verify_evidence_package(pkg.directory) == []


def _font(path: Path, chars: str, truetype: bool) -> Path:
    """A tiny font mapping ``chars`` to squares, with TrueType (glyf) or CFF outlines."""
    names = [".notdef", *(f"uni{ord(c):04X}" for c in chars)]
    fb = FontBuilder(1000, isTTF=truetype)
    fb.setupGlyphOrder(names)
    fb.setupCharacterMap({ord(c): f"uni{ord(c):04X}" for c in chars})

    def square(pen: Any) -> Any:
        pen.moveTo((100, 0))
        pen.lineTo((100, 700))
        pen.lineTo((900, 700))
        pen.lineTo((900, 0))
        pen.closePath()
        return pen

    if truetype:
        fb.setupGlyf({n: square(TTGlyphPen(None)).glyph() for n in names})
    else:
        charstrings = {n: square(T2CharStringPen(1000, None)).getCharString() for n in names}
        fb.setupCFF("TestHei-Regular", {"FullName": "Test Hei"}, charstrings, {})
    fb.setupHorizontalMetrics({n: (1000, 100) for n in names})
    fb.setupHorizontalHeader(ascent=800, descent=-200)
    fb.setupNameTable({"familyName": "Test Hei", "styleName": "Regular"})
    fb.setupOS2()
    fb.setupPost()
    fb.save(str(path))
    return path


def test_fonts_are_taken_only_with_truetype_outlines_and_every_character(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ttf = _font(tmp_path / "hei.ttf", "案件档", truetype=True)
    cff = _font(tmp_path / "hei.otf", "案件档", truetype=False)
    short = _font(tmp_path / "short.ttf", "案件", truetype=True)
    text = tmp_path / "notes.ttf"
    text.write_text("not a font")
    found = find_cjk_font("案件档", candidates=[text, cff, short, ttf])
    assert found is not None and found.path == ttf and found.family == "Test Hei"
    assert find_cjk_font("案件档", candidates=[cff, short, text]) is None

    expect: list[tuple[Path, str]] = [
        (cff, "CFF, not TrueType"),
        (short, "lacks 档"),
        (text, "not a readable font"),
        (tmp_path / "gone.ttf", "no such file"),
    ]
    for path, why in expect:
        monkeypatch.setenv(CJK_FONT_ENV, str(path))
        with pytest.raises(MapError) as err:
            find_cjk_font("案件档")
        message = str(err.value)
        assert "\n" not in message and str(path) in message and why in message, message
        assert "fonts-wqy-microhei" in message
    monkeypatch.setenv(CJK_FONT_ENV, str(ttf))
    assert find_cjk_font("案件档") == found


def test_a_page_drawn_with_a_font_built_here(tmp_path: Path, scene: Scene) -> None:
    """The page embeds whatever TrueType font it is given: here one made by the test."""
    chinese = chinese_characters()
    font = find_cjk_font(chinese, [_font(tmp_path / "t.ttf", chinese, truetype=True)])
    assert font is not None
    chip = tmp_path / "chip.png"
    Image.new("RGB", (90, 99), (190, 55, 45)).save(chip)
    case = CaseFile(
        lead=scene.leads[1],
        chips=((chip, "before"), (chip, "after")),
        profile=None,
        originals={"before_ortho": ("b.tif", "a" * 64)},
        manifest_sha256="b" * 64,
        created_utc="2024-06-03T10:00:00+00:00",
        software="sitewatch test",
    )
    out = render_case_file(case, tmp_path / "r.pdf", font)
    assert "超过许可高度" in " ".join(_text(out).split())


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda h: h.update(tree_size="many"), "tree_size"),
        (lambda h: h.update(root_hash="abc"), "root_hash"),
        (lambda h: h.update(signature="not base64!"), "signature"),
        (lambda h: h.pop("timestamp"), "timestamp"),
        (lambda h: h.update(public_key_pem="hello"), "public_key_pem"),
    ],
)
def test_a_malformed_signed_head_is_one_line_and_writes_nothing(
    scene: Scene,
    signed_head: dict[str, Any],
    tmp_path: Path,
    edit: Callable[[dict[str, Any]], Any],
    field: str,
) -> None:
    head = dict(signed_head)
    edit(head)
    with pytest.raises(PackageError) as err:
        build_evidence_package(
            scene.leads[0],
            before_ortho=scene.before_ortho,
            after_ortho=scene.after_ortho,
            out_dir=tmp_path / "p",
            signed_head=head,
        )
    message = str(err.value)
    assert "\n" not in message and f"signed ledger head: {field}=" in message
    assert not (tmp_path / "p").exists() and not list(tmp_path.iterdir())


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=160),
    width=st.floats(5.0, 180.0),
)
def test_any_text_fits_its_box_and_draws_only_glyphs_the_fonts_have(
    text: str, width: float
) -> None:
    """User text (names, permit ids, reasons) never runs out of its box nor asks for a glyph
    no embedded font has: control characters are dropped, unknown characters become '?'."""
    sheet = _Sheet(find_page_font())
    for size in (6.2, 7.2):
        fitted = sheet.fit(text, width, size)
        clean = sheet.clean(text)
        assert sheet.width(fitted, size) <= width + 1e-6
        # the text itself when it fits, else its longest prefix that fits with an ellipsis
        if sheet.width(clean, size) <= width:
            assert fitted == clean
        else:
            assert fitted.endswith("…") and clean.startswith(fitted[:-1])
        for line in sheet.wrap(text, width, size):
            assert sheet.width(line, size) <= width + 1e-6
            assert all(ord(c) in sheet.covered for c in line)
            assert "\n" not in line
