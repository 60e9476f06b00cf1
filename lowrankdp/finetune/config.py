"""Typed configuration of one fine-tuning run (`FinetuneConfig`).

Validation happens in two places, both before any training:

* ``__post_init__`` checks every field on its own (types, ranges, choices) and the
  combinations that do not need the model (e.g. ``projection`` only for compressed DP-SGD);
* :meth:`FinetuneConfig.validate` adds the file-system checks (data directory, local
  model path) and is what :func:`lowrankdp.finetune.run` calls first;
* checks that need the loaded model (rank larger than an adapted layer, target modules
  that match nothing) run inside ``run`` right after loading, still before training.

Every error is a ``ValueError`` whose message starts with the field name.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._validate import check_choice, check_int, check_real
from ..methods import METHODS, PRIVATE_METHODS, check_method, get_method

__all__ = ["FinetuneConfig"]

_OPTIMIZERS = ("adamw", "sgd")
_CLIP_UNITS = ("sequence", "token")
_GRAD_SAMPLE_MODES = ("auto", "ghost", "hooks")
_PROJECTIONS = ("fresh", "fixed")
_ACCOUNTANTS = ("rdp", "pld")  # lowrankdp.accounting accountants
_CHECKPOINT = ("last", "all", "none")
_DTYPES = ("float32", "bfloat16", "float16")
_DEVICES_PREFIX = ("cpu", "cuda", "mps")


@dataclass(frozen=True)
class FinetuneConfig:
    """One fine-tuning run. Fields are validated on construction (``ValueError`` naming the field).

    Privacy unit: one training record (sequence) under add/remove neighbouring, unless
    ``clip_unit="token"`` (an explicit reproduction of [RPUE]'s per-token clipping, whose ε protects
    a single token, not a record).
    """

    method: str
    data: str
    out_dir: str
    model: str = "tiny"
    epochs: int = 3
    lr: float | None = None  # None -> the method's default_lr (lowrankdp.methods)
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    batch_size: int = 8  # logical (expected, for Poisson sampling) batch size, in records
    micro_batch_size: int | None = None  # physical batch; None -> batch_size
    max_length: int = 128
    max_train_records: int | None = None
    max_steps_per_epoch: int | None = None  # for benchmarks/smoke runs; steps are still accounted
    # LoRA / LoRA-FA / DP-LoRA; rank also sets the projection rank of compressed DP-SGD
    rank: int = 16
    alpha: float = 16.0
    target_modules: tuple[str, ...] | None = None  # None -> every Linear inside the transformer blocks
    lora_dropout: float = 0.0
    lora_b_init_std: float = 0.0  # PEFT starts B at 0; > 0 only for tests (identity adapters cannot pass)
    # DP
    noise_multiplier: float = 1.0
    target_epsilon: float | None = None  # private methods: calibrate noise_multiplier to this ε (overrides it)
    max_noise_multiplier: float = 50.0  # calibration limit: a target needing more noise is refused (it would not train)
    max_grad_norm: float = 1.0
    delta: float = 1e-5
    clip_unit: str = "sequence"
    grad_sample_mode: str = "auto"  # auto = ghost clipping, falling back to hooks if ghost fails
    accountant: str = "rdp"
    projection: str | None = None  # compressed DP-SGD: "fresh" | "fixed" (None -> "fresh"); ignored otherwise
    # evaluation / logging
    seed: int = 0
    eval_every: int = 1
    eval_initial: bool = True
    measure: bool = True  # lowrankdp.measure.measure_all at each evaluation
    measure_batch_size: int = 16
    exposure_max_candidates: int | None = None
    retention: bool = True
    retention_max_tokens: int | None = None
    retention_mc: bool = False  # multiple-choice accuracy on the local task file (lowrankdp.models)
    lm_eval_tasks: tuple[str, ...] | None = None  # e.g. ("mmlu", "hellaswag", "sciq") where lm-eval is installed
    influence_samples: int = 8  # training records whose per-example gradients are decomposed; 0 = off
    audit_canaries: int = 0  # m canaries of each one-run audit (input-space; white-box for DP methods); 0 = off
    audit_seed: int | None = None  # seed of the canaries' inclusion bits and secrets; None -> seed
    measure_flops: bool = True
    checkpoint: str = "last"
    resume: bool = False
    device: str | None = None  # None -> "cuda" when available, else "cpu"
    dtype: str = "float32"
    progress: bool = True
    overwrite: bool = False  # allow out_dir to be a non-empty directory that is not a lowrankdp run
    base_cache: str | None = None  # directory where the base model's epoch-0 measurement is shared between runs
    extra: dict[str, Any] = field(default_factory=dict)  # free-form tags (e.g. the sweep's dataset name)

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        object.__setattr__(self, "method", check_method(self.method))
        spec = get_method(self.method)
        for name in ("data", "out_dir", "model"):
            v = getattr(self, name)
            if isinstance(v, os.PathLike):
                object.__setattr__(self, name, os.fspath(v))
                v = getattr(self, name)
            if not isinstance(v, str) or not v:
                raise ValueError(f"{name} must be a non-empty string or path, got {v!r}")
        check_int("epochs", self.epochs, minimum=1)
        if self.lr is not None:
            check_real("lr", self.lr, lo=0.0, lo_open=True)
        check_choice("optimizer", self.optimizer, _OPTIMIZERS)
        check_real("weight_decay", self.weight_decay, lo=0.0)
        check_int("batch_size", self.batch_size, minimum=1)
        if self.micro_batch_size is not None:
            check_int("micro_batch_size", self.micro_batch_size, minimum=1)
        check_int("max_length", self.max_length, minimum=2)
        if self.max_train_records is not None:
            check_int("max_train_records", self.max_train_records, minimum=1)
        if self.max_steps_per_epoch is not None:
            check_int("max_steps_per_epoch", self.max_steps_per_epoch, minimum=1)
        check_int("rank", self.rank, minimum=1)
        check_real("alpha", self.alpha, lo=0.0, lo_open=True)
        if self.target_modules is not None:
            tm = self.target_modules
            if isinstance(tm, str) or not all(isinstance(t, str) and t for t in tm) or len(tm) == 0:
                raise ValueError(f"target_modules must be a non-empty tuple of module names, got {tm!r}")
            object.__setattr__(self, "target_modules", tuple(tm))
        check_real("lora_dropout", self.lora_dropout, lo=0.0, hi=1.0, hi_open=True)
        check_real("lora_b_init_std", self.lora_b_init_std, lo=0.0)
        check_real("noise_multiplier", self.noise_multiplier, lo=0.0)
        if self.target_epsilon is not None:
            if not spec.private:
                raise ValueError(f"target_epsilon applies only to private methods {PRIVATE_METHODS}, got "
                                 f"{self.target_epsilon!r} with method={self.method!r} (it adds no noise)")
            check_real("target_epsilon", self.target_epsilon, lo=0.0, lo_open=True)
        check_real("max_noise_multiplier", self.max_noise_multiplier, lo=0.0, lo_open=True)
        check_real("max_grad_norm", self.max_grad_norm, lo=0.0, lo_open=True)
        check_real("delta", self.delta, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        check_choice("clip_unit", self.clip_unit, _CLIP_UNITS)
        check_choice("grad_sample_mode", self.grad_sample_mode, _GRAD_SAMPLE_MODES)
        check_choice("accountant", self.accountant, _ACCOUNTANTS)
        if spec.projection:
            proj = "fresh" if self.projection is None else self.projection
            check_choice("projection", proj, _PROJECTIONS)
            object.__setattr__(self, "projection", getattr(proj, "value", proj))
        elif self.projection is not None:
            # sweeps set one projection for a whole grid: accept a valid value and drop it (it has no meaning
            # for this method), so config.json records what the run used
            check_choice("projection", self.projection, _PROJECTIONS)
            object.__setattr__(self, "projection", None)
        if not spec.private and self.clip_unit != "sequence":
            raise ValueError(f"clip_unit applies only to private methods {PRIVATE_METHODS}, got {self.clip_unit!r} "
                             f"with method={self.method!r}")
        if spec.projection and self.clip_unit == "token":
            raise ValueError("clip_unit='token' is not supported with method 'compressed-dp-sgd'")
        check_int("seed", self.seed, minimum=0)
        check_int("eval_every", self.eval_every, minimum=1)
        check_int("measure_batch_size", self.measure_batch_size, minimum=1)
        if self.exposure_max_candidates is not None:
            check_int("exposure_max_candidates", self.exposure_max_candidates, minimum=0)  # 0: sampled only
        if self.retention_max_tokens is not None:
            check_int("retention_max_tokens", self.retention_max_tokens, minimum=1)
        check_int("influence_samples", self.influence_samples, minimum=0)
        check_int("audit_canaries", self.audit_canaries, minimum=0, maximum=100_000)
        if self.audit_seed is not None:
            check_int("audit_seed", self.audit_seed, minimum=0)
        check_choice("checkpoint", self.checkpoint, _CHECKPOINT)
        if self.resume and self.checkpoint == "none":
            raise ValueError("resume=True needs checkpoints; got checkpoint='none'")
        if self.device is not None:
            if not isinstance(self.device, str) or not self.device.split(":")[0] in _DEVICES_PREFIX:
                raise ValueError(f"device must be None or one of cpu, cuda[:i], mps, got {self.device!r}")
        check_choice("dtype", self.dtype, _DTYPES)
        if self.lm_eval_tasks is not None:
            tasks = self.lm_eval_tasks
            if isinstance(tasks, str) or not all(isinstance(t, str) and t for t in tasks) or len(tasks) == 0:
                raise ValueError(f"lm_eval_tasks must be None or a non-empty tuple of task names, got {tasks!r}")
            object.__setattr__(self, "lm_eval_tasks", tuple(tasks))
        for name in ("eval_initial", "measure", "retention", "retention_mc", "measure_flops", "resume", "progress",
                     "overwrite"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.extra, dict):
            raise ValueError(f"extra must be a dict, got {type(self.extra).__name__}")

    def validate(self) -> "FinetuneConfig":
        """Field checks plus file-system checks; raises ``ValueError`` naming the field. Returns self."""
        data = Path(self.data)
        if not data.is_dir():
            raise ValueError(f"data must be a dataset directory, got {self.data!r} (not a directory)")
        if not (data / "train.jsonl").is_file():
            raise ValueError(f"data must contain train.jsonl, missing in {self.data!r}")
        if self.model.startswith((".", "/", "~")) and not Path(self.model).expanduser().exists():
            raise ValueError(f"model must be a preset name, hub id or existing path, got {self.model!r} "
                             "(path does not exist)")
        if self.device is not None and self.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ValueError(f"device must be available, got {self.device!r} but CUDA is not available")
        self._check_out_dir()
        return self

    def _check_out_dir(self) -> None:
        """Outputs never touch inputs: out_dir may not equal, contain or lie inside the data directory or a local
        model path, and may be a non-empty directory only if it holds a lowrankdp run (or ``overwrite``)."""
        out = Path(self.out_dir).expanduser().resolve()
        if out.exists() and not out.is_dir():
            raise ValueError(f"out_dir must be a directory, got {self.out_dir!r} (a file)")
        inputs = {"data": Path(self.data)}
        if Path(self.model).expanduser().exists():
            inputs["model"] = Path(self.model).expanduser()
        for name, p in inputs.items():
            p = p.resolve()
            if out == p or p.is_relative_to(out) or out.is_relative_to(p):
                raise ValueError(f"out_dir must be outside the {name} input, got {self.out_dir!r} which "
                                 f"{'is' if out == p else 'overlaps'} {name}={str(p)!r}; choose another --out")
        if out.is_dir() and not self.overwrite and any(out.iterdir()):
            from ..results import RESULT_FILE

            if not (out / RESULT_FILE).is_file():
                raise ValueError(f"out_dir must be empty or a lowrankdp run directory, got {self.out_dir!r} "
                                 "(non-empty, no result.json); pass overwrite=True (--overwrite) to write there")

    # ------------------------------------------------------------------ derived values
    @property
    def spec(self):
        """The method's :class:`lowrankdp.methods.MethodSpec`."""
        return METHODS[self.method]

    @property
    def effective_lr(self) -> float:
        return self.spec.default_lr if self.lr is None else float(self.lr)

    @property
    def effective_micro_batch_size(self) -> int:
        return self.batch_size if self.micro_batch_size is None else min(self.micro_batch_size, self.batch_size)

    @property
    def is_dp(self) -> bool:
        return self.spec.private

    @property
    def uses_lora(self) -> bool:
        return self.spec.adapters is not None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["target_modules"] = list(self.target_modules) if self.target_modules is not None else None
        d["lm_eval_tasks"] = list(self.lm_eval_tasks) if self.lm_eval_tasks is not None else None
        d["effective_lr"] = self.effective_lr
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FinetuneConfig":
        d = dict(d)
        d.pop("effective_lr", None)
        for k in ("target_modules", "lm_eval_tasks"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{unknown[0]} is not a FinetuneConfig field")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def replace(self, **changes: Any) -> "FinetuneConfig":
        return dataclasses.replace(self, **changes)
