"""Sweep configs: validation (errors name the field, before any training), grid expansion, overrides,
and failure recording. Machinery runs use the synthetic test run function (no training)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lowrankdp.results import read_record
from lowrankdp.sweep import RunIndex, load_config, run_sweep
from lowrankdp.sweep.config import SweepConfig, merge_overrides

SYNTH = "synthetic"
ROOT = Path(__file__).resolve().parents[1]


def _data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    for split in ("train", "valid", "test"):
        (d / f"{split}.jsonl").write_text('{"id": "0", "text": "x", "split": "%s", "spans": [], "canary": false}\n' % split)
    return d


def _cfg(tmp_path: Path, **grid) -> dict:
    g = {"methods": ["fft", "lora", "dp-sgd"], "models": ["m"], "datasets": ["x"], "epochs": [1]}
    g.update(grid)
    return {"name": "t", "grid": g, "datasets": {"x": {"path": str(_data_dir(tmp_path))}}}


def _write_toml(path: Path, d: dict) -> Path:
    # tiny TOML writer for the shapes used here
    lines = []

    def val(v):
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(v)

    for k, v in d.items():
        if not isinstance(v, dict):
            lines.append(f"{k} = {val(v)}")
    for k, v in d.items():
        if isinstance(v, dict):
            flat = {kk: vv for kk, vv in v.items() if not isinstance(vv, dict)}
            if flat:
                lines.append(f"[{k}]")
                lines += [f"{kk} = {val(vv)}" for kk, vv in flat.items()]
            for kk, vv in v.items():
                if isinstance(vv, dict):
                    lines.append(f"[{k}.{kk}]")
                    lines += [f"{a} = {val(b)}" for a, b in vv.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------- the four named bad configs


def test_unknown_method_names_field(tmp_path):
    with pytest.raises(ValueError, match=r"grid\.methods\[1\] must be one of .*got 'lorra'"):
        SweepConfig.from_dict(_cfg(tmp_path, methods=["fft", "lorra"]))


def test_rank_larger_than_layer_names_field(tmp_path):
    cfg = SweepConfig.from_dict(_cfg(tmp_path, models=["pythia-70m-shape"], ranks=[8, 1024]))
    with pytest.raises(ValueError, match=r"grid\.ranks\[1\] = 1024 is larger than the layer width 512"):
        cfg.validate()
    # a local checkpoint: width read from its config.json
    ck = tmp_path / "ckpt"
    ck.mkdir()
    (ck / "config.json").write_text(json.dumps({"hidden_size": 16}))
    cfg = SweepConfig.from_dict(_cfg(tmp_path, models=[str(ck)], ranks=[32]))
    with pytest.raises(ValueError, match=r"grid\.ranks\[0\] = 32 is larger than the layer width 16"):
        cfg.validate()
    # rank-free methods only: no rank check needed
    SweepConfig.from_dict(_cfg(tmp_path, methods=["fft"], models=[str(ck)], ranks=[32])).validate()


def test_negative_sigma_names_field(tmp_path):
    with pytest.raises(ValueError, match=r"grid\.noise_multipliers\[1\] must be in \[0, inf\), got -0\.5"):
        SweepConfig.from_dict(_cfg(tmp_path, noise_multipliers=[1.0, -0.5]))


def test_missing_data_directory_names_field(tmp_path):
    d = _cfg(tmp_path)
    d["datasets"]["x"]["path"] = str(tmp_path / "nope")
    cfg = SweepConfig.from_dict(d)
    with pytest.raises(ValueError, match=r"datasets\.x\.path: data directory does not exist"):
        cfg.validate()
    # run_sweep refuses before creating any run directory
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"datasets\.x\.path"):
        run_sweep(cfg, out, runner=SYNTH, stream=None)
    assert not (out / "runs").exists() and not (out / "index.sqlite").exists()


@pytest.mark.parametrize(
    "grid, pattern",
    [
        ({"methods": ["fft", "lorra"]}, r"grid\.methods\[1\] must be one of"),
        ({"noise_multipliers": [-1]}, r"grid\.noise_multipliers\[0\] must be in \[0, inf\)"),
        ({"models": ["pythia-160m"], "ranks": [4096]}, r"grid\.ranks\[0\] = 4096 is larger than the layer width 768"),
    ],
)
def test_cli_rejects_bad_config_before_training(tmp_path, grid, pattern):
    cfg = _write_toml(tmp_path / "bad.toml", _cfg(tmp_path, **grid))
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "lowrankdp.cli", "sweep", str(cfg), "--out", str(out),
                          "--runner", SYNTH], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 2, res.stderr
    import re

    assert re.search(pattern, res.stderr), res.stderr
    assert "Traceback" not in res.stderr
    assert not (out / "runs").exists()


def test_other_field_errors(tmp_path):
    for mutate, pattern in [
        (lambda d: d["grid"].update(ranks=[0]), r"grid\.ranks\[0\] must be an integer in \[1, inf\)"),
        (lambda d: d["grid"].update(epochs=[]), r"grid\.epochs must be a non-empty list"),
        (lambda d: d.update(train={"lr": -1}), r"train\.lr must be in \(0, inf\)"),
        (lambda d: d.update(train={"rank": 4}), r"train\.rank is set by the grid \(grid\.ranks\)"),
        (lambda d: d.update(train={"projection": "sometimes"}), r"train\.projection must be one of"),
        (lambda d: d["grid"].update(datasets=["y"]), r"grid\.datasets\[0\]: dataset 'y' has no \[datasets\.y\]"),
        (lambda d: d.update(grdi={}), r"grdi is not a known field"),
        (lambda d: d.update(method={"lorra": {"lr": 1e-3}}), r"method\.lorra must be one of"),
        (lambda d: d["datasets"]["x"].update(generate="customersim"), r"datasets\.x must set exactly one of"),
    ]:
        d = _cfg(tmp_path)
        mutate(d)
        with pytest.raises(ValueError, match=pattern):
            SweepConfig.from_dict(d)


# --------------------------------------------------------------------- expansion, keys, overrides


def test_grid_collapses_unused_axes_and_keys_are_stable(tmp_path):
    d = _cfg(tmp_path, methods=["fft", "lora", "dp-sgd", "compressed-dp-sgd"], ranks=[4, 8], alphas=[4, 8],
             noise_multipliers=[0.5, 1.0], seeds=[0, 1])
    cfg = SweepConfig.from_dict(d)
    runs = cfg.runs(tmp_path / "out")
    by = {}
    for r in runs:
        by.setdefault(r.config["method"], []).append(r)
    assert len(by["fft"]) == 2  # seeds only
    assert len(by["lora"]) == 2 * 2 * 2  # ranks × alphas × seeds
    assert len(by["dp-sgd"]) == 2 * 2  # σ × seeds
    assert len(by["compressed-dp-sgd"]) == 2 * 2 * 2  # ranks × σ × seeds
    assert all("rank" not in r.config and "noise_multiplier" not in r.config for r in by["fft"])
    assert all("noise_multiplier" not in r.config for r in by["lora"])
    assert len({r.key for r in runs}) == len(runs)
    again = SweepConfig.from_dict(d).runs(tmp_path / "elsewhere")  # key independent of the output dir
    assert [r.key for r in again] == [r.key for r in runs]
    d2 = _cfg(tmp_path, methods=["fft", "lora", "dp-sgd", "compressed-dp-sgd"], ranks=[4, 8], alphas=[4, 8],
              noise_multipliers=[0.5, 1.0], seeds=[0, 1])
    d2["train"] = {"lr": 0.01}
    assert {r.key for r in SweepConfig.from_dict(d2).runs(tmp_path)}.isdisjoint({r.key for r in runs})


def test_presets_load_and_override_files(tmp_path):
    smoke = load_config("smoke")
    assert set(smoke.grid.methods) == {"fft", "lora", "lora-fa", "dp-sgd", "dp-lora", "compressed-dp-sgd"}
    assert smoke.grid.models == ("tiny",) and len(smoke.runs(tmp_path)) == 6
    paper = load_config("paper")
    assert paper.grid.epochs == (8,) and paper.grid.target_epsilons == (1.0, 3.0, 8.0)
    assert paper.method["fft"]["lr"] == 2.5e-4 and paper.execution.gpus_per_run == 1
    assert all(paper.method[m]["batch_size"] == 1024 and paper.method[m]["micro_batch_size"] == 64
               for m in ("dp-sgd", "dp-sgd-targets", "compressed-dp-sgd", "dp-lora", "dp-lora-fa"))
    assert len(paper.runs(tmp_path)) == 288  # 3 + 5 x 3 ε x 3 lr, x 2 datasets x 3 seeds (its header)
    small = load_config("small")
    runs = small.runs(tmp_path)
    assert len(runs) == 39 and len({r.config["seed"] for r in runs}) == 3
    assert {r.config.get("target_epsilon") for r in runs} == {None, 2.0, 8.0}
    over = tmp_path / "o.yaml"
    over.write_text("extends: smoke\ngrid:\n  seeds: [0, 1]\n  methods: [fft, lora]\n")
    c = load_config(over)
    assert c.grid.seeds == (0, 1) and c.grid.methods == ("fft", "lora") and c.grid.models == ("tiny",)
    assert len(c.runs(tmp_path)) == 4
    c2 = load_config("smoke", overrides=[over], set_values={"grid.epochs": [2]})
    assert c2.grid.epochs == (2,)
    assert merge_overrides({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}}) == {"a": {"b": 1, "c": [2]}}
    for f in sorted((ROOT / "experiments" / "configs").glob("*.*")):
        load_config(f)  # every shipped example override is valid


# --------------------------------------------------------------------- failures are recorded


def test_failed_and_crashed_runs_are_recorded_and_the_sweep_goes_on(tmp_path):
    d = _cfg(tmp_path, methods=["fft"], models=["m", "synthetic-fail", "synthetic-crash"])
    cfg = SweepConfig.from_dict(d)
    res = run_sweep(cfg, tmp_path / "out", runner=SYNTH, stream=None)
    assert res.ran == ["fft_m_x_e1_seed0"]
    assert "RuntimeError: synthetic failure" in res.failed["fft_synthetic-fail_x_e1_seed0"]
    assert "SIGKILL" in res.failed["fft_synthetic-crash_x_e1_seed0"]
    rows = {r["name"]: r for r in RunIndex(tmp_path / "out" / "index.sqlite").rows()}
    assert rows["fft_m_x_e1_seed0"]["status"] == "ok"
    assert rows["fft_synthetic-fail_x_e1_seed0"]["status"] == "failed"
    assert "synthetic failure" in rows["fft_synthetic-fail_x_e1_seed0"]["reason"]
    rec = read_record(tmp_path / "out" / rows["fft_m_x_e1_seed0"]["run_dir"])
    assert rec.status.value == "ok" and rec.synthetic and rec.config["seed"] == 0 and rec.wall_time_s >= 0
    for k in ("git_commit", "git_dirty", "packages", "device"):
        assert k in rec.provenance
    # the failed and the crashed run have a finished, failed result file with the reason
    crashed = read_record(tmp_path / "out" / rows["fft_synthetic-crash_x_e1_seed0"]["run_dir"])
    assert crashed.status.value == "failed" and "SIGKILL" in crashed.reason
    # a second sweep into the same directory must be asked for explicitly
    with pytest.raises(ValueError, match="--resume"):
        run_sweep(cfg, tmp_path / "out", runner=SYNTH, stream=None)
    # --resume skips finished runs, failed included, unless retry_failed
    res2 = run_sweep(cfg, tmp_path / "out", runner=SYNTH, stream=None, resume=True)
    assert res2.ran == [] and not res2.failed and len(res2.skipped) == 3
    res3 = run_sweep(cfg, tmp_path / "out", runner=SYNTH, stream=None, resume=True, retry_failed=True)
    assert len(res3.failed) == 2 and res3.ran == []
    idx = RunIndex(tmp_path / "out" / "index.sqlite")
    assert len(idx.rows()) == 3
    assert len(idx.attempts()) == 5  # 3 first attempts + 2 retries


def test_finetune_config_errors_are_caught_before_any_run(tmp_path):
    """Fields only FinetuneConfig knows are checked (in a torch child process) before any run starts."""
    d = _cfg(tmp_path, methods=["fft", "lora"])
    d["train"] = {"optimizer": "adam"}
    cfg = SweepConfig.from_dict(d)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"run fft_m_x_e1_seed0: optimizer must be one of 'adamw', 'sgd'"):
        run_sweep(cfg, out, stream=None)
    assert not (out / "runs").exists()
    assert RunIndex(out / "index.sqlite").rows() == []  # nothing registered: a fixed config can start afresh


# ------------------------------------------------------------------------------ target ε axes
def _eps_cfg(tmp_path, **grid):
    d = _cfg(tmp_path, methods=["fft", "dp-sgd", "compressed-dp-sgd"])
    d["grid"].pop("noise_multipliers", None)
    d["grid"].update(grid)
    return d


def test_target_epsilon_axis_expands_private_methods_only(tmp_path):
    cfg = SweepConfig.from_dict(_eps_cfg(tmp_path, target_epsilons=[2.0, 8.0]))
    names = sorted(r.name for r in cfg.runs(tmp_path))
    assert names == ["compressed-dp-sgd_m_x_r8_eps2_e1_seed0", "compressed-dp-sgd_m_x_r8_eps8_e1_seed0",
                     "dp-sgd_m_x_eps2_e1_seed0", "dp-sgd_m_x_eps8_e1_seed0", "fft_m_x_e1_seed0"]
    assert {r.config.get("target_epsilon") for r in cfg.runs(tmp_path)} == {None, 2.0, 8.0}


@pytest.mark.parametrize("grid,match", [
    ({"target_epsilons": [0.0]}, r"^grid\.target_epsilons\[0\] must be in \(0, inf\)"),
    ({"target_epsilons": [-1.0]}, r"^grid\.target_epsilons\[0\]"),
    ({"target_epsilons": [2.0], "noise_multipliers": [1.0]}, r"^grid\.noise_multipliers and grid\.target_epsilons"),
])
def test_bad_target_axes_name_the_field(tmp_path, grid, match):
    with pytest.raises(ValueError, match=match):
        SweepConfig.from_dict(_eps_cfg(tmp_path, **grid))


def test_target_for_a_grid_without_private_methods_is_refused(tmp_path):
    d = _cfg(tmp_path, methods=["fft", "lora"])
    d["grid"].pop("noise_multipliers", None)
    d["grid"]["target_epsilons"] = [3.0]
    with pytest.raises(ValueError, match=r"^grid\.target_epsilons applies only to private methods"):
        SweepConfig.from_dict(d)
    from lowrankdp.finetune.config import FinetuneConfig

    with pytest.raises(ValueError, match=r"^target_epsilon applies only to private methods"):
        FinetuneConfig(method="lora", data="d", out_dir="o", target_epsilon=3.0)


def test_unreachable_target_fails_before_any_run_and_says_the_smallest_reachable(tmp_path):
    d = _eps_cfg(tmp_path, target_epsilons=[1e-3])
    d["datasets"]["x"] = {"generate": "customersim", "sizes": {"train": 40, "valid": 2, "test": 4},
                          "canary_repeats": 0}
    cfg = SweepConfig.from_dict(d)
    with pytest.raises(ValueError, match=r"grid\.target_epsilons: 0\.001 cannot be reached .*smallest epsilon "
                                         r"reachable there is"):
        run_sweep(cfg, tmp_path / "out", stream=None)
    assert not (tmp_path / "out" / "runs").exists()
