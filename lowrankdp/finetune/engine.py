"""The fine-tuning engine: one ``run(config)`` for every method (docs/finetune.md).

Run directory::

    RUN_DIR/result.json                  the run's one result file (lowrankdp.results.RunRecord), rewritten
                                         atomically after every evaluation (status "running") and at the end
                                         (status "ok" or "failed")
    RUN_DIR/checkpoints/epoch_NNNN.pt    trainable weights, optimizer, RNG, accountant state (weights-only)
    RUN_DIR/model/                       the final model as a plain Hugging Face causal LM (LoRA merged), written
                                         at the end of a successful run unless checkpoint="none" (``export.py``)

Failures are results: divergence (non-finite loss), out-of-memory and any other error during training end with
status ``failed`` and a reason; ``run`` returns that record instead of raising. Invalid configurations raise
``ValueError`` (naming the field) before anything is written or deleted, unless ``raise_invalid=False`` (sweeps),
which returns a failed record instead. Nothing in ``out_dir`` is removed before the inputs have loaded, and only
files the engine writes are ever removed.
"""

from __future__ import annotations

import dataclasses
import math
import random
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..results import EpochMetrics, ResultError, RunRecord, RunStatus, read_record, write_record
from .checkpoint import CKPT_DIR, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import FinetuneConfig
from .costs import (ANALYTIC_FORMULA, analytic_flops_per_token, count_flops, matmul_parameter_count,
                    peak_memory, reset_peak_memory)
from ..data.fingerprint import data_fingerprint
from .evaluate import BaseCache, measure_kwargs, privacy_block
from .loading import DTYPES, load_model, resolve_device
from .losses import per_sequence_loss
from .methods import MethodSetup, adapted_linears, default_target_modules, lora_pairs, setup_model
from .private import PrivateTrainer, forward_logits

__all__ = ["run", "StepRunner", "Diverged", "steps_per_epoch"]

# fields that may change between a run and its resumption (they do not change the training trajectory)
_RESUMABLE_FIELDS = {
    "epochs", "resume", "progress", "measure", "measure_batch_size", "exposure_max_candidates", "retention",
    "retention_max_tokens", "retention_mc", "lm_eval_tasks", "influence_samples", "eval_every", "eval_initial",
    "measure_flops", "checkpoint", "device", "extra", "out_dir", "effective_lr", "overwrite", "base_cache",
}


class Diverged(RuntimeError):
    """Non-finite training loss."""


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def steps_per_epoch(config: FinetuneConfig, n_train: int) -> int:
    """Optimisation steps per epoch: ``ceil(n / batch_size)`` (opacus's Poisson loader has that many batches, at
    rate ``q = 1 / ceil(n / batch_size)``), capped by ``max_steps_per_epoch``."""
    n = math.ceil(n_train / config.batch_size)
    return n if config.max_steps_per_epoch is None else min(n, config.max_steps_per_epoch)


class StepRunner:
    """Method set-up plus one optimisation step on a given logical batch (used by ``run`` and the benchmark).

    For DP methods the Poisson sampling lives in :attr:`private` (``private.loader``); :meth:`step` with an
    explicit batch is the mechanism's step on that batch (the benchmark times it on a fixed batch).
    """

    def __init__(self, config: FinetuneConfig, model: nn.Module, *, n_train: int, seq_len: int | None = None):
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
                step_hooks=hooks, seq_len=seq_len,
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
def run(config: FinetuneConfig, *, raise_invalid: bool = True) -> RunRecord:
    """Train ``config.model`` on ``config.data`` with ``config.method``; returns the run's :class:`RunRecord`
    (also in ``RUN_DIR/result.json``).

    Raises ``ValueError`` for an invalid configuration before anything is written (``raise_invalid=False``
    returns a failed record instead, written only if ``out_dir`` is safe to write). Never raises for failures
    during training (they are results).
    """
    if not isinstance(config, FinetuneConfig):
        raise ValueError(f"config must be a FinetuneConfig, got {type(config).__name__}")
    try:
        config.validate()
    except ValueError as exc:
        if raise_invalid:
            raise
        return _invalid_record(config, exc)
    return _Run(config, Path(config.out_dir)).execute(raise_invalid=raise_invalid)


