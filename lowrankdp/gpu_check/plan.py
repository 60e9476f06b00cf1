"""What each mode of the GPU check runs and how long each stage may take (docs/gpu.md).

Two modes share every line of code:

* ``gpu`` — the real check on one CUDA device, at most :data:`GPU_BUDGET_S` seconds in all;
* ``dry`` — the CPU rehearsal in the default test suite: the same stages at toy sizes, so a typo in
  the GPU path fails on CI rather than on the first (rare, metered) GPU machine.

Each stage runs in its own process group with a time limit: ``min(its cap, what is left of the budget
minus the floors of the stages after it)``, so a slow stage is cut and the ones after it still run.

Core layer: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._validate import check_choice, check_real

__all__ = ["STAGES", "MODES", "GPU_BUDGET_S", "CheckPlan", "plan_for"]

#: stage names in run order; "replication" of the issue is pretrain + sweep + replication-report
STAGES: tuple[str, ...] = ("setup", "tests", "benchmark", "pretrain", "sweep", "replication-report")
MODES: tuple[str, ...] = ("gpu", "dry")
#: the whole check on one H200-class GPU (at most 9 minutes, docs/gpu.md)
GPU_BUDGET_S = 540.0


@dataclass(frozen=True)
class CheckPlan:
    mode: str
    budget_s: float
    caps: dict[str, float]  # longest a stage may run
    floors: dict[str, float]  # time kept back for a stage while earlier ones run
    device: str  # the device every stage uses ("cuda" or "cpu")
    test_env: dict[str, str] = field(default_factory=dict)
    test_args: tuple[str, ...] = ()
    test_files: tuple[str, ...] | None = None  # None: every tests/test_*.py with a @pytest.mark.gpu test
    benchmark_args: tuple[str, ...] = ()
    pretrain_args: tuple[str, ...] = ()  # arguments of `lowrankdp model pretrain` (besides --out, --device)
    sweep_preset: str = "gpu"
    sweep_set: dict[str, Any] = field(default_factory=dict)  # dotted overrides of the preset
    stage_env: dict[str, str] = field(default_factory=dict)  # extra environment for pretrain and sweep

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "budget_s": self.budget_s, "caps": dict(self.caps), "floors": dict(self.floors),
                "device": self.device, "test_env": dict(self.test_env), "test_args": list(self.test_args),
                "test_files": None if self.test_files is None else list(self.test_files),
                "benchmark_args": list(self.benchmark_args), "pretrain_args": list(self.pretrain_args),
                "sweep_preset": self.sweep_preset, "sweep_set": dict(self.sweep_set),
                "stage_env": dict(self.stage_env)}


def plan_for(mode: str, *, budget_s: float | None = None) -> CheckPlan:
    """The plan of ``mode`` ("gpu" or "dry"); ``budget_s`` replaces the total budget."""
    mode = check_choice("mode", mode, MODES)
    if budget_s is not None:
        budget_s = check_real("budget_s", budget_s, lo=0.0, lo_open=True)
    if mode == "gpu":
        return CheckPlan(
            mode="gpu",
            budget_s=GPU_BUDGET_S if budget_s is None else budget_s,
            # expected on an H200 (estimates; not yet run on one): setup 40 s (the embedded tiny model is
            # pretrained on the CPU), tests 60 s, benchmark 100 s, pretrain 90 s (about 15 s of corpus,
            # tokenizer and encoding on the host, 60 s of training), sweep 160 s (8 runs, two waves of four),
            # report 15 s: about 465 s of the 540
            caps={"setup": 120, "tests": 110, "benchmark": 150, "pretrain": 120, "sweep": 200,
                  "replication-report": 45},
            floors={"setup": 20, "tests": 30, "benchmark": 40, "pretrain": 40, "sweep": 60,
                    "replication-report": 20},
            device="cuda",
            test_env={"LOWRANKDP_GPU_TEST_DEVICE": "cuda"},
            test_args=(),
            benchmark_args=("--gpu-only", "--timeout-s", "70"),
            # a pythia-70m body, embedding rows = the tokenizer's (no dead rows), 60 s of bf16 autocast
            pretrain_args=("--shape", "pythia-70m-shape", "--vocab", "tokenizer", "--tokenizer-vocab", "4096",
                           "--corpus-docs", "60000", "--seconds", "60", "--max-steps", "20000",
                           "--batch-size", "64", "--block-size", "256", "--lr", "1e-3", "--warmup-steps", "100"),
            sweep_preset="gpu",
            sweep_set={},
            # fp32 fine-tuning runs use TF32 tensor cores for their matrix products
            stage_env={"TORCH_ALLOW_TF32_CUBLAS_OVERRIDE": "1"},
        )
    return CheckPlan(
        mode="dry",
        budget_s=300.0 if budget_s is None else budget_s,
        caps={"setup": 150, "tests": 120, "benchmark": 90, "pretrain": 60, "sweep": 150, "replication-report": 60},
        floors={"setup": 5, "tests": 5, "benchmark": 5, "pretrain": 5, "sweep": 5, "replication-report": 5},
        device="cpu",
        test_env={"LOWRANKDP_GPU_TEST_DEVICE": "cpu"},
        test_args=(),
        # the GPU suite itself; other files' gpu tests skip without CUDA (after building their fixtures)
        test_files=("tests/test_gpu.py",),
        benchmark_args=("--settings", "dry", "--device", "cpu", "--process", "per-setting", "--profile",
                        "--rows", "fft,lora,dp-sgd (ghost),dp-lora (ghost)", "--timeout-s", "80"),
        pretrain_args=("--shape", "pythia-70m-shape", "--layers", "2", "--hidden", "64", "--heads", "4",
                       "--vocab", "tokenizer", "--tokenizer-vocab", "400", "--corpus-docs", "300",
                       "--heldout-docs", "20", "--seconds", "2", "--max-steps", "30", "--batch-size", "4",
                       "--block-size", "64", "--lr", "1e-3", "--warmup-steps", "3"),
        sweep_preset="gpu",
        sweep_set={
            "grid.methods": ["fft", "dp-sgd"], "grid.epochs": [1],
            "datasets.customersim.sizes": {"train": 24, "valid": 4, "test": 16},
            "datasets.customersim.canary_repeats": 2,
            "train.device": "cpu", "train.batch_size": 8, "train.max_length": 64, "train.measure_batch_size": 16,
            "train.exposure_max_candidates": 50, "train.retention_max_tokens": 256, "train.eval_every": 1,
            "train.influence_samples": 0,
            "train.extra": {"measure_kwargs": {"n_bootstrap": 20, "exposure_sample_size": 50}},
            "method.dp-sgd.batch_size": 8, "method.dp-sgd.micro_batch_size": 4,
            "execution.jobs": 2, "execution.timeout_s": 120, "execution.threads_per_run": 1,
        },
        stage_env={},
    )
