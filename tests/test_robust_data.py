"""Hostile and careless inputs to `lowrankdp data` and the dataset loader: each ends in one line naming the
file (and line or field), exit 2 — or a correct answer — and a failed or killed `data generate` leaves no
half-written dataset behind."""

from __future__ import annotations

import ast
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowrankdp._files import TEMP_MARK, write_directory_atomically
from lowrankdp.cli import main
from lowrankdp.data import generate, load_dataset, load_jsonl

ROOT = Path(__file__).resolve().parents[1]


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # exactly one line
    return err


def _check(path, capsys) -> str:
    assert main(["data", "check", str(path)]) == 2
    return _err(capsys)


def _small(tmp_path, name="ds", **kw):
    return generate("synbio", out_dir=tmp_path / name, seed=0, sizes={"train": 4, "valid": 2, "test": 2},
                    canary_repeats=2, **kw)


# ------------------------------------------------------------------------------------------- loader


def test_jsonl_nested_100k_deep_names_file_and_line(tmp_path, capsys):
    f = tmp_path / "deep.jsonl"
    f.write_text('{"text": "ok"}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    err = _check(f, capsys)
    assert f"{f}:2:" in err and "nested too deeply" in err


def test_non_utf8_line_names_file_and_line(tmp_path, capsys):
    f = tmp_path / "u.jsonl"
    f.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    err = _check(f, capsys)
    assert f"{f}:2:" in err and "not valid UTF-8" in err


def test_non_utf8_meta_json_names_the_file(tmp_path, capsys):
    ds = _small(tmp_path)
    (ds / "meta.json").write_bytes(b'{"seed": "\xff"}')
    err = _check(ds, capsys)
    assert "meta.json" in err and "not valid UTF-8" in err


def test_train_jsonl_that_is_a_directory(tmp_path, capsys):
    ds = _small(tmp_path)
    (ds / "train.jsonl").unlink()
    (ds / "train.jsonl").mkdir()
    err = _check(ds, capsys)
    assert "train.jsonl" in err and "is a directory" in err


def test_dangling_train_jsonl(tmp_path, capsys):
    ds = _small(tmp_path)
    (ds / "train.jsonl").unlink()
    (ds / "train.jsonl").symlink_to(tmp_path / "gone.jsonl")
    err = _check(ds, capsys)
    assert "train.jsonl" in err and "broken symbolic link" in err


def test_empty_train_jsonl(tmp_path, capsys):
    ds = _small(tmp_path)
    (ds / "train.jsonl").write_text("")
    err = _check(ds, capsys)
    assert "train.jsonl" in err and "no records" in err


def test_empty_split_allowed_when_meta_says_zero(tmp_path):
    ds = generate("synbio", out_dir=tmp_path / "z", seed=0, sizes={"train": 3, "valid": 0, "test": 2},
                  canary_repeats=0)
    assert load_dataset(ds).sizes() == {"train": 3, "valid": 0, "test": 2}


def test_dev_null_and_empty_file(tmp_path, capsys):
    err = _check("/dev/null", capsys)
    assert "/dev/null" in err and "not a regular file" in err
    f = tmp_path / "e.jsonl"
    f.write_text("\n \n")
    err = _check(f, capsys)
    assert str(f) in err and "no records" in err


@pytest.mark.parametrize("field,value,expect", [
    ("template", "{0}", "canary.template must contain exactly one field"),
    ("template", "My ID is {secret} {secret}", "canary.template must contain exactly one field"),
    ("template", "My ID is {secret", "canary.template is not a valid format string"),
    ("space_size", 1e30, "canary.space_size must be an integer, got 1e+30"),
    ("space_size", 10 ** 30, "canary.space_size must equal len(alphabet)**length"),
    ("length", True, "canary.length must be an integer"),
    ("secret", "12a", "canary.secret must be"),
    ("alphabet", "0012345678", "canary.alphabet must not repeat"),
    ("record_ids", "x", "canary.record_ids must be a list"),
])
def test_bad_canary_metadata_names_the_field(tmp_path, capsys, field, value, expect):
    ds = _small(tmp_path)
    meta = json.loads((ds / "meta.json").read_text())
    meta["canary"][field] = value
    (ds / "meta.json").write_text(json.dumps(meta))
    err = _check(ds, capsys)
    assert "meta.json" in err and expect in err, err


def test_canary_template_with_literal_braces_is_accepted(tmp_path):
    ds = _small(tmp_path)
    meta = json.loads((ds / "meta.json").read_text())
    c = meta["canary"]
    c["template"], c["prefix"] = "{{ID}} {secret}.", "{ID} "
    text = "{ID} " + c["secret"] + "."
    lines = []
    for line in (ds / "train.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["canary"]:
            rec["text"], rec["spans"] = text, [{"start": 5, "end": 5 + len(c["secret"]), "type": "canary"}]
        lines.append(json.dumps(rec))
    (ds / "train.jsonl").write_text("\n".join(lines) + "\n")
    (ds / "meta.json").write_text(json.dumps(meta))
    assert load_dataset(ds).canary.text() == text


_PIECES = ['{"text": "a"}', '{"text": 1}', '{"text": "a", "spans": [{"start": 0, "end": 1, "type": "x"}]}',
           '{"text": "a", "spans": [{"start": 0, "end": 9, "type": "x"}]}', "[", "{", "]", '"', "\\", "null",
           "\xe9", "\x00", " ", "1e999", '{"text": "a", "split": "nope"}', '{"text": "a", "canary": 1}']


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.lists(st.sampled_from(_PIECES), max_size=4).map("".join),
                          st.binary(max_size=12).map(lambda b: b.decode("latin-1"))), max_size=6),
       st.sampled_from(["utf-8", "latin-1"]))
