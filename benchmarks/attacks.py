"""Benchmark of the matrix-mechanism distinguishers: 10⁴ trials per side at d = 256, r = 16.

Times simulation + scoring (`MatrixAttackResult.seconds`: both sides, every trial draws its own A),
excluding the metrics (bootstrap). Target: under 10 s per distinguisher on the 2-core CI machine.
Prints a Markdown table and writes docs/results/attacks_benchmark.{md,json} with provenance.

    .venv/bin/python benchmarks/attacks.py [--trials 10000] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys

if __name__ == "__main__":  # BLAS threads must be fixed before numpy loads
    _t = "1"
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            _t = sys.argv[i + 1]
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _t)

import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from lowrankdp.attacks.matrix import MatrixAttackConfig, ThreatModel, run_matrix_attack  # noqa: E402
from lowrankdp.results import to_jsonable  # noqa: E402
from lowrankdp.provenance import provenance  # noqa: E402

CASES = [
    ("symmetry", dict(columns=2)),
    ("reconstruction", dict(columns=17, distinguisher="reconstruction")),
    ("likelihood_ratio (vector query, noise-free)", dict(columns=1, distinguisher="likelihood_ratio", rho=0.5)),
    ("likelihood_ratio (M2, A known, σ = 1)", dict(columns=2, mechanism="m2", sigma=1.0,
                                                    distinguisher="likelihood_ratio",
                                                    threat=ThreatModel(knows_projection=True))),
    ("likelihood_ratio (M1, A known, σ = 1)", dict(columns=2, mechanism="m1", sigma=1.0,
                                                    distinguisher="likelihood_ratio",
                                                    threat=ThreatModel(knows_projection=True))),
    ("correlation (M2, A unknown, σ = 1)", dict(columns=2, mechanism="m2", sigma=1.0, distinguisher="correlation")),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "results"))
    args = ap.parse_args()
    rows = []
    for name, kw in CASES:
        run_matrix_attack(MatrixAttackConfig(d=256, r=16, trials=50, n_bootstrap=0, **kw))  # warm-up
        t0 = time.perf_counter()
        res = run_matrix_attack(MatrixAttackConfig(d=256, r=16, trials=args.trials, n_bootstrap=0, **kw))
        wall = time.perf_counter() - t0
        rows.append({"distinguisher": name, "columns": kw["columns"], "trials_per_side": args.trials,
                     "seconds": res.seconds, "us_per_trial": 1e6 * res.seconds / (2 * args.trials),
                     "seconds_with_metrics": wall, "auc": res.auc, "under_10s": res.seconds < 10.0})
        print(rows[-1], file=sys.stderr, flush=True)
    prov = provenance()
    lines = [
        "| distinguisher | columns | trials/side | seconds (sim + score) | µs per trial | AUC | < 10 s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['distinguisher']} | {r['columns']} | {r['trials_per_side']} | {r['seconds']:.2f} | "
                     f"{r['us_per_trial']:.0f} | {r['auc']:.4f} | {'yes' if r['under_10s'] else 'NO'} |")
    md = "\n".join(lines)
    print(md)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "attacks_benchmark.md").write_text(
        "# Matrix-mechanism attacks: benchmark (d = 256, r = 16)\n\n"
        f"Simulation and scoring of {args.trials} trials per side (each trial draws its own A; float64), "
        f"{args.threads} BLAS thread(s), run by `benchmarks/attacks.py`. Metrics (AUC, bootstrap) excluded "
        "from 'seconds'.\n\n" + md + "\n\n"
        f"_Device: {prov['device']}; {prov['date']}; git {prov['git_commit']} (dirty: {prov['git_dirty']}); "
        f"numpy {prov['packages'].get('numpy')}. The machine is shared with other jobs; times are wall-clock._\n"
    )
    (out / "attacks_benchmark.json").write_text(json.dumps(to_jsonable({"rows": rows, "threads": args.threads,
                                                                          "provenance": prov}), indent=1))


if __name__ == "__main__":
    main()
