"""White-box gradient canaries for DP-SGD audits (numpy only): scorers the engine feeds with arrays, and a
pure-numpy simulator of DP-SGD on canary coordinates with deliberate mutations.

IMPORTANT: conventions. A Dirac canary ``j`` is a per-example gradient ``C·u_j`` (norm exactly the clip
norm ``C``; ``u_j = e_j`` on a coordinate that no other record updates), included in the training set with
probability ½ (:mod:`lowrankdp.audit.one_run`) and, when included, Poisson-sampled at rate ``q`` like any
record. At each step the auditor observes the *noisy clipped sum* on the canary directions, in
gradient-sum units (before the learning rate and the division by the batch size):
``y_t = Σ_{sampled} clip(g_i) + N(0, σ²C²)``. Scores are "higher = member".

Scores (the auditor knows ``q``, ``σ``, ``C``):

- ``all_iterates``: the per-step log-likelihood ratio of the subsampled Gaussian, summed over steps,
  ``Σ_t log(1 − q + q·exp((y_t/C − ½)/σ²))`` (the Neyman–Pearson statistic of one step: member ⇒
  ``y_t ~ (1−q)N(0, σ²C²) + qN(C, σ²C²)``, non-member ⇒ ``N(0, σ²C²)``; Nasr et al., "Tight auditing of
  differentially private machine learning", arXiv:2302.07956v1 §4 use the same per-step view).
- ``last_iterate``: only the final parameters are seen, i.e. ``Σ_t y_t``; the likelihood ratio of a
  binomial mixture of Gaussian shifts is increasing in it, so the sum itself is the optimal score.

Compressed DP-SGD (docs/accounting.md, "M2"): the release at step ``t`` is ``A_t(Σ clip(g_i) + e_t)`` with
``A_t ∈ R^{r×d}`` published. Whitening by ``W_t = (A_tA_tᵀ)^{-1/2}`` makes it a Gaussian mechanism with
shift ``C·W_tA_tu_j`` (theory: the M2 mechanism is Gaussian given A), so the per-step statistic becomes
``log(1 − q + q·exp((a_jᵀx_t − ½‖a_j‖²)/σ²))`` with ``a_j = W_tA_tu_j`` and ``x_t = W_t z_t / C``;
``‖a_j‖² = u_jᵀP_{A_t}u_j`` is the retained fraction of the canary's direction. Unlike Dirac canaries
on distinct coordinates, projected canaries share r dimensions; :class:`ProjectedCanaryScorer` adds the
other canaries' covariance to the noise (``interference=True``; σ²I is replaced by σ²I + (q/2)Σ_k a_ka_kᵀ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validate import check_choice, check_int, check_probability, check_real

__all__ = [
    "SCORE_MODES",
    "step_log_likelihood_ratio",
    "score_dirac_canaries",
    "ProjectedCanaryScorer",
    "top_retained_direction",
    "DpsgdCanaryRun",
    "simulate_dpsgd_canaries",
    "simulate_projected_dpsgd_canaries",
]

SCORE_MODES = ("all_iterates", "last_iterate")


def _check_dp(sampling_rate: Any, noise_multiplier: Any, clip_norm: Any) -> tuple[float, float, float]:
    q = check_probability("sampling_rate", sampling_rate, open_left=True, open_right=False)
    z = check_real("noise_multiplier", noise_multiplier, lo=0.0, lo_open=True)
    c = check_real("clip_norm", clip_norm, lo=0.0, lo_open=True)
    return q, z, c


def _mixture_llr(stat: np.ndarray, q: float) -> np.ndarray:
    """``log(1 − q + q·e^stat)`` stably (``stat`` is the Gaussian log-likelihood ratio of one step)."""
    if q == 1.0:
        return stat
    return np.logaddexp(math.log1p(-q), math.log(q) + stat)


def step_log_likelihood_ratio(observed: Any, *, sampling_rate: float, noise_multiplier: float,
                              clip_norm: float) -> np.ndarray:
    """Per-step subsampled-Gaussian log-likelihood ratio of Dirac canaries, same shape as ``observed``
    (noisy clipped-sum values on the canary coordinates, gradient-sum units)."""
    q, z, c = _check_dp(sampling_rate, noise_multiplier, clip_norm)
    y = np.asarray(observed, dtype=float)
    if not np.all(np.isfinite(y)):
        raise ValueError("observed must be finite (no NaN/inf)")
    return _mixture_llr((y / c - 0.5) / (z * z), q)


def score_dirac_canaries(observed: Any, *, sampling_rate: float, noise_multiplier: float, clip_norm: float,
                         mode: str = "all_iterates") -> np.ndarray:
    """One score per canary from ``observed`` of shape ``(steps, canaries)`` (see the module docstring).
    ``mode="last_iterate"`` uses only the per-coordinate sum over steps (what the final model shows)."""
    mode = check_choice("mode", mode, SCORE_MODES)
    y = np.asarray(observed, dtype=float)
    if y.ndim != 2 or y.shape[0] == 0 or y.shape[1] == 0:
        raise ValueError(f"observed must have shape (steps, canaries) with both ≥ 1, got shape {y.shape}")
    if mode == "last_iterate":
        _check_dp(sampling_rate, noise_multiplier, clip_norm)
        if not np.all(np.isfinite(y)):
            raise ValueError("observed must be finite (no NaN/inf)")
        return y.sum(axis=0)
    return step_log_likelihood_ratio(y, sampling_rate=sampling_rate, noise_multiplier=noise_multiplier,
                                     clip_norm=clip_norm).sum(axis=0)


class ProjectedCanaryScorer:
    """Accumulates the per-step likelihood-ratio score of canaries on projected releases ``A_t(sum + noise)``.

    Call :meth:`update` once per step with the release ``z_t ∈ R^r``, the published ``A_t ∈ R^{r×d}`` and the
    canary directions (unit rows, ``(canaries, d)``; pass integer coordinates for Dirac canaries). Read
    :attr:`scores` at the end."""

    def __init__(self, *, canaries: int, sampling_rate: float, noise_multiplier: float, clip_norm: float,
                 interference: bool = True):
        self.m = check_int("canaries", canaries, minimum=1)
        self.interference = bool(interference)
        self.q, self.z, self.c = _check_dp(sampling_rate, noise_multiplier, clip_norm)
        self.scores = np.zeros(self.m)
        self.retained = np.zeros(self.m)  # Σ_t ‖a_j‖²: how much of each canary the projections let through
        self._cache_key: tuple | None = None
        self._cache: tuple = ()

    def update(self, release: Any, projection: Any, directions: Any, *, offset: Any = None) -> None:
        """Add step ``t``'s statistic. ``offset`` (optional, in release units) is subtracted from the release
        first: with a *fixed* A, pass the mean release over the run, which removes the persistent pull of the
        other included canaries (they share the r projected dimensions) and keeps each canary's own signal
        (sampled in a fraction q of the steps). Any post-processing of the releases keeps the audit valid.
        The whitening and canary columns are cached while the same ``projection`` and ``directions`` objects
        are passed (a fixed projection costs one factorisation per run)."""
        zt = np.asarray(release, dtype=float).ravel()
        if offset is not None:
            zt = zt - np.asarray(offset, dtype=float).ravel()
        if self._cache_key is not None and self._cache_key[0] is projection and self._cache_key[1] is directions:
            w, b, quad, sq = self._cache
        else:
            w, b, quad, sq = self._prepare(projection, directions, zt.size)
            self._cache_key, self._cache = (projection, directions), (w, b, quad, sq)
        x = (w @ zt) / self.c
        self.retained += sq
        self.scores += _mixture_llr(b.T @ x - 0.5 * quad, self.q)

    def _prepare(self, projection: Any, directions: Any, r: int):
        a_mat = np.asarray(projection, dtype=float)
        if a_mat.ndim != 2 or r != a_mat.shape[0]:
            raise ValueError(f"projection must be (r, d) with r = len(release) = {r}, got {a_mat.shape}")
        dirs = np.asarray(directions)
        if dirs.ndim == 1 and np.issubdtype(dirs.dtype, np.integer):
            cols = a_mat[:, dirs]  # Dirac canaries: A e_j
        elif dirs.ndim == 2 and dirs.shape[1] == a_mat.shape[1]:
            cols = a_mat @ dirs.T
        else:
            raise ValueError(f"directions must be integer coordinates or (canaries, d={a_mat.shape[1]}) rows, "
                             f"got shape {dirs.shape}")
        if cols.shape[1] != self.m:
            raise ValueError(f"directions must describe {self.m} canaries, got {cols.shape[1]}")
        evals, evecs = np.linalg.eigh(a_mat @ a_mat.T)
        if evals.min() <= 0.0:
            raise ValueError("projection must have full row rank (A Aᵀ invertible)")
        w = (evecs / np.sqrt(evals)) @ evecs.T  # (A Aᵀ)^{-1/2}
        a = w @ cols  # (r, m) whitened shifts per unit C
        # Noise covariance of the whitened release (units C²): σ²I, plus — when ``interference`` — the
        # covariance (q/2)·Σ_k a_k a_kᵀ of the other canaries (each in with probability ½, sampled at q),
        # which share the r dimensions; Gaussian approximation of a nuisance: it changes the score, never
        # the validity of the audit.
        cov = (self.z * self.z) * np.eye(a.shape[0])
        if self.interference:
            cov = cov + (self.q / 2.0) * (a @ a.T)
        b = np.linalg.solve(cov, a)
        return w, b, np.einsum("ij,ij->j", a, b), np.einsum("ij,ij->j", a, a)


@dataclass(frozen=True)
class DpsgdCanaryRun:
    """A simulated run: which canaries were included, and the observations handed to the scorers."""

    included: np.ndarray  # (canaries,) bool
    observed: np.ndarray  # (steps, canaries) noisy clipped-sum values on the canary coordinates
    sampling_rate: float
    noise_multiplier: float  # what the accountant was told (the *claimed* σ)
    clip_norm: float


def simulate_dpsgd_canaries(*, canaries: int, steps: int, sampling_rate: float, noise_multiplier: float,
                            clip_norm: float = 1.0, canary_norm: float | None = None, noise_scale: float = 1.0,
                            clip: bool = True, seed: int = 0) -> DpsgdCanaryRun:
    """DP-SGD restricted to ``canaries`` Dirac-canary coordinates (no other record updates them).

    Correct run: each canary's gradient has norm ``canary_norm`` (default ``clip_norm``), is clipped to
    ``clip_norm`` and noise ``N(0, (σC)²)`` is added. Mutations (the accountant is still told σ):
    ``noise_scale`` multiplies the noise actually added (0 = noise off, 0.1 = a 1/10 bug); ``clip=False``
    skips clipping, so a canary of norm ``canary_norm > C`` moves its coordinate by ``canary_norm``."""
    m = check_int("canaries", canaries, minimum=1)
    t = check_int("steps", steps, minimum=1)
    q, z, c = _check_dp(sampling_rate, noise_multiplier, clip_norm)
    g = c if canary_norm is None else check_real("canary_norm", canary_norm, lo=0.0, lo_open=True)
    ns = check_real("noise_scale", noise_scale, lo=0.0)
    rng = np.random.default_rng(seed)
    included = rng.random(m) < 0.5
    shift = min(g, c) if clip else g
    sampled = (rng.random((t, m)) < q) & included[None, :]
    observed = shift * sampled + (ns * z * c) * rng.standard_normal((t, m))
    return DpsgdCanaryRun(included=included, observed=observed, sampling_rate=q, noise_multiplier=z, clip_norm=c)


def top_retained_direction(a_mat: np.ndarray, block: np.ndarray) -> np.ndarray:
    """Unit vector in span(e_block) maximising its retained fraction ``uᵀP_Au`` (the λ_max direction)."""
    evals, evecs = np.linalg.eigh(a_mat @ a_mat.T)
    w = (evecs / np.sqrt(evals)) @ evecs.T
    _, _, vt = np.linalg.svd(w @ a_mat[:, block], full_matrices=False)
    return vt[0]


def simulate_projected_dpsgd_canaries(*, canaries: int, d: int, r: int, steps: int, sampling_rate: float,
                                      noise_multiplier: float, projection: str = "fresh", span: int = 1,
                                      clip_norm: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray,
                                                                                       np.ndarray]:
    """Compressed DP-SGD on canary coordinates: release ``A_t(Σ clipped + N(0, σ²C²I_d))``, ``A_t`` with
    i.i.d. N(0, 1/r) entries drawn every step (``"fresh"``) or once (``"fixed"``), published to the auditor.

    ``span = 1``: Dirac canaries ``C·e_j`` (directions independent of A — the accountant's assumption).
    ``span = k > 1`` (fixed only): canary ``j`` owns ``k`` coordinates and its gradient is ``C·u_j`` with
    ``u_j`` the direction *in that span* that A retains most (λ_max of ``U_jᵀP_AU_j``), as a per-example
    gradient whose projected side spans k directions can be in a deep network. Returns
    ``(included, scores, mean_retained_fraction)``."""
    m = check_int("canaries", canaries, minimum=1)
    d = check_int("d", d, minimum=2)
    r = check_int("r", r, minimum=1, maximum=d - 1)
    t = check_int("steps", steps, minimum=1)
    q, z, c = _check_dp(sampling_rate, noise_multiplier, clip_norm)
    projection = check_choice("projection", projection, ("fresh", "fixed"))
    k = check_int("span", span, minimum=1)
    if k > 1 and projection != "fixed":
        raise ValueError(f"span > 1 is simulated only with projection='fixed', got projection={projection!r}")
    if m * k > d:
        raise ValueError(f"canaries * span must be ≤ d={d} (disjoint coordinates), got {m}*{k}={m * k}")
    rng = np.random.default_rng(seed)
    included = rng.random(m) < 0.5
    scorer = ProjectedCanaryScorer(canaries=m, sampling_rate=q, noise_multiplier=z, clip_norm=c)
    a_fixed = rng.standard_normal((r, d)) / math.sqrt(r) if projection == "fixed" else None
    if k == 1:
        directions: np.ndarray = np.arange(m)
    else:
        directions = np.zeros((m, d))
        for j in range(m):
            block = np.arange(j * k, (j + 1) * k)
            directions[j, block] = top_retained_direction(a_fixed, block)
    releases = []
    for _ in range(t):
        a_mat = a_fixed if a_fixed is not None else rng.standard_normal((r, d)) / math.sqrt(r)
        sampled = (rng.random(m) < q) & included
        grad = np.zeros(d)
        if k == 1:
            grad[:m] = c * sampled
        else:
            grad += c * (sampled.astype(float) @ directions)
        release = a_mat @ (grad + z * c * rng.standard_normal(d))
        if a_fixed is None:
            scorer.update(release, a_mat, directions)
        else:
            releases.append(release)
    if a_fixed is not None:  # score after the run, centred on the mean release (see ProjectedCanaryScorer)
        mean = np.mean(releases, axis=0)
        for release in releases:
            scorer.update(release, a_fixed, directions, offset=mean)
    return included, scorer.scores, scorer.retained / t
