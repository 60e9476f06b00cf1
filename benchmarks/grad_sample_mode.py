"""Benchmark: is ``grad_sample_mode="auto"`` the faster of ghost clipping and hooks? (docs/theory.md §7)

For each setting (model shape, sequence length T, batch B) one DP-SGD step (``PrivateTrainer.step``: per-record
clipping, noise, SGD update) is timed in both modes side by side in this one process: two copies of the same
random-weight model, one warm-up step each, then ``--repeats`` rounds that time one step of each mode in
alternating order (so load from other processes hits both alike). Weight values do not change the cost, so
random weights at the tiny model's shape and at the pythia-70m shape are used (no model is built or loaded).

Reported per setting: median step time of each mode, the ratio hooks/ghost with its range over rounds (each
round's ratio), the estimated extra cost per example of each mode (``grad_sample_costs``, flop-equivalents), the
mode ``auto`` chooses, and a verdict: "right" when every round's ratio agrees with that choice, "wrong" when every
round disagrees, "within noise" otherwise (with no true difference, all of n rounds agree in one given direction
with probability 2^-n: 0.03 at the default n = 5). Also measured: κ, the flop-equivalents of one per-example
gradient float on this machine (``measure_kappa``), beside the default ``FLOPS_PER_FLOAT["cpu"]`` that ``auto``
uses, and the choice ``auto`` would make with the measured κ.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/grad_sample_mode.py            # about 7 min on one core
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/grad_sample_mode.py --quick    # tiny model only

Writes docs/results/grad_sample_mode_benchmark.md and .json with the provenance block.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "docs" / "results"

SETTINGS = [
    {"model": "tiny", "length": 64, "batch": 8},
    {"model": "tiny", "length": 256, "batch": 8},
    {"model": "pythia-70m-shape", "length": 64, "batch": 2},
    {"model": "pythia-70m-shape", "length": 256, "batch": 2},
]


def _config(name: str):
    from transformers import GPTNeoXConfig

    from lowrankdp.models.presets import preset_config
    from lowrankdp.models.recipe import DEFAULT_RECIPE as R

    if name != "tiny":
        return preset_config(name)
    return GPTNeoXConfig(vocab_size=-(-R.vocab_size // 128) * 128, hidden_size=R.hidden_size,
                         num_hidden_layers=R.num_layers, num_attention_heads=R.num_heads,
                         intermediate_size=4 * R.hidden_size, rotary_pct=R.rotary_pct,
                         max_position_embeddings=R.max_position_embeddings, use_parallel_residual=True,
                         tie_word_embeddings=False, hidden_dropout=0.0, attention_dropout=0.0)


def _trainer(config, mode: str, batch: int, seed: int):
    import torch
    from transformers import GPTNeoXForCausalLM

    from lowrankdp.finetune.private import PrivateTrainer

    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(config)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    return PrivateTrainer(model, opt, n_train=batch * 10, batch_size=batch, micro_batch_size=batch,
                          noise_multiplier=1.0, max_grad_norm=1.0, grad_sample_mode=mode, noise_seed=seed)


def measure_kappa(repeats: int = 5) -> float:
    """κ of docs/theory.md §7 on this machine: matmul flop/s × (1/fresh-write floats/s + 2/streaming floats/s).

    A per-example gradient is a fresh allocation written once (``torch.full`` of 64 M floats: on CPU a large
    allocation is new pages) and read twice (norm, clipped sum; an in-place scale of 64 M floats reads and writes
    each one, so it counts 2 floats). Best of ``repeats`` for each rate."""
    import torch

    a = torch.randn(1024, 1024)
    b = torch.randn(1024, 1024)
    n = 64 * 1024 * 1024
    x = torch.randn(n)
    mm, fresh, stream = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        mm.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        y = torch.full((n,), 1.0)
        fresh.append(time.perf_counter() - t0)
        del y
        t0 = time.perf_counter()
        x.mul_(0.999)
        stream.append(time.perf_counter() - t0)
    flops = 2 * 1024 ** 3 / min(mm)
    return flops * (min(fresh) / n + 2 * min(stream) / (2 * n))


def run_setting(s: dict, repeats: int) -> dict:
    import torch
    from transformers import GPTNeoXForCausalLM

    from lowrankdp.finetune.private import choose_grad_sample_mode, grad_sample_costs

    config = _config(s["model"])
    with torch.device("meta"):
        shape_only = GPTNeoXForCausalLM(config)
    auto, reason = choose_grad_sample_mode(shape_only, "auto", seq_len=s["length"])
    costs = grad_sample_costs(shape_only, s["length"])
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(2, min(config.vocab_size, 1792), (s["batch"], s["length"]), generator=gen)
    mask = torch.ones_like(ids)
    trainers = {m: _trainer(config, m, s["batch"], seed=0) for m in ("ghost", "hooks")}
    times: dict[str, list[float]] = {"ghost": [], "hooks": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m, tr in trainers.items():
            tr.step(ids, mask)  # warm-up
        for r in range(repeats):
            order = ("ghost", "hooks") if r % 2 == 0 else ("hooks", "ghost")
            for m in order:
                t0 = time.perf_counter()
                trainers[m].step(ids, mask)
                times[m].append(time.perf_counter() - t0)
    ratios = [h / g for h, g in zip(times["hooks"], times["ghost"])]
    med = {m: statistics.median(v) for m, v in times.items()}
    faster = "ghost" if med["ghost"] < med["hooks"] else "hooks"
    agree = all((x > 1) == (auto == "ghost") for x in ratios)
    disagree = all((x > 1) != (auto == "ghost") for x in ratios)
    verdict = "right" if agree else ("wrong" if disagree else "within noise")
    return {**s, "repeats": repeats, "seconds": times, "median_s": med, "ratio_hooks_over_ghost": {
        "median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)},
        "costs": costs, "auto": auto, "auto_reason": reason, "faster": faster, "verdict": verdict}


def _auto_with(row: dict, kappa: float) -> str:
    import torch
    from transformers import GPTNeoXForCausalLM

    from lowrankdp.finetune.private import choose_grad_sample_mode

    with torch.device("meta"):
        shape_only = GPTNeoXForCausalLM(_config(row["model"]))
    return choose_grad_sample_mode(shape_only, "auto", seq_len=row["length"], flops_per_float=kappa)[0]


def markdown(rows: list[dict], prov: dict) -> str:
    out = ["# grad_sample_mode: ghost clipping vs hooks, and the choice of `auto`", "",
           "One DP-SGD step (clipping, noise, update) of random-weight GPT-NeoX models, both modes side by side in "
           "one process, alternating order each round; medians over rounds. `auto` compares the estimated extra "
           "cost per example of each mode (docs/theory.md §7; flop-equivalents with κ = "
           f"{rows[0]['costs']['flops_per_float']:g} per per-example-gradient float): ghost grows with T² per layer plus a "
           "second backward pass, hooks with d_in·d_out per layer. Verdict: *right* when every round's ratio "
           "agrees with `auto`'s choice, *wrong* when every round disagrees, *within noise* otherwise "
           f"(all {rows[0]['repeats']} rounds agreeing in one given direction by chance: p = "
           f"{0.5 ** rows[0]['repeats']:.3f}).", "",
           f"κ measured on this machine (matmul flop/s × (1/fresh-write + 2/streaming floats/s), one thread): "
           f"**{prov['kappa_measured']:.0f}**; with it `auto` chooses: "
           + ", ".join(f"{r['model']} T={r['length']}: {r['auto_measured_kappa']}" for r in rows) + ".", "",
           "| model | T | B | ghost s/step | hooks s/step | hooks/ghost (range) | ghost cost | hooks cost "
           "| auto | faster | verdict |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        q = r["ratio_hooks_over_ghost"]
        out.append(f"| {r['model']} | {r['length']} | {r['batch']} | {r['median_s']['ghost']:.3f} | "
                   f"{r['median_s']['hooks']:.3f} | {q['median']:.2f} ({q['min']:.2f}–{q['max']:.2f}) | "
                   f"{r['costs']['ghost']:.3g} | {r['costs']['hooks']:.3g} | {r['auto']} | {r['faster']} | "
                   f"{r['verdict']} |")
    out += ["", f"Repeats per setting: {rows[0]['repeats'] if rows else 0}; torch threads: {prov.get('threads')}.",
            "", "## Provenance", "", "```json", json.dumps(prov, indent=2), "```", ""]
    return "\n".join(out)


def main(argv=None) -> int:
    import torch

    from lowrankdp.provenance import provenance

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="tiny-model settings only")
    ap.add_argument("--no-write", action="store_true", help="print only; do not write docs/results")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    settings = [s for s in SETTINGS if not args.quick or s["model"] == "tiny"]
    t0 = time.perf_counter()
    kappa = measure_kappa()
    print(f"kappa measured: {kappa:.1f}", flush=True)
    rows = []
    for s in settings:
        rows.append(run_setting(s, args.repeats))
        rows[-1]["auto_measured_kappa"] = _auto_with(rows[-1], kappa)
        r = rows[-1]
        print(f"{r['model']:18s} T={r['length']:4d} B={r['batch']}  ghost {r['median_s']['ghost']:.3f}s  "
              f"hooks {r['median_s']['hooks']:.3f}s  hooks/ghost {r['ratio_hooks_over_ghost']['median']:.2f}  "
              f"auto={r['auto']}  {r['verdict']}", flush=True)
    prov = {**provenance(), "threads": torch.get_num_threads(), "wall_s": round(time.perf_counter() - t0, 1),
            "kappa_measured": kappa}
    md = markdown(rows, prov)
    print(md)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "grad_sample_mode_benchmark.md").write_text(md, encoding="utf-8")
        (RESULTS / "grad_sample_mode_benchmark.json").write_text(
            json.dumps({"rows": rows, "provenance": prov}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
