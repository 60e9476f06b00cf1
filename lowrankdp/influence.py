"""Influence of one example under a low-rank projection ([RPUE] Thm 1; docs/theory.md §1).

Source: ``[RPUE]`` Das et al., *Revisiting Privacy, Utility, and Efficiency Trade-offs when Fine-Tuning Large
Language Models*, arXiv:2502.13313 (v2), Theorem 1: a LoRA update is the full gradient projected onto a
rank-r subspace, so for any orthogonal projector ``P``, ``‖g P‖_F <= ‖g‖_F`` -- a *deterministic* shrinkage,
which by itself gives no ε (no noise). This module measures it.

IMPORTANT (conventions):

* Gradients are matrices ``g ∈ R^{m×d}`` (a layer's weight gradient ``G = ∇_W L`` with ``W ∈ R^{d_out×d_in}``
  has ``m = d_out``, ``d = d_in``) or vectors in ``R^d``; the projector acts on the right, on the input side,
  as in LoRA's first step ``ΔW ∝ G AᵀA`` (docs/theory.md §5). The *retained fraction* is ``‖g P‖_F² / ‖g‖_F²``.
* For a random ``A ∈ R^{r×d}`` with i.i.d. Gaussian entries and ``P_A`` the projector on its row space (a
  uniformly random r-dim subspace), and any unit ``u`` independent of ``A``:
  ``‖P_A u‖² ~ Beta(r/2, (d-r)/2)`` [derived, docs/theory.md §1], mean ``r/d``. For a rank-one gradient
  ``x gᵀ`` the retained fraction is exactly this variable (of the projected side). For a gradient of higher
  rank independent of ``A`` the mean is still ``r/d`` (``E[P_A] = (r/d) I``) but the law is only dominated
  in convex order by the Beta (docs/theory.md §4.2): a KS rejection then does not indicate a bug, a mean
  mismatch does.
* ``r = d``: ``P_A = I`` and the fraction is identically 1 (the Beta law degenerates to a point mass at 1).
* The law functions take the evaluation point first (positionally or by keyword: ``retained_fraction_sf(x,
  d=d, r=r)`` or ``retained_fraction_sf(d=d, r=r, x=x)``) and ``d``, ``r`` by keyword only; arrays broadcast.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from ._validate import check_int, check_real

__all__ = [
    "projector",
    "retained_fraction",
    "retained_fraction_mean",
    "retained_fraction_quantile",
    "retained_fraction_sf",
    "retained_fraction_cdf",
    "retained_fraction_samples",
    "lora_parameter_count",
    "RetainedFractionComparison",
    "compare_retained_fractions",
]


def _check_dims(d: Any, r: Any) -> tuple[int, int]:
    d = check_int("d", d, minimum=1)
    r = check_int("r", r, minimum=1)
    if r > d:
        raise ValueError(f"r must be an integer in [1, d={d}], got {r}")
    return d, r


def projector(a: Any) -> np.ndarray:
    """Orthogonal projector ``P_A = Aᵀ(AAᵀ)⁻¹A`` onto the row space of ``A ∈ R^{r×d}`` (docs/theory.md §0).

    Computed from a thin QR of ``Aᵀ`` (``P = QQᵀ``) rather than the explicit inverse. ``A`` must have full
    row rank ``r <= d``.
    """
    a = np.asarray(a, dtype=float)
    if a.ndim != 2 or a.shape[0] > a.shape[1] or a.shape[0] < 1:
        raise ValueError(f"a must be a 2-D array of shape (r, d) with 1 <= r <= d, got shape {a.shape}")
    q, rfac = np.linalg.qr(a.T)
    diag = np.abs(np.diag(rfac))
    if diag.min() <= 1e-12 * max(diag.max(), 1e-300):
        raise ValueError(f"a must have full row rank {a.shape[0]}, got a numerically rank-deficient matrix")
    return q @ q.T


def retained_fraction(gradient: Any, projector: Any, *, atol: float = 1e-8) -> float:
    """Fraction ``‖g P‖_F² / ‖g‖_F²`` of a gradient's squared norm kept by an orthogonal projector ``P``.

    [RPUE] Thm 1: ``‖g P‖_F <= ‖g‖_F`` for any orthogonal projector, so the result lies in ``[0, 1]``
    (deterministically; it is checked, and a violation beyond rounding raises ``RuntimeError``).
    ``gradient``: shape ``(d,)`` or ``(m, d)``; ``projector``: ``(d, d)``, checked to be symmetric and
    idempotent within ``atol`` (relative to its scale) -- a non-orthogonal "projector" (e.g. ``AᵀA`` itself)
    is rejected with ``ValueError``, because for it the bound does not hold.
    """
    g = np.asarray(gradient, dtype=float)
    p = np.asarray(projector, dtype=float)
    if g.ndim == 1:
        g = g[None, :]
    if g.ndim != 2:
        raise ValueError(f"gradient must have shape (d,) or (m, d), got shape {np.shape(gradient)}")
    d = g.shape[1]
    if p.shape != (d, d):
        raise ValueError(f"projector must have shape ({d}, {d}) to match the gradient, got {p.shape}")
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(p))):
        raise ValueError("gradient and projector must be finite")
    if not np.allclose(p, p.T, atol=atol, rtol=0.0) or not np.allclose(p @ p, p, atol=atol * max(1.0, d), rtol=0.0):
        raise ValueError(f"projector must be an orthogonal projector (P = Pᵀ = P², within atol={atol:g})")
    total = float(np.sum(g * g))
    if total == 0.0:
        raise ValueError("gradient must be non-zero (the retained fraction of a zero gradient is undefined)")
    kept = float(np.sum((g @ p) ** 2))
    frac = kept / total
    if frac > 1.0 + 1e-6 + atol * d:
        raise RuntimeError(f"retained fraction {frac} exceeds 1: projector check failed to catch a non-projector")
    return min(frac, 1.0)


def retained_fraction_mean(*, d: int, r: int) -> float:
    """``E‖P_A u‖² = r/d`` for a random rank-r projection (docs/theory.md §1; mean of Beta(r/2, (d-r)/2))."""
    d, r = _check_dims(d, r)
    return r / d


def _beta(d: int, r: int):
    return stats.beta(0.5 * r, 0.5 * (d - r))  # docs/theory.md §1: ‖P_A u‖² ~ Beta(r/2, (d-r)/2)


def _as_out(x: np.ndarray, scalar: bool) -> np.ndarray | float:
    return float(x) if scalar else x


def retained_fraction_quantile(q: Any, *, d: int, r: int) -> np.ndarray | float:
    """Quantile function of ``‖P_A u‖² ~ Beta(r/2, (d-r)/2)`` at ``q ∈ [0, 1]`` (docs/theory.md §1); 1 when ``r = d``."""
    d, r = _check_dims(d, r)
    scalar = np.ndim(q) == 0
    qa = np.asarray(q, dtype=float)
    if np.any(~np.isfinite(qa)) or np.any((qa < 0) | (qa > 1)):
        raise ValueError(f"q must be in [0, 1], got {q!r}")
    if r == d:
        return _as_out(np.ones_like(qa), scalar)
    return _as_out(_beta(d, r).ppf(qa), scalar)


def _check_x(x: Any) -> tuple[np.ndarray, bool]:
    scalar = np.ndim(x) == 0
    xa = np.asarray(x, dtype=float)
    if np.any(np.isnan(xa)):
        raise ValueError(f"x must be real numbers (no NaN), got {x!r}")
    return xa, scalar


def retained_fraction_sf(x: Any, *, d: int, r: int) -> np.ndarray | float:
    """``P(‖P_A u‖² > x)`` under Beta(r/2, (d-r)/2) (docs/theory.md §1); for ``r = d``, ``1{x < 1}``."""
    d, r = _check_dims(d, r)
    xa, scalar = _check_x(x)
    if r == d:
        return _as_out((xa < 1.0).astype(float), scalar)
    return _as_out(_beta(d, r).sf(xa), scalar)


def retained_fraction_cdf(x: Any, *, d: int, r: int) -> np.ndarray | float:
    """``P(‖P_A u‖² <= x)`` under Beta(r/2, (d-r)/2) (docs/theory.md §1); for ``r = d``, ``1{x >= 1}``."""
    d, r = _check_dims(d, r)
    xa, scalar = _check_x(x)
    if r == d:
        return _as_out((xa >= 1.0).astype(float), scalar)
    return _as_out(_beta(d, r).cdf(xa), scalar)


def retained_fraction_samples(
    *, d: int, r: int, n: int, rng: np.random.Generator | int | None, direction: Any = None
) -> np.ndarray:
    """Simulate ``‖P_A u‖²`` for ``n`` independent Gaussian ``A ∈ R^{r×d}`` and a fixed unit ``u``.

    Computes the projection itself (no use of the Beta law), for checking it. ``direction`` defaults to
    ``e_1``. Cost ``O(n·r·d·r)``; keep ``d`` moderate.
    """
    d, r = _check_dims(d, r)
    n = check_int("n", n, minimum=1)
    g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    u = np.zeros(d) if direction is None else np.asarray(direction, dtype=float)
    if direction is None:
        u[0] = 1.0
    if u.shape != (d,) or abs(float(np.linalg.norm(u)) - 1.0) > 1e-8:
        raise ValueError(f"direction must be a unit vector of length {d}")
    out = np.empty(n)
    for i in range(n):
        a = g.standard_normal((r, d))
        q, _ = np.linalg.qr(a.T)  # orthonormal basis of the row space of A
        c = q.T @ u
        out[i] = float(c @ c)
    return out


def lora_parameter_count(*, d_in: int, d_out: int, r: int) -> int:
    """Trainable parameters of one LoRA adapter on ``W ∈ R^{d_out×d_in}``: ``r(d_in + d_out)`` (docs/theory.md §1).

    (``lora_A ∈ R^{r×d_in}``, ``lora_B ∈ R^{d_out×r}``; PEFT layout, docs/theory.md §5.)
    """
    d_in = check_int("d_in", d_in, minimum=1)
    d_out = check_int("d_out", d_out, minimum=1)
    r = check_int("r", r, minimum=1)
    if r > min(d_in, d_out):
        raise ValueError(f"r must be an integer in [1, min(d_in, d_out)={min(d_in, d_out)}], got {r}")
    return r * (d_in + d_out)


@dataclass(frozen=True)
class RetainedFractionComparison:
    """Measured retained fractions against the Beta(r/2, (d-r)/2) law of docs/theory.md §1.

    ``ks_statistic``/``ks_pvalue``: one-sample Kolmogorov–Smirnov test against the Beta law (exact for
    rank-one per-example gradients whose projected side is independent of ``A``; for higher-rank gradients the
    true law is less spread out -- docs/theory.md §4.2 -- so expect rejections). ``mean_z``: z-score of the sample
    mean against ``r/d`` using the Beta standard deviation (the mean ``r/d`` holds for any gradient independent
    of ``A``). ``n_above_one``: fractions exceeding ``1 + tol`` (impossible under [RPUE] Thm 1 -- a bug).
    For ``r = d`` the law is a point mass at 1: ``ks_statistic`` is the share of values below ``1 - tol``
    and ``ks_pvalue`` is 1.0 if there are none, else 0.0.
    """

    d: int
    r: int
    n: int
    mean: float
    expected_mean: float
    mean_z: float
    ks_statistic: float
    ks_pvalue: float
    n_above_one: int
    quantiles: dict[str, float]
    expected_quantiles: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_retained_fractions(
    fractions: Any, *, d: int, r: int, tol: float = 1e-6
) -> RetainedFractionComparison:
    """Compare measured retained fractions (e.g. per-example ``‖g P_A‖²/‖g‖²``) with the Beta law.

    ``fractions``: 1-D array-like of values in ``[0, 1 + tol]`` (larger values are counted in
    ``n_above_one`` and are clipped to 1 for the KS test). See :class:`RetainedFractionComparison`.
    """
    d, r = _check_dims(d, r)
    tol = check_real("tol", tol, lo=0.0)
    f = np.asarray(fractions, dtype=float).ravel()
    if f.size < 1:
        raise ValueError("fractions must contain at least one value, got an empty array")
    if not np.all(np.isfinite(f)) or np.any(f < -tol):
        raise ValueError("fractions must be finite and >= 0")
    n_above = int(np.sum(f > 1.0 + tol))
    fc = np.clip(f, 0.0, 1.0)
    mean = float(fc.mean())
    expected = r / d
    probs = (0.05, 0.25, 0.5, 0.75, 0.95)
    qs = {f"q{int(round(p * 100)):02d}": float(np.quantile(fc, p)) for p in probs}
    if r == d:
        below = float(np.mean(fc < 1.0 - tol))
        return RetainedFractionComparison(
            d=d, r=r, n=int(f.size), mean=mean, expected_mean=1.0,
            mean_z=0.0 if below == 0.0 else -math.inf,
            ks_statistic=below, ks_pvalue=1.0 if below == 0.0 else 0.0, n_above_one=n_above,
            quantiles=qs, expected_quantiles={k: 1.0 for k in qs},
        )
    law = _beta(d, r)
    sd = math.sqrt(float(law.var()))
    ks = stats.kstest(fc, law.cdf)
    return RetainedFractionComparison(
        d=d, r=r, n=int(f.size), mean=mean, expected_mean=expected,
        mean_z=(mean - expected) / (sd / math.sqrt(f.size)),
        ks_statistic=float(ks.statistic), ks_pvalue=float(ks.pvalue), n_above_one=n_above,
        quantiles=qs, expected_quantiles={f"q{int(round(p * 100)):02d}": float(law.ppf(p)) for p in probs},
    )
