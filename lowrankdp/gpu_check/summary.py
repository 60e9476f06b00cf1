"""The GPU check's result page (``gpu_check``, Markdown) and its one-screen console summary. Core layer."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

#: the pages the check writes (stems: each is written as Markdown and as JSON)
PAGE, BENCH_PAGE, REPLICATION_PAGE = "gpu_check", "gpu_finetune_benchmark", "gpu_replication"

__all__ = ["render_markdown", "render_screen"]


def fmt_value(x, spec: str) -> str:
    """A number for the check's pages: '-' for None, '∞' for inf, else ``format(x, spec)``."""
    if x is None:
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return format(x, spec)


def _stage_detail(s: dict[str, Any]) -> str:
    d = s.get("detail") or {}
    name = s["name"]
    if name == "setup":
        dev = d.get("cuda_device") or {}
        carried = d.get("carried_packages") or {}
        parts = [f"torch {d.get('torch')}", f"CUDA {d.get('cuda_version')}" if d.get("cuda_version") else "no CUDA"]
        if dev:
            parts.append(f"{dev.get('name')} ({dev.get('memory_gib')} GiB)")
        if carried:
            parts.append("carried: " + ", ".join(f"{k} {v}" for k, v in carried.items()))
        return "; ".join(parts)
    if name == "tests" and "tests" in d:
        txt = f"{d['passed']} passed, {d['failures'] + d['errors']} failed, {d['skipped']} skipped"
        return txt + (f" — {d['failed_tests'][0]}" if d.get("failed_tests") else "")
    if name == "benchmark" and d.get("settings"):
        return "; ".join(f"{x['model']}: {x['rows_ok']}/{x['rows']} rows" for x in d["settings"])
    if name == "pretrain" and d.get("steps"):
        a = d.get("architecture") or {}
        return (f"{a.get('num_layers')}x{a.get('hidden_size')} body, {d['steps']} steps, "
                f"{d.get('tokens_seen') or 0:,} tokens, held-out loss {fmt_value(d.get('heldout_loss'), '.3f')}")
    if name == "replication-report" and "runs" in d:
        runs = d["runs"]
        return f"{sum(r['status'] == 'ok' for r in runs)}/{len(runs)} runs ok"
    return ""


def _targets(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    bench = next((s for s in doc["stages"] if s["name"] == "benchmark"), None)
    out = []
    for st in ((bench or {}).get("detail") or {}).get("settings") or []:
        for t in st.get("targets") or []:
            out.append((st["model"], t))
    return out


def _runs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    rep = next((s for s in doc["stages"] if s["name"] == "replication-report"), None)
    return ((rep or {}).get("detail") or {}).get("runs") or []


def render_markdown(doc: dict[str, Any]) -> str:
    m = doc["meta"]
    out = [f"# lowrankdp gpu-check ({m['mode']} mode)", "",
           f"Run on {m['date']} — device: {m.get('device')}; torch {m.get('torch')}; git "
           f"{str(m.get('git_commit'))[:10]} (dirty={m.get('git_dirty')}, from {m.get('git_source')}). "
           f"Total {doc['total_s']:.0f} s of a {doc['budget_s']:.0f} s budget. Environment and package versions: "
           "`gpu_check.json` (`environment`).", "",
           "| stage | status | seconds | limit s | detail |", "|---|---|---|---|---|"]
    for s in doc["stages"]:
        detail = _stage_detail(s) or ""
        if s.get("reason"):
            detail = (detail + " — " if detail else "") + s["reason"]
        out.append(f"| {s['name']} | {s['status']} | {s['seconds']:.0f} | {fmt_value(s.get('limit_s'), '.0f')} | "
                   f"{detail.replace('|', '/')} |")
    t = _targets(doc)
    if t:
        out += ["", "## Step-time targets (benchmark)", "", "| model | row | ÷ | ratio | target | verdict |",
                "|---|---|---|---|---|---|"]
        out += [f"| {mod} | {x['row']} | {x['baseline']} | {fmt_value(x['ratio'], '.2f')} | ≤ {x['limit']} | {x['verdict']} |"
                for mod, x in t]
        out += ["", f"Details, FLOPs, memory and profiles: [{BENCH_PAGE}.md]({BENCH_PAGE}.md)."]
    runs = _runs(doc)
    if runs:
        out += ["", "## GPU-scale comparison", "",
                "| method | status | target ε | ε | utility | sensitive | gap | exposure bits | LOSS AUC |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in runs:
            out.append(f"| {r['method']} | {r['status']} | {fmt_value(r.get('target_epsilon'), 'g')} | "
                       f"{fmt_value(r.get('epsilon'), '.2f')} | "
                       f"{fmt_value(r.get('utility_loss'), '.3f')} | {fmt_value(r.get('sensitive_loss'), '.3f')} | "
                       f"{fmt_value(r.get('memorization_gap'), '.3f')} | {fmt_value(r.get('exposure_bits'), '.2f')} | "
                       f"{fmt_value(r.get('loss_auc'), '.3f')} |")
        out += ["", f"Details, CIs and findings: [{REPLICATION_PAGE}.md]({REPLICATION_PAGE}.md)."]
    return "\n".join(out) + "\n"


def render_screen(doc: dict[str, Any], *, results_dir: Path) -> str:
    """At most about 30 lines: stages, targets, the comparison, where the files are."""
    m = doc["meta"]
    lines = [f"lowrankdp gpu-check ({m['mode']}) — {m.get('device')}, torch {m.get('torch')}, {m['date']}",
             f"{'stage':<19}{'status':<9}{'s':>6}  detail"]
    for s in doc["stages"]:
        detail = s.get("reason") if s["status"] != "ok" else _stage_detail(s)
        lines.append(f"{s['name']:<19}{s['status']:<9}{s['seconds']:>6.0f}  {(detail or '')[:90]}")
    t = _targets(doc)
    if t:
        lines.append("targets (median step time):")
        for mod, x in t:
            lines.append(f"  {mod:<18} {x['row']:<16} / {x['baseline']:<5} {fmt_value(x['ratio'], '.2f'):>5}  "
                         f"(<= {x['limit']}) {x['verdict']}")
    runs = _runs(doc)
    if runs:
        lines.append(f"  {'method':<18}{'eps':>7}{'utility':>9}{'sens.':>8}{'gap':>8}{'exp.bits':>9}{'AUC':>7}")
        for r in runs:
            if r["status"] != "ok":
                lines.append(f"  {r['method']:<18}{r['status']}: {(r.get('reason') or '')[:60]}")
                continue
            lines.append(f"  {r['method']:<18}{fmt_value(r.get('epsilon'), '.2f'):>7}{fmt_value(r.get('utility_loss'), '.3f'):>9}"
                         f"{fmt_value(r.get('sensitive_loss'), '.3f'):>8}{fmt_value(r.get('memorization_gap'), '.3f'):>8}"
                         f"{fmt_value(r.get('exposure_bits'), '.2f'):>9}{fmt_value(r.get('loss_auc'), '.3f'):>7}")
    n_ok = sum(s["status"] == "ok" for s in doc["stages"])
    lines.append(f"{n_ok}/{len(doc['stages'])} stages ok in {doc['total_s']:.0f} s (budget {doc['budget_s']:.0f} s); "
                 f"results: {results_dir}/{PAGE}.md")
    return "\n".join(lines)
