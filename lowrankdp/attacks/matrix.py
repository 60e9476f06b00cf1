"""Membership attacks on the Wishart projection mechanism (numpy only).

Sources: ``[LRP]`` Hu, Düngler, Schölkopf, Sanyal, arXiv:2601.21719 (v1) — Thm 1 (vector query), Thm 2
(matrix query is not private); docs/theory.md §2–§4 for the formulas used here.

Releases (one query ``V ∈ R^{d×m}``, ``A ∈ R^{r×d}`` with i.i.d. N(0, 1/r) entries, ``M = AᵀA``):

- ``noise_free``: ``Y = M V``                      ([LRP] Thm 1/2)
- ``m1``:         ``Y = M V + E``  (project, then noise; ``E`` i.i.d. N(0, σ²))
- ``m2``:         ``Y = M (V + E)`` (noise, then project; "compressed DP-SGD")

over ``releases`` rounds with a **fresh** ``A`` per round or one **fixed** ``A`` for all rounds.

Neighbouring pair: ``V_in`` (the dataset with the target record) and ``V_out`` (without it). Both are
known to an attacker who knows the other records and the target; the attack decides which of the two
produced the output. ``kind="column"`` replaces the target column (docs/theory.md §3: ``[v, w]`` vs
``[v, w']``; one column with alignment ``ρ = ⟨v, v'⟩`` is the vector query of §2); ``kind="rank_one"``
subtracts a unit rank-one term ``u wᵀ`` (add/remove of one record whose gradient is ``u wᵀ``, as in
LoRA). Either way ``ΔV = V_in − V_out`` has rank one and is drawn independently of ``A``.

Distinguishers (IMPORTANT: every score follows the package convention, **higher = member**):

- ``symmetry`` (docs/theory.md §3.1): ``V_inᵀ M V_in`` is symmetric, so ``V_inᵀ Y`` is symmetric exactly under
  the member hypothesis. Score ``log a(V_out) − log a(V_in)`` with ``a(V) = ‖VᵀY − YᵀV‖_F / ‖VᵀY‖_F``,
  summed over releases. Needs ``columns ≥ 2``; does not need ``A``.
- ``reconstruction`` (docs/theory.md §3.2, generalised to rank ``r``): ``col(Y) = col(M)`` (rank ``r``); with
  ``U`` an orthonormal basis of it, ``UᵀY = S·UᵀV`` for one ``r×r`` matrix ``S``. The relative least-squares
  residual of that fit is 0 under the true hypothesis. With ``r = d`` this is ``M = Y_{−j}V_{−j}⁺`` of §3.2;
  for ``r < d`` it needs only ``columns ≥ r + 1`` (not ``d + 1``). Does not need ``A``.
- ``likelihood_ratio``: the exact log-likelihood ratio where the output density is tractable given what
  the attacker knows — the noise-free vector query (docs/theory.md §2, fact 2; no ``A`` needed), and M1/M2 when
  the attacker knows ``A`` (Gaussian given ``A``; for M2 after whitening, docs/theory.md §4.1).
- ``correlation``: ``⟨Y − (V_in + V_out)/2, V_in − V_out⟩`` summed over releases, using ``E[M] = I``; the
  attacker needs neither ``A`` nor a density. A baseline for noisy releases with ``A`` unknown.

Accountant (``accountant_epsilon``): M2 is a Gaussian mechanism given ``A`` with sensitivity
``‖P_A ΔV‖_F`` (docs/theory.md §4.1), so ``lowrankdp.accounting.epsilon`` with ``projection="fresh"`` (§4.3)
or ``"fixed"`` (§4.4; rank-one ΔV independent of A, true here by construction) at sampling rate 1 covers
it *with A published*; the plain Gaussian (``projection="none"``) covers it for any ``A`` and any ``ΔV``.
No accountant covers M1 (its sensitivity ``‖AᵀAΔV‖_F`` is unbounded over ``A``) or the noise-free
releases; for those ``epsilon_accountant`` is ``None`` with the reason.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
from scipy import stats

from ._result import attack_fields
from .._validate import check_choice, check_int, check_real

__all__ = [
    "Mechanism",
    "Projection",
    "Distinguisher",
    "ThreatModel",
    "NeighbouringPair",
    "neighbouring_pair",
    "sample_projections",
    "simulate_releases",
    "symmetry_score",
    "reconstruction_score",
    "likelihood_ratio_score",
    "correlation_score",
    "vector_query_log_density",
    "support_violation_probability",
    "accountant_epsilon",
    "MatrixAttackConfig",
    "MatrixAttackResult",
    "run_matrix_attack",
]

_TINY = 1e-300  # keeps log() finite for an exactly-zero statistic
_SCORE_CAP = 1e300  # metrics need finite scores: ±inf log-likelihood ratios are mapped to ±1e300


class Mechanism(str, Enum):
    NOISE_FREE = "noise_free"
    M1 = "m1"
    M2 = "m2"


class Projection(str, Enum):
    FRESH = "fresh"
    FIXED = "fixed"


class Distinguisher(str, Enum):
    SYMMETRY = "symmetry"
    RECONSTRUCTION = "reconstruction"
    LIKELIHOOD_RATIO = "likelihood_ratio"
    CORRELATION = "correlation"


_MECHANISMS = tuple(m.value for m in Mechanism)
_PROJECTIONS = tuple(p.value for p in Projection)
_DISTINGUISHERS = tuple(x.value for x in Distinguisher)
_KINDS = ("column", "rank_one")


@dataclass(frozen=True)
class ThreatModel:
    """What the attacker knows. Each distinguisher checks the facts it uses (``ValueError`` otherwise).

    - ``knows_projection``: the attacker sees ``A`` (e.g. a published seed). Needed only by the noisy
      likelihood-ratio test.
    - ``knows_other_records``: the attacker knows every record except whether the target is in, hence
      both ``V_in`` and ``V_out``. Needed by every distinguisher here.
    - ``knows_initial_weights``: the attacker can subtract the initial weights, so it sees the update
      ``Y`` itself (the release model of this module). Needed by every distinguisher here.
    """

    knows_projection: bool = False
    knows_other_records: bool = True
    knows_initial_weights: bool = True

    def __post_init__(self) -> None:
        for name in ("knows_projection", "knows_other_records", "knows_initial_weights"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{name} must be a bool, got {value!r}")

    def to_dict(self) -> dict[str, bool]:
        return {
            "knows_projection": bool(self.knows_projection),
            "knows_other_records": bool(self.knows_other_records),
            "knows_initial_weights": bool(self.knows_initial_weights),
        }


@dataclass(frozen=True, eq=False)
class NeighbouringPair:
    """The two candidate queries: ``v_in`` (target present) and ``v_out`` (target absent), ``d×m``."""

    v_in: np.ndarray
    v_out: np.ndarray
    kind: str = "custom"

    def __post_init__(self) -> None:
        a = np.array(self.v_in, dtype=float, copy=True)
        b = np.array(self.v_out, dtype=float, copy=True)
        if a.ndim == 1:
            a = a[:, None]
        if b.ndim == 1:
            b = b[:, None]
        if a.ndim != 2 or a.shape != b.shape or a.size == 0:
            raise ValueError(f"v_in and v_out must be non-empty d×m arrays of one shape, got {a.shape} and {b.shape}")
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            raise ValueError("v_in and v_out must be finite")
        a.setflags(write=False)
        b.setflags(write=False)
        object.__setattr__(self, "v_in", a)
        object.__setattr__(self, "v_out", b)

    @property
    def d(self) -> int:
        return int(self.v_in.shape[0])

    @property
    def columns(self) -> int:
        return int(self.v_in.shape[1])

    @property
    def sensitivity(self) -> float:
        """``‖V_in − V_out‖_F``: the ℓ2 sensitivity of the unprojected query for this pair."""
        return float(np.linalg.norm(self.v_in - self.v_out))

    @property
    def difference_rank(self) -> int:
        diff = self.v_in - self.v_out
        if not np.any(diff):
            return 0
        return int(np.linalg.matrix_rank(diff))


def _unit(rng: np.random.Generator, d: int) -> np.ndarray:
    x = rng.standard_normal(d)
    return x / np.linalg.norm(x)


def neighbouring_pair(*, d: int, columns: int, kind: str = "column", rho: float = 0.0, seed: int = 0) -> NeighbouringPair:
    """A random neighbouring pair with unit-norm columns, drawn independently of any projection.

    ``kind="column"``: the last column ``v`` is replaced by a unit ``v'`` with ``⟨v, v'⟩ = rho``
    (sensitivity ``√(2(1 − ρ))``). ``kind="rank_one"``: ``V_out = V_in − u wᵀ`` with unit ``u ∈ R^d``,
    ``w ∈ R^m`` (sensitivity 1; ``rho`` unused).
    """
    d = check_int("d", d, minimum=1)
    columns = check_int("columns", columns, minimum=1)
    kind = check_choice("kind", kind, _KINDS)
    rho = check_real("rho", rho, lo=-1.0, hi=1.0, lo_open=True, hi_open=True)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng([seed, 0x5EED])
    v_in = np.stack([_unit(rng, d) for _ in range(columns)], axis=1)
    v_out = v_in.copy()
    if kind == "column":
        if d < 2:
            raise ValueError(f"d must be >= 2 for kind='column' (v' must differ from v), got {d}")
        v = v_in[:, -1]
        u = rng.standard_normal(d)
        u -= (u @ v) * v
        u /= np.linalg.norm(u)
        v_out[:, -1] = rho * v + math.sqrt(1.0 - rho * rho) * u
    else:
        v_out -= np.outer(_unit(rng, d), _unit(rng, columns))
    return NeighbouringPair(v_in, v_out, kind)


def sample_projections(rng: np.random.Generator, *, n: int, d: int, r: int, releases: int = 1) -> np.ndarray:
    """``n × releases`` projections ``A ∈ R^{r×d}`` with i.i.d. N(0, 1/r) entries, shape ``(n, releases, r, d)``
    (so ``E[AᵀA] = I_d``; docs/theory.md §0)."""
    return rng.standard_normal((n, releases, r, d)) / math.sqrt(r)


def simulate_releases(
    v: np.ndarray,
    *,
    mechanism: str,
    r: int,
    sigma: float,
    releases: int,
    projection: str,
    n: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` independent runs of ``releases`` releases of the query ``v`` (``d×m``).

    Returns ``(Y, A)`` with ``Y`` of shape ``(n, releases, d, m)`` and ``A`` of shape
    ``(n, releases, r, d)`` (fresh) or ``(n, 1, r, d)`` (fixed, shared by all releases of a run).
    ``M`` is never formed: ``MV = Aᵀ(AV)`` costs ``O(r·d·m)`` per release.
    """
    v = np.asarray(v, dtype=float)
    if v.ndim == 1:
        v = v[:, None]
    d, m = v.shape
    mechanism = check_choice("mechanism", mechanism, _MECHANISMS)
    projection = check_choice("projection", projection, _PROJECTIONS)
    r = check_int("r", r, minimum=1, maximum=d)
    n = check_int("n", n, minimum=1)
    releases = check_int("releases", releases, minimum=1)
    sigma = check_real("sigma", sigma, lo=0.0)
    if (mechanism == "noise_free") != (sigma == 0.0):
        raise ValueError(f"sigma must be 0 exactly for mechanism 'noise_free' and > 0 otherwise, got {sigma} for {mechanism!r}")
    a = sample_projections(rng, n=n, d=d, r=r, releases=releases if projection == "fresh" else 1)
    a_b = np.broadcast_to(a, (n, releases, r, d))
    at = np.swapaxes(a_b, -1, -2)
    if mechanism == "m2":
        x = v + sigma * rng.standard_normal((n, releases, d, m))  # V + E      [docs/theory.md §4, M2]
        y = at @ (a_b @ x)
    else:
        y = at @ (a_b @ v)  # M V = Aᵀ(A V)
        if mechanism == "m1":
            y = y + sigma * rng.standard_normal((n, releases, d, m))  # M V + E  [docs/theory.md §4, M1]
    return y, a


