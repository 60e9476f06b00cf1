"""The report's claims, each judged on the stored results of a sweep (core layer, no torch).

Every claim is one function ``claim_*(runs) -> ClaimResult`` taking the loaded runs
(:class:`~lowrankdp.sweep.report.loading.RunEntry`) and returning a frozen result: a :class:`Verdict`, a one-line
reason, and one :class:`Finding` per comparison it made, with the numbers.

IMPORTANT: how claims compare.

- Like with like only. Runs whose resolved configs differ only by seed are replicates of one *cell* (same
  dataset, model, epochs, rank, α, target ε or σ, learning rate, and every other setting:
  :func:`~lowrankdp.sweep.report.loading.cell_key`); two methods are compared only within one dataset, model
  and number of epochs, cell against cell. Nothing is averaged across σ,
  ε, dataset, rank or α: each pair of cells is its own finding.
- Seeds are the replicates. A difference between two cells is estimated per seed over the seeds both cells have
  (paired), else by Welch's unequal-variance interval over the two sets of seeds; 95 % Student-t intervals.
- A finding *holds* when its interval lies on the claimed side of 0, *does not hold* when it lies on the other
  side, and is *inconclusive* when it contains 0. With one seed there is no interval: the finding is
  inconclusive (it says so) unless the measurement carries its own interval. *Not testable* means the stored
  results cannot decide it (the reason says why, e.g. the largest ε the sample size could certify).
- A claim's verdict: does not hold if any finding does not hold; holds if every testable finding holds; not
  testable if no finding is testable; inconclusive otherwise.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from scipy import stats

from ...audit import max_certifiable_epsilon
from ...metrics import epsilon_lower_bound
from ...results import EpochMetrics
from .loading import RunEntry, cell_key, context_key, group_by

__all__ = ["Verdict", "Estimate", "Finding", "ClaimResult", "estimate", "difference", "CLAIMS", "judge_all",
           "claim_same_base", "claim_rpue_ordering", "claim_lora_close_to_dp", "claim_compressed_vs_targets",
           "claim_compressed_vs_lora_fa", "claim_dp_exposure", "claim_flops", "claim_membership_below_accountant",
           "claim_audit_below_accountant", "sweep_limitations", "perfect_attack_epsilon", "equal_utility_delta",
           "describe_cell", "epsilon_flag", "equal_utility_deltas"]

CONFIDENCE = 0.95
#: "≈" for a FLOPs ratio: within this relative distance of the claimed ratio
FLOPS_TOLERANCE = 0.20
#: DP runs that gain less utility than this over the base model have barely trained (nats per token)
MIN_DP_UTILITY_GAIN = 0.5
MIN_SEEDS = 3
#: exposure rise of a DP run above its base model that still counts as "no rise" (bits; 1 bit = rank halved)
EXPOSURE_SLACK_BITS = 1.0


class Verdict(str, Enum):
    HOLDS = "holds"
    DOES_NOT_HOLD = "does not hold"
    INCONCLUSIVE = "inconclusive"
    NOT_TESTABLE = "not testable"


@dataclass(frozen=True)
class Estimate:
    """A mean with its confidence interval (``lo``/``hi`` None when there is none), over ``n`` replicates."""

    mean: float
    lo: float | None
    hi: float | None
    n: int
    source: str  # "seeds", "paired seeds", "Welch", "measurement", "one seed"

    def fmt(self, digits: int = 3) -> str:
        m = f"{self.mean:.{digits}g}"
        if self.lo is None or self.hi is None:
            return f"{m} (1 seed, no interval)" if self.n <= 1 else f"{m} (n={self.n}, no interval)"
        return f"{m} [{self.lo:.{digits}g}, {self.hi:.{digits}g}] ({self.source}, n={self.n})"


@dataclass(frozen=True)
class Finding:
    """One comparison: where (``setting``), its verdict, its numbers (label, value) and a one-line reason."""

    setting: str
    verdict: Verdict
    numbers: tuple[tuple[str, str], ...]
    reason: str


@dataclass(frozen=True)
class ClaimResult:
    key: str
    title: str
    source: str
    verdict: Verdict
    reason: str
    findings: tuple[Finding, ...] = ()


# ------------------------------------------------------------------------------------------- statistics

def _t_interval(values: Sequence[float], se: float, df: float, mean: float) -> tuple[float, float]:
    q = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df))
    return mean - q * se, mean + q * se


def estimate(values: Iterable[float], *, measurement_ci: tuple[float, float] | None = None) -> Estimate | None:
    """Mean and 95 % t-interval over replicates; one value keeps ``measurement_ci`` if given. None if empty."""
    v = [float(x) for x in values]
    if not v:
        return None
    mean = float(np.mean(v))
    if len(v) == 1:
        if measurement_ci is not None:
            return Estimate(mean, float(measurement_ci[0]), float(measurement_ci[1]), 1, "measurement")
        return Estimate(mean, None, None, 1, "one seed")
    se = float(np.std(v, ddof=1)) / math.sqrt(len(v))
    lo, hi = _t_interval(v, se, len(v) - 1, mean)
    return Estimate(mean, lo, hi, len(v), "seeds")


def difference(a: dict[Any, float], b: dict[Any, float]) -> Estimate | None:
    """``b − a`` from per-seed values: paired over common seeds (≥ 2), else Welch, else a single difference."""
    common = sorted(set(a) & set(b), key=str)
    if len(common) >= 2:
        e = estimate(b[s] - a[s] for s in common)
        return Estimate(e.mean, e.lo, e.hi, e.n, "paired seeds") if e else None
    va, vb = list(a.values()), list(b.values())
    if not va or not vb:
        return None
    mean = float(np.mean(vb) - np.mean(va))
    if len(va) >= 2 and len(vb) >= 2:
        sa, sb = np.var(va, ddof=1) / len(va), np.var(vb, ddof=1) / len(vb)
        se = math.sqrt(sa + sb)
        df = (sa + sb) ** 2 / (sa ** 2 / (len(va) - 1) + sb ** 2 / (len(vb) - 1)) if se > 0 else 1.0
        lo, hi = _t_interval([], se, df, mean)
        return Estimate(mean, lo, hi, min(len(va), len(vb)), "Welch")
    return Estimate(mean, None, None, 1, "one seed")


def direction(e: Estimate | None) -> Verdict:
    """HOLDS if the interval is above 0, DOES_NOT_HOLD if below, else INCONCLUSIVE (also with no interval)."""
    if e is None:
        return Verdict.NOT_TESTABLE
    if e.lo is None or e.hi is None:
        return Verdict.INCONCLUSIVE
    if e.lo > 0:
        return Verdict.HOLDS
    if e.hi < 0:
        return Verdict.DOES_NOT_HOLD
    return Verdict.INCONCLUSIVE


def _combine(verdicts: Iterable[Verdict]) -> Verdict:
    vs = list(verdicts)
    if Verdict.DOES_NOT_HOLD in vs:
        return Verdict.DOES_NOT_HOLD
    testable = [v for v in vs if v != Verdict.NOT_TESTABLE]
    if not testable:
        return Verdict.NOT_TESTABLE
    return Verdict.HOLDS if all(v == Verdict.HOLDS for v in testable) else Verdict.INCONCLUSIVE


def _why(e: Estimate | None, what: str) -> str:
    if e is None:
        return f"{what}: no value"
    if e.lo is None:
        return f"{what} = {e.fmt()}: one seed and no measurement interval, so no conclusion"
    return f"{what} = {e.fmt()}"


# ------------------------------------------------------------------------------------------- cells

def describe_cell(run: RunEntry) -> str:
    """One line naming a cell: method, dataset, model, epochs and the settings that apply to the method."""
    parts = [run.label, str(run.field("dataset")), str(run.field("model")), f"{run.field('epochs')} ep"]
    if run.field("rank") is not None:
        parts.append(f"r={run.field('rank')}")
    if run.field("alpha") is not None:
        parts.append(f"α={run.field('alpha')}")
    if run.spec is not None and run.spec.projection and run.config.get("projection"):
        parts.append(f"{run.config['projection']} projection")
    level = run.field("privacy_level")
    if level is not None:
        parts.append(f"target ε={level[1]:g}" if level[0] == "ε" else f"σ={level[1]}")
    if run.field("lr") is not None:
        parts.append(f"lr={run.field('lr')}")
    return " · ".join(parts)


def _cells(runs: Sequence[RunEntry], method: str) -> dict[tuple, list[RunEntry]]:
    return group_by([r for r in runs if r.ok and r.method == method], cell_key)


def _cell_pairs(runs: Sequence[RunEntry], a: str, b: str, *, same_level: bool = False
                ) -> Iterator[tuple[list[RunEntry], list[RunEntry]]]:
    """Every (cell of method ``a``, cell of method ``b``) in one context; ``same_level``: equal target ε / σ."""
    ca, cb = _cells(runs, a), _cells(runs, b)
    for ra in ca.values():
        for rb in cb.values():
            if context_key(ra[0]) != context_key(rb[0]):
                continue
            if same_level and ra[0].field("privacy_level") != rb[0].field("privacy_level"):
                continue
            yield ra, rb


def _by_seed(cell: Sequence[RunEntry], fn: Callable[[RunEntry], float | None]) -> dict[Any, float]:
    out = {}
    for r in cell:
        v = fn(r)
        if v is not None and math.isfinite(v):
            out[r.seed] = float(v)
    return out


def _result(key: str, title: str, source: str, findings: Sequence[Finding], empty: str) -> ClaimResult:
    if not findings:
        return ClaimResult(key, title, source, Verdict.NOT_TESTABLE, empty, ())
    verdict = _combine(f.verdict for f in findings)
    counts = {v: sum(f.verdict == v for f in findings) for v in Verdict}
    reason = f"{len(findings)} comparison(s): " + ", ".join(f"{n} {v.value}" for v, n in counts.items() if n)
    return ClaimResult(key, title, source, verdict, reason, tuple(findings))


def epsilon_flag(run: RunEntry) -> str:
    """"" for a proven ε; otherwise a short warning (an estimate, or an ε resting on an extra assumption)."""
    p = run.privacy
    if p is None:
        return ""
    marks = []
    if getattr(p.guarantee, "value", p.guarantee) == "estimate":
        marks.append("estimate, not a bound")
    if p.assumption:
        marks.append(f"assumes: {p.assumption}")
    return "; ".join(marks)


# ------------------------------------------------------------------------------------------- equal utility

def _sens_rel(run: RunEntry, ep: EpochMetrics) -> float | None:
    """Sensitive-token loss relative to the base model (model − base, nats; docs/theory.md §6)."""
    g = ep.metric("sensitive_loss_token_gain_vs_base")
    if isinstance(g, (int, float)) and math.isfinite(g):
        return -float(g)
    s, b = ep.metric("sensitive_loss_token"), run.base.metric("sensitive_loss_token") if run.base else None
    if isinstance(s, (int, float)) and isinstance(b, (int, float)):
        return float(s) - float(b)
    return None


def _trajectory(run: RunEntry) -> list[tuple[float, float]]:
    pts = []
    for ep in run.epochs:
        u, s = ep.metric("utility_loss"), _sens_rel(run, ep)
        if isinstance(u, (int, float)) and math.isfinite(u) and s is not None:
            pts.append((float(u), s))
    return pts


def _interpolate(traj: Sequence[tuple[float, float]], u: float) -> float | None:
    """The trajectory's value at utility ``u``: the first segment (in epoch order) that brackets ``u``."""
    for (u0, s0), (u1, s1) in zip(traj, traj[1:]):
        if min(u0, u1) <= u <= max(u0, u1):
            return s0 if u1 == u0 else s0 + (s1 - s0) * (u - u0) / (u1 - u0)
    return None


