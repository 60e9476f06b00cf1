"""Sweep report: a self-contained HTML page (figures as base64 PNG, no external assets) and a
Markdown file, drawn only from the stored results of a sweep directory — nothing is retrained.

Sections (docs/theory.md §8.1, §8.6, §9.3):

1. privacy (sensitive-token training loss, higher = more private) and utility (non-sensitive test
   loss, lower = better) per method over epochs, and the privacy–utility trajectory;
2. canary exposure per method over epochs;
3. cost per method: analytic FLOPs and measured wall time (side by side, with the ratios);
4. log–log ROC of each method's membership attack with the ROC that the method's theoretical ε
   allows (``lowrankdp.metrics.epsilon_roc_curve``) on the same axes;
5. ε vs rank for the projection accountants (``lowrankdp.accounting.epsilon``, projection
   none/fresh/fixed) at the sweep's noise, sampling rate and steps — theory, labelled as such;
6. the expected outcomes of docs/theory.md §8.6, each marked holds / does not hold / not measured, and
   the memorisation gap (``memorization_gap_token``: test − train sensitive-token loss) per method;
7. a table of every run (status, last-epoch measures including the memorisation gap, and reason).

Where a measurement is missing from the stored results the report says so, by run and key.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = ["RunResult", "load_results", "write_report"]

METHOD_ORDER = ("fft", "lora", "lora-fa", "dp-sgd", "dp-lora", "compressed-dp-sgd")
METHOD_LABEL = {"fft": "FFT", "lora": "LoRA", "lora-fa": "LoRA-FA", "dp-sgd": "DP-SGD", "dp-lora": "DP-LoRA",
                "compressed-dp-sgd": "compressed DP-SGD"}
METHOD_COLOR = {"fft": "#d62728", "lora": "#1f77b4", "lora-fa": "#17becf", "dp-sgd": "#2ca02c",
                "dp-lora": "#9467bd", "compressed-dp-sgd": "#ff7f0e"}
DP = {"dp-sgd", "dp-lora", "compressed-dp-sgd"}


# ------------------------------------------------------------------------------------ loading


@dataclass
class RunResult:
    name: str
    key: str
    status: str
    reason: str | None
    config: dict[str, Any]
    run_dir: Path
    metrics: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float | None = None
    attempts: int | None = None

    @property
    def method(self) -> str:
        return str(self.config.get("method", "?"))

    @property
    def synthetic(self) -> bool:
        return bool(self.summary.get("synthetic")) or any(m.get("synthetic") for m in self.metrics)

    def series(self, path: str) -> tuple[list[float], list[float]]:
        """(epochs, values) of a numeric measurement over the stored epochs (missing epochs skipped)."""
        xs, ys = [], []
        for i, line in enumerate(self.metrics):
            v = metric(line, path)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)):
                xs.append(float(line.get("epoch", i)))
                ys.append(float(v))
        return xs, ys

    def last(self, path: str) -> Any:
        """Value at the last epoch that has it (None if no epoch has it)."""
        for line in reversed(self.metrics):
            v = metric(line, path)
            if v is not None:
                return v
        return None


def metric(line: dict[str, Any], path: str) -> Any:
    """Look up a dotted path in a metrics line, first under ``measurements`` then at top level."""
    for root in (line.get("measurements") if isinstance(line.get("measurements"), dict) else None, line):
        if root is None:
            continue
        cur: Any = root
        ok = True
        for part in path.split("."):
            if isinstance(cur, dict) and part in cur:
                cur = cur[part]
            else:
                ok = False
                break
        if ok:
            return cur
    return None


def _num(e: Any) -> float | None:
    if isinstance(e, str) and e in ("inf", "Infinity"):
        return math.inf
    if isinstance(e, (int, float)) and not isinstance(e, bool):
        return float(e)
    return None


def _epsilon_of(line: dict[str, Any]) -> float | None:
    """The theoretical ε stored with a metrics line (``privacy.epsilon``, else ``epsilon``)."""
    for key in ("privacy", "epsilon"):
        e = line.get(key)
        if isinstance(e, dict):
            v = _num(e.get("epsilon"))
            if v is not None:
                return v
        else:
            v = _num(e)
            if v is not None:
                return v
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text())
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        with open(path) as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    d = json.loads(line)
                except ValueError:
                    continue  # a line cut by a crash
                if isinstance(d, dict):
                    out.append(d)
    except OSError:
        pass
    return out


def load_results(sweep_dir: str | os.PathLike) -> tuple[dict[str, Any], list[RunResult]]:
    """Sweep record (sweep.json) and every run's stored results (from the index, else runs/*)."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise ValueError(f"run_dir must be a sweep directory, got {str(root)!r} (not a directory)")
    sweep = _read_json(root / "sweep.json")
    runs: list[RunResult] = []
    if (root / "index.sqlite").is_file():
        from .index import RunIndex

        for row in RunIndex(root / "index.sqlite").rows():
            rd = root / row["run_dir"]
            runs.append(RunResult(name=row["name"], key=row["run_key"], status=row["status"], reason=row["reason"],
                                  config=row["config"], run_dir=rd, wall_time_s=row["wall_time_s"],
                                  attempts=row["attempts"]))
    elif (root / "runs").is_dir():
        for rd in sorted(p for p in (root / "runs").iterdir() if p.is_dir()):
            rec = _read_json(rd / "run.json")
            summ = _read_json(rd / "summary.json")
            cfg = rec.get("config") or _read_json(rd / "config.json")
            runs.append(RunResult(name=rec.get("name", rd.name), key=rec.get("run_key", ""),
                                  status=rec.get("status", summ.get("status", "unknown")),
                                  reason=rec.get("reason", summ.get("reason")), config=cfg, run_dir=rd,
                                  wall_time_s=rec.get("wall_time_s")))
    else:
        raise ValueError(f"run_dir {str(root)!r} holds neither index.sqlite nor runs/: not a sweep directory")
    for r in runs:
        r.metrics = _read_jsonl(r.run_dir / "metrics.jsonl")
        r.summary = _read_json(r.run_dir / "summary.json")
        r.record = _read_json(r.run_dir / "run.json")
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    runs.sort(key=lambda r: (order.get(r.method, 99), r.name))
    return sweep, runs


