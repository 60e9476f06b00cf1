"""The main job (`lowrankdp replicate --preset smoke`) at an earlier commit and at this checkout, side by side.

Both trees run in one invocation, alternating (old, new, old, new, ...), each with its tiny model already cached
(a warm-up builds it untimed), each in a fresh process with the same environment. Prints a table of wall time per
phase (data generation, model preparation, runs, report, start-up and the rest) and the ratio new/old, then the
final numbers of each method in both trees, so a change in results shows next to the change in time. Writes
docs/results/main_job_benchmark.md and .json with the provenance block.

    .venv/bin/python benchmarks/main_job.py                    # old = 7d94974 (before the one-result-format work)
    .venv/bin/python benchmarks/main_job.py --ref HEAD~5 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lowrankdp.provenance import provenance  # noqa: E402
from lowrankdp.results import atomic_write_json, atomic_write_text  # noqa: E402

DEFAULT_REF = "7d94974"
_LINE = re.compile(r"sweep (\d+) s, report (\d+) s, total (\d+) s")


def export_tree(ref: str, dest: Path) -> Path:
    """The files of commit ``ref`` in ``dest`` (git archive: no worktree bookkeeping left behind)."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def _env(tree: Path, cache: Path | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    if cache is not None:  # else the default cache: the two trees' tiny models have different keys there
        env["LOWRANKDP_CACHE"] = str(cache)
    return env


def warm_up(tree: Path, cache: Path | None) -> None:
    """Build (or find) the tree's tiny model in its cache, untimed."""
    subprocess.run([sys.executable, "-c", "from lowrankdp.models import load_base; load_base('tiny')"],
                   cwd=tree, env=_env(tree, cache), check=True, capture_output=True)


def run_main_job(tree: Path, cache: Path | None, out: Path) -> dict:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "lowrankdp", "replicate", "--preset", "smoke", "--out", str(out)],
                         cwd=tree, env=_env(tree, cache), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"main job failed in {tree}: {res.stderr[-2000:]}")
    m = _LINE.search(res.stdout)
    sweep = json.loads((out / "sweep.json").read_text())
    timings = sweep.get("timings") or {}
    data_s = sum((timings.get("data") or {}).values())
    model_s = sum((timings.get("models") or {}).values())
    sweep_s = float(timings.get("sweep_s") or (m and m.group(1)) or 0)
    report_s = float(m.group(2)) if m else 0.0
    return {"wall_s": wall, "data_s": data_s, "models_s": model_s, "runs_s": sweep_s - data_s - model_s,
            "report_s": report_s, "other_s": wall - sweep_s - report_s, "finals": final_numbers(out)}


def final_numbers(out: Path) -> dict[str, dict]:
    """Per method: final sensitive-token loss, utility loss, exposure and ε, from either result layout."""
    finals = {}
    for run in sorted((out / "runs").iterdir()):
        if (run / "result.json").is_file():
            rec = json.loads((run / "result.json").read_text())
            method, last = rec["method"], rec["epochs"][-1]
        else:
            method = json.loads((run / "config.json").read_text())["method"]
            last = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()][-1]
        meas = last.get("measurements") or {}
        finals[method] = {"sensitive_loss_token": meas.get("sensitive_loss_token"),
                          "utility_loss": meas.get("utility_loss"),
                          "exposure_bits": (meas.get("exposure") or {}).get("value"),
                          "epsilon": (last.get("privacy") or {}).get("epsilon")}
    return finals


def _fmt(x) -> str:
    return "—" if x is None else (x if isinstance(x, str) else f"{x:.3f}")


def render(doc: dict) -> str:
    phases = ("data_s", "models_s", "runs_s", "report_s", "other_s", "wall_s")
    lines = [f"# Main job (`replicate --preset smoke`, cached tiny model): {doc['old_ref']} vs this checkout", "",
             f"{doc['repeats']} repeat(s) of each, alternating, one invocation. Mean seconds per phase "
             "(share of the total in brackets):", "",
             "| phase | old | new | new / old |", "|---|---|---|---|"]
    for ph in phases:
        o, n = doc["mean"]["old"][ph], doc["mean"]["new"][ph]
        so, sn = o / doc["mean"]["old"]["wall_s"], n / doc["mean"]["new"]["wall_s"]
        lines.append(f"| {ph[:-2]} | {o:.1f} ({so:.0%}) | {n:.1f} ({sn:.0%}) | {n / o if o > 0 else float('nan'):.2f} |")
    lines += ["", "Final numbers of each method (last repeat):", "",
              "| method | sensitive loss old / new | utility loss old / new | exposure bits old / new | ε old / new |",
              "|---|---|---|---|---|"]
    old, new = doc["runs"]["old"][-1]["finals"], doc["runs"]["new"][-1]["finals"]
    for method in sorted(set(old) | set(new)):
        o, n = old.get(method, {}), new.get(method, {})
        cells = [f"{_fmt(o.get(k))} / {_fmt(n.get(k))}" for k in ("sensitive_loss_token", "utility_loss",
                                                                   "exposure_bits", "epsilon")]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    p = doc["provenance"]
    lines += ["", f"Machine: {p.get('device')}; date {p.get('date')}; commit {p.get('git_commit')} "
                  f"(dirty: {p.get('git_dirty')}); packages: "
                  + ", ".join(f"{k} {v}" for k, v in sorted((p.get('packages') or {}).items()) if v)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default=DEFAULT_REF, help="the earlier commit (default %(default)s)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--keep", default=None, help="copy this checkout's last smoke sweep directory here")
    ap.add_argument("--cache", default=None, help="model cache root (default: the user's lowrankdp cache)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "main_job_benchmark"))
    args = ap.parse_args(argv)
    if args.repeats < 1:
        raise SystemExit("--repeats must be >= 1")
    work = Path(tempfile.mkdtemp(prefix="lowrankdp-mainjob-"))
    try:
        trees = {"old": export_tree(args.ref, work / "old"), "new": ROOT}
        caches = {k: (Path(args.cache) / k if args.cache else None) for k in trees}
        for k in trees:
            print(f"warm-up ({k}): building/finding the tiny model", flush=True)
            warm_up(trees[k], caches[k])
        runs: dict[str, list] = {"old": [], "new": []}
        for i in range(args.repeats):
            for k in ("old", "new"):
                print(f"repeat {i + 1}/{args.repeats}: {k} ...", flush=True)
                runs[k].append(run_main_job(trees[k], caches[k], work / f"out-{k}-{i}"))
                print(f"  {runs[k][-1]['wall_s']:.0f} s", flush=True)
        if args.keep:
            shutil.copytree(work / f"out-new-{args.repeats - 1}", args.keep, dirs_exist_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mean = {k: {ph: sum(r[ph] for r in v) / len(v) for ph in ("data_s", "models_s", "runs_s", "report_s",
                                                               "other_s", "wall_s")} for k, v in runs.items()}
    doc = {"old_ref": args.ref, "repeats": args.repeats, "runs": runs, "mean": mean,
           "ratio_wall": mean["new"]["wall_s"] / mean["old"]["wall_s"], "provenance": provenance()}
    text = render(doc)
    print(text)
    atomic_write_text(args.out + ".md", text)
    atomic_write_json(args.out + ".json", doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
