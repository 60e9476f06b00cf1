"""The fine-tuning engine: one ``run(config)`` for every method (docs/finetune.md).

Run directory::

    RUN_DIR/config.json        resolved configuration
    RUN_DIR/metrics.jsonl      one JSON object per evaluation (epoch 0 = before training)
    RUN_DIR/summary.json       status "ok"|"failed", reason, final metrics, ε, costs, provenance
    RUN_DIR/checkpoints/epoch_NNNN.pt   trainable weights, optimizer, RNG, accountant state
    RUN_DIR/model/             the final model as a plain Hugging Face causal LM (LoRA merged), written at
                               the end of a successful run unless checkpoint="none" (``export.py``)

Failures are results: divergence (non-finite loss), out-of-memory and any other error during training
end with ``summary.json`` status ``"failed"`` and a reason; ``run`` returns that summary instead of
raising. Invalid configurations raise ``ValueError`` (naming the field) *before* training — after
writing a failed summary — unless ``raise_invalid=False`` (sweeps), which returns the failed summary.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint import CKPT_DIR, atomic_torch_save, atomic_write_json, atomic_write_text, latest_checkpoint
from .config import FinetuneConfig
from .costs import (ANALYTIC_FORMULA, analytic_flops_per_token, count_flops, matmul_parameter_count,
                    peak_memory, reset_peak_memory)
from .losses import per_sequence_loss, token_losses
from .methods import MethodSetup, adapted_linears, lora_pairs, setup_model
from .private import PrivateTrainer, forward_logits

__all__ = ["run", "StepRunner", "load_model", "resolve_device", "Diverged"]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# fields that may change between a run and its resumption (they do not change the training trajectory)
_RESUMABLE_FIELDS = {
    "epochs", "resume", "progress", "measure", "measure_batch_size", "exposure_max_candidates", "retention",
    "retention_max_tokens", "retention_mc", "lm_eval_tasks", "influence_samples", "eval_every", "eval_initial", "measure_flops", "checkpoint",
    "device", "extra", "out_dir", "effective_lr",
}


class Diverged(RuntimeError):
    """Non-finite training loss."""


def resolve_device(config: FinetuneConfig) -> torch.device:
    if config.device is not None:
        return torch.device(config.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(name: str, *, device: torch.device, dtype: torch.dtype):
    """``(model, tokenizer, source)`` via ``lowrankdp.models.load_base``. The model lands on ``device``
    *before* any adapter is attached (opacus #820)."""
    from lowrankdp.models import load_base

    model, tok = load_base(name, device=device, dtype=dtype)
    source = "lowrankdp.models.load_base"
    if tok.pad_token_id is None and tok.eos_token_id is not None:
        tok.pad_token = tok.eos_token
    return model, tok, source


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepRunner:
    """Method set-up plus one optimisation step on a given logical batch (used by ``run`` and the benchmark).

    For DP methods the Poisson sampling lives in :attr:`private` (``private.loader``); :meth:`step` with an
    explicit batch is the mechanism's step on that batch (the benchmark times it on a fixed batch).
    """

    def __init__(self, config: FinetuneConfig, model: nn.Module, *, n_train: int):
        self.config = config
        self.device = next(model.parameters()).device
        self.setup: MethodSetup = setup_model(model, config, generator_seed=config.seed)
        self.model = self.setup.model
        self.model.train()
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"method {config.method!r} left no trainable parameter")
        lr = config.effective_lr
        if config.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(params, lr=lr, weight_decay=config.weight_decay)
        self.private: PrivateTrainer | None = None
        if config.is_dp:
            hooks = (self.setup.projection.apply,) if self.setup.projection is not None else ()
            self.private = PrivateTrainer(
                self.model, self.optimizer, n_train=n_train, batch_size=config.batch_size,
                micro_batch_size=config.effective_micro_batch_size, noise_multiplier=config.noise_multiplier,
                max_grad_norm=config.max_grad_norm, grad_sample_mode=config.grad_sample_mode,
                clip_unit=config.clip_unit, accountant=config.accountant, noise_seed=config.seed + 2,
                step_hooks=hooks,
            )
        self.steps = 0

    @property
    def raw_model(self) -> nn.Module:
        return self.private.raw_model if self.private is not None else self.model

    @property
    def base_optimizer(self) -> torch.optim.Optimizer:
        return self.private.optimizer.original_optimizer if self.private is not None else self.optimizer

    def step(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, Any]:
        if self.private is not None:
            res = self.private.step(input_ids, attention_mask)
        else:
            res = self._plain_step(input_ids, attention_mask)
        self.steps += 1
        return res

    def _plain_step(self, input_ids, attention_mask) -> dict[str, Any]:
        n = input_ids.shape[0]
        micro = self.config.effective_micro_batch_size
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for s in range(0, n, micro):
            ids, att = input_ids[s:s + micro], attention_mask[s:s + micro]
            per = per_sequence_loss(forward_logits(self.model, ids, att), ids, att)
            (per.sum() / n).backward()  # mean over the records of the logical batch
            total += float(per.detach().sum())
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss": total / n, "n_seq": int(n), "n_tokens": int(attention_mask[:, 1:].sum()), "empty": False}