# ------------------------------------------------------------------------------------ figures


class _Fig:
    def __init__(self, key: str, title: str, caption: str, png: bytes | None, notes: list[str]):
        self.key, self.title, self.caption, self.png, self.notes = key, title, caption, png, notes


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.grid": True, "grid.alpha": 0.3,
                         "figure.dpi": 100, "savefig.dpi": 100, "legend.fontsize": 8.5})
    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _labels(runs: Sequence[RunResult]) -> dict[str, str]:
    """Legend label per run: the method, plus the grid values that differ among runs of that method."""
    by_method: dict[str, list[RunResult]] = {}
    for r in runs:
        by_method.setdefault(r.method, []).append(r)
    out = {}
    for m, rs in by_method.items():
        varying = [k for k in ("model", "rank", "alpha", "noise_multiplier", "seed", "epochs", "lr")
                   if len({json.dumps(r.config.get(k)) for r in rs}) > 1]
        short = {"rank": "r", "alpha": "α", "noise_multiplier": "σ", "seed": "seed", "epochs": "ep", "lr": "lr",
                 "model": ""}
        for r in rs:
            extra = ", ".join(f"{short[k]}={_fmt(r.config.get(k)) if k != 'model' else r.config.get(k)}"
                              for k in varying)
            out[r.name] = METHOD_LABEL.get(m, m) + (f" ({extra})" if extra else "")
    if len({r.config.get("dataset") or r.config.get("data") for r in runs}) > 1:
        for r in runs:
            out[r.name] += f" [{Path(str(r.config.get('data'))).name}]"
    return out


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int,)):
        return str(v)
    if isinstance(v, float):
        if math.isinf(v):
            return "∞"
        if math.isnan(v):
            return "nan"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.{digits - 1}e}"
        return f"{v:.{digits}g}"
    return str(v)


def _missing(runs: Sequence[RunResult], path: str, *, need_ok: bool = False) -> list[RunResult]:
    return [r for r in runs if (not need_ok or r.status == "ok") and r.last(path) is None]


def _missing_note(lacking: Sequence[Any], path: str, total: int) -> list[str]:
    """Say which runs lack ``path``: finished runs that did not measure it, failed runs, unfinished runs."""
    if not lacking:
        return []
    runs = [r for r in lacking if isinstance(r, RunResult)]
    names = [r if isinstance(r, str) else r.name for r in lacking]
    if len(names) == total and all(r.status == "ok" for r in runs):
        return [f"Not measured: no stored run has `{path}`."]
    notes = []
    ok = [r.name for r in runs if r.status == "ok"] + [n for n in lacking if isinstance(n, str)]
    failed = [r.name for r in runs if r.status == "failed"]
    unfinished = [r.name for r in runs if r.status not in ("ok", "failed")]
    if ok:
        notes.append(f"Not measured for {len(ok)} run(s) (no `{path}` in metrics.jsonl): {', '.join(ok)}.")
    if failed:
        notes.append(f"Missing for {len(failed)} failed run(s) (reasons in the run table): {', '.join(failed)}.")
    if unfinished:
        notes.append(f"Missing for {len(unfinished)} run(s) not finished yet (pending, running or interrupted): "
                     f"{', '.join(unfinished)}.")
    return notes


def fig_privacy_utility(runs: Sequence[RunResult], labels: dict[str, str]) -> _Fig:
    title = "Privacy and utility over epochs"
    caption = ("Left: loss on sensitive tokens of the training set (higher = more private; memorisation "
               "drives it down). Middle: loss on non-sensitive tokens of the test set (lower = better "
               "utility). Right: the same two numbers as a trajectory, one marker per epoch, the last "
               "epoch circled. Epoch 0 is the base model before fine-tuning.")
    have = [r for r in runs if r.series("sensitive_loss_token")[0] or r.series("utility_loss")[0]]
    notes = (_missing_note(_missing(runs, "sensitive_loss_token"), "sensitive_loss_token", len(runs))
             + _missing_note(_missing(runs, "utility_loss"), "utility_loss", len(runs)))
    if not have:
        return _Fig("privacy_utility", title, caption, None, notes)
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    for r in have:
        c = METHOD_COLOR.get(r.method, None)
        x, y = r.series("sensitive_loss_token")
        if x:
            axes[0].plot(x, y, "-o", ms=3.5, color=c, label=labels[r.name])
        x2, y2 = r.series("utility_loss")
        if x2:
            axes[1].plot(x2, y2, "-o", ms=3.5, color=c, label=labels[r.name])
        common = sorted(set(x) & set(x2))
        if common:
            px = [y2[x2.index(e)] for e in common]
            py = [y[x.index(e)] for e in common]
            axes[2].plot(px, py, "-", marker=".", color=c, label=labels[r.name], alpha=0.85)
            axes[2].plot(px[-1], py[-1], "o", mfc="none", ms=10, color=c)
    axes[0].set(xlabel="epoch", ylabel="sensitive-token loss (train)  ↑ more private", title="Privacy")
    axes[1].set(xlabel="epoch", ylabel="non-sensitive loss (test)  ↓ better", title="Utility")
    axes[2].set(xlabel="utility: non-sensitive test loss  ↓", ylabel="privacy: sensitive train loss  ↑",
                title="Privacy vs utility (trajectory)")
    axes[0].legend(loc="best")
    fig.tight_layout()
    return _Fig("privacy_utility", title, caption, _png(fig), notes)


