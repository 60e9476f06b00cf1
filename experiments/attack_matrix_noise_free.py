"""Noise-free Wishart matrix mechanism: AUC of the symmetry and reconstruction tests for
d ∈ {16, 64, 256}, r ∈ {4, 16, d/2}, and the vector query (one column) for comparison ([LRP] Thm 1–2,
docs/theory.md §2–§3). Writes docs/results/attack_matrix_noise_free.{md,json}. About a minute on 2 cores.

    .venv/bin/python experiments/attack_matrix_noise_free.py [--trials 2000]
"""

from __future__ import annotations

import attack_common  # noqa: F401  (first: sets the BLAS thread count before numpy loads)
import argparse
import time

import numpy as np

from attack_common import table, write
from lowrankdp.attacks.matrix import MatrixAttackConfig, run_matrix_attack, support_violation_probability


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=2000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows, data = [], []
    for d in (16, 64, 256):
        for r in sorted({4, 16, d // 2}):
            for dist, cols in (("symmetry", 2), ("reconstruction", r + 1)):
                res = run_matrix_attack(MatrixAttackConfig(d=d, r=r, columns=cols, distinguisher=dist,
                                                           trials=args.trials, n_bootstrap=200, seed=d + r))
                rep = res.report
                rows.append([d, r, dist, cols, rep.auc, f"{rep.auc_ci[0]:.4f}–{rep.auc_ci[1]:.4f}",
                             rep.tpr_at_fpr[0.001], rep.tpr_at_fpr[0.01], rep.epsilon_lower_bound, res.seconds])
                data.append(res.to_dict())
                print(rows[-1], flush=True)
    vec_rows = []
    for d in (16, 64, 256):
        for r in sorted({4, 16, d // 2}):
            for rho in (0.0, 0.5, 0.9):
                res = run_matrix_attack(MatrixAttackConfig(d=d, r=r, columns=1, distinguisher="likelihood_ratio",
                                                           rho=rho, trials=args.trials, n_bootstrap=200, seed=d + r))
                viol = float(np.mean(res.scores_out <= -1e300))
                vec_rows.append([d, r, rho, res.report.auc, res.report.tpr_at_fpr[0.001], res.report.tpr_at_fpr[0.01],
                                 viol, support_violation_probability(rho=rho, r=r), res.report.epsilon_lower_bound])
                data.append(res.to_dict())
                print(vec_rows[-1], flush=True)
    body = (
        f"Each row: {args.trials} trials per side (members: output `MV_in`; non-members: `MV_out`), a fresh "
        "`A` (entries N(0, 1/r)) per trial, one release, unit-norm columns, the target column replaced by an "
        "independent unit vector (ρ = 0). Threat model: the attacker knows the other columns and both "
        "candidate target columns, not `A`. ε lower bound: Clopper–Pearson, 95 %, δ = 1e-5, threshold chosen on "
        "half the trials — with perfect separation it is capped by the trial count (≈ 5.6 for 1,000 "
        "evaluation trials per side), not by the mechanism.\n\n"
        "## Matrix query (columns ≥ 2): [LRP] Thm 2 — perfectly distinguishable\n\n"
        + table(["d", "r", "test", "columns", "AUC", "AUC 95% CI", "TPR@0.1%", "TPR@1%", "ε lower bound", "s"], rows)
        + "\n\n## Vector query (one column, exact likelihood ratio, docs/theory.md §2)\n\n"
        "The output of the vector query has a density (docs/theory.md §2 fact 2); the two neighbours' supports "
        "differ only on the half-space `v_inᵀy ≤ 0`, hit by a non-member with probability δ_supp(ρ, r). "
        "So the AUC is below 1, the TPR at low FPR is set by δ_supp, and both fall as the alignment ρ grows — "
        "what [LRP] Thm 1 says (private only on aligned datasets). At r = d/2 and d = 256 the exact ε of the "
        "vector query is in the hundreds even at ρ = 0.9 (docs/theory.md §2 reference table), so an AUC ≈ 1 there is "
        "expected, not a contradiction.\n\n"
        + table(["d", "r", "ρ", "AUC", "TPR@0.1%", "TPR@1%", "non-members outside support (measured)",
                 "δ_supp(ρ, r) (closed form)", "ε lower bound"], vec_rows)
    )
    path = write("attack_matrix_noise_free", "Noise-free matrix mechanism: membership AUC", body,
                 {"results": data}, wall_s=time.perf_counter() - t0)
    print(path)


if __name__ == "__main__":
    main()