def equal_utility_delta(run: RunEntry, fft: RunEntry) -> tuple[float, bool] | None:
    """``run``'s base-subtracted sensitive-token loss minus FFT's at the same utility loss (FFT's trajectory
    interpolated; > 0 = more private than FFT at equal utility) and whether it was at equal utility. Where the
    run's utility lies outside FFT's trajectory, FFT's last epoch is used instead (flag False)."""
    mine, ref = _trajectory(run), _trajectory(fft)
    if not mine or not ref:
        return None
    u, s = mine[-1]
    at = _interpolate(ref, u)
    if at is not None:
        return s - at, True
    return s - ref[-1][1], False


def equal_utility_deltas(cell: Sequence[RunEntry], fft_cell: Sequence[RunEntry]) -> tuple[dict[Any, float], int]:
    """Per-seed equal-utility deltas against the FFT run of the same seed; and how many were at equal utility."""
    fft_by_seed = {r.seed: r for r in fft_cell}
    out, equal = {}, 0
    for r in cell:
        f = fft_by_seed.get(r.seed)
        d = equal_utility_delta(r, f) if f is not None else None
        if d is not None:
            out[r.seed] = d[0]
            equal += d[1]
    return out, equal


# ------------------------------------------------------------------------------------------- claims

def claim_same_base(runs: Sequence[RunEntry]) -> ClaimResult:
    """Sanity: runs of one dataset and model start from the same base model (equal epoch-0 sensitive loss)."""
    findings = []
    groups = group_by([r for r in runs if r.base is not None], lambda r: (r.field("dataset"), r.field("model")))
    for (ds, model), rs in groups.items():
        vals = [v for r in rs if isinstance(v := r.base.metric("sensitive_loss_token"), (int, float))]
        if len(vals) < 2:
            continue
        spread = max(vals) - min(vals)
        findings.append(Finding(f"{ds} · {model}", Verdict.HOLDS if spread < 1e-6 else Verdict.DOES_NOT_HOLD,
                                (("runs", str(len(vals))), ("epoch-0 spread (nats)", f"{spread:.3g}")),
                                "identical base" if spread < 1e-6 else "base models differ between runs"))
    return _result("same_base", "Sanity: every run of a dataset and model starts from the same base model", "",
                   findings, "fewer than two finished runs with an epoch-0 measurement per dataset and model")