def fig_exposure(runs: Sequence[RunResult], labels: dict[str, str]) -> _Fig:
    title = "Canary exposure"
    space = None
    for r in runs:
        s = r.last("exposure.space_size")
        if isinstance(s, (int, float)) and s > 1:
            space = float(s)
            break
    caption = ("Exposure of the inserted canary, log₂|R| − log₂ rank (bits), per method over epochs. "
               "The dashed line is the maximum (the secret ranked first among all candidates); "
               "a model that has not memorised the canary sits near 1 bit.")
    notes = _missing_note(_missing(runs, "exposure.value"), "exposure.value", len(runs))
    have = [r for r in runs if r.series("exposure.value")[0]]
    if not have:
        return _Fig("exposure", title, caption, None, notes)
    methods_used = {r.last("exposure.method") for r in have} - {None}
    if methods_used:
        caption += f" Exposure method(s) in the stored results: {', '.join(sorted(map(str, methods_used)))}."
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.0), gridspec_kw={"width_ratios": [1.6, 1]})
    names, finals, colors = [], [], []
    for r in have:
        x, y = r.series("exposure.value")
        c = METHOD_COLOR.get(r.method)
        axes[0].plot(x, y, "-o", ms=3.5, color=c, label=labels[r.name])
        names.append(labels[r.name])
        finals.append(y[-1])
        colors.append(c)
    if space:
        for ax in axes:
            ax.axhline(math.log2(space), ls="--", color="gray", lw=1)
        axes[0].text(0.01, math.log2(space), f" max log₂|R| = {math.log2(space):.2f}", va="bottom",
                     transform=axes[0].get_yaxis_transform(), fontsize=8, color="gray")
    axes[0].axhline(1.0, ls=":", color="gray", lw=1)
    axes[0].set(xlabel="epoch", ylabel="exposure (bits)", title="Exposure over epochs")
    axes[0].legend(loc="best")
    axes[1].barh(range(len(names)), finals, color=colors)
    axes[1].set_yticks(range(len(names)), names)
    axes[1].invert_yaxis()
    for i, v in enumerate(finals):
        axes[1].text(v, i, f" {v:.2f}", va="center", fontsize=8)
    axes[1].set(xlabel="exposure at last epoch (bits)", title="Final exposure")
    fig.tight_layout()
    return _Fig("exposure", title, caption, _png(fig), notes)


# (key, label, cumulative): cumulative keys are read at the last epoch, per-epoch ones are summed
_COSTS = (
    ("costs.analytic_flops_per_token", "analytic FLOPs per token", None),
    ("costs.measured_flops_per_token", "measured FLOPs per token (profiler)", None),
    ("costs.train_seconds", "training wall time (s)", True),
)


def _cost_value(r: RunResult, key: str, cumulative: bool | None) -> float | None:
    xs, ys = r.series(key)
    if not ys:
        return None
    if cumulative is False:
        return float(sum(ys))
    return ys[-1]


def fig_costs(runs: Sequence[RunResult], labels: dict[str, str]) -> tuple[_Fig, dict[str, Any]]:
    title = "Cost per method"
    caption = ("Analytic training FLOPs per token (docs/theory.md §6 count: FFT ≈ 6N, LoRA ≈ 4N, DP-SGD ≈ 8N), "
               "FLOPs per token measured by the profiler where stored, and measured training wall time "
               "(excluding per-epoch measurements), side by side. Ratios DP-SGD/FFT and DP-SGD/LoRA of "
               "each quantity are in the panel titles.")
    ok = [r for r in runs if r.status == "ok"]
    vals = {key: {r.name: _cost_value(r, key, cum) for r in ok} for key, _, cum in _COSTS}
    notes = []
    for key, _, _ in _COSTS:
        miss = [r for r in ok if vals[key][r.name] is None]
        notes += _missing_note(miss, key, len(ok) or 1)
    ratios = _cost_ratios(ok, vals)
    panels = [(key, lab) for key, lab, _ in _COSTS if any(v is not None for v in vals[key].values())]
    if not panels:
        return _Fig("costs", title, caption, None, notes), ratios
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.9), squeeze=False)
    for j, (ax, (key, lab)) in enumerate(zip(axes[0], panels)):
        have = [r for r in ok if vals[key][r.name] is not None]
        ys = [vals[key][r.name] for r in have]
        ax.barh(range(len(have)), ys, color=[METHOD_COLOR.get(r.method) for r in have])
        ax.set_yticks(range(len(have)), [labels[r.name] for r in have] if j == 0 else [""] * len(have))
        ax.invert_yaxis()
        for i, v in enumerate(ys):
            ax.text(v, i, f" {_fmt(v)}", va="center", fontsize=8)
        ax.set_xlabel(lab)
        ax.set_xlim(0, max(ys) * 1.3 if ys and max(ys) > 0 else 1)
        rr = ratios.get(key, {})
        ax.set_title("  ".join(f"{k} = {v:.2f}" for k, v in rr.items()) or lab, fontsize=9.5)
    fig.tight_layout()
    return _Fig("costs", title, caption, _png(fig), notes), ratios


