"""Typed, validated sweep configurations (peft method-comparison style: one typed config per
experiment family, small override files on top of a preset).

A sweep is a grid ``methods × models × datasets × ranks × alphas × noise_multipliers × seeds × epochs``.
Axes a method does not use are collapsed for that method (FFT ignores rank, α and σ; LoRA ignores σ;
DP-SGD ignores rank and α; compressed DP-SGD ignores α), so the grid never contains two runs that
would train the same thing.

Config files are TOML (``tomllib``) or YAML (``pyyaml`` where installed) with these tables::

    name = "smoke"
    extends = "smoke"          # optional: a preset name or a path (relative to this file)
    [grid]       methods, models, datasets, ranks, alphas, noise_multipliers, seeds, epochs
    [train]      FinetuneConfig fields shared by every run (lr, batch_size, max_grad_norm, delta, ...)
    [method.<m>] per-method overrides of [train] (e.g. [method.fft] lr = 2.5e-4)
    [datasets.<name>]  generate = "customersim"|"synbio", seed, sizes, canary_repeats  -- or -- path = DIR
    [execution]  gpus_per_run, cpus_per_run, timeout_s, jobs, runner
    [report]     projection_ranks, accountant

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

__all__ = [
    "METHODS",
    "LORA_METHODS",
    "DP_METHODS",
    "RANK_METHODS",
    "DatasetSpec",
    "GridSpec",
    "ExecutionSpec",
    "ReportSpec",
    "SweepConfig",
    "RunSpec",
    "PRESETS_DIR",
    "available_presets",
    "load_config",
    "load_config_dict",
    "merge_overrides",
    "run_key",
    "model_width",
]

METHODS: tuple[str, ...] = ("fft", "lora", "lora-fa", "dp-sgd", "dp-lora", "compressed-dp-sgd")
LORA_METHODS = frozenset({"lora", "lora-fa", "dp-lora"})  # use rank and alpha
RANK_METHODS = frozenset({"lora", "lora-fa", "dp-lora", "compressed-dp-sgd"})  # use rank
DP_METHODS = frozenset({"dp-sgd", "dp-lora", "compressed-dp-sgd"})  # use noise, clipping, delta
DATA_KINDS: tuple[str, ...] = ("customersim", "synbio")
PROJECTIONS: tuple[str, ...] = ("fresh", "fixed")
# FinetuneConfig fields that only DP methods use; dropped from non-private runs so they do not
# change the run key of a run they cannot influence.
_DP_ONLY_TRAIN_FIELDS = frozenset({"max_grad_norm", "projection", "clip_unit", "accountant", "grad_sample_mode"})
# Fields the sweep sets itself; a [train] table may not set them.
_RESERVED_TRAIN_FIELDS = frozenset(
    {"method", "model", "data", "rank", "alpha", "noise_multiplier", "seed", "epochs", "out_dir"}
)

PRESETS_DIR = Path(__file__).resolve().parent / "presets"

# Width (hidden size) of the narrowest adapted layer, for "rank larger than the layer" checks
# before any model is built. GPT-NeoX attention and MLP matrices are hidden×{1,3,4}·hidden, so
# a rank above the hidden size cannot be realised. Shapes from replication.md §4.
_KNOWN_WIDTHS: dict[str, int] = {
    "pythia-70m": 512,
    "pythia-160m": 768,
    "pythia-410m": 1024,
    "pythia-1b": 2048,
    "pythia-1.4b": 2048,
    "pythia-2.8b": 2560,
}


def model_width(model: str) -> int | None:
    """Hidden size of ``model`` if it can be known without building it, else None.

    Knows the embedded ``"tiny"`` model (from ``lowrankdp.models`` metadata when that module
    exposes it without torch), the ``pythia-*-shape`` presets, public Pythia hub ids, and local
    checkpoints (``config.json``: ``hidden_size`` / ``n_embd`` / ``d_model``).
    """
    name = model.rsplit("/", 1)[-1].lower()
    if name.endswith("-shape"):
        name = name[: -len("-shape")]
    if name.endswith("-deduped"):
        name = name[: -len("-deduped")]
    if name in _KNOWN_WIDTHS:
        return _KNOWN_WIDTHS[name]
    if model == "tiny":
        return _tiny_width()
    cfg = Path(model) / "config.json"
    if cfg.is_file():
        try:
            data = json.loads(cfg.read_text())
        except (OSError, ValueError):
            return None
        for k in ("hidden_size", "n_embd", "d_model"):
            if isinstance(data.get(k), int):
                return int(data[k])
    return None


def _tiny_width() -> int | None:
    """Hidden size of the embedded tiny model, read without importing torch.

    ``lowrankdp.models`` is torch layer, so it is not imported here: the default of
    ``TinyRecipe.hidden_size`` is read from the source of ``lowrankdp/models/tiny.py`` (AST).
    """
    import ast
    import importlib.util

    try:
        spec = importlib.util.find_spec("lowrankdp.models")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        src = Path(loc) / "tiny.py"
        try:
            tree = ast.parse(src.read_text())
        except (OSError, SyntaxError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == "TinyRecipe":
                for st in node.body:
                    if (isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)
                            and st.target.id == "hidden_size" and isinstance(st.value, ast.Constant)
                            and isinstance(st.value.value, int)):
                        return int(st.value.value)
    return None


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

    def directory(self, sweep_dir: Path) -> Path:
        """Where the runs read this dataset from."""
        if self.path is not None:
            return Path(self.path)
        return Path(sweep_dir) / "data" / self.name

    def identity(self) -> dict[str, Any]:
        """What determines the dataset's content (hashed into run keys instead of a path)."""
        if self.path is not None:
            return {"path": self.path}
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
        seeds = tuple(
            check_int(f"grid.seeds[{i}]", s, minimum=0)
            for i, s in enumerate(_as_list("grid.seeds", d.get("seeds", [0])))
        )
        epochs = tuple(
            check_int(f"grid.epochs[{i}]", e, minimum=1)
            for i, e in enumerate(_as_list("grid.epochs", d.get("epochs", [3])))
        )
        for name, vals in (("methods", methods), ("models", models), ("datasets", dsets), ("ranks", ranks),
                           ("alphas", alphas), ("noise_multipliers", sigmas), ("seeds", seeds),
                           ("epochs", epochs)):
            if len(set(vals)) != len(vals):
                raise ValueError(f"grid.{name} has duplicate entries: {list(vals)}")
        return cls(methods, tuple(models), tuple(dsets), ranks, alphas, sigmas, seeds, epochs)


