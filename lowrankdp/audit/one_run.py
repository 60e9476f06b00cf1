"""One-run privacy audits: a certified lower bound on ε from m canaries in a single training run.

IMPORTANT: the canary game. Each of ``m`` canaries is included in the training set independently with
probability ½ (from a logged seed). After training, the auditor scores every canary (higher score = more
likely a member, as everywhere in lowrankdp), guesses "in" for its ``k₊`` highest scores and "out" for its
``k₋`` lowest — ``k₊`` and ``k₋`` fixed before looking at the scores — and abstains on the rest. From the
``r = k₊ + k₋`` guesses, ``v`` are correct. If the training run is (ε, δ)-DP with respect to adding or
removing one canary, a large ``v`` is unlikely; the audited ε is the largest ε that the observed ``v``
rejects at level ``β = 1 − confidence``. It is a lower bound on the true ε with probability ≥ confidence
over the canary draw and the training randomness (one run, not one per canary).

Two analyses of the same guesses, both at the accountant's δ:

- ``method="snj"`` — Steinke, Nasr & Jagielski, "Privacy auditing with one (1) training run",
  arXiv:2305.08846v1, main theorem for (ε, δ)-DP: with ``q = e^ε/(1+e^ε)``,
  ``p(ε) = P[Bin(r, q) ≥ v] + 2mδ · max_{1≤i≤v} P[v > Bin(r, q) ≥ v − i]/i`` bounds
  ``P[≥ v correct]``; ε_lb is the largest ε with ``p(ε) ≤ β``.
- ``method="fdp"`` — Mahloujifar, Melis & Chaudhuri, "Auditing f-differential privacy in one run",
  ICML 2025 / arXiv:2410.22235v1, §4 (guessing games with abstention and their numerical bound). For a
  trade-off curve ``f`` and a random canary ``I``, flipping ``I``'s bit turns the event
  "I guessed right and ≥ i+1 correct" into "I guessed wrong and ≥ i correct", so with
  ``r_i = Σ_{j≥i} P[N=j]·j/m`` and ``h_i = Σ_{j≥i} P[N=j]·(r−j)/m``:  ``h_i ≥ f(1 − r_{i+1})``.
  The smallest total probability mass consistent with these constraints and ``P[N ≥ v] = β`` is built
  from ``i = v`` downwards; if it exceeds 1 (``r_0 + h_0 > r/m``) no f-DP mechanism produces ``≥ v``
  correct guesses with probability β, and the curve is rejected. Curves:

  * ``curve="gaussian"`` (default, the paper's choice): μ-GDP, ``f(1 − x) = Φ(Φ⁻¹(x) − μ)``; the largest
    rejected μ is reported as the ε of μ-GDP at δ (``gdp_epsilon``). Valid as a lower bound on ε *when the
    mechanism's privacy profile is Gaussian-shaped* (DP-SGD's, to a good approximation); say so.
  * ``curve="epsilon_delta"``: the (ε, δ) curve ``f(α) = max(0, 1 − δ − e^ε α, e^{−ε}(1 − δ − α))``;
    no shape assumption; within a few % of ``"snj"`` on the same guesses (tighter for a perfect attack,
    slightly looser at small ε — docs/results/audit_idealised.md).

Approximations and the way they err: the search over ε (or μ) is a bisection that keeps the invariant
"lower end rejected", so the returned value is rejected (never above the exact root by more than 1e-4 in
ε); Φ underflow in the recursion only lowers ``h`` (fewer rejections), i.e. errs low.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import special, stats

from .._validate import check_choice, check_int, check_probability, check_real

__all__ = [
    "METHODS",
    "CURVES",
    "snj_p_value",
    "fdp_rejects",
    "gdp_delta",
    "gdp_epsilon",
    "one_run_epsilon",
    "one_run_mu",
    "max_certifiable_epsilon",
    "guesses_from_scores",
    "AuditResult",
    "audit_scores",
]

METHODS = ("snj", "fdp")
CURVES = ("gaussian", "epsilon_delta")
_EPS_MAX = 60.0  # beyond this every p-value is 1 to double precision at any m we can run
_MU_MAX = 60.0
_TOL = 1e-4


def _check_counts(canaries: Any, guesses: Any, correct: Any) -> tuple[int, int, int]:
    m = check_int("canaries", canaries, minimum=1)
    r = check_int("guesses", guesses, minimum=0, maximum=m)
    v = check_int("correct", correct, minimum=0, maximum=r)
    return m, r, v


def snj_p_value(*, canaries: int, guesses: int, correct: int, epsilon: float, delta: float) -> float:
    """Upper bound on ``P[≥ correct correct guesses]`` for an (ε, δ)-DP run (arXiv:2305.08846v1, main
    theorem; see the module docstring). Increasing in ε; capped at 1."""
    m, r, v = _check_counts(canaries, guesses, correct)
    eps = check_real("epsilon", epsilon, lo=0.0, allow_inf=True)
    delta = check_real("delta", delta, lo=0.0, hi=1.0)
    return _snj_p(m, r, v, eps, delta)


def _snj_p(m: int, r: int, v: int, eps: float, delta: float) -> float:
    if v == 0:
        return 1.0
    q = 1.0 if math.isinf(eps) else float(special.expit(eps))
    tail = float(stats.binom.sf(v - 1, r, q))  # P[Bin(r, q) ≥ v]
    if delta == 0.0:
        return min(1.0, tail)
    # P[v > Bin ≥ v − i] for i = 1..v: cumulative pmf from v−1 downwards.
    pmf = stats.binom.pmf(np.arange(v - 1, -1, -1), r, q)
    ratio = np.cumsum(pmf) / np.arange(1, v + 1)
    return min(1.0, tail + 2.0 * m * delta * float(ratio.max()))


def gdp_delta(*, mu: float, epsilon: float) -> float:
    """δ(ε) of μ-GDP: ``Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2)`` (Dong, Roth & Su, arXiv:1905.02383v3, Cor. 2.13)."""
    mu = check_real("mu", mu, lo=0.0)
    eps = check_real("epsilon", epsilon, lo=0.0)
    if mu == 0.0:
        return 0.0
    a = special.log_ndtr(-eps / mu + mu / 2)
    b = eps + special.log_ndtr(-eps / mu - mu / 2)
    if b >= a:
        return 0.0
    return float(math.exp(a) * -math.expm1(b - a))


def gdp_epsilon(*, mu: float, delta: float) -> float:
    """The smallest ε with μ-GDP ⇒ (ε, δ)-DP (bisection on :func:`gdp_delta`, which decreases in ε;
    the returned ε satisfies ``gdp_delta(ε) ≤ δ``, i.e. errs high by at most 1e-9 relative)."""
    mu = check_real("mu", mu, lo=0.0)
    delta = check_probability("delta", delta)
    if mu == 0.0 or gdp_delta(mu=mu, epsilon=0.0) <= delta:
        return 0.0
    lo, hi = 0.0, max(1.0, mu * mu)
    while gdp_delta(mu=mu, epsilon=hi) > delta:
        lo, hi = hi, 2 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if gdp_delta(mu=mu, epsilon=mid) > delta:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-9 * max(1.0, hi):
            break
    return hi


def _tradeoff_complement(curve: str, param: float, delta: float):
    """``x ↦ f(1 − x)``: the least probability, under the neighbour, of an event of probability x."""
    if curve == "gaussian":
        mu = param

        def g(x: float) -> float:
            if x <= 0.0:
                return 0.0
            if x >= 1.0:
                return 1.0
            return float(special.ndtr(special.ndtri(x) - mu))

        return g
    e = math.exp(param)

    def g_ed(x: float) -> float:
        return max(0.0, 1.0 - delta - e * (1.0 - x), (x - delta) / e)

    return g_ed


def _fdp_mass(m: int, r: int, v: int, beta: float, g) -> float:
    """Smallest total probability of the number-of-correct-guesses law that is consistent with
    ``h_i ≥ f(1 − r_{i+1})`` and ``P[N ≥ v] = beta`` (mass β put at N = v; see the module docstring)."""
    if v == 0:
        return 0.0
    rr = beta * v / m  # r_v
    hh = beta * (r - v) / m  # h_v
    limit = r / m  # total mass 1
    for i in range(v - 1, -1, -1):
        h_new = max(hh, g(rr))
        if i > 0:
            rr += i / (r - i) * (h_new - hh)
        hh = h_new
        if rr + hh > limit:  # both only grow as i decreases: already more than all the mass
            return (rr + hh) / limit
    return (rr + hh) / limit


def fdp_rejects(*, canaries: int, guesses: int, correct: int, confidence: float = 0.95,
                curve: str = "gaussian", param: float, delta: float = 0.0) -> bool:
    """Whether ``correct`` out of ``guesses`` rejects the trade-off curve (μ for ``"gaussian"``, ε for
    ``"epsilon_delta"`` at ``delta``) at level ``1 − confidence`` (arXiv:2410.22235v1 §4)."""
    m, r, v = _check_counts(canaries, guesses, correct)
    beta = 1.0 - check_probability("confidence", confidence)
    curve = check_choice("curve", curve, CURVES)
    param = check_real("param", param, lo=0.0)
    delta = check_real("delta", delta, lo=0.0, hi=1.0)
    if v == 0:
        return False
    return _fdp_mass(m, r, v, beta, _tradeoff_complement(curve, param, delta)) > 1.0


def _largest_rejected(rejects, hi_max: float) -> float:
    """Largest x in [0, hi_max] with ``rejects(x)`` (monotone: rejected set = [0, x*]); 0 if none."""
    if not rejects(0.0):
        return 0.0
    if rejects(hi_max):
        return hi_max
    lo, hi = 0.0, hi_max
    while hi - lo > _TOL:
        mid = 0.5 * (lo + hi)
        if rejects(mid):
            lo = mid
        else:
            hi = mid
    return lo


def one_run_epsilon(*, canaries: int, guesses: int, correct: int, delta: float, confidence: float = 0.95,
                    method: str = "snj", curve: str = "gaussian") -> float:
    """Certified lower bound on ε (at ``delta``) from one run: ``canaries`` = m, ``guesses`` = r,
    ``correct`` = v (module docstring). ``method="snj"`` or ``"fdp"`` (with ``curve``). Returns 0.0 when
    the guesses certify nothing; the result holds with probability ≥ ``confidence``."""
    m, r, v = _check_counts(canaries, guesses, correct)
    delta = check_real("delta", delta, lo=0.0, hi=1.0, hi_open=True)
    beta = 1.0 - check_probability("confidence", confidence)
    method = check_choice("method", method, METHODS)
    curve = check_choice("curve", curve, CURVES)
    if v == 0:
        return 0.0
    if method == "snj":
        return _largest_rejected(lambda e: _snj_p(m, r, v, e, delta) <= beta, _EPS_MAX)
    if curve == "epsilon_delta":
        return _largest_rejected(
            lambda e: _fdp_mass(m, r, v, beta, _tradeoff_complement("epsilon_delta", e, delta)) > 1.0, _EPS_MAX)
    if delta == 0.0:  # μ-GDP with μ > 0 is (ε, 0)-DP for no finite ε
        raise ValueError("delta must be in (0, 1) for method='fdp' with curve='gaussian', got 0.0")
    mu = _gdp_mu(m, r, v, beta)
    return gdp_epsilon(mu=mu, delta=delta) if mu > 0.0 else 0.0


def _gdp_mu(m: int, r: int, v: int, beta: float) -> float:
    return _largest_rejected(lambda u: _fdp_mass(m, r, v, beta, _tradeoff_complement("gaussian", u, 0.0)) > 1.0,
                             _MU_MAX)


def one_run_mu(*, canaries: int, guesses: int, correct: int, confidence: float = 0.95) -> float:
    """Certified lower bound on μ (largest μ-GDP curve rejected; arXiv:2410.22235v1 §4): a mechanism that
    is μ'-GDP with μ' < this value would produce so many correct guesses with probability < 1 − confidence."""
    m, r, v = _check_counts(canaries, guesses, correct)
    beta = 1.0 - check_probability("confidence", confidence)
    return 0.0 if v == 0 else _gdp_mu(m, r, v, beta)


def max_certifiable_epsilon(*, canaries: int, delta: float, confidence: float = 0.95, method: str = "snj",
                            curve: str = "gaussian") -> float:
    """The largest ε that a perfect attack (every canary guessed, all correct) can certify with m canaries:
    a claim "audited ε ≤ accountant ε" is testable only where this exceeds the accountant's ε."""
    m = check_int("canaries", canaries, minimum=1)
    return one_run_epsilon(canaries=m, guesses=m, correct=m, delta=delta, confidence=confidence, method=method,
                           curve=curve)