def _cost_ratios(ok, vals) -> dict[str, dict[str, float]]:
    """Per cost key: DP-SGD/FFT and DP-SGD/LoRA of the per-method means."""
    out = {}
    for key, per_run in vals.items():
        d: dict[str, list[float]] = {}
        for r in ok:
            v = per_run.get(r.name)
            if v is not None:
                d.setdefault(r.method, []).append(v)
        pm = {m: sum(v) / len(v) for m, v in d.items()}
        rr = {}
        if "dp-sgd" in pm and pm.get("fft"):
            rr["DP-SGD/FFT"] = pm["dp-sgd"] / pm["fft"]
        if "dp-sgd" in pm and pm.get("lora"):
            rr["DP-SGD/LoRA"] = pm["dp-sgd"] / pm["lora"]
        out[key] = rr
    return out


def _roc_of(r: RunResult, attack: str) -> tuple[dict[str, Any] | None, int | None]:
    for i in range(len(r.metrics) - 1, -1, -1):
        rep = metric(r.metrics[i], f"mia.{attack}")
        if isinstance(rep, dict) and isinstance(rep.get("roc"), dict):
            return rep, int(r.metrics[i].get("epoch", i))
    return None, None


def _final_epsilon(r: RunResult) -> float | None:
    for line in reversed(r.metrics):
        e = _epsilon_of(line)
        if e is not None:
            return e
    e = r.summary.get("epsilon")
    if isinstance(e, (int, float)):
        return float(e)
    return None


def fig_roc(runs: Sequence[RunResult], labels: dict[str, str], attack: str) -> _Fig:
    title = f"Membership attack ROC vs the ROC allowed by ε ({attack} attack)"
    caption = ("Log–log ROC of the stored membership-inference attack at the last measured epoch (solid), "
               "with the largest TPR that an (ε, δ)-DP mechanism allows at each FPR for the run's "
               "theoretical ε (dashed, `lowrankdp.metrics.epsilon_roc_curve`). A solid curve above the "
               "dashed one would contradict the accountant. Non-private methods have ε = ∞ (no bound: the "
               "allowed region is the whole square). The dotted diagonal is chance.")
    have = [(r, *_roc_of(r, attack)) for r in runs]
    missing = [r for r, rep, _ in have if rep is None]
    notes = _missing_note(missing, f"mia.{attack}.roc", len(have) or 1)
    have = [(r, rep, ep) for r, rep, ep in have if rep is not None]
    if not have:
        return _Fig("roc", title, caption, None, notes)
    import numpy as np

    from ..metrics import epsilon_roc_curve

    plt = _plt()
    n = len(have)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4.2 * rows), squeeze=False)
    for ax, (r, rep, ep) in zip(axes.flat, have):
        c = METHOD_COLOR.get(r.method)
        fpr = np.asarray(rep["roc"]["fpr"], float)
        tpr = np.asarray(rep["roc"]["tpr"], float)
        n_out = rep.get("n_out") or max(10, len(fpr))
        lo = max(1.0 / float(n_out), 1e-4) / 2
        m = fpr > 0
        ax.step(fpr[m], np.maximum(tpr[m], lo), where="post", color=c, lw=1.8,
                label=f"attack (AUC {_fmt(rep.get('auc'))})")
        grid = np.logspace(math.log10(lo), 0, 200)
        ax.plot(grid, grid, ":", color="gray", lw=1, label="chance")
        eps = _final_epsilon(r)
        delta = r.config.get("delta", 1e-5) if r.method in DP else 0.0
        if r.method in DP and eps is not None and math.isfinite(eps):
            bound = epsilon_roc_curve(eps, float(delta), grid)
            ax.plot(grid, np.maximum(bound, lo), "--", color="black", lw=1.3,
                    label=f"allowed by ε = {_fmt(eps)}, δ = {_fmt(float(delta))}")
        elif r.method in DP:
            ax.text(0.03, 0.93, "ε not stored for this run", transform=ax.transAxes, fontsize=8)
        else:
            ax.axhline(1.0, ls="--", color="black", lw=1.3, label="allowed by ε = ∞ (no bound)")
        elb = rep.get("epsilon_lower_bound")
        tp = rep.get("tpr_at_fpr") or {}
        sub = []
        if isinstance(elb, (int, float)):
            sub.append(f"attack's certified ε lower bound {float(elb):.2f}")
        if "0.01" in tp:
            sub.append(f"TPR@1% = {_fmt(tp['0.01'])}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, 1.05)
        ax.set_ylim(lo, 1.15)
        ax.set_title(f"{labels[r.name]} — epoch {ep}\n" + "; ".join(sub), fontsize=9.5)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.legend(loc="lower right", fontsize=7.5)
    for ax in list(axes.flat)[n:]:
        ax.set_axis_off()
    fig.tight_layout()
    ns = sorted({(rep.get("n_in"), rep.get("n_out")) for _, rep, _ in have})
    caption += f" Members/non-members per attack: {', '.join(f'{a}/{b}' for a, b in ns)}."
    return _Fig("roc", title, caption, _png(fig), notes)


def epsilon_vs_rank(runs: Sequence[RunResult], ranks: Sequence[int], accountant: str = "rdp"
                    ) -> tuple[list[dict[str, Any]], list[str], dict[str, Any] | None]:
    """ε per projection (none/fresh/fixed) per rank at the stored settings of the DP runs.

    The settings (σ, sampling rate, steps, δ, gradient dimension d) are read from stored results:
    the per-epoch ``epsilon`` record when it carries them, else the config and ``costs``.
    Returns (rows, notes, settings).
    """
    notes: list[str] = []
    cands = [r for r in runs if r.status == "ok" and r.method in ("compressed-dp-sgd", "dp-sgd")]
    cands.sort(key=lambda r: r.method != "compressed-dp-sgd")
    settings = None
    for r in cands:
        s = _accounting_settings(r)
        if s is not None:
            settings = s
            break
    if settings is None:
        notes.append("Not available: no stored DP-SGD or compressed DP-SGD run records its sampling rate, "
                     "steps and gradient dimension (keys `epsilon.sampling_rate`, `epsilon.steps`, "
                     "`privacy.d` or `costs.trainable_params`).")
        return [], notes, None
    try:
        from .. import accounting
    except ImportError:
        notes.append("Not available: lowrankdp.accounting is not installed.")
        return [], notes, settings
    rows = []
    d = settings["d"]
    for proj in ("none", "fresh", "fixed"):
        for rk in ranks:
            if proj != "none" and rk >= (min(d) if isinstance(d, list) else d):
                continue
            try:
                kw = dict(noise_multiplier=settings["noise_multiplier"], sampling_rate=settings["sampling_rate"],
                          steps=settings["steps"], delta=settings["delta"], projection=proj, accountant=accountant)
                if proj != "none":
                    kw.update(d=d, r=rk)
                import warnings

                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    eps = float(accounting.epsilon(**kw))
                for w in caught:
                    msg = f"Accountant warning: {str(w.message).splitlines()[0]}"
                    if msg not in notes:
                        notes.append(msg)
            except (ValueError, TypeError) as exc:
                notes.append(f"ε(projection={proj}, r={rk}) not computed: {exc}")
                continue
            rows.append({"projection": proj, "rank": rk, "epsilon": eps})
            if proj == "none":
                break  # independent of rank
    fixed_assumption = getattr(accounting, "FIXED_PROJECTION_ASSUMPTION", None)
    if fixed_assumption and any(r["projection"] == "fixed" for r in rows):
        notes.append(f"Fixed projection assumption: {fixed_assumption}")
    return rows, notes, settings


def _accounting_settings(r: RunResult) -> dict[str, Any] | None:
    """σ, q, steps, δ and d stored by a DP run at its last epoch (``privacy`` record, else ``costs``)."""
    for line in reversed(r.metrics):
        src = line.get("privacy") if isinstance(line.get("privacy"), dict) else {}
        q = src.get("sampling_rate")
        steps = src.get("steps")
        d = src.get("d") or metric(line, "costs.trainable_params")
        sigma = src.get("noise_multiplier", r.config.get("noise_multiplier"))
        delta = src.get("delta", r.config.get("delta", 1e-5))
        if isinstance(d, list) and d and all(isinstance(x, int) for x in d):
            d_val: Any = [int(x) for x in d]
        elif isinstance(d, (int, float)):
            d_val = int(d)
        else:
            continue
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (q, steps, sigma, delta)) and steps > 0:
            return {"noise_multiplier": float(sigma), "sampling_rate": float(q), "steps": int(steps),
                    "delta": float(delta), "d": d_val, "from_run": r.name}
    return None


