"""Cost accounting: analytic FLOPs (docs/theory.md §6), measured FLOPs, wall time, tokens/s, peak memory.

Analytic count per *target* token, with ``N`` = parameters that take part in a matrix multiply per token
(every ``nn.Linear`` weight including the output head; the input embedding is a lookup and costs no
FLOPs) — the reconstruction of [RPUE]'s ratios in docs/theory.md §6:

| method | formula | why |
|---|---|---|
| fft | 6N | forward 2N + backward 4N (activation and weight gradients) |
| lora, lora-fa, dp-lora, dp-lora-fa | 4N | no weight gradients for frozen weights (adapter terms, O(r/d), ignored) |
| dp-sgd, dp-sgd-targets | 8N | per-example weight gradients on top of FFT (dp-sgd-targets: an upper count, it skips the head's) |
| compressed-dp-sgd | 8N + projection | DP-SGD plus ``4 r d_in d_out`` per projected matrix per *step* |

So DP-SGD/FFT = 1.33 and DP-SGD/LoRA = 2. Measured FLOPs come from ``torch.utils.flop_counter``
(matrix multiplies and attention only; element-wise work is not counted — it errs low), taken on one
real training step and divided by that step's target tokens.
"""

from __future__ import annotations

import resource
import sys
from typing import Any

import torch
from torch import nn

from ..methods import METHODS, get_method

__all__ = ["matmul_parameter_count", "analytic_flops_per_token", "ANALYTIC_FORMULA", "peak_memory",
           "reset_peak_memory", "count_flops"]

def _factor(method: str) -> int:
    """FLOPs per token per matmul weight: forward 2, backward 4 (input and weight gradients), of which adapters
    skip the frozen weights' 2; per-example gradients (DP) add 2 (docs/theory.md §6)."""
    spec = get_method(method)
    if spec.adapters is not None:
        return 4
    return 8 if spec.private else 6


_PROJECTION_TERM = " + 4*r*sum(d_in*d_out)/tokens_per_step"
#: the analytic formula of each method, as text
ANALYTIC_FORMULA = {name: f"{_factor(name)}N" + (_PROJECTION_TERM if spec.projection else "")
                    for name, spec in METHODS.items()}


def matmul_parameter_count(model: nn.Module) -> int:
    """``N``: weights of every ``nn.Linear`` (PEFT base layers included, adapters excluded)."""
    total = 0
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and not any(part.startswith("lora_") for part in name.split(".")):
            total += m.weight.numel()
    return int(total)


def analytic_flops_per_token(method: str, n_params: int, *, rank: int | None = None,
                             projected_dims: list[tuple[int, int]] | None = None,
                             tokens_per_step: float | None = None) -> float:
    f = float(_factor(method) * n_params)
    if get_method(method).projection and projected_dims and tokens_per_step:
        f += 4.0 * rank * sum(a * b for a, b in projected_dims) / tokens_per_step
    return f


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict[str, Any]:
    """CUDA: max allocated bytes since the last reset. CPU: the process's peak RSS (includes everything
    the process did before, so compare CPU numbers only between fresh processes)."""
    if device.type == "cuda":
        return {"bytes": int(torch.cuda.max_memory_allocated(device)), "kind": "cuda_max_allocated"}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss = rss if sys.platform == "darwin" else rss * 1024
    return {"bytes": int(rss), "kind": "process_peak_rss"}


class count_flops:
    """Context manager: total FLOPs of the ops run inside (``torch.utils.flop_counter.FlopCounterMode``)."""

    def __init__(self):
        from torch.utils.flop_counter import FlopCounterMode

        self._mode = FlopCounterMode(display=False)
        self.total: int | None = None

    def __enter__(self):
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        self._mode.__exit__(*exc)
        self.total = int(self._mode.get_total_flops())
        return False
