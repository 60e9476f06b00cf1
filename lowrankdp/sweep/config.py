"""Typed, validated sweep configurations (peft method-comparison style: one typed config per
experiment family, small override files on top of a preset).

A sweep is a grid ``methods × models × datasets × ranks × alphas × (noise_multipliers | target_epsilons) × lrs ×
seeds × epochs``. Axes a method does not use are collapsed for that method (FFT ignores rank, α and σ; LoRA ignores
σ; DP-SGD ignores rank and α; compressed DP-SGD ignores α; see ``lowrankdp.methods``), so the grid never contains
two runs that would train the same thing. ``target_epsilons`` replaces ``noise_multipliers`` for private methods:
each run's σ is calibrated by the accountant of its method to end at that ε. ``lrs`` (optional) varies the
learning rate; ``[method.<m>] lrs = [...]`` gives a method its own learning-rate axis.

Config files are TOML (``tomllib``) or YAML (``pyyaml`` where installed) with these tables::

    name = "smoke"
    extends = "smoke"          # optional: a preset name or a path (relative to this file)
    [grid]       methods, models, datasets, ranks, alphas, noise_multipliers | target_epsilons, lrs, seeds, epochs
    [train]      FinetuneConfig fields shared by every run (lr, batch_size, max_grad_norm, delta, ...)
    [method.<m>] per-method overrides of [train] (e.g. [method.fft] lr = 2.5e-4)
    [datasets.<name>]  generate = "customersim"|"synbio", seed, sizes, canary_repeats  -- or -- path = DIR
    [execution]  gpus_per_run, cpus_per_run, timeout_s, jobs, runner ("finetune" or "synthetic")
    [report]     attack (the membership attack the ROC figure shows)

Every check runs before any training and raises ``ValueError`` naming the field, e.g.
``"grid.noise_multipliers[1] must be in [0, inf), got -0.5"``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .._validate import check_choice, check_int, check_real
from ..methods import METHODS, check_method
from ..models.presets import model_width

__all__ = [
    "DatasetSpec",
    "GridSpec",
    "ExecutionSpec",
    "ReportSpec",
    "SweepConfig",
    "RunSpec",
    "RUNNERS",
    "PRESETS_DIR",
    "available_presets",
    "load_config",
    "load_config_dict",
    "merge_overrides",
    "run_key",
]

DATA_KINDS: tuple[str, ...] = ("customersim", "synbio")
PROJECTIONS: tuple[str, ...] = ("fresh", "fixed")
# FinetuneConfig fields that only private methods use; dropped from non-private runs so they do not change the run
# key of a run they cannot influence.
_DP_ONLY_TRAIN_FIELDS = frozenset({"max_grad_norm", "projection", "clip_unit", "accountant", "grad_sample_mode",
                                   "delta"})
# Fields the sweep sets itself; a [train] table may not set them.
_RESERVED_TRAIN_FIELDS = frozenset(
    {"method", "model", "data", "rank", "alpha", "noise_multiplier", "target_epsilon", "seed", "epochs", "out_dir",
     "base_cache", "resume", "overwrite"}
)
#: the run functions a sweep may call, by name (never an import path taken from a config file)
RUNNERS: dict[str, str] = {
    "finetune": "lowrankdp.finetune:run",
    "synthetic": "lowrankdp.sweep.synthetic:synthetic_run",  # test-only: writes fake, clearly-marked results
}
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _check_name(path: str, name: Any) -> str:
    """A name that becomes part of a path: letters, digits, '_', '.', '-'; not starting with '.'."""
    if not isinstance(name, str) or not name or name[0] == "." or not set(name) <= _NAME_OK or len(name) > 100:
        raise ValueError(f"{path} must be 1-100 characters of letters, digits, '_', '.', '-' not starting with '.', "
                         f"got {name!r}")
    return name


PRESETS_DIR = Path(__file__).resolve().parent / "presets"

# ----------------------------------------------------------------------------------- helpers


def _as_list(path: str, value: Any) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) == 0:
            raise ValueError(f"{path} must be a non-empty list, got []")
        return list(value)
    return [value]


def _check_keys(path: str, table: Mapping[str, Any], allowed: Iterable[str]) -> None:
    allowed = set(allowed)
    for k in table:
        if k not in allowed:
            where = f"{path}.{k}" if path else k
            raise ValueError(f"{where} is not a known field; allowed: {', '.join(sorted(allowed))}")


def _table(path: str, value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{path} must be a table, got {type(value).__name__}")
    return dict(value)


def _jsonable_scalar(path: str, value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _jsonable_scalar(f"{path}.{k}", v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable_scalar(f"{path}[{i}]", v) for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"{path} must be a number, string, boolean, list or table, got {type(value).__name__}")


# ----------------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: generated by ``lowrankdp.data.generate`` into the sweep directory, or an existing
    directory (``path``) in the layout of ``lowrankdp.data`` (train/valid/test.jsonl + meta.json)."""

    name: str
    generate: str | None = None
    seed: int = 0
    sizes: dict[str, int] | None = None
    canary_repeats: int = 10
    path: str | None = None

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any], *, base_dir: Path | None) -> "DatasetSpec":
        p = f"datasets.{name}"
        d = _table(p, d)
        _check_keys(p, d, ("generate", "seed", "sizes", "canary_repeats", "path"))
        gen = d.get("generate")
        path = d.get("path")
        if (gen is None) == (path is None):
            raise ValueError(f"{p} must set exactly one of 'generate' (a kind) or 'path' (a directory)")
        if gen is not None:
            gen = check_choice(f"{p}.generate", gen, DATA_KINDS)
        sizes = None
        if d.get("sizes") is not None:
            sz = _table(f"{p}.sizes", d["sizes"])
            _check_keys(f"{p}.sizes", sz, ("train", "valid", "test"))
            sizes = {k: check_int(f"{p}.sizes.{k}", v, minimum=1) for k, v in sz.items()}
        if path is not None:
            if not isinstance(path, str) or not path:
                raise ValueError(f"{p}.path must be a directory path string, got {path!r}")
            pth = Path(os.path.expanduser(path))
            if not pth.is_absolute() and base_dir is not None:
                pth = base_dir / pth
            path = str(pth.resolve())
        return cls(
            name=name,
            generate=gen,
            seed=check_int(f"{p}.seed", d.get("seed", 0), minimum=0),
            sizes=sizes,
            canary_repeats=check_int(f"{p}.canary_repeats", d.get("canary_repeats", 10), minimum=0),
            path=path,
        )

    def check_exists(self) -> None:
        """For user data: the directory must exist and hold the split files (checked before training)."""
        if self.path is None:
            return
        p = Path(self.path)
        if not p.is_dir():
            raise ValueError(f"datasets.{self.name}.path: data directory does not exist: {self.path}")
        missing = [f for f in ("train.jsonl", "test.jsonl") if not (p / f).is_file()]
        if missing:
            raise ValueError(
                f"datasets.{self.name}.path: data directory {self.path} lacks {', '.join(missing)}"
            )

    def train_size(self) -> int | None:
        """Records in the train split, known before generation (sizes, or the generator's default) or counted."""
        if self.path is not None:
            f = Path(self.path) / "train.jsonl"
            try:
                with open(f, "rb") as fh:
                    return sum(1 for line in fh if line.strip())
            except OSError:
                return None
        from ..data.generators import DEFAULT_SIZES

        n = (self.sizes or {}).get("train", DEFAULT_SIZES[self.generate]["train"])
        return n + self.canary_repeats

    def directory(self, sweep_dir: Path) -> Path:
        """Where the runs read this dataset from."""
        if self.path is not None:
            return Path(self.path)
        return Path(sweep_dir) / "data" / self.name

    def identity(self) -> dict[str, Any]:
        """What determines the dataset's content (hashed into run keys instead of a path)."""
        if self.path is not None:
            from ..data.fingerprint import data_fingerprint

            # the content, not just the path: a run key changes when the files change
            return {"path": self.path, "sha256": data_fingerprint(self.path) if Path(self.path).is_dir() else None}
        return {"generate": self.generate, "seed": self.seed, "sizes": self.sizes,
                "canary_repeats": self.canary_repeats}