def _fmt_d(d: Any) -> str:
    if isinstance(d, list):
        u = sorted(set(d))
        return f"{u[0]}" if len(u) == 1 else f"{len(d)} layers, widths {', '.join(map(str, u))} (worst case used)"
    return str(d)


def fig_eps_rank(rows, notes, settings, grid_ranks) -> _Fig:
    title = "ε vs projection rank (accountants)"
    caption = ("Theoretical ε of DP-SGD whose clipped, noised gradient is projected on a random rank-r "
               "subspace, by accountant: no projection credit (`none`), a fresh projection each step, a "
               "fixed projection (see its assumption below). Computed with `lowrankdp.accounting.epsilon` "
               "at the noise, sampling rate, steps and δ stored by the run named below — theory, not a "
               "measurement.")
    if not rows:
        return _Fig("eps_rank", title, caption, None, notes)
    caption += (f" Settings (from {settings['from_run']}): σ = {_fmt(settings['noise_multiplier'])}, "
                f"q = {_fmt(settings['sampling_rate'])}, steps = {settings['steps']}, "
                f"δ = {_fmt(settings['delta'])}, d = {_fmt_d(settings['d'])}.")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    styles = {"none": ("black", "--"), "fresh": ("#ff7f0e", "-o"), "fixed": ("#8c564b", "-s")}
    for proj in ("fresh", "fixed"):
        pts = [(x["rank"], x["epsilon"]) for x in rows if x["projection"] == proj and math.isfinite(x["epsilon"])]
        if pts:
            c, st = styles[proj]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], st, color=c, ms=4, label=f"projection = {proj}")
    none = [x["epsilon"] for x in rows if x["projection"] == "none"]
    if none and math.isfinite(none[0]):
        ax.axhline(none[0], ls="--", color="black", lw=1.2, label=f"no projection (DP-SGD): ε = {_fmt(none[0])}")
    for rk in grid_ranks:
        ax.axvline(rk, color="gray", lw=0.8, ls=":")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set(xlabel="projection rank r", ylabel="ε", title="ε vs rank")
    ax.legend(loc="best")
    fig.tight_layout()
    return _Fig("eps_rank", title, caption, _png(fig), notes)


# ------------------------------------------------------------------------------------ checks