def _invalid_record(config: FinetuneConfig, exc: Exception) -> RunRecord:
    from lowrankdp.provenance import provenance

    rec = RunRecord(method=config.method, status=RunStatus.FAILED, config=config.to_dict(), provenance=provenance(),
                    reason=f"invalid config: {exc}")
    out = Path(config.out_dir)
    # written only into an empty or missing directory: an invalid config never touches a user's files
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        try:
            write_record(out, rec)
        except OSError:
            pass
    return rec


class _Run:
    def __init__(self, config: FinetuneConfig, out: Path):
        self.config = config
        self.out = out
        self.t0 = time.time()
        self.components: dict[str, str] = {}
        self.notes: list[str] = []
        self.epochs: list[EpochMetrics] = []
        self.epoch = 0
        self.model_dir: str | None = None
        self.runner: StepRunner | None = None
        self.calibrated: float | None = None
        self.resume_refused = False
        self.device = resolve_device(config.device)
        self.cost_state: dict[str, Any] = {"train_seconds": 0.0, "timed_steps": 0, "timed_seconds": 0.0,
                                           "tokens": 0, "records": 0, "steps": 0, "empty_steps": 0,
                                           "flops_step": None}

    # --------------------------------------------------------------------------------- orchestration
    def execute(self, *, raise_invalid: bool) -> RunRecord:
        try:
            self._prepare()
        except ValueError as exc:
            if raise_invalid:
                raise
            # out_dir passed validation (empty, a lowrankdp run, or overwrite), so a failed record may go there,
            # except over the run a mismatching resume was refused for
            return self._finish(RunStatus.FAILED, f"invalid config: {exc}", write=not self.resume_refused)
        except Exception as exc:  # noqa: BLE001 - a failed preparation is a result
            return self._finish(RunStatus.FAILED, f"{type(exc).__name__} while preparing: {exc}",
                                tb=traceback.format_exc(), write=not self.resume_refused)
        try:
            self._train()
        except Diverged as exc:
            return self._finish(RunStatus.FAILED, f"diverged: {exc}")
        except (torch.OutOfMemoryError, MemoryError) as exc:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return self._finish(RunStatus.FAILED, f"out of memory: {str(exc).splitlines()[0] if str(exc) else ''}")
        except KeyboardInterrupt:
            self._finish(RunStatus.FAILED, "interrupted")
            raise
        except Exception as exc:  # noqa: BLE001 - failures are results
            return self._finish(RunStatus.FAILED, f"{type(exc).__name__}: {exc}", tb=traceback.format_exc())
        if self.config.checkpoint != "none":
            self._export_model()
        return self._finish(RunStatus.OK, None)

    def _record(self, status: RunStatus, reason: str | None, tb: str | None = None) -> RunRecord:
        from lowrankdp.provenance import provenance

        if not hasattr(self, "_provenance"):
            self._provenance = provenance()
        cfg = self.config.to_dict()
        if self.calibrated is not None:
            cfg["calibrated_noise_multiplier"] = self.calibrated
        return RunRecord(method=self.config.method, status=status, config=cfg, provenance=self._provenance,
                         epochs=tuple(self.epochs), reason=reason, wall_time_s=time.time() - self.t0,
                         notes=tuple(self.notes), components=dict(self.components), model_dir=self.model_dir,
                         traceback=tb)

    def _finish(self, status: RunStatus, reason: str | None, tb: str | None = None, *, write: bool = True) -> RunRecord:
        rec = self._record(status, reason, tb)
        if write:
            write_record(self.out, rec)
        return rec

    # --------------------------------------------------------------------------------- preparation
    def _prepare(self) -> None:
        from lowrankdp.data import Dataset, load_dataset
        from lowrankdp.measure import prepare_inputs

        cfg = self.config
        _seed_everything(cfg.seed)
        reset_peak_memory(self.device)
        ckpt = latest_checkpoint(self.out) if cfg.resume else None
        fingerprint = data_fingerprint(cfg.data)
        self._check_resume(ckpt, fingerprint)
        self.components.update(data="lowrankdp.data.load_dataset", data_sha256=fingerprint,
                               model="lowrankdp.models.load_base", measure="lowrankdp.measure.measure_all")
        dataset = load_dataset(cfg.data)
        train = list(dataset.splits.get("train", []))
        if not train:
            raise ValueError(f"data must have a non-empty train split, got none in {cfg.data!r}")
        if cfg.max_train_records is not None:
            train = train[: cfg.max_train_records]
        # members are exactly the records trained on
        self.dataset = Dataset({**dataset.splits, "train": train}, dataset.meta, dataset.path)
        model, tok, _src = load_model(cfg.model, device=self.device, dtype=DTYPES[cfg.dtype])
        self.tokenizer = tok
        mk = cfg.extra.get("measure_kwargs", {})
        # each split is encoded once per run: training uses inputs.train_all, every measurement the rest
        self.inputs = prepare_inputs(tok, self.dataset, max_length=cfg.max_length, max_records=mk.get("max_records"),
                                     seed=cfg.seed)
        records = list(self.inputs.train_all.input_ids)
        self.audit = None
        if cfg.audit_canaries:  # canaries join the training set only: measure_all never sees them
            from .canaries import EngineAudit

            self.audit = EngineAudit(cfg, tok, records)
            records += self.audit.input_records
            self.audit.record_base(model)
        self.train_ids, self.train_att = _pad(records, tok)
        self.n_train = len(records)
        self.n_params = matmul_parameter_count(model)
        self._calibrate(model)
        run_cfg = cfg if self.calibrated is None else cfg.replace(noise_multiplier=self.calibrated)
        # the padded length of a batch is near the longest record: what ghost clipping's cost grows with
        self.runner = StepRunner(run_cfg, model, n_train=self.n_train, seq_len=self.span_dim)
        self.notes.extend(self.runner.setup.notes)
        if self.audit is not None:
            self.audit.attach(self.runner)
            self.audit.resumed = ckpt is not None
        self._prepare_influence()
        # only now, with every input loaded, is anything in out_dir replaced
        self._clean_out_dir(ckpt)
        self.start_epoch = 0
        if ckpt is not None:
            self._resume_base_logprobs()
            self._load_checkpoint(ckpt[1])
            self.start_epoch = ckpt[0]

    def _check_resume(self, ckpt, fingerprint: str) -> None:
        """A resumed run must be the same run: same config (up to _RESUMABLE_FIELDS) and same data content."""
        if ckpt is None:
            return
        self.resume_refused = True  # until the checks below pass
        try:
            old = read_record(self.out)
        except ResultError as exc:
            raise ValueError(f"resume: cannot resume from {self.out}: {exc}") from None
        new = self.config.to_dict()
        for k in sorted(set(old.config) | set(new)):
            if k in _RESUMABLE_FIELDS or k == "calibrated_noise_multiplier":
                continue
            if old.config.get(k) != new.get(k):
                raise ValueError(f"{k} differs from the checkpointed run in {self.out} "
                                 f"({old.config.get(k)!r} there, {new.get(k)!r} now); cannot resume")
        if old.components.get("data_sha256") != fingerprint:
            raise ValueError(f"data: the content of {self.config.data!r} changed since the checkpointed run in "
                             f"{self.out} was trained on it; cannot resume (start a new run)")
        self._resumed_epochs = [e for e in old.epochs if e.epoch <= ckpt[0]]
        self.resume_refused = False

    def _clean_out_dir(self, ckpt) -> None:
        """Remove what an earlier run of the engine wrote here (and only that): its checkpoints and model export.
        A resumed run keeps its checkpoints and the evaluations up to the checkpoint."""
        self.out.mkdir(parents=True, exist_ok=True)
        if ckpt is None:
            for p in (self.out / CKPT_DIR).glob("epoch_*.pt") if (self.out / CKPT_DIR).is_dir() else ():
                p.unlink()
            self._remove_exports()
            if self.config.resume:
                self.notes.append("resume=True but no checkpoint found: started from scratch")
        else:
            self.epochs = list(getattr(self, "_resumed_epochs", []))
        self.components["cleaned"] = "yes"
        write_record(self.out, self._record(RunStatus.RUNNING, None))

    def _calibrate(self, model: nn.Module) -> None:
        """``target_epsilon``: the noise multiplier whose ε after the whole run meets the target, from the
        accountant of the method at the run's real sampling rate and number of steps."""
        cfg = self.config
        if cfg.target_epsilon is None:
            return
        from lowrankdp import accounting

        n_batches = math.ceil(self.n_train / cfg.batch_size)
        steps = cfg.epochs * steps_per_epoch(cfg, self.n_train)
        kw: dict[str, Any] = dict(target_epsilon=cfg.target_epsilon, sampling_rate=1.0 / n_batches, steps=steps,
                                  delta=cfg.delta, accountant=cfg.accountant,
                                  max_noise_multiplier=cfg.max_noise_multiplier)
        if cfg.spec.projection:
            layers = adapted_linears(model, cfg.target_modules or default_target_modules(model))
            kw.update(projection=cfg.projection, d=[m.in_features for m in layers.values()], r=cfg.rank,
                      span_dim=self.span_dim)
        self.calibrated = float(accounting.calibrate_noise(**kw))
        self.notes.append(f"noise_multiplier calibrated to {self.calibrated:.6g} for target ε = {cfg.target_epsilon} "
                          f"(q = 1/{n_batches}, {steps} steps, δ = {cfg.delta})")

    @property
    def span_dim(self) -> int:
        """Directions a record's gradient can span in a projected layer: its number of tokens."""
        return int(self.train_att.sum(dim=1).max())

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
            self.influence_kind = "lora_A (PEFT adapter; frozen N(0,1/r) for LoRA-FA)"
        else:
            self._influence_random_A(raw)
        gen = torch.Generator().manual_seed(cfg.seed + 11)
        k = min(cfg.influence_samples, self.n_train)
        self.influence_idx = torch.randperm(self.n_train, generator=gen)[:k]

    def _influence_random_A(self, raw: nn.Module) -> None:
        cfg = self.config
        proj = self.runner.setup.projection
        fixed = proj is not None and proj.mode == "fixed"
        g = torch.Generator().manual_seed(cfg.seed + 7)
        for name, lin in adapted_linears(raw, self.runner.setup.targets).items():
            if lin.in_features <= cfg.rank:
                continue
            self.influence_A[name] = (proj.fixed[name + ".weight"] if fixed else
                                      torch.randn(cfg.rank, lin.in_features, generator=g) / cfg.rank ** 0.5)
            self.influence_layers[name] = lin
        self.influence_kind = ("fixed projection A of compressed DP-SGD" if fixed
                               else "random A, N(0,1/r) entries, fixed for the run")

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
        ids = self.train_ids[idx]
        att = self.train_att[idx]
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
            self.notes.append(f"checkpoint already at epoch {self.start_epoch} >= epochs={cfg.epochs}")

    def _train_epoch(self, epoch: int) -> None:
        cfg = self.config
        batches = self._batches_dp() if self.runner.private is not None else self._batches_plain(epoch)
        n_steps = steps_per_epoch(cfg, self.n_train)
        bar = None
        if cfg.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_steps, desc=f"{cfg.method} epoch {epoch}/{cfg.epochs}", leave=False, unit="step")
        losses: list[float] = []
        try:
            for i, idx in enumerate(batches):
                if i >= n_steps:
                    break
                self._one_step(epoch, i, idx, losses)
                if bar is not None:
                    bar.update(1)
                    if losses:
                        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        finally:
            if bar is not None:
                bar.close()
        self.epoch_train_loss = float(np.mean(losses)) if losses else None

    def _one_step(self, epoch: int, i: int, idx: torch.Tensor, losses: list[float]) -> None:
        cs = self.cost_state
        ids, att = self._gather(idx)
        count = self.config.measure_flops and cs["flops_step"] is None and ids.shape[0] > 0
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
            return
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

    # --------------------------------------------------------------------------------- evaluation
    def _evaluate(self, epoch: int) -> None:
        t = time.perf_counter()
        runner = self.runner
        raw = runner.raw_model
        if runner.private is not None:
            runner.private.disable_hooks()
        was = raw.training
        raw.eval()
        try:
            shared = self._base_measurement() if epoch == 0 else None
            if shared is not None:
                measurements, retention, shared_from = shared
            else:
                measurements, retention, shared_from = self._measure(raw), self._retention(raw), None
            extra = dict(benchmarks=self._benchmarks(raw) if (self.config.retention_mc or self.config.lm_eval_tasks)
                         else None, influence=self._influence(raw))
            privacy = self._privacy()
            if self.audit is not None and epoch > 0:
                extra["audits"] = self.audit.audits(runner, privacy, final=epoch == self.config.epochs,
                                                    run_seconds=time.time() - self.t0)
        finally:
            raw.train(was)
            if runner.private is not None:
                runner.private.enable_hooks()
        em = EpochMetrics(epoch=epoch, step=runner.steps, privacy=privacy, measurements=measurements,
                          retention_loss=retention, costs=self._costs(), eval_seconds=time.perf_counter() - t,
                          elapsed_s=time.time() - self.t0, shared_from=shared_from,
                          train_loss=getattr(self, "epoch_train_loss", None) if epoch else None, **extra)
        self.epochs.append(em)
        write_record(self.out, self._record(RunStatus.RUNNING, None))
        util = em.metric("utility_loss")
        if isinstance(util, float) and not math.isfinite(util):
            raise Diverged(f"non-finite utility loss ({util}) at evaluation of epoch {epoch}")

    def _base_cache(self) -> BaseCache | None:
        cfg = self.config
        if cfg.base_cache is None:
            return None
        identity = {"model": cfg.model, "dtype": cfg.dtype, "data": self.components["data_sha256"],
                    "max_length": cfg.max_length, "measure": measure_kwargs(cfg),
                    "max_records": cfg.extra.get("measure_kwargs", {}).get("max_records"),
                    "max_train_records": cfg.max_train_records, "retention": cfg.retention,
                    "retention_max_tokens": cfg.retention_max_tokens, "device": self.device.type}
        return BaseCache(cfg.base_cache, identity)

    def _base_measurement(self):
        """Epoch 0, the base model: from the shared cache (computed here by the first run that needs it), or
        measured here without a cache. Keeps the base's per-token log-probs for the gains of later epochs."""
        from lowrankdp.measure import model_logprobs

        cfg = self.config
        if not cfg.measure or cfg.lora_b_init_std > 0:
            return None  # a non-zero initial B makes epoch 0 differ from the base model
        raw = self.runner.raw_model
        cache = self._base_cache()
        if cache is None:
            self.base_logprobs = model_logprobs(raw, self.inputs, batch_size=cfg.measure_batch_size, device=self.device)
            return self._measure(raw), self._retention(raw), None
        with cache.locked():
            hit = cache.load()
            if hit is None:
                lp = model_logprobs(raw, self.inputs, batch_size=self.config.measure_batch_size, device=self.device)
                self.base_logprobs = lp
                entry = {"measurements": self._measure(raw), "retention_loss": self._retention(raw)}
                cache.store(entry, lp)
                return entry["measurements"], entry["retention_loss"], None
        entry, self.base_logprobs = hit
        return entry["measurements"], entry["retention_loss"], cache.json.name

    def _resume_base_logprobs(self) -> None:
        """A resumed run still reports gains over the base: the base's log-probs from the cache, or scored now
        (the model still has its base weights: the checkpoint is loaded after this)."""
        from lowrankdp.measure import model_logprobs

        cfg = self.config
        if not cfg.measure or cfg.lora_b_init_std > 0:
            return
        cache = self._base_cache()
        hit = cache.load() if cache is not None else None
        self.base_logprobs = hit[1] if hit is not None else model_logprobs(
            self.runner.raw_model, self.inputs, batch_size=cfg.measure_batch_size, device=self.device)

    def _measure(self, raw) -> dict[str, Any] | None:
        if not self.config.measure:
            return None
        from lowrankdp.measure import measure_all

        return measure_all(raw, self.tokenizer, inputs=self.inputs, device=self.device,
                           base_logprobs=getattr(self, "base_logprobs", None), **measure_kwargs(self.config))

    def _retention(self, raw) -> float | None:
        if not self.config.retention:
            return None
        from lowrankdp.models import retention_loss

        return float(retention_loss(raw, self.tokenizer, max_tokens=self.config.retention_max_tokens))

    def _benchmarks(self, raw) -> dict[str, Any]:
        """Knowledge retention by accuracy: the local multiple-choice task and, where installed,
        lm-evaluation-harness tasks (``lowrankdp.models``)."""
        from lowrankdp.models import lm_eval_available, multiple_choice_accuracy, run_lm_eval

        cfg = self.config
        out: dict[str, Any] = {}
        if cfg.retention_mc:
            out["mc_accuracy"] = float(multiple_choice_accuracy(raw, self.tokenizer))
        if cfg.lm_eval_tasks:
            out["lm_eval"] = (run_lm_eval(raw, self.tokenizer, cfg.lm_eval_tasks) if lm_eval_available()
                              else {"skipped": "lm-evaluation-harness (lm_eval) is not installed"})
        return out

    def _influence(self, raw) -> dict[str, Any] | None:
        from .influence import measure_influence

        if self.config.influence_samples == 0 or not self.influence_layers:
            return None
        ids = self.train_ids[self.influence_idx].to(self.device)
        att = self.train_att[self.influence_idx].to(self.device)
        return measure_influence(raw, self.influence_layers, self.influence_A, ids, att,
                                 rank=self.config.rank, subspace_kind=self.influence_kind)

    def _privacy(self):
        priv = self.runner.private
        block = privacy_block(self.config, steps=self.runner.steps,
                              sampling_rate=priv.sample_rate if priv is not None else None,
                              projection=self.runner.setup.projection, span_dim=self.span_dim,
                              calibrated=self.calibrated)
        if priv is not None and self.runner.steps > 0:  # opacus's own accountant, no projection credit
            block = dataclasses.replace(block, opacus_epsilon=priv.opacus_epsilon(self.config.delta))
        return block

    def _costs(self) -> dict[str, Any]:
        cfg = self.config
        cs = self.cost_state
        proj = self.runner.setup.projection
        tokens_per_step = cs["tokens"] / max(cs["steps"] - cs["empty_steps"], 1) if cs["steps"] else None
        analytic = analytic_flops_per_token(
            cfg.method, self.n_params, rank=cfg.rank,
            projected_dims=list(proj.dims.values()) if proj is not None else None, tokens_per_step=tokens_per_step)
        fs = cs["flops_step"]
        priv = self.runner.private
        return {
            "device": str(self.device), "dtype": cfg.dtype, "N_matmul_params": self.n_params,
            "trainable_params": int(sum(p.numel() for p in self.runner.model.parameters() if p.requires_grad)),
            "steps": cs["steps"], "empty_steps": cs["empty_steps"], "tokens": cs["tokens"], "records": cs["records"],
            "train_seconds": cs["train_seconds"],
            "step_time_mean_s": cs["timed_seconds"] / cs["timed_steps"] if cs["timed_steps"] else None,
            "tokens_per_s": cs["tokens"] / cs["train_seconds"] if cs["train_seconds"] > 0 else None,
            "analytic_formula": ANALYTIC_FORMULA[cfg.method], "analytic_flops_per_token": analytic,
            "analytic_flops_total": analytic * cs["tokens"], "measured_flops_step": fs,
            "measured_flops_per_token": (fs["flops"] / fs["tokens"]) if fs and fs["tokens"] else None,
            "peak_memory": peak_memory(self.device),
            "grad_sample_mode": priv.mode if priv is not None else None,
            "grad_sample_mode_reason": priv.mode_reason if priv is not None else None,
        }

    # --------------------------------------------------------------------------------- model export
    def _remove_exports(self) -> None:
        """A run started from scratch in an existing run directory must not leave an older run's model behind
        (only folders the engine's export wrote: they carry its marker file)."""
        from .export import EXPORT_INFO_FILE, MODEL_DIR

        for p in [self.out / MODEL_DIR, *self.out.glob(f"{MODEL_DIR}_epoch_*")]:
            if p.is_dir() and not p.is_symlink() and (p / EXPORT_INFO_FILE).is_file():
                shutil.rmtree(p)

    def _export_model(self) -> None:
        """``RUN_DIR/model``: the trained tensors (read from the unwrapped model, so no opacus wrapper or hook
        comes along) loaded into a freshly built copy of the run's model, LoRA merged, ``save_pretrained``."""
        from .export import MODEL_DIR, export_params

        info = {"run_dir": str(self.out), "epoch": self.epoch, "steps": self.runner.steps,
                "source": "final in-memory model of the run"}
        try:
            export_params(self.config, self._state_params(), self.out / MODEL_DIR, info=info)
        except Exception as exc:  # noqa: BLE001 - training succeeded; record why the export did not
            self.notes.append(f"model export to {MODEL_DIR}/ failed ({type(exc).__name__}: {exc}); "
                              "retry with lowrankdp.finetune.export_model(run_dir)")
            return
        self.model_dir = MODEL_DIR

    # --------------------------------------------------------------------------------- checkpoints
    def _state_params(self) -> dict[str, torch.Tensor]:
        raw = self.runner.raw_model
        return {n: p.detach().cpu().clone() for n, p in raw.named_parameters() if p.requires_grad or "lora_" in n}

    def _checkpoint(self, epoch: int) -> None:
        cfg = self.config
        if cfg.checkpoint == "none":
            return
        priv = self.runner.private
        state = {
            "epoch": epoch, "steps": self.runner.steps, "params": self._state_params(),
            "optimizer": self.runner.base_optimizer.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
            "private": None if priv is None else {"steps": priv.steps, "history": priv.accountant_state(),
                                                  "noise_generator": priv.noise_generator.get_state()},
            "projection": None if self.runner.setup.projection is None else self.runner.setup.projection.state_dict(),
            "cost_state": dict(self.cost_state),
            "epoch_train_loss": getattr(self, "epoch_train_loss", None),
        }
        path = self.out / CKPT_DIR / f"epoch_{epoch:04d}.pt"
        save_checkpoint(state, path)
        if cfg.checkpoint == "last":
            for p in (self.out / CKPT_DIR).glob("epoch_*.pt"):
                if p != path:
                    p.unlink()

    def _load_checkpoint(self, path: Path) -> None:
        state = load_checkpoint(path)
        named = dict(self.runner.raw_model.named_parameters())
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
        random.setstate(_as_tuple(rng["python"]))
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


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def _pad(input_ids: list[np.ndarray], tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``(input_ids, attention_mask)`` tensors of encoded records."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    L = max((a.size for a in input_ids), default=1)
    ids = torch.full((len(input_ids), max(L, 1)), int(pad_id), dtype=torch.long)
    att = torch.zeros((len(input_ids), max(L, 1)), dtype=torch.long)
    for i, a in enumerate(input_ids):
        ids[i, :a.size] = torch.as_tensor(a)
        att[i, :a.size] = 1
    return ids, att
