"""A light, test-only run function for exercising the sweep machinery without training.

IMPORTANT: nothing here is a measurement. ``synthetic_run`` writes a run directory in the layout of
``lowrankdp.finetune.run`` (config.json, metrics.jsonl, summary.json) whose numbers are a fixed
deterministic function of the config, and it marks every file ``"synthetic": true``; the report
prints a banner when it draws such results. It exists so the runner, the index, resume, the Ray
executor and the report can be tested in seconds. Knobs (environment, so they do not change run keys):

- ``LOWRANKDP_SYNTH_EPOCH_S``: seconds slept per epoch (default 0) — lets a test kill a run mid-way;
- ``LOWRANKDP_SYNTH_CALL_LOG``: a file to which each call appends ``<method> <seed> <pid>``.

Model names ``synthetic-fail`` (raises) and ``synthetic-crash`` (the process SIGKILLs itself, like an
out-of-memory kill) exercise failure recording.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["synthetic_run"]

_BASE = {"fft": 0.5, "lora": 0.8, "lora-fa": 0.85, "dp-sgd": 1.0, "dp-lora": 1.05, "compressed-dp-sgd": 1.1}
_FLOPS_FACTOR = {"fft": 6, "lora": 4, "lora-fa": 4, "dp-sgd": 8, "dp-lora": 4.2, "compressed-dp-sgd": 8}
_DP = {"dp-sgd", "dp-lora", "compressed-dp-sgd"}


def synthetic_run(config: dict[str, Any]) -> dict[str, Any]:
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
    (out / "config.json").write_text(json.dumps({**config, "synthetic": True}, indent=2))
    method = config["method"]
    epochs = int(config.get("epochs", 3))
    sigma = float(config.get("noise_multiplier", 0.0)) if method in _DP else 0.0
    rng = np.random.default_rng(int(config.get("seed", 0)) + 17)
    sleep = float(os.environ.get("LOWRANKDP_SYNTH_EPOCH_S", "0") or 0)
    t0 = time.time()
    with open(out / "metrics.jsonl", "w") as fh:
        for epoch in range(0, epochs + 1):
            if epoch > 0 and sleep:
                time.sleep(sleep)
            decay = math.exp(-_BASE[method] * epoch / (1.0 + sigma))
            sens = 3.0 * decay + 0.5 * sigma + 0.3
            util = 3.2 - 0.4 * (1 - decay) + (0.05 * epoch if method == "fft" else 0.0)
            n = 200
            shift = (1.5 * (1 - decay)) / (1.0 + 4 * sigma)
            s_in = rng.normal(shift, 1.0, n)
            s_out = rng.normal(0.0, 1.0, n)
            from lowrankdp.metrics import attack_report

            mia = attack_report(s_in, s_out, n_bootstrap=20, seed=epoch).to_dict(max_roc_points=60)
            steps = 10 * epoch
            if method in _DP:
                eps = 0.0 if epoch == 0 else 2.0 * epoch / max(sigma, 0.1)
                privacy = {"epsilon": eps, "delta": 1e-5, "steps": steps, "sampling_rate": 0.08,
                           "noise_multiplier": sigma, "source": "synthetic"}
                if method == "compressed-dp-sgd":
                    privacy.update(d=[128, 128, 512], r=int(config.get("rank", 8)), projection="fresh")
            else:
                privacy = {"epsilon": "inf", "delta": None, "mechanism": "none (no noise)"}
            line = {
                "epoch": epoch,
                "synthetic": True,
                "measurements": {
                    "sensitive_loss_token": sens,
                    "utility_loss": util,
                    "exposure": {"value": 19.93 * (1 - decay) / (1 + 5 * sigma), "rank": 1, "method": "synthetic",
                                 "space_size": 1_000_000},
                    "mia": {"loss": mia},
                },
                "privacy": privacy,
                "costs": {"analytic_flops_per_token": _FLOPS_FACTOR[method] * 1e6,
                          "analytic_flops_total": _FLOPS_FACTOR[method] * 1e6 * 500 * epoch,
                          "train_seconds": 0.01 * _FLOPS_FACTOR[method] * epoch,
                          "trainable_params": 100_000, "steps": steps},
            }
            fh.write(json.dumps(line) + "\n")
            fh.flush()
    summary = {"status": "ok", "reason": None, "synthetic": True, "wall_time_s": time.time() - t0}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
