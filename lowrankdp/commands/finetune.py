"""``lowrankdp finetune``: train one model with one method and write a run directory.

Example::

    lowrankdp finetune --method dp-lora --model tiny --data data/cs --epochs 3 --out runs/dplora
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..methods import METHOD_NAMES


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune",
        help="fine-tune a causal LM with one of " + ", ".join(METHOD_NAMES),
        description="Fine-tune a causal LM and write RUN_DIR/{result.json,checkpoints/,model/}. Evaluates after "
                    "every epoch (measurements, retention, ε, influence, costs).",
    )
    p.add_argument("--method", required=True, choices=METHOD_NAMES)
    p.add_argument("--model", default="tiny", help="'tiny', a preset such as pythia-160m-shape, a path or hub id")
    p.add_argument("--data", required=True, help="dataset directory (train.jsonl, test.jsonl, meta.json)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=None, help="default: 2.5e-4 (fft/dp-sgd), 1e-3 (adapters)")
    p.add_argument("--optimizer", default="adamw", choices=("adamw", "sgd"))
    p.add_argument("--batch-size", type=int, default=8, help="logical (expected) batch size in records")
    p.add_argument("--micro-batch-size", type=int, default=None, help="physical batch size (memory)")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--max-train-records", type=int, default=None)
    p.add_argument("--max-steps-per-epoch", type=int, default=None)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--target-modules", default=None, help="comma-separated module names (default: all block Linears)")
    p.add_argument("--lora-dropout", type=float, default=0.0)
    p.add_argument("--noise-multiplier", type=float, default=1.0)
    p.add_argument("--target-epsilon", type=float, default=None,
                   help="private methods: calibrate the noise multiplier so that the run ends at this ε")
    p.add_argument("--max-grad-norm", type=float, default=1.0)
    p.add_argument("--delta", type=float, default=1e-5)
    p.add_argument("--clip-unit", default="sequence", choices=("sequence", "token"),
                   help="'token' reproduces [RPUE]'s per-token clipping (ε then protects one token)")
    p.add_argument("--grad-sample-mode", default="auto", choices=("auto", "ghost", "hooks"))
    p.add_argument("--accountant", default="rdp", choices=("rdp", "pld"))
    p.add_argument("--projection", default=None, choices=("fresh", "fixed"), help="compressed-dp-sgd only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=1)
    p.add_argument("--no-measure", action="store_true", help="skip lowrankdp.measure.measure_all")
    p.add_argument("--no-retention", action="store_true", help="skip the knowledge-retention loss")
    p.add_argument("--retention-mc", action="store_true",
                   help="also score the local multiple-choice retention task (lowrankdp.models)")
    p.add_argument("--lm-eval-tasks", default=None,
                   help="comma-separated lm-evaluation-harness tasks (e.g. mmlu,hellaswag,sciq) where installed")
    p.add_argument("--influence-samples", type=int, default=8)
    p.add_argument("--audit-canaries", type=int, default=0,
                   help="m canaries per one-run privacy audit (input-space; white-box for DP methods); 0 = off")
    p.add_argument("--audit-seed", type=int, default=None, help="seed of the canaries (default: --seed)")
    p.add_argument("--exposure-max-candidates", type=int, default=None)
    p.add_argument("--checkpoint", default="last", choices=("last", "all", "none"))
    p.add_argument("--resume", action="store_true", help="continue from the last complete epoch in --out")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--overwrite", action="store_true",
                   help="allow --out to be a non-empty directory that is not a lowrankdp run")
    p.add_argument("--json", action="store_true", help="print the run record (result.json) as one JSON object")
    p.set_defaults(func=_handle)


def _handle(args: argparse.Namespace) -> int:
    from lowrankdp.cli import print_json
    from lowrankdp.finetune import FinetuneConfig, run

    targets = None if args.target_modules is None else tuple(
        t.strip() for t in args.target_modules.split(",") if t.strip())
    cfg = FinetuneConfig(
        method=args.method, model=args.model, data=args.data, out_dir=args.out, epochs=args.epochs, lr=args.lr,
        optimizer=args.optimizer, batch_size=args.batch_size, micro_batch_size=args.micro_batch_size,
        max_length=args.max_length, max_train_records=args.max_train_records,
        max_steps_per_epoch=args.max_steps_per_epoch, rank=args.rank, alpha=args.alpha, target_modules=targets,
        lora_dropout=args.lora_dropout, noise_multiplier=args.noise_multiplier, target_epsilon=args.target_epsilon, max_grad_norm=args.max_grad_norm,
        delta=args.delta, clip_unit=args.clip_unit, grad_sample_mode=args.grad_sample_mode,
        accountant=args.accountant, projection=args.projection, seed=args.seed, eval_every=args.eval_every,
        measure=not args.no_measure, retention=not args.no_retention, influence_samples=args.influence_samples,
        retention_mc=args.retention_mc, audit_canaries=args.audit_canaries, audit_seed=args.audit_seed,
        lm_eval_tasks=None if args.lm_eval_tasks is None else tuple(
            t.strip() for t in args.lm_eval_tasks.split(",") if t.strip()),
        exposure_max_candidates=args.exposure_max_candidates, checkpoint=args.checkpoint, resume=args.resume,
        device=args.device, dtype=args.dtype, progress=not args.no_progress, overwrite=args.overwrite,
    )
    rec = run(cfg)  # ValueError (bad config) -> one-line error, exit 2 (lowrankdp.cli.main)
    if args.json:
        print_json({k: v for k, v in rec.to_dict().items() if k not in ("provenance", "traceback", "complete")})
    else:
        _print_human(rec, args.out)
    return 0 if rec.status.value == "ok" else 1


def _fmt(x, spec=".4f"):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return format(x, spec)


def _print_human(rec, run_dir: str) -> None:
    print(f"run {run_dir}: {rec.method} status={rec.status.value}" + (f" ({rec.reason})" if rec.reason else ""))
    final = rec.final
    if final is not None:
        priv, costs = final.privacy, final.costs
        exp, mia = final.metric("exposure.value"), final.metric("mia.loss.auc")
        print(f"  epoch {final.epoch}  step {final.step}  train loss {_fmt(final.train_loss)}")
        if final.measurements is not None:
            print(f"  measure: sensitive loss {_fmt(final.metric('sensitive_loss_token'))}  utility loss "
                  f"{_fmt(final.metric('utility_loss'))}  exposure {_fmt(exp, '.2f')} bits  LOSS-attack AUC "
                  f"{_fmt(mia, '.3f')}")
        if final.retention_loss is not None:
            print(f"  retention loss {_fmt(final.retention_loss)}")
        print(f"  epsilon {_fmt(priv.epsilon, '.3f')} (delta {priv.delta}, {priv.source}"
              + (f"; sigma {priv.noise_multiplier:.4g}" if priv.noise_multiplier is not None else "") + ")")
        for a in final.audits:
            print(f"  audit {a['name']}: {a['correct']}/{a['guesses']} right of {a['canaries']} canaries, "
                  f"eps >= {_fmt(a['epsilon_snj'], '.3f')} (SNJ), {_fmt(a['epsilon_fdp'], '.3f')} (f-DP Gaussian) "
                  f"at delta {a['delta']}: {a['verdict']}")
        if costs:
            mem = costs.get("peak_memory") or {}
            print(f"  costs: {costs.get('steps')} steps, {_fmt(costs.get('step_time_mean_s'), '.4f')} s/step, "
                  f"{_fmt(costs.get('tokens_per_s'), '.0f')} tokens/s, FLOPs/token analytic "
                  f"{_fmt(costs.get('analytic_flops_per_token'), '.3g')} ({costs.get('analytic_formula')}) measured "
                  f"{_fmt(costs.get('measured_flops_per_token'), '.3g')}, peak memory "
                  f"{(mem.get('bytes') or 0) / 2**20:.0f} MiB ({mem.get('kind')}), device {costs.get('device')}")
    if rec.model_dir:
        print(f"  model exported to {Path(run_dir) / rec.model_dir} (lowrankdp measure --model {run_dir})")
    print(f"  wall time {rec.wall_time_s:.1f} s")
