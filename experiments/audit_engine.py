"""One-run audits inside the real fine-tuning engine: canaries in a tiny-model run, audited ε beside the
accountant's ε.

DP-SGD on the tiny model at target ε = 2 / 4 / 8 (δ = 1e-5) with m = 1,000 canaries per audit
(``FinetuneConfig.audit_canaries``): white-box Dirac gradient canaries on embedding rows of tokens absent from the
data (all iterates; last iterate) and input-space canaries (32 random tokens after a fixed prefix). Poisson rate
q = 1/2 for 4 steps; ε = 4 also at q = 1 (2 steps, no subsampling: the all-iterates audit is then an idealised
Gaussian-canary audit). Compressed DP-SGD (r = 4) at its amplified ε = 4: fresh; fixed with one Dirac canary per
row; fixed with 8 canaries per row, each spanning 4 coordinates aligned to A's most retained direction.

Writes docs/results/audit_engine.{md,json} with provenance.
Usage: python experiments/audit_engine.py   (a few CPU minutes)
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

from attack_common import fmt, table, write
from lowrankdp.data import generate
from lowrankdp.finetune import FinetuneConfig, run

M = 1000
LIT = {2.0: (0.7, 1.0), 4.0: (1.7, 2.3), 8.0: (2.5, 3.9)}  # idealised Gaussian canaries, m = 1,000 (SNJ, f-DP)


def one(root: Path, data: str, name: str, **kw) -> dict:
    base = dict(method="dp-sgd", data=data, out_dir=str(root / name), model="tiny", epochs=2, batch_size=270,
                micro_batch_size=64, max_length=64, lr=1e-2, measure=False, retention=False, influence_samples=0,
                progress=False, checkpoint="none", measure_flops=False, audit_canaries=M, audit_seed=0, rank=4)
    base.update(kw)
    t = time.time()
    rec = run(FinetuneConfig(**base))
    if rec.status.value != "ok":
        raise RuntimeError(f"{name}: {rec.reason}")
    fin = rec.final
    audits = {a["name"]: a for a in fin.audits}
    out = {"name": name, "config": {k: v for k, v in base.items() if k not in ("data", "out_dir")},
           "epsilon_accountant": fin.privacy.epsilon, "delta": fin.privacy.delta,
           "noise_multiplier": fin.privacy.noise_multiplier, "sampling_rate": fin.privacy.sampling_rate,
           "steps": fin.step, "wall_s": time.time() - t, "audits": audits}
    wb = audits.get("white-box all iterates")
    print(f"{name}: ε_acc={fin.privacy.epsilon:.3f} σ={fin.privacy.noise_multiplier:.3f} q={fin.privacy.sampling_rate}"
          f" T={fin.step} " + " ".join(f"{n}: {a['correct']}/{a['guesses']} snj={a['epsilon_snj']:.2f} "
                                       f"fdp={a['epsilon_fdp']:.2f}" for n, a in audits.items())
          + f" cost={wb['cost_share'] if wb else None}", flush=True)
    return out


def main() -> None:
    warnings.simplefilter("ignore")
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = str(generate("customersim", out_dir=root / "data", seed=0,
                            sizes={"train": 32, "valid": 4, "test": 8}, canary_repeats=1, canary_digits=3))
        runs = [one(root, data, f"dp-sgd eps={e:g}", target_epsilon=e) for e in (2.0, 4.0, 8.0)]
        runs.append(one(root, data, "dp-sgd eps=4 q=1", target_epsilon=4.0, batch_size=2000))
        comp = [one(root, data, "compressed fresh", method="compressed-dp-sgd", projection="fresh",
                    target_epsilon=4.0),
                one(root, data, "compressed fixed", method="compressed-dp-sgd", projection="fixed",
                    target_epsilon=4.0),
                one(root, data, "compressed fixed, 8 per row, span 4", method="compressed-dp-sgd",
                    projection="fixed", target_epsilon=4.0,
                    extra={"audit_canary_shape": {"canaries_per_row": 8, "span": 4}})]
    rows = []
    for r in runs:
        eps = r["epsilon_accountant"]
        for n in ("white-box all iterates", "white-box last iterate", "input-space"):
            a = r["audits"][n]
            lit = LIT.get(round(eps)) if n == "white-box all iterates" else None
            rows.append([r["name"], eps, r["sampling_rate"], r["steps"], r["noise_multiplier"], n,
                         f"{a['correct']}/{a['guesses']}", a["epsilon_snj"], a["epsilon_fdp"],
                         a["epsilon_fdp_epsilon_delta"], a["epsilon_snj"] / eps, a["epsilon_fdp"] / eps,
                         "—" if lit is None else f"{lit[0]} / {lit[1]}"])
    comp_rows = []
    for r in comp:
        for n in ("white-box all iterates", "white-box last iterate", "input-space"):
            a = r["audits"][n]
            comp_rows.append([r["name"], r["epsilon_accountant"], r["noise_multiplier"], r["steps"], n,
                              f"{a['correct']}/{a['guesses']}", a["epsilon_snj"], a["epsilon_fdp"],
                              a["epsilon_fdp_epsilon_delta"]])
    cost_rows = [[r["name"], r["wall_s"], r["audits"]["white-box all iterates"]["cost_seconds"],
                  r["audits"]["white-box all iterates"]["cost_share"],
                  1e3 * r["audits"]["white-box all iterates"]["cost_hook_per_step_s"]] for r in runs + comp]
    wb = [r["audits"]["white-box all iterates"] for r in runs[:3]]
    snj = " / ".join(f"{a['epsilon_snj']:.2f}" for a in wb)
    fdp = " / ".join(f"{a['epsilon_fdp']:.2f}" for a in wb)
    ratio = " / ".join(f"{a['epsilon_snj'] / r['epsilon_accountant']:.2f}" for a, r in zip(wb, runs))
    q1 = runs[3]["audits"]["white-box all iterates"]
    inp = [r["audits"]["input-space"] for r in runs + comp]
    violated = [f"{r['name']} · {n}" for r in runs + comp for n, a in r["audits"].items() if a["verdict"] == "violated"]
    shares = [r["audits"]["white-box all iterates"]["cost_share"] for r in runs + comp]
    hooks = [1e3 * r["audits"]["white-box all iterates"]["cost_hook_per_step_s"] for r in runs + comp]
    findings = "\n".join([
        "**What the numbers show.**",
        "",
        f"- White-box, all iterates, DP-SGD at q = 1/2 (T = 4): SNJ {snj} and f-DP (Gaussian curve) {fdp} at "
        f"accountant ε = 2 / 4 / 8, i.e. SNJ at {ratio} of the accountant's ε. At ε = 2 this matches the idealised "
        "Gaussian-canary figure (0.7 / 1.0); at ε = 4 and 8 it is below it (1.7 / 2.3 and 2.5 / 3.9): a canary is "
        "sampled in about half the steps and the subsampled likelihood ratio is diluted by the others.",
        f"- Without subsampling (q = 1, T = 2, ε = 4) the same audit gives SNJ {q1['epsilon_snj']:.2f} / f-DP "
        f"{q1['epsilon_fdp']:.2f}: at the idealised figure (1.7 / 2.3) and SNJ's ≈ 1.8 at ε = 4. Each number is one "
        "run: docs/audit.md's simulations put the run-to-run sd of such a bound at ≈ 0.2–0.4.",
        ("- No audit exceeds its accountant ε (no verdict 'violated')" if not violated else
         f"- VIOLATED: {violated}") + "; for DP-SGD the last iterate alone certifies less than all iterates, as it should.",
        f"- Input-space canaries certify nothing here ({min(a['correct'] for a in inp)}–"
        f"{max(a['correct'] for a in inp)} of 100 right): 32 random tokens are not learned from ≈ 2 exposures at "
        "these noise levels (even a non-private run needs more steps to memorise them; tests/test_finetune_canaries.py "
        "shows the unclipped, noise-free case memorising them with 12 steps and 100 canaries).",
        "- Compressed DP-SGD: fresh projection (σ calibrated to the amplified ε = 4, 4× below DP-SGD's) — the audit "
        "on the published projected updates stays below 4 (consistent, far from testing the amplification); fixed "
        "projection (accounted with a span of the longest record's tokens, so σ barely drops) — nothing certified, "
        "with one Dirac canary per row or with 8 canaries per row each spanning 4 coordinates aligned to A: at "
        "r/d = 4/128 a canary keeps ≈ 3 % of its norm per step, too little for 1,000 canaries in 4 steps. Whether "
        "the audit exceeds the fixed-projection ε when canaries span several directions: no, and at this m and T "
        "it could not (not testable).",
        f"- Cost: the audit is {min(shares):.0%}–{max(shares):.0%} of these very short runs (4 steps), dominated by "
        "scoring the 1,000 input-space canaries (a forward pass over them before training and at each evaluation) "
        f"and the analyses; the per-step hook costs {min(hooks):.1f}–{max(hooks):.1f} ms (the most for fresh "
        "compressed DP-SGD: one whitening per canary row per step), small beside a training step of seconds here, "
        "so in a run of realistic length the share is the fixed scoring cost over the run's time.",
    ])
    data = {"canaries": M, "runs": runs, "compressed": comp}
    body = "\n".join([
        f"Real engine runs (`lowrankdp.finetune.run` with `audit_canaries = {M}`), tiny model, CPU. 32 data records "
        f"plus the included input-space canaries (≈ {M // 2}); guesses k₊ = k₋ = 50 fixed in advance "
        "(`lowrankdp.finetune.canaries.GUESS_FRACTION`); δ = 1e-5 (the accountant's); 95 % confidence. "
        "One run per row (one seed): single-run numbers, not averages.",
        "",
        "## DP-SGD",
        "",
        table(["run", "accountant ε", "q", "steps", "σ", "audit", "correct", "SNJ", "f-DP Gaussian", "f-DP (ε,δ)",
               "SNJ / acc", "f-DP / acc", "literature SNJ / f-DP"], rows),
        "",
        "Literature one-run white-box figures: Steinke, Nasr & Jagielski (arXiv:2305.08846v1) report ≈ 1.8 at "
        "ε = 4; idealised Gaussian canaries with m = 1,000 give ≈ 0.7 / 1.7 / 2.5 (SNJ) and 1.0 / 2.3 / 3.9 (f-DP) at ε = 2 / 4 / 8 "
        "(our own idealised figures: audit_idealised.md).",
        "",
        "## Compressed DP-SGD (r = 4, A_t published to the auditor), σ calibrated to the amplified ε = 4",
        "",
        table(["run", "accountant ε", "σ", "steps", "audit", "correct", "SNJ", "f-DP Gaussian", "f-DP (ε,δ)"],
              comp_rows),
        "",
        "## Cost of auditing",
        "",
        table(["run", "run wall s", "audit s", "share of the run", "hook ms / step"], cost_rows),
        "",
        "Audit seconds = the canary hooks at every step, scoring the input-space canaries at every evaluation and "
        "before training (forward passes over m records), and the analyses.",
        "",
        findings,
    ])
    md = write("audit_engine", "One-run audits inside the fine-tuning engine", body, data, wall_s=time.time() - t0)
    print(md.read_text())


if __name__ == "__main__":
    main()
