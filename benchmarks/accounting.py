"""Accounting benchmark: our RDP accountant (plain, fresh, fixed) beside dp_accounting's RDP and PLD.

Measures, in one run on this machine: the RDP curve at 64 integer orders (2..65); ε for T ∈ {10³, 10⁴, 10⁵};
noise calibration to a target ε — for plain DP-SGD, fresh projection and fixed projection — and the same
plain-Gaussian tasks with dp_accounting (RDP and PLD). Ratios are ours / dp_accounting in the same run.
Prints Markdown and writes docs/results/accounting_benchmark.{md,json} with provenance.

Setting: q = 0.01, z = 1.0, δ = 1e-5, d = 768, r = 8; calibration target ε = 1 at T = 1000.
Targets: ε in < 50 ms for any T with RDP, calibration < 1 s, fixed projection < 1 s.
"""

from __future__ import annotations

import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

from lowrankdp import accounting as A
from lowrankdp.provenance import provenance

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results"
Q, Z, DELTA, D, R = 0.01, 1.0, 1e-5, 768, 8
ORDERS64 = list(range(2, 66))
STEPS = (1_000, 10_000, 100_000)
TARGET, T_CAL = 1.0, 1000


def timed(fn, repeat=3):
    vals, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        vals.append(time.perf_counter() - t)
    return out, statistics.median(vals)


