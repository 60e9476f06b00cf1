"""One real (not synthetic) run through the sweep: the fork-server run process, the engine, the shared base
measurement and the result file, end to end on the embedded tiny model (seconds of training)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from lowrankdp.results import read_record  # noqa: E402
from lowrankdp.sweep import RunIndex, run_sweep  # noqa: E402
from lowrankdp.sweep.config import SweepConfig  # noqa: E402


def test_real_runs_through_the_sweep_share_the_base_measurement(tmp_path):
    cfg = SweepConfig.from_dict({
        "name": "real", "grid": {"methods": ["fft", "dp-sgd"], "models": ["tiny"], "datasets": ["cs"],
                                 "epochs": [1], "target_epsilons": [8.0]},
        "datasets": {"cs": {"generate": "customersim", "sizes": {"train": 16, "valid": 2, "test": 8},
                            "canary_repeats": 2}},
        "train": {"batch_size": 8, "max_length": 48, "exposure_max_candidates": 100, "retention": False,
                  "influence_samples": 0, "checkpoint": "none", "device": "cpu", "progress": False,
                  "grad_sample_mode": "hooks", "extra": {"measure_kwargs": {"n_bootstrap": 10}}},
        "execution": {"jobs": 1, "threads_per_run": 1},
    })
    out = tmp_path / "out"
    res = run_sweep(cfg, out, stream=None)
    assert not res.failed, res.failed
    recs = {r["config"]["method"]: read_record(out / r["run_dir"]) for r in RunIndex(out / "index.sqlite").rows()}
    fft, dp = recs["fft"], recs["dp-sgd"]
    assert fft.finished and dp.finished and [e.epoch for e in dp.epochs] == [0, 1]
    # epoch 0 (the base model) measured once and shared: identical numbers, and one of them read it from the cache
    assert fft.epochs[0].measurements["utility_loss"] == dp.epochs[0].measurements["utility_loss"]
    assert {fft.epochs[0].shared_from is None, dp.epochs[0].shared_from is None} == {True, False}
    assert len(list((out / "base").glob("base-*.json"))) == 1
    # calibrated to the target: ε reached ≤ 8 and within 2 %; σ recorded
    p = dp.privacy
    assert p.target_epsilon == 8.0 and 0.98 * 8.0 <= p.epsilon <= 8.0
    assert p.noise_multiplier == dp.config["calibrated_noise_multiplier"] > 0
    # later epochs carry the gains over the base without re-scoring it
    assert dp.epochs[1].metric("utility_loss_gain_vs_base") is not None
    assert dp.epochs[1].metric("mia.reference") is not None
