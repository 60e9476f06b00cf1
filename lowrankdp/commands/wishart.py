"""``lowrankdp wishart``: privacy of the Wishart projection mechanism for a vector query ([LRP] Thm 1)."""

from __future__ import annotations

import argparse
import math
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "wishart",
        help="ε of the noise-free Wishart projection mechanism (vector query): support δ, Theorem 1, exact",
        description=(
            "Privacy of y = AᵀA V (A: r×d, entries N(0, 1/r)) for unit queries whose neighbours satisfy "
            "VᵀV' >= rho ([LRP] arXiv:2601.21719 Thm 1). Prints the support term δ_supp, the Theorem-1 ε with "
            "the corrected coefficient c=(d-r+1)/2 (a valid bound) and as printed c=(d+r-1)/2 (NOT a valid "
            "bound; docs/theory.md §2.2), and the exact ε of the mechanism."
        ),
    )
    p.add_argument("--d", type=int, required=True, help="dimension the projection acts on (>= 2)")
    p.add_argument("--r", type=int, required=True, help="rank, 1 <= r <= d")
    p.add_argument("--rho", type=float, required=True, help="alignment min VᵀV' of neighbouring queries, in (-1, 1)")
    p.add_argument("--delta", type=float, required=True, help="target δ in (0, 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import warnings

    from .. import wishart
    from ..cli import print_json

    kw = dict(d=args.d, r=args.r, rho=args.rho)
    dsupp = wishart.support_delta(rho=args.rho, r=args.r)
    # validate everything (d, r, delta) before computing
    corrected = wishart.theorem1_epsilon(**kw, delta=args.delta, coefficient="corrected")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the caveat is printed below instead
        printed = wishart.theorem1_epsilon(**kw, delta=args.delta, coefficient="as_printed")
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        exact = wishart.exact_epsilon(**kw, delta=args.delta)
    seconds = time.perf_counter() - t0
    numeric = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    why = _why_infinite(delta=args.delta, dsupp=dsupp, numeric=numeric)
    capped = ("the quadrature stopped before its tolerance; the value is computed from the upper end of its "
              "error interval, so it errs high (conservative)") if numeric else ""
    if args.json:
        print_json(
            {
                "d": args.d,
                "r": args.r,
                "rho": args.rho,
                "delta": args.delta,
                "support_delta": dsupp,
                "theorem1_epsilon_corrected": corrected,
                "theorem1_epsilon_as_printed": printed,
                "exact_epsilon": exact,
                "exact_seconds": round(seconds, 4),
                "notes": [
                    "theorem1_epsilon_as_printed uses the published c=(d+r-1)/2 and is NOT a valid bound",
                    "exact_epsilon errs high by at most ~1e-7 relative (numerical integration)",
                ]
                + ([f"theorem1_epsilon is inf: {why['theorem1']}"] if math.isinf(corrected) else [])
                + ([f"exact_epsilon is inf: {why['exact']}"] if math.isinf(exact) else [])
                + ([f"exact_epsilon: {capped}"] if capped and math.isfinite(exact) else []),
            }
        )
        return 0

    def fmt(x: float, reason: str) -> str:
        return f"inf ({reason})" if math.isinf(x) else f"{x:.6g}"

    print(f"Wishart projection mechanism, d={args.d}, r={args.r}, rho={args.rho}, delta={args.delta:g}")
    print(f"  support delta (neighbour mass off the support) : {dsupp:.6g}")
    print(f"  Theorem 1 epsilon, corrected c=(d-r+1)/2       : {fmt(corrected, why['theorem1'])}")
    print(f"  Theorem 1 epsilon, as printed c=(d+r-1)/2      : {fmt(printed, why['theorem1'])}  (NOT a valid bound)")
    print(f"  exact epsilon                                  : {fmt(exact, why['exact'])}  ({seconds:.2f} s)"
          + (f"\n    note: {capped}" if capped and math.isfinite(exact) else ""))
    return 0


def _why_infinite(*, delta: float, dsupp: float, numeric: list[str]) -> dict[str, str]:
    """Why each ε would be printed as inf: no finite ε exists, or the theorem or the numerics give none."""
    if delta <= dsupp:
        none = "no finite epsilon exists: delta <= support delta"
        return {"theorem1": none, "exact": none}
    return {
        "theorem1": "Theorem 1 gives no finite bound here: rho <= K = sqrt((1-rho^2)/r) t_r(1-delta')",
        "exact": ("not computed, reported as inf (conservative): " + numeric[0]) if numeric
        else "no finite epsilon exists",
    }
