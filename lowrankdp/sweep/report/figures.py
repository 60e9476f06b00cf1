"""The report's figures, drawn only from stored results (matplotlib, imported lazily; core layer, no torch).

Each ``fig_*`` function takes the loaded runs and returns a :class:`Figure` (PNG bytes or None, caption, notes
saying which runs lack which key). Only runs that finished ``ok`` are drawn: an unfinished, failed or unreadable
run has no final epoch and no curve here (the run table lists it).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .claims import describe_cell, epsilon_flag, equal_utility_deltas, estimate
from .loading import CELL_FIELDS, RunEntry, cell_key, context_key, group_by

__all__ = ["Figure", "FIGURES", "draw_all", "run_labels"]


@dataclass(frozen=True)
class Figure:
    key: str
    title: str
    caption: str
    png: bytes | None
    notes: tuple[str, ...] = ()


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.grid": True, "grid.alpha": 0.3,
                         "figure.dpi": 100, "savefig.dpi": 100, "legend.fontsize": 8})
    return plt


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def run_labels(runs: Sequence[RunEntry]) -> dict[str, str]:
    """Legend label per run: the method plus the cell fields that vary among runs of that method. Replicates
    (runs that differ only by seed) share a label; :func:`_once` draws it in a legend once."""
    out = {}
    for method_runs in group_by(runs, lambda r: r.method).values():
        varying = [f for f in CELL_FIELDS if len({repr(r.field(f)) for r in method_runs}) > 1]
        for r in method_runs:
            extra = ", ".join(_short(f, r.field(f)) for f in varying)
            out[r.name] = r.label + (f" ({extra})" if extra else "")
    return out


def _once(labels: dict[str, str], seen: set[str], run: RunEntry) -> str:
    """The run's legend label the first time it is seen, else matplotlib's "no legend" label."""
    label = labels[run.name]
    if label in seen:
        return "_nolegend_"
    seen.add(label)
    return label


def _short(name: str, v: Any) -> str:
    if isinstance(v, tuple) and len(v) == 2:  # a privacy level: ("ε", 4.0) or ("σ", 1.0)
        return f"{v[0]}={v[1]:g}" if isinstance(v[1], (int, float)) else f"{v[0]}={v[1]}"
    short = {"rank": "r", "alpha": "α", "epochs": "ep"}.get(name, name)
    return f"{short}={v:g}" if isinstance(v, float) else f"{short}={v}"


def _names(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _missing(runs: Sequence[RunEntry], present, what: str = "this measurement") -> tuple[str, ...]:
    """Notes naming the finished runs that lack a measurement and the runs not drawn at all."""
    notes = []
    ok = [r for r in runs if r.ok]
    lacking = [r.name for r in ok if not present(r)]
    if lacking and len(lacking) == len(ok):
        notes.append(f"No finished run stores {what}.")
    elif lacking:
        notes.append(f"Not stored for {len(lacking)} finished run(s): {_names(lacking)}.")
    skipped = [f"{r.name} ({r.state.value})" for r in runs if not r.ok]
    if skipped:
        notes.append(f"Not drawn (not finished ok, see the run table): {_names(skipped)}.")
    return tuple(notes)


def cell_labels(runs: Sequence[RunEntry]) -> dict[tuple, str]:
    """A short label per cell: :func:`describe_cell` without the parts every cell shares (the method is kept)."""
    cells = group_by([r for r in runs if r.ok], cell_key)
    parts = {k: describe_cell(c[0]).split(" · ") for k, c in cells.items()}
    common = set.intersection(*(set(p[1:]) for p in parts.values())) if parts else set()
    return {k: " · ".join([p[0]] + [x for x in p[1:] if x not in common]) for k, p in parts.items()}


def _legend_right(fig, ax) -> None:
    handles, names = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7.5)


# ------------------------------------------------------------------------------------------- figures

def fig_privacy_utility(runs: Sequence[RunEntry], labels: dict[str, str]) -> Figure:
    title = "Privacy and utility over epochs"
    caption = ("Left: loss on the sensitive tokens of the training set (higher = more private). Middle: loss on "
               "the non-sensitive tokens of the test set (lower = better utility). Right: the two as a "
               "trajectory, one point per epoch, the last circled. Epoch 0 is the base model.")
    have = [r for r in runs if r.series("sensitive_loss_token")[0] and r.series("utility_loss")[0]]
    notes = _missing(runs, lambda r: r in have, "sensitive-token and utility losses")
    if not have:
        return Figure("privacy_utility", title, caption, None, notes)
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    seen: set[str] = set()
    for r in have:
        (xs, ys), (xu, yu) = r.series("sensitive_loss_token"), r.series("utility_loss")
        axes[0].plot(xs, ys, "-o", ms=3, color=r.color, label=_once(labels, seen, r))
        axes[1].plot(xu, yu, "-o", ms=3, color=r.color)
        common = sorted(set(xs) & set(xu))
        pu, ps = [yu[xu.index(e)] for e in common], [ys[xs.index(e)] for e in common]
        axes[2].plot(pu, ps, "-", marker=".", color=r.color, alpha=0.85)
        axes[2].plot(pu[-1:], ps[-1:], "o", mfc="none", ms=9, color=r.color)
    axes[0].set(xlabel="epoch", ylabel="sensitive-token loss (train) ↑ more private", title="Privacy")
    axes[1].set(xlabel="epoch", ylabel="non-sensitive loss (test) ↓ better", title="Utility")
    axes[2].set(xlabel="utility loss ↓", ylabel="sensitive-token loss ↑", title="Privacy vs utility")
    fig.tight_layout()
    _legend_right(fig, axes[0])
    return Figure("privacy_utility", title, caption, _png(fig), notes)


def _frontier_lines(runs: Sequence[RunEntry]) -> dict[tuple, list[tuple[float, Any, list[RunEntry]]]]:
    """Per (method, context, rank, α, lr): its cells at each privacy level with the mean achieved ε."""
    lines: dict[tuple, list] = {}
    for cell in group_by([r for r in runs if r.ok and r.value("utility_loss") is not None], cell_key).values():
        r0 = cell[0]
        eps = [r.privacy.epsilon for r in cell if r.privacy and r.privacy.epsilon is not None]
        key = (r0.method,) + context_key(r0) + (r0.field("rank"), r0.field("alpha"), r0.field("lr"))
        lines.setdefault(key, []).append((float(np.mean(eps)) if eps else math.inf, r0, cell))
    return lines


def fig_frontier(runs: Sequence[RunEntry], labels: dict[str, str]) -> Figure:
    title = "Utility–ε frontier per method"
    caption = ("Final utility loss (mean over seeds, bars: 95 % t-interval; none with one seed) against the run's "
               "accountant ε (mean over seeds). Methods without noise have ε = ∞ and are drawn as dashed "
               "horizontal lines (band: their interval). Hollow markers: ε is an estimate or rests on an "
               "assumption (see the equal-ε table).")
    lines = _frontier_lines(runs)
    short = cell_labels(runs)
    notes = _missing(runs, lambda r: r.value("utility_loss") is not None, "a utility loss")
    if not lines:
        return Figure("frontier", title, caption, None, notes)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    for pts in lines.values():
        pts.sort(key=lambda p: p[0])
        r0 = pts[0][1]
        ests = [estimate(r.value("utility_loss") for r in cell) for _, _, cell in pts]
        label = short[cell_key(r0)].split(" · target")[0].split(" · σ=")[0]
        if not r0.private:
            e = ests[0]
            ax.axhline(e.mean, ls="--", color=r0.color, lw=1.2, label=f"{label} (ε = ∞)")
            if e.lo is not None:
                ax.axhspan(e.lo, e.hi, color=r0.color, alpha=0.12)
            continue
        xs = [p[0] for p in pts]
        ys = [e.mean for e in ests]
        err = [[e.mean - e.lo if e.lo is not None else 0 for e in ests],
               [e.hi - e.mean if e.hi is not None else 0 for e in ests]]
        ax.errorbar(xs, ys, yerr=err, fmt="-o", ms=5, capsize=3, color=r0.color, label=label)
        for x, y, (_, r, _) in zip(xs, ys, pts):
            if epsilon_flag(r):
                ax.plot([x], [y], "o", ms=10, mfc="white", color=r0.color)
    ax.set_xscale("log")
    ax.set(xlabel="accountant ε (log)", ylabel="utility loss (test, non-sensitive) ↓", title=title)
    fig.tight_layout()
    _legend_right(fig, ax)
    return Figure("frontier", title, caption, _png(fig), notes)


def equal_utility_rows(runs: Sequence[RunEntry]) -> list[tuple[RunEntry, Any, Any, Any]]:
    """Per non-FFT cell with an FFT reference: (first run, Δ sensitive loss vs FFT at equal utility,
    memorisation gap, "k of n" runs matched at equal utility) — estimates over seeds."""
    fft = group_by([r for r in runs if r.ok and r.method == "fft"], context_key)
    rows = []
    for cell in group_by([r for r in runs if r.ok], cell_key).values():
        r0 = cell[0]
        gap = estimate(v for r in cell if (v := r.value("memorization_gap_token")) is not None)
        ref = fft.get(context_key(r0))
        delta, eq = None, "—"
        if ref and r0.method != "fft":
            d, eq = equal_utility_deltas(cell, ref)
            delta = estimate(d.values())
            eq = f"{eq} of {len(d)}"
        rows.append((r0, delta, gap, eq))
    return rows


def fig_equal_utility(runs: Sequence[RunEntry], labels: dict[str, str]) -> Figure:
    title = "Privacy at equal utility"
    caption = ("Each cell's sensitive-token loss minus FFT's at the same utility loss (FFT's trajectory "
               "interpolated; both base-subtracted; > 0 = more private than FFT at equal utility; mean over "
               "seeds, bars: 95 % interval; a run whose utility is outside FFT's trajectory is compared with "
               "FFT's last epoch), and, where stored, the memorisation gap (test − train sensitive-token loss) "
               "at the last epoch (> 0 = better on the values trained on).")
    rows = equal_utility_rows(runs)
    notes = _missing(runs, lambda r: r.value("sensitive_loss_token") is not None, "a sensitive-token loss")
    short = cell_labels(runs)
    panels = [(items, xl) for items, xl in (
        ([(r, d) for r, d, _, _ in rows if d is not None],
         "Δ sensitive loss vs FFT at equal utility (nats) ↑ more private"),
        ([(r, g) for r, _, g, _ in rows if g is not None], "memorisation gap, test − train (nats)")) if items]
    if not panels:
        return Figure("equal_utility", title, caption, None, notes)
    plt = _plt()
    n = max(len(items) for items, _ in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 0.9 + 0.42 * max(n, 2)), squeeze=False)
    for ax, (items, xl) in zip(axes[0], panels):
        _hbars(ax, items, short)
        ax.set_xlabel(xl)
    fig.tight_layout()
    return Figure("equal_utility", title, caption, _png(fig), notes)


def _hbars(ax, items, short: dict[tuple, str]) -> None:
    ys = range(len(items))
    means = [e.mean for _, e in items]
    err = [[e.mean - e.lo if e.lo is not None else 0 for _, e in items],
           [e.hi - e.mean if e.hi is not None else 0 for _, e in items]]
    ax.barh(list(ys), means, xerr=err, capsize=3, color=[r.color for r, _ in items])
    ax.set_yticks(list(ys), [short[cell_key(r)] for r, _ in items], fontsize=7.5)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.8)


def fig_retention(runs: Sequence[RunEntry], labels: dict[str, str]) -> Figure:
    title = "Knowledge retention"
    caption = ("Held-out loss on the base model's pretraining text over epochs (lower = more of the base model's "
               "knowledge kept; docs/theory.md §6).")
    have = []
    for r in runs:
        pts = [(e.epoch, float(e.retention_loss)) for e in r.epochs
               if isinstance(e.retention_loss, (int, float)) and math.isfinite(e.retention_loss)]
        if pts:
            have.append((r, pts))
    notes = _missing(runs, lambda r: any(x is r for x, _ in have), "a retention loss")
    if not have:
        return Figure("retention", title, caption, None, notes)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    seen: set[str] = set()
    for r, pts in have:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-o", ms=3, color=r.color, label=_once(labels, seen, r))
    ax.set(xlabel="epoch", ylabel="retention loss ↓", title=title)
    fig.tight_layout()
    _legend_right(fig, ax)
    return Figure("retention", title, caption, _png(fig), notes)


def fig_exposure(runs: Sequence[RunEntry], labels: dict[str, str]) -> Figure:
    title = "Canary exposure"
    caption = ("Exposure of the inserted canary, log₂|R| − log₂ rank (bits), over epochs. Dashed: the maximum "
               "(the secret ranked first). Epoch 0 is the base model: a DP run should stay near its own epoch-0 "
               "value (judged one-sided in the claims: below it is fine).")
    have = [r for r in runs if r.series("exposure.value")[0]]
    notes = list(_missing(runs, lambda r: r in have, "a canary exposure"))
    methods = sorted({str(m) for r in have if (m := r.final.metric("exposure.method")) is not None})
    if methods:
        caption += f" Exposure method(s) stored: {', '.join(methods)}."
    if any(m != "exact" for m in methods):
        notes.append("Some exposures are fitted estimates, not exact ranks (see `exposure.method`).")
    if not have:
        return Figure("exposure", title, caption, None, tuple(notes))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.2))
    seen: set[str] = set()
    for r in have:
        x, y = r.series("exposure.value")
        ax.plot(x, y, "-o", ms=3, color=r.color, label=_once(labels, seen, r))
    space = next((float(s) for r in have if isinstance(s := r.final.metric("exposure.space_size"), (int, float))
                  and s > 1), None)
    if space:
        ax.axhline(math.log2(space), ls="--", color="gray", lw=1, label=f"max log₂|R| = {math.log2(space):.2f}")
    ax.set(xlabel="epoch", ylabel="exposure (bits)", title=title)
    fig.tight_layout()
    _legend_right(fig, ax)
    return Figure("exposure", title, caption, _png(fig), tuple(notes))


def _cell_mean(cell: Sequence[RunEntry], key: str) -> float | None:
    vals = [x for r in cell if (x := r.value(key)) is not None]
    return float(np.mean(vals)) if vals else None


def fig_costs(runs: Sequence[RunEntry], labels: dict[str, str]) -> Figure:
    title = "Cost per method"
    caption = ("Per cell (mean over seeds). Left: FLOPs per token measured by the profiler (solid) with the analytic "
               "count beside it (hatched; docs/theory.md §6: FFT ≈ 6N, LoRA ≈ 4N, DP-SGD ≈ 8N). Right: training "
               "wall time excluding evaluations. Claims about FLOPs are judged on the measured values.")
    cells = list(group_by([r for r in runs if r.ok], cell_key).values())
    short = cell_labels(runs)
    m_key, a_key, t_key = ("costs.measured_flops_per_token", "costs.analytic_flops_per_token",
                           "costs.train_seconds")
    notes = tuple(dict.fromkeys(n for k, what in ((m_key, "measured FLOPs"), (a_key, "analytic FLOPs"),
                                                  (t_key, "a training time"))
                                for n in _missing(runs, lambda r, k=k: r.value(k) is not None, what)))
    flops = [(_cell_mean(c, m_key), _cell_mean(c, a_key)) for c in cells]
    times = [_cell_mean(c, t_key) for c in cells]
    has_flops, has_time = any(a or b for a, b in flops), any(t is not None for t in times)
    if not has_flops and not has_time:
        return Figure("costs", title, caption, None, notes)
    plt = _plt()
    ncols = int(has_flops) + int(has_time)
    fig, axes = plt.subplots(1, ncols, figsize=(6.5 * ncols, 1.2 + 0.45 * len(cells)), squeeze=False)
    ys = np.arange(len(cells))
    names = [short[cell_key(c[0])] for c in cells]
    colors = [c[0].color for c in cells]
    axes_iter = iter(axes[0])
    if has_flops:
        ax = next(axes_iter)
        meas = [m or 0.0 for m, _ in flops]
        ana = [a or 0.0 for _, a in flops]
        ax.barh(ys - 0.2, meas, height=0.4, color=colors, label="measured")
        ax.barh(ys + 0.2, ana, height=0.4, color=colors, alpha=0.35, hatch="//", label="analytic")
        for y, m, a in zip(ys, meas, ana):
            ax.text(m, y - 0.2, f" {m:.3g}" if m else " —", va="center", fontsize=7)
            ax.text(a, y + 0.2, f" {a:.3g}" if a else " —", va="center", fontsize=7, color="#555")
        ax.set_xlabel("FLOPs per token: measured (solid), analytic (hatched)")
        ax.set_xlim(0, max(meas + ana) * 1.25 or 1)
    if has_time:
        ax = next(axes_iter)
        tv = [t or 0.0 for t in times]
        ax.barh(ys, tv, color=colors)
        ax.set_xlabel("training wall time (s)")
    for j, ax in enumerate(axes[0]):
        ax.set_yticks(ys, names if j == 0 else [""] * len(ys), fontsize=7.5)
        ax.invert_yaxis()
    fig.tight_layout()
    return Figure("costs", title, caption, _png(fig), notes)


def _roc_panel(ax, r: RunEntry, rep: dict[str, Any], labels: dict[str, str]) -> None:
    from ...metrics import epsilon_roc_curve

    fpr, tpr = np.asarray(rep["roc"]["fpr"], float), np.asarray(rep["roc"]["tpr"], float)
    n_out = int(rep.get("n_out") or max(10, fpr.size))
    lo = max(1.0 / n_out, 1e-4) / 2
    m = fpr > 0
    ax.step(fpr[m], np.maximum(tpr[m], lo), where="post", color=r.color, lw=1.8,
            label=f"attack (AUC {rep.get('auc', float('nan')):.3f})")
    grid = np.logspace(math.log10(lo), 0, 200)
    ax.plot(grid, grid, ":", color="gray", lw=1, label="chance")
    p = r.privacy
    if r.private and p is not None and p.epsilon is not None and math.isfinite(p.epsilon):
        delta = p.delta or 0.0
        ax.plot(grid, np.maximum(epsilon_roc_curve(p.epsilon, delta, grid), lo), "--", color="black", lw=1.2,
                label=f"allowed by ε={p.epsilon:.3g}, δ={delta:.2g}{' †' if epsilon_flag(r) else ''}")
    ax.axvline(1.0 / n_out, color="gray", lw=0.8, ls="-.", label=f"1/non-members = {1.0 / n_out:.2g}")
    ax.set(xscale="log", yscale="log", xlim=(lo, 1.05), ylim=(lo, 1.15), xlabel="false positive rate",
           ylabel="true positive rate")
    ax.set_title(f"{labels[r.name]}, seed {r.seed}\n{rep.get('n_in')} members / {n_out} non-members", fontsize=9)
    ax.legend(loc="lower right", fontsize=7)


def fig_roc(runs: Sequence[RunEntry], labels: dict[str, str], attack: str = "loss") -> Figure:
    title = f"Membership attack ROC ({attack} attack) and the ROC the accountant's ε allows"
    caption = ("Log–log ROC of the stored attack at the last epoch (solid) with the largest TPR an (ε, δ)-DP "
               "mechanism allows at each FPR (dashed). Left of the dash-dotted line (FPR below one non-member) "
               "the ROC is a single count and carries no information. A solid curve above the dashed one "
               "contradicts the accountant only if it stays above it beyond sampling noise — judged in the "
               "claims by the certified ε lower bound, and only where the sample size could certify more than "
               "the accountant's ε. † ε is an estimate or rests on an assumption.")
    stored = [(r, rep) for r in runs if r.final is not None and isinstance(rep := r.final.metric(f"mia.{attack}"), dict)
              and isinstance(rep.get("roc"), dict)]
    notes = _missing(runs, lambda r: any(x is r for x, _ in stored), f"a {attack} membership attack")
    by_seed = sorted(stored, key=lambda x: x[0].seed if isinstance(x[0].seed, int) else 0)
    have = [cell[0] for cell in group_by(by_seed, lambda x: cell_key(x[0])).values()]  # one panel per cell
    if len(have) < len(stored):
        caption += " One panel per cell: the run with the lowest seed (the other seeds' AUCs are in the run table)."
    if not have:
        return Figure("roc", title, caption, None, notes)
    plt = _plt()
    cols = min(3, len(have))
    nrows = (len(have) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 4.2 * nrows), squeeze=False)
    for ax, (r, rep) in zip(axes.flat, have):
        _roc_panel(ax, r, rep, labels)
    for ax in list(axes.flat)[len(have):]:
        ax.set_axis_off()
    fig.tight_layout()
    return Figure("roc", title, caption, _png(fig), notes)


def fig_audit(runs: Sequence[RunEntry], labels: dict[str, str]) -> Figure:
    title = "Accountant ε vs audited ε"
    caption = ("Each stored privacy audit of a DP run: its certified lower bound on ε against the accountant's ε "
               "(diagonal: equality). A point above the diagonal contradicts the accountant; where the grey bar "
               "(the largest ε the audit could certify with its canaries) lies below the diagonal, the audit "
               "could not have contradicted it (\"not testable\" in the claims). Squares: ε is an estimate or "
               "rests on an assumption.")
    pts = [(r, a) for r in runs if r.ok and r.private and r.privacy and r.privacy.epsilon is not None
           for a in r.audits]
    if not pts:
        return Figure("audit", title, caption, None, ("No run stores a privacy audit.",))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5))
    top = 0.0
    for r, a in pts:
        lb = next((float(a[k]) for k in ("epsilon", "epsilon_lower_bound", "epsilon_lb")
                   if isinstance(a.get(k), (int, float))), math.nan)
        ax.plot([r.privacy.epsilon], [lb], "o" if not epsilon_flag(r) else "s", color=r.color,
                label=f"{r.label} · {a.get('name', 'audit')}")
        cap = next((float(a[k]) for k in ("max_epsilon", "epsilon_max", "perfect_epsilon")
                    if isinstance(a.get(k), (int, float))), None)
        if cap is not None:  # the most this audit could have certified
            ax.plot([r.privacy.epsilon], [cap], "_", ms=14, mew=2, color="gray",
                    label="largest ε the audit could certify")
            top = max(top, cap)
        top = max(top, r.privacy.epsilon, lb if math.isfinite(lb) else 0.0)
    ax.plot([0, top * 1.1], [0, top * 1.1], "--", color="gray", lw=1)
    ax.set(xlabel="accountant ε", ylabel="audited ε (lower bound)", title=title)
    handles, names = ax.get_legend_handles_labels()
    uniq = dict(zip(names, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=7)
    fig.tight_layout()
    return Figure("audit", title, caption, _png(fig), ())


FIGURES = (fig_privacy_utility, fig_frontier, fig_equal_utility, fig_retention, fig_exposure, fig_costs, fig_roc,
           fig_audit)


def draw_all(runs: Sequence[RunEntry], *, attack: str = "loss") -> list[Figure]:
    labels = run_labels(runs)
    return [f(runs, labels, attack) if f is fig_roc else f(runs, labels) for f in FIGURES]
