"""The GPU test suite (``pytest -m gpu``; stage "tests" of ``lowrankdp gpu-check``, docs/gpu.md).

Every fine-tuning method on CUDA in float32 and bfloat16; a CUDA step (ghost and hooks clipping) against the
same step on the CPU; opacus Poisson sampling and the noise-only step on CUDA; measurements and canary
exposure on CUDA against the CPU; and a seeded DP run repeated on the GPU.

The device comes from ``LOWRANKDP_GPU_TEST_DEVICE`` (default ``cuda``; skipped without CUDA). The CPU dry
run of the check sets it to ``cpu``: the same test code runs as a rehearsal on fewer parameter combinations
(:data:`REHEARSAL`), so a typo here fails on CI, not on the first GPU machine.
"""

from __future__ import annotations

import copy
import json
import math
import os
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS; before CUDA starts

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("opacus")

from lowrankdp.finetune import FinetuneConfig, StepRunner, load_model, run  # noqa: E402
from lowrankdp.methods import METHOD_NAMES as METHODS  # noqa: E402
from lowrankdp.methods import METHODS as METHOD_SPECS  # noqa: E402
from lowrankdp.results import read_record  # noqa: E402


def read_metrics(run_dir):
    return [e.to_dict() for e in read_record(run_dir).epochs]

DEVICE = os.environ.get("LOWRANKDP_GPU_TEST_DEVICE", "cuda")
REHEARSAL = DEVICE == "cpu" and os.environ.get("LOWRANKDP_GPU_TEST_FULL") != "1"

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="no CUDA device"),
    pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning"),
]

DTYPES = ("float32", "bfloat16")
# the rehearsal runs each test at least once, on the cheapest combinations that still cover both dtypes
METHOD_DTYPE = ([("fft", "float32"), ("dp-lora", "bfloat16")] if REHEARSAL
                else [(m, d) for m in METHODS for d in DTYPES])
STEP_CASES = ([("dp-sgd", "ghost")] if REHEARSAL else
              [("fft", None), ("lora", None), ("dp-sgd", "hooks"), ("dp-sgd", "ghost"), ("dp-lora", "hooks"),
               ("dp-lora", "ghost")])
# compressed DP-SGD draws its projection from a generator on the device, so its step cannot equal the CPU's;
# it is covered by test_every_method_trains_on_the_device


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from lowrankdp.data import generate

    root = tmp_path_factory.mktemp("gpu_data")
    # 3-digit canary: |R| = 1,000 candidates, ranked exactly
    return str(generate("customersim", out_dir=root / "cs", seed=0, sizes={"train": 16, "valid": 4, "test": 12},
                        canary_repeats=2, canary_digits=3))


def _cfg(data, out, method, **kw):
    base = dict(method=method, model="tiny", data=data, out_dir=str(out), epochs=1, batch_size=8, max_length=64,
                rank=4, alpha=8.0, lr=5e-3, measure=False, retention=False, influence_samples=0, progress=False,
                checkpoint="none", device=DEVICE, seed=0)
    base.update(kw)
    return FinetuneConfig(**base)


# ------------------------------------------------------------------------------------------ every method
@pytest.mark.parametrize("method,dtype", METHOD_DTYPE)
def test_every_method_trains_on_the_device(tiny_base_path, data, tmp_path, method, dtype):
    s = run(_cfg(data, tmp_path / "run", method, dtype=dtype, measure=True, exposure_max_candidates=20,
                 extra={"measure_kwargs": {"n_bootstrap": 10}}))
    assert s.status.value == "ok", s.reason
    lines = read_metrics(tmp_path / "run")
    assert [x["epoch"] for x in lines] == [0, 1]
    costs = lines[1]["costs"]
    assert costs["device"].startswith(DEVICE) and costs["dtype"] == dtype
    assert costs["steps"] > 0 and costs["tokens"] > 0
    assert math.isfinite(lines[1]["train_loss"])
    u0, u1 = lines[0]["measurements"]["utility_loss"], lines[1]["measurements"]["utility_loss"]
    assert math.isfinite(u1) and u1 != u0  # something trained (losses come from measure_all)
    peak = costs["peak_memory"]
    assert peak["bytes"] > 0
    if DEVICE.startswith("cuda"):
        assert peak["kind"] == "cuda_max_allocated"
        assert costs["measured_flops_per_token"] > 0
    eps = lines[1]["privacy"]["epsilon"]
    if METHOD_SPECS[method].private:
        assert isinstance(eps, float) and 0 < eps < math.inf
        assert costs["grad_sample_mode"] in ("ghost", "hooks")
    else:
        assert eps == "inf"


