"""A light, test-only run function for exercising the sweep machinery without training.

IMPORTANT: nothing here is a measurement. ``synthetic_run`` writes a run directory in the layout of
``lowrankdp.finetune.run`` (one ``result.json``, a :class:`lowrankdp.results.RunRecord`) whose numbers are a fixed
deterministic function of the config, and marks the record ``synthetic=True``; the report prints a banner when it
draws such results. It is registered as the sweep runner ``"synthetic"``. It exists so the runner, the index, resume, the Ray
executor and the report can be tested in seconds. Knobs (environment, so they do not change run keys):

- ``LOWRANKDP_SYNTH_EPOCH_S``: seconds slept per epoch (default 0) — lets a test kill a run mid-way;
- ``LOWRANKDP_SYNTH_CALL_LOG``: a file to which each call appends ``<method> <seed> <pid>``.

Model names ``synthetic-fail`` (raises) and ``synthetic-crash`` (the process SIGKILLs itself, like an
out-of-memory kill) exercise failure recording.
"""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..methods import METHOD_NAMES, METHODS
from ..results import EpochMetrics, Guarantee, Privacy, RunRecord, RunStatus, write_record

__all__ = ["synthetic_run"]


def _epoch(method: str, config: dict[str, Any], epoch: int, rng) -> EpochMetrics:
    from lowrankdp.metrics import attack_report

    spec = METHODS[method]
    sigma = float(config.get("noise_multiplier", 1.0)) if spec.private else 0.0
    base = 0.5 + 0.1 * METHOD_NAMES.index(method)
    decay = math.exp(-base * epoch / (1.0 + sigma))
    shift = (1.5 * (1 - decay)) / (1.0 + 4 * sigma)
    noise = 0.0 if epoch == 0 else 0.02 * float(rng.normal())  # seeds differ after training, not before
    mia = attack_report(rng.normal(shift, 1.0, 200), rng.normal(0.0, 1.0, 200), n_bootstrap=20,
                        seed=epoch).to_dict(max_roc_points=60)
    steps = 10 * epoch
    if spec.private:
        privacy = Privacy(accountant="rdp", epsilon=0.0 if epoch == 0 else 2.0 * epoch / max(sigma, 0.1),
                          delta=1e-5, noise_multiplier=sigma, sampling_rate=0.08, steps=steps,
                          projection=str(config.get("projection", "fresh")) if spec.projection else "none",
                          d=(128, 512) if spec.projection else None,
                          r=int(config.get("rank", 8)) if spec.projection else None,
                          guarantee=Guarantee.BOUND, source="synthetic")
    else:
        privacy = Privacy.none()
    f = 6 if method == "fft" else (4 if spec.adapters else 8)
    return EpochMetrics(
        epoch=epoch, step=steps, privacy=privacy,
        measurements={"sensitive_loss_token": 3.0 * decay + 0.5 * sigma * (1 - decay) + 0.3 + noise,
                      "utility_loss": 3.2 - 0.4 * (1 - decay) + (0.05 * epoch if method == "fft" else 0.0),
                      "exposure": {"value": 19.93 * (1 - decay) / (1 + 5 * sigma), "rank": 1, "method": "synthetic",
                                   "space_size": 1_000_000},
                      "mia": {"loss": mia}},
        costs={"analytic_flops_per_token": f * 1e6, "analytic_flops_total": f * 1e6 * 500 * epoch,
               "measured_flops_per_token": f * 1.1e6, "train_seconds": 0.01 * f * epoch,
               "trainable_params": 100_000, "steps": steps})


def synthetic_run(config: dict[str, Any]) -> RunRecord:
    out = Path(config["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    log = os.environ.get("LOWRANKDP_SYNTH_CALL_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{config['method']} {config.get('seed')} {os.getpid()} {out.name}\n")
    if config.get("model") == "synthetic-fail":
        raise RuntimeError("synthetic failure requested by model name")
    if config.get("model") == "synthetic-crash":
        os.kill(os.getpid(), signal.SIGKILL)
    method = config["method"]
    cfg = {k: v for k, v in config.items() if k != "out_dir"}
    rng = np.random.default_rng(int(config.get("seed", 0)) + 17)
    sleep = float(os.environ.get("LOWRANKDP_SYNTH_EPOCH_S", "0") or 0)
    from ..provenance import provenance

    prov = provenance()
    t0 = time.time()
    epochs: list[EpochMetrics] = []
    for epoch in range(0, int(config.get("epochs", 3)) + 1):
        if epoch > 0 and sleep:
            time.sleep(sleep)
        epochs.append(_epoch(method, config, epoch, rng))
        status = RunStatus.RUNNING
        write_record(out, RunRecord(method=method, status=status, config=cfg, provenance=prov, epochs=tuple(epochs),
                                    synthetic=True, wall_time_s=time.time() - t0))
    rec = RunRecord(method=method, status=RunStatus.OK, config=cfg, provenance=prov, epochs=tuple(epochs),
                    synthetic=True, wall_time_s=time.time() - t0)
    write_record(out, rec)
    return rec