def _method(path: str, m: Any) -> str:
    if not isinstance(m, str) or m not in METHODS:
        raise ValueError(f"{path}: unknown method {m!r}; must be one of {', '.join(METHODS)}")
    return m


@dataclass(frozen=True)
class ExecutionSpec:
    gpus_per_run: float = 0.0
    cpus_per_run: float = 1.0
    timeout_s: float | None = None  # per run; None = no limit
    jobs: int = 1  # local executor: runs in parallel (each in its own process)
    runner: str | None = None  # "module:function"; None = lowrankdp.finetune.run
    threads_per_run: int | None = None  # OMP/torch threads in each worker

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ExecutionSpec":
        d = _table("execution", d)
        _check_keys("execution", d, cls.__dataclass_fields__)
        timeout = d.get("timeout_s")
        runner = d.get("runner")
        if runner is not None and (not isinstance(runner, str) or ":" not in runner):
            raise ValueError(f"execution.runner must be 'module:function', got {runner!r}")
        threads = d.get("threads_per_run")
        return cls(
            gpus_per_run=check_real("execution.gpus_per_run", d.get("gpus_per_run", 0.0), lo=0.0),
            cpus_per_run=check_real("execution.cpus_per_run", d.get("cpus_per_run", 1.0), lo=0.0, lo_open=True),
            timeout_s=None if timeout is None else check_real("execution.timeout_s", timeout, lo=0.0, lo_open=True),
            jobs=check_int("execution.jobs", d.get("jobs", 1), minimum=1),
            runner=runner,
            threads_per_run=None if threads is None else check_int("execution.threads_per_run", threads, minimum=1),
        )


