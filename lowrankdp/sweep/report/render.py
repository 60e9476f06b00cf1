"""Render the report as HTML (self-contained: figures as base64 PNG, no scripts, no external assets) and Markdown.

The page is built once as a list of blocks (heading, paragraph, table, figure) holding plain
text; the two writers escape EVERY text value where they emit it (``html.escape`` for HTML; HTML entities plus
``|`` and newlines for Markdown), so a value from a config, a run name, a provenance date or a failure reason can
never inject markup.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass
from typing import Any, Sequence

from .claims import ClaimResult, Estimate, Verdict, describe_cell, epsilon_flag, estimate
from .figures import Figure, equal_utility_rows
from .loading import RunEntry, SweepData, cell_key, group_by

__all__ = ["Block", "build_blocks", "to_html", "to_markdown"]


@dataclass(frozen=True)
class Block:
    """kind: "h1", "h2", "h3", "p", "note", "banner", "caption", "table", "figure"."""

    kind: str
    text: str = ""
    head: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    figure: Figure | None = None


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        if math.isnan(v):
            return "nan"
        return f"{v:.{digits - 1}e}" if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3) else f"{v:.{digits}g}"
    return str(v)


def _est(e: Estimate | None) -> str:
    return e.fmt() if e is not None else "—"


# ------------------------------------------------------------------------------------------- content

def _meta_line(data: SweepData) -> str:
    prov = data.sweep.get("provenance") if isinstance(data.sweep.get("provenance"), dict) else {}
    states = {s: sum(r.state.value == s for r in data.runs) for s in ("ok", "failed", "unfinished", "unreadable")}
    line = f"{len(data.runs)} runs: " + ", ".join(f"{n} {s}" for s, n in states.items() if n or s == "ok")
    line += f" · config {data.sweep.get('source') or '?'} · git {str(prov.get('git_commit') or '?')[:10]}"
    line += " (dirty)" if prov.get("git_dirty") else ""
    line += f" · {prov.get('device', '?')} · {prov.get('date', '?')}"
    timings = data.sweep.get("timings") if isinstance(data.sweep.get("timings"), dict) else {}
    if isinstance(timings.get("sweep_s"), (int, float)):
        line += f" · sweep wall time {timings['sweep_s']:.0f} s"
    return line


def _claim_blocks(claims: Sequence[ClaimResult]) -> list[Block]:
    summary = tuple((c.title, c.source or "—", c.verdict.value, c.reason) for c in claims)
    return [Block("h2", "Claims"),
            Block("caption", "Each claim is judged per comparison of like with like (same dataset, model, epochs, "
                             "rank, α, target ε or σ, learning rate; seeds are the replicates, 95 % intervals). "
                             "holds / does not hold: the interval is on one side of 0; inconclusive: it contains 0 "
                             "or there is one seed; not testable: the stored results cannot decide (reason given). "
                             "Every comparison is listed under “Claims in detail” at the end."),
            Block("table", head=("claim", "source", "verdict", "comparisons"), rows=summary)]


def _detail_blocks(claims: Sequence[ClaimResult]) -> list[Block]:
    out = [Block("h2", "Claims in detail")]
    for c in claims:
        out.append(Block("h3", f"{c.title}: {c.verdict.value}"))
        if not c.findings:
            out.append(Block("caption", c.reason))
            continue
        rows = tuple((f.setting, f.verdict.value, "; ".join(f"{k}: {v}" for k, v in f.numbers), f.reason)
                     for f in c.findings)
        out.append(Block("table", head=("comparison", "verdict", "numbers", "why"), rows=rows))
    return out


def _equal_eps_rows(runs: Sequence[RunEntry]) -> tuple[tuple[str, ...], ...]:
    rows = []
    for cell in group_by([r for r in runs if r.ok and r.private], cell_key).values():
        r0 = cell[0]
        eps = [r.privacy.epsilon for r in cell if r.privacy and r.privacy.epsilon is not None]
        sig = sorted({_fmt(r.privacy.noise_multiplier) for r in cell if r.privacy})
        target = r0.config.get("target_epsilon")
        within = "—" if target is None or not eps else ("yes" if max(eps) <= float(target) * (1 + 1e-9) else "NO")
        flag = epsilon_flag(r0)
        rows.append((describe_cell(r0), _fmt(target), _fmt(max(eps)) if eps else "—", within,
                     ", ".join(sig) or "—", ("† " + flag) if flag else "bound",
                     _est(estimate(v for r in cell if (v := r.value("utility_loss")) is not None)),
                     _est(estimate(v for r in cell if (v := r.value("sensitive_loss_token")) is not None)),
                     str(len(cell))))
    return tuple(rows)


def _equal_utility_table(runs: Sequence[RunEntry]) -> tuple[tuple[str, ...], ...]:
    return tuple((describe_cell(r0), _est(d), eq if d is not None else "—", _est(g))
                 for r0, d, g, eq in equal_utility_rows(runs))


def _run_rows(runs: Sequence[RunEntry], attack: str) -> tuple[tuple[str, ...], ...]:
    rows = []
    for r in runs:
        c, p = r.config, r.privacy
        eps = "—" if p is None else _fmt(p.epsilon) + (" †" if epsilon_flag(r) else "")
        rows.append((r.name, r.label, _fmt(c.get("rank")), _fmt(c.get("alpha")), _fmt(c.get("target_epsilon")),
                     _fmt(c.get("noise_multiplier") if p is None else p.noise_multiplier), _fmt(c.get("lr")),
                     _fmt(r.seed), r.state.value, _fmt(r.wall_time_s), _fmt(r.value("sensitive_loss_token")),
                     _fmt(r.value("utility_loss")), _fmt(r.value("memorization_gap_token")),
                     _fmt(r.value("exposure.value")), _auc(r, attack), eps,
                     (r.problem or r.reason or "")[:300]))
    return tuple(rows)


def _auc(r: RunEntry, attack: str) -> str:
    """AUC with its stored 95 % interval, e.g. "0.55 [0.49, 0.61]"."""
    auc, ci = r.value(f"mia.{attack}.auc"), r.final.metric(f"mia.{attack}.auc_ci") if r.final else None
    if auc is None:
        return "—"
    ok = isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(x, (int, float)) and math.isfinite(x)
                                                                for x in ci)
    return f"{auc:.3g} [{ci[0]:.3g}, {ci[1]:.3g}]" if ok else f"{auc:.3g}"


def _table_blocks(runs: Sequence[RunEntry], attack: str) -> list[Block]:
    return [
        Block("h2", "Equal ε: private methods"),
        Block("caption", "Per cell (seeds pooled): the target ε (if σ was calibrated), the achieved accountant ε "
                         "(largest over seeds) and whether it is within the target, σ, the guarantee of ε († an "
                         "estimate, or resting on an assumption — not a proven bound), final utility loss and "
                         "sensitive-token loss (mean [95 % interval])."),
        Block("table", head=("cell", "target ε", "achieved ε", "≤ target", "σ", "ε guarantee", "utility loss",
                             "sensitive loss", "seeds"), rows=_equal_eps_rows(runs)),
        Block("h2", "Equal utility"),
        Block("caption", "Sensitive-token loss minus FFT's at the same utility loss (base-subtracted, nats, > 0 = "
                         "more private than FFT), how many runs were matched at equal utility, and the "
                         "memorisation gap (test − train sensitive-token loss) at the last epoch."),
        Block("table", head=("cell", "Δ vs FFT at equal utility", "runs matched at equal utility (others: vs "
                                     "FFT's last epoch)", "memorisation gap"),
              rows=_equal_utility_table(runs)),
        Block("h2", "Every run"),
        Block("caption", "State: ok / failed / unfinished (interrupted or still running: no final values) / "
                         "unreadable (result file missing, half-written or corrupt: the reason is given). "
                         "Values are from the last epoch of runs that finished ok. † ε is not a proven bound."),
        Block("table", head=("run", "method", "rank", "α", "target ε", "σ", "lr", "seed", "state", "wall time (s)",
                             "sens. loss", "utility loss", "memorisation gap", "exposure (bits)",
                             f"AUC ({attack}) [95 %]", "ε", "reason"), rows=_run_rows(runs, attack)),
    ]


def build_blocks(data: SweepData, title: str, claims: Sequence[ClaimResult], figures: Sequence[Figure],
                 limitations: Sequence[str], attack: str) -> list[Block]:
    blocks = [Block("h1", title), Block("p", _meta_line(data))]
    if any(r.record is not None and r.record.synthetic for r in data.runs):
        blocks.append(Block("banner", "These results come from a synthetic run function: they exercise the "
                                      "report and are not measurements."))
    if limitations:
        blocks.append(Block("banner", "This sweep cannot support the claims below: " + "; ".join(limitations)
                                      + ". Read it as a pipeline check."))
    cfg = data.sweep.get("config") if isinstance(data.sweep.get("config"), dict) else {}
    if cfg.get("description"):
        blocks.append(Block("p", str(cfg["description"])))
    blocks.append(Block("caption", "Every number and curve is read from the stored results (result.json of each "
                                   "run); nothing was retrained to draw this page."))
    blocks += _claim_blocks(claims)
    for f in figures:
        blocks += [Block("h2", f.title), Block("figure", figure=f)]
        blocks += [Block("note", n) for n in f.notes] + [Block("caption", f.caption)]
    blocks += _table_blocks(data.runs, attack)
    blocks += _detail_blocks(claims)
    prov = data.sweep.get("provenance") if isinstance(data.sweep.get("provenance"), dict) else {}
    rows = tuple((str(k), v if isinstance(v, str) else json.dumps(v, default=str)) for k, v in prov.items())
    blocks += [Block("h2", "Provenance"),
               Block("caption", "Of the sweep driver; each run's own provenance is in its result.json."),
               Block("table", head=("key", "value"), rows=rows)]
    return blocks


# ------------------------------------------------------------------------------------------- writers

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1320px;margin:24px auto;padding:0 16px;
color:#222;line-height:1.45}
h1{font-size:24px;margin-bottom:4px} h3{font-size:15px;margin-top:20px}
h2{font-size:19px;margin-top:34px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555;font-size:13px} .caption{color:#444;font-size:13.5px;max-width:1100px}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:6px 10px;font-size:13px;margin:8px 0}
.banner{background:#fde2e2;border:2px solid #c00;padding:10px;font-weight:bold}
img{max-width:100%;border:1px solid #eee}
table{border-collapse:collapse;font-size:12.5px;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top} th{background:#f3f3f3}
td.v-holds{color:#1a7f37;font-weight:bold} td.v-does-not-hold{color:#c00;font-weight:bold}
td.v-inconclusive{color:#9a6700} td.v-not-testable{color:#888}
"""