@dataclass(frozen=True)
class GridSpec:
    methods: tuple[str, ...]
    models: tuple[str, ...]
    datasets: tuple[str, ...]
    ranks: tuple[int, ...] = (8,)
    alphas: tuple[float, ...] = (8.0,)
    noise_multipliers: tuple[float, ...] = (1.0,)
    target_epsilons: tuple[float, ...] = ()  # private methods: calibrate σ to each (replaces noise_multipliers)
    lrs: tuple[float, ...] = ()  # learning-rate axis; empty = each method's lr from [train]/[method.<m>]
    seeds: tuple[int, ...] = (0,)
    epochs: tuple[int, ...] = (3,)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GridSpec":
        d = _table("grid", d)
        _check_keys("grid", d, cls.__dataclass_fields__)
        for req in ("methods", "models", "datasets"):
            if req not in d:
                raise ValueError(f"grid.{req} is required")
        methods = tuple(
            _method(f"grid.methods[{i}]", m) for i, m in enumerate(_as_list("grid.methods", d["methods"]))
        )
        models = []
        for i, m in enumerate(_as_list("grid.models", d["models"])):
            if not isinstance(m, str) or not m:
                raise ValueError(f"grid.models[{i}] must be a model name or path, got {m!r}")
            models.append(m)
        dsets = []
        for i, m in enumerate(_as_list("grid.datasets", d["datasets"])):
            if not isinstance(m, str) or not m:
                raise ValueError(f"grid.datasets[{i}] must be a dataset name, got {m!r}")
            dsets.append(m)
        ranks = tuple(
            check_int(f"grid.ranks[{i}]", r, minimum=1)
            for i, r in enumerate(_as_list("grid.ranks", d.get("ranks", [8])))
        )
        alphas = tuple(
            check_real(f"grid.alphas[{i}]", a, lo=0.0, lo_open=True)
            for i, a in enumerate(_as_list("grid.alphas", d.get("alphas", [8.0])))
        )
        sigmas = tuple(
            check_real(f"grid.noise_multipliers[{i}]", s, lo=0.0)
            for i, s in enumerate(_as_list("grid.noise_multipliers", d.get("noise_multipliers", [1.0])))
        )
        targets = tuple(
            check_real(f"grid.target_epsilons[{i}]", t, lo=0.0, lo_open=True)
            for i, t in enumerate(_as_list("grid.target_epsilons", d["target_epsilons"]))
        ) if "target_epsilons" in d else ()
        if targets and "noise_multipliers" in d:
            raise ValueError("grid.noise_multipliers and grid.target_epsilons are alternatives for private methods; "
                             "set one of them")
        if targets and not any(METHODS[m].private for m in methods):
            raise ValueError(f"grid.target_epsilons applies only to private methods; grid.methods has none "
                             f"({', '.join(methods)})")
        lrs = tuple(check_real(f"grid.lrs[{i}]", x, lo=0.0, lo_open=True)
                    for i, x in enumerate(_as_list("grid.lrs", d["lrs"]))) if "lrs" in d else ()
        seeds = tuple(
            check_int(f"grid.seeds[{i}]", s, minimum=0)
            for i, s in enumerate(_as_list("grid.seeds", d.get("seeds", [0])))
        )
        epochs = tuple(
            check_int(f"grid.epochs[{i}]", e, minimum=1)
            for i, e in enumerate(_as_list("grid.epochs", d.get("epochs", [3])))
        )
        for name, vals in (("methods", methods), ("models", models), ("datasets", dsets), ("ranks", ranks),
                           ("alphas", alphas), ("noise_multipliers", sigmas), ("target_epsilons", targets),
                           ("lrs", lrs), ("seeds", seeds), ("epochs", epochs)):
            if len(set(vals)) != len(vals):
                raise ValueError(f"grid.{name} has duplicate entries: {list(vals)}")
        return cls(methods, tuple(models), tuple(_check_name(f"grid.datasets[{i}]", x) for i, x in enumerate(dsets)),
                   ranks, alphas, sigmas, targets, lrs, seeds, epochs)


