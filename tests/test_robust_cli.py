"""Hostile and careless inputs to the CLI outside `data`: OSErrors, `wishart` edge cases, `measure` and `model`
options checked before any computation, and sweep config files parsed with bounded work."""

from __future__ import annotations

import errno
import json
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowrankdp import wishart
from lowrankdp.cli import main, os_error_message
from lowrankdp.sweep.config import _MAX_CONFIG_DEPTH, _read_file


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1, captured.err
    return captured.err


# ------------------------------------------------------------------------------------------ OSError


@pytest.mark.parametrize("exc,expect", [
    (OSError(errno.ENOSPC, "No space left on device", "/data/x/train.jsonl"),
     "No space left on device: /data/x/train.jsonl"),
    (PermissionError(errno.EACCES, "Permission denied", "/root/x"), "Permission denied: /root/x"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "out.json"), "Is a directory: out.json"),
    (OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b"), "Invalid cross-device link: a -> b"),
    (OSError("disk on fire"), "disk on fire"),
])
def test_os_error_in_any_handler_is_one_line_exit_2(monkeypatch, capsys, exc, expect):
    from lowrankdp.commands import wishart as cmd

    def boom(args):
        raise exc

    monkeypatch.setattr(cmd, "_run", boom)
    assert main(["wishart", "--d", "4", "--r", "2", "--rho", "0.5", "--delta", "0.1"]) == 2
    assert _one_line_error(capsys) == f"lowrankdp wishart: error: {expect}\n"
    assert os_error_message(exc) == expect


def test_multi_line_value_error_is_printed_on_one_line(monkeypatch, capsys):
    from lowrankdp.commands import wishart as cmd

    def boom(args):
        raise ValueError("first line\nsecond line")

    monkeypatch.setattr(cmd, "_run", boom)
    assert main(["wishart", "--d", "4", "--r", "2", "--rho", "0.5", "--delta", "0.1"]) == 2
    assert _one_line_error(capsys) == "lowrankdp wishart: error: first line second line\n"


# ------------------------------------------------------------------------------------------ wishart


def test_wishart_rho_near_minus_one_large_r_is_inf_not_runtime_error(capsys):
    # The neighbour's mass off the support rounds to 1: no finite ε for any δ < 1.
    assert wishart.exact_epsilon(d=400, r=400, rho=-0.99, delta=0.01) == math.inf
    prof = wishart.exact_delta_with_error(d=400, r=400, rho=-0.99, epsilon=3.0)
    assert prof.lower == prof.estimate == wishart.support_delta(rho=-0.99, r=400) and prof.upper <= 1.0
    assert main(["wishart", "--d", "400", "--r", "400", "--rho", "-0.99", "--delta", "0.01"]) == 0
    out = capsys.readouterr().out
    assert out.count("inf (no finite epsilon exists: delta <= support delta)") == 3


