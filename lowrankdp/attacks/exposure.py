"""Canary exposure [CTW+19] (Carlini et al., *The Secret Sharer*, USENIX Security 2019, §4) — core.

A canary ``s[r]`` (e.g. "My ID is 281265.") with a secret ``r`` drawn from a candidate space ``R`` is
inserted into the training data. Its **exposure** is ([CTW+19] Def. 4, with log-perplexity replaced by
its equivalent, the log-likelihood of the secret given the shared prefix)::

    exposure = log₂|R| − log₂ rank(r),    rank(r) = position of r among all candidates by likelihood

so ``0 ≤ exposure ≤ log₂|R|``; the maximum means the model ranks the inserted secret first, and a model
that never saw it gives, averaged over the random secret, ``log₂|R| − E[log₂ U] ≈ 1/ln 2 ≈ 1.44`` bits
with ``U`` uniform on ``{1, …, |R|}`` (see :func:`random_exposure_moments`; docs/theory.md §8.6 expects "≈1 bit").

IMPORTANT — ties are counted against the canary (conservative: exposure is never overstated).
``rank = #{c ∈ R : ℓ(c) ≥ ℓ(r)}``, so the canary itself counts once and every other candidate whose
log-likelihood is equal (within ``tie_atol``) is ranked ahead of it. A model that assigns the same score
to everything therefore gets exposure 0, not log₂|R|. The output also gives ``rank_if_ties_won`` (ties
broken in the canary's favour) so the size of the tie effect is visible.

Two cases:

- ``"exact"``: every candidate's log-likelihood is given (``len(candidate_logprobs) == space_size``);
  the rank is counted. ``value_kind = "exact"``.
- a uniform random sample of candidates (``method="skewnorm"`` / ``"normal"``, the law of the estimate
  below, kept as ``method`` for compatibility): ``value`` is a **distribution-free lower bound** on the exact exposure
  (``value_kind = "lower_bound"``, holds with probability ≥ ``confidence`` over the sample): with k of the
  n sampled candidates at least as likely as the canary, the Clopper–Pearson upper bound p⁺ on that
  fraction gives ``rank ≤ 1 + (|R| − 1)·p⁺``. Beside it, labelled as such, ``estimate`` is the fitted
  extrapolation of [CTW+19] §4.3: a skew-normal (or normal) law fitted to the sample, ``rank ≈ 1 +
  (|R| − 1)·(1 − F(ℓ(r)))``. The estimate can err either way beyond the sampled range — on the smoke models
  it understated the exact exposure by 2–4 bits (on the smoke models: FFT 15.64 vs exact 19.93) — so it is never
  returned alone. ``interval`` is the two-sided distribution-free interval.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy import special, stats

from .._validate import check_choice, check_int, check_probability, check_real

__all__ = [
    "METHODS",
    "ExposureResult",
    "exposure",
    "exposure_from_rank",
    "random_exposure_moments",
]

#: Accepted ``method`` values; ``"auto"`` means exact when every candidate is scored, else skew-normal.
METHODS: tuple[str, ...] = ("auto", "exact", "skewnorm", "normal")


@dataclass(frozen=True)
class ExposureResult:
    """Exposure of one canary. ``value_kind`` says what ``value`` is: ``"exact"`` (every candidate ranked) or
    ``"lower_bound"`` (sampled candidates; ``rank`` is then the matching upper bound on the rank, and
    ``estimate`` the fitted extrapolation beside it)."""

    value: float
    rank: float
    method: str
    space_size: int
    n_scored: int
    max_value: float
    rank_if_ties_won: float | None = None
    interval: tuple[float, float] | None = None
    confidence: float | None = None
    fit_params: dict[str, float] = field(default_factory=dict)
    value_kind: str = "exact"
    estimate: float | None = None
    estimate_rank: float | None = None
    estimate_method: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict with keys value, rank, method, space_size, n_scored, max_value, and — where
        defined — rank_if_ties_won (exact), interval/confidence/fit_params (fitted)."""
        d: dict[str, Any] = {
            "value": self.value,
            "rank": self.rank,
            "method": self.method,
            "space_size": self.space_size,
            "n_scored": self.n_scored,
            "max_value": self.max_value,
        }
        if self.rank_if_ties_won is not None:
            d["rank_if_ties_won"] = self.rank_if_ties_won
        d["value_kind"] = self.value_kind
        if self.interval is not None:
            d["interval"] = list(self.interval)
            d["confidence"] = self.confidence
            d["fit_params"] = dict(self.fit_params)
            d["estimate"] = self.estimate
            d["estimate_rank"] = self.estimate_rank
            d["estimate_method"] = self.estimate_method
            d["estimate_note"] = ("fitted extrapolation ([CTW+19] §4.3), not a bound: can err either way; "
                                  "'value' is the distribution-free lower bound")
        return d


