"""The rendered report: self-contained HTML with its figures, Markdown with the same tables, every value escaped,
notes naming what is missing, the smoke banner, and ε flags for estimates and assumptions."""

from __future__ import annotations

import base64
import json
import re

import pytest

from lowrankdp.sweep import write_report

from report_fixtures import mia_report, record, write_sweep

FFT = [(5.0, 7.0), (4.0, 5.0), (3.0, 3.0)]
SCRIPT = "<script>alert(1)</script>"


def _pngs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    root = tmp_path_factory.mktemp("render") / "sweep"
    mia = {"loss": mia_report(lb=0.1, n_in=100, n_out=40)}
    costs = {"measured_flops_per_token": 6.0, "analytic_flops_per_token": 6.0, "train_seconds": 3.0}
    items = []
    for s in (0,):
        items += [
            (f"fft-{s}", record("fft", s, FFT, exposure=[2.0, 9.0, 15.0], mia=mia, costs=costs)),
            (f"lora-{s}", record("lora", s, [(5.0, 7.0), (4.6, 5.5), (4.4, 4.5)], exposure=[2.0, 3.0, 4.0],
                                 mia=mia, costs={**costs, "measured_flops_per_token": 4.0})),
            (f"dp-sgd-{s}", record("dp-sgd", s, [(5.0, 7.0), (4.95, 6.9), (4.9, 6.8)], eps=5.76, mia=mia,
                                   exposure=[2.0, 2.1, 1.9], costs={**costs, "measured_flops_per_token": 18.7})),
            (f"cdp-{s}", record("compressed-dp-sgd", s, [(5.0, 7.0), (4.95, 6.9), (4.9, 6.7)], eps=1.13,
                                guarantee="estimate", assumption="span-1 fixed projection", exposure=[2.0, 2.0, 2.0])),
        ]
    items.append((f"x{SCRIPT}", record("lora-fa", 0, FFT[:2], status="failed")))
    sweep = {"name": "fixture", "provenance": {"date": f"2026-12-02{SCRIPT}", "git_commit": "abc<b>"},
             "config": {"description": f"desc {SCRIPT}"}}
    return write_sweep(root, items, sweep=sweep)


@pytest.fixture(scope="module")
def report(stored, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    html_path, md_path = write_report(stored, out=out)
    return html_path.read_text(), md_path.read_text(), out


def test_html_is_self_contained_with_figures(report):
    html, md, out = report
    pngs = _pngs(html)
    # privacy-utility, frontier, equal utility, exposure, costs, ROC (no retention, no audit stored)
    assert len(pngs) == 6
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") and len(p) > 3000 for p in pngs)
    assert not re.search(r"<(script|link|iframe)\b", html, re.I)  # no scripts, no external assets
    assert not re.search(r"src=['\"](?!data:)", html)
    for title in ("Claims", "Privacy and utility over epochs", "Utility–ε frontier per method",
                  "Privacy at equal utility", "Canary exposure", "Cost per method", "Membership attack ROC",
                  "Equal ε: private methods", "Equal utility", "Every run", "Provenance"):
        assert title in html and title in md
    assert (out / "report_figures" / "roc.png").is_file() and "report_figures/roc.png" in md
    assert "No run stores a privacy audit." in html


def test_every_value_is_escaped(report):
    html, md, _ = report
    assert SCRIPT not in html and SCRIPT not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # run name, provenance date and description
    assert html.count("&lt;script&gt;") >= 3
    assert "abc<b>" not in html and "&lt;script&gt;" in md


def test_smoke_sized_sweep_says_it_cannot_support_the_claims(report):
    html, md, _ = report
    assert "This sweep cannot support the claims below" in html
    assert "at most 1 seed(s) per setting" in md and "barely trained" in md


def test_estimated_fixed_projection_epsilon_is_flagged_in_every_table(report):
    html, md, _ = report
    eq_row = next(line for line in md.splitlines() if line.startswith("| compressed DP-SGD · cs"))
    assert "† estimate, not a bound; assumes: span-1 fixed projection" in eq_row
    run_row = next(line for line in md.splitlines() if line.startswith("| cdp-0 |"))
    assert "1.13 †" in run_row


def test_claims_table_and_verdicts(report):
    html, md, _ = report
    claim_rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    flops = next(v for k, v in claim_rows.items() if k.startswith("FLOPs per token"))
    assert "| does not hold |" in flops  # 18.7 / 6 = 3.12 measured, not 1.33
    mia = next(v for k, v in claim_rows.items() if k.startswith("No membership attack"))
    assert "| not testable |" in mia
    assert "perfect attack could certify at most ε=2.46" in md
    assert "class='v-does-not-hold'" in html


def test_notes_name_what_is_missing(report):
    html, md, _ = report
    assert re.search(r"Not stored for 1 finished run\(s\): cdp-0", md)  # no membership attack stored for cdp
    assert "Not drawn (not finished ok, see the run table): x&lt;script&gt;" in md


def test_memorisation_gap_column(tmp_path):
    items = [("fft", record("fft", 0, FFT)), ("lora", record("lora", 0, FFT))]
    root = write_sweep(tmp_path / "s", items)
    p = root / "runs" / "fft" / "result.json"
    d = json.loads(p.read_text())
    d["epochs"][-1]["measurements"]["memorization_gap_token"] = 1.75
    p.write_text(json.dumps(d))
    _, md_path = write_report(root)
    md = md_path.read_text().splitlines()
    header = next(line for line in md if line.startswith("| run | method |"))
    col = [c.strip() for c in header.strip("|").split("|")].index("memorisation gap")
    def cell(name):
        return [c.strip() for c in next(x for x in md if x.startswith(f"| {name} |")).strip("|").split("|")][col]

    assert cell("fft") == "1.75" and cell("lora") == "—"


def test_report_reads_only_stored_results(stored, tmp_path):
    """Drawing the report imports no training code and no torch (it is a core-layer reader of result.json)."""
    import subprocess
    import sys

    code = ("import sys; from lowrankdp.sweep import write_report; "
            f"write_report({str(stored)!r}, out={str(tmp_path)!r}); "
            "print(sorted(m for m in ('torch', 'lowrankdp.finetune', 'lowrankdp.measure') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "[]"
