"""One-run audit statistics on mechanisms with known ε: perfect-attack ceilings, idealised
Gaussian canaries at ε = 2 / 4 / 8 with m = 1,000, and how often each lower bound exceeds the truth.

Writes docs/results/audit_idealised.{md,json} with provenance.
Usage: python experiments/audit_idealised.py [--reps 50] [--validity-reps 200]   (≈ 25 s on 2 cores)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import optimize, special, stats

from attack_common import fmt, table, write
from lowrankdp.audit import gdp_epsilon, guesses_from_scores, max_certifiable_epsilon, one_run_epsilon, one_run_mu

DELTA = 1e-5
ANALYSES = (("SNJ", dict(method="snj")), ("f-DP, Gaussian curve", dict(method="fdp", curve="gaussian")),
            ("f-DP, (ε,δ) curve", dict(method="fdp", curve="epsilon_delta")))
KS = (10, 25, 50, 100, 250)  # guesses on each side


def mu_for(eps: float) -> float:
    return optimize.brentq(lambda u: gdp_epsilon(mu=u, delta=DELTA) - eps, 1e-3, 30.0, xtol=1e-10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--validity-reps", type=int, default=200)
    args = ap.parse_args()
    t0 = time.time()
    data: dict = {"delta": DELTA, "confidence": 0.95}

    # 1. Perfect attack: every canary guessed, all correct.
    ceil_rows = []
    for m in (100, 1000, 10000):
        ceil_rows.append([m] + [max_certifiable_epsilon(canaries=m, delta=DELTA, **kw) for _, kw in ANALYSES])
    data["perfect_attack"] = ceil_rows

    # 2. Idealised Gaussian canaries: score = μ·b + N(0, 1), μ-GDP with ε(δ = 1e-5) = 2, 4, 8; m = 1,000.
    rng = np.random.default_rng(2026)
    m = 1000
    ideal = {}
    for eps in (2.0, 4.0, 8.0):
        mu = mu_for(eps)
        per_k = {}
        for k in KS:
            vals = []
            for _ in range(args.reps):
                b = rng.random(m) < 0.5
                g, c = guesses_from_scores(mu * b + rng.standard_normal(m), b, k_pos=k, k_neg=k)
                vals.append([one_run_epsilon(canaries=m, guesses=g, correct=c, delta=DELTA, **kw) for _, kw in ANALYSES])
            per_k[k] = np.median(vals, axis=0).tolist()
        best = np.max(np.array(list(per_k.values())), axis=0).tolist()
        ideal[eps] = {"mu": mu, "per_k": per_k, "best_k_median": best}
    data["idealised"] = ideal

    # 3. Validity: how often the bound exceeds the truth (should be ≤ β = 5 %).
    vrng = np.random.default_rng(7)
    rr_eps, n = 1.0, 500
    q = special.expit(rr_eps)
    truths = {"RR ε = 1 (all guessed)": (rr_eps, 2 * stats.norm.ppf(q)), "Gaussian μ = 2 (top/bottom 25)": None}
    validity = {}
    for name in truths:
        counts = {"SNJ": 0, "f-DP (ε,δ)": 0, "f-DP μ": 0}
        if name.startswith("RR"):
            eps_true, mu_true = truths[name]
        else:
            mu_true = 2.0
            eps_true = gdp_epsilon(mu=mu_true, delta=DELTA)
        for _ in range(args.validity_reps):
            b = vrng.random(n) < 0.5
            if name.startswith("RR"):
                out = np.where(vrng.random(n) < q, b, ~b)
                g, c = guesses_from_scores(out + 1e-9 * vrng.random(n), b, k_pos=int(out.sum()), k_neg=n - int(out.sum()))
            else:
                g, c = guesses_from_scores(mu_true * b + vrng.standard_normal(n), b, k_pos=25, k_neg=25)
            kw = dict(canaries=n, guesses=g, correct=c)
            counts["SNJ"] += one_run_epsilon(**kw, delta=DELTA, method="snj") > eps_true
            counts["f-DP (ε,δ)"] += one_run_epsilon(**kw, delta=DELTA, method="fdp", curve="epsilon_delta") > eps_true
            counts["f-DP μ"] += one_run_mu(**kw) > mu_true
        validity[name] = {"eps_true": eps_true, "mu_true": mu_true, "exceed": counts, "reps": args.validity_reps}
    data["validity"] = validity
    limit = int(stats.binom.ppf(0.999, args.validity_reps, 0.05))

    body = [
        "Lower bounds at δ = 1e-5, 95 % confidence; m canaries each included with probability ½.",
        "",
        "## Perfect attack (every canary guessed correctly): the largest ε an m-canary audit can certify",
        "",
        table(["m", "SNJ", "f-DP, Gaussian curve", "f-DP, (ε,δ) curve"], ceil_rows),
        "",
        "The reference ceilings are 3.49 / 5.78 / 7.83 for SNJ: reproduced. The Gaussian-curve f-DP figure assumes the mechanism's "
        "trade-off curve is Gaussian (μ-GDP) and converts the rejected μ to ε at δ; the (ε,δ)-curve figure assumes nothing.",
        "",
        f"## Idealised Gaussian canaries, m = {m} (median of {args.reps} runs; guesses: top k and bottom k)",
        "",
    ]
    rows = []
    for eps, res in ideal.items():
        for k, v in res["per_k"].items():
            rows.append([eps, fmt(res["mu"]), k] + v)
        rows.append([eps, fmt(res["mu"]), "best k"] + res["best_k_median"])
    body += [table(["accountant ε", "μ", "k per side", "SNJ", "f-DP Gaussian", "f-DP (ε,δ)"], rows), ""]
    best = {e: r["best_k_median"] for e, r in ideal.items()}
    body += [
        "Literature figures for this setting (docs/theory.md §9.4): SNJ ≈ 0.7 / 1.7 / 2.5 and f-DP ≈ 1.0 / 2.3 / 3.9 at "
        f"ε = 2 / 4 / 8. Here (best k, median): SNJ {fmt(best[2.0][0], 3)} / {fmt(best[4.0][0], 3)} / {fmt(best[8.0][0], 3)}, "
        f"f-DP Gaussian {fmt(best[2.0][1], 3)} / {fmt(best[4.0][1], 3)} / {fmt(best[8.0][1], 3)}. "
        f"At ε = 2 and 4 ours differ from the quoted figures by at most "
        f"{max(abs(best[2.0][0] - 0.7), abs(best[4.0][0] - 1.7), abs(best[2.0][1] - 1.0), abs(best[4.0][1] - 2.3)):.2f} "
        "(lower); at ε = 8 ours are higher. We did not find the literature's exact protocol (k grid, whether k is chosen per run, how many runs "
        "are averaged); picking the best k after seeing results, as here and in such figures, is optimistic — an "
        "audit must fix k in advance (the DP-SGD audits in audit_dpsgd.md do). The (ε,δ)-curve f-DP analysis is "
        "within a few % of SNJ everywhere: the f-DP gain comes from assuming the Gaussian curve.",
        "",
        f"## Validity: runs (of {args.validity_reps}) whose lower bound exceeds the truth",
        "",
        f"A valid 95 % bound exceeds the truth in at most 5 % of runs in expectation; the test in tests/test_audit.py "
        f"fails above {limit} (the 0.999 quantile of Bin({args.validity_reps}, 0.05)).",
        "",
        table(["mechanism", "true ε", "true μ", "SNJ > ε", "f-DP (ε,δ) > ε", "f-DP μ > μ"],
              [[k, v["eps_true"], v["mu_true"], v["exceed"]["SNJ"], v["exceed"]["f-DP (ε,δ)"], v["exceed"]["f-DP μ"]]
               for k, v in validity.items()]),
        "",
        "Randomised response with every canary guessed is the case where the bounds are nearly tight (SNJ at this "
        "m is close to an exact binomial test), so exceedances near 5 % are expected there; the same runs judged "
        "against a truth 10 % lower exceed it far more often (tests/test_audit.py), so the check has power. "
        "On the Gaussian mechanism one-run bounds sit far below the truth and the check cannot fail: not testable "
        "there beyond 'no exceedance'.",
    ]
    md = write("audit_idealised", "One-run audits on mechanisms with known ε", "\n".join(body), data,
               wall_s=time.time() - t0)
    print(md.read_text())


if __name__ == "__main__":
    main()