def exposure_from_rank(rank: float, space_size: int) -> float:
    """``log₂|R| − log₂ rank`` for ``1 ≤ rank ≤ |R|`` ([CTW+19] Def. 4)."""
    space_size = check_int("space_size", space_size, minimum=1)
    rank = check_real("rank", rank, lo=1.0, hi=float(space_size))
    return math.log2(space_size) - math.log2(rank)


def random_exposure_moments(space_size: int) -> tuple[float, float]:
    """Mean and standard deviation of the exposure of a canary whose rank is uniform on ``{1..|R|}``
    (a model independent of the secret, no ties). Exact sums up to 10⁷ candidates, else the continuous
    limit (exposure → Exp(rate ln 2): mean = sd = 1/ln 2 ≈ 1.4427 bits)."""
    n = check_int("space_size", space_size, minimum=1)
    if n <= 10_000_000:
        lg = np.log2(np.arange(1, n + 1, dtype=float))
        e = math.log2(n) - lg
        return float(e.mean()), float(e.std())
    # E[log2 U] = log2(n!)/n (Stirling through gammaln); sd from the continuous limit.
    mean = math.log2(n) - special.gammaln(n + 1) / (n * math.log(2))
    return float(mean), 1.0 / math.log(2)


def _logprobs(name: str, values: Any) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of log-likelihoods, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} must contain at least one candidate, got an empty array")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite (no NaN/inf), got {int(np.sum(~np.isfinite(a)))} non-finite values")
    return a