def test_fuzzed_jsonl_loads_or_names_file_and_line(tmp_path_factory, lines, encoding):
    f = tmp_path_factory.mktemp("fz") / "f.jsonl"
    data = "\n".join(lines).encode(encoding, errors="replace")
    f.write_bytes(data)
    try:
        recs = load_jsonl(f)
    except ValueError as exc:
        msg = str(exc)
        assert msg.startswith(f"{f}:") and "\n" not in msg, msg
        lineno = int(msg[len(str(f)) + 1:].split(":", 1)[0])
        # a generated piece may itself hold a newline, so the file's lines are counted in the bytes written
        assert 1 <= lineno <= data.count(b"\n") + 1
    else:
        assert all(isinstance(r.text, str) for r in recs)


# ------------------------------------------------------------------------------------------- detect-score


@pytest.mark.parametrize("args,expect", [
    (["--max-records", "-1"], "--max-records must be an integer in [1, inf), got -1"),
    (["--max-records", "0"], "--max-records must be an integer in [1, inf), got 0"),
    (["--splits", "trian"], "--splits entry must be one of 'train', 'valid', 'test', got 'trian'"),
    (["--splits", ","], "--splits must name at least one"),
])
def test_detect_score_rejects_bad_arguments(tmp_path, capsys, args, expect):
    ds = _small(tmp_path)
    assert main(["data", "detect-score", str(ds), *args]) == 2
    assert expect in _err(capsys)


# ------------------------------------------------------------------------------------------- generate


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if TEMP_MARK in p.name)


def test_generate_refuses_a_directory_with_other_files(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["data", "generate", "synbio", "--out", str(out), "--train", "3"]) == 2
    assert "notes.txt" in _err(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_generate_replaces_a_dataset_as_a_whole(tmp_path):
    ds = _small(tmp_path)
    (ds / "valid.jsonl").unlink()
    generate("synbio", out_dir=ds, seed=1, sizes={"train": 3, "valid": 1, "test": 1}, canary_repeats=0)
    assert load_dataset(ds).meta["seed"] == 1 and load_dataset(ds).sizes() == {"train": 3, "valid": 1, "test": 1}
    assert _leftovers(tmp_path) == []


def test_generate_under_proc_is_one_line(capsys):
    assert main(["data", "generate", "synbio", "--out", "/proc/lowrankdp-x", "--train", "3"]) == 2
    assert "/proc/lowrankdp-x" in _err(capsys)


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "lowrankdp", *args], capture_output=True, text=True,
                          env=env, timeout=300, **kw)


