"""Attack metrics shared by every membership attack in lowrankdp.

IMPORTANT: scores follow one convention everywhere — a **higher score means "more likely a
member"**. ``scores_in`` are the scores of members (outputs produced by the neighbour that
contains the target record), ``scores_out`` those of non-members.

- ROC, AUC (Mann–Whitney, ties count one half), TPR at a fixed FPR.
- Intervals that mean what they say at small sizes: the AUC interval is the Hanley–McNeil score interval
  (Newcombe, "Confidence intervals for an effect size measure based on the Mann–Whitney statistic. Part 2",
  Stat. Med. 25:559, 2006, method 5), which stays non-degenerate under perfect separation; TPR at FPR α is
  reported only when there are at least ``10/α`` non-members (``None`` with a reason otherwise), with a
  distribution-free interval: order statistics of the non-member scores bracket the threshold whose true FPR
  is α (binomial quantiles) and Clopper–Pearson bounds the members' rate at each (Bonferroni over the four
  pieces). Coverage of both is measured by simulation in docs/results/metrics_coverage.md.
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
    "auc_interval",
    "tpr_at_fpr_interval",
    "tpr_reportable",
    "MIN_NONMEMBER_FACTOR",
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


MIN_NONMEMBER_FACTOR = 10.0  # TPR at FPR α needs n_out ≥ 10/α non-members to be reported


def tpr_reportable(n_out: int, fpr: float) -> str | None:
    """``None`` when TPR at ``fpr`` can be reported with ``n_out`` non-members, else the reason it cannot."""
    need = math.ceil(MIN_NONMEMBER_FACTOR / fpr - 1e-9) if fpr > 0 else math.inf
    if n_out >= need:
        return None
    return (f"not reported: TPR at FPR {fpr:g} needs at least {MIN_NONMEMBER_FACTOR:g}/FPR = {need} non-members, "
            f"got {n_out}")


def _hm_variance(theta: float, n_in: int, n_out: int) -> float:
    """Hanley–McNeil variance of the Mann–Whitney AUC at true value θ under the exponential model
    (Q1 = θ/(2−θ), Q2 = 2θ²/(1+θ)), with Newcombe's symmetrisation N* = (n_in + n_out)/2 (method 5)."""
    n_star = 0.5 * (n_in + n_out)
    return theta * (1.0 - theta) * (1.0 + (n_star - 1.0) * ((1.0 - theta) / (2.0 - theta) + theta / (1.0 + theta))) / (
        n_in * n_out)


