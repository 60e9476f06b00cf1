"""Attack metrics shared by every membership attack in lowrankdp.

IMPORTANT: scores follow one convention everywhere — a **higher score means "more likely a
member"**. ``scores_in`` are the scores of members (outputs produced by the neighbour that
contains the target record), ``scores_out`` those of non-members.

- ROC, AUC (Mann–Whitney, ties count one half), TPR at a fixed FPR.
- Bootstrap confidence intervals (members and non-members resampled separately).
- An empirical lower bound on ε: any (ε, δ)-DP mechanism satisfies, for every test,
  ``TPR ≤ e^ε·FPR + δ`` and ``TNR ≤ e^ε·FNR + δ`` (Kairouz, Oh, Viswanath 2015). The bound
  is certified with Clopper–Pearson intervals; the threshold is chosen on one half of the
  trials and evaluated on the other half, so the selection does not invalidate the interval
  (the approach of Jagielski et al. 2020 / Nasr et al. 2021 audits).
- ``epsilon_roc_curve``: the largest TPR that an (ε, δ)-DP mechanism allows at each FPR, to draw
  on the same axes as an attack's ROC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy import stats

from ._validate import check_int, check_probability, check_real

__all__ = [
    "auc",
    "roc_curve",
    "tpr_at_fpr",
    "clopper_pearson",
    "epsilon_lower_bound",
    "epsilon_roc_curve",
    "AttackReport",
    "attack_report",
]


def _scores(name: str, values: Any) -> np.ndarray:
    a = np.asarray(values, dtype=float).ravel()
    if a.size == 0:
        raise ValueError(f"{name} must contain at least one score, got an empty array")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite (no NaN/inf); got {int(np.sum(~np.isfinite(a)))} non-finite values")
    return a


def auc(scores_in: Sequence[float], scores_out: Sequence[float]) -> float:
    """Area under the ROC: P(score_in > score_out) + ½·P(equal) (Mann–Whitney U / (n_in·n_out))."""
    s_in = _scores("scores_in", scores_in)
    s_out = _scores("scores_out", scores_out)
    return _auc(s_in, s_out)


def _auc(s_in: np.ndarray, s_out: np.ndarray) -> float:
    ranks = stats.rankdata(np.concatenate([s_in, s_out]))  # average ranks handle ties as ½
    n_in, n_out = s_in.size, s_out.size
    u = ranks[:n_in].sum() - n_in * (n_in + 1) / 2.0
    return float(u / (n_in * n_out))


def _counts_by_threshold(s_in: np.ndarray, s_out: np.ndarray):
    """For the decision "member iff score ≥ t" at every distinct score t (descending), plus t=+inf:
    the number of members and of non-members flagged. Returns (thresholds, tp, fp)."""
    thr = np.unique(np.concatenate([s_in, s_out]))[::-1]
    s_in_sorted = np.sort(s_in)
    s_out_sorted = np.sort(s_out)
    tp = s_in.size - np.searchsorted(s_in_sorted, thr, side="left")
    fp = s_out.size - np.searchsorted(s_out_sorted, thr, side="left")
    thresholds = np.concatenate([[np.inf], thr])
    return thresholds, np.concatenate([[0], tp]), np.concatenate([[0], fp])


def roc_curve(scores_in: Sequence[float], scores_out: Sequence[float]):
    """ROC of the threshold tests "member iff score ≥ t".

    Returns ``(fpr, tpr, thresholds)``: fpr ascending from 0 to 1, the first threshold is +inf.
    """
    s_in = _scores("scores_in", scores_in)
    s_out = _scores("scores_out", scores_out)
    thresholds, tp, fp = _counts_by_threshold(s_in, s_out)
    return fp / s_out.size, tp / s_in.size, thresholds


def _tpr_at(fpr_arr: np.ndarray, tpr_arr: np.ndarray, target: float) -> float:
    ok = fpr_arr <= target + 1e-15
    return float(tpr_arr[ok].max()) if np.any(ok) else 0.0


def tpr_at_fpr(scores_in: Sequence[float], scores_out: Sequence[float], fpr: float) -> float:
    """Largest TPR among threshold tests whose empirical FPR is ≤ ``fpr`` (no interpolation).

    With n non-members, an FPR below 1/n can only be met by flagging no non-member at all;
    the estimate at such FPRs is then very noisy (see the bootstrap CI in ``attack_report``).
    """
    target = check_real("fpr", fpr, lo=0.0, hi=1.0)
    f, t, _ = roc_curve(scores_in, scores_out)
    return _tpr_at(f, t, target)


def clopper_pearson(k: int, n: int, *, alpha: float) -> tuple[float, float]:
    """Exact one-sided-at-each-end Clopper–Pearson bounds: P(p < lo) ≤ alpha and P(p > hi) ≤ alpha."""
    k = check_int("k", k, minimum=0)
    n = check_int("n", n, minimum=1)
    if k > n:
        raise ValueError(f"k must be in [0, n={n}], got {k}")
    alpha = check_probability("alpha", alpha)
    lo = 0.0 if k == 0 else float(stats.beta.ppf(alpha, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1.0 - alpha, k + 1, n - k))
    return lo, hi


def epsilon_lower_bound(
    scores_in: Sequence[float],
    scores_out: Sequence[float],
    *,
    delta: float = 0.0,
    confidence: float = 0.95,
    seed: int = 0,
) -> float:
    """A lower bound on ε that holds with probability ≥ ``confidence`` over the attack's trials.

    Method: split members and non-members at random (``seed``) into two halves. On the first
    half choose the threshold and direction (TPR ≤ e^ε·FPR + δ, or TNR ≤ e^ε·FNR + δ) with the
    largest ε computed from conservative (Clopper-Pearson) rates; on the second half compute
    the Clopper–Pearson bounds at level ``(1 − confidence)/2`` each and return
    ``max(0, ln((TPR_lo − δ)/FPR_hi))`` (or its mirror). Because the second half is untouched by the
    selection, the bound is valid. Returns 0.0 when the attack certifies nothing.
    """
    s_in = _scores("scores_in", scores_in)
    s_out = _scores("scores_out", scores_out)
    delta = check_real("delta", delta, lo=0.0, hi=1.0, hi_open=True)
    confidence = check_probability("confidence", confidence)
    if s_in.size < 2 or s_out.size < 2:
        raise ValueError(
            f"epsilon_lower_bound needs at least 2 members and 2 non-members, got {s_in.size} and {s_out.size}"
        )
    rng = np.random.default_rng(seed)
    p_in, p_out = rng.permutation(s_in.size), rng.permutation(s_out.size)
    a_in, b_in = s_in[p_in[: s_in.size // 2]], s_in[p_in[s_in.size // 2 :]]
    a_out, b_out = s_out[p_out[: s_out.size // 2]], s_out[p_out[s_out.size // 2 :]]
    alpha = (1.0 - confidence) / 2.0

    # Selection half: conservative rates so a lucky zero count does not win by default.
    thr, tp, fp = _counts_by_threshold(a_in, a_out)
    n_in_a, n_out_a = a_in.size, a_out.size
    tpr_lo = np.where(tp > 0, stats.beta.ppf(alpha, np.maximum(tp, 1), n_in_a - tp + 1), 0.0)
    fpr_hi = np.where(fp < n_out_a, stats.beta.ppf(1 - alpha, fp + 1, np.maximum(n_out_a - fp, 1)), 1.0)
    fnr_hi = 1.0 - tpr_lo
    tnr_lo = 1.0 - fpr_hi
    with np.errstate(divide="ignore", invalid="ignore"):
        e_pos = np.log(np.maximum(tpr_lo - delta, 0.0) / fpr_hi)
        e_neg = np.log(np.maximum(tnr_lo - delta, 0.0) / fnr_hi)
    e_pos = np.where(np.isfinite(e_pos), e_pos, -np.inf)
    e_neg = np.where(np.isfinite(e_neg), e_neg, -np.inf)
    i_pos, i_neg = int(np.argmax(e_pos)), int(np.argmax(e_neg))
    use_pos = e_pos[i_pos] >= e_neg[i_neg]
    t_star = thr[i_pos if use_pos else i_neg]
    if not math.isfinite(e_pos[i_pos] if use_pos else e_neg[i_neg]):
        return 0.0

    # Evaluation half.
    k_in = int(np.sum(b_in >= t_star))
    k_out = int(np.sum(b_out >= t_star))
    tpr_l, _ = clopper_pearson(k_in, b_in.size, alpha=alpha)
    _, fpr_h = clopper_pearson(k_out, b_out.size, alpha=alpha)
    if use_pos:
        num, den = tpr_l - delta, fpr_h
    else:
        num, den = (1.0 - fpr_h) - delta, 1.0 - tpr_l
    if num <= 0.0 or den <= 0.0:
        return 0.0
    return max(0.0, math.log(num / den))


def epsilon_roc_curve(epsilon: float, delta: float, fpr: Sequence[float] | np.ndarray) -> np.ndarray:
    """Largest TPR that any test against an (ε, δ)-DP mechanism can reach at each FPR.

    ``min(1, e^ε·fpr + δ, 1 − e^{−ε}·(1 − δ − fpr))`` (Kairouz et al. 2015, Thm 2.1 region).
    ``epsilon = inf`` allows TPR 1 at every FPR.
    """
    eps = check_real("epsilon", epsilon, lo=0.0, allow_inf=True)
    delta = check_real("delta", delta, lo=0.0, hi=1.0)
    f = np.clip(np.asarray(fpr, dtype=float), 0.0, 1.0)
    if math.isinf(eps):
        return np.ones_like(f)
    a = np.exp(eps) * f + delta
    b = 1.0 - np.exp(-eps) * np.maximum(1.0 - delta - f, 0.0)
    return np.minimum(1.0, np.minimum(a, b))


@dataclass(frozen=True)
class AttackReport:
    """Summary of one membership attack (scores: higher = member)."""

    auc: float
    auc_ci: tuple[float, float]
    tpr_at_fpr: dict[float, float]
    tpr_ci: dict[float, tuple[float, float]]
    epsilon_lower_bound: float
    n_in: int
    n_out: int
    confidence: float
    delta: float
    roc: tuple[np.ndarray, np.ndarray] = field(repr=False)

    def to_dict(self, *, max_roc_points: int = 200) -> dict[str, Any]:
        """JSON-able dict; the ROC is thinned to at most ``max_roc_points`` points (log-spaced in FPR,
        so the low-FPR region that matters for privacy is kept)."""
        fpr, tpr = self.roc
        if fpr.size > max_roc_points:
            grid = np.unique(np.concatenate([[0.0], np.logspace(-6, 0, max_roc_points - 1)]))
            idx = np.unique(np.clip(np.searchsorted(fpr, grid, side="right") - 1, 0, fpr.size - 1))
            fpr, tpr = fpr[idx], tpr[idx]
        return {
            "auc": self.auc,
            "auc_ci": list(self.auc_ci),
            "tpr_at_fpr": {f"{k:g}": v for k, v in self.tpr_at_fpr.items()},
            "tpr_ci": {f"{k:g}": list(v) for k, v in self.tpr_ci.items()},
            "epsilon_lower_bound": self.epsilon_lower_bound,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "confidence": self.confidence,
            "delta": self.delta,
            "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
        }


def attack_report(
    scores_in: Sequence[float],
    scores_out: Sequence[float],
    *,
    fprs: Sequence[float] = (0.001, 0.01),
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    delta: float = 0.0,
    seed: int = 0,
) -> AttackReport:
    """AUC, TPR at each FPR in ``fprs`` with percentile-bootstrap CIs, the ROC, and the certified
    ε lower bound (``epsilon_lower_bound``). ``n_bootstrap=0`` skips the bootstrap (CIs are NaN)."""
    s_in = _scores("scores_in", scores_in)
    s_out = _scores("scores_out", scores_out)
    n_bootstrap = check_int("n_bootstrap", n_bootstrap, minimum=0)
    confidence = check_probability("confidence", confidence)
    fprs = tuple(check_real("fprs", f, lo=0.0, hi=1.0) for f in fprs)
    fpr, tpr, _ = roc_curve(s_in, s_out)
    point_auc = _auc(s_in, s_out)
    point_tpr = {f: _tpr_at(fpr, tpr, f) for f in fprs}

    lo_q, hi_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        aucs = np.empty(n_bootstrap)
        tprs = {f: np.empty(n_bootstrap) for f in fprs}
        for i in range(n_bootstrap):
            b_in = s_in[rng.integers(0, s_in.size, s_in.size)]
            b_out = s_out[rng.integers(0, s_out.size, s_out.size)]
            aucs[i] = _auc(b_in, b_out)
            _, tp, fp = _counts_by_threshold(b_in, b_out)
            bf, bt = fp / b_out.size, tp / b_in.size
            for f in fprs:
                tprs[f][i] = _tpr_at(bf, bt, f)
        auc_ci = (float(np.quantile(aucs, lo_q)), float(np.quantile(aucs, hi_q)))
        tpr_ci = {f: (float(np.quantile(tprs[f], lo_q)), float(np.quantile(tprs[f], hi_q))) for f in fprs}
    else:
        auc_ci = (math.nan, math.nan)
        tpr_ci = {f: (math.nan, math.nan) for f in fprs}

    eps_lb = (
        epsilon_lower_bound(s_in, s_out, delta=delta, confidence=confidence, seed=seed)
        if s_in.size >= 2 and s_out.size >= 2
        else 0.0
    )
    return AttackReport(
        auc=point_auc,
        auc_ci=auc_ci,
        tpr_at_fpr=point_tpr,
        tpr_ci=tpr_ci,
        epsilon_lower_bound=eps_lb,
        n_in=int(s_in.size),
        n_out=int(s_out.size),
        confidence=confidence,
        delta=delta,
        roc=(fpr, tpr),
    )
