"""Noisy matrix mechanism: attack AUC and certified ε lower bound against the accountant's ε for the same
mechanism and threat model, over σ and r (docs/theory.md §4). Writes docs/results/attack_matrix_noisy.{md,json}.

    .venv/bin/python experiments/attack_matrix_noisy.py [--trials 4000]

Audits (the accountant must never be below the certified lower bound):
- M2 = M(V + E), attacker knows A, exact likelihood ratio; fresh A, one release → accountant
  `projection="fresh"`; fixed A, 4 releases → `projection="fixed"` (rank-one ΔV independent of A).
- Plain-Gaussian ε beside it (no credit for the projection).
Reported without an accountant (none applies): M1 = MV + E with A known.
Baseline with A unknown: the correlation test on M2.
"""

from __future__ import annotations

import attack_common  # noqa: F401  (first: sets the BLAS thread count before numpy loads)
import argparse
import time

from attack_common import table, write
from lowrankdp.attacks.matrix import MatrixAttackConfig, ThreatModel, run_matrix_attack

KNOWS_A = ThreatModel(knows_projection=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=4000)
    ap.add_argument("--d", type=int, default=64)
    args = ap.parse_args()
    d = args.d
    t0 = time.perf_counter()
    rows, data, violations = [], [], []
    settings = [
        ("m2", "fresh", 1, "likelihood_ratio", KNOWS_A),
        ("m2", "fixed", 4, "likelihood_ratio", KNOWS_A),
        ("m2", "fresh", 1, "correlation", ThreatModel(knows_projection=False)),
        ("m1", "fresh", 1, "likelihood_ratio", KNOWS_A),
    ]
    for mech, proj, rel, dist, threat in settings:
        for r in (4, 16, d):
            for sigma in (0.25, 0.5, 1.0, 2.0, 4.0):
                cfg = MatrixAttackConfig(d=d, r=r, columns=2, mechanism=mech, sigma=sigma, projection=proj,
                                         releases=rel, distinguisher=dist, threat=threat, trials=args.trials,
                                         n_bootstrap=0, seed=int(100 * sigma) + r)
                res = run_matrix_attack(cfg)
                rep, acc = res.report, res.accountant
                ok = None if acc["epsilon"] is None else rep.epsilon_lower_bound <= acc["epsilon"]
                if ok is False:
                    violations.append(cfg.to_dict())
                rows.append([mech, proj, rel, dist, r, sigma, acc.get("noise_multiplier"), rep.auc,
                             rep.tpr_at_fpr[0.01], rep.epsilon_lower_bound, acc["epsilon"], acc["epsilon_plain"], ok])
                data.append(res.to_dict())
                print(rows[-1], flush=True)
    body = (
        f"d = {d}, two columns, the target column replaced by an independent unit vector (‖ΔV‖_F = √2 ≈ 1.414, "
        f"so the noise multiplier is z = σ/√2), {args.trials} trials per side, δ = 1e-5. ε lower bound: "
        "Clopper–Pearson at 95 % with the threshold chosen on half the trials (`lowrankdp.metrics`). "
        "Accountant: `lowrankdp.accounting.epsilon` (RDP; sampling rate 1, steps = releases) for the projection "
        "named in the row; 'plain' is the Gaussian mechanism without projection credit. '—' = no accountant "
        "applies (M1: sensitivity ‖AᵀAΔV‖ unbounded over A).\n\n"
        f"**Lower bound ≤ accountant in every audited row: {'yes' if not violations else 'NO — see JSON'}.**\n\n"
        + table(["mechanism", "A", "releases", "test", "r", "σ", "z", "AUC", "TPR@1%", "ε lower bound",
                 "ε accountant", "ε plain", "lb ≤ acc"], rows)
        + "\n\nReading: the likelihood-ratio attack with A known is the optimal test given A, so its gap to the "
        "accountant is the accountant's slack plus the finite-trial cost of certification (with 4,000 trials "
        "per side a certified ε above ≈ 6 is out of reach). M1 leaks more than M2 at the same σ: its "
        "sensitivity given A is ‖AᵀAΔV‖, which exceeds ‖ΔV‖ by up to (1 + √(d/r))²."
    )
    path = write("attack_matrix_noisy", "Noisy matrix mechanism: attacks vs the accountant", body,
                 {"results": data, "violations": violations}, wall_s=time.perf_counter() - t0)
    print(path)


if __name__ == "__main__":
    main()
