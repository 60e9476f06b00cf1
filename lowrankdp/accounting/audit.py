"""Privacy audit by simulation of the projected Gaussian mechanisms (docs/accounting.md).

IMPORTANT (conventions, stated once): the neighbouring pair is add/remove of one record whose clipped
contribution is ``ΔV ∈ R^{d×m}`` with ``‖ΔV‖_F = C = 1``; world ``"out"`` releases from ``V = 0``, world
``"in"`` from ``V = ΔV``. The mechanism is M2 (docs/theory.md §4.1), run for ``T`` steps:
``Z_t = A_t (V_t + E_t)`` with ``E_t`` i.i.d. ``N(0, σ²)`` entries, ``σ = z``, ``V_t = ΔV`` with probability ``q``
(Poisson sampling; ``q = 1``: unsampled) in world "in" and ``0`` in world "out", and ``A_t ∈ R^{r×d}`` with i.i.d.
``N(0, 1/r)`` entries — fresh each step (``"fresh"``), one for all steps (``"fixed"``), or the identity
(``"none"``). The adversary sees every ``A_t`` and ``Z_t``. The score is the exact log-likelihood ratio
``L = log p_in(out)/p_out(out)`` of the whole transcript (the Neyman–Pearson optimal attack; with sampling, each
step contributes ``log(1 − q + q·e^{ℓ_t})`` where ``ℓ_t`` is the Gaussian log-likelihood ratio given ``A_t``), so
**higher score = more likely "in"** (a member).

From samples of ``L`` in both worlds we report (i) an ε lower bound at the target δ with a Clopper–Pearson
confidence level (``lowrankdp.metrics.epsilon_lower_bound``) and (ii) the hockey-stick divergence
``δ̂(ε) = E_in[(1 − e^{ε−L})₊]`` (and the mirrored direction) at the accountant's ε, with a standard error:
an accountant is contradicted when ``δ̂(ε_acct) − 3·se > δ``.

Scenarios for ``ΔV`` (``x gᵀ`` has rank one; the projection acts on the ``d`` side):

* ``"rank_one"``: ``ΔV = x gᵀ`` for a fixed unit ``x`` independent of ``A`` (the §4.4 assumption);
* ``"rank_two"``: ``ΔV = (x₁g₁ᵀ + x₂g₂ᵀ)/√2`` (higher rank: covered by convex order for the fresh RDP);
* ``"in_rowspace"``: ``x`` chosen *after* seeing ``A`` inside its row space (``ΔV`` correlated with ``A``;
  breaks the independence assumption: ``b = 1``);
* ``"span"``: ``x`` is the unit vector of a fixed ``k``-dimensional span ``U`` that ``A`` retains best
  (``b = λ_max(Uᵀ P_A U)``; breaks the rank-one assumption of the fixed projection).
"""

from __future__ import annotations

import math

import numpy as np

from .._validate import check_choice, check_int, check_real

__all__ = ["simulate_privacy_loss", "hockey_stick", "SCENARIOS"]

SCENARIOS = ("rank_one", "rank_two", "in_rowspace", "span")


def _delta_v(scenario: str, A: np.ndarray, d: int, m: int, k: int, rng_fixed: np.random.Generator) -> np.ndarray:
    """ΔV for each run (shape (n, d, m)), given the projection(s) A of shape (n, r, d) (first step's for fixed)."""
    n = A.shape[0]
    g = np.zeros(m)
    g[0] = 1.0
    if scenario in ("rank_one", "rank_two"):
        x = rng_fixed.standard_normal(d)
        x /= np.linalg.norm(x)
        if scenario == "rank_one":
            dv = np.outer(x, g)
        else:
            x2 = rng_fixed.standard_normal(d)
            x2 -= x2 @ x * x
            x2 /= np.linalg.norm(x2)
            g2 = np.zeros(m)
            g2[1 % m] = 1.0
            dv = (np.outer(x, g) + np.outer(x2, g2)) / math.sqrt(2.0)
            dv /= np.linalg.norm(dv)
        return np.broadcast_to(dv, (n, d, m)).copy()
    if scenario == "in_rowspace":
        # top right-singular vector of A: a unit vector inside A's row space (depends on A)
        _, _, vt = np.linalg.svd(A, full_matrices=False)
        x = vt[:, 0, :]
    else:  # span: best unit vector of the fixed span of the first k coordinates
        U = np.eye(d)[:, :k]
        # P_A restricted to U: U^T A^T (A A^T)^{-1} A U
        AU = A @ U  # (n, r, k)
        G = np.linalg.solve(A @ np.swapaxes(A, 1, 2), AU)  # (n, r, k)
        M = np.swapaxes(AU, 1, 2) @ G  # (n, k, k)
        _, vecs = np.linalg.eigh(M)
        x = vecs[:, :, -1] @ U.T  # (n, d)
    return x[:, :, None] * g[None, None, :]


