"""Every claim of the report, on stored-result fixtures where it holds, where it does not hold, and where it is
inconclusive or not testable (records written with write_record into a sweep directory with a RunIndex)."""

from __future__ import annotations

import pytest

from lowrankdp.sweep.report import claims as C
from lowrankdp.sweep.report.claims import Verdict
from lowrankdp.sweep.report.loading import load_sweep

from report_fixtures import DELTA, jitter, mia_report, record, write_sweep

SEEDS = (0, 1, 2)
FFT = [(5.0, 7.0), (4.0, 5.0), (3.0, 3.0)]  # (sensitive loss, utility loss) per epoch; base = epoch 0


def _runs(tmp_path, items):
    return load_sweep(write_sweep(tmp_path / "sweep", items)).runs


def _traj(final_sens: float, final_util: float, seed: int) -> list[tuple[float, float]]:
    j = jitter(seed)
    return [(5.0, 7.0), ((5.0 + final_sens) / 2, 6.0), (final_sens + j, final_util + j)]


def _rpue(tmp_path, lora_sens: float, dp_sens: float, seeds=SEEDS):
    """FFT at utility 5 has sensitive loss 4 (rel. −1); LoRA and DP-SGD end at utility 5."""
    items = []
    for s in seeds:
        items += [(f"fft-{s}", record("fft", s, [(a + jitter(s, 0.01), b) for a, b in FFT])),
                  (f"lora-{s}", record("lora", s, _traj(lora_sens, 5.0, s))),
                  (f"dp-sgd-{s}", record("dp-sgd", s, _traj(dp_sens, 5.0, s), eps=4.0))]
    return _runs(tmp_path, items)


# ------------------------------------------------------------------------------------------- statistics

def test_estimate_interval_is_the_student_t_interval():
    e = C.estimate([1.0, 2.0, 3.0])
    # mean 2, sd 1, se 1/sqrt(3), t_{0.975, 2} = 4.302652729911275 (scipy.stats.t.ppf; tables: 4.303)
    assert e.mean == pytest.approx(2.0)
    assert e.hi - e.mean == pytest.approx(4.302652729911275 / 3 ** 0.5)
    assert C.estimate([1.5]).lo is None and C.estimate([]) is None


def test_difference_pairs_common_seeds_and_falls_back_to_welch():
    a, b = {0: 1.0, 1: 2.0, 2: 3.0}, {0: 2.0, 1: 3.1, 2: 3.9}
    e = C.difference(a, b)
    assert e.source == "paired seeds" and e.mean == pytest.approx(1.0) and e.lo > 0
    w = C.difference({0: 1.0, 1: 2.0}, {5: 2.0, 6: 3.5})
    assert w.source == "Welch" and w.lo < w.mean < w.hi


# ------------------------------------------------------------------------------------------- [RPUE] ordering

def test_rpue_ordering_holds(tmp_path):
    runs = _rpue(tmp_path, lora_sens=4.5, dp_sens=4.9)  # Δ LoRA +0.5, Δ DP +0.9 at equal utility
    res = C.claim_rpue_ordering(runs)
    assert res.verdict == Verdict.HOLDS, res
    assert "3 of 3" not in res.findings[0].numbers[2][1]  # 6 runs matched
    assert "6 of 6 runs at equal utility" in dict(res.findings[0].numbers)["matched"]


def test_rpue_ordering_does_not_hold_when_lora_memorises_more_than_fft(tmp_path):
    res = C.claim_rpue_ordering(_rpue(tmp_path, lora_sens=3.5, dp_sens=4.9))
    assert res.verdict == Verdict.DOES_NOT_HOLD


def test_rpue_ordering_one_seed_is_inconclusive(tmp_path):
    res = C.claim_rpue_ordering(_rpue(tmp_path, lora_sens=4.5, dp_sens=4.9, seeds=(0,)))
    assert res.verdict == Verdict.INCONCLUSIVE
    assert "one seed" in res.findings[0].reason