def expected_outcomes(runs: Sequence[RunResult], ratios: dict[str, Any]) -> list[dict[str, str]]:
    """docs/theory.md §8.6, checked on the stored results (per method: mean over its ok runs)."""
    ok = [r for r in runs if r.status == "ok"]

    def final(path):
        d: dict[str, list[float]] = {}
        for r in ok:
            v = r.last(path)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                d.setdefault(r.method, []).append(float(v))
        return {m: sum(v) / len(v) for m, v in d.items()}

    out = []

    def add(claim, verdict, detail):
        out.append({"claim": claim, "verdict": verdict, "detail": detail})

    # sanity: every run of one model must start from the same base model (epoch 0 = before training)
    base: dict[str, dict[str, float]] = {}
    for r in ok:
        if r.metrics and r.metrics[0].get("epoch") == 0:
            v = metric(r.metrics[0], "sensitive_loss_token")
            if isinstance(v, (int, float)):
                base.setdefault(str(r.config.get("model")), {})[r.name] = float(v)
    for model, vals in base.items():
        if len(vals) >= 2:
            spread = max(vals.values()) - min(vals.values())
            add(f"Sanity: all runs of model {model!r} start from the same base model (epoch-0 sensitive loss)",
                "holds" if spread < 1e-3 else "does not hold",
                f"epoch-0 values {', '.join(sorted({f'{x:.4f}' for x in vals.values()}))}"
                + ("" if spread < 1e-3 else " — base models differ between runs; compare methods with care"))

    sens = final("sensitive_loss_token")
    if len(sens) >= 2 and "fft" in sens:
        lowest = min(sens, key=sens.get)
        add("Sensitive-token training loss: FFT lowest (most memorised)",
            "holds" if lowest == "fft" else "does not hold",
            "; ".join(f"{METHOD_LABEL.get(m, m)} {v:.3f}" for m, v in sorted(sens.items(), key=lambda x: x[1])))
    else:
        add("Sensitive-token training loss: FFT lowest", "not measured", "needs FFT and another method")
    if "lora" in sens and "dp-sgd" in sens and "fft" in sens:
        d_ld = abs(sens["lora"] - sens["dp-sgd"])
        d_lf = abs(sens["lora"] - sens["fft"])
        add("LoRA's sensitive loss close to DP-SGD's (closer than to FFT's)",
            "holds" if d_ld < d_lf else "does not hold",
            f"|LoRA − DP-SGD| = {d_ld:.3f}, |LoRA − FFT| = {d_lf:.3f}")
    dec = []
    for r in ok:
        if r.method in ("fft", "lora", "lora-fa"):
            x, y = r.series("sensitive_loss_token")
            if len(y) >= 2:
                dec.append((r.name, all(b <= a + 1e-9 for a, b in zip(y[1:], y[2:])) and y[-1] < y[0], y))
    if dec:
        add("Noise-free methods: sensitive loss keeps decreasing with epochs",
            "holds" if all(d[1] for d in dec) else "does not hold",
            "; ".join(f"{n}: {' → '.join(f'{v:.2f}' for v in y)}" for n, _, y in dec))
    expo = final("exposure.value")
    if "fft" in expo and any(m in expo for m in DP):
        dp_vals = {m: v for m, v in expo.items() if m in DP}
        base_vals = [r.series("exposure.value")[1][0] for r in ok
                     if r.method in DP and r.series("exposure.value")[0][:1] == [0.0]]
        base = sum(base_vals) / len(base_vals) if base_vals else None
        near = (max(abs(v - base) for v in dp_vals.values()) <= 1.0) if base is not None else \
            (max(dp_vals.values()) <= 3.0)
        ref = (f"within 1 bit of the base model's {base:.2f} bits at epoch 0" if base is not None
               else "≤ 3 bits")
        add(f"Canary exposure: FFT highest; DP runs stay near the no-memorisation level ({ref})",
            "holds" if expo["fft"] >= max(expo.values()) and near else "does not hold",
            "; ".join(f"{METHOD_LABEL.get(m, m)} {v:.2f} bits" for m, v in sorted(expo.items(), key=lambda x: -x[1])))
    else:
        add("Canary exposure: FFT near max, DP near 1 bit", "not measured", "needs exposure for FFT and a DP run")
    util = final("utility_loss")
    if "lora" in util and "fft" in util:
        best_fft = min((min(r.series("utility_loss")[1] or [math.inf]) for r in ok if r.method == "fft"),
                       default=math.inf)
        add("Utility: LoRA close to FFT's best test loss", "see numbers",
            f"LoRA final {util['lora']:.3f}, FFT best {best_fft:.3f}, FFT final {util['fft']:.3f}")
    fr = ratios.get("costs.analytic_flops_per_token", {})
    if fr:
        ok13 = abs(fr.get("DP-SGD/FFT", math.nan) - 1.33) < 0.15 if "DP-SGD/FFT" in fr else None
        ok2 = abs(fr.get("DP-SGD/LoRA", math.nan) - 2.0) < 0.3 if "DP-SGD/LoRA" in fr else None
        verdict = "holds" if (ok13 is not False and ok2 is not False) else "does not hold"
        tr = ratios.get("costs.train_seconds", {})
        add("FLOPs: DP-SGD/FFT ≈ 1.33 and DP-SGD/LoRA ≈ 2 (analytic); wall time reported beside it", verdict,
            "analytic " + ", ".join(f"{k} {v:.2f}" for k, v in fr.items())
            + ("; measured time " + ", ".join(f"{k} {v:.2f}" for k, v in tr.items()) if tr else ""))
    else:
        add("FLOPs: DP-SGD/FFT ≈ 1.33 and DP-SGD/LoRA ≈ 2 (analytic)", "not measured",
            "needs analytic FLOPs per token of DP-SGD and of FFT or LoRA")
    viol, checked = [], 0
    for r in ok:
        if r.method not in DP:
            continue
        eps = _final_epsilon(r)
        for line in r.metrics:
            mia = metric(line, "mia")
            if not isinstance(mia, dict) or eps is None:
                continue
            for att, rep in mia.items():
                elb = rep.get("epsilon_lower_bound") if isinstance(rep, dict) else None
                if isinstance(elb, (int, float)):
                    checked += 1
                    e_line = _epsilon_of(line)
                    e_ref = e_line if e_line is not None else eps
                    if elb > e_ref + 1e-9:
                        viol.append(f"{r.name} epoch {line.get('epoch')} {att}: {elb:.3f} > ε {e_ref:.3f}")
    if checked:
        add("Empirical ε lower bound of every attack stays below the theoretical ε (DP runs)",
            "holds" if not viol else "does not hold",
            f"{checked} (attack, epoch) pairs checked" + (": " + "; ".join(viol[:5]) if viol else ""))
    else:
        add("Empirical ε lower bound ≤ theoretical ε", "not measured", "no DP run stores both")
    gap_key = "memorization_gap_token"
    gaps: dict[str, list[float]] = {}
    missing_runs = []
    for r in ok:
        v = _num(r.last(gap_key))
        if v is not None and math.isfinite(v):
            gaps.setdefault(r.method, []).append(v)
        else:
            missing_runs.append(r.name)
    gap_claim = ("Memorisation gap at the last epoch (sensitive-token loss on test − on train; > 0 = better "
                 "on the values trained on), per method")
    if gaps:
        order = {m: i for i, m in enumerate(METHOD_ORDER)}
        detail = "; ".join(
            f"{METHOD_LABEL.get(m, m)} {sum(v) / len(v):.3f}" + (f" (mean of {len(v)} runs)" if len(v) > 1 else "")
            for m, v in sorted(gaps.items(), key=lambda x: order.get(x[0], 99)))
        if missing_runs:
            detail += f"; not stored (no `{gap_key}` in metrics.jsonl) for: {', '.join(missing_runs)}"
        add(gap_claim, "see numbers", detail)
    else:
        add(gap_claim, "not measured",
            f"no finished run stores `{gap_key}` (measured before the key existed, or measurement off)"
            if ok else "no finished run")
    aucs = {r.name: metric(r.metrics[-1], "mia.loss.auc") for r in ok if r.metrics}
    lfa = [v for n, v in aucs.items() if n.startswith("lora-fa") and isinstance(v, (int, float))]
    if lfa:
        add("Noise-free LoRA-FA: membership AUC near 1 (matrix-mechanism attack; here: LM loss attack)",
            "see numbers", f"LoRA-FA LOSS-attack AUC at the last epoch: {', '.join(f'{v:.3f}' for v in lfa)} "
            "(the matrix-mechanism attack is in `lowrankdp.attacks`, not part of this sweep)")
    return out


