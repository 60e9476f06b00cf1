"""Model set-up per method: which parameters train, LoRA/LoRA-FA adapters, compressed-DP projections.

| method | trains |
|---|---|
| fft, dp-sgd | every parameter |
| lora, dp-lora | PEFT ``lora_A`` and ``lora_B`` of the target modules |
| lora-fa, dp-lora-fa | ``lora_B`` only; ``lora_A`` frozen with i.i.d. N(0, 1/r) entries set here ([LRP]; docs/theory.md §5) |
| dp-sgd-targets | the weight matrices of the target modules, no projection (compressed DP-SGD's matched baseline) |
| compressed-dp-sgd | the weight matrices of the target modules (everything else frozen, so the projected-Gaussian accountant's assumption "every trained parameter is projected" holds; docs/theory.md §4.2) |

The table of what each method is lives in :mod:`lowrankdp.methods`; this module implements it.

The base model must already be on its device when :func:`setup_model` is called (Opacus bug https://github.com/pytorch/opacus/issues/820:
DP-LoRA is silently broken if the model is moved after ``get_peft_model``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["default_target_modules", "adapted_linears", "setup_model", "ProjectionState", "MethodSetup",
           "lora_pairs"]

_NEOX_TARGETS = ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")


def default_target_modules(model: nn.Module) -> tuple[str, ...]:
    """GPT-NeoX: its four block projections. Otherwise: every Linear leaf name except the output head."""
    if getattr(getattr(model, "config", None), "model_type", None) == "gpt_neox":
        return _NEOX_TARGETS
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = sorted({n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear) and m is not head})
    return tuple(names)


def adapted_linears(model: nn.Module, targets: tuple[str, ...]) -> dict[str, nn.Linear]:
    """Linear modules whose last name component is in ``targets`` (PEFT's suffix matching), head excluded."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return {n: m for n, m in model.named_modules()
            if isinstance(m, nn.Linear) and m is not head and n.split(".")[-1] in targets}


def check_rank(spec, rank: int, layers: dict[str, nn.Linear], targets: tuple[str, ...]) -> None:
    if not layers:
        raise ValueError(f"target_modules must match at least one Linear layer of the model, got {targets!r}")
    for name, lin in layers.items():
        limit = lin.in_features if spec.projection else min(lin.in_features, lin.out_features)
        if rank > limit:
            what = "input dimension" if spec.projection else "min(d_in, d_out)"
            raise ValueError(f"rank must be <= the {what} of every adapted layer, got rank={rank} but layer "
                             f"{name!r} is {lin.out_features}x{lin.in_features}")


@dataclass
class ProjectionState:
    """Random rank-r projections for compressed DP-SGD: per weight ``W`` (d_out x d_in), ``A`` (r x d_in) with
    N(0, 1/r) entries; the noised gradient ``G`` becomes ``G AᵀA`` (= ``M(V+E)`` with ``M = AᵀA``, a Wishart
    matrix with E[M] = I: docs/theory.md §4, mechanism M2). Post-processing of ``A(V+E)``, so the projected-Gaussian
    accountant applies. ``fresh``: new A every step; ``fixed``: one A per matrix for the whole run."""

    mode: str
    rank: int
    params: dict[str, nn.Parameter]
    generator: torch.Generator
    fixed: dict[str, torch.Tensor] = field(default_factory=dict)
    steps: int = 0
    last: dict[str, torch.Tensor] = field(default_factory=dict)  # the A applied at the latest step (audits read it)

    def draw(self, p: nn.Parameter) -> torch.Tensor:
        d_in = p.shape[1]
        return torch.randn(self.rank, d_in, generator=self.generator, device=p.device,
                           dtype=torch.float32) / self.rank ** 0.5

    def init_fixed(self) -> None:
        if self.mode == "fixed" and not self.fixed:
            self.fixed = {n: self.draw(p) for n, p in self.params.items()}

    def apply(self, optimizer) -> None:
        """Step hook (after clip + noise + scaling, before the optimizer update)."""
        for n, p in self.params.items():
            if p.grad is None:
                continue
            A = self.fixed[n] if self.mode == "fixed" else self.draw(p)
            self.last[n] = A
            g = p.grad.float()
            p.grad = ((g @ A.T) @ A).to(p.grad.dtype)
        self.steps += 1

    @property
    def dims(self) -> dict[str, tuple[int, int]]:
        return {n: (int(p.shape[0]), int(p.shape[1])) for n, p in self.params.items()}

    @property
    def d(self) -> int:
        """Accountant dimension: the smallest projected input dimension (worst case, docs/theory.md §4.2)."""
        return min(int(p.shape[1]) for p in self.params.values())

    def state_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "rank": self.rank, "generator": self.generator.get_state(),
                "fixed": {k: v.cpu() for k, v in self.fixed.items()}, "steps": self.steps}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.generator.set_state(sd["generator"])
        dev = next(iter(self.params.values())).device
        self.fixed = {k: v.to(dev) for k, v in sd["fixed"].items()}
        self.steps = int(sd["steps"])


