"""Laws of the retained fraction ``b = ‖P_A ΔV‖²/C²`` under a random rank-``r`` projection (docs/theory.md §1, §4.2, §4.4).

* one direction, one layer: ``b ~ Beta(r/2, (d−r)/2)`` exactly (proof: ``proofs_check/test_accounting_beta_law.py``);
* several layers with independent projections, one shared budget ``C``: ``b ≤ max_l β_l`` pointwise
  (``b = Σ_l w_l β_l`` with ``Σ w_l ≤ 1``), the maximum of independent Betas — stochastically larger than the
  Beta of the smallest ``d``; this is the law used wherever *stochastic* (not convex-order) domination is
  needed (fixed projection, PLD, high-probability baseline);
* ``k`` directions: ``b ≤ λ = λ_max(Uᵀ P_A U)``, the largest eigenvalue of a matrix-variate Beta
  (``λ ≡ 1`` once ``k + r > d``). Its law is replaced by a **provable** stochastic upper bound (kind
  ``"net"``, :func:`net_sf`): for an η-net ``N`` of the unit sphere of ``span U`` (``|N| ≤ (1 + 2/η)^k``,
  Vershynin arXiv:1011.3027v7 Lemma 5.2), ``λ ≤ max_{u∈N} uᵀ(Uᵀ P_A U)u / (1 − 2η)`` (same paper, Lemma 5.4),
  and each ``‖P_A u‖²`` is ``Beta(r/2, (d−r)/2)``, so by the union bound
  ``P(λ > t) ≤ |N|·P(Beta(r/2, (d−r)/2) > (1 − 2η)t)``. The nonzero eigenvalues are symmetric in ``(k, r)``
  (squared cosines of principal angles), so the same holds with the roles of ``k`` and ``r`` swapped (a net
  of the random ``r``-space: each net vector is uniform on the sphere); the bound is the minimum over both
  sides and over a fixed grid of η (proof and Monte Carlo check: ``proofs_check/test_accounting_net_bound.py``).
  The simulated law (:func:`simulate_lambda_max`) is kept only as an opt-in *estimate*.
* ``k`` directions, **fresh** projection (kind ``"union"``, docs/theory.md §4.8): at one step the record's
  directions are ``k`` fixed orthonormal vectors ``v_i`` (given the history), and ``b = Σ_i w_i ‖P_A v_i‖²`` with
  ``Σ w_i ≤ 1``, so ``b ≤ max_i ‖P_A v_i‖²``: ``P(b > t) ≤ min(1, k·P(Beta > t))`` by the union bound over
  the ``k`` vectors (also ``≤`` the net bound, since that maximum is ``≤ λ_max``); the smaller of the two is
  used, layer by layer (independent across layers). No supremum over the whole span is needed, so this is much
  tighter than ``λ_max`` for large ``k`` and holds for every ``k`` (``k + r > d`` included). It does NOT hold
  for a fixed projection, where the same ``A`` meets different directions of the span at different steps.

The fixed-projection RDP (``rdp.py``) needs ``E_λ[exp(F(λ))]`` for increasing convex ``F`` with ``F`` as large
as 10⁴–10⁶; it is computed in log space as an **upper** Riemann–Stieltjes sum over the interval probabilities
given here (``F`` at the right end of each interval), so it errs upward.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import optimize, special

from .._logspace import logsumexp

__all__ = [
    "SharedVariable",
    "shared_variable",
    "simulate_lambda_max",
    "net_sf",
]

_NET_ETAS = (0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45)


def net_sf(t, *, d: int, r: int, k: int) -> np.ndarray:
    """Upper bound on ``P(λ_max(Uᵀ P_A U) > t)`` for a fixed ``k``-dim ``U`` and a uniform rank-``r`` ``P_A`` in
    ``R^d`` (module docstring; ``1`` where nothing better is proven, ``0`` for ``t ≥ 1``)."""
    t = np.atleast_1d(np.asarray(t, dtype=float))
    if k + r > d:
        return np.where(t >= 1.0, 0.0, 1.0)
    best = np.ones_like(t)
    for m, other in ((k, r), (r, k)):  # net over the m-dim side; the other side's Beta(other/2, (d−other)/2)
        a, c = other / 2.0, (d - other) / 2.0
        for eta in _NET_ETAS:
            log_n = m * math.log1p(2.0 / eta)
            with np.errstate(divide="ignore"):
                val = np.exp(np.minimum(log_n + np.log(special.betaincc(a, c, np.clip(t * (1 - 2 * eta), 0, 1))), 0.0))
            best = np.minimum(best, val)
    return np.where(t >= 1.0, 0.0, best)

_GL_X, _GL_W = np.polynomial.legendre.leggauss(8)


def simulate_lambda_max(*, d: int, r: int, k: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` draws of ``λ_max(Uᵀ P_A U)`` for a fixed orthonormal ``U ∈ R^{d×k}`` and a uniformly random
    rank-``r`` projector ``P_A`` (docs/theory.md §4.4).

    The nonzero eigenvalues are the squared cosines of the principal angles between a fixed ``k``-space
    and a uniform ``r``-space, symmetric in ``(k, r)``; with ``m = min(k, r)``, ``n₁ = max(k, r)`` they are
    the eigenvalues of ``(W₁ + W₂)⁻¹ W₁``, ``W₁ ~ W_m(n₁, I)``, ``W₂ ~ W_m(d − n₁, I)`` independent
    (Bartlett construction). ``k + r > d`` gives ``λ ≡ 1``. ``k = 1`` reduces to ``Beta(r/2, (d−r)/2)``.
    """
    if k + r > d:
        return np.ones(n)
    rng = np.random.default_rng(seed)
    m, n1 = min(k, r), max(k, r)

    def bartlett(dof: int) -> np.ndarray:
        L = np.zeros((n, m, m))
        idx = np.arange(m)
        L[:, idx, idx] = np.sqrt(rng.chisquare(dof - idx, size=(n, m)))
        il = np.tril_indices(m, -1)
        L[:, il[0], il[1]] = rng.standard_normal((n, len(il[0])))
        return L @ np.swapaxes(L, 1, 2)

    w1 = bartlett(n1)
    w2 = bartlett(d - n1)
    chol = np.linalg.cholesky(w1 + w2)
    inv = np.linalg.inv(chol)
    mat = inv @ w1 @ np.swapaxes(inv, 1, 2)
    lam = np.linalg.eigvalsh(mat)[:, -1]
    return np.clip(lam, 0.0, 1.0)


