"""A base model for the GPU-scale replication: a Pythia-shaped body pretrained on the toolkit's corpus.

Minimal pretraining loop used by ``lowrankdp gpu-check`` (stage "replication"), standing in until
``lowrankdp.models`` offers one of its own. The model is a GPT-NeoX with the layers, width and heads of a
Pythia preset (:data:`lowrankdp.models.PRESETS`, e.g. ``pythia-70m-shape``: 6 layers, 512 wide, 8 heads) and
the vocabulary of the embedded byte-level tokenizer (rounded up to a multiple of 128), so no row of the
embedding or output head is dead weight. It trains on the neutral generated corpus of
:mod:`lowrankdp.models.corpus` (never the fine-tuning records) with AdamW, a linear warm-up and a cosine
decay, in bf16 autocast on CUDA (fp32 weights), for a wall-time budget: the first steps are timed and the
schedule is set for as many steps as fit, capped by ``max_steps``.

The saved folder (``save_pretrained`` model + tokenizer + ``gpu_check_base.json`` with the recipe, step
count, losses and timings) loads with ``lowrankdp.models.load_base(PATH)``.

    python -m lowrankdp.gpu_check.pretrain --shape pythia-70m-shape --seconds 70 --device cuda --out DIR

Core layer at import: torch is imported inside the functions.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._validate import check_int, check_real

__all__ = ["BaseRecipe", "pretrain_base", "main", "METADATA_FILE"]

METADATA_FILE = "gpu_check_base.json"


@dataclass(frozen=True)
class BaseRecipe:
    """Everything that determines the pretrained base besides the device's speed (which sets the step count)."""

    shape: str = "pythia-70m-shape"
    layers: int | None = None  # None -> the preset's; set to shrink the body (the CPU rehearsal)
    hidden: int | None = None
    heads: int | None = None
    corpus_docs: int = 60_000
    heldout_docs: int = 300
    corpus_seed: int = 0
    block_size: int = 256
    batch_size: int = 64
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.01
    seconds: float = 70.0  # training-loop wall-time budget
    max_steps: int = 20_000
    calibration_steps: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        from lowrankdp.models.presets import PRESETS

        if self.shape not in PRESETS:
            raise ValueError(f"shape must be one of {', '.join(PRESETS)}, got {self.shape!r}")
        for name in ("layers", "hidden", "heads"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), minimum=1)
        for name in ("corpus_docs", "heldout_docs", "block_size", "batch_size", "max_steps", "calibration_steps"):
            check_int(name, getattr(self, name), minimum=1)
        check_int("warmup_steps", self.warmup_steps, minimum=0)
        check_int("corpus_seed", self.corpus_seed, minimum=0)
        check_int("seed", self.seed, minimum=0)
        check_real("lr", self.lr, lo=0.0, lo_open=True)
        check_real("min_lr_ratio", self.min_lr_ratio, lo=0.0, hi=1.0)
        check_real("weight_decay", self.weight_decay, lo=0.0)
        check_real("seconds", self.seconds, lo=0.0, lo_open=True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _lr_at(step: int, total: int, r: BaseRecipe) -> float:
    if step < r.warmup_steps:
        return r.lr * (step + 1) / r.warmup_steps
    frac = min(1.0, (step - r.warmup_steps) / max(1, total - r.warmup_steps))
    return r.lr * (r.min_lr_ratio + (1 - r.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def _config(recipe: BaseRecipe, tokenizer):
    from lowrankdp.models import PRESETS, preset_config

    cfg = preset_config(recipe.shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    shape = PRESETS[recipe.shape]
    hidden = recipe.hidden or shape.hidden
    cfg.vocab_size = -(-len(tokenizer) // 128) * 128
    cfg.hidden_size = hidden
    cfg.intermediate_size = 4 * hidden
    cfg.num_hidden_layers = recipe.layers or shape.layers
    cfg.num_attention_heads = recipe.heads or shape.heads
    if hidden % cfg.num_attention_heads:
        raise ValueError(f"hidden must be divisible by heads, got hidden={hidden}, heads={cfg.num_attention_heads}")
    return cfg


def _heldout_loss(model, data, *, block: int, batch: int, device, autocast) -> float:
    import torch

    model.eval()
    n = (len(data) - 1) // block
    total, count = 0.0, 0
    with torch.no_grad(), autocast():
        for s in range(0, n, batch):
            idx = torch.arange(s, min(n, s + batch)) * block
            x = torch.stack([data[i:i + block] for i in idx.tolist()]).to(device)
            loss = model(input_ids=x, labels=x).loss
            total += float(loss) * x.shape[0]
            count += x.shape[0]
    model.train()
    return total / max(count, 1)


def pretrain_base(recipe: BaseRecipe, *, out_dir: str | Path, device: str = "cuda", log=print) -> dict[str, Any]:
    """Pretrain the base of ``recipe`` on ``device`` and save it to ``out_dir``; returns its metadata."""
    import contextlib

    import torch
    from transformers import GPTNeoXForCausalLM

    from lowrankdp.models import load_tiny_tokenizer, token_stream
    from lowrankdp.models.corpus import make_corpus

    t0 = time.perf_counter()
    dev = torch.device(device)
    out = Path(out_dir)
    tokenizer = load_tiny_tokenizer()
    tokenizer.model_max_length = max(recipe.block_size, 2048)
    corpus = make_corpus(seed=recipe.corpus_seed, n_train_docs=recipe.corpus_docs,
                         n_heldout_docs=recipe.heldout_docs)
    train = torch.tensor(token_stream(tokenizer, corpus.train), dtype=torch.long)
    heldout = torch.tensor(token_stream(tokenizer, corpus.heldout), dtype=torch.long)
    t_data = time.perf_counter() - t0
    cfg = _config(recipe, tokenizer)
    torch.manual_seed(recipe.seed)
    with dev:
        model = GPTNeoXForCausalLM(cfg)
    model.train()
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=recipe.lr, betas=(0.9, 0.95),
                            **({"fused": True} if dev.type == "cuda" else {}))
    if dev.type == "cuda":
        def autocast():
            return torch.autocast("cuda", dtype=torch.bfloat16)
    else:
        autocast = contextlib.nullcontext
    gen = torch.Generator().manual_seed(recipe.seed)
    T, B = recipe.block_size, recipe.batch_size
    n_windows = len(train) - T - 1
    if n_windows < 1:
        raise ValueError(f"corpus_docs={recipe.corpus_docs} gives {len(train)} tokens, fewer than block_size={T}")
    total = recipe.max_steps  # until calibrated: the warm-up does not depend on it
    cal_a, cal_b = recipe.calibration_steps, 3 * recipe.calibration_steps
    t_cal = None
    losses: list[float] = []
    t_train = time.perf_counter()
    step = 0
    while step < total:
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, total, recipe)
        starts = torch.randint(0, n_windows, (B,), generator=gen)
        x = torch.stack([train[s:s + T] for s in starts.tolist()]).to(dev, non_blocking=True)
        with autocast():
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        if step in (cal_a, cal_b) or step % 200 == 0 or step == total:
            value = float(loss.detach())  # synchronises
            if not math.isfinite(value):
                raise FloatingPointError(f"pretraining loss is {value} at step {step}")
            losses.append(value)
            elapsed = time.perf_counter() - t_train
            if step == cal_a:  # the first steps pay for warm-up: time the next ones
                t_cal = time.perf_counter()
            elif step == cal_b and t_cal is not None:
                per_step = (time.perf_counter() - t_cal) / (cal_b - cal_a)
                total = max(step, min(recipe.max_steps, step + int((recipe.seconds - elapsed) / per_step)))
                log(f"pretrain: {per_step * 1e3:.1f} ms/step -> {total} steps in {recipe.seconds:g} s")
            else:
                log(f"pretrain: step {step}/{total} loss {value:.3f} ({elapsed:.0f} s)")
            if elapsed > 1.5 * recipe.seconds:  # the device slowed down: stop rather than overrun the stage
                log(f"pretrain: stopping at step {step}: {elapsed:.0f} s > 1.5 x the budget")
                break
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds_train = time.perf_counter() - t_train
    final = float(loss.detach())
    held = _heldout_loss(model, heldout, block=T, batch=B, device=dev, autocast=autocast)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    meta = {
        "name": (f"{recipe.shape} body pretrained by lowrankdp gpu-check"
                 if recipe.layers is None and recipe.hidden is None and recipe.heads is None else
                 f"{cfg.num_hidden_layers}-layer, {cfg.hidden_size}-wide GPT-NeoX (reduced from {recipe.shape}) "
                 "pretrained by lowrankdp gpu-check"),
        "recipe": recipe.to_dict(),
        "architecture": {"layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size,
                         "heads": cfg.num_attention_heads, "vocab_size": cfg.vocab_size, "parameters": n_params},
        "device": str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""),
        "precision": "bf16 autocast, fp32 weights" if dev.type == "cuda" else "fp32",
        "steps": step,
        "tokens_seen": step * B * T,
        "corpus_tokens": {"train": int(len(train)), "heldout": int(len(heldout))},
        "epochs_over_corpus": step * B * T / max(1, len(train)),
        "train_loss_final": final,
        "train_loss_log": losses,
        "heldout_loss": held,
        "seconds": {"data": round(t_data, 2), "train": round(seconds_train, 2),
                    "total": round(time.perf_counter() - t0, 2)},
        "tokens_per_s": step * B * T / seconds_train if seconds_train > 0 else None,
    }
    (out / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lowrankdp.gpu_check.pretrain", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--recipe", default="{}", help="JSON object of BaseRecipe fields")
    args = ap.parse_args(argv)
    try:
        recipe = BaseRecipe(**json.loads(args.recipe))
    except (TypeError, ValueError) as exc:
        print(f"pretrain: error: {exc}", file=sys.stderr)
        return 2
    meta = pretrain_base(recipe, out_dir=args.out, device=args.device,
                         log=lambda s: print(s, file=sys.stderr, flush=True))
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
