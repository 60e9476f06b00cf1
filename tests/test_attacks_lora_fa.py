"""Tests for lowrankdp.attacks.lora_fa (torch layer; CPU, tiny, deterministic)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

from lowrankdp.attacks import lora_fa as lf  # noqa: E402
from lowrankdp.attacks.matrix import ThreatModel  # noqa: E402

torch.set_num_threads(1)


def _peft_mlp(*, hidden: int, r: int, alpha: float, fa: bool, seed: int):
    """An MLP with non-zero initial weights wrapped by PEFT LoRA on fc1 (float64); A set by the toolkit."""
    torch.manual_seed(seed)
    base = lf.MLP(hidden).double()
    with torch.no_grad():
        for p in base.parameters():
            p.copy_(torch.randn_like(p))  # non-zero W0 and biases: an identity adapter cannot pass
    w0 = copy.deepcopy(base)
    model = peft.get_peft_model(
        base, peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=["fc1"], lora_dropout=0.0)
    )
    layer = model.base_model.model.fc1
    lf.set_lora_fa_A(layer.lora_A["default"].weight, generator=torch.Generator().manual_seed(seed + 1))
    if fa:
        layer.lora_A["default"].weight.requires_grad_(False)
    return model, layer, w0


def _batch(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 64, generator=g, dtype=torch.float64), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("fa", [False, True], ids=["lora", "lora-fa"])
def test_first_step_identity_against_peft(fa):
    r, alpha, lr = 4, 8.0, 0.05
    model, layer, w0 = _peft_mlp(hidden=12, r=r, alpha=alpha, fa=fa, seed=0)
    x, y = _batch(16, 1)
    # G = ∇_W L at W0, from a plain copy of the network
    loss0 = torch.nn.functional.cross_entropy(w0(x), y)
    (g,) = torch.autograd.grad(loss0, w0.fc1.weight)
    a = layer.lora_A["default"].weight.detach().clone()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    delta = layer.get_delta_weight("default").detach()
    expected = lf.first_step_delta(g, a, lr=lr, alpha=alpha)
    assert torch.linalg.norm(expected) > 1e-3  # non-trivial step
    torch.testing.assert_close(delta, expected, rtol=1e-10, atol=1e-13)
    # standard LoRA: ∇_A = 0 at B = 0, so A has not moved after the first step either
    torch.testing.assert_close(layer.lora_A["default"].weight.detach(), a, rtol=0, atol=0)


def test_lora_and_lora_fa_differ_after_the_second_step():
    outs = []
    x, y = _batch(16, 1)
    for fa in (False, True):
        model, layer, _ = _peft_mlp(hidden=12, r=4, alpha=8.0, fa=fa, seed=0)
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
        for _ in range(2):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        outs.append(layer.get_delta_weight("default").detach())
    assert not torch.allclose(outs[0], outs[1], rtol=1e-6, atol=1e-9)


def test_peft_inits_are_not_wishart_but_the_toolkits_is():
    r = 16
    for init in (True, "gaussian"):
        torch.manual_seed(0)
        model = peft.get_peft_model(lf.MLP(128).double(),
                                    peft.LoraConfig(r=r, lora_alpha=r, target_modules=["fc1"], init_lora_weights=init))
        a = model.base_model.model.fc1.lora_A["default"].weight
        assert lf.ks_entries_pvalue(a, r=r) < 1e-6, init
        lf.set_lora_fa_A(a, generator=torch.Generator().manual_seed(3))
        assert lf.ks_entries_pvalue(a, r=r) > 0.01


def test_batched_trainer_matches_peft_lora_fa():
    r, alpha, lr, steps, hidden = 3, 6.0, 0.3, 3, 10
    model, layer, w0 = _peft_mlp(hidden=hidden, r=r, alpha=alpha, fa=True, seed=4)
    x, y = _batch(9, 2)
    weights = torch.ones(1, 9, dtype=torch.float64)
    weights[0, 4] = 0.0  # record 4 left out
    a = layer.lora_A["default"].weight.detach().clone()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        per = torch.nn.functional.cross_entropy(model(x), y, reduction="none")
        (per * weights[0]).sum().div(8).backward()
        opt.step()
    b = lf.lora_fa_train(w0, x[None], y[None], weights, a[None], scaling=alpha / r, lr=lr, steps=steps, n_norm=8)
    torch.testing.assert_close((alpha / r) * b[0] @ a, layer.get_delta_weight("default").detach(),
                               rtol=1e-10, atol=1e-13)


def test_clipped_gradient_matches_per_example_loop():
    torch.manual_seed(0)
    base = lf.MLP(6).double()
    x, y = _batch(5, 3)
    a = lf.set_lora_fa_A(torch.empty(1, 2, 64, dtype=torch.float64), generator=torch.Generator().manual_seed(0))
    clip, lr = 0.05, 1.0
    b = lf.lora_fa_train(base, x[None], y[None], torch.ones(1, 5, dtype=torch.float64), a, scaling=2.0, lr=lr,
                         steps=1, n_norm=1, clip=clip)
    total = torch.zeros(6, 2, dtype=torch.float64)
    norms = []
    for i in range(5):
        bb = torch.zeros(6, 2, dtype=torch.float64, requires_grad=True)
        w = base.fc1.weight + 2.0 * bb @ a[0]
        out = base.fc2(torch.relu(x[i] @ w.T + base.fc1.bias))
        (gi,) = torch.autograd.grad(torch.nn.functional.cross_entropy(out[None], y[i:i + 1]), bb)
        norms.append(float(gi.norm()))
        total += gi * min(1.0, clip / float(gi.norm()))
    assert max(norms) > clip  # clipping is active
    torch.testing.assert_close(b[0], -lr * total, rtol=1e-10, atol=1e-14)


def test_one_step_noise_free_attack_is_perfect_and_keeps_accuracy():
    cfg = lf.LoraFAConfig(rank=4, trials=12, chunk=12, n_bootstrap=0, seed=1)
    res = lf.run_lora_fa_attack(cfg)
    assert res.report.auc == 1.0
    assert res.scores_in.min() > 5 and res.scores_out.max() < -5
    assert res.ks_pvalue > 0.001
    assert res.test_accuracy > 0.85 and abs(res.test_accuracy - res.base_test_accuracy) < 0.05
    assert res.to_dict()["epsilon_accountant"] is None


def test_clip_robust_attack_sees_through_clipping_at_negligible_noise():
    # clip 0.5 clips some training records; with sigma = 1e-6 the noise is negligible, so a good attack
    # must still separate (the naive clip-factor estimate alone gave AUC ≈ 0.59 here).
    cfg = lf.LoraFAConfig(rank=16, trials=12, chunk=12, n_bootstrap=0, sigma=1e-6, clip=0.5, seed=3)
    res = lf.run_lora_fa_attack(cfg)
    assert res.report.auc >= 0.9


def test_noisy_attack_stays_below_accountant():
    cfg = lf.LoraFAConfig(rank=4, trials=30, chunk=30, n_bootstrap=0, sigma=1.0, seed=2)
    res = lf.run_lora_fa_attack(cfg)
    eps = res.accountant["epsilon"]
    assert eps is not None and math.isfinite(eps) and eps > 0
    assert res.report.epsilon_lower_bound <= eps


def test_config_validation():
    with pytest.raises(ValueError, match="knows_projection must be False"):
        lf.LoraFAConfig(threat=ThreatModel(knows_projection=True))
    with pytest.raises(ValueError, match="knows_other_records"):
        lf.LoraFAConfig(threat=ThreatModel(knows_other_records=False))
    with pytest.raises(ValueError, match="rank must be"):
        lf.LoraFAConfig(rank=65)
    with pytest.raises(ValueError, match="sigma must be"):
        lf.LoraFAConfig(sigma=-0.1)
    with pytest.raises(ValueError, match="clip must be"):
        lf.LoraFAConfig(clip=0.0)
    with pytest.raises(ValueError, match="train_size"):
        lf.load_digits_splits(train_size=1500)
    assert lf.LoraFAConfig(rank=8).scaling == 1.0
    with pytest.raises(ValueError, match="clip must be set"):
        lf.lora_fa_train(lf.MLP(4).double(), torch.zeros(1, 2, 64, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.long),
                         torch.ones(1, 2, dtype=torch.float64), torch.zeros(1, 2, 64, dtype=torch.float64),
                         scaling=1.0, lr=1.0, steps=1, n_norm=2, sigma=1.0, clip=None)


def test_ks_detects_wrong_variance():
    g = np.random.default_rng(0)
    assert lf.ks_entries_pvalue(g.standard_normal((16, 64)) / 16, r=16) < 1e-6  # std 1/r, PEFT "gaussian"
    assert lf.ks_entries_pvalue(g.standard_normal((16, 64)) / 4, r=16) > 0.01


@pytest.mark.slow
@pytest.mark.parametrize("rank", [4, 16, 64])
def test_one_step_noise_free_auc_at_paper_ranks(rank):
    res = lf.run_lora_fa_attack(lf.LoraFAConfig(rank=rank, trials=300, n_bootstrap=0, seed=rank))
    assert res.report.auc >= 0.99
    assert res.ks_pvalue > 0.001


@pytest.mark.slow
def test_auc_falls_with_sigma_when_nothing_is_clipped():
    aucs = [lf.run_lora_fa_attack(lf.LoraFAConfig(rank=16, sigma=s, clip=40.0, trials=200, n_bootstrap=0,
                                                  seed=7)).report.auc for s in (1e-5, 1e-3, 0.1)]
    assert aucs[0] > aucs[1] > aucs[2]
    assert aucs[2] < 0.65


def test_clip_robust_closed_form_matches_explicit_least_squares():
    torch.manual_seed(0)
    base = lf.MLP(6).double()
    k, n = 3, 8
    shared = torch.rand(n - 1, 64, dtype=torch.float64) * 3
    x = torch.cat([shared.expand(k, -1, -1), torch.rand(k, 1, 64, dtype=torch.float64)], dim=1)
    y = torch.randint(0, 10, (1, n)).expand(k, -1).clone()
    delta_w = torch.randn(k, 6, 64, dtype=torch.float64)
    # explicit reference: build the h²×f design matrix and solve by lstsq
    w0 = base.fc1.weight.detach()
    h_pre = x[0] @ w0.T + base.fc1.bias.detach()
    h_pre.requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(torch.relu(h_pre) @ base.fc2.weight.detach().T + base.fc2.bias.detach(),
                                             y[0], reduction="sum")
    (d0,) = torch.autograd.grad(loss, h_pre)
    q_hi = math.sqrt(lf.stats.chi2.ppf(1 - 1e-6, 4) / 4)
    approx0 = d0.norm(dim=-1) * x[0].norm(dim=-1)
    clip = float((approx0[: n - 1] * q_hi).median())  # about half the records can be clipped
    cfg = lf.LoraFAConfig(rank=4, sigma=1.0, clip=clip, hidden=6)
    got = lf._clip_robust_scores(cfg, base, delta_w, x, y, n - 1)
    free = [j for j in range(n - 1) if approx0[j] * q_hi > clip]
    assert 0 < len(free) < n - 1  # both kinds of records present
    for i in range(k):
        xi = x[i]
        h_pre = (xi @ w0.T + base.fc1.bias.detach()).requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(
            torch.relu(h_pre) @ base.fc2.weight.detach().T + base.fc2.bias.detach(), y[i], reduction="sum")
        (d,) = torch.autograd.grad(loss, h_pre)
        c_t = min(1.0, clip / float(d[-1].norm() * xi[-1].norm()))
        yt = delta_w[i].T
        fixed = [j for j in range(n - 1) if j not in free]
        g_fixed = sum(torch.outer(d[j], xi[j]) for j in fixed)
        cols = torch.stack([(lambda a: (a - a.T).reshape(-1))(torch.outer(d[j], xi[j]) @ yt) for j in free], 1)
        res = {}
        for hyp, g in (("in", g_fixed + c_t * torch.outer(d[-1], xi[-1])), ("out", g_fixed)):
            p = g @ yt
            rhs = (p - p.T).reshape(-1)
            sol = torch.linalg.lstsq(cols, -rhs[:, None]).solution
            res[hyp] = float((rhs + (cols @ sol)[:, 0]).norm() / p.norm())
        ref = math.log(res["out"]) - math.log(res["in"])
        assert got[i] == pytest.approx(ref, rel=1e-6, abs=1e-6)


def _replay_world(k: int, steps: int, rank: int, clip: float | None, seed: int):
    splits = lf.load_digits_splits(seed=0)
    base = lf.pretrained_base(hidden=128, seed=0)
    gen = torch.Generator().manual_seed(seed)
    n = splits.train_x.shape[0]
    targets = torch.randint(0, splits.pool_x.shape[0], (k,), generator=gen)
    x = torch.cat([splits.train_x.expand(k, -1, -1), splits.pool_x[targets][:, None]], dim=1)
    y = torch.cat([splits.train_y.expand(k, -1), splits.pool_y[targets][:, None]], dim=1)
    weights = torch.ones(k, n + 1, dtype=torch.float64)
    a = lf.set_lora_fa_A(torch.empty(k, rank, 64, dtype=torch.float64), generator=gen)
    b = lf.lora_fa_train(base, x, y, weights, a, scaling=1.0, lr=1.0, steps=steps, n_norm=n, clip=clip)
    return base, x, y, weights, a, b, n


@pytest.mark.parametrize("clip", [None, 0.5], ids=["no-clip", "clip"])
def test_replay_with_the_true_gram_matrix_reproduces_training(clip):
    """Training depends on A only through AᵀA: replaying with the true M reproduces the release to rounding,
    clipping included (clip factors from ‖Ax‖² = xᵀMx)."""
    base, x, y, w, a, b, n = _replay_world(3, 3, 8, clip, seed=4)
    sigma = 1e-9 if clip is not None else 0.0  # sigma > 0 switches clipping on in the replay; noise not replayed
    cfg = lf.LoraFAConfig(rank=8, steps=3, sigma=sigma, clip=clip or 0.5, train_size=n)
    dw = b @ a
    pred, _ = lf._replay(cfg, base, x, y, w, a.transpose(1, 2) @ a, float(n))
    rel = (pred - dw).norm(dim=(1, 2)) / dw.norm(dim=(1, 2))
    assert float(rel.max()) < 1e-12


def test_replay_attack_separates_after_two_steps():
    cfg = lf.LoraFAConfig(rank=4, steps=2, trials=8, chunk=8, n_bootstrap=0, seed=5)
    assert cfg.distinguisher == "replay"
    res = lf.run_lora_fa_attack(cfg)
    # 8 vs 8 runs: AUC = 1 by chance has probability 1/12870
    assert res.report.auc == 1.0, (res.scores_in, res.scores_out)


def test_replay_config_validation():
    with pytest.raises(ValueError, match="distinguisher"):
        lf.LoraFAConfig(distinguisher="oracle")
    with pytest.raises(ValueError, match="sampling_rate"):
        lf.LoraFAConfig(sampling_rate=0.0)
    assert lf.LoraFAConfig(steps=1).distinguisher == "symmetry"
