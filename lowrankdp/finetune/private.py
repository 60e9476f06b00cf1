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

from .._validate import check_int, check_real
from .losses import expand_per_token, per_sequence_loss

__all__ = ["PrivateTrainer", "choose_grad_sample_mode", "grad_sample_costs", "FLOPS_PER_FLOAT", "forward_logits"]


def forward_logits(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    out = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    return out.logits if hasattr(out, "logits") else out[0]


#: flop-equivalents of one float of a per-example gradient — freshly allocated and written once, then read for the
#: norm and for the clipped sum — by device type (docs/theory.md §7). "cpu": 110, within the 95–155 measured on the
#: 2-core AMD EPYC development machine with one thread (benchmarks/grad_sample_mode.py: matrix-multiply flop/s ×
#: (1/fresh-write floats/s + 2/streaming floats/s); fresh memory is slow on CPU: a large allocation is new pages);
#: "cuda": 1000, a roofline estimate for H100/H200-class GPUs (about 10^15 flop/s against about 10^12 floats/s
#: of HBM per pass, three passes; the caching allocator makes allocation free), not measured here.
FLOPS_PER_FLOAT = {"cpu": 110.0, "cuda": 1000.0}


def grad_sample_costs(model: nn.Module, seq_len: int, *, flops_per_float: float | None = None) -> dict[str, float]:
    """Extra time per example of ghost clipping and of hooks over non-private training, in flop-equivalents
    (docs/theory.md §7), for sequences of ``seq_len`` tokens.

    Over the trainable ``nn.Linear`` (``n = d_in·d_out`` (+ bias) parameters) and ``nn.Embedding`` (``n = V·d``)
    layers; norm layers cost the same in both modes. With ``κ = flops_per_float`` (default: by the device of the
    model's parameters, :data:`FLOPS_PER_FLOAT`):

    * ghost: a second backward pass (``4T·n`` per linear layer, ``2T·d`` per embedding) and two ``T×T`` Gram
      matrices per layer (``2T²(d_in + d_out)`` flops, ``2T²`` floats: ``κ·2T²``);
    * hooks: the per-example weight gradient (``2T·n`` per linear layer) and its ``n`` floats per layer
      (``κ·n``).

    Returns ``{"ghost", "hooks", "layers", "flops_per_float"}``.
    """
    seq_len = check_int("seq_len", seq_len, minimum=1)
    if flops_per_float is None:
        try:
            device_type = next(model.parameters()).device.type
        except StopIteration:
            device_type = "cpu"
        flops_per_float = FLOPS_PER_FLOAT.get(device_type, FLOPS_PER_FLOAT["cpu"])
    kappa = check_real("flops_per_float", flops_per_float, lo=0.0)
    T = float(seq_len)
    ghost = hooks = 0.0
    layers = 0
    for m in model.modules():
        if not isinstance(m, (nn.Linear, nn.Embedding)):
            continue
        n = sum(p.numel() for p in m.parameters(recurse=False) if p.requires_grad)
        if n == 0:
            continue
        layers += 1
        if isinstance(m, nn.Linear):
            d_in, d_out = m.in_features, m.out_features
            ghost += 4 * T * n
            hooks += 2 * T * n
        else:
            d_in, d_out = 1, m.embedding_dim
            ghost += 2 * T * d_out
        ghost += 2 * T * T * (d_in + d_out) + kappa * 2 * T * T
        hooks += kappa * n
    return {"ghost": ghost, "hooks": hooks, "layers": layers, "flops_per_float": kappa}


def choose_grad_sample_mode(model: nn.Module, requested: str, *, seq_len: int | None = None,
                            flops_per_float: float | None = None) -> tuple[str, str]:
    """Resolve ``"auto"`` to ``"ghost"`` or ``"hooks"``; returns ``(mode, reason)``.

    Hooks when ghost clipping has no norm or grad sampler for some trainable layer type. Otherwise, with the
    sequence length ``seq_len`` known, the mode of smaller cost (:func:`grad_sample_costs`, docs/theory.md §7):
    ghost grows with ``T²`` per layer, hooks with ``d_in·d_out`` per example. Without ``seq_len``, ghost.
    """
    if requested != "auto":
        return requested, f"requested {requested!r}"
    from opacus.grad_sample import GradSampleModuleFastGradientClipping as G

    known = set(G.NORM_SAMPLERS) | set(G.GRAD_SAMPLERS)
    missing = sorted({type(m).__name__ for m in model.modules()
                      if any(p.requires_grad for p in m.parameters(recurse=False)) and type(m) not in known})
    if missing:
        return "hooks", f"auto: ghost clipping has no sampler for {missing}; using hooks (functorch fallback)"
    if seq_len is None:
        return "ghost", "auto: sequence length not given; ghost clipping (supports every trainable layer type)"
    c = grad_sample_costs(model, seq_len, flops_per_float=flops_per_float)
    mode = "ghost" if c["ghost"] <= c["hooks"] else "hooks"
    return mode, (f"auto: estimated extra cost per example at T={seq_len}: ghost {c['ghost']:.3g}, hooks "
                  f"{c['hooks']:.3g} flop-equivalents (κ = {c['flops_per_float']:g} per float, "
                  f"{c['layers']} layers); using {mode}")


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
        seq_len: int | None = None,
    ):
        from opacus import PrivacyEngine

        self.mode, self.mode_reason = choose_grad_sample_mode(model, grad_sample_mode, seq_len=seq_len)
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
