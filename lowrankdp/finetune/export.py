"""Export a fine-tuned model as a plain Hugging Face causal-LM directory (``RUN_DIR/model/``).

``run`` calls :func:`export_params` at the end of a successful run (unless ``checkpoint="none"``);
:func:`export_model` does the same from a stored ``checkpoints/epoch_NNNN.pt`` (runs made before the
export existed, or another epoch of a ``checkpoint="all"`` run).

Both build the model exactly as the engine does — :func:`lowrankdp.finetune.engine.load_model` (base
model) then :func:`lowrankdp.finetune.methods.setup_model` (freezing, PEFT adapters, projections) — on
the CPU, copy the trained tensors in by name (a checkpoint's ``params``: every trainable and every LoRA
tensor; everything else is the untouched base weight), merge LoRA adapters into the base weights
(``merge_and_unload``) and ``save_pretrained`` model and tokenizer. Only tensors travel from the training
model to the exported one, so nothing of opacus (``GradSampleModule`` wrapper, hooks, ``grad_sample``
attributes) or PEFT reaches the folder: it loads with ``AutoModelForCausalLM.from_pretrained``.

The folder is written to a temporary directory beside it and renamed into place; it also holds
``lowrankdp_export.json`` (run, method, epoch, step, whether adapters were merged).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..results import ResultError, RunStatus, atomic_write_json, read_record, write_record
from .checkpoint import CKPT_DIR, latest_checkpoint, load_checkpoint
from .config import FinetuneConfig

__all__ = ["export_model", "export_params", "build_model", "MODEL_DIR", "EXPORT_INFO_FILE"]

MODEL_DIR = "model"
EXPORT_INFO_FILE = "lowrankdp_export.json"


def build_model(config: FinetuneConfig, params: Mapping[str, torch.Tensor], *,
                device: str | torch.device = "cpu") -> tuple[nn.Module, Any]:
    """``(model, tokenizer)``: the engine's model for ``config`` with ``params`` (checkpoint names) loaded.

    The model is the one training used (PEFT-wrapped for LoRA methods), not yet merged."""
    from .loading import DTYPES, load_model
    from .methods import setup_model

    device = torch.device(device)
    model, tok, _src = load_model(config.model, device=device, dtype=DTYPES[config.dtype])
    model = setup_model(model, config, generator_seed=config.seed).model
    named = dict(model.named_parameters())
    missing = sorted(set(params) - set(named))
    if missing:
        raise ValueError(f"the stored weights have parameter {missing[0]!r} (and {len(missing) - 1} more) that "
                         f"the {config.method} model built from {config.model!r} lacks")
    with torch.no_grad():
        for n, v in params.items():
            if named[n].shape != v.shape:
                raise ValueError(f"parameter {n!r}: stored shape {tuple(v.shape)} != model shape "
                                 f"{tuple(named[n].shape)}")
            named[n].copy_(v.to(named[n].device, named[n].dtype))
    model.eval()
    return model, tok


def plain_model(model: nn.Module) -> nn.Module:
    """Unwrap opacus (``GradSampleModule._module``) and merge PEFT LoRA adapters (``merge_and_unload``).

    Modifies a PEFT model in place (the adapters are folded into its base weights): pass a copy."""
    while hasattr(model, "_module") and isinstance(getattr(model, "_module"), nn.Module):
        model = model._module
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    return model


def _write_atomic_dir(target: Path, write) -> None:
    """``write(tmp_dir)`` then rename into ``target``: readers see the old folder or the new one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old = None
    try:
        write(tmp)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / "d")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def export_params(config: FinetuneConfig, params: Mapping[str, torch.Tensor], out: str | os.PathLike, *,
                  info: dict[str, Any] | None = None) -> Path:
    """Build the model of ``config`` with ``params``, merge adapters, save it (and the tokenizer) to ``out``."""
    out = Path(out)
    model, tok = build_model(config, params, device="cpu")
    merged = config.uses_lora
    model = plain_model(model)
    for p in model.parameters():
        p.requires_grad_(False)
    meta = {"format": "lowrankdp-finetune-export-v1", "method": config.method, "base_model": config.model,
            "merged_lora_adapters": merged, "dtype": config.dtype,
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(info or {})}

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        atomic_write_json(tmp / EXPORT_INFO_FILE, meta)

    _write_atomic_dir(out, write)
    return out


