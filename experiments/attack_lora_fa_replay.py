"""LoRA-FA replay attack beyond one step: AUC after 1 / 2 / 5 full-batch steps at r = 16 and
r = 4, and what breaks it — Poisson batches and DP noise — with numbers.

Writes docs/results/attack_lora_fa_replay.{md,json} with provenance.
Usage: python experiments/attack_lora_fa_replay.py [--trials 25]   (≈ 15 minutes on 2 shared cores)
"""

from __future__ import annotations

import argparse
import time

import torch

from attack_common import fmt, table, write
from lowrankdp.attacks.lora_fa import LoraFAConfig, run_lora_fa_attack

CASES = [
    ("full batch, no noise", dict(steps=1, rank=16)),
    ("full batch, no noise", dict(steps=2, rank=16)),
    ("full batch, no noise", dict(steps=5, rank=16)),
    ("full batch, no noise", dict(steps=5, rank=4)),
    ("Poisson batches q = 0.9", dict(steps=2, rank=16, sampling_rate=0.9)),
    ("Poisson batches q = 0.5", dict(steps=2, rank=16, sampling_rate=0.5)),
    ("DP-SGD on B, σ = 0.01, clip 0.5", dict(steps=2, rank=16, sigma=0.01)),
    ("DP-SGD on B, σ = 0.1, clip 0.5", dict(steps=2, rank=16, sigma=0.1)),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=25)
    ap.add_argument("--from-json", action="store_true", help="re-render the Markdown from the stored JSON")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    rows, data = [], {"trials": args.trials, "cases": []}
    if args.from_json:
        import json

        from attack_common import RESULTS

        data = json.loads((RESULTS / "attack_lora_fa_replay.json").read_text())
        old = data.pop("provenance", None) or {}
        data.setdefault("measured_at", {"git_commit": old.get("git_commit"), "dirty": old.get("git_dirty"),
                                        "date": old.get("date")})
        t0 -= data.pop("wall_s", 0.0)
        args.trials = data["trials"]
        for c in data["cases"]:
            cf = c["config"]
            rows.append([c["name"], cf["steps"], cf["rank"], c["auc"], f"{c['auc_ci'][0]:.3f}–{c['auc_ci'][1]:.3f}",
                         c["epsilon_accountant"], c["test_accuracy"], c["seconds"]])
    for name, kw in ([] if args.from_json else CASES):
        kw = dict(kw, distinguisher="replay")
        t1 = time.time()
        res = run_lora_fa_attack(LoraFAConfig(trials=args.trials, chunk=args.trials, n_bootstrap=0, **kw))
        d = res.to_dict()
        secs = time.time() - t1
        rows.append([name, kw["steps"], kw["rank"], d["auc"], f"{d['auc_ci'][0]:.3f}–{d['auc_ci'][1]:.3f}",
                     d["epsilon_accountant"], d["test_accuracy"], secs])
        data["cases"].append({"name": name, "config": d["config"], "auc": d["auc"], "auc_ci": d["auc_ci"],
                              "epsilon_accountant": d["epsilon_accountant"], "test_accuracy": d["test_accuracy"],
                              "seconds": secs})
        print(rows[-1], flush=True)
    body = [
        f"Digits MLP, LoRA-FA on the first layer (A ~ N(0, 1/r), unknown to the attacker), lr 1, {args.trials} "
        "training runs per side, each with a fresh A. Attack: `lowrankdp.attacks.lora_fa.replay_scores` "
        "(row space of the release → r(r+1)/2 unknowns of AᵀA; alternating least squares with a replay of training "
        "under each hypothesis, Anderson-accelerated; score = log residual(out) − log residual(in)). AUC interval: "
        "Hanley–McNeil score interval (lowrankdp.metrics.auc_interval).",
        "",
        table(["training", "steps", "r", "AUC", "95 % interval", "accountant ε", "test accuracy", "seconds"], rows),
        "",
        "The review that asked for this attack reported AUC 1.00 after 2 steps and 0.965 after 5 at r = 16, and 1.00 after 5 at r = 4; "
        "here: " + ", ".join(f"{r[1]} step(s) r = {r[2]}: {fmt(r[3], 3)}" for r in rows if r[0].startswith("full"))
        + ". The attack needs an exact replay: the release must be a deterministic function of (W0, records, "
        "AᵀA), and under the true hypothesis the replay reproduces it to ≈ 1e-15. Poisson batches make each "
        "step's batch unknown (the attacker replays the expected batch): "
        + ", ".join(f"{r[0]}: AUC {fmt(r[3], 3)}" for r in rows if r[0].startswith("Poisson"))
        + " — the batch noise swamps the one target record of 601. DP noise adds an unknown term in row(A): "
        + ", ".join(f"{r[0]}: AUC {fmt(r[3], 3)} at accountant ε {fmt(r[5], 4)}" for r in rows if r[0].startswith("DP"))
        + " — degraded but not removed at these σ (their ε is in the hundreds or more); at σ where the accountant's "
        "ε is single-digit this attack was not run (the one-step symmetry attack already sees nothing at σ = 1, "
        "attack_lora_fa.md). With 25 runs per side the AUC intervals are wide (see the interval column).",
    ]
    if "measured_at" in data:
        m = data["measured_at"]
        body += ["", f"Training runs measured at git {m['git_commit']} on {m['date']}; this page was re-rendered "
                     "from the stored JSON (`--from-json`)."]
    md = write("attack_lora_fa_replay", "LoRA-FA replay attack on trained models", "\n".join(body), data,
               wall_s=time.time() - t0)
    print(md.read_text())


if __name__ == "__main__":
    main()