def _triples(runs: Sequence[RunEntry]) -> Iterator[tuple[list[RunEntry], list[RunEntry], list[RunEntry]]]:
    """Every (FFT cell, LoRA cell, DP-SGD cell) of one dataset, model and number of epochs."""
    dp_cells = list(_cells(runs, "dp-sgd").values())
    for fft_cell, lora_cell in _cell_pairs(runs, "fft", "lora"):
        for dp_cell in dp_cells:
            if context_key(dp_cell[0]) == context_key(fft_cell[0]):
                yield fft_cell, lora_cell, dp_cell


def _ordering_finding(fft: list[RunEntry], lora: list[RunEntry], dp: list[RunEntry]) -> Finding:
    d_lora, eq_l = equal_utility_deltas(lora, fft)
    d_dp, eq_d = equal_utility_deltas(dp, fft)
    e1, e2 = estimate(d_lora.values()), difference(d_lora, d_dp)
    verdict = _combine([direction(e1), direction(e2)]) if e1 and e2 else Verdict.NOT_TESTABLE
    eq = f"{eq_l + eq_d} of {len(d_lora) + len(d_dp)} runs at equal utility (others vs FFT's last epoch)"
    numbers = (("LoRA − FFT (nats, equal utility)", e1.fmt() if e1 else "—"),
               ("DP-SGD − LoRA (nats)", e2.fmt() if e2 else "—"), ("matched", eq))
    reason = (f"LoRA more private than FFT: {direction(e1).value}; DP-SGD more private than LoRA: "
              f"{direction(e2).value}" if e1 and e2 else "no run pair shares a seed")
    if e1 and e2 and (e1.lo is None or e2.lo is None):
        reason += " (one seed: no interval)"
    return Finding(f"{describe_cell(lora[0])} | {describe_cell(dp[0])}", verdict, numbers, reason)


