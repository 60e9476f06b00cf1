"""Stage "sweep" and "replication-report" of the GPU check: the equal-ε comparison on the pretrained base.

    python -m lowrankdp.gpu_check.replication sweep  --plan PLAN.json --base BASE_DIR --sweep-dir DIR
    python -m lowrankdp.gpu_check.replication report --sweep-dir DIR --base BASE_DIR --results-dir DIR

``sweep`` loads the plan's preset (``lowrankdp/sweep/presets/gpu.toml``) with ``grid.models`` set to the
pretrained base and the plan's overrides, and runs it with :func:`lowrankdp.sweep.run_sweep` (each run in
its own process, cut at ``execution.timeout_s``). ``report`` works on whatever finished — also after the
sweep was cut — writing the sweep's own report (:func:`lowrankdp.sweep.write_report`) to
``RESULTS/gpu_replication_report/`` and a compact table to the ``gpu_replication`` page in ``RESULTS`` (Markdown and JSON): per
run (from its ``result.json``, :func:`lowrankdp.results.read_record`) its target ε, calibrated σ, ε, utility,
sensitive-token loss, memorisation gap, canary exposure and the LOSS attack's AUC with its bootstrap CI and
certified ε lower bound, grouped by target ε; the matched pairs (DP-LoRA vs DP-LoRA-FA, compressed DP-SGD vs
DP-SGD on the same matrices) at equal target ε; and findings that can fail (an attack beats chance; a DP
run's certified lower bound stays below its accountant ε).

Core layer: torch only in the sweep's child processes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from ..methods import METHOD_NAMES, PRIVATE_METHODS
from ..models.recipe import METADATA_FILE
from .summary import fmt_value

__all__ = ["run_comparison", "collect_runs", "findings", "write_replication", "main"]

PREFIX = "gpu_replication"
#: matched pairs compared at equal target ε: (method, its matched baseline) — lowrankdp/methods.py
PAIRS = (("dp-lora", "dp-lora-fa"), ("compressed-dp-sgd", "dp-sgd-targets"), ("dp-lora", "dp-sgd"))


def run_comparison(plan: dict[str, Any], *, base_dir: str | Path, sweep_dir: str | Path) -> dict[str, Any]:
    from lowrankdp.sweep import load_config, run_sweep

    set_values = {"grid.models": [str(Path(base_dir).resolve())], **plan.get("sweep_set", {})}
    cfg = load_config(plan.get("sweep_preset", "gpu"), set_values=set_values)
    res = run_sweep(cfg, sweep_dir, resume=True)
    return res.to_dict()


def _num(x) -> float | None:
    if isinstance(x, str):
        try:
            x = float(x)  # "inf" as written by lowrankdp.cli's JSON conversion
        except ValueError:
            return None
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def _epoch_dicts(run_dir: Path) -> list[dict[str, Any]]:
    """The evaluations of a run's result.json as plain dicts (none if the file is missing or torn)."""
    from lowrankdp.results import ResultError, read_record

    try:
        return [e.to_dict() for e in read_record(run_dir).epochs]
    except ResultError:
        return []