# ------------------------------------------------------------------------------------ writing


def _run_table(runs: Sequence[RunResult], attack: str) -> tuple[list[str], list[list[str]]]:
    head = ["run", "method", "rank", "α", "σ", "seed", "epochs", "status", "attempts", "wall time (s)",
            "sens. loss", "utility loss", "memorisation gap", "exposure (bits)", f"AUC ({attack})", "ε",
            "reason"]
    rows = []
    for r in runs:
        c = r.config
        eps = _final_epsilon(r) if r.method in DP else math.inf
        auc = None
        rep, _ = _roc_of(r, attack)
        if rep is not None:
            auc = rep.get("auc")
        rows.append([
            r.name, METHOD_LABEL.get(r.method, r.method), _fmt(c.get("rank")), _fmt(c.get("alpha")),
            _fmt(c.get("noise_multiplier")), _fmt(c.get("seed")), _fmt(c.get("epochs")), r.status,
            _fmt(r.attempts), _fmt(r.wall_time_s), _fmt(r.last("sensitive_loss_token")),
            _fmt(r.last("utility_loss")), _fmt(r.last("memorization_gap_token")), _fmt(r.last("exposure.value")),
            _fmt(auc),
            _fmt(eps) if r.status == "ok" else "—", (r.reason or "")[:300],
        ])
    return head, rows


