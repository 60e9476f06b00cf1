"""The main job end to end, `lowrankdp replicate --preset smoke`, with the test-only synthetic run function
(`execution.runner = "synthetic"`: clearly marked fake results, no training): the printed line, the run index,
each run's result file, and the report's verdicts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from lowrankdp.methods import METHODS
from lowrankdp.results import read_record
from lowrankdp.sweep import RunIndex

ROOT = Path(__file__).resolve().parents[1]


def test_replicate_smoke_end_to_end_with_a_fake_run_function(tmp_path):
    out = tmp_path / "smoke"
    res = subprocess.run([sys.executable, "-m", "lowrankdp.cli", "replicate", "--preset", "smoke", "--out", str(out),
                          "--runner", "synthetic", "--set", "grid.epochs=[1]"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    line = res.stdout.splitlines()[0]
    assert re.fullmatch(r"replicate --preset smoke: 6 ok, 0 failed of 6 runs; sweep \d+ s, report \d+ s, total \d+ s",
                        line), line
    rows = RunIndex(out / "index.sqlite").rows()
    assert sorted(r["config"]["method"] for r in rows) == sorted(
        ["fft", "lora", "lora-fa", "dp-sgd", "dp-lora", "compressed-dp-sgd"])
    for r in rows:
        rec = read_record(out / r["run_dir"])
        assert r["status"] == "ok" and rec.finished and rec.synthetic and [e.epoch for e in rec.epochs] == [0, 1]
        assert (rec.privacy.epsilon == float("inf")) == (not METHODS[rec.method].private)
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    verdicts = dict(re.findall(r"^\| (.+?) \| [^|]+ \| (holds|does not hold|inconclusive|not testable) \|", md, re.M))
    # the synthetic runs store measured FLOPs 8:6 and 8:4 (DP-SGD : FFT, DP-SGD : LoRA): the claim must hold
    assert verdicts["FLOPs per token: DP-SGD ≈ 1.33× FFT and ≈ 2× LoRA (measured)"] == "holds"
    # one seed cannot decide an ordering; no DP run stores an audit; no run at a target ε
    assert verdicts["Sensitive-token loss FFT &lt; LoRA &lt; DP-SGD at equal utility"] == "inconclusive"
    assert verdicts["No audited ε exceeds the accountant's ε"] == "not testable"
    assert verdicts["Equal ε: compressed DP-SGD has better utility than DP-SGD on the same matrices"] == "not testable"
    assert "synthetic" in html.lower()  # the banner: these are not measurements