def _method(path: str, m: Any) -> str:
    return check_method(m, field=path)


@dataclass(frozen=True)
class ExecutionSpec:
    gpus_per_run: float = 0.0
    cpus_per_run: float = 1.0
    timeout_s: float | None = None  # per run; None = no limit
    jobs: int = 1  # local executor: runs in parallel (each in its own process)
    runner: str = "finetune"  # a name in RUNNERS
    threads_per_run: int | None = None  # OMP/torch threads in each worker

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ExecutionSpec":
        d = _table("execution", d)
        _check_keys("execution", d, cls.__dataclass_fields__)
        timeout = d.get("timeout_s")
        runner = check_choice("execution.runner", d.get("runner", "finetune"), tuple(RUNNERS))
        threads = d.get("threads_per_run")
        return cls(
            gpus_per_run=check_real("execution.gpus_per_run", d.get("gpus_per_run", 0.0), lo=0.0),
            cpus_per_run=check_real("execution.cpus_per_run", d.get("cpus_per_run", 1.0), lo=0.0, lo_open=True),
            timeout_s=None if timeout is None else check_real("execution.timeout_s", timeout, lo=0.0, lo_open=True),
            jobs=check_int("execution.jobs", d.get("jobs", 1), minimum=1, maximum=256),
            runner=runner,
            threads_per_run=None if threads is None else check_int("execution.threads_per_run", threads, minimum=1),
        )