def test_rpue_ordering_not_testable_without_dp(tmp_path):
    runs = [r for r in _rpue(tmp_path, 4.5, 4.9) if r.method != "dp-sgd"]
    assert C.claim_rpue_ordering(runs).verdict == Verdict.NOT_TESTABLE


def test_equal_utility_interpolates_fft_trajectory(tmp_path):
    runs = _runs(tmp_path, [("fft", record("fft", 0, FFT)), ("lora", record("lora", 0, [(5.0, 7.0), (4.6, 4.0)]))])
    fft, lora = sorted(runs, key=lambda r: r.method)
    # FFT (rel.) at utility 4 lies halfway between (5, −1) and (3, −2): −1.5; LoRA rel. −0.4 → Δ = 1.1
    d, at_equal = C.equal_utility_delta(lora, fft)
    assert at_equal and d == pytest.approx(1.1)


def test_different_datasets_are_never_compared(tmp_path):
    items = [(f"fft-{s}", record("fft", s, FFT)) for s in SEEDS]
    from report_fixtures import config
    items += [(f"lora-{s}", record("lora", s, _traj(4.5, 5.0, s), cfg=config("lora", s, extra={"dataset": "sb"})))
              for s in SEEDS]
    items += [(f"dp-{s}", record("dp-sgd", s, _traj(4.9, 5.0, s), eps=4.0)) for s in SEEDS]
    assert C.claim_rpue_ordering(_runs(tmp_path, items)).verdict == Verdict.NOT_TESTABLE


# ------------------------------------------------------------------------------------------- LoRA ≈ DP-SGD

def test_lora_close_to_dp_holds_and_does_not_hold(tmp_path):
    assert C.claim_lora_close_to_dp(_rpue(tmp_path / "a", 4.8, 4.9)).verdict == Verdict.HOLDS
    assert C.claim_lora_close_to_dp(_rpue(tmp_path / "b", 4.1, 4.9)).verdict == Verdict.DOES_NOT_HOLD
    assert C.claim_lora_close_to_dp(_rpue(tmp_path / "c", 4.8, 4.9, seeds=(0,))).verdict == Verdict.INCONCLUSIVE


# ------------------------------------------------------------------------------------------- equal ε utility

def _equal_eps(tmp_path, u_comp: float, u_tgt: float, *, target=4.0, spread=0.02, other="dp-sgd-targets"):
    items = []
    for s in SEEDS:
        for k, (m, u) in enumerate((("compressed-dp-sgd", u_comp), (other, u_tgt))):
            items.append((f"{m}-{s}", record(m, s, [(5.0, 7.0), (4.9, u + jitter(s + k, spread))],
                                             eps=None if target is None else target * 0.99, target=target)))
    return _runs(tmp_path, items)


def test_compressed_vs_targets(tmp_path):
    assert C.claim_compressed_vs_targets(_equal_eps(tmp_path / "a", 4.0, 4.5)).verdict == Verdict.HOLDS
    assert C.claim_compressed_vs_targets(_equal_eps(tmp_path / "b", 4.5, 4.0)).verdict == Verdict.DOES_NOT_HOLD
    noisy = C.claim_compressed_vs_targets(_equal_eps(tmp_path / "c", 4.0, 4.02, spread=2.0))
    assert noisy.verdict == Verdict.INCONCLUSIVE
    at_sigma = C.claim_compressed_vs_targets(_equal_eps(tmp_path / "d", 4.0, 4.5, target=None))
    assert at_sigma.verdict == Verdict.NOT_TESTABLE and "equal σ" in at_sigma.findings[0].reason
    assert C.claim_compressed_vs_targets([]).verdict == Verdict.NOT_TESTABLE


def test_compressed_vs_lora_fa_flags_an_estimated_epsilon(tmp_path):
    items = []
    for s in SEEDS:
        items.append((f"c-{s}", record("compressed-dp-sgd", s, [(5.0, 7.0), (4.9, 4.0 + jitter(s))], eps=3.9,
                                       target=4.0, guarantee="estimate", assumption="one direction")))
        items.append((f"fa-{s}", record("dp-lora-fa", s, [(5.0, 7.0), (4.9, 4.5 + jitter(s))], eps=3.9,
                                        target=4.0)))
    res = C.claim_compressed_vs_lora_fa(_runs(tmp_path, items))
    assert res.verdict == Verdict.HOLDS
    assert "estimate, not a bound" in res.findings[0].reason and "one direction" in res.findings[0].reason