def collect_runs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One flat dict per indexed run: status, ε, utility, leakage and cost at its last evaluation."""
    from lowrankdp.sweep import RunIndex

    sweep = Path(sweep_dir)
    index = sweep / "index.sqlite"
    if not index.is_file():
        return []
    rows = []
    for r in RunIndex(index).rows():
        cfg = r["config"]
        lines = _epoch_dicts(sweep / r["run_dir"])
        first, last = (lines[0], lines[-1]) if lines else ({}, {})
        m = last.get("measurements") or {}
        b = first.get("measurements") or {}
        priv = last.get("privacy") or {}
        costs = last.get("costs") or {}
        mia = (m.get("mia") or {}).get("loss") or {}
        exp = m.get("exposure") or {}
        status, reason = r["status"], (r.get("reason") or "")[:200] or None
        if status in ("running", "pending", "interrupted"):  # the sweep stage was cut before this run ended
            status, reason = "cut", f"{r['status']} when the sweep stage reached its time limit"
        rows.append({
            "name": r["name"], "method": cfg.get("method"), "status": status, "reason": reason,
            "wall_time_s": _num(r.get("wall_time_s")),
            "epochs_measured": last.get("epoch"), "epochs": cfg.get("epochs"),
            "target_epsilon": _num(priv.get("target_epsilon", cfg.get("target_epsilon"))),
            "noise_multiplier": _num(priv.get("noise_multiplier", cfg.get("noise_multiplier"))),
            "batch_size": cfg.get("batch_size"),
            "micro_batch_size": cfg.get("micro_batch_size"), "lr": cfg.get("lr"),
            "epsilon": _num(priv.get("epsilon")), "delta": priv.get("delta"), "steps": costs.get("steps"),
            "sampling_rate": priv.get("sampling_rate"),
            "utility_loss_base": _num(b.get("utility_loss")), "utility_loss": _num(m.get("utility_loss")),
            "sensitive_loss_base": _num(b.get("sensitive_loss_token")),
            "sensitive_loss": _num(m.get("sensitive_loss_token")),
            "memorization_gap": _num(m.get("memorization_gap_token")),
            "exposure_bits": _num(exp.get("value")), "exposure_method": exp.get("method"),
            "exposure_max_bits": _num(exp.get("max_value")),
            "loss_auc": _num(mia.get("auc")), "loss_auc_ci": mia.get("auc_ci"),
            "loss_eps_lower_bound": _num(mia.get("epsilon_lower_bound")),
            "n_members": mia.get("n_in"), "n_nonmembers": mia.get("n_out"),
            "tokens_per_s": _num(costs.get("tokens_per_s")), "train_seconds": _num(costs.get("train_seconds")),
            "peak_memory_bytes": (costs.get("peak_memory") or {}).get("bytes"),
            "grad_sample_mode": costs.get("grad_sample_mode"),
        })
    return rows


def findings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Statements each run can confirm or refute (holds / does not hold / not measured), with numbers."""
    out = []
    for r in rows:
        ci = r.get("loss_auc_ci")
        if r["status"] != "ok" or r.get("loss_auc") is None or not ci:
            out.append({"run": r["name"], "claim": "LOSS attack beats chance (AUC 95% CI above 0.5)",
                        "verdict": "not measured", "numbers": r.get("reason")})
        else:
            out.append({"run": r["name"], "claim": "LOSS attack beats chance (AUC 95% CI above 0.5)",
                        "verdict": "holds" if ci[0] > 0.5 else "does not hold",
                        "numbers": f"AUC {r['loss_auc']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"})
        eps, lb = r.get("epsilon"), r.get("loss_eps_lower_bound")
        if r.get("method") in PRIVATE_METHODS:
            claim = "certified empirical ε lower bound ≤ accountant ε"
            if r["status"] != "ok" or eps is None or lb is None:
                out.append({"run": r["name"], "claim": claim, "verdict": "not measured", "numbers": r.get("reason")})
            else:
                out.append({"run": r["name"], "claim": claim, "verdict": "holds" if lb <= eps else "does not hold",
                            "numbers": f"lower bound {lb:.3f}, accountant ε {eps:.3f}"})
    return out




def _sort_key(r: dict[str, Any]):
    """Non-private runs first, then by target ε (or σ), then in the methods' report order."""
    m = r.get("method")
    order = METHOD_NAMES.index(m) if m in METHOD_NAMES else len(METHOD_NAMES)
    level = r.get("target_epsilon") if r.get("target_epsilon") is not None else r.get("noise_multiplier")
    return (m in PRIVATE_METHODS, level if level is not None else -1.0, order, r.get("name") or "")