def claim_rpue_ordering(runs: Sequence[RunEntry]) -> ClaimResult:
    """[RPUE] (arXiv:2502.13313v2; docs/theory.md §8.1, §8.6): sensitive-token training loss FFT < LoRA < DP-SGD,
    here at equal utility (docs/theory.md §8.7).
    Each run's base-subtracted sensitive loss is compared with FFT's trajectory at the same utility loss."""
    findings = [_ordering_finding(*t) for t in _triples(runs)]
    return _result("rpue_ordering", "Sensitive-token loss FFT < LoRA < DP-SGD at equal utility",
                   "[RPUE] arXiv:2502.13313v2; docs/theory.md §8.6", findings,
                   "needs finished FFT, LoRA and DP-SGD runs of one dataset, model and number of epochs")


def _closeness_finding(fft: list[RunEntry], lora: list[RunEntry], dp: list[RunEntry]) -> Finding:
    d_lora, _ = equal_utility_deltas(lora, fft)
    d_dp, _ = equal_utility_deltas(dp, fft)
    # per seed: |LoRA − FFT| − |LoRA − DP-SGD| (> 0: LoRA is closer to DP-SGD than to FFT)
    to_fft = {s: abs(v) for s, v in d_lora.items()}
    to_dp = {s: abs(d_lora[s] - d_dp[s]) for s in d_lora if s in d_dp}
    e = difference(to_dp, {s: to_fft[s] for s in to_dp})
    numbers = (("LoRA − FFT (nats)", (estimate(d_lora.values()) or Estimate(math.nan, None, None, 0, "")).fmt()),
               ("DP-SGD − FFT (nats)", (estimate(d_dp.values()) or Estimate(math.nan, None, None, 0, "")).fmt()),
               ("|LoRA−FFT| − |LoRA−DP-SGD|", e.fmt() if e else "—"))
    return Finding(f"{describe_cell(lora[0])} | {describe_cell(dp[0])}", direction(e) if to_dp else
                   Verdict.NOT_TESTABLE, numbers, _why(e, "|LoRA−FFT| − |LoRA−DP-SGD|") if to_dp
                   else "no seed shared by the LoRA and DP-SGD runs")


