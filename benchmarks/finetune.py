"""Benchmark of the fine-tuning methods at the same batch: step time, tokens/s, peak memory, FLOPs.

Every method runs on the *same* fixed batch of token ids (B records x L tokens, all real), and results are
reported as ratios to FFT (and LoRA) measured in this one invocation. DP methods step on that fixed batch
directly (no Poisson sampling: this is a cost measurement, not a private run). FLOPs:
``torch.utils.flop_counter`` on one step (matrix multiplies and attention only) beside the analytic count of
docs/theory.md §6. On CUDA each row is also profiled for two steps (``torch.profiler``): the
kernels that take the device time, and the share of the step the device is busy.

Process layout: ``per-row`` (default on CPU) runs each row in its own fresh process, so peak memory is per
method also on CPU (peak RSS); ``per-setting`` (default on CUDA) runs all rows of one model shape in one
process, resetting CUDA's peak-memory counter before each row's model is built (peak memory is then
``max_memory_allocated`` above what was allocated before the row, which is what a fresh process measures).

    .venv/bin/python benchmarks/finetune.py                 # CPU rows (tiny model); GPU rows when CUDA is present
    .venv/bin/python benchmarks/finetune.py --quick         # fewer steps
    python3 benchmarks/finetune.py --gpu-only --out docs/results/gpu_finetune_benchmark   # what make gpu-check runs

Writes docs/results/finetune_benchmark.md and .json (or ``--out``) with the provenance block.
GPU targets: DP-LoRA step <= 1.2x LoRA; DP-SGD (ghost) <= 1.6x FFT; measured FLOPs ratios beside
the analytic 1.33 (DP-SGD/FFT) and 2 (DP-SGD/LoRA).
"""

from __future__ import annotations

import argparse
import gc
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
ROW_LABELS = tuple(r[0] for r in ROWS)

SETTINGS = {
    "cpu": [{"model": "tiny", "dtype": "float32", "batch": 8, "length": 128, "rank": 16, "steps": 6}],
    "gpu": [
        {"model": "pythia-160m-shape", "dtype": "bfloat16", "batch": 8, "length": 256, "rank": 16, "steps": 10},
        {"model": "pythia-410m-shape", "dtype": "bfloat16", "batch": 8, "length": 256, "rank": 16, "steps": 10},
    ],
    # the CPU rehearsal of the GPU rows that `lowrankdp gpu-check --dry-run` runs: same code path, tiny sizes
    "dry": [{"model": "tiny", "dtype": "bfloat16", "batch": 2, "length": 32, "rank": 4, "steps": 1, "rehearsal": True}],
}

# (row, baseline row, ratio key, largest allowed ratio): the published step-time targets, checked on GPU rows.
# Published figures for comparison: ghost clipping about 1.19x FFT, DP-LoRA about 1.12x LoRA.
TARGETS = [
    ("dp-lora (ghost)", "lora", "time_vs_lora", 1.2),
    ("dp-lora (hooks)", "lora", "time_vs_lora", 1.2),
    ("dp-sgd (ghost)", "fft", "time_vs_fft", 1.6),
]


def _rss_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _event_device_time(e) -> float:
    """Self device time (µs) of a profiler event average, across torch versions."""
    for name in ("self_device_time_total", "self_cuda_time_total"):
        v = getattr(e, name, None)
        if v is not None:
            return float(v)
    return 0.0


