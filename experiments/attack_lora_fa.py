"""LoRA-FA on scikit-learn digits: membership AUC at ranks {4, 16, 64} with test accuracy, AUC against
the number of full-batch steps, and AUC / certified ε lower bound against σ beside the accountant's ε
(threat model and attack: `lowrankdp.attacks.lora_fa` docstring). Writes
docs/results/attack_lora_fa.{md,json}.

    .venv/bin/python experiments/attack_lora_fa.py [--trials 300]
"""

from __future__ import annotations

import attack_common  # noqa: F401  (first: sets the BLAS thread count before numpy loads)
import argparse
import time

import torch

from attack_common import table, write
from lowrankdp.attacks.lora_fa import LoraFAConfig, run_lora_fa_attack


def main() -> None:
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--noisy-trials", type=int, default=200)
    args = ap.parse_args()
    t0 = time.perf_counter()
    data: dict[str, list] = {"ranks": [], "steps": [], "sigma": []}

    def run(section: str, **kw):
        res = run_lora_fa_attack(LoraFAConfig(n_bootstrap=200, **kw))
        data[section].append(res.to_dict())
        rep = res.report
        print(section, kw, rep.auc, rep.epsilon_lower_bound, res.test_accuracy, flush=True)
        return res, rep

    rank_rows = []
    for r in (4, 16, 64):
        res, rep = run("ranks", rank=r, trials=args.trials, seed=r)
        rank_rows.append([r, 1, rep.auc, f"{rep.auc_ci[0]:.3f}–{rep.auc_ci[1]:.3f}", rep.tpr_at_fpr[0.001],
                          rep.tpr_at_fpr[0.01], rep.epsilon_lower_bound, res.test_accuracy, res.base_test_accuracy,
                          res.ks_pvalue])
    step_rows = []
    for steps in (1, 2, 5):
        res, rep = run("steps", rank=16, steps=steps, trials=min(args.trials, 150), seed=100 + steps,
                       distinguisher="symmetry")  # the replay attack: attack_lora_fa_replay.py
        step_rows.append([16, steps, rep.auc, rep.tpr_at_fpr[0.01], rep.epsilon_lower_bound, res.test_accuracy])
    sigma_rows = []
    grid = [(0.5, 16, sg) for sg in (1e-6, 1e-4, 1e-2, 1.0)]
    grid += [(40.0, 16, sg) for sg in (1e-5, 1e-4, 1e-3, 1e-2, 0.1)]
    grid += [(40.0, r, sg) for r in (4, 64) for sg in (1e-4, 1e-3)]
    grid += [(0.5, r, 1e-4) for r in (4, 64)]
    for clip, r, sigma in grid:
        res, rep = run("sigma", rank=r, sigma=sigma, clip=clip, trials=args.noisy_trials, seed=1000 + r)
        eps = res.accountant["epsilon"]
        sigma_rows.append([clip, r, sigma, rep.auc, rep.tpr_at_fpr[0.01], rep.epsilon_lower_bound, eps,
                           rep.epsilon_lower_bound <= eps, res.test_accuracy])
    cfg = LoraFAConfig()
    body = (
        "MLP 64→128→10 (ReLU) pre-trained on a public split of scikit-learn digits (597 images); LoRA-FA on "
        f"the first layer (A: N(0, 1/r) set by the toolkit, KS p-value of its entries shown; α = r); "
        f"{cfg.train_size} private training records; targets drawn from a disjoint pool of {cfg.pool_size}; "
        f"full-batch gradient descent (lr {cfg.lr}, loss summed over records / {cfg.train_size}); test set "
        "400 images. Each trial is an independent training run with a fresh A; members train on D ∪ {target}, "
        "non-members on D. Released: the merged first-layer weight. Attacker: knows W0, the other records, the "
        "target and the recipe; not A, not the noise. Attack: symmetry test on (W − W0)ᵀ against the gradient "
        "at W0 with and without the target (exact after one step; trajectory approximated by linear "
        "interpolation for more steps). 'test acc.' is the mean over the non-member runs; 'base' is W0.\n\n"
        f"## Noise-free, one step, by rank ({args.trials} runs per side)\n\n"
        + table(["r", "steps", "AUC", "AUC 95% CI", "TPR@0.1%", "TPR@1%", "ε lower bound", "test acc.",
                 "base acc.", "KS p (A entries)"], rank_rows)
        + "\n\nOne full-batch step barely moves the test accuracy from the pre-trained base, so the table shows "
        "the leakage of a single fine-tuning step, not of a converged fine-tune as in [LRP]'s CIFAR-10 table.\n\n"
        f"## Noise-free, r = 16, more steps ({min(args.trials, 150)} runs per side)\n\n"
        + table(["r", "steps", "AUC", "TPR@1%", "ε lower bound", "test acc."], step_rows)
        + "\n\nAfter the first step the gradient sum Σ_t G_t is no longer known to the attacker (it depends on "
        "A through the trajectory); the interpolation approximation loses most of the signal — a limit of "
        "this attack, not evidence of privacy.\n\n"
        + f"## DP noise on B's clipped per-example gradients (one step, {args.noisy_trials} runs per side, "
        "δ = 1e-5)\n\n"
        "Two clipping norms. clip = 0.5 (the CLI default) clips the high-loss training records; their clip "
        "factors depend on ‖Ax‖ (A unknown), so the attack treats every record that could be clipped as an "
        "unknown coefficient and fits them by least squares (`_clip_robust_scores`); the target's factor is "
        "estimated with ‖Ax‖ ≈ ‖x‖. clip = 40 lies above every per-example norm in this data set at W0 "
        "(max ≈ 16.6 before the ‖Ax‖/‖x‖ factor; an oracle choice made with the private data, stated as "
        "such), so nothing is clipped and the rows isolate the effect of the noise.\n\n"
        + table(["clip", "r", "σ (noise multiplier)", "AUC", "TPR@1%", "ε lower bound", "ε accountant",
                 "lb ≤ acc", "test acc."], sigma_rows)
        + "\n\nAccountant: DP-SGD on B (plain Gaussian, sampling rate 1, 1 step, add/remove), via "
        "`lowrankdp.accounting.epsilon(projection='none')`; the random A earns no credit because clipping "
        "acts on the projected gradient. Most targets are already fitted by W0 (median per-example gradient "
        "norm ≈ 0.004, against a noise scale σ·clip), so the attack needs very small σ to see them."
    )
    path = write("attack_lora_fa", "LoRA-FA membership attack on digits", body, data, wall_s=time.perf_counter() - t0)
    print(path)


if __name__ == "__main__":
    main()