def claim_lora_close_to_dp(runs: Sequence[RunEntry]) -> ClaimResult:
    """[RPUE] (arXiv:2502.13313v2; docs/theory.md §8.1): LoRA is about as private as DP-SGD — at equal utility,
    LoRA's sensitive-token loss is closer to DP-SGD's than to FFT's."""
    findings = [_closeness_finding(*t) for t in _triples(runs)]
    return _result("lora_close_to_dp", "LoRA about as private as DP-SGD (closer to DP-SGD than to FFT, equal "
                   "utility)", "[RPUE] arXiv:2502.13313v2; docs/theory.md §8.1", findings,
                   "needs finished FFT, LoRA and DP-SGD runs of one dataset, model and number of epochs")


def _utility_finding(better: list[RunEntry], other: list[RunEntry]) -> Finding:
    setting = f"{describe_cell(better[0])} | {describe_cell(other[0])}"
    if better[0].field("privacy_level")[0] != "ε":
        return Finding(setting, Verdict.NOT_TESTABLE, (),
                       "runs compared at equal σ, not at a calibrated target ε: their ε differ")
    ub = _by_seed(better, lambda r: r.value("utility_loss"))
    uo = _by_seed(other, lambda r: r.value("utility_loss"))
    e = difference(ub, uo)  # other − better: > 0 = ``better`` reaches a lower utility loss
    eps = {r.label: max((x.privacy.epsilon for x in c if x.privacy and x.privacy.epsilon is not None),
                        default=math.nan) for c in (better, other) for r in c[:1]}
    flags = [f"{c[0].label}: {epsilon_flag(c[0])}" for c in (better, other) if epsilon_flag(c[0])]
    numbers = ((f"utility loss {better[0].label}", _fmt_est(estimate(ub.values()))),
               (f"utility loss {other[0].label}", _fmt_est(estimate(uo.values()))),
               ("difference (other − first)", e.fmt() if e else "—"),
               ("achieved ε (max over seeds)", ", ".join(f"{k} {v:.3g}" for k, v in eps.items())))
    reason = _why(e, f"{other[0].label} − {better[0].label} utility loss") + ("; ε " + "; ".join(flags)
                                                                             if flags else "")
    return Finding(setting, direction(e), numbers, reason)


def _fmt_est(e: Estimate | None) -> str:
    return e.fmt() if e is not None else "—"


def claim_compressed_vs_targets(runs: Sequence[RunEntry]) -> ClaimResult:
    """[LRP] (arXiv:2601.21719v1; docs/theory.md §4, §8.1): at equal ε, compressed DP-SGD (projection credit →
    less noise) reaches a lower utility loss than DP-SGD on the same matrices (``dp-sgd-targets``)."""
    findings = [_utility_finding(a, b) for a, b in
                _cell_pairs(runs, "compressed-dp-sgd", "dp-sgd-targets", same_level=True)]
    return _result("compressed_vs_targets", "Equal ε: compressed DP-SGD has better utility than DP-SGD on the "
                   "same matrices", "[LRP] arXiv:2601.21719v1; docs/theory.md §8.1", findings,
                   "needs finished compressed-dp-sgd and dp-sgd-targets runs at the same target ε")


