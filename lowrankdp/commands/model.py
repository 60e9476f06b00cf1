"""``lowrankdp model``: build, inspect and evaluate base models (docs/models.md).

    lowrankdp model build [--name tiny] [--cache-dir DIR] [--rebuild] [--json]
    lowrankdp model pretrain --shape pythia-70m-shape (--steps N | --seconds S [--max-steps N]) --out DIR
        [--device cuda] [--precision auto|fp32|bf16] [--layers N --hidden N --heads N] [--vocab shape|tokenizer]
        [--corpus-docs N] [--json]
    lowrankdp model info NAME_OR_PATH [--cache-dir DIR] [--json]
    lowrankdp model eval NAME_OR_PATH [--max-tokens N] [--task-file FILE] [--json]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("model", help="build, inspect and evaluate base models (tiny, Pythia shapes, HF)",
                              description="Base models: the embedded tiny GPT-NeoX, random-weight Pythia "
                                          "shapes, or any Hugging Face causal LM by path or hub id.")
    sub = p.add_subparsers(dest="model_command", metavar="ACTION")

    b = sub.add_parser("build", help="build (or find in the cache) the embedded model and print its metadata")
    b.add_argument("--name", default="tiny", choices=["tiny"], help="model to build (default: tiny)")
    b.add_argument("--cache-dir", default=None, help="cache root (default: $LOWRANKDP_CACHE or ~/.cache/lowrankdp)")
    b.add_argument("--rebuild", action="store_true", help="replace the cached model (e.g. a corrupt one)")
    b.add_argument("--json", action="store_true", help="print the full metadata as JSON")
    b.set_defaults(func=_build)

    t = sub.add_parser("pretrain", help="pretrain a base of a preset shape on the toolkit's neutral corpus",
                       description="Pretrain a GPT-NeoX base of a public Pythia shape on the generated neutral "
                                   "corpus for a step or time budget; writes a save_pretrained directory.")
    t.add_argument("--shape", required=True, help="preset shape, e.g. pythia-70m-shape")
    budget = t.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=int, default=None, help="number of optimiser steps")
    budget.add_argument("--seconds", type=float, default=None, help="training time budget in seconds")
    t.add_argument("--out", required=True, help="output directory (must not exist or be empty)")
    t.add_argument("--device", default="cpu", help="torch device (default cpu)")
    t.add_argument("--max-steps", type=int, default=None, help="with --seconds: at most this many steps")
    t.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto (default): bf16 autocast on CUDA, fp32 elsewhere; weights stay fp32")
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--block-size", type=int, default=256)
    t.add_argument("--lr", type=float, default=6e-4)
    t.add_argument("--warmup-steps", type=int, default=100)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--layers", type=int, default=None, help="replace the shape's number of layers")
    t.add_argument("--hidden", type=int, default=None, help="replace the shape's width (MLP 4x)")
    t.add_argument("--heads", type=int, default=None, help="replace the shape's attention heads")
    t.add_argument("--vocab", default="shape", choices=["shape", "tokenizer"],
                   help="embedding rows: the shape's 50,304 (default) or the tokenizer's size rounded up to 128")
    t.add_argument("--tokenizer-vocab", type=int, default=8192, help="BPE vocabulary target (default 8192)")
    t.add_argument("--corpus-docs", type=int, default=None,
                   help="training documents of the neutral corpus (default: the tiny model's 6,000)")
    t.add_argument("--heldout-docs", type=int, default=None, help="held-out documents (default 300)")
    t.add_argument("--json", action="store_true", help="print the written metadata as JSON")
    t.set_defaults(func=_pretrain)

    i = sub.add_parser("info", help="describe a model (tiny, a preset, a local directory or a hub id)")
    i.add_argument("name_or_path")
    i.add_argument("--cache-dir", default=None)
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_info)

    e = sub.add_parser("eval", help="knowledge-retention measures: held-out pretraining loss, multiple choice")
    e.add_argument("name_or_path")
    e.add_argument("--cache-dir", default=None)
    e.add_argument("--max-tokens", type=int, default=None, help="score only the first N held-out tokens")
    e.add_argument("--task-file", default=None, help="JSONL multiple-choice task (default: the generated facts task)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=_eval)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _summary_lines(meta: dict) -> list[str]:
    arch, corpus = meta.get("architecture", {}), meta.get("corpus", {})
    secs = meta.get("build_seconds", {})
    return [
        f"path           {meta.get('path')}",
        f"architecture   GPT-NeoX, {arch.get('num_layers')} layers, hidden {arch.get('hidden_size')}, "
        f"{arch.get('num_heads')} heads, rotary {arch.get('rotary_pct')}, {arch.get('parameters'):,} parameters",
        f"tokenizer      byte-level BPE, {meta.get('tokenizer', {}).get('vocab_size')} tokens",
        f"corpus         {corpus.get('n_train_docs')} train / {corpus.get('n_heldout_docs')} held-out docs, "
        f"{corpus.get('train_tokens'):,} / {corpus.get('heldout_tokens'):,} tokens, "
        f"sha256 {corpus.get('sha256', '')[:16]}…",
        f"losses         train {meta.get('train_loss_final'):.3f}, held-out {meta.get('heldout_loss'):.3f}, "
        f"unigram baseline {meta.get('unigram_heldout_loss'):.3f} (nats/token)",
        f"built          {meta.get('created')} in {secs.get('total')} s wall"
        + (f", {secs['total_cpu']} s CPU" if "total_cpu" in secs else "")
        + f" (torch {meta.get('versions', {}).get('torch')})",
    ]


def _quiet_transformers() -> None:
    """No per-load progress bars from transformers in CLI output."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def _check_cache_dir(args: argparse.Namespace, *, write: bool) -> None:
    """The cache root (``--cache-dir``, ``$LOWRANKDP_CACHE`` or the default) is a directory, writable when
    ``write``: checked before a build that takes minutes."""
    from lowrankdp._files import check_output_dir
    from lowrankdp.models.cache import cache_root

    root = cache_root(args.cache_dir)
    name = "--cache-dir" if args.cache_dir is not None else "the model cache ($LOWRANKDP_CACHE or ~/.cache/lowrankdp)"
    if write:
        check_output_dir(root, name=name)
    elif os.path.lexists(root) and not root.is_dir():
        raise ValueError(f"{name} must be a directory, got {root}, which is not one")