# --------------------------------------------------------------------------------------------------
# Distinguishers. Each takes Y of shape (n, T, d, m) and returns n scores (higher = member).


def _as_batch(y: np.ndarray, pair: NeighbouringPair) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    if y.ndim == 2:
        y = y[None, None]
    elif y.ndim == 3:
        y = y[:, None]
    if y.ndim != 4 or y.shape[-2:] != pair.v_in.shape:
        raise ValueError(f"Y must have shape (n, releases, {pair.d}, {pair.columns}), got {np.shape(y)}")
    return y


def _asymmetry(y: np.ndarray, v: np.ndarray) -> np.ndarray:
    s = np.einsum("dm,ntdk->ntmk", v, y)  # Vᵀ Y_t
    num = np.linalg.norm(s - np.swapaxes(s, -1, -2), axis=(-2, -1))
    den = np.linalg.norm(s, axis=(-2, -1))
    return num / np.maximum(den, _TINY)


def symmetry_score(y: np.ndarray, pair: NeighbouringPair) -> np.ndarray:
    """Symmetry test (docs/theory.md §3.1): ``Σ_t log a_t(V_out) − log a_t(V_in)``, ``a(V) = ‖VᵀY − YᵀV‖/‖VᵀY‖``."""
    if pair.columns < 2:
        raise ValueError(f"the symmetry test needs columns >= 2 (VᵀY is 1×1 and always symmetric), got {pair.columns}")
    y = _as_batch(y, pair)
    a_in = _asymmetry(y, pair.v_in)
    a_out = _asymmetry(y, pair.v_out)
    return np.sum(np.log(a_out + _TINY) - np.log(a_in + _TINY), axis=1)


