"""Notebook calculators: ``epsilon``, ``calibrate_noise``, ``epsilon_report``.

DP-SGD setting: Poisson sampling at rate ``q``, ``T`` steps, clipping norm ``C`` and noise ``z·C``.
``projection`` selects how the update is compressed (docs/theory.md §4):

* ``"none"`` — plain DP-SGD (sampled Gaussian, [MTZ19]);
* ``"fresh"`` — a new rank-``r`` random projection every step (§4.3);
* ``"fixed"`` — one projection for all steps (§4.4; see :data:`FIXED_PROJECTION_ASSUMPTION`);
* ``"high_probability"`` — the §4.5 baseline (one projection; ``δ_M`` chosen from a fixed grid).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from .._validate import check_choice, check_int, check_probability, check_real
from .events import (
    FIXED_PROJECTION_ASSUMPTION,
    FRESH_PLD_ASSUMPTION,
    FRESH_PROJECTION_ASSUMPTION,
    HIGH_PROBABILITY_ASSUMPTION,
    DpEvent,
    FixedProjectionEvent,
    FreshProjectedGaussianEvent,
    GaussianEvent,
    HighProbabilityProjectionEvent,
    PoissonSampledEvent,
    SelfComposedEvent,
    UnsupportedEventError,
)
from .rdp import NEIGHBORING_RELATIONS, OrderGridWarning, RdpAccountant

__all__ = ["PROJECTIONS", "ACCOUNTANTS", "EpsilonResult", "dpsgd_event", "epsilon", "epsilon_result",
           "calibrate_noise", "epsilon_report", "gaussian_limit_epsilon"]

PROJECTIONS = ("none", "fresh", "fixed", "high_probability")
ACCOUNTANTS = ("rdp", "pld")
ASSUMPTIONS = {
    "none": None,
    "fresh": FRESH_PROJECTION_ASSUMPTION,
    "fixed": FIXED_PROJECTION_ASSUMPTION,
    "high_probability": HIGH_PROBABILITY_ASSUMPTION,
}


def _validate(noise_multiplier, sampling_rate, steps, delta, d, r, projection, accountant, neighboring,
              span_dim=1):
    z = check_real("noise_multiplier", noise_multiplier, lo=0.0, allow_inf=True)
    q = check_probability("sampling_rate", sampling_rate, open_left=False, open_right=False)
    t = check_int("steps", steps, minimum=0)
    dl = check_real("delta", delta, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    proj = check_choice("projection", projection, PROJECTIONS)
    acc = check_choice("accountant", accountant, ACCOUNTANTS)
    nb = check_choice("neighboring", neighboring, NEIGHBORING_RELATIONS)
    check_int("span_dim", span_dim, minimum=1)
    if proj != "none" and (d is None or r is None):
        raise ValueError(f"projection={proj!r} needs both d and r, got d={d!r}, r={r!r}")
    if d is not None or r is not None:
        if d is None or r is None:
            raise ValueError(f"d and r must be given together, got d={d!r}, r={r!r}")
        FreshProjectedGaussianEvent(1.0, d, r)  # validates d (int or list) and 1 <= r <= min(d), naming them
    return z, q, t, dl, proj, acc, nb


# ---------------------------------------------------------------------------------------------------
# Degenerate-case ladder: every mechanism here is dominated by ONE Gaussian mechanism with
# μ = s·√T/z (s = 1 add/remove, 2 replace-one). Reasons: given A, a projected step has sensitivity
# ≤ s·√b ≤ s; a Poisson-sampled pair (qP + (1−q)Q, Q) is a post-processing of (P, Q) (keep the draw with
# probability q, else replace it by a fresh draw from Q); T adaptive μ_t-GDP steps compose to √(Σμ_t²)-GDP
# (Dong, Roth & Su, arXiv:1905.02383v3, Cor 3.3); mixing over a public or hidden A cannot increase a
# hockey-stick divergence. A μ-GDP mechanism is (ε, δ(ε))-DP with
# δ(ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2) (same paper, Cor 2.13), so ε = 0 exactly when
# δ ≥ δ(0) = 2Φ(μ/2) − 1 (the total variation). Outside 1e−8 ≤ μ ≤ 1e3 we use the zCDP conversion
# ε ≤ ρ + 2√(ρ log(1/δ)), ρ = μ²/2 (Bun & Steinke, arXiv:1605.02065v3, Prop 1.3 and 1.6).
# ---------------------------------------------------------------------------------------------------
_RDP_Z_RANGE = (1e-100, 1e100)  # outside: the Gaussian limit is returned (the RDP curves would under/overflow)


def gaussian_limit_epsilon(*, noise_multiplier: float, steps: int, delta: float,
                           neighboring: str = "add_remove") -> float:
    """ε of the dominating Gaussian mechanism ``μ = s√T/z`` (an upper bound for every projection and ``q``).

    Exactly ``0`` when ``δ ≥ 2Φ(μ/2) − 1``; the exact μ-GDP ε (bisection, kept on the safe side of the
    evaluated ``δ(ε)`` with its rounding error) for ``1e−8 ≤ μ ≤ 1e3``; the zCDP bound otherwise.
    """
    z = check_real("noise_multiplier", noise_multiplier, lo=0.0, allow_inf=True)
    t = check_int("steps", steps, minimum=0)
    dl = check_real("delta", delta, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    nb = check_choice("neighboring", neighboring, NEIGHBORING_RELATIONS)
    if t == 0 or math.isinf(z):
        return 0.0
    if z == 0:
        return math.inf
    log_mu = math.log(2.0 if nb == "replace_one" else 1.0) + 0.5 * math.log(t) - math.log(z)
    if log_mu > 700:
        return math.inf
    mu = math.exp(log_mu)
    if mu == 0.0 or special.erf(mu / (2 * math.sqrt(2.0))) * (1 + 1e-12) <= dl:
        return 0.0  # total variation ≤ δ: (0, δ)-DP, exactly
    log_inv_d = -math.log(dl)
    zcdp = mu * mu / 2 + mu * math.sqrt(2 * log_inv_d)
    if not (1e-8 <= mu <= 1e3):
        return float(np.nextafter(zcdp, np.inf))

    eps_m = float(np.finfo(float).eps)

    def excess(e: float) -> float:  # δ(ε) − δ plus a bound on its rounding error (so "≤ 0" is safe)
        a, b = -e / mu + mu / 2, -e / mu - mu / 2
        lb = special.log_ndtr(b)
        p1 = special.ndtr(a)
        p2 = math.exp(e + lb)
        # relative error of Φ(x) from a rounded argument is ≈ |x|·|Δx| (Mills ratio), |Δx| ≤ 4 eps (|ε/μ| + μ/2);
        # plus the special functions' own few-ulp errors and exp's argument error (|ε| + |log Φ(b)|)·eps
        cond = (abs(a) + abs(b) + 2) * (e / mu + mu / 2 + 1)
        rel = 64 * eps_m * (1 + cond + abs(lb) + e)
        return (p1 - p2) + rel * (p1 + p2) - dl

    lo, hi = 0.0, zcdp
    if excess(hi) > 0:
        return float(np.nextafter(zcdp, np.inf))
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if excess(mid) <= 0:
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-12 * hi:
            break
    return float(np.nextafter(min(hi, zcdp), np.inf))


@dataclass(frozen=True)
class EpsilonResult:
    """ε with where it came from: ``source`` is the accountant that gave the smallest valid value
    (``"rdp"``, ``"pld"``, ``"gaussian_limit"`` or ``"exact"`` — nothing released / z = 0 or ∞); ``kind`` is
    ``"bound"`` (an upper bound, up to the stated assumptions) or ``"estimate"`` (a Monte Carlo value)."""

    epsilon: float
    source: str
    kind: str = "bound"
    best_order: float | None = None
    candidates: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    notes: tuple = ()


def dpsgd_event(*, noise_multiplier: float, sampling_rate: float, steps: int, d=None, r: int | None = None,
                projection: str = "none", span_dim: int = 1) -> DpEvent:
    """The event describing ``steps`` Poisson-sampled DP-SGD steps with the chosen projection."""
    proj = check_choice("projection", projection, PROJECTIONS)
    g = GaussianEvent(noise_multiplier)
    if proj == "fresh":
        return SelfComposedEvent(PoissonSampledEvent(sampling_rate, FreshProjectedGaussianEvent(
            noise_multiplier, d, r, span_dim=span_dim)), steps)
    plain = SelfComposedEvent(PoissonSampledEvent(sampling_rate, g), steps)
    if proj == "none":
        return plain
    if proj == "fixed":
        return FixedProjectionEvent(plain, d, r, span_dim=span_dim)
    return HighProbabilityProjectionEvent(plain, d, r)


def _accountant(accountant: str, neighboring: str):
    if accountant == "rdp":
        return RdpAccountant(neighboring=neighboring)
    from .pld import PldAccountant

    return PldAccountant(neighboring=neighboring)


def epsilon_result(*, noise_multiplier: float, sampling_rate: float, steps: int, delta: float, d=None,
                   r: int | None = None, projection: str = "none", accountant: str = "rdp",
                   neighboring: str = "add_remove", span_dim: int = 1,
                   pld_interval: float = 1e-4, pld_buckets: int = 128) -> EpsilonResult:
    """The smallest valid ε among the RDP accountant, the PLD accountant (``accountant="pld"``, where it
    supports the event; discretisation interval ``pld_interval``, pessimistic at any value; the fixed
    projection's b-mixture with ``pld_buckets`` buckets, an upper bound at any count) and the Gaussian
    limit, with the source and the kind (bound / estimate)."""
    z, q, t, dl, proj, acc, nb = _validate(noise_multiplier, sampling_rate, steps, delta, d, r, projection,
                                           accountant, neighboring, span_dim)
    if t == 0 or q == 0 or math.isinf(z):
        return EpsilonResult(0.0, "exact", notes=("nothing is released (steps = 0, q = 0 or z = inf)",))
    if z == 0:
        return EpsilonResult(math.inf, "exact", notes=("z = 0: no noise",))
    cands: dict = {}
    notes: list = []
    details: dict = {}
    order = None
    g = gaussian_limit_epsilon(noise_multiplier=z, steps=t, delta=dl, neighboring=nb)
    cands["gaussian_limit"] = g
    if g > 0 and _RDP_Z_RANGE[0] <= z <= _RDP_Z_RANGE[1]:
        ev = dpsgd_event(noise_multiplier=z, sampling_rate=q, steps=t, d=d, r=r, projection=proj, span_dim=span_dim)
        racc = RdpAccountant(neighboring=nb)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", OrderGridWarning)
            cands["rdp"], order = racc.compose(ev).get_epsilon_and_order(dl)
        for w in caught:
            if issubclass(w.category, OrderGridWarning):
                notes.append(str(w.message))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        details = {k: v for k, v in racc.details.items() if k in ("delta_M", "fixed_truncation", "fixed_law",
                                                                   "fresh_truncation",
                                                                   "high_probability_q_M", "orders_evaluated")}
        if acc == "pld":
            from .pld import PldAccountant

            pacc = PldAccountant(neighboring=nb, value_discretization_interval=pld_interval)
            if proj == "fixed" and t * pld_interval > 100 * cands["rdp"]:
                # pessimistic discretisation drifts by up to one interval per step: far past the RDP value the PLD
                # cannot win and its composition grows with T (z = 1e5, T = 1e8: 205 s for one bucket)
                notes.append(f"fixed-projection PLD skipped: steps x interval = {t * pld_interval:.3g} exceeds "
                             f"100 x the RDP epsilon {cands['rdp']:.3g} (discretisation drift); the RDP value is "
                             "reported")
            elif proj == "fixed":
                from .pld import fixed_projection_pld_epsilon

                cands["pld"], fdet = fixed_projection_pld_epsilon(ev, dl, neighboring=nb,
                                                                  value_discretization_interval=pld_interval,
                                                                  buckets=pld_buckets)
                details.update(fdet)
                if fdet.get("fixed_pld_time_limited"):
                    notes.append(f"fixed-projection PLD: {fdet['fixed_pld_buckets']} buckets of b instead of "
                                 f"{pld_buckets} (time limit; still an upper bound, less tight)")
            elif pacc.supports(ev):
                cands["pld"] = float(pacc.compose(ev).get_epsilon(dl, rdp_hint=cands["rdp"]))
                if pacc.notes:
                    notes.extend(pacc.notes)
            else:
                try:
                    pacc.compose(ev)
                except UnsupportedEventError as exc:
                    notes.append(str(exc))
    elif g > 0:
        notes.append(f"z = {z:g} is outside [{_RDP_Z_RANGE[0]:g}, {_RDP_Z_RANGE[1]:g}]: the Gaussian limit "
                     "(mu = sqrt(T)/z, every projection and q dominated by it) is reported")
    if details.get("fresh_truncation") is not None:
        notes.append(f"fresh projection, RDP: truncated moment (docs/theory.md §4.8), b_t <= "
                     f"{details['fresh_truncation']:.4g} at every step, delta_M = {details['delta_M']:.3g} of delta "
                     f"spent on the union over the {t} steps; assumes span_dim={span_dim}")
    src = min(cands, key=lambda k: (cands[k], k != "rdp"))
    if cands[src] == 0.0:
        src = "gaussian_limit" if g == 0.0 else src
    return EpsilonResult(float(cands[src]), src, "bound", order if src == "rdp" else None, cands, details,
                         tuple(notes))


def epsilon(*, noise_multiplier: float, sampling_rate: float, steps: int, delta: float, d=None,
            r: int | None = None, projection: str = "none", accountant: str = "rdp",
            neighboring: str = "add_remove", span_dim: int = 1) -> float:
    """ε after ``steps`` DP-SGD steps at noise multiplier ``z`` and Poisson rate ``q``, for target ``delta``.

    ``d`` (int or list of layer dimensions; the worst case is used) and ``r`` are required for every
    projection other than ``"none"``. ``span_dim``: how many directions the projected side of one example's
    gradient spans (tokens per record for a weight matrix projected on its input side). Fixed projection:
    ``k + r > d`` leaves no amplification. Fresh projection: the ₁F₁ bound holds for any span; the tighter
    truncated moment (docs/theory.md §4.8) and the PLD use ``span_dim`` (default one: rank one).
    ``accountant="pld"`` adds the PLD accountant for ``"none"``, ``"fresh"`` and ``"fixed"`` (fixed: the
    mixture over the shared b of exact plain-run PLDs, both relations; ``"high_probability"``: RDP only).
    Returns the smallest valid upper bound among the accountants and the Gaussian limit
    (:func:`epsilon_result` says which); ε = 0 only when the mechanism is exactly (0, δ)-DP. The fixed
    projection holds under :data:`FIXED_PROJECTION_ASSUMPTION`.
    """
    return epsilon_result(noise_multiplier=noise_multiplier, sampling_rate=sampling_rate, steps=steps, delta=delta,
                          d=d, r=r, projection=projection, accountant=accountant, neighboring=neighboring,
                          span_dim=span_dim).epsilon


def calibrate_noise(*, target_epsilon: float, sampling_rate: float, steps: int, delta: float, d=None,
                    r: int | None = None, projection: str = "none", accountant: str = "rdp",
                    neighboring: str = "add_remove", span_dim: int = 1,
                    max_noise_multiplier: float | None = None, time_limit_s: float | None = None) -> float:
    """Smallest noise multiplier (to a relative 1e−4 for RDP, 1e−3 for PLD) whose ε meets ``target_epsilon``.

    The search starts from a noise that meets the target, halves it until the target is missed, then runs
    Illinois steps on log z keeping the invariant ``ε(z_hi) ≤ target``; the returned ``z_hi`` is re-checked with
    :func:`epsilon` at its default settings and never overshoots. Returns ``0.0`` when nothing is released
    (``steps = 0`` or ``q = 0``). With ``max_noise_multiplier``, a target that needs more noise raises
    ``ValueError`` naming ``target_epsilon`` and the smallest ε reachable with that much noise.

    ``accountant="pld"``: the RDP answer first (fast, at most 30 % of the time limit), then a PLD search below it
    at a 10× coarser discretisation interval (pessimistic, so still an upper bound; the fixed projection with 32
    buckets), then one check at :func:`epsilon`'s default settings (the fixed projection: at the search's own
    settings, a valid upper bound at any setting); if that check fails or time runs out, the RDP answer is
    returned. ``time_limit_s`` (default: none for RDP, 10 s for PLD) covers all of it; whatever it stops, the
    noise returned meets the target (it is then less tight).
    """
    target = check_real("target_epsilon", target_epsilon, lo=0.0, lo_open=True)
    if time_limit_s is None:
        time_limit_s = 10.0 if accountant == "pld" else math.inf
    time_limit_s = check_real("time_limit_s", time_limit_s, lo=0.0, lo_open=True, allow_inf=True)
    deadline = time.monotonic() + time_limit_s
    _, q, t, dl, proj, acc, nb = _validate(1.0, sampling_rate, steps, delta, d, r, projection, accountant,
                                           neighboring, span_dim)
    if max_noise_multiplier is not None:
        max_noise_multiplier = check_real("max_noise_multiplier", max_noise_multiplier, lo=0.0, lo_open=True)
    if t == 0 or q == 0:
        return 0.0
    kw = dict(sampling_rate=q, steps=t, delta=dl, d=d, r=r, projection=proj, accountant=acc, neighboring=nb,
              span_dim=span_dim)
    # z at which the zCDP form of the Gaussian limit equals the target: an upper end that always meets it.
    s = 2.0 if nb == "replace_one" else 1.0
    L = -math.log(dl)
    mu_star = target / (math.sqrt(2 * L + 2 * target) + math.sqrt(2 * L))  # root of μ²/2 + μ√(2L) = target
    z_cap = float(np.nextafter(s * math.sqrt(t) / mu_star, np.inf))
    if max_noise_multiplier is not None and z_cap > max_noise_multiplier:
        e_max = epsilon(noise_multiplier=max_noise_multiplier, **kw)
        if e_max > target:
            raise ValueError(
                f"target_epsilon={target} cannot be met with noise_multiplier <= {max_noise_multiplier:g} "
                f"(steps={t}, sampling_rate={q}, delta={dl}): the smallest epsilon reachable there is {e_max:.6g}")
        z_cap = max_noise_multiplier
    if acc == "pld":
        return _calibrate_pld(target, kw, z_cap, deadline, time_limit_s)
    search = _NoiseSearch(lambda z: epsilon(noise_multiplier=z, **kw), target, deadline, rel=1e-4)
    z_hi = search.run(min(1.0, z_cap), z_cap)
    # the value the search kept is epsilon() at its default settings (deterministic), so it is the re-check
    final = search.values.get(z_hi)
    if final is None:
        final = epsilon(noise_multiplier=z_hi, **kw)
    if not final <= target:  # pragma: no cover - defensive, the invariant guarantees it
        raise RuntimeError(f"calibration failed: eps({z_hi}) = {final} > {target}")
    return z_hi


def _calibrate_pld(target: float, kw: dict, z_cap: float, deadline: float, limit: float) -> float:
    """The PLD branch of :func:`calibrate_noise` (its docstring): RDP answer, coarse PLD search, one check."""
    from .pld import PldAccountant

    rdp_limit = max(0.3 * limit, 1e-3) if math.isfinite(limit) else math.inf
    z_rdp = calibrate_noise(target_epsilon=target, **{**kw, "accountant": "rdp"}, max_noise_multiplier=z_cap,
                            time_limit_s=rdp_limit)
    proj, nb = kw["projection"], kw["neighboring"]
    rdp_kw = {**kw, "accountant": "rdp"}
    # the final check's cost in coarse steps: the fixed projection re-checks at the search's own settings (one
    # step); the others at epsilon()'s default, 10× finer interval (measured up to 6–8 coarse steps)
    reserve = 1.0 if proj == "fixed" else 6.0
    if proj == "fixed":
        def coarse(z: float) -> float:
            return epsilon_result(noise_multiplier=z, pld_interval=1e-3, pld_buckets=32, **kw).epsilon

        def check(z: float) -> float:  # the fixed-projection PLD is time-limited: re-checked at the search settings
            return coarse(z)
    else:
        def event_at(z: float):
            return dpsgd_event(noise_multiplier=z, sampling_rate=kw["sampling_rate"], steps=kw["steps"], d=kw["d"],
                               r=kw["r"], projection=proj, span_dim=kw["span_dim"])

        if not PldAccountant(neighboring=nb).supports(event_at(1.0)):
            return z_rdp  # the PLD accountant adds nothing here (epsilon() reports the RDP value)

        def coarse(z: float) -> float:
            # the unprojected RDP ε (fast, ≥ the projected one since b ≤ 1) only bounds the discretisation
            hint = epsilon(noise_multiplier=z, **{**rdp_kw, "projection": "none"})
            pacc = PldAccountant(neighboring=nb, value_discretization_interval=1e-3)
            return float(pacc.compose(event_at(z)).get_epsilon(kw["delta"], rdp_hint=hint))

        def check(z: float) -> float:
            return epsilon(noise_multiplier=z, **kw)

    margin = 0.05 * limit if math.isfinite(limit) else 0.0  # the final check's time varies more than a search step's
    search = _NoiseSearch(coarse, target, deadline - margin, rel=1e-3, reserve=reserve)
    z_hi = search.run(z_rdp, z_cap, start_meets=True)
    if z_hi >= z_rdp:
        return z_rdp
    return z_hi if check(z_hi) <= target else z_rdp


class _NoiseSearch:
    """Bracketing plus Illinois (modified regula falsi) on ``f(x) = log(ε/target)``, ``x = log z``, with bisection
    when the interpolation is unusable. Invariant: ``ε(z_hi) ≤ target < ε(z_lo)``, so ``z_hi`` always meets the
    target. Stops at a relative width ``rel``, or when one more evaluation (plus ``reserve`` times one, kept
    for a final check) would pass ``deadline``."""

    def __init__(self, eps, target: float, deadline: float, *, rel: float, reserve: float = 0.0):
        self.eps, self.target, self.deadline, self.rel, self.reserve = eps, target, deadline, rel, reserve
        self.last = 0.0
        self.values: dict = {}

    def __call__(self, z: float) -> float:
        t0 = time.monotonic()
        out = self.eps(z)
        self.last = time.monotonic() - t0
        self.values[z] = out
        return out

    def out_of_time(self) -> bool:
        return time.monotonic() + self.last * (1.0 + self.reserve) > self.deadline

    def run(self, z_start: float, z_cap: float, start_meets: bool = False) -> float:
        """``z_hi``. ``start_meets``: ``z_start`` is known to meet the target (its ε is not recomputed first)."""
        target = self.target
        e_start = -math.inf if start_meets else self(z_start)
        if e_start <= target:
            z_hi, e_hi = z_start, e_start
            z_lo = z_hi / 2
            if self.out_of_time():
                return z_hi
            e_lo = self(z_lo)
            while e_lo <= target:
                z_hi, e_hi = z_lo, e_lo
                z_lo = z_lo / 2
                if z_lo < 1e-12 or self.out_of_time():
                    return z_hi
                e_lo = self(z_lo)
        else:
            z_lo, e_lo = z_start, e_start
            z_hi = min(2 * z_lo, z_cap)
            e_hi = self(z_hi)
            while e_hi > target:
                if z_hi >= z_cap:  # pragma: no cover - the Gaussian limit guarantees eps(z_cap) <= target
                    raise RuntimeError(f"calibration bracket failed: eps({z_hi}) = {e_hi} > {target}")
                z_lo, e_lo = z_hi, e_hi
                z_hi = min(2 * z_hi, z_cap)
                e_hi = self(z_hi)
        return self._illinois(z_lo, e_lo, z_hi, e_hi)

    def _illinois(self, z_lo: float, e_lo: float, z_hi: float, e_hi: float) -> float:
        target, rel = self.target, self.rel
        f_lo = math.log(e_lo / target) if math.isfinite(e_lo) else math.inf
        f_hi = math.log(e_hi / target) if 0 < e_hi < math.inf else -math.inf
        side = 0
        for _ in range(200):
            if z_hi / z_lo - 1 <= rel or self.out_of_time():
                break
            x_lo, x_hi = math.log(z_lo), math.log(z_hi)
            if math.isfinite(f_lo) and math.isfinite(f_hi) and f_lo != f_hi:
                x = x_hi - f_hi * (x_hi - x_lo) / (f_hi - f_lo)
                # stay strictly inside, at least a tenth of the tolerance away from the ends
                pad = min(0.5 * (x_hi - x_lo), 0.25 * math.log1p(rel))
                x = min(max(x, x_lo + pad), x_hi - pad)
            else:
                x = 0.5 * (x_lo + x_hi)
            z = math.exp(x)
            e = self(z)
            f = math.log(e / target) if 0 < e < math.inf else (math.inf if e == math.inf else -math.inf)
            if e <= target:
                z_hi, f_hi = z, f
                if side == +1 and math.isfinite(f_lo):
                    f_lo /= 2  # Illinois step: the stale end keeps being retained
                side = +1
            else:
                z_lo, f_lo = z, f
                if side == -1 and math.isfinite(f_hi):
                    f_hi /= 2
                side = -1
        return z_hi


def epsilon_report(*, noise_multiplier: float, sampling_rate: float, steps: int, delta: float, d=None,
                   r: int | None = None, accountant: str = "rdp", neighboring: str = "add_remove",
                   projections: tuple[str, ...] | None = None, span_dim: int = 1) -> dict:
    """ε for each projection kind, with its source, kind (bound / estimate), best order and assumption text.

    ``epsilon[proj]`` is the smallest valid value (:func:`epsilon_result`), ``source[proj]`` the accountant
    that gave it and ``kind[proj]`` is ``"bound"`` or ``"estimate"``; ``epsilon_rdp`` (and ``epsilon_pld``
    with ``accountant="pld"``, ``None`` where unsupported) keep each accountant's own value. JSON-able except
    for ``inf`` (use :func:`lowrankdp.cli.print_json`).
    """
    z, q, t, dl, _, acc, nb = _validate(noise_multiplier, sampling_rate, steps, delta, d, r, "none", accountant,
                                        neighboring, span_dim)
    if projections is None:
        projections = PROJECTIONS if (d is not None and r is not None) else ("none",)
    projections = tuple(check_choice("projections", p, PROJECTIONS) for p in projections)
    out: dict = {
        "settings": {"noise_multiplier": z, "sampling_rate": q, "steps": t, "delta": dl, "d": d, "r": r,
                     "neighboring": nb, "accountant": acc, "span_dim": span_dim},
        "epsilon": {}, "source": {}, "kind": {}, "epsilon_rdp": {}, "epsilon_pld": {},
        "epsilon_gaussian_limit": {}, "best_order": {}, "assumptions": {}, "notes": {},
    }
    for proj in projections:
        if proj != "none" and (d is None or r is None):
            raise ValueError(f"projection={proj!r} needs both d and r, got d={d!r}, r={r!r}")
        res = epsilon_result(noise_multiplier=z, sampling_rate=q, steps=t, delta=dl, d=d, r=r, projection=proj,
                             accountant=acc, neighboring=nb, span_dim=span_dim)
        out["epsilon"][proj] = res.epsilon
        out["source"][proj] = res.source
        out["kind"][proj] = res.kind
        out["epsilon_rdp"][proj] = res.candidates.get("rdp", res.epsilon if res.source == "exact" else None)
        out["epsilon_pld"][proj] = res.candidates.get("pld")
        out["epsilon_gaussian_limit"][proj] = res.candidates.get("gaussian_limit")
        out["best_order"][proj] = res.best_order
        assumption = ASSUMPTIONS[proj]
        if proj == "fresh" and "pld" in res.candidates:
            assumption = FRESH_PROJECTION_ASSUMPTION + " " + FRESH_PLD_ASSUMPTION
        out["assumptions"][proj] = assumption
        if res.notes:
            out["notes"][proj] = " ".join(res.notes)
        if proj in ("fixed", "high_probability", "fresh") and "delta_M" in res.details:
            det = {"delta_M": res.details["delta_M"]}
            if proj == "high_probability":
                det["q_M"] = res.details.get("high_probability_q_M")
            elif proj == "fresh":
                det["truncation"] = res.details.get("fresh_truncation")
            else:
                det["truncation"] = res.details.get("fixed_truncation")
                det["law"] = res.details.get("fixed_law")
            out.setdefault("details", {})[proj] = det
    if acc != "pld":
        del out["epsilon_pld"]
    return out