def auc_interval(scores_in: Sequence[float], scores_out: Sequence[float], *,
                 confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided score interval for the AUC (Newcombe 2006, method 5): the θ with
    ``(Â − θ)² ≤ z²·V_HM(θ)``. Unlike a bootstrap it does not collapse to a point when members and
    non-members are perfectly separated (Â = 1 gives a lower end < 1). Approximate; coverage by simulation
    in docs/results/metrics_coverage.md."""
    from scipy import optimize

    s_in = _scores("scores_in", scores_in)
    s_out = _scores("scores_out", scores_out)
    confidence = check_probability("confidence", confidence)
    a = _auc(s_in, s_out)
    z2 = float(stats.norm.ppf(0.5 + confidence / 2.0)) ** 2
    n_in, n_out = s_in.size, s_out.size

    def g(theta: float) -> float:
        return (a - theta) ** 2 - z2 * _hm_variance(theta, n_in, n_out)

    # g(Â ± s) < 0 for small s > 0 (V > 0 inside (0, 1)), also at Â = 1 or 0 where V vanishes linearly.
    s = 1e-10
    lo = 0.0 if a - s <= 0.0 or g(0.0) <= 0.0 or g(a - s) >= 0.0 else float(
        optimize.brentq(g, 0.0, a - s, xtol=1e-13))
    hi = 1.0 if a + s >= 1.0 or g(1.0) <= 0.0 or g(a + s) >= 0.0 else float(
        optimize.brentq(g, a + s, 1.0, xtol=1e-13))
    return lo, hi


def tpr_at_fpr_interval(scores_in: Sequence[float], scores_out: Sequence[float], fpr: float, *,
                        confidence: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free two-sided interval for the true TPR at true FPR ``fpr`` (continuous scores), or
    ``None`` when fewer than ``10/fpr`` non-members make it meaningless (:func:`tpr_reportable`).

    With ``N ~ Bin(n_out, fpr)`` non-members above the true threshold t*, the ``j``-th largest non-member
    score is ≥ t* with probability ``P[N ≥ j]``; taking ``j`` with ``P[N < j] ≤ α/4`` gives a threshold whose
    FPR is ≤ fpr (so its TPR is a lower bound), and ``j'`` with ``P[N ≥ j'] ≤ α/4`` one whose FPR is ≥ fpr
    (an upper bound). Clopper–Pearson at ``α/4`` on the members at each threshold completes it; total
    error ≤ α = 1 − confidence."""
    s_in = _scores("scores_in", scores_in)
    s_out = _scores("scores_out", scores_out)
    target = check_real("fpr", fpr, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    confidence = check_probability("confidence", confidence)
    if tpr_reportable(s_out.size, target) is not None:
        return None
    a4 = (1.0 - confidence) / 4.0
    n = s_out.size
    desc = np.sort(s_out)[::-1]
    # lower: largest j with P[Bin(n, fpr) ≤ j − 1] ≤ α/4  (j = 0 → no threshold: TPR lower bound 0)
    j = int(stats.binom.ppf(a4, n, target))  # smallest k with cdf(k) ≥ α/4
    while j >= 1 and stats.binom.cdf(j - 1, n, target) > a4:
        j -= 1
    if j >= 1:
        k_lo = int(np.sum(s_in >= desc[j - 1]))
        lo = 0.0 if k_lo == 0 else float(stats.beta.ppf(a4, k_lo, s_in.size - k_lo + 1))
    else:
        lo = 0.0
    # upper: smallest j' with P[Bin(n, fpr) ≥ j'] ≤ α/4, i.e. cdf(j' − 1) ≥ 1 − α/4; threshold just above
    # the j'-th largest non-member score (flag iff score > desc[j'−1]); j' > n → upper bound 1.
    jp = int(stats.binom.ppf(1.0 - a4, n, target)) + 1
    if jp <= n:
        k_hi = int(np.sum(s_in > desc[jp - 1]))
        hi = 1.0 if k_hi == s_in.size else float(stats.beta.ppf(1.0 - a4, k_hi + 1, s_in.size - k_hi))
    else:
        hi = 1.0
    return lo, hi


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
    """Summary of one membership attack (scores: higher = member).

    ``tpr_at_fpr[f]`` and ``tpr_ci[f]`` are ``None`` when there are fewer than ``10/f`` non-members;
    ``tpr_reason[f]`` then says why. ``epsilon_lower_bound_max`` is what a perfect attack would certify at
    these sizes: a comparison "lower bound ≤ accountant ε" is only informative where it exceeds the ε."""

    auc: float
    auc_ci: tuple[float, float]
    tpr_at_fpr: dict[float, float | None]
    tpr_ci: dict[float, tuple[float, float] | None]
    epsilon_lower_bound: float
    n_in: int
    n_out: int
    confidence: float
    delta: float
    roc: tuple[np.ndarray, np.ndarray] = field(repr=False)
    tpr_reason: dict[float, str | None] = field(default_factory=dict)
    epsilon_lower_bound_max: float | None = None
    auc_ci_method: str = "hanley-mcneil score interval (Newcombe 2006, method 5)"
    tpr_ci_method: str = "order statistics + Clopper-Pearson (distribution-free)"

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
            "auc_ci_method": self.auc_ci_method,
            "tpr_at_fpr": {f"{k:g}": v for k, v in self.tpr_at_fpr.items()},
            "tpr_ci": {f"{k:g}": (None if v is None else list(v)) for k, v in self.tpr_ci.items()},
            "tpr_reason": {f"{k:g}": self.tpr_reason.get(k) for k in self.tpr_at_fpr},
            "tpr_ci_method": self.tpr_ci_method,
            "epsilon_lower_bound": self.epsilon_lower_bound,
            "epsilon_lower_bound_max": self.epsilon_lower_bound_max,
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
    """AUC with its score interval (:func:`auc_interval`), TPR at each FPR in ``fprs`` with its
    distribution-free interval (:func:`tpr_at_fpr_interval`; ``None`` with a reason below ``10/FPR``
    non-members), the ROC, and the certified ε lower bound at ``delta`` (:func:`epsilon_lower_bound`; pass
    the accountant's δ to compare with it) beside the most a perfect attack could certify at these sizes.

    ``n_bootstrap`` is accepted for compatibility and validated but no longer used: the percentile bootstrap
    collapsed to a point under perfect separation and under-covered TPR at low FPR."""
    s_in = _scores("scores_in", scores_in)
    s_out = _scores("scores_out", scores_out)
    check_int("n_bootstrap", n_bootstrap, minimum=0)
    confidence = check_probability("confidence", confidence)
    delta = check_real("delta", delta, lo=0.0, hi=1.0, hi_open=True)
    fprs = tuple(check_real("fprs", f, lo=0.0, hi=1.0, lo_open=True, hi_open=True) for f in fprs)
    fpr, tpr, _ = roc_curve(s_in, s_out)
    point_auc = _auc(s_in, s_out)
    reasons = {f: tpr_reportable(s_out.size, f) for f in fprs}
    point_tpr = {f: (_tpr_at(fpr, tpr, f) if reasons[f] is None else None) for f in fprs}
    tpr_ci = {f: tpr_at_fpr_interval(s_in, s_out, f, confidence=confidence) for f in fprs}
    auc_ci = auc_interval(s_in, s_out, confidence=confidence)

    if s_in.size >= 2 and s_out.size >= 2:
        eps_lb = epsilon_lower_bound(s_in, s_out, delta=delta, confidence=confidence, seed=seed)
        eps_max = epsilon_lower_bound(np.ones(s_in.size), np.zeros(s_out.size), delta=delta, confidence=confidence,
                                      seed=seed)
    else:
        eps_lb, eps_max = 0.0, None
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
        tpr_reason=reasons,
        epsilon_lower_bound_max=eps_max,
    )