def claim_compressed_vs_lora_fa(runs: Sequence[RunEntry]) -> ClaimResult:
    """[LRP] (arXiv:2601.21719v1; docs/theory.md §8.7): at equal ε, compressed DP-SGD vs DP-LoRA-FA (its
    comparator) on utility."""
    findings = [_utility_finding(a, b) for a, b in
                _cell_pairs(runs, "compressed-dp-sgd", "dp-lora-fa", same_level=True)]
    return _result("compressed_vs_lora_fa", "Equal ε: compressed DP-SGD has better utility than DP-LoRA-FA",
                   "[LRP] arXiv:2601.21719v1; docs/theory.md §8.1", findings,
                   "needs finished compressed-dp-sgd and dp-lora-fa runs at the same target ε")


def _exposure_excess(r: RunEntry) -> float | None:
    f, b = r.value("exposure.value"), r.base.metric("exposure.value") if r.base else None
    return f - float(b) if f is not None and isinstance(b, (int, float)) else None


def _exposure_finding(cell: list[RunEntry]) -> Finding:
    excess = _by_seed(cell, _exposure_excess)
    ci = None
    if len(excess) == 1:
        r = cell[0]
        iv, b = r.final.metric("exposure.interval"), r.base.metric("exposure.value") if r.base else None
        if isinstance(iv, (list, tuple)) and len(iv) == 2 and isinstance(b, (int, float)):
            ci = (float(iv[0]) - b, float(iv[1]) - b)
    e = estimate(excess.values(), measurement_ci=ci)
    if e is None:
        return Finding(describe_cell(cell[0]), Verdict.NOT_TESTABLE, (), "no exposure stored at epoch 0 and at the end")
    if e.lo is None:
        v, why = Verdict.INCONCLUSIVE, "one seed and an exact exposure (no interval): no conclusion"
    elif e.lo > EXPOSURE_SLACK_BITS:
        v, why = Verdict.DOES_NOT_HOLD, (f"exposure rose more than {EXPOSURE_SLACK_BITS:g} bit above the base "
                                         "model's, beyond its interval")
    elif e.hi <= EXPOSURE_SLACK_BITS:
        v, why = Verdict.HOLDS, f"rise at most {EXPOSURE_SLACK_BITS:g} bit (upper end of the interval); a " \
                                "drop below the base is fine"
    else:
        v, why = Verdict.INCONCLUSIVE, f"interval reaches above {EXPOSURE_SLACK_BITS:g} bit: too wide to tell"
    return Finding(describe_cell(cell[0]), v, (("exposure − base (bits)", e.fmt()),), why)


def claim_dp_exposure(runs: Sequence[RunEntry]) -> ClaimResult:
    """DP runs do not raise canary exposure above the base model's, judged one-sided ([CTW+19]; docs/theory.md
    §6): a DP run below its base is fine; a rise within ``EXPOSURE_SLACK_BITS`` is the base's level; only a rise
    whose whole interval lies above that slack fails."""
    private = sorted({r.method for r in runs if r.private and r.ok})
    findings = [_exposure_finding(c) for m in private for c in _cells(runs, m).values()]
    findings = [f for f in findings if f.numbers or f.verdict != Verdict.NOT_TESTABLE] or findings
    return _result("dp_exposure", "DP runs keep canary exposure at the base model's level (one-sided)",
                   "docs/theory.md §6", findings, "no finished DP run stores exposure")


def _flops_finding(ctx_runs: list[RunEntry], num: str, den: str, claimed: float) -> Finding | None:
    def mean_of(method: str, key: str) -> float | None:
        vals = [v for r in ctx_runs if r.method == method and (v := r.value(key)) is not None]
        return float(np.mean(vals)) if vals else None

    ma, md = mean_of(num, "costs.measured_flops_per_token"), mean_of(den, "costs.measured_flops_per_token")
    aa, ad = mean_of(num, "costs.analytic_flops_per_token"), mean_of(den, "costs.analytic_flops_per_token")
    if not any(r.method == num for r in ctx_runs) or not any(r.method == den for r in ctx_runs):
        return None
    analytic = f"{aa / ad:.3g}" if aa and ad else "—"
    labels = {r.method: r.label for r in ctx_runs}
    setting = f"{ctx_runs[0].field('dataset')} · {ctx_runs[0].field('model')}: {labels[num]}/{labels[den]}"
    if not ma or not md:
        return Finding(setting, Verdict.NOT_TESTABLE, (("analytic ratio", analytic),),
                       "no measured FLOPs stored (the analytic count alone would check the formula against itself)")
    ratio = ma / md
    ok = abs(ratio / claimed - 1) <= FLOPS_TOLERANCE
    return Finding(setting, Verdict.HOLDS if ok else Verdict.DOES_NOT_HOLD,
                   (("measured ratio", f"{ratio:.3g}"), ("claimed", f"{claimed:.3g}"), ("analytic ratio", analytic)),
                   f"measured {ratio:.3g} vs claimed {claimed:.3g} (≈ means within {FLOPS_TOLERANCE:.0%})")


