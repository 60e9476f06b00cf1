"""Membership attack on a network fine-tuned with LoRA-FA (torch layer).

Source: ``[LRP]`` arXiv:2601.21719 (v1), §"LoRA as a projection mechanism" and its LoRA-FA experiment
(docs/theory.md §3, §5). The paper's attack statistic is not available to us (docs/theory.md §3); the attack
here is our own design, stated below.

Setting
-------
- Data: scikit-learn's ``digits`` (1,797 8×8 images, shipped with the package, no download), features
  scaled to [0, 1]. Fixed disjoint splits: public (pre-training), private training records ``D``, a pool
  of candidate targets, and a test set.
- Model: MLP ``64 → hidden → 10`` (ReLU). Initial weights ``W0``: pre-trained on the public split
  (deterministic, full-batch Adam), then frozen.
- LoRA-FA on the first layer (``d_in = 64``, so ranks 1..64): ``W = W0 + (α/r)·B·A`` with ``A ∈ R^{r×64}``
  i.i.d. N(0, 1/r) set by this module (PEFT's initialisations do not give that — docs/theory.md §5; checked
  with a KS test, ``ks_entries_pvalue``), frozen; ``B`` (zero at start) trained by full-batch gradient
  descent for ``steps`` steps on ``D`` (members: ``D ∪ {target}``). The head stays at its pre-trained value.
- Optional DP: each example's gradient on ``B``, ``(α/r)·δ_i (A x_i)ᵀ``, is clipped to norm ``clip``,
  summed, and Gaussian noise N(0, (σ·clip)²) is added to every entry (DP-SGD on ``B``, sampling rate 1).
- Released artefact: the merged first-layer weight ``W0 + (α/r)·B·A`` (``A`` and ``B`` not released).

Threat model (``LORA_FA_THREAT``): the attacker knows the initial weights ``W0`` (the whole pre-trained
network), every training record other than the target, the target record, and the training recipe
(learning rate, α, r, steps, clip, σ, loss normalisation), but **not** ``A`` and not the noise. It decides
whether the target was in ``D``. Each trial is a fresh training run with a fresh ``A`` (and fresh noise).

Attack (our design): after one step from ``B = 0``,
``ΔW = −η(α/r)²·G·AᵀA / N`` with ``G = Σ_i ∇_W ℓ_i`` at ``W0`` (docs/theory.md §5), i.e. ``ΔWᵀ = c·M·Gᵀ`` — the
matrix mechanism with query ``V = Gᵀ`` (64 × hidden). The attacker computes ``G_in`` (with the target)
and ``G_out`` (without) exactly, because it knows ``W0`` and the other records, and applies the symmetry
test (docs/theory.md §3.1): ``V_inᵀ ΔWᵀ`` is symmetric under the member hypothesis. Score
``log a(V_out) − log a(V_in)`` (``lowrankdp.attacks.matrix.symmetry_score``; higher = member). For
``steps > 1`` the attacker does not know the trajectory; it approximates ``Σ_t G_t`` by gradients at the
linear interpolation ``W0 + (t/T)(W_T − W0)``, t = 0..T−1 (an approximation: the score is then no longer
exact). With DP clipping (one step), the clip factors of records that may be clipped depend on ``‖A x_i‖``
(unknown); they become free coefficients fitted by least squares (``_clip_robust_scores``), and the target's
own factor is estimated with ``‖A x‖ ≈ ‖x‖`` (``E‖Ax‖² = ‖x‖²``), as are all factors for ``steps > 1``.

Accountant: DP-SGD on ``B`` with sampling rate 1, ``steps`` steps, noise multiplier σ, add/remove one
record — the plain Gaussian accountant (``lowrankdp.accounting.epsilon(projection="none")``). The random
``A`` earns no credit: clipping is applied to the already-projected gradient, so the sensitivity in
``B``-space is ``clip`` whatever ``A`` is (docs/theory.md §4.2–§4.4 describe noise added *before* a projection).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from scipy import stats

from ._result import attack_fields
from .._validate import check_choice, check_int, check_real
from . import matrix as _mx

__all__ = [
    "LORA_FA_THREAT",
    "LoraFAConfig",
    "LoraFAResult",
    "DigitsSplits",
    "load_digits_splits",
    "pretrained_base",
    "set_lora_fa_A",
    "ks_entries_pvalue",
    "lora_fa_train",
    "attack_scores",
    "run_lora_fa_attack",
    "first_step_delta",
    "replay_scores",
    "LORA_FA_DISTINGUISHERS",
]

LORA_FA_DISTINGUISHERS = ("auto", "symmetry", "replay")

LORA_FA_THREAT = _mx.ThreatModel(knows_projection=False, knows_other_records=True, knows_initial_weights=True)

_DTYPE = torch.float64


@dataclass(frozen=True)
class DigitsSplits:
    public_x: torch.Tensor
    public_y: torch.Tensor
    train_x: torch.Tensor  # D: the other records (known to the attacker)
    train_y: torch.Tensor
    pool_x: torch.Tensor  # candidate targets (disjoint from D)
    pool_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


@lru_cache(maxsize=4)
def load_digits_splits(*, train_size: int = 600, pool_size: int = 200, test_size: int = 400, seed: int = 0) -> DigitsSplits:
    """Deterministic disjoint splits of scikit-learn's digits (the rest is the public pre-training split)."""
    from sklearn.datasets import load_digits

    train_size = check_int("train_size", train_size, minimum=2)
    pool_size = check_int("pool_size", pool_size, minimum=1)
    test_size = check_int("test_size", test_size, minimum=1)
    x, y = load_digits(return_X_y=True)
    n_public = x.shape[0] - train_size - pool_size - test_size
    if n_public < 100:
        raise ValueError(
            f"train_size + pool_size + test_size must leave >= 100 of the {x.shape[0]} digits for pre-training, "
            f"got {train_size} + {pool_size} + {test_size}"
        )
    perm = np.random.default_rng([seed, 1797]).permutation(x.shape[0])
    xt = torch.tensor(x[perm] / 16.0, dtype=_DTYPE)
    yt = torch.tensor(y[perm], dtype=torch.long)
    cuts = np.cumsum([n_public, train_size, pool_size])
    parts = [slice(0, cuts[0]), slice(cuts[0], cuts[1]), slice(cuts[1], cuts[2]), slice(cuts[2], None)]
    return DigitsSplits(*(t for s in parts for t in (xt[s], yt[s])))