def test_wishart_huge_d_computes_the_exact_epsilon_below_theorem1(capsys):
    # Before: exact ε printed "inf (no finite bound)" next to a finite Theorem 1 (bracketing stopped at 1e7).
    d, r, rho, delta = 10 ** 8, 5 * 10 ** 7, 0.9, 0.01
    exact = wishart.exact_epsilon(d=d, r=r, rho=rho, delta=delta)
    bound = wishart.theorem1_epsilon(d=d, r=r, rho=rho, delta=delta)
    assert 1e7 > bound >= exact > 4e6
    # independent check: Monte Carlo δ(ε) = E[(1 - e^{ε-L})_+] at the computed ε, tolerance 4 standard errors
    loss = wishart.privacy_loss_samples(d=d, r=r, rho=rho, n=200_000, rng=7)
    x = np.clip(-np.expm1(np.minimum(exact - loss, 50.0)), 0.0, None)
    se = x.std() / math.sqrt(x.size)
    assert abs(x.mean() - delta) <= 4 * se, (x.mean(), se)
    assert main(["wishart", "--d", str(d), "--r", str(r), "--rho", "0.9", "--delta", "0.01", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["exact_epsilon"] == pytest.approx(exact) and not any("inf" in n for n in res["notes"][2:])


_EXTREME = dict(d=108_126_222, r=108_126_222, rho=0.9999999996028082)  # found by fuzzing: ~40 s per δ(ε)


def test_wishart_quadrature_work_is_bounded_and_keeps_its_error_interval():
    t0 = time.process_time()
    with pytest.warns(RuntimeWarning, match="stopped at"):
        res = wishart.exact_delta_with_error(**_EXTREME, epsilon=0.0)
    assert time.process_time() - t0 < 10.0
    assert res.lower <= res.estimate <= res.upper and res.upper - res.lower < 1e-6


@pytest.mark.slow
def test_wishart_extreme_exact_epsilon_stays_below_theorem1():
    with pytest.warns(RuntimeWarning):
        exact = wishart.exact_epsilon(**_EXTREME, delta=0.03)
    assert 0.0 < exact <= wishart.theorem1_epsilon(**_EXTREME, delta=0.03)


def test_wishart_cli_says_why_theorem1_is_inf(capsys):
    assert main(["wishart", "--d", "400", "--r", "10", "--rho", "0.01", "--delta", "0.6"]) == 0
    out = capsys.readouterr().out
    assert "inf (Theorem 1 gives no finite bound here: rho <= K" in out
    exact_line = [ln for ln in out.splitlines() if ln.strip().startswith("exact epsilon")][0]
    assert "inf" not in exact_line


# ------------------------------------------------------------------------------------------ measure, model


def _no_model_load(monkeypatch):
    from lowrankdp.commands import measure as cmd

    def fail(*a, **k):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(cmd, "_load", fail)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from lowrankdp.data import generate

    return generate("synbio", out_dir=tmp_path_factory.mktemp("m") / "ds", seed=0,
                    sizes={"train": 3, "valid": 1, "test": 2}, canary_repeats=1)


@pytest.mark.parametrize("args,expect", [
    (["--device", "foo"], "--device must be a torch device such as cpu, cuda or cuda:1, got 'foo'"),
    (["--device", "cuda:97"], "--device 'cuda:97' is not available on this machine"),
    (["--out", "/proc/lowrankdp-m.json"], "--out /proc/lowrankdp-m.json: cannot write a file there"),
])
def test_measure_options_checked_before_loading(monkeypatch, capsys, dataset, args, expect):
    _no_model_load(monkeypatch)
    assert main(["measure", "--model", "tiny", "--data", str(dataset), *args]) == 2
    assert expect in _one_line_error(capsys)


def test_measure_out_that_is_a_directory(monkeypatch, capsys, dataset, tmp_path):
    _no_model_load(monkeypatch)
    assert main(["measure", "--model", "tiny", "--data", str(dataset), "--out", str(tmp_path)]) == 2
    assert f"--out must be a file path, got the directory {tmp_path}" in _one_line_error(capsys)


def test_model_build_cache_dir_that_is_a_file(monkeypatch, capsys, tmp_path):
    import lowrankdp.models as models

    def fail(*a, **k):
        raise AssertionError("build started before --cache-dir was checked")

    monkeypatch.setattr(models, "build_tiny", fail)
    f = tmp_path / "file"
    f.write_text("")
    assert main(["model", "build", "--cache-dir", str(f)]) == 2
    assert f"--cache-dir must be a directory, got {f}" in _one_line_error(capsys)
    assert main(["model", "build", "--cache-dir", "/proc/lowrankdp-c"]) == 2
    assert "--cache-dir /proc/lowrankdp-c: cannot write there" in _one_line_error(capsys)


@pytest.mark.parametrize("make,expect", [
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: None, "does not exist"),
])
def test_model_eval_task_file_checked_first(monkeypatch, capsys, tmp_path, make, expect):
    import lowrankdp.models as models

    monkeypatch.setattr(models, "load_base", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    p = tmp_path / "task.jsonl"
    make(p)
    assert main(["model", "eval", "tiny", "--task-file", str(p)]) == 2
    assert f"--task-file {p} {expect}" in _one_line_error(capsys)


# ------------------------------------------------------------------------------------------ sweep config files


def _billion_laughs(levels: int = 10) -> str:
    """A valid smoke config whose free-form ``train.extra`` holds 9**10 "lol"s through nested aliases
    (before: ``sweep --dry-run`` ran past 20 s and kept growing)."""
    anchors = ['&l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    anchors += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "extends: smoke\nname: bomb\ntrain:\n  extra:\n    lol: [" + ", ".join(anchors) + "]\n"


def test_yaml_alias_bomb_fails_fast_even_in_dry_run(tmp_path, capsys):
    f = tmp_path / "bomb.yaml"
    f.write_text(_billion_laughs())
    t0 = time.perf_counter()
    assert main(["sweep", str(f), "--dry-run", "--out", str(tmp_path / "o")]) == 2
    assert time.perf_counter() - t0 < 10
    assert f"{f}: YAML expands to more than" in _one_line_error(capsys)


def test_yaml_small_aliases_still_work(tmp_path):
    f = tmp_path / "ok.yaml"
    f.write_text("base: &b {lr: 0.001, epochs: 2}\ntrain:\n  <<: *b\n  epochs: 3\n")
    assert _read_file(f) == {"base": {"lr": 0.001, "epochs": 2}, "train": {"lr": 0.001, "epochs": 3}}


@pytest.mark.parametrize("name,text,expect", [
    ("rec.yaml", "a: &x [1, *x]\n", "recursive structure"),
    ("deep.yaml", "a: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply to parse"),
    ("deep.toml", "a = " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply to parse"),
    ("tables.toml", "[" + ".".join(["t"] * 2000) + "]\nx = 1\n", "nested more than 32 levels deep"),
    ("inline.toml", "a = " + "{b = " * 200 + "1" + "}" * 200 + "\n", "nested"),
    ("big.toml", "# padding\n" * 120_000, "bytes; at most 1048576 are accepted"),
    ("tab.yaml", "a:\n\t- 1\n", "invalid YAML"),
    ("bad.toml", "a = \n", "invalid TOML"),
])
def test_bad_config_files_are_one_line_errors(tmp_path, capsys, name, text, expect):
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(ValueError) as info:
        _read_file(f)
    msg = str(info.value)
    assert msg.startswith(f"{f}:") and expect in msg and "\n" not in msg, msg
    assert main(["sweep", str(f), "--dry-run", "--out", str(tmp_path / "o")]) == 2
    assert expect in _one_line_error(capsys)


def test_non_utf8_config(tmp_path):
    f = tmp_path / "x.toml"
    f.write_bytes(b'name = "\xff"\n')
    with pytest.raises(ValueError, match="not valid UTF-8"):
        _read_file(f)


def _nest(depth: int):
    obj = 1
    for i in range(depth - 1):
        obj = {"k": obj} if i % 2 else [obj]
    return {"top": obj}


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.sampled_from(["json-as-yaml", "toml"]))
def test_nesting_accepted_exactly_up_to_the_limit(tmp_path_factory, depth, fmt):
    data = _nest(depth)  # depth counts the top table and the innermost value
    d = tmp_path_factory.mktemp("n")
    if fmt == "toml":
        inner = json.dumps(data["top"]).replace('"k":', "k =").replace(":", "=")
        f = d / "c.toml"
        f.write_text(f"top = {inner}\n")
    else:
        f = d / "c.yaml"
        f.write_text(json.dumps(data))  # JSON is YAML
    if depth + 1 <= _MAX_CONFIG_DEPTH:
        assert _read_file(f) == data
    else:
        with pytest.raises(ValueError, match="nested"):
            _read_file(f)