# ------------------------------------------------------------------------------------------ one step vs CPU
@pytest.mark.parametrize("method,mode", STEP_CASES)
def test_device_step_equals_cpu_step(tiny_base_path, data, tmp_path, method, mode):
    """float32: the same SGD step (clipping active, no noise) on the device and on the CPU; for DP methods this
    checks opacus's per-example clipping (ghost or hooks) on the device against the CPU's."""
    from lowrankdp.data import load_dataset
    from lowrankdp.finetune._data import encode_split

    cpu_model, tok, _ = load_model("tiny", device=torch.device("cpu"), dtype=torch.float32)
    enc, _ = encode_split(tok, load_dataset(data).splits["train"][:5], max_length=24)
    extra = {"grad_sample_mode": mode} if mode else {}
    C = 0.05  # below the per-record gradient norms: clipping is active for every record
    deltas = {}
    start = None
    for dev in ("cpu", DEVICE):
        model = copy.deepcopy(cpu_model).to(dev)
        cfg = _cfg(data, tmp_path / dev, method, optimizer="sgd", lr=1.0, noise_multiplier=0.0, max_grad_norm=C,
                   batch_size=5, lora_b_init_std=0.05, device=dev, **extra)
        runner = StepRunner(cfg, model, n_train=10)
        raw = runner.raw_model
        params = dict(raw.named_parameters())
        if start is None:  # adapters drawn on the CPU; the device run starts from the same values
            start = {n: p.detach().cpu().clone() for n, p in params.items()}
        else:
            with torch.no_grad():
                for n, p in params.items():
                    p.copy_(start[n].to(p.device))
        res = runner.step(enc.input_ids.to(dev), enc.attention_mask.to(dev))
        assert math.isfinite(res["loss"])
        if runner.private is not None and mode is not None:
            assert runner.private.mode == mode
        deltas[dev] = {n: (p.detach().cpu() - start[n]) for n, p in params.items() if p.requires_grad}
    ref, got = deltas["cpu"], deltas[DEVICE]
    assert set(ref) == set(got)
    scale = max(float(t.abs().max()) for t in ref.values())
    assert scale > 0
    err = max(float((got[n] - ref[n]).abs().max()) for n in ref)
    # float32 on both sides, no TF32 (torch's default for matmul): differences are summation order only
    assert err <= 1e-4 * scale, (err, scale)


# ------------------------------------------------------------------------------------------ Poisson, noise
def test_poisson_sampling_and_noise_only_step_on_the_device(tiny_base_path, data, tmp_path):
    model, _tok, _ = load_model("tiny", device=torch.device(DEVICE), dtype=torch.float32)
    n, B, sigma, C = 64, 8, 2.0, 0.5
    cfg = _cfg(data, tmp_path / "r", "dp-sgd", optimizer="sgd", lr=1.0, noise_multiplier=sigma, max_grad_norm=C,
               batch_size=B)
    runner = StepRunner(cfg, model, n_train=n)
    priv = runner.private
    assert priv.noise_generator.device.type == torch.device(DEVICE).type
    q = priv.sample_rate
    assert q == pytest.approx(1 / math.ceil(n / B))
    sizes = []
    while len(sizes) < 400:
        for batch in priv.loader:
            idx = batch[0] if isinstance(batch, (list, tuple)) else batch
            sizes.append(int(idx.numel()))
    sizes = torch.tensor(sizes[:400], dtype=torch.float64)
    mean, var = n * q, n * q * (1 - q)  # Binomial(n, q) batch sizes under Poisson sampling
    assert abs(float(sizes.mean()) - mean) < 4 * math.sqrt(var / len(sizes))
    # an empty Poisson batch is a pure-noise step of std sigma*C/B, generated on the device
    raw = runner.raw_model
    before = torch.cat([p.detach().flatten().float().cpu() for p in raw.parameters()])
    res = runner.step(torch.zeros(0, 4, dtype=torch.long, device=DEVICE),
                      torch.zeros(0, 4, dtype=torch.long, device=DEVICE))
    assert res["empty"]
    delta = before - torch.cat([p.detach().flatten().float().cpu() for p in raw.parameters()])
    expected = sigma * C / priv.expected_batch_size
    se = expected / math.sqrt(2 * delta.numel())
    assert abs(float(delta.std()) - expected) < 6 * se
    assert abs(float(delta.mean())) < 6 * expected / math.sqrt(delta.numel())


