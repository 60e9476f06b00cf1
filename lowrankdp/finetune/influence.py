"""Influence of one training record under a low-rank projection ([RPUE] Thm 1; docs/theory.md §1).

For each sampled training record and each adapted weight ``W`` (``d_out x d_in``), the per-example
full-space gradient ``G = ∂L/∂W`` (loss = the record's mean next-token loss) is split into the part
inside the LoRA subspace — the row space of ``A`` (``r x d_in``), projector ``P_A = Aᵀ(AAᵀ)⁻¹A`` —
and the rest: ``‖G P_A‖_F ≤ ‖G‖_F`` always ([RPUE] Thm 1: deterministic shrinkage).

Reference law [derived, docs/theory.md §1]: for a projection independent of the example and a rank-one
gradient, the retained fraction ``‖G P_A‖²/‖G‖²`` is Beta(r/2, (d−r)/2) (mean r/d). A sequence gives a
gradient of rank up to its length, and the retained fraction is then a weighted average of such Betas
(less spread, same mean); after training, LoRA's ``A`` is no longer independent of the data (LoRA-FA's
is). The KS statistic against the Beta law measures how far a run is from that idealisation; it is a
description, not a test with independent samples (fractions of different layers of one record are
dependent).

Subspace used: PEFT's ``lora_A`` for LoRA methods; the fixed ``A`` for compressed DP-SGD with a fixed
projection; otherwise a random ``A`` with N(0, 1/r) entries drawn once per run (fixed across epochs).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from .losses import per_sequence_loss

__all__ = ["retained_fraction_cdf", "measure_influence", "projector"]


def retained_fraction_cdf(x: np.ndarray, *, d: int, r: int) -> tuple[np.ndarray, str]:
    """CDF of Beta(r/2, (d−r)/2) from ``lowrankdp.influence``, with the name of its source."""
    from lowrankdp import influence as inf

    return (np.asarray(inf.retained_fraction_cdf(np.asarray(x, dtype=float), d=d, r=r), dtype=float),
            "lowrankdp.influence.retained_fraction_cdf")


def projector(A: torch.Tensor) -> torch.Tensor:
    """Orthogonal projector onto the row space of ``A`` (``d_in x d_in``), computed by QR in float64."""
    q, _ = torch.linalg.qr(A.detach().double().T)  # d_in x r, orthonormal columns
    return q @ q.T


def _ks(x: np.ndarray, cdf_fn) -> tuple[float, float]:
    from scipy import stats

    res = stats.kstest(x, cdf_fn)
    return float(res.statistic), float(res.pvalue)


def measure_influence(
    model: nn.Module,
    layers: dict[str, nn.Linear],
    subspaces: dict[str, torch.Tensor],
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    rank: int,
    subspace_kind: str,
) -> dict[str, Any]:
    """Per-example decomposition for the given records (rows of ``input_ids``), one at a time.

    ``layers``: name -> the ``nn.Linear`` holding the full weight ``W`` (PEFT's ``base_layer`` for LoRA);
    ``subspaces``: name -> ``A`` (``r x d_in``). Returns a JSON-able summary grouped by ``d_in``.
    """
    was_training = model.training
    model.eval()  # no dropout: the gradient of the record itself
    weights = {n: m.weight for n, m in layers.items()}
    req = {n: w.requires_grad for n, w in weights.items()}
    for w in weights.values():
        w.requires_grad_(True)
    projs = {n: projector(A).to(weights[n].device) for n, A in subspaces.items()}
    fracs: dict[int, list[float]] = {}
    full_norms, sub_norms, totals_full, totals_sub = [], [], [], []
    catcher = warnings.catch_warnings()
    catcher.__enter__()
    warnings.filterwarnings("ignore", message=".*Full backward hook is firing.*")  # opacus hooks (disabled)
    try:
        for i in range(input_ids.shape[0]):
            ids, att = input_ids[i:i + 1], attention_mask[i:i + 1]
            n_real = int(att.sum())
            ids, att = ids[:, :n_real], att[:, :n_real]
            with torch.enable_grad():
                out = model(input_ids=ids, attention_mask=att, use_cache=False)
                logits = out.logits if hasattr(out, "logits") else out[0]
                loss = per_sequence_loss(logits, ids, att).sum()
                names = list(weights)
                grads = torch.autograd.grad(loss, [weights[n] for n in names], allow_unused=True)
            tf, ts = 0.0, 0.0
            for n, g in zip(names, grads):
                if g is None:
                    continue
                g = g.double()
                full = float(torch.linalg.norm(g))
                sub = float(torch.linalg.norm(g @ projs[n]))
                full_norms.append(full)
                sub_norms.append(sub)
                tf += full ** 2
                ts += sub ** 2
                if full > 0:
                    fracs.setdefault(int(g.shape[1]), []).append(min(1.0, (sub / full) ** 2))
            totals_full.append(tf ** 0.5)
            totals_sub.append(ts ** 0.5)
    finally:
        catcher.__exit__(None, None, None)
        for n, w in weights.items():
            w.requires_grad_(req[n])
        model.train(was_training)
    groups = {}
    source = None
    for d, xs in sorted(fracs.items()):
        x = np.asarray(xs)
        entry: dict[str, Any] = {"n": int(x.size), "mean_fraction": float(x.mean()), "beta_mean": rank / d,
                                 "median_fraction": float(np.median(x))}
        if rank < d and x.size >= 2:
            def cdf(v, d=d):
                return retained_fraction_cdf(v, d=d, r=rank)[0]
            entry["ks_statistic"], entry["ks_pvalue"] = _ks(x, cdf)
            source = retained_fraction_cdf(np.array([0.5]), d=d, r=rank)[1]
        else:
            entry["ks_statistic"] = entry["ks_pvalue"] = None
        groups[str(d)] = entry
    max_ratio = max((s / f for s, f in zip(sub_norms, full_norms) if f > 0), default=None)
    return {
        "records": int(input_ids.shape[0]),
        "rank": rank,
        "subspace": subspace_kind,
        "mean_full_norm": float(np.mean(totals_full)) if totals_full else None,
        "mean_subspace_norm": float(np.mean(totals_sub)) if totals_sub else None,
        "max_layer_norm_ratio": max_ratio,  # ≤ 1 by [RPUE] Thm 1 (up to rounding)
        "by_d_in": groups,
        "beta_law_source": source,
        "note": "retained fraction ||G P_A||^2/||G||^2 per record and layer vs Beta(r/2,(d_in-r)/2); "
                "KS is descriptive (fractions within a record are dependent)",
    }
