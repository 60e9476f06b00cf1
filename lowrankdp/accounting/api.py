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
import warnings

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

__all__ = ["PROJECTIONS", "ACCOUNTANTS", "dpsgd_event", "epsilon", "calibrate_noise", "epsilon_report"]

PROJECTIONS = ("none", "fresh", "fixed", "high_probability")
ACCOUNTANTS = ("rdp", "pld")
ASSUMPTIONS = {
    "none": None,
    "fresh": FRESH_PROJECTION_ASSUMPTION,
    "fixed": FIXED_PROJECTION_ASSUMPTION,
    "high_probability": HIGH_PROBABILITY_ASSUMPTION,
}


def _validate(noise_multiplier, sampling_rate, steps, delta, d, r, projection, accountant, neighboring):
    z = check_real("noise_multiplier", noise_multiplier, lo=0.0, allow_inf=True)
    q = check_probability("sampling_rate", sampling_rate, open_left=False, open_right=False)
    t = check_int("steps", steps, minimum=0)
    dl = check_real("delta", delta, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    proj = check_choice("projection", projection, PROJECTIONS)
    acc = check_choice("accountant", accountant, ACCOUNTANTS)
    nb = check_choice("neighboring", neighboring, NEIGHBORING_RELATIONS)
    if proj != "none" and (d is None or r is None):
        raise ValueError(f"projection={proj!r} needs both d and r, got d={d!r}, r={r!r}")
    return z, q, t, dl, proj, acc, nb


def dpsgd_event(*, noise_multiplier: float, sampling_rate: float, steps: int, d=None, r: int | None = None,
                projection: str = "none", span_dim: int = 1) -> DpEvent:
    """The event describing ``steps`` Poisson-sampled DP-SGD steps with the chosen projection."""
    proj = check_choice("projection", projection, PROJECTIONS)
    g = GaussianEvent(noise_multiplier)
    if proj == "fresh":
        return SelfComposedEvent(PoissonSampledEvent(sampling_rate, FreshProjectedGaussianEvent(noise_multiplier, d, r)),
                                 steps)
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


def epsilon(*, noise_multiplier: float, sampling_rate: float, steps: int, delta: float, d=None,
            r: int | None = None, projection: str = "none", accountant: str = "rdp",
            neighboring: str = "add_remove") -> float:
    """ε after ``steps`` DP-SGD steps at noise multiplier ``z`` and Poisson rate ``q``, for target ``delta``.

    ``d`` (int or list of layer dimensions; the worst case is used) and ``r`` are required for every
    projection other than ``"none"``. ``accountant="pld"`` supports ``"none"`` and ``"fresh"`` only
    (a ``ValueError`` names the unsupported event otherwise). The RDP answer is an upper bound (up to
    the stated numerical errors); the fixed projection holds under :data:`FIXED_PROJECTION_ASSUMPTION`.
    """
    z, q, t, dl, proj, acc, nb = _validate(noise_multiplier, sampling_rate, steps, delta, d, r, projection,
                                           accountant, neighboring)
    if t == 0 or q == 0 or math.isinf(z):
        return 0.0
    if z == 0:
        return math.inf
    ev = dpsgd_event(noise_multiplier=z, sampling_rate=q, steps=t, d=d, r=r, projection=proj)
    return float(_accountant(acc, nb).compose(ev).get_epsilon(dl))


def calibrate_noise(*, target_epsilon: float, sampling_rate: float, steps: int, delta: float, d=None,
                    r: int | None = None, projection: str = "none", accountant: str = "rdp",
                    neighboring: str = "add_remove") -> float:
    """Smallest noise multiplier (to a relative 1e−4 for RDP, 1e−3 for PLD) whose ε meets ``target_epsilon``.

    Bisection on ``log z`` keeping the invariant ``ε(z_hi) ≤ target``; the returned ``z_hi`` is
    re-checked with a fresh accountant and never overshoots (ε(returned) ≤ target). Returns ``0.0`` when
    nothing is released (``steps = 0`` or ``q = 0``); raises ``ValueError`` if no ``z ≤ 1e4`` meets it.
    """
    target = check_real("target_epsilon", target_epsilon, lo=0.0, lo_open=True)
    _, q, t, dl, proj, acc, nb = _validate(1.0, sampling_rate, steps, delta, d, r, projection, accountant,
                                           neighboring)
    if t == 0 or q == 0:
        return 0.0
    kw = dict(sampling_rate=q, steps=t, delta=dl, d=d, r=r, projection=proj, accountant=acc, neighboring=nb)

    def eps(z: float) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OrderGridWarning)
            return epsilon(noise_multiplier=z, **kw)

    rel = 1e-4 if acc == "rdp" else 1e-3
    # Bracket [z_lo, z_hi] with eps(z_lo) > target >= eps(z_hi), in log z.
    z_hi = 1.0
    e_hi = eps(z_hi)
    if e_hi <= target:
        z_lo = z_hi / 2
        e_lo = eps(z_lo)
        while e_lo <= target:
            z_hi, e_hi = z_lo, e_lo
            z_lo = z_lo / 2
            if z_lo < 1e-6:
                return z_hi
            e_lo = eps(z_lo)
    else:
        z_lo, e_lo = z_hi, e_hi
        z_hi = 2.0
        e_hi = eps(z_hi)
        while e_hi > target:
            z_lo, e_lo = z_hi, e_hi
            z_hi *= 2
            if z_hi > 1e4:
                raise ValueError(f"target_epsilon={target} cannot be met with noise_multiplier <= 1e4")
            e_hi = eps(z_hi)
    # Illinois (modified regula falsi) on f(x) = log(eps/target), x = log z, with bisection when the
    # interpolation is unusable. Invariant: eps(z_hi) <= target < eps(z_lo), so z_hi always meets the target.
    f_lo = math.log(e_lo / target) if math.isfinite(e_lo) else math.inf
    f_hi = math.log(e_hi / target) if e_hi > 0 else -math.inf
    side = 0
    for _ in range(200):
        if z_hi / z_lo - 1 <= rel:
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
        e = eps(z)
        f = math.log(e / target) if 0 < e < math.inf else (math.inf if e == math.inf else -math.inf)
        if e <= target:
            z_hi, e_hi, f_hi = z, e, f
            if side == +1 and math.isfinite(f_lo):
                f_lo /= 2  # Illinois step: the stale end keeps being retained
            side = +1
        else:
            z_lo, e_lo, f_lo = z, e, f
            if side == -1 and math.isfinite(f_hi):
                f_hi /= 2
            side = -1
    final = epsilon(noise_multiplier=z_hi, **kw)  # re-check (and let any grid warning through)
    if not final <= target:  # pragma: no cover - defensive, the invariant guarantees it
        raise RuntimeError(f"calibration failed: eps({z_hi}) = {final} > {target}")
    return z_hi