def _check_task_file(path: str | None) -> None:
    if path is None:
        return
    p = Path(path)
    if not p.is_file():
        what = "does not exist" if not os.path.lexists(p) else (
            "is a directory" if p.is_dir() else "is not a regular file")
        raise ValueError(f"--task-file {p} {what}; expected a JSONL file of multiple-choice items")


def _build(args: argparse.Namespace) -> int:
    from lowrankdp.cli import print_json
    from lowrankdp.models import build_tiny, read_metadata, tiny_path

    _check_cache_dir(args, write=True)
    _quiet_transformers()
    path = tiny_path(cache_dir=args.cache_dir)
    cached = (path / "lowrankdp_model.json").is_file()
    t0 = time.perf_counter()
    path = build_tiny(cache_dir=args.cache_dir, log=None if args.json else print, rebuild=args.rebuild)
    cached = cached and not args.rebuild
    meta = {"path": str(path), "cached": cached, "seconds": round(time.perf_counter() - t0, 2),
            **read_metadata(path)}
    if args.json:
        print_json(meta)
    else:
        print(f"tiny model {'found in cache' if cached else 'built'} ({meta['seconds']} s)")
        print("\n".join(_summary_lines(meta)))
    return 0


def _info(args: argparse.Namespace) -> int:
    from lowrankdp.cli import print_json
    from lowrankdp.models import describe_base

    _check_cache_dir(args, write=False)
    _quiet_transformers()
    info = describe_base(args.name_or_path, cache_dir=args.cache_dir)
    if args.json:
        print_json(info)
    elif info.get("name") == "tiny" and info.get("built"):
        print("\n".join(_summary_lines(info)))
    elif info.get("name") == "tiny":
        print(f"tiny model not built yet (would be at {info['path']}); run `lowrankdp model build`")
    else:
        for k, v in info.items():
            if k != "lowrankdp_metadata":
                print(f"{k:14s} {v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{k:14s} {v}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    import torch

    from lowrankdp.cli import print_json
    from lowrankdp.models import load_base, retention_loss, score_multiple_choice

    from lowrankdp._validate import check_int

    if args.max_tokens is not None:
        check_int("--max-tokens", args.max_tokens, minimum=2)
    _check_task_file(args.task_file)
    _check_cache_dir(args, write=False)
    torch.set_num_threads(1)
    _quiet_transformers()
    model, tokenizer = load_base(args.name_or_path, cache_dir=args.cache_dir)
    loss = retention_loss(model, tokenizer, max_tokens=args.max_tokens)
    try:
        mc = score_multiple_choice(model, tokenizer, args.task_file)
    except UnicodeDecodeError as exc:
        raise ValueError(f"--task-file {args.task_file}: not valid UTF-8 ({exc.reason} at byte {exc.start + 1})") from None
    out = {"model": args.name_or_path, "retention_loss": loss, "multiple_choice_accuracy": mc["accuracy"],
           "multiple_choice_n": mc["n"], "multiple_choice_chance": mc["chance"]}
    if args.json:
        print_json(out)
    else:
        print(f"retention loss (held-out pretraining text)  {loss:.4f} nats/token")
        print(f"multiple choice                              {mc['accuracy']:.3f} on {mc['n']} items "
              f"(chance {mc['chance']:.3f})")
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from lowrankdp.cli import print_json
    from lowrankdp._validate import check_int
    from lowrankdp.models import DEFAULT_RECIPE, TinyRecipe, pretrain_base, read_metadata

    _quiet_transformers()
    docs = {}
    if args.corpus_docs is not None:
        docs["n_train_docs"] = check_int("--corpus-docs", args.corpus_docs, minimum=1)
    if args.heldout_docs is not None:
        docs["n_heldout_docs"] = check_int("--heldout-docs", args.heldout_docs, minimum=1)
    recipe = TinyRecipe(**{**DEFAULT_RECIPE.to_dict(), **docs}) if docs else None
    path = pretrain_base(args.shape, out_dir=args.out, steps=args.steps, seconds=args.seconds,
                         max_steps=args.max_steps, device=args.device, batch_size=args.batch_size,
                         block_size=args.block_size, lr=args.lr, warmup_steps=args.warmup_steps, seed=args.seed,
                         recipe=recipe, layers=args.layers, hidden=args.hidden, heads=args.heads, vocab=args.vocab,
                         tokenizer_vocab=args.tokenizer_vocab, precision=args.precision,
                         log=None if args.json else print)
    meta = {"path": str(path), **read_metadata(path)}
    if args.json:
        print_json(meta)
    else:
        tr = meta["training"]
        print(f"{meta['name']} pretrained: {tr['steps']} steps, {tr['tokens_seen']:,} tokens in "
              f"{tr['train_seconds']} s "
              f"on {meta['device']}; held-out loss {meta['heldout_loss']:.3f} nats/token; written to {path}")
    return 0
