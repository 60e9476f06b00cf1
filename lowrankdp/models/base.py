"""``load_base``: the one entry point for base models (docs/architecture.md, "Models").

- ``"tiny"`` — the embedded default (:mod:`lowrankdp.models.tiny`), built once and cached.
- ``"pythia-70m-shape"`` … ``"pythia-1b-shape"`` — random-weight GPT-NeoX models at the public
  Pythia shapes (:mod:`lowrankdp.models.presets`), built on each call (not cached), with the
  embedded byte-level tokenizer (see below).
- a ``lowrankdp finetune`` run directory (``summary.json`` plus the run's ``config.json``, which has
  ``method``, ``data`` and ``out_dir`` fields) — the exported model ``RUN_DIR/model/`` of a successful
  run (:func:`resolve_run_dir`); a failed run or one without an exported model is a ``ValueError``.
- anything else — a local directory or a Hugging Face hub id, through
  ``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained`` (``HF_HUB_OFFLINE=1``
  is honoured by transformers: only already-downloaded models load).

Preset tokenizer: the presets keep the true Pythia vocabulary of 50,304 rows (so the embedding
and LM-head cost is the real one) but are paired with the embedded tiny tokenizer (about 1.7k
tokens; ids 0 and 1 are ``<|endoftext|>`` and ``<|padding|>`` as in Pythia), so the rows above
the tokenizer's size are never indexed. A given text therefore becomes more tokens than with the
real GPT-NeoX tokenizer; efficiency runs fix the sequence length, so this does not change step
cost at a given length. No download is needed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .presets import PRESETS, preset_config
from .recipe import DEFAULT_RECIPE, TinyRecipe
from .tiny import build_tiny, check_cached_model, corrupt_message

__all__ = ["load_base", "load_tiny_tokenizer", "describe_base", "resolve_run_dir", "BUILTIN_NAMES"]


BUILTIN_NAMES = ("tiny", *PRESETS)


def _dtype(dtype):
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    table = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
             "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype not in table:
        raise ValueError(f"dtype must be one of {', '.join(map(repr, table))} or a torch.dtype, got {dtype!r}")
    return table[dtype]


def load_tiny_tokenizer(*, cache_dir=None, recipe: TinyRecipe = DEFAULT_RECIPE):
    """The embedded tokenizer alone (builds the tiny model first if it is not cached)."""
    from transformers import AutoTokenizer

    path = build_tiny(recipe, cache_dir=cache_dir)
    check_cached_model(path)
    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # any failure to parse a cached file means the cache entry is corrupt
        raise ValueError(corrupt_message(path, _first_line(exc))) from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _load_tiny(*, cache_dir, device, dtype):
    from transformers import AutoTokenizer, GPTNeoXForCausalLM

    path = build_tiny(cache_dir=cache_dir)
    check_cached_model(path)
    try:
        model = GPTNeoXForCausalLM.from_pretrained(path, **({} if dtype is None else {"dtype": dtype}))
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # truncated safetensors, bad JSON, ...: the cache entry is corrupt
        raise ValueError(corrupt_message(path, _first_line(exc))) from exc
    if device is not None:
        model = model.to(device)
    model.eval()
    return model, tokenizer


def _load_preset(name: str, *, cache_dir, device, dtype, seed: int):
    import torch
    from transformers import GPTNeoXForCausalLM

    tokenizer = load_tiny_tokenizer(cache_dir=cache_dir)
    tokenizer.model_max_length = 2048
    config = preset_config(name, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                           pad_token_id=tokenizer.pad_token_id)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        with dev:
            model = GPTNeoXForCausalLM(config)
    if dtype is not None:
        model = model.to(dtype)
    model.eval()
    return model, tokenizer


def _from_pretrained(name: str, *, device, dtype):
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = Path(name).expanduser()
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name
    if looks_local and not local.exists():
        raise ValueError(f"cannot load model {name!r}: no such directory")
    kwargs: dict[str, Any] = {}
    if dtype is not None:
        major = int(transformers.__version__.split(".")[0])
        kwargs["dtype" if major >= 5 else "torch_dtype"] = dtype
    src = str(local) if local.exists() else name
    try:
        tokenizer = AutoTokenizer.from_pretrained(src)
        model = AutoModelForCausalLM.from_pretrained(src, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        if local.exists():
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"cannot load model from {name!r}: {first}") from exc
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("", "0", "false", "no")
        reason = ("it is not in the local Hugging Face cache and HF_HUB_OFFLINE is set" if offline
                  else "it could not be fetched from the Hugging Face hub")
        raise ValueError(f"cannot load model {name!r}: not one of {', '.join(BUILTIN_NAMES)}, "
                         f"not a local directory, and {reason}") from exc
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # Pythia/Llama tokenizers have no pad token
    if device is not None:
        model = model.to(device)
    model.eval()
    return model, tokenizer


def resolve_run_dir(path: str | os.PathLike) -> Path | None:
    """The exported model folder of a fine-tuning run directory; ``None`` if ``path`` is not a run directory.

    A run directory holds a ``result.json`` (:mod:`lowrankdp.results`). Raises ``ValueError`` when it is one but
    has no loadable model: the result is unreadable or unfinished (the run is still going or was killed), the run
    failed, or it has no exported model folder (``checkpoint="none"``, or a failed export)."""
    from ..results import RESULT_FILE, ResultError, RunStatus, read_record

    run = Path(path).expanduser()
    if not (run / RESULT_FILE).is_file():
        return None
    try:
        rec = read_record(run)
    except ResultError as exc:
        raise ValueError(f"cannot load model from fine-tuning run {os.fspath(path)!r}: {exc}") from None
    where = f"fine-tuning run {os.fspath(path)!r} ({rec.method})"
    if not rec.finished:
        raise ValueError(f"cannot load model from {where}: the run has not finished (still going, or killed)")
    if rec.status != RunStatus.OK:
        raise ValueError(f"cannot load model from {where}: the run failed "
                         f"({rec.reason or 'no reason recorded'}); there is no final model")
    if not rec.model_dir or not (run / rec.model_dir / "config.json").is_file():
        raise ValueError(f"cannot load model from {where}: it has no exported model folder (checkpoint='none', "
                         "or a failed export). Export it from its last checkpoint with "
                         f"lowrankdp.finetune.export_model({os.fspath(path)!r})")
    return run / rec.model_dir


def load_base(name_or_path: str | os.PathLike = "tiny", *, cache_dir=None, device=None, dtype=None,
              seed: int = 0):
    """Return ``(model, tokenizer)`` for a base model name or path (module docstring).

    Parameters
    ----------
    name_or_path : ``"tiny"``, a preset name, a fine-tuning run directory (loads ``RUN_DIR/model``), a
        local model directory or a hub id.
    cache_dir : lowrankdp cache for the embedded model/tokenizer (default ``$LOWRANKDP_CACHE`` or
        ``~/.cache/lowrankdp``). Hub models use the Hugging Face cache as usual.
    device, dtype : where and in which precision to put the model (default CPU, float32);
        ``dtype`` accepts ``torch.dtype`` or ``"bf16"``/``"fp16"``/``"fp32"``.
    seed : random initialisation of the presets (ignored otherwise).

    The model is returned in eval mode, freshly loaded (callers may modify it). Unknown names
    raise ``ValueError`` naming the built-in choices.
    """
    if not isinstance(name_or_path, (str, os.PathLike)) or not os.fspath(name_or_path):
        raise ValueError(f"name_or_path must be a non-empty string or path, got {name_or_path!r}")
    name = os.fspath(name_or_path)
    dtype = _dtype(dtype)
    if name == "tiny":
        return _load_tiny(cache_dir=cache_dir, device=device, dtype=dtype)
    if name in PRESETS:
        return _load_preset(name, cache_dir=cache_dir, device=device, dtype=dtype, seed=seed)
    exported = resolve_run_dir(name)
    if exported is not None:
        return _from_pretrained(str(exported.resolve()), device=device, dtype=dtype)
    return _from_pretrained(name, device=device, dtype=dtype)


def describe_base(name_or_path: str | os.PathLike = "tiny", *, cache_dir=None) -> dict[str, Any]:
    """Metadata without loading weights where possible (used by ``lowrankdp model info``)."""
    from .presets import parameter_count
    from .recipe import tiny_path
    from .tiny import read_metadata

    name = os.fspath(name_or_path)
    if name == "tiny":
        path = tiny_path(cache_dir=cache_dir)
        meta = read_metadata(path)
        return {"name": "tiny", "path": str(path), "built": meta is not None, **(meta or {})}
    if name in PRESETS:
        cfg = preset_config(name)
        s = PRESETS[name]
        return {"name": name, "kind": "random-weight Pythia shape", "layers": s.layers, "hidden": s.hidden,
                "heads": s.heads, "intermediate": s.intermediate, "vocab_size": cfg.vocab_size,
                "rotary_pct": 0.25, "parameters": parameter_count(cfg), "nominal": s.nominal}
    local = Path(name).expanduser()
    exported = resolve_run_dir(local)
    if exported is not None:
        info = describe_base(str(exported.resolve()), cache_dir=cache_dir)
        return {**info, "name": name, "run_dir": str(local.resolve())}
    if local.is_dir():
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(local)
        info: dict[str, Any] = {"name": name, "path": str(local.resolve()), "model_type": cfg.model_type}
        meta = read_metadata(local)
        if meta is not None:
            info["lowrankdp_metadata"] = meta
        try:
            info["parameters"] = parameter_count(cfg) if cfg.model_type == "gpt_neox" else None
        except AttributeError:
            info["parameters"] = None
        return info
    model, _ = load_base(name)
    return {"name": name, "model_type": model.config.model_type,
            "parameters": sum(p.numel() for p in model.parameters())}