def test_write_failure_leaves_nothing_half_written(tmp_path):
    # RLIMIT_FSIZE makes write() fail with EFBIG (Python ignores SIGXFSZ): a full disk as the process sees it.
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    out = tmp_path / "cs"
    res = _cli("data", "generate", "customersim", "--out", str(out), "--train", "200", "--valid", "5",
               "--test", "5", preexec_fn=limit)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and "File too large" in res.stderr and f"{out}/" in res.stderr
    assert not out.exists() and _leftovers(tmp_path) == []


def _kill_while_writing(args: list[str], parent: Path) -> bool:
    """Start `data generate`, SIGKILL it as soon as its temporary directory appears; True if it was hit."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "lowrankdp", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if any(f"{TEMP_MARK}tmp-{proc.pid}-" in n for n in os.listdir(parent)):
                proc.kill()
                proc.wait()
                return True
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_kill_during_generate_keeps_old_dataset_and_next_run_cleans_up(tmp_path):
    out = tmp_path / "cs"
    args = ["data", "generate", "customersim", "--out", str(out), "--train", "1500", "--valid", "5",
            "--test", "5", "--seed"]
    assert not _kill_while_writing(args + ["0"], tmp_path) or not out.exists()  # first run killed: nothing
    res = _cli(*args, "1")
    assert res.returncode == 0, res.stderr
    assert _leftovers(tmp_path) == []  # the dead run's temporary directory was removed
    hits = 0
    for _ in range(2):
        hits += _kill_while_writing(args + ["2"], tmp_path)
        ds = load_dataset(out)  # always the complete seed-1 dataset
        assert ds.meta["seed"] == 1 and ds.sizes()["train"] == 1510
    assert hits >= 1, "the kill never landed while writing; the test did not test anything"
    assert _cli(*args, "2").returncode == 0
    assert load_dataset(out).meta["seed"] == 2 and _leftovers(tmp_path) == []


def test_interrupted_swap_is_restored_by_the_next_writer(tmp_path):
    # A writer killed between moving the old version aside and renaming the new one in leaves only the old
    # version, under the temporary name of a dead process: the next writer puts it back first.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    target = tmp_path / "d"
    old = tmp_path / f".d{TEMP_MARK}old-{dead.pid}-x"
    old.mkdir()
    (old / "f").write_text("old")
    seen = {}

    def write(tmp: Path) -> None:
        seen["restored"] = (target / "f").read_text()
        (tmp / "f").write_text("new")

    write_directory_atomically(target, write)
    assert seen["restored"] == "old" and (target / "f").read_text() == "new"
    assert _leftovers(tmp_path) == []


def test_nested_leftovers_of_a_dead_writer_are_removed(tmp_path):
    # A caller that writes a dataset into its own temporary sibling (as a sweep may) nests the marks.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    outer = f".d{TEMP_MARK}tmp-{dead.pid}-a"
    for name in (outer, f".{outer}{TEMP_MARK}tmp-{dead.pid}-b", f".other{TEMP_MARK}tmp-{dead.pid}-c"):
        (tmp_path / name).mkdir()
    write_directory_atomically(tmp_path / "d", lambda tmp: (tmp / "f").write_text("x"))
    assert _leftovers(tmp_path) == [f".other{TEMP_MARK}tmp-{dead.pid}-c"]  # another target's: not touched


def test_failed_write_keeps_the_previous_directory(tmp_path):
    target = tmp_path / "d"
    target.mkdir()
    (target / "f").write_text("old")

    def write(tmp: Path) -> None:
        (tmp / "f").write_text("half")
        raise OSError(28, "No space left on device", str(target / "f"))

    with pytest.raises(OSError):
        write_directory_atomically(target, write)
    assert (target / "f").read_text() == "old" and _leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------- imports


def test_no_import_cycle_between_detect_and_schema():
    """schema -> detect -> records and schema -> records; detect never imports schema (at any level)."""
    def imports(name: str) -> set[str]:
        tree = ast.parse((ROOT / "lowrankdp" / "data" / f"{name}.py").read_text())
        out = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                out.add((node.module or "").split(".")[0])
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lowrankdp.data."):
                out.add(node.module.split(".")[2])
        return out

    assert "schema" not in imports("detect") and "schema" not in imports("records")
    assert "schema" not in imports("masks") and imports("records") == set()
