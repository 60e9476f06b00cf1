"""``lowrankdp gpu-check``: the GPU path in one time-boxed call, and its CPU rehearsal (docs/gpu.md).

Stages, each in its own process with a time limit, each failure recorded without stopping the others:

1. ``setup`` — environment (torch, CUDA device, carried wheels) and the embedded tiny model;
2. ``tests`` — ``pytest -m gpu`` (every method on CUDA in bf16 and fp32, ghost and hooks clipping, opacus
   Poisson sampling, measurements and exposure on CUDA, seeded determinism);
3. ``benchmark`` — ``benchmarks/finetune.py`` GPU rows (pythia-160m and pythia-410m shapes) with the
   step-time targets and a profile of each row;
4. ``pretrain``, ``sweep``, ``replication-report`` — a pythia-70m-shaped base pretrained on the device, the
   ``gpu`` sweep preset on it (thousands of records, DP batches of 1,024), attacks and exposure;

then the ``gpu_check`` page (Markdown and JSON) in ``docs/results`` and a one-screen summary. ``mode="dry"`` runs the same stages on
the CPU at toy sizes (``tests/test_gpu_check.py``).

    from lowrankdp.gpu_check import run_check
    doc = run_check(mode="gpu", copy_to="/tmp/out")   # what `make gpu-check` runs
    print(doc["screen"])

Core layer: torch is imported only by the stage processes.
"""

from __future__ import annotations

from .check import RESULT_FILES, StageResult, gpu_test_files, run_check, run_command
from .plan import GPU_BUDGET_S, MODES, STAGES, CheckPlan, plan_for

__all__ = ["run_check", "run_command", "StageResult", "gpu_test_files", "RESULT_FILES", "CheckPlan", "plan_for",
           "STAGES", "MODES", "GPU_BUDGET_S"]