def _eps_pivot(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """ε table: one row per projection, one column per rank (no projection: the same for every rank)."""
    ranks = sorted({x["rank"] for x in rows if x["projection"] != "none"})
    head = ["ε at rank r →"] + [str(r) for r in ranks]
    table = []
    for proj in ("none", "fresh", "fixed"):
        got = {x["rank"]: x["epsilon"] for x in rows if x["projection"] == proj}
        if not got:
            continue
        if proj == "none":
            table.append(["no projection (any r)"] + [_fmt(next(iter(got.values())))] * len(ranks))
        else:
            table.append([f"projection = {proj}"] + [_fmt(got.get(r)) for r in ranks])
    return head, table


def _html_table(head, rows) -> str:
    h = "".join(f"<th>{html.escape(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _md_table(head, rows) -> str:
    def esc(s):
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(x) for x in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(esc(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1320px;margin:24px auto;padding:0 16px;
color:#222;line-height:1.45}
h1{font-size:24px;margin-bottom:4px} h2{font-size:19px;margin-top:34px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555;font-size:13px} .caption{color:#444;font-size:13.5px;max-width:1100px}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:6px 10px;font-size:13px;margin:8px 0}
.banner{background:#fde2e2;border:2px solid #c00;padding:10px;font-weight:bold}
img{max-width:100%;border:1px solid #eee}
table{border-collapse:collapse;font-size:12.5px;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top} th{background:#f3f3f3}
td.holds{color:#1a7f37;font-weight:bold} td.fails{color:#c00;font-weight:bold} td.nm{color:#888}
code{background:#f5f5f5;padding:1px 3px}
"""


def write_report(sweep_dir: str | os.PathLike, *, out: str | os.PathLike | None = None,
                 title: str | None = None) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` (+ ``report_figures/*.png``); returns (html, md) paths."""
    sweep, runs = load_results(sweep_dir)
    out_dir = Path(out) if out is not None else Path(sweep_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = sweep.get("config", {})
    attack = (cfg.get("report") or {}).get("attack", "loss")
    ranks = (cfg.get("report") or {}).get("projection_ranks") or [1, 2, 4, 8, 16, 32, 64, 128]
    accountant = (cfg.get("report") or {}).get("accountant", "rdp")
    grid_ranks = (cfg.get("grid") or {}).get("ranks") or []
    name = sweep.get("name") or Path(sweep_dir).name
    title = title or f"lowrankdp replication report — {name}"
    labels = _labels(runs)
    figs: list[_Fig] = []
    figs.append(fig_privacy_utility(runs, labels))
    figs.append(fig_exposure(runs, labels))
    cost_fig, ratios = fig_costs(runs, labels)
    figs.append(cost_fig)
    figs.append(fig_roc(runs, labels, attack))
    rows, notes, settings = epsilon_vs_rank(runs, ranks, accountant)
    figs.append(fig_eps_rank(rows, notes, settings, grid_ranks))
    checks = expected_outcomes(runs, ratios)
    head, table = _run_table(runs, attack)
    prov = sweep.get("provenance", {})
    n_ok = sum(r.status == "ok" for r in runs)
    n_failed = sum(r.status == "failed" for r in runs)
    other = len(runs) - n_ok - n_failed
    synthetic = any(r.synthetic for r in runs)
    timings = sweep.get("timings", {})

    fig_dir = out_dir / "report_figures"
    fig_dir.mkdir(exist_ok=True)
    for f in figs:
        if f.png:
            (fig_dir / f"{f.key}.png").write_bytes(f.png)

    meta_line = (f"{len(runs)} runs: {n_ok} ok, {n_failed} failed" + (f", {other} not finished" if other else "")
                 + f" · config {html.escape(str(sweep.get('source') or '?'))}"
                 + f" · git {str(prov.get('git_commit') or '?')[:10]}{' (dirty)' if prov.get('git_dirty') else ''}"
                 + f" · {html.escape(str(prov.get('device', '?')))} · {prov.get('date', '?')}")
    if isinstance(timings.get("sweep_s"), (int, float)):
        meta_line += f" · sweep wall time {timings['sweep_s']:.0f} s"

    # ---- HTML
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p class='meta'>{meta_line}</p>"]
    if synthetic:
        parts.append("<p class='banner'>These results come from the synthetic test run function "
                     "(lowrankdp.sweep._testing): they exercise the report and are not measurements.</p>")
    if cfg.get("description"):
        parts.append(f"<p>{html.escape(cfg['description'])}</p>")
    parts.append("<p class='caption'>Every number and curve below is read from the stored run directories "
                 "(metrics.jsonl per epoch, summary.json); the ε-implied ROC and ε-vs-rank curves are "
                 "computed by the accountant from stored settings. Nothing was retrained to draw this page.</p>")
    for i, f in enumerate(figs, 1):
        parts.append(f"<h2>{i}. {html.escape(f.title)}</h2>")
        if f.png:
            b64 = base64.b64encode(f.png).decode()
            parts.append(f"<img alt='{html.escape(f.title)}' src='data:image/png;base64,{b64}'>")
        for n in f.notes:
            parts.append(f"<p class='note'>{html.escape(n)}</p>")
        parts.append(f"<p class='caption'>{html.escape(f.caption)}</p>")
        if f.key == "eps_rank" and rows:
            parts.append(_html_table(*_eps_pivot(rows)))
    k = len(figs) + 1
    parts.append(f"<h2>{k}. Expected outcomes (docs/theory.md §8.6) on these results</h2>")
    crow = "".join(
        f"<tr><td>{html.escape(c['claim'])}</td><td class='"
        f"{'holds' if c['verdict'] == 'holds' else 'fails' if c['verdict'] == 'does not hold' else 'nm'}'>"
        f"{html.escape(c['verdict'])}</td><td>{html.escape(c['detail'])}</td></tr>" for c in checks)
    parts.append(f"<table><thead><tr><th>claim</th><th>verdict</th><th>numbers</th></tr></thead><tbody>{crow}"
                 "</tbody></table>")
    parts.append(f"<h2>{k + 1}. Every run</h2>")
    parts.append(_html_table(head, table))
    parts.append(f"<h2>{k + 2}. Provenance</h2><pre>{html.escape(json.dumps(prov, indent=1, default=str))}</pre>")
    parts.append("</body></html>")
    html_path = out_dir / "report.html"
    html_path.write_text("\n".join(parts), encoding="utf-8")

    # ---- Markdown
    md = [f"# {title}", "", meta_line.replace("&#x27;", "'"), ""]
    if synthetic:
        md += ["> **Synthetic test results (lowrankdp.sweep._testing), not measurements.**", ""]
    for i, f in enumerate(figs, 1):
        md += [f"## {i}. {f.title}", ""]
        if f.png:
            md += [f"![{f.title}](report_figures/{f.key}.png)", ""]
        md += [f"> {n}" for n in f.notes] + ([""] if f.notes else [])
        md += [f.caption, ""]
        if f.key == "eps_rank" and rows:
            md += [_md_table(*_eps_pivot(rows)), ""]
    md += [f"## {k}. Expected outcomes (docs/theory.md §8.6) on these results", "",
           _md_table(["claim", "verdict", "numbers"], [[c["claim"], c["verdict"], c["detail"]] for c in checks]), "",
           f"## {k + 1}. Every run", "", _md_table(head, table), ""]
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(md), encoding="utf-8")
    return html_path, md_path
