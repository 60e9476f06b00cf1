"""Slow: FFT memorises sensitive tokens faster than LoRA, DP-SGD and DP-LoRA ([RPUE]; docs/theory.md §8.6).

Embedded tiny base model (``lowrankdp.models.load_base("tiny")``, built and cached on first use), a
CustomerSim-like dataset with a canary, the same epochs, batch and seed for every method, each method at
its default learning rate (``lowrankdp.methods.MethodSpec.default_lr``). About 5 minutes on one CPU thread.

Run as a script to print the comparison table shown in docs/finetune.md::

    .venv/bin/python tests/test_finetune_slow.py
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import pytest

METHODS = ("fft", "lora", "dp-sgd", "dp-lora")
EPOCHS = 4


def compare(root: Path, *, epochs: int = EPOCHS) -> dict[str, dict]:
    import torch

    torch.set_num_threads(1)
    from lowrankdp.data import generate
    from lowrankdp.finetune import FinetuneConfig, run
    from lowrankdp.results import read_record

    data = generate("customersim", out_dir=root / "data", seed=1, sizes={"train": 64, "valid": 8, "test": 32},
                    canary_repeats=8, canary_digits=4)
    out = {}
    for m in METHODS:
        cfg = FinetuneConfig(method=m, model="tiny", data=str(data), out_dir=str(root / m), epochs=epochs,
                             batch_size=8, max_length=256, rank=16, alpha=16.0, noise_multiplier=1.0,
                             max_grad_norm=1.0, delta=1e-5, measure=True, exposure_max_candidates=100, retention=False,
                             influence_samples=0,
                             progress=False, eval_every=epochs, seed=0)
        s = run(cfg)
        lines = [e.to_dict() for e in read_record(cfg.out_dir).epochs]
        for ln in lines:  # the losses every run logs come from measure_all
            ln["train_sensitive_loss"] = (ln["measurements"] or {}).get("sensitive_loss_token")
            ln["eval_nonsensitive_loss"] = (ln["measurements"] or {}).get("utility_loss")
        out[m] = {"status": s.status.value, "reason": s.reason, "first": lines[0], "last": lines[-1],
                  "wall_s": s.wall_time_s}
    return out


@pytest.mark.slow
def test_fft_memorises_sensitive_tokens_more_than_lora_and_dp(tmp_path):
    res = compare(tmp_path)
    for m, r in res.items():
        assert r["status"] == "ok", (m, r["reason"])
        assert r["last"]["epoch"] == EPOCHS
    loss = {m: r["last"]["train_sensitive_loss"] for m, r in res.items()}
    assert all(math.isfinite(v) for v in loss.values())
    # every method starts from the same base model and data
    assert len({round(r["first"]["train_sensitive_loss"], 9) for r in res.values()}) == 1
    for other in ("lora", "dp-sgd", "dp-lora"):
        assert loss["fft"] < loss[other] - 0.1, loss
    # DP runs report a finite ε, noise-free ones ε = ∞
    for m in ("dp-sgd", "dp-lora"):
        assert 0 < res[m]["last"]["privacy"]["epsilon"] < math.inf
    assert res["fft"]["last"]["privacy"]["epsilon"] == "inf"


if __name__ == "__main__":  # pragma: no cover - demonstration for docs/finetune.md
    with tempfile.TemporaryDirectory() as d:
        res = compare(Path(d), epochs=int(sys.argv[1]) if len(sys.argv) > 1 else EPOCHS)
    print("| method | status | train sensitive loss, epoch 0 | epoch %d | test non-sensitive loss | ε (δ=1e-5) "
          "| wall s |" % EPOCHS)
    print("|---|---|---|---|---|---|---|")
    for m, r in res.items():
        eps = r["last"]["privacy"]["epsilon"]
        print(f"| {m} | {r['status']} | {r['first']['train_sensitive_loss']:.3f} | "
              f"{r['last']['train_sensitive_loss']:.3f} | {r['last']['eval_nonsensitive_loss']:.3f} | "
              f"{eps if isinstance(eps, str) else format(eps, '.2f')} | {r['wall_s']:.0f} |")