class MLP(torch.nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(64, hidden)
        self.fc2 = torch.nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


@lru_cache(maxsize=4)
def _pretrained_state(hidden: int, seed: int, epochs: int) -> dict[str, torch.Tensor]:
    splits = load_digits_splits(seed=seed)
    g = torch.Generator().manual_seed(seed)
    model = MLP(hidden).to(_DTYPE)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=_DTYPE) * (1.0 / math.sqrt(p.shape[-1])))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(splits.public_x), splits.public_y).backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def pretrained_base(*, hidden: int = 128, seed: int = 0, epochs: int = 100) -> MLP:
    """The initial weights ``W0``: an MLP pre-trained on the public split (deterministic; float64)."""
    hidden = check_int("hidden", hidden, minimum=1)
    model = MLP(hidden).to(_DTYPE)
    model.load_state_dict(_pretrained_state(hidden, seed, epochs))
    return model


def set_lora_fa_A(lora_a: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Overwrite ``lora_A`` (shape ``r × d_in``, or a batch ``(..., r, d_in)``) in place with i.i.d.
    N(0, 1/r) entries, so that ``AᵀA ~ W_d(I/r, r)`` (docs/theory.md §0, §5). Returns the tensor."""
    r = lora_a.shape[-2]
    with torch.no_grad():
        lora_a.copy_(torch.randn(lora_a.shape, generator=generator, dtype=lora_a.dtype) / math.sqrt(r))
    return lora_a


def ks_entries_pvalue(a: torch.Tensor | np.ndarray, *, r: int) -> float:
    """KS test p-value of the entries of ``A`` against N(0, 1/r) (the Wishart correspondence's premise)."""
    r = check_int("r", r, minimum=1)
    x = np.asarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a, dtype=float).ravel()
    return float(stats.kstest(x * math.sqrt(r), "norm").pvalue)


@dataclass(frozen=True)
class LoraFAConfig:
    """One LoRA-FA membership experiment. Validated on construction (``ValueError`` naming the field)."""

    rank: int = 16
    alpha: float | None = None  # default: alpha = rank (scaling α/r = 1)
    hidden: int = 128
    steps: int = 1
    lr: float = 1.0
    sigma: float = 0.0  # noise multiplier (0: no clipping, no noise)
    clip: float = 0.5
    trials: int = 200  # training runs per side
    train_size: int = 600
    pool_size: int = 200
    delta: float = 1e-5
    seed: int = 0
    chunk: int = 50
    n_bootstrap: int = 200
    threat: _mx.ThreatModel = field(default_factory=lambda: LORA_FA_THREAT)
    distinguisher: str = "auto"  # "auto": symmetry for one step, replay for more; or "symmetry" / "replay"
    sampling_rate: float = 1.0  # < 1: Poisson batches (each record in each step with this probability)
    replay_iters: int = 40

    def __post_init__(self) -> None:
        dist = check_choice("distinguisher", self.distinguisher, LORA_FA_DISTINGUISHERS)
        if dist == "auto":
            dist = "symmetry" if self.steps == 1 else "replay"
        object.__setattr__(self, "distinguisher", dist)
        object.__setattr__(self, "sampling_rate", check_real("sampling_rate", self.sampling_rate, lo=0.0, hi=1.0,
                                                             lo_open=True))
        object.__setattr__(self, "replay_iters", check_int("replay_iters", self.replay_iters, minimum=1))
        vals = dict(
            rank=check_int("rank", self.rank, minimum=1, maximum=64),
            hidden=check_int("hidden", self.hidden, minimum=1),
            steps=check_int("steps", self.steps, minimum=1),
            lr=check_real("lr", self.lr, lo=0.0, lo_open=True),
            sigma=check_real("sigma", self.sigma, lo=0.0),
            clip=check_real("clip", self.clip, lo=0.0, lo_open=True),
            trials=check_int("trials", self.trials, minimum=2),
            train_size=check_int("train_size", self.train_size, minimum=2),
            pool_size=check_int("pool_size", self.pool_size, minimum=1),
            delta=check_real("delta", self.delta, lo=0.0, hi=1.0, lo_open=True, hi_open=True),
            seed=check_int("seed", self.seed, minimum=0),
            chunk=check_int("chunk", self.chunk, minimum=1),
            n_bootstrap=check_int("n_bootstrap", self.n_bootstrap, minimum=0),
        )
        alpha = float(vals["rank"]) if self.alpha is None else check_real("alpha", self.alpha, lo=0.0, lo_open=True)
        vals["alpha"] = alpha
        for k, v in vals.items():
            object.__setattr__(self, k, v)
        if not isinstance(self.threat, _mx.ThreatModel):
            raise ValueError(f"threat must be a ThreatModel, got {self.threat!r}")
        t = self.threat
        if t.knows_projection:
            raise ValueError("threat.knows_projection must be False for the LoRA-FA experiment: A is not released")
        if not (t.knows_other_records and t.knows_initial_weights):
            raise ValueError(
                "the LoRA-FA attack needs threat.knows_other_records=True and threat.knows_initial_weights=True "
                "(it recomputes the training gradient with and without the target at W0)"
            )

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("rank", "alpha", "hidden", "steps", "lr", "sigma", "clip", "trials",
                                              "train_size", "pool_size", "delta", "seed", "chunk", "n_bootstrap",
                                              "distinguisher", "sampling_rate", "replay_iters")}
        out["threat"] = self.threat.to_dict()
        return out


