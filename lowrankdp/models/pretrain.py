"""Pretraining on the toolkit's generated corpus: the loop of the tiny model, and bases of any preset shape.

- :func:`train_causal_lm` — AdamW (β = (0.9, 0.95), weight decay on matrices only), linear warm-up then cosine
  decay to ``min_lr_ratio·lr``, gradient clipping at norm 1, random windows of ``block_size`` tokens of one
  token stream. Stops after ``steps`` steps, or after the steps that fit in ``seconds`` (the step time is
  measured on the first steps and the schedule fitted to the step count), optionally in bf16 autocast. The
  tiny model's build (:mod:`lowrankdp.models.tiny`) runs it with a step budget, single-threaded and
  deterministic.
- :func:`pretrain_base` — a base model of a public Pythia shape (``"pythia-70m-shape"`` …), or a smaller body
  of it, pretrained on the same neutral corpus (:mod:`lowrankdp.models.corpus`) for a step or time budget on a
  given device, written with ``save_pretrained`` (model and tokenizer) plus ``lowrankdp_model.json``. By
  default it keeps the shape's vocabulary size (50,304) so its FLOPs and memory are those of the public model;
  the tokenizer is the toolkit's byte-level BPE trained on the corpus, so the ids above the tokenizer's size
  are never used (``vocab="tokenizer"`` drops those rows). ``lowrankdp model pretrain`` is its command line;
  ``lowrankdp gpu-check`` builds its GPU-scale base with it.
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

from .._validate import check_choice, check_int, check_real

__all__ = ["lr_at", "train_causal_lm", "pretrain_base", "PRECISIONS", "VOCABS"]


def lr_at(step: int, *, lr: float, warmup_steps: int, min_lr_ratio: float, decay_fraction: float) -> float:
    """Learning rate of step ``step`` (0-based): linear warm-up ``lr·(step+1)/warmup_steps`` over the first
    ``warmup_steps`` steps, then cosine decay from ``lr`` to ``min_lr_ratio·lr`` as ``decay_fraction`` (the
    fraction of the post-warm-up budget used, in steps or in time) goes from 0 to 1."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    frac = min(1.0, max(0.0, decay_fraction))
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def _sync(dev) -> None:
    """Wait for the device's queued kernels, so that a wall clock read after it measures them."""
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def train_causal_lm(model, train_ids: Sequence[int], *, steps: int | None = None, seconds: float | None = None,
                    max_steps: int | None = None, batch_size: int = 8, block_size: int = 256, lr: float = 1e-2,
                    warmup_steps: int = 16, min_lr_ratio: float = 0.1, weight_decay: float = 0.01, seed: int = 0,
                    device=None, autocast_dtype=None, calibration_steps: int = 10, log_every: int = 20,
                    log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train ``model`` (a causal LM, in place) on random windows of ``train_ids``; return loss and time stats.

    Exactly one of ``steps`` and ``seconds`` is given. With ``steps`` the schedule runs over that many steps and
    the result is deterministic given the seed (on one device, with deterministic algorithms). With ``seconds``
    steps ``calibration_steps`` … ``3·calibration_steps`` are timed (the first ones pay for compilation and
    allocation) and the schedule is then fitted to the number of steps that fit in the budget, at most
    ``max_steps``; the step count depends on the machine. Until the fit the schedule assumes ``max_steps``
    (only warm-up steps, which do not depend on it, when ``calibration_steps`` ≤ ``warmup_steps / 3``). A run
    that overruns 1.5× the budget (the device slowed down) stops there.

    ``autocast_dtype``: e.g. ``torch.bfloat16`` — the forward pass runs under ``torch.autocast`` in that type
    (weights and optimiser state stay float32); None: no autocast. The loss is read back from the device every
    ``log_every`` steps (and logged if ``log`` is given); a non-finite value raises ``FloatingPointError``.
    """
    import contextlib

    import torch

    if (steps is None) == (seconds is None):
        raise ValueError(f"give exactly one of steps and seconds, got steps={steps!r}, seconds={seconds!r}")
    if steps is not None:
        steps = check_int("steps", steps, minimum=1)
    else:
        seconds = check_real("seconds", seconds, lo=0.0, lo_open=True)
    if max_steps is not None:
        max_steps = check_int("max_steps", max_steps, minimum=1)
    block_size = check_int("block_size", block_size, minimum=2)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    warmup_steps = check_int("warmup_steps", warmup_steps, minimum=1)
    calibration_steps = check_int("calibration_steps", calibration_steps, minimum=1)
    log_every = check_int("log_every", log_every, minimum=1)
    if len(train_ids) <= block_size:
        raise ValueError(f"train_ids must be longer than block_size={block_size}, got {len(train_ids)} tokens")
    dev = next(model.parameters()).device if device is None else torch.device(device)
    model.to(dev)
    model.train()
    data = torch.tensor(list(train_ids), dtype=torch.long, device=dev)
    offsets = torch.arange(block_size, device=dev)
    gen = torch.Generator().manual_seed(seed)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95),
                            **({"fused": True} if dev.type == "cuda" else {"foreach": False}))

    def autocast():
        if autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(dev.type, dtype=autocast_dtype)

    n_windows = len(train_ids) - block_size
    limit = steps if steps is not None else (max_steps if max_steps is not None else 10**9)
    total = limit  # the schedule's length; with seconds, fitted once the step time is measured
    cal_a, cal_b = calibration_steps, 3 * calibration_steps
    t_cal = step_s = None
    stopped = None
    ema = loss = None
    loss_log: list[list[float]] = []
    t1 = time.perf_counter()
    step = 0
    while step < total:
        frac = (step - warmup_steps) / max(1, total - warmup_steps)
        cur = lr_at(step, lr=lr, warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio, decay_fraction=frac)
        for g in opt.param_groups:
            g["lr"] = cur
        starts = torch.randint(0, n_windows, (batch_size,), generator=gen).to(dev, non_blocking=True)
        batch = data[starts[:, None] + offsets]
        with autocast():
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        value = loss.detach().double()  # kept on the device: no synchronisation per step
        ema = value if ema is None else 0.9 * ema + 0.1 * value
        step += 1
        if seconds is not None and step in (cal_a, cal_b):
            _sync(dev)
            now = time.perf_counter()
            if step == cal_a:
                t_cal = now
            elif t_cal is not None:
                step_s = (now - t_cal) / (cal_b - cal_a)
                total = max(step, min(limit, step + int((seconds - (now - t1)) / step_s)))
                if log is not None:
                    log(f"{step_s * 1e3:.1f} ms/step -> {total} steps in {seconds:g} s")
        if step % log_every == 0 or step == total:
            v = float(value)
            if not math.isfinite(v):
                raise FloatingPointError(f"training loss is {v} at step {step}")
            loss_log.append([step, v])
            if log is not None:
                log(f"step {step:5d}  loss {v:.3f}  ({time.perf_counter() - t1:.1f} s)")
        if seconds is not None:
            elapsed = time.perf_counter() - t1
            if step_s is None and elapsed >= seconds:
                stopped = f"budget spent before the step time was measured (step {step})"
                break
            if elapsed > 1.5 * seconds:
                stopped = f"stopped at step {step} of {total}: {elapsed:.0f} s > 1.5 x the budget"
                break
    _sync(dev)
    train_s = time.perf_counter() - t1
    tokens = step * batch_size * block_size
    return {"steps": step, "planned_steps": total if step_s is not None or steps is not None else None,
            "train_loss_final": float(loss.detach()), "train_loss_ema": float(ema), "seconds": train_s,
            "tokens_seen": tokens, "tokens_per_s": tokens / train_s if train_s > 0 else None,
            "step_ms_calibrated": None if step_s is None else step_s * 1e3, "stopped": stopped,
            "loss_log": loss_log}


PRECISIONS = ("auto", "fp32", "bf16")
VOCABS = ("shape", "tokenizer")


def _body_config(shape: str, tokenizer, *, layers: int | None, hidden: int | None, heads: int | None, vocab: str):
    """The GPT-NeoX config of ``shape`` with the body overrides and the vocabulary choice applied."""
    from .presets import preset_config

    config = preset_config(shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                           pad_token_id=tokenizer.pad_token_id)
    if hidden is not None:
        config.hidden_size, config.intermediate_size = hidden, 4 * hidden
    if layers is not None:
        config.num_hidden_layers = layers
    if heads is not None:
        config.num_attention_heads = heads
    if vocab == "tokenizer":
        config.vocab_size = -(-len(tokenizer) // 128) * 128
    return config


def pretrain_base(shape: str, *, out_dir: str | os.PathLike, steps: int | None = None,
                  seconds: float | None = None, max_steps: int | None = None, device: str = "cpu",
                  batch_size: int = 8, block_size: int = 256, lr: float = 6e-4, warmup_steps: int = 100,
                  min_lr_ratio: float = 0.1, weight_decay: float = 0.01, tokenizer_vocab: int = 8192, seed: int = 0,
                  recipe=None, layers: int | None = None, hidden: int | None = None, heads: int | None = None,
                  vocab: str = "shape", precision: str = "auto", calibration_steps: int = 10,
                  log: Callable[[str], None] | None = None) -> Path:
    """Pretrain a base model of preset ``shape`` on the toolkit's corpus and write it to ``out_dir``.

    ``shape``: a key of :data:`lowrankdp.models.presets.PRESETS` (e.g. ``"pythia-70m-shape"``). Exactly one of
    ``steps`` and ``seconds`` bounds the training; with ``seconds`` the schedule is fitted to the steps that fit
    (at most ``max_steps``; :func:`train_causal_lm`). ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, …
    ``precision``: ``"auto"`` (bf16 autocast on CUDA, float32 elsewhere), ``"fp32"`` or ``"bf16"`` (autocast;
    the weights stay float32). ``layers``, ``hidden`` (MLP 4× hidden), ``heads`` replace the shape's body (a
    smaller body for a CPU rehearsal). ``vocab``: ``"shape"`` keeps the shape's 50,304 embedding rows (its
    FLOPs and memory are the public model's), ``"tokenizer"`` uses the tokenizer's size rounded up to 128 (no
    dead rows: faster to train). ``recipe``: the :class:`~lowrankdp.models.recipe.TinyRecipe` whose corpus is
    used (default: the tiny model's; ``n_train_docs`` sets its size). ``out_dir`` must not exist or be an empty
    directory; the model is written to a temporary sibling and renamed into place, so an interrupted run leaves
    no half-written model under ``out_dir``. Returns ``out_dir``, loadable with
    ``lowrankdp.models.load_base(out_dir)`` or ``from_pretrained``; ``lowrankdp_model.json`` there records the
    recipe, the steps done, losses (train, held-out), throughput and timings.
    """
    import torch
    from transformers import GPTNeoXForCausalLM

    from .presets import PRESETS, parameter_count
    from .recipe import DEFAULT_RECIPE, METADATA_FILE, library_versions, tiny_corpus
    from .retention import stream_loss, token_stream
    from .tokenizer import train_tokenizer

    if shape not in PRESETS:
        raise ValueError(f"shape must be one of {', '.join(map(repr, PRESETS))}, got {shape!r}")
    if (steps is None) == (seconds is None):
        raise ValueError(f"give exactly one of steps and seconds, got steps={steps!r}, seconds={seconds!r}")
    tokenizer_vocab = check_int("tokenizer_vocab", tokenizer_vocab, minimum=300, maximum=50304)
    warmup_steps = check_int("warmup_steps", warmup_steps, minimum=1)
    for name, value in (("layers", layers), ("hidden", hidden), ("heads", heads)):
        if value is not None:
            check_int(name, value, minimum=1)
    width, n_heads = hidden or PRESETS[shape].hidden, heads or PRESETS[shape].heads
    if width % n_heads:
        raise ValueError(f"hidden must be divisible by heads, got hidden={width}, heads={n_heads}")
    vocab = check_choice("vocab", vocab, VOCABS)
    precision = check_choice("precision", precision, PRECISIONS)
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    out = Path(out_dir).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"out_dir {str(out)!r} exists and is not an empty directory")
    bf16 = precision == "bf16" or (precision == "auto" and dev.type == "cuda")
    recipe = DEFAULT_RECIPE if recipe is None else recipe
    t0 = time.perf_counter()
    corpus = tiny_corpus(recipe)
    max_pos = 2048
    tokenizer = train_tokenizer(corpus.train, vocab_size=tokenizer_vocab, model_max_length=max_pos)
    train_ids = token_stream(tokenizer, corpus.train)
    heldout_ids = token_stream(tokenizer, corpus.heldout)
    config = _body_config(shape, tokenizer, layers=layers, hidden=hidden, heads=heads, vocab=vocab)
    t_data = time.perf_counter() - t0
    torch.manual_seed(seed)
    with dev:
        model = GPTNeoXForCausalLM(config)
    reduced = (layers, hidden, heads) != (None, None, None)
    name = shape if not reduced else (f"{shape} reduced to {config.num_hidden_layers} layers, "
                                      f"{config.hidden_size} wide, {config.num_attention_heads} heads")
    if log is not None:
        log(f"{name}: {parameter_count(config):,} parameters, {len(train_ids):,} training tokens, device {dev}, "
            f"{'bf16 autocast' if bf16 else 'fp32'}")
    stats = train_causal_lm(model, train_ids, steps=steps, seconds=seconds, max_steps=max_steps,
                            batch_size=batch_size, block_size=block_size, lr=lr, warmup_steps=warmup_steps,
                            min_lr_ratio=min_lr_ratio, weight_decay=weight_decay, seed=seed, device=dev,
                            autocast_dtype=torch.bfloat16 if bf16 else None, calibration_steps=calibration_steps,
                            log=log)
    heldout_loss = stream_loss(model, heldout_ids, block_size=block_size, batch_size=batch_size)
    model.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        model.to("cpu").save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        device_name = str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else "")
        meta = {
            "name": name, "kind": "pretrained base of a public shape", "shape": shape,
            "corpus": {**corpus.describe(), "train_tokens": len(train_ids), "heldout_tokens": len(heldout_ids)},
            "tokenizer": {"kind": "byte-level BPE", "vocab_size": len(tokenizer)},
            "architecture": {"model_type": "gpt_neox", "parameters": parameter_count(config),
                             "vocab_size": config.vocab_size, "vocab": vocab, "hidden_size": config.hidden_size,
                             "num_layers": config.num_hidden_layers, "num_heads": config.num_attention_heads,
                             "reduced_body": reduced},
            "training": {"steps": stats["steps"], "step_budget": steps, "seconds_budget": seconds,
                         "max_steps": max_steps, "planned_steps": stats["planned_steps"],
                         "step_ms_calibrated": stats["step_ms_calibrated"], "stopped": stats["stopped"],
                         "batch_size": batch_size, "block_size": block_size, "lr": lr,
                         "warmup_steps": warmup_steps, "min_lr_ratio": min_lr_ratio,
                         "weight_decay": weight_decay, "seed": seed, "precision": (
                             "bf16 autocast, fp32 weights" if bf16 else "fp32"),
                         "tokens_seen": stats["tokens_seen"], "tokens_per_s": stats["tokens_per_s"],
                         "epochs_over_corpus": stats["tokens_seen"] / len(train_ids),
                         "train_seconds": round(stats["seconds"], 2), "loss_log": stats["loss_log"]},
            "train_loss_final": stats["train_loss_final"], "train_loss_ema": stats["train_loss_ema"],
            "heldout_loss": heldout_loss, "device": device_name, "versions": library_versions(),
            "build_seconds": {"data": round(t_data, 2), "train": round(stats["seconds"], 2),
                              "total": round(time.perf_counter() - t0, 2)},
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