def main() -> None:
    warnings.simplefilter("ignore")
    import dp_accounting as dpa
    from dp_accounting.pld import pld_privacy_accountant
    from dp_accounting.rdp import rdp_privacy_accountant

    rows = []

    def add(task, method, value, seconds, extra=None):
        rows.append({"task": task, "method": method, "value": value, "seconds": seconds, **(extra or {})})
        print(f"{task:28s} {method:28s} value={value!s:22.22s} {seconds*1e3:10.1f} ms", flush=True)

    # 1. RDP curve at 64 orders (one step; the curve is what the accountant composes)
    for proj in ("none", "fresh", "fixed"):
        ev = A.dpsgd_event(noise_multiplier=Z, sampling_rate=Q, steps=1000, d=D, r=R, projection=proj)
        val, s = timed(lambda ev=ev: A.RdpAccountant(orders=ORDERS64).compose(ev).get_rdp())
        add("rdp curve (64 orders)", f"lowrankdp rdp {proj}", float(val[10]), s)

    def dpa_rdp_curve():
        acc = rdp_privacy_accountant.RdpAccountant(orders=ORDERS64)
        acc.compose(dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(Q, dpa.GaussianDpEvent(Z)), 1000))
        return acc._rdp

    val, s = timed(dpa_rdp_curve)
    add("rdp curve (64 orders)", "dp_accounting rdp none", float(val[10]), s)

    # 2. epsilon for T in 1e3, 1e4, 1e5
    for T in STEPS:
        for proj in ("none", "fresh", "fixed"):
            val, s = timed(lambda T=T, proj=proj: A.epsilon(noise_multiplier=Z, sampling_rate=Q, steps=T, delta=DELTA,
                                                            d=D, r=R, projection=proj))
            add(f"epsilon T={T}", f"lowrankdp rdp {proj}", val, s)
        val, s = timed(lambda T=T: A.epsilon(noise_multiplier=Z, sampling_rate=Q, steps=T, delta=DELTA, d=D, r=R,
                                             projection="fresh", accountant="pld"), repeat=1)
        add(f"epsilon T={T}", "lowrankdp pld fresh", val, s)

        def dpa_rdp(T=T):
            acc = rdp_privacy_accountant.RdpAccountant()
            acc.compose(dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(Q, dpa.GaussianDpEvent(Z)), T))
            return acc.get_epsilon(DELTA)

        def dpa_pld(T=T):
            acc = pld_privacy_accountant.PLDAccountant()
            acc.compose(dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(Q, dpa.GaussianDpEvent(Z)), T))
            return acc.get_epsilon(DELTA)

        val, s = timed(dpa_rdp)
        add(f"epsilon T={T}", "dp_accounting rdp none", val, s)
        val, s = timed(dpa_pld, repeat=1)
        add(f"epsilon T={T}", "dp_accounting pld none", val, s)

    # 3. calibration (target eps = 1 at T = 1000)
    for proj in ("none", "fresh", "fixed"):
        val, s = timed(lambda proj=proj: A.calibrate_noise(target_epsilon=TARGET, sampling_rate=Q, steps=T_CAL,
                                                           delta=DELTA, d=D, r=R, projection=proj), repeat=1)
        add("calibration eps=1, T=1000", f"lowrankdp rdp {proj}", val, s)

    def dpa_cal(make):
        return dpa.calibrate_dp_mechanism(
            make, lambda z: dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(Q, dpa.GaussianDpEvent(z)), T_CAL),
            TARGET, DELTA, dpa.LowerEndpointAndGuess(0.1, 1.0), tol=1e-4)

    val, s = timed(lambda: dpa_cal(rdp_privacy_accountant.RdpAccountant), repeat=1)
    add("calibration eps=1, T=1000", "dp_accounting rdp none", val, s)
    val, s = timed(lambda: dpa_cal(pld_privacy_accountant.PLDAccountant), repeat=1)
    add("calibration eps=1, T=1000", "dp_accounting pld none", val, s)

    # 4. fresh-projection PLD (the b-mixture of ~60 sampled-Gaussian PLDs): our vectorised construction beside
    #    dp_accounting's per-point one, same PLD, same run; and PLD calibration under its default 10 s budget
    ev_fresh = A.dpsgd_event(noise_multiplier=0.8, sampling_rate=Q, steps=T_CAL, d=D, r=R, projection="fresh")
    for vec in (True, False):
        val, s = timed(lambda vec=vec: A.PldAccountant(vectorised=vec).compose(ev_fresh).get_epsilon(DELTA, rdp_hint=1.0),
                       repeat=3)
        add("fresh PLD eps, z=0.8, T=1000", f"lowrankdp pld fresh{'' if vec else ' (dp_accounting per point)'}",
            val, s)
    for name, kw in (("calibration pld eps=1, T=1000", dict(target_epsilon=TARGET, sampling_rate=Q, steps=T_CAL,
                                                               delta=DELTA, d=D, r=R)),
                     ("calibration pld review case", dict(target_epsilon=0.81, sampling_rate=0.004, steps=25,
                                                          delta=1.4e-10, d=3784, r=25))):
        val, s = timed(lambda kw=kw: A.calibrate_noise(projection="fresh", accountant="pld", **kw), repeat=1)
        achieved = A.epsilon(noise_multiplier=val, projection="fresh", accountant="pld",
                             **{k: v for k, v in kw.items() if k != "target_epsilon"})
        add(name, "lowrankdp pld fresh", val, s, {"achieved_epsilon": achieved, "target": kw["target_epsilon"]})

    # ratios against dp_accounting on the plain Gaussian, same task, same run
    def get(task, method):
        return next(r for r in rows if r["task"] == task and r["method"] == method)

    for r in rows:
        if r["method"].startswith("lowrankdp"):
            try:
                ref = get(r["task"], "dp_accounting rdp none")
            except StopIteration:  # tasks dp_accounting has no counterpart for
                continue
            r["time_ratio_vs_dpa_rdp"] = r["seconds"] / ref["seconds"]
            try:
                r["time_ratio_vs_dpa_pld"] = r["seconds"] / get(r["task"], "dp_accounting pld none")["seconds"]
            except StopIteration:
                pass

    eps_rdp = [r for r in rows if r["task"].startswith("epsilon") and r["method"].startswith("lowrankdp rdp")]
    cal = [r for r in rows if r["task"].startswith("calibration") and r["method"].startswith("lowrankdp rdp")]
    fixed = [r for r in rows if r["method"] == "lowrankdp rdp fixed" and not r["task"].startswith("calibration")]
    targets = {
        "epsilon_rdp_under_50ms_any_T": {p: all(r["seconds"] < 0.05 for r in eps_rdp if r["method"].endswith(p))
                                         for p in ("none", "fresh", "fixed")},
        "calibration_under_1s": {r["method"].split()[-1]: r["seconds"] < 1.0 for r in cal},
        "fixed_under_1s": all(r["seconds"] < 1.0 for r in fixed),
    }
    prov = provenance()
    result = {"provenance": prov, "setting": {"q": Q, "z": Z, "delta": DELTA, "d": D, "r": R,
                                              "calibration_target": TARGET, "calibration_steps": T_CAL},
              "rows": rows, "targets": targets}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "accounting_benchmark.json").write_text(json.dumps(result, indent=2, default=float))
    lines = ["# Accounting benchmark", "",
             f"q = {Q}, z = {Z}, δ = {DELTA:g}, d = {D}, r = {R}; calibration to ε = {TARGET} at T = {T_CAL}. "
             "Times are medians of 3 runs (1 run for PLD and calibration), measured in one run of "
             "`benchmarks/accounting.py`; ratio = ours / dp_accounting on the plain Gaussian, same task.",
             "", "| task | method | value (ε or z) | time (ms) | ÷ dp_acc. RDP | ÷ dp_acc. PLD |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        v = r["value"]
        vs = f"{v:.4f}" if isinstance(v, float) else str(v)
        ra = f"{r['time_ratio_vs_dpa_rdp']:.2f}" if "time_ratio_vs_dpa_rdp" in r else ""
        rp = f"{r['time_ratio_vs_dpa_pld']:.3f}" if "time_ratio_vs_dpa_pld" in r else ""
        lines.append(f"| {r['task']} | {r['method']} | {vs} | {r['seconds']*1e3:.1f} | {ra} | {rp} |")
    fresh_pld = [r for r in rows if r["task"].startswith("fresh PLD")]
    ratio = fresh_pld[0]["seconds"] / fresh_pld[1]["seconds"]
    lines += ["", f"Fresh-projection PLD (the b-mixture of sampled-Gaussian PLDs): vectorised / dp_accounting per point "
              f"= {ratio:.3f} in time, ε {fresh_pld[0]['value']:.6f} vs {fresh_pld[1]['value']:.6f} (same PLD).",
              "PLD calibration (default 10 s budget covering the RDP start, the coarse PLD search and the final "
              "check): " + "; ".join(f"{r['task'].removeprefix('calibration pld ')}: z = {r['value']:.5g}, achieved "
                                     f"ε {r['achieved_epsilon']:.4f} for target {r['target']}, {r['seconds']:.1f} s"
                                     for r in rows if r["task"].startswith("calibration pld"))]
    result["fresh_pld_time_ratio_vectorised_vs_per_point"] = ratio
    (OUT / "accounting_benchmark.json").write_text(json.dumps(result, indent=2, default=float))
    lines += ["", "Targets: " + json.dumps(targets), "",
              f"Machine: {prov['device']}; date {prov['date']}; commit {prov['git_commit']} (dirty={prov['git_dirty']}); "
              f"numpy {prov['packages']['numpy']}, scipy {prov['packages']['scipy']}, "
              f"dp-accounting {prov['packages']['dp-accounting']}.",
              "", "The machine is shared (2 cores, several concurrent jobs), so absolute times are noisy; ratios are "
              "measured side by side."]
    (OUT / "accounting_benchmark.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
