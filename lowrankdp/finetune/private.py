"""Opacus integration: Poisson sampling, per-example clipping (ghost or hooks), noise, accumulation.

`PrivateTrainer` wraps ``PrivacyEngine.make_private`` for one run:

* Poisson sampling at rate ``q = 1 / ceil(n / batch_size)`` (opacus's ``DPDataLoader`` over record
  indices); the logical batch is split into physical micro-batches with the same skip-step mechanism
  opacus's ``BatchMemoryManager`` uses (``optimizer.signal_skip_step``), so clipping is per record and
  noise is added once per logical batch;
* per-example clipping in *ghost* mode (``grad_sample_mode="ghost"``: per-sample gradient norms without
  materialising per-sample gradients, then a second backward of the clipping-weighted per-sequence loss —
  opacus's ``DPTensorFastGradientClipping``, fed with our per-sequence loss) or *hooks* mode
  (materialised per-sample gradients);
* an empty Poisson batch (which a Hugging Face forward cannot take) is still a step of the mechanism:
  the update is pure noise and the accountant counts it (:meth:`PrivateTrainer.noise_only_step`).

Privacy unit: the record (sequence), add/remove neighbouring. ``clip_unit="token"`` clips every target
token's gradient separately (each token becomes a row): the ε then protects one token, not a record.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .losses import expand_per_token, per_sequence_loss

__all__ = ["PrivateTrainer", "choose_grad_sample_mode", "forward_logits"]


def forward_logits(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    out = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    return out.logits if hasattr(out, "logits") else out[0]


def choose_grad_sample_mode(model: nn.Module, requested: str) -> tuple[str, str]:
    """Resolve ``auto``: ghost when opacus has a norm or grad sampler for every trainable layer type."""
    if requested != "auto":
        return requested, f"requested {requested!r}"
    from opacus.grad_sample import GradSampleModuleFastGradientClipping as G

    known = set(G.NORM_SAMPLERS) | set(G.GRAD_SAMPLERS)
    missing = sorted({type(m).__name__ for m in model.modules()
                      if any(p.requires_grad for p in m.parameters(recurse=False)) and type(m) not in known})
    if missing:
        return "hooks", f"auto: ghost clipping has no sampler for {missing}; using hooks (functorch fallback)"
    return "ghost", "auto: every trainable layer type supported by ghost clipping"


class PrivateTrainer:
    """Holds the opacus-wrapped module, DP optimizer and Poisson data loader of one DP run."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        n_train: int,
        batch_size: int,
        micro_batch_size: int,
        noise_multiplier: float,
        max_grad_norm: float,
        grad_sample_mode: str = "auto",
        clip_unit: str = "sequence",
        accountant: str = "rdp",
        noise_seed: int = 0,
        step_hooks: tuple[Callable, ...] = (),
    ):
        from opacus import PrivacyEngine

        self.mode, self.mode_reason = choose_grad_sample_mode(model, grad_sample_mode)
        self.clip_unit = clip_unit
        self.micro = micro_batch_size
        self.noise_multiplier = float(noise_multiplier)
        self.max_grad_norm = float(max_grad_norm)
        dev = next(p for p in model.parameters()).device
        self.noise_generator = torch.Generator(device=dev).manual_seed(noise_seed)
        loader = DataLoader(TensorDataset(torch.arange(n_train)), batch_size=batch_size)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ss]ecure RNG.*")
            warnings.filterwarnings("ignore", message=".*Optimal order.*")
            # opacus's accountant is only a cross-check: RDP for "rdp", its PRV accountant for "pld"
            self.opacus_accountant = {"rdp": "rdp", "pld": "prv"}.get(accountant, "rdp")
            self.engine = PrivacyEngine(accountant=self.opacus_accountant)
            res = self.engine.make_private(
                module=model, optimizer=optimizer, data_loader=loader,
                noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
                poisson_sampling=True, grad_sample_mode=self.mode, loss_reduction="mean",
                criterion=nn.CrossEntropyLoss(), noise_generator=self.noise_generator,
            )
        if self.mode == "ghost":
            self.module, self.optimizer, _criterion, self.loader = res
        else:
            self.module, self.optimizer, self.loader = res
        self.sample_rate = 1.0 / len(self.loader)
        self.expected_batch_size = self.optimizer.expected_batch_size
        acc_hook = self.optimizer.step_hook
        hooks = tuple(h for h in step_hooks if h is not None)

        def chained(opt):  # projection (post-processing) first, then the accountant's bookkeeping
            for h in hooks:
                h(opt)
            if acc_hook is not None:
                acc_hook(opt)

        self.optimizer.attach_step_hook(chained)
        self.steps = 0

    # ------------------------------------------------------------------ one logical batch
    def _chunks(self, input_ids, attention_mask):
        if self.clip_unit == "token":
            ids, att, lmask, _ = expand_per_token(input_ids, attention_mask)
        else:
            ids, att, lmask = input_ids, attention_mask, None
        n = ids.shape[0]
        for s in range(0, n, self.micro):
            yield ids[s:s + self.micro], att[s:s + self.micro], (None if lmask is None else lmask[s:s + self.micro])

    def step(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
             on_loss: Callable[[torch.Tensor], None] | None = None) -> dict:
        """One DP-SGD step on a Poisson batch. Returns {'loss', 'n_seq', 'n_tokens'} (loss = mean per-seq)."""
        if input_ids.shape[0] == 0:
            self.noise_only_step()
            return {"loss": float("nan"), "n_seq": 0, "n_tokens": 0, "empty": True}
        chunks = list(self._chunks(input_ids, attention_mask))
        total, count = 0.0, 0
        with warnings.catch_warnings():
            # opacus hooks on the first layer fire with inputs that need no grad: harmless, documented by torch
            warnings.filterwarnings("ignore", message=".*Full backward hook is firing.*")
            total, count = self._run_chunks(chunks, on_loss)
        self.optimizer.zero_grad(set_to_none=True)
        self.steps += 1
        n_tok = int(attention_mask[:, 1:].sum())
        return {"loss": total / max(count, 1), "n_seq": int(input_ids.shape[0]), "n_tokens": n_tok, "empty": False}

    def _run_chunks(self, chunks, on_loss):
        from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping

        total, count = 0.0, 0
        for i, (ids, att, lmask) in enumerate(chunks):
            self.optimizer.zero_grad(set_to_none=True)
            logits = forward_logits(self.module, ids, att)
            per = per_sequence_loss(logits, ids, att, lmask)
            if on_loss is not None:
                on_loss(per.detach())
            if self.mode == "ghost":
                DPTensorFastGradientClipping(self.module, self.optimizer, per, "mean").backward()
            else:
                per.mean().backward()
            total += float(per.detach().sum())
            count += int(per.shape[0])
            self.optimizer.signal_skip_step(do_skip=(i < len(chunks) - 1))
            self.optimizer.step()
        return total, count

    def noise_only_step(self) -> None:
        """Empty Poisson batch: the released gradient is N(0, σ²C²)/B — still a step of the mechanism."""
        from opacus.optimizers.optimizer import _generate_noise

        opt = self.optimizer
        std = opt.noise_multiplier * opt.max_grad_norm
        for p in opt.params:
            p.grad = _generate_noise(std=std, reference=p, generator=opt.generator) / opt.expected_batch_size
            p.summed_grad = None
            if hasattr(p, "grad_sample"):
                p.grad_sample = None
        if opt.step_hook:
            opt.step_hook(opt)
        opt.original_optimizer.step()
        opt.zero_grad(set_to_none=True)
        self.steps += 1

    # ------------------------------------------------------------------ helpers
    @property
    def raw_model(self) -> nn.Module:
        return self.module._module if hasattr(self.module, "_module") else self.module

    def disable_hooks(self):
        if hasattr(self.module, "disable_hooks"):
            self.module.disable_hooks()

    def enable_hooks(self):
        if hasattr(self.module, "enable_hooks"):
            self.module.enable_hooks()

    def opacus_epsilon(self, delta: float) -> float | None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                eps = float(self.engine.get_epsilon(delta))
            return eps if math.isfinite(eps) else float("inf")
        except Exception:  # noqa: BLE001 - opacus's number is only a cross-check
            return None

    def accountant_state(self):
        return list(self.engine.accountant.history)

    def load_accountant_state(self, history) -> None:
        self.engine.accountant.history = [tuple(h) for h in history]