def _read_config(run_dir: Path) -> FinetuneConfig:
    try:
        record = read_record(run_dir)
    except ResultError as exc:
        raise ValueError(f"run_dir must be a lowrankdp fine-tuning run directory, got {str(run_dir)!r} ({exc})") from None
    cfg = {k: v for k, v in record.config.items() if k != "calibrated_noise_multiplier"}
    try:
        return FinetuneConfig.from_dict(cfg)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"run_dir must be a lowrankdp fine-tuning run directory, got {str(run_dir)!r} "
                         f"(its result.json config is not a FinetuneConfig: {exc})") from exc


def export_model(run_dir: str | os.PathLike, *, checkpoint: str | int = "last",
                 out: str | os.PathLike | None = None) -> Path:
    """Write the Hugging Face folder of a run from its stored checkpoint; returns its path.

    Parameters
    ----------
    run_dir : a ``lowrankdp.finetune.run`` output directory with ``checkpoints/epoch_NNNN.pt``.
    checkpoint : ``"last"`` (the highest epoch stored) or an epoch number (``checkpoint="all"`` runs
        keep every epoch).
    out : target folder. Default ``RUN_DIR/model`` for the last checkpoint (then ``result.json`` of a
        successful run gets ``"model_dir": "model"``, so ``load_base(RUN_DIR)`` works), else
        ``RUN_DIR/model_epoch_NNNN``.

    The base model is loaded from the ``model`` field of the run's ``result.json`` config (a relative path is read
    relative to the current directory, as in the run). Raises ``ValueError`` when there is no such
    checkpoint.
    """
    run_dir = Path(run_dir)
    config = _read_config(run_dir)
    latest = latest_checkpoint(run_dir)
    if latest is None:
        raise ValueError(f"run {str(run_dir)!r} has no checkpoint in {CKPT_DIR}/ (the run used checkpoint='none' "
                         "or stopped before its first epoch ended): nothing to export")
    if checkpoint == "last":
        epoch, path = latest
    elif isinstance(checkpoint, int) and not isinstance(checkpoint, bool) and checkpoint >= 1:
        epoch, path = checkpoint, run_dir / CKPT_DIR / f"epoch_{checkpoint:04d}.pt"
        if not path.is_file():
            have = sorted(p.name for p in (run_dir / CKPT_DIR).glob("epoch_*.pt"))
            raise ValueError(f"checkpoint must name a stored epoch, got {checkpoint} but {run_dir / CKPT_DIR} "
                             f"holds {', '.join(have)}")
    else:
        raise ValueError(f"checkpoint must be 'last' or an epoch number >= 1, got {checkpoint!r}")
    state = load_checkpoint(path)
    default = epoch == latest[0]
    if out is None:
        out = run_dir / (MODEL_DIR if default else f"{MODEL_DIR}_epoch_{epoch:04d}")
    out = Path(out)
    info = {"run_dir": str(run_dir), "epoch": int(state.get("epoch", epoch)), "steps": state.get("steps"),
            "source": f"{CKPT_DIR}/{path.name}"}
    export_params(config, state["params"], out, info=info)
    if default and out.resolve() == (run_dir / MODEL_DIR).resolve():
        record = read_record(run_dir)
        if record.status == RunStatus.OK and record.model_dir != MODEL_DIR:
            write_record(run_dir, dataclasses.replace(record, model_dir=MODEL_DIR))
    return out
