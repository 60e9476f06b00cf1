"""The choice of ``grad_sample_mode="auto"``: cost model of ghost clipping vs hooks on synthetic shapes
(docs/theory.md §7). The timing that shows the choice is right is ``benchmarks/grad_sample_mode.py``."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("opacus")

from torch import nn  # noqa: E402

from lowrankdp.finetune.private import FLOPS_PER_FLOAT, choose_grad_sample_mode, grad_sample_costs  # noqa: E402


def _linear_model(d_in: int, d_out: int, *, bias: bool = False) -> nn.Module:
    with torch.device("meta"):
        return nn.Sequential(nn.Linear(d_in, d_out, bias=bias))


def test_costs_of_one_linear_layer_by_hand():
    m = _linear_model(30, 50)
    T, k = 7, 10.0
    c = grad_sample_costs(m, T, flops_per_float=k)
    n = 30 * 50
    assert c["layers"] == 1 and c["flops_per_float"] == k
    assert c["ghost"] == 4 * T * n + 2 * T * T * (30 + 50) + k * 2 * T * T
    assert c["hooks"] == 2 * T * n + k * n


def test_costs_of_an_embedding_by_hand():
    with torch.device("meta"):
        m = nn.Sequential(nn.Embedding(1000, 16))
    T, k = 9, 5.0
    c = grad_sample_costs(m, T, flops_per_float=k)
    assert c["ghost"] == 2 * T * 16 + 2 * T * T * (1 + 16) + k * 2 * T * T
    assert c["hooks"] == k * 1000 * 16


def test_frozen_and_norm_layers_do_not_count():
    with torch.device("meta"):
        m = nn.Sequential(nn.Linear(64, 64), nn.LayerNorm(64), nn.Linear(64, 8))
    m[0].requires_grad_(False)
    c = grad_sample_costs(m, 5, flops_per_float=1.0)
    assert c["layers"] == 1
    assert c == grad_sample_costs(nn.Sequential(m[2]), 5, flops_per_float=1.0)


def test_auto_switches_from_ghost_to_hooks_as_the_sequence_grows():
    """One wide layer: ghost's cost grows with T², hooks' with the layer size, so there is one crossover in T,
    and it moves to longer sequences when the layer is wider."""
    k = FLOPS_PER_FLOAT["cpu"]

    def crossover(width):
        m = _linear_model(width, width)
        modes = [choose_grad_sample_mode(m, "auto", seq_len=T, flops_per_float=k)[0] for T in range(1, 4097)]
        assert modes[0] == "ghost" and modes[-1] == "hooks"
        first_hooks = modes.index("hooks")
        assert set(modes[first_hooks:]) == {"hooks"}  # a single switch
        return first_hooks + 1

    narrow, wide = crossover(256), crossover(4096)
    assert narrow < wide


def test_memory_cost_weight_favours_ghost():
    """The dearer a per-example gradient float (GPU), the longer the sequences at which ghost still wins."""
    m = _linear_model(1024, 1024)
    assert choose_grad_sample_mode(m, "auto", seq_len=128, flops_per_float=FLOPS_PER_FLOAT["cpu"])[0] == "hooks"
    assert choose_grad_sample_mode(m, "auto", seq_len=128, flops_per_float=FLOPS_PER_FLOAT["cuda"])[0] == "ghost"


def test_lora_adapters_alone_choose_hooks():
    """DP-LoRA: a frozen wide layer and small trainable adapters: per-example adapter gradients are tiny."""
    with torch.device("meta"):
        m = nn.Sequential(nn.Linear(512, 512), nn.Linear(512, 8, bias=False), nn.Linear(8, 512, bias=False))
    m[0].requires_grad_(False)
    mode, reason = choose_grad_sample_mode(m, "auto", seq_len=128)
    assert mode == "hooks" and "T=128" in reason


def test_requested_modes_and_fallbacks():
    m = _linear_model(8, 8)
    assert choose_grad_sample_mode(m, "hooks", seq_len=4)[0] == "hooks"
    assert choose_grad_sample_mode(m, "ghost", seq_len=10_000)[0] == "ghost"
    assert choose_grad_sample_mode(m, "auto")[0] == "ghost"  # length unknown: the former default

    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(3))

    mode, reason = choose_grad_sample_mode(nn.Sequential(nn.Linear(2, 2), Odd()), "auto", seq_len=4)
    assert mode == "hooks" and "Odd" in reason


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, None])
def test_bad_sequence_length(bad):
    with pytest.raises(ValueError, match="seq_len"):
        grad_sample_costs(_linear_model(4, 4), bad)


def test_bad_flops_per_float():
    with pytest.raises(ValueError, match="flops_per_float"):
        grad_sample_costs(_linear_model(4, 4), 3, flops_per_float=-1.0)
