"""Benchmark of lowrankdp.measure: cost of the measurement pass and of exact canary ranking.

1. Tokens per second of ``record_logprobs`` (batching, padding, per-token log-probs, copy to numpy)
   against the model's plain forward pass (``model(input_ids, attention_mask)`` → logits) on the same
   length-sorted batches, run alternately, median of repeats. Target: overhead < 10 %.
2. Exact exposure ranking of 10⁶ six-digit candidates ("My ID is NNNNNN."): trie build (tokenize +
   distinct contexts), batched forward of the contexts, and the same call again with the cached trie;
   against the naive way (every candidate a full sequence, batched), timed on a 2·10⁴ subset and
   extrapolated linearly.

Prints Markdown and writes docs/results/measure_benchmark.md and .json with provenance.

    python benchmarks/measure.py [--quick] [--device cpu|cuda] [--no-70m] [--threads N]
                                 [--passes-only]   # keep the exposure section of the existing JSON
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _texts(n: int) -> list[str]:
    from lowrankdp.data import generate, load_dataset

    with tempfile.TemporaryDirectory() as d:
        path = generate("customersim", out_dir=d, seed=0, sizes={"train": n, "valid": 1, "test": 1},
                        canary_repeats=0)
        ds = load_dataset(path)
    return [r.text for r in ds.splits["train"]]


def bench_pass(name, model, tok, texts, *, batch_size, max_length, repeats, device):
    import torch

    from lowrankdp.measure import record_logprobs

    rows = [np.asarray(tok(t, truncation=True, max_length=max_length)["input_ids"]) for t in texts]
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
    batches = []
    for b0 in range(0, len(rows), batch_size):
        idx = order[b0:b0 + batch_size]
        w = max(len(rows[i]) for i in idx)
        ids = torch.zeros((len(idx), w), dtype=torch.long)
        att = torch.zeros((len(idx), w), dtype=torch.long)
        for r, i in enumerate(idx):
            ids[r, :len(rows[i])] = torch.as_tensor(rows[i])
            att[r, :len(rows[i])] = 1
        batches.append((ids.to(device), att.to(device)))
    n_tokens = int(sum(len(r) for r in rows))
    model.to(device).eval()

    def plain():
        with torch.inference_mode():
            for ids, att in batches:
                model(input_ids=ids, attention_mask=att, use_cache=False).logits
        if device.type == "cuda":
            torch.cuda.synchronize()

    def measured():
        record_logprobs(model, rows, batch_size=batch_size, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()

    plain(), measured()  # warm-up
    tp, tm = [], []
    for _ in range(repeats):
        t = time.perf_counter(); plain(); tp.append(time.perf_counter() - t)
        t = time.perf_counter(); measured(); tm.append(time.perf_counter() - t)
    p, m = statistics.median(tp), statistics.median(tm)
    # on a shared machine interference only adds time: the per-repeat minimum is the less noisy estimate
    pmin, mmin = min(tp), min(tm)
    return {"model": name, "params": sum(x.numel() for x in model.parameters()),
            "vocab": model.config.vocab_size, "records": len(rows), "tokens": n_tokens,
            "batch_size": batch_size, "max_length": max_length, "repeats": repeats,
            "plain_tokens_per_s": n_tokens / p, "measure_tokens_per_s": n_tokens / m,
            "plain_s": p, "measure_s": m, "overhead": m / p - 1.0, "overhead_min": mmin / pmin - 1.0,
            "plain_all_s": tp, "measure_all_s": tm}


def bench_exposure(model, tok, *, digits, naive_subset, device):
    import torch

    from lowrankdp import measure

    space = 10 ** digits
    prefix = "My ID is "
    t = time.perf_counter()
    secrets = measure.candidate_strings("0123456789", digits, np.arange(space))
    t_strings = time.perf_counter() - t
    measure._TRIE_CACHE.clear()
    scores, st1 = measure.candidate_logprobs(model, tok, prefix=prefix, secrets=secrets, device=device,
                                             return_stats=True)
    scores2, st2 = measure.candidate_logprobs(model, tok, prefix=prefix, secrets=secrets, device=device,
                                              return_stats=True)
    assert np.array_equal(scores, scores2)
    # naive: every candidate a full sequence, batched; on a subset, extrapolated
    sub = np.random.default_rng(0).choice(space, size=naive_subset, replace=False)
    texts = [prefix + secrets[i] for i in sub]
    p = st1["shared_prefix_tokens"]
    t = time.perf_counter()
    naive = np.zeros(len(texts))
    model.to(device).eval()
    bs = 1024
    with torch.inference_mode():
        for b0 in range(0, len(texts), bs):
            enc = tok(texts[b0:b0 + bs], padding=True, return_tensors="pt")
            ids, att = enc["input_ids"].to(device), enc["attention_mask"].to(device)
            lp = torch.log_softmax(model(input_ids=ids, attention_mask=att, use_cache=False).logits.float(), -1)
            tl = lp[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1) * att[:, 1:]
            naive[b0:b0 + bs] = tl[:, p - 1:].sum(1).double().cpu().numpy()
    t_naive = time.perf_counter() - t
    max_err = float(np.max(np.abs(naive - scores[sub])))
    return {"space_size": space, "digits": digits, "strings_s": t_strings,
            "first_call": st1, "cached_call": st2, "naive_subset": naive_subset,
            "naive_subset_s": t_naive, "naive_extrapolated_s": t_naive * space / naive_subset,
            "max_abs_diff_vs_naive": max_err}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--no-70m", action="store_true", help="skip the pythia-70m-shape pass benchmark")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--passes-only", action="store_true",
                    help="rerun the pass benchmark only; the exposure section is read from the existing JSON "
                         "(its own date and provenance are kept and shown)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "measure_benchmark"))
    args = ap.parse_args(argv)
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    from lowrankdp.models import load_base
    from lowrankdp.provenance import provenance

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    texts = _texts(16 if args.quick else 64)
    tiny, tok = load_base("tiny")
    passes = [bench_pass("tiny", tiny, tok, texts, batch_size=16, max_length=256,
                         repeats=2 if args.quick else 11, device=device)]
    if not args.no_70m and not args.quick:
        big, _ = load_base("pythia-70m-shape")
        passes.append(bench_pass("pythia-70m-shape (random weights)", big, tok, texts[:16], batch_size=4,
                                 max_length=128, repeats=5, device=device))
        del big
    out = Path(args.out)
    prov = provenance()
    if args.passes_only:
        old = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
        expo = old["exposure"]
        if "provenance" not in expo:  # first reuse: the exposure numbers come from that run
            expo["provenance"] = old["provenance"]
            expo["torch_threads"] = old.get("torch_threads")
            expo["load_average_1min_at_start"] = old.get("load_average_1min_at_start")
        expo_note = (f"(from the run of {expo['provenance']['date']}, {expo.get('torch_threads')} torch threads, "
                     f"1-min load average {expo.get('load_average_1min_at_start')}, git "
                     f"{(expo['provenance'].get('git_commit') or '')[:10]})")
    else:
        expo = bench_exposure(tiny, tok, digits=4 if args.quick else 6,
                              naive_subset=2000 if args.quick else 20_000, device=device)
        expo_note = "(this run)"
    result = {"passes": passes, "exposure": expo, "device": str(device), "torch_threads": torch.get_num_threads(),
              "load_average_1min_at_start": load, "provenance": prov}

    lines = ["# lowrankdp.measure benchmark", "",
             f"{prov['date']} · {prov['device']} · torch {prov['packages'].get('torch')} on {device} "
             f"({torch.get_num_threads()} threads) · 1-min load average at start {load} (shared machine: "
             "absolute speeds are noisy; ratios are measured side by side, alternating, medians) · git "
             f"{(prov['git_commit'] or '')[:10]}{' (dirty)' if prov['git_dirty'] else ''}", "",
             "## Measurement pass vs plain forward (same length-sorted batches)", "",
             "| model | params | vocab | tokens | batch × max len | repeats | plain forward tok/s (median) | "
             "measurement pass tok/s (median) | overhead (medians) | overhead (minima) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in passes:
        lines.append(f"| {r['model']} | {r['params'] / 1e6:.2f} M | {r['vocab']} | {r['tokens']} | "
                     f"{r['batch_size']} × {r['max_length']} | {r['repeats']} | {r['plain_tokens_per_s']:,.0f} | "
                     f"{r['measure_tokens_per_s']:,.0f} | {100 * r['overhead']:+.1f} % | "
                     f"{100 * r['overhead_min']:+.1f} % |")
    f, c = expo["first_call"], expo["cached_call"]
    lines += ["", f"## Exact exposure ranking of {expo['space_size']:,} candidates (tiny model) {expo_note}", "",
              "| step | time | how |", "|---|---|---|",
              f"| candidate strings | {expo['strings_s']:.2f} s | vectorised base-10 digits |",
              f"| trie build (first call) | {f['tokenize_seconds']:.1f} s | Rust `encode_batch` of "
              f"`prefix + secret` in chunks of 10⁵; shared prefix {f['shared_prefix_tokens']} tokens; "
              f"distinct contexts per depth by `np.unique` |",
              f"| batched forward | {f['forward_seconds']:.1f} s | {f['n_contexts']:,} contexts (trie nodes) in "
              f"batches of {f['batch_size']}, `logits_to_keep=1`; depth ≤ {f['max_continuation_tokens']} |",
              f"| total, first call | {f['seconds']:.1f} s | |",
              f"| total, repeated call (cached trie, e.g. next epoch) | {c['seconds']:.1f} s | |",
              f"| naive: every candidate a full sequence, batches of 1024 | {expo['naive_extrapolated_s']:.0f} s "
              f"(extrapolated from {expo['naive_subset']:,}: {expo['naive_subset_s']:.1f} s) | max |Δ log p| vs "
              f"trie = {expo['max_abs_diff_vs_naive']:.1e} |"]
    md = "\n".join(lines) + "\n"
    print(md)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(md, encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
