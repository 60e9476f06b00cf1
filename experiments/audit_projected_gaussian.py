"""Full privacy audit of the projected Gaussian accountants by simulation.

Runs the M2 mechanism itself (``lowrankdp.accounting.audit``; conventions there) on worst-case neighbouring
pairs, for each projection kind and ΔV scenario — unsampled at two small settings, and Poisson-sampled over 50
steps where the fresh projection's truncated moment (docs/theory.md §4.8) is what gives the RDP number — and
compares
  * the 95 % Clopper–Pearson ε lower bound of the optimal (likelihood-ratio) attack, and
  * the hockey-stick estimate δ̂(ε_acct) ± se at the accountant's ε,
with the accountant's ε at the same δ. Writes docs/results/accounting_audit.{md,json} with provenance.

Usage: python experiments/audit_projected_gaussian.py [--n 50000]   (about 2–4 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

from lowrankdp import accounting as A
from lowrankdp.accounting.audit import hockey_stick, simulate_privacy_loss
from lowrankdp.accounting.pld import fixed_projection_pld_epsilon
from lowrankdp.metrics import epsilon_lower_bound
from lowrankdp.provenance import provenance

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results"

CASES = [  # (projection, scenario, which accountant claim is audited, assumption holds?)
    ("none", "rank_one", "none", True),
    ("fresh", "rank_one", "fresh", True),
    ("fresh", "rank_two", "fresh_span2", True),
    ("fixed", "rank_one", "fixed", True),
    ("fixed", "rank_two", "fixed_span2", True),
    ("fixed", "in_rowspace", "fixed", False),
    ("fixed", "span", "fixed", False),
    ("fixed", "span", "fixed_spank", True),
    ("fixed", "in_rowspace", "none", True),
]
SAMPLED_CASES = [c for c in CASES if c[0] == "fresh"]  # "none" runs the identity as a d×d projection: too slow at d=128
SETTINGS = [
    dict(d=16, r=2, z=1.0, T=8, delta=1e-2, span_k=12, q=1.0, cases=CASES),
    dict(d=64, r=4, z=0.7, T=4, delta=1e-3, span_k=40, q=1.0, cases=CASES),
    dict(d=128, r=2, z=0.5, T=50, delta=1e-3, span_k=2, q=0.02, cases=SAMPLED_CASES),
]


def accountant(s: dict, claim: str) -> dict:
    z, d, r, T, delta, q = s["z"], s["d"], s["r"], s["T"], s["delta"], s["q"]

    def sampled(ev):
        return A.PoissonSampledEvent(q, ev) if q < 1 else ev

    base = A.SelfComposedEvent(sampled(A.GaussianEvent(z)), T)
    events = {
        "none": base,
        "fresh": A.SelfComposedEvent(sampled(A.FreshProjectedGaussianEvent(z, d, r)), T),
        "fresh_span2": A.SelfComposedEvent(sampled(A.FreshProjectedGaussianEvent(z, d, r, span_dim=2)), T),
        "fixed": A.FixedProjectionEvent(base, d, r),
        "fixed_span2": A.FixedProjectionEvent(base, d, r, span_dim=2),
        "fixed_spank": A.FixedProjectionEvent(base, d, r, span_dim=s["span_k"]),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        racc = A.RdpAccountant(n_lambda_samples=20000).compose(events[claim])
        out = {"rdp": racc.get_epsilon(delta), "rdp_truncation": racc.details.get("fresh_truncation")}
        if claim in ("none", "fresh", "fresh_span2"):
            out["pld"] = A.PldAccountant(value_discretization_interval=1e-3).compose(events[claim]).get_epsilon(delta)
        else:  # fixed projection: the b-mixture of exact plain-run PLDs (docs/theory.md §4.7)
            out["pld"] = fixed_projection_pld_epsilon(events[claim], delta, value_discretization_interval=1e-3)[0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=50000, help="runs of the mechanism per world and case")
    args = ap.parse_args()
    t0 = time.time()
    rows = []
    for si, s in enumerate(SETTINGS):
        for ci, (proj, scen, claim, holds) in enumerate(s["cases"]):
            kw = dict(d=s["d"], r=s["r"], noise_multiplier=s["z"], steps=s["T"], n=args.n, projection=proj,
                      scenario=scen, span_k=s["span_k"], sampling_rate=s["q"])
            seed = 1000 * si + 10 * ci
            l_in = simulate_privacy_loss(world="in", seed=seed, **kw)
            l_out = simulate_privacy_loss(world="out", seed=seed + 1, **kw)
            eps = accountant(s, claim)
            truncation = eps.pop("rdp_truncation")
            lb = epsilon_lower_bound(l_in, l_out, delta=s["delta"], confidence=0.95)
            checks = {}
            for name, e in eps.items():
                d_hat, se = hockey_stick(l_in, l_out, e)
                checks[name] = {"epsilon": e, "delta_hat": d_hat, "se": se,
                                "contradicted": bool(d_hat - 3 * se > s["delta"] or lb > e)}
            rows.append({"setting": {k: v for k, v in s.items() if k != "cases"}, "projection": proj, "scenario": scen,
                         "claim": claim, "fresh_truncation": truncation,
                         "assumption_holds": holds, "epsilon_lower_bound_95": lb, "checks": checks, "n": args.n})
            c = checks["rdp"]
            print(f"d={s['d']} r={s['r']} {proj:6s} {scen:12s} claim={claim:12s} eps_rdp={c['epsilon']:.3f} "
                  f"lb={lb:.3f} dhat={c['delta_hat']:.2e}±{c['se']:.1e} contradicted={c['contradicted']}", flush=True)
    wall = time.time() - t0
    ok_valid = all(not ch["contradicted"] for r in rows if r["assumption_holds"] for ch in r["checks"].values())
    caught = all(r["checks"]["rdp"]["contradicted"] for r in rows if not r["assumption_holds"])
    result = {"provenance": provenance(), "wall_time_s": wall, "rows": rows,
              "summary": {"valid_claims_never_contradicted": ok_valid, "broken_assumption_caught": caught},
              "fixed_projection_assumption": A.FIXED_PROJECTION_ASSUMPTION}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "accounting_audit.json").write_text(json.dumps(result, indent=2, default=float))
    lines = [
        "# Privacy audit of the projected-Gaussian accountants (simulation)",
        "",
        "Generated by `experiments/audit_projected_gaussian.py`; conventions in `lowrankdp/accounting/audit.py`.",
        f"M2 mechanism `Z_t = A_t(V_t + E_t)` (unsampled where q = 1, Poisson-sampled otherwise), add/remove "
        f"neighbours with ‖ΔV‖_F = 1, exact likelihood-ratio "
        f"attack (sees every A_t), {args.n} runs per world and case. `lb` = 95 % Clopper–Pearson ε lower bound at δ; "
        "`δ̂(ε)` = hockey-stick divergence at the accountant's ε (± 1 se). A claim is *contradicted* when "
        "`lb > ε` or `δ̂ − 3 se > δ`.",
        "",
        "| d | r | z | q | T | δ | projection | ΔV scenario | assumption holds | claim audited | ε (RDP) | ε (PLD) | lb (95 %) | δ̂(ε_RDP) ± se | δ̂(ε_PLD) ± se | contradicted |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s, c = r["setting"], r["checks"]
        pld = f"{c['pld']['epsilon']:.3f}" if "pld" in c else "–"
        pld_d = f"{c['pld']['delta_hat']:.2e} ± {c['pld']['se']:.1e}" if "pld" in c else "–"
        lines.append(
            f"| {s['d']} | {s['r']} | {s['z']} | {s['q']:g} | {s['T']} | {s['delta']:g} | {r['projection']} | "
            f"{r['scenario']} | {'yes' if r['assumption_holds'] else '**no**'} | {r['claim']} | "
            f"{c['rdp']['epsilon']:.3f}{'†' if r['fresh_truncation'] is not None else ''} | {pld} | "
            f"{r['epsilon_lower_bound_95']:.3f} | {c['rdp']['delta_hat']:.2e} ± {c['rdp']['se']:.1e} | {pld_d} | "
            f"{'**yes**' if any(v['contradicted'] for v in c.values()) else 'no'} |")
    lines += [
        "",
        f"Summary: valid claims never contradicted: **{ok_valid}**; broken fixed-projection assumption caught: "
        f"**{caught}**. Claims: `fixed` = rank-one fixed projection; `fixed_span2` / `fixed_spank` = fixed "
        "projection accounted with the provable net bound on the λ_max law of a 2- / k-dimensional span; `none` = no "
        "amplification; `fresh_span2` = fresh projection for a record spanning 2 directions. † = the RDP value came "
        "from the fresh projection's truncated moment with the union over steps (docs/theory.md §4.8).",
        "",
        f"Fixed-projection assumption: {A.FIXED_PROJECTION_ASSUMPTION}",
        "",
        f"Wall time {wall:.0f} s. Provenance: commit {result['provenance']['git_commit']} "
        f"(dirty={result['provenance']['git_dirty']}), {result['provenance']['device']}, {result['provenance']['date']}.",
    ]
    (OUT / "accounting_audit.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