def claim_flops(runs: Sequence[RunEntry]) -> ClaimResult:
    """[RPUE] (arXiv:2502.13313v2; docs/theory.md §6, §8.6): DP-SGD costs ≈ 1.33× FFT and ≈ 2× LoRA in FLOPs per
    token, judged on the profiler's measured FLOPs with the analytic count beside."""
    findings = []
    for ctx in group_by([r for r in runs if r.ok], context_key).values():
        for num, den, claimed in (("dp-sgd", "fft", 4 / 3), ("dp-sgd", "lora", 2.0)):
            f = _flops_finding(ctx, num, den, claimed)
            if f is not None:
                findings.append(f)
    return _result("flops", "FLOPs per token: DP-SGD ≈ 1.33× FFT and ≈ 2× LoRA (measured)",
                   "[RPUE] arXiv:2502.13313v2; docs/theory.md §6", findings,
                   "needs finished DP-SGD and FFT or LoRA runs")


@functools.lru_cache(maxsize=256)
def perfect_attack_epsilon(n_in: int, n_out: int, delta: float, confidence: float = CONFIDENCE) -> float:
    """The largest ε lower bound :func:`lowrankdp.metrics.epsilon_lower_bound` can certify with ``n_in`` members
    and ``n_out`` non-members: that of a perfect attack (members and non-members fully separated)."""
    return epsilon_lower_bound(np.ones(n_in), np.zeros(n_out), delta=delta, confidence=confidence)


def _testable(eps: float, lb: float, delta_lb: float | None, delta_acct: float | None, max_cert: float | None
              ) -> tuple[Verdict, str]:
    if delta_lb is None or delta_acct is None or not math.isclose(delta_lb, delta_acct, rel_tol=1e-9):
        return Verdict.NOT_TESTABLE, f"lower bound at δ={delta_lb} but accountant at δ={delta_acct}: dropped"
    if max_cert is None:
        return Verdict.NOT_TESTABLE, "the largest ε this sample size can certify is not stored"
    if max_cert <= eps:
        return Verdict.NOT_TESTABLE, f"a perfect attack could certify at most ε={max_cert:.3g} ≤ accountant " \
                                     f"ε={eps:.3g}: cannot fail at this sample size"
    if lb > eps:
        return Verdict.DOES_NOT_HOLD, f"certified ε ≥ {lb:.3g} > accountant ε={eps:.3g}"
    return Verdict.HOLDS, f"certified ε ≥ {lb:.3g} ≤ accountant ε={eps:.3g} (could certify up to {max_cert:.3g})"


def _mia_finding(r: RunEntry) -> Finding | None:
    p, mia = r.privacy, r.final.metric("mia")
    if p is None or p.epsilon is None or not isinstance(mia, dict):
        return None
    verdicts, numbers, reasons = [], [], []
    for attack, rep in sorted(mia.items()):
        if not isinstance(rep, dict) or not isinstance(rep.get("epsilon_lower_bound"), (int, float)):
            continue
        n_in, n_out = int(rep.get("n_in") or 0), int(rep.get("n_out") or 0)
        delta_lb = float(rep.get("delta", 0.0))
        max_cert = rep.get("epsilon_lower_bound_max")  # stored by lowrankdp.metrics.attack_report
        if not isinstance(max_cert, (int, float)):
            max_cert = perfect_attack_epsilon(n_in, n_out, delta_lb, float(rep.get("confidence", CONFIDENCE))) \
                if n_in >= 2 and n_out >= 2 else None
        v, why = _testable(p.epsilon, float(rep["epsilon_lower_bound"]), delta_lb, p.delta, max_cert)
        verdicts.append(v)
        numbers.append((f"{attack} ({n_in}/{n_out})", f"{rep['epsilon_lower_bound']:.3g}"))
        reasons.append(f"{attack}: {why}")
    if not verdicts:
        return None
    return Finding(f"{r.name} (ε={p.epsilon:.3g}{'†' if epsilon_flag(r) else ''})", _combine(verdicts),
                   tuple(numbers), "; ".join(reasons))