def exposure(
    *,
    canary_logprob: float,
    candidate_logprobs: Sequence[float] | np.ndarray,
    space_size: int,
    method: str = "auto",
    tie_atol: float = 0.0,
    confidence: float = 0.95,
) -> ExposureResult:
    """Exposure of a canary from candidate log-likelihoods (natural log; higher = more likely).

    Parameters
    ----------
    canary_logprob:
        log-likelihood of the inserted secret (given the shared prefix). For the exact method take it
        from the same computation as ``candidate_logprobs`` so that it equals its own entry.
    candidate_logprobs:
        ``"exact"``: the log-likelihood of *every* candidate in ``R`` (the canary included), length
        ``space_size``. Fitted methods: a uniform random sample of candidates (fewer than ``space_size``).
    space_size:
        ``|R|``.
    method:
        ``"auto"`` (exact if all ``space_size`` candidates are given, else ``"skewnorm"``), ``"exact"``,
        ``"skewnorm"`` or ``"normal"`` (the law of the fitted ``estimate``; ``value`` is then the
        distribution-free lower bound, ``value_kind = "lower_bound"``).
    tie_atol:
        candidates within ``tie_atol`` of the canary's log-likelihood count as ties (ranked ahead of it).
    confidence:
        level of the distribution-free lower bound (one-sided) and interval (two-sided) for a sample.
    """
    x = check_real("canary_logprob", canary_logprob)
    space_size = check_int("space_size", space_size, minimum=1)
    method = check_choice("method", method, METHODS)
    tie_atol = check_real("tie_atol", tie_atol, lo=0.0)
    confidence = check_probability("confidence", confidence)
    c = _logprobs("candidate_logprobs", candidate_logprobs)
    if c.size > space_size:
        raise ValueError(f"candidate_logprobs has {c.size} entries, more than space_size = {space_size}")
    if method == "auto":
        method = "exact" if c.size == space_size else "skewnorm"
    max_value = math.log2(space_size)

    if method == "exact":
        if c.size != space_size:
            raise ValueError(f"method 'exact' needs the log-likelihood of all space_size = {space_size} "
                             f"candidates, got {c.size}; use method 'skewnorm' for a sample")
        n_ge = int(np.count_nonzero(c >= x - tie_atol))  # canary + others at least as likely (ties lose)
        n_gt = int(np.count_nonzero(c > x + tie_atol))   # strictly more likely
        rank = max(n_ge, 1)
        return ExposureResult(
            value=max_value - math.log2(rank), rank=float(rank), method="exact", space_size=space_size,
            n_scored=int(c.size), max_value=max_value, rank_if_ties_won=float(n_gt + 1),
        )

    # Fitted estimate ([CTW+19] §4.3): tail of a law fitted to a uniform sample of candidates.
    if c.size < 10:
        raise ValueError(f"method {method!r} needs a sample of at least 10 candidates, got {c.size}")
    if float(np.ptp(c)) == 0.0:
        raise ValueError("candidate_logprobs are all equal; no distribution can be fitted "
                         "(every candidate ties, exposure is 0 under the conservative tie rule)")
    log_p, params, est_method = _fit_log_tail(c, x, method)
    rank_est = 1.0 + (space_size - 1) * math.exp(log_p)
    estimate = max_value - math.log2(rank_est)
    # Distribution-free bounds from the sampled fraction k/n of candidates at least as likely (ties lose).
    n = int(c.size)
    k = int(np.count_nonzero(c >= x - tie_atol))
    alpha = 1.0 - confidence
    p_lo = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
    p_hi = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    lo = max_value - math.log2(1.0 + (space_size - 1) * p_hi)
    hi = max_value - math.log2(1.0 + (space_size - 1) * p_lo)
    # one-sided lower bound at `confidence`: Clopper–Pearson upper end at level α on the fraction
    p_one = 1.0 if k == n else float(stats.beta.ppf(1 - alpha, k + 1, n - k))
    rank_hi = 1.0 + (space_size - 1) * p_one
    return ExposureResult(
        value=max_value - math.log2(rank_hi), rank=rank_hi, method=est_method, space_size=space_size, n_scored=n,
        max_value=max_value, interval=(lo, hi), confidence=confidence, fit_params=params,
        value_kind="lower_bound", estimate=estimate, estimate_rank=rank_est, estimate_method=est_method,
    )


def _fit_log_tail(sample: np.ndarray, x: float, method: str) -> tuple[float, dict[str, float], str]:
    """``(log P(X ≥ x), params, method used)`` under a law fitted (maximum likelihood) to ``sample``;
    skew-normal falls back to normal (with a warning, and the method reported as ``"normal"``) if its
    fit fails."""
    if method == "skewnorm":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                a, loc, scale = stats.skewnorm.fit(sample)
            if not (np.isfinite(a) and np.isfinite(loc) and np.isfinite(scale) and scale > 0):
                raise RuntimeError(f"degenerate fit (a={a}, loc={loc}, scale={scale})")
            lp = float(stats.skewnorm.logsf(x, a, loc, scale))
            if math.isnan(lp):
                raise RuntimeError("tail probability is NaN")
            return min(lp, 0.0), {"a": float(a), "loc": float(loc), "scale": float(scale)}, "skewnorm"
        except (RuntimeError, ValueError, FloatingPointError) as exc:
            warnings.warn(f"skew-normal fit failed ({exc}); using a normal fit", RuntimeWarning, stacklevel=3)
    loc, scale = float(sample.mean()), float(sample.std(ddof=1))
    return min(float(stats.norm.logsf(x, loc, scale)), 0.0), {"loc": loc, "scale": scale}, "normal"