@dataclass(frozen=True)
class ReportSpec:
    attack: str = "loss"  # which stored membership attack the ROC figure shows

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ReportSpec":
        d = _table("report", d)
        _check_keys("report", d, cls.__dataclass_fields__)
        return cls(attack=check_choice("report.attack", d.get("attack", "loss"), ("loss", "zlib", "min_k", "reference", "sensitive",
                                                                               "sensitive_reference")))


@dataclass(frozen=True)
class RunSpec:
    """One resolved run: the FinetuneConfig fields (without ``out_dir``), its key and resources."""

    key: str
    name: str
    config: dict[str, Any]
    dataset: str
    gpus: float = 0.0
    cpus: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_key(identity: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a run's resolved configuration."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _fmt_num(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class SweepConfig:
    name: str
    grid: GridSpec
    datasets: dict[str, DatasetSpec]
    train: dict[str, Any] = field(default_factory=dict)
    method: dict[str, dict[str, Any]] = field(default_factory=dict)
    execution: ExecutionSpec = field(default_factory=ExecutionSpec)
    report: ReportSpec = field(default_factory=ReportSpec)
    description: str = ""
    source: str | None = None  # file or preset the config came from

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, base_dir: Path | None = None,
                  source: str | None = None) -> "SweepConfig":
        d = _table("config", d)
        _check_keys("", d, ("name", "description", "extends", "grid", "train", "method", "datasets",
                            "execution", "report"))
        name = d.get("name", "sweep")
        name = _check_name("name", name)
        grid = GridSpec.from_dict(d.get("grid"))
        dtab = _table("datasets", d.get("datasets"))
        datasets = {_check_name(f"datasets.{k}", k): DatasetSpec.from_dict(k, v, base_dir=base_dir)
                    for k, v in dtab.items()}
        for i, ds in enumerate(grid.datasets):
            if ds not in datasets:
                raise ValueError(
                    f"grid.datasets[{i}]: dataset {ds!r} has no [datasets.{ds}] table "
                    f"(known: {', '.join(sorted(datasets)) or 'none'})"
                )
        train = _table("train", d.get("train"))
        for k, v in train.items():
            if k in _RESERVED_TRAIN_FIELDS:
                raise ValueError(f"train.{k} is set by the grid (grid.{_grid_name(k)}), not by [train]")
            train[k] = _jsonable_scalar(f"train.{k}", v)
        _check_train("train", train)
        mtab = _table("method", d.get("method"))
        method: dict[str, dict[str, Any]] = {}
        for m, over in mtab.items():
            _method(f"method.{m}", m)
            over = _table(f"method.{m}", over)
            if "lrs" in over:
                over["lrs"] = [check_real(f"method.{m}.lrs[{i}]", x, lo=0.0, lo_open=True)
                               for i, x in enumerate(_as_list(f"method.{m}.lrs", over["lrs"]))]
            for k, v in over.items():
                if k in _RESERVED_TRAIN_FIELDS - {"epochs"}:
                    raise ValueError(f"method.{m}.{k} is set by the grid (grid.{_grid_name(k)})")
                over[k] = _jsonable_scalar(f"method.{m}.{k}", v)
            _check_train(f"method.{m}", over)
            method[m] = over
        return cls(
            name=name,
            grid=grid,
            datasets=datasets,
            train=train,
            method=method,
            execution=ExecutionSpec.from_dict(d.get("execution")),
            report=ReportSpec.from_dict(d.get("report")),
            description=str(d.get("description", "")),
            source=source,
        )

    def to_dict(self) -> dict[str, Any]:
        """Round-trippable plain dict (the resolved sweep config stored beside the runs)."""
        return {
            "name": self.name,
            "description": self.description,
            "grid": {k: list(v) for k, v in asdict(self.grid).items()},
            "train": copy.deepcopy(self.train),
            "method": copy.deepcopy(self.method),
            "datasets": {
                k: {kk: vv for kk, vv in asdict(v).items() if kk != "name" and vv is not None}
                for k, v in self.datasets.items()
            },
            "execution": {k: v for k, v in asdict(self.execution).items() if v is not None},
            "report": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.report).items()},
        }

    # ------------------------------------------------------------------ checks
    def validate(self, *, check_data: bool = True, sweep_dir: str | os.PathLike | None = None) -> None:
        """Every check that can run before training, in this process: data directories, the rank against the
        model's width, each resolved run through ``FinetuneConfig`` itself (every [train] key, whatever the
        runner), and each target ε against what the run's steps can reach. Raises ValueError naming the run and
        field."""
        from ..finetune.config import FinetuneConfig

        if check_data:
            for name in self.grid.datasets:
                self.datasets[name].check_exists()
        for i, model in enumerate(self.grid.models):
            if model.startswith((".", "/", "~")) and not Path(model).expanduser().exists():
                raise ValueError(f"grid.models[{i}] must be a preset name, hub id or existing path, got {model!r} "
                                 "(path does not exist)")
        if any(METHODS[m].uses_rank for m in self.grid.methods):
            for model in self.grid.models:
                width = model_width(model)
                for i, r in enumerate(self.grid.ranks):
                    if width is not None and r > width:
                        raise ValueError(f"grid.ranks[{i}] = {r} is larger than the layer width {width} of model "
                                         f"{model!r}")
        root = Path(sweep_dir) if sweep_dir is not None else Path(".")
        for spec in self.runs(root):
            try:
                cfg = FinetuneConfig.from_dict({**spec.config, "out_dir": str(root / "runs" / spec.name)})
            except ValueError as exc:
                raise ValueError(f"run {spec.name}: {exc}") from None
            if cfg.target_epsilon is not None:
                self._check_target(spec, cfg)

    def _check_target(self, spec: "RunSpec", cfg) -> None:
        """A target ε must be reachable with the run's sampling rate and steps (plain Gaussian accounting: the
        projected accountants only lower ε, so this never rejects a reachable compressed run)."""
        from .. import accounting

        n = self.datasets[spec.dataset].train_size()
        if n is None:
            return
        n_batches = -(-n // cfg.batch_size)
        per_epoch = n_batches if cfg.max_steps_per_epoch is None else min(n_batches, cfg.max_steps_per_epoch)
        try:
            accounting.calibrate_noise(target_epsilon=cfg.target_epsilon, sampling_rate=1.0 / n_batches,
                                       steps=cfg.epochs * per_epoch, delta=cfg.delta, accountant=cfg.accountant,
                                       max_noise_multiplier=cfg.max_noise_multiplier)
        except ValueError as exc:
            raise ValueError(f"run {spec.name}: grid.target_epsilons: {cfg.target_epsilon} cannot be reached with "
                             f"{cfg.epochs * per_epoch} steps at q = 1/{n_batches}, δ = {cfg.delta} and noise "
                             f"multiplier ≤ {cfg.max_noise_multiplier:g} ({exc})") from None

    # ------------------------------------------------------------------ expansion
    def runs(self, sweep_dir: str | os.PathLike | None = None) -> list[RunSpec]:
        """The grid, expanded, with axes each method ignores collapsed and duplicates removed."""
        out: list[RunSpec] = []
        seen: set[str] = set()
        for model in self.grid.models:
            for ds in self.grid.datasets:
                dspec = self.datasets[ds]
                data_dir = str(dspec.directory(Path(sweep_dir))) if sweep_dir is not None else None
                for method in self.grid.methods:
                    for point in self._points(method):
                        spec = self._resolve(method, model, ds, dspec, data_dir, point, sweep_dir)
                        if spec.key not in seen:
                            seen.add(spec.key)
                            out.append(spec)
        return out

    def _points(self, method: str) -> list[dict[str, Any]]:
        """The grid points of one method: only the axes it uses."""
        g, m = self.grid, METHODS[method]
        axes: dict[str, tuple] = {"epochs": g.epochs}
        if m.uses_rank:
            axes["rank"] = g.ranks
        if m.uses_alpha:
            axes["alpha"] = g.alphas
        if m.private:
            axes["target_epsilon" if g.target_epsilons else "noise_multiplier"] = g.target_epsilons or g.noise_multipliers
        lrs = self.method.get(method, {}).get("lrs") or g.lrs
        if lrs:
            axes["lr"] = tuple(lrs)
        axes["seed"] = g.seeds
        points: list[dict[str, Any]] = [{}]
        for k, vals in axes.items():
            points = [{**p, k: v} for p in points for v in vals]
        return points

    def _resolve(self, method, model, ds, dspec, data_dir, point, sweep_dir) -> RunSpec:
        train = dict(self.train)
        train.update({k: v for k, v in self.method.get(method, {}).items() if k != "lrs"})
        if not METHODS[method].private:
            for k in _DP_ONLY_TRAIN_FIELDS:
                train.pop(k, None)
        if not METHODS[method].projection:
            train.pop("projection", None)
        cfg: dict[str, Any] = {"method": method, "model": model, "data": data_dir, **train, **point}
        cfg["extra"] = {**train.get("extra", {}), "dataset": ds}
        identity = dict(cfg)
        identity["data"] = {"dataset": ds, **dspec.identity()}
        if sweep_dir is not None:
            cfg["base_cache"] = str(Path(sweep_dir) / "base")
        parts = [method, model.rsplit("/", 1)[-1], ds]
        for k, tag in (("rank", "r"), ("alpha", "a"), ("noise_multiplier", "s"), ("target_epsilon", "eps"),
                       ("lr", "lr")):
            if k in point:
                parts.append(f"{tag}{_fmt_num(point[k])}")
        parts += [f"e{cfg['epochs']}", f"seed{cfg['seed']}"]
        return RunSpec(key=run_key(identity), name="_".join(parts), config=cfg, dataset=ds,
                       gpus=self.execution.gpus_per_run, cpus=self.execution.cpus_per_run)


def _grid_name(k: str) -> str:
    return {"rank": "ranks", "alpha": "alphas", "noise_multiplier": "noise_multipliers", "seed": "seeds",
            "target_epsilon": "target_epsilons", "method": "methods", "model": "models", "data": "datasets",
            "epochs": "epochs", "out_dir": "(the runner)", "base_cache": "(the runner)", "resume": "(--resume)",
            "overwrite": "(the runner)"}.get(k, k)


def _check_train(path: str, t: Mapping[str, Any]) -> None:
    """Range checks for the common FinetuneConfig fields; the rest is checked by FinetuneConfig."""
    positive = ("lr", "max_grad_norm")
    for k in positive:
        if k in t:
            check_real(f"{path}.{k}", t[k], lo=0.0, lo_open=True)
    if "delta" in t:
        check_real(f"{path}.delta", t["delta"], lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    for k in ("batch_size", "max_length"):
        if k in t:
            check_int(f"{path}.{k}", t[k], minimum=1)
    if "projection" in t:
        check_choice(f"{path}.projection", t["projection"], PROJECTIONS)
    if "epochs" in t:
        check_int(f"{path}.epochs", t["epochs"], minimum=1)


# ----------------------------------------------------------------------------------- loading


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


_MAX_CONFIG_BYTES = 1 << 20  # a sweep config is a few KB; 1 MiB bounds the work of parsing it
_MAX_CONFIG_DEPTH = 32  # tables/lists nested deeper than this are not a config
_MAX_CONFIG_NODES = 100_000  # values after expanding YAML aliases (a billion-laughs file has ~1e9)


def _read_file(path: Path) -> dict[str, Any]:
    """Parse a TOML or YAML config with bounded work: size, nesting depth and (YAML) alias expansion.

    Every failure is ``ValueError("<path>: <reason>")`` on one line.
    """
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise ValueError(f"config file {path} must end in .toml, .yaml or .yml")
    if not path.is_file():
        raise ValueError(f"{path}: config file does not exist or is not a regular file")
    size = path.stat().st_size
    if size > _MAX_CONFIG_BYTES:
        raise ValueError(f"{path}: config file is {size} bytes; at most {_MAX_CONFIG_BYTES} are accepted")
    raw = path.read_bytes()[:_MAX_CONFIG_BYTES + 1]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start + 1})") from None
    try:
        if suffix == ".toml":
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ValueError(f"{path}: invalid TOML: {exc}") from None
        else:
            data = _read_yaml(text, path)
    except RecursionError:
        raise ValueError(f"{path}: nested too deeply to parse (more than {_MAX_CONFIG_DEPTH} levels "
                         "are not accepted)") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must hold a mapping at top level")
    _check_depth(data, path)
    return data