def guesses_from_scores(scores: Sequence[float], included: Sequence[bool], *, k_pos: int,
                        k_neg: int) -> tuple[int, int]:
    """Guess "in" for the ``k_pos`` highest scores and "out" for the ``k_neg`` lowest (ties broken by index,
    deterministically); return ``(guesses, correct)``. ``k_pos``/``k_neg`` must be fixed before the scores
    are seen, or the audit is invalid."""
    s = np.asarray(scores, dtype=float).ravel()
    b = np.asarray(included).ravel()
    if s.size == 0:
        raise ValueError("scores must contain at least one canary score, got an empty array")
    if b.shape != s.shape:
        raise ValueError(f"included must have one bit per score ({s.size}), got {b.size}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"scores must be finite; got {int(np.sum(~np.isfinite(s)))} non-finite values")
    if not np.all((b == 0) | (b == 1)):
        raise ValueError("included must contain only 0/1 (or booleans)")
    b = b.astype(bool)
    k_pos = check_int("k_pos", k_pos, minimum=0, maximum=s.size)
    k_neg = check_int("k_neg", k_neg, minimum=0, maximum=s.size - k_pos)
    order = np.argsort(-s, kind="stable")  # highest first
    top = order[:k_pos]
    bottom = order[s.size - k_neg:] if k_neg > 0 else order[:0]
    correct = int(b[top].sum()) + int((~b[bottom]).sum())
    return k_pos + k_neg, correct


@dataclass(frozen=True)
class AuditResult:
    """One one-run audit: counts and the audited ε by each analysis (all at ``delta``)."""

    canaries: int
    guesses: int
    correct: int
    k_pos: int
    k_neg: int
    delta: float
    confidence: float
    epsilon_snj: float
    epsilon_fdp: float
    epsilon_fdp_epsilon_delta: float
    max_epsilon_snj: float
    max_epsilon_fdp_epsilon_delta: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def judge(self, epsilon_accountant: float | None) -> dict[str, Any]:
        """The claim "audited ε ≤ accountant ε", judged only where a perfect attack could break it.

        The verdict uses one pre-chosen, assumption-free analysis — SNJ — so its error rate stays at
        1 − confidence (taking the larger of several bounds would not)."""
        if epsilon_accountant is None or math.isinf(epsilon_accountant):
            return {"verdict": "not testable", "reason": "no finite accountant ε"}
        if self.max_epsilon_snj <= epsilon_accountant:
            return {"verdict": "not testable",
                    "reason": (f"with {self.canaries} canaries a perfect attack certifies at most "
                               f"{self.max_epsilon_snj:.3g} (SNJ) ≤ accountant ε {epsilon_accountant:.3g}")}
        if self.epsilon_snj > epsilon_accountant:
            return {"verdict": "violated",
                    "reason": f"audited ε {self.epsilon_snj:.3g} (SNJ) > accountant ε {epsilon_accountant:.3g}"}
        return {"verdict": "consistent",
                "reason": f"audited ε {self.epsilon_snj:.3g} (SNJ) ≤ accountant ε {epsilon_accountant:.3g}"}


def audit_scores(scores: Sequence[float], included: Sequence[bool], *, k_pos: int, k_neg: int, delta: float,
                 confidence: float = 0.95) -> AuditResult:
    """Guesses from scores (:func:`guesses_from_scores`) and ε by SNJ, f-DP (Gaussian curve) and f-DP
    ((ε, δ) curve), with the largest ε a perfect attack could certify at this m."""
    guesses, correct = guesses_from_scores(scores, included, k_pos=k_pos, k_neg=k_neg)
    m = int(np.asarray(scores).size)
    delta = check_probability("delta", delta)
    kw = dict(canaries=m, guesses=guesses, correct=correct, delta=delta, confidence=confidence)
    return AuditResult(
        canaries=m, guesses=guesses, correct=correct, k_pos=int(k_pos), k_neg=int(k_neg), delta=delta,
        confidence=confidence,
        epsilon_snj=one_run_epsilon(**kw, method="snj"),
        epsilon_fdp=one_run_epsilon(**kw, method="fdp", curve="gaussian"),
        epsilon_fdp_epsilon_delta=one_run_epsilon(**kw, method="fdp", curve="epsilon_delta"),
        max_epsilon_snj=max_certifiable_epsilon(canaries=m, delta=delta, confidence=confidence, method="snj"),
        max_epsilon_fdp_epsilon_delta=max_certifiable_epsilon(canaries=m, delta=delta, confidence=confidence, method="fdp",
                                                curve="epsilon_delta"),
    )