def pairs_at_equal_epsilon(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each matched pair of :data:`PAIRS` that finished at the same target ε: the differences (method minus
    baseline) of utility loss, sensitive loss and LOSS AUC. One seed per cell: differences, not tests."""
    ok = {(r["method"], r["target_epsilon"]): r for r in rows
          if r["status"] == "ok" and r.get("target_epsilon") is not None}
    out = []
    for target in sorted({t for _, t in ok}):
        for a, b in PAIRS:
            ra, rb = ok.get((a, target)), ok.get((b, target))
            if ra is None or rb is None:
                continue
            diff = {}
            for key in ("utility_loss", "sensitive_loss", "loss_auc", "exposure_bits"):
                x, y = ra.get(key), rb.get(key)
                diff[key] = None if x is None or y is None else x - y
            out.append({"target_epsilon": target, "method": a, "baseline": b,
                        "epsilon": [ra.get("epsilon"), rb.get("epsilon")], "difference": diff})
    return out


def markdown(rows: list[dict[str, Any]], base: dict[str, Any] | None, meta: dict[str, Any]) -> str:
    out = ["# GPU-scale comparison (lowrankdp gpu-check, stage 3)", "",
           f"Produced by `lowrankdp gpu-check` ({meta.get('mode')} mode) on {meta.get('date')} — "
           f"device: {meta.get('device')}; torch {meta.get('torch')}; git {str(meta.get('git_commit'))[:10]}.", ""]
    if base:
        a, tr = base.get("architecture") or {}, base.get("training") or {}
        corpus_tokens = (base.get("corpus") or {}).get("train_tokens")
        out += [f"Base model: {base.get('name')} ({a.get('num_layers')} layers, width {a.get('hidden_size')}, "
                f"{a.get('num_heads')} heads, vocabulary {a.get('vocab_size')}, {fmt_value(a.get('parameters'), ',')} "
                f"parameters), pretrained by `lowrankdp model pretrain` on {base.get('device')}: "
                f"{tr.get('steps')} steps ({fmt_value(tr.get('tokens_seen'), ',')} tokens, "
                f"{fmt_value(tr.get('epochs_over_corpus'), '.1f')} passes over the {fmt_value(corpus_tokens, ',')}-token neutral "
                f"corpus) in {fmt_value(tr.get('train_seconds'), '.0f')} s, {tr.get('precision')}; held-out loss "
                f"{fmt_value(base.get('heldout_loss'), '.3f')} nats.", ""]
    out += ["Sweep: `lowrankdp/sweep/presets/gpu.toml` (overrides: "
            f"{json.dumps(meta.get('sweep_set') or {})}). Each row: the last evaluation of the run; base = "
            "epoch 0 (the pretrained base before fine-tuning). Utility: non-sensitive test loss (lower = "
            "better); sensitive: sensitive-token loss on the training records (higher = more private); gap: "
            "test minus train sensitive loss (> 0 = memorised values); exposure in bits; LOSS attack on "
            "members (training records) vs non-members (test records), AUC with its bootstrap 95% CI and the "
            "certified (Clopper–Pearson, 95%) ε lower bound. Private runs are grouped by target ε: each run's σ "
            "was calibrated by its own method's accountant to that ε, so rows of one group are compared at equal "
            "ε (a run without a target shows its σ and the ε it reached).", "",
            "| target ε | run | status | σ | ε | steps | utility (base) | sensitive (base) | gap | exposure bits | "
            "LOSS AUC [95% CI] | ε lower bound | tokens/s | wall s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=_sort_key):
        ci = r.get("loss_auc_ci")
        auc = "-" if r.get("loss_auc") is None else (
            f"{r['loss_auc']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{r['loss_auc']:.3f}")
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('reason') or ''}"[:80]
        target = fmt_value(r.get("target_epsilon"), "g") if r.get("method") in PRIVATE_METHODS else "(none)"
        out.append(
            f"| {target} | {r['method']} | {status} | {fmt_value(r.get('noise_multiplier'), '.3g')} | "
            f"{fmt_value(r.get('epsilon'), '.2f')} | "
            f"{fmt_value(r.get('steps'), 'd')} | "
            f"{fmt_value(r.get('utility_loss'), '.3f')} ({fmt_value(r.get('utility_loss_base'), '.3f')}) | "
            f"{fmt_value(r.get('sensitive_loss'), '.3f')} ({fmt_value(r.get('sensitive_loss_base'), '.3f')}) | "
            f"{fmt_value(r.get('memorization_gap'), '.3f')} | {fmt_value(r.get('exposure_bits'), '.2f')} | {auc} | "
            f"{fmt_value(r.get('loss_eps_lower_bound'), '.3f')} | {fmt_value(r.get('tokens_per_s'), ',.0f')} | "
            f"{fmt_value(r.get('wall_time_s'), '.0f')} |")
    pairs = pairs_at_equal_epsilon(rows)
    out += ["", "## Matched pairs at equal target ε", ""]
    if pairs:
        out += ["Method minus its matched baseline, same target ε, same data and seed (one seed per cell: "
                "differences, not tests; the sweep report below tests its claims across seeds where a sweep has "
                "several). Negative utility difference = the method has the better utility; positive sensitive "
                "difference = the method leaks less.", "",
                "| target ε | method − baseline | ε (method, baseline) | Δ utility | Δ sensitive | Δ LOSS AUC | "
                "Δ exposure bits |", "|---|---|---|---|---|---|---|"]
        for q in pairs:
            d = q["difference"]
            out.append(f"| {fmt_value(q['target_epsilon'], 'g')} | {q['method']} − {q['baseline']} | "
                       f"{fmt_value(q['epsilon'][0], '.2f')}, {fmt_value(q['epsilon'][1], '.2f')} | "
                       f"{fmt_value(d['utility_loss'], '+.3f')} | {fmt_value(d['sensitive_loss'], '+.3f')} | "
                       f"{fmt_value(d['loss_auc'], '+.3f')} | {fmt_value(d['exposure_bits'], '+.2f')} |")
    else:
        out.append("No matched pair here: no method and its baseline both finished at one target ε.")
    out += ["", "## Findings (each can fail)", "", "| run | claim | verdict | numbers |", "|---|---|---|---|"]
    for f in findings(rows):
        out.append(f"| {f['run']} | {f['claim']} | {f['verdict']} | {f['numbers'] or ''} |")
    out += ["", "The sweep's full report (figures, expected outcomes, every run): "
            "[gpu_replication_report/report.md](gpu_replication_report/report.md)."]
    return "\n".join(out) + "\n"


def write_replication(sweep_dir: str | Path, *, base_dir: str | Path | None, results_dir: str | Path,
                      meta: dict[str, Any]) -> dict[str, Any]:
    """Write the sweep report and the ``gpu_replication`` page (Markdown, JSON) into ``results_dir``; returns the JSON
    object."""
    from lowrankdp.sweep import write_report

    results = Path(results_dir)
    results.mkdir(parents=True, exist_ok=True)
    base = None
    if base_dir is not None and (Path(base_dir) / METADATA_FILE).is_file():
        base = json.loads((Path(base_dir) / METADATA_FILE).read_text(encoding="utf-8"))
    rows = collect_runs(sweep_dir)
    report_error = None
    try:
        write_report(sweep_dir, out=results / f"{PREFIX}_report",
                     title="lowrankdp GPU-scale comparison (gpu-check stage 3)")
    except Exception as exc:  # noqa: BLE001 - the compact table below is still written
        report_error = f"{type(exc).__name__}: {exc}"
    doc = {"meta": meta, "base_model": base, "runs": rows, "pairs_at_equal_epsilon": pairs_at_equal_epsilon(rows),
           "findings": findings(rows), "report_error": report_error}
    (results / f"{PREFIX}.json").write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    md = markdown(rows, base, meta)
    if report_error:
        md += f"\nThe sweep report could not be written: {report_error}\n"
    (results / f"{PREFIX}.md").write_text(md, encoding="utf-8")
    return doc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lowrankdp.gpu_check.replication")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sweep")
    s.add_argument("--plan", required=True)
    s.add_argument("--base", required=True)
    s.add_argument("--sweep-dir", required=True)
    r = sub.add_parser("report")
    r.add_argument("--sweep-dir", required=True)
    r.add_argument("--base", default=None)
    r.add_argument("--results-dir", required=True)
    r.add_argument("--meta", default="{}", help="JSON object recorded as the results' meta block")
    args = ap.parse_args(argv)
    if args.cmd == "sweep":
        plan = json.loads(Path(args.plan).read_text(encoding="utf-8"))
        print(json.dumps(run_comparison(plan, base_dir=args.base, sweep_dir=args.sweep_dir), default=str))
        return 0
    doc = write_replication(args.sweep_dir, base_dir=args.base, results_dir=args.results_dir,
                            meta=json.loads(args.meta))
    print(json.dumps({"runs": len(doc["runs"]), "ok": sum(r["status"] == "ok" for r in doc["runs"]),
                      "report_error": doc["report_error"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