def _per_example_delta(h_pre: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward from the first layer's pre-activation; returns (logits, δ = ∂ℓ_i/∂h_pre_i per example)."""
    h_pre = h_pre.detach().requires_grad_(True)
    logits = torch.relu(h_pre) @ w2.T + b2
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
    (delta,) = torch.autograd.grad(loss, h_pre)
    return logits.detach(), delta


def lora_fa_train(
    base: MLP,
    x: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    a: torch.Tensor,
    *,
    scaling: float,
    lr: float,
    steps: int,
    n_norm: int,
    sigma: float = 0.0,
    clip: float | None = None,
    generator: torch.Generator | None = None,
    sampling_rate: float = 1.0,
) -> torch.Tensor:
    """Train ``K`` independent LoRA-FA adapters on the first layer of ``base`` at once; returns ``B`` (K, h, r).

    ``x`` (K, N, 64), ``y`` (K, N), ``weights`` (K, N) in {0, 1} (which records each run trains on), ``a``
    (K, r, 64) frozen. Full-batch gradient descent on ``Σ_i w_i ℓ_i / n_norm``; the gradient on ``B`` is
    assembled from per-example terms ``scaling·δ_i (A x_i)ᵀ`` so that clipping (``clip``) and Gaussian noise
    (std ``sigma·clip`` per entry of the summed gradient) are DP-SGD on ``B``. ``sampling_rate < 1``: Poisson
    batches — each record enters each step's sum independently with that probability (pass the expected batch
    size as ``n_norm``).
    """
    w1, b1 = base.fc1.weight.detach(), base.fc1.bias.detach()
    w2, b2 = base.fc2.weight.detach(), base.fc2.bias.detach()
    k, _, _ = x.shape
    r = a.shape[1]
    b = torch.zeros(k, w1.shape[0], r, dtype=x.dtype)
    ax = x @ a.transpose(1, 2)  # (K, N, r): A x_i, fixed (A is frozen)
    base_pre = x @ w1.T + b1
    for _ in range(steps):
        h_pre = base_pre + scaling * ax @ b.transpose(1, 2)
        _, delta = _per_example_delta(h_pre, w2, b2, y)
        coef = weights
        if sampling_rate < 1.0:
            coef = coef * (torch.rand(weights.shape, generator=generator, dtype=weights.dtype) < sampling_rate)
        if clip is not None:
            norms = scaling * delta.norm(dim=-1) * ax.norm(dim=-1)  # ‖scaling·δ_i (A x_i)ᵀ‖_F (rank one)
            coef = coef * torch.clamp(clip / torch.clamp(norms, min=1e-300), max=1.0)
        grad = scaling * torch.einsum("kn,knh,knr->khr", coef, delta, ax)
        if sigma > 0:
            if clip is None:
                raise ValueError("clip must be set when sigma > 0")
            grad = grad + sigma * clip * torch.randn(grad.shape, generator=generator, dtype=grad.dtype)
        b = b - lr * grad / n_norm
    return b


def _gradient_at(w1: torch.Tensor, base: MLP, x: torch.Tensor, y: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """``Σ_i coef_i ∇_{W1} ℓ_i`` at first-layer weights ``w1`` (K, h, 64); x (K, N, 64) → (K, h, 64)."""
    h_pre = x @ w1.transpose(1, 2) + base.fc1.bias.detach()
    _, delta = _per_example_delta(h_pre, base.fc2.weight.detach(), base.fc2.bias.detach(), y)
    return torch.einsum("kn,knh,knd->khd", coef, delta, x)


def _clip_coef(cfg: LoraFAConfig, delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The attacker's estimate of the clip factors: ``‖A x‖ ≈ ‖x‖`` (``E‖Ax‖² = ‖x‖²``; A is unknown)."""
    approx = cfg.scaling * delta.norm(dim=-1) * x.norm(dim=-1)
    return torch.clamp(cfg.clip / torch.clamp(approx, min=1e-300), max=1.0)


def _gradient_w0(cfg: LoraFAConfig, base: MLP, x: torch.Tensor, y: torch.Tensor, coef_w: torch.Tensor,
                 target_index: int) -> torch.Tensor:
    """``Σ_i coef_i ∇_{W1} ℓ_i`` at ``W0`` when all runs share the non-target rows (computed once)."""
    k, n, _ = x.shape
    w0 = base.fc1.weight.detach()[None]
    others = [i for i in range(n) if i != target_index]
    rows = torch.cat([x[:1, others], x[:, target_index][None]], dim=1)  # (1, n-1+K, 64)
    labels = torch.cat([y[:1, others], y[:, target_index][None]], dim=1)
    h_pre = rows @ w0.transpose(1, 2) + base.fc1.bias.detach()
    _, delta = _per_example_delta(h_pre, base.fc2.weight.detach(), base.fc2.bias.detach(), labels)
    c = torch.ones(rows.shape[:2], dtype=x.dtype)
    if cfg.sigma > 0:
        c = _clip_coef(cfg, delta, rows)
    m = len(others)
    g_others = torch.einsum("n,nh,nd->hd", c[0, :m] * coef_w[0, others], delta[0, :m], rows[0, :m])
    g_target = torch.einsum("k,kh,kd->khd", c[0, m:] * coef_w[:, target_index], delta[0, m:], rows[0, m:])
    return g_others[None] + g_target


def _clip_robust_scores(cfg: LoraFAConfig, base: MLP, delta_w: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                        target_index: int) -> np.ndarray:
    """One-step symmetry test when per-example clipping is on and ``A`` is unknown.

    A record's clip factor ``min(1, clip/(s‖δ_i‖‖Ax_i‖))`` depends on ``‖Ax_i‖``, which the attacker does not
    know. Records that cannot be clipped whatever ``A`` is (``s‖δ_i‖‖x_i‖·q < clip`` with ``q`` the
    1 − 1e-6 quantile of ``‖Ax‖/‖x‖ ~ √(χ²_r/r)``) get factor 1; for the others the factor is a free
    unknown. The antisymmetric part of ``G·ΔWᵀ`` is linear in those unknowns (each record's term
    ``δ_i (ΔW x_i)ᵀ`` is rank one), so each hypothesis is scored by the least-squares residual of
    ``antisym(G·ΔWᵀ) = 0`` over them. The target's factor is fixed at the estimate ``‖Ax‖ ≈ ‖x‖`` (leaving
    it free would make the member model contain the non-member one). Score ``log res_out − log res_in``.
    """
    k, n, _ = x.shape
    others = [i for i in range(n) if i != target_index]
    w0 = base.fc1.weight.detach()[None]
    rows = torch.cat([x[:1, others], x[:, target_index][None]], dim=1)
    labels = torch.cat([y[:1, others], y[:, target_index][None]], dim=1)
    h_pre = rows @ w0.transpose(1, 2) + base.fc1.bias.detach()
    _, delta = _per_example_delta(h_pre, base.fc2.weight.detach(), base.fc2.bias.detach(), labels)
    delta, rows = delta[0], rows[0]
    approx = cfg.scaling * delta.norm(dim=-1) * rows.norm(dim=-1)
    q_hi = math.sqrt(stats.chi2.ppf(1 - 1e-6, cfg.rank) / cfg.rank)
    m = len(others)
    free = torch.nonzero(approx[:m] * q_hi > cfg.clip).flatten()
    fixed = torch.ones(m, dtype=x.dtype)
    fixed[free] = 0.0
    g_fixed = torch.einsum("n,nh,nd->hd", fixed, delta[:m], rows[:m])  # (h, 64)
    c_t = torch.clamp(cfg.clip / torch.clamp(approx[m:], min=1e-300), max=1.0)  # (K,)
    g_t = c_t[:, None, None] * delta[m:, :, None] * rows[m:, None, :]  # (K, h, 64)
    yt = delta_w.transpose(1, 2)  # (K, 64, h) = ΔWᵀ
    # For P = G·ΔWᵀ (h×h) and unknowns c_j with terms δ_j b_jᵀ (b_j = ΔW x_j), minimise
    # ‖antisym(P) + Σ_j c_j antisym(δ_j b_jᵀ)‖² in closed form through f×f Gram matrices (batched over runs):
    # ⟨antisym(δ_j b_jᵀ), antisym(δ_l b_lᵀ)⟩ = 2[(δ_j·δ_l)(b_j·b_l) − (δ_j·b_l)(b_j·δ_l)],
    # ⟨antisym(δ_j b_jᵀ), antisym(P)⟩ = 2(δ_jᵀ P b_j − b_jᵀ P δ_j).
    d_f = delta[free]  # (f, h)
    b_f = rows[free] @ yt  # (K, f, h)
    if free.numel():
        dd = d_f @ d_f.T
        db = d_f @ b_f.transpose(1, 2)  # (K, f, f): δ_j·b_l
        gram = 2.0 * (dd * (b_f @ b_f.transpose(1, 2)) - db * db.transpose(1, 2))
        scale = torch.clamp(torch.diagonal(gram, dim1=1, dim2=2).amax(dim=1), min=1e-300)[:, None, None]
    res = {}
    for hyp, g in (("in", g_fixed + g_t), ("out", g_fixed.expand(k, -1, -1))):
        pm = g @ yt  # (K, h, h)
        anti = pm - pm.transpose(1, 2)
        r2 = (anti * anti).sum(dim=(1, 2))
        if free.numel():
            u = 2.0 * (torch.einsum("fh,khg,kfg->kf", d_f, pm, b_f) - torch.einsum("kfh,khg,fg->kf", b_f, pm, d_f))
            sol = torch.linalg.lstsq(gram / scale, (u[:, :, None] / scale), rcond=1e-12).solution[:, :, 0]
            r2 = r2 - (sol * u).sum(dim=1)  # ‖rhs‖² − uᵀ Gram⁺ u
        res[hyp] = torch.sqrt(torch.clamp(r2, min=0.0)) / torch.clamp(pm.norm(dim=(1, 2)), min=1e-300)
    return (torch.log(res["out"] + 1e-300) - torch.log(res["in"] + 1e-300)).numpy()


def _sym_basis(r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs (a ≤ b) of the r(r+1)/2 free entries of a symmetric r×r matrix."""
    ia, ib = torch.triu_indices(r, r)
    return ia, ib


def _replay(cfg: LoraFAConfig, base: MLP, x: torch.Tensor, y: torch.Tensor, coef_w: torch.Tensor, m: torch.Tensor,
            n_norm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Replay full-batch LoRA-FA training under ``M = AᵀA`` (K, 64, 64): ``W_{t+1} = W_t − c·G_t·M`` with
    ``c = η s²/n_norm`` and ``G_t = Σ_i coef_i δ_i x_iᵀ`` at ``W_t`` (per-example clip factors use
    ``‖A x_i‖ = (x_iᵀ M x_i)^½``, known given M). Returns ``(W_T − W0, Σ_t G_t)``."""
    w0 = base.fc1.weight.detach()
    c = cfg.lr * cfg.scaling ** 2 / n_norm
    w = w0.expand(x.shape[0], -1, -1).clone()
    gamma = torch.zeros_like(w)
    for _ in range(cfg.steps):
        h_pre = x @ w.transpose(1, 2) + base.fc1.bias.detach()
        _, delta = _per_example_delta(h_pre, base.fc2.weight.detach(), base.fc2.bias.detach(), y)
        coef = coef_w
        if cfg.sigma > 0:
            ax_norm = torch.sqrt(torch.clamp(torch.einsum("knd,kde,kne->kn", x, m, x), min=0.0))
            norms = cfg.scaling * delta.norm(dim=-1) * ax_norm
            coef = coef * torch.clamp(cfg.clip / torch.clamp(norms, min=1e-300), max=1.0)
        g = torch.einsum("kn,knh,knd->khd", coef, delta, x)
        gamma = gamma + g
        w = w - c * g @ m
    return w - w0, gamma


def replay_scores(cfg: LoraFAConfig, base: MLP, released_w1: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                  target_index: int) -> np.ndarray:
    """Replay attack for any number of steps (scores: higher = member).

    Training depends on ``A`` only through ``M = AᵀA`` (``W_{t+1} = W_t − c·G(W_t)·M``), and the release
    ``ΔW = W_T − W0 = −c·(Σ_t G_t)·M`` has row space ``row(A)``. The attacker reads an orthonormal basis
    ``U`` (64 × r) of that row space from the SVD of ``ΔW``, so ``M = U S Uᵀ`` with ``S`` symmetric: only
    r(r+1)/2 unknowns. Under each hypothesis (target in / out) it fits ``S`` by alternating least squares —
    replay training under the current ``S`` to get ``Γ = Σ_t G_t``, then solve the linear problem
    ``ΔW·U = −c·Γ·U·S`` for symmetric ``S`` — and scores ``log res_out − log res_in`` with
    ``res = ‖ΔW − ΔW_replay(S)‖/‖ΔW‖``. The expected batch is replayed (Poisson batches are unknown to
    the attacker: ``coef = q``); the noise is not (it is unknown)."""
    k, n, _ = x.shape
    r = cfg.rank
    q = cfg.sampling_rate
    n_norm = q * cfg.train_size
    c = cfg.lr * cfg.scaling ** 2 / n_norm
    w0 = base.fc1.weight.detach()
    delta_w = released_w1 - w0
    _, _, vh = torch.linalg.svd(delta_w, full_matrices=False)
    u = vh[:, :r, :].transpose(1, 2)  # (K, 64, r)
    ia, ib = _sym_basis(r)
    y_proj = delta_w @ u  # (K, h, r)
    dw_norm = torch.clamp(delta_w.norm(dim=(1, 2)), min=1e-300)
    res = {}
    for hyp, included in (("in", 1.0), ("out", 0.0)):
        coef_w = torch.full((k, n), q, dtype=x.dtype)
        coef_w[:, target_index] = q * included
        # start: the gradient at W0 for every step (exact for one step without clipping)
        m0 = u @ u.transpose(1, 2)
        _, g0 = _replay(dataclass_replace_steps(cfg, 1), base, x, y, coef_w, m0, n_norm)
        gamma = cfg.steps * g0
        best = torch.full((k,), math.inf, dtype=x.dtype)
        # Fixed-point iteration S ← F(S) (replay, then the linear solve), with Anderson acceleration (history
        # ≤ 5) because the plain iteration contracts slowly once the trajectory depends on S.
        hist_x: list[torch.Tensor] = []
        hist_g: list[torch.Tensor] = []
        xk = None
        stalled = 0
        for _ in range(cfg.replay_iters):
            fx = _solve_sym(-c * gamma @ u, y_proj, ia, ib)
            if xk is None:
                xk = fx
            else:
                gk = fx - xk
                hist_x.append(xk.clone())
                hist_g.append(gk.clone())
                if len(hist_x) > 6:  # restarted Anderson: a stale history can stall it
                    hist_x, hist_g = hist_x[-1:], hist_g[-1:]
                if len(hist_x) >= 2:
                    dx = torch.stack([hist_x[i + 1] - hist_x[i] for i in range(len(hist_x) - 1)], dim=2)
                    dg = torch.stack([hist_g[i + 1] - hist_g[i] for i in range(len(hist_g) - 1)], dim=2)
                    gam = torch.linalg.lstsq(dg, gk[:, :, None]).solution
                    xk = xk + gk - ((dx + dg) @ gam)[:, :, 0]
                else:
                    xk = fx
            s_mat = torch.zeros(k, r, r, dtype=x.dtype)
            s_mat[:, ia, ib] = xk
            s_mat[:, ib, ia] = xk
            m = u @ s_mat @ u.transpose(1, 2)
            pred, gamma = _replay(cfg, base, x, y, coef_w, m, n_norm)
            prev = best
            best = torch.minimum(best, (pred - delta_w).norm(dim=(1, 2)) / dw_norm)
            stalled = stalled + 1 if bool(torch.all((best > 0.99 * prev) | (best < 1e-13))) else 0
            if stalled >= 6:  # every run has converged to rounding level or stopped improving
                break
        res[hyp] = best
    return (torch.log(res["out"] + 1e-300) - torch.log(res["in"] + 1e-300)).numpy()


def _solve_sym(p: torch.Tensor, target: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor) -> torch.Tensor:
    """Least-squares symmetric ``S`` (its upper-triangle entries) with ``P·S ≈ target``, batched."""
    k, h, r = p.shape
    idx = torch.arange(ia.numel())
    cols = torch.zeros(k, h, r, ia.numel(), dtype=p.dtype)
    cols[:, :, ib, idx] += p[:, :, ia]  # column b of P·E_ab holds P[:, a]
    off = ia != ib
    cols[:, :, ia[off], idx[off]] += p[:, :, ib[off]]
    return torch.linalg.lstsq(cols.reshape(k, -1, ia.numel()), target.reshape(k, -1, 1)).solution[:, :, 0]


def dataclass_replace_steps(cfg: LoraFAConfig, steps: int) -> LoraFAConfig:
    """``cfg`` with another number of steps (validation re-run)."""
    import dataclasses

    return dataclasses.replace(cfg, steps=steps, distinguisher="replay")


def attack_scores(
    cfg: LoraFAConfig,
    base: MLP,
    released_w1: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    target_index: int,
) -> np.ndarray:
    """Symmetry-test scores (higher = member) for released first-layer weights ``released_w1`` (K, h, 64).

    ``x``/``y`` (K, N, ·) hold the other records and the target at position ``target_index`` of each run.
    The attacker uses only ``W0``, the records, the recipe and the release (module docstring)."""
    if cfg.distinguisher == "replay":
        return replay_scores(cfg, base, released_w1, x, y, target_index)
    w0 = base.fc1.weight.detach()
    k, n, _ = x.shape
    delta_w = released_w1 - w0
    others = [i for i in range(n) if i != target_index]
    shared = bool(torch.equal(x[:, others], x[:1, others].expand(k, -1, -1)))
    if cfg.sigma > 0 and cfg.steps == 1 and shared:
        return _clip_robust_scores(cfg, base, delta_w, x, y, target_index)
    grads = {}
    for hyp, included in (("in", 1.0), ("out", 0.0)):
        coef_w = torch.ones(k, n, dtype=x.dtype)
        coef_w[:, target_index] = included
        total = torch.zeros_like(delta_w)
        for t in range(cfg.steps):
            if t == 0 and shared:
                # at W0 every run has the same weights: the other records' gradient is computed once
                total = total + _gradient_w0(cfg, base, x, y, coef_w, target_index)
                continue
            w_t = w0 + (t / cfg.steps) * delta_w
            coef = coef_w
            if cfg.sigma > 0:
                h_pre = x @ w_t.transpose(1, 2) + base.fc1.bias.detach()
                _, delta = _per_example_delta(h_pre, base.fc2.weight.detach(), base.fc2.bias.detach(), y)
                coef = coef_w * _clip_coef(cfg, delta, x)
            total = total + _gradient_at(w_t, base, x, y, coef)
        grads[hyp] = total
    # ΔWᵀ = c·M·Gᵀ (c < 0 is irrelevant to symmetry): query V = Gᵀ (64 × h), output Y = ΔWᵀ.
    yv = delta_w.transpose(1, 2).numpy()[:, None]
    scores = np.empty(k)
    for i in range(k):
        pair = _mx.NeighbouringPair(grads["in"][i].T.numpy(), grads["out"][i].T.numpy())
        scores[i] = _mx.symmetry_score(yv[i:i + 1], pair)[0]
    return scores


@dataclass(frozen=True, eq=False)
class LoraFAResult:
    config: LoraFAConfig
    scores_in: np.ndarray = field(repr=False)
    scores_out: np.ndarray = field(repr=False)
    report: Any
    test_accuracy: float
    test_accuracy_in: float
    base_test_accuracy: float
    accountant: dict[str, Any]
    ks_pvalue: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        rep = self.report.to_dict()
        return {
            **attack_fields("lora-fa", rep, self.accountant),
            "test_accuracy": self.test_accuracy,
            "test_accuracy_members_runs": self.test_accuracy_in,
            "base_test_accuracy": self.base_test_accuracy,
            "ks_pvalue_A_entries": self.ks_pvalue,
            "config": self.config.to_dict(),
            "seconds": self.seconds,
            "roc": rep["roc"],
        }


def _accountant(cfg: LoraFAConfig) -> dict[str, Any]:
    if cfg.sigma == 0:
        return {"epsilon": None, "accountant": None,
                "note": "noise-free LoRA-FA: no accountant ([LRP] Thm 2: the matrix mechanism is not private)"}
    note = (f"DP-SGD on B: per-example clip {cfg.clip:g}, noise multiplier {cfg.sigma:g}, "
            f"sampling rate {cfg.sampling_rate:g}, "
            f"{cfg.steps} step(s), add/remove; no credit for the random A (clipping after the projection)")
    from .. import accounting as _acc

    eps = float(_acc.epsilon(noise_multiplier=cfg.sigma, sampling_rate=cfg.sampling_rate, steps=cfg.steps,
                             delta=cfg.delta, projection="none"))
    name = "lowrankdp.accounting (rdp, projection='none')"
    return {"epsilon": eps, "accountant": name, "note": note}


def run_lora_fa_attack(cfg: LoraFAConfig) -> LoraFAResult:
    """``cfg.trials`` training runs per side (members: ``D ∪ {target}``; non-members: ``D``), each with a fresh
    ``A``; the attack of the module docstring on every released weight; AUC etc. and test accuracy."""
    from ..metrics import attack_report

    if not isinstance(cfg, LoraFAConfig):
        raise ValueError(f"cfg must be a LoraFAConfig, got {type(cfg).__name__}")
    t0 = time.perf_counter()
    splits = load_digits_splits(train_size=cfg.train_size, pool_size=cfg.pool_size, seed=0)
    base = pretrained_base(hidden=cfg.hidden, seed=0)
    with torch.no_grad():
        base_acc = float((base(splits.test_x).argmax(-1) == splits.test_y).double().mean())
    gen = torch.Generator().manual_seed(cfg.seed)
    n = cfg.train_size
    scores: dict[bool, list[np.ndarray]] = {True: [], False: []}
    accs: dict[bool, list[torch.Tensor]] = {True: [], False: []}
    ks_p = math.nan
    for member in (True, False):
        done = 0
        while done < cfg.trials:
            k = min(cfg.chunk, cfg.trials - done)
            targets = torch.randint(0, splits.pool_x.shape[0], (k,), generator=gen)
            x = torch.cat([splits.train_x.expand(k, -1, -1), splits.pool_x[targets][:, None]], dim=1)
            y = torch.cat([splits.train_y.expand(k, -1), splits.pool_y[targets][:, None]], dim=1)
            weights = torch.ones(k, n + 1, dtype=_DTYPE)
            weights[:, n] = 1.0 if member else 0.0
            a = torch.empty(k, cfg.rank, 64, dtype=_DTYPE)
            set_lora_fa_A(a, generator=gen)
            if math.isnan(ks_p):
                ks_p = ks_entries_pvalue(a[0], r=cfg.rank)
            b = lora_fa_train(base, x, y, weights, a, scaling=cfg.scaling, lr=cfg.lr, steps=cfg.steps,
                              n_norm=cfg.sampling_rate * n, sigma=cfg.sigma,
                              clip=cfg.clip if cfg.sigma > 0 else None, generator=gen,
                              sampling_rate=cfg.sampling_rate)
            w1 = base.fc1.weight.detach() + cfg.scaling * b @ a  # the released, merged weight
            scores[member].append(attack_scores(cfg, base, w1, x, y, n))
            with torch.no_grad():
                logits = torch.relu(splits.test_x @ w1.transpose(1, 2) + base.fc1.bias) @ base.fc2.weight.T + base.fc2.bias
                accs[member].append((logits.argmax(-1) == splits.test_y).double().mean(dim=1))
            done += k
    s_in, s_out = np.concatenate(scores[True]), np.concatenate(scores[False])
    s_in = np.clip(s_in, -1e300, 1e300)
    s_out = np.clip(s_out, -1e300, 1e300)
    seconds = time.perf_counter() - t0
    report = attack_report(s_in, s_out, n_bootstrap=cfg.n_bootstrap, delta=cfg.delta, seed=cfg.seed)
    acc_out = float(torch.cat(accs[False]).mean())
    acc_in = float(torch.cat(accs[True]).mean())
    return LoraFAResult(cfg, s_in, s_out, report, acc_out, acc_in, base_acc, _accountant(cfg), ks_p, seconds)


def first_step_delta(g: torch.Tensor, a: torch.Tensor, *, lr: float, alpha: float) -> torch.Tensor:
    """``ΔW = −η(α/r)²·G·AᵀA`` (docs/theory.md §5): the merged-weight change of one SGD step from ``B = 0``."""
    r = a.shape[0]
    return -lr * (alpha / r) ** 2 * g @ (a.T @ a)
