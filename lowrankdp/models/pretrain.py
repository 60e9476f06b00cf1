"""Pretraining on the toolkit's generated corpus: the loop of the tiny model, and bases of any preset shape.

- :func:`train_causal_lm` — AdamW (β = (0.9, 0.95), weight decay on matrices only), linear warm-up then cosine
  decay to ``min_lr_ratio·lr``, gradient clipping at norm 1, random windows of ``block_size`` tokens of one
  token stream. Stops after ``steps`` steps or ``seconds`` seconds of training, whichever is given. The tiny
  model's build (:mod:`lowrankdp.models.tiny`) runs it with a step budget, single-threaded and deterministic.
- :func:`pretrain_base` — a base model of a public Pythia shape (``"pythia-70m-shape"`` …) pretrained on the
  same neutral corpus (:mod:`lowrankdp.models.corpus`) for a step or time budget on a given device, written
  with ``save_pretrained`` (model and tokenizer) plus ``lowrankdp_model.json``. It keeps the shape's vocabulary
  size (50,304) so its FLOPs and memory are those of the public model; the tokenizer is the toolkit's
  byte-level BPE trained on the corpus, so the ids above the tokenizer's size are never used.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Sequence

from .._validate import check_int, check_real

__all__ = ["lr_at", "train_causal_lm", "pretrain_base"]


def lr_at(step: int, *, lr: float, warmup_steps: int, min_lr_ratio: float, decay_fraction: float) -> float:
    """Learning rate of step ``step`` (0-based): linear warm-up ``lr·(step+1)/warmup_steps`` over the first
    ``warmup_steps`` steps, then cosine decay from ``lr`` to ``min_lr_ratio·lr`` as ``decay_fraction`` (the
    fraction of the post-warm-up budget used, in steps or in time) goes from 0 to 1."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    frac = min(1.0, max(0.0, decay_fraction))
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def train_causal_lm(model, train_ids: Sequence[int], *, steps: int | None = None, seconds: float | None = None,
                    batch_size: int = 8, block_size: int = 256, lr: float = 1e-2, warmup_steps: int = 16,
                    min_lr_ratio: float = 0.1, weight_decay: float = 0.01, seed: int = 0, device=None,
                    log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train ``model`` (a causal LM, in place) on random windows of ``train_ids``; return loss and time stats.

    Exactly one of ``steps`` and ``seconds`` is given. With ``steps`` the schedule runs over that many steps and
    the result is deterministic given the seed (on one device, with deterministic algorithms). With ``seconds``
    the schedule runs over the time budget (warm-up: the first ``warmup_steps`` steps) and the number of steps
    done depends on the machine; the budget is checked before each step, so the last step can end past it
    (at least one step is always taken).
    """
    import torch

    if (steps is None) == (seconds is None):
        raise ValueError(f"give exactly one of steps and seconds, got steps={steps!r}, seconds={seconds!r}")
    if steps is not None:
        steps = check_int("steps", steps, minimum=1)
    else:
        seconds = check_real("seconds", seconds, lo=0.0, lo_open=True)
    block_size = check_int("block_size", block_size, minimum=2)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    warmup_steps = check_int("warmup_steps", warmup_steps, minimum=1)
    if len(train_ids) <= block_size:
        raise ValueError(f"train_ids must be longer than block_size={block_size}, got {len(train_ids)} tokens")
    dev = next(model.parameters()).device if device is None else torch.device(device)
    model.to(dev)
    model.train()
    data = torch.tensor(list(train_ids), dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95), foreach=False)
    n_windows = len(train_ids) - block_size
    ema = value = None
    t1 = time.perf_counter()
    step = 0
    while True:
        elapsed = time.perf_counter() - t1
        if steps is not None:
            if step >= steps:
                break
            frac = (step - warmup_steps) / max(1, steps - warmup_steps)
        else:
            if elapsed >= seconds:
                break
            frac = elapsed / seconds
        cur = lr_at(step, lr=lr, warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio, decay_fraction=frac)
        for g in opt.param_groups:
            g["lr"] = cur
        starts = torch.randint(0, n_windows, (batch_size,), generator=gen)
        batch = torch.stack([data[s:s + block_size] for s in starts.tolist()]).to(dev)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        value = loss.item()
        ema = value if ema is None else 0.9 * ema + 0.1 * value
        if log is not None and step % 20 == 0:
            log(f"step {step:5d}  loss {value:.3f}  ({time.perf_counter() - t1:.1f} s)")
        step += 1
    return {"steps": step, "train_loss_final": value, "train_loss_ema": ema,
            "seconds": time.perf_counter() - t1, "tokens_seen": step * batch_size * block_size}


def pretrain_base(shape: str, *, out_dir: str | os.PathLike, steps: int | None = None,
                  seconds: float | None = None, device: str = "cpu", batch_size: int = 8, block_size: int = 256,
                  lr: float = 6e-4, warmup_steps: int = 100, min_lr_ratio: float = 0.1,
                  weight_decay: float = 0.01, tokenizer_vocab: int = 8192, seed: int = 0,
                  recipe=None, log: Callable[[str], None] | None = None) -> Path:
    """Pretrain a base model of preset ``shape`` on the toolkit's corpus and write it to ``out_dir``.

    ``shape``: a key of :data:`lowrankdp.models.presets.PRESETS` (e.g. ``"pythia-70m-shape"``). Exactly one of
    ``steps`` and ``seconds`` bounds the training. ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, …
    ``recipe``: the :class:`~lowrankdp.models.recipe.TinyRecipe` whose corpus is used (default: the tiny
    model's). ``out_dir`` must not exist or be an empty directory; the model is written to a temporary
    sibling and renamed into place, so an interrupted run leaves no half-written model under ``out_dir``.
    Returns ``out_dir``, loadable with ``lowrankdp.models.load_base(out_dir)`` or ``from_pretrained``.
    """
    import torch
    from transformers import GPTNeoXForCausalLM

    from .presets import PRESETS, parameter_count, preset_config
    from .recipe import DEFAULT_RECIPE, library_versions, tiny_corpus
    from .retention import stream_loss, token_stream
    from .tokenizer import train_tokenizer

    if shape not in PRESETS:
        raise ValueError(f"shape must be one of {', '.join(map(repr, PRESETS))}, got {shape!r}")
    if (steps is None) == (seconds is None):
        raise ValueError(f"give exactly one of steps and seconds, got steps={steps!r}, seconds={seconds!r}")
    tokenizer_vocab = check_int("tokenizer_vocab", tokenizer_vocab, minimum=300, maximum=50304)
    warmup_steps = check_int("warmup_steps", warmup_steps, minimum=1)
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    out = Path(out_dir).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"out_dir {str(out)!r} exists and is not an empty directory")
    recipe = DEFAULT_RECIPE if recipe is None else recipe
    t0 = time.perf_counter()
    corpus = tiny_corpus(recipe)
    max_pos = 2048
    tokenizer = train_tokenizer(corpus.train, vocab_size=tokenizer_vocab, model_max_length=max_pos)
    train_ids = token_stream(tokenizer, corpus.train)
    heldout_ids = token_stream(tokenizer, corpus.heldout)
    config = preset_config(shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                           pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(config).to(dev)
    if log is not None:
        log(f"{shape}: {parameter_count(config):,} parameters, {len(train_ids):,} training tokens, device {dev}")
    stats = train_causal_lm(model, train_ids, steps=steps, seconds=seconds, batch_size=batch_size,
                            block_size=block_size, lr=lr, warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio,
                            weight_decay=weight_decay, seed=seed, device=dev, log=log)
    heldout_loss = stream_loss(model, heldout_ids, block_size=block_size)
    model.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        model.to("cpu").save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        meta = {
            "name": shape, "kind": "pretrained base of a public shape", "shape": shape,
            "corpus": {**corpus.describe(), "train_tokens": len(train_ids), "heldout_tokens": len(heldout_ids)},
            "tokenizer": {"kind": "byte-level BPE", "vocab_size": len(tokenizer)},
            "architecture": {"model_type": "gpt_neox", "parameters": parameter_count(config),
                             "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
                             "num_layers": config.num_hidden_layers, "num_heads": config.num_attention_heads},
            "training": {"steps": stats["steps"], "step_budget": steps, "seconds_budget": seconds,
                         "batch_size": batch_size, "block_size": block_size, "lr": lr,
                         "warmup_steps": warmup_steps, "min_lr_ratio": min_lr_ratio, "seed": seed,
                         "tokens_seen": stats["tokens_seen"], "train_seconds": round(stats["seconds"], 2)},
            "train_loss_final": stats["train_loss_final"], "train_loss_ema": stats["train_loss_ema"],
            "heldout_loss": heldout_loss, "device": str(dev), "versions": library_versions(),
            "build_seconds": {"total": round(time.perf_counter() - t0, 2)},
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        (tmp / "lowrankdp_model.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