def profile_steps(runner, ids, att, device, *, steps: int = 2, top: int = 10) -> dict:
    """Where the time of a step goes: ``torch.profiler`` over ``steps`` steps.

    CUDA: the kernels ranked by device time, their share of the device-busy time, and the device-busy
    fraction of the wall time (a low fraction means the step waits on the host: Python, hooks, launches).
    CPU: the operators ranked by self CPU time. Returns ``{"error": ...}`` instead of raising.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    try:
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        _sync(device)
        t = time.perf_counter()
        with profile(activities=acts) as prof:
            for _ in range(steps):
                runner.step(ids, att)
            _sync(device)
        wall = (time.perf_counter() - t) / steps
        events = list(prof.key_averages())
        if device.type == "cuda":
            cuda = torch.autograd.DeviceType.CUDA
            kernels = [e for e in events if getattr(e, "device_type", None) == cuda]
            if not kernels:  # kernel events not separated in this torch version: operators' self device time
                kernels = [e for e in events if "::" in e.key]
            key = _event_device_time
        else:
            kernels = [e for e in events if "::" in e.key]  # aten operators
            key = lambda e: float(e.self_cpu_time_total)  # noqa: E731
        busy = sum(key(e) for e in kernels) / 1e6 / steps
        ranked = sorted(kernels, key=key, reverse=True)[:top]
        total = sum(key(e) for e in kernels) or 1.0
        host = sorted((e for e in events if "::" in e.key), key=lambda e: float(e.self_cpu_time_total),
                      reverse=True)[:5]
        return {
            "steps": steps, "wall_s_per_step": wall, "busy_s_per_step": busy,
            "busy_fraction": busy / wall if wall > 0 else None,
            "busy_kind": "device kernels" if device.type == "cuda" else "self CPU time of aten operators",
            "top": [{"name": e.key[:120], "s_per_step": key(e) / 1e6 / steps, "share": key(e) / total,
                     "calls_per_step": e.count / steps} for e in ranked],
            "top_host_ops": [{"name": e.key[:120], "self_cpu_s_per_step": float(e.self_cpu_time_total) / 1e6 / steps}
                             for e in host],
        }
    except Exception as exc:  # noqa: BLE001 - profiling is auxiliary: record, never fail the row
        return {"error": f"{type(exc).__name__}: {exc}"}


def measure_row(spec: dict) -> dict:
    """One method, one setting, in this process: time, FLOPs, memory (and a profile when asked)."""
    import torch

    from lowrankdp.finetune import FinetuneConfig, StepRunner, load_model
    from lowrankdp.finetune.costs import analytic_flops_per_token, count_flops, matmul_parameter_count

    device = torch.device(spec["device"])
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[spec["dtype"]]
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.synchronize(device)
        base_alloc = int(torch.cuda.memory_allocated(device))
        torch.cuda.reset_peak_memory_stats(device)
    model, _tok, _ = load_model(spec["model"], device=device, dtype=dtype)
    rss_before = _rss_kib("VmRSS")  # CPU: peak RSS is measured above the RSS with the model loaded
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
    runner = StepRunner(cfg, model, n_train=spec["batch"] * 4)
    runner.step(ids, att)  # warm-up (allocations, kernels)
    with count_flops() as fc:
        runner.step(ids, att)
    times = []
    for _ in range(spec["steps"]):
        _sync(device)
        t = time.perf_counter()
        runner.step(ids, att)
        _sync(device)
        times.append(time.perf_counter() - t)
    times.sort()
    median = times[len(times) // 2]
    if device.type == "cuda":
        peak = int(torch.cuda.max_memory_allocated(device)) - base_alloc
        mem_kind = "cuda_max_allocated above the allocation before the row"
    else:
        peak = ((_rss_kib("VmHWM") or 0) - (rss_before or 0)) * 1024
        mem_kind = ("peak RSS above the RSS after loading the model" if spec.get("fresh_process", True)
                    else "peak RSS above the RSS after loading the model (not isolated: earlier rows ran in "
                         "this process)")
    proj = runner.setup.projection
    analytic = analytic_flops_per_token(spec["method"], n_params, rank=spec["rank"],
                                        projected_dims=list(proj.dims.values()) if proj else None,
                                        tokens_per_step=tokens)
    row = {"step_s_median": median, "step_s_min": times[0], "tokens_per_s": tokens / median,
           "peak_memory_bytes": peak, "memory_kind": mem_kind, "measured_flops_step": fc.total,
           "measured_flops_per_token": fc.total / tokens, "analytic_flops_per_token": analytic,
           "N": n_params, "tokens_per_step": tokens, "timed_steps": len(times),
           "grad_sample_mode": runner.private.mode if runner.private else None}
    if device.type == "cuda":
        row["cuda_allocated_before_row_bytes"] = base_alloc
    if spec.get("profile"):
        row["profile"] = profile_steps(runner, ids, att, device)
    del runner, model, ids, att
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def worker(specs: list[dict]) -> None:
    """Rows of one process; prints one JSON line per row (``{"label", "row"}`` or ``{"label", "error"}``)."""
    import torch

    torch.set_num_threads(int(os.environ.get("LOWRANKDP_BENCH_THREADS", "1")))
    for spec in specs:
        try:
            out = {"label": spec["label"], "row": measure_row(spec)}
        except Exception as exc:  # noqa: BLE001 - one failing row must not lose the others of this process
            first = (str(exc).strip().splitlines() or [""])[0]
            out = {"label": spec["label"], "error": f"{type(exc).__name__}: {first}"[:300]}
            if spec["device"] == "cuda":
                gc.collect()
                torch.cuda.empty_cache()
        print(json.dumps(out), flush=True)


def _spawn(specs: list[dict], timeout: float | None) -> dict[str, dict]:
    """Run ``specs`` in one child process; returns {label: row or {"error"}} (missing rows get the reason)."""
    cmd = [sys.executable, __file__, "--worker", json.dumps(specs)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
        stdout, stderr, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr, rc = f"timed out after {timeout:g} s", None
    got: dict[str, dict] = {}
    for line in stdout.splitlines():
        if line.startswith("{"):
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if "label" in d:
                got[d["label"]] = d["row"] if "row" in d else {"error": d["error"]}
    if len(got) < len(specs):
        tail = (stderr or "").strip().splitlines()[-1:] or [f"exit status {rc}"]
        for s in specs:
            got.setdefault(s["label"], {"error": f"process ended before this row: {tail[0][:300]}"})
    return got


def add_ratios(rows: list[dict]) -> None:
    """Ratios to the FFT and LoRA rows of the same setting (in place)."""
    fft = next((r for r in rows if r["label"] == "fft" and "error" not in r), None)
    lora = next((r for r in rows if r["label"] == "lora" and "error" not in r), None)
    for r in rows:
        if "error" in r:
            continue
        if fft is not None:
            r["time_vs_fft"] = r["step_s_median"] / fft["step_s_median"]
            r["memory_vs_fft"] = (r["peak_memory_bytes"] / fft["peak_memory_bytes"]
                                  if fft["peak_memory_bytes"] > 0 else None)
            r["measured_flops_vs_fft"] = r["measured_flops_per_token"] / fft["measured_flops_per_token"]
            r["analytic_flops_vs_fft"] = r["analytic_flops_per_token"] / fft["analytic_flops_per_token"]
        if lora is not None:
            r["time_vs_lora"] = r["step_s_median"] / lora["step_s_median"]
            r["measured_flops_vs_lora"] = r["measured_flops_per_token"] / lora["measured_flops_per_token"]


def check_targets(rows: list[dict]) -> list[dict]:
    """The step-time targets (:data:`TARGETS`) for one setting: ratio, limit, met / missed / not measured."""
    by = {r["label"]: r for r in rows}
    out = []
    for label, base, key, limit in TARGETS:
        r = by.get(label)
        ratio = None if r is None or "error" in r else r.get(key)
        verdict = "not measured" if ratio is None else ("met" if ratio <= limit else "missed")
        item = {"row": label, "baseline": base, "ratio": ratio, "limit": limit, "verdict": verdict}
        if verdict == "missed":
            item["where_the_time_goes"] = explain_miss(r, by.get(base))
        out.append(item)
    return out


def explain_miss(row: dict, base: dict | None) -> str:
    """One sentence from the two rows' profiles: device-busy fractions and the row's heaviest kernels."""
    p = row.get("profile") or {}
    if not p or "error" in p:
        return "no profile recorded" + (f" ({p['error']})" if p.get("error") else "")
    parts = []
    on_device = p.get("busy_kind") == "device kernels"
    what = "device kernels" if on_device else "operators' self CPU time"
    bf = p.get("busy_fraction")
    if bf is not None:
        parts.append(f"{what} {bf:.0%} of the step")
    bp = (base or {}).get("profile") or {}
    if bp.get("busy_s_per_step") and p.get("busy_s_per_step"):
        parts.append(f"{what} {p['busy_s_per_step'] / bp['busy_s_per_step']:.2f}x the baseline's")
    if on_device and bf is not None and bf < 0.5:
        parts.append("so the step waits on the host (Python, opacus hooks, kernel launches) more than on kernels")
    top = p.get("top") or []
    if top:
        parts.append("heaviest: " + "; ".join(f"{t['name'][:60]} {t['share']:.0%}" for t in top[:3]))
    return ", ".join(parts)


def run_setting(setting: dict, device: str, *, quick: bool, labels, process: str, profile: bool,
                timeout: float | None) -> list[dict]:
    specs = []
    for label, method, extra in ROWS:
        if labels is not None and label not in labels:
            continue
        spec = {**setting, "label": label, "method": method, "extra": extra, "device": device,
                "profile": profile, "fresh_process": process == "per-row"}
        if quick:
            spec["steps"] = min(spec["steps"], 3)
        specs.append(spec)
    t = time.time()
    got: dict[str, dict] = {}
    if process == "per-setting":
        got = _spawn(specs, timeout)
    else:
        for s in specs:
            left = None if timeout is None else max(1.0, timeout - (time.time() - t))
            got.update(_spawn([s], left))
    rows = []
    for s in specs:
        row = {"label": s["label"], "method": s["method"], "model": setting["model"], "device": device,
               "dtype": setting["dtype"], "batch": setting["batch"], "length": setting["length"],
               "rank": setting["rank"], **got[s["label"]]}
        print(f"  {setting['model']:>18} {s['label']:<34} "
              + (f"{row['step_s_median'] * 1e3:9.1f} ms/step" if "error" not in row else "ERROR " + row["error"]),
              flush=True)
        rows.append(row)
    add_ratios(rows)
    return rows


def _f(x, spec):
    return "-" if x is None else format(x, spec)


def markdown(rows_by_setting: list[tuple[dict, str, list[dict] | None]], prov: dict) -> str:
    out = ["# Fine-tuning methods: cost at the same batch", "",
           f"Produced by `benchmarks/finetune.py` on {prov['date']} — device: {prov['device']}; "
           f"torch {prov['packages'].get('torch')}, transformers {prov['packages'].get('transformers')}, "
           f"peft {prov['packages'].get('peft')}, opacus {prov['packages'].get('opacus')}; "
           f"git {str(prov.get('git_commit'))[:10]} (dirty={prov.get('git_dirty')}).", "",
           "Each row: the same fixed batch (B records x L tokens), median step time over "
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
        if device == "cuda" or setting.get("rehearsal"):
            out.extend(_targets_markdown(check_targets(rows)))
            out.extend(_profile_markdown(rows))
    return "\n".join(out) + "\n"


def _targets_markdown(targets: list[dict]) -> list[str]:
    out = ["Step-time targets (median step time ratio; published: ghost clipping ≈ 1.19× FFT, DP-LoRA ≈ 1.12× LoRA):",
           "", "| row | ÷ | ratio | target | verdict | where the time goes |", "|---|---|---|---|---|---|"]
    for t in targets:
        out.append(f"| {t['row']} | {t['baseline']} | {_f(t['ratio'], '.2f')} | ≤ {t['limit']} | {t['verdict']} | "
                   f"{t.get('where_the_time_goes', '')} |")
    out.append("")
    return out


def _profile_markdown(rows: list[dict]) -> list[str]:
    prof = [(r["label"], r["profile"]) for r in rows if "error" not in r and r.get("profile")]
    if not prof:
        return []
    out = ["Profile (torch.profiler, 2 steps per row): busy time (CUDA: device kernels; CPU: operators' self time) "
           "as a share of the step, and the heaviest kernels or operators.", "",
           "| method | wall ms/step (profiled) | busy ms/step | busy share | heaviest (share of busy time) |",
           "|---|---|---|---|---|"]
    for label, p in prof:
        if "error" in p:
            out.append(f"| {label} | profile failed: {p['error'][:100]} | | | |")
            continue
        top = "; ".join(f"{t['name'][:50]} {t['share']:.0%}" for t in p["top"][:3])
        out.append(f"| {label} | {p['wall_s_per_step'] * 1e3:.1f} | {p['busy_s_per_step'] * 1e3:.1f} | "
                   f"{_f(p.get('busy_fraction'), '.0%')} | {top} |")
    out.append("")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="at most 3 timed steps per row")
    ap.add_argument("--cpu-only", action="store_true", help="only the CPU rows")
    ap.add_argument("--gpu-only", action="store_true", help="only the GPU rows (fails without CUDA)")
    ap.add_argument("--settings", choices=sorted(SETTINGS), default=None,
                    help="run only this group of settings (dry: the tiny CPU rehearsal of the GPU path)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default=None, help="device for --settings")
    ap.add_argument("--rows", default=None, help=f"comma-separated row labels (default all: {', '.join(ROW_LABELS)})")
    ap.add_argument("--process", choices=("per-row", "per-setting"), default=None,
                    help="fresh process per row (CPU default) or per setting (CUDA default)")
    ap.add_argument("--profile", action="store_true", help="profile every row (always on for CUDA rows)")
    ap.add_argument("--timeout-s", type=float, default=None, help="time limit per setting (seconds)")
    ap.add_argument("--out", default=str(RESULTS / "finetune_benchmark"))
    args = ap.parse_args(argv)
    if args.worker is not None:
        worker(json.loads(args.worker))
        return 0
    labels = None
    if args.rows is not None:
        labels = [s.strip() for s in args.rows.split(",") if s.strip()]
        bad = [x for x in labels if x not in ROW_LABELS]
        if bad:
            ap.error(f"--rows: unknown row {bad[0]!r}; rows are {', '.join(ROW_LABELS)}")
    from lowrankdp.provenance import provenance

    cpu_only_plan = args.cpu_only or (args.settings is not None and (args.device or "cpu") == "cpu"
                                      and args.settings != "gpu")
    if cpu_only_plan:
        cuda = False  # no CUDA row: the driver need not import torch (its workers do)
    else:
        import torch

        cuda = torch.cuda.is_available()
    if args.gpu_only and not cuda:
        print("benchmarks/finetune.py: error: --gpu-only needs a CUDA device (torch.cuda.is_available() is False)",
              file=sys.stderr)
        return 2
    plan: list[tuple[dict, str | None]] = []  # (setting, device or None = not run)
    if args.settings is not None:
        dev = args.device or ("cuda" if args.settings == "gpu" else "cpu")
        if dev == "cuda" and not cuda:
            print("benchmarks/finetune.py: error: --device cuda needs a CUDA device", file=sys.stderr)
            return 2
        plan += [(s, dev) for s in SETTINGS[args.settings]]
    else:
        if not args.gpu_only:
            plan += [(s, "cpu") for s in SETTINGS["cpu"]]
        if not args.cpu_only:
            plan += [(s, "cuda" if cuda else None) for s in SETTINGS["gpu"]]

    results: list[tuple[dict, str, list[dict] | None]] = []
    load_before = round(os.getloadavg()[0], 2)
    for setting, dev in plan:
        if dev is None:
            print(f"GPU: {setting['model']}: not run (no GPU)")
            results.append((setting, "cuda", None))
            continue
        process = args.process or ("per-setting" if dev == "cuda" else "per-row")
        print(f"{dev}: {setting} ({process})", flush=True)
        results.append((setting, dev, run_setting(setting, dev, quick=args.quick, labels=labels, process=process,
                                                  profile=args.profile or dev == "cuda", timeout=args.timeout_s)))
    prov = provenance()
    prov["loadavg_before"], prov["loadavg_after"] = load_before, round(os.getloadavg()[0], 2)
    if cuda:
        import torch

        prov["cuda_device"] = torch.cuda.get_device_name(0)
        prov["cuda_version"] = torch.version.cuda
    md = markdown(results, prov)
    print()
    print(md)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(md)
    out.with_suffix(".json").write_text(json.dumps(
        {"provenance": prov, "targets_spec": [{"row": a, "baseline": b, "ratio": c, "limit": d} for a, b, c, d in TARGETS],
         "settings": [{"setting": s, "device": d, "rows": r,
                       "targets": check_targets(r) if (r is not None and (d == "cuda" or s.get("rehearsal"))) else None}
                      for s, d, r in results]},
        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
