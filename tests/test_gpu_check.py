"""``lowrankdp gpu-check``: the whole check rehearsed on the CPU, and its time-boxing and bookkeeping.

The dry run executes every stage of the GPU check (GPU test suite, benchmark rows, pretraining a base,
the ``gpu`` sweep preset, the results pages) at toy sizes, so the first run on a GPU cannot fail on a typo.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lowrankdp.gpu_check import STAGES, gpu_test_files, plan_for, run_command
from lowrankdp.gpu_check.check import REPO_ROOT, _Check, _junit_counts
from lowrankdp.gpu_check.env import carried_packages

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ the dry run
@pytest.fixture(scope="module")
def dry(tiny_base_path, tmp_path_factory):
    """The whole check in dry mode (about a minute of CPU; more on a loaded machine)."""
    pytest.importorskip("opacus")
    pytest.importorskip("faker")
    from lowrankdp.gpu_check import run_check

    work = tmp_path_factory.mktemp("gpu_check") / "work"
    out = tmp_path_factory.mktemp("gpu_check_out")
    t = time.monotonic()
    doc = run_check(mode="dry", work_dir=work, copy_to=out, stream=None)
    return {"doc": doc, "work": work, "out": out, "seconds": time.monotonic() - t}


def test_dry_run_every_stage_ok(dry):
    doc = dry["doc"]
    assert [s["name"] for s in doc["stages"]] == list(STAGES)
    bad = {s["name"]: s["reason"] for s in doc["stages"] if s["status"] != "ok"}
    assert not bad, bad
    assert doc["total_s"] <= doc["budget_s"]


def test_dry_run_stage_details(dry):
    st = {s["name"]: s for s in dry["doc"]["stages"]}
    assert st["setup"]["detail"]["cuda_available"] in (True, False) and st["setup"]["detail"]["torch"]
    t = st["tests"]["detail"]
    assert t["tests"] >= 5 and t["passed"] >= 5 and t["failures"] == t["errors"] == 0, t
    (setting,) = st["benchmark"]["detail"]["settings"]
    assert setting["rows_ok"] == setting["rows"] == 4, setting["errors"]
    verdicts = {x["row"]: x["verdict"] for x in setting["targets"]}
    assert verdicts["dp-sgd (ghost)"] in ("met", "missed") and verdicts["dp-lora (hooks)"] == "not measured"
    base = st["pretrain"]["detail"]
    assert base["steps"] > 0 and base["heldout_loss"] > 0 and base["precision"] == "fp32"
    assert base["architecture"]["num_layers"] == 2 and base["architecture"]["vocab"] == "tokenizer"
    runs = {r["method"]: r for r in st["replication-report"]["detail"]["runs"]}
    assert set(runs) == {"fft", "dp-sgd"}
    for m, r in runs.items():  # every number the summary shows is read from the stored run (format drift fails here)
        assert r["status"] == "ok", r["reason"]
        for key in ("utility_loss", "utility_loss_base", "sensitive_loss", "memorization_gap", "exposure_bits",
                    "loss_auc", "loss_eps_lower_bound", "steps", "tokens_per_s"):
            assert r[key] is not None, (m, key)
        assert len(r["loss_auc_ci"]) == 2
    assert runs["fft"]["epsilon"] == float("inf") and runs["fft"]["target_epsilon"] is None
    dp = runs["dp-sgd"]  # σ calibrated to the gpu preset's target ε by the run itself
    assert dp["target_epsilon"] == 8.0 and dp["noise_multiplier"] > 0
    assert 7.5 < dp["epsilon"] <= 8.0 * (1 + 1e-6)


def test_dry_run_files_and_screen(dry):
    import tarfile

    res = dry["work"] / "results"
    for name in ("gpu_check", "gpu_finetune_benchmark", "gpu_replication"):
        assert (res / f"{name}.md").is_file() and json.loads((res / f"{name}.json").read_text())
    assert (res / "gpu_replication_report" / "report.md").is_file()
    bench = json.loads((res / "gpu_finetune_benchmark.json").read_text())
    assert bench["provenance"]["git_commit"] and bench["settings"][0]["rows"][0]["profile"]["top"]
    check = json.loads((res / "gpu_check.json").read_text())
    assert check["meta"]["mode"] == "dry" and check["meta"]["date"] and check["environment"]["provenance"]
    screen = dry["doc"]["screen"].splitlines()
    assert len(screen) <= 30 and all(len(x) <= 130 for x in screen)
    out = dry["out"]
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.md", "gpu_check_results.tar.gz",
                                                     "gpu_check_summary.txt"]
    with tarfile.open(out / "gpu_check_results.tar.gz") as tar:
        names = tar.getnames()
    assert "results/gpu_check.json" in names and "results/gpu_replication.md" in names
    assert "logs/tests.log" in names and "logs/sweep.log" in names
    assert all(p.stat().st_size < 16 * 2**20 for p in out.iterdir())  # what one file may be, coming back


# ------------------------------------------------------------------------------------------ time-boxing
def test_run_command_kills_the_whole_group_at_its_limit(tmp_path):
    pid_file = tmp_path / "child.pid"
    code = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
            f" open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    t = time.monotonic()
    status, rc, secs = run_command([sys.executable, "-c", code], timeout_s=3, log_path=tmp_path / "x.log")
    assert status == "timeout" and rc is None
    assert 3 <= secs < 20 and time.monotonic() - t < 25
    child = int(pid_file.read_text())
    state = Path(f"/proc/{child}/status")
    time.sleep(0.5)
    assert not state.exists() or "zombie" in state.read_text().lower()  # the grandchild went with the group
    assert "time limit" in (tmp_path / "x.log").read_text()


def test_failed_stage_is_recorded_and_the_next_runs(tmp_path):
    plan = plan_for("dry", budget_s=60)
    chk = _Check(plan, work_dir=tmp_path, results_dir=tmp_path / "res", stream=None, python=sys.executable)
    a = chk.stage("setup", [sys.executable, "-c", "import sys; print('boom: bad thing'); sys.exit(3)"])
    b = chk.stage("tests", [sys.executable, "-c", "print('fine')"])
    c = chk.stage("benchmark", None, skip_reason="nothing to do")
    assert a.status == "failed" and a.reason.startswith("exit status 3") and "boom: bad thing" in a.reason
    assert b.status == "ok" and b.reason is None and (tmp_path / b.log).read_text().endswith("fine\n")
    assert c.status == "skipped" and c.reason == "nothing to do"


def test_stage_limits_keep_time_for_the_later_stages(tmp_path):
    plan = plan_for("gpu", budget_s=200)
    chk = _Check(plan, work_dir=tmp_path, results_dir=tmp_path, stream=None, python=sys.executable)
    later = sum(plan.floors[s] for s in STAGES[1:])
    assert chk.limit("setup") == pytest.approx(min(plan.caps["setup"], 200 - later), abs=1)
    assert chk.limit("replication-report") == pytest.approx(min(plan.caps["replication-report"], 200), abs=1)
    chk.deadline = time.monotonic() + 3  # budget spent: the stage is skipped, not started
    res = chk.stage("sweep", [sys.executable, "-c", "raise SystemExit(1)"])
    assert res.status == "skipped" and "budget" in res.reason


def test_gpu_plan_fits_the_budget_and_dry_plan_shares_its_stages():
    gpu, dry = plan_for("gpu"), plan_for("dry")
    assert gpu.budget_s <= 540 and sum(gpu.floors.values()) < gpu.budget_s
    assert set(gpu.caps) == set(gpu.floors) == set(dry.caps) == set(STAGES)
    assert gpu.device == "cuda" and dry.device == "cpu"
    assert gpu.sweep_preset == dry.sweep_preset == "gpu"
    with pytest.raises(ValueError, match="^mode"):
        plan_for("tpu")
    with pytest.raises(ValueError, match="^budget_s"):
        plan_for("gpu", budget_s=0)


def test_gpu_preset_scale():
    """The preset runs at the scale the issue asks for (thousands of records, DP batches near 1,024), every
    private run at the same target ε, and each matched pair at the same learning rate."""
    from lowrankdp import accounting
    from lowrankdp.methods import METHOD_NAMES, PRIVATE_METHODS
    from lowrankdp.sweep import load_config

    cfg = load_config("gpu")
    runs = cfg.runs("/nonexistent")
    by_method = {r.config["method"]: r.config for r in runs}
    assert len(runs) == len(by_method) and set(by_method) == set(METHOD_NAMES)  # one run per method
    sizes = cfg.datasets["customersim"].sizes
    assert sizes["train"] >= 1000 and sizes["test"] >= 1000
    dp = [c for m, c in by_method.items() if m in PRIVATE_METHODS]
    assert dp and all(c["batch_size"] == 1024 and c["micro_batch_size"] < 1024 and c["device"] == "cuda" for c in dp)
    assert {c["target_epsilon"] for c in dp} == {8.0} and all(c.get("noise_multiplier") is None for c in dp)
    for a, b in (("dp-lora", "dp-lora-fa"), ("compressed-dp-sgd", "dp-sgd-targets")):
        assert by_method[a]["lr"] == by_method[b]["lr"], (a, b)
    n = sizes["train"] + cfg.datasets["customersim"].canary_repeats
    q = 1 / -(-n // 1024)  # opacus's rate, 1 / number of batches
    sigma = accounting.calibrate_noise(target_epsilon=8.0, sampling_rate=q, steps=dp[0]["epochs"] * round(1 / q),
                                       delta=dp[0]["delta"])
    assert 1.18 < sigma < 1.28  # the header's "sigma ≈ 1.23"


def test_gpu_preset_runs_are_valid_finetune_configs(tmp_path):
    """Every resolved run of the preset is a valid FinetuneConfig (field checks; the CUDA check of validate()
    needs the GPU), so the sweep stage cannot stop at validation on the device."""
    pytest.importorskip("torch")
    from lowrankdp.finetune import FinetuneConfig
    from lowrankdp.sweep import load_config

    for r in load_config("gpu", set_values={"grid.models": [str(tmp_path / "base")]}).runs(tmp_path):
        cfg = FinetuneConfig(**r.config, out_dir=str(tmp_path / r.name))
        assert cfg.device == "cuda" and cfg.dtype == "float32"
        assert cfg.exposure_max_candidates < 10**6  # fitted exposure, not the exact 10^6-candidate ranking


# ------------------------------------------------------------------------------------------ bookkeeping
def test_gpu_test_files_found_by_marker():
    files = gpu_test_files()
    assert "tests/test_gpu.py" in files and "tests/test_measure.py" in files
    assert "tests/test_gpu_check.py" not in files  # this file has no GPU test
    assert all((REPO_ROOT / f).is_file() for f in files)


def test_junit_counts(tmp_path):
    f = tmp_path / "j.xml"
    f.write_text('<testsuites><testsuite tests="4" failures="1" errors="0" skipped="1">'
                 '<testcase name="a"/><testcase name="b"><failure message="assert 1 == 2&#10;more"/></testcase>'
                 '<testcase name="c"><skipped/></testcase><testcase name="d"/></testsuite></testsuites>')
    c = _junit_counts(f)
    assert (c["passed"], c["failures"], c["skipped"]) == (2, 1, 1)
    assert c["failed_tests"] == ["b: assert 1 == 2"]
    assert "error" in _junit_counts(tmp_path / "missing.xml")


def test_comparison_page_pairs_runs_at_equal_target_epsilon():
    """Matched pairs are formed only between runs that finished at the same target ε; the page groups private
    runs by target ε after the non-private ones."""
    from lowrankdp.gpu_check.replication import markdown, pairs_at_equal_epsilon

    def row(method, target, utility, status="ok"):
        return {"name": f"{method}_eps{target}", "method": method, "status": status, "reason": None,
                "target_epsilon": target, "noise_multiplier": None if target is None else 1.0,
                "epsilon": float("inf") if target is None else target, "utility_loss": utility,
                "sensitive_loss": 2.0, "loss_auc": 0.6, "loss_auc_ci": [0.55, 0.65], "exposure_bits": 1.0}

    rows = [row("dp-lora-fa", 8.0, 3.5), row("compressed-dp-sgd", 3.0, 3.0), row("dp-lora", 8.0, 3.25),
            row("dp-sgd-targets", 8.0, 3.0), row("compressed-dp-sgd", 8.0, 4.0, status="failed"),
            row("fft", None, 2.0), row("dp-lora", 3.0, 4.0)]
    pairs = pairs_at_equal_epsilon(rows)
    assert [(q["target_epsilon"], q["method"], q["baseline"]) for q in pairs] == [(8.0, "dp-lora", "dp-lora-fa")]
    assert pairs[0]["difference"]["utility_loss"] == pytest.approx(-0.25)
    md = markdown(rows, None, {"mode": "dry"})
    table = [x for x in md.splitlines() if x.startswith("| ") and "_eps" not in x][1:8]
    assert [x.split(" | ")[:2] for x in table] == [
        ["| (none)", "fft"], ["| 3", "dp-lora"], ["| 3", "compressed-dp-sgd"], ["| 8", "dp-lora"],
        ["| 8", "dp-lora-fa"], ["| 8", "dp-sgd-targets"], ["| 8", "compressed-dp-sgd"]]
    assert "| 8 | dp-lora − dp-lora-fa | 8.00, 8.00 | -0.250 |" in md


def test_carried_packages(tmp_path):
    (tmp_path / "opacus-1.6.0.dist-info").mkdir()
    (tmp_path / "Faker-40.63.0.dist-info").mkdir()
    assert carried_packages(tmp_path) == {"faker": "40.63.0", "opacus": "1.6.0"}
    assert carried_packages(None) == {} and carried_packages(tmp_path / "nope") == {}


def test_pretrain_args_of_both_plans_parse():
    """The pretrain stage is `lowrankdp model pretrain`: the GPU plan's arguments (which only a GPU runs) are
    accepted by its parser, and they name the pythia-70m body with a time budget."""
    from lowrankdp.cli import build_parser

    for mode in ("gpu", "dry"):
        plan = plan_for(mode)
        args = build_parser().parse_args(["model", "pretrain", "--out", "x", "--device", plan.device,
                                          *plan.pretrain_args])
        assert args.shape == "pythia-70m-shape" and args.seconds > 0 and args.steps is None
        assert args.vocab == "tokenizer" and args.max_steps >= 1
    assert build_parser().parse_args(["model", "pretrain", "--out", "x", *plan_for("gpu").pretrain_args]).layers is None


def test_cli_gpu_mode_without_cuda_is_a_one_line_error(tiny_base_path, tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "lowrankdp", "gpu-check", "--work-dir", str(tmp_path / "w"),
                          "--results-dir", str(tmp_path / "r")], capture_output=True, text=True, env=env,
                         timeout=300)
    assert res.returncode == 2
    err = res.stderr.strip().splitlines()[-1]
    assert err.startswith("lowrankdp gpu-check: error: no CUDA device") and "--dry-run" in err
    assert not (tmp_path / "r").exists()  # nothing written into the results folder


def test_cli_refuses_a_work_dir_that_is_not_a_check(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "lowrankdp", "gpu-check", "--dry-run", "--work-dir", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2 and "is not empty" in res.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_prepare_device_wheels_dry_run():
    pytest.importorskip("opacus")
    pytest.importorskip("faker")
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "prepare_device_wheels.py"), "--dry-run",
                          "--pin", "peft==0.21.2"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert "torch" not in d["pins"] and "torch" in d["not_carried"]
    assert set(d["pins"]) >= {"transformers", "peft", "opacus", "faker"} and d["pins"]["peft"] == "0.21.2"
    cmd = d["command"]
    assert "--no-deps" in cmd and cmd[cmd.index("--python-version") + 1] == "3.12"
    assert "transformers==" + d["pins"]["transformers"] in cmd
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "prepare_device_wheels.py"), "--dry-run",
                          "--pin", "torch==2.11.0"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "never carried" in bad.stderr
