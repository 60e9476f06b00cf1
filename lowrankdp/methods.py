"""The fine-tuning methods and their properties: the one place that names them (core layer, no torch).

Every other part (the fine-tuning config and engine, the sweep config, the report, the CLI) reads the method
list and each method's properties from here. A method is described, not implemented, here: what it trains,
whether it is private (per-record clipping + Gaussian noise), which accountant gives its ε, and whether
rank / α / a projection apply.

| method | trains | private | accountant |
|---|---|---|---|
| fft | every parameter | no | none |
| lora | PEFT ``lora_A``, ``lora_B`` of the target matrices | no | none |
| lora-fa | ``lora_B`` only, ``lora_A`` frozen N(0, 1/r) (docs/theory.md §5) | no | none |
| dp-sgd | every parameter | yes | Gaussian (Poisson-subsampled) |
| dp-lora | ``lora_A``, ``lora_B`` | yes | Gaussian |
| dp-lora-fa | ``lora_B`` only, ``lora_A`` frozen N(0, 1/r) | yes | Gaussian |
| dp-sgd-targets | the target weight matrices only (what compressed DP-SGD trains) | yes | Gaussian |
| compressed-dp-sgd | the target weight matrices, noisy gradient projected by a random rank-r map | yes | projected Gaussian (docs/theory.md §4) |

``dp-sgd-targets`` is the matched baseline of compressed DP-SGD: the same parameters, clipping and noise, with
the projection as the only difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["Accountant", "MethodSpec", "METHODS", "METHOD_NAMES", "PRIVATE_METHODS", "get_method",
           "check_method"]


class Accountant(str, Enum):
    """Which privacy accountant gives a method's ε."""

    NONE = "none"  # no noise: ε = ∞
    GAUSSIAN = "gaussian"  # Poisson-subsampled Gaussian mechanism (plain DP-SGD accounting)
    PROJECTED = "projected"  # subsampled Gaussian followed by a random low-rank projection


@dataclass(frozen=True)
class MethodSpec:
    """What a method is. ``trains`` is one of "all", "adapters", "adapter_b", "target_matrices"."""

    name: str
    label: str
    color: str
    private: bool
    trains: str
    adapters: str | None  # None, "lora" (A and B train) or "lora-fa" (A frozen at N(0, 1/r))
    uses_rank: bool
    uses_alpha: bool
    projection: bool
    accountant: Accountant
    default_lr: float
    summary: str


def _m(name, label, color, *, private, trains, adapters=None, projection=False, lr, summary) -> MethodSpec:
    acct = Accountant.PROJECTED if projection else (Accountant.GAUSSIAN if private else Accountant.NONE)
    return MethodSpec(name=name, label=label, color=color, private=private, trains=trains, adapters=adapters,
                      uses_rank=adapters is not None or projection, uses_alpha=adapters is not None,
                      projection=projection, accountant=acct, default_lr=lr, summary=summary)


# Learning rates used when a config leaves ``lr`` unset: 2.5e-4 for full-parameter training as in [RPUE]
# (arXiv:2502.13313v1 §4, docs/theory.md §8); 1e-3 for adapters, the usual order of magnitude for LoRA.
METHODS: dict[str, MethodSpec] = {m.name: m for m in (
    _m("fft", "FFT", "#d62728", private=False, trains="all", lr=2.5e-4,
       summary="full fine-tuning, no noise"),
    _m("lora", "LoRA", "#1f77b4", private=False, trains="adapters", adapters="lora", lr=1e-3,
       summary="LoRA adapters (A and B train), no noise"),
    _m("lora-fa", "LoRA-FA", "#17becf", private=False, trains="adapter_b", adapters="lora-fa", lr=1e-3,
       summary="LoRA with A frozen at N(0, 1/r): a random projection of the gradient, no noise"),
    _m("dp-sgd", "DP-SGD", "#2ca02c", private=True, trains="all", lr=2.5e-4,
       summary="DP-SGD on every parameter"),
    _m("dp-lora", "DP-LoRA", "#9467bd", private=True, trains="adapters", adapters="lora", lr=1e-3,
       summary="DP-SGD on LoRA adapters"),
    _m("dp-lora-fa", "DP-LoRA-FA", "#8c564b", private=True, trains="adapter_b", adapters="lora-fa", lr=1e-3,
       summary="DP-SGD on LoRA-FA's B (A frozen at N(0, 1/r))"),
    _m("dp-sgd-targets", "DP-SGD (target matrices)", "#bcbd22", private=True, trains="target_matrices",
       lr=2.5e-4, summary="DP-SGD on the matrices compressed DP-SGD trains (its matched baseline)"),
    _m("compressed-dp-sgd", "compressed DP-SGD", "#ff7f0e", private=True, trains="target_matrices",
       projection=True, lr=2.5e-4,
       summary="DP-SGD on the target matrices with the noisy gradient projected to rank r"),
)}

#: method names in report order
METHOD_NAMES: tuple[str, ...] = tuple(METHODS)
#: methods with per-record clipping and Gaussian noise
PRIVATE_METHODS: tuple[str, ...] = tuple(n for n, m in METHODS.items() if m.private)


def check_method(name: object, *, field: str = "method") -> str:
    """``name`` as a method name, or ValueError naming ``field`` and the allowed values."""
    value = getattr(name, "value", name)
    if not isinstance(value, str) or value not in METHODS:
        raise ValueError(f"{field} must be one of {', '.join(METHOD_NAMES)}, got {name!r}")
    return value


def get_method(name: object) -> MethodSpec:
    """The :class:`MethodSpec` of ``name`` (ValueError for an unknown method)."""
    return METHODS[check_method(name)]
