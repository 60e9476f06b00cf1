"""Benchmark of the fine-tuning methods at the same batch: step time, tokens/s, peak memory, FLOPs.

Every method runs in its own fresh process (so peak memory is per method, also on CPU) on the *same*
fixed batch of token ids (B records x L tokens, all real), and results are reported as ratios to FFT
measured in this one invocation. DP methods step on that fixed batch directly (no Poisson sampling:
this is a cost measurement, not a private run). FLOPs: ``torch.utils.flop_counter`` on one step
(matrix multiplies and attention only) beside the analytic count of docs/theory.md §6.

    .venv/bin/python benchmarks/finetune.py            # CPU rows (tiny model); GPU rows when CUDA is present
    .venv/bin/python benchmarks/finetune.py --quick    # fewer steps

Writes docs/results/finetune_benchmark.md and .json with the provenance block.
GPU targets: DP-LoRA step <= 1.2x LoRA; DP-SGD (ghost) <= 1.6x FFT; measured FLOPs ratios beside
the analytic 1.33 (DP-SGD/FFT) and 2 (DP-SGD/LoRA).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"

# (row label, method, extra config)
ROWS = [
    ("fft", "fft", {}),
    ("lora", "lora", {}),
    ("lora-fa", "lora-fa", {}),
    ("dp-sgd (ghost)", "dp-sgd", {"grad_sample_mode": "ghost"}),
    ("dp-sgd (hooks)", "dp-sgd", {"grad_sample_mode": "hooks"}),
    ("dp-lora (ghost)", "dp-lora", {"grad_sample_mode": "ghost"}),
    ("dp-lora (hooks)", "dp-lora", {"grad_sample_mode": "hooks"}),
    ("compressed-dp-sgd (fresh, ghost)", "compressed-dp-sgd", {"projection": "fresh", "grad_sample_mode": "ghost"}),
]

SETTINGS = {
    "cpu": [{"model": "tiny", "dtype": "float32", "batch": 8, "length": 128, "rank": 16, "steps": 6}],
    "gpu": [
        {"model": "pythia-160m-shape", "dtype": "bfloat16", "batch": 8, "length": 256, "rank": 16, "steps": 10},
        {"model": "pythia-410m-shape", "dtype": "bfloat16", "batch": 8, "length": 256, "rank": 16, "steps": 10},
    ],
}


def _rss_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def worker(args) -> dict:
    """One method, one setting, in this (fresh) process."""
    import torch

    torch.set_num_threads(int(os.environ.get("LOWRANKDP_BENCH_THREADS", "1")))
    from lowrankdp.finetune import FinetuneConfig, StepRunner, load_model
    from lowrankdp.finetune.costs import analytic_flops_per_token, count_flops, matmul_parameter_count

    spec = json.loads(args.worker)
    device = torch.device(spec["device"])
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[spec["dtype"]]
    model, _tok, _ = load_model(spec["model"], device=device, dtype=dtype)
    n_params = matmul_parameter_count(model)
    tmp = tempfile.mkdtemp()
    (Path(tmp) / "train.jsonl").write_text('{"text": "x"}\n')
    cfg = FinetuneConfig(method=spec["method"], data=tmp, out_dir=tmp, model=spec["model"], rank=spec["rank"],
                         alpha=float(spec["rank"]), batch_size=spec["batch"], noise_multiplier=1.0, max_grad_norm=1.0,
                         dtype=spec["dtype"], lr=1e-5, **spec["extra"])
    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (spec["batch"], spec["length"]), generator=g).to(device)
    att = torch.ones_like(ids)
    tokens = int(att[:, 1:].sum())
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss_before = _rss_kib("VmRSS")
    runner = StepRunner(cfg, model, n_train=spec["batch"] * 4)
    runner.step(ids, att)  # warm-up (allocations, kernels)
    with count_flops() as fc:
        runner.step(ids, att)
    times = []
    for _ in range(spec["steps"]):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        runner.step(ids, att)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    times.sort()
    median = times[len(times) // 2]
    if device.type == "cuda":
        peak = int(torch.cuda.max_memory_allocated())
        mem_kind = "cuda_max_allocated"
    else:
        peak = ((_rss_kib("VmHWM") or 0) - (rss_before or 0)) * 1024
        mem_kind = "peak RSS above RSS after model load"
    proj = runner.setup.projection
    analytic = analytic_flops_per_token(spec["method"], n_params, rank=spec["rank"],
                                        projected_dims=list(proj.dims.values()) if proj else None,
                                        tokens_per_step=tokens)
    return {"step_s_median": median, "step_s_min": times[0], "tokens_per_s": tokens / median,
            "peak_memory_bytes": peak, "memory_kind": mem_kind, "measured_flops_step": fc.total,
            "measured_flops_per_token": fc.total / tokens, "analytic_flops_per_token": analytic,
            "N": n_params, "tokens_per_step": tokens,
            "grad_sample_mode": runner.private.mode if runner.private else None}


def run_setting(setting: dict, device: str, quick: bool) -> list[dict]:
    rows = []
    for label, method, extra in ROWS:
        spec = {**setting, "method": method, "extra": extra, "device": device}
        if quick:
            spec["steps"] = 3
        cmd = [sys.executable, __file__, "--worker", json.dumps(spec)]
        t = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        row = {"label": label, "method": method, "model": setting["model"], "device": device,
               "dtype": setting["dtype"], "batch": setting["batch"], "length": setting["length"],
               "rank": setting["rank"]}
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
            row["error"] = tail[0]
        else:
            row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
        row["process_s"] = time.time() - t
        print(f"  {setting['model']:>18} {label:<34} "
              + (f"{row['step_s_median'] * 1e3:9.1f} ms/step" if "error" not in row else "ERROR " + row["error"]),
              flush=True)
        rows.append(row)
    fft = next((r for r in rows if r["method"] == "fft" and "error" not in r), None)
    lora = next((r for r in rows if r["label"] == "lora" and "error" not in r), None)
    for r in rows:
        if "error" in r or fft is None:
            continue
        r["time_vs_fft"] = r["step_s_median"] / fft["step_s_median"]
        r["memory_vs_fft"] = r["peak_memory_bytes"] / fft["peak_memory_bytes"] if fft["peak_memory_bytes"] else None
        r["measured_flops_vs_fft"] = r["measured_flops_per_token"] / fft["measured_flops_per_token"]
        r["analytic_flops_vs_fft"] = r["analytic_flops_per_token"] / fft["analytic_flops_per_token"]
        if lora is not None:
            r["time_vs_lora"] = r["step_s_median"] / lora["step_s_median"]
            r["measured_flops_vs_lora"] = r["measured_flops_per_token"] / lora["measured_flops_per_token"]
    return rows


def _f(x, spec):
    return "-" if x is None else format(x, spec)


def markdown(rows_by_setting: list[tuple[dict, str, list[dict] | None]], prov: dict) -> str:
    out = ["# Fine-tuning methods: cost at the same batch", "",
           f"Produced by `benchmarks/finetune.py` on {prov['date']} — device: {prov['device']}; "
           f"torch {prov['packages'].get('torch')}, transformers {prov['packages'].get('transformers')}, "
           f"peft {prov['packages'].get('peft')}, opacus {prov['packages'].get('opacus')}; "
           f"git {str(prov.get('git_commit'))[:10]} (dirty={prov.get('git_dirty')}).", "",
           "Each row: its own fresh process, the same fixed batch (B records x L tokens), median step time over "
           "the timed steps after one warm-up; ratios to FFT (and LoRA) from this one invocation. FLOPs: "
           "`torch.utils.flop_counter` on one step (matmuls/attention only) per target token; analytic: "
           "docs/theory.md §6 (6N FFT, 4N LoRA/LoRA-FA/DP-LoRA, 8N DP-SGD, + projection for compressed DP-SGD), "
           "N = Linear weights incl. the output head. CPU memory: peak RSS above the RSS after loading the "
           "model (process-level, coarse). DP rows step on the fixed batch without Poisson sampling (cost only).",
           "",
           f"Load average (1 min) before/after the CPU rows: {prov.get('loadavg_before')} / "
           f"{prov.get('loadavg_after')} on {os.cpu_count()} cores. On a shared machine the wall-time ratios "
           "are only indicative (other jobs compete for the cores); the FLOP counts are deterministic.",
           ""]
    for setting, device, rows in rows_by_setting:
        out.append(f"## {setting['model']} ({setting['dtype']}, B={setting['batch']}, L={setting['length']}, "
                   f"r={setting['rank']}, {device})")
        out.append("")
        if rows is None:
            out.append("not run (no GPU)")
            out.append("")
            continue
        out.append("| method | ms/step | tokens/s | time ÷ FFT | time ÷ LoRA | peak mem MiB | mem ÷ FFT | "
                   "measured GFLOP/token | measured ÷ FFT | measured ÷ LoRA | analytic ÷ FFT |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            if "error" in r:
                out.append(f"| {r['label']} | error: {r['error']} |||||||||| ")
                continue
            out.append(
                f"| {r['label']} | {r['step_s_median'] * 1e3:.1f} | {r['tokens_per_s']:.0f} | "
                f"{_f(r.get('time_vs_fft'), '.2f')} | {_f(r.get('time_vs_lora'), '.2f')} | "
                f"{r['peak_memory_bytes'] / 2**20:.0f} | {_f(r.get('memory_vs_fft'), '.2f')} | "
                f"{r['measured_flops_per_token'] / 1e9:.4f} | {_f(r.get('measured_flops_vs_fft'), '.2f')} | "
                f"{_f(r.get('measured_flops_vs_lora'), '.2f')} | {_f(r.get('analytic_flops_vs_fft'), '.2f')} |")
        out.append("")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="3 timed steps per row")
    ap.add_argument("--cpu-only", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "finetune_benchmark"))
    args = ap.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(args)))
        return 0
    import torch

    from lowrankdp.provenance import provenance

    results: list[tuple[dict, str, list[dict] | None]] = []
    load_before = round(os.getloadavg()[0], 2)
    for setting in SETTINGS["cpu"]:
        print(f"CPU: {setting}", flush=True)
        results.append((setting, "cpu", run_setting(setting, "cpu", args.quick)))
    gpu = torch.cuda.is_available() and not args.cpu_only
    for setting in SETTINGS["gpu"]:
        if gpu:
            print(f"GPU: {setting}", flush=True)
            results.append((setting, "cuda", run_setting(setting, "cuda", args.quick)))
        else:
            print(f"GPU: {setting['model']}: not run (no GPU)")
            results.append((setting, "cuda", None))
    prov = provenance()
    prov["loadavg_before"], prov["loadavg_after"] = load_before, round(os.getloadavg()[0], 2)
    md = markdown(results, prov)
    print()
    print(md)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(md)
    out.with_suffix(".json").write_text(json.dumps(
        {"provenance": prov, "settings": [{"setting": s, "device": d, "rows": r} for s, d, r in results]},
        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