def claim_membership_below_accountant(runs: Sequence[RunEntry]) -> ClaimResult:
    """No membership attack's certified ε lower bound exceeds the accountant's ε (DP runs), judged only at the
    accountant's δ and only where a perfect attack could exceed it (docs/theory.md §6)."""
    findings = [f for r in runs if r.ok and r.private and (f := _mia_finding(r)) is not None]
    return _result("mia_below_accountant", "No membership attack certifies an ε above the accountant's",
                   "docs/theory.md §6", findings, "no finished DP run stores a membership attack")


def _audit_finding(r: RunEntry, a: dict[str, Any]) -> Finding:
    p = r.privacy
    lb = next((float(a[k]) for k in ("epsilon", "epsilon_lower_bound", "epsilon_lb")
               if isinstance(a.get(k), (int, float))), math.nan)
    max_cert = next((float(a[k]) for k in ("max_epsilon", "epsilon_max", "perfect_epsilon")
                     if isinstance(a.get(k), (int, float))), None)
    delta = a.get("delta")
    if max_cert is None and isinstance(a.get("canaries"), int) and a.get("method") in ("snj", "fdp") \
            and isinstance(delta, (int, float)) and a["canaries"] >= 1:
        max_cert = max_certifiable_epsilon(canaries=a["canaries"], delta=float(delta), method=a["method"],
                                           curve="epsilon_delta")
    v, why = _testable(p.epsilon, lb, float(delta) if isinstance(delta, (int, float)) else None, p.delta, max_cert)
    numbers = (("audited ε", f"{lb:.3g}"), ("accountant ε", f"{p.epsilon:.3g}"),
               ("canaries", str(a.get("canaries", "—"))), ("method", str(a.get("method", "—"))))
    return Finding(f"{r.name} · {a.get('name', 'audit')}", v, numbers, why)


def claim_audit_below_accountant(runs: Sequence[RunEntry]) -> ClaimResult:
    """No audited ε exceeds the accountant's ε (one-run audit: Steinke, Nasr and Jagielski, arXiv:2305.08846v1;
    docs/theory.md §9.4), judged only at the accountant's δ and where the audit's canaries could certify more than
    that ε."""
    findings = [_audit_finding(r, a) for r in runs if r.ok and r.private and r.privacy is not None
                and r.privacy.epsilon is not None for a in r.audits]
    return _result("audit_below_accountant", "No audited ε exceeds the accountant's ε",
                   "arXiv:2305.08846v1; docs/theory.md §9.4", findings, "no finished DP run stores a privacy audit")


CLAIMS: tuple[Callable[[Sequence[RunEntry]], ClaimResult], ...] = (
    claim_same_base, claim_rpue_ordering, claim_lora_close_to_dp, claim_compressed_vs_targets,
    claim_compressed_vs_lora_fa, claim_dp_exposure, claim_flops, claim_membership_below_accountant,
    claim_audit_below_accountant)


def judge_all(runs: Sequence[RunEntry]) -> list[ClaimResult]:
    return [c(runs) for c in CLAIMS]


def sweep_limitations(runs: Sequence[RunEntry]) -> list[str]:
    """Why this sweep cannot support the claims (empty when it can): fewer than 3 seeds per cell, or DP runs
    that barely trained (utility gain over the base below 0.5 nats)."""
    ok = [r for r in runs if r.ok]
    if not ok:
        return ["no run finished"]
    out = []
    seeds = max(len({r.seed for r in c}) for c in group_by(ok, cell_key).values())
    if seeds < MIN_SEEDS:
        out.append(f"at most {seeds} seed(s) per setting (claims need ≥ {MIN_SEEDS} for an interval)")
    gains = [g for r in ok if r.private and (g := _utility_gain(r)) is not None]
    if gains and max(gains) < MIN_DP_UTILITY_GAIN:
        out.append(f"the DP runs gain at most {max(gains):.2f} nats of utility over the base model "
                   f"(< {MIN_DP_UTILITY_GAIN}): they barely trained, so 'DP is private' here means 'DP did not learn'")
    return out


def _utility_gain(r: RunEntry) -> float | None:
    g = r.value("utility_loss_gain_vs_base")
    if g is not None:
        return g
    u, b = r.value("utility_loss"), r.base.metric("utility_loss") if r.base else None
    return float(b) - u if u is not None and isinstance(b, (int, float)) else None
