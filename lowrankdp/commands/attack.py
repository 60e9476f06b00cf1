"""``lowrankdp attack``: membership attacks on the Wishart matrix mechanism and on a LoRA-FA network.

    lowrankdp attack matrix --d 64 --r 8 --columns 4 --sigma 0 --trials 2000 --json
    lowrankdp attack lora-fa --rank 16 --sigma 0 --json
    lowrankdp attack lora-fa --rank 16 --steps 5 --trials 50     # replay attack on a trained adapter

Both print AUC, TPR at 0.1 % and 1 % FPR, the certified ε lower bound and, for noisy runs, the
accountant's ε for the same mechanism and threat model (``null`` when noise-free or when no accountant
applies, with the reason). ``--plot PATH`` writes the ROC on log–log axes (PNG), with the ROC that the
accountant's ε allows on the same axes.
"""

from __future__ import annotations

import argparse
import math
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("attack", help="membership attacks (matrix mechanism, LoRA-FA network)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="attack_kind", metavar="KIND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    m = sub.add_parser("matrix", help="Wishart projection of a matrix query: MV, MV+E (m1), M(V+E) (m2)")
    m.add_argument("--d", type=int, default=64, help="dimension the projection acts on (default 64)")
    m.add_argument("--r", type=int, default=8, help="rank (default 8)")
    m.add_argument("--columns", type=int, default=4, help="columns m of the query V (1 = vector query)")
    m.add_argument("--sigma", type=float, default=0.0, help="noise std per entry of E (0 = noise-free)")
    m.add_argument("--mechanism", choices=("auto", "noise_free", "m1", "m2"), default="auto",
                   help="auto: noise_free when sigma = 0, else m2")
    m.add_argument("--projection", choices=("fresh", "fixed"), default="fresh")
    m.add_argument("--releases", type=int, default=1)
    m.add_argument("--distinguisher", choices=("auto", "symmetry", "reconstruction", "likelihood_ratio",
                                               "correlation"), default="auto",
                   help="auto: symmetry (noise-free, columns>=2), likelihood_ratio (vector query, or noisy "
                        "with A known), correlation (noisy, A unknown)")
    m.add_argument("--knows-projection", choices=("yes", "no"), default="yes",
                   help="threat model: does the attacker see A? (default yes: the strongest attacker)")
    m.add_argument("--kind", choices=("column", "rank_one"), default="column", help="neighbouring relation")
    m.add_argument("--rho", type=float, default=0.0, help="alignment <v, v'> of the replaced column")
    m.add_argument("--trials", type=int, default=2000, help="trials per side (members and non-members)")
    m.add_argument("--delta", type=float, default=1e-5)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the CIs")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.add_argument("--plot", metavar="PATH", default=None, help="write the ROC (log-log) as PNG")
    m.set_defaults(func=_run_matrix)

    f = sub.add_parser("lora-fa", help="LoRA-FA on scikit-learn digits: attacker knows the other records and W0")
    f.add_argument("--rank", type=int, default=16)
    f.add_argument("--sigma", type=float, default=0.0, help="noise multiplier on B's clipped gradient (0 = none)")
    f.add_argument("--clip", type=float, default=None,
                   help="per-example clipping norm on B's gradient, used when sigma > 0 (default 0.5)")
    f.add_argument("--steps", type=int, default=1, help="training steps (1 = the exact one-step regime)")
    f.add_argument("--distinguisher", choices=("auto", "symmetry", "replay"), default="auto",
                   help="auto: symmetry test for one step, replay attack for more")
    f.add_argument("--sampling-rate", type=float, default=1.0,
                   help="Poisson batches: each record in each step with this probability (1 = full batch)")
    f.add_argument("--lr", type=float, default=None, help="learning rate (default: the config's)")
    f.add_argument("--trials", type=int, default=200, help="training runs per side")
    f.add_argument("--train-size", type=int, default=None)
    f.add_argument("--delta", type=float, default=1e-5)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--bootstrap", type=int, default=200)
    f.add_argument("--json", action="store_true")
    f.add_argument("--plot", metavar="PATH", default=None)
    f.set_defaults(func=_run_lora_fa)


def _matrix_config(args: argparse.Namespace):
    from ..attacks.matrix import MatrixAttackConfig, ThreatModel

    mechanism = args.mechanism
    if mechanism == "auto":
        mechanism = "noise_free" if args.sigma == 0 else "m2"
    knows_a = args.knows_projection == "yes"
    dist = args.distinguisher
    if dist == "auto":
        if mechanism == "noise_free":
            dist = "symmetry" if args.columns >= 2 else "likelihood_ratio"
        else:
            dist = "likelihood_ratio" if knows_a else "correlation"
    return MatrixAttackConfig(
        d=args.d, r=args.r, columns=args.columns, mechanism=mechanism, sigma=args.sigma,
        projection=args.projection, releases=args.releases, distinguisher=dist,
        threat=ThreatModel(knows_projection=knows_a), kind=args.kind, rho=args.rho, trials=args.trials,
        delta=args.delta, seed=args.seed, n_bootstrap=args.bootstrap,
    )


def _check_plot_path(path: str | None) -> None:
    """Fail before the computation if ``--plot`` cannot be written: the directory must exist and
    accept a new file, and the suffix must be an image format matplotlib writes."""
    if path is None:
        return
    import os
    import tempfile
    from pathlib import Path

    p = Path(path)
    fmt = p.suffix.lower().lstrip(".")
    if fmt not in ("png", "pdf", "svg", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp"):
        raise ValueError(f"--plot must end in an image suffix such as .png, .pdf or .svg, got {path!r}")
    if p.is_dir():
        raise ValueError(f"--plot must be a file path, got the directory {path!r}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"--plot directory {str(parent)!r} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=".lowrankdp-plot-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"--plot: cannot create a file in {str(parent)!r} ({exc.strerror or exc})") from None


def _run_matrix(args: argparse.Namespace) -> int:
    from ..attacks.matrix import run_matrix_attack

    _check_plot_path(args.plot)
    res = run_matrix_attack(_matrix_config(args))
    out = res.to_dict()
    return _emit(args, out, res.report, title=f"matrix attack ({res.config.distinguisher}, {res.config.mechanism})")


def _run_lora_fa(args: argparse.Namespace) -> int:
    from ..attacks.lora_fa import LoraFAConfig, run_lora_fa_attack

    _check_plot_path(args.plot)
    kw: dict[str, Any] = dict(rank=args.rank, sigma=args.sigma, steps=args.steps, trials=args.trials,
                              delta=args.delta, seed=args.seed, n_bootstrap=args.bootstrap,
                              distinguisher=args.distinguisher, sampling_rate=args.sampling_rate)
    if args.clip is not None:
        kw["clip"] = args.clip
    if args.lr is not None:
        kw["lr"] = args.lr
    if args.train_size is not None:
        kw["train_size"] = args.train_size
    res = run_lora_fa_attack(LoraFAConfig(**kw))
    out = res.to_dict()
    return _emit(args, out, res.report, title=f"LoRA-FA attack ({res.config.distinguisher}, rank {args.rank}, "
                                              f"{args.steps} step(s), sigma {args.sigma})")


def _emit(args: argparse.Namespace, out: dict[str, Any], report: Any, *, title: str) -> int:
    from ..cli import print_json

    if args.plot is not None:
        _plot(args.plot, report, out.get("epsilon_accountant"), out.get("delta"), title)
        out["plot"] = args.plot
    if args.json:
        out = {k: v for k, v in out.items() if k != "roc"} | {"roc": out.get("roc")}
        print_json(out)
        return 0
    lo, hi = out["auc_ci"]
    print(title)
    print(f"  trials           {out['n_in']} members / {out['n_out']} non-members")
    print(f"  AUC              {out['auc']:.4f}  (95% CI {lo:.4f}-{hi:.4f})")
    for f, t in out["tpr_at_fpr"].items():
        if t is None:
            print(f"  TPR @ FPR {f:<6} n/a  ({(out.get('tpr_reason') or {}).get(f)})")
            continue
        ci = (out.get("tpr_ci") or {}).get(f)
        print(f"  TPR @ FPR {f:<6} {t:.4f}" + (f"  (95% CI {ci[0]:.4f}-{ci[1]:.4f})" if ci else ""))
    elb_max = out.get("epsilon_lower_bound_max")
    print(f"  eps lower bound  {out['epsilon_lower_bound']:.3f}  (Clopper-Pearson, 95%, delta={out['delta']:g}"
          + (f"; a perfect attack at these sizes certifies {elb_max:.3f})" if elb_max is not None else ")"))
    eps = out.get("epsilon_accountant")
    print(f"  eps accountant   {'n/a' if eps is None else f'{eps:.3f}'}  ({out.get('accountant_note')})")
    for key in ("test_accuracy", "base_test_accuracy"):
        if key in out:
            print(f"  {key:<16} {out[key]:.4f}")
    if args.plot is not None:
        print(f"  ROC written to   {args.plot}")
    return 0


def _plot(path: str, report: Any, eps: float | None, delta: float | None, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..metrics import epsilon_roc_curve

    fpr, tpr = report.roc
    floor = 1.0 / (10 * max(report.n_out, 1))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.step(np.maximum(fpr, floor), np.maximum(tpr, floor), where="post",
            label=f"attack (AUC {report.auc:.3f})")
    grid = np.logspace(math.log10(floor), 0, 400)
    if eps is not None and math.isfinite(eps):
        ax.plot(grid, np.maximum(epsilon_roc_curve(eps, delta or 0.0, grid), floor), "--",
                label=f"accountant ε = {eps:.2f}")
    ax.plot(grid, grid, ":", color="grey", label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(floor, 1.05)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    import os
    from pathlib import Path

    tmp = Path(path).with_name(f".{Path(path).name}.tmp{os.getpid()}{Path(path).suffix}")
    try:  # write-then-rename: a failure never leaves a half-written figure at PATH
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"--plot could not be written to {path!r}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