@dataclass
class MethodSetup:
    model: nn.Module  # the model to train (PEFT-wrapped for LoRA methods)
    targets: tuple[str, ...]
    adapted: dict[str, tuple[int, int]]  # layer name -> (d_out, d_in)
    projection: ProjectionState | None = None
    notes: list[str] = field(default_factory=list)


def lora_pairs(model: nn.Module) -> dict[str, tuple[nn.Parameter, nn.Parameter, nn.Linear, float]]:
    """For a PEFT model: layer name -> (lora_A weight, lora_B weight, base Linear, scaling)."""
    out = {}
    for name, mod in model.named_modules():
        if hasattr(mod, "lora_A") and hasattr(mod, "base_layer") and "default" in getattr(mod, "lora_A", {}):
            out[name] = (mod.lora_A["default"].weight, mod.lora_B["default"].weight, mod.base_layer,
                         float(mod.scaling["default"]))
    return out


def setup_model(model: nn.Module, config, *, generator_seed: int) -> MethodSetup:
    """Freeze/unfreeze and wrap ``model`` (already on its device) for ``config.method``."""
    method = config.method
    spec = config.spec
    targets = config.target_modules or default_target_modules(model)
    layers = adapted_linears(model, targets)
    if spec.uses_rank:
        check_rank(spec, config.rank, layers, targets)
    adapted = {n: (m.out_features, m.in_features) for n, m in layers.items()}
    gen = torch.Generator(device="cpu").manual_seed(generator_seed)
    notes: list[str] = []

    if spec.trains == "all":
        for p in model.parameters():
            p.requires_grad_(True)
        return MethodSetup(model, targets, adapted, None, notes)

    if spec.trains == "target_matrices":
        for p in model.parameters():
            p.requires_grad_(False)
        params = {}
        for n, m in layers.items():
            m.weight.requires_grad_(True)
            params[n + ".weight"] = m.weight
            if m.bias is not None:
                notes.append("biases of target layers are frozen (only projected matrices train)")
        if not spec.projection:
            return MethodSetup(model, targets, adapted, None, sorted(set(notes)))
        dev = next(iter(params.values())).device
        pgen = torch.Generator(device=dev).manual_seed(generator_seed + 1)
        proj = ProjectionState(config.projection, config.rank, params, pgen)
        proj.init_fixed()
        return MethodSetup(model, targets, adapted, proj, sorted(set(notes)))

    # LoRA family (PEFT)
    from peft import LoraConfig, get_peft_model

    lcfg = LoraConfig(r=config.rank, lora_alpha=config.alpha, target_modules=list(targets),
                      lora_dropout=config.lora_dropout, bias="none", task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]):  # PEFT's own init of A uses the global RNG: make it seed-determined
        torch.manual_seed(generator_seed)
        pmodel = get_peft_model(model, lcfg)
    pairs = lora_pairs(pmodel)
    with torch.no_grad():
        for name, (A, B, _, _) in pairs.items():
            if spec.adapters == "lora-fa":
                # entries N(0, 1/r): std 1/sqrt(r) (docs/theory.md §5: PEFT's inits do not give variance 1/r)
                A.copy_((torch.randn(A.shape, generator=gen) / config.rank ** 0.5).to(A.dtype))
                A.requires_grad_(False)
            if config.lora_b_init_std > 0:
                B.copy_((torch.randn(B.shape, generator=gen) * config.lora_b_init_std).to(B.dtype))
    if spec.adapters == "lora-fa":
        notes.append("lora_A frozen with i.i.d. N(0, 1/r) entries (set by lowrankdp, not PEFT's init)")
    if config.lora_b_init_std > 0:
        notes.append(f"lora_B initialised N(0, {config.lora_b_init_std}^2) (test option; PEFT default is 0)")
    return MethodSetup(pmodel, targets, adapted, None, notes)


def trainable_named_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]