def _column_basis(y: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """``(Uᵀ, UᵀY)`` with ``U`` an orthonormal basis of ``col(Y) = col(M)`` from the first ``r`` columns
    (rank ``r`` when ``m ≥ r + 1`` and ``V`` is generic). Shared by both hypotheses."""
    u, _ = np.linalg.qr(y[..., :r])  # (n, T, d, r)
    ut = np.swapaxes(u, -1, -2)
    return ut, ut @ y


def _reconstruction_residual(ut: np.ndarray, z: np.ndarray, v: np.ndarray) -> np.ndarray:
    w = ut @ v  # (n, T, r, m); z = S · w under the true hypothesis
    q, _ = np.linalg.qr(np.swapaxes(w, -1, -2))  # (n, T, m, r): basis of row(UᵀV)
    resid = z - (z @ q) @ np.swapaxes(q, -1, -2)  # least-squares residual of z ≈ S w
    return np.linalg.norm(resid, axis=(-2, -1)) / np.maximum(np.linalg.norm(z, axis=(-2, -1)), _TINY)


def reconstruction_score(y: np.ndarray, pair: NeighbouringPair, *, r: int) -> np.ndarray:
    """Reconstruction test (docs/theory.md §3.2, rank-r form): residual of ``UᵀY = S·UᵀV``, ``U`` a basis of
    ``col(Y)``; score ``Σ_t log res_t(V_out) − log res_t(V_in)``. Needs ``columns ≥ r + 1``."""
    r = check_int("r", r, minimum=1, maximum=pair.d)
    if pair.columns < r + 1:
        raise ValueError(
            f"the reconstruction test needs columns >= r + 1 = {r + 1} (S has r² unknowns), got {pair.columns}"
        )
    y = _as_batch(y, pair)
    ut, z = _column_basis(y, r)
    res_in = _reconstruction_residual(ut, z, pair.v_in)
    res_out = _reconstruction_residual(ut, z, pair.v_out)
    return np.sum(np.log(res_out + _TINY) - np.log(res_in + _TINY), axis=1)


def vector_query_log_density(y: np.ndarray, v: np.ndarray, *, r: int) -> np.ndarray:
    """Unnormalised log density of ``y = M v`` for a unit vector ``v`` (docs/theory.md §2, fact 2):
    ``((r − d − 1)/2)·ln u − r‖y‖²/(2u)`` with ``u = vᵀy``; ``−inf`` where ``u ≤ 0`` (outside the support).
    The normalising constant depends only on ``d``, ``r`` and ``‖v‖``, so it cancels in a ratio of two unit
    vectors. ``y``: shape ``(..., d)``."""
    v = np.asarray(v, dtype=float).ravel()
    d = v.size
    r = check_int("r", r, minimum=1, maximum=d)
    nv = np.linalg.norm(v)
    if not math.isclose(nv, 1.0, rel_tol=1e-9):
        raise ValueError(f"v must be a unit vector for the vector-query density, got norm {nv}")
    y = np.asarray(y, dtype=float)
    u = y @ v
    sq = np.einsum("...d,...d->...", y, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 0.5 * (r - d - 1) * np.log(u) - r * sq / (2.0 * u)
    return np.where(u > 0, out, -np.inf)


def support_violation_probability(*, rho: float, r: int) -> float:
    """``δ_supp(ρ, r) = E_{x~χ²_r}[Φ(−ρ√x/√(1−ρ²))] = F_{t_r}(−ρ√r/√(1−ρ²))`` (docs/theory.md §2, fact 1):
    the probability that ``MV'`` falls outside the support ``{y : Vᵀy > 0}`` of ``MV``."""
    rho = check_real("rho", rho, lo=-1.0, hi=1.0, lo_open=True, hi_open=True)
    r = check_int("r", r, minimum=1)
    return float(stats.t.cdf(-rho * math.sqrt(r) / math.sqrt(1.0 - rho * rho), r))


def likelihood_ratio_score(
    y: np.ndarray,
    pair: NeighbouringPair,
    *,
    mechanism: str,
    r: int,
    sigma: float = 0.0,
    a: np.ndarray | None = None,
    projection: str = "fresh",
) -> np.ndarray:
    """Exact ``log p_in(Y) − log p_out(Y)`` (clipped to ±1e300) where it is tractable:

    - ``noise_free`` vector query (``columns == 1``, unit columns): density of docs/theory.md §2 — ``A`` not used.
      With a fixed projection all releases are identical, so only the first counts.
    - ``m1`` given ``A``: ``Y_t ~ N(M_t V, σ²)``.
    - ``m2`` given ``A``: ``A_tY_t = K_t·A_t(V + E)``, ``K_t = A_tA_tᵀ``, so ``X_t = K_t⁻¹A_tY_t ~ N(A_tV, σ²K_t)``
      per column (docs/theory.md §4.1); sensitivity after whitening ``‖P_A ΔV‖_F``.
    """
    mechanism = check_choice("mechanism", mechanism, _MECHANISMS)
    projection = check_choice("projection", projection, _PROJECTIONS)
    r = check_int("r", r, minimum=1, maximum=pair.d)
    y = _as_batch(y, pair)
    if mechanism == "noise_free":
        if pair.columns != 1:
            raise ValueError(
                f"the noise-free likelihood ratio is implemented for the vector query (columns == 1), got "
                f"columns={pair.columns}; for matrix queries use 'symmetry' or 'reconstruction' (supports differ)"
            )
        yy = y[:, :1] if projection == "fixed" else y
        lp_in = vector_query_log_density(yy[..., 0], pair.v_in[:, 0], r=r)
        lp_out = vector_query_log_density(yy[..., 0], pair.v_out[:, 0], r=r)
        with np.errstate(invalid="ignore"):
            llr = np.where(
                np.isneginf(lp_out), np.inf, np.where(np.isneginf(lp_in), -np.inf, lp_in - lp_out)
            )
        # any release outside one support decides; -inf wins over +inf only if both occur (impossible)
        total = np.sum(np.where(np.isfinite(llr), llr, 0.0), axis=1)
        total = np.where(np.any(llr == np.inf, axis=1), _SCORE_CAP, total)
        total = np.where(np.any(llr == -np.inf, axis=1), -_SCORE_CAP, total)
        return total
    sigma = check_real("sigma", sigma, lo=0.0, lo_open=True)
    if a is None:
        raise ValueError(
            f"the likelihood ratio for {mechanism!r} needs the projections A (threat model knows_projection=True); "
            "without A the density of a Wishart-projected Gaussian is not tractable — use 'correlation'"
        )
    a = np.asarray(a, dtype=float)
    n, t = y.shape[:2]
    if a.ndim != 4 or a.shape[0] != n or a.shape[1] not in (1, t) or a.shape[3] != pair.d:
        raise ValueError(f"A must have shape ({n}, {t} or 1, r, {pair.d}), got {a.shape}")
    a = np.broadcast_to(a, (n, t) + a.shape[2:])
    at = np.swapaxes(a, -1, -2)
    if mechanism == "m1":
        mv_in = at @ (a @ pair.v_in)
        mv_out = at @ (a @ pair.v_out)
        q_out = np.sum((y - mv_out) ** 2, axis=(-2, -1))
        q_in = np.sum((y - mv_in) ** 2, axis=(-2, -1))
    else:
        k = a @ at  # (n, T, r, r)
        x = np.linalg.solve(k, a @ y)  # A(V + E)
        d_in = x - a @ pair.v_in
        d_out = x - a @ pair.v_out
        q_in = np.sum(d_in * np.linalg.solve(k, d_in), axis=(-2, -1))
        q_out = np.sum(d_out * np.linalg.solve(k, d_out), axis=(-2, -1))
    return np.sum(q_out - q_in, axis=1) / (2.0 * sigma * sigma)


def correlation_score(y: np.ndarray, pair: NeighbouringPair) -> np.ndarray:
    """``Σ_t ⟨Y_t − (V_in + V_out)/2, V_in − V_out⟩`` — uses only ``E[M] = I``; needs no ``A``."""
    y = _as_batch(y, pair)
    mid = 0.5 * (pair.v_in + pair.v_out)
    diff = pair.v_in - pair.v_out
    return np.einsum("ntdm,dm->n", y - mid, diff)


# --------------------------------------------------------------------------------------------------
# Accountant for the same mechanism and threat model.


def accountant_epsilon(
    *,
    mechanism: str,
    projection: str,
    d: int,
    r: int,
    sigma: float,
    sensitivity: float,
    releases: int,
    delta: float,
    difference_rank: int = 1,
) -> dict[str, Any]:
    """ε that an accountant certifies for exactly this release (sampling rate 1, ``releases`` rounds).

    Returns ``{"epsilon": float | None, "epsilon_plain": float | None, "accountant": str, "note": str}``.

    - ``m2`` (noise, then project): ``noise_multiplier = sigma / sensitivity``. ``fresh`` →
      ``lowrankdp.accounting.epsilon(projection="fresh")`` (docs/theory.md §4.3), valid with ``A`` published
      and any ``ΔV`` with ``‖ΔV‖_F ≤ sensitivity`` independent of ``A``; ``fixed`` →
      ``projection="fixed"`` (§4.4) when ``ΔV`` has rank one (its assumption), else the plain Gaussian.
      ``epsilon_plain`` is the plain Gaussian (no credit for the projection; valid for any ``A``, ``ΔV``).
    - ``m1`` and ``noise_free``: ``None`` — no accountant applies (see the note).
    """
    mechanism = check_choice("mechanism", mechanism, _MECHANISMS)
    projection = check_choice("projection", projection, _PROJECTIONS)
    d = check_int("d", d, minimum=1)
    r = check_int("r", r, minimum=1, maximum=d)
    sigma = check_real("sigma", sigma, lo=0.0)
    sensitivity = check_real("sensitivity", sensitivity, lo=0.0)
    releases = check_int("releases", releases, minimum=1)
    delta = check_real("delta", delta, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    if mechanism == "noise_free":
        return {
            "epsilon": None,
            "epsilon_plain": None,
            "accountant": None,
            "note": "noise-free release: no accountant; [LRP] Thm 2: a matrix query admits no (ε, δ) with δ < 1 "
            "(the vector query is (ε, δ)-DP only on aligned datasets, [LRP] Thm 1 / lowrankdp.wishart)",
        }
    if mechanism == "m1":
        return {
            "epsilon": None,
            "epsilon_plain": None,
            "accountant": None,
            "note": "M1 (project, then noise): no accountant in lowrankdp covers it — the sensitivity "
            "‖AᵀAΔV‖_F is unbounded over A, and the noise is added after the projection",
        }
    if sensitivity == 0.0:
        return {"epsilon": 0.0, "epsilon_plain": 0.0, "accountant": "trivial", "note": "ΔV = 0: identical outputs"}
    z = sigma / sensitivity
    acc_projection = projection
    note = (
        f"M2 = Gaussian mechanism given A with sensitivity ‖P_A ΔV‖_F (docs/theory.md §4.1); noise multiplier "
        f"z = σ/‖ΔV‖_F = {z:.6g}; sampling rate 1, {releases} release(s), add/remove accounting at "
        f"sensitivity ‖ΔV‖_F; valid with A published."
    )
    if projection == "fixed" and difference_rank > 1:
        acc_projection = "none"
        note += " ΔV has rank > 1, outside the fixed-projection assumption: plain Gaussian accountant used."
    from .. import accounting as _acc

    kwargs = dict(noise_multiplier=z, sampling_rate=1.0, steps=releases, delta=delta)
    eps_plain = float(_acc.epsilon(**kwargs, projection="none"))
    if acc_projection == "none":
        eps = eps_plain
    else:
        eps = float(_acc.epsilon(**kwargs, d=d, r=r, projection=acc_projection))
        if acc_projection == "fixed":
            note += " " + _acc.FIXED_PROJECTION_ASSUMPTION
    name = f"lowrankdp.accounting (rdp, projection={acc_projection!r})"
    return {"epsilon": eps, "epsilon_plain": eps_plain, "accountant": name, "note": note, "noise_multiplier": z}


# --------------------------------------------------------------------------------------------------
# End-to-end attack.


_SIGMA_MIN, _SIGMA_MAX = 1e-6, 1e6


@dataclass(frozen=True)
class MatrixAttackConfig:
    """One membership attack on the matrix mechanism. Validated on construction (``ValueError`` naming the field)."""

    d: int
    r: int
    columns: int = 2
    mechanism: str = "noise_free"
    sigma: float = 0.0
    projection: str = "fresh"
    releases: int = 1
    distinguisher: str = "symmetry"
    threat: ThreatModel = field(default_factory=ThreatModel)
    kind: str = "column"
    rho: float = 0.0
    trials: int = 2000
    delta: float = 1e-5
    seed: int = 0
    n_bootstrap: int = 200

    def __post_init__(self) -> None:
        d = check_int("d", self.d, minimum=2)
        r = check_int("r", self.r, minimum=1, maximum=d)
        columns = check_int("columns", self.columns, minimum=1)
        mechanism = check_choice("mechanism", self.mechanism, _MECHANISMS)
        sigma = check_real("sigma", self.sigma, lo=0.0)
        projection = check_choice("projection", self.projection, _PROJECTIONS)
        releases = check_int("releases", self.releases, minimum=1)
        dist = check_choice("distinguisher", self.distinguisher, _DISTINGUISHERS)
        kind = check_choice("kind", self.kind, _KINDS)
        rho = check_real("rho", self.rho, lo=-1.0, hi=1.0, lo_open=True, hi_open=True)
        trials = check_int("trials", self.trials, minimum=2)
        delta = check_real("delta", self.delta, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        seed = check_int("seed", self.seed, minimum=0)
        n_bootstrap = check_int("n_bootstrap", self.n_bootstrap, minimum=0)
        if not isinstance(self.threat, ThreatModel):
            raise ValueError(f"threat must be a ThreatModel, got {self.threat!r}")
        if mechanism == "noise_free" and sigma != 0.0:
            raise ValueError(f"sigma must be 0 for mechanism 'noise_free', got {sigma} (use 'm1' or 'm2')")
        if mechanism != "noise_free" and sigma == 0.0:
            raise ValueError(f"sigma must be > 0 for mechanism {mechanism!r}, got 0 (use 'noise_free')")
        if mechanism != "noise_free" and not (_SIGMA_MIN <= sigma <= _SIGMA_MAX):
            # The query's columns are unit vectors (sensitivity ≤ 2): outside this range σ² under/overflows in
            # the likelihood ratio and the accountant, and the answer is already that of the limit.
            raise ValueError(f"sigma must be in [{_SIGMA_MIN:g}, {_SIGMA_MAX:g}] for mechanism {mechanism!r} "
                             f"(0 = noise-free), got {sigma:g}")
        for name, value in dict(d=d, r=r, columns=columns, mechanism=mechanism, sigma=sigma, projection=projection,
                                releases=releases, distinguisher=dist, kind=kind, rho=rho, trials=trials,
                                delta=delta, seed=seed, n_bootstrap=n_bootstrap).items():
            object.__setattr__(self, name, value)
        self.check_threat_model()
        if dist == "symmetry" and columns < 2:
            raise ValueError(f"columns must be >= 2 for the symmetry test, got {columns}")
        if dist == "reconstruction" and columns < r + 1:
            raise ValueError(f"columns must be >= r + 1 = {r + 1} for the reconstruction test, got {columns}")
        if dist == "likelihood_ratio" and mechanism == "noise_free" and columns != 1:
            raise ValueError(
                f"columns must be 1 for the noise-free likelihood ratio (vector query), got {columns}; "
                "use 'symmetry' or 'reconstruction' for matrix queries"
            )
        if dist == "likelihood_ratio" and mechanism == "noise_free" and kind != "column":
            raise ValueError("kind must be 'column' for the noise-free likelihood ratio (unit-norm v and v')")

    def check_threat_model(self) -> None:
        """Raise ``ValueError`` if the distinguisher uses knowledge the threat model does not grant."""
        t = self.threat
        if not t.knows_other_records:
            raise ValueError(
                f"distinguisher {self.distinguisher!r} needs threat.knows_other_records=True (it compares the "
                "two candidate queries V_in and V_out, built from the other records); an attacker without "
                "them is not modelled here"
            )
        if not t.knows_initial_weights:
            raise ValueError(
                "threat.knows_initial_weights=False is not modelled by the matrix attacks: the release is the "
                "update Y = MV (initial weights subtracted)"
            )
        if self.distinguisher == "likelihood_ratio" and self.mechanism != "noise_free" and not t.knows_projection:
            raise ValueError(
                f"distinguisher 'likelihood_ratio' on {self.mechanism!r} needs threat.knows_projection=True "
                "(the output is Gaussian only given A); use 'correlation' when A is unknown"
            )

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("d", "r", "columns", "mechanism", "sigma", "projection", "releases",
                                              "distinguisher", "kind", "rho", "trials", "delta", "seed",
                                              "n_bootstrap")}
        out["threat"] = self.threat.to_dict()
        return out


@dataclass(frozen=True, eq=False)
class MatrixAttackResult:
    config: MatrixAttackConfig
    scores_in: np.ndarray = field(repr=False)
    scores_out: np.ndarray = field(repr=False)
    report: Any  # lowrankdp.metrics.AttackReport
    accountant: dict[str, Any]
    sensitivity: float
    seconds: float

    @property
    def auc(self) -> float:
        return self.report.auc

    @property
    def epsilon_accountant(self) -> float | None:
        return self.accountant["epsilon"]

    def to_dict(self) -> dict[str, Any]:
        rep = self.report.to_dict()
        return {
            **attack_fields("matrix", rep, self.accountant),
            "epsilon_accountant_plain": self.accountant.get("epsilon_plain"),
            "noise_multiplier": self.accountant.get("noise_multiplier"),
            "sensitivity": self.sensitivity,
            "config": self.config.to_dict(),
            "seconds": self.seconds,
            "roc": rep["roc"],
        }


def _chunk_size(cfg: MatrixAttackConfig) -> int:
    t_a = cfg.releases if cfg.projection == "fresh" else 1
    per_trial = cfg.r * cfg.d * t_a + 3 * cfg.releases * cfg.d * cfg.columns
    return max(1, min(cfg.trials, int(4e6 // per_trial)))


def score_batch(cfg: MatrixAttackConfig, pair: NeighbouringPair, y: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Scores of the configured distinguisher on one simulated batch (``A`` passed on only if the threat
    model grants it)."""
    dist = cfg.distinguisher
    if dist == "symmetry":
        return symmetry_score(y, pair)
    if dist == "reconstruction":
        return reconstruction_score(y, pair, r=cfg.r)
    if dist == "correlation":
        return correlation_score(y, pair)
    return likelihood_ratio_score(
        y, pair, mechanism=cfg.mechanism, r=cfg.r, sigma=cfg.sigma,
        a=a if cfg.threat.knows_projection else None, projection=cfg.projection,
    )


def _side_scores(cfg: MatrixAttackConfig, pair: NeighbouringPair, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty(cfg.trials)
    step = _chunk_size(cfg)
    for lo in range(0, cfg.trials, step):
        n = min(step, cfg.trials - lo)
        y, a = simulate_releases(v, mechanism=cfg.mechanism, r=cfg.r, sigma=cfg.sigma, releases=cfg.releases,
                                 projection=cfg.projection, n=n, rng=rng)
        out[lo:lo + n] = score_batch(cfg, pair, y, a)
    return np.clip(out, -_SCORE_CAP, _SCORE_CAP)


def run_matrix_attack(cfg: MatrixAttackConfig, *, pair: NeighbouringPair | None = None) -> MatrixAttackResult:
    """Simulate ``cfg.trials`` releases per side (members: ``V_in``; non-members: ``V_out``), score them with
    the configured distinguisher, and report AUC / TPR@FPR / certified ε lower bound next to the accountant's ε."""
    from ..metrics import attack_report

    if not isinstance(cfg, MatrixAttackConfig):
        raise ValueError(f"cfg must be a MatrixAttackConfig, got {type(cfg).__name__}")
    if pair is None:
        pair = neighbouring_pair(d=cfg.d, columns=cfg.columns, kind=cfg.kind, rho=cfg.rho, seed=cfg.seed)
    elif pair.v_in.shape != (cfg.d, cfg.columns):
        raise ValueError(f"pair must have shape ({cfg.d}, {cfg.columns}), got {pair.v_in.shape}")
    t0 = time.perf_counter()
    rng_in, rng_out = (np.random.default_rng(s) for s in np.random.SeedSequence([cfg.seed, 4]).spawn(2))
    s_in = _side_scores(cfg, pair, pair.v_in, rng_in)
    s_out = _side_scores(cfg, pair, pair.v_out, rng_out)
    seconds = time.perf_counter() - t0
    report = attack_report(s_in, s_out, n_bootstrap=cfg.n_bootstrap, delta=cfg.delta, seed=cfg.seed)
    acc = accountant_epsilon(mechanism=cfg.mechanism, projection=cfg.projection, d=cfg.d, r=cfg.r, sigma=cfg.sigma,
                             sensitivity=pair.sensitivity, releases=cfg.releases, delta=cfg.delta,
                             difference_rank=max(pair.difference_rank, 1))
    return MatrixAttackResult(cfg, s_in, s_out, report, acc, pair.sensitivity, seconds)