# ------------------------------------------------------------------------------------------- exposure

def _exposure(tmp_path, final: float, seeds=SEEDS):
    return _runs(tmp_path, [(f"dp-{s}", record("dp-sgd", s, [(5.0, 7.0), (4.9, 6.0)], eps=4.0,
                                                 exposure=[2.0, final + jitter(s, 0.2)])) for s in seeds])


def test_dp_exposure_is_one_sided(tmp_path):
    below = C.claim_dp_exposure(_exposure(tmp_path / "a", 1.2))
    assert below.verdict == Verdict.HOLDS  # below the base level is fine
    assert C.claim_dp_exposure(_exposure(tmp_path / "b", 6.0)).verdict == Verdict.DOES_NOT_HOLD
    # a small, certain rise (0.3 bit over the base's 2) is the base's level, not a failure
    assert C.claim_dp_exposure(_exposure(tmp_path / "e", 2.3)).verdict == Verdict.HOLDS
    assert C.claim_dp_exposure(_exposure(tmp_path / "c", 1.2, seeds=(0,))).verdict == Verdict.INCONCLUSIVE
    runs = _runs(tmp_path / "d", [("dp", record("dp-sgd", 0, [(5.0, 7.0), (4.9, 6.0)], eps=4.0))])
    assert C.claim_dp_exposure(runs).verdict == Verdict.NOT_TESTABLE


# ------------------------------------------------------------------------------------------- FLOPs

def _flops(tmp_path, measured_dp: float | None):
    def costs(m, a):
        return {"measured_flops_per_token": m, "analytic_flops_per_token": a}
    items = [("fft", record("fft", 0, FFT, costs=costs(6.0, 6.0))),
             ("dp", record("dp-sgd", 0, FFT, eps=4.0, costs=costs(measured_dp, 8.0)))]
    return _runs(tmp_path, items)


def test_flops_judged_on_measured_values(tmp_path):
    assert C.claim_flops(_flops(tmp_path / "a", 8.1)).verdict == Verdict.HOLDS
    bad = C.claim_flops(_flops(tmp_path / "b", 18.7))  # 3.12×, the analytic 1.33 beside it
    assert bad.verdict == Verdict.DOES_NOT_HOLD
    assert dict(bad.findings[0].numbers)["analytic ratio"] == "1.33"
    none = C.claim_flops(_flops(tmp_path / "c", None))
    assert none.verdict == Verdict.NOT_TESTABLE and "against itself" in none.findings[0].reason


# ------------------------------------------------------------------------------------------- membership

