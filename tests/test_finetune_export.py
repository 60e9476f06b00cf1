"""Run directories export a plain Hugging Face model: ``load_base(RUN_DIR)``, ``export_model``, ``measure``.

The embedded tiny base (so that ``--base tiny`` shares the tokenizer), a small generated CustomerSim set,
one epoch per method (CPU, seeded, 1 thread). The in-memory fine-tuned model is captured from inside the
engine just before it exports, and compared with what the run directory yields.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("opacus")

from lowrankdp.finetune import FinetuneConfig, export_model, run  # noqa: E402
from lowrankdp.finetune import engine  # noqa: E402
from lowrankdp.models import load_base  # noqa: E402
from lowrankdp.results import read_record, write_record  # noqa: E402

torch.set_num_threads(1)

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")

METHODS = ("fft", "lora", "dp-lora")
MAXLEN = 48


def _cfg(data, out, method, **kw):
    base = dict(method=method, model="tiny", data=str(data), out_dir=str(out), epochs=1, batch_size=8,
                max_length=MAXLEN, rank=4, alpha=8.0, lr=1e-2, measure=False, retention=False,
                influence_samples=0, measure_flops=False, eval_initial=False, progress=False, seed=0)
    base.update(kw)
    return FinetuneConfig(**base)


@pytest.fixture(scope="module")
def runs(tiny_base_path, tmp_path_factory):
    from lowrankdp.data import generate

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("export")
    data = generate("customersim", out_dir=root / "data", seed=0, sizes={"train": 16, "valid": 2, "test": 8},
                    canary_repeats=2, canary_digits=3)
    live: dict[str, torch.nn.Module] = {}
    original = engine._Run._export_model

    def capture(self):
        live[self.config.method] = copy.deepcopy(self.runner.raw_model).eval()  # the trained model, as trained
        return original(self)

    summaries = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine._Run, "_export_model", capture)
        for m in METHODS:
            summaries[m] = run(_cfg(data, root / m, m))
    return {"root": root, "data": str(data), "live": live, "summaries": summaries}


def _batch(data):
    from lowrankdp.data import load_dataset

    _, tok = load_base("tiny")
    texts = [r.text[:200] for r in load_dataset(data).splits["test"][:3]]
    enc = tok(texts, return_tensors="pt", padding=True)
    return enc["input_ids"], enc["attention_mask"]


@torch.no_grad()
def _logits(model, ids, att):
    return model(input_ids=ids, attention_mask=att).logits


@pytest.mark.parametrize("method", METHODS)
def test_run_exports_a_plain_model_with_the_trained_logits(runs, method):
    run_dir = runs["root"] / method
    s = runs["summaries"][method]
    assert s.status.value == "ok", s.reason
    on_disk = read_record(run_dir)
    assert on_disk.model_dir == "model" and (run_dir / "model" / "config.json").is_file()
    assert not (run_dir / "model" / "adapter_config.json").exists()  # merged: no PEFT adapter folder
    info = json.loads((run_dir / "model" / "lowrankdp_export.json").read_text())
    assert info["epoch"] == 1 and info["method"] == method and info["merged_lora_adapters"] == (method != "fft")

    model, _tok = load_base(run_dir)
    from transformers import GPTNeoXForCausalLM

    assert type(model) is GPTNeoXForCausalLM  # neither PEFT nor opacus
    assert not any("lora_" in n for n, _ in model.named_parameters())
    ids, att = _batch(runs["data"])
    trained = _logits(runs["live"][method], ids, att)
    exported = _logits(model, ids, att)
    torch.testing.assert_close(exported, trained, atol=1e-4, rtol=1e-4)
    base, _ = load_base("tiny")
    assert (_logits(base, ids, att) - trained).abs().max() > 1e-2  # training changed the model

    # the same folder, rebuilt from the stored checkpoint (what runs made before the export need)
    again = export_model(run_dir, out=runs["root"] / f"{method}_from_ckpt")
    torch.testing.assert_close(_logits(load_base(again)[0], ids, att), exported, atol=0, rtol=0)


def test_measure_cli_on_a_run_directory(runs, capsys):
    from lowrankdp.cli import main
    from lowrankdp.data import load_dataset
    from lowrankdp.measure import measure_all

    run_dir = str(runs["root"] / "lora")
    code = main(["measure", "--model", run_dir, "--base", "tiny", "--data", runs["data"], "--json",
                 "--no-progress", "--exposure-max-candidates", "1000", "--bootstrap", "20"])
    assert code == 0
    res = json.loads(capsys.readouterr().out)
    documented = {"sensitive_loss_token", "sensitive_loss_seq_mean", "sensitive_loss_quantiles", "utility_loss",
                  "base_sensitive_loss_token", "base_utility_loss", "sensitive_loss_token_gain_vs_base",
                  "utility_loss_gain_vs_base", "per_type", "exposure", "mia", "counts", "settings", "seconds",
                  "model", "base", "data"}
    assert documented <= set(res), documented - set(res)
    assert res["model"] == run_dir and res["base"] == "tiny"
    assert res["exposure"]["method"] == "exact" and res["exposure"]["space_size"] == 1000
    assert set(res["mia"]) == {"loss", "zlib", "min_k", "reference", "sensitive", "sensitive_reference"}
    # the number is that of the in-memory fine-tuned model
    _, tok = load_base("tiny")
    direct = measure_all(runs["live"]["lora"], tok, load_dataset(runs["data"]), progress=False,
                         exposure_max_candidates=1000, n_bootstrap=20)
    assert res["sensitive_loss_token"] == pytest.approx(direct["sensitive_loss_token"], rel=1e-5)
    assert res["utility_loss"] == pytest.approx(direct["utility_loss"], rel=1e-5)
    assert res["exposure"]["rank"] == direct["exposure"]["rank"]
    assert res["sensitive_loss_token_gain_vs_base"] == pytest.approx(
        res["base_sensitive_loss_token"] - res["sensitive_loss_token"])


def test_failed_run_is_a_clear_error(runs, capsys):
    from lowrankdp.cli import main

    out = runs["root"] / "failed"
    s = run(_cfg(runs["data"], out, "lora", rank=100_000), raise_invalid=False)  # rank > layer: fails
    assert s.status.value == "failed"
    assert read_record(out).model_dir is None
    with pytest.raises(ValueError, match=r"run failed .*rank"):
        load_base(out)
    code = main(["measure", "--model", str(out), "--base", "tiny", "--data", runs["data"], "--no-progress"])
    assert code == 2
    assert "run failed" in capsys.readouterr().err


def test_run_without_exported_model_points_to_export_model(runs):
    # a run whose export failed: result without model_dir, no model/ folder
    old = runs["root"] / "old_lora"
    shutil.copytree(runs["root"] / "lora", old)
    shutil.rmtree(old / "model")
    write_record(old, dataclasses.replace(read_record(old), model_dir=None))
    with pytest.raises(ValueError, match=r"no exported model.*lowrankdp\.finetune\.export_model"):
        load_base(old)
    assert export_model(old) == old / "model"  # default target; result.json now points to it
    assert read_record(old).model_dir == "model"
    ids, att = _batch(runs["data"])
    torch.testing.assert_close(_logits(load_base(old)[0], ids, att), _logits(runs["live"]["lora"], ids, att),
                               atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match=r"^checkpoint"):
        export_model(old, checkpoint=2)


def test_checkpoint_none_exports_nothing_and_removes_a_stale_model(runs):
    # a fresh run in a directory that holds an older run's model must not leave that model behind
    reused = runs["root"] / "reused"
    shutil.copytree(runs["root"] / "fft", reused)
    s = run(_cfg(runs["data"], reused, "fft", checkpoint="none"))
    assert s.status.value == "ok" and s.model_dir is None
    assert not (reused / "model").exists()
    with pytest.raises(ValueError, match=r"no exported model.*checkpoint='none'"):
        load_base(reused)
    with pytest.raises(ValueError, match=r"no checkpoint"):
        export_model(reused)