def simulate_privacy_loss(*, d: int, r: int, noise_multiplier: float, steps: int, n: int, projection: str,
                          scenario: str = "rank_one", world: str = "in", m: int = 2, span_k: int = 2,
                          seed: int = 0, chunk: int = 4096, sampling_rate: float = 1.0) -> np.ndarray:
    """``n`` samples of the exact privacy loss ``L = log p_in/p_out`` of the transcript, drawn in ``world``.

    Runs the mechanism itself: draws ``A_t``, ``E_t``, forms ``Z_t = A_t(V + E_t)`` and evaluates the
    Gaussian log-likelihood ratio given ``A_t`` (``Z_t ~ N(A_t V, σ² A_t A_tᵀ)`` column-wise).
    """
    d = check_int("d", d, minimum=2)
    r = check_int("r", r, minimum=1, maximum=d)
    z = check_real("noise_multiplier", noise_multiplier, lo=0.0, lo_open=True)
    steps = check_int("steps", steps, minimum=1)
    n = check_int("n", n, minimum=1)
    projection = check_choice("projection", projection, ("none", "fresh", "fixed"))
    scenario = check_choice("scenario", scenario, SCENARIOS)
    world = check_choice("world", world, ("in", "out"))
    q = check_real("sampling_rate", sampling_rate, lo=0.0, hi=1.0, lo_open=True)
    rng = np.random.default_rng(seed)
    rng_fixed = np.random.default_rng(10_000 + seed // 2)  # the fixed direction(s) x: same in both worlds
    out = np.empty(n)
    s2 = z * z
    for start in range(0, n, chunk):
        nb = min(chunk, n - start)
        L = np.zeros(nb)
        A_fixed = rng.standard_normal((nb, r, d)) / math.sqrt(r) if projection == "fixed" else None
        dv = None
        for t in range(steps):
            if projection == "none":
                A = np.broadcast_to(np.eye(d), (nb, d, d))
            elif projection == "fixed":
                A = A_fixed
            else:
                A = rng.standard_normal((nb, r, d)) / math.sqrt(r)
            if dv is None or projection == "fresh" and scenario in ("in_rowspace", "span"):
                dv = _delta_v(scenario, A if projection != "none" else np.broadcast_to(np.eye(d), (nb, d, d)),
                              d, m, span_k, np.random.default_rng(10_000 + seed // 2))
            if world == "out":
                V = np.zeros_like(dv)
            elif q < 1:
                V = dv * (rng.random(nb) < q)[:, None, None]
            else:
                V = dv
            E = rng.standard_normal((nb, d, m)) * z
            Zt = A @ (V + E)  # the released output, (nb, r', m)
            Mt = A @ dv  # shift between the worlds given A
            cov = s2 * (A @ np.swapaxes(A, 1, 2))
            sol = np.linalg.solve(cov, Mt)  # (σ² A Aᵀ)^{-1} A ΔV
            ell = np.einsum("nij,nij->n", sol, Zt) - 0.5 * np.einsum("nij,nij->n", sol, Mt)
            L += ell if q == 1 else np.logaddexp(math.log1p(-q), math.log(q) + ell)
        out[start:start + nb] = L
    return out


def hockey_stick(loss_in: np.ndarray, loss_out: np.ndarray, epsilon: float) -> tuple[float, float]:
    """``(δ̂, se)``: the larger of ``E_in[(1 − e^{ε−L})₊]`` and ``E_out[(1 − e^{ε+L})₊]`` with its standard error."""
    vals_in = np.maximum(0.0, -np.expm1(epsilon - np.asarray(loss_in)))
    vals_out = np.maximum(0.0, -np.expm1(epsilon + np.asarray(loss_out)))
    best = max((vals_in, vals_out), key=np.mean)
    return float(best.mean()), float(best.std(ddof=1) / math.sqrt(len(best)))