def test_perfect_attack_epsilon_matches_the_clopper_pearson_closed_form():
    """A perfect attack on the evaluation half (n_in/2 members all above, n_out/2 non-members all below) has
    Clopper-Pearson bounds at level a = 0.025: TPR >= a**(2/n_in), FPR <= 1 - a**(2/n_out); the certified ε is
    the larger of ln((TPR_lo - δ)/FPR_hi) and ln((1 - FPR_hi - δ)/(1 - TPR_lo))."""
    import math

    def closed_form(n_in, n_out, delta, a=0.025):
        tpr_lo, fpr_hi = a ** (1 / (n_in // 2)), 1 - a ** (1 / (n_out - n_out // 2))
        return max(math.log((tpr_lo - delta) / fpr_hi), math.log((1 - fpr_hi - delta) / (1 - tpr_lo)))

    small = C.perfect_attack_epsilon(100, 40, DELTA)
    assert small == pytest.approx(closed_form(100, 40, DELTA), rel=1e-9)
    assert small == pytest.approx(2.459, abs=1e-3)  # the "at most 2.46 < 5.76" of the smoke sweep
    assert C.perfect_attack_epsilon(5000, 5000, DELTA) == pytest.approx(closed_form(5000, 5000, DELTA), rel=1e-9)


def _mia(tmp_path, *, lb: float, eps: float, n=5000, delta=DELTA):
    mia = {"loss": mia_report(lb=lb, n_in=n, n_out=n, delta=delta)}
    return _runs(tmp_path, [("dp", record("dp-sgd", 0, FFT, eps=eps, mia=mia))])


def test_membership_claim(tmp_path):
    assert C.claim_membership_below_accountant(_mia(tmp_path / "a", lb=0.2, eps=2.0)).verdict == Verdict.HOLDS
    assert C.claim_membership_below_accountant(_mia(tmp_path / "b", lb=3.0, eps=2.0)).verdict == \
        Verdict.DOES_NOT_HOLD
    small = C.claim_membership_below_accountant(_mia(tmp_path / "c", lb=0.0, eps=5.76, n=40))
    assert small.verdict == Verdict.NOT_TESTABLE
    assert f"{C.perfect_attack_epsilon(40, 40, DELTA):.3g}" in small.findings[0].reason
    other_delta = C.claim_membership_below_accountant(_mia(tmp_path / "d", lb=3.0, eps=2.0, delta=0.0))
    assert other_delta.verdict == Verdict.NOT_TESTABLE and "dropped" in other_delta.findings[0].reason


# ------------------------------------------------------------------------------------------- audits

def _audit(tmp_path, audit):
    return _runs(tmp_path, [("dp", record("dp-sgd", 0, FFT, eps=4.0, audit=audit))])


def test_audit_claim(tmp_path):
    a = {"epsilon": 1.7, "delta": DELTA, "canaries": 1000, "method": "snj", "max_epsilon": 5.78}
    assert C.claim_audit_below_accountant(_audit(tmp_path / "a", a)).verdict == Verdict.HOLDS
    assert C.claim_audit_below_accountant(_audit(tmp_path / "b", {**a, "epsilon": 4.5})).verdict == \
        Verdict.DOES_NOT_HOLD
    weak = C.claim_audit_below_accountant(_audit(tmp_path / "c", {**a, "canaries": 100, "max_epsilon": 3.49}))
    assert weak.verdict == Verdict.NOT_TESTABLE and "3.49" in weak.findings[0].reason
    nested = {"input_space": {"snj": a, "fdp": {**a, "method": "fdp", "epsilon": 2.3}}}
    res = C.claim_audit_below_accountant(_audit(tmp_path / "d", nested))
    assert len(res.findings) == 2 and res.verdict == Verdict.HOLDS
    assert C.claim_audit_below_accountant(_audit(tmp_path / "e", None)).verdict == Verdict.NOT_TESTABLE


def test_audit_claim_reads_the_audit_packages_result(tmp_path):
    """A lowrankdp.audit.AuditResult dict is read as two audits (SNJ and f-DP), each with its own largest
    certifiable ε; an audit without that number gets it from lowrankdp.audit.max_certifiable_epsilon."""
    from lowrankdp.audit import audit_scores, max_certifiable_epsilon

    scores = [float(i) for i in range(1000)]
    included = [i >= 500 for i in range(1000)]  # a perfect attack on 1,000 canaries
    res = audit_scores(scores, included, k_pos=100, k_neg=100, delta=DELTA)
    got = C.claim_audit_below_accountant(_audit(tmp_path / "a", res.to_dict()))
    assert [f.setting.split(" · ")[1] for f in got.findings] == ["audit (SNJ)", "audit (f-DP)"]
    # accountant ε = 4: a perfect 100/100 guess certifies less than 4 with SNJ at m = 1000 only if its max < 4
    for f, cap in zip(got.findings, (res.max_epsilon_snj, res.max_epsilon_fdp_epsilon_delta)):
        assert (f.verdict == Verdict.NOT_TESTABLE) == (cap <= 4.0)
    bare = {"epsilon": 1.0, "delta": DELTA, "canaries": 100, "method": "snj"}
    weak = C.claim_audit_below_accountant(_audit(tmp_path / "b", bare))
    cap = max_certifiable_epsilon(canaries=100, delta=DELTA, method="snj", curve="epsilon_delta")
    assert weak.verdict == Verdict.NOT_TESTABLE and f"{cap:.3g}" in weak.findings[0].reason


def test_audit_claim_reads_the_engines_epoch_audits(tmp_path):
    """The engine stores its audits in the final EpochMetrics.audits (lowrankdp.finetune.canaries): each is read as
    its SNJ and f-DP audits, named after the audit, beside the older locations."""
    import dataclasses

    from lowrankdp.audit import audit_scores

    scores = [float(i) for i in range(1000)]
    included = [i >= 500 for i in range(1000)]
    res = audit_scores(scores, included, k_pos=50, k_neg=50, delta=DELTA)
    rec = record("dp-sgd", 0, FFT, eps=2.0)
    audits = ({"name": "white-box all iterates", **res.to_dict()}, {"name": "input-space", **res.to_dict()})
    rec = dataclasses.replace(rec, epochs=(*rec.epochs[:-1], dataclasses.replace(rec.epochs[-1], audits=audits)))
    got = C.claim_audit_below_accountant(_runs(tmp_path, [("dp", rec)]))
    names = [f.setting.split(" · ")[1] for f in got.findings]
    assert names == ["white-box all iterates (SNJ)", "white-box all iterates (f-DP)", "input-space (SNJ)",
                     "input-space (f-DP)"]
    # 100 of 100 right at m = 1000 certifies ≈ 3.47 > 2: the stored audits contradict the accountant
    assert got.verdict == Verdict.DOES_NOT_HOLD


# ------------------------------------------------------------------------------------------- sanity, limits

def test_same_base(tmp_path):
    runs = _runs(tmp_path / "a", [("fft", record("fft", 0, FFT)), ("lora", record("lora", 0, FFT))])
    assert C.claim_same_base(runs).verdict == Verdict.HOLDS
    runs = _runs(tmp_path / "b", [("fft", record("fft", 0, FFT)),
                                  ("lora", record("lora", 0, [(5.5, 7.0), (4.0, 5.0)]))])
    assert C.claim_same_base(runs).verdict == Verdict.DOES_NOT_HOLD


def test_sweep_limitations(tmp_path):
    one_seed = _rpue(tmp_path / "a", 4.5, 4.9, seeds=(0,))
    lim = C.sweep_limitations(one_seed)
    assert any("seed" in x for x in lim)
    flat = _runs(tmp_path / "b", [(f"dp-{s}", record("dp-sgd", s, [(5.0, 7.0), (4.9, 6.8)], eps=4.0))
                                  for s in SEEDS])  # utility gain 0.2 nats
    assert [x for x in C.sweep_limitations(flat) if "barely trained" in x] == [
        "the DP runs gain at most 0.20 nats of utility over the base model (< 0.5): they barely trained, so "
        "'DP is private' here means 'DP did not learn'"]
    big = _rpue(tmp_path / "c", 4.5, 4.9)  # 3 seeds, DP utility gain 2 nats
    assert C.sweep_limitations(big) == []


def test_fresh_and_fixed_projection_runs_are_different_cells(tmp_path):
    from report_fixtures import config

    items = []
    for s in SEEDS:
        for proj, u in (("fresh", 4.0), ("fixed", 4.6)):
            cfg = config("compressed-dp-sgd", s, target_epsilon=4.0, projection=proj)
            items.append((f"c-{proj}-{s}", record("compressed-dp-sgd", s, [(5.0, 7.0), (4.9, u + jitter(s))],
                                                  eps=3.9, target=4.0, cfg=cfg)))
        items.append((f"t-{s}", record("dp-sgd-targets", s, [(5.0, 7.0), (4.9, 4.3 + jitter(s + 1))], eps=3.9,
                                       target=4.0)))
    res = C.claim_compressed_vs_targets(_runs(tmp_path, items))
    # fresh (4.0) beats the baseline (4.3), fixed (4.6) does not: two findings, never one pooled cell
    assert sorted(f.verdict.value for f in res.findings) == ["does not hold", "holds"]
    assert any("fixed projection" in f.setting for f in res.findings)
