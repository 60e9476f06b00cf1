"""Tests for lowrankdp.models: corpus, tokenizer, tiny build/cache, presets, loading, retention, MC."""

from __future__ import annotations

import json
import math
import re
import sys
import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from lowrankdp.models import (  # noqa: E402
    DEFAULT_RECIPE,
    PRESETS,
    TinyRecipe,
    build_tiny,
    load_base,
    multiple_choice_accuracy,
    parameter_count,
    preset_config,
    read_metadata,
    retention_loss,
    score_multiple_choice,
    stream_loss,
    tiny_path,
)
from lowrankdp.models.corpus import (  # noqa: E402
    GENERATOR_VERSION,
    US_STATE_CODES,
    make_corpus,
    multiple_choice_items,
    write_multiple_choice_task,
)
from lowrankdp.models.retention import heldout_documents, load_task, token_stream  # noqa: E402


# A recipe small enough to build in a few seconds (tests of determinism, caching and locking).
SHORT = TinyRecipe(n_train_docs=150, n_heldout_docs=10, vocab_size=400, hidden_size=32, num_layers=1,
                   num_heads=2, max_position_embeddings=64, block_size=32, batch_size=4, steps=6,
                   warmup_steps=2)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_base_path():
    """The default embedded model, built once per machine in the user cache (reused afterwards)."""
    torch.set_num_threads(1)
    return build_tiny()


@pytest.fixture
def tiny_base(tiny_base_path):
    """A fresh (model, tokenizer) of the default tiny model for each test (safe to modify)."""
    return load_base("tiny")


@pytest.fixture(scope="module")
def short_build(tmp_path_factory):
    return build_tiny(SHORT, cache_dir=tmp_path_factory.mktemp("short_cache"))


# ------------------------------------------------------------------------------------------ corpus

# SHA-256 of make_corpus(seed=0, n_train_docs=40, n_heldout_docs=5) per generator version, computed here
# (CPython 3.11.7). The generator uses its own PRNG and no Python/package text, so it must hold on every Python
# version. The tiny model's cache key holds GENERATOR_VERSION, not this hash: a change of the text must add a
# new version here (never overwrite an entry), or cached models built from the old text would be reused.
PINNED_SHA256 = {
    2: "cbcdf1530eacfad14e520938941c8a919e44ab963ff8d4d6a1842eb23850d491",
    3: "b9a02945148340ec9a75c9621d7746b8057c785b1e3ec2c55ba4ae5bfec5863a",
}


def test_corpus_is_deterministic_and_pinned():
    a = make_corpus(seed=0, n_train_docs=40, n_heldout_docs=5)
    b = make_corpus(seed=0, n_train_docs=40, n_heldout_docs=5)
    assert a == b
    assert make_corpus(seed=1, n_train_docs=40, n_heldout_docs=5).sha256 != a.sha256
    assert a.sha256 == PINNED_SHA256[GENERATOR_VERSION]
    assert set(a.train).isdisjoint(a.heldout)



_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"


