"""Fine-tuning engine (torch layer): FFT, LoRA, LoRA-FA, DP-SGD, DP-LoRA and compressed DP-SGD.

    from lowrankdp.finetune import FinetuneConfig, run
    summary = run(FinetuneConfig(method="dp-lora", data="data/cs", out_dir="runs/dplora", epochs=3))

One ``run(config)`` trains a Hugging Face causal LM with the chosen method (transformers + peft +
opacus), evaluates it after every epoch (``lowrankdp.measure.measure_all``, knowledge retention,
ε from ``lowrankdp.accounting``, influence decomposition, costs) and writes a run directory
(``config.json``, ``metrics.jsonl``, ``summary.json``, ``checkpoints/``, and ``model/``: the final model as a
plain Hugging Face causal LM that ``lowrankdp.models.load_base(RUN_DIR)`` loads). ``export_model(run_dir)``
writes that folder from a stored checkpoint. See ``docs/finetune.md``.
"""

from __future__ import annotations

from .config import DEFAULT_LR, DP_METHODS, LORA_METHODS, METHODS, FinetuneConfig, Method
from .engine import Diverged, StepRunner, load_model, read_metrics, resolve_device, run
from .export import export_model

__all__ = ["FinetuneConfig", "Method", "METHODS", "DP_METHODS", "LORA_METHODS", "DEFAULT_LR", "run",
           "read_metrics", "export_model", "StepRunner", "load_model", "resolve_device", "Diverged"]