def _check_depth(data: Any, path: Path) -> None:
    """``ValueError`` if tables/lists nest deeper than ``_MAX_CONFIG_DEPTH`` (checked without recursion)."""
    stack = [(data, 1)]
    while stack:
        obj, depth = stack.pop()
        if depth > _MAX_CONFIG_DEPTH:
            raise ValueError(f"{path}: tables or lists nested more than {_MAX_CONFIG_DEPTH} levels deep")
        if isinstance(obj, dict):
            stack.extend((v, depth + 1) for v in obj.values())
        elif isinstance(obj, list):
            stack.extend((v, depth + 1) for v in obj)


def _read_yaml(text: str, path: Path) -> Any:
    """``yaml.safe_load`` after checking the node graph: no recursive aliases, at most ``_MAX_CONFIG_NODES``
    values once aliases are expanded, at most ``_MAX_CONFIG_DEPTH`` levels."""
    try:
        import yaml
    except ImportError:
        raise ValueError(f"{path}: YAML configs need pyyaml (pip install pyyaml)") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()  # composing shares aliased nodes: linear in the text
        if node is None:
            return None
        _check_yaml_graph(node, path)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
    finally:
        loader.dispose()


def _check_yaml_graph(root: Any, path: Path) -> None:
    """Count the values of the YAML node graph with aliases expanded (memoised, iterative), and its depth."""
    import yaml

    def children(n: Any) -> list[Any]:
        if isinstance(n, yaml.MappingNode):
            return [x for kv in n.value for x in kv]
        if isinstance(n, yaml.SequenceNode):
            return list(n.value)
        return []

    size: dict[int, int] = {}
    height: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        n, done = stack.pop()
        key = id(n)
        if done:
            on_path.discard(key)
            kids = children(n)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            height[key] = 1 + max((height[id(k)] for k in kids), default=0)
            if size[key] > _MAX_CONFIG_NODES:
                raise ValueError(f"{path}: YAML expands to more than {_MAX_CONFIG_NODES} values (aliases "
                                 "repeated inside aliases, e.g. a 'billion laughs' file); not a config")
            if height[key] > _MAX_CONFIG_DEPTH + 1:
                raise ValueError(f"{path}: tables or lists nested more than {_MAX_CONFIG_DEPTH} levels deep")
            continue
        if key in size:
            continue
        if key in on_path:
            raise ValueError(f"{path}: YAML alias refers to a node that contains it (a recursive structure)")
        on_path.add(key)
        stack.append((n, True))
        stack.extend((k, False) for k in children(n) if id(k) not in size)