def epsilon_report(*, noise_multiplier: float, sampling_rate: float, steps: int, delta: float, d=None,
                   r: int | None = None, accountant: str = "rdp", neighboring: str = "add_remove",
                   projections: tuple[str, ...] | None = None) -> dict:
    """ε for each projection kind, with best orders and the assumption text each number relies on.

    RDP is always reported; with ``accountant="pld"`` the PLD ε is added where supported (``None`` with
    the reason otherwise). ``epsilon[proj]`` is the chosen accountant's value (RDP where PLD is
    unsupported). JSON-able except for ``inf`` (use :func:`lowrankdp.cli.print_json`).
    """
    z, q, t, dl, _, acc, nb = _validate(noise_multiplier, sampling_rate, steps, delta, d, r, "none", accountant,
                                        neighboring)
    if projections is None:
        projections = PROJECTIONS if (d is not None and r is not None) else ("none",)
    projections = tuple(check_choice("projections", p, PROJECTIONS) for p in projections)
    out: dict = {
        "settings": {"noise_multiplier": z, "sampling_rate": q, "steps": t, "delta": dl, "d": d, "r": r,
                     "neighboring": nb, "accountant": acc},
        "epsilon": {}, "epsilon_rdp": {}, "epsilon_pld": {}, "best_order": {}, "assumptions": {}, "notes": {},
    }
    for proj in projections:
        if proj != "none" and (d is None or r is None):
            raise ValueError(f"projection={proj!r} needs both d and r, got d={d!r}, r={r!r}")
        ev = dpsgd_event(noise_multiplier=z, sampling_rate=q, steps=t, d=d, r=r, projection=proj)
        rdp_acc = RdpAccountant(neighboring=nb)
        if t == 0 or q == 0 or math.isinf(z):
            e_rdp, order = 0.0, None
        elif z == 0:
            e_rdp, order = math.inf, None
        else:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", OrderGridWarning)
                e_rdp, order = rdp_acc.compose(ev).get_epsilon_and_order(dl)
            for w in caught:
                if issubclass(w.category, OrderGridWarning):
                    out["notes"][proj] = str(w.message)
        out["epsilon_rdp"][proj] = e_rdp
        out["best_order"][proj] = order
        out["assumptions"][proj] = ASSUMPTIONS[proj]
        if proj in ("fixed", "high_probability") and "delta_M" in rdp_acc.details:
            det = {"delta_M": rdp_acc.details["delta_M"]}
            if proj == "high_probability":
                det["q_M"] = rdp_acc.details.get("high_probability_q_M")
            else:
                det["truncation"] = rdp_acc.details.get("fixed_truncation")
                det["law"] = rdp_acc.details.get("fixed_law")
            out.setdefault("details", {})[proj] = det
        value = e_rdp
        if acc == "pld":
            try:
                e_pld = epsilon(noise_multiplier=z, sampling_rate=q, steps=t, delta=dl, d=d, r=r, projection=proj,
                                accountant="pld", neighboring=nb)
                out["epsilon_pld"][proj] = e_pld
                value = e_pld
                if proj == "fresh":
                    out["assumptions"]["fresh"] = FRESH_PROJECTION_ASSUMPTION + " " + FRESH_PLD_ASSUMPTION
            except UnsupportedEventError as exc:
                out["epsilon_pld"][proj] = None
                out["notes"][proj] = str(exc)
        out["epsilon"][proj] = value
    if acc != "pld":
        del out["epsilon_pld"]
    return out
