"""White-box one-run audits of DP-SGD and compressed DP-SGD on simulated Dirac canaries.

m = 1,000 gradient canaries, each in with probability ½, Poisson-sampled at q = 0.01 for T = 1,000 steps,
σ calibrated by lowrankdp.accounting to ε = 2 / 4 / 8 at δ = 1e-5. Scores: per-step subsampled-Gaussian
likelihood ratio summed over all iterates, and the last iterate alone. Guesses: top 50 and bottom 50,
fixed before any run. Also the three mutations (noise off, noise × 1/10, clipping off) and compressed DP-SGD
with published projections (fresh; fixed with Dirac canaries; fixed with span-4 canaries aligned to A).

Writes docs/results/audit_dpsgd.{md,json} with provenance.
Usage: python experiments/audit_dpsgd.py [--seeds 5]   (about 1 minute on 2 cores)
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from attack_common import fmt, table, write
from lowrankdp import accounting
from lowrankdp.accounting import OrderGridWarning, RdpAccountant, dpsgd_event
from lowrankdp.audit import audit_scores
from lowrankdp.audit.canaries import score_dirac_canaries, simulate_dpsgd_canaries, simulate_projected_dpsgd_canaries

Q, T, M, DELTA, K = 0.01, 1000, 1000, 1e-5, 50
D, R = 4000, 8


def summarise(results):
    a = np.array([[x.epsilon_snj, x.epsilon_fdp, x.epsilon_fdp_epsilon_delta] for x in results])
    return a.mean(axis=0).tolist(), a.std(axis=0, ddof=1).tolist() if len(results) > 1 else [0.0] * 3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    warnings.simplefilter("ignore", OrderGridWarning)
    t0 = time.time()
    data: dict = {"q": Q, "steps": T, "canaries": M, "delta": DELTA, "k_per_side": K, "seeds": args.seeds}

    rows, dp = [], {}
    cost = {"simulate_s": 0.0, "score_s": 0.0, "audit_s": 0.0, "runs": 0}
    for eps in (2.0, 4.0, 8.0):
        z = accounting.calibrate_noise(target_epsilon=eps, sampling_rate=Q, steps=T, delta=DELTA)
        for mode in ("all_iterates", "last_iterate"):
            res = []
            for seed in range(args.seeds):
                t1 = time.perf_counter()
                run = simulate_dpsgd_canaries(canaries=M, steps=T, sampling_rate=Q, noise_multiplier=z, seed=seed)
                t2 = time.perf_counter()
                s = score_dirac_canaries(run.observed, sampling_rate=Q, noise_multiplier=z, clip_norm=1.0, mode=mode)
                t3 = time.perf_counter()
                res.append(audit_scores(s, run.included, k_pos=K, k_neg=K, delta=DELTA))
                t4 = time.perf_counter()
                cost["simulate_s"] += t2 - t1
                cost["score_s"] += t3 - t2
                cost["audit_s"] += t4 - t3
                cost["runs"] += 1
            mean, sd = summarise(res)
            dp[f"{eps:g}/{mode}"] = {"sigma": z, "mean": mean, "sd": sd,
                                    "verdicts": [r.judge(eps)["verdict"] for r in res]}
            rows.append([eps, z, mode.replace("_", " "), f"{fmt(mean[0], 3)} ± {fmt(sd[0], 2)}",
                         f"{fmt(mean[1], 3)} ± {fmt(sd[1], 2)}", f"{fmt(mean[2], 3)} ± {fmt(sd[2], 2)}",
                         f"{mean[0] / eps:.2f} / {mean[1] / eps:.2f}"])
    data["dpsgd"] = dp

    z2 = accounting.calibrate_noise(target_epsilon=2.0, sampling_rate=Q, steps=T, delta=DELTA)
    mut_rows, mut = [], {}
    for name, kw in (("correct", {}), ("noise off", dict(noise_scale=0.0)), ("noise × 1/10", dict(noise_scale=0.1)),
                     ("clipping off (canary norm 10C)", dict(clip=False, canary_norm=10.0))):
        run = simulate_dpsgd_canaries(canaries=M, steps=T, sampling_rate=Q, noise_multiplier=z2, seed=100, **kw)
        s = score_dirac_canaries(run.observed, sampling_rate=Q, noise_multiplier=z2, clip_norm=1.0)
        r = audit_scores(s, run.included, k_pos=K, k_neg=K, delta=DELTA)
        mut[name] = {**r.to_dict(), "verdict": r.judge(2.0)}
        mut_rows.append([name, 2.0, r.correct, r.epsilon_snj, r.epsilon_fdp, r.epsilon_fdp_epsilon_delta,
                         r.judge(2.0)["verdict"]])
    data["mutations"] = mut

    comp_rows, comp = [], {}
    for proj, span in (("fresh", 1), ("fixed", 1), ("fixed", 4)):
        for eps in (2.0, 8.0):
            z = accounting.calibrate_noise(target_epsilon=eps, sampling_rate=Q, steps=T, delta=DELTA, d=D, r=R,
                                           projection=proj)
            plain = accounting.epsilon(noise_multiplier=z, sampling_rate=Q, steps=T, delta=DELTA)
            span_eps = (RdpAccountant().compose(dpsgd_event(noise_multiplier=z, sampling_rate=Q, steps=T, d=D, r=R,
                                                            projection="fixed", span_dim=span)).get_epsilon(DELTA)
                        if proj == "fixed" else eps)
            res = []
            for seed in range(max(2, args.seeds // 2)):
                inc, s, ret = simulate_projected_dpsgd_canaries(canaries=M, d=D, r=R, steps=T, sampling_rate=Q,
                                                                noise_multiplier=z, projection=proj, span=span,
                                                                seed=seed)
                res.append(audit_scores(s, inc, k_pos=K, k_neg=K, delta=DELTA))
            mean, sd = summarise(res)
            key = f"{proj}/span{span}/{eps:g}"
            comp[key] = {"sigma": z, "eps_plain": plain, "eps_span_accountant": span_eps, "mean": mean, "sd": sd,
                         "retained_fraction": float(ret.mean())}
            comp_rows.append([proj, span, eps, span_eps, plain, z, float(ret.mean()),
                              f"{fmt(mean[0], 3)} ± {fmt(sd[0], 2)}", f"{fmt(mean[1], 3)} ± {fmt(sd[1], 2)}"])
    data["compressed"] = comp
    data["cost"] = cost
    per_run_score = (cost["score_s"] + cost["audit_s"]) / cost["runs"]

    body = [
        f"Simulated DP-SGD on canary coordinates only (numpy; `lowrankdp.audit.canaries`), m = {M}, q = {Q}, "
        f"T = {T}, δ = {DELTA:g}, 95 % confidence, top/bottom {K} guessed (fixed in advance), mean ± sd over "
        f"{args.seeds} seeds.",
        "",
        "## DP-SGD at accountant ε = 2 / 4 / 8",
        "",
        table(["accountant ε", "σ", "observed", "SNJ", "f-DP Gaussian", "f-DP (ε,δ)", "ratio SNJ / f-DP"], rows),
        "",
        "Literature one-run white-box figures (docs/theory.md §9.4): SNJ report ≈ 1.8 at ε = 4; idealised Gaussian canaries at m = 1,000 give ≈ 0.7 / 1.7 / 2.5 (SNJ) "
        "and 1.0 / 2.3 / 3.9 (f-DP) — see audit_idealised.md for our idealised figures. Our subsampled audits sit "
        "below the idealised ones: at q = 0.01 each canary is seen in ≈ 10 of 1,000 steps and the per-step likelihood "
        "ratio is diluted by the 99 % of steps where it was not sampled; the accountant's ε is driven by a tail that "
        "1,000 canaries rarely reach. The last iterate alone certifies far less.",
        "",
        "## Mutations (accountant told σ for ε = 2; the run is broken)",
        "",
        table(["run", "claimed ε", "correct of 100", "SNJ", "f-DP Gaussian", "f-DP (ε,δ)", "verdict"], mut_rows),
        "",
        "Each mutation is caught: its audited lower bound exceeds the claimed ε (tests/test_audit_canaries.py asserts it).",
        "",
        f"## Compressed DP-SGD (d = {D}, r = {R}, A_t published), σ calibrated to the projection's accountant",
        "",
        table(["projection", "canary span", "engine's ε (span 1)", "ε for this span", "plain ε at σ", "σ",
               "mean uᵀP_Au", "SNJ", "f-DP Gaussian"], comp_rows),
        "",
        "Finding: no audit comes near the amplified ε. With Dirac canaries independent of A a canary keeps r/d = "
        "0.2 % of its norm per step (fresh or fixed); the effective per-canary signal is a fraction of one GDP unit "
        "and 1,000 canaries certify ≈ 0.1–0.3 whatever the accountant says, so the audit neither confirms nor "
        "contradicts the fresh/fixed amplification — at this m it is not testable beyond 'no violation'. Canaries "
        "whose gradient spans 4 directions and aligns with A (the λ_max direction, as a deep network's gradient can) "
        "keep about twice as much, and the span-4 fixed accountant is "
        f"{min(v['eps_span_accountant'] / float(k.split('/')[-1]) for k, v in comp.items() if 'span4' in k) - 1:.0%}–"
        f"{max(v['eps_span_accountant'] / float(k.split('/')[-1]) for k, v in comp.items() if 'span4' in k) - 1:.0%} "
        "above the engine's span-1 number, but "
        "that gap is far below what 1,000 canaries resolve. The question 'does the audit exceed the fixed ε "
        "when canaries span several directions' is answered: not at m = 1,000 (not testable here).",
        "",
        "## Cost of auditing",
        "",
        f"Scoring the (T × m) = ({T} × {M}) observations and running the three analyses: {per_run_score:.3f} s per run "
        f"(simulation itself {cost['simulate_s'] / cost['runs']:.3f} s). In the engine the scorer reads m coordinates "
        "per step (no extra backward passes; a Dirac canary's clipped gradient is C·e_j, so it can be added to the "
        "summed gradient without a forward pass), so the audit's share of a run is the final "
        f"{per_run_score:.2f} s against a smoke run of ≈ 70 s per method (README, 2-core machine): well under 1 %. "
        "Not measured inside the engine (the engine is not wired yet).",
    ]
    md = write("audit_dpsgd", "White-box one-run audits of DP-SGD (simulated canaries)", "\n".join(body), data,
               wall_s=time.time() - t0)
    print(md.read_text())


if __name__ == "__main__":
    main()
