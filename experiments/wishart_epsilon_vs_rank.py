"""ε against rank for the noise-free Wishart projection mechanism ([LRP] Thm 1; docs/theory.md §2, §2.2).

Claim supported: the published Theorem-1 coefficient c = (d+r-1)/2 falls below the exact ε (not a bound) at
large r, while the corrected c = (d-r+1)/2 stays above it, reproducing the shape of the authors' ε-vs-r plot.

Two steps, kept separate so the figure is drawn only from stored results:

    python experiments/wishart_epsilon_vs_rank.py compute   # writes docs/results/wishart_epsilon_vs_rank.json
    python experiments/wishart_epsilon_vs_rank.py plot      # reads it, writes docs/results/wishart_epsilon_vs_rank.png

(no argument = both). Defaults: d = 400, δ = 0.01, ρ ∈ {0.5, 0.9}; about 10 s to compute on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "docs" / "results"
JSON_PATH = RESULTS / "wishart_epsilon_vs_rank.json"
PNG_PATH = RESULTS / "wishart_epsilon_vs_rank.png"


def rank_grid(d: int) -> list[int]:
    pts = {1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 32, 40, 50, 64, 80, 100, 128, 150, 175, 200, 250, 300, 350, d}
    pts |= set(range(25, d + 1, 25))
    return sorted(r for r in pts if 1 <= r <= d)


def compute(*, d: int = 400, delta: float = 0.01, rhos: tuple[float, ...] = (0.5, 0.9), out: Path = JSON_PATH) -> dict:
    from lowrankdp import wishart
    from lowrankdp.provenance import provenance

    t0 = time.perf_counter()
    series = []
    for rho in rhos:
        rows = []
        for r in rank_grid(d):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # as_printed warns by design
                printed = wishart.theorem1_epsilon(d=d, r=r, rho=rho, delta=delta, coefficient="as_printed")
            rows.append({
                "r": r,
                "support_delta": wishart.support_delta(rho=rho, r=r),
                "exact": wishart.exact_epsilon(d=d, r=r, rho=rho, delta=delta),
                "theorem1_corrected": wishart.theorem1_epsilon(d=d, r=r, rho=rho, delta=delta),
                "theorem1_as_printed": printed,
            })
        series.append({"rho": rho, "rows": rows})
    result = {
        "experiment": "wishart_epsilon_vs_rank",
        "claim": "as-printed Theorem-1 coefficient is not a bound; corrected one is (docs/theory.md §2.2)",
        "config": {"d": d, "delta": delta, "rhos": list(rhos), "neighbouring": "any pair with VᵀV' >= rho"},
        "series": series,
        "seconds": time.perf_counter() - t0,
        "provenance": provenance(ROOT),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_jsonable(result), indent=2))
    return result


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else "nan"
    return obj


def _num(x) -> float:
    return math.inf if x == "inf" else (math.nan if x == "nan" else float(x))


def plot(*, src: Path = JSON_PATH, out: Path = PNG_PATH) -> Path:
    """Draw the figure from the stored JSON only (no recomputation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(src.read_text())
    cfg = data["config"]
    series = data["series"]
    fig, axes = plt.subplots(1, len(series), figsize=(5.4 * len(series), 4.9), squeeze=False)
    for ax, s in zip(axes[0], series):
        r = [row["r"] for row in s["rows"]]
        styles = [
            ("theorem1_corrected", "Thm 1, corrected c=(d−r+1)/2 (bound)", "C0", "-"),
            ("theorem1_as_printed", "Thm 1, as printed c=(d+r−1)/2 (not a bound)", "C3", "--"),
            ("exact", "exact ε", "k", "-"),
        ]
        for key, label, color, ls in styles:
            y = [_num(row[key]) for row in s["rows"]]
            xs = [ri for ri, yi in zip(r, y) if math.isfinite(yi)]
            ys = [yi for yi in y if math.isfinite(yi)]
            ax.plot(xs, ys, ls, color=color, label=label, lw=1.8 if key == "exact" else 1.4,
                    marker="o" if key == "exact" else None, ms=2.5)
        # where the printed value falls below the exact ε
        bad = [(row["r"], _num(row["theorem1_as_printed"])) for row in s["rows"]
               if math.isfinite(_num(row["theorem1_as_printed"])) and _num(row["theorem1_as_printed"]) < _num(row["exact"])]
        if bad:
            ax.scatter([b[0] for b in bad], [b[1] for b in bad], s=22, facecolors="none", edgecolors="C3",
                       label="as printed < exact", zorder=3)
        no_exact = [row["r"] for row in s["rows"] if math.isinf(_num(row["exact"]))]
        no_bound = [row["r"] for row in s["rows"] if math.isinf(_num(row["theorem1_corrected"]))]
        if no_bound:
            ax.axvspan(0, max(no_bound) + 0.5, color="0.92", zorder=0,
                       label="Thm 1 gives no bound (ρ ≤ K or δ ≤ δ_supp)")
        if no_exact:
            ax.axvspan(0, max(no_exact) + 0.5, color="0.78", zorder=0,
                       label="no finite ε at all (δ_supp ≥ δ)")
        ax.set_xlim(0, cfg["d"] * 1.02)
        ax.set_yscale("log")
        ax.set_xlabel("rank r")
        ax.set_ylabel("ε (log scale)")
        ax.set_title(f"d = {cfg['d']}, ρ = {s['rho']}, δ = {cfg['delta']}")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    prov = data["provenance"]
    fig.suptitle("Wishart projection mechanism (vector query, no noise): ε vs rank", fontsize=11)
    fig.text(0.01, 0.005, f"lowrankdp {prov['packages'].get('lowrankdp')} · git {str(prov['git_commit'])[:10]}"
             f"{'+dirty' if prov['git_dirty'] else ''} · {prov['date']}", fontsize=6, color="0.4")
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="ε vs rank for the Wishart mechanism ([LRP] Thm 1)")
    ap.add_argument("step", nargs="?", choices=("compute", "plot", "all"), default="all")
    ap.add_argument("--d", type=int, default=400)
    ap.add_argument("--delta", type=float, default=0.01)
    ap.add_argument("--rho", type=float, nargs="+", default=[0.5, 0.9])
    args = ap.parse_args(argv)
    if args.step in ("compute", "all"):
        res = compute(d=args.d, delta=args.delta, rhos=tuple(args.rho))
        print(f"wrote {JSON_PATH} ({res['seconds']:.1f} s)")
    if args.step in ("plot", "all"):
        print(f"wrote {plot()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