# ------------------------------------------------------------------------------------------ measurements
def test_measure_and_exposure_on_the_device_match_the_cpu(tiny_base, data):
    from lowrankdp import measure
    from lowrankdp.data import load_dataset

    model, tok = tiny_base
    ds = load_dataset(data)
    kw = dict(batch_size=8, max_length=96, progress=False, n_bootstrap=20, seed=0)
    cpu = measure.measure_all(model, tok, ds, device="cpu", **kw)
    dev = measure.measure_all(model, tok, ds, device=DEVICE, **kw)
    assert dev["settings"]["device"].startswith(DEVICE)
    assert next(model.parameters()).device.type == "cpu"  # moved back
    for key in ("sensitive_loss_token", "utility_loss", "sensitive_loss_test_token"):
        assert dev[key] == pytest.approx(cpu[key], rel=1e-4), key
    assert dev["exposure"]["method"] == cpu["exposure"]["method"] == "exact"
    assert dev["exposure"]["rank"] == cpu["exposure"]["rank"]
    assert dev["exposure"]["canary_logprob"] == pytest.approx(cpu["exposure"]["canary_logprob"], abs=1e-3)
    # per-record scores agree to float error; a pair of records that close can swap order, and each swap moves
    # the AUC by 1 / (n_in * n_out)
    n_pairs = dev["mia"]["loss"]["n_in"] * dev["mia"]["loss"]["n_out"]
    assert abs(dev["mia"]["loss"]["auc"] - cpu["mia"]["loss"]["auc"]) <= 3 / n_pairs + 1e-12
    bf = measure.measure_all(model.to(torch.bfloat16), tok, ds, device=DEVICE, **kw)
    assert math.isfinite(bf["sensitive_loss_token"]) and math.isfinite(bf["exposure"]["value"])
    assert bf["sensitive_loss_token"] == pytest.approx(cpu["sensitive_loss_token"], rel=0.05)  # bf16: ~3 digits


# ------------------------------------------------------------------------------------------ determinism
def test_seeded_dp_run_is_reproducible_on_the_device(tiny_base_path, data, tmp_path):
    """Two runs with the same seed (Poisson sampling, noise, adapters) in deterministic mode give the same run:
    bit-identical weights where torch reports no nondeterministic kernel, else equal to float error."""
    from safetensors.torch import load_file

    det, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    runs = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for i in range(2):
                out = tmp_path / f"run{i}"
                s = run(_cfg(data, out, "dp-sgd", seed=3, epochs=1 if REHEARSAL else 2, checkpoint="last",
                             noise_multiplier=1.0))
                assert s.status.value == "ok", s.reason
                runs.append((read_metrics(out), load_file(str(out / s.model_dir / "model.safetensors"))))
    finally:
        torch.use_deterministic_algorithms(det, warn_only=warn_only)
    nondet = sorted({str(w.message).split(" does not have a deterministic")[0][:80] for w in caught
                     if "deterministic" in str(w.message)})
    (m0, w0), (m1, w1) = runs
    for a, b in zip(m0, m1):
        assert a["step"] == b["step"] and a["costs"]["records"] == b["costs"]["records"]  # same Poisson batches
        assert a["privacy"]["epsilon"] == b["privacy"]["epsilon"]
    assert set(w0) == set(w1)
    if not nondet:
        for k in w0:
            assert torch.equal(w0[k], w1[k]), f"{k} differs between two seeded runs"
        for a, b in zip(m0, m1):
            assert a["train_loss"] == b["train_loss"]
    else:  # torch says some kernel has no deterministic version: equal to float error only
        for k in w0:
            assert torch.allclose(w0[k], w1[k], rtol=1e-4, atol=1e-6), (k, nondet)
    Path(tmp_path / "nondeterministic_ops.json").write_text(json.dumps(nondet))
