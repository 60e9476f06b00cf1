"""``lowrankdp audit``: one-run ε lower bounds from canary guesses (numpy only).

    lowrankdp audit epsilon --canaries 1000 --guesses 100 --correct 92 --delta 1e-5
    lowrankdp audit epsilon --canaries 1000 --perfect --delta 1e-5 --json

Prints the audited ε by Steinke–Nasr–Jagielski (arXiv:2305.08846v1) and the f-DP analysis of
Mahloujifar–Melis–Chaudhuri (arXiv:2410.22235v1; Gaussian and (ε, δ) curves), at the given δ, and the most a
perfect attack could certify with that many canaries. With ``--accountant-epsilon E`` it judges the claim
"audited ε ≤ E" with the SNJ bound (or says it is not testable at this m). Details: docs/audit.md.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("audit", help="one-run privacy audits (ε lower bounds from canaries)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="audit_kind", metavar="KIND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    e = sub.add_parser("epsilon", help="ε lower bound from m canaries, r guesses, v correct")
    e.add_argument("--canaries", type=int, required=True, help="m: canaries, each included with probability 1/2")
    e.add_argument("--guesses", type=int, default=None, help="r: guesses made (k+ + k-)")
    e.add_argument("--correct", type=int, default=None, help="v: correct guesses")
    e.add_argument("--perfect", action="store_true", help="every canary guessed and right (r = v = m)")
    e.add_argument("--delta", type=float, required=True, help="δ of the accountant")
    e.add_argument("--confidence", type=float, default=0.95)
    e.add_argument("--accountant-epsilon", type=float, default=None, help="judge 'audited ε ≤ this'")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=_run_epsilon)


def _run_epsilon(args: argparse.Namespace) -> int:
    from ..audit import max_certifiable_epsilon, one_run_epsilon

    m = args.canaries
    if args.perfect:
        if args.guesses is not None or args.correct is not None:
            raise ValueError("--perfect sets --guesses and --correct to --canaries; give one or the other")
        r = v = m
    else:
        if args.guesses is None or args.correct is None:
            raise ValueError("--guesses and --correct are required (or pass --perfect)")
        r, v = args.guesses, args.correct
    kw = dict(canaries=m, guesses=r, correct=v, delta=args.delta, confidence=args.confidence)
    out = {
        "canaries": m, "guesses": r, "correct": v, "delta": args.delta, "confidence": args.confidence,
        "epsilon_snj": one_run_epsilon(**kw, method="snj"),
        "epsilon_fdp_gaussian": one_run_epsilon(**kw, method="fdp", curve="gaussian"),
        "epsilon_fdp_epsilon_delta": one_run_epsilon(**kw, method="fdp", curve="epsilon_delta"),
        "max_epsilon_snj": max_certifiable_epsilon(canaries=m, delta=args.delta, confidence=args.confidence),
        "max_epsilon_fdp_epsilon_delta": max_certifiable_epsilon(canaries=m, delta=args.delta,
                                                                 confidence=args.confidence, method="fdp",
                                                                 curve="epsilon_delta"),
    }
    if args.accountant_epsilon is not None:
        eps = args.accountant_epsilon
        # one pre-chosen analysis (SNJ): the larger of several bounds would not hold at `confidence`
        best_max, audited = out["max_epsilon_snj"], out["epsilon_snj"]
        if best_max <= eps:
            verdict = f"not testable: {m} canaries certify at most {best_max:.3f} ≤ {eps:g}"
        elif audited > eps:
            verdict = f"violated: audited ε {audited:.3f} > accountant ε {eps:g}"
        else:
            verdict = f"consistent: audited ε {audited:.3f} ≤ accountant ε {eps:g}"
        out["accountant_epsilon"], out["verdict"] = eps, verdict
    if args.json:
        from ..cli import print_json

        print_json(out)
        return 0
    print(f"one-run audit: {m} canaries, {r} guesses, {v} correct, delta={args.delta:g}, "
          f"confidence={args.confidence:g}")
    print(f"  SNJ                      eps >= {out['epsilon_snj']:.3f}   (perfect attack: {out['max_epsilon_snj']:.3f})")
    print(f"  f-DP, (eps,delta) curve  eps >= {out['epsilon_fdp_epsilon_delta']:.3f}   "
          f"(perfect attack: {out['max_epsilon_fdp_epsilon_delta']:.3f})")
    print(f"  f-DP, Gaussian curve     eps >= {out['epsilon_fdp_gaussian']:.3f}   (assumes a Gaussian trade-off curve)")
    if "verdict" in out:
        print(f"  verdict                  {out['verdict']}")
    return 0