# ---------------------------------------------------------------------------------------------- run
def run(config: FinetuneConfig, *, raise_invalid: bool = True) -> dict[str, Any]:
    """Train ``config.model`` on ``config.data`` with ``config.method``; returns the summary dict.

    Raises ``ValueError`` for an invalid configuration (before training; ``raise_invalid=False`` returns a
    failed summary instead). Never raises for failures during training (they are results).
    """
    if not isinstance(config, FinetuneConfig):
        raise ValueError(f"config must be a FinetuneConfig, got {type(config).__name__}")
    out = Path(config.out_dir)
    try:
        config.validate()
    except ValueError as exc:
        if not (out / "summary.json").exists() and (out.is_dir() or not out.exists()):  # never clobber a run
            try:
                out.mkdir(parents=True, exist_ok=True)
                _write_summary(out, config, status="failed", reason=f"invalid config: {exc}", t0=time.time())
            except OSError:
                pass
        if raise_invalid:
            raise
        return {"status": "failed", "reason": f"invalid config: {exc}", "run_dir": str(out)}
    out.mkdir(parents=True, exist_ok=True)
    job = _Run(config, out)
    return job.execute(raise_invalid=raise_invalid)


def _write_summary(out: Path, config: FinetuneConfig, *, status: str, reason: str | None, t0: float,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    from lowrankdp.provenance import provenance

    summary = {"status": status, "reason": reason, "method": config.method, "run_dir": str(out),
               "wall_time_s": time.time() - t0, **(extra or {}), "config": config.to_dict(),
               "provenance": provenance()}
    atomic_write_json(out / "summary.json", summary)
    return summary


class _Run:
    def __init__(self, config: FinetuneConfig, out: Path):
        self.config = config
        self.out = out
        self.t0 = time.time()
        self.components: dict[str, str] = {}
        self.notes: list[str] = []
        self.last_metrics: dict[str, Any] | None = None
        self.epoch = 0
        self.resume_checked = False
        self.model_dir: str | None = None
        self.model_export: dict[str, Any] | None = None
        self.cost_state: dict[str, Any] = {"train_seconds": 0.0, "timed_steps": 0, "timed_seconds": 0.0,
                                           "tokens": 0, "records": 0, "steps": 0, "empty_steps": 0,
                                           "flops_step": None}

    # --------------------------------------------------------------------------------- orchestration
    def execute(self, *, raise_invalid: bool) -> dict[str, Any]:
        cfg = self.config
        try:
            self._prepare()
        except ValueError as exc:
            if not self.resume_checked:  # a mismatching resume must not overwrite the existing run's summary
                if raise_invalid:
                    raise
                return {"status": "failed", "reason": f"invalid config: {exc}", "run_dir": str(self.out)}
            summary = self._finish("failed", f"invalid config: {exc}")
            if raise_invalid:
                raise
            return summary
        except Exception as exc:  # noqa: BLE001 - a failed preparation is a result
            return self._finish("failed", f"{type(exc).__name__} while preparing: {exc}",
                                tb=traceback.format_exc())
        try:
            self._train()
        except Diverged as exc:
            return self._finish("failed", f"diverged: {exc}")
        except (torch.OutOfMemoryError, MemoryError) as exc:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return self._finish("failed", f"out of memory: {str(exc).splitlines()[0] if str(exc) else ''}")
        except KeyboardInterrupt:
            self._finish("failed", "interrupted")
            raise
        except Exception as exc:  # noqa: BLE001 - failures are results
            return self._finish("failed", f"{type(exc).__name__}: {exc}", tb=traceback.format_exc())
        if cfg.checkpoint != "none":
            self._export_model()
        return self._finish("ok", None)

    def _finish(self, status: str, reason: str | None, tb: str | None = None) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "epochs_completed": self.epoch,
            "final": self.last_metrics,
            "epsilon": (self.last_metrics or {}).get("privacy"),
            "costs": (self.last_metrics or {}).get("costs"),
            "components": self.components,
            "notes": self.notes,
            "model_dir": self.model_dir,
        }
        if self.model_export is not None:
            extra["model_export"] = self.model_export
        if getattr(self, "runner", None) is not None and self.runner.private is not None:
            extra["grad_sample_mode"] = self.runner.private.mode
            extra["grad_sample_mode_reason"] = self.runner.private.mode_reason
        if tb is not None:
            extra["traceback"] = tb
        return _write_summary(self.out, self.config, status=status, reason=reason, t0=self.t0, extra=extra)

    # --------------------------------------------------------------------------------- preparation
    def _prepare(self) -> None:
        from ._data import encode_split, load_records

        cfg = self.config
        _seed_everything(cfg.seed)
        self.device = resolve_device(cfg)
        reset_peak_memory(self.device)
        ckpt = latest_checkpoint(self.out) if cfg.resume else None
        self._check_resume_config(ckpt)
        self.resume_checked = True
        atomic_write_text(self.out / "config.json", cfg.to_json() + "\n")
        if ckpt is None:
            for f in ("metrics.jsonl",):
                if (self.out / f).exists():
                    (self.out / f).unlink()
            if (self.out / CKPT_DIR).is_dir():
                for p in (self.out / CKPT_DIR).glob("epoch_*.pt"):
                    p.unlink()
            self._remove_exports()
            if cfg.resume:
                self.notes.append("resume=True but no checkpoint found: started from scratch")

        dataset, src = load_records(cfg.data)
        self.components["data"] = src
        self.dataset = dataset
        train = list(dataset.splits.get("train", []))
        if not train:
            raise ValueError(f"data must have a non-empty train split, got none in {cfg.data!r}")
        if cfg.max_train_records is not None:
            train = train[: cfg.max_train_records]
        evals = list(dataset.splits.get("test") or dataset.splits.get("valid") or [])
        self.eval_split_name = "test" if dataset.splits.get("test") else ("valid" if evals else None)

        model, tok, msrc = load_model(cfg.model, device=self.device, dtype=_DTYPES[cfg.dtype])
        self.components["model"] = msrc
        self.tokenizer = tok
        self.enc_train, esrc = encode_split(tok, train, max_length=cfg.max_length)
        self.components["encoding"] = esrc
        self.enc_eval = encode_split(tok, evals, max_length=cfg.max_length)[0] if evals else None
        self.n_params = matmul_parameter_count(model)
        self.runner = StepRunner(cfg, model, n_train=len(train))
        self.notes.extend(self.runner.setup.notes)
        self.n_train = len(train)
        self._prepare_influence()
        self.start_epoch = 0
        if ckpt is not None:
            self._load_checkpoint(ckpt[1])
            self.start_epoch = ckpt[0]
            self._truncate_metrics(self.start_epoch)

    def _check_resume_config(self, ckpt) -> None:
        if ckpt is None or not (self.out / "config.json").is_file():
            return
        old = json.loads((self.out / "config.json").read_text())
        new = self.config.to_dict()
        for k in sorted(set(old) | set(new)):
            if k in _RESUMABLE_FIELDS:
                continue
            if json.dumps(old.get(k), sort_keys=True) != json.dumps(new.get(k), sort_keys=True):
                raise ValueError(f"{k} differs from the checkpointed run in {self.out} "
                                 f"({old.get(k)!r} there, {new.get(k)!r} now); cannot resume")
        if ckpt[0] >= self.config.epochs:
            self.notes.append(f"checkpoint already at epoch {ckpt[0]} >= epochs={self.config.epochs}")

    def _prepare_influence(self) -> None:
        cfg = self.config
        self.influence_layers: dict[str, nn.Linear] = {}
        self.influence_A: dict[str, torch.Tensor] = {}
        self.influence_kind = None
        if cfg.influence_samples == 0:
            return
        raw = self.runner.raw_model
        if cfg.uses_lora:
            for name, (A, _B, base, _s) in lora_pairs(raw).items():
                self.influence_layers[name] = base
                self.influence_A[name] = A  # live parameter: LoRA's A moves during training
            self.influence_kind = "lora_A (PEFT adapter; frozen N(0,1/r) for lora-fa)"
        else:
            layers = adapted_linears(raw, self.runner.setup.targets)
            proj = self.runner.setup.projection
            g = torch.Generator().manual_seed(cfg.seed + 7)
            for name, lin in layers.items():
                if lin.in_features <= cfg.rank:
                    continue
                if proj is not None and proj.mode == "fixed":
                    self.influence_A[name] = proj.fixed[name + ".weight"]
                else:
                    self.influence_A[name] = torch.randn(cfg.rank, lin.in_features, generator=g) / cfg.rank ** 0.5
                self.influence_layers[name] = lin
            self.influence_kind = ("fixed projection A of compressed DP-SGD" if proj is not None and
                                   proj.mode == "fixed" else "random A, N(0,1/r) entries, fixed for the run")
        gen = torch.Generator().manual_seed(cfg.seed + 11)
        k = min(cfg.influence_samples, self.n_train)
        self.influence_idx = torch.randperm(self.n_train, generator=gen)[:k]

    # --------------------------------------------------------------------------------- training
    def _batches_plain(self, epoch: int):
        cfg = self.config
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        perm = torch.randperm(self.n_train, generator=g)
        for s in range(0, self.n_train, cfg.batch_size):
            yield perm[s:s + cfg.batch_size]

    def _batches_dp(self):
        for batch in self.runner.private.loader:
            idx = batch[0] if isinstance(batch, (list, tuple)) else batch
            yield idx.long().flatten()

    def _gather(self, idx: torch.Tensor):
        ids = self.enc_train.input_ids[idx]
        att = self.enc_train.attention_mask[idx]
        if ids.shape[0] > 0:
            L = int(att.sum(dim=1).max())
            ids, att = ids[:, :max(L, 2)], att[:, :max(L, 2)]
        return ids.to(self.device), att.to(self.device)

    def _train(self) -> None:
        cfg = self.config
        if cfg.eval_initial and self.start_epoch == 0:
            self._evaluate(0)
        for epoch in range(self.start_epoch + 1, cfg.epochs + 1):
            self._train_epoch(epoch)
            self.epoch = epoch
            if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
                self._evaluate(epoch)
            self._checkpoint(epoch)
        if self.start_epoch >= cfg.epochs:
            self.epoch = self.start_epoch

    def _train_epoch(self, epoch: int) -> None:
        cfg = self.config
        batches = self._batches_dp() if self.runner.private is not None else self._batches_plain(epoch)
        n_steps = len(self.runner.private.loader) if self.runner.private is not None else math.ceil(
            self.n_train / cfg.batch_size)
        if cfg.max_steps_per_epoch is not None:
            n_steps = min(n_steps, cfg.max_steps_per_epoch)
        bar = None
        if cfg.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_steps, desc=f"{cfg.method} epoch {epoch}/{cfg.epochs}", leave=False, unit="step")
        losses = []
        cs = self.cost_state
        try:
            for i, idx in enumerate(batches):
                if i >= n_steps:
                    break
                ids, att = self._gather(idx)
                count = cfg.measure_flops and cs["flops_step"] is None and ids.shape[0] > 0
                _sync(self.device)
                t = time.perf_counter()
                if count:
                    with count_flops() as fc:
                        res = self.runner.step(ids, att)
                else:
                    res = self.runner.step(ids, att)
                _sync(self.device)
                dt = time.perf_counter() - t
                cs["train_seconds"] += dt
                cs["steps"] += 1
                if res.get("empty"):
                    cs["empty_steps"] += 1
                else:
                    if not math.isfinite(res["loss"]):
                        raise Diverged(f"non-finite training loss ({res['loss']}) at epoch {epoch}, step {i + 1}")
                    losses.append(res["loss"])
                    cs["tokens"] += res["n_tokens"]
                    cs["records"] += res["n_seq"]
                    if count:
                        cs["flops_step"] = {"flops": fc.total, "tokens": res["n_tokens"], "records": res["n_seq"]}
                    else:
                        cs["timed_steps"] += 1
                        cs["timed_seconds"] += dt
                if bar is not None:
                    bar.update(1)
                    if losses:
                        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        finally:
            if bar is not None:
                bar.close()
        self.epoch_train_loss = float(np.mean(losses)) if losses else None

    # --------------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def _own_losses(self, model: nn.Module, enc) -> dict[str, float | None]:
        """Token-averaged next-token loss on all / sensitive / non-sensitive target tokens of a split."""
        if enc is None or len(enc) == 0:
            return {"loss": None, "sensitive_loss": None, "nonsensitive_loss": None}
        bs = self.config.measure_batch_size
        tot = {"all": [0.0, 0], "s": [0.0, 0], "ns": [0.0, 0]}
        for s in range(0, len(enc), bs):
            ids = enc.input_ids[s:s + bs]
            att = enc.attention_mask[s:s + bs]
            sen = enc.sensitive_mask[s:s + bs]
            L = max(int(att.sum(dim=1).max()), 2)
            ids, att, sen = ids[:, :L].to(self.device), att[:, :L].to(self.device), sen[:, :L].to(self.device)
            ce = token_losses(forward_logits(model, ids, att), ids).double()
            valid = att[:, 1:].bool()
            sens = sen[:, 1:].bool() & valid
            nons = valid & ~sens
            for key, m in (("all", valid), ("s", sens), ("ns", nons)):
                tot[key][0] += float(ce[m].sum())
                tot[key][1] += int(m.sum())

        def mean(k):
            return tot[k][0] / tot[k][1] if tot[k][1] else None

        return {"loss": mean("all"), "sensitive_loss": mean("s"), "nonsensitive_loss": mean("ns")}

    def _evaluate(self, epoch: int) -> None:
        cfg = self.config
        t = time.perf_counter()
        runner = self.runner
        raw = runner.raw_model
        if runner.private is not None:
            runner.private.disable_hooks()
        was = raw.training
        raw.eval()
        line: dict[str, Any] = {"epoch": epoch, "step": runner.steps,
                                "train_loss_running": getattr(self, "epoch_train_loss", None) if epoch else None}
        try:
            tr = self._own_losses(raw, self.enc_train)
            ev = self._own_losses(raw, self.enc_eval)
            line.update({"train_loss": tr["loss"], "train_sensitive_loss": tr["sensitive_loss"],
                         "train_nonsensitive_loss": tr["nonsensitive_loss"],
                         "eval_split": self.eval_split_name, "eval_loss": ev["loss"],
                         "eval_sensitive_loss": ev["sensitive_loss"],
                         "eval_nonsensitive_loss": ev["nonsensitive_loss"]})
            line["measurements"] = self._measure(raw)
            line["retention_loss"] = self._retention(raw)
            if cfg.retention_mc or cfg.lm_eval_tasks:
                line["benchmarks"] = self._benchmarks(raw)
            line["influence"] = self._influence(raw)
        finally:
            raw.train(was)
            if runner.private is not None:
                runner.private.enable_hooks()
        line["privacy"] = self._privacy()
        line["costs"] = self._costs()
        line["eval_seconds"] = time.perf_counter() - t
        line["elapsed_s"] = time.time() - self.t0
        for key in ("train_loss", "eval_loss"):
            v = line.get(key)
            if v is not None and not math.isfinite(v):
                self._append_metrics(line)
                self.last_metrics = line
                raise Diverged(f"non-finite {key} ({v}) at evaluation of epoch {epoch}")
        self._append_metrics(line)
        self.last_metrics = line

    def _measure(self, raw) -> dict[str, Any] | None:
        cfg = self.config
        if not cfg.measure:
            return None
        try:
            from lowrankdp.measure import measure_all
        except ImportError as exc:
            self.components["measure"] = f"unavailable: {exc}"
            return {"skipped": f"lowrankdp.measure not importable: {exc}"}
        self.components["measure"] = "lowrankdp.measure.measure_all"
        kw = dict(batch_size=cfg.measure_batch_size, max_length=cfg.max_length, device=self.device,
                  exposure_max_candidates=cfg.exposure_max_candidates, progress=False, seed=cfg.seed)
        for k in ("max_records", "n_bootstrap", "exposure_sample_size"):
            if k in cfg.extra.get("measure_kwargs", {}):
                kw[k] = cfg.extra["measure_kwargs"][k]
        try:
            return measure_all(raw, self.tokenizer, self.dataset, **kw)
        except (torch.OutOfMemoryError, Diverged):
            raise
        except Exception as exc:  # noqa: BLE001 - a broken measurement must not kill a long run
            return {"error": f"{type(exc).__name__}: {exc}"}

    def _retention(self, raw) -> float | dict | None:
        cfg = self.config
        if not cfg.retention:
            return None
        try:
            from lowrankdp.models import retention_loss
        except ImportError as exc:
            return {"skipped": f"lowrankdp.models not importable: {exc}"}
        try:
            return float(retention_loss(raw, self.tokenizer, max_tokens=cfg.retention_max_tokens))
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:  # noqa: BLE001
            return {"error": f"{type(exc).__name__}: {exc}"}

    def _benchmarks(self, raw) -> dict[str, Any]:
        """Knowledge retention by accuracy: the local multiple-choice task and, where installed,
        lm-evaluation-harness tasks (``lowrankdp.models``)."""
        cfg = self.config
        out: dict[str, Any] = {}
        try:
            from lowrankdp.models import lm_eval_available, multiple_choice_accuracy, run_lm_eval
        except ImportError as exc:
            return {"skipped": f"lowrankdp.models not importable: {exc}"}
        if cfg.retention_mc:
            try:
                out["mc_accuracy"] = float(multiple_choice_accuracy(raw, self.tokenizer))
            except torch.OutOfMemoryError:
                raise
            except Exception as exc:  # noqa: BLE001
                out["mc_accuracy"] = {"error": f"{type(exc).__name__}: {exc}"}
        if cfg.lm_eval_tasks:
            if not lm_eval_available():
                out["lm_eval"] = {"skipped": "lm-evaluation-harness (lm_eval) is not installed"}
            else:
                try:
                    out["lm_eval"] = run_lm_eval(raw, self.tokenizer, cfg.lm_eval_tasks)
                except torch.OutOfMemoryError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    out["lm_eval"] = {"error": f"{type(exc).__name__}: {exc}"}
        return out

    def _influence(self, raw) -> dict[str, Any] | None:
        from .influence import measure_influence

        if self.config.influence_samples == 0 or not self.influence_layers:
            return None
        ids = self.enc_train.input_ids[self.influence_idx].to(self.device)
        att = self.enc_train.attention_mask[self.influence_idx].to(self.device)
        return measure_influence(raw, self.influence_layers, self.influence_A, ids, att,
                                 rank=self.config.rank, subspace_kind=self.influence_kind)

    def _privacy(self) -> dict[str, Any]:
        cfg = self.config
        if not cfg.is_dp:
            return {"epsilon": float("inf"), "delta": None, "mechanism": "none (no noise)"}
        priv = self.runner.private
        steps = self.runner.steps
        proj = self.runner.setup.projection
        info: dict[str, Any] = {
            "delta": cfg.delta, "steps": steps, "sampling_rate": priv.sample_rate,
            "noise_multiplier": cfg.noise_multiplier, "max_grad_norm": cfg.max_grad_norm,
            "accountant": cfg.accountant, "sampling": "poisson", "neighboring": "add_remove",
            "privacy_unit": "token (per-token clipping: ε does not protect a record)" if cfg.clip_unit == "token"
            else "record (sequence)",
            "projection": proj.mode if proj is not None else "none",
        }
        kw = dict(noise_multiplier=cfg.noise_multiplier, sampling_rate=priv.sample_rate, steps=steps,
                  delta=cfg.delta, accountant=cfg.accountant)
        if proj is not None:
            info["d"] = sorted({d_in for (_o, d_in) in proj.dims.values()})
            info["r"] = cfg.rank
            kw.update(projection=proj.mode, d=[d_in for (_o, d_in) in proj.dims.values()], r=cfg.rank)
        if steps == 0:
            info["epsilon"], info["source"] = 0.0, "no step taken"
        else:
            from lowrankdp import accounting

            try:
                info["epsilon"] = float(accounting.epsilon(**kw))
                info["source"] = "lowrankdp.accounting.epsilon"
            except Exception as exc:  # noqa: BLE001 - record, do not invent
                info["epsilon"], info["source"] = None, f"lowrankdp.accounting.epsilon failed: {exc}"
        if proj is not None and proj.mode == "fixed":
            from lowrankdp.accounting import FIXED_PROJECTION_ASSUMPTION

            info["assumption"] = FIXED_PROJECTION_ASSUMPTION
            info["warning"] = (
                "the fixed-projection epsilon assumes rank-one per-example gradients whose projected side is "
                "independent of A; a record of k > 1 tokens gives a gradient spanning up to k input directions and "
                "hidden layers' inputs depend on the training, so here the number is NOT a guarantee "
                "(docs/theory.md §4.4); the fresh-projection epsilon has no such caveat")
        elif proj is not None:
            try:
                from lowrankdp.accounting.events import FRESH_PROJECTION_ASSUMPTION
                info["assumption"] = FRESH_PROJECTION_ASSUMPTION
            except ImportError:
                pass
        if steps > 0:
            # opacus's own accountant (no projection credit) as a cross-check
            info["opacus_epsilon_no_projection"] = priv.opacus_epsilon(cfg.delta)
            info["opacus_accountant"] = priv.opacus_accountant
        return info

    def _costs(self) -> dict[str, Any]:
        cfg = self.config
        cs = self.cost_state
        proj = self.runner.setup.projection
        tokens_per_step = cs["tokens"] / max(cs["steps"] - cs["empty_steps"], 1) if cs["steps"] else None
        analytic = analytic_flops_per_token(
            cfg.method, self.n_params, rank=cfg.rank,
            projected_dims=list(proj.dims.values()) if proj is not None else None,
            tokens_per_step=tokens_per_step)
        fs = cs["flops_step"]
        return {
            "device": str(self.device),
            "dtype": cfg.dtype,
            "N_matmul_params": self.n_params,
            "trainable_params": int(sum(p.numel() for p in self.runner.model.parameters() if p.requires_grad)),
            "steps": cs["steps"],
            "empty_steps": cs["empty_steps"],
            "tokens": cs["tokens"],
            "records": cs["records"],
            "train_seconds": cs["train_seconds"],
            "step_time_mean_s": cs["timed_seconds"] / cs["timed_steps"] if cs["timed_steps"] else None,
            "tokens_per_s": cs["tokens"] / cs["train_seconds"] if cs["train_seconds"] > 0 else None,
            "analytic_formula": ANALYTIC_FORMULA[cfg.method],
            "analytic_flops_per_token": analytic,
            "analytic_flops_total": analytic * cs["tokens"],
            "measured_flops_step": fs,
            "measured_flops_per_token": (fs["flops"] / fs["tokens"]) if fs and fs["tokens"] else None,
            "peak_memory": peak_memory(self.device),
            "grad_sample_mode": self.runner.private.mode if self.runner.private is not None else None,
        }

    def _append_metrics(self, line: dict[str, Any]) -> None:
        from lowrankdp.cli import _to_jsonable

        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(_to_jsonable(line)) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _truncate_metrics(self, epoch: int) -> None:
        f = self.out / "metrics.jsonl"
        if not f.is_file():
            return
        keep = []
        for line in f.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("epoch", 0) <= epoch:
                    keep.append(line)
            except json.JSONDecodeError:  # a torn last line from a crash
                continue
        atomic_write_text(f, "".join(k + "\n" for k in keep))
        if keep:
            self.last_metrics = json.loads(keep[-1])

    # --------------------------------------------------------------------------------- model export
    def _remove_exports(self) -> None:
        """A run started from scratch in an existing directory must not leave an older run's model behind."""
        import shutil

        from .export import MODEL_DIR

        for p in [self.out / MODEL_DIR, *self.out.glob(f"{MODEL_DIR}_epoch_*")]:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)

    def _export_model(self) -> None:
        """``RUN_DIR/model``: the trained tensors (read from the unwrapped model, so no opacus wrapper or hook
        comes along) loaded into a freshly built copy of the run's model, LoRA merged, ``save_pretrained``."""
        from .export import MODEL_DIR, export_params

        info = {"run_dir": str(self.out), "epoch": self.epoch, "steps": self.runner.steps,
                "source": "final in-memory model of the run"}
        t = time.perf_counter()
        try:
            export_params(self.config, self._state_params(), self.out / MODEL_DIR, info=info)
        except Exception as exc:  # noqa: BLE001 - training succeeded; record why the export did not
            self.notes.append(f"model export to {MODEL_DIR}/ failed ({type(exc).__name__}: {exc}); "
                              "retry with lowrankdp.finetune.export_model(run_dir)")
            return
        self.model_dir = MODEL_DIR
        self.model_export = {**info, "seconds": time.perf_counter() - t}

    # --------------------------------------------------------------------------------- checkpoints
    def _state_params(self) -> dict[str, torch.Tensor]:
        raw = self.runner.raw_model
        return {n: p.detach().cpu().clone() for n, p in raw.named_parameters()
                if p.requires_grad or "lora_" in n}

    def _checkpoint(self, epoch: int) -> None:
        cfg = self.config
        if cfg.checkpoint == "none":
            return
        priv = self.runner.private
        state = {
            "epoch": epoch,
            "steps": self.runner.steps,
            "params": self._state_params(),
            "optimizer": self.runner.base_optimizer.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
            "private": None if priv is None else {"steps": priv.steps, "history": priv.accountant_state(),
                                                  "noise_generator": priv.noise_generator.get_state()},
            "projection": None if self.runner.setup.projection is None else
            self.runner.setup.projection.state_dict(),
            "cost_state": dict(self.cost_state),
            "epoch_train_loss": getattr(self, "epoch_train_loss", None),
        }
        path = self.out / CKPT_DIR / f"epoch_{epoch:04d}.pt"
        atomic_torch_save(state, path)
        if cfg.checkpoint == "last":
            for p in (self.out / CKPT_DIR).glob("epoch_*.pt"):
                if p != path:
                    p.unlink()

    def _load_checkpoint(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=False)
        raw = self.runner.raw_model
        named = dict(raw.named_parameters())
        with torch.no_grad():
            for n, v in state["params"].items():
                if n not in named:
                    raise ValueError(f"checkpoint {path} has parameter {n!r} that the model lacks")
                named[n].copy_(v.to(named[n].device, named[n].dtype))
        self.runner.base_optimizer.load_state_dict(state["optimizer"])
        self.runner.steps = int(state["steps"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        priv = self.runner.private
        if priv is not None and state["private"] is not None:
            priv.steps = int(state["private"]["steps"])
            priv.load_accountant_state(state["private"]["history"])
            priv.noise_generator.set_state(state["private"]["noise_generator"])
        if self.runner.setup.projection is not None and state["projection"] is not None:
            self.runner.setup.projection.load_state_dict(state["projection"])
        self.cost_state.update(state.get("cost_state", {}))
        self.epoch_train_loss = state.get("epoch_train_loss")
        self.epoch = int(state["epoch"])
        self.notes.append(f"resumed from {path.name} (epoch {state['epoch']}, step {state['steps']})")


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The metrics.jsonl lines of a run directory, parsed."""
    f = Path(run_dir) / "metrics.jsonl"
    return [json.loads(x) for x in f.read_text(encoding="utf-8").splitlines() if x.strip()]

