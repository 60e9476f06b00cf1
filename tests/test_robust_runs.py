"""Hostile and careless inputs to the fine-tuning engine and the sweep: outputs never touch inputs, no code runs
from a data file, resume never mixes runs, half-written results are never trusted, names from configs never
escape the output directory. Each case ends in a one-line error naming the field or file, or a correct answer."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from lowrankdp.finetune.config import FinetuneConfig
from lowrankdp.results import ResultError, RunRecord, RunStatus, read_record, write_record
from lowrankdp.sweep import RunIndex, run_sweep
from lowrankdp.sweep.config import SweepConfig

ROOT = Path(__file__).resolve().parents[1]


def _data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    for s in ("train", "test"):
        (d / f"{s}.jsonl").write_text("{}\n")
    return d


def _model_dir(tmp_path: Path) -> Path:
    m = tmp_path / "model"
    m.mkdir()
    (m / "config.json").write_text('{"model_type": "gpt_neox"}')
    return m


# ------------------------------------------------------------------------------ outputs never touch inputs
@pytest.mark.parametrize("where", ["model", "model/run", "data", "."])
def test_out_dir_overlapping_an_input_is_refused_and_the_input_survives(tmp_path, where):
    model, data = _model_dir(tmp_path), _data(tmp_path)
    out = tmp_path / where
    cfg = FinetuneConfig(method="lora", model=str(model), data=str(data), out_dir=str(out))
    with pytest.raises(ValueError, match=r"^out_dir must be outside the (model|data) input"):
        cfg.validate()
    assert (model / "config.json").read_text() == '{"model_type": "gpt_neox"}'
    assert sorted(p.name for p in data.iterdir()) == ["test.jsonl", "train.jsonl"]


def test_non_empty_foreign_directory_needs_overwrite(tmp_path):
    data = _data(tmp_path)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    cfg = FinetuneConfig(method="fft", data=str(data), out_dir=str(out))
    with pytest.raises(ValueError, match=r"^out_dir must be empty or a lowrankdp run directory.*--overwrite"):
        cfg.validate()
    cfg.replace(overwrite=True).validate()  # the user said so
    write_record(out, RunRecord(method="fft", status=RunStatus.OK, config={}, provenance={}))
    (out / "notes.txt").unlink()
    cfg.validate()  # a lowrankdp run directory may be rerun


def test_cli_finetune_into_the_model_directory_is_a_one_line_error(tmp_path):
    model, data = _model_dir(tmp_path), _data(tmp_path)
    res = subprocess.run([sys.executable, "-m", "lowrankdp.cli", "finetune", "--method", "lora", "--model", str(model),
                          "--data", str(data), "--out", str(model)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "out_dir must be outside the model input" in res.stderr
    assert sorted(p.name for p in model.iterdir()) == ["config.json"]


# ------------------------------------------------------------------------------ no code from data
class _Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_crafted_checkpoint_is_refused_without_running_it(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from lowrankdp.finetune.checkpoint import load_checkpoint

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "epoch_0001.pt"
    torch.save({"params": {}, "x": _Boom()}, path)
    with pytest.raises(ValueError, match=r"cannot be loaded safely"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()
    with open(tmp_path / "raw.pt", "wb") as fh:  # a plain pickle stream, not even a torch archive
        pickle.dump(_Boom(), fh)
    with pytest.raises(ValueError, match=r"cannot be loaded safely"):
        load_checkpoint(tmp_path / "raw.pt")
    assert not (tmp_path / "PWNED").exists()


def test_checkpoint_round_trip_is_weights_only(tmp_path):
    torch = pytest.importorskip("torch")
    import random

    import numpy as np

    from lowrankdp.finetune.checkpoint import load_checkpoint, save_checkpoint

    state = {"params": {"w": torch.arange(3.0)}, "rng": {"numpy": np.random.get_state(), "python": random.getstate(),
                                                          "torch": torch.get_rng_state()}}
    save_checkpoint(state, tmp_path / "c.pt")
    torch.load(tmp_path / "c.pt", weights_only=True)  # loads under the safe unpickler as stored
    back = load_checkpoint(tmp_path / "c.pt")
    np.random.set_state(back["rng"]["numpy"])
    assert np.random.get_state()[1].tolist() == state["rng"]["numpy"][1].tolist()


def _sweep_dict(tmp_path, **over):
    d = {"name": "t", "grid": {"methods": ["fft"], "models": ["m"], "datasets": ["x"], "epochs": [1]},
         "datasets": {"x": {"path": str(_data(tmp_path))}}, "execution": {"runner": "synthetic"}}
    d.update(over)
    return d


@pytest.mark.parametrize("runner", ["logging.config:dictConfig", "os:system", "lowrankdp.finetune:run"])
def test_sweep_runner_is_a_registered_name_never_an_import_path(tmp_path, runner):
    with pytest.raises(ValueError, match=r"^execution\.runner must be one of 'finetune', 'synthetic'"):
        SweepConfig.from_dict(_sweep_dict(tmp_path, execution={"runner": runner}))


def test_train_keys_are_validated_whatever_the_runner(tmp_path):
    cfg = SweepConfig.from_dict(_sweep_dict(tmp_path, train={"handlers": {"h": {"()": "os.system"}}}))
    with pytest.raises(ValueError, match=r"handlers is not a FinetuneConfig field"):
        run_sweep(cfg, tmp_path / "out", stream=None)
    assert not (tmp_path / "out" / "runs").exists()


# ------------------------------------------------------------------------------ names never escape --out
@pytest.mark.parametrize("name", ["../../../../../X", "a/b", ".hidden", "x" * 101, ""])
def test_dataset_and_sweep_names_cannot_escape(tmp_path, name):
    d = _sweep_dict(tmp_path)
    d["datasets"] = {name: d["datasets"]["x"]}
    d["grid"]["datasets"] = [name]
    with pytest.raises(ValueError, match=r"^(datasets\.|grid\.datasets)"):
        SweepConfig.from_dict(d)
    with pytest.raises(ValueError, match=r"^name must be"):
        SweepConfig.from_dict(_sweep_dict(tmp_path, name=name or "/"))


@pytest.mark.parametrize("jobs", [0, -3])
def test_jobs_below_one_is_refused(tmp_path, jobs):
    cfg = SweepConfig.from_dict(_sweep_dict(tmp_path))
    with pytest.raises(ValueError, match=r"^jobs must be"):
        run_sweep(cfg, tmp_path / "out", stream=None, jobs=jobs)


# ------------------------------------------------------------------------------ results, index, resume
def test_half_written_or_corrupt_result_is_rejected_naming_the_file(tmp_path):
    rec = RunRecord(method="fft", status=RunStatus.OK, config={}, provenance={})
    write_record(tmp_path, rec)
    text = (tmp_path / "result.json").read_text()
    for bad in (text[: len(text) // 2], text.replace('"complete": true', '"complete": false'), "", "{}"):
        (tmp_path / "result.json").write_text(bad)
        with pytest.raises(ResultError, match=str(tmp_path / "result.json")):
            read_record(tmp_path)


def test_resume_redoes_a_finished_run_whose_result_was_torn(tmp_path):
    cfg = SweepConfig.from_dict(_sweep_dict(tmp_path))
    out = tmp_path / "out"
    run_sweep(cfg, out, stream=None)
    row = RunIndex(out / "index.sqlite").rows()[0]
    f = out / row["run_dir"] / "result.json"
    f.write_text(f.read_text()[:100])
    res = run_sweep(cfg, out, stream=None, resume=True)
    assert res.ran == [row["name"]] and read_record(out / row["run_dir"]).finished


def test_changed_generated_dataset_is_refused_on_resume(tmp_path):
    d = _sweep_dict(tmp_path)
    d["datasets"] = {"x": {"generate": "customersim", "sizes": {"train": 10, "valid": 2, "test": 4},
                           "canary_repeats": 1}}
    out = tmp_path / "out"
    run_sweep(SweepConfig.from_dict(d), out, stream=None)
    d["datasets"]["x"] = {"generate": "synbio", "sizes": {"train": 40, "valid": 2, "test": 4}}
    with pytest.raises(ValueError, match=r"^datasets\.x: .* holds data generated from"):
        run_sweep(SweepConfig.from_dict(d), out, stream=None, resume=True)


def test_changed_path_dataset_changes_the_run_key(tmp_path):
    d = _sweep_dict(tmp_path)
    key1 = SweepConfig.from_dict(d).runs(tmp_path)[0].key
    (Path(d["datasets"]["x"]["path"]) / "train.jsonl").write_text('{"a": 1}\n')
    assert SweepConfig.from_dict(d).runs(tmp_path)[0].key != key1


def test_corrupt_or_emptied_index_is_a_one_line_error_and_runs_survive(tmp_path):
    cfg = SweepConfig.from_dict(_sweep_dict(tmp_path))
    out = tmp_path / "out"
    run_sweep(cfg, out, stream=None)
    run_dir = out / RunIndex(out / "index.sqlite").rows()[0]["run_dir"]
    for f in out.glob("index.sqlite*"):
        f.unlink()
    (out / "index.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match=r"index\.sqlite is not a readable run index"):
        run_sweep(cfg, out, stream=None, resume=True)
    res = subprocess.run([sys.executable, "-m", "lowrankdp.cli", "report", str(out)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "index.sqlite" in res.stderr
    (out / "index.sqlite").write_bytes(b"")  # 0 bytes: sqlite sees an empty database
    with pytest.raises(ValueError, match=r"lists no run but .* holds 1 run result"):
        run_sweep(cfg, out, stream=None, resume=True)
    assert read_record(run_dir).finished  # nothing was deleted


def test_unreachable_ray_address_fails_fast(tmp_path):
    pytest.importorskip("ray")
    cfg = SweepConfig.from_dict(_sweep_dict(tmp_path))
    with pytest.raises(ValueError, match=r"^address '127\.0\.0\.1:1': no Ray head answers"):
        run_sweep(cfg, tmp_path / "out", stream=None, executor="ray", address="127.0.0.1:1")


def test_sweep_json_records_every_key(tmp_path):
    cfg = SweepConfig.from_dict(_sweep_dict(tmp_path))
    run_sweep(cfg, tmp_path / "out", stream=None)
    rec = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert rec["runner"] == "synthetic" and rec["runs"][0]["run_dir"].startswith("runs/")