@functools.lru_cache(maxsize=256)
def _bound_quantile(kind: str, r: int, ds: tuple, k: int, tail: float) -> float:
    var = SharedVariable(kind, r=r, ds=ds, k=k)
    if var.bound_sf_array(np.array([np.nextafter(1.0, 0.0)]))[0] > tail:
        return 1.0
    grid = np.linspace(0.0, 1.0, 257)  # coarse scan, then bisection inside the first bracket
    sf = var.bound_sf_array(grid)
    j = int(np.flatnonzero(sf <= tail)[0])
    lo, hi = float(grid[max(j - 1, 0)]), float(grid[j])
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if var.bound_sf_array(np.array([mid]))[0] <= tail:
            hi = mid
        else:
            lo = mid
    return hi


@functools.lru_cache(maxsize=64)
def bound_grid(kind: str, r: int, ds: tuple, k: int, hi: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges ``linspace(0, hi, n + 1)`` and the survival bound of ``kind`` (``"net"`` / ``"union"``) there
    (cached across calls)."""
    var = SharedVariable(kind, r=r, ds=ds, k=k)
    edges = np.linspace(0.0, hi, n + 1)
    sf = var.bound_sf_array(edges)
    sf[0] = 1.0
    if hi >= 1.0:
        sf[-1] = 0.0
    edges.setflags(write=False)
    sf.setflags(write=False)
    return edges, sf


@dataclass(frozen=True)
class SharedVariable:
    """Law of the retained fraction (an upper bound of ``b``), on ``[0, 1]``.

    ``kind``: ``"one"`` (``≡ 1``: no amplification), ``"beta"`` (max of independent
    ``Beta(r/2, (d_l−r)/2)``; one layer = one Beta), ``"net"`` / ``"union"`` (provable survival bounds for
    ``k`` directions: ``λ_max`` of the span / the maximum over ``k`` fixed vectors, module docstring), or
    ``"simulated"`` (``samples``).
    """

    kind: str
    a: float = 0.0
    cs: tuple = ()
    samples: np.ndarray | None = None
    r: int = 0
    ds: tuple = ()
    k: int = 1

    # --- provable bounds for k > 1 directions (kinds "net", "union"): several layers → independent maxima -----
    def bound_sf_array(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        surv = np.ones_like(t)
        for dl in self.ds:
            layer = net_sf(t, d=dl, r=self.r, k=self.k)
            if self.kind == "union":
                kk = min(self.k, dl)
                beta_sf = special.betaincc(self.r / 2.0, (dl - self.r) / 2.0, np.clip(t, 0.0, 1.0)) if self.r < dl \
                    else np.where(t >= 1.0, 0.0, 1.0)
                layer = np.minimum(layer, np.minimum(1.0, kk * beta_sf * (1 + 1e-12)))
            surv = surv * (1.0 - layer)
        return np.clip(1.0 - surv, 0.0, 1.0)

    def bound_upper_quantile(self, tail: float) -> float:
        """A ``t`` with the bound ``P(λ > t) ≤ tail`` (bisection, 60 steps, kept on the safe side); 1 if none."""
        return _bound_quantile(self.kind, self.r, self.ds, self.k, float(tail))

    # --- Beta / max-of-Betas law -------------------------------------------------------------------
    def log_pdf(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        with np.errstate(divide="ignore"):
            logt, log1mt = np.log(t), np.log1p(-t)
            terms = []
            log_cdfs = [np.log(special.betainc(self.a, c, t)) for c in self.cs]
            tot_log_cdf = np.sum(log_cdfs, axis=0)
            for c, lc in zip(self.cs, log_cdfs):
                lp = (self.a - 1) * logt + (c - 1) * log1mt - special.betaln(self.a, c)
                others = tot_log_cdf - lc if len(self.cs) > 1 else 0.0
                terms.append(lp + others)
        return logsumexp(np.stack(terms), axis=0) if len(terms) > 1 else terms[0]

    def cdf(self, t: float) -> float:
        return float(np.prod([special.betainc(self.a, c, t) for c in self.cs]))

    def sf(self, t: float) -> float:
        return float(-np.expm1(np.sum([np.log1p(-special.betaincc(self.a, c, t)) for c in self.cs])))

    def sf_array(self, t: np.ndarray) -> np.ndarray:
        """Vectorised survival function ``P(λ > t)``."""
        t = np.asarray(t, dtype=float)
        with np.errstate(divide="ignore"):
            return -np.expm1(np.sum([np.log1p(-special.betaincc(self.a, c, t)) for c in self.cs], axis=0))

    def log_interval_masses(self, edges: np.ndarray) -> np.ndarray:
        """``log P(edges[i] < λ ≤ edges[i+1])`` (Gauss–Legendre in log space on interior intervals;
        CDF differences on the two end intervals, where the density may be singular)."""
        lo, hi = edges[:-1], edges[1:]
        half = 0.5 * (hi - lo)
        mid = 0.5 * (hi + lo)
        nodes = mid[:, None] + half[:, None] * _GL_X[None, :]
        lp = self.log_pdf(nodes.ravel()).reshape(nodes.shape)
        out = logsumexp(lp + np.log(_GL_W)[None, :], axis=1) + np.log(half)
        first = self.cdf(edges[1])
        out[0] = math.log(first) if first > 0 else -math.inf
        if min(self.cs) < 1.0:  # density singular at 1: use the survival function
            last = self.sf(edges[-2]) - (self.sf(edges[-1]) if edges[-1] < 1.0 else 0.0)
            out[-1] = math.log(last) if last > 0 else -math.inf
        return out

    def upper_quantile(self, tail: float) -> float:
        """A ``t`` with ``P(λ > t) ≤ tail`` (for several layers by the union bound ``Σ_l P(β_l > t)``)."""
        if self.kind == "one":
            return 1.0
        if self.kind == "simulated":
            raise ValueError("the high-probability baseline needs span_dim = 1 (no closed-form quantile for k > 1)")
        if len(self.cs) == 1:
            return float(special.betainccinv(self.a, self.cs[0], tail))
        f = lambda t: sum(special.betaincc(self.a, c, t) for c in self.cs) - tail  # noqa: E731
        if f(0.0) <= 0:
            return 0.0
        return float(optimize.brentq(f, 0.0, 1.0, xtol=1e-15, rtol=1e-14))

    def grid(self, n: int = 2048) -> np.ndarray:
        """Interval edges on [0, 1]: uniform, plus a uniform refinement over the bulk of the law."""
        base = np.linspace(0.0, 1.0, n + 1)
        hi = min(1.0, max(self.upper_quantile(1e-12) if self.kind == "beta" else 1.0, 1e-6))
        bulk = np.linspace(0.0, hi, n + 1)
        return np.unique(np.concatenate([base, bulk]))


def shared_variable(*, d, r: int, span_dim: int = 1, unprojected: bool = False,
                    n_samples: int = 20000, seed: int = 0, law: str = "bound", per_step: bool = False) -> SharedVariable:
    """The law of the shared retained fraction for dimensions ``d`` (int or tuple), rank ``r``.

    ``span_dim > 1``: ``law="bound"`` (default) gives the provable net bound (kind ``"net"``);
    ``law="simulated"`` the Monte Carlo law of ``λ_max`` (an estimate, not a bound). ``per_step=True`` (a fresh
    projection, one step): the union bound over the ``k`` directions, kind ``"union"`` (module docstring).
    """
    ds = (d,) if isinstance(d, int) else tuple(d)
    if per_step and span_dim > 1 and not unprojected and all(r < dl for dl in ds):
        return SharedVariable("union", r=r, ds=ds, k=span_dim)
    if unprojected or any(span_dim + r > dl for dl in ds):
        return SharedVariable("one")
    if span_dim == 1:
        return SharedVariable("beta", a=r / 2.0, cs=tuple((dl - r) / 2.0 for dl in ds))
    if law == "bound":
        return SharedVariable("net", r=r, ds=ds, k=span_dim)
    draws = np.max(
        np.stack([simulate_lambda_max(d=dl, r=r, k=span_dim, n=n_samples, seed=seed + i) for i, dl in enumerate(ds)]),
        axis=0,
    )
    return SharedVariable("simulated", samples=draws)