_VERDICTS = {v.value for v in Verdict}


def _html_cell(x: str) -> str:
    cls = f" class='v-{x.replace(' ', '-')}'" if x in _VERDICTS else ""
    return f"<td{cls}>{html.escape(x)}</td>"


def _html_block(b: Block) -> str:
    e = html.escape
    if b.kind in ("h1", "h2", "h3"):
        return f"<{b.kind}>{e(b.text)}</{b.kind}>"
    if b.kind == "table":
        head = "".join(f"<th>{e(h)}</th>" for h in b.head)
        body = "".join("<tr>" + "".join(_html_cell(str(x)) for x in row) + "</tr>" for row in b.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if b.kind == "figure":
        f = b.figure
        if f is None or f.png is None:
            return "" if f is not None and f.notes else "<p class='note'>Not drawn: no stored values.</p>"
        return f"<img alt='{e(f.title)}' src='data:image/png;base64,{base64.b64encode(f.png).decode()}'>"
    cls = {"p": "meta", "note": "note", "banner": "banner", "caption": "caption"}.get(b.kind, "caption")
    return f"<p class='{cls}'>{e(b.text)}</p>"


def to_html(blocks: Sequence[Block], title: str) -> str:
    body = "\n".join(_html_block(b) for b in blocks)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def md_escape(x: Any) -> str:
    """Text safe in a Markdown table cell or paragraph: HTML entities escaped, ``|`` escaped, one line."""
    return html.escape(str(x), quote=False).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _md_block(b: Block) -> list[str]:
    if b.kind == "h1":
        return [f"# {md_escape(b.text)}", ""]
    if b.kind == "h2":
        return [f"## {md_escape(b.text)}", ""]
    if b.kind == "h3":
        return [f"### {md_escape(b.text)}", ""]
    if b.kind == "table":
        lines = ["| " + " | ".join(md_escape(h) for h in b.head) + " |", "|" + "---|" * len(b.head)]
        return lines + ["| " + " | ".join(md_escape(x) for x in row) + " |" for row in b.rows] + [""]
    if b.kind == "figure":
        f = b.figure
        if f is None or f.png is None:
            return [] if f is not None and f.notes else ["_Not drawn: no stored values._", ""]
        return [f"![{md_escape(f.title)}](report_figures/{f.key}.png)", ""]
    prefix = {"note": "> ", "banner": "> **", "caption": ""}.get(b.kind, "")
    suffix = "**" if b.kind == "banner" else ""
    return [f"{prefix}{md_escape(b.text)}{suffix}", ""]


def to_markdown(blocks: Sequence[Block]) -> str:
    return "\n".join(line for b in blocks for line in _md_block(b))