@dataclass(frozen=True)
class ReportSpec:
    projection_ranks: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)
    accountant: str = "rdp"
    attack: str = "loss"  # which stored membership attack the ROC figure shows

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ReportSpec":
        d = _table("report", d)
        _check_keys("report", d, cls.__dataclass_fields__)
        ranks = tuple(
            check_int(f"report.projection_ranks[{i}]", r, minimum=1)
            for i, r in enumerate(_as_list("report.projection_ranks", d.get("projection_ranks", list(cls.projection_ranks))))
        )
        acc = d.get("accountant", "rdp")
        if not isinstance(acc, str):
            raise ValueError(f"report.accountant must be a string, got {acc!r}")
        att = check_choice("report.attack", d.get("attack", "loss"), ("loss", "zlib", "min_k", "reference"))
        return cls(projection_ranks=ranks, accountant=acc, attack=att)


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
        if not isinstance(name, str) or not name or any(c in name for c in "/\\"):
            raise ValueError(f"name must be a non-empty string without slashes, got {name!r}")
        grid = GridSpec.from_dict(d.get("grid"))
        dtab = _table("datasets", d.get("datasets"))
        datasets = {k: DatasetSpec.from_dict(k, v, base_dir=base_dir) for k, v in dtab.items()}
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
    def validate(self, *, check_data: bool = True) -> None:
        """Checks that need the outside world (data directories, model shapes); run before training."""
        if check_data:
            for name in self.grid.datasets:
                self.datasets[name].check_exists()
        uses_rank = any(m in RANK_METHODS for m in self.grid.methods)
        if uses_rank:
            for model in self.grid.models:
                width = model_width(model)
                if width is None:
                    continue
                for i, r in enumerate(self.grid.ranks):
                    if r > width:
                        raise ValueError(
                            f"grid.ranks[{i}] = {r} is larger than the layer width {width} of model {model!r}"
                        )

    # ------------------------------------------------------------------ expansion
    def runs(self, sweep_dir: str | os.PathLike | None = None) -> list[RunSpec]:
        """The grid, expanded, with axes each method ignores collapsed and duplicates removed."""
        g = self.grid
        out: list[RunSpec] = []
        seen: set[str] = set()
        for model in g.models:
            for ds in g.datasets:
                dspec = self.datasets[ds]
                data_dir = str(dspec.directory(Path(sweep_dir))) if sweep_dir is not None else None
                for method in g.methods:
                    ranks = g.ranks if method in RANK_METHODS else (None,)
                    alphas = g.alphas if method in LORA_METHODS else (None,)
                    sigmas = g.noise_multipliers if method in DP_METHODS else (None,)
                    for epochs in g.epochs:
                        for r in ranks:
                            for a in alphas:
                                for s in sigmas:
                                    for seed in g.seeds:
                                        spec = self._resolve(method, model, ds, dspec, data_dir, r, a, s,
                                                             seed, epochs)
                                        if spec.key not in seen:
                                            seen.add(spec.key)
                                            out.append(spec)
        return out

    def _resolve(self, method, model, ds, dspec, data_dir, r, a, s, seed, epochs) -> RunSpec:
        cfg: dict[str, Any] = {"method": method, "model": model, "data": data_dir, "epochs": epochs,
                               "seed": seed}
        train = dict(self.train)
        train.update(self.method.get(method, {}))
        if "epochs" in self.method.get(method, {}):
            cfg["epochs"] = train.pop("epochs")
        if method not in DP_METHODS:
            for k in _DP_ONLY_TRAIN_FIELDS:
                train.pop(k, None)
        if method != "compressed-dp-sgd":
            train.pop("projection", None)
        cfg.update(train)
        if r is not None:
            cfg["rank"] = r
        if a is not None:
            cfg["alpha"] = a
        if s is not None:
            cfg["noise_multiplier"] = s
        identity = dict(cfg)
        identity["data"] = {"dataset": ds, **dspec.identity()}
        key = run_key(identity)
        parts = [method, model.rsplit("/", 1)[-1], ds]
        if r is not None:
            parts.append(f"r{r}")
        if a is not None:
            parts.append(f"a{_fmt_num(a)}")
        if s is not None:
            parts.append(f"s{_fmt_num(s)}")
        parts += [f"e{cfg['epochs']}", f"seed{seed}"]
        name = "_".join(parts)
        return RunSpec(key=key, name=name, config=cfg, dataset=ds, gpus=self.execution.gpus_per_run,
                       cpus=self.execution.cpus_per_run)


def _grid_name(k: str) -> str:
    return {"rank": "ranks", "alpha": "alphas", "noise_multiplier": "noise_multipliers", "seed": "seeds",
            "method": "methods", "model": "models", "data": "datasets", "epochs": "epochs",
            "out_dir": "(the runner)"}.get(k, k)


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