def merge_overrides(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: tables merge key by key; lists and scalars in ``over`` replace those in ``base``."""
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge_overrides(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _resolve_source(ref: str | os.PathLike, rel_to: Path | None) -> Path:
    s = str(ref)
    if s in available_presets():
        return PRESETS_DIR / f"{s}.toml"
    p = Path(os.path.expanduser(s))
    if not p.is_absolute() and rel_to is not None and not p.exists():
        p = rel_to / p
    if not p.is_file():
        raise ValueError(
            f"config {s!r} is neither a preset ({', '.join(available_presets())}) nor an existing file"
        )
    return p


def load_config_dict(ref: str | os.PathLike, *, _chain: tuple[str, ...] = (),
                     _rel_to: Path | None = None) -> tuple[dict[str, Any], Path]:
    """Read a preset or file and the chain of files it ``extends``; returns (merged dict, base dir)."""
    path = _resolve_source(ref, _rel_to)
    key = str(path.resolve())
    if key in _chain:
        raise ValueError(f"extends: cycle through {path}")
    data = _read_file(path)
    parent = data.pop("extends", None)
    if parent is not None:
        if not isinstance(parent, str):
            raise ValueError(f"{path}: extends must be a preset name or a path, got {parent!r}")
        base, _ = load_config_dict(parent, _chain=_chain + (key,), _rel_to=path.parent)
        data = merge_overrides(base, data)
    return data, path.parent


def load_config(ref: str | os.PathLike, *, overrides: Iterable[str | os.PathLike] = (),
                set_values: Mapping[str, Any] | None = None) -> SweepConfig:
    """Load a preset name or config file, apply override files in order, validate the result.

    ``set_values`` maps dotted paths to values (``{"grid.epochs": [2]}``) applied last.
    """
    data, base_dir = load_config_dict(ref)
    sources = [str(ref)]
    for o in overrides:
        od, odir = load_config_dict(o)
        data = merge_overrides(data, od)
        base_dir = odir
        sources.append(str(o))
    for dotted, val in (set_values or {}).items():
        cur = data
        parts = dotted.split(".")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
            if not isinstance(cur, dict):
                raise ValueError(f"--set {dotted}: {p} is not a table")
        cur[parts[-1]] = val
    return SweepConfig.from_dict(data, base_dir=base_dir, source=" + ".join(sources))