def test_corpus_has_no_fine_tuning_formats():
    """Digit strings, codes, names and addresses occur, but never in a format of the fine-tuning
    values (lowrankdp.data.generators: CustomerSim and SynBio), so no corpus string can be one of
    their records."""
    c = make_corpus(seed=0, n_train_docs=2000, n_heldout_docs=100)
    text = "\n".join(c.train + c.heldout)
    # what the base model should know the look of ...
    assert re.search(r"\b\d{5,8}\b", text) and re.search(r"\b\d+-\d+-\d+\b", text)
    assert re.search(r"\b(?=[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z0-9-]{6,}\b", text)
    assert re.search(r"\b\d+ [A-Z][a-z]+ (Street|Road|Lane|Avenue), [A-Z]", text)
    # ... but none of the fine-tuning formats
    assert "@" not in text  # e-mail
    assert not re.search(r"\d{3}-\d{5}-\d{4}", text)  # CustomerSim order number
    assert not re.search(r"\d{3}[-. ]?\d{3}[-. ]?\d{4}", text)  # phone (any separator; 10+ digit runs)
    assert not re.search(r"\(\d{3}\) ?\d{3}", text)  # phone (ddd) ddd-dddd
    assert not re.search(r"\d{3}-\d{2}-\d{4}", text)  # SSN
    assert not re.search(r"\b[A-Z0-9]{10}\b", text)  # tracking number
    assert not re.search(r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{4}", text)  # ISO / US dates
    assert not re.search(rf"\b({_MONTHS}) \d|\d ({_MONTHS})\b", text)  # month-name dates
    assert not re.search(r"\b(" + "|".join(sorted(US_STATE_CODES)) + r") \d{5}\b", text)  # US state + ZIP
    assert "My ID is" not in text  # canary template
    # names come from our syllable generator: no full name is a Faker en_US first + last name
    try:
        from faker.providers.person.en_US import Provider
    except ImportError:  # pragma: no cover - Faker is a data extra
        return
    first, last = set(Provider.first_names), set(Provider.last_names)
    # (person names, not street names: a match right after a house number is "<number> <name> <street kind>")
    pairs = re.findall(r"(?<!\d )\b([A-Z][a-z]+) (?:[A-Z]\. )?([A-Z][a-z]+)\b", text)
    assert len(pairs) > 500
    assert not [p for p in pairs if p[0] in first and p[1] in last]


# --------------------------------------------------------------------------------------- tokenizer

def test_tokenizer_handles_any_text(short_build):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(short_build)
    assert tok.eos_token == "<|endoftext|>" and tok.eos_token_id == 0
    assert tok.pad_token == "<|padding|>" and tok.pad_token_id == 1
    s = "USR: My name is Zoë O'Brien-Ngũgĩ, phone 555-013-7788, order 123-45678-9012 ✓ 東京\n"
    enc = tok(s, return_offsets_mapping=True, add_special_tokens=False)
    assert tok.decode(enc["input_ids"]) == s
    assert tok.unk_token_id is None or tok.unk_token_id not in enc["input_ids"]
    # every digit is its own token, and offsets point at it
    digits = [(a, b) for (a, b) in enc["offset_mapping"] if s[a:b].isdigit()]
    assert len(digits) == sum(ch.isdigit() for ch in s)
    assert all(b - a == 1 for a, b in digits)


# --------------------------------------------------------------------------- tiny build and cache

def _state(path):
    from transformers import GPTNeoXForCausalLM

    return GPTNeoXForCausalLM.from_pretrained(path).state_dict()


def test_build_is_deterministic(short_build, tmp_path):
    other = build_tiny(SHORT, cache_dir=tmp_path)
    assert other.name == short_build.name  # same recipe -> same cache key
    a, b = _state(short_build), _state(other)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (short_build / "tokenizer.json").read_bytes() == (other / "tokenizer.json").read_bytes()
    ma, mb = read_metadata(short_build), read_metadata(other)
    assert ma["corpus"]["sha256"] == mb["corpus"]["sha256"]
    assert ma["heldout_loss"] == mb["heldout_loss"]
    # and a different seed gives different weights
    c = _state(build_tiny(TinyRecipe(**{**SHORT.to_dict(), "seed": 1}), cache_dir=tmp_path))
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_cache_is_reused(short_build, monkeypatch):
    import lowrankdp.models.tiny as tiny

    def boom(*args, **kwargs):
        raise AssertionError("rebuilt although cached")

    monkeypatch.setattr(tiny, "_build", boom)
    assert build_tiny(SHORT, cache_dir=short_build.parent) == short_build
    assert tiny_path(SHORT, cache_dir=short_build.parent) == short_build


def test_cache_key_depends_on_recipe(tmp_path):
    a = tiny_path(SHORT, cache_dir=tmp_path)
    b = tiny_path(TinyRecipe(**{**SHORT.to_dict(), "steps": 7}), cache_dir=tmp_path)
    assert a != b and a.parent == b.parent == tmp_path


def test_cache_env_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("LOWRANKDP_CACHE", str(tmp_path / "c"))
    assert tiny_path(SHORT).parent == tmp_path / "c"


def _build_in_child(cache_dir, log_file):
    torch.set_num_threads(1)
    with open(log_file, "w") as f:
        p = build_tiny(SHORT, cache_dir=cache_dir, log=lambda line: print("BUILD", line, file=f, flush=True))
        assert (p / "model.safetensors").is_file() and (p / "tokenizer.json").is_file()
        print("PATH", p, file=f)


def test_concurrent_builds_are_atomic(tmp_path):
    """Two processes build the same model at once: one builds, the other waits and reuses it."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
    logs = [tmp_path / f"log{i}.txt" for i in range(2)]
    procs = [ctx.Process(target=_build_in_child, args=(tmp_path / "cache", log)) for log in logs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    outs = [log.read_text() for log in logs]
    paths = {line.split()[1] for out in outs for line in out.splitlines() if line.startswith("PATH")}
    assert len(paths) == 1
    assert sum("BUILD step" in out for out in outs) == 1  # one process trained; the other waited
    assert [p.name for p in (tmp_path / "cache").iterdir() if ".tmp-" in p.name] == []
    assert read_metadata(next(iter(paths)))["recipe"] == SHORT.to_dict()


# ---------------------------------------------------------------------------- the default tiny model

def test_tiny_beats_unigram_and_retention_matches_metadata(tiny_base_path, tiny_base):
    meta = read_metadata(tiny_base_path)
    assert meta["recipe"] == DEFAULT_RECIPE.to_dict()
    assert len(meta["corpus"]["sha256"]) == 64
    # clearly better than a unigram model of the same tokens (add-one smoothed, fitted on train)
    assert meta["heldout_loss"] < 0.5 * meta["unigram_heldout_loss"]
    model, tok = tiny_base
    assert model.config.model_type == "gpt_neox"
    assert model.config.use_parallel_residual
    assert model.config.rope_parameters["partial_rotary_factor"] == 0.25
    assert 2000 >= len(tok) >= 1000
    assert retention_loss(model, tok) == pytest.approx(meta["heldout_loss"], rel=1e-5)


def test_local_path_loading_via_automodel(tiny_base, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = tiny_base
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    m2, t2 = load_base(str(tmp_path / "m"))
    m3 = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    t3 = AutoTokenizer.from_pretrained(tmp_path / "m")
    text = "SYS: How can I help you today?\nUSR: My phone is 555-0199."
    ids = tok(text, return_tensors="pt")["input_ids"]
    assert t2(text)["input_ids"] == t3(text)["input_ids"] == ids[0].tolist()
    with torch.no_grad():
        ref = model(input_ids=ids).logits
        assert torch.equal(m2(input_ids=ids).logits, ref)
        assert torch.equal(m3(input_ids=ids).logits, ref)


def test_unknown_name_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="not one of tiny, pythia-70m-shape"):
        load_base("no-such-org/no-such-model-xyz")
    assert time.perf_counter() - t0 < 30
    with pytest.raises(ValueError, match="no such directory"):
        load_base("./definitely/not/here")
    with pytest.raises(ValueError, match="name_or_path must be a non-empty string"):
        load_base("")


# ---------------------------------------------------------------------------------------- presets

# Published totals (EleutherAI/pythia README, "Total Params"): the closed form must reproduce them.
PYTHIA_PARAMS = {"pythia-70m-shape": 70_426_624, "pythia-160m-shape": 162_322_944,
                 "pythia-410m-shape": 405_334_016, "pythia-1b-shape": 1_011_781_632}
PYTHIA_TABLE = {"pythia-70m-shape": (6, 512, 8), "pythia-160m-shape": (12, 768, 12),
                "pythia-410m-shape": (24, 1024, 16), "pythia-1b-shape": (16, 2048, 8)}


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_configs_match_pythia(name):
    from transformers import GPTNeoXForCausalLM

    cfg = preset_config(name)
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads) == PYTHIA_TABLE[name]
    assert cfg.vocab_size == 50304
    assert cfg.intermediate_size == 4 * cfg.hidden_size
    assert cfg.rope_parameters["partial_rotary_factor"] == 0.25
    assert cfg.use_parallel_residual and not cfg.tie_word_embeddings
    assert parameter_count(cfg) == PYTHIA_PARAMS[name]
    with torch.device("meta"):  # no memory allocated
        model = GPTNeoXForCausalLM(cfg)
    assert sum(p.numel() for p in model.parameters()) == PYTHIA_PARAMS[name]


def test_preset_70m_loads_and_runs(tiny_base_path):
    model, tok = load_base("pythia-70m-shape", dtype="bf16")
    assert model.config.vocab_size == 50304 and len(tok) < 50304
    assert next(model.parameters()).dtype == torch.bfloat16
    assert sum(p.numel() for p in model.parameters()) == PYTHIA_PARAMS["pythia-70m-shape"]
    ids = tok("Hello there", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert model(input_ids=ids).logits.shape == (1, ids.shape[1], 50304)


def test_preset_errors():
    with pytest.raises(ValueError, match="preset must be one of"):
        preset_config("pythia-12b-shape")
    with pytest.raises(ValueError, match="dtype must be one of"):
        load_base("pythia-70m-shape", dtype="int3")


# ------------------------------------------------------------------------------------- retention

def test_retention_loss_equals_hand_computation(short_build):
    """Loss by prefix-by-prefix forward passes (a different code path) on a tiny case."""
    from transformers import AutoTokenizer, GPTNeoXForCausalLM

    model = GPTNeoXForCausalLM.from_pretrained(short_build)
    tok = AutoTokenizer.from_pretrained(short_build)
    n, block = 23, 8
    ids = token_stream(tok, heldout_documents())[:n]
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, n, block):
            chunk = ids[start:start + block]
            for i in range(1, len(chunk)):
                logits = model(input_ids=torch.tensor([chunk[:i]])).logits[0, -1]
                total -= float(torch.log_softmax(logits.double(), -1)[chunk[i]])
                count += 1
    assert count == (8 - 1) * 2 + (7 - 1)
    got = retention_loss(model, tok, max_tokens=n, block_size=block, batch_size=2)
    assert got == pytest.approx(total / count, rel=1e-5)
    model.train()
    stream_loss(model, ids, block_size=block)
    assert model.training  # mode restored
    with pytest.raises(ValueError, match="max_tokens must be an integer"):
        retention_loss(model, tok, max_tokens=1)


def test_token_stream_layout(short_build):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(short_build)
    ids = token_stream(tok, ["ab", "cd"])
    enc = tok(["ab", "cd"], add_special_tokens=False)["input_ids"]
    assert ids == enc[0] + [tok.eos_token_id] + enc[1] + [tok.eos_token_id]


# -------------------------------------------------------------------------------- multiple choice

class _FixedLogits(torch.nn.Module):
    """A 'model' whose next-token logits ignore the context: log p(token) is a fixed vector."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.as_tensor(logits, dtype=torch.float32))

    def forward(self, input_ids, attention_mask=None):
        out = self.logits.expand(*input_ids.shape, -1)
        return type("Out", (), {"logits": out})()


def test_multiple_choice_scoring_known_answer(short_build, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(short_build)
    task = tmp_path / "task.jsonl"
    items = [{"id": "q1", "question": "What colour is snow?", "choices": ["green", "white", "blue"], "answer": 1},
             {"id": "q2", "question": "Pick one", "choices": ["white", "green"], "answer": 0}]
    task.write_text("".join(json.dumps(i) + "\n" for i in items))
    logits = torch.zeros(len(tok))
    favoured = tok(" white", add_special_tokens=False)["input_ids"]
    logits[favoured] = 6.0
    model = _FixedLogits(logits)
    logp = torch.log_softmax(logits.double(), -1)
    for norm in ("chars", "tokens", "none"):
        res = score_multiple_choice(model, tok, task, normalize=norm)
        assert res["accuracy"] == 1.0 and res["n"] == 2
        for item, got in zip(items, res["items"]):
            for c, s in zip(item["choices"], got["scores"]):
                cont = tok(" " + c, add_special_tokens=False)["input_ids"]
                ll = float(logp[cont].sum())
                denom = {"chars": len(" " + c), "tokens": len(cont), "none": 1}[norm]
                assert s == pytest.approx(ll / denom, rel=1e-5, abs=1e-6)
    # the answer key matters: flip it and accuracy drops to 0
    task.write_text("".join(json.dumps({**i, "answer": 1 - i["answer"] if len(i["choices"]) == 2 else 0}) + "\n"
                            for i in items))
    assert multiple_choice_accuracy(model, tok, task) == 0.0


def test_multiple_choice_task_file(tmp_path):
    path = write_multiple_choice_task(tmp_path / "mc.jsonl")
    items = load_task(path)
    assert items == multiple_choice_items() and len(items) == 61
    for it in items:
        assert it["choices"][it["answer"]] not in it["choices"][:it["answer"]] + it["choices"][it["answer"] + 1:]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "choices": ["a", "b"], "answer": 2}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: 'answer' must be an index"):
        load_task(bad)


def test_multiple_choice_on_tiny(tiny_base):
    model, tok = tiny_base
    res = score_multiple_choice(model, tok, normalize="tokens")  # the generated facts task
    assert res["n"] == 61 and 0.25 <= res["chance"] <= 0.34
    # The pretrained model knows most of its facts (0.672 here, chance 0.262); a random-weight
    # model of the same shape does not.
    assert res["accuracy"] > 0.6
    torch.manual_seed(0)
    random_model = type(model)(model.config)
    assert score_multiple_choice(random_model, tok, normalize="tokens")["accuracy"] < 0.5


def test_lm_eval_guard():
    from lowrankdp.models import lm_eval_available, run_lm_eval

    if lm_eval_available():  # pragma: no cover - not installed here
        pytest.skip("lm_eval installed; the guard is not exercised")
    with pytest.raises(ImportError, match="pip install .lm-eval"):
        run_lm_eval(None, None, ["sciq"])


# ---------------------------------------------------------------------------------------------- CLI

def test_cli_model_info_and_build(tiny_base_path, capsys):
    from lowrankdp.cli import main

    assert main(["model", "info", "pythia-410m-shape", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == PYTHIA_PARAMS["pythia-410m-shape"]
    assert main(["model", "build", "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["cached"] is True and meta["path"] == str(tiny_base_path)
    assert main(["model", "info", "tiny"]) == 0
    assert "held-out" in capsys.readouterr().out
    assert main(["model", "info", "./no/such/dir"]) == 2
    assert "no such directory" in capsys.readouterr().err


# ------------------------------------------------------------------------- cache key, corrupt cache, stale builds

def test_finding_a_cached_model_never_generates_the_corpus(short_build, monkeypatch):
    import lowrankdp.models.recipe as recipe_module

    def boom(*args, **kwargs):
        raise AssertionError("corpus generated to find a cached model")

    monkeypatch.setattr(recipe_module, "make_corpus", boom)
    recipe_module.tiny_corpus.cache_clear()
    try:
        assert build_tiny(SHORT, cache_dir=short_build.parent) == short_build
        assert tiny_path(cache_dir=short_build.parent).name.startswith("tiny-")
    finally:
        recipe_module.tiny_corpus.cache_clear()


def test_cache_key_holds_generator_and_build_versions(tmp_path, monkeypatch):
    import lowrankdp.models.recipe as recipe_module

    a = tiny_path(SHORT, cache_dir=tmp_path)
    monkeypatch.setattr(recipe_module, "GENERATOR_VERSION", GENERATOR_VERSION + 1)
    b = tiny_path(SHORT, cache_dir=tmp_path)
    monkeypatch.setattr(recipe_module, "BUILD_VERSION", recipe_module.BUILD_VERSION + 1)
    c = tiny_path(SHORT, cache_dir=tmp_path)
    assert len({a, b, c}) == 3


def _copy_as_default_tiny(src, cache_dir):
    import shutil

    dst = tiny_path(cache_dir=cache_dir)
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damage", ["truncated weights", "bad config", "cut metadata"])
def test_corrupt_cached_model_is_a_one_line_error(short_build, tmp_path, capsys, damage):
    from lowrankdp.cli import main

    path = _copy_as_default_tiny(short_build, tmp_path)
    if damage == "truncated weights":
        w = path / "model.safetensors"
        w.write_bytes(w.read_bytes()[:100])
    elif damage == "bad config":
        (path / "config.json").write_text("{not json")
    else:
        (path / "lowrankdp_model.json").write_text('{"name": "tiny", ')  # cut mid-write
    with pytest.raises(ValueError) as err:
        load_base("tiny", cache_dir=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "lowrankdp model build --rebuild" in msg
    assert main(["model", "eval", "tiny", "--cache-dir", str(tmp_path)]) == 2
    captured = capsys.readouterr().err.strip().splitlines()
    assert len(captured) == 1 and str(path) in captured[0]


def test_stale_temporary_builds_are_removed(tmp_path):
    import os
    import subprocess

    from lowrankdp.models.cache import remove_stale_builds

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".tiny-0123456789abcdef.tmp-{dead.pid}-deadbeef"
    live = tmp_path / f".tiny-fedcba9876543210.tmp-{os.getppid()}-cafef00d"
    stale_file = tmp_path / f".mc-facts-v3.jsonl.tmp-{dead.pid}"
    for d in (stale, live):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"partial")
    stale_file.write_text("{")
    assert sorted(remove_stale_builds(tmp_path)) == sorted([stale, stale_file])
    assert not stale.exists() and not stale_file.exists() and live.exists()
    stale.mkdir()
    build_tiny(SHORT, cache_dir=tmp_path)  # the next build cleans up too
    assert not stale.exists() and live.exists()


# --------------------------------------------------------------------------------------------- widths

def test_model_width_without_torch(tmp_path):
    """model_width knows tiny, the presets, public Pythia ids and local/run directories, and importing it
    does not import torch."""
    import subprocess

    from lowrankdp.models.presets import model_width

    code = ("import sys; from lowrankdp.models.presets import model_width; "
            "print(model_width('tiny'), model_width('pythia-70m-shape'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(DEFAULT_RECIPE.hidden_size), "512", "False"]
    assert model_width("EleutherAI/pythia-160m") == 768 and model_width("pythia-410m-deduped") == 1024
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"n_embd": 96}))
    (tmp_path / "run" / "model").mkdir(parents=True)
    (tmp_path / "run" / "config.json").write_text(json.dumps({"method": "lora"}))
    (tmp_path / "run" / "model" / "config.json").write_text(json.dumps({"hidden_size": 64}))
    assert model_width(tmp_path / "m") == 96 and model_width(str(tmp_path / "run")) == 64
    assert model_width("some-org/unknown-model") is None and model_width(str(tmp_path / "nowhere")) is None
    assert model_width("a/b/pythia-70m") is None  # a path that does not exist is not the hub id


# --------------------------------------------------------------------------------------- pretrain_base

def test_pretrain_base_writes_a_loadable_model(tmp_path):
    from lowrankdp.models import pretrain_base

    out = pretrain_base("pythia-70m-shape", out_dir=tmp_path / "base", steps=2, batch_size=1, block_size=16,
                        warmup_steps=1, tokenizer_vocab=400, recipe=SHORT)
    meta = read_metadata(out)
    assert meta["training"]["steps"] == 2 and meta["architecture"]["parameters"] == PYTHIA_PARAMS["pythia-70m-shape"]
    assert meta["tokenizer"]["vocab_size"] <= 400 and math.isfinite(meta["heldout_loss"])
    model, tok = load_base(str(out))
    assert model.config.vocab_size == 50304 and model.config.hidden_size == 512
    assert [p.name for p in tmp_path.iterdir()] == ["base"]  # no temporary directory left
    with pytest.raises(ValueError, match="not an empty directory"):
        pretrain_base("pythia-70m-shape", out_dir=out, steps=1, recipe=SHORT)
    with pytest.raises(ValueError, match="shape must be one of"):
        pretrain_base("pythia-7b-shape", out_dir=tmp_path / "x", steps=1)
    with pytest.raises(ValueError, match="exactly one of steps and seconds"):
        pretrain_base("pythia-70m-shape", out_dir=tmp_path / "x", steps=1, seconds=1.0)


def test_pretrain_base_reduced_body_tokenizer_vocab_and_bf16(tmp_path):
    """The options the GPU check uses: a smaller body, embedding rows = the tokenizer's, bf16 autocast (here on
    the CPU), and a time budget whose schedule is fitted to the steps that fit (capped by max_steps)."""
    from lowrankdp.models import pretrain_base

    out = pretrain_base("pythia-70m-shape", out_dir=tmp_path / "base", seconds=60.0, max_steps=6, batch_size=1,
                        block_size=16, warmup_steps=1, tokenizer_vocab=400, recipe=SHORT, layers=1, hidden=32,
                        heads=2, vocab="tokenizer", precision="bf16", calibration_steps=2)
    meta = read_metadata(out)
    tr, arch = meta["training"], meta["architecture"]
    assert tr["steps"] == tr["planned_steps"] == 6 and tr["stopped"] is None  # 60 s fit far more than 6 steps
    assert tr["step_ms_calibrated"] > 0 and tr["precision"] == "bf16 autocast, fp32 weights"
    assert tr["loss_log"][-1][0] == 6 and math.isfinite(tr["loss_log"][-1][1])
    assert (arch["num_layers"], arch["hidden_size"], arch["num_heads"]) == (1, 32, 2) and arch["reduced_body"]
    assert arch["vocab_size"] == -(-meta["tokenizer"]["vocab_size"] // 128) * 128 == 512
    model, _ = load_base(str(out))
    assert model.config.intermediate_size == 128 and model.config.vocab_size == 512
    assert sum(p.numel() for p in model.parameters()) == arch["parameters"]
    assert next(model.parameters()).dtype == torch.float32  # autocast: weights stay float32
    for kw, match in (({"vocab": "full"}, "^vocab must be one of"), ({"precision": "fp16"}, "^precision must be"),
                      ({"hidden": 30, "heads": 4}, "^hidden must be divisible by heads"),
                      ({"layers": 0}, "^layers must be")):
        with pytest.raises(ValueError, match=match):
            pretrain_base("pythia-70m-shape", out_dir=tmp_path / "x", steps=1, batch_size=1, block_size=16,
                          tokenizer_vocab=400, recipe=SHORT, **kw)


def test_train_causal_lm_time_budget_spent_before_calibration():
    """A budget shorter than the calibration steps stops early and says so; the step count is what ran."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from lowrankdp.models.pretrain import train_causal_lm

    cfg = GPTNeoXConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(cfg)
    stats = train_causal_lm(model, list(range(64)) * 4, seconds=1e-9, batch_size=2, block_size=8,
                            calibration_steps=5)
    assert stats["steps"] == 1 and stats["planned_steps"] is None and stats["step_ms_calibrated"] is None
    assert "before the step time was measured" in stats["stopped"] and math.isfinite(stats["train_loss_final"])
    with pytest.raises(ValueError, match="^max_steps"):
        train_causal_lm(model, list(range(64)) * 4, seconds=1.0, max_steps=0, block_size=8)
