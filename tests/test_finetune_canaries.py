"""One-run audits inside the real engine (lowrankdp.finetune.canaries): the canaries are wired right, a correct DP
run is consistent with its accountant, and deliberately broken runs — noise off, noise ÷ 10, clipping off, each
while the accountant still claims ε = 1 — are caught (audited lower bound > claimed ε).

The mutations are test-only fixtures that monkeypatch opacus (never configuration options). Tiny model, CPU.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("opacus")

from lowrankdp.finetune import FinetuneConfig, run  # noqa: E402
from lowrankdp.results import EpochMetrics, read_record  # noqa: E402

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")

M = 200  # canaries per audit: 10 + 10 guesses; a perfect attack certifies 1.82 (SNJ), 19 of 20 right 1.28 > ε = 1
CLAIMED = 1.0


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from lowrankdp.data import generate

    root = tmp_path_factory.mktemp("canary_data")
    return str(generate("customersim", out_dir=root / "data", seed=0, sizes={"train": 32, "valid": 4, "test": 8},
                        canary_repeats=1, canary_digits=3))


def _cfg(data, out, **kw):
    # 132 records (32 + ~100 included input canaries), batch 66: q = 1/2, 6 steps, each canary sampled ≈ 3 times
    base = dict(method="dp-sgd", data=data, out_dir=str(out), model="tiny", epochs=3, batch_size=66,
                micro_batch_size=64, max_length=64, lr=0.05, optimizer="sgd", measure=False, retention=False,
                influence_samples=0, progress=False, checkpoint="none", measure_flops=False, audit_canaries=M,
                target_epsilon=CLAIMED, grad_sample_mode="ghost", audit_seed=3)
    base.update(kw)
    return FinetuneConfig(**base)


def _audits(rec):
    return {a["name"]: a for a in rec.final.audits}


def _max_audited(a) -> float:
    return max(a["epsilon_snj"], a["epsilon_fdp_epsilon_delta"])


@pytest.fixture(scope="module")
def correct_run(data, tmp_path_factory):
    rec = run(_cfg(data, tmp_path_factory.mktemp("ok") / "run"))
    assert rec.status.value == "ok", rec.reason
    return rec


@pytest.fixture
def noise_scale(monkeypatch):
    """Test-only mutation: opacus adds ``scale`` × the noise it should (the accountant still claims σ)."""
    import opacus.optimizers.optimizer as o1
    import opacus.optimizers.optimizer_fast_gradient_clipping as o2

    def set_scale(scale: float):
        real = o1._generate_noise

        def scaled(std, reference, generator=None, secure_mode=False):
            return real(std * scale, reference, generator=generator, secure_mode=secure_mode)

        monkeypatch.setattr(o1, "_generate_noise", scaled)
        monkeypatch.setattr(o2, "_generate_noise", scaled)

    return set_scale


def test_config_validation(data, tmp_path):
    with pytest.raises(ValueError, match=r"^audit_canaries"):
        _cfg(data, tmp_path / "r", audit_canaries=-1)
    with pytest.raises(ValueError, match=r"^audit_seed"):
        _cfg(data, tmp_path / "r", audit_seed=-2)
    with pytest.raises(ValueError, match=r"^max_length"):
        run(_cfg(data, tmp_path / "r2", max_length=16))


def test_correct_run_records_consistent_audits(correct_run):
    rec = correct_run
    a = _audits(rec)
    assert set(a) == {"input-space", "white-box all iterates", "white-box last iterate"}
    eps = rec.final.privacy.epsilon
    assert eps == pytest.approx(CLAIMED, rel=1e-3)
    for name, x in a.items():
        assert x["canaries"] == M and x["guesses"] == 20 and x["delta"] == rec.final.privacy.delta
        assert len(x["included_bits"]) == M and x["audit_seed"] == 3
        assert x["epsilon_accountant"] == pytest.approx(eps)
        assert 0.0 <= x["cost_share"] < 1.0
        # a valid bound exceeds the truth with probability ≤ 5 %; the truth is ≤ the accountant's ε
        assert _max_audited(x) <= eps, (name, x)
    # the white-box canaries sit on embedding rows of tokens absent from every training record
    assert "occur in no training record" in a["white-box all iterates"]["where"]
    # input-space audits at the intermediate epochs too; they round-trip through result.json
    assert all(e.audits for e in rec.epochs if e.epoch > 0)
    back = EpochMetrics.from_dict(rec.final.to_dict())
    assert back.audits[0]["name"] == rec.final.audits[0]["name"]


def test_white_box_observations_have_the_claimed_noise(data, tmp_path):
    """The recorded canary coordinates of excluded canaries are pure noise N(0, σ²C²): no real gradient reaches
    them and the recorded units are right (a wrong batch-size scale or a leaking real gradient fails this)."""
    from lowrankdp.finetune import engine

    r = engine._Run(_cfg(data, tmp_path / "run", epochs=1), tmp_path / "run")
    r._prepare()
    r._train()
    w = r.audit.white
    obs = np.stack(w["observed"])[:, ~r.audit.included_white]
    sd = obs.std(ddof=1)
    n = obs.size
    want = w["sigma"] * w["clip"]
    assert abs(obs.mean()) < 4 * want / math.sqrt(n)
    assert abs(sd - want) < 4 * want / math.sqrt(2 * (n - 1))


@pytest.mark.parametrize("scale", [0.0, 0.1])
def test_noise_mutations_are_caught(data, tmp_path, noise_scale, scale):
    noise_scale(scale)
    rec = run(_cfg(data, tmp_path / "run"))
    assert rec.status.value == "ok", rec.reason
    a = _audits(rec)["white-box all iterates"]
    assert a["epsilon_accountant"] == pytest.approx(CLAIMED, rel=1e-3)  # the accountant still claims ε = 1
    assert _max_audited(a) > CLAIMED and a["verdict"] == "violated", a


# Clipping off: the white-box Dirac canaries have norm C (clipping never touched them), so the input-space canaries
# — ordinary records, clipped by opacus — must catch it. Clip norm 0.001 (per-example gradients of the tiny model
# have norms ≈ 1.5–15, so clipping matters), AdamW, 100 canaries, 12 steps at q = 1/2, claimed ε = 0.25:
# unclipped, the run memorises the secrets as a non-private run does (audit seeds 3, 5, 11, 17: 10, 10, 10, 9 of
# 10 guesses right, all caught); clipped, it cannot (5–6 of 10).
CLIP = dict(audit_canaries=100, target_epsilon=0.25, max_grad_norm=0.001, optimizer="adamw", lr=1e-2, batch_size=41,
            epochs=6, eval_every=6)


@pytest.mark.parametrize("mutated", [False, True])
def test_clipping_off_is_caught(data, tmp_path, monkeypatch, mutated):
    if mutated:
        from opacus.grad_sample import GradSampleModuleFastGradientClipping as G

        monkeypatch.setattr(G, "get_clipping_coef", lambda self: torch.ones_like(self.get_norm_sample()))
    rec = run(_cfg(data, tmp_path / "run", **CLIP))
    assert rec.status.value == "ok", rec.reason
    a = _audits(rec)["input-space"]
    assert a["epsilon_accountant"] == pytest.approx(0.25, rel=1e-3)
    if mutated:
        assert _max_audited(a) > 0.25 and a["verdict"] == "violated", a
    else:
        assert _max_audited(a) <= 0.25 and a["verdict"] == "consistent", a


def test_sweep_train_option(tmp_path):
    """``[train] audit_canaries = 1000`` reaches every run of a sweep (one option switches both audits on)."""
    from lowrankdp.sweep import load_config

    over = tmp_path / "audit.toml"
    over.write_text('extends = "smoke"\n[train]\naudit_canaries = 1000\n')
    runs = load_config(over).runs(tmp_path / "out")
    assert runs and all(r.config["audit_canaries"] == 1000 for r in runs)


@pytest.mark.parametrize("method,projection,shape", [
    ("compressed-dp-sgd", "fresh", None), ("compressed-dp-sgd", "fixed", {"canaries_per_row": 4, "span": 2}),
    ("lora", None, None)])
def test_other_methods(data, tmp_path, method, projection, shape):
    """Compressed DP-SGD audits its published projected updates (fresh; fixed with several canaries per row
    spanning several directions); a non-private method gets the input-space audit only ("not testable")."""
    kw = dict(method=method, projection=projection, audit_canaries=60, epochs=1, rank=4,
              extra={"audit_canary_shape": shape} if shape else {})
    if method == "lora":
        kw.update(target_epsilon=None, grad_sample_mode="auto")
    rec = run(_cfg(data, tmp_path / "run", **kw))
    assert rec.status.value == "ok", rec.reason
    a = _audits(rec)
    if method == "lora":
        assert set(a) == {"input-space"} and a["input-space"]["verdict"] == "not testable"
        return
    assert set(a) == {"input-space", "white-box all iterates", "white-box last iterate"}
    wb = a["white-box all iterates"]
    assert wb["projection"] == projection and wb["verdict"] in ("consistent", "not testable")
    assert wb["steps_observed"] == rec.final.step
